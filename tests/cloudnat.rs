//! The cloud NAT profiles (`nat = { profile = "..." }`) and `random_fully` against the real
//! kernel (root): small labs run with `lab run --json --hold forever`, looked at from inside
//! their namespaces while they hold (the server's sockets with `ss`, the NAT host's conntrack
//! table and nftables counters), then interrupted for the report.
//!
//! - GCP Cloud NAT: each VM (container) its own block of ports, as the server sees them; a VM
//!   the NAT addresses cannot hold gets no NAT (`nat_allocation_failed`).
//! - AWS NAT gateway: 55,000 ports per address and destination (1024-56023), a translated port
//!   used once per destination; with two addresses, each new connection takes the next one.
//! - `random_fully`: the same capacity, but the container's own port is no longer kept.
//! - Bad profile parameters, refused by `lab check` at their places, all at once.
//!
//! Every container sends 2 SYNs (`tcp_syn_retries = 1`) before its connect times out, so a
//! run that meets a wall settles in about 3 s.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use common::*;
use serde_json::Value;

/// How long a run may take: a few seconds of ramp, the hold's pause, the teardown.
const RUN_LIMIT: Duration = Duration::from_secs(60);

const NAT: &str = "192.168.49.6";

fn ip(s: &str) -> Ipv4Addr {
    s.parse().expect("IPv4 address")
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

fn array(v: &Value) -> &Vec<Value> {
    v.as_array().unwrap_or_else(|| panic!("not an array: {v}"))
}

/// A lab run under a name of the test's own, holding: its ramp has settled and it waits for
/// Ctrl-C. The guard takes the lab down if the test fails before [`Held::finish`].
struct Held {
    run: Running,
    _file: TempLab,
    guard: LabGuard,
}

impl Held {
    fn start(tag: &str, text: &str) -> Self {
        let file = temp_lab(tag, text);
        let name = unique_name(tag);
        let guard = LabGuard { name: name.clone() };
        let run = Running::until_hold(&file, &name, &["--json", "--hold", "forever"]);
        Held {
            run,
            _file: file,
            guard,
        }
    }

    fn ns(&self, node: &str) -> String {
        self.guard.ns(node)
    }

    /// Ctrl-C: the hold ends, the report comes, and nothing of the lab is left.
    fn finish(self) -> Value {
        let name = self.guard.name.clone();
        let done = self.run.interrupt(RUN_LIMIT);
        assert_eq!(done.code, Some(0), "{}", done.text());
        let report = done.report();
        drop(self.guard);
        assert_gone(&name);
        report
    }
}

/// The established TCP connections of a namespace as `ss` lists them: (local, peer).
fn established(ns: &str) -> Vec<(SocketAddrV4, SocketAddrV4)> {
    sh(&format!("ip netns exec {ns} ss -Htn state established"))
        .lines()
        .map(|l| {
            let addrs: Vec<SocketAddrV4> = l
                .split_whitespace()
                .filter_map(|w| w.parse().ok())
                .collect();
            match addrs.as_slice() {
                [local, peer] => (*local, *peer),
                _ => panic!("an ss line without a local and a peer address: {l}"),
            }
        })
        .collect()
}

/// The peers a server's namespace holds on local port `port`.
fn peers_on(conns: &[(SocketAddrV4, SocketAddrV4)], port: u16) -> Vec<SocketAddrV4> {
    conns
        .iter()
        .filter(|(local, _)| local.port() == port)
        .map(|(_, peer)| *peer)
        .collect()
}

/// Failures by cause, without the causes that count 0.
fn failures(v: &Value) -> BTreeMap<String, u64> {
    v.as_object()
        .expect("failures by cause")
        .iter()
        .map(|(k, n)| (k.clone(), u(n)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

fn failed(list: &[(&str, u64)]) -> BTreeMap<String, u64> {
    list.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect()
}

/// Established per container, from the clients' results.
fn per_container(r: &Value) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for c in array(&r["outcome"]["last"]["clients"]) {
        *out.entry(c["container"].as_str().expect("container").to_owned())
            .or_default() += u(&c["established"]);
    }
    out
}

/// The report's one NAT view (of the one Docker host).
fn view(r: &Value) -> &Value {
    let views = array(&r["nat"]);
    assert_eq!(views.len(), 1, "one NAT host: {:#}", r["nat"]);
    &views[0]
}

/// A view's paths: (translated, dst, VM block (address, first, last), ports used, capacity,
/// exhausted, predicted), sorted.
type PathRow = (
    String,
    String,
    Option<(String, u64, u64)>,
    u64,
    u64,
    bool,
    Option<u64>,
);

fn paths(view: &Value) -> Vec<PathRow> {
    let mut rows: Vec<PathRow> = array(&view["paths"])
        .iter()
        .map(|p| {
            let vm = &p["vm_ports"];
            (
                p["translated"].as_str().expect("translated").to_owned(),
                p["dst"].as_str().expect("dst").to_owned(),
                (!vm.is_null()).then(|| {
                    (
                        vm["address"].as_str().expect("address").to_owned(),
                        u(&vm["first"]),
                        u(&vm["last"]),
                    )
                }),
                u(&p["ports_used"]),
                u(&p["capacity"]),
                p["exhausted"].as_bool().expect("exhausted"),
                p["predicted"].as_u64(),
            )
        })
        .collect();
    rows.sort();
    rows
}

/// The prediction's flows of the one client host: container -> the flow.
fn flows(r: &Value) -> BTreeMap<String, Value> {
    let hosts = array(&r["prediction"]);
    assert_eq!(hosts.len(), 1, "one client host: {:#}", r["prediction"]);
    array(&hosts[0]["prediction"]["flows"])
        .iter()
        .map(|f| {
            (
                f["container"].as_str().expect("container").to_owned(),
                f.clone(),
            )
        })
        .collect()
}

/// The lab's common part: a LAN, a server host with `servers` addresses (.5, .15, ...), and
/// the NAT host `nat` with `addresses` (.6, .7, ...) and the given `nat = ...`.
fn lab_head(name: &str, servers: u8, addresses: u8, nat: &str) -> String {
    let list = |first: u8, step: u8, n: u8| {
        (0..n)
            .map(|i| format!("\"192.168.49.{}\"", first + i * step))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        r#"name = "{name}"

[lans.lan]
subnet = "192.168.49.0/24"

[hosts.srv]
lan = "lan"
addresses = [{}]

[hosts.nat]
lan = "lan"
addresses = [{}]

[hosts.nat.docker]
nat = {nat}
"#,
        list(5, 10, servers),
        list(6, 1, addresses),
    )
}

/// GCP Cloud NAT, `min_ports_per_vm = 32`: three VMs, each opening 50 connections to a server
/// port of its own (so the server can tell them apart). Each VM stops at its 32 ports, and the
/// server sees VM k's connections come from exactly the ports of its block, 1024 + 32k to
/// 1055 + 32k, all from the one NAT address.
#[test]
fn gcp_gives_each_vm_its_own_block_of_ports() {
    if !root_or_skip("gcp_gives_each_vm_its_own_block_of_ports") {
        return;
    }
    let mut text = lab_head(
        "gcpblocks",
        1,
        1,
        r#"{ profile = "gcp-cloud-nat", min_ports_per_vm = 32 }"#,
    );
    text.push_str(
        r#"
[containers.vm]
host = "nat"
replicas = 3
sysctls = { "net.ipv4.tcp_syn_retries" = "1" }
"#,
    );
    for k in 1..=3 {
        text.push_str(&format!(
            r#"
[servers.s{k}]
host = "srv"
port = {port}

[clients.c{k}]
containers = ["vm{k}"]
connect = ["192.168.49.5:{port}"]
connections = 50
"#,
            port = 9000 + k
        ));
    }
    let held = Held::start("cgcp", &text);
    let conns = established(&held.ns("srv"));
    let report = held.finish();

    for k in 0..3u16 {
        let first = 1024 + 32 * k;
        let seen = peers_on(&conns, 9001 + k);
        let addrs: BTreeSet<Ipv4Addr> = seen.iter().map(|p| *p.ip()).collect();
        let ports: BTreeSet<u16> = seen.iter().map(SocketAddrV4::port).collect();
        assert_eq!(seen.len(), 32, "vm{}: the server holds {seen:?}", k + 1);
        assert_eq!(addrs, BTreeSet::from([ip(NAT)]), "vm{}", k + 1);
        assert_eq!(
            ports,
            (first..first + 32).collect::<BTreeSet<u16>>(),
            "vm{}: the server sees exactly the VM's block {first}-{}",
            k + 1,
            first + 31
        );
    }

    assert_eq!(u(&report["established"]), 96, "{:#}", report["verdict"]);
    assert_eq!(u(&report["predicted_established"]), 96);
    assert_eq!(failures(&report["failed"]), failed(&[("timed_out", 54)]));
    assert_eq!(
        per_container(&report),
        BTreeMap::from([
            ("vm1".to_owned(), 32),
            ("vm2".to_owned(), 32),
            ("vm3".to_owned(), 32)
        ])
    );
    let v = view(&report);
    assert_eq!(v["unallocated"], 0, "{v:#}");
    let want: Vec<PathRow> = (0..3u64)
        .map(|k| {
            (
                NAT.to_owned(),
                format!("192.168.49.5:{}", 9001 + k),
                Some((NAT.to_owned(), 1024 + 32 * k, 1055 + 32 * k)),
                32,
                32,
                true,
                Some(32),
            )
        })
        .collect();
    assert_eq!(paths(v), want, "{v:#}");
    for (k, (c, f)) in flows(&report).iter().enumerate() {
        let first = 1024 + 32 * k as u64;
        assert_eq!(
            (
                f["limit"].as_str(),
                u(&f["vm_ports"]["first"]),
                u(&f["vm_ports"]["last"])
            ),
            (Some("path_ports"), first, first + 31),
            "{c}: {f:#}"
        );
    }
}

/// GCP Cloud NAT with `min_ports_per_vm = 32768`: one NAT address holds one VM (64,512 /
/// 32,768), so of two VMs the second gets no NAT: its packets hit the `nat_allocation_failed`
/// drop rule (2 SYNs per connect), all its connects time out, the view counts it unallocated
/// and the prediction says `no_allocation`; the first VM's connections all pass.
#[test]
fn gcp_drops_a_vm_the_nat_addresses_cannot_hold() {
    if !root_or_skip("gcp_drops_a_vm_the_nat_addresses_cannot_hold") {
        return;
    }
    let mut text = lab_head(
        "gcpfull",
        1,
        1,
        r#"{ profile = "gcp-cloud-nat", min_ports_per_vm = 32768 }"#,
    );
    text.push_str(
        r#"
[containers.vm]
host = "nat"
replicas = 2
sysctls = { "net.ipv4.tcp_syn_retries" = "1" }

[servers.api]
host = "srv"
port = 443

[clients.load]
containers = ["vm"]
connect = ["192.168.49.5:443"]
connections = 20
"#,
    );
    let held = Held::start("cgcpfull", &text);
    let conns = established(&held.ns("srv"));
    let ruleset: Value = serde_json::from_str(&sh(&format!(
        "ip netns exec {} nft -j list ruleset",
        held.ns("nat")
    )))
    .expect("nft -j prints JSON");
    let report = held.finish();

    // The drop rule of vm2 (172.17.0.3), and what it counted.
    let drops: Vec<(String, u64)> = array(&ruleset["nftables"])
        .iter()
        .filter_map(|o| o.get("rule"))
        .filter(|r| r["comment"] == "nat_allocation_failed")
        .map(|r| {
            let expr = array(&r["expr"]);
            let saddr = expr
                .iter()
                .find_map(|e| {
                    let m = e.get("match")?;
                    (m["left"]["payload"]["field"] == "saddr").then(|| m["right"].to_string())
                })
                .unwrap_or_default();
            let packets = expr
                .iter()
                .find_map(|e| e.get("counter").map(|c| u(&c["packets"])))
                .expect("a counted drop rule");
            (saddr, packets)
        })
        .collect();
    // Each connect sends at least 2 SYNs (a third when the kernel's timer fires just before
    // the 3 s it counts from the first, as `tests/labs.rs` allows too).
    let [(saddr, packets)] = drops.as_slice() else {
        panic!("one drop rule, for vm2: {drops:?}")
    };
    assert_eq!(saddr, "\"172.17.0.3\"", "the drop rule is vm2's");
    assert!(
        *packets >= 20 * 2,
        "vm2's 20 connects sent at least 2 SYNs each into the drop rule: it counted {packets}"
    );

    let seen = peers_on(&conns, 443);
    assert_eq!(seen.len(), 20, "{seen:?}");
    assert!(
        seen.iter()
            .all(|p| *p.ip() == ip(NAT) && (1024..=33_791).contains(&p.port())),
        "vm1's connections come from its block 1024-33791: {seen:?}"
    );

    assert_eq!(u(&report["established"]), 20, "{:#}", report["verdict"]);
    assert_eq!(u(&report["predicted_established"]), 20);
    assert_eq!(failures(&report["failed"]), failed(&[("timed_out", 20)]));
    assert_eq!(
        per_container(&report),
        BTreeMap::from([("vm1".to_owned(), 20), ("vm2".to_owned(), 0)])
    );
    let v = view(&report);
    assert_eq!(v["unallocated"], 1, "{v:#}");
    assert_eq!(
        paths(v),
        [(
            NAT.to_owned(),
            "192.168.49.5:443".to_owned(),
            Some((NAT.to_owned(), 1024, 33_791)),
            20,
            32_768,
            false,
            Some(20)
        )],
        "{v:#}"
    );
    let f = flows(&report);
    assert_eq!(f["vm2"]["limit"], "no_allocation", "{:#}", f["vm2"]);
    assert_eq!(f["vm2"]["vm_ports"], Value::Null, "{:#}", f["vm2"]);
    assert_eq!(f["vm1"]["limit"], "none", "{:#}", f["vm1"]);
    assert_eq!(u(&f["vm1"]["vm_ports"]["last"]), 33_791, "{:#}", f["vm1"]);
}

/// AWS NAT gateway, one address: its ports are 1024-56023, each usable once per destination.
/// Containers a and c have the same own ports, 30000-30049; a opens 50 connections to one
/// server address, c 50 to another: the NAT keeps their ports, so the same 50 translated ports
/// serve both destinations. Container b (own ports 60000-60049, outside the gateway's range)
/// opens 50 to the first: every one is moved into 1024-56023. (Each container binds its own
/// ports, so the reuse across destinations is the NAT's, not a container's.)
#[test]
fn aws_gateway_ports_are_its_range_once_per_destination() {
    if !root_or_skip("aws_gateway_ports_are_its_range_once_per_destination") {
        return;
    }
    let mut text = lab_head("awsreuse", 2, 1, r#"{ profile = "aws-nat-gateway" }"#);
    text.push_str(
        r#"
[containers.a]
host = "nat"
sysctls = { "net.ipv4.tcp_syn_retries" = "1", "net.ipv4.ip_local_port_range" = "30000 30049" }

[containers.b]
host = "nat"
sysctls = { "net.ipv4.tcp_syn_retries" = "1", "net.ipv4.ip_local_port_range" = "60000 60049" }

[containers.c]
host = "nat"
sysctls = { "net.ipv4.tcp_syn_retries" = "1", "net.ipv4.ip_local_port_range" = "30000 30049" }

[servers.api]
host = "srv"
port = 443

[clients.a]
containers = ["a"]
connect = ["192.168.49.5:443"]
connections = 50

[clients.b]
containers = ["b"]
connect = ["192.168.49.5:443"]
connections = 50

[clients.c]
containers = ["c"]
connect = ["192.168.49.15:443"]
connections = 50
"#,
    );
    let held = Held::start("caws", &text);
    let conns = established(&held.ns("srv"));
    let report = held.finish();
    assert_eq!(
        (u(&report["established"]), failures(&report["failed"])),
        (150, failed(&[])),
        "{:#}",
        report["outcome"]["last"]["clients"]
    );

    let on = |server: &str| -> BTreeSet<u16> {
        conns
            .iter()
            .filter(|(local, _)| *local.ip() == ip(server))
            .map(|(_, peer)| {
                assert_eq!(*peer.ip(), ip(NAT), "{peer}");
                peer.port()
            })
            .collect()
    };
    let (first, second) = (on("192.168.49.5"), on("192.168.49.15"));
    assert_eq!(first.len(), 100, "distinct ports towards .5: {first:?}");
    assert!(
        first.iter().all(|p| (1024..=56_023).contains(p)),
        "every translated port lies in the gateway's 1024-56023: {first:?}"
    );
    assert_eq!(
        second,
        (30_000..=30_049).collect::<BTreeSet<u16>>(),
        "c's own ports, kept towards .15"
    );
    let both = first.intersection(&second).count();
    assert!(
        both >= 40,
        "the same translated ports serve both destinations: only {both} of 50 do"
    );

    let v = view(&report);
    assert_eq!(
        paths(v),
        [
            (
                NAT.to_owned(),
                "192.168.49.15:443".to_owned(),
                None,
                50,
                55_000,
                false,
                Some(50)
            ),
            (
                NAT.to_owned(),
                "192.168.49.5:443".to_owned(),
                None,
                100,
                55_000,
                false,
                Some(100)
            ),
        ],
        "{v:#}"
    );
    let shared = &v["shared_port"];
    assert!(shared.is_object(), "a translated port towards both: {v:#}");
    let to: BTreeSet<&str> = array(&shared["entries"])
        .iter()
        .map(|e| e["to"].as_str().expect("to"))
        .collect();
    assert_eq!(
        to,
        BTreeSet::from(["192.168.49.15:443", "192.168.49.5:443"]),
        "{shared:#}"
    );
}

/// AWS NAT gateway, two addresses: each new connection takes the next address in turn, so 101
/// connections from two containers leave 51 and 50 (or 50 and 51) from the two, and the
/// server sees both.
#[test]
fn aws_gateway_addresses_take_connections_in_turn() {
    if !root_or_skip("aws_gateway_addresses_take_connections_in_turn") {
        return;
    }
    let mut text = lab_head("awsturn", 1, 2, r#"{ profile = "aws-nat-gateway" }"#);
    text.push_str(
        r#"
[containers.a]
host = "nat"
sysctls = { "net.ipv4.tcp_syn_retries" = "1" }

[containers.b]
host = "nat"
sysctls = { "net.ipv4.tcp_syn_retries" = "1" }

[servers.api]
host = "srv"
port = 443

[clients.a]
containers = ["a"]
connect = ["192.168.49.5:443"]
connections = 51

[clients.b]
containers = ["b"]
connect = ["192.168.49.5:443"]
connections = 50
"#,
    );
    let held = Held::start("cawsturn", &text);
    let conns = established(&held.ns("srv"));
    let report = held.finish();

    let mut by_addr: BTreeMap<Ipv4Addr, u64> = BTreeMap::new();
    for peer in peers_on(&conns, 443) {
        *by_addr.entry(*peer.ip()).or_default() += 1;
    }
    let (six, seven) = (
        by_addr.get(&ip("192.168.49.6")).copied().unwrap_or(0),
        by_addr.get(&ip("192.168.49.7")).copied().unwrap_or(0),
    );
    assert_eq!(
        by_addr.keys().copied().collect::<Vec<_>>(),
        [ip("192.168.49.6"), ip("192.168.49.7")],
        "{by_addr:?}"
    );
    assert!(
        six + seven == 101 && six.abs_diff(seven) <= 1,
        "the server sees {six} from .6 and {seven} from .7"
    );

    assert_eq!(u(&report["established"]), 101, "{:#}", report["verdict"]);
    assert_eq!(failures(&report["failed"]), failed(&[]));
    let v = view(&report);
    let rows = paths(v);
    let used: Vec<(String, u64)> = rows.iter().map(|r| (r.0.clone(), r.3)).collect();
    assert_eq!(
        used,
        [
            ("192.168.49.6".to_owned(), six),
            ("192.168.49.7".to_owned(), seven)
        ],
        "the view counts what the server sees: {v:#}"
    );
    assert!(
        rows.iter().all(|r| r.2.is_none()
            && r.4 == 55_000
            && !r.5
            && r.6.is_some_and(|p| p.abs_diff(r.3) <= 1)),
        "{v:#}"
    );
    for c in array(&v["containers"]) {
        assert_eq!(c["mismatch"], false, "{c:#}");
    }
    for (c, f) in flows(&report) {
        assert_eq!(
            f["in_turn"],
            serde_json::json!(["192.168.49.6", "192.168.49.7"]),
            "{c}: {f:#}"
        );
    }
}

/// `{ masquerade = true, ports = "40000-40299" }` with and without `random_fully`, two
/// containers with the same 300 own ports opening 250 connections each: both hold exactly 300
/// (the range's size), but without `random_fully` the NAT keeps a container's own port
/// whenever it is free, and with it draws every port at random. Read from the NAT host's
/// conntrack table: the share of connections whose translated port is their own.
#[test]
fn random_fully_keeps_the_capacity_but_not_the_ports() {
    if !root_or_skip("random_fully_keeps_the_capacity_but_not_the_ports") {
        return;
    }
    let mut kept = Vec::new();
    for random in [false, true] {
        let nat =
            format!("{{ masquerade = true, ports = \"40000-40299\", random_fully = {random} }}");
        let mut text = lab_head("randomfully", 1, 1, &nat);
        text.push_str(
            r#"
[containers.x]
host = "nat"
replicas = 2
sysctls = { "net.ipv4.tcp_syn_retries" = "1", "net.ipv4.ip_local_port_range" = "40000 40299" }

[servers.api]
host = "srv"
port = 443

[clients.load]
containers = ["x"]
connect = ["192.168.49.5:443"]
connections = 250
"#,
        );
        let held = Held::start(if random { "crandom" } else { "ckept" }, &text);
        let table = in_netns(&held.ns("nat"), lab::nat::conntrack::dump)
            .expect("dump the NAT host's conntrack table");
        let report = held.finish();

        let to_server: Vec<_> = table
            .iter()
            .filter(|f| f.proto == 6 && f.orig_dst.to_string() == "192.168.49.5:443")
            .collect();
        let translated: BTreeSet<u16> = to_server
            .iter()
            .map(|f| f.translated_source().port())
            .collect();
        assert_eq!(
            translated,
            (40_000..=40_299).collect::<BTreeSet<u16>>(),
            "random_fully {random}: every port of the range, once"
        );
        assert_eq!(to_server.len(), 300, "random_fully {random}");
        let same = to_server
            .iter()
            .filter(|f| f.translated_source().port() == f.orig_src.port())
            .count();
        eprintln!("random_fully {random}: {same} of 300 translated ports are the container's own");
        kept.push(same);

        assert_eq!(u(&report["established"]), 300, "{:#}", report["verdict"]);
        assert_eq!(failures(&report["failed"]), failed(&[("timed_out", 200)]));
        let v = view(&report);
        let nat_words = v["nat"].as_str().expect("nat");
        assert_eq!(
            nat_words.ends_with(" random-fully"),
            random,
            "the view names the flag: {nat_words}"
        );
    }
    assert!(
        kept[0] >= 100 && kept[1] <= 15,
        "own ports kept without random_fully {}, with it {} (of 300)",
        kept[0],
        kept[1]
    );
}

/// Bad profile parameters, all in one file, each refused at its place by `lab check` (exit 2):
/// an unknown profile (with the nearest name), a `min_ports_per_vm` that is not a power of two,
/// an AWS gateway with 9 addresses.
#[test]
fn bad_profile_parameters_are_refused_at_their_places() {
    let lab_text = r#"name = "badprofiles"

[lans.lan]
subnet = "192.168.49.0/24"

[hosts.h1]
lan = "lan"
addresses = ["192.168.49.6"]
[hosts.h1.docker]
nat = { profile = "aws-nat-gatway" }

[hosts.h2]
lan = "lan"
addresses = ["192.168.49.7"]
[hosts.h2.docker]
subnet = "172.18.0.0/16"
nat = { profile = "gcp-cloud-nat", min_ports_per_vm = 100 }

[hosts.h3]
lan = "lan"
addresses = ["192.168.49.10", "192.168.49.11", "192.168.49.12", "192.168.49.13", "192.168.49.14", "192.168.49.15", "192.168.49.16", "192.168.49.17", "192.168.49.18"]
[hosts.h3.docker]
subnet = "172.19.0.0/16"
nat = { profile = "aws-nat-gateway" }
"#;
    let file = temp_lab("cbad", lab_text);
    let out = lab(&["check", file.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    let at = |needle: &str, col_of: &str| {
        let (n, line) = lab_text
            .lines()
            .enumerate()
            .find(|(_, l)| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle}"));
        let col = line.find(col_of).expect("column") + 1;
        format!("cbad.toml:{}:{col}: error: ", n + 1)
    };
    for (place, message) in [
        (
            at("aws-nat-gatway", "\"aws-nat-gatway\""),
            "unknown NAT profile `aws-nat-gatway`",
        ),
        (
            at("min_ports_per_vm = 100", "100"),
            "min_ports_per_vm = 100 is not a power of two from 2 to 32768",
        ),
        (
            at("profile = \"aws-nat-gateway\"", "\"aws-nat-gateway\""),
            "an AWS NAT gateway has at most 8 addresses; host `h3` has 9",
        ),
    ] {
        assert!(
            err.contains(&format!("{place}{message}")),
            "expected `{place}{message}` in:\n{err}"
        );
    }
    assert!(
        err.contains("did you mean \"aws-nat-gateway\"?"),
        "the nearest profile is named:\n{err}"
    );
    assert!(
        err.contains("min_ports_per_vm = 128"),
        "the next power of two is offered:\n{err}"
    );
}
