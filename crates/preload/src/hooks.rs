//! The C allocation family, exported under its standard names.

use crate::bootstrap;
use crate::entry::export_hook;
use crate::capture::{call_site, current_stack, Regs};
use crate::errors;
use crate::lifecycle::{free_stacks, mode, Mode, ACTIVE, FREE_STACKS, STATE};
use crate::live;
use crate::real;
use core::sync::atomic::Ordering;
use crate::thread;
use leakscope_format::layout::{entry_flags, stat, AllocKind, FreedEntry, LiveEntry, ReleaseKind, NO_STACK};
use libc::{c_int, c_void, size_t};

/// Record a block the program got (we hold the hook guard).
#[inline]
pub fn track(p: *mut c_void, size: usize, kind: AllocKind, regs: &Regs) {
    if !p.is_null() {
        live::prefetch(p as u64);
        if crate::lifecycle::tracing_disabled() {
            // leakscope_disable(): kept to match its free, never reported (api.rs).
            live::insert(p as u64, size as u64, kind, entry_flags::IGNORED, NO_STACK);
            return;
        }
        let stack = current_stack(regs);
        timed_table_op(|| live::insert(p as u64, size as u64, kind, 0, stack));
    }
}

/// Run a live-table insert or remove made for one of the program's calls
/// (every one goes through here), timing one in 256 for `--stats` (the clock
/// costs about as much as a table operation that hits the cache).
#[inline(always)]
fn timed_table_op<T>(op: impl FnOnce() -> T) -> T {
    let Some(extra) = thread::extra() else { return op() };
    let n = extra.stats[stat::TABLE_OPS];
    extra.stats[stat::TABLE_OPS] = n + 1;
    if n % 256 != 0 {
        return op();
    }
    timed_cold(extra, op)
}

#[cold]
#[inline(never)]
fn timed_cold<T>(extra: &mut thread::ThreadExtra, op: impl FnOnce() -> T) -> T {
    let t0 = crate::capture::now_ns();
    let r = op();
    extra.stats[stat::TABLE_NS] += crate::capture::now_ns().saturating_sub(t0) * 256;
    r
}

/// Record a block that leakscope or libc (working for it) got: matched on free, never reported.
#[inline]
pub fn track_internal(p: *mut c_void, size: usize, kind: AllocKind) {
    if !p.is_null() && STATE.load(Ordering::Acquire) == ACTIVE {
        live::insert(p as u64, size as u64, kind, entry_flags::INTERNAL, NO_STACK);
    }
}

/// Check a release against the table. Returns whether the block may be handed
/// to the real allocator (false for double and invalid frees).
pub fn release(p: *mut c_void, how: ReleaseKind, regs: &Regs) -> bool {
    let addr = p as u64;
    live::prefetch(addr);
    let free_stacks = FREE_STACKS.load(Ordering::Relaxed);
    let stack = match free_stacks {
        free_stacks::FULL => current_stack(regs),
        free_stacks::SITE => call_site(regs),
        _ => NO_STACK,
    };
    let full = free_stacks == free_stacks::FULL;
    match timed_table_op(|| live::remove(addr)) {
        Some(block) => {
            remember_free(addr, &block, stack, how);
            let internal = block.flags() & entry_flags::INTERNAL != 0;
            if !internal && !how.matches(block.kind()) {
                let stack = if full { stack } else { current_stack(regs) };
                errors::mismatched(addr, &block, how, stack);
            }
            true
        }
        None => {
            let stack = if full { stack } else { current_stack(regs) };
            match find_freed(addr) {
                Some(freed) => errors::double_free(addr, &freed, how, stack),
                None => errors::invalid_free(addr, how, stack),
            }
            false
        }
    }
}

/// Note the free of `block` in the thread's ring of recent frees (`freed.rs`).
#[inline]
fn remember_free(addr: u64, block: &LiveEntry, stack: u32, how: ReleaseKind) {
    if let Some(extra) = thread::extra() {
        extra.freed_ring().remember(addr, block, stack, how);
    }
}

/// The last remembered free of `addr`, if any.
fn find_freed(addr: u64) -> Option<FreedEntry> {
    crate::freed::find(thread::extra().and_then(|e| e.freed), addr)
}

/// A release seen while leakscope itself is running: forget the block quietly.
#[inline]
fn release_nested(p: *mut c_void) {
    if STATE.load(Ordering::Acquire) == ACTIVE {
        live::remove(p as u64);
    }
}

#[inline]
pub unsafe fn real_malloc(size: size_t) -> *mut c_void {
    match real::malloc() {
        Some(f) => f(size),
        None => bootstrap::alloc(size, 16) as *mut c_void,
    }
}

