//! `lab`: network labs in Linux network namespaces that show what happens to TCP connections
//! behind Docker-style NAT.
//!
//! Data flows one way: lab file -> [`lab::Plan`] -> kernel objects -> workload -> report ->
//! teardown. `docs/architecture.md` maps the modules.

/// `print!` that survives a closed stdout. A reader that went away (`lab run ... | head`) must
/// not stop a lab halfway and leave it behind, as `print!`'s panic would: output is best effort,
/// the lab's work and its teardown are not.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}

/// `println!` that survives a closed stdout (see [`out!`]).
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `eprintln!` that survives a closed stderr (see [`out!`]).
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

pub mod cli;
pub mod error;
pub mod lab;
pub mod nat;
pub mod nfnl;
pub mod planner;
pub mod report;
pub mod sys;
pub mod workload;
