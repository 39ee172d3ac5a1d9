//! CI: leak fingerprints survive rebuilds and unrelated edits; `--write-baseline`
//! and `--baseline` report only new leaks and list fixed ones; `leakscope diff`
//! compares two runs (JSON reports, traces or baselines).

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::Command;

const FIXTURE: &str = "export_leaks.c";

fn exe() -> PathBuf {
    cc(FIXTURE, &["-g", "-O0"])
}

/// Leaked records by fingerprint: (function of the site frame, line, bytes).
fn by_fingerprint(p: &Value) -> BTreeMap<String, (String, u32, u64)> {
    leaks(p)
        .iter()
        .filter(|l| l["class"] != "reachable")
        .map(|l| {
            let fp = l["fingerprint"].as_str().expect("every leak has a fingerprint").to_string();
            assert_eq!(fp.len(), 16, "16 hex digits (no duplicate sites in this fixture): {fp}");
            let stack = frames(&l["stack"]);
            let site = stack
                .iter()
                .find(|f| f.file.as_deref().is_some_and(|x| x.ends_with(".c") && !x.starts_with('.')))
                .unwrap_or_else(|| panic!("no user frame in {}", show_stack(&stack)));
            (
                fp,
                (
                    base_name(site.function.as_deref().unwrap_or("??")).to_string(),
                    site.line.unwrap_or(0),
                    l["bytes"].as_u64().unwrap(),
                ),
            )
        })
        .collect()
}

fn leakscope_args(args: &[&str]) -> Outcome {
    let v: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    leakscope(&v)
}

#[test]
fn fingerprints_survive_runs_rebuilds_and_unrelated_edits() {
    let first = run_ok(&exe(), &[]);
    let second = run_ok(&exe(), &[]);
    let a = by_fingerprint(first.process());
    assert_eq!(a.len(), 3, "node, name and grow leaks: {a:#?}");
    assert_eq!(a, by_fingerprint(second.process()), "another run (ASLR: other addresses)");
    let addr = |o: &Outcome| frames(&leaks(o.process())[0]["stack"])[0].address;
    assert_ne!(addr(&first), addr(&second), "ASLR moved the program");

    // The same program edited above the leaks and built from another directory:
    // other addresses, other line numbers, other paths; the same fingerprints.
    let dir = scratch("edited");
    std::fs::create_dir_all(&dir).unwrap();
    let src = std::fs::read_to_string(fixture(FIXTURE)).unwrap();
    let edited = format!(
        "/* An unrelated edit: a comment and a function above the leaks. */\n\
         static int unrelated(int x) {{ return x * 3 + 1; }}\n\
         int (*volatile keep_unrelated)(int) = unrelated;\n\n{src}"
    );
    let file = dir.join(FIXTURE);
    std::fs::write(&file, edited).unwrap();
    let out = dir.join("export_leaks_edited");
    let st = Command::new("gcc").args(["-g", "-O0", "-o"]).arg(&out).arg(&file).status().unwrap();
    assert!(st.success(), "gcc failed");
    let third = run_ok(&out, &[]);
    let c: BTreeMap<String, (String, u32, u64)> = leaks(third.process())
        .iter()
        .map(|l| {
            let stack = frames(&l["stack"]);
            let site = stack.iter().find(|f| f.file.as_deref() == Some(file.to_str().unwrap())).unwrap();
            let func = base_name(site.function.as_deref().unwrap()).to_string();
            (l["fingerprint"].as_str().unwrap().to_string(), (func, site.line.unwrap(), l["bytes"].as_u64().unwrap()))
        })
        .collect();
    let names = |m: &BTreeMap<String, (String, u32, u64)>| -> BTreeMap<String, (String, u64)> {
        m.iter().map(|(k, v)| (k.clone(), (v.0.clone(), v.2))).collect()
    };
    assert_eq!(names(&a), names(&c), "fingerprints after the edit");
    for (fp, (_, line, _)) in &a {
        assert_eq!(c[fp].1, line + 4, "the edit moved every line by 4");
    }
}

