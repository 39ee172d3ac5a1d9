//! Shared harness for the integration tests: compiles fixtures from
//! `tests/fixtures/` (workspace root) on the fly, runs them under
//! `leakscope run --json`, and looks things up in the JSON report.
//!
//! * Fixtures are compiled into one temporary directory per test process,
//!   cached by (compiler, flags, source text), so tests sharing a build pay
//!   for it once. The directory is removed at exit unless
//!   `LEAKSCOPE_TEST_KEEP=1` is set (its path is printed then).
//! * Line numbers are never hard-coded: a fixture marks a line with a comment
//!   such as `/* LEAK:malloc */` (C) or `// LEAK:new` (C++), and
//!   [`line_of`] finds it.
//! * The preload library must sit next to the leakscope executable. Cargo
//!   builds the `leakscope` binary for integration tests but not the
//!   `leakscope-preload` cdylib (a different package), so [`leakscope_exe`]
//!   runs `cargo build -p leakscope-preload` once per test process, with the
//!   profile the test binary was built with. With `LEAKSCOPE_PRELOAD=/path/lib.so`
//!   in the environment nothing is built and leakscope preloads that library
//!   (its own development override).

#![allow(dead_code)]

use serde_json::Value;
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Longest a single leakscope run may take before the test fails.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(180);

// ---------------------------------------------------------------------------
// Paths

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root")
}

pub fn fixtures_dir() -> PathBuf {
    workspace_root().join("tests/fixtures")
}

/// Absolute, canonical path of a fixture source: what DWARF records, since
/// fixtures are compiled from this path.
pub fn fixture(name: &str) -> PathBuf {
    let p = fixtures_dir().join(name);
    p.canonicalize().unwrap_or_else(|e| panic!("fixture {}: {e}", p.display()))
}

/// [`fixture`] as a string, for comparing with a frame's `file`.
pub fn fixture_file(name: &str) -> String {
    fixture(name).to_str().unwrap().to_owned()
}

static WORK_DIR: OnceLock<PathBuf> = OnceLock::new();

extern "C" fn remove_work_dir() {
    if let Some(d) = WORK_DIR.get() {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// The per-test-process scratch directory (compiled fixtures, JSON reports, traces).
pub fn work_dir() -> &'static Path {
    WORK_DIR.get_or_init(|| {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let exe = std::env::current_exe().ok();
        let stem = exe
            .as_deref()
            .and_then(Path::file_stem)
            .and_then(OsStr::to_str)
            .and_then(|s| s.split('-').next())
            .unwrap_or("test")
            .to_owned();
        let d = std::env::temp_dir().join(format!("leakscope-it-{stem}-{}-{nanos:08x}", std::process::id()));
        std::fs::create_dir_all(&d).expect("create the scratch directory");
        if std::env::var_os("LEAKSCOPE_TEST_KEEP").is_some_and(|v| v == "1") {
            eprintln!("leakscope tests: keeping {}", d.display());
        } else {
            // SAFETY: registering a plain extern "C" function.
            unsafe { libc::atexit(remove_work_dir) };
        }
        d
    })
}

/// A fresh path in the scratch directory.
pub fn scratch(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    work_dir().join(format!("{}-{name}", N.fetch_add(1, Ordering::Relaxed)))
}

// ---------------------------------------------------------------------------
// Markers

/// The 1-based line of `name` holding the marker comment `/* TAG */` or `// TAG`
/// (the tag must end the comment). Panics unless exactly one line has it.
pub fn line_of(name: &str, tag: &str) -> u32 {
    let text = std::fs::read_to_string(fixture(name)).unwrap();
    let block = format!("/* {tag} */");
    let line_comment = format!("// {tag}");
    let hits: Vec<u32> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains(&block) || l.trim_end().ends_with(&line_comment))
        .map(|(i, _)| i as u32 + 1)
        .collect();
    assert_eq!(hits.len(), 1, "marker {tag:?} in {name}: found on lines {hits:?}, want exactly one");
    hits[0]
}

