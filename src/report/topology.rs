//! A one-screen picture of a lab: LANs, hosts and their addresses, docker bridges with their NAT
//! rule, containers, servers, clients and expectations. Returned as text; the CLI prints it.

use std::fmt::Write as _;

use crate::lab::plan::{DockerNet, Host, NetworkId, Plan, TcpTables};
use crate::nat::form::{HostNat, NatKind};

pub fn render(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "lab {}", plan.name);
    for line in plan.description.lines() {
        let _ = writeln!(out, "  {line}");
    }
    for (li, lan) in plan.lans.iter().enumerate() {
        let _ = writeln!(
            out,
            "\nlan {}  {}  (netns {})",
            lan.name, lan.subnet, lan.netns
        );
        let hosts: Vec<_> = plan
            .hosts
            .iter()
            .enumerate()
            .filter(|(_, h)| h.lan.0 == li)
            .collect();
        for (hi, (host_id, host)) in hosts.iter().enumerate() {
            let last_host = hi + 1 == hosts.len();
            let (branch, stem) = if last_host {
                ("└─", "   ")
            } else {
                ("├─", "│  ")
            };
            let addrs: Vec<String> = host.addresses.iter().map(ToString::to_string).collect();
            let _ = writeln!(
                out,
                "{branch} host {}  {} {}  (netns {})",
                host.name,
                host.nic,
                addrs.join(", "),
                host.netns
            );
            for r in &host.routes {
                let _ = writeln!(
                    out,
                    "{stem}   route {} via {} (untranslated containers)",
                    r.dst, r.via
                );
            }
            let id = crate::lab::plan::HostId(*host_id);
            let busy = crate::lab::plan::ehash_entries_for(plan.expected_sockets().0[id.0]);
            match (plan.host_ehash(id), plan.containers_ehash(id)) {
                (None, None) if plan.tcp_tables == TcpTables::Shared && busy.is_some() => {
                    let _ = writeln!(
                        out,
                        "{stem}   TCP established-hash: the machine's shared one \
                         ([machine] tcp_tables = \"shared\")"
                    );
                }
                (None, None) => {}
                (own, theirs) => {
                    let size = |n: Option<u32>| {
                        n.map_or("the machine's shared one".to_owned(), |n| {
                            format!("{} buckets of its own", super::count(u64::from(n)))
                        })
                    };
                    let containers = if plan.containers_of(id).next().is_some() {
                        format!("; each of its containers: {}", size(theirs))
                    } else {
                        String::new()
                    };
                    let _ = writeln!(
                        out,
                        "{stem}   TCP established-hash: {}{containers}",
                        size(own)
                    );
                }
            }
            for s in plan.servers.iter().filter(|s| s.host.0 == *host_id) {
                let who = match (&s.command, s.processes) {
                    (None, _) => String::new(),
                    (Some(_), p) => {
                        let n = p.map_or(1, |p| p.get());
                        format!(
                            " (your program, {n} process{})",
                            if n == 1 { "" } else { "es" }
                        )
                    }
                };
                let _ = writeln!(
                    out,
                    "{stem}   server {} listens on :{}{who}",
                    s.name, s.port
                );
            }
            let networks = host
                .docker
                .iter()
                .flat_map(|d| d.networks_with_ids().map(move |(id, n)| (d, id, n)));
            for (docker, network, d) in networks {
                let name = if network == NetworkId::DEFAULT_BRIDGE {
                    String::new()
                } else {
                    format!("  network {}", d.name)
                };
                let _ = writeln!(
                    out,
                    "{stem}   {} {}/{}{name}  nat: {}  firewall: {}",
                    d.bridge,
                    d.gateway,
                    d.subnet.prefix_len(),
                    nat_summary(host, d),
                    docker.firewall.describe()
                );
                let containers: Vec<_> = plan
                    .containers_on(crate::lab::plan::HostId(*host_id), network)
                    .collect();
                for (ci, c) in containers.iter().enumerate() {
                    let twig = if ci + 1 == containers.len() {
                        "└─"
                    } else {
                        "├─"
                    };
                    let _ = writeln!(
                        out,
                        "{stem}   {twig} {} eth0 {}  {}  via {}",
                        c.name, c.address, c.mac, c.veth
                    );
                }
            }
        }
    }
    if !plan.clients.is_empty() {
        let _ = writeln!(out, "\nclients");
        for g in &plan.clients {
            let members: Vec<String> = g
                .containers
                .iter()
                .enumerate()
                .map(|(i, id)| format!("{} -> {}", plan.container(*id).name, g.target_of(i)))
                .collect();
            let _ = writeln!(
                out,
                "  {}: {} connections each: {}",
                g.name,
                g.connections,
                members.join(", ")
            );
        }
    }
    if let Some(e) = plan.expect.established {
        let _ = writeln!(out, "\nexpect established = {e}");
    }
    out
}

/// The NAT rule in words, with the match Docker writes for it.
fn nat_summary(host: &Host, d: &DockerNet) -> String {
    let rule = HostNat::of(host, d);
    match rule.kind() {
        NatKind::None => format!("{rule} (containers leave with their own addresses)"),
        NatKind::Cloud(p) if p.per_vm() => format!(
            "{rule} (a rule per container: ip saddr <container> oifname != \"{}\")",
            d.bridge
        ),
        _ => format!("{rule} (ip saddr {} oifname != \"{}\")", d.subnet, d.bridge),
    }
}
