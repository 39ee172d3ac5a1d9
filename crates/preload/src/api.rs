//! The API a program can call itself (`include/leakscope.h`, the
//! `leakscope-api` crate): tracing on and off, intentional leaks, and
//! allocation calls that carry their own source location.
//!
//! Every symbol here is declared weak in the header, so a program built with
//! it runs unchanged without leakscope; when the library is loaded but not
//! tracing (no session: linked with `-lleakscope` and started without
//! `leakscope run`), each call does what the plain function would.
//!
//! **Source locations.** `leakscope_malloc_at` and friends take a pointer to
//! a [`Location`] (`__FILE__`, `__func__`, `__LINE__` from the macros). Each
//! distinct location is copied once into the session file as a
//! [`LocationRecord`] and named in the allocation's stack by a *location
//! frame* (`layout::location_frame(record offset)`) put before the program's
//! return addresses, so a binary without debug information still gets file
//! and line. The frame is handed to the stack capture through a per-thread
//! slot ([`pending_location`]) while the ordinary hook runs.
//!
//! **Disabled tracing** is process-wide and nests (`leakscope_disable` twice
//! needs `leakscope_enable` twice), like glibc's mtrace()/muntrace() and the
//! `__malloc_hook` swapping it replaced. Blocks allocated meanwhile are still
//! recorded, so their frees match, but flagged `IGNORED` and without a stack:
//! never reported, and roots for the reachability scan, as intentional leaks
//! are. Frees are checked as always.

use crate::hooks;
use crate::lifecycle::{ACTIVE, DISABLED, STATE};
use crate::{live, session, thread};
use core::cell::Cell;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use leakscope_format::layout::{self, entry_flags, LocationRecord, MAX_LOCATION_TEXT};
use libc::{c_char, c_int, c_void, size_t};

/// What the header's macros pass: `struct leakscope_location`.
#[repr(C)]
pub struct Location {
    pub file: *const c_char,
    pub function: *const c_char,
    pub line: u32,
}

thread_local! {
    /// The location frame the stack captured by the current hook call must start with (0: none).
    static PENDING: Cell<u64> = const { Cell::new(0) };
}

/// Whether the program ever passed a location: until it does, stack captures
/// skip the thread-local read.
static LOCATIONS_USED: AtomicBool = AtomicBool::new(false);

/// The location frame to put first in a stack captured now, or 0.
#[inline(always)]
pub fn pending_location() -> u64 {
    if !LOCATIONS_USED.load(Ordering::Relaxed) {
        return 0;
    }
    PENDING.with(|p| p.get())
}

/// Sets the pending location for the duration of one hook call.
struct Pending;

impl Pending {
    #[inline]
    fn set(loc: *const Location) -> Pending {
        let frame = if STATE.load(Ordering::Acquire) == ACTIVE && DISABLED.load(Ordering::Relaxed) == 0 {
            intern(loc).map_or(0, layout::location_frame)
        } else {
            0
        };
        if frame != 0 && !LOCATIONS_USED.load(Ordering::Relaxed) {
            LOCATIONS_USED.store(true, Ordering::Relaxed);
        }
        PENDING.with(|p| p.set(frame));
        Pending
    }
}

impl Drop for Pending {
    #[inline]
    fn drop(&mut self) {
        PENDING.with(|p| p.set(0));
    }
}

// ---------------------------------------------------------------------------
// Interning locations: a lock-free open-addressed table keyed by the program's
// pointers and line, whose slots point at records in the session file.

const SLOTS: usize = 1 << 13;
/// A slot whose record could not be made (session file full, or its maker was
/// lost across fork): skipped by lookups.
const DEAD: u64 = u64::MAX;

struct Slot {
    key: AtomicU64,
    /// Offset of the [`LocationRecord`]; 0 while its maker is writing it.
    off: AtomicU64,
}

static TABLE: [Slot; SLOTS] = [const { Slot { key: AtomicU64::new(0), off: AtomicU64::new(0) } }; SLOTS];

