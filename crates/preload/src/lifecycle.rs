//! Start-up, fork and exit.

use crate::{live, modules, real, session, spin, stacks, thread};
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering, AtomicU8};
use leakscope_format::layout;

pub const UNINIT: u32 = 0;
pub const INITIALIZING: u32 = 1;
pub const ACTIVE: u32 = 2;
/// No session (not started by the CLI) or it could not be set up: forward only.
pub const PASSTHROUGH: u32 = 3;

pub static STATE: AtomicU32 = AtomicU32::new(UNINIT);
/// Live-entry flags of blocks that are never the program's leaks.
pub const UNREPORTED_FLAGS: u8 =
    layout::entry_flags::INTERNAL | layout::entry_flags::INHERITED | layout::entry_flags::IGNORED;
/// What to record of each free, to show where a double-freed block was first
/// freed ([`free_stacks`]): walking a full stack on every free doubles the
/// cost of tracing, so the default is the call site alone.
pub static FREE_STACKS: AtomicU8 = AtomicU8::new(free_stacks::SITE);

pub mod free_stacks {
    pub const NONE: u8 = 0;
    /// The free call's return address: function, file and line of the call.
    pub const SITE: u8 = 1;
    pub const FULL: u8 = 2;
}
/// Nesting depth of `leakscope_disable()` (process-wide; see `api.rs`):
/// while above 0, new blocks are recorded IGNORED. `leakscope run
/// --start-disabled` (LEAKSCOPE_START_DISABLED=1) starts it at 1.
pub static DISABLED: AtomicU32 = AtomicU32::new(0);

#[inline(always)]
pub fn tracing_disabled() -> bool {
    DISABLED.load(Ordering::Relaxed) != 0
}
/// Classify the blocks still live at exit (LEAKSCOPE_SCAN=0 turns it off).
pub static SCAN_AT_EXIT: AtomicBool = AtomicBool::new(true);
/// Test mode: redo every stack walk from scratch and count differences.
pub static CHECK_WALKS: AtomicBool = AtomicBool::new(false);

/// Session directory, copied at start-up: the program may change its environment.
static mut SESSION_DIR: [u8; 1024] = [0; 1024];
static mut SESSION_DIR_LEN: usize = 0;

pub(crate) fn session_dir() -> &'static [u8] {
    unsafe { &(&*core::ptr::addr_of!(SESSION_DIR))[..SESSION_DIR_LEN] }
}

#[used]
#[link_section = ".init_array"]
static CONSTRUCTOR: extern "C" fn() = constructor;

extern "C" fn constructor() {
    ensure_init();
}

/// How the current call must be handled.
pub enum Mode {
    /// Record it (we hold the hook guard).
    Track(thread::HookGuard),
    /// leakscope itself (or libc working for it) is calling: forward, record as internal.
    Nested,
    /// Not tracing: forward only.
    Passthrough,
}

#[inline(always)]
pub fn mode() -> Mode {
    if STATE.load(Ordering::Acquire) == ACTIVE {
        match thread::enter() {
            Some(g) => Mode::Track(g),
            None => Mode::Nested,
        }
    } else {
        mode_slow()
    }
}

#[cold]
fn mode_slow() -> Mode {
    loop {
        match STATE.load(Ordering::Acquire) {
            ACTIVE => return mode(),
            PASSTHROUGH => return Mode::Passthrough,
            UNINIT => ensure_init(),
            _ => {
                // Initialising: on this thread that is us, underneath; elsewhere wait for it.
                if thread::in_hook() {
                    return Mode::Nested;
                }
                core::hint::spin_loop();
            }
        }
    }
}

