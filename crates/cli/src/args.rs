//! Command line.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::ffi::OsString;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "leakscope",
    version,
    about = "Finds memory leaks and heap errors (double, invalid and mismatched frees) in unmodified Linux programs",
    after_help = "Exit status of `run`: the program's own (128+N when it was killed by signal N), or the \
--error-exitcode value when leaks or heap errors were found; 127 when PROG is not found, 126 when it \
cannot be traced, 2 for other leakscope errors."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a program under leakscope and report its leaks and heap errors.
    Run(RunArgs),
    /// Report on a trace saved by `run --save-trace`.
    Report(ReportArgs),
    /// Compare the leaks of two runs (JSON reports, traces or baselines): new, fixed and changed.
    Diff(crate::export_args::DiffArgs),
    /// Show the live blocks of a process running under `leakscope run`, without stopping it.
    Snapshot(SnapshotArgs),
    /// Report on a log written by glibc's mtrace(): blocks never freed and bad frees, by caller.
    Mtrace(MtraceArgs),
}

#[derive(Args, Debug)]
pub struct MtraceArgs {
    /// The log: MALLOC_TRACE=LOG while the program ran (on glibc 2.34 and later with
    /// LD_PRELOAD=libc_malloc_debug.so.0, without which mtrace() writes nothing).
    #[arg(value_name = "LOG")]
    pub log: PathBuf,
    /// The traced program, for callers in it (else the file the log names, looked for from the
    /// current directory, then from the log's).
    #[arg(long, value_name = "PROG")]
    pub binary: Option<PathBuf>,
    /// Also write the report as JSON (schema leakscope-report/1) to FILE ('-' for stdout).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write the text report to FILE instead of stderr.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Exit with N when the log shows blocks never freed or bad frees (else 0).
    #[arg(long, value_name = "N")]
    pub error_exitcode: Option<u8>,
    /// When to colour the text report.
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = ColorWhen::Auto)]
    pub color: ColorWhen,
}

#[derive(Args, Debug)]
pub struct SnapshotArgs {
    /// Process id of a program (or of a process it started) running under `leakscope run`.
    #[arg(value_name = "PID")]
    pub pid: u32,
    /// Show how much each allocation site grew since SNAPSHOT (saved earlier with --save).
    #[arg(long, value_name = "SNAPSHOT")]
    pub since: Option<PathBuf>,
    /// Save this snapshot to FILE, for a later --since (`leakscope report FILE` reads it too).
    #[arg(long, value_name = "FILE")]
    pub save: Option<PathBuf>,
    /// Also write the snapshot as JSON (schema leakscope-snapshot/1) to FILE ('-' for stdout).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write the text to FILE instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// When to colour the text (auto: only on a terminal, and not when NO_COLOR is set).
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = ColorWhen::Auto)]
    pub color: ColorWhen,
}

#[derive(Args, Debug)]
#[command(override_usage = "leakscope run [OPTIONS] -- <PROG> [ARGS]...")]
pub struct RunArgs {
    #[command(flatten)]
    pub out: OutputArgs,
    /// Save the raw trace to FILE (read it back with `leakscope report FILE`).
    #[arg(long, value_name = "FILE")]
    pub save_trace: Option<PathBuf>,
    /// What to record of each free, shown for double frees as "first freed at":
    /// the call site (default), the full stack (slower: a stack walk per free), or nothing.
    #[arg(long, value_name = "WHAT", default_value = "site", value_parser = ["site", "full", "none"])]
    pub free_stacks: String,
    /// Check for leaks whenever the program gets SIGNAL (e.g. SIGUSR2), printing a
    /// report while it keeps running. leakscope passes SIGUSR1/SIGUSR2 it receives on to it.
    #[arg(long, value_name = "SIGNAL", value_parser = crate::launch::parse_signal)]
    pub check_on_signal: Option<i32>,
    /// Start with tracing off, until the program calls leakscope_enable() (leakscope.h,
    /// like glibc's mtrace()): only what it allocates while tracing is on is reported.
    #[arg(long)]
    pub start_disabled: bool,
    /// The program to run and its arguments (put them after `--`).
    #[arg(value_name = "PROG", required = true, num_args = 1.., trailing_var_arg = true)]
    pub command: Vec<OsString>,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    #[command(flatten)]
    pub out: OutputArgs,
    /// A trace file written by `leakscope run --save-trace`.
    #[arg(value_name = "TRACE")]
    pub trace: PathBuf,
}

