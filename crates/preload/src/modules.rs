//! The loaded modules: enumerated with `dl_iterate_phdr`, recorded in the
//! session file (for symbolisation after the fact) and turned into framehop
//! modules (for unwinding).
//!
//! `dl_iterate_phdr` takes the loader's lock, so it is never called while a
//! leakscope lock is held: a thread inside `dlopen` may be calling `malloc`.

use crate::session;
use crate::spin;
use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering};
use framehop::x86_64::UnwinderX86_64;
use framehop::{ExplicitModuleSectionInfo, Module, MustNotAllocateDuringUnwind, Unwinder};
use leakscope_format::layout::{self, ModuleRecord};

pub type NativeUnwinder = UnwinderX86_64<&'static [u8], MustNotAllocateDuringUnwind>;

/// What stack walks need to know about the loaded modules, published as one unit.
pub struct Known {
    pub unwinder: NativeUnwinder,
    /// Address ranges of the modules, sorted: framehop silently falls back to
    /// frame pointers for code outside them, so walks check for that themselves.
    ranges: Vec<(u64, u64)>,
}

impl Known {
    /// Whether `addr` lies in a module we know.
    #[inline]
    pub fn contains(&self, addr: u64) -> bool {
        let i = self.ranges.partition_point(|&(lo, _)| lo <= addr);
        i > 0 && addr < self.ranges[i - 1].1
    }
}

/// The current unwinder and module ranges. Replaced (never mutated) when modules
/// change; old ones are leaked on purpose, so a thread still using one is never hurt.
static KNOWN: AtomicPtr<Known> = AtomicPtr::new(core::ptr::null_mut());
static REFRESH_LOCK: AtomicU32 = AtomicU32::new(0);
/// `dlpi_adds + dlpi_subs` when the module list was last read.
static LOADER_GENERATION: AtomicU64 = AtomicU64::new(u64::MAX);
/// leakscope's own code range.
static SELF_LO: AtomicU64 = AtomicU64::new(0);
static SELF_HI: AtomicU64 = AtomicU64::new(0);

struct ModInfo {
    path: Vec<u8>,
    base: u64,
    lo: u64,
    hi: u64,
    text: core::ops::Range<u64>,
    eh_frame_hdr: Option<core::ops::Range<u64>>,
    eh_frame: Option<core::ops::Range<u64>>,
    build_id: Vec<u8>,
}

/// Modules already written to the session file, keyed by (base, lo, path).
struct Recorded {
    key: (u64, u64, Vec<u8>),
    record_off: u64,
    present: bool,
}

static mut RECORDED: Vec<Recorded> = Vec::new();

#[inline]
pub fn known() -> Option<&'static Known> {
    let p = KNOWN.load(Ordering::Acquire);
    (!p.is_null()).then(|| unsafe { &*p })
}

#[inline]
pub fn is_self(addr: u64) -> bool {
    addr >= SELF_LO.load(Ordering::Relaxed) && addr < SELF_HI.load(Ordering::Relaxed)
}

pub fn self_range() -> (u64, u64) {
    (SELF_LO.load(Ordering::Relaxed), SELF_HI.load(Ordering::Relaxed))
}

unsafe extern "C" fn generation_cb(info: *mut libc::dl_phdr_info, _size: usize, data: *mut libc::c_void) -> i32 {
    *(data as *mut u64) = (*info).dlpi_adds.wrapping_add((*info).dlpi_subs);
    1
}

fn loader_generation() -> u64 {
    let mut g = 0u64;
    unsafe { libc::dl_iterate_phdr(Some(generation_cb), &mut g as *mut u64 as *mut libc::c_void) };
    g
}

/// Re-read the module list if the loader changed it since the last read.
/// Returns whether anything changed. Must be called inside a hook guard.
pub fn refresh_if_changed() -> bool {
    let gen = loader_generation();
    if gen == LOADER_GENERATION.load(Ordering::Acquire) {
        return false;
    }
    let mods = collect();
    let _l = spin::lock(&REFRESH_LOCK);
    LOADER_GENERATION.store(gen, Ordering::Release);
    publish(mods);
    true
}

