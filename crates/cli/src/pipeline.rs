//! What `run` and `report` share: analyse a trace, write the text and JSON
//! reports, and choose the exit status.

use crate::args::OutputArgs;
use crate::collect::ProcessNote;
use crate::{output, render_text};
use anyhow::Result;
use leakscope_analyse::report::Report;
use leakscope_analyse::{analyse, symbols::Symbolize, Options};
use leakscope_format::model::Trace;

/// Errors met while writing outputs: each is reported, the others still written.
#[derive(Default)]
pub struct Problems(Vec<anyhow::Error>);

impl Problems {
    pub fn check(&mut self, r: Result<()>) {
        if let Err(e) = r {
            self.0.push(e);
        }
    }

    /// Take over another list's errors (one kept on another thread).
    pub fn absorb(&mut self, other: Problems) {
        self.0.extend(other.0);
    }

    /// Ok when there were none; else prints all but the last and returns the last.
    pub fn finish(mut self) -> Result<()> {
        let Some(last) = self.0.pop() else { return Ok(()) };
        for e in &self.0 {
            eprintln!("leakscope: {e:#}");
        }
        Err(last)
    }
}

/// Analyses `trace` (with the real symbolizer), adds `notes`, and writes the reports.
pub fn report(trace: &Trace, notes: &[ProcessNote], out: &OutputArgs, problems: &mut Problems) -> Report {
    let mut sym = leakscope_analyse::Symbolizer::new();
    report_with(trace, notes, out, &mut sym, problems)
}

pub fn report_with<S: Symbolize + ?Sized>(
    trace: &Trace,
    notes: &[ProcessNote],
    out: &OutputArgs,
    sym: &mut S,
    problems: &mut Problems,
) -> Report {
    let started = std::time::Instant::now();
    let mut report = analyse(trace, sym, &Options { show_inherited: out.show_inherited, ..Options::default() });
    let analysed = started.elapsed();
    for n in notes {
        if let Some(p) = report.process_mut(n.pid, n.exec_index) {
            p.add_note(n.note.clone());
        }
    }
    let text_opts = render_text::TextOptions { show_reachable: out.show_reachable, show_mappings: out.show_mappings };
    crate::suppressions::apply(&mut report, &out.suppress);
    let baseline = crate::export_out::apply_baseline(&mut report, out, problems);
    let suppressions = crate::suppressions::finish(&report, &out.suppress, out.show_reachable, problems);
    problems.check(output::write_text(&(render_text::render_with(&report, &text_opts) + &baseline + &suppressions), out));
    if let Some(path) = &out.json {
        problems.check(output::write_json(&report, path));
    }
    crate::export_out::write(&report, out, &baseline, problems);
    if out.stats {
        eprint!("{}", crate::stats::render(trace, analysed));
    }
    report
}

/// `--error-exitcode N` when something was found, else `normal`.
pub fn exit_status(normal: i32, report: &Report, out: &OutputArgs) -> i32 {
    match out.error_exitcode {
        Some(n) if report.processes.iter().any(|p| p.fails(out.fail_on_possible)) => n as i32,
        _ => normal,
    }
}
