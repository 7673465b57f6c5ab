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
        Notice::Holding {
            elapsed,
            length,
            established,
            lost,
        } => {
            let of = length.map_or_else(
                || " (until Ctrl-C)".to_owned(),
                |l| format!(" of {}", secs(l)),
            );
            let lost = match lost {
                0 => String::new(),
                n => format!(", {} lost", super::count(*n)),
            };
            format!(
                "holding {}{of}: {} established{lost}",
                secs(*elapsed),
                super::count(*established)
            )
        }
        Notice::TearingDown { lab } => format!("tearing down lab {lab}"),
        Notice::UnpausedAgents { agents, waited } => format!(
            "lab: {} agent(s) did not answer the pause within {} ({}): the report counts them \
             as they last reported",
            agents.len(),
            secs(*waited),
            agents.join(", ")
        ),
        Notice::ClientsSilent {
            silent,
            for_at_least,
        } => format!(
            "lab: {silent} client agent(s) with connects in flight not heard from for {} (starved \
             of CPU?): the counts are not taken as settled until they report",
            secs(*for_at_least)
        ),
    })
}

/// Whole seconds, as the hold lines count them.
fn secs(d: std::time::Duration) -> String {
    format!("{} s", d.as_secs())
}
