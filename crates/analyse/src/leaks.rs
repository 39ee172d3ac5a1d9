//! Grouping live blocks into leak records.

use leakscope_format::layout::entry_flags;
use leakscope_format::model::{AllocKind, Block, LeakClass, ProcessTrace};
use std::collections::HashMap;

/// Flags whose blocks are never reported as leaks.
pub const EXCLUDED_FLAGS: u8 = entry_flags::INTERNAL | entry_flags::INHERITED | entry_flags::IGNORED;

/// Live blocks sharing an allocation stack and allocator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    /// Index into [`ProcessTrace::stacks`] (the first one seen with this content).
    pub stack: u32,
    pub kind: AllocKind,
    pub class: LeakClass,
    pub bytes: u64,
    pub blocks: u64,
}

/// Whether a live block counts as leaked.
pub fn is_reported(b: &Block) -> bool {
    b.flags & EXCLUDED_FLAGS == 0
}

/// Groups the reported live blocks of `p` by (stack contents, allocator),
/// sorted by bytes descending, then blocks descending (then allocator and
/// stack, so the order is deterministic).
pub fn group(p: &ProcessTrace) -> Vec<Group> {
    let empty: &[u64] = &[];
    let frames = |id: u32| p.stacks.get(id as usize).map(Vec::as_slice).unwrap_or(empty);
    let mut index: HashMap<(&[u64], AllocKind, LeakClass), usize> = HashMap::new();
    let mut groups: Vec<Group> = Vec::new();
    for b in p.blocks.iter().filter(|b| is_reported(b)) {
        let i = *index.entry((frames(b.stack), b.kind, b.class)).or_insert_with(|| {
            groups.push(Group { stack: b.stack, kind: b.kind, class: b.class, bytes: 0, blocks: 0 });
            groups.len() - 1
        });
        groups[i].bytes = groups[i].bytes.saturating_add(b.size);
        groups[i].blocks += 1;
    }
    // Most certainly lost first (the report's class order), then largest.
    let rank = |c: LeakClass| crate::report::LeakClass::from(c);
    groups.sort_by(|a, b| {
        rank(a.class)
            .cmp(&rank(b.class))
            .then(b.bytes.cmp(&a.bytes))
            .then(b.blocks.cmp(&a.blocks))
            .then(a.kind.cmp(&b.kind))
            .then_with(|| frames(a.stack).cmp(frames(b.stack)))
    });
    groups
}
