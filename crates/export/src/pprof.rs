//! A gzipped pprof profile of the leaks (`profile.proto`, as `go tool pprof`,
//! Grafana Pyroscope and speedscope read it).
//!
//! Two sample types, `leaked_blocks`/`count` and `leaked_bytes`/`bytes` (the
//! default); one sample per leak record (every class but `reachable`), whose
//! locations are its stack, innermost first. Functions, files and lines are
//! filled in (`has_functions` etc. set on every mapping), so no consumer needs
//! the binaries. Samples carry the labels `pid`, `allocator`, `class` and
//! `fingerprint`.
//!
//! The protobuf encoding is written by hand below rather than generated with
//! prost: `profile.proto` is small and frozen, and the profile is only ever
//! written, never read, so a generated module (plus prost and its derive
//! macros in every build) would buy nothing over ~60 lines of wire format.
//! Field numbers are those of
//! github.com/google/pprof/proto/profile.proto.

use crate::common::{class_name, is_leaked, program_name};
use flate2::write::GzEncoder;
use flate2::Compression;
use leakscope_analyse::report::{Frame, Report};
use std::collections::HashMap;
use std::io::Write;

/// The protobuf wire format, as much of it as `profile.proto` uses.
mod wire {
    pub fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    fn key(out: &mut Vec<u8>, field: u32, wire_type: u8) {
        varint(out, ((field as u64) << 3) | wire_type as u64);
    }

    /// A varint field (int64, uint64, bool); zero is the default and is left out.
    pub fn uint(out: &mut Vec<u8>, field: u32, v: u64) {
        if v != 0 {
            key(out, field, 0);
            varint(out, v);
        }
    }

    pub fn int(out: &mut Vec<u8>, field: u32, v: i64) {
        uint(out, field, v as u64);
    }

    /// A length-delimited field: bytes, string or embedded message. Always written.
    pub fn bytes(out: &mut Vec<u8>, field: u32, v: &[u8]) {
        key(out, field, 2);
        varint(out, v.len() as u64);
        out.extend_from_slice(v);
    }

    /// A packed repeated varint field.
    pub fn packed(out: &mut Vec<u8>, field: u32, vs: &[u64]) {
        if vs.is_empty() {
            return;
        }
        let mut body = Vec::new();
        for &v in vs {
            varint(&mut body, v);
        }
        bytes(out, field, &body);
    }
}

/// Interned strings: index 0 is "".
#[derive(Default)]
struct Strings {
    table: Vec<String>,
    index: HashMap<String, i64>,
}

impl Strings {
    fn new() -> Strings {
        let mut s = Strings::default();
        s.id("");
        s
    }

    fn id(&mut self, s: &str) -> i64 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.table.len() as i64;
        self.table.push(s.to_string());
        self.index.insert(s.to_string(), i);
        i
    }
}

struct Mapping {
    id: u64,
    start: u64,
    limit: u64,
    file: i64,
}

