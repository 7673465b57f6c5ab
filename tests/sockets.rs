//! `workload::sockets` against the kernel, as root: each test makes a throwaway network
//! namespace of its own (deleted by a guard, even on panic), opens listeners and connections
//! inside it only, and checks that the sock_diag counts are exactly what it opened, then what is
//! left after closing some. The `#[ignore]`d `bench_100k_pairs` times one count of 100,000
//! connection pairs (docs/bench.md, "sock_diag counts").

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::AsFd as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lab::workload::sockets::{Filter, States, TcpCounts, count_tcp, count_tcp_with};

/// A network namespace of this test alone, with `lo` up; deleted on drop.
struct TestNetns {
    name: String,
}

impl TestNetns {
    fn new(tag: &str) -> Self {
        let name = format!("lab-sockdiag-test-{}-{tag}", std::process::id());
        run(&["ip", "netns", "add", &name]);
        let ns = Self { name };
        run(&["ip", "-n", &ns.name, "link", "set", "lo", "up"]);
        ns
    }

    /// Runs `f` on this thread inside the namespace (sockets made there belong to it).
    fn run<T>(&self, f: impl FnOnce() -> T) -> T {
        let ns = netns_rs::NetNs::get(&self.name).expect("open the test namespace");
        ns.run(|_| f()).expect("enter the test namespace")
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn run(args: &[&str]) {
    let st = Command::new(args[0])
        .args(&args[1..])
        .status()
        .expect("run a command");
    assert!(st.success(), "{args:?}: {st}");
}

/// Counts until `ok` holds (sockets change state asynchronously) or 10 s pass; returns the
/// last count either way, for the assertions to report.
fn wait_for(ok: impl Fn(&TcpCounts) -> bool) -> TcpCounts {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let c = count_tcp().expect("count_tcp");
        if ok(&c) || Instant::now() > deadline {
            return c;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Accepts `n` connections on another thread (the listener already belongs to the namespace).
fn accept_n(l: &TcpListener, n: usize) -> std::thread::JoinHandle<Vec<TcpStream>> {
    let l = l.try_clone().expect("clone listener");
    std::thread::spawn(move || (0..n).map(|_| l.accept().expect("accept").0).collect())
}

fn ss_established(ns: &str) -> usize {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "ss", "-Htn", "state", "established"])
        .output()
        .expect("ss");
    String::from_utf8_lossy(&out.stdout).lines().count()
}

const N: usize = 300;

#[test]
fn counts_one_listener_then_fewer_after_closing() {
    let ns = TestNetns::new("one");
    let server = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 7001);
    ns.run(|| {
        let l = TcpListener::bind(server).expect("bind");
        let acceptor = accept_n(&l, N);
        let mut clients: Vec<TcpStream> = (0..N)
            .map(|_| TcpStream::connect(server).expect("connect"))
            .collect();
        let mut accepted = acceptor.join().expect("acceptor");

        let c = wait_for(|c| {
            c.by_local
                .get(&server)
                .is_some_and(|s| s.established == N as u64)
        });
        assert_eq!(c.listening, vec![server]);
        assert_eq!(c.by_remote[&server].established, N as u64, "{c:?}");
        assert_eq!(c.by_remote[&server].total(), N as u64);
        assert_eq!(c.by_local[&server].established, N as u64);
        assert_eq!(c.by_local[&server].total(), N as u64);
        // Each client socket is its own local address; the server's sockets point back at them.
        for s in &clients {
            let me = match s.local_addr().expect("local_addr") {
                std::net::SocketAddr::V4(a) => a,
                other => panic!("{other}"),
            };
            assert_eq!(c.by_local[&me].established, 1);
            assert_eq!(c.by_remote[&me].established, 1);
        }
        assert_eq!(c.dump.sockets, 2 * N as u64 + 1);
        assert_eq!(ss_established(&ns.name), 2 * N);

        // Close 100 clients: they wait in FIN_WAIT2, their server ends in CLOSE_WAIT.
        let gone: Vec<TcpStream> = clients.drain(..100).collect();
        let gone_ports: Vec<SocketAddrV4> = gone
            .iter()
            .map(|s| match s.local_addr().expect("local_addr") {
                std::net::SocketAddr::V4(a) => a,
                other => panic!("{other}"),
            })
            .collect();
        drop(gone);
        let c = wait_for(|c| c.by_local[&server].close_wait == 100);
        assert_eq!(c.by_remote[&server].established, 200, "{c:?}");
        assert_eq!(c.by_remote[&server].fin_wait, 100);
        assert_eq!(c.by_local[&server].established, 200);
        assert_eq!(c.by_local[&server].close_wait, 100);

        // The server closes its ends too: the clients go to TIME_WAIT, which is never counted.
        accepted.retain(|s| match s.peer_addr().expect("peer_addr") {
            std::net::SocketAddr::V4(a) => !gone_ports.contains(&a),
            _ => true,
        });
        assert_eq!(accepted.len(), 200);
        let c =
            wait_for(|c| c.by_local[&server].total() == 200 && c.by_remote[&server].total() == 200);
        assert_eq!(c.by_remote[&server].established, 200, "{c:?}");
        assert_eq!(c.by_remote[&server].total(), 200);
        assert_eq!(c.by_local[&server].established, 200);
        assert_eq!(c.by_local[&server].total(), 200);
        assert_eq!(c.dump.sockets, 2 * 200 + 1, "TIME_WAIT is not dumped");
        assert_eq!(ss_established(&ns.name), 2 * 200);
    });
}

#[test]
fn counts_a_wildcard_listener_per_local_address() {
    let ns = TestNetns::new("aliases");
    run(&[
        "ip",
        "-n",
        &ns.name,
        "addr",
        "add",
        "10.11.0.1/32",
        "dev",
        "lo",
    ]);
    let port = 7100;
    let wild = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port);
    let targets = [
        SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 1), port),
        SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 2), port),
        SocketAddrV4::new(Ipv4Addr::new(10, 11, 0, 1), port),
    ];
    ns.run(|| {
        let l = TcpListener::bind(wild).expect("bind");
        let acceptor = accept_n(&l, N);
        let mut clients: HashMap<SocketAddrV4, Vec<TcpStream>> = HashMap::new();
        for i in 0..N {
            let to = targets[i % targets.len()];
            clients
                .entry(to)
                .or_default()
                .push(TcpStream::connect(to).expect("connect"));
        }
        let _accepted = acceptor.join().expect("acceptor");
        let per = (N / targets.len()) as u64;
        let c = wait_for(|c| {
            targets
                .iter()
                .all(|t| c.by_local.get(t).is_some_and(|s| s.established == per))
        });
        assert_eq!(c.listening, vec![wild]);
        for t in &targets {
            assert_eq!(c.by_local[t].established, per, "{t}: {c:?}");
            assert_eq!(c.by_remote[t].established, per, "{t}");
        }
        assert!(!c.by_local.contains_key(&wild));

        // The client's view alone: no listeners, no per-local map.
        let client = count_tcp_with(Filter::CLIENT).expect("count");
        assert!(client.listening.is_empty() && client.by_local.is_empty());
        assert_eq!(client.by_remote[&targets[1]].established, per);
        // Only listeners: the kernel does not walk the connections at all.
        let only = count_tcp_with(Filter {
            states: States::LISTEN,
            ..Filter::SERVER
        })
        .expect("count");
        assert_eq!(only.listening, vec![wild]);
        assert_eq!(only.dump.sockets, 1);

        // Reset one address's clients: those counts go to zero, the others stay.
        for s in clients.remove(&targets[2]).expect("clients") {
            lab::workload::sys::set_abortive_close(s.as_fd()).expect("linger");
        }
        let c = wait_for(|c| c.by_local.get(&targets[2]).is_none_or(|s| s.total() == 0));
        assert!(
            c.by_local.get(&targets[2]).is_none_or(|s| s.total() == 0),
            "{c:?}"
        );
        assert!(c.by_remote.get(&targets[2]).is_none_or(|s| s.total() == 0));
        assert_eq!(c.by_local[&targets[0]].established, per);
        assert_eq!(c.by_remote[&targets[1]].established, per);
    });
}

