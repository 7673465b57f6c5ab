//! The teaching outputs are true: `lab show --commands` builds the same lab by hand as `lab up`
//! does, for every lab in labs/ and for names that are also `ip` keywords. (`lab graph` is
//! checked in tests/outputs.rs.)

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use lab::lab::plan::{Name, Plan};
use lab::lab::{LoadOptions, Source, load};
use serde_json::Value;

/// For every lab file: the printed commands, run by bash under one name, build what `lab up`
/// builds under another. For 02-cross-host the hand-built lab also translates like Docker.
#[test]
fn the_printed_commands_build_what_lab_up_builds_for_every_lab() {
    if !root_or_skip("the_printed_commands_build_what_lab_up_builds_for_every_lab") {
        return;
    }
    for (i, file) in lab_files().iter().enumerate() {
        // `lab up` of the million and the two million raises global limits.
        let _host = raises(file).then(HostLock::exclusive);
        let started = std::time::Instant::now();
        let by_hand = unique_name(&format!("ch{i}"));
        let by_up = unique_name(&format!("cu{i}"));
        let (hand, up, _) = build_both_and_compare(file, &by_hand, &by_up);
        if file.ends_with("02-cross-host.toml") {
            translates_like_docker(&by_hand);
        }
        hand.remove();
        drop(up);
        assert_gone(&by_up);
        eprintln!(
            "{}: both ways equal, {:.1} s",
            file.display(),
            started.elapsed().as_secs_f64()
        );
    }
}

/// Names the validator accepts that `ip` would read as keywords or their abbreviations if they
/// were not behind `dev`/`name`: LANs, hosts (their LAN ports), containers, docker bridges.
#[test]
fn the_printed_commands_work_with_names_that_are_ip_keywords() {
    if !root_or_skip("the_printed_commands_work_with_names_that_are_ip_keywords") {
        return;
    }
    let (text, servers) = keyword_lab();
    let file = temp_lab("keywords", &text);
    let by_up = unique_name("kwu");
    let (hand, up, dump) = build_both_and_compare(&file, &unique_name("kwh"), &by_up);
    // Both ways give a server's host queues as long as the servers' backlog, and keep what the
    // lab file sets.
    let has = |host: &str, line: &str| {
        let lines = &dump[&format!("LAB-{host}")];
        assert!(lines.iter().any(|l| l == line), "LAB-{host} lacks `{line}`");
    };
    has(&servers[0], "sysctl net.core.somaxconn = 65535");
    has(&servers[0], "sysctl net.ipv4.tcp_max_syn_backlog = 65535");
    has(&servers[1], "sysctl net.core.somaxconn = 4096");
    has(&servers[1], "sysctl net.ipv4.tcp_max_syn_backlog = 65535");
    hand.remove();
    drop(up);
    assert_gone(&by_up);
    let _ = std::fs::remove_dir_all(file.parent().expect("temp dir"));
}

/// `ip` words (commands, options, link and route keywords), each as itself and as its
/// one- and two-letter abbreviations, which `ip` accepts for many of them.
const IP_WORDS: &[&str] = &[
    "dev",
    "type",
    "link",
    "help",
    "up",
    "down",
    "name",
    "master",
    "nomaster",
    "addr",
    "address",
    "route",
    "netns",
    "peer",
    "via",
    "default",
    "add",
    "del",
    "set",
    "show",
    "all",
    "mtu",
    "index",
    "group",
    "alias",
    "state",
    "mode",
    "broadcast",
    "brd",
    "txqlen",
    "arp",
    "multicast",
    "promisc",
    "table",
    "proto",
    "scope",
    "metric",
    "src",
    "bridge",
    "veth",
    "list",
    "exec",
    "flush",
    "label",
    "local",
    "vrf",
    "xdp",
    "trailers",
    "protodown",
    "vf",
    "1",
];

