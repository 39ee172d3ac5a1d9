//! Address symbolisation for leakscope: turns code addresses recorded in a
//! traced process into function, file, line and inline chain, after the
//! process is gone.
//!
//! Backend: blazesym, one [`Source::Elf`] per module with ELF virtual offsets
//! (`address - base`). blazesym finds DWARF in the binary, through
//! `.gnu_debuglink` (build-id directories first), and follows dwz
//! `.gnu_debugaltlink` / `.debug_sup` supplementary files itself. What it does
//! not do, and this crate adds:
//! - a build-id lookup (`<dir>/.build-id/xx/yyyy.debug`) for binaries that have
//!   no debug link at all, or that changed / vanished since the run;
//! - per-address fallbacks (DWARF, then the build-id debug file, then the plain
//!   ELF symbol table) so one bad lookup never hides what another source knows;
//! - never erroring or panicking: every failure degrades to fewer details.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use blazesym::symbolize::source::{Elf, Source};
use blazesym::symbolize::{Input, Sym, Symbolized};

pub use leakscope_format::model::Module;

/// One frame of a resolved address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SymFrame {
    /// Demangled function name (C++ and Rust).
    pub function: Option<String>,
    /// Source file; absolute when DWARF gives a compilation directory.
    pub file: Option<String>,
    pub line: Option<u32>,
    /// True for frames inlined into the next one.
    pub inlined: bool,
}

/// Everything known about one address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedAddr {
    /// Path of the module containing the address, None if none does.
    pub module: Option<String>,
    /// Innermost first: inlined frames first, the containing function last.
    /// Never empty.
    pub frames: Vec<SymFrame>,
}

const DEFAULT_DEBUG_DIRS: [&str; 2] = ["/usr/lib/debug", "/lib/debug"];

/// Which files to consult for one module (decided once per path and build id).
#[derive(Clone, Debug, Default)]
struct Plan {
    /// The module file itself, if it exists and is the one that was loaded.
    binary: Option<PathBuf>,
    /// A separate debug file found by build id, if any.
    build_id_file: Option<PathBuf>,
}

/// A symbolizer that keeps parsed files cached across calls.
pub struct Symbolizer {
    inner: blazesym::symbolize::Symbolizer,
    debug_dirs: Vec<PathBuf>,
    plans: HashMap<(String, Vec<u8>), Plan>,
}

impl Default for Symbolizer {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Symbolizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Symbolizer").field("debug_dirs", &self.debug_dirs).finish_non_exhaustive()
    }
}

impl Symbolizer {
    /// Debug directories `/usr/lib/debug` and `/lib/debug`.
    pub fn new() -> Self {
        Self::with_debug_dirs(DEFAULT_DEBUG_DIRS.iter().map(PathBuf::from).collect())
    }

    /// Search these directories (and their `.build-id` subdirectories) for
    /// separate debug files, in order.
    pub fn with_debug_dirs(dirs: Vec<PathBuf>) -> Self {
        Self { inner: build_inner(&dirs), debug_dirs: dirs, plans: HashMap::new() }
    }

    /// Parse the debug information of the ELF file at `path` now (by
    /// resolving its entry point), so that resolving its addresses later is
    /// quick: `run` does this for the program and libc while the program
    /// runs. Decompressing libc6-dbg's DWARF alone takes ~30 ms.
    pub fn warm_up(&mut self, path: &Path) {
        let Some(entry) = elf_entry(path) else { return };
        let module = Module {
            path: path.to_string_lossy().into_owned(),
            base: 0,
            lo: 0,
            hi: u64::MAX,
            build_id: Vec::new(),
            unloaded: false,
        };
        self.resolve_module(&module, &[entry]);
    }

