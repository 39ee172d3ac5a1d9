//! Mappings and shared memory: which regions a process left mapped and
//! which shared-memory objects it left behind, judged over the whole process
//! tree.
//!
//! * A region is listed only in the process that mapped it (regions a child
//!   inherited at fork are its parent's), and not at all when any process of
//!   the tree unmapped it (or part of it): after fork either side may be the
//!   one that cleans up, as in the seed article's examples.
//! * A SysV segment or POSIX object is listed in the process that created it
//!   when it still existed after the run (as `leakscope run` checked), or, when
//!   that was not checked, when no traced process removed it.

use crate::report::{Mapping, MappingKind, ProcessReport, SharedMemory, SharedMemoryKind};
use crate::symbols::{FrameTable, Symbolize};
use crate::Options;
use leakscope_format::model::{EndCheck, MapKind, MapRegion, ProcessTrace, ShmEventKind, Trace};
use std::collections::{HashMap, HashSet};

/// What the whole tree did: regions unmapped by a process that inherited
/// them, segments removed, names unlinked.
#[derive(Default)]
struct TreeFacts {
    released: HashSet<(u32, u32)>,
    sysv_removed: HashSet<i32>,
    posix_unlinked: HashSet<String>,
}

impl TreeFacts {
    fn of(trace: &Trace) -> TreeFacts {
        let mut f = TreeFacts::default();
        for p in &trace.processes {
            for e in &p.maps.events {
                match e.kind {
                    ShmEventKind::InheritedUnmap => {
                        f.released.insert((e.origin_pid, e.origin_serial));
                    }
                    ShmEventKind::SysvRemove => {
                        f.sysv_removed.insert(e.shmid);
                    }
                    ShmEventKind::PosixUnlink => {
                        f.posix_unlinked.insert(posix_name(&e.name).to_owned());
                    }
                    _ => {}
                }
            }
        }
        f
    }
}

/// A POSIX shared-memory name as glibc uses it: without its leading slashes.
pub fn posix_name(name: &str) -> &str {
    name.trim_start_matches('/')
}

/// Fills `mappings`, `shared_memory` and their summary fields of every process
/// report (`reports[i]` is the report of `trace.processes[i]`).
pub fn fill<S: Symbolize + ?Sized>(trace: &Trace, reports: &mut [ProcessReport], sym: &mut S, opts: &Options) {
    let facts = TreeFacts::of(trace);
    for (p, r) in trace.processes.iter().zip(reports.iter_mut()) {
        fill_process(p, &facts, r, sym, opts);
    }
}

fn mapping_kind(r: &MapRegion) -> MappingKind {
    match r.kind {
        MapKind::AnonShared => MappingKind::AnonShared,
        MapKind::DevZero => MappingKind::DevZero,
        MapKind::Shmat => MappingKind::SysvShm,
        MapKind::AnonPrivate => MappingKind::AnonPrivate,
        MapKind::FilePrivate => MappingKind::FilePrivate,
        MapKind::FileShared if r.path.starts_with("/memfd:") => MappingKind::Memfd,
        MapKind::FileShared if r.path.starts_with("/dev/shm/") => MappingKind::PosixShm,
        MapKind::FileShared => MappingKind::FileShared,
    }
}

fn prot_string(prot: u8) -> String {
    [(1, 'r'), (2, 'w'), (4, 'x')].iter().map(|&(bit, c)| if prot & bit != 0 { c } else { '-' }).collect()
}

