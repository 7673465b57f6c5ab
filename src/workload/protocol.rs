//! What `lab` and its agents say to each other. An agent is `lab agent`, started by `lab run`
//! with a pipe on stdin and stdout: it reads one [`AgentSpec`] line (JSON) from stdin, enters
//! the namespace it names, and writes [`Event`] lines (JSON) on stdout until it is told to stop
//! (SIGTERM) or its stdin closes (the parent died: the agent exits instead of lingering).
//! After the spec the parent may write [`PAUSE`] on stdin: the load stops, the connections
//! stay, and the agent answers with [`Event::Paused`], its counts as they stand once paused.

use std::net::{Ipv4Addr, SocketAddrV4};

use serde::{Deserialize, Serialize};

/// Written by the parent on an agent's stdin after its spec: stop the load (a client starts no
/// more connects and sends no more pings) and hold what is open. `lab run` pauses its agents
/// before it reads the kernel's NAT tables: on a machine busy with pings (two million
/// connections) the reading, and a Ctrl-C's teardown after it, waited minutes on CPU the pings
/// took. A server first accepts every connection waiting in its listen queue. Either answers
/// with [`Event::Paused`]: the report's counts are those answers, so that both ends are counted
/// at rest (a server starved of CPU once still had 242 of two million connections in its queue
/// when the clients' counts had stood still for a second).
pub const PAUSE: u8 = b'p';

/// What one agent process does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum AgentSpec {
    /// Accepts and holds connections on `0.0.0.0:port`, reading and discarding what arrives.
    /// Several server processes share the port with SO_REUSEPORT.
    Server {
        netns: String,
        port: u16,
        /// Listen backlog; the namespace's somaxconn caps it.
        backlog: u32,
        /// Connections this process expects at most (for sizing); it accepts more if it can.
        expected: u64,
    },
    /// Opens `connections` long-lived connections from `source` to `target`, binding each to a
    /// local port it takes from `local_ports` in order (ports of the container's
    /// ip_local_port_range, disjoint from its sibling processes', the NAT path's first: see
    /// `share::client_walks`), writes "ping" on each every `ping_interval_ms`, and holds them
    /// until stopped.
    Client {
        netns: String,
        source: Ipv4Addr,
        target: SocketAddrV4,
        connections: u32,
        /// Inclusive ranges, walked in order.
        local_ports: Vec<(u16, u16)>,
        ping_interval_ms: u64,
        /// A connect not established after this long is abandoned and counted as timed out.
        connect_timeout_ms: u64,
        /// New connects per second at most; None = as fast as `in_flight` allows.
        rate: Option<u32>,
        /// Connects in progress at once at most.
        in_flight: u32,
    },
    /// The user's own program: the agent enters `netns`, raises its open-files limit to the
    /// hard limit, and becomes `argv` (exec, same pid, same process group) with `env` added;
    /// stdin is /dev/null, stdout and stderr the log file `lab run` opened for it. It says
    /// nothing on the protocol: the kernel's socket tables say what it does.
    Program {
        netns: String,
        argv: Vec<String>,
        env: Vec<(String, String)>,
        /// (uid, gid) it drops to before exec; `None`: it stays root (the file said
        /// `user = "root"`).
        user: Option<(u32, u32)>,
        /// The same, for people ("nobody (uid 65534)").
        runs_as: String,
    },
}

/// Why a connect failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureCause {
    /// No local port left: every port of the container's range is in use towards this
    /// destination (EADDRNOTAVAIL / EADDRINUSE on every port).
    NoLocalPort,
    /// No answer to the SYNs within the connect timeout (ETIMEDOUT or our own timer): what an
    /// exhausted NAT path does, silently.
    TimedOut,
    /// ECONNREFUSED: nothing listens there.
    Refused,
    /// ECONNRESET, also after being established.
    Reset,
    /// ENETUNREACH / EHOSTUNREACH.
    Unreachable,
    /// Anything else (the event's `detail` says what).
    Other,
}

/// Counts of failures by cause.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failures {
    pub no_local_port: u64,
    pub timed_out: u64,
    pub refused: u64,
    pub reset: u64,
    pub unreachable: u64,
    pub other: u64,
}

impl Failures {
    /// The failures counted since `earlier` (a count that went down counts as 0).
    pub fn since(&self, earlier: &Failures) -> Failures {
        Failures {
            no_local_port: self.no_local_port.saturating_sub(earlier.no_local_port),
            timed_out: self.timed_out.saturating_sub(earlier.timed_out),
            refused: self.refused.saturating_sub(earlier.refused),
            reset: self.reset.saturating_sub(earlier.reset),
            unreachable: self.unreachable.saturating_sub(earlier.unreachable),
            other: self.other.saturating_sub(earlier.other),
        }
    }

