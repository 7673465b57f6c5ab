//! The search for a cloud's NAT (`lab plan --nat aws-nat-gateway | gcp-cloud-nat |
//! azure-lb-outbound`): each client host plays one NAT gateway of the cloud, its addresses the
//! gateway's, its containers the cloud's VMs, and the published limits ([`crate::lab::cloud`])
//! take the place of the kernel's 64,512 ports per path. The same order of "smallest" as the
//! kernel's plans: fewest gateways (hosts, forced by `nf_conntrack_max` and, for AWS, by 8
//! addresses a gateway), then fewest NAT addresses, then fewest containers; every limit keeps a
//! 16th free ([`path_fill`]) as the kernel's plans do. Pure.
//!
//! - AWS: a path is (address, destination) with 55,000 ports; connections take the addresses
//!   in turn, so a destination's connections split evenly over them. Addresses first (up to
//!   8: the fix that is the gateway owner's), destinations when 8 are not enough.
//! - GCP: a path is one VM's block of `min_ports_per_vm` ports towards one destination; one
//!   NAT IP holds 64,512 / ports VMs. Unless `--ports-per-vm` says, the plan picks the block:
//!   fewest NAT IPs, then fewest VMs, then the smallest power of two that holds each VM's
//!   connections.
//! - Azure: a path is one VM's preallocated ports, which the backend pool size sets (the table
//!   in [`azure_ports_per_vm`]) times the frontend IPs, at most 1,024; fewest frontend IPs,
//!   then the smallest pool that holds N.

use std::num::NonZeroU32;

use anyhow::Result;

use super::spread::{SERVER_CANDIDATES, candidates};
use super::{
    CLIENT_ADDRESSES, DOCKER_LOCAL_PORTS, MOST_HOSTS, Machine, Request, Shape, WIDE_LOCAL_PORTS,
    no_layout, path_fill,
};
use crate::error::invalid;
use crate::lab::cloud::{
    AWS_MAX_ADDRESSES, AZURE_MAX_POOL, CloudProfile, GCP_MAX_PORTS_PER_VM, azure_ports_per_vm,
};

/// Containers one host's Docker bridge takes (a Linux bridge has at most 1,023 ports; the
/// validator refuses more).
const CONTAINERS_PER_BRIDGE: u64 = 1_023;

/// The block sizes GCP allows for static allocation: powers of two, 2 to 32,768.
pub fn gcp_block_sizes() -> impl Iterator<Item = u32> {
    (1..=GCP_MAX_PORTS_PER_VM.trailing_zeros()).map(|b| 1u32 << b)
}

/// VMs one GCP NAT IP holds with blocks of `per_vm`: 64,512 / ports, rounded down.
pub fn gcp_vms_per_address(per_vm: u32) -> u32 {
    CloudProfile::GcpCloudNat.address_ports().size() / per_vm
}

/// How `n` connections spread over `hosts` x `containers`: the most one container holds, and
/// the most one host holds (the remainder goes round the hosts, one container at a time).
fn spread(n: u64, hosts: u64, containers: u64) -> (u64, u64) {
    let t = hosts * containers;
    let (q, r) = (n / t, n % t);
    (q + u64::from(r > 0), containers * q + r.div_ceil(hosts))
}

fn given(v: Option<NonZeroU32>) -> Option<u64> {
    v.map(|v| u64::from(v.get()))
}

