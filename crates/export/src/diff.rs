//! `leakscope diff OLD NEW`: the leak records that are new, fixed and changed
//! (same fingerprint, other bytes or blocks) between two runs. Records are
//! merged by fingerprint over all processes of each side; only leaked memory
//! counts (every class but `reachable`). Format: `docs/ci-baseline.md`.

use crate::baseline::{self, Baseline};
use crate::common::{plural, render_stack};
use leakscope_analyse::report::{Frame, Report};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const SCHEMA: &str = "leakscope-diff/1";

/// One side of a diff: leaked records by fingerprint.
#[derive(Clone, Debug, Default)]
pub struct LeakSet {
    pub leaks: BTreeMap<String, Entry>,
}

/// A baseline entry with the allocation stack (of the first process it was
/// seen in); `[]` when that side was a baseline file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    #[serde(flatten)]
    pub leak: baseline::Entry,
    pub stack: Vec<Frame>,
}

impl std::ops::Deref for Entry {
    type Target = baseline::Entry;
    fn deref(&self) -> &baseline::Entry {
        &self.leak
    }
}

impl LeakSet {
    pub fn from_report(report: &Report) -> LeakSet {
        let leaks = baseline::merged_leaks(report)
            .into_iter()
            .map(|(fp, (leak, first))| (fp, Entry { leak, stack: first.stack.clone() }))
            .collect();
        LeakSet { leaks }
    }

    pub fn from_baseline(b: &Baseline) -> LeakSet {
        let leaks =
            b.leaks.iter().map(|e| (e.fingerprint.clone(), Entry { leak: e.clone(), stack: vec![] })).collect();
        LeakSet { leaks }
    }

    pub fn totals(&self) -> Totals {
        Totals {
            leak_records: self.leaks.len() as u64,
            leaked_bytes: self.leaks.values().map(|e| e.bytes).sum(),
            leaked_blocks: self.leaks.values().map(|e| e.blocks).sum(),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub leak_records: u64,
    pub leaked_bytes: u64,
    pub leaked_blocks: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Amount {
    pub bytes: u64,
    pub blocks: u64,
}

/// A record in both runs whose size changed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Changed {
    pub fingerprint: String,
    pub allocator: String,
    pub class: String,
    pub site: String,
    pub program: String,
    pub old: Amount,
    pub new: Amount,
    pub stack: Vec<Frame>,
}

/// The JSON `leakscope diff --json` writes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Diff {
    pub schema: String,
    pub old: Totals,
    pub new: Totals,
    /// In NEW only, largest first.
    pub new_leaks: Vec<Entry>,
    /// In OLD only, largest first.
    pub fixed_leaks: Vec<Entry>,
    /// In both with other bytes or blocks, largest growth first.
    pub changed_leaks: Vec<Changed>,
    /// In both with the same bytes and blocks.
    pub unchanged: u64,
}

pub fn diff(old: &LeakSet, new: &LeakSet) -> Diff {
    let mut new_leaks: Vec<Entry> =
        new.leaks.values().filter(|e| !old.leaks.contains_key(&e.fingerprint)).cloned().collect();
    let mut fixed_leaks: Vec<Entry> =
        old.leaks.values().filter(|e| !new.leaks.contains_key(&e.fingerprint)).cloned().collect();
    let mut changed_leaks = Vec::new();
    let mut unchanged = 0;
    for (fp, n) in &new.leaks {
        let Some(o) = old.leaks.get(fp) else { continue };
        if o.bytes == n.bytes && o.blocks == n.blocks {
            unchanged += 1;
            continue;
        }
        changed_leaks.push(Changed {
            fingerprint: fp.clone(),
            allocator: n.allocator.clone(),
            class: n.class.clone(),
            site: n.site.clone(),
            program: n.program.clone(),
            old: Amount { bytes: o.bytes, blocks: o.blocks },
            new: Amount { bytes: n.bytes, blocks: n.blocks },
            stack: if n.stack.is_empty() { o.stack.clone() } else { n.stack.clone() },
        });
    }
    let by_size = |a: &Entry, b: &Entry| {
        b.bytes.cmp(&a.bytes).then(b.blocks.cmp(&a.blocks)).then(a.fingerprint.cmp(&b.fingerprint))
    };
    new_leaks.sort_by(by_size);
    fixed_leaks.sort_by(by_size);
    let growth = |c: &Changed| c.new.bytes as i128 - c.old.bytes as i128;
    changed_leaks.sort_by(|a, b| growth(b).cmp(&growth(a)).then(a.fingerprint.cmp(&b.fingerprint)));
    Diff {
        schema: SCHEMA.into(),
        old: old.totals(),
        new: new.totals(),
        new_leaks,
        fixed_leaks,
        changed_leaks,
        unchanged,
    }
}

impl Diff {
    /// Whether NEW has leaks OLD did not, or known ones grew.
    pub fn is_worse(&self) -> bool {
        !self.new_leaks.is_empty()
            || self.changed_leaks.iter().any(|c| c.new.bytes > c.old.bytes || c.new.blocks > c.old.blocks)
    }

