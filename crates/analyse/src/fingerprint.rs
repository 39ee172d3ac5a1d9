//! Leak fingerprints: an identity for a leak record that survives rebuilds,
//! ASLR and unrelated code edits, for CI baselines and report diffs.
//!
//! A fingerprint hashes the allocator and, for the innermost frames of the
//! allocation stack, each frame's function name (Rust's `::h<hash>` suffix
//! removed) and the *base name* of its source file, or of its module when it
//! has no source file. Addresses, line numbers and directories are left out:
//! they change with every rebuild, edit or checkout. The frames taken are
//! those up to and including the second frame of the user's own code
//! ([`is_user_frame`]) — so a leak inside a library is told apart by the
//! user's call chain into it — but at least [`MIN_FRAMES`] and at most
//! [`MAX_FRAMES`].
//!
//! Two records of one process can still get the same hash (two allocations
//! in the same function, called from the same place). They are then told
//! apart by the order of their source lines: the first keeps the bare hash,
//! the next ones get `-2`, `-3`, ... appended. That order survives edits
//! elsewhere in the file.

use crate::report::{Frame, Leak};
use std::collections::HashMap;

/// Frames always taken (when the stack has them).
pub const MIN_FRAMES: usize = 4;
/// Frames never exceeded.
pub const MAX_FRAMES: usize = 16;
/// User-code frames after which no more frames are taken.
pub const USER_FRAMES: usize = 2;

/// Source directories of system code: the C library, compilers' headers,
/// language runtimes, distribution builds.
const SYSTEM_SOURCE_PREFIXES: &[&str] = &[
    "/usr/include/",
    "/usr/lib/",
    "/usr/lib64/",
    "/usr/src/",
    "/usr/share/",
    "/usr/local/include/",
    "/rustc/",
    "/build/",
    "/opt/rh/",
    "/gnu/store/",
];
/// Parts of a source path that mark third-party code fetched by a package manager.
const SYSTEM_SOURCE_PARTS: &[&str] = &["/.cargo/registry/", "/.cargo/git/", "/.rustup/"];
/// Directories of system modules.
const SYSTEM_MODULE_PREFIXES: &[&str] =
    &["/usr/lib/", "/usr/lib64/", "/usr/lib32/", "/lib/", "/lib64/", "/lib32/", "/usr/libexec/"];

/// Whether `f` is in the user's own code: it has an absolute source file
/// outside system directories (glibc's debug information names its files
/// relatively, `./string/strdup.c`), in a module outside system library
/// directories.
pub fn is_user_frame(f: &Frame) -> bool {
    let Some(file) = f.file.as_deref() else { return false };
    if !file.starts_with('/') {
        return false;
    }
    if SYSTEM_SOURCE_PREFIXES.iter().any(|p| file.starts_with(p))
        || SYSTEM_SOURCE_PARTS.iter().any(|p| file.contains(p))
    {
        return false;
    }
    !f.module.as_deref().is_some_and(|m| SYSTEM_MODULE_PREFIXES.iter().any(|p| m.starts_with(p)))
}

/// The fingerprint hash (16 lowercase hex digits) of a stack; `tag` names what
/// was done there (the allocator's name for a leak, the error kind for a heap error).
pub fn of_stack(tag: &str, stack: &[Frame]) -> String {
    let mut h = Fnv::new();
    h.write(tag.as_bytes());
    let mut user = 0;
    for (i, f) in stack.iter().enumerate() {
        if i >= MAX_FRAMES || (i >= MIN_FRAMES && user >= USER_FRAMES) {
            break;
        }
        h.write(b"\x00");
        match &f.function {
            Some(name) => h.write(strip_rust_hash(name).as_bytes()),
            None => h.write(b"??"),
        }
        h.write(b"@");
        if let Some(path) = f.file.as_deref().or(f.module.as_deref()) {
            h.write(base_name(path).as_bytes());
        }
        if is_user_frame(f) {
            user += 1;
        }
    }
    format!("{:016x}", h.finish())
}

/// Sets the `fingerprint` of every leak of one process (see the module docs).
pub fn assign(leaks: &mut [Leak]) {
    let hashes: Vec<String> = leaks.iter().map(|l| of_stack(l.allocator.name(), &l.stack)).collect();
    let mut same: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, h) in hashes.iter().enumerate() {
        same.entry(h.as_str()).or_default().push(i);
    }
    for (i, h) in hashes.iter().enumerate() {
        leaks[i].fingerprint = h.clone();
    }
    for (h, mut idx) in same {
        if idx.len() < 2 {
            continue;
        }
        let lines = |i: usize| leaks[i].stack.iter().map(|f| f.line.unwrap_or(0)).collect::<Vec<u32>>();
        idx.sort_by(|&a, &b| lines(a).cmp(&lines(b)).then(a.cmp(&b)));
        for (n, &i) in idx.iter().enumerate().skip(1) {
            leaks[i].fingerprint = format!("{h}-{}", n + 1);
        }
    }
}

