//! What one Docker network's NAT is doing, from its host's conntrack table (one per namespace,
//! shared by the host's networks: an entry belongs to the network whose subnet holds its
//! original source): per NAT path the source ports in use
//! against the path's capacity, per container the address the kernel chose (beside the one
//! predicted), the kernel's count of SYNs dropped for want of a port, sample translations, and
//! the article's 4-tuple proof (one translated port serving several destinations at once).
//! Pure: the caller reads the table (`conntrack`) and the plan.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddrV4};

use serde::Serialize;

use super::conntrack::{Flow, Stats};
use super::form::HostNat;
use super::paths::HostPrediction;
use super::predict::{NatAddresses, VmPorts};
use crate::lab::plan::{DEFAULT_BRIDGE_NETWORK, HostId, NetworkId, Plan};

const IPPROTO_TCP: u8 = 6;
/// Translations listed as examples.
const SAMPLES: usize = 5;

#[derive(Debug, Clone, Serialize)]
pub struct NatView {
    pub host: String,
    /// The Docker network (`bridge` for the default bridge).
    pub network: String,
    pub nat: HostNat,
    /// Entries in this namespace's conntrack table (all of the host's networks), and the
    /// global limit each namespace has.
    pub entries: u64,
    pub max: u32,
    pub paths: Vec<PathView>,
    pub containers: Vec<ContainerChoice>,
    /// The namespace's counters: shared by the host's networks, as the table is.
    pub stats: Stats,
    pub samples: Vec<Translation>,
    /// A translated source port in use towards several destinations, with those entries.
    pub shared_port: Option<SharedPort>,
    /// Containers the cloud's NAT gave no ports (GCP's `nat_allocation_failed`): dropped.
    pub unallocated: usize,
}

/// One NAT path as the kernel holds it.
#[derive(Debug, Clone, Serialize)]
pub struct PathView {
    pub translated: Ipv4Addr,
    pub dst: SocketAddrV4,
    /// The VM's own block when the path is one VM's (GCP, Azure).
    pub vm_ports: Option<VmPorts>,
    /// Distinct translated source ports in use on this path (any TCP state holds its port).
    pub ports_used: u64,
    pub capacity: u32,
    /// True only when every port of the path is in use: probing for the last free ports of a
    /// large range is random, so a path can drop SYNs a little before it is full, but it is not
    /// called exhausted until its count equals its capacity.
    pub exhausted: bool,
    /// Established connections predicted for this path by the plan, if it is one.
    pub predicted: Option<u64>,
}

/// Which translated address the kernel picked for a container's connections to one destination.
#[derive(Debug, Clone, Serialize)]
pub struct ContainerChoice {
    pub container: String,
    pub address: Ipv4Addr,
    pub dst: SocketAddrV4,
    /// Observed translated addresses with how many connections use each.
    pub observed: Vec<(Ipv4Addr, u64)>,
    pub predicted: Option<Ipv4Addr>,
    /// Observed differs from predicted: a bug to report.
    pub mismatch: bool,
}

/// `container ip:port -> translated ip:port -> destination`, as in the article.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Translation {
    pub from: SocketAddrV4,
    pub translated: SocketAddrV4,
    pub to: SocketAddrV4,
}

#[derive(Debug, Clone, Serialize)]
pub struct SharedPort {
    pub translated: SocketAddrV4,
    pub entries: Vec<Translation>,
}

fn translation(f: &Flow) -> Translation {
    Translation {
        from: f.orig_src,
        translated: f.translated_source(),
        to: f.orig_dst,
    }
}

