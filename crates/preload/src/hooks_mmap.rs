//! Memory mappings and shared memory: mmap, mmap64, munmap, mremap, the SysV
//! calls (shmget, shmat, shmdt, shmctl), POSIX shm_open/shm_unlink and
//! memfd_create. Each is forwarded to the next definition; what the program
//! itself made is recorded with its stack in the region table (`regions`).
//!
//! What is never recorded: the loader's mappings and glibc's own (malloc's
//! large blocks, thread stacks, locale files) go through glibc-internal
//! aliases (`__mmap`) that never reach these exports; calls made while the
//! hook guard is set (leakscope itself, or an allocator such as jemalloc
//! mapping memory inside our malloc hook) are forwarded and only keep the
//! table truthful; leakscope's own mappings use raw system calls.

use crate::capture::{current_stack, Regs};
use crate::entry::{export_hook, export_hook6};
use crate::lifecycle::{mode, Mode};
use crate::regions;
use crate::session::PathBuf;
use core::sync::atomic::{AtomicUsize, Ordering};
use leakscope_format::layout::{map_kind, shm_event, RegionRecord, ShmEvent};
use libc::{c_char, c_int, c_uint, c_void, key_t, mode_t, off_t, size_t};

type MmapFn = unsafe extern "C" fn(*mut c_void, size_t, c_int, c_int, c_int, off_t) -> *mut c_void;
type MunmapFn = unsafe extern "C" fn(*mut c_void, size_t) -> c_int;
type MremapFn = unsafe extern "C" fn(*mut c_void, size_t, size_t, c_int, ...) -> *mut c_void;
type ShmgetFn = unsafe extern "C" fn(key_t, size_t, c_int) -> c_int;
type ShmatFn = unsafe extern "C" fn(c_int, *const c_void, c_int) -> *mut c_void;
type ShmdtFn = unsafe extern "C" fn(*const c_void) -> c_int;
type ShmctlFn = unsafe extern "C" fn(c_int, c_int, *mut libc::shmid_ds) -> c_int;
type ShmOpenFn = unsafe extern "C" fn(*const c_char, c_int, mode_t) -> c_int;
type ShmUnlinkFn = unsafe extern "C" fn(*const c_char) -> c_int;
type MemfdCreateFn = unsafe extern "C" fn(*const c_char, c_uint) -> c_int;

static MMAP: AtomicUsize = AtomicUsize::new(0);
static MUNMAP: AtomicUsize = AtomicUsize::new(0);
static MREMAP: AtomicUsize = AtomicUsize::new(0);
static SHMGET: AtomicUsize = AtomicUsize::new(0);
static SHMAT: AtomicUsize = AtomicUsize::new(0);
static SHMDT: AtomicUsize = AtomicUsize::new(0);
static SHMCTL: AtomicUsize = AtomicUsize::new(0);
static SHM_OPEN: AtomicUsize = AtomicUsize::new(0);
static SHM_UNLINK: AtomicUsize = AtomicUsize::new(0);
static MEMFD_CREATE: AtomicUsize = AtomicUsize::new(0);

fn next(slot: &AtomicUsize, name_nul: &[u8]) -> usize {
    let f = unsafe { libc::dlsym(libc::RTLD_NEXT, name_nul.as_ptr() as *const c_char) } as usize;
    slot.store(f, Ordering::Release);
    f
}

/// Resolve the next definitions (start-up, with the hook guard set). Until
/// then, and if one is missing, the mapping calls are made as raw system calls.
pub fn resolve() {
    next(&MMAP, b"mmap\0");
    next(&MUNMAP, b"munmap\0");
    next(&MREMAP, b"mremap\0");
    next(&SHMGET, b"shmget\0");
    next(&SHMAT, b"shmat\0");
    next(&SHMDT, b"shmdt\0");
    next(&SHMCTL, b"shmctl\0");
    next(&SHM_OPEN, b"shm_open\0");
    next(&SHM_UNLINK, b"shm_unlink\0");
    next(&MEMFD_CREATE, b"memfd_create\0");
}

#[inline]
fn get(slot: &AtomicUsize) -> usize {
    slot.load(Ordering::Acquire)
}

