//! `leakscope report TRACE`: the analysis of a saved trace.

use crate::args::ReportArgs;
use crate::fail::{Fail, FAILURE};
use crate::pipeline::{self, Problems};
use anyhow::Result;
use leakscope_format::{codec, model::Trace};
use std::path::Path;

pub fn run(args: &ReportArgs) -> Result<i32> {
    let trace = load(&args.trace)?;
    let mut problems = Problems::default();
    let report = pipeline::report(&trace, &[], &args.out, &mut problems);
    problems.finish()?;
    Ok(pipeline::exit_status(0, &report, &args.out))
}

/// Reads and decodes a trace file; any failure is one line naming the file.
pub fn load(path: &Path) -> Result<Trace, Fail> {
    let bytes = std::fs::read(path)
        .map_err(|e| Fail::new(FAILURE, format!("cannot read trace {}: {e}", path.display())))?;
    codec::decode(&bytes).map_err(|e| Fail::new(FAILURE, format!("cannot read trace {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{ColorWhen, OutputArgs};
    use leakscope_format::model::*;

    fn sample() -> Trace {
        Trace {
            processes: vec![ProcessTrace {
                pid: 42,
                parent_pid: 1,
                exec_index: 0,
                argv: vec!["./prog".into()],
                exe: "/tmp/prog".into(),
                ending: Ending::Exited(0),
                finalized: true,
                modules: vec![],
                stacks: vec![vec![], vec![0x1234]],
                blocks: vec![Block {
                    addr: 0x10,
                    size: 40,
                    kind: AllocKind::Malloc,
                    stack: 1,
                    flags: 0,
                    class: leakscope_format::model::LeakClass::Unknown,
                }],
                errors: vec![],
                stats: Stats { allocs: 1, frees: 0, ..Default::default() },
                scan: Default::default(),
                maps: Default::default(),
                locations: Vec::new(),
            }],
        }
    }

    fn args(trace: &Path, dir: &Path, exitcode: Option<u8>) -> ReportArgs {
        ReportArgs {
            out: OutputArgs {
                output: Some(dir.join("out.txt")),
                json: Some(dir.join("out.json")),
                error_exitcode: exitcode,
                stats: false,
                show_reachable: false,
                show_inherited: false,
                show_mappings: false,
                fail_on_possible: false,
                export: Default::default(),
                suppress: Default::default(),
                color: ColorWhen::Never,
            },
            trace: trace.to_path_buf(),
        }
    }

    fn fails_with(path: &Path, want: &str) {
        let dir = tempfile::tempdir().unwrap();
        let err = run(&args(path, dir.path(), None)).unwrap_err();
        assert_eq!(crate::fail::status_of(&err), 2);
        let msg = format!("{err:#}");
        assert!(msg.contains(&path.display().to_string()) && msg.contains(want), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
    }

    #[test]
    fn a_missing_trace_is_a_one_line_error() {
        fails_with(Path::new("/nonexistent/t.lstrace"), "No such file");
    }

    #[test]
    fn truncated_and_corrupt_traces_name_the_codec_error() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = codec::encode(&sample());
        let t = dir.path().join("t.lstrace");
        std::fs::write(&t, &bytes[..bytes.len() - 3]).unwrap();
        fails_with(&t, "truncated");
        let mut bad = bytes.clone();
        bad[30] ^= 0x40;
        std::fs::write(&t, &bad).unwrap();
        fails_with(&t, "checksum");
        std::fs::write(&t, b"hello").unwrap();
        fails_with(&t, "not a leakscope trace");
        std::fs::write(&t, b"").unwrap();
        fails_with(&t, "not a leakscope trace");
    }

    #[test]
    fn a_good_trace_is_reported_and_the_exit_code_follows_findings() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("t.lstrace");
        std::fs::write(&t, codec::encode(&sample())).unwrap();
        assert_eq!(run(&args(&t, dir.path(), None)).unwrap(), 0);
        assert_eq!(run(&args(&t, dir.path(), Some(23))).unwrap(), 23);
        let text = std::fs::read_to_string(dir.path().join("out.txt")).unwrap();
        assert!(text.contains("40 bytes in 1 block allocated with malloc from:"), "{text}");
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("out.json")).unwrap()).unwrap();
        assert_eq!(json["schema"], "leakscope-report/1");
        assert_eq!(json["processes"][0]["leaks"][0]["stack"][0]["address"], "0x1233");
    }
}
