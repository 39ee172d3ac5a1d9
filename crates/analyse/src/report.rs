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
    /// Every suppression given (`--suppressions`), in the order read, with
    /// what it hid over all processes; empty when none was given.
    #[serde(default)]
    pub suppressions: Vec<SuppressionUse>,
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
    /// Memory the program mapped (mmap, mremap, shmat) and never unmapped,
    /// grouped by kind, stack and object: shared mappings first, then the
    /// largest. Regions inherited at fork are listed only in the process that
    /// mapped them, and not at all once any process of the tree unmapped them.
    #[serde(default)]
    pub mappings: Vec<Mapping>,
    /// Shared-memory objects this process created (SysV segments, POSIX
    /// objects) that nobody removed: they outlive every process.
    #[serde(default)]
    pub shared_memory: Vec<SharedMemory>,
    pub summary: Summary,
    /// The scan that classified this process's leaks.
    #[serde(default = "Reachability::none")]
    pub reachability: Reachability,
    /// With `--show-inherited`: the blocks live at the end that the process
    /// inherited from its parent at fork, grouped like `leaks` (never counted
    /// as its leaks). Empty otherwise.
    #[serde(default)]
    pub inherited: Vec<Leak>,
}

impl Reachability {
    pub fn none() -> Reachability {
        Reachability { state: "none".into(), threads_stopped: 0, threads_not_stopped: 0, millis: 0.0 }
    }
}

impl ProcessReport {
    /// Records why this process's data is partial.
    pub fn add_note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
        self.complete = false;
    }

    /// Whether anything worth reporting was found.
    pub fn has_findings(&self) -> bool {
        self.leaks.iter().any(|l| l.class != LeakClass::Reachable) || !self.errors.is_empty() || self.has_shared_findings()
    }

    /// Shared mappings never unmapped, or shared-memory objects left behind
    /// (private mappings never count).
    pub fn has_shared_findings(&self) -> bool {
        self.mappings.iter().any(|m| m.shared) || !self.shared_memory.is_empty()
    }

    /// Whether `--error-exitcode` applies: heap errors, or leaked memory
    /// (possible leaks only with `count_possible`; reachable memory never).
    pub fn fails(&self, count_possible: bool) -> bool {
        !self.errors.is_empty()
            || self.leaks.iter().any(|l| l.class.is_leaked(count_possible))
            || self.has_shared_findings()
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
    /// Totals per class (`leaked_*` = all but reachable).
    #[serde(default)]
    pub definite: ClassTotals,
    #[serde(default)]
    pub indirect: ClassTotals,
    #[serde(default)]
    pub possible: ClassTotals,
    #[serde(default)]
    pub reachable: ClassTotals,
    /// Leak records hidden by `--suppressions` (not in `leaks`, not in any total above).
    #[serde(default)]
    pub suppressed: ClassTotals,
    /// Shared mappings never unmapped (`mappings` entries with `shared: true`):
    /// their bytes and entries.
    #[serde(default)]
    pub mapped_bytes: u64,
    #[serde(default)]
    pub mapping_records: u64,
    /// `shared_memory` entries, and the sum of their sizes.
    #[serde(default)]
    pub shared_memory_objects: u64,
    #[serde(default)]
    pub shared_memory_bytes: u64,
}

impl ClassTotals {
    fn add(&mut self, o: &ClassTotals) {
        self.bytes += o.bytes;
        self.blocks += o.blocks;
        self.records += o.records;
    }
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
        self.definite.add(&other.definite);
        self.indirect.add(&other.indirect);
        self.possible.add(&other.possible);
        self.reachable.add(&other.reachable);
        self.suppressed.add(&other.suppressed);
        self.mapped_bytes += other.mapped_bytes;
        self.mapping_records += other.mapping_records;
        self.shared_memory_objects += other.shared_memory_objects;
        self.shared_memory_bytes += other.shared_memory_bytes;
    }

    pub fn has_findings(&self) -> bool {
        self.leak_records > 0 || self.errors > 0 || self.mapping_records > 0 || self.shared_memory_objects > 0
    }
}

/// How sure leakscope is that a block is lost, as Valgrind defines it. The
/// order is the order of the report: most certainly lost first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LeakClass {
    /// No pointer to it anywhere.
    Definite,
    /// Reachable only from lost blocks.
    Indirect,
    /// Only pointers into its interior lead to it.
    Possible,
    /// Live at exit; whether it was still referenced was not determined
    /// (the process could not scan itself, e.g. it was killed).
    Unknown,
    /// A chain of pointers from a root (globals, stacks, registers, TLS) leads to it.
    Reachable,
}

impl LeakClass {
    /// Whether memory of this class counts as leaked (`--error-exitcode`,
    /// `leaked_*` totals): everything but reachable memory, and possible
    /// leaks only when asked.
    pub fn is_leaked(self, count_possible: bool) -> bool {
        match self {
            LeakClass::Definite | LeakClass::Indirect | LeakClass::Unknown => true,
            LeakClass::Possible => count_possible,
            LeakClass::Reachable => false,
        }
    }

    pub fn phrase(self) -> &'static str {
        match self {
            LeakClass::Definite => "definitely lost",
            LeakClass::Indirect => "indirectly lost",
            LeakClass::Possible => "possibly lost",
            LeakClass::Unknown => "leaked",
            LeakClass::Reachable => "still reachable",
        }
    }
}

