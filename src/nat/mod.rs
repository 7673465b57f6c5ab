//! NAT like Docker's: the rules, the kernel's translation table, and predictions of what the kernel will do.

pub mod conntrack;
pub mod firewall;
pub mod form;
pub mod live;
pub mod paths;
pub mod predict;
pub mod view;

use anyhow::{Context as _, Result};

use crate::lab::netlink::run_in_netns;
use crate::lab::plan::{HostId, NetworkId, Plan};

/// Hosts with a docker bridge: those that can translate.
pub fn docker_hosts(plan: &Plan) -> Vec<HostId> {
    (0..plan.hosts.len())
        .map(HostId)
        .filter(|&id| plan.host(id).docker.is_some())
        .collect()
}

/// The networks of `host` a NAT view is made for: those with containers, or the default
/// bridge when none has any (a Docker host without containers still has its rule, and a host
/// without Docker its conntrack table).
pub fn viewed_networks(plan: &Plan, host: HostId) -> Vec<NetworkId> {
    let Some(docker) = &plan.host(host).docker else {
        return vec![NetworkId::DEFAULT_BRIDGE];
    };
    let with: Vec<NetworkId> = docker
        .networks_with_ids()
        .map(|(id, _)| id)
        .filter(|&id| plan.containers_on(host, id).next().is_some())
        .collect();
    if with.is_empty() {
        vec![NetworkId::DEFAULT_BRIDGE]
    } else {
        with
    }
}

/// Reads each host's conntrack table and statistics once (one table per namespace) and builds
/// a NAT view for each of its networks.
pub fn read_views(
    plan: &Plan,
    hosts: &[HostId],
    predictions: &[paths::HostPrediction],
) -> Result<Vec<view::NatView>> {
    let mut views = Vec::new();
    for &id in hosts {
        let host = plan.host(id);
        let (flows, stats) = run_in_netns(&host.netns, || -> Result<_> {
            Ok((conntrack::dump()?, conntrack::stats()?))
        })?
        .with_context(|| format!("read the conntrack table of host {}", host.name))?;
        for network in viewed_networks(plan, id) {
            views.extend(view::build(
                plan,
                id,
                network,
                &flows,
                stats.clone(),
                predictions,
            ));
        }
    }
    Ok(views)
}