/// The uncompressed profile (a serialised `perftools.profiles.Profile`).
pub fn encode(report: &Report) -> Vec<u8> {
    let mut strings = Strings::new();
    let mut msg = Vec::new();

    // sample_type = 1, default_sample_type = 14
    for (ty, unit) in [("leaked_blocks", "count"), ("leaked_bytes", "bytes")] {
        let mut vt = Vec::new();
        wire::int(&mut vt, 1, strings.id(ty));
        wire::int(&mut vt, 2, strings.id(unit));
        wire::bytes(&mut msg, 1, &vt);
    }

    let mut mappings: Vec<Mapping> = Vec::new();
    let mut mapping_of: HashMap<(u32, u32, String, u64), usize> = HashMap::new();
    let mut functions: HashMap<(String, String), u64> = HashMap::new();
    let mut function_msgs: Vec<Vec<u8>> = Vec::new();
    let mut locations: HashMap<(u32, u32, u64), u64> = HashMap::new();
    let mut location_msgs: Vec<Vec<u8>> = Vec::new();

    for p in &report.processes {
        for l in p.leaks.iter().filter(|l| is_leaked(l)) {
            let mut ids: Vec<u64> = Vec::new();
            // Consecutive frames with one address are one location with one
            // line per inline level (innermost first, as pprof wants).
            let mut i = 0;
            while i < l.stack.len() {
                let addr = l.stack[i].address;
                let mut j = i + 1;
                while j < l.stack.len() && l.stack[j].address == addr && l.stack[j - 1].inlined {
                    j += 1;
                }
                let frames = &l.stack[i..j];
                let key = (p.pid, p.exec_index, addr);
                let id = match locations.get(&key) {
                    Some(&id) => id,
                    None => {
                        let id = location_msgs.len() as u64 + 1;
                        let mapping_id = frames[0]
                            .module
                            .as_ref()
                            .map(|m| {
                                let bias = addr.wrapping_sub(frames[0].module_offset.unwrap_or(addr));
                                let n =
                                    *mapping_of.entry((p.pid, p.exec_index, m.clone(), bias)).or_insert_with(|| {
                                        mappings.push(Mapping {
                                            id: mappings.len() as u64 + 1,
                                            start: bias,
                                            limit: bias,
                                            file: strings.id(m),
                                        });
                                        mappings.len() - 1
                                    });
                                let mp = &mut mappings[n];
                                mp.start = mp.start.min(addr);
                                mp.limit = mp.limit.max(addr + 1);
                                mp.id
                            })
                            .unwrap_or(0);
                        let mut loc = Vec::new();
                        wire::uint(&mut loc, 1, id);
                        wire::uint(&mut loc, 2, mapping_id);
                        wire::uint(&mut loc, 3, addr);
                        for f in frames {
                            let fid = function_id(f, &mut strings, &mut functions, &mut function_msgs);
                            let mut line = Vec::new();
                            wire::uint(&mut line, 1, fid);
                            wire::int(&mut line, 2, f.line.unwrap_or(0) as i64);
                            wire::bytes(&mut loc, 4, &line);
                        }
                        location_msgs.push(loc);
                        locations.insert(key, id);
                        id
                    }
                };
                ids.push(id);
                i = j;
            }
            let mut sample = Vec::new();
            wire::packed(&mut sample, 1, &ids);
            wire::packed(&mut sample, 2, &[l.blocks, l.bytes]);
            let mut label = |key: &str, s: Option<&str>, num: i64| {
                let mut lb = Vec::new();
                wire::int(&mut lb, 1, strings.id(key));
                match s {
                    Some(s) => wire::int(&mut lb, 2, strings.id(s)),
                    None => wire::int(&mut lb, 3, num),
                }
                wire::bytes(&mut sample, 3, &lb);
            };
            label("pid", None, p.pid as i64);
            label("allocator", Some(l.allocator.name()), 0);
            label("class", Some(&class_name(l)), 0);
            if !l.fingerprint.is_empty() {
                label("fingerprint", Some(&l.fingerprint), 0);
            }
            wire::bytes(&mut msg, 2, &sample);
        }
    }

    for m in &mappings {
        let mut mm = Vec::new();
        wire::uint(&mut mm, 1, m.id);
        wire::uint(&mut mm, 2, m.start);
        wire::uint(&mut mm, 3, m.limit.max(m.start + 1));
        wire::int(&mut mm, 5, m.file);
        for field in 7..=10 {
            wire::uint(&mut mm, field, 1); // has_functions, filenames, line_numbers, inline_frames
        }
        wire::bytes(&mut msg, 3, &mm);
    }
    for loc in &location_msgs {
        wire::bytes(&mut msg, 4, loc);
    }
    for f in &function_msgs {
        wire::bytes(&mut msg, 5, f);
    }
    let mut comments = vec![format!("leakscope {}: leaked memory at exit", report.tool.version)];
    for p in &report.processes {
        comments.push(format!("pid {}: {} ({})", p.pid, crate::common::command_line(p), program_name(p)));
    }
    let comment_ids: Vec<i64> = comments.iter().map(|c| strings.id(c)).collect();
    let default_type = strings.id("leaked_bytes");
    // string_table = 6 (every string is interned by now)
    for s in &strings.table {
        wire::bytes(&mut msg, 6, s.as_bytes());
    }
    let mut period_type = Vec::new();
    wire::int(&mut period_type, 1, strings.index["leaked_bytes"]);
    wire::int(&mut period_type, 2, strings.index["bytes"]);
    wire::bytes(&mut msg, 11, &period_type);
    wire::int(&mut msg, 12, 1);
    wire::packed(&mut msg, 13, &comment_ids.iter().map(|&c| c as u64).collect::<Vec<_>>());
    wire::int(&mut msg, 14, default_type);
    msg
}