    /// Resolve `addrs` (exact code addresses, not return addresses) in the
    /// address space described by `modules`. Same length and order as `addrs`.
    pub fn symbolize(&mut self, modules: &[Module], addrs: &[u64]) -> Vec<ResolvedAddr> {
        let mut out: Vec<ResolvedAddr> =
            addrs.iter().map(|_| ResolvedAddr { module: None, frames: vec![unknown_frame()] }).collect();

        // Batch per module: blazesym is much faster given all of a file's
        // addresses at once.
        let mut groups: HashMap<usize, Vec<usize>> = HashMap::new();
        for (i, &addr) in addrs.iter().enumerate() {
            if let Some(m) = pick_module(modules, addr) {
                groups.entry(m).or_default().push(i);
            }
        }
        let mut groups: Vec<_> = groups.into_iter().collect();
        groups.sort_unstable_by_key(|(m, _)| *m);

        for (m, idxs) in groups {
            let module = &modules[m];
            for &i in &idxs {
                out[i].module = Some(module.path.clone());
            }
            let vaddrs: Vec<u64> = idxs.iter().map(|&i| addrs[i].wrapping_sub(module.base)).collect();
            let resolved = self.resolve_module(module, &vaddrs);
            for (&i, frames) in idxs.iter().zip(resolved) {
                if let Some(frames) = frames {
                    out[i].frames = frames;
                }
            }
        }
        out
    }

    /// Frames for each virtual offset in one module; None where nothing is known.
    fn resolve_module(&mut self, module: &Module, vaddrs: &[u64]) -> Vec<Option<Vec<SymFrame>>> {
        let mut best: Vec<(Rank, Option<Vec<SymFrame>>)> = vec![(Rank::Unknown, None); vaddrs.len()];
        if is_pseudo_module(&module.path) {
            return best.into_iter().map(|(_, f)| f).collect();
        }
        let plan = self.plan(module);

        // Sources in order of preference, each asked only about addresses
        // that earlier ones could not fully resolve.
        let mut sources: Vec<(&Path, bool)> = Vec::new();
        if let Some(b) = &plan.binary {
            sources.push((b, true));
        }
        if let Some(d) = &plan.build_id_file {
            sources.push((d, true));
        }
        if let Some(b) = &plan.binary {
            // Plain symbol table: for when DWARF parsing itself fails
            // (e.g. a debug link whose CRC does not match).
            sources.push((b, false));
        }

        for (path, debug_syms) in sources {
            let want = if debug_syms { Rank::Located } else { Rank::Named };
            let todo: Vec<usize> = (0..vaddrs.len()).filter(|&i| best[i].0 < want).collect();
            if todo.is_empty() {
                break;
            }
            let batch: Vec<u64> = todo.iter().map(|&i| vaddrs[i]).collect();
            let Some(results) = self.lookup(path, debug_syms, &batch) else { continue };
            for (&i, (rank, frames)) in todo.iter().zip(results) {
                if rank > best[i].0 {
                    best[i] = (rank, Some(frames));
                }
            }
        }

        // DWARF gave a location but no name (e.g. a dwz supplementary file
        // that is missing): take the name from the symbol table.
        let nameless: Vec<usize> = (0..vaddrs.len())
            .filter(|&i| best[i].0 == Rank::Located)
            .filter(|&i| best[i].1.as_ref().and_then(|f| f.last()).is_some_and(|f| f.function.is_none()))
            .collect();
        if let (false, Some(elf)) = (nameless.is_empty(), plan.binary.as_ref().or(plan.build_id_file.as_ref())) {
            let batch: Vec<u64> = nameless.iter().map(|&i| vaddrs[i]).collect();
            for (&i, (_, frames)) in nameless.iter().zip(self.lookup(elf, false, &batch).unwrap_or_default()) {
                if let (Some(mine), Some(name)) = (best[i].1.as_mut().and_then(|f| f.last_mut()), frames.last()) {
                    mine.function = name.function.clone();
                }
            }
        }
        best.into_iter().map(|(_, f)| f).collect()
    }

