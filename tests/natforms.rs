//! Every `[hosts.H.docker] nat` form against the real kernel (root): one lab with a Docker host
//! per form and one server host, real connections from inside the containers to the test's own
//! listeners in the server's namespace. Per form: the source address and port the server's
//! accepted sockets see, and what `lab nat NAME HOST --json` reads from that host's conntrack
//! table (per path `capacity`, `ports_used`, `exhausted`; per container the observed address
//! beside the predicted one, `mismatch`).
//!
//! | host    | `nat =`                                              | containers -> server              |
//! |---------|------------------------------------------------------|-----------------------------------|
//! | hnone   | `"none"` (docker subnet 172.20.0.0/16)               | n1, n2 -> .5:9001                 |
//! | hmasq   | `"masquerade"`, addresses .30 (primary), .31         | ma, mb -> .5:9002                 |
//! | hsnat   | `{ snat = [".41"] }`, addresses .40 (primary), .41   | sa, sb -> .5:9003                 |
//! | hpool   | `{ snat = [".50", ".51", ".52"] }`                   | pa, pc -> .5:9004; pb, pd -> .15:9004 |
//! | hpers   | `{ snat = [".60", ".61"], persistent = true }`       | q1, q2 -> .5:9005 and .8:9005     |
//! | hctl    | `{ snat = [".62", ".63"] }` (hpers without the flag) | r1, r2 -> .5:9006 and .8:9006     |
//! | hreuse  | `{ snat = [".64", ".65"] }`, w1 has 10 local ports  | w1 -> .5:9009, then .8:9009       |
//! | hmports | `{ masquerade = true, ports = "40000-40099" }`       | x1, x2 -> .5:9007, 75 each        |
//! | hsports | `{ snat = [".81"], ports = "41000-41099" }`          | y1, y2 -> .5:9008, 60 each        |
//!
//! Containers that share a path without a port range each have an `ip_local_port_range` of
//! their own, so a kept port can never be a port that another container's connection took first
//! (which the NAT would have to remap), and the port the server sees names the container. q and
//! r bind their ports (see `connect_bound`).
//!
//! Two bugs these tests found, now fixed: `lab up` gave no host a route to a `nat = "none"`
//! subnet, so no connection from such a container reached another host
//! (`nat_none_reaches_another_host_as_lab_check_predicts`); and `lab nat` called the kernel's
//! documented reuse of a translation, which the prediction flags as "mostly", a bug to report
//! (`a_reused_translation_is_not_reported_as_a_bug`).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::time::{Duration, Instant};

use common::*;
use lab::nat::predict::pool_address;
use serde_json::Value;

/// The server host's addresses: S1 for every form, S2 for half of the pool, S3 as the second
/// server of `persistent` and its control.
const S1: Ipv4Addr = Ipv4Addr::new(192, 168, 49, 5);
const S2: Ipv4Addr = Ipv4Addr::new(192, 168, 49, 15);
const S3: Ipv4Addr = Ipv4Addr::new(192, 168, 49, 8);

/// Masquerade's default (and any rule without `ports`): 65535 - 1024 + 1.
const DEFAULT_CAPACITY: u64 = 64_512;

const LAB_TEXT: &str = r#"
name = "natforms"

[lans.lan]
subnet = "192.168.49.0/24"

[hosts.srv]
lan = "lan"
addresses = ["192.168.49.5", "192.168.49.15", "192.168.49.8"]

[hosts.hnone]
lan = "lan"
addresses = ["192.168.49.20"]
[hosts.hnone.docker]
subnet = "172.20.0.0/16"
nat = "none"

[hosts.hmasq]
lan = "lan"
addresses = ["192.168.49.30", "192.168.49.31"]
[hosts.hmasq.docker]
nat = "masquerade"

[hosts.hsnat]
lan = "lan"
addresses = ["192.168.49.40", "192.168.49.41"]
[hosts.hsnat.docker]
nat = { snat = ["192.168.49.41"] }

[hosts.hpool]
lan = "lan"
addresses = ["192.168.49.50", "192.168.49.51", "192.168.49.52"]
[hosts.hpool.docker]
nat = { snat = ["192.168.49.50", "192.168.49.51", "192.168.49.52"] }

[hosts.hpers]
lan = "lan"
addresses = ["192.168.49.60", "192.168.49.61"]
[hosts.hpers.docker]
nat = { snat = ["192.168.49.60", "192.168.49.61"], persistent = true }

[hosts.hctl]
lan = "lan"
addresses = ["192.168.49.62", "192.168.49.63"]
[hosts.hctl.docker]
nat = { snat = ["192.168.49.62", "192.168.49.63"] }

[hosts.hreuse]
lan = "lan"
addresses = ["192.168.49.64", "192.168.49.65"]
[hosts.hreuse.docker]
nat = { snat = ["192.168.49.64", "192.168.49.65"] }

[hosts.hmports]
lan = "lan"
addresses = ["192.168.49.70"]
[hosts.hmports.docker]
nat = { masquerade = true, ports = "40000-40099" }

[hosts.hsports]
lan = "lan"
addresses = ["192.168.49.80", "192.168.49.81"]
[hosts.hsports.docker]
nat = { snat = ["192.168.49.81"], ports = "41000-41099" }

[containers.n]
host = "hnone"
replicas = 2
sysctls = { "net.ipv4.tcp_syn_retries" = "1" }