fn function_id(
    f: &Frame,
    strings: &mut Strings,
    ids: &mut HashMap<(String, String), u64>,
    msgs: &mut Vec<Vec<u8>>,
) -> u64 {
    let name = crate::common::function_label(f);
    let file = f.file.clone().unwrap_or_else(|| f.module.clone().unwrap_or_default());
    if let Some(&id) = ids.get(&(name.clone(), file.clone())) {
        return id;
    }
    let id = msgs.len() as u64 + 1;
    let mut m = Vec::new();
    wire::uint(&mut m, 1, id);
    wire::int(&mut m, 2, strings.id(&name));
    wire::int(&mut m, 3, strings.id(&name));
    wire::int(&mut m, 4, strings.id(&file));
    msgs.push(m);
    ids.insert((name, file), id);
    id
}

/// The profile, gzipped.
pub fn gzipped(report: &Report) -> std::io::Result<Vec<u8>> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(&encode(report))?;
    gz.finish()
}

/// Writes [`gzipped`] to `path`.
pub fn write(report: &Report, path: &std::path::Path) -> std::io::Result<()> {
    std::fs::write(path, gzipped(report)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata;

    /// A minimal protobuf reader: (field, wire type, varint value or bytes).
    fn fields(mut b: &[u8]) -> Vec<(u32, u64, Vec<u8>)> {
        fn varint(b: &mut &[u8]) -> u64 {
            let mut v = 0u64;
            let mut shift = 0;
            loop {
                let byte = b[0];
                *b = &b[1..];
                v |= ((byte & 0x7f) as u64) << shift;
                if byte < 0x80 {
                    return v;
                }
                shift += 7;
            }
        }
        let mut out = Vec::new();
        while !b.is_empty() {
            let k = varint(&mut b);
            let (field, ty) = ((k >> 3) as u32, k & 7);
            match ty {
                0 => out.push((field, varint(&mut b), vec![])),
                2 => {
                    let n = varint(&mut b) as usize;
                    out.push((field, n as u64, b[..n].to_vec()));
                    b = &b[n..];
                }
                _ => panic!("unexpected wire type {ty}"),
            }
        }
        out
    }

    fn packed(b: &[u8]) -> Vec<u64> {
        let mut v = Vec::new();
        let mut cur = 0u64;
        let mut shift = 0;
        for &byte in b {
            cur |= ((byte & 0x7f) as u64) << shift;
            if byte < 0x80 {
                v.push(cur);
                cur = 0;
                shift = 0;
            } else {
                shift += 7;
            }
        }
        v
    }

    #[test]
    fn varints_are_little_endian_base_128() {
        let mut v = Vec::new();
        wire::varint(&mut v, 300);
        assert_eq!(v, [0xac, 0x02]);
        let mut v = Vec::new();
        wire::int(&mut v, 2, -1);
        assert_eq!(v.len(), 11, "negative int64 takes ten bytes after the key");
    }

    #[test]
    fn samples_carry_blocks_and_bytes_and_strings_are_interned() {
        let msg = encode(&testdata::report());
        let top = fields(&msg);
        let strings: Vec<String> =
            top.iter().filter(|f| f.0 == 6).map(|f| String::from_utf8(f.2.clone()).unwrap()).collect();
        assert_eq!(strings[0], "");
        for s in ["leaked_bytes", "leaked_blocks", "bytes", "count", "make_record", "/src/leaky.c", "pid", "new[]"] {
            assert!(strings.iter().any(|x| x == s), "{s} missing from {strings:?}");
        }
        let samples: Vec<Vec<(u32, u64, Vec<u8>)>> = top.iter().filter(|f| f.0 == 2).map(|f| fields(&f.2)).collect();
        let values: Vec<Vec<u64>> = samples.iter().map(|s| packed(&s.iter().find(|f| f.0 == 2).unwrap().2)).collect();
        assert!(
            values.contains(&vec![2, 40]) && values.contains(&vec![1, 13]) && values.contains(&vec![1, 8]),
            "{values:?}"
        );
        assert!(!values.iter().any(|v| v[1] == 64), "reachable memory is no sample: {values:?}");
        // The inlined frame and its caller share one location with two lines.
        let locs: Vec<Vec<(u32, u64, Vec<u8>)>> = top.iter().filter(|f| f.0 == 4).map(|f| fields(&f.2)).collect();
        assert!(locs.iter().any(|l| l.iter().filter(|f| f.0 == 4).count() == 2), "no location with two lines");
        let default = top.iter().find(|f| f.0 == 14).unwrap().1 as usize;
        assert_eq!(strings[default], "leaked_bytes");
    }

    #[test]
    fn the_file_is_gzip() {
        let gz = gzipped(&testdata::report()).unwrap();
        assert_eq!(&gz[..2], &[0x1f, 0x8b]);
    }
}
