//! The report model: what leakscope found, symbolised, per process.
//!
//! These types *are* the public JSON contract `leakscope-report/1`, documented
//! field by field in `docs/json-report.md`. Adding a field keeps the schema
//! version; renaming, removing or changing the meaning or type of one bumps it.

use leakscope_format::model::{AllocKind, Ending, ErrorKind, Region, ReleaseKind};
use serde::{Deserialize, Serialize};

/// Value of [`Report::schema`].
pub const SCHEMA: &str = "leakscope-report/1";
pub const TOOL_NAME: &str = "leakscope";
pub const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub schema: String,
    pub tool: Tool,
    /// Ordered by pid, then exec index.
    pub processes: Vec<ProcessReport>,
    /// Sums over all processes.
    pub summary: Summary,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tool {
    pub name: String,
    pub version: String,
}

impl Default for Tool {
    fn default() -> Self {
        Tool { name: TOOL_NAME.into(), version: TOOL_VERSION.into() }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProcessReport {
    pub pid: u32,
    pub parent_pid: u32,
    pub exec_index: u32,
    pub argv: Vec<String>,
    pub exe: String,
    pub exit: Exit,
    /// False when the data for this process may be partial; `notes` say why.
    pub complete: bool,
    pub notes: Vec<String>,
    /// Largest first.
    pub leaks: Vec<Leak>,
    /// In the order they happened.
    pub errors: Vec<HeapErrorReport>,
    /// Reserved: always empty in this version.
    pub mappings: Vec<serde_json::Value>,
    /// Reserved: always empty in this version.
    pub shared_memory: Vec<serde_json::Value>,
    pub summary: Summary,
}

impl ProcessReport {
    /// Records why this process's data is partial.
    pub fn add_note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
        self.complete = false;
    }

    /// Whether anything worth reporting was found.
    pub fn has_findings(&self) -> bool {
        !self.leaks.is_empty() || !self.errors.is_empty()
    }
}

/// How a process ended. JSON: `{"code": 0}`, `{"signal": 9}`, `{"exec": true}`, `{"unknown": true}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "ExitRepr", try_from = "ExitRepr")]
pub enum Exit {
    Code(i32),
    Signal(i32),
    Exec,
    Unknown,
}

impl From<Ending> for Exit {
    fn from(e: Ending) -> Exit {
        match e {
            Ending::Exited(c) => Exit::Code(c),
            Ending::Signaled(s) => Exit::Signal(s),
            Ending::Execed => Exit::Exec,
            Ending::Unknown => Exit::Unknown,
        }
    }
}

#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ExitRepr {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    signal: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    exec: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    unknown: Option<bool>,
}

impl From<Exit> for ExitRepr {
    fn from(e: Exit) -> ExitRepr {
        let mut r = ExitRepr::default();
        match e {
            Exit::Code(c) => r.code = Some(c),
            Exit::Signal(s) => r.signal = Some(s),
            Exit::Exec => r.exec = Some(true),
            Exit::Unknown => r.unknown = Some(true),
        }
        r
    }
}

impl TryFrom<ExitRepr> for Exit {
    type Error = String;
    fn try_from(r: ExitRepr) -> Result<Exit, String> {
        match (r.code, r.signal, r.exec, r.unknown) {
            (Some(c), None, None, None) => Ok(Exit::Code(c)),
            (None, Some(s), None, None) => Ok(Exit::Signal(s)),
            (None, None, Some(true), None) => Ok(Exit::Exec),
            (None, None, None, Some(true)) => Ok(Exit::Unknown),
            _ => Err("exit must have exactly one of code, signal, exec: true, unknown: true".into()),
        }
    }
}

/// Totals for one process, or for the whole report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub leaked_bytes: u64,
    pub leaked_blocks: u64,
    pub leak_records: u64,
    pub errors: u64,
    pub allocations: u64,
    pub frees: u64,
    /// Live at exit but kept on purpose by a language runtime for the life of
    /// the process (e.g. Rust's main-thread handle); not counted as leaked.
    #[serde(default)]
    pub runtime_kept_bytes: u64,
    #[serde(default)]
    pub runtime_kept_blocks: u64,
}

impl Summary {
    pub fn add(&mut self, other: &Summary) {
        self.leaked_bytes += other.leaked_bytes;
        self.leaked_blocks += other.leaked_blocks;
        self.leak_records += other.leak_records;
        self.errors += other.errors;
        self.allocations += other.allocations;
        self.frees += other.frees;
        self.runtime_kept_bytes += other.runtime_kept_bytes;
        self.runtime_kept_blocks += other.runtime_kept_blocks;
    }

    pub fn has_findings(&self) -> bool {
        self.leak_records > 0 || self.errors > 0
    }
}

/// How sure leakscope is that a block is lost. Only `unknown` exists until a
/// reachability scan is implemented; later versions may add variants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LeakClass {
    /// Live at exit; whether it was still referenced was not determined.
    Unknown,
}

/// Live blocks sharing one allocation stack and allocator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Leak {
    pub class: LeakClass,
    pub bytes: u64,
    pub blocks: u64,
    pub allocator: Allocator,
    /// Where the blocks were allocated, innermost first.
    pub stack: Vec<Frame>,
}

/// The function that made a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Allocator {
    #[serde(rename = "unknown")]
    Unknown,
    #[serde(rename = "malloc")]
    Malloc,
    #[serde(rename = "calloc")]
    Calloc,
    #[serde(rename = "realloc")]
    Realloc,
    #[serde(rename = "reallocarray")]
    Reallocarray,
    #[serde(rename = "posix_memalign")]
    PosixMemalign,
    #[serde(rename = "aligned_alloc")]
    AlignedAlloc,
    #[serde(rename = "memalign")]
    Memalign,
    #[serde(rename = "valloc")]
    Valloc,
    #[serde(rename = "pvalloc")]
    Pvalloc,
    #[serde(rename = "new")]
    New,
    #[serde(rename = "new[]")]
    NewArray,
}

