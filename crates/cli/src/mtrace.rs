//! glibc mtrace logs (the seed article's fourth method): parsing, and
//! replaying them into leakscope's trace model so the usual analysis
//! (grouping, symbols, JSON) reports them.
//!
//! glibc's mtrace() writes one line per call while tracing is on:
//!
//! ```text
//! = Start
//! @ ./prog:[0x11ae] + 0x55568de9d4a0 0xa                    malloc: block, size
//! @ /lib/x86_64-linux-gnu/libc.so.6:(__strdup+1a)[0x9e9aa] + 0x55568de9d4c0 0x6
//! @ ./prog:[0x1218] < 0x55568de9d4c0                         realloc: the old block
//! @ ./prog:[0x1218] > 0x55568de9d540 0x64                    realloc: the new one
//! @ ./prog:[0x1228] - 0x55568de9d2a0                         free
//! ! 0x55568de9d540 0x1000                                    failed realloc
//! = End
//! ```
//!
//! The caller (`@ ...`) is the return address into the calling module:
//! since glibc 2.34 relative to the start of that module's mapping, before
//! as an absolute address; `(symbol+offset)` is given when the loader knows a
//! dynamic symbol for it. Either way, it becomes an ELF virtual address in
//! the module's file, for the symbolizer.

use crate::mtrace_elf::ElfFile;
use leakscope_format::model::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Who made a call, as the log says.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Caller {
    /// The module's name (`dli_fname`: the program as it was started, or a
    /// library's path); None when the log gives none (`@ [0x...]`).
    pub module: Option<String>,
    /// `(symbol+offset)`: the nearest dynamic symbol, and the caller's distance from it.
    pub symbol: Option<(String, i64)>,
    pub addr: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Start,
    End,
    /// `+ ADDR SIZE`: malloc, calloc, memalign... (a null ADDR: it failed).
    Alloc { addr: u64, size: u64 },
    /// `- ADDR`: free (or realloc to size 0).
    Free { addr: u64 },
    /// `< ADDR`: the block realloc was given.
    ReallocOld { addr: u64 },
    /// `> ADDR SIZE`: the block realloc returned.
    ReallocNew { addr: u64, size: u64 },
    /// `! ADDR SIZE`: realloc failed; the block stays.
    ReallocFailed { addr: u64, size: u64 },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// 1-based line in the log.
    pub line: usize,
    pub caller: Option<Caller>,
    pub op: Op,
}

/// Parses a whole log. Errors name the line: `LINE: what is wrong`.
pub fn parse(text: &[u8]) -> Result<Vec<Record>, String> {
    if text.is_empty() {
        return Err("the log is empty: mtrace() wrote nothing (on glibc 2.34 and later, mtrace() only traces \
                    when the program runs with LD_PRELOAD=libc_malloc_debug.so.0, and MALLOC_TRACE must name \
                    the log)"
            .into());
    }
    let mut records = Vec::new();
    let lines: Vec<&[u8]> = text.split(|&c| c == b'\n').collect();
    let last = lines.len() - 1;
    for (i, raw) in lines.iter().enumerate() {
        let n = i + 1;
        if i == last {
            if raw.is_empty() {
                break;
            }
            return Err(format!(
                "line {n}: the log ends in the middle of this line ({:?}): it is truncated (the program was \
                 killed, or the log was copied while being written)",
                String::from_utf8_lossy(raw)
            ));
        }
        let line = std::str::from_utf8(raw).map_err(|_| format!("line {n}: not text; is this an mtrace log?"))?;
        let (caller, op) = parse_line(line).map_err(|e| format!("line {n}: {e}: {line:?}"))?;
        records.push(Record { line: n, caller, op });
    }
    Ok(records)
}

