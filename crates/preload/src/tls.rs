//! The two per-thread words every hook touches (the reentrancy flag and the
//! pointer to the thread's `ThreadExtra`), reached with the initial-exec TLS
//! model: two instructions, where Rust's `thread_local!` in a shared library
//! calls `__tls_get_addr` on every access (about 7 calls, 77 instructions,
//! per malloc/free pair). Stable Rust cannot choose the TLS model, so the
//! block is declared in assembly. Initial-exec is right for a library that is
//! preloaded: the loader reserves static TLS for it before the program starts.

core::arch::global_asm!(
    ".pushsection .tbss,\"awT\",@nobits",
    ".p2align 4",
    ".globl leakscope_tls_block",
    ".hidden leakscope_tls_block",
    ".type leakscope_tls_block, @object",
    ".size leakscope_tls_block, 16",
    "leakscope_tls_block:",
    ".zero 16",
    ".popsection",
);

#[repr(C)]
pub struct Block {
    /// Non-zero while this thread runs leakscope code.
    pub in_hook: u64,
    /// This thread's `ThreadExtra`, or null before its first tracked call.
    pub extra: *mut crate::thread::ThreadExtra,
}

/// The calling thread's block.
#[inline(always)]
pub fn block() -> *mut Block {
    let p: *mut Block;
    unsafe {
        core::arch::asm!(
            "mov {p}, qword ptr fs:[0]",
            "add {p}, qword ptr [rip + leakscope_tls_block@GOTTPOFF]",
            p = out(reg) p,
            options(nostack, pure, readonly),
        )
    };
    p
}
