//! Heap errors (tests/fixtures/heap_errors.c): each case makes one bad
//! release, which must be reported with its kind, address, region, block and
//! stacks, and the program must go on (it prints "after <case>").
//! Mismatched C++ releases are in cxx.rs.

mod common;

use common::*;
use serde_json::Value;

const SRC: &str = "heap_errors.c";

/// Runs one case with full free stacks; returns the run and its single error.
fn one_error(case: &str) -> (Outcome, Value) {
    one_error_with(case, &["--free-stacks", "full"])
}

fn one_error_with(case: &str, opts: &[&str]) -> (Outcome, Value) {
    let exe = cc(SRC, &["-g", "-O0"]);
    let o = run_opts(opts, &exe, &[case]);
    assert_eq!(o.code, Some(0), "leakscope run should exit with the program's 0: {}", o.describe());
    check_schema(o.json());
    assert!(
        o.stdout.contains(&format!("after {case}")),
        "the program should continue after the bad call: {}",
        o.describe()
    );
    let p = o.process();
    assert!(leaks(p).is_empty(), "the case frees everything it allocates:{}", show_leaks(p));
    let errs = errors(p);
    assert_eq!(errs.len(), 1, "exactly one heap error:{}", show_leaks(p));
    assert_eq!(p["summary"]["errors"].as_u64(), Some(1));
    let e = errs[0].clone();
    (o, e)
}

/// frame #0 of `stack` is `function` at the marked line.
fn assert_top(stack: &Value, function: &str, tag: &str) {
    let st = frames(stack);
    let file = fixture_file(SRC);
    let line = line_of(SRC, tag);
    assert!(!st.is_empty(), "empty stack for {tag}");
    assert!(
        st[0].is(function, &file, line),
        "frame #0 should be {function} at {tag} (line {line}):{}",
        show_stack(&st)
    );
    assert!(functions(&st).iter().any(|f| f == "main"), "the stack reaches main:{}", show_stack(&st));
}

#[test]
fn double_free_has_alloc_and_first_free_stacks() {
    let (o, e) = one_error("double");
    let addr = printed_address(&o.stdout, "addr");
    assert_eq!(e["kind"], "double-free", "{e}");
    assert_eq!(e["release"], "free", "{e}");
    assert_eq!(parse_hex(&e["address"]), addr, "{e}");
    assert_eq!(parse_hex(&e["block"]["address"]), addr, "{e}");
    assert_eq!(e["block"]["bytes"].as_u64(), Some(24), "{e}");
    assert_eq!(e["block"]["allocator"], "malloc", "{e}");
    assert_eq!(e["first_release"], "free", "{e}");
    assert_top(&e["stack"], "double_free", "ERROR:double");
    assert_top(&e["alloc_stack"], "double_free", "ALLOC:double");
    assert_top(&e["free_stack"], "double_free", "FREE:double");
}

#[test]
fn double_free_after_the_freeing_thread_ended_still_has_the_first_free_stack() {
    let (o, e) = one_error("thread-double");
    assert_eq!(e["kind"], "double-free", "{e}");
    assert_eq!(parse_hex(&e["address"]), printed_address(&o.stdout, "addr"), "{e}");
    assert_eq!(e["block"]["bytes"].as_u64(), Some(40), "{e}");
    assert_top(&e["stack"], "double_free_across_threads", "ERROR:thread-double");
    assert_top(&e["alloc_stack"], "double_free_across_threads", "ALLOC:thread-double");
    let first = frames(&e["free_stack"]);
    assert!(
        !first.is_empty() && first[0].is("free_in_thread", &fixture_file(SRC), line_of(SRC, "FREE:thread-double")),
        "the first free was in the thread:{}",
        show_stack(&first)
    );
}

#[test]
fn free_after_realloc_moved_the_block_is_a_double_free_first_released_by_realloc() {
    let (o, e) = one_error("moved");
    let addr = printed_address(&o.stdout, "addr");
    assert_eq!(e["kind"], "double-free", "{e}");
    assert_eq!(e["release"], "free", "{e}");
    assert_eq!(e["first_release"], "realloc", "{e}");
    assert_eq!(parse_hex(&e["address"]), addr, "{e}");
    assert_eq!(e["block"]["bytes"].as_u64(), Some(16), "{e}");
    assert_eq!(e["block"]["allocator"], "malloc", "{e}");
    assert_top(&e["stack"], "free_after_realloc_moved", "ERROR:moved");
    assert_top(&e["alloc_stack"], "free_after_realloc_moved", "ALLOC:moved");
    assert_top(&e["free_stack"], "free_after_realloc_moved", "FREE:moved");
}