fn parse_line(line: &str) -> Result<(Option<Caller>, Op), String> {
    match line {
        "= Start" => return Ok((None, Op::Start)),
        "= End" => return Ok((None, Op::End)),
        _ => {}
    }
    if let Some(rest) = line.strip_prefix("@ ") {
        // The caller ends at the last "] " followed by an operation (a path may hold "] ").
        let mut search = rest.len();
        let mut first_error = None;
        while let Some(i) = rest[..search].rfind("] ") {
            match parse_op(&rest[i + 2..]) {
                Ok(op) => return Ok((Some(parse_caller(&rest[..=i])?), op)),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
            search = i;
        }
        return Err(first_error.unwrap_or_else(|| {
            "a caller (\"@ ...\") must end with \"[0xADDRESS]\" and be followed by an operation".into()
        }));
    }
    Ok((None, parse_op(line)?))
}

fn parse_op(s: &str) -> Result<Op, String> {
    let mut it = s.split(' ');
    let tag = it.next().unwrap_or("");
    let args: Vec<&str> = it.collect();
    let want = |n: usize| -> Result<(), String> {
        if args.len() == n {
            Ok(())
        } else {
            Err(format!("\"{tag}\" takes {n} value(s), found {}", args.len()))
        }
    };
    Ok(match tag {
        "+" => {
            want(2)?;
            Op::Alloc { addr: pointer(args[0])?, size: size(args[1])? }
        }
        "-" => {
            want(1)?;
            Op::Free { addr: pointer(args[0])? }
        }
        "<" => {
            want(1)?;
            Op::ReallocOld { addr: pointer(args[0])? }
        }
        ">" => {
            want(2)?;
            Op::ReallocNew { addr: pointer(args[0])?, size: size(args[1])? }
        }
        "!" => {
            want(2)?;
            Op::ReallocFailed { addr: pointer(args[0])?, size: size(args[1])? }
        }
        "=" => return Err("unknown marker (mtrace writes \"= Start\" and \"= End\")".into()),
        _ => return Err("not an mtrace record (expected \"+\", \"-\", \"<\", \">\", \"!\", \"=\" or \"@\")".into()),
    })
}

/// `%p`: `0x...`, or `(nil)` for a null pointer.
fn pointer(s: &str) -> Result<u64, String> {
    if s == "(nil)" {
        return Ok(0);
    }
    hex(s).ok_or_else(|| format!("{s:?} is not an address"))
}

/// `%#lx`: `0x...`, or `0`.
fn size(s: &str) -> Result<u64, String> {
    if s == "0" {
        return Ok(0);
    }
    hex(s).ok_or_else(|| format!("{s:?} is not a size"))
}

fn hex(s: &str) -> Option<u64> {
    let d = s.strip_prefix("0x")?;
    if d.is_empty() || d.len() > 16 {
        return None;
    }
    u64::from_str_radix(d, 16).ok()
}

/// `fname:[0xADDR]`, `fname:(sym+off)[0xADDR]` or `[0xADDR]`.
fn parse_caller(s: &str) -> Result<Caller, String> {
    let bad = || format!("{s:?} is not a caller (\"FILE:[0xADDRESS]\", \"FILE:(SYMBOL+OFFSET)[0xADDRESS]\" or \"[0xADDRESS]\")");
    let open = s.rfind('[').ok_or_else(bad)?;
    let addr = s[open + 1..].strip_suffix(']').and_then(hex).ok_or_else(bad)?;
    let head = &s[..open];
    if head.is_empty() {
        return Ok(Caller { module: None, symbol: None, addr });
    }
    if let Some(inner) = head.strip_suffix(')') {
        let paren = inner.rfind(":(").ok_or_else(bad)?;
        let module = inner[..paren].to_owned();
        let sym = &inner[paren + 2..];
        let (name, sign, off) = match sym.rfind(['+', '-']) {
            Some(i) => (&sym[..i], if &sym[i..=i] == "+" { 1 } else { -1 }, &sym[i + 1..]),
            None => return Err(bad()),
        };
        // glibc writes the offset in hex, with "0x" before 2.34 and without since.
        let off = u64::from_str_radix(off.strip_prefix("0x").unwrap_or(off), 16).map_err(|_| bad())?;
        return Ok(Caller { module: Some(module), symbol: Some((name.to_owned(), sign * off as i64)), addr });
    }
    let module = head.strip_suffix(':').ok_or_else(bad)?;
    Ok(Caller { module: Some(module.to_owned()), symbol: None, addr })
}

// ---------------------------------------------------------------------------
// Replaying a log.

/// A bad release found in the log, besides what the trace model holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadFree {
    pub line: usize,
    /// For double frees: the line of the first free.
    pub first_freed_line: Option<usize>,
    /// The line that allocated the block, when known.
    pub alloc_line: Option<usize>,
}

