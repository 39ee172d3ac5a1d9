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
