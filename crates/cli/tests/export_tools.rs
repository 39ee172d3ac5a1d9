//! The files for tools, read by real consumers: `--pprof` by `go tool pprof`
//! (Debian's golang-go; the test says why it skipped when `go` is missing),
//! `--sarif` validated against the official SARIF 2.1.0 JSON schema
//! (tests/schemas/), `--flamegraph` as inferno's SVG; and `report TRACE`
//! writing the same files as `run`.

mod common;

use common::*;
use serde_json::Value;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

const FIXTURE: &str = "export_leaks.c";

fn exe() -> PathBuf {
    cc(FIXTURE, &["-g", "-O0"])
}

/// The leaked (not reachable) records of a process.
fn leaked(p: &Value) -> Vec<&Value> {
    leaks(p).iter().filter(|l| l["class"] != "reachable").collect()
}

fn have_go() -> Result<(), String> {
    match Command::new("go").arg("version").output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!("`go version` failed: {}", String::from_utf8_lossy(&o.stderr))),
        Err(e) => Err(format!("no go on PATH ({e}); apt-get install golang-go")),
    }
}

fn pprof(args: &[&str], profile: &Path) -> String {
    let tmp = scratch("pprof-tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let mut cmd = Command::new("go");
    cmd.args(["tool", "pprof"]).args(args).arg(profile).env("PPROF_TMPDIR", &tmp).env("PPROF_BINARY_PATH", &tmp);
    let o = cmd.output().expect("run go tool pprof");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{cmd:?} failed:\n{out}\n{}", String::from_utf8_lossy(&o.stderr));
    out
}

/// (flat, function) of each row of `pprof -top`.
fn top_rows(out: &str) -> Vec<(String, String)> {
    out.lines()
        .skip_while(|l| !l.trim_start().starts_with("flat"))
        .skip(1)
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols.len() >= 6).then(|| (cols[0].to_string(), cols[5..].join(" ")))
        })
        .collect()
}

#[test]
fn go_tool_pprof_reads_the_profile_with_names_and_lines() {
    if let Err(why) = have_go() {
        skip("go_tool_pprof_reads_the_profile_with_names_and_lines", &why);
        return;
    }
    let prof = scratch("leaks.pb.gz");
    let o = run_opts(&["--pprof", prof.to_str().unwrap()], &exe(), &["extra"]);
    assert_eq!(o.code, Some(0), "{}", o.describe());
    let bytes = std::fs::read(&prof).expect("--pprof wrote a file");
    assert_eq!(&bytes[..2], &[0x1f, 0x8b], "gzip");
    let p = o.process();
    let total: u64 = leaked(p).iter().map(|l| l["bytes"].as_u64().unwrap()).sum();
    let blocks: u64 = leaked(p).iter().map(|l| l["blocks"].as_u64().unwrap()).sum();

    let top = pprof(&["-top"], &prof);
    assert!(top.contains("Type: leaked_bytes"), "leaked_bytes is the default sample type:\n{top}");
    assert!(top.contains(&format!("of {total}B total")), "total {total}B:\n{top}");
    let rows = top_rows(&top);
    // The largest leak sites come first, named: calloc(2, 16) in grow_table, malloc(24) in extra_cache.
    assert_eq!(rows.first(), Some(&("32B".to_string(), "grow_table".to_string())), "{top}");
    assert_eq!(rows.get(1), Some(&("24B".to_string(), "extra_cache".to_string())), "{top}");
    for f in ["make_node", "main"] {
        assert!(rows.iter().any(|r| r.1 == f), "{f} in:\n{top}");
    }

    let by_blocks = pprof(&["-top", "-sample_index=leaked_blocks"], &prof);
    assert!(
        by_blocks.contains("Type: leaked_blocks") && by_blocks.contains(&format!("of {blocks} total")),
        "{by_blocks}"
    );

    // Files and lines are in the profile: no binary is needed to show them.
    let lines = pprof(&["-top", "-lines"], &prof);
    let grow = format!("grow_table {}:{}", fixture_file(FIXTURE), line_of(FIXTURE, "LEAK:grow"));
    assert!(lines.contains(&grow), "{grow} in:\n{lines}");
    let traces = pprof(&["-traces"], &prof);
    assert!(traces.contains("allocator:  calloc") && traces.contains("fingerprint:"), "sample labels:\n{traces}");
}

