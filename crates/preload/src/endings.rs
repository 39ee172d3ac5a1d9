//! How a process image ended, written into session files for the cases the
//! CLI cannot see itself (it learns the status only of the processes it reaps:
//! the program it started and orphans, since it is their subreaper):
//!
//! * `_exit()` / `_Exit()` called by the program: the status, and that the exit
//!   handlers did not run (state `QUICK_EXIT`);
//! * `execve()`: the new image marks the image it replaced (same pid, the
//!   previous session file) as `EXECED`. Done from the new image because glibc's
//!   exec family calls `execve` internally, past any hook;
//! * a traced parent reaping a child with `wait`, `waitpid`, `wait3`, `wait4`
//!   or `waitid`: the child's status goes into the child's last session file
//!   when the child could not record it itself (killed by a signal: `KILLED`;
//!   exited without running exit handlers: `QUICK_EXIT`).
//!
//! Nothing here allocates: paths are built on the stack, the files are read
//! and written with plain system calls.

use crate::lifecycle::{self, ACTIVE, STATE};
use crate::session::{self, PathBuf};
use core::mem::offset_of;
use core::sync::atomic::{AtomicUsize, Ordering};
use leakscope_format::layout::{self, state, Header};
use libc::{c_int, c_void, pid_t};

fn active() -> bool {
    STATE.load(Ordering::Acquire) == ACTIVE && session::is_mapped()
}

/// The program calls `_exit`/`_Exit`: no exit handler will run.
fn quick_exit(status: c_int) {
    if !active() {
        return;
    }
    let h = session::header();
    // A vfork child shares our memory (and our mapping): it must not end our image.
    if unsafe { libc::getpid() } as u32 != h.pid {
        return;
    }
    h.exit_code.store(status, Ordering::Relaxed);
    if h.state.compare_exchange(state::RUNNING, state::QUICK_EXIT, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
        session::set_end_time();
    }
}

/// `_exit` without going through the dynamic linker (nothing may allocate now).
unsafe fn exit_group(status: c_int) -> ! {
    loop {
        libc::syscall(libc::SYS_exit_group, status);
    }
}

#[no_mangle]
pub unsafe extern "C" fn _exit(status: c_int) -> ! {
    quick_exit(status);
    exit_group(status)
}

#[no_mangle]
pub unsafe extern "C" fn _Exit(status: c_int) -> ! {
    quick_exit(status);
    exit_group(status)
}

fn session_file(pid: u32, exec_index: u32) -> PathBuf {
    let mut path = PathBuf::new();
    path.push(lifecycle::session_dir())
        .push(b"/proc-")
        .push_num(pid as u64)
        .push(b"-")
        .push_num(exec_index as u64)
        .push(b".lsm");
    path
}

unsafe fn read_u32(fd: c_int, off: usize) -> Option<u32> {
    let mut v = 0u32;
    (libc::pread(fd, (&mut v as *mut u32).cast(), 4, off as i64) == 4).then_some(v)
}

unsafe fn write_bytes(fd: c_int, off: usize, bytes: &[u8]) {
    libc::pwrite(fd, bytes.as_ptr().cast(), bytes.len(), off as i64);
}

/// Whether `fd` is a session file of `pid`.
unsafe fn is_session_of(fd: c_int, pid: u32) -> bool {
    let mut magic = [0u8; 8];
    libc::pread(fd, magic.as_mut_ptr().cast(), 8, 0) == 8
        && magic == layout::MAGIC
        && read_u32(fd, offset_of!(Header, version)) == Some(layout::LAYOUT_VERSION)
        && read_u32(fd, offset_of!(Header, pid)) == Some(pid)
}

fn now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Sets the ending of the image in `fd` when it has none yet.
unsafe fn set_ending(fd: c_int, new_state: u32, value: i32) {
    let Some(current) = read_u32(fd, offset_of!(Header, state)) else { return };
    if current != state::RUNNING {
        return;
    }
    write_bytes(fd, offset_of!(Header, exit_code), &value.to_le_bytes());
    write_bytes(fd, offset_of!(Header, end_ns), &now_ns().to_le_bytes());
    write_bytes(fd, offset_of!(Header, state), &new_state.to_le_bytes());
}

/// At start-up of an image that is not its pid's first: the previous image of
/// this pid was replaced by exec (a pid is reused only after its process was
/// reaped, and a reaped process's image already has its ending, unless nobody
/// traced reaped it: see the note in `docs/json-report.md`).
pub fn mark_replaced_image() {
    let h = session::header();
    if h.exec_index == 0 {
        return;
    }
    let mut path = session_file(h.pid, h.exec_index - 1);
    unsafe {
        let fd = libc::open(path.c_str(), libc::O_RDWR | libc::O_CLOEXEC);
        if fd < 0 {
            return;
        }
        if is_session_of(fd, h.pid) {
            set_ending(fd, state::EXECED, 0);
        }
        libc::close(fd);
    }
}

