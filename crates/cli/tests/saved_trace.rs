//! `run --save-trace FILE` then `report FILE` gives the same findings, and
//! `--output` takes the text report.

mod common;

use common::*;
use std::ffi::OsStr;

fn save_and_report(exe: &std::path::Path, args: &[&str]) -> (Outcome, Outcome) {
    let trace = scratch("trace.lstrace");
    let first = run_opts(&["--save-trace", trace.to_str().unwrap()], exe, args);
    assert_eq!(first.code, Some(0), "{}", first.describe());
    assert!(trace.is_file(), "--save-trace wrote no file");
    let json = scratch("again.json");
    let mut second = leakscope(&[OsStr::new("report"), trace.as_os_str(), OsStr::new("--json"), json.as_os_str()]);
    second.json = read_json(&json);
    assert_eq!(second.code, Some(0), "report of a saved trace: {}", second.describe());
    check_schema(second.json());
    (first, second)
}

#[test]
fn report_of_a_saved_trace_gives_the_same_leaks() {
    let exe = cc("alloc_family.c", &["-g", "-O0"]);
    let (first, second) = save_and_report(&exe, &[]);
    let (a, b) = (first.process(), second.process());
    assert_eq!(leaks(a).len(), 11, "{}", show_leaks(a));
    assert_eq!(leaks(a), leaks(b), "leaks of run (left) and report (right)");
    assert_eq!(a["summary"], b["summary"]);
    assert_eq!(a["exit"], b["exit"]);
    assert_eq!(a["pid"], b["pid"]);
}

#[test]
fn report_of_a_saved_trace_gives_the_same_heap_errors() {
    let exe = cc("heap_errors.c", &["-g", "-O0"]);
    let (first, second) = save_and_report(&exe, &["double"]);
    let (a, b) = (first.process(), second.process());
    assert_eq!(errors(a).len(), 1, "{}", show_leaks(a));
    assert_eq!(errors(a), errors(b), "errors of run (left) and report (right)");
}

#[test]
fn output_option_writes_the_text_report_to_a_file() {
    let exe = cc("exit_status.c", &["-g", "-O0"]);
    let out = scratch("report.txt");
    let o = run_opts(&["--output", out.to_str().unwrap()], &exe, &["leak"]);
    assert_eq!(o.code, Some(0), "{}", o.describe());
    let text = std::fs::read_to_string(&out).expect("--output file");
    let line = line_of("exit_status.c", "LEAK:exit-leak");
    assert!(text.contains(&format!("exit_status.c:{line}")), "the text report names the leak's line:\n{text}");
    assert!(text.contains("99"), "and its size:\n{text}");
    assert!(
        !o.stderr.contains(&format!("exit_status.c:{line}")),
        "the report went to the file, not stderr:\n{}",
        o.stderr
    );
}
