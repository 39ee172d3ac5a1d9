//! The session file of this process: created, mapped and carved up here.
//! All tables live in it (see `leakscope_format::layout`), so the CLI can read
//! them even if this process is killed.

use core::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use leakscope_format::layout::{self, Header};

static BASE: AtomicUsize = AtomicUsize::new(0);
static FD: AtomicI32 = AtomicI32::new(-1);

/// The address range of the session mapping (leakscope's own tables).
pub fn mapped_range() -> (u64, u64) {
    let base = BASE.load(Ordering::Relaxed) as u64;
    (base, base + if base == 0 { 0 } else { layout::RESERVE_BYTES })
}

#[inline]
pub fn is_mapped() -> bool {
    BASE.load(Ordering::Relaxed) != 0
}

#[inline]
pub fn header() -> &'static Header {
    unsafe { &*(BASE.load(Ordering::Relaxed) as *const Header) }
}

/// Pointer to the object at byte offset `off` of the file.
#[inline]
pub fn at<T>(off: u64) -> *mut T {
    (BASE.load(Ordering::Relaxed) + off as usize) as *mut T
}


/// Carve `size` zeroed bytes from the file; None when the reservation is full.
pub fn carve(size: u64, align: u64) -> Option<u64> {
    let h = header();
    let mut cur = h.bump.load(Ordering::Relaxed);
    loop {
        let start = cur.next_multiple_of(align);
        let end = start.checked_add(size)?;
        if end > h.reserved_bytes {
            return None;
        }
        match h.bump.compare_exchange_weak(cur, end, Ordering::AcqRel, Ordering::Relaxed) {
            Ok(_) => return Some(start),
            Err(now) => cur = now,
        }
    }
}

/// Give the pages of a dead region (an outgrown table) back to tmpfs.
pub fn discard(off: u64, len: u64) {
    let fd = FD.load(Ordering::Relaxed);
    let start = off.next_multiple_of(4096);
    let end = (off + len) & !4095;
    if fd >= 0 && end > start {
        unsafe {
            libc::fallocate(
                fd,
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                start as i64,
                (end - start) as i64,
            )
        };
    }
}

/// A path built on the stack (no allocation), NUL-terminated.
pub struct PathBuf {
    buf: [u8; 4096],
    len: usize,
}

