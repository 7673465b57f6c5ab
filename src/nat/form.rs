//! A Docker network's NAT as everything after the plan speaks of it (each bridge network of a
//! host has its own rule, as Docker's `host_ipv4` is per network): the plan's [`Nat`] with the
//! address masquerade leaves with, in words ("masquerade to 192.168.49.6", "snat to A-B ports P-Q
//! persistent"), in one word for scripts (`masquerade`, `snat`, `none`), and as the model the
//! prediction runs. Predictions, views, reports, `lab list` and the drawings all read it here,
//! so a new NAT form is one new arm in this file, not strings compared downstream.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};

use serde::{Serialize, Serializer};

use super::predict::{FIRST_UNPRIVILEGED_PORT, NatModel, VmPorts};
use crate::lab::plan::{CloudProfile, DockerNet, Host, Nat, PortRange};

/// Where a NAT is, in reports: the host, and the network when it is not the default bridge (so
/// a lab with Docker's default network alone reads as it always has).
pub fn place(host: &str, network: &str) -> String {
    if network == crate::lab::plan::DEFAULT_BRIDGE_NETWORK {
        host.to_owned()
    } else {
        format!("{host} network {network}")
    }
}

/// The NAT form as one word: what `lab list --json` says and the schema enumerates (a cloud
/// profile by its name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatKind {
    Masquerade,
    Snat,
    Cloud(CloudProfile),
    None,
}

impl NatKind {
    pub fn of(nat: &Nat) -> Self {
        match nat {
            Nat::Masquerade { .. } => NatKind::Masquerade,
            Nat::Snat { .. } => NatKind::Snat,
            Nat::Cloud(c) => NatKind::Cloud(c.profile),
            Nat::None => NatKind::None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            NatKind::Masquerade => "masquerade",
            NatKind::Snat => "snat",
            NatKind::Cloud(p) => p.name(),
            NatKind::None => "none",
        }
    }
}

impl Serialize for NatKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The NAT of one of a host's Docker networks: its form and the address a masquerade leaves
/// with. Serialized as its words (what the JSON outputs have always said).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostNat {
    nat: Nat,
    /// The host's primary LAN address: where `masquerade` translates to.
    primary: Ipv4Addr,
}

impl HostNat {
    /// The NAT of network `net` of `host`.
    pub fn of(host: &Host, net: &DockerNet) -> Self {
        Self {
            nat: net.nat.clone(),
            primary: host.addresses[0],
        }
    }

    /// What a host without Docker does to its own traffic: nothing.
    pub fn untranslated(host: &Host) -> Self {
        Self {
            nat: Nat::None,
            primary: host.addresses[0],
        }
    }

    /// The NAT of each of `host`'s networks, the default bridge first; none when it runs no
    /// Docker.
    pub fn of_each(host: &Host) -> Vec<(&DockerNet, Self)> {
        host.docker
            .iter()
            .flat_map(|d| d.all_networks())
            .map(|n| (n, Self::of(host, n)))
            .collect()
    }

    pub fn kind(&self) -> NatKind {
        NatKind::of(&self.nat)
    }

    /// The cloud whose NAT the host plays, if any.
    pub fn profile(&self) -> Option<CloudProfile> {
        match &self.nat {
            Nat::Cloud(c) => Some(c.profile),
            _ => None,
        }
    }

    /// An SNAT pool of more than one address, where which address the kernel picks for whom
    /// is part of what a report shows.
    pub fn is_pool(&self) -> bool {
        matches!(&self.nat, Nat::Snat { pool, .. } if pool.len() > 1)
    }

    /// Whether a container's connection to `dst` goes through this NAT. Packets to the host's
    /// own addresses are delivered locally and never reach POSTROUTING; packets to another
    /// container stay on the bridge (`oifname != docker0` fails); and with no NAT nothing is
    /// translated.
    pub fn translates(&self, host: &Host, dst: SocketAddrV4) -> bool {
        let ip = *dst.ip();
        let to_self = host.addresses.contains(&ip)
            || host.docker.as_ref().is_some_and(|d| {
                d.all_networks()
                    .any(|d| d.gateway == ip || d.subnet.contains(&ip))
            });
        !to_self && self.kind() != NatKind::None
    }