/// A valid lab whose LANs, hosts, containers and docker bridges are all named after
/// [`IP_WORDS`]: 3 LANs, every third remaining name a host (with Docker on all but the first,
/// which runs a server), the rest single containers spread over the docker hosts. Also returns
/// the hosts of its two servers; the second sets `net.core.somaxconn` itself.
fn keyword_lab() -> (String, [String; 2]) {
    let mut names: Vec<String> = Vec::new();
    for w in IP_WORDS {
        for n in 1..=2.min(w.len()) {
            names.push(w[..n].to_owned());
        }
        names.push((*w).to_owned());
    }
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.clone()));
    // `lo` and `eth0` cannot name LANs or hosts (the validator says so), only containers.
    names.retain(|n| n != "lo" && n != "eth0");
    let lans = ["n", "l", "dev"];
    names.retain(|n| !lans.contains(&n.as_str()));
    let mut text = String::from("name = \"keywords\"\n");
    for (i, lan) in lans.iter().enumerate() {
        text += &format!("[lans.{lan}]\nsubnet = \"10.9.{i}.0/24\"\n");
    }
    // `all` and `default` cannot name interfaces (the kernel keeps them for its settings), so
    // not LANs, hosts or bridges either; they can name containers.
    let ifname_ok = |n: &str| n != "all" && n != "default";
    let (hosts, containers): (Vec<_>, Vec<_>) = names
        .iter()
        .enumerate()
        .partition(|(i, n)| i % 3 == 0 && ifname_ok(n));
    let hosts: Vec<&String> = hosts.into_iter().map(|(_, n)| n).collect();
    let mut bridges = IP_WORDS.iter().filter(|w| ifname_ok(w)).cycle();
    for (i, host) in hosts.iter().enumerate() {
        let lan = i % lans.len();
        text += &format!(
            "[hosts.{host:?}]\nlan = \"{}\"\naddresses = [\"10.9.{lan}.{}\"]\n",
            lans[lan],
            10 + i
        );
        if i == 0 {
            continue;
        }
        let bridge = bridges.next().expect("cycle");
        text += &format!("[hosts.{host:?}.docker]\nbridge = \"{bridge}\"\n");
    }
    // The first host runs a server and gets the server's backlog sysctls; the second also
    // runs one but sets somaxconn itself, which the lab must keep.
    text += &format!(
        "[servers.s]\nhost = {:?}\nport = 9000\n[servers.s2]\nhost = {:?}\nport = 9001\n",
        hosts[0], hosts[1]
    );
    text = text.replacen(
        &format!("[hosts.{:?}.docker]", hosts[1]),
        &format!(
            "[hosts.{:?}.sysctls]\n\"net.core.somaxconn\" = \"4096\"\n[hosts.{:?}.docker]",
            hosts[1], hosts[1]
        ),
        1,
    );
    let containers: Vec<&String> = containers.into_iter().map(|(_, n)| n).collect();
    let reserved = ["lo".to_owned(), "eth0".to_owned()];
    for (k, c) in containers.into_iter().chain(&reserved).enumerate() {
        let host = hosts[1 + k % (hosts.len() - 1)];
        text += &format!(
            "[containers.{c:?}]\nhost = {host:?}\n\
             sysctls = {{ \"net.ipv4.ip_local_port_range\" = \"1024 65535\" }}\n"
        );
    }
    (text, [hosts[0].clone(), hosts[1].clone()])
}

/// A lab built by running the printed commands in bash. Dropping it runs the printed removal
/// line, so a failing test leaves nothing behind.
struct HandBuilt {
    name: String,
    removal: String,
}

