//! The region table: the program's memory mappings (mmap, mremap, shmat)
//! still mapped, and the log of shared-memory events (SysV and POSIX
//! creations and removals, memfds, unmappings of regions inherited at fork).
//! Both live in the session file (`layout::MapTable`), so the CLI reads them
//! even after SIGKILL.
//!
//! One spin lock guards both: mapping calls are rare next to malloc, and
//! each is a system call that costs far more than the table work. Regions are
//! kept sorted by *descending* start address, because mmap hands out
//! addresses top-down: a new region usually goes at the end of the array and
//! the most recent one is unmapped from there, so the common case moves
//! nothing.
//!
//! Locking rules: nothing here captures a stack, calls the loader or calls
//! into the program's allocator while holding the lock. A call that reaches
//! a hook while the thread is already inside leakscope (the hook guard is set:
//! a signal handler interrupting a hook, or libc working for leakscope) only
//! *tries* the lock (see [`try_forget`]): it may be this very thread that
//! holds it.

use crate::session;
use crate::spin;
use core::sync::atomic::{AtomicU32, Ordering};
use leakscope_format::layout::{region_flags, shm_event, MapTable, RegionRecord, ShmEvent};

const INITIAL_REGIONS: u64 = 256;
const INITIAL_EVENTS: u64 = 64;
/// Pieces of a moved region carried over by one mremap (a single kernel VMA
/// almost always holds one of ours; more are dropped).
const MAX_MOVED: usize = 16;

#[inline]
fn table() -> &'static MapTable {
    &session::header().maps
}

struct Locked(&'static AtomicU32);

impl Drop for Locked {
    #[inline]
    fn drop(&mut self) {
        spin::release_raw(self.0);
    }
}

#[inline]
fn lock_table() -> Locked {
    let t = table();
    spin::acquire_raw(&t.lock);
    Locked(&t.lock)
}

#[inline]
fn try_lock_table() -> Option<Locked> {
    let t = table();
    t.lock.compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed).ok().map(|_| Locked(&t.lock))
}

