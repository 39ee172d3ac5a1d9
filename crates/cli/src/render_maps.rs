//! The text report's sections for mappings never unmapped and shared-memory
//! objects left behind (see `leakscope_analyse::mappings`).

use crate::render_text::{plural, render_stack};
use anstyle::{AnsiColor, Style};
use leakscope_analyse::report::*;
use std::fmt::Write;

const BOLD: Style = Style::new().bold();
const RED: Style = Style::new().bold().fg_color(Some(anstyle::Color::Ansi(AnsiColor::Red)));

/// What a mapping maps, in words.
fn describe(m: &Mapping) -> String {
    let path = m.path.as_deref().unwrap_or("?");
    match m.kind {
        MappingKind::AnonShared => "shared anonymous memory".into(),
        MappingKind::DevZero => "shared /dev/zero memory".into(),
        MappingKind::SysvShm => format!(
            "SysV segment {} (key {:#x}) attached with shmat and never detached",
            m.shmid.unwrap_or(-1),
            m.key.unwrap_or(0)
        ),
        MappingKind::PosixShm => format!("POSIX shared memory {path}"),
        MappingKind::Memfd => format!("memfd {path}"),
        MappingKind::FileShared => format!("shared mapping of {path}"),
        MappingKind::AnonPrivate => "private anonymous memory".into(),
        MappingKind::FilePrivate => format!("private mapping of {path}"),
    }
}

/// The sections of one process: shared mappings, objects left behind, and
/// (with `show_private`) private mappings.
pub fn render(out: &mut String, tag: &str, p: &ProcessReport, show_private: bool) {
    for m in p.mappings.iter().filter(|m| m.shared || show_private) {
        out.push('\n');
        let what = if m.shared { "Shared mapping never unmapped" } else { "Private mapping never unmapped" };
        let _ = writeln!(
            out,
            "{BOLD}{what}: {} in {} of {} ({}) at {:#x}, mapped from:{BOLD:#}",
            plural(m.bytes, "byte", "bytes"),
            plural(m.regions, "region", "regions"),
            describe(m),
            m.prot,
            m.address
        );
        render_stack(out, &m.stack);
    }
    for s in &p.shared_memory {
        out.push('\n');
        let state = match (s.still_exists, s.attached) {
            (Some(true), Some(n)) => format!("still exists, {} attached", plural(n, "process", "processes")),
            (Some(true), None) => "still exists".into(),
            (Some(false), _) => "gone".into(),
            (None, _) => "never removed (not checked after the run)".into(),
        };
        let (what, id, call) = match s.kind {
            SharedMemoryKind::Sysv => (
                "SysV shared memory segment",
                format!("shmid {}, key {:#x}", s.shmid.unwrap_or(-1), s.key.unwrap_or(0)),
                "shmget",
            ),
            SharedMemoryKind::Posix => {
                ("POSIX shared memory object", s.name.clone().unwrap_or_default(), "shm_open")
            }
        };
        let _ = writeln!(
            out,
            "{tag} {RED}LEFT BEHIND:{RED:#} {BOLD}{what} {id}, {}: {state}{BOLD:#}",
            plural(s.bytes, "byte", "bytes")
        );
        let _ = writeln!(out, "  remove it with: {}", s.remove_command);
        let _ = writeln!(out, "  created by {call} at:");
        render_stack(out, &s.stack);
    }
}

/// One summary line when there are shared findings.
pub fn summary(out: &mut String, tag: &str, s: &Summary) {
    if s.mapping_records == 0 && s.shared_memory_objects == 0 {
        return;
    }
    let tag = if tag.is_empty() { String::new() } else { format!("{tag} ") };
    let mut parts = Vec::new();
    if s.mapping_records > 0 {
        parts.push(format!(
            "{} in {} never unmapped",
            plural(s.mapped_bytes, "byte", "bytes"),
            plural(s.mapping_records, "shared mapping record", "shared mapping records")
        ));
    }
    if s.shared_memory_objects > 0 {
        parts.push(format!(
            "{} ({}) left behind",
            plural(s.shared_memory_objects, "shared-memory object", "shared-memory objects"),
            plural(s.shared_memory_bytes, "byte", "bytes")
        ));
    }
    let _ = writeln!(out, "{tag}{BOLD}SUMMARY: leakscope: {}.{BOLD:#}", parts.join("; "));
}

/// The process tree's word on shared findings: `""` when there are none.
pub fn tree_note(s: &Summary) -> String {
    let mut note = String::new();
    if s.mapping_records > 0 {
        let _ = write!(note, "; {} in shared mappings never unmapped", plural(s.mapped_bytes, "byte", "bytes"));
    }
    if s.shared_memory_objects > 0 {
        let _ = write!(
            note,
            "; {} left behind",
            plural(s.shared_memory_objects, "shared-memory object", "shared-memory objects")
        );
    }
    note
}
