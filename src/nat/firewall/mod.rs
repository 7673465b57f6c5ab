//! The firewall seat: which layout writes a Docker host's rules, and how they reach the kernel.
//!
//! A [`Layout`] is one way Docker arranges its rules (the iptables-nft tables of Docker's default
//! backend, [`iptables_nft`], or Docker 29's native `docker-bridges` tables, [`nftables`]): the
//! tables, verdict maps and chains it writes, with the NAT form's
//! POSTROUTING rules ([`nat_rules`]) in the chain the layout keeps for them. Everything after
//! that is the same for every layout: one description ([`ruleset`]) rendered as `nft` text for
//! `lab show --commands` and encoded ([`encode`]) into one batch ([`batch`]) for `lab up`.
//!
//! # Why netlink, and why one batch
//!
//! `lab` must not depend on the `nft` binary, so the rules are built with libnftnl (`nftnl`)
//! and sent over the one netfilter transport ([`crate::nfnl`]). The rules are encoded exactly
//! as `nft` 1.0.6 encodes the equivalent text (same payload loads, registers and NAT flags), so
//! `nft list ruleset` prints them back as the text of [`nft_script`] and `nft --debug=netlink`
//! shows the same expressions.
//!
//! Everything goes to the kernel as one nf_tables transaction, which either applies whole or
//! not at all. Each table is added, deleted and added again in that transaction (the `nft -f`
//! trick), so running [`apply`] again replaces the rules instead of appending duplicates. This
//! means [`apply`] owns the tables of its layout in the namespace: anything else in them is
//! removed. That is fine in a namespace `lab` created; never call it in the initial namespace.

mod batch;
mod encode;
mod iptables_nft;
mod nat_rules;
mod nftables;
mod readback;
mod ruleset;

use anyhow::{Context as _, bail};

pub use readback::{RuleText, read_back};
use ruleset::TableSpec;

use crate::lab::plan::{Docker, Endpoint, FirewallBackend, Nat};

/// One way Docker arranges a host's firewall.
trait Layout: Sync {
    /// The first lines of the script, saying which Docker writes this and how to load it.
    fn header(&self, docker: &Docker) -> Vec<String>;
    /// The tables this layout writes for `docker`'s networks, NAT rules included, and for the
    /// containers on them (`endpoints`), where the layout has rules per container.
    fn ruleset(&self, docker: &Docker, endpoints: &[Endpoint]) -> Vec<TableSpec>;
}

/// The layout of the rules the host's daemon writes, by its firewall backend.
fn layout_of(docker: &Docker) -> &'static dyn Layout {
    match docker.firewall {
        FirewallBackend::IptablesNft => &iptables_nft::IptablesNft,
        FirewallBackend::Nftables => &nftables::Nftables,
    }
}

/// The NAT rules of each of `docker`'s networks that plays a cloud's NAT, as nft text, with the
/// network's name: what `lab check` shows of a profile.
pub fn profile_rules(docker: &Docker, endpoints: &[Endpoint]) -> Vec<(String, Vec<String>)> {
    docker
        .all_networks()
        .filter(|n| matches!(n.nat, Nat::Cloud(_)))
        .map(|n| (n.name.to_string(), nat_rules::nft_lines(n, endpoints)))
        .collect()
}

/// The ruleset [`apply`] writes, as `nft -f` input, for `lab show --commands` and the docs.
///
/// Both come from the same description, so the script is what the kernel ends up with: loading
/// it with `nft -f` in a fresh namespace gives the same `nft list ruleset` as [`apply`]. Like
/// [`apply`], it replaces its tables, so it can be loaded again. What each NAT form writes is
/// in [`nat_rules`].
pub fn nft_script(docker: &Docker, endpoints: &[Endpoint]) -> String {
    let layout = layout_of(docker);
    ruleset::script(&layout.header(docker), &layout.ruleset(docker, endpoints))
}

/// Writes the ruleset into the nftables of the namespace the calling thread is in, as one atomic
/// transaction that replaces the layout's tables (see the module docs).
///
/// The caller runs this inside a setns'd closure: the netfilter socket belongs to the namespace
/// of the thread that opens it, and it is opened here. It is synchronous on purpose
/// (a namespace switch must not span an `.await`).
///
/// Errors name the object the kernel refused, e.g. "add rule
/// \`ip saddr 172.17.0.0/16 oifname != "docker0" counter masquerade\` to chain nat POSTROUTING".
/// A kernel without nf_tables, its NAT chain type or the masq/nat/ct expressions gives an error
/// whose chain holds [`crate::error::Fail::Unsupported`].
pub fn apply(docker: &Docker, endpoints: &[Endpoint]) -> anyhow::Result<()> {
    for net in docker.all_networks() {
        if let Nat::Snat { pool, .. } = &net.nat
            && pool.is_empty()
        {
            bail!(
                "cannot write the SNAT rule for {}: its address pool is empty",
                net.bridge
            );
        }
    }
    let planned = batch::plan_batch(&layout_of(docker).ruleset(docker, endpoints));
    batch::send(&planned).with_context(|| {
        let nets: Vec<String> = docker
            .all_networks()
            .map(|n| format!("{} ({})", n.bridge, n.subnet.trunc()))
            .collect();
        format!(
            "write Docker's NAT and forward rules for {}",
            nets.join(", ")
        )
    })
}

/// Docker's firewall in the layout each host calls for: the driver `lab up` is handed, so the
/// lab engine builds hosts without naming this module (which reads the plan).
pub struct DockerFirewall;

