//! Predictions of what the kernel's source NAT will do, computed without asking it.
//!
//! Two questions matter to a lab behind Docker-style NAT:
//!
//! 1. **Which address?** With an SNAT pool (`snat to 10.78.0.10-10.78.0.11`) the kernel picks
//!    the address for a new connection by hashing the original source and destination
//!    addresses ([`pool_address`]). No load balancing is involved: two busy containers can land on
//!    the same pool address while another address idles.
//! 2. **How many connections fit?** Every translated connection needs a distinct
//!    (translated source address, translated source port, destination address, destination port,
//!    protocol) tuple, so a NAT *path* (translated address, destination address, destination
//!    port) holds at most as many connections as there are ports to translate to
//!    ([`path_capacity`]). The container's own `ip_local_port_range` limits it before NAT does.
//!
//! [`NatModel::predict`] combines both for a list of [`Flow`]s.
//!
//! # The kernel code modelled
//!
//! `net/netfilter/nf_nat_core.c` (6.x), `get_unique_tuple` for a source manipulation:
//!
//! 1. If the original source address already lies in the range and its tuple is free, keep it
//!    (never the case for a container behind SNAT/masquerade: its address is not in the range).
//! 2. Otherwise, if another conntrack entry with the same original source (address, port,
//!    protocol) is already translated into the range, reuse *its* translated address and port if
//!    that gives a free tuple (`find_appropriate_src`).
//! 3. Otherwise pick the address with `find_best_ips_proto` — modelled by [`pool_address`] — and
//!    keep the original source port if it lies in the rule's port range (if any) and the
//!    resulting tuple is free, else search the port range (`nf_nat_l4proto_unique_tuple`) —
//!    bounded by [`path_capacity`].
//!
//! Step 2 means the hash is exact for the *first* connection from a given source socket. If a
//! container reaches destinations that hash to different pool addresses, connections that reuse
//! a local port already translated for another destination follow the earlier translation;
//! [`FlowPrediction::address_exact`] flags those flows.
//!
//! Byte order: the kernel hashes addresses as they lie in memory (network byte order) loaded as
//! native `u32`s. The model fixes the target to x86_64, i.e. little-endian loads
//! ([`kernel_word`]); on a big-endian kernel the chosen addresses would differ.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};

use serde::Serialize;

/// `JHASH_INITVAL` from `include/linux/jhash.h` (Bob Jenkins' lookup3 seed).
pub const JHASH_INITVAL: u32 = 0xdead_beef;

/// Conntrack zone of every connection in the labs (the default zone).
pub const LAB_ZONE_ID: u16 = 0;

/// First port the kernel searches when no port range is given and the original source port is
/// at least 1024.
pub const FIRST_UNPRIVILEGED_PORT: u16 = 1024;

/// Ports per NAT path when no port range is given: `65535 - 1024 + 1`.
pub const DEFAULT_PATH_CAPACITY: u32 = 65_535 - FIRST_UNPRIVILEGED_PORT as u32 + 1;

/// The kernel's default `net.ipv4.ip_local_port_range` (32768-60999): how many connections one
/// container can open to one destination (address and port) from automatically chosen ports.
pub const DEFAULT_LOCAL_PORTS: u32 = 60_999 - 32_768 + 1;

/// `__jhash_mix` from `include/linux/jhash.h`.
fn jhash_mix(a: &mut u32, b: &mut u32, c: &mut u32) {
    *a = a.wrapping_sub(*c);
    *a ^= c.rotate_left(4);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a);
    *b ^= a.rotate_left(6);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b);
    *c ^= b.rotate_left(8);
    *b = b.wrapping_add(*a);
    *a = a.wrapping_sub(*c);
    *a ^= c.rotate_left(16);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a);
    *b ^= a.rotate_left(19);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b);
    *c ^= b.rotate_left(4);
    *b = b.wrapping_add(*a);
}

/// `__jhash_final` from `include/linux/jhash.h`.
fn jhash_final(a: &mut u32, b: &mut u32, c: &mut u32) {
    *c ^= *b;
    *c = c.wrapping_sub(b.rotate_left(14));
    *a ^= *c;
    *a = a.wrapping_sub(c.rotate_left(11));
    *b ^= *a;
    *b = b.wrapping_sub(a.rotate_left(25));
    *c ^= *b;
    *c = c.wrapping_sub(b.rotate_left(16));
    *a ^= *c;
    *a = a.wrapping_sub(c.rotate_left(4));
    *b ^= *a;
    *b = b.wrapping_sub(a.rotate_left(14));
    *c ^= *b;
    *c = c.wrapping_sub(b.rotate_left(24));
}

/// The kernel's `jhash2(k, length, initval)`: Jenkins' lookup3 `hashword` over `words`.
///
/// The state starts at `JHASH_INITVAL + (length << 2) + initval` (length in words, arithmetic
/// modulo 2^32); all but the last one to three words go through `__jhash_mix` three at a time,
/// the rest through `__jhash_final`; an empty key returns the initial state unmixed.
pub fn jhash2(words: &[u32], initval: u32) -> u32 {
    // The kernel's length is a u32; `<< 2` drops high bits just like C does.
    let length = words.len() as u32;
    let init = JHASH_INITVAL
        .wrapping_add(length << 2)
        .wrapping_add(initval);
    let (mut a, mut b, mut c) = (init, init, init);

    let mut rest = words;
    while rest.len() > 3 {
        a = a.wrapping_add(rest[0]);
        b = b.wrapping_add(rest[1]);
        c = c.wrapping_add(rest[2]);
        jhash_mix(&mut a, &mut b, &mut c);
        rest = &rest[3..];
    }

    // The switch with fall-through: case 3 adds k[2], case 2 k[1], case 1 k[0], then final.
    if rest.is_empty() {
        return c;
    }
    if let Some(&w) = rest.get(2) {
        c = c.wrapping_add(w);
    }
    if let Some(&w) = rest.get(1) {
        b = b.wrapping_add(w);
    }
    a = a.wrapping_add(rest[0]);
    jhash_final(&mut a, &mut b, &mut c);
    c
}

