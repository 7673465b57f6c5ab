//! Docker's iptables layout as iptables-nft stores it, Docker 29's default firewall backend.
//!
//! # Which layout, and why
//!
//! Docker 29.x writes its rules with iptables. On current distributions that is `iptables-nft`, so
//! `nft list ruleset` on a Docker host shows the tables `ip nat` and `ip filter` with iptables'
//! chain names. That is the layout a Docker user recognises, so `lab` writes the same objects for
//! the default bridge (no containers published, no `--internal` networks):
//!
//! ```text
//! table ip nat {
//!   chain POSTROUTING { type nat hook postrouting priority srcnat; policy accept;
//!     ip saddr 172.17.0.0/16 oifname != "docker0" counter masquerade } }
//! table ip filter {
//!   chain FORWARD { type filter hook forward priority filter; policy drop;
//!     counter jump DOCKER-USER
//!     counter jump DOCKER-FORWARD }
//!   chain DOCKER-USER { }
//!   chain DOCKER-FORWARD { counter jump DOCKER-CT
//!     counter jump DOCKER-INTERNAL
//!     counter jump DOCKER-BRIDGE
//!     iifname "docker0" counter accept }
//!   chain DOCKER-CT { oifname "docker0" ct state established,related counter accept }
//!   chain DOCKER-BRIDGE { oifname "docker0" counter jump DOCKER }
//!   chain DOCKER { iifname != "docker0" oifname "docker0" counter drop }
//!   chain DOCKER-INTERNAL { } }
//! ```
//!
//! - `policy drop` on FORWARD is what dockerd sets when it had to switch `net.ipv4.ip_forward`
//!   on itself, which is the case on a fresh machine (and in a fresh namespace). Traffic from the
//!   containers still leaves through `iifname "docker0" accept`, and replies come back through
//!   DOCKER-CT; anything else routed towards the bridge is dropped, as on a real Docker host.
//! - The POSTROUTING match is Docker's: *source is the bridge subnet and the packet does not go
//!   back out of the bridge*. It does not name the uplink.
//! - Traffic from a container to an address of the host itself is never translated, and needs no
//!   rule to say so: packets delivered locally leave the stack at LOCAL_IN and never reach the
//!   POSTROUTING hook. So the "server on the same host" case sees the container's own address.

use std::ffi::CStr;

use super::Layout;
use super::nat_rules::{Head, postrouting, vms_on};
use super::ruleset::{
    Action, BaseChain, ChainSpec, ChainType, Family, Hook, Match, Policy, RuleSpec, TableSpec,
};
use crate::lab::plan::{Docker, DockerNet, Endpoint, IfName};

const NAT_TABLE: &CStr = c"nat";
const FILTER_TABLE: &CStr = c"filter";
pub(super) const POSTROUTING: &CStr = c"POSTROUTING";
const FORWARD: &CStr = c"FORWARD";
const DOCKER_USER: &CStr = c"DOCKER-USER";
const DOCKER_FORWARD: &CStr = c"DOCKER-FORWARD";
const DOCKER_CT: &CStr = c"DOCKER-CT";
const DOCKER_BRIDGE: &CStr = c"DOCKER-BRIDGE";
const DOCKER: &CStr = c"DOCKER";
const DOCKER_INTERNAL: &CStr = c"DOCKER-INTERNAL";

/// Docker's iptables rules as iptables-nft stores them: `table ip nat` and `table ip filter`.
pub(super) struct IptablesNft;

impl Layout for IptablesNft {
    fn header(&self, docker: &Docker) -> Vec<String> {
        let nets: Vec<String> = docker
            .all_networks()
            .map(|n| format!("{} ({})", n.bridge, n.subnet.trunc()))
            .collect();
        let bridges = if nets.len() == 1 { "bridge" } else { "bridges" };
        vec![
            format!(
                "Docker 29.x rules for the {bridges} {}, as `nft list ruleset` shows what Docker",
                nets.join(", ")
            ),
            "writes through iptables-nft. Load it inside the host's namespace with `nft -f`."
                .into(),
        ]
    }