#[test]
fn a_baseline_reports_only_new_leaks_and_lists_fixed_ones() {
    let base = scratch("base.json");
    let first = run_opts(&["--write-baseline", base.to_str().unwrap()], &exe(), &[]);
    assert_eq!(first.code, Some(0), "{}", first.describe());
    let b: Value =
        serde_json::from_str(&std::fs::read_to_string(&base).expect("--write-baseline wrote a file")).unwrap();
    assert_eq!(b["schema"], "leakscope-baseline/1");
    let known = by_fingerprint(first.process());
    let in_file: Vec<&str> =
        b["leaks"].as_array().unwrap().iter().map(|e| e["fingerprint"].as_str().unwrap()).collect();
    assert_eq!(in_file.len(), known.len());
    assert!(in_file.iter().all(|f| known.contains_key(*f)), "{in_file:?} vs {known:#?}");

    // Nothing new: silent about the known leaks, and --error-exitcode stays quiet.
    let same = run_opts(&["--baseline", base.to_str().unwrap(), "--error-exitcode", "9"], &exe(), &[]);
    assert_eq!(same.code, Some(0), "known leaks do not fail the run: {}", same.describe());
    assert!(leaks(same.process()).iter().all(|l| l["class"] == "reachable"), "{}", show_leaks(same.process()));
    assert_eq!(same.process()["summary"]["leaked_bytes"], 0);
    assert!(
        same.stderr.contains(&format!(
            "leakscope: baseline {}: 0 new leak records; 3 known records (54 bytes in 3 blocks) not reported; no baseline entry is fixed.",
            base.display()
        )),
        "{}",
        same.stderr
    );

    // A later build: a new leak site, the node leak fixed, the table grown.
    let later =
        run_opts(&["--baseline", base.to_str().unwrap(), "--error-exitcode", "9"], &exe(), &["extra", "fix", "grow"]);
    assert_eq!(later.code, Some(9), "a new leak fails the run: {}", later.describe());
    let left = by_fingerprint(later.process());
    assert_eq!(
        left.values().map(|v| v.0.as_str()).collect::<Vec<_>>(),
        ["extra_cache"],
        "only the new leak is reported"
    );
    assert_eq!(later.process()["summary"]["leaked_bytes"], 24);
    let text = &later.stderr;
    assert!(
        text.contains("in extra_cache") || text.contains("extra_cache "),
        "the new leak in the text report:\n{text}"
    );
    assert!(!text.contains("allocated with calloc from"), "the grown table is known, not reported:\n{text}");
    assert!(
        text.contains("1 new leak record; 1 known record (64 bytes in 1 block) not reported; 2 baseline entries no longer occur (fixed):"),
        "{text}"
    );
    let node_line = line_of(FIXTURE, "LEAK:node");
    assert!(
        text.contains(&format!(
            "    fixed: 16 bytes in 1 block allocated with malloc at make_node {}:{node_line}",
            fixture_file(FIXTURE)
        )),
        "{text}"
    );
    assert!(text.contains("    fixed: 6 bytes in 1 block allocated with malloc at make_name "), "{text}");

    // Heap errors are never baselined.
    let err = run_opts(&["--baseline", base.to_str().unwrap(), "--error-exitcode", "9"], &exe(), &["double"]);
    assert_eq!(err.code, Some(9), "{}", err.describe());

    // A JSON report serves as a baseline too.
    let from_report = run_opts(
        &["--baseline", first.json_path.as_ref().unwrap().to_str().unwrap(), "--error-exitcode", "9"],
        &exe(),
        &[],
    );
    assert_eq!(from_report.code, Some(0), "{}", from_report.describe());

    // A baseline that cannot be read is an error; the report is still written.
    let missing = run_opts(&["--baseline", "/nonexistent/base.json"], &exe(), &[]);
    assert_eq!(missing.code, Some(2), "{}", missing.describe());
    assert!(missing.stderr.contains("cannot read baseline /nonexistent/base.json"), "{}", missing.stderr);
    assert_eq!(leaks(missing.process()).len(), leaks(first.process()).len());
}

