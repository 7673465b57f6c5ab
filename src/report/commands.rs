//! The lab as the commands a reader of the article would type: `ip`, `nft` and `sysctl`, in
//! the order `lab up` does the same things over netlink. `lab` itself never runs them; this is
//! for following along by hand, and for comparing.

use std::fmt::Write as _;

use crate::lab::plan::{Container, Host, Lan, Plan};
use crate::nat::rules::nft_script;

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
    for host in &plan.hosts {
        host_commands(&mut s, plan, host);
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
    let ns = &lan.netns;
    let _ = writeln!(
        s,
        "\n# LAN {} ({}): a bridge in a namespace of its own",
        lan.name, lan.subnet
    );
    let _ = writeln!(s, "ip netns add {ns}");
    let _ = writeln!(s, "ip -n {ns} link set lo up");
    let _ = writeln!(s, "ip -n {ns} link add {} type bridge", lan.bridge);
    let _ = writeln!(s, "ip -n {ns} link set {} up", lan.bridge);
}

fn host_commands(s: &mut String, plan: &Plan, host: &Host) {
    let ns = &host.netns;
    let lan = plan.lan(host.lan);
    let _ = writeln!(s, "\n# host {}: eth0 on LAN {}", host.name, lan.name);
    let _ = writeln!(s, "ip netns add {ns}");
    let _ = writeln!(s, "ip -n {ns} link set lo up");
    let _ = writeln!(
        s,
        "ip -n {} link add {} type veth peer name {} netns {ns}",
        lan.netns, host.lan_port, host.nic
    );
    let _ = writeln!(
        s,
        "ip -n {} link set {} master {} up",
        lan.netns, host.lan_port, lan.bridge
    );
    for ip in &host.addresses {
        let _ = writeln!(
            s,
            "ip -n {ns} addr add {ip}/{} dev {}",
            host.prefix_len, host.nic
        );
    }
    let _ = writeln!(s, "ip -n {ns} link set {} up", host.nic);
    for sc in &host.sysctls {
        let _ = writeln!(
            s,
            "ip netns exec {ns} sysctl -qw {}=\"{}\"",
            sc.key, sc.value
        );
    }
    if let Some(d) = &host.docker {
        let _ = writeln!(
            s,
            "# what dockerd does on this host: forwarding, {} and its NAT rules",
            d.bridge
        );
        let _ = writeln!(s, "ip netns exec {ns} sysctl -qw net.ipv4.ip_forward=1");
        let _ = writeln!(s, "ip -n {ns} link add {} type bridge", d.bridge);
        let _ = writeln!(
            s,
            "ip -n {ns} addr add {}/{} dev {}",
            d.gateway,
            d.subnet.prefix_len(),
            d.bridge
        );
        let _ = writeln!(s, "ip -n {ns} link set {} up", d.bridge);
        let _ = writeln!(s, "ip netns exec {ns} nft -f - <<'NFT'");
        s.push_str(&nft_script(d));
        if !s.ends_with('\n') {
            s.push('\n');
        }
        let _ = writeln!(s, "NFT");
    }
}

fn container_commands(s: &mut String, plan: &Plan, c: &Container) {
    let host = plan.host(c.host);
    let Some(d) = &host.docker else { return };
    let ns = &c.netns;
    let _ = writeln!(s, "\n# container {} on {}", c.name, host.name);
    let _ = writeln!(s, "ip netns add {ns}");
    let _ = writeln!(s, "ip -n {ns} link set lo up");
    let _ = writeln!(
        s,
        "ip -n {} link add {} type veth peer name eth0 netns {ns}",
        host.netns, c.veth
    );
    let _ = writeln!(
        s,
        "ip -n {} link set {} master {} up",
        host.netns, c.veth, d.bridge
    );
    let _ = writeln!(s, "ip -n {ns} link set eth0 address {}", c.mac);
    let _ = writeln!(
        s,
        "ip -n {ns} addr add {}/{} dev eth0",
        c.address,
        d.subnet.prefix_len()
    );
    let _ = writeln!(s, "ip -n {ns} link set eth0 up");
    let _ = writeln!(s, "ip -n {ns} route add default via {}", d.gateway);
    for sc in &c.sysctls {
        let _ = writeln!(
            s,
            "ip netns exec {ns} sysctl -qw {}=\"{}\"",
            sc.key, sc.value
        );
    }
}
