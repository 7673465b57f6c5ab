//! Each host's Docker networks: which hosts get one, the default bridge and the user-defined
//! networks (`[hosts.X.docker.networks.NAME]`, Docker's `docker network create`): bridge names
//! (valid, one per network), subnets (Docker's default address pools when none is given, clear
//! of the LANs, of each other and of a `nat = "none"` neighbour's), how each network's
//! containers leave the host (NAT: masquerade, an SNAT pool of the host's own addresses, a
//! cloud's NAT profile, or none), and which network each container group is attached to.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::lab::cloud::{self, CloudNat, CloudProfile};
use crate::lab::diag::{Diagnostic, did_you_mean};
use crate::lab::plan::{
    DEFAULT_BRIDGE_NETWORK, FirewallBackend, HostId, IfName, Name, Nat, NetworkId, user_bridge_name,
};
use crate::lab::spec::{
    DockerSpec, HostSpec, Named, NatSpec, NatTableSpec, NetworkSpec, Span, Spanned, StringList,
};

use super::values::{RESERVED_IFNAMES, address, join, name, overlaps, ports, subnet};
use super::{DockerDraft, NetDraft, Validator};

const DEFAULT_DOCKER_BRIDGE: &str = "docker0";

/// Docker's default bridge subnet (checked at compile time).
pub(super) const DEFAULT_DOCKER_SUBNET: Ipv4Net =
    Ipv4Net::new_assert(Ipv4Addr::new(172, 17, 0, 0), 16);

/// Docker's default address pools for bridge networks (libnetwork's `ipamutils`): the /16s
/// from 172.17.0.0/16 to 172.31.0.0/16, the default bridge taking the first.
fn default_pools() -> impl Iterator<Item = Ipv4Net> {
    (17..=31).map(|b| Ipv4Net::new_assert(Ipv4Addr::new(172, b, 0, 0), 16))
}

/// Network names every Docker daemon has already (`docker network ls`): none can be created.
const PREDEFINED_NETWORKS: &[&str] = &[DEFAULT_BRIDGE_NETWORK, "host", "none"];

