//! Symbolisation against fixtures compiled on the fly, checked against
//! binutils `addr2line -f -i -C` as the oracle.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use leakscope_symbolize::{Module, ResolvedAddr, SymFrame, Symbolizer};

// ---------------------------------------------------------------- helpers

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("leakscope-sym-").tempdir().unwrap()
}

/// Write `src` to `dir/name` and compile it with `compiler args`, output `dir/out`.
fn compile(dir: &Path, compiler: &str, name: &str, src: &str, out: &str, args: &[&str]) -> PathBuf {
    let src_path = dir.join(name);
    fs::write(&src_path, src).unwrap();
    let out_path = dir.join(out);
    // Relative source name: DWARF then holds comp_dir + "name", which must be joined.
    run(Command::new(compiler).args(args).arg(name).arg("-o").arg(&out_path).current_dir(dir));
    out_path
}

/// (function, file, line) per frame, innermost first, as addr2line sees it.
type Oracle = Vec<(Option<String>, Option<String>, Option<u32>)>;

fn addr2line(bin: &Path, vaddr: u64) -> Oracle {
    let out = run(Command::new("addr2line").args(["-f", "-i", "-C", "-e"]).arg(bin).arg(format!("{vaddr:#x}")));
    let lines: Vec<&str> = out.lines().collect();
    lines
        .chunks(2)
        .map(|c| {
            let func = (c[0] != "??").then(|| c[0].to_string());
            // "file:line (discriminator N)"
            let loc = c[1].split(" (").next().unwrap();
            let (file, line) = loc.rsplit_once(':').unwrap();
            let file = (file != "??").then(|| file.to_string());
            let line = line.parse::<u32>().ok().filter(|&l| l != 0);
            (func, file, line)
        })
        .collect()
}

fn as_oracle(r: &ResolvedAddr) -> Oracle {
    r.frames.iter().map(|f| (f.function.clone(), f.file.clone(), f.line)).collect()
}

/// Check a result against addr2line, including the inlined flags.
fn check_against_oracle(r: &ResolvedAddr, bin: &Path, vaddr: u64) {
    let want = addr2line(bin, vaddr);
    assert!(want.iter().all(|(f, _, l)| f.is_some() && l.is_some()), "oracle has no answer for {vaddr:#x}: {want:?}");
    assert_eq!(as_oracle(r), want, "at {vaddr:#x}: {r:#?}");
    let n = r.frames.len();
    for (i, f) in r.frames.iter().enumerate() {
        assert_eq!(f.inlined, i + 1 < n, "inlined flag of frame {i} at {vaddr:#x}: {r:#?}");
    }
}

/// Call-site addresses (return address - 1, as the CLI passes them) of the
/// calls inside `func` whose target mentions `target`.
fn call_sites(bin: &Path, func: &str, target: &str) -> Vec<u64> {
    let out = run(Command::new("objdump").args(["-d", "-C", "--no-show-raw-insn"]).arg(bin));
    let header = format!("<{func}>:");
    let mut in_func = false;
    let mut insns: Vec<(u64, String)> = Vec::new();
    let mut result = Vec::new();
    let flush = |insns: &mut Vec<(u64, String)>, result: &mut Vec<u64>| {
        for w in insns.windows(2) {
            if w[0].1.starts_with("call") && w[0].1.contains(target) {
                result.push(w[1].0 - 1);
            }
        }
        insns.clear();
    };
    for line in out.lines() {
        if line.ends_with(">:") {
            flush(&mut insns, &mut result);
            in_func = line.ends_with(&header);
            continue;
        }
        if !in_func {
            continue;
        }
        let Some((addr, rest)) = line.trim_start().split_once(":\t") else { continue };
        if let Ok(a) = u64::from_str_radix(addr, 16) {
            insns.push((a, rest.trim().to_string()));
        }
    }
    flush(&mut insns, &mut result);
    assert!(!result.is_empty(), "no call to {target} in {func} of {}", bin.display());
    result
}

