//! glibc's `__libc_malloc` family, which a program that replaces `malloc`
//! itself calls to reach the real allocator (the seed article's first method:
//! its own `malloc` and `free` over `__libc_malloc` and `__libc_free`). Such a
//! program's `malloc` wins over ours, and so does libc's calls to it; all of
//! its memory then arrives here.
//!
//! leakscope's own allocator (`internal_alloc.rs`) also calls these names, and
//! with ours exported its calls land here too: a call from leakscope's own
//! code (told by the return address) goes straight on, untracked, as before.

use crate::capture::Regs;
use crate::entry::export_hook;
use crate::hooks::{release, track, track_internal};
use crate::lifecycle::{mode, Mode, ACTIVE, STATE};
use crate::live;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use leakscope_format::layout::{AllocKind, ReleaseKind};
use libc::{c_void, size_t};

extern "C" {
    /// The ELF header of this library (defined by the linker).
    static __ehdr_start: u8;
}

static SELF_LO: AtomicU64 = AtomicU64::new(0);
static SELF_HI: AtomicU64 = AtomicU64::new(0);

/// This library's code range, from its own program headers (no loader call,
/// no allocation: usable from the first allocation on).
#[cold]
fn compute_self_range() -> (u64, u64) {
    let base = core::ptr::addr_of!(__ehdr_start) as u64;
    let eh = unsafe { &*(base as *const libc::Elf64_Ehdr) };
    let mut lo = u64::MAX;
    let mut hi = 0;
    for i in 0..eh.e_phnum as u64 {
        let ph = unsafe { &*((base + eh.e_phoff + i * eh.e_phentsize as u64) as *const libc::Elf64_Phdr) };
        if ph.p_type == libc::PT_LOAD && ph.p_flags & libc::PF_X != 0 {
            lo = lo.min(base + ph.p_vaddr);
            hi = hi.max(base + ph.p_vaddr + ph.p_memsz);
        }
    }
    if hi == 0 {
        lo = 0;
    }
    SELF_LO.store(lo, Ordering::Relaxed);
    SELF_HI.store(hi, Ordering::Release);
    (lo, hi)
}

/// This library's code range (start, end).
pub fn self_code_range() -> (u64, u64) {
    match SELF_HI.load(Ordering::Acquire) {
        0 => compute_self_range(),
        hi => (SELF_LO.load(Ordering::Relaxed), hi),
    }
}

/// Whether the hook was called from leakscope's own code.
#[inline]
unsafe fn from_self(entry_sp: u64) -> bool {
    let ra = *(entry_sp as *const u64);
    let (lo, hi) = match SELF_HI.load(Ordering::Acquire) {
        0 => compute_self_range(),
        hi => (SELF_LO.load(Ordering::Relaxed), hi),
    };
    ra >= lo && ra < hi
}

macro_rules! next_fn {
    ($get:ident, $slot:ident, $ty:ty, $name:literal) => {
        static $slot: AtomicUsize = AtomicUsize::new(0);
        #[inline]
        fn $get() -> $ty {
            let mut f = $slot.load(Ordering::Acquire);
            if f == 0 {
                f = unsafe { libc::dlsym(libc::RTLD_NEXT, concat!($name, "\0").as_ptr() as *const libc::c_char) }
                    as usize;
                $slot.store(f, Ordering::Release);
            }
            // libc always has it; a null here would be a loader bug, and crash like one.
            unsafe { core::mem::transmute::<usize, $ty>(f) }
        }
    };
}

type MallocFn = unsafe extern "C" fn(size_t) -> *mut c_void;
type FreeFn = unsafe extern "C" fn(*mut c_void);
type CallocFn = unsafe extern "C" fn(size_t, size_t) -> *mut c_void;
type ReallocFn = unsafe extern "C" fn(*mut c_void, size_t) -> *mut c_void;
type MemalignFn = unsafe extern "C" fn(size_t, size_t) -> *mut c_void;

next_fn!(next_malloc, NEXT_MALLOC, MallocFn, "__libc_malloc");
next_fn!(next_free, NEXT_FREE, FreeFn, "__libc_free");
next_fn!(next_calloc, NEXT_CALLOC, CallocFn, "__libc_calloc");
next_fn!(next_realloc, NEXT_REALLOC, ReallocFn, "__libc_realloc");
next_fn!(next_memalign, NEXT_MEMALIGN, MemalignFn, "__libc_memalign");

export_hook!(__libc_malloc => libc_malloc_impl);

unsafe extern "C" fn libc_malloc_impl(size: size_t, _p1: usize, _p2: usize, sp: u64, bp: u64) -> *mut c_void {
    let f = next_malloc();
    if from_self(sp) {
        return f(size);
    }
    match mode() {
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
    let f = next_calloc();
    if from_self(sp) {
        return f(n, size);
    }
    let total = n.saturating_mul(size);
    match mode() {
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
    let f = next_memalign();
    if from_self(sp) {
        return f(align, size);
    }
    match mode() {
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
    let f = next_free();
    if p.is_null() || from_self(sp) || crate::bootstrap::contains(p as *const u8) {
        if !p.is_null() && !crate::bootstrap::contains(p as *const u8) {
            f(p);
        }
        return;
    }
    match mode() {
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
    let f = next_realloc();
    if from_self(sp) {
        return f(p, size);
    }
    crate::hooks::realloc_via(p, size, AllocKind::Realloc, f, sp, bp)
}
