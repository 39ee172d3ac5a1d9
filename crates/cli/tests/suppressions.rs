//! `--suppressions FILE` (LeakSanitizer and Valgrind files) and
//! `--gen-suppressions[=FILE]`, end to end: what is hidden, what the report
//! says about each suppression, and generated entries that hide everything
//! when given back.

mod common;

use common::*;
use serde_json::{json, Value};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

const C: &str = "suppress_leaks.c";
const CXX: &str = "suppress_cxx.cpp";

fn leaky() -> PathBuf {
    cc(C, &["-g", "-O0"])
}

/// A suppression file in the scratch directory.
fn supp_file(name: &str, text: &str) -> PathBuf {
    let p = scratch(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `leakscope run OPTS --json F -- prog`, expecting the program's status 0
/// and a well-formed report.
fn run_with(opts: &[&str], prog: &Path) -> Outcome {
    let o = run_opts(opts, prog, &[]);
    assert_eq!(o.code, Some(0), "{}", o.describe());
    check_schema(o.json());
    o
}

/// The functions named in the stacks of a process's leak records.
fn leaking_functions(p: &Value) -> Vec<String> {
    leaks(p).iter().map(|l| functions(&frames(&l["stack"]))[0].clone()).collect()
}

fn has_leak_from(p: &Value, function: &str) -> bool {
    leaks(p)
        .iter()
        .any(|l| frames(&l["stack"]).iter().any(|f| f.function.as_deref().is_some_and(|n| same_function(n, function))))
}

/// The report's `suppressions` as (name, line, records, blocks, bytes).
fn uses(report: &Value) -> Vec<(String, u64, u64, u64, u64)> {
    report["suppressions"]
        .as_array()
        .unwrap_or_else(|| panic!("suppressions is not an array: {report}"))
        .iter()
        .map(|u| {
            let n = |k: &str| u[k].as_u64().unwrap_or_else(|| panic!("{k} of {u}"));
            (
                u["name"].as_str().unwrap().to_owned(),
                n("line"),
                n("matched_records"),
                n("matched_blocks"),
                n("matched_bytes"),
            )
        })
        .collect()
}

fn use_of<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["suppressions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == name)
        .unwrap_or_else(|| panic!("no suppression {name:?} in {}", report["suppressions"]))
}

#[test]
fn without_suppressions_all_three_leak_and_the_list_is_empty() {
    let o = run_with(&[], &leaky());
    let p = o.process();
    for f in ["alpha_leak", "beta_inner", "gamma_leak", "keep_block"] {
        assert!(has_leak_from(p, f), "{f}:{}", show_leaks(p));
    }
    assert_eq!(o.json()["suppressions"], json!([]));
    assert_eq!(p["summary"]["suppressed"], json!({"bytes": 0, "blocks": 0, "records": 0}));
    assert!(!o.stderr.contains("Suppressions"), "{}", o.stderr);
}

#[test]
fn lsan_file_hides_one_function_and_lists_what_matched_nothing() {
    let f = supp_file("known.lsan", "# Known leaks\n\nleak:alpha_leak\nleak:never_called_anywhere\n");
    let o = run_with(&["--suppressions", s(&f)], &leaky());
    let p = o.process();
    assert!(!has_leak_from(p, "alpha_leak"), "alpha is suppressed:{}", show_leaks(p));
    assert!(has_leak_from(p, "beta_inner") && has_leak_from(p, "gamma_leak"), "{}", show_leaks(p));
    leak_at(p, "gamma_leak", C, "LEAK:gamma");

    let r = o.json();
    assert_eq!(
        uses(r),
        vec![("leak:alpha_leak".into(), 3, 1, 1, 100), ("leak:never_called_anywhere".into(), 4, 0, 0, 0)]
    );
    let u = use_of(r, "leak:alpha_leak");
    assert_eq!((u["file"].as_str(), u["format"].as_str()), (Some(s(&f)), Some("lsan")));
    assert_eq!(p["summary"]["suppressed"], json!({"bytes": 100, "blocks": 1, "records": 1}));
    assert_eq!(r["summary"]["suppressed"], p["summary"]["suppressed"]);
    // The leak totals no longer count it.
    let leaked: u64 = leaks(p).iter().filter(|l| l["class"] != "reachable").map(|l| l["bytes"].as_u64().unwrap()).sum();
    assert_eq!(p["summary"]["leaked_bytes"].as_u64(), Some(leaked));
    // The kept block counts as leaked only when no reachability scan said it is reachable.
    let kept_counted = leaks(p).iter().any(|l| l["bytes"] == 17 && l["class"] != "reachable");
    let want = 201 + 33 + if kept_counted { 17 } else { 0 };
    assert_eq!(leaked, want, "{}", show_leaks(p));

    // The text report.
    let t = &o.stderr;
    assert!(t.contains("Suppressions used (they hid 100 bytes in 1 block, 1 record):"), "{t}");
    assert!(t.contains(&format!("leak:alpha_leak  ({}:3)", s(&f))), "{t}");
    assert!(
        t.contains(&format!("Suppressions that matched nothing:\n  leak:never_called_anywhere  ({}:4)", s(&f))),
        "{t}"
    );
    assert!(!t.contains("alpha_leak /"), "no stack of the hidden record:\n{t}");
    let n = if kept_counted { 3 } else { 2 };
    assert!(t.contains(&format!("SUMMARY: leakscope: {want} bytes leaked in {n} blocks ({n} records)")), "{t}");
}

#[test]
fn lsan_patterns_match_files_and_anchors() {
    // The source file of frame #0 of every record, and an anchored name.
    let by_file = supp_file("file.lsan", &format!("leak:{C}\n"));
    let o = run_with(&["--suppressions", s(&by_file)], &leaky());
    assert!(leaks(o.process()).is_empty(), "every stack runs through {C}:{}", show_leaks(o.process()));
    let anchored = supp_file("anchored.lsan", "leak:^beta_\nleak:^_leak$\nleak:gamma_leak$\n");
    let o = run_with(&["--suppressions", s(&anchored)], &leaky());
    assert_eq!(
        uses(o.json()).iter().map(|u| u.2).collect::<Vec<_>>(),
        vec![1, 0, 1],
        "^beta_ and gamma_leak$ match, ^_leak$ does not"
    );
    assert!(has_leak_from(o.process(), "alpha_leak"));
}

#[test]
fn valgrind_file_with_ellipsis_hides_the_other_function() {
    let f = supp_file(
        "beta.supp",
        "# beta leaks on purpose\n{\n   beta through anything\n   Memcheck:Leak\n   fun:calloc\n   fun:beta_inner\n   ...\n   fun:main\n}\n",
    );
    let o = run_with(&["--suppressions", s(&f)], &leaky());
    let p = o.process();
    assert!(!has_leak_from(p, "beta_inner"), "{}", show_leaks(p));
    assert!(has_leak_from(p, "alpha_leak") && has_leak_from(p, "gamma_leak"), "{}", show_leaks(p));
    assert_eq!(uses(o.json()), vec![("beta through anything".into(), 2, 1, 1, 201)]);
    assert_eq!(use_of(o.json(), "beta through anything")["format"], "valgrind");
}

#[test]
fn several_files_apply_together_in_order() {
    let lsan = supp_file("a.lsan", "leak:alpha_leak\nleak:never_called_anywhere\n");
    let vg = supp_file(
        "b.supp",
        "{\n   beta\n   Memcheck:Leak\n   fun:calloc\n   ...\n   fun:beta_outer\n}\n{\n   alpha again\n   Memcheck:Leak\n   fun:malloc\n   fun:alpha_leak\n}\n",
    );
    let o = run_with(&["--suppressions", s(&lsan), &format!("--suppressions={}", s(&vg))], &leaky());
    let p = o.process();
    let left = leaking_functions(p);
    assert!(left.iter().all(|f| f == "gamma_leak" || f == "keep_block"), "{left:?}");
    // alpha is credited to the first suppression that matches it; the second one matched nothing.
    assert_eq!(
        uses(o.json()),
        vec![
            ("leak:alpha_leak".into(), 1, 1, 1, 100),
            ("leak:never_called_anywhere".into(), 2, 0, 0, 0),
            ("beta".into(), 1, 1, 1, 201),
            ("alpha again".into(), 8, 0, 0, 0),
        ]
    );
    assert_eq!(p["summary"]["suppressed"], json!({"bytes": 301, "blocks": 2, "records": 2}));
    assert!(o.stderr.contains("Suppressions that matched nothing:\n  leak:never_called_anywhere"), "{}", o.stderr);
    assert!(o.stderr.contains("  alpha again  ("), "{}", o.stderr);
}

#[test]
fn match_leak_kinds_follows_the_leak_class() {
    let f = supp_file(
        "kinds.supp",
        "{\n   kept on purpose\n   Memcheck:Leak\n   match-leak-kinds: reachable\n   ...\n   fun:keep_block\n}\n\
         {\n   alpha only if possible\n   Memcheck:Leak\n   match-leak-kinds: possible,indirect\n   fun:malloc\n   fun:alpha_leak\n}\n\
         {\n   gamma if definite\n   Memcheck:Leak\n   match-leak-kinds: definite\n   fun:malloc\n   fun:gamma_leak\n}\n",
    );
    let before = run_with(&[], &leaky());
    let class_of = |f: &str| {
        leaks(before.process())
            .iter()
            .find(|l| functions(&frames(&l["stack"]))[0] == f)
            .map(|l| l["class"].as_str().unwrap().to_owned())
            .unwrap()
    };
    let o = run_with(&["--suppressions", s(&f)], &leaky());
    let p = o.process();
    // A record is hidden when its class is listed, or when it is "unknown" (no scan).
    let hidden = |class: String, kinds: &[&str]| class == "unknown" || kinds.contains(&class.as_str());
    assert_eq!(!has_leak_from(p, "keep_block"), hidden(class_of("keep_block"), &["reachable"]), "{}", show_leaks(p));
    assert_eq!(
        !has_leak_from(p, "alpha_leak"),
        hidden(class_of("alpha_leak"), &["possible", "indirect"]),
        "{}",
        show_leaks(p)
    );
    assert_eq!(!has_leak_from(p, "gamma_leak"), hidden(class_of("gamma_leak"), &["definite"]), "{}", show_leaks(p));
    assert!(has_leak_from(p, "beta_inner"));
    if before.process()["reachability"]["state"] == "complete" {
        assert_eq!(class_of("alpha_leak"), "definite");
        assert_eq!(class_of("keep_block"), "reachable");
        assert!(has_leak_from(p, "alpha_leak") && !has_leak_from(p, "gamma_leak") && !has_leak_from(p, "keep_block"));
    }
}

/// The generated entries in a text report: from the `--gen-suppressions`
/// header comment to the end.
fn generated_part(text: &str) -> &str {
    let at = text.find("# leakscope --gen-suppressions").unwrap_or_else(|| panic!("no generated entries:\n{text}"));
    &text[at..]
}

#[test]
fn gen_suppressions_prints_an_entry_per_record_that_hides_it_when_given_back() {
    let exe = leaky();
    let o = run_with(&["--gen-suppressions"], &exe);
    let gen = generated_part(&o.stderr);
    let shown = leaks(o.process()).iter().filter(|l| l["class"] != "reachable").count();
    assert_eq!(gen.matches("\n{\n").count(), shown, "one entry per record shown:\n{gen}");
    assert!(gen.contains("   Memcheck:Leak\n"), "{gen}");
    assert!(gen.contains("   fun:calloc\n   fun:beta_inner\n   fun:beta_outer\n   fun:main\n"), "{gen}");
    assert!(gen.contains("   fun:malloc\n   fun:alpha_leak\n   fun:main\n"), "{gen}");
    assert!(gen.contains("# LeakSanitizer form: leak:^alpha_leak$\n"), "{gen}");
    let alpha_line = line_of(C, "LEAK:alpha");
    assert!(gen.contains(&format!("   <leak from alpha_leak ({C}:{alpha_line})>\n")), "{gen}");

    // Given back, it hides every record it was made from, and says so.
    let f = supp_file("generated.supp", gen);
    let again = run_opts(&["--suppressions", s(&f), "--error-exitcode", "9"], &exe, &[]);
    assert_eq!(again.code, Some(0), "nothing left to fail on: {}", again.describe());
    let p = again.process();
    assert!(leaks(p).iter().all(|l| l["class"] == "reachable"), "{}", show_leaks(p));
    assert_eq!(p["summary"]["leaked_bytes"], 0);
    assert_eq!(p["summary"]["suppressed"]["records"].as_u64(), Some(shown as u64));
    assert!(uses(again.json()).iter().all(|u| u.2 == 1), "{:?}", uses(again.json()));
    // The LeakSanitizer forms do the same.
    let lsan: String =
        gen.lines().filter_map(|l| l.strip_prefix("# LeakSanitizer form: ")).map(|l| format!("{l}\n")).collect();
    let f = supp_file("generated.lsan", &lsan);
    let again = run_with(&["--suppressions", s(&f)], &exe);
    assert!(leaks(again.process()).iter().all(|l| l["class"] == "reachable"), "{}", show_leaks(again.process()));
}

#[test]
fn gen_suppressions_to_a_file_with_reachable_records_hides_everything() {
    let exe = leaky();
    let out = scratch("all.supp");
    let arg = format!("--gen-suppressions={}", s(&out));
    let o = run_with(&[&arg, "--show-reachable"], &exe);
    assert!(!o.stderr.contains("# leakscope --gen-suppressions"), "to the file, not the report:\n{}", o.stderr);
    let text = std::fs::read_to_string(&out).expect("--gen-suppressions=FILE");
    assert_eq!(text.matches("\n{\n").count(), leaks(o.process()).len(), "{text}");
    let again = run_with(&["--suppressions", s(&out)], &exe);
    assert!(leaks(again.process()).is_empty(), "{}", show_leaks(again.process()));
    assert_eq!(again.process()["summary"]["suppressed"]["records"].as_u64(), Some(leaks(o.process()).len() as u64));
}

#[test]
fn cxx_names_match_mangled_and_demangled() {
    let exe = cxx(CXX, &["-g", "-O0"]);
    let before = run_with(&[], &exe);
    assert_eq!(leaks(before.process()).len(), 2, "{}", show_leaks(before.process()));

    // What Valgrind's --gen-suppressions writes: mangled names.
    let mangled = supp_file(
        "cxx.supp",
        "{\n   fill\n   Memcheck:Leak\n   fun:_Znam\n   fun:_ZN5store5Cache4fillEi\n   fun:main\n}\n\
         {\n   template\n   Memcheck:Leak\n   fun:_Znwm\n   fun:_Z8make_oneIlEvT_\n}\n",
    );
    let o = run_with(&["--suppressions", s(&mangled)], &exe);
    assert!(leaks(o.process()).is_empty(), "{}", show_leaks(o.process()));
    assert_eq!(uses(o.json()), vec![("fill".into(), 1, 1, 1, 40), ("template".into(), 8, 1, 1, 8)]);

    // Mangled prefixes, demangled globs, and LeakSanitizer lines.
    let mixed = supp_file(
        "cxx2.supp",
        "{\n   prefix\n   Memcheck:Leak\n   fun:_Zna*\n   fun:_ZN5store*\n}\n{\n   glob\n   Memcheck:Leak\n   fun:operator new(*)\n   fun:void make_one<*>(*)\n}\n",
    );
    let o = run_with(&["--suppressions", s(&mixed)], &exe);
    assert!(leaks(o.process()).is_empty(), "{}", show_leaks(o.process()));
    let lsan = supp_file("cxx.lsan", "leak:store::Cache::fill\n");
    let o = run_with(&["--suppressions", s(&lsan)], &exe);
    assert_eq!(leaks(o.process()).len(), 1, "{}", show_leaks(o.process()));
    assert!(leaking_functions(o.process())[0].contains("make_one"), "{}", show_leaks(o.process()));
}

#[test]
fn obj_and_module_patterns_hide_a_library_leak() {
    let lib = cc_shared("nodebug_lib.c", &["-O0"]);
    let dir = lib.parent().unwrap().to_str().unwrap().to_owned();
    let name = lib.file_name().unwrap().to_str().unwrap().to_owned();
    let exe =
        cc("nodebug_main.c", &["-g", "-O0", &format!("-L{dir}"), &format!("-Wl,-rpath,{dir}"), &format!("-l:{name}")]);
    let stem = name.split('-').next().unwrap(); // libnodebug_lib
    let vg = supp_file(
        "obj.supp",
        &format!("{{\n   the library\n   Memcheck:Leak\n   fun:malloc\n   obj:*/{stem}-*.so\n}}\n"),
    );
    let o = run_with(&["--suppressions", s(&vg)], &exe);
    assert!(leaks(o.process()).is_empty(), "{}", show_leaks(o.process()));
    let lsan = supp_file("obj.lsan", &format!("leak:{stem}\n"));
    let o = run_with(&["--suppressions", s(&lsan)], &exe);
    assert!(leaks(o.process()).is_empty(), "{}", show_leaks(o.process()));
    assert_eq!(uses(o.json())[0].4, 345);
}

#[test]
fn a_malformed_file_is_an_error_naming_file_and_line_and_nothing_runs() {
    let exe = leaky();
    for (name, text, line, what) in [
        ("bad.lsan", "leak:alpha_leak\n\nlaek:beta\n", 3, "unknown suppression type \"laek\""),
        ("bad.supp", "{\n   n\n   Memcheck:Leak\n   fun:malloc\n   alpha_leak\n}\n", 5, "expected a frame line"),
        ("bad2.supp", "{\n   n\n   Memcheck:Leak\n   fun:malloc\n", 1, "not closed"),
    ] {
        let f = supp_file(name, text);
        let o = run_opts(&["--suppressions", s(&f)], &exe, &[]);
        assert_eq!(o.code, Some(2), "{}", o.describe());
        let want = format!("suppressions file {}, line {line}: ", s(&f));
        assert!(o.stderr.contains(&want) && o.stderr.contains(what), "{want}{what}\n{}", o.describe());
        assert!(!o.stdout.contains("suppress_leaks done"), "the program must not run: {}", o.describe());
        assert!(o.json.is_none(), "no report");
    }
    let missing = scratch("missing.supp");
    let o = run_opts(&["--suppressions", s(&missing)], &exe, &[]);
    assert_eq!(o.code, Some(2), "{}", o.describe());
    assert!(o.stderr.contains(&format!("suppressions file {}: ", s(&missing))), "{}", o.describe());
}

#[test]
fn report_of_a_saved_trace_takes_suppressions() {
    let exe = leaky();
    let trace = scratch("trace.lstrace");
    let first = run_with(&["--save-trace", s(&trace)], &exe);
    assert!(has_leak_from(first.process(), "alpha_leak"));
    let f = supp_file("report.lsan", "leak:alpha_leak\n");
    let json = scratch("report.json");
    let gen = scratch("report-gen.supp");
    let mut o = leakscope(&[
        OsStr::new("report"),
        trace.as_os_str(),
        OsStr::new("--suppressions"),
        f.as_os_str(),
        OsStr::new("--json"),
        json.as_os_str(),
        OsStr::new(&format!("--gen-suppressions={}", s(&gen))),
    ]);
    o.json = read_json(&json);
    assert_eq!(o.code, Some(0), "{}", o.describe());
    check_schema(o.json());
    let p = o.process();
    assert!(!has_leak_from(p, "alpha_leak") && has_leak_from(p, "beta_inner"), "{}", show_leaks(p));
    assert_eq!(uses(o.json()), vec![("leak:alpha_leak".into(), 1, 1, 1, 100)]);
    let text = std::fs::read_to_string(&gen).unwrap();
    assert!(!text.contains("fun:alpha_leak"), "no entry for a suppressed record:\n{text}");
    assert!(text.contains("fun:beta_inner"), "{text}");
}
