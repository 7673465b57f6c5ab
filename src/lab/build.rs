//! Plan -> kernel objects: LAN switches, hosts with their NIC and docker bridge, containers.
//!
//! Everything is created inside the lab's own namespaces, never in the initial one, and each
//! namespace was recorded (see `state`) before this runs, so deleting the recorded namespaces
//! undoes any prefix of this work: a failure or a signal at any await point leaves nothing that
//! teardown cannot find.

use std::collections::HashMap;

use anyhow::{Context as _, Result};
use futures_util::{StreamExt as _, TryStreamExt as _};

use super::fault;
use super::firewall::Firewall;
use super::netlink::{Namespace, Veth};
use super::plan::{CHILD_EHASH_SYSCTL, Container, Endpoint, Host, HostId, IfName, Lan, Plan};

/// Containers built at once. Netlink requests are cheap; this bounds open sockets and fds.
const CONTAINER_CONCURRENCY: usize = 16;

/// A LAN switch that is up: its namespace and bridge index.
struct LanNode {
    netns: Namespace,
    bridge: u32,
}

/// A host that is up: its namespace and, when it runs Docker, each network's bridge index in
/// [`NetworkId`](super::plan::NetworkId) order.
struct HostNode {
    netns: Namespace,
    bridges: Vec<u32>,
    /// Its containers get an established-hash of their own: they are created from it.
    parent_of_containers: bool,
}

/// Builds every object of `plan`, Docker hosts' rules through `firewall`. The namespaces must
/// be recorded before this is called.
pub async fn build(plan: &Plan, firewall: &dyn Firewall) -> Result<()> {
    let mut lans = Vec::with_capacity(plan.lans.len());
    for lan in &plan.lans {
        tracing::info!(netns = %lan.netns, subnet = %lan.subnet, "build lan {}", lan.name);
        lans.push(
            build_lan(lan)
                .await
                .with_context(|| format!("build lan {}", lan.name))?,
        );
        fault::pause("up:namespace").await;
    }
    let mut hosts = Vec::with_capacity(plan.hosts.len());
    for (i, host) in plan.hosts.iter().enumerate() {
        let lan = &lans[host.lan.0];
        let endpoints = plan.endpoints_of(HostId(i));
        tracing::info!(
            netns = %host.netns,
            addresses = ?host.addresses,
            docker = host.docker.is_some(),
            "build host {}",
            host.name
        );
        let ehash = Ehash {
            own: plan.host_ehash(HostId(i)),
            containers: plan.containers_ehash(HostId(i)),
        };
        hosts.push(
            build_host(host, &endpoints, lan, firewall, ehash)
                .await
                .with_context(|| format!("build host {}", host.name))?,
        );
    }
    fault::pause("up:containers").await;
    if !plan.containers.is_empty() {
        tracing::info!(
            containers = plan.containers.len(),
            at_once = CONTAINER_CONCURRENCY,
            "build containers"
        );
    }
    futures_util::stream::iter(&plan.containers)
        .map(|c| {
            let host = &hosts[c.host.0];
            async move {
                build_container(plan, c, host)
                    .await
                    .with_context(|| format!("build container {}", c.name))
            }
        })
        .buffer_unordered(CONTAINER_CONCURRENCY)
        .try_collect::<()>()
        .await
}

async fn build_lan(lan: &Lan) -> Result<LanNode> {
    let netns = Namespace::create(&lan.netns)?;
    netns.loopback_up().await?;
    let bridge = netns.add_bridge(&lan.bridge, lan.mac).await?;
    Ok(LanNode { netns, bridge })
}

/// The established-hash sizes of a host's namespace and of its containers' (`None`: the
/// machine's shared table).
#[derive(Clone, Copy)]
struct Ehash {
    own: Option<u32>,
    containers: Option<u32>,
}

