//! `leakscope diff OLD NEW`: new, fixed and changed leaks between two runs
//! (JSON reports, traces or baselines), matched by fingerprint.

use crate::export_args::DiffArgs;
use crate::fail::{Fail, FAILURE};
use anyhow::{Context, Result};
use leakscope_export::baseline::Baseline;
use leakscope_export::diff::{diff, LeakSet};
use std::io::Write;
use std::path::Path;

pub fn run(args: &DiffArgs) -> Result<i32> {
    let old = load(&args.old)?;
    let new = load(&args.new)?;
    let d = diff(&old, &new);
    let text = d.render_text();
    let json_to_stdout = args.json.as_deref() == Some(Path::new("-"));
    if json_to_stdout {
        let _ = std::io::stderr().write_all(text.as_bytes());
    } else {
        let mut o = std::io::stdout().lock();
        let _ = o.write_all(text.as_bytes()).and_then(|_| o.flush());
    }
    if let Some(path) = &args.json {
        if json_to_stdout {
            let mut o = std::io::stdout().lock();
            o.write_all(d.to_json().as_bytes()).and_then(|_| o.flush()).context("cannot write the diff to stdout")?;
        } else {
            std::fs::write(path, d.to_json())
                .with_context(|| format!("cannot write the diff to {}", path.display()))?;
        }
    }
    Ok(match args.error_exitcode {
        Some(n) if d.is_worse() => n as i32,
        _ => 0,
    })
}

/// The leaks of a trace (analysed and symbolised here), a JSON report or a baseline.
fn load(path: &Path) -> Result<LeakSet, Fail> {
    let bytes = std::fs::read(path).map_err(|e| Fail::new(FAILURE, format!("cannot read {}: {e}", path.display())))?;
    if bytes.starts_with(&leakscope_format::codec::TRACE_MAGIC) {
        let trace = crate::cmd_report::load(path)?;
        let mut sym = leakscope_analyse::Symbolizer::new();
        let report = leakscope_analyse::analyse(&trace, &mut sym, &leakscope_analyse::Options::default());
        return Ok(LeakSet::from_report(&report));
    }
    let text = String::from_utf8(bytes).map_err(|_| {
        Fail::new(FAILURE, format!("{} is neither a leakscope trace nor a JSON report or baseline", path.display()))
    })?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        Fail::new(
            FAILURE,
            format!("{} is neither a leakscope trace nor a JSON report or baseline: {e}", path.display()),
        )
    })?;
    let schema = v.get("schema").and_then(|s| s.as_str()).unwrap_or("");
    if schema.starts_with("leakscope-report/") {
        let mut report: leakscope_analyse::report::Report = serde_json::from_value(v)
            .map_err(|e| Fail::new(FAILURE, format!("{}: not a leakscope report: {e}", path.display())))?;
        leakscope_analyse::fingerprint::fill_missing(&mut report);
        return Ok(LeakSet::from_report(&report));
    }
    let b = Baseline::parse(&text).map_err(|e| Fail::new(FAILURE, format!("{}: {e}", path.display())))?;
    Ok(LeakSet::from_baseline(&b))
}
