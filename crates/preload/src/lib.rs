//! libleakscope_preload.so: loaded into the traced program with LD_PRELOAD.
//!
//! It interposes the allocation family, unwinds each allocation's stack and
//! records live blocks, stacks, modules and heap errors in the session file
//! (see `leakscope_format::layout`). Everything here may run inside `malloc`,
//! so nothing on the hot path allocates through the program's allocator or
//! takes a lock that something we call could also want.

mod api;
mod bootstrap;
mod capture;
mod check;
mod entry;
mod endings;
mod errors;
mod freed;
mod hooks;
mod hooks_cxx;
mod hooks_libc;
mod hooks_mmap;
mod internal_alloc;
mod lifecycle;
mod live;
mod modules;
mod notice;
mod real;
mod regions;
mod rules;
mod scan;
mod session;
mod spin;
mod stacks;
mod thread;
mod tls;
mod walk;
