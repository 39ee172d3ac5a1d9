//! Capturing the current stack in-process with framehop (DWARF CFI from the
//! mapped `.eh_frame_hdr`/`.eh_frame`), which stays correct on code built
//! without frame pointers, then interning it. The walk itself, and how it
//! reuses the thread's previous walk, is in `walk.rs`.

use crate::modules;
use crate::stacks;
use crate::thread;
use crate::walk::{walk, Walk};
use leakscope_format::layout::{finish_hash, hash_frames, stat, MAX_FRAMES, NO_STACK};

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

    /// Where a walk starts: (return address, sp, bp).
    #[inline]
    fn start(&self) -> (u64, u64, u64) {
        (self.ret, self.sp, self.bp)
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
    let (mut unwound, unknown_code) = walk(known, regs.start(), p.walk, p.scratch, p.cache, Some(&mut *p.rules), p.stack_hi);
    if (unknown_code || !p.walk.complete) && p.refresh.should_check() {
        if modules::refresh_if_changed() {
            // A module we did not know yet (dlopen): walk again with it, from scratch.
            p.refresh.changed();
            p.walk.reusable = false;
            if let Some(known) = modules::known() {
                unwound += walk(known, regs.start(), p.walk, p.scratch, p.cache, Some(&mut *p.rules), p.stack_hi).0;
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
        walk(known, regs.start(), check, p.scratch, p.cache, None, p.stack_hi);
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
        extra.recent.grow_if_missing(&extra.stats);
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
    recent: &mut stacks::RecentStacks,
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

pub(crate) fn now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Test mode: say on stderr where the two stacks of a mismatch part (counted
/// from the innermost frame), so that a failing cross-check test shows it.
fn debug_mismatch(reused: &[u64], full: &[u64]) {
    let at = reused.iter().rev().zip(full.iter().rev()).take_while(|(a, b)| a == b).count();
    let frame = |s: &[u64]| s.len().checked_sub(at + 1).map_or(0, |i| s[i]);
    crate::notice::Line::new()
        .str("leakscope: walk cross-check mismatch: ")
        .dec(reused.len() as u64)
        .str(" cached frames, ")
        .dec(full.len() as u64)
        .str(" in the full walk; frame #")
        .dec(at as u64)
        .str(" is ")
        .hex(frame(reused))
        .str(" cached, ")
        .hex(frame(full))
        .str(" in the full walk")
        .emit();
}
