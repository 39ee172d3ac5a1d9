//! `leakscope snapshot PID`: the live blocks of a process started under
//! `leakscope run`, read from its session file while it runs (nothing stops
//! it), grouped by allocation site; with `--since SNAPSHOT`, how much each site
//! grew since an earlier snapshot saved with `--save`.
//!
//! The session file is found by its name, `proc-<pid>-<exec#>.lsm`, in the
//! session directories `leakscope run` creates (`/dev/shm/leakscope-*`, or
//! `leakscope-*` in the temporary directory when /dev/shm is not usable).
//! The program keeps writing while it is read: a part that changed under the
//! reader is read again, and what stays unreadable is noted.

use crate::args::SnapshotArgs;
use crate::fail::{Fail, FAILURE};
use crate::output;
use crate::render_text::{plural, render_stack};
use anyhow::Result;
use leakscope_analyse::report::{Leak, ProcessReport, TOOL_NAME, TOOL_VERSION};
use leakscope_analyse::{analyse_process, symbols::Symbolize, Options};
use leakscope_format::layout;
use leakscope_format::model::{ProcessTrace, Trace};
use leakscope_format::session::{read_session_file, FILE_PREFIX, FILE_SUFFIX};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::mem::offset_of;
use std::path::{Path, PathBuf};

/// `schema` of the snapshot JSON (see docs/json-report.md).
pub const SCHEMA: &str = "leakscope-snapshot/1";

pub fn run(args: &SnapshotArgs) -> Result<i32> {
    let file = find_session_file(args.pid, &session_parents())?;
    let (process, damage) = read_live(&file)?;
    let earlier = match &args.since {
        Some(path) => Some(load_earlier(path, args.pid)?),
        None => None,
    };
    let mut sym = leakscope_analyse::Symbolizer::new();
    let snap = build(&process, &damage, earlier.as_ref(), &mut sym);

    if let Some(path) = &args.save {
        output::save_trace(&Trace { processes: vec![process.clone()] }, path)?;
    }
    if let Some(path) = &args.json {
        write_json(&snap.to_json(args.since.as_deref()), path)?;
    }
    let text = snap.render(args.since.as_deref());
    let choice = args.color.choice();
    match &args.output {
        Some(path) => std::fs::write(path, anstream::adapter::strip_str(&text).to_string())
            .map_err(|e| Fail::new(FAILURE, format!("cannot write the snapshot to {}: {e}", path.display())))?,
        None if args.json.as_deref() == Some(Path::new("-")) => {
            let mut w = anstream::AutoStream::new(std::io::stderr(), choice);
            let _ = w.write_all(text.as_bytes());
        }
        None => {
            let mut w = anstream::AutoStream::new(std::io::stdout(), choice);
            let _ = w.write_all(text.as_bytes()).and_then(|_| w.flush());
        }
    }
    Ok(0)
}

/// Where `leakscope run` creates session directories.
pub fn session_parents() -> Vec<PathBuf> {
    let mut v = vec![PathBuf::from("/dev/shm")];
    let tmp = std::env::temp_dir();
    if !v.contains(&tmp) {
        v.push(tmp);
    }
    v
}

/// A candidate session file and what its header says.
#[derive(Debug)]
struct Candidate {
    path: PathBuf,
    exec_index: u32,
    state: u32,
    start_ns: u64,
}