impl crate::lab::firewall::Firewall for DockerFirewall {
    fn apply(&self, docker: &Docker, endpoints: &[Endpoint]) -> anyhow::Result<()> {
        apply(docker, endpoints)
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::batch::{Planned, plan_batch};
    use super::iptables_nft::POSTROUTING;
    use super::readback::chains::parse_chain;
    use super::readback::parse_rule;
    use super::ruleset::UNSUPPORTED_NAT;
    use super::*;
    use crate::lab::plan::{CloudNat, CloudProfile, DockerNet, IfName, Mac, Name, PortRange};
    use crate::nfnl::{NFNL_SUBSYS_NFTABLES, NLMSG_HDRLEN};

    fn ruleset(d: &Docker) -> Vec<TableSpec> {
        ruleset_with(d, &[])
    }

    fn ruleset_with(d: &Docker, endpoints: &[Endpoint]) -> Vec<TableSpec> {
        layout_of(d).ruleset(d, endpoints)
    }

    fn nft_msg_type(nft_msg: u8) -> u16 {
        (u16::from(NFNL_SUBSYS_NFTABLES) << 8) | u16::from(nft_msg)
    }

    /// The netlink messages of one batch page, and their types.
    fn messages(page: &[u8]) -> Vec<(u16, &[u8])> {
        let mut out = Vec::new();
        let mut rest = page;
        while rest.len() >= NLMSG_HDRLEN {
            let len = u32::from_ne_bytes(rest[0..4].try_into().unwrap()) as usize;
            let ty = u16::from_ne_bytes(rest[4..6].try_into().unwrap());
            assert!(
                len >= NLMSG_HDRLEN && len <= rest.len(),
                "message of {len} bytes"
            );
            out.push((ty, &rest[..len]));
            rest = &rest[len.next_multiple_of(4).min(rest.len())..];
        }
        out
    }

    /// A Docker host with the default bridge only, docker0 on 172.17.0.0/16.
    fn docker(nat: Nat) -> Docker {
        Docker {
            firewall: FirewallBackend::IptablesNft,
            default_bridge: DockerNet {
                name: Name::new("bridge").unwrap(),
                bridge: IfName::new("docker0").unwrap(),
                mac: Mac::derived("t/a"),
                subnet: "172.17.0.0/16".parse().unwrap(),
                gateway: Ipv4Addr::new(172, 17, 0, 1),
                nat,
            },
            networks: vec![],
        }
    }

    fn pool(a: u8, b: u8) -> Vec<Ipv4Addr> {
        (a..=b).map(|i| Ipv4Addr::new(192, 168, 49, i)).collect()
    }

    /// Every message of the batch, decoded without a socket: (type, rule if it is one).
    fn batch_messages(planned: &Planned) -> Vec<(u16, Option<RuleText>)> {
        let mut out = Vec::new();
        for page in planned.batch.iter() {
            for (ty, msg) in messages(page) {
                let rule = (ty == nft_msg_type(libc::NFT_MSG_NEWRULE as u8))
                    .then(|| parse_rule(msg).unwrap());
                out.push((ty, rule));
            }
        }
        out
    }

    fn rules_of(nat: Nat) -> Vec<RuleText> {
        let planned = plan_batch(&ruleset(&docker(nat)));
        batch_messages(&planned)
            .into_iter()
            .filter_map(|(_, r)| r)
            .collect()
    }

    fn postrouting_of(nat: Nat) -> Vec<String> {
        rules_of(nat)
            .into_iter()
            .filter(|r| r.table == "nat" && r.chain == "POSTROUTING")
            .map(|r| r.text)
            .collect()
    }

    fn lines(s: &str) -> String {
        s.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("\n")
    }

    // The golden texts are what `nft --debug=netlink -f` printed on Debian 12 (nft 1.0.6,
    // libnftnl 1.2.4) for the text of `nft_script`.
    const MATCH: &str = "
        [ payload load 2b @ network header + 12 => reg 1 ]
        [ cmp eq reg 1 0x000011ac ]
        [ meta load oifname => reg 1 ]
        [ cmp neq reg 1 0x6b636f64 0x00307265 0x00000000 0x00000000 ]";
    const TCP: &str = "
        [ payload load 1b @ network header + 9 => reg 1 ]
        [ cmp eq reg 1 0x00000006 ]";
    const UDP: &str = "
        [ payload load 1b @ network header + 9 => reg 1 ]
        [ cmp eq reg 1 0x00000011 ]";
    const COUNTER: &str = "[ counter pkts 0 bytes 0 ]";

    fn golden(parts: &[&str]) -> String {
        lines(&parts.join("\n"))
    }

    #[test]
    fn golden_masquerade_and_filter() {
        let rules = rules_of(Nat::MASQUERADE);
        let got: Vec<(String, String, String)> = rules
            .iter()
            .map(|r| (r.table.clone(), r.chain.clone(), r.text.clone()))
            .collect();
        let jump = |to: &str| golden(&[COUNTER, &format!("[ immediate reg 0 jump -> {to} ]")]);
        let row = |t: &str, c: &str, text: String| (t.to_owned(), c.to_owned(), text);
        let want = vec![
            row("nat", "POSTROUTING", golden(&[MATCH, COUNTER, "[ masq ]"])),
            row("filter", "FORWARD", jump("DOCKER-USER")),
            row("filter", "FORWARD", jump("DOCKER-FORWARD")),
            row("filter", "DOCKER-FORWARD", jump("DOCKER-CT")),
            row("filter", "DOCKER-FORWARD", jump("DOCKER-INTERNAL")),
            row("filter", "DOCKER-FORWARD", jump("DOCKER-BRIDGE")),
            row(
                "filter",
                "DOCKER-FORWARD",
                golden(&[
                    "[ meta load iifname => reg 1 ]",
                    "[ cmp eq reg 1 0x6b636f64 0x00307265 0x00000000 0x00000000 ]",
                    COUNTER,
                    "[ immediate reg 0 accept ]",
                ]),
            ),
            row(
                "filter",
                "DOCKER-CT",
                golden(&[
                    "[ meta load oifname => reg 1 ]",
                    "[ cmp eq reg 1 0x6b636f64 0x00307265 0x00000000 0x00000000 ]",
                    "[ ct load state => reg 1 ]",
                    "[ bitwise reg 1 = ( reg 1 & 0x00000006 ) ^ 0x00000000 ]",
                    "[ cmp neq reg 1 0x00000000 ]",
                    COUNTER,
                    "[ immediate reg 0 accept ]",
                ]),
            ),
            row(
                "filter",
                "DOCKER-BRIDGE",
                golden(&[
                    "[ meta load oifname => reg 1 ]",
                    "[ cmp eq reg 1 0x6b636f64 0x00307265 0x00000000 0x00000000 ]",
                    COUNTER,
                    "[ immediate reg 0 jump -> DOCKER ]",
                ]),
            ),
            row(
                "filter",
                "DOCKER",
                golden(&[
                    "[ meta load iifname => reg 1 ]",
                    "[ cmp neq reg 1 0x6b636f64 0x00307265 0x00000000 0x00000000 ]",
                    "[ meta load oifname => reg 1 ]",
                    "[ cmp eq reg 1 0x6b636f64 0x00307265 0x00000000 0x00000000 ]",
                    COUNTER,
                    "[ immediate reg 0 drop ]",
                ]),
            ),
        ];
        assert_eq!(got, want);
        assert!(rules.iter().all(|r| r.family == "ip" && r.handle.is_none()));
    }

    #[test]
    fn golden_masquerade_with_ports() {
        let ports = Some(PortRange::new(40000, 40099).unwrap());
        let range = "
            [ immediate reg 1 0x0000409c ]
            [ immediate reg 2 0x0000a39c ]
            [ masq proto_min reg 1 proto_max reg 2 flags 0x2 ]";
        assert_eq!(
            postrouting_of(Nat::Masquerade {
                ports,
                random_fully: false
            }),
            vec![
                golden(&[MATCH, TCP, COUNTER, range]),
                golden(&[MATCH, UDP, COUNTER, range]),
                golden(&[MATCH, COUNTER, "[ masq ]"]),
            ]
        );
    }

    #[test]
    fn golden_masquerade_with_one_port() {
        let ports = Some(PortRange::new(5000, 5000).unwrap());
        let one = "
            [ immediate reg 1 0x00008813 ]
            [ masq proto_min reg 1 flags 0x2 ]";
        assert_eq!(
            postrouting_of(Nat::Masquerade {
                ports,
                random_fully: false
            })[0],
            golden(&[MATCH, TCP, COUNTER, one])
        );
    }

    #[test]
    fn golden_snat_single() {
        let nat = Nat::Snat {
            pool: pool(7, 7),
            ports: None,
            persistent: false,
            random_fully: false,
        };
        assert_eq!(
            postrouting_of(nat),
            vec![golden(&[
                MATCH,
                COUNTER,
                "[ immediate reg 1 0x0731a8c0 ]",
                "[ nat snat ip addr_min reg 1 ]",
            ])]
        );
    }

    #[test]
    fn golden_snat_pool_with_ports_persistent() {
        let nat = Nat::Snat {
            pool: pool(7, 9),
            ports: Some(PortRange::new(40000, 40099).unwrap()),
            persistent: true,
            random_fully: false,
        };
        let with_ports = "
            [ immediate reg 1 0x0731a8c0 ]
            [ immediate reg 2 0x0931a8c0 ]
            [ immediate reg 3 0x0000409c ]
            [ immediate reg 4 0x0000a39c ]
            [ nat snat ip addr_min reg 1 addr_max reg 2 proto_min reg 3 proto_max reg 4 flags 0xa ]";
        assert_eq!(
            postrouting_of(nat),
            vec![
                golden(&[MATCH, TCP, COUNTER, with_ports]),
                golden(&[MATCH, UDP, COUNTER, with_ports]),
                golden(&[
                    MATCH,
                    COUNTER,
                    "[ immediate reg 1 0x0731a8c0 ]",
                    "[ immediate reg 2 0x0931a8c0 ]",
                    "[ nat snat ip addr_min reg 1 addr_max reg 2 flags 0x8 ]",
                ]),
            ]
        );
    }

    #[test]
    fn golden_snat_single_with_ports() {
        let nat = Nat::Snat {
            pool: pool(7, 7),
            ports: Some(PortRange::new(40000, 40099).unwrap()),
            persistent: false,
            random_fully: false,
        };
        assert_eq!(
            postrouting_of(nat)[0],
            golden(&[
                MATCH,
                TCP,
                COUNTER,
                "[ immediate reg 1 0x0731a8c0 ]",
                "[ immediate reg 2 0x0000409c ]",
                "[ immediate reg 3 0x0000a39c ]",
                "[ nat snat ip addr_min reg 1 proto_min reg 2 proto_max reg 3 flags 0x2 ]",
            ])
        );
    }

    // What `nft --debug=netlink -f` printed (nft 1.0.6, libnftnl 1.2.4) for the rules of the
    // cloud profiles and `fully-random`; `nft list ruleset` printed the same text back.
    const NUMGEN_3: &str = "
        [ numgen reg 1 = inc mod 3 ]
        [ cmp eq reg 1 0x00000000 ]";
    const NUMGEN_2: &str = "
        [ numgen reg 1 = inc mod 2 ]
        [ cmp eq reg 1 0x00000000 ]";
    /// `snat to 192.168.49.N:1024-56023`: an AWS address's 55,000 ports.
    fn snat_aws(addr: &str) -> String {
        golden(&[
            &format!("[ immediate reg 1 {addr} ]"),
            "[ immediate reg 2 0x00000004 ]",
            "[ immediate reg 3 0x0000d7da ]",
            "[ nat snat ip addr_min reg 1 proto_min reg 2 proto_max reg 3 flags 0x2 ]",
        ])
    }
    /// `snat to 192.168.49.N`, no ports: what is neither tcp nor udp.
    fn snat_bare(addr: &str) -> String {
        golden(&[
            &format!("[ immediate reg 1 {addr} ]"),
            "[ nat snat ip addr_min reg 1 ]",
        ])
    }
    /// `ip saddr 172.17.0.N oifname != "docker0"`: one container (VM).
    fn vm_match(addr: &str) -> String {
        golden(&[
            "[ payload load 4b @ network header + 12 => reg 1 ]",
            &format!("[ cmp eq reg 1 {addr} ]"),
            "[ meta load oifname => reg 1 ]",
            "[ cmp neq reg 1 0x6b636f64 0x00307265 0x00000000 0x00000000 ]",
        ])
    }
    const A6: &str = "0x0631a8c0";
    const A7: &str = "0x0731a8c0";
    const A8: &str = "0x0831a8c0";

    fn cloud(profile: CloudProfile, addresses: Vec<Ipv4Addr>, ports_per_vm: Option<u32>) -> Nat {
        Nat::Cloud(CloudNat {
            profile,
            addresses,
            ports_per_vm,
        })
    }

    /// The encoded POSTROUTING rules with containers 172.17.0.2 to 172.17.0.`last` on docker0
    /// (a cloud profile's VMs, in order).
    fn postrouting_with(nat: Nat, last: u8) -> Vec<String> {
        let planned = plan_batch(&ruleset_with(&docker(nat), &endpoints(last)));
        batch_messages(&planned)
            .into_iter()
            .filter_map(|(_, r)| r)
            .filter(|r| r.table == "nat" && r.chain == "POSTROUTING")
            .map(|r| r.text)
            .collect()
    }

    #[test]
    fn golden_aws_nat_gateway_one_address() {
        let nat = cloud(CloudProfile::AwsNatGateway, pool(6, 6), None);
        assert_eq!(
            postrouting_with(nat, 3),
            vec![
                golden(&[MATCH, TCP, COUNTER, &snat_aws(A6)]),
                golden(&[MATCH, UDP, COUNTER, &snat_aws(A6)]),
                golden(&[MATCH, COUNTER, &snat_bare(A6)]),
            ]
        );
    }

    /// Three addresses in turn: rule k takes one in n-k of what reaches it (`numgen inc mod 3`,
    /// then `mod 2`), the last address takes the rest; tcp, then udp, then the rest of the
    /// traffic to the first address.
    #[test]
    fn golden_aws_nat_gateway_three_addresses() {
        let nat = cloud(CloudProfile::AwsNatGateway, pool(6, 8), None);
        let mut want = Vec::new();
        for proto in [TCP, UDP] {
            want.push(golden(&[MATCH, proto, NUMGEN_3, COUNTER, &snat_aws(A6)]));
            want.push(golden(&[MATCH, proto, NUMGEN_2, COUNTER, &snat_aws(A7)]));
            want.push(golden(&[MATCH, proto, COUNTER, &snat_aws(A8)]));
        }
        want.push(golden(&[MATCH, COUNTER, &snat_bare(A6)]));
        assert_eq!(postrouting_with(nat, 3), want);
    }

    /// 32,768 ports per VM: one VM per address, so of three VMs on two addresses the third gets
    /// no block and its packets are dropped.
    #[test]
    fn golden_gcp_cloud_nat_third_vm_without_a_block() {
        let nat = cloud(CloudProfile::GcpCloudNat, pool(6, 7), Some(32_768));
        let block = |addr: &str| {
            golden(&[
                &format!("[ immediate reg 1 {addr} ]"),
                "[ immediate reg 2 0x00000004 ]",
                "[ immediate reg 3 0x0000ff83 ]",
                "[ nat snat ip addr_min reg 1 proto_min reg 2 proto_max reg 3 flags 0x2 ]",
            ])
        };
        let (vm2, vm3, vm4) = (
            vm_match("0x020011ac"),
            vm_match("0x030011ac"),
            vm_match("0x040011ac"),
        );
        assert_eq!(
            postrouting_with(nat, 4),
            vec![
                golden(&[&vm2, TCP, COUNTER, &block(A6)]),
                golden(&[&vm2, UDP, COUNTER, &block(A6)]),
                golden(&[&vm2, COUNTER, &snat_bare(A6)]),
                golden(&[&vm3, TCP, COUNTER, &block(A7)]),
                golden(&[&vm3, UDP, COUNTER, &block(A7)]),
                golden(&[&vm3, COUNTER, &snat_bare(A7)]),
                golden(&[
                    &vm4,
                    COUNTER,
                    "[ immediate reg 0 drop ]",
                    r"userdata = { \x00\x16nat_allocation_failed\x00 }",
                ]),
            ]
        );
    }

    /// Three VMs behind one frontend IP: 1,024 ports each (Azure's table for a pool of 1-50),
    /// 1024-2047, 2048-3071, 3072-4095.
    #[test]
    fn golden_azure_lb_outbound() {
        let per_vm = crate::lab::cloud::azure_ports_per_vm(3, 1);
        assert_eq!(per_vm, Some(1_024));
        let nat = cloud(CloudProfile::AzureLbOutbound, pool(6, 6), per_vm);
        let block = |lo: &str, hi: &str| {
            golden(&[
                &format!("[ immediate reg 1 {A6} ]"),
                &format!("[ immediate reg 2 {lo} ]"),
                &format!("[ immediate reg 3 {hi} ]"),
                "[ nat snat ip addr_min reg 1 proto_min reg 2 proto_max reg 3 flags 0x2 ]",
            ])
        };
        let mut want = Vec::new();
        for (vm, lo, hi) in [
            ("0x020011ac", "0x00000004", "0x0000ff07"),
            ("0x030011ac", "0x00000008", "0x0000ff0b"),
            ("0x040011ac", "0x0000000c", "0x0000ff0f"),
        ] {
            want.push(golden(&[&vm_match(vm), TCP, COUNTER, &block(lo, hi)]));
            want.push(golden(&[&vm_match(vm), UDP, COUNTER, &block(lo, hi)]));
            want.push(golden(&[&vm_match(vm), COUNTER, &snat_bare(A6)]));
        }
        assert_eq!(postrouting_with(nat, 4), want);
    }

    #[test]
    fn golden_random_fully() {
        let masq = Nat::Masquerade {
            ports: None,
            random_fully: true,
        };
        assert_eq!(
            postrouting_of(masq),
            vec![golden(&[MATCH, COUNTER, "[ masq flags 0x10 ]"])]
        );
        let masq_ports = Nat::Masquerade {
            ports: Some(PortRange::new(40000, 40099).unwrap()),
            random_fully: true,
        };
        assert_eq!(
            postrouting_of(masq_ports)[0],
            golden(&[
                MATCH,
                TCP,
                COUNTER,
                "[ immediate reg 1 0x0000409c ]",
                "[ immediate reg 2 0x0000a39c ]",
                "[ masq proto_min reg 1 proto_max reg 2 flags 0x12 ]",
            ])
        );
        let single = Nat::Snat {
            pool: pool(7, 7),
            ports: None,
            persistent: false,
            random_fully: true,
        };
        assert_eq!(
            postrouting_of(single),
            vec![golden(&[
                MATCH,
                COUNTER,
                "[ immediate reg 1 0x0731a8c0 ]",
                "[ nat snat ip addr_min reg 1 flags 0x10 ]",
            ])]
        );
        let pool_ports = Nat::Snat {
            pool: pool(7, 9),
            ports: Some(PortRange::new(40000, 40099).unwrap()),
            persistent: true,
            random_fully: true,
        };
        let with_ports = "
            [ immediate reg 1 0x0731a8c0 ]
            [ immediate reg 2 0x0931a8c0 ]
            [ immediate reg 3 0x0000409c ]
            [ immediate reg 4 0x0000a39c ]
            [ nat snat ip addr_min reg 1 addr_max reg 2 proto_min reg 3 proto_max reg 4 flags 0x1a ]";
        assert_eq!(
            postrouting_of(pool_ports),
            vec![
                golden(&[MATCH, TCP, COUNTER, with_ports]),
                golden(&[MATCH, UDP, COUNTER, with_ports]),
                golden(&[
                    MATCH,
                    COUNTER,
                    "[ immediate reg 1 0x0731a8c0 ]",
                    "[ immediate reg 2 0x0931a8c0 ]",
                    "[ nat snat ip addr_min reg 1 addr_max reg 2 flags 0x18 ]",
                ]),
            ]
        );
    }

    /// The numgen expression's bytes as `nft --debug=mnl` showed them for `numgen inc mod 3 0`:
    /// dreg 1, modulus 3, type inc (0), and an offset of 0, which nft always sends (the
    /// printed text hides it).
    #[test]
    fn numgen_is_encoded_byte_for_byte_like_nft() {
        let nat = cloud(CloudProfile::AwsNatGateway, pool(6, 8), None);
        let planned = plan_batch(&ruleset_with(&docker(nat), &[]));
        let attr = |len: u16, ty: u16| [len.to_ne_bytes(), ty.to_ne_bytes()].concat();
        const NESTED: u16 = 0x8000;
        let u32_attr = |ty: u16, v: u32| [attr(8, ty), v.to_be_bytes().to_vec()].concat();
        let name: Vec<u8> = [
            attr(52, NESTED | 1), // NFTA_LIST_ELEM
            attr(11, 1),          // NFTA_EXPR_NAME
            b"numgen\0".to_vec(),
        ]
        .concat();
        // One byte of padding between: nft zeroes it, libmnl here leaves what the buffer
        // held (the kernel ignores it).
        let data: Vec<u8> = [
            attr(36, NESTED | 2), // NFTA_EXPR_DATA
            u32_attr(1, 1),       // NFTA_NG_DREG: reg 1
            u32_attr(2, 3),       // NFTA_NG_MODULUS
            u32_attr(3, 0),       // NFTA_NG_TYPE: NFT_NG_INCREMENTAL
            u32_attr(4, 0),       // NFTA_NG_OFFSET
        ]
        .concat();
        let len = name.len() + 1 + data.len();
        let found = planned
            .batch
            .iter()
            .flat_map(messages)
            .filter(|(ty, _)| *ty == nft_msg_type(libc::NFT_MSG_NEWRULE as u8))
            .filter(|(_, msg)| {
                msg.windows(len)
                    .any(|w| w[..name.len()] == name[..] && w[name.len() + 1..] == data[..])
            })
            .count();
        // tcp and udp each have one `mod 3` rule.
        assert_eq!(found, 2);
    }

    #[test]
    fn golden_none_has_no_nat_rule_but_the_chain() {
        assert!(postrouting_of(Nat::None).is_empty());
        let tables = ruleset(&docker(Nat::None));
        assert_eq!(tables[0].chains[0].name, POSTROUTING);
        assert!(tables[0].chains[0].base.is_some());
        // The filter rules do not depend on the NAT.
        assert_eq!(rules_of(Nat::None).len(), 9);
    }

    #[test]
    fn saddr_prefixes_are_encoded_like_nft() {
        let enc = |net: &str| {
            let mut d = docker(Nat::MASQUERADE);
            d.default_bridge.subnet = net.parse().unwrap();
            let text = &postrouting_of_docker(&d)[0];
            text.lines().take(3).collect::<Vec<_>>().join("\n")
        };
        assert_eq!(
            enc("10.0.0.0/8"),
            "[ payload load 1b @ network header + 12 => reg 1 ]\n\
             [ cmp eq reg 1 0x0000000a ]\n\
             [ meta load oifname => reg 1 ]"
        );
        assert_eq!(
            enc("172.17.0.0/20"),
            "[ payload load 4b @ network header + 12 => reg 1 ]\n\
             [ bitwise reg 1 = ( reg 1 & 0x00f0ffff ) ^ 0x00000000 ]\n\
             [ cmp eq reg 1 0x000011ac ]"
        );
        assert_eq!(
            enc("192.168.1.7/32"),
            "[ payload load 4b @ network header + 12 => reg 1 ]\n\
             [ cmp eq reg 1 0x0701a8c0 ]\n\
             [ meta load oifname => reg 1 ]"
        );
        // A host address in the subnet is reduced to the network, as `ip saddr` means it.
        assert!(enc("172.17.0.1/16").contains("cmp eq reg 1 0x000011ac"));
    }

    fn postrouting_of_docker(d: &Docker) -> Vec<String> {
        let planned = plan_batch(&ruleset(d));
        batch_messages(&planned)
            .into_iter()
            .filter_map(|(_, r)| r)
            .filter(|r| r.chain == "POSTROUTING")
            .map(|r| r.text)
            .collect()
    }

    #[test]
    fn batch_replaces_each_table_then_adds_chains_then_rules() {
        let planned = plan_batch(&ruleset(&docker(Nat::MASQUERADE)));
        let t = |m: i32| nft_msg_type(m as u8);
        let types: Vec<u16> = batch_messages(&planned)
            .into_iter()
            .map(|(ty, _)| ty)
            .filter(|ty| *ty >> 8 == u16::from(NFNL_SUBSYS_NFTABLES))
            .collect();
        let mut want = vec![
            t(libc::NFT_MSG_NEWTABLE),
            t(libc::NFT_MSG_DELTABLE),
            t(libc::NFT_MSG_NEWTABLE),
            t(libc::NFT_MSG_NEWCHAIN),
            t(libc::NFT_MSG_NEWRULE),
            t(libc::NFT_MSG_NEWTABLE),
            t(libc::NFT_MSG_DELTABLE),
            t(libc::NFT_MSG_NEWTABLE),
        ];
        want.extend([t(libc::NFT_MSG_NEWCHAIN); 7]);
        want.extend([t(libc::NFT_MSG_NEWRULE); 9]);
        assert_eq!(types, want);
        // Every sequence number that expects an ACK has a description.
        assert_eq!(planned.batch.sequence_numbers().len(), planned.steps.len());
    }

    #[test]
    fn chains_are_base_or_regular_as_docker_has_them() {
        let planned = plan_batch(&ruleset(&docker(Nat::MASQUERADE)));
        let mut chains = Vec::new();
        for page in planned.batch.iter() {
            for (ty, msg) in messages(page) {
                if ty == nft_msg_type(libc::NFT_MSG_NEWCHAIN as u8) {
                    chains.push(parse_chain(msg).unwrap());
                }
            }
        }
        let names: Vec<&str> = chains.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "POSTROUTING",
                "FORWARD",
                "DOCKER-USER",
                "DOCKER-FORWARD",
                "DOCKER-CT",
                "DOCKER-BRIDGE",
                "DOCKER",
                "DOCKER-INTERNAL"
            ]
        );
        let post = &chains[0].text;
        assert!(post.contains("type nat") && post.contains("hook postrouting"));
        assert!(
            post.contains("prio 100") && post.contains("policy accept"),
            "{post}"
        );
        let fwd = &chains[1].text;
        assert!(
            fwd.contains("type filter") && fwd.contains("hook forward"),
            "{fwd}"
        );
        assert!(
            fwd.contains("prio 0") && fwd.contains("policy drop"),
            "{fwd}"
        );
        assert!(!chains[2].text.contains("hook"), "{}", chains[2].text);
    }

    #[test]
    fn refusals_name_the_object_and_missing_nat_is_unsupported() {
        let planned = plan_batch(&ruleset(&docker(Nat::MASQUERADE)));
        let seq_of = |needle: &str| {
            let i = planned
                .steps
                .iter()
                .position(|s| s.what.contains(needle))
                .unwrap();
            planned.batch.sequence_numbers().start + i as u32
        };
        let masq = seq_of("masquerade` to chain nat POSTROUTING");
        let err = planned.refused(masq, libc::ENOENT);
        let text = format!("{err:#}");
        assert!(
            text.starts_with(
                "add rule `ip saddr 172.17.0.0/16 oifname != \"docker0\" counter masquerade` \
                 to chain nat POSTROUTING"
            ),
            "{text}"
        );
        assert!(text.contains(UNSUPPORTED_NAT), "{text}");
        assert_eq!(
            crate::error::exit_code(&err),
            crate::error::exit::UNSUPPORTED
        );

        let chain = seq_of("add chain nat POSTROUTING");
        let err = planned.refused(chain, libc::EOPNOTSUPP);
        assert_eq!(
            crate::error::exit_code(&err),
            crate::error::exit::UNSUPPORTED
        );

        let ct = seq_of("ct state");
        assert!(format!("{:#}", planned.refused(ct, libc::ENOENT)).contains("CONFIG_NFT_CT"));

        // Not a missing feature: a runtime error that keeps the errno.
        let err = planned.refused(masq, libc::EPERM);
        assert_eq!(crate::error::exit_code(&err), crate::error::exit::RUNTIME);
        assert_eq!(crate::error::errno_of(&err), Some(libc::EPERM));
        let jump = seq_of("jump DOCKER-USER");
        let err = planned.refused(jump, libc::ENOENT);
        assert_eq!(crate::error::exit_code(&err), crate::error::exit::RUNTIME);
    }

    #[test]
    fn script_masquerade() {
        let want = r#"# Docker 29.x rules for the bridge docker0 (172.17.0.0/16), as `nft list ruleset` shows what Docker
# writes through iptables-nft. Load it inside the host's namespace with `nft -f`.
# Each table is created, deleted and written again in one transaction, so loading
# this again replaces the rules instead of adding a second copy.
table ip nat
delete table ip nat
table ip nat {
	chain POSTROUTING {
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr 172.17.0.0/16 oifname != "docker0" counter masquerade
	}
}
table ip filter
delete table ip filter
table ip filter {
	chain FORWARD {
		# policy drop: what dockerd sets when it switched net.ipv4.ip_forward on itself
		type filter hook forward priority filter; policy drop;
		counter jump DOCKER-USER
		counter jump DOCKER-FORWARD
	}

	chain DOCKER-USER {
		# the user's own rules; Docker never writes here
	}

	chain DOCKER-FORWARD {
		counter jump DOCKER-CT
		counter jump DOCKER-INTERNAL
		counter jump DOCKER-BRIDGE
		iifname "docker0" counter accept
	}

	chain DOCKER-CT {
		oifname "docker0" ct state established,related counter accept
	}

	chain DOCKER-BRIDGE {
		oifname "docker0" counter jump DOCKER
	}

	chain DOCKER {
		iifname != "docker0" oifname "docker0" counter drop
	}

	chain DOCKER-INTERNAL {
		# rules of --internal networks; this bridge is not one
	}
}
"#;
        assert_eq!(nft_script(&docker(Nat::MASQUERADE), &[]), want);
    }

    fn script_postrouting(nat: Nat) -> Vec<String> {
        let s = nft_script(&docker(nat), &[]);
        s.lines()
            .skip_while(|l| !l.contains("chain POSTROUTING"))
            .skip(1)
            .take_while(|l| l.trim() != "}")
            .map(|l| l.trim().to_owned())
            .collect()
    }

    #[test]
    fn script_nat_variants() {
        let head = r#"ip saddr 172.17.0.0/16 oifname != "docker0""#;
        let ports = Some(PortRange::new(40000, 40099).unwrap());
        let post = script_postrouting(Nat::Masquerade {
            ports,
            random_fully: false,
        });
        assert_eq!(
            post[2..],
            [
                format!("{head} ip protocol tcp counter masquerade to :40000-40099"),
                format!("{head} ip protocol udp counter masquerade to :40000-40099"),
                format!("{head} counter masquerade"),
            ]
        );
        assert!(post[0].starts_with("# nft takes a port range only after"));

        let single = Nat::Snat {
            pool: pool(7, 7),
            ports: None,
            persistent: false,
            random_fully: false,
        };
        assert_eq!(
            script_postrouting(single)[1..],
            [format!("{head} counter snat to 192.168.49.7")]
        );

        let nat = Nat::Snat {
            pool: pool(7, 9),
            ports,
            persistent: true,
            random_fully: false,
        };
        assert_eq!(
            script_postrouting(nat)[2..],
            [
                format!(
                    "{head} ip protocol tcp counter snat to \
                     192.168.49.7-192.168.49.9:40000-40099 persistent"
                ),
                format!(
                    "{head} ip protocol udp counter snat to \
                     192.168.49.7-192.168.49.9:40000-40099 persistent"
                ),
                format!("{head} counter snat to 192.168.49.7-192.168.49.9 persistent"),
            ]
        );

        assert_eq!(
            script_postrouting(Nat::None),
            [
                "# enable_ip_masquerade=false: containers leave with their own addresses",
                "type nat hook postrouting priority srcnat; policy accept;",
            ]
        );
    }

    /// The script's POSTROUTING lines with containers 172.17.0.2 to 172.17.0.`last`.
    fn script_postrouting_with(nat: Nat, last: u8) -> Vec<String> {
        let s = nft_script(&docker(nat), &endpoints(last));
        s.lines()
            .skip_while(|l| !l.contains("chain POSTROUTING"))
            .skip(1)
            .take_while(|l| l.trim() != "}")
            .map(|l| l.trim().to_owned())
            .collect()
    }

    /// The text of the cloud profiles and `fully-random`, as `nft list ruleset` printed it
    /// back after `nft -f` (nft 1.0.6; counters left out), notes first.
    #[test]
    fn script_cloud_profiles_and_random_fully() {
        let head = r#"ip saddr 172.17.0.0/16 oifname != "docker0""#;
        let aws = script_postrouting_with(cloud(CloudProfile::AwsNatGateway, pool(6, 8), None), 3);
        assert_eq!(
            aws,
            [
                "# AWS NAT gateway: 55000 ports per address and destination (1024-56023), as many destinations as you like".to_owned(),
                "# 3 addresses: each new connection takes the next one in turn (numgen), so a SYN dropped on a full address tries another when it is sent again".to_owned(),
                "type nat hook postrouting priority srcnat; policy accept;".to_owned(),
                format!("{head} ip protocol tcp numgen inc mod 3 0 counter snat to 192.168.49.6:1024-56023"),
                format!("{head} ip protocol tcp numgen inc mod 2 0 counter snat to 192.168.49.7:1024-56023"),
                format!("{head} ip protocol tcp counter snat to 192.168.49.8:1024-56023"),
                format!("{head} ip protocol udp numgen inc mod 3 0 counter snat to 192.168.49.6:1024-56023"),
                format!("{head} ip protocol udp numgen inc mod 2 0 counter snat to 192.168.49.7:1024-56023"),
                format!("{head} ip protocol udp counter snat to 192.168.49.8:1024-56023"),
                format!("{head} counter snat to 192.168.49.6"),
            ]
        );

        let gcp = script_postrouting_with(
            cloud(CloudProfile::GcpCloudNat, pool(6, 7), Some(32_768)),
            4,
        );
        let vm = |i: u8| format!(r#"ip saddr 172.17.0.{i} oifname != "docker0""#);
        assert_eq!(
            gcp,
            [
                "# GCP Cloud NAT: 32768 ports per VM (container) on one address, each port once per destination".to_owned(),
                "# 1 VM(s) get no ports: the addresses hold 2 VMs (nat_allocation_failed)".to_owned(),
                "type nat hook postrouting priority srcnat; policy accept;".to_owned(),
                format!("{} ip protocol tcp counter snat to 192.168.49.6:1024-33791", vm(2)),
                format!("{} ip protocol udp counter snat to 192.168.49.6:1024-33791", vm(2)),
                format!("{} counter snat to 192.168.49.6", vm(2)),
                format!("{} ip protocol tcp counter snat to 192.168.49.7:1024-33791", vm(3)),
                format!("{} ip protocol udp counter snat to 192.168.49.7:1024-33791", vm(3)),
                format!("{} counter snat to 192.168.49.7", vm(3)),
                format!(r#"{} counter drop comment "nat_allocation_failed""#, vm(4)),
            ]
        );

        let masq = script_postrouting(Nat::Masquerade {
            ports: None,
            random_fully: true,
        });
        assert_eq!(
            masq[1..],
            [format!("{head} counter masquerade fully-random")]
        );
        let snat = script_postrouting(Nat::Snat {
            pool: pool(7, 9),
            ports: Some(PortRange::new(40000, 40099).unwrap()),
            persistent: true,
            random_fully: true,
        });
        assert_eq!(
            snat[2..],
            [
                format!(
                    "{head} ip protocol tcp counter snat to \
                     192.168.49.7-192.168.49.9:40000-40099 fully-random,persistent"
                ),
                format!(
                    "{head} ip protocol udp counter snat to \
                     192.168.49.7-192.168.49.9:40000-40099 fully-random,persistent"
                ),
                format!("{head} counter snat to 192.168.49.7-192.168.49.9 fully-random,persistent"),
            ]
        );
    }

    #[test]
    fn empty_pool_is_refused_before_touching_the_kernel() {
        let d = docker(Nat::Snat {
            pool: vec![],
            ports: None,
            persistent: false,
            random_fully: false,
        });
        let err = apply(&d, &[]).unwrap_err();
        assert!(format!("{err:#}").contains("pool is empty"));
        assert!(nft_script(&d, &[]).contains("# no SNAT rule: the address pool is empty"));
    }

    fn nftables(nat: Nat) -> Docker {
        Docker {
            firewall: FirewallBackend::Nftables,
            ..docker(nat)
        }
    }

    fn endpoints(last: u8) -> Vec<Endpoint> {
        (2..=last)
            .map(|i| Endpoint {
                bridge: IfName::new("docker0").unwrap(),
                address: Ipv4Addr::new(172, 17, 0, i),
            })
            .collect()
    }

    /// The nftables layout's rules as encoded, against what `nft --debug=netlink -f` printed
    /// for Docker 29's text (nft 1.0.6, libnftnl 1.2.4); the full listing is checked against
    /// the kernel in tests/nftables.rs.
    #[test]
    fn golden_nftables_rules() {
        let d = nftables(Nat::MASQUERADE);
        let planned = plan_batch(&ruleset_with(&d, &endpoints(2)));
        let rules: Vec<(String, String, String)> = batch_messages(&planned)
            .into_iter()
            .filter_map(|(_, r)| r)
            .map(|r| (r.family, r.chain, r.text))
            .collect();
        let find = |family: &str, chain: &str| -> Vec<String> {
            rules
                .iter()
                .filter(|r| r.0 == family && r.1 == chain)
                .map(|r| r.2.clone())
                .collect()
        };
        let vmap = |key: &str, map: &str| {
            golden(&[
                &format!("[ meta load {key} => reg 1 ]"),
                &format!("[ lookup reg 1 set {map} dreg 0 ]"),
            ])
        };
        let fib = "
            [ fib daddr type => reg 1 ]
            [ cmp eq reg 1 0x00000002 ]";
        let to_dnat = "[ immediate reg 0 jump -> nat-prerouting-and-output ]";
        assert_eq!(
            find("ip", "filter-FORWARD"),
            [
                vmap("oifname", "filter-forward-in-jumps"),
                vmap("iifname", "filter-forward-out-jumps")
            ]
        );
        assert_eq!(
            find("ip", "nat-POSTROUTING"),
            [
                vmap("iifname", "nat-postrouting-out-jumps"),
                vmap("oifname", "nat-postrouting-in-jumps")
            ]
        );
        let not_lo = "
            [ payload load 1b @ network header + 16 => reg 1 ]
            [ cmp neq reg 1 0x0000007f ]";
        assert_eq!(
            find("ip", "nat-OUTPUT"),
            [golden(&[not_lo, fib, COUNTER, to_dnat])]
        );
        assert_eq!(
            find("ip", "nat-PREROUTING"),
            [golden(&[fib, COUNTER, to_dnat])]
        );
        let not_lo6 = "
            [ payload load 16b @ network header + 24 => reg 1 ]
            [ cmp neq reg 1 0x00000000 0x00000000 0x00000000 0x01000000 ]";
        assert_eq!(
            find("ip6", "nat-OUTPUT"),
            [golden(&[not_lo6, fib, COUNTER, to_dnat])]
        );
        assert_eq!(
            find("ip", "raw-PREROUTING"),
            [golden(&[
                "[ payload load 4b @ network header + 16 => reg 1 ]",
                "[ cmp eq reg 1 0x020011ac ]",
                "[ meta load iifname => reg 1 ]",
                "[ cmp neq reg 1 0x6b636f64 0x00307265 0x00000000 0x00000000 ]",
                COUNTER,
                "[ immediate reg 0 drop ]",
                r"userdata = { \x00\x13DROP DIRECT ACCESS\x00 }",
            ])]
        );
        assert_eq!(
            find("ip", "nat-postrouting-out__docker0"),
            [golden(&[
                "[ meta load oifname => reg 1 ]",
                "[ cmp neq reg 1 0x6b636f64 0x00307265 0x00000000 0x00000000 ]",
                "[ payload load 2b @ network header + 12 => reg 1 ]",
                "[ cmp eq reg 1 0x000011ac ]",
                COUNTER,
                "[ masq ]",
                r"userdata = { \x00\x0bMASQUERADE\x00 }",
            ])]
        );
        assert_eq!(find("ip", "filter-forward-in__docker0").len(), 3);
        assert_eq!(find("ip", "filter-forward-out__docker0").len(), 2);

        // Order: per table, the tables, the chains, the four maps, their elements (ip only:
        // the ip6 maps have none), then the rules.
        let t = |m: i32| nft_msg_type(m as u8);
        let types: Vec<u16> = batch_messages(&planned)
            .into_iter()
            .map(|(ty, _)| ty)
            .filter(|ty| *ty >> 8 == u16::from(NFNL_SUBSYS_NFTABLES))
            .collect();
        let table = [
            t(libc::NFT_MSG_NEWTABLE),
            t(libc::NFT_MSG_DELTABLE),
            t(libc::NFT_MSG_NEWTABLE),
        ];
        let mut want = table.to_vec();
        want.extend([t(libc::NFT_MSG_NEWCHAIN); 10]);
        want.extend([t(libc::NFT_MSG_NEWSET); 4]);
        want.extend([t(libc::NFT_MSG_NEWSETELEM); 4]);
        want.extend([t(libc::NFT_MSG_NEWRULE); 13]);
        want.extend(table);
        want.extend([t(libc::NFT_MSG_NEWCHAIN); 6]);
        want.extend([t(libc::NFT_MSG_NEWSET); 4]);
        want.extend([t(libc::NFT_MSG_NEWRULE); 6]);
        assert_eq!(types, want);
        assert_eq!(planned.batch.sequence_numbers().len(), planned.steps.len());
    }

    #[test]
    fn nftables_script_writes_docker_29_comments_and_host_ipv4() {
        let s = nft_script(&nftables(Nat::MASQUERADE), &endpoints(3));
        for line in [
            "\t\tip daddr 172.17.0.2 iifname != \"docker0\" counter drop comment \"DROP DIRECT ACCESS\"\n\t\tip daddr 172.17.0.3 iifname != \"docker0\" counter drop comment \"DROP DIRECT ACCESS\"\n",
            "\t\toifname != \"docker0\" ip saddr 172.17.0.0/16 counter masquerade comment \"MASQUERADE\"\n",
            "\t\tiifname \"docker0\" counter accept comment \"ICC\"\n",
            "\t\telements = { \"docker0\" : jump nat-postrouting-out__docker0 }\n",
            "table ip6 docker-bridges\ndelete table ip6 docker-bridges\ntable ip6 docker-bridges {\n",
            "\t\ttype nat hook output priority -100; policy accept;\n",
        ] {
            assert!(s.contains(line), "{line:?} not in:\n{s}");
        }
        let host_ipv4 = Nat::Snat {
            pool: pool(41, 41),
            ports: None,
            persistent: false,
            random_fully: false,
        };
        let s = nft_script(&nftables(host_ipv4), &[]);
        assert!(s.contains(
            "oifname != \"docker0\" ip saddr 172.17.0.0/16 counter snat to 192.168.49.41 comment \"SNAT\"\n"
        ));
        // Routed (nat = "none"): no direct-access drop, ICMP accepted, no NAT rule.
        let s = nft_script(&nftables(Nat::None), &endpoints(2));
        assert!(!s.contains("drop comment \"DROP DIRECT ACCESS\""), "{s}");
        assert!(
            s.contains("ip protocol icmp counter accept comment \"ICMP\""),
            "{s}"
        );
    }

    #[test]
    fn rule_text_helpers() {
        let r = RuleText {
            family: "ip".into(),
            table: "nat".into(),
            chain: "POSTROUTING".into(),
            handle: Some(4),
            text: "[ meta load oifname => reg 1 ]\n[ counter pkts 12 bytes 720 ]\n[ masq ]".into(),
        };
        assert_eq!(
            r.to_string(),
            "ip nat POSTROUTING (handle 4)\n  [ meta load oifname => reg 1 ]\n  \
             [ counter pkts 12 bytes 720 ]\n  [ masq ]"
        );
    }
}
