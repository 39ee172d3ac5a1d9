//! The reachability scan: every class (definite, indirect, possible,
//! reachable) and every kind of root, on C, C++ and Rust fixtures built at
//! -O0 and -O2 (tests/fixtures/reach_*), each record checked for class,
//! bytes, blocks, allocator and the program's file:line — and compared, site
//! by site, with Valgrind's verdict on the same binary when valgrind is
//! installed. Also what the classes do to `--error-exitcode` and to the text
//! report.
//!
//! A fixture marks each allocation line with a tag (`/* LOST:cycle-a */`);
//! a record belongs to the tag whose line its stack passes through, and the
//! first frame of the record in the fixture file must be that line.

mod common;

use common::*;
use serde_json::Value;
use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

const ROOTS: &str = "reach_roots.c";
const EXIT_FRAME: &str = "reach_exit_frame.c";
const LOST: &str = "reach_lost.c";
const CXX: &str = "reach_cxx.cpp";
const NEWARRAY: &str = "reach_newarray.cpp";
const RC: &str = "reach_rc.rs";
const DTLS: &str = "reach_dtls.c";
const DTLS_LIB: &str = "reach_dtls_lib.c";

// ---------------------------------------------------------------------------
// Fixtures, their builds and runs (each made once per test process)

/// One value per key for the life of the test process, made on first use
/// (without holding a lock while it is made).
fn memo<T: Send + Sync + 'static>(key: String, make: impl FnOnce() -> T) -> &'static T {
    type Cells = Mutex<HashMap<String, &'static (dyn Any + Send + Sync)>>;
    static CELLS: OnceLock<Cells> = OnceLock::new();
    let any = {
        let mut map = CELLS.get_or_init(Default::default).lock().unwrap();
        *map.entry(key).or_insert_with(|| Box::leak(Box::new(OnceLock::<T>::new())))
    };
    any.downcast_ref::<OnceLock<T>>().expect("one type per memo key").get_or_init(make)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Opt {
    O0,
    O2,
}

/// A fixture program: its source, optimisation level and arguments.
#[derive(Clone, Copy, Debug)]
struct Fx {
    name: &'static str,
    opt: Opt,
    args: &'static [&'static str],
}

fn fx(name: &'static str, opt: Opt) -> Fx {
    Fx { name, opt, args: &[] }
}

impl Fx {
    fn with_args(self, args: &'static [&'static str]) -> Fx {
        Fx { args, ..self }
    }

    fn exe(&self) -> PathBuf {
        let o = if self.opt == Opt::O0 { "-O0" } else { "-O2" };
        match Path::new(self.name).extension().and_then(|e| e.to_str()) {
            Some("c") => {
                let mut flags = vec!["-g", o, "-pthread"];
                if self.name == EXIT_FRAME {
                    // No lazy-binding resolver between the program and exit().
                    flags.push("-Wl,-z,now");
                }
                if self.name == DTLS {
                    flags.push("-ldl");
                }
                cc(self.name, &flags)
            }
            Some("cpp") => cxx(self.name, &["-g", o]),
            Some("rs") => {
                let level = if self.opt == Opt::O0 { "opt-level=0" } else { "opt-level=2" };
                rust(self.name, &["-g", "-C", level])
            }
            _ => panic!("fixture {} has no known language", self.name),
        }
    }

    fn key(&self, what: &str) -> String {
        format!("{what} {} {:?} {:?}", self.name, self.opt, self.args)
    }

    /// `leakscope run --json` on it (exit status 0, a well-formed report).
    fn run(&self) -> &'static Outcome {
        memo(self.key("leakscope"), || run_ok(&self.exe(), self.args))
    }

    fn process(&self) -> &'static Value {
        self.run().process()
    }

    /// Valgrind's leak records for it, or None when valgrind is not installed.
    fn valgrind(&self) -> Option<&'static Valgrind> {
        if !valgrind_installed() {
            return None;
        }
        let args: Vec<String> = self.args.iter().map(|s| s.to_string()).collect();
        Some(memo(self.key("valgrind"), || run_valgrind(&self.exe(), &args)))
    }
}

fn valgrind_installed() -> bool {
    *memo("have valgrind".into(), || {
        let ok = have_tool("valgrind");
        if !ok {
            eprintln!("valgrind is not installed: the Valgrind comparisons only check leakscope");
        }
        ok
    })
}

// ---------------------------------------------------------------------------
// Expected records, and matching records to the fixture's lines

/// A record expected at a tagged line: class, bytes, blocks, allocator.
type Site = (&'static str, &'static str, u64, u64, &'static str);

/// Whether a frame is at `file`:`line`.
fn at(f: &Frame, file: &str, line: u32) -> bool {
    f.file.as_deref() == Some(file) && f.line == Some(line)
}

/// The records whose stack passes through the line tagged `tag` in `fixture_name`.
fn records_at<'a>(p: &'a Value, fixture_name: &str, tag: &str) -> Vec<&'a Value> {
    let file = fixture_file(fixture_name);
    let line = line_of(fixture_name, tag);
    leaks(p).iter().filter(|l| frames(&l["stack"]).iter().any(|f| at(f, &file, line))).collect()
}

