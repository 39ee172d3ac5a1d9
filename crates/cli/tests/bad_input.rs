//! Bad input ends leakscope with a one-line error and a non-zero status,
//! never a panic: programs it cannot run or trace, and trace files that are
//! missing, empty, truncated or corrupted.

mod common;

use common::*;
use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Asserts a failed run: `code`, one line on stderr (mentioning `mention`), no report.
fn assert_one_line_error(o: &Outcome, code: i32, mention: &str) {
    assert_eq!(o.code, Some(code), "{}", o.describe());
    let lines = o.stderr_lines();
    assert_eq!(lines.len(), 1, "want a one-line error: {}", o.describe());
    assert!(
        lines[0].to_lowercase().contains(&mention.to_lowercase()),
        "the error should mention {mention:?}: {}",
        lines[0]
    );
}

fn run_bare(prog: &Path) -> Outcome {
    let json = scratch("never.json");
    let o = leakscope(&[OsStr::new("run"), OsStr::new("--json"), json.as_os_str(), OsStr::new("--"), prog.as_os_str()]);
    assert!(!json.exists(), "no report for a program that did not run");
    o
}

#[test]
fn missing_program_is_a_one_line_error_with_status_127() {
    let o = run_bare(Path::new("/nonexistent/leakscope-test/prog"));
    assert_one_line_error(&o, 127, "/nonexistent/leakscope-test/prog");
}

#[test]
fn program_not_in_path_is_a_one_line_error_with_status_127() {
    let o = run_bare(Path::new("leakscope-no-such-program-in-path"));
    assert_one_line_error(&o, 127, "leakscope-no-such-program-in-path");
}

#[test]
fn non_executable_file_is_a_one_line_error_with_status_126() {
    let f = scratch("not-executable");
    std::fs::write(&f, "#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = run_bare(&f);
    assert_one_line_error(&o, 126, "not executable");
}

#[test]
fn statically_linked_program_is_refused_with_status_126() {
    if !Path::new("/usr/lib/x86_64-linux-gnu/libc.a").exists() {
        eprintln!(
            "SKIPPED: /usr/lib/x86_64-linux-gnu/libc.a is absent, cannot link a static fixture (apt install libc6-dev)"
        );
        return;
    }
    let exe = cc("exit_status.c", &["-O0", "-static"]);
    let o = run_bare(&exe);
    assert_one_line_error(&o, 126, "statically linked");
}

#[test]
fn setuid_program_owned_by_another_user_is_refused_with_status_126() {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: needs root to give a file to nobody and make it setuid");
        return;
    }
    let exe = scratch("setuid-nobody");
    std::fs::copy(cc("exit_status.c", &["-O0"]), &exe).unwrap();
    std::os::unix::fs::chown(&exe, Some(65534), Some(65534)).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let c = std::ffi::CString::new(exe.to_str().unwrap()).unwrap();
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } == 0 && st.f_flag & libc::ST_NOSUID != 0 {
        eprintln!("SKIPPED: {} is on a nosuid file system, where the setuid bit means nothing", exe.display());
        return;
    }
    let o = run_bare(&exe);
    assert_one_line_error(&o, 126, "setuid");
}

/// `leakscope report TRACE --json J`: must fail without writing J.
fn report_fails(trace: &Path) -> Outcome {
    let json = scratch("never.json");
    let o = leakscope(&[OsStr::new("report"), trace.as_os_str(), OsStr::new("--json"), json.as_os_str()]);
    assert_ne!(o.code, Some(0), "report of a bad trace must fail: {}", o.describe());
    assert!(o.code.is_some(), "leakscope must exit, not die of a signal: {}", o.describe());
    let lines = o.stderr_lines();
    assert_eq!(lines.len(), 1, "want a one-line error: {}", o.describe());
    assert!(!json.exists(), "no report from a bad trace");
    o
}

/// A real trace, saved from a run of a leaking program.
fn saved_trace() -> Vec<u8> {
    let trace = scratch("good.lstrace");
    let o = run_opts(&["--save-trace", trace.to_str().unwrap()], &cc("alloc_family.c", &["-g", "-O0"]), &[]);
    assert_eq!(o.code, Some(0), "{}", o.describe());
    let bytes = std::fs::read(&trace).expect("saved trace");
    assert!(bytes.len() > 64, "a trace with 15 blocks is not {} bytes", bytes.len());
    bytes
}

#[test]
fn report_of_a_missing_trace_fails_with_one_line() {
    let missing = scratch("missing.lstrace");
    let o = report_fails(&missing);
    assert!(o.stderr.contains(missing.file_name().unwrap().to_str().unwrap()), "names the file: {}", o.stderr);
}

#[test]
fn report_of_an_empty_trace_fails_with_one_line() {
    let f = scratch("empty.lstrace");
    std::fs::write(&f, b"").unwrap();
    report_fails(&f);
}

#[test]
fn report_of_a_truncated_trace_fails_with_one_line() {
    let bytes = saved_trace();
    let f = scratch("half.lstrace");
    std::fs::write(&f, &bytes[..bytes.len() / 2]).unwrap();
    report_fails(&f);
}

#[test]
fn report_of_a_bit_flipped_trace_fails_with_one_line() {
    let mut bytes = saved_trace();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    let f = scratch("flipped.lstrace");
    std::fs::write(&f, &bytes).unwrap();
    report_fails(&f);
}

#[test]
fn report_of_a_file_that_is_not_a_trace_fails_with_one_line() {
    let f = scratch("not-a-trace.lstrace");
    std::fs::write(&f, b"{\"schema\": \"leakscope-report/1\"}\n").unwrap();
    report_fails(&f);
}
