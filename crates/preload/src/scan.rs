//! The reachability scan: which live blocks can the program still reach?
//!
//! A conservative, word-aligned scan in the manner of Valgrind's memcheck and
//! LSan. Roots: the writable segments of every loaded module (data, bss,
//! relro), every thread's stack from its stack pointer, its registers, its
//! static TLS blocks and its thread control block (which points at dynamic
//! TLS and holds pthread_setspecific values). Blocks reached through a pointer
//! to their start are *reachable*, through interior pointers only *possible*;
//! of the rest, each group of blocks reachable from an unreached block (taken
//! in address order) has that block *definite* and the others *indirect*.
//!
//! Other threads are stopped without ptrace: each gets a real-time signal
//! whose handler records its registers and waits on a futex until the scan is
//! over. All live-table locks are held meanwhile, so no thread is stopped
//! holding one. Everything the scan needs from the loader (module segments,
//! TLS layout) and from /proc is read before any thread stops, and memory is
//! taken with raw mmap: a stopped thread may hold the loader's or malloc's lock.

use crate::{live, session, thread};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use leakscope_format::layout::{self, scan_entry, AllocKind, LeakClass};

const MAX_PARKED: usize = 4096;
/// How long to wait for threads to stop before scanning without them.
const STOP_TIMEOUT_NS: u64 = 1_000_000_000;
/// The x86_64 ABI lets leaf functions use 128 bytes below the stack pointer.
const RED_ZONE: u64 = 128;

#[derive(Clone, Copy)]
struct Parked {
    sp: u64,
    fs: u64,
    regs: [u64; 23],
}

static mut PARKED: [Parked; MAX_PARKED] = [Parked { sp: 0, fs: 0, regs: [0; 23] }; MAX_PARKED];
static NEXT_SLOT: AtomicU32 = AtomicU32::new(0);
static ARRIVED: AtomicU32 = AtomicU32::new(0);
/// Futex word: the scan generation threads wait to see change.
static RELEASED: AtomicU32 = AtomicU32::new(0);
static SCANNING: AtomicU32 = AtomicU32::new(0);
static SIZEOF_PTHREAD: AtomicU64 = AtomicU64::new(0);
/// LEAKSCOPE_DEBUG_SCAN=1: print on stderr which root word first reached each
/// block (read at start-up: glibc clears the environment before the exit scan).
pub static DEBUG: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

fn stop_signal() -> i32 {
    libc::SIGRTMAX() - 1
}

fn now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The thread pointer (fs base): glibc keeps it at %fs:0 (`tcbhead_t.tcb`).
#[inline(always)]
fn thread_pointer() -> u64 {
    let tp: u64;
    unsafe { core::arch::asm!("mov {}, fs:0", out(reg) tp, options(nostack, readonly, preserves_flags)) };
    tp
}

extern "C" fn on_stop(_sig: i32, _info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let saved_errno = unsafe { *libc::__errno_location() };
    let generation = RELEASED.load(Ordering::Acquire);
    let slot = NEXT_SLOT.fetch_add(1, Ordering::AcqRel) as usize;
    if slot < MAX_PARKED {
        let uc = ctx as *const libc::ucontext_t;
        let gregs = unsafe { (*uc).uc_mcontext.gregs };
        let mut regs = [0u64; 23];
        for (r, g) in regs.iter_mut().zip(gregs.iter()) {
            *r = *g as u64;
        }
        unsafe {
            (*core::ptr::addr_of_mut!(PARKED))[slot] =
                Parked { sp: gregs[libc::REG_RSP as usize] as u64, fs: thread_pointer(), regs };
        }
    }
    ARRIVED.fetch_add(1, Ordering::AcqRel);
    while RELEASED.load(Ordering::Acquire) == generation {
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                RELEASED.as_ptr(),
                libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
                generation,
                core::ptr::null::<libc::timespec>(),
            )
        };
    }
    unsafe { *libc::__errno_location() = saved_errno };
}

/// Scratch memory straight from the kernel.
struct Scratch<T> {
    ptr: *mut T,
    len: usize,
}

