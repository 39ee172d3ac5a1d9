//! Suppressions: leak records the user has declared known, read from
//! LeakSanitizer and Valgrind suppression files, removed from the report and
//! counted per suppression; and the reverse, a ready Valgrind-style entry for
//! a reported record (`--gen-suppressions`).
//!
//! **LeakSanitizer files**: one `leak:PATTERN` per line; blank lines and lines
//! starting with `#` are ignored, and lines of the other sanitizers' types
//! (`race:`, `interceptor_via_fun:`, ...) are skipped, so one file can serve
//! several tools. PATTERN matches a record when it matches the module path,
//! the function name or the source file of any frame of its allocation stack.
//! As in LeakSanitizer, a pattern matches anywhere in the name (`leak:parse`
//! matches `json_parse_value`), `*` matches any run of characters, a leading
//! `^` anchors it at the start of the name and a `$` at the end (LeakSanitizer
//! ignores whatever follows a `$`). No other character is special.
//!
//! **Valgrind files**: entries
//!
//! ```text
//! {
//!    any name
//!    Memcheck:Leak
//!    match-leak-kinds: definite,possible     (optional)
//!    fun:malloc
//!    ...
//!    fun:main
//! }
//! ```
//!
//! Frame lines match the stack from the innermost frame outwards, each line
//! one frame, and the entry matches when its lines match a prefix of the stack
//! (frames beyond the last line do not matter). `fun:GLOB` matches the
//! demangled function name (`???` when unknown), `obj:GLOB` the module path,
//! `src:GLOB[:LINE]` the source file (full path or base name) and line; `...`
//! matches any number of frames, none included. In globs `*` matches any run
//! of characters, `?` one character, and `\` makes the next one literal. As in
//! Valgrind, the first frame of a leak's stack is the allocation function
//! itself (`fun:malloc`, `fun:calloc`, `fun:_Znwm`, ...), which leakscope's
//! stacks do not show: it is matched as if it were there. C++ and Rust names
//! in Valgrind files are usually mangled (`fun:_ZN5store5Cache4fillEi`); such a
//! pattern is demangled before matching, and a mangled prefix followed by `*`
//! (`fun:_ZN5store*`) matches the demangled names it stands for
//! (`store::...`). `match-leak-kinds:` takes `definite`, `indirect`,
//! `possible`, `reachable`, `all` or `none`; a record whose class is `unknown`
//! (no reachability scan) matches whatever kinds are listed. Entries for other
//! tools or other Memcheck error kinds are skipped.
//!
//! A leak record is hidden by the first suppression, in the order the files
//! and their lines were given, that matches it; that suppression is credited
//! with it.

use crate::report::{
    Allocator, ClassTotals, Frame, Leak, LeakClass, Report, Summary, SuppressionFormat, SuppressionUse,
};
use std::fmt::{self, Write};
use std::path::Path;

// ---------------------------------------------------------------------------
// Errors

/// A suppression file that cannot be read or parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// The file, as given.
    pub file: String,
    /// 1-based line of the problem; 0 when the file could not be read at all.
    pub line: u32,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "suppressions file {}: {}", self.file, self.message)
        } else {
            write!(f, "suppressions file {}, line {}: {}", self.file, self.line, self.message)
        }
    }
}

impl std::error::Error for ParseError {}

// ---------------------------------------------------------------------------
// Globs

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tok {
    Byte(u8),
    /// `*`: any run of characters, possibly empty.
    Star,
    /// `?`: exactly one character.
    One,
}

/// A wildcard pattern matched against a whole string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Glob {
    toks: Vec<Tok>,
}

/// Length of the UTF-8 sequence starting with `b` (1 for a stray continuation byte).
fn utf8_len(b: u8) -> usize {
    match b {
        0xf0..=0xff => 4,
        0xe0..=0xef => 3,
        0xc0..=0xdf => 2,
        _ => 1,
    }
}

impl Glob {
    /// Valgrind syntax: `*`, `?`, and `\` quoting the next character.
    pub fn valgrind(pattern: &str) -> Glob {
        let mut toks = Vec::with_capacity(pattern.len());
        let mut bytes = pattern.bytes();
        while let Some(b) = bytes.next() {
            match b {
                b'*' => toks.push(Tok::Star),
                b'?' => toks.push(Tok::One),
                // A trailing `\` stands for itself.
                b'\\' => toks.push(Tok::Byte(bytes.next().unwrap_or(b'\\'))),
                _ => toks.push(Tok::Byte(b)),
            }
        }
        Glob { toks }
    }

    /// Only `*` is special (LeakSanitizer's syntax, once its anchors are handled).
    fn star_only(pattern: &str) -> Vec<Tok> {
        pattern.bytes().map(|b| if b == b'*' { Tok::Star } else { Tok::Byte(b) }).collect()
    }

    /// Whether the glob contains `*` or `?`.
    pub fn has_wildcards(&self) -> bool {
        self.toks.iter().any(|t| !matches!(t, Tok::Byte(_)))
    }

    /// Whether the glob matches all of `s`.
    pub fn matches(&self, s: &str) -> bool {
        let p = &self.toks;
        let s = s.as_bytes();
        let (mut pi, mut si) = (0, 0);
        // Where to resume after the last `*`: (pattern index after it, input index it has reached).
        let mut back: Option<(usize, usize)> = None;
        while si < s.len() {
            match p.get(pi) {
                Some(Tok::Byte(b)) if *b == s[si] => {
                    pi += 1;
                    si += 1;
                }
                Some(Tok::One) => {
                    pi += 1;
                    si += utf8_len(s[si]);
                }
                Some(Tok::Star) => {
                    pi += 1;
                    back = Some((pi, si));
                }
                _ => match back {
                    // Let the last `*` take one more character and retry.
                    Some((bp, bs)) if bs < s.len() => {
                        let next = bs + utf8_len(s[bs]);
                        back = Some((bp, next));
                        pi = bp;
                        si = next;
                    }
                    _ => return false,
                },
            }
        }
        p[pi.min(p.len())..].iter().all(|t| *t == Tok::Star) && si == s.len()
    }
}

// ---------------------------------------------------------------------------
// Patterns

/// A LeakSanitizer `leak:` pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
struct LsanPattern {
    glob: Glob,
}

impl LsanPattern {
    fn new(pattern: &str) -> LsanPattern {
        let (start, rest) = match pattern.strip_prefix('^') {
            Some(r) => (true, r),
            None => (false, pattern),
        };
        // LeakSanitizer stops at the first `$`: the name must end there.
        let (end, body) = match rest.find('$') {
            Some(i) => (true, &rest[..i]),
            None => (false, rest),
        };
        let mut toks = Vec::with_capacity(body.len() + 2);
        if !start {
            toks.push(Tok::Star);
        }
        toks.extend(Glob::star_only(body));
        if !end {
            toks.push(Tok::Star);
        }
        LsanPattern { glob: Glob { toks } }
    }

    /// LeakSanitizer never matches an empty or missing name.
    fn matches(&self, s: Option<&str>) -> bool {
        s.is_some_and(|s| !s.is_empty() && self.glob.matches(s))
    }
}

/// A `fun:` pattern: matches when any of its forms matches.
#[derive(Clone, Debug, PartialEq, Eq)]
struct FunPattern {
    forms: Vec<Glob>,
}

impl FunPattern {
    fn new(pattern: &str) -> FunPattern {
        let raw = Glob::valgrind(pattern);
        let mut forms = Vec::new();
        if pattern.starts_with("_Z") || pattern.starts_with("_R") {
            if !raw.has_wildcards() {
                let d = leakscope_symbolize::clean_name(pattern);
                if d != pattern {
                    forms.push(Glob::valgrind(&escape(&d)));
                }
            } else {
                forms.extend(mangled_prefix_forms(pattern).iter().map(|f| Glob::valgrind(f)));
            }
        }
        forms.push(raw);
        FunPattern { forms }
    }

    fn matches(&self, name: &str) -> bool {
        self.forms.iter().any(|g| g.matches(name))
    }
}

