//! The NAT paths of a lab, predicted from its plan alone: for each Docker network whose
//! containers run clients (each network has its NAT rule), which address each container's
//! connections leave with, which (translated source,
//! destination) path they share, how many ports that path has, and what will be established.
//! Pure; `lab check`, `lab nat` and `lab run` show it.

use std::net::{Ipv4Addr, SocketAddrV4};

use serde::Serialize;

use super::form::HostNat;
use super::predict::{self, FlowPrediction, PathPrediction, PortLimit, Prediction};
use crate::lab::plan::{Container, DockerNet, Host, HostId, NetworkId, Plan};

/// What a host's kernel is predicted to do with the client connections of the containers on
/// one of its Docker networks.
#[derive(Debug, Clone, Serialize)]
pub struct HostPrediction {
    pub host: HostId,
    pub name: String,
    /// The network, by its index among the host's networks (0: the default bridge).
    pub network: NetworkId,
    /// The network's Docker name (`bridge` for the default bridge).
    pub network_name: String,
    /// The NAT rule (serialized in words: "masquerade to 192.168.49.6", "snat to A-B persistent").
    pub nat: HostNat,
    /// Flows through the NAT and flows that are not translated (to the host itself, or with
    /// `nat = "none"`), whose paths are per container and bounded by its own port range.
    pub prediction: Prediction,
}

/// Predictions for every network that has client containers, in host then network order.
pub fn predict_lab(plan: &Plan) -> Vec<HostPrediction> {
    let mut out = Vec::new();
    for (i, host) in plan.hosts.iter().enumerate() {
        let id = HostId(i);
        let Some(docker) = &host.docker else { continue };
        let start = out.len();
        for (network, net) in docker.networks_with_ids() {
            out.extend(predict_network(plan, id, host, network, net));
        }
        share_paths(&mut out[start..]);
    }
    out
}

