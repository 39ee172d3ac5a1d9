//! A per-thread table of learned unwind rules: return address -> how to step
//! from that frame to its caller, applied without calling into framehop.
//!
//! framehop already caches one rule per address, but each step through it
//! costs a module lookup, a closure call per stack read and a general rule
//! interpreter; on deep, varied stacks (30 fresh frames per allocation) that
//! was most of the capture time. framehop does not expose its rules, so each
//! new address is *probed*: framehop unwinds that one frame twice from made-up
//! registers over made-up stack memory, and the table keeps a rule only if one
//! of the shapes below predicts both results exactly. Anything else (DWARF
//! expressions, odd frame-pointer offsets, end of stack) is marked
//! [`Kind::Framehop`] and keeps going through framehop on every step.
//!
//! The shapes are exactly framehop's cacheable x86_64 rules for a frame that
//! is not the innermost (every frame of a walk starts from a return address):
//! - `Sp`: CFA = sp + off, bp unchanged (`OffsetSp`, `JustReturn`);
//! - `SpRestoreBp`: CFA = sp + off, bp = [sp + bp_off] (`OffsetSpAndRestoreBp`);
//! - `Fp`: CFA = bp + 16, bp = [bp] (`UseFramePointer`).
//!
//! and in each the return address is [CFA - 8]. A step leaves the fast path
//! (and framehop decides) whenever framehop's own checks could matter: a
//! read outside the stack, bp = 0, a frame pointer that does not move up, a
//! zero return address.

use crate::walk::Frame;
use crate::modules::Known;
use crate::thread::UnwindCaches;
use framehop::x86_64::UnwindRegsX86_64;
use framehop::{FrameAddress, Unwinder};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum Kind {
    Empty = 0,
    Sp,
    SpRestoreBp,
    Fp,
    /// Not expressible here: always unwind this address with framehop.
    Framehop,
}

/// One table slot: 16 bytes, four to a cache line.
#[derive(Clone, Copy)]
#[repr(C)]
pub struct Rule {
    /// The return address this rule is for (0 = empty slot).
    pc: u64,
    /// CFA offset from sp (`Sp`, `SpRestoreBp`).
    cfa_off: u32,
    /// Where bp was saved, relative to sp (`SpRestoreBp`).
    bp_off: i16,
    kind: Kind,
    _pad: u8,
}

const EMPTY: Rule = Rule { pc: 0, cfa_off: 0, bp_off: 0, kind: Kind::Empty, _pad: 0 };

const MIN_SLOTS: usize = 1024;
const MAX_SLOTS: usize = 1 << 16;

pub struct RuleTable {
    /// The `Known` (module set) the rules were learned under; a new module
    /// set starts an empty table.
    known: usize,
    slots: Vec<Rule>,
    shift: u32,
    lookups: u64,
    misses: u64,
    /// Counters for the stats: steps answered here, and rules probed.
    pub fast_steps: u64,
    pub learned: u64,
}

impl RuleTable {
    pub fn new() -> RuleTable {
        RuleTable { known: 0, slots: Vec::new(), shift: 64, lookups: 0, misses: 0, fast_steps: 0, learned: 0 }
    }