/// For a mangled prefix followed by one `*` (`_ZN5store5Cache*`, `_Z4make*`,
/// `_ZNSt6vector*`), globs for the demangled names it can stand for. Other
/// wildcard patterns on mangled names get none (they can only match a name
/// the symbolizer could not demangle).
fn mangled_prefix_forms(pattern: &str) -> Vec<String> {
    let Some(body) = pattern.strip_prefix("_Z").and_then(|b| b.strip_suffix('*')) else {
        return Vec::new();
    };
    if body.contains(['*', '?', '\\']) {
        return Vec::new();
    }
    // `operator new` and `operator new[]`, often written `_Znw*` to cover
    // both `_Znwm` (64-bit) and `_Znwj` (32-bit).
    match body {
        "nw" => return vec!["operator new(*".into()],
        "na" => return vec!["operator new[](*".into()],
        "nwm" => return vec!["operator new(unsigned long*".into()],
        "nam" => return vec!["operator new[](unsigned long*".into()],
        _ => {}
    }
    let (nested, mut rest) = match body.strip_prefix('N') {
        Some(r) => (true, r.trim_start_matches(['K', 'V', 'r'])),
        None => (false, body),
    };
    let mut parts: Vec<&str> = Vec::new();
    if nested {
        if let Some(r) = rest.strip_prefix("St") {
            parts.push("std");
            rest = r;
        }
    }
    let std_only = parts.len();
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let Ok(len) = rest[..digits].parse::<usize>() else {
            return Vec::new();
        };
        // Cut inside a name by the `*`: not a whole component.
        let Some(ident) = rest.get(digits..digits + len) else {
            return Vec::new();
        };
        parts.push(ident);
        rest = &rest[digits + len..];
        if !nested && !rest.is_empty() {
            return Vec::new();
        }
    }
    if parts.len() == std_only {
        return Vec::new();
    }
    let x = parts.join("::");
    let mut forms = vec![x.clone(), format!("{x}(*"), format!("{x}<*"), format!("{x}[*")];
    if nested {
        forms.push(format!("{x}::*"));
    }
    forms
}

/// One line of a Valgrind entry's stack.
#[derive(Clone, Debug, PartialEq, Eq)]
enum FramePattern {
    Fun(FunPattern),
    Obj(Glob),
    Src {
        glob: Glob,
        line: Option<u32>,
    },
    /// `...`: any number of frames, none included.
    Any,
}

/// Valgrind's leak kinds, as a set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Kinds(u8);

impl Kinds {
    const DEFINITE: u8 = 1;
    const INDIRECT: u8 = 2;
    const POSSIBLE: u8 = 4;
    const REACHABLE: u8 = 8;
    const ALL: u8 = 15;

    fn parse(list: &str) -> Result<Kinds, String> {
        let mut set = 0;
        for word in list.split(',').map(str::trim) {
            set |= match word {
                "definite" => Kinds::DEFINITE,
                "indirect" => Kinds::INDIRECT,
                "possible" => Kinds::POSSIBLE,
                "reachable" => Kinds::REACHABLE,
                "all" => Kinds::ALL,
                "none" => 0,
                _ => {
                    return Err(format!(
                        "unknown leak kind {word:?} in match-leak-kinds (expected a comma-separated list of \
                         definite, indirect, possible, reachable, or all, or none)"
                    ))
                }
            };
        }
        Ok(Kinds(set))
    }

    /// `unknown` (no scan) matches every kind.
    fn admit(self, class: LeakClass) -> bool {
        let bit = match class {
            LeakClass::Definite => Kinds::DEFINITE,
            LeakClass::Indirect => Kinds::INDIRECT,
            LeakClass::Possible => Kinds::POSSIBLE,
            LeakClass::Reachable => Kinds::REACHABLE,
            LeakClass::Unknown => return true,
        };
        self.0 & bit != 0
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Rule {
    Lsan(LsanPattern),
    Valgrind { kinds: Option<Kinds>, frames: Vec<FramePattern> },
}

/// One suppression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Suppression {
    /// LeakSanitizer: the line (`leak:PATTERN`); Valgrind: the entry's name.
    pub name: String,
    pub file: String,
    /// LeakSanitizer: the line; Valgrind: the line of the entry's `{`.
    pub line: u32,
    rule: Rule,
}

impl Suppression {
    pub fn format(&self) -> SuppressionFormat {
        match self.rule {
            Rule::Lsan(_) => SuppressionFormat::Lsan,
            Rule::Valgrind { .. } => SuppressionFormat::Valgrind,
        }
    }

    /// Whether this suppression hides `leak`.
    pub fn matches(&self, leak: &Leak) -> bool {
        let stack = StackView { alloc: leak.allocator, frames: &leak.stack };
        match &self.rule {
            Rule::Lsan(p) => stack.iter().any(|f| f.lsan_matches(p)),
            Rule::Valgrind { kinds, frames } => {
                kinds.is_none_or(|k| k.admit(leak.class)) && matches_prefix(frames, &stack.iter().collect::<Vec<_>>())
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The stack as suppressions see it

/// The names the allocation function is known by, as the first frame:
/// Valgrind's names (demangled), C++ `operator new` in each form since a
/// record does not say which one made it.
fn allocator_names(a: Allocator) -> &'static [&'static str] {
    match a {
        Allocator::Malloc => &["malloc"],
        Allocator::Calloc => &["calloc"],
        Allocator::Realloc => &["realloc"],
        Allocator::Reallocarray => &["reallocarray"],
        Allocator::PosixMemalign => &["posix_memalign"],
        Allocator::AlignedAlloc => &["aligned_alloc"],
        Allocator::Memalign => &["memalign"],
        Allocator::Valloc => &["valloc"],
        Allocator::Pvalloc => &["pvalloc"],
        Allocator::New => &[
            "operator new(unsigned long)",
            "operator new(unsigned long, std::nothrow_t const&)",
            "operator new(unsigned long, std::align_val_t)",
            "operator new(unsigned long, std::align_val_t, std::nothrow_t const&)",
        ],
        Allocator::NewArray => &[
            "operator new[](unsigned long)",
            "operator new[](unsigned long, std::nothrow_t const&)",
            "operator new[](unsigned long, std::align_val_t)",
            "operator new[](unsigned long, std::align_val_t, std::nothrow_t const&)",
        ],
        Allocator::Unknown => &[],
    }
}

/// What Valgrind writes for an allocation function in a suppression.
fn allocator_line(a: Allocator) -> &'static str {
    match a {
        Allocator::Malloc => "fun:malloc",
        Allocator::Calloc => "fun:calloc",
        Allocator::Realloc => "fun:realloc",
        Allocator::Reallocarray => "fun:reallocarray",
        Allocator::PosixMemalign => "fun:posix_memalign",
        Allocator::AlignedAlloc => "fun:aligned_alloc",
        Allocator::Memalign => "fun:memalign",
        Allocator::Valloc => "fun:valloc",
        Allocator::Pvalloc => "fun:pvalloc",
        Allocator::New => "fun:_Znwm",
        Allocator::NewArray => "fun:_Znam",
        Allocator::Unknown => "fun:*",
    }
}

#[derive(Clone, Copy)]
enum StackFrame<'a> {
    /// The allocation function (frame 0 for Valgrind and LeakSanitizer).
    Alloc(Allocator),
    Real(&'a Frame),
}

const UNKNOWN_NAME: &str = "???";

impl StackFrame<'_> {
    fn fun_matches(&self, p: &FunPattern) -> bool {
        match self {
            StackFrame::Alloc(a) => {
                let names = allocator_names(*a);
                if names.is_empty() {
                    p.matches(UNKNOWN_NAME)
                } else {
                    names.iter().any(|n| p.matches(n))
                }
            }
            StackFrame::Real(f) => p.matches(f.function.as_deref().unwrap_or(UNKNOWN_NAME)),
        }
    }

    fn matches(&self, p: &FramePattern) -> bool {
        match (p, self) {
            (FramePattern::Any, _) => true,
            (FramePattern::Fun(p), _) => self.fun_matches(p),
            (FramePattern::Obj(g), StackFrame::Real(f)) => g.matches(f.module.as_deref().unwrap_or(UNKNOWN_NAME)),
            (FramePattern::Obj(g), StackFrame::Alloc(_)) => g.matches(UNKNOWN_NAME),
            (FramePattern::Src { glob, line }, StackFrame::Real(f)) => {
                let Some(file) = f.file.as_deref() else {
                    return false;
                };
                let base = file.rsplit('/').next().unwrap_or(file);
                (glob.matches(file) || glob.matches(base)) && line.is_none_or(|l| f.line == Some(l))
            }
            (FramePattern::Src { .. }, StackFrame::Alloc(_)) => false,
        }
    }

    fn lsan_matches(&self, p: &LsanPattern) -> bool {
        match self {
            StackFrame::Alloc(a) => allocator_names(*a).iter().any(|n| p.matches(Some(n))),
            StackFrame::Real(f) => {
                p.matches(f.module.as_deref()) || p.matches(f.function.as_deref()) || p.matches(f.file.as_deref())
            }
        }
    }
}

struct StackView<'a> {
    alloc: Allocator,
    frames: &'a [Frame],
}

impl<'a> StackView<'a> {
    fn iter(&self) -> impl Iterator<Item = StackFrame<'a>> + '_ {
        std::iter::once(StackFrame::Alloc(self.alloc)).chain(self.frames.iter().map(StackFrame::Real))
    }
}

/// Whether `pattern` matches a prefix of `stack` (`...` = any number of frames).
fn matches_prefix(pattern: &[FramePattern], stack: &[StackFrame<'_>]) -> bool {
    // reach[i]: the lines so far can end just before stack[i].
    let mut reach = vec![false; stack.len() + 1];
    reach[0] = true;
    for p in pattern {
        let mut next = vec![false; stack.len() + 1];
        if *p == FramePattern::Any {
            let mut any = false;
            for i in 0..=stack.len() {
                any |= reach[i];
                next[i] = any;
            }
        } else {
            for i in 0..stack.len() {
                if reach[i] && stack[i].matches(p) {
                    next[i + 1] = true;
                }
            }
        }
        if !next.contains(&true) {
            return false;
        }
        reach = next;
    }
    true
}

// ---------------------------------------------------------------------------
// Parsing

/// The suppressions of one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SuppressionFile {
    /// As given.
    pub path: String,
    /// `None` for a file with no suppression line at all.
    pub format: Option<SuppressionFormat>,
    pub entries: Vec<Suppression>,
}

/// Reads and parses a suppression file.
pub fn load(path: &Path) -> Result<SuppressionFile, ParseError> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| ParseError { file: name.clone(), line: 0, message: e.to_string() })?;
    let text = String::from_utf8(bytes).map_err(|e| ParseError {
        file: name.clone(),
        line: 0,
        message: format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
    })?;
    parse(&name, &text)
}

