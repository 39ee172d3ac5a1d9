//! leakscope's own Rust allocations (module lists, unwinder tables) go to
//! glibc's `__libc_*` entry points, looked up past this library (hooks_libc.rs
//! exports the same names, for programs that call them): they never re-enter
//! our hooks and never appear in the program's report. Before start-up has
//! looked them up, the static bootstrap pool serves.

use crate::{bootstrap, real};
use core::alloc::{GlobalAlloc, Layout};
use libc::c_void;

struct LibcAllocator;

// glibc's malloc guarantees 16-byte alignment on x86_64.
const MALLOC_ALIGN: usize = 16;

unsafe impl GlobalAlloc for LibcAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match (layout.align() <= MALLOC_ALIGN, real::libc_malloc(), real::libc_memalign()) {
            (true, Some(f), _) => f(layout.size()) as *mut u8,
            (false, _, Some(f)) => f(layout.align(), layout.size()) as *mut u8,
            _ => bootstrap::alloc(layout.size(), layout.align()),
        }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        match real::libc_calloc() {
            Some(f) if layout.align() <= MALLOC_ALIGN => f(1, layout.size()) as *mut u8,
            _ => {
                let p = self.alloc(layout);
                if !p.is_null() && !bootstrap::contains(p) {
                    core::ptr::write_bytes(p, 0, layout.size());
                }
                p
            }
        }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        if bootstrap::contains(ptr) {
            return;
        }
        if let Some(f) = real::libc_free() {
            f(ptr as *mut c_void)
        }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        match real::libc_realloc() {
            Some(f) if layout.align() <= MALLOC_ALIGN && !bootstrap::contains(ptr) => {
                f(ptr as *mut c_void, new_size) as *mut u8
            }
            _ => {
                let new = self.alloc(Layout::from_size_align_unchecked(new_size, layout.align()));
                if !new.is_null() {
                    core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                    self.dealloc(ptr, layout);
                }
                new
            }
        }
    }
}

#[global_allocator]
static GLOBAL: LibcAllocator = LibcAllocator;
