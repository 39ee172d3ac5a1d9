//! leakscope's report writers for people and tools. Every writer takes the same
//! analysed [`Report`](leakscope_analyse::report::Report) that the text and
//! JSON reports are made from (one model, several writers):
//!
//! * [`html`]: one self-contained, offline page (summary, sortable leak table,
//!   stacks with source, heap errors, processes, flame graph);
//! * [`flamegraph`]: leaked bytes by stack as an SVG flame graph (inferno);
//! * [`pprof`]: a gzipped pprof profile (`profile.proto`);
//! * [`sarif`]: SARIF 2.1.0 for code-scanning tools;
//! * [`baseline`]: the CI baseline (`--write-baseline`, `--baseline`);
//! * [`diff`]: new, fixed and changed leaks between two reports.
//!
//! Leaks are matched across runs by their fingerprint
//! ([`leakscope_analyse::fingerprint`]).

pub mod baseline;
pub mod common;
pub mod diff;
pub mod flamegraph;
pub mod html;
pub mod pprof;
pub mod sarif;
pub mod source;

#[cfg(test)]
pub(crate) mod testdata;
