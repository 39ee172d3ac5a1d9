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
    let table = FrameTable::build(sym, &p.modules, used);

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