#[test]
fn counts_the_ipv4_clients_of_a_dual_stack_listener() {
    let ns = TestNetns::new("dual");
    let port = 7200;
    let to = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
    ns.run(|| {
        // `[::]:7200` takes IPv4 clients as AF_INET6 sockets with v4-mapped addresses.
        let l = TcpListener::bind((std::net::Ipv6Addr::UNSPECIFIED, port)).expect("bind [::]");
        let acceptor = accept_n(&l, 50);
        let _clients: Vec<TcpStream> = (0..50)
            .map(|_| TcpStream::connect(to).expect("connect"))
            .collect();
        let _accepted = acceptor.join().expect("acceptor");
        // A real IPv6 connection is not counted.
        let six = TcpStream::connect((std::net::Ipv6Addr::LOCALHOST, port)).expect("connect ::1");
        let c = wait_for(|c| c.by_local.get(&to).is_some_and(|s| s.established == 50));
        assert_eq!(
            c.listening,
            vec![SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)]
        );
        assert_eq!(c.by_local[&to].established, 50, "{c:?}");
        assert_eq!(c.by_remote[&to].established, 50);
        let v4 = count_tcp_with(Filter {
            v4_mapped: false,
            ..Filter::ALL
        })
        .expect("count");
        assert!(v4.listening.is_empty(), "{v4:?}");
        assert!(!v4.by_local.contains_key(&to));
        assert_eq!(v4.by_remote[&to].established, 50);
        drop(six);
    });
}

