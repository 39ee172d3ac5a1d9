use super::*;
use crate::symbols::{ResolvedAddr, SymFrame};
use leakscope_format::layout::entry_flags;
use leakscope_format::model::*;
use std::collections::HashMap;

/// A symbolizer answering from a table, remembering what it was asked.
#[derive(Default)]
struct FakeSym {
    table: HashMap<u64, ResolvedAddr>,
    calls: Vec<Vec<u64>>,
}

impl FakeSym {
    fn with(mut self, addr: u64, module: &str, frames: &[(&str, &str, u32, bool)]) -> Self {
        self.table.insert(
            addr,
            ResolvedAddr {
                module: Some(module.into()),
                frames: frames
                    .iter()
                    .map(|&(f, file, line, inlined)| SymFrame {
                        function: Some(f.into()),
                        file: Some(file.into()),
                        line: Some(line),
                        inlined,
                    })
                    .collect(),
            },
        );
        self
    }
}

impl Symbolize for FakeSym {
    fn symbolize(&mut self, _modules: &[Module], addrs: &[u64]) -> Vec<ResolvedAddr> {
        self.calls.push(addrs.to_vec());
        addrs
            .iter()
            .map(|a| {
                self.table.get(a).cloned().unwrap_or(ResolvedAddr {
                    module: None,
                    frames: vec![SymFrame { function: None, file: None, line: None, inlined: false }],
                })
            })
            .collect()
    }
}

fn block(addr: u64, size: u64, kind: AllocKind, stack: u32, flags: u8) -> Block {
    Block { addr, size, kind, stack, flags, class: leakscope_format::model::LeakClass::Unknown }
}

fn process(pid: u32, blocks: Vec<Block>) -> ProcessTrace {
    ProcessTrace {
        pid,
        parent_pid: 1,
        exec_index: 0,
        argv: vec!["./prog".into(), "x".into()],
        exe: "/tmp/prog".into(),
        ending: Ending::Exited(0),
        finalized: true,
        modules: vec![Module {
            path: "/tmp/prog".into(),
            base: 0x1000,
            lo: 0x1000,
            hi: 0x9000,
            build_id: vec![],
            unloaded: false,
        }],
        stacks: vec![
            vec![],
            vec![0x1101, 0x1201],
            vec![0x1301, 0x1201],
            // Same contents as stack 1 under another id: must group with it.
            vec![0x1101, 0x1201],
        ],
        blocks,
        errors: vec![],
        stats: Stats { allocs: 100, frees: 90, ..Default::default() },
        scan: Default::default(),
        maps: Default::default(),
        locations: Vec::new(),
    }
}

#[test]
fn blocks_group_by_stack_contents_and_allocator() {
    let p = process(
        7,
        vec![
            block(0x10, 10, AllocKind::Malloc, 1, 0),
            block(0x20, 20, AllocKind::Malloc, 3, 0),
            block(0x30, 40, AllocKind::Calloc, 1, 0),
            block(0x40, 5, AllocKind::Malloc, 2, 0),
        ],
    );
    let groups = leaks::group(&p);
    assert_eq!(groups.len(), 3);
    assert_eq!((groups[0].kind, groups[0].bytes, groups[0].blocks), (AllocKind::Calloc, 40, 1));
    assert_eq!((groups[1].kind, groups[1].bytes, groups[1].blocks), (AllocKind::Malloc, 30, 2));
    assert_eq!((groups[2].stack, groups[2].bytes), (2, 5));
}

#[test]
fn equal_bytes_sort_by_blocks_descending() {
    let p = process(
        7,
        vec![
            block(0x10, 16, AllocKind::Malloc, 1, 0),
            block(0x20, 8, AllocKind::New, 2, 0),
            block(0x30, 8, AllocKind::New, 2, 0),
            block(0x40, 100, AllocKind::NewArray, 0, 0),
        ],
    );
    let r = analyse_process(&p, &mut FakeSym::default(), &Options::default());
    let got: Vec<(u64, u64, Allocator)> = r.leaks.iter().map(|l| (l.bytes, l.blocks, l.allocator)).collect();
    assert_eq!(got, vec![(100, 1, Allocator::NewArray), (16, 2, Allocator::New), (16, 1, Allocator::Malloc)]);
    // A stack with no frames gives [].
    assert!(r.leaks[0].stack.is_empty());
}

