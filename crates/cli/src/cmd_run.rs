//! `leakscope run -- PROG ARGS...`: check, spawn with the preload library,
//! wait, read the session files, report.

use crate::args::RunArgs;
use crate::launch::{self, Launch};
use crate::pipeline::{self, Problems};
use crate::session_dir::SessionDir;
use crate::{collect, output, preload_path, reaper, resolve};
use anyhow::{Context, Result};
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
    let report = pipeline::report(&collected.trace, &collected.notes, &args.out, &mut problems);
    problems.finish()?;
    Ok(pipeline::exit_status(status.exit_code(), &report, &args.out))
}
