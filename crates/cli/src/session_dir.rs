//! The per-run session directory the preload writes its files into.
//! Removed when the [`SessionDir`] is dropped, so also on error paths.

use anyhow::{Context, Result};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

const SHM: &str = "/dev/shm";

pub struct SessionDir {
    path: PathBuf,
    removed: bool,
}

impl SessionDir {
    /// Creates `/dev/shm/leakscope-<pid>-<random>` (mode 0700), or the same
    /// under the temporary directory when /dev/shm is not a writable directory.
    pub fn create() -> Result<SessionDir> {
        let shm = Path::new(SHM);
        let parent = if is_writable_dir(shm) { shm.to_path_buf() } else { std::env::temp_dir() };
        Self::create_in(&parent)
    }

    pub fn create_in(parent: &Path) -> Result<SessionDir> {
        let mut last_err = None;
        for _ in 0..16 {
            let path = parent.join(format!("leakscope-{}-{:016x}", std::process::id(), random_u64()));
            match std::fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => return Ok(SessionDir { path, removed: false }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last_err = Some(e),
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot create a session directory in {}", parent.display()))
                }
            }
        }
        Err(last_err.unwrap()).with_context(|| format!("cannot create a session directory in {}", parent.display()))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the directory and everything in it now.
    pub fn remove(&mut self) -> std::io::Result<()> {
        if self.removed {
            return Ok(());
        }
        self.removed = true;
        match std::fs::remove_dir_all(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

impl Drop for SessionDir {
    fn drop(&mut self) {
        let _ = self.remove();
    }
}

fn is_writable_dir(p: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    if !p.is_dir() {
        return false;
    }
    let Ok(c) = std::ffi::CString::new(p.as_os_str().as_bytes()) else { return false };
    // SAFETY: c is NUL-terminated.
    unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) == 0 }
}

fn random_u64() -> u64 {
    let mut v = 0u64;
    // SAFETY: writes at most 8 bytes into v.
    let n = unsafe { libc::getrandom((&mut v as *mut u64).cast(), 8, 0) };
    if n != 8 {
        // Fall back on the clock; uniqueness is still ensured by create()'s retry.
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        v = t.as_nanos() as u64 ^ (std::process::id() as u64) << 32;
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn is_private_and_removed_on_drop() {
        let d = SessionDir::create().unwrap();
        let p = d.path().to_path_buf();
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        assert!(name.starts_with(&format!("leakscope-{}-", std::process::id())), "{name}");
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o700);
        std::fs::write(p.join("proc-1-0.lsm"), b"x").unwrap();
        drop(d);
        assert!(!p.exists());
    }

    #[test]
    fn two_sessions_get_two_directories() {
        let parent = tempfile::tempdir().unwrap();
        let a = SessionDir::create_in(parent.path()).unwrap();
        let b = SessionDir::create_in(parent.path()).unwrap();
        assert_ne!(a.path(), b.path());
    }
}