impl<T: Copy> Scratch<T> {
    fn new(len: usize) -> Option<Scratch<T>> {
        let bytes = (len.max(1) * core::mem::size_of::<T>()).next_multiple_of(4096);
        let p = crate::session::raw_mmap(0, bytes, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE, -1)?;
        Some(Scratch { ptr: p as *mut T, len })
    }
    fn slice(&mut self) -> &mut [T] {
        unsafe { core::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl<T> Drop for Scratch<T> {
    fn drop(&mut self) {
        let bytes = (self.len.max(1) * core::mem::size_of::<T>()).next_multiple_of(4096);
        unsafe { libc::syscall(libc::SYS_munmap, self.ptr as usize, bytes) };
    }
}

/// What the scan reads, gathered while every thread still runs.
struct Roots {
    /// Writable segments of the loaded modules.
    segments: Vec<(u64, u64)>,
    /// Static TLS blocks as (offset from the thread pointer, size).
    tls: Vec<(i64, u64)>,
    /// Readable, writable mappings (to find the stack holding a thread's sp).
    mappings: Vec<(u64, u64)>,
    /// Private anonymous writable mappings: the program's own memory outside
    /// malloc (arenas, GC heaps, JIT data), roots as for Valgrind.
    anon: Vec<(u64, u64)>,
    /// Threads of the process other than the calling one.
    others: Vec<i32>,
}

unsafe extern "C" fn roots_cb(info: *mut libc::dl_phdr_info, _size: usize, data: *mut libc::c_void) -> i32 {
    let roots = &mut *(data as *mut Roots);
    let info = &*info;
    let phdrs = core::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize);
    for ph in phdrs {
        if ph.p_type == libc::PT_LOAD && ph.p_flags & libc::PF_W != 0 {
            let lo = info.dlpi_addr + ph.p_vaddr;
            roots.segments.push((lo, lo + ph.p_memsz));
        }
        if ph.p_type == libc::PT_TLS && !info.dlpi_tls_data.is_null() {
            let off = info.dlpi_tls_data as i64 - thread_pointer() as i64;
            roots.tls.push((off, ph.p_memsz));
        }
    }
    0
}

fn gather_roots() -> Roots {
    let mut roots =
        Roots { segments: Vec::new(), tls: Vec::new(), mappings: Vec::new(), anon: Vec::new(), others: Vec::new() };
    read_maps(&mut roots.mappings, &mut roots.anon);
    unsafe { libc::dl_iterate_phdr(Some(roots_cb), &mut roots as *mut Roots as *mut libc::c_void) };
    // Static TLS lies next to the thread pointer, at the same offset in every
    // thread; a dlopen'ed library's TLS is allocated apart, per thread (it is
    // reached through each thread's DTV instead).
    let tp = thread_pointer();
    let here = mapping_of(&roots.mappings, tp);
    roots.tls.retain(|&(off, size)| {
        let start = (tp as i64 + off) as u64;
        here.is_some_and(|(a, b)| start >= a && start + size <= b)
    });
    let (lo, hi) = crate::modules::self_range();
    // leakscope's own data holds no pointer the program made.
    roots.segments.retain(|&(a, _)| a < lo || a >= hi);
    list_other_threads(&mut roots.others);
    if SIZEOF_PTHREAD.load(Ordering::Relaxed) == 0 {
        // glibc exports sizeof(struct pthread) for libthread_db.
        let p = crate::real::lookup(b"_thread_db_sizeof_pthread\0");
        let size = if p != 0 { (unsafe { *(p as *const u32) }) as u64 } else { 0 };
        SIZEOF_PTHREAD.store(if size == 0 { 64 } else { size }, Ordering::Relaxed);
    }
    roots
}

fn read_file(path: &core::ffi::CStr, buf: &mut Vec<u8>) {
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return;
    }
    let mut chunk = [0u8; 4096];
    loop {
        let n = unsafe { libc::read(fd, chunk.as_mut_ptr() as *mut libc::c_void, chunk.len()) };
        if n <= 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n as usize]);
    }
    unsafe { libc::close(fd) };
}

fn parse_hex(s: &[u8]) -> u64 {
    s.iter().fold(0u64, |v, &c| {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => 0,
        };
        (v << 4) | d as u64
    })
}

