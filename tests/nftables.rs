//! Docker 29's native nftables layout (`[hosts.H.docker] firewall = "nftables"`) against the
//! real kernel (root): what `nft list ruleset` prints inside the host after `lab up`, compared
//! line for line with what Docker 29 writes (counters normalised), and real connections through
//! it from the containers to the test's own listeners on the server host.
//!
//! | host   | `nat =`                                                        | containers           |
//! |--------|----------------------------------------------------------------|----------------------|
//! | hdef   | `"masquerade"` (Docker's default bridge)                       | d1, d2               |
//! | hsnat  | `{ snat = [".41"] }` (Docker's `host_ipv4`)                    | s1                   |
//! | hports | `{ masquerade = true, ports = "40000-40099" }`                 | x1, x2 -> .5:9007    |
//! | hpool  | `{ snat = [".51", ".52"], ports = "41000-41099" }`             | y1, y2 -> .5:9008    |
//! | hnone  | `"none"` (Docker's routed gateway mode), subnet 172.20.0.0/16  | n1 -> .5:9001        |

mod common;

use std::collections::BTreeMap;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::*;

const LAB_TEXT: &str = r#"
name = "nftables"

[lans.lan]
subnet = "192.168.49.0/24"

[hosts.srv]
lan = "lan"
addresses = ["192.168.49.5"]

[hosts.hdef]
lan = "lan"
addresses = ["192.168.49.30"]
[hosts.hdef.docker]
firewall = "nftables"

[hosts.hsnat]
lan = "lan"
addresses = ["192.168.49.40", "192.168.49.41"]
[hosts.hsnat.docker]
firewall = "nftables"
nat = { snat = ["192.168.49.41"] }

[hosts.hports]
lan = "lan"
addresses = ["192.168.49.70"]
[hosts.hports.docker]
firewall = "nftables"
nat = { masquerade = true, ports = "40000-40099" }

[hosts.hpool]
lan = "lan"
addresses = ["192.168.49.50", "192.168.49.51", "192.168.49.52"]
[hosts.hpool.docker]
firewall = "nftables"
nat = { snat = ["192.168.49.51", "192.168.49.52"], ports = "41000-41099" }

[hosts.hnone]
lan = "lan"
addresses = ["192.168.49.20"]
[hosts.hnone.docker]
firewall = "nftables"
subnet = "172.20.0.0/16"
nat = "none"

[containers.d]
host = "hdef"
replicas = 2

[containers.s1]
host = "hsnat"

[containers.x]
host = "hports"
replicas = 2
sysctls = { "net.ipv4.tcp_syn_retries" = "1", "net.ipv4.ip_local_port_range" = "50000 59999" }

[containers.y]
host = "hpool"
replicas = 2
sysctls = { "net.ipv4.tcp_syn_retries" = "1", "net.ipv4.ip_local_port_range" = "50000 59999" }

[containers.n1]
host = "hnone"
sysctls = { "net.ipv4.tcp_syn_retries" = "1" }
"#;

