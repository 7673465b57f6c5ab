//! `lab new NAME`: a commented starter lab file that `lab check` accepts, written to NAME.toml
//! (or `-o PATH`), never over an existing file.

use std::io::{ErrorKind, Write as _};
use std::path::PathBuf;

use anyhow::{Context as _, Result};

use crate::error::invalid;
use crate::lab::plan::Name;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The lab's name (letters, digits, `-`, `_`, `.`); the file is NAME.toml.
    pub name: String,
    /// Write the lab file here instead of NAME.toml in the current directory.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    // `lab new my-lab.toml` (or `labs/my-lab.toml`) means the lab my-lab in that file.
    let as_path = std::path::Path::new(&args.name);
    let (name, default_file) = match args.name.strip_suffix(".toml") {
        Some(_) => (
            as_path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default(),
            args.name.clone(),
        ),
        None => (args.name.as_str(), format!("{}.toml", args.name)),
    };
    let name = Name::new(name).map_err(|e| invalid(format!("lab name: {e}")))?;
    let path = args.output.unwrap_or_else(|| PathBuf::from(default_file));
    let shown = path.display().to_string();
    let mut file = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            return Err(invalid(format!(
                "{shown} exists already; `lab new` never overwrites a file (remove it, or \
                 choose another path with -o)"
            )));
        }
        Err(e) => return Err(e).with_context(|| format!("create {shown}")),
    };
    file.write_all(starter(&name, &shown).as_bytes())
        .with_context(|| format!("write {shown}"))?;
    super::log::status!(
        "wrote {shown}: lab {name}. Next: `lab check {shown}`, then `sudo lab run {shown}`."
    );
    Ok(())
}

/// The starter lab: the article's cross-host experiment in miniature (two containers behind
/// Docker's MASQUERADE, a server on another host), every key explained.
pub fn starter(name: &Name, file: &str) -> String {
    STARTER
        .replace("{name}", name.as_str())
        .replace("{file}", file)
}

const STARTER: &str = r#"# A network lab for `lab`: hosts, LANs, Docker bridges and containers in Linux network
# namespaces, and a workload of long-lived TCP connections through Docker's NAT.
#
#   lab check {file}         validate it and show the topology and NAT paths (no root)
#   sudo lab run {file}      build it, run the server and clients, report, tear down
#   sudo lab up {file}       build it and leave it running; then:
#   sudo lab shell {name} c1   a shell inside container c1 (`exit` to leave)
#   sudo lab down {name}     remove it
#
# Every key is described by `lab schema` (a JSON Schema: editors such as Even Better TOML
# complete and check keys with it).

name = "{name}"    # every namespace is named {name}-<node>
description = """Two containers behind Docker's MASQUERADE on one host open 100 connections
each to a server on another host."""

# An L2 segment joining hosts: a bridge in a namespace of its own.
[lans.lan]
subnet = "192.168.49.0/24"

# A machine: a namespace with eth0 on its LAN. The first address is the primary one, which
# Docker's MASQUERADE uses.
[hosts.client-host]
lan = "lan"
addresses = ["192.168.49.6"]

# Docker's default bridge network on this host (implied by containers; these are the
# defaults). nat may also be "none", { snat = ["192.168.49.6"] } for a pool of the host's own
# addresses, or { masquerade = true, ports = "40000-40299" } for a smaller port budget; add
# random_fully = true to either table to draw every port at random (kube-proxy's
# --random-fully). Or the host plays a cloud's NAT, leaving from its own addresses:
[hosts.client-host.docker]
bridge = "docker0"
subnet = "172.17.0.0/16"
nat = "masquerade"
# nat = { profile = "aws-nat-gateway" }     # 55,000 per address and destination, addresses in turn
# nat = { profile = "gcp-cloud-nat", min_ports_per_vm = 64 }   # a block of ports per container
# nat = { profile = "azure-lb-outbound" }   # ports per container by how many there are
# How this host's Docker writes its rules: "iptables-nft" (the default) or "nftables"
# (Docker 29's native backend, daemon.json "firewall-backend").
firewall = "iptables-nft"

# A user-defined network beside docker0 (`docker network create`): Docker's host_ipv4 is one
# address per network, so this is how a real Docker host gets another source address. A
# container group joins it with `network = "egress"`; add "192.168.49.7" to the host's
# addresses first.
# [hosts.client-host.docker.networks.egress]
# subnet = "172.18.0.0/16"
# nat = { snat = ["192.168.49.7"] }

[hosts.server-host]
lan = "lan"
addresses = ["192.168.49.5"]

