//! What a program can tell leakscope itself (include/leakscope.h, the
//! leakscope-api crate): every control call, the source-location macros with
//! and without leakscope (and without debug information), `-lleakscope`, the
//! installed header and pkg-config file; and the seed article's example
//! program in the four styles that run under `leakscope run` (the fifth,
//! mtrace, is in mtrace.rs): each time leakscope must find what the article
//! points out, the 30-byte block leaked and the 40-byte block freed twice.

mod common;

use common::*;
use serde_json::Value;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn include_flag() -> String {
    format!("-I{}", workspace_root().join("include").display())
}

/// Runs a program without leakscope; returns (exit code, stdout, stderr).
fn run_plain(prog: &Path, args: &[&str], cwd: Option<&Path>) -> (Option<i32>, String, String) {
    let mut cmd = Command::new(prog);
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    if let Some(d) = cwd {
        cmd.current_dir(d);
    }
    run_with_timeout(cmd, RUN_TIMEOUT)
}

/// The reported (not still reachable) leaks of a process, by size.
fn leaked_sizes(p: &Value) -> Vec<u64> {
    let mut v: Vec<u64> =
        leaks(p).iter().filter(|l| l["class"] != "reachable").map(|l| l["bytes"].as_u64().unwrap()).collect();
    v.sort();
    v
}

fn leak_of_size(p: &Value, bytes: u64) -> &Value {
    let found: Vec<&Value> = leaks(p).iter().filter(|l| l["bytes"].as_u64() == Some(bytes)).collect();
    assert_eq!(found.len(), 1, "want one leak of {bytes} bytes; the report has:{}", show_leaks(p));
    found[0]
}

fn stdout_has(o: &Outcome, line: &str) {
    assert!(o.stdout.lines().any(|l| l == line), "the program should print {line:?}: {}", o.describe());
}

// ---------------------------------------------------------------------------
// The control API (api_calls.c)

fn api_calls() -> PathBuf {
    cc("api_calls.c", &["-g", "-O2", &include_flag()])
}

#[test]
fn control_api_does_nothing_without_leakscope() {
    let (code, out, err) = run_plain(&api_calls(), &["plain"], None);
    assert_eq!(code, Some(0), "{out}{err}");
    let want = "active 0\ncheck first 0\nignore start 0\nignore interior 0\nignore stack 0\nignore null 0\ncheck 0\ndone\n";
    assert_eq!(out, want);
}

#[test]
fn control_api_under_leakscope() {
    let o = run(&api_calls(), &["wait"]);
    assert_eq!(o.code, Some(0), "{}", o.describe());
    check_schema(o.json());
    for line in ["active 1", "check first 0", "ignore start 1", "ignore interior 1", "ignore stack 0", "ignore null 0"] {
        stdout_has(&o, line);
    }
    let p = o.process();
    // Lost: the traced 21-byte block and the two dropped before the check. Not
    // reported: blocks made while tracing was off (11, 12, 13, 14, 4000 bytes,
    // nested and after an extra enable), the ignored ones (32 + 32 its child,
    // 64 by an interior pointer), the freed ones (31, 32, 33).
    assert_eq!(leaked_sizes(p), [21, 101, 102], "{}", show_leaks(p));
    assert_leak(leak_at(p, "traced_blocks", "api_calls.c", "LEAK:traced"), "definite", 21, 1, "malloc");
    for tag in ["LOST:checked-a", "LOST:checked-b"] {
        leak_at(p, "lose_two", "api_calls.c", tag);
    }
    for tag in [
        "DISABLED:outer",
        "DISABLED:nested",
        "DISABLED:calloc",
        "DISABLED:after-extra-enable",
        "DISABLED:realloc",
        "IGNORED:root",
        "IGNORED:interior",
        "FREED:traced",
        "FREED:untraced",
    ] {
        assert_no_leak_at_line(p, "api_calls.c", tag);
    }
    // The ignored block's child: reachable through it, so not lost.
    let file = fixture_file("api_calls.c");
    let child = leaks_with_frame(p, "ignored_blocks", &file, line_of("api_calls.c", "IGNORED:child"));
    assert!(child.iter().all(|l| l["class"] == "reachable"), "{}", show_leaks(p));
    // leakscope_check() counted the three lost blocks, and the CLI printed
    // their report while the program was still running.
    stdout_has(&o, "check 3");
    assert!(o.stderr.contains("leakscope: on-demand check #"), "{}", o.describe());
    let before_end = o.stderr.split("leakscope: on-demand check #").nth(1).unwrap();
    assert!(before_end.contains("101 bytes in 1 block"), "the on-demand report shows the lost blocks: {}", o.describe());
    // Frees are checked while tracing is off.
    let errs = errors(p);
    assert_eq!(errs.len(), 1, "{}", show_leaks(p));
    let e = &errs[0];
    assert_eq!(e["kind"], "double-free");
    assert_eq!(e["block"]["bytes"], 33);
    let file = fixture_file("api_calls.c");
    let st = frames(&e["stack"]);
    assert!(st[0].is("frees_across_states", &file, line_of("api_calls.c", "DOUBLE:disabled")), "{}", show_stack(&st));
    let alloc = frames(&e["alloc_stack"]);
    assert!(alloc[0].is("frees_across_states", &file, line_of("api_calls.c", "ALLOC:double")), "{}", show_stack(&alloc));
}

