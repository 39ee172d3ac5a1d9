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
use crate::rules::RuleTable;
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

/// Per-frame data of a walk. In [`Walk`] frames are kept OUTERMOST FIRST, so a
/// new walk that shares the outer part only rewrites the inner end (no
/// shifting); [`Fresh`] holds a walk's new frames innermost first, as found.
#[derive(Clone, Copy)]
pub struct Frame {
    pub addr: u64,
    pub sp: u64,
    pub bp: u64,
    /// The unwinding step from this frame to its caller used bp (frame-pointer rule).
    pub uses_bp: bool,
    /// Stack words read by that step.
    pub nreads: u8,
    pub read_addr: [u64; READS],
    pub read_val: [u64; READS],
}

/// A thread's previous walk, outermost frame first.
pub struct Walk {
    unwinder: usize,
    n: usize,
    complete: bool,
    /// The walk stopped after WALK_FRAMES frames, with more beyond its outermost frame.
    truncated: bool,
    reusable: bool,
    frames: [Frame; WALK_FRAMES],
    /// Whether the walk from frame j outwards depends on bp's value at frame j:
    /// frame j uses it, or passes it unchanged to an outer frame that needs it.
    needs_bp: [bool; WALK_FRAMES],
    /// `prefix_hash[j]` hashes frames 0..j (see `layout::hash_step`); so does
    /// `prefix_hash2` with the second hash (`stacks::hash2_step`).
    prefix_hash: [u64; WALK_FRAMES + 1],
    prefix_hash2: [u64; WALK_FRAMES + 1],
    /// Frame addresses alone, outermost first: what is interned.
    addrs: [u64; WALK_FRAMES],
}

/// New inner frames of a walk, innermost first.
pub struct Fresh {
    frames: [Frame; WALK_FRAMES],
}

impl Walk {
    /// Finish a zeroed Walk: an empty walk whose hashes start at the seeds.
    pub unsafe fn init_in_place(w: *mut Walk) {
        (*w).prefix_hash[0] = HASH_SEED;
        (*w).prefix_hash2[0] = stacks::HASH2_SEED;
    }

