//! The in-memory trace: what one `leakscope run` observed, per process,
//! before symbolisation. Built from session files ([`crate::session`]) or
//! decoded from a saved trace file ([`crate::codec`]).

pub use crate::layout::{AllocKind, LeakClass, ReleaseKind};

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Trace {
    pub processes: Vec<ProcessTrace>,
}

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// Exit status (exit(), return from main, _exit()).
    Exited(i32),
    /// Killed by this signal.
    Signaled(i32),
    /// The image was replaced by execve(); its blocks were lost at exec.
    Execed,
    /// Not known (a grandchild whose end nobody waited for).
    Unknown,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ProcessTrace {
    pub pid: u32,
    pub parent_pid: u32,
    /// 0 for the first program this pid ran, n after n execs.
    pub exec_index: u32,
    pub argv: Vec<String>,
    pub exe: String,
    pub ending: Ending,
    /// Whether leakscope saw the process end normally (its exit handlers ran).
    /// False after SIGKILL, a crash, _exit() or exec.
    pub finalized: bool,
    pub modules: Vec<Module>,
    /// Stack table: `stacks[id]` holds return addresses, innermost first.
    /// Index 0 is the empty stack.
    pub stacks: Vec<Vec<u64>>,
    /// Blocks live when the process ended (leakscope's own excluded).
    pub blocks: Vec<Block>,
    /// Heap errors in the order they happened.
    pub errors: Vec<HeapError>,
    pub stats: Stats,
    pub scan: Scan,
    /// Memory mappings live at the end and shared-memory events.
    pub maps: Maps,
    /// Source locations the program gave with the `leakscope.h` macros. A
    /// stack frame `f` with `layout::location_frame_value(f) == Some(i)` is
    /// `locations[i]`, not a return address; it comes just before (inside) the
    /// return address of the call that carried it.
    pub locations: Vec<SourceLocation>,
}

/// A source location given by the program itself (`__FILE__`, `__LINE__`, `__func__`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SourceLocation {
    pub file: String,
    pub line: u32,
    pub function: String,
}

/// What a process mapped and did with shared memory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Maps {
    /// The program's regions still mapped when the process ended (or exec'd),
    /// by address. Mappings by the loader, by libc's allocator or by leakscope
    /// are never recorded.
    pub regions: Vec<MapRegion>,
    /// Shared-memory creations and removals, and unmappings of regions
    /// inherited at fork, in the order they happened (this process's own only).
    pub events: Vec<ShmEvent>,
    /// Mapping calls (mmap, mremap, shmat) and unmapping calls (munmap, shmdt) seen.
    pub maps: u64,
    pub unmaps: u64,
}

/// What a region maps (see [`crate::layout::map_kind`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MapKind {
    AnonShared,
    DevZero,
    FileShared,
    AnonPrivate,
    FilePrivate,
    Shmat,
}

