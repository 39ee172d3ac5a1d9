//! Turning a process's return-address stacks into report [`Frame`]s: one
//! batched call to the symbolizer per process, each call site expanded into
//! one frame per inline level.

use crate::report::Frame;
use leakscope_format::layout::location_frame_value;
use leakscope_format::model::{Module, SourceLocation};
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
    /// The process's source locations (`ProcessTrace::locations`), named by location frames.
    locations: Vec<SourceLocation>,
}

impl FrameTable {
    /// Symbolises the call sites of every stack in `stacks` in one batch.
    pub fn build<'s, S, I>(sym: &mut S, modules: &[Module], stacks: I) -> FrameTable
    where
        S: Symbolize + ?Sized,
        I: IntoIterator<Item = &'s [u64]>,
    {
        Self::build_with_locations(sym, modules, &[], stacks)
    }

    /// [`FrameTable::build`] for stacks that may hold location frames (the
    /// `leakscope.h` macros), which name entries of `locations`.
    pub fn build_with_locations<'s, S, I>(
        sym: &mut S,
        modules: &[Module],
        locations: &[SourceLocation],
        stacks: I,
    ) -> FrameTable
    where
        S: Symbolize + ?Sized,
        I: IntoIterator<Item = &'s [u64]>,
    {
        let mut addrs: Vec<u64> = stacks
            .into_iter()
            .flatten()
            .filter(|&&f| location_frame_value(f).is_none())
            .map(|&ra| call_site(ra))
            .collect();
        addrs.sort_unstable();
        addrs.dedup();
        let mut frames = HashMap::with_capacity(addrs.len());
        let locations = locations.to_vec();
        if addrs.is_empty() {
            return FrameTable { frames, locations };
        }
        let resolved = sym.symbolize(modules, &addrs);
        for (i, &addr) in addrs.iter().enumerate() {
            frames.insert(addr, expand(modules, addr, resolved.get(i)));
        }
        FrameTable { frames, locations }
    }

    /// The frames of a stack of return addresses (innermost first).
    ///
    /// A location frame describes the call site that follows it: its
    /// function, file and line fill in what the debug information does not
    /// give (a binary built without `-g`); when they name another function
    /// than the call site's (a macro call inlined from elsewhere), they come
    /// as an inlined frame of their own. A location with no call site after it
    /// becomes a frame without a module, at address 0.
    pub fn stack(&self, return_addrs: &[u64]) -> Vec<Frame> {
        let mut out = Vec::with_capacity(return_addrs.len());
        let mut pending: Option<&SourceLocation> = None;
        for &ra in return_addrs {
            if let Some(i) = location_frame_value(ra) {
                if let Some(loc) = pending.take() {
                    out.push(location_frame(loc));
                }
                pending = self.locations.get(i as usize);
                continue;
            }
            let a = call_site(ra);
            let site = match self.frames.get(&a) {
                Some(f) => f.clone(),
                None => vec![bare_frame(a, None, None)],
            };
            match pending.take() {
                Some(loc) => out.extend(apply_location(site, loc)),
                None => out.extend(site),
            }
        }
        if let Some(loc) = pending {
            out.push(location_frame(loc));
        }
        out
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

/// A source location on its own: no address, no module.
fn location_frame(loc: &SourceLocation) -> Frame {
    Frame {
        address: 0,
        module: None,
        module_offset: None,
        function: non_empty(&loc.function),
        file: non_empty(&loc.file),
        line: (loc.line != 0).then_some(loc.line),
        inlined: false,
    }
}

/// Whether a symbolised function name is the `__func__` of a location:
/// equal, or the same name with a C++ parameter list, namespace or class, or
/// a compiler suffix (`.constprop.0`).
fn same_function(symbol: &str, func: &str) -> bool {
    let base = match symbol.find('(') {
        Some(i) if i > 0 => &symbol[..i],
        _ => symbol,
    };
    let base = base.split('.').next().unwrap_or(base);
    base == func || base.ends_with(&format!("::{func}"))
}

/// The frames of a call site (innermost first) completed with the location
/// the call carried.
fn apply_location(mut site: Vec<Frame>, loc: &SourceLocation) -> Vec<Frame> {
    let first = &mut site[0];
    let same = match &first.function {
        None => true,
        Some(f) => loc.function.is_empty() || same_function(f, &loc.function),
    };
    if same {
        if first.function.is_none() {
            first.function = non_empty(&loc.function);
        }
        if first.line.is_none() && loc.line != 0 {
            first.file = non_empty(&loc.file).or(first.file.take());
            first.line = Some(loc.line);
        }
        return site;
    }
    let mut f = location_frame(loc);
    f.address = first.address;
    f.module = first.module.clone();
    f.module_offset = first.module_offset;
    f.inlined = true;
    site.insert(0, f);
    site
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