[containers.ma]
host = "hmasq"
address = "172.17.0.2"
sysctls = { "net.ipv4.tcp_syn_retries" = "1", "net.ipv4.ip_local_port_range" = "20000 20999" }
[containers.mb]
host = "hmasq"
address = "172.17.0.3"
sysctls = { "net.ipv4.tcp_syn_retries" = "1", "net.ipv4.ip_local_port_range" = "21000 21999" }

[containers.sa]
host = "hsnat"
address = "172.17.0.2"
sysctls = { "net.ipv4.tcp_syn_retries" = "1", "net.ipv4.ip_local_port_range" = "22000 22999" }
[containers.sb]
host = "hsnat"
address = "172.17.0.3"
sysctls = { "net.ipv4.tcp_syn_retries" = "1", "net.ipv4.ip_local_port_range" = "23000 23999" }

[containers.pa]
host = "hpool"
address = "172.17.0.2"
sysctls = { "net.ipv4.tcp_syn_retries" = "1", "net.ipv4.ip_local_port_range" = "24000 24999" }
[containers.pb]
host = "hpool"
address = "172.17.0.3"
sysctls = { "net.ipv4.tcp_syn_retries" = "1", "net.ipv4.ip_local_port_range" = "25000 25999" }
[containers.pc]
host = "hpool"
address = "172.17.0.4"
sysctls = { "net.ipv4.tcp_syn_retries" = "1", "net.ipv4.ip_local_port_range" = "26000 26999" }
[containers.pd]
host = "hpool"
address = "172.17.0.5"
sysctls = { "net.ipv4.tcp_syn_retries" = "1", "net.ipv4.ip_local_port_range" = "27000 27999" }

# q and r connect from ports the test binds (see `connect_bound`).
[containers.q1]
host = "hpers"
address = "172.17.0.2"
sysctls = { "net.ipv4.tcp_syn_retries" = "1" }
[containers.q2]
host = "hpers"
address = "172.17.0.3"
sysctls = { "net.ipv4.tcp_syn_retries" = "1" }

[containers.r1]
host = "hctl"
address = "172.17.0.2"
sysctls = { "net.ipv4.tcp_syn_retries" = "1" }
[containers.r2]
host = "hctl"
address = "172.17.0.3"
sysctls = { "net.ipv4.tcp_syn_retries" = "1" }

# Ten local ports for two servers: every connection to the second reuses a port of the first.
[containers.w1]
host = "hreuse"
address = "172.17.0.2"
sysctls = { "net.ipv4.tcp_syn_retries" = "1", "net.ipv4.ip_local_port_range" = "28000 28009" }

# Own ports outside the NAT range, so every port in the range the server sees was translated.
[containers.x]
host = "hmports"
replicas = 2
sysctls = { "net.ipv4.tcp_syn_retries" = "1", "net.ipv4.ip_local_port_range" = "50000 59999" }

[containers.y]
host = "hsports"
replicas = 2
sysctls = { "net.ipv4.tcp_syn_retries" = "1", "net.ipv4.ip_local_port_range" = "50000 59999" }

# Servers and clients are not started by `lab up`: they are here so that `lab check` and
# `lab nat` predict the connections the tests open themselves.
[servers.s9009]
host = "srv"
port = 9009
[servers.s9001]
host = "srv"
port = 9001
[servers.s9002]
host = "srv"
port = 9002
[servers.s9003]
host = "srv"
port = 9003
[servers.s9004]
host = "srv"
port = 9004
[servers.s9005]
host = "srv"
port = 9005
[servers.s9006]
host = "srv"
port = 9006
[servers.s9007]
host = "srv"
port = 9007
[servers.s9008]
host = "srv"
port = 9008

[clients.none]
containers = ["n"]
connect = ["192.168.49.5:9001"]
connections = 10

[clients.masq]
containers = ["ma", "mb"]
connect = ["192.168.49.5:9002"]
connections = 20

[clients.snat]
containers = ["sa", "sb"]
connect = ["192.168.49.5:9003"]
connections = 20

[clients.pool]
containers = ["pa", "pb", "pc", "pd"]
connect = ["192.168.49.5:9004", "192.168.49.15:9004"]
connections = 10

[clients.pers1]
containers = ["q1", "q2"]
connect = ["192.168.49.5:9005"]
connections = 10
[clients.pers2]
containers = ["q1", "q2"]
connect = ["192.168.49.8:9005"]
connections = 10

[clients.ctl1]
containers = ["r1", "r2"]
connect = ["192.168.49.5:9006"]
connections = 10
[clients.ctl2]
containers = ["r1", "r2"]
connect = ["192.168.49.8:9006"]
connections = 10

[clients.reuse1]
containers = ["w1"]
connect = ["192.168.49.5:9009"]
connections = 10
[clients.reuse2]
containers = ["w1"]
connect = ["192.168.49.8:9009"]
connections = 10

[clients.mports]
containers = ["x"]
connect = ["192.168.49.5:9007"]
connections = 75

[clients.sports]
containers = ["y"]
connect = ["192.168.49.5:9008"]
connections = 60
"#;

/// The lab, up under a name of the test's own; taken down when dropped (also on a panic).
fn up(tag: &str) -> LabGuard {
    let file = temp_lab(tag, LAB_TEXT);
    LabGuard::up(&file, &unique_name(tag))
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().expect("IPv4 address")
}