unsafe extern "C" fn collect_cb(info: *mut libc::dl_phdr_info, _size: usize, data: *mut libc::c_void) -> i32 {
    let out = &mut *(data as *mut Vec<ModInfo>);
    let info = &*info;
    let base = info.dlpi_addr;
    let phdrs = core::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize);
    let (mut lo, mut hi) = (u64::MAX, 0u64);
    let mut text = 0..0;
    let mut hdr = None;
    let mut build_id = Vec::new();
    for ph in phdrs {
        match ph.p_type {
            libc::PT_LOAD => {
                let start = base + ph.p_vaddr;
                let end = start + ph.p_memsz;
                lo = lo.min(start);
                hi = hi.max(end);
                if ph.p_flags & libc::PF_X != 0 {
                    text = start..end;
                }
            }
            libc::PT_GNU_EH_FRAME => hdr = Some(base + ph.p_vaddr..base + ph.p_vaddr + ph.p_memsz),
            libc::PT_NOTE => {
                if build_id.is_empty() {
                    build_id = find_build_id(base + ph.p_vaddr, ph.p_memsz);
                }
            }
            _ => {}
        }
    }
    if hi == 0 {
        return 0;
    }
    let eh_frame = hdr.as_ref().and_then(|h| {
        let start = eh_frame_from_hdr(h.start)?;
        // The header does not give .eh_frame's length: let it run to the end of its segment.
        let seg_end = phdrs
            .iter()
            .filter(|ph| ph.p_type == libc::PT_LOAD)
            .map(|ph| (base + ph.p_vaddr, base + ph.p_vaddr + ph.p_memsz))
            .find(|&(s, e)| start >= s && start < e)?
            .1;
        Some(start..seg_end)
    });
    let name = core::ffi::CStr::from_ptr(info.dlpi_name).to_bytes();
    let path = if name.is_empty() { self_exe() } else { name.to_vec() };
    out.push(ModInfo { path, base, lo, hi, text, eh_frame_hdr: hdr, eh_frame, build_id });
    0
}