fn summary_of(l: &Value) -> (String, u64, u64, String) {
    (
        l["class"].as_str().unwrap_or("?").to_owned(),
        l["bytes"].as_u64().unwrap(),
        l["blocks"].as_u64().unwrap(),
        l["allocator"].as_str().unwrap_or("?").to_owned(),
    )
}

/// Asserts the records at each tag of `sites` are exactly the expected ones,
/// and that the first frame of each in the fixture file is the tagged line.
fn assert_sites(p: &Value, fixture_name: &str, sites: &[Site]) {
    let file = fixture_file(fixture_name);
    let mut by_tag: BTreeMap<&str, Vec<(String, u64, u64, String)>> = BTreeMap::new();
    for &(tag, class, bytes, blocks, allocator) in sites {
        by_tag.entry(tag).or_default().push((class.into(), bytes, blocks, allocator.into()));
    }
    for (tag, mut want) in by_tag {
        let line = line_of(fixture_name, tag);
        let found = records_at(p, fixture_name, tag);
        let mut got: Vec<_> = found.iter().map(|l| summary_of(l)).collect();
        want.sort();
        got.sort();
        assert_eq!(
            got,
            want,
            "records (class, bytes, blocks, allocator) allocated at {tag} ({fixture_name}:{line}); the report has:{}",
            show_leaks(p)
        );
        for l in found {
            let stack = frames(&l["stack"]);
            let first = stack.iter().find(|f| f.file.as_deref() == Some(file.as_str()));
            assert!(
                first.is_some_and(|f| f.line == Some(line)),
                "the first frame in {fixture_name} of a record at {tag} should be line {line}:{}",
                show_stack(&stack)
            );
        }
    }
}

/// Asserts every record with a frame in the fixture is at one of `tags`.
fn assert_nothing_else(p: &Value, fixture_name: &str, tags: &[&str]) {
    let file = fixture_file(fixture_name);
    let lines: Vec<u32> = tags.iter().map(|t| line_of(fixture_name, t)).collect();
    for l in leaks(p) {
        let stack = frames(&l["stack"]);
        let mine = stack.iter().any(|f| f.file.as_deref() == Some(file.as_str()));
        let known = stack.iter().any(|f| lines.iter().any(|&n| at(f, &file, n)));
        assert!(
            !mine || known,
            "unexpected record {} {} bytes in {} blocks:{}\nthe report has:{}",
            l["class"],
            l["bytes"],
            l["blocks"],
            show_stack(&stack),
            show_leaks(p)
        );
    }
}

fn tags(sites: &[Site]) -> Vec<&'static str> {
    let mut t: Vec<&str> = sites.iter().map(|s| s.0).collect();
    t.sort_unstable();
    t.dedup();
    t
}

fn assert_scan_complete(p: &Value, threads_stopped: u64) {
    let r = &p["reachability"];
    assert_eq!(r["state"], "complete", "reachability: {r}");
    assert_eq!(r["threads_stopped"].as_u64(), Some(threads_stopped), "reachability: {r}");
    assert_eq!(r["threads_not_stopped"].as_u64(), Some(0), "reachability: {r}");
}

// ---------------------------------------------------------------------------
// Valgrind

#[derive(Debug)]
struct VgFrame {
    function: Option<String>,
    /// dir/file
    file: Option<String>,
    line: Option<u32>,
}

#[derive(Debug)]
struct VgRecord {
    class: String,
    /// Direct bytes (without the indirectly lost blocks Valgrind adds to a
    /// definite record's total).
    bytes: u64,
    blocks: u64,
    stack: Vec<VgFrame>,
}

#[derive(Debug)]
struct Valgrind {
    records: Vec<VgRecord>,
    stdout: String,
    stderr: String,
}