// ---------------------------------------------------------------------------
// Compiling fixtures

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Lang {
    C,
    Cxx,
    Rust,
}

impl Lang {
    fn compiler(self) -> &'static str {
        match self {
            Lang::C => "gcc",
            Lang::Cxx => "g++",
            Lang::Rust => "rustc",
        }
    }
}

type Cache = Mutex<HashMap<u64, Arc<OnceLock<PathBuf>>>>;
static BUILDS: OnceLock<Cache> = OnceLock::new();

/// Compiles fixture `name` with `flags` (all of them: optimisation, -g, -pthread,
/// libraries...). `shared` builds a shared object (adds -shared -fPIC). Cached.
pub fn build(lang: Lang, name: &str, flags: &[&str], shared: bool) -> PathBuf {
    let src = fixture(name);
    let text = std::fs::read(&src).unwrap();
    let mut h = DefaultHasher::new();
    (lang, name, flags, shared, &text).hash(&mut h);
    let key = h.finish();
    let cell = {
        let mut map = BUILDS.get_or_init(Default::default).lock().unwrap();
        map.entry(key).or_default().clone()
    };
    cell.get_or_init(|| {
        let stem = Path::new(name).file_stem().unwrap().to_str().unwrap();
        let out = if shared {
            work_dir().join(format!("lib{stem}-{key:016x}.so"))
        } else {
            work_dir().join(format!("{stem}-{key:016x}"))
        };
        let mut cmd = Command::new(lang.compiler());
        cmd.current_dir(work_dir());
        match lang {
            Lang::C | Lang::Cxx => {
                if shared {
                    cmd.args(["-shared", "-fPIC"]);
                }
                cmd.args(flags).arg("-o").arg(&out).arg(&src);
                // Libraries (-l...) must come after the source.
                cmd.args(flags.iter().filter(|f| f.starts_with("-l")));
            }
            Lang::Rust => {
                assert!(!shared, "Rust fixtures are executables");
                cmd.args(["--edition", "2021"]).args(flags).arg("-o").arg(&out).arg(&src);
            }
        }
        let o = cmd.output().unwrap_or_else(|e| panic!("cannot run {}: {e}", lang.compiler()));
        assert!(
            o.status.success(),
            "compiling {name} failed: {cmd:?}\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        out
    })
    .clone()
}

/// gcc fixture executable.
pub fn cc(name: &str, flags: &[&str]) -> PathBuf {
    build(Lang::C, name, flags, false)
}

/// g++ fixture executable.
pub fn cxx(name: &str, flags: &[&str]) -> PathBuf {
    build(Lang::Cxx, name, flags, false)
}

/// gcc fixture shared object.
pub fn cc_shared(name: &str, flags: &[&str]) -> PathBuf {
    build(Lang::C, name, flags, true)
}

/// rustc fixture executable.
pub fn rust(name: &str, flags: &[&str]) -> PathBuf {
    build(Lang::Rust, name, flags, false)
}

/// Whether `program` can be run (`program --version` succeeds).
pub fn have_tool(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

// ---------------------------------------------------------------------------
// Running leakscope

static PRELOAD_READY: OnceLock<Result<(), String>> = OnceLock::new();

/// The preload library override given to the tests, if any.
fn preload_override() -> Option<std::ffi::OsString> {
    std::env::var_os("LEAKSCOPE_PRELOAD").filter(|v| !v.is_empty())
}

/// The leakscope executable under test, with the preload library built beside it.
pub fn leakscope_exe() -> PathBuf {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_leakscope"));
    let ready = PRELOAD_READY.get_or_init(|| match preload_override() {
        Some(p) if Path::new(&p).is_file() => Ok(()),
        Some(p) => Err(format!("LEAKSCOPE_PRELOAD={} is not a file", Path::new(&p).display())),
        None => build_preload(&exe),
    });
    if let Err(e) = ready {
        panic!("{e}");
    }
    exe
}

fn build_preload(exe: &Path) -> Result<(), String> {
    let dir = exe.parent().unwrap();
    let lib = dir.join("libleakscope_preload.so");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root()).args(["build", "--quiet", "-p", "leakscope-preload"]);
    match dir.file_name().and_then(OsStr::to_str) {
        Some("debug") => {}
        Some("release") => {
            cmd.arg("--release");
        }
        Some(other) => {
            cmd.args(["--profile", other]);
        }
        None => {}
    }
    let started = Instant::now();
    let o = cmd.output().map_err(|e| format!("cannot run cargo to build the preload library: {e}"))?;
    if !o.status.success() {
        return Err(format!("`{cmd:?}` failed ({}):\n{}", o.status, String::from_utf8_lossy(&o.stderr)));
    }
    if !lib.is_file() {
        return Err(format!("`{cmd:?}` succeeded but {} does not exist (took {:?})", lib.display(), started.elapsed()));
    }
    Ok(())
}

/// What one leakscope invocation did.
#[derive(Debug)]
pub struct Outcome {
    /// Exit code of leakscope (None if it was killed by a signal).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// The parsed `--json` report, when one was asked for and written.
    pub json: Option<Value>,
    pub json_path: Option<PathBuf>,
}

impl Outcome {
    pub fn json(&self) -> &Value {
        self.json.as_ref().unwrap_or_else(|| panic!("no JSON report was written; {}", self.describe()))
    }

    pub fn describe(&self) -> String {
        format!("exit {:?}\n--- stdout\n{}\n--- stderr\n{}", self.code, self.stdout, self.stderr)
    }

    /// The only process in the report.
    pub fn process(&self) -> &Value {
        let ps = self.json()["processes"].as_array().expect("processes is an array");
        assert_eq!(ps.len(), 1, "want exactly one process in the report: {}", self.describe());
        &ps[0]
    }

    /// stderr without leakscope's report: its non-empty lines.
    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr.lines().filter(|l| !l.trim().is_empty()).collect()
    }
}