fn read_maps(out: &mut Vec<(u64, u64)>, anon: &mut Vec<(u64, u64)>) {
    let mut buf = Vec::with_capacity(64 * 1024);
    read_file(c"/proc/self/maps", &mut buf);
    for line in buf.split(|&c| c == b'\n') {
        let mut fields = line.split(|&c| c == b' ').filter(|f| !f.is_empty());
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else { continue };
        if perms.len() < 4 || perms[0] != b'r' || perms[1] != b'w' {
            continue;
        }
        let Some(dash) = range.iter().position(|&c| c == b'-') else { continue };
        let r = (parse_hex(&range[..dash]), parse_hex(&range[dash + 1..]));
        out.push(r);
        // offset, device, inode, then the path (none for anonymous memory).
        let path = fields.nth(3);
        if perms[3] == b'p' && path.is_none() {
            anon.push(r);
        }
    }
}

/// glibc's arenas other than the main one live in 64 MiB-aligned heaps.
const GLIBC_HEAP_ALIGN: u64 = 64 << 20;

fn list_other_threads(out: &mut Vec<i32>) {
    let me = unsafe { libc::syscall(libc::SYS_gettid) } as i32;
    let fd = unsafe { libc::open(c"/proc/self/task".as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC) };
    if fd < 0 {
        return;
    }
    let mut buf = [0u8; 8192];
    loop {
        let n = unsafe { libc::syscall(libc::SYS_getdents64, fd, buf.as_mut_ptr(), buf.len()) };
        if n <= 0 {
            break;
        }
        let mut at = 0usize;
        while at < n as usize {
            // struct linux_dirent64 { u64 ino; i64 off; u16 reclen; u8 type; char name[]; }
            let reclen = u16::from_ne_bytes([buf[at + 16], buf[at + 17]]) as usize;
            let name = &buf[at + 19..at + reclen];
            let name = &name[..name.iter().position(|&c| c == 0).unwrap_or(name.len())];
            if let Some(tid) = core::str::from_utf8(name).ok().and_then(|s| s.parse::<i32>().ok()) {
                if tid != me {
                    out.push(tid);
                }
            }
            at += reclen;
        }
    }
    unsafe { libc::close(fd) };
}

/// What an interior pointer `w` into `n` amounts to: Some(true) when it
/// stands for a pointer to the start, Some(false) for a real interior
/// pointer, None when it is not the program's pointer at all.
fn interior(n: &Node, w: u64) -> Option<bool> {
    let size = n.end - n.addr;
    // glibc lets a block use the first word of the next chunk's header; its
    // free lists then point at that header, which lies inside the block when
    // the request leaves no slack. Those are glibc's links, not the program's.
    let chunk = ((size + 8 + 15) & !15).max(32);
    if w == n.addr - 16 + chunk {
        return None;
    }
    // `new T[n]` for a T with a destructor returns block + 8, the element
    // count being stored first: Valgrind's "newarray" heuristic counts a
    // pointer there as a pointer to the block.
    if w == n.addr + 8 && n.kind == AllocKind::NewArray as u8 && size > 8 {
        let count = unsafe { *(n.addr as *const u64) };
        if count > 0 && count <= size - 8 && (size - 8) % count == 0 {
            return Some(true);
        }
    }
    Some(false)
}

/// A live block during the scan.
#[derive(Clone, Copy)]
struct Node {
    addr: u64,
    end: u64,
    state: u8,
    flags: u8,
    kind: u8,
}

const UNREACHED: u8 = 0;
const POSSIBLE: u8 = 1;
const REACHABLE: u8 = 2;
const DEFINITE: u8 = 3;
const INDIRECT: u8 = 4;

struct Marker<'a> {
    nodes: &'a mut [Node],
    stack: &'a mut [u32],
    top: usize,
    lo: u64,
    hi: u64,
    /// A bit per hashed 4 KiB page: set for every page a block touches. Most
    /// words in [lo, hi) are not pointers into blocks (a program's own heaps
    /// and mappings lie between malloc's); this answers them without the
    /// binary search over every block.
    pages: &'a mut [u64],
}

/// Bits in [`Marker::pages`] (128 KiB).
const PAGE_FILTER_BITS: u32 = 20;

