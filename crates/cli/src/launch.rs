//! Spawning the traced program, relaying signals to it and waiting for it.
//!
//! While the program runs, leakscope ignores SIGINT and SIGQUIT (the terminal
//! sends them to the program too, and leakscope must survive to report) and
//! forwards SIGTERM, SIGHUP, SIGUSR1 and SIGUSR2 to it.

use crate::fail::{Fail, CANNOT_TRACE, NOT_FOUND};
use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicI32, Ordering};

const IGNORED: [libc::c_int; 2] = [libc::SIGINT, libc::SIGQUIT];
const FORWARDED: [libc::c_int; 4] = [libc::SIGTERM, libc::SIGHUP, libc::SIGUSR1, libc::SIGUSR2];

/// Pid to forward signals to; 0 while there is none (not yet spawned, or already ended).
static CHILD: AtomicI32 = AtomicI32::new(0);
/// A forwardable signal that arrived before the child existed.
static PENDING: AtomicI32 = AtomicI32::new(0);

/// What to run.
pub struct Launch {
    /// The file to execute (resolved already).
    pub program: PathBuf,
    /// argv, argv[0] as the user typed it.
    pub argv: Vec<OsString>,
    /// Variables to set in the program's environment.
    pub env: Vec<(OsString, OsString)>,
}

/// How the program ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Exited(i32),
    Signaled(i32),
}

impl Status {
    /// The shell's convention: the exit code, or 128 + the signal number.
    pub fn exit_code(self) -> i32 {
        match self {
            Status::Exited(c) => c,
            Status::Signaled(s) => 128 + s,
        }
    }
}

/// Runs the program to its end, with stdio inherited.
pub fn run(launch: &Launch) -> Result<(u32, Status), Fail> {
    install_handlers();
    let mut cmd = Command::new(&launch.program);
    cmd.arg0(&launch.argv[0]).args(&launch.argv[1..]);
    for (k, v) in &launch.env {
        cmd.env(k, v);
    }
    // SAFETY: the closure only calls signal(), which is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            // Ignored dispositions survive exec; the program must get the defaults.
            for s in IGNORED {
                libc::signal(s, libc::SIG_DFL);
            }
            Ok(())
        });
    }
    crate::reaper::become_subreaper();
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            restore_handlers();
            let status = if e.kind() == std::io::ErrorKind::NotFound { NOT_FOUND } else { CANNOT_TRACE };
            return Err(Fail::new(status, format!("cannot run {}: {e}", launch.program.display())));
        }
    };
    let pid = child.id();
    CHILD.store(pid as i32, Ordering::SeqCst);
    let early = PENDING.swap(0, Ordering::SeqCst);
    if early != 0 {
        // SAFETY: pid is our unreaped child.
        unsafe { libc::kill(pid as i32, early) };
    }
    // Stop forwarding once it has ended but before it is reaped, so a signal
    // forwarded meanwhile can never reach a recycled pid. Orphaned
    // descendants (leakscope is their subreaper) are reaped meanwhile.
    drop(child);
    let status = crate::reaper::wait_for_child(pid as i32, || CHILD.store(0, Ordering::SeqCst))
        .map_err(|e| Fail::new(crate::fail::FAILURE, format!("waiting for the program failed: {e}")))?;
    Ok((pid, status))
}

/// Whether a SIGTERM or SIGHUP came after the program ended (kept to be
/// honoured once the report is written).
pub fn termination_requested() -> bool {
    matches!(PENDING.load(Ordering::SeqCst), libc::SIGTERM | libc::SIGHUP)
}

extern "C" fn forward(sig: libc::c_int) {
    let pid = CHILD.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(pid, sig) };
    } else {
        PENDING.store(sig, Ordering::SeqCst);
    }
}

fn install_handlers() {
    // SAFETY: plain sigaction calls with a valid handler.
    unsafe {
        // Inherited SIG_IGN for SIGCHLD would reap the child behind our back.
        libc::signal(libc::SIGCHLD, libc::SIG_DFL);
        for s in IGNORED {
            libc::signal(s, libc::SIG_IGN);
        }
        for s in FORWARDED {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = forward as extern "C" fn(libc::c_int) as usize;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(s, &sa, std::ptr::null_mut());
        }
    }
}

/// Back to the default dispositions, once the program is gone and its files are read.
pub fn restore_handlers() {
    // SAFETY: plain signal() calls.
    unsafe {
        for s in IGNORED.into_iter().chain(FORWARDED) {
            libc::signal(s, libc::SIG_DFL);
        }
    }
    let pending = PENDING.swap(0, Ordering::SeqCst);
    if pending != 0 && pending != libc::SIGUSR1 && pending != libc::SIGUSR2 {
        // A termination request that came while we were still collecting: honour it now.
        // SAFETY: raising a signal on ourselves.
        unsafe { libc::raise(pending) };
    }
}

/// A signal given by name ("SIGUSR2", "USR2") or number.
pub fn parse_signal(s: &str) -> Result<i32, String> {
    if let Ok(n) = s.parse::<i32>() {
        return if (1..65).contains(&n) { Ok(n) } else { Err(format!("no signal number {n}")) };
    }
    let name = s.to_ascii_uppercase();
    let name = if name.starts_with("SIG") { name } else { format!("SIG{name}") };
    (1..32)
        .find(|&n| signal_name(n) == Some(name.as_str()))
        .filter(|&n| n != libc::SIGKILL && n != libc::SIGSTOP)
        .ok_or_else(|| format!("unknown or uncatchable signal '{s}'"))
}

/// The name of a signal, e.g. "SIGSEGV".
pub fn signal_name(sig: i32) -> Option<&'static str> {
    Some(match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGSYS => "SIGSYS",
        _ => return None,
    })
}
