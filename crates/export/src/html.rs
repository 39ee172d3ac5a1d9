//! One self-contained HTML page: works offline (styles, scripts, source
//! snippets and the flame graph are inlined; nothing is fetched).
//!
//! Sections: summary (leaked bytes and blocks by class, heap errors,
//! processes), a leak table that sorts (click a column header) and filters
//! (text, class), each record expanding to its stack with a few lines of
//! source around each frame whose file was readable when the page was
//! written, the heap errors with their stacks, the process tree, mapping and
//! shared-memory findings, and the flame graph of leaked bytes.
//!
//! The page is rendered here; its script only sorts, filters, expands and
//! fills in source snippets (kept once per line in a JSON block).

use crate::common::*;
use crate::source::Snippets;
use leakscope_analyse::report::{Frame, ProcessReport, Report};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

/// What else goes on the page.
#[derive(Clone, Debug, Default)]
pub struct HtmlOptions {
    /// Lines shown at the top of the summary (e.g. what a baseline left out).
    pub notices: Vec<String>,
    /// Read source files for the snippets (off: no file is opened).
    pub read_sources: bool,
}

/// Escapes text for HTML content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// `12,345`.
fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `63 B`, `1.5 KiB`, `2.0 MiB`.
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 { T[(n >> 6) as usize & 63] as char } else { '=' });
        out.push(if chunk.len() > 2 { T[n as usize & 63] as char } else { '=' });
    }
    out
}

/// JSON for a `<script type="application/json">` block (no `</script>` inside).
fn script_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "{}".into()).replace('<', "\\u003c")
}

/// The whole page.
pub fn render(report: &Report, opts: &HtmlOptions) -> String {
    let snippets = if opts.read_sources { Snippets::collect(report) } else { Snippets::default() };
    let root = report.processes.iter().find(|p| !report.processes.iter().any(|q| q.pid == p.parent_pid));
    let title = match root {
        Some(p) => format!("leakscope: {}", command_line(p)),
        None => "leakscope report".to_string(),
    };
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"generator\" content=\"leakscope {}\">\n<title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        escape(&report.tool.version),
        escape(&title)
    );
    let _ = write!(
        h,
        "<header><h1>leakscope report</h1>{}<p class=\"meta\">leakscope {} &middot; {} &middot; schema {}</p>\
         <nav><a href=\"#summary\">Summary</a><a href=\"#leaks\">Leaks</a><a href=\"#errors\">Heap errors</a>\
         <a href=\"#processes\">Processes</a><a href=\"#flamegraph\">Flame graph</a></nav></header>\n<main>\n",
        root.map(|p| format!("<p class=\"cmd\"><code>$ {}</code></p>", escape(&command_line(p)))).unwrap_or_default(),
        escape(&report.tool.version),
        plural(report.processes.len() as u64, "process", "processes"),
        escape(&report.schema)
    );
    summary(&mut h, report, opts);
    leak_table(&mut h, report);
    errors(&mut h, report);
    processes(&mut h, report);
    reserved(&mut h, report);
    flamegraph(&mut h, report);
    let _ = write!(
        h,
        "</main>\n<footer>Written by leakscope {}. This page is self-contained: it loads nothing from the network.</footer>\n\
         <script type=\"application/json\" id=\"sources\">{}</script>\n<script>{JS}</script>\n</body>\n</html>\n",
        escape(&report.tool.version),
        script_json(&snippets.files)
    );
    h
}

