//! A spin lock on a word in the session file. Hand-written because it must
//! live in shared memory (so a fork handler can take and reset it) and must
//! never allocate or park through a global table, as parking_lot would.

use core::sync::atomic::{AtomicU32, Ordering};

pub struct SpinGuard<'a>(&'a AtomicU32);

#[inline]
pub fn lock(word: &AtomicU32) -> SpinGuard<'_> {
    if word.compare_exchange_weak(0, 1, Ordering::Acquire, Ordering::Relaxed).is_err() {
        lock_slow(word);
    }
    SpinGuard(word)
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
        self.0.store(0, Ordering::Release);
    }
}

/// Take a lock without a guard (fork's prepare handler holds all of them).
pub fn acquire_raw(word: &AtomicU32) {
    core::mem::forget(lock(word));
}

pub fn release_raw(word: &AtomicU32) {
    word.store(0, Ordering::Release);
}