pub fn ensure_init() {
    if STATE.compare_exchange(UNINIT, INITIALIZING, Ordering::AcqRel, Ordering::Acquire).is_err() {
        return;
    }
    let Some(_guard) = thread::enter() else {
        STATE.store(PASSTHROUGH, Ordering::Release);
        return;
    };
    // dlsym may allocate: with the guard set and nothing resolved yet, that is
    // served from the bootstrap pool.
    if !real::resolve_all() {
        STATE.store(PASSTHROUGH, Ordering::Release);
        return;
    }
    crate::hooks_mmap::resolve();
    if !crate::api::is_first_copy() {
        STATE.store(PASSTHROUGH, Ordering::Release);
        return;
    }
    let dir = unsafe { libc::getenv(c"LEAKSCOPE_SESSION".as_ptr()) };
    if dir.is_null() {
        STATE.store(PASSTHROUGH, Ordering::Release);
        return;
    }
    let dir = unsafe { core::ffi::CStr::from_ptr(dir) }.to_bytes();
    if dir.is_empty() || dir.len() >= 1024 {
        STATE.store(PASSTHROUGH, Ordering::Release);
        return;
    }
    unsafe {
        (&mut *core::ptr::addr_of_mut!(SESSION_DIR))[..dir.len()].copy_from_slice(dir);
        SESSION_DIR_LEN = dir.len();
    }
    let free_stacks = unsafe { libc::getenv(c"LEAKSCOPE_FREE_STACKS".as_ptr()) };
    if !free_stacks.is_null() {
        let mode = match unsafe { core::ffi::CStr::from_ptr(free_stacks) }.to_bytes() {
            b"0" | b"none" => free_stacks::NONE,
            b"1" | b"full" => free_stacks::FULL,
            _ => free_stacks::SITE,
        };
        FREE_STACKS.store(mode, Ordering::Relaxed);
    }
    let start_disabled = unsafe { libc::getenv(c"LEAKSCOPE_START_DISABLED".as_ptr()) };
    if !start_disabled.is_null() && unsafe { *start_disabled } == b'1' as libc::c_char {
        DISABLED.store(1, Ordering::Relaxed);
    }
    let scan = unsafe { libc::getenv(c"LEAKSCOPE_SCAN".as_ptr()) };
    if !scan.is_null() && unsafe { *scan } == b'0' as libc::c_char {
        SCAN_AT_EXIT.store(false, Ordering::Relaxed);
    }
    let private = unsafe { libc::getenv(c"LEAKSCOPE_PRIVATE_TABLES".as_ptr()) };
    if !private.is_null() && unsafe { *private } == b'1' as libc::c_char {
        session::PRIVATE_TABLES.store(true, Ordering::Relaxed);
    }
    let debug_scan = unsafe { libc::getenv(c"LEAKSCOPE_DEBUG_SCAN".as_ptr()) };
    if !debug_scan.is_null() && unsafe { *debug_scan } == b'1' as libc::c_char {
        crate::scan::DEBUG.store(true, Ordering::Relaxed);
    }
    let check_signal = unsafe { libc::getenv(c"LEAKSCOPE_CHECK_SIGNAL".as_ptr()) };
    let check_signal = (!check_signal.is_null())
        .then(|| unsafe { libc::atoi(check_signal) })
        .filter(|&s| s > 0 && s < 65);
    let check = unsafe { libc::getenv(c"LEAKSCOPE_CHECK_WALKS".as_ptr()) };
    if !check.is_null() && unsafe { *check } == b'1' as libc::c_char {
        CHECK_WALKS.store(true, Ordering::Relaxed);
    }
    if !session::create(session_dir()) {
        crate::notice::Line::new().str("leakscope: cannot create the session file; not tracing").emit();
        STATE.store(PASSTHROUGH, Ordering::Release);
        return;
    }
    unsafe { (*session::at::<layout::Header>(0)).exit_code.store(i32::MIN, Ordering::Relaxed) };
    crate::endings::mark_replaced_image();
    thread::init_key();
    modules::refresh_if_changed();
    let (lo, hi) = modules::self_range();
    unsafe {
        let h = session::at::<layout::Header>(0);
        (*h).self_lo = lo;
        (*h).self_hi = hi;
    }
    STATE.store(ACTIVE, Ordering::Release);
    // These may allocate; now that we are active, such blocks are recorded as internal.
    unsafe {
        on_exit(at_exit, core::ptr::null_mut());
        libc::pthread_atfork(Some(fork_prepare), Some(fork_parent), Some(fork_child));
    }
    if let Some(signal) = check_signal {
        crate::check::start_on_signal(signal);
    }
}

extern "C" {
    /// Like atexit (same list, same order), but the handler gets the exit status.
    fn on_exit(f: extern "C" fn(libc::c_int, *mut libc::c_void), arg: *mut libc::c_void) -> libc::c_int;
}