    #[inline(always)]
    fn slot_of(&self, pc: u64) -> usize {
        (pc.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize
    }

    /// Make sure the table belongs to `known`. Call once per walk.
    #[inline]
    pub fn prepare(&mut self, known: &Known) {
        let id = known as *const Known as usize;
        if self.known != id || self.slots.is_empty() {
            self.reset(id, self.slots.len().max(MIN_SLOTS));
        }
    }

    #[cold]
    fn reset(&mut self, known: usize, slots: usize) {
        self.known = known;
        self.slots = vec![EMPTY; slots];
        self.shift = 64 - slots.trailing_zeros();
    }

    /// Grow the table (rehashing what it holds) if more than 1 lookup in 64
    /// missed since the last call. Call now and then, inside a hook guard.
    pub fn grow_if_missing(&mut self) {
        let (lookups, misses) = (self.lookups, self.misses);
        self.lookups = 0;
        self.misses = 0;
        if lookups < 4096 || misses * 64 <= lookups || self.slots.len() >= MAX_SLOTS {
            return;
        }
        let old = core::mem::take(&mut self.slots);
        self.reset(self.known, (old.len() * 4).min(MAX_SLOTS));
        for r in old.into_iter().filter(|r| r.pc != 0) {
            let s = self.slot_of(r.pc);
            self.slots[s] = r;
        }
    }

    /// One step from the frame `f` (its addr, sp and bp set) to its caller,
    /// if the learned rule for `f.addr` applies without any of framehop's
    /// corner cases: fills in the stack words read and whether bp was used,
    /// and returns the caller's (return address, sp, bp). `lo..hi` bounds the
    /// readable stack. None: have framehop do the step.
    #[inline(always)]
    pub fn step(&mut self, known: &Known, caches: &mut UnwindCaches, f: &mut Frame, lo: u64, hi: u64) -> Option<(u64, u64, u64)> {
        let (pc, sp, bp) = (f.addr, f.sp, f.bp);
        self.lookups += 1;
        let s = self.slot_of(pc);
        // s < slots.len(): `shift` keeps exactly log2(len) bits of the hash.
        debug_assert!(s < self.slots.len());
        if unsafe { self.slots.get_unchecked(s) }.pc != pc {
            self.misses += 1;
            self.slots[s] = self.learn(known, caches, pc);
        }
        // Fields are read in place: copying the slot out costs a store-forwarding stall.
        let rule = unsafe { self.slots.get_unchecked(s) };
        // The same bounds as the walk's reader gives framehop.
        let readable = |a: u64| a >= lo && a % 8 == 0 && a.checked_add(8).is_some_and(|end| end <= hi);
        let (ra, new_sp, new_bp) = match rule.kind {
            Kind::Sp | Kind::SpRestoreBp => {
                let cfa = sp.checked_add(rule.cfa_off as u64)?;
                let ra_at = cfa - 8;
                // readable(ra_at), shortened: sp never moves down during a walk
                // (framehop refuses that too), so sp >= lo, and cfa_off is a
                // multiple of 8 that is at least 8.
                debug_assert!(sp >= lo && rule.cfa_off >= 8 && rule.cfa_off % 8 == 0);
                if sp % 8 != 0 || cfa > hi {
                    return None;
                }
                let ra = unsafe { *(ra_at as *const u64) };
                f.read_addr[0] = ra_at;
                f.read_val[0] = ra;
                f.nreads = 1;
                let mut new_bp = bp;
                if rule.kind == Kind::SpRestoreBp {
                    let at = sp.checked_add_signed(rule.bp_off as i64)?;
                    if !readable(at) {
                        return None;
                    }
                    new_bp = unsafe { *(at as *const u64) };
                    f.read_addr[1] = at;
                    f.read_val[1] = new_bp;
                    f.nreads = 2;
                }
                f.uses_bp = false;
                (ra, cfa, new_bp)
            }
            Kind::Fp => {
                // framehop's checks for frame pointers: bp = 0 ends the walk, the CFA must move up.
                let cfa = bp.checked_add(16)?;
                if bp == 0 || cfa <= sp || !readable(bp) || !readable(bp + 8) {
                    return None;
                }
                let (saved_bp, ra) = unsafe { (*(bp as *const u64), *((bp + 8) as *const u64)) };
                f.read_addr = [bp, bp + 8];
                f.read_val = [saved_bp, ra];
                f.nreads = 2;
                f.uses_bp = true;
                (ra, cfa, saved_bp)
            }
            Kind::Framehop | Kind::Empty => return None,
        };
        if ra == 0 {
            return None;
        }
        self.fast_steps += 1;
        Some((ra, new_sp, new_bp))
    }

    /// Find the rule for `pc` by probing framehop (see the module comment).
    #[cold]
    #[inline(never)]
    fn learn(&mut self, known: &Known, caches: &mut UnwindCaches, pc: u64) -> Rule {
        self.learned += 1;
        let framehop_only = Rule { pc, kind: Kind::Framehop, ..EMPTY };
        let Some(address) = FrameAddress::from_return_address(pc) else { return framehop_only };
        // framehop falls back to frame pointers outside known modules; those
        // steps stay on framehop's path, where the walk notices unknown code.
        if !known.contains(address.address_for_lookup()) {
            return framehop_only;
        }
        let first = probe(known, caches, address, pc, PROBES[0]);
        let Some(rule) = first.and_then(|o| fit(pc, PROBES[0], o)) else { return framehop_only };
        let second = probe(known, caches, address, pc, PROBES[1]);
        match second {
            Some(o) if predict(&rule, PROBES[1]) == Some(o) => rule,
            _ => framehop_only,
        }
    }
}

/// Made-up (sp, bp) pairs, far apart and unrelated, so that no two shapes
/// explain the same result. Made-up stack memory holds `fake(address)`.
const PROBES: [(u64, u64); 2] = [(0x1000_0000_0000, 0x1800_0000_0040), (0x2000_0000_1230, 0x2fff_0000_0008)];
const FAKE: u64 = 0x4000_0000_0000_0000;

fn fake(address: u64) -> u64 {
    address ^ FAKE
}

/// What framehop computed for one probe: (return address, new sp, new bp).
type Outcome = (u64, u64, u64);

fn probe(known: &Known, caches: &mut UnwindCaches, address: FrameAddress, pc: u64, (sp, bp): (u64, u64)) -> Option<Outcome> {
    let mut regs = UnwindRegsX86_64::new(pc, sp, bp);
    let mut read = |a: u64| if a % 8 == 0 { Ok(fake(a)) } else { Err(()) };
    match known.unwinder.unwind_frame(address, &mut regs, caches.for_address(pc), &mut read) {
        Ok(Some(ra)) => Some((ra, regs.sp(), regs.bp())),
        _ => None,
    }
}

/// The shape that explains `outcome` from `(sp, bp)`, if any.
fn fit(pc: u64, (sp, bp): (u64, u64), (ra, new_sp, new_bp): Outcome) -> Option<Rule> {
    if ra != fake(new_sp.wrapping_sub(8)) {
        return None;
    }
    if new_sp == bp.wrapping_add(16) {
        return (new_bp == fake(bp)).then_some(Rule { pc, kind: Kind::Fp, ..EMPTY });
    }
    let cfa_off = new_sp.checked_sub(sp).filter(|d| *d >= 8 && d % 8 == 0 && *d <= 8 * u16::MAX as u64)? as u32;
    if new_bp == bp {
        return Some(Rule { pc, kind: Kind::Sp, cfa_off, ..EMPTY });
    }
    let bp_off = (fake(new_bp) as i64).wrapping_sub(sp as i64);
    if bp_off % 8 != 0 || i16::try_from(bp_off).is_err() {
        return None;
    }
    Some(Rule { pc, kind: Kind::SpRestoreBp, cfa_off, bp_off: bp_off as i16, ..EMPTY })
}

/// What `rule` says the step from `(sp, bp)` over made-up memory gives.
fn predict(rule: &Rule, (sp, bp): (u64, u64)) -> Option<Outcome> {
    let (new_sp, new_bp) = match rule.kind {
        Kind::Sp => (sp + rule.cfa_off as u64, bp),
        Kind::SpRestoreBp => (sp + rule.cfa_off as u64, fake(sp.wrapping_add_signed(rule.bp_off as i64))),
        Kind::Fp => (bp + 16, fake(bp)),
        Kind::Framehop | Kind::Empty => return None,
    };
    Some((fake(new_sp - 8), new_sp, new_bp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_recognises_each_shape_and_predict_inverts_it() {
        let p = PROBES[0];
        let sp_rule = fit(1, p, (fake(p.0 + 40), p.0 + 48, p.1)).unwrap();
        assert_eq!((sp_rule.kind, sp_rule.cfa_off), (Kind::Sp, 48));
        let bp_rule = fit(1, p, (fake(p.0 + 24), p.0 + 32, fake(p.0 + 16))).unwrap();
        assert_eq!((bp_rule.kind, bp_rule.cfa_off, bp_rule.bp_off), (Kind::SpRestoreBp, 32, 16));
        let fp_rule = fit(1, p, (fake(p.1 + 8), p.1 + 16, fake(p.1))).unwrap();
        assert_eq!(fp_rule.kind, Kind::Fp);
        for rule in [sp_rule, bp_rule, fp_rule] {
            for probe in PROBES {
                let (ra, sp, bp) = predict(&rule, probe).unwrap();
                let refit = fit(1, probe, (ra, sp, bp)).unwrap();
                assert_eq!((refit.kind, refit.cfa_off, refit.bp_off), (rule.kind, rule.cfa_off, rule.bp_off));
            }
        }
    }

    #[test]
    fn fit_rejects_what_no_shape_explains() {
        let p = PROBES[0];
        // Return address not at CFA - 8.
        assert!(fit(1, p, (fake(p.0 + 8), p.0 + 48, p.1)).is_none());
        // CFA = bp + 32 (a frame-pointer rule with an odd offset).
        assert!(fit(1, p, (fake(p.1 + 24), p.1 + 32, fake(p.1))).is_none());
        // sp moving down, or by a non-multiple of 8.
        assert!(fit(1, p, (fake(p.0 - 16), p.0 - 8, p.1)).is_none());
        assert!(fit(1, p, (fake(p.0 + 4), p.0 + 12, p.1)).is_none());
        // bp from a made-up value that is not a stack word near sp.
        assert!(fit(1, p, (fake(p.0 + 8), p.0 + 16, 12345)).is_none());
    }
}