// ---------------------------------------------------------------------------
// Source locations (api_macros.c)

const MACRO_SITES: [(&str, u64, &str); 5] = [
    ("MACRO:malloc", 21, "malloc"),
    ("MACRO:calloc", 22, "calloc"),
    ("MACRO:realloc", 23, "realloc"),
    ("MACRO:strdup", 24, "malloc"),
    ("MACRO:strndup", 25, "malloc"),
];

/// Each macro's leak, at its own line, with the function the macro saw.
fn assert_macro_leaks(p: &Value, debug_info: bool) {
    let file = fixture_file("api_macros.c");
    assert_eq!(leaked_sizes(p), [21, 22, 23, 24, 25], "{}", show_leaks(p));
    for (tag, bytes, allocator) in MACRO_SITES {
        let leak = leak_of_size(p, bytes);
        assert_eq!(leak["allocator"], allocator, "{tag}");
        let st = frames(&leak["stack"]);
        let function = if tag == "MACRO:strdup" { "make_name" } else { "main" };
        assert!(
            st[0].is(function, &file, line_of("api_macros.c", tag)),
            "{tag}: frame #0 should be {function} at the macro's line:{}",
            show_stack(&st)
        );
        // A frame of the program itself (its call of the allocator), not a
        // made-up one: it has the module and an address.
        assert!(st[0].module.is_some() && st[0].address != 0, "{tag}:{}", show_stack(&st));
        // One frame per call: the caller comes next, not the same call again.
        if st.len() > 1 {
            assert!(!(st[1].file == st[0].file && st[1].line == st[0].line), "{tag}: duplicated frame:{}", show_stack(&st));
        }
        if tag == "MACRO:strdup" {
            assert_eq!(st[1].function.as_deref().map(base_name), Some("main"), "{}", show_stack(&st));
            if !debug_info {
                assert_eq!(st[1].line, None, "without -g only the macro knows lines:{}", show_stack(&st));
            }
        }
    }
    assert_no_leak_at_line(p, "api_macros.c", "MACRO:freed");
    assert!(errors(p).is_empty(), "{}", show_leaks(p));
}

/// Whether `exe` has DWARF line information.
fn has_debug_info(exe: &Path) -> bool {
    let o = Command::new("readelf").arg("-S").arg(exe).output().expect("readelf");
    String::from_utf8_lossy(&o.stdout).contains(".debug_line")
}

#[test]
fn macros_give_file_and_line_without_debug_info() {
    let exe = cc("api_macros.c", &["-O2", &include_flag()]);
    assert!(!has_debug_info(&exe), "the fixture must be built without -g");
    let o = run_ok(&exe, &[]);
    assert_macro_leaks(o.process(), false);
    // The text report names them too.
    let file = fixture_file("api_macros.c");
    let line = line_of("api_macros.c", "MACRO:malloc");
    assert!(o.stderr.contains(&format!("in main {file}:{line}")), "{}", o.describe());
}

#[test]
fn macros_in_cxx_without_debug_info() {
    // g++ compiles the .c fixture as C++.
    let exe = cxx("api_macros.c", &["-O1", &include_flag()]);
    let o = run_ok(&exe, &[]);
    assert_macro_leaks(o.process(), false);
}

#[test]
fn macros_agree_with_debug_info() {
    let exe = cc("api_macros.c", &["-O0", "-g", &include_flag()]);
    let o = run_ok(&exe, &[]);
    assert_macro_leaks(o.process(), true);
}

