//! Wiring of the export writers (crate `leakscope-export`) into `run` and
//! `report`: the baseline before the text report, the other files after it.
//! Every writer gets the same analysed report as the text and JSON reports.

use crate::args::OutputArgs;
use crate::pipeline::Problems;
use anyhow::{anyhow, Context};
use leakscope_analyse::report::Report;
use leakscope_export::{baseline, flamegraph, html, pprof, sarif};

/// Writes `--write-baseline` (every leak found), then applies `--baseline`:
/// takes the known leaks out of `report` and returns what the text report
/// should add about it (empty without `--baseline`).
pub fn apply_baseline(report: &mut Report, out: &OutputArgs, problems: &mut Problems) -> String {
    let ex = &out.export;
    if let Some(path) = &ex.write_baseline {
        problems.check(
            baseline::Baseline::from_report(report)
                .write(path)
                .with_context(|| format!("cannot write the baseline to {}", path.display())),
        );
    }
    let Some(path) = &ex.baseline else { return String::new() };
    match baseline::Baseline::load(path) {
        Ok(b) => {
            let outcome = baseline::apply(report, &b);
            baseline::render_text(&outcome, path)
        }
        Err(e) => {
            problems.check(Err(anyhow!("{e}")));
            String::new()
        }
    }
}

/// Writes `--html`, `--flamegraph`, `--pprof` and `--sarif`. `baseline_text`
/// is what [`apply_baseline`] returned (shown on the HTML page).
pub fn write(report: &Report, out: &OutputArgs, baseline_text: &str, problems: &mut Problems) {
    let ex = &out.export;
    if let Some(path) = &ex.html {
        let opts = html::HtmlOptions {
            notices: baseline_text.lines().filter(|l| !l.trim().is_empty()).map(|l| l.trim().to_string()).collect(),
            read_sources: true,
        };
        problems.check(
            html::write(report, path, &opts)
                .with_context(|| format!("cannot write the HTML report to {}", path.display())),
        );
    }
    if let Some(path) = &ex.flamegraph {
        problems.check(
            flamegraph::write(report, path)
                .with_context(|| format!("cannot write the flame graph to {}", path.display())),
        );
    }
    if let Some(path) = &ex.pprof {
        problems.check(
            pprof::write(report, path).with_context(|| format!("cannot write the pprof profile to {}", path.display())),
        );
    }
    if let Some(path) = &ex.sarif {
        let root = std::env::current_dir().ok();
        problems.check(
            sarif::write(report, path, root.as_deref())
                .with_context(|| format!("cannot write the SARIF log to {}", path.display())),
        );
    }
}