/// `table ip docker-bridges` for docker0 on 172.17.0.0/16, as nft 1.0.6 lists what Docker 29
/// writes (`/work/shared/notes/docker-nftables.md` section 3), with `{RAW}` for the containers'
/// rules and `{NAT}` for the NAT rule.
const IP_TABLE: &str = r#"table ip docker-bridges {
	map filter-forward-in-jumps {
		type ifname : verdict
		elements = { "docker0" : jump filter-forward-in__docker0 }
	}

	map filter-forward-out-jumps {
		type ifname : verdict
		elements = { "docker0" : jump filter-forward-out__docker0 }
	}

	map nat-postrouting-in-jumps {
		type ifname : verdict
		elements = { "docker0" : jump nat-postrouting-in__docker0 }
	}

	map nat-postrouting-out-jumps {
		type ifname : verdict
		elements = { "docker0" : jump nat-postrouting-out__docker0 }
	}

	chain filter-FORWARD {
		type filter hook forward priority filter; policy accept;
		oifname vmap @filter-forward-in-jumps
		iifname vmap @filter-forward-out-jumps
	}

	chain nat-OUTPUT {
		type nat hook output priority -100; policy accept;
		ip daddr != 127.0.0.0/8 fib daddr type local counter packets 0 bytes 0 jump nat-prerouting-and-output
	}

	chain nat-POSTROUTING {
		type nat hook postrouting priority srcnat; policy accept;
		iifname vmap @nat-postrouting-out-jumps
		oifname vmap @nat-postrouting-in-jumps
	}

	chain nat-PREROUTING {
		type nat hook prerouting priority dstnat; policy accept;
		fib daddr type local counter packets 0 bytes 0 jump nat-prerouting-and-output
	}

	chain nat-prerouting-and-output {
	}

	chain raw-PREROUTING {
		type filter hook prerouting priority raw; policy accept;
{RAW}	}

	chain filter-forward-in__docker0 {
		ct state established,related counter packets 0 bytes 0 accept
		iifname "docker0" counter packets 0 bytes 0 accept comment "ICC"
		counter packets 0 bytes 0 drop comment "UNPUBLISHED PORT DROP"
	}

	chain filter-forward-out__docker0 {
		ct state established,related counter packets 0 bytes 0 accept
		counter packets 0 bytes 0 accept comment "OUTGOING"
	}

	chain nat-postrouting-in__docker0 {
	}

	chain nat-postrouting-out__docker0 {
{NAT}	}
}
"#;

/// `table ip6 docker-bridges` on a host whose networks have no IPv6 (moby's golden
/// `cleaned,hairpin=false__ip6`, as nft 1.0.6 lists it).
const IP6_TABLE: &str = r#"table ip6 docker-bridges {
	map filter-forward-in-jumps {
		type ifname : verdict
	}

	map filter-forward-out-jumps {
		type ifname : verdict
	}

	map nat-postrouting-in-jumps {
		type ifname : verdict
	}

	map nat-postrouting-out-jumps {
		type ifname : verdict
	}

	chain filter-FORWARD {
		type filter hook forward priority filter; policy accept;
		oifname vmap @filter-forward-in-jumps
		iifname vmap @filter-forward-out-jumps
	}

	chain nat-OUTPUT {
		type nat hook output priority -100; policy accept;
		ip6 daddr != ::1 fib daddr type local counter packets 0 bytes 0 jump nat-prerouting-and-output
	}

	chain nat-POSTROUTING {
		type nat hook postrouting priority srcnat; policy accept;
		iifname vmap @nat-postrouting-out-jumps
		oifname vmap @nat-postrouting-in-jumps
	}

	chain nat-PREROUTING {
		type nat hook prerouting priority dstnat; policy accept;
		fib daddr type local counter packets 0 bytes 0 jump nat-prerouting-and-output
	}

	chain nat-prerouting-and-output {
	}

	chain raw-PREROUTING {
		type filter hook prerouting priority raw; policy accept;
	}
}
"#;

fn up(tag: &str) -> LabGuard {
    let file = temp_lab(tag, LAB_TEXT);
    LabGuard::up(&file, &unique_name(tag))
}

/// `nft list ruleset` inside a node of the lab, through `lab exec`.
fn ruleset(lab: &LabGuard, node: &str) -> String {
    let out = lab_command()
        .args(["exec", &lab.name, node, "--", "nft", "list", "ruleset"])
        .output()
        .expect("run lab exec");
    assert!(out.status.success(), "lab exec nft: {}", text(&out));
    String::from_utf8(out.stdout).expect("utf-8 listing")
}

/// Every `packets N bytes M` made `packets 0 bytes 0`.
fn zero_counters(listing: &str) -> String {
    let mut out = Vec::new();
    for line in listing.lines() {
        let words: Vec<&str> = line.split(' ').collect();
        let mut fixed = Vec::with_capacity(words.len());
        let mut i = 0;
        while i < words.len() {
            if words[i] == "packets" && i + 3 < words.len() && words[i + 2] == "bytes" {
                fixed.extend([words[i], "0", "bytes", "0"]);
                i += 4;
                continue;
            }
            fixed.push(words[i]);
            i += 1;
        }
        out.push(fixed.join(" "));
    }
    out.join("\n") + "\n"
}