#[test]
fn inherited_ignored_and_internal_blocks_are_not_leaks() {
    let p = process(
        7,
        vec![
            block(0x10, 10, AllocKind::Malloc, 1, entry_flags::INHERITED),
            block(0x20, 20, AllocKind::Malloc, 1, entry_flags::IGNORED),
            block(0x30, 30, AllocKind::Malloc, 1, entry_flags::INTERNAL),
            block(0x40, 40, AllocKind::Malloc, 1, 0),
        ],
    );
    let r = analyse_process(&p, &mut FakeSym::default(), &Options::default());
    assert_eq!(r.leaks.len(), 1);
    assert_eq!((r.leaks[0].bytes, r.leaks[0].blocks), (40, 1));
    assert_eq!(r.summary.leaked_bytes, 40);
}

#[test]
fn frames_are_call_sites_expanded_per_inline_level_in_one_batch() {
    let p = process(7, vec![block(0x10, 10, AllocKind::Malloc, 1, 0), block(0x20, 10, AllocKind::Calloc, 2, 0)]);
    let mut sym = FakeSym::default()
        .with(0x1100, "/tmp/prog", &[("helper", "/src/h.h", 3, true), ("make", "/src/p.c", 10, false)])
        .with(0x1200, "/tmp/prog", &[("main", "/src/p.c", 20, false)]);
    let r = analyse_process(&p, &mut sym, &Options::default());
    // One call, deduplicated and sorted call sites (return address - 1).
    assert_eq!(sym.calls, vec![vec![0x1100, 0x1200, 0x1300]]);
    let malloc = r.leaks.iter().find(|l| l.allocator == Allocator::Malloc).unwrap();
    let names: Vec<(&str, bool, u64)> =
        malloc.stack.iter().map(|f| (f.function.as_deref().unwrap(), f.inlined, f.address)).collect();
    assert_eq!(names, vec![("helper", true, 0x1100), ("make", false, 0x1100), ("main", false, 0x1200)]);
    assert_eq!(malloc.stack[0].module.as_deref(), Some("/tmp/prog"));
    assert_eq!(malloc.stack[0].module_offset, Some(0x100));
    // Unknown to the symbolizer: module still found from the module list.
    let calloc = r.leaks.iter().find(|l| l.allocator == Allocator::Calloc).unwrap();
    assert_eq!(calloc.stack[0].function, None);
    assert_eq!(calloc.stack[0].module.as_deref(), Some("/tmp/prog"));
}

#[test]
fn nothing_to_symbolize_makes_no_call() {
    let p = process(7, vec![]);
    let mut sym = FakeSym::default();
    let r = analyse_process(&p, &mut sym, &Options::default());
    assert!(sym.calls.is_empty());
    assert!(!r.has_findings());
}

#[test]
fn max_frames_clips_shown_stacks_not_grouping() {
    let p = process(7, vec![block(0x10, 10, AllocKind::Malloc, 1, 0), block(0x20, 10, AllocKind::Malloc, 2, 0)]);
    let r = analyse_process(&p, &mut FakeSym::default(), &Options { max_frames: Some(1), ..Default::default() });
    assert_eq!(r.leaks.len(), 2);
    assert!(r.leaks.iter().all(|l| l.stack.len() == 1));
}

