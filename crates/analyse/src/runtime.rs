//! Allocations that language runtimes make once and keep for the life of the
//! process on purpose. Like glibc's one-time allocations (which the preload has
//! glibc free at exit, as Valgrind does), they are not the program's leaks;
//! the report counts them apart instead of listing them.

use crate::report::Frame;

/// A stack with a frame in one of these functions (prefix match on the
/// demangled name) allocated runtime-lifetime memory.
const LIFETIME_ALLOCATORS: &[&str] = &[
    // Rust std: the main thread's stack-overflow guard information.
    "std::sys::pal::unix::stack_overflow::",
    "std::sys::unix::stack_overflow::",
    // Rust std: the main thread's `Thread` handle, created on first use.
    "std::thread::current::init_current",
];

pub fn is_runtime_lifetime(stack: &[Frame]) -> bool {
    stack.iter().any(|f| {
        f.function.as_deref().is_some_and(|name| LIFETIME_ALLOCATORS.iter().any(|p| name.starts_with(p)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(name: &str) -> Frame {
        Frame {
            address: 0x1000,
            module: None,
            module_offset: None,
            function: Some(name.into()),
            file: None,
            line: None,
            inlined: false,
        }
    }

    #[test]
    fn rust_main_thread_handles_are_runtime_lifetime() {
        assert!(is_runtime_lifetime(&[frame("alloc::alloc::exchange_malloc"), frame("std::thread::current::init_current")]));
        assert!(is_runtime_lifetime(&[frame("std::sys::pal::unix::stack_overflow::thread_info::set_current_info")]));
    }

    #[test]
    fn program_allocations_are_not() {
        assert!(!is_runtime_lifetime(&[frame("main"), frame("std::rt::lang_start_internal")]));
        assert!(!is_runtime_lifetime(&[]));
    }
}