#[inline]
fn key_of(file: u64, function: u64, line: u32) -> u64 {
    let h = (file ^ function.rotate_left(21) ^ (line as u64).rotate_left(43)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (h ^ (h >> 29)) | 1
}

/// Bytes of the C string at `p`, at most [`MAX_LOCATION_TEXT`]; empty for null.
unsafe fn text<'a>(p: *const c_char) -> &'a [u8] {
    if p.is_null() {
        return &[];
    }
    let n = libc::strnlen(p, MAX_LOCATION_TEXT);
    core::slice::from_raw_parts(p as *const u8, n)
}

/// Offset of the record for `loc`, made on first use. Needs the session (ACTIVE).
fn intern(loc: *const Location) -> Option<u64> {
    if loc.is_null() {
        return None;
    }
    let loc = unsafe { &*loc };
    let (file, function) = (loc.file as u64, loc.function as u64);
    let key = key_of(file, function, loc.line);
    let mut i = (key >> 7) as usize % SLOTS;
    for _ in 0..SLOTS {
        let slot = &TABLE[i];
        let k = slot.key.load(Ordering::Acquire);
        if k == 0 {
            if slot.key.compare_exchange(0, key, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                let off = make_record(loc).unwrap_or(DEAD);
                slot.off.store(off, Ordering::Release);
                return (off != DEAD).then_some(off);
            }
            // Lost the race for this slot: look at it again.
            continue;
        }
        if k == key {
            let off = wait_for_record(slot);
            if off != DEAD && record_matches(off, loc) {
                return Some(off);
            }
        }
        i = (i + 1) % SLOTS;
    }
    None
}

/// The slot's record offset, once its maker has written it.
fn wait_for_record(slot: &Slot) -> u64 {
    let mut spins = 0u32;
    loop {
        let off = slot.off.load(Ordering::Acquire);
        if off != 0 {
            return off;
        }
        spins += 1;
        if spins > 1 << 20 {
            // Its maker is gone (a fork copied the slot half made): give up on it.
            let _ = slot.off.compare_exchange(0, DEAD, Ordering::AcqRel, Ordering::Acquire);
            return slot.off.load(Ordering::Acquire);
        }
        core::hint::spin_loop();
    }
}

/// Same pointers and line, and still the same text (a library unloaded and
/// another loaded in its place could reuse the addresses).
fn record_matches(off: u64, loc: &Location) -> bool {
    let rec = unsafe { &*session::at::<LocationRecord>(off) };
    if rec.file_ptr != loc.file as u64 || rec.function_ptr != loc.function as u64 || rec.line != loc.line {
        return false;
    }
    let base = off + core::mem::size_of::<LocationRecord>() as u64;
    let stored_file =
        unsafe { core::slice::from_raw_parts(session::at::<u8>(base), rec.file_len as usize) };
    let stored_function = unsafe {
        core::slice::from_raw_parts(session::at::<u8>(base + rec.file_len as u64), rec.function_len as usize)
    };
    unsafe { text(loc.file) == stored_file && text(loc.function) == stored_function }
}

fn make_record(loc: &Location) -> Option<u64> {
    let file = unsafe { text(loc.file) };
    let function = unsafe { text(loc.function) };
    let head = core::mem::size_of::<LocationRecord>() as u64;
    let off = session::carve(head + file.len() as u64 + function.len() as u64, 8)?;
    unsafe {
        let rec = session::at::<LocationRecord>(off);
        (*rec).file_ptr = loc.file as u64;
        (*rec).function_ptr = loc.function as u64;
        (*rec).line = loc.line;
        (*rec).file_len = file.len() as u32;
        (*rec).function_len = function.len() as u32;
        core::ptr::copy_nonoverlapping(file.as_ptr(), session::at::<u8>(off + head), file.len());
        core::ptr::copy_nonoverlapping(
            function.as_ptr(),
            session::at::<u8>(off + head + file.len() as u64),
            function.len(),
        );
    }
    Some(off)
}

// ---------------------------------------------------------------------------
// Allocation calls with a source location. Each goes through the ordinary
// hook (same trampoline convention: the stack walk starts at the program's
// frame) with the location pending.

crate::entry::export_hook!(leakscope_malloc_at => malloc_at_impl);

unsafe extern "C" fn malloc_at_impl(size: size_t, loc: *const Location, _pad: usize, sp: u64, bp: u64) -> *mut c_void {
    let _p = Pending::set(loc);
    hooks::malloc_impl(size, 0, 0, sp, bp)
}

crate::entry::export_hook!(leakscope_calloc_at => calloc_at_impl);

unsafe extern "C" fn calloc_at_impl(n: size_t, size: size_t, loc: *const Location, sp: u64, bp: u64) -> *mut c_void {
    let _p = Pending::set(loc);
    hooks::calloc_impl(n, size, 0, sp, bp)
}

crate::entry::export_hook!(leakscope_realloc_at => realloc_at_impl);

unsafe extern "C" fn realloc_at_impl(
    p: *mut c_void,
    size: size_t,
    loc: *const Location,
    sp: u64,
    bp: u64,
) -> *mut c_void {
    let _p = Pending::set(loc);
    hooks::realloc_impl(p, size, 0, sp, bp)
}

crate::entry::export_hook!(leakscope_free_at => free_at_impl);

unsafe extern "C" fn free_at_impl(p: *mut c_void, loc: *const Location, _pad: usize, sp: u64, bp: u64) {
    if p.is_null() {
        return;
    }
    let _p = Pending::set(loc);
    hooks::free_impl(p, 0, 0, sp, bp)
}

crate::entry::export_hook!(leakscope_strdup_at => strdup_at_impl);

unsafe extern "C" fn strdup_at_impl(s: *const c_char, loc: *const Location, _pad: usize, sp: u64, bp: u64) -> *mut c_char {
    let n = libc::strlen(s);
    copy_string(s, n, loc, sp, bp)
}

crate::entry::export_hook!(leakscope_strndup_at => strndup_at_impl);

unsafe extern "C" fn strndup_at_impl(s: *const c_char, max: size_t, loc: *const Location, sp: u64, bp: u64) -> *mut c_char {
    let n = libc::strnlen(s, max);
    copy_string(s, n, loc, sp, bp)
}

/// strdup/strndup: malloc'd like libc's own (which calls malloc).
unsafe fn copy_string(s: *const c_char, n: usize, loc: *const Location, sp: u64, bp: u64) -> *mut c_char {
    let p = {
        let _p = Pending::set(loc);
        hooks::malloc_impl(n + 1, 0, 0, sp, bp) as *mut c_char
    };
    if p.is_null() {
        *libc::__errno_location() = libc::ENOMEM;
        return p;
    }
    core::ptr::copy_nonoverlapping(s, p, n);
    *p.add(n) = 0;
    p
}

// ---------------------------------------------------------------------------
// Control.

/// Whether this copy of the library is the one the program's calls reach.
/// A program linked with `-lleakscope` that finds another file of it than
/// the one `leakscope run` preloads (LD_LIBRARY_PATH pointing at another
/// build) has two copies loaded: only the first in the search order traces,
/// the other passes calls on.
pub fn is_first_copy() -> bool {
    let found = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"leakscope_is_active".as_ptr()) } as u64;
    let (lo, hi) = own_code_range();
    found == 0 || (found >= lo && found < hi)
}

