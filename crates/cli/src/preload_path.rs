//! Finding libleakscope_preload.so next to the leakscope executable.

use crate::fail::{Fail, FAILURE};
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

pub const LIB_NAME: &str = "libleakscope_preload.so";
/// Development override: the library to preload instead of the installed one.
pub const OVERRIDE_ENV: &str = "LEAKSCOPE_PRELOAD";

/// The preload library for this leakscope executable.
pub fn find() -> Result<PathBuf, Fail> {
    let exe = std::env::current_exe()
        .map_err(|e| Fail::new(FAILURE, format!("cannot tell where the leakscope executable is: {e}")))?;
    let dir = exe.parent().unwrap_or(Path::new("/"));
    find_from(dir, std::env::var_os(OVERRIDE_ENV))
}

/// The library to preload, looked for beside `exe_dir`, then in
/// `exe_dir/../lib/leakscope/`, unless `override_path` names one.
pub fn find_from(exe_dir: &Path, override_path: Option<OsString>) -> Result<PathBuf, Fail> {
    if let Some(p) = override_path.filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        if !p.is_file() {
            return Err(Fail::new(
                FAILURE,
                format!("{OVERRIDE_ENV}={} does not name a file", p.display()),
            ));
        }
        return usable(&p);
    }
    let candidates = [exe_dir.join(LIB_NAME), exe_dir.join("../lib/leakscope").join(LIB_NAME)];
    for c in &candidates {
        if c.is_file() {
            return usable(c);
        }
    }
    Err(Fail::new(
        FAILURE,
        format!(
            "cannot find {LIB_NAME} (looked for {} and {}); build it with `cargo build` at the \
             leakscope workspace root, which builds the leakscope executable and the preload library side by side",
            candidates[0].display(),
            candidates[1].display()
        ),
    ))
}

/// An absolute path the loader can take from LD_PRELOAD, which splits on ':' and ' '.
fn usable(p: &Path) -> Result<PathBuf, Fail> {
    let abs = p
        .canonicalize()
        .map_err(|e| Fail::new(FAILURE, format!("cannot use {}: {e}", p.display())))?;
    if abs.as_os_str().as_bytes().iter().any(|&c| c == b':' || c == b' ' || c == b'\t' || c == b'\n') {
        return Err(Fail::new(
            FAILURE,
            format!(
                "the preload library's path {} contains a space or ':', which LD_PRELOAD cannot carry; \
                 install leakscope elsewhere",
                abs.display()
            ),
        ));
    }
    Ok(abs)
}

/// LD_PRELOAD for the child: our library first, then whatever was there.
pub fn ld_preload_value(lib: &Path, existing: Option<OsString>) -> OsString {
    let mut v = lib.as_os_str().to_os_string();
    if let Some(e) = existing.filter(|e| !e.is_empty()) {
        v.push(":");
        v.push(e);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_beside_the_executable_then_in_lib_leakscope() {
        let root = tempfile::tempdir().unwrap();
        let bin = root.path().join("bin");
        let lib = root.path().join("lib/leakscope");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(&lib).unwrap();
        let f = find_from(&bin, None).unwrap_err();
        assert!(f.message.contains("cargo build"), "{}", f.message);
        std::fs::write(lib.join(LIB_NAME), b"").unwrap();
        assert_eq!(find_from(&bin, None).unwrap(), lib.join(LIB_NAME).canonicalize().unwrap());
        std::fs::write(bin.join(LIB_NAME), b"").unwrap();
        assert_eq!(find_from(&bin, None).unwrap(), bin.join(LIB_NAME).canonicalize().unwrap());
    }

    #[test]
    fn the_override_wins_and_must_exist() {
        let root = tempfile::tempdir().unwrap();
        let other = root.path().join("other.so");
        let f = find_from(root.path(), Some(other.clone().into())).unwrap_err();
        assert!(f.message.contains("LEAKSCOPE_PRELOAD="), "{}", f.message);
        std::fs::write(&other, b"").unwrap();
        assert_eq!(find_from(root.path(), Some(other.clone().into())).unwrap(), other.canonicalize().unwrap());
        // Empty means unset.
        assert!(find_from(root.path(), Some(OsString::new())).is_err());
    }

    #[test]
    fn paths_ld_preload_cannot_carry_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let odd = root.path().join("a b");
        std::fs::create_dir_all(&odd).unwrap();
        std::fs::write(odd.join(LIB_NAME), b"").unwrap();
        assert!(find_from(&odd, None).unwrap_err().message.contains("LD_PRELOAD cannot carry"));
    }

    #[test]
    fn ld_preload_is_prepended() {
        let lib = Path::new("/x/libleakscope_preload.so");
        assert_eq!(ld_preload_value(lib, None), "/x/libleakscope_preload.so");
        assert_eq!(ld_preload_value(lib, Some("".into())), "/x/libleakscope_preload.so");
        assert_eq!(ld_preload_value(lib, Some("/y/a.so /z/b.so".into())), "/x/libleakscope_preload.so:/y/a.so /z/b.so");
    }
}