#[test]
fn diff_lists_new_fixed_and_changed_leaks_from_reports_traces_and_baselines() {
    let trace = scratch("old.lstrace");
    let base = scratch("old.base");
    let old =
        run_opts(&["--save-trace", trace.to_str().unwrap(), "--write-baseline", base.to_str().unwrap()], &exe(), &[]);
    assert_eq!(old.code, Some(0), "{}", old.describe());
    let new = run_opts(&[], &exe(), &["extra", "fix", "grow"]);
    assert_eq!(new.code, Some(0), "{}", new.describe());
    let (a, b) = (old.json_path.as_ref().unwrap(), new.json_path.as_ref().unwrap());

    let out = scratch("diff.json");
    let d = leakscope_args(&["diff", a.to_str().unwrap(), b.to_str().unwrap(), "--json", out.to_str().unwrap()]);
    assert_eq!(d.code, Some(0), "{}", d.describe());
    assert!(
        d.stdout.starts_with("leakscope diff: 1 new, 2 fixed, 1 changed, 0 unchanged leak records"),
        "{}",
        d.stdout
    );
    let file = fixture_file(FIXTURE);
    assert!(
        d.stdout.contains(&format!(
            "\nnew: 24 bytes in 1 block allocated with malloc at extra_cache {file}:{}",
            line_of(FIXTURE, "LEAK:extra")
        )),
        "{}",
        d.stdout
    );
    assert!(
        d.stdout.contains(&format!(
            "\nchanged: 32 -> 64 bytes, 1 -> 1 blocks allocated with calloc at grow_table {file}:{}",
            line_of(FIXTURE, "LEAK:grow")
        )),
        "{}",
        d.stdout
    );
    assert!(d.stdout.contains("\nfixed: 16 bytes in 1 block allocated with malloc at make_node "), "{}", d.stdout);
    let j = read_json(&out).unwrap();
    assert_eq!(j["schema"], "leakscope-diff/1");
    let fp = |v: &Value| v["fingerprint"].as_str().unwrap().to_string();
    let new_fps = by_fingerprint(new.process());
    let extra_fp = new_fps.iter().find(|(_, v)| v.0 == "extra_cache").unwrap().0;
    assert_eq!(j["new_leaks"].as_array().unwrap().iter().map(fp).collect::<Vec<_>>(), [extra_fp.as_str()]);
    assert_eq!(j["fixed_leaks"].as_array().unwrap().len(), 2);
    assert_eq!(j["changed_leaks"][0]["old"]["bytes"], 32);
    assert_eq!(j["changed_leaks"][0]["new"]["bytes"], 64);
    assert_eq!(j["old"]["leaked_bytes"], 54);
    assert_eq!(j["new"]["leaked_bytes"], 88);
    assert!(!j["new_leaks"][0]["stack"].as_array().unwrap().is_empty(), "stacks come along");

    // A trace (analysed again) and a baseline give the same answer.
    for old_side in [&trace, &base] {
        let d2 = leakscope_args(&["diff", old_side.to_str().unwrap(), b.to_str().unwrap(), "--error-exitcode", "3"]);
        assert_eq!(d2.code, Some(3), "new leaks with --error-exitcode: {}", d2.describe());
        assert!(d2.stdout.starts_with("leakscope diff: 1 new, 2 fixed, 1 changed, 0 unchanged"), "{}", d2.stdout);
    }

    // No change, JSON on stdout and the text on stderr.
    let same =
        leakscope_args(&["diff", a.to_str().unwrap(), a.to_str().unwrap(), "--json", "-", "--error-exitcode", "3"]);
    assert_eq!(same.code, Some(0), "{}", same.describe());
    let j: Value = serde_json::from_str(&same.stdout).expect("JSON on stdout");
    assert_eq!(j["unchanged"], 3);
    assert!(same.stderr.starts_with("leakscope diff: 0 new, 0 fixed, 0 changed, 3 unchanged"), "{}", same.stderr);

    // Not a report.
    let junk = scratch("junk.txt");
    std::fs::write(&junk, "hello").unwrap();
    let bad = leakscope_args(&["diff", junk.to_str().unwrap(), a.to_str().unwrap()]);
    assert_eq!(bad.code, Some(2), "{}", bad.describe());
    assert!(bad.stderr.contains("neither a leakscope trace nor a JSON report"), "{}", bad.stderr);
}