fn summary(h: &mut String, report: &Report, opts: &HtmlOptions) {
    let s = &report.summary;
    let card = |h: &mut String, class: &str, id: &str, num: String, label: String| {
        let _ = write!(
            h,
            "<div class=\"card {class}\" id=\"{id}\"><div class=\"num\">{}</div><div class=\"label\">{}</div></div>",
            escape(&num),
            escape(&label)
        );
    };
    h.push_str("<section id=\"summary\"><h2>Summary</h2>\n");
    for n in &opts.notices {
        let _ = writeln!(h, "<p class=\"notice\">{}</p>", escape(n));
    }
    h.push_str("<div class=\"cards\">");
    card(
        h,
        if s.leaked_bytes > 0 { "bad" } else { "good" },
        "card-leaked",
        human_bytes(s.leaked_bytes),
        format!("leaked in {}", plural(s.leaked_blocks, "block", "blocks")),
    );
    card(h, "", "card-records", thousands(s.leak_records), "leak records".into());
    card(h, if s.errors > 0 { "bad" } else { "good" }, "card-errors", thousands(s.errors), "heap errors".into());
    card(h, "", "card-processes", thousands(report.processes.len() as u64), "processes".into());
    card(h, "", "card-allocs", thousands(s.allocations), format!("allocations, {} frees", thousands(s.frees)));
    h.push_str("</div>\n");

    // By class, from the records themselves (whatever classes the model has).
    let mut by_class: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    for p in &report.processes {
        for l in &p.leaks {
            let e = by_class.entry(class_name(l)).or_default();
            e.0 += 1;
            e.1 += l.blocks;
            e.2 += l.bytes;
        }
    }
    if !by_class.is_empty() {
        h.push_str(
            "<table class=\"by-class\"><thead><tr><th>Class</th><th class=\"n\">Records</th><th class=\"n\">Blocks</th>\
             <th class=\"n\">Bytes</th></tr></thead><tbody>",
        );
        for (class, (records, blocks, bytes)) in &by_class {
            let note = if class == "reachable" {
                " <span class=\"muted\">(still referenced: not counted as leaked)</span>"
            } else {
                ""
            };
            let _ = write!(
                h,
                "<tr><td><span class=\"class class-{c}\">{c}</span>{note}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                thousands(*records),
                thousands(*blocks),
                thousands(*bytes),
                c = escape(class)
            );
        }
        h.push_str("</tbody></table>\n");
    }
    if s.runtime_kept_blocks > 0 {
        let _ = writeln!(
            h,
            "<p class=\"muted\">Not counted: {} in {} kept by a language runtime for the life of the process.</p>",
            escape(&plural(s.runtime_kept_bytes, "byte", "bytes")),
            escape(&plural(s.runtime_kept_blocks, "block", "blocks"))
        );
    }
    for p in report.processes.iter().filter(|p| !p.notes.is_empty()) {
        for n in &p.notes {
            let _ = writeln!(h, "<p class=\"warn\">pid {}: {}</p>", p.pid, escape(n));
        }
    }
    h.push_str("</section>\n");
}

fn frame_item(h: &mut String, i: usize, f: &Frame) {
    let user = leakscope_analyse::fingerprint::is_user_frame(f);
    let src = match (&f.file, f.line) {
        (Some(file), Some(line)) if line > 0 => {
            format!(" data-file=\"{}\" data-line=\"{line}\"", escape(file))
        }
        _ => String::new(),
    };
    let module = match (&f.module, f.module_offset) {
        (Some(m), Some(off)) => {
            format!(" <span class=\"mod\" title=\"{}\">{}+{off:#x}</span>", escape(m), escape(base_name(m)))
        }
        (Some(m), None) => format!(" <span class=\"mod\" title=\"{}\">{}</span>", escape(m), escape(base_name(m))),
        _ => String::new(),
    };
    let loc = match &f.file {
        Some(_) => format!(" <span class=\"loc\">{}</span>", escape(&location(f))),
        None => String::new(),
    };
    let _ = write!(
        h,
        "<li class=\"frame {}\"{src}><span class=\"fnum\">#{i}</span> <code class=\"fn\">{}</code>{loc}{module}{}</li>",
        if user { "user" } else { "system" },
        escape(f.function.as_deref().unwrap_or("??")),
        if f.inlined { " <span class=\"tag\">inlined</span>" } else { "" }
    );
}