#[inline]
unsafe fn real_mmap(addr: *mut c_void, len: size_t, prot: c_int, flags: c_int, fd: c_int, off: off_t) -> *mut c_void {
    match get(&MMAP) {
        0 => libc::syscall(libc::SYS_mmap, addr, len, prot, flags, fd, off) as *mut c_void,
        f => core::mem::transmute::<usize, MmapFn>(f)(addr, len, prot, flags, fd, off),
    }
}

#[inline]
unsafe fn real_munmap(addr: *mut c_void, len: size_t) -> c_int {
    match get(&MUNMAP) {
        0 => libc::syscall(libc::SYS_munmap, addr, len) as c_int,
        f => core::mem::transmute::<usize, MunmapFn>(f)(addr, len),
    }
}

#[inline]
unsafe fn real_mremap(old: *mut c_void, old_len: size_t, new_len: size_t, flags: c_int, new: *mut c_void) -> *mut c_void {
    match get(&MREMAP) {
        0 => libc::syscall(libc::SYS_mremap, old, old_len, new_len, flags, new) as *mut c_void,
        f => core::mem::transmute::<usize, MremapFn>(f)(old, old_len, new_len, flags, new),
    }
}

unsafe fn real_shmget(key: key_t, size: size_t, flg: c_int) -> c_int {
    match get(&SHMGET) {
        0 => libc::syscall(libc::SYS_shmget, key, size, flg) as c_int,
        f => core::mem::transmute::<usize, ShmgetFn>(f)(key, size, flg),
    }
}

unsafe fn real_shmat(id: c_int, addr: *const c_void, flg: c_int) -> *mut c_void {
    match get(&SHMAT) {
        0 => libc::syscall(libc::SYS_shmat, id, addr, flg) as *mut c_void,
        f => core::mem::transmute::<usize, ShmatFn>(f)(id, addr, flg),
    }
}

unsafe fn real_shmdt(addr: *const c_void) -> c_int {
    match get(&SHMDT) {
        0 => libc::syscall(libc::SYS_shmdt, addr) as c_int,
        f => core::mem::transmute::<usize, ShmdtFn>(f)(addr),
    }
}

unsafe fn real_shmctl(id: c_int, cmd: c_int, buf: *mut libc::shmid_ds) -> c_int {
    match get(&SHMCTL) {
        0 => libc::syscall(libc::SYS_shmctl, id, cmd, buf) as c_int,
        f => core::mem::transmute::<usize, ShmctlFn>(f)(id, cmd, buf),
    }
}

unsafe fn real_shm_open(name: *const c_char, oflag: c_int, m: mode_t) -> c_int {
    let f = match get(&SHM_OPEN) {
        0 => next(&SHM_OPEN, b"shm_open\0"),
        f => f,
    };
    if f == 0 {
        *libc::__errno_location() = libc::ENOSYS;
        return -1;
    }
    core::mem::transmute::<usize, ShmOpenFn>(f)(name, oflag, m)
}

unsafe fn real_shm_unlink(name: *const c_char) -> c_int {
    let f = match get(&SHM_UNLINK) {
        0 => next(&SHM_UNLINK, b"shm_unlink\0"),
        f => f,
    };
    if f == 0 {
        *libc::__errno_location() = libc::ENOSYS;
        return -1;
    }
    core::mem::transmute::<usize, ShmUnlinkFn>(f)(name)
}

unsafe fn real_memfd_create(name: *const c_char, flags: c_uint) -> c_int {
    match get(&MEMFD_CREATE) {
        0 => libc::syscall(libc::SYS_memfd_create, name, flags) as c_int,
        f => core::mem::transmute::<usize, MemfdCreateFn>(f)(name, flags),
    }
}

const PAGE: u64 = 4096;

#[inline]
fn page_up(len: u64) -> u64 {
    len.saturating_add(PAGE - 1) & !(PAGE - 1)
}

/// Errno preserved across our bookkeeping (fstat, readlink and the like).
pub(crate) struct SaveErrno(c_int);

impl SaveErrno {
    #[inline]
    pub(crate) fn new() -> Self {
        SaveErrno(unsafe { *libc::__errno_location() })
    }
}

impl Drop for SaveErrno {
    #[inline]
    fn drop(&mut self) {
        unsafe { *libc::__errno_location() = self.0 };
    }
}