/// Runs leakscope with `args`, with a timeout; panics if it panicked.
pub fn leakscope(args: &[&OsStr]) -> Outcome {
    leakscope_in(args, None)
}

pub fn leakscope_in(args: &[&OsStr], cwd: Option<&Path>) -> Outcome {
    let exe = leakscope_exe();
    let mut cmd = Command::new(&exe);
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.env("NO_COLOR", "1");
    if let Some(d) = cwd {
        cmd.current_dir(d);
    }
    let (code, stdout, stderr) = run_with_timeout(cmd, RUN_TIMEOUT);
    assert!(
        !stderr.contains("panicked at") && !stderr.contains("RUST_BACKTRACE"),
        "leakscope panicked: {args:?}\n{stderr}"
    );
    Outcome { code, stdout, stderr, json: None, json_path: None }
}

/// Runs `cmd`, collecting its output; kills it and panics after `limit`.
pub fn run_with_timeout(mut cmd: Command, limit: Duration) -> (Option<i32>, String, String) {
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let stdout = String::from_utf8_lossy(&t_out.join().unwrap()).into_owned();
    let stderr = String::from_utf8_lossy(&t_err.join().unwrap()).into_owned();
    (status.code(), stdout, stderr)
}

/// `leakscope run [opts] --json F -- prog args`, with the report parsed.
pub fn run_opts(opts: &[&str], prog: &Path, args: &[&str]) -> Outcome {
    let json = scratch("report.json");
    let mut v: Vec<&OsStr> = vec![OsStr::new("run")];
    v.extend(opts.iter().map(OsStr::new));
    v.push(OsStr::new("--json"));
    v.push(json.as_os_str());
    v.push(OsStr::new("--"));
    v.push(prog.as_os_str());
    v.extend(args.iter().map(OsStr::new));
    let mut o = leakscope(&v);
    o.json = read_json(&json);
    o.json_path = Some(json);
    o
}

