//! What the engine has to tell the person at the terminal while it works, as values. The engine
//! emits a [`Notice`]; the one sink `cli` installs at start renders it. Below `cli` nothing
//! prints: the library, its tests and `lab agent` install no sink, and notices go nowhere.
//!
//! One process-wide sink, like `tracing`'s dispatcher, rather than a callback threaded through
//! every call: notices come from deep places (a signal task, the limits ledger, a pause point)
//! and are few.

use std::sync::OnceLock;
use std::time::Duration;

use super::limits::GlobalLimit;

/// Something the engine did or saw that the user must hear about now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A global limit was raised for `lab`, as its file allows; `before` comes back at teardown.
    Raised {
        limit: GlobalLimit,
        lab: String,
        from: u64,
        to: u64,
        before: u64,
    },
    /// A global limit was given back at teardown.
    Restored {
        limit: GlobalLimit,
        lab: String,
        to: u64,
        had_set: u64,
    },
    /// A raised limit was changed by someone else meanwhile, so it is left as it is.
    ChangedOutside {
        limit: GlobalLimit,
        lab: String,
        current: u64,
        set: u64,
        before: u64,
    },
    /// A signal arrived while the engine finishes work that must not be cut short.
    SignalWhileFinishing {
        signal: i32,
        doing: &'static str,
        /// Not the first such signal.
        again: bool,
    },
    /// `lab run` is done with the lab and removes it.
    TearingDown { lab: String },
    /// `lab run` is stopping its agents: `exited` of `total` are gone.
    StoppingAgents { exited: usize, total: usize },
    /// `lab run` holds its connections after the ramp: `elapsed` of `length` (`None`:
    /// until a signal), with `established` open now and `lost` since the hold began.
    Holding {
        elapsed: Duration,
        length: Option<Duration>,
        established: u64,
        lost: u64,
    },
    /// `silent` client agents with connects still to finish have not been heard from for
    /// `for_at_least`: until they are, counts standing still are not taken as settled.
    ClientsSilent {
        silent: usize,
        for_at_least: Duration,
    },
    /// Agents that did not answer the pause within `waited`: the report counts them as they
    /// last reported, which may be behind what the kernel holds.
    UnpausedAgents {
        agents: Vec<String>,
        waited: Duration,
    },
    /// A `LAB_PAUSE_AT` test hook holds the engine at `point` (fault tests wait for this).
    Paused { point: &'static str },
}

type Sink = Box<dyn Fn(&Notice) + Send + Sync>;

static SINK: OnceLock<Sink> = OnceLock::new();

/// Installs the sink that renders every notice (once per process; later calls are ignored).
pub fn install(sink: impl Fn(&Notice) + Send + Sync + 'static) {
    let _ = SINK.set(Box::new(sink));
}

/// Hands a notice to the sink, if one is installed.
pub fn emit(notice: Notice) {
    tracing::debug!(?notice, "notice");
    if let Some(sink) = SINK.get() {
        sink(&notice);
    }
}