/// ELF address of a symbol (from the full symbol table, else dynamic).
fn symbol_addr(bin: &Path, name: &str) -> Option<u64> {
    for args in [&["-C"][..], &["-C", "-D"][..]] {
        let out = run(Command::new("nm").args(args).arg(bin));
        for line in out.lines() {
            let mut it = line.splitn(3, ' ');
            let (Some(a), Some(_), Some(n)) = (it.next(), it.next(), it.next()) else { continue };
            if n == name {
                return u64::from_str_radix(a, 16).ok();
            }
        }
    }
    None
}

fn build_id(bin: &Path) -> Vec<u8> {
    let out = run(Command::new("readelf").arg("-n").arg(bin));
    let hex = out.lines().find_map(|l| l.trim().strip_prefix("Build ID: ")).expect("no build id").trim();
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect()
}

fn module(path: &Path, base: u64, build_id: Vec<u8>) -> Module {
    // Generous range: fixtures are tiny.
    let lo = if base == 0 { 0x40_0000 } else { base };
    Module { path: path.to_string_lossy().into_owned(), base, lo, hi: lo + 0x100_0000, build_id, unloaded: false }
}

fn unknown() -> Vec<SymFrame> {
    vec![SymFrame { function: None, file: None, line: None, inlined: false }]
}

/// An empty debug dir, so the machine's /usr/lib/debug never interferes.
fn no_debug_dirs(dir: &Path) -> Symbolizer {
    let d = dir.join("no-debug");
    fs::create_dir_all(&d).unwrap();
    Symbolizer::with_debug_dirs(vec![d])
}

const C_SRC: &str = r#"#include <stdio.h>
#include <stdlib.h>
__attribute__((noipa)) void *sink(size_t n) {
    void *p = malloc(n);
    __asm__ volatile("" : : "r"(p) : "memory"); /* no tail call */
    return p;
}
static inline __attribute__((always_inline)) void *inner(size_t n) {
    void *p = sink(n * 2);
    return p;
}
static inline __attribute__((always_inline)) void *outer(size_t n) {
    void *p = inner(n + 1);
    return p;
}
int main(int argc, char **argv) {
    void *p = outer((size_t)argc);
    printf("%p %s\n", p, argv[0]);
    return 0;
}
"#;

// ---------------------------------------------------------------- C + inlining

#[test]
fn c_inline_chain_non_pie() {
    let dir = tmp();
    let bin = compile(dir.path(), "gcc", "prog.c", C_SRC, "prog", &["-O2", "-g", "-no-pie", "-fno-pie"]);
    let sites = call_sites(&bin, "main", "<sink>");
    let mut sym = no_debug_dirs(dir.path());
    let res = sym.symbolize(&[module(&bin, 0, vec![])], &sites);
    assert_eq!(res.len(), sites.len());
    for (r, &a) in res.iter().zip(&sites) {
        assert_eq!(r.module.as_deref(), Some(bin.to_str().unwrap()));
        check_against_oracle(r, &bin, a);
        let names: Vec<_> = r.frames.iter().map(|f| f.function.as_deref().unwrap()).collect();
        assert_eq!(names, ["inner", "outer", "main"]);
        assert_eq!(r.frames[0].file.as_deref(), Some(dir.path().join("prog.c").to_str().unwrap()));
    }
    // The callee itself: a plain, non-inlined frame.
    let malloc_sites = call_sites(&bin, "sink", "malloc");
    let r = &sym.symbolize(&[module(&bin, 0, vec![])], &malloc_sites)[0];
    check_against_oracle(r, &bin, malloc_sites[0]);
    assert_eq!(r.frames.len(), 1);
}

