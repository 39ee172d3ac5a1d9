//! Recording heap errors in the session file as they happen.

use crate::live;
use crate::notice::Line;
use crate::session;
use crate::thread;
use core::sync::atomic::Ordering;
use leakscope_format::layout::{self, error_kind, region, AllocKind, ErrorRecord, FreedEntry, LiveEntry, ReleaseKind};

struct Details {
    kind: u32,
    release: ReleaseKind,
    addr: u64,
    stack: u32,
    block_addr: u64,
    block_size: u64,
    block_kind: AllocKind,
    region: u32,
    alloc_stack: u32,
    free_stack: u32,
    first_release: u32,
}

fn record(d: Details) {
    let h = session::header();
    if let Some(off) = session::carve(core::mem::size_of::<ErrorRecord>() as u64, 8) {
        let r = session::at::<ErrorRecord>(off);
        unsafe {
            (*r).seq = h.event_seq.fetch_add(1, Ordering::Relaxed) + 1;
            (*r).kind = d.kind;
            (*r).release_kind = d.release as u32;
            (*r).addr = d.addr;
            (*r).block_addr = d.block_addr;
            (*r).block_size = d.block_size;
            (*r).block_kind = d.block_kind as u32;
            (*r).region = d.region;
            (*r).stack = d.stack;
            (*r).alloc_stack = d.alloc_stack;
            (*r).free_stack = d.free_stack;
            (*r).first_release_kind = d.first_release;
            (*r).tid = libc::syscall(libc::SYS_gettid) as u32;
            let mut head = h.errors_head.load(Ordering::Acquire);
            loop {
                (*r).next = head;
                match h.errors_head.compare_exchange_weak(head, off, Ordering::AcqRel, Ordering::Acquire) {
                    Ok(_) => break,
                    Err(now) => head = now,
                }
            }
        }
    }
    let what = match d.kind {
        error_kind::DOUBLE_FREE => "double free",
        error_kind::INVALID_FREE => "invalid free",
        _ => "mismatched free",
    };
    Line::new()
        .str("==")
        .dec(h.pid as u64)
        .str("== leakscope: ")
        .str(what)
        .str(" (")
        .str(d.release.name())
        .str(") of ")
        .hex(d.addr)
        .str("; stacks in the report")
        .emit();
}

pub fn mismatched(addr: u64, block: &LiveEntry, release: ReleaseKind, stack: u32) {
    record(Details {
        kind: error_kind::MISMATCHED_FREE,
        release,
        addr,
        stack,
        block_addr: addr,
        block_size: block.size(),
        block_kind: block.kind(),
        region: region::UNKNOWN,
        alloc_stack: block.stack(),
        free_stack: layout::NO_STACK,
        first_release: 0,
    });
}

pub fn double_free(addr: u64, freed: &FreedEntry, release: ReleaseKind, stack: u32) {
    record(Details {
        kind: error_kind::DOUBLE_FREE,
        release,
        addr,
        stack,
        block_addr: addr,
        block_size: freed.size,
        block_kind: AllocKind::from_u8(freed.alloc_kind),
        region: region::UNKNOWN,
        alloc_stack: freed.alloc_stack,
        free_stack: freed.free_stack,
        first_release: freed.release_kind as u32,
    });
}

/// A release of an address leakscope never handed out: say what it points at.
pub fn invalid_free(addr: u64, release: ReleaseKind, stack: u32) {
    let mut d = Details {
        kind: error_kind::INVALID_FREE,
        release,
        addr,
        stack,
        block_addr: 0,
        block_size: 0,
        block_kind: AllocKind::Unknown,
        region: region::UNKNOWN,
        alloc_stack: layout::NO_STACK,
        free_stack: layout::NO_STACK,
        first_release: 0,
    };
    if let Some(block) = live::find_containing(addr) {
        d.region = region::HEAP_INTERIOR;
        d.block_addr = block.addr();
        d.block_size = block.size();
        d.block_kind = block.kind();
        d.alloc_stack = block.stack();
    } else if on_this_stack(addr) {
        d.region = region::STACK;
    } else if in_a_module(addr) {
        d.region = region::GLOBAL;
    }
    record(d);
}

fn on_this_stack(addr: u64) -> bool {
    let here = &addr as *const u64 as u64;
    thread::extra().is_some_and(|e| addr >= here.saturating_sub(1 << 16) && addr < e.stack_hi)
}

fn in_a_module(addr: u64) -> bool {
    let h = session::header();
    let mut at = h.modules_head.load(Ordering::Acquire);
    while at != 0 {
        let m = session::at::<layout::ModuleRecord>(at);
        unsafe {
            if addr >= (*m).lo && addr < (*m).hi && (*m).unloaded_seq.load(Ordering::Relaxed) == 0 {
                return true;
            }
            at = (*m).next;
        }
    }
    false
}
