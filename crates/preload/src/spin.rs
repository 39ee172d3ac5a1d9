//! A spin lock on a word in the session file. Hand-written because it must
//! live in shared memory (so a fork handler can take and reset it) and must
//! never allocate or park through a global table, as parking_lot would.

use core::sync::atomic::{AtomicPtr, AtomicU32, Ordering};

/// Holds the lock it took; None when the process had one thread and none was needed.
pub struct SpinGuard<'a>(Option<&'a AtomicU32>);

/// glibc's `__libc_single_threaded`: true until the process's first
/// pthread_create (glibc clears it before the new thread exists, and only
/// glibc's own malloc reads it to skip its atomics the same way). While it is
/// true the only thread that can take a lock is the one asking, so the locked
/// instruction is skipped: it cost a stall until every pending store, often a
/// cache-missing table write, reached the cache (python3: ~5% of all time).
/// Null (lock always) until `init_single_threaded` finds it.
static SINGLE_THREADED: AtomicPtr<u8> = AtomicPtr::new(core::ptr::null_mut());

/// Look up glibc's flag (start-up, after the real functions are resolved).
pub fn init_single_threaded() {
    let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"__libc_single_threaded".as_ptr()) };
    SINGLE_THREADED.store(p as *mut u8, Ordering::Release);
}

#[inline]
fn single_threaded() -> bool {
    let p = SINGLE_THREADED.load(Ordering::Relaxed);
    !p.is_null() && unsafe { core::ptr::read_volatile(p) } != 0
}

#[inline]
pub fn lock(word: &AtomicU32) -> SpinGuard<'_> {
    if single_threaded() {
        return SpinGuard(None);
    }
    if word.compare_exchange_weak(0, 1, Ordering::Acquire, Ordering::Relaxed).is_err() {
        lock_slow(word);
    }
    SpinGuard(Some(word))
}

#[cold]
#[inline(never)]
fn lock_slow(word: &AtomicU32) {
    let mut spins = 0u32;
    loop {
        if word.load(Ordering::Relaxed) == 0
            && word.compare_exchange_weak(0, 1, Ordering::Acquire, Ordering::Relaxed).is_ok()
        {
            return;
        }
        spins += 1;
        if spins < 100 {
            core::hint::spin_loop();
        } else {
            // The holder may be descheduled (2 cores): let it run.
            unsafe { libc::syscall(libc::SYS_sched_yield) };
        }
    }
}

impl Drop for SpinGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        if let Some(word) = self.0 {
            word.store(0, Ordering::Release);
        }
    }
}

/// Take a lock without a guard (fork's prepare handler holds all of them).
/// Always really taken: the holder releases it with [`release_raw`] later,
/// perhaps after the process gained threads.
pub fn acquire_raw(word: &AtomicU32) {
    if word.compare_exchange_weak(0, 1, Ordering::Acquire, Ordering::Relaxed).is_err() {
        lock_slow(word);
    }
}

pub fn release_raw(word: &AtomicU32) {
    word.store(0, Ordering::Release);
}