#[test]
fn c_inline_chain_pie_with_bias() {
    let dir = tmp();
    let bin = compile(dir.path(), "gcc", "prog.c", C_SRC, "prog", &["-O2", "-g", "-pie", "-fPIE"]);
    let sites = call_sites(&bin, "main", "<sink>");
    let base = 0x5555_0000_0000u64;
    let runtime: Vec<u64> = sites.iter().map(|a| a + base).collect();
    let mut sym = no_debug_dirs(dir.path());
    let res = sym.symbolize(&[module(&bin, base, build_id(&bin))], &runtime);
    for (r, &a) in res.iter().zip(&sites) {
        check_against_oracle(r, &bin, a);
        assert_eq!(r.frames.len(), 3);
    }
    // The ELF address itself, unbiased, is outside the module.
    let r = &sym.symbolize(&[module(&bin, base, vec![])], &sites[..1])[0];
    assert_eq!(r.module, None);
    assert_eq!(r.frames, unknown());
}

// ---------------------------------------------------------------- demangling

const CPP_SRC: &str = r#"#include <cstdio>
namespace ns {
struct K {
    static void *make(int n);
};
__attribute__((noinline)) void *K::make(int n) { return new char[n]; }
template <class T> __attribute__((noinline)) T *alloc(int n) { return new T[n]; }
}
int main(int argc, char **) {
    void *a = ns::K::make(argc);
    long *b = ns::alloc<long>(argc);
    std::printf("%p %p\n", a, (void *)b);
}
"#;

#[test]
fn cpp_names_are_demangled() {
    let dir = tmp();
    for (debug, name) in [(true, "prog-g"), (false, "prog-nodebug")] {
        let args: &[&str] = if debug { &["-O1", "-g"] } else { &["-O1"] };
        let bin = compile(dir.path(), "g++", "prog.cc", CPP_SRC, name, args);
        let mut sym = no_debug_dirs(dir.path());
        for (func, want) in
            [("ns::K::make(int)", "ns::K::make(int)"), ("long* ns::alloc<long>(int)", "long* ns::alloc<long>(int)")]
        {
            let sites = call_sites(&bin, func, "operator new");
            let base = 0x5600_0000_0000;
            let r = &sym.symbolize(&[module(&bin, base, vec![])], &[sites[0] + base])[0];
            let last = r.frames.last().unwrap();
            assert_eq!(last.function.as_deref(), Some(want), "{name}: {r:#?}");
            if debug {
                check_against_oracle(r, &bin, sites[0]);
            } else {
                assert_eq!((last.file.as_deref(), last.line), (None, None), "{r:#?}");
            }
        }
    }
}

const RUST_SRC: &str = r#"
mod store {
    #[inline(never)]
    pub fn make<T: Clone + Default>(n: usize) -> Vec<T> {
        let mut v = Vec::with_capacity(n);
        v.resize(n, T::default());
        v
    }
}
fn main() {
    let n = std::env::args().count();
    let v: Vec<u64> = store::make(n);
    println!("{}", v.len());
}
"#;

