//! After every traced process has ended: do the shared-memory objects the
//! program created still exist? SysV segments are looked up in
//! /proc/sysvipc/shm (by id, with the creator's pid, and not already marked
//! for destruction); POSIX objects are the files in /dev/shm (the same inode
//! as at creation). What is found goes into the trace (`EndCheck`), so a
//! saved trace keeps it.

use leakscope_format::model::{EndCheck, ShmEventKind, Trace};
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;

/// `shm_perm.mode` bit of a segment marked with IPC_RMID but still attached.
const SHM_DEST: u32 = 0o1000;

/// One line of /proc/sysvipc/shm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub key: i32,
    pub shmid: i32,
    pub perms: u32,
    pub size: u64,
    pub cpid: u32,
    pub nattch: u64,
}

/// Parses /proc/sysvipc/shm: `key shmid perms size cpid lpid nattch ...`
/// (perms in octal), after a header line.
pub fn parse_sysvipc(text: &str) -> HashMap<i32, Segment> {
    let mut out = HashMap::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 7 {
            continue;
        }
        let (Ok(key), Ok(shmid), Ok(perms), Ok(size), Ok(cpid), Ok(nattch)) = (
            f[0].parse::<i32>(),
            f[1].parse::<i32>(),
            u32::from_str_radix(f[2], 8),
            f[3].parse::<u64>(),
            f[4].parse::<u32>(),
            f[6].parse::<u64>(),
        ) else {
            continue;
        };
        out.insert(shmid, Segment { key, shmid, perms, size, cpid, nattch });
    }
    out
}

/// Fills the end state of every SysV and POSIX creation in `trace`.
pub fn check(trace: &mut Trace) {
    let wanted = trace.processes.iter().flat_map(|p| &p.maps.events).any(|e| {
        matches!(e.kind, ShmEventKind::SysvCreate | ShmEventKind::PosixCreate)
    });
    if !wanted {
        return;
    }
    let segments = std::fs::read_to_string("/proc/sysvipc/shm").ok().map(|t| parse_sysvipc(&t));
    for p in &mut trace.processes {
        for e in &mut p.maps.events {
            match e.kind {
                ShmEventKind::SysvCreate => {
                    let Some(segments) = &segments else { continue };
                    e.end = match segments.get(&e.shmid) {
                        Some(s) if s.cpid == e.pid && s.perms & SHM_DEST == 0 => {
                            EndCheck::Exists { bytes: s.size, attached: Some(s.nattch) }
                        }
                        _ => EndCheck::Gone,
                    };
                }
                ShmEventKind::PosixCreate => {
                    let name = leakscope_analyse::mappings::posix_name(&e.name);
                    if name.is_empty() || name.contains('/') {
                        continue;
                    }
                    e.end = match std::fs::metadata(format!("/dev/shm/{name}")) {
                        Ok(m) if e.ino == 0 || (m.ino() == e.ino && m.dev() == e.dev) => {
                            EndCheck::Exists { bytes: m.len(), attached: None }
                        }
                        Ok(_) => EndCheck::Gone,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => EndCheck::Gone,
                        Err(_) => continue,
                    };
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysvipc_lines_are_parsed_with_octal_perms() {
        let text = "       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime                   rss                  swap\n\
                    \x20        0      32769  1600                  1024  4242  4243      0  1000  1000  1000  1000 1700000000 1700000001 1700000000                  4096                     0\n\
                    \x20  1234567         12  3666                 65536  4300     0      2  1000  1000  1000  1000          0          0 1700000000                     0                     0\n";
        let m = parse_sysvipc(text);
        assert_eq!(m.len(), 2);
        assert_eq!(m[&32769], Segment { key: 0, shmid: 32769, perms: 0o1600, size: 1024, cpid: 4242, nattch: 0 });
        assert_ne!(m[&12].perms & SHM_DEST, 0);
        assert_eq!(m[&12].nattch, 2);
    }
}
