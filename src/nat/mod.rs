//! NAT like Docker's: the rules, the kernel's translation table, and predictions of what the kernel will do.

pub mod conntrack;
pub mod firewall;
pub mod form;
pub mod paths;
pub mod predict;
pub mod view;

use anyhow::{Context as _, Result};

use crate::lab::netlink::run_in_netns;
use crate::lab::plan::{HostId, Plan};

/// Hosts with a docker bridge: those that can translate.
pub fn docker_hosts(plan: &Plan) -> Vec<HostId> {
    (0..plan.hosts.len())
        .map(HostId)
        .filter(|&id| plan.host(id).docker.is_some())
        .collect()
}

/// Reads each host's conntrack table and statistics and builds its NAT view.
pub fn read_views(
    plan: &Plan,
    hosts: &[HostId],
    predictions: &[paths::HostPrediction],
) -> Result<Vec<view::NatView>> {
    hosts
        .iter()
        .map(|&id| {
            let host = plan.host(id);
            let (flows, stats) = run_in_netns(&host.netns, || -> Result<_> {
                Ok((conntrack::dump()?, conntrack::stats()?))
            })?
            .with_context(|| format!("read the conntrack table of host {}", host.name))?;
            Ok(view::build(plan, id, &flows, stats, predictions))
        })
        .collect()
}