#[test]
fn rust_names_are_demangled_legacy_and_v0() {
    let dir = tmp();
    for mangling in ["legacy", "v0"] {
        let out = format!("fixture_{mangling}");
        let bin = compile(
            dir.path(),
            "rustc",
            "fixture.rs",
            RUST_SRC,
            &out,
            &[
                &["-g", "-C", "opt-level=0", "--crate-name", &out][..],
                if mangling == "v0" { &["-C", "symbol-mangling-version=v0"][..] } else { &[][..] },
            ]
            .concat(),
        );
        // The call from main into the generic, monomorphised function.
        let base = 0x5555_5555_0000;
        let out_s = run(Command::new("objdump").args(["-d", "-C", "--no-show-raw-insn"]).arg(&bin));
        // The demangled symbol name differs between manglings; find main's name.
        let main_name = out_s
            .lines()
            .filter_map(|l| l.strip_suffix(">:").and_then(|l| l.split_once(" <")).map(|(_, n)| n.to_string()))
            .find(|n| n.starts_with(&format!("{out}::main")))
            .expect("no main");
        let sites = call_sites(&bin, &main_name, "store::make");
        let mut sym = no_debug_dirs(dir.path());
        let r = &sym.symbolize(&[module(&bin, base, vec![])], &[sites[0] + base])[0];
        let f = r.frames.last().unwrap();
        assert_eq!(f.function.as_deref(), Some(format!("{out}::main").as_str()), "{r:#?}");
        assert_eq!(f.file.as_deref(), Some(dir.path().join("fixture.rs").to_str().unwrap()));
        assert_eq!(f.line, Some(12));
        // Inside the generic: the call to `resize`.
        let make = out_s
            .lines()
            .filter_map(|l| l.strip_suffix(">:").and_then(|l| l.split_once(" <")).map(|(_, n)| n.to_string()))
            .find(|n| n.contains("store::make"))
            .expect("no make");
        let sites = call_sites(&bin, &make, "resize");
        let r = &sym.symbolize(&[module(&bin, base, vec![])], &[sites[0] + base])[0];
        let f = r.frames.last().unwrap();
        let name = f.function.as_deref().unwrap();
        assert!(name.starts_with(&format!("{out}::store::make")), "{mangling}: {name}");
        assert!(!name.contains("17h") && !name.starts_with("_R") && !name.starts_with("_ZN"), "{mangling}: {name}");
        if mangling == "v0" {
            // v0 keeps generic arguments.
            assert!(name.contains("u64"), "{name}");
        }
        assert_eq!(f.line, Some(6), "{r:#?}");
        // The oracle agrees on file and line.
        let want = addr2line(&bin, sites[0]);
        assert_eq!((f.file.clone(), f.line), (want[0].1.clone(), want[0].2));
    }
}

// ---------------------------------------------------------------- separate debug info

/// Build the C fixture and split it: `prog.full` (oracle), `prog.debug`,
/// and `prog` with debug info stripped.
fn split_fixture(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let full = compile(dir, "gcc", "prog.c", C_SRC, "prog.full", &["-O2", "-g", "-Wl,--build-id"]);
    let debug = dir.join("prog.debug");
    let bin = dir.join("prog");
    run(Command::new("objcopy").arg("--only-keep-debug").arg(&full).arg(&debug));
    run(Command::new("strip").arg("--strip-debug").arg(&full).arg("-o").arg(&bin));
    (full, debug, bin)
}

fn check_split(sym: &mut Symbolizer, bin: &Path, full: &Path) {
    let sites = call_sites(full, "main", "<sink>");
    let base = 0x7000_0000_0000;
    let runtime: Vec<u64> = sites.iter().map(|a| a + base).collect();
    let res = sym.symbolize(&[module(bin, base, vec![])], &runtime);
    for (r, &a) in res.iter().zip(&sites) {
        check_against_oracle(r, full, a);
        assert_eq!(r.frames.len(), 3);
    }
}

#[test]
fn debug_info_through_gnu_debuglink() {
    let dir = tmp();
    let (full, debug, bin) = split_fixture(dir.path());
    run(Command::new("objcopy")
        .arg(format!("--add-gnu-debuglink={}", debug.display()))
        .arg(&bin)
        .current_dir(dir.path()));
    check_split(&mut no_debug_dirs(dir.path()), &bin, &full);
}

