//! Named pause points for fault tests: with `LAB_PAUSE_AT=<point>` in its environment, `lab`
//! stops at that point of its work for [`PAUSE`], after printing `lab: paused at <point>`
//! on stderr, so a test can signal or kill it exactly there instead of guessing by timing.
//! Without the variable every point is a no-op. The points are listed in [`POINTS`].

use std::time::Duration;

/// How long a pause lasts: long enough for a test to see the line and act. A signal ends it
/// early only where the paused work itself stops on signals (`up`); elsewhere it is only noted.
pub const PAUSE: Duration = Duration::from_secs(3);

/// Every pause point, in the order a `lab run` passes them.
pub const POINTS: &[&str] = &[
    // `lab up` and the build of `lab run`:
    "up:limits",     // allowed global limits raised (recorded first), no namespace yet
    "up:namespace",  // the first namespace (the LAN's) exists, nothing else
    "up:links",      // a host's NIC and addresses exist
    "up:rules",      // just before a host's nftables batch
    "up:rules-done", // just after it
    "up:containers", // every host is built, containers are being made
    // `lab run` after the build:
    "run:clients",  // every server listens; the clients start next
    "run:ramp",     // clients started
    "run:hold",     // the ramp has settled; the hold begins next
    "run:report",   // the run has settled (and held), the load paused; the NAT tables are read next
    "run:stopping", // agents are being stopped
    // any teardown (`lab run`, `lab down`, a failed `up`):
    "teardown", // the first namespace has just been removed
];

fn armed(point: &str) -> bool {
    debug_assert!(POINTS.contains(&point), "unknown pause point {point}");
    std::env::var_os("LAB_PAUSE_AT").is_some_and(|p| p == point)
}

/// Pauses an async task (the build): a signal caught meanwhile is seen by the caller's select
/// as soon as this returns or yields.
pub async fn pause(point: &'static str) {
    if armed(point) {
        super::events::emit(super::events::Notice::Paused { point });
        tokio::time::sleep(PAUSE).await;
    }
}

/// Pauses synchronous work (teardown).
pub fn pause_blocking(point: &'static str) {
    if armed(point) {
        super::events::emit(super::events::Notice::Paused { point });
        std::thread::sleep(PAUSE);
    }
}