#[test]
fn realloc_of_a_freed_block_is_a_double_free_by_realloc() {
    let (o, e) = one_error("realloc-freed");
    assert_eq!(e["kind"], "double-free", "{e}");
    assert_eq!(e["release"], "realloc", "{e}");
    assert_eq!(e["first_release"], "free", "{e}");
    assert_eq!(parse_hex(&e["address"]), printed_address(&o.stdout, "addr"), "{e}");
    assert_eq!(e["block"]["bytes"].as_u64(), Some(32), "{e}");
    assert_top(&e["stack"], "realloc_after_free", "ERROR:realloc-freed");
    assert_top(&e["alloc_stack"], "realloc_after_free", "ALLOC:realloc-freed");
    assert_top(&e["free_stack"], "realloc_after_free", "FREE:realloc-freed");
    assert!(o.stdout.contains("after realloc-freed null"), "the bad realloc fails with NULL: {}", o.describe());
}

/// An invalid free of an address that belongs to no block.
fn assert_invalid_without_block(e: &Value) {
    assert_eq!(e["kind"], "invalid-free", "{e}");
    assert_eq!(e["release"], "free", "{e}");
    assert!(e["block"].is_null(), "no block: {e}");
    assert!(e["alloc_stack"].is_null(), "no alloc stack: {e}");
    assert!(e["free_stack"].is_null(), "no free stack: {e}");
    assert!(e["first_release"].is_null(), "no first release: {e}");
}

#[test]
fn free_of_a_stack_address_is_an_invalid_free_in_the_stack_region() {
    let (o, e) = one_error("stack");
    assert_invalid_without_block(&e);
    assert_eq!(e["region"], "stack", "{e}");
    assert_eq!(parse_hex(&e["address"]), printed_address(&o.stdout, "addr"), "{e}");
    assert_top(&e["stack"], "free_stack_address", "ERROR:stack");
}

#[test]
fn free_of_a_global_is_an_invalid_free_in_the_global_region() {
    let (o, e) = one_error("global");
    assert_invalid_without_block(&e);
    assert_eq!(e["region"], "global", "{e}");
    assert_eq!(parse_hex(&e["address"]), printed_address(&o.stdout, "addr"), "{e}");
    assert_top(&e["stack"], "free_global_address", "ERROR:global");
}

#[test]
fn free_of_an_interior_pointer_names_the_block_it_points_into() {
    let (o, e) = one_error("interior");
    let block = printed_address(&o.stdout, "block");
    let addr = printed_address(&o.stdout, "addr");
    assert_eq!(addr, block + 16);
    assert_eq!(e["kind"], "invalid-free", "{e}");
    assert_eq!(e["release"], "free", "{e}");
    assert_eq!(e["region"], "heap-interior", "{e}");
    assert_eq!(parse_hex(&e["address"]), addr, "{e}");
    assert_eq!(parse_hex(&e["block"]["address"]), block, "{e}");
    assert_eq!(e["block"]["bytes"].as_u64(), Some(64), "{e}");
    assert_eq!(e["block"]["allocator"], "malloc", "{e}");
    assert_top(&e["stack"], "free_interior_pointer", "ERROR:interior");
    assert_top(&e["alloc_stack"], "free_interior_pointer", "ALLOC:interior");
    assert!(e["free_stack"].is_null() && e["first_release"].is_null(), "the block was not freed before: {e}");
}

#[test]
fn by_default_the_first_free_is_its_call_site_alone() {
    let (_, e) = one_error_with("double", &[]);
    let st = frames(&e["free_stack"]);
    let file = fixture_file(SRC);
    assert_eq!(st.len(), 1, "one frame, the free call:{}", show_stack(&st));
    assert!(st[0].is("double_free", &file, line_of(SRC, "FREE:double")), "{}", show_stack(&st));
    // The bad call and the allocation keep their full stacks.
    assert!(functions(&frames(&e["stack"])).iter().any(|f| f == "main"));
    assert!(functions(&frames(&e["alloc_stack"])).iter().any(|f| f == "main"));
}