async fn build_host(
    host: &Host,
    endpoints: &[Endpoint],
    lan: &LanNode,
    firewall: &dyn Firewall,
    ehash: Ehash,
) -> Result<HostNode> {
    // A table of its own: created from the LAN's namespace, sized by the LAN's child setting.
    let netns = match ehash.own {
        Some(n) => {
            lan.netns.write_sysctl(CHILD_EHASH_SYSCTL, &n.to_string())?;
            Namespace::create_from(&host.netns, &lan.netns)?
        }
        None => Namespace::create(&host.netns)?,
    };
    // Its containers are created from it, with theirs.
    if let Some(n) = ehash.containers {
        netns.write_sysctl(CHILD_EHASH_SYSCTL, &n.to_string())?;
    }
    netns.loopback_up().await?;
    // The NIC: eth0 in the host, its peer a port of the LAN bridge named after the host.
    let nic = Veth {
        name: &host.nic,
        netns: &netns,
        mac: None,
    };
    lan.netns
        .add_veth(&host.lan_port, Some(lan.bridge), &nic)
        .await?;
    let eth0 = netns.link_index(&host.nic).await?;
    // The first address added is the primary one, which MASQUERADE picks.
    for &ip in &host.addresses {
        netns
            .add_address(eth0, &host.nic, ip, host.prefix_len)
            .await?;
    }
    netns.set_up(eth0, host.nic.as_str()).await?;
    for r in &host.routes {
        netns.add_route(r.dst, r.via, eth0).await?;
    }
    fault::pause("up:links").await;
    for s in &host.sysctls {
        tracing::debug!(netns = %host.netns, "sysctl {} = {}", s.key(), s.value());
        netns.write_sysctl(s.key(), s.value())?;
    }
    let bridges = match &host.docker {
        None => Vec::new(),
        Some(docker) => {
            // What dockerd does at start: forwarding on, a bridge with the gateway address for
            // each network.
            netns.write_sysctl("net.ipv4.ip_forward", "1")?;
            let mut bridges = Vec::new();
            for net in docker.all_networks() {
                let bridge = netns.add_bridge(&net.bridge, net.mac).await?;
                netns
                    .add_address(bridge, &net.bridge, net.gateway, net.subnet.prefix_len())
                    .await?;
                bridges.push(bridge);
            }
            // Docker's NAT and forward rules, one atomic nftables batch inside the host. The
            // rules for its containers go in with them, before the containers exist.
            tracing::debug!(
                netns = %host.netns,
                firewall = ?docker.firewall,
                "write Docker's nftables rules"
            );
            fault::pause("up:rules").await;
            netns
                .run(|| firewall.apply(docker, endpoints))?
                .with_context(|| format!("write Docker's nftables rules in {}", host.netns))?;
            fault::pause("up:rules-done").await;
            bridges
        }
    };
    Ok(HostNode {
        netns,
        bridges,
        parent_of_containers: ehash.containers.is_some(),
    })
}

async fn build_container(plan: &Plan, c: &Container, host: &HostNode) -> Result<()> {
    let h = plan.host(c.host);
    let network = h.docker.as_ref().and_then(|d| d.network(c.network));
    let (Some(docker), Some(&bridge)) = (network, host.bridges.get(c.network.0)) else {
        anyhow::bail!("host {} has no docker network {}", h.name, c.network.0);
    };
    tracing::debug!(
        netns = %c.netns,
        address = %c.address,
        veth = %c.veth,
        network = %docker.name,
        "build container {} on host {}",
        c.name,
        h.name
    );
    let netns = if host.parent_of_containers {
        Namespace::create_from(&c.netns, &host.netns)?
    } else {
        Namespace::create(&c.netns)?
    };
    netns.loopback_up().await?;
    let eth0_name = IfName::eth0();
    let eth0 = Veth {
        name: &eth0_name,
        netns: &netns,
        mac: Some(c.mac),
    };
    host.netns.add_veth(&c.veth, Some(bridge), &eth0).await?;
    let eth0 = netns.link_index(&eth0_name).await?;
    netns
        .add_address(eth0, &eth0_name, c.address, docker.subnet.prefix_len())
        .await?;
    netns.set_up(eth0, "eth0").await?;
    netns.add_default_route(docker.gateway, eth0).await?;
    for s in &c.sysctls {
        netns.write_sysctl(s.key(), s.value())?;
    }
    Ok(())
}

/// Namespaces of `plan` that exist already, with the lab that owns each when known.
pub fn taken_namespaces(plan: &Plan, owners: &HashMap<String, String>) -> Vec<String> {
    plan.namespaces()
        .into_iter()
        .filter(super::netlink::netns_exists)
        .map(|ns| match owners.get(ns.as_str()) {
            Some(lab) => format!("{ns} (lab {lab})"),
            None => format!("{ns} (not made by lab)"),
        })
        .collect()
}
