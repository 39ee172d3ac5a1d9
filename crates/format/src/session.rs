//! Reading session files (see [`crate::layout`]) into a [`ProcessTrace`].
//!
//! The writer may have been killed at any instruction, so every offset and
//! length is checked against the bytes actually present; a damaged part is
//! skipped and reported through [`SessionRead::damage`], never a panic.

use crate::layout::{self, entry_flags, AllocKind, LeakClass, ReleaseKind};
use crate::model::*;
use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::mem::{offset_of, size_of};
use std::path::{Path, PathBuf};

/// Environment variable through which the CLI hands the session directory to the preload.
pub const SESSION_ENV: &str = "LEAKSCOPE_SESSION";
/// Session files are named `proc-<pid>-<exec index>.lsm`.
pub const FILE_PREFIX: &str = "proc-";
pub const FILE_SUFFIX: &str = ".lsm";

#[derive(Debug)]
pub struct SessionRead {
    pub process: ProcessTrace,
    /// State word from the header (see [`layout::state`]).
    pub state: u32,
    /// What could not be read back (empty when the file was whole).
    pub damage: Vec<String>,
}

/// Session files in `dir`, ordered by pid and exec index.
pub fn session_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<(u32, u32, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
        let Some(core) = name.strip_prefix(FILE_PREFIX).and_then(|n| n.strip_suffix(FILE_SUFFIX)) else {
            continue;
        };
        let mut parts = core.split('-');
        let (Some(pid), Some(idx)) = (parts.next(), parts.next()) else { continue };
        let (Ok(pid), Ok(idx)) = (pid.parse(), idx.parse()) else { continue };
        files.push((pid, idx, path));
    }
    files.sort();
    Ok(files.into_iter().map(|(_, _, p)| p).collect())
}

/// (pid, scans completed) of a still-running process, from its session
/// file's header alone: cheap enough to poll. None once it has ended.
pub fn read_scan_seq(path: &Path) -> Option<(u32, u64)> {
    let mut file = File::open(path).ok()?;
    let mut bytes = vec![0u8; size_of::<layout::Header>()];
    file.read_exact(&mut bytes).ok()?;
    let v = View(&bytes);
    if v.slice(0, 8) != Some(&layout::MAGIC[..]) {
        return None;
    }
    if v.u32(offset_of!(layout::Header, state) as u64)? != layout::state::RUNNING {
        return None;
    }
    Some((v.u32(offset_of!(layout::Header, pid) as u64)?, v.u64(offset_of!(layout::Header, scan_seq) as u64)?))
}

