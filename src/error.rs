//! How `lab` fails. Code returns `anyhow::Result` with context naming the object and namespace;
//! a [`Fail`] somewhere in the chain says which exit code the failure promises users. Anything
//! not marked is a runtime failure (exit 4).

use std::fmt;

/// Exit codes, as documented in the README.
pub mod exit {
    pub const OK: i32 = 0;
    /// `lab run`: the lab ran, but an `[expect]` did not hold.
    pub const EXPECTATIONS_FAILED: i32 = 1;
    /// Bad lab file, unknown lab, bad command line.
    pub const INVALID: i32 = 2;
    /// This machine cannot run labs: not root, missing kernel feature, ...
    pub const UNSUPPORTED: i32 = 3;
    /// The kernel or the system refused something while building or running.
    pub const RUNTIME: i32 = 4;
    /// Interrupted by a signal: 128 + the signal number, as shells report it.
    pub const SIGNAL_BASE: i32 = 128;
}

/// A failure whose kind decides the exit code.
#[derive(Debug)]
pub enum Fail {
    /// The input is wrong; the message says where and what to do.
    Invalid(String),
    /// The machine cannot do what the lab needs; the message names the missing piece.
    Unsupported(String),
    /// A signal stopped the command (everything built was torn down).
    Interrupted(i32),
    /// `lab run`: the lab ran, but these expectations did not hold.
    ExpectationsNotMet(String),
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fail::Invalid(m) | Fail::Unsupported(m) => f.write_str(m),
            Fail::Interrupted(sig) => write!(f, "interrupted by {}", signal_name(*sig)),
            Fail::ExpectationsNotMet(m) => write!(f, "expectations not met: {m}"),
        }
    }
}

impl std::error::Error for Fail {}

impl Fail {
    pub fn exit_code(&self) -> i32 {
        match self {
            Fail::Invalid(_) => exit::INVALID,
            Fail::Unsupported(_) => exit::UNSUPPORTED,
            Fail::Interrupted(sig) => exit::SIGNAL_BASE + sig,
            Fail::ExpectationsNotMet(_) => exit::EXPECTATIONS_FAILED,
        }
    }
}

pub fn invalid(msg: impl Into<String>) -> anyhow::Error {
    Fail::Invalid(msg.into()).into()
}

pub fn unsupported(msg: impl Into<String>) -> anyhow::Error {
    Fail::Unsupported(msg.into()).into()
}

/// An error as `lab` prints it: one line with the whole cause chain, outermost first, e.g.
/// `lab: error: write out.dot: No such file or directory (os error 2)`.
pub fn render(err: &anyhow::Error) -> String {
    format!("lab: error: {err:#}")
}

/// The exit code for an error: the first [`Fail`] in its chain, else a runtime failure.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    err.chain()
        .find_map(|e| e.downcast_ref::<Fail>())
        .map_or(exit::RUNTIME, Fail::exit_code)
}

pub fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}

/// The errno of an I/O or netlink failure anywhere in the chain, to turn kernel answers into
/// advice ("EEXIST" -> "already exists: is another lab using this name?").
pub fn errno_of(err: &anyhow::Error) -> Option<i32> {
    err.chain().find_map(|e| {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return io.raw_os_error();
        }
        if let Some(rtnetlink::Error::NetlinkError(m)) = e.downcast_ref::<rtnetlink::Error>() {
            return Some(-m.raw_code()).filter(|c| *c != 0);
        }
        None
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context as _;

    #[test]
    fn exit_code_follows_the_chain() {
        let e = Err::<(), _>(unsupported("no veth"))
            .context("build lab x")
            .unwrap_err();
        assert_eq!(exit_code(&e), exit::UNSUPPORTED);
        assert_eq!(exit_code(&anyhow::anyhow!("boom")), exit::RUNTIME);
        assert_eq!(exit_code(&Fail::Interrupted(libc::SIGINT).into()), 130);
        assert_eq!(exit_code(&Fail::Interrupted(libc::SIGTERM).into()), 143);
    }

    #[test]
    fn printed_with_every_cause() {
        let e = Err::<(), _>(std::io::Error::from_raw_os_error(libc::ENOENT))
            .context("write out/lab.dot")
            .context("lab graph")
            .unwrap_err();
        let text = render(&e);
        assert!(
            text.starts_with("lab: error: lab graph: write out/lab.dot: No such file"),
            "{text}"
        );
        assert!(!text.contains('\n'), "one line: {text}");
    }

    #[test]
    fn errno_from_io() {
        let e = anyhow::Error::from(std::io::Error::from_raw_os_error(libc::EEXIST)).context("x");
        assert_eq!(errno_of(&e), Some(libc::EEXIST));
    }
}