/// The rules of one chain, as listed, counters included.
fn chain_rules(listing: &str, chain: &str) -> Vec<String> {
    listing
        .lines()
        .skip_while(|l| l.trim() != format!("chain {chain} {{"))
        .skip(1)
        .take_while(|l| l.trim() != "}")
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.starts_with("type "))
        .collect()
}

/// `packets N` of a listed rule.
fn packets(rule: &str) -> u64 {
    let words: Vec<&str> = rule.split(' ').collect();
    let at = words
        .iter()
        .position(|w| *w == "packets")
        .unwrap_or_else(|| panic!("no counter in `{rule}`"));
    words[at + 1].parse().expect("a packet count")
}

fn expected(raw: &[&str], nat: &[&str]) -> String {
    let lines = |rules: &[&str]| -> String { rules.iter().map(|r| format!("\t\t{r}\n")).collect() };
    IP_TABLE
        .replace("{RAW}", &lines(raw))
        .replace("{NAT}", &lines(nat))
        + IP6_TABLE
}

fn direct_access(addr: &str) -> String {
    format!(
        "ip daddr {addr} iifname != \"docker0\" counter packets 0 bytes 0 drop comment \"DROP DIRECT ACCESS\""
    )
}

#[test]
fn the_default_bridge_lists_as_docker_29_writes_it() {
    if !root_or_skip("the_default_bridge_lists_as_docker_29_writes_it") {
        return;
    }
    let name;
    {
        let file = temp_lab("nftdef", LAB_TEXT);
        let lab = LabGuard::up(&file, &unique_name("nftdef"));
        name = lab.name.clone();
        let got = zero_counters(&ruleset(&lab, "hdef"));
        let want = expected(
            &[&direct_access("172.17.0.2"), &direct_access("172.17.0.3")],
            &[
                "oifname != \"docker0\" ip saddr 172.17.0.0/16 counter packets 0 bytes 0 masquerade comment \"MASQUERADE\"",
            ],
        );
        assert_eq!(got, want, "hdef's ruleset:\n{got}");

        // `lab show --commands` loads the same ruleset with nft: its script for hdef, loaded in
        // a scratch namespace of the test, lists the same.
        let show = common::lab(&["show", file.to_str().expect("utf-8 path"), "--commands"]);
        assert!(show.status.success(), "{}", text(&show));
        let script = String::from_utf8_lossy(&show.stdout).into_owned();
        // The script names the namespaces after the file's lab name.
        let ns = "nftables-hdef";
        let nft = script
            .split(&format!("ip netns exec {ns} nft -f - <<'NFT'\n"))
            .nth(1)
            .and_then(|rest| rest.split("\nNFT\n").next())
            .unwrap_or_else(|| panic!("no nft script for {ns} in:\n{script}"));
        let scratch = format!("{}-x", lab.name);
        sh(&format!("ip netns add {scratch}"));
        let file = TempDir::new("nftdef-script");
        let path = file.join("hdef.nft");
        std::fs::write(&path, nft).expect("write script");
        sh(&format!(
            "ip netns exec {scratch} nft -f {}",
            path.display()
        ));
        let loaded = sh(&format!("ip netns exec {scratch} nft list ruleset"));
        sh(&format!("ip netns del {scratch}"));
        assert_eq!(zero_counters(&loaded), want, "the script loaded by nft");
    }
    assert_gone(&name);
}

