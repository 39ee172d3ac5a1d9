//! Memory for allocations made before the real allocator is known: `dlsym`
//! itself may call `calloc` while we are resolving `malloc`. A static bump
//! pool serves them; frees into it are ignored (heaptrack's DummyPool idea).

use core::sync::atomic::{AtomicUsize, Ordering};

const POOL_SIZE: usize = 256 * 1024;

#[repr(C, align(16))]
struct Pool([u8; POOL_SIZE]);

static mut POOL: Pool = Pool([0; POOL_SIZE]);
static USED: AtomicUsize = AtomicUsize::new(0);

fn base() -> usize {
    core::ptr::addr_of!(POOL) as usize
}

/// Zeroed memory from the pool, or null when it is exhausted.
pub fn alloc(size: usize, align: usize) -> *mut u8 {
    let align = align.max(16);
    let mut cur = USED.load(Ordering::Relaxed);
    loop {
        let start = (base() + cur).next_multiple_of(align) - base();
        let end = start + size;
        if end > POOL_SIZE {
            return core::ptr::null_mut();
        }
        match USED.compare_exchange_weak(cur, end, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return (base() + start) as *mut u8,
            Err(now) => cur = now,
        }
    }
}

pub fn contains(ptr: *const u8) -> bool {
    let p = ptr as usize;
    p >= base() && p < base() + POOL_SIZE
}

/// Bytes from `ptr` to the end of the pool: an upper bound for copying on realloc.
pub fn bytes_after(ptr: *const u8) -> usize {
    base() + POOL_SIZE - ptr as usize
}