/// An IPv4 address as the kernel's hash sees it: its four bytes in network order, as they lie
/// in memory, loaded as a native `u32` on a little-endian (x86_64) CPU.
///
/// `10.78.0.10` is therefore `0x0a00_4e0a`, not `0x0a4e_000a`.
pub fn kernel_word(addr: Ipv4Addr) -> u32 {
    u32::from_le_bytes(addr.octets())
}

/// The kernel's `reciprocal_scale(val, ep_ro)`: maps `val` onto `0..ep_ro` as
/// `(val * ep_ro) >> 32` in 64 bits.
fn reciprocal_scale(val: u32, ep_ro: u32) -> u32 {
    ((u64::from(val) * u64::from(ep_ro)) >> 32) as u32
}

/// The pool address the kernel picks for connections from `src` to `dst`.
///
/// This is `find_best_ips_proto` for IPv4 source NAT onto `pool_min..=pool_max`, in the default
/// conntrack zone:
///
/// - a one-address pool (`pool_min == pool_max`, e.g. masquerade) returns it directly;
/// - otherwise `j = jhash2(src.u3, 4, persistent ? 0 : dst.ip ^ zone_id)`, where `src.u3` is the
///   16-byte `union nf_inet_addr` (the IPv4 address in word 0, zeros after) and both addresses are
///   raw network-order words ([`kernel_word`]);
/// - the address is `ntohl(min) + reciprocal_scale(j, ntohl(max) - ntohl(min) + 1)`, in host
///   order, converted back to network order.
///
/// With `persistent` the choice depends on the source address alone. The arithmetic wraps as
/// the kernel's `u32`s do (nft and iptables refuse `pool_min > pool_max`; the full
/// `0.0.0.0-255.255.255.255` range gives a distance of 0 and always `pool_min`).
pub fn pool_address(
    pool_min: Ipv4Addr,
    pool_max: Ipv4Addr,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    persistent: bool,
) -> Ipv4Addr {
    if pool_min == pool_max {
        return pool_min;
    }
    let key = [kernel_word(src), 0, 0, 0];
    let initval = if persistent {
        0
    } else {
        kernel_word(dst) ^ u32::from(LAB_ZONE_ID)
    };
    let j = jhash2(&key, initval);
    let min = u32::from(pool_min);
    let dist = u32::from(pool_max).wrapping_sub(min).wrapping_add(1);
    Ipv4Addr::from(min.wrapping_add(reciprocal_scale(j, dist)))
}

/// Ports per NAT path (translated source IP, destination IP, destination port, protocol): the
/// explicit range's size, or 65535 - 1024 + 1 = 64512 when none is given (the kernel keeps the
/// original source port when free, else searches 1024..=65535 for sources >= 1024).
///
/// A reversed range counts like the kernel counts it (it swaps the bounds).
pub fn path_capacity(ports: Option<(u16, u16)>) -> u32 {
    match ports {
        Some((a, b)) => u32::from(a.max(b)) - u32::from(a.min(b)) + 1,
        None => DEFAULT_PATH_CAPACITY,
    }
}

/// Which source addresses a NAT rule translates to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum NatAddresses {
    /// `masquerade`: the address of the outgoing interface (the host's primary address).
    Masquerade {
        /// The address the kernel masquerades to.
        addr: Ipv4Addr,
    },
    /// `snat to min-max`: a pool of consecutive addresses, chosen per connection by
    /// [`pool_address`].
    Snat {
        /// First address of the pool.
        min: Ipv4Addr,
        /// Last address of the pool (inclusive).
        max: Ipv4Addr,
        /// The `persistent` flag: hash the source only, so a container keeps one address for
        /// every destination.
        persistent: bool,
    },
    /// One rule per address, each new connection taking the next (`numgen inc`): an AWS NAT
    /// gateway with several addresses.
    InTurn { addresses: Vec<Ipv4Addr> },
    /// Each VM (container address) its own address and block of ports, or none: GCP Cloud
    /// NAT's static allocation, Azure's preallocated SNAT ports.
    PerVm {
        blocks: Vec<(Ipv4Addr, Option<VmPorts>)>,
        ports_per_vm: u32,
    },
}

/// A VM's own ports: an address and a block, each port usable once per destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct VmPorts {
    pub address: Ipv4Addr,
    pub first: u16,
    pub last: u16,
}

impl NatAddresses {
    /// The translated source address of a new connection from `src` to `dst` (for addresses
    /// taken in turn, the first; for a VM without ports, its own).
    pub fn translate(&self, src: Ipv4Addr, dst: Ipv4Addr) -> Ipv4Addr {
        match self {
            NatAddresses::Masquerade { addr } => *addr,
            NatAddresses::Snat {
                min,
                max,
                persistent,
            } => pool_address(*min, *max, src, dst, *persistent),
            NatAddresses::InTurn { addresses } => addresses.first().copied().unwrap_or(src),
            NatAddresses::PerVm { blocks, .. } => blocks
                .iter()
                .find(|(vm, _)| *vm == src)
                .and_then(|(_, b)| b.map(|b| b.address))
                .unwrap_or(src),
        }
    }

    /// Whether the address does not depend on the destination (one address, `persistent`, a
    /// VM's own block, or addresses in turn, whose spread the prediction counts itself).
    fn ignores_destination(&self) -> bool {
        match self {
            NatAddresses::Masquerade { .. }
            | NatAddresses::InTurn { .. }
            | NatAddresses::PerVm { .. } => true,
            NatAddresses::Snat {
                min,
                max,
                persistent,
            } => *persistent || min == max,
        }
    }
}

