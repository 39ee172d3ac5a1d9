//! Every process the program starts is traced and reported on its own:
//! fork, fork+exec, posix_spawn, system(), popen(), a daemon that outlives
//! the program, and children whose endings only their parent saw.

mod common;
mod processes_support;

use common::*;
use processes_support::*;
use serde_json::{json, Value};

const SRC: &str = "proc_shapes.c";

fn exe() -> std::path::PathBuf {
    cc(SRC, &["-g", "-O0"])
}

fn run_mode(opts: &[&str], mode: &str) -> Outcome {
    let o = run_opts(opts, &exe(), &[mode]);
    assert_eq!(o.code, Some(0), "the program exits 0: {}", o.describe());
    check_schema(o.json());
    o
}

/// The program itself: the process leakscope started (its parent is leakscope).
fn main_process<'a>(o: &'a Outcome, mode: &str) -> &'a Value {
    let first = processes(o).iter().map(pid).min().unwrap();
    let p = one(o, "main process", |p| pid(p) == first && p["exec_index"] == 0);
    assert_eq!(p["argv"][1], mode, "{}", show_processes(o));
    p
}

#[test]
fn a_forked_child_is_its_own_process_without_its_parents_blocks() {
    let o = run_mode(&[], "fork");
    assert_eq!(processes(&o).len(), 2, "{}", show_processes(&o));
    let parent = main_process(&o, "fork");
    let child = one(&o, "child", |p| p["parent_pid"] == parent["pid"]);
    assert_eq!(parent["exit"], json!({"code": 0}));
    assert_eq!(child["exit"], json!({"code": 3}), "{}", show_processes(&o));
    assert_eq!(child["complete"], true, "{child}");
    assert_eq!(child["argv"], parent["argv"], "a fork child runs the same program");
    assert_site(leak_at_line(parent, SRC, "LEAK:before-fork"), 33, 1);
    assert_site(leak_at_line(parent, SRC, "LEAK:fork-parent"), 100, 1);
    assert_site(leak_at_line(child, SRC, "LEAK:fork-child"), 24, 1);
    // Allocated before fork: the parent's block, not the child's leak.
    assert!(!has_leak_at(child, SRC, "LEAK:before-fork"), "{}", show_processes(&o));
    assert_eq!(child["inherited"], json!([]), "inherited blocks are listed only with --show-inherited");
    assert!(o.stdout.contains(&format!("child {} exit 3", child["pid"])), "{}", o.stdout);
}

#[test]
fn show_inherited_lists_what_the_child_got_from_its_parent() {
    let o = run_mode(&["--show-inherited"], "fork");
    let parent = main_process(&o, "fork");
    let child = one(&o, "child", |p| p["parent_pid"] == parent["pid"]);
    assert!(!has_leak_at(child, SRC, "LEAK:before-fork"), "still not the child's leak");
    let file = fixture_file(SRC);
    let line = line_of(SRC, "LEAK:before-fork");
    let inherited = child["inherited"].as_array().expect("inherited is an array");
    let hit: Vec<&Value> = inherited
        .iter()
        .filter(|l| frames(&l["stack"]).first().is_some_and(|f| f.file.as_deref() == Some(&file) && f.line == Some(line)))
        .collect();
    assert_eq!(hit.len(), 1, "inherited: {inherited:?}");
    assert_site(hit[0], 33, 1);
    // Not counted as the child's leaks.
    let leaked: u64 = leaks(child).iter().filter(|l| l["class"] != "reachable").map(|l| l["bytes"].as_u64().unwrap()).sum();
    assert_eq!(child["summary"]["leaked_bytes"].as_u64(), Some(leaked));
    assert!(o.stderr.contains("33 bytes in 1 block inherited from the parent at fork"), "{}", o.stderr);
}