fn xml_field(s: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let a = s.find(&open)? + open.len();
    let b = a + s[a..].find(&close)?;
    Some(
        s[a..b]
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

fn number(s: &str) -> u64 {
    s.trim().replace(',', "").parse().unwrap_or_else(|e| panic!("not a number {s:?}: {e}"))
}

fn parse_valgrind_xml(xml: &str) -> Vec<VgRecord> {
    let mut out = Vec::new();
    for chunk in xml.split("<error>").skip(1) {
        let chunk = &chunk[..chunk.find("</error>").unwrap_or(chunk.len())];
        let Some(kind) = xml_field(chunk, "kind") else { continue };
        let class = match kind.as_str() {
            "Leak_DefinitelyLost" => "definite",
            "Leak_IndirectlyLost" => "indirect",
            "Leak_PossiblyLost" => "possible",
            "Leak_StillReachable" => "reachable",
            _ => continue,
        };
        let text = xml_field(chunk, "text").unwrap_or_default();
        // "312 (56 direct, 256 indirect) bytes in 1 blocks ...": 56.
        let bytes = match (text.find('('), text.find(" direct,")) {
            (Some(a), Some(b)) if a < b => number(&text[a + 1..b]),
            _ => number(&xml_field(chunk, "leakedbytes").expect("leakedbytes")),
        };
        let blocks = number(&xml_field(chunk, "leakedblocks").expect("leakedblocks"));
        let stack = chunk
            .split("<frame>")
            .skip(1)
            .map(|f| VgFrame {
                function: xml_field(f, "fn"),
                file: match (xml_field(f, "dir"), xml_field(f, "file")) {
                    (Some(d), Some(n)) => Some(format!("{d}/{n}")),
                    (None, Some(n)) => Some(n),
                    _ => None,
                },
                line: xml_field(f, "line").map(|l| number(&l) as u32),
            })
            .collect();
        out.push(VgRecord { class: class.into(), bytes, blocks, stack });
    }
    out
}

fn run_valgrind(exe: &Path, args: &[String]) -> Valgrind {
    let xml = scratch("valgrind.xml");
    let mut cmd = Command::new("valgrind");
    cmd.args(["--tool=memcheck", "--leak-check=full", "--show-leak-kinds=all", "--num-callers=64", "--xml=yes"])
        .arg(format!("--xml-file={}", xml.display()))
        .arg(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let (code, stdout, stderr) = run_with_timeout(cmd, RUN_TIMEOUT);
    assert_eq!(code, Some(0), "valgrind {} exited with {code:?}\n{stdout}\n{stderr}", exe.display());
    let text = std::fs::read_to_string(&xml).unwrap_or_else(|e| panic!("{}: {e}\n{stderr}", xml.display()));
    Valgrind { records: parse_valgrind_xml(&text), stdout, stderr }
}

fn show_vg(v: &Valgrind) -> String {
    let mut s = String::new();
    for r in &v.records {
        s += &format!("\n  {} {} bytes in {} blocks:", r.class, r.bytes, r.blocks);
        for f in &r.stack {
            s += &format!(
                "\n    {} {}:{}",
                f.function.as_deref().unwrap_or("??"),
                f.file.as_deref().unwrap_or("??"),
                f.line.map_or("?".into(), |l| l.to_string())
            );
        }
    }
    s
}

/// Compares leakscope's records with Valgrind's, tag by tag: the same
/// classes, bytes and blocks (at `class_only` tags, just the classes: the
/// two tools load different libraries, so e.g. glibc's per-thread DTV has a
/// different size under each). Every record of either tool with a frame in
/// the fixture must be at one of the tags.
fn compare_with_valgrind(f: Fx, sites: &[Site], class_only: &[&str]) {
    let p = f.process();
    let Some(vg) = f.valgrind() else { return };
    let name = f.name;
    let file = fixture_file(name);
    let all_tags: Vec<&str> = tags(sites).into_iter().chain(class_only.iter().copied()).collect();
    let mut problems = Vec::new();
    for tag in &all_tags {
        let line = line_of(name, tag);
        let exact = !class_only.contains(tag);
        let mut ours: Vec<(String, u64, u64)> = records_at(p, name, tag)
            .iter()
            .map(|l| {
                let (c, b, n, _) = summary_of(l);
                if exact {
                    (c, b, n)
                } else {
                    (c, 0, 0)
                }
            })
            .collect();
        let mut theirs: Vec<(String, u64, u64)> = vg
            .records
            .iter()
            .filter(|r| r.stack.iter().any(|fr| fr.file.as_deref() == Some(file.as_str()) && fr.line == Some(line)))
            .map(|r| if exact { (r.class.clone(), r.bytes, r.blocks) } else { (r.class.clone(), 0, 0) })
            .collect();
        ours.sort();
        theirs.sort();
        if ours != theirs {
            problems.push(format!("  {tag} ({name}:{line}): leakscope {ours:?}, valgrind {theirs:?}"));
        }
    }
    let lines: Vec<u32> = all_tags.iter().map(|t| line_of(name, t)).collect();
    for r in &vg.records {
        let mine = r.stack.iter().any(|fr| fr.file.as_deref() == Some(file.as_str()));
        let known = r.stack.iter().any(|fr| fr.file.as_deref() == Some(file.as_str()) && lines.contains(&fr.line.unwrap_or(0)));
        if mine && !known {
            problems.push(format!("  valgrind has a record at no tag: {} {} bytes in {} blocks", r.class, r.bytes, r.blocks));
        }
    }
    assert_nothing_else(p, name, &all_tags);
    assert!(
        problems.is_empty(),
        "{name} at {:?}: leakscope and Valgrind disagree:\n{}\n--- leakscope:{}\n--- valgrind:{}",
        f.opt,
        problems.join("\n"),
        show_leaks(p),
        show_vg(vg)
    );
}

// ---------------------------------------------------------------------------
// Roots: globals, statics, TLS, a running thread's stack (reach_roots.c)

const ROOT_SITES: &[Site] = &[
    ("ROOT:global", "reachable", 32, 1, "malloc"),
    ("ROOT:chain", "reachable", 40, 1, "malloc"),
    ("ROOT:data", "reachable", 48, 1, "malloc"),
    ("ROOT:static", "reachable", 56, 1, "malloc"),
    ("ROOT:fnstatic", "reachable", 64, 1, "malloc"),
    ("ROOT:tls", "reachable", 72, 1, "malloc"),
    ("ROOT:thread-stack", "reachable", 80, 1, "malloc"),
    ("ROOT:thread-tls", "reachable", 88, 1, "malloc"),
    ("LOST:dead-frame", "definite", 96, 1, "malloc"),
    ("LOST:control", "definite", 112, 1, "malloc"),
];

/// glibc's DTV for the second thread, from pthread_create: pointed to only
/// past its start (glibc keeps `dtv + 1` in the thread control block), so
/// possibly lost for both tools.
const ROOT_OTHERS: &[&str] = &["OTHER:pthread_create"];

fn roots(opt: Opt) -> Fx {
    fx(ROOTS, opt)
}

fn roots_sites(opt: Opt, which: &[&str]) {
    let f = roots(opt);
    assert!(f.run().stdout.contains("reach_roots ready"), "{}", f.run().describe());
    let sites: Vec<Site> = ROOT_SITES.iter().copied().filter(|s| which.contains(&s.0)).collect();
    assert_sites(f.process(), ROOTS, &sites);
}

#[test]
fn global_and_static_pointers_are_roots_o0() {
    roots_sites(Opt::O0, &["ROOT:global", "ROOT:chain", "ROOT:data", "ROOT:static", "ROOT:fnstatic"]);
}

#[test]
fn global_and_static_pointers_are_roots_o2() {
    roots_sites(Opt::O2, &["ROOT:global", "ROOT:chain", "ROOT:data", "ROOT:static", "ROOT:fnstatic"]);
}

#[test]
fn thread_local_pointer_is_a_root() {
    for opt in [Opt::O0, Opt::O2] {
        roots_sites(opt, &["ROOT:tls"]);
    }
}

#[test]
fn stack_and_tls_of_a_thread_still_running_at_exit_are_roots() {
    for opt in [Opt::O0, Opt::O2] {
        roots_sites(opt, &["ROOT:thread-stack", "ROOT:thread-tls"]);
        assert_scan_complete(roots(opt).process(), 1);
    }
}

#[test]
fn stale_pointer_in_a_returned_functions_frame_is_no_root() {
    for opt in [Opt::O0, Opt::O2] {
        roots_sites(opt, &["LOST:dead-frame", "LOST:control"]);
    }
}

#[test]
fn roots_report_exactly_the_fixtures_records() {
    for opt in [Opt::O0, Opt::O2] {
        let p = roots(opt).process();
        assert_sites(p, ROOTS, ROOT_SITES);
        let mut all = tags(ROOT_SITES);
        all.extend_from_slice(ROOT_OTHERS);
        assert_nothing_else(p, ROOTS, &all);
        let s = &p["summary"];
        assert_eq!(s["reachable"]["bytes"].as_u64(), Some(32 + 40 + 48 + 56 + 64 + 72 + 80 + 88), "{s}");
        assert_eq!(s["reachable"]["blocks"].as_u64(), Some(8), "{s}");
        assert_eq!(s["definite"]["bytes"].as_u64(), Some(96 + 112), "{s}");
        assert_eq!(s["definite"]["blocks"].as_u64(), Some(2), "{s}");
    }
}

#[test]
fn roots_agree_with_valgrind_o0() {
    compare_with_valgrind(roots(Opt::O0), ROOT_SITES, ROOT_OTHERS);
}

#[test]
fn roots_agree_with_valgrind_o2() {
    compare_with_valgrind(roots(Opt::O2), ROOT_SITES, ROOT_OTHERS);
}

// ---------------------------------------------------------------------------
// main calls exit(): its frame is a root, the dead frames under it are not
// (reach_exit_frame.c)

const MAIN_FRAME: &[Site] = &[("ROOT:main-frame", "reachable", 112, 1, "malloc")];
const UNDER_EXIT: &[Site] = &[("LOST:under-exit", "definite", 64 * 32, 64, "malloc")];

fn exit_frame(opt: Opt) -> Fx {
    fx(EXIT_FRAME, opt)
}

#[test]
fn pointer_in_mains_frame_when_main_calls_exit_is_reachable() {
    for opt in [Opt::O0, Opt::O2] {
        let f = exit_frame(opt);
        assert!(f.run().stdout.contains("reach_exit_frame exiting"), "{}", f.run().describe());
        assert_sites(f.process(), EXIT_FRAME, MAIN_FRAME);
    }
}

/// The words just under main's frame held the only pointers to 64 blocks
/// when main called exit(): exit()'s own frames are there now, and none of
/// the words they leave unwritten may count as a root.
#[test]
fn stale_pointers_under_the_exit_frames_are_no_roots_o0() {
    assert_sites(exit_frame(Opt::O0).process(), EXIT_FRAME, UNDER_EXIT);
}

#[test]
fn stale_pointers_under_the_exit_frames_are_no_roots_o2() {
    assert_sites(exit_frame(Opt::O2).process(), EXIT_FRAME, UNDER_EXIT);
}

#[test]
fn exit_frame_agrees_with_valgrind_o0() {
    let sites: Vec<Site> = MAIN_FRAME.iter().chain(UNDER_EXIT).copied().collect();
    compare_with_valgrind(exit_frame(Opt::O0), &sites, &[]);
}

#[test]
fn exit_frame_agrees_with_valgrind_o2() {
    let sites: Vec<Site> = MAIN_FRAME.iter().chain(UNDER_EXIT).copied().collect();
    compare_with_valgrind(exit_frame(Opt::O2), &sites, &[]);
}

// ---------------------------------------------------------------------------
// Lost memory: cycle, tree, interior pointers, XOR (reach_lost.c)

const CYCLE: &[Site] = &[
    ("LOST:cycle-a", "definite", 1104, 1, "malloc"),
    ("LOST:cycle-b", "indirect", 1112, 1, "malloc"),
    ("LOST:cycle-c", "indirect", 1120, 1, "malloc"),
];
const TREE: &[Site] = &[
    ("LOST:tree-root", "definite", 56, 1, "calloc"),
    ("LOST:tree-kid", "indirect", 4 * 40, 4, "calloc"),
    ("LOST:tree-leaf", "indirect", 4 * 24, 4, "calloc"),
];
const INTERIOR: &[Site] = &[("LOST:interior", "possible", 100, 1, "calloc")];
const INNER: &[Site] = &[("REACH:inner-holder", "reachable", 16, 1, "calloc"), ("LOST:inner", "possible", 120, 1, "calloc")];
const XOR: &[Site] = &[("LOST:xor", "definite", 136, 1, "calloc")];
const KEPT: &[Site] = &[("REACH:kept", "reachable", 144, 1, "calloc")];
const PCHAIN: &[Site] = &[("LOST:pchain-head", "possible", 64, 1, "calloc"), ("LOST:pchain-tail", "possible", 72, 1, "calloc")];

fn lost_sites() -> Vec<Site> {
    [CYCLE, TREE, INTERIOR, INNER, XOR, KEPT].concat()
}

fn lost(opt: Opt) -> Fx {
    fx(LOST, opt)
}

fn lost_run_checked(opt: Opt) -> &'static Value {
    let o = lost(opt).run();
    assert!(o.stdout.contains("reach_lost done"), "{}", o.describe());
    o.process()
}

#[test]
fn lost_cycle_first_block_by_address_is_definite_the_others_indirect() {
    for opt in [Opt::O0, Opt::O2] {
        let o = lost(opt).run();
        // The fixture's precondition: the block allocated first is lowest.
        assert!(o.stdout.contains("cycle ordered"), "the cycle's blocks should be in allocation order: {}", o.describe());
        assert_sites(lost_run_checked(opt), LOST, CYCLE);
    }
}

#[test]
fn lost_tree_has_one_definite_root_and_indirect_descendants() {
    for opt in [Opt::O0, Opt::O2] {
        let o = lost(opt).run();
        // The root comes last by address: the leaves and children were group
        // leaders first and must have been folded into the root's group.
        assert!(o.stdout.contains("tree root last"), "{}", o.describe());
        assert_sites(lost_run_checked(opt), LOST, TREE);
    }
}

#[test]
fn block_reached_only_through_an_interior_pointer_is_possibly_lost() {
    for opt in [Opt::O0, Opt::O2] {
        let p = lost_run_checked(opt);
        assert_sites(p, LOST, INTERIOR);
        assert_sites(p, LOST, INNER);
    }
}

#[test]
fn pointer_hidden_by_xor_is_no_pointer() {
    for opt in [Opt::O0, Opt::O2] {
        assert_sites(lost_run_checked(opt), LOST, XOR);
    }
}

#[test]
fn lost_report_has_exactly_these_records_and_per_class_totals() {
    for opt in [Opt::O0, Opt::O2] {
        let p = lost_run_checked(opt);
        let sites = lost_sites();
        assert_sites(p, LOST, &sites);
        assert_nothing_else(p, LOST, &tags(&sites));
        assert_scan_complete(p, 0);
        let s = &p["summary"];
        let totals = |class: &str| (s[class]["bytes"].as_u64(), s[class]["blocks"].as_u64(), s[class]["records"].as_u64());
        assert_eq!(totals("definite"), (Some(1104 + 56 + 136), Some(3), Some(3)), "{s}");
        assert_eq!(totals("indirect"), (Some(1112 + 1120 + 160 + 96), Some(10), Some(4)), "{s}");
        assert_eq!(totals("possible"), (Some(100 + 120), Some(2), Some(2)), "{s}");
        assert_eq!(totals("reachable"), (Some(144 + 16), Some(2), Some(2)), "{s}");
        // leaked_* counts everything but reachable memory.
        assert_eq!(s["leaked_bytes"].as_u64(), Some(1296 + 2488 + 220), "{s}");
        assert_eq!(s["leaked_blocks"].as_u64(), Some(15), "{s}");
        assert_eq!(s["leak_records"].as_u64(), Some(9), "{s}");
    }
}

#[test]
fn lost_agrees_with_valgrind_o0() {
    compare_with_valgrind(lost(Opt::O0), &lost_sites(), &[]);
}

#[test]
fn lost_agrees_with_valgrind_o2() {
    compare_with_valgrind(lost(Opt::O2), &lost_sites(), &[]);
}

/// Valgrind: "possibly lost ... a chain of one or more pointers to the block
/// has been found, but at least one of the pointers is an interior-pointer".
/// A block whose only chain passes through a possibly lost block is itself
/// possibly lost, even though the last pointer points at its start.
#[test]
fn block_reached_only_from_a_possibly_lost_block_is_possibly_lost() {
    let f = lost(Opt::O2).with_args(&["pchain"]);
    let sites = [PCHAIN, KEPT].concat();
    assert_sites(f.process(), LOST, &sites);
    assert_nothing_else(f.process(), LOST, &tags(&sites));
}

#[test]
fn possible_chain_agrees_with_valgrind() {
    let f = lost(Opt::O2).with_args(&["pchain"]);
    compare_with_valgrind(f, &[PCHAIN, KEPT].concat(), &[]);
}

// ---------------------------------------------------------------------------
// glibc's own bookkeeping is no pointer of the program's (reach_arena.c)

const ARENA: &str = "reach_arena.c";
const ARENA_SITES: &[Site] = &[("LOST:before-free-chunk", "definite", 12 * 1096, 12, "malloc")];

/// glibc's main arena (libc's data) points at the headers of free chunks;
/// a header lies in the last word of the block before it when the block's
/// size leaves no slack. Lost blocks followed by free chunks stay definitely
/// lost (Valgrind agrees).
#[test]
fn lost_blocks_before_free_chunks_are_definite_despite_the_allocators_pointers() {
    for opt in [Opt::O0, Opt::O2] {
        let o = fx(ARENA, opt).run();
        let adjacent: u32 = o
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("adjacent pairs: "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("{}", o.describe()));
        assert!(adjacent > 0, "glibc should place most pairs next to each other: {}", o.describe());
        assert_sites(o.process(), ARENA, ARENA_SITES);
    }
}

#[test]
fn lost_blocks_before_free_chunks_agree_with_valgrind() {
    compare_with_valgrind(fx(ARENA, Opt::O2), ARENA_SITES, &[]);
}

// ---------------------------------------------------------------------------
// C++ containers leaked as a whole (reach_cxx.cpp)

const CXX_SITES: &[Site] = &[
    ("LOST:vector", "definite", 24, 1, "new"),
    ("LOST:vector", "indirect", 400, 1, "new"),
    ("LOST:strings-object", "definite", 24, 1, "new"),
    ("LOST:strings-buffer", "indirect", 3 * 32, 1, "new"),
    ("LOST:strings-heap", "indirect", 41 + 49 + 57, 3, "new"),
    ("LOST:map-object", "definite", 48, 1, "new"),
    ("LOST:map-nodes", "indirect", 3 * 48, 3, "new"),
    ("REACH:kept", "reachable", 24, 1, "new"),
    ("REACH:kept", "reachable", 80, 1, "new"),
];

fn cxx_fx(opt: Opt) -> Fx {
    fx(CXX, opt)
}

fn cxx_sites(opt: Opt, which: &[&str]) {
    let o = cxx_fx(opt).run();
    assert!(o.stdout.contains("reach_cxx done"), "{}", o.describe());
    let sites: Vec<Site> = CXX_SITES.iter().copied().filter(|s| which.contains(&s.0)).collect();
    assert_sites(o.process(), CXX, &sites);
}

#[test]
fn leaked_vector_object_is_definite_and_its_buffer_indirect() {
    for opt in [Opt::O0, Opt::O2] {
        cxx_sites(opt, &["LOST:vector"]);
    }
}

#[test]
fn leaked_vector_of_strings_owns_its_buffer_and_the_strings_indirectly() {
    for opt in [Opt::O0, Opt::O2] {
        cxx_sites(opt, &["LOST:strings-object", "LOST:strings-buffer", "LOST:strings-heap"]);
    }
}

#[test]
fn leaked_map_object_is_definite_and_its_nodes_indirect() {
    for opt in [Opt::O0, Opt::O2] {
        // The nodes point back into the map object (a cycle): the map object
        // leads the group only if it is first by address.
        assert!(cxx_fx(opt).run().stdout.contains("map object lowest"), "{}", cxx_fx(opt).run().describe());
        cxx_sites(opt, &["LOST:map-object", "LOST:map-nodes"]);
    }
}

#[test]
fn container_held_by_a_global_is_reachable_with_its_buffer() {
    for opt in [Opt::O0, Opt::O2] {
        cxx_sites(opt, &["REACH:kept"]);
        assert_nothing_else(cxx_fx(opt).process(), CXX, &tags(CXX_SITES));
    }
}

#[test]
fn cxx_containers_agree_with_valgrind_o0() {
    compare_with_valgrind(cxx_fx(Opt::O0), CXX_SITES, &[]);
}

#[test]
fn cxx_containers_agree_with_valgrind_o2() {
    compare_with_valgrind(cxx_fx(Opt::O2), CXX_SITES, &[]);
}

/// `new T[n]` (T with a destructor) returns the block's start + 8; Valgrind's
/// default heuristics ("newarray") count a block held by that pointer as
/// still reachable, not possibly lost (reach_newarray.cpp).
const NEWARRAY_SITES: &[Site] = &[
    ("REACH:counted-array", "reachable", 8 + 5 * 8, 1, "new[]"),
    ("REACH:string-array", "reachable", 8 + 3 * 32, 1, "new[]"),
    ("LOST:counted-array", "definite", 8 + 7 * 8, 1, "new[]"),
];

#[test]
fn array_new_held_by_the_pointer_new_returned_is_reachable() {
    let f = fx(NEWARRAY, Opt::O2);
    assert_sites(f.process(), NEWARRAY, NEWARRAY_SITES);
}

#[test]
fn array_new_agrees_with_valgrind() {
    compare_with_valgrind(fx(NEWARRAY, Opt::O2), NEWARRAY_SITES, &[]);
}

// ---------------------------------------------------------------------------
// Rust Rc cycle (reach_rc.rs)

const RC_SITES: &[Site] = &[
    ("LOST:rc-a", "definite", 1160, 1, "malloc"),
    ("LOST:rc-b", "indirect", 1160, 1, "malloc"),
    ("LOST:rc-owned", "indirect", 400, 1, "malloc"),
    ("REACH:kept-box", "reachable", 24, 1, "malloc"),
    ("REACH:kept-box", "reachable", 80, 1, "malloc"),
];

fn rc(opt: Opt) -> Fx {
    fx(RC, opt)
}

#[test]
fn rust_rc_cycle_is_one_definite_node_and_the_rest_indirect() {
    for opt in [Opt::O0, Opt::O2] {
        let o = rc(opt).run();
        assert!(o.stderr.contains("rc ordered"), "the first Rc should be first by address: {}", o.describe());
        assert!(o.stderr.contains("reach_rc done"), "{}", o.describe());
        assert_sites(o.process(), RC, RC_SITES);
        assert_nothing_else(o.process(), RC, &tags(RC_SITES));
    }
}

#[test]
fn rust_rc_cycle_agrees_with_valgrind_o0() {
    compare_with_valgrind(rc(Opt::O0), RC_SITES, &[]);
}

#[test]
fn rust_rc_cycle_agrees_with_valgrind_o2() {
    compare_with_valgrind(rc(Opt::O2), RC_SITES, &[]);
}

// ---------------------------------------------------------------------------
// Dynamic TLS: a dlopen'ed library's __thread variable (reach_dtls.c)

fn dtls_lib() -> &'static PathBuf {
    memo("dtls lib".into(), || cc_shared(DTLS_LIB, &["-g", "-O2"]))
}

fn dtls_run(with_thread: bool) -> &'static Outcome {
    memo(format!("dtls {with_thread}"), || {
        let lib = dtls_lib().to_str().unwrap().to_owned();
        let mut args = vec![lib.as_str()];
        if with_thread {
            args.push("thread");
        }
        run_ok(&fx(DTLS, Opt::O2).exe(), &args)
    })
}

