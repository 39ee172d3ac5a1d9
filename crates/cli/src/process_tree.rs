//! The process tree of a report: who started whom, for the text report's
//! order (each process after its parent) and its tree overview.
//!
//! A process image's parent is the previous image of the same pid when it was
//! started by exec, else an image of its parent pid: the one it is a fork copy
//! of (same argv and executable), or the parent's last image (posix_spawn,
//! system, popen start a new program straight away). Images whose parent is
//! not in the report are roots.

use crate::render_text::plural;
use leakscope_analyse::report::{Exit, ProcessReport};
use std::fmt::Write;

pub struct Tree {
    /// Index of each process's parent in the report, if it is there.
    pub parent: Vec<Option<usize>>,
    /// Depth-first order: (index, depth).
    pub order: Vec<(usize, usize)>,
}

pub fn build(ps: &[ProcessReport]) -> Tree {
    let mut parent: Vec<Option<usize>> = ps.iter().map(|p| find_parent(ps, p)).collect();
    // Recycled pids could make a loop: cut it.
    for i in 0..ps.len() {
        let mut seen = vec![false; ps.len()];
        let mut at = i;
        seen[i] = true;
        while let Some(up) = parent[at] {
            if seen[up] {
                parent[at] = None;
                break;
            }
            seen[up] = true;
            at = up;
        }
    }
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); ps.len()];
    let mut roots = Vec::new();
    for (i, p) in parent.iter().enumerate() {
        match p {
            Some(up) => children[*up].push(i),
            None => roots.push(i),
        }
    }
    let key = |&i: &usize| (ps[i].pid, ps[i].exec_index);
    roots.sort_by_key(key);
    for c in &mut children {
        c.sort_by_key(key);
    }
    let mut order = Vec::with_capacity(ps.len());
    let mut stack: Vec<(usize, usize)> = roots.iter().rev().map(|&r| (r, 0)).collect();
    while let Some((i, depth)) = stack.pop() {
        order.push((i, depth));
        stack.extend(children[i].iter().rev().map(|&c| (c, depth + 1)));
    }
    Tree { parent, order }
}

fn find_parent(ps: &[ProcessReport], p: &ProcessReport) -> Option<usize> {
    if p.exec_index > 0 {
        if let Some(i) = ps.iter().position(|q| q.pid == p.pid && q.exec_index == p.exec_index - 1) {
            return Some(i);
        }
    }
    if p.parent_pid == 0 || p.parent_pid == p.pid {
        return None;
    }
    let images: Vec<usize> = (0..ps.len()).filter(|&i| ps[i].pid == p.parent_pid).collect();
    let copy_of = images.iter().rev().find(|&&i| ps[i].argv == p.argv && ps[i].exe == p.exe);
    copy_of.or(images.iter().max_by_key(|&&i| ps[i].exec_index)).copied()
}

/// How a process ended, in words.
pub fn describe_exit(e: Exit) -> String {
    match e {
        Exit::Code(c) => format!("exited with status {c}"),
        Exit::Signal(s) => match crate::launch::signal_name(s) {
            Some(n) => format!("killed by signal {s} ({n})"),
            None => format!("killed by signal {s}"),
        },
        Exit::Exec => "replaced by exec".into(),
        Exit::Unknown => "ending not seen".into(),
    }
}

/// The tree overview: one line per process image, indented under its parent.
pub fn render(out: &mut String, tag: &str, ps: &[ProcessReport], tree: &Tree) {
    let _ = writeln!(out, "{tag} process tree:");
    // For each depth, whether the ancestor at that depth has siblings still to come.
    let mut open: Vec<bool> = Vec::new();
    for (n, &(i, depth)) in tree.order.iter().enumerate() {
        let p = &ps[i];
        let last_sibling = !tree.order[n + 1..].iter().take_while(|&&(_, d)| d >= depth).any(|&(_, d)| d == depth);
        open.truncate(depth);
        let mut prefix = String::new();
        for (d, &more) in open.iter().enumerate() {
            if d > 0 {
                prefix.push_str(if more { "│  " } else { "   " });
            }
        }
        if depth > 0 {
            prefix.push_str(if last_sibling { "└─ " } else { "├─ " });
        }
        open.push(!last_sibling);
        let what = if p.exec_index > 0 && tree.parent[i].is_some_and(|up| ps[up].pid == p.pid) {
            format!("exec #{}: {}", p.exec_index, command(p))
        } else if p.exec_index > 0 {
            format!("{} (exec #{}) {}", p.pid, p.exec_index, command(p))
        } else {
            format!("{} {}", p.pid, command(p))
        };
        let s = &p.summary;
        let found = if s.leak_records == 0 && s.errors == 0 {
            "no leaks".to_string()
        } else {
            let mut f = format!(
                "{} leaked in {}",
                plural(s.leaked_bytes, "byte", "bytes"),
                plural(s.leaked_blocks, "block", "blocks")
            );
            if s.errors > 0 {
                let _ = write!(f, ", {}", plural(s.errors, "heap error", "heap errors"));
            }
            f
        };
        let incomplete = if p.complete { "" } else { " (incomplete, see its notes)" };
        let shared = crate::render_maps::tree_note(s);
        let _ = writeln!(out, "{tag}   {prefix}{what}: {}; {found}{shared}{incomplete}", describe_exit(p.exit));
    }
}