impl From<AllocKind> for Allocator {
    fn from(k: AllocKind) -> Allocator {
        match k {
            AllocKind::Unknown => Allocator::Unknown,
            AllocKind::Malloc => Allocator::Malloc,
            AllocKind::Calloc => Allocator::Calloc,
            AllocKind::Realloc => Allocator::Realloc,
            AllocKind::Reallocarray => Allocator::Reallocarray,
            AllocKind::PosixMemalign => Allocator::PosixMemalign,
            AllocKind::AlignedAlloc => Allocator::AlignedAlloc,
            AllocKind::Memalign => Allocator::Memalign,
            AllocKind::Valloc => Allocator::Valloc,
            AllocKind::Pvalloc => Allocator::Pvalloc,
            AllocKind::New => Allocator::New,
            AllocKind::NewArray => Allocator::NewArray,
        }
    }
}

impl Allocator {
    pub fn name(self) -> &'static str {
        match self {
            Allocator::Unknown => "unknown",
            Allocator::Malloc => "malloc",
            Allocator::Calloc => "calloc",
            Allocator::Realloc => "realloc",
            Allocator::Reallocarray => "reallocarray",
            Allocator::PosixMemalign => "posix_memalign",
            Allocator::AlignedAlloc => "aligned_alloc",
            Allocator::Memalign => "memalign",
            Allocator::Valloc => "valloc",
            Allocator::Pvalloc => "pvalloc",
            Allocator::New => "new",
            Allocator::NewArray => "new[]",
        }
    }
}

/// The function that released (or tried to release) a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Release {
    #[serde(rename = "free")]
    Free,
    #[serde(rename = "delete")]
    Delete,
    #[serde(rename = "delete[]")]
    DeleteArray,
    #[serde(rename = "realloc")]
    Realloc,
}

impl From<ReleaseKind> for Release {
    fn from(k: ReleaseKind) -> Release {
        match k {
            ReleaseKind::Free => Release::Free,
            ReleaseKind::Delete => Release::Delete,
            ReleaseKind::DeleteArray => Release::DeleteArray,
            ReleaseKind::Realloc => Release::Realloc,
        }
    }
}

impl Release {
    pub fn name(self) -> &'static str {
        match self {
            Release::Free => "free",
            Release::Delete => "delete",
            Release::DeleteArray => "delete[]",
            Release::Realloc => "realloc",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HeapErrorKind {
    DoubleFree,
    InvalidFree,
    MismatchedFree,
}

impl From<ErrorKind> for HeapErrorKind {
    fn from(k: ErrorKind) -> HeapErrorKind {
        match k {
            ErrorKind::DoubleFree => HeapErrorKind::DoubleFree,
            ErrorKind::InvalidFree => HeapErrorKind::InvalidFree,
            ErrorKind::MismatchedFree => HeapErrorKind::MismatchedFree,
        }
    }
}

/// What a released address points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AddrRegion {
    Unknown,
    HeapInterior,
    Stack,
    Global,
}

impl From<Region> for AddrRegion {
    fn from(r: Region) -> AddrRegion {
        match r {
            Region::Unknown => AddrRegion::Unknown,
            Region::HeapInterior => AddrRegion::HeapInterior,
            Region::Stack => AddrRegion::Stack,
            Region::Global => AddrRegion::Global,
        }
    }
}

/// A bad release.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeapErrorReport {
    pub kind: HeapErrorKind,
    /// The bad call.
    pub release: Release,
    /// The address passed to it.
    #[serde(with = "hex")]
    pub address: u64,
    pub region: AddrRegion,
    /// The block the address belongs to, when known.
    pub block: Option<BlockInfo>,
    /// Stack of the bad call.
    pub stack: Vec<Frame>,
    /// Where `block` was allocated; null when the block is not known.
    pub alloc_stack: Option<Vec<Frame>>,
    /// Where `block` was first freed; null unless it was freed before.
    pub free_stack: Option<Vec<Frame>>,
    /// The call that first freed `block`; null unless it was freed before.
    pub first_release: Option<Release>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockInfo {
    #[serde(with = "hex")]
    pub address: u64,
    pub bytes: u64,
    pub allocator: Allocator,
}

/// One level of a symbolised stack. An address inside inlined code expands
/// into several frames with the same address: the inlined ones first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    /// The call site: return address - 1.
    #[serde(with = "hex")]
    pub address: u64,
    /// Path of the module (executable or shared object) holding `address`.
    pub module: Option<String>,
    /// `address` relative to the module's load base (as in `libfoo.so+0x1234`).
    #[serde(with = "opt_hex", default)]
    pub module_offset: Option<u64>,
    pub function: Option<String>,
    pub file: Option<String>,
    pub line: Option<u32>,
    pub inlined: bool,
}

/// `u64` as a `"0x…"` string.
pub mod hex {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{v:#x}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let s = String::deserialize(d)?;
        parse(&s).ok_or_else(|| D::Error::custom(format!("not a 0x-prefixed hex address: {s:?}")))
    }

    pub fn parse(s: &str) -> Option<u64> {
        let digits = s.strip_prefix("0x")?;
        u64::from_str_radix(digits, 16).ok()
    }
}

/// `Option<u64>` as a `"0x…"` string or null.
pub mod opt_hex {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_str(&format!("{v:#x}")),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(s) => super::hex::parse(&s)
                .map(Some)
                .ok_or_else(|| D::Error::custom(format!("not a 0x-prefixed hex address: {s:?}"))),
        }
    }
}