fn dtls_valgrind(with_thread: bool) -> Option<&'static Valgrind> {
    if !valgrind_installed() {
        return None;
    }
    Some(memo(format!("dtls valgrind {with_thread}"), || {
        let mut args = vec![dtls_lib().to_str().unwrap().to_owned()];
        if with_thread {
            args.push("thread".into());
        }
        run_valgrind(&fx(DTLS, Opt::O2).exe(), &args)
    }))
}

const DTLS_MAIN: &[Site] =
    &[("ROOT:dtls-first-use", "reachable", 8, 1, "malloc"), ("ROOT:dtls-main", "reachable", 72, 1, "malloc")];

/// The main thread's dynamic TLS block (allocated by the dynamic loader,
/// found through the DTV) and the block its variable points to are in use.
#[test]
fn dynamic_tls_of_the_main_thread_is_a_root() {
    let o = dtls_run(false);
    assert!(o.stdout.contains("reach_dtls done"), "{}", o.describe());
    assert_sites(o.process(), DTLS, DTLS_MAIN);
    if let Some(vg) = dtls_valgrind(false) {
        assert!(vg.stdout.contains("reach_dtls done"), "{}", vg.stderr);
        let file = fixture_file(DTLS);
        for &(tag, class, bytes, blocks, _) in DTLS_MAIN {
            let line = line_of(DTLS, tag);
            let theirs: Vec<(&str, u64, u64)> = vg
                .records
                .iter()
                .filter(|r| r.stack.iter().any(|f| f.file.as_deref() == Some(file.as_str()) && f.line == Some(line)))
                .map(|r| (r.class.as_str(), r.bytes, r.blocks))
                .collect();
            assert_eq!(theirs, vec![(class, bytes, blocks)], "valgrind at {tag}:{}", show_vg(vg));
        }
    }
}

