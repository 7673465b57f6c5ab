//! NAT like Docker's: the rules, the kernel's translation table, and predictions of what the kernel will do.

pub mod conntrack;
pub mod nfnl;
pub mod paths;
pub mod predict;
pub mod rules;
pub mod view;