#[inline]
fn page_bit(page: u64) -> usize {
    (page.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - PAGE_FILTER_BITS)) as usize
}

impl Marker<'_> {
    /// Set the filter bits of every page of every block.
    fn fill_page_filter(&mut self) {
        let pages = &mut *self.pages;
        for n in self.nodes.iter() {
            let (first, last) = (n.addr >> 12, (n.end - 1) >> 12);
            if last - first >= 1 << PAGE_FILTER_BITS {
                // A block this large covers every bit anyway.
                pages.fill(u64::MAX);
                return;
            }
            for page in first..=last {
                let b = page_bit(page);
                pages[b / 64] |= 1 << (b % 64);
            }
        }
    }

    /// The block `w` points into, and whether it points at its start.
    #[inline]
    fn find(&self, w: u64) -> Option<(usize, bool)> {
        if w < self.lo || w >= self.hi {
            return None;
        }
        let b = page_bit(w >> 12);
        if self.pages[b / 64] & (1 << (b % 64)) == 0 {
            return None;
        }
        let i = self.nodes.partition_point(|n| n.addr <= w);
        if i == 0 {
            return None;
        }
        let n = &self.nodes[i - 1];
        if w == n.addr {
            Some((i - 1, true))
        } else if w < n.end {
            interior(n, w).map(|start| (i - 1, start))
        } else {
            None
        }
    }

    fn push(&mut self, i: usize) {
        if self.top < self.stack.len() {
            self.stack[self.top] = i as u32;
            self.top += 1;
        }
    }

    /// Marks what the words of [lo, hi) point to. From a root or a reachable
    /// block (`strong`), a start pointer makes a block reachable and an
    /// interior one possible; from a possibly-lost block, both only possible.
    fn scan_range(&mut self, lo: u64, hi: u64, strong: bool) {
        let debug = DEBUG.load(Ordering::Relaxed);
        let mut p = (lo + 7) & !7;
        while p + 8 <= hi {
            let w = unsafe { *(p as *const u64) };
            if debug {
                self.explain(w, p, lo, hi);
            }
            self.mark_word(w, strong);
            p += 8;
        }
    }

    /// Roots.
    fn scan_root(&mut self, lo: u64, hi: u64) {
        self.scan_range(lo, hi, true)
    }

    #[cold]
    fn explain(&self, w: u64, at: u64, lo: u64, hi: u64) {
        if let Some((i, start)) = self.find(w) {
            if self.nodes[i].state == UNREACHED {
                crate::notice::Line::new()
                    .str("leakscope scan: block ")
                    .hex(self.nodes[i].addr)
                    .str(if start { " reached from " } else { " reached (interior) from " })
                    .hex(at)
                    .str(" in ")
                    .hex(lo)
                    .str("..")
                    .hex(hi)
                    .emit();
            }
        }
    }

    #[inline]
    fn mark_word(&mut self, w: u64, strong: bool) {
        if let Some((i, start)) = self.find(w) {
            let s = self.nodes[i].state;
            if strong && start && s != REACHABLE {
                self.nodes[i].state = REACHABLE;
                self.push(i);
            } else if s == UNREACHED {
                self.nodes[i].state = POSSIBLE;
                self.push(i);
            }
        }
    }

    /// Scan the blocks marked so far. A block upgraded from possible to
    /// reachable was pushed again, so its children get upgraded too.
    fn drain(&mut self) {
        while self.top > 0 {
            self.top -= 1;
            let n = self.nodes[self.stack[self.top] as usize];
            self.scan_range(n.addr, n.end, n.state == REACHABLE);
        }
    }

    /// Lost blocks: the unreached blocks that `leader` points to (at their start),
    /// directly or through others, become indirect. Unlike Valgrind, interior
    /// pointers do not join a lost group: without Valgrind's definedness bits,
    /// never-written heap memory holds stale words (often glibc's free-list
    /// links, which point just inside a neighbouring block) that would.
    fn mark_clique(&mut self, leader: usize) {
        self.nodes[leader].state = DEFINITE;
        self.push(leader);
        while self.top > 0 {
            self.top -= 1;
            let n = self.nodes[self.stack[self.top] as usize];
            let mut p = (n.addr + 7) & !7;
            while p + 8 <= n.end {
                let w = unsafe { *(p as *const u64) };
                if let Some((i, true)) = self.find(w) {
                    let s = self.nodes[i].state;
                    if s == UNREACHED || (s == DEFINITE && i != leader) {
                        self.nodes[i].state = INDIRECT;
                        self.push(i);
                    }
                }
                p += 8;
            }
        }
    }
}

