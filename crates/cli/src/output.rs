//! Writing the reports where the options say: text (coloured or not) to
//! stderr or a file, JSON to a file or stdout, the raw trace to a file.

use crate::args::OutputArgs;
use anyhow::{Context, Result};
use leakscope_analyse::report::Report;
use leakscope_format::{codec, model::Trace};
use std::fs::File;
use std::io::Write;
use std::path::Path;

/// Writes the styled text report to `--output` or stderr. anstream strips the
/// styles unless colour is on: `always`, or `auto` on a terminal without NO_COLOR.
pub fn write_text(styled: &str, opts: &OutputArgs) -> Result<()> {
    let choice = opts.color.choice();
    match &opts.output {
        Some(path) => {
            let file = File::create(path).with_context(|| format!("cannot write the report to {}", path.display()))?;
            let mut w = anstream::AutoStream::new(file, choice);
            w.write_all(styled.as_bytes())
                .and_then(|_| w.flush())
                .with_context(|| format!("cannot write the report to {}", path.display()))
        }
        None => {
            let mut w = anstream::AutoStream::new(std::io::stderr(), choice);
            // stderr going away is no reason to fail.
            let _ = w.write_all(styled.as_bytes()).and_then(|_| w.flush());
            Ok(())
        }
    }
}

/// Writes the JSON report to `path` ('-' for stdout).
pub fn write_json(report: &Report, path: &Path) -> Result<()> {
    let mut text = serde_json::to_string_pretty(report).context("cannot serialise the JSON report")?;
    text.push('\n');
    if path == Path::new("-") {
        let mut out = std::io::stdout().lock();
        return out.write_all(text.as_bytes()).and_then(|_| out.flush()).context("cannot write the JSON report to stdout");
    }
    std::fs::write(path, text).with_context(|| format!("cannot write the JSON report to {}", path.display()))
}

/// Writes the trace file for `leakscope report`.
pub fn save_trace(trace: &Trace, path: &Path) -> Result<()> {
    std::fs::write(path, codec::encode(trace)).with_context(|| format!("cannot save the trace to {}", path.display()))
}
