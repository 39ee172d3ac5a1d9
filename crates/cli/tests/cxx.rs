//! C++: every operator new form leaks with the right allocator, matching
//! deletes (including the sized and aligned ones g++ -O2 emits) report
//! nothing, and exceptions still work while leakscope runs.

mod common;

use common::*;
use serde_json::Value;
use std::process::Command;
use std::sync::OnceLock;

const ALLOC: &str = "cxx_alloc.cpp";
const DELETE: &str = "cxx_delete.cpp";
const EXC: &str = "cxx_exceptions.cpp";

fn alloc_run() -> &'static Outcome {
    static RUN: OnceLock<Outcome> = OnceLock::new();
    RUN.get_or_init(|| run_ok(&cxx(ALLOC, &["-g", "-O0"]), &[]))
}

fn new_leak(tag: &str) -> &'static Value {
    leak_at(alloc_run().process(), "main", ALLOC, tag)
}

#[test]
fn new_leak_is_reported_as_new() {
    assert_leak(new_leak("LEAK:new"), "reachable", 24, 1, "new");
}

#[test]
fn array_new_leak_is_reported_as_new_array() {
    assert_leak(new_leak("LEAK:new[]"), "reachable", 40, 1, "new[]");
}

#[test]
fn nothrow_new_leak_is_reported_as_new() {
    assert_leak(new_leak("LEAK:nothrow-new"), "reachable", 12, 1, "new");
}

#[test]
fn nothrow_array_new_leak_is_reported_as_new_array() {
    assert_leak(new_leak("LEAK:nothrow-new[]"), "reachable", 18, 1, "new[]");
}

#[test]
fn aligned_new_leak_is_reported_as_new() {
    assert_leak(new_leak("LEAK:aligned-new"), "reachable", 128, 1, "new");
    // The program checks the alignment it got (0 = multiple of 64).
    assert!(alloc_run().stdout.contains("cxx_alloc done 6 0 0"), "{}", alloc_run().describe());
}

#[test]
fn aligned_array_new_leak_is_reported_as_new_array() {
    assert_leak(new_leak("LEAK:aligned-new[]"), "reachable", 256, 1, "new[]");
}

#[test]
fn cxx_alloc_reports_only_the_six_marked_leaks() {
    let p = alloc_run().process();
    assert_eq!(leaks(p).len(), 6, "libstdc++'s own start-up allocations are not leaks:{}", show_leaks(p));
    assert!(errors(p).is_empty(), "{}", show_leaks(p));
}

/// Dynamic symbols the executable imports.
fn imports(exe: &std::path::Path) -> String {
    let o = Command::new("nm").args(["-D", "--undefined-only"]).arg(exe).output().expect("nm");
    assert!(o.status.success());
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn matching_deletes_at_o2_including_sized_and_aligned_report_nothing() {
    let exe = cxx(DELETE, &["-g", "-O2"]);
    // Make sure the fixture exercises the forms it is meant to.
    let syms = imports(&exe);
    for s in ["_ZdlPvm", "_ZdaPvm", "_ZdlPvmSt11align_val_t", "_ZdaPvmSt11align_val_t", "_ZdaPv"] {
        assert!(syms.lines().any(|l| l.contains(&format!(" {s}@"))), "g++ -O2 should import {s}:\n{syms}");
    }
    let o = run_ok(&exe, &[]);
    assert!(o.stdout.contains("cxx_delete done"), "{}", o.describe());
    assert_clean(o.process());
}

fn mismatch(case: &str, release: &str, allocator: &str, bytes: u64) {
    let exe = cxx("cxx_mismatch.cpp", &["-g", "-O0"]);
    let o = run_ok(&exe, &[case]);
    assert!(
        o.stdout.contains(&format!("after {case}")),
        "the program continues after the bad release: {}",
        o.describe()
    );
    let p = o.process();
    assert!(leaks(p).is_empty(), "a mismatched release still releases the block:{}", show_leaks(p));
    let errs = errors(p);
    assert_eq!(errs.len(), 1, "one error:{}", show_leaks(p));
    let e = &errs[0];
    let addr = printed_address(&o.stdout, "addr");
    assert_eq!(e["kind"], "mismatched-free", "{e}");
    assert_eq!(e["release"], release, "{e}");
    assert_eq!(parse_hex(&e["address"]), addr, "{e}");
    assert_eq!(parse_hex(&e["block"]["address"]), addr, "{e}");
    assert_eq!(e["block"]["bytes"].as_u64(), Some(bytes), "{e}");
    assert_eq!(e["block"]["allocator"], allocator, "{e}");
    let file = fixture_file("cxx_mismatch.cpp");
    let stack = frames(&e["stack"]);
    let line = line_of("cxx_mismatch.cpp", &format!("ERROR:{case}"));
    assert!(stack[0].is("main", &file, line), "the bad release at main:{line}:{}", show_stack(&stack));
    let alloc = frames(&e["alloc_stack"]);
    let line = line_of("cxx_mismatch.cpp", &format!("ALLOC:{case}"));
    assert!(alloc[0].is("main", &file, line), "allocated at main:{line}:{}", show_stack(&alloc));
    assert!(e["free_stack"].is_null() && e["first_release"].is_null(), "not freed before: {e}");
}

#[test]
fn new_released_with_free_is_a_mismatch() {
    mismatch("new-free", "free", "new", 8);
}

#[test]
fn array_new_released_with_delete_is_a_mismatch() {
    mismatch("newarr-delete", "delete", "new[]", 40);
}

#[test]
fn malloc_released_with_delete_is_a_mismatch() {
    mismatch("malloc-delete", "delete", "malloc", 20);
}

#[test]
fn new_released_with_array_delete_is_a_mismatch() {
    mismatch("new-deletearr", "delete[]", "new", 8);
}

fn exceptions_run() -> &'static Outcome {
    static RUN: OnceLock<Outcome> = OnceLock::new();
    RUN.get_or_init(|| run_ok(&cxx(EXC, &["-g", "-O0"]), &[]))
}

#[test]
fn exceptions_thrown_through_frames_are_still_caught() {
    let o = exceptions_run();
    assert!(o.stdout.contains("caught 100"), "all 100 exceptions caught: {}", o.describe());
}

#[test]
fn bad_alloc_thrown_out_of_operator_new_is_caught() {
    let o = exceptions_run();
    assert!(o.stdout.contains("bad_alloc caught"), "std::bad_alloc reaches the catch: {}", o.describe());
}

#[test]
fn leak_made_before_each_throw_is_counted_with_its_callers() {
    let p = exceptions_run().process();
    let leak = leak_at(p, "middle", EXC, "LEAK:during-unwind");
    assert_leak(leak, "reachable", 100 * 16, 100, "new[]");
    let st = frames(&leak["stack"]);
    let f = functions(&st);
    assert_eq!(&f[..3], ["middle", "outer", "main"], "callers of the leak:{}", show_stack(&st));
}

#[test]
fn exception_objects_and_unwinding_leave_no_other_leaks_or_errors() {
    let p = exceptions_run().process();
    assert_eq!(leaks(p).len(), 1, "only the marked leak:{}", show_leaks(p));
    assert!(errors(p).is_empty(), "{}", show_leaks(p));
}
