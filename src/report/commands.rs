//! The lab as the commands a reader of the article would type: `ip`, `nft` and `sysctl`, in
//! the order `lab up` does the same things over netlink. `lab` itself never runs them; this is
//! for following along by hand, and for comparing (tests/teaching.rs runs it and compares what
//! it builds with what `lab up` builds, namespace by namespace).
//!
//! Every name comes after its keyword (`dev X`, `name X`), so a node named like an `ip` keyword
//! or its abbreviation (`n`, `help`, `up`) is read as a name. Addresses get `brd +`, the
//! broadcast address `lab up` (like Docker) sets.

use std::fmt::Write as _;

use crate::lab::netlink::NETNS_DIR;
use crate::lab::plan::{CHILD_EHASH_SYSCTL, Container, Endpoint, HostId, Lan, Plan, Sysctl};
use crate::nat::firewall::nft_script;

pub fn script(plan: &Plan) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "#!/bin/sh");
    let _ = writeln!(
        s,
        "# lab {}: the same lab by hand, with iproute2, nft and sysctl (as root).",
        plan.name
    );
    let _ = writeln!(s, "set -e");
    for lan in &plan.lans {
        lan_commands(&mut s, lan);
    }
    for i in 0..plan.hosts.len() {
        host_commands(&mut s, plan, HostId(i), &plan.endpoints_of(HostId(i)));
    }
    for c in &plan.containers {
        container_commands(&mut s, plan, c);
    }
    let _ = writeln!(
        s,
        "\n# To remove it all (the links, addresses, routes and rules go with the namespaces):"
    );
    let names: Vec<String> = plan
        .namespaces()
        .iter()
        .rev()
        .map(|n| n.to_string())
        .collect();
    let _ = writeln!(
        s,
        "# for ns in {}; do ip netns del $ns; done",
        names.join(" ")
    );
    s
}

fn lan_commands(s: &mut String, lan: &Lan) {
    let ns = q(lan.netns.as_str());
    let br = q(lan.bridge.as_str());
    let _ = writeln!(
        s,
        "\n# LAN {} ({}): a bridge in a namespace of its own",
        lan.name, lan.subnet
    );
    let _ = writeln!(s, "ip netns add {ns}");
    let _ = writeln!(s, "ip -n {ns} link set dev lo up");
    let _ = writeln!(
        s,
        "ip -n {ns} link add name {br} address {} type bridge",
        lan.mac
    );
    let _ = writeln!(s, "ip -n {ns} link set dev {br} up");
}

