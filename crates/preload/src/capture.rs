//! Capturing the current stack in-process with framehop (DWARF CFI from the
//! mapped `.eh_frame_hdr`/`.eh_frame`), which stays correct on code built
//! without frame pointers, then interning it.

use crate::modules;
use crate::stacks;
use crate::thread::{self, ThreadExtra};
use framehop::x86_64::UnwindRegsX86_64;
use framehop::Unwinder;
use leakscope_format::layout::{MAX_FRAMES, NO_STACK};

/// Stack id of the caller of the hook that is running now. Call inside a hook guard.
#[inline(never)]
pub fn current_stack() -> u32 {
    let Some(extra) = thread::extra() else { return NO_STACK };
    let mut frames = [0u64; MAX_FRAMES];
    let (n, complete) = unwind(&mut frames, extra);
    let n = if !complete && modules::refresh_if_changed() {
        // A module we did not know yet (dlopen): unwind again with it.
        unwind(&mut frames, extra).0
    } else {
        n
    };
    stacks::intern(&frames[..n], extra)
}

/// Unwind from here; leakscope's own frames are left out. Returns the number
/// of frames and whether the walk reached the root of the stack.
#[inline(never)]
fn unwind(out: &mut [u64; MAX_FRAMES], extra: &mut ThreadExtra) -> (usize, bool) {
    let Some(unwinder) = modules::unwinder() else { return (0, false) };
    let (pc, sp, bp): (u64, u64, u64);
    unsafe {
        core::arch::asm!(
            "lea {pc}, [rip]",
            "mov {sp}, rsp",
            "mov {bp}, rbp",
            pc = out(reg) pc,
            sp = out(reg) sp,
            bp = out(reg) bp,
            options(nomem, nostack, preserves_flags)
        );
    }
    let lo = sp;
    let hi = extra.stack_hi;
    let mut read_stack = |addr: u64| {
        if addr >= lo && addr.checked_add(8).is_some_and(|end| end <= hi) && addr % 8 == 0 {
            Ok(unsafe { *(addr as *const u64) })
        } else {
            Err(())
        }
    };
    let regs = UnwindRegsX86_64::new(pc, sp, bp);
    let mut frames = unwinder.iter_frames(pc, regs, &mut extra.unwind_cache, &mut read_stack);
    let mut n = 0;
    let mut in_self = true;
    loop {
        match frames.next() {
            Ok(Some(f)) => {
                let addr = f.address();
                if in_self && modules::is_self(addr) {
                    continue;
                }
                in_self = false;
                if n == MAX_FRAMES {
                    return (n, true);
                }
                out[n] = addr;
                n += 1;
            }
            Ok(None) => return (n, true),
            Err(_) => return (n, false),
        }
    }
}
