//! Layout of the per-process *session file*: the live-block table, the stack
//! store, the module list and the heap-error log that the preload library
//! keeps in a `MAP_SHARED` mapping of a file on tmpfs.
//!
//! Keeping the tables in a shared file (not in anonymous memory) is what lets
//! the CLI report a process that was killed with SIGKILL: the file outlives it.
//! Every reference inside the file is a byte offset from its start (0 = none),
//! so the CLI can read it at any address. The preload writes, the CLI only
//! reads; the CLI validates every offset it follows because the writer may
//! have died mid-update.
//!
//! This module is plain `#[repr(C)]` data and small pure functions: the preload
//! uses it on its hot path, so nothing here allocates.

use core::sync::atomic::{AtomicI32, AtomicU32, AtomicU64};

pub const MAGIC: [u8; 8] = *b"LSCOPE\0\x01";
/// 2: the rings of freed blocks left the live shards (the preload keeps them per thread).
/// 3: two more cost counters (live-table time), so the header fields after them moved.
pub const LAYOUT_VERSION: u32 = 3;
/// Live table and stack store are each split in this many independently
/// locked shards, so threads rarely meet on a lock or a cache line.
pub const SHARDS: usize = 64;
/// Deepest stack recorded; deeper stacks are truncated at the outer end.
pub const MAX_FRAMES: usize = 128;
/// Virtual size of the session file. It is sparse: only touched pages use memory.
pub const RESERVE_BYTES: u64 = 16 << 30;
/// Stack ids are offsets / 8 into the file; 0 means "no stack".
pub const NO_STACK: u32 = 0;

/// Process states stored in [`Header::state`].
pub mod state {
    pub const RUNNING: u32 = 0;
    /// The process ran its exit handlers (exit() or return from main).
    pub const EXITED: u32 = 1;
    /// The process image was replaced by execve().
    pub const EXECED: u32 = 2;
    /// The process exited with the status in `exit_code` without running its
    /// exit handlers (`_exit()`, `_Exit()`, or as its traced parent reaped it).
    pub const QUICK_EXIT: u32 = 3;
    /// Killed by the signal in `exit_code`, as its traced parent reaped it.
    pub const KILLED: u32 = 4;
}

pub const STAT_COUNT: usize = 16;

/// Indices into [`Header::stats`]: what the preload spent its time on.
pub mod stat {
    /// Stack captures.
    pub const CAPTURES: usize = 0;
    /// Frames unwound with the CFI unwinder.
    pub const FRAMES_UNWOUND: usize = 1;
    /// Frames taken over, validated, from the thread's previous capture.
    pub const FRAMES_REUSED: usize = 2;
    /// Captures whose program frames were identical to the previous one's.
    pub const SAME_STACK: usize = 3;
    /// Stacks found in the thread's recent-stack cache.
    pub const RECENT_HITS: usize = 4;
    /// Stacks looked up in (or added to) the shared stack store.
    pub const STORE_LOOKUPS: usize = 5;
    /// Nanoseconds spent capturing and interning stacks (sampled clock).
    pub const CAPTURE_NS: usize = 6;
    pub const THREADS: usize = 7;
    /// With LEAKSCOPE_CHECK_WALKS=1: captures compared against a full walk, and mismatches.
    pub const WALKS_CHECKED: usize = 8;
    pub const WALK_MISMATCHES: usize = 9;
    /// Unwinding steps answered by the unwinder's rule caches, and steps that
    /// had to evaluate DWARF CFI (a miss).
    pub const RULE_HITS: usize = 10;
    pub const RULE_MISSES: usize = 11;
    /// Unwinding steps taken with a learned rule (`rules.rs`), without framehop,
    /// and addresses whose rule was learned (probed).
    pub const FAST_STEPS: usize = 12;
    pub const RULES_LEARNED: usize = 13;
    /// Inserts into and removals from the live-block table, and the
    /// nanoseconds they took (sampled clock): their cache misses are most of
    /// the cost of a program with a big heap.
    pub const TABLE_OPS: usize = 14;
    pub const TABLE_NS: usize = 15;
    pub const NAMES: [&str; super::STAT_COUNT] = [
        "stack captures",
        "frames unwound",
        "frames reused from the previous capture",
        "captures identical to the previous one",
        "recent-stack cache hits",
        "stack store lookups",
        "capture time (ns)",
        "threads",
        "captures cross-checked against a full walk",
        "cross-check mismatches",
        "unwind rule cache hits",
        "unwind rule cache misses",
        "unwinding steps with a learned rule",
        "unwind rules learned",
        "live-table inserts and removals",
        "live-table time (ns)",
    ];
}