fn v4(a: SocketAddr) -> SocketAddrV4 {
    match a {
        SocketAddr::V4(a) => a,
        SocketAddr::V6(a) => panic!("IPv6 address {a}"),
    }
}

fn sock(addr: Ipv4Addr, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(addr, port)
}

/// A listener on `addr:port` in the server's namespace.
fn serve(lab: &LabGuard, addr: Ipv4Addr, port: u16) -> Acceptor {
    Acceptor::start(&lab.ns("srv"), &sock(addr, port).to_string())
}

/// The peers the server accepted, as IPv4 socket addresses, sorted.
fn peers(acceptor: Acceptor) -> Vec<SocketAddrV4> {
    let mut p: Vec<SocketAddrV4> = acceptor.finish().into_iter().map(v4).collect();
    p.sort();
    p
}

/// `n` connections from container `c` to `to` at once; asserts they all establish, and returns
/// them (the caller holds them: an open connection keeps its conntrack entry ESTABLISHED).
fn open(lab: &LabGuard, c: &str, to: SocketAddrV4, n: usize) -> Vec<TcpStream> {
    let (ok, failed) = connect_many(&lab.ns(c), &to.to_string(), n, Duration::from_secs(3));
    assert!(
        failed.is_empty(),
        "{c} -> {to}: {} of {n} connections failed: {:?}",
        failed.len(),
        failed.iter().map(ToString::to_string).collect::<Vec<_>>()
    );
    ok
}

fn local_addrs(streams: &[TcpStream]) -> Vec<SocketAddrV4> {
    let mut a: Vec<SocketAddrV4> = streams
        .iter()
        .map(|s| v4(s.local_addr().expect("local address")))
        .collect();
    a.sort();
    a
}

/// `lab nat NAME HOST --json`: the one view of that host.
fn nat_view(lab: &LabGuard, host: &str) -> Value {
    let out = lab_command()
        .args(["nat", &lab.name, host, "--json"])
        .output()
        .expect("run lab nat");
    assert!(out.status.success(), "lab nat {host}:\n{}", text(&out));
    let views: Value = json_of(schema::Kind::Nat, &out);
    let [view] = views.as_array().expect("an array of views").as_slice() else {
        panic!("lab nat {host}: expected one view: {views:#}")
    };
    assert_eq!(view["host"], host, "{view:#}");
    eprintln!(
        "natforms: lab nat {host}: nat {}; paths (translated, dst, ports_used, capacity, \
         exhausted, predicted) {:?}; containers (observed, predicted, mismatch) {:?}; \
         insert_failed {}",
        view["nat"],
        paths(view),
        choices(view)
            .iter()
            .map(|(c, d, o, p, m)| format!("{c}->{d} {o:?} {p:?} {m}"))
            .collect::<Vec<_>>(),
        view["stats"]["insert_failed"]
    );
    view.clone()
}

/// `(translated, dst, ports_used, capacity, exhausted, predicted)` of every path, sorted.
type PathRow = (Ipv4Addr, SocketAddrV4, u64, u64, bool, Option<u64>);

fn paths(view: &Value) -> Vec<PathRow> {
    let mut rows: Vec<PathRow> = view["paths"]
        .as_array()
        .unwrap_or_else(|| panic!("no paths: {view:#}"))
        .iter()
        .map(|p| {
            (
                ip(p["translated"].as_str().expect("translated")),
                p["dst"].as_str().expect("dst").parse().expect("dst"),
                p["ports_used"].as_u64().expect("ports_used"),
                p["capacity"].as_u64().expect("capacity"),
                p["exhausted"].as_bool().expect("exhausted"),
                p["predicted"].as_u64(),
            )
        })
        .collect();
    rows.sort();
    rows
}

/// `(container, dst, observed [(address, connections)], predicted, mismatch)`, sorted.
type ChoiceRow = (
    String,
    SocketAddrV4,
    Vec<(Ipv4Addr, u64)>,
    Option<Ipv4Addr>,
    bool,
);

fn choices(view: &Value) -> Vec<ChoiceRow> {
    let mut rows: Vec<ChoiceRow> = view["containers"]
        .as_array()
        .unwrap_or_else(|| panic!("no containers: {view:#}"))
        .iter()
        .map(|c| {
            let observed = c["observed"]
                .as_array()
                .expect("observed")
                .iter()
                .map(|o| {
                    (
                        ip(o[0].as_str().expect("address")),
                        o[1].as_u64().expect("count"),
                    )
                })
                .collect();
            (
                c["container"].as_str().expect("container").to_owned(),
                c["dst"].as_str().expect("dst").parse().expect("dst"),
                observed,
                c["predicted"].as_str().map(ip),
                c["mismatch"].as_bool().expect("mismatch"),
            )
        })
        .collect();
    rows.sort();
    rows
}

/// One line for `--nocapture`: who the server saw, and on which ports.
fn report(form: &str, seen: &[SocketAddrV4]) {
    let mut by_addr: BTreeMap<Ipv4Addr, (usize, u16, u16)> = BTreeMap::new();
    for p in seen {
        let e = by_addr.entry(*p.ip()).or_insert((0, u16::MAX, 0));
        e.0 += 1;
        e.1 = e.1.min(p.port());
        e.2 = e.2.max(p.port());
    }
    let parts: Vec<String> = by_addr
        .iter()
        .map(|(a, (n, lo, hi))| format!("{n} from {a} (ports {lo}-{hi})"))
        .collect();
    eprintln!("natforms: {form}: the server saw {}", parts.join(", "));
}

