//! The lab-file loader against bad input: it never panics, whatever the bytes, and each kind of
//! mistake gets its exact message at its exact place. Pure: no root, no kernel.

use lab::lab::{LoadOptions, Source, load};

/// A small deterministic generator (xorshift64*), so a failure reproduces from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn seeds() -> Vec<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/labs");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect()
}

/// Pieces that make mutations likely to reach deep validation rather than stop at syntax.
const TOKENS: &[&str] = &[
    "=",
    "\"",
    "[",
    "]",
    "{",
    "}",
    ",",
    ".",
    "\n",
    "0",
    "-1",
    "65536",
    "4294967296",
    "99999999999999999999",
    "\"192.168.49.5\"",
    "\"300.1.1.1\"",
    "\"10.0.0.0/33\"",
    "\"a/b\"",
    "\"\"",
    "true",
    "[hosts.x]",
    "[containers.y]",
    "replicas = 0",
    "port = 0",
    "nat = { snat = [] }",
    "ports = \"9-1\"",
    "\"1h\"",
    "\"0s\"",
    "é",
    "\u{0}",
    "lan = \"lan\"",
    "host = \"client-host\"",
    "connect = [\"192.168.49.5:0\"]",
    "[expect]\nestablished = { min = 5, max = 1 }",
    "[machine]\nraise = [\"fs.file-max\", \"fs.file-max\"]",
];

fn mutate(rng: &mut Rng, text: &str) -> String {
    let mut s: Vec<char> = text.chars().collect();
    for _ in 0..=rng.below(4) {
        let at = rng.below(s.len() + 1);
        match rng.below(4) {
            0 if !s.is_empty() => {
                let len = rng.below(20).min(s.len() - at.min(s.len()));
                s.drain(at.min(s.len())..at.min(s.len()) + len);
            }
            1 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                s.splice(at..at, t.chars());
            }
            2 if !s.is_empty() => {
                // Duplicate a line-sized chunk elsewhere (duplicate keys, repeated tables).
                let from = rng.below(s.len());
                let chunk: Vec<char> = s[from..(from + 40).min(s.len())].to_vec();
                s.splice(at..at, chunk);
            }
            _ => {
                let c = char::from_u32(rng.below(0x250) as u32).unwrap_or('?');
                s.insert(at, c);
            }
        }
    }
    s.into_iter().collect()
}

#[test]
fn the_loader_never_panics_on_mutated_or_random_input() {
    let seeds = seeds();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let opts = LoadOptions::default();
    for i in 0..20_000 {
        let text = if i % 10 == 9 {
            (0..rng.below(200))
                .map(|_| char::from_u32(rng.below(0x80) as u32).unwrap_or(' '))
                .collect()
        } else {
            mutate(&mut rng, &seeds[i % seeds.len()])
        };
        let source = Source::new("fuzz.toml", text.clone());
        let result = std::panic::catch_unwind(|| load(&source, &opts));
        match result {
            Ok(Ok(_)) => {}
            Ok(Err(diags)) => {
                assert!(
                    diags.iter().any(|d| d.is_error()),
                    "a rejection without an error: {text:?}"
                );
                for d in &diags {
                    // Every diagnostic points inside the file and renders.
                    assert!(d.span.start <= text.len(), "span outside the file: {d:?}");
                    let _ = source.render(d);
                }
            }
            Err(_) => panic!("the loader panicked on case {i}:\n{text}"),
        }
    }
}