/// A log replayed into the trace model (one process).
pub struct Replayed {
    pub trace: Trace,
    /// One per `trace.processes[0].errors` entry, in the same order.
    pub bad_frees: Vec<BadFree>,
    /// Log line of each block still allocated, by address.
    pub alloc_lines: HashMap<u64, usize>,
    /// For each frame (a synthetic return address) of the trace: how to show it.
    pub frames: HashMap<u64, FrameInfo>,
    pub sections: usize,
    pub records: usize,
    /// Allocations at an address the log had not seen freed (freed while not traced?).
    pub reused: usize,
    /// Module names the log gives that could not be found on disk.
    pub missing_modules: Vec<String>,
}

/// A caller placed in a module file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameInfo {
    pub caller: Caller,
    /// The call's ELF virtual address (return address) in `path`, when it could be placed.
    pub vaddr: Option<u64>,
    pub path: Option<PathBuf>,
}

#[derive(Clone, Copy)]
struct Live {
    size: u64,
    stack: u32,
    kind: AllocKind,
    line: usize,
}

#[derive(Clone, Copy)]
struct Freed {
    live: Live,
    free_stack: u32,
    release: ReleaseKind,
    line: usize,
}

/// Distance between the made-up load bases of the modules.
const MODULE_SPACING: u64 = 1 << 40;

struct Modules<'a> {
    binary: Option<&'a Path>,
    search: &'a [PathBuf],
    by_name: HashMap<String, Option<usize>>,
    files: Vec<(PathBuf, ElfFile)>,
    missing: Vec<String>,
}

impl Modules<'_> {
    /// The module file for a name in the log.
    fn find(&mut self, name: &str) -> Option<usize> {
        if let Some(&i) = self.by_name.get(name) {
            return i;
        }
        let path = self.locate(name);
        let i = path.and_then(|p| {
            let canon = p.canonicalize().unwrap_or(p);
            if let Some(i) = self.files.iter().position(|(q, _)| *q == canon) {
                return Some(i);
            }
            let elf = ElfFile::read(&canon)?;
            self.files.push((canon, elf));
            Some(self.files.len() - 1)
        });
        if i.is_none() && !name.is_empty() {
            self.missing.push(name.to_owned());
        }
        self.by_name.insert(name.to_owned(), i);
        i
    }

    fn locate(&self, name: &str) -> Option<PathBuf> {
        if let Some(b) = self.binary {
            let base = |p: &Path| p.file_name().map(|n| n.to_owned());
            if name.is_empty() || Path::new(name) == b || base(Path::new(name)) == base(b) {
                return Some(b.to_path_buf());
            }
        }
        let p = Path::new(name);
        if name.is_empty() {
            return None;
        }
        if p.is_absolute() {
            return p.is_file().then(|| p.to_path_buf());
        }
        self.search.iter().map(|d| d.join(p)).find(|c| c.is_file())
    }
}