fn self_exe() -> Vec<u8> {
    let mut buf = vec![0u8; 4096];
    let n = unsafe { libc::readlink(c"/proc/self/exe".as_ptr(), buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    buf.truncate(n.max(0) as usize);
    buf
}

/// Read an `NT_GNU_BUILD_ID` note from a mapped PT_NOTE segment.
unsafe fn find_build_id(at: u64, len: u64) -> Vec<u8> {
    let mut p = at;
    let end = at + len;
    while p + 12 <= end {
        let namesz = *(p as *const u32) as u64;
        let descsz = *((p + 4) as *const u32) as u64;
        let ntype = *((p + 8) as *const u32);
        let name_at = p + 12;
        let desc_at = name_at + namesz.next_multiple_of(4);
        let next = desc_at + descsz.next_multiple_of(4);
        if next > end {
            break;
        }
        if ntype == 3 && namesz == 4 && core::slice::from_raw_parts(name_at as *const u8, 4) == b"GNU\0" {
            let n = (descsz as usize).min(layout::MAX_BUILD_ID);
            return core::slice::from_raw_parts(desc_at as *const u8, n).to_vec();
        }
        p = next;
    }
    Vec::new()
}

/// Decode `eh_frame_ptr` from a mapped `.eh_frame_hdr` (DWARF pointer encoding).
unsafe fn eh_frame_from_hdr(hdr: u64) -> Option<u64> {
    let bytes = core::slice::from_raw_parts(hdr as *const u8, 4);
    if bytes[0] != 1 {
        return None;
    }
    let enc = bytes[1];
    let field = hdr + 4;
    let value: u64 = match enc & 0x0f {
        0x00 | 0x04 | 0x0c => *(field as *const u64),
        0x03 => *(field as *const u32) as u64,
        0x0b => *(field as *const i32) as i64 as u64,
        0x02 => *(field as *const u16) as u64,
        0x0a => *(field as *const i16) as i64 as u64,
        _ => return None,
    };
    match enc & 0x70 {
        0x00 => Some(value),
        0x10 => Some(field.wrapping_add(value)),
        0x30 => Some(hdr.wrapping_add(value)),
        _ => None,
    }
}

fn collect() -> Vec<ModInfo> {
    let mut mods: Vec<ModInfo> = Vec::with_capacity(64);
    unsafe { libc::dl_iterate_phdr(Some(collect_cb), &mut mods as *mut Vec<ModInfo> as *mut libc::c_void) };
    mods
}

unsafe fn mapped(r: &core::ops::Range<u64>) -> &'static [u8] {
    core::slice::from_raw_parts(r.start as *const u8, (r.end - r.start) as usize)
}

/// Record new modules, mark vanished ones unloaded, build and publish a new unwinder.
/// Called with REFRESH_LOCK held.
fn publish(mods: Vec<ModInfo>) {
    let recorded = unsafe { &mut *core::ptr::addr_of_mut!(RECORDED) };
    for r in recorded.iter_mut() {
        r.present = false;
    }
    let marker = publish as *const () as u64;
    let mut unwinder = NativeUnwinder::new();
    let mut ranges: Vec<(u64, u64)> = mods.iter().map(|m| (m.lo, m.hi)).collect();
    ranges.sort_unstable();
    for m in &mods {
        if marker >= m.lo && marker < m.hi {
            SELF_LO.store(m.lo, Ordering::Relaxed);
            SELF_HI.store(m.hi, Ordering::Relaxed);
        }
        let key = (m.base, m.lo, m.path.clone());
        match recorded.iter_mut().find(|r| r.key == key) {
            Some(r) => r.present = true,
            None => {
                if let Some(off) = write_record(m) {
                    recorded.push(Recorded { key, record_off: off, present: true });
                }
            }
        }
        let (Some(hdr), Some(eh)) = (&m.eh_frame_hdr, &m.eh_frame) else { continue };
        let svma = |r: &core::ops::Range<u64>| r.start - m.base..r.end - m.base;
        let info = ExplicitModuleSectionInfo {
            base_svma: 0,
            text_svma: (m.text.end > m.text.start).then(|| svma(&m.text)),
            text: (m.text.end > m.text.start).then(|| unsafe { mapped(&m.text) }),
            eh_frame_hdr_svma: Some(svma(hdr)),
            eh_frame_hdr: Some(unsafe { mapped(hdr) }),
            eh_frame_svma: Some(svma(eh)),
            eh_frame: Some(unsafe { mapped(eh) }),
            ..Default::default()
        };
        let name = String::from_utf8_lossy(&m.path).into_owned();
        unwinder.add_module(Module::new(name, m.lo..m.hi, m.base, info));
    }
    if session::is_mapped() {
        let seq = session::header().event_seq.fetch_add(1, Ordering::Relaxed) + 1;
        for r in recorded.iter().filter(|r| !r.present) {
            let rec = session::at::<ModuleRecord>(r.record_off);
            unsafe { (*rec).unloaded_seq.compare_exchange(0, seq, Ordering::Relaxed, Ordering::Relaxed).ok() };
        }
    }
    recorded.retain(|r| r.present);
    KNOWN.store(Box::into_raw(Box::new(Known { unwinder, ranges })), Ordering::Release);
}

fn write_record(m: &ModInfo) -> Option<u64> {
    if !session::is_mapped() {
        return None;
    }
    let path_off = session::carve(m.path.len() as u64, 8)?;
    unsafe { core::ptr::copy_nonoverlapping(m.path.as_ptr(), session::at::<u8>(path_off), m.path.len()) };
    let off = session::carve(core::mem::size_of::<ModuleRecord>() as u64, 8)?;
    let h = session::header();
    let rec = session::at::<ModuleRecord>(off);
    unsafe {
        (*rec).seq = h.event_seq.fetch_add(1, Ordering::Relaxed) + 1;
        (*rec).base = m.base;
        (*rec).lo = m.lo;
        (*rec).hi = m.hi;
        (*rec).path_off = path_off;
        (*rec).path_len = m.path.len() as u64;
        (*rec).build_id_len = m.build_id.len() as u32;
        (&mut (*rec).build_id)[..m.build_id.len()].copy_from_slice(&m.build_id);
        // Publish: the record is complete before it is reachable.
        let mut head = h.modules_head.load(Ordering::Acquire);
        loop {
            (*rec).next = head;
            match h.modules_head.compare_exchange_weak(head, off, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break,
                Err(now) => head = now,
            }
        }
    }
    Some(off)
}

pub fn lock_refresh() {
    spin::acquire_raw(&REFRESH_LOCK);
}

pub fn unlock_refresh() {
    spin::release_raw(&REFRESH_LOCK);
}
