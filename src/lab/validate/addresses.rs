//! Container addresses on their host's docker network: explicit ones reserved and checked
//! first, then automatic ones assigned around them in file order.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::lab::diag::Diagnostic;
use crate::lab::plan::{HostId, NetworkId};
use crate::lab::spec::Spanned;

use super::values::{BRIDGE_MAX_PORTS, bridge_full, gateway_of};
use super::{NetDraft, Validator};

impl<'s> Validator<'s, '_> {
    /// Per network of each host, explicit addresses are reserved first, so automatic ones (in
    /// file order, from .2 of the network's subnet up) flow around them, as `docker run --ip`
    /// does.
    pub(super) fn assign_addresses(&mut self) {
        for h in 0..self.hosts.len() {
            let nets: Vec<(NetworkId, Ipv4Net, String)> = self.hosts[h]
                .docker
                .iter()
                .flat_map(|d| d.all())
                .enumerate()
                .filter_map(|(i, n)| Some((NetworkId(i), n.subnet?, self.describe(h, i, n))))
                .collect();
            for (id, net, of) in nets {
                let on = self.on_network(h, id);
                let taken = self.reserve_explicit(h, &on, id, net, &of);
                self.assign_auto(h, &on, id, net, &of, taken);
            }
        }
    }

    /// How messages name network `i` of host `h`.
    fn describe(&self, h: usize, i: usize, n: &NetDraft) -> String {
        let host = &self.hosts[h].spec.name.value;
        if i == 0 {
            format!("host `{host}`'s docker network")
        } else {
            format!("network `{}` of host `{host}`", n.label)
        }
    }

    /// The containers of host `h` attached to network `id`, in file order.
    fn on_network(&self, h: usize, id: NetworkId) -> Vec<usize> {
        (0..self.containers.len())
            .filter(|&c| {
                let d = &self.containers[c];
                d.host == Some(HostId(h)) && self.groups[d.group].network == Some(id)
            })
            .collect()
    }

    fn reserve_explicit(
        &mut self,
        h: usize,
        on: &[usize],
        id: NetworkId,
        net: Ipv4Net,
        of: &str,
    ) -> HashSet<Ipv4Addr> {
        let gateway = gateway_of(net);
        let mut taken: HashMap<Ipv4Addr, String> = HashMap::new();
        for &c in on {
            let Some(addr) = self.containers[c].explicit.clone() else {
                continue;
            };
            let raw = Spanned::new(addr.value.to_string(), addr.span.clone());
            if !self.inside(&raw, addr.value, net, of) {
                continue;
            }
            if addr.value == gateway {
                let host = &self.hosts[h].spec.name.value;
                let message = if id == NetworkId::DEFAULT_BRIDGE {
                    format!(
                        "address {} is the docker gateway of host `{host}`",
                        addr.value
                    )
                } else {
                    format!("address {} is the gateway of {of}", addr.value)
                };
                let help = "the gateway is the first address of the docker subnet, on the bridge; \
                            containers start at the next one";
                self.error(Diagnostic::error(addr.span.clone(), message).with_help(help));
                continue;
            }
            if let Some(first) = taken.get(&addr.value) {
                self.error(Diagnostic::error(
                    addr.span.clone(),
                    format!(
                        "address {} is already used by container `{first}`",
                        addr.value
                    ),
                ));
                continue;
            }
            taken.insert(addr.value, self.containers[c].raw.clone());
            self.containers[c].address = Some(addr.value);
        }
        taken.into_keys().collect()
    }

    fn assign_auto(
        &mut self,
        h: usize,
        on: &[usize],
        id: NetworkId,
        net: Ipv4Net,
        of: &str,
        taken: HashSet<Ipv4Addr>,
    ) {
        // The default bridge keeps the messages it has always had.
        let default = id == NetworkId::DEFAULT_BRIDGE;
        let gateway = gateway_of(net);
        let last = u32::from(net.broadcast()).saturating_sub(1);
        let mut next = u32::from(gateway).saturating_add(1);
        let mut full_groups = HashSet::new();
        for (n, &c) in on.iter().enumerate() {
            let group = self.containers[c].group;
            if n == BRIDGE_MAX_PORTS && full_groups.insert(group) {
                let span = self.groups[group].replicas_span.clone();
                let host = &self.hosts[h].spec.name.value;
                let message = if default {
                    format!("host `{host}` has more than {BRIDGE_MAX_PORTS} containers")
                } else {
                    format!("{of} has more than {BRIDGE_MAX_PORTS} containers")
                };
                self.error(bridge_full(span, message));
            }
            if self.containers[c].explicit.is_some() {
                continue;
            }
            while next <= last
                && (taken.contains(&Ipv4Addr::from(next)) || next == u32::from(gateway))
            {
                next += 1;
            }
            if next > last {
                if full_groups.insert(group) {
                    let span = self.groups[group].replicas_span.clone();
                    let (host, c) = (&self.hosts[h].spec.name.value, &self.containers[c].raw);
                    let message = if default {
                        format!(
                            "docker subnet {net} of host `{host}` has no address left for \
                             container `{c}`"
                        )
                    } else {
                        format!("subnet {net} of {of} has no address left for container `{c}`")
                    };
                    let help = "use fewer replicas or a larger docker subnet";
                    self.error(Diagnostic::error(span, message).with_help(help));
                }
                continue;
            }
            self.containers[c].address = Some(Ipv4Addr::from(next));
            next += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;

    #[test]
    fn automatic_addresses_flow_around_explicit_ones() {
        let text = with(
            r#"[containers.c]
host = "a"
replicas = 3
[containers.x]
host = "a"
address = "172.17.0.2"
"#,
        );
        let plan = ok(&text).plan;
        let got: Vec<_> = plan
            .containers
            .iter()
            .map(|c| (c.name.as_str(), c.address.to_string()))
            .collect();
        assert_eq!(
            got,
            [
                ("c1", "172.17.0.3".to_owned()),
                ("c2", "172.17.0.4".to_owned()),
                ("c3", "172.17.0.5".to_owned()),
                ("x", "172.17.0.2".to_owned()),
            ]
        );
        assert_eq!(plan.containers[3].mac.to_string(), "02:42:ac:11:00:02");
    }

    #[test]
    fn container_addresses() {
        let two = r#"[containers.x]
host = "a"
address = "172.17.0.5"
[containers.y]
host = "a"
address = "172.17.0.5"
"#;
        reported(
            &with(two),
            "address 172.17.0.5 is already used by container `x`",
            (12, 11),
        );
        let gw = "[containers.x]\nhost = \"a\"\naddress = \"172.17.0.1\"\n";
        let d = reported(
            &with(gw),
            "address 172.17.0.1 is the docker gateway of host `a`",
            (9, 11),
        );
        assert!(d.help.unwrap().contains("first address"));
        let out = "[containers.x]\nhost = \"a\"\naddress = \"172.18.0.5\"\n";
        reported(
            &with(out),
            "outside subnet 172.17.0.0/16 of host `a`'s docker network",
            (9, 11),
        );
        let bcast = "[containers.x]\nhost = \"a\"\naddress = \"172.17.255.255\"\n";
        reported(&with(bcast), "is the broadcast address", (9, 11));
    }
}