#[test]
fn fork_then_exec_reports_both_images_of_the_child() {
    let o = run_mode(&[], "forkexec");
    assert_eq!(processes(&o).len(), 3, "{}", show_processes(&o));
    let parent = main_process(&o, "forkexec");
    let before = one(&o, "child before exec", |p| p["parent_pid"] == parent["pid"] && p["exec_index"] == 0);
    let after = one(&o, "child after exec", |p| p["pid"] == before["pid"] && p["exec_index"] == 1);
    assert_eq!(before["exit"], json!({"exec": true}), "{}", show_processes(&o));
    assert_site(leak_at_line(before, SRC, "LEAK:before-exec"), 24, 1);
    assert!(!has_leak_at(before, SRC, "LEAK:before-fork"));
    assert!(before["notes"].to_string().contains("execve"), "{before}");
    assert_eq!(after["argv"][1], "execd");
    assert_eq!(after["exit"], json!({"code": 5}));
    assert_eq!(after["complete"], true, "{after}");
    assert_site(leak_at_line(after, SRC, "LEAK:execd"), 40, 1);
    // The tree: the exec'd image under the image it replaced, under the parent.
    assert!(o.stderr.contains("process tree:"), "{}", o.stderr);
    let tree: Vec<&str> = o.stderr.lines().skip_while(|l| !l.contains("process tree:")).collect();
    assert!(tree[1].contains(&format!("{} ", parent["pid"])) && tree[1].contains("exited with status 0"), "{tree:?}");
    assert!(tree[2].contains(&format!("└─ {} ", before["pid"])) && tree[2].contains("replaced by exec"), "{tree:?}");
    assert!(tree[3].contains("└─ exec #1: ") && tree[3].contains("exited with status 5"), "{tree:?}");
}

#[test]
fn posix_spawn_starts_a_traced_process() {
    let o = run_mode(&[], "spawn");
    let parent = main_process(&o, "spawn");
    let child = one(&o, "spawned", |p| p["argv"][1] == "spawned");
    assert_eq!(child["parent_pid"], parent["pid"]);
    assert_eq!(child["exec_index"], 0, "posix_spawn runs no fork handler: the new program is the first image");
    assert_eq!(child["exit"], json!({"code": 6}));
    assert_site(leak_at_line(child, SRC, "LEAK:spawned"), 56, 1);
}

/// The traced ancestors of `p`, nearest first (by parent pid).
fn ancestors<'a>(o: &'a Outcome, p: &Value) -> Vec<&'a Value> {
    let mut out: Vec<&Value> = Vec::new();
    let mut at = p["parent_pid"].as_u64();
    while let Some(ppid) = at {
        let Some(q) = processes(o).iter().filter(|q| pid(q) == ppid).max_by_key(|q| q["exec_index"].as_u64()) else { break };
        if out.iter().any(|x| x["pid"] == q["pid"]) {
            break;
        }
        out.push(q);
        at = q["parent_pid"].as_u64();
    }
    out
}

#[test]
fn system_runs_a_traced_shell_and_command() {
    let o = run_mode(&[], "system");
    let parent = main_process(&o, "system");
    let cmd = one(&o, "the command", |p| p["argv"][1] == "spawned");
    assert_eq!(cmd["exit"], json!({"code": 6}), "{}", show_processes(&o));
    assert_site(leak_at_line(cmd, SRC, "LEAK:spawned"), 56, 1);
    let up = ancestors(&o, cmd);
    assert!(up.iter().any(|a| a["pid"] == parent["pid"]), "the command descends from the program:{}", show_processes(&o));
    assert!(o.stdout.contains("system exit 6"), "{}", o.stdout);
    // Every process of the run has an ending.
    for p in processes(&o) {
        assert_ne!(p["exit"], json!({"unknown": true}), "{}", show_processes(&o));
    }
}

#[test]
fn popen_runs_a_traced_command() {
    let o = run_mode(&[], "popen");
    let parent = main_process(&o, "popen");
    let cmd = one(&o, "the command", |p| p["argv"][1] == "popened");
    assert_eq!(cmd["exit"], json!({"code": 0}), "{}", show_processes(&o));
    assert_site(leak_at_line(cmd, SRC, "LEAK:popened"), 72, 1);
    assert!(ancestors(&o, cmd).iter().any(|a| a["pid"] == parent["pid"]));
    assert!(o.stdout.contains("read: hello from the popened child"), "{}", o.stdout);
    assert!(o.stdout.contains("pclose exit 0"), "{}", o.stdout);
}