/// Registered first, so it runs last among the exit handlers (after the
/// program's and after `_dl_fini`'s destructors).
extern "C" fn at_exit(status: libc::c_int, _arg: *mut libc::c_void) {
    // The status given to exit() or returned from main.
    session::header().exit_code.store(status, Ordering::Relaxed);
    let caller = crate::scan::Caller::here();
    let Some(_g) = thread::enter() else { return };
    free_runtime_caches();
    if SCAN_AT_EXIT.load(Ordering::Relaxed) {
        crate::scan::scan(&caller);
    }
    thread::flush_current_stats();
    let h = session::header();
    session::set_end_time();
    h.state.store(layout::state::EXITED, Ordering::Release);
    session::write_out_private_tables();
}

/// glibc and libstdc++ keep one-time allocations until exit and free them only
/// on request; Valgrind requests it too, so they are not reported as leaks.
fn free_runtime_caches() {
    let cxx = real::lookup(b"_ZN9__gnu_cxx9__freeresEv\0");
    if cxx != 0 {
        let f: extern "C" fn() = unsafe { core::mem::transmute(cxx) };
        f();
    }
    let libc_freeres = real::lookup(b"__libc_freeres\0");
    if libc_freeres != 0 {
        let f: extern "C" fn() = unsafe { core::mem::transmute(libc_freeres) };
        f();
    }
}

/// Record the status given to exit() (returning from main does not pass here;
/// the CLI then takes the status from waitpid).
#[no_mangle]
pub unsafe extern "C" fn exit(status: libc::c_int) -> ! {
    if STATE.load(Ordering::Acquire) == ACTIVE {
        session::header().exit_code.store(status, Ordering::Relaxed);
    }
    let next = real::lookup(b"exit\0");
    let f: extern "C" fn(libc::c_int) -> ! = core::mem::transmute(next);
    f(status)
}

static FORK_LOCK: AtomicU32 = AtomicU32::new(0);
/// The child copies the parent's session file through the mapping it shares
/// with the parent, so the parent must keep every lock (and change nothing)
/// until the copy is done: the child writes a byte on this pipe then, and the
/// parent waits for it (or for end-of-file, if the child died first).
/// Guarded by FORK_LOCK.
static mut FORK_PIPE: [libc::c_int; 2] = [-1, -1];

extern "C" fn fork_prepare() {
    if STATE.load(Ordering::Acquire) != ACTIVE {
        return;
    }
    spin::acquire_raw(&FORK_LOCK);
    modules::lock_refresh();
    live::lock_all();
    stacks::lock_all();
    crate::regions::lock();
    unsafe {
        let fds = &mut *core::ptr::addr_of_mut!(FORK_PIPE);
        if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
            *fds = [-1, -1];
        }
    }
}

extern "C" fn fork_parent() {
    if STATE.load(Ordering::Acquire) != ACTIVE {
        return;
    }
    unsafe {
        let fds = &mut *core::ptr::addr_of_mut!(FORK_PIPE);
        if fds[0] >= 0 {
            libc::close(fds[1]);
            let mut byte = 0u8;
            while libc::read(fds[0], (&mut byte as *mut u8).cast(), 1) < 0
                && *libc::__errno_location() == libc::EINTR
            {}
            libc::close(fds[0]);
            *fds = [-1, -1];
        }
    }
    crate::regions::unlock();
    stacks::unlock_all();
    live::unlock_all();
    modules::unlock_refresh();
    spin::release_raw(&FORK_LOCK);
}

extern "C" fn fork_child() {
    if STATE.load(Ordering::Acquire) != ACTIVE {
        return;
    }
    // Still holding every lock (in the parent's file): copy, then clear the copy's locks.
    if session::fork_child_copy(session_dir()) {
        live::mark_all_inherited();
        crate::freed::release_all_but(crate::thread::current_freed_ring());
        crate::regions::mark_all_inherited();
        crate::regions::unlock();
        stacks::unlock_all();
        live::unlock_all();
    } else {
        // The locks live in the parent's file: leave them to the parent.
        STATE.store(PASSTHROUGH, Ordering::Release);
    }
    modules::unlock_refresh();
    unsafe {
        let fds = &mut *core::ptr::addr_of_mut!(FORK_PIPE);
        if fds[0] >= 0 {
            libc::close(fds[0]);
            libc::write(fds[1], b"c".as_ptr().cast(), 1);
            libc::close(fds[1]);
            *fds = [-1, -1];
        }
    }
    spin::release_raw(&FORK_LOCK);
}