impl<'s> Validator<'s, '_> {
    /// Every host with a `docker` table or with containers gets a docker network; without a
    /// table it is Docker's default bridge, which exists wherever Docker runs.
    pub(super) fn docker_nets(&mut self) {
        let used: HashSet<usize> = self
            .groups
            .iter()
            .filter_map(|g| g.host.map(|h| h.0))
            .collect();
        for h in 0..self.hosts.len() {
            let spec = self.hosts[h].spec;
            let docker = match &spec.body.docker {
                Some(d) => self.docker(h, d),
                None if used.contains(&h) => DockerDraft {
                    firewall: Some(FirewallBackend::default()),
                    default_bridge: implicit_default_bridge(spec),
                    networks: Vec::new(),
                },
                None => continue,
            };
            self.hosts[h].docker = Some(docker);
            self.docker_vs_lans(h);
            self.disjoint_networks(h);
        }
        self.default_subnets();
        self.untranslated_vs_docker();
        self.container_networks();
        self.cloud_pools();
    }

    /// Azure preallocates by backend pool size: the containers on the network, known once
    /// every group has its network.
    fn cloud_pools(&mut self) {
        for h in 0..self.hosts.len() {
            let Some(d) = &self.hosts[h].docker else {
                continue;
            };
            let n_nets = d.all().count();
            for n in 0..n_nets {
                let pool: usize = self
                    .groups
                    .iter()
                    .filter(|g| g.host == Some(HostId(h)) && g.network == Some(NetworkId(n)))
                    .map(|g| g.members.len())
                    .sum();
                let Some(d) = &mut self.hosts[h].docker else {
                    continue;
                };
                let Some(net) = d.all_mut().nth(n) else {
                    continue;
                };
                let Some(Nat::Cloud(cloud)) = &mut net.nat else {
                    continue;
                };
                if cloud.profile != CloudProfile::AzureLbOutbound {
                    continue;
                }
                let span = net.nat_span.clone();
                match cloud::azure_ports_per_vm(pool, cloud.addresses.len()) {
                    Some(p) => cloud.ports_per_vm = Some(p),
                    None => {
                        net.nat = None;
                        self.error(
                            Diagnostic::error(
                                span,
                                format!(
                                    "azure-lb-outbound preallocates for backend pools of up to {} VMs; \
                                     this network has {pool} containers",
                                    cloud::AZURE_MAX_POOL
                                ),
                            )
                            .with_help(
                                "Azure's default outbound table ends at 1,000 instances: \
                                 use fewer containers or split them over networks",
                            ),
                        );
                    }
                }
            }
        }
    }

    /// Docker's default address pools: a network created without `--subnet` takes the next
    /// /16 of 172.17.0.0/12 that overlaps nothing it knows of. Here that is the LANs, the
    /// host's other networks, and the docker subnets the LAN routes (`nat = "none"`); an
    /// untranslated network also keeps clear of every docker subnet on its LAN, which the LAN
    /// would route to it.
    fn default_subnets(&mut self) {
        for h in 0..self.hosts.len() {
            let count = self.hosts[h]
                .docker
                .as_ref()
                .map_or(0, |d| d.networks.len());
            for n in 0..count {
                let Some(net) = self.hosts[h].docker.as_ref().map(|d| &d.networks[n]) else {
                    continue;
                };
                if net.subnet.is_some() || net.subnet_written {
                    continue;
                }
                let untranslated = net.nat == Some(Nat::None);
                let taken = self.subnets_near(h, untranslated);
                let free = default_pools().find(|c| !taken.iter().any(|t| overlaps(*t, *c)));
                let host = self.hosts[h].spec.name.value.clone();
                let Some(d) = self.hosts[h].docker.as_mut() else {
                    continue;
                };
                let net = &mut d.networks[n];
                match free {
                    Some(free) => net.subnet = Some(free),
                    None => {
                        let message = format!(
                            "none of Docker's default address pools (172.17.0.0/16 to \
                             172.31.0.0/16) is free for network `{}` of host `{host}`",
                            net.label
                        );
                        let help = "give it one with `subnet = \"...\"`";
                        let span = net.subnet_span.clone();
                        self.error(Diagnostic::error(span, message).with_help(help));
                    }
                }
            }
        }
    }

    /// Subnets a default one for host `h` must keep clear of.
    fn subnets_near(&self, h: usize, untranslated: bool) -> Vec<Ipv4Net> {
        let mut taken: Vec<Ipv4Net> = self.lans.iter().filter_map(|l| l.subnet).collect();
        let lan = self.hosts[h].lan;
        for (i, host) in self.hosts.iter().enumerate() {
            let Some(d) = &host.docker else { continue };
            for net in d.all() {
                let Some(s) = net.subnet else { continue };
                let routed = net.nat == Some(Nat::None) || untranslated;
                if i == h || (routed && lan.is_some() && host.lan == lan) {
                    taken.push(s);
                }
            }
        }
        taken
    }

    /// One host's networks are told apart by address, as Docker refuses overlapping pools;
    /// and each needs a bridge of its own.
    fn disjoint_networks(&mut self, h: usize) {
        let Some(d) = &self.hosts[h].docker else {
            return;
        };
        let host = &self.hosts[h].spec.name.value;
        let nets: Vec<&NetDraft> = d.all().collect();
        let mut found = Vec::new();
        for (i, b) in nets.iter().enumerate() {
            for a in &nets[..i] {
                if let (Some(na), Some(nb)) = (a.subnet, b.subnet)
                    && overlaps(na, nb)
                {
                    found.push(
                        Diagnostic::error(
                            b.subnet_span.clone(),
                            format!(
                                "subnet {nb} of network `{}` overlaps subnet {na} of network \
                                 `{}` on host `{host}`",
                                b.label, a.label
                            ),
                        )
                        .with_help(
                            "each network of a host needs an address range of its own; leave \
                             `subnet` out to take the next free one of Docker's default pool",
                        ),
                    );
                }
                if let (Some(ba), Some(bb)) = (&a.bridge, &b.bridge)
                    && ba == bb
                {
                    found.push(
                        Diagnostic::error(
                            b.bridge_span.clone(),
                            format!(
                                "network `{}` of host `{host}` uses bridge `{bb}`, already the \
                                 bridge of network `{}`",
                                b.label, a.label
                            ),
                        )
                        .with_help("every network has a bridge of its own; name another one"),
                    );
                }
            }
        }
        for d in found {
            self.error(d);
        }
    }

    /// `network = "NAME"` of each container group: one of its host's networks, or the default
    /// bridge, which Docker calls `bridge`.
    fn container_networks(&mut self) {
        for g in 0..self.groups.len() {
            let group = &self.groups[g];
            let Some(raw) = &group.spec.body.network else {
                self.groups[g].network = Some(NetworkId::DEFAULT_BRIDGE);
                continue;
            };
            let Some(h) = group.host else { continue };
            let Some(d) = &self.hosts[h.0].docker else {
                continue;
            };
            let names: Vec<&str> = d.all().map(|n| n.label.as_str()).collect();
            let found = names.iter().position(|n| *n == raw.value);
            if found.is_none() {
                let host = &self.hosts[h.0].spec.name.value;
                let diag = Diagnostic::error(
                    raw.span.clone(),
                    format!("unknown network `{}` on host `{host}`", raw.value),
                );
                let help = match did_you_mean(&raw.value, names.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!(
                        "host `{host}` has: {}; define it in a [hosts.{host}.docker.networks.{}] \
                         table",
                        names
                            .iter()
                            .map(|n| format!("`{n}`"))
                            .collect::<Vec<_>>()
                            .join(", "),
                        raw.value
                    ),
                };
                self.error(diag.with_help(help));
            }
            self.groups[g].network = found.map(NetworkId);
        }
    }

    /// The other hosts of a LAN route a `nat = "none"` network's subnet to its host: no other
    /// docker subnet on that LAN may overlap it, or the route would take its containers'
    /// replies (or theirs) to the wrong host.
    fn untranslated_vs_docker(&mut self) {
        let mut found = Vec::new();
        for (a, ha) in self.hosts.iter().enumerate() {
            let Some(lan) = ha.lan else { continue };
            let routed = ha
                .docker
                .iter()
                .flat_map(|d| d.all())
                .filter(|n| n.nat == Some(Nat::None));
            for da in routed {
                let Some(na) = da.subnet else { continue };
                for (b, hb) in self.hosts.iter().enumerate() {
                    if a == b || hb.lan != Some(lan) {
                        continue;
                    }
                    let others = hb.docker.iter().flat_map(|d| d.all());
                    for nb in others
                        .filter_map(|n| n.subnet)
                        .filter(|nb| overlaps(na, *nb))
                    {
                        let help = format!(
                            "the other hosts of the LAN route {na} to host `{}`, whose \
                             containers leave untranslated; give one of them another range with \
                             `subnet = \"...\"` in its [hosts.X.docker]",
                            ha.spec.name.value
                        );
                        found.push(
                            Diagnostic::error(
                                da.subnet_span.clone(),
                                format!(
                                    "docker subnet {na} of host `{}` (nat = \"none\") overlaps \
                                     docker subnet {nb} of host `{}` on the same LAN",
                                    ha.spec.name.value, hb.spec.name.value
                                ),
                            )
                            .with_help(help),
                        );
                    }
                }
            }
        }
        for d in found {
            self.error(d);
        }
    }

    fn docker(&mut self, h: usize, spec: &DockerSpec) -> DockerDraft {
        let firewall = match &spec.firewall {
            Some(raw) => firewall(raw, self.diags),
            None => Some(FirewallBackend::default()),
        };
        let bridge = match &spec.bridge {
            Some(raw) => self.docker_bridge(raw),
            None => IfName::new(DEFAULT_DOCKER_BRIDGE).ok(),
        };
        let (subnet, subnet_span) = match &spec.subnet {
            Some(raw) => (self.docker_subnet(raw), raw.span.clone()),
            None => (Some(DEFAULT_DOCKER_SUBNET), spec.span.clone()),
        };
        let nat = match &spec.nat {
            Some(nat) => self.nat(h, nat),
            None => Some(Nat::MASQUERADE),
        };
        let default_bridge = NetDraft {
            name: Name::new(DEFAULT_BRIDGE_NETWORK).ok(),
            label: DEFAULT_BRIDGE_NETWORK.to_owned(),
            bridge,
            bridge_span: spec
                .bridge
                .as_ref()
                .map_or(spec.span.clone(), |b| b.span.clone()),
            subnet,
            subnet_span,
            subnet_written: spec.subnet.is_some(),
            nat,
            nat_span: spec.nat.as_ref().map_or(spec.span.clone(), NatSpec::span),
        };
        let networks = spec
            .networks
            .iter()
            .map(|n| self.user_network(h, n))
            .collect();
        DockerDraft {
            firewall,
            default_bridge,
            networks,
        }
    }

    /// One `[hosts.X.docker.networks.NAME]`: its subnet is left empty when not written, for
    /// [`Self::default_subnets`] to fill once every written one is known.
    fn user_network(&mut self, h: usize, spec: &Named<NetworkSpec>) -> NetDraft {
        let mut net_name = name(&spec.name, "network", self.diags);
        if PREDEFINED_NETWORKS.contains(&spec.name.value.as_str()) {
            let message = format!(
                "`{}` is a network every Docker host has already",
                spec.name.value
            );
            let help = "name the network otherwise; containers reach the default bridge with \
                        `network = \"bridge\"` (or no `network` at all)";
            self.error(Diagnostic::error(spec.name.span.clone(), message).with_help(help));
            net_name = None;
        }
        let host = self.hosts[h].spec.name.value.clone();
        let bridge = match &spec.body.bridge {
            Some(raw) => self.docker_bridge(raw),
            None => Some(user_bridge_name(&host, &spec.name.value)),
        };
        let subnet = match &spec.body.subnet {
            Some(raw) => self.docker_subnet(raw),
            None => None,
        };
        let nat = match &spec.body.nat {
            Some(nat) => self.nat(h, nat),
            None => Some(Nat::MASQUERADE),
        };
        NetDraft {
            name: net_name,
            label: spec.name.value.clone(),
            bridge,
            bridge_span: spec
                .body
                .bridge
                .as_ref()
                .map_or(spec.span.clone(), |b| b.span.clone()),
            subnet,
            subnet_span: spec
                .body
                .subnet
                .as_ref()
                .map_or(spec.span.clone(), |s| s.span.clone()),
            subnet_written: spec.body.subnet.is_some(),
            nat,
            nat_span: spec
                .body
                .nat
                .as_ref()
                .map_or(spec.span.clone(), NatSpec::span),
        }
    }

    fn docker_bridge(&mut self, raw: &Spanned<String>) -> Option<IfName> {
        if RESERVED_IFNAMES.contains(&raw.value.as_str()) {
            let message = format!("the docker bridge cannot be named `{}`", raw.value);
            let help = "`lo` and `eth0` already exist in the host's namespace; \
                        Docker's default is \"docker0\"";
            self.error(Diagnostic::error(raw.span.clone(), message).with_help(help));
            return None;
        }
        // The name is written into nft rules (`oifname "X"`, where `*` is a wildcard and `"`
        // cannot be escaped) and into `lab show --commands`: only characters all of them read
        // as themselves.
        if let Some(c) = raw
            .value
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            let message = format!(
                "invalid docker bridge name: `{}` contains `{}`",
                raw.value,
                c.escape_default()
            );
            let help = "use letters, digits, `-`, `_` and `.`, like \"docker0\" or \"br-lab\"";
            self.error(Diagnostic::error(raw.span.clone(), message).with_help(help));
            return None;
        }
        IfName::new(&raw.value)
            .map_err(|e| {
                self.error(Diagnostic::error(
                    raw.span.clone(),
                    format!("invalid docker bridge name: {e}"),
                ))
            })
            .ok()
    }

    fn docker_subnet(&mut self, raw: &Spanned<String>) -> Option<Ipv4Net> {
        let net = subnet(raw, self.diags)?;
        if net.prefix_len() > 30 {
            self.error(
                Diagnostic::error(
                    raw.span.clone(),
                    format!("docker subnet {net} is too small"),
                )
                .with_help(
                    "it needs a gateway and at least one container address: \
                         use a prefix length of at most 30",
                ),
            );
            return None;
        }
        Some(net)
    }

    /// Container traffic is told apart from LAN traffic by address, so they cannot overlap.
    fn docker_vs_lans(&mut self, h: usize) {
        let host = &self.hosts[h];
        let Some(d) = &host.docker else { return };
        let mut found = Vec::new();
        for (i, net) in d.all().enumerate() {
            let Some(subnet) = net.subnet else { continue };
            let clash = self
                .lans
                .iter()
                .filter_map(|l| Some((l, l.subnet?)))
                .find(|(_, ln)| overlaps(*ln, subnet));
            let Some((lan, ln)) = clash else { continue };
            let host_name = &host.spec.name.value;
            let (what, table) = if i == 0 {
                let which = if net.subnet_written {
                    "docker subnet"
                } else {
                    "default docker subnet"
                };
                (
                    format!("{which} {subnet} of host `{host_name}`"),
                    format!("[hosts.{host_name}.docker]"),
                )
            } else {
                (
                    format!(
                        "subnet {subnet} of network `{}` of host `{host_name}`",
                        net.label
                    ),
                    format!("[hosts.{host_name}.docker.networks.{}]", net.label),
                )
            };
            let help = format!("set another range with `subnet = \"...\"` in {table}");
            found.push(
                Diagnostic::error(
                    net.subnet_span.clone(),
                    format!(
                        "{what} overlaps subnet {ln} of LAN `{}`",
                        lan.spec.name.value
                    ),
                )
                .with_help(help),
            );
        }
        for d in found {
            self.error(d);
        }
    }

    fn nat(&mut self, h: usize, spec: &NatSpec) -> Option<Nat> {
        match spec {
            NatSpec::Mode(mode) => nat_mode(mode, self.diags),
            NatSpec::Table(t) => self.nat_table(h, t),
        }
    }

    fn nat_table(&mut self, h: usize, t: &NatTableSpec) -> Option<Nat> {
        if let Some(profile) = &t.profile {
            return self.cloud_nat(h, t, profile);
        }
        if let Some(m) = &t.min_ports_per_vm {
            self.error(
                Diagnostic::error(
                    m.span.clone(),
                    "`min_ports_per_vm` only applies to a profile",
                )
                .with_help("write nat = { profile = \"gcp-cloud-nat\", min_ports_per_vm = 64 }"),
            );
        }
        let ports = t.ports.as_ref().and_then(|p| ports(p, self.diags));
        let ports_ok = t.ports.is_none() || ports.is_some();
        let random_fully = t.random_fully.as_ref().is_some_and(|r| r.value);
        match (&t.snat, &t.masquerade) {
            (Some(_), Some(m)) => {
                let help = "keep `snat` to choose the addresses, \
                            or `masquerade = true` to use the primary one";
                let message = "`snat` and `masquerade` cannot both be set";
                self.error(Diagnostic::error(m.span.clone(), message).with_help(help));
                None
            }
            (None, None) => {
                let help = "e.g. { snat = [\"10.0.0.5\"] }, \
                            { masquerade = true, ports = \"40000-40099\" } \
                            or { profile = \"aws-nat-gateway\" }";
                let message = "a nat table needs `snat`, `masquerade` or `profile`";
                self.error(Diagnostic::error(t.span.clone(), message).with_help(help));
                None
            }
            (None, Some(m)) => {
                let ok = masquerade_flags(m, t.persistent.as_ref(), self.diags);
                (ok && ports_ok && t.min_ports_per_vm.is_none()).then_some(Nat::Masquerade {
                    ports,
                    random_fully,
                })
            }
            (Some(list), None) => {
                let pool = self.snat_pool(h, list)?;
                let persistent = t.persistent.as_ref().is_some_and(|p| p.value);
                (ports_ok && t.min_ports_per_vm.is_none()).then_some(Nat::Snat {
                    pool,
                    ports,
                    persistent,
                    random_fully,
                })
            }
        }
    }

    /// `nat = { profile = "..." }`: the host plays a cloud's NAT with all its addresses; the
    /// other NAT keys do not apply, and each cloud's own limits are checked.
    fn cloud_nat(&mut self, h: usize, t: &NatTableSpec, raw: &Spanned<String>) -> Option<Nat> {
        let mut ok = true;
        let profile = CloudProfile::from_name(&raw.value);
        if profile.is_none() {
            let names = CloudProfile::ALL.map(CloudProfile::name);
            let diag = Diagnostic::error(
                raw.span.clone(),
                format!("unknown NAT profile `{}`", raw.value),
            );
            let allowed = names.map(|n| format!("\"{n}\"")).join(", ");
            self.error(match did_you_mean(&raw.value, names) {
                Some(s) => diag.with_help(format!("did you mean \"{s}\"? (allowed: {allowed})")),
                None => diag.with_help(format!("use one of {allowed}")),
            });
            ok = false;
        }
        let not_with_profile: [(&str, Option<&Span>); 5] = [
            ("snat", t.snat.as_ref().map(|s| &s.span)),
            ("masquerade", t.masquerade.as_ref().map(|s| &s.span)),
            ("ports", t.ports.as_ref().map(|s| &s.span)),
            ("persistent", t.persistent.as_ref().map(|s| &s.span)),
            ("random_fully", t.random_fully.as_ref().map(|s| &s.span)),
        ];
        for (key, span) in not_with_profile {
            if let Some(span) = span {
                self.error(
                    Diagnostic::error(
                        span.clone(),
                        format!("`{key}` cannot be set with a `profile`"),
                    )
                    .with_help(
                        "a profile is the cloud's NAT as published: its addresses are the \
                             host's, its ports the cloud's; remove the key",
                    ),
                );
                ok = false;
            }
        }
        let host = &self.hosts[h];
        let (host_name, addresses) = (host.spec.name.value.clone(), host.addresses.clone());
        let profile = profile?;
        let mut ports_per_vm = None;
        match profile {
            CloudProfile::AwsNatGateway => {
                if addresses.len() > cloud::AWS_MAX_ADDRESSES {
                    self.error(
                        Diagnostic::error(
                            raw.span.clone(),
                            format!(
                                "an AWS NAT gateway has at most {} addresses; host `{host_name}` has {}",
                                cloud::AWS_MAX_ADDRESSES,
                                addresses.len()
                            ),
                        )
                        .with_help(format!(
                            "AWS allows 1 primary and 7 secondary IPv4 addresses per NAT gateway \
                             (a second gateway is a second host); give host `{host_name}` at most {}",
                            cloud::AWS_MAX_ADDRESSES
                        )),
                    );
                    ok = false;
                }
                if let Some(m) = &t.min_ports_per_vm {
                    self.error(
                        Diagnostic::error(
                            m.span.clone(),
                            "`min_ports_per_vm` is GCP's; an AWS NAT gateway shares 55,000 ports \
                             per address and destination among all",
                        )
                        .with_help("remove it, or use profile = \"gcp-cloud-nat\""),
                    );
                    ok = false;
                }
            }
            CloudProfile::GcpCloudNat => {
                let m = t.min_ports_per_vm.as_ref();
                let value = m.map_or(i64::from(cloud::GCP_DEFAULT_PORTS_PER_VM), |m| m.value);
                let max = i64::from(cloud::GCP_MAX_PORTS_PER_VM);
                if !(2..=max).contains(&value) || value.count_ones() != 1 {
                    let span = m.map_or(raw.span.clone(), |m| m.span.clone());
                    let up = u64::try_from(value.clamp(2, max)).map_or(64, u64::next_power_of_two);
                    self.error(
                        Diagnostic::error(
                            span,
                            format!(
                                "min_ports_per_vm = {value} is not a power of two from 2 to {max}"
                            ),
                        )
                        .with_help(format!(
                            "GCP rounds static allocations to a power of two and one NAT IP has \
                             64,512 ports: e.g. min_ports_per_vm = {}",
                            up.min(max as u64)
                        )),
                    );
                    ok = false;
                } else {
                    ports_per_vm = u32::try_from(value).ok();
                }
            }
            CloudProfile::AzureLbOutbound => {
                if let Some(m) = &t.min_ports_per_vm {
                    self.error(
                        Diagnostic::error(
                            m.span.clone(),
                            "`min_ports_per_vm` is GCP's; Azure preallocates by backend pool size",
                        )
                        .with_help(
                            "remove it: the ports per VM follow from the containers on the network",
                        ),
                    );
                    ok = false;
                }
                // Filled in by `cloud_pools` once the containers on the network are known.
            }
        }
        ok.then_some(Nat::Cloud(CloudNat {
            profile,
            addresses,
            ports_per_vm,
        }))
    }

    /// The kernel's SNAT range is every address from the lowest to the highest, so the pool
    /// must be a contiguous run of the host's own addresses.
    fn snat_pool(&mut self, h: usize, list: &StringList) -> Option<Vec<Ipv4Addr>> {
        let host = &self.hosts[h];
        let (host_name, own) = (host.spec.name.value.clone(), host.addresses.clone());
        if list.value.is_empty() {
            self.error(
                Diagnostic::error(list.span.clone(), "`snat` is empty").with_help(format!(
                    "list some of host `{host_name}`'s addresses: {}",
                    join(&own)
                )),
            );
            return None;
        }
        let mut pool = Vec::new();
        let mut ok = true;
        for raw in &list.value {
            let Some(addr) = address(raw, self.diags) else {
                ok = false;
                continue;
            };
            if !own.is_empty() && !own.contains(&addr) {
                self.error(
                    Diagnostic::error(
                        raw.span.clone(),
                        format!("{addr} is not an address of host `{host_name}`"),
                    )
                    .with_help(format!("host `{host_name}` has: {}", join(&own))),
                );
                ok = false;
            } else if pool.contains(&addr) {
                self.error(Diagnostic::error(
                    raw.span.clone(),
                    format!("{addr} is listed twice in `snat`"),
                ));
                ok = false;
            } else {
                pool.push(addr);
            }
        }
        pool.sort();
        if let Some(w) = pool
            .windows(2)
            .find(|w| u32::from(w[0]) + 1 != u32::from(w[1]))
        {
            let message = format!(
                "`snat` addresses must be contiguous: nothing between {} and {}",
                w[0], w[1]
            );
            let help = "the kernel's NAT range is every address from the lowest to the highest; \
                        fill the gap or shrink the pool";
            self.error(Diagnostic::error(list.span.clone(), message).with_help(help));
            ok = false;
        }
        ok.then_some(pool)
    }
}

