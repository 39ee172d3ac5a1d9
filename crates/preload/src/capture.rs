//! Capturing the current stack in-process with framehop (DWARF CFI from the
//! mapped `.eh_frame_hdr`/`.eh_frame`), which stays correct on code built
//! without frame pointers, then interning it.
//!
//! Consecutive allocations on a thread usually share their outer frames, so
//! each thread keeps its previous walk: every frame's (address, sp, bp) and
//! every stack word the unwinder read. When a new walk reaches a frame with
//! the same address, sp and bp as a frame of the previous walk, the rest of
//! the walk depends only on the words read from there on; if all of them
//! still hold the same values, the previous outer frames are reused as they
//! are. Nothing is patched on the stack, so exceptions and longjmp are safe.
//!
//! bp is compared only where it matters: code without frame pointers uses
//! rbp as an ordinary register, so its value differs from call to call. A
//! frame's incoming bp matters only if that frame, or an outer frame it passes
//! bp through to unchanged, unwinds with the frame pointer (new sp = bp + 16).

use crate::modules::{self, NativeUnwinder};
use crate::stacks;
use crate::thread;
use framehop::x86_64::UnwindRegsX86_64;
use framehop::{FrameAddress, Unwinder};
use leakscope_format::layout::{stat, MAX_FRAMES, NO_STACK};

/// Frames walked, including leakscope's own (cut before interning).
const WALK_FRAMES: usize = MAX_FRAMES + 16;
/// Stack words logged per walk; a walk that reads more is not reused.
const LOG_WORDS: usize = WALK_FRAMES * 4;

