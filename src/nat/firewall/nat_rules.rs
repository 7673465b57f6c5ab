//! A NAT form as POSTROUTING rules: what each [`Nat`] of the plan writes, whichever layout
//! holds the chain. Pure.
//!
//! All start with Docker's match, *from the subnet and not back out of the bridge*, in the
//! order of the layout (`ip saddr <subnet> oifname != "<bridge>"` for iptables-nft,
//! `oifname != "<bridge>" ip saddr <subnet>` for nftables):
//! - `Masquerade { ports: None }`: `counter masquerade`, Docker's default.
//! - `Masquerade { ports: Some(P-Q) }`: nft takes a port range only after a transport match, so
//!   `ip protocol tcp counter masquerade to :P-Q`, the same for udp, then a plain
//!   `counter masquerade` for everything else (ICMP).
//! - `Snat { pool: [A..=B], ports, persistent }`: Docker's `host_ipv4` writes `snat to <ip>`;
//!   a pool becomes `snat to A-B` (just `A` when the pool has one address), with ports again one
//!   rule per tcp/udp (`snat to A-B:P-Q`) and one without ports; `persistent` is appended to each.
//! - `random_fully` on either: the same rules with `fully-random` (kube-proxy's `--random-fully`):
//!   every port drawn at random instead of the container's own kept when free.
//! - `Cloud(aws-nat-gateway)`: each address A_k its 55,000 ports per destination
//!   (`snat to A_k:1024-56023`), tcp and udp; with several addresses each new connection takes
//!   the next one in turn: rule k matches `numgen inc mod (n-k) 0`, one in n-k of what reaches
//!   it, so n rules share the flows evenly, and a SYN dropped on a full address tries the next
//!   one when it is sent again (a flow hash would retry the same full address).
//! - `Cloud(gcp-cloud-nat | azure-lb-outbound)`: each VM (container) its own block, one rule per
//!   VM and protocol with `ip saddr <container>` for the subnet (`snat to A:P-Q`); a VM with no
//!   block (GCP: the addresses are full) gets `counter drop comment "nat_allocation_failed"`.
//! - `None`: no rule, like `enable_ip_masquerade=false`; the chain is still there.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::ruleset::{Action, L4, Match, RuleSpec};
use crate::lab::plan::{CloudNat, DockerNet, Endpoint, Nat, PortRange};

/// Docker's match for the network's POSTROUTING rules, in the order the layout writes it.
#[derive(Clone, Copy)]
pub(super) enum Head {
    /// `ip saddr <subnet> oifname != "<bridge>"` (iptables' `-s <subnet> ! -o <bridge>`).
    SaddrFirst,
    /// `oifname != "<bridge>" ip saddr <subnet>` (Docker 29's nftables rules).
    OifFirst,
}

/// The POSTROUTING rules for the plan's [`Nat`] of `docker`, whose containers (the cloud's VMs)
/// are `vms`, in plan order, and comment lines for the script.
pub(super) fn postrouting(
    docker: &DockerNet,
    head: Head,
    vms: &[Ipv4Addr],
) -> (Vec<RuleSpec>, Vec<String>) {
    let rules = Rules { docker, head };
    let range_note = || {
        "nft takes a port range only after a tcp/udp match; other protocols (ICMP) get the last rule"
            .to_owned()
    };
    match &docker.nat {
        Nat::Masquerade {
            ports,
            random_fully,
        } => {
            let masq = |ports| Action::Masquerade {
                ports,
                random_fully: *random_fully,
            };
            match ports {
                None => (vec![rules.rule(None, None, masq(None))], vec![]),
                Some(p) => (rules.tcp_udp_rest(masq, *p), vec![range_note()]),
            }
        }
        Nat::Snat {
            pool,
            ports,
            persistent,
            random_fully,
        } => {
            let (Some(&first), Some(&last)) = (pool.iter().min(), pool.iter().max()) else {
                return (
                    vec![],
                    vec!["no SNAT rule: the address pool is empty (lab cannot apply this)".into()],
                );
            };
            let snat = |ports| Action::Snat {
                first,
                last,
                ports,
                persistent: *persistent,
                random_fully: *random_fully,
            };
            match ports {
                None => (vec![rules.rule(None, None, snat(None))], vec![]),
                Some(p) => (rules.tcp_udp_rest(snat, *p), vec![range_note()]),
            }
        }
        Nat::Cloud(cloud) => rules.cloud(cloud, vms),
        Nat::None => (
            vec![],
            vec!["enable_ip_masquerade=false: containers leave with their own addresses".into()],
        ),
    }
}

/// The addresses of the containers on `net`, in plan order: the VMs a cloud profile gives
/// ports to.
pub(super) fn vms_on(net: &DockerNet, endpoints: &[Endpoint]) -> Vec<Ipv4Addr> {
    endpoints
        .iter()
        .filter(|e| e.bridge == net.bridge)
        .map(|e| e.address)
        .collect()
}

