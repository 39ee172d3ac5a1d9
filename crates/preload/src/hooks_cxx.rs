//! C++ operator new / new[] / delete / delete[] in every standard form
//! (plain, nothrow, sized, aligned), under their Itanium-mangled names.
//!
//! new is served by the real malloc (or posix_memalign) directly; only when
//! that fails is the C++ runtime's own operator called, so that it runs the
//! new-handler and throws std::bad_alloc through us ("C-unwind").

use crate::capture::Regs;
use crate::entry::export_hook;
use crate::hooks::{real_free, real_malloc, release, track, track_internal};
use crate::lifecycle::{mode, Mode};
use crate::real;
use leakscope_format::layout::{AllocKind, ReleaseKind};
use libc::{c_void, size_t};

unsafe fn raw_alloc(size: size_t, align: size_t) -> *mut c_void {
    if align <= 16 {
        real_malloc(size.max(1))
    } else {
        let mut p = core::ptr::null_mut();
        match real::posix_memalign() {
            Some(f) if f(&mut p, align, size.max(1)) == 0 => p,
            _ => core::ptr::null_mut(),
        }
    }
}

/// Ask the C++ runtime's own operator (by mangled name) after malloc failed.
unsafe fn runtime_new(name_nul: &[u8], size: size_t, align: size_t, nothrow: bool) -> *mut c_void {
    let f = real::lookup(name_nul);
    if f == 0 {
        return core::ptr::null_mut();
    }
    match (align > 0, nothrow) {
        (false, false) => core::mem::transmute::<usize, unsafe extern "C-unwind" fn(size_t) -> *mut c_void>(f)(size),
        (false, true) => core::mem::transmute::<usize, unsafe extern "C-unwind" fn(size_t, *const c_void) -> *mut c_void>(
            f,
        )(size, &NOTHROW as *const u8 as *const c_void),
        (true, false) => {
            core::mem::transmute::<usize, unsafe extern "C-unwind" fn(size_t, size_t) -> *mut c_void>(f)(size, align)
        }
        (true, true) => core::mem::transmute::<usize, unsafe extern "C-unwind" fn(size_t, size_t, *const c_void) -> *mut c_void>(
            f,
        )(size, align, &NOTHROW as *const u8 as *const c_void),
    }
}

/// Stand-in for std::nothrow (an empty struct: its address is all that is passed).
static NOTHROW: u8 = 0;

#[inline(always)]
unsafe fn new_impl(
    size: size_t,
    align: size_t,
    kind: AllocKind,
    name_nul: &[u8],
    nothrow: bool,
    entry_sp: u64,
    entry_bp: u64,
) -> *mut c_void {
    match mode() {
        Mode::Track(_g) => {
            let mut p = raw_alloc(size, align);
            if p.is_null() {
                p = runtime_new(name_nul, size, align, nothrow);
            }
            track(p, size, kind, &Regs::at_entry(entry_sp, entry_bp));
            p
        }
        Mode::Nested => {
            let mut p = raw_alloc(size, align);
            if p.is_null() {
                p = runtime_new(name_nul, size, align, nothrow);
            }
            track_internal(p, size, kind);
            p
        }
        Mode::Passthrough => {
            let p = raw_alloc(size, align);
            if p.is_null() {
                return runtime_new(name_nul, size, align, nothrow);
            }
            p
        }
    }
}

#[inline(always)]
unsafe fn delete_impl(p: *mut c_void, how: ReleaseKind, entry_sp: u64, entry_bp: u64) {
    if p.is_null() {
        return;
    }
    // Same path as free(), with the release kind that tells mismatches apart.
    if crate::bootstrap::contains(p as *const u8) {
        return;
    }
    match mode() {
        Mode::Track(_g) => {
            if release(p, how, &Regs::at_entry(entry_sp, entry_bp)) {
                real_free(p);
            }
        }
        Mode::Nested => {
            crate::live::remove(p as u64);
            real_free(p);
        }
        Mode::Passthrough => real_free(p),
    }
}

macro_rules! new_op {
    ($name:ident, $kind:expr, $nothrow:expr, aligned) => {
        const _: () = {
            export_hook!($name => imp);
            unsafe extern "C-unwind" fn imp(
                size: size_t,
                align: size_t,
                _nt: *const c_void,
                entry_sp: u64,
                entry_bp: u64,
            ) -> *mut c_void {
                let name = concat!(stringify!($name), "\0").as_bytes();
                new_impl(size, align.max(1), $kind, name, $nothrow, entry_sp, entry_bp)
            }
        };
    };
    ($name:ident, $kind:expr, $nothrow:expr) => {
        const _: () = {
            export_hook!($name => imp);
            unsafe extern "C-unwind" fn imp(
                size: size_t,
                _nt: *const c_void,
                _pad: usize,
                entry_sp: u64,
                entry_bp: u64,
            ) -> *mut c_void {
                let name = concat!(stringify!($name), "\0").as_bytes();
                new_impl(size, 0, $kind, name, $nothrow, entry_sp, entry_bp)
            }
        };
    };
}

// Extra trailing parameters are harmless in the SysV ABI: plain `new(size)`
// simply leaves them unread.
new_op!(_Znwm, AllocKind::New, false);
new_op!(_Znam, AllocKind::NewArray, false);
new_op!(_ZnwmRKSt9nothrow_t, AllocKind::New, true);
new_op!(_ZnamRKSt9nothrow_t, AllocKind::NewArray, true);
new_op!(_ZnwmSt11align_val_t, AllocKind::New, false, aligned);
new_op!(_ZnamSt11align_val_t, AllocKind::NewArray, false, aligned);
new_op!(_ZnwmSt11align_val_tRKSt9nothrow_t, AllocKind::New, true, aligned);
new_op!(_ZnamSt11align_val_tRKSt9nothrow_t, AllocKind::NewArray, true, aligned);

macro_rules! delete_op {
    ($name:ident, $how:expr) => {
        const _: () = {
            export_hook!($name => imp);
            unsafe extern "C" fn imp(p: *mut c_void, _size_or_align: size_t, _more: size_t, entry_sp: u64, entry_bp: u64) {
                delete_impl(p, $how, entry_sp, entry_bp)
            }
        };
    };
}

delete_op!(_ZdlPv, ReleaseKind::Delete);
delete_op!(_ZdaPv, ReleaseKind::DeleteArray);
delete_op!(_ZdlPvm, ReleaseKind::Delete);
delete_op!(_ZdaPvm, ReleaseKind::DeleteArray);
delete_op!(_ZdlPvRKSt9nothrow_t, ReleaseKind::Delete);
delete_op!(_ZdaPvRKSt9nothrow_t, ReleaseKind::DeleteArray);
delete_op!(_ZdlPvSt11align_val_t, ReleaseKind::Delete);
delete_op!(_ZdaPvSt11align_val_t, ReleaseKind::DeleteArray);
delete_op!(_ZdlPvmSt11align_val_t, ReleaseKind::Delete);
delete_op!(_ZdaPvmSt11align_val_t, ReleaseKind::DeleteArray);
delete_op!(_ZdlPvSt11align_val_tRKSt9nothrow_t, ReleaseKind::Delete);
delete_op!(_ZdaPvSt11align_val_tRKSt9nothrow_t, ReleaseKind::DeleteArray);