/// Docker's default bridge network, for a host that has containers but no `docker` table.
fn implicit_default_bridge(spec: &Named<HostSpec>) -> NetDraft {
    NetDraft {
        name: Name::new(DEFAULT_BRIDGE_NETWORK).ok(),
        label: DEFAULT_BRIDGE_NETWORK.to_owned(),
        bridge: IfName::new(DEFAULT_DOCKER_BRIDGE).ok(),
        bridge_span: spec.span.clone(),
        subnet: Some(DEFAULT_DOCKER_SUBNET),
        subnet_span: spec.span.clone(),
        subnet_written: false,
        nat: Some(Nat::MASQUERADE),
        nat_span: spec.span.clone(),
    }
}

/// daemon.json's `"firewall-backend"`: Docker's two, by their daemon.json names.
fn firewall(raw: &Spanned<String>, d: &mut Vec<Diagnostic>) -> Option<FirewallBackend> {
    const ALL: [FirewallBackend; 2] = [FirewallBackend::IptablesNft, FirewallBackend::Nftables];
    if let Some(f) = ALL.into_iter().find(|f| f.name() == raw.value) {
        return Some(f);
    }
    let diag = Diagnostic::error(
        raw.span.clone(),
        format!("unknown firewall backend `{}`", raw.value),
    );
    let names = ALL.map(FirewallBackend::name);
    d.push(match did_you_mean(&raw.value, names) {
        Some(s) => diag.with_help(format!(
            "did you mean \"{s}\"? (allowed: \"iptables-nft\", Docker's default, or \"nftables\", Docker 29's native backend)"
        )),
        None => diag.with_help(
            "use \"iptables-nft\" (Docker's default) or \"nftables\" (Docker 29's native backend)",
        ),
    });
    None
}