extern "C" {
    /// The ELF header of this library (defined by the linker).
    static __ehdr_start: u8;
}

/// This copy's code range, from its own program headers. (Taking the address
/// of one of our exported functions would not do: it may resolve to the other
/// copy's definition.)
fn own_code_range() -> (u64, u64) {
    let base = core::ptr::addr_of!(__ehdr_start) as u64;
    let eh = unsafe { &*(base as *const libc::Elf64_Ehdr) };
    let (mut lo, mut hi) = (u64::MAX, 0);
    for i in 0..eh.e_phnum as u64 {
        let ph = unsafe { &*((base + eh.e_phoff + i * eh.e_phentsize as u64) as *const libc::Elf64_Phdr) };
        if ph.p_type == libc::PT_LOAD && ph.p_flags & libc::PF_X != 0 {
            lo = lo.min(base + ph.p_vaddr);
            hi = hi.max(base + ph.p_vaddr + ph.p_memsz);
        }
    }
    (lo, hi)
}

/// Stop reporting new allocations until the matching [`leakscope_enable`].
#[no_mangle]
pub extern "C" fn leakscope_disable() {
    DISABLED.fetch_add(1, Ordering::AcqRel);
}

/// Undo one [`leakscope_disable`] (or `leakscope run --start-disabled`);
/// extra calls do nothing.
#[no_mangle]
pub extern "C" fn leakscope_enable() {
    let _ = DISABLED.fetch_update(Ordering::AcqRel, Ordering::Acquire, |d| d.checked_sub(1));
}

/// 1 when the program runs under leakscope (whether or not tracing is
/// disabled just now), 0 otherwise.
#[no_mangle]
pub extern "C" fn leakscope_is_active() -> c_int {
    (STATE.load(Ordering::Acquire) == ACTIVE) as c_int
}

/// Never report the block `p` points to (its start or inside it) as a leak;
/// what it points to counts as reachable. 1 if `p` is in a live heap block.
#[no_mangle]
pub extern "C" fn leakscope_ignore(p: *const c_void) -> c_int {
    if p.is_null() || STATE.load(Ordering::Acquire) != ACTIVE {
        return 0;
    }
    let Some(_g) = thread::enter() else { return 0 };
    let addr = p as u64;
    if live::add_flags(addr, entry_flags::IGNORED) {
        return 1;
    }
    match live::find_containing(addr) {
        Some(block) => live::add_flags(block.addr(), entry_flags::IGNORED) as c_int,
        None => 0,
    }
}