    /// Decide (once per path and build id) which files describe `module`.
    fn plan(&mut self, module: &Module) -> Plan {
        let key = (module.path.clone(), module.build_id.clone());
        if let Some(p) = self.plans.get(&key) {
            return p.clone();
        }
        let mut path = PathBuf::from(&module.path);
        // readlink("/proc/self/exe") of a deleted binary; if a file is back
        // under the plain name, the build id check below decides.
        if let (false, Some(plain)) = (path.exists(), module.path.strip_suffix(" (deleted)")) {
            path = PathBuf::from(plain);
        }
        let disk_id = if path.is_file() {
            blazesym::helper::read_elf_build_id(&path).ok().flatten().map(|id| id.into_owned())
        } else {
            None
        };
        // A file rebuilt since the run would give confidently wrong answers:
        // only trust it when its build id matches the recorded one (prefix
        // match, since the recorder may truncate long ids).
        let stale = match &disk_id {
            Some(d) if !module.build_id.is_empty() => {
                !(d.starts_with(&module.build_id) || module.build_id.starts_with(d))
            }
            _ => false,
        };
        let binary = (path.is_file() && !stale).then_some(path);
        let id = if !module.build_id.is_empty() { Some(module.build_id.clone()) } else { disk_id };
        let build_id_file = id.and_then(|id| self.find_build_id_file(&id));
        let plan = Plan { binary, build_id_file };
        self.plans.insert(key, plan.clone());
        plan
    }

    /// `<dir>/.build-id/<first byte>/<rest>.debug` in the first debug dir that has it.
    fn find_build_id_file(&self, id: &[u8]) -> Option<PathBuf> {
        // Anything this short is not a real build id.
        if id.len() < 8 {
            return None;
        }
        let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let rel = Path::new(".build-id").join(&hex[..2]).join(format!("{}.debug", &hex[2..]));
        self.debug_dirs.iter().map(|d| d.join(&rel)).find(|p| p.is_file())
    }

    /// One blazesym batch. None if the whole file could not be used.
    fn lookup(&mut self, path: &Path, debug_syms: bool, vaddrs: &[u64]) -> Option<Vec<(Rank, Vec<SymFrame>)>> {
        let mut elf = Elf::new(path);
        elf.debug_syms = debug_syms;
        let src = Source::Elf(elf);
        let inner = &self.inner;
        // blazesym parses untrusted files; a bug there must not take down
        // the report.
        let result = catch_unwind(AssertUnwindSafe(|| {
            inner.symbolize(&src, Input::VirtOffset(vaddrs)).ok().map(|syms| {
                syms.iter()
                    .map(|s| match s {
                        Symbolized::Sym(sym) => convert(sym),
                        Symbolized::Unknown(_) => (Rank::Unknown, vec![unknown_frame()]),
                    })
                    .collect::<Vec<_>>()
            })
        }));
        match result {
            Ok(r) => r.filter(|r| r.len() == vaddrs.len()),
            Err(_) => {
                // Its caches may be half-updated: start afresh.
                self.inner = build_inner(&self.debug_dirs);
                None
            }
        }
    }
}

/// How much a lookup told us about an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Rank {
    Unknown,
    /// Function name only.
    Named,
    /// Function name and source location.
    Located,
}

fn build_inner(dirs: &[PathBuf]) -> blazesym::symbolize::Symbolizer {
    blazesym::symbolize::Symbolizer::builder()
        .enable_code_info(true)
        .enable_inlined_fns(true)
        .enable_demangling(false)
        .set_debug_dirs(Some(dirs))
        .build()
}

/// The entry point (`e_entry`) of a little-endian ELF64 file.
fn elf_entry(path: &Path) -> Option<u64> {
    use std::io::Read;
    let mut head = [0u8; 32];
    std::fs::File::open(path).ok()?.read_exact(&mut head).ok()?;
    (head.starts_with(b"\x7fELF") && head[4] == 2 && head[5] == 1)
        .then(|| u64::from_le_bytes(head[24..32].try_into().unwrap_or_default()))
        .filter(|&e| e != 0)
}

fn unknown_frame() -> SymFrame {
    SymFrame { function: None, file: None, line: None, inlined: false }
}

