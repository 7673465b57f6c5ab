//! The workload: the article's server and clients, done well. `lab agent` processes run inside
//! the lab's namespaces and report to `lab run` over a pipe.

pub mod agent;
pub mod client;
pub mod event_loop;
pub mod options;
pub mod outcome;
pub mod program;
pub mod protocol;
pub mod run;
pub mod server;
pub mod session;
mod settle;
pub mod share;
pub mod sockets;
pub mod sys;
