//! `leakscope mtrace LOG [--binary PROG]`: what glibc's `mtrace` script tells
//! from a log written by mtrace() (blocks never freed, frees of pointers the
//! log never allocated), with callers resolved to function, file and line in
//! the program and in shared libraries, and double frees told apart. The
//! JSON report is `leakscope-report/1` with one process for the log.

use crate::args::MtraceArgs;
use crate::fail::{Fail, FAILURE};
use crate::mtrace::{self, Replayed};
use crate::output;
use crate::render_text::{plural, render_stack};
use anyhow::{Context, Result};
use leakscope_analyse::report::*;
use leakscope_analyse::{analyse, Options, Symbolizer};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;

const TAG: &str = "==mtrace==";

pub fn run(args: &MtraceArgs) -> Result<i32> {
    let text = std::fs::read(&args.log)
        .map_err(|e| Fail::new(FAILURE, format!("cannot read the mtrace log {}: {e}", args.log.display())))?;
    let records = mtrace::parse(&text).map_err(|e| Fail::new(FAILURE, format!("{}: {e}", args.log.display())))?;
    if let Some(b) = &args.binary {
        if !b.is_file() {
            return Err(Fail::new(FAILURE, format!("--binary {}: no such file", b.display())).into());
        }
    }
    let mut search: Vec<PathBuf> = std::env::current_dir().into_iter().collect();
    if let Some(dir) = args.log.canonicalize().ok().and_then(|p| p.parent().map(|d| d.to_path_buf())) {
        search.push(dir);
    }
    let rep = mtrace::replay(&records, args.binary.as_deref(), &search);
    let mut sym = Symbolizer::new();
    let mut report = analyse(&rep.trace, &mut sym, &Options::default());
    let lines = leak_lines(&rep, &report);
    show_log_callers(&mut report, &rep);
    if rep.reused > 0 {
        report.processes[0].add_note(format!(
            "{} allocation(s) in the log returned an address the log had not seen freed: frees made while \
             mtrace() was off are missing, so some blocks listed may have been freed",
            rep.reused
        ));
    }
    report.update_summary();

    let text = render(&report, &rep, &lines, args);
    let mut problems = Vec::new();
    match &args.output {
        Some(path) => {
            let r = std::fs::File::create(path).and_then(|f| {
                let mut w = anstream::AutoStream::new(f, args.color.choice());
                w.write_all(text.as_bytes()).and_then(|_| w.flush())
            });
            if let Err(e) = r {
                problems.push(anyhow::anyhow!("cannot write the report to {}: {e}", path.display()));
            }
        }
        None => {
            let mut w = anstream::AutoStream::new(std::io::stderr(), args.color.choice());
            let _ = w.write_all(text.as_bytes()).and_then(|_| w.flush());
        }
    }
    if let Some(path) = &args.json {
        if let Err(e) = output::write_json(&report, path) {
            problems.push(e);
        }
    }
    if let Some(e) = problems.pop() {
        for other in problems {
            eprintln!("leakscope: {other:#}");
        }
        return Err(e).context("writing the mtrace report");
    }
    Ok(match args.error_exitcode {
        Some(n) if report.has_findings() => n as i32,
        _ => 0,
    })
}

/// Log lines of the blocks of each leak record (same order as the report's leaks).
fn leak_lines(rep: &Replayed, report: &Report) -> Vec<Vec<usize>> {
    let p = &rep.trace.processes[0];
    // Each stack is a single caller: key a block by (allocator, call site).
    let mut by_site: HashMap<(Allocator, Option<u64>), Vec<usize>> = HashMap::new();
    let mut blocks: Vec<_> = p.blocks.iter().collect();
    blocks.sort_by_key(|b| rep.alloc_lines.get(&b.addr).copied().unwrap_or(0));
    for b in blocks {
        let site = p.stacks.get(b.stack as usize).and_then(|s| s.first()).map(|&ra| ra - 1);
        let line = rep.alloc_lines.get(&b.addr).copied().unwrap_or(0);
        by_site.entry((b.kind.into(), site)).or_default().push(line);
    }
    report.processes[0]
        .leaks
        .iter()
        .map(|l| by_site.get(&(l.allocator, l.stack.first().map(|f| f.address))).cloned().unwrap_or_default())
        .collect()
}

/// Frames as the log knows them: the ELF address of the call (the log has no
/// load addresses), and the log's symbol where the symbolizer found none.
fn show_log_callers(report: &mut Report, rep: &Replayed) {
    let fix = |stack: &mut Vec<Frame>| {
        for f in stack.iter_mut() {
            let Some(info) = rep.frames.get(&(f.address + 1)) else { continue };
            match info.vaddr {
                Some(v) => {
                    f.address = v - 1;
                    f.module_offset = Some(v - 1);
                }
                None => {
                    f.address = info.caller.addr.saturating_sub(1);
                    f.module = f.module.take().or_else(|| info.caller.module.clone().filter(|m| !m.is_empty()));
                    f.module_offset = f.module.as_ref().map(|_| f.address);
                }
            }
            if f.function.is_none() {
                if let Some((name, off)) = &info.caller.symbol {
                    if *off >= 0 {
                        f.function = Some(name.clone());
                    }
                }
            }
        }
    };
    for p in &mut report.processes {
        for l in &mut p.leaks {
            fix(&mut l.stack);
        }
        for e in &mut p.errors {
            fix(&mut e.stack);
            if let Some(s) = &mut e.alloc_stack {
                fix(s);
            }
            if let Some(s) = &mut e.free_stack {
                fix(s);
            }
        }
    }
}

