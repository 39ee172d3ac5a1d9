//! What a process's report owes to how it began and ended: the notes that say
//! why a process that did not end through its exit handlers is not complete,
//! and the blocks it inherited from its parent at fork (`--show-inherited`).

use crate::report::ProcessReport;
use crate::symbols::Symbolize;
use crate::Options;
use leakscope_format::layout::{entry_flags, scan_state};
use leakscope_format::model::{Ending, ProcessTrace};

/// Adds the ending note and, when asked, the inherited blocks to `report`.
pub fn annotate<S: Symbolize + ?Sized>(p: &ProcessTrace, sym: &mut S, opts: &Options, report: &mut ProcessReport) {
    if let Some(note) = ending_note(p) {
        report.add_note(note);
    }
    if opts.show_inherited {
        report.inherited = inherited(p, sym, opts);
    }
}

/// Why a process whose exit handlers did not run is not complete.
pub fn ending_note(p: &ProcessTrace) -> Option<String> {
    note_for(p.ending, p.finalized, p.scan.state != scan_state::NONE)
}

fn note_for(ending: Ending, finalized: bool, scanned: bool) -> Option<String> {
    if finalized {
        return None;
    }
    let unclassified = if !scanned {
        "leakscope could not classify its blocks (no reachability scan ran), and "
    } else {
        ""
    };
    let after = format!("{unclassified}memory that libraries free only at exit (libc's one-time allocations, for instance) may be listed");
    Some(match ending {
        Ending::Signaled(s) => format!(
            "killed by signal {s}{} before its exit handlers ran: {after}",
            signal_name(s).map(|n| format!(" ({n})")).unwrap_or_default()
        ),
        Ending::Exited(_) => format!("ended without running its exit handlers (_exit(), _Exit() or exit_group): {after}"),
        Ending::Execed => format!("replaced by execve(): its blocks are those live at the exec; {after}"),
        // Said by the caller (it was not seen to end at all).
        Ending::Unknown => return None,
    })
}

/// The blocks `p` inherited from its parent at fork, grouped like leaks.
fn inherited<S: Symbolize + ?Sized>(p: &ProcessTrace, sym: &mut S, opts: &Options) -> Vec<crate::report::Leak> {
    let blocks: Vec<_> = p
        .blocks
        .iter()
        .filter(|b| b.flags & entry_flags::INHERITED != 0 && b.flags & (entry_flags::INTERNAL | entry_flags::IGNORED) == 0)
        .map(|b| leakscope_format::model::Block { flags: b.flags & !entry_flags::INHERITED, ..*b })
        .collect();
    if blocks.is_empty() {
        return Vec::new();
    }
    let mut only = ProcessTrace { blocks, errors: Vec::new(), ..p.clone() };
    only.finalized = true;
    let opts = Options { show_inherited: false, ..opts.clone() };
    crate::analyse_process(&only, sym, &opts).leaks
}

fn signal_name(sig: i32) -> Option<&'static str> {
    Some(match sig {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        10 => "SIGUSR1",
        11 => "SIGSEGV",
        12 => "SIGUSR2",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        24 => "SIGXCPU",
        25 => "SIGXFSZ",
        31 => "SIGSYS",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_processes_whose_exit_handlers_did_not_run_get_a_note() {
        assert_eq!(note_for(Ending::Exited(0), true, true), None);
        assert_eq!(note_for(Ending::Unknown, false, false), None);
        let killed = note_for(Ending::Signaled(9), false, false).unwrap();
        assert!(killed.starts_with("killed by signal 9 (SIGKILL) before its exit handlers ran"), "{killed}");
        assert!(killed.contains("no reachability scan ran"), "{killed}");
        assert!(!note_for(Ending::Signaled(9), false, true).unwrap().contains("no reachability scan ran"));
        assert!(note_for(Ending::Exited(3), false, false).unwrap().contains("_exit()"));
        assert!(note_for(Ending::Execed, false, false).unwrap().starts_with("replaced by execve()"));
    }
}
