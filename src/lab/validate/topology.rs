//! The lab's nodes and how they connect: LANs (bridge names, subnets, disjointness), hosts
//! (LAN references, their ports on the LAN bridge, their addresses), container groups and their
//! replicas, and the one name space that LANs, hosts and containers share.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::lab::diag::Diagnostic;
use crate::lab::plan::{HostId, IfName, LanId, Name};
use crate::lab::spec::{ContainerSpec, HostSpec, LabSpec, LanSpec, Named, Span, Spanned};

use super::sysctls::sysctls;
use super::values::{
    BRIDGE_MAX_PORTS, address, bridge_full, node_name, overlaps, replica_names, subnet, unknown_ref,
};
use super::{ContainerDraft, GroupDraft, HostDraft, LanDraft, Validator};

impl<'s> Validator<'s, '_> {
    // ---- LANs ----

    pub(super) fn lans(&mut self, specs: &'s [Named<LanSpec>]) {
        for spec in specs {
            let name = node_name(&spec.name, "LAN", self.diags);
            let bridge = name.as_ref().and_then(|_| self.lan_bridge(spec));
            let subnet = spec.body.subnet.as_ref().and_then(|s| self.lan_subnet(s));
            self.lans.push(LanDraft {
                spec,
                name,
                bridge,
                subnet,
            });
        }
        self.disjoint_lans();
    }

    /// The LAN's bridge is named after the LAN, in the LAN's namespace.
    fn lan_bridge(&mut self, spec: &Named<LanSpec>) -> Option<IfName> {
        let raw = &spec.name.value;
        IfName::new(raw)
            .map_err(|e| {
                self.error(
                    Diagnostic::error(
                        spec.name.span.clone(),
                        format!("LAN name `{raw}` cannot name the LAN's bridge interface: {e}"),
                    )
                    .with_help(
                        "the bridge inside the LAN's namespace is named after the LAN; \
                         shorten the name",
                    ),
                )
            })
            .ok()
    }

    fn lan_subnet(&mut self, raw: &Spanned<String>) -> Option<Ipv4Net> {
        let net = subnet(raw, self.diags)?;
        if net.prefix_len() > 30 {
            self.error(
                Diagnostic::error(
                    raw.span.clone(),
                    format!("LAN subnet {net} has no room for host addresses"),
                )
                .with_help("use a prefix length of at most 30"),
            );
            return None;
        }
        Some(net)
    }

    /// Two LANs with overlapping subnets would make an address ambiguous.
    fn disjoint_lans(&mut self) {
        for (i, b) in self.lans.iter().enumerate() {
            let Some(nb) = b.subnet else { continue };
            let earlier = self.lans[..i].iter().filter_map(|a| Some((a, a.subnet?)));
            if let Some((a, na)) = earlier.into_iter().find(|(_, na)| overlaps(*na, nb)) {
                let span = b.spec.body.subnet.as_ref().map_or(0..0, |s| s.span.clone());
                self.diags.push(
                    Diagnostic::error(
                        span,
                        format!(
                            "subnet {nb} of LAN `{}` overlaps subnet {na} of LAN `{}`",
                            b.spec.name.value, a.spec.name.value
                        ),
                    )
                    .with_help("every LAN needs an address range of its own"),
                );
            }
        }
    }

    // ---- hosts ----

    pub(super) fn hosts(&mut self, specs: &'s [Named<HostSpec>]) {
        let mut owners: HashMap<Ipv4Addr, String> = HashMap::new();
        let mut per_lan: HashMap<usize, usize> = HashMap::new();
        for spec in specs {
            let name = node_name(&spec.name, "host", self.diags);
            let lan = spec.body.lan.as_ref().and_then(|l| self.lan_ref(l));
            let lan_port = name.as_ref().and_then(|_| self.host_port(spec, lan));
            let addresses = self.host_addresses(spec, lan, &mut owners);
            let sysctls = sysctls(&spec.body.sysctls, self.diags);
            if let Some(LanId(l)) = lan {
                let n = per_lan.entry(l).or_default();
                *n += 1;
                if *n == BRIDGE_MAX_PORTS + 1 {
                    let lan = &self.lans[l].spec.name.value;
                    let message = format!("LAN `{lan}` has more than {BRIDGE_MAX_PORTS} hosts");
                    self.error(bridge_full(spec.name.span.clone(), message));
                }
            }
            self.hosts.push(HostDraft {
                spec,
                name,
                lan_port,
                lan,
                addresses,
                sysctls,
                docker: None,
            });
        }
    }

    pub(super) fn require_hosts(&mut self, lab: &LabSpec) {
        if lab.hosts.is_empty() {
            self.error(
                Diagnostic::error(
                    lab.hosts_span.clone().unwrap_or(0..0),
                    "the lab has no hosts",
                )
                .with_help(
                    "add at least one, e.g. [hosts.a] with lan = \"...\" and addresses = [...]",
                ),
            );
        }
    }

    fn lan_ref(&mut self, raw: &Spanned<String>) -> Option<LanId> {
        let names: Vec<&str> = self
            .lans
            .iter()
            .map(|l| l.spec.name.value.as_str())
            .collect();
        let found = names.iter().position(|n| *n == raw.value);
        if found.is_none() {
            self.error(unknown_ref(raw, "LAN", "lans", &names));
        }
        found.map(LanId)
    }

    /// The host's port on the LAN bridge is named after the host, in the LAN's namespace.
    fn host_port(&mut self, spec: &Named<HostSpec>, lan: Option<LanId>) -> Option<IfName> {
        let raw = &spec.name.value;
        IfName::new(raw)
            .map_err(|e| {
                let lan = lan.map_or("its LAN".to_owned(), |l| {
                    format!("LAN `{}`", self.lans[l.0].spec.name.value)
                });
                self.error(
                    Diagnostic::error(
                        spec.name.span.clone(),
                        format!(
                            "host name `{raw}` cannot name the host's port on {lan}'s bridge: {e}"
                        ),
                    )
                    .with_help(
                        "a host's port on the LAN bridge is named after the host; shorten the name",
                    ),
                )
            })
            .ok()
    }

    /// Checks each address against the LAN and against every host before this one.
    fn host_addresses(
        &mut self,
        spec: &Named<HostSpec>,
        lan: Option<LanId>,
        owners: &mut HashMap<Ipv4Addr, String>,
    ) -> Vec<Ipv4Addr> {
        let Some(list) = &spec.body.addresses else {
            return Vec::new();
        };
        if list.value.is_empty() {
            self.error(
                Diagnostic::error(list.span.clone(), "`addresses` is empty")
                    .with_help("a host needs at least one address on its LAN"),
            );
        }
        let subnet = lan.and_then(|l| {
            Some((
                self.lans[l.0].spec.name.value.clone(),
                self.lans[l.0].subnet?,
            ))
        });
        let mut out = Vec::new();
        for raw in &list.value {
            let Some(addr) = address(raw, self.diags) else {
                continue;
            };
            if let Some((lan_name, net)) = &subnet
                && !self.inside(raw, addr, *net, &format!("LAN `{lan_name}`"))
            {
                continue;
            }
            if let Some(first) = owners.get(&addr) {
                self.error(Diagnostic::error(
                    raw.span.clone(),
                    format!("address {addr} is already used by host `{first}`"),
                ));
                continue;
            }
            owners.insert(addr, spec.name.value.clone());
            out.push(addr);
        }
        out
    }

    /// Whether `addr` is a usable host address of `net`; reports why not.
    pub(super) fn inside(
        &mut self,
        raw: &Spanned<String>,
        addr: Ipv4Addr,
        net: Ipv4Net,
        of: &str,
    ) -> bool {
        let problem = if !net.contains(&addr) {
            format!("address {addr} is outside subnet {net} of {of}")
        } else if addr == net.network() {
            format!("address {addr} is the network address of subnet {net} of {of}")
        } else if addr == net.broadcast() {
            format!("address {addr} is the broadcast address of subnet {net} of {of}")
        } else {
            return true;
        };
        self.error(Diagnostic::error(raw.span.clone(), problem));
        false
    }

    // ---- containers ----

    pub(super) fn groups(&mut self, specs: &'s [Named<ContainerSpec>]) {
        for spec in specs {
            let name = node_name(&spec.name, "container", self.diags);
            let host = spec.body.host.as_ref().and_then(|h| self.host_ref(h));
            let replicas = self.replicas(spec);
            let explicit = self.explicit_address(spec, replicas);
            let sysctls = sysctls(&spec.body.sysctls, self.diags);
            let start = self.containers.len();
            let group = self.groups.len();
            let names = replica_names(&spec.name.value, replicas.unwrap_or(0));
            let names_ok =
                name.is_some() && names.last().is_none_or(|n| self.replica_name(spec, n));
            for raw in names {
                let name = Name::new(&raw).ok().filter(|_| names_ok);
                self.containers.push(ContainerDraft {
                    raw,
                    name,
                    group,
                    host,
                    address: None,
                    explicit: explicit.clone(),
                    sysctls: sysctls.clone(),
                });
            }
            let replicas_span = spec
                .body
                .replicas
                .as_ref()
                .map_or(spec.span.clone(), |r| r.span.clone());
            self.groups.push(GroupDraft {
                spec,
                name,
                host,
                network: None,
                replicas_span,
                members: start..self.containers.len(),
            });
        }
    }

    pub(super) fn host_ref(&mut self, raw: &Spanned<String>) -> Option<HostId> {
        let names: Vec<&str> = self
            .hosts
            .iter()
            .map(|h| h.spec.name.value.as_str())
            .collect();
        let found = names.iter().position(|n| *n == raw.value);
        if found.is_none() {
            self.error(unknown_ref(raw, "host", "hosts", &names));
        }
        found.map(HostId)
    }

    /// The number of containers in a group: default 1, and no more than a bridge can take.
    fn replicas(&mut self, spec: &Named<ContainerSpec>) -> Option<usize> {
        let Some(r) = &spec.body.replicas else {
            return Some(1);
        };
        if r.value < 1 {
            self.error(
                Diagnostic::error(
                    r.span.clone(),
                    format!(
                        "`replicas = {}`: a group needs at least 1 container",
                        r.value
                    ),
                )
                .with_help("remove the group if it is not needed"),
            );
            return None;
        }
        match usize::try_from(r.value) {
            Ok(n) if n <= BRIDGE_MAX_PORTS => Some(n),
            _ => {
                let message = format!("`replicas = {}` is more than one bridge can take", r.value);
                self.error(bridge_full(r.span.clone(), message));
                None
            }
        }
    }

    fn explicit_address(
        &mut self,
        spec: &Named<ContainerSpec>,
        replicas: Option<usize>,
    ) -> Option<Spanned<Ipv4Addr>> {
        let raw = spec.body.address.as_ref()?;
        if replicas.is_some_and(|n| n > 1) {
            self.error(
                Diagnostic::error(
                    raw.span.clone(),
                    "`address` is only allowed with `replicas = 1`",
                )
                .with_help("replicas get consecutive addresses automatically; remove `address`"),
            );
            return None;
        }
        address(raw, self.diags).map(|a| Spanned::new(a, raw.span.clone()))
    }

    /// `<group><i>` must itself be a valid name: the group's name plus digits can be too long.
    /// Checking the last (longest) replica covers them all.
    fn replica_name(&mut self, spec: &Named<ContainerSpec>, raw: &str) -> bool {
        let Err(e) = Name::new(raw) else {
            return true;
        };
        let group = &spec.name.value;
        let message = format!("invalid container name `{raw}` (a replica of `{group}`): {e}");
        self.error(Diagnostic::error(spec.name.span.clone(), message));
        false
    }

    // ---- node names ----

    /// LANs, hosts and containers each get a namespace `<lab>-<node>`, so their names share
    /// one space. The later of two clashing definitions is the one reported.
    pub(super) fn unique_node_names(&mut self) {
        let mut nodes: Vec<(&str, String, Span)> = Vec::new();
        for l in &self.lans {
            nodes.push((
                &l.spec.name.value,
                format!("LAN `{}`", l.spec.name.value),
                l.spec.name.span.clone(),
            ));
        }
        for h in &self.hosts {
            nodes.push((
                &h.spec.name.value,
                format!("host `{}`", h.spec.name.value),
                h.spec.name.span.clone(),
            ));
        }
        for c in &self.containers {
            let g = self.groups[c.group].spec;
            let what = if g.name.value == c.raw {
                format!("container `{}`", c.raw)
            } else {
                format!(
                    "container `{}` (a replica of [containers.{}])",
                    c.raw, g.name.value
                )
            };
            nodes.push((&c.raw, what, g.name.span.clone()));
        }
        let mut first: HashMap<&str, usize> = HashMap::new();
        let mut found = Vec::new();
        for (i, (name, _, _)) in nodes.iter().enumerate() {
            match first.get(name) {
                Some(&j) => found.push((j, i)),
                None => {
                    first.insert(name, i);
                }
            }
        }
        let errors: Vec<Diagnostic> = found
            .into_iter()
            .map(|(i, j)| {
                let (a, b) = if nodes[i].2.start <= nodes[j].2.start {
                    (&nodes[i], &nodes[j])
                } else {
                    (&nodes[j], &nodes[i])
                };
                let message = format!(
                    "node name `{}` is used twice: by {} and by {}",
                    b.0, a.1, b.1
                );
                let help = "LANs, hosts and containers each get a namespace named `<lab>-<node>`, \
                            so their names must all differ";
                Diagnostic::error(b.2.clone(), message).with_help(help)
            })
            .collect();
        self.diags.extend(errors);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;

    #[test]
    fn lab_without_hosts() {
        reported("name = \"t\"\n", "the lab has no hosts", (1, 1));
        reported("name = \"t\"\n[hosts]\n", "the lab has no hosts", (2, 1));
    }

    #[test]
    fn lan_and_host_names_must_fit_interface_names() {
        let text = BASE.replace("[lans.lan]", "[lans.abcdefghijklmnop]");
        reported(
            &text,
            "LAN name `abcdefghijklmnop` cannot name the LAN's bridge interface: \
             interface name `abcdefghijklmnop` is 16 bytes",
            (2, 7),
        );
        let text = BASE.replace("[hosts.a]", "[hosts.host-with-long-name]");
        reported(
            &text,
            "host name `host-with-long-name` cannot name the host's port on LAN `lan`'s bridge",
            (4, 8),
        );
    }

    #[test]
    fn lo_and_eth0_are_not_node_names() {
        let text = BASE
            .replace("[lans.lan]", "[lans.lo]")
            .replace("\"lan\"", "\"lo\"");
        reported(&text, "`lo` cannot be a LAN name", (2, 7));
        let text = BASE.replace("[hosts.a]", "[hosts.eth0]");
        reported(&text, "`eth0` cannot be a host name", (4, 8));
    }

    #[test]
    fn node_names_share_one_space() {
        let text = with(
            r#"[hosts.c1]
lan = "lan"
addresses = ["10.0.0.2"]
[containers.c]
host = "a"
replicas = 2
"#,
        );
        reported(
            &text,
            "node name `c1` is used twice: by host `c1` and by container `c1` \
             (a replica of [containers.c])",
            (10, 13),
        );
        let text = with("[containers.lan]\nhost = \"a\"\n");
        reported(
            &text,
            "node name `lan` is used twice: by LAN `lan` and by container `lan`",
            (7, 13),
        );
    }

    #[test]
    fn lan_subnets_must_not_overlap() {
        let text = with("[lans.b]\nsubnet = \"10.0.0.0/16\"\n");
        reported(
            &text,
            "subnet 10.0.0.0/16 of LAN `b` overlaps subnet 10.0.0.0/24 of LAN `lan`",
            (8, 10),
        );
        let text = with("[lans.b]\nsubnet = \"10.0.0.0/24\"\n");
        reported(&text, "overlaps subnet 10.0.0.0/24 of LAN `lan`", (8, 10));
    }

    #[test]
    fn lan_subnet_needs_room_for_hosts() {
        let text = BASE.replace("10.0.0.0/24", "10.0.0.0/31");
        reported(
            &text,
            "LAN subnet 10.0.0.0/31 has no room for host addresses",
            (3, 10),
        );
    }

    #[test]
    fn host_addresses() {
        let text = BASE.replace("\"10.0.0.1\"", "\"10.0.1.1\"");
        reported(
            &text,
            "address 10.0.1.1 is outside subnet 10.0.0.0/24 of LAN `lan`",
            (6, 14),
        );
        let text = BASE.replace("\"10.0.0.1\"", "\"10.0.0.0\"");
        reported(&text, "address 10.0.0.0 is the network address", (6, 14));
        let text = BASE.replace("\"10.0.0.1\"", "\"10.0.0.1\", \"10.0.0.255\"");
        reported(
            &text,
            "address 10.0.0.255 is the broadcast address",
            (6, 26),
        );
        let text = BASE.replace("\"10.0.0.1\"", "\"10.0.0.1/24\"");
        let d = reported(&text, "invalid IPv4 address `10.0.0.1/24`", (6, 14));
        assert!(d.help.unwrap().contains("without a prefix length"));
        let text = BASE.replace("[\"10.0.0.1\"]", "[]");
        reported(&text, "`addresses` is empty", (6, 13));
    }

    #[test]
    fn host_address_used_twice() {
        let text = with("[hosts.b]\nlan = \"lan\"\naddresses = [\"10.0.0.1\"]\n");
        reported(
            &text,
            "address 10.0.0.1 is already used by host `a`",
            (9, 14),
        );
    }

    #[test]
    fn address_needs_a_single_replica() {
        let text = with("[containers.x]\nhost = \"a\"\nreplicas = 2\naddress = \"172.17.0.5\"\n");
        reported(
            &text,
            "`address` is only allowed with `replicas = 1`",
            (10, 11),
        );
    }

    #[test]
    fn replicas_must_be_positive_and_fit() {
        reported(
            &with("[containers.x]\nhost = \"a\"\nreplicas = 0\n"),
            "`replicas = 0`",
            (9, 12),
        );
        let text = with("[containers.x]\nhost = \"a\"\nreplicas = 5000\n");
        let d = reported(
            &text,
            "`replicas = 5000` is more than one bridge can take",
            (9, 12),
        );
        assert!(d.help.unwrap().contains("1023"));
        let text = with(
            "[hosts.a.docker]\nsubnet = \"172.17.0.0/30\"\n[containers.x]\nhost = \"a\"\nreplicas = 2\n",
        );
        reported(
            &text,
            "docker subnet 172.17.0.0/30 of host `a` has no address left for container `x2`",
            (11, 12),
        );
    }

    #[test]
    fn bridges_have_a_port_limit() {
        // 1000 + 30 containers on one host: the group that goes past the limit is reported.
        let text = with(
            "[hosts.a.docker]\nsubnet = \"172.16.0.0/12\"\n\
             [containers.x]\nhost = \"a\"\nreplicas = 1000\n\
             [containers.y]\nhost = \"a\"\nreplicas = 30\n",
        );
        let d = reported(&text, "host `a` has more than 1023 containers", (14, 12));
        assert_eq!(
            d.help.as_deref(),
            Some("a Linux bridge has at most 1023 ports")
        );
        // 1024 hosts on one LAN.
        let mut text = "name = \"t\"\n[lans.lan]\nsubnet = \"10.0.0.0/16\"\n".to_owned();
        for i in 1..=1024 {
            let (hi, lo) = (i / 256, i % 256);
            text += &format!("[hosts.h{i}]\nlan = \"lan\"\naddresses = [\"10.0.{hi}.{lo}\"]\n");
        }
        reported(
            &text,
            "LAN `lan` has more than 1023 hosts",
            (3 + 3 * 1023 + 1, 8),
        );
    }
}