/// `leakscope run --json F -- prog args`.
pub fn run(prog: &Path, args: &[&str]) -> Outcome {
    run_opts(&[], prog, args)
}

/// [`run`], asserting leakscope exited with the program's status 0 and the
/// report is well-formed with exactly one complete process.
pub fn run_ok(prog: &Path, args: &[&str]) -> Outcome {
    let o = run(prog, args);
    assert_eq!(o.code, Some(0), "leakscope run should exit with the program's 0: {}", o.describe());
    check_schema(o.json());
    let p = o.process();
    assert_eq!(p["exit"], serde_json::json!({"code": 0}), "{}", o.describe());
    o
}

pub fn read_json(path: &Path) -> Option<Value> {
    let text = std::fs::read_to_string(path).ok()?;
    Some(serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}\n{text}", path.display())))
}

// ---------------------------------------------------------------------------
// The JSON report

/// One frame of a stack, as in the JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub address: u64,
    pub module: Option<String>,
    pub function: Option<String>,
    pub file: Option<String>,
    pub line: Option<u32>,
    pub inlined: bool,
}

impl Frame {
    /// Whether this frame is `function` (see [`same_function`]) at `file`:`line`.
    pub fn is(&self, function: &str, file: &str, line: u32) -> bool {
        self.function.as_deref().is_some_and(|f| same_function(f, function))
            && self.file.as_deref() == Some(file)
            && self.line == Some(line)
    }
}

/// `reported` names `want`: equal, or a demangled C++ name of it with its
/// parameter list (`middle(int)` for `middle`).
pub fn same_function(reported: &str, want: &str) -> bool {
    reported == want || reported.strip_prefix(want).is_some_and(|rest| rest.starts_with('('))
}

/// A function name without a C++ parameter list.
pub fn base_name(reported: &str) -> &str {
    match reported.find('(') {
        Some(i) if i > 0 => &reported[..i],
        _ => reported,
    }
}

impl std::fmt::Display for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:#x} {} {}:{}{} [{}]",
            self.address,
            self.function.as_deref().unwrap_or("??"),
            self.file.as_deref().unwrap_or("??"),
            self.line.map_or("?".into(), |l| l.to_string()),
            if self.inlined { " (inlined)" } else { "" },
            self.module.as_deref().unwrap_or("??"),
        )
    }
}

pub fn parse_hex(v: &Value) -> u64 {
    let s = v.as_str().unwrap_or_else(|| panic!("address is not a string: {v}"));
    u64::from_str_radix(s.strip_prefix("0x").unwrap_or_else(|| panic!("address without 0x: {s}")), 16)
        .unwrap_or_else(|e| panic!("bad hex address {s}: {e}"))
}

pub fn frames(stack: &Value) -> Vec<Frame> {
    stack
        .as_array()
        .unwrap_or_else(|| panic!("stack is not an array: {stack}"))
        .iter()
        .map(|f| Frame {
            address: parse_hex(&f["address"]),
            module: f["module"].as_str().map(str::to_owned),
            function: f["function"].as_str().map(str::to_owned),
            file: f["file"].as_str().map(str::to_owned),
            line: f["line"].as_u64().map(|l| l as u32),
            inlined: f["inlined"].as_bool().unwrap_or_else(|| panic!("frame without boolean inlined: {f}")),
        })
        .collect()
}

pub fn show_stack(stack: &[Frame]) -> String {
    stack.iter().enumerate().map(|(i, f)| format!("\n    #{i} {f}")).collect()
}

/// A leak or error listing for failure messages.
pub fn show_leaks(process: &Value) -> String {
    let mut s = String::new();
    for l in leaks(process) {
        s += &format!(
            "\n  leak {} bytes in {} blocks ({}, {}):{}",
            l["bytes"],
            l["blocks"],
            l["allocator"],
            l["class"],
            show_stack(&frames(&l["stack"]))
        );
    }
    for e in errors(process) {
        s += &format!(
            "\n  error {} ({}) of {} region {}:{}",
            e["kind"],
            e["release"],
            e["address"],
            e["region"],
            show_stack(&frames(&e["stack"]))
        );
    }
    if s.is_empty() {
        s = "\n  (no leaks, no errors)".into();
    }
    s
}