fn lines_list(lines: &[usize]) -> String {
    let shown: Vec<String> = lines.iter().take(8).map(|l| l.to_string()).collect();
    let more = if lines.len() > 8 { format!(" and {} more", lines.len() - 8) } else { String::new() };
    format!("{}{more}", shown.join(", "))
}

fn render(report: &Report, rep: &Replayed, leak_lines: &[Vec<usize>], args: &MtraceArgs) -> String {
    let p = &report.processes[0];
    let mut out = String::new();
    let program = args.binary.as_ref().map(|b| format!(" of {}", b.display())).unwrap_or_default();
    let _ = writeln!(
        out,
        "{TAG} leakscope report for the mtrace log {}{program}: {} in {}",
        args.log.display(),
        plural(rep.records as u64, "record", "records"),
        plural(rep.sections as u64, "traced section", "traced sections"),
    );
    for n in &p.notes {
        let _ = writeln!(out, "{TAG} note: {n}");
    }
    if rep.sections > 1 {
        let _ = writeln!(
            out,
            "{TAG} note: mtrace() was turned off and on again: a block freed while it was off is listed as never freed"
        );
    }
    for m in &rep.missing_modules {
        let hint = if args.binary.is_none() { " (give the program with --binary)" } else { "" };
        let _ = writeln!(out, "{TAG} note: {m} was not found: its callers are not resolved{hint}");
    }

    // Bad frees, grouped by (kind, call, caller).
    let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
    for (i, e) in p.errors.iter().enumerate() {
        let same = groups.iter_mut().find(|(first, _)| {
            let f = &p.errors[*first];
            f.kind == e.kind && f.release == e.release && f.stack == e.stack
        });
        match same {
            Some((_, members)) => members.push(i),
            None => groups.push((i, vec![i])),
        }
    }
    for (first, members) in &groups {
        let e = &p.errors[*first];
        let bad = &rep.bad_frees[*first];
        let lines: Vec<usize> = members.iter().map(|&i| rep.bad_frees[i].line).collect();
        let call = e.release.name();
        let times = if members.len() > 1 {
            format!("; {} times at this call, log lines {}", members.len(), lines_list(&lines))
        } else {
            format!("; log line {}", bad.line)
        };
        out.push('\n');
        match e.kind {
            HeapErrorKind::DoubleFree => {
                let size = e.block.map(|b| format!(" ({}-byte block)", b.bytes)).unwrap_or_default();
                let _ = writeln!(out, "{TAG} ERROR: double {call} of {:#x}{size}{times}", e.address);
            }
            _ => {
                let _ = writeln!(
                    out,
                    "{TAG} ERROR: {call} of {:#x}, which the log never allocated (before mtrace(), or not by \
                     malloc){times}",
                    e.address
                );
            }
        }
        render_stack(&mut out, &e.stack);
        if let (Some(stack), Some(b)) = (&e.alloc_stack, &e.block) {
            let at = bad.alloc_line.map(|l| format!(" (log line {l})")).unwrap_or_default();
            let _ = writeln!(out, "  allocated by {} at{at}:", b.allocator.name());
            render_stack(&mut out, stack);
        }
        if let Some(stack) = &e.free_stack {
            let first = e.first_release.map_or("free", Release::name);
            let at = bad.first_freed_line.map(|l| format!(" (log line {l})")).unwrap_or_default();
            let _ = writeln!(out, "  first freed by {first} at{at}:");
            render_stack(&mut out, stack);
        }
    }
    for (l, lines) in p.leaks.iter().zip(leak_lines) {
        out.push('\n');
        let _ = writeln!(
            out,
            "{} in {} never freed, allocated with {} from:",
            plural(l.bytes, "byte", "bytes"),
            plural(l.blocks, "block", "blocks"),
            l.allocator.name()
        );
        render_stack(&mut out, &l.stack);
        if !lines.is_empty() {
            let _ = writeln!(out, "    (log line{} {})", if lines.len() > 1 { "s" } else { "" }, lines_list(lines));
        }
    }
    out.push('\n');
    let s = &p.summary;
    let _ = writeln!(
        out,
        "{TAG} SUMMARY: leakscope: {} never freed in {} ({}); {} ({} allocations, {} frees logged).",
        plural(s.leaked_bytes, "byte", "bytes"),
        plural(s.leaked_blocks, "block", "blocks"),
        plural(s.leak_records, "record", "records"),
        plural(s.errors, "bad free", "bad frees"),
        s.allocations,
        s.frees,
    );
    out
}