/// A thread that has its own instance of a dlopen'ed library's TLS is
/// running when main returns: the scan must not crash, and the pointer in
/// the thread's instance is not lost (Valgrind says possibly lost: glibc
/// keeps `dtv + 1` in the thread control block, an interior pointer).
#[test]
fn dynamic_tls_with_a_running_thread_is_scanned_without_crashing() {
    let o = dtls_run(true);
    assert!(o.stdout.contains("reach_dtls done"), "{}", o.describe());
    let p = o.process();
    assert_scan_complete(p, 1);
    assert_sites(p, DTLS, DTLS_MAIN);
    for tag in ["DTLS:thread-first-use", "DTLS:thread"] {
        let found = records_at(p, DTLS, tag);
        assert_eq!(found.len(), 1, "one record at {tag}:{}", show_leaks(p));
        let class = found[0]["class"].as_str().unwrap();
        assert!(class == "reachable" || class == "possible", "{tag} should not be lost:{}", show_leaks(p));
    }
    if let Some(vg) = dtls_valgrind(true) {
        let file = fixture_file(DTLS);
        let line = line_of(DTLS, "DTLS:thread");
        let theirs: Vec<&str> = vg
            .records
            .iter()
            .filter(|r| r.stack.iter().any(|f| f.file.as_deref() == Some(file.as_str()) && f.line == Some(line)))
            .map(|r| r.class.as_str())
            .collect();
        let ours = records_at(p, DTLS, "DTLS:thread")[0]["class"].as_str().unwrap();
        // At -O2 a stale copy of the pointer lies in the red zone under the
        // blocked thread's stack pointer: a thread stopped in a system call
        // has its red zone left out, so the verdicts agree.
        assert_eq!(theirs, vec![ours], "class at DTLS:thread, leakscope vs valgrind:{}", show_vg(vg));
    }
}