/// The session file of `pid`'s current image: among `leakscope-*/proc-<pid>-*.lsm`
/// under `parents`, one still running (not ended, not replaced by exec), newest first.
pub fn find_session_file(pid: u32, parents: &[PathBuf]) -> Result<PathBuf, Fail> {
    let prefix = format!("{FILE_PREFIX}{pid}-");
    let mut found: Vec<Candidate> = Vec::new();
    for parent in parents {
        let Ok(dirs) = std::fs::read_dir(parent) else { continue };
        for dir in dirs.flatten() {
            if !dir.file_name().to_str().is_some_and(|n| n.starts_with("leakscope-")) {
                continue;
            }
            let Ok(files) = std::fs::read_dir(dir.path()) else { continue };
            for f in files.flatten() {
                let name = f.file_name();
                let Some(name) = name.to_str() else { continue };
                let Some(idx) = name.strip_prefix(&prefix).and_then(|r| r.strip_suffix(FILE_SUFFIX)) else {
                    continue;
                };
                let Ok(exec_index) = idx.parse() else { continue };
                if let Some((state, start_ns)) = header_state(&f.path()) {
                    found.push(Candidate { path: f.path(), exec_index, state, start_ns });
                }
            }
        }
    }
    let searched = parents.iter().map(|p| format!("{}/leakscope-*", p.display())).collect::<Vec<_>>().join(" and ");
    if found.is_empty() {
        return Err(Fail::new(
            FAILURE,
            format!(
                "no leakscope session file for pid {pid} in {searched}: is it running under `leakscope run` \
                 (as the same user)?"
            ),
        ));
    }
    found.sort_by_key(|c| (c.state == layout::state::RUNNING, c.start_ns, c.exec_index));
    let best = found.pop().unwrap();
    if best.state != layout::state::RUNNING {
        return Err(Fail::new(
            FAILURE,
            format!(
                "pid {pid} under leakscope has ended ({}): its report comes from `leakscope run` when the program ends",
                best.path.display()
            ),
        ));
    }
    Ok(best.path)
}