/// Replays `records`. `binary` is the traced program (callers naming it, or
/// its file name, are in it); relative module names are looked for in each
/// of `search` in turn.
pub fn replay(records: &[Record], binary: Option<&Path>, search: &[PathBuf]) -> Replayed {
    let mut mods = Modules { binary, search, by_name: HashMap::new(), files: Vec::new(), missing: Vec::new() };
    // Stacks: one per distinct caller (index 0: none).
    let mut stacks: Vec<Vec<u64>> = vec![Vec::new()];
    let mut stack_of: HashMap<Caller, u32> = HashMap::new();
    let mut frames: HashMap<u64, FrameInfo> = HashMap::new();
    // Callers are placed after every module is known (bases follow module order).
    let mut placed: Vec<(Caller, Option<(usize, u64)>)> = Vec::new();
    for r in records {
        let Some(c) = &r.caller else { continue };
        if stack_of.contains_key(c) {
            continue;
        }
        let at = c.module.as_deref().and_then(|m| mods.find(m)).and_then(|i| {
            let elf = &mods.files[i].1;
            place(elf, c).map(|v| (i, v))
        });
        stack_of.insert(c.clone(), placed.len() as u32 + 1);
        placed.push((c.clone(), at));
    }
    for (k, (c, at)) in placed.iter().enumerate() {
        let ra = match at {
            Some((i, vaddr)) => MODULE_SPACING * (*i as u64 + 1) + vaddr,
            // Not placed: keep the log's address, outside every made-up module.
            None => c.addr & (MODULE_SPACING - 1),
        };
        debug_assert_eq!(stacks.len(), k + 1);
        stacks.push(vec![ra]);
        frames.insert(
            ra,
            FrameInfo {
                caller: c.clone(),
                vaddr: at.map(|(_, v)| v),
                path: at.map(|(i, _)| mods.files[i].0.clone()),
            },
        );
    }
    let modules: Vec<Module> = mods
        .files
        .iter()
        .enumerate()
        .map(|(i, (path, elf))| {
            let base = MODULE_SPACING * (i as u64 + 1);
            let (lo, hi) = elf.range();
            Module {
                path: path.to_string_lossy().into_owned(),
                base,
                lo: base + lo,
                hi: base + hi,
                build_id: elf.build_id.clone(),
                unloaded: false,
            }
        })
        .collect();

    let stack = |r: &Record| r.caller.as_ref().map_or(0, |c| stack_of[c]);
    let mut live: HashMap<u64, Live> = HashMap::new();
    let mut freed: HashMap<u64, Freed> = HashMap::new();
    let mut errors = Vec::new();
    let mut bad_frees = Vec::new();
    let (mut allocs, mut frees, mut sections, mut reused) = (0u64, 0u64, 0usize, 0usize);
    let mut seen_start = false;
    for r in records {
        let (addr, size, alloc_kind, release_kind) = match r.op {
            Op::Start => {
                sections += 1;
                seen_start = true;
                continue;
            }
            Op::End | Op::ReallocFailed { .. } => continue,
            Op::Alloc { addr, size } => (addr, size, Some(AllocKind::Malloc), None),
            Op::ReallocNew { addr, size } => (addr, size, Some(AllocKind::Realloc), None),
            Op::Free { addr } => (addr, 0, None, Some(ReleaseKind::Free)),
            Op::ReallocOld { addr } => (addr, 0, None, Some(ReleaseKind::Realloc)),
        };
        if let Some(kind) = alloc_kind {
            allocs += 1;
            if addr == 0 {
                continue;
            }
            if live.insert(addr, Live { size, stack: stack(r), kind, line: r.line }).is_some() {
                reused += 1;
            }
            freed.remove(&addr);
            continue;
        }
        let Some(how) = release_kind else { continue };
        frees += 1;
        if let Some(l) = live.remove(&addr) {
            freed.insert(addr, Freed { live: l, free_stack: stack(r), release: how, line: r.line });
            continue;
        }
        let before = freed.get(&addr);
        errors.push(HeapError {
            kind: if before.is_some() { ErrorKind::DoubleFree } else { ErrorKind::InvalidFree },
            release: how,
            addr,
            region: Region::Unknown,
            stack: stack(r),
            block: before.map(|f| ErrorBlock {
                addr,
                size: f.live.size,
                kind: f.live.kind,
                alloc_stack: f.live.stack,
                first_release: Some(f.release),
                free_stack: f.free_stack,
            }),
        });
        bad_frees.push(BadFree {
            line: r.line,
            first_freed_line: before.map(|f| f.line),
            alloc_line: before.map(|f| f.live.line),
        });
    }
    if !seen_start && !records.is_empty() {
        sections = 1;
    }
    let mut blocks: Vec<Block> = live
        .iter()
        .map(|(&addr, l)| Block { addr, size: l.size, kind: l.kind, stack: l.stack, flags: 0, class: LeakClass::Unknown })
        .collect();
    blocks.sort_by_key(|b| b.addr);
    let alloc_lines = live.iter().map(|(&a, l)| (a, l.line)).collect();
    let process = ProcessTrace {
        pid: 0,
        parent_pid: 0,
        exec_index: 0,
        argv: binary.map(|b| vec![b.to_string_lossy().into_owned()]).unwrap_or_default(),
        exe: binary
            .map(|b| b.canonicalize().unwrap_or_else(|_| b.to_path_buf()).to_string_lossy().into_owned())
            .unwrap_or_default(),
        ending: Ending::Unknown,
        // The log is all there is: nothing more to wait for.
        finalized: true,
        modules,
        stacks,
        blocks,
        errors,
        stats: Stats { allocs, frees, preload: Vec::new() },
        scan: Scan::default(),
        maps: Maps::default(),
        locations: Vec::new(),
    };
    Replayed {
        trace: Trace { processes: vec![process] },
        bad_frees,
        alloc_lines,
        frames,
        sections,
        records: records.len(),
        reused,
        missing_modules: mods.missing,
    }
}

