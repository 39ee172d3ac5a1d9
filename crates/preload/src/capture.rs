//! Capturing the current stack in-process with framehop (DWARF CFI from the
//! mapped `.eh_frame_hdr`/`.eh_frame`), which stays correct on code built
//! without frame pointers, then interning it.
//!
//! Consecutive allocations on a thread usually share their outer frames, so
//! each thread keeps its previous walk: every frame's (address, sp, bp) and
//! the stack words the unwinder read to get past it. When a new walk reaches
//! a frame with the same address and sp (and bp, where it matters) as a frame
//! of the previous walk, the rest of the walk depends only on the words read
//! from there on; if they all still hold the same values, the previous outer
//! frames are kept as they are, in place. Nothing is patched on the stack, so
//! exceptions and longjmp are unaffected.
//!
//! bp is compared only where it matters: code without frame pointers uses
//! rbp as an ordinary register, so its value differs from call to call. A
//! frame's incoming bp matters only if that frame, or an outer frame it passes
//! bp through to unchanged, unwinds with the frame pointer (new sp = bp + 16).

use crate::modules::{self, Known};
use crate::stacks;
use crate::thread::{self, UnwindCaches};
use framehop::x86_64::UnwindRegsX86_64;
use framehop::{FrameAddress, Unwinder};
use leakscope_format::layout::{finish_hash, hash_frames, hash_step, stat, HASH_SEED, MAX_FRAMES, NO_STACK};

/// Frames walked (the stored stack keeps at most MAX_FRAMES of them).
const WALK_FRAMES: usize = MAX_FRAMES + 16;
/// Stack words logged per frame; framehop's x86_64 rules read at most two
/// (return address and saved bp). A frame that read more is never reused.
const READS: usize = 2;
const TOO_MANY_READS: u8 = u8::MAX;

/// One stack walk, innermost frame first.
pub struct Walk {
    unwinder: usize,
    n: usize,
    complete: bool,
    reusable: bool,
    addr: [u64; WALK_FRAMES],
    sp: [u64; WALK_FRAMES],
    bp: [u64; WALK_FRAMES],
    /// Whether the walk from frame i outwards depends on bp's value at frame i.
    needs_bp: [bool; WALK_FRAMES],
    /// Stack words read while unwinding from frame i to frame i + 1.
    nreads: [u8; WALK_FRAMES],
    read_addr: [[u64; READS]; WALK_FRAMES],
    read_val: [[u64; READS]; WALK_FRAMES],
    /// Hash of frames i..n (see `layout::hash_step`).
    suffix_hash: [u64; WALK_FRAMES + 1],
}

impl Walk {
    pub fn new() -> Walk {
        Walk {
            unwinder: 0,
            n: 0,
            complete: false,
            reusable: false,
            addr: [0; WALK_FRAMES],
            sp: [0; WALK_FRAMES],
            bp: [0; WALK_FRAMES],
            needs_bp: [true; WALK_FRAMES],
            nreads: [0; WALK_FRAMES],
            read_addr: [[0; READS]; WALK_FRAMES],
            read_val: [[0; READS]; WALK_FRAMES],
            suffix_hash: [0; WALK_FRAMES + 1],
        }
    }
}

/// The program's registers at its call into a hook, where unwinding starts
/// (see `entry.rs`): the walk never has to unwind leakscope's own frames.
#[derive(Clone, Copy)]
pub struct Regs {
    /// Return address into the program.
    ret: u64,
    /// The caller's stack pointer after the call returns.
    sp: u64,
    bp: u64,
}

impl Regs {
    /// From the stack pointer and rbp at the first instruction of a hook.
    #[inline(always)]
    pub unsafe fn at_entry(entry_sp: u64, entry_bp: u64) -> Regs {
        Regs { ret: *(entry_sp as *const u64), sp: entry_sp + 8, bp: entry_bp }
    }
}

