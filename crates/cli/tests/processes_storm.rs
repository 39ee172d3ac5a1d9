//! A fork storm: 1000 forks from several threads that keep allocating. No
//! hang (a fork while another thread holds one of the preload's locks), the
//! child can allocate at once, and every process gets one complete report.

mod common;
mod processes_support;

use common::*;
use processes_support::*;
use serde_json::json;
use std::time::Instant;

#[test]
fn a_thousand_forks_from_allocating_threads_give_one_complete_report_each() {
    const SRC: &str = "proc_storm.c";
    let prog = cc(SRC, &["-g", "-O0", "-pthread"]);
    let (threads, forks) = (4, 250);

    let native = Instant::now();
    let st = std::process::Command::new(&prog).args(["4", "250"]).output().unwrap();
    let native = native.elapsed();
    assert!(st.status.success());

    let started = Instant::now();
    let o = run(&prog, &[&threads.to_string(), &forks.to_string()]);
    let took = started.elapsed();
    assert_eq!(o.code, Some(0), "{}", o.describe());
    check_schema(o.json());
    let ps = processes(&o);
    assert_eq!(ps.len(), 1 + threads * forks, "one report per process");
    let mut pids: Vec<u64> = ps.iter().map(pid).collect();
    pids.sort();
    pids.dedup();
    assert_eq!(pids.len(), ps.len(), "every process once");
    // The one process whose parent is not in the report (not the lowest pid:
    // a thousand forks can wrap the pid counter around).
    let roots: Vec<_> = ps.iter().filter(|p| p["parent_pid"].as_u64().map_or(true, |pp| pids.binary_search(&pp).is_err())).collect();
    assert_eq!(roots.len(), 1, "one process started the others: {:?}", roots.iter().map(|p| pid(p)).collect::<Vec<_>>());
    let parent = roots[0];
    let file = fixture_file(SRC);
    let line = line_of(SRC, "LEAK:storm-child");
    for p in ps {
        assert_eq!(p["complete"], true, "{p}");
        assert_eq!(p["exit"], json!({"code": 0}), "{p}");
        if p["pid"] == parent["pid"] {
            continue;
        }
        assert_eq!(p["parent_pid"], parent["pid"], "{p}");
        let mine: Vec<_> = leaks(p)
            .iter()
            .filter(|l| frames(&l["stack"]).first().is_some_and(|f| f.file.as_deref() == Some(&file) && f.line == Some(line)))
            .collect();
        assert_eq!(mine.len(), 1, "the child's own block:{}", show_leaks(p));
        assert_eq!(mine[0]["blocks"], 1);
        assert_eq!(p["exec_index"], 0);
    }
    let program_ms: Option<&str> = o.stdout.lines().find_map(|l| l.strip_prefix("forked ")).map(str::trim);
    eprintln!(
        "fork storm: {} forks from {threads} threads: {took:.2?} under leakscope (program: {}), {native:.2?} natively",
        threads * forks,
        program_ms.unwrap_or("?")
    );
}
