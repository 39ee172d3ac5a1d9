//! leakscope's analysis: turns the trace model ([`leakscope_format::model`])
//! into the report model ([`report`]), the public JSON contract
//! `leakscope-report/1`.
//!
//! Per process: live blocks are grouped by (allocation stack, allocator) into
//! leak records, largest first; heap errors keep their order; every stack is
//! symbolised in one batch per process ([`symbols`]).

pub mod fingerprint;
pub mod leaks;
pub mod lineage;
pub mod mappings;
pub mod report;
pub mod runtime;
pub mod words;
pub mod suppress;
pub mod symbols;

use leakscope_format::model::{Ending, ProcessTrace, Trace};
use report::*;
use symbols::{FrameTable, Symbolize};

pub use symbols::{NoSymbols, Symbolizer};

/// How to analyse.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Keep at most this many return addresses of each stack in the report
    /// (grouping still uses whole stacks). `None`: all of them.
    pub max_frames: Option<usize>,
    /// List the blocks a process inherited from its parent at fork
    /// ([`ProcessReport::inherited`]).
    pub show_inherited: bool,
}

/// Analyses every process of `trace`.
pub fn analyse<S: Symbolize + ?Sized>(trace: &Trace, sym: &mut S, opts: &Options) -> Report {
    let mut processes: Vec<ProcessReport> = trace.processes.iter().map(|p| analyse_process(p, sym, opts)).collect();
    mappings::fill(trace, &mut processes, sym, opts);
    let summary = total(&processes);
    Report { schema: SCHEMA.into(), tool: Tool::default(), processes, summary, suppressions: Vec::new() }
}

/// Sums the summaries of `processes`.
pub fn total(processes: &[ProcessReport]) -> Summary {
    let mut s = Summary::default();
    for p in processes {
        s.add(&p.summary);
    }
    s
}

impl Report {
    /// Recomputes [`Report::summary`] from the processes (after editing them).
    pub fn update_summary(&mut self) {
        self.summary = total(&self.processes);
    }

    /// Whether any process has a leak or a heap error.
    pub fn has_findings(&self) -> bool {
        self.processes.iter().any(ProcessReport::has_findings)
    }

    pub fn process_mut(&mut self, pid: u32, exec_index: u32) -> Option<&mut ProcessReport> {
        self.processes.iter_mut().find(|p| p.pid == pid && p.exec_index == exec_index)
    }
}

fn reachability(p: &ProcessTrace) -> Reachability {
    use leakscope_format::layout::scan_state;
    let state = match p.scan.state {
        scan_state::COMPLETE => "complete",
        scan_state::PARTIAL => "partial",
        _ => return Reachability::none(),
    };
    Reachability {
        state: state.into(),
        threads_stopped: p.scan.threads_stopped,
        threads_not_stopped: p.scan.threads_not_stopped,
        millis: p.scan.nanos as f64 / 1e6,
    }
}

/// Analyses one process.
pub fn analyse_process<S: Symbolize + ?Sized>(p: &ProcessTrace, sym: &mut S, opts: &Options) -> ProcessReport {
    let groups = leaks::group(p);
    let stack_of = |id: u32| -> &[u64] {
        let s = p.stacks.get(id as usize).map(Vec::as_slice).unwrap_or(&[]);
        match opts.max_frames {
            Some(n) if s.len() > n => &s[..n],
            _ => s,
        }
    };

    // Every stack the report shows, symbolised in one batch.
    let mut used: Vec<&[u64]> = groups.iter().map(|g| stack_of(g.stack)).collect();
    for e in &p.errors {
        used.push(stack_of(e.stack));
        if let Some(b) = &e.block {
            used.push(stack_of(b.alloc_stack));
            used.push(stack_of(b.free_stack));
        }
    }
    let table = FrameTable::build_with_locations(sym, &p.modules, &p.locations, used);

    let (leaks, runtime_kept): (Vec<Leak>, Vec<Leak>) = groups
        .iter()
        .map(|g| Leak {
            class: g.class.into(),
            bytes: g.bytes,
            blocks: g.blocks,
            allocator: g.kind.into(),
            stack: table.stack(stack_of(g.stack)),
            fingerprint: String::new(),
        })
        .partition(|l| !runtime::is_runtime_lifetime(&l.stack));
    let mut leaks = leaks;
    fingerprint::assign(&mut leaks);

    let errors: Vec<HeapErrorReport> = p
        .errors
        .iter()
        .map(|e| {
            let b = e.block.as_ref();
            let freed_before = b.is_some_and(|b| b.first_release.is_some() || b.free_stack != 0);
            HeapErrorReport {
                kind: e.kind.into(),
                release: e.release.into(),
                address: e.addr,
                region: e.region.into(),
                block: b.map(|b| BlockInfo { address: b.addr, bytes: b.size, allocator: b.kind.into() }),
                stack: table.stack(stack_of(e.stack)),
                alloc_stack: b.map(|b| table.stack(stack_of(b.alloc_stack))),
                free_stack: b.filter(|_| freed_before).map(|b| table.stack(stack_of(b.free_stack))),
                first_release: b.and_then(|b| b.first_release).map(Release::from),
            }
        })
        .collect();

    let totals = |class: LeakClass| {
        let of: Vec<&Leak> = leaks.iter().filter(|l| l.class == class).collect();
        ClassTotals {
            bytes: of.iter().map(|l| l.bytes).sum(),
            blocks: of.iter().map(|l| l.blocks).sum(),
            records: of.len() as u64,
        }
    };
    let leaked: Vec<&Leak> = leaks.iter().filter(|l| l.class != LeakClass::Reachable).collect();
    let summary = Summary {
        leaked_bytes: leaked.iter().map(|l| l.bytes).sum(),
        leaked_blocks: leaked.iter().map(|l| l.blocks).sum(),
        leak_records: leaked.len() as u64,
        definite: totals(LeakClass::Definite),
        indirect: totals(LeakClass::Indirect),
        possible: totals(LeakClass::Possible),
        reachable: totals(LeakClass::Reachable),
        errors: errors.len() as u64,
        allocations: p.stats.allocs,
        frees: p.stats.frees,
        runtime_kept_bytes: runtime_kept.iter().map(|l| l.bytes).sum(),
        runtime_kept_blocks: runtime_kept.iter().map(|l| l.blocks).sum(),
        ..Summary::default()
    };

    let mut report = ProcessReport {
        pid: p.pid,
        parent_pid: p.parent_pid,
        exec_index: p.exec_index,
        argv: p.argv.clone(),
        exe: p.exe.clone(),
        exit: p.ending.into(),
        complete: true,
        notes: Vec::new(),
        leaks,
        errors,
        mappings: Vec::new(),
        shared_memory: Vec::new(),
        summary,
        reachability: reachability(p),
        inherited: Vec::new(),
    };
    lineage::annotate(p, sym, opts, &mut report);
    if p.scan.state == leakscope_format::layout::scan_state::PARTIAL {
        report.add_note(format!(
            "{} thread(s) could not be stopped for the reachability scan (they block its signal): blocks only \
             they point to may be reported lost",
            p.scan.threads_not_stopped
        ));
    }
    if p.ending == Ending::Unknown && !p.finalized {
        report.add_note(
            "leakscope did not see this process end (it was still running when its session file was read, \
             or it was killed while no traced parent waited for it): its live blocks are a snapshot",
        );
    }
    report
}

#[cfg(test)]
mod tests;