/// Stack id of the caller of the hook that captured `regs` (which is still running).
/// Call inside a hook guard.
#[inline(never)]
pub fn current_stack(regs: &Regs) -> u32 {
    let Some(extra) = thread::extra() else { return NO_STACK };
    let Some(known) = modules::known() else { return NO_STACK };
    let captures = extra.stats[stat::CAPTURES];
    // Time one capture in 64: the clock costs as much as a short walk.
    let started = (captures % 64 == 0).then(now_ns);
    let p = extra.parts();
    let (mut unwound, unknown_code) = walk(known, regs, p.walk, p.scratch, p.cache, p.stack_hi);
    if (unknown_code || !p.walk.complete) && p.refresh.should_check() {
        if modules::refresh_if_changed() {
            // A module we did not know yet (dlopen): walk again with it, from scratch.
            p.refresh.changed();
            p.walk.reusable = false;
            if let Some(known) = modules::known() {
                unwound += walk(known, regs, p.walk, p.scratch, p.cache, p.stack_hi).0;
            }
        } else {
            p.refresh.unchanged();
        }
    }
    let w = &*p.walk;
    // Entry trampolines leave no frame of ours; this only guards against a
    // hook being reached through another of leakscope's functions.
    let first = (0..w.n).find(|&i| !modules::is_self(w.addr[i])).unwrap_or(w.n);
    let end = w.n.min(first + MAX_FRAMES);
    let frames = &w.addr[first..end];
    let hash = if end == w.n { finish_hash(w.suffix_hash[first]) } else { hash_frames(frames) };
    if let Some(check) = p.check.as_deref_mut() {
        // Test mode: the reused walk must equal a walk made from scratch.
        check.reusable = false;
        walk(known, regs, check, p.scratch, p.cache, p.stack_hi);
        let full = &check.addr[first.min(check.n)..check.n.min(first + MAX_FRAMES)];
        p.stats[stat::WALKS_CHECKED] += 1;
        if full != frames || hash != hash_frames(frames) {
            p.stats[stat::WALK_MISMATCHES] += 1;
        }
    }
    let id = stacks::intern(frames, hash, p.recent, p.stats);
    let s = p.stats;
    s[stat::CAPTURES] += 1;
    s[stat::FRAMES_UNWOUND] += unwound as u64;
    s[stat::FRAMES_REUSED] += (w.n - unwound.min(w.n)) as u64;
    if let Some(t0) = started {
        s[stat::CAPTURE_NS] += (now_ns() - t0) * 64;
    }
    if captures % 4096 == 4095 {
        extra.flush_stats();
    }
    id
}

fn now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Walk the stack from `regs` outwards, updating `w` (the previous walk) in
/// place; new inner frames are built in `fresh` first. Returns the number of
/// frames unwound (the others were reused), and whether one of them was in
/// code outside every known module.
fn walk(
    known: &Known,
    regs: &Regs,
    w: &mut Walk,
    fresh: &mut Walk,
    cache: &mut UnwindCaches,
    stack_hi: u64,
) -> (usize, bool) {
    let Regs { ret, sp, bp } = *regs;
    let unwinder = &known.unwinder;
    let unwinder_id = known as *const Known as usize;
    let mut unknown_code = false;
    let Some(first) = FrameAddress::from_return_address(ret) else {
        w.n = 0;
        w.suffix_hash[0] = HASH_SEED;
        w.reusable = false;
        return (0, false);
    };
    let reuse = w.reusable && w.unwinder == unwinder_id;
    let lo = sp;
    let mut regs = UnwindRegsX86_64::new(ret, sp, bp);
    let mut address = first;
    let mut k = 0usize;
    let mut n = 0usize;
    let mut complete = false;
    loop {
        if n == WALK_FRAMES {
            complete = true;
            break;
        }
        let i = n;
        fresh.addr[i] = address.address();
        unknown_code |= !known.contains(address.address_for_lookup());
        fresh.sp[i] = regs.sp();
        fresh.bp[i] = regs.bp();
        n += 1;

        if reuse {
            while k < w.n && w.sp[k] < regs.sp() {
                k += 1;
            }
            if k < w.n
                && w.sp[k] == regs.sp()
                && w.addr[k] == fresh.addr[i]
                && (!w.needs_bp[k] || w.bp[k] == regs.bp())
                && outer_words_unchanged(w, k)
            {
                splice(w, fresh, i, k);
                return (i, unknown_code);
            }
        }

        let mut nreads = 0u8;
        let mut read_stack = |a: u64| {
            if a >= lo && a % 8 == 0 && a.checked_add(8).is_some_and(|end| end <= stack_hi) {
                let v = unsafe { *(a as *const u64) };
                if (nreads as usize) < READS {
                    fresh.read_addr[i][nreads as usize] = a;
                    fresh.read_val[i][nreads as usize] = v;
                    nreads += 1;
                } else {
                    nreads = TOO_MANY_READS;
                }
                Ok(v)
            } else {
                Err(())
            }
        };
        let result =
            unwinder.unwind_frame(address, &mut regs, cache.for_address(address.address()), &mut read_stack);
        fresh.nreads[i] = nreads;
        // Frame-pointer rules set sp = bp + 16; any other rule ignores the incoming bp.
        fresh.needs_bp[i] = regs.sp() == fresh.bp[i].wrapping_add(16);
        match result {
            Ok(Some(ra)) => match FrameAddress::from_return_address(ra) {
                Some(next) => address = next,
                None => break,
            },
            Ok(None) => {
                complete = true;
                break;
            }
            Err(_) => break,
        }
    }
    // No frame in common with the previous walk: take the fresh one whole.
    w.unwinder = unwinder_id;
    w.n = n;
    w.complete = complete;
    w.reusable = true;
    w.addr[..n].copy_from_slice(&fresh.addr[..n]);
    w.sp[..n].copy_from_slice(&fresh.sp[..n]);
    w.bp[..n].copy_from_slice(&fresh.bp[..n]);
    w.needs_bp[..n].copy_from_slice(&fresh.needs_bp[..n]);
    w.nreads[..n].copy_from_slice(&fresh.nreads[..n]);
    w.read_addr[..n].copy_from_slice(&fresh.read_addr[..n]);
    w.read_val[..n].copy_from_slice(&fresh.read_val[..n]);
    // The outermost frame's rule is unknown beyond it: be strict there.
    if n > 0 {
        w.needs_bp[n - 1] = true;
        w.suffix_hash[n - 1] = hash_step(HASH_SEED, w.addr[n - 1]);
        finish_inner_frames(w, n - 1);
    }
    w.suffix_hash[n] = HASH_SEED;
    (n, unknown_code)
}