fn stack_list(h: &mut String, stack: &[Frame]) {
    if stack.is_empty() {
        h.push_str("<p class=\"muted\">(no stack recorded)</p>");
        return;
    }
    h.push_str("<ol class=\"stack\">");
    for (i, f) in stack.iter().enumerate() {
        frame_item(h, i, f);
    }
    h.push_str("</ol>");
}

fn leak_table(h: &mut String, report: &Report) {
    let total: usize = report.processes.iter().map(|p| p.leaks.len()).sum();
    let mut classes: Vec<String> = report.processes.iter().flat_map(|p| p.leaks.iter().map(class_name)).collect();
    classes.sort();
    classes.dedup();
    let _ = writeln!(h, "<section id=\"leaks\"><h2>Leaks</h2>");
    if total == 0 {
        h.push_str("<p class=\"empty\">No leaks: every block was freed (or kept on purpose by a language runtime).</p></section>\n");
        return;
    }
    h.push_str(
        "<div class=\"controls\"><input type=\"search\" id=\"leak-filter\" placeholder=\"Filter: function, file, allocator, fingerprint…\" \
         aria-label=\"Filter leaks\"><select id=\"class-filter\" aria-label=\"Class\"><option value=\"\">all classes</option>",
    );
    for c in &classes {
        let _ = write!(h, "<option value=\"{c}\">{c}</option>", c = escape(c));
    }
    let _ = writeln!(
        h,
        "</select><button type=\"button\" id=\"expand-all\">Expand all</button><button type=\"button\" id=\"collapse-all\">Collapse all</button>\
         <span id=\"leak-count\">{total} of {total} records</span></div>"
    );
    h.push_str(
        "<table id=\"leak-table\"><thead><tr><th class=\"t\"></th>\
         <th data-sort=\"rank\" data-type=\"num\" class=\"n\" aria-sort=\"ascending\">#</th>\
         <th data-sort=\"class\" data-type=\"text\">Class</th>\
         <th data-sort=\"bytes\" data-type=\"num\" class=\"n\">Bytes</th>\
         <th data-sort=\"blocks\" data-type=\"num\" class=\"n\">Blocks</th>\
         <th data-sort=\"allocator\" data-type=\"text\">Allocator</th>\
         <th data-sort=\"site\" data-type=\"text\">Allocation site</th>\
         <th data-sort=\"func\" data-type=\"text\">Top function</th>\
         <th data-sort=\"pid\" data-type=\"num\" class=\"n\">PID</th></tr></thead>\n",
    );
    let several = report.processes.len() > 1;
    let mut rank = 0;
    for p in &report.processes {
        for l in &p.leaks {
            rank += 1;
            let class = class_name(l);
            let site_frame = site(&l.stack);
            let site_text = site_frame.map(location).unwrap_or_else(|| "(no stack)".into());
            let func = site_frame.map(function_label).unwrap_or_default();
            let mut search =
                vec![class.clone(), l.allocator.name().to_string(), l.fingerprint.clone(), p.pid.to_string()];
            for f in &l.stack {
                search.push(function_label(f));
                search.push(location(f));
            }
            let _ = write!(
                h,
                "<tbody class=\"rec\" data-rank=\"{rank}\" data-class=\"{c}\" data-bytes=\"{}\" data-blocks=\"{}\" \
                 data-allocator=\"{}\" data-site=\"{}\" data-func=\"{}\" data-pid=\"{}\" data-search=\"{}\">",
                l.bytes,
                l.blocks,
                escape(l.allocator.name()),
                escape(&site_text),
                escape(&func),
                p.pid,
                escape(&search.join(" ").to_lowercase()),
                c = escape(&class)
            );
            let _ = write!(
                h,
                "<tr class=\"leak-row\"><td class=\"t\"><button type=\"button\" class=\"toggle\" aria-expanded=\"false\" \
                 aria-label=\"Show the stack\">&#9656;</button></td><td class=\"n\">{rank}</td>\
                 <td><span class=\"class class-{c}\">{c}</span></td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
                 <td><code>{}</code></td><td class=\"site\">{}</td><td><code>{}</code></td><td class=\"n\">{}</td></tr>",
                thousands(l.bytes),
                thousands(l.blocks),
                escape(l.allocator.name()),
                escape(&site_text),
                escape(&func),
                p.pid,
                c = escape(&class)
            );
            let _ = write!(
                h,
                "<tr class=\"leak-detail\" hidden><td colspan=\"9\"><p class=\"muted\">{} in {} allocated with <code>{}</code>{}; \
                 fingerprint <code class=\"fp\">{}</code></p>",
                escape(&plural(l.bytes, "byte", "bytes")),
                escape(&plural(l.blocks, "block", "blocks")),
                escape(l.allocator.name()),
                if several { format!(" in {} (pid {})", escape(&program_name(p)), p.pid) } else { String::new() },
                escape(&l.fingerprint)
            );
            stack_list(h, &l.stack);
            h.push_str("</td></tr></tbody>\n");
        }
    }
    h.push_str("</table>\n</section>\n");
}