/// A source NAT rule as the predictions need it: the addresses and the optional port range
/// (`masquerade to :20000-29999`, `snat to 10.78.0.10-10.78.0.11:20000-29999`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NatModel {
    /// Where the source address goes.
    pub addresses: NatAddresses,
    /// The explicit source port range, inclusive; `None` for the kernel's default.
    pub ports: Option<(u16, u16)>,
}

impl NatModel {
    /// Masquerade to `addr`, default ports.
    pub fn masquerade(addr: Ipv4Addr) -> Self {
        NatModel {
            addresses: NatAddresses::Masquerade { addr },
            ports: None,
        }
    }

    /// SNAT to the pool `min..=max`, default ports.
    pub fn snat(min: Ipv4Addr, max: Ipv4Addr, persistent: bool) -> Self {
        NatModel {
            addresses: NatAddresses::Snat {
                min,
                max,
                persistent,
            },
            ports: None,
        }
    }

    /// Each new connection takes the next of `addresses` in turn (an AWS NAT gateway's
    /// addresses, `numgen inc`), each with `ports`.
    pub fn in_turn(addresses: Vec<Ipv4Addr>, ports: (u16, u16)) -> Self {
        NatModel {
            addresses: NatAddresses::InTurn { addresses },
            ports: Some(ports),
        }
    }

    /// Each VM (container, by its address) has its own address and block of `ports_per_vm`
    /// ports, or none (GCP drops a VM the addresses cannot hold).
    pub fn per_vm(blocks: Vec<(Ipv4Addr, Option<VmPorts>)>, ports_per_vm: u32) -> Self {
        NatModel {
            addresses: NatAddresses::PerVm {
                blocks,
                ports_per_vm,
            },
            ports: None,
        }
    }

    /// The same rule restricted to source ports `first..=last`.
    pub fn with_ports(self, first: u16, last: u16) -> Self {
        NatModel {
            ports: Some((first, last)),
            ..self
        }
    }

    /// The translated source address of a new connection from `src` to `dst`.
    pub fn translate(&self, src: Ipv4Addr, dst: Ipv4Addr) -> Ipv4Addr {
        self.addresses.translate(src, dst)
    }

    /// Connections one NAT path can hold under this rule ([`path_capacity`]; a VM's block
    /// where each VM has its own).
    pub fn path_capacity(&self) -> u32 {
        match &self.addresses {
            NatAddresses::PerVm { ports_per_vm, .. } => *ports_per_vm,
            _ => path_capacity(self.ports),
        }
    }

    /// The address and block of the VM at `src`, when each VM has its own: `Some(None)` for a
    /// VM that got none.
    fn vm_block(&self, src: Ipv4Addr) -> Option<Option<VmPorts>> {
        match &self.addresses {
            NatAddresses::PerVm { blocks, .. } => Some(
                blocks
                    .iter()
                    .find(|(vm, _)| *vm == src)
                    .and_then(|(_, b)| *b),
            ),
            _ => None,
        }
    }

