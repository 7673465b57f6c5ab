//! The lab engine: lab files, their validation into a [`Plan`], and building and tearing down
//! the namespaces, links and addresses a plan describes.

pub mod diag;
pub mod plan;
pub mod spec;
pub mod validate;

pub use diag::{Diagnostic, Source};
pub use plan::Plan;
pub use validate::{LoadOptions, Loaded, load};
pub mod build;
pub mod capacity;
pub mod cloud;
pub mod command;
pub mod events;
pub mod fault;
pub mod firewall;
pub mod lifecycle;
pub mod limits;
pub mod netlink;
pub mod preflight;
pub mod state;
