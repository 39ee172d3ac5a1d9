//! Per-thread state: the reentrancy flag and the unwinding scratch space.

use core::ptr::null_mut;
use core::sync::atomic::{AtomicPtr, AtomicU32, Ordering};
use framehop::x86_64::CacheX86_64;
use framehop::MustNotAllocateDuringUnwind;
use leakscope_format::layout;

// Per thread (`tls.rs`): the reentrancy flag, set while this thread runs
// leakscope code and checked before any lock is taken (a call that arrives
// while it is set came from leakscope itself, or from libc working for it,
// and is only forwarded), and the pointer to the thread's ThreadExtra.

/// Allocated once per thread (through leakscope's internal allocator) and
/// freed by a pthread key destructor when the thread exits.
pub type UnwindCache = CacheX86_64<MustNotAllocateDuringUnwind>;

/// framehop's rule cache is direct-mapped with 509 slots, too few for a big
/// program (cc1, python): every miss re-parses DWARF CFI. A thread whose walks
/// miss often gets more caches (up to 16, ~16 KiB each), chosen by a hash of
/// the address; a thread that allocates from a few places keeps one.
pub struct UnwindCaches {
    caches: Vec<UnwindCache>,
    /// Misses and lookups when the size was last reconsidered.
    misses_then: u64,
    lookups_then: u64,
    /// Hits and misses since the previous reconsideration, for the stats.
    pub recent_hits: u64,
    pub recent_misses: u64,
}

const MAX_UNWIND_CACHES: usize = 16;

impl UnwindCaches {
    fn new() -> UnwindCaches {
        UnwindCaches { caches: vec![CacheX86_64::new_in()], misses_then: 0, lookups_then: 0, recent_hits: 0, recent_misses: 0 }
    }

    #[inline]
    pub fn for_address(&mut self, addr: u64) -> &mut UnwindCache {
        // Not the address modulo 509, which picks the slot inside a cache.
        let i = ((addr >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize & (self.caches.len() - 1);
        &mut self.caches[i]
    }

    /// Double the caches if more than 1 lookup in 50 missed since last time.
    /// Call now and then, inside a hook guard (it allocates).
    pub fn grow_if_missing(&mut self) {
        let (mut misses, mut lookups) = (0, 0);
        for c in &self.caches {
            let s = c.stats();
            misses += s.misses();
            lookups += s.total();
        }
        let (dm, dl) = (misses - self.misses_then, lookups - self.lookups_then);
        self.recent_misses = dm;
        self.recent_hits = dl - dm;
        if dl > 1000 && dm * 50 > dl && self.caches.len() < MAX_UNWIND_CACHES {
            let n = self.caches.len();
            self.caches.extend((0..n).map(|_| CacheX86_64::new_in()));
        }
        self.misses_then = misses;
        self.lookups_then = lookups;
    }
}

pub struct ThreadExtra {
    pub unwind_cache: UnwindCaches,
    /// Learned unwind rules, consulted before framehop (see `rules`).
    pub rules: crate::rules::RuleTable,
    /// This thread's ring of recent frees, made on its first free (see `freed`).
    pub freed: Option<&'static crate::freed::Ring>,
    /// Top of this thread's stack: stack reads are bounded by [sp, stack_hi).
    pub stack_hi: u64,
    /// Cache of recently interned stacks: hash -> stack id.
    pub recent: crate::stacks::RecentStacks,
    /// Cost counters ([`layout::stat`]), added to the session header now and then.
    pub stats: [u64; layout::STAT_COUNT],
    /// The previous stack walk, updated in place, and scratch for new frames (see `capture`).
    walk: crate::walk::Walk,
    scratch: crate::walk::Fresh,
    /// With LEAKSCOPE_CHECK_WALKS=1, every capture is redone from scratch here and compared.
    check: Option<Box<crate::walk::Walk>>,
    refresh: RefreshBackoff,
}

/// Walks that meet unknown code ask whether the loader added modules, which
/// costs a call into the loader. Code that is never a module (JIT) would ask
/// on every walk: after many fruitless asks, ask only now and then.
#[derive(Default)]
pub struct RefreshBackoff {
    fruitless: u32,
    skipped: u32,
}

impl RefreshBackoff {
    pub fn should_check(&mut self) -> bool {
        if self.fruitless < 64 {
            return true;
        }
        self.skipped += 1;
        if self.skipped >= 64 {
            self.skipped = 0;
            return true;
        }
        false
    }
    pub fn changed(&mut self) {
        self.fruitless = 0;
    }
    pub fn unchanged(&mut self) {
        self.fruitless = self.fruitless.saturating_add(1);
    }
}

impl ThreadExtra {
    #[inline]
    pub fn freed_ring(&mut self) -> &'static crate::freed::Ring {
        *self.freed.get_or_insert_with(crate::freed::adopt_or_make)
    }

    /// Borrow the pieces a capture needs at once.
    pub fn parts(&mut self) -> CaptureParts<'_> {
        CaptureParts {
            walk: &mut self.walk,
            scratch: &mut self.scratch,
            check: &mut self.check,
            refresh: &mut self.refresh,
            cache: &mut self.unwind_cache,
            rules: &mut self.rules,
            recent: &mut self.recent, stats: &mut self.stats, stack_hi: self.stack_hi }
    }
    /// Add this thread's counters to the session's and start again from zero.
    pub fn flush_stats(&mut self) {
        self.stats[layout::stat::FAST_STEPS] += core::mem::take(&mut self.rules.fast_steps);
        self.stats[layout::stat::RULES_LEARNED] += core::mem::take(&mut self.rules.learned);
        if crate::session::is_mapped() {
            let h = crate::session::header();
            for (i, c) in self.stats.iter_mut().enumerate() {
                if *c != 0 {
                    h.stats[i].fetch_add(*c, Ordering::Relaxed);
                    *c = 0;
                }
            }
        }
    }
}

