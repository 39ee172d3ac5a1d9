//! glibc's `__libc_malloc` family, which a program that replaces `malloc`
//! itself calls to reach the real allocator (the seed article's first method:
//! its own `malloc` and `free` over `__libc_malloc` and `__libc_free`). Such a
//! program's `malloc` wins over ours, and so does libc's calls to it; all of
//! its memory then arrives here.
//!
//! leakscope's own allocator (`internal_alloc.rs`) reaches glibc's functions
//! through pointers looked up past this library, never through these exports.

use crate::capture::Regs;
use crate::entry::export_hook;
use crate::hooks::{release, track, track_internal};
use crate::lifecycle::{mode, Mode, ACTIVE, STATE};
use crate::{live, real};
use core::sync::atomic::Ordering;
use leakscope_format::layout::{AllocKind, ReleaseKind};
use libc::{c_void, size_t};

export_hook!(__libc_malloc => libc_malloc_impl);

unsafe extern "C" fn libc_malloc_impl(size: size_t, _p1: usize, _p2: usize, sp: u64, bp: u64) -> *mut c_void {
    let m = mode();
    let Some(f) = real::libc_malloc() else { return crate::bootstrap::alloc(size, 16) as *mut c_void };
    match m {
        Mode::Track(_g) => {
            let p = f(size);
            track(p, size, AllocKind::Malloc, &Regs::at_entry(sp, bp));
            p
        }
        Mode::Nested => {
            let p = f(size);
            track_internal(p, size, AllocKind::Malloc);
            p
        }
        Mode::Passthrough => f(size),
    }
}

export_hook!(__libc_calloc => libc_calloc_impl);

unsafe extern "C" fn libc_calloc_impl(n: size_t, size: size_t, _p2: usize, sp: u64, bp: u64) -> *mut c_void {
    let total = n.saturating_mul(size);
    let m = mode();
    let Some(f) = real::libc_calloc() else { return crate::bootstrap::alloc(total, 16) as *mut c_void };
    match m {
        Mode::Track(_g) => {
            let p = f(n, size);
            track(p, total, AllocKind::Calloc, &Regs::at_entry(sp, bp));
            p
        }
        Mode::Nested => {
            let p = f(n, size);
            track_internal(p, total, AllocKind::Calloc);
            p
        }
        Mode::Passthrough => f(n, size),
    }
}

export_hook!(__libc_memalign => libc_memalign_impl);

unsafe extern "C" fn libc_memalign_impl(align: size_t, size: size_t, _p2: usize, sp: u64, bp: u64) -> *mut c_void {
    let m = mode();
    let Some(f) = real::libc_memalign() else { return crate::bootstrap::alloc(size, align) as *mut c_void };
    match m {
        Mode::Track(_g) => {
            let p = f(align, size);
            track(p, size, AllocKind::Memalign, &Regs::at_entry(sp, bp));
            p
        }
        Mode::Nested => {
            let p = f(align, size);
            track_internal(p, size, AllocKind::Memalign);
            p
        }
        Mode::Passthrough => f(align, size),
    }
}

export_hook!(__libc_free => libc_free_impl);

unsafe extern "C" fn libc_free_impl(p: *mut c_void, _p1: usize, _p2: usize, sp: u64, bp: u64) {
    if p.is_null() || crate::bootstrap::contains(p as *const u8) {
        return;
    }
    let m = mode();
    // Not looked up yet (start-up, inside dlsym): nothing of the program's to free.
    let Some(f) = real::libc_free() else { return };
    match m {
        Mode::Track(_g) => {
            if release(p, ReleaseKind::Free, &Regs::at_entry(sp, bp)) {
                f(p);
            }
        }
        Mode::Nested => {
            if STATE.load(Ordering::Acquire) == ACTIVE {
                live::remove(p as u64);
            }
            f(p);
        }
        Mode::Passthrough => f(p),
    }
}

export_hook!(__libc_realloc => libc_realloc_impl);

unsafe extern "C" fn libc_realloc_impl(p: *mut c_void, size: size_t, _p2: usize, sp: u64, bp: u64) -> *mut c_void {
    let Some(f) = real::libc_realloc() else { return core::ptr::null_mut() };
    crate::hooks::realloc_via(p, size, AllocKind::Realloc, f, sp, bp)
}
