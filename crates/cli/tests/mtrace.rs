//! `leakscope mtrace LOG`: logs written by glibc's mtrace() (the seed
//! article's fourth method), produced for real by fixture programs, then
//! reported with callers resolved in the program (PIE or not), in a shared
//! library and in libc; and logs that are damaged, which must be refused
//! with the line that is wrong.

mod common;

use common::*;
use serde_json::Value;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const MALLOC_DEBUG: &str = "/usr/lib/x86_64-linux-gnu/libc_malloc_debug.so.0";

/// Runs `prog args` with mtrace() logging to a fresh file, the way the
/// article does (MALLOC_TRACE; since glibc 2.34 mtrace() also needs
/// libc_malloc_debug.so preloaded). Returns the log.
fn mtrace_run(prog: &Path, args: &[&str], cwd: &Path) -> PathBuf {
    let log = scratch("mtrace.log");
    let mut cmd = if prog.is_absolute() {
        Command::new(prog)
    } else {
        // Relative to `cwd`, as a shell would start it.
        let mut c = Command::new("sh");
        c.arg("-c").arg(format!("exec {} \"$@\"", prog.display())).arg("sh");
        c
    };
    cmd.args(args).current_dir(cwd).env("MALLOC_TRACE", &log);
    if Path::new(MALLOC_DEBUG).exists() {
        cmd.env("LD_PRELOAD", MALLOC_DEBUG);
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let (code, out, err) = run_with_timeout(cmd, RUN_TIMEOUT);
    assert_eq!(code, Some(0), "{prog:?} failed: {out}{err}");
    let text = std::fs::read_to_string(&log).unwrap_or_else(|e| panic!("no mtrace log {}: {e}", log.display()));
    assert!(text.starts_with("= Start\n"), "not an mtrace log:\n{text}");
    log
}

/// `leakscope mtrace LOG [extra] --json F`, from `cwd`.
fn mtrace_report(log: &Path, extra: &[&OsStr], cwd: Option<&Path>) -> Outcome {
    let json = scratch("mtrace.json");
    let mut v: Vec<&OsStr> = vec![OsStr::new("mtrace"), log.as_os_str()];
    v.extend_from_slice(extra);
    v.extend([OsStr::new("--json"), json.as_os_str()]);
    let mut o = leakscope_in(&v, cwd);
    o.json = read_json(&json);
    o.json_path = Some(json);
    o
}

fn the_leak<'a>(p: &'a Value, bytes: u64) -> &'a Value {
    let found: Vec<&Value> = leaks(p).iter().filter(|l| l["bytes"].as_u64() == Some(bytes)).collect();
    assert_eq!(found.len(), 1, "want one record of {bytes} bytes:{}", show_leaks(p));
    found[0]
}

fn assert_frame0(stack: &Value, function: &str, fixture_name: &str, tag: &str) {
    let st = frames(stack);
    let file = fixture_file(fixture_name);
    let line = line_of(fixture_name, tag);
    assert!(
        st.first().is_some_and(|f| f.is(function, &file, line)),
        "frame #0 should be {function} at {file}:{line} ({tag}):{}",
        show_stack(&st)
    );
}

// ---------------------------------------------------------------------------
// The article's program

#[test]
fn article_mtrace_log_shows_the_leak() {
    let exe = cc("article_mtrace.c", &["-g"]);
    let log = mtrace_run(&exe, &[], work_dir());
    let o = mtrace_report(&log, &[OsStr::new("--binary"), exe.as_os_str()], None);
    assert_eq!(o.code, Some(0), "{}", o.describe());
    check_schema(o.json());
    let p = o.process();
    assert_eq!(p["summary"]["leaked_bytes"], 30, "only p3 was never freed:{}", show_leaks(p));
    let leak = the_leak(p, 30);
    assert_eq!(leak["blocks"], 1);
    assert_frame0(&leak["stack"], "main", "article_mtrace.c", "ARTICLE:leak");
    assert!(errors(p).is_empty(), "{}", show_leaks(p));
    let line = line_of("article_mtrace.c", "ARTICLE:leak");
    assert!(o.stderr.contains("30 bytes in 1 block never freed"), "{}", o.describe());
    assert!(o.stderr.contains(&format!("article_mtrace.c:{line}")), "{}", o.describe());
    // --error-exitcode applies.
    let o = leakscope(&[OsStr::new("mtrace"), log.as_os_str(), OsStr::new("--binary"), exe.as_os_str(), OsStr::new("--error-exitcode"), OsStr::new("9")]);
    assert_eq!(o.code, Some(9), "{}", o.describe());
}