#[test]
fn debug_info_by_build_id_only() {
    let dir = tmp();
    let (full, debug, bin) = split_fixture(dir.path());
    let id = build_id(&bin);
    let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
    let dbg_dir = dir.path().join("dbg");
    let target = dbg_dir.join(".build-id").join(&hex[..2]).join(format!("{}.debug", &hex[2..]));
    fs::create_dir_all(target.parent().unwrap()).unwrap();
    // Moved away: nothing next to the binary.
    fs::rename(&debug, &target).unwrap();

    // Without the debug dir only the symbol table is left.
    let sites = call_sites(&full, "main", "<sink>");
    let r = &no_debug_dirs(dir.path()).symbolize(&[module(&bin, 0x1000_0000, vec![])], &[sites[0] + 0x1000_0000])[0];
    assert_eq!(r.frames.len(), 1);
    assert_eq!(r.frames[0].function.as_deref(), Some("main"));
    assert_eq!(r.frames[0].file, None);

    // No debug link at all: found by the binary's build id.
    let mut sym = Symbolizer::with_debug_dirs(vec![dbg_dir.clone()]);
    check_split(&mut sym, &bin, &full);

    // A debug link whose target is nowhere but in the build-id tree.
    let linked = dir.path().join("prog-linked");
    fs::copy(&target, dir.path().join("elsewhere.debug")).unwrap();
    run(Command::new("objcopy")
        .arg("--add-gnu-debuglink=elsewhere.debug")
        .arg(&bin)
        .arg(&linked)
        .current_dir(dir.path()));
    fs::remove_file(dir.path().join("elsewhere.debug")).unwrap();
    check_split(&mut Symbolizer::with_debug_dirs(vec![dbg_dir.clone()]), &linked, &full);

    // Fully stripped binary (not even a symbol table) plus its debug file.
    let stripped = dir.path().join("prog-stripped");
    run(Command::new("strip").arg("--strip-all").arg(&bin).arg("-o").arg(&stripped));
    check_split(&mut Symbolizer::with_debug_dirs(vec![dbg_dir.clone()]), &stripped, &full);

    // Recorded as "(deleted)" by readlink(/proc/self/exe), same build: the file is used.
    let deleted = format!("{} (deleted)", bin.display());
    let r = &no_debug_dirs(dir.path())
        .symbolize(&[module(Path::new(&deleted), 0x1000_0000, id.clone())], &[sites[0] + 0x1000_0000])[0];
    assert_eq!(r.module.as_deref(), Some(deleted.as_str()));
    assert_eq!(r.frames[0].function.as_deref(), Some("main"), "{r:#?}");

    // The binary is gone, but the recorded build id still finds its debug file.
    let gone = dir.path().join("deleted-prog");
    let sites = call_sites(&full, "main", "<sink>");
    let r = &sym.symbolize(&[module(&gone, 0x1000_0000, id.clone())], &[sites[0] + 0x1000_0000])[0];
    check_against_oracle(r, &full, sites[0]);
}

/// dwz moves DIEs shared by several binaries into a supplementary file that
/// each one names in `.gnu_debugaltlink` (Debian's -dbgsym packages do this).
#[test]
fn dwz_supplementary_file_through_debugaltlink() {
    if Command::new("dwz").arg("--version").output().is_err() {
        eprintln!("SKIPPED: dwz not installed (apt-get install dwz)");
        return;
    }
    let dir = tmp();
    let p1 = compile(dir.path(), "gcc", "prog.c", C_SRC, "p1", &["-O2", "-g"]);
    let p2 = compile(dir.path(), "gcc", "prog2.c", &C_SRC.replace("%p %s", "%p: %s"), "p2", &["-O2", "-g"]);
    // dwz leaves code alone: the untouched copy is the oracle (binutils'
    // addr2line itself gets inlined names wrong through alt links).
    let orig = dir.path().join("p1.orig");
    fs::copy(&p1, &orig).unwrap();
    let common = dir.path().join("common.debug");
    run(Command::new("dwz").arg("-m").arg(&common).arg("-M").arg(&common).arg(&p1).arg(&p2));
    let sections = run(Command::new("readelf").args(["-S", "-W"]).arg(&p1));
    assert!(sections.contains(".gnu_debugaltlink"), "dwz made no alt link");
    let sites = call_sites(&p1, "main", "<sink>");
    let base = 0x5555_0000_0000;
    let runtime: Vec<u64> = sites.iter().map(|a| a + base).collect();
    let res = no_debug_dirs(dir.path()).symbolize(&[module(&p1, base, vec![])], &runtime);
    for (r, &a) in res.iter().zip(&sites) {
        check_against_oracle(r, &orig, a);
        assert_eq!(r.frames.len(), 3);
    }

    // Moved out of place: found by its build id in a debug dir.
    let id = build_id(&common);
    let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
    let dbg_dir = dir.path().join("dbg");
    let target = dbg_dir.join(".build-id").join(&hex[..2]).join(format!("{}.debug", &hex[2..]));
    fs::create_dir_all(target.parent().unwrap()).unwrap();
    fs::rename(&common, &target).unwrap();
    let res = Symbolizer::with_debug_dirs(vec![dbg_dir]).symbolize(&[module(&p1, base, vec![])], &runtime);
    for (r, &a) in res.iter().zip(&sites) {
        check_against_oracle(r, &orig, a);
    }

    // Gone: still no failure, and at least the symbol table's answer.
    fs::remove_file(&target).unwrap();
    let res = no_debug_dirs(dir.path()).symbolize(&[module(&p1, base, vec![])], &runtime);
    for r in &res {
        assert_eq!(r.frames.last().unwrap().function.as_deref(), Some("main"), "{r:#?}");
    }
}