pub struct CaptureParts<'a> {
    pub walk: &'a mut crate::walk::Walk,
    pub scratch: &'a mut crate::walk::Fresh,
    pub check: &'a mut Option<Box<crate::walk::Walk>>,
    pub refresh: &'a mut RefreshBackoff,
    pub cache: &'a mut UnwindCaches,
    pub rules: &'a mut crate::rules::RuleTable,
    pub recent: &'a mut crate::stacks::RecentStacks,
    pub stats: &'a mut [u64; layout::STAT_COUNT],
    pub stack_hi: u64,
}

pub struct HookGuard(());

impl Drop for HookGuard {
    #[inline]
    fn drop(&mut self) {
        unsafe { (*crate::tls::block()).in_hook = 0 };
    }
}

/// Enter leakscope code on this thread; None if we are already inside it.
#[inline]
pub fn enter() -> Option<HookGuard> {
    let b = crate::tls::block();
    unsafe {
        if (*b).in_hook != 0 {
            return None;
        }
        (*b).in_hook = 1;
    }
    Some(HookGuard(()))
}

#[inline]
pub fn in_hook() -> bool {
    unsafe { (*crate::tls::block()).in_hook != 0 }
}

static KEY: AtomicU32 = AtomicU32::new(u32::MAX);

unsafe extern "C" fn free_extra(p: *mut libc::c_void) {
    if !p.is_null() {
        let b = crate::tls::block();
        if (*b).extra == p as *mut ThreadExtra {
            (*b).extra = null_mut();
        }
        let extra = &mut *(p as *mut ThreadExtra);
        if let Some(ring) = extra.freed.take() {
            ring.release();
        }
        extra.stats[layout::stat::THREADS] += 1;
        extra.flush_stats();
        if !keep_spare(p as *mut ThreadExtra) {
            drop(Box::from_raw(p as *mut ThreadExtra));
        }
    }
}

/// ThreadExtras of threads that have ended, kept for the next new threads: a
/// new thread then skips mapping and zeroing ~150 KiB, and it starts with the
/// learned rules, framehop caches and recent stacks of its predecessor (facts
/// about the process's code and stack store, not about one thread). Measured:
/// 4000 short threads cost 22 us each without this. Slots are taken with an
/// atomic swap: no lock that fork could leave held, and no ABA problem.
const SPARE_EXTRAS: usize = 8;
static SPARES: [AtomicPtr<ThreadExtra>; SPARE_EXTRAS] = [const { AtomicPtr::new(null_mut()) }; SPARE_EXTRAS];

fn keep_spare(p: *mut ThreadExtra) -> bool {
    SPARES.iter().any(|slot| {
        slot.load(Ordering::Relaxed).is_null()
            && slot.compare_exchange(null_mut(), p, Ordering::AcqRel, Ordering::Relaxed).is_ok()
    })
}

