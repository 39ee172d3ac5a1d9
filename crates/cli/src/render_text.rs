//! The text report, in the shape LeakSanitizer users know. Styles are always
//! embedded; the writer strips them when colour is off (see `output`).

use anstyle::{AnsiColor, Style};
use leakscope_analyse::report::*;
use std::fmt::Write;

const BOLD: Style = Style::new().bold();
const RED: Style = Style::new().bold().fg_color(Some(anstyle::Color::Ansi(AnsiColor::Red)));
const YELLOW: Style = Style::new().fg_color(Some(anstyle::Color::Ansi(AnsiColor::Yellow)));

/// What the text report shows beyond the default.
#[derive(Clone, Copy, Debug, Default)]
pub struct TextOptions {
    /// List still-reachable records too (else one summary line).
    pub show_reachable: bool,
    /// List private mappings never unmapped too (shared ones always are).
    pub show_mappings: bool,
}

/// The whole text report.
#[cfg_attr(not(test), allow(dead_code))]
pub fn render(report: &Report) -> String {
    render_with(report, &TextOptions::default())
}

pub fn render_with(report: &Report, opts: &TextOptions) -> String {
    let mut out = String::new();
    let several = report.processes.len() > 1;
    // Each process after its parent (see `process_tree`).
    let tree = crate::process_tree::build(&report.processes);
    for &(i, _) in &tree.order {
        render_process(&mut out, &report.processes[i], several, opts);
    }
    if report.processes.len() > 1 {
        out.push('\n');
        let tag = format!("=={}==", report.processes[tree.order[0].0].pid);
        crate::process_tree::render(&mut out, &tag, &report.processes, &tree);
        let s = &report.summary;
        let _ = writeln!(
            out,
            "{BOLD}SUMMARY: leakscope: total over {} processes: {}{BOLD:#}",
            report.processes.len(),
            summary_counts(s)
        );
        crate::render_maps::summary(&mut out, "", s);
    }
    out
}

/// `several`: the report has more than one process, so every one gets a
/// header naming it (else only those with something to say).
fn render_process(out: &mut String, p: &ProcessReport, several: bool, opts: &TextOptions) {
    let tag = format!("=={}==", p.pid);
    let killed = matches!(p.exit, Exit::Signal(_));
    if several || p.has_findings() || !p.complete || killed {
        let exec = if p.exec_index > 0 { format!(" (exec #{})", p.exec_index) } else { String::new() };
        let _ = writeln!(out, "{BOLD}{tag} leakscope report for {}{exec}{BOLD:#}", command_line(p));
    }
    if let Exit::Signal(s) = p.exit {
        let name = crate::launch::signal_name(s).map(|n| format!(" ({n})")).unwrap_or_default();
        let _ = writeln!(out, "{tag} killed by signal {s}{name}; its exit handlers did not run");
    }
    for n in &p.notes {
        let _ = writeln!(out, "{tag} {YELLOW}note:{YELLOW:#} {n}");
    }
    for e in &p.errors {
        out.push('\n');
        render_error(out, &tag, e);
    }
    for l in p.leaks.iter().filter(|l| opts.show_reachable || l.class != LeakClass::Reachable) {
        out.push('\n');
        let class = match l.class {
            LeakClass::Unknown => String::new(),
            c => {
                let phrase = c.phrase();
                format!("{}{}: ", phrase[..1].to_uppercase(), &phrase[1..])
            }
        };
        let _ = writeln!(
            out,
            "{BOLD}{class}{} in {} allocated with {} from:{BOLD:#}",
            plural(l.bytes, "byte", "bytes"),
            plural(l.blocks, "block", "blocks"),
            l.allocator.name()
        );
        render_stack(out, &l.stack);
    }
    for l in &p.inherited {
        out.push('\n');
        let _ = writeln!(
            out,
            "{} in {} inherited from the parent at fork (its blocks, not this process's leaks), allocated with {} from:",
            plural(l.bytes, "byte", "bytes"),
            plural(l.blocks, "block", "blocks"),
            l.allocator.name()
        );
        render_stack(out, &l.stack);
    }
    crate::render_maps::render(out, &tag, p, opts.show_mappings);
    if p.has_findings() || !p.inherited.is_empty() || (opts.show_mappings && !p.mappings.is_empty()) {
        out.push('\n');
    }
    let _ = writeln!(out, "{tag} {BOLD}SUMMARY: leakscope: {}{BOLD:#}", summary_counts(&p.summary));
    render_class_totals(out, &tag, p, opts);
    crate::render_maps::summary(out, &tag, &p.summary);
    if p.summary.runtime_kept_blocks > 0 {
        let _ = writeln!(
            out,
            "{tag} (not counted: {} in {} kept by the language runtime for the life of the process)",
            plural(p.summary.runtime_kept_bytes, "byte", "bytes"),
            plural(p.summary.runtime_kept_blocks, "block", "blocks"),
        );
    }
}

