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
    // With debug information, leakscope.h's always-inline helpers come first,
    // as inlined frames: the function that used the macro follows them.
    if !loc.function.is_empty() {
        let named = |f: &Frame| f.function.as_deref().is_some_and(|n| same_function(n, &loc.function));
        if let Some(i) = site.iter().position(named) {
            if i > 0 && site[..i].iter().all(|f| f.inlined) {
                site.drain(..i);
            }
        }
    }
    let first = &mut site[0];
    let same = match &first.function {
        None => true,
        Some(f) => loc.function.is_empty() || same_function(f, &loc.function),
    };
    if same {
        if first.line.is_none() && loc.line != 0 {
            // No line information: the program's own words are all there is.
            first.file = non_empty(&loc.file).or(first.file.take());
            first.line = Some(loc.line);
            // A symbol of a compiler's copy (`make_name.constprop.0`) by its source name.
            if first.function.as_deref().is_some_and(|f| !f.contains('(') && f.contains('.')) {
                first.function = None;
            }
        }
        if first.function.is_none() {
            first.function = non_empty(&loc.function);
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

#[cfg(test)]
mod location_tests {
    use super::*;
    use leakscope_format::layout::location_frame;

    fn frame(function: Option<&str>, file: Option<&str>, line: Option<u32>, inlined: bool) -> Frame {
        Frame {
            address: 0x1234,
            module: Some("/bin/prog".into()),
            module_offset: Some(0x234),
            function: function.map(Into::into),
            file: file.map(Into::into),
            line,
            inlined,
        }
    }

    fn loc(function: &str, line: u32) -> SourceLocation {
        SourceLocation { file: "prog.c".into(), line, function: function.into() }
    }

    fn table(site: Vec<Frame>, locations: Vec<SourceLocation>) -> FrameTable {
        FrameTable { frames: HashMap::from([(0x1234, site)]), locations }
    }

    #[test]
    fn a_location_fills_in_a_frame_without_debug_information() {
        let t = table(vec![frame(Some("main"), None, None, false)], vec![loc("main", 12)]);
        let st = t.stack(&[location_frame(0), 0x1235]);
        assert_eq!(st, [frame(Some("main"), Some("prog.c"), Some(12), false)]);
        // A compiler's copy of the function goes by its source name.
        let t = table(vec![frame(Some("make.constprop.0"), None, None, false)], vec![loc("make", 3)]);
        assert_eq!(t.stack(&[location_frame(0), 0x1235])[0].function.as_deref(), Some("make"));
        // Nothing known at all: all from the location.
        let t = table(vec![frame(None, None, None, false)], vec![loc("f", 5)]);
        assert_eq!(t.stack(&[location_frame(0), 0x1235]), [frame(Some("f"), Some("prog.c"), Some(5), false)]);
    }

    #[test]
    fn debug_information_wins_and_the_header_helpers_go() {
        let site = vec![
            frame(Some("leakscope__malloc"), Some("/usr/include/leakscope.h"), Some(90), true),
            frame(Some("main"), Some("/src/prog.c"), Some(12), false),
        ];
        let t = table(site, vec![loc("main", 12)]);
        assert_eq!(t.stack(&[location_frame(0), 0x1235]), [frame(Some("main"), Some("/src/prog.c"), Some(12), false)]);
    }

    #[test]
    fn another_function_comes_as_an_inlined_frame() {
        let t = table(vec![frame(Some("main"), None, None, false)], vec![loc("helper", 7)]);
        let st = t.stack(&[location_frame(0), 0x1235]);
        assert_eq!(st, [frame(Some("helper"), Some("prog.c"), Some(7), true), frame(Some("main"), None, None, false)]);
    }

    #[test]
    fn a_location_alone_has_no_module() {
        let t = table(vec![], vec![loc("main", 12)]);
        let st = t.stack(&[location_frame(0)]);
        assert_eq!(
            st,
            [Frame {
                address: 0,
                module: None,
                module_offset: None,
                function: Some("main".into()),
                file: Some("prog.c".into()),
                line: Some(12),
                inlined: false
            }]
        );
        // An index with no location is skipped.
        assert_eq!(t.stack(&[location_frame(9)]), []);
    }
}