impl HandBuilt {
    fn build(file: &Path, name: &str) -> Self {
        let out = lab(&[
            "show",
            "--commands",
            "--name",
            name,
            file.to_str().expect("utf-8 path"),
        ]);
        assert!(out.status.success(), "{}", text(&out));
        let script = String::from_utf8(out.stdout).expect("utf-8 script");
        let removal = script
            .lines()
            .find_map(|l| l.strip_prefix("# for ns in "))
            .map(|l| format!("for ns in {l}"))
            .expect("the script says how to remove the lab");
        let built = Self {
            name: name.to_owned(),
            removal,
        };
        // -x: on failure, the last commands it ran say which one failed.
        let run = Command::new("bash")
            .arg("-xc")
            .arg(&script)
            .output()
            .expect("run bash");
        let trace = String::from_utf8_lossy(&run.stderr);
        let tail: Vec<&str> = trace.lines().rev().take(12).collect();
        assert!(
            run.status.success(),
            "the printed commands for {} failed ({}); the last lines of `bash -x`:\n{}",
            file.display(),
            run.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
        built
    }

    /// Runs the printed removal line and checks that it removed every namespace.
    fn remove(self) {
        let name = self.name.clone();
        drop(self);
        let left = namespaces_with_prefix(&format!("{name}-"));
        assert!(left.is_empty(), "the printed removal left {left:?}");
        let listed = sh("ip netns list");
        assert!(
            !listed.lines().any(|l| l.starts_with(&format!("{name}-"))),
            "ip netns list still shows {name}:\n{listed}"
        );
    }
}

impl Drop for HandBuilt {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg("-c")
            .arg(format!("{} 2>/dev/null", self.removal))
            .status();
    }
}

/// Builds `file` by hand as `by_hand` and with `lab up` as `by_up`, dumps every namespace of
/// both and asserts the dumps are equal. Returns both labs, still up, and the dump.
fn build_both_and_compare(file: &Path, by_hand: &str, by_up: &str) -> (HandBuilt, LabGuard, Dump) {
    for name in [by_hand, by_up] {
        let left = namespaces_with_prefix(&format!("{name}-"));
        assert!(
            left.is_empty(),
            "namespaces of {name} exist already: {left:?}"
        );
    }
    let plan_hand = plan_of(file, by_hand);
    let plan_up = plan_of(file, by_up);
    let hand = HandBuilt::build(file, by_hand);
    let up = LabGuard::up(file, by_up);
    let dump_hand = dump_lab(&plan_hand);
    let dump_up = dump_lab(&plan_up);
    assert_same(file, &dump_hand, &dump_up, by_hand, by_up);
    (hand, up, dump_up)
}

/// The validated plan of `file` under lab name `name`, as `lab` itself sees it.
fn plan_of(file: &Path, name: &str) -> Plan {
    let text = std::fs::read_to_string(file).expect("read lab file");
    let opts = LoadOptions {
        name: Some(Name::new(name).expect("lab name")),
    };
    load(&Source::new(file.display().to_string(), text), &opts)
        .unwrap_or_else(|d| panic!("{} does not load: {d:?}", file.display()))
        .plan
}

/// Per namespace (named `LAB-<node>`), the dump as lines.
type Dump = BTreeMap<String, Vec<String>>;

/// What `ip`, `nft` and `sysctl` show in one namespace, unparsed.
struct RawNs {
    links: Vec<Value>,
    /// nsid -> namespace name, as this namespace numbers its peers.
    nsids: HashMap<i64, String>,
    addrs: Vec<Value>,
    routes: Vec<Value>,
    nft: Value,
    sysctls: Vec<String>,
    /// ifname -> /sys/class/net/<if>/addr_assign_type (1: random, 3: set).
    assign: HashMap<String, String>,
}

const SECTION: &str = "@@section@@";