/// glibc aborts the program at the double free before mtrace() logs it, so
/// no real log holds one: a log edited to free p4 again stands for one.
#[test]
fn article_mtrace_log_with_a_double_free() {
    let exe = cc("article_mtrace.c", &["-g"]);
    let log = mtrace_run(&exe, &[], work_dir());
    let text = std::fs::read_to_string(&log).unwrap();
    // p4's free is the last "-" before "= End".
    let free_p4 = text.lines().filter(|l| l.contains(" - 0x")).last().unwrap().to_owned();
    let edited = text.replace("= End\n", &format!("{free_p4}\n= End\n"));
    let double = scratch("double.log");
    std::fs::write(&double, edited).unwrap();
    let o = mtrace_report(&double, &[OsStr::new("--binary"), exe.as_os_str()], None);
    assert_eq!(o.code, Some(0), "{}", o.describe());
    let p = o.process();
    let errs = errors(p);
    assert_eq!(errs.len(), 1, "{}", show_leaks(p));
    let e = &errs[0];
    assert_eq!(e["kind"], "double-free");
    assert_eq!(e["block"]["bytes"], 40);
    assert_frame0(&e["alloc_stack"], "main", "article_mtrace.c", "ARTICLE:alloc40");
    assert_frame0(&e["free_stack"], "main", "article_mtrace.c", "ARTICLE:free40");
    assert!(o.stderr.contains("ERROR: double free of"), "{}", o.describe());
}

/// The article's second example under leakscope itself (which, unlike
/// glibc, survives the double free): the 30-byte leak and the 40-byte
/// double free, with mtrace() in the program as the article has it.
#[test]
fn article_mtrace_program_under_leakscope() {
    let exe = cc("article_mtrace.c", &["-g"]);
    let log = scratch("under-leakscope.log");
    let json = scratch("under-leakscope.json");
    let mut cmd = Command::new(leakscope_exe());
    cmd.arg("run").arg("--json").arg(&json).arg("--").arg(&exe).arg("double-free");
    cmd.env("MALLOC_TRACE", &log).env("NO_COLOR", "1").stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let (code, out, err) = run_with_timeout(cmd, RUN_TIMEOUT);
    assert_eq!(code, Some(0), "{out}{err}");
    let report = read_json(&json).unwrap();
    check_schema(&report);
    let p = &report["processes"][0];
    assert_eq!(p["summary"]["leaked_bytes"], 30, "{}", show_leaks(p));
    let e = &errors(p)[0];
    assert_eq!((e["kind"].as_str(), e["block"]["bytes"].as_u64()), (Some("double-free"), Some(40)));
    let st = frames(&e["stack"]);
    let file = fixture_file("article_mtrace.c");
    assert!(st[0].is("main", &file, line_of("article_mtrace.c", "ARTICLE:double")), "{}", show_stack(&st));
}

// ---------------------------------------------------------------------------
// Callers everywhere

fn callers_program(pie: bool) -> (PathBuf, PathBuf) {
    let lib = cc_shared("mtrace_lib.c", &["-g"]);
    let dir = lib.parent().unwrap().display().to_string();
    let (search, rpath) = (format!("-L{dir}"), format!("-Wl,-rpath,{dir}"));
    let link = format!("-l:{}", lib.file_name().unwrap().to_str().unwrap());
    let mut flags = vec!["-g", "-O0", &search, &rpath, &link];
    if !pie {
        flags.push("-no-pie");
    }
    (cc("mtrace_callers.c", &flags), lib)
}

fn assert_callers(o: &Outcome, lib: &Path) {
    assert_eq!(o.code, Some(0), "{}", o.describe());
    check_schema(o.json());
    let p = o.process();
    // Three blocks from one call in a loop: one record.
    let loop_leak = the_leak(p, 72);
    assert_eq!(loop_leak["blocks"], 3);
    assert_frame0(&loop_leak["stack"], "three", "mtrace_callers.c", "CALLER:loop");
    // In the shared library.
    let lib_leak = the_leak(p, 48);
    assert_frame0(&lib_leak["stack"], "lib_make", "mtrace_lib.c", "LIB:alloc");
    let module = frames(&lib_leak["stack"])[0].module.clone().unwrap();
    assert_eq!(Path::new(&module).canonicalize().unwrap(), lib.canonicalize().unwrap());
    // In libc: strdup's malloc.
    let st = frames(&the_leak(p, 10)["stack"]);
    assert!(st[0].function.as_deref().is_some_and(|f| f.contains("strdup")), "{}", show_stack(&st));
    assert!(st[0].module.as_deref().is_some_and(|m| m.contains("libc.so")), "{}", show_stack(&st));
    // realloc's new block.
    let r = the_leak(p, 4096);
    assert_eq!(r["allocator"], "realloc");
    assert_frame0(&r["stack"], "main", "mtrace_callers.c", "CALLER:realloc");
    assert_eq!(p["summary"]["leaked_bytes"], 72 + 48 + 10 + 4096, "{}", show_leaks(p));
    // The block allocated before mtrace() was freed while tracing.
    let errs = errors(p);
    assert_eq!(errs.len(), 1, "{}", show_leaks(p));
    assert_eq!((errs[0]["kind"].as_str(), errs[0]["release"].as_str()), (Some("invalid-free"), Some("free")));
    assert!(errs[0]["block"].is_null());
    assert_frame0(&errs[0]["stack"], "main", "mtrace_callers.c", "CALLER:unknown-free");
    assert!(o.stderr.contains("72 bytes in 3 blocks never freed"), "{}", o.describe());
    assert!(o.stderr.contains("which the log never allocated"), "{}", o.describe());
}

