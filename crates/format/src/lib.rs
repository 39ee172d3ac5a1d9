//! leakscope's data formats: the shared-memory layout the preload writes
//! ([`layout`]), the trace model the CLI analyses ([`model`]), reading
//! session files into it ([`session`]) and the saved trace file ([`codec`]).

pub mod codec;
pub mod layout;
pub mod model;
pub mod session;
