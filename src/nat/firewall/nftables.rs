//! Docker 29's native nftables layout (`"firewall-backend": "nftables"`), rule for rule.
//!
//! # What Docker writes, and what `lab` writes of it
//!
//! Docker 29 with the nftables backend owns two tables, `ip docker-bridges` and
//! `ip6 docker-bridges`, both there even with no IPv6 network. Each has four verdict maps
//! `type ifname : verdict` and six chains with fixed names; each bridge adds one element per
//! map (`"docker0" : jump filter-forward-in__docker0`) and four chains of its own. Packets that
//! touch no Docker bridge match no element and leave the base chain at once. For docker0 on
//! 172.17.0.0/16 with one container at .2 (`nft list ruleset`, nft 1.0.6, maps left out):
//!
//! ```text
//! chain filter-FORWARD   { type filter hook forward priority filter; policy accept;
//!     oifname vmap @filter-forward-in-jumps
//!     iifname vmap @filter-forward-out-jumps }
//! chain nat-OUTPUT       { type nat hook output priority -100; policy accept;
//!     ip daddr != 127.0.0.0/8 fib daddr type local counter jump nat-prerouting-and-output }
//! chain nat-POSTROUTING  { type nat hook postrouting priority srcnat; policy accept;
//!     iifname vmap @nat-postrouting-out-jumps
//!     oifname vmap @nat-postrouting-in-jumps }
//! chain nat-PREROUTING   { type nat hook prerouting priority dstnat; policy accept;
//!     fib daddr type local counter jump nat-prerouting-and-output }
//! chain nat-prerouting-and-output { }
//! chain raw-PREROUTING   { type filter hook prerouting priority raw; policy accept;
//!     ip daddr 172.17.0.2 iifname != "docker0" counter drop comment "DROP DIRECT ACCESS" }
//! chain filter-forward-in__docker0 { ct state established,related counter accept
//!     iifname "docker0" counter accept comment "ICC"
//!     counter drop comment "UNPUBLISHED PORT DROP" }
//! chain filter-forward-out__docker0 { ct state established,related counter accept
//!     counter accept comment "OUTGOING" }
//! chain nat-postrouting-in__docker0 { }
//! chain nat-postrouting-out__docker0 {
//!     oifname != "docker0" ip saddr 172.17.0.0/16 counter masquerade comment "MASQUERADE" }
//! ```
//!
//! - "in" chains are reached on oifname (traffic entering the network), "out" chains on iifname
//!   (traffic leaving it). Isolation is the final `UNPUBLISHED PORT DROP`; the policy of
//!   filter-FORWARD is always accept.
//! - The NAT form's rules ([`nat_rules`](super::nat_rules)) go in `nat-postrouting-out__<br>`
//!   with Docker's comments, `MASQUERADE` or `SNAT` (`host_ipv4`).
//! - Docker adds a `DROP DIRECT ACCESS` rule per container when it is created; `lab` writes
//!   them with the host's rules, for the containers the plan puts on each bridge. It runs before
//!   conntrack, so it would drop the replies to an untranslated container too: `nat = "none"`
//!   is therefore Docker's `routed` gateway mode (no masquerade, no direct-access drop, ICMP
//!   accepted), which is how a Docker 29 user lets containers out with their own addresses.
//! - The ip6 table has the same maps and base chains, with no elements and no per-bridge
//!   chains, as on a Docker host whose networks have no IPv6; `nat-OUTPUT` guards `::1`.
//! - Docker sends the priorities as numbers; nft 1.0.6 prints `-100` for nat-OUTPUT because it
//!   has no name for it on the output hook.

use std::ffi::{CStr, CString};

use ipnet::Ipv4Net;

use super::Layout;
use super::nat_rules::{Head, postrouting, vms_on};
use super::ruleset::{
    Action, BaseChain, ChainSpec, ChainType, Family, Hook, IfKey, L4, MapSpec, Match, Policy,
    RuleSpec, TableSpec,
};
use crate::lab::plan::{Docker, DockerNet, Endpoint, IfName, Nat};

const TABLE: &CStr = c"docker-bridges";
const FILTER_FORWARD: &CStr = c"filter-FORWARD";
const NAT_OUTPUT: &CStr = c"nat-OUTPUT";
const NAT_POSTROUTING: &CStr = c"nat-POSTROUTING";
const NAT_PREROUTING: &CStr = c"nat-PREROUTING";
const NAT_PREROUTING_AND_OUTPUT: &CStr = c"nat-prerouting-and-output";
const RAW_PREROUTING: &CStr = c"raw-PREROUTING";

