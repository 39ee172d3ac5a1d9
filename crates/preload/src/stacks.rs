//! The stack store: each distinct stack is written once to the session file
//! and named by a 32-bit id (its offset / 8), like LSan's StackDepot. A small
//! per-thread cache answers repeated call sites without taking a lock.

use crate::session;
use crate::spin;
use core::sync::atomic::Ordering;
use leakscope_format::layout::{stat, STAT_COUNT, hash_frames, stack_shard_of, StackRecord, StackShard, NO_STACK};

const INITIAL_CAPACITY: u64 = 1024;
const RECORD_SIZE: u64 = core::mem::size_of::<StackRecord>() as u64;

#[inline]
fn record_frames(id: u32) -> &'static [u64] {
    let rec = session::at::<StackRecord>(id as u64 * 8);
    unsafe {
        let len = (*rec).len as usize;
        core::slice::from_raw_parts(session::at::<u64>(id as u64 * 8 + RECORD_SIZE), len)
    }
}

#[inline]
fn record_hash(id: u32) -> u64 {
    unsafe { (*session::at::<StackRecord>(id as u64 * 8)).hash }
}

/// An entry of a thread's recent-stack cache. Two independent 64-bit hashes
/// identify a stack: comparing the frames themselves would read the stored
/// record, a cache miss per allocation.
#[derive(Clone, Copy, Default)]
pub struct Recent {
    hash: u64,
    hash2: u64,
    id: u32,
}

pub const HASH2_SEED: u64 = 0x6a09_e667_f3bc_c908;

/// The second hash, also outermost frame first and incremental.
#[inline]
pub fn hash2_step(outer: u64, frame: u64) -> u64 {
    (outer.rotate_left(23) ^ frame).wrapping_mul(0xff51_afd7_ed55_8ccd) ^ 0x9e37_79b9
}

pub fn hash2_frames(outermost_first: &[u64]) -> u64 {
    outermost_first.iter().fold(HASH2_SEED, |h, &f| hash2_step(h, f))
}

/// A thread's cache of recently interned stacks, direct-mapped by hash. It
/// starts small (48 KiB) and grows, up to 32768 entries, for a thread whose
/// stacks miss it often (a compiler has tens of thousands of distinct ones).
pub struct RecentStacks {
    slots: Vec<Recent>,
    /// Misses since the last growth check whose stack the shared store
    /// already had: the misses a bigger cache would have answered (a stack
    /// seen for the first time misses at any size).
    refound: u64,
}

const RECENT_MIN: usize = 2048;
const RECENT_MAX: usize = 32768;

impl RecentStacks {
    pub fn new() -> RecentStacks {
        RecentStacks { slots: vec![Recent::default(); RECENT_MIN], refound: 0 }
    }

    #[inline]
    fn slot_of(&self, hash: u64) -> usize {
        (hash as usize >> 3) & (self.slots.len() - 1)
    }

    /// Grow (keeping what it holds) if more than 1 lookup in 16 since the
    /// stats were last flushed went to the shared store for a stack it
    /// already had. Call now and then, inside a hook guard.
    pub fn grow_if_missing(&mut self, stats: &[u64; STAT_COUNT]) {
        let (hits, misses) = (stats[stat::RECENT_HITS], stats[stat::STORE_LOOKUPS]);
        let refound = core::mem::take(&mut self.refound);
        if hits + misses < 4096 || refound * 16 <= hits + misses || self.slots.len() >= RECENT_MAX {
            return;
        }
        let bigger = (self.slots.len() * 4).min(RECENT_MAX);
        let old = core::mem::replace(&mut self.slots, vec![Recent::default(); bigger]);
        for r in old.into_iter().filter(|r| r.id != NO_STACK) {
            let s = self.slot_of(r.hash);
            self.slots[s] = r;
        }
    }
}

