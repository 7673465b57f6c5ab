//! `lab run`'s workload: start the servers, wait until they listen, start the clients, gather
//! their progress, decide when the run has settled, and stop them.
//!
//! Each server and client is a `lab agent` process inside the lab's namespaces, fed its
//! [`AgentSpec`] on stdin and reporting [`Event`] lines on stdout. One process holds at most
//! what its open-files limit allows, so load is spread over processes: clients by splitting a
//! container's connections and its local port range into disjoint slices, servers by sharing
//! the port with SO_REUSEPORT.
//!
//! Containers that share a NAT path (one host, one destination) walk ports the plan deals out
//! on the path itself ([`client_walks`]): each of the path's ports to one of them, so that no
//! two clash at the NAT and every port of a full path is presented. The kernel does the same
//! in spirit: `connect()` starts its search at an offset hashed from (source, destination), so
//! two containers rarely pick the same port at the same time. Walking from the same bottom
//! port instead, every connection after the first container's would clash at the masquerade
//! and send the NAT into its search for a free port: the same final counts, but a 1M ramp
//! measured 1.6x slower (docs/bench.md); and near a full path that search misses, so a short
//! connect timeout ends below the path's capacity.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

use super::event_loop::HEARTBEAT;
use super::options::{Pace, RunOptions};
use super::outcome::{
    CLIENT_METHOD, ClientResult, Held, Outcome, PROGRAM_METHOD, Sample, ServerResult, Snapshot,
    StopReason, peak_rate,
};
use super::program;
use super::protocol::{AgentSpec, Event, Failures, PAUSE, Progress};
use super::settle::{Settle, Tick};
use super::share::{client_processes, client_walks, expected_at_server, server_processes};
use super::sockets::TcpCounts;
use crate::lab::events::{Notice, emit};
use crate::lab::lifecycle::{Lab, Signals};
use crate::lab::plan::{ContainerId, Hold, NetnsName, Plan, SERVER_BACKLOG};
use crate::lab::state::Process;
use crate::nat::paths::HostPrediction;

const TICK: Duration = Duration::from_millis(100);
/// The kernel is asked what programs hold this often.
const KERNEL_TICK: Duration = Duration::from_secs(1);
/// A client agent with work outstanding not heard from for this long is silent (three of its
/// heartbeats missed).
const SILENT: Duration = HEARTBEAT.saturating_mul(3);
/// A program server must listen within this long.
const LISTEN_LIMIT: Duration = Duration::from_secs(15);
/// Built-in agents answer a pause within this long (plus a millisecond per 100 connections
/// held), or are named as not having answered.
const PAUSE_LIMIT: Duration = Duration::from_secs(15);
/// A hold says how it is going this often.
const HOLD_LINE: Duration = Duration::from_secs(5);

/// What an agent is for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Role {
    Server {
        server: usize,
        port: u16,
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
    /// When it last wrote an event: a client with connects in flight writes one at least every
    /// [`HEARTBEAT`].
    heard: Option<Instant>,
    done: bool,
    /// It answered the pause ([`Event::Paused`]): `last` is its count at rest.
    paused: bool,
    /// Set when the agent exited before being told to stop, with why.
    died: Option<String>,
    stderr_tail: Vec<String>,
    /// The user's program this agent became, if it did.
    program: Option<ProgramAgent>,
}

/// A user's program: what it was started as, where it writes, what the kernel is asked.
struct ProgramAgent {
    /// Who it runs as, for people.
    runs_as: String,
    argv: Vec<String>,
    log: PathBuf,
    netns: NetnsName,
    watched: Watched,
}

enum Msg {
    Event(usize, Event),
    Stderr(usize, String),
    Closed(usize),
    /// The kernel's count for watch `usize` of [`Workload::kernel`].
    Kernel(usize, TcpCounts),
}