/// Lines that mean something: (1-based number, trimmed text); blank lines
/// and `#` comments left out.
fn significant_lines(text: &str) -> impl Iterator<Item = (u32, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i as u32 + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
}

/// Parses the text of a suppression file (`file` names it in errors),
/// telling the two formats apart by the first significant line.
pub fn parse(file: &str, text: &str) -> Result<SuppressionFile, ParseError> {
    let (format, entries) = match significant_lines(text).next() {
        None => (None, Vec::new()),
        Some((_, "{")) => (Some(SuppressionFormat::Valgrind), parse_valgrind(file, text)?),
        Some((_, l)) if l.contains(':') && !is_frame_line(l) => {
            (Some(SuppressionFormat::Lsan), parse_lsan(file, text)?)
        }
        Some((n, l)) => {
            return Err(ParseError {
                file: file.into(),
                line: n,
                message: format!(
                    "{l:?} starts neither a LeakSanitizer file (`leak:PATTERN` lines) nor a Valgrind file (entries \
                     in `{{` ... `}}`)"
                ),
            });
        }
    };
    Ok(SuppressionFile { path: file.into(), format, entries })
}

/// Suppression types of the other sanitizers, whose lines a LeakSanitizer
/// file shared with them may hold.
const OTHER_SANITIZER_TYPES: &[&str] = &[
    "interceptor_name",
    "interceptor_via_fun",
    "interceptor_via_lib",
    "odr_violation",
    "race",
    "race_top",
    "mutex",
    "thread",
    "signal",
    "called_from_lib",
    "deadlock",
    "vptr_check",
    "alloc_dealloc_mismatch",
];

fn parse_lsan(file: &str, text: &str) -> Result<Vec<Suppression>, ParseError> {
    let err = |line: u32, message: String| ParseError { file: file.into(), line, message };
    let mut out = Vec::new();
    for (n, l) in significant_lines(text) {
        let Some((kind, pattern)) = l.split_once(':') else {
            return Err(err(n, format!("expected `leak:PATTERN`, found {l:?}")));
        };
        match kind {
            "leak" => {
                if pattern.is_empty() {
                    return Err(err(
                        n,
                        "`leak:` without a pattern (it would hide every leak; write `leak:*` for that)".into(),
                    ));
                }
                out.push(Suppression {
                    name: l.to_string(),
                    file: file.into(),
                    line: n,
                    rule: Rule::Lsan(LsanPattern::new(pattern)),
                });
            }
            k if OTHER_SANITIZER_TYPES.contains(&k) => {}
            _ => {
                let hint = if l == "{" || l == "}" { " (a Valgrind entry in a LeakSanitizer file?)" } else { "" };
                return Err(err(
                    n,
                    format!("unknown suppression type {kind:?} in {l:?}: expected `leak:PATTERN`{hint}"),
                ));
            }
        }
    }
    Ok(out)
}

fn is_frame_line(l: &str) -> bool {
    l == "..." || l.starts_with("fun:") || l.starts_with("obj:") || l.starts_with("src:")
}

fn parse_valgrind(file: &str, text: &str) -> Result<Vec<Suppression>, ParseError> {
    let err = |line: u32, message: String| ParseError { file: file.into(), line, message };
    let mut lines = significant_lines(text).peekable();
    let mut out = Vec::new();
    while let Some((open, l)) = lines.next() {
        if l != "{" {
            return Err(err(open, format!("expected `{{` to start an entry, found {l:?}")));
        }
        // The name.
        let Some((n, name)) = lines.next() else {
            return Err(err(open, "unexpected end of file: entry without a name".into()));
        };
        if name == "}" {
            return Err(err(n, "unexpected `}`: entry without a name or a kind".into()));
        }
        if name == "{" {
            return Err(err(n, "unexpected `{`: the entry before is not closed".into()));
        }
        // TOOL[,TOOL...]:KIND
        let Some((n, kind_line)) = lines.next() else {
            return Err(err(n, "unexpected end of file: expected a `Memcheck:Leak`-style `TOOL:KIND` line".into()));
        };
        let Some((tools, kind)) = kind_line.split_once(':').filter(|_| !is_frame_line(kind_line)) else {
            let why =
                if is_frame_line(name) || name.contains(':') { " (is the entry's name line missing?)" } else { "" };
            return Err(err(
                n,
                format!("expected a `TOOL:KIND` line such as `Memcheck:Leak`, found {kind_line:?}{why}"),
            ));
        };
        let tools: Vec<&str> = tools.split(',').map(str::trim).collect();
        if tools.iter().any(|t| t.eq_ignore_ascii_case("memcheck") && *t != "Memcheck") {
            return Err(err(n, format!("{kind_line:?}: the tool is spelt `Memcheck`")));
        }
        let is_leak = tools.contains(&"Memcheck") && kind == "Leak";
        if tools.contains(&"Memcheck") && kind != "Leak" && kind.eq_ignore_ascii_case("leak") {
            return Err(err(n, format!("{kind_line:?}: the kind is spelt `Leak`")));
        }
        if !is_leak {
            // Another tool's or another error kind's entry: skip to its end.
            loop {
                match lines.next() {
                    Some((_, "}")) => break,
                    Some((m, "{")) => return Err(err(m, "unexpected `{`: the entry before is not closed".into())),
                    Some(_) => {}
                    None => return Err(err(open, "unexpected end of file: entry not closed with `}`".into())),
                }
            }
            continue;
        }
        let mut kinds = None;
        if let Some(&(m, l)) = lines.peek() {
            if let Some(list) = l.strip_prefix("match-leak-kinds:") {
                kinds = Some(Kinds::parse(list.trim()).map_err(|e| err(m, e))?);
                lines.next();
            }
        }
        let mut frames = Vec::new();
        let last = loop {
            let Some((m, l)) = lines.next() else {
                return Err(err(open, "unexpected end of file: entry not closed with `}`".into()));
            };
            if l == "}" {
                break m;
            }
            frames.push(parse_frame(l).map_err(|e| err(m, e))?);
        };
        if frames.is_empty() {
            return Err(err(last, "entry without frame lines (`fun:`, `obj:`, `src:` or `...`)".into()));
        }
        if frames.iter().all(|f| *f == FramePattern::Any) {
            return Err(err(last, "entry with only `...` frame lines (it would hide every leak)".into()));
        }
        out.push(Suppression {
            name: name.to_string(),
            file: file.into(),
            line: open,
            rule: Rule::Valgrind { kinds, frames },
        });
    }
    Ok(out)
}