fn errors(h: &mut String, report: &Report) {
    h.push_str("<section id=\"errors\"><h2>Heap errors</h2>\n");
    let mut any = false;
    for p in &report.processes {
        for e in &p.errors {
            any = true;
            let _ = write!(
                h,
                "<article class=\"error\" data-kind=\"{}\"><h3><span class=\"badge\">{}</span> {}</h3><p class=\"muted\">in {} (pid {})</p>",
                error_kind_name(e.kind),
                error_kind_name(e.kind),
                escape(&error_title(e)),
                escape(&program_name(p)),
                p.pid
            );
            for (i, (label, stack)) in error_stacks(e).into_iter().enumerate() {
                let _ = write!(
                    h,
                    "<details class=\"error-stack\"{}><summary>{} ({})</summary>",
                    if i == 0 { " open" } else { "" },
                    escape(&label),
                    escape(&plural(stack.len() as u64, "frame", "frames"))
                );
                stack_list(h, stack);
                h.push_str("</details>");
            }
            h.push_str("</article>\n");
        }
    }
    if !any {
        h.push_str("<p class=\"empty\">No heap errors.</p>\n");
    }
    h.push_str("</section>\n");
}

fn processes(h: &mut String, report: &Report) {
    h.push_str(
        "<section id=\"processes\"><h2>Processes</h2>\n<table id=\"process-table\"><thead><tr><th>PID</th><th>Command</th>\
         <th>Ended</th><th class=\"n\">Leaked bytes</th><th class=\"n\">Records</th><th class=\"n\">Heap errors</th>\
         <th class=\"n\">Allocations</th><th>Notes</th></tr></thead><tbody>\n",
    );
    // Depth-first over the process tree: children under their parent, exec
    // images of one pid in order.
    let pids: Vec<u32> = {
        let mut v: Vec<u32> = report.processes.iter().map(|p| p.pid).collect();
        v.dedup();
        v
    };
    let parent_of: HashMap<u32, u32> =
        report.processes.iter().filter(|p| p.exec_index == 0).map(|p| (p.pid, p.parent_pid)).collect();
    let mut children: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    let mut roots = Vec::new();
    for &pid in &pids {
        match parent_of.get(&pid) {
            Some(pp) if pids.contains(pp) && *pp != pid => children.entry(*pp).or_default().push(pid),
            _ => roots.push(pid),
        }
    }
    let mut order: Vec<(u32, usize)> = Vec::new();
    let mut stack: Vec<(u32, usize)> = roots.into_iter().rev().map(|p| (p, 0)).collect();
    let mut seen = std::collections::HashSet::new();
    while let Some((pid, depth)) = stack.pop() {
        if !seen.insert(pid) {
            continue;
        }
        order.push((pid, depth));
        for &c in children.get(&pid).map(Vec::as_slice).unwrap_or(&[]).iter().rev() {
            stack.push((c, depth + 1));
        }
    }
    for (pid, depth) in order {
        for p in report.processes.iter().filter(|p| p.pid == pid) {
            process_row(h, p, depth);
        }
    }
    h.push_str("</tbody></table>\n</section>\n");
}