fn raw_ns(ns: &str) -> RawNs {
    let script = format!(
        "set -e; ip -j -d link show; echo {SECTION}; ip -j netns list-id; echo {SECTION}; \
         ip -j addr show; echo {SECTION}; ip -j -4 route show table all; \
         ip -j -6 route show table all; echo {SECTION}; nft -j list ruleset; echo {SECTION}; \
         {{ sysctl -a 2>/dev/null || true; }} | grep '^net\\.'; echo {SECTION}; \
         grep -H . /sys/class/net/*/addr_assign_type 2>/dev/null || true"
    );
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "sh", "-c", &script])
        .output()
        .expect("run ip netns exec");
    assert!(out.status.success(), "dump of {ns} failed:\n{}", text(&out));
    let stdout = String::from_utf8(out.stdout).expect("utf-8 dump");
    let parts: Vec<&str> = stdout.split(&format!("{SECTION}\n")).collect();
    assert_eq!(parts.len(), 7, "dump of {ns}:\n{stdout}");
    let json = |s: &str| -> Vec<Value> {
        // One JSON document per line (the two route listings are two documents).
        s.lines()
            .filter(|l| !l.trim().is_empty())
            .flat_map(|l| match serde_json::from_str(l) {
                Ok(Value::Array(a)) => a,
                Ok(v) => vec![v],
                Err(e) => panic!("dump of {ns}: not JSON ({e}): {l}"),
            })
            .collect()
    };
    let nsids = json(parts[1])
        .iter()
        .filter_map(|v| Some((v["nsid"].as_i64()?, v["name"].as_str()?.to_owned())))
        .collect();
    let nft = serde_json::from_str(parts[4]).unwrap_or_else(|e| panic!("nft -j in {ns}: {e}"));
    let assign = parts[6]
        .lines()
        .filter_map(|l| {
            let (path, value) = l.split_once(':')?;
            let ifname = path.strip_prefix("/sys/class/net/")?.split('/').next()?;
            Some((ifname.to_owned(), value.to_owned()))
        })
        .collect();
    RawNs {
        links: json(parts[0]),
        nsids,
        addrs: json(parts[2]),
        routes: json(parts[3]),
        nft,
        sysctls: parts[5].lines().map(str::to_owned).collect(),
        assign,
    }
}

