//! `lab run`'s workload: start the servers, wait until they listen, start the clients, gather
//! their progress, decide when the run has settled, and stop them.
//!
//! Each server and client is a `lab agent` process inside the lab's namespaces, fed its
//! [`AgentSpec`] on stdin and reporting [`Event`] lines on stdout. One process holds at most
//! what its open-files limit allows, so load is spread over processes: clients by splitting a
//! container's connections and its local port range into disjoint slices, servers by sharing
//! the port with SO_REUSEPORT.
//!
//! Containers that share a NAT path (one host, one destination) start their port walks at
//! evenly spaced points of their slices ([`walk_starts`]). The kernel does the same in spirit:
//! `connect()` starts its search at an offset hashed from (source, destination), so two
//! containers rarely pick the same port at the same time. Walking from the same bottom port
//! instead, every connection after the first container's would clash at the masquerade and send
//! the NAT into its search for a free port: the same final counts, but a 1M ramp measured 1.6x
//! slower (docs/bench.md).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

use super::options::{Pace, RunOptions};
use super::outcome::{
    CLIENT_METHOD, ClientResult, Held, Outcome, Sample, ServerResult, Snapshot, StopReason,
    peak_rate,
};
use super::protocol::{AgentSpec, Event, Failures, Progress};
use super::settle::{Settle, Tick};
use super::share::{expected_at_server, spaced, split, walk_starts};
use crate::lab::events::{Notice, emit};
use crate::lab::lifecycle::{Lab, Signals};
use crate::lab::plan::{ContainerId, Hold, Plan, SERVER_BACKLOG};
use crate::lab::state::Process;
use crate::nat::paths::HostPrediction;

/// Sockets an agent needs besides its connections (stdio, epoll, signalfd, listener, slack).
const FD_RESERVE: u64 = 64;
/// Server processes get this much headroom, because SO_REUSEPORT spreads connections by hash,
/// not evenly.
const SERVER_HEADROOM: f64 = 1.25;
const TICK: Duration = Duration::from_millis(100);
/// A hold says how it is going this often.
const HOLD_LINE: Duration = Duration::from_secs(5);

/// What an agent is for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Role {
    Server {
        server: usize,
    },
    Client {
        group: usize,
        container: ContainerId,
        target: SocketAddrV4,
        asked: u32,
    },
}

struct Agent {
    label: String,
    role: Role,
    process: Process,
    child: Child,
    /// Its task is written here once; then it is kept open for the agent's life: closing it
    /// tells the agent its parent is gone.
    stdin: ChildStdin,
    last: Progress,
    ready: bool,
    /// It has sent its counts at least once: until then its zeros mean "not heard from yet",
    /// not "nothing happens".
    reported: bool,
    done: bool,
    /// Set when the agent exited before being told to stop, with why.
    died: Option<String>,
    stderr_tail: Vec<String>,
}

enum Msg {
    Event(usize, Event),
    Stderr(usize, String),
    Closed(usize),
}

/// The running workload of a lab.
pub struct Workload {
    agents: Vec<Agent>,
    rx: mpsc::UnboundedReceiver<Msg>,
    tx: mpsc::UnboundedSender<Msg>,
    started: Instant,
    clients_started: Option<Instant>,
    group_names: Vec<String>,
    max_open_files: u64,
}

impl Workload {
    /// Starts every server of the plan and waits until each listens.
    pub async fn start_servers(lab: &mut Lab, signals: &mut Signals) -> Result<Self> {
        let (tx, rx) = mpsc::unbounded_channel();
        // What each agent raises its soft limit to, and so how many sockets it may hold.
        let max_open_files =
            crate::sys::open_files_hard_limit().context("read the open-files limit")?;
        let per_process = max_open_files.saturating_sub(FD_RESERVE).max(1);
        let plan = &lab.plan;
        let mut w = Self {
            agents: Vec::new(),
            rx,
            tx,
            started: Instant::now(),
            clients_started: None,
            group_names: plan.clients.iter().map(|g| g.name.to_string()).collect(),
            max_open_files,
        };
        let mut batch = Vec::new();
        for (si, server) in plan.servers.iter().enumerate() {
            // `lab up` gave the host queues as long as this backlog (the Plan's sysctls).
            let host = plan.host(server.host);
            let expected = expected_at_server(plan, si);
            let processes = ((expected as f64 * SERVER_HEADROOM) / per_process as f64)
                .ceil()
                .max(1.0) as u64;
            for p in 0..processes {
                let spec = AgentSpec::Server {
                    netns: host.netns.to_string(),
                    port: server.port.get(),
                    backlog: SERVER_BACKLOG,
                    expected: expected.div_ceil(processes),
                };
                let label = format!("server {}#{p}", server.name);
                batch.push((label, Role::Server { server: si }, spec));
            }
        }
        w.start(lab, batch).await?;
        w.wait_ready(signals).await?;
        Ok(w)
    }