#[test]
fn macros_run_normally_without_leakscope() {
    for exe in [cc("api_macros.c", &["-O2", &include_flag()]), cxx("api_macros.c", &["-O1", &include_flag()])] {
        let (code, out, err) = run_plain(&exe, &[], None);
        assert_eq!((code, out.as_str()), (Some(0), "done\n"), "{err}");
    }
}

#[test]
fn saved_trace_keeps_the_locations() {
    let exe = cc("api_macros.c", &["-O2", &include_flag()]);
    let trace = scratch("macros.lstrace");
    let o = run_opts(&["--save-trace", trace.to_str().unwrap()], &exe, &[]);
    assert_eq!(o.code, Some(0), "{}", o.describe());
    let json = scratch("macros-report.json");
    let r = leakscope(&[OsStr::new("report"), trace.as_os_str(), OsStr::new("--json"), json.as_os_str()]);
    assert_eq!(r.code, Some(0), "{}", r.describe());
    let report = read_json(&json).unwrap();
    let ps = report["processes"].as_array().unwrap();
    assert_eq!(ps.len(), 1);
    assert_macro_leaks(&ps[0], false);
}

// ---------------------------------------------------------------------------
// Linking the library directly, and installing

/// Flags linking the preload library beside the leakscope under test as -lleakscope.
fn link_flags() -> Option<Vec<String>> {
    let dir = leakscope_exe().parent().unwrap().to_path_buf();
    if !dir.join("libleakscope.so").exists() {
        return None;
    }
    Some(vec![
        format!("-L{}", dir.display()),
        format!("-Wl,-rpath,{}", dir.display()),
        "-Wl,--push-state,--no-as-needed".into(),
        "-lleakscope".into(),
        "-Wl,--pop-state".into(),
    ])
}

#[test]
fn linked_with_lleakscope() {
    let Some(link) = link_flags() else {
        skip("linked_with_lleakscope", "no libleakscope.so beside the leakscope executable (LEAKSCOPE_PRELOAD?)");
        return;
    };
    let mut flags: Vec<&str> = vec!["-O2"];
    let inc = include_flag();
    flags.push(&inc);
    flags.extend(link.iter().map(String::as_str));
    let exe = cc("api_macros.c", &flags);
    let needed = Command::new("readelf").arg("-d").arg(&exe).output().unwrap();
    assert!(String::from_utf8_lossy(&needed.stdout).contains("[libleakscope.so]"), "not linked to libleakscope.so");
    // Without leakscope: the library is there but only passes calls on.
    let (code, out, err) = run_plain(&exe, &[], None);
    assert_eq!((code, out.as_str()), (Some(0), "done\n"), "{err}");
    // Under leakscope: one library (the preloaded one is the linked one), one report.
    let o = run_ok(&exe, &[]);
    assert_macro_leaks(o.process(), false);
    // And the control API too.
    let mut flags: Vec<&str> = vec!["-O2", "-g"];
    flags.push(&inc);
    flags.extend(link.iter().map(String::as_str));
    let calls = cc("api_calls.c", &flags);
    let (code, out, _) = run_plain(&calls, &["plain"], None);
    assert_eq!(code, Some(0));
    assert!(out.starts_with("active 0\n"), "{out}");
}

#[test]
fn installed_header_library_and_pkg_config() {
    if !have_tool("pkg-config") {
        skip("installed_header_library_and_pkg_config", "pkg-config is not installed");
        return;
    }
    let from = leakscope_exe().parent().unwrap().to_path_buf();
    let prefix = scratch("prefix");
    let script = workspace_root().join("scripts/install.sh");
    let o = Command::new("sh")
        .arg(&script)
        .arg("--prefix")
        .arg(&prefix)
        .arg("--from")
        .arg(&from)
        .output()
        .unwrap();
    assert!(o.status.success(), "install.sh failed: {}", String::from_utf8_lossy(&o.stderr));
    for f in ["bin/leakscope", "lib/leakscope/libleakscope_preload.so", "lib/libleakscope.so", "include/leakscope.h"] {
        assert!(prefix.join(f).exists(), "{f} was not installed");
    }
    let pc = Command::new("pkg-config")
        .args(["--cflags", "--libs", "leakscope"])
        .env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig"))
        .output()
        .unwrap();
    assert!(pc.status.success(), "pkg-config: {}", String::from_utf8_lossy(&pc.stderr));
    let pc_flags = String::from_utf8(pc.stdout).unwrap();
    assert!(pc_flags.contains(&format!("-I{}/include", prefix.display())), "{pc_flags}");
    let mut flags: Vec<&str> = vec!["-O2"];
    flags.extend(pc_flags.split_whitespace());
    let exe = cc("api_macros.c", &flags);
    let (code, out, err) = run_plain(&exe, &[], None);
    assert_eq!((code, out.as_str()), (Some(0), "done\n"), "{err}");
    // The installed command finds its library under PREFIX/lib/leakscope.
    let json = scratch("installed.json");
    let mut cmd = Command::new(prefix.join("bin/leakscope"));
    cmd.arg("run").arg("--json").arg(&json).arg("--").arg(&exe);
    cmd.env_remove("LEAKSCOPE_PRELOAD").stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let (code, _, err) = run_with_timeout(cmd, RUN_TIMEOUT);
    assert_eq!(code, Some(0), "{err}");
    let report = read_json(&json).unwrap();
    assert_macro_leaks(&report["processes"][0], false);
}

