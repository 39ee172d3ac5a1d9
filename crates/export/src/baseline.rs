//! The CI baseline: the leaks a project knows about, by fingerprint.
//!
//! `--write-baseline FILE` writes [`Baseline::from_report`]; `--baseline FILE`
//! [`apply`]s one (or a JSON report, read as the baseline of its leaks) to the
//! new report: leak records whose fingerprint is in it are taken out of the
//! report (so every writer and `--error-exitcode` see only new leaks), and the
//! baseline entries that no longer occur are listed as fixed. Heap errors are
//! never baselined. Format: `docs/ci-baseline.md`.

use crate::common::{class_name, fingerprint, is_leaked, plural, program_name, site_label};
use leakscope_analyse::report::{Leak, Report, Tool};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;

pub const SCHEMA: &str = "leakscope-baseline/1";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    pub schema: String,
    pub tool: Tool,
    /// One entry per fingerprint, largest first.
    pub leaks: Vec<Entry>,
}

/// A known leak: the sum over the processes where its fingerprint occurred.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub fingerprint: String,
    pub allocator: String,
    pub class: String,
    pub bytes: u64,
    pub blocks: u64,
    /// `function file:line` of the allocation site when it was recorded (for people).
    pub site: String,
    /// The program it was seen in (argv[0]'s base name).
    pub program: String,
}

impl Entry {
    pub fn describe(&self) -> String {
        format!(
            "{} in {} allocated with {} at {} in {} [{}]",
            plural(self.bytes, "byte", "bytes"),
            plural(self.blocks, "block", "blocks"),
            self.allocator,
            self.site,
            self.program,
            self.fingerprint
        )
    }
}

/// The leaked records of `report` (every class but `reachable`), merged by
/// fingerprint over all its processes: each entry with the first record it
/// came from. What a baseline and each side of a diff are made of.
pub fn merged_leaks(report: &Report) -> BTreeMap<String, (Entry, &Leak)> {
    let mut by_fp: BTreeMap<String, (Entry, &Leak)> = BTreeMap::new();
    for p in &report.processes {
        for l in p.leaks.iter().filter(|l| is_leaked(l)) {
            let fp = fingerprint(l);
            let (e, _) = by_fp.entry(fp.clone()).or_insert_with(|| {
                let e = Entry {
                    fingerprint: fp,
                    allocator: l.allocator.name().into(),
                    class: class_name(l),
                    bytes: 0,
                    blocks: 0,
                    site: site_label(&l.stack),
                    program: program_name(p),
                };
                (e, l)
            });
            e.bytes += l.bytes;
            e.blocks += l.blocks;
        }
    }
    by_fp
}

impl Baseline {
    /// The leaked records of `report` (every class but `reachable`), merged by fingerprint.
    pub fn from_report(report: &Report) -> Baseline {
        let by_fp = merged_leaks(report);
        let mut leaks: Vec<Entry> = by_fp.into_values().map(|(e, _)| e).collect();
        leaks.sort_by(|a, b| {
            b.bytes.cmp(&a.bytes).then(b.blocks.cmp(&a.blocks)).then(a.fingerprint.cmp(&b.fingerprint))
        });
        Baseline { schema: SCHEMA.into(), tool: Tool::default(), leaks }
    }

    /// Reads a baseline file, or a leakscope JSON report as the baseline of its leaks.
    pub fn load(path: &Path) -> Result<Baseline, String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read baseline {}: {e}", path.display()))?;
        Baseline::parse(&text).map_err(|e| format!("baseline {}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Baseline, String> {
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        match v.get("schema").and_then(|s| s.as_str()) {
            Some(SCHEMA) => serde_json::from_value(v).map_err(|e| format!("not a {SCHEMA} file: {e}")),
            Some(s) if s.starts_with("leakscope-report/") => {
                let mut r: Report = serde_json::from_value(v).map_err(|e| format!("not a leakscope report: {e}"))?;
                leakscope_analyse::fingerprint::fill_missing(&mut r);
                Ok(Baseline::from_report(&r))
            }
            Some(s) => Err(format!("unknown schema {s:?} (want {SCHEMA} or a leakscope JSON report)")),
            None => Err(format!("no \"schema\" field (want {SCHEMA} or a leakscope JSON report)")),
        }
    }

    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("a baseline serialises");
        s.push('\n');
        s
    }

    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, self.to_json())
    }
}

/// What applying a baseline did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcome {
    /// Leak records taken out of the report because the baseline knows them.
    pub known_records: u64,
    pub known_bytes: u64,
    pub known_blocks: u64,
    /// Baseline entries that no leaked record matches any more.
    pub fixed: Vec<Entry>,
    /// Leak records left in the report (new ones).
    pub new_records: u64,
}

