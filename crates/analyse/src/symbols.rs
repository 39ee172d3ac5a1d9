//! Turning a process's return-address stacks into report [`Frame`]s: one
//! batched call to the symbolizer per process, each call site expanded into
//! one frame per inline level.

use crate::report::Frame;
use leakscope_format::model::Module;
use std::collections::HashMap;

pub use leakscope_symbolize::{ResolvedAddr, SymFrame, Symbolizer};

/// What [`crate::analyse`] needs from a symbolizer. Implemented by the real
/// [`Symbolizer`]; tests implement it with a table.
pub trait Symbolize {
    /// One result per address, in the same order. `addrs` are call sites.
    fn symbolize(&mut self, modules: &[Module], addrs: &[u64]) -> Vec<ResolvedAddr>;
}

impl Symbolize for Symbolizer {
    fn symbolize(&mut self, modules: &[Module], addrs: &[u64]) -> Vec<ResolvedAddr> {
        Symbolizer::symbolize(self, modules, addrs)
    }
}

/// A symbolizer that knows no symbols: every frame gets only its module
/// (found from the module list) and offset. For `--no-symbols`-style uses and tests.
#[derive(Default, Clone, Copy, Debug)]
pub struct NoSymbols;

impl Symbolize for NoSymbols {
    fn symbolize(&mut self, modules: &[Module], addrs: &[u64]) -> Vec<ResolvedAddr> {
        addrs
            .iter()
            .map(|&a| ResolvedAddr {
                module: module_of(modules, None, a).map(|m| m.path.clone()),
                frames: vec![SymFrame { function: None, file: None, line: None, inlined: false }],
            })
            .collect()
    }
}

/// The call site of a return address.
#[inline]
pub fn call_site(return_addr: u64) -> u64 {
    return_addr.saturating_sub(1)
}

/// The module holding `addr`: the one named `path` if given and it matches,
/// else a loaded one, else any (an unloaded one) whose range holds it.
pub fn module_of<'m>(modules: &'m [Module], path: Option<&str>, addr: u64) -> Option<&'m Module> {
    let holds = |m: &&Module| m.lo <= addr && addr < m.hi;
    if let Some(p) = path {
        if let Some(m) = modules.iter().rev().filter(holds).find(|m| m.path == p) {
            return Some(m);
        }
    }
    modules
        .iter()
        .rev()
        .filter(holds)
        .find(|m| !m.unloaded)
        .or_else(|| modules.iter().rev().find(holds))
}

/// Symbolised frames of every call site of a process, by call site.
pub struct FrameTable {
    frames: HashMap<u64, Vec<Frame>>,
}

impl FrameTable {
    /// Symbolises the call sites of every stack in `stacks` in one batch.
    pub fn build<'s, S, I>(sym: &mut S, modules: &[Module], stacks: I) -> FrameTable
    where
        S: Symbolize + ?Sized,
        I: IntoIterator<Item = &'s [u64]>,
    {
        let mut addrs: Vec<u64> = stacks.into_iter().flatten().map(|&ra| call_site(ra)).collect();
        addrs.sort_unstable();
        addrs.dedup();
        let mut frames = HashMap::with_capacity(addrs.len());
        if addrs.is_empty() {
            return FrameTable { frames };
        }
        let resolved = sym.symbolize(modules, &addrs);
        for (i, &addr) in addrs.iter().enumerate() {
            frames.insert(addr, expand(modules, addr, resolved.get(i)));
        }
        FrameTable { frames }
    }

    /// The frames of a stack of return addresses (innermost first).
    pub fn stack(&self, return_addrs: &[u64]) -> Vec<Frame> {
        let mut out = Vec::with_capacity(return_addrs.len());
        for &ra in return_addrs {
            let a = call_site(ra);
            match self.frames.get(&a) {
                Some(f) => out.extend(f.iter().cloned()),
                None => out.push(bare_frame(a, None, None)),
            }
        }
        out
    }
}

fn bare_frame(addr: u64, module: Option<String>, offset: Option<u64>) -> Frame {
    Frame { address: addr, module, module_offset: offset, function: None, file: None, line: None, inlined: false }
}

/// The report frames of one call site: one per inline level, inlined ones first.
fn expand(modules: &[Module], addr: u64, r: Option<&ResolvedAddr>) -> Vec<Frame> {
    let module = module_of(modules, r.and_then(|r| r.module.as_deref()), addr);
    let path = r.and_then(|r| r.module.clone()).or_else(|| module.map(|m| m.path.clone()));
    let offset = module.map(|m| addr.wrapping_sub(m.base));
    let Some(r) = r.filter(|r| !r.frames.is_empty()) else {
        return vec![bare_frame(addr, path, offset)];
    };
    r.frames
        .iter()
        .map(|f| Frame {
            address: addr,
            module: path.clone(),
            module_offset: offset,
            function: f.function.clone(),
            file: f.file.clone(),
            line: f.line,
            inlined: f.inlined,
        })
        .collect()
}
