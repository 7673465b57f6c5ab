//! `lab list`: the labs that have a record, their state and their nodes.

use anyhow::Result;

use serde_json::json;

use crate::lab::netlink::netns_exists;
use crate::lab::plan::{DockerNet, NetnsName};
use crate::lab::state::{LabState, Phase, Record};
use crate::nat::form::NatKind;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print as JSON: an array of labs, each with its status, namespaces, and nodes (LANs, hosts,
    /// containers, servers) with their namespaces and addresses.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> Result<()> {
    let mut labs = Vec::new();
    for name in Record::list()? {
        if let Ok(r) = Record::open(&name) {
            labs.push(r.state);
        }
    }
    if args.json {
        let doc: Vec<_> = labs.iter().map(lab_json).collect();
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    if labs.is_empty() {
        println!("no labs are up");
        return Ok(());
    }
    for s in &labs {
        let file = s
            .file
            .as_ref()
            .map(|f| format!("  ({})", f.display()))
            .unwrap_or_default();
        println!("{}  {}{file}", s.lab, status(s));
        for r in &s.raised {
            println!(
                "  raised {} from {} to {} (restored when the lab goes)",
                r.limit, r.before, r.set
            );
        }
        for n in &s.nodes() {
            let present = netns_exists(&NetnsName::from_state(n.netns.clone()));
            println!(
                "  {:<10} {:<16} {:<28} {}{}",
                n.kind,
                n.name,
                n.netns,
                n.addresses.join(", "),
                if present { "" } else { "  [namespace missing]" }
            );
        }
    }
    Ok(())
}

/// One lab as `lab list --json` shows it. Field names are stable: scripts read them.
///
/// `nodes` holds every LAN, host, container and server with the namespace it lives in and its
/// addresses; `present` says whether that namespace exists right now.
fn lab_json(s: &LabState) -> serde_json::Value {
    let plan = &s.plan;
    let present = |ns: &NetnsName| netns_exists(ns);
    let lans = plan.lans.iter().map(|lan| {
        json!({
            "name": lan.name, "kind": "lan", "netns": lan.netns, "present": present(&lan.netns),
            "addresses": [], "subnet": lan.subnet, "bridge": lan.bridge,
        })
    });
    let hosts = plan.hosts.iter().map(|h| {
        let network = |d: &DockerNet| {
            json!({
                "name": d.name, "bridge": d.bridge, "subnet": d.subnet, "gateway": d.gateway,
                "nat": NatKind::of(&d.nat), "nat_rule": d.nat,
            })
        };
        // The default bridge's fields at the top, as before networks; the others beside them.
        let docker = h.docker.as_ref().map(|d| {
            let mut v = network(&d.default_bridge);
            v["firewall"] = json!(d.firewall);
            v["networks"] = d.networks.iter().map(network).collect();
            v
        });
        json!({
            "name": h.name, "kind": "host", "netns": h.netns, "present": present(&h.netns),
            "addresses": h.addresses, "lan": plan.lan(h.lan).name, "nic": h.nic,
            "prefix_len": h.prefix_len, "sysctls": h.sysctls, "docker": docker,
        })
    });
    let containers = plan.containers.iter().map(|c| {
        json!({
            "name": c.name, "kind": "container", "netns": c.netns, "present": present(&c.netns),
            "addresses": [c.address], "group": c.group, "host": plan.host(c.host).name,
            "network": plan.network_of(c).map(|n| &n.name),
            "mac": c.mac, "veth": c.veth, "sysctls": c.sysctls,
        })
    });
    let servers = plan.servers.iter().map(|srv| {
        let host = plan.host(srv.host);
        json!({
            "name": srv.name, "kind": "server", "netns": host.netns,
            "present": present(&host.netns), "addresses": host.addresses, "host": host.name,
            "port": srv.port,
        })
    });
    let nodes: Vec<_> = lans.chain(hosts).chain(containers).chain(servers).collect();
    let clients: Vec<_> = plan
        .clients
        .iter()
        .map(|g| {
            let containers: Vec<_> = g
                .containers
                .iter()
                .map(|&c| &plan.container(c).name)
                .collect();
            json!({
                "name": g.name, "containers": containers, "connect": g.connect,
                "connections": g.connections, "ping_interval_s": g.ping_interval.as_secs_f64(),
            })
        })
        .collect();
    json!({
        "lab": s.lab,
        "status": status(s),
        "state": state_word(s),
        "live": s.is_live(),
        "file": s.file,
        "phase": s.phase,
        "owner_pid": s.owner.map(|o| o.pid),
        "created": s.created,
        "namespaces": s.namespaces,
        "agents": s.agents.iter().map(|a| a.pid).collect::<Vec<_>>(),
        "raised": s.raised,
        "nodes": nodes,
        "clients": clients,
    })
}

/// The status as one word for scripts: the phase, or `left-behind` when nobody owns the lab.
fn state_word(s: &LabState) -> &'static str {
    match (s.phase, s.is_live()) {
        (Phase::Up, _) => "up",
        (_, false) => "left-behind",
        (Phase::Building, true) => "building",
        (Phase::Running, true) => "running",
        (Phase::TearingDown, true) => "tearing-down",
    }
}

fn status(s: &LabState) -> String {
    let owner = s.owner.map(|o| o.pid);
    match (s.phase, s.is_live()) {
        (Phase::Up, _) => "up".into(),
        (phase, true) => format!("{} by pid {}", phase_word(phase), owner.unwrap_or(0)),
        (phase, false) => format!("left behind while {} (run `lab clean`)", phase_word(phase)),
    }
}

fn phase_word(p: Phase) -> &'static str {
    match p {
        Phase::Building => "being built",
        Phase::Up => "up",
        Phase::Running => "running",
        Phase::TearingDown => "being torn down",
    }
}