/// The four per-bridge chains, each reached through the verdict map `<chain>-jumps`, in
/// Docker's order (maps and chains alike).
const PER_BRIDGE: [(&str, &CStr, IfKey); 4] = [
    ("filter-forward-in", c"filter-forward-in-jumps", IfKey::Oif),
    (
        "filter-forward-out",
        c"filter-forward-out-jumps",
        IfKey::Iif,
    ),
    (
        "nat-postrouting-in",
        c"nat-postrouting-in-jumps",
        IfKey::Oif,
    ),
    (
        "nat-postrouting-out",
        c"nat-postrouting-out-jumps",
        IfKey::Iif,
    ),
];
const FILTER_IN: usize = 0;
const FILTER_OUT: usize = 1;
const NAT_IN: usize = 2;
const NAT_OUT: usize = 3;

/// 127.0.0.0/8, which nat-OUTPUT leaves to the host (checked at compile time).
const LOOPBACK: Ipv4Net = Ipv4Net::new_assert(std::net::Ipv4Addr::new(127, 0, 0, 0), 8);

/// Docker 29's `docker-bridges` tables (ip and ip6).
pub(super) struct Nftables;

impl Layout for Nftables {
    fn header(&self, docker: &Docker) -> Vec<String> {
        let nets: Vec<String> = docker
            .all_networks()
            .map(|n| format!("{} ({})", n.bridge, n.subnet.trunc()))
            .collect();
        vec![
            format!(
                "Docker 29.x rules for the bridge {}, as Docker writes them with",
                nets.join(", ")
            ),
            "\"firewall-backend\": \"nftables\". Load it inside the host's namespace with `nft -f`."
                .into(),
        ]
    }

    fn ruleset(&self, docker: &Docker, endpoints: &[Endpoint]) -> Vec<TableSpec> {
        let nets: Vec<&DockerNet> = docker.all_networks().collect();
        vec![ip_table(&nets, endpoints), ip6_table()]
    }
}

/// `<base>__<bridge>`, the name of a bridge's own chain.
fn bridge_chain(base: &str, bridge: &IfName) -> CString {
    // Neither part can hold a NUL: `base` is one of PER_BRIDGE's, and IfName refuses NULs.
    CString::new(format!("{base}__{bridge}")).unwrap_or_default()
}

fn base(ty: ChainType, hook: Hook, priority: i32, nft: &'static str) -> Option<BaseChain> {
    Some(BaseChain {
        ty,
        hook,
        priority,
        policy: Policy::Accept,
        nft,
    })
}

/// The chains every `docker-bridges` table starts with, in Docker's order; `raw` is the rules
/// of raw-PREROUTING and `not_local` nat-OUTPUT's guard against the loopback addresses.
fn base_chains(not_local: Match, raw: Vec<RuleSpec>) -> Vec<ChainSpec> {
    let vmap = |i: usize| {
        let (_, map, key) = PER_BRIDGE[i];
        RuleSpec {
            matches: vec![],
            counter: false,
            action: Action::Vmap { key, map },
            comment: None,
        }
    };
    let to_dnat = |matches| RuleSpec::counted(matches, Action::Jump(NAT_PREROUTING_AND_OUTPUT));
    vec![
        ChainSpec {
            base: base(
                ChainType::Filter,
                Hook::Forward,
                0,
                "type filter hook forward priority filter; policy accept;",
            ),
            ..ChainSpec::regular(FILTER_FORWARD, vec![vmap(FILTER_IN), vmap(FILTER_OUT)])
        },
        ChainSpec {
            base: base(
                ChainType::Nat,
                Hook::Output,
                -100,
                // nft 1.0.6 has no name for -100 on the output hook (it refuses `dstnat` there).
                "type nat hook output priority -100; policy accept;",
            ),
            ..ChainSpec::regular(
                NAT_OUTPUT,
                vec![to_dnat(vec![not_local, Match::FibDaddrLocal])],
            )
        },
        ChainSpec {
            base: base(
                ChainType::Nat,
                Hook::PostRouting,
                100,
                "type nat hook postrouting priority srcnat; policy accept;",
            ),
            ..ChainSpec::regular(NAT_POSTROUTING, vec![vmap(NAT_OUT), vmap(NAT_IN)])
        },
        ChainSpec {
            base: base(
                ChainType::Nat,
                Hook::PreRouting,
                -100,
                "type nat hook prerouting priority dstnat; policy accept;",
            ),
            ..ChainSpec::regular(NAT_PREROUTING, vec![to_dnat(vec![Match::FibDaddrLocal])])
        },
        ChainSpec {
            notes: vec!["the DNAT rules of published ports; lab publishes none".into()],
            ..ChainSpec::regular(NAT_PREROUTING_AND_OUTPUT, vec![])
        },
        ChainSpec {
            base: base(
                ChainType::Filter,
                Hook::PreRouting,
                -300,
                "type filter hook prerouting priority raw; policy accept;",
            ),
            ..ChainSpec::regular(RAW_PREROUTING, raw)
        },
    ]
}