pub fn read_session_file(path: &Path) -> Result<SessionRead, String> {
    let mut file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let header_size = size_of::<layout::Header>();
    let mut bytes = vec![0u8; header_size];
    file.read_exact(&mut bytes)
        .map_err(|_| format!("{}: session file is shorter than its header", path.display()))?;
    let view = View(&bytes);
    if view.slice(0, 8) != Some(&layout::MAGIC[..]) {
        return Err(format!("{}: not a leakscope session file", path.display()));
    }
    let version = view.u32(offset_of!(layout::Header, version) as u64);
    if version != Some(layout::LAYOUT_VERSION) {
        return Err(format!("{}: session layout version {:?} is not supported", path.display(), version));
    }
    // Only the prefix below the bump pointer was ever written; the rest is sparse.
    let used = view.u64(offset_of!(layout::Header, bump) as u64).unwrap_or(0);
    let file_len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let used = used.min(file_len).max(header_size as u64);
    // Read into spare capacity: zero-filling megabytes first costs more than the read.
    bytes.reserve_exact(used as usize - header_size);
    (&mut file).take(used - header_size as u64).read_to_end(&mut bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    if (bytes.len() as u64) < used {
        return Err(format!("{}: the session file ends before its used size", path.display()));
    }
    Ok(parse(&bytes))
}

fn parse(bytes: &[u8]) -> SessionRead {
    let v = View(bytes);
    let mut damage = Vec::new();
    let h = |field: usize| v.u64(field as u64).unwrap_or(0);
    let h32 = |field: usize| v.u32(field as u64).unwrap_or(0);

    let pid = h32(offset_of!(layout::Header, pid));
    let ppid = h32(offset_of!(layout::Header, ppid));
    let state = h32(offset_of!(layout::Header, state));
    let exit_code = h32(offset_of!(layout::Header, exit_code)) as i32;
    let exec_index = h32(offset_of!(layout::Header, exec_index));
    let argv = v
        .slice(h(offset_of!(layout::Header, argv_off)), h(offset_of!(layout::Header, argv_len)))
        .map(|b| {
            b.split(|&c| c == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
        .unwrap_or_default();
    let exe = v
        .slice(h(offset_of!(layout::Header, exe_off)), h(offset_of!(layout::Header, exe_len)))
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default();

    let modules = read_modules(&v, h(offset_of!(layout::Header, modules_head)), &mut damage);

    let mut stacks = StackRemap::new(&v);
    let mut blocks = Vec::new();
    let mut stats = Stats::default();
    for shard in 0..layout::SHARDS {
        let base = (offset_of!(layout::Header, live) + shard * size_of::<layout::LiveShard>()) as u64;
        stats.allocs += v.u64(base + offset_of!(layout::LiveShard, allocs) as u64).unwrap_or(0);
        stats.frees += v.u64(base + offset_of!(layout::LiveShard, frees) as u64).unwrap_or(0);
        let table = v.u64(base + offset_of!(layout::LiveShard, table_off) as u64).unwrap_or(0);
        let cap = v.u64(base + offset_of!(layout::LiveShard, capacity) as u64).unwrap_or(0);
        if table == 0 {
            continue;
        }
        let entry_size = size_of::<layout::LiveEntry>() as u64;
        if v.slice(table, cap.saturating_mul(entry_size)).is_none() {
            damage.push(format!("live table of shard {shard} lies outside the file"));
            continue;
        }
        for i in 0..cap {
            let at = table + i * entry_size;
            let e = layout::LiveEntry { word0: v.u64(at).unwrap_or(0), word1: v.u64(at + 8).unwrap_or(0) };
            if e.is_empty() || e.flags() & entry_flags::INTERNAL != 0 {
                continue;
            }
            let stack = stacks.map(e.stack(), &mut damage);
            let class = LeakClass::Unknown;
            blocks.push(Block { addr: e.addr(), size: e.size(), kind: e.kind(), stack, flags: e.flags(), class });
        }
    }
    blocks.sort_by_key(|b| b.addr);
    let scan = read_scan(&v, &mut blocks, &mut damage);
    let stats_at = offset_of!(layout::Header, stats) as u64;
    stats.preload = (0..layout::STAT_COUNT as u64).map(|i| v.u64(stats_at + 8 * i).unwrap_or(0)).collect();

    let errors = read_errors(&v, h(offset_of!(layout::Header, errors_head)), &mut stacks, &mut damage);
    let maps = read_maps(&v, pid, &mut stacks, &mut damage);

    let ending = match state {
        // i32::MIN: exit handlers ran but the status was not seen (return from main).
        layout::state::EXITED if exit_code != i32::MIN => Ending::Exited(exit_code),
        layout::state::EXECED => Ending::Execed,
        layout::state::QUICK_EXIT => Ending::Exited(exit_code),
        layout::state::KILLED => Ending::Signaled(exit_code),
        _ => Ending::Unknown,
    };
    let mut stack_table = stacks.stacks;
    let locations = read_locations(&v, &mut stack_table, &mut damage);
    SessionRead {
        process: ProcessTrace {
            pid,
            parent_pid: ppid,
            exec_index,
            argv,
            exe,
            ending,
            finalized: state == layout::state::EXITED,
            modules,
            stacks: stack_table,
            blocks,
            errors,
            stats,
            scan,
            maps,
            locations,
        },
        state,
        damage,
    }
}

/// The mapping table and shared-memory events (the header's appended block).
fn read_maps(v: &View, pid: u32, stacks: &mut StackRemap, damage: &mut Vec<String>) -> Maps {
    let mut maps = Maps::default();
    let base = offset_of!(layout::Header, maps) as u64;
    let header_size = v.u32(offset_of!(layout::Header, header_size) as u64).unwrap_or(0) as u64;
    if header_size < base + size_of::<layout::MapTable>() as u64 {
        // Written before the block existed.
        return maps;
    }
    let f = |field: usize| v.u64(base + field as u64).unwrap_or(0);
    maps.maps = f(offset_of!(layout::MapTable, maps));
    maps.unmaps = f(offset_of!(layout::MapTable, unmaps));
    let string = |off: u64, len: u32| -> String {
        if off == 0 {
            return String::new();
        }
        v.slice(off, len as u64).map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default()
    };

    let table = f(offset_of!(layout::MapTable, table_off));
    let cap = f(offset_of!(layout::MapTable, capacity));
    let len = f(offset_of!(layout::MapTable, len));
    let rec_size = size_of::<layout::RegionRecord>() as u64;
    if table != 0 {
        match v.slice(table, cap.saturating_mul(rec_size)) {
            None => damage.push("mapping table lies outside the file".into()),
            Some(_) if len > cap => damage.push("mapping table is longer than its capacity".into()),
            Some(bytes) => {
                for rec in bytes.chunks_exact(rec_size as usize).take(len as usize) {
                    let r = View(rec);
                    let g64 = |field: usize| r.u64(field as u64).unwrap_or(0);
                    let g32 = |field: usize| r.u32(field as u64).unwrap_or(0);
                    let g8 = |field: usize| r.slice(field as u64, 1).map_or(0, |b| b[0]);
                    use layout::RegionRecord as R;
                    let Some(kind) = MapKind::from_u8(g8(offset_of!(R, kind))) else {
                        damage.push("mapping record of an unknown kind".into());
                        continue;
                    };
                    let stack = stacks.map(g32(offset_of!(R, stack)), damage);
                    maps.regions.push(MapRegion {
                        addr: g64(offset_of!(R, start)),
                        len: g64(offset_of!(R, len)),
                        kind,
                        prot: g8(offset_of!(R, prot)),
                        inherited: g8(offset_of!(R, flags)) & layout::region_flags::INHERITED != 0,
                        stack,
                        creator_pid: g32(offset_of!(R, creator_pid)),
                        serial: g32(offset_of!(R, serial)),
                        path: string(g64(offset_of!(R, name_off)), g32(offset_of!(R, name_len))),
                        file_offset: g64(offset_of!(R, file_offset)),
                        dev: g64(offset_of!(R, dev)),
                        ino: g64(offset_of!(R, ino)),
                        shmid: g32(offset_of!(R, shmid)) as i32,
                        key: g32(offset_of!(R, key)) as i32,
                    });
                }
            }
        }
    }
    maps.regions.sort_by_key(|r| r.addr);

    let events = f(offset_of!(layout::MapTable, events_off));
    let cap = f(offset_of!(layout::MapTable, events_cap));
    let len = f(offset_of!(layout::MapTable, events_len));
    let first = f(offset_of!(layout::MapTable, events_inherited));
    let ev_size = size_of::<layout::ShmEvent>() as u64;
    if events != 0 {
        match v.slice(events, cap.saturating_mul(ev_size)) {
            None => damage.push("shared-memory event log lies outside the file".into()),
            Some(_) if len > cap => damage.push("shared-memory event log is longer than its capacity".into()),
            Some(bytes) => {
                let mut seqd = Vec::new();
                for rec in bytes.chunks_exact(ev_size as usize).take(len as usize).skip(first as usize) {
                    let r = View(rec);
                    let g64 = |field: usize| r.u64(field as u64).unwrap_or(0);
                    let g32 = |field: usize| r.u32(field as u64).unwrap_or(0);
                    use layout::ShmEvent as E;
                    let what = r.slice(offset_of!(E, what) as u64, 1).map_or(0, |b| b[0]);
                    let Some(kind) = ShmEventKind::from_u8(what) else {
                        // Reserved but not yet written when the process died.
                        continue;
                    };
                    let stack = stacks.map(g32(offset_of!(E, stack)), damage);
                    let event_pid = g32(offset_of!(E, pid));
                    seqd.push((
                        g64(offset_of!(E, seq)),
                        ShmEvent {
                            kind,
                            pid: if event_pid == 0 { pid } else { event_pid },
                            stack,
                            key: g32(offset_of!(E, key)) as i32,
                            shmid: g32(offset_of!(E, shmid)) as i32,
                            size: g64(offset_of!(E, size)),
                            addr: g64(offset_of!(E, addr)),
                            name: string(g64(offset_of!(E, name_off)), g32(offset_of!(E, name_len))),
                            dev: g64(offset_of!(E, dev)),
                            ino: g64(offset_of!(E, ino)),
                            origin_pid: g32(offset_of!(E, origin_pid)),
                            origin_serial: g32(offset_of!(E, origin_serial)),
                            end: EndCheck::Unchecked,
                        },
                    ));
                }
                seqd.sort_by_key(|(seq, _)| *seq);
                maps.events = seqd.into_iter().map(|(_, e)| e).collect();
            }
        }
    }
    maps
}

/// The source locations named by location frames (record offsets in the
/// file), which become indices into the returned table. A frame whose record
/// is damaged is dropped.
fn read_locations(v: &View, stacks: &mut [Vec<u64>], damage: &mut Vec<String>) -> Vec<SourceLocation> {
    let mut index: HashMap<u64, u64> = HashMap::new();
    let mut out = Vec::new();
    for s in stacks.iter_mut() {
        let mut dropped = false;
        for f in s.iter_mut() {
            let Some(off) = layout::location_frame_value(*f) else { continue };
            let i = match index.get(&off) {
                Some(&i) => i,
                None => match read_location(v, off) {
                    Some(l) => {
                        out.push(l);
                        index.insert(off, out.len() as u64 - 1);
                        out.len() as u64 - 1
                    }
                    None => {
                        damage.push(format!("source location record at {off:#x} lies outside the file"));
                        *f = 0;
                        dropped = true;
                        continue;
                    }
                },
            };
            *f = layout::location_frame(i);
        }
        if dropped {
            s.retain(|&f| f != 0);
        }
    }
    out
}

fn read_location(v: &View, off: u64) -> Option<SourceLocation> {
    use layout::LocationRecord as R;
    let line = v.u32(off.checked_add(offset_of!(R, line) as u64)?)?;
    let file_len = v.u32(off + offset_of!(R, file_len) as u64)? as u64;
    let function_len = v.u32(off + offset_of!(R, function_len) as u64)? as u64;
    if file_len > layout::MAX_LOCATION_TEXT as u64 || function_len > layout::MAX_LOCATION_TEXT as u64 {
        return None;
    }
    let text = off + size_of::<R>() as u64;
    let file = v.slice(text, file_len)?;
    let function = v.slice(text + file_len, function_len)?;
    Some(SourceLocation {
        file: String::from_utf8_lossy(file).into_owned(),
        line,
        function: String::from_utf8_lossy(function).into_owned(),
    })
}

/// The classes found by the last reachability scan, applied to `blocks` (sorted by address).
fn read_scan(v: &View, blocks: &mut [Block], damage: &mut Vec<String>) -> Scan {
    let h32 = |field: usize| v.u32(field as u64).unwrap_or(0);
    let h64 = |field: usize| v.u64(field as u64).unwrap_or(0);
    let state = h32(offset_of!(layout::Header, scan_state));
    if state == layout::scan_state::NONE {
        return Scan::default();
    }
    let threads = h32(offset_of!(layout::Header, scan_threads));
    let scan = Scan {
        state,
        seq: h64(offset_of!(layout::Header, scan_seq)),
        threads_stopped: threads & 0xffff,
        threads_not_stopped: threads >> 16,
        nanos: h64(offset_of!(layout::Header, scan_ns)),
    };
    let off = h64(offset_of!(layout::Header, scan_off));
    let count = h64(offset_of!(layout::Header, scan_count));
    let Some(entries) = v.slice(off, count.saturating_mul(8)) else {
        damage.push("reachability results lie outside the file".into());
        return scan;
    };
    for e in entries.chunks_exact(8) {
        let e = u64::from_le_bytes(e.try_into().unwrap());
        let addr = e & 0xffff_ffff_ffff;
        if let Ok(i) = blocks.binary_search_by_key(&addr, |b| b.addr) {
            blocks[i].class = LeakClass::from_u8((e >> 56) as u8);
        }
    }
    scan
}

fn read_modules(v: &View, head: u64, damage: &mut Vec<String>) -> Vec<Module> {
    let mut modules = Vec::new();
    let mut at = head;
    while at != 0 {
        if modules.len() > 100_000 {
            damage.push("module list does not end".into());
            break;
        }
        let f = |field: usize| v.u64(at.saturating_add(field as u64));
        let (Some(next), Some(base), Some(lo), Some(hi), Some(unloaded), Some(path_off), Some(path_len)) = (
            f(offset_of!(layout::ModuleRecord, next)),
            f(offset_of!(layout::ModuleRecord, base)),
            f(offset_of!(layout::ModuleRecord, lo)),
            f(offset_of!(layout::ModuleRecord, hi)),
            f(offset_of!(layout::ModuleRecord, unloaded_seq)),
            f(offset_of!(layout::ModuleRecord, path_off)),
            f(offset_of!(layout::ModuleRecord, path_len)),
        ) else {
            damage.push("module record lies outside the file".into());
            break;
        };
        let id_len = v.u32(at.saturating_add(offset_of!(layout::ModuleRecord, build_id_len) as u64)).unwrap_or(0) as u64;
        let build_id = v
            .slice(at.saturating_add(offset_of!(layout::ModuleRecord, build_id) as u64), id_len.min(layout::MAX_BUILD_ID as u64))
            .unwrap_or_default()
            .to_vec();
        let path = v.slice(path_off, path_len).map(|b| String::from_utf8_lossy(b).into_owned());
        modules.push(Module { path: path.unwrap_or_default(), base, lo, hi, build_id, unloaded: unloaded != 0 });
        at = next;
    }
    // Oldest first, the order the loader saw them.
    modules.reverse();
    modules
}

fn read_errors(v: &View, head: u64, stacks: &mut StackRemap, damage: &mut Vec<String>) -> Vec<HeapError> {
    let mut errors: Vec<(u64, HeapError)> = Vec::new();
    let mut at = head;
    while at != 0 {
        if errors.len() > 10_000_000 {
            damage.push("error list does not end".into());
            break;
        }
        let g64 = |field: usize| v.u64(at.saturating_add(field as u64));
        let g32 = |field: usize| v.u32(at.saturating_add(field as u64));
        use layout::ErrorRecord as R;
        let (Some(next), Some(seq), Some(kind), Some(release), Some(addr)) = (
            g64(offset_of!(R, next)),
            g64(offset_of!(R, seq)),
            g32(offset_of!(R, kind)),
            g32(offset_of!(R, release_kind)),
            g64(offset_of!(R, addr)),
        ) else {
            damage.push("error record lies outside the file".into());
            break;
        };
        let block_addr = g64(offset_of!(R, block_addr)).unwrap_or(0);
        let block_size = g64(offset_of!(R, block_size)).unwrap_or(0);
        let block_kind = g32(offset_of!(R, block_kind)).unwrap_or(0);
        let region = g32(offset_of!(R, region)).unwrap_or(0);
        let stack = g32(offset_of!(R, stack)).unwrap_or(0);
        let alloc_stack = g32(offset_of!(R, alloc_stack)).unwrap_or(0);
        let free_stack = g32(offset_of!(R, free_stack)).unwrap_or(0);
        let first_release = g32(offset_of!(R, first_release_kind)).unwrap_or(0);
        let kind = match kind {
            layout::error_kind::DOUBLE_FREE => ErrorKind::DoubleFree,
            layout::error_kind::INVALID_FREE => ErrorKind::InvalidFree,
            _ => ErrorKind::MismatchedFree,
        };
        let region = match region {
            layout::region::HEAP_INTERIOR => Region::HeapInterior,
            layout::region::STACK => Region::Stack,
            layout::region::GLOBAL => Region::Global,
            _ => Region::Unknown,
        };
        let block = (block_addr != 0).then(|| ErrorBlock {
            addr: block_addr,
            size: block_size,
            kind: AllocKind::from_u8(block_kind as u8),
            alloc_stack: stacks.map(alloc_stack, damage),
            first_release: (first_release != 0).then(|| ReleaseKind::from_u8(first_release as u8)),
            free_stack: stacks.map(free_stack, damage),
        });
        errors.push((
            seq,
            HeapError {
                kind,
                release: ReleaseKind::from_u8(release as u8),
                addr,
                region,
                stack: stacks.map(stack, damage),
                block,
            },
        ));
        at = next;
    }
    errors.sort_by_key(|(seq, _)| *seq);
    errors.into_iter().map(|(_, e)| e).collect()
}

/// Turns store ids (offsets / 8) into dense indices of [`ProcessTrace::stacks`].
struct StackRemap<'a> {
    view: &'a View<'a>,
    index: HashMap<u32, u32>,
    stacks: Vec<Vec<u64>>,
}

impl<'a> StackRemap<'a> {
    fn new(view: &'a View<'a>) -> Self {
        StackRemap { view, index: HashMap::new(), stacks: vec![Vec::new()] }
    }

    fn map(&mut self, id: u32, damage: &mut Vec<String>) -> u32 {
        if id == layout::NO_STACK {
            return 0;
        }
        if let Some(&i) = self.index.get(&id) {
            return i;
        }
        let at = id as u64 * 8;
        let len = self.view.u32(at + offset_of!(layout::StackRecord, len) as u64);
        let frames_at = at + size_of::<layout::StackRecord>() as u64;
        let frames = match len {
            Some(n) if n as usize <= layout::MAX_FRAMES => self.view.slice(frames_at, n as u64 * 8),
            _ => None,
        };
        let Some(frames) = frames else {
            damage.push(format!("stack {id} lies outside the file"));
            self.index.insert(id, 0);
            return 0;
        };
        // Stored outermost first; the model wants innermost first.
        let frames = frames.chunks_exact(8).rev().map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect();
        let i = self.stacks.len() as u32;
        self.stacks.push(frames);
        self.index.insert(id, i);
        i
    }
}

/// Bounds-checked little-endian reads from the file's bytes.
struct View<'a>(&'a [u8]);

impl<'a> View<'a> {
    fn slice(&self, off: u64, len: u64) -> Option<&'a [u8]> {
        let end = off.checked_add(len)?;
        if end > self.0.len() as u64 {
            return None;
        }
        Some(&self.0[off as usize..end as usize])
    }
    fn u64(&self, off: u64) -> Option<u64> {
        self.slice(off, 8).map(|b| u64::from_le_bytes(b.try_into().unwrap()))
    }
    fn u32(&self, off: u64) -> Option<u32> {
        self.slice(off, 4).map(|b| u32::from_le_bytes(b.try_into().unwrap()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_refused_with_a_message() {
        let dir = std::env::temp_dir().join(format!("ls-session-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("proc-1-0.lsm");
        std::fs::write(&f, b"not a session").unwrap();
        assert!(read_session_file(&f).unwrap_err().contains("shorter than its header"));
        std::fs::write(&f, vec![7u8; 100_000]).unwrap();
        assert!(read_session_file(&f).unwrap_err().contains("not a leakscope session file"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_zeroed_header_with_magic_parses_to_an_empty_process() {
        let mut bytes = vec![0u8; size_of::<layout::Header>()];
        bytes[..8].copy_from_slice(&layout::MAGIC);
        bytes[offset_of!(layout::Header, version)..][..4].copy_from_slice(&layout::LAYOUT_VERSION.to_le_bytes());
        // Dangling offsets everywhere: must be reported, not followed.
        bytes[offset_of!(layout::Header, modules_head)..][..8].copy_from_slice(&u64::MAX.to_le_bytes());
        let r = parse(&bytes);
        assert!(r.process.blocks.is_empty());
        assert_eq!(r.damage.len(), 1);
    }
}