/// The scanning thread as its caller left it: registers at the point where
/// leakscope's code was entered (an exit handler, an API call).
pub struct Caller {
    pub pc: u64,
    pub sp: u64,
    pub bp: u64,
    /// rbx, rbp, r12-r15 at that point.
    pub callee_saved: [u64; 6],
}

impl Caller {
    /// Must be inlined into the function whose caller is wanted.
    #[inline(always)]
    pub fn here() -> Caller {
        let (pc, sp, bp): (u64, u64, u64);
        unsafe {
            core::arch::asm!("lea {pc}, [rip]", "mov {sp}, rsp", "mov {bp}, rbp",
                pc = out(reg) pc, sp = out(reg) sp, bp = out(reg) bp, options(nomem, nostack, preserves_flags));
        }
        Caller { pc, sp, bp, callee_saved: callee_saved_registers() }
    }
}

/// The calling thread's roots on its own stack. When it is exiting, the
/// frames of exit() and of the exit handlers sit where the program's frames
/// were, and their unwritten slots still hold the program's old locals:
/// scanning them would make lost blocks look reachable (Valgrind skips such
/// undefined words; we cannot tell them apart). So the stack is scanned from
/// the caller of exit() outwards, and of the exit machinery's frames only
/// the slots where a prologue saves the caller's callee-saved registers
/// (the six words under each return address).
fn own_stack_roots(c: &Caller, stack_hi: u64) -> (u64, Vec<(u64, u64)>) {
    let mut spills = Vec::new();
    let Some(known) = crate::modules::known() else { return (c.sp, spills) };
    let Some(extra) = thread::extra() else { return (c.sp, spills) };
    let exit_fn = crate::real::lookup(b"exit\0");
    let mut regs = framehop::x86_64::UnwindRegsX86_64::new(c.pc, c.sp, c.bp);
    let mut address = framehop::FrameAddress::InstructionPointer(c.pc);
    let mut read = |a: u64| {
        if a >= c.sp && a % 8 == 0 && a + 8 <= stack_hi {
            Ok(unsafe { *(a as *const u64) })
        } else {
            Err(())
        }
    };
    let mut exit_seen = false;
    // For a check while the program runs (leakscope_check): where the
    // program's frames start, and the callee-saved slots of leakscope's own
    // frames below them (their other slots hold stale words of earlier calls).
    let mut program_sp = None;
    let mut own_spills = Vec::new();
    for _ in 0..24 {
        use framehop::Unwinder;
        let here = address.address_for_lookup();
        // Past exit(), only leakscope's own exit() wrapper may still sit
        // between it and the program: the program's part starts above it.
        if exit_seen && !crate::modules::is_self(here) {
            return (regs.sp(), spills);
        }
        if program_sp.is_none() && !crate::modules::is_self(here) {
            program_sp = Some(regs.sp());
        }
        let Ok(Some(ra)) = known.unwinder.unwind_frame(address, &mut regs, extra.unwind_cache.for_address(here), &mut read) else {
            break;
        };
        // regs.sp() is now this frame's CFA: its return address sits just below.
        let cfa = regs.sp();
        let mut info: libc::Dl_info = unsafe { core::mem::zeroed() };
        let in_exit = exit_fn != 0
            && unsafe { libc::dladdr(here as *const libc::c_void, &mut info) } != 0
            && info.dli_saddr as usize == exit_fn;
        if !crate::modules::is_self(here) || exit_seen {
            spills.push((cfa.saturating_sub(8 + 48), cfa - 8));
        } else if program_sp.is_none() {
            own_spills.push((cfa.saturating_sub(8 + 48), cfa - 8));
        }
        exit_seen |= in_exit;
        match framehop::FrameAddress::from_return_address(ra) {
            Some(next) => address = next,
            None => break,
        }
    }
    // Not called from exit(): every frame above ours is the program's.
    match program_sp {
        Some(sp) => (sp, own_spills),
        None => (c.sp, Vec::new()),
    }
}