fn insert_failed(view: &Value) -> u64 {
    view["stats"]["insert_failed"]
        .as_u64()
        .unwrap_or_else(|| panic!("no stats.insert_failed: {view:#}"))
}

/// A path without a port range, as `lab nat` should show it: `used` ports of 64,512, the
/// prediction equal to what was opened.
fn open_path(translated: Ipv4Addr, dst: SocketAddrV4, used: u64) -> PathRow {
    (translated, dst, used, DEFAULT_CAPACITY, false, Some(used))
}

/// A container whose `n` connections to `dst` all left as `addr`, as predicted.
fn chose(c: &str, dst: SocketAddrV4, addr: Ipv4Addr, n: u64) -> ChoiceRow {
    (c.to_owned(), dst, vec![(addr, n)], Some(addr), false)
}

/// Connects from inside `ns` from the given local port (bind before connect), within `timeout`.
/// `connect_many` lets the kernel pick ports, and it may give a container the same local port
/// towards two servers; the NAT then reuses the first translation for the second connection
/// (nf_nat_core.c `find_appropriate_src`), whatever the hash says. Distinct bound ports keep the
/// hash the only thing that picks the pool address.
fn connect_bound(
    ns: &str,
    port: u16,
    to: SocketAddrV4,
    timeout: Duration,
) -> io::Result<TcpStream> {
    in_netns(ns, move || bound(port, to, timeout))
}

fn sockaddr(a: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(a.ip().octets()),
        },
        sin_zero: [0; 8],
    }
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn bound(port: u16, to: SocketAddrV4, timeout: Duration) -> io::Result<TcpStream> {
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket calls on a descriptor this function owns; the addresses are valid
    // sockaddr_in values that live across each call.
    unsafe {
        let raw = libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        );
        check(raw)?;
        let fd = OwnedFd::from_raw_fd(raw);
        let local = sockaddr(sock(Ipv4Addr::UNSPECIFIED, port));
        check(libc::bind(fd.as_raw_fd(), (&raw const local).cast(), len))?;
        let remote = sockaddr(to);
        if libc::connect(fd.as_raw_fd(), (&raw const remote).cast(), len) < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINPROGRESS) {
                return Err(e);
            }
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out"));
            }
            let mut p = libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLOUT,
                revents: 0,
            };
            let ms = libc::c_int::try_from(left.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
            match libc::poll(&raw mut p, 1, ms) {
                n if n > 0 => break,
                0 => continue,
                _ => {
                    let e = io::Error::last_os_error();
                    if e.kind() != io::ErrorKind::Interrupted {
                        return Err(e);
                    }
                }
            }
        }
        let mut err: libc::c_int = 0;
        let mut err_len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        check(libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&raw mut err).cast(),
            &raw mut err_len,
        ))?;
        if err != 0 {
            return Err(io::Error::from_raw_os_error(err));
        }
        let s = TcpStream::from(fd);
        s.set_nonblocking(false)?;
        Ok(s)
    }
}