// ---------------------------------------------------------------- no debug info

#[test]
fn symbol_table_only_and_fully_stripped() {
    let dir = tmp();
    let bin = compile(dir.path(), "gcc", "prog.c", C_SRC, "prog", &["-O2", "-no-pie", "-fno-pie"]);
    let sites = call_sites(&bin, "main", "<sink>");
    let sink = symbol_addr(&bin, "sink").unwrap();
    let mut sym = no_debug_dirs(dir.path());
    let res = sym.symbolize(&[module(&bin, 0, vec![])], &[sites[0], sink + 1]);
    let frame = |f: &str| vec![SymFrame { function: Some(f.into()), file: None, line: None, inlined: false }];
    assert_eq!(res[0].frames, frame("main"));
    assert_eq!(res[1].frames, frame("sink"));

    let stripped = dir.path().join("prog-stripped");
    run(Command::new("strip").arg("--strip-all").arg(&bin).arg("-o").arg(&stripped));
    let res = sym.symbolize(&[module(&stripped, 0, vec![])], &[sites[0], sink + 1]);
    for r in &res {
        assert_eq!(r.module.as_deref(), Some(stripped.to_str().unwrap()));
        assert_eq!(r.frames, unknown());
    }
}

// ---------------------------------------------------------------- glibc

#[test]
fn glibc_strdup_through_libc6_dbg() {
    let libc = Path::new("/lib/x86_64-linux-gnu/libc.so.6");
    if !libc.exists() {
        eprintln!("SKIPPED: no {}", libc.display());
        return;
    }
    let id = build_id(libc);
    let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
    let dbg = PathBuf::from(format!("/usr/lib/debug/.build-id/{}/{}.debug", &hex[..2], &hex[2..]));
    if !dbg.exists() {
        eprintln!("SKIPPED: {} missing (install libc6-dbg)", dbg.display());
        return;
    }
    let sites = call_sites(libc, "__strdup@@GLIBC_2.2.5", "malloc");
    let base = 0x7f12_3400_0000;
    let m = Module {
        path: libc.to_string_lossy().into_owned(),
        base,
        lo: base,
        hi: base + fs::metadata(libc).unwrap().len() + 0x10_0000,
        build_id: id,
        unloaded: false,
    };
    let runtime: Vec<u64> = sites.iter().map(|a| a + base).collect();
    let res = Symbolizer::new().symbolize(&[m], &runtime);
    for (r, &a) in res.iter().zip(&sites) {
        eprintln!("{a:#x}: {r:?}");
        let f = r.frames.last().unwrap();
        assert!(matches!(f.function.as_deref(), Some("strdup" | "__strdup")), "{r:#?}");
        assert!(f.file.as_deref().is_some_and(|p| p.ends_with("string/strdup.c")), "{r:#?}");
        assert!(f.line.is_some(), "{r:#?}");
        // binutils follows the same debug link / build id.
        let want = addr2line(libc, a);
        assert_eq!(as_oracle(r).iter().map(|x| x.2).collect::<Vec<_>>(), want.iter().map(|x| x.2).collect::<Vec<_>>());
    }
}