    /// Predict what the kernel does with `flows` (TCP connections opened from the containers).
    ///
    /// Flows with the same source address and destination are merged (connections added, the
    /// smaller `local_ports` kept, the first container name kept). Flows come back in the order
    /// they first appear; paths are sorted by translated address, destination address and port.
    ///
    /// The numbers are upper bounds for a steady state: the kernel searches ports from a random
    /// offset with a bounded number of attempts (128, then 64, 32, 16 from new offsets), so near
    /// a full path a SYN can be dropped and succeed only on retransmission.
    pub fn predict(&self, flows: &[Flow]) -> Prediction {
        // Merge flows per (source address, destination).
        let mut merged: Vec<Flow> = Vec::new();
        for flow in flows {
            match merged
                .iter_mut()
                .find(|m| m.src == flow.src && m.dst == flow.dst)
            {
                Some(m) => {
                    m.connections = m.connections.saturating_add(flow.connections);
                    m.local_ports = m.local_ports.min(flow.local_ports);
                }
                None => merged.push(flow.clone()),
            }
        }

        let capacity = self.path_capacity();
        let translated: Vec<Ipv4Addr> = merged
            .iter()
            .map(|f| self.translate(f.src, *f.dst.ip()))
            .collect();
        let in_turn: &[Ipv4Addr] = match &self.addresses {
            NatAddresses::InTurn { addresses } => addresses,
            _ => &[],
        };

        // Paths keyed in host order so that they sort like addresses, then by the VM's block
        // (0 where the path is the address's).
        let mut paths: BTreeMap<(u32, u32, u16, u16), PathPrediction> = BTreeMap::new();
        let mut add = |addr: Ipv4Addr, vm_ports: Option<VmPorts>, flow: &Flow, wanted: u64| {
            let key = (
                u32::from(addr),
                u32::from(*flow.dst.ip()),
                flow.dst.port(),
                vm_ports.map_or(0, |b| b.first),
            );
            let path = paths.entry(key).or_insert_with(|| PathPrediction {
                translated: addr,
                dst: flow.dst,
                vm_ports,
                containers: Vec::new(),
                wanted: 0,
                capacity,
                established: 0,
                overflow: false,
            });
            path.wanted += wanted;
            if !path.containers.contains(&flow.container) {
                path.containers.push(flow.container.clone());
            }
        };
        if in_turn.is_empty() {
            for (flow, &addr) in merged.iter().zip(&translated) {
                let wanted = u64::from(flow.connections.min(flow.local_ports));
                match self.vm_block(flow.src) {
                    None => add(addr, None, flow, wanted),
                    Some(Some(b)) => add(b.address, Some(b), flow, wanted),
                    // No ports: no path; its connections are dropped (its flow says so).
                    Some(None) => {}
                }
            }
        } else {
            // One counter per rule hands each new connection the next address, whoever sends
            // it: a destination's connections split evenly over the addresses.
            let n = in_turn.len() as u64;
            let mut dsts: Vec<SocketAddrV4> = Vec::new();
            for f in &merged {
                if !dsts.contains(&f.dst) {
                    dsts.push(f.dst);
                }
            }
            for dst in dsts {
                let to_dst: Vec<&Flow> = merged.iter().filter(|f| f.dst == dst).collect();
                let total: u64 = to_dst
                    .iter()
                    .map(|f| u64::from(f.connections.min(f.local_ports)))
                    .sum();
                for (i, &addr) in in_turn.iter().enumerate() {
                    let share = total / n + u64::from((i as u64) < total % n);
                    for (j, f) in to_dst.iter().enumerate() {
                        add(addr, None, f, if j == 0 { share } else { 0 });
                    }
                }
            }
        }
        for path in paths.values_mut() {
            path.established = path.wanted.min(u64::from(path.capacity));
            path.overflow = path.wanted > u64::from(path.capacity);
        }

        let flows: Vec<FlowPrediction> = merged
            .iter()
            .zip(&translated)
            .map(|(flow, &addr)| {
                let block = self.vm_block(flow.src);
                let unallocated = block == Some(None);
                let path_full = !unallocated
                    && paths
                        .values()
                        .filter(|p| {
                            p.dst == flow.dst
                                && p.containers.contains(&flow.container)
                                && (in_turn.contains(&p.translated) || p.translated == addr)
                        })
                        .any(|p| p.overflow);
                let local_full = flow.connections > flow.local_ports;
                // Step 2 of get_unique_tuple can only disagree with the hash if this source
                // gets different hashed addresses for different destinations.
                let address_exact = self.addresses.ignores_destination()
                    || merged
                        .iter()
                        .zip(&translated)
                        .all(|(other, &other_addr)| other.src != flow.src || other_addr == addr);
                FlowPrediction {
                    container: flow.container.clone(),
                    src: flow.src,
                    dst: flow.dst,
                    translated: addr,
                    in_turn: in_turn.to_vec(),
                    vm_ports: block.flatten(),
                    connections: flow.connections,
                    local_ports: flow.local_ports,
                    wanted: flow.connections.min(flow.local_ports),
                    limit: if unallocated {
                        PortLimit::NoAllocation
                    } else {
                        PortLimit::from_flags(local_full, path_full)
                    },
                    address_exact,
                }
            })
            .collect();

        let paths: Vec<PathPrediction> = paths.into_values().collect();
        Prediction {
            wanted: paths.iter().map(|p| p.wanted).sum(),
            established: paths.iter().map(|p| p.established).sum(),
            flows,
            paths,
        }
    }
}

/// Connections a container opens to one destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Flow {
    /// The container's name, for reports.
    pub container: String,
    /// The container's address (the original source address).
    pub src: Ipv4Addr,
    /// The server (original destination address and port).
    pub dst: SocketAddrV4,
    /// Connections the container tries to hold open at once.
    pub connections: u32,
    /// Local ports the container can use towards one destination: the size of its
    /// `net.ipv4.ip_local_port_range` ([`DEFAULT_LOCAL_PORTS`] by default).
    pub local_ports: u32,
}

impl Flow {
    /// A flow with the kernel's default local port range.
    pub fn new(
        container: impl Into<String>,
        src: Ipv4Addr,
        dst: SocketAddrV4,
        connections: u32,
    ) -> Self {
        Flow {
            container: container.into(),
            src,
            dst,
            connections,
            local_ports: DEFAULT_LOCAL_PORTS,
        }
    }

    /// The same flow with `local_ports` usable local ports.
    pub fn with_local_ports(self, local_ports: u32) -> Self {
        Flow {
            local_ports,
            ..self
        }
    }
}

/// Which port limit stops a flow short of its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PortLimit {
    /// Nothing: every connection is predicted to be established.
    None,
    /// The container runs out of local ports towards the destination (`connect` fails with
    /// `EADDRNOTAVAIL`).
    LocalPorts,
    /// The NAT path runs out of translated ports (SYNs dropped, connections time out).
    PathPorts,
    /// Both: the container is capped by its local ports, and what remains still overflows the
    /// NAT path.
    LocalAndPathPorts,
    /// The cloud's NAT gave the VM no ports (GCP: the NAT addresses are full): every
    /// connection is dropped.
    NoAllocation,
}

impl PortLimit {
    fn from_flags(local: bool, path: bool) -> Self {
        match (local, path) {
            (false, false) => PortLimit::None,
            (true, false) => PortLimit::LocalPorts,
            (false, true) => PortLimit::PathPorts,
            (true, true) => PortLimit::LocalAndPathPorts,
        }
    }
}

/// What the kernel is predicted to do with one flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlowPrediction {
    /// The container's name.
    pub container: String,
    /// The container's address.
    pub src: Ipv4Addr,
    /// The destination.
    pub dst: SocketAddrV4,
    /// The translated source address ([`pool_address`], or the masquerade address; the first
    /// of `in_turn`).
    pub translated: Ipv4Addr,
    /// The addresses its connections take in turn (an AWS NAT gateway's), or empty.
    pub in_turn: Vec<Ipv4Addr>,
    /// The VM's own block of ports (GCP, Azure), if it has one.
    pub vm_ports: Option<VmPorts>,
    /// Connections the container tries to open.
    pub connections: u32,
    /// Local ports it has towards this destination.
    pub local_ports: u32,
    /// Connections that get as far as the NAT: `min(connections, local_ports)`.
    pub wanted: u32,
    /// Which limit binds, if any. Which flows of an overflowing path lose is a race; see
    /// [`PathPrediction`] for the numbers.
    pub limit: PortLimit,
    /// `false` when the container's connections to other destinations hash to a different pool
    /// address: a connection from a local port already translated for another destination
    /// reuses that translation (`find_appropriate_src`), so some of this flow may leave from the
    /// other address.
    pub address_exact: bool,
}

