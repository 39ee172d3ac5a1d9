//! Errors that end leakscope with a particular exit status.

use std::fmt;

/// PROG was not found.
pub const NOT_FOUND: u8 = 127;
/// PROG exists but cannot be run or traced.
pub const CANNOT_TRACE: u8 = 126;
/// Any other leakscope error (bad trace file, output not writable, ...).
pub const FAILURE: u8 = 2;

/// A one-line error message and the exit status that goes with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fail {
    pub status: u8,
    pub message: String,
}

impl Fail {
    pub fn new(status: u8, message: impl Into<String>) -> Fail {
        Fail { status, message: message.into() }
    }
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Fail {}

/// The exit status for an error: the one a [`Fail`] carries, else [`FAILURE`].
pub fn status_of(err: &anyhow::Error) -> u8 {
    err.downcast_ref::<Fail>().map_or(FAILURE, |f| f.status)
}