/// The requests a profile cannot plan, refused before the search.
fn check_request(req: &Request, profile: CloudProfile) -> Result<()> {
    if let Some(p) = req.ports_per_vm {
        let p = p.get();
        if profile != CloudProfile::GcpCloudNat {
            return Err(invalid(format!(
                "--ports-per-vm is GCP Cloud NAT's min_ports_per_vm; {} {}",
                profile.product(),
                if profile == CloudProfile::AwsNatGateway {
                    "shares each address's 55,000 ports per destination among all VMs"
                } else {
                    "preallocates ports per VM by backend pool size"
                }
            )));
        }
        if !(2..=GCP_MAX_PORTS_PER_VM).contains(&p) || !p.is_power_of_two() {
            return Err(invalid(format!(
                "--ports-per-vm {p}: GCP's min_ports_per_vm is a power of two from 2 to \
                 {GCP_MAX_PORTS_PER_VM} (e.g. {})",
                p.clamp(2, GCP_MAX_PORTS_PER_VM).next_power_of_two()
            )));
        }
    }
    if profile == CloudProfile::AwsNatGateway
        && let Some(m) = req
            .source_addresses
            .filter(|m| m.get() as usize > AWS_MAX_ADDRESSES)
    {
        return Err(invalid(format!(
            "an AWS NAT gateway has at most {AWS_MAX_ADDRESSES} addresses (1 primary, 7 \
             secondary), not {m}: leave --source-addresses out and the plan adds gateways"
        )));
    }
    if let (Some(c), Some(k)) = (req.containers_per_host, req.server_addresses)
        && c < k
    {
        return Err(invalid(format!(
            "{c} containers per host cannot use {k} server addresses: each container connects \
             to one; give at least as many containers (--containers-per-host {k})"
        )));
    }
    if let Some(k) = given(req.server_addresses).filter(|k| *k > SERVER_CANDIDATES as u64) {
        return Err(invalid(format!(
            "{k} server addresses do not fit the lab's LAN ({SERVER_CANDIDATES} at most)"
        )));
    }
    Ok(())
}

/// Finds the smallest layout for `req` through `profile`'s NAT on `machine` (pure).
pub fn search(req: &Request, machine: &Machine, profile: CloudProfile) -> Result<Shape> {
    check_request(req, profile)?;
    let n = req.connections.get();
    let ct = machine.conntrack_usable();
    // A container's local ports towards one destination: Docker's default, unless the
    // request fixes the containers, when the plan may widen them.
    let local = u64::from(if req.containers_per_host.is_some() {
        WIDE_LOCAL_PORTS
    } else {
        DOCKER_LOCAL_PORTS
    });
    for h in n.div_ceil(ct)..=MOST_HOSTS.min(n) {
        let found = match profile {
            CloudProfile::AwsNatGateway => aws(req, n, h, ct, local)?,
            CloudProfile::GcpCloudNat => gcp(req, n, h, ct, local),
            CloudProfile::AzureLbOutbound => azure(req, n, h, ct, local),
        };
        if let Some(shape) = found {
            return Ok(shape);
        }
    }
    Err(no_layout(n, machine))
}

/// The shape once its numbers are known.
fn shape(h: u64, m: u64, k: u64, c: u64, per_container: u64, capacity: u32) -> Shape {
    Shape {
        hosts: h as u32,
        sources: m as u32,
        servers: candidates().into_iter().take(k as usize).collect(),
        containers: c as u32,
        wide_ports: per_container > u64::from(DOCKER_LOCAL_PORTS),
        spread: Vec::new(),
        path_capacity: capacity,
        ports_per_vm: None,
    }
}

/// AWS: `h` gateways, each with m addresses x k destinations of 55,000 ports (planned to
/// 51,563); `None` when `h` gateways cannot hold N.
fn aws(req: &Request, n: u64, h: u64, ct: u64, local: u64) -> Result<Option<Shape>> {
    let capacity = CloudProfile::AwsNatGateway.address_ports().size();
    let fill = u64::from(path_fill(capacity));
    let per_host = n.div_ceil(h);
    let paths = per_host.div_ceil(fill);
    let most = AWS_MAX_ADDRESSES as u64;
    let (m, k) = match (given(req.source_addresses), given(req.server_addresses)) {
        (Some(m), Some(k)) => (m, k),
        (Some(m), None) => (m, paths.div_ceil(m)),
        (None, Some(k)) => (paths.div_ceil(k), k),
        (None, None) => {
            let k = paths.div_ceil(most);
            (paths.div_ceil(k), k)
        }
    };
    if m > most || m * k < paths {
        return Ok(None);
    }
    if k > SERVER_CANDIDATES as u64 {
        return Err(invalid(format!(
            "{k} destinations do not fit the lab's LAN ({SERVER_CANDIDATES} server addresses \
             at most): fewer connections per gateway (a larger nf_conntrack_max is what keeps \
             them on fewer gateways)"
        )));
    }
    if h * m > u64::from(CLIENT_ADDRESSES) {
        return Ok(None);
    }
    let first = per_host.div_ceil(local).max(k);
    let tries: Vec<u64> = match given(req.containers_per_host) {
        Some(c) => vec![c],
        None => (first..=first + 8 * k + 16).collect(),
    };
    for c in tries {
        let (per_container, busiest) = spread(n, h, c);
        if c > CONTAINERS_PER_BRIDGE || per_container == 0 || per_container > local || busiest > ct
        {
            continue;
        }
        // The busiest destination is slot 0 of the first host: ceil(c / k) containers, of
        // which the first of every k hold one more while the remainder lasts; in turn over m
        // addresses.
        let (q, fuller) = (n / (h * c), (n % (h * c)).div_ceil(h));
        let to_one = c.div_ceil(k) * q + fuller.div_ceil(k);
        if to_one.div_ceil(m) <= fill {
            return Ok(Some(shape(h, m, k, c, per_container, capacity)));
        }
    }
    Ok(None)
}

