//! When a run's watch ends: the settle policy, pure, fed one [`Tick`] of counts per 100 ms.
//!
//! All done when every client agent has finished and the servers have caught up with what the
//! clients count (or the counts stood still for a second, for connections the servers will
//! never see). Settled when the counts stood still for `settle`, but never before every client
//! has reported once (a client slow to start on a loaded machine holds connections the counts
//! do not show yet), and, while connects are in flight, not before those have had the connect
//! timeout to end by themselves. Counts that are old (a program's kernel count that has not
//! come for two rounds, or a built-in client with connects to finish that missed three
//! heartbeats) are not quiet counts either. Timed out after `timeout`.

use std::time::{Duration, Instant};

use super::options::Pace;
use super::outcome::StopReason;

/// Counts stood still this long after the clients finished: the servers will not catch up.
const CATCH_UP: Duration = Duration::from_secs(1);

/// What one tick of the watch saw.
#[derive(Debug, Clone, Copy)]
pub struct Tick {
    pub now: Instant,
    /// Established and failed connections as the clients count them.
    pub established: u64,
    pub failed: u64,
    pub in_flight: u64,
    /// Established connections as the servers count them.
    pub at_servers: u64,
    /// Every client agent has finished (or died).
    pub clients_done: bool,
    /// Every client agent has reported at least once (or died).
    pub clients_heard: bool,
    /// Some count is old (the kernel's count of a program came too long ago, or a client
    /// agent has gone silent): counts that did not move say nothing yet.
    pub stale: bool,
}

/// The settle policy's memory: when the watch started and when the counts last moved.
#[derive(Debug)]
pub struct Settle {
    start: Instant,
    settle: Duration,
    connect_timeout: Duration,
    timeout: Duration,
    last_change: Instant,
    last_counts: Option<(u64, u64)>,
}

impl Settle {
    pub fn new(start: Instant, pace: &Pace) -> Self {
        Self {
            start,
            settle: pace.settle,
            connect_timeout: pace.connect_timeout,
            timeout: pace.timeout,
            last_change: start,
            last_counts: None,
        }
    }

    /// When the counts last moved (the watch's start if they never did).
    pub fn last_change(&self) -> Instant {
        self.last_change
    }

    /// Takes in one tick; says why the watch ends, if it does now.
    pub fn on_tick(&mut self, t: &Tick) -> Option<StopReason> {
        let counts = (t.established, t.failed);
        if self.last_counts != Some(counts) || t.stale {
            self.last_counts = Some(counts);
            self.last_change = t.now;
        }
        let quiet = t.now.duration_since(self.last_change);
        if t.clients_done && (t.at_servers >= t.established || quiet >= CATCH_UP) {
            return Some(StopReason::AllDone);
        }
        let settled = t.clients_heard
            && quiet >= self.settle
            && (t.in_flight == 0 || quiet >= self.settle + self.connect_timeout);
        if settled {
            return Some(StopReason::Settled);
        }
        (t.now.duration_since(self.start) >= self.timeout).then_some(StopReason::Timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pace() -> Pace {
        Pace {
            settle: Duration::from_secs(3),
            connect_timeout: Duration::from_secs(2),
            timeout: Duration::from_secs(60),
            hold: None,
        }
    }

    /// Feeds `ticks` (ms since start, established, in flight, heard, done, at servers) and
    /// returns the first stop with its time.
    fn run(ticks: &[(u64, u64, u64, bool, bool, u64)]) -> Option<(u64, StopReason)> {
        let start = Instant::now();
        let mut s = Settle::new(start, &pace());
        ticks.iter().find_map(|&(ms, est, fl, heard, done, srv)| {
            s.on_tick(&Tick {
                now: start + Duration::from_millis(ms),
                established: est,
                failed: 0,
                in_flight: fl,
                at_servers: srv,
                clients_done: done,
                clients_heard: heard,
                stale: false,
            })
            .map(|r| (ms, r))
        })
    }

    /// A tick every 100 ms from `from` to `to` with the same counts.
    fn quiet(
        from: u64,
        to: u64,
        est: u64,
        fl: u64,
        heard: bool,
    ) -> Vec<(u64, u64, u64, bool, bool, u64)> {
        (from / 100..=to / 100)
            .map(|i| (i * 100, est, fl, heard, false, est))
            .collect()
    }

    #[test]
    fn settles_after_quiet_counts_with_nothing_in_flight() {
        let mut t = vec![(0, 10, 0, true, false, 10)];
        t.extend(quiet(100, 10_000, 64_512, 0, true));
        assert_eq!(run(&t), Some((3_100, StopReason::Settled)));
    }

    #[test]
    fn connects_in_flight_get_the_connect_timeout_too() {
        let t = quiet(0, 10_000, 64_512, 100, true);
        assert_eq!(run(&t), Some((5_000, StopReason::Settled)));
    }

    #[test]
    fn never_settles_before_every_client_has_reported() {
        // Zeros from clients not heard from yet are not quiet counts.
        let mut t = quiet(0, 8_000, 0, 0, false);
        t.push((8_100, 29_000, 0, true, false, 29_000));
        t.extend(quiet(8_200, 20_000, 29_000, 0, true));
        assert_eq!(run(&t), Some((11_100, StopReason::Settled)));
    }

    #[test]
    fn all_done_waits_for_the_servers_a_second_at_most() {
        let t = [
            (0, 100, 0, true, true, 90),
            (500, 100, 0, true, true, 95),
            (1_000, 100, 0, true, true, 99),
            (1_100, 100, 0, true, true, 99),
        ];
        assert_eq!(run(&t), Some((1_000, StopReason::AllDone)));
        assert_eq!(
            run(&[(0, 100, 0, true, true, 100)]),
            Some((0, StopReason::AllDone))
        );
    }

    #[test]
    fn old_counts_are_not_quiet_counts() {
        let start = Instant::now();
        let mut s = Settle::new(start, &pace());
        let tick = |ms: u64, stale: bool| Tick {
            now: start + Duration::from_millis(ms),
            established: 31_424,
            failed: 0,
            in_flight: 0,
            at_servers: 31_424,
            clients_done: false,
            clients_heard: true,
            stale,
        };
        // The kernel's counts stopped coming at 1 s: the same number for 9 s means nothing.
        assert_eq!(s.on_tick(&tick(1_000, false)), None);
        for ms in (1_100..10_000).step_by(100) {
            assert_eq!(s.on_tick(&tick(ms, true)), None, "{ms}");
        }
        // Fresh again, and still the same: settled 3 s after the last old one.
        assert_eq!(s.on_tick(&tick(10_000, false)), None);
        assert_eq!(s.on_tick(&tick(12_800, false)), None);
        assert_eq!(s.on_tick(&tick(12_900, false)), Some(StopReason::Settled));
    }

    #[test]
    fn times_out_when_counts_keep_moving() {
        let t: Vec<_> = (0..=700).map(|i| (i * 100, i, 1, true, false, i)).collect();
        assert_eq!(run(&t), Some((60_000, StopReason::Timeout)));
    }
}