    fn ruleset(&self, docker: &Docker, endpoints: &[Endpoint]) -> Vec<TableSpec> {
        ruleset(docker, endpoints)
    }
}

fn ruleset(docker: &Docker, endpoints: &[Endpoint]) -> Vec<TableSpec> {
    let nets: Vec<&DockerNet> = docker.all_networks().collect();
    let oif = |equal, br: &IfName| Match::Oif {
        equal,
        name: br.clone(),
    };
    let iif = |equal, br: &IfName| Match::Iif {
        equal,
        name: br.clone(),
    };
    let jump = |to| RuleSpec::counted(vec![], Action::Jump(to));
    let per_bridge = |rule: &dyn Fn(&IfName) -> RuleSpec| -> Vec<RuleSpec> {
        nets.iter().map(|n| rule(&n.bridge)).collect()
    };

    // Each later network's rule is inserted above the earlier ones', as Docker does (-I).
    let mut nat_rules = Vec::new();
    let mut nat_notes = Vec::new();
    for net in nets.iter().rev() {
        let (rules, notes) = postrouting(net, Head::SaddrFirst, &vms_on(net, endpoints));
        nat_rules.extend(rules);
        nat_notes.extend(notes);
    }
    let nat = TableSpec {
        family: Family::Ip,
        name: NAT_TABLE,
        maps: vec![],
        chains: vec![ChainSpec {
            name: POSTROUTING.into(),
            base: Some(BaseChain {
                ty: ChainType::Nat,
                hook: Hook::PostRouting,
                priority: 100,
                policy: Policy::Accept,
                nft: "type nat hook postrouting priority srcnat; policy accept;",
            }),
            notes: nat_notes,
            rules: nat_rules,
        }],
    };

    let mut forward = vec![jump(DOCKER_CT), jump(DOCKER_INTERNAL), jump(DOCKER_BRIDGE)];
    forward.extend(per_bridge(&|br| {
        RuleSpec::counted(vec![iif(true, br)], Action::Accept)
    }));
    let filter = TableSpec {
        family: Family::Ip,
        name: FILTER_TABLE,
        maps: vec![],
        chains: vec![
            ChainSpec {
                name: FORWARD.into(),
                base: Some(BaseChain {
                    ty: ChainType::Filter,
                    hook: Hook::Forward,
                    priority: 0,
                    policy: Policy::Drop,
                    nft: "type filter hook forward priority filter; policy drop;",
                }),
                notes: vec![
                    "policy drop: what dockerd sets when it switched net.ipv4.ip_forward on itself"
                        .into(),
                ],
                rules: vec![jump(DOCKER_USER), jump(DOCKER_FORWARD)],
            },
            ChainSpec {
                notes: vec!["the user's own rules; Docker never writes here".into()],
                ..ChainSpec::regular(DOCKER_USER, vec![])
            },
            ChainSpec::regular(DOCKER_FORWARD, forward),
            ChainSpec::regular(
                DOCKER_CT,
                per_bridge(&|br| {
                    RuleSpec::counted(
                        vec![oif(true, br), Match::CtEstablishedRelated],
                        Action::Accept,
                    )
                }),
            ),
            ChainSpec::regular(
                DOCKER_BRIDGE,
                per_bridge(&|br| RuleSpec::counted(vec![oif(true, br)], Action::Jump(DOCKER))),
            ),
            ChainSpec::regular(
                DOCKER,
                per_bridge(&|br| {
                    RuleSpec::counted(vec![iif(false, br), oif(true, br)], Action::Drop)
                }),
            ),
            ChainSpec {
                notes: vec![match nets.len() {
                    1 => "rules of --internal networks; this bridge is not one".into(),
                    _ => "rules of --internal networks; these bridges are not".into(),
                }],
                ..ChainSpec::regular(DOCKER_INTERNAL, vec![])
            },
        ],
    };
    vec![nat, filter]
}
