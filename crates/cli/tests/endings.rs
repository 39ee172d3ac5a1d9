//! Every way a program can end loses no leak: exit, return from main, exit in
//! a signal handler, _exit, _Exit, abort, a failed assertion, fatal signals
//! (with and without the program's own handler, which still runs), SIGKILL
//! from outside; and threads that end early or are still running at exit.

mod common;
mod processes_support;

use common::*;
use processes_support::*;
use serde_json::{json, Value};

const SRC: &str = "proc_endings.c";

fn exe() -> std::path::PathBuf {
    cc(SRC, &["-g", "-O0"])
}

/// Runs `proc_endings args`; checks the exit, leakscope's status, and the leak.
fn ending(args: &[&str], exit: Value, status: i32, complete: bool) -> Outcome {
    let o = run(&exe(), args);
    assert_eq!(o.code, Some(status), "leakscope's status for {args:?}: {}", o.describe());
    check_schema(o.json());
    let p = o.process();
    assert_eq!(p["exit"], exit, "{args:?}: {p}");
    assert_eq!(p["complete"], complete, "{args:?}: {p}");
    let l = leak_at_line(p, SRC, "LEAK:ending");
    assert_site(l, 11, 1);
    if !complete {
        assert_eq!(l["class"], "unknown", "no scan ran in {args:?}");
        assert_eq!(p["notes"].as_array().unwrap().len(), 1, "{p}");
    }
    o
}

#[test]
fn exit_and_return_from_main() {
    ending(&["exit"], json!({"code": 3}), 3, true);
    ending(&["return"], json!({"code": 4}), 4, true);
}

#[test]
fn exit_called_in_a_signal_handler() {
    ending(&["exit-in-handler"], json!({"code": 5}), 5, true);
}

#[test]
fn underscore_exit_skips_exit_handlers_and_says_so() {
    for (mode, code) in [("_exit", 6), ("_Exit", 7)] {
        let o = ending(&[mode], json!({"code": code}), code, false);
        let note = o.process()["notes"][0].as_str().unwrap().to_owned();
        assert!(note.contains("without running its exit handlers"), "{note}");
    }
}

#[test]
fn abort_and_failed_assertions() {
    let o = ending(&["abort"], json!({"signal": 6}), 128 + 6, false);
    assert!(o.process()["notes"][0].as_str().unwrap().contains("SIGABRT"), "{}", o.describe());
    let o = ending(&["assert"], json!({"signal": 6}), 128 + 6, false);
    assert!(o.stderr.contains("Assertion `argc == 0' failed"), "{}", o.stderr);
}

#[test]
fn fatal_signals_with_and_without_the_programs_own_handler() {
    for (mode, sig) in [("segv", libc::SIGSEGV), ("bus", libc::SIGBUS), ("fpe", libc::SIGFPE), ("ill", libc::SIGILL)] {
        let o = ending(&[mode], json!({"signal": sig}), 128 + sig, false);
        assert!(!o.stdout.contains("handler ran"), "{}", o.stdout);
        // The program's handler runs, then the fault kills it with the same signal.
        let o = ending(&[mode, "handler"], json!({"signal": sig}), 128 + sig, false);
        assert!(o.stdout.contains(&format!("handler ran for signal {sig}")), "{mode}: {}", o.describe());
    }
}

#[test]
fn sigkill_from_outside_after_the_program_leaked_loses_nothing() {
    let mut live = Live::start(&[], &exe(), &["kill"]);
    let line = live.wait_line("ready ");
    let pid: i32 = line["ready ".len()..].trim().parse().unwrap();
    kill(pid, libc::SIGKILL);
    let o = live.finish();
    assert_eq!(o.code, Some(128 + 9), "{}", o.describe());
    check_schema(o.json());
    let p = o.process();
    assert_eq!(p["pid"], pid);
    assert_eq!(p["exit"], json!({"signal": 9}));
    assert_eq!(p["complete"], false);
    let note = p["notes"][0].as_str().unwrap();
    assert!(note.contains("SIGKILL") && note.contains("exit handlers"), "{note}");
    for (tag, bytes, blocks, allocator) in [
        ("LEAK:before-kill", 600, 3, "malloc"),
        ("LEAK:before-kill-calloc", 17, 1, "calloc"),
        ("LEAK:ending", 11, 1, "malloc"),
    ] {
        let l = leak_at(p, "main", SRC, tag);
        assert_site(l, bytes, blocks);
        assert_eq!(l["allocator"], allocator);
        assert_eq!(l["class"], "unknown");
    }
    assert!(o.stderr.contains("killed by signal 9 (SIGKILL)"), "{}", o.stderr);
}

#[test]
fn threads_ending_early_or_still_running_lose_nothing() {
    const T: &str = "proc_threads.c";
    let o = run(&cc(T, &["-g", "-O0", "-pthread"]), &[]);
    assert_eq!(o.code, Some(0), "{}", o.describe());
    check_schema(o.json());
    let p = o.process();
    assert_eq!(p["exit"], json!({"code": 0}));
    assert_site(leak_at_line(p, T, "LEAK:pthread-exit"), 31, 1);
    let cancelled: Vec<&Value> = leaks(p)
        .iter()
        .filter(|l| frames(&l["stack"]).first().is_some_and(|f| f.line == Some(line_of(T, "LEAK:cancelled"))))
        .collect();
    assert_eq!(cancelled.iter().map(|l| l["bytes"].as_u64().unwrap()).sum::<u64>(), 64, "{}", show_leaks(p));
    assert_site(leak_at_line(p, T, "LEAK:still-running"), 33, 1);
}