/// Per-class totals after a reachability scan, Valgrind's LEAK SUMMARY in one line.
fn render_class_totals(out: &mut String, tag: &str, p: &ProcessReport, opts: &TextOptions) {
    if p.reachability.state == "none" {
        return;
    }
    let s = &p.summary;
    let part = |name: &str, t: &ClassTotals| {
        format!("{name} {} in {}", plural(t.bytes, "byte", "bytes"), plural(t.blocks, "block", "blocks"))
    };
    let _ = writeln!(
        out,
        "{tag}   {}; {}; {}; {}",
        part("definitely lost:", &s.definite),
        part("indirectly lost:", &s.indirect),
        part("possibly lost:", &s.possible),
        part("still reachable:", &s.reachable),
    );
    if s.reachable.records > 0 && !opts.show_reachable {
        let _ = writeln!(out, "{tag}   (still reachable records are not shown; --show-reachable lists them)");
    }
}

fn summary_counts(s: &Summary) -> String {
    format!(
        "{} leaked in {} ({}); {}.",
        plural(s.leaked_bytes, "byte", "bytes"),
        plural(s.leaked_blocks, "block", "blocks"),
        plural(s.leak_records, "record", "records"),
        plural(s.errors, "heap error", "heap errors")
    )
}

fn render_error(out: &mut String, tag: &str, e: &HeapErrorReport) {
    let what = e.title();
    let _ = writeln!(out, "{tag} {RED}ERROR:{RED:#} {BOLD}{what}{BOLD:#}");
    render_stack(out, &e.stack);
    if let (Some(stack), Some(b)) = (&e.alloc_stack, &e.block) {
        let _ = writeln!(out, "  allocated by {} at:", b.allocator.name());
        render_stack(out, stack);
    }
    if let Some(stack) = &e.free_stack {
        let first = e.first_release.map_or("free", Release::name);
        let _ = writeln!(out, "  first freed by {first} at:");
        render_stack(out, stack);
    }
}



/// Frames, numbered, one line each; inlined ones marked.
pub fn render_stack(out: &mut String, frames: &[Frame]) {
    if frames.is_empty() {
        out.push_str("    (no stack recorded)\n");
        return;
    }
    for (i, f) in frames.iter().enumerate() {
        let _ = write!(out, "    #{i} {:#x} in {}", f.address, f.function.as_deref().unwrap_or("??"));
        match (&f.file, f.line) {
            (Some(file), Some(line)) => {
                let _ = write!(out, " {file}:{line}");
            }
            (Some(file), None) => {
                let _ = write!(out, " {file}");
            }
            (None, _) => match (&f.module, f.module_offset) {
                (Some(m), Some(off)) => {
                    let _ = write!(out, " ({m}+{off:#x})");
                }
                (Some(m), None) => {
                    let _ = write!(out, " ({m})");
                }
                (None, _) => {}
            },
        }
        if f.inlined {
            out.push_str(" [inlined]");
        }
        out.push('\n');
    }
}

pub use leakscope_analyse::words::plural;

/// argv as a shell would show it (quoted where needed), or the executable.
fn command_line(p: &ProcessReport) -> String {
    if p.argv.is_empty() {
        return if p.exe.is_empty() { "(unknown program)".into() } else { quote(&p.exe) };
    }
    p.argv.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ")
}

