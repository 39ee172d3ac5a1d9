//! leakscope as the subreaper of everything the traced program starts.
//!
//! With `PR_SET_CHILD_SUBREAPER`, a descendant whose parent ends (a daemon
//! that double-forked, a child its parent never waited for) is reparented to
//! leakscope instead of init, so leakscope reaps it and learns how it ended.
//! `run` waits for the program itself ([`wait_for_child`]), then for every
//! descendant still running ([`wait_for_descendants`]) before it reads the
//! session files. A descendant reaped by its own (traced) parent is not seen
//! here: the preload writes that ending into the child's session file.

use crate::launch::Status;
use leakscope_format::model::{Ending, Trace};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A process leakscope reaped, and how it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reaped {
    pub pid: u32,
    pub status: Status,
}

static REAPED: Mutex<Vec<Reaped>> = Mutex::new(Vec::new());

/// Makes leakscope the reaper of its orphaned descendants. Best effort: on
/// failure (very old kernels) orphans go to init and end as "unknown".
pub fn become_subreaper() -> bool {
    // SAFETY: plain prctl call.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0 }
}

/// Everything reaped so far, in the order it was reaped.
pub fn reaped() -> Vec<Reaped> {
    REAPED.lock().map(|v| v.clone()).unwrap_or_default()
}

fn record(pid: libc::pid_t, raw: libc::c_int) -> Status {
    let status = decode(raw);
    if let Ok(mut v) = REAPED.lock() {
        v.push(Reaped { pid: pid as u32, status });
    }
    status
}

pub fn decode(raw: libc::c_int) -> Status {
    if libc::WIFSIGNALED(raw) {
        Status::Signaled(libc::WTERMSIG(raw))
    } else if libc::WIFEXITED(raw) {
        Status::Exited(libc::WEXITSTATUS(raw))
    } else {
        Status::Exited(raw)
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Waits until `pid` (leakscope's own child) ends and reaps it, reaping any
/// orphan that ends meanwhile. `before_reap` runs once `pid` has ended but
/// before it is reaped (while its pid cannot be reused).
pub fn wait_for_child(pid: libc::pid_t, before_reap: impl FnOnce()) -> std::io::Result<Status> {
    let mut before_reap = Some(before_reap);
    loop {
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: info is a valid out pointer.
        let rc = unsafe { libc::waitid(libc::P_ALL, 0, &mut info, libc::WEXITED | libc::WNOWAIT) };
        if rc != 0 {
            if errno() == libc::EINTR {
                continue;
            }
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: waitid filled in a child's siginfo.
        let who = unsafe { info.si_pid() };
        if who == pid {
            if let Some(f) = before_reap.take() {
                f();
            }
        }
        let mut raw = 0;
        // SAFETY: who has ended and is ours; reaping it cannot block.
        let got = loop {
            let r = unsafe { libc::waitpid(who, &mut raw, 0) };
            if r >= 0 || errno() != libc::EINTR {
                break r;
            }
        };
        if got == who {
            let status = record(who, raw);
            if who == pid {
                return Ok(status);
            }
        } else if who == pid {
            return Err(std::io::Error::last_os_error());
        }
    }
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn stop_waiting(_sig: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// How long descendants may run on before leakscope says it is waiting for them.
const QUIET_WAIT: Duration = Duration::from_secs(1);

/// After the program ended: reaps every descendant it left running, until
/// none is left, or until leakscope is interrupted (SIGINT, or a SIGTERM or
/// SIGHUP, which `launch` keeps to honour after the report). Returns the pids
/// of our children still running when waiting stopped.
pub fn wait_for_descendants(prog: &str) -> Vec<u32> {
    let started = Instant::now();
    let mut told = false;
    let mut pause = Duration::from_millis(1);
    // SIGINT (ignored while the program ran) now means: stop waiting.
    // SAFETY: installing a handler that only stores to an atomic.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = stop_waiting as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGINT, &sa, std::ptr::null_mut());
    }
    let still_running = loop {
        let mut raw = 0;
        // SAFETY: raw is a valid out pointer.
        let r = unsafe { libc::waitpid(-1, &mut raw, libc::WNOHANG) };
        if r > 0 {
            record(r, raw);
            pause = Duration::from_millis(1);
            continue;
        }
        if r < 0 && errno() == libc::EINTR {
            continue;
        }
        if r < 0 {
            // ECHILD: no descendant is left.
            break Vec::new();
        }
        if STOP.load(Ordering::SeqCst) || crate::launch::termination_requested() {
            break children();
        }
        if !told && started.elapsed() >= QUIET_WAIT {
            told = true;
            let pids = children();
            let list = if pids.is_empty() {
                String::new()
            } else {
                format!(" (pid {})", pids.iter().map(u32::to_string).collect::<Vec<_>>().join(", "))
            };
            eprintln!(
                "leakscope: {prog} has ended; waiting for the processes it left running{list}. \
                 Interrupt leakscope (Ctrl-C) to report them as they are now."
            );
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    };
    // Back to ignoring SIGINT until the report is written (see `launch`).
    // SAFETY: plain signal() call.
    unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };
    still_running
}

/// leakscope's children (its own and adopted orphans), from /proc.
fn children() -> Vec<u32> {
    let me = std::process::id();
    let Ok(text) = std::fs::read_to_string(format!("/proc/self/task/{me}/children")) else { return Vec::new() };
    text.split_whitespace().filter_map(|s| s.parse().ok()).collect()
}

/// Gives each process leakscope reaped the ending it saw: the last image of
/// that pid, unless that image was replaced by exec (into a program that
/// leakscope does not trace) and so keeps "exec".
pub fn apply_endings(trace: &mut Trace, reaped: &[Reaped]) {
    for r in reaped {
        let last = trace.processes.iter_mut().filter(|p| p.pid == r.pid).max_by_key(|p| p.exec_index);
        if let Some(p) = last {
            if p.ending != Ending::Execed {
                p.ending = match r.status {
                    Status::Exited(c) => Ending::Exited(c),
                    Status::Signaled(s) => Ending::Signaled(s),
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use leakscope_format::model::ProcessTrace;

    fn p(pid: u32, exec_index: u32, ending: Ending) -> ProcessTrace {
        ProcessTrace { ending, ..crate::collect::empty_process(pid, exec_index) }
    }

    #[test]
    fn reaped_endings_go_to_the_last_image_unless_it_execed() {
        let mut t = Trace {
            processes: vec![
                p(10, 0, Ending::Execed),
                p(10, 1, Ending::Unknown),
                p(11, 0, Ending::Execed),
                p(12, 0, Ending::Exited(0)),
                p(13, 0, Ending::Unknown),
            ],
        };
        let reaped = [
            Reaped { pid: 10, status: Status::Signaled(9) },
            Reaped { pid: 11, status: Status::Exited(4) },
            Reaped { pid: 12, status: Status::Exited(7) },
            Reaped { pid: 99, status: Status::Exited(1) },
        ];
        apply_endings(&mut t, &reaped);
        let got: Vec<Ending> = t.processes.iter().map(|p| p.ending).collect();
        assert_eq!(
            got,
            [Ending::Execed, Ending::Signaled(9), Ending::Execed, Ending::Exited(7), Ending::Unknown]
        );
    }

    #[test]
    fn wait_statuses_decode() {
        assert_eq!(decode(3 << 8), Status::Exited(3));
        assert_eq!(decode(9), Status::Signaled(9));
        assert_eq!(decode(11 | 0x80), Status::Signaled(11));
    }
}