/// One NAT path: connections from one translated address to one destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PathPrediction {
    /// The translated source address.
    pub translated: Ipv4Addr,
    /// The destination address and port.
    pub dst: SocketAddrV4,
    /// The VM's own block when the path is one VM's (GCP, Azure), not the address's.
    pub vm_ports: Option<VmPorts>,
    /// The containers whose flows take this path, in flow order.
    pub containers: Vec<String>,
    /// Connections reaching the NAT on this path (each flow's `wanted`, added up).
    pub wanted: u64,
    /// Connections the path can hold ([`path_capacity`]).
    pub capacity: u32,
    /// Connections predicted established: `min(wanted, capacity)`.
    pub established: u64,
    /// Whether `wanted` exceeds `capacity`.
    pub overflow: bool,
}

/// The predicted outcome of a set of flows through one NAT rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Prediction {
    /// Per (container, destination), in input order.
    pub flows: Vec<FlowPrediction>,
    /// Per NAT path, sorted by translated address, destination address, destination port.
    pub paths: Vec<PathPrediction>,
    /// Connections reaching the NAT, all paths together.
    pub wanted: u64,
    /// Connections predicted established, all paths together.
    pub established: u64,
}

impl Prediction {
    /// The prediction for the flow from `src` to `dst`.
    pub fn flow(&self, src: Ipv4Addr, dst: SocketAddrV4) -> Option<&FlowPrediction> {
        self.flows.iter().find(|f| f.src == src && f.dst == dst)
    }

    /// The prediction for the path from `translated` to `dst` (the first VM's, where each VM
    /// has its own: see [`Self::vm_path`]).
    pub fn path(&self, translated: Ipv4Addr, dst: SocketAddrV4) -> Option<&PathPrediction> {
        self.paths
            .iter()
            .find(|p| p.translated == translated && p.dst == dst)
    }

    /// The prediction for the path from `translated` to `dst` through the VM block holding
    /// translated port `port`, or the address's path when no VM has a block there.
    pub fn path_at(
        &self,
        translated: Ipv4Addr,
        dst: SocketAddrV4,
        port: u16,
    ) -> Option<&PathPrediction> {
        self.paths.iter().find(|p| {
            p.translated == translated
                && p.dst == dst
                && p.vm_ports
                    .is_none_or(|b| (b.first..=b.last).contains(&port))
        })
    }