/// A helper process inside the namespace holding `n` connection pairs to its own listener
/// (both ends: 2n descriptors, under the 20,000 open-files hard limit); it prints `ready` and
/// holds them until its stdin closes or it is killed.
const HOLDER: &str = r#"
import resource, socket, struct, sys
n, port = int(sys.argv[1]), int(sys.argv[2])
_, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("127.0.0.1", port))
l.listen(4096)
keep = []
for _ in range(n):
    c = socket.socket()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.connect(("127.0.0.1", port))
    a, _ = l.accept()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    keep.append((c, a))
print("ready", flush=True)
sys.stdin.read()
"#;

/// The helpers, killed (by pid) and reaped on drop.
struct Holders(Vec<Child>);

impl Drop for Holders {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `cargo test --release --test sockets -- --ignored --nocapture bench_100k_pairs`
#[test]
#[ignore = "benchmark: 200,000 sockets, about 1 GB of kernel memory"]
fn bench_100k_pairs() {
    const PAIRS: usize = 100_000;
    const PER_HELPER: usize = 9_000;
    let ns = TestNetns::new("bench");
    let mut holders = Holders(Vec::new());
    let mut left = PAIRS;
    let started = Instant::now();
    for i in 0.. {
        if left == 0 {
            break;
        }
        let n = left.min(PER_HELPER);
        left -= n;
        let port = (20_000 + i).to_string();
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.name, "python3", "-c", HOLDER])
            .args([n.to_string(), port])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start a holder");
        holders.0.push(child);
    }
    for h in &mut holders.0 {
        let mut line = String::new();
        BufReader::new(h.stdout.as_mut().expect("stdout"))
            .read_line(&mut line)
            .expect("read ready");
        assert_eq!(line.trim(), "ready", "a holder failed");
    }
    eprintln!(
        "{PAIRS} pairs in {} helpers, opened in {:.1} s",
        holders.0.len(),
        started.elapsed().as_secs_f64()
    );
    ns.run(|| {
        let time = |filter: Filter| {
            let mut ms = Vec::new();
            let mut last = None;
            for _ in 0..7 {
                let t = Instant::now();
                let c = count_tcp_with(filter).expect("count");
                ms.push(t.elapsed().as_secs_f64() * 1e3);
                last = Some(c);
            }
            ms.sort_by(f64::total_cmp);
            (ms[0], ms[ms.len() / 2], last.expect("counted"))
        };
        let (min, median, c) = time(Filter::ALL);
        let established: u64 = c.by_local.values().map(|s| s.established).sum();
        let remote: u64 = c.by_remote.values().map(|s| s.established).sum();
        assert_eq!(established, 2 * PAIRS as u64);
        assert_eq!(remote, 2 * PAIRS as u64);
        assert_eq!(c.listening.len(), holders.0.len());
        eprintln!(
            "count_tcp (ALL): min {min:.1} ms, median {median:.1} ms; {} sockets, {} datagrams, {} bytes ({:.1} bytes/socket)",
            c.dump.sockets,
            c.dump.datagrams,
            c.dump.bytes,
            c.dump.bytes as f64 / c.dump.sockets as f64
        );
        let v4 = Filter {
            v4_mapped: false,
            ..Filter::ALL
        };
        let (min, median, _) = time(v4);
        eprintln!("count_tcp (ALL, IPv4 only): min {min:.1} ms, median {median:.1} ms");
        let (min, median, _) = time(Filter {
            by_remote: false,
            by_local: false,
            ..v4
        });
        eprintln!("count_tcp (IPv4, no maps: the dump and decoding alone): min {min:.1} ms, median {median:.1} ms");
        let (min, median, _) = time(Filter::CLIENT);
        eprintln!("count_tcp (CLIENT): min {min:.1} ms, median {median:.1} ms");
        let (min, median, _) = time(Filter::SERVER);
        eprintln!("count_tcp (SERVER): min {min:.1} ms, median {median:.1} ms");
        let (min, median, c) = time(Filter {
            states: States::LISTEN,
            ..Filter::SERVER
        });
        assert_eq!(c.dump.sockets, holders.0.len() as u64);
        eprintln!("count_tcp (LISTEN only): min {min:.2} ms, median {median:.2} ms");
        let (min, median, c) = time(Filter {
            states: States::SYN_SENT,
            ..Filter::CLIENT
        });
        assert_eq!(c.dump.sockets, 0);
        eprintln!("count_tcp (SYN_SENT only, none there): min {min:.1} ms, median {median:.1} ms");
    });
    let t = Instant::now();
    let n = ss_established(&ns.name);
    eprintln!(
        "for comparison, ss -Htn state established: {n} lines in {:.0} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    drop(holders);
}