/// Dumps every namespace of the plan, normalized: the lab's name becomes `LAB`, the names and
/// MACs the plan derives from the lab's name (container veths, bridge MACs) become what they
/// stand for, and what legitimately differs between two builds is left out: ifindex and nsid
/// numbers (peers and masters are compared by name), random MACs (only whether a MAC is random
/// is compared), bridge port numbers (ports join in another order when containers are built in
/// parallel), timers, nft handles and counters, IPv6 link-local addresses (derived from the
/// random MACs) and the conntrack count.
fn dump_lab(plan: &Plan) -> Dump {
    // A few namespaces at a time: each dump is a handful of short processes.
    let names: Vec<String> = plan.namespaces().iter().map(|n| n.to_string()).collect();
    let raw: BTreeMap<String, RawNs> = std::thread::scope(|scope| {
        let workers: Vec<_> = names
            .chunks(names.len().div_ceil(4))
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|ns| (ns.clone(), raw_ns(ns)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("dump thread"))
            .collect()
    });
    let mut subst: Vec<(String, String)> = Vec::new();
    for c in &plan.containers {
        subst.push((c.veth.to_string(), format!("veth<{}>", c.name)));
    }
    for l in &plan.lans {
        subst.push((l.mac.to_string(), format!("mac<lan {}>", l.name)));
    }
    for h in &plan.hosts {
        for d in h.docker.iter().flat_map(|d| d.all_networks()) {
            subst.push((
                d.mac.to_string(),
                format!("mac<docker {} {}>", h.name, d.name),
            ));
        }
    }
    subst.push((format!("{}-", plan.name), "LAB-".to_owned()));
    let norm = |s: String| {
        subst
            .iter()
            .fold(s, |s, (from, to)| s.replace(from.as_str(), to))
    };
    let mut dump = Dump::new();
    for (ns, r) in &raw {
        let mut lines = Vec::new();
        // Links, by name (containers are built in parallel, so ifindex order differs).
        let mut links: Vec<(String, Vec<String>)> = r
            .links
            .iter()
            .map(|l| {
                let name = norm(l["ifname"].as_str().unwrap_or("?").to_owned());
                let mut l = l.clone();
                let peer = peer_of(&l, r, &raw);
                let obj = l.as_object_mut().expect("link object");
                for k in ["ifindex", "link_index", "link_netnsid"] {
                    obj.remove(k);
                }
                if let Some(peer) = peer {
                    obj.insert("peer".into(), Value::String(peer));
                }
                let ifname = obj["ifname"].as_str().unwrap_or("?").to_owned();
                let assign = r.assign.get(&ifname).cloned().unwrap_or_default();
                if assign == "1" {
                    obj.insert("address".into(), "(random)".into());
                }
                obj.insert("addr_assign_type".into(), assign.into());
                if let Some(info) = obj.get_mut("linkinfo").and_then(Value::as_object_mut) {
                    for data in ["info_data", "info_slave_data"] {
                        if let Some(d) = info.get_mut(data).and_then(Value::as_object_mut) {
                            d.retain(|k, _| {
                                !k.ends_with("_timer")
                                    && !matches!(
                                        k.as_str(),
                                        "bridge_id" | "root_id" | "id" | "no" | "designated_port"
                                    )
                            });
                        }
                    }
                }
                let mut out = Vec::new();
                flatten(&l, &mut String::new(), &mut out);
                let out = out
                    .into_iter()
                    .map(|(path, v)| norm(format!("link {name} {path} = {v}")))
                    .collect();
                (name, out)
            })
            .collect();
        links.sort();
        lines.extend(links.into_iter().flat_map(|(_, l)| l));
        let mut addrs: Vec<String> = r
            .addrs
            .iter()
            .flat_map(|l| {
                let name = l["ifname"].as_str().unwrap_or("?").to_owned();
                l["addr_info"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|a| !(a["family"] == "inet6" && a["scope"] == "link"))
                    .enumerate()
                    .map(move |(i, a)| format!("addr {name} #{i} {a}"))
            })
            .map(norm)
            .collect();
        addrs.sort();
        lines.extend(addrs);
        let mut routes: Vec<String> = r
            .routes
            .iter()
            .filter(|rt| {
                let dst = rt["dst"].as_str().unwrap_or("");
                !(dst.starts_with("fe80:") && dst != "fe80::/64")
            })
            .map(|rt| norm(format!("route {rt}")))
            .collect();
        routes.sort();
        lines.extend(routes);
        let mut nft = r.nft.clone();
        scrub_nft(&mut nft);
        for item in nft["nftables"].as_array().cloned().unwrap_or_default() {
            if item.get("metainfo").is_none() {
                lines.push(norm(format!("nft {item}")));
            }
        }
        let mut sysctls: Vec<String> = r
            .sysctls
            .iter()
            .filter(|l| !l.starts_with("net.netfilter.nf_conntrack_count "))
            // Global, read-only in a namespace, and raised by the big labs other tests run
            // meanwhile (CI once saw nf_conntrack_buckets change between the two builds):
            // neither way of building a lab writes them.
            .filter(|l| {
                ![
                    "net.netfilter.nf_conntrack_buckets ",
                    "net.netfilter.nf_conntrack_max ",
                ]
                .iter()
                .any(|g| l.starts_with(g))
            })
            .map(|l| norm(format!("sysctl {l}")))
            .collect();
        sysctls.sort();
        lines.extend(sysctls);
        dump.insert(norm(ns.clone()), lines);
    }
    dump
}

/// A veth's other end as `<namespace>/<ifname>`, found through the nsid its namespace gives
/// the peer's.
fn peer_of(link: &Value, r: &RawNs, all: &BTreeMap<String, RawNs>) -> Option<String> {
    let index = link["link_index"].as_i64()?;
    let find = |ns: &str| {
        let peer_ns = all.get(ns)?;
        let l = peer_ns
            .links
            .iter()
            .find(|l| l["ifindex"].as_i64() == Some(index))?;
        Some(format!("{ns}/{}", l["ifname"].as_str()?))
    };
    Some(match link["link_netnsid"].as_i64() {
        Some(id) => match r.nsids.get(&id) {
            Some(ns) => find(ns).unwrap_or_else(|| format!("{ns}/?{index}")),
            None => format!("(nsid {id} unnamed)/?{index}"),
        },
        None => link["link"]
            .as_str()
            .map_or_else(|| format!("?{index}"), |l| format!("./{l}")),
    })
}