/// The caller's ELF virtual address in `elf`.
fn place(elf: &ElfFile, c: &Caller) -> Option<u64> {
    // glibc 2.34+: relative to the mapping start.
    let relative = elf.map_start().checked_add(c.addr)?;
    if elf.in_code(relative) {
        return Some(relative);
    }
    // Older glibc: absolute; placed by the symbol when there is one...
    if let Some((name, off)) = &c.symbol {
        if let Some(v) = elf.symbol(name).and_then(|s| s.checked_add_signed(*off)) {
            if elf.in_code(v) {
                return Some(v);
            }
        }
    }
    // ... else right only for a program loaded at its link address.
    elf.in_code(c.addr).then_some(c.addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Vec<Record> {
        parse(text.as_bytes()).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn every_record_form_parses() {
        let r = ok("= Start\n\
                    @ ./a:[0x11ae] + 0x55568de9d4a0 0xa\n\
                    @ /lib/x86_64-linux-gnu/libc.so.6:(__strdup+1a)[0x9e9aa] + 0x55568de9d4c0 0x6\n\
                    @ ./a:[0x1218] < 0x55568de9d4c0\n\
                    @ ./a:[0x1218] > 0x55568de9d540 0x64\n\
                    @ [0x7f00000011] - 0x55568de9d540\n\
                    @ ./old:(main-0x10)[0x401150] + (nil) 0\n\
                    - 0x10\n\
                    ! 0x20 0x1000\n\
                    = End\n");
        assert_eq!(r.len(), 10);
        assert_eq!(r[0].op, Op::Start);
        assert_eq!(
            r[1],
            Record {
                line: 2,
                caller: Some(Caller { module: Some("./a".into()), symbol: None, addr: 0x11ae }),
                op: Op::Alloc { addr: 0x55568de9d4a0, size: 10 },
            }
        );
        let c = r[2].caller.as_ref().unwrap();
        assert_eq!(c.module.as_deref(), Some("/lib/x86_64-linux-gnu/libc.so.6"));
        assert_eq!(c.symbol, Some(("__strdup".into(), 0x1a)));
        assert_eq!(r[3].op, Op::ReallocOld { addr: 0x55568de9d4c0 });
        assert_eq!(r[4].op, Op::ReallocNew { addr: 0x55568de9d540, size: 0x64 });
        assert_eq!(r[5].caller, Some(Caller { module: None, symbol: None, addr: 0x7f00000011 }));
        assert_eq!(r[6].caller.as_ref().unwrap().symbol, Some(("main".into(), -0x10)));
        assert_eq!(r[6].op, Op::Alloc { addr: 0, size: 0 });
        assert_eq!((r[7].caller.clone(), r[7].op.clone()), (None, Op::Free { addr: 0x10 }));
        assert_eq!(r[8].op, Op::ReallocFailed { addr: 0x20, size: 0x1000 });
        assert_eq!(r[9].op, Op::End);
    }

    #[test]
    fn paths_with_spaces_and_brackets_parse() {
        let r = ok("@ /opt/my app/lib[1].so:(f+0x4)[0x1234] - 0x99\n");
        let c = r[0].caller.as_ref().unwrap();
        assert_eq!(c.module.as_deref(), Some("/opt/my app/lib[1].so"));
        assert_eq!(c.symbol, Some(("f".into(), 4)));
        assert_eq!(r[0].op, Op::Free { addr: 0x99 });
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse(b"= Start\n+ 0x10 0x8\n+ 0x10\n").unwrap_err();
        assert!(e.starts_with("line 3: \"+\" takes 2 value(s), found 1"), "{e}");
        let e = parse(b"= Start\nhello world\n").unwrap_err();
        assert!(e.starts_with("line 2: not an mtrace record"), "{e}");
        let e = parse(b"= Start\n@ ./a:[0x11ae] + 0x55 0xzz\n").unwrap_err();
        assert!(e.starts_with("line 2: "), "{e}");
        assert!(e.contains("\"0xzz\" is not a size"), "{e}");
        let e = parse(b"= Start\n@ ./a:0x11ae + 0x55 0x8\n").unwrap_err();
        assert!(e.starts_with("line 2: ") && e.contains("caller"), "{e}");
        let e = parse(b"= Start\n+ 0x10 0x8\n- 0x1").unwrap_err();
        assert!(e.starts_with("line 3: the log ends in the middle of this line"), "{e}");
        let e = parse(b"").unwrap_err();
        assert!(e.contains("libc_malloc_debug.so"), "{e}");
        let e = parse(b"= Start\n\xff\xfe\n").unwrap_err();
        assert!(e.starts_with("line 2: not text"), "{e}");
        let e = parse(b"= Stop\n").unwrap_err();
        assert!(e.starts_with("line 1: unknown marker"), "{e}");
    }

    #[test]
    fn replay_finds_unfreed_blocks_and_bad_frees() {
        let r = ok("= Start\n\
                    @ ./a:[0x100] + 0x1000 0xa\n\
                    @ ./a:[0x110] + 0x2000 0x1e\n\
                    @ ./a:[0x120] - 0x1000\n\
                    @ ./a:[0x130] - 0x1000\n\
                    @ ./a:[0x140] - 0x3000\n\
                    @ ./a:[0x150] < 0x4000\n\
                    @ ./a:[0x150] > 0x5000 0x20\n\
                    = End\n");
        let rep = replay(&r, None, &[]);
        let p = &rep.trace.processes[0];
        let blocks: Vec<(u64, u64)> = p.blocks.iter().map(|b| (b.addr, b.size)).collect();
        assert_eq!(blocks, [(0x2000, 30), (0x5000, 32)]);
        assert_eq!(p.errors.len(), 3);
        assert_eq!(p.errors[0].kind, ErrorKind::DoubleFree);
        let b = p.errors[0].block.as_ref().unwrap();
        assert_eq!((b.size, b.first_release), (10, Some(ReleaseKind::Free)));
        assert_eq!(rep.bad_frees[0], BadFree { line: 5, first_freed_line: Some(4), alloc_line: Some(2) });
        assert_eq!((p.errors[1].kind, p.errors[1].release), (ErrorKind::InvalidFree, ReleaseKind::Free));
        assert_eq!((p.errors[2].kind, p.errors[2].release), (ErrorKind::InvalidFree, ReleaseKind::Realloc));
        assert_eq!((p.stats.allocs, p.stats.frees), (3, 4));
        assert_eq!(rep.sections, 1);
        // No file for ./a: callers stay where the log put them, each its own stack.
        assert!(p.modules.is_empty());
        assert_eq!(rep.missing_modules, ["./a"]);
        assert_eq!(p.stacks[p.blocks[0].stack as usize], [0x110]);
        assert_eq!(rep.alloc_lines[&0x5000], 8);
    }
}