/// `nat = "none"`, masquerade, single-address SNAT and an SNAT pool: who the server sees, with
/// which ports, and what `lab nat` reads back.
#[test]
fn each_nat_form_reaches_the_server_as_written() {
    if !root_or_skip("each_nat_form_reaches_the_server_as_written") {
        return;
    }
    let name;
    {
        let lab = up("nfa");
        name = lab.name.clone();

        // `nat = "none"` writes no POSTROUTING rule: the containers' packets leave hnone with
        // 172.20.0.x, and the server answers them through the route `lab up` gives every other
        // host of the LAN (what a Docker user adds on the upstream router).
        let routes = sh(&format!("ip -n {} -4 route show", lab.ns("srv")));
        assert!(
            routes.contains("172.20.0.0/16 via 192.168.49.20 dev eth0"),
            "the server host routes hnone's docker subnet to it:\n{routes}"
        );

        let none_srv = serve(&lab, S1, 9001);
        let masq_srv = serve(&lab, S1, 9002);
        let snat_srv = serve(&lab, S1, 9003);
        let pool_srv = [serve(&lab, S1, 9004), serve(&lab, S2, 9004)];

        // --- none: the server sees each container's own address and port ---
        let none_dst = sock(S1, 9001);
        let n1 = open(&lab, "n1", none_dst, 10);
        let n2 = open(&lab, "n2", none_dst, 10);
        let mut none_clients = local_addrs(&n1);
        none_clients.extend(local_addrs(&n2));
        none_clients.sort();
        assert_eq!(
            none_clients
                .iter()
                .map(|a| *a.ip())
                .collect::<BTreeSet<_>>(),
            BTreeSet::from([ip("172.20.0.2"), ip("172.20.0.3")])
        );

        // --- masquerade: the host's primary address (.30, never .31), the containers' ports ---
        let masq_dst = sock(S1, 9002);
        let ma = open(&lab, "ma", masq_dst, 20);
        let mb = open(&lab, "mb", masq_dst, 20);

        // --- single-address SNAT: the rule's address (.41, not the primary .40), ports kept ---
        let snat_dst = sock(S1, 9003);
        let sa = open(&lab, "sa", snat_dst, 20);
        let sb = open(&lab, "sb", snat_dst, 20);

        // --- SNAT pool: the address the kernel's hash picks per (container, server) ---
        let pool = (ip("192.168.49.50"), ip("192.168.49.52"));
        let pool_clients = [
            ("pa", ip("172.17.0.2"), 24_000u16, sock(S1, 9004)),
            ("pb", ip("172.17.0.3"), 25_000, sock(S2, 9004)),
            ("pc", ip("172.17.0.4"), 26_000, sock(S1, 9004)),
            ("pd", ip("172.17.0.5"), 27_000, sock(S2, 9004)),
        ];
        let pool_choice: Vec<Ipv4Addr> = pool_clients
            .iter()
            .map(|(_, src, _, dst)| pool_address(pool.0, pool.1, *src, *dst.ip(), false))
            .collect();
        // The addresses were picked so that the hash uses the whole pool: a rule that always
        // took the first address (or the primary one) cannot pass.
        assert_eq!(
            pool_choice,
            [
                ip("192.168.49.50"),
                ip("192.168.49.51"),
                ip("192.168.49.51"),
                ip("192.168.49.52")
            ],
            "the lab's pool addresses no longer spread as this test needs"
        );
        let pool_streams: Vec<Vec<TcpStream>> = pool_clients
            .iter()
            .map(|(c, _, _, dst)| open(&lab, c, *dst, 10))
            .collect();

        // --- what `lab nat` reads from each host's conntrack table ---
        let v = nat_view(&lab, "hnone");
        assert_eq!(v["nat"], "none", "{v:#}");
        assert_eq!(
            paths(&v),
            [],
            "nothing is translated, so no NAT path: {v:#}"
        );
        assert_eq!(
            choices(&v),
            [
                chose("n1", none_dst, ip("172.20.0.2"), 10),
                chose("n2", none_dst, ip("172.20.0.3"), 10),
            ],
            "{v:#}"
        );
        assert_eq!(insert_failed(&v), 0, "{v:#}");

        let v = nat_view(&lab, "hmasq");
        assert_eq!(v["nat"], "masquerade to 192.168.49.30", "{v:#}");
        assert_eq!(
            paths(&v),
            [open_path(ip("192.168.49.30"), masq_dst, 40)],
            "{v:#}"
        );
        assert_eq!(
            choices(&v),
            [
                chose("ma", masq_dst, ip("192.168.49.30"), 20),
                chose("mb", masq_dst, ip("192.168.49.30"), 20),
            ],
            "{v:#}"
        );
        assert_eq!(insert_failed(&v), 0, "{v:#}");

        let v = nat_view(&lab, "hsnat");
        assert_eq!(v["nat"], "snat to 192.168.49.41", "{v:#}");
        assert_eq!(
            paths(&v),
            [open_path(ip("192.168.49.41"), snat_dst, 40)],
            "{v:#}"
        );
        assert_eq!(
            choices(&v),
            [
                chose("sa", snat_dst, ip("192.168.49.41"), 20),
                chose("sb", snat_dst, ip("192.168.49.41"), 20),
            ],
            "{v:#}"
        );
        assert_eq!(insert_failed(&v), 0, "{v:#}");

        let v = nat_view(&lab, "hpool");
        assert_eq!(v["nat"], "snat to 192.168.49.50-192.168.49.52", "{v:#}");
        let mut expected_paths: Vec<PathRow> = pool_clients
            .iter()
            .zip(&pool_choice)
            .map(|((_, _, _, dst), addr)| open_path(*addr, *dst, 10))
            .collect();
        expected_paths.sort();
        assert_eq!(paths(&v), expected_paths, "{v:#}");
        let expected_choices: Vec<ChoiceRow> = pool_clients
            .iter()
            .zip(&pool_choice)
            .map(|((c, _, _, dst), addr)| chose(c, *dst, *addr, 10))
            .collect();
        assert_eq!(choices(&v), expected_choices, "{v:#}");
        assert_eq!(insert_failed(&v), 0, "{v:#}");

        // --- what the server's accepted sockets saw ---
        // none: exactly the containers' own sockets, untranslated.
        let seen = peers(none_srv);
        report("none", &seen);
        assert_eq!(seen, none_clients, "nat = none translates nothing");

        // masquerade and SNAT: one address; every port is the container's own (kept, because no
        // other connection on the path holds it), in that container's ip_local_port_range.
        for (form, srv, addr, clients) in [
            (
                "masquerade",
                masq_srv,
                ip("192.168.49.30"),
                [(&ma, 20_000u16), (&mb, 21_000)],
            ),
            (
                "snat",
                snat_srv,
                ip("192.168.49.41"),
                [(&sa, 22_000), (&sb, 23_000)],
            ),
        ] {
            let seen = peers(srv);
            let mut expected = Vec::new();
            for (streams, lo) in clients {
                for a in local_addrs(streams) {
                    assert!((lo..lo + 1000).contains(&a.port()), "{form}: {a}");
                    expected.push(sock(addr, a.port()));
                }
            }
            expected.sort();
            report(form, &seen);
            assert_eq!(
                seen, expected,
                "{form}: the server sees {addr} with the containers' ports"
            );
        }

        // pool: each container's connections leave with its hash choice, ports kept; the port
        // (in the container's own range) tells which container the server is looking at.
        let [pool_s1, pool_s2] = pool_srv;
        for (dst, srv) in [(sock(S1, 9004), pool_s1), (sock(S2, 9004), pool_s2)] {
            let seen = peers(srv);
            let mut expected = Vec::new();
            for (((c, _, lo, to), addr), streams) in
                pool_clients.iter().zip(&pool_choice).zip(&pool_streams)
            {
                if *to != dst {
                    continue;
                }
                for a in local_addrs(streams) {
                    assert!((*lo..*lo + 1000).contains(&a.port()), "{c}: {a}");
                    expected.push(sock(*addr, a.port()));
                }
            }
            expected.sort();
            report(&format!("pool -> {dst}"), &seen);
            assert_eq!(seen, expected, "pool: what {dst} sees");
        }
        drop((n1, n2, ma, mb, sa, sb, pool_streams));
    }
    assert_gone(&name);
}

