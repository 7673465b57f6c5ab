//! The test programs (tests/programs/, Go) work, without any lab: in a throwaway network
//! namespace of its own, the client opens exactly its N connections to the server, both report
//! them, and both exit cleanly on SIGTERM. Needs root (for the namespace) and Go.

mod common;

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use common::programs::go_programs;
use common::{root_or_skip, skip};

/// A network namespace of this test process, with only `lo` up; deleted when dropped.
struct Netns(String);

impl Netns {
    fn new(tag: &str) -> Self {
        let name = format!("lab-programs-{tag}-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        ip(&["netns", "add", &name]);
        let ns = Self(name);
        ip(&["-n", &ns.0, "link", "set", "lo", "up"]);
        ns
    }

    /// `program args...` run inside the namespace, its stdout read line by line.
    fn spawn(&self, program: &std::path::Path, args: &[&str]) -> Program {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.0])
            .arg(program)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", program.display()));
        let (tx, lines) = channel();
        let stdout = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Program {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Established TCP connections in the namespace matching an `ss` filter.
    fn established(&self, filter: &str) -> usize {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.0,
                "ss",
                "-Htn",
                "state",
                "established",
            ])
            .args(filter.split_whitespace())
            .output()
            .expect("run ss");
        assert!(out.status.success(), "{}", common::text(&out));
        String::from_utf8_lossy(&out.stdout).lines().count()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(out.status.success(), "ip {args:?}: {}", common::text(&out));
}

/// A running program (`ip netns exec` execs it: the child's pid is the program's); killed when
/// dropped, so a failing test leaves no process behind.
struct Program {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Program {
    /// Waits up to `within` for a stdout line that `pick` accepts, and returns what it made of it.
    fn wait_for<T>(&mut self, within: Duration, pick: impl Fn(&str) -> Option<T>) -> T {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let picked = pick(&line);
                    self.seen.push(line);
                    if let Some(t) = picked {
                        return t;
                    }
                }
                Err(_) => panic!(
                    "no expected line within {within:?}; it printed:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// SIGTERM, then asserts a clean exit (status 0) within `within`.
    fn terminate(&mut self, what: &str, within: Duration) {
        let pid = i32::try_from(self.child.id()).expect("pid");
        // SAFETY: kill(2) on the pid of our own child, which has not been reaped yet.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0, "kill {what}");
        let deadline = Instant::now() + within;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "{what} did not exit within {within:?} of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "{what} exited with {status} on SIGTERM");
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn the_client_opens_exactly_n_connections_to_the_server_and_both_stop_on_sigterm() {
    let test = "the_client_opens_exactly_n_connections_to_the_server_and_both_stop_on_sigterm";
    if !root_or_skip(test) {
        return;
    }
    let progs = match go_programs() {
        Ok(p) => p,
        Err(why) => return skip(test, &why),
    };
    assert!(progs.server.is_absolute() && progs.client.is_absolute());
    const N: usize = 500;
    // Dropped in reverse order: the programs are killed before the namespace goes.
    let ns = Netns::new("test");
    let mut server = ns.spawn(&progs.server, &["-l", "127.0.0.1:0"]);
    let port: u16 = server.wait_for(Duration::from_secs(5), |l| {
        l.strip_prefix("listening on 127.0.0.1:")?.parse().ok()
    });
    let target = format!("127.0.0.1:{port}");
    let mut client = ns.spawn(
        &progs.client,
        &["-target", &target, "-n", &N.to_string(), "-timeout", "3s"],
    );
    // Every attempt has ended (bounded by the connect timeout): the client says what it got.
    let (established, failed) = client.wait_for(Duration::from_secs(15), |l| {
        let rest = l.strip_prefix("done: established ")?;
        let (ok, rest) = rest.split_once(" failed ")?;
        let failed = rest.split_whitespace().next()?;
        Some((ok.parse::<usize>().ok()?, failed.parse::<usize>().ok()?))
    });
    assert_eq!((established, failed), (N, 0), "{}", client.seen.join("\n"));
    // The kernel agrees, from both ends: N from the client towards the port, N accepted on it.
    let towards = format!("( dport = :{port} )");
    let accepted = format!("( sport = :{port} )");
    assert_eq!(ns.established(&towards), N, "client side, by ss");
    assert_eq!(ns.established(&accepted), N, "server side, by ss");
    // The server counts them too (its line of once a second).
    server.wait_for(Duration::from_secs(3), |l| {
        (l == format!("open {N}")).then_some(())
    });

    client.terminate("the client", Duration::from_secs(3));
    server.terminate("the server", Duration::from_secs(3));
    assert_eq!(ns.established(&towards), 0, "closed with the client");
}
