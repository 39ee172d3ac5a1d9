//! Exported entry points. Each exported hook is a three-instruction naked
//! trampoline that hands its implementation the stack pointer and rbp as they
//! were at the program's call, then jumps (so it leaves no frame). Stack walks
//! start right at the program's frame: unwinding leakscope's own frames would
//! cost a CFI lookup each, and worse, hot hook addresses can evict each other
//! from the unwinder's rule cache.
//!
//! Every implementation takes the hook's own arguments padded to three, then
//! `entry_sp` and `entry_bp` (the 4th and 5th argument registers, rcx and r8).
//! Hooks with more than three arguments (mmap has six, mremap five) use
//! [`export_hook6`] instead.

macro_rules! export_hook {
    ($name:ident => $imp:path) => {
        #[no_mangle]
        #[unsafe(naked)]
        pub unsafe extern "C" fn $name() {
            core::arch::naked_asm!("mov rcx, rsp", "mov r8, rbp", "jmp {imp}", imp = sym $imp)
        }
    };
}

pub(crate) use export_hook;

/// The trampoline for hooks with four to six arguments (`mmap`, `mmap64`,
/// `mremap`). Every implementation takes its arguments padded to six, then
/// `entry_sp` and `entry_bp` as 7th and 8th arguments, which the SysV ABI
/// passes on the stack.
///
/// Why not registers, or a thread-local? Six arguments fill every argument
/// register (rdi, rsi, rdx, rcx, r8, r9), and a Rust `extern "C"` function
/// cannot read the scratch registers (r10, r11) at its entry, nor can three
/// 32-bit arguments be packed tightly enough to free two registers. A
/// thread-local stash would need initial-exec TLS from naked assembly (a
/// `__tls_get_addr` call clobbers the argument registers), which Rust offers
/// only on nightly. Stack arguments cost two pushes and a call, nothing next
/// to the system call that follows; the price is that this trampoline stays on
/// the stack (it calls instead of jumping), which no stack walk sees: walks
/// start from `entry_sp`, at the program's frame.
///
/// Stack at the call (entry rsp = E, E % 16 == 8): E-8 padding, E-16 the
/// program's rbp, E-24 = E (the program's sp, with the return address at it);
/// rsp = E-24 is 16-byte aligned, as the ABI wants at a call.
macro_rules! export_hook6 {
    ($name:ident => $imp:path) => {
        #[no_mangle]
        #[unsafe(naked)]
        pub unsafe extern "C" fn $name() {
            core::arch::naked_asm!(
                // Unwind information, so debuggers (and a program's own
                // backtrace() in a signal handler) can walk through it.
                ".cfi_startproc",
                "mov rax, rsp",
                "sub rsp, 8",
                ".cfi_adjust_cfa_offset 8",
                "push rbp",
                ".cfi_adjust_cfa_offset 8",
                "push rax",
                ".cfi_adjust_cfa_offset 8",
                "call {imp}",
                "add rsp, 24",
                ".cfi_adjust_cfa_offset -24",
                "ret",
                ".cfi_endproc",
                imp = sym $imp
            )
        }
    };
}

pub(crate) use export_hook6;
