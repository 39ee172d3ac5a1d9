//! Exported entry points. Each exported hook is a three-instruction naked
//! trampoline that hands its implementation the stack pointer and rbp as they
//! were at the program's call, then jumps (so it leaves no frame). Stack walks
//! start right at the program's frame: unwinding leakscope's own frames would
//! cost a CFI lookup each, and worse, hot hook addresses can evict each other
//! from the unwinder's rule cache.
//!
//! Every implementation takes the hook's own arguments padded to three, then
//! `entry_sp` and `entry_bp` (the 4th and 5th argument registers, rcx and r8).
//! No hook has more than three arguments.

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
