//! How a run is paced and when it stops: the command line's flags over the lab file's
//! `[run]` and each client's pacing, over the defaults. Pure.

use std::time::Duration;

use crate::lab::plan::{ClientGroup, Hold, Plan};

/// Counts standing still this long mean settled, unless the file or `--settle` says otherwise.
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(3);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Connects in progress at once per built-in client process when nothing sets it.
pub const DEFAULT_IN_FLIGHT_PER_PROCESS: u32 = 8192;

/// What `lab run`'s flags say; `None`: the lab file's value, or the default.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub settle: Option<Duration>,
    pub timeout: Option<Duration>,
    pub hold: Option<Hold>,
    pub connect_timeout: Option<Duration>,
    /// Connects in progress at once, per container.
    pub in_flight: Option<u32>,
    /// New connects per second, per container.
    pub rate: Option<u32>,
}

/// The run's pace, decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    pub settle: Duration,
    pub timeout: Duration,
    pub hold: Option<Hold>,
    /// The longest connect timeout of any client: quiet counts mean settled only once
    /// connects in flight have had this long to end.
    pub connect_timeout: Duration,
}

/// A built-in client container's pace, decided; split among its processes by [`ClientPace::per_process`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientPace {
    pub connect_timeout: Duration,
    /// Per container; `None`: as fast as `in_flight` allows.
    pub rate: Option<u32>,
    /// Per container; `None`: [`DEFAULT_IN_FLIGHT_PER_PROCESS`] per process.
    pub in_flight: Option<u32>,
}

impl RunOptions {
    pub fn pace(&self, plan: &Plan) -> Pace {
        let connect_timeout = plan
            .clients
            .iter()
            .map(|g| self.client_pace(g).connect_timeout)
            .max()
            .unwrap_or_else(|| self.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT));
        Pace {
            settle: self.settle.or(plan.run.settle).unwrap_or(DEFAULT_SETTLE),
            timeout: self.timeout.or(plan.run.timeout).unwrap_or(DEFAULT_TIMEOUT),
            hold: self.hold.or(plan.run.hold),
            connect_timeout,
        }
    }

    pub fn client_pace(&self, group: &ClientGroup) -> ClientPace {
        let file = &group.pacing;
        ClientPace {
            connect_timeout: self
                .connect_timeout
                .or(file.connect_timeout)
                .unwrap_or(DEFAULT_CONNECT_TIMEOUT),
            rate: self.rate.or(file.rate.map(|r| r.get())),
            in_flight: self.in_flight.or(file.in_flight.map(|n| n.get())),
        }
    }
}

impl ClientPace {
    /// (rate, in_flight) for each of `processes` processes of one container: the container's
    /// figures shared out, rounded up so that none gets 0.
    pub fn per_process(&self, processes: u64) -> (Option<u32>, u32) {
        let share = |n: u32| {
            u32::try_from(u64::from(n).div_ceil(processes.max(1)))
                .unwrap_or(u32::MAX)
                .max(1)
        };
        (
            self.rate.map(share),
            self.in_flight.map_or(DEFAULT_IN_FLIGHT_PER_PROCESS, share),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{LoadOptions, Source, load};

    fn plan(extra_client: &str, run: &str) -> Plan {
        let text = format!(
            "name = \"t\"\n[lans.lan]\nsubnet = \"10.0.0.0/24\"\n[hosts.a]\nlan = \"lan\"\n\
             addresses = [\"10.0.0.1\"]\n[containers.c]\nhost = \"a\"\n[servers.s]\nhost = \"a\"\n\
             port = 9000\n[clients.l]\ncontainers = [\"c\"]\nconnect = [\"10.0.0.1:9000\"]\n\
             connections = 10\n{extra_client}\n[clients.m]\ncontainers = [\"c\"]\n\
             connect = [\"10.0.0.1:9000\"]\nconnections = 10\n{run}"
        );
        load(&Source::new("t.toml", &text), &LoadOptions::default())
            .map_err(|d| format!("{d:?}"))
            .unwrap()
            .plan
    }

    #[test]
    fn flags_over_the_file_over_the_defaults() {
        let p = plan(
            "connect_timeout = \"3s\"\nrate = 5000\nin_flight = 4096",
            "[run]\nsettle = \"2s\"\nhold = \"30s\"\n",
        );
        let none = RunOptions::default();
        let pace = none.pace(&p);
        assert_eq!(pace.settle, Duration::from_secs(2));
        assert_eq!(pace.timeout, DEFAULT_TIMEOUT);
        assert_eq!(pace.hold, Some(Hold::For(Duration::from_secs(30))));
        // Group m has the default 10 s, the longest.
        assert_eq!(pace.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
        let l = none.client_pace(&p.clients[0]);
        assert_eq!(
            (l.connect_timeout, l.rate, l.in_flight),
            (Duration::from_secs(3), Some(5000), Some(4096))
        );
        let m = none.client_pace(&p.clients[1]);
        assert_eq!((m.rate, m.in_flight), (None, None));

        let flags = RunOptions {
            settle: Some(Duration::from_secs(1)),
            hold: Some(Hold::Forever),
            connect_timeout: Some(Duration::from_secs(1)),
            rate: Some(100),
            ..RunOptions::default()
        };
        let pace = flags.pace(&p);
        assert_eq!(pace.settle, Duration::from_secs(1));
        assert_eq!(pace.hold, Some(Hold::Forever));
        assert_eq!(pace.connect_timeout, Duration::from_secs(1));
        let l = flags.client_pace(&p.clients[0]);
        assert_eq!((l.rate, l.in_flight), (Some(100), Some(4096)));
    }

    #[test]
    fn a_containers_pace_is_shared_by_its_processes() {
        let pace = ClientPace {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            rate: Some(5000),
            in_flight: Some(4096),
        };
        assert_eq!(pace.per_process(3), (Some(1667), 1366));
        assert_eq!(pace.per_process(1), (Some(5000), 4096));
        let tiny = ClientPace {
            rate: Some(2),
            in_flight: Some(1),
            ..pace
        };
        assert_eq!(tiny.per_process(4), (Some(1), 1));
        let unset = ClientPace {
            rate: None,
            in_flight: None,
            ..pace
        };
        assert_eq!(unset.per_process(5), (None, DEFAULT_IN_FLIGHT_PER_PROCESS));
    }
}