/// Each malformed file with its exact first problem: `line:col: message`.
#[test]
fn each_mistake_has_its_message_and_place() {
    const BASE: &str = "name = \"t\"\n[lans.lan]\nsubnet = \"10.0.0.0/24\"\n[hosts.h]\nlan = \"lan\"\naddresses = [\"10.0.0.2\"]\n";
    let cases: &[(&str, &str)] = &[
        ("name = \"t\"\n[lans.lan\n", "2:10: invalid TOML"),
        (
            "name = \"t\"\nlans = 3\n",
            "2:8: wrong type for `lans`: expected a table, found an integer",
        ),
        (
            &format!("{BASE}adress = 1\n"),
            "7:1: unknown key `adress` in [hosts.h]",
        ),
        (
            "name = \"t\"\n[lans.lan]\nsubnet = \"10.0.0.0/24\"\n[hosts.h]\nlan = \"lan\"\n",
            "4:1: missing required key `addresses` in [hosts.h]",
        ),
        (
            "name = \"t\"\n[lans.lan]\nsubnet = \"10.0.0.0/24\"\n[hosts.h]\nlan = \"lna\"\naddresses = [\"10.0.0.2\"]\n",
            "5:7: unknown LAN `lna`",
        ),
        (
            "name = \"t\"\n[lans.lan]\nsubnet = \"10.0.0.1/24\"\n[hosts.h]\nlan = \"lan\"\naddresses = [\"10.0.0.2\"]\n",
            "3:10: subnet `10.0.0.1/24` has host bits set",
        ),
        (
            "name = \"t\"\n[lans.lan]\nsubnet = \"10.0.0.0/24\"\n[hosts.h]\nlan = \"lan\"\naddresses = [\"10.1.0.2\"]\n",
            "6:14: address 10.1.0.2 is outside subnet 10.0.0.0/24 of LAN `lan`",
        ),
        (
            &format!("{BASE}[hosts.g]\nlan = \"lan\"\naddresses = [\"10.0.0.2\"]\n"),
            "9:14: address 10.0.0.2 is already used by host `h`",
        ),
        (
            &format!("{BASE}[containers.c]\nhost = \"h\"\nreplicas = 0\n"),
            "9:12: `replicas = 0`: a group needs at least 1 container",
        ),
        (
            &format!(
                "{BASE}[containers.c]\nhost = \"h\"\nreplicas = 2\naddress = \"172.17.0.9\"\n"
            ),
            "10:11: `address` is only allowed with `replicas = 1`",
        ),
        (
            &format!("{BASE}[containers.c]\nhost = \"h\"\naddress = \"172.17.0.1\"\n"),
            "9:11: address 172.17.0.1 is the docker gateway of host `h`",
        ),
        (
            &format!("{BASE}[servers.s]\nhost = \"h\"\nport = 0\n"),
            "9:8: port 0 is out of range 1-65535",
        ),
        (
            &format!("{BASE}[hosts.h.docker]\nnat = {{ snat = [\"10.0.0.9\"] }}\n"),
            "8:17: 10.0.0.9 is not an address of host `h`",
        ),
        (
            &format!("{BASE}[hosts.h.docker]\nfirewall = \"nftable\"\n"),
            "8:12: unknown firewall backend `nftable`",
        ),
        (
            &format!("{BASE}[hosts.h.docker]\nnat = {{ profile = \"aws\" }}\n"),
            "8:19: unknown NAT profile `aws`",
        ),
        (
            &format!(
                "{BASE}[hosts.h.docker]\nnat = {{ profile = \"gcp-cloud-nat\", min_ports_per_vm = 48 }}\n"
            ),
            "8:55: min_ports_per_vm = 48 is not a power of two from 2 to 32768",
        ),
        (
            &format!(
                "{BASE}[hosts.h.docker]\nnat = {{ profile = \"aws-nat-gateway\", random_fully = true }}\n"
            ),
            "8:53: `random_fully` cannot be set with a `profile`",
        ),
        (
            &format!("{BASE}[hosts.h.docker]\nnat = {{ masquerade = true, random_fully = 1 }}\n"),
            "8:43: wrong type for `random_fully`: expected a boolean, found an integer",
        ),
        (
            &format!(
                "{BASE}[containers.c]\nhost = \"h\"\nnetwork = \"egres\"\n\
                 [hosts.h.docker.networks.egress]\n"
            ),
            "9:11: unknown network `egres` on host `h`",
        ),
        (
            &format!("{BASE}[hosts.h.docker.networks.host]\n"),
            "7:26: `host` is a network every Docker host has already",
        ),
        (
            &format!("{BASE}[hosts.h.docker]\nbridge = \"averyveryverylongbridge\"\n"),
            "8:10: invalid docker bridge name: interface name `averyveryverylongbridge` is 23 bytes; Linux allows at most 15",
        ),
        (
            "name = \"my lab\"\n",
            "1:8: invalid lab name: name `my lab` contains ` `",
        ),
        (
            &format!("{BASE}sysctls = {{ \"fs.file-max\" = \"1\" }}\n"),
            "7:13: sysctl `fs.file-max`",
        ),
        (
            &format!("{BASE}sysctls = {{ \"net.ipv4.ip_local_port_range\" = \"60000 1000\" }}\n"),
            "7:46: invalid value \"60000 1000\" for sysctl `net.ipv4.ip_local_port_range`: the first port, 60000, is larger than the last, 1000",
        ),
        (
            &format!("{BASE}sysctls = {{ \"net.ipv4.ip_local_port_range\" = \"1000 2000\" }}\n"),
            "7:46: invalid value \"1000 2000\" for sysctl `net.ipv4.ip_local_port_range`: the first port, 1000, is below `net.ipv4.ip_unprivileged_port_start` (1024)",
        ),
        (
            &format!("{BASE}sysctls = {{ \"net.ipv4.tcp_syn_retries\" = 0 }}\n"),
            "7:42: invalid value \"0\" for sysctl `net.ipv4.tcp_syn_retries`: it must be an integer from 1 to 127",
        ),
        (
            &format!("{BASE}[machine]\nraise = [\"net.netfilter.nf_conntrack_mx\"]\n"),
            "8:10: `net.netfilter.nf_conntrack_mx` is not a global limit lab can raise",
        ),
        (
            &format!("{BASE}[machine]\nraise = \"fs.file-max\"\n"),
            "8:9: wrong type for `raise`: expected an array of strings, found a string",
        ),
        (
            &format!("{BASE}[machine]\ntcp_tables = \"shard\"\n"),
            "8:14: unknown tcp_tables `shard`",
        ),
        (
            &format!("{BASE}[machine]\ntcp_tables = false\n"),
            "8:14: wrong type for `tcp_tables`: expected a string, found a boolean",
        ),
        (
            &format!("{BASE}[machine]\nlower = []\n"),
            "8:1: unknown key `lower` in [machine]",
        ),
        // What a file may not do outside its lab.
        (
            &format!("{BASE}sysctls = {{ \"net.netfilter.nf_conntrack_max\" = 1 }}\n"),
            "7:13: sysctl `net.netfilter.nf_conntrack_max` cannot be set in a lab namespace",
        ),
        (
            &format!("{BASE}sysctls = {{ \"net.core.rmem_max\" = 1 }}\n"),
            "7:13: sysctl `net.core.rmem_max` cannot be set in a lab namespace",
        ),
        (
            &format!("{BASE}sysctls = {{ \"net.core.netdev_max_backlog\" = 1 }}\n"),
            "7:13: sysctl `net.core.netdev_max_backlog` cannot be set in a lab namespace",
        ),
        (
            &format!("{BASE}sysctls = {{ \"kernel.modules_disabled\" = 1 }}\n"),
            "7:13: sysctl `kernel.modules_disabled` is not per network namespace",
        ),
        (
            "name = \"../etc\"\n",
            "1:8: invalid lab name: name `../etc` must start with a letter or a digit",
        ),
        (
            &format!("{BASE}[containers.\"a/b\"]\nhost = \"h\"\n"),
            "7:13: invalid container name: name `a/b` contains `/`",
        ),
        (
            &format!(
                "{BASE}[containers.c]\nhost = \"h\"\n[servers.s]\nhost = \"h\"\nport = 9000\n[clients.l]\ncontainers = [\"c\"]\nconnect = [\"8.8.8.8:53\"]\nconnections = 1\n"
            ),
            "14:12: 8.8.8.8 is not an address of any host in this lab",
        ),
        (
            &format!(
                "{BASE}[servers.s]\nhost = \"h\"\nport = 9000\ncommand = [\"/nonexistent/lab/server\"]\n"
            ),
            "10:12: `/nonexistent/lab/server` does not exist",
        ),
        (
            &format!(
                "{BASE}[servers.s]\nhost = \"h\"\nport = 9000\ncommand = [\"srv\", \"{{target}}\"]\n"
            ),
            "10:20: `{target}` has no value for a server",
        ),
        (
            &format!(
                "{BASE}[servers.s]\nhost = \"h\"\nport = 9000\ncommand = [\"srv\"]\nuser = \"no-such-user-lab\"\n"
            ),
            "11:8: no user `no-such-user-lab` on this machine",
        ),
    ];
    let mut failures = Vec::new();
    for (text, expected) in cases {
        let source = Source::new("bad.toml", *text);
        let diags = match load(&source, &LoadOptions::default()) {
            Ok(_) => {
                failures.push(format!("accepted, expected `{expected}`:\n{text}"));
                continue;
            }
            Err(d) => d,
        };
        let located: Vec<String> = diags
            .iter()
            .filter(|d| d.is_error())
            .map(|d| {
                let l = source.locate(d);
                format!("{}:{}: {}", l.line, l.column, l.message)
            })
            .collect();
        if !located.iter().any(|l| l.starts_with(expected)) {
            failures.push(format!("expected `{expected}`, got {located:#?}\n{text}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