fn process_row(h: &mut String, p: &ProcessReport, depth: usize) {
    let exec =
        if p.exec_index > 0 { format!(" <span class=\"tag\">exec #{}</span>", p.exec_index) } else { String::new() };
    let notes: Vec<String> = p.notes.iter().map(|n| escape(n)).collect();
    let _ = writeln!(
        h,
        "<tr data-pid=\"{}\" data-depth=\"{depth}\"><td style=\"padding-left:{}em\">{}{}</td><td><code>{}</code>{exec}</td><td>{}</td>\
         <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
        p.pid,
        0.6 + depth as f32 * 1.4,
        if depth > 0 { "&#8627; " } else { "" },
        p.pid,
        escape(&command_line(p)),
        escape(&exit_text(p)),
        thousands(p.summary.leaked_bytes),
        thousands(p.summary.leak_records),
        thousands(p.summary.errors),
        thousands(p.summary.allocations),
        if p.complete { String::new() } else { format!("<span class=\"warn\">partial:</span> {}", notes.join("; ")) }
    );
}

/// Mapping and shared-memory findings: their JSON as the model has it.
fn reserved(h: &mut String, report: &Report) {
    let any = report.processes.iter().any(|p| !p.mappings.is_empty() || !p.shared_memory.is_empty());
    h.push_str("<section id=\"mappings\"><h2>Mappings and shared memory</h2>\n");
    if !any {
        h.push_str("<p class=\"empty\">No leaked mappings or shared-memory segments.</p>\n");
    }
    for p in &report.processes {
        let mappings: Vec<serde_json::Value> = p.mappings.iter().filter_map(|m| serde_json::to_value(m).ok()).collect();
        let shared: Vec<serde_json::Value> =
            p.shared_memory.iter().filter_map(|m| serde_json::to_value(m).ok()).collect();
        for (what, items) in [("mapping", &mappings), ("shared memory", &shared)] {
            for v in items {
                let _ = writeln!(
                    h,
                    "<details class=\"finding\"><summary>pid {}: {what}</summary><pre>{}</pre></details>",
                    p.pid,
                    escape(&serde_json::to_string_pretty(v).unwrap_or_default())
                );
            }
        }
    }
    h.push_str("</section>\n");
}

fn flamegraph(h: &mut String, report: &Report) {
    h.push_str("<section id=\"flamegraph\"><h2>Flame graph of leaked bytes</h2>\n");
    match crate::flamegraph::svg(report, None) {
        Ok(svg) => {
            let height = svg_height(&svg).unwrap_or(400) + 8;
            let _ = writeln!(
                h,
                "<p class=\"muted\">Width is leaked bytes; each tower is an allocation stack, its root at the bottom. \
                 Click a frame to zoom, Ctrl-F to search.</p>\
                 <iframe id=\"flamegraph-frame\" title=\"Flame graph of leaked bytes\" style=\"height:{height}px\" \
                 src=\"data:image/svg+xml;base64,{}\"></iframe>",
                base64(&svg)
            );
        }
        Err(e) => {
            let _ = writeln!(h, "<p class=\"warn\">The flame graph could not be drawn: {}</p>", escape(&e.to_string()));
        }
    }
    h.push_str("</section>\n");
}

fn svg_height(svg: &[u8]) -> Option<usize> {
    let head = std::str::from_utf8(&svg[..svg.len().min(2048)]).ok()?;
    let start = head.find("<svg")?;
    let tag = &head[start..];
    let i = tag.find(" height=\"")? + 9;
    let rest = &tag[i..];
    rest[..rest.find('"')?].trim_end_matches("px").parse().ok()
}

/// Writes the page to `path`.
pub fn write(report: &Report, path: &std::path::Path, opts: &HtmlOptions) -> std::io::Result<()> {
    std::fs::write(path, render(report, opts))
}