/// `persistent` makes the pool address depend on the container alone: q1 and q2 keep one address
/// towards two servers. hctl has the same pool shape, the same container addresses and the same
/// servers without the flag, and its containers change address with the server: that is what
/// the flag changes, and why this test fails if the flag is not written.
#[test]
fn persistent_keeps_one_pool_address_for_every_server() {
    if !root_or_skip("persistent_keeps_one_pool_address_for_every_server") {
        return;
    }
    let containers = [("1", ip("172.17.0.2")), ("2", ip("172.17.0.3"))];
    let pers = (ip("192.168.49.60"), ip("192.168.49.61"));
    let ctl = (ip("192.168.49.62"), ip("192.168.49.63"));
    // The precondition, from the prediction code: without `persistent` each container's hash
    // choice differs between S1 and S3, so keeping one address cannot happen by chance.
    for (_, src) in containers {
        for pool in [pers, ctl] {
            assert_ne!(
                pool_address(pool.0, pool.1, src, S1, false),
                pool_address(pool.0, pool.1, src, S3, false),
                "pick servers whose non-persistent choice for {src} differs"
            );
        }
    }
    let name;
    {
        let lab = up("nfp");
        name = lab.name.clone();
        let servers = [S1, S3];
        let listeners: Vec<(SocketAddrV4, Acceptor)> = [9005u16, 9006]
            .into_iter()
            .flat_map(|port| servers.map(|s| sock(s, port)))
            .map(|dst| (dst, serve(&lab, *dst.ip(), dst.port())))
            .collect();

        // Ten connections per (container, server), from ports the test binds: 30000 + 1000 x
        // container + 100 x server, so no two connections of a container share a local port.
        let mut held = Vec::new();
        let mut expected: BTreeMap<SocketAddrV4, Vec<SocketAddrV4>> = BTreeMap::new();
        let mut choice_rows: BTreeMap<&str, Vec<ChoiceRow>> = BTreeMap::new();
        let mut path_rows: BTreeMap<&str, BTreeMap<(Ipv4Addr, SocketAddrV4), u64>> =
            BTreeMap::new();
        for (host, prefix, port, pool, persistent) in [
            ("hpers", "q", 9005u16, pers, true),
            ("hctl", "r", 9006, ctl, false),
        ] {
            for (ci, (suffix, src)) in containers.iter().enumerate() {
                let c = format!("{prefix}{suffix}");
                let mut used = BTreeSet::new();
                for (si, server) in servers.iter().enumerate() {
                    let dst = sock(*server, port);
                    let addr = pool_address(pool.0, pool.1, *src, *server, persistent);
                    used.insert(addr);
                    for k in 0..10u16 {
                        let local = 30_000 + 1000 * ci as u16 + 100 * si as u16 + k;
                        let s = connect_bound(&lab.ns(&c), local, dst, Duration::from_secs(3))
                            .unwrap_or_else(|e| panic!("{c} :{local} -> {dst}: {e}"));
                        assert_eq!(v4(s.local_addr().unwrap()).port(), local);
                        held.push(s);
                        expected.entry(dst).or_default().push(sock(addr, local));
                    }
                    choice_rows
                        .entry(host)
                        .or_default()
                        .push(chose(&c, dst, addr, 10));
                    *path_rows
                        .entry(host)
                        .or_default()
                        .entry((addr, dst))
                        .or_default() += 10;
                }
                if persistent {
                    assert_eq!(used.len(), 1, "{c}: one address for both servers");
                } else {
                    assert_eq!(
                        used.len(),
                        2,
                        "{c}: the control changes address with the server"
                    );
                }
            }
        }

        for (host, nat) in [
            ("hpers", "snat to 192.168.49.60-192.168.49.61 persistent"),
            ("hctl", "snat to 192.168.49.62-192.168.49.63"),
        ] {
            let v = nat_view(&lab, host);
            assert_eq!(v["nat"], nat, "{v:#}");
            let mut want = choice_rows[host].clone();
            want.sort();
            assert_eq!(choices(&v), want, "{host}: {v:#}");
            let want: Vec<PathRow> = path_rows[host]
                .iter()
                .map(|(&(addr, dst), &n)| open_path(addr, dst, n))
                .collect();
            assert_eq!(paths(&v), want, "{host}: {v:#}");
            assert_eq!(insert_failed(&v), 0, "{v:#}");
        }

        // The server's side: every connection with the predicted address and its bound port.
        for (dst, acceptor) in listeners {
            let mut want = expected.remove(&dst).unwrap_or_default();
            want.sort();
            let seen = peers(acceptor);
            report(&format!("-> {dst}"), &seen);
            assert_eq!(seen, want, "what {dst} sees");
        }
        drop(held);
    }
    assert_gone(&name);
}

