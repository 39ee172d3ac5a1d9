//! `leakscope snapshot PID`: the live blocks of a program running under
//! `leakscope run`, and their growth per allocation site since an earlier
//! snapshot.

mod common;
mod processes_support;

use common::*;
use processes_support::*;
use serde_json::{json, Value};
use std::ffi::OsStr;

const SRC: &str = "proc_grow.c";

/// The site whose frame #0 is at the marked line.
fn site<'a>(snap: &'a Value, tag: &str) -> &'a Value {
    let file = fixture_file(SRC);
    let line = line_of(SRC, tag);
    let found: Vec<&Value> = snap["sites"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| frames(&s["stack"]).first().is_some_and(|f| f.file.as_deref() == Some(&file) && f.line == Some(line)))
        .collect();
    assert_eq!(found.len(), 1, "one site at {tag}: {snap:#}");
    found[0]
}

fn snapshot(args: &[&str]) -> Outcome {
    let argv: Vec<&OsStr> = std::iter::once("snapshot").chain(args.iter().copied()).map(OsStr::new).collect();
    leakscope_cmd(&argv)
}

#[test]
fn snapshots_show_live_blocks_and_growth_per_site_without_stopping_the_program() {
    let mut live = Live::start(&[], &cc(SRC, &["-g", "-O0"]), &[]);
    let pid = live.wait_line("pid ")["pid ".len()..].trim().to_owned();
    live.send("grow 5");
    live.wait_line("ok");

    let saved = scratch("first.snapshot");
    let j1 = scratch("first.json");
    let o = snapshot(&[&pid, "--save", saved.to_str().unwrap(), "--json", j1.to_str().unwrap()]);
    assert_eq!(o.code, Some(0), "{}", o.describe());
    let s1 = read_json(&j1).unwrap();
    assert_eq!(s1["schema"], "leakscope-snapshot/1");
    assert_eq!(s1["process"]["pid"].as_u64().unwrap().to_string(), pid);
    assert_eq!(s1["process"]["complete"], true, "{s1:#}");
    assert_eq!(s1["since"], Value::Null);
    let grow = site(&s1, "LEAK:grow");
    assert_eq!((grow["bytes"].as_u64(), grow["blocks"].as_u64()), (Some(500), Some(5)));
    assert_eq!(grow["growth"], Value::Null);
    assert_eq!(site(&s1, "LEAK:steady")["bytes"], 4000);
    assert!(o.stdout.contains("leakscope snapshot of"), "{}", o.stdout);
    assert!(o.stdout.contains("500 bytes in 5 blocks live, allocated with malloc from:"), "{}", o.stdout);

    // The program keeps running and growing.
    live.send("grow 7");
    live.wait_line("ok");
    let j2 = scratch("second.json");
    let o = snapshot(&[&pid, "--since", saved.to_str().unwrap(), "--json", j2.to_str().unwrap()]);
    assert_eq!(o.code, Some(0), "{}", o.describe());
    let s2 = read_json(&j2).unwrap();
    let grow = site(&s2, "LEAK:grow");
    assert_eq!((grow["bytes"].as_u64(), grow["blocks"].as_u64()), (Some(1200), Some(12)));
    assert_eq!(grow["growth"], json!({"bytes": 700, "blocks": 7}));
    assert_eq!(site(&s2, "LEAK:steady")["growth"], json!({"bytes": 0, "blocks": 0}));
    assert_eq!(s2["sites"][0]["growth"]["bytes"], 700, "the site that grew most comes first");
    assert_eq!(s2["summary"]["growth"]["bytes"], 700);
    assert!(
        o.stdout.contains("1200 bytes in 12 blocks live (+700 bytes, +7 blocks since the earlier snapshot)"),
        "{}",
        o.stdout
    );

    // The saved snapshot is a trace: `report` reads it.
    let rep = scratch("snapshot-report.json");
    let r = leakscope(&[OsStr::new("report"), saved.as_os_str(), OsStr::new("--json"), rep.as_os_str()]);
    assert_eq!(r.code, Some(0), "{}", r.describe());
    let rep = read_json(&rep).unwrap();
    assert_eq!(rep["processes"][0]["complete"], false, "a snapshot is not the end of the process");

    live.send("quit");
    let o = live.finish();
    assert_eq!(o.code, Some(0), "{}", o.describe());
    assert_eq!(o.process()["exit"], json!({"code": 0}));
}

#[test]
fn a_pid_not_under_leakscope_is_a_one_line_error() {
    let o = snapshot(&["1"]);
    assert_eq!(o.code, Some(2), "{}", o.describe());
    assert!(o.stderr.contains("no leakscope session file for pid 1"), "{}", o.stderr);
    assert_eq!(o.stderr.trim().lines().count(), 1, "{}", o.stderr);
}