#[derive(Args, Debug, Clone)]
pub struct OutputArgs {
    /// Write the text report to FILE instead of stderr.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Also write the report as JSON (schema leakscope-report/1) to FILE ('-' for stdout).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Exit with N instead of the usual status when any leak or heap error was found.
    #[arg(long, value_name = "N")]
    pub error_exitcode: Option<u8>,
    /// List still-reachable memory in the text report too (it is always in the JSON).
    #[arg(long)]
    pub show_reachable: bool,
    /// Count possibly-lost memory as leaked for --error-exitcode.
    #[arg(long)]
    pub fail_on_possible: bool,
    /// List private mappings never unmapped in the text report too (shared ones
    /// are always listed; the JSON always has both).
    #[arg(long)]
    pub show_mappings: bool,
    /// Also list, for each forked process, the blocks it inherited from its parent (never counted as its leaks).
    #[arg(long)]
    pub show_inherited: bool,
    /// Print what leakscope spent its time on (also with LEAKSCOPE_STATS=1 in the environment).
    #[arg(long, env = "LEAKSCOPE_STATS", value_parser = clap::builder::BoolishValueParser::new(), default_value_t = false)]
    pub stats: bool,
    #[command(flatten)]
    pub export: crate::export_args::ExportArgs,
    #[command(flatten)]
    pub suppress: crate::suppressions::SuppressArgs,
    /// When to colour the text report (auto: only on a terminal, and not when NO_COLOR is set).
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = ColorWhen::Auto)]
    pub color: ColorWhen,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorWhen {
    Auto,
    Always,
    Never,
}

impl ColorWhen {
    pub fn choice(self) -> anstream::ColorChoice {
        match self {
            ColorWhen::Auto => anstream::ColorChoice::Auto,
            ColorWhen::Always => anstream::ColorChoice::Always,
            ColorWhen::Never => anstream::ColorChoice::Never,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("leakscope").chain(args.iter().copied()))
    }

    #[test]
    fn run_takes_the_command_after_double_dash() {
        let cli = parse(&["run", "--json", "r.json", "--error-exitcode", "9", "--", "./prog", "-x", "--json"]).unwrap();
        let Command::Run(r) = cli.command else { panic!() };
        assert_eq!(r.command, ["./prog", "-x", "--json"]);
        assert_eq!(r.out.error_exitcode, Some(9));
        assert_eq!(r.out.json.as_deref(), Some(std::path::Path::new("r.json")));
        assert_eq!(r.out.color, ColorWhen::Auto);
    }

    #[test]
    fn run_without_double_dash_passes_later_options_to_the_program() {
        let cli = parse(&["run", "ls", "-l", "--color=never"]).unwrap();
        let Command::Run(r) = cli.command else { panic!() };
        assert_eq!(r.command, ["ls", "-l", "--color=never"]);
        assert_eq!(r.out.color, ColorWhen::Auto);
    }

    #[test]
    fn run_needs_a_program_and_report_a_trace() {
        assert!(parse(&["run"]).is_err());
        assert!(parse(&["run", "--"]).is_err());
        assert!(parse(&["report"]).is_err());
        assert!(parse(&["report", "t.lstrace", "--color", "sometimes"]).is_err());
        let cli = parse(&["report", "t.lstrace", "--color", "always", "--output", "o.txt"]).unwrap();
        let Command::Report(r) = cli.command else { panic!() };
        assert_eq!(r.out.color, ColorWhen::Always);
    }
}