#[test]
fn host_ipv4_lists_as_docker_29_writes_it() {
    if !root_or_skip("host_ipv4_lists_as_docker_29_writes_it") {
        return;
    }
    let name;
    {
        let lab = up("nftsnat");
        name = lab.name.clone();
        let got = zero_counters(&ruleset(&lab, "hsnat"));
        let want = expected(
            &[&direct_access("172.17.0.2")],
            &[
                "oifname != \"docker0\" ip saddr 172.17.0.0/16 counter packets 0 bytes 0 snat to 192.168.49.41 comment \"SNAT\"",
            ],
        );
        assert_eq!(got, want, "hsnat's ruleset:\n{got}");

        // The rule translates: the server sees the host_ipv4 address, not the primary one.
        let server = Acceptor::start(&lab.ns("srv"), "192.168.49.5:9002");
        let (ok, failed) = connect_many(&lab.ns("s1"), "192.168.49.5:9002", 5, secs(5));
        let seen = server.finish();
        assert_eq!((ok.len(), failed.len()), (5, 0), "{failed:?}");
        assert!(
            seen.iter().all(|p| p.ip().to_string() == "192.168.49.41"),
            "{seen:?}"
        );
        let listed = ruleset(&lab, "hsnat");
        let snat = &chain_rules(&listed, "nat-postrouting-out__docker0")[0];
        assert_eq!(packets(snat), 5, "one packet per connection: {snat}");
    }
    assert_gone(&name);
}

/// A host with a user-defined network whose NAT is Docker's `host_ipv4` (`snat` to one
/// address), beside the default bridge.
const NETWORK_LAB: &str = r#"
name = "nftnet"

[lans.lan]
subnet = "192.168.49.0/24"

[hosts.srv]
lan = "lan"
addresses = ["192.168.49.5"]

[hosts.h]
lan = "lan"
addresses = ["192.168.49.60", "192.168.49.61"]
[hosts.h.docker]
firewall = "nftables"
[hosts.h.docker.networks.x]
bridge = "br-x"
subnet = "172.18.0.0/16"
nat = { snat = ["192.168.49.61"] }

[containers.a]
host = "h"
network = "x"

[containers.d]
host = "h"
"#;