/// Drops nft handles and zeroes counters: neither is something a build decides.
fn scrub_nft(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.remove("handle");
            if let Some(Value::Object(c)) = m.get_mut("counter") {
                for k in ["packets", "bytes"] {
                    if c.contains_key(k) {
                        c.insert(k.into(), 0.into());
                    }
                }
            }
            m.values_mut().for_each(scrub_nft);
        }
        Value::Array(a) => a.iter_mut().for_each(scrub_nft),
        _ => {}
    }
}

/// A JSON value as `(path, leaf)` pairs, e.g. `.linkinfo.info_kind`, `"veth"`.
fn flatten(v: &Value, path: &mut String, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                let len = path.len();
                path.push('.');
                path.push_str(k);
                flatten(v, path, out);
                path.truncate(len);
            }
        }
        Value::Array(a) if !a.is_empty() && a.iter().any(|x| x.is_object() || x.is_array()) => {
            for (i, v) in a.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                flatten(v, path, out);
                path.truncate(len);
            }
        }
        _ => out.push((path.clone(), v.to_string())),
    }
}

/// Asserts the two dumps are equal; else shows the namespaces that differ and a diff of the
/// first one.
fn assert_same(file: &Path, hand: &Dump, up: &Dump, by_hand: &str, by_up: &str) {
    if hand == up {
        return;
    }
    let mut msg = format!(
        "{}: `lab show --commands` (run by bash as lab {by_hand}) and `lab up` (as lab {by_up}) \
         built different labs.\n",
        file.display()
    );
    let only = |a: &Dump, b: &Dump| -> Vec<String> {
        a.keys().filter(|k| !b.contains_key(*k)).cloned().collect()
    };
    let (only_hand, only_up) = (only(hand, up), only(up, hand));
    if !only_hand.is_empty() || !only_up.is_empty() {
        msg += &format!("namespaces only by hand: {only_hand:?}; only by lab up: {only_up:?}\n");
    }
    let differ: Vec<&String> = hand
        .keys()
        .filter(|k| up.get(*k).is_some_and(|u| u != &hand[*k]))
        .collect();
    msg += &format!("namespaces that differ: {differ:?}\n");
    if let Some(ns) = differ.first() {
        msg += &format!("--- {ns} by hand\n+++ {ns} by lab up\n");
        msg += &diff(&hand[*ns], &up[*ns], 40);
    }
    panic!("{msg}");
}

/// The lines only in `a` (`-`) and only in `b` (`+`), in order, at most `max` of them.
fn diff(a: &[String], b: &[String], max: usize) -> String {
    // Longest common subsequence, then walk it.
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out, mut shown) = (0, 0, String::new(), 0);
    while (i < n || j < m) && shown < max {
        if i < n && j < m && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if j == m || (i < n && lcs[i + 1][j] >= lcs[i][j + 1]) {
            out += &format!("- {}\n", a[i]);
            i += 1;
            shown += 1;
        } else {
            out += &format!("+ {}\n", b[j]);
            j += 1;
            shown += 1;
        }
    }
    if shown == max {
        out += "...\n";
    }
    out
}

/// The hand-built 02-cross-host translates like Docker: a connection from a container reaches
/// the server from the client host's address.
fn translates_like_docker(name: &str) {
    let ns = |node: &str| format!("{name}-{node}");
    let link = sh(&format!("ip -n {} -o link show dev eth0", ns("c1")));
    assert!(link.contains("02:42:ac:11:00:02"), "{link}");
    let rules = sh(&format!(
        "ip netns exec {} nft list ruleset",
        ns("client-host")
    ));
    assert!(
        rules.contains("ip saddr 172.17.0.0/16 oifname != \"docker0\" counter packets"),
        "{rules}"
    );
    let server = Acceptor::start(&ns("server-host"), "0.0.0.0:9000");
    let s = connect_from(&ns("c1"), "192.168.49.5:9000", Duration::from_secs(3))
        .expect("through the NAT");
    let port = s.local_addr().expect("local address").port();
    assert!(
        server.wait_for(1, Duration::from_secs(3)),
        "the server never accepted"
    );
    let peers = server.finish();
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].to_string(), format!("192.168.49.6:{port}"));
}