    /// The kernel's behaviour for this form, as the prediction models it, for the network's
    /// containers at `vms` (in plan order: the cloud's VMs); `None` when nothing is translated.
    pub fn model(&self, vms: &[Ipv4Addr]) -> Option<NatModel> {
        let with_ports = |m: NatModel, ports: &Option<PortRange>| match ports {
            Some(p) => m.with_ports(p.lo(), p.hi()),
            None => m,
        };
        match &self.nat {
            Nat::Masquerade { ports, .. } => {
                Some(with_ports(NatModel::masquerade(self.primary), ports))
            }
            Nat::Snat {
                pool,
                ports,
                persistent,
                ..
            } => {
                let (min, max) = (*pool.first()?, *pool.last()?);
                Some(with_ports(NatModel::snat(min, max, *persistent), ports))
            }
            Nat::Cloud(cloud) => match cloud.ports_per_vm {
                None => {
                    let p = cloud.profile.address_ports();
                    Some(NatModel::in_turn(cloud.addresses.clone(), (p.lo(), p.hi())))
                }
                Some(per_vm) => {
                    let blocks = vms
                        .iter()
                        .zip(cloud.blocks(vms.len()))
                        .map(|(&vm, b)| {
                            let ports = b.map(|b| VmPorts {
                                address: b.address,
                                first: b.ports.lo(),
                                last: b.ports.hi(),
                            });
                            (vm, ports)
                        })
                        .collect();
                    Some(NatModel::per_vm(blocks, per_vm))
                }
            },
            Nat::None => None,
        }
    }

    /// The source ports this NAT leaves as they are on a path where they are free, for a
    /// container whose own block (a cloud's VM) is `vm_ports`: a connection that presents one
    /// keeps it at once. Any other port is searched for from a random offset in bounded
    /// windows, which near a full range misses and drops the SYN (kernel.md §2), so clients
    /// that present each of the path's ports once fill it exactly, whatever their connect
    /// timeout. `None` where nothing is kept: `random_fully` draws every port, and with no NAT
    /// nothing is translated.
    pub fn kept_ports(&self, vm_ports: Option<VmPorts>) -> Option<(u16, u16)> {
        let range = |p: &Option<PortRange>| {
            Some(p.map_or((FIRST_UNPRIVILEGED_PORT, u16::MAX), |p| (p.lo(), p.hi())))
        };
        match &self.nat {
            Nat::Masquerade {
                random_fully: true, ..
            }
            | Nat::Snat {
                random_fully: true, ..
            }
            | Nat::None => None,
            Nat::Masquerade { ports, .. } | Nat::Snat { ports, .. } => range(ports),
            Nat::Cloud(c) => match c.ports_per_vm {
                None => {
                    let p = c.profile.address_ports();
                    Some((p.lo(), p.hi()))
                }
                Some(_) => vm_ports.map(|b| (b.first, b.last)),
            },
        }
    }

    /// How many connections one port of a path can carry: one per address that takes
    /// connections in turn (an AWS gateway's), else one.
    pub fn port_reuse(&self) -> u32 {
        match &self.nat {
            Nat::Cloud(c) if c.ports_per_vm.is_none() => {
                u32::try_from(c.addresses.len().max(1)).unwrap_or(u32::MAX)
            }
            _ => 1,
        }
    }

    /// Connections one NAT path holds: a rule's ports, a cloud's ports per address and
    /// destination or per VM; the kernel's default when nothing is translated.
    pub fn path_capacity(&self) -> u32 {
        match &self.nat {
            Nat::Cloud(c) => c
                .ports_per_vm
                .unwrap_or_else(|| c.profile.address_ports().size()),
            _ => self.model(&[]).map_or_else(
                || super::predict::path_capacity(None),
                |m| m.path_capacity(),
            ),
        }
    }
}

impl fmt::Display for HostNat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ports = |p: &Option<PortRange>| p.map(|p| format!(" ports {p}")).unwrap_or_default();
        let random = |r: bool| if r { " random-fully" } else { "" };
        match &self.nat {
            Nat::Masquerade {
                ports: p,
                random_fully,
            } => write!(
                f,
                "masquerade to {}{}{}",
                self.primary,
                ports(p),
                random(*random_fully)
            ),
            Nat::Snat {
                pool,
                ports: p,
                persistent,
                random_fully,
            } => {
                f.write_str("snat to ")?;
                match (pool.first(), pool.last()) {
                    (Some(a), Some(b)) if a != b => write!(f, "{a}-{b}")?,
                    (Some(a), _) => write!(f, "{a}")?,
                    _ => {}
                }
                write!(
                    f,
                    "{}{}{}",
                    ports(p),
                    if *persistent { " persistent" } else { "" },
                    random(*random_fully)
                )
            }
            Nat::Cloud(c) => {
                let addresses: Vec<String> = c.addresses.iter().map(|a| a.to_string()).collect();
                write!(f, "{} on {}", c.profile.name(), addresses.join(", "))?;
                match c.ports_per_vm {
                    Some(p) => write!(f, " ({} ports per VM)", thousands(p)),
                    None => write!(
                        f,
                        " ({} ports per address and destination)",
                        thousands(c.profile.address_ports().size())
                    ),
                }
            }
            Nat::None => f.write_str("none"),
        }
    }
}