fn quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%^".contains(c) || !c.is_ascii());
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(addr: u64, func: Option<&str>, file: Option<(&str, u32)>, inlined: bool) -> Frame {
        Frame {
            address: addr,
            module: Some("/usr/lib/libfoo.so".into()),
            module_offset: addr.checked_sub(0x7f00_0000_0000),
            function: func.map(Into::into),
            file: file.map(|(f, _)| f.into()),
            line: file.map(|(_, l)| l),
            inlined,
        }
    }

    fn process(leaks: Vec<Leak>, errors: Vec<HeapErrorReport>) -> ProcessReport {
        let mut summary = Summary {
            leaked_bytes: leaks.iter().map(|l| l.bytes).sum(),
            leaked_blocks: leaks.iter().map(|l| l.blocks).sum(),
            leak_records: leaks.len() as u64,
            errors: errors.len() as u64,
            ..Summary::default()
        };
        summary.allocations = 10;
        ProcessReport {
            pid: 123,
            parent_pid: 1,
            exec_index: 0,
            argv: vec!["./prog".into(), "two words".into()],
            exe: "/tmp/prog".into(),
            exit: Exit::Code(0),
            complete: true,
            notes: vec![],
            leaks,
            errors,
            mappings: vec![],
            shared_memory: vec![],
            summary,
            reachability: Reachability::none(),
            inherited: vec![],
        }
    }

    fn report(processes: Vec<ProcessReport>) -> Report {
        let summary = leakscope_analyse::total(&processes);
        Report { schema: SCHEMA.into(), tool: Tool::default(), processes, summary, suppressions: Vec::new() }
    }

    fn plain(r: &Report) -> String {
        anstream::adapter::strip_str(&render(r)).to_string()
    }

    fn leak(bytes: u64, blocks: u64, allocator: Allocator, stack: Vec<Frame>) -> Leak {
        Leak { class: LeakClass::Unknown, bytes, blocks, allocator, stack, fingerprint: String::new() }
    }

    #[test]
    fn leaks_use_singular_and_plural_forms() {
        let r = report(vec![process(
            vec![
                leak(80, 2, Allocator::NewArray, vec![frame(0x401136, Some("main"), Some(("/tmp/x.c", 12)), false)]),
                leak(1, 1, Allocator::Malloc, vec![]),
            ],
            vec![],
        )]);
        let text = plain(&r);
        assert!(text.starts_with("==123== leakscope report for ./prog 'two words'\n"), "{text}");
        assert!(text.contains("\n80 bytes in 2 blocks allocated with new[] from:\n    #0 0x401136 in main /tmp/x.c:12\n"), "{text}");
        assert!(text.contains("\n1 byte in 1 block allocated with malloc from:\n    (no stack recorded)\n"), "{text}");
        assert!(
            text.ends_with("==123== SUMMARY: leakscope: 81 bytes leaked in 3 blocks (2 records); 0 heap errors.\n"),
            "{text}"
        );
        let one = report(vec![process(vec![leak(40, 1, Allocator::Malloc, vec![])], vec![])]);
        assert!(plain(&one).contains("SUMMARY: leakscope: 40 bytes leaked in 1 block (1 record); 0 heap errors."));
    }

    #[test]
    fn inlined_frames_get_their_own_marked_lines_and_modules_show_offsets() {
        let a = 0x7f00_0000_1234;
        let stack = vec![
            frame(a, Some("helper"), Some(("/src/h.h", 3)), true),
            frame(a, Some("make"), Some(("/src/p.c", 10)), false),
            frame(a + 0x10, Some("foo_init"), None, false),
            frame(a + 0x20, None, None, false),
            Frame { module: None, module_offset: None, ..frame(0x1000, None, None, false) },
        ];
        let text = plain(&report(vec![process(vec![leak(40, 1, Allocator::Malloc, stack)], vec![])]));
        let want = "    #0 0x7f0000001234 in helper /src/h.h:3 [inlined]\n\
                    \x20   #1 0x7f0000001234 in make /src/p.c:10\n\
                    \x20   #2 0x7f0000001244 in foo_init (/usr/lib/libfoo.so+0x1244)\n\
                    \x20   #3 0x7f0000001254 in ?? (/usr/lib/libfoo.so+0x1254)\n\
                    \x20   #4 0x1000 in ??\n";
        assert!(text.contains(want), "{text}");
    }

    #[test]
    fn heap_errors_come_first_with_their_stacks() {
        let s = |f: &str| vec![frame(0x7f00_0000_2000, Some(f), Some(("/src/p.c", 1)), false)];
        let b = BlockInfo { address: 0x5000, bytes: 40, allocator: Allocator::Malloc };
        let double = HeapErrorReport {
            kind: HeapErrorKind::DoubleFree,
            release: Release::Free,
            address: 0x5000,
            region: AddrRegion::Unknown,
            block: Some(b),
            stack: s("bad"),
            alloc_stack: Some(s("maker")),
            free_stack: Some(s("first")),
            first_release: Some(Release::Realloc),
        };
        let interior = HeapErrorReport {
            kind: HeapErrorKind::InvalidFree,
            release: Release::Delete,
            address: 0x5008,
            region: AddrRegion::HeapInterior,
            block: Some(b),
            stack: s("bad2"),
            alloc_stack: Some(s("maker")),
            free_stack: None,
            first_release: None,
        };
        let on_stack = HeapErrorReport {
            kind: HeapErrorKind::InvalidFree,
            release: Release::Free,
            address: 0x7ffd_0000,
            region: AddrRegion::Stack,
            block: None,
            stack: s("bad3"),
            alloc_stack: None,
            free_stack: None,
            first_release: None,
        };
        let mismatched = HeapErrorReport {
            kind: HeapErrorKind::MismatchedFree,
            release: Release::Free,
            address: 0x6000,
            region: AddrRegion::Unknown,
            block: Some(BlockInfo { address: 0x6000, bytes: 8, allocator: Allocator::New }),
            stack: s("bad4"),
            alloc_stack: Some(s("maker")),
            free_stack: None,
            first_release: None,
        };
        let p = process(vec![leak(1, 1, Allocator::Malloc, vec![])], vec![double, interior, on_stack, mismatched]);
        let text = plain(&report(vec![p]));
        let err = text.find("ERROR: double free of 0x5000 (40-byte block from malloc)\n    #0 0x7f0000002000 in bad ").unwrap();
        assert!(err < text.find("1 byte in 1 block").unwrap(), "{text}");
        assert!(text.contains("  allocated by malloc at:\n    #0 0x7f0000002000 in maker"), "{text}");
        assert!(text.contains("  first freed by realloc at:\n    #0 0x7f0000002000 in first"), "{text}");
        assert!(
            text.contains("ERROR: invalid free of 0x5008 by delete (points inside a 40-byte block from malloc at 0x5000, at offset 8)"),
            "{text}"
        );
        assert!(text.contains("ERROR: invalid free of 0x7ffd0000 (points into a thread's stack)"), "{text}");
        assert!(text.contains("ERROR: mismatched free: free of a block allocated with new (0x6000, 8 bytes)"), "{text}");
        assert!(text.contains("(1 record); 4 heap errors."), "{text}");
    }

    #[test]
    fn a_lone_clean_process_gets_only_a_summary() {
        let text = plain(&report(vec![process(vec![], vec![])]));
        assert_eq!(text, "==123== SUMMARY: leakscope: 0 bytes leaked in 0 blocks (0 records); 0 heap errors.\n");
    }

    #[test]
    fn several_processes_are_each_named_and_get_a_total() {
        let mut clean = process(vec![], vec![]);
        clean.pid = 124;
        let mut dirty = process(vec![leak(40, 1, Allocator::Malloc, vec![])], vec![]);
        dirty.exec_index = 1;
        let text = plain(&report(vec![dirty, clean]));
        assert!(text.contains("==123== leakscope report for ./prog 'two words' (exec #1)\n"), "{text}");
        assert!(text.contains(
            "==124== leakscope report for ./prog 'two words'\n\
             ==124== SUMMARY: leakscope: 0 bytes leaked in 0 blocks (0 records); 0 heap errors.\n"
        ), "{text}");
        assert!(text.ends_with(
            "SUMMARY: leakscope: total over 2 processes: 40 bytes leaked in 1 block (1 record); 0 heap errors.\n"
        ));
    }

    #[test]
    fn incomplete_and_killed_processes_say_so() {
        let mut p = process(vec![], vec![]);
        p.exit = Exit::Signal(9);
        p.add_note("session file damaged: stack 9 lies outside the file");
        let text = plain(&report(vec![p]));
        assert!(text.contains("==123== leakscope report for"), "{text}");
        assert!(text.contains("==123== killed by signal 9 (SIGKILL)"), "{text}");
        assert!(text.contains("==123== note: session file damaged: stack 9"), "{text}");
    }

    #[test]
    fn colour_is_embedded_for_the_writer_to_keep_or_strip() {
        let p = process(vec![leak(40, 1, Allocator::Malloc, vec![])], vec![]);
        let styled = render(&report(vec![p]));
        assert!(styled.contains("\x1b[1m"), "{styled:?}");
    }
}
