//! Options for the reports that people look at and tools read (`--html`,
//! `--flamegraph`, `--pprof`, `--sarif`), the CI baseline, and `leakscope diff`.

use clap::Args;
use std::path::PathBuf;

const HEADING: &str = "Reports for people and tools";

#[derive(Args, Debug, Clone, Default)]
pub struct ExportArgs {
    /// Also write a self-contained HTML page (summary, sortable leak table, stacks with source, heap errors,
    /// processes, flame graph) to FILE.
    #[arg(long, value_name = "FILE", help_heading = HEADING)]
    pub html: Option<PathBuf>,
    /// Also write leaked bytes by allocation stack as an SVG flame graph to FILE.
    #[arg(long, value_name = "FILE.svg", help_heading = HEADING)]
    pub flamegraph: Option<PathBuf>,
    /// Also write a gzipped pprof profile (sample types leaked_bytes, leaked_blocks) to FILE, for go tool pprof,
    /// Pyroscope or speedscope.
    #[arg(long, value_name = "FILE.pb.gz", help_heading = HEADING)]
    pub pprof: Option<PathBuf>,
    /// Also write SARIF 2.1.0 (one result per leak record and heap error) to FILE, for code scanning.
    #[arg(long, value_name = "FILE", help_heading = HEADING)]
    pub sarif: Option<PathBuf>,
    /// Record the leaks found as a baseline in FILE (for --baseline); all of them, even with --baseline.
    #[arg(long, value_name = "FILE", help_heading = HEADING)]
    pub write_baseline: Option<PathBuf>,
    /// Report, and count for --error-exitcode, only leaks that are not in the baseline FILE (written by
    /// --write-baseline, or a JSON report); list the baseline's leaks that no longer occur.
    #[arg(long, value_name = "FILE", help_heading = HEADING)]
    pub baseline: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The earlier run: a JSON report (--json), a trace (--save-trace) or a baseline (--write-baseline).
    #[arg(value_name = "OLD")]
    pub old: PathBuf,
    /// The later run, of the same kinds.
    #[arg(value_name = "NEW")]
    pub new: PathBuf,
    /// Also write the diff as JSON (schema leakscope-diff/1) to FILE ('-' for stdout; the text then goes to stderr).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Exit with N when NEW has leaks that OLD did not, or leaks that grew.
    #[arg(long, value_name = "N")]
    pub error_exitcode: Option<u8>,
}