impl PathBuf {
    pub fn new() -> Self {
        PathBuf { buf: [0; 4096], len: 0 }
    }
    pub fn push(&mut self, bytes: &[u8]) -> &mut Self {
        let n = bytes.len().min(self.buf.len() - 1 - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        self.len += n;
        self
    }
    pub fn push_num(&mut self, mut v: u64) -> &mut Self {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        let d = digits;
        self.push(&d[i..])
    }
    pub fn c_str(&mut self) -> *const libc::c_char {
        self.buf[self.len] = 0;
        self.buf.as_ptr() as *const libc::c_char
    }
}

/// LEAKSCOPE_PRIVATE_TABLES=1, for measuring what crash safety costs: the
/// tables live in private memory and reach the file only when the process
/// exits normally (a killed process then leaves nothing to report).
pub static PRIVATE_TABLES: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// mmap as a raw system call: leakscope's own mappings must never reach its
/// mmap hooks (the program's mmap records). None on failure.
pub fn raw_mmap(addr: usize, len: usize, flags: i32, fd: i32) -> Option<usize> {
    let p = unsafe { libc::syscall(libc::SYS_mmap, addr, len, libc::PROT_READ | libc::PROT_WRITE, flags, fd, 0usize) };
    (p >= 0 && p as usize != libc::MAP_FAILED as usize).then_some(p as usize)
}

fn map_private() -> Option<usize> {
    raw_mmap(
        0,
        layout::RESERVE_BYTES as usize,
        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
        -1,
    )
}

/// With private tables: write them to the session file (at the very end of exit).
pub fn write_out_private_tables() {
    if !PRIVATE_TABLES.load(Ordering::Relaxed) || !is_mapped() {
        return;
    }
    write_used_prefix(FD.load(Ordering::Relaxed), header().bump.load(Ordering::Acquire));
}

/// Write the first `used` bytes of the mapped tables to `fd`.
fn write_used_prefix(fd: i32, used: u64) -> bool {
    let src = BASE.load(Ordering::Relaxed) as *const u8;
    let mut done = 0u64;
    while done < used {
        let n = unsafe {
            libc::pwrite(fd, src.add(done as usize) as *const libc::c_void, (used - done).min(1 << 24) as usize, done as i64)
        };
        if n <= 0 {
            return false;
        }
        done += n as u64;
    }
    true
}

fn map_file(fd: i32) -> Option<usize> {
    raw_mmap(0, layout::RESERVE_BYTES as usize, libc::MAP_SHARED | libc::MAP_NORESERVE, fd)
}

/// Create `<dir>/proc-<pid>-<n>.lsm` with the first free `n` (one per exec'd image).
fn create_file(dir: &[u8], pid: u32) -> Option<(i32, u32)> {
    for n in 0..1000u32 {
        let mut path = PathBuf::new();
        path.push(dir).push(b"/proc-").push_num(pid as u64).push(b"-").push_num(n as u64).push(b".lsm");
        let fd = unsafe {
            libc::open(path.c_str(), libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC, 0o600)
        };
        if fd >= 0 {
            return Some((fd, n));
        }
        if unsafe { *libc::__errno_location() } != libc::EEXIST {
            return None;
        }
    }
    None
}

fn now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Create and map this process's session file and initialise its header.
pub fn create(dir: &[u8]) -> bool {
    let pid = unsafe { libc::getpid() } as u32;
    let Some((fd, exec_index)) = create_file(dir, pid) else { return false };
    if unsafe { libc::ftruncate(fd, layout::RESERVE_BYTES as i64) } != 0 {
        unsafe { libc::close(fd) };
        return false;
    }
    let mapped = if PRIVATE_TABLES.load(Ordering::Relaxed) { map_private() } else { map_file(fd) };
    let Some(base) = mapped else {
        unsafe { libc::close(fd) };
        return false;
    };
    FD.store(fd, Ordering::Relaxed);
    BASE.store(base, Ordering::Release);
    init_header(pid, exec_index);
    true
}

fn init_header(pid: u32, exec_index: u32) {
    let h = at::<Header>(0);
    unsafe {
        (*h).magic = layout::MAGIC;
        (*h).version = layout::LAYOUT_VERSION;
        (*h).header_size = core::mem::size_of::<Header>() as u32;
        (*h).pid = pid;
        (*h).ppid = libc::getppid() as u32;
        (*h).exec_index = exec_index;
        (*h).reserved_bytes = layout::RESERVE_BYTES;
        (*h).start_ns = now_ns();
        (*h).bump.store((core::mem::size_of::<Header>() as u64).next_multiple_of(4096), Ordering::Release);
    }
    record_argv_and_exe();
}

fn record_argv_and_exe() {
    const MAX_ARGV: u64 = 128 * 1024;
    let h = at::<Header>(0);
    if let Some(off) = carve(MAX_ARGV, 8) {
        let fd = unsafe { libc::open(c"/proc/self/cmdline".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        let mut len = 0u64;
        if fd >= 0 {
            loop {
                let n = unsafe { libc::read(fd, at::<libc::c_void>(off + len), (MAX_ARGV - len) as usize) };
                if n <= 0 {
                    break;
                }
                len += n as u64;
            }
            unsafe { libc::close(fd) };
        }
        unsafe {
            (*h).argv_off = off;
            (*h).argv_len = len;
        }
    }
    if let Some(off) = carve(4096, 8) {
        let n = unsafe { libc::readlink(c"/proc/self/exe".as_ptr(), at::<libc::c_char>(off), 4096) };
        unsafe {
            (*h).exe_off = off;
            (*h).exe_len = n.max(0) as u64;
        }
    }
}

pub fn set_end_time() {
    header().end_ns.store(now_ns(), Ordering::Release);
}

/// After fork, in the child: move onto a private copy of the parent's file so
/// the two processes never write each other's tables. Called with every shard
/// lock held (so the copy is consistent); the copy's locks are cleared.
pub fn fork_child_copy(dir: &[u8]) -> bool {
    let pid = unsafe { libc::getpid() } as u32;
    let Some((fd, exec_index)) = create_file(dir, pid) else { return false };
    let used = header().bump.load(Ordering::Acquire);
    if unsafe { libc::ftruncate(fd, layout::RESERVE_BYTES as i64) } != 0 {
        unsafe { libc::close(fd) };
        return false;
    }
    // Write the used prefix of the parent's file into the child's file.
    if !write_used_prefix(fd, used) {
        unsafe { libc::close(fd) };
        return false;
    }
    // Replace the shared mapping in place: every offset and pointer stays valid.
    let base = BASE.load(Ordering::Relaxed);
    let p = raw_mmap(base, layout::RESERVE_BYTES as usize, libc::MAP_SHARED | libc::MAP_NORESERVE | libc::MAP_FIXED, fd);
    if p != Some(base) {
        unsafe { libc::close(fd) };
        return false;
    }
    let old = FD.swap(fd, Ordering::Relaxed);
    if old >= 0 {
        unsafe { libc::close(old) };
    }
    let h = at::<Header>(0);
    unsafe {
        // The copied header still names the parent (getppid() would not, once
        // a parent that exits right after fork is gone).
        (*h).ppid = (*h).pid;
        (*h).pid = pid;
        (*h).exec_index = exec_index;
        (*h).start_ns = now_ns();
        (*h).errors_head.store(0, Ordering::Relaxed);
        // The child has not checked for leaks yet: the parent's results (and
        // its count of on-demand checks, which the CLI reports) are not its own.
        (*h).scan_state.store(layout::scan_state::NONE, Ordering::Relaxed);
        (*h).scan_seq.store(0, Ordering::Relaxed);
    }
    true
}