// ---------------------------------------------------------------------------
// --error-exitcode, --fail-on-possible and the text report

/// `leakscope run [opts] -- reach_lost MODE`, exit status.
fn lost_exit_code(opts: &[&str], mode: &str) -> Option<i32> {
    let exe = lost(Opt::O0).exe();
    let o = run_opts(opts, &exe, &[mode]);
    assert!(o.stdout.contains("reach_lost done"), "{}", o.describe());
    check_schema(o.json());
    o.code
}

#[test]
fn error_exitcode_ignores_still_reachable_memory() {
    assert_eq!(lost_exit_code(&["--error-exitcode", "9"], "reachable"), Some(0));
    assert_eq!(lost_exit_code(&["--error-exitcode", "9", "--fail-on-possible"], "reachable"), Some(0));
}

#[test]
fn error_exitcode_counts_possible_leaks_only_with_fail_on_possible() {
    assert_eq!(lost_exit_code(&["--error-exitcode", "9"], "possible"), Some(0));
    assert_eq!(lost_exit_code(&["--error-exitcode", "9", "--fail-on-possible"], "possible"), Some(9));
}

#[test]
fn error_exitcode_counts_definite_and_indirect_leaks() {
    assert_eq!(lost_exit_code(&["--error-exitcode", "9"], "definite"), Some(9));
    // Definite and indirect records (and possible ones, not counted here).
    assert_eq!(lost_exit_code(&["--error-exitcode", "7"], "all"), Some(7));
    // Without --error-exitcode, the program's own status.
    assert_eq!(lost_exit_code(&[], "all"), Some(0));
}

