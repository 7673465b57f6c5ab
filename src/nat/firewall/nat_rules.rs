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
//! - `None`: no rule, like `enable_ip_masquerade=false`; the chain is still there.

use super::ruleset::{Action, L4, Match, RuleSpec};
use crate::lab::plan::{DockerNet, Nat};

/// Docker's match for the network's POSTROUTING rules, in the order the layout writes it.
#[derive(Clone, Copy)]
pub(super) enum Head {
    /// `ip saddr <subnet> oifname != "<bridge>"` (iptables' `-s <subnet> ! -o <bridge>`).
    SaddrFirst,
    /// `oifname != "<bridge>" ip saddr <subnet>` (Docker 29's nftables rules).
    OifFirst,
}

/// The POSTROUTING rules for the plan's [`Nat`], and comment lines for the script.
pub(super) fn postrouting(docker: &DockerNet, head: Head) -> (Vec<RuleSpec>, Vec<String>) {
    let rule = |proto: Option<L4>, action| {
        let saddr = Match::Saddr(docker.subnet.trunc());
        let oif = Match::Oif {
            equal: false,
            name: docker.bridge.clone(),
        };
        let mut matches = match head {
            Head::SaddrFirst => vec![saddr, oif],
            Head::OifFirst => vec![oif, saddr],
        };
        matches.extend(proto.map(Match::Proto));
        RuleSpec::counted(matches, action)
    };
    let range_note = || {
        "nft takes a port range only after a tcp/udp match; other protocols (ICMP) get the last rule"
            .to_owned()
    };
    match &docker.nat {
        Nat::Masquerade { ports: None } => {
            (vec![rule(None, Action::Masquerade { ports: None })], vec![])
        }
        Nat::Masquerade { ports: Some(p) } => (
            vec![
                rule(Some(L4::Tcp), Action::Masquerade { ports: Some(*p) }),
                rule(Some(L4::Udp), Action::Masquerade { ports: Some(*p) }),
                rule(None, Action::Masquerade { ports: None }),
            ],
            vec![range_note()],
        ),
        Nat::Snat {
            pool,
            ports,
            persistent,
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
            };
            match ports {
                None => (vec![rule(None, snat(None))], vec![]),
                Some(p) => (
                    vec![
                        rule(Some(L4::Tcp), snat(Some(*p))),
                        rule(Some(L4::Udp), snat(Some(*p))),
                        rule(None, snat(None)),
                    ],
                    vec![range_note()],
                ),
            }
        }
        Nat::None => (
            vec![],
            vec!["enable_ip_masquerade=false: containers leave with their own addresses".into()],
        ),
    }
}
