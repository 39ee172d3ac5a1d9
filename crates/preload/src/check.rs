//! On-demand reachability checks while the program runs: `leakscope_check()`
//! from the program, or a signal chosen with `leakscope run --check-on-signal`.
//!
//! A scan cannot run inside a signal handler (it reads /proc and asks the
//! loader about modules), so the handler only wakes a leakscope thread that
//! does the scan; the CLI notices the new result in the session file.

use crate::scan::{self, Caller};
use crate::thread;
use core::sync::atomic::{AtomicU32, Ordering};

static REQUESTS: AtomicU32 = AtomicU32::new(0);

extern "C" fn on_check_signal(_sig: i32) {
    let saved_errno = unsafe { *libc::__errno_location() };
    REQUESTS.fetch_add(1, Ordering::AcqRel);
    unsafe { libc::syscall(libc::SYS_futex, REQUESTS.as_ptr(), libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG, 1) };
    unsafe { *libc::__errno_location() = saved_errno };
}

extern "C" fn checker(_arg: *mut libc::c_void) -> *mut libc::c_void {
    let mut done = 0u32;
    loop {
        let requested = REQUESTS.load(Ordering::Acquire);
        if requested == done {
            unsafe {
                libc::syscall(
                    libc::SYS_futex,
                    REQUESTS.as_ptr(),
                    libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
                    requested,
                    core::ptr::null::<libc::timespec>(),
                )
            };
            continue;
        }
        done = requested;
        if let Some(_g) = thread::enter() {
            scan::scan(&Caller::here());
        }
    }
}

/// Start the checker thread and route `signal` to it. Called at start-up, once active.
pub fn start_on_signal(signal: i32) {
    let mut t: libc::pthread_t = 0;
    if unsafe { libc::pthread_create(&mut t, core::ptr::null(), checker, core::ptr::null_mut()) } != 0 {
        return;
    }
    let mut act: libc::sigaction = unsafe { core::mem::zeroed() };
    act.sa_sigaction = on_check_signal as *const () as usize;
    act.sa_flags = libc::SA_RESTART;
    unsafe {
        libc::sigemptyset(&mut act.sa_mask);
        libc::sigaction(signal, &act, core::ptr::null_mut());
    }
}

/// Scan now, from the calling thread, and return how many of the program's
/// blocks are lost (definitely or indirectly). The report at exit
/// and `leakscope snapshot` show the details. 0 when not running under leakscope.
#[no_mangle]
pub extern "C" fn leakscope_check() -> libc::c_ulong {
    if crate::lifecycle::STATE.load(Ordering::Acquire) != crate::lifecycle::ACTIVE {
        return 0;
    }
    let caller = Caller::here();
    match thread::enter() {
        Some(_g) => scan::scan(&caller) as libc::c_ulong,
        None => 0,
    }
}