fn fstat(fd: c_int) -> Option<libc::stat> {
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    (unsafe { libc::fstat(fd, &mut st) } == 0).then_some(st)
}

/// The path behind `fd` (from /proc/self/fd), into `buf`: its length.
fn fd_path(fd: c_int, buf: &mut [u8; 4096]) -> usize {
    let mut p = PathBuf::new();
    p.push(b"/proc/self/fd/").push_num(fd as u64);
    let n = unsafe { libc::readlink(p.c_str(), buf.as_mut_ptr() as *mut c_char, buf.len()) };
    n.max(0) as usize
}

fn is_dev_zero(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == libc::makedev(1, 5)
}

/// The C string `s` as bytes (at most 4096 of them).
unsafe fn c_bytes<'a>(s: *const c_char) -> &'a [u8] {
    if s.is_null() {
        return &[];
    }
    let n = libc::strnlen(s, 4096);
    core::slice::from_raw_parts(s as *const u8, n)
}

/// Record a region the program just mapped with mmap (we hold the hook guard).
fn record_mmap(p: *mut c_void, len: size_t, prot: c_int, flags: c_int, fd: c_int, off: off_t, regs: &Regs) {
    let _e = SaveErrno::new();
    let shared = matches!(flags & 0xf, libc::MAP_SHARED | libc::MAP_SHARED_VALIDATE);
    let mut r = RegionRecord {
        start: p as u64,
        len: page_up(len as u64),
        prot: (prot & 7) as u8,
        shmid: -1,
        ..RegionRecord::default()
    };
    if flags & libc::MAP_ANONYMOUS != 0 {
        r.kind = if shared { map_kind::ANON_SHARED } else { map_kind::ANON_PRIVATE };
    } else {
        let st = fstat(fd);
        match st {
            Some(st) if is_dev_zero(&st) => {
                r.kind = if shared { map_kind::DEV_ZERO } else { map_kind::ANON_PRIVATE };
            }
            _ => {
                r.kind = if shared { map_kind::FILE_SHARED } else { map_kind::FILE_PRIVATE };
                if let Some(st) = st {
                    r.dev = st.st_dev;
                    r.ino = st.st_ino;
                }
                r.file_offset = off as u64;
                let mut buf = [0u8; 4096];
                let n = fd_path(fd, &mut buf);
                (r.name_off, r.name_len) = regions::store_name(&buf[..n]);
            }
        }
    }
    r.stack = current_stack(regs);
    regions::insert(r);
}

export_hook6!(mmap => mmap_impl);
export_hook6!(mmap64 => mmap_impl);

unsafe extern "C" fn mmap_impl(
    addr: *mut c_void,
    len: size_t,
    prot: c_int,
    flags: c_int,
    fd: c_int,
    off: off_t,
    entry_sp: u64,
    entry_bp: u64,
) -> *mut c_void {
    match mode() {
        Mode::Track(_g) => {
            let p = real_mmap(addr, len, prot, flags, fd, off);
            if p != libc::MAP_FAILED {
                record_mmap(p, len, prot, flags, fd, off, &Regs::at_entry(entry_sp, entry_bp));
            }
            p
        }
        Mode::Nested => {
            let p = real_mmap(addr, len, prot, flags, fd, off);
            if p != libc::MAP_FAILED {
                regions::try_forget(p as u64, p as u64 + page_up(len as u64));
            }
            p
        }
        Mode::Passthrough => real_mmap(addr, len, prot, flags, fd, off),
    }
}

export_hook!(munmap => munmap_impl);

unsafe extern "C" fn munmap_impl(addr: *mut c_void, len: size_t, _pad: usize, _entry_sp: u64, _entry_bp: u64) -> c_int {
    // Forget the region before the kernel can hand its addresses out again
    // (only when the call cannot fail for its arguments).
    let (s, valid) = (addr as u64, addr as u64 % PAGE == 0 && len != 0);
    match mode() {
        Mode::Track(_g) => {
            if valid {
                regions::remove(s, s.saturating_add(page_up(len as u64)));
            }
            real_munmap(addr, len)
        }
        Mode::Nested => {
            if valid {
                regions::try_forget(s, s.saturating_add(page_up(len as u64)));
            }
            real_munmap(addr, len)
        }
        Mode::Passthrough => real_munmap(addr, len),
    }
}