/// Docker's `routed` gateway mode stands for `nat = "none"` (see the module docs).
fn routed(net: &DockerNet) -> bool {
    matches!(net.nat, Nat::None)
}

fn ip_table(nets: &[&DockerNet], endpoints: &[Endpoint]) -> TableSpec {
    let maps = PER_BRIDGE
        .iter()
        .map(|&(chain, map, _)| MapSpec {
            name: map,
            elements: nets
                .iter()
                .map(|n| (n.bridge.clone(), bridge_chain(chain, &n.bridge)))
                .collect(),
        })
        .collect();

    let raw = endpoints
        .iter()
        .filter(|e| nets.iter().any(|n| n.bridge == e.bridge && !routed(n)))
        .map(|e| {
            RuleSpec::counted(
                vec![
                    Match::Daddr {
                        equal: true,
                        net: Ipv4Net::from(e.address),
                    },
                    Match::Iif {
                        equal: false,
                        name: e.bridge.clone(),
                    },
                ],
                Action::Drop,
            )
            .with_comment(c"DROP DIRECT ACCESS")
        })
        .collect();
    let not_local = Match::Daddr {
        equal: false,
        net: LOOPBACK,
    };
    let mut chains = base_chains(not_local, raw);
    if nets.iter().any(|n| routed(n)) {
        chains[5].notes.push(
            "no DROP DIRECT ACCESS for a routed network's containers (nat = \"none\")".into(),
        );
    }
    for net in nets {
        chains.extend(bridge_chains(net, endpoints));
    }
    TableSpec {
        family: Family::Ip,
        name: TABLE,
        maps,
        chains,
    }
}

/// The four chains of one bridge, in PER_BRIDGE's order.
fn bridge_chains(net: &DockerNet, endpoints: &[Endpoint]) -> [ChainSpec; 4] {
    let br = &net.bridge;
    let established = || RuleSpec::counted(vec![Match::CtEstablishedRelated], Action::Accept);
    let mut inbound = vec![established()];
    if routed(net) {
        inbound.push(
            RuleSpec::counted(vec![Match::Proto(L4::Icmp)], Action::Accept).with_comment(c"ICMP"),
        );
    }
    inbound.push(
        RuleSpec::counted(
            vec![Match::Iif {
                equal: true,
                name: br.clone(),
            }],
            Action::Accept,
        )
        .with_comment(c"ICC"),
    );
    inbound.push(RuleSpec::counted(vec![], Action::Drop).with_comment(c"UNPUBLISHED PORT DROP"));
    let outbound = vec![
        established(),
        RuleSpec::counted(vec![], Action::Accept).with_comment(c"OUTGOING"),
    ];

    let (nat, notes) = postrouting(net, Head::OifFirst, &vms_on(net, endpoints));
    let nat = nat
        .into_iter()
        .map(|r| {
            let comment = match r.action {
                Action::Snat { .. } => c"SNAT",
                Action::Masquerade { .. } => c"MASQUERADE",
                _ => return r,
            };
            r.with_comment(comment)
        })
        .collect();
    let name = |i: usize| bridge_chain(PER_BRIDGE[i].0, br);
    [
        ChainSpec::regular(name(FILTER_IN), inbound),
        ChainSpec::regular(name(FILTER_OUT), outbound),
        ChainSpec {
            notes: vec![
                "the hairpin rules of userland-proxy=false; lab runs the proxy's way".into(),
            ],
            ..ChainSpec::regular(name(NAT_IN), vec![])
        },
        ChainSpec {
            notes,
            ..ChainSpec::regular(name(NAT_OUT), nat)
        },
    ]
}

/// The ip6 table of a host whose networks have no IPv6: the maps with no elements, and the
/// base chains.
fn ip6_table() -> TableSpec {
    TableSpec {
        family: Family::Ip6,
        name: TABLE,
        maps: PER_BRIDGE
            .iter()
            .map(|&(_, map, _)| MapSpec {
                name: map,
                elements: vec![],
            })
            .collect(),
        chains: base_chains(Match::Ip6DaddrNotLoopback, vec![]),
    }
}