/// Whether every stack word the previous walk read from frame `k` on still holds.
#[inline]
fn outer_words_unchanged(w: &Walk, k: usize) -> bool {
    (k..w.n).all(|j| {
        let n = w.nreads[j];
        n != TOO_MANY_READS
            && (0..n as usize).all(|r| unsafe { *(w.read_addr[j][r] as *const u64) } == w.read_val[j][r])
    })
}

/// The new walk is `fresh[0..i]` followed by the previous walk's frames from
/// `k` on (frame `k` being the same frame as the new frame `i`).
fn splice(w: &mut Walk, fresh: &Walk, i: usize, k: usize) {
    let old_n = w.n;
    let tail = (old_n - k).min(WALK_FRAMES - i);
    if i != k {
        w.addr.copy_within(k..k + tail, i);
        w.sp.copy_within(k..k + tail, i);
        w.bp.copy_within(k..k + tail, i);
        w.needs_bp.copy_within(k..k + tail, i);
        w.nreads.copy_within(k..k + tail, i);
        w.read_addr.copy_within(k..k + tail, i);
        w.read_val.copy_within(k..k + tail, i);
        w.suffix_hash.copy_within(k..k + tail, i);
    }
    w.n = i + tail;
    if tail < old_n - k {
        // Cut at WALK_FRAMES: the outer hashes no longer end where they did.
        w.suffix_hash[w.n] = HASH_SEED;
        for j in (i..w.n).rev() {
            w.suffix_hash[j] = hash_step(w.suffix_hash[j + 1], w.addr[j]);
        }
    } else {
        w.suffix_hash[w.n] = HASH_SEED;
    }
    // bp flows on unchanged to outer frames where it did before: give them today's value.
    let mut old_prev = w.bp[i];
    w.bp[i] = fresh.bp[i];
    for j in i + 1..w.n {
        let old = w.bp[j];
        if old != old_prev {
            break;
        }
        w.bp[j] = w.bp[j - 1];
        old_prev = old;
    }
    w.addr[..i].copy_from_slice(&fresh.addr[..i]);
    w.sp[..i].copy_from_slice(&fresh.sp[..i]);
    w.bp[..i].copy_from_slice(&fresh.bp[..i]);
    w.needs_bp[..i].copy_from_slice(&fresh.needs_bp[..i]);
    w.nreads[..i].copy_from_slice(&fresh.nreads[..i]);
    w.read_addr[..i].copy_from_slice(&fresh.read_addr[..i]);
    w.read_val[..i].copy_from_slice(&fresh.read_val[..i]);
    finish_inner_frames(w, i);
}

/// Complete bp needs and suffix hashes of the new inner frames 0..i from
/// those of frame i onwards (already right).
fn finish_inner_frames(w: &mut Walk, i: usize) {
    for j in (0..i).rev() {
        w.needs_bp[j] = w.needs_bp[j] || (w.bp[j + 1] == w.bp[j] && w.needs_bp[j + 1]);
        w.suffix_hash[j] = hash_step(w.suffix_hash[j + 1], w.addr[j]);
    }
}