export_hook6!(mremap => mremap_impl);

unsafe extern "C" fn mremap_impl(
    old: *mut c_void,
    old_len: size_t,
    new_len: size_t,
    flags: c_int,
    new: *mut c_void,
    _pad: usize,
    _entry_sp: u64,
    _entry_bp: u64,
) -> *mut c_void {
    match mode() {
        Mode::Track(_g) => regions::remap_with(
            old as u64,
            page_up(old_len as u64),
            page_up(new_len as u64),
            flags & libc::MREMAP_DONTUNMAP != 0,
            || real_mremap(old, old_len, new_len, flags, new) as u64,
        ) as *mut c_void,
        Mode::Nested => {
            let p = real_mremap(old, old_len, new_len, flags, new);
            if p != libc::MAP_FAILED {
                if flags & libc::MREMAP_DONTUNMAP == 0 && p != old {
                    regions::try_forget(old as u64, old as u64 + page_up(old_len as u64));
                }
                regions::try_forget(p as u64, p as u64 + page_up(new_len as u64));
            }
            p
        }
        Mode::Passthrough => real_mremap(old, old_len, new_len, flags, new),
    }
}

/// IPC_STAT as a raw system call (our own shmctl export is not needed for it).
fn shm_stat(id: c_int) -> Option<libc::shmid_ds> {
    let mut ds: libc::shmid_ds = unsafe { core::mem::zeroed() };
    let r = unsafe { libc::syscall(libc::SYS_shmctl, id, libc::IPC_STAT, &mut ds as *mut libc::shmid_ds) };
    (r == 0).then_some(ds)
}

export_hook!(shmget => shmget_impl);

unsafe extern "C" fn shmget_impl(key: key_t, size: size_t, flg: c_int, entry_sp: u64, entry_bp: u64) -> c_int {
    match mode() {
        Mode::Track(_g) => {
            let id = real_shmget(key, size, flg);
            if id >= 0 && flg & libc::IPC_CREAT != 0 {
                let _e = SaveErrno::new();
                // Created here, or an existing segment opened? The creator's pid says.
                if let Some(ds) = shm_stat(id) {
                    if ds.shm_cpid == libc::getpid() {
                        let stack = current_stack(&Regs::at_entry(entry_sp, entry_bp));
                        regions::event(ShmEvent {
                            what: shm_event::SYSV_CREATE,
                            key: ds.shm_perm.__key,
                            shmid: id,
                            size: ds.shm_segsz as u64,
                            stack,
                            ..ShmEvent::default()
                        });
                    }
                }
            }
            id
        }
        Mode::Nested | Mode::Passthrough => real_shmget(key, size, flg),
    }
}

export_hook!(shmat => shmat_impl);

unsafe extern "C" fn shmat_impl(id: c_int, addr: *const c_void, flg: c_int, entry_sp: u64, entry_bp: u64) -> *mut c_void {
    match mode() {
        Mode::Track(_g) => {
            let p = real_shmat(id, addr, flg);
            if p as isize != -1 {
                let _e = SaveErrno::new();
                let ds = shm_stat(id);
                let size = ds.as_ref().map_or(PAGE, |d| d.shm_segsz as u64);
                let prot = if flg & libc::SHM_RDONLY != 0 { 1 } else { 3 } | if flg & libc::SHM_EXEC != 0 { 4 } else { 0 };
                let r = RegionRecord {
                    start: p as u64,
                    len: page_up(size),
                    kind: map_kind::SHMAT,
                    prot,
                    shmid: id,
                    key: ds.map_or(0, |d| d.shm_perm.__key),
                    stack: current_stack(&Regs::at_entry(entry_sp, entry_bp)),
                    ..RegionRecord::default()
                };
                regions::insert(r);
            }
            p
        }
        Mode::Nested | Mode::Passthrough => real_shmat(id, addr, flg),
    }
}

export_hook!(shmdt => shmdt_impl);

unsafe extern "C" fn shmdt_impl(addr: *const c_void, _pad1: usize, _pad2: usize, _entry_sp: u64, _entry_bp: u64) -> c_int {
    match mode() {
        Mode::Track(_g) => {
            // Forget the attachment before its addresses can be reused.
            if let Some(len) = regions::shmat_len(addr as u64) {
                regions::remove_detached(addr as u64, addr as u64 + len);
            }
            real_shmdt(addr)
        }
        Mode::Nested | Mode::Passthrough => real_shmdt(addr),
    }
}