#[test]
fn callers_in_a_pie_program_its_library_and_libc() {
    let (exe, lib) = callers_program(true);
    let log = mtrace_run(&exe, &[], work_dir());
    let o = mtrace_report(&log, &[OsStr::new("--binary"), exe.as_os_str()], None);
    assert_callers(&o, &lib);
}

#[test]
fn callers_in_a_non_pie_program() {
    let (exe, lib) = callers_program(false);
    let log = mtrace_run(&exe, &[], work_dir());
    let o = mtrace_report(&log, &[OsStr::new("--binary"), exe.as_os_str()], None);
    assert_callers(&o, &lib);
    // The program is loaded at its link address: frames show its real addresses.
    let st = frames(&the_leak(o.process(), 72)["stack"]);
    assert!(st[0].address >= 0x400000, "{}", show_stack(&st));
}

#[test]
fn the_program_is_found_without_binary() {
    let (exe, lib) = callers_program(true);
    // Started as ./NAME from its directory, as the article does: the log says "./NAME".
    let dir = exe.parent().unwrap();
    let name = format!("./{}", exe.file_name().unwrap().to_str().unwrap());
    let log = mtrace_run(Path::new(&name), &[], dir);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains(&format!("@ {name}:[")), "{text}");
    // From the program's directory...
    let o = mtrace_report(&log, &[], Some(dir));
    assert_callers(&o, &lib);
    // ... or anywhere, with the log beside the program.
    let beside = dir.join("beside.log");
    std::fs::copy(&log, &beside).unwrap();
    let o = mtrace_report(&beside, &[], Some(Path::new("/")));
    assert_callers(&o, &lib);
    // Without the program, the callers stay as the log gives them, and the text says why.
    let elsewhere = scratch("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let moved = elsewhere.join("moved.log");
    std::fs::copy(&log, &moved).unwrap();
    let o = mtrace_report(&moved, &[], Some(&elsewhere));
    assert_eq!(o.code, Some(0), "{}", o.describe());
    assert!(o.stderr.contains(&format!("note: {name} was not found")), "{}", o.describe());
    assert_eq!(o.process()["summary"]["leaked_bytes"], 72 + 48 + 10 + 4096);
}

// ---------------------------------------------------------------------------
// Damaged logs

fn refused(text: &[u8], want: &str) {
    let log = scratch("bad.log");
    std::fs::write(&log, text).unwrap();
    let o = leakscope(&[OsStr::new("mtrace"), log.as_os_str()]);
    assert_eq!(o.code, Some(2), "a damaged log is an error: {}", o.describe());
    let first = o.stderr.lines().next().unwrap_or("");
    assert!(first.starts_with(&format!("leakscope: {}: ", log.display())), "{}", o.describe());
    assert!(first.contains(want), "want {want:?} in: {}", o.describe());
}

#[test]
fn damaged_logs_are_refused_naming_the_line() {
    let exe = cc("article_mtrace.c", &["-g"]);
    let log = mtrace_run(&exe, &[], work_dir());
    let text = std::fs::read(&log).unwrap();
    // Cut in the middle of the third line.
    let third = text.iter().enumerate().filter(|(_, &c)| c == b'\n').nth(1).unwrap().0 + 6;
    refused(&text[..third], "line 3: the log ends in the middle of this line");
    // A line that is not a record.
    let mut garbled = text.clone();
    let at = text.iter().enumerate().filter(|(_, &c)| c == b'\n').nth(2).unwrap().0 + 1;
    garbled.splice(at..at, b"this is not mtrace output\n".iter().copied());
    refused(&garbled, "line 4: not an mtrace record");
    // A record with a bad value.
    refused(b"= Start\n@ ./prog:[0x1139] + 0x5555555592a0 0xten\n= End\n", "line 2: \"0xten\" is not a size");
    refused(b"= Start\n@ ./prog:[0x1139] - \n", "line 2:");
    refused(b"", "the log is empty");
    refused(b"\x7fELF\x02\x01\x01\0\0\0", "line 1:");
    let o = leakscope(&[OsStr::new("mtrace"), OsStr::new("/nonexistent/mtrace.log")]);
    assert_eq!(o.code, Some(2));
    assert!(o.stderr.contains("cannot read the mtrace log /nonexistent/mtrace.log"), "{}", o.describe());
}
