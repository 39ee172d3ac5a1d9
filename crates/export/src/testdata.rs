//! A hand-made report for the writers' unit tests.

use leakscope_analyse::report::*;

pub const SRC: &str = "/src/leaky.c";
pub const LIBC: &str = "/usr/lib/x86_64-linux-gnu/libc.so.6";
pub const EXE: &str = "/src/leaky";

pub fn frame(addr: u64, module: &str, function: Option<&str>, file: Option<(&str, u32)>, inlined: bool) -> Frame {
    let base = if module == EXE { 0x5555_0000_0000 } else { 0x7f00_0000_0000 };
    Frame {
        address: addr,
        module: Some(module.into()),
        module_offset: Some(addr - base),
        function: function.map(Into::into),
        file: file.map(|(f, _)| f.into()),
        line: file.map(|(_, l)| l),
        inlined,
    }
}

pub fn leak(bytes: u64, blocks: u64, allocator: Allocator, stack: Vec<Frame>) -> Leak {
    Leak { class: LeakClass::Unknown, bytes, blocks, allocator, stack, fingerprint: String::new() }
}

fn process(pid: u32, parent: u32, argv: &[&str], mut leaks: Vec<Leak>, errors: Vec<HeapErrorReport>) -> ProcessReport {
    leakscope_analyse::fingerprint::assign(&mut leaks);
    let counted: Vec<&Leak> = leaks.iter().filter(|l| crate::common::is_leaked(l)).collect();
    let summary = Summary {
        leaked_bytes: counted.iter().map(|l| l.bytes).sum(),
        leaked_blocks: counted.iter().map(|l| l.blocks).sum(),
        leak_records: counted.len() as u64,
        errors: errors.len() as u64,
        allocations: 20,
        frees: 15,
        ..Summary::default()
    };
    let mut p: ProcessReport = serde_json::from_value(serde_json::json!({
        "pid": pid, "parent_pid": parent, "exec_index": 0, "argv": argv, "exe": EXE,
        "exit": {"code": 0}, "complete": true, "notes": [], "leaks": [], "errors": [],
        "mappings": [], "shared_memory": [], "summary": summary,
    }))
    .expect("a process report");
    p.leaks = leaks;
    p.errors = errors;
    p
}

/// Two processes: the parent with three leak records (one through an inlined
/// frame, one inside libc, one without symbols), a reachable block when the
/// model has that class, and a double free; a child with one leak.
pub fn report() -> Report {
    let main_at = |addr, line| frame(addr, EXE, Some("main"), Some((SRC, line)), false);
    let mut leaks = vec![
        leak(
            40,
            2,
            Allocator::NewArray,
            vec![
                frame(0x5555_0000_1100, EXE, Some("inner_inlined"), Some((SRC, 5)), true),
                frame(0x5555_0000_1100, EXE, Some("helper"), Some((SRC, 12)), false),
                main_at(0x5555_0000_1200, 30),
            ],
        ),
        leak(
            13,
            1,
            Allocator::Malloc,
            vec![
                frame(0x7f00_0000_2000, LIBC, Some("__strdup"), Some(("./string/strdup.c", 42)), false),
                frame(0x5555_0000_1300, EXE, Some("make_record"), Some((SRC, 16)), false),
                main_at(0x5555_0000_1210, 28),
            ],
        ),
        leak(
            10,
            1,
            Allocator::Calloc,
            vec![frame(0x7f00_0000_3000, "/opt/lib/libnosym.so", None, None, false), main_at(0x5555_0000_1220, 29)],
        ),
    ];
    if let Ok(class) = serde_json::from_value::<LeakClass>(serde_json::json!("reachable")) {
        let mut kept = leak(
            64,
            1,
            Allocator::Malloc,
            vec![frame(0x5555_0000_1400, EXE, Some("keep_forever"), Some((SRC, 20)), false)],
        );
        kept.class = class;
        leaks.push(kept);
    }
    let s = |f: &str, line: u32| {
        vec![
            frame(0x5555_0000_1500 + line as u64, EXE, Some(f), Some((SRC, line)), false),
            main_at(0x5555_0000_1230, 33),
        ]
    };
    let double = HeapErrorReport {
        kind: HeapErrorKind::DoubleFree,
        release: Release::Free,
        address: 0x5555_6000_0000,
        region: AddrRegion::Unknown,
        block: Some(BlockInfo { address: 0x5555_6000_0000, bytes: 64, allocator: Allocator::Malloc }),
        stack: s("bad_free", 34),
        alloc_stack: Some(s("maker", 31)),
        free_stack: Some(s("first_free", 33)),
        first_release: Some(Release::Free),
    };
    let parent = process(100, 1, &["./leaky", "two words"], leaks, vec![double]);
    let child = process(
        101,
        100,
        &["./leaky", "child"],
        vec![leak(
            8,
            1,
            Allocator::Calloc,
            vec![
                frame(0x5555_0000_1600, EXE, Some("child_work"), Some((SRC, 40)), false),
                main_at(0x5555_0000_1240, 41),
            ],
        )],
        vec![],
    );
    let processes = vec![parent, child];
    let summary = leakscope_analyse::total(&processes);
    Report { schema: SCHEMA.into(), tool: Tool::default(), processes, summary, suppressions: Vec::new() }
}