fn take_spare() -> Option<*mut ThreadExtra> {
    SPARES
        .iter()
        .filter(|slot| !slot.load(Ordering::Relaxed).is_null())
        .map(|slot| slot.swap(null_mut(), Ordering::Acquire))
        .find(|p| !p.is_null())
}

/// Called once at start-up, from inside a hook guard.
pub fn init_key() {
    let mut key: libc::pthread_key_t = 0;
    if unsafe { libc::pthread_key_create(&mut key, Some(free_extra)) } == 0 {
        KEY.store(key, Ordering::Release);
    }
}

/// The calling thread's ring of recent frees, if it has one (never allocates).
pub fn current_freed_ring() -> Option<&'static crate::freed::Ring> {
    let p = unsafe { (*crate::tls::block()).extra };
    unsafe { p.as_ref() }.and_then(|e| e.freed)
}

/// Fold the calling thread's counters into the session (at exit).
pub fn flush_current_stats() {
    let p = unsafe { (*crate::tls::block()).extra };
    if !p.is_null() {
        let extra = unsafe { &mut *p };
        extra.stats[layout::stat::THREADS] += 1;
        extra.flush_stats();
    }
}

/// This thread's scratch space; must be called inside a hook guard.
#[inline]
pub fn extra() -> Option<&'static mut ThreadExtra> {
    let p = unsafe { (*crate::tls::block()).extra };
    if !p.is_null() {
        return Some(unsafe { &mut *p });
    }
    new_extra()
}

/// The calling thread's first ThreadExtra: a spare one if a thread has ended, else a new one.
#[cold]
#[inline(never)]
fn new_extra() -> Option<&'static mut ThreadExtra> {
    let p = take_spare().unwrap_or_else(fresh_extra);
    // What belongs to the thread (a spare's previous owner's counters were
    // flushed and its ring released when that thread ended).
    let x = unsafe { &mut *p };
    x.stack_hi = stack_bounds();
    x.walk.reusable = false;
    if let Some(check) = x.check.as_mut() {
        check.reusable = false;
    }
    x.refresh = RefreshBackoff::default();
    unsafe { (*crate::tls::block()).extra = p };
    let key = KEY.load(Ordering::Acquire);
    if key != u32::MAX {
        unsafe { libc::pthread_setspecific(key, p as *const libc::c_void) };
    }
    Some(x)
}

/// ThreadExtra is ~150 KiB: built in place on the heap, never on the stack
/// (a thread may have a small stack, and a big frame here would also make the
/// fast path above probe its pages on every call).
fn fresh_extra() -> *mut ThreadExtra {
    let mut b: Box<core::mem::MaybeUninit<ThreadExtra>> = Box::new_zeroed();
    let x = b.as_mut_ptr();
    // All-zero is the initial state of every other field (stack_hi and
    // refresh are set by `new_extra` for each thread).
    unsafe {
        core::ptr::addr_of_mut!((*x).unwind_cache).write(UnwindCaches::new());
        core::ptr::addr_of_mut!((*x).rules).write(crate::rules::RuleTable::new());
        core::ptr::addr_of_mut!((*x).recent).write(crate::stacks::RecentStacks::new());
        core::ptr::addr_of_mut!((*x).check).write(
            crate::lifecycle::CHECK_WALKS.load(Ordering::Relaxed).then(crate::walk::Walk::boxed),
        );
        crate::walk::Walk::init_in_place(core::ptr::addr_of_mut!((*x).walk));
    }
    Box::into_raw(unsafe { b.assume_init() })
}

extern "C" {
    static __libc_stack_end: *mut libc::c_void;
}

/// The top of the calling thread's stack, without allocating: glibc's
/// pthread_getattr_np reads /proc/self/maps (through malloc) for the main thread,
/// so the main thread's top comes from `__libc_stack_end` instead.
fn stack_bounds() -> u64 {
    let is_main = unsafe { libc::getpid() as i64 == libc::syscall(libc::SYS_gettid) };
    if is_main {
        let top = unsafe { __libc_stack_end } as u64;
        // The page holding __libc_stack_end is mapped; nothing above _start's frame is needed.
        return (top + 4096) & !4095;
    }
    unsafe {
        let mut attr: libc::pthread_attr_t = core::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) == 0 {
            let mut addr: *mut libc::c_void = core::ptr::null_mut();
            let mut size: libc::size_t = 0;
            libc::pthread_attr_getstack(&attr, &mut addr, &mut size);
            libc::pthread_attr_destroy(&mut attr);
            return addr as u64 + size as u64;
        }
    }
    0
}