/// [`Header::scan_state`] values.
pub mod scan_state {
    pub const NONE: u32 = 0;
    /// Every thread was stopped and every root scanned.
    pub const COMPLETE: u32 = 1;
    /// Some threads did not stop (they block the stop signal): their stacks and
    /// registers were not scanned, so some blocks may look lost that are not.
    pub const PARTIAL: u32 = 2;
}

/// A block's class after a reachability scan, as Valgrind defines them.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LeakClass {
    Unknown = 0,
    /// No pointer to it anywhere.
    Definite = 1,
    /// Reachable only from lost blocks.
    Indirect = 2,
    /// Only pointers into its interior lead to it.
    Possible = 3,
    /// A pointer chain from a root (global, stack, register, TLS) leads to it.
    Reachable = 4,
}

impl LeakClass {
    pub fn from_u8(v: u8) -> LeakClass {
        match v {
            1 => LeakClass::Definite,
            2 => LeakClass::Indirect,
            3 => LeakClass::Possible,
            4 => LeakClass::Reachable,
            _ => LeakClass::Unknown,
        }
    }
}

/// One scanned block: address (low 48 bits) | class << 56.
#[inline]
pub fn scan_entry(addr: u64, class: LeakClass) -> u64 {
    (addr & 0xffff_ffff_ffff) | ((class as u64) << 56)
}

/// Flags of a live entry (4 bits).
pub mod entry_flags {
    /// Allocated by leakscope itself or by libc on its behalf: never reported.
    pub const INTERNAL: u8 = 1;
    /// Allocated in the parent before fork(): the parent owns it.
    pub const INHERITED: u8 = 2;
    /// Marked as an intentional leak by the program (`leakscope_ignore`), or
    /// allocated while the program had tracing disabled (`leakscope_disable`).
    pub const IGNORED: u8 = 4;
}

/// Which function made a block. Stored in 4 bits.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AllocKind {
    Unknown = 0,
    Malloc = 1,
    Calloc = 2,
    Realloc = 3,
    Reallocarray = 4,
    PosixMemalign = 5,
    AlignedAlloc = 6,
    Memalign = 7,
    Valloc = 8,
    Pvalloc = 9,
    New = 10,
    NewArray = 11,
}

impl AllocKind {
    pub fn from_u8(v: u8) -> AllocKind {
        use AllocKind::*;
        match v {
            1 => Malloc,
            2 => Calloc,
            3 => Realloc,
            4 => Reallocarray,
            5 => PosixMemalign,
            6 => AlignedAlloc,
            7 => Memalign,
            8 => Valloc,
            9 => Pvalloc,
            10 => New,
            11 => NewArray,
            _ => Unknown,
        }
    }
    pub fn name(self) -> &'static str {
        use AllocKind::*;
        match self {
            Unknown => "unknown",
            Malloc => "malloc",
            Calloc => "calloc",
            Realloc => "realloc",
            Reallocarray => "reallocarray",
            PosixMemalign => "posix_memalign",
            AlignedAlloc => "aligned_alloc",
            Memalign => "memalign",
            Valloc => "valloc",
            Pvalloc => "pvalloc",
            New => "new",
            NewArray => "new[]",
        }
    }
    /// The release call that matches this allocator.
    pub fn matching_release(self) -> ReleaseKind {
        match self {
            AllocKind::New => ReleaseKind::Delete,
            AllocKind::NewArray => ReleaseKind::DeleteArray,
            _ => ReleaseKind::Free,
        }
    }
}

/// Which function released (or tried to release) a block.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReleaseKind {
    Free = 1,
    Delete = 2,
    DeleteArray = 3,
    /// realloc() releasing the old block (moved, or realloc(p, 0)).
    Realloc = 4,
}

