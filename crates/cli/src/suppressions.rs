//! `--suppressions FILE` and `--gen-suppressions[=FILE]`: hiding known leaks
//! (the matching itself is `leakscope_analyse::suppress`), saying what each
//! suppression hid, and writing ready entries for the leaks reported.

use crate::pipeline::Problems;
use crate::render_text::plural;
use anyhow::Context;
use clap::Args;
use leakscope_analyse::report::{LeakClass, Report};
use leakscope_analyse::suppress::{self, SuppressionFile, Suppressions};
use std::fmt::Write;
use std::path::{Path, PathBuf};

#[derive(Args, Debug, Clone, Default)]
pub struct SuppressArgs {
    /// Hide the leaks that a suppression in FILE matches: a LeakSanitizer file (`leak:PATTERN` lines) or a
    /// Valgrind one (`{ ... Memcheck:Leak ... }` entries). Repeatable. The report says what each one hid.
    #[arg(long = "suppressions", value_name = "FILE", value_parser = parse_file_arg, help_heading = "Suppressions")]
    pub files: Vec<SuppressionFile>,
    /// Print a ready Valgrind-style suppression entry for each leak record reported, after the text report;
    /// with =FILE, write them to FILE instead ('-' for stdout).
    #[arg(long, value_name = "FILE", num_args = 0..=1, require_equals = true, help_heading = "Suppressions")]
    pub gen_suppressions: Option<Option<PathBuf>>,
}

/// Reads a `--suppressions` file while the command line is parsed, so that a
/// bad one stops leakscope before it runs anything.
fn parse_file_arg(s: &str) -> Result<SuppressionFile, String> {
    suppress::load(Path::new(s)).map_err(|e| e.to_string())
}

/// Hides the suppressed leak records (before anything is written). Does
/// nothing without `--suppressions`.
pub fn apply(report: &mut Report, args: &SuppressArgs) {
    if !args.files.is_empty() {
        Suppressions::new(&args.files).apply(report);
    }
}

/// What goes after the text report: the suppressions used and unused, and
/// the generated entries (`--gen-suppressions` without a file). Writes the
/// entries to the file given with `--gen-suppressions=FILE`.
pub fn finish(report: &Report, args: &SuppressArgs, show_reachable: bool, problems: &mut Problems) -> String {
    let mut text = String::new();
    if !args.files.is_empty() {
        render_used(&mut text, report);
    }
    match &args.gen_suppressions {
        None => {}
        Some(None) => {
            let entries = generated(report, show_reachable);
            if !entries.is_empty() {
                text.push('\n');
                text.push_str(&entries);
            }
        }
        Some(Some(path)) => problems.check(write_generated(&generated(report, show_reachable), path)),
    }
    text
}

/// The "Suppressions used" section: every suppression given, with what it hid.
pub fn render_used(out: &mut String, report: &Report) {
    let hidden = &report.summary.suppressed;
    let (used, unused): (Vec<_>, Vec<_>) = report.suppressions.iter().partition(|u| u.matched_records > 0);
    out.push('\n');
    if used.is_empty() {
        let _ = writeln!(out, "Suppressions used: none of the {} given matched.", report.suppressions.len());
    } else {
        let _ = writeln!(
            out,
            "Suppressions used (they hid {} in {}, {}):",
            plural(hidden.bytes, "byte", "bytes"),
            plural(hidden.blocks, "block", "blocks"),
            plural(hidden.records, "record", "records"),
        );
        let w = |f: fn(&leakscope_analyse::report::SuppressionUse) -> u64, title: &str| {
            used.iter().map(|u| f(u).to_string().len()).max().unwrap_or(0).max(title.len())
        };
        let (wr, wk, wb) =
            (w(|u| u.matched_records, "records"), w(|u| u.matched_blocks, "blocks"), w(|u| u.matched_bytes, "bytes"));
        let _ = writeln!(out, "  {:>wr$}  {:>wk$}  {:>wb$}  suppression", "records", "blocks", "bytes");
        for u in &used {
            let _ = writeln!(
                out,
                "  {:>wr$}  {:>wk$}  {:>wb$}  {}  ({}:{})",
                u.matched_records, u.matched_blocks, u.matched_bytes, u.name, u.file, u.line
            );
        }
    }
    if !unused.is_empty() {
        let _ = writeln!(out, "Suppressions that matched nothing:");
        for u in &unused {
            let _ = writeln!(out, "  {}  ({}:{})", u.name, u.file, u.line);
        }
    }
}

