//! One stack walk, reusing what it can of the thread's previous walk.
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
//!
//! The previous walk is kept as separate arrays (addresses, sps, one flat log
//! of the words read): checking that a reused part is still valid, the work
//! done on every allocation, is then a tight loop over the log.

use crate::modules::Known;
use crate::rules::RuleTable;
use crate::stacks;
use crate::thread::UnwindCaches;
use framehop::x86_64::UnwindRegsX86_64;
use framehop::{FrameAddress, Unwinder};
use leakscope_format::layout::{hash_step, HASH_SEED, MAX_FRAMES};

/// Frames walked (the stored stack keeps at most MAX_FRAMES of them).
pub const WALK_FRAMES: usize = MAX_FRAMES + 16;
/// Stack words logged per frame; framehop's x86_64 rules read at most two
/// (return address and saved bp). A frame that read more is never reused.
const READS: usize = 2;
const TOO_MANY_READS: u8 = u8::MAX;

/// A frame as a walk finds it (innermost first, in [`Fresh`]): where it is
/// and what its unwinding step read. `rules` fills in the step's part.
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

/// New inner frames of a walk, innermost first.
pub struct Fresh {
    frames: [Frame; WALK_FRAMES],
}

/// A thread's previous walk, outermost frame first, so that a new walk
/// sharing the outer part only rewrites the inner end.
pub struct Walk {
    unwinder: usize,
    pub n: usize,
    /// The walk reached the end of the stack (or WALK_FRAMES frames).
    pub complete: bool,
    /// The walk stopped after WALK_FRAMES frames, with more beyond its outermost frame.
    truncated: bool,
    pub reusable: bool,
    /// Frame addresses, outermost first: what is interned.
    pub addrs: [u64; WALK_FRAMES],
    sps: [u64; WALK_FRAMES],
    bps: [u64; WALK_FRAMES],
    uses_bp: [bool; WALK_FRAMES],
    /// Whether the walk from frame j outwards depends on bp's value at frame j:
    /// frame j uses it, or passes it unchanged to an outer frame that needs it.
    needs_bp: [bool; WALK_FRAMES],
    /// The words read to step past frames 0..=j are `read_*[..reads_end[j]]`.
    reads_end: [u16; WALK_FRAMES],
    read_addr: [u64; READS * WALK_FRAMES],
    read_val: [u64; READS * WALK_FRAMES],
    /// The outermost frame whose step read more words than are logged: no
    /// reuse at or inside it. WALK_FRAMES when there is none.
    first_opaque: usize,
    /// `prefix_hash[j]` hashes frames 0..j (see `layout::hash_step`); so does
    /// `prefix_hash2` with the second hash (`stacks::hash2_step`).
    pub prefix_hash: [u64; WALK_FRAMES + 1],
    pub prefix_hash2: [u64; WALK_FRAMES + 1],
}