const TOTALS_LINE: &str = "definitely lost: 1296 bytes in 3 blocks; indirectly lost: 2488 bytes in 10 blocks; \
possibly lost: 220 bytes in 2 blocks; still reachable: 160 bytes in 2 blocks";

#[test]
fn text_report_hides_still_reachable_records_but_totals_them() {
    let o = lost(Opt::O0).run();
    let text = &o.stderr;
    assert!(text.contains("Definitely lost: 1104 bytes in 1 block allocated with malloc from:"), "{text}");
    assert!(text.contains("Indirectly lost: 160 bytes in 4 blocks allocated with calloc from:"), "{text}");
    assert!(text.contains("Possibly lost: 100 bytes in 1 block allocated with calloc from:"), "{text}");
    assert!(!text.contains("Still reachable:"), "reachable records are hidden by default:\n{text}");
    assert!(!text.contains(&format!("reach_lost.c:{}", line_of(LOST, "REACH:kept"))), "{text}");
    assert!(text.contains(TOTALS_LINE), "one line of per-class totals:\n{text}");
    assert!(text.contains("--show-reachable"), "the report says how to list them:\n{text}");
}

#[test]
fn text_report_lists_still_reachable_records_with_show_reachable() {
    let exe = lost(Opt::O0).exe();
    let o = run_opts(&["--show-reachable"], &exe, &[]);
    assert_eq!(o.code, Some(0), "{}", o.describe());
    let text = &o.stderr;
    let kept = "Still reachable: 144 bytes in 1 block allocated with calloc from:\n    #0 0x";
    assert!(text.contains(kept), "{text}");
    let line = format!("in make_kept {}:{}", fixture_file(LOST), line_of(LOST, "REACH:kept"));
    assert!(text.contains(&line), "the reachable record's stack:\n{text}");
    assert!(text.contains("Still reachable: 16 bytes in 1 block allocated with calloc from:"), "{text}");
    assert!(text.contains("Definitely lost: 1104 bytes in 1 block"), "{text}");
    assert!(text.contains(TOTALS_LINE), "{text}");
    assert!(!text.contains("records are not shown"), "{text}");
    // The JSON is the same either way: reachable records are always in it.
    assert_sites(o.process(), LOST, &lost_sites());
}