impl ReleaseKind {
    pub fn from_u8(v: u8) -> ReleaseKind {
        match v {
            2 => ReleaseKind::Delete,
            3 => ReleaseKind::DeleteArray,
            4 => ReleaseKind::Realloc,
            _ => ReleaseKind::Free,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            ReleaseKind::Free => "free",
            ReleaseKind::Delete => "delete",
            ReleaseKind::DeleteArray => "delete[]",
            ReleaseKind::Realloc => "realloc",
        }
    }
    /// Whether this release is the right one for a block made by `alloc`.
    pub fn matches(self, alloc: AllocKind) -> bool {
        match self {
            // realloc only accepts malloc-family blocks, like free.
            ReleaseKind::Realloc => alloc.matching_release() == ReleaseKind::Free,
            other => alloc.matching_release() == other,
        }
    }
}

/// Heap error kinds stored in [`ErrorRecord::kind`].
pub mod error_kind {
    pub const DOUBLE_FREE: u32 = 1;
    pub const INVALID_FREE: u32 = 2;
    pub const MISMATCHED_FREE: u32 = 3;
}

/// What an invalid address points at, stored in [`ErrorRecord::region`].
pub mod region {
    pub const UNKNOWN: u32 = 0;
    /// Inside a live heap block (not at its start).
    pub const HEAP_INTERIOR: u32 = 1;
    /// On a thread's stack.
    pub const STACK: u32 = 2;
    /// In a loaded module's image (a global or static).
    pub const GLOBAL: u32 = 3;
}

#[repr(C)]
pub struct Header {
    pub magic: [u8; 8],
    pub version: u32,
    pub header_size: u32,
    pub pid: u32,
    pub ppid: u32,
    pub state: AtomicU32,
    pub exit_code: AtomicI32,
    /// Size of the file (and of the mapping).
    pub reserved_bytes: u64,
    /// Next free byte offset; everything below it is initialised.
    pub bump: AtomicU64,
    pub start_ns: u64,
    pub end_ns: AtomicU64,
    /// argv as NUL-terminated strings, one after another.
    pub argv_off: u64,
    pub argv_len: u64,
    pub exe_off: u64,
    pub exe_len: u64,
    /// Newest [`ModuleRecord`] first.
    pub modules_head: AtomicU64,
    /// Newest [`ErrorRecord`] first.
    pub errors_head: AtomicU64,
    /// Sequence numbers for module and error events, to order them.
    pub event_seq: AtomicU64,
    /// leakscope's own code range, whose frames are cut from stacks.
    pub self_lo: u64,
    pub self_hi: u64,
    /// Exec generation: 0 for the first image of this pid, 1 after one exec…
    pub exec_index: u32,
    pub _pad0: u32,
    /// Cost counters (see [`stat`]), summed from each thread when it ends.
    pub stats: [AtomicU64; STAT_COUNT],
    /// Result of the last reachability scan: `scan_count` [`ScanEntry`] words
    /// at `scan_off`, written before `scan_state` is set.
    pub scan_off: AtomicU64,
    pub scan_count: AtomicU64,
    /// [`scan_state`] of the last scan.
    pub scan_state: AtomicU32,
    /// Threads stopped for the scan (low 16 bits) and threads that did not stop (high 16 bits).
    pub scan_threads: AtomicU32,
    pub scan_ns: AtomicU64,
    /// Scans completed so far (on-demand checks and the one at exit).
    pub scan_seq: AtomicU64,
    pub _reserved: [u64; 1],
    pub live: [LiveShard; SHARDS],
    pub stacks: [StackShard; SHARDS],
    /// Memory mappings and shared-memory objects (appended after the first
    /// layout: a file whose `header_size` does not cover it has none).
    pub maps: MapTable,
}

#[repr(C, align(64))]
pub struct LiveShard {
    pub lock: AtomicU32,
    pub _pad: u32,
    /// Offset of `capacity` [`LiveEntry`] slots (open addressing, linear probing).
    pub table_off: AtomicU64,
    pub capacity: AtomicU64,
    pub len: AtomicU64,
    pub allocs: AtomicU64,
    pub frees: AtomicU64,
}

#[repr(C, align(64))]
pub struct StackShard {
    pub lock: AtomicU32,
    pub _pad: u32,
    /// Offset of `capacity` u64 slots: `(hash >> 32) << 32 | stack_id`, 0 = empty.
    pub table_off: AtomicU64,
    pub capacity: AtomicU64,
    pub len: AtomicU64,
    pub _reserved: [u64; 4],
}

