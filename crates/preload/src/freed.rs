//! Recently freed blocks, kept to explain a later double free (which block
//! it was, where it was allocated and first freed).
//!
//! Each thread writes its own ring, without a lock, in the order it frees.
//! The first design had a ring per live-table shard: 64 rings filling at once,
//! so the line of a ring's next slot had usually left the cache, and the
//! store that missed held up the next allocation's lock instruction (python3
//! ran 10% slower for it). A thread's own ring is written sequentially: hot
//! lines, prefetched by the hardware.
//!
//! Rings are never freed: a thread that ends leaves its ring (and its
//! history) to the next thread that starts. Another thread reads a ring only
//! to explain a double free; each slot carries a sequence number, odd while
//! it is being written, so a reader never takes a half-written entry.
//!
//! The rings live in leakscope's private memory, not the session file: only
//! the running process uses them.

use core::cell::UnsafeCell;
use core::sync::atomic::{fence, AtomicBool, AtomicPtr, AtomicU64, Ordering};
use leakscope_format::layout::{FreedEntry, LiveEntry, ReleaseKind};

/// Frees remembered per thread.
const RING: usize = 1024;

struct Slot {
    seq: AtomicU64,
    entry: UnsafeCell<FreedEntry>,
}

pub struct Ring {
    /// Next ring in the registry (set before the ring is published, never changed).
    next_ring: *mut Ring,
    /// A running thread writes this ring.
    owned: AtomicBool,
    /// Entries written so far; the next goes to slot `written % RING`.
    written: AtomicU64,
    slots: [Slot; RING],
}

/// Every ring ever made, newest first.
static RINGS: AtomicPtr<Ring> = AtomicPtr::new(core::ptr::null_mut());

fn all_rings() -> impl Iterator<Item = &'static Ring> {
    let mut p = RINGS.load(Ordering::Acquire);
    core::iter::from_fn(move || {
        let r = unsafe { p.as_ref()? };
        p = r.next_ring;
        Some(r)
    })
}

/// A ring for the calling thread: one left by a thread that ended, or a new
/// one. Call inside a hook guard (it may allocate).
#[cold]
pub fn adopt_or_make() -> &'static Ring {
    for r in all_rings() {
        if !r.owned.load(Ordering::Relaxed)
            && r.owned.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_ok()
        {
            return r;
        }
    }
    let mut b: Box<core::mem::MaybeUninit<Ring>> = Box::new_zeroed();
    let r = unsafe {
        (*b.as_mut_ptr()).owned = AtomicBool::new(true);
        &mut *Box::into_raw(b.assume_init())
    };
    let mut head = RINGS.load(Ordering::Relaxed);
    loop {
        r.next_ring = head;
        match RINGS.compare_exchange_weak(head, r, Ordering::Release, Ordering::Relaxed) {
            Ok(_) => return r,
            Err(now) => head = now,
        }
    }
}

impl Ring {
    /// The owning thread has ended (or, in a fork child, does not exist).
    pub fn release(&self) {
        self.owned.store(false, Ordering::Release);
    }

    /// Remember the free of the block `e` at `addr`. Only the owner calls this.
    #[inline]
    pub fn remember(&self, addr: u64, e: &LiveEntry, free_stack: u32, release: ReleaseKind) {
        let n = self.written.load(Ordering::Relaxed);
        let slot = &self.slots[n as usize % RING];
        let seq = slot.seq.load(Ordering::Relaxed);
        slot.seq.store(seq + 1, Ordering::Relaxed);
        fence(Ordering::Release);
        unsafe {
            core::ptr::write_volatile(
                slot.entry.get(),
                FreedEntry {
                    addr,
                    size: e.size(),
                    alloc_stack: e.stack(),
                    free_stack,
                    alloc_kind: e.kind() as u8,
                    release_kind: release as u8,
                    _pad: [0; 6],
                },
            )
        };
        slot.seq.store(seq + 2, Ordering::Release);
        self.written.store(n + 1, Ordering::Release);
    }

    /// The most recent free of `addr` this ring still holds.
    fn find(&self, addr: u64) -> Option<FreedEntry> {
        let n = self.written.load(Ordering::Acquire);
        for back in 1..=n.min(RING as u64) {
            let slot = &self.slots[((n - back) % RING as u64) as usize];
            let before = slot.seq.load(Ordering::Acquire);
            if before % 2 == 1 {
                continue;
            }
            let e = unsafe { core::ptr::read_volatile(slot.entry.get()) };
            fence(Ordering::Acquire);
            if slot.seq.load(Ordering::Relaxed) == before && e.addr == addr {
                return Some(e);
            }
        }
        None
    }
}

// Shared between threads: writes are published through `seq` and `written`.
unsafe impl Sync for Ring {}

/// The most recent free of `addr` remembered: in `own` (the calling
/// thread's ring) first, then in any other thread's. Frees in different
/// threads are not ordered against each other; any of them explains the block.
pub fn find(own: Option<&Ring>, addr: u64) -> Option<FreedEntry> {
    if let Some(found) = own.and_then(|r| r.find(addr)) {
        return Some(found);
    }
    let own_ptr = own.map_or(core::ptr::null(), |r| r as *const Ring);
    all_rings().filter(|r| !core::ptr::eq(*r, own_ptr)).find_map(|r| r.find(addr))
}

/// In a fork child: only the forking thread exists, so every other ring is
/// free for the child's new threads (their history stays).
pub fn release_all_but(own: Option<&Ring>) {
    let own_ptr = own.map_or(core::ptr::null(), |r| r as *const Ring);
    for r in all_rings().filter(|r| !core::ptr::eq(*r, own_ptr)) {
        r.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use leakscope_format::layout::AllocKind;

    #[test]
    fn a_ring_finds_the_latest_free_of_an_address_and_forgets_old_ones() {
        let ring = adopt_or_make();
        let block = |stack| LiveEntry::new(0x1000, 24, AllocKind::Malloc, 0, stack);
        ring.remember(0x1000, &block(7), 70, ReleaseKind::Free);
        ring.remember(0x2000, &block(8), 80, ReleaseKind::Free);
        ring.remember(0x1000, &block(9), 90, ReleaseKind::Free);
        let found = find(Some(ring), 0x1000).unwrap();
        assert_eq!((found.alloc_stack, found.free_stack, found.size), (9, 90, 24));
        for i in 0..RING as u64 {
            ring.remember(0x10_0000 + 16 * i, &block(1), 1, ReleaseKind::Free);
        }
        assert!(find(Some(ring), 0x1000).is_none());
        assert!(find(Some(ring), 0x10_0000).is_some());
        // A ring given up is still searched, and can be adopted again.
        ring.release();
        assert!(find(None, 0x10_0000).is_some());
        assert!(adopt_or_make().owned.load(Ordering::Relaxed));
    }
}