    pub fn add(&mut self, cause: FailureCause, n: u64) {
        let slot = match cause {
            FailureCause::NoLocalPort => &mut self.no_local_port,
            FailureCause::TimedOut => &mut self.timed_out,
            FailureCause::Refused => &mut self.refused,
            FailureCause::Reset => &mut self.reset,
            FailureCause::Unreachable => &mut self.unreachable,
            FailureCause::Other => &mut self.other,
        };
        *slot += n;
    }

    pub fn merge(&mut self, other: &Failures) {
        self.no_local_port += other.no_local_port;
        self.timed_out += other.timed_out;
        self.refused += other.refused;
        self.reset += other.reset;
        self.unreachable += other.unreachable;
        self.other += other.other;
    }

    pub fn total(&self) -> u64 {
        self.no_local_port
            + self.timed_out
            + self.refused
            + self.reset
            + self.unreachable
            + self.other
    }
}

/// A line an agent writes on stdout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The agent is in its namespace and working (a server listens; a client starts connecting).
    /// `max_open_files` is the open-files limit it runs under after raising soft to hard.
    Ready { pid: u32, max_open_files: u64 },
    /// Cumulative counters, written at most every 100 ms and only when something changed, and
    /// once more on stopping.
    Progress(Progress),
    /// A client has tried every connection: each is established or failed. It keeps holding
    /// (and pinging) the established ones.
    Done(Progress),
    /// The answer to [`PAUSE`]: the counters once the load stopped (a server's after accepting
    /// what its listen queue held).
    Paused(Progress),
    /// The agent cannot go on; it exits after writing this.
    Fatal { message: String },
}

/// Cumulative counters of one agent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Connections open now (client: established and not since failed; server: accepted and
    /// still open).
    pub established: u64,
    /// Client: connects in progress.
    pub in_flight: u64,
    /// Client: connects started so far.
    pub attempted: u64,
    pub failed: Failures,
    /// Server: open connections per local address (the article's "localaddr" proof).
    pub by_local_address: Vec<(Ipv4Addr, u64)>,
    /// Server: connections the kernel completed that wait in the listen queue, not accepted
    /// yet. A program's are part of its `established` (the kernel counts them); a built-in
    /// server's are not (it counts what it accepted).
    #[serde(default)]
    pub queued: u64,
    /// Client: the first error text per cause that was `Other`, for the report.
    pub detail: Option<String>,
    /// Resident memory of the agent process, bytes (from /proc/self/statm). Counts pages
    /// shared with every other agent (the binary, libc) in full.
    pub rss_bytes: u64,
    /// Proportional set size, bytes (/proc/self/smaps_rollup): shared pages divided among the
    /// processes sharing them, so the agents' PSS add up to what they really cost.
    #[serde(default)]
    pub pss_bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_and_events_round_trip_as_single_json_lines() {
        let spec = AgentSpec::Client {
            netns: "x-c1".into(),
            source: Ipv4Addr::new(172, 17, 0, 2),
            target: "192.168.49.5:9000".parse().unwrap(),
            connections: 25_000,
            local_ports: vec![(17_152, 33_279), (1024, 17_151)],
            ping_interval_ms: 100_000,
            connect_timeout_ms: 5_000,
            rate: None,
            in_flight: 10_000,
        };
        let line = serde_json::to_string(&spec).unwrap();
        assert!(!line.contains('\n'));
        assert!(line.starts_with(r#"{"role":"client""#), "{line}");
        assert_eq!(serde_json::from_str::<AgentSpec>(&line).unwrap(), spec);

        let mut p = Progress::default();
        p.failed.add(FailureCause::TimedOut, 3);
        let ev = Event::Done(p);
        let line = serde_json::to_string(&ev).unwrap();
        assert!(line.starts_with(r#"{"event":"done""#), "{line}");
        assert_eq!(serde_json::from_str::<Event>(&line).unwrap(), ev);
    }

    #[test]
    fn failures_add_up() {
        let mut a = Failures::default();
        a.add(FailureCause::NoLocalPort, 2);
        let mut b = Failures::default();
        b.add(FailureCause::Refused, 1);
        a.merge(&b);
        assert_eq!(a.total(), 3);
    }
}
