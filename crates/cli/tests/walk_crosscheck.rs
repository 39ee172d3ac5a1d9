//! The stack-walk cache must not lose or invent frames: with
//! LEAKSCOPE_CHECK_WALKS=1 the preload redoes every walk from scratch with the
//! CFI unwinder and counts captures that differ; `--stats` prints the count.
//! Run over code with and without frame pointers, C++ exceptions thrown
//! through traced frames, and threads.

mod common;

use common::*;
use std::ffi::OsStr;

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
        (cc("alloc_family.c", &["-g", "-O2"]), vec![]),
        (cxx("cxx_exceptions.cpp", &["-g", "-O2", "-fomit-frame-pointer"]), vec![]),
        (cxx("clean_cxx.cpp", &["-g", "-O2"]), vec![]),
    ];
    for (exe, args) in &cases {
        let mut v: Vec<&OsStr> = vec![OsStr::new("run"), OsStr::new("--stats"), OsStr::new("--output"), OsStr::new("/dev/null")];
        v.push(OsStr::new("--"));
        v.push(exe.as_os_str());
        v.extend(args.iter().map(|a: &&str| OsStr::new(*a)));
        let o = leakscope(&v);
        let (compared, differed) = crosscheck(&o.stderr);
        assert!(compared > 0, "{}: no capture was cross-checked:\n{}", exe.display(), o.stderr);
        assert_eq!(differed, 0, "{}: {differed} of {compared} cached walks differ from full walks", exe.display());
    }
}
