//! The engine's notices ([`Notice`]) as the lines `lab` writes on stderr.

use crate::error::signal_name;
use crate::lab::events::Notice;

/// One notice as one line, `None` for a notice that says nothing here (progress below the
/// size worth showing).
pub fn render(n: &Notice) -> Option<String> {
    Some(match n {
        Notice::Raised {
            limit,
            lab,
            from,
            to,
            before,
        } => format!(
            "lab: raised {limit} from {from} to {to} for lab {lab}, as its file allows; it is \
             restored to {before} at teardown"
        ),
        Notice::Restored {
            limit,
            lab,
            to,
            had_set,
        } => format!("lab: restored {limit} to {to} (lab {lab} had raised it to {had_set})"),
        Notice::ChangedOutside {
            limit,
            lab,
            current,
            set,
            before,
        } => format!(
            "lab: warning: {limit} is {current}, not the {set} lab {lab} set: someone changed it \
             meanwhile, so it is left as it is (it was {before} before)"
        ),
        Notice::SignalWhileFinishing {
            signal,
            doing,
            again: true,
        } => format!(
            "lab: {} received again: still {doing} (`kill -9` would leave the lab for `lab down`)",
            signal_name(*signal)
        ),
        Notice::SignalWhileFinishing {
            signal,
            doing,
            again: false,
        } => format!(
            "lab: {} received: {doing} first, so nothing is left behind; exiting after that",
            signal_name(*signal)
        ),
        // Only when it takes long enough to wonder.
        Notice::StoppingAgents { total, .. } if *total <= 20 => return None,
        Notice::StoppingAgents { exited, total } => format!(
            "stopping agents: {exited} of {total} exited (the kernel is closing their sockets)"
        ),
        Notice::Paused { point } => format!("lab: paused at {point}"),
        Notice::TearingDown { lab } => format!("tearing down lab {lab}"),
    })
}