/// `ports` on masquerade and on single-address SNAT: a 100-port range holds exactly 100
/// connections on one path, whichever containers open them; every other connect times out,
/// each of its 3 SYNs (tcp_syn_retries = 1) counted once in the host's insert_failed.
#[test]
fn a_port_range_holds_exactly_its_size() {
    if !root_or_skip("a_port_range_holds_exactly_its_size") {
        return;
    }
    let name;
    {
        let lab = up("nff");
        name = lab.name.clone();
        let forms = [
            // (host, containers, per container, translated address, ports, server port)
            (
                "hmports",
                ["x1", "x2"],
                75usize,
                ip("192.168.49.70"),
                40_000u16,
                9007u16,
            ),
            (
                "hsports",
                ["y1", "y2"],
                60,
                ip("192.168.49.81"),
                41_000,
                9008,
            ),
        ];
        let listeners: Vec<Acceptor> = forms.iter().map(|f| serve(&lab, S1, f.5)).collect();

        // All four containers at once, as load clients would: 270 connects in flight.
        let timeout = Duration::from_secs(6);
        let started = Instant::now();
        let bursts: Vec<_> = forms
            .iter()
            .flat_map(|&(_, cs, n, _, _, port)| cs.map(|c| (c, n, port)))
            .map(|(c, n, port)| {
                let ns = lab.ns(c);
                std::thread::spawn(move || {
                    connect_many(&ns, &sock(S1, port).to_string(), n, timeout)
                })
            })
            .collect();
        let results: Vec<(Vec<TcpStream>, Vec<io::Error>)> = bursts
            .into_iter()
            .map(|t| t.join().expect("burst thread"))
            .collect();
        eprintln!(
            "natforms: ports: all bursts done in {:.2} s",
            started.elapsed().as_secs_f64()
        );

        for (i, &(host, cs, n, addr, _, port)) in forms.iter().enumerate() {
            let dst = sock(S1, port);
            let mine = &results[2 * i..2 * i + 2];
            let ok: usize = mine.iter().map(|(ok, _)| ok.len()).sum();
            let failed: Vec<&io::Error> = mine.iter().flat_map(|(_, f)| f).collect();
            let wanted = cs.len() * n;
            assert_eq!(
                (ok, failed.len()),
                (100, wanted - 100),
                "{host}: {wanted} connects to one path of 100 ports"
            );
            for e in &failed {
                assert_eq!(
                    e.kind(),
                    io::ErrorKind::TimedOut,
                    "{host}: a full NAT drops SYNs without an answer: {e}"
                );
            }
            for (ok, _) in mine {
                for a in local_addrs(ok) {
                    assert!((50_000..=59_999).contains(&a.port()), "{host}: {a}");
                }
            }

            let v = nat_view(&lab, host);
            eprintln!(
                "natforms: {host}: established {:?} of {n} each, {} timed out, insert_failed {}, paths {:?}",
                mine.iter().map(|(ok, _)| ok.len()).collect::<Vec<_>>(),
                failed.len(),
                insert_failed(&v),
                paths(&v)
            );
            assert_eq!(
                paths(&v),
                [(addr, dst, 100, 100, true, Some(100))],
                "{host}: the path at exactly its capacity: {v:#}"
            );
            assert_eq!(
                insert_failed(&v),
                3 * failed.len() as u64,
                "{host}: 3 SYNs dropped per failed connect: {v:#}"
            );
            // Which container got how many of the 100 is a race; the address is not.
            let rows = choices(&v);
            assert_eq!(rows.len(), 2, "{host}: {v:#}");
            for ((row, c), (ok, _)) in rows.iter().zip(cs).zip(mine) {
                assert_eq!(row, &chose(c, dst, addr, ok.len() as u64), "{host}: {v:#}");
            }
        }

        // The server's side: 100 connections per path, from the rule's address, one from each
        // port of the range (the containers' own ports, 50000-59999, are all replaced).
        for (acceptor, &(host, _, _, addr, lo, _)) in listeners.into_iter().zip(&forms) {
            let seen = peers(acceptor);
            report(host, &seen);
            assert_eq!(seen.len(), 100, "{host}");
            assert!(seen.iter().all(|p| *p.ip() == addr), "{host}: {seen:?}");
            let ports: BTreeSet<u16> = seen.iter().map(|p| p.port()).collect();
            assert_eq!(
                ports,
                (lo..lo + 100).collect::<BTreeSet<u16>>(),
                "{host}: every port of the range, once"
            );
        }
        drop(results);
    }
    assert_gone(&name);
}

