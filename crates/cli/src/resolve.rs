//! Finding PROG like execvp does, and refusing, before anything is spawned,
//! programs that the preload library could not get into.

use crate::elf::{self, ExeKind};
use crate::fail::{Fail, CANNOT_TRACE, NOT_FOUND};
use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// glibc's execvp search path when PATH is unset.
const DEFAULT_PATH: &str = "/bin:/usr/bin";
/// How many `#!` interpreters deep to follow (the kernel allows a few).
const MAX_SCRIPT_DEPTH: usize = 4;

/// Resolves `prog` (PATH search when it has no '/') and checks that it can be traced.
pub fn resolve_and_check(prog: &OsStr) -> Result<PathBuf, Fail> {
    let path = resolve(prog, std::env::var_os("PATH").as_deref())?;
    check(&path, 0)?;
    Ok(path)
}

/// The file execvp would run for `prog`, given PATH.
pub fn resolve(prog: &OsStr, path_var: Option<&OsStr>) -> Result<PathBuf, Fail> {
    let shown = prog.to_string_lossy();
    if prog.is_empty() {
        return Err(Fail::new(NOT_FOUND, "the program name is empty"));
    }
    if prog.as_bytes().contains(&b'/') {
        return Ok(PathBuf::from(prog));
    }
    let path_var = path_var.unwrap_or(OsStr::new(DEFAULT_PATH));
    // Like execvp: the first executable file wins; a non-executable one found
    // on the way is what we complain about if nothing better turns up.
    let mut not_executable: Option<PathBuf> = None;
    for dir in path_var.as_bytes().split(|&c| c == b':') {
        let dir = if dir.is_empty() { Path::new(".") } else { Path::new(OsStr::from_bytes(dir)) };
        let candidate = dir.join(prog);
        let Ok(meta) = std::fs::metadata(&candidate) else { continue };
        if !meta.is_file() {
            continue;
        }
        if is_executable(&candidate) {
            return Ok(candidate);
        }
        not_executable.get_or_insert(candidate);
    }
    match not_executable {
        Some(p) => Ok(p), // check() explains why it cannot run
        None => Err(Fail::new(NOT_FOUND, format!("{shown}: command not found in PATH"))),
    }
}

/// Refuses what exec would refuse, and what it would run without our preload library.
pub fn check(path: &Path, depth: usize) -> Result<(), Fail> {
    let shown = path.display();
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Fail::new(NOT_FOUND, format!("{shown}: no such file")));
        }
        Err(e) => return Err(Fail::new(CANNOT_TRACE, format!("{shown}: {e}"))),
    };
    if meta.is_dir() {
        return Err(Fail::new(CANNOT_TRACE, format!("{shown} is a directory, not a program")));
    }
    if !meta.is_file() {
        return Err(Fail::new(CANNOT_TRACE, format!("{shown} is not a regular file")));
    }
    if !is_executable(path) {
        return Err(Fail::new(
            CANNOT_TRACE,
            format!("{shown} is not executable (mode {:04o})", meta.permissions().mode() & 0o7777),
        ));
    }
    check_set_id(path, &meta)?;
    match elf::classify(path) {
        Err(e) => Err(Fail::new(CANNOT_TRACE, format!("cannot read {shown}: {e}"))),
        Ok(ExeKind::Static) => Err(Fail::new(
            CANNOT_TRACE,
            format!("{shown} is statically linked; leakscope's preload library cannot be loaded into it"),
        )),
        Ok(ExeKind::Script(interp)) => {
            if depth >= MAX_SCRIPT_DEPTH {
                return Err(Fail::new(CANNOT_TRACE, format!("{shown}: too many levels of #! interpreters")));
            }
            check(&interp, depth + 1).map_err(|f| {
                Fail::new(f.status, format!("{shown} is a script for {}, and {}", interp.display(), f.message))
            })
        }
        Ok(ExeKind::Dynamic | ExeKind::Loader | ExeKind::Other) => Ok(()),
    }
}

/// Set-user/group-ID programs run in secure-execution mode, where the loader
/// ignores LD_PRELOAD entries with a '/' (ours): refuse them unless the IDs
/// would not change (or the file system ignores the bits).
fn check_set_id(path: &Path, meta: &std::fs::Metadata) -> Result<(), Fail> {
    let mode = meta.mode();
    let setuid = mode & libc::S_ISUID != 0;
    let setgid = mode & libc::S_ISGID != 0 && mode & libc::S_IXGRP != 0;
    if !setuid && !setgid {
        return Ok(());
    }
    if mounted_nosuid(path) {
        return Ok(());
    }
    // SAFETY: getuid/getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let shown = path.display();
    if setuid && meta.uid() != uid {
        return Err(Fail::new(
            CANNOT_TRACE,
            format!(
                "{shown} is setuid (owner uid {}, you are uid {uid}): the dynamic loader ignores \
                 LD_PRELOAD for it, so leakscope cannot trace it (run a copy without the setuid bit)",
                meta.uid()
            ),
        ));
    }
    if setgid && meta.gid() != gid {
        return Err(Fail::new(
            CANNOT_TRACE,
            format!(
                "{shown} is setgid (group gid {}, your gid is {gid}): the dynamic loader ignores \
                 LD_PRELOAD for it, so leakscope cannot trace it (run a copy without the setgid bit)",
                meta.gid()
            ),
        ));
    }
    Ok(())
}

fn mounted_nosuid(path: &Path) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else { return false };
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is NUL-terminated, st is a valid out pointer.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    rc == 0 && st.f_flag & libc::ST_NOSUID != 0
}

