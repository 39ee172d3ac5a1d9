//! leakscope's exit status: the program's own, 128+N when it was killed by
//! signal N, or --error-exitcode's value when something was found.

mod common;

use common::*;

const SRC: &str = "exit_status.c";

fn exe() -> std::path::PathBuf {
    cc(SRC, &["-g", "-O0"])
}

#[test]
fn program_exit_code_is_passed_through() {
    let o = run(&exe(), &["code", "7"]);
    assert_eq!(o.code, Some(7), "{}", o.describe());
    assert_eq!(o.process()["exit"], serde_json::json!({"code": 7}));
    let o = run(&exe(), &["code", "0"]);
    assert_eq!(o.code, Some(0), "{}", o.describe());
}

#[test]
fn error_exitcode_is_used_when_a_leak_is_found() {
    let o = run_opts(&["--error-exitcode", "23"], &exe(), &["leak"]);
    assert_eq!(o.code, Some(23), "{}", o.describe());
    assert_leak(leak_at(o.process(), "main", SRC, "LEAK:exit-leak"), "definite", 99, 1, "malloc");
}

#[test]
fn error_exitcode_is_used_when_a_heap_error_is_found() {
    let o = run_opts(&["--error-exitcode", "23"], &cc("heap_errors.c", &["-g", "-O0"]), &["stack"]);
    assert_eq!(o.code, Some(23), "{}", o.describe());
    assert_eq!(errors(o.process()).len(), 1);
}

#[test]
fn error_exitcode_is_not_used_for_a_clean_program() {
    let o = run_opts(&["--error-exitcode", "23"], &exe(), &["clean"]);
    assert_eq!(o.code, Some(0), "{}", o.describe());
    assert_clean(o.process());
}

#[test]
fn program_killed_by_sigterm_gives_128_plus_15_and_its_leaks() {
    let o = run(&exe(), &["sigterm"]);
    assert_eq!(o.code, Some(128 + 15), "{}", o.describe());
    let p = o.process();
    assert_eq!(p["exit"], serde_json::json!({"signal": 15}), "{p}");
    // The session file outlives the process: what was live is still reported.
    assert_leak(leak_at(p, "main", SRC, "LEAK:before-sigterm"), "unknown", 48, 1, "malloc");
}
