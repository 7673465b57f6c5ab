//! `lab agent`: one server or client process inside a lab namespace, driven by `lab run` over a
//! pipe (see [`protocol`](super::protocol)).
//!
//! [`main`] reads the spec, arranges to die with its parent, blocks SIGTERM/SIGINT into a
//! signalfd, enters the namespace, raises the open-files limit and runs the loop.
//! [`run_server`] and [`run_client`] run the built-in [`server`] and [`client`] handlers in the
//! [`event_loop`] (single-threaded raw epoll, in the calling thread's current namespace), so
//! tests can run them on threads of their own.

use std::io::{self, BufRead as _, Write};
use std::os::fd::AsFd as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use super::event_loop::{self, emit};
pub use super::event_loop::{Stop, Stopped, Summary};
use super::protocol::{AgentSpec, Event};
use super::{client, server, sys};

/// Runs `lab agent`: reads one [`AgentSpec`] line from stdin, enters its namespace and runs it,
/// writing [`Event`] lines on stdout. Returns Ok on SIGTERM/SIGINT (after a final Progress) and
/// on stdin's end of file (the parent died). On any error it writes [`Event::Fatal`] and returns
/// the error.
///
/// Must be called while the process has a single thread (the signal mask and the namespace are
/// per thread).
pub fn main() -> Result<()> {
    let stdout = io::stdout();
    let mut out = stdout.lock();
    match agent(&mut out) {
        Ok(()) => Ok(()),
        Err(err) => {
            // The parent may be gone (EPIPE): the error is returned either way.
            let _ = emit(
                &mut out,
                &Event::Fatal {
                    message: format!("{err:#}"),
                },
            );
            Err(err)
        }
    }
}

fn agent(out: &mut impl Write) -> Result<()> {
    sys::kill_me_with_parent().context("prctl(PR_SET_PDEATHSIG)")?;
    let signals = sys::stop_signals_fd().context("block SIGTERM/SIGINT into a signalfd")?;

    let stdin = io::stdin();
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .context("read the agent spec from stdin")?;
    if line.trim().is_empty() {
        bail!("stdin closed before an agent spec arrived");
    }
    let spec: AgentSpec =
        serde_json::from_str(line.trim()).context("parse the agent spec (one JSON line)")?;

    let netns = match &spec {
        AgentSpec::Server { netns, .. }
        | AgentSpec::Client { netns, .. }
        | AgentSpec::Program { netns, .. } => netns,
    };
    sys::enter_netns(&netns_path(netns)?)
        .with_context(|| format!("enter network namespace {netns}"))?;
    sys::raise_open_files_limit().context("raise the open-files limit")?;
    if let AgentSpec::Program {
        argv, env, user, ..
    } = &spec
    {
        drop(signals);
        // After the limit is raised (an unprivileged process could not) and before exec.
        if let Some((uid, gid)) = user {
            sys::drop_privileges(*uid, *gid)
                .with_context(|| format!("become uid {uid}, gid {gid}"))?;
        }
        return Err(become_program(argv, env));
    }

    let stdin_fd = stdin.as_fd();
    let stop = Stop {
        signal: signals.as_fd(),
        stdin: Some(stdin_fd),
    };
    match &spec {
        AgentSpec::Server {
            port,
            backlog,
            expected,
            ..
        } => {
            let config = server::Config {
                port: *port,
                backlog: *backlog,
                expected: *expected,
            };
            run_server(&config, out, stop)?;
        }
        AgentSpec::Program { .. } => unreachable!("became the program above"),
        AgentSpec::Client {
            source,
            target,
            connections,
            local_ports,
            ping_interval_ms,
            connect_timeout_ms,
            rate,
            in_flight,
            ..
        } => {
            let config = client::Config {
                source: *source,
                target: *target,
                connections: *connections,
                local_ports: local_ports.clone(),
                ping_interval: Duration::from_millis(*ping_interval_ms),
                connect_timeout: Duration::from_millis(*connect_timeout_ms),
                rate: *rate,
                in_flight: *in_flight,
            };
            run_client(&config, out, stop)?;
        }
    }
    Ok(())
}

/// Execs the user's program in place of this agent; returns only if that failed. Signals
/// blocked for the signalfd are unblocked first: the program must see SIGTERM when `lab run`
/// stops it.
fn become_program(argv: &[String], env: &[(String, String)]) -> anyhow::Error {
    use std::os::unix::process::CommandExt as _;
    let Some((program, args)) = argv.split_first() else {
        return anyhow::anyhow!("the program's command is empty");
    };
    if let Err(e) = sys::unblock_stop_signals() {
        return anyhow::Error::from(e).context("unblock SIGTERM/SIGINT for the program");
    }
    let path = match find_program(program) {
        Ok(p) => p,
        Err(e) => return e,
    };
    let err = std::process::Command::new(path)
        .arg0(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null())
        .exec();
    anyhow::Error::from(err).context(format!("run {program}"))
}

