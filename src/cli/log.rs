//! `-v` / `-q`: what `lab` logs on stderr, through `tracing`. Reports and results are printed
//! by the verbs themselves; logs say what the engine is doing (namespaces, links, rules).

use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// How much to log, from the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    /// `-q`: errors only.
    Quiet,
    /// The number of `-v` given (0: warnings and errors).
    Verbose(u8),
}

impl Verbosity {
    /// The most detailed level shown for `lab`'s own events, and for its libraries' (netlink
    /// and friends are chatty: they are shown only at `-vvv`).
    pub fn levels(self) -> (LevelFilter, LevelFilter) {
        match self {
            Verbosity::Quiet => (LevelFilter::ERROR, LevelFilter::ERROR),
            Verbosity::Verbose(0) => (LevelFilter::WARN, LevelFilter::WARN),
            Verbosity::Verbose(1) => (LevelFilter::INFO, LevelFilter::WARN),
            Verbosity::Verbose(2) => (LevelFilter::DEBUG, LevelFilter::WARN),
            Verbosity::Verbose(_) => (LevelFilter::TRACE, LevelFilter::DEBUG),
        }
    }
}

static QUIET: AtomicBool = AtomicBool::new(false);

/// True under `-q`: verbs print no status lines (only results and errors).
pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// A status line on stderr ("lab x is up", "tearing down lab x"), unless `-q`.
macro_rules! status {
    ($($arg:tt)*) => {
        if !$crate::cli::log::quiet() {
            errln!($($arg)*);
        }
    };
}
pub(crate) use status;

/// Sends `tracing` events to stderr: `lab: 0.012s INFO built lan lan ...`, coloured only on a
/// terminal without `NO_COLOR`. Call once, before any thread starts.
pub fn init(verbosity: Verbosity) {
    QUIET.store(verbosity == Verbosity::Quiet, Ordering::Relaxed);
    let (own, others) = verbosity.levels();
    let filter = Targets::new()
        .with_target(env!("CARGO_CRATE_NAME"), own)
        .with_default(others);
    let ansi = crate::report::ansi_allowed(std::io::stderr().is_terminal());
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(matches!(verbosity, Verbosity::Verbose(n) if n >= 3))
        .with_timer(tracing_subscriber::fmt::time::uptime());
    // A second init (only possible in tests) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(fmt)
        .with(filter)
        .try_init();
    // The engine's notices: progress and phases are status lines (`-q` hides them); limits raised or
    // restored, signals and pause points are always said.
    crate::lab::events::install(|n| {
        use crate::lab::events::Notice;
        let status = matches!(
            n,
            Notice::StoppingAgents { .. } | Notice::TearingDown { .. } | Notice::Holding { .. }
        );
        if status && quiet() {
            return;
        }
        if let Some(line) = crate::report::notice::render(n) {
            errln!("{line}");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_follow_the_flags() {
        assert_eq!(Verbosity::Quiet.levels().0, LevelFilter::ERROR);
        assert_eq!(Verbosity::Verbose(0).levels().0, LevelFilter::WARN);
        assert_eq!(Verbosity::Verbose(1).levels().0, LevelFilter::INFO);
        assert_eq!(Verbosity::Verbose(2).levels().0, LevelFilter::DEBUG);
        assert_eq!(
            Verbosity::Verbose(9).levels(),
            (LevelFilter::TRACE, LevelFilter::DEBUG)
        );
        // Libraries stay at warnings until -vvv.
        assert_eq!(Verbosity::Verbose(2).levels().1, LevelFilter::WARN);
    }
}