# Containers c1 and c2 on client-host's docker bridge, addressed from 172.17.0.2 in order.
[containers.c]
host = "client-host"
replicas = 2
# Per-namespace sysctls (net.* only), set inside each container: give up a connect after
# 3 SYNs.
sysctls = { "net.ipv4.tcp_syn_retries" = "1" }

# A server that accepts and holds connections, on every address of its host (`lab run`).
[servers.srv]
host = "server-host"
port = 9000
# Your own server instead of the built-in one ({port}, {process}, {processes}, {node}, {lab}
# are filled in, and set as LAB_* variables); it runs as the user who ran sudo, else nobody.
# command = ["/opt/bench/server", "-l", "0.0.0.0:{port}"]
# processes = 4            # copies sharing the port (SO_REUSEPORT)
# user = "nobody"

# A client in each container: the i-th container connects to connect[i % len].
[clients.load]
containers = ["c"]
connect = ["192.168.49.5:9000"]
connections = 100          # per container
ping_interval = "10s"      # each connection sends a ping this often
# Your own load tester instead ({target}, {target_host}, {target_port}, {connections} = this
# process's share, {container}, ...), or the built-in client's pace per container:
# command = ["/opt/bench/client", "-rip", "{target_host}", "-n", "{connections}"]
# processes = 2
# rate = 5000              # new connects per second
# in_flight = 4096         # connects in progress at once
# connect_timeout = "3s"

# How `lab run` paces the run; its flags (--settle, --timeout, --hold) override each.
# [run]
# settle = "3s"
# timeout = "5m"
# hold = "30s"             # keep the connections open after the ramp; "forever": until Ctrl-C

# What `lab run` checks at the end; it exits 1 when this does not hold.
[expect]
established = 200          # or a range: { min = 150, max = 200 }

# Nothing outside the lab's namespaces changes, unless listed here: global limits `lab run`
# may raise when the workload needs more than the machine has (it says so and restores them
# at teardown). Without this, a lab too big for them is refused. A third,
# "net.netfilter.nf_conntrack_buckets", only makes a big lab faster: it is never required.
# tcp_tables = "shared" keeps the kernel's default: every namespace on the host's one TCP
# established-hash, where busy ones otherwise get their own (to compare the two).
# [machine]
# raise = ["fs.file-max", "net.netfilter.nf_conntrack_max"]
# tcp_tables = "shared"
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{LoadOptions, Source, load};

    #[test]
    fn the_starter_loads_without_warnings() {
        let name = Name::new("my-lab").expect("name");
        let text = starter(&name, "my-lab.toml");
        let loaded = load(
            &Source::new("my-lab.toml", text.clone()),
            &LoadOptions::default(),
        )
        .unwrap_or_else(|d| panic!("starter rejected: {d:?}"));
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        assert_eq!(loaded.plan.name.as_str(), "my-lab");
        assert_eq!(loaded.plan.containers.len(), 2);
        assert!(text.contains("sudo lab shell my-lab c1"));
        assert!(
            !text.contains("{name}") && !text.contains("{file}"),
            "placeholders left"
        );
        // The commented `[machine]` table works as written once uncommented.
        let uncommented = text
            .replace("# [machine]\n# raise", "[machine]\nraise")
            .replace(
                "\n# tcp_tables = \"shared\"\n",
                "\ntcp_tables = \"shared\"\n",
            );
        let loaded = load(
            &Source::new("my-lab.toml", uncommented),
            &LoadOptions::default(),
        )
        .unwrap_or_else(|d| panic!("uncommented [machine] rejected: {d:?}"));
        assert_eq!(loaded.plan.may_raise.len(), 2);
        assert_eq!(loaded.plan.tcp_tables, crate::lab::plan::TcpTables::Shared);

        // Each commented cloud profile, and random_fully, works as written in place of
        // `nat = "masquerade"`.
        let forms: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# nat = "))
            .filter(|l| l.starts_with("{ profile"))
            .map(|l| l.split('#').next().unwrap_or(l).trim())
            .collect();
        assert_eq!(forms.len(), 3, "{forms:?}");
        let mut tried = forms.clone();
        tried.push(r#"{ masquerade = true, random_fully = true }"#);
        tried.push(r#"{ snat = ["192.168.49.6"], random_fully = true }"#);
        for form in tried {
            let with = text.replace("nat = \"masquerade\"\n", &format!("nat = {form}\n"));
            assert_ne!(with, text, "{form}");
            load(&Source::new("my-lab.toml", with), &LoadOptions::default())
                .unwrap_or_else(|d| panic!("starter with nat = {form} rejected: {d:?}"));
        }
    }
}