fn parse_frame(l: &str) -> Result<FramePattern, String> {
    if l == "..." {
        return Ok(FramePattern::Any);
    }
    if let Some(f) = l.strip_prefix("fun:") {
        return Ok(FramePattern::Fun(FunPattern::new(f)));
    }
    if let Some(o) = l.strip_prefix("obj:") {
        return Ok(FramePattern::Obj(Glob::valgrind(o)));
    }
    if let Some(s) = l.strip_prefix("src:") {
        let (name, line) = match s.rsplit_once(':') {
            Some((name, n)) => {
                let line = n
                    .trim()
                    .parse::<u32>()
                    .map_err(|_| format!("{l:?}: the line after `src:FILE:` is not a number"))?;
                (name, Some(line).filter(|&l| l != 0))
            }
            None => (s, None),
        };
        return Ok(FramePattern::Src { glob: Glob::valgrind(name), line });
    }
    if l.starts_with("match-leak-kinds:") {
        return Err("`match-leak-kinds:` must come right after the `Memcheck:Leak` line".into());
    }
    if l == "{" {
        return Err("unexpected `{`: the entry before is not closed with `}`".into());
    }
    Err(format!("expected a frame line (`fun:NAME`, `obj:PATH`, `src:FILE[:LINE]` or `...`), found {l:?}"))
}

// ---------------------------------------------------------------------------
// Applying

/// Every suppression given, in order.
#[derive(Clone, Debug, Default)]
pub struct Suppressions {
    entries: Vec<Suppression>,
}

impl Suppressions {
    pub fn new<'f>(files: impl IntoIterator<Item = &'f SuppressionFile>) -> Suppressions {
        Suppressions { entries: files.into_iter().flat_map(|f| f.entries.iter().cloned()).collect() }
    }

    pub fn entries(&self) -> &[Suppression] {
        &self.entries
    }

    /// The first suppression that hides `leak`.
    pub fn find(&self, leak: &Leak) -> Option<usize> {
        self.entries.iter().position(|s| s.matches(leak))
    }

    /// Removes the leak records a suppression hides from every process,
    /// updates the totals, and lists every suppression with what it hid in
    /// [`Report::suppressions`].
    pub fn apply(&self, report: &mut Report) {
        let mut uses: Vec<SuppressionUse> = self
            .entries
            .iter()
            .map(|s| SuppressionUse {
                name: s.name.clone(),
                file: s.file.clone(),
                line: s.line,
                format: s.format(),
                matched_records: 0,
                matched_blocks: 0,
                matched_bytes: 0,
            })
            .collect();
        for p in &mut report.processes {
            let mut hidden = ClassTotals::default();
            p.leaks.retain(|l| {
                let Some(i) = self.find(l) else { return true };
                let u = &mut uses[i];
                u.matched_records += 1;
                u.matched_blocks += l.blocks;
                u.matched_bytes += l.bytes;
                hidden.records += 1;
                hidden.blocks += l.blocks;
                hidden.bytes += l.bytes;
                false
            });
            count_leaks(&mut p.summary, &p.leaks);
            p.summary.suppressed = hidden;
        }
        report.suppressions = uses;
        report.update_summary();
    }
}

/// Sets a process's leak totals from its `leaks`, as `analyse_process` does:
/// `leaked_*` over every class but reachable, and per class.
pub(crate) fn count_leaks(s: &mut Summary, leaks: &[Leak]) {
    let totals = |keep: &dyn Fn(LeakClass) -> bool| {
        let mut t = ClassTotals::default();
        for l in leaks.iter().filter(|l| keep(l.class)) {
            t.bytes += l.bytes;
            t.blocks += l.blocks;
            t.records += 1;
        }
        t
    };
    let leaked = totals(&|c| c != LeakClass::Reachable);
    s.leaked_bytes = leaked.bytes;
    s.leaked_blocks = leaked.blocks;
    s.leak_records = leaked.records;
    s.definite = totals(&|c| c == LeakClass::Definite);
    s.indirect = totals(&|c| c == LeakClass::Indirect);
    s.possible = totals(&|c| c == LeakClass::Possible);
    s.reachable = totals(&|c| c == LeakClass::Reachable);
}

// ---------------------------------------------------------------------------
// Generating

/// At most this many frame lines in a generated entry (Valgrind's limit for
/// a suppression's stack).
pub const GENERATED_FRAMES: usize = 24;

/// Valgrind's name for a leak class in `match-leak-kinds:`; `None` for `unknown`.
pub fn valgrind_kind(class: LeakClass) -> Option<&'static str> {
    match class {
        LeakClass::Definite => Some("definite"),
        LeakClass::Indirect => Some("indirect"),
        LeakClass::Possible => Some("possible"),
        LeakClass::Reachable => Some("reachable"),
        LeakClass::Unknown => None,
    }
}

/// Quotes Valgrind's glob characters so that a name matches only itself.
pub fn escape(name: &str) -> String {
    let mut s = String::with_capacity(name.len());
    for c in name.chars() {
        if matches!(c, '*' | '?' | '\\') {
            s.push('\\');
        }
        s.push(c);
    }
    s
}

/// Module paths of the system's libraries: not the program's own code.
fn is_system_module(path: &str) -> bool {
    ["/lib/", "/lib64/", "/usr/lib/", "/usr/lib64/", "/usr/libexec/", "/usr/local/lib/"]
        .iter()
        .any(|p| path.starts_with(p))
}

/// The frame that best names where a leak comes from: the innermost named
/// frame outside the system's libraries, else the innermost named one.
fn telling_frame(leak: &Leak) -> Option<&Frame> {
    let named = || leak.stack.iter().filter(|f| f.function.is_some());
    named().find(|f| !f.module.as_deref().is_some_and(is_system_module)).or_else(|| named().next())
}

/// A LeakSanitizer line hiding the record: its telling function, anchored
/// (`^make_record$`). Broader than the Valgrind entry: it hides every leak
/// allocated through that function.
pub fn lsan_line(leak: &Leak) -> Option<String> {
    let f = telling_frame(leak)?.function.as_deref()?;
    // `$` ends a LeakSanitizer pattern: a name holding one can only be matched unanchored up to it.
    Some(match f.find('$') {
        Some(i) => format!("leak:^{}", &f[..i]),
        None => format!("leak:^{f}$"),
    })
}

