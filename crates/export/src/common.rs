//! What several writers need: names of classes and frames, the allocation
//! site of a stack, command lines.

use leakscope_analyse::fingerprint::is_user_frame;
use leakscope_analyse::report::{Frame, HeapErrorKind, HeapErrorReport, Leak, ProcessReport, Release};

/// The JSON name of a leak's class (`"definite"`, `"unknown"`, ...). Taken
/// from the model's serialisation so that new classes need no change here.
pub fn class_name(l: &Leak) -> String {
    match serde_json::to_value(l.class) {
        Ok(serde_json::Value::String(s)) => s,
        _ => "unknown".into(),
    }
}

/// Whether a leak record counts as leaked memory: every class but
/// `reachable` (still referenced at exit, so not lost).
/// The record's fingerprint; one computed from its stack when the report has none.
pub fn fingerprint(l: &Leak) -> String {
    if l.fingerprint.is_empty() {
        leakscope_analyse::fingerprint::of_stack(l.allocator.name(), &l.stack)
    } else {
        l.fingerprint.clone()
    }
}

pub fn is_leaked(l: &Leak) -> bool {
    class_name(l) != "reachable"
}

/// The frame that best names where a stack allocated: the innermost frame of
/// the user's own code, else the innermost with a source file, else the first.
pub fn site(stack: &[Frame]) -> Option<&Frame> {
    stack.iter().find(|f| is_user_frame(f)).or_else(|| stack.iter().find(|f| f.file.is_some())).or(stack.first())
}

/// A frame's function name, or where it is when it has none.
pub fn function_label(f: &Frame) -> String {
    match (&f.function, &f.module, f.module_offset) {
        (Some(name), _, _) => name.clone(),
        (None, Some(m), Some(off)) => format!("{}+{off:#x}", base_name(m)),
        (None, Some(m), None) => format!("{}@{:#x}", base_name(m), f.address),
        (None, None, _) => format!("{:#x}", f.address),
    }
}

/// `file:line`, `file`, `module+0xoff` or the address.
pub fn location(f: &Frame) -> String {
    match (&f.file, f.line) {
        (Some(file), Some(line)) => format!("{file}:{line}"),
        (Some(file), None) => file.clone(),
        (None, _) => match (&f.module, f.module_offset) {
            (Some(m), Some(off)) => format!("{m}+{off:#x}"),
            (Some(m), None) => m.clone(),
            (None, _) => format!("{:#x}", f.address),
        },
    }
}

/// `function file:line` of a stack's site, or `(no stack recorded)`.
pub fn site_label(stack: &[Frame]) -> String {
    match site(stack) {
        Some(f) => format!("{} {}", function_label(f), location(f)),
        None => "(no stack recorded)".into(),
    }
}

pub fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The program's name: argv[0]'s base name, else the executable's.
pub fn program_name(p: &ProcessReport) -> String {
    let from = p.argv.first().map(String::as_str).filter(|s| !s.is_empty()).unwrap_or(&p.exe);
    if from.is_empty() {
        "(unknown program)".into()
    } else {
        base_name(from).to_string()
    }
}

/// argv as a shell would show it, or the executable.
pub fn command_line(p: &ProcessReport) -> String {
    if p.argv.is_empty() {
        return if p.exe.is_empty() { "(unknown program)".into() } else { p.exe.clone() };
    }
    p.argv
        .iter()
        .map(|a| {
            let plain = !a.is_empty()
                && a.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%^".contains(c) || !c.is_ascii());
            if plain {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub use leakscope_analyse::words::plural;

/// How a process ended, in words.
pub fn exit_text(p: &ProcessReport) -> String {
    use leakscope_analyse::report::Exit;
    match p.exit {
        Exit::Code(c) => format!("exit {c}"),
        Exit::Signal(s) => format!("signal {s}"),
        Exit::Exec => "exec".into(),
        Exit::Unknown => "unknown".into(),
    }
}

/// The JSON name of a heap error's kind.
pub fn error_kind_name(k: HeapErrorKind) -> &'static str {
    match k {
        HeapErrorKind::DoubleFree => "double-free",
        HeapErrorKind::InvalidFree => "invalid-free",
        HeapErrorKind::MismatchedFree => "mismatched-free",
    }
}

/// One line describing a heap error, as the text report words it.
pub fn error_title(e: &HeapErrorReport) -> String {
    e.title()
}

/// The JSON name of what a bad release's address points at.
pub fn region_name(e: &HeapErrorReport) -> &'static str {
    use leakscope_analyse::report::AddrRegion;
    match e.region {
        AddrRegion::Unknown => "unknown",
        AddrRegion::HeapInterior => "heap-interior",
        AddrRegion::Stack => "stack",
        AddrRegion::Global => "global",
    }
}

/// The stacks of a heap error that are worth showing: (label, frames).
pub fn error_stacks(e: &HeapErrorReport) -> Vec<(String, &[Frame])> {
    let mut v: Vec<(String, &[Frame])> = vec![(format!("bad call to {}", e.release.name()), &e.stack)];
    if let (Some(stack), Some(b)) = (&e.alloc_stack, &e.block) {
        v.push((format!("allocated by {}", b.allocator.name()), stack));
    }
    if let Some(stack) = &e.free_stack {
        v.push((format!("first freed by {}", e.first_release.map_or("free", Release::name)), stack));
    }
    v
}

/// Frames, numbered, one line each, as in the text report.
pub fn render_stack(out: &mut String, frames: &[Frame], indent: &str) {
    if frames.is_empty() {
        out.push_str(indent);
        out.push_str("(no stack recorded)\n");
        return;
    }
    for (i, f) in frames.iter().enumerate() {
        out.push_str(&format!(
            "{indent}#{i} {:#x} in {} {}{}\n",
            f.address,
            f.function.as_deref().unwrap_or("??"),
            location(f),
            if f.inlined { " [inlined]" } else { "" }
        ));
    }
}
