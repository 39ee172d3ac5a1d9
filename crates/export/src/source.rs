//! A few lines of source around each frame, for the HTML report, read when
//! the report is written (from the paths the debug information gave).

use leakscope_analyse::report::{Frame, Report};
use std::collections::BTreeMap;

/// Lines shown before and after a frame's line.
pub const CONTEXT: u32 = 3;
/// Larger files are not read.
const MAX_FILE_BYTES: u64 = 4 << 20;
/// At most this many distinct files are read.
const MAX_FILES: usize = 500;
/// Longer lines are cut.
const MAX_LINE_CHARS: usize = 240;

/// Source lines by file, then by 1-based line number: only the lines within
/// [`CONTEXT`] of a frame's line, and only for files that could be read.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Snippets {
    pub files: BTreeMap<String, BTreeMap<u32, String>>,
}

impl Snippets {
    /// Reads what every stack of `report` needs.
    pub fn collect(report: &Report) -> Snippets {
        let mut wanted: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        let mut add = |stack: &[Frame]| {
            for f in stack {
                if let (Some(file), Some(line)) = (f.file.as_deref(), f.line) {
                    if file.starts_with('/') && line > 0 {
                        wanted.entry(file.to_string()).or_default().push(line);
                    }
                }
            }
        };
        for p in &report.processes {
            for l in &p.leaks {
                add(&l.stack);
            }
            for e in &p.errors {
                add(&e.stack);
                for s in [&e.alloc_stack, &e.free_stack].into_iter().flatten() {
                    add(s);
                }
            }
        }
        let mut files = BTreeMap::new();
        for (file, lines) in wanted.into_iter().take(MAX_FILES) {
            let Some(text) = read_lines(&file) else { continue };
            let mut keep = BTreeMap::new();
            for line in lines {
                let lo = line.saturating_sub(CONTEXT).max(1);
                for n in lo..=line + CONTEXT {
                    if let Some(t) = text.get(n as usize - 1) {
                        keep.insert(n, t.clone());
                    }
                }
            }
            if !keep.is_empty() {
                files.insert(file, keep);
            }
        }
        Snippets { files }
    }

    /// Whether `file`:`line` has a snippet.
    pub fn has(&self, file: &str, line: u32) -> bool {
        self.files.get(file).is_some_and(|l| l.contains_key(&line))
    }
}

fn read_lines(path: &str) -> Option<Vec<String>> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() || meta.len() > MAX_FILE_BYTES {
        return None;
    }
    let bytes = std::fs::read(path).ok()?;
    if bytes.contains(&0) {
        return None; // not text
    }
    let text = String::from_utf8_lossy(&bytes);
    Some(
        text.lines()
            .map(|l| {
                let l = l.replace('\t', "    ");
                if l.chars().count() > MAX_LINE_CHARS {
                    l.chars().take(MAX_LINE_CHARS).collect::<String>() + "…"
                } else {
                    l
                }
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata;

    #[test]
    fn lines_around_each_frame_of_readable_files_are_kept() {
        let dir = std::env::temp_dir().join(format!("leakscope-export-src-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("leaky.c");
        let text: String = (1..=60).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&file, text).unwrap();
        let mut r = testdata::report();
        for p in &mut r.processes {
            for l in &mut p.leaks {
                for f in &mut l.stack {
                    if f.file.as_deref() == Some(testdata::SRC) {
                        f.file = Some(file.to_str().unwrap().into());
                    }
                }
            }
        }
        let s = Snippets::collect(&r);
        let lines = &s.files[file.to_str().unwrap()];
        assert_eq!(lines[&16], "line 16");
        assert_eq!(lines[&13], "line 13");
        assert_eq!(lines[&19], "line 19");
        assert!(!lines.contains_key(&24) && !lines.contains_key(&36), "{lines:?}");
        assert!(s.has(file.to_str().unwrap(), 12));
        assert!(!s.files.contains_key(testdata::SRC), "a missing file has no snippet");
        assert!(!s.files.keys().any(|f| f.contains("strdup")), "relative paths are not read");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
