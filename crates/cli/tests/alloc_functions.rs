//! Every C allocation function, and libc functions that allocate for the
//! program: each leak is reported with its exact bytes, block count,
//! allocator and the program's line (tests/fixtures/alloc_family.c,
//! tests/fixtures/libc_alloc.c).

mod common;

use common::*;
use serde_json::Value;
use std::sync::OnceLock;

const FAMILY: &str = "alloc_family.c";
const LIBC: &str = "libc_alloc.c";

fn family() -> &'static Outcome {
    static RUN: OnceLock<Outcome> = OnceLock::new();
    RUN.get_or_init(|| run_ok(&cc(FAMILY, &["-g", "-O0"]), &[]))
}

fn family_process() -> &'static Value {
    family().process()
}

fn libc_run() -> &'static Outcome {
    static RUN: OnceLock<Outcome> = OnceLock::new();
    RUN.get_or_init(|| run_ok(&cc(LIBC, &["-g", "-O0"]), &[]))
}

fn family_leak(tag: &str) -> &'static Value {
    leak_at(family_process(), "main", FAMILY, tag)
}

#[test]
fn malloc_leak_has_its_size_allocator_and_line() {
    assert_leak(family_leak("LEAK:malloc"), "reachable", 40, 1, "malloc");
}

#[test]
fn calloc_leak_is_count_times_size() {
    assert_leak(family_leak("LEAK:calloc"), "reachable", 48, 1, "calloc");
}

#[test]
fn blocks_from_one_line_are_one_leak_with_a_block_count() {
    assert_leak(family_leak("LEAK:malloc-loop"), "reachable", 40, 5, "malloc");
}

#[test]
fn realloc_growing_a_block_leaks_the_grown_block_at_the_realloc_line() {
    assert_leak(family_leak("LEAK:realloc-grow"), "reachable", 1000, 1, "realloc");
    assert_no_leak_at_line(family_process(), FAMILY, "FREED:grow-origin");
}

#[test]
fn realloc_of_null_leaks_as_realloc() {
    assert_leak(family_leak("LEAK:realloc-null"), "reachable", 77, 1, "realloc");
}

#[test]
fn realloc_to_zero_frees_the_block_without_an_error() {
    let p = family_process();
    assert_no_leak_at_line(p, FAMILY, "FREED:realloc-zero-origin");
    assert_no_leak_at_line(p, FAMILY, "FREED:realloc-zero");
    assert!(errors(p).is_empty(), "realloc(p, 0) is not an error:{}", show_leaks(p));
}

#[test]
fn reallocarray_leak_is_count_times_size() {
    assert_leak(family_leak("LEAK:reallocarray"), "reachable", 60, 1, "reallocarray");
}

#[test]
fn posix_memalign_leak() {
    assert_leak(family_leak("LEAK:posix_memalign"), "reachable", 100, 1, "posix_memalign");
}

#[test]
fn aligned_alloc_leak() {
    assert_leak(family_leak("LEAK:aligned_alloc"), "reachable", 128, 1, "aligned_alloc");
}

#[test]
fn memalign_leak() {
    assert_leak(family_leak("LEAK:memalign"), "reachable", 96, 1, "memalign");
}

#[test]
fn valloc_leak() {
    assert_leak(family_leak("LEAK:valloc"), "reachable", 200, 1, "valloc");
}

#[test]
fn pvalloc_leak_reports_the_requested_size() {
    assert_leak(family_leak("LEAK:pvalloc"), "reachable", 300, 1, "pvalloc");
}

#[test]
fn freed_blocks_are_not_leaks() {
    let p = family_process();
    for tag in ["FREED:malloc", "FREED:calloc", "FREED:aligned_alloc", "FREED:posix_memalign"] {
        assert_no_leak_at_line(p, FAMILY, tag);
    }
}

#[test]
fn alloc_family_reports_exactly_the_intended_leaks_and_totals() {
    let o = family();
    let p = o.process();
    assert!(o.stdout.contains("alloc_family done 15"), "the program ran to its end: {}", o.describe());
    assert_eq!(leaks(p).len(), 11, "one leak per marked line:{}", show_leaks(p));
    assert!(errors(p).is_empty(), "no heap errors:{}", show_leaks(p));
    let s = &p["summary"];
    // The fixture keeps every block in a global array: all still reachable, none leaked.
    assert_eq!(s["reachable"]["bytes"].as_u64(), Some(40 + 48 + 40 + 1000 + 77 + 60 + 100 + 128 + 96 + 200 + 300), "{s}");
    assert_eq!(s["reachable"]["blocks"].as_u64(), Some(15), "{s}");
    assert_eq!(s["reachable"]["records"].as_u64(), Some(11), "{s}");
    assert_eq!(s["leaked_bytes"].as_u64(), Some(0), "{s}");
    assert_eq!(s["leak_records"].as_u64(), Some(0), "{s}");
    assert_eq!(s["errors"].as_u64(), Some(0), "{s}");
    // Leaks are listed largest first.
    let bytes: Vec<u64> = leaks(p).iter().map(|l| l["bytes"].as_u64().unwrap()).collect();
    let mut sorted = bytes.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(bytes, sorted, "leaks should be ordered largest first");
}