fn sarif_schema() -> Value {
    let path = workspace_root().join("tests/schemas/sarif-schema-2.1.0.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn assert_valid_sarif(log: &Value) {
    let schema = sarif_schema();
    let validator =
        jsonschema::options().should_validate_formats(true).build(&schema).expect("the SARIF schema compiles");
    let errors: Vec<String> = validator.iter_errors(log).map(|e| format!("{e} at {}", e.instance_path())).collect();
    assert!(errors.is_empty(), "the SARIF log does not validate against the 2.1.0 schema:\n{}", errors.join("\n"));
}

#[test]
fn sarif_validates_and_points_at_the_users_code() {
    let sarif = scratch("leaks.sarif");
    let json = scratch("leaks.json");
    let fixtures = fixtures_dir().canonicalize().unwrap();
    let exe = exe();
    let args: Vec<&OsStr> = vec![
        OsStr::new("run"),
        OsStr::new("--sarif"),
        sarif.as_os_str(),
        OsStr::new("--json"),
        json.as_os_str(),
        OsStr::new("--"),
        exe.as_os_str(),
        OsStr::new("double"),
    ];
    // Run from the fixtures directory: the source is then under SRCROOT.
    let o = leakscope_in(&args, Some(&fixtures));
    assert_eq!(o.code, Some(0), "{}", o.describe());
    let report = read_json(&json).unwrap();
    let log: Value = serde_json::from_str(&std::fs::read_to_string(&sarif).expect("--sarif wrote a file")).unwrap();
    assert_valid_sarif(&log);

    let p = &report["processes"][0];
    let run = &log["runs"][0];
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), leaked(p).len() + errors(p).len(), "one result per leak record and heap error");
    assert_eq!(run["originalUriBaseIds"]["SRCROOT"]["uri"], format!("file://{}/", fixtures.display()));
    assert_eq!(run["tool"]["driver"]["name"], "leakscope");

    let at = |r: &Value| -> (String, u64) {
        let loc = &r["locations"][0]["physicalLocation"];
        (
            loc["artifactLocation"]["uri"].as_str().unwrap_or("").to_string(),
            loc["region"]["startLine"].as_u64().unwrap_or(0),
        )
    };
    // The name leak is inside strdup (libc): located at make_name's call, the user's code.
    let name = results
        .iter()
        .find(|r| r["ruleId"] == "memory-leak" && r["properties"]["bytes"] == 6)
        .unwrap_or_else(|| panic!("no result for the 6-byte name leak: {results:#?}"));
    assert_eq!(at(name), ("export_leaks.c".to_string(), line_of(FIXTURE, "LEAK:name") as u64));
    assert_eq!(name["locations"][0]["physicalLocation"]["artifactLocation"]["uriBaseId"], "SRCROOT");
    let flow = name["codeFlows"][0]["threadFlows"][0]["locations"].as_array().unwrap();
    let innermost = &flow.last().unwrap()["location"]["logicalLocations"][0]["fullyQualifiedName"];
    assert!(innermost.as_str().is_some_and(|f| f.contains("strdup")), "the code flow ends in strdup: {innermost}");
    let json_leak = leaks(p).iter().find(|l| l["bytes"] == 6).unwrap();
    assert_eq!(name["partialFingerprints"]["leakscope/v1"], json_leak["fingerprint"], "the leak's fingerprint");

    let grow = results.iter().find(|r| r["properties"]["bytes"] == 32).unwrap();
    assert_eq!(at(grow), ("export_leaks.c".to_string(), line_of(FIXTURE, "LEAK:grow") as u64));
    assert_eq!(grow["level"], "warning");

    let double = results.iter().find(|r| r["ruleId"] == "double-free").expect("a double-free result");
    assert_eq!(double["level"], "error");
    assert_eq!(at(double), ("export_leaks.c".to_string(), line_of(FIXTURE, "ERROR:double") as u64));
    let flows = double["codeFlows"][0]["threadFlows"].as_array().unwrap();
    assert_eq!(flows.len(), 3, "bad call, allocation and first free stacks");
    let rules: Vec<&str> =
        run["tool"]["driver"]["rules"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(rules[double["ruleIndex"].as_u64().unwrap() as usize], "double-free");
}

#[test]
fn the_flame_graph_weighs_stacks_by_leaked_bytes() {
    let svg = scratch("leaks.svg");
    let o = run_opts(&["--flamegraph", svg.to_str().unwrap()], &exe(), &["extra"]);
    assert_eq!(o.code, Some(0), "{}", o.describe());
    let text = std::fs::read_to_string(&svg).expect("--flamegraph wrote a file");
    assert!(
        text.starts_with("<?xml") && text.contains("<svg") && text.trim_end().ends_with("</svg>"),
        "an SVG document"
    );
    let total: u64 = leaked(o.process()).iter().map(|l| l["bytes"].as_u64().unwrap()).sum();
    assert!(text.contains(&format!("<title>all ({total} bytes, 100%)</title>")), "root frame with {total} bytes");
    assert!(text.contains("<title>grow_table (32 bytes,"), "grow_table's tower");
    assert!(text.contains("<title>[calloc] (32 bytes,"), "the allocator as the leaf");
    assert!(text.contains("<title>extra_cache (24 bytes,"));
}

#[test]
fn report_of_a_saved_trace_writes_the_same_files() {
    let dir = scratch("same");
    std::fs::create_dir_all(&dir).unwrap();
    let trace = dir.join("t.lstrace");
    let names = ["a.sarif", "a.svg", "a.pb.gz", "a.html", "a.base"];
    let opts = |prefix: &str| -> Vec<String> {
        let f = |n: &str| dir.join(format!("{prefix}{n}")).to_str().unwrap().to_string();
        vec![
            "--sarif".into(),
            f(names[0]),
            "--flamegraph".into(),
            f(names[1]),
            "--pprof".into(),
            f(names[2]),
            "--html".into(),
            f(names[3]),
            "--write-baseline".into(),
            f(names[4]),
        ]
    };
    let mut run_args = opts("run-");
    run_args.extend(["--save-trace".into(), trace.to_str().unwrap().into()]);
    let run_args: Vec<&str> = run_args.iter().map(String::as_str).collect();
    let o = run_opts(&run_args, &exe(), &["extra", "double"]);
    assert_eq!(o.code, Some(0), "{}", o.describe());
    let report_args = opts("report-");
    let mut v: Vec<&OsStr> = vec![OsStr::new("report"), trace.as_os_str()];
    v.extend(report_args.iter().map(OsStr::new));
    let r = leakscope(&v);
    assert_eq!(r.code, Some(0), "{}", r.describe());
    for n in names {
        let a = std::fs::read(dir.join(format!("run-{n}"))).unwrap_or_else(|e| panic!("run wrote no {n}: {e}"));
        let b = std::fs::read(dir.join(format!("report-{n}"))).unwrap_or_else(|e| panic!("report wrote no {n}: {e}"));
        assert!(a == b, "{n} differs between run and report");
    }
}
