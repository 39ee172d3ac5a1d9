//! Leak-free programs must get an empty report: no leaks, no heap errors,
//! exit status 0. Anything the C, C++ or Rust runtime keeps for itself must
//! not show up as the program's leak.

mod common;

use common::*;

#[test]
fn c_program_using_stdio_reports_nothing() {
    let o = run_ok(&cc("clean_stdio.c", &["-g", "-O0"]), &[]);
    assert!(o.stdout.contains("clean_stdio 1000 lines, min 0, temporary"), "{}", o.describe());
    assert_clean(o.process());
}

#[test]
fn cxx_program_using_iostream_string_vector_map_reports_nothing() {
    let o = run_ok(&cxx("clean_cxx.cpp", &["-g", "-O2"]), &[]);
    assert!(o.stdout.contains("clean_cxx words=200"), "{}", o.describe());
    assert!(o.stdout.contains("caught"), "{}", o.describe());
    assert_clean(o.process());
}

#[test]
fn threaded_c_program_reports_nothing() {
    let o = run_ok(&cc("clean_threads.c", &["-g", "-O2", "-pthread"]), &[]);
    assert!(o.stdout.contains("clean_threads done"), "{}", o.describe());
    assert_clean(o.process());
}

#[test]
fn rust_program_with_collections_and_threads_reports_nothing() {
    let o = run_ok(&rust("clean_rust.rs", &["-C", "opt-level=2", "-g"]), &[]);
    assert!(o.stdout.contains("clean_rust 4 messages, 100 sizes, [0, 1, 2, 3]"), "{}", o.describe());
    assert_clean(o.process());
}
