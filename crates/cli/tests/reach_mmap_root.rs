//! Memory the program maps itself (GC heaps, arenas) is a root, as for
//! Valgrind: without it gcc's cc1 reported false definite leaks.

mod common;

use common::*;

#[test]
fn pointer_held_in_the_programs_own_mapping_keeps_a_block_reachable() {
    let exe = cc("reach_mmap_root.c", &["-g", "-O0"]);
    let o = run_ok(&exe, &[]);
    assert!(o.stdout.contains("reach_mmap_root done"), "{}", o.describe());
    let p = o.process();
    let file = fixture_file("reach_mmap_root.c");
    let held = leaks_with_frame(p, "main", &file, line_of("reach_mmap_root.c", "ROOT:mmap-held"));
    assert_eq!(held.len(), 1, "{}", show_leaks(p));
    assert_leak(held[0], "reachable", 72, 1, "malloc");
    let lost = leaks_with_frame(p, "main", &file, line_of("reach_mmap_root.c", "LOST:unmapped"));
    assert_eq!(lost.len(), 1, "{}", show_leaks(p));
    assert_leak(lost[0], "definite", 88, 1, "malloc");
}
