//! The topology as a graph: Mermaid (renders on GitHub and in many editors) or Graphviz DOT.

use std::fmt::Write as _;

use crate::lab::plan::{NetworkId, Plan};
use crate::nat::form::HostNat;

/// Nodes and edges, independent of the output syntax.
struct Graph {
    /// (id, label, shape: "lan" | "host" | "bridge" | "container")
    nodes: Vec<(String, String, &'static str)>,
    /// (from, to, label)
    edges: Vec<(String, String, String)>,
}

fn build(plan: &Plan) -> Graph {
    let mut g = Graph {
        nodes: Vec::new(),
        edges: Vec::new(),
    };
    for (i, lan) in plan.lans.iter().enumerate() {
        g.nodes.push((
            format!("lan{i}"),
            format!("LAN {}\\n{}", lan.name, lan.subnet),
            "lan",
        ));
    }
    for (i, h) in plan.hosts.iter().enumerate() {
        let addrs: Vec<String> = h.addresses.iter().map(ToString::to_string).collect();
        let servers: Vec<String> = plan
            .servers
            .iter()
            .filter(|s| s.host.0 == i)
            .map(|s| format!("\\nserver {} :{}", s.name, s.port))
            .collect();
        g.nodes.push((
            format!("host{i}"),
            format!("host {}\\n{}{}", h.name, addrs.join(", "), servers.concat()),
            "host",
        ));
        g.edges
            .push((format!("host{i}"), format!("lan{}", h.lan.0), "eth0".into()));
        for (network, d) in h.docker.iter().flat_map(|d| d.networks_with_ids()) {
            let name = if network == NetworkId::DEFAULT_BRIDGE {
                String::new()
            } else {
                format!("\\nnetwork {}", d.name)
            };
            g.nodes.push((
                bridge_node(i, network),
                format!(
                    "{} {}/{}{name}\\nnat {}",
                    d.bridge,
                    d.gateway,
                    d.subnet.prefix_len(),
                    HostNat::of(h, d)
                ),
                "bridge",
            ));
            g.edges
                .push((bridge_node(i, network), format!("host{i}"), String::new()));
        }
    }
    for (i, c) in plan.containers.iter().enumerate() {
        g.nodes.push((
            format!("c{i}"),
            format!("{}\\n{}", c.name, c.address),
            "container",
        ));
        g.edges.push((
            format!("c{i}"),
            bridge_node(c.host.0, c.network),
            c.veth.to_string(),
        ));
    }
    g
}

/// The node id of a host's bridge: `br<host>` for the default bridge (as it always was),
/// `br<host>n<network>` for the others.
fn bridge_node(host: usize, network: NetworkId) -> String {
    if network == NetworkId::DEFAULT_BRIDGE {
        format!("br{host}")
    } else {
        format!("br{host}n{}", network.0)
    }
}

pub fn mermaid(plan: &Plan) -> String {
    let g = build(plan);
    let mut s = String::from("graph LR\n");
    for (id, label, shape) in &g.nodes {
        let label = label.replace("\\n", "<br/>").replace('"', "'");
        let _ = match *shape {
            "lan" => writeln!(s, "  {id}((\"{label}\"))"),
            "bridge" => writeln!(s, "  {id}[/\"{label}\"/]"),
            _ => writeln!(s, "  {id}[\"{label}\"]"),
        };
    }
    for (a, b, label) in &g.edges {
        let _ = if label.is_empty() {
            writeln!(s, "  {a} --- {b}")
        } else {
            writeln!(s, "  {a} ---|{label}| {b}")
        };
    }
    s
}

pub fn dot(plan: &Plan) -> String {
    let g = build(plan);
    let mut s = format!(
        "graph \"{}\" {{\n  rankdir=LR;\n  node [fontname=\"sans-serif\"];\n",
        plan.name
    );
    for (id, label, shape) in &g.nodes {
        let shape = match *shape {
            "lan" => "ellipse",
            "bridge" => "hexagon",
            "container" => "box, style=rounded",
            _ => "box",
        };
        let _ = writeln!(
            s,
            "  {id} [label=\"{}\", shape={shape}];",
            label.replace('"', "'")
        );
    }
    for (a, b, label) in &g.edges {
        let _ = writeln!(s, "  {a} -- {b} [label=\"{label}\"];");
    }
    s.push_str("}\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{LoadOptions, Source, load};

    fn cross_host() -> Plan {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/labs/02-cross-host.toml"
        ))
        .expect("lab file");
        load(&Source::new("02", text), &LoadOptions::default())
            .map_err(|d| format!("{d:?}"))
            .expect("valid")
            .plan
    }

    #[test]
    fn mermaid_has_every_node_and_link() {
        let m = mermaid(&cross_host());
        assert!(m.starts_with("graph LR\n"));
        for needle in [
            "LAN lan",
            "host client-host",
            "docker0 172.17.0.1/16",
            "c1<br/>172.17.0.2",
            "server srv :9000",
        ] {
            assert!(m.contains(needle), "{needle} missing:\n{m}");
        }
        assert_eq!(
            m.matches(" --- ").count() + m.matches(" ---|").count(),
            2 + 1 + 3
        );
    }

    #[test]
    fn dot_is_an_undirected_graph() {
        let d = dot(&cross_host());
        assert!(d.starts_with("graph \"cross-host\" {"));
        assert!(d.trim_end().ends_with('}'));
        assert_eq!(d.matches(" -- ").count(), 6);
    }
}
