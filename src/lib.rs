//! `lab`: network labs in Linux network namespaces that show what happens to TCP connections
//! behind Docker-style NAT.
//!
//! Data flows one way: lab file -> [`lab::Plan`] -> kernel objects -> workload -> report ->
//! teardown. `docs/architecture.md` maps the modules.

pub mod cli;
pub mod error;
pub mod lab;
pub mod nat;
pub mod report;
pub mod workload;