/// Where a bare program name is in `PATH`, as the user the program runs as can see it: a
/// directory it may not read (root's own) is passed over, and a name found nowhere says so
/// (execvp would say "Permission denied" for the first directory it could not search).
fn find_program(program: &str) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    if program.contains('/') {
        return Ok(PathBuf::from(program));
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|c| {
            std::fs::metadata(c).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .ok_or_else(|| {
            anyhow::anyhow!(
                "run {program}: not found in PATH ({}); give its full path in `command`",
                path.to_string_lossy()
            )
        })
}

/// NAME in the namespace directory `lab` mounted it in (`lab::netlink::netns_dir`), for a
/// plain name only.
fn netns_path(name: &str) -> Result<PathBuf> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        bail!("invalid network namespace name {name:?}");
    }
    Ok(crate::lab::netlink::netns_dir().join(name))
}

/// Accepts and holds connections on 0.0.0.0:`port` in the current namespace until `stop`;
/// writes Ready once listening, then Progress. See [`server`].
pub fn run_server(
    config: &server::Config,
    out: &mut impl Write,
    stop: Stop<'_>,
) -> Result<Summary> {
    event_loop::run(server::Server::new(config)?, out, stop)
}

/// Opens, holds and pings `config.connections` connections in the current namespace until
/// `stop`; writes Ready, Progress and Done. See [`client`].
pub fn run_client(
    config: &client::Config,
    out: &mut impl Write,
    stop: Stop<'_>,
) -> Result<Summary> {
    event_loop::run(client::Client::new(config)?, out, stop)
}

#[cfg(test)]
mod tests {
    //! The loops against the real kernel, as root: each test makes a throwaway namespace
    //! `lag-<pid>-<tag>` (deleted by a guard, also on failure) and runs servers and clients on
    //! threads that entered it.

    use std::net::TcpListener;
    use std::os::fd::OwnedFd;
    use std::path::Path;
    use std::process::Command;
    use std::sync::mpsc;
    use std::thread;
    use std::time::Instant;

    use super::*;
    use crate::workload::protocol::{Failures, Progress};