    /// Whether any path overflows.
    pub fn overflows(&self) -> bool {
        self.paths.iter().any(|p| p.overflow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn sock(s: &str) -> SocketAddrV4 {
        s.parse().unwrap()
    }

    const POOL_MIN: &str = "10.78.0.10";
    const POOL_MAX: &str = "10.78.0.11";

    /// Measured on this machine: pool 10.78.0.10-10.78.0.11, no `persistent`, zone 0.
    const MEASURED: [(&str, &str, &str); 8] = [
        ("172.31.0.2", "192.168.49.10", "10.78.0.11"),
        ("172.31.0.3", "192.168.49.11", "10.78.0.11"),
        ("172.31.0.4", "192.168.49.10", "10.78.0.11"),
        ("172.31.0.5", "192.168.49.11", "10.78.0.10"),
        ("172.31.0.2", "192.168.49.11", "10.78.0.10"),
        ("172.31.0.3", "192.168.49.10", "10.78.0.11"),
        ("172.31.0.4", "192.168.49.11", "10.78.0.10"),
        ("172.31.0.5", "192.168.49.10", "10.78.0.10"),
    ];

    #[test]
    fn jhash2_of_nothing_is_the_unmixed_seed() {
        assert_eq!(jhash2(&[], 0), 0xdead_beef);
        assert_eq!(jhash2(&[], 1), 0xdead_bef0);
    }

    /// Bob Jenkins' lookup3.c `driver5`: `hashlittle("Four score and seven years ago", 30, 0)`
    /// is 0x17770551, and 0xcd628161 with initval 1. On a little-endian machine `hashlittle`
    /// over whole words is `hashword` (= `jhash2`) over those words, except that the seed adds
    /// the byte length (30) where `jhash2` adds 4 × words (32): padding the text with two zero
    /// bytes (what `hashlittle` reads for its last partial word) and lowering initval by 2
    /// gives the same state, the same mixing, the same result.
    #[test]
    fn jhash2_matches_lookup3_driver5() {
        let mut bytes = [0u8; 32];
        bytes[..30].copy_from_slice(b"Four score and seven years ago");
        let words: Vec<u32> = bytes
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(jhash2(&words, 0u32.wrapping_sub(2)), 0x1777_0551);
        assert_eq!(jhash2(&words, 1u32.wrapping_sub(2)), 0xcd62_8161);
    }

    /// The kernel's own `jhash_3words(a, b, c, initval)` is `__jhash_final` on
    /// `a + seed, b + seed, c + seed` with seed `initval + JHASH_INITVAL + 12`: the same as
    /// `jhash2` of three words.
    #[test]
    fn jhash2_of_three_words_is_jhash_3words() {
        let (a, b, c, init): (u32, u32, u32, u32) =
            (0x0102_0304, 0xa5a5_5a5a, 0xffff_ffff, 0x1234_5678);
        let seed = init.wrapping_add(JHASH_INITVAL).wrapping_add(12);
        let (mut x, mut y, mut z) = (
            a.wrapping_add(seed),
            b.wrapping_add(seed),
            c.wrapping_add(seed),
        );
        jhash_final(&mut x, &mut y, &mut z);
        assert_eq!(jhash2(&[a, b, c], init), z);
    }

    /// Values computed by a C program built from the kernel's `jhash2` and
    /// `find_best_ips_proto` (with `union nf_inet_addr`, `htonl`/`ntohl`) on x86_64.
    #[test]
    fn hash_values_match_the_c_reference() {
        let j =
            |src: &str, dst: &str| jhash2(&[kernel_word(ip(src)), 0, 0, 0], kernel_word(ip(dst)));
        assert_eq!(j("172.31.0.2", "192.168.49.10"), 0xf051_a1fe);
        assert_eq!(j("172.31.0.5", "192.168.49.11"), 0x1ac8_9f25);
        assert_eq!(j("172.31.0.5", "192.168.49.10"), 0x08f1_58f0);
    }

    #[test]
    fn kernel_word_is_network_bytes_loaded_little_endian() {
        assert_eq!(kernel_word(ip("10.78.0.10")), 0x0a00_4e0a);
    }

    #[test]
    fn pool_address_reproduces_all_measured_pairs() {
        for (src, dst, chosen) in MEASURED {
            assert_eq!(
                pool_address(ip(POOL_MIN), ip(POOL_MAX), ip(src), ip(dst), false),
                ip(chosen),
                "{src} -> {dst}"
            );
        }
    }

    /// The measured pairs tell the right model from plausible wrong ones.
    #[test]
    fn plausible_wrong_models_miss_measured_pairs() {
        let choose = |words: &[u32], initval: u32| {
            let min = u32::from(ip(POOL_MIN));
            Ipv4Addr::from(min + reciprocal_scale(jhash2(words, initval), 2))
        };
        let misses = |model: &dyn Fn(Ipv4Addr, Ipv4Addr) -> Ipv4Addr| {
            MEASURED
                .iter()
                .filter(|(s, d, c)| model(ip(s), ip(d)) != ip(c))
                .count()
        };
        // One word hashed instead of the whole 16-byte union.
        assert!(misses(&|s, d| choose(&[kernel_word(s)], kernel_word(d))) > 0);
        // Host-order (big-endian) words instead of raw memory.
        assert!(misses(&|s, d| choose(&[u32::from(s), 0, 0, 0], u32::from(d))) > 0);
        // The right model misses none.
        assert_eq!(
            misses(&|s, d| pool_address(ip(POOL_MIN), ip(POOL_MAX), s, d, false)),
            0
        );
    }

    #[test]
    fn persistent_ignores_the_destination() {
        for last in 1..=254u8 {
            let src = Ipv4Addr::new(172, 31, 0, last);
            let a = pool_address(ip(POOL_MIN), ip(POOL_MAX), src, ip("192.168.49.10"), true);
            let b = pool_address(ip(POOL_MIN), ip(POOL_MAX), src, ip("203.0.113.7"), true);
            assert_eq!(a, b);
            let key = [kernel_word(src), 0, 0, 0];
            let expected = u32::from(ip(POOL_MIN)) + reciprocal_scale(jhash2(&key, 0), 2);
            assert_eq!(a, Ipv4Addr::from(expected));
        }
    }

    #[test]
    fn one_address_pool_is_that_address() {
        let a = ip("10.78.0.10");
        assert_eq!(
            pool_address(a, a, ip("172.31.0.2"), ip("1.1.1.1"), false),
            a
        );
        assert_eq!(pool_address(a, a, ip("172.31.0.2"), ip("1.1.1.1"), true), a);
    }

    #[test]
    fn pool_addresses_stay_in_range_and_spread() {
        let (min, max) = (ip("10.78.0.10"), ip("10.78.0.13"));
        let mut counts = [0u32; 4];
        for last in 1..=254u8 {
            let a = pool_address(
                min,
                max,
                Ipv4Addr::new(172, 31, 0, last),
                ip("192.168.49.10"),
                false,
            );
            assert!((u32::from(min)..=u32::from(max)).contains(&u32::from(a)));
            counts[(u32::from(a) - u32::from(min)) as usize] += 1;
        }
        assert!(counts.iter().all(|&n| n > 30), "{counts:?}");
    }

    #[test]
    fn pool_crossing_an_octet_counts_in_host_order() {
        // 10.78.0.255-10.78.1.0 is two addresses; host-order arithmetic carries into the
        // third octet.
        let (min, max) = (ip("10.78.0.255"), ip("10.78.1.0"));
        let mut seen = Vec::new();
        for last in 1..=50u8 {
            let a = pool_address(
                min,
                max,
                Ipv4Addr::new(172, 31, 0, last),
                ip("192.168.49.10"),
                false,
            );
            assert!(a == min || a == max, "{a}");
            if !seen.contains(&a) {
                seen.push(a);
            }
        }
        assert_eq!(seen.len(), 2);
    }

    #[test]
    fn full_address_space_wraps_to_the_minimum() {
        let all = pool_address(
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::BROADCAST,
            ip("172.31.0.2"),
            ip("192.168.49.10"),
            false,
        );
        assert_eq!(all, Ipv4Addr::UNSPECIFIED);
    }

    #[test]
    fn path_capacity_counts_ports() {
        assert_eq!(path_capacity(None), 64_512);
        assert_eq!(path_capacity(Some((20_000, 20_099))), 100);
        assert_eq!(path_capacity(Some((20_099, 20_000))), 100);
        assert_eq!(path_capacity(Some((5_000, 5_000))), 1);
        assert_eq!(path_capacity(Some((0, 65_535))), 65_536);
        assert_eq!(DEFAULT_LOCAL_PORTS, 28_232);
    }

    fn containers(n: u8) -> Vec<(String, Ipv4Addr)> {
        (0..n)
            .map(|i| (format!("c{}", i + 1), Ipv4Addr::new(172, 31, 0, 2 + i)))
            .collect()
    }

    #[test]
    fn masquerade_to_one_server_overflows_one_path() {
        let nat = NatModel::masquerade(ip("192.168.49.1"));
        let server = sock("192.168.49.10:8080");
        let flows: Vec<Flow> = containers(3)
            .into_iter()
            .map(|(name, addr)| Flow::new(name, addr, server, 25_000))
            .collect();
        let p = nat.predict(&flows);
        assert_eq!(p.paths.len(), 1);
        let path = &p.paths[0];
        assert_eq!(path.translated, ip("192.168.49.1"));
        assert_eq!(path.dst, server);
        assert_eq!(path.containers, ["c1", "c2", "c3"]);
        assert_eq!(path.wanted, 75_000);
        assert_eq!(path.capacity, 64_512);
        assert_eq!(path.established, 64_512);
        assert!(path.overflow);
        assert!(p.overflows());
        assert_eq!((p.wanted, p.established), (75_000, 64_512));
        for f in &p.flows {
            assert_eq!(f.translated, ip("192.168.49.1"));
            assert_eq!(f.wanted, 25_000);
            assert_eq!(f.limit, PortLimit::PathPorts);
            assert!(f.address_exact);
        }
    }

    #[test]
    fn masquerade_to_three_servers_fits() {
        let nat = NatModel::masquerade(ip("192.168.49.1"));
        let servers = [
            "192.168.49.10:8080",
            "192.168.49.11:8080",
            "192.168.49.12:8080",
        ];
        let flows: Vec<Flow> = containers(3)
            .into_iter()
            .zip(servers)
            .map(|((name, addr), s)| Flow::new(name, addr, sock(s), 25_000))
            .collect();
        let p = nat.predict(&flows);
        assert_eq!(p.paths.len(), 3);
        for (path, s) in p.paths.iter().zip(servers) {
            assert_eq!(path.dst, sock(s));
            assert_eq!(path.wanted, 25_000);
            assert_eq!(path.established, 25_000);
            assert!(!path.overflow);
        }
        assert!(!p.overflows());
        assert_eq!(p.established, 75_000);
        assert!(p.flows.iter().all(|f| f.limit == PortLimit::None));
    }

    #[test]
    fn port_range_caps_the_path() {
        let nat = NatModel::masquerade(ip("192.168.49.1")).with_ports(20_000, 20_099);
        let flows = [Flow::new(
            "c1",
            ip("172.31.0.2"),
            sock("192.168.49.10:80"),
            150,
        )];
        let p = nat.predict(&flows);
        assert_eq!(p.paths.len(), 1);
        assert_eq!(p.paths[0].capacity, 100);
        assert_eq!(p.paths[0].wanted, 150);
        assert_eq!(p.paths[0].established, 100);
        assert!(p.paths[0].overflow);
        assert_eq!(p.flows[0].limit, PortLimit::PathPorts);
    }

    #[test]
    fn local_ports_cap_each_flow_first() {
        let nat = NatModel::masquerade(ip("192.168.49.1"));
        let server = sock("192.168.49.10:8080");
        let p = nat.predict(&[Flow::new("c1", ip("172.31.0.2"), server, 30_000)]);
        assert_eq!(p.flows[0].wanted, 28_232);
        assert_eq!(p.flows[0].limit, PortLimit::LocalPorts);
        assert_eq!(p.paths[0].wanted, 28_232);
        assert_eq!(p.paths[0].established, 28_232);
        assert!(!p.paths[0].overflow);

        // Three containers, each capped locally, still overflow the shared path.
        let flows: Vec<Flow> = containers(3)
            .into_iter()
            .map(|(name, addr)| Flow::new(name, addr, server, 30_000))
            .collect();
        let p = nat.predict(&flows);
        assert_eq!(p.paths[0].wanted, 3 * 28_232);
        assert_eq!(p.paths[0].established, 64_512);
        assert!(
            p.flows
                .iter()
                .all(|f| f.limit == PortLimit::LocalAndPathPorts)
        );

        // A wider local range lifts the local limit.
        let p = nat
            .predict(&[Flow::new("c1", ip("172.31.0.2"), server, 30_000).with_local_ports(64_000)]);
        assert_eq!(p.flows[0].wanted, 30_000);
        assert_eq!(p.flows[0].limit, PortLimit::None);
    }

    #[test]
    fn snat_pool_splits_by_hash() {
        let nat = NatModel::snat(ip(POOL_MIN), ip(POOL_MAX), false);
        let flows: Vec<Flow> = MEASURED[..4]
            .iter()
            .enumerate()
            .map(|(i, (src, dst, _))| {
                Flow::new(
                    format!("c{}", i + 1),
                    ip(src),
                    SocketAddrV4::new(ip(dst), 8080),
                    25_000,
                )
            })
            .collect();
        let p = nat.predict(&flows);
        for ((src, dst, chosen), f) in MEASURED[..4].iter().zip(&p.flows) {
            assert_eq!(
                (f.src, *f.dst.ip(), f.translated),
                (ip(src), ip(dst), ip(chosen))
            );
            assert!(f.address_exact);
        }
        // .2 and .4 both reach .10 from .11: one path, 50,000 wanted, fits.
        let shared = p
            .path(ip("10.78.0.11"), sock("192.168.49.10:8080"))
            .unwrap();
        assert_eq!(shared.containers, ["c1", "c3"]);
        assert_eq!(shared.wanted, 50_000);
        assert!(!shared.overflow);
        assert_eq!(p.paths.len(), 3);
        assert_eq!(p.path(ip("10.78.0.10"), sock("192.168.49.10:8080")), None);
        // Sorted by translated address first.
        assert_eq!(p.paths[0].translated, ip("10.78.0.10"));
    }

    #[test]
    fn mixed_pool_addresses_per_container_are_flagged() {
        let nat = NatModel::snat(ip(POOL_MIN), ip(POOL_MAX), false);
        // 172.31.0.2 hashes to .11 towards 192.168.49.10 and to .10 towards .11.
        let flows = [
            Flow::new("c1", ip("172.31.0.2"), sock("192.168.49.10:8080"), 100),
            Flow::new("c1", ip("172.31.0.2"), sock("192.168.49.11:8080"), 100),
            // 172.31.0.3 hashes to .11 towards both.
            Flow::new("c2", ip("172.31.0.3"), sock("192.168.49.10:8080"), 100),
            Flow::new("c2", ip("172.31.0.3"), sock("192.168.49.11:8080"), 100),
        ];
        let p = nat.predict(&flows);
        let exact: Vec<bool> = p.flows.iter().map(|f| f.address_exact).collect();
        assert_eq!(exact, [false, false, true, true]);

        // With `persistent` the source alone decides, so nothing is ambiguous.
        let p = NatModel::snat(ip(POOL_MIN), ip(POOL_MAX), true).predict(&flows);
        assert!(p.flows.iter().all(|f| f.address_exact));
        assert_eq!(p.flows[0].translated, p.flows[1].translated);
    }

    #[test]
    fn duplicate_flows_merge() {
        let nat = NatModel::masquerade(ip("192.168.49.1"));
        let server = sock("192.168.49.10:8080");
        let p = nat.predict(&[
            Flow::new("c1", ip("172.31.0.2"), server, 20_000),
            Flow::new("c1", ip("172.31.0.2"), server, 20_000),
        ]);
        assert_eq!(p.flows.len(), 1);
        assert_eq!(p.flows[0].connections, 40_000);
        assert_eq!(p.flows[0].wanted, 28_232);
        assert_eq!(p.flows[0].limit, PortLimit::LocalPorts);
        assert_eq!(p.wanted, 28_232);
    }

    #[test]
    fn prediction_serializes() {
        let nat = NatModel::snat(ip(POOL_MIN), ip(POOL_MAX), false).with_ports(20_000, 20_099);
        let p = nat.predict(&[Flow::new(
            "c1",
            ip("172.31.0.2"),
            sock("192.168.49.10:80"),
            150,
        )]);
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["flows"][0]["translated"], "10.78.0.11");
        assert_eq!(json["flows"][0]["limit"], "path_ports");
        assert_eq!(json["paths"][0]["dst"], "192.168.49.10:80");
        assert_eq!(json["paths"][0]["established"], 100);
        let nat_json = serde_json::to_value(nat).unwrap();
        assert_eq!(nat_json["addresses"]["kind"], "snat");
        assert_eq!(nat_json["ports"], serde_json::json!([20_000, 20_099]));
    }

    /// An AWS NAT gateway's addresses taken in turn: a destination's connections split evenly,
    /// each address capped at its own ports.
    #[test]
    fn addresses_in_turn_split_evenly() {
        let model = NatModel::in_turn(vec![ip("192.168.49.6"), ip("192.168.49.7")], (1024, 56023));
        let dst = sock("192.168.49.5:443");
        let flows = [
            Flow::new("c1", ip("172.17.0.2"), dst, 30_001),
            Flow::new("c2", ip("172.17.0.3"), dst, 30_000),
        ]
        .map(|f| f.with_local_ports(64_512));
        let p = model.predict(&flows);
        let split: Vec<(Ipv4Addr, u64, u64)> = p
            .paths
            .iter()
            .map(|p| (p.translated, p.wanted, p.established))
            .collect();
        assert_eq!(
            split,
            [
                (ip("192.168.49.6"), 30_001, 30_001),
                (ip("192.168.49.7"), 30_000, 30_000)
            ]
        );
        assert_eq!(p.established, 60_001);
        assert!(p.flows.iter().all(|f| f.limit == PortLimit::None));
        assert_eq!(p.flows[0].in_turn.len(), 2);

        let over = flows.map(|f| Flow {
            connections: 60_000,
            ..f
        });
        let p = model.predict(&over);
        assert_eq!(p.established, 110_000);
        assert!(p.paths.iter().all(|p| p.overflow && p.capacity == 55_000));
        assert!(p.flows.iter().all(|f| f.limit == PortLimit::PathPorts));
    }

    /// Each VM its own block: two VMs on one address and destination are two paths; a VM
    /// without a block is dropped.
    #[test]
    fn per_vm_blocks_are_paths_of_their_own() {
        let nat = ip("192.168.49.6");
        let block = |first| VmPorts {
            address: nat,
            first,
            last: first + 63,
        };
        let model = NatModel::per_vm(
            vec![
                (ip("172.17.0.2"), Some(block(1024))),
                (ip("172.17.0.3"), Some(block(1088))),
                (ip("172.17.0.4"), None),
            ],
            64,
        );
        let dst = sock("192.168.49.5:443");
        let flows = [
            Flow::new("vm1", ip("172.17.0.2"), dst, 100),
            Flow::new("vm2", ip("172.17.0.3"), dst, 10),
            Flow::new("vm3", ip("172.17.0.4"), dst, 100),
        ];
        let p = model.predict(&flows);
        assert_eq!(p.paths.len(), 2);
        assert_eq!(p.established, 64 + 10);
        assert_eq!(p.paths[0].vm_ports, Some(block(1024)));
        assert!(p.paths[0].overflow && !p.paths[1].overflow);
        let limits: Vec<PortLimit> = p.flows.iter().map(|f| f.limit).collect();
        assert_eq!(
            limits,
            [
                PortLimit::PathPorts,
                PortLimit::None,
                PortLimit::NoAllocation
            ]
        );
        assert_eq!(p.path_at(nat, dst, 1100).map(|p| p.established), Some(10));
        assert_eq!(p.path_at(nat, dst, 1030).map(|p| p.established), Some(64));
    }
}
