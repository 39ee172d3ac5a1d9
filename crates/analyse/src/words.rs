//! How reports put things into words, shared by every writer (text, HTML,
//! SARIF) so they all say the same.

use crate::report::{AddrRegion, BlockInfo, HeapErrorKind, HeapErrorReport, Release};

/// "1 block", "2 blocks".
pub fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// "40-byte block from malloc".
pub fn block_desc(b: &BlockInfo) -> String {
    format!("{}-byte block from {}", b.bytes, b.allocator.name())
}

/// Where an invalid free's address points.
pub fn region_desc(e: &HeapErrorReport) -> String {
    match e.region {
        AddrRegion::Stack => "points into a thread's stack".into(),
        AddrRegion::Global => "points into a global or static variable".into(),
        AddrRegion::HeapInterior => match &e.block {
            Some(b) => format!(
                "points inside a {} at {:#x}, at offset {}",
                block_desc(b),
                b.address,
                e.address.wrapping_sub(b.address)
            ),
            None => "points inside a heap block".into(),
        },
        AddrRegion::Unknown => "not the start of any block leakscope knows of".into(),
    }
}

impl HeapErrorReport {
    /// One line saying what went wrong, e.g. "double free of 0x… (40-byte block from malloc)".
    pub fn title(&self) -> String {
        let e = self;
        let by = if e.release == Release::Free { String::new() } else { format!(" by {}", e.release.name()) };
        match e.kind {
            HeapErrorKind::DoubleFree => match &e.block {
                Some(b) => format!("double free of {:#x}{by} ({})", e.address, block_desc(b)),
                None => format!("double free of {:#x}{by}", e.address),
            },
            HeapErrorKind::InvalidFree => format!("invalid free of {:#x}{by} ({})", e.address, region_desc(e)),
            HeapErrorKind::MismatchedFree => match &e.block {
                Some(b) => format!(
                    "mismatched free: {} of a block allocated with {} ({:#x}, {})",
                    e.release.name(),
                    b.allocator.name(),
                    e.address,
                    plural(b.bytes, "byte", "bytes")
                ),
                None => format!("mismatched free: {} of {:#x}", e.release.name(), e.address),
            },
        }
    }
}