/// A Valgrind-style entry that hides `leak` (and leaks allocated the same way),
/// preceded by a comment giving the LeakSanitizer form. Lines end with `\n`.
pub fn generate(leak: &Leak) -> String {
    let mut s = String::new();
    if let Some(l) = lsan_line(leak) {
        let _ = writeln!(s, "# LeakSanitizer form: {l}");
    }
    s.push_str("{\n");
    let name = match telling_frame(leak) {
        Some(f) => {
            let func = f.function.as_deref().unwrap_or(UNKNOWN_NAME);
            match (&f.file, f.line) {
                (Some(file), Some(line)) => {
                    format!("leak from {func} ({}:{line})", file.rsplit('/').next().unwrap_or(file))
                }
                _ => format!("leak from {func}"),
            }
        }
        None => "leak".into(),
    };
    let _ = writeln!(s, "   <{name}>");
    s.push_str("   Memcheck:Leak\n");
    if let Some(k) = valgrind_kind(leak.class) {
        let _ = writeln!(s, "   match-leak-kinds: {k}");
    }
    let _ = writeln!(s, "   {}", allocator_line(leak.allocator));
    for f in leak.stack.iter().take(GENERATED_FRAMES - 1) {
        match (&f.function, &f.module) {
            (Some(func), _) => {
                let _ = writeln!(s, "   fun:{}", escape(func));
            }
            (None, Some(m)) => {
                let _ = writeln!(s, "   obj:{}", escape(m));
            }
            (None, None) => s.push_str("   obj:*\n"),
        }
    }
    s.push_str("}\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Exit, ProcessReport, Reachability, Tool, SCHEMA};

    // -- helpers -----------------------------------------------------------

    fn frame(function: Option<&str>, file: Option<(&str, u32)>, module: Option<&str>, inlined: bool) -> Frame {
        Frame {
            address: 0x1000,
            module: module.map(Into::into),
            module_offset: module.map(|_| 0x1000),
            function: function.map(Into::into),
            file: file.map(|(f, _)| f.into()),
            line: file.map(|(_, l)| l),
            inlined,
        }
    }

    fn f(function: &str) -> Frame {
        frame(Some(function), None, Some("/tmp/prog"), false)
    }

    fn leak(allocator: Allocator, stack: Vec<Frame>) -> Leak {
        Leak { class: LeakClass::Unknown, bytes: 10, blocks: 1, allocator, stack, fingerprint: String::new() }
    }

    fn of_class(class: LeakClass, l: Leak) -> Leak {
        Leak { class, ..l }
    }

    fn one(text: &str) -> Suppression {
        let file = parse("test.supp", text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(file.entries.len(), 1, "{:?}", file.entries);
        file.entries.into_iter().next().unwrap()
    }

    fn lsan(pattern: &str) -> Suppression {
        one(&format!("leak:{pattern}\n"))
    }

    fn vg(frames: &str) -> Suppression {
        one(&format!("{{\n   test\n   Memcheck:Leak\n{frames}\n}}\n"))
    }

    fn parse_err(text: &str) -> ParseError {
        parse("bad.supp", text).expect_err("should not parse")
    }

    /// malloc <- make_record (rec.c:16) <- main (rec.c:28) <- __libc_start_call_main (libc)
    fn record_leak() -> Leak {
        leak(
            Allocator::Malloc,
            vec![
                frame(Some("make_record"), Some(("/src/app/rec.c", 16)), Some("/opt/app/bin/prog"), false),
                frame(Some("main"), Some(("/src/app/rec.c", 28)), Some("/opt/app/bin/prog"), false),
                frame(
                    Some("__libc_start_call_main"),
                    Some(("../sysdeps/nptl/libc_start_call_main.h", 58)),
                    Some("/usr/lib/x86_64-linux-gnu/libc.so.6"),
                    false,
                ),
            ],
        )
    }

    // -- globs ---------------------------------------------------------------

    #[test]
    fn glob_star_and_question_mark() {
        let g = Glob::valgrind;
        assert!(g("abc").matches("abc"));
        assert!(!g("abc").matches("abcd"));
        assert!(!g("abc").matches("ab"));
        assert!(g("a*c").matches("ac"));
        assert!(g("a*c").matches("abbbc"));
        assert!(!g("a*c").matches("abbb"));
        assert!(g("*").matches(""));
        assert!(g("**").matches("x"));
        assert!(g("a?c").matches("abc"));
        assert!(!g("a?c").matches("ac"));
        assert!(g("*lib?.so*").matches("/usr/lib/libz.so.1"));
        assert!(g("*a*b*c").matches("xxaxxbxxbxc"));
        assert!(!g("*a*b*c").matches("xxaxxbxxbx"));
        assert!(g("").matches(""));
        assert!(!g("").matches("a"));
        // `?` is one character, not one byte.
        assert!(g("caf?").matches("café"));
        assert!(!g("caf??").matches("café"));
        assert!(g("*é").matches("ééé"));
    }

    #[test]
    fn glob_backslash_quotes_wildcards() {
        let g = Glob::valgrind(r"foo(char\*)");
        assert!(g.matches("foo(char*)"));
        assert!(!g.matches("foo(charx)"));
        assert!(Glob::valgrind(r"a\?").matches("a?"));
        assert!(!Glob::valgrind(r"a\?").matches("ab"));
        assert!(Glob::valgrind(r"a\\b").matches(r"a\b"));
        assert!(!Glob::valgrind(r"\*").has_wildcards());
        let name = "operator delete(void*, unsigned long) [?]\\";
        assert!(Glob::valgrind(&escape(name)).matches(name));
        assert!(!Glob::valgrind(&escape("a*")).matches("abc"));
    }

    // -- LeakSanitizer --------------------------------------------------------

    #[test]
    fn lsan_pattern_is_a_substring_match() {
        let l = record_leak();
        assert!(lsan("make_record").matches(&l));
        assert!(lsan("ake_rec").matches(&l), "anywhere in the name");
        assert!(lsan("make_*").matches(&l));
        assert!(lsan("m*_r*d").matches(&l));
        assert!(!lsan("make_records").matches(&l));
        assert!(!lsan("free_record").matches(&l));
    }

    #[test]
    fn lsan_anchors() {
        let l = record_leak();
        assert!(lsan("^make_record$").matches(&l));
        assert!(lsan("^make").matches(&l));
        assert!(!lsan("^ake_record").matches(&l));
        assert!(lsan("record$").matches(&l));
        assert!(!lsan("make$").matches(&l));
        assert!(lsan("^main$").matches(&l));
        assert!(!lsan("^mai$").matches(&l));
        // `^*` is no anchor at all; the rest after `$` is ignored, as in LeakSanitizer.
        assert!(lsan("^*record").matches(&l));
        assert!(lsan("^main$garbage").matches(&l));
        // A `^` inside a pattern is an ordinary character.
        assert!(!lsan("a^b").matches(&l));
        assert!(lsan("a^b").matches(&leak(Allocator::Malloc, vec![f("xa^bx")])));
    }

    #[test]
    fn lsan_matches_files_and_modules_of_every_frame() {
        let l = record_leak();
        assert!(lsan("rec.c").matches(&l), "source file");
        assert!(lsan("/src/app/").matches(&l), "source directory");
        assert!(lsan("^/src/app/rec.c$").matches(&l), "anchored on the full path");
        assert!(lsan("libc.so").matches(&l), "module of an outer frame");
        assert!(lsan("^/opt/app/bin/prog$").matches(&l));
        assert!(lsan("__libc_start").matches(&l), "outermost frame's function");
        assert!(!lsan("^rec.c").matches(&l), "the path starts with /src");
    }

    #[test]
    fn lsan_sees_the_allocation_function_as_first_frame() {
        assert!(lsan("^malloc$").matches(&record_leak()));
        assert!(!lsan("^calloc$").matches(&record_leak()));
        let new = leak(Allocator::New, vec![f("main")]);
        assert!(lsan("operator new").matches(&new));
        assert!(!lsan("operator new[]").matches(&new));
        assert!(lsan("operator new[]").matches(&leak(Allocator::NewArray, vec![f("main")])));
        // Nothing to match for an unknown allocator, and unknown names never match.
        let bare = leak(Allocator::Unknown, vec![frame(None, None, None, false)]);
        assert!(!lsan("*").matches(&bare));
        assert!(!lsan("???").matches(&bare));
    }

    #[test]
    fn lsan_matches_cxx_and_rust_demangled_names() {
        let cxx = leak(
            Allocator::New,
            vec![
                f("std::vector<int, std::allocator<int> >::_M_realloc_insert(int const&)"),
                f("store::Cache::fill(int)"),
            ],
        );
        assert!(lsan("store::Cache::fill").matches(&cxx));
        assert!(lsan("^store::Cache::*(int)$").matches(&cxx));
        assert!(lsan("std::vector<int").matches(&cxx));
        assert!(!lsan("^Cache::fill").matches(&cxx));
        let rust = leak(
            Allocator::Malloc,
            vec![
                frame(
                    Some("alloc::alloc::alloc"),
                    Some(("/rustc/abc/library/alloc/src/alloc.rs", 95)),
                    Some("/tmp/prog"),
                    true,
                ),
                f("<alloc::vec::Vec<T> as core::clone::Clone>::clone"),
                f("leaky::cache::Cache::insert"),
            ],
        );
        assert!(lsan("leaky::cache::").matches(&rust));
        assert!(lsan("^<alloc::vec::Vec<T> as core::clone::Clone>::clone$").matches(&rust));
        assert!(lsan("library/alloc/src").matches(&rust), "inlined frame's file");
    }

    #[test]
    fn lsan_file_syntax() {
        let file = parse(
            "x.supp",
            "# known leaks\n\n  leak:first  \n\t# indented comment\nleak:second\r\nrace:ignored_for_tsan\ninterceptor_via_fun:foo\n",
        )
        .unwrap();
        assert_eq!(file.format, Some(SuppressionFormat::Lsan));
        let got: Vec<(&str, u32)> = file.entries.iter().map(|e| (e.name.as_str(), e.line)).collect();
        assert_eq!(got, vec![("leak:first", 3), ("leak:second", 5)]);
        assert!(file.entries.iter().all(|e| e.file == "x.supp" && e.format() == SuppressionFormat::Lsan));
    }

    #[test]
    fn lsan_file_errors_name_the_line() {
        let e = parse_err("leak:ok\n\nbogus:thing\n");
        assert_eq!((e.file.as_str(), e.line), ("bad.supp", 3));
        assert!(e.message.contains("unknown suppression type \"bogus\""), "{e}");
        assert_eq!(e.to_string(), format!("suppressions file bad.supp, line 3: {}", e.message));
        let e = parse_err("leak:ok\nno colon here\n");
        assert_eq!(e.line, 2);
        assert!(e.message.contains("expected `leak:PATTERN`"), "{e}");
        let e = parse_err("# c\nleak:\n");
        assert_eq!(e.line, 2);
        assert!(e.message.contains("without a pattern"), "{e}");
        let e = parse_err("leak:ok\n{\n");
        assert_eq!(e.line, 2);
    }

    #[test]
    fn empty_and_comment_only_files_have_no_suppressions() {
        for text in ["", "\n\n", "# nothing yet\n   \n# really\n"] {
            let f = parse("e.supp", text).unwrap();
            assert_eq!((f.format, f.entries.len()), (None, 0), "{text:?}");
        }
    }

    #[test]
    fn unrecognisable_files_are_rejected_at_their_first_line() {
        let e = parse_err("\n# hello\nthis is not a suppression file\n");
        assert_eq!(e.line, 3);
        assert!(e.message.contains("neither a LeakSanitizer file"), "{e}");
        let e = parse_err("fun:malloc\n");
        assert_eq!(e.line, 1);
    }

    // -- Valgrind -----------------------------------------------------------

    #[test]
    fn valgrind_frames_match_from_the_allocation_function_outwards() {
        let l = record_leak();
        assert!(vg("fun:malloc\nfun:make_record\nfun:main").matches(&l));
        assert!(vg("fun:malloc\nfun:make_record").matches(&l), "a prefix is enough");
        assert!(vg("fun:malloc").matches(&l));
        assert!(!vg("fun:make_record\nfun:main").matches(&l), "frame 0 is malloc");
        assert!(!vg("fun:malloc\nfun:main").matches(&l), "frames cannot be skipped without ...");
        assert!(!vg("fun:calloc\nfun:make_record").matches(&l));
        assert!(
            !vg("fun:malloc\nfun:make_record\nfun:main\nfun:__libc_start_call_main\nfun:_start").matches(&l),
            "more lines than frames"
        );
        assert!(vg("fun:*\nfun:make_*\nfun:ma?n").matches(&l));
        assert!(!vg("fun:*\nfun:make\nfun:main").matches(&l), "fun: matches the whole name");
    }

    #[test]
    fn valgrind_ellipsis_matches_any_number_of_frames() {
        let l = record_leak();
        assert!(vg("...\nfun:main").matches(&l));
        assert!(vg("...\nfun:malloc\nfun:make_record").matches(&l), "... may match no frame");
        assert!(vg("fun:malloc\n...\nfun:main").matches(&l));
        assert!(vg("fun:malloc\n...\nfun:make_record\n...\nfun:__libc_start_call_main").matches(&l));
        assert!(vg("fun:malloc\n...\n...\nfun:main").matches(&l));
        assert!(vg("...\nfun:make_record\n...").matches(&l));
        assert!(vg("fun:malloc\n...").matches(&l), "a trailing ... matches nothing too");
        assert!(!vg("...\nfun:nowhere").matches(&l));
        assert!(!vg("...\nfun:main\nfun:make_record").matches(&l), "order matters: innermost first");
        assert!(!vg("...\nfun:main\n...\nfun:main").matches(&l), "main appears once");
        // Backtracking: the first `foo` is not the one that works.
        let l2 = leak(Allocator::Malloc, vec![f("foo"), f("bar"), f("foo"), f("baz")]);
        assert!(vg("...\nfun:foo\nfun:baz").matches(&l2));
        assert!(!vg("...\nfun:foo\nfun:qux").matches(&l2));
    }

    #[test]
    fn valgrind_obj_matches_the_module_path() {
        let l = record_leak();
        assert!(vg("fun:malloc\nobj:/opt/app/bin/prog").matches(&l));
        assert!(vg("fun:malloc\nobj:*/prog\nobj:*/prog\nobj:*/libc.so*").matches(&l));
        assert!(vg("...\nobj:/usr/lib/x86_64-linux-gnu/libc.so.?").matches(&l));
        assert!(!vg("fun:malloc\nobj:prog").matches(&l), "obj: matches the whole path");
        assert!(vg("obj:*\nobj:*/bin/prog").matches(&l), "the allocation function has no known module, *'s match it");
        // A frame with no module is "???"; with no name either, only fun:*/obj:* and ... match it.
        let bare = leak(Allocator::Malloc, vec![frame(None, None, None, false), f("main")]);
        assert!(vg("fun:malloc\nobj:*\nfun:main").matches(&bare));
        assert!(vg("fun:malloc\nfun:*\nfun:main").matches(&bare));
        assert!(vg("fun:malloc\nobj:???\nfun:main").matches(&bare));
        assert!(!vg("fun:malloc\nobj:/*\nfun:main").matches(&bare));
        // Inlined frames are frames of their own, sharing their caller's module.
        let inl = leak(
            Allocator::Malloc,
            vec![
                frame(Some("helper"), None, Some("/lib/libx.so"), true),
                frame(Some("outer"), None, Some("/lib/libx.so"), false),
            ],
        );
        assert!(vg("fun:malloc\nobj:/lib/libx.so\nobj:/lib/libx.so").matches(&inl));
        assert!(vg("fun:malloc\nfun:helper\nfun:outer").matches(&inl));
    }

    #[test]
    fn valgrind_src_matches_file_and_line() {
        let l = record_leak();
        assert!(vg("fun:malloc\nsrc:rec.c").matches(&l), "base name");
        assert!(vg("fun:malloc\nsrc:/src/app/rec.c:16").matches(&l), "full path and line");
        assert!(vg("fun:malloc\nsrc:*.c:16\nsrc:rec.c:28").matches(&l));
        assert!(!vg("fun:malloc\nsrc:rec.c:17").matches(&l));
        assert!(!vg("src:rec.c").matches(&l), "frame 0 (malloc) has no source here");
        assert!(vg("...\nsrc:rec.c:28").matches(&l));
    }

    #[test]
    fn valgrind_mangled_names_are_demangled() {
        let cxx = leak(
            Allocator::New,
            vec![
                f("store::Cache::fill(int)"),
                f("std::vector<int, std::allocator<int> >::push_back(int const&)"),
                f("main"),
            ],
        );
        assert!(
            vg("fun:_Znwm\nfun:_ZN5store5Cache4fillEi\nfun:_ZNSt6vectorIiSaIiEE9push_backERKi\nfun:main").matches(&cxx)
        );
        assert!(!vg("fun:_Znwm\nfun:_ZN5store5Cache4fillEi\nfun:main").matches(&cxx), "push_back comes before main");
        assert!(
            vg("fun:operator new(unsigned long)\nfun:store::Cache::fill(int)").matches(&cxx),
            "demangled works too"
        );
        assert!(vg("fun:_ZnwmRKSt9nothrow_t\nfun:store::Cache::fill*").matches(&cxx), "any operator new form");
        assert!(!vg("fun:_Znam").matches(&cxx), "new[] is not new");
        assert!(!vg("fun:_Znwm\nfun:_ZN5store5Cache4fillEl").matches(&cxx), "fill(long) is another function");
        // Mangled prefixes with a trailing *.
        assert!(vg("fun:_Znwm\nfun:_ZN5store*").matches(&cxx));
        assert!(vg("fun:_Znwm\nfun:_ZN5store5Cache*").matches(&cxx));
        assert!(vg("fun:_Znwm\nfun:_ZN5store5Cache4fill*").matches(&cxx));
        assert!(!vg("fun:_Znwm\nfun:_ZN5other*").matches(&cxx));
        assert!(!vg("fun:_Znwm\nfun:_ZN5store5Cach*").matches(&cxx), "a cut component is not translated");
        assert!(vg("fun:_Znwm\n...\nfun:_ZNSt6vector*").matches(&cxx));
        assert!(vg("fun:_Znwm\n...\nfun:_ZNKSt6vector*").matches(&cxx), "const member prefix");
        assert!(vg("fun:_Znw*\nfun:store::*").matches(&cxx), "operator new, any size type");
        assert!(vg("fun:_Znwm*").matches(&cxx));
        assert!(!vg("fun:_Zna*").matches(&cxx), "operator new[] is another function");
        assert!(vg("fun:_Zna*").matches(&leak(Allocator::NewArray, vec![f("main")])));
        assert!(vg("fun:_Znam*").matches(&leak(Allocator::NewArray, vec![f("main")])));
        let plain = leak(Allocator::Malloc, vec![f("make(int)"), f("main")]);
        assert!(vg("fun:malloc\nfun:_Z4makei").matches(&plain));
        assert!(vg("fun:malloc\nfun:_Z4make*").matches(&plain));
        assert!(!vg("fun:malloc\nfun:_Z3mak*").matches(&plain));
        // Rust legacy and v0 names.
        let rust =
            leak(Allocator::Malloc, vec![f("core::ptr::drop_in_place"), f("leaky::cache::Cache::insert"), f("main")]);
        assert!(vg("fun:malloc\nfun:_ZN4core3ptr13drop_in_place17h0123456789abcdefE").matches(&rust));
        assert!(vg("fun:malloc\nfun:_ZN4core3ptr*\nfun:_ZN5leaky5cache*").matches(&rust));
        assert!(vg("fun:malloc\n...\nfun:leaky::cache::Cache::insert").matches(&rust));
    }

    #[test]
    fn demangled_patterns_from_generation_match_literally() {
        let cxx = leak(Allocator::New, vec![f("take(char*, int)"), f("main")]);
        assert!(vg(&format!("fun:_Znwm\nfun:{}", escape("take(char*, int)"))).matches(&cxx));
        assert!(!vg(&format!("fun:_Znwm\nfun:{}", escape("take(char*)")))
            .matches(&leak(Allocator::New, vec![f("take(char, int)")])));
    }

    #[test]
    fn match_leak_kinds_filters_by_class_and_unknown_matches_any() {
        let base = record_leak();
        let s = one("{\n n\n Memcheck:Leak\n match-leak-kinds: definite,possible\n fun:malloc\n}\n");
        assert!(s.matches(&of_class(LeakClass::Definite, base.clone())));
        assert!(s.matches(&of_class(LeakClass::Possible, base.clone())));
        assert!(!s.matches(&of_class(LeakClass::Indirect, base.clone())));
        assert!(!s.matches(&of_class(LeakClass::Reachable, base.clone())));
        assert!(s.matches(&of_class(LeakClass::Unknown, base.clone())), "no scan: any kind");
        let all = one("{\n n\n Memcheck:Leak\n match-leak-kinds: all\n fun:malloc\n}\n");
        let none = one("{\n n\n Memcheck:Leak\n match-leak-kinds: none\n fun:malloc\n}\n");
        let absent = vg("fun:malloc");
        for c in [LeakClass::Definite, LeakClass::Indirect, LeakClass::Possible, LeakClass::Reachable] {
            assert!(all.matches(&of_class(c, base.clone())));
            assert!(absent.matches(&of_class(c, base.clone())));
            assert!(!none.matches(&of_class(c, base.clone())));
        }
        let reach = one("{\n n\n Memcheck:Leak\n match-leak-kinds: reachable\n ...\n fun:main\n}\n");
        assert!(reach.matches(&of_class(LeakClass::Reachable, base.clone())));
        assert!(!reach.matches(&of_class(LeakClass::Definite, base.clone())));
        // LeakSanitizer lines ignore the class.
        assert!(lsan("make_record").matches(&of_class(LeakClass::Reachable, base)));
    }

    #[test]
    fn valgrind_file_syntax() {
        let text = "\
# A comment before
{
   first one
   Memcheck:Leak
   match-leak-kinds: definite
   fun:malloc
   # a comment inside
   fun:make_record
}

{
   <insert_a_suppression_name_here>
   Memcheck:Cond
   fun:strlen
   fun:main
}
{
   param with extra line
   Memcheck:Param
   write(buf)
   fun:write
}
{
   helgrind's
   Helgrind:Race
   fun:foo
}
{
   shared
   Memcheck,Helgrind:Leak
   ...
   obj:*/libfoo.so*
}
";
        let f = parse("vg.supp", text).unwrap();
        assert_eq!(f.format, Some(SuppressionFormat::Valgrind));
        let got: Vec<(&str, u32)> = f.entries.iter().map(|e| (e.name.as_str(), e.line)).collect();
        assert_eq!(got, vec![("first one", 2), ("shared", 28)], "other kinds and tools are skipped");
        assert!(f.entries[0].matches(&of_class(LeakClass::Definite, record_leak())));
        assert!(!f.entries[0].matches(&of_class(LeakClass::Reachable, record_leak())));
    }

    #[test]
    fn valgrind_file_errors_name_the_line() {
        let cases: &[(&str, u32, &str)] = &[
            ("{\n n\n Memcheck:Leak\n fun:malloc\n bogus\n}\n", 5, "expected a frame line"),
            ("{\n n\n Memcheck:Leak\n fun:malloc\n", 1, "not closed"),
            ("{\n n\n Memcheck:Leak\n}\n", 4, "without frame lines"),
            ("{\n n\n Memcheck:Leak\n ...\n ...\n}\n", 6, "only `...`"),
            (
                "{\n n\n Memcheck:Leak\n match-leak-kinds: definitely\n fun:malloc\n}\n",
                4,
                "unknown leak kind \"definitely\"",
            ),
            ("{\n n\n Memcheck:Leak\n fun:malloc\n match-leak-kinds: all\n}\n", 5, "right after"),
            ("{\n Memcheck:Leak\n fun:malloc\n}\n", 3, "name line missing"),
            ("{\n n\n memcheck:Leak\n fun:malloc\n}\n", 3, "spelt `Memcheck`"),
            ("{\n n\n Memcheck:leak\n fun:malloc\n}\n", 3, "spelt `Leak`"),
            ("{\n n\n no kind here\n fun:malloc\n}\n", 3, "TOOL:KIND"),
            ("{\n}\n", 2, "without a name"),
            ("{\n n\n Memcheck:Leak\n fun:malloc\n}\nleak:foo\n", 6, "expected `{`"),
            ("{\n n\n Memcheck:Leak\n fun:malloc\n{\n", 5, "not closed"),
            ("{\n n\n Memcheck:Leak\n src:a.c:x\n}\n", 4, "not a number"),
            ("{\n n\n Helgrind:Race\n fun:x\n", 1, "not closed"),
        ];
        for &(text, line, what) in cases {
            let e = parse_err(text);
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.message.contains(what), "{text:?}: {e}");
            assert!(e.to_string().starts_with(&format!("suppressions file bad.supp, line {line}: ")), "{e}");
        }
    }

    #[test]
    fn unreadable_files_are_errors_without_a_line() {
        let e = load(Path::new("/nonexistent/dir/x.supp")).unwrap_err();
        assert_eq!(e.line, 0);
        assert!(e.to_string().starts_with("suppressions file /nonexistent/dir/x.supp: "), "{e}");
    }

    // -- applying ---------------------------------------------------------------

    fn process(pid: u32, leaks: Vec<Leak>) -> ProcessReport {
        let mut p: ProcessReport = serde_json::from_value(serde_json::json!({
            "pid": pid, "parent_pid": 1, "exec_index": 0, "argv": ["./prog"], "exe": "/tmp/prog",
            "exit": {"code": 0}, "complete": true, "notes": [], "leaks": [], "errors": [],
            "mappings": [], "shared_memory": [],
            "summary": {"leaked_bytes": 0, "leaked_blocks": 0, "leak_records": 0, "errors": 0,
                        "allocations": 50, "frees": 10},
        }))
        .unwrap();
        p.reachability = Reachability::none();
        count_leaks(&mut p.summary, &leaks);
        p.leaks = leaks;
        p.exit = Exit::Code(0);
        p
    }

    fn sized(bytes: u64, blocks: u64, class: LeakClass, stack: Vec<Frame>) -> Leak {
        Leak { class, bytes, blocks, allocator: Allocator::Malloc, stack, fingerprint: String::new() }
    }

    #[test]
    fn apply_removes_counts_and_credits_the_first_match() {
        let a = sized(100, 2, LeakClass::Definite, vec![f("alpha"), f("main")]);
        let b = sized(40, 1, LeakClass::Definite, vec![f("beta"), f("main")]);
        let c = sized(7, 1, LeakClass::Reachable, vec![f("gamma"), f("main")]);
        let d = sized(5, 1, LeakClass::Indirect, vec![f("alpha"), f("other")]);
        let processes =
            vec![process(10, vec![a.clone(), b.clone(), c.clone()]), process(11, vec![d.clone(), b.clone()])];
        let summary = crate::total(&processes);
        let mut r = Report { schema: SCHEMA.into(), tool: Tool::default(), processes, summary, suppressions: vec![] };
        assert_eq!(r.summary.leaked_bytes, 100 + 40 + 5 + 40);

        let lsan_file = parse("l.supp", "leak:alpha\nleak:never_called\nleak:^gamma$\n").unwrap();
        let vg_file = parse("v.supp", "{\n  hide beta\n  Memcheck:Leak\n  fun:malloc\n  fun:beta\n}\n{\n  alpha again\n  Memcheck:Leak\n  ...\n  fun:alpha\n}\n").unwrap();
        let s = Suppressions::new([&lsan_file, &vg_file]);
        assert_eq!(s.entries().len(), 5);
        s.apply(&mut r);

        assert!(r.processes.iter().all(|p| p.leaks.is_empty()), "{:?}", r.processes);
        let uses: Vec<(&str, &str, u32, u64, u64, u64)> = r
            .suppressions
            .iter()
            .map(|u| (u.name.as_str(), u.file.as_str(), u.line, u.matched_records, u.matched_blocks, u.matched_bytes))
            .collect();
        assert_eq!(
            uses,
            vec![
                ("leak:alpha", "l.supp", 1, 2, 3, 105),
                ("leak:never_called", "l.supp", 2, 0, 0, 0),
                ("leak:^gamma$", "l.supp", 3, 1, 1, 7),
                ("hide beta", "v.supp", 1, 2, 2, 80),
                ("alpha again", "v.supp", 7, 0, 0, 0),
            ]
        );
        assert_eq!(r.suppressions[3].format, SuppressionFormat::Valgrind);
        let p0 = &r.processes[0].summary;
        assert_eq!((p0.leaked_bytes, p0.leaked_blocks, p0.leak_records), (0, 0, 0));
        assert_eq!(p0.suppressed, ClassTotals { bytes: 147, blocks: 4, records: 3 });
        assert_eq!(p0.definite, ClassTotals::default());
        assert_eq!(p0.reachable, ClassTotals::default());
        assert_eq!(p0.allocations, 50, "other totals are kept");
        assert_eq!(r.summary.suppressed, ClassTotals { bytes: 192, blocks: 6, records: 5 });
        assert_eq!(r.summary.leaked_bytes, 0);
        assert!(!r.has_findings());
    }

    #[test]
    fn apply_keeps_what_nothing_matches_and_recounts_per_class() {
        let a = sized(100, 2, LeakClass::Definite, vec![f("alpha")]);
        let b = sized(40, 1, LeakClass::Possible, vec![f("beta")]);
        let c = sized(7, 1, LeakClass::Reachable, vec![f("gamma")]);
        let processes = vec![process(10, vec![a, b, c])];
        let summary = crate::total(&processes);
        let mut r = Report { schema: SCHEMA.into(), tool: Tool::default(), processes, summary, suppressions: vec![] };
        Suppressions::new([&parse("l", "leak:alpha\n").unwrap()]).apply(&mut r);
        let p = &r.processes[0];
        assert_eq!(p.leaks.len(), 2);
        assert_eq!(
            (p.summary.leaked_bytes, p.summary.leaked_blocks, p.summary.leak_records),
            (40, 1, 1),
            "reachable is not leaked"
        );
        assert_eq!(p.summary.definite, ClassTotals::default());
        assert_eq!(p.summary.possible, ClassTotals { bytes: 40, blocks: 1, records: 1 });
        assert_eq!(p.summary.reachable, ClassTotals { bytes: 7, blocks: 1, records: 1 });
        assert_eq!(p.summary.suppressed, ClassTotals { bytes: 100, blocks: 2, records: 1 });
        assert_eq!(r.summary, p.summary);
    }

    #[test]
    fn no_suppressions_change_nothing_but_the_empty_list() {
        let processes = vec![process(10, vec![sized(1, 1, LeakClass::Unknown, vec![f("x")])])];
        let summary = crate::total(&processes);
        let mut r = Report { schema: SCHEMA.into(), tool: Tool::default(), processes, summary, suppressions: vec![] };
        let before = r.clone();
        Suppressions::default().apply(&mut r);
        assert_eq!(r, before);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["suppressions"], serde_json::json!([]));
        assert_eq!(v["summary"]["suppressed"], serde_json::json!({"bytes": 0, "blocks": 0, "records": 0}));
        // Reports written before suppressions existed still read.
        let mut old = v.clone();
        old.as_object_mut().unwrap().remove("suppressions");
        old["summary"].as_object_mut().unwrap().remove("suppressed");
        let back: Report = serde_json::from_value(old).unwrap();
        assert_eq!(back.suppressions, vec![]);
    }

    // -- generating -----------------------------------------------------------------

    #[test]
    fn generated_entry_has_the_allocator_then_every_frame() {
        let text = generate(&record_leak());
        assert_eq!(
            text,
            "# LeakSanitizer form: leak:^make_record$\n\
             {\n\
             \x20  <leak from make_record (rec.c:16)>\n\
             \x20  Memcheck:Leak\n\
             \x20  fun:malloc\n\
             \x20  fun:make_record\n\
             \x20  fun:main\n\
             \x20  fun:__libc_start_call_main\n\
             }\n"
        );
    }

    #[test]
    fn generated_entry_names_kinds_modules_and_quotes_wildcards() {
        let l = Leak {
            class: LeakClass::Indirect,
            bytes: 8,
            blocks: 1,
            allocator: Allocator::New,
            stack: vec![
                frame(Some("take(char*, int)"), None, Some("/usr/lib/libx.so"), false),
                frame(None, None, Some("/usr/lib/liby.so"), false),
                frame(None, None, None, false),
                frame(Some("main"), Some(("/src/m.c", 3)), Some("/tmp/prog"), false),
            ],
            fingerprint: String::new(),
        };
        let text = generate(&l);
        assert!(text.starts_with("# LeakSanitizer form: leak:^main$\n{\n   <leak from main (m.c:3)>\n"), "{text}");
        assert!(text.contains(
            "   Memcheck:Leak\n   match-leak-kinds: indirect\n   fun:_Znwm\n   fun:take(char\\*, int)\n   obj:/usr/lib/liby.so\n   obj:*\n   fun:main\n}\n"
        ), "{text}");
    }

    #[test]
    fn generated_entries_are_capped_and_parse_back_to_match_their_leak() {
        let deep: Vec<Frame> = (0..40).map(|i| f(&format!("level{i}"))).collect();
        let leaks = vec![
            record_leak(),
            of_class(LeakClass::Possible, leak(Allocator::NewArray, vec![f("store::Cache::fill(int)"), f("main")])),
            leak(Allocator::Calloc, deep),
            leak(Allocator::Unknown, vec![frame(None, None, None, false)]),
            leak(Allocator::Malloc, vec![]),
            leak(Allocator::Malloc, vec![f("odd$name"), f("*weird?")]),
        ];
        let mut text = String::new();
        for l in &leaks {
            text += &generate(l);
        }
        let file = parse("gen.supp", &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(file.entries.len(), leaks.len());
        for (e, l) in file.entries.iter().zip(&leaks) {
            assert!(e.matches(l), "{} should match its own leak\n{text}", e.name);
        }
        let deep_entry = text.split("{\n").nth(3).unwrap();
        assert_eq!(
            deep_entry.lines().filter(|l| l.starts_with("   fun:") || l.starts_with("   obj:")).count(),
            GENERATED_FRAMES
        );
        // It does not hide a record allocated elsewhere.
        assert!(!file.entries[0].matches(&leak(Allocator::Malloc, vec![f("other"), f("main")])));
        assert!(!file.entries[1].matches(&leak(Allocator::New, vec![f("store::Cache::fill(int)"), f("main")])));
        // The LeakSanitizer lines parse and match too.
        for l in &leaks {
            if let Some(line) = lsan_line(l) {
                let s = parse("gen.lsan", &format!("{line}\n")).unwrap();
                assert!(s.entries[0].matches(l), "{line}");
            }
        }
    }

    #[test]
    fn telling_frame_skips_system_libraries() {
        let l = leak(
            Allocator::Malloc,
            vec![
                frame(
                    Some("__strdup"),
                    Some(("./string/strdup.c", 42)),
                    Some("/usr/lib/x86_64-linux-gnu/libc.so.6"),
                    false,
                ),
                frame(Some("make_record"), Some(("/src/rec.c", 16)), Some("/tmp/prog"), false),
            ],
        );
        assert_eq!(lsan_line(&l).as_deref(), Some("leak:^make_record$"));
        let only_libc = leak(Allocator::Malloc, vec![frame(Some("__strdup"), None, Some("/lib/libc.so.6"), false)]);
        assert_eq!(lsan_line(&only_libc).as_deref(), Some("leak:^__strdup$"));
        assert_eq!(lsan_line(&leak(Allocator::Malloc, vec![])), None);
    }
}
