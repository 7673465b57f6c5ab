//! Helpers for the validation tests of every room: a valid base lab to append to, and loading
//! that expects a plan, or errors at a given place.

use std::net::Ipv4Addr;

use super::{LoadOptions, Loaded, load};
use crate::lab::diag::{Diagnostic, Source};

pub(super) const CROSS_HOST: &str = include_str!("../testdata/cross-host.toml");

/// A valid lab to append sections to; what is appended starts on line 7.
pub(super) const BASE: &str = r#"name = "t"
[lans.lan]
subnet = "10.0.0.0/24"
[hosts.a]
lan = "lan"
addresses = ["10.0.0.1"]
"#;

pub(super) fn try_load(text: &str) -> Result<Loaded, Vec<Diagnostic>> {
    load(&Source::new("t.toml", text), &LoadOptions::default())
}

pub(super) fn ok(text: &str) -> Loaded {
    match try_load(text) {
        Ok(l) => l,
        Err(d) => panic!("expected a valid lab, got {d:#?}"),
    }
}

pub(super) fn rejected(text: &str) -> Vec<Diagnostic> {
    match try_load(text) {
        Ok(l) => panic!("expected errors, got a plan: {:#?}", l.plan),
        Err(d) => d,
    }
}

/// Asserts that loading reports an error containing `message` at `line:col`; returns it
/// so the test can look at its help.
pub(super) fn reported(text: &str, message: &str, at: (usize, usize)) -> Diagnostic {
    let source = Source::new("t.toml", text);
    let diags = rejected(text);
    let found = diags.iter().find(|d| d.message.contains(message));
    let Some(d) = found else {
        panic!("no diagnostic contains {message:?}; got {diags:#?}");
    };
    assert_eq!(source.line_col(d.span.start), at, "{d:?}");
    assert!(d.is_error(), "{d:?}");
    d.clone()
}

pub(super) fn with(extra: &str) -> String {
    format!("{BASE}{extra}")
}

pub(super) fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}