    pub fn render_text(&self) -> String {
        let mut s = format!(
            "leakscope diff: {} new, {} fixed, {} changed, {} unchanged leak {} (old: {} in {}; new: {} in {})\n",
            self.new_leaks.len(),
            self.fixed_leaks.len(),
            self.changed_leaks.len(),
            self.unchanged,
            if self.new.leak_records == 1 && self.old.leak_records <= 1 { "record" } else { "records" },
            plural(self.old.leaked_bytes, "byte", "bytes"),
            plural(self.old.leaked_blocks, "block", "blocks"),
            plural(self.new.leaked_bytes, "byte", "bytes"),
            plural(self.new.leaked_blocks, "block", "blocks"),
        );
        let entry = |s: &mut String, tag: &str, e: &Entry| {
            s.push_str(&format!("\n{tag}: {}\n", e.describe()));
            if !e.stack.is_empty() {
                render_stack(s, &e.stack, "    ");
            }
        };
        for e in &self.new_leaks {
            entry(&mut s, "new", e);
        }
        for e in &self.fixed_leaks {
            entry(&mut s, "fixed", e);
        }
        for c in &self.changed_leaks {
            s.push_str(&format!(
                "\nchanged: {} -> {} bytes, {} -> {} blocks allocated with {} at {} in {} [{}]\n",
                c.old.bytes, c.new.bytes, c.old.blocks, c.new.blocks, c.allocator, c.site, c.program, c.fingerprint
            ));
            render_stack(&mut s, &c.stack, "    ");
        }
        s
    }

    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("a diff serialises");
        s.push('\n');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata;
    use leakscope_analyse::report::Allocator;

    #[test]
    fn new_fixed_changed_and_unchanged_records_are_told_apart() {
        let old = testdata::report();
        let mut new = testdata::report();
        // Rebuilt and run again: other addresses and lines, same fingerprints.
        for p in &mut new.processes {
            for l in &mut p.leaks {
                for f in &mut l.stack {
                    f.address += 0x1000;
                    f.line = f.line.map(|n| n + 3);
                }
            }
        }
        let p = &mut new.processes[0];
        p.leaks[0].bytes = 80; // the new[] record grew
        p.leaks[0].blocks = 4;
        p.leaks.remove(1); // the strdup leak was fixed
        let extra = testdata::leak(
            24,
            1,
            Allocator::Malloc,
            vec![testdata::frame(0x5555_0000_1700, testdata::EXE, Some("brand_new"), Some((testdata::SRC, 50)), false)],
        );
        p.leaks.push(extra);
        for p in &mut new.processes {
            leakscope_analyse::fingerprint::assign(&mut p.leaks);
        }
        let d = diff(&LeakSet::from_report(&old), &LeakSet::from_report(&new));
        assert_eq!(d.new_leaks.len(), 1, "{d:#?}");
        assert_eq!(d.new_leaks[0].site, "brand_new /src/leaky.c:50");
        assert_eq!(d.fixed_leaks.len(), 1);
        assert_eq!(d.fixed_leaks[0].site, "make_record /src/leaky.c:16");
        assert_eq!(d.changed_leaks.len(), 1);
        assert_eq!((d.changed_leaks[0].old.bytes, d.changed_leaks[0].new.bytes), (40, 80));
        assert_eq!(d.unchanged, 2);
        assert!(d.is_worse());
        let text = d.render_text();
        assert!(text.starts_with("leakscope diff: 1 new, 1 fixed, 1 changed, 2 unchanged leak records"), "{text}");
        assert!(
            text.contains("\nnew: 24 bytes in 1 block allocated with malloc at brand_new /src/leaky.c:50 in leaky ["),
            "{text}"
        );
        assert!(
            text.contains(
                "\nchanged: 40 -> 80 bytes, 2 -> 4 blocks allocated with new[] at inner_inlined /src/leaky.c:8"
            ),
            "{text}"
        );
        let back: Diff = serde_json::from_str(&d.to_json()).unwrap();
        assert_eq!(back, d);
        let same = diff(&LeakSet::from_report(&old), &LeakSet::from_report(&old));
        assert!(!same.is_worse() && same.unchanged == 4);
    }
}
