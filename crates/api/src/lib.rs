//! Talk to leakscope from a Rust program: the Rust face of `leakscope.h`.
//!
//! ```no_run
//! // Allocations made while the guard lives are never reported as leaks.
//! let cache = {
//!     let _quiet = leakscope_api::disable();
//!     Box::leak(Box::new([0u8; 4096]))
//! };
//! // Look for leaks now; `leakscope run` prints their details.
//! let lost = leakscope_api::check();
//! # let _ = (cache, lost);
//! ```
//!
//! Every function is a no-op when the program does not run under leakscope:
//! the library's functions are looked up by name (`dlsym`) on first use, so
//! nothing links against leakscope and nothing changes when it is absent.
//! [`is_active`] tells which case this is.
//!
//! Tracing state is process-wide and nests, as in C: `disable` twice needs
//! two guards dropped. `leakscope run --start-disabled` starts the program
//! with tracing off; an [`enable`] guard turns it on for a while.

#![forbid(unsafe_op_in_unsafe_fn)]

use std::ffi::{c_char, c_int, c_ulong, c_void, CStr};
use std::sync::atomic::{AtomicUsize, Ordering};

extern "C" {
    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
}

/// glibc's RTLD_DEFAULT: search the whole process.
const RTLD_DEFAULT: *mut c_void = std::ptr::null_mut();
/// A slot not looked up yet (never a function's address).
const UNRESOLVED: usize = usize::MAX;

struct Sym {
    addr: AtomicUsize,
    name: &'static CStr,
}

impl Sym {
    const fn new(name: &'static CStr) -> Sym {
        Sym { addr: AtomicUsize::new(UNRESOLVED), name }
    }

    /// The function's address, or None without leakscope.
    fn get(&self) -> Option<usize> {
        let mut a = self.addr.load(Ordering::Acquire);
        if a == UNRESOLVED {
            // SAFETY: dlsym with a NUL-terminated name only reads it.
            a = unsafe { dlsym(RTLD_DEFAULT, self.name.as_ptr()) } as usize;
            self.addr.store(a, Ordering::Release);
        }
        (a != 0).then_some(a)
    }
}

static DISABLE: Sym = Sym::new(c"leakscope_disable");
static ENABLE: Sym = Sym::new(c"leakscope_enable");
static CHECK: Sym = Sym::new(c"leakscope_check");
static IGNORE: Sym = Sym::new(c"leakscope_ignore");
static IS_ACTIVE: Sym = Sym::new(c"leakscope_is_active");

fn call_void(s: &Sym) {
    if let Some(f) = s.get() {
        // SAFETY: leakscope defines these as `extern "C" fn()`.
        let f: extern "C" fn() = unsafe { std::mem::transmute(f) };
        f();
    }
}

/// Whether the program runs under leakscope (`leakscope run`), tracing on or off.
pub fn is_active() -> bool {
    IS_ACTIVE.get().is_some_and(|f| {
        // SAFETY: `int leakscope_is_active(void)`.
        let f: extern "C" fn() -> c_int = unsafe { std::mem::transmute(f) };
        f() != 0
    })
}

/// Look for leaks now (a reachability scan of the whole process) and go on.
/// Returns how many of the program's blocks are lost; `leakscope run` prints
/// their details while the program keeps running. 0 without leakscope.
pub fn check() -> u64 {
    CHECK.get().map_or(0, |f| {
        // SAFETY: `unsigned long leakscope_check(void)`.
        let f: extern "C" fn() -> c_ulong = unsafe { std::mem::transmute(f) };
        f() as u64
    })
}

/// Never report the heap block `ptr` points to (at its start or inside it)
/// as a leak; what it points to counts as reachable. True when `ptr` is in a
/// live block (false without leakscope).
pub fn ignore<T: ?Sized>(ptr: *const T) -> bool {
    IGNORE.get().is_some_and(|f| {
        // SAFETY: `int leakscope_ignore(const void *)`; it only looks the address up.
        let f: extern "C" fn(*const c_void) -> c_int = unsafe { std::mem::transmute(f) };
        f(ptr as *const c_void) != 0
    })
}

/// `Box::leak`, telling leakscope the leak is on purpose.
pub fn leak<T: ?Sized>(b: Box<T>) -> &'static mut T {
    let r = Box::leak(b);
    ignore(r as *const T);
    r
}

/// Turns tracing off until the guard is dropped: blocks allocated meanwhile
/// (on any thread) are never reported as leaks. Frees are still checked.
#[must_use = "tracing is turned back on when the guard is dropped"]
pub fn disable() -> Disabled {
    call_void(&DISABLE);
    Disabled(())
}

/// Turns tracing on until the guard is dropped: for a program started with
/// `leakscope run --start-disabled`, or inside a [`disable`] guard.
#[must_use = "tracing is turned back off when the guard is dropped"]
pub fn enable() -> Enabled {
    call_void(&ENABLE);
    Enabled(())
}

/// Runs `f` with tracing off.
pub fn without_tracing<R>(f: impl FnOnce() -> R) -> R {
    let _g = disable();
    f()
}

/// Guard of [`disable`].
#[derive(Debug)]
pub struct Disabled(());

impl Drop for Disabled {
    fn drop(&mut self) {
        call_void(&ENABLE);
    }
}

/// Guard of [`enable`].
#[derive(Debug)]
pub struct Enabled(());

impl Drop for Enabled {
    fn drop(&mut self) {
        call_void(&DISABLE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_is_a_no_op_without_leakscope() {
        assert!(!is_active());
        assert_eq!(check(), 0);
        let b = Box::new(5u32);
        assert!(!ignore(&*b as *const u32));
        {
            let _d = disable();
            let _e = enable();
        }
        assert_eq!(without_tracing(|| 7), 7);
        let leaked = leak(Box::new([1u8; 3]));
        assert_eq!(leaked[2], 1);
    }
}
