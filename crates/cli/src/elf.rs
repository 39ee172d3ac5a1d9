//! Just enough ELF reading to tell whether the dynamic loader will run for an
//! executable (it has a PT_INTERP program header), and what a `#!` script's
//! interpreter is.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const PT_INTERP: u32 = 3;
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;

/// What kind of executable a file is, as far as loading goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExeKind {
    /// An ELF executable that names a dynamic loader (PT_INTERP).
    Dynamic,
    /// An ELF executable without PT_INTERP: nothing will load a preload library.
    Static,
    /// An ELF without PT_INTERP that is itself a dynamic loader (`ld-linux*.so*`).
    Loader,
    /// A `#!` script run by this interpreter.
    Script(PathBuf),
    /// Anything else (other ELF types, damaged ELF, no magic): left to exec to judge.
    Other,
}

pub fn classify(path: &Path) -> std::io::Result<ExeKind> {
    let mut f = File::open(path)?;
    let mut head = [0u8; 256];
    let n = read_up_to(&mut f, &mut head)?;
    let head = &head[..n];
    if head.starts_with(b"#!") {
        return Ok(shebang_interpreter(head).map_or(ExeKind::Other, ExeKind::Script));
    }
    if !head.starts_with(b"\x7fELF") {
        return Ok(ExeKind::Other);
    }
    Ok(match has_interp(&f, head) {
        Some((true, _)) => ExeKind::Dynamic,
        Some((false, _)) if is_loader_name(path) => ExeKind::Loader,
        Some((false, _)) => ExeKind::Static,
        None => ExeKind::Other,
    })
}

fn read_up_to(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The interpreter of a `#!` line (its first word), if any.
fn shebang_interpreter(head: &[u8]) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let line = &head[2..];
    let line = &line[..line.iter().position(|&c| c == b'\n').unwrap_or(line.len())];
    let word: &[u8] = line
        .split(|c| *c == b' ' || *c == b'\t')
        .find(|w| !w.is_empty())?;
    Some(PathBuf::from(std::ffi::OsStr::from_bytes(word)))
}

fn is_loader_name(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.starts_with("ld-linux") || name.starts_with("ld.so") || name.starts_with("ld64.so") || name.starts_with("ld-musl")
}

/// (whether a PT_INTERP header exists, e_type) for an executable ELF type,
/// None when the file is not an executable ELF or cannot be read as one.
fn has_interp(f: &File, head: &[u8]) -> Option<(bool, u16)> {
    let class64 = match head.get(4)? {
        1 => false,
        2 => true,
        _ => return None,
    };
    let le = match head.get(5)? {
        1 => true,
        2 => false,
        _ => return None,
    };
    let u16_at = |b: &[u8], o: usize| -> Option<u16> {
        let b: [u8; 2] = b.get(o..o + 2)?.try_into().ok()?;
        Some(if le { u16::from_le_bytes(b) } else { u16::from_be_bytes(b) })
    };
    let u32_at = |b: &[u8], o: usize| -> Option<u32> {
        let b: [u8; 4] = b.get(o..o + 4)?.try_into().ok()?;
        Some(if le { u32::from_le_bytes(b) } else { u32::from_be_bytes(b) })
    };
    let u64_at = |b: &[u8], o: usize| -> Option<u64> {
        let b: [u8; 8] = b.get(o..o + 8)?.try_into().ok()?;
        Some(if le { u64::from_le_bytes(b) } else { u64::from_be_bytes(b) })
    };
    let e_type = u16_at(head, 16)?;
    if e_type != ET_EXEC && e_type != ET_DYN {
        return None;
    }
    let (phoff, phentsize, phnum) = if class64 {
        (u64_at(head, 32)?, u16_at(head, 54)?, u16_at(head, 56)?)
    } else {
        (u32_at(head, 28)? as u64, u16_at(head, 42)?, u16_at(head, 44)?)
    };
    if phentsize < 4 || phnum == 0 || phnum == 0xffff {
        return None;
    }
    let mut table = vec![0u8; phentsize as usize * phnum as usize];
    f.read_exact_at(&mut table, phoff).ok()?;
    let interp = table.chunks_exact(phentsize as usize).any(|ph| u32_at(ph, 0) == Some(PT_INTERP));
    Some((interp, e_type))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_binaries_are_dynamic() {
        assert_eq!(classify(Path::new("/bin/sh")).unwrap(), ExeKind::Dynamic);
    }

    #[test]
    fn scripts_name_their_interpreter() {
        let dir = tempfile::tempdir().unwrap();
        let s = dir.path().join("s");
        std::fs::write(&s, "#!  /bin/sh -e\necho hi\n").unwrap();
        assert_eq!(classify(&s).unwrap(), ExeKind::Script("/bin/sh".into()));
        std::fs::write(&s, "plain text").unwrap();
        assert_eq!(classify(&s).unwrap(), ExeKind::Other);
        // A truncated ELF is left to exec.
        std::fs::write(&s, b"\x7fELF\x02\x01\x01").unwrap();
        assert_eq!(classify(&s).unwrap(), ExeKind::Other);
    }
}
