//! What `leakscope mtrace` needs to know about an ELF file to place an
//! mtrace caller in it: its loadable segments, build id, and the value of a
//! named symbol. 64-bit little-endian files only (x86_64); anything else
//! reads as "not an ELF file we know".

use std::path::Path;

const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
const PF_X: u32 = 1;
const SHT_SYMTAB: u32 = 2;
const SHT_DYNSYM: u32 = 11;
const NT_GNU_BUILD_ID: u32 = 3;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub vaddr: u64,
    pub memsz: u64,
    pub exec: bool,
}

#[derive(Debug, Clone)]
pub struct ElfFile {
    pub segments: Vec<Segment>,
    pub build_id: Vec<u8>,
    data: Vec<u8>,
}

fn u16_at(d: &[u8], o: u64) -> Option<u16> {
    let o = usize::try_from(o).ok()?;
    Some(u16::from_le_bytes(d.get(o..o.checked_add(2)?)?.try_into().ok()?))
}

fn u32_at(d: &[u8], o: u64) -> Option<u32> {
    let o = usize::try_from(o).ok()?;
    Some(u32::from_le_bytes(d.get(o..o.checked_add(4)?)?.try_into().ok()?))
}

fn u64_at(d: &[u8], o: u64) -> Option<u64> {
    let o = usize::try_from(o).ok()?;
    Some(u64::from_le_bytes(d.get(o..o.checked_add(8)?)?.try_into().ok()?))
}

impl ElfFile {
    pub fn read(path: &Path) -> Option<ElfFile> {
        Self::parse(std::fs::read(path).ok()?)
    }

    pub fn parse(data: Vec<u8>) -> Option<ElfFile> {
        // Magic, ELFCLASS64, ELFDATA2LSB.
        if data.len() < 64 || data[..4] != *b"\x7fELF" || data[4] != 2 || data[5] != 1 {
            return None;
        }
        let phoff = u64_at(&data, 32)?;
        let phentsize = u16_at(&data, 54)? as u64;
        let phnum = u16_at(&data, 56)? as u64;
        let mut segments = Vec::new();
        let mut build_id = Vec::new();
        for i in 0..phnum.min(4096) {
            let ph = phoff.checked_add(i.checked_mul(phentsize)?)?;
            let p_type = u32_at(&data, ph)?;
            let flags = u32_at(&data, ph + 4)?;
            let offset = u64_at(&data, ph + 8)?;
            let vaddr = u64_at(&data, ph + 16)?;
            let filesz = u64_at(&data, ph + 32)?;
            let memsz = u64_at(&data, ph + 40)?;
            match p_type {
                PT_LOAD => segments.push(Segment { vaddr, memsz, exec: flags & PF_X != 0 }),
                PT_NOTE if build_id.is_empty() => build_id = note_build_id(&data, offset, filesz).unwrap_or_default(),
                _ => {}
            }
        }
        if segments.is_empty() {
            return None;
        }
        Some(ElfFile { segments, build_id, data })
    }

    /// The virtual address where the first segment's mapping starts (page aligned):
    /// what glibc's `l_map_start` is relative to.
    pub fn map_start(&self) -> u64 {
        self.segments.iter().map(|s| s.vaddr).min().unwrap_or(0) & !0xfff
    }

    /// The virtual address range all segments cover.
    pub fn range(&self) -> (u64, u64) {
        let lo = self.map_start();
        let hi = self.segments.iter().map(|s| s.vaddr.saturating_add(s.memsz)).max().unwrap_or(lo);
        (lo, hi)
    }

    pub fn in_code(&self, vaddr: u64) -> bool {
        self.segments.iter().any(|s| s.exec && vaddr >= s.vaddr && vaddr < s.vaddr.saturating_add(s.memsz))
    }

    /// The value of the defined symbol `name` (symbol table, then dynamic symbols).
    pub fn symbol(&self, name: &str) -> Option<u64> {
        let d = &self.data;
        let shoff = u64_at(d, 40)?;
        let shentsize = u16_at(d, 58)? as u64;
        let shnum = u16_at(d, 60)? as u64;
        let section = |i: u64| -> Option<(u32, u64, u64, u32, u64)> {
            let sh = shoff.checked_add(i.checked_mul(shentsize)?)?;
            // (type, offset, size, link, entsize)
            Some((u32_at(d, sh + 4)?, u64_at(d, sh + 24)?, u64_at(d, sh + 32)?, u32_at(d, sh + 40)?, u64_at(d, sh + 56)?))
        };
        for wanted in [SHT_SYMTAB, SHT_DYNSYM] {
            for i in 0..shnum.min(65536) {
                let Some((ty, off, size, link, entsize)) = section(i) else { continue };
                if ty != wanted || entsize < 24 {
                    continue;
                }
                let Some((_, str_off, str_size, _, _)) = section(link as u64) else { continue };
                for k in 0..size / entsize {
                    let sym = off + k * entsize;
                    let Some(name_off) = u32_at(d, sym) else { break };
                    let shndx = u16_at(d, sym + 6).unwrap_or(0);
                    if shndx == 0 || name_off as u64 >= str_size {
                        continue;
                    }
                    let start = (str_off + name_off as u64) as usize;
                    let Some(rest) = d.get(start..) else { continue };
                    let end = rest.iter().position(|&c| c == 0).unwrap_or(rest.len());
                    if &rest[..end] == name.as_bytes() {
                        return u64_at(d, sym + 8);
                    }
                }
            }
        }
        None
    }
}

fn note_build_id(d: &[u8], offset: u64, size: u64) -> Option<Vec<u8>> {
    let mut at = offset;
    let end = offset.checked_add(size)?;
    while at + 12 <= end {
        let namesz = u32_at(d, at)? as u64;
        let descsz = u32_at(d, at + 4)? as u64;
        let ty = u32_at(d, at + 8)?;
        let name_at = at + 12;
        let desc_at = name_at + namesz.next_multiple_of(4);
        if ty == NT_GNU_BUILD_ID && namesz == 4 && d.get(name_at as usize..name_at as usize + 4)? == b"GNU\0" {
            return Some(d.get(desc_at as usize..(desc_at + descsz) as usize)?.to_vec());
        }
        at = desc_at + descsz.next_multiple_of(4);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_test_binary() {
        let exe = std::env::current_exe().unwrap();
        let elf = ElfFile::read(&exe).expect("the test binary is an ELF file");
        assert!(elf.segments.iter().any(|s| s.exec));
        let (lo, hi) = elf.range();
        assert!(lo < hi);
        assert!(!elf.build_id.is_empty(), "rustc links with a build id");
        let main = elf.symbol("main").expect("main is in the symbol table");
        assert!(elf.in_code(main), "{main:#x}");
        assert_eq!(elf.symbol("no such symbol, surely"), None);
    }

    #[test]
    fn garbage_is_not_elf() {
        assert!(ElfFile::parse(b"hello".to_vec()).is_none());
        assert!(ElfFile::parse(vec![0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).is_none());
        let mut junk = vec![0u8; 200];
        junk[..6].copy_from_slice(b"\x7fELF\x02\x01");
        junk[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
        junk[56] = 10;
        assert!(ElfFile::parse(junk).is_none());
    }
}