fn host_commands(s: &mut String, plan: &Plan, id: HostId, endpoints: &[Endpoint]) {
    let host = plan.host(id);
    let ns = q(host.netns.as_str());
    let nic = q(host.nic.as_str());
    let lan = plan.lan(host.lan);
    let lan_ns = q(lan.netns.as_str());
    let port = q(host.lan_port.as_str());
    let _ = writeln!(s, "\n# host {}: eth0 on LAN {}", host.name, lan.name);
    match plan.host_ehash(id) {
        Some(n) => {
            let _ = writeln!(
                s,
                "# its own TCP established-hash of {n}: a namespace's is sized by its creator's \
                 {CHILD_EHASH_SYSCTL}"
            );
            let _ = writeln!(
                s,
                "ip netns exec {lan_ns} sysctl -qw {CHILD_EHASH_SYSCTL}={n}"
            );
            let _ = writeln!(s, "nsenter --net={NETNS_DIR}/{lan_ns} ip netns add {ns}");
        }
        None => {
            let _ = writeln!(s, "ip netns add {ns}");
        }
    }
    if let Some(n) = plan.containers_ehash(id) {
        let _ = writeln!(
            s,
            "ip netns exec {ns} sysctl -qw {CHILD_EHASH_SYSCTL}={n}  # its containers' tables"
        );
    }
    let _ = writeln!(s, "ip -n {ns} link set dev lo up");
    let _ = writeln!(
        s,
        "ip -n {lan_ns} link add name {port} type veth peer name {nic} netns {ns}"
    );
    let _ = writeln!(
        s,
        "ip -n {lan_ns} link set dev {port} master {} up",
        q(lan.bridge.as_str())
    );
    for ip in &host.addresses {
        let _ = writeln!(
            s,
            "ip -n {ns} addr add {ip}/{} brd + dev {nic}",
            host.prefix_len
        );
    }
    let _ = writeln!(s, "ip -n {ns} link set dev {nic} up");
    for r in &host.routes {
        let _ = writeln!(
            s,
            "# containers behind nat = \"none\" leave untranslated: replies go back via their host"
        );
        let _ = writeln!(s, "ip -n {ns} route add {} via {} dev {nic}", r.dst, r.via);
    }
    sysctl_commands(s, &ns, &host.sysctls);
    if let Some(docker) = &host.docker {
        let bridges: Vec<&str> = docker.all_networks().map(|d| d.bridge.as_str()).collect();
        let _ = writeln!(
            s,
            "# what dockerd does on this host: forwarding, {} and its NAT rules",
            bridges.join(", ")
        );
        let _ = writeln!(s, "ip netns exec {ns} sysctl -qw net.ipv4.ip_forward=1");
        for d in docker.all_networks() {
            let br = q(d.bridge.as_str());
            let _ = writeln!(
                s,
                "ip -n {ns} link add name {br} address {} type bridge",
                d.mac
            );
            let _ = writeln!(
                s,
                "ip -n {ns} addr add {}/{} brd + dev {br}",
                d.gateway,
                d.subnet.prefix_len()
            );
            let _ = writeln!(s, "ip -n {ns} link set dev {br} up");
        }
        let _ = writeln!(s, "ip netns exec {ns} nft -f - <<'NFT'");
        s.push_str(&nft_script(docker, endpoints));
        if !s.ends_with('\n') {
            s.push('\n');
        }
        let _ = writeln!(s, "NFT");
    }
}

fn container_commands(s: &mut String, plan: &Plan, c: &Container) {
    let host = plan.host(c.host);
    let Some(d) = plan.network_of(c) else {
        return;
    };
    let ns = q(c.netns.as_str());
    let host_ns = q(host.netns.as_str());
    let veth = q(c.veth.as_str());
    let _ = writeln!(s, "\n# container {} on {}", c.name, host.name);
    if plan.containers_ehash(c.host).is_some() {
        let _ = writeln!(s, "nsenter --net={NETNS_DIR}/{host_ns} ip netns add {ns}");
    } else {
        let _ = writeln!(s, "ip netns add {ns}");
    }
    let _ = writeln!(s, "ip -n {ns} link set dev lo up");
    let _ = writeln!(
        s,
        "ip -n {host_ns} link add name {veth} type veth peer name eth0 netns {ns}"
    );
    let _ = writeln!(
        s,
        "ip -n {host_ns} link set dev {veth} master {} up",
        q(d.bridge.as_str())
    );
    let _ = writeln!(s, "ip -n {ns} link set dev eth0 address {}", c.mac);
    let _ = writeln!(
        s,
        "ip -n {ns} addr add {}/{} brd + dev eth0",
        c.address,
        d.subnet.prefix_len()
    );
    let _ = writeln!(s, "ip -n {ns} link set dev eth0 up");
    let _ = writeln!(s, "ip -n {ns} route add default via {} dev eth0", d.gateway);
    sysctl_commands(s, &ns, &c.sysctls);
}

fn sysctl_commands(s: &mut String, ns: &str, sysctls: &[Sysctl]) {
    for sc in sysctls {
        let _ = writeln!(
            s,
            "ip netns exec {ns} sysctl -qw {}={}",
            q(sc.key()),
            q(sc.value())
        );
    }
}

/// `word` as one shell word: as it is when it needs no quoting (every name a lab validates),
/// else in single quotes.
pub(super) fn q(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.,:/@%+=".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::q;

    #[test]
    fn shell_words() {
        assert_eq!(q("docker0"), "docker0");
        assert_eq!(q("1024 65535"), "'1024 65535'");
        assert_eq!(q("it's"), "'it'\\''s'");
        assert_eq!(q(""), "''");
    }
}