pub fn leaks(process: &Value) -> &Vec<Value> {
    process["leaks"].as_array().unwrap_or_else(|| panic!("leaks is not an array: {process}"))
}

pub fn errors(process: &Value) -> &Vec<Value> {
    process["errors"].as_array().unwrap_or_else(|| panic!("errors is not an array: {process}"))
}

/// Index of the first non-inlined frame equal to (function, file, line), or of
/// an inlined one.
pub fn frame_index(stack: &[Frame], function: &str, file: &str, line: u32) -> Option<usize> {
    stack.iter().position(|f| f.is(function, file, line))
}

/// The leaks whose stack has a frame `function` at `file`:`line`.
pub fn leaks_with_frame<'a>(process: &'a Value, function: &str, file: &str, line: u32) -> Vec<&'a Value> {
    leaks(process).iter().filter(|l| frame_index(&frames(&l["stack"]), function, file, line).is_some()).collect()
}

/// The one leak whose stack has `function` at `file`:`line`.
pub fn leak_with_frame<'a>(process: &'a Value, function: &str, file: &str, line: u32) -> &'a Value {
    let found = leaks_with_frame(process, function, file, line);
    assert_eq!(
        found.len(),
        1,
        "want exactly one leak with a frame {function} at {file}:{line}; the report has:{}",
        show_leaks(process)
    );
    found[0]
}

/// The one leak allocated at `tag` in `fixture_name`, whose frame #0 is
/// `function` at that line (the program's call into the allocator).
pub fn leak_at<'a>(process: &'a Value, function: &str, fixture_name: &str, tag: &str) -> &'a Value {
    let file = fixture_file(fixture_name);
    let line = line_of(fixture_name, tag);
    let leak = leak_with_frame(process, function, &file, line);
    let stack = frames(&leak["stack"]);
    assert!(
        stack[0].is(function, &file, line),
        "frame #0 of the leak at {tag} should be {function} at {file}:{line}:{}",
        show_stack(&stack)
    );
    leak
}

/// The one leak whose frame #0 is at the marked line, whatever its function
/// is called (to check unwinding apart from naming).
pub fn leak_at_line<'a>(process: &'a Value, fixture_name: &str, tag: &str) -> &'a Value {
    let file = fixture_file(fixture_name);
    let line = line_of(fixture_name, tag);
    let found: Vec<&Value> = leaks(process)
        .iter()
        .filter(|l| {
            frames(&l["stack"])
                .first()
                .is_some_and(|f| f.file.as_deref() == Some(file.as_str()) && f.line == Some(line))
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "want exactly one leak at {file}:{line} ({tag}); the report has:{}",
        show_leaks(process)
    );
    found[0]
}

/// Asserts a leak's class, bytes, blocks and allocator.
pub fn assert_leak(leak: &Value, class: &str, bytes: u64, blocks: u64, allocator: &str) {
    let what = format!("{}{}", leak["allocator"], show_stack(&frames(&leak["stack"])));
    assert_eq!(leak["class"], class, "class of {what}");
    assert_eq!(leak["bytes"].as_u64(), Some(bytes), "bytes of {what}");
    assert_eq!(leak["blocks"].as_u64(), Some(blocks), "blocks of {what}");
    assert_eq!(leak["allocator"], allocator, "allocator of {what}");
}

/// Asserts no leak's stack has a frame at `file`:`line`.
pub fn assert_no_leak_at_line(process: &Value, fixture_name: &str, tag: &str) {
    let file = fixture_file(fixture_name);
    let line = line_of(fixture_name, tag);
    for l in leaks(process) {
        let st = frames(&l["stack"]);
        assert!(
            !st.iter().any(|f| f.file.as_deref() == Some(file.as_str()) && f.line == Some(line)),
            "nothing allocated at {tag} ({file}:{line}) should leak; the report has:{}",
            show_leaks(process)
        );
    }
}