/// One live block: 16 bytes, so 2 M live blocks cost well under 48 MB.
///
/// word0: address (bits 0..48) | kind (48..52) | flags (52..56) | size bits 32..40 (56..64)
/// word1: size bits 0..32 (0..32) | stack id (32..64)
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct LiveEntry {
    pub word0: u64,
    pub word1: u64,
}

pub const MAX_BLOCK_SIZE: u64 = (1 << 40) - 1;

impl LiveEntry {
    #[inline]
    pub fn new(addr: u64, size: u64, kind: AllocKind, flags: u8, stack: u32) -> LiveEntry {
        let size = size.min(MAX_BLOCK_SIZE);
        LiveEntry {
            word0: (addr & 0xffff_ffff_ffff)
                | ((kind as u64 & 0xf) << 48)
                | ((flags as u64 & 0xf) << 52)
                | ((size >> 32) << 56),
            word1: (size & 0xffff_ffff) | ((stack as u64) << 32),
        }
    }
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.word0 == 0
    }
    #[inline]
    pub fn addr(&self) -> u64 {
        self.word0 & 0xffff_ffff_ffff
    }
    #[inline]
    pub fn kind(&self) -> AllocKind {
        AllocKind::from_u8(((self.word0 >> 48) & 0xf) as u8)
    }
    #[inline]
    pub fn flags(&self) -> u8 {
        ((self.word0 >> 52) & 0xf) as u8
    }
    #[inline]
    pub fn set_flags(&mut self, flags: u8) {
        self.word0 = (self.word0 & !(0xf << 52)) | ((flags as u64 & 0xf) << 52);
    }
    #[inline]
    pub fn size(&self) -> u64 {
        ((self.word0 >> 56) << 32) | (self.word1 & 0xffff_ffff)
    }
    #[inline]
    pub fn stack(&self) -> u32 {
        (self.word1 >> 32) as u32
    }
}

/// A recently freed block, kept by the preload to explain a later double free.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct FreedEntry {
    pub addr: u64,
    pub size: u64,
    pub alloc_stack: u32,
    pub free_stack: u32,
    pub alloc_kind: u8,
    pub release_kind: u8,
    pub _pad: [u8; 6],
}

/// Header of a stack in the store; `len` return addresses follow it,
/// OUTERMOST first (the order stack walks keep them in). The stack id is
/// (offset of this header) / 8.
#[repr(C)]
pub struct StackRecord {
    pub hash: u64,
    pub len: u32,
    pub _pad: u32,
}

pub const MAX_BUILD_ID: usize = 32;

/// A loaded module (executable or shared object), as seen by the dynamic loader.
#[repr(C)]
pub struct ModuleRecord {
    pub next: u64,
    pub seq: u64,
    /// Load bias (`dlpi_addr`): runtime address = ELF virtual address + base.
    pub base: u64,
    /// Runtime address range covered by the module's PT_LOAD segments.
    pub lo: u64,
    pub hi: u64,
    /// Event sequence number at which it was seen unloaded, 0 while loaded.
    pub unloaded_seq: AtomicU64,
    pub path_off: u64,
    pub path_len: u64,
    pub build_id_len: u32,
    pub _pad: u32,
    pub build_id: [u8; MAX_BUILD_ID],
}

/// A heap error, recorded when it happens.
#[repr(C)]
pub struct ErrorRecord {
    pub next: u64,
    pub seq: u64,
    pub kind: u32,
    pub release_kind: u32,
    /// The address passed to the release call.
    pub addr: u64,
    /// The block the address belongs to (live or recently freed), if known.
    pub block_addr: u64,
    pub block_size: u64,
    pub block_kind: u32,
    pub region: u32,
    pub stack: u32,
    pub alloc_stack: u32,
    pub free_stack: u32,
    /// The release that first freed the block (for double frees).
    pub first_release_kind: u32,
    pub tid: u32,
    pub _pad: u32,
}

/// Kinds of mapped region ([`RegionRecord::kind`]).
pub mod map_kind {
    /// `mmap(MAP_SHARED | MAP_ANONYMOUS)`.
    pub const ANON_SHARED: u8 = 1;
    /// `mmap(MAP_SHARED)` of `/dev/zero`.
    pub const DEV_ZERO: u8 = 2;
    /// `mmap(MAP_SHARED)` of any other file (including memfd and POSIX shm objects).
    pub const FILE_SHARED: u8 = 3;
    /// `mmap(MAP_PRIVATE | MAP_ANONYMOUS)` (or private `/dev/zero`).
    pub const ANON_PRIVATE: u8 = 4;
    /// `mmap(MAP_PRIVATE)` of a file.
    pub const FILE_PRIVATE: u8 = 5;
    /// A SysV segment attached with `shmat`.
    pub const SHMAT: u8 = 6;
}