/// A second network adds one element per map (nft lists them sorted by name) and its four
/// chains after docker0's, and its `host_ipv4` rule is Docker's `snat to ADDR comment "SNAT"`
/// (docker-nftables.md section 4); each container gets its own bridge's direct-access drop.
#[test]
fn a_host_ipv4_network_lists_as_docker_29_writes_it() {
    if !root_or_skip("a_host_ipv4_network_lists_as_docker_29_writes_it") {
        return;
    }
    let name;
    {
        let file = temp_lab("nftnet", NETWORK_LAB);
        let lab = LabGuard::up(&file, &unique_name("nftnet"));
        name = lab.name.clone();
        let got = zero_counters(&ruleset(&lab, "h"));
        let elements = |map: &str| {
            format!(
                "\t\telements = {{ \"br-x\" : jump {map}__br-x,\n\t\t\t     \"docker0\" : jump {map}__docker0 }}\n"
            )
        };
        let mut want = expected(
            &[
                "ip daddr 172.18.0.2 iifname != \"br-x\" counter packets 0 bytes 0 drop comment \"DROP DIRECT ACCESS\"",
                &direct_access("172.17.0.2"),
            ],
            &[
                "oifname != \"docker0\" ip saddr 172.17.0.0/16 counter packets 0 bytes 0 masquerade comment \"MASQUERADE\"",
            ],
        );
        for map in [
            "filter-forward-in",
            "filter-forward-out",
            "nat-postrouting-in",
            "nat-postrouting-out",
        ] {
            let one = format!("\t\telements = {{ \"docker0\" : jump {map}__docker0 }}\n");
            assert!(want.contains(&one), "{map} in the template");
            want = want.replacen(&one, &elements(map), 1);
        }
        let br_x = "\n\tchain filter-forward-in__br-x {
\t\tct state established,related counter packets 0 bytes 0 accept
\t\tiifname \"br-x\" counter packets 0 bytes 0 accept comment \"ICC\"
\t\tcounter packets 0 bytes 0 drop comment \"UNPUBLISHED PORT DROP\"
\t}

\tchain filter-forward-out__br-x {
\t\tct state established,related counter packets 0 bytes 0 accept
\t\tcounter packets 0 bytes 0 accept comment \"OUTGOING\"
\t}

\tchain nat-postrouting-in__br-x {
\t}

\tchain nat-postrouting-out__br-x {
\t\toifname != \"br-x\" ip saddr 172.18.0.0/16 counter packets 0 bytes 0 snat to 192.168.49.61 comment \"SNAT\"
\t}
}
table ip6";
        want = want.replacen("\t}\n}\ntable ip6", &format!("\t}}\n{br_x}"), 1);
        assert_eq!(got, want, "h's ruleset:\n{got}");

        // Each network leaves as its own address: a through host_ipv4, d through masquerade.
        let server = Acceptor::start(&lab.ns("srv"), "192.168.49.5:9003");
        let (ok_a, failed_a) = connect_many(&lab.ns("a"), "192.168.49.5:9003", 3, secs(5));
        let (ok_d, failed_d) = connect_many(&lab.ns("d"), "192.168.49.5:9003", 2, secs(5));
        let seen = server.finish();
        assert_eq!((ok_a.len(), failed_a.len()), (3, 0), "{failed_a:?}");
        assert_eq!((ok_d.len(), failed_d.len()), (2, 0), "{failed_d:?}");
        let mut by_source: BTreeMap<String, usize> = BTreeMap::new();
        for p in &seen {
            *by_source.entry(p.ip().to_string()).or_default() += 1;
        }
        assert_eq!(
            by_source,
            BTreeMap::from([("192.168.49.60".into(), 2), ("192.168.49.61".into(), 3)]),
            "{seen:?}"
        );
    }
    assert_gone(&name);
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// The wall through the nftables layout, with a port range of 100 so it is quick: 150 connects
/// from two containers to one server address and port, 100 establish and 50 time out; an SNAT
/// pool of two addresses with the same range holds 200 of 260. The NAT rules' counters count
/// one packet per connection that got a translation.
#[test]
fn the_wall_and_its_fix_through_the_nftables_layout() {
    if !root_or_skip("the_wall_and_its_fix_through_the_nftables_layout") {
        return;
    }
    let name;
    {
        let lab = up("nftwall");
        name = lab.name.clone();
        // (host, containers, connects per container, capacity, server port)
        let forms = [
            ("hports", ["x1", "x2"], 75usize, 100usize, 9007u16),
            ("hpool", ["y1", "y2"], 130, 200, 9008),
        ];
        let servers: Vec<Acceptor> = forms
            .iter()
            .map(|f| Acceptor::start(&lab.ns("srv"), &format!("192.168.49.5:{}", f.4)))
            .collect();
        let bursts: Vec<_> = forms
            .iter()
            .flat_map(|&(_, cs, n, _, port)| cs.map(|c| (c, n, port)))
            .map(|(c, n, port)| {
                let ns = lab.ns(c);
                std::thread::spawn(move || {
                    connect_many(&ns, &format!("192.168.49.5:{port}"), n, secs(6))
                })
            })
            .collect();
        let results: Vec<(Vec<TcpStream>, Vec<io::Error>)> = bursts
            .into_iter()
            .map(|t| t.join().expect("burst thread"))
            .collect();

        for (i, (&(host, cs, n, capacity, _), server)) in forms.iter().zip(servers).enumerate() {
            let mine = &results[2 * i..2 * i + 2];
            let ok: usize = mine.iter().map(|(ok, _)| ok.len()).sum();
            let failed: Vec<&io::Error> = mine.iter().flat_map(|(_, f)| f).collect();
            let wanted = cs.len() * n;
            eprintln!(
                "nftables: {host}: {ok} of {wanted} established, {} timed out",
                failed.len()
            );
            assert_eq!((ok, failed.len()), (capacity, wanted - capacity), "{host}");
            assert!(
                failed.iter().all(|e| e.kind() == io::ErrorKind::TimedOut),
                "{host}: a full NAT drops SYNs without an answer: {failed:?}"
            );
            let seen: Vec<SocketAddr> = server.finish();
            let mut per_addr: BTreeMap<String, usize> = BTreeMap::new();
            for p in &seen {
                *per_addr.entry(p.ip().to_string()).or_default() += 1;
            }
            eprintln!("nftables: {host}: the server saw {per_addr:?}");
            assert_eq!(seen.len(), capacity, "{host}");

            // The translating rules count each connection's first packet once per rule that
            // translated it (the tcp rule with the port range), and every retried SYN of the
            // connects that found no port.
            let listed = ruleset(&lab, host);
            let nat = chain_rules(&listed, "nat-postrouting-out__docker0");
            eprintln!("nftables: {host}: {nat:#?}");
            assert!(nat[0].contains("ip protocol tcp"), "{nat:?}");
            assert!(
                packets(&nat[0]) >= capacity as u64,
                "{host}: the tcp rule counted {} packets for {capacity} connections",
                packets(&nat[0])
            );
            let ct = &chain_rules(&listed, "filter-forward-out__docker0")[1];
            assert!(
                packets(ct) >= wanted as u64,
                "{host}: OUTGOING counts the SYNs: {ct}"
            );
        }
        drop(results);
    }
    assert_gone(&name);
}