impl Walk {
    /// Finish a zeroed Walk: an empty walk whose hashes start at the seeds.
    pub unsafe fn init_in_place(w: *mut Walk) {
        (*w).prefix_hash[0] = HASH_SEED;
        (*w).prefix_hash2[0] = stacks::HASH2_SEED;
        (*w).first_opaque = WALK_FRAMES;
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

/// Walk the stack from the frame whose return address is `ret` (with the
/// caller's `sp` and `bp`) outwards, updating `w` (the previous walk) in
/// place; new inner frames are found into `fresh` first. `rules` (None for a
/// walk that must use framehop alone) steps frames with learned rules. Returns
/// the number of frames unwound (the others were reused), and whether one of
/// them was in code outside every known module.
#[allow(clippy::too_many_arguments)]
pub fn walk(
    known: &Known,
    (ret, sp, bp): (u64, u64, u64),
    w: &mut Walk,
    fresh: &mut Fresh,
    cache: &mut UnwindCaches,
    mut rules: Option<&mut RuleTable>,
    stack_hi: u64,
) -> (usize, bool) {
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
    let mut checked = Checked { ok_upto: 0, fail_at: usize::MAX };
    let mut i = 0usize;
    let mut complete = false;
    loop {
        if i == WALK_FRAMES {
            complete = true;
            break;
        }
        let pc = address.address();
        if reuse {
            // k <= w.n <= WALK_FRAMES: unchecked indexing on this per-frame path.
            while k > 0 && unsafe { *w.sps.get_unchecked(k - 1) } < cur_sp {
                k -= 1;
            }
            if k > 0 {
                let j = k - 1;
                // A walk stops after WALK_FRAMES frames: a previous walk cut
                // there cannot supply a shorter new walk's outer frames.
                let (o_sp, o_addr, o_needs_bp, o_bp) = unsafe {
                    (*w.sps.get_unchecked(j), *w.addrs.get_unchecked(j), *w.needs_bp.get_unchecked(j), *w.bps.get_unchecked(j))
                };
                if o_sp == cur_sp
                    && o_addr == pc
                    && (!o_needs_bp || o_bp == cur_bp)
                    && (k + i >= WALK_FRAMES || !w.truncated)
                    && outer_words_unchanged(w, j, &mut checked)
                {
                    splice(w, fresh, i, j, cur_bp);
                    return (i, unknown_code);
                }
            }
        }

        let f = &mut fresh.frames[i];
        f.addr = pc;
        f.sp = cur_sp;
        f.bp = cur_bp;
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
        let mut regs = UnwindRegsX86_64::new(pc, cur_sp, cur_bp);
        let result = unwinder.unwind_frame(address, &mut regs, cache.for_address(pc), &mut read_stack);
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
    w.first_opaque = WALK_FRAMES;
    append_inner_frames(w, fresh, i);
    (i, unknown_code)
}

/// What one walk learned checking the previous walk's read log: reads
/// `[..ok_upto]` still hold, and the read at `fail_at` does not. The stack
/// does not change during a walk, so later candidates (further out, with
/// shorter logs) are answered from this without reading again.
struct Checked {
    ok_upto: usize,
    fail_at: usize,
}

/// Whether every stack word the previous walk read from its frame `j`
/// outwards (frames j, j-1, ..., 0) still holds.
#[inline]
fn outer_words_unchanged(w: &Walk, j: usize, checked: &mut Checked) -> bool {
    if j >= w.first_opaque {
        return false;
    }
    let end = w.reads_end[j] as usize;
    if end <= checked.ok_upto {
        return true;
    }
    if end > checked.fail_at {
        return false;
    }
    let (addrs, vals) = (&w.read_addr[..end], &w.read_val[..end]);
    // A plain indexed loop, which compiles tighter than zip/all.
    let mut r = checked.ok_upto;
    while r < end {
        if unsafe { *(addrs[r] as *const u64) } != vals[r] {
            checked.ok_upto = r;
            checked.fail_at = r;
            return false;
        }
        r += 1;
    }
    checked.ok_upto = end;
    true
}

/// The new walk is the previous walk's frames 0..=j (frame j being the same
/// frame as the new walk's frame `i`, whose bp is `new_bp`) followed by
/// `fresh.frames[..i]`.
fn splice(w: &mut Walk, fresh: &Fresh, i: usize, j: usize, new_bp: u64) {
    // bp flows on unchanged to outer frames where it did before: give them today's value.
    let mut old = w.bps[j];
    w.bps[j] = new_bp;
    for o in (0..j).rev() {
        if w.bps[o] != old {
            break;
        }
        old = w.bps[o];
        w.bps[o] = new_bp;
    }
    w.n = j + 1;
    // Frames 0..=j were just validated, so none of them is opaque.
    w.first_opaque = WALK_FRAMES;
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
    let (n, cut_reads) = (w.n, w.reads_end[count - 1] as usize);
    let reads = w.reads_end[n - 1] as usize;
    w.addrs.copy_within(count..n, 0);
    w.sps.copy_within(count..n, 0);
    w.bps.copy_within(count..n, 0);
    w.uses_bp.copy_within(count..n, 0);
    w.reads_end.copy_within(count..n, 0);
    w.read_addr.copy_within(cut_reads..reads, 0);
    w.read_val.copy_within(cut_reads..reads, 0);
    w.n = n - count;
    w.truncated = true;
    for j in 0..w.n {
        w.reads_end[j] -= cut_reads as u16;
        w.prefix_hash[j + 1] = hash_step(w.prefix_hash[j], w.addrs[j]);
        w.prefix_hash2[j + 1] = stacks::hash2_step(w.prefix_hash2[j], w.addrs[j]);
    }
    w.needs_bp[0] = true;
    for j in 1..w.n {
        w.needs_bp[j] = w.uses_bp[j] || (w.bps[j - 1] == w.bps[j] && w.needs_bp[j - 1]);
    }
}

/// Append `fresh.frames[..i]` (innermost first) at the inner end of `w`, with
/// their addresses, logged reads, prefix hashes and bp needs.
fn append_inner_frames(w: &mut Walk, fresh: &Fresh, i: usize) {
    let start = w.n;
    let count = i.min(WALK_FRAMES - start);
    let mut r = if start == 0 { 0 } else { w.reads_end[start - 1] as usize };
    // Run for every new frame of every walk: indexing is unchecked (j <
    // WALK_FRAMES, r + 1 < READS * WALK_FRAMES since each frame logs at most
    // READS words), and both read slots are copied whatever `nreads` says.
    debug_assert!(start + count <= WALK_FRAMES && i <= WALK_FRAMES);
    for t in 0..count {
        let j = start + t;
        unsafe {
            let f = fresh.frames.get_unchecked(i - 1 - t);
            *w.addrs.get_unchecked_mut(j) = f.addr;
            *w.sps.get_unchecked_mut(j) = f.sp;
            *w.bps.get_unchecked_mut(j) = f.bp;
            *w.uses_bp.get_unchecked_mut(j) = f.uses_bp;
            if f.nreads == TOO_MANY_READS {
                w.first_opaque = w.first_opaque.min(j);
            } else {
                *w.read_addr.get_unchecked_mut(r) = f.read_addr[0];
                *w.read_val.get_unchecked_mut(r) = f.read_val[0];
                *w.read_addr.get_unchecked_mut(r + 1) = f.read_addr[1];
                *w.read_val.get_unchecked_mut(r + 1) = f.read_val[1];
                r += f.nreads as usize;
            }
            *w.reads_end.get_unchecked_mut(j) = r as u16;
            let (h, h2) = (*w.prefix_hash.get_unchecked(j), *w.prefix_hash2.get_unchecked(j));
            *w.prefix_hash.get_unchecked_mut(j + 1) = hash_step(h, f.addr);
            *w.prefix_hash2.get_unchecked_mut(j + 1) = stacks::hash2_step(h2, f.addr);
            // The outermost frame's rule is unknown beyond it: be strict there.
            *w.needs_bp.get_unchecked_mut(j) = j == 0
                || f.uses_bp
                || (*w.bps.get_unchecked(j - 1) == f.bp && *w.needs_bp.get_unchecked(j - 1));
        }
    }
    w.n = start + count;
}