export_hook!(shmctl => shmctl_impl);

unsafe extern "C" fn shmctl_impl(id: c_int, cmd: c_int, buf: *mut libc::shmid_ds, entry_sp: u64, entry_bp: u64) -> c_int {
    match mode() {
        Mode::Track(_g) => {
            let r = real_shmctl(id, cmd, buf);
            if r == 0 && cmd == libc::IPC_RMID {
                let _e = SaveErrno::new();
                let stack = current_stack(&Regs::at_entry(entry_sp, entry_bp));
                regions::event(ShmEvent { what: shm_event::SYSV_REMOVE, shmid: id, stack, ..ShmEvent::default() });
            }
            r
        }
        Mode::Nested | Mode::Passthrough => real_shmctl(id, cmd, buf),
    }
}

/// `/dev/shm/NAME` for a POSIX shared-memory name, as glibc builds it.
fn shm_path(name: &[u8]) -> PathBuf {
    let mut i = 0;
    while i < name.len() && name[i] == b'/' {
        i += 1;
    }
    let mut p = PathBuf::new();
    p.push(b"/dev/shm/").push(&name[i..]);
    p
}

/// Log an event about the named object `name` (POSIX shared memory or a
/// memfd), with the device and inode of `fd` when there is one.
unsafe fn named_event(what: u8, name: *const c_char, fd: Option<c_int>, regs: &Regs) {
    let _e = SaveErrno::new();
    let st = fd.and_then(fstat);
    let (name_off, name_len) = regions::store_name(c_bytes(name));
    regions::event(ShmEvent {
        what,
        dev: st.map_or(0, |s| s.st_dev),
        ino: st.map_or(0, |s| s.st_ino),
        name_off,
        name_len,
        shmid: -1,
        stack: current_stack(regs),
        ..ShmEvent::default()
    });
}

export_hook!(shm_open => shm_open_impl);

unsafe extern "C" fn shm_open_impl(name: *const c_char, oflag: c_int, m: mode_t, entry_sp: u64, entry_bp: u64) -> c_int {
    match mode() {
        Mode::Track(_g) => {
            let creating = oflag & libc::O_CREAT != 0;
            // Without O_EXCL, O_CREAT may open an object that was already there.
            let existed = creating && oflag & libc::O_EXCL == 0 && {
                let _e = SaveErrno::new();
                let mut st: libc::stat = core::mem::zeroed();
                libc::stat(shm_path(c_bytes(name)).c_str(), &mut st) == 0
            };
            let fd = real_shm_open(name, oflag, m);
            if fd >= 0 && creating && !existed {
                named_event(shm_event::POSIX_CREATE, name, Some(fd), &Regs::at_entry(entry_sp, entry_bp));
            }
            fd
        }
        Mode::Nested | Mode::Passthrough => real_shm_open(name, oflag, m),
    }
}

export_hook!(shm_unlink => shm_unlink_impl);

unsafe extern "C" fn shm_unlink_impl(name: *const c_char, _pad1: usize, _pad2: usize, entry_sp: u64, entry_bp: u64) -> c_int {
    match mode() {
        Mode::Track(_g) => {
            let r = real_shm_unlink(name);
            if r == 0 {
                named_event(shm_event::POSIX_UNLINK, name, None, &Regs::at_entry(entry_sp, entry_bp));
            }
            r
        }
        Mode::Nested | Mode::Passthrough => real_shm_unlink(name),
    }
}

export_hook!(memfd_create => memfd_create_impl);

unsafe extern "C" fn memfd_create_impl(name: *const c_char, flags: c_uint, _pad: usize, entry_sp: u64, entry_bp: u64) -> c_int {
    match mode() {
        Mode::Track(_g) => {
            let fd = real_memfd_create(name, flags);
            if fd >= 0 {
                named_event(shm_event::MEMFD_CREATE, name, Some(fd), &Regs::at_entry(entry_sp, entry_bp));
            }
            fd
        }
        Mode::Nested | Mode::Passthrough => real_memfd_create(name, flags),
    }
}