/// GCP: `h` gateways, each with m NAT IPs holding c VMs of a block of P ports, each VM's
/// connections to its one destination at most P less a 16th.
fn gcp(req: &Request, n: u64, h: u64, ct: u64, local: u64) -> Option<Shape> {
    let k = given(req.server_addresses).unwrap_or(1);
    let blocks: Vec<u32> = match req.ports_per_vm {
        Some(p) => vec![p.get()],
        None => gcp_block_sizes().collect(),
    };
    let per_host = n.div_ceil(h);
    // (addresses, containers, block): the smallest wins.
    let mut best: Option<(u64, u64, u32, u64)> = None;
    for p in blocks {
        let cap = u64::from(path_fill(p)).min(local);
        let v = u64::from(gcp_vms_per_address(p));
        let first = per_host.div_ceil(cap).max(k);
        let tries: Vec<u64> = match given(req.containers_per_host) {
            Some(c) => vec![c],
            None => (first..=first + 16).collect(),
        };
        for c in tries {
            let (per_container, busiest) = spread(n, h, c);
            if c > CONTAINERS_PER_BRIDGE
                || per_container == 0
                || per_container > cap
                || busiest > ct
            {
                continue;
            }
            let m = given(req.source_addresses).unwrap_or(c.div_ceil(v));
            if c > m * v || h * m > u64::from(CLIENT_ADDRESSES) {
                continue;
            }
            let better = best.is_none_or(|(bm, bc, bp, _)| (m, c, p) < (bm, bc, bp));
            if better {
                best = Some((m, c, p, per_container));
            }
            break;
        }
    }
    let (m, c, p, per_container) = best?;
    Some(Shape {
        ports_per_vm: Some(p),
        ..shape(h, m, k, c, per_container, p)
    })
}

/// Azure: `h` load balancers, each with m frontend IPs and a backend pool of c VMs, each VM
/// preallocated the table's ports for the pool size times m (at most 1,024).
fn azure(req: &Request, n: u64, h: u64, ct: u64, local: u64) -> Option<Shape> {
    let k = given(req.server_addresses).unwrap_or(1);
    let frontends: Vec<u64> = match given(req.source_addresses) {
        Some(m) => vec![m],
        None => (1..=u64::from(CLIENT_ADDRESSES) / h).collect(),
    };
    let pools: Vec<u64> = match given(req.containers_per_host) {
        Some(c) => vec![c],
        None => (k..=AZURE_MAX_POOL as u64).collect(),
    };
    for m in frontends {
        if h * m > u64::from(CLIENT_ADDRESSES) {
            return None;
        }
        for &c in &pools {
            let Some(p) = azure_ports_per_vm(c as usize, m as usize) else {
                continue;
            };
            let (per_container, busiest) = spread(n, h, c);
            let cap = u64::from(path_fill(p)).min(local);
            if per_container == 0 || per_container > cap || busiest > ct {
                continue;
            }
            return Some(Shape {
                ports_per_vm: Some(p),
                ..shape(h, m, k, c, per_container, p)
            });
        }
    }
    None
}