/// Counters are only written under the lock.
#[inline]
fn bump(c: &core::sync::atomic::AtomicU64) {
    c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

#[inline]
fn records(t: &MapTable) -> (*mut RegionRecord, usize, usize) {
    let off = t.table_off.load(Ordering::Relaxed);
    if off == 0 {
        return (core::ptr::null_mut(), 0, 0);
    }
    (session::at::<RegionRecord>(off), t.len.load(Ordering::Relaxed) as usize, t.capacity.load(Ordering::Relaxed) as usize)
}

/// First index whose region starts below `end` (the array is sorted by descending start).
fn first_below(recs: *const RegionRecord, len: usize, end: u64) -> usize {
    let (mut lo, mut hi) = (0usize, len);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if unsafe { (*recs.add(mid)).start } >= end {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// Make room for `want` regions. Called with the lock held.
fn reserve(t: &MapTable, want: usize) -> bool {
    let (old, len, cap) = records(t);
    if want <= cap {
        return true;
    }
    let mut new_cap = if cap == 0 { INITIAL_REGIONS as usize } else { cap * 2 };
    while new_cap < want {
        new_cap *= 2;
    }
    let size = core::mem::size_of::<RegionRecord>();
    let Some(off) = session::carve((new_cap * size) as u64, 64) else { return false };
    let new = session::at::<RegionRecord>(off);
    if len > 0 {
        unsafe { core::ptr::copy_nonoverlapping(old, new, len) };
    }
    let old_off = t.table_off.load(Ordering::Relaxed);
    t.capacity.store(new_cap as u64, Ordering::Release);
    t.table_off.store(off, Ordering::Release);
    if old_off != 0 {
        session::discard(old_off, (cap * size) as u64);
    }
    true
}

/// Append an event. Called with the lock held; fills in `seq` and `pid`.
fn push_event_locked(t: &MapTable, mut ev: ShmEvent) {
    let mut off = t.events_off.load(Ordering::Relaxed);
    let cap = t.events_cap.load(Ordering::Relaxed);
    let len = t.events_len.load(Ordering::Relaxed);
    let size = core::mem::size_of::<ShmEvent>() as u64;
    if off == 0 || len == cap {
        let new_cap = if cap == 0 { INITIAL_EVENTS } else { cap * 2 };
        let Some(new) = session::carve(new_cap * size, 64) else { return };
        if off != 0 {
            unsafe { core::ptr::copy_nonoverlapping(session::at::<ShmEvent>(off), session::at::<ShmEvent>(new), len as usize) };
        }
        t.events_cap.store(new_cap, Ordering::Release);
        t.events_off.store(new, Ordering::Release);
        if off != 0 {
            session::discard(off, cap * size);
        }
        off = new;
    }
    let h = session::header();
    ev.seq = h.event_seq.fetch_add(1, Ordering::Relaxed);
    ev.pid = h.pid;
    unsafe { *session::at::<ShmEvent>(off + len * size) = ev };
    t.events_len.store(len + 1, Ordering::Release);
}

/// Replace whatever overlaps `[s, e)` with `new` (when given, it must be
/// `[s, e)`). Regions cut into keep their outer parts. With `log_inherited`,
/// every removed part of a region inherited at fork is logged (the tree
/// combines those: an inherited region unmapped by any process is not leaked).
/// Called with the lock held. False when the session file is full.
fn splice_locked(t: &MapTable, s: u64, e: u64, new: Option<&RegionRecord>, log_inherited: bool) -> bool {
    if e <= s {
        return true;
    }
    let (recs, len, _) = records(t);
    let lo = first_below(recs, len, e);
    let mut hi = lo;
    while hi < len && unsafe { (*recs.add(hi)).end() } > s {
        hi += 1;
    }
    let mut pieces = [RegionRecord::default(); 3];
    let mut n = 0;
    if lo < hi {
        let top = unsafe { *recs.add(lo) };
        if top.end() > e {
            let mut upper = top;
            upper.start = e;
            upper.len = top.end() - e;
            upper.file_offset += e - top.start;
            pieces[n] = upper;
            n += 1;
        }
    }
    if let Some(r) = new {
        pieces[n] = *r;
        n += 1;
    }
    if lo < hi {
        let bottom = unsafe { *recs.add(hi - 1) };
        if bottom.start < s {
            let mut lower = bottom;
            lower.len = s - bottom.start;
            pieces[n] = lower;
            n += 1;
        }
        if log_inherited {
            for i in lo..hi {
                let r = unsafe { *recs.add(i) };
                if r.flags & region_flags::INHERITED != 0 {
                    let a = r.start.max(s);
                    let b = r.end().min(e);
                    push_event_locked(
                        t,
                        ShmEvent {
                            what: shm_event::INHERITED_UNMAP,
                            addr: a,
                            size: b - a,
                            origin_pid: r.creator_pid,
                            origin_serial: r.serial,
                            shmid: r.shmid,
                            key: r.key,
                            ..ShmEvent::default()
                        },
                    );
                }
            }
        }
    }
    if n == 0 && lo == hi {
        return true;
    }
    let new_len = len - (hi - lo) + n;
    if !reserve(t, new_len) {
        return false;
    }
    let (recs, _, _) = records(t);
    unsafe {
        if hi < len && lo + n != hi {
            core::ptr::copy(recs.add(hi), recs.add(lo + n), len - hi);
        }
        for (i, p) in pieces[..n].iter().enumerate() {
            *recs.add(lo + i) = *p;
        }
    }
    t.len.store(new_len as u64, Ordering::Release);
    true
}

/// The next region's number in this process. The exec generation is in its
/// top byte: a child forked before an exec names its parent's regions apart
/// from those of the image that pid runs later. Called with the lock held.
fn next_serial(t: &MapTable) -> u32 {
    let n = t.serial.load(Ordering::Relaxed);
    t.serial.store(n + 1, Ordering::Relaxed);
    (session::header().exec_index << 24) | (n as u32 & 0xff_ffff)
}

/// Record a region the program mapped (replacing anything it overlaps: a
/// MAP_FIXED mapping replaces what was there).
pub fn insert(mut r: RegionRecord) -> bool {
    let t = table();
    let h = session::header();
    let _g = lock_table();
    r.creator_pid = h.pid;
    r.serial = next_serial(t);
    bump(&t.maps);
    splice_locked(t, r.start, r.end(), Some(&r), true)
}

/// The program unmapped `[s, e)` (munmap).
pub fn remove(s: u64, e: u64) {
    let t = table();
    let _g = lock_table();
    bump(&t.unmaps);
    if t.len.load(Ordering::Relaxed) != 0 {
        splice_locked(t, s, e, None, true);
    }
}

/// `[s, e)` was mapped or unmapped by leakscope or by libc working for it
/// (the hook guard was set): forget any region of the program's there,
/// without waiting for the lock, which this thread may hold already.
pub fn try_forget(s: u64, e: u64) {
    let t = table();
    if t.len.load(Ordering::Relaxed) == 0 {
        return;
    }
    if let Some(_g) = try_lock_table() {
        splice_locked(t, s, e, None, true);
    }
}

/// The SysV attachment at `addr`: its length (shmdt detaches exactly that).
pub fn shmat_len(addr: u64) -> Option<u64> {
    let t = table();
    let _g = lock_table();
    let (recs, len, _) = records(t);
    let i = first_below(recs, len, addr + 1);
    if i < len {
        let r = unsafe { *recs.add(i) };
        if r.start == addr && r.kind == leakscope_format::layout::map_kind::SHMAT {
            return Some(r.len);
        }
    }
    None
}

/// The program detached the SysV segment at `[s, e)`.
pub fn remove_detached(s: u64, e: u64) {
    remove(s, e)
}

/// Run `do_mremap` (the real mremap of `[old, old + old_len)` to `new_len`
/// bytes) and, if it succeeded, record the move or resize. The lock is held
/// across the call: once the kernel has freed the old range another thread
/// may be given its addresses by mmap, and its new region must not be taken
/// for the old one.
pub fn remap_with(old: u64, old_len: u64, new_len: u64, dont_unmap: bool, do_mremap: impl FnOnce() -> u64) -> u64 {
    let _g = lock_table();
    let new = do_mremap();
    if new != libc::MAP_FAILED as u64 {
        let _e = crate::hooks_mmap::SaveErrno::new();
        remap_locked(old, old_len, new, new_len, dont_unmap);
    }
    new
}

/// mremap moved or resized `[old, old + old_len)` to `[new, new + new_len)`.
/// Regions keep their creation stack and identity (a region inherited at fork
/// stays the parent's). Called with the lock held.
fn remap_locked(old: u64, old_len: u64, new: u64, new_len: u64, dont_unmap: bool) {
    let t = table();
    let h = session::header();
    bump(&t.maps);
    let (recs, len, _) = records(t);
    if old_len == 0 {
        // A second mapping of the same shared memory: a new region, made here.
        let i = first_below(recs, len, old + 1);
        let src = (i < len).then(|| unsafe { *recs.add(i) }).filter(|r| r.end() > old);
        splice_locked(t, new, new + new_len, None, true);
        if let Some(mut r) = src {
            r.file_offset += old - r.start;
            r.start = new;
            r.len = new_len;
            r.flags &= !region_flags::INHERITED;
            r.creator_pid = h.pid;
            r.serial = next_serial(t);
            splice_locked(t, new, new + new_len, Some(&r), true);
        }
        return;
    }
    let old_end = old + old_len;
    if new == old {
        if new_len < old_len {
            splice_locked(t, old + new_len, old_end, None, true);
        } else if new_len > old_len {
            // The region holding the old last byte grows into the new tail.
            let i = first_below(recs, len, old_end);
            let last = (i < len).then(|| unsafe { *recs.add(i) }).filter(|r| r.end() == old_end);
            splice_locked(t, old_end, old + new_len, None, true);
            if let Some(mut r) = last {
                let s = r.start;
                r.len = old + new_len - s;
                splice_locked(t, s, r.end(), Some(&r), false);
            }
        }
        return;
    }
    // Moved: take the pieces out (clipped to the old range), put them at the new place.
    let mut moved = [RegionRecord::default(); MAX_MOVED];
    let mut n = 0;
    let lo = first_below(recs, len, old_end);
    let mut i = lo;
    while i < len && n < MAX_MOVED {
        let r = unsafe { *recs.add(i) };
        if r.end() <= old {
            break;
        }
        let mut p = r;
        if p.start < old {
            p.file_offset += old - p.start;
            p.len -= old - p.start;
            p.start = old;
        }
        if p.end() > old_end {
            p.len = old_end - p.start;
        }
        moved[n] = p;
        n += 1;
        i += 1;
    }
    if !dont_unmap {
        splice_locked(t, old, old_end, None, false);
    }
    let new_end = new + new_len;
    splice_locked(t, new, new_end, None, true);
    for p in &mut moved[..n] {
        let reached_end = p.end() == old_end;
        p.start = p.start - old + new;
        if p.start >= new_end {
            continue;
        }
        p.len = if reached_end { new_end - p.start } else { p.len.min(new_end - p.start) };
        splice_locked(t, p.start, p.end(), Some(p), false);
    }
}

/// Log a shared-memory event (creation, removal, memfd).
pub fn event(ev: ShmEvent) {
    let t = table();
    let _g = lock_table();
    push_event_locked(t, ev);
}

/// Copy `bytes` into the session file: (offset, length), (0, 0) when full.
pub fn store_name(bytes: &[u8]) -> (u64, u32) {
    if bytes.is_empty() {
        return (0, 0);
    }
    let n = bytes.len().min(4096);
    match session::carve(n as u64, 1) {
        Some(off) => {
            unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), session::at::<u8>(off), n) };
            (off, n as u32)
        }
        None => (0, 0),
    }
}

/// fork(): the forking thread holds the lock so the child copies a consistent table.
pub fn lock() {
    spin::acquire_raw(&table().lock);
}

pub fn unlock() {
    spin::release_raw(&table().lock);
}

/// In the child after fork (lock held): every region so far is the parent's,
/// and so is every event so far.
pub fn mark_all_inherited() {
    let t = table();
    let (recs, len, _) = records(t);
    for i in 0..len {
        unsafe { (*recs.add(i)).flags |= region_flags::INHERITED };
    }
    t.events_inherited.store(t.events_len.load(Ordering::Relaxed), Ordering::Relaxed);
    t.maps.store(0, Ordering::Relaxed);
    t.unmaps.store(0, Ordering::Relaxed);
}