/// Scan now and record every live block's class in the session file.
/// Returns the number of the program's blocks found lost (definitely or
/// indirectly, as Valgrind counts leaks). Call inside a hook guard, never from
/// a signal handler.
pub fn scan(caller: &Caller) -> u64 {
    if SCANNING.swap(1, Ordering::AcqRel) != 0 {
        return 0;
    }
    let started = now_ns();
    let roots = gather_roots();
    let my_stack_hi = thread::extra().map(|e| e.stack_hi).unwrap_or(0);
    let (stack_from, spills) = own_stack_roots(caller, my_stack_hi);
    let regs = &caller.callee_saved;

    live::lock_all();
    let (stopped, missing, old_action) = stop_others(&roots.others);
    let own = OwnStack { from: stack_from, to: my_stack_hi, spills: &spills, regs };
    let classified = classify(&roots, &own, stopped);
    resume_others(old_action);
    live::unlock_all();

    let h = session::header();
    let mut lost = 0;
    if let Some((off, count, lost_blocks)) = classified {
        lost = lost_blocks;
        h.scan_off.store(off, Ordering::Relaxed);
        h.scan_count.store(count, Ordering::Relaxed);
        h.scan_threads.store((stopped as u32 & 0xffff) | ((missing as u32 & 0xffff) << 16), Ordering::Relaxed);
        h.scan_ns.store(now_ns() - started, Ordering::Relaxed);
        let state = if missing == 0 { layout::scan_state::COMPLETE } else { layout::scan_state::PARTIAL };
        h.scan_state.store(state, Ordering::Release);
        h.scan_seq.fetch_add(1, Ordering::AcqRel);
    }
    SCANNING.store(0, Ordering::Release);
    lost
}

/// Signal every other thread and wait until each has parked (or the timeout).
/// Returns (parked, not parked, the previous action of the stop signal).
fn stop_others(others: &[i32]) -> (usize, usize, libc::sigaction) {
    let mut old: libc::sigaction = unsafe { core::mem::zeroed() };
    if others.is_empty() {
        return (0, 0, old);
    }
    NEXT_SLOT.store(0, Ordering::Release);
    ARRIVED.store(0, Ordering::Release);
    let mut act: libc::sigaction = unsafe { core::mem::zeroed() };
    act.sa_sigaction = on_stop as *const () as usize;
    act.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
    unsafe {
        libc::sigfillset(&mut act.sa_mask);
        libc::sigaction(stop_signal(), &act, &mut old);
    }
    let pid = unsafe { libc::getpid() };
    let mut sent = 0u32;
    for &tid in others {
        if unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, stop_signal()) } == 0 {
            sent += 1;
        }
    }
    let deadline = now_ns() + STOP_TIMEOUT_NS;
    while ARRIVED.load(Ordering::Acquire) < sent && now_ns() < deadline {
        let ts = libc::timespec { tv_sec: 0, tv_nsec: 200_000 };
        unsafe { libc::nanosleep(&ts, core::ptr::null_mut()) };
    }
    let parked = (ARRIVED.load(Ordering::Acquire) as usize).min(MAX_PARKED);
    (parked, others.len().saturating_sub(parked), old)
}

fn resume_others(old: libc::sigaction) {
    RELEASED.fetch_add(1, Ordering::AcqRel);
    unsafe {
        libc::syscall(libc::SYS_futex, RELEASED.as_ptr(), libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG, i32::MAX);
    }
    if old.sa_sigaction != 0 || old.sa_flags != 0 {
        unsafe { libc::sigaction(stop_signal(), &old, core::ptr::null_mut()) };
    } else {
        let mut dfl: libc::sigaction = unsafe { core::mem::zeroed() };
        dfl.sa_sigaction = libc::SIG_DFL;
        unsafe { libc::sigaction(stop_signal(), &dfl, core::ptr::null_mut()) };
    }
}

/// Mark from the roots and classify; writes the results into the session file.
/// Returns (offset, count) of the results.
/// The scanning thread's own roots (see `own_stack_roots`).
struct OwnStack<'a> {
    from: u64,
    to: u64,
    spills: &'a [(u64, u64)],
    regs: &'a [u64],
}

