//! Issue 4's stress test: 16 threads allocate and free while the main thread
//! runs on-demand reachability checks (leakscope_check()) in a loop. Nothing
//! may hang, and no check may call a block lost while it is reachable.

mod common;

use common::*;

#[test]
fn checks_while_sixteen_threads_allocate_find_nothing_lost_and_do_not_hang() {
    let exe = cc("reach_stress.c", &["-g", "-O2", "-pthread", "-ldl"]);
    let o = run(&exe, &[]);
    assert_eq!(o.code, Some(0), "{}", o.describe());
    let line = o.stdout.lines().find(|l| l.starts_with("stress ")).unwrap_or_else(|| panic!("{}", o.describe()));
    assert!(line.contains("checks=40"), "every check ran: {line}");
    assert!(line.contains("worst_lost=0"), "a check found reachable blocks lost: {line}\n{}", o.stderr);
    let p = o.process();
    assert!(errors(p).is_empty(), "no heap errors:{}", show_leaks(p));
    assert_eq!(p["summary"]["leaked_blocks"].as_u64(), Some(0), "{}", show_leaks(p));
}