/// Fills in the fingerprints of leaks that have none (a report written
/// before fingerprints existed).
pub fn fill_missing(report: &mut crate::report::Report) {
    for p in &mut report.processes {
        if p.leaks.iter().any(|l| l.fingerprint.is_empty()) {
            assign(&mut p.leaks);
        }
    }
}

/// `name` without a trailing Rust legacy-mangling hash (`::h0123456789abcdef`),
/// which changes with every build.
fn strip_rust_hash(name: &str) -> &str {
    if let Some(i) = name.rfind("::h") {
        let tail = &name[i + 3..];
        if tail.len() == 16 && tail.bytes().all(|b| b.is_ascii_hexdigit()) {
            return &name[..i];
        }
    }
    name
}

fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// 64-bit FNV-1a: small, and stable across Rust versions and platforms
/// (unlike `std`'s hashers).
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= b as u64;
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Allocator, LeakClass};

    fn f(addr: u64, func: &str, file: &str, line: u32) -> Frame {
        Frame {
            address: addr,
            module: Some("/home/u/proj/prog".into()),
            module_offset: Some(addr - 0x5555_0000_0000),
            function: Some(func.into()),
            file: Some(file.into()),
            line: Some(line),
            inlined: false,
        }
    }

    fn leak(allocator: Allocator, stack: Vec<Frame>) -> Leak {
        Leak { class: LeakClass::Unknown, bytes: 8, blocks: 1, allocator, stack, fingerprint: String::new() }
    }

    #[test]
    fn addresses_lines_and_directories_do_not_matter() {
        let a = vec![
            f(0x5555_0000_1000, "make", "/home/u/proj/p.c", 10),
            f(0x5555_0000_2000, "main", "/home/u/proj/p.c", 30),
        ];
        let b =
            vec![f(0x5555_0001_1100, "make", "/ci/build/p.c", 12), f(0x5555_0001_2100, "main", "/ci/build/p.c", 35)];
        assert_eq!(of_stack("malloc", &a), of_stack("malloc", &b));
        assert_eq!(of_stack("malloc", &a).len(), 16);
        assert_ne!(of_stack("malloc", &a), of_stack("calloc", &a));
        let mut c = a.clone();
        c[1].function = Some("other".into());
        assert_ne!(of_stack("malloc", &a), of_stack("malloc", &c));
        let mut d = a.clone();
        d[0].file = Some("/home/u/proj/q.c".into());
        assert_ne!(of_stack("malloc", &a), of_stack("malloc", &d));
    }

    #[test]
    fn rust_hashes_are_ignored() {
        let a = vec![f(0x5555_0000_1000, "prog::make::h0123456789abcdef", "/p/src/main.rs", 3)];
        let b = vec![f(0x5555_0000_1000, "prog::make::hfedcba9876543210", "/p/src/main.rs", 3)];
        assert_eq!(of_stack("malloc", &a), of_stack("malloc", &b));
        assert_eq!(strip_rust_hash("a::hx"), "a::hx");
    }

    #[test]
    fn frames_past_the_second_user_frame_do_not_count() {
        let lib = |a| Frame {
            module: Some("/usr/lib/x86_64-linux-gnu/libc.so.6".into()),
            ..f(a, "__strdup", "./string/strdup.c", 42)
        };
        let base = vec![
            lib(0x7f00_0000_0000),
            f(0x5555_0000_1000, "make", "/p/p.c", 10),
            f(0x5555_0000_2000, "build", "/p/p.c", 20),
            f(0x5555_0000_3000, "main", "/p/p.c", 30),
            f(0x5555_0000_4000, "start", "/p/p.c", 40),
        ];
        assert!(!is_user_frame(&base[0]) && is_user_frame(&base[1]));
        let mut deeper = base.clone();
        deeper[4].function = Some("other_start".into());
        assert_eq!(
            of_stack("malloc", &base),
            of_stack("malloc", &deeper),
            "frame 4 is past 2 user frames and MIN_FRAMES"
        );
        let mut caller = base.clone();
        caller[2].function = Some("build2".into());
        assert_ne!(of_stack("malloc", &base), of_stack("malloc", &caller), "the second user frame counts");
    }

    #[test]
    fn equal_hashes_in_one_process_are_numbered_by_line() {
        let s = |l1, l2| vec![f(0x5555_0000_1000, "make", "/p/p.c", l1), f(0x5555_0000_2000, "main", "/p/p.c", l2)];
        let mut leaks = vec![
            leak(Allocator::Malloc, s(12, 30)),
            leak(Allocator::Malloc, s(10, 30)),
            leak(Allocator::New, s(10, 30)),
        ];
        assign(&mut leaks);
        let h = of_stack("malloc", &s(1, 1));
        assert_eq!(leaks[1].fingerprint, h);
        assert_eq!(leaks[0].fingerprint, format!("{h}-2"));
        assert_eq!(leaks[2].fingerprint, of_stack("new", &s(1, 1)));
    }
}