#[inline]
pub unsafe fn real_free(p: *mut c_void) {
    if let Some(f) = real::free() {
        f(p)
    }
}

export_hook!(malloc => malloc_impl);

pub(crate) unsafe extern "C" fn malloc_impl(size: size_t, _pad1: usize, _pad2: usize, entry_sp: u64, entry_bp: u64) -> *mut c_void {
    match mode() {
        Mode::Track(_g) => {
            let p = real_malloc(size);
            track(p, size, AllocKind::Malloc, &Regs::at_entry(entry_sp, entry_bp));
            p
        }
        Mode::Nested => {
            let p = real_malloc(size);
            track_internal(p, size, AllocKind::Malloc);
            p
        }
        Mode::Passthrough => real_malloc(size),
    }
}

export_hook!(free => free_impl);

pub(crate) unsafe extern "C" fn free_impl(p: *mut c_void, _pad1: usize, _pad2: usize, entry_sp: u64, entry_bp: u64) {
    if p.is_null() || bootstrap::contains(p as *const u8) {
        return;
    }
    match mode() {
        Mode::Track(_g) => {
            if release(p, ReleaseKind::Free, &Regs::at_entry(entry_sp, entry_bp)) {
                real_free(p);
            }
        }
        Mode::Nested => {
            release_nested(p);
            real_free(p);
        }
        Mode::Passthrough => real_free(p),
    }
}

export_hook!(calloc => calloc_impl);

pub(crate) unsafe extern "C" fn calloc_impl(n: size_t, size: size_t, _pad2: usize, entry_sp: u64, entry_bp: u64) -> *mut c_void {
    let total = n.checked_mul(size).unwrap_or(usize::MAX);
    let call = |n, size| match real::calloc() {
        Some(f) => f(n, size),
        // The bootstrap pool is zeroed static memory.
        None if total != usize::MAX => bootstrap::alloc(total, 16) as *mut c_void,
        None => core::ptr::null_mut(),
    };
    match mode() {
        Mode::Track(_g) => {
            let p = call(n, size);
            track(p, total, AllocKind::Calloc, &Regs::at_entry(entry_sp, entry_bp));
            p
        }
        Mode::Nested => {
            let p = call(n, size);
            track_internal(p, total, AllocKind::Calloc);
            p
        }
        Mode::Passthrough => call(n, size),
    }
}

export_hook!(realloc => realloc_impl);

pub(crate) unsafe extern "C" fn realloc_impl(p: *mut c_void, size: size_t, _pad2: usize, entry_sp: u64, entry_bp: u64) -> *mut c_void {
    realloc_as(p, size, AllocKind::Realloc, entry_sp, entry_bp)
}

export_hook!(reallocarray => reallocarray_impl);

unsafe extern "C" fn reallocarray_impl(p: *mut c_void, n: size_t, size: size_t, entry_sp: u64, entry_bp: u64) -> *mut c_void {
    match n.checked_mul(size) {
        Some(total) => realloc_as(p, total, AllocKind::Reallocarray, entry_sp, entry_bp),
        None => {
            *libc::__errno_location() = libc::ENOMEM;
            core::ptr::null_mut()
        }
    }
}

unsafe fn realloc_as(p: *mut c_void, size: size_t, kind: AllocKind, entry_sp: u64, entry_bp: u64) -> *mut c_void {
    if !p.is_null() && bootstrap::contains(p as *const u8) {
        // Move a start-up block to the real heap.
        let new = libc::malloc(size);
        if !new.is_null() {
            let n = size.min(bootstrap::bytes_after(p as *const u8));
            core::ptr::copy_nonoverlapping(p as *const u8, new as *mut u8, n);
        }
        return new;
    }
    let Some(real_realloc) = real::realloc() else {
        return core::ptr::null_mut();
    };
    realloc_via(p, size, kind, real_realloc, entry_sp, entry_bp)
}

/// realloc through `real_realloc` (the next `realloc`, or `__libc_realloc`).
pub(crate) unsafe fn realloc_via(
    p: *mut c_void,
    size: size_t,
    kind: AllocKind,
    real_realloc: real::ReallocFn,
    entry_sp: u64,
    entry_bp: u64,
) -> *mut c_void {
    match mode() {
        Mode::Track(_g) => realloc_tracked(p, size, kind, real_realloc, &Regs::at_entry(entry_sp, entry_bp)),
        Mode::Nested => {
            if !p.is_null() {
                release_nested(p);
            }
            let new = real_realloc(p, size);
            if new.is_null() && size != 0 && !p.is_null() {
                // Failed: the old block is still there.
                track_internal(p, 0, kind);
            }
            track_internal(new, size, kind);
            new
        }
        Mode::Passthrough => real_realloc(p, size),
    }
}

