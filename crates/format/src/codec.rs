//! The saved trace file (`--save-trace`, read by `leakscope report`).
//!
//! ```text
//! "LSTRACE\0"  u32 LE version  u64 LE body length  body  u32 LE crc32(body)
//! ```
//! The body is LEB128 varints and length-prefixed byte strings, in the
//! order of the fields of [`Trace`]. Hand-rolled rather than serde-based so the
//! file stays compact (addresses dominate it) and the reader can name exactly
//! what is wrong with a corrupt or truncated file.

use crate::model::*;
use std::fmt;

pub const TRACE_MAGIC: [u8; 8] = *b"LSTRACE\0";
/// Version 2 appended each process's mappings and shared-memory events to its
/// record, version 3 its source locations (the `leakscope.h` macros); older
/// traces (without them) are still read.
pub const TRACE_VERSION: u32 = 3;
/// The oldest version this leakscope reads.
pub const TRACE_VERSION_MIN: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    NotATrace,
    UnsupportedVersion(u32),
    Truncated { expected: u64, actual: u64 },
    ChecksumMismatch,
    Corrupt { offset: usize, what: &'static str },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::NotATrace => write!(f, "not a leakscope trace (bad magic)"),
            DecodeError::UnsupportedVersion(v) => {
                write!(f, "trace format version {v} is not supported (this leakscope reads version {TRACE_VERSION})")
            }
            DecodeError::Truncated { expected, actual } => {
                write!(f, "trace is truncated: {actual} of {expected} bytes present")
            }
            DecodeError::ChecksumMismatch => write!(f, "trace is corrupt: checksum mismatch"),
            DecodeError::Corrupt { offset, what } => {
                write!(f, "trace is corrupt at body offset {offset}: {what}")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

pub fn encode(trace: &Trace) -> Vec<u8> {
    let mut body = Writer(Vec::new());
    body.uint(trace.processes.len() as u64);
    for p in &trace.processes {
        encode_process(&mut body, p);
    }
    let body = body.0;
    let mut out = Vec::with_capacity(body.len() + 24);
    out.extend_from_slice(&TRACE_MAGIC);
    out.extend_from_slice(&TRACE_VERSION.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out
}

pub fn decode(bytes: &[u8]) -> Result<Trace, DecodeError> {
    if bytes.len() < 8 || bytes[..8] != TRACE_MAGIC {
        return Err(DecodeError::NotATrace);
    }
    if bytes.len() < 20 {
        return Err(DecodeError::Truncated { expected: 24, actual: bytes.len() as u64 });
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
    if !(TRACE_VERSION_MIN..=TRACE_VERSION).contains(&version) {
        return Err(DecodeError::UnsupportedVersion(version));
    }
    let body_len = u64::from_le_bytes(bytes[12..20].try_into().unwrap());
    let expected = body_len.saturating_add(24);
    if (bytes.len() as u64) < expected {
        return Err(DecodeError::Truncated { expected, actual: bytes.len() as u64 });
    }
    let body = &bytes[20..20 + body_len as usize];
    let crc_at = 20 + body_len as usize;
    let crc = u32::from_le_bytes(bytes[crc_at..crc_at + 4].try_into().unwrap());
    if crc32fast::hash(body) != crc {
        return Err(DecodeError::ChecksumMismatch);
    }
    let mut r = Reader { buf: body, pos: 0 };
    let count = r.len("process count")?;
    let mut processes = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        processes.push(decode_process(&mut r, version)?);
    }
    if r.pos != body.len() {
        return Err(r.corrupt("trailing bytes after the last process"));
    }
    Ok(Trace { processes })
}

fn encode_process(w: &mut Writer, p: &ProcessTrace) {
    w.uint(p.pid as u64);
    w.uint(p.parent_pid as u64);
    w.uint(p.exec_index as u64);
    w.uint(p.argv.len() as u64);
    for a in &p.argv {
        w.bytes(a.as_bytes());
    }
    w.bytes(p.exe.as_bytes());
    match p.ending {
        Ending::Exited(c) => {
            w.uint(0);
            w.int(c as i64)
        }
        Ending::Signaled(s) => {
            w.uint(1);
            w.int(s as i64)
        }
        Ending::Execed => w.uint(2),
        Ending::Unknown => w.uint(3),
    }
    w.uint(p.finalized as u64);
    w.uint(p.modules.len() as u64);
    for m in &p.modules {
        w.bytes(m.path.as_bytes());
        w.uint(m.base);
        w.uint(m.lo);
        w.uint(m.hi);
        w.bytes(&m.build_id);
        w.uint(m.unloaded as u64);
    }
    w.uint(p.stacks.len() as u64);
    for s in &p.stacks {
        w.uint(s.len() as u64);
        // Consecutive return addresses are usually close: store deltas.
        let mut prev = 0u64;
        for &f in s {
            w.int(f.wrapping_sub(prev) as i64);
            prev = f;
        }
    }
    w.uint(p.blocks.len() as u64);
    let mut prev = 0u64;
    for b in &p.blocks {
        w.int(b.addr.wrapping_sub(prev) as i64);
        prev = b.addr;
        w.uint(b.size);
        w.uint(b.kind as u64);
        w.uint(b.stack as u64);
        w.uint(b.flags as u64);
        w.uint(b.class as u64);
    }
    w.uint(p.errors.len() as u64);
    for e in &p.errors {
        w.uint(match e.kind {
            ErrorKind::DoubleFree => 1,
            ErrorKind::InvalidFree => 2,
            ErrorKind::MismatchedFree => 3,
        });
        w.uint(e.release as u64);
        w.uint(e.addr);
        w.uint(match e.region {
            Region::Unknown => 0,
            Region::HeapInterior => 1,
            Region::Stack => 2,
            Region::Global => 3,
        });
        w.uint(e.stack as u64);
        match &e.block {
            None => w.uint(0),
            Some(b) => {
                w.uint(1);
                w.uint(b.addr);
                w.uint(b.size);
                w.uint(b.kind as u64);
                w.uint(b.alloc_stack as u64);
                w.uint(b.first_release.map_or(0, |r| r as u64));
                w.uint(b.free_stack as u64);
            }
        }
    }
    w.uint(p.stats.allocs);
    w.uint(p.stats.frees);
    w.uint(p.stats.preload.len() as u64);
    for &c in &p.stats.preload {
        w.uint(c);
    }
    w.uint(p.scan.state as u64);
    w.uint(p.scan.seq);
    w.uint(p.scan.threads_stopped as u64);
    w.uint(p.scan.threads_not_stopped as u64);
    w.uint(p.scan.nanos);
    encode_maps(w, &p.maps);
    encode_locations(w, &p.locations);
}

/// Version 3: appended after the maps.
fn encode_locations(w: &mut Writer, locations: &[SourceLocation]) {
    w.uint(locations.len() as u64);
    for l in locations {
        w.bytes(l.file.as_bytes());
        w.uint(l.line as u64);
        w.bytes(l.function.as_bytes());
    }
}

fn decode_locations(r: &mut Reader) -> Result<Vec<SourceLocation>, DecodeError> {
    let n = r.len("location count")?;
    let mut out = Vec::with_capacity(n.min(1 << 16));
    for _ in 0..n {
        out.push(SourceLocation {
            file: r.string("location file")?,
            line: r.u32("location line")?,
            function: r.string("location function")?,
        });
    }
    Ok(out)
}

/// Version 2: appended at the end of each process record.
fn encode_maps(w: &mut Writer, m: &Maps) {
    w.uint(m.maps);
    w.uint(m.unmaps);
    w.uint(m.regions.len() as u64);
    for r in &m.regions {
        w.uint(r.addr);
        w.uint(r.len);
        w.uint(r.kind.to_u8() as u64);
        w.uint(r.prot as u64);
        w.uint(r.inherited as u64);
        w.uint(r.stack as u64);
        w.uint(r.creator_pid as u64);
        w.uint(r.serial as u64);
        w.bytes(r.path.as_bytes());
        w.uint(r.file_offset);
        w.uint(r.dev);
        w.uint(r.ino);
        w.int(r.shmid as i64);
        w.int(r.key as i64);
    }
    w.uint(m.events.len() as u64);
    for e in &m.events {
        w.uint(e.kind.to_u8() as u64);
        w.uint(e.pid as u64);
        w.uint(e.stack as u64);
        w.int(e.key as i64);
        w.int(e.shmid as i64);
        w.uint(e.size);
        w.uint(e.addr);
        w.bytes(e.name.as_bytes());
        w.uint(e.dev);
        w.uint(e.ino);
        w.uint(e.origin_pid as u64);
        w.uint(e.origin_serial as u64);
        match e.end {
            EndCheck::Unchecked => w.uint(0),
            EndCheck::Gone => w.uint(1),
            EndCheck::Exists { bytes, attached } => {
                w.uint(2);
                w.uint(bytes);
                match attached {
                    None => w.uint(0),
                    Some(n) => {
                        w.uint(1);
                        w.uint(n)
                    }
                }
            }
        }
    }
}

fn decode_maps(r: &mut Reader, stacks: usize) -> Result<Maps, DecodeError> {
    let maps = r.uint("mapping call count")?;
    let unmaps = r.uint("unmapping call count")?;
    let n = r.len("region count")?;
    let mut regions = Vec::with_capacity(n.min(1 << 16));
    for _ in 0..n {
        let addr = r.uint("region address")?;
        let len = r.uint("region length")?;
        let kind = MapKind::from_u8(r.u8("region kind")?).ok_or_else(|| r.corrupt("unknown region kind"))?;
        regions.push(MapRegion {
            addr,
            len,
            kind,
            prot: r.u8("region protection")?,
            inherited: r.uint("inherited flag")? != 0,
            stack: r.stack_ref(stacks, "region stack")?,
            creator_pid: r.u32("region creator")?,
            serial: r.u32("region serial")?,
            path: r.string("region path")?,
            file_offset: r.uint("region file offset")?,
            dev: r.uint("region device")?,
            ino: r.uint("region inode")?,
            shmid: r.i32("region shmid")?,
            key: r.i32("region key")?,
        });
    }
    let n = r.len("shared-memory event count")?;
    let mut events = Vec::with_capacity(n.min(1 << 16));
    for _ in 0..n {
        let kind =
            ShmEventKind::from_u8(r.u8("event kind")?).ok_or_else(|| r.corrupt("unknown shared-memory event"))?;
        events.push(ShmEvent {
            kind,
            pid: r.u32("event pid")?,
            stack: r.stack_ref(stacks, "event stack")?,
            key: r.i32("event key")?,
            shmid: r.i32("event shmid")?,
            size: r.uint("event size")?,
            addr: r.uint("event address")?,
            name: r.string("event name")?,
            dev: r.uint("event device")?,
            ino: r.uint("event inode")?,
            origin_pid: r.u32("event origin pid")?,
            origin_serial: r.u32("event origin serial")?,
            end: match r.uint("end check")? {
                0 => EndCheck::Unchecked,
                1 => EndCheck::Gone,
                2 => EndCheck::Exists {
                    bytes: r.uint("size at the end")?,
                    attached: match r.uint("attachment presence")? {
                        0 => None,
                        1 => Some(r.uint("attachments")?),
                        _ => return Err(r.corrupt("bad attachment presence flag")),
                    },
                },
                _ => return Err(r.corrupt("unknown end check")),
            },
        });
    }
    Ok(Maps { regions, events, maps, unmaps })
}

fn decode_process(r: &mut Reader, version: u32) -> Result<ProcessTrace, DecodeError> {
    let pid = r.u32("pid")?;
    let parent_pid = r.u32("parent pid")?;
    let exec_index = r.u32("exec index")?;
    let argc = r.len("argv length")?;
    let mut argv = Vec::with_capacity(argc.min(4096));
    for _ in 0..argc {
        argv.push(r.string("argv entry")?);
    }
    let exe = r.string("executable path")?;
    let ending = match r.uint("ending")? {
        0 => Ending::Exited(r.int("exit code")? as i32),
        1 => Ending::Signaled(r.int("signal")? as i32),
        2 => Ending::Execed,
        3 => Ending::Unknown,
        _ => return Err(r.corrupt("unknown ending")),
    };
    let finalized = r.uint("finalized flag")? != 0;
    let nmod = r.len("module count")?;
    let mut modules = Vec::with_capacity(nmod.min(4096));
    for _ in 0..nmod {
        modules.push(Module {
            path: r.string("module path")?,
            base: r.uint("module base")?,
            lo: r.uint("module start")?,
            hi: r.uint("module end")?,
            build_id: r.bytes("build id")?.to_vec(),
            unloaded: r.uint("unloaded flag")? != 0,
        });
    }
    let nstacks = r.len("stack count")?;
    let mut stacks = Vec::with_capacity(nstacks.min(1 << 20));
    for _ in 0..nstacks {
        let n = r.len("stack depth")?;
        let mut frames = Vec::with_capacity(n.min(1024));
        let mut prev = 0u64;
        for _ in 0..n {
            prev = prev.wrapping_add(r.int("frame")? as u64);
            frames.push(prev);
        }
        stacks.push(frames);
    }
    let nblocks = r.len("block count")?;
    let mut blocks = Vec::with_capacity(nblocks.min(1 << 20));
    let mut prev = 0u64;
    for _ in 0..nblocks {
        prev = prev.wrapping_add(r.int("block address")? as u64);
        let size = r.uint("block size")?;
        let kind = AllocKind::from_u8(r.u8("allocator")?);
        let stack = r.stack_ref(stacks.len(), "block stack")?;
        let flags = r.u8("block flags")?;
        let class = LeakClass::from_u8(r.u8("block class")?);
        blocks.push(Block { addr: prev, size, kind, stack, flags, class });
    }
    let nerr = r.len("error count")?;
    let mut errors = Vec::with_capacity(nerr.min(1 << 16));
    for _ in 0..nerr {
        let kind = match r.uint("error kind")? {
            1 => ErrorKind::DoubleFree,
            2 => ErrorKind::InvalidFree,
            3 => ErrorKind::MismatchedFree,
            _ => return Err(r.corrupt("unknown error kind")),
        };
        let release = ReleaseKind::from_u8(r.u8("release kind")?);
        let addr = r.uint("error address")?;
        let region = match r.uint("region")? {
            0 => Region::Unknown,
            1 => Region::HeapInterior,
            2 => Region::Stack,
            3 => Region::Global,
            _ => return Err(r.corrupt("unknown region")),
        };
        let stack = r.stack_ref(stacks.len(), "error stack")?;
        let block = match r.uint("block presence")? {
            0 => None,
            1 => Some(ErrorBlock {
                addr: r.uint("block address")?,
                size: r.uint("block size")?,
                kind: AllocKind::from_u8(r.u8("block allocator")?),
                alloc_stack: r.stack_ref(stacks.len(), "allocation stack")?,
                first_release: match r.u8("first release")? {
                    0 => None,
                    k => Some(ReleaseKind::from_u8(k)),
                },
                free_stack: r.stack_ref(stacks.len(), "free stack")?,
            }),
            _ => return Err(r.corrupt("bad block presence flag")),
        };
        errors.push(HeapError { kind, release, addr, region, stack, block });
    }
    let allocs = r.uint("alloc count")?;
    let frees = r.uint("free count")?;
    let ncounters = r.len("counter count")?;
    let mut preload = Vec::with_capacity(ncounters.min(64));
    for _ in 0..ncounters {
        preload.push(r.uint("counter")?);
    }
    let stats = Stats { allocs, frees, preload };
    let scan = Scan {
        state: r.u32("scan state")?,
        seq: r.uint("scan count")?,
        threads_stopped: r.u32("stopped threads")?,
        threads_not_stopped: r.u32("threads not stopped")?,
        nanos: r.uint("scan time")?,
    };
    let maps = if version >= 2 { decode_maps(r, stacks.len())? } else { Maps::default() };
    let locations = if version >= 3 { decode_locations(r)? } else { Vec::new() };
    Ok(ProcessTrace {
        pid,
        parent_pid,
        exec_index,
        argv,
        exe,
        ending,
        finalized,
        modules,
        stacks,
        blocks,
        errors,
        stats,
        scan,
        maps,
        locations,
    })
}

struct Writer(Vec<u8>);

impl Writer {
    fn uint(&mut self, mut v: u64) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.0.push(byte);
                return;
            }
            self.0.push(byte | 0x80);
        }
    }
    /// Zigzag-encoded signed value.
    fn int(&mut self, v: i64) {
        self.uint(((v << 1) ^ (v >> 63)) as u64)
    }
    fn bytes(&mut self, b: &[u8]) {
        self.uint(b.len() as u64);
        self.0.extend_from_slice(b);
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn corrupt(&self, what: &'static str) -> DecodeError {
        DecodeError::Corrupt { offset: self.pos, what }
    }
    fn uint(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err(self.corrupt(what));
            };
            self.pos += 1;
            v |= ((byte & 0x7f) as u64) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.corrupt(what))
    }
    fn int(&mut self, what: &'static str) -> Result<i64, DecodeError> {
        let v = self.uint(what)?;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        let v = self.uint(what)?;
        u32::try_from(v).map_err(|_| self.corrupt(what))
    }
    fn i32(&mut self, what: &'static str) -> Result<i32, DecodeError> {
        let v = self.int(what)?;
        i32::try_from(v).map_err(|_| self.corrupt(what))
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        let v = self.uint(what)?;
        u8::try_from(v).map_err(|_| self.corrupt(what))
    }
    /// A count of items that each take at least one byte: bounded by what is left.
    fn len(&mut self, what: &'static str) -> Result<usize, DecodeError> {
        let v = self.uint(what)?;
        if v > (self.buf.len() - self.pos) as u64 {
            return Err(self.corrupt(what));
        }
        Ok(v as usize)
    }
    fn bytes(&mut self, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let n = self.len(what)?;
        let b = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(b)
    }
    fn string(&mut self, what: &'static str) -> Result<String, DecodeError> {
        let b = self.bytes(what)?;
        Ok(String::from_utf8_lossy(b).into_owned())
    }
    fn stack_ref(&mut self, stacks: usize, what: &'static str) -> Result<u32, DecodeError> {
        let id = self.u32(what)?;
        if id as usize >= stacks.max(1) {
            return Err(self.corrupt(what));
        }
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Trace {
        Trace {
            processes: vec![ProcessTrace {
                pid: 42,
                parent_pid: 1,
                exec_index: 0,
                argv: vec!["./prog".into(), "x y".into()],
                exe: "/tmp/prog".into(),
                ending: Ending::Signaled(9),
                finalized: false,
                modules: vec![Module {
                    path: "/tmp/prog".into(),
                    base: 0x5555_0000_0000,
                    lo: 0x5555_0000_0000,
                    hi: 0x5555_0000_4000,
                    build_id: vec![1, 2, 3, 4],
                    unloaded: false,
                }],
                stacks: vec![vec![], vec![0x5555_0000_1234, 0x7fff_0000_0010, 0x5555_0000_0100]],
                blocks: vec![
                    Block {
                        addr: 0x4000_0010,
                        size: 40,
                        kind: AllocKind::Malloc,
                        stack: 1,
                        flags: 0,
                        class: LeakClass::Indirect,
                    },
                    Block {
                        addr: 0x3000_0010,
                        size: 1 << 33,
                        kind: AllocKind::NewArray,
                        stack: 0,
                        flags: 2,
                        class: LeakClass::Unknown,
                    },
                ],
                errors: vec![HeapError {
                    kind: ErrorKind::DoubleFree,
                    release: ReleaseKind::Free,
                    addr: 0x4000_0050,
                    region: Region::Unknown,
                    stack: 1,
                    block: Some(ErrorBlock {
                        addr: 0x4000_0050,
                        size: 40,
                        kind: AllocKind::Malloc,
                        alloc_stack: 1,
                        first_release: Some(ReleaseKind::Realloc),
                        free_stack: 1,
                    }),
                }],
                stats: Stats { allocs: 10, frees: 8, preload: vec![1, 2, 3] },
                scan: Scan { state: 2, seq: 4, threads_stopped: 3, threads_not_stopped: 1, nanos: 12345 },
                maps: Maps {
                    regions: vec![MapRegion {
                        addr: 0x7f00_0000_0000,
                        len: 8192,
                        kind: MapKind::Shmat,
                        prot: 3,
                        inherited: true,
                        stack: 1,
                        creator_pid: 41,
                        serial: 7,
                        path: String::new(),
                        file_offset: 0,
                        dev: 0,
                        ino: 0,
                        shmid: 32769,
                        key: -1,
                    }],
                    events: vec![
                        ShmEvent {
                            kind: ShmEventKind::PosixCreate,
                            pid: 42,
                            stack: 1,
                            key: 0,
                            shmid: -1,
                            size: 0,
                            addr: 0,
                            name: "/seg".into(),
                            dev: 22,
                            ino: 33,
                            origin_pid: 0,
                            origin_serial: 0,
                            end: EndCheck::Exists { bytes: 4096, attached: None },
                        },
                        ShmEvent {
                            kind: ShmEventKind::SysvCreate,
                            pid: 42,
                            stack: 0,
                            key: 0x1234,
                            shmid: 5,
                            size: 1024,
                            addr: 0,
                            name: String::new(),
                            dev: 0,
                            ino: 0,
                            origin_pid: 0,
                            origin_serial: 0,
                            end: EndCheck::Exists { bytes: 1024, attached: Some(2) },
                        },
                    ],
                    maps: 9,
                    unmaps: 8,
                },
                locations: vec![SourceLocation { file: "prog.c".into(), line: 12, function: "main".into() }],
            }],
        }
    }

    #[test]
    fn round_trip_keeps_everything() {
        let t = sample();
        assert_eq!(decode(&encode(&t)).unwrap(), t);
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let bytes = encode(&sample());
        for n in 0..bytes.len() {
            assert!(decode(&bytes[..n]).is_err(), "prefix of {n} bytes decoded");
        }
    }

    #[test]
    fn flipped_bits_are_caught() {
        let bytes = encode(&sample());
        for i in 20..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            assert!(decode(&b).is_err(), "flip at {i} went unnoticed");
        }
    }

    #[test]
    fn version_1_traces_without_mappings_are_still_read() {
        let mut t = sample();
        t.processes[0].maps = Maps::default();
        t.processes[0].locations = Vec::new();
        let mut body = Writer(Vec::new());
        body.uint(1);
        let mut rec = Writer(Vec::new());
        encode_process(&mut rec, &t.processes[0]);
        // A version 1 record is the version 2 one without the appended maps.
        let mut tail = Writer(Vec::new());
        encode_maps(&mut tail, &Maps::default());
        encode_locations(&mut tail, &[]);
        let rec = &rec.0[..rec.0.len() - tail.0.len()];
        body.0.extend_from_slice(rec);
        let mut out = Vec::new();
        out.extend_from_slice(&TRACE_MAGIC);
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&(body.0.len() as u64).to_le_bytes());
        out.extend_from_slice(&body.0);
        out.extend_from_slice(&crc32fast::hash(&body.0).to_le_bytes());
        assert_eq!(decode(&out).unwrap(), t);
    }

    #[test]
    fn wrong_magic_and_version_are_named() {
        assert_eq!(decode(b"hello world, not a trace"), Err(DecodeError::NotATrace));
        let mut b = encode(&sample());
        b[8] = 99;
        assert_eq!(decode(&b), Err(DecodeError::UnsupportedVersion(99)));
    }
}
