//! Helpers for the process and ending tests: runs of leakscope that the test
//! talks to while the program runs (its stdin and stdout), and lookups of
//! processes in a multi-process report.

#![allow(dead_code)]

use crate::common::*;
use serde_json::Value;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

/// A `leakscope run` in progress, its program's stdout read line by line.
pub struct Live {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    seen: Vec<String>,
    stderr: std::thread::JoinHandle<String>,
    json: PathBuf,
    started: Instant,
}

impl Live {
    /// `leakscope run [opts] --json F -- prog args`, stdin and stdout piped.
    pub fn start(opts: &[&str], prog: &Path, args: &[&str]) -> Live {
        let json = scratch("live-report.json");
        let mut cmd = Command::new(leakscope_exe());
        cmd.arg("run").args(opts).arg("--json").arg(&json).arg("--").arg(prog).args(args);
        cmd.env("NO_COLOR", "1").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start leakscope");
        let stdin = child.stdin.take();
        let out = child.stdout.take().unwrap();
        let mut err = child.stderr.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        Live { child, stdin, lines, seen: Vec::new(), stderr, json, started: Instant::now() }
    }

    /// The next stdout line starting with `prefix` (earlier lines are kept for the outcome).
    pub fn wait_line(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.starts_with(prefix) {
                        return line;
                    }
                }
                Err(_) => {
                    let _ = self.child.kill();
                    panic!("no line starting with {prefix:?} within 60 s; stdout so far: {:?}", self.seen);
                }
            }
        }
    }

    pub fn send(&mut self, line: &str) {
        let w = self.stdin.as_mut().expect("stdin is open");
        writeln!(w, "{line}").and_then(|_| w.flush()).expect("write to the program");
    }

    /// leakscope's own pid.
    pub fn leakscope_pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits for leakscope to end and reads its report.
    pub fn finish(mut self) -> Outcome {
        self.stdin = None;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if self.started.elapsed() > RUN_TIMEOUT {
                let _ = self.child.kill();
                panic!("leakscope did not finish within {RUN_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        let stderr = self.stderr.join().unwrap();
        assert!(!stderr.contains("panicked at"), "leakscope panicked:\n{stderr}");
        let mut stdout = self.seen.join("\n");
        stdout.push('\n');
        Outcome { code: status.code(), stdout, stderr, json: read_json(&self.json), json_path: Some(self.json) }
    }
}

/// `leakscope ARGS...` (not `run`), e.g. `snapshot`.
pub fn leakscope_cmd(args: &[&OsStr]) -> Outcome {
    leakscope(args)
}

pub fn processes(o: &Outcome) -> &Vec<Value> {
    o.json()["processes"].as_array().expect("processes is an array")
}

/// The processes for which `pred` holds.
pub fn find<'a>(o: &'a Outcome, pred: impl Fn(&Value) -> bool) -> Vec<&'a Value> {
    processes(o).iter().filter(|p| pred(p)).collect()
}

/// The one process for which `pred` holds.
pub fn one<'a>(o: &'a Outcome, what: &str, pred: impl Fn(&Value) -> bool) -> &'a Value {
    let found = find(o, pred);
    assert_eq!(found.len(), 1, "want exactly one {what}; the report has:{}", show_processes(o));
    found[0]
}

/// The process whose argv[1] is `mode`, exec image `exec_index`.
pub fn by_mode<'a>(o: &'a Outcome, mode: &str) -> Vec<&'a Value> {
    find(o, |p| p["argv"].get(1).and_then(Value::as_str) == Some(mode))
}

pub fn pid(p: &Value) -> u64 {
    p["pid"].as_u64().unwrap()
}

pub fn show_processes(o: &Outcome) -> String {
    let mut s = String::new();
    for p in processes(o) {
        s += &format!(
            "\n pid {} parent {} exec #{} argv {} exit {} complete {} notes {}{}",
            p["pid"],
            p["parent_pid"],
            p["exec_index"],
            p["argv"],
            p["exit"],
            p["complete"],
            p["notes"],
            show_leaks(p).replace('\n', "\n   ")
        );
    }
    s
}

/// Asserts a leak record's bytes and blocks (any class).
pub fn assert_site(leak: &Value, bytes: u64, blocks: u64) {
    let what = show_stack(&frames(&leak["stack"]));
    assert_eq!(leak["bytes"].as_u64(), Some(bytes), "bytes of {what}");
    assert_eq!(leak["blocks"].as_u64(), Some(blocks), "blocks of {what}");
}

/// Whether any leak of `p` was allocated at the marked line (frame #0).
pub fn has_leak_at(p: &Value, fixture_name: &str, tag: &str) -> bool {
    let file = fixture_file(fixture_name);
    let line = line_of(fixture_name, tag);
    leaks(p).iter().any(|l| {
        frames(&l["stack"]).first().is_some_and(|f| f.file.as_deref() == Some(file.as_str()) && f.line == Some(line))
    })
}

/// Sends `sig` to `pid`.
pub fn kill(pid: i32, sig: i32) {
    // SAFETY: plain kill(2).
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "kill({pid}, {sig})");
}