// ---------------------------------------------------------------- bad input

#[test]
fn garbage_missing_and_pseudo_modules_never_fail() {
    let dir = tmp();
    let p = |n: &str| dir.path().join(n);
    fs::write(p("garbage"), (0..65536u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect::<Vec<u8>>())
        .unwrap();
    fs::write(p("text"), "hello, not an ELF\n").unwrap();
    fs::write(p("empty"), "").unwrap();
    fs::create_dir(p("a-directory")).unwrap();
    let bin = compile(dir.path(), "gcc", "prog.c", C_SRC, "prog", &["-O2", "-g"]);
    let data = fs::read(&bin).unwrap();
    fs::write(p("truncated-header"), &data[..40]).unwrap();
    fs::write(p("truncated-half"), &data[..data.len() / 2]).unwrap();
    let mut flipped = data.clone();
    for b in flipped.iter_mut().skip(64).step_by(7) {
        *b ^= 0x5a;
    }
    fs::write(p("corrupted"), &flipped).unwrap();
    // Same program, another build: build id mismatch means a stale file.
    let other = compile(dir.path(), "gcc", "prog2.c", &C_SRC.replace("%p %s", "%p  %s"), "prog2", &["-O2", "-g"]);
    fs::copy(&other, p("rebuilt")).unwrap();

    let names = [
        "garbage",
        "text",
        "empty",
        "a-directory",
        "missing-file",
        "truncated-header",
        "truncated-half",
        "corrupted",
        "rebuilt",
    ];
    let mut modules: Vec<Module> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let lo = 0x1000_0000 * (i as u64 + 1);
            Module {
                path: p(n).to_string_lossy().into_owned(),
                base: lo,
                lo,
                hi: lo + 0x1000_0000,
                build_id: build_id(&bin),
                unloaded: false,
            }
        })
        .collect();
    for (i, n) in ["[vdso]", "linux-vdso.so.1", ""].iter().enumerate() {
        let lo = 0x7000_0000_0000 + 0x10_0000 * i as u64;
        modules.push(Module { path: n.to_string(), base: lo, lo, hi: lo + 0x1000, build_id: vec![], unloaded: false });
    }
    // Nonsense ranges and a base above the address.
    modules.push(Module {
        path: "/nonexistent".into(),
        base: u64::MAX,
        lo: 0xffff_0000_0000_0000,
        hi: u64::MAX,
        build_id: vec![1],
        unloaded: true,
    });
    modules.push(Module {
        path: bin.to_string_lossy().into_owned(),
        base: 0,
        lo: 0x9000,
        hi: 0x8000,
        build_id: vec![],
        unloaded: false,
    });

    let mut addrs: Vec<u64> =
        modules.iter().flat_map(|m| [m.lo, m.lo.wrapping_add(0x1139), m.hi.wrapping_sub(1)]).collect();
    addrs.extend([0, 1, 0x8800, u64::MAX, 0xdead_beef_0000]);

    let mut sym = Symbolizer::new();
    for _ in 0..2 {
        let res = sym.symbolize(&modules, &addrs);
        assert_eq!(res.len(), addrs.len());
        for (r, &a) in res.iter().zip(&addrs) {
            assert!(!r.frames.is_empty());
            let in_module = modules.iter().any(|m| m.lo <= a && a < m.hi);
            assert_eq!(r.module.is_some(), in_module, "{a:#x}: {r:?}");
            if !in_module {
                assert_eq!(r.frames, unknown());
            }
            // Nothing but the corrupted copy may yield names; no file here has a usable line table.
            if r.module.as_deref().is_some_and(|m| !m.ends_with("corrupted")) {
                assert_eq!(r.frames, unknown(), "{a:#x}: {r:?}");
            }
        }
    }
    assert!(sym.symbolize(&modules, &[]).is_empty());
    assert_eq!(sym.symbolize(&[], &[0x1234]), vec![ResolvedAddr { module: None, frames: unknown() }]);
}