    /// A new empty walk on the heap (it is too big for a small thread stack).
    pub fn boxed() -> Box<Walk> {
        let mut b: Box<core::mem::MaybeUninit<Walk>> = Box::new_zeroed();
        unsafe {
            Walk::init_in_place(b.as_mut_ptr());
            b.assume_init()
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
    let (mut unwound, unknown_code) = walk(known, regs, p.walk, p.scratch, p.cache, Some(&mut *p.rules), p.stack_hi);
    if (unknown_code || !p.walk.complete) && p.refresh.should_check() {
        if modules::refresh_if_changed() {
            // A module we did not know yet (dlopen): walk again with it, from scratch.
            p.refresh.changed();
            p.walk.reusable = false;
            if let Some(known) = modules::known() {
                unwound += walk(known, regs, p.walk, p.scratch, p.cache, Some(&mut *p.rules), p.stack_hi).0;
            }
        } else {
            p.refresh.unchanged();
        }
    }
    let w = &*p.walk;
    let (frames, hash, hash2) = program_frames(w);
    if let Some(check) = p.check.as_deref_mut() {
        // Test mode: the reused walk must equal a walk made from scratch.
        check.reusable = false;
        // The module set as the walk above last saw it (it may have been refreshed).
        let known = modules::known().unwrap_or(known);
        walk(known, regs, check, p.scratch, p.cache, None, p.stack_hi);
        let (full, full_hash, full_hash2) = program_frames(check);
        p.stats[stat::WALKS_CHECKED] += 1;
        if full != frames
            || (hash, hash2) != (full_hash, full_hash2)
            || (hash, hash2) != (hash_frames(frames), stacks::hash2_frames(frames))
        {
            p.stats[stat::WALK_MISMATCHES] += 1;
            debug_mismatch(frames, full);
        }
    }
    let location = crate::api::pending_location();
    let id = if location == 0 {
        stacks::intern(frames, hash, hash2, p.recent, p.stats)
    } else {
        intern_with_location(frames, location, p.recent, p.stats)
    };
    let s = p.stats;
    s[stat::CAPTURES] += 1;
    s[stat::FRAMES_UNWOUND] += unwound as u64;
    s[stat::FRAMES_REUSED] += (w.n - unwound.min(w.n)) as u64;
    if let Some(t0) = started {
        s[stat::CAPTURE_NS] += (now_ns() - t0) * 64;
    }
    if captures % 4096 == 4095 {
        extra.unwind_cache.grow_if_missing();
        extra.rules.grow_if_missing();
        extra.stats[stat::RULE_HITS] += extra.unwind_cache.recent_hits;
        extra.stats[stat::RULE_MISSES] += extra.unwind_cache.recent_misses;
        extra.flush_stats();
    }
    id
}

/// A one-frame stack: the hook's call site in the program, without a walk.
pub fn call_site(regs: &Regs) -> u32 {
    let Some(extra) = thread::extra() else { return NO_STACK };
    let p = extra.parts();
    let frame = [regs.ret];
    let location = crate::api::pending_location();
    if location != 0 {
        return intern_with_location(&frame, location, p.recent, p.stats);
    }
    stacks::intern(&frame, hash_frames(&frame), stacks::hash2_frames(&frame), p.recent, p.stats)
}

/// `frames` (outermost first) followed by a location frame as the innermost
/// one: a call that carried its source location (`api.rs`).
#[cold]
#[inline(never)]
fn intern_with_location(
    frames: &[u64],
    location: u64,
    recent: &mut [stacks::Recent; thread::RECENT_STACKS],
    stats: &mut [u64; leakscope_format::layout::STAT_COUNT],
) -> u32 {
    let mut buf = [0u64; MAX_FRAMES];
    let keep = frames.len().min(MAX_FRAMES - 1);
    buf[..keep].copy_from_slice(&frames[frames.len() - keep..]);
    buf[keep] = location;
    let all = &buf[..=keep];
    stacks::intern(all, hash_frames(all), stacks::hash2_frames(all), recent, stats)
}

/// The frames to intern (outermost first, at most MAX_FRAMES innermost ones)
/// and their hash. Entry trampolines leave no frame of leakscope's; cutting
/// them only guards against a hook reached through another of its functions.
fn program_frames(w: &Walk) -> (&[u64], u64, u64) {
    let mut end = w.n;
    while end > 0 && modules::is_self(w.addrs[end - 1]) {
        end -= 1;
    }
    if end > MAX_FRAMES {
        let frames = &w.addrs[end - MAX_FRAMES..end];
        return (frames, hash_frames(frames), stacks::hash2_frames(frames));
    }
    (&w.addrs[..end], finish_hash(w.prefix_hash[end]), w.prefix_hash2[end])
}

fn now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Walk the stack from `regs` outwards, updating `w` (the previous walk) in
/// place; new inner frames are found into `fresh` first. Returns the number of
/// frames unwound (the others were reused), and whether one of them was in
/// code outside every known module.
fn walk(
    known: &Known,
    regs: &Regs,
    w: &mut Walk,
    fresh: &mut Fresh,
    cache: &mut UnwindCaches,
    mut rules: Option<&mut RuleTable>,
    stack_hi: u64,
) -> (usize, bool) {
    let Regs { ret, sp, bp } = *regs;
    let unwinder = &known.unwinder;
    let unwinder_id = known as *const Known as usize;
    let mut unknown_code = false;
    let Some(first) = FrameAddress::from_return_address(ret) else {
        w.n = 0;
        w.reusable = false;
        return (0, false);
    };
    let reuse = w.reusable && w.unwinder == unwinder_id;
    if let Some(rules) = rules.as_deref_mut() {
        rules.prepare(known);
    }
    let lo = sp;
    // The frame being stepped from. framehop's register set is 136 bytes; it is
    // built only for the steps framehop takes.
    let (mut cur_sp, mut cur_bp) = (sp, bp);
    let mut address = first;
    // The previous walk's frame that could match next, searched from its inner end.
    let mut k = w.n;
    let mut i = 0usize;
    let mut complete = false;
    loop {
        if i == WALK_FRAMES {
            complete = true;
            w.truncated = true;
            break;
        }
        let f = &mut fresh.frames[i];
        f.addr = address.address();
        f.sp = cur_sp;
        f.bp = cur_bp;

        if reuse {
            while k > 0 && w.frames[k - 1].sp < f.sp {
                k -= 1;
            }
            if k > 0 {
                let o = &w.frames[k - 1];
                // A walk stops after WALK_FRAMES frames: a previous walk cut
                // there cannot supply a shorter new walk's outer frames.
                if o.sp == f.sp
                    && o.addr == f.addr
                    && (!w.needs_bp[k - 1] || o.bp == f.bp)
                    && (k + i >= WALK_FRAMES || !w.truncated)
                    && outer_words_unchanged(w, k - 1)
                {
                    splice(w, fresh, i, k - 1);
                    return (i, unknown_code);
                }
            }
        }

        let f = &mut fresh.frames[i];
        if let Some(rules) = rules.as_deref_mut() {
            if let Some((ra, next_sp, next_bp)) = rules.step(known, cache, f, lo, stack_hi) {
                i += 1;
                (cur_sp, cur_bp) = (next_sp, next_bp);
                // `step` returns only non-zero return addresses.
                address = FrameAddress::from_return_address(ra).unwrap_or(address);
                continue;
            }
        }
        unknown_code |= !known.contains(address.address_for_lookup());
        let mut nreads = 0u8;
        let mut read_stack = |a: u64| {
            if a >= lo && a % 8 == 0 && a.checked_add(8).is_some_and(|end| end <= stack_hi) {
                let v = unsafe { *(a as *const u64) };
                if (nreads as usize) < READS {
                    f.read_addr[nreads as usize] = a;
                    f.read_val[nreads as usize] = v;
                    nreads += 1;
                } else {
                    nreads = TOO_MANY_READS;
                }
                Ok(v)
            } else {
                Err(())
            }
        };
        let mut regs = UnwindRegsX86_64::new(f.addr, cur_sp, cur_bp);
        let result = unwinder.unwind_frame(address, &mut regs, cache.for_address(f.addr), &mut read_stack);
        (cur_sp, cur_bp) = (regs.sp(), regs.bp());
        f.nreads = nreads;
        // Frame-pointer rules set sp = bp + 16; any other rule ignores the incoming bp.
        f.uses_bp = regs.sp() == f.bp.wrapping_add(16);
        i += 1;
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
    // Nothing in common with the previous walk: the fresh frames are the whole walk.
    w.unwinder = unwinder_id;
    w.complete = complete;
    w.truncated = i == WALK_FRAMES;
    w.reusable = true;
    w.n = 0;
    append_inner_frames(w, fresh, i);
    if i > 0 {
        // The outermost frame's rule is unknown beyond it: be strict there.
        w.needs_bp[0] = true;
        for j in 1..w.n {
            w.needs_bp[j] = w.frames[j].uses_bp || (w.frames[j - 1].bp == w.frames[j].bp && w.needs_bp[j - 1]);
        }
    }
    (i, unknown_code)
}

/// Whether every stack word the previous walk read from its frame `j`
/// outwards (frames j, j-1, ..., 0) still holds.
#[inline]
fn outer_words_unchanged(w: &Walk, j: usize) -> bool {
    w.frames[..=j].iter().all(|f| {
        f.nreads != TOO_MANY_READS
            && (0..f.nreads as usize).all(|r| unsafe { *(f.read_addr[r] as *const u64) } == f.read_val[r])
    })
}

/// The new walk is the previous walk's frames 0..=j (frame j being the same
/// frame as the new `fresh.frames[i]`) followed by `fresh.frames[..i]`.
fn splice(w: &mut Walk, fresh: &Fresh, i: usize, j: usize) {
    // bp flows on unchanged to outer frames where it did before: give them today's value.
    let new_bp = fresh.frames[i].bp;
    let mut old = w.frames[j].bp;
    w.frames[j].bp = new_bp;
    for o in (0..j).rev() {
        if w.frames[o].bp != old {
            break;
        }
        old = w.frames[o].bp;
        w.frames[o].bp = new_bp;
    }
    w.n = j + 1;
    let excess = (j + 1 + i).saturating_sub(WALK_FRAMES);
    if excess > 0 {
        drop_outer_frames(w, excess);
    }
    append_inner_frames(w, fresh, i);
}

/// Cut the `count` outermost frames of `w` (a walk keeps WALK_FRAMES frames
/// at most, the innermost ones); prefix hashes and bp needs start again from
/// the new outermost frame, as in a walk made from scratch.
#[cold]
fn drop_outer_frames(w: &mut Walk, count: usize) {
    let n = w.n - count;
    w.frames.copy_within(count..w.n, 0);
    w.addrs.copy_within(count..w.n, 0);
    w.n = n;
    w.truncated = true;
    for j in 0..n {
        w.prefix_hash[j + 1] = hash_step(w.prefix_hash[j], w.addrs[j]);
        w.prefix_hash2[j + 1] = stacks::hash2_step(w.prefix_hash2[j], w.addrs[j]);
        w.needs_bp[j] = j == 0 || w.frames[j].uses_bp || (w.frames[j - 1].bp == w.frames[j].bp && w.needs_bp[j - 1]);
    }
}

/// Append `fresh.frames[..i]` (innermost first) at the inner end of `w`, with
/// their addresses, prefix hashes and bp needs.
fn append_inner_frames(w: &mut Walk, fresh: &Fresh, i: usize) {
    let start = w.n;
    let count = i.min(WALK_FRAMES - start);
    for t in 0..count {
        let j = start + t;
        let f = fresh.frames[i - 1 - t];
        w.frames[j] = f;
        w.addrs[j] = f.addr;
        w.prefix_hash[j + 1] = hash_step(w.prefix_hash[j], f.addr);
        w.prefix_hash2[j + 1] = stacks::hash2_step(w.prefix_hash2[j], f.addr);
        w.needs_bp[j] = f.uses_bp || (j > 0 && w.frames[j - 1].bp == f.bp && w.needs_bp[j - 1]);
    }
    w.n = start + count;
}

/// Test mode: print both stacks of a mismatch to stderr (without allocating),
/// so that a failing cross-check test shows what differed.
fn debug_mismatch(reused: &[u64], full: &[u64]) {
    let mut buf = [0u8; 8192];
    let mut n = 0;
    let mut put = |bytes: &[u8]| {
        let take = bytes.len().min(buf.len() - n);
        buf[n..n + take].copy_from_slice(&bytes[..take]);
        n += take;
    };
    for (label, frames) in [(&b"leakscope: walk cross-check mismatch, cached:"[..], reused), (&b"\n  full:"[..], full)] {
        put(label);
        for &frame in frames {
            let mut hex = *b" 0000000000000000";
            for (k, digit) in hex[1..].iter_mut().enumerate() {
                *digit = b"0123456789abcdef"[((frame >> (60 - 4 * k)) & 15) as usize];
            }
            put(&hex);
        }
    }
    put(b"\n");
    unsafe { libc::write(2, buf.as_ptr() as *const libc::c_void, n) };
}