/// Takes the leaks `baseline` knows out of `report` (summaries follow) and
/// finds the baseline entries that are fixed.
pub fn apply(report: &mut Report, baseline: &Baseline) -> Outcome {
    let known: HashSet<&str> = baseline.leaks.iter().map(|e| e.fingerprint.as_str()).collect();
    let mut seen: HashSet<String> = HashSet::new();
    let mut out = Outcome::default();
    for p in &mut report.processes {
        let mut removed = Vec::new();
        p.leaks.retain(|l| {
            if !is_leaked(l) {
                return true;
            }
            seen.insert(l.fingerprint.clone());
            if known.contains(l.fingerprint.as_str()) {
                removed.push((class_name(l), l.bytes, l.blocks));
                false
            } else {
                true
            }
        });
        out.new_records += p.leaks.iter().filter(|l| is_leaked(l)).count() as u64;
        for (class, bytes, blocks) in removed {
            out.known_records += 1;
            out.known_bytes += bytes;
            out.known_blocks += blocks;
            p.summary = subtract(&p.summary, &class, bytes, blocks);
        }
    }
    report.summary = leakscope_analyse::total(&report.processes);
    out.fixed = baseline.leaks.iter().filter(|e| !seen.contains(&e.fingerprint)).cloned().collect();
    out
}

/// `s` less one record of `class`. Goes through the summary's JSON so that
/// per-class totals, when the model has them (`"definite": {"bytes", ...}`),
/// are kept right without this module naming them.
fn subtract(
    s: &leakscope_analyse::report::Summary,
    class: &str,
    bytes: u64,
    blocks: u64,
) -> leakscope_analyse::report::Summary {
    let mut v = serde_json::to_value(s).expect("a summary serialises");
    let dec = |v: &mut serde_json::Value, key: &str, n: u64| {
        if let Some(x) = v.get_mut(key).and_then(|x| x.as_u64()) {
            v[key] = (x.saturating_sub(n)).into();
        }
    };
    dec(&mut v, "leaked_bytes", bytes);
    dec(&mut v, "leaked_blocks", blocks);
    dec(&mut v, "leak_records", 1);
    if let Some(c) = v.get_mut(class).filter(|c| c.is_object()) {
        dec(c, "bytes", bytes);
        dec(c, "blocks", blocks);
        dec(c, "records", 1);
    }
    serde_json::from_value(v).unwrap_or(*s)
}

/// What the text report says about a baseline: counts, then each fixed entry.
pub fn render_text(o: &Outcome, path: &Path) -> String {
    let mut s = format!(
        "leakscope: baseline {}: {}; {} ({} in {}) not reported",
        path.display(),
        plural(o.new_records, "new leak record", "new leak records"),
        plural(o.known_records, "known record", "known records"),
        plural(o.known_bytes, "byte", "bytes"),
        plural(o.known_blocks, "block", "blocks"),
    );
    if o.fixed.is_empty() {
        s.push_str("; no baseline entry is fixed.\n");
    } else {
        s.push_str(&format!(
            "; {} no longer {} (fixed):\n",
            plural(o.fixed.len() as u64, "baseline entry", "baseline entries"),
            if o.fixed.len() == 1 { "occurs" } else { "occur" }
        ));
        for e in &o.fixed {
            s.push_str(&format!("    fixed: {}\n", e.describe()));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata;

    #[test]
    fn a_baseline_lists_leaked_records_by_fingerprint_and_round_trips() {
        let r = testdata::report();
        let b = Baseline::from_report(&r);
        assert_eq!(b.leaks.len(), 4, "{b:#?}");
        assert_eq!(b.leaks[0].bytes, 40);
        assert_eq!(b.leaks[0].site, "inner_inlined /src/leaky.c:5", "the innermost user frame, inlined or not");
        assert_eq!(Baseline::parse(&b.to_json()).unwrap(), b);
        let from_report = Baseline::parse(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(from_report, b);
        assert!(Baseline::parse("{\"schema\": \"x\"}").unwrap_err().contains("unknown schema"));
        assert!(Baseline::parse("[]").is_err());
    }

    #[test]
    fn applying_a_baseline_keeps_only_new_leaks_and_finds_fixed_ones() {
        let old = testdata::report();
        let mut baseline = Baseline::from_report(&old);
        // One known leak was fixed since; the 8-byte child leak is "new".
        baseline.leaks.retain(|e| e.bytes != 8);
        baseline.leaks.push(Entry {
            fingerprint: "00000000deadbeef".into(),
            allocator: "malloc".into(),
            class: "unknown".into(),
            bytes: 5,
            blocks: 1,
            site: "gone /src/old.c:1".into(),
            program: "leaky".into(),
        });
        let mut r = testdata::report();
        let o = apply(&mut r, &baseline);
        assert_eq!(o.known_records, 3);
        assert_eq!(o.known_bytes, 63);
        assert_eq!(o.new_records, 1);
        assert_eq!(o.fixed.len(), 1);
        assert_eq!(o.fixed[0].fingerprint, "00000000deadbeef");
        assert_eq!(r.summary.leaked_bytes, 8);
        assert_eq!(r.summary.leak_records, 1);
        assert_eq!(r.processes[0].summary.leaked_bytes, 0);
        assert!(r.has_findings(), "the double free stays");
        let text = render_text(&o, Path::new("b.json"));
        assert!(text.starts_with("leakscope: baseline b.json: 1 new leak record; 3 known records (63 bytes in 4 blocks) not reported; 1 baseline entry no longer occurs (fixed):\n"), "{text}");
        assert!(text.contains("    fixed: 5 bytes in 1 block allocated with malloc at gone /src/old.c:1 in leaky [00000000deadbeef]\n"), "{text}");
    }
}