/// Builds the view of `network` of `host` from the host's conntrack `flows` and `stats`;
/// `None` when the host has no such network. A host without Docker is viewed as its default
/// bridge would be, translating nothing: its whole table.
pub fn build(
    plan: &Plan,
    host: HostId,
    network: NetworkId,
    flows: &[Flow],
    stats: Stats,
    predictions: &[HostPrediction],
) -> Option<NatView> {
    let h = plan.host(host);
    let (net, nat, name) = match &h.docker {
        Some(d) => {
            let net = d.network(network)?;
            (Some(net), HostNat::of(h, net), net.name.to_string())
        }
        None if network == NetworkId::DEFAULT_BRIDGE => (
            None,
            HostNat::untranslated(h),
            DEFAULT_BRIDGE_NETWORK.to_owned(),
        ),
        None => return None,
    };
    let prediction = predictions
        .iter()
        .find(|p| p.host == host && p.network == network);
    let capacity = net.map_or_else(
        || super::predict::path_capacity(None),
        |n| super::paths::path_capacity(h, n),
    );
    // Where each VM has its own block, a path is the block's: which block a translated port
    // lies in says whose it is.
    let vms: Vec<Ipv4Addr> = plan
        .containers_on(host, network)
        .map(|c| c.address)
        .collect();
    let (blocks, unallocated): (Vec<VmPorts>, usize) = match nat.model(&vms).map(|m| m.addresses) {
        Some(NatAddresses::PerVm { blocks, .. }) => {
            let none = blocks.iter().filter(|b| b.1.is_none()).count();
            (blocks.into_iter().filter_map(|b| b.1).collect(), none)
        }
        _ => (Vec::new(), 0),
    };
    let block_of = |ip: Ipv4Addr, port: u16| {
        blocks
            .iter()
            .find(|b| b.address == ip && (b.first..=b.last).contains(&port))
            .copied()
    };
    let tcp: Vec<&Flow> = flows
        .iter()
        .filter(|f| {
            f.proto == IPPROTO_TCP && net.is_none_or(|n| n.subnet.contains(f.orig_src.ip()))
        })
        .collect();
    let translated: Vec<&Flow> = tcp.iter().copied().filter(|f| f.is_translated()).collect();

    // (translated address, destination, first port of the VM's block or 0) -> ports in use.
    type PathKey = (u32, SocketAddrV4, u16);
    let mut ports: BTreeMap<PathKey, (Option<VmPorts>, BTreeSet<u16>)> = BTreeMap::new();
    for f in &translated {
        let t = f.translated_source();
        let block = block_of(*t.ip(), t.port());
        ports
            .entry((u32::from(*t.ip()), f.orig_dst, block.map_or(0, |b| b.first)))
            .or_insert_with(|| (block, BTreeSet::new()))
            .1
            .insert(t.port());
    }
    let paths = ports
        .into_iter()
        .map(|((ip, dst, _), (vm_ports, used))| {
            let translated = Ipv4Addr::from(ip);
            let ports_used = used.len() as u64;
            PathView {
                translated,
                dst,
                vm_ports,
                ports_used,
                capacity,
                exhausted: ports_used >= u64::from(capacity),
                predicted: prediction
                    .and_then(|p| {
                        p.prediction
                            .path_at(translated, dst, vm_ports.map_or(0, |b| b.first))
                    })
                    .map(|p| p.established),
            }
        })
        .collect();

    Some(NatView {
        host: h.name.to_string(),
        network: name,
        nat,
        entries: u64::from(stats.entries),
        max: stats.max,
        paths,
        containers: container_choices(plan, host, network, &tcp, prediction),
        samples: translated
            .iter()
            .take(SAMPLES)
            .map(|f| translation(f))
            .collect(),
        shared_port: shared_port(&translated),
        unallocated,
        stats,
    })
}

fn container_choices(
    plan: &Plan,
    host: HostId,
    network: NetworkId,
    tcp: &[&Flow],
    prediction: Option<&HostPrediction>,
) -> Vec<ContainerChoice> {
    let mut out = Vec::new();
    for c in plan.containers_on(host, network) {
        let mut per_dst: BTreeMap<SocketAddrV4, BTreeMap<Ipv4Addr, u64>> = BTreeMap::new();
        for f in tcp.iter().filter(|f| *f.orig_src.ip() == c.address) {
            *per_dst
                .entry(f.orig_dst)
                .or_default()
                .entry(*f.translated_source().ip())
                .or_default() += 1;
        }
        // Addresses this container is predicted to leave from towards any destination: where
        // its flows share local ports, the kernel may reuse one of those (`address_exact`).
        let elsewhere: BTreeSet<Ipv4Addr> = prediction
            .into_iter()
            .flat_map(|p| p.prediction.flows.iter())
            .filter(|f| f.src == c.address)
            .map(|f| f.translated)
            .collect();
        for (dst, seen) in per_dst {
            let flow = prediction.and_then(|p| p.prediction.flow(c.address, dst));
            let predicted = flow.map(|f| f.translated);
            let observed: Vec<(Ipv4Addr, u64)> = seen.into_iter().collect();
            // An exact prediction names the one address; otherwise a reused translation towards
            // another destination is the kernel's documented behaviour, not a mismatch.
            // Addresses taken in turn: any of them is as predicted.
            let mismatch = flow.is_some_and(|f| {
                observed.iter().any(|(a, _)| {
                    *a != f.translated
                        && !f.in_turn.contains(a)
                        && (f.address_exact || !elsewhere.contains(a))
                })
            });
            out.push(ContainerChoice {
                container: c.name.to_string(),
                address: c.address,
                dst,
                observed,
                predicted,
                mismatch,
            });
        }
    }
    out
}

/// The translated port used towards the most destinations (at least two), with its entries.
fn shared_port(translated: &[&Flow]) -> Option<SharedPort> {
    let mut by_port: BTreeMap<SocketAddrV4, Vec<&Flow>> = BTreeMap::new();
    for f in translated {
        by_port.entry(f.translated_source()).or_default().push(f);
    }
    let (port, flows) = by_port
        .into_iter()
        .filter(|(_, fs)| {
            fs.iter()
                .map(|f| f.orig_dst.ip())
                .collect::<BTreeSet<_>>()
                .len()
                > 1
        })
        .max_by_key(|(_, fs)| fs.len())?;
    Some(SharedPort {
        translated: port,
        entries: flows.into_iter().map(translation).collect(),
    })
}