/// Flags of a mapped region ([`RegionRecord::flags`]).
pub mod region_flags {
    /// Mapped in the parent before fork(): the creator is `creator_pid`.
    pub const INHERITED: u8 = 1;
}

/// Kinds of [`ShmEvent`].
pub mod shm_event {
    /// shmget(IPC_CREAT) that created the segment (`key`, `shmid`, `size`).
    pub const SYSV_CREATE: u8 = 1;
    /// shmctl(IPC_RMID) that succeeded (`shmid`).
    pub const SYSV_REMOVE: u8 = 2;
    /// shm_open(O_CREAT) that created the object (`name`, `dev`, `ino`).
    pub const POSIX_CREATE: u8 = 3;
    /// shm_unlink that succeeded (`name`).
    pub const POSIX_UNLINK: u8 = 4;
    /// memfd_create (`name`, `dev`, `ino`).
    pub const MEMFD_CREATE: u8 = 5;
    /// Part of a region inherited at fork was unmapped (or replaced) here:
    /// `origin_pid`/`origin_serial` name the region, `addr`/`size` the part.
    pub const INHERITED_UNMAP: u8 = 6;
}

/// The mapping table and the shared-memory event log, under one lock
/// (mapping calls are rare next to malloc).
#[repr(C, align(64))]
pub struct MapTable {
    pub lock: AtomicU32,
    pub _pad: u32,
    /// Offset of `capacity` [`RegionRecord`] slots, the first `len` in use:
    /// non-overlapping regions sorted by *descending* start address (mmap
    /// hands out addresses top-down, so new regions usually go at the end).
    pub table_off: AtomicU64,
    pub capacity: AtomicU64,
    pub len: AtomicU64,
    /// Offset of `events_cap` [`ShmEvent`] slots, the first `events_len` written.
    pub events_off: AtomicU64,
    pub events_cap: AtomicU64,
    pub events_len: AtomicU64,
    /// Events below this index were copied from the parent at fork (not this process's).
    pub events_inherited: AtomicU64,
    /// Regions created so far by this process (each region's `serial`).
    pub serial: AtomicU64,
    /// Mapping calls seen (mmap, mremap, shmat) and unmapping calls (munmap, shmdt).
    pub maps: AtomicU64,
    pub unmaps: AtomicU64,
    pub _reserved: [u64; 5],
}

/// One mapped region of the program's.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct RegionRecord {
    pub start: u64,
    pub len: u64,
    /// Offset in the mapped file.
    pub file_offset: u64,
    /// Device and inode of the mapped file (0 for anonymous memory).
    pub dev: u64,
    pub ino: u64,
    /// Offset of the mapped file's path (from /proc/self/fd), 0 = none.
    pub name_off: u64,
    pub name_len: u32,
    pub stack: u32,
    /// The process that created the region, and its number there: together
    /// they name it across fork.
    pub creator_pid: u32,
    pub serial: u32,
    /// SysV attachments: the segment.
    pub shmid: i32,
    pub key: i32,
    /// [`map_kind`] value.
    pub kind: u8,
    /// [`region_flags`] bits.
    pub flags: u8,
    /// PROT_READ | PROT_WRITE | PROT_EXEC bits at creation.
    pub prot: u8,
    pub _pad: u8,
    pub _pad2: u32,
}

impl RegionRecord {
    #[inline]
    pub fn end(&self) -> u64 {
        self.start.saturating_add(self.len)
    }
}

/// Something that happened to a shared-memory object (see [`shm_event`]).
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct ShmEvent {
    /// From [`Header::event_seq`].
    pub seq: u64,
    pub size: u64,
    pub addr: u64,
    pub dev: u64,
    pub ino: u64,
    pub name_off: u64,
    pub name_len: u32,
    pub stack: u32,
    /// The process the event happened in.
    pub pid: u32,
    pub origin_pid: u32,
    pub origin_serial: u32,
    pub key: i32,
    pub shmid: i32,
    pub what: u8,
    pub _pad: [u8; 3],
}