/// `nat = "none"` is Docker's routed gateway mode: no DROP DIRECT ACCESS for the container
/// (which would drop the server's replies before conntrack sees them) and ICMP accepted; the
/// container reaches another host with its own address.
#[test]
fn nat_none_is_the_routed_gateway_mode_and_reaches_the_server() {
    if !root_or_skip("nat_none_is_the_routed_gateway_mode_and_reaches_the_server") {
        return;
    }
    let name;
    {
        let lab = up("nftnone");
        name = lab.name.clone();
        let listed = ruleset(&lab, "hnone");
        assert_eq!(
            chain_rules(&listed, "raw-PREROUTING"),
            Vec::<String>::new(),
            "{listed}"
        );
        assert_eq!(
            zero_counters(&chain_rules(&listed, "filter-forward-in__docker0").join("\n")),
            "ct state established,related counter packets 0 bytes 0 accept\n\
             ip protocol icmp counter packets 0 bytes 0 accept comment \"ICMP\"\n\
             iifname \"docker0\" counter packets 0 bytes 0 accept comment \"ICC\"\n\
             counter packets 0 bytes 0 drop comment \"UNPUBLISHED PORT DROP\"\n"
        );
        assert_eq!(
            chain_rules(&listed, "nat-postrouting-out__docker0"),
            Vec::<String>::new()
        );
        let server = Acceptor::start(&lab.ns("srv"), "192.168.49.5:9001");
        let (ok, failed) = connect_many(&lab.ns("n1"), "192.168.49.5:9001", 10, secs(5));
        let seen = server.finish();
        assert_eq!((ok.len(), failed.len()), (10, 0), "{failed:?}");
        assert!(
            seen.iter().all(|p| p.ip().to_string() == "172.20.0.2"),
            "{seen:?}"
        );
    }
    assert_gone(&name);
}

/// A misspelt backend is refused at its place, with the allowed values.
#[test]
fn an_unknown_backend_is_refused_with_the_allowed_ones() {
    let file = temp_lab(
        "nftbad",
        &LAB_TEXT.replacen("firewall = \"nftables\"", "firewall = \"nftable\"", 1),
    );
    let out = common::lab(&["check", file.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    let line = LAB_TEXT
        .lines()
        .position(|l| l == "firewall = \"nftables\"")
        .expect("a firewall line")
        + 1;
    assert!(
        err.contains(&format!(
            "nftbad.toml:{line}:12: error: unknown firewall backend `nftable`"
        )),
        "{err}"
    );
    assert!(
        err.contains("did you mean \"nftables\"?") && err.contains("\"iptables-nft\""),
        "{err}"
    );
}