    /// Starts every client of the plan; `prediction` (of the same plan) says which containers
    /// share a NAT path, whose port walks are spaced apart.
    pub async fn start_clients(
        &mut self,
        lab: &mut Lab,
        opts: &RunOptions,
        prediction: &[HostPrediction],
    ) -> Result<()> {
        let plan = &lab.plan;
        let per_process = self.max_open_files.saturating_sub(FD_RESERVE).max(1);
        let starts = walk_starts(plan, prediction);
        let mut batch = Vec::new();
        for (gi, group) in plan.clients.iter().enumerate() {
            for (i, &cid) in group.containers.iter().enumerate() {
                let c = plan.container(cid);
                let target = group.target_of(i);
                let connections = group.connections.get();
                let ports = c.local_ports();
                let (lo, hi) = (ports.lo(), ports.hi());
                let needed = u64::from(connections).div_ceil(per_process).max(1);
                // Never fewer than the file asks, nor than the open-files limit needs.
                let processes = needed.max(group.processes.map_or(1, |p| u64::from(p.get())));
                let pace = opts.client_pace(group);
                let (rate, in_flight) = pace.per_process(processes);
                let (rank, sharing) = starts.get(&(gi, i)).copied().unwrap_or((0, 1));
                for (p, (conns, slice)) in split(connections, (lo, hi), processes)
                    .into_iter()
                    .enumerate()
                {
                    let spec = AgentSpec::Client {
                        netns: c.netns.to_string(),
                        source: c.address,
                        target,
                        connections: conns,
                        local_ports: slice,
                        first_port: spaced(slice, rank, sharing),
                        ping_interval_ms: group
                            .ping_interval
                            .as_millis()
                            .try_into()
                            .unwrap_or(u64::MAX),
                        connect_timeout_ms: pace
                            .connect_timeout
                            .as_millis()
                            .try_into()
                            .unwrap_or(u64::MAX),
                        rate,
                        in_flight,
                    };
                    let label = format!("client {} {}#{p}", group.name, c.name);
                    let role = Role::Client {
                        group: gi,
                        container: cid,
                        target,
                        asked: conns,
                    };
                    batch.push((label, role, spec));
                }
            }
        }
        self.clients_started = Some(Instant::now());
        self.start(lab, batch).await
    }

    /// Starts agents in two steps, so that they begin their work together: every process is
    /// created (and recorded, in one write) first, and only then does each get its task. An
    /// agent waits for its task on stdin after starting, so process creation, which takes
    /// milliseconds each and slows down once clients load the CPUs, is not spread over the
    /// ramp: a hundred clients started one by one while the first already connect began 2.7 s
    /// apart at a million connections.
    async fn start(&mut self, lab: &mut Lab, batch: Vec<(String, Role, AgentSpec)>) -> Result<()> {
        let first = self.agents.len();
        let mut specs = Vec::with_capacity(batch.len());
        for (label, role, spec) in batch {
            // If a launch fails, the agents already made are recorded so teardown stops them.
            match self.launch(label, role) {
                Ok(()) => specs.push(spec),
                Err(e) => {
                    self.record_from(lab, first)?;
                    return Err(e);
                }
            }
        }
        self.record_from(lab, first)?;
        for (i, spec) in specs.iter().enumerate() {
            let a = &mut self.agents[first + i];
            let mut line = serde_json::to_string(spec)?;
            line.push('\n');
            a.stdin
                .write_all(line.as_bytes())
                .await
                .with_context(|| format!("send its task to agent {}", a.label))?;
        }
        Ok(())
    }

    fn record_from(&self, lab: &mut Lab, first: usize) -> Result<()> {
        let started: Vec<Process> = self.agents[first..].iter().map(|a| a.process).collect();
        lab.add_agents(&started)
    }

