//! The NAT paths of a lab, predicted from its plan alone: for each host whose containers run
//! clients, which address each container's connections leave with, which (translated source,
//! destination) path they share, how many ports that path has, and what will be established.
//! Pure; `lab check`, `lab nat` and `lab run` show it.

use std::net::{Ipv4Addr, SocketAddrV4};

use serde::Serialize;

use super::form::HostNat;
use super::predict::{self, FlowPrediction, PathPrediction, PortLimit, Prediction};
use crate::lab::plan::{Container, Host, HostId, Plan};

/// What a host's kernel is predicted to do with its containers' client connections.
#[derive(Debug, Clone, Serialize)]
pub struct HostPrediction {
    pub host: HostId,
    pub name: String,
    /// The NAT rule (serialized in words: "masquerade to 192.168.49.6", "snat to A-B persistent").
    pub nat: HostNat,
    /// Flows through the NAT and flows that are not translated (to the host itself, or with
    /// `nat = "none"`), whose paths are per container and bounded by its own port range.
    pub prediction: Prediction,
}

/// Predictions for every host that has client containers, in host order.
pub fn predict_lab(plan: &Plan) -> Vec<HostPrediction> {
    plan.hosts
        .iter()
        .enumerate()
        .filter_map(|(i, host)| predict_host(plan, HostId(i), host))
        .collect()
}

fn predict_host(plan: &Plan, id: HostId, host: &Host) -> Option<HostPrediction> {
    host.docker.as_ref()?;
    let nat = HostNat::of(host);
    let mut translated = Vec::new();
    let mut local = Vec::new();
    for group in &plan.clients {
        for (i, &cid) in group.containers.iter().enumerate() {
            let c = plan.container(cid);
            if c.host != id {
                continue;
            }
            let dst = group.target_of(i);
            let flow =
                predict::Flow::new(c.name.to_string(), c.address, dst, group.connections.get())
                    .with_local_ports(local_ports(c));
            if nat.translates(host, dst) {
                translated.push(flow);
            } else {
                local.push(flow);
            }
        }
    }
    if translated.is_empty() && local.is_empty() {
        return None;
    }
    let model = nat.model();
    let mut prediction = match &model {
        Some(model) => model.predict(&translated),
        None => Prediction {
            flows: Vec::new(),
            paths: Vec::new(),
            wanted: 0,
            established: 0,
        },
    };
    add_untranslated(&mut prediction, &local);
    Some(HostPrediction {
        host: id,
        name: host.name.to_string(),
        nat,
        prediction,
    })
}

/// Connections one NAT path of `host` can hold: its NAT rule's ([`NatModel::path_capacity`]),
/// or the default when the host translates nothing. The one place capacity is derived from a
/// plan; predictions and `lab nat`'s view both read it.
pub fn path_capacity(host: &Host) -> u32 {
    HostNat::of(host)
        .model()
        .map_or_else(|| predict::path_capacity(None), |m| m.path_capacity())
}

/// Untranslated flows: each (container, destination) is a path of its own whose only limit is
/// the container's local port range.
fn add_untranslated(prediction: &mut Prediction, flows: &[predict::Flow]) {
    for f in flows {
        let wanted = f.connections.min(f.local_ports);
        let over = f.connections > f.local_ports;
        prediction.flows.push(FlowPrediction {
            container: f.container.clone(),
            src: f.src,
            dst: f.dst,
            translated: f.src,
            connections: f.connections,
            local_ports: f.local_ports,
            wanted,
            limit: if over {
                PortLimit::LocalPorts
            } else {
                PortLimit::None
            },
            address_exact: true,
        });
        prediction.paths.push(PathPrediction {
            translated: f.src,
            dst: f.dst,
            containers: vec![f.container.clone()],
            wanted: u64::from(wanted),
            capacity: f.local_ports,
            established: u64::from(wanted),
            overflow: false,
        });
        prediction.wanted += u64::from(wanted);
        prediction.established += u64::from(wanted);
    }
}

/// Ports a container can use towards one destination: the size of its local port range.
pub fn local_ports(c: &Container) -> u32 {
    c.local_ports().size()
}

/// Total predicted established connections of the lab.
pub fn predicted_total(hosts: &[HostPrediction]) -> u64 {
    hosts.iter().map(|h| h.prediction.established).sum()
}