/// The POSTROUTING rules of `net` as nft text, in the iptables-nft layout's order: what
/// `lab check` shows of a cloud profile (`lab show --commands` prints the whole ruleset).
pub(super) fn nft_lines(net: &DockerNet, endpoints: &[Endpoint]) -> Vec<String> {
    postrouting(net, Head::SaddrFirst, &vms_on(net, endpoints))
        .0
        .iter()
        .map(RuleSpec::nft)
        .collect()
}

/// One network's rules: Docker's match in the layout's order, then the form's.
struct Rules<'a> {
    docker: &'a DockerNet,
    head: Head,
}

impl Rules<'_> {
    /// Docker's match for traffic from `from` (the subnet, or one container), `proto`, and
    /// `numgen inc mod N 0` when given.
    fn rule(&self, from: Option<Ipv4Addr>, proto: Option<L4>, action: Action) -> RuleSpec {
        self.rule_in_turn(from, proto, None, action)
    }

    fn rule_in_turn(
        &self,
        from: Option<Ipv4Addr>,
        proto: Option<L4>,
        in_turn: Option<u32>,
        action: Action,
    ) -> RuleSpec {
        let saddr = Match::Saddr(match from {
            Some(a) => Ipv4Net::from(a),
            None => self.docker.subnet.trunc(),
        });
        let oif = Match::Oif {
            equal: false,
            name: self.docker.bridge.clone(),
        };
        let mut matches = match self.head {
            Head::SaddrFirst => vec![saddr, oif],
            Head::OifFirst => vec![oif, saddr],
        };
        matches.extend(proto.map(Match::Proto));
        matches.extend(in_turn.map(|modulus| Match::NumgenInc { modulus }));
        RuleSpec::counted(matches, action)
    }

    /// A port range: one rule for tcp, one for udp (nft wants a transport match before a
    /// range), and the same action without ports for everything else.
    fn tcp_udp_rest(
        &self,
        action: impl Fn(Option<PortRange>) -> Action,
        p: PortRange,
    ) -> Vec<RuleSpec> {
        vec![
            self.rule(None, Some(L4::Tcp), action(Some(p))),
            self.rule(None, Some(L4::Udp), action(Some(p))),
            self.rule(None, None, action(None)),
        ]
    }

    fn cloud(&self, cloud: &CloudNat, vms: &[Ipv4Addr]) -> (Vec<RuleSpec>, Vec<String>) {
        let snat = |address: Ipv4Addr, ports| Action::Snat {
            first: address,
            last: address,
            ports,
            persistent: false,
            random_fully: false,
        };
        let product = cloud.profile.product();
        if !cloud.profile.per_vm() {
            let ports = cloud.profile.address_ports();
            let n = cloud.addresses.len();
            let mut rules = Vec::new();
            for proto in [L4::Tcp, L4::Udp] {
                for (k, &a) in cloud.addresses.iter().enumerate() {
                    let in_turn = (k + 1 < n).then_some((n - k) as u32);
                    rules.push(self.rule_in_turn(None, Some(proto), in_turn, snat(a, Some(ports))));
                }
            }
            let mut notes = vec![format!(
                "{product}: {} ports per address and destination ({}), as many destinations as you like",
                ports.size(),
                ports
            )];
            if let Some(&first) = cloud.addresses.first() {
                rules.push(self.rule(None, None, snat(first, None)));
            }
            if n > 1 {
                notes.push(format!(
                    "{n} addresses: each new connection takes the next one in turn (numgen), \
                     so a SYN dropped on a full address tries another when it is sent again"
                ));
            }
            return (rules, notes);
        }
        let mut rules = Vec::new();
        let blocks = cloud.blocks(vms.len());
        let mut unallocated = 0;
        for (vm, block) in vms.iter().zip(&blocks) {
            match block {
                Some(b) => {
                    rules.push(self.rule(Some(*vm), Some(L4::Tcp), snat(b.address, Some(b.ports))));
                    rules.push(self.rule(Some(*vm), Some(L4::Udp), snat(b.address, Some(b.ports))));
                    rules.push(self.rule(Some(*vm), None, snat(b.address, None)));
                }
                None => {
                    unallocated += 1;
                    rules.push(
                        self.rule(Some(*vm), None, Action::Drop)
                            .with_comment(c"nat_allocation_failed"),
                    );
                }
            }
        }
        let mut notes = vec![format!(
            "{product}: {} ports per VM (container) on one address, each port once per destination",
            cloud.ports_per_vm.unwrap_or(0)
        )];
        if unallocated > 0 {
            notes.push(format!(
                "{unallocated} VM(s) get no ports: the addresses hold {} VMs (nat_allocation_failed)",
                cloud.vm_capacity().unwrap_or(0)
            ));
        }
        (rules, notes)
    }
}
