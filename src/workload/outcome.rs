//! What a watch of the run sees and ends with: per-container client and per-server results,
//! a snapshot (live or final), the established-over-time series and its peak rate, why the
//! watch ended. Plain values that `report` renders; the supervisor (`run`) fills them.

use std::net::{Ipv4Addr, SocketAddrV4};

use serde::Serialize;

use super::protocol::Failures;

/// Why the watch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "reason", content = "signal")]
pub enum StopReason {
    /// Every connection was established or failed.
    AllDone,
    /// The counts stopped moving for `settle`.
    Settled,
    Timeout,
    Interrupted(i32),
}

/// A point of the established-connections time series.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub t_ms: u64,
    /// Per client group, in plan order.
    pub groups: Vec<u64>,
    pub total: u64,
}

impl Sample {
    /// The point of `snap`, taken `at` after the clients started.
    pub fn of(snap: &Snapshot, at: std::time::Duration) -> Self {
        Self {
            t_ms: at.as_millis() as u64,
            groups: snap.groups.iter().map(|g| g.1).collect(),
            total: snap.established,
        }
    }
}

/// One container's client, summed over its processes.
#[derive(Debug, Clone, Serialize)]
pub struct ClientResult {
    pub group: String,
    pub container: String,
    pub target: SocketAddrV4,
    pub asked: u64,
    pub established: u64,
    pub failed: Failures,
    pub processes: usize,
    pub detail: Option<String>,
    /// The user's program (its first process's command line), counted by the kernel: its
    /// failures cannot be seen from outside. `None`: the built-in client.
    pub program: Option<String>,
    /// Who the program runs as ("nobody (uid 65534)"); `None`: the built-in client.
    pub runs_as: Option<String>,
}

/// One server, summed over its processes.
#[derive(Debug, Clone, Serialize)]
pub struct ServerResult {
    pub server: String,
    pub host: String,
    pub port: u16,
    pub established: u64,
    pub by_local_address: Vec<(Ipv4Addr, u64)>,
    pub processes: usize,
    /// The user's program (its first process's command line), counted by the kernel; `None`:
    /// the built-in server.
    pub program: Option<String>,
    /// Of `established`, connections waiting in the listen queue: completed by the kernel,
    /// not accepted by the program (0 for the built-in server, which accepts at once).
    pub queued: u64,
    /// Who the program runs as; `None`: the built-in server.
    pub runs_as: Option<String>,
}

/// A snapshot of the run, live or final.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub elapsed_ms: u64,
    pub clients: Vec<ClientResult>,
    pub servers: Vec<ServerResult>,
    /// Established connections as the clients count them.
    pub established: u64,
    pub asked: u64,
    pub failed: Failures,
    pub in_flight: u64,
    /// Per client group: established, asked.
    pub groups: Vec<(String, u64, u64)>,
    /// Userspace memory of the agents (resident, shared pages counted in every agent), bytes.
    pub agents_rss_bytes: u64,
    /// Userspace memory of the agents (proportional: shared pages counted once), bytes.
    pub agents_pss_bytes: u64,
    pub agents: usize,
    pub dead_agents: Vec<String>,
}

/// The end of a watch.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub stop: StopReason,
    pub last: Snapshot,
    /// From starting the clients to the last change in the counts.
    pub settle_ms: u64,
    /// Highest rate of new established connections over a 0.5 s window, per second.
    pub peak_rate: u64,
    pub series: Vec<Sample>,
    /// How the clients pick source ports, for the report.
    pub client_method: String,
    pub max_open_files: u64,
    /// The hold after the ramp, if the run held its connections.
    pub hold: Option<Held>,
}

/// What holding the connections after the ramp saw.
#[derive(Debug, Clone, Serialize)]
pub struct Held {
    /// How long the connections were held.
    pub held_ms: u64,
    /// The hold asked for, in seconds; `None`: until a signal.
    pub asked_s: Option<f64>,
    /// The signal that ended the hold (early, or as asked for a hold until Ctrl-C).
    pub ended_by: Option<i32>,
    pub established_at_start: u64,
    pub established_at_end: u64,
    /// Connections that were open at the start and closed during the hold.
    pub lost: u64,
    /// The built-in clients' failures during the hold, by cause (a program's causes cannot
    /// be known from outside).
    pub failed: Failures,
}

/// How the user's programs pick their source ports, for the report.
pub const PROGRAM_METHOD: &str = "your programs pick their own source ports (a plain connect() \
    lets the kernel choose from the container's ip_local_port_range); lab counts their \
    connections from the kernel's socket tables";

pub const CLIENT_METHOD: &str = "bind before connect: each client picks its source ports in \
    order from its container's ip_local_port_range, containers sharing a NAT path starting at \
    spaced points as the kernel's hashed offsets do (same limits as the kernel's choice, without \
    its slow scan for free ports)";

/// Highest rate of new established connections over a 0.5 s window, per second.
pub(super) fn peak_rate(series: &[Sample]) -> u64 {
    series
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let earlier = series[..i].iter().rev().find(|e| s.t_ms - e.t_ms >= 500)?;
            let dt = (s.t_ms - earlier.t_ms) as f64 / 1000.0;
            Some((s.total.saturating_sub(earlier.total) as f64 / dt) as u64)
        })
        .max()
        .unwrap_or_else(|| series.last().map_or(0, |s| s.total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_rate_over_half_a_second() {
        let series: Vec<Sample> = (0..=20)
            .map(|i| Sample {
                t_ms: i * 100,
                groups: vec![],
                total: if i <= 10 { i * 1000 } else { 10_000 },
            })
            .collect();
        assert_eq!(peak_rate(&series), 10_000);
    }
}