impl MapKind {
    pub fn from_u8(v: u8) -> Option<MapKind> {
        use crate::layout::map_kind as k;
        Some(match v {
            k::ANON_SHARED => MapKind::AnonShared,
            k::DEV_ZERO => MapKind::DevZero,
            k::FILE_SHARED => MapKind::FileShared,
            k::ANON_PRIVATE => MapKind::AnonPrivate,
            k::FILE_PRIVATE => MapKind::FilePrivate,
            k::SHMAT => MapKind::Shmat,
            _ => return None,
        })
    }
    pub fn to_u8(self) -> u8 {
        use crate::layout::map_kind as k;
        match self {
            MapKind::AnonShared => k::ANON_SHARED,
            MapKind::DevZero => k::DEV_ZERO,
            MapKind::FileShared => k::FILE_SHARED,
            MapKind::AnonPrivate => k::ANON_PRIVATE,
            MapKind::FilePrivate => k::FILE_PRIVATE,
            MapKind::Shmat => k::SHMAT,
        }
    }
    /// Whether other processes can see the memory (and so it can outlive a leak's owner).
    pub fn is_shared(self) -> bool {
        !matches!(self, MapKind::AnonPrivate | MapKind::FilePrivate)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapRegion {
    pub addr: u64,
    pub len: u64,
    pub kind: MapKind,
    /// PROT_READ (1) | PROT_WRITE (2) | PROT_EXEC (4).
    pub prot: u8,
    /// Mapped by an ancestor before fork: `creator_pid` made it.
    pub inherited: bool,
    /// Index into [`ProcessTrace::stacks`]: where it was mapped.
    pub stack: u32,
    pub creator_pid: u32,
    /// Number of the region in its creator (with `creator_pid`, names it across fork).
    pub serial: u32,
    /// The mapped file's path (memfd: `/memfd:NAME (deleted)`), `""` for anonymous memory.
    pub path: String,
    pub file_offset: u64,
    pub dev: u64,
    pub ino: u64,
    /// SysV attachments: the segment's id and key.
    pub shmid: i32,
    pub key: i32,
}

/// What a [`ShmEvent`] records (see [`crate::layout::shm_event`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ShmEventKind {
    SysvCreate,
    SysvRemove,
    PosixCreate,
    PosixUnlink,
    MemfdCreate,
    InheritedUnmap,
}

impl ShmEventKind {
    pub fn from_u8(v: u8) -> Option<ShmEventKind> {
        use crate::layout::shm_event as e;
        Some(match v {
            e::SYSV_CREATE => ShmEventKind::SysvCreate,
            e::SYSV_REMOVE => ShmEventKind::SysvRemove,
            e::POSIX_CREATE => ShmEventKind::PosixCreate,
            e::POSIX_UNLINK => ShmEventKind::PosixUnlink,
            e::MEMFD_CREATE => ShmEventKind::MemfdCreate,
            e::INHERITED_UNMAP => ShmEventKind::InheritedUnmap,
            _ => return None,
        })
    }
    pub fn to_u8(self) -> u8 {
        use crate::layout::shm_event as e;
        match self {
            ShmEventKind::SysvCreate => e::SYSV_CREATE,
            ShmEventKind::SysvRemove => e::SYSV_REMOVE,
            ShmEventKind::PosixCreate => e::POSIX_CREATE,
            ShmEventKind::PosixUnlink => e::POSIX_UNLINK,
            ShmEventKind::MemfdCreate => e::MEMFD_CREATE,
            ShmEventKind::InheritedUnmap => e::INHERITED_UNMAP,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShmEvent {
    pub kind: ShmEventKind,
    /// The process it happened in.
    pub pid: u32,
    /// Index into [`ProcessTrace::stacks`] (0 when none was taken).
    pub stack: u32,
    pub key: i32,
    pub shmid: i32,
    /// Segment size (SysV), unmapped length (inherited unmap).
    pub size: u64,
    pub addr: u64,
    /// POSIX object or memfd name, as the program gave it.
    pub name: String,
    pub dev: u64,
    pub ino: u64,
    pub origin_pid: u32,
    pub origin_serial: u32,
    /// For creations: whether the object still existed when the run ended,
    /// as `leakscope run` found it afterwards.
    pub end: EndCheck,
}

/// What `leakscope run` found about a shared-memory object after every traced process ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EndCheck {
    /// Not looked at (a trace from before the check, or not a creation).
    #[default]
    Unchecked,
    /// Gone (or marked for destruction, or replaced by another object of the same name).
    Gone,
    /// Still there: its size, and (SysV) how many attachments it had.
    Exists { bytes: u64, attached: Option<u64> },
}

/// How the reachability scan at the end went.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Scan {
    /// A [`crate::layout::scan_state`] value.
    pub state: u32,
    /// Scans completed (on-demand checks and the one at exit).
    pub seq: u64,
    pub threads_stopped: u32,
    pub threads_not_stopped: u32,
    pub nanos: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub allocs: u64,
    pub frees: u64,
    /// The preload's cost counters, indexed by [`crate::layout::stat`]; empty when unknown.
    pub preload: Vec<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Module {
    pub path: String,
    /// Load bias: runtime address = ELF virtual address + base.
    pub base: u64,
    /// Runtime address range of the module's segments.
    pub lo: u64,
    pub hi: u64,
    pub build_id: Vec<u8>,
    pub unloaded: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    pub addr: u64,
    pub size: u64,
    pub kind: AllocKind,
    /// Index into [`ProcessTrace::stacks`].
    pub stack: u32,
    /// [`crate::layout::entry_flags`] bits.
    pub flags: u8,
    /// From the reachability scan; `Unknown` when the process could not scan.
    pub class: LeakClass,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    DoubleFree,
    InvalidFree,
    MismatchedFree,
}

impl ErrorKind {
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::DoubleFree => "double-free",
            ErrorKind::InvalidFree => "invalid-free",
            ErrorKind::MismatchedFree => "mismatched-free",
        }
    }
}

/// What an invalid address points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Region {
    Unknown,
    HeapInterior,
    Stack,
    Global,
}

impl Region {
    pub fn name(self) -> &'static str {
        match self {
            Region::Unknown => "unknown",
            Region::HeapInterior => "heap-interior",
            Region::Stack => "stack",
            Region::Global => "global",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeapError {
    pub kind: ErrorKind,
    /// The bad call.
    pub release: ReleaseKind,
    pub addr: u64,
    pub region: Region,
    /// Stack of the bad call.
    pub stack: u32,
    /// The block involved, when known: where it was allocated (and freed).
    pub block: Option<ErrorBlock>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorBlock {
    pub addr: u64,
    pub size: u64,
    pub kind: AllocKind,
    pub alloc_stack: u32,
    /// For double frees: the release that first freed it, and its stack.
    pub first_release: Option<ReleaseKind>,
    pub free_stack: u32,
}
