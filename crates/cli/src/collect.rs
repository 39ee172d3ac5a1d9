//! Reading every session file of a run into a [`Trace`].

use crate::launch::Status;
use leakscope_format::layout;
use leakscope_format::model::{Ending, ProcessTrace, Stats, Trace};
use leakscope_format::session::{read_session_file, session_files, FILE_PREFIX, FILE_SUFFIX};
use std::path::Path;

/// Something that makes a process's data partial, for its report's notes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessNote {
    pub pid: u32,
    pub exec_index: u32,
    pub note: String,
}

#[derive(Debug, Default)]
pub struct Collected {
    pub trace: Trace,
    pub notes: Vec<ProcessNote>,
    /// Session files found (read or not).
    pub files: usize,
}

/// Reads the session files in `dir`. `child` is the direct child's pid and
/// how waitpid saw it end: the last image of that pid takes its ending from there.
pub fn collect(dir: &Path, child: Option<(u32, Status)>) -> std::io::Result<Collected> {
    let files = session_files(dir)?;
    let mut out = Collected { files: files.len(), ..Default::default() };
    let mut states = Vec::new();
    for path in &files {
        match read_session_file(path) {
            Ok(read) => {
                let p = &read.process;
                for d in &read.damage {
                    out.notes.push(ProcessNote {
                        pid: p.pid,
                        exec_index: p.exec_index,
                        note: format!("session file damaged: {d}"),
                    });
                }
                states.push(read.state);
                out.trace.processes.push(read.process);
            }
            Err(msg) => {
                // Keep the process in the report, empty, with the reason.
                let (pid, exec_index) = ids_from_name(path).unwrap_or((0, 0));
                out.notes.push(ProcessNote { pid, exec_index, note: format!("session file unreadable: {msg}") });
                states.push(layout::state::RUNNING);
                out.trace.processes.push(empty_process(pid, exec_index));
            }
        }
    }
    if let Some((pid, status)) = child {
        let last = out
            .trace
            .processes
            .iter()
            .enumerate()
            .filter(|(_, p)| p.pid == pid)
            .max_by_key(|(_, p)| p.exec_index)
            .map(|(i, _)| i);
        if let Some(i) = last {
            // An image that exec'd into something untraced keeps "exec".
            if states[i] != layout::state::EXECED {
                out.trace.processes[i].ending = match status {
                    Status::Exited(c) => Ending::Exited(c),
                    Status::Signaled(s) => Ending::Signaled(s),
                };
            }
        }
    }
    // session_files() orders by pid and exec index already; keep it explicit.
    out.trace.processes.sort_by_key(|p| (p.pid, p.exec_index));
    Ok(out)
}

/// (pid, exec index) from a `proc-<pid>-<exec>.lsm` file name.
fn ids_from_name(path: &Path) -> Option<(u32, u32)> {
    let name = path.file_name()?.to_str()?;
    let core = name.strip_prefix(FILE_PREFIX)?.strip_suffix(FILE_SUFFIX)?;
    let (pid, idx) = core.split_once('-')?;
    Some((pid.parse().ok()?, idx.parse().ok()?))
}

/// A process with nothing known about it (also a base for tests elsewhere).
pub(crate) fn empty_process(pid: u32, exec_index: u32) -> ProcessTrace {
    ProcessTrace {
        pid,
        parent_pid: 0,
        exec_index,
        argv: Vec::new(),
        exe: String::new(),
        ending: Ending::Unknown,
        finalized: false,
        modules: Vec::new(),
        stacks: vec![Vec::new()],
        blocks: Vec::new(),
        errors: Vec::new(),
        stats: Stats::default(),
        scan: Default::default(),
        maps: Default::default(),
        locations: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    /// A minimal session file: a header with magic, version, pid, exec index and state.
    fn session_file(dir: &Path, pid: u32, exec_index: u32, state: u32, exit_code: i32) {
        let mut b = vec![0u8; size_of::<layout::Header>()];
        b[..8].copy_from_slice(&layout::MAGIC);
        let put32 = |b: &mut Vec<u8>, off: usize, v: u32| b[off..off + 4].copy_from_slice(&v.to_le_bytes());
        put32(&mut b, offset_of!(layout::Header, version), layout::LAYOUT_VERSION);
        put32(&mut b, offset_of!(layout::Header, pid), pid);
        put32(&mut b, offset_of!(layout::Header, exec_index), exec_index);
        put32(&mut b, offset_of!(layout::Header, state), state);
        put32(&mut b, offset_of!(layout::Header, exit_code), exit_code as u32);
        let len = b.len() as u64;
        b[offset_of!(layout::Header, bump)..][..8].copy_from_slice(&len.to_le_bytes());
        std::fs::write(dir.join(format!("proc-{pid}-{exec_index}.lsm")), b).unwrap();
    }

    #[test]
    fn the_direct_childs_last_image_takes_the_waitpid_ending() {
        let dir = tempfile::tempdir().unwrap();
        session_file(dir.path(), 20, 0, layout::state::EXECED, 0);
        session_file(dir.path(), 20, 1, layout::state::RUNNING, 0);
        session_file(dir.path(), 5, 0, layout::state::EXITED, 3);
        session_file(dir.path(), 30, 0, layout::state::RUNNING, 0);
        let c = collect(dir.path(), Some((20, Status::Signaled(9)))).unwrap();
        assert_eq!(c.files, 4);
        let got: Vec<(u32, u32, Ending)> = c.trace.processes.iter().map(|p| (p.pid, p.exec_index, p.ending)).collect();
        assert_eq!(
            got,
            vec![
                (5, 0, Ending::Exited(3)),
                (20, 0, Ending::Execed),
                (20, 1, Ending::Signaled(9)),
                (30, 0, Ending::Unknown),
            ]
        );
        assert!(c.notes.is_empty());
    }

    #[test]
    fn a_last_image_that_execed_keeps_exec() {
        let dir = tempfile::tempdir().unwrap();
        session_file(dir.path(), 20, 0, layout::state::EXECED, 0);
        let c = collect(dir.path(), Some((20, Status::Exited(0)))).unwrap();
        assert_eq!(c.trace.processes[0].ending, Ending::Execed);
    }

    #[test]
    fn unreadable_files_become_empty_processes_with_a_note() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("proc-44-2.lsm"), b"short").unwrap();
        std::fs::write(dir.path().join("unrelated.txt"), b"x").unwrap();
        let c = collect(dir.path(), Some((44, Status::Exited(1)))).unwrap();
        assert_eq!(c.files, 1);
        let p = &c.trace.processes[0];
        assert_eq!((p.pid, p.exec_index, p.ending), (44, 2, Ending::Exited(1)));
        assert_eq!(c.notes.len(), 1);
        assert!(c.notes[0].note.contains("shorter than its header"), "{:?}", c.notes);
    }

    #[test]
    fn an_empty_directory_gives_no_processes() {
        let dir = tempfile::tempdir().unwrap();
        let c = collect(dir.path(), Some((1, Status::Exited(0)))).unwrap();
        assert_eq!(c.files, 0);
        assert!(c.trace.processes.is_empty());
    }
}