/// One Valgrind-style entry per leak record the text report lists (still
/// reachable ones only with `--show-reachable`), each after a comment naming
/// its record; entries equal to an earlier one are left out. The whole text
/// is a valid suppression file. Empty when there is no such record.
pub fn generated(report: &Report, show_reachable: bool) -> String {
    let mut out = String::new();
    let mut seen = std::collections::HashSet::new();
    for p in &report.processes {
        for l in p.leaks.iter().filter(|l| show_reachable || l.class != LeakClass::Reachable) {
            let entry = suppress::generate(l);
            if !seen.insert(entry.clone()) {
                continue;
            }
            let class = if l.class == LeakClass::Unknown { String::new() } else { format!(" {}", l.class.phrase()) };
            let _ = writeln!(
                out,
                "# {} in {}{class}, allocated with {} (process {})",
                plural(l.bytes, "byte", "bytes"),
                plural(l.blocks, "block", "blocks"),
                l.allocator.name(),
                p.pid
            );
            out.push_str(&entry);
        }
    }
    if out.is_empty() {
        return out;
    }
    format!(
        "# leakscope --gen-suppressions: one entry per leak record (a Valgrind suppression file; give it to\n\
         # leakscope or valgrind with --suppressions=FILE, or keep a LeakSanitizer form line for LSan)\n{out}"
    )
}

fn write_generated(text: &str, path: &Path) -> anyhow::Result<()> {
    if path == Path::new("-") {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        return out.write_all(text.as_bytes()).and_then(|_| out.flush()).context("cannot write suppressions to stdout");
    }
    std::fs::write(path, text).with_context(|| format!("cannot write suppressions to {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::Cli;
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("leakscope").chain(args.iter().copied()))
    }

    #[test]
    fn suppressions_are_read_while_parsing_and_bad_files_stop_it() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.supp");
        std::fs::write(&good, "leak:foo\n").unwrap();
        let vg = dir.path().join("vg.supp");
        std::fs::write(&vg, "{\n n\n Memcheck:Leak\n fun:malloc\n}\n").unwrap();
        let bad = dir.path().join("bad.supp");
        std::fs::write(&bad, "leak:foo\nwhat:is this\n").unwrap();
        let (g, v, b) = (good.to_str().unwrap(), vg.to_str().unwrap(), bad.to_str().unwrap());

        let cli =
            parse(&["run", "--suppressions", g, &format!("--suppressions={v}"), "--gen-suppressions", "--", "./p"])
                .unwrap();
        let crate::args::Command::Run(r) = cli.command else { panic!() };
        assert_eq!(r.out.suppress.files.len(), 2);
        assert_eq!(r.out.suppress.files[1].entries[0].name, "n");
        assert_eq!(r.out.suppress.gen_suppressions, Some(None));
        assert_eq!(r.command, ["./p"]);

        // --gen-suppressions takes a value only with '=': the program is not eaten.
        let cli = parse(&["run", "--gen-suppressions", "./p", "x"]).unwrap();
        let crate::args::Command::Run(r) = cli.command else { panic!() };
        assert_eq!(r.command, ["./p", "x"]);
        let cli = parse(&["report", "t.lstrace", "--gen-suppressions=out.supp"]).unwrap();
        let crate::args::Command::Report(r) = cli.command else { panic!() };
        assert_eq!(r.out.suppress.gen_suppressions, Some(Some(PathBuf::from("out.supp"))));
        assert!(r.out.suppress.files.is_empty());

        let err = parse(&["run", "--suppressions", b, "--", "./p"]).unwrap_err().to_string();
        assert!(err.contains(&format!("suppressions file {b}, line 2: unknown suppression type \"what\"")), "{err}");
        let err = parse(&["report", "t", "--suppressions", "/nonexistent/x.supp"]).unwrap_err().to_string();
        assert!(err.contains("suppressions file /nonexistent/x.supp: No such file"), "{err}");
    }
}