#[test]
fn a_daemon_that_outlives_the_program_is_waited_for_and_reported() {
    let o = run_mode(&[], "daemon");
    assert_eq!(processes(&o).len(), 3, "{}", show_processes(&o));
    let parent = main_process(&o, "daemon");
    let middle = one(&o, "intermediate", |p| p["parent_pid"] == parent["pid"]);
    let daemon = one(&o, "daemon", |p| p["parent_pid"] == middle["pid"]);
    assert_eq!(middle["exit"], json!({"code": 0}));
    // Its parent was gone: leakscope (the subreaper) reaped it and saw its status.
    assert_eq!(daemon["exit"], json!({"code": 9}), "{}", show_processes(&o));
    assert_eq!(daemon["complete"], true);
    assert_site(leak_at_line(daemon, SRC, "LEAK:daemon"), 88, 1);
    let tree: Vec<&str> = o.stderr.lines().skip_while(|l| !l.contains("process tree:")).collect();
    assert!(tree[3].contains(&format!("   └─ {} ", daemon["pid"])), "{tree:?}");
}

#[test]
fn an_orphan_killed_by_a_signal_is_reported_with_its_blocks() {
    let o = run_mode(&[], "orphan-killed");
    let parent = main_process(&o, "orphan-killed");
    let orphan = one(&o, "orphan", |p| p["parent_pid"] == parent["pid"]);
    assert_eq!(orphan["exit"], json!({"signal": 9}), "{}", show_processes(&o));
    assert_eq!(orphan["complete"], false);
    assert!(orphan["notes"][0].as_str().unwrap().contains("SIGKILL"), "{orphan}");
    let l = leak_at_line(orphan, SRC, "LEAK:orphan");
    assert_site(l, 64, 1);
    assert_eq!(l["class"], "unknown", "a killed process could not scan itself");
}

#[test]
fn a_child_its_traced_parent_reaped_after_a_crash_ends_by_that_signal() {
    let o = run_mode(&[], "child-crash");
    let parent = main_process(&o, "child-crash");
    let child = one(&o, "child", |p| p["parent_pid"] == parent["pid"]);
    assert!(o.stdout.contains("child signal 11"), "{}", o.stdout);
    assert_eq!(child["exit"], json!({"signal": 11}), "{}", show_processes(&o));
    assert_site(leak_at_line(child, SRC, "LEAK:crashing-child"), 48, 1);
}

#[test]
fn a_child_that_calls_exit_without_handlers_is_marked_incomplete() {
    let o = run_mode(&[], "child-_exit");
    let parent = main_process(&o, "child-_exit");
    let child = one(&o, "child", |p| p["parent_pid"] == parent["pid"]);
    assert_eq!(child["exit"], json!({"code": 12}), "{}", show_processes(&o));
    assert_eq!(child["complete"], false);
    assert!(child["notes"][0].as_str().unwrap().contains("_exit()"), "{child}");
    assert_site(leak_at_line(child, SRC, "LEAK:quick-child"), 40, 1);
}

#[test]
fn leakscope_waits_for_what_the_program_left_running_until_interrupted() {
    let mut live = Live::start(&[], &exe(), &["linger"]);
    let line = live.wait_line("lingering ");
    let child: i32 = line["lingering ".len()..].trim().parse().unwrap();
    // The program has ended; leakscope keeps waiting for the child...
    std::thread::sleep(std::time::Duration::from_millis(1500));
    // ...until it is interrupted: then it reports the child as it is now.
    kill(live.leakscope_pid(), libc::SIGINT);
    let o = live.finish();
    kill(child, libc::SIGKILL);
    assert_eq!(o.code, Some(0), "the program's status: {}", o.describe());
    assert!(o.stderr.contains("has ended; waiting for the processes it left running"), "{}", o.stderr);
    assert!(o.stderr.contains(&format!("(pid {child})")), "{}", o.stderr);
    let p = one(&o, "lingering child", |p| p["pid"] == child);
    assert_eq!(p["exit"], json!({"unknown": true}));
    assert_eq!(p["complete"], false);
    assert!(p["notes"][0].as_str().unwrap().contains("still running"), "{p}");
    assert_site(leak_at_line(p, SRC, "LEAK:lingering"), 77, 1);
}