/// (state, start_ns) from a session file's header, if it is one.
fn header_state(path: &Path) -> Option<(u32, u64)> {
    use std::io::Read;
    let mut head = [0u8; 256];
    let mut f = std::fs::File::open(path).ok()?;
    f.read_exact(&mut head).ok()?;
    if head[..8] != layout::MAGIC {
        return None;
    }
    let u32_at = |o: usize| u32::from_le_bytes(head[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(head[o..o + 8].try_into().unwrap());
    Some((u32_at(offset_of!(layout::Header, state)), u64_at(offset_of!(layout::Header, start_ns))))
}

/// Reads a session file that its process is still writing: a read that met
/// a half-written part is tried again a few times.
fn read_live(path: &Path) -> Result<(ProcessTrace, Vec<String>), Fail> {
    let mut last = None;
    for _ in 0..5 {
        let r = read_session_file(path).map_err(|e| Fail::new(FAILURE, format!("cannot read the session file {e}")))?;
        let clean = r.damage.is_empty();
        last = Some((r.process, r.damage));
        if clean {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    Ok(last.unwrap())
}

fn load_earlier(path: &Path, pid: u32) -> Result<ProcessTrace, Fail> {
    let trace = crate::cmd_report::load(path)?;
    let mut ps = trace.processes;
    let pick = ps
        .iter()
        .enumerate()
        .filter(|(_, p)| p.pid == pid)
        .max_by_key(|(_, p)| p.exec_index)
        .map(|(i, _)| i)
        .or(if ps.len() == 1 { Some(0) } else { None });
    match pick {
        Some(i) => Ok(ps.swap_remove(i)),
        None => Err(Fail::new(FAILURE, format!("{} holds no snapshot of pid {pid}", path.display()))),
    }
}

/// An allocation site across snapshots: the allocator and each frame's module
/// and offset in it (unaffected by where the module was loaded).
fn site_key(l: &Leak) -> (String, Vec<(Option<String>, u64)>) {
    let frames = l.stack.iter().map(|f| (f.module.clone(), f.module_offset.unwrap_or(f.address))).collect();
    (l.allocator.name().to_string(), frames)
}

/// A live process, analysed: its blocks grouped by site.
fn analyse_live<S: Symbolize + ?Sized>(p: &ProcessTrace, sym: &mut S) -> ProcessReport {
    // Running is this process's normal state here, not a missing ending.
    let mut alive = p.clone();
    alive.finalized = true;
    analyse_process(&alive, sym, &Options::default())
}

pub struct Site {
    pub leak: Leak,
    /// Bytes and blocks more than in the earlier snapshot (None without one).
    pub growth: Option<(i64, i64)>,
}

pub struct Snapshot {
    pub process: ProcessReport,
    pub sites: Vec<Site>,
    /// Total growth, and the sites of the earlier snapshot that are gone.
    pub growth: Option<(i64, i64)>,
    pub gone_sites: usize,
    pub earlier_pid: Option<(u32, u32)>,
}

pub fn build<S: Symbolize + ?Sized>(
    p: &ProcessTrace,
    damage: &[String],
    earlier: Option<&ProcessTrace>,
    sym: &mut S,
) -> Snapshot {
    let mut process = analyse_live(p, sym);
    for d in damage {
        process.add_note(format!("part of the session file could not be read while the program wrote it: {d}"));
    }
    let leaks = std::mem::take(&mut process.leaks);
    let then: Option<HashMap<_, (u64, u64)>> =
        earlier.map(|e| analyse_live(e, sym).leaks.iter().map(|l| (site_key(l), (l.bytes, l.blocks))).collect());
    let mut sites: Vec<Site> = leaks
        .into_iter()
        .map(|leak| {
            let growth = then.as_ref().map(|t| {
                let (b, n) = t.get(&site_key(&leak)).copied().unwrap_or((0, 0));
                (leak.bytes as i64 - b as i64, leak.blocks as i64 - n as i64)
            });
            Site { leak, growth }
        })
        .collect();
    let (growth, gone_sites) = match &then {
        Some(t) => {
            let now_bytes: u64 = sites.iter().map(|s| s.leak.bytes).sum();
            let now_blocks: u64 = sites.iter().map(|s| s.leak.blocks).sum();
            let then_bytes: u64 = t.values().map(|v| v.0).sum();
            let then_blocks: u64 = t.values().map(|v| v.1).sum();
            let current: std::collections::HashSet<_> = sites.iter().map(|s| site_key(&s.leak)).collect();
            let gone = t.keys().filter(|k| !current.contains(*k)).count();
            (Some((now_bytes as i64 - then_bytes as i64, now_blocks as i64 - then_blocks as i64)), gone)
        }
        None => (None, 0),
    };
    if then.is_some() {
        sites.sort_by(|a, b| {
            let ga = a.growth.unwrap_or_default();
            let gb = b.growth.unwrap_or_default();
            gb.0.cmp(&ga.0).then(gb.1.cmp(&ga.1)).then(b.leak.bytes.cmp(&a.leak.bytes))
        });
    } else {
        sites.sort_by(|a, b| b.leak.bytes.cmp(&a.leak.bytes).then(b.leak.blocks.cmp(&a.leak.blocks)));
    }
    Snapshot { process, sites, growth, gone_sites, earlier_pid: earlier.map(|e| (e.pid, e.exec_index)) }
}

fn signed(v: i64) -> String {
    if v >= 0 {
        format!("+{v}")
    } else {
        v.to_string()
    }
}

impl Snapshot {
    fn live(&self) -> (u64, u64) {
        (self.sites.iter().map(|s| s.leak.bytes).sum(), self.sites.iter().map(|s| s.leak.blocks).sum())
    }

    pub fn render(&self, since: Option<&Path>) -> String {
        let p = &self.process;
        let tag = format!("=={}==", p.pid);
        let mut out = String::new();
        let exec = if p.exec_index > 0 { format!(" (exec #{})", p.exec_index) } else { String::new() };
        let (bytes, blocks) = self.live();
        let cmd = if p.argv.is_empty() { p.exe.clone() } else { p.argv.join(" ") };
        let _ = writeln!(
            out,
            "{tag} leakscope snapshot of {cmd}{exec}: {} live in {} from {}",
            plural(bytes, "byte", "bytes"),
            plural(blocks, "block", "blocks"),
            plural(self.sites.len() as u64, "allocation site", "allocation sites")
        );
        if let (Some((gb, gn)), Some(path)) = (self.growth, since) {
            let _ = writeln!(
                out,
                "{tag} since {}: {} bytes, {} blocks; {} of the earlier snapshot's sites have no live block now",
                path.display(),
                signed(gb),
                signed(gn),
                self.gone_sites
            );
            if let Some((pid, idx)) = self.earlier_pid {
                if (pid, idx) != (p.pid, p.exec_index) {
                    let _ = writeln!(
                        out,
                        "{tag} note: the earlier snapshot is of pid {pid} (exec #{idx}); sites are matched by module and offset"
                    );
                }
            }
        }
        for n in &p.notes {
            let _ = writeln!(out, "{tag} note: {n}");
        }
        let mut not_grown = 0;
        for s in &self.sites {
            let l = &s.leak;
            let growth = match s.growth {
                Some((gb, _)) if gb <= 0 && since.is_some() => {
                    not_grown += 1;
                    continue;
                }
                Some((gb, gn)) => format!(" ({} bytes, {} blocks since the earlier snapshot)", signed(gb), signed(gn)),
                None => String::new(),
            };
            out.push('\n');
            let _ = writeln!(
                out,
                "{} in {} live{growth}, allocated with {} from:",
                plural(l.bytes, "byte", "bytes"),
                plural(l.blocks, "block", "blocks"),
                l.allocator.name()
            );
            render_stack(&mut out, &l.stack);
        }
        if not_grown > 0 {
            let _ = writeln!(out, "\n{tag} {} did not grow", plural(not_grown, "other site", "other sites"));
        }
        out
    }

    pub fn to_json(&self, since: Option<&Path>) -> Value {
        let p = &self.process;
        let (bytes, blocks) = self.live();
        let sites: Vec<Value> = self
            .sites
            .iter()
            .map(|s| {
                let mut v = serde_json::to_value(&s.leak).unwrap_or(Value::Null);
                if let Value::Object(m) = &mut v {
                    m.insert(
                        "growth".into(),
                        s.growth.map_or(Value::Null, |(b, n)| json!({"bytes": b, "blocks": n})),
                    );
                }
                v
            })
            .collect();
        json!({
            "schema": SCHEMA,
            "tool": {"name": TOOL_NAME, "version": TOOL_VERSION},
            "process": {
                "pid": p.pid, "parent_pid": p.parent_pid, "exec_index": p.exec_index,
                "argv": p.argv, "exe": p.exe, "complete": p.complete, "notes": p.notes,
            },
            "since": since.map(|path| json!({
                "file": path.to_string_lossy(),
                "pid": self.earlier_pid.map(|e| e.0),
                "exec_index": self.earlier_pid.map(|e| e.1),
            })),
            "sites": sites,
            "summary": {
                "live_bytes": bytes, "live_blocks": blocks, "sites": self.sites.len(),
                "allocations": p.summary.allocations, "frees": p.summary.frees,
                "growth": self.growth.map(|(b, n)| json!({"bytes": b, "blocks": n, "gone_sites": self.gone_sites})),
            },
        })
    }
}

fn write_json(v: &Value, path: &Path) -> Result<(), Fail> {
    let mut text = serde_json::to_string_pretty(v).map_err(|e| Fail::new(FAILURE, e.to_string()))?;
    text.push('\n');
    let r = if path == Path::new("-") {
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes()).and_then(|_| out.flush())
    } else {
        std::fs::write(path, text)
    };
    r.map_err(|e| Fail::new(FAILURE, format!("cannot write the snapshot JSON to {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use leakscope_analyse::NoSymbols;
    use leakscope_format::model::{AllocKind, Block, Stats};

    fn block(addr: u64, size: u64, stack: u32) -> Block {
        Block { addr, size, kind: AllocKind::Malloc, stack, flags: 0, class: leakscope_format::model::LeakClass::Unknown }
    }

    fn process(blocks: Vec<Block>) -> ProcessTrace {
        ProcessTrace {
            parent_pid: 1,
            argv: vec!["./server".into()],
            exe: "/srv/server".into(),
            stacks: vec![vec![], vec![0x1000], vec![0x2000]],
            blocks,
            stats: Stats { allocs: 10, frees: 2, ..Default::default() },
            ..crate::collect::empty_process(77, 0)
        }
    }

    #[test]
    fn growth_is_per_site_and_sites_that_grew_come_first() {
        let then = process(vec![block(0x10, 100, 1), block(0x20, 4000, 2)]);
        let now = process(vec![block(0x10, 100, 1), block(0x30, 100, 1), block(0x40, 100, 1), block(0x20, 4000, 2)]);
        let s = build(&now, &[], Some(&then), &mut NoSymbols);
        assert_eq!(s.sites.len(), 2);
        assert_eq!((s.sites[0].leak.bytes, s.sites[0].growth), (300, Some((200, 2))));
        assert_eq!((s.sites[1].leak.bytes, s.sites[1].growth), (4000, Some((0, 0))));
        assert_eq!(s.growth, Some((200, 2)));
        assert!(s.process.complete, "{:?}", s.process.notes);
        let text = s.render(Some(Path::new("s1")));
        assert!(text.contains("300 bytes in 3 blocks live (+200 bytes, +2 blocks since the earlier snapshot)"), "{text}");
        assert!(text.contains("1 other site did not grow"), "{text}");
        let j = s.to_json(Some(Path::new("s1")));
        assert_eq!(j["schema"], SCHEMA);
        assert_eq!(j["sites"][0]["growth"], json!({"bytes": 200, "blocks": 2}));
        assert_eq!(j["summary"]["live_bytes"], 4300);
    }

    #[test]
    fn without_an_earlier_snapshot_sites_are_largest_first() {
        let now = process(vec![block(0x10, 100, 1), block(0x20, 4000, 2)]);
        let s = build(&now, &["stack 9 lies outside the file".into()], None, &mut NoSymbols);
        assert_eq!(s.sites[0].leak.bytes, 4000);
        assert_eq!(s.sites[0].growth, None);
        assert!(!s.process.complete);
        assert_eq!(s.to_json(None)["sites"][0]["growth"], Value::Null);
    }

    #[test]
    fn the_running_image_of_the_pid_is_found() {
        let root = tempfile::tempdir().unwrap();
        let put = |dir: &str, name: &str, state: u32, start: u64| {
            let d = root.path().join(dir);
            std::fs::create_dir_all(&d).unwrap();
            let mut b = vec![0u8; 4096];
            b[..8].copy_from_slice(&layout::MAGIC);
            b[offset_of!(layout::Header, state)..][..4].copy_from_slice(&state.to_le_bytes());
            b[offset_of!(layout::Header, start_ns)..][..8].copy_from_slice(&start.to_le_bytes());
            std::fs::write(d.join(name), b).unwrap();
        };
        put("leakscope-1-a", "proc-500-0.lsm", layout::state::EXECED, 10);
        put("leakscope-1-a", "proc-500-1.lsm", layout::state::RUNNING, 20);
        put("leakscope-1-a", "proc-5000-0.lsm", layout::state::RUNNING, 30);
        put("leakscope-0-old", "proc-500-0.lsm", layout::state::RUNNING, 5);
        put("other", "proc-500-7.lsm", layout::state::RUNNING, 99);
        let parents = [root.path().to_path_buf()];
        let got = find_session_file(500, &parents).unwrap();
        assert!(got.ends_with("leakscope-1-a/proc-500-1.lsm"), "{}", got.display());
        let err = find_session_file(501, &parents).unwrap_err();
        assert!(err.message.contains("no leakscope session file for pid 501"), "{}", err.message);
        put("leakscope-2-b", "proc-600-0.lsm", layout::state::EXITED, 1);
        assert!(find_session_file(600, &parents).unwrap_err().message.contains("has ended"));
    }
}