/// What the kernel is asked about a program's namespace once a second.
#[derive(Debug, Clone)]
struct KernelWatch {
    netns: NetnsName,
    /// The program's agents there; the count goes to the first, the others count 0.
    agents: Vec<usize>,
    what: Watched,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Watched {
    /// A client container's connections towards its target.
    Client(SocketAddrV4),
    /// A server's connections on its port.
    Server(u16),
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
    /// Where programs' logs go: the lab's record.
    log_dir: PathBuf,
    kernel: Vec<KernelWatch>,
    /// When each of `kernel` was last counted.
    counted: Vec<Option<Instant>>,
    /// The task counting programs' sockets; stops with the workload.
    counting: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Workload {
    fn drop(&mut self) {
        if let Some(t) = &self.counting {
            t.abort();
        }
    }
}

impl Workload {
    /// Starts every server of the plan and waits until each listens.
    pub async fn start_servers(lab: &mut Lab, signals: &mut Signals) -> Result<Self> {
        let (tx, rx) = mpsc::unbounded_channel();
        // What each agent raises its soft limit to, and so how many sockets it may hold.
        let max_open_files =
            crate::sys::open_files_hard_limit().context("read the open-files limit")?;
        let plan = &lab.plan;
        let mut w = Self {
            agents: Vec::new(),
            rx,
            tx,
            started: Instant::now(),
            clients_started: None,
            group_names: plan.clients.iter().map(|g| g.name.to_string()).collect(),
            max_open_files,
            log_dir: lab.log_dir()?,
            kernel: Vec::new(),
            counted: Vec::new(),
            counting: None,
        };
        let mut batch = Vec::new();
        for (si, server) in plan.servers.iter().enumerate() {
            let host = plan.host(server.host);
            let role = Role::Server {
                server: si,
                port: server.port.get(),
            };
            if let Some(command) = &server.command {
                let processes = server.processes.map_or(1, |p| p.get());
                let user = program::run_as(server.user.as_deref())
                    .with_context(|| format!("server {}", server.name))?;
                for p in 0..processes {
                    let launch = program::server_launch(plan, server, command, p, processes);
                    let label = program::server_label(server, p);
                    let spec = AgentSpec::Program {
                        netns: host.netns.to_string(),
                        argv: launch.argv,
                        env: launch.env,
                        user: user.ids,
                        runs_as: user.to_string(),
                    };
                    batch.push((label, role.clone(), spec));
                }
                continue;
            }
            // `lab up` gave the host queues as long as this backlog (the Plan's sysctls).
            let expected = expected_at_server(plan, si);
            let processes = server_processes(expected, server.processes, max_open_files);
            for p in 0..processes {
                let spec = AgentSpec::Server {
                    netns: host.netns.to_string(),
                    port: server.port.get(),
                    backlog: SERVER_BACKLOG,
                    expected: expected.div_ceil(processes),
                };
                let label = program::server_label(server, p as u32);
                batch.push((label, role.clone(), spec));
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
        let max_open_files = self.max_open_files;
        let walks = client_walks(plan, prediction, |gi, _| {
            let g = &plan.clients[gi];
            client_processes(g.connections.get(), g.processes, max_open_files)
        });
        let mut batch = Vec::new();
        for (gi, group) in plan.clients.iter().enumerate() {
            for (i, &cid) in group.containers.iter().enumerate() {
                let c = plan.container(cid);
                let target = group.target_of(i);
                let connections = group.connections.get();
                if let Some(command) = &group.command {
                    let processes = group.processes.map_or(1, |p| p.get());
                    let user = program::run_as(group.user.as_deref())
                        .with_context(|| format!("client {}", group.name))?;
                    for p in 0..processes {
                        let launch =
                            program::client_launch(plan, group, c, target, command, p, processes);
                        let spec = AgentSpec::Program {
                            netns: c.netns.to_string(),
                            argv: launch.argv,
                            env: launch.env,
                            user: user.ids,
                            runs_as: user.to_string(),
                        };
                        let label = program::client_label(group, c, p);
                        let role = Role::Client {
                            group: gi,
                            container: cid,
                            target,
                            asked: program::share(connections, p, processes),
                        };
                        batch.push((label, role, spec));
                    }
                    continue;
                }
                let processes = client_processes(connections, group.processes, self.max_open_files);
                let pace = opts.client_pace(group);
                let (rate, in_flight) = pace.per_process(processes);
                let shares = walks.get(&(gi, i)).cloned().unwrap_or_default();
                for (p, share) in shares.into_iter().enumerate() {
                    let conns = share.connections;
                    let spec = AgentSpec::Client {
                        netns: c.netns.to_string(),
                        source: c.address,
                        target,
                        connections: conns,
                        local_ports: share.ports,
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
                    let label = program::client_label(group, c, p as u32);
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
        self.start(lab, batch).await?;
        self.count_programs();
        Ok(())
    }

    /// Starts counting, once a second, what the programs' namespaces hold.
    fn count_programs(&mut self) {
        let mut watches: Vec<KernelWatch> = Vec::new();
        for (i, a) in self.agents.iter().enumerate() {
            let Some(p) = &a.program else { continue };
            match watches
                .iter_mut()
                .find(|w| w.netns == p.netns && w.what == p.watched)
            {
                Some(w) => w.agents.push(i),
                None => watches.push(KernelWatch {
                    netns: p.netns.clone(),
                    agents: vec![i],
                    what: p.watched,
                }),
            }
        }
        if watches.is_empty() {
            return;
        }
        self.counted = vec![None; watches.len()];
        self.kernel = watches.clone();
        let tx = self.tx.clone();
        self.counting = Some(tokio::spawn(async move {
            let mut ticker = tokio::time::interval(KERNEL_TICK);
            loop {
                ticker.tick().await;
                // Every namespace at once, so that one slow dump does not age the others.
                let counting: Vec<_> = watches
                    .iter()
                    .map(|w| {
                        let netns = w.netns.clone();
                        let server = matches!(w.what, Watched::Server(_));
                        tokio::task::spawn_blocking(move || program::count(&netns, server))
                    })
                    .collect();
                for (wi, c) in counting.into_iter().enumerate() {
                    match c.await {
                        Ok(Ok(counts)) => {
                            if tx.send(Msg::Kernel(wi, counts)).is_err() {
                                return;
                            }
                        }
                        Ok(Err(e)) => tracing::warn!("{e:#}"),
                        Err(e) => tracing::warn!("count a program's sockets: {e}"),
                    }
                }
            }
        }));
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
            match self.launch(label, role, &spec) {
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
        // Programs are recorded as group leaders: what they start is stopped with them.
        let started: Vec<Process> = self.agents[first..].iter().map(|a| a.process).collect();
        lab.add_agents(&started)
    }

    /// Creates an agent process, which waits for its task on stdin; reads what it says. An
    /// agent that becomes a program writes to a log of its own instead, and says nothing.
    fn launch(&mut self, label: String, role: Role, spec: &AgentSpec) -> Result<()> {
        let exe = std::env::current_exe().context("find the lab binary to start agents")?;
        let mut cmd = Command::new(exe);
        let program = match spec {
            AgentSpec::Program {
                netns,
                argv,
                runs_as,
                ..
            } => {
                let (log, path) = program::open_log(&self.log_dir, &label)?;
                let err = log
                    .try_clone()
                    .with_context(|| format!("share the log {}", path.display()))?;
                cmd.stdout(Stdio::from(log)).stderr(Stdio::from(err));
                let watched = match &role {
                    Role::Client { target, .. } => Watched::Client(*target),
                    Role::Server { port, .. } => Watched::Server(*port),
                };
                Some(ProgramAgent {
                    runs_as: runs_as.clone(),
                    argv: argv.clone(),
                    log: path,
                    netns: NetnsName::from_state(netns.clone()),
                    watched,
                })
            }
            _ => {
                cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
                None
            }
        };
        let mut child = cmd
            .arg("agent")
            .stdin(Stdio::piped())
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
        let process = if program.is_some() {
            Process::leader(pid)
        } else {
            Process::of(pid)
        };
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
        if program.is_some() {
            // Nothing to read: its exit is what says it went.
            let tx = self.tx.clone();
            tokio::spawn(async move {
                while !crate::sys::child_exited(pid) {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                let _ = tx.send(Msg::Closed(index));
            });
        }
        // A client program starts at once; a server program is ready when its port listens.
        let ready = program.is_some() && matches!(role, Role::Client { .. });
        self.agents.push(Agent {
            label,
            role,
            process,
            child,
            stdin,
            last: Progress::default(),
            ready,
            reported: false,
            heard: None,
            done: false,
            paused: false,
            died: None,
            stderr_tail: Vec::new(),
            program,
        });
        Ok(())
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Event(i, ev) => {
                let a = &mut self.agents[i];
                a.heard = Some(Instant::now());
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
                    Event::Paused(p) => {
                        a.last = p;
                        a.reported = true;
                        a.paused = true;
                    }
                    Event::Fatal { message } => a.died = Some(message),
                }
            }
            Msg::Kernel(wi, counts) => self.take_count(wi, &counts),
            Msg::Stderr(i, line) => {
                let tail = &mut self.agents[i].stderr_tail;
                if tail.len() < 20 {
                    tail.push(line);
                }
            }
            Msg::Closed(i) => {
                let a = &mut self.agents[i];
                if let (None, Some(p)) = (&a.died, &a.program) {
                    // Not reaped here: its group is stopped with it, by its id.
                    let how = crate::sys::child_status_nowait(a.process.pid)
                        .unwrap_or_else(|| "gone".into());
                    let log = program::tail(&p.log);
                    let said = if log.is_empty() {
                        format!("its log {} is empty", p.log.display())
                    } else {
                        format!("the end of its log {}:\n{}", p.log.display(), indent(&log))
                    };
                    a.died = Some(format!(
                        "`{}` exited unexpectedly ({how}); {said}",
                        program::display(&p.argv)
                    ));
                } else if a.died.is_none() {
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

    /// Some program's count is older than two counting rounds: the kernel is slow to answer
    /// (a loaded machine), and counts that did not move may only be old.
    fn kernel_stale(&self, now: Instant) -> bool {
        self.counted
            .iter()
            .any(|c| c.is_none_or(|t| now.duration_since(t) > 2 * KERNEL_TICK))
    }

    /// A built-in client that still has connects to finish has not been heard from for
    /// [`SILENT`]: it is starved of CPU or stuck, and counts that did not move may only be
    /// old (on a loaded machine two million connections once looked settled this way, with
    /// connects in flight that had neither completed nor timed out).
    fn clients_silent(&self, now: Instant) -> usize {
        self.agents
            .iter()
            .filter(|a| {
                matches!(a.role, Role::Client { .. })
                    && a.program.is_none()
                    && a.reported
                    && !a.done
                    && a.died.is_none()
                    && a.heard.is_some_and(|t| now.duration_since(t) > SILENT)
            })
            .count()
    }

    /// How the clients pick their source ports: the built-in way, the programs' own, or both.
    fn client_method(&self) -> String {
        let clients = || {
            self.agents
                .iter()
                .filter(|a| matches!(a.role, Role::Client { .. }))
        };
        let programs = clients().any(|a| a.program.is_some());
        let built_in = clients().any(|a| a.program.is_none());
        match (built_in, programs) {
            (true, true) => format!("built-in clients: {CLIENT_METHOD}; {PROGRAM_METHOD}"),
            (false, true) => PROGRAM_METHOD.to_owned(),
            _ => CLIENT_METHOD.to_owned(),
        }
    }

    /// Takes in the kernel's count for a program: the first agent of the watch holds it all.
    fn take_count(&mut self, wi: usize, counts: &TcpCounts) {
        let Some(w) = self.kernel.get(wi) else { return };
        self.counted[wi] = Some(Instant::now());
        let progress = match w.what {
            Watched::Client(target) => program::client_progress(counts, target),
            Watched::Server(port) => program::server_progress(counts, port),
        };
        for (n, &i) in w.agents.iter().enumerate() {
            let a = &mut self.agents[i];
            a.last = if n == 0 {
                progress.clone()
            } else {
                Progress::default()
            };
            (a.last.rss_bytes, a.last.pss_bytes) = program::memory(a.process.pid);
            a.reported = true;
        }
    }

    /// Marks program servers ready once their port listens, asking the kernel directly.
    async fn check_listening(&mut self) {
        let waiting: Vec<usize> = (0..self.agents.len())
            .filter(|&i| {
                let a = &self.agents[i];
                !a.ready && a.program.is_some() && a.died.is_none()
            })
            .collect();
        for i in waiting {
            let Some(p) = &self.agents[i].program else {
                continue;
            };
            let (netns, Watched::Server(port)) = (p.netns.clone(), p.watched) else {
                continue;
            };
            if let Ok(Ok(counts)) =
                tokio::task::spawn_blocking(move || program::count(&netns, true)).await
            {
                // SO_REUSEPORT copies each listen; one listener means the port is served.
                if program::listens(&counts, port) {
                    self.agents[i].ready = true;
                }
            }
        }
    }

    async fn wait_ready(&mut self, signals: &mut Signals) -> Result<()> {
        let deadline = tokio::time::Instant::now() + LISTEN_LIMIT;
        let mut poll = tokio::time::interval(TICK);
        while !self.agents.iter().all(|a| a.ready) {
            if let Some(a) = self.agents.iter().find(|a| a.died.is_some()) {
                let what = if a.program.is_some() { "" } else { "agent " };
                return Err(anyhow!(
                    "{what}{} failed: {}",
                    a.label,
                    a.died.clone().unwrap_or_default()
                ));
            }
            tokio::select! {
                msg = self.rx.recv() => match msg {
                    Some(m) => self.handle(m),
                    None => return Err(anyhow!("lost contact with the agents")),
                },
                _ = poll.tick() => self.check_listening().await,
                _ = tokio::time::sleep_until(deadline) => {
                    let late: Vec<String> = self.agents.iter().filter(|a| !a.ready).map(|a| match &a.program {
                        Some(p) => {
                            let log = program::tail(&p.log);
                            let port = match p.watched { Watched::Server(port) => port, Watched::Client(t) => t.port() };
                            format!("{} (`{}`) is not listening on port {port}{}", a.label, program::display(&p.argv),
                                if log.is_empty() { String::new() } else { format!("; the end of its log {}:\n{}", p.log.display(), indent(&log)) })
                        }
                        None => a.label.clone(),
                    }).collect();
                    return Err(anyhow!("servers did not start within {} s: {}", LISTEN_LIMIT.as_secs(), late.join("; ")));
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
        let mut was_silent = false;
        let mut ticker = tokio::time::interval(TICK);
        let stop = loop {
            tokio::select! {
                msg = self.rx.recv() => if let Some(m) = msg { self.handle(m) },
                _ = ticker.tick() => {
                    let snap = self.snapshot(plan);
                    live(&snap);
                    let now = Instant::now();
                    series.push(Sample::of(&snap, now.duration_since(start)));
                    let clients = || self.agents.iter().filter(|a| matches!(a.role, Role::Client { .. }));
                    let silent = self.clients_silent(now);
                    // Said when some first go silent, not on every tick.
                    if silent > 0 && !was_silent {
                        emit(Notice::ClientsSilent { silent, for_at_least: SILENT });
                    }
                    was_silent = silent > 0;
                    let tick = Tick {
                        now,
                        established: snap.established,
                        failed: snap.failed.total(),
                        in_flight: snap.in_flight,
                        at_servers: snap.servers.iter().map(|s| s.established).sum(),
                        clients_done: clients().all(|a| a.done || a.died.is_some()),
                        clients_heard: clients().all(|a| a.reported || a.died.is_some()),
                        stale: self.kernel_stale(now) || silent > 0,
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
            client_method: self.client_method(),
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
                    outcome.series.push(Sample::of(&snap, now.duration_since(t0)));
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
                                program: a.program.as_ref().map(|p| program::display(&p.argv)),
                                runs_as: a.program.as_ref().map(|p| p.runs_as.clone()),
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
                Role::Server { server, .. } => {
                    let s = &plan.servers[*server];
                    let locals = by_local.entry(*server).or_default();
                    for (ip, n) in a.last.by_local_address.iter().filter(|_| alive) {
                        *locals.entry(*ip).or_default() += n;
                    }
                    let queued = if alive { a.last.queued } else { 0 };
                    match servers.iter_mut().find(|r| r.server == s.name.as_str()) {
                        Some(r) => {
                            r.established += established;
                            r.queued += queued;
                            r.processes += 1;
                        }
                        None => servers.push(ServerResult {
                            server: s.name.to_string(),
                            host: plan.host(s.host).name.to_string(),
                            port: s.port.get(),
                            established,
                            by_local_address: Vec::new(),
                            queued,
                            processes: 1,
                            program: a.program.as_ref().map(|p| program::display(&p.argv)),
                            runs_as: a.program.as_ref().map(|p| p.runs_as.clone()),
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

    /// Pauses the load of every built-in agent ([`PAUSE`]): the connections stay, for the NAT
    /// tables to be read without pings competing for the CPUs. A user's program is not
    /// paused (lab cannot ask it to). An agent that cannot be written to has died, and the
    /// report says so already.
    ///
    /// Then waits for each paused agent's answer, its count at rest (a server's once it has
    /// accepted what its listen queue held), and makes `outcome.last` of them: the clients'
    /// counts standing still say nothing of a server starved of CPU with connections still
    /// queued. An agent that does not answer within [`PAUSE_LIMIT`] (and a share of the
    /// connections held) is named, and counted as it last reported.
    pub async fn pause(&mut self, plan: &Plan, outcome: &mut Outcome) {
        for a in &mut self.agents {
            a.paused = false;
            if a.program.is_none() && a.died.is_none() {
                let _ = a.stdin.write_all(&[PAUSE]).await;
            }
        }
        let held: u64 = self.agents.iter().map(|a| a.last.established).sum();
        let waited = PAUSE_LIMIT + Duration::from_millis(held / 100);
        let deadline = tokio::time::Instant::now() + waited;
        let waiting = |agents: &[Agent]| {
            agents
                .iter()
                .any(|a| a.program.is_none() && a.died.is_none() && !a.paused)
        };
        while waiting(&self.agents) {
            tokio::select! {
                msg = self.rx.recv() => match msg {
                    Some(m) => self.handle(m),
                    None => break,
                },
                _ = tokio::time::sleep_until(deadline) => {
                    let agents = self
                        .agents
                        .iter()
                        .filter(|a| a.program.is_none() && a.died.is_none() && !a.paused)
                        .map(|a| format!("{} (pid {})", a.label, a.process.pid))
                        .collect();
                    emit(Notice::UnpausedAgents { agents, waited });
                    break;
                }
            }
        }
        // The programs' kernel counts that came meanwhile, too.
        while let Ok(m) = self.rx.try_recv() {
            self.handle(m);
        }
        outcome.last = self.snapshot(plan);
    }

    /// Stops every agent (SIGTERM, then SIGKILL after 3 s) and waits for them to exit.
    /// Says how many have exited each time that changes ([`Notice::StoppingAgents`]).
    pub async fn stop(mut self) {
        if let Some(t) = self.counting.take() {
            t.abort();
        }
        for a in &self.agents {
            if a.program.is_some() {
                a.process.signal_group(libc::SIGTERM);
            } else {
                a.process.signal(libc::SIGTERM);
            }
        }
        // Closing hundreds of thousands of sockets takes the kernel seconds: give the agents
        // time in proportion, saying how many have exited, before SIGKILL.
        let held: u64 = self.agents.iter().map(|a| a.last.established).sum();
        let grace = Duration::from_secs(3) + Duration::from_millis(held / 20);
        let deadline = tokio::time::Instant::now() + grace;
        let total = self.agents.len();
        let mut said = None;
        loop {
            // Exited, not reaped: a program's group id stays its own until the end.
            let exited = self
                .agents
                .iter()
                .filter(|a| crate::sys::child_exited(a.process.pid))
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
            if a.program.is_some() {
                // Whatever the program started that is still there goes with it.
                a.process.signal_group(libc::SIGKILL);
            } else if !crate::sys::child_exited(a.process.pid) {
                let _ = a.child.start_kill();
            }
            let _ = a.child.wait().await;
        }
    }
}

/// Each line of a quoted log, indented under the message.
fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