/// blazesym lists inlined functions outermost first, each with the location
/// inside *that* function; the outer symbol's location is the call site of the
/// first inlined call. We want innermost first.
fn convert(sym: &Sym<'_>) -> (Rank, Vec<SymFrame>) {
    let name = |n: &str| (!n.is_empty()).then(|| clean_name(n));
    let mut frames: Vec<SymFrame> = sym
        .inlined
        .iter()
        .rev()
        .map(|f| {
            let (file, line) = location(f.code_info.as_ref());
            SymFrame { function: name(&f.name), file, line, inlined: true }
        })
        .collect();
    let (file, line) = location(sym.code_info.as_deref());
    frames.push(SymFrame { function: name(&sym.name), file, line, inlined: false });
    let rank = if sym.code_info.is_some() {
        Rank::Located
    } else if frames.last().is_some_and(|f| f.function.is_some()) {
        Rank::Named
    } else {
        Rank::Unknown
    };
    (rank, frames)
}

/// glibc calls its own functions through hidden aliases (`libc_hidden_def`)
/// whose DWARF linkage name is `__GI_<name>`; users know them as `<name>`.
/// Mangled names (`_Z…` Itanium C++ and legacy Rust, `_R…` Rust v0) are
/// demangled; any other name is a plain C name and kept as it is.
pub fn clean_name(name: &str) -> String {
    if let Some(rest) = name.strip_prefix("__GI_").filter(|r| !r.is_empty()) {
        return rest.to_string();
    }
    if name.starts_with("_R") || name.starts_with("_ZN") {
        if let Ok(d) = rustc_demangle::try_demangle(name) {
            // `{:#}` leaves out the hash suffix of legacy Rust names.
            let s = format!("{d:#}");
            if s != name {
                return s;
            }
        }
    }
    if name.starts_with("_Z") {
        if let Ok(sym) = cpp_demangle::Symbol::new(name) {
            if let Ok(d) = sym.demangle() {
                return d;
            }
        }
    }
    name.to_string()
}

fn location(ci: Option<&blazesym::symbolize::CodeInfo<'_>>) -> (Option<String>, Option<u32>) {
    match ci {
        // `to_path` joins the directory (comp_dir-based) and the file name.
        Some(ci) => (Some(ci.to_path().to_string_lossy().into_owned()), ci.line.filter(|&l| l != 0)),
        None => (None, None),
    }
}

/// Modules with no file behind them: the vDSO, anonymous or special mappings.
fn is_pseudo_module(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    path.is_empty() || path.starts_with('[') || name.starts_with("linux-vdso") || name.starts_with("linux-gate")
}

/// The module containing `addr`: the last still-loaded one, else the last one.
fn pick_module(modules: &[Module], addr: u64) -> Option<usize> {
    let contains = |m: &Module| m.lo <= addr && addr < m.hi;
    let mut any = None;
    for (i, m) in modules.iter().enumerate().rev() {
        if contains(m) {
            if !m.unloaded {
                return Some(i);
            }
            any.get_or_insert(i);
        }
    }
    any
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(path: &str, lo: u64, hi: u64, unloaded: bool) -> Module {
        Module { path: path.into(), base: lo, lo, hi, build_id: vec![], unloaded }
    }

    #[test]
    fn picks_loaded_then_last() {
        let ms =
            [module("a", 0x1000, 0x2000, false), module("b", 0x1000, 0x2000, true), module("c", 0x1800, 0x3000, true)];
        assert_eq!(pick_module(&ms, 0x1900), Some(0));
        assert_eq!(pick_module(&ms, 0x2800), Some(2));
        assert_eq!(pick_module(&ms, 0x2000), Some(2));
        assert_eq!(pick_module(&ms, 0x3000), None);
        let ms = [module("b", 0x1000, 0x2000, true), module("c", 0x1000, 0x3000, true)];
        assert_eq!(pick_module(&ms, 0x1000), Some(1));
    }

    #[test]
    fn pseudo_modules() {
        for p in ["", "[vdso]", "linux-vdso.so.1", "/x/linux-gate.so.1"] {
            assert!(is_pseudo_module(p), "{p}");
        }
        assert!(!is_pseudo_module("/lib/x86_64-linux-gnu/libc.so.6"));
    }
}