/// A word as a POSIX shell reads it.
fn shell_word(s: &str) -> String {
    let plain = !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn fill_process<S: Symbolize + ?Sized>(
    p: &ProcessTrace,
    facts: &TreeFacts,
    report: &mut ProcessReport,
    sym: &mut S,
    opts: &Options,
) {
    let stack_of = |id: u32| -> &[u64] {
        let s = p.stacks.get(id as usize).map(Vec::as_slice).unwrap_or(&[]);
        match opts.max_frames {
            Some(n) if s.len() > n => &s[..n],
            _ => s,
        }
    };

    // Regions this process mapped that nobody unmapped.
    let regions: Vec<&MapRegion> = p
        .maps
        .regions
        .iter()
        .filter(|r| !r.inherited && !facts.released.contains(&(r.creator_pid, r.serial)))
        .collect();

    // SysV segments and POSIX objects this process created that are still there.
    let mut seen_sysv = HashSet::new();
    let mut seen_posix = HashSet::new();
    let objects: Vec<_> = p
        .maps
        .events
        .iter()
        .filter(|e| match e.kind {
            ShmEventKind::SysvCreate => {
                seen_sysv.insert(e.shmid)
                    && match e.end {
                        EndCheck::Exists { .. } => true,
                        EndCheck::Gone => false,
                        EndCheck::Unchecked => !facts.sysv_removed.contains(&e.shmid),
                    }
            }
            ShmEventKind::PosixCreate => {
                seen_posix.insert(posix_name(&e.name).to_owned())
                    && match e.end {
                        EndCheck::Exists { .. } => true,
                        EndCheck::Gone => false,
                        EndCheck::Unchecked => !facts.posix_unlinked.contains(posix_name(&e.name)),
                    }
            }
            _ => false,
        })
        .collect();

    if regions.is_empty() && objects.is_empty() {
        return;
    }
    let used = regions.iter().map(|r| stack_of(r.stack)).chain(objects.iter().map(|e| stack_of(e.stack)));
    let table = FrameTable::build_with_locations(sym, &p.modules, &p.locations, used);

    // Group regions by kind, stack contents and object.
    type Key<'a> = (MappingKind, &'a [u64], &'a str, i32, u8);
    let mut index: HashMap<Key, usize> = HashMap::new();
    let mut mappings: Vec<Mapping> = Vec::new();
    for r in &regions {
        let kind = mapping_kind(r);
        let key = (kind, stack_of(r.stack), r.path.as_str(), r.shmid, r.prot);
        let i = *index.entry(key).or_insert_with(|| {
            mappings.push(Mapping {
                kind,
                shared: r.kind.is_shared(),
                bytes: 0,
                regions: 0,
                address: r.addr,
                prot: prot_string(r.prot),
                path: (!r.path.is_empty()).then(|| r.path.clone()),
                shmid: (r.kind == MapKind::Shmat).then_some(r.shmid),
                key: (r.kind == MapKind::Shmat).then_some(r.key),
                stack: table.stack(stack_of(r.stack)),
            });
            mappings.len() - 1
        });
        let m = &mut mappings[i];
        m.bytes = m.bytes.saturating_add(r.len);
        m.regions += 1;
        m.address = m.address.min(r.addr);
    }
    mappings.sort_by(|a, b| {
        b.shared.cmp(&a.shared).then(b.bytes.cmp(&a.bytes)).then(a.kind.cmp(&b.kind)).then(a.address.cmp(&b.address))
    });

    let shared_memory: Vec<SharedMemory> = objects
        .iter()
        .map(|e| {
            let (still_exists, end_bytes, attached) = match e.end {
                EndCheck::Exists { bytes, attached } => (Some(true), Some(bytes), attached),
                EndCheck::Gone => (Some(false), None, None),
                EndCheck::Unchecked => (None, None, None),
            };
            let sysv = e.kind == ShmEventKind::SysvCreate;
            SharedMemory {
                kind: if sysv { SharedMemoryKind::Sysv } else { SharedMemoryKind::Posix },
                key: sysv.then_some(e.key),
                shmid: sysv.then_some(e.shmid),
                name: (!sysv).then(|| e.name.clone()),
                bytes: end_bytes.unwrap_or(e.size),
                still_exists,
                attached,
                remove_command: if sysv {
                    format!("ipcrm -m {}", e.shmid)
                } else {
                    format!("rm {}", shell_word(&format!("/dev/shm/{}", posix_name(&e.name))))
                },
                stack: table.stack(stack_of(e.stack)),
            }
        })
        .collect();

    let shared: Vec<&Mapping> = mappings.iter().filter(|m| m.shared).collect();
    report.summary.mapped_bytes = shared.iter().map(|m| m.bytes).sum();
    report.summary.mapping_records = shared.len() as u64;
    report.summary.shared_memory_objects = shared_memory.len() as u64;
    report.summary.shared_memory_bytes = shared_memory.iter().map(|s| s.bytes).sum();
    report.mappings = mappings;
    report.shared_memory = shared_memory;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::symbols::NoSymbols;
    use leakscope_format::model::*;

    fn region(addr: u64, kind: MapKind, creator: u32, serial: u32, inherited: bool) -> MapRegion {
        MapRegion {
            addr,
            len: 8192,
            kind,
            prot: 3,
            inherited,
            stack: 1,
            creator_pid: creator,
            serial,
            path: String::new(),
            file_offset: 0,
            dev: 0,
            ino: 0,
            shmid: -1,
            key: 0,
        }
    }

    fn event(kind: ShmEventKind, pid: u32) -> ShmEvent {
        ShmEvent {
            kind,
            pid,
            stack: 1,
            key: 0,
            shmid: -1,
            size: 1024,
            addr: 0,
            name: String::new(),
            dev: 0,
            ino: 0,
            origin_pid: 0,
            origin_serial: 0,
            end: EndCheck::Unchecked,
        }
    }

    fn process(pid: u32, parent: u32, regions: Vec<MapRegion>, events: Vec<ShmEvent>) -> ProcessTrace {
        ProcessTrace {
            pid,
            parent_pid: parent,
            exec_index: 0,
            argv: vec!["./prog".into()],
            exe: "/tmp/prog".into(),
            ending: Ending::Exited(0),
            finalized: true,
            modules: vec![],
            stacks: vec![vec![], vec![0x1101, 0x1201]],
            blocks: vec![],
            errors: vec![],
            stats: Stats::default(),
            scan: Default::default(),
            maps: Maps { regions, events, maps: 0, unmaps: 0 },
            locations: Vec::new(),
        }
    }

    fn report(trace: &Trace) -> crate::report::Report {
        crate::analyse(trace, &mut NoSymbols, &Options::default())
    }

    #[test]
    fn a_region_unmapped_anywhere_in_the_tree_is_not_listed_and_inherited_copies_never_are() {
        let parent = process(
            10,
            1,
            vec![region(0x1000_0000, MapKind::AnonShared, 10, 0, false), region(0x2000_0000, MapKind::DevZero, 10, 1, false)],
            vec![],
        );
        let mut unmap = event(ShmEventKind::InheritedUnmap, 11);
        unmap.origin_pid = 10;
        unmap.origin_serial = 0;
        let child = process(
            11,
            10,
            vec![region(0x2000_0000, MapKind::DevZero, 10, 1, true), region(0x3000_0000, MapKind::AnonShared, 11, 0, false)],
            vec![unmap],
        );
        let r = report(&Trace { processes: vec![parent, child] });
        let p = &r.processes[0];
        assert_eq!(p.mappings.len(), 1, "{:?}", p.mappings);
        assert_eq!(p.mappings[0].kind, crate::report::MappingKind::DevZero);
        assert_eq!(p.mappings[0].address, 0x2000_0000);
        let c = &r.processes[1];
        assert_eq!(c.mappings.len(), 1, "only its own: {:?}", c.mappings);
        assert_eq!(c.mappings[0].address, 0x3000_0000);
        assert_eq!(r.summary.mapping_records, 2);
        assert_eq!(r.summary.mapped_bytes, 16384);
        assert!(r.has_findings());
    }

    #[test]
    fn private_mappings_are_listed_but_are_not_findings() {
        let p = process(10, 1, vec![region(0x1000_0000, MapKind::AnonPrivate, 10, 0, false)], vec![]);
        let r = report(&Trace { processes: vec![p] });
        let p = &r.processes[0];
        assert_eq!(p.mappings.len(), 1);
        assert!(!p.mappings[0].shared);
        assert_eq!(p.mappings[0].prot, "rw-");
        assert_eq!(p.summary.mapping_records, 0);
        assert!(!r.has_findings() && !p.fails(true));
    }

    #[test]
    fn segments_follow_the_end_check_and_else_the_removals_of_the_whole_tree() {
        let sysv = |shmid: i32, end: EndCheck| ShmEvent { shmid, end, ..event(ShmEventKind::SysvCreate, 10) };
        let parent = process(
            10,
            1,
            vec![],
            vec![
                sysv(1, EndCheck::Exists { bytes: 4096, attached: Some(1) }),
                sysv(2, EndCheck::Gone),
                sysv(3, EndCheck::Unchecked),
                sysv(4, EndCheck::Unchecked),
                // The same segment opened again with IPC_CREAT: listed once.
                sysv(1, EndCheck::Exists { bytes: 4096, attached: Some(1) }),
            ],
        );
        let child = process(11, 10, vec![], vec![ShmEvent { shmid: 3, ..event(ShmEventKind::SysvRemove, 11) }]);
        let r = report(&Trace { processes: vec![parent, child] });
        let got: Vec<(Option<i32>, Option<bool>, u64)> =
            r.processes[0].shared_memory.iter().map(|s| (s.shmid, s.still_exists, s.bytes)).collect();
        assert_eq!(got, vec![(Some(1), Some(true), 4096), (Some(4), None, 1024)]);
        assert_eq!(r.processes[0].shared_memory[0].remove_command, "ipcrm -m 1");
        assert_eq!(r.processes[0].shared_memory[0].attached, Some(1));
        assert_eq!(r.summary.shared_memory_objects, 2);
        assert!(r.processes[0].fails(false));
    }

    #[test]
    fn posix_objects_are_named_and_removed_with_a_quoted_command() {
        let posix = |name: &str, end: EndCheck| ShmEvent { name: name.into(), end, ..event(ShmEventKind::PosixCreate, 10) };
        let p = process(
            10,
            1,
            vec![],
            vec![
                posix("/it's here", EndCheck::Exists { bytes: 8192, attached: None }),
                posix("/unlinked", EndCheck::Unchecked),
                posix("/kept", EndCheck::Unchecked),
                ShmEvent { name: "unlinked".into(), ..event(ShmEventKind::PosixUnlink, 10) },
            ],
        );
        let r = report(&Trace { processes: vec![p] });
        let s = &r.processes[0].shared_memory;
        assert_eq!(s.len(), 2, "{s:?}");
        assert_eq!(s[0].name.as_deref(), Some("/it's here"));
        assert_eq!(s[0].remove_command, r"rm '/dev/shm/it'\''s here'");
        assert_eq!(s[0].bytes, 8192);
        assert_eq!(s[1].name.as_deref(), Some("/kept"));
        assert_eq!(s[1].remove_command, "rm /dev/shm/kept");
        assert_eq!(s[1].key, None);
    }

    #[test]
    fn file_mappings_are_told_apart_by_their_path() {
        let mut memfd = region(0x1000_0000, MapKind::FileShared, 10, 0, false);
        memfd.path = "/memfd:buf (deleted)".into();
        let mut posix = region(0x2000_0000, MapKind::FileShared, 10, 1, false);
        posix.path = "/dev/shm/seg".into();
        let mut file = region(0x3000_0000, MapKind::FileShared, 10, 2, false);
        file.path = "/tmp/data".into();
        let r = report(&Trace { processes: vec![process(10, 1, vec![memfd, posix, file], vec![])] });
        let mut kinds: Vec<&str> = r.processes[0].mappings.iter().map(|m| m.kind.name()).collect();
        kinds.sort();
        assert_eq!(kinds, ["file-shared", "memfd", "posix-shm"]);
    }
}