/// Asserts a process reported no leaks and no heap errors, and that the
/// summary agrees (and saw the program allocate).
pub fn assert_clean(process: &Value) {
    assert!(
        leaks(process).is_empty() && errors(process).is_empty(),
        "a leak-free program got a report:{}",
        show_leaks(process)
    );
    let s = &process["summary"];
    for k in ["leaked_bytes", "leaked_blocks", "leak_records", "errors"] {
        assert_eq!(s[k].as_u64(), Some(0), "summary.{k} of a clean program: {s}");
    }
    assert!(s["allocations"].as_u64().is_some_and(|n| n > 0), "summary.allocations should count the program's: {s}");
}

/// The functions of a stack (without C++ parameter lists), innermost first,
/// non-inlined frames only.
pub fn functions(stack: &[Frame]) -> Vec<String> {
    stack.iter().filter(|f| !f.inlined).map(|f| base_name(f.function.as_deref().unwrap_or("??")).to_owned()).collect()
}

/// Checks the report's top-level shape (schema, processes, per-process fields).
pub fn check_schema(report: &Value) {
    assert_eq!(report["schema"], "leakscope-report/1", "{report}");
    let ps = report["processes"].as_array().expect("processes is an array");
    for p in ps {
        for k in ["pid", "parent_pid", "exec_index"] {
            assert!(p[k].is_u64(), "process.{k} should be a number: {p}");
        }
        assert!(p["argv"].is_array() && p["exe"].is_string(), "argv/exe: {p}");
        assert!(p["exit"].is_object(), "exit: {p}");
        assert!(p["complete"].is_boolean() && p["notes"].is_array(), "complete/notes: {p}");
        assert!(p["mappings"].is_array() && p["shared_memory"].is_array(), "mappings/shared_memory: {p}");
        for k in ["leaked_bytes", "leaked_blocks", "leak_records", "errors", "allocations", "frees"] {
            assert!(p["summary"][k].is_u64(), "summary.{k}: {p}");
        }
        // Still-reachable records are listed but not counted as leaked.
        let leaked: Vec<&Value> = leaks(p).iter().filter(|l| l["class"] != "reachable").collect();
        let leak_bytes: u64 = leaked.iter().map(|l| l["bytes"].as_u64().unwrap()).sum();
        let leak_blocks: u64 = leaked.iter().map(|l| l["blocks"].as_u64().unwrap()).sum();
        assert_eq!(p["summary"]["leaked_bytes"].as_u64(), Some(leak_bytes), "summary.leaked_bytes = sum of leaks");
        assert_eq!(p["summary"]["leaked_blocks"].as_u64(), Some(leak_blocks), "summary.leaked_blocks = sum of leaks");
        assert_eq!(p["summary"]["leak_records"].as_u64(), Some(leaked.len() as u64), "summary.leak_records");
        for l in leaks(p) {
            let c = l["class"].as_str().unwrap_or("");
            assert!(["definite", "indirect", "possible", "reachable", "unknown"].contains(&c), "leak class {c}");
        }
        assert_eq!(p["summary"]["errors"].as_u64(), Some(errors(p).len() as u64), "summary.errors");
        for l in leaks(p) {
            frames(&l["stack"]);
        }
        for e in errors(p) {
            frames(&e["stack"]);
        }
    }
}

/// The `addr 0x...` line a fixture printed before its bad call.
pub fn printed_address(stdout: &str, label: &str) -> u64 {
    let prefix = format!("{label} 0x");
    let line = stdout
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("the program printed no {label:?} line:\n{stdout}"));
    u64::from_str_radix(&line[prefix.len()..], 16).unwrap()
}

/// Says why a test does not run, on the real stderr (not captured by the test
/// harness, so it shows in a normal `cargo test`), for a test that then returns.
pub fn skip(test: &str, why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}