#[test]
fn leak_frames_name_the_executable_module_and_main_is_not_inlined() {
    let o = family();
    let exe = cc(FAMILY, &["-g", "-O0"]).canonicalize().unwrap();
    let stack = frames(&family_leak("LEAK:malloc")["stack"]);
    assert_eq!(stack[0].module.as_deref(), exe.to_str(), "module of frame #0:{}", show_stack(&stack));
    assert!(!stack[0].inlined, "main at -O0 is a real frame:{}", show_stack(&stack));
    let p = o.process();
    assert_eq!(p["exe"].as_str(), exe.to_str(), "process exe");
    assert_eq!(p["complete"], true, "a normal exit gives complete data: {}", p["notes"]);
}

/// The libc frames come first, then the program's call at its line. When
/// `libc_functions` is not empty, frame #0 must be one of them (aliases:
/// libc's exported names for one function differ between builds).
fn libc_leak(tag: &str, libc_functions: &[&str]) -> &'static Value {
    let p = libc_run().process();
    let file = fixture_file(LIBC);
    let line = line_of(LIBC, tag);
    let leak = leak_with_frame(p, "main", &file, line);
    let stack = frames(&leak["stack"]);
    let main_at = frame_index(&stack, "main", &file, line).unwrap();
    assert!(main_at >= 1, "libc's frame(s) come before main's:{}", show_stack(&stack));
    for f in &stack[..main_at] {
        assert!(
            f.module.as_deref().is_some_and(|m| m.contains("libc.so")),
            "frames before main should be libc's:{}",
            show_stack(&stack)
        );
    }
    if !libc_functions.is_empty() {
        assert!(
            stack[0].function.as_deref().is_some_and(|f| libc_functions.contains(&f)),
            "frame #0 should be libc's {libc_functions:?}:{}",
            show_stack(&stack)
        );
    }
    leak
}

#[test]
fn strdup_leak_is_strdup_called_from_main_at_the_line() {
    let leak = libc_leak("LEAK:strdup", &["strdup", "__strdup"]);
    assert_leak(leak, "definite", "seventeen chars!".len() as u64 + 1, 1, "malloc");
}

fn printed_number(stdout: &str, label: &str) -> u64 {
    let line = stdout.lines().find_map(|l| l.strip_prefix(label)).unwrap_or_else(|| panic!("no {label} in {stdout}"));
    line.trim().parse().unwrap()
}

#[test]
fn asprintf_leak_is_reported_at_the_asprintf_line() {
    // glibc's frame #0 here is an internal function without an exported name.
    let leak = libc_leak("LEAK:asprintf", &[]);
    let n = printed_number(&libc_run().stdout, "asprintf-length");
    assert_eq!(leak["bytes"].as_u64(), Some(n + 1), "the string and its NUL");
    assert_eq!(leak["blocks"].as_u64(), Some(1));
    assert_eq!(leak["class"], "definite");
    // Whether glibc shrinks its buffer with realloc or copies it with malloc is
    // its own business; either is a truthful allocator.
    assert!(leak["allocator"] == "malloc" || leak["allocator"] == "realloc", "allocator {}", leak["allocator"]);
}

#[test]
fn getline_leak_is_the_buffer_getline_reported() {
    let leak = libc_leak("LEAK:getline", &["getline", "getdelim", "__getdelim", "_IO_getline", "__getline"]);
    let cap = printed_number(&libc_run().stdout, "getline-capacity");
    assert_eq!(leak["bytes"].as_u64(), Some(cap), "getline's buffer has the capacity it reported");
    assert_eq!(leak["blocks"].as_u64(), Some(1));
    assert!(leak["allocator"] == "malloc" || leak["allocator"] == "realloc", "allocator {}", leak["allocator"]);
}

#[test]
fn libc_internal_allocations_are_not_leaks() {
    // fmemopen/fclose and printf's stdout buffer: only the three marked leaks remain.
    let o = libc_run();
    let p = o.process();
    assert!(o.stdout.contains("libc_alloc done seventeen chars! asprintf-12345 24"), "{}", o.describe());
    assert_eq!(leaks(p).len(), 3, "strdup, asprintf, getline only:{}", show_leaks(p));
    assert!(errors(p).is_empty(), "{}", show_leaks(p));
}