unsafe fn realloc_tracked(
    p: *mut c_void,
    size: size_t,
    kind: AllocKind,
    real_realloc: real::ReallocFn,
    regs: &Regs,
) -> *mut c_void {
    if p.is_null() {
        let new = real_realloc(p, size);
        track(new, size, kind, regs);
        return new;
    }
    // Take the old block out of the table before the allocator can reuse its address.
    let Some(old) = timed_table_op(|| live::remove(p as u64)) else {
        let stack = current_stack(regs);
        match find_freed(p as u64) {
            Some(freed) => errors::double_free(p as u64, &freed, ReleaseKind::Realloc, stack),
            None => errors::invalid_free(p as u64, ReleaseKind::Realloc, stack),
        }
        *libc::__errno_location() = libc::ENOMEM;
        return core::ptr::null_mut();
    };
    let stack = current_stack(regs);
    let internal = old.flags() & entry_flags::INTERNAL != 0;
    if !internal && !ReleaseKind::Realloc.matches(old.kind()) {
        errors::mismatched(p as u64, &old, ReleaseKind::Realloc, stack);
    }
    let new = real_realloc(p, size);
    if new.is_null() {
        if size == 0 {
            // realloc(p, 0) freed the block.
            remember_free(p as u64, &old, stack, ReleaseKind::Realloc);
        } else {
            timed_table_op(|| live::insert(old.addr(), old.size(), old.kind(), old.flags(), old.stack()));
        }
        return new;
    }
    if new != p {
        remember_free(p as u64, &old, stack, ReleaseKind::Realloc);
    }
    let flags = if internal {
        entry_flags::INTERNAL
    } else if crate::lifecycle::tracing_disabled() {
        entry_flags::IGNORED
    } else {
        0
    };
    timed_table_op(|| live::insert(new as u64, size as u64, kind, flags, stack));
    new
}

export_hook!(posix_memalign => posix_memalign_impl);

unsafe extern "C" fn posix_memalign_impl(out: *mut *mut c_void, align: size_t, size: size_t, entry_sp: u64, entry_bp: u64) -> c_int {
    let Some(f) = real::posix_memalign() else { return libc::ENOMEM };
    match mode() {
        Mode::Track(_g) => {
            let r = f(out, align, size);
            if r == 0 {
                track(*out, size, AllocKind::PosixMemalign, &Regs::at_entry(entry_sp, entry_bp));
            }
            r
        }
        Mode::Nested => {
            let r = f(out, align, size);
            if r == 0 {
                track_internal(*out, size, AllocKind::PosixMemalign);
            }
            r
        }
        Mode::Passthrough => f(out, align, size),
    }
}

macro_rules! aligned_hook {
    ($name:ident, $imp_name:ident, $real:ident, $kind:expr) => {
        export_hook!($name => $imp_name);

        unsafe extern "C" fn $imp_name(align: size_t, size: size_t, _pad: usize, entry_sp: u64, entry_bp: u64) -> *mut c_void {
            let Some(f) = real::$real() else { return core::ptr::null_mut() };
            match mode() {
                Mode::Track(_g) => {
                    let p = f(align, size);
                    track(p, size, $kind, &Regs::at_entry(entry_sp, entry_bp));
                    p
                }
                Mode::Nested => {
                    let p = f(align, size);
                    track_internal(p, size, $kind);
                    p
                }
                Mode::Passthrough => f(align, size),
            }
        }
    };
}

aligned_hook!(aligned_alloc, aligned_alloc_impl, aligned_alloc, AllocKind::AlignedAlloc);
aligned_hook!(memalign, memalign_impl, memalign, AllocKind::Memalign);

macro_rules! page_hook {
    ($name:ident, $imp_name:ident, $real:ident, $kind:expr) => {
        export_hook!($name => $imp_name);

        unsafe extern "C" fn $imp_name(size: size_t, _pad1: usize, _pad2: usize, entry_sp: u64, entry_bp: u64) -> *mut c_void {
            let Some(f) = real::$real() else { return core::ptr::null_mut() };
            match mode() {
                Mode::Track(_g) => {
                    let p = f(size);
                    track(p, size, $kind, &Regs::at_entry(entry_sp, entry_bp));
                    p
                }
                Mode::Nested => {
                    let p = f(size);
                    track_internal(p, size, $kind);
                    p
                }
                Mode::Passthrough => f(size),
            }
        }
    };
}

page_hook!(valloc, valloc_impl, valloc, AllocKind::Valloc);
page_hook!(pvalloc, pvalloc_impl, pvalloc, AllocKind::Pvalloc);
