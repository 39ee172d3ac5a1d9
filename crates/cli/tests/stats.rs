//! `--stats`: what tracing cost, per process, agrees with the report and
//! shows where the time went (stack captures, the live-block table).

mod common;

use common::*;

/// The numbers on the `--stats` line that starts with `label`.
fn numbers(stderr: &str, label: &str) -> Vec<f64> {
    let line = stderr
        .lines()
        .find(|l| l.trim_start().starts_with(label))
        .unwrap_or_else(|| panic!("no `{label}` line in --stats output:\n{stderr}"));
    line.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter(|w| !w.is_empty() && *w != ".")
        .map(|w| w.parse().unwrap_or_else(|e| panic!("{w} in {line}: {e}")))
        .collect()
}

#[test]
fn stats_count_calls_threads_and_time_in_captures_and_the_live_table() {
    let exe = cc("threads.c", &["-g", "-O0", "-pthread"]);
    let o = run_opts(&["--stats"], &exe, &[]);
    assert_eq!(o.code, Some(0), "{}", o.describe());
    let summary = &o.process()["summary"];
    let (allocs, frees) = (summary["allocations"].as_u64().unwrap(), summary["frees"].as_u64().unwrap());
    // 4 workers: an array, 500 temporaries and 500 leaks each; frees of the temporaries and arrays.
    assert!(allocs >= 4 * 1001 && frees >= 4 * 501, "{summary}");

    let calls = numbers(&o.stderr, "allocation calls");
    assert_eq!(calls, vec![(allocs + frees) as f64, allocs as f64, frees as f64], "the report's counts");
    let captures = numbers(&o.stderr, "stack captures")[0];
    assert!(captures >= allocs as f64, "every allocation's stack is captured: {captures} < {allocs}");
    let capture_time = numbers(&o.stderr, "capture time");
    assert!(capture_time[1] > 0.0 && capture_time[1] < 1e6, "ns per capture: {capture_time:?}");
    let table = numbers(&o.stderr, "live table");
    // [seconds, ns per operation, 1, 64]: sampled, so only its range is known.
    assert!(table[1] > 0.0 && table[1] < 1e6, "ns per live-table operation: {table:?}\n{}", o.stderr);
    assert_eq!(numbers(&o.stderr, "threads"), vec![5.0], "main and four workers");
}
