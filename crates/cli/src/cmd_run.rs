//! `leakscope run -- PROG ARGS...`: check, spawn with the preload library,
//! wait, read the session files, report.

use crate::args::RunArgs;
use crate::launch::{self, Launch};
use crate::pipeline::{self, Problems};
use crate::session_dir::SessionDir;
use crate::{collect, output, preload_path, reaper, resolve};
use crate::args::OutputArgs;
use crate::collect::ProcessNote;
use anyhow::{Context, Result};
use leakscope_analyse::report::Report;
use leakscope_format::model::Trace;
use std::path::PathBuf;
use leakscope_format::session::SESSION_ENV;
use std::ffi::OsString;

pub fn run(args: &RunArgs) -> Result<i32> {
    let prog = &args.command[0];
    let program = resolve::resolve_and_check(prog)?;
    let lib = preload_path::find()?;
    let mut session = SessionDir::create()?;

    let mut env = vec![
        (OsString::from("LD_PRELOAD"), preload_path::ld_preload_value(&lib, std::env::var_os("LD_PRELOAD"))),
        (OsString::from(SESSION_ENV), session.path().as_os_str().to_os_string()),
    ];
    env.push((OsString::from("LEAKSCOPE_FREE_STACKS"), OsString::from(&args.free_stacks)));
    if let Some(signal) = args.check_on_signal {
        env.push((OsString::from("LEAKSCOPE_CHECK_SIGNAL"), OsString::from(signal.to_string())));
    }
    if args.start_disabled {
        env.push((OsString::from("LEAKSCOPE_START_DISABLED"), OsString::from("1")));
    }
    // Reports on-demand checks: the signal's, and leakscope_check() calls from the program.
    let watcher = Some(crate::checks::Watcher::start(session.path().to_path_buf(), &args.out));
    let reporter = Reporter::start([Some(program.clone()), own_libc()], args.out.clone());
    let launch = Launch { program, argv: args.command.clone(), env };
    let (pid, status) = launch::run(&launch)?;
    if let Some(w) = watcher {
        w.stop();
    }
    // Descendants it left running (daemons, children it did not wait for) are reported too.
    reaper::wait_for_descendants(&prog.to_string_lossy());

    let collected = collect::collect(session.path(), Some((pid, status))).map(|mut c| {
        reaper::apply_endings(&mut c.trace, &reaper::reaped());
        crate::shm_end::check(&mut c.trace);
        c
    });
    if let Err(e) = session.remove() {
        eprintln!("leakscope: warning: cannot remove the session directory {}: {e}", session.path().display());
    }
    launch::restore_handlers();
    let collected =
        collected.with_context(|| format!("cannot read the session directory {}", session.path().display()))?;

    if collected.files == 0 {
        eprintln!(
            "leakscope: {} wrote no session file: leakscope's preload library was not loaded into it (is it a \
             program for another architecture, or does it clear LD_PRELOAD?), so there is nothing to report",
            prog.to_string_lossy()
        );
    }

    let mut problems = Problems::default();
    if let Some(path) = &args.save_trace {
        problems.check(output::save_trace(&collected.trace, path));
    }
    let report = reporter.report(collected.trace, collected.notes, &args.out, &mut problems);
    problems.finish()?;
    Ok(pipeline::exit_status(status.exit_code(), &report, &args.out))
}

/// Makes the report on its own thread, which meanwhile (while the program
/// runs, on the other core) has the symbolizer read the debug information the
/// report will almost surely need: the program's and libc's. (blazesym's
/// symbolizer cannot move between threads, so the report is made where it is.)
struct Reporter {
    to_thread: std::sync::mpsc::Sender<(Trace, Vec<ProcessNote>)>,
    thread: std::thread::JoinHandle<Option<(Report, Problems)>>,
    warmed: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Reporter {
    fn start(files: [Option<PathBuf>; 2], out: OutputArgs) -> Reporter {
        let (to_thread, from_main) = std::sync::mpsc::channel::<(Trace, Vec<ProcessNote>)>();
        let warmed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let done = warmed.clone();
        let thread = std::thread::spawn(move || {
            let mut sym = leakscope_analyse::Symbolizer::new();
            for f in files.iter().flatten() {
                sym.warm_up(f);
            }
            done.store(true, std::sync::atomic::Ordering::Release);
            let (trace, notes) = from_main.recv().ok()?;
            let mut problems = Problems::default();
            let report = pipeline::report_with(&trace, &notes, &out, &mut sym, &mut problems);
            Some((report, problems))
        });
        Reporter { to_thread, thread, warmed }
    }

    /// The report (written out as `out` says), its problems added to `problems`.
    fn report(self, trace: Trace, notes: Vec<ProcessNote>, out: &OutputArgs, problems: &mut Problems) -> Report {
        // A program that ended before the warm-up did is reported here, reading
        // only what its report needs (often nothing); the warm-up is dropped.
        if !self.warmed.load(std::sync::atomic::Ordering::Acquire) {
            return pipeline::report(&trace, &notes, out, problems);
        }
        if let Err(std::sync::mpsc::SendError((trace, notes))) = self.to_thread.send((trace, notes)) {
            // The thread is gone before its time: report here instead.
            return pipeline::report(&trace, &notes, out, problems);
        }
        match self.thread.join() {
            Ok(Some((report, mine))) => {
                problems.absorb(mine);
                report
            }
            Ok(None) => unreachable!("the reporter thread got the trace"),
            // A panic while reporting is a panic of `run`, as it would be on this thread.
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

/// The libc this process runs with, which the program will almost surely load too.
fn own_libc() -> Option<std::path::PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| p.rsplit('/').next().is_some_and(|name| name.starts_with("libc.so")))
        .map(std::path::PathBuf::from)
}