/// Id of `frames` (outermost first), whose [`hash_frames`] is `hash` and
/// [`hash2_frames`] `hash2`.
pub fn intern(
    frames: &[u64],
    hash: u64,
    hash2: u64,
    recent: &mut RecentStacks,
    stats: &mut [u64; STAT_COUNT],
) -> u32 {
    if frames.is_empty() {
        return NO_STACK;
    }
    debug_assert_eq!(hash, hash_frames(frames));
    debug_assert_eq!(hash2, hash2_frames(frames));
    let slot = recent.slot_of(hash);
    let r = recent.slots[slot];
    if r.hash == hash && r.hash2 == hash2 && r.id != NO_STACK {
        stats[stat::RECENT_HITS] += 1;
        return r.id;
    }
    stats[stat::STORE_LOOKUPS] += 1;
    // The shared store compares whole stacks: it is the ground truth.
    let (id, existed) = intern_shared(hash, frames);
    recent.refound += existed as u64;
    recent.slots[slot] = Recent { hash, hash2, id };
    id
}

/// The stack's id in the shared store, and whether it was there already.
fn intern_shared(hash: u64, frames: &[u64]) -> (u32, bool) {
    let s: &StackShard = &session::header().stacks[stack_shard_of(hash)];
    let _g = spin::lock(&s.lock);
    if s.table_off.load(Ordering::Relaxed) == 0 && !grow(s) {
        return (NO_STACK, false);
    }
    if (s.len.load(Ordering::Relaxed) + 1) * 2 > s.capacity.load(Ordering::Relaxed) && !grow(s) {
        return (NO_STACK, false);
    }
    let t = session::at::<u64>(s.table_off.load(Ordering::Relaxed));
    let mask = s.capacity.load(Ordering::Relaxed) - 1;
    let tag = hash >> 32;
    let mut i = hash & mask;
    loop {
        let v = unsafe { *t.add(i as usize) };
        if v == 0 {
            break;
        }
        let id = v as u32;
        if v >> 32 == tag && record_frames(id) == frames {
            return (id, true);
        }
        i = (i + 1) & mask;
    }
    let Some(off) = session::carve(RECORD_SIZE + 8 * frames.len() as u64, 8) else { return (NO_STACK, false) };
    if off / 8 > u32::MAX as u64 {
        return (NO_STACK, false);
    }
    unsafe {
        let rec = session::at::<StackRecord>(off);
        (*rec).hash = hash;
        (*rec).len = frames.len() as u32;
        core::ptr::copy_nonoverlapping(frames.as_ptr(), session::at::<u64>(off + RECORD_SIZE), frames.len());
    }
    let id = (off / 8) as u32;
    unsafe { *t.add(i as usize) = (tag << 32) | id as u64 };
    s.len.fetch_add(1, Ordering::Relaxed);
    (id, false)
}

/// Double the shard's hash table (or create it). Called with the lock held.
fn grow(s: &StackShard) -> bool {
    let old_off = s.table_off.load(Ordering::Relaxed);
    let old_cap = s.capacity.load(Ordering::Relaxed);
    let new_cap = if old_off == 0 { INITIAL_CAPACITY } else { old_cap * 2 };
    let Some(new_off) = session::carve(new_cap * 8, 4096) else { return false };
    let new = session::at::<u64>(new_off);
    let mask = new_cap - 1;
    if old_off != 0 {
        let old = session::at::<u64>(old_off);
        for j in 0..old_cap {
            let v = unsafe { *old.add(j as usize) };
            if v == 0 {
                continue;
            }
            let mut i = record_hash(v as u32) & mask;
            while unsafe { *new.add(i as usize) } != 0 {
                i = (i + 1) & mask;
            }
            unsafe { *new.add(i as usize) = v };
        }
    }
    s.capacity.store(new_cap, Ordering::Release);
    s.table_off.store(new_off, Ordering::Release);
    if old_off != 0 {
        session::discard(old_off, old_cap * 8);
    }
    true
}

pub fn lock_all() {
    for s in session::header().stacks.iter() {
        spin::acquire_raw(&s.lock);
    }
}

pub fn unlock_all() {
    for s in session::header().stacks.iter() {
        spin::release_raw(&s.lock);
    }
}
