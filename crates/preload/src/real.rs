//! The next definition of each function we interpose (`dlsym(RTLD_NEXT)`,
//! the seed article's fifth method), so a program that brings its own
//! allocator (jemalloc, tcmalloc) keeps it.

use core::sync::atomic::{AtomicUsize, Ordering};
use libc::{c_char, c_int, c_void, size_t};

pub type MallocFn = unsafe extern "C" fn(size_t) -> *mut c_void;
pub type FreeFn = unsafe extern "C" fn(*mut c_void);
pub type CallocFn = unsafe extern "C" fn(size_t, size_t) -> *mut c_void;
pub type ReallocFn = unsafe extern "C" fn(*mut c_void, size_t) -> *mut c_void;
pub type PosixMemalignFn = unsafe extern "C" fn(*mut *mut c_void, size_t, size_t) -> c_int;
pub type AlignedFn = unsafe extern "C" fn(size_t, size_t) -> *mut c_void;

macro_rules! real_fns {
    ($($slot:ident : $ty:ty = $name:literal;)*) => {
        $(static $slot: AtomicUsize = AtomicUsize::new(0);)*

        /// Resolve every function; true when the mandatory ones were found.
        pub fn resolve_all() -> bool {
            $(
                let f = unsafe { libc::dlsym(libc::RTLD_NEXT, concat!($name, "\0").as_ptr() as *const c_char) };
                $slot.store(f as usize, Ordering::Release);
            )*
            MALLOC.load(Ordering::Relaxed) != 0 && FREE.load(Ordering::Relaxed) != 0
                && CALLOC.load(Ordering::Relaxed) != 0 && REALLOC.load(Ordering::Relaxed) != 0
        }
    };
}

real_fns! {
    MALLOC: MallocFn = "malloc";
    FREE: FreeFn = "free";
    CALLOC: CallocFn = "calloc";
    REALLOC: ReallocFn = "realloc";
    POSIX_MEMALIGN: PosixMemalignFn = "posix_memalign";
    ALIGNED_ALLOC: AlignedFn = "aligned_alloc";
    MEMALIGN: AlignedFn = "memalign";
    VALLOC: MallocFn = "valloc";
    PVALLOC: MallocFn = "pvalloc";
    LIBC_MALLOC: MallocFn = "__libc_malloc";
    LIBC_FREE: FreeFn = "__libc_free";
    LIBC_CALLOC: CallocFn = "__libc_calloc";
    LIBC_REALLOC: ReallocFn = "__libc_realloc";
    LIBC_MEMALIGN: AlignedFn = "__libc_memalign";
}

#[inline]
fn get(slot: &AtomicUsize) -> usize {
    slot.load(Ordering::Acquire)
}


// Each accessor returns None until `resolve_all` ran (start-up, inside dlsym).
#[inline]
pub fn malloc() -> Option<MallocFn> {
    let f = get(&MALLOC);
    (f != 0).then(|| unsafe { core::mem::transmute::<usize, MallocFn>(f) })
}
#[inline]
pub fn free() -> Option<FreeFn> {
    let f = get(&FREE);
    (f != 0).then(|| unsafe { core::mem::transmute::<usize, FreeFn>(f) })
}
#[inline]
pub fn calloc() -> Option<CallocFn> {
    let f = get(&CALLOC);
    (f != 0).then(|| unsafe { core::mem::transmute::<usize, CallocFn>(f) })
}
#[inline]
pub fn realloc() -> Option<ReallocFn> {
    let f = get(&REALLOC);
    (f != 0).then(|| unsafe { core::mem::transmute::<usize, ReallocFn>(f) })
}
#[inline]
pub fn posix_memalign() -> Option<PosixMemalignFn> {
    let f = get(&POSIX_MEMALIGN);
    (f != 0).then(|| unsafe { core::mem::transmute::<usize, PosixMemalignFn>(f) })
}
#[inline]
pub fn aligned_alloc() -> Option<AlignedFn> {
    let f = get(&ALIGNED_ALLOC);
    (f != 0).then(|| unsafe { core::mem::transmute::<usize, AlignedFn>(f) })
}
#[inline]
pub fn memalign() -> Option<AlignedFn> {
    let f = get(&MEMALIGN);
    (f != 0).then(|| unsafe { core::mem::transmute::<usize, AlignedFn>(f) })
}
#[inline]
pub fn valloc() -> Option<MallocFn> {
    let f = get(&VALLOC);
    (f != 0).then(|| unsafe { core::mem::transmute::<usize, MallocFn>(f) })
}
#[inline]
pub fn pvalloc() -> Option<MallocFn> {
    let f = get(&PVALLOC);
    (f != 0).then(|| unsafe { core::mem::transmute::<usize, MallocFn>(f) })
}

// glibc's own entry points, for leakscope's internal allocator.
#[inline]
pub fn libc_malloc() -> Option<MallocFn> {
    let f = get(&LIBC_MALLOC);
    (f != 0).then(|| unsafe { core::mem::transmute::<usize, MallocFn>(f) })
}
#[inline]
pub fn libc_free() -> Option<FreeFn> {
    let f = get(&LIBC_FREE);
    (f != 0).then(|| unsafe { core::mem::transmute::<usize, FreeFn>(f) })
}
#[inline]
pub fn libc_calloc() -> Option<CallocFn> {
    let f = get(&LIBC_CALLOC);
    (f != 0).then(|| unsafe { core::mem::transmute::<usize, CallocFn>(f) })
}
#[inline]
pub fn libc_realloc() -> Option<ReallocFn> {
    let f = get(&LIBC_REALLOC);
    (f != 0).then(|| unsafe { core::mem::transmute::<usize, ReallocFn>(f) })
}
#[inline]
pub fn libc_memalign() -> Option<AlignedFn> {
    let f = get(&LIBC_MEMALIGN);
    (f != 0).then(|| unsafe { core::mem::transmute::<usize, AlignedFn>(f) })
}

/// Look up an optional symbol later (C++ runtime, glibc's freeres), or 0.
pub fn lookup(name_nul: &[u8]) -> usize {
    unsafe { libc::dlsym(libc::RTLD_NEXT, name_nul.as_ptr() as *const c_char) as usize }
}