/// A source location the program handed in (the `leakscope.h` macros): stored
/// once per (file, line, function) and named in stacks by a location frame
/// ([`location_frame`]) whose value is the record's offset. `file_len` bytes of
/// the file name follow the record, then `function_len` bytes of the function name.
#[repr(C)]
pub struct LocationRecord {
    /// The program's pointers to the strings, to find the record again (the CLI ignores them).
    pub file_ptr: u64,
    pub function_ptr: u64,
    pub line: u32,
    pub file_len: u32,
    pub function_len: u32,
    pub _pad: u32,
}

/// Longest file or function name kept in a [`LocationRecord`].
pub const MAX_LOCATION_TEXT: usize = 1024;

/// Top 16 bits of a stack frame that is a source location, not a return
/// address (no user-space address has them; the vsyscall page has all 16 set).
pub const LOCATION_FRAME_TAG: u64 = 0x8000 << 48;

/// The frame naming location `value`: a [`LocationRecord`] offset in a session
/// file, an index into `ProcessTrace::locations` in the trace model.
#[inline]
pub fn location_frame(value: u64) -> u64 {
    LOCATION_FRAME_TAG | (value & 0xffff_ffff_ffff)
}

/// The location value of a frame made by [`location_frame`]; None for return addresses.
#[inline]
pub fn location_frame_value(frame: u64) -> Option<u64> {
    (frame >> 48 == LOCATION_FRAME_TAG >> 48).then_some(frame & 0xffff_ffff_ffff)
}

/// Multiplicative hash of a block address, spread over the full 64 bits.
#[inline]
pub fn hash_addr(addr: u64) -> u64 {
    (addr >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Shard of a block address: the top bits of its hash.
#[inline]
pub fn live_shard_of(hash: u64) -> usize {
    (hash >> 58) as usize
}

/// Hash of a stack (its return addresses).
#[inline]
/// Hash of a stack given outermost frame first: a stack walk that reuses its
/// outer frames reuses their partial hashes too ([`hash_step`]).
pub fn hash_frames(outermost_first: &[u64]) -> u64 {
    finish_hash(outermost_first.iter().fold(HASH_SEED, |h, &f| hash_step(h, f)))
}

pub const HASH_SEED: u64 = 0xcbf2_9ce4_8422_2325;

/// Hash of `frame` followed by the frames already hashed into `outer`.
#[inline]
pub fn hash_step(outer: u64, frame: u64) -> u64 {
    (outer ^ frame).wrapping_mul(0x100_0000_01b3).rotate_left(29)
}

/// Never 0: an all-zero slot means "empty".
#[inline]
pub fn finish_hash(h: u64) -> u64 {
    h | 1
}

#[inline]
pub fn stack_shard_of(hash: u64) -> usize {
    (hash >> 58) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_entry_round_trips_every_field() {
        let e = LiveEntry::new(0x7fff_1234_5670, (3u64 << 32) + 17, AllocKind::NewArray, 5, 0xdead_beef);
        assert_eq!(e.addr(), 0x7fff_1234_5670);
        assert_eq!(e.size(), (3u64 << 32) + 17);
        assert_eq!(e.kind(), AllocKind::NewArray);
        assert_eq!(e.flags(), 5);
        assert_eq!(e.stack(), 0xdead_beef);
        assert!(!e.is_empty());
    }

    #[test]
    fn shards_are_cache_line_sized() {
        assert_eq!(core::mem::size_of::<LiveShard>(), 64);
        assert_eq!(core::mem::size_of::<StackShard>(), 64);
        assert_eq!(core::mem::size_of::<FreedEntry>(), 32);
        assert_eq!(core::mem::size_of::<MapTable>(), 128);
        assert_eq!(core::mem::size_of::<RegionRecord>(), 80);
        assert_eq!(core::mem::size_of::<ShmEvent>(), 80);
    }

    #[test]
    fn release_matching_follows_the_allocator_family() {
        assert!(ReleaseKind::Free.matches(AllocKind::Calloc));
        assert!(ReleaseKind::Delete.matches(AllocKind::New));
        assert!(!ReleaseKind::Delete.matches(AllocKind::NewArray));
        assert!(!ReleaseKind::Free.matches(AllocKind::New));
        assert!(!ReleaseKind::DeleteArray.matches(AllocKind::Malloc));
        assert!(ReleaseKind::Realloc.matches(AllocKind::Malloc));
    }
}