/// `55,000`: the published figures as the clouds write them.
fn thousands(n: u32) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(d);
    }
    out
}

impl Serialize for HostNat {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{LoadOptions, Source, load};

    /// The default bridge's NAT of host `h` of a one-host lab whose `[hosts.h.docker]` says
    /// `docker`, or none without one.
    fn nat(docker: &str) -> HostNat {
        let h = host(docker);
        match HostNat::of_each(&h).first() {
            Some((_, n)) => n.clone(),
            None => HostNat::untranslated(&h),
        }
    }

    /// Host `h` of a one-host lab whose `[hosts.h.docker]` says `docker`.
    fn host(docker: &str) -> Host {
        let text = format!(
            "name = \"t\"\n[lans.lan]\nsubnet = \"192.168.49.0/24\"\n[hosts.h]\nlan = \"lan\"\n\
             addresses = [\"192.168.49.6\", \"192.168.49.7\", \"192.168.49.8\"]\n{docker}"
        );
        let plan = load(&Source::new("t.toml", &text), &LoadOptions::default())
            .map_err(|d| format!("{d:?}"))
            .unwrap()
            .plan;
        plan.hosts[0].clone()
    }

    #[test]
    fn words_kind_and_pool() {
        let cases = [
            ("", "none", NatKind::None, false),
            (
                "[hosts.h.docker]\nnat = \"none\"",
                "none",
                NatKind::None,
                false,
            ),
            (
                "[hosts.h.docker]",
                "masquerade to 192.168.49.6",
                NatKind::Masquerade,
                false,
            ),
            (
                "[hosts.h.docker]\nnat = { masquerade = true, ports = \"40000-40099\" }",
                "masquerade to 192.168.49.6 ports 40000-40099",
                NatKind::Masquerade,
                false,
            ),
            (
                "[hosts.h.docker]\nnat = { snat = [\"192.168.49.7\"] }",
                "snat to 192.168.49.7",
                NatKind::Snat,
                false,
            ),
            (
                "[hosts.h.docker]\nnat = { snat = [\"192.168.49.6\", \"192.168.49.7\", \"192.168.49.8\"], persistent = true }",
                "snat to 192.168.49.6-192.168.49.8 persistent",
                NatKind::Snat,
                true,
            ),
        ];
        for (docker, words, kind, is_pool) in cases {
            let n = nat(docker);
            assert_eq!(n.to_string(), words, "{docker}");
            assert_eq!(serde_json::to_value(&n).unwrap(), words);
            assert_eq!(n.kind(), kind, "{docker}");
            assert_eq!(n.is_pool(), is_pool, "{docker}");
            assert_eq!(n.model(&[]).is_some(), kind != NatKind::None, "{docker}");
        }
    }

    #[test]
    fn cloud_profiles_in_words() {
        let cases = [
            (
                "[hosts.h.docker]\nnat = { profile = \"aws-nat-gateway\" }",
                "aws-nat-gateway on 192.168.49.6, 192.168.49.7, 192.168.49.8 (55,000 ports per address and destination)",
                "aws-nat-gateway",
            ),
            (
                "[hosts.h.docker]\nnat = { profile = \"gcp-cloud-nat\", min_ports_per_vm = 1024 }",
                "gcp-cloud-nat on 192.168.49.6, 192.168.49.7, 192.168.49.8 (1,024 ports per VM)",
                "gcp-cloud-nat",
            ),
            (
                "[hosts.h.docker]\nnat = { masquerade = true, random_fully = true }",
                "masquerade to 192.168.49.6 random-fully",
                "masquerade",
            ),
        ];
        for (docker, words, kind) in cases {
            let n = nat(docker);
            assert_eq!(n.to_string(), words);
            assert_eq!(serde_json::to_value(n.kind()).unwrap(), kind);
        }
    }

    /// `host_ipv4` is per network: each network of a host has its own rule.
    #[test]
    fn each_network_has_its_own_nat() {
        let h = host(
            "[hosts.h.docker.networks.one]\nnat = { snat = [\"192.168.49.7\"] }\n\
             [hosts.h.docker.networks.two]\nnat = { snat = [\"192.168.49.8\"] }\n",
        );
        let words: Vec<(String, String)> = HostNat::of_each(&h)
            .into_iter()
            .map(|(n, nat)| (n.name.to_string(), nat.to_string()))
            .collect();
        assert_eq!(
            words,
            [
                ("bridge".to_owned(), "masquerade to 192.168.49.6".to_owned()),
                ("one".to_owned(), "snat to 192.168.49.7".to_owned()),
                ("two".to_owned(), "snat to 192.168.49.8".to_owned()),
            ]
        );
    }
}
