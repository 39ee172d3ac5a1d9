//! The stack-walk cache must not lose or invent frames: with
//! LEAKSCOPE_CHECK_WALKS=1 the preload redoes every walk from scratch with the
//! CFI unwinder and counts captures that differ; `--stats` prints the count.
//! Run over code with and without frame pointers, C++ exceptions thrown
//! through traced frames, and threads.

mod common;

use common::*;
use std::ffi::OsStr;

/// Share of unwound frames stepped with a learned rule (`rules.rs`), in percent.
fn fast_step_percent(stderr: &str) -> f64 {
    let line = stderr
        .lines()
        .find(|l| l.contains("fast steps"))
        .unwrap_or_else(|| panic!("no fast-steps line in --stats output:\n{stderr}"));
    line.split_whitespace().find_map(|w| w.strip_suffix('%')?.parse().ok()).unwrap_or_else(|| panic!("{line}"))
}

/// (captures compared, captures that differed) from the `--stats` output.
fn crosscheck(stderr: &str) -> (u64, u64) {
    let line = stderr
        .lines()
        .find(|l| l.contains("walk cross-check"))
        .unwrap_or_else(|| panic!("no cross-check line in --stats output:\n{stderr}"));
    let nums: Vec<u64> = line.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    assert_eq!(nums.len(), 2, "{line}");
    (nums[0], nums[1])
}

#[test]
fn cached_walks_equal_full_walks() {
    // One test in its own binary: the variable reaches every run it starts.
    std::env::set_var("LEAKSCOPE_CHECK_WALKS", "1");
    let cases = [
        (cc("callchain.c", &["-g", "-O0"]), vec![]),
        (cc("callchain.c", &["-g", "-O2", "-fomit-frame-pointer"]), vec![]),
        (cc("threads.c", &["-g", "-O2", "-pthread"]), vec![]),
        (cc("thread_generations.c", &["-g", "-O2", "-fno-optimize-sibling-calls", "-pthread"]), vec![]),
        (cc("alloc_family.c", &["-g", "-O2"]), vec![]),
        (cxx("cxx_exceptions.cpp", &["-g", "-O2", "-fomit-frame-pointer"]), vec![]),
        (cxx("clean_cxx.cpp", &["-g", "-O2"]), vec![]),
    ];
    let mut fast = Vec::new();
    for (exe, args) in &cases {
        let mut v: Vec<&OsStr> = vec![OsStr::new("run"), OsStr::new("--stats"), OsStr::new("--output"), OsStr::new("/dev/null")];
        v.push(OsStr::new("--"));
        v.push(exe.as_os_str());
        v.extend(args.iter().map(|a: &&str| OsStr::new(*a)));
        let o = leakscope(&v);
        let (compared, differed) = crosscheck(&o.stderr);
        assert!(compared > 0, "{}: no capture was cross-checked:\n{}", exe.display(), o.stderr);
        assert_eq!(differed, 0, "{}: {differed} of {compared} cached walks differ from full walks", exe.display());
        fast.push(fast_step_percent(&o.stderr));
    }
    // The learned rules must actually carry the walks being checked.
    assert!(fast.iter().all(|&p| p > 50.0), "share of frames stepped with learned rules per case: {fast:?}");
}

/// A real program with deep, varied stacks through a shared library built
/// by Debian (-O2, no frame pointers): python3 running a small script.
#[test]
fn cached_walks_equal_full_walks_in_python() {
    std::env::set_var("LEAKSCOPE_CHECK_WALKS", "1");
    std::env::set_var("PYTHONMALLOC", "malloc");
    let script = "import json\nd = {str(i): [i] * (i % 7) for i in range(3000)}\nfor _ in range(5):\n    s = json.dumps(d)\n    d = json.loads(s)\nprint(len(s))\n";
    let o = leakscope(&[
        OsStr::new("run"),
        OsStr::new("--stats"),
        OsStr::new("--output"),
        OsStr::new("/dev/null"),
        OsStr::new("--"),
        OsStr::new("/usr/bin/python3"),
        OsStr::new("-c"),
        OsStr::new(script),
    ]);
    let (compared, differed) = crosscheck(&o.stderr);
    assert!(compared > 10_000, "too few captures cross-checked:\n{}", o.stderr);
    assert_eq!(differed, 0, "python3: {differed} of {compared} cached walks differ from full walks");
    assert!(fast_step_percent(&o.stderr) > 50.0, "{}", o.stderr);
}