/// A traced parent reaped `pid` with wait status `status`.
fn reaped(pid: pid_t, status: c_int) {
    if !active() || pid <= 0 {
        return;
    }
    let (new_state, value) = if libc::WIFEXITED(status) {
        (state::QUICK_EXIT, libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        (state::KILLED, libc::WTERMSIG(status))
    } else {
        return;
    };
    // Its last image is the one that ended.
    let mut last = -1;
    for n in 0..1000u32 {
        let mut path = session_file(pid as u32, n);
        let fd = unsafe { libc::open(path.c_str(), libc::O_RDWR | libc::O_CLOEXEC) };
        if fd < 0 {
            break;
        }
        if last >= 0 {
            unsafe { libc::close(last) };
        }
        last = fd;
    }
    if last < 0 {
        return;
    }
    unsafe {
        if is_session_of(last, pid as u32) {
            set_ending(last, new_state, value);
        }
        libc::close(last);
    }
}

type WaitpidFn = unsafe extern "C" fn(pid_t, *mut c_int, c_int) -> pid_t;
type Wait4Fn = unsafe extern "C" fn(pid_t, *mut c_int, c_int, *mut libc::rusage) -> pid_t;
type WaitidFn = unsafe extern "C" fn(libc::idtype_t, libc::id_t, *mut libc::siginfo_t, c_int) -> c_int;

static WAITPID: AtomicUsize = AtomicUsize::new(0);
static WAIT4: AtomicUsize = AtomicUsize::new(0);
static WAITID: AtomicUsize = AtomicUsize::new(0);

/// The next definition of `name`, looked up once (as leakscope's own call:
/// what dlsym allocates is recorded as internal).
fn next(slot: &AtomicUsize, name_nul: &[u8]) -> usize {
    let f = slot.load(Ordering::Acquire);
    if f != 0 {
        return f;
    }
    let _g = crate::thread::enter();
    let f = crate::real::lookup(name_nul);
    slot.store(f, Ordering::Release);
    f
}

unsafe fn real_wait4(pid: pid_t, status: *mut c_int, options: c_int, ru: *mut libc::rusage) -> pid_t {
    let f = next(&WAIT4, b"wait4\0");
    if f == 0 {
        return libc::syscall(libc::SYS_wait4, pid, status, options, ru) as pid_t;
    }
    core::mem::transmute::<usize, Wait4Fn>(f)(pid, status, options, ru)
}

#[no_mangle]
pub unsafe extern "C" fn waitpid(pid: pid_t, status: *mut c_int, options: c_int) -> pid_t {
    let mut local = 0;
    let st = if status.is_null() { &mut local as *mut c_int } else { status };
    let f = next(&WAITPID, b"waitpid\0");
    let r = if f == 0 {
        real_wait4(pid, st, options, core::ptr::null_mut())
    } else {
        core::mem::transmute::<usize, WaitpidFn>(f)(pid, st, options)
    };
    if r > 0 {
        reaped(r, *st);
    }
    r
}

#[no_mangle]
pub unsafe extern "C" fn wait(status: *mut c_int) -> pid_t {
    waitpid(-1, status, 0)
}

#[no_mangle]
pub unsafe extern "C" fn wait3(status: *mut c_int, options: c_int, ru: *mut libc::rusage) -> pid_t {
    wait4(-1, status, options, ru)
}

#[no_mangle]
pub unsafe extern "C" fn wait4(pid: pid_t, status: *mut c_int, options: c_int, ru: *mut libc::rusage) -> pid_t {
    let mut local = 0;
    let st = if status.is_null() { &mut local as *mut c_int } else { status };
    let r = real_wait4(pid, st, options, ru);
    if r > 0 {
        reaped(r, *st);
    }
    r
}

#[no_mangle]
pub unsafe extern "C" fn waitid(idtype: libc::idtype_t, id: libc::id_t, info: *mut libc::siginfo_t, options: c_int) -> c_int {
    let f = next(&WAITID, b"waitid\0");
    let r = if f == 0 {
        libc::syscall(libc::SYS_waitid, idtype, id, info, options, core::ptr::null_mut::<c_void>()) as c_int
    } else {
        core::mem::transmute::<usize, WaitidFn>(f)(idtype, id, info, options)
    };
    if r == 0 && !info.is_null() && options & libc::WNOWAIT == 0 {
        let pid = (*info).si_pid();
        let value = (*info).si_status();
        match (*info).si_code {
            libc::CLD_EXITED => reaped(pid, (value & 0xff) << 8),
            libc::CLD_KILLED | libc::CLD_DUMPED => reaped(pid, value & 0x7f),
            _ => {}
        }
    }
    r
}