    /// Creates an agent process, which waits for its task on stdin; reads what it says.
    fn launch(&mut self, label: String, role: Role) -> Result<()> {
        let exe = std::env::current_exe().context("find the lab binary to start agents")?;
        let mut child = Command::new(exe)
            .arg("agent")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // A process group of its own: Ctrl-C in a terminal signals the foreground group,
            // and agents that stopped on it by themselves would look dead to the watch. `lab`
            // alone gets it, and stops its agents itself.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("start agent {label}"))?;
        let pid = child
            .id()
            .ok_or_else(|| anyhow!("agent {label} exited at once"))?;
        let process = Process::of(pid);
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| anyhow!("no stdin for agent {label}"))?;
        let index = self.agents.len();
        let stderr = child.stderr.take().map(|err| {
            let tx = self.tx.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(err).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let _ = tx.send(Msg::Stderr(index, line));
                }
            })
        });
        if let Some(out) = child.stdout.take() {
            let tx = self.tx.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(out).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    match serde_json::from_str::<Event>(&line) {
                        Ok(ev) => {
                            let _ = tx.send(Msg::Event(index, ev));
                        }
                        Err(_) => {
                            let _ = tx.send(Msg::Stderr(index, line));
                        }
                    }
                }
                // What it said on stderr before it went (a panic, say) comes before Closed, and
                // so does its exit status, so that `handle` can say how it ended.
                if let Some(stderr) = stderr {
                    let _ = tokio::time::timeout(Duration::from_secs(1), stderr).await;
                }
                for _ in 0..100 {
                    if crate::sys::child_exited(pid) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                let _ = tx.send(Msg::Closed(index));
            });
        }
        self.agents.push(Agent {
            label,
            role,
            process,
            child,
            stdin,
            last: Progress::default(),
            ready: false,
            reported: false,
            done: false,
            died: None,
            stderr_tail: Vec::new(),
        });
        Ok(())
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Event(i, ev) => {
                let a = &mut self.agents[i];
                match ev {
                    Event::Ready { .. } => a.ready = true,
                    Event::Progress(p) => {
                        a.last = p;
                        a.reported = true;
                    }
                    Event::Done(p) => {
                        a.last = p;
                        a.reported = true;
                        a.done = true;
                    }
                    Event::Fatal { message } => a.died = Some(message),
                }
            }
            Msg::Stderr(i, line) => {
                let tail = &mut self.agents[i].stderr_tail;
                if tail.len() < 20 {
                    tail.push(line);
                }
            }
            Msg::Closed(i) => {
                let a = &mut self.agents[i];
                if a.died.is_none() {
                    // Its last words, else how it ended ("signal: 9 (SIGKILL)") if it has.
                    let why = match (a.stderr_tail.last(), a.child.try_wait()) {
                        (Some(line), _) => line.clone(),
                        (None, Ok(Some(status))) => status.to_string(),
                        (None, _) => "no message".into(),
                    };
                    a.died = Some(format!("exited unexpectedly ({why})"));
                }
            }
        }
    }

    async fn wait_ready(&mut self, signals: &mut Signals) -> Result<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while !self.agents.iter().all(|a| a.ready) {
            if let Some(a) = self.agents.iter().find(|a| a.died.is_some()) {
                return Err(anyhow!(
                    "agent {} failed: {}",
                    a.label,
                    a.died.clone().unwrap_or_default()
                ));
            }
            tokio::select! {
                msg = self.rx.recv() => match msg {
                    Some(m) => self.handle(m),
                    None => return Err(anyhow!("lost contact with the agents")),
                },
                _ = tokio::time::sleep_until(deadline) => {
                    let late: Vec<&str> = self.agents.iter().filter(|a| !a.ready).map(|a| a.label.as_str()).collect();
                    return Err(anyhow!("agents did not start within 15 s: {}", late.join(", ")));
                }
                sig = signals.recv() => return Err(crate::error::Fail::Interrupted(sig).into()),
            }
        }
        Ok(())
    }

    /// Watches until every connection is established or failed, the counts settle, the timeout,
    /// or a signal. `live` gets a snapshot every 100 ms.
    pub async fn watch(
        &mut self,
        plan: &Plan,
        pace: &Pace,
        signals: &mut Signals,
        mut live: impl FnMut(&Snapshot),
    ) -> Outcome {
        let start = self.clients_started.unwrap_or_else(Instant::now);
        let mut series = Vec::new();
        let mut settle = Settle::new(start, pace);
        let mut ticker = tokio::time::interval(TICK);
        let stop = loop {
            tokio::select! {
                msg = self.rx.recv() => if let Some(m) = msg { self.handle(m) },
                _ = ticker.tick() => {
                    let snap = self.snapshot(plan);
                    live(&snap);
                    let now = Instant::now();
                    series.push(Sample {
                        t_ms: now.duration_since(start).as_millis() as u64,
                        groups: snap.groups.iter().map(|g| g.1).collect(),
                        total: snap.established,
                    });
                    let clients = || self.agents.iter().filter(|a| matches!(a.role, Role::Client { .. }));
                    let tick = Tick {
                        now,
                        established: snap.established,
                        failed: snap.failed.total(),
                        in_flight: snap.in_flight,
                        at_servers: snap.servers.iter().map(|s| s.established).sum(),
                        clients_done: clients().all(|a| a.done || a.died.is_some()),
                        clients_heard: clients().all(|a| a.reported || a.died.is_some()),
                    };
                    if let Some(stop) = settle.on_tick(&tick) {
                        break stop;
                    }
                }
                sig = signals.recv() => break StopReason::Interrupted(sig),
            }
        };
        // Take in what arrived meanwhile.
        while let Ok(m) = self.rx.try_recv() {
            self.handle(m);
        }
        let last = self.snapshot(plan);
        Outcome {
            stop,
            settle_ms: settle.last_change().duration_since(start).as_millis() as u64,
            peak_rate: peak_rate(&series),
            series,
            last,
            client_method: CLIENT_METHOD,
            max_open_files: self.max_open_files,
            hold: None,
        }
    }

    /// Keeps every connection open for `hold` after the ramp (the built-in clients keep
    /// pinging), saying every [`HOLD_LINE`] how many are open and how many were lost; a
    /// signal ends it early. The series goes on, and `outcome.last` becomes the count at the
    /// end of the hold, which the report and the NAT views then show.
    pub async fn hold(
        &mut self,
        plan: &Plan,
        hold: Hold,
        signals: &mut Signals,
        outcome: &mut Outcome,
    ) {
        let length = match hold {
            Hold::For(d) => Some(d),
            Hold::Forever => None,
        };
        let at_start = outcome.last.clone();
        let start = Instant::now();
        let t0 = self.clients_started.unwrap_or(start);
        let mut ticker = tokio::time::interval(TICK);
        let mut next_line = HOLD_LINE;
        let ended_by = loop {
            tokio::select! {
                msg = self.rx.recv() => if let Some(m) = msg { self.handle(m) },
                _ = ticker.tick() => {
                    let snap = self.snapshot(plan);
                    let now = Instant::now();
                    outcome.series.push(Sample {
                        t_ms: now.duration_since(t0).as_millis() as u64,
                        groups: snap.groups.iter().map(|g| g.1).collect(),
                        total: snap.established,
                    });
                    let elapsed = now.duration_since(start);
                    let done = length.is_some_and(|l| elapsed >= l);
                    if elapsed >= next_line || done {
                        next_line += HOLD_LINE;
                        emit(Notice::Holding {
                            elapsed,
                            length,
                            established: snap.established,
                            lost: at_start.established.saturating_sub(snap.established),
                        });
                    }
                    if done {
                        break None;
                    }
                }
                sig = signals.recv() => break Some(sig),
            }
        };
        while let Ok(m) = self.rx.try_recv() {
            self.handle(m);
        }
        let end = self.snapshot(plan);
        outcome.hold = Some(Held {
            held_ms: start.elapsed().as_millis() as u64,
            asked_s: length.map(|l| l.as_secs_f64()),
            ended_by,
            established_at_start: at_start.established,
            established_at_end: end.established,
            lost: at_start.established.saturating_sub(end.established),
            failed: end.failed.since(&at_start.failed),
        });
        outcome.last = end;
    }

    /// The counts as the agents last reported them.
    pub fn snapshot(&self, plan: &Plan) -> Snapshot {
        let mut clients: Vec<ClientResult> = Vec::new();
        let mut servers: Vec<ServerResult> = Vec::new();
        let mut by_local: HashMap<usize, HashMap<Ipv4Addr, u64>> = HashMap::new();
        let mut in_flight = 0;
        for a in &self.agents {
            // A dead agent's sockets closed with it: it holds no connection and no connect now.
            let alive = a.died.is_none();
            let (established, agent_in_flight) = if alive {
                (a.last.established, a.last.in_flight)
            } else {
                (0, 0)
            };
            match &a.role {
                Role::Client {
                    group,
                    container,
                    target,
                    asked,
                } => {
                    in_flight += agent_in_flight;
                    let c = plan.container(*container);
                    let g = &plan.clients[*group];
                    let entry = match clients
                        .iter_mut()
                        .find(|r| r.group == g.name.as_str() && r.container == c.name.as_str())
                    {
                        Some(e) => e,
                        None => {
                            clients.push(ClientResult {
                                group: g.name.to_string(),
                                container: c.name.to_string(),
                                target: *target,
                                asked: 0,
                                established: 0,
                                failed: Failures::default(),
                                processes: 0,
                                detail: None,
                            });
                            let last = clients.len() - 1;
                            &mut clients[last]
                        }
                    };
                    entry.asked += u64::from(*asked);
                    entry.established += established;
                    entry.failed.merge(&a.last.failed);
                    entry.processes += 1;
                    if entry.detail.is_none() {
                        entry.detail.clone_from(&a.last.detail);
                    }
                }
                Role::Server { server } => {
                    let s = &plan.servers[*server];
                    let locals = by_local.entry(*server).or_default();
                    for (ip, n) in a.last.by_local_address.iter().filter(|_| alive) {
                        *locals.entry(*ip).or_default() += n;
                    }
                    match servers.iter_mut().find(|r| r.server == s.name.as_str()) {
                        Some(r) => {
                            r.established += established;
                            r.processes += 1;
                        }
                        None => servers.push(ServerResult {
                            server: s.name.to_string(),
                            host: plan.host(s.host).name.to_string(),
                            port: s.port.get(),
                            established,
                            by_local_address: Vec::new(),
                            processes: 1,
                        }),
                    }
                }
            }
        }
        for (si, locals) in by_local {
            let name = plan.servers[si].name.as_str();
            if let Some(r) = servers.iter_mut().find(|r| r.server == name) {
                let mut v: Vec<(Ipv4Addr, u64)> = locals.into_iter().collect();
                v.sort();
                r.by_local_address = v;
            }
        }
        let mut failed = Failures::default();
        for c in &clients {
            failed.merge(&c.failed);
        }
        let groups = self
            .group_names
            .iter()
            .map(|g| {
                let of = clients.iter().filter(|c| &c.group == g);
                let (e, a) = of.fold((0, 0), |(e, a), c| (e + c.established, a + c.asked));
                (g.clone(), e, a)
            })
            .collect();
        Snapshot {
            elapsed_ms: self.started.elapsed().as_millis() as u64,
            established: clients.iter().map(|c| c.established).sum(),
            asked: clients.iter().map(|c| c.asked).sum(),
            failed,
            in_flight,
            groups,
            agents_rss_bytes: self.agents.iter().map(|a| a.last.rss_bytes).sum(),
            agents_pss_bytes: self.agents.iter().map(|a| a.last.pss_bytes).sum(),
            agents: self.agents.len(),
            dead_agents: self
                .agents
                .iter()
                .filter_map(|a| {
                    a.died.as_ref().map(|d| {
                        let held = match a.last.established {
                            0 => String::new(),
                            n => format!("; the {n} connections it held closed with it"),
                        };
                        format!("{} (pid {}): {d}{held}", a.label, a.process.pid)
                    })
                })
                .collect(),
            clients,
            servers,
        }
    }

    /// Stops every agent (SIGTERM, then SIGKILL after 3 s) and waits for them to exit.
    /// Says how many have exited each time that changes ([`Notice::StoppingAgents`]).
    pub async fn stop(mut self) {
        for a in &self.agents {
            a.process.signal(libc::SIGTERM);
        }
        // Closing hundreds of thousands of sockets takes the kernel seconds: give the agents
        // time in proportion, saying how many have exited, before SIGKILL.
        let held: u64 = self.agents.iter().map(|a| a.last.established).sum();
        let grace = Duration::from_secs(3) + Duration::from_millis(held / 20);
        let deadline = tokio::time::Instant::now() + grace;
        let total = self.agents.len();
        let mut said = None;
        loop {
            let exited = self
                .agents
                .iter_mut()
                .filter_map(|a| a.child.try_wait().ok().flatten())
                .count();
            if said != Some(exited) {
                said = Some(exited);
                emit(Notice::StoppingAgents { exited, total });
            }
            if exited == total || tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        for a in &mut self.agents {
            if !matches!(a.child.try_wait(), Ok(Some(_))) {
                let _ = a.child.start_kill();
                let _ = a.child.wait().await;
            }
        }
    }
}