fn classify(roots: &Roots, own: &OwnStack, parked: usize) -> Option<(u64, u64, u64)> {
    let h = session::header();
    let count: usize = h.live.iter().map(|s| s.len.load(Ordering::Relaxed) as usize).sum();
    let mut nodes_mem = Scratch::<Node>::new(count)?;
    let nodes = nodes_mem.slice();
    let mut n = 0;
    live::for_each_locked(|e| {
        if n < nodes.len() {
            nodes[n] = Node {
                addr: e.addr(),
                end: e.addr() + e.size().max(1),
                state: UNREACHED,
                flags: e.flags(),
                kind: e.kind() as u8,
            };
            n += 1;
        }
    });
    let nodes = &mut nodes[..n];
    nodes.sort_unstable_by_key(|n| n.addr);
    let mut stack_mem = Scratch::<u32>::new(2 * n + 16)?;
    let lo = nodes.first().map_or(0, |n| n.addr);
    let hi = nodes.iter().map(|n| n.end).max().unwrap_or(0);
    let mut pages_mem = Scratch::<u64>::new(1 << (PAGE_FILTER_BITS - 6))?;
    let mut m = Marker { nodes, stack: stack_mem.slice(), top: 0, lo, hi, pages: pages_mem.slice() };
    m.fill_page_filter();

    for &(a, b) in &roots.segments {
        m.scan_root(a, b);
    }
    let parked_threads = unsafe { &(&*core::ptr::addr_of!(PARKED))[..parked] };
    for &(a, b) in &roots.anon {
        let holds = |x: u64| x >= a && x < b;
        // Not the program's free-standing memory: stacks (scanned from their
        // stack pointer), module data (scanned above), malloc's own heaps.
        let stack = holds(own.from) || parked_threads.iter().any(|t| holds(t.sp));
        // leakscope's own tables (private with LEAKSCOPE_PRIVATE_TABLES=1) hold every block's address.
        let (ours_lo, ours_hi) = session::mapped_range();
        if a < ours_hi && b > ours_lo {
            continue;
        }
        let module = roots.segments.iter().any(|&(s, e)| s < b && e > a);
        let first_node = m.nodes.partition_point(|n| n.addr < a);
        let malloc_heap = a % GLIBC_HEAP_ALIGN == 0 || m.nodes.get(first_node).is_some_and(|n| n.addr < b);
        if !stack && !module && !malloc_heap {
            m.scan_root(a, b);
        }
    }
    // This thread: registers, stack, TLS and control block.
    for &r in own.regs {
        m.mark_word(r, true);
    }
    if own.to > own.from {
        m.scan_root(own.from, own.to);
    }
    for &(a, b) in own.spills {
        m.scan_root(a, b);
    }
    scan_thread_area(&mut m, roots, thread_pointer());
    m.drain();
    // Stopped threads.
    for t in parked_threads {
        for &r in &t.regs {
            m.mark_word(r, true);
        }
        if let Some(&(_, end)) = roots.mappings.iter().find(|&&(a, b)| t.sp >= a && t.sp < b) {
            // A leaf function may keep pointers in the 128 bytes under sp; a
            // thread blocked in a system call is not in one, and what lies
            // there is left over from calls that returned.
            let in_syscall = unsafe { in_system_call(t.regs[libc::REG_RIP as usize], &roots.mappings) };
            let red_zone_mapped = mapping_of(&roots.mappings, t.sp - RED_ZONE).is_some();
            m.scan_root(if red_zone_mapped && !in_syscall { t.sp - RED_ZONE } else { t.sp }, end);
        }
        scan_thread_area(&mut m, roots, t.fs);
        m.drain();
    }
    // Blocks kept on purpose (leakscope_ignore, or made while tracing was
    // disabled) are roots too: what only they point to is not lost.
    for i in 0..m.nodes.len() {
        if m.nodes[i].flags & layout::entry_flags::IGNORED != 0 && m.nodes[i].state != REACHABLE {
            m.nodes[i].state = REACHABLE;
            m.push(i);
        }
    }
    m.drain();
    // Lost blocks, in address order: each unreached one leads its own group.
    for i in 0..m.nodes.len() {
        if m.nodes[i].state == UNREACHED {
            m.mark_clique(i);
        }
    }

    let off = session::carve(8 * n as u64, 8)?;
    let out = session::at::<u64>(off);
    let mut lost = 0;
    for (i, node) in m.nodes.iter().enumerate() {
        if node.flags & crate::lifecycle::UNREPORTED_FLAGS == 0 && matches!(node.state, DEFINITE | INDIRECT) {
            lost += 1;
        }
        let class = match node.state {
            REACHABLE => LeakClass::Reachable,
            POSSIBLE => LeakClass::Possible,
            DEFINITE => LeakClass::Definite,
            INDIRECT => LeakClass::Indirect,
            _ => LeakClass::Unknown,
        };
        unsafe { *out.add(i) = scan_entry(node.addr, class) };
    }
    Some((off, n as u64, lost))
}