// ---------------------------------------------------------------------------
// The Rust crate

fn api_rust() -> PathBuf {
    static RLIB: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let rlib = RLIB.get_or_init(build_api_rlib);
    let extern_flag = format!("leakscope_api={}", rlib.display());
    rust("api_rust.rs", &["-g", "--extern", &extern_flag])
}

/// The leakscope-api crate, built with rustc alone (it has no dependencies).
fn build_api_rlib() -> PathBuf {
    let dir = scratch("leakscope-api");
    std::fs::create_dir_all(&dir).unwrap();
    let rlib = dir.join("libleakscope_api.rlib");
    let src = workspace_root().join("crates/api/src/lib.rs");
    let o = Command::new("rustc")
        .args(["--edition", "2021", "--crate-type", "rlib", "--crate-name", "leakscope_api", "-O"])
        .arg(&src)
        .arg("-o")
        .arg(&rlib)
        .output()
        .unwrap();
    assert!(o.status.success(), "building leakscope-api: {}", String::from_utf8_lossy(&o.stderr));
    rlib
}

#[test]
fn rust_crate_is_a_no_op_without_leakscope() {
    let (code, out, err) = run_plain(&api_rust(), &[], None);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        out,
        "active false\nkept 37\nignore box false\nignore stack false\nwithout tracing 41\ncheck 0\n",
        "{err}"
    );
}

#[test]
fn rust_crate_under_leakscope() {
    let o = run(&api_rust(), &[]);
    assert_eq!(o.code, Some(0), "{}", o.describe());
    for line in ["active true", "kept 37", "ignore box true", "ignore stack false", "without tracing 41"] {
        stdout_has(&o, line);
    }
    let check = o.stdout.lines().find_map(|l| l.strip_prefix("check ")).expect("a check line");
    check.parse::<u64>().expect("check prints a count");
    let p = o.process();
    let sizes: Vec<u64> = leaks(p).iter().map(|l| l["bytes"].as_u64().unwrap()).collect();
    assert!(sizes.contains(&33), "the leak made while tracing is on:{}", show_leaks(p));
    for hidden in [31, 35, 37, 41] {
        assert!(!sizes.contains(&hidden), "{hidden} bytes were kept out of the report:{}", show_leaks(p));
    }
}

// ---------------------------------------------------------------------------
// The seed article's example program, in its styles

/// What the article points out: the 30-byte block leaked (allocated in
/// main), the 40-byte block freed twice; and nothing else.
fn assert_article(o: &Outcome, fixture: &str, free_site: (&str, &str)) {
    assert_eq!(o.code, Some(0), "{}", o.describe());
    check_schema(o.json());
    let p = o.process();
    let file = fixture_file(fixture);
    assert_eq!(leaked_sizes(p), [30], "only the 30-byte block leaks:{}", show_leaks(p));
    let leak = leak_of_size(p, 30);
    let st = frames(&leak["stack"]);
    assert!(
        frame_index(&st, "main", &file, line_of(fixture, "ARTICLE:leak")).is_some(),
        "the 30-byte block was allocated in main:{}",
        show_stack(&st)
    );
    let errs = errors(p);
    assert_eq!(errs.len(), 1, "one heap error:{}", show_leaks(p));
    let e = &errs[0];
    assert_eq!(e["kind"], "double-free", "{}", show_leaks(p));
    assert_eq!(e["block"]["bytes"], 40);
    let at = |stack: &Value, function: &str, tag: &str| {
        let st = frames(stack);
        assert!(
            frame_index(&st, function, &file, line_of(fixture, tag)).is_some(),
            "{tag}: want {function} at its line:{}",
            show_stack(&st)
        );
    };
    at(&e["stack"], "main", "ARTICLE:double");
    at(&e["alloc_stack"], "main", "ARTICLE:alloc40");
    at(&e["free_stack"], free_site.0, free_site.1);
}

