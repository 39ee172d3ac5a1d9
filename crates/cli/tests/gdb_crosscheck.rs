//! The stack leakscope records for a leak equals what gdb's `bt` shows at a
//! breakpoint on the leaking malloc call, for code built with
//! -O2 -fomit-frame-pointer (where only CFI-based unwinding is right).

mod common;

use common::*;
use std::process::Command;

/// (function, line) pairs of gdb's backtrace, innermost first, up to main.
fn gdb_backtrace(exe: &std::path::Path, file: &str, line: u32) -> Vec<(String, u32)> {
    let o = Command::new("gdb")
        .args(["-nx", "-batch", "-iex", "set debuginfod enabled off", "-ex", "set startup-with-shell off"])
        .args(["-ex", &format!("break {file}:{line}"), "-ex", "run", "-ex", "bt", "-ex", "kill"])
        .arg("--args")
        .arg(exe)
        .output()
        .expect("run gdb");
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let mut bt = Vec::new();
    for l in text.lines().filter(|l| l.starts_with('#')) {
        // "#1  0x000055555555513d in a (n=n@entry=201) at /x/callchain.c:19"
        // "#0  b (n=202) at /x/callchain.c:12"
        let rest = l.split_once(char::is_whitespace).map(|x| x.1.trim_start()).unwrap_or("");
        let rest = match rest.split_once(" in ") {
            Some((addr, r)) if addr.starts_with("0x") => r,
            _ => rest,
        };
        let function = rest.split([' ', '(']).next().unwrap_or("").to_owned();
        let Some((_, loc)) = rest.rsplit_once(" at ") else { continue };
        let Some((_, ln)) = loc.rsplit_once(':') else { continue };
        let Ok(ln) = ln.trim().parse::<u32>() else { continue };
        let is_main = function == "main";
        bt.push((function, ln));
        if is_main {
            break;
        }
    }
    assert!(
        bt.last().is_some_and(|(f, _)| f == "main"),
        "gdb's backtrace should reach main:\n{text}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    bt
}

#[test]
fn leak_stack_at_o2_without_frame_pointers_matches_gdb_backtrace() {
    if !have_tool("gdb") {
        eprintln!("SKIPPED: gdb is not installed; cannot cross-check stacks against it");
        return;
    }
    let exe = cc("callchain.c", &["-g", "-O2", "-fomit-frame-pointer"]);
    let file = fixture_file("callchain.c");
    let line = line_of("callchain.c", "LEAK:b");
    let gdb = gdb_backtrace(&exe, &file, line);
    assert!(gdb.len() >= 3, "main -> a -> b at least: {gdb:?}");

    let o = run_ok(&exe, &[]);
    let leak = leak_at_line(o.process(), "callchain.c", "LEAK:b");
    let st = frames(&leak["stack"]);
    let ours: Vec<(String, u32)> = st
        .iter()
        .take_while(|f| f.file.as_deref() == Some(file.as_str()))
        .map(|f| (base_name(f.function.as_deref().unwrap_or("??")).to_owned(), f.line.unwrap_or(0)))
        .collect();
    let lines = |v: &[(String, u32)]| v.iter().map(|x| x.1).collect::<Vec<_>>();
    assert_eq!(lines(&ours), lines(&gdb), "call-site lines, leakscope (left) vs gdb's bt (right):{}", show_stack(&st));
    assert_eq!(ours, gdb, "functions and lines, leakscope (left) vs gdb's bt (right):{}", show_stack(&st));
}