impl From<leakscope_format::model::LeakClass> for LeakClass {
    fn from(c: leakscope_format::model::LeakClass) -> Self {
        use leakscope_format::model::LeakClass as M;
        match c {
            M::Definite => LeakClass::Definite,
            M::Indirect => LeakClass::Indirect,
            M::Possible => LeakClass::Possible,
            M::Reachable => LeakClass::Reachable,
            M::Unknown => LeakClass::Unknown,
        }
    }
}

/// Bytes, blocks and records of one class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassTotals {
    pub bytes: u64,
    pub blocks: u64,
    pub records: u64,
}

/// How the reachability scan at the end of the process went.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reachability {
    /// "complete", "partial" (some threads could not be stopped) or "none"
    /// (no scan ran: classes are "unknown").
    pub state: String,
    pub threads_stopped: u32,
    pub threads_not_stopped: u32,
    pub millis: f64,
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
    /// Identity of the allocation site that survives rebuilds, ASLR and
    /// unrelated edits (see `fingerprint`); `""` in reports written before it
    /// existed.
    #[serde(default)]
    pub fingerprint: String,
}

/// Regions of one kind, mapped from one stack, of one object, still mapped
/// when the process ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mapping {
    pub kind: MappingKind,
    /// Whether other processes can share the memory (every kind but the private ones).
    pub shared: bool,
    pub bytes: u64,
    /// Number of regions (an mmap cut in two by a partial munmap makes two).
    pub regions: u64,
    /// Start of the lowest region.
    #[serde(with = "hex")]
    pub address: u64,
    /// Protection when mapped: `"rw-"` and the like.
    pub prot: String,
    /// The mapped file (memfd: `/memfd:NAME (deleted)`); null for anonymous memory and SysV segments.
    pub path: Option<String>,
    /// SysV attachments: the segment's id and key; null otherwise.
    pub shmid: Option<i32>,
    pub key: Option<i32>,
    /// Where it was mapped, innermost first.
    pub stack: Vec<Frame>,
}

/// What a mapping maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MappingKind {
    /// `mmap(MAP_SHARED | MAP_ANONYMOUS)`.
    AnonShared,
    /// `mmap(MAP_SHARED)` of `/dev/zero`.
    DevZero,
    /// A SysV segment attached with `shmat`.
    SysvShm,
    /// `mmap(MAP_SHARED)` of a POSIX shared-memory object (a file in /dev/shm).
    PosixShm,
    /// `mmap(MAP_SHARED)` of a memfd.
    Memfd,
    /// `mmap(MAP_SHARED)` of another file.
    FileShared,
    /// `mmap(MAP_PRIVATE | MAP_ANONYMOUS)`.
    AnonPrivate,
    /// `mmap(MAP_PRIVATE)` of a file.
    FilePrivate,
}

impl MappingKind {
    pub fn name(self) -> &'static str {
        match self {
            MappingKind::AnonShared => "anon-shared",
            MappingKind::DevZero => "dev-zero",
            MappingKind::SysvShm => "sysv-shm",
            MappingKind::PosixShm => "posix-shm",
            MappingKind::Memfd => "memfd",
            MappingKind::FileShared => "file-shared",
            MappingKind::AnonPrivate => "anon-private",
            MappingKind::FilePrivate => "file-private",
        }
    }
}

/// A shared-memory object created by the process and never removed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedMemory {
    pub kind: SharedMemoryKind,
    /// SysV: the key given to shmget (0 for IPC_PRIVATE) and the segment id; null for POSIX.
    pub key: Option<i32>,
    pub shmid: Option<i32>,
    /// POSIX: the name given to shm_open; null for SysV.
    pub name: Option<String>,
    /// Size: at the end when it was checked, else when created (SysV).
    pub bytes: u64,
    /// Whether it still existed after every traced process ended; null when not checked.
    pub still_exists: Option<bool>,
    /// SysV: processes still attached at the end; null when unknown and for POSIX.
    pub attached: Option<u64>,
    /// A shell command that removes it.
    pub remove_command: String,
    /// Where it was created, innermost first.
    pub stack: Vec<Frame>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SharedMemoryKind {
    /// shmget(IPC_CREAT): lives until IPC_RMID (or reboot).
    Sysv,
    /// shm_open(O_CREAT): a file in /dev/shm until shm_unlink.
    Posix,
}

/// One suppression read from a `--suppressions` file, and the leak records it
/// hid (each hidden record is credited to the first suppression that matches it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuppressionUse {
    /// LeakSanitizer: the line (`leak:PATTERN`); Valgrind: the entry's name.
    pub name: String,
    /// The suppression file, as given on the command line.
    pub file: String,
    /// Line of `leak:` (LeakSanitizer) or of the entry's `{` (Valgrind), from 1.
    pub line: u32,
    pub format: SuppressionFormat,
    pub matched_records: u64,
    pub matched_blocks: u64,
    pub matched_bytes: u64,
}

/// The syntax of a suppression file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SuppressionFormat {
    /// LeakSanitizer: `leak:PATTERN` lines.
    Lsan,
    /// Valgrind: `{ name  Memcheck:Leak  fun:/obj:/src:/... }` entries.
    Valgrind,
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