/// Whether exec would be allowed for the caller (access(X_OK); for root, some x bit set).
fn is_executable(path: &Path) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else { return false };
    // SAFETY: c is NUL-terminated.
    unsafe { libc::access(c.as_ptr(), libc::X_OK) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::process::Command;

    fn write_exe(path: &Path, content: &str, mode: u32) {
        std::fs::write(path, content).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn missing_program_is_not_found() {
        let f = resolve_and_check(OsStr::new("/nonexistent/leakscope-test-prog")).unwrap_err();
        assert_eq!(f.status, NOT_FOUND);
        assert!(f.message.contains("no such file"), "{}", f.message);
        let f = resolve(OsStr::new("leakscope-no-such-command"), Some(OsStr::new("/usr/bin:/bin"))).unwrap_err();
        assert_eq!(f.status, NOT_FOUND);
        assert!(f.message.contains("command not found"), "{}", f.message);
    }

    #[test]
    fn path_search_finds_the_first_executable_and_skips_directories() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir_all(a.join("prog")).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        write_exe(&b.join("prog"), "#!/bin/sh\n", 0o755);
        let path_var = format!("{}:{}", a.display(), b.display());
        assert_eq!(resolve(OsStr::new("prog"), Some(OsStr::new(&path_var))).unwrap(), b.join("prog"));
        assert_eq!(resolve(OsStr::new("sh"), None).unwrap(), Path::new("/bin/sh"));
        // Only a non-executable candidate: chosen, so that check() can say why.
        write_exe(&a.join("other"), "x", 0o644);
        let p = resolve(OsStr::new("other"), Some(OsStr::new(&path_var))).unwrap();
        assert_eq!(check(&p, 0).unwrap_err().status, CANNOT_TRACE);
    }

    #[test]
    fn directories_and_non_executables_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = check(dir.path(), 0).unwrap_err();
        assert_eq!(f.status, CANNOT_TRACE);
        assert!(f.message.contains("is a directory"), "{}", f.message);
        let p = dir.path().join("data");
        write_exe(&p, "#!/bin/sh\n", 0o644);
        let f = check(&p, 0).unwrap_err();
        assert!(f.message.contains("is not executable (mode 0644)"), "{}", f.message);
    }

    #[test]
    fn dynamic_programs_and_scripts_are_accepted() {
        check(Path::new("/bin/sh"), 0).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("script");
        write_exe(&p, "#!/bin/sh\necho hi\n", 0o755);
        check(&p, 0).unwrap();
        write_exe(&p, "#!/nonexistent/interp\n", 0o755);
        let f = check(&p, 0).unwrap_err();
        assert!(f.message.contains("is a script for /nonexistent/interp"), "{}", f.message);
    }

    fn static_binary(dir: &Path) -> Option<PathBuf> {
        let libc_a = ["/usr/lib/x86_64-linux-gnu/libc.a", "/usr/lib/aarch64-linux-gnu/libc.a", "/usr/lib/libc.a", "/usr/lib64/libc.a"];
        if !libc_a.iter().any(|p| Path::new(p).exists()) {
            eprintln!("skipped: no libc.a, so `gcc -static` cannot build a static binary here");
            return None;
        }
        let src = dir.join("s.c");
        std::fs::write(&src, "int main(void) { return 0; }\n").unwrap();
        let exe = dir.join("static-prog");
        match Command::new("gcc").arg("-static").arg("-o").arg(&exe).arg(&src).status() {
            Ok(s) if s.success() => Some(exe),
            other => {
                eprintln!("skipped: `gcc -static` failed ({other:?})");
                None
            }
        }
    }

    #[test]
    fn static_programs_are_refused_also_as_script_interpreters() {
        let dir = tempfile::tempdir().unwrap();
        let Some(exe) = static_binary(dir.path()) else { return };
        let f = check(&exe, 0).unwrap_err();
        assert_eq!(f.status, CANNOT_TRACE);
        assert!(
            f.message.ends_with("is statically linked; leakscope's preload library cannot be loaded into it"),
            "{}",
            f.message
        );
        let script = dir.path().join("script");
        write_exe(&script, &format!("#!{}\n", exe.display()), 0o755);
        let f = check(&script, 0).unwrap_err();
        assert!(f.message.contains("is a script for") && f.message.contains("statically linked"), "{}", f.message);
    }

    #[test]
    fn setuid_and_setgid_programs_of_others_are_refused() {
        // SAFETY: getuid cannot fail.
        if unsafe { libc::getuid() } != 0 {
            eprintln!("skipped: needs root to chown a file to another user");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        if mounted_nosuid(dir.path()) {
            eprintln!("skipped: the temporary directory is on a nosuid file system");
            return;
        }
        let exe = dir.path().join("suid-sh");
        std::fs::copy("/bin/sh", &exe).unwrap();
        let c = CString::new(exe.as_os_str().as_bytes()).unwrap();
        // SAFETY: c is NUL-terminated.
        assert_eq!(unsafe { libc::chown(c.as_ptr(), 65534, 65534) }, 0);
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o4755)).unwrap();
        let f = check(&exe, 0).unwrap_err();
        assert_eq!(f.status, CANNOT_TRACE);
        assert!(f.message.contains("is setuid (owner uid 65534, you are uid 0)"), "{}", f.message);
        assert!(f.message.contains("ignores LD_PRELOAD"), "{}", f.message);
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o2755)).unwrap();
        let f = check(&exe, 0).unwrap_err();
        assert!(f.message.contains("is setgid (group gid 65534, your gid is 0)"), "{}", f.message);
        // Our own setuid program: the IDs do not change, the loader honours LD_PRELOAD.
        // SAFETY: as above.
        assert_eq!(unsafe { libc::chown(c.as_ptr(), 0, 0) }, 0);
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o6755)).unwrap();
        check(&exe, 0).unwrap();
    }
}