    fn root_or_skip(test: &str) -> bool {
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } == 0 {
            return true;
        }
        assert!(
            std::env::var_os("CI").is_none(),
            "{test} needs root, and CI must run the namespace tests as root"
        );
        eprintln!("skipping {test}: needs root");
        false
    }

    /// A namespace of this test's own, removed on drop.
    struct TestNetns {
        name: String,
    }

    impl TestNetns {
        /// `lag-<pid>-<tag>` with `lo` up and `addrs` (/32) on it.
        fn new(tag: &str, addrs: &[&str]) -> Self {
            let name = format!("lag-{}-{tag}", std::process::id());
            run("ip", &["netns", "add", &name]);
            let ns = TestNetns { name };
            ns.ip(&["link", "set", "lo", "up"]);
            for a in addrs {
                ns.ip(&["addr", "add", &format!("{a}/32"), "dev", "lo"]);
            }
            sys::raise_open_files_limit().expect("raise the open-files limit");
            ns
        }

        fn ip(&self, args: &[&str]) {
            let mut all = vec!["-n", self.name.as_str()];
            all.extend_from_slice(args);
            run("ip", &all);
        }

        fn exec(&self, cmd: &[&str]) {
            let mut all = vec!["netns", "exec", self.name.as_str()];
            all.extend_from_slice(cmd);
            run("ip", &all);
        }

        fn path(&self) -> PathBuf {
            crate::lab::netlink::netns_dir().join(&self.name)
        }

        /// TCP sockets of the namespace in TIME-WAIT.
        fn time_wait(&self) -> usize {
            let out = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &self.name,
                    "ss",
                    "-Htan",
                    "state",
                    "time-wait",
                ])
                .output()
                .expect("run ss");
            assert!(out.status.success(), "ss: {out:?}");
            String::from_utf8_lossy(&out.stdout).lines().count()
        }
    }

    impl Drop for TestNetns {
        fn drop(&mut self) {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.name])
                .status();
        }
    }

    fn run(cmd: &str, args: &[&str]) {
        let out = Command::new(cmd)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("run {cmd}: {e}"));
        assert!(
            out.status.success(),
            "{cmd} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A Write that parses event lines and sends them to the test.
    struct Lines {
        buf: Vec<u8>,
        tx: mpsc::Sender<Event>,
    }

    impl Write for Lines {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            self.buf.extend_from_slice(data);
            while let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=end).collect();
                let event: Event = serde_json::from_slice(&line).map_err(io::Error::other)?;
                let _ = self.tx.send(event);
            }
            Ok(data.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// A loop running on a thread inside a namespace.
    struct Running {
        events: mpsc::Receiver<Event>,
        /// Dropping it stops the loop (its read end becomes readable: end of file).
        stop: Option<OwnedFd>,
        /// Dropping it is the parent's death (stdin end of file).
        parent: Option<OwnedFd>,
        thread: Option<thread::JoinHandle<Result<Summary>>>,
    }

    enum Role {
        Server(server::Config),
        Client(client::Config),
    }

    fn spawn(ns: &Path, role: Role) -> Running {
        let (stop_r, stop_w) = sys::pipe().expect("pipe");
        let (stdin_r, stdin_w) = sys::pipe().expect("pipe");
        let (tx, rx) = mpsc::channel();
        let ns = ns.to_path_buf();
        let thread = thread::spawn(move || -> Result<Summary> {
            sys::enter_netns(&ns)?;
            let mut out = Lines {
                buf: Vec::new(),
                tx,
            };
            let stop = Stop {
                signal: stop_r.as_fd(),
                stdin: Some(stdin_r.as_fd()),
            };
            match role {
                Role::Server(c) => run_server(&c, &mut out, stop),
                Role::Client(c) => run_client(&c, &mut out, stop),
            }
        });
        let running = Running {
            events: rx,
            stop: Some(stop_w),
            parent: Some(stdin_w),
            thread: Some(thread),
        };
        match running.next(Duration::from_secs(5)) {
            Event::Ready {
                pid,
                max_open_files,
            } => {
                assert_eq!(pid, std::process::id());
                assert!(max_open_files > 0);
            }
            other => panic!("expected Ready, got {other:?}"),
        }
        running
    }

    impl Running {
        fn next(&self, timeout: Duration) -> Event {
            match self.events.recv_timeout(timeout) {
                Ok(Event::Fatal { message }) => panic!("agent failed: {message}"),
                Ok(event) => event,
                Err(e) => panic!("no event within {timeout:?}: {e}"),
            }
        }

        /// The first Progress or Done satisfying `want`, within `timeout`.
        fn wait_for(
            &self,
            timeout: Duration,
            want: impl Fn(&Event, &Progress) -> bool,
        ) -> Progress {
            let deadline = Instant::now() + timeout;
            let mut last = None;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                let event = match self.events.recv_timeout(left) {
                    Ok(e) => e,
                    Err(_) => panic!("not reached within {timeout:?}; last event {last:?}"),
                };
                match &event {
                    Event::Progress(p) | Event::Done(p) if want(&event, p) => return p.clone(),
                    Event::Fatal { message } => panic!("agent failed: {message}"),
                    _ => last = Some(event),
                }
            }
        }

        /// Stops the loop as SIGTERM would: a final Progress, then the summary.
        fn stop(mut self) -> Summary {
            drop(self.stop.take());
            let summary = self.join();
            assert_eq!(summary.stopped, Stopped::Signal);
            summary
        }

        fn join(&mut self) -> Summary {
            let thread = self.thread.take().expect("joined once");
            match thread.join() {
                Ok(Ok(summary)) => summary,
                Ok(Err(e)) => panic!("agent failed: {e:#}"),
                Err(_) => panic!("agent thread panicked"),
            }
        }
    }

    impl Drop for Running {
        fn drop(&mut self) {
            // Stop the loop if a failed assertion left it running.
            drop(self.stop.take());
        }
    }

    fn client(source: &str, target: &str, connections: u32, ports: (u16, u16)) -> client::Config {
        client::Config {
            source: source.parse().expect("address"),
            target: target.parse().expect("socket address"),
            connections,
            local_ports: vec![ports],
            ping_interval: Duration::from_secs(100),
            connect_timeout: Duration::from_secs(5),
            rate: None,
            in_flight: 10_000,
        }
    }

    fn done(e: &Event) -> bool {
        matches!(e, Event::Done(_))
    }

    const WAIT: Duration = Duration::from_secs(10);

    #[test]
    fn server_counts_per_local_address_and_reads_every_ping() {
        if !root_or_skip("server_counts_per_local_address_and_reads_every_ping") {
            return;
        }
        let ns = TestNetns::new(
            "srv",
            &["10.77.0.1", "10.77.0.2", "10.77.0.10", "10.77.0.11"],
        );
        let server = spawn(
            &ns.path(),
            Role::Server(server::Config {
                port: 9000,
                backlog: 4096,
                expected: 1000,
            }),
        );
        let pinging = |mut c: client::Config| {
            c.ping_interval = Duration::from_millis(200);
            c.in_flight = 100;
            c
        };
        let a = spawn(
            &ns.path(),
            Role::Client(pinging(client(
                "10.77.0.10",
                "10.77.0.1:9000",
                300,
                (20000, 29999),
            ))),
        );
        let b = spawn(
            &ns.path(),
            Role::Client(pinging(client(
                "10.77.0.11",
                "10.77.0.2:9000",
                200,
                (20000, 29999),
            ))),
        );
        for (c, n) in [(&a, 300), (&b, 200)] {
            let p = c.wait_for(WAIT, |e, _| done(e));
            assert_eq!(
                (p.established, p.attempted, p.in_flight),
                (n, n, 0),
                "{p:?}"
            );
            assert_eq!(p.failed, Failures::default());
            assert!(p.rss_bytes > 0);
        }
        let p = server.wait_for(WAIT, |_, p| p.established == 500);
        assert_eq!(
            p.by_local_address,
            vec![
                ("10.77.0.1".parse().expect("ip"), 300),
                ("10.77.0.2".parse().expect("ip"), 200)
            ]
        );
        // Every connection is pinged at least twice in 0.7 s (a round every 0.2 s, the first
        // 0.2 s after the client started).
        thread::sleep(Duration::from_millis(700));
        let (sa, sb) = (a.stop(), b.stop());
        assert_eq!(sa.last.established, 300);
        assert!(sa.bytes_written >= 2 * 4 * 300, "{}", sa.bytes_written);
        assert!(sb.bytes_written >= 2 * 4 * 200, "{}", sb.bytes_written);
        // The clients reset their connections as they stopped: the server reads the rest,
        // sees every connection end, and no end waits in TIME-WAIT.
        let p = server.wait_for(WAIT, |_, p| p.established == 0);
        assert!(p.by_local_address.is_empty(), "{p:?}");
        let s = server.stop();
        assert_eq!(s.bytes_read, sa.bytes_written + sb.bytes_written);
        assert_eq!(ns.time_wait(), 0, "closed gracefully, not reset");
    }

    #[test]
    fn a_100_port_slice_gives_100_connections_and_50_no_local_port() {
        if !root_or_skip("a_100_port_slice_gives_100_connections_and_50_no_local_port") {
            return;
        }
        let ns = TestNetns::new("slice", &["10.77.0.1"]);
        let server = spawn(
            &ns.path(),
            Role::Server(server::Config {
                port: 9000,
                backlog: 4096,
                expected: 200,
            }),
        );
        let c = spawn(
            &ns.path(),
            Role::Client(client("10.77.0.1", "10.77.0.1:9000", 150, (40000, 40099))),
        );
        let p = c.wait_for(WAIT, |e, _| done(e));
        assert_eq!((p.established, p.attempted, p.in_flight), (100, 150, 0));
        let want = Failures {
            no_local_port: 50,
            ..Failures::default()
        };
        assert_eq!(p.failed, want);
        server.wait_for(WAIT, |_, p| p.established == 100);
        let s = c.stop();
        assert_eq!(s.last.established, 100);
        server.stop();
    }

    #[test]
    fn refused_at_the_paced_rate_and_parent_death_ends_the_loop() {
        if !root_or_skip("refused_at_the_paced_rate_and_parent_death_ends_the_loop") {
            return;
        }
        let ns = TestNetns::new("ref", &["10.77.0.1"]);
        let begin = Instant::now();
        let mut cfg = client("10.77.0.1", "10.77.0.1:9999", 20, (40000, 40999));
        cfg.rate = Some(100);
        let mut c = spawn(&ns.path(), Role::Client(cfg));
        let p = c.wait_for(WAIT, |e, _| done(e));
        let elapsed = begin.elapsed();
        assert_eq!((p.established, p.attempted, p.in_flight), (0, 20, 0));
        assert_eq!(p.failed.refused, 20, "{p:?}");
        assert_eq!(p.failed.total(), 20);
        // 20 connects at 100/s: 0.19 s at least.
        assert!(elapsed >= Duration::from_millis(180), "{elapsed:?}");
        // stdin's end of file: the loop ends without a final Progress.
        drop(c.parent.take());
        let s = c.join();
        assert_eq!(s.stopped, Stopped::ParentGone);
        let rest: Vec<Event> = c.events.try_iter().collect();
        assert!(rest.is_empty(), "{rest:?}");
    }

    #[test]
    fn dropped_syns_time_out_one_in_flight_at_a_time() {
        if !root_or_skip("dropped_syns_time_out_one_in_flight_at_a_time") {
            return;
        }
        let ns = TestNetns::new("drop", &["10.77.0.1"]);
        ns.exec(&["nft", "add", "table", "ip", "lag"]);
        ns.exec(&[
            "nft",
            "add chain ip lag in { type filter hook input priority 0; }",
        ]);
        ns.exec(&[
            "nft", "add", "rule", "ip", "lag", "in", "tcp", "dport", "9001", "drop",
        ]);
        let server = spawn(
            &ns.path(),
            Role::Server(server::Config {
                port: 9001,
                backlog: 128,
                expected: 10,
            }),
        );
        let mut cfg = client("10.77.0.1", "10.77.0.1:9001", 3, (40000, 40999));
        cfg.connect_timeout = Duration::from_millis(200);
        cfg.in_flight = 1;
        let begin = Instant::now();
        let c = spawn(&ns.path(), Role::Client(cfg));
        let p = c.wait_for(WAIT, |e, p| {
            assert!(p.in_flight <= 1, "{p:?}");
            done(e)
        });
        let elapsed = begin.elapsed();
        assert_eq!((p.established, p.attempted, p.in_flight), (0, 3, 0));
        assert_eq!(p.failed.timed_out, 3, "{p:?}");
        assert_eq!(p.failed.total(), 3);
        assert!(elapsed >= Duration::from_millis(600), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
        c.stop();
        let s = server.stop();
        assert_eq!(s.last.established, 0);
    }

    #[test]
    fn a_source_that_is_not_local_fails_before_ready() {
        if !root_or_skip("a_source_that_is_not_local_fails_before_ready") {
            return;
        }
        let ns = TestNetns::new("src", &["10.77.0.1"]);
        let path = ns.path();
        let result = thread::spawn(move || -> Result<(Vec<u8>, String)> {
            sys::enter_netns(&path)?;
            let (stop_r, _stop_w) = sys::pipe()?;
            let mut out = Vec::new();
            let stop = Stop {
                signal: stop_r.as_fd(),
                stdin: None,
            };
            let cfg = client("10.77.0.9", "10.77.0.1:9000", 5, (40000, 40999));
            let err = run_client(&cfg, &mut out, stop).expect_err("not a local address");
            Ok((out, format!("{err:#}")))
        })
        .join()
        .expect("thread")
        .expect("namespace");
        assert!(
            result.0.is_empty(),
            "{}",
            String::from_utf8_lossy(&result.0)
        );
        assert!(result.1.contains("10.77.0.9"), "{}", result.1);
    }

    #[test]
    fn unreachable_route_and_peer_close_after_established() {
        if !root_or_skip("unreachable_route_and_peer_close_after_established") {
            return;
        }
        let ns = TestNetns::new("rst", &["10.77.0.1"]);
        ns.ip(&["route", "add", "unreachable", "10.78.0.0/16"]);
        let c = spawn(
            &ns.path(),
            Role::Client(client("10.77.0.1", "10.78.0.1:9000", 5, (40000, 40999))),
        );
        let p = c.wait_for(WAIT, |e, _| done(e));
        assert_eq!(p.failed.unreachable, 5, "{p:?}");
        assert_eq!(p.failed.total(), 5);
        c.stop();

        // A peer that accepts and closes at once: each connection counts as established, then
        // as Reset, and established returns to 0.
        let path = ns.path();
        let (tx, rx) = mpsc::channel();
        let closer = thread::spawn(move || -> io::Result<()> {
            sys::enter_netns(&path)?;
            let l = TcpListener::bind("10.77.0.1:9002")?;
            tx.send(()).map_err(io::Error::other)?;
            for _ in 0..10 {
                drop(l.accept()?);
            }
            Ok(())
        });
        rx.recv_timeout(WAIT).expect("listener up");
        let c = spawn(
            &ns.path(),
            Role::Client(client("10.77.0.1", "10.77.0.1:9002", 10, (40000, 40999))),
        );
        let p = c.wait_for(WAIT, |_, p| p.failed.reset == 10);
        assert_eq!(
            (p.established, p.attempted, p.in_flight),
            (0, 10, 0),
            "{p:?}"
        );
        assert_eq!(p.failed.total(), 10);
        let s = c.stop();
        assert_eq!(s.last.failed.reset, 10);
        closer.join().expect("closer thread").expect("closer");
    }
}