impl NatSpec {
    fn span(&self) -> Span {
        match self {
            NatSpec::Mode(m) => m.span.clone(),
            NatSpec::Table(t) => t.span.clone(),
        }
    }
}

fn nat_mode(mode: &Spanned<String>, d: &mut Vec<Diagnostic>) -> Option<Nat> {
    match mode.value.as_str() {
        "masquerade" => Some(Nat::MASQUERADE),
        "none" => Some(Nat::None),
        other => {
            let diag = Diagnostic::error(mode.span.clone(), format!("unknown nat mode `{other}`"));
            d.push(match did_you_mean(other, ["masquerade", "none"]) {
                Some(s) => diag.with_help(format!("did you mean \"{s}\"?")),
                None => diag.with_help(
                    "use \"masquerade\", \"none\", or a table like { snat = [\"10.0.0.5\"] }",
                ),
            });
            None
        }
    }
}

/// `masquerade = true` is the only meaningful value, and `persistent` is an SNAT option.
fn masquerade_flags(
    m: &Spanned<bool>,
    persistent: Option<&Spanned<bool>>,
    d: &mut Vec<Diagnostic>,
) -> bool {
    let mut ok = true;
    if !m.value {
        d.push(
            Diagnostic::error(m.span.clone(), "`masquerade = false` does not choose a NAT")
                .with_help("write nat = \"none\" to turn NAT off"),
        );
        ok = false;
    }
    if let Some(p) = persistent {
        d.push(Diagnostic::error(
            p.span.clone(),
            "`persistent` only applies to `snat`",
        ));
        ok = false;
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::lab::plan::{CloudNat, CloudProfile, HostId, PortRange, Route};

    #[test]
    fn each_host_has_its_own_docker_network() {
        let text = with(
            r#"[hosts.b]
lan = "lan"
addresses = ["10.0.0.2"]
[containers.x]
host = "a"
[containers.y]
host = "b"
"#,
        );
        let plan = ok(&text).plan;
        assert_eq!(plan.containers[0].address, plan.containers[1].address);
        assert_eq!(plan.containers[0].host, HostId(0));
        assert_eq!(plan.containers[1].host, HostId(1));
        assert_ne!(plan.containers[0].veth, plan.containers[1].veth);
    }

    #[test]
    fn docker_subnet_must_not_overlap_a_lan() {
        let text = with("[hosts.a.docker]\nsubnet = \"10.0.0.0/25\"\n");
        reported(
            &text,
            "docker subnet 10.0.0.0/25 of host `a` overlaps subnet 10.0.0.0/24 of LAN `lan`",
            (8, 10),
        );
        // Docker's default network counts too, when containers make it exist.
        let text = with("[containers.c]\nhost = \"a\"\n")
            .replace("10.0.0.0/24", "172.17.5.0/24")
            .replace("10.0.0.1", "172.17.5.1");
        reported(
            &text,
            "default docker subnet 172.17.0.0/16 of host `a` overlaps",
            (4, 1),
        );
    }

    /// `nat = "none"`: the LAN's other hosts route the docker subnet to its host, so no other
    /// docker subnet on the LAN may overlap it.
    #[test]
    fn an_untranslated_docker_subnet_is_routed_and_must_be_alone_on_its_lan() {
        let two = format!(
            "{BASE}[hosts.a.docker]\nnat = \"none\"\n[hosts.b]\nlan = \"lan\"\n\
             addresses = [\"10.0.0.2\", \"10.0.0.3\"]\n[hosts.c]\nlan = \"lan\"\n\
             addresses = [\"10.0.0.4\"]\n"
        );
        let plan = ok(&two).plan;
        let routes = |h: usize| plan.hosts[h].routes.clone();
        let to_a = Route {
            dst: "172.17.0.0/16".parse().unwrap(),
            via: "10.0.0.1".parse().unwrap(),
        };
        assert_eq!(routes(0), []);
        assert_eq!(routes(1), [to_a]);
        assert_eq!(routes(2), [to_a]);
        // A masquerading host routes nothing to anyone.
        let masq = two.replace("nat = \"none\"", "nat = \"masquerade\"");
        assert!(ok(&masq).plan.hosts.iter().all(|h| h.routes.is_empty()));
        reported(
            &format!("{two}[hosts.c.docker]\nsubnet = \"172.17.4.0/24\"\n"),
            "docker subnet 172.17.0.0/16 of host `a` (nat = \"none\") overlaps docker subnet \
             172.17.4.0/24 of host `c` on the same LAN",
            (7, 1),
        );
    }

    /// A host with two user-defined networks; appended to BASE, it starts on line 7.
    const NETS: &str = r#"[hosts.a.docker.networks.one]
nat = { snat = ["10.0.0.1"] }
[hosts.a.docker.networks.two]
subnet = "172.30.0.0/24"
bridge = "br-two"
[containers.c]
host = "a"
replicas = 2
network = "one"
[containers.d]
host = "a"
network = "two"
address = "172.30.0.9"
[containers.e]
host = "a"
"#;

    #[test]
    fn user_defined_networks_and_their_containers() {
        let plan = ok(&with(NETS)).plan;
        let docker = plan.hosts[0].docker.as_ref().unwrap();
        assert_eq!(docker.default_bridge.name.as_str(), "bridge");
        let names: Vec<_> = docker.all_networks().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["bridge", "one", "two"]);
        let one = docker.network(NetworkId(1)).unwrap();
        assert_eq!(one.bridge, user_bridge_name("a", "one"));
        // Docker's next default pool after docker0's 172.17.0.0/16.
        assert_eq!(one.subnet.to_string(), "172.18.0.0/16");
        assert_eq!(one.gateway, ip("172.18.0.1"));
        assert_eq!(
            one.nat,
            Nat::Snat {
                pool: vec![ip("10.0.0.1")],
                ports: None,
                persistent: false,
                random_fully: false,
            }
        );
        let two = docker.network(NetworkId(2)).unwrap();
        assert_eq!(two.bridge.as_str(), "br-two");
        assert_eq!(two.subnet.to_string(), "172.30.0.0/24");
        assert_eq!(two.nat, Nat::MASQUERADE);
        let macs: HashSet<_> = docker.all_networks().map(|n| n.mac).collect();
        assert_eq!(macs.len(), 3, "each bridge has a MAC of its own");
        assert!(docker.network(NetworkId(3)).is_none());

        let got: Vec<_> = plan
            .containers
            .iter()
            .map(|c| (c.name.as_str(), c.network, c.address.to_string()))
            .collect();
        assert_eq!(
            got,
            [
                ("c1", NetworkId(1), "172.18.0.2".to_owned()),
                ("c2", NetworkId(1), "172.18.0.3".to_owned()),
                ("d", NetworkId(2), "172.30.0.9".to_owned()),
                ("e", NetworkId::DEFAULT_BRIDGE, "172.17.0.2".to_owned()),
            ]
        );
        let c1 = &plan.containers[0];
        assert_eq!(plan.network_of(c1).unwrap().name.as_str(), "one");
        assert_eq!(c1.mac.to_string(), "02:42:ac:12:00:02");
        let on_one: Vec<_> = plan
            .containers_on(HostId(0), NetworkId(1))
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(on_one, ["c1", "c2"]);

        // `network = "bridge"` is the default bridge, as Docker calls it.
        let text = with(&NETS.replace("network = \"one\"", "network = \"bridge\""));
        let plan = ok(&text).plan;
        assert_eq!(plan.containers[0].network, NetworkId::DEFAULT_BRIDGE);
        assert_eq!(plan.containers[0].address, ip("172.17.0.2"));
    }

    #[test]
    fn default_subnets_skip_lans_other_networks_and_routed_neighbours() {
        let nets = "[hosts.a.docker.networks.one]\n[hosts.a.docker.networks.two]\n";
        let subnets = |text: &str| -> Vec<String> {
            let plan = ok(text).plan;
            let d = plan.hosts[0].docker.clone().unwrap();
            d.networks.iter().map(|n| n.subnet.to_string()).collect()
        };
        assert_eq!(subnets(&with(nets)), ["172.18.0.0/16", "172.19.0.0/16"]);
        // A LAN in 172.18, and the second network's own subnet written as 172.20.
        let text = BASE
            .replace("10.0.0.0/24", "172.18.4.0/24")
            .replace("10.0.0.1", "172.18.4.1")
            + "[hosts.a.docker.networks.one]\n[hosts.a.docker.networks.two]\n\
               subnet = \"172.19.0.0/16\"\n";
        assert_eq!(subnets(&text), ["172.20.0.0/16", "172.19.0.0/16"]);
        // A neighbour on the LAN whose network is untranslated: the LAN routes its subnet.
        let text = with(&format!(
            "{nets}[hosts.b]\nlan = \"lan\"\naddresses = [\"10.0.0.2\"]\n\
             [hosts.b.docker]\nsubnet = \"172.31.0.0/16\"\n\
             [hosts.b.docker.networks.flat]\nsubnet = \"172.18.0.0/16\"\nnat = \"none\"\n"
        ));
        assert_eq!(subnets(&text), ["172.19.0.0/16", "172.20.0.0/16"]);
    }

    #[test]
    fn network_references() {
        let d = reported(
            &with(&NETS.replace("network = \"one\"", "network = \"ones\"")),
            "unknown network `ones` on host `a`",
            (15, 11),
        );
        assert_eq!(d.help.as_deref(), Some("did you mean `one`?"));
        let d = reported(
            &with("[containers.c]\nhost = \"a\"\nnetwork = \"egress\"\n"),
            "unknown network `egress` on host `a`",
            (9, 11),
        );
        assert_eq!(
            d.help.as_deref(),
            Some("host `a` has: `bridge`; define it in a [hosts.a.docker.networks.egress] table")
        );
        for name in ["bridge", "host", "none"] {
            reported(
                &with(&format!("[hosts.a.docker.networks.{name}]\n")),
                &format!("`{name}` is a network every Docker host has already"),
                (7, 26),
            );
        }
        reported(
            &with("[hosts.a.docker.networks.\"a b\"]\n"),
            "invalid network name",
            (7, 26),
        );
    }

    #[test]
    fn network_bridges_are_valid_and_one_per_network() {
        let text = with(&format!(
            "{NETS}[hosts.a.docker.networks.three]\nbridge = \"br-two\"\n"
        ));
        let d = reported(
            &text,
            "network `three` of host `a` uses bridge `br-two`, already the bridge of network `two`",
            (23, 10),
        );
        assert!(d.help.unwrap().contains("bridge of its own"));
        reported(
            &with("[hosts.a.docker.networks.one]\nbridge = \"docker0\"\n"),
            "network `one` of host `a` uses bridge `docker0`, already the bridge of network `bridge`",
            (8, 10),
        );
        reported(
            &with("[hosts.a.docker.networks.one]\nbridge = \"br*\"\n"),
            "invalid docker bridge name: `br*` contains `*`",
            (8, 10),
        );
        reported(
            &with("[hosts.a.docker.networks.one]\nbridge = \"eth0\"\n"),
            "the docker bridge cannot be named `eth0`",
            (8, 10),
        );
    }

    #[test]
    fn network_subnets_overlap_nothing() {
        reported(
            &with("[hosts.a.docker.networks.one]\nsubnet = \"172.17.5.0/24\"\n"),
            "subnet 172.17.5.0/24 of network `one` overlaps subnet 172.17.0.0/16 of network \
             `bridge` on host `a`",
            (8, 10),
        );
        reported(
            &with(&format!(
                "{NETS}[hosts.a.docker.networks.three]\nsubnet = \"172.30.0.128/25\"\n"
            )),
            "subnet 172.30.0.128/25 of network `three` overlaps subnet 172.30.0.0/24 of network \
             `two` on host `a`",
            (23, 10),
        );
        let d = reported(
            &with("[hosts.a.docker.networks.one]\nsubnet = \"10.0.0.0/25\"\n"),
            "subnet 10.0.0.0/25 of network `one` of host `a` overlaps subnet 10.0.0.0/24 of LAN \
             `lan`",
            (8, 10),
        );
        assert!(d.help.unwrap().contains("[hosts.a.docker.networks.one]"));
        reported(
            &with("[hosts.a.docker.networks.one]\nsubnet = \"172.18.0.0/31\"\n"),
            "docker subnet 172.18.0.0/31 is too small",
            (8, 10),
        );
        // An untranslated network is routed by the LAN: another host's subnet may not overlap.
        reported(
            &with(
                "[hosts.a.docker.networks.flat]\nsubnet = \"172.20.0.0/16\"\nnat = \"none\"\n\
                 [hosts.b]\nlan = \"lan\"\naddresses = [\"10.0.0.2\"]\n\
                 [hosts.b.docker]\nsubnet = \"172.20.8.0/24\"\n",
            ),
            "docker subnet 172.20.0.0/16 of host `a` (nat = \"none\") overlaps docker subnet \
             172.20.8.0/24 of host `b` on the same LAN",
            (8, 10),
        );
    }

    #[test]
    fn addresses_and_snat_per_network() {
        reported(
            &with(
                &NETS
                    .replace(
                        "network = \"one\"",
                        "network = \"one\"\naddress = \"172.17.0.5\"",
                    )
                    .replace("replicas = 2\n", ""),
            ),
            "address 172.17.0.5 is outside subnet 172.18.0.0/16 of network `one` of host `a`",
            (15, 11),
        );
        reported(
            &with(&NETS.replace("172.30.0.9", "172.30.0.1")),
            "address 172.30.0.1 is the gateway of network `two` of host `a`",
            (19, 11),
        );
        let d = reported(
            &with("[hosts.a.docker.networks.one]\nnat = { snat = [\"10.0.0.9\"] }\n"),
            "10.0.0.9 is not an address of host `a`",
            (8, 17),
        );
        assert_eq!(d.help.as_deref(), Some("host `a` has: 10.0.0.1"));
        reported(
            &with("[hosts.a.docker.networks.one]\nnat = \"masqerade\"\n"),
            "unknown nat mode `masqerade`",
            (8, 7),
        );
        reported(
            &with(
                "[hosts.a.docker.networks.one]\nsubnet = \"172.18.0.0/30\"\n\
                 [containers.c]\nhost = \"a\"\nreplicas = 2\nnetwork = \"one\"\n",
            ),
            "subnet 172.18.0.0/30 of network `one` of host `a` has no address left for container \
             `c2`",
            (11, 12),
        );
    }

    /// Every mistake of the networks at once, each at its place.
    #[test]
    fn every_network_error_at_once() {
        let text = with(
            r#"[hosts.a.docker.networks.one]
bridge = "docker0"
subnet = "10.0.0.0/25"
nat = { snat = ["10.0.0.7"] }
[hosts.a.docker.networks.none]
[containers.c]
host = "a"
network = "tow"
"#,
        );
        let source = crate::lab::diag::Source::new("t.toml", &text);
        let got: Vec<_> = rejected(&text)
            .iter()
            .map(|d| (source.line_col(d.span.start), d.message.clone()))
            .collect();
        let want = [
            (8, 10, "uses bridge `docker0`"),
            (9, 10, "overlaps subnet 10.0.0.0/24 of LAN `lan`"),
            (10, 17, "10.0.0.7 is not an address of host `a`"),
            (11, 26, "`none` is a network every Docker host has already"),
            (14, 11, "unknown network `tow`"),
        ];
        assert_eq!(got.len(), want.len(), "{got:#?}");
        for ((at, message), (line, col, want)) in got.iter().zip(want) {
            assert_eq!(*at, (line, col), "{message}");
            assert!(message.contains(want), "{message:?} vs {want:?}");
        }
    }

    #[test]
    fn docker_subnet_needs_room() {
        let text = with("[hosts.a.docker]\nsubnet = \"172.17.0.0/31\"\n");
        reported(&text, "docker subnet 172.17.0.0/31 is too small", (8, 10));
    }

    #[test]
    fn docker_bridge_names() {
        let text = with("[hosts.a.docker]\nbridge = \"eth0\"\n");
        reported(&text, "the docker bridge cannot be named `eth0`", (8, 10));
        let text = with("[hosts.a.docker]\nbridge = \"lo\"\n");
        reported(&text, "the docker bridge cannot be named `lo`", (8, 10));
        let text = with("[hosts.a.docker]\nbridge = \"docker-bridge-zero\"\n");
        reported(
            &text,
            "invalid docker bridge name: interface name `docker-bridge-zero` is 18 bytes",
            (8, 10),
        );
        for bad in ["br*", "a\\\"b", "a'b", "a$b", "a;b", "a\\\\b"] {
            let text = with(&format!("[hosts.a.docker]\nbridge = \"{bad}\"\n"));
            let d = rejected(&text);
            assert!(
                d[0].message.starts_with("invalid docker bridge name: `"),
                "{bad}: {d:?}"
            );
        }
        let text = with("[hosts.a.docker]\nbridge = \"br-1.x_y\"\n");
        assert_eq!(
            ok(&text).plan.hosts[0]
                .docker
                .as_ref()
                .unwrap()
                .default_bridge
                .bridge
                .as_str(),
            "br-1.x_y"
        );
        // A bridge named like a container's derived veth: the veth takes another salt.
        let base = format!("{BASE}[containers.c]\nhost = \"a\"\n");
        let veth = ok(&base).plan.containers[0].veth.clone();
        let text = format!("{base}[hosts.a.docker]\nbridge = \"{veth}\"\n");
        let plan = ok(&text).plan;
        assert_ne!(plan.containers[0].veth, veth);
    }

    const NAT_BASE: &str = r#"name = "t"
[lans.lan]
subnet = "10.0.0.0/24"
[hosts.a]
lan = "lan"
addresses = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.5"]
[hosts.a.docker]
"#;

    fn nat_of(nat: &str) -> Nat {
        let plan = ok(&format!("{NAT_BASE}nat = {nat}\n")).plan;
        plan.hosts[0].docker.clone().unwrap().default_bridge.nat
    }

    fn nat_error(nat: &str, message: &str, col: usize) -> Diagnostic {
        reported(&format!("{NAT_BASE}nat = {nat}\n"), message, (8, col))
    }

    #[test]
    fn nat_forms() {
        assert_eq!(nat_of("\"none\""), Nat::None);
        assert_eq!(nat_of("\"masquerade\""), Nat::MASQUERADE);
        assert_eq!(
            nat_of("{ masquerade = true, ports = \"40000-40099\" }"),
            Nat::Masquerade {
                ports: Some(PortRange::new(40000, 40099).unwrap()),
                random_fully: false,
            }
        );
        assert_eq!(
            nat_of(
                "{ snat = [\"10.0.0.3\", \"10.0.0.1\", \"10.0.0.2\"], ports = \"5000\", persistent = true }"
            ),
            Nat::Snat {
                pool: vec![ip("10.0.0.1"), ip("10.0.0.2"), ip("10.0.0.3")],
                ports: Some(PortRange::new(5000, 5000).unwrap()),
                persistent: true,
                random_fully: false,
            }
        );
        assert_eq!(
            nat_of("{ snat = [\"10.0.0.5\"] }"),
            Nat::Snat {
                pool: vec![ip("10.0.0.5")],
                ports: None,
                persistent: false,
                random_fully: false,
            }
        );
        assert_eq!(
            nat_of("{ snat = [\"10.0.0.5\"], random_fully = true }"),
            Nat::Snat {
                pool: vec![ip("10.0.0.5")],
                ports: None,
                persistent: false,
                random_fully: true,
            }
        );
        assert_eq!(
            nat_of("{ masquerade = true, random_fully = true }"),
            Nat::Masquerade {
                ports: None,
                random_fully: true,
            }
        );
    }

    #[test]
    fn nat_errors() {
        let d = nat_error("\"masqerade\"", "unknown nat mode `masqerade`", 7);
        assert_eq!(d.help.as_deref(), Some("did you mean \"masquerade\"?"));
        let d = nat_error(
            "{ masquerade = false }",
            "`masquerade = false` does not choose a NAT",
            22,
        );
        assert_eq!(
            d.help.as_deref(),
            Some("write nat = \"none\" to turn NAT off")
        );
        nat_error(
            "{ snat = [\"10.0.0.1\"], masquerade = true }",
            "`snat` and `masquerade` cannot both be set",
            43,
        );
        nat_error(
            "{ ports = \"1-2\" }",
            "a nat table needs `snat`, `masquerade` or `profile`",
            7,
        );
        nat_error(
            "{ masquerade = true, persistent = true }",
            "`persistent` only applies to `snat`",
            41,
        );
        nat_error(
            "{ masquerade = true, ports = \"2000-1000\" }",
            "port range 2000-1000 is empty",
            36,
        );
        nat_error(
            "{ masquerade = true, ports = \"20000:29999\" }",
            "invalid port range `20000:29999`",
            36,
        );
        nat_error(
            "{ masquerade = true, ports = \"0-10\" }",
            "port 0 cannot be part of a port range",
            36,
        );
    }

    #[test]
    fn cloud_profiles() {
        let addresses = vec![
            ip("10.0.0.1"),
            ip("10.0.0.2"),
            ip("10.0.0.3"),
            ip("10.0.0.5"),
        ];
        assert_eq!(
            nat_of("{ profile = \"aws-nat-gateway\" }"),
            Nat::Cloud(CloudNat {
                profile: CloudProfile::AwsNatGateway,
                addresses: addresses.clone(),
                ports_per_vm: None,
            })
        );
        assert_eq!(
            nat_of("{ profile = \"gcp-cloud-nat\" }"),
            Nat::Cloud(CloudNat {
                profile: CloudProfile::GcpCloudNat,
                addresses: addresses.clone(),
                ports_per_vm: Some(64),
            })
        );
        assert_eq!(
            nat_of("{ profile = \"gcp-cloud-nat\", min_ports_per_vm = 1024 }"),
            Nat::Cloud(CloudNat {
                profile: CloudProfile::GcpCloudNat,
                addresses: addresses.clone(),
                ports_per_vm: Some(1024),
            })
        );
        // Azure's preallocation follows the containers on the network: 51 here, 4 frontends.
        let text = format!(
            "{NAT_BASE}nat = {{ profile = \"azure-lb-outbound\" }}\n\
             [containers.c]\nhost = \"a\"\nreplicas = 51\n"
        );
        let nat = ok(&text).plan.hosts[0]
            .docker
            .clone()
            .unwrap()
            .default_bridge
            .nat;
        assert_eq!(
            nat,
            Nat::Cloud(CloudNat {
                profile: CloudProfile::AzureLbOutbound,
                addresses,
                ports_per_vm: Some(1024),
            })
        );
    }

    #[test]
    fn cloud_profile_errors() {
        let d = nat_error(
            "{ profile = \"aws-nat-gatway\" }",
            "unknown NAT profile `aws-nat-gatway`",
            19,
        );
        assert!(
            d.help
                .unwrap()
                .starts_with("did you mean \"aws-nat-gateway\"?"),
            "help names the nearest profile"
        );
        let d = nat_error(
            "{ profile = \"gcp-cloud-nat\", min_ports_per_vm = 100 }",
            "min_ports_per_vm = 100 is not a power of two from 2 to 32768",
            55,
        );
        assert!(d.help.unwrap().contains("min_ports_per_vm = 128"));
        nat_error(
            "{ profile = \"gcp-cloud-nat\", min_ports_per_vm = 65536 }",
            "min_ports_per_vm = 65536 is not a power of two from 2 to 32768",
            55,
        );
        nat_error(
            "{ profile = \"aws-nat-gateway\", min_ports_per_vm = 64 }",
            "`min_ports_per_vm` is GCP's",
            57,
        );
        nat_error(
            "{ profile = \"aws-nat-gateway\", ports = \"1024-2047\" }",
            "`ports` cannot be set with a `profile`",
            46,
        );
        nat_error(
            "{ masquerade = true, min_ports_per_vm = 64 }",
            "`min_ports_per_vm` only applies to a profile",
            47,
        );
        // AWS: 1 primary and 7 secondary addresses at most.
        let many: Vec<String> = (1..=9).map(|i| format!("\"10.0.0.{i}\"")).collect();
        let text = NAT_BASE.replace(
            "[\"10.0.0.1\", \"10.0.0.2\", \"10.0.0.3\", \"10.0.0.5\"]",
            &format!("[{}]", many.join(", ")),
        );
        reported(
            &format!("{text}nat = {{ profile = \"aws-nat-gateway\" }}\n"),
            "an AWS NAT gateway has at most 8 addresses; host `a` has 9",
            (8, 19),
        );
        // Azure's table ends at 1,000 VMs.
        reported(
            &format!(
                "{NAT_BASE}nat = {{ profile = \"azure-lb-outbound\" }}\n\
                 [containers.c]\nhost = \"a\"\nreplicas = 1001\n"
            ),
            "azure-lb-outbound preallocates for backend pools of up to 1000 VMs; this network has 1001 containers",
            (8, 7),
        );
    }

    #[test]
    fn snat_pool_errors() {
        let d = nat_error(
            "{ snat = [\"10.0.0.9\"] }",
            "10.0.0.9 is not an address of host `a`",
            17,
        );
        assert_eq!(
            d.help.as_deref(),
            Some("host `a` has: 10.0.0.1, 10.0.0.2, 10.0.0.3, 10.0.0.5")
        );
        nat_error(
            "{ snat = [\"10.0.0.3\", \"10.0.0.5\"] }",
            "`snat` addresses must be contiguous: nothing between 10.0.0.3 and 10.0.0.5",
            16,
        );
        nat_error(
            "{ snat = [\"10.0.0.1\", \"10.0.0.1\"] }",
            "10.0.0.1 is listed twice in `snat`",
            29,
        );
        nat_error("{ snat = [] }", "`snat` is empty", 16);
    }
}