fn command(p: &ProcessReport) -> String {
    let mut s = if p.argv.is_empty() { p.exe.clone() } else { p.argv.join(" ") };
    if s.is_empty() {
        s = "(unknown program)".into();
    }
    if s.chars().count() > 60 {
        s = s.chars().take(57).collect::<String>() + "...";
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pid: u32, parent_pid: u32, exec_index: u32, argv: &[&str], exit: Exit) -> ProcessReport {
        let json = serde_json::json!({
            "pid": pid, "parent_pid": parent_pid, "exec_index": exec_index,
            "argv": argv, "exe": format!("/bin/{}", argv[0]),
            "exit": match exit { Exit::Code(c) => serde_json::json!({"code": c}),
                                 Exit::Signal(s) => serde_json::json!({"signal": s}),
                                 Exit::Exec => serde_json::json!({"exec": true}),
                                 Exit::Unknown => serde_json::json!({"unknown": true}) },
            "complete": true, "notes": [], "leaks": [], "errors": [], "mappings": [], "shared_memory": [],
            "summary": {"leaked_bytes": 0, "leaked_blocks": 0, "leak_records": 0, "errors": 0,
                        "allocations": 1, "frees": 1}
        });
        serde_json::from_value(json).expect("a process report")
    }

    #[test]
    fn children_follow_their_parent_and_exec_images_their_predecessor() {
        let ps = vec![
            p(100, 50, 0, &["prog", "fork"], Exit::Code(0)),
            p(101, 100, 0, &["prog", "fork"], Exit::Exec),
            p(101, 100, 1, &["echo", "hi"], Exit::Code(0)),
            p(102, 100, 0, &["sh", "-c", "x"], Exit::Signal(9)),
            p(103, 101, 0, &["echo", "hi"], Exit::Code(1)),
            p(200, 7, 0, &["other"], Exit::Unknown),
        ];
        let t = build(&ps);
        assert_eq!(t.parent, vec![None, Some(0), Some(1), Some(0), Some(2), None]);
        let order: Vec<(usize, usize)> = t.order.clone();
        assert_eq!(order, vec![(0, 0), (1, 1), (2, 2), (4, 3), (3, 1), (5, 0)]);
        let mut out = String::new();
        render(&mut out, "==100==", &ps, &t);
        let want = "==100== process tree:\n\
==100==   100 prog fork: exited with status 0; no leaks\n\
==100==   ├─ 101 prog fork: replaced by exec; no leaks\n\
==100==   │  └─ exec #1: echo hi: exited with status 0; no leaks\n\
==100==   │     └─ 103 echo hi: exited with status 1; no leaks\n\
==100==   └─ 102 sh -c x: killed by signal 9 (SIGKILL); no leaks\n\
==100==   200 other: ending not seen; no leaks\n";
        assert_eq!(out, want);
    }

    #[test]
    fn a_fork_copy_goes_under_the_image_it_copies() {
        let ps = vec![
            p(10, 1, 0, &["sh", "-c", "a; b"], Exit::Exec),
            p(10, 1, 1, &["b"], Exit::Code(0)),
            p(11, 10, 0, &["sh", "-c", "a; b"], Exit::Exec),
            p(12, 10, 0, &["spawned"], Exit::Code(0)),
        ];
        let t = build(&ps);
        assert_eq!(t.parent, vec![None, Some(0), Some(0), Some(1)]);
    }

    #[test]
    fn recycled_pids_cannot_make_a_loop() {
        let ps = vec![p(10, 11, 0, &["a"], Exit::Code(0)), p(11, 10, 0, &["b"], Exit::Code(0))];
        let t = build(&ps);
        assert_eq!(t.order.len(), 2);
        assert_eq!(t.parent.iter().filter(|p| p.is_none()).count(), 1);
    }
}