/// Whether a thread stopped at `rip` was inside a system call: the signal
/// interrupted it right after a `syscall` instruction (0f 05).
unsafe fn in_system_call(rip: u64, writable: &[(u64, u64)]) -> bool {
    // rip's page is mapped (the thread ran there); bytes below it on the same
    // page are too. Near a page start, assume no system call (keeps the red zone).
    if rip & 0xfff < 2 || mapping_of(writable, rip).is_some() {
        return false;
    }
    let bytes = core::slice::from_raw_parts((rip - 2) as *const u8, 2);
    bytes == [0x0f, 0x05]
}

/// The readable, writable mapping holding `addr`.
fn mapping_of(mappings: &[(u64, u64)], addr: u64) -> Option<(u64, u64)> {
    mappings.iter().copied().find(|&(a, b)| addr >= a && addr < b)
}

/// A thread's static TLS blocks, its control block (struct pthread: it holds
/// pthread_setspecific values) and its DTV (pointers to dynamic TLS blocks).
/// Every range is checked against the mappings first: a wrong guess must
/// not fault in the middle of the scan.
fn scan_thread_area(m: &mut Marker, roots: &Roots, tp: u64) {
    let Some((map_lo, map_hi)) = (tp != 0).then(|| mapping_of(&roots.mappings, tp)).flatten() else { return };
    let inside = |a: u64, b: u64| a >= map_lo && b <= map_hi && a <= b;
    for &(off, size) in &roots.tls {
        let start = (tp as i64 + off) as u64;
        if inside(start, start + size) {
            m.scan_root(start, start + size);
        }
    }
    let tcb_end = (tp + SIZEOF_PTHREAD.load(Ordering::Relaxed)).min(map_hi);
    m.scan_root(tp, tcb_end);
    // tcbhead_t.dtv (at tp + 8) points at the second of the DTV's 16-byte
    // entries; the first holds the number of module entries, which follow
    // the generation counter.
    let dtv = unsafe { *((tp + 8) as *const u64) };
    if dtv < 16 || dtv % 8 != 0 {
        return;
    }
    let base = dtv - 16;
    // A thread made by pthread_create has its DTV on the heap, a block like
    // any other (reached from the control block); only the main thread's,
    // made by the loader before malloc existed, is a root of its own.
    if m.find(base).is_some() {
        return;
    }
    let Some((d_lo, d_hi)) = mapping_of(&roots.mappings, base) else { return };
    let len = unsafe { *(base as *const u64) };
    let end = base.saturating_add((len.min(1 << 16) + 2) * 16);
    if len > 0 && base >= d_lo && end <= d_hi {
        m.scan_root(base, end);
    }
}

/// The callee-saved registers (rbx, rbp, r12-r15) as they are here.
#[inline(always)]
fn callee_saved_registers() -> [u64; 6] {
    let mut r = [0u64; 6];
    unsafe {
        core::arch::asm!(
            "mov [{p}], rbx", "mov [{p} + 8], rbp", "mov [{p} + 16], r12",
            "mov [{p} + 24], r13", "mov [{p} + 32], r14", "mov [{p} + 40], r15",
            p = in(reg) r.as_mut_ptr(),
            options(nostack, preserves_flags)
        );
    }
    r
}