/// `nat = "none"` towards another host of the lab: `lab check` predicts that every connection
/// establishes (an untranslated path per container, bounded only by its local ports), and so it
/// does, because `lab up` routes the container subnet to its host on every other host of the
/// LAN, as a Docker user does on the upstream router. (This test found that without that route
/// the server could not answer a single SYN: 0 of the 10 predicted.)
#[test]
fn nat_none_reaches_another_host_as_lab_check_predicts() {
    if !root_or_skip("nat_none_reaches_another_host_as_lab_check_predicts") {
        return;
    }
    let file = temp_lab("nfn", LAB_TEXT);
    let out = lab(&["check", file.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let check: Value = json_of(schema::Kind::Check, &out);
    let predicted: Vec<(String, u64)> = check["prediction"]
        .as_array()
        .expect("prediction")
        .iter()
        .filter(|h| h["name"] == "hnone")
        .flat_map(|h| h["prediction"]["paths"].as_array().unwrap().clone())
        .map(|p| {
            (
                p["translated"].as_str().unwrap().to_owned(),
                p["established"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        predicted,
        [("172.20.0.2".to_owned(), 10), ("172.20.0.3".to_owned(), 10)],
        "{:#}",
        check["prediction"]
    );

    let name;
    {
        let lab = LabGuard::up(&file, &unique_name("nfn"));
        name = lab.name.clone();
        let server = serve(&lab, S1, 9001);
        let (ok, failed) = connect_many(
            &lab.ns("n1"),
            "192.168.49.5:9001",
            10,
            Duration::from_secs(5),
        );
        let routes = sh(&format!("ip -n {} -4 route show", lab.ns("srv")));
        let seen = peers(server);
        assert_eq!(
            ok.len(),
            10,
            "lab check predicts 10 established from n1 (172.20.0.2, nat = \"none\") to \
             192.168.49.5:9001; {} failed ({:?}) and the server accepted {seen:?}. The server \
             host's routes have nothing for 172.20.0.0/16, so its SYN-ACKs have nowhere to go:\n{routes}",
            failed.len(),
            failed.iter().map(|e| e.kind()).collect::<BTreeSet<_>>(),
        );
        drop(ok);
    }
    assert_gone(&name);
}

/// A container that reaches two servers of a pool from the same local ports: the kernel reuses
/// the translation it made for the first server (nf_nat_core.c `find_appropriate_src`) instead
/// of hashing again, so towards the second server it leaves with the first server's address.
/// The prediction knows this can happen and flags both flows (`address_exact` false, "mostly"
/// in `lab check`); here w1 has 10 local ports, so every connection to the second server reuses
/// one. The kernel side passes; `lab nat` then marks the second flow `mismatch` ("MISMATCH:
/// please report this as a bug"), which this test says it should not, since the prediction did
/// not claim that address.
#[test]
fn a_reused_translation_is_not_reported_as_a_bug() {
    if !root_or_skip("a_reused_translation_is_not_reported_as_a_bug") {
        return;
    }
    let pool = (ip("192.168.49.64"), ip("192.168.49.65"));
    let w1 = ip("172.17.0.2");
    let (first, second) = (
        pool_address(pool.0, pool.1, w1, S1, false),
        pool_address(pool.0, pool.1, w1, S3, false),
    );
    assert_ne!(
        first, second,
        "the two servers must hash to different addresses"
    );

    let file = temp_lab("nfr", LAB_TEXT);
    let out = lab(&["check", file.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let check: Value = json_of(schema::Kind::Check, &out);
    let flows: Vec<(String, String, bool)> = check["prediction"]
        .as_array()
        .expect("prediction")
        .iter()
        .filter(|h| h["name"] == "hreuse")
        .flat_map(|h| h["prediction"]["flows"].as_array().unwrap().clone())
        .map(|f| {
            (
                f["dst"].as_str().unwrap().to_owned(),
                f["translated"].as_str().unwrap().to_owned(),
                f["address_exact"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        flows,
        [
            (sock(S1, 9009).to_string(), first.to_string(), false),
            (sock(S3, 9009).to_string(), second.to_string(), false),
        ],
        "the prediction flags both flows as not exact"
    );

    let name;
    {
        let lab = LabGuard::up(&file, &unique_name("nfr"));
        name = lab.name.clone();
        let (to1, to2) = (sock(S1, 9009), sock(S3, 9009));
        let (srv1, srv2) = (serve(&lab, S1, 9009), serve(&lab, S3, 9009));
        let a = open(&lab, "w1", to1, 10);
        let b = open(&lab, "w1", to2, 10);
        let ports: Vec<SocketAddrV4> = (28_000..=28_009).map(|p| sock(w1, p)).collect();
        assert_eq!(local_addrs(&a), ports, "all ten local ports");
        assert_eq!(local_addrs(&b), ports, "the same ten ports again");

        let v = nat_view(&lab, "hreuse");
        let seen1 = peers(srv1);
        let seen2 = peers(srv2);
        report(&format!("reuse -> {to1}"), &seen1);
        report(&format!("reuse -> {to2}"), &seen2);
        let via_first: Vec<SocketAddrV4> = (28_000..=28_009).map(|p| sock(first, p)).collect();
        assert_eq!(
            seen1, via_first,
            "the first server: the hash choice, ports kept"
        );
        assert_eq!(
            seen2, via_first,
            "the second server: the first translation again, not the hash choice {second}"
        );
        // Sorted like `choices`: to1 (.5) before to2 (.8).
        let want: Vec<ChoiceRow> = vec![
            ("w1".to_owned(), to1, vec![(first, 10)], Some(first), false),
            ("w1".to_owned(), to2, vec![(first, 10)], Some(second), false),
        ];
        assert_eq!(
            choices(&v),
            want,
            "lab nat: w1 -> {to2} left as {first} where the prediction said \"{second}, mostly\"; \
             that is the reuse the prediction warns about, not a bug to report: {v:#}"
        );
        drop((a, b));
    }
    assert_gone(&name);
}