/// A scratch directory with the `mem` directory the article's hooks write to.
fn article_dir() -> PathBuf {
    let d = scratch("article");
    std::fs::create_dir_all(d.join("mem")).unwrap();
    d
}

fn run_in(dir: &Path, opts: &[&str], prog: &Path, args: &[&str]) -> Outcome {
    let json = scratch("article.json");
    let mut v: Vec<&OsStr> = vec![OsStr::new("run")];
    v.extend(opts.iter().map(OsStr::new));
    v.extend([OsStr::new("--json"), json.as_os_str(), OsStr::new("--"), prog.as_os_str()]);
    v.extend(args.iter().map(OsStr::new));
    let mut o = leakscope_in(&v, Some(dir));
    o.json = read_json(&json);
    o.json_path = Some(json);
    o
}

/// The article's own record of the leak: the hook's file for the 30-byte block.
fn assert_mem_record_of_30_bytes(dir: &Path) {
    let found = std::fs::read_dir(dir.join("mem"))
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.unwrap().path()).ok())
        .any(|t| t.contains("size:30"));
    assert!(found, "the program's own hook should have left a record of the 30-byte block in mem/");
}

#[test]
fn article_override_over_libc_malloc() {
    // The article's way: gcc -g, a mem/ directory, run the program.
    let exe = cc("article_override.c", &["-g"]);
    let dir = article_dir();
    let o = run_in(&dir, &[], &exe, &[]);
    // Its free() passes the double free on to __libc_free: leakscope catches it there.
    assert_article(&o, "article_override.c", ("free", "HOOK:free"));
    assert!(o.stdout.contains("double free: 0x"), "the article's own check saw it too: {}", o.describe());
    assert_mem_record_of_30_bytes(&dir);
    // The 30-byte block came through the program's malloc, over __libc_malloc.
    let st = frames(&leak_of_size(o.process(), 30)["stack"]);
    assert!(st[0].is("malloc", &fixture_file("article_override.c"), line_of("article_override.c", "HOOK:malloc")));
}

#[test]
fn article_macros_with_file_and_line() {
    // Built without -g: file and line come from the macros.
    let exe = cc("article_macros.c", &["-O0", &include_flag()]);
    let o = run(&exe, &[]);
    assert_article(&o, "article_macros.c", ("main", "ARTICLE:free40"));
    let st = frames(&leak_of_size(o.process(), 30)["stack"]);
    assert!(st[0].is("main", &fixture_file("article_macros.c"), line_of("article_macros.c", "ARTICLE:leak")));
    // And the program runs the same without leakscope (freeing p4 once: glibc aborts on a double free).
    let (code, _, err) = run_plain(&exe, &["once"], None);
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn article_scoped_tracing_for_malloc_hook() {
    let exe = cc("article_scoped.c", &["-g", &include_flag()]);
    let o = run_opts(&["--start-disabled"], &exe, &[]);
    assert_article(&o, "article_scoped.c", ("main", "ARTICLE:free40"));
    // Without --start-disabled the block allocated before mem_trace() is traced too.
    let o = run(&exe, &[]);
    let p = o.process();
    assert_eq!(leaked_sizes(p), [30, 50], "{}", show_leaks(p));
    leak_at(p, "main", "article_scoped.c", "UNTRACED:before");
    assert_no_leak_at_line(p, "article_scoped.c", "UNTRACED:after");
}

#[test]
fn article_dlsym_rtld_next() {
    let exe = cc("article_dlsym.c", &["-g", "-ldl"]);
    let dir = article_dir();
    let o = run_in(&dir, &[], &exe, &[]);
    // RTLD_NEXT from the program is leakscope's malloc and free.
    assert_article(&o, "article_dlsym.c", ("free", "HOOK:free"));
    assert!(o.stdout.contains("double free: 0x"), "the article's own check saw it too: {}", o.describe());
    assert_mem_record_of_30_bytes(&dir);
}
