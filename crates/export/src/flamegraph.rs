//! Leaked bytes by allocation stack, as an SVG flame graph drawn by inferno.
//!
//! Each leak record (of every class but `reachable`) is one folded stack,
//! outermost frame first, ending in the allocator (`[malloc]`), weighted by
//! its bytes. With several processes, each one's stacks start with a root
//! frame naming it.

use crate::common::{function_label, is_leaked, program_name};
use inferno::flamegraph::{self, color::BasicPalette, Options, Palette};
use leakscope_analyse::report::Report;
use std::collections::BTreeMap;

/// The folded stacks (`root;caller;callee;[malloc] BYTES`), sorted, one per
/// distinct stack.
pub fn folded(report: &Report) -> Vec<String> {
    let several = report.processes.len() > 1;
    let mut stacks: BTreeMap<String, u64> = BTreeMap::new();
    for p in &report.processes {
        for l in p.leaks.iter().filter(|l| is_leaked(l)) {
            let mut names: Vec<String> = Vec::with_capacity(l.stack.len() + 2);
            if several {
                names.push(format!("{} (pid {})", program_name(p), p.pid));
            }
            names.extend(l.stack.iter().rev().map(function_label));
            names.push(format!("[{}]", l.allocator.name()));
            let key = names.iter().map(|n| clean(n)).collect::<Vec<_>>().join(";");
            *stacks.entry(key).or_default() += l.bytes;
        }
    }
    stacks.into_iter().filter(|(_, b)| *b > 0).map(|(k, b)| format!("{k} {b}")).collect()
}

/// Frame names may not hold the folded format's separators.
fn clean(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c == ';' {
                ':'
            } else if c.is_control() {
                ' '
            } else {
                c
            }
        })
        .collect()
}

/// The flame graph as an SVG document. `title` defaults to "Leaked bytes by
/// allocation stack".
pub fn svg(report: &Report, title: Option<&str>) -> std::io::Result<Vec<u8>> {
    let lines = folded(report);
    let title = title.unwrap_or("Leaked bytes by allocation stack");
    if lines.is_empty() {
        return Ok(empty_svg(title).into_bytes());
    }
    let mut opts = Options::default();
    opts.title = title.to_string();
    opts.count_name = "bytes".into();
    opts.name_type = "Frame:".into();
    opts.colors = Palette::Basic(BasicPalette::Mem);
    opts.hash = true;
    opts.deterministic = true;
    let mut out = Vec::new();
    flamegraph::from_lines(&mut opts, lines.iter().map(String::as_str), &mut out)?;
    Ok(out)
}

/// What to draw when nothing leaked (inferno refuses an empty input).
fn empty_svg(title: &str) -> String {
    let t = crate::html::escape(title);
    format!(
        "<?xml version=\"1.0\" standalone=\"no\"?>\n\
         <svg version=\"1.1\" width=\"1200\" height=\"80\" viewBox=\"0 0 1200 80\" xmlns=\"http://www.w3.org/2000/svg\">\
         <rect x=\"0\" y=\"0\" width=\"100%\" height=\"100%\" fill=\"#f8f8f8\"/>\
         <text x=\"600\" y=\"28\" text-anchor=\"middle\" font-family=\"Verdana,sans-serif\" font-size=\"17\">{t}</text>\
         <text x=\"600\" y=\"58\" text-anchor=\"middle\" font-family=\"Verdana,sans-serif\" font-size=\"12\">No leaked bytes.</text>\
         </svg>\n"
    )
}

/// Writes [`svg`] to `path`.
pub fn write(report: &Report, path: &std::path::Path) -> std::io::Result<()> {
    std::fs::write(path, svg(report, None)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata;

    #[test]
    fn stacks_are_folded_outermost_first_and_weighted_by_bytes() {
        let r = testdata::report();
        let lines = folded(&r);
        assert!(lines.contains(&"leaky (pid 100);main;make_record;__strdup;[malloc] 13".to_string()), "{lines:#?}");
        assert!(lines.contains(&"leaky (pid 100);main;helper;inner_inlined;[new[]] 40".to_string()), "{lines:#?}");
        assert!(lines.contains(&"leaky (pid 100);main;libnosym.so+0x3000;[calloc] 10".to_string()), "{lines:#?}");
        let mut one = r.clone();
        one.processes.truncate(1);
        assert!(
            folded(&one).contains(&"main;make_record;__strdup;[malloc] 13".to_string()),
            "no root frame for one process"
        );
        // reachable memory is not leaked
        assert!(!lines.iter().any(|l| l.contains("keep_forever")), "{lines:#?}");
    }

    #[test]
    fn the_svg_is_an_inferno_flame_graph_naming_the_frames() {
        let svg = String::from_utf8(svg(&testdata::report(), None).unwrap()).unwrap();
        assert!(svg.starts_with("<?xml"), "{}", &svg[..200]);
        assert!(svg.contains("Leaked bytes by allocation stack"));
        assert!(svg.contains("make_record"));
        assert!(svg.contains("bytes"));
        let empty = String::from_utf8(svg_of_nothing()).unwrap();
        assert!(empty.contains("No leaked bytes"), "{empty}");
    }

    fn svg_of_nothing() -> Vec<u8> {
        let mut r = testdata::report();
        for p in &mut r.processes {
            p.leaks.clear();
        }
        svg(&r, None).unwrap()
    }
}