const CSS: &str = r#"
:root{--fg:#1d2430;--muted:#667085;--line:#e3e6eb;--bg:#fff;--head:#f5f7fa;--bad:#b42318;--badbg:#fef3f2;--good:#067647;--goodbg:#ecfdf3;--accent:#2452a6}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--fg);background:var(--bg)}
header{padding:18px 28px 0;border-bottom:1px solid var(--line);background:var(--head)}
header h1{margin:0;font-size:22px}
header .cmd{margin:6px 0 2px;font-size:15px}
header .meta{margin:0;color:var(--muted);font-size:12px}
nav{display:flex;gap:18px;margin-top:10px}
nav a{padding:6px 0 8px;color:var(--accent);text-decoration:none;border-bottom:2px solid transparent}
nav a:hover{border-bottom-color:var(--accent)}
main{padding:4px 28px 28px;max-width:1400px}
h2{font-size:18px;margin:26px 0 10px}
h3{font-size:15px;margin:0 0 4px}
code,pre,.loc,.mod,.fnum{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"DejaVu Sans Mono",monospace;font-size:12.5px}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:6px 0 14px}
.card{border:1px solid var(--line);border-radius:8px;padding:10px 16px;min-width:150px}
.card .num{font-size:24px;font-weight:600}
.card .label{color:var(--muted);font-size:12.5px}
.card.bad{border-color:#f5c2bd;background:var(--badbg)} .card.bad .num{color:var(--bad)}
.card.good{border-color:#abefc6;background:var(--goodbg)} .card.good .num{color:var(--good)}
table{border-collapse:collapse;width:100%}
th,td{padding:6px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{background:var(--head);font-weight:600;white-space:nowrap;position:sticky;top:0}
th[data-sort]{cursor:pointer;user-select:none}
th[data-sort]:hover{color:var(--accent)}
th[aria-sort=ascending]::after{content:" \25B2";font-size:10px}
th[aria-sort=descending]::after{content:" \25BC";font-size:10px}
.n{text-align:right;font-variant-numeric:tabular-nums}
table.by-class{width:auto;min-width:420px;margin-bottom:10px}
.class{display:inline-block;padding:0 7px;border-radius:10px;font-size:12px;background:#eef1f5}
.class-definite{background:#fee4e2;color:#912018}.class-indirect{background:#fef0c7;color:#93370d}
.class-possible{background:#fef7c3;color:#854a0e}.class-reachable{background:#e0f2fe;color:#075985}
.class-unknown{background:#f2f4f7;color:#344054}
.controls{display:flex;flex-wrap:wrap;gap:8px;align-items:center;margin:0 0 10px}
.controls input{flex:1;min-width:260px;padding:6px 9px;border:1px solid #cfd4dc;border-radius:6px;font:inherit}
.controls select,.controls button{padding:5px 9px;border:1px solid #cfd4dc;border-radius:6px;background:#fff;font:inherit;cursor:pointer}
#leak-count{color:var(--muted);margin-left:auto}
tr.leak-row{cursor:pointer}
tr.leak-row:hover td{background:#f8fafc}
tbody.rec.open tr.leak-row td{background:#f1f5fb}
td.site{word-break:break-all}
.toggle{border:0;background:none;cursor:pointer;font-size:13px;color:var(--muted);padding:0 2px;transition:transform .1s}
.toggle[aria-expanded=true]{transform:rotate(90deg)}
tr.leak-detail td{background:#fbfcfe;padding:8px 14px 14px}
ol.stack{list-style:none;margin:6px 0 0;padding:0}
li.frame{padding:3px 0;border-bottom:1px dashed #eceff3}
li.frame.system .fn{color:var(--muted)}
li.frame.user .fn{font-weight:600}
.fnum{display:inline-block;min-width:2.6em;color:var(--muted)}
.loc{color:#175cd3}.mod{color:var(--muted);margin-left:6px}
.tag{display:inline-block;margin-left:6px;padding:0 6px;border-radius:8px;font-size:11px;background:#f2f4f7;color:#475467}
pre.snippet{margin:4px 0 4px 2.6em;padding:6px 0;background:#f8f9fb;border:1px solid var(--line);border-radius:6px;overflow-x:auto}
pre.snippet span{display:block;padding:0 10px;white-space:pre}
pre.snippet span.hl{background:#fff3c4}
pre.snippet i{display:inline-block;width:3.5em;color:#98a2b3;font-style:normal;user-select:none}
.muted{color:var(--muted)} .warn{color:#b54708} .empty{color:var(--muted);font-style:italic}
.notice{padding:8px 12px;border-left:3px solid var(--accent);background:#eff4ff}
article.error{border:1px solid #f5c2bd;border-left:4px solid var(--bad);border-radius:6px;padding:10px 14px;margin:0 0 12px}
.badge{display:inline-block;padding:0 7px;border-radius:10px;font-size:12px;background:var(--badbg);color:var(--bad);font-weight:600}
details.error-stack summary,details.finding summary{cursor:pointer;margin:6px 0 2px;color:#344054}
#flamegraph-frame{width:100%;border:1px solid var(--line);border-radius:6px;background:#fff}
footer{padding:16px 28px;color:var(--muted);font-size:12px;border-top:1px solid var(--line)}
"#;

const JS: &str = r#"
(function () {
  "use strict";
  var sources = {};
  try { sources = JSON.parse(document.getElementById("sources").textContent || "{}"); } catch (e) { sources = {}; }
  var CONTEXT = 3;

  function snippetFor(li) {
    var file = li.getAttribute("data-file"), line = parseInt(li.getAttribute("data-line"), 10);
    var lines = sources[file];
    if (!lines || !lines[line]) return null;
    var pre = document.createElement("pre");
    pre.className = "snippet";
    for (var n = Math.max(1, line - CONTEXT); n <= line + CONTEXT; n++) {
      if (!(n in lines)) continue;
      var row = document.createElement("span");
      if (n === line) row.className = "hl";
      var num = document.createElement("i");
      num.textContent = String(n);
      row.appendChild(num);
      row.appendChild(document.createTextNode(lines[n]));
      pre.appendChild(row);
    }
    return pre;
  }

  function fillSnippets(root) {
    var items = root.querySelectorAll("li.frame[data-file]");
    for (var i = 0; i < items.length; i++) {
      var li = items[i];
      if (li.getAttribute("data-filled")) continue;
      li.setAttribute("data-filled", "1");
      var pre = snippetFor(li);
      if (pre) li.appendChild(pre);
    }
  }

  function setOpen(rec, open) {
    var detail = rec.querySelector("tr.leak-detail");
    var btn = rec.querySelector("button.toggle");
    if (!detail) return;
    if (open) fillSnippets(detail);
    detail.hidden = !open;
    rec.classList.toggle("open", open);
    if (btn) btn.setAttribute("aria-expanded", open ? "true" : "false");
  }

  var table = document.getElementById("leak-table");
  if (table) {
    var recs = function () { return Array.prototype.slice.call(table.querySelectorAll("tbody.rec")); };
    table.addEventListener("click", function (ev) {
      var row = ev.target.closest("tr.leak-row");
      if (!row) return;
      var rec = row.parentNode;
      setOpen(rec, rec.querySelector("tr.leak-detail").hidden);
    });

    var headers = table.querySelectorAll("th[data-sort]");
    Array.prototype.forEach.call(headers, function (th) {
      th.addEventListener("click", function () {
        var key = th.getAttribute("data-sort"), num = th.getAttribute("data-type") === "num";
        var current = th.getAttribute("aria-sort");
        var dir = current === "descending" ? "ascending" : current === "ascending" ? "descending" : (num ? "descending" : "ascending");
        Array.prototype.forEach.call(headers, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", dir);
        var sign = dir === "ascending" ? 1 : -1;
        var sorted = recs().sort(function (a, b) {
          var x = a.dataset[key] || "", y = b.dataset[key] || "";
          var c = num ? (parseFloat(x) - parseFloat(y)) : x.localeCompare(y);
          if (c === 0) c = parseInt(a.dataset.rank, 10) - parseInt(b.dataset.rank, 10);
          return sign * c;
        });
        sorted.forEach(function (r) { table.appendChild(r); });
      });
    });

    var filter = document.getElementById("leak-filter"), classFilter = document.getElementById("class-filter");
    var count = document.getElementById("leak-count");
    var apply = function () {
      var words = (filter.value || "").toLowerCase().split(/\s+/).filter(Boolean);
      var cls = classFilter.value, shown = 0, all = recs();
      all.forEach(function (r) {
        var ok = (!cls || r.dataset["class"] === cls) && words.every(function (w) { return r.dataset.search.indexOf(w) >= 0; });
        r.hidden = !ok;
        if (ok) shown++;
      });
      count.textContent = shown + " of " + all.length + " records";
    };
    filter.addEventListener("input", apply);
    classFilter.addEventListener("change", apply);
    document.getElementById("expand-all").addEventListener("click", function () { recs().forEach(function (r) { if (!r.hidden) setOpen(r, true); }); });
    document.getElementById("collapse-all").addEventListener("click", function () { recs().forEach(function (r) { setOpen(r, false); }); });
  }

  var errors = document.getElementById("errors");
  if (errors) fillSnippets(errors);
})();
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata;

    #[test]
    fn the_page_has_every_section_and_no_outside_reference() {
        let page = render(
            &testdata::report(),
            &HtmlOptions { notices: vec!["baseline: 2 known".into()], read_sources: false },
        );
        for id in ["summary", "leaks", "leak-table", "errors", "processes", "mappings", "flamegraph", "sources"] {
            assert!(page.contains(&format!("id=\"{id}\"")), "no #{id}");
        }
        assert_eq!(
            page.matches("<tbody class=\"rec\"").count(),
            testdata::report().processes.iter().map(|p| p.leaks.len()).sum::<usize>()
        );
        assert!(page.contains("double free of 0x555560000000 (64-byte block from malloc)"));
        assert!(page.contains("baseline: 2 known"));
        assert!(page.contains("<code>$ ./leaky &#39;two words&#39;</code>"), "root command line");
        assert!(page.contains("src=\"data:image/svg+xml;base64,"));
        // Offline: nothing with a network scheme is referenced.
        for bad in ["src=\"http", "href=\"http", "url(http", "@import", "fetch(", "XMLHttpRequest"] {
            assert!(!page.contains(bad), "the page references {bad}");
        }
        // The child is listed under its parent.
        let parent = page.find("<tr data-pid=\"100\" data-depth=\"0\"").unwrap();
        let child = page.find("<tr data-pid=\"101\" data-depth=\"1\"").unwrap();
        assert!(parent < child);
    }

    #[test]
    fn text_from_the_program_is_escaped() {
        let mut r = testdata::report();
        r.processes[0].argv = vec!["<script>alert(1)</script>".into()];
        r.processes[0].leaks[0].stack[0].function = Some("operator<< <\"x\">".into());
        let page = render(&r, &HtmlOptions::default());
        assert!(!page.contains("<script>alert(1)"));
        assert!(page.contains("operator&lt;&lt; &lt;&quot;x&quot;&gt;"));
    }

    #[test]
    fn source_json_cannot_close_its_script() {
        let mut files = BTreeMap::new();
        files.insert("/a.c".to_string(), BTreeMap::from([(1u32, "x = \"</script><b>\";".to_string())]));
        let j = script_json(&files);
        assert!(!j.contains("</script>"), "{j}");
        let back: BTreeMap<String, BTreeMap<u32, String>> = serde_json::from_str(&j).unwrap();
        assert_eq!(back, files);
    }

    #[test]
    fn helpers() {
        assert_eq!(base64(b"leakscope"), "bGVha3Njb3Bl");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"a"), "YQ==");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(thousands(12), "12");
        assert_eq!(human_bytes(63), "63 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(svg_height(b"<?xml?><svg version=\"1.1\" width=\"100%\" height=\"230\" x>"), Some(230));
    }
}