fn predict_network(
    plan: &Plan,
    id: HostId,
    host: &Host,
    network: NetworkId,
    net: &DockerNet,
) -> Option<HostPrediction> {
    let nat = HostNat::of(host, net);
    let mut translated = Vec::new();
    let mut local = Vec::new();
    for group in &plan.clients {
        for (i, &cid) in group.containers.iter().enumerate() {
            let c = plan.container(cid);
            if c.host != id || c.network != network {
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
    let vms: Vec<Ipv4Addr> = plan.containers_on(id, network).map(|c| c.address).collect();
    let model = nat.model(&vms);
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
        network,
        network_name: net.name.to_string(),
        nat,
        prediction,
    })
}

/// Networks of one host that translate to the same address share its ports towards a
/// destination: the kernel keeps one conntrack table per namespace and wants each translated
/// tuple unique in it, whichever rule made it (two networks masquerading to the host's one
/// address hit one wall together). Such a path's count is capped across the networks, and
/// shared out in proportion to what each wants.
fn share_paths(preds: &mut [HostPrediction]) {
    let mut keys: Vec<(Ipv4Addr, SocketAddrV4)> = Vec::new();
    for p in preds.iter() {
        for path in &p.prediction.paths {
            let key = (path.translated, path.dst);
            let on = preds
                .iter()
                .filter(|q| q.prediction.path(key.0, key.1).is_some())
                .count();
            if on > 1 && !keys.contains(&key) {
                keys.push(key);
            }
        }
    }
    for (translated, dst) in keys {
        let shares: Vec<(u64, u32)> = preds
            .iter()
            .filter_map(|p| p.prediction.path(translated, dst))
            .map(|path| (path.wanted, path.capacity))
            .collect();
        let wanted: u64 = shares.iter().map(|(w, _)| w).sum();
        // Rules with different port ranges on one address: the smallest bounds for sure.
        let capacity = shares.iter().map(|(_, c)| u64::from(*c)).min().unwrap_or(0);
        if wanted <= capacity {
            continue;
        }
        let mut left = capacity;
        for p in preds.iter_mut() {
            let Some(path) = p
                .prediction
                .paths
                .iter_mut()
                .find(|q| q.translated == translated && q.dst == dst)
            else {
                continue;
            };
            let share = (path.wanted * capacity / wanted.max(1)).min(left);
            left -= share;
            path.established = share;
            path.overflow = true;
            for f in p
                .prediction
                .flows
                .iter_mut()
                .filter(|f| f.translated == translated && f.dst == dst)
            {
                f.limit = match f.limit {
                    PortLimit::NoAllocation => PortLimit::NoAllocation,
                    PortLimit::None | PortLimit::PathPorts => PortLimit::PathPorts,
                    PortLimit::LocalPorts | PortLimit::LocalAndPathPorts => {
                        PortLimit::LocalAndPathPorts
                    }
                };
            }
        }
        // What integer division left over goes to the first network that wants it.
        if left > 0
            && let Some(path) = preds
                .iter_mut()
                .flat_map(|p| p.prediction.paths.iter_mut())
                .find(|q| q.translated == translated && q.dst == dst && q.established < q.wanted)
        {
            path.established += left;
        }
        for p in preds.iter_mut() {
            p.prediction.established = p.prediction.paths.iter().map(|q| q.established).sum();
        }
    }
}

/// Connections one NAT path of network `net` of `host` can hold ([`HostNat::path_capacity`]):
/// the one place capacity is derived from a plan; predictions and `lab nat`'s view both read
/// it.
pub fn path_capacity(host: &Host, net: &DockerNet) -> u32 {
    HostNat::of(host, net).path_capacity()
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
            in_turn: Vec::new(),
            vm_ports: None,
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
            vm_ports: None,
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
    use crate::lab::plan::{KERNEL_LOCAL_PORT_RANGE, NetworkId, PortRange};
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

    /// One network per pool address, the containers spread by hand: three paths, each
    /// predicted under its own network and rule.
    #[test]
    fn one_network_per_address_predicts_per_network() {
        let mut text = BASE.replace("[containers.c]\nhost = \"client\"\nreplicas = 3\n", "");
        text = text.replace(
            "sysctls = { \"net.ipv4.ip_local_port_range\" = \"1024 65535\" }\n",
            "",
        );
        for i in 1..=3 {
            text.push_str(&format!(
                "[hosts.client.docker.networks.n{i}]\nnat = {{ snat = [\"192.168.49.{}\"] }}\n\
                 [containers.c{i}]\nhost = \"client\"\nnetwork = \"n{i}\"\n\
                 sysctls = {{ \"net.ipv4.ip_local_port_range\" = \"1024 65535\" }}\n",
                5 + i
            ));
        }
        text.push_str(
            "[clients.load]\ncontainers = [\"c1\", \"c2\", \"c3\"]\n\
             connect = [\"192.168.49.5:9000\"]\nconnections = 40000\n",
        );
        let hosts = predict_lab(&plan(&text));
        let got: Vec<_> = hosts
            .iter()
            .map(|h| {
                let p = &h.prediction.paths[0];
                (
                    h.network,
                    h.network_name.as_str(),
                    p.translated,
                    p.established,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (NetworkId(1), "n1", Ipv4Addr::new(192, 168, 49, 6), 40_000),
                (NetworkId(2), "n2", Ipv4Addr::new(192, 168, 49, 7), 40_000),
                (NetworkId(3), "n3", Ipv4Addr::new(192, 168, 49, 8), 40_000),
            ]
        );
        assert_eq!(predicted_total(&hosts), 120_000);
    }

    /// Two networks masquerading to the host's one address share its ports: one wall for both,
    /// as one conntrack table holds them.
    #[test]
    fn networks_that_translate_to_one_address_share_its_path() {
        let text = format!(
            "{BASE}[hosts.client.docker.networks.other]\n\
             [containers.d]\nhost = \"client\"\nnetwork = \"other\"\n\
             sysctls = {{ \"net.ipv4.ip_local_port_range\" = \"1024 65535\" }}\n\
             [clients.load]\ncontainers = [\"c1\", \"d\"]\n\
             connect = [\"192.168.49.5:9000\"]\nconnections = 40000\n"
        );
        let hosts = predict_lab(&plan(&text));
        assert_eq!(hosts.len(), 2, "{hosts:#?}");
        for h in &hosts {
            let p = &h.prediction.paths[0];
            assert_eq!(p.translated, Ipv4Addr::new(192, 168, 49, 6));
            assert_eq!((p.wanted, p.capacity), (40_000, 64_512));
            assert!(p.overflow, "{p:?}");
            assert_eq!(h.prediction.flows[0].limit, PortLimit::PathPorts);
        }
        assert_eq!(predicted_total(&hosts), 64_512);
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