pub struct Walk {
    unwinder: usize,
    n: usize,
    complete: bool,
    reusable: bool,
    addr: [u64; WALK_FRAMES],
    sp: [u64; WALK_FRAMES],
    bp: [u64; WALK_FRAMES],
    /// Whether the unwinding from frame i onwards depends on bp's value at frame i.
    needs_bp: [bool; WALK_FRAMES],
    /// Words read while unwinding from frame i: log[read_start[i]..read_start[i + 1]].
    read_start: [u16; WALK_FRAMES + 1],
    nlog: usize,
    log_addr: [u64; LOG_WORDS],
    log_val: [u64; LOG_WORDS],
    /// Interned id of this walk's program frames, NO_STACK if not interned yet.
    stack_id: u32,
    first_user: usize,
    /// Frames this walk unwound itself (the rest were reused).
    unwound: usize,
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
            read_start: [0; WALK_FRAMES + 1],
            nlog: 0,
            log_addr: [0; LOG_WORDS],
            log_val: [0; LOG_WORDS],
            stack_id: NO_STACK,
            first_user: 0,
            unwound: 0,
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
    let Some(unwinder) = modules::unwinder() else { return NO_STACK };
    let captures = extra.stats[stat::CAPTURES];
    // Time one capture in 64: the clock costs as much as a short walk.
    let started = (captures % 64 == 0).then(now_ns);
    let p = extra.parts();
    let (prev, cur) = (p.prev, p.cur);
    walk(unwinder, regs, prev, cur, p.cache, p.stack_hi);
    if !cur.complete && modules::refresh_if_changed() {
        // A module we did not know yet (dlopen): walk again with it, from scratch.
        prev.reusable = false;
        if let Some(unwinder) = modules::unwinder() {
            walk(unwinder, regs, prev, cur, p.cache, p.stack_hi);
        }
    }
    let first = (0..cur.n).find(|&i| !modules::is_self(cur.addr[i])).unwrap_or(cur.n);
    let end = cur.n.min(first + MAX_FRAMES);
    cur.first_user = first;
    let frames = &cur.addr[first..end];
    // The same program frames as last time: same id, no hashing.
    let same = prev.stack_id != NO_STACK && &prev.addr[prev.first_user..prev.n.min(prev.first_user + MAX_FRAMES)] == frames;
    let id = if same { prev.stack_id } else { stacks::intern(frames, p.recent, p.stats) };
    cur.stack_id = id;
    let s = p.stats;
    s[stat::CAPTURES] += 1;
    s[stat::FRAMES_UNWOUND] += cur.unwound as u64;
    s[stat::FRAMES_REUSED] += (cur.n - cur.unwound) as u64;
    s[stat::SAME_STACK] += same as u64;
    if let Some(t0) = started {
        s[stat::CAPTURE_NS] += (now_ns() - t0) * 64;
    }
    extra.swap_walks();
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

/// Walk the stack from `regs` outwards into `cur`, reusing `prev`'s outer
/// frames where they are provably unchanged.
fn walk(
    unwinder: &NativeUnwinder,
    regs: &Regs,
    prev: &Walk,
    cur: &mut Walk,
    cache: &mut crate::thread::UnwindCache,
    stack_hi: u64,
) {
    let Regs { ret, sp, bp } = *regs;
    let Some(first) = FrameAddress::from_return_address(ret) else {
        cur.n = 0;
        cur.unwound = 0;
        cur.unwinder = 0;
        cur.reusable = false;
        return;
    };
    let unwinder_id = unwinder as *const NativeUnwinder as usize;
    let prev_usable = prev.reusable && prev.unwinder == unwinder_id;
    cur.unwinder = unwinder_id;
    cur.n = 0;
    cur.nlog = 0;
    cur.complete = false;
    cur.reusable = true;
    cur.stack_id = NO_STACK;

    let lo = sp;
    let mut regs = UnwindRegsX86_64::new(ret, sp, bp);
    let mut address = first;
    let mut k = 0usize;
    loop {
        let i = cur.n;
        if i == WALK_FRAMES {
            cur.complete = true;
            break;
        }
        cur.addr[i] = address.address();
        cur.sp[i] = regs.sp();
        cur.bp[i] = regs.bp();
        cur.read_start[i] = cur.nlog as u16;
        cur.n = i + 1;

        if prev_usable {
            while k < prev.n && prev.sp[k] < regs.sp() {
                k += 1;
            }
            if k < prev.n
                && prev.sp[k] == regs.sp()
                && prev.addr[k] == cur.addr[i]
                && (!prev.needs_bp[k] || prev.bp[k] == regs.bp())
                && outer_words_unchanged(prev, k)
            {
                cur.unwound = cur.n - 1;
                adopt_outer_frames(prev, k, cur);
                propagate_bp_needs(cur, i + 1);
                return;
            }
        }

        let mut read_stack = |a: u64| {
            if a >= lo && a % 8 == 0 && a.checked_add(8).is_some_and(|end| end <= stack_hi) {
                let v = unsafe { *(a as *const u64) };
                if cur.nlog < LOG_WORDS {
                    cur.log_addr[cur.nlog] = a;
                    cur.log_val[cur.nlog] = v;
                    cur.nlog += 1;
                } else {
                    cur.reusable = false;
                }
                Ok(v)
            } else {
                Err(())
            }
        };
        let result = unwinder.unwind_frame(address, &mut regs, cache, &mut read_stack);
        // Frame-pointer rules set sp = bp + 16; any other rule ignores the incoming bp.
        cur.needs_bp[i] = regs.sp() == cur.bp[i].wrapping_add(16);
        match result {
            Ok(Some(ra)) => match FrameAddress::from_return_address(ra) {
                Some(next) => address = next,
                None => break,
            },
            Ok(None) => {
                cur.complete = true;
                break;
            }
            Err(_) => break,
        }
    }
    cur.read_start[cur.n] = cur.nlog as u16;
    cur.unwound = cur.n;
    propagate_bp_needs(cur, cur.n);
}

/// A frame needs its bp if it uses it, or passes it unchanged to an outer frame that needs it.
fn propagate_bp_needs(w: &mut Walk, end: usize) {
    // The last frame's rule is unknown beyond it: be strict.
    if end > 0 && end == w.n {
        w.needs_bp[end - 1] = true;
    }
    for i in (0..end.saturating_sub(1)).rev() {
        w.needs_bp[i] = w.needs_bp[i] || (w.bp[i + 1] == w.bp[i] && w.needs_bp[i + 1]);
    }
}

/// Whether every stack word the previous walk read from frame `k` on still holds.
#[inline]
fn outer_words_unchanged(prev: &Walk, k: usize) -> bool {
    let from = prev.read_start[k] as usize;
    (from..prev.nlog).all(|j| unsafe { *(prev.log_addr[j] as *const u64) } == prev.log_val[j])
}

/// Append `prev`'s frames after `k` (and their logged words) to `cur`, whose
/// last frame equals `prev`'s frame `k`.
fn adopt_outer_frames(prev: &Walk, k: usize, cur: &mut Walk) {
    let i = cur.n - 1;
    let extra_frames = (prev.n - k - 1).min(WALK_FRAMES - cur.n);
    cur.addr[i + 1..i + 1 + extra_frames].copy_from_slice(&prev.addr[k + 1..k + 1 + extra_frames]);
    cur.sp[i + 1..i + 1 + extra_frames].copy_from_slice(&prev.sp[k + 1..k + 1 + extra_frames]);
    cur.needs_bp[i..i + 1 + extra_frames].copy_from_slice(&prev.needs_bp[k..k + 1 + extra_frames]);
    // bp flows on unchanged where it did in the previous walk, else it was restored from a (validated) stack word.
    for j in 1..=extra_frames {
        cur.bp[i + j] = if prev.bp[k + j] == prev.bp[k + j - 1] { cur.bp[i + j - 1] } else { prev.bp[k + j] };
    }
    let from = prev.read_start[k] as usize;
    let words = prev.nlog - from;
    if cur.nlog + words > LOG_WORDS {
        cur.reusable = false;
        cur.n += extra_frames;
        cur.complete = prev.complete;
        cur.read_start[cur.n] = cur.nlog as u16;
        return;
    }
    let shift = cur.nlog as i64 - from as i64;
    cur.log_addr[cur.nlog..cur.nlog + words].copy_from_slice(&prev.log_addr[from..prev.nlog]);
    cur.log_val[cur.nlog..cur.nlog + words].copy_from_slice(&prev.log_val[from..prev.nlog]);
    for j in 0..=extra_frames {
        cur.read_start[i + j] = (prev.read_start[k + j] as i64 + shift) as u16;
    }
    cur.nlog += words;
    cur.n += extra_frames;
    cur.read_start[cur.n] = cur.nlog as u16;
    cur.complete = prev.complete;
}