#[test]
fn errors_keep_their_order_and_stacks() {
    let mut p = process(7, vec![]);
    p.errors = vec![
        HeapError {
            kind: ErrorKind::DoubleFree,
            release: ReleaseKind::Free,
            addr: 0x5000,
            region: Region::Unknown,
            stack: 1,
            block: Some(ErrorBlock {
                addr: 0x5000,
                size: 40,
                kind: AllocKind::Malloc,
                alloc_stack: 2,
                first_release: Some(ReleaseKind::Free),
                free_stack: 3,
            }),
        },
        HeapError {
            kind: ErrorKind::InvalidFree,
            release: ReleaseKind::Delete,
            addr: 0x7ffe_0000,
            region: Region::Stack,
            stack: 2,
            block: None,
        },
        HeapError {
            kind: ErrorKind::MismatchedFree,
            release: ReleaseKind::Free,
            addr: 0x6000,
            region: Region::Unknown,
            stack: 1,
            block: Some(ErrorBlock {
                addr: 0x6000,
                size: 8,
                kind: AllocKind::New,
                alloc_stack: 2,
                first_release: None,
                free_stack: 0,
            }),
        },
    ];
    let r = analyse_process(&p, &mut FakeSym::default(), &Options::default());
    assert_eq!(r.summary.errors, 3);
    let kinds: Vec<HeapErrorKind> = r.errors.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, vec![HeapErrorKind::DoubleFree, HeapErrorKind::InvalidFree, HeapErrorKind::MismatchedFree]);
    let d = &r.errors[0];
    assert_eq!(d.first_release, Some(Release::Free));
    assert_eq!(d.free_stack.as_ref().map(Vec::len), Some(2));
    assert_eq!(d.alloc_stack.as_ref().unwrap()[0].address, 0x1300);
    assert_eq!(r.errors[1].block, None);
    assert_eq!(r.errors[1].alloc_stack, None);
    assert_eq!(r.errors[2].free_stack, None);
    assert_eq!(r.errors[2].block.unwrap().allocator, Allocator::New);
}

#[test]
fn totals_add_up_over_processes() {
    let a = process(7, vec![block(0x10, 10, AllocKind::Malloc, 1, 0), block(0x20, 5, AllocKind::Calloc, 2, 0)]);
    let b = process(8, vec![block(0x10, 100, AllocKind::Malloc, 1, 0)]);
    let mut c = process(9, vec![]);
    c.ending = Ending::Unknown;
    c.finalized = false;
    let r = analyse(&Trace { processes: vec![a, b, c] }, &mut FakeSym::default(), &Options::default());
    assert_eq!(r.summary.leaked_bytes, 115);
    assert_eq!(r.summary.leaked_blocks, 3);
    assert_eq!(r.summary.leak_records, 3);
    assert_eq!(r.summary.allocations, 300);
    assert_eq!(r.summary.frees, 270);
    assert!(r.has_findings());
    assert!(r.processes[0].complete && r.processes[1].complete);
    assert!(!r.processes[2].complete);
    assert_eq!(r.processes[2].notes.len(), 1);
    assert_eq!(r.processes[2].exit, Exit::Unknown);
}

#[test]
fn json_has_the_documented_shape_and_round_trips() {
    let mut p = process(7, vec![block(0x10, 40, AllocKind::NewArray, 1, 0)]);
    p.ending = Ending::Signaled(9);
    let r = analyse(&Trace { processes: vec![p] }, &mut FakeSym::default(), &Options::default());
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["schema"], "leakscope-report/1");
    assert_eq!(v["tool"]["name"], "leakscope");
    let p = &v["processes"][0];
    assert_eq!(p["exit"], serde_json::json!({"signal": 9}));
    assert_eq!(p["leaks"][0]["class"], "unknown");
    assert_eq!(p["leaks"][0]["allocator"], "new[]");
    assert_eq!(p["leaks"][0]["stack"][0]["address"], "0x1100");
    assert_eq!(p["leaks"][0]["stack"][0]["line"], serde_json::Value::Null);
    assert_eq!(p["mappings"], serde_json::json!([]));
    assert_eq!(p["summary"]["leaked_bytes"], 40);
    let back: Report = serde_json::from_value(v).unwrap();
    assert_eq!(back, r);
    for (exit, json) in [
        (Exit::Code(3), r#"{"code":3}"#),
        (Exit::Exec, r#"{"exec":true}"#),
        (Exit::Unknown, r#"{"unknown":true}"#),
    ] {
        assert_eq!(serde_json::to_string(&exit).unwrap(), json);
        assert_eq!(serde_json::from_str::<Exit>(json).unwrap(), exit);
    }
    assert!(serde_json::from_str::<Exit>(r#"{"code":1,"signal":2}"#).is_err());
}