/// The address a container's connections to `dst` are predicted to leave with.
pub fn predicted_source(
    hosts: &[HostPrediction],
    src: Ipv4Addr,
    dst: SocketAddrV4,
) -> Option<Ipv4Addr> {
    hosts
        .iter()
        .find_map(|h| h.prediction.flow(src, dst))
        .map(|f| f.translated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::plan::{KERNEL_LOCAL_PORT_RANGE, PortRange};
    use crate::lab::{LoadOptions, Source, load};

    fn plan(text: &str) -> Plan {
        load(&Source::new("t.toml", text), &LoadOptions::default())
            .map_err(|d| format!("{d:?}"))
            .unwrap()
            .plan
    }

    const BASE: &str = r#"
name = "t"
[lans.lan]
subnet = "192.168.49.0/24"
[hosts.client]
lan = "lan"
addresses = ["192.168.49.6", "192.168.49.7", "192.168.49.8"]
[hosts.server]
lan = "lan"
addresses = ["192.168.49.5", "192.168.49.15", "192.168.49.25"]
[servers.srv]
host = "server"
port = 9000
[containers.c]
host = "client"
replicas = 3
sysctls = { "net.ipv4.ip_local_port_range" = "1024 65535" }
"#;

    #[test]
    fn the_article_wall_one_path_of_64512() {
        let p = plan(&format!(
            "{BASE}[clients.load]\ncontainers = [\"c\"]\nconnect = [\"192.168.49.5:9000\"]\nconnections = 25000\n"
        ));
        let hosts = predict_lab(&p);
        assert_eq!(hosts.len(), 1);
        let pred = &hosts[0].prediction;
        assert_eq!(pred.paths.len(), 1);
        let path = &pred.paths[0];
        assert_eq!(path.translated, Ipv4Addr::new(192, 168, 49, 6));
        assert_eq!(
            (path.wanted, path.capacity, path.established),
            (75_000, 64_512, 64_512)
        );
        assert!(path.overflow);
        assert_eq!(predicted_total(&hosts), 64_512);
        assert_eq!(hosts[0].nat.to_string(), "masquerade to 192.168.49.6");
    }

    #[test]
    fn more_server_addresses_three_paths() {
        let p = plan(&format!(
            "{BASE}[clients.load]\ncontainers = [\"c\"]\nconnect = [\"192.168.49.5:9000\", \"192.168.49.15:9000\", \"192.168.49.25:9000\"]\nconnections = 25000\n"
        ));
        let hosts = predict_lab(&p);
        assert_eq!(hosts[0].prediction.paths.len(), 3);
        assert!(!hosts[0].prediction.overflows());
        assert_eq!(predicted_total(&hosts), 75_000);
    }

    #[test]
    fn same_host_is_not_translated_and_bounded_by_local_ports() {
        let p = plan(&format!(
            "{BASE}[containers.d]\nhost = \"client\"\n[clients.load]\ncontainers = [\"d\"]\nconnect = [\"192.168.49.6:9000\"]\nconnections = 30000\n"
        ));
        let hosts = predict_lab(&p);
        let f = &hosts[0].prediction.flows[0];
        assert_eq!(f.translated, f.src, "no translation to the host itself");
        assert_eq!(f.wanted, 28_232);
        assert_eq!(f.limit, PortLimit::LocalPorts);
        assert_eq!(predicted_total(&hosts), 28_232);
    }

    #[test]
    fn a_pool_uses_the_kernel_hash() {
        let p = plan(&(BASE.replace(
            "[hosts.server]",
            "[hosts.client.docker]\nnat = { snat = [\"192.168.49.6\", \"192.168.49.7\", \"192.168.49.8\"] }\n[hosts.server]",
        ) + "[clients.load]\ncontainers = [\"c\"]\nconnect = [\"192.168.49.5:9000\"]\nconnections = 25000\n"));
        let hosts = predict_lab(&p);
        assert_eq!(
            hosts[0].nat.to_string(),
            "snat to 192.168.49.6-192.168.49.8"
        );
        for f in &hosts[0].prediction.flows {
            let expect = predict::pool_address(
                Ipv4Addr::new(192, 168, 49, 6),
                Ipv4Addr::new(192, 168, 49, 8),
                f.src,
                *f.dst.ip(),
                false,
            );
            assert_eq!(f.translated, expect);
        }
    }

    #[test]
    fn local_ports_come_from_the_plan() {
        let p = plan(&format!(
            "{BASE}[containers.d]\nhost = \"client\"\nsysctls = {{ \"net.ipv4.ip_local_port_range\" = \"32768\\t32867\" }}\n"
        ));
        let ports = |name: &str| {
            let c = p
                .containers
                .iter()
                .find(|c| c.name.as_str() == name)
                .unwrap();
            (c.local_ports(), local_ports(c))
        };
        assert_eq!(ports("c1"), (PortRange::new(1024, 65_535).unwrap(), 64_512));
        assert_eq!(ports("d"), (PortRange::new(32_768, 32_867).unwrap(), 100));
        let p = plan(&BASE.replace(
            "sysctls = { \"net.ipv4.ip_local_port_range\" = \"1024 65535\" }",
            "",
        ));
        let c = &p.containers[0];
        assert_eq!(c.local_ports(), KERNEL_LOCAL_PORT_RANGE);
        assert_eq!(local_ports(c), 28_232);
    }
}
