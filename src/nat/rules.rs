//! Docker's bridge NAT and forwarding rules, written into a namespace's nftables over netlink.
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
//!
//! The [`Nat`] of the plan only changes the POSTROUTING rules; see [`nft_script`] for each form.
//!
//! # Why netlink, and why one batch
//!
//! `lab` must not depend on the `nft` binary, so the rules are built with libnftnl (`nftnl`) and
//! sent over the one netfilter transport ([`super::nfnl`]). The rules are encoded exactly as `nft` 1.0.6 encodes the equivalent
//! text (same payload loads, registers and NAT flags), so `nft list ruleset` prints them back as
//! the text of [`nft_script`] and `nft --debug=netlink` shows the same expressions.
//!
//! Everything goes to the kernel as one nf_tables transaction, which either applies whole or not
//! at all. Each table is added, deleted and added again in that transaction (the `nft -f` trick),
//! so running [`apply`] again replaces the rules instead of appending duplicates. This means
//! [`apply`] owns the tables `ip nat` and `ip filter` of the namespace: anything else in them is
//! removed. That is fine in a namespace `lab` created; never call it in the initial namespace.

use std::ffi::{CStr, CString, c_char};
use std::fmt::{self, Write as _};
use std::io;
use std::net::Ipv4Addr;
use std::ptr::NonNull;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use ipnet::Ipv4Net;
use nftnl::expr::{
    Bitwise, Cmp, CmpOp, Conntrack, Counter, Expression, Immediate, Meta, Register, States, Verdict,
};
use nftnl::nftnl_sys as sys;
use nftnl::{
    Batch, Chain, ChainType, FinalizedBatch, Hook, MsgType, Policy, ProtoFamily, Rule, Table,
};

use super::nfnl;
use crate::lab::plan::{DockerNet, IfName, Nat, PortRange};

/// How long one `recv` on the netfilter socket may block. The kernel answers a batch within
/// microseconds; the bound only matters when it never answers (e.g. a batch it silently dropped),
/// which must not hang `lab`.
const RECV_TIMEOUT: Duration = Duration::from_secs(5);

/// The message for a kernel built without the nf_tables pieces the ruleset needs.
const UNSUPPORTED_NAT: &str =
    "this kernel lacks nf_tables NAT (CONFIG_NF_TABLES, CONFIG_NFT_NAT, CONFIG_NFT_MASQ)";
/// The same for the `ct state` match of DOCKER-CT, which lives in its own module.
const UNSUPPORTED_CT: &str = "this kernel lacks nf_tables conntrack matching (CONFIG_NFT_CT)";

// linux/netfilter/nf_nat.h. `nft` sets PROTO_SPECIFIED whenever a port range is given; without
// it the kernel ignores the range and picks ports from the whole ephemeral space.
const NF_NAT_RANGE_PROTO_SPECIFIED: u32 = 2;
const NF_NAT_RANGE_PERSISTENT: u32 = 8;

const NAT_TABLE: &CStr = c"nat";
const FILTER_TABLE: &CStr = c"filter";
const POSTROUTING: &CStr = c"POSTROUTING";
const FORWARD: &CStr = c"FORWARD";
const DOCKER_USER: &CStr = c"DOCKER-USER";
const DOCKER_FORWARD: &CStr = c"DOCKER-FORWARD";
const DOCKER_CT: &CStr = c"DOCKER-CT";
const DOCKER_BRIDGE: &CStr = c"DOCKER-BRIDGE";
const DOCKER: &CStr = c"DOCKER";
const DOCKER_INTERNAL: &CStr = c"DOCKER-INTERNAL";

// ---------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------

/// The ruleset [`apply`] writes, as `nft -f` input, for `lab show --commands` and the docs.
///
/// Both come from the same description, so the script is what the kernel ends up with: loading
/// it with `nft -f` in a fresh namespace gives the same `nft list ruleset` as [`apply`]. Like
/// [`apply`], it replaces the two tables, so it can be loaded again.
///
/// The POSTROUTING rules per [`Nat`] (all start with `ip saddr <subnet> oifname != "<bridge>"`):
/// - `Masquerade { ports: None }`: `counter masquerade`, Docker's default.
/// - `Masquerade { ports: Some(P-Q) }`: nft takes a port range only after a transport match, so
///   `ip protocol tcp counter masquerade to :P-Q`, the same for udp, then a plain
///   `counter masquerade` for everything else (ICMP).
/// - `Snat { pool: [A..=B], ports, persistent }`: Docker's `host_ipv4` writes `snat to <ip>`;
///   a pool becomes `snat to A-B` (just `A` when the pool has one address), with ports again one
///   rule per tcp/udp (`snat to A-B:P-Q`) and one without ports; `persistent` is appended to each.
/// - `None`: no rule, like `enable_ip_masquerade=false`; the chain is still there.
pub fn nft_script(docker: &DockerNet) -> String {
    let tables = ruleset(docker);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Docker 29.x rules for the bridge {} ({}), as `nft list ruleset` shows what Docker",
        docker.bridge,
        docker.subnet.trunc()
    );
    s.push_str(
        "# writes through iptables-nft. Load it inside the host's namespace with `nft -f`.\n",
    );
    s.push_str(
        "# Each table is created, deleted and written again in one transaction, so loading\n",
    );
    s.push_str("# this again replaces the rules instead of adding a second copy.\n");
    for table in &tables {
        let name = table.name.to_string_lossy();
        let _ = writeln!(
            s,
            "table ip {name}\ndelete table ip {name}\ntable ip {name} {{"
        );
        for (i, chain) in table.chains.iter().enumerate() {
            if i > 0 {
                s.push('\n');
            }
            let _ = writeln!(s, "\tchain {} {{", chain.name.to_string_lossy());
            for note in &chain.notes {
                let _ = writeln!(s, "\t\t# {note}");
            }
            if let Some(base) = &chain.base {
                let _ = writeln!(s, "\t\t{}", base.nft);
            }
            for rule in &chain.rules {
                let _ = writeln!(s, "\t\t{}", rule.nft());
            }
            s.push_str("\t}\n");
        }
        s.push_str("}\n");
    }
    s
}

/// Writes the ruleset into the nftables of the namespace the calling thread is in, as one atomic
/// transaction that replaces `ip nat` and `ip filter` (see the module docs).
///
/// The caller runs this inside a setns'd closure: the netfilter socket belongs to the namespace
/// of the thread that opens it, and it is opened here. It is synchronous on purpose
/// (a namespace switch must not span an `.await`).
///
/// Errors name the object the kernel refused, e.g. "add rule
/// \`ip saddr 172.17.0.0/16 oifname != "docker0" counter masquerade\` to chain nat POSTROUTING".
/// A kernel without nf_tables, its NAT chain type or the masq/nat/ct expressions gives an error
/// whose chain holds [`crate::error::Fail::Unsupported`].
pub fn apply(docker: &DockerNet) -> anyhow::Result<()> {
    if let Nat::Snat { pool, .. } = &docker.nat
        && pool.is_empty()
    {
        bail!(
            "cannot write the SNAT rule for {}: its address pool is empty",
            docker.bridge
        );
    }
    let planned = plan_batch(&ruleset(docker));
    let mut socket = open_socket()?;
    send_batch(&mut socket, &planned).with_context(|| {
        format!(
            "write Docker's NAT and forward rules for {} ({})",
            docker.bridge,
            docker.subnet.trunc()
        )
    })
}

/// One rule as the kernel holds it, printed the way `nft --debug=netlink` prints rules.
///
/// This is libnftnl's own rendering of the netlink message, so it needs neither the `nft` binary
/// nor any knowledge of what the rule means; tests compare it with the text `nft` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleText {
    /// `ip`, `ip6`, `inet`, ... (the table's family).
    pub family: String,
    pub table: String,
    pub chain: String,
    /// The kernel's handle; `None` for a rule decoded from a batch that was never sent.
    pub handle: Option<u64>,
    /// One expression per line, e.g. `[ meta load oifname => reg 1 ]`.
    pub text: String,
}

impl fmt::Display for RuleText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.family, self.table, self.chain)?;
        if let Some(h) = self.handle {
            write!(f, " (handle {h})")?;
        }
        for line in self.text.lines() {
            write!(f, "\n  {line}")?;
        }
        Ok(())
    }
}

/// Reads back every rule of the current namespace over netlink (all tables, all families), in
/// the kernel's order: table by table, chain by chain, rule by rule.
///
/// For tests and diagnostics: it shows what landed without the `nft` binary. Two differences
/// from the batch [`apply`] sends are the kernel's, not bugs: counters hold real counts, and
/// every `nat` expression comes back with MAP_IPS (0x1) in its flags (`flags 0xa` is read back
/// as `flags 0xb`) and, for a single address, with
/// `addr_max reg 1` as well (`snat to A` is read back as `addr_min reg 1 addr_max reg 1 flags 0x1`).
/// `nft list ruleset` prints both forms the same way.
pub fn read_back() -> anyhow::Result<Vec<RuleText>> {
    dump("rules", libc::NFT_MSG_GETRULE as u8, parse_rule)
}

// ---------------------------------------------------------------------------------------------
// The ruleset, described once for both the nft text and the netlink messages
// ---------------------------------------------------------------------------------------------

struct TableSpec {
    name: &'static CStr,
    chains: Vec<ChainSpec>,
}

struct ChainSpec {
    name: &'static CStr,
    base: Option<BaseChain>,
    /// Comment lines for the script.
    notes: Vec<String>,
    rules: Vec<RuleSpec>,
}

impl ChainSpec {
    fn regular(name: &'static CStr, rules: Vec<RuleSpec>) -> Self {
        Self {
            name,
            base: None,
            notes: Vec::new(),
            rules,
        }
    }
}

/// A chain attached to a netfilter hook; `nft` is the same thing in nft syntax.
struct BaseChain {
    ty: ChainType,
    hook: Hook,
    priority: i32,
    policy: Policy,
    nft: &'static str,
}

/// Every rule has this shape: matches, a counter (as iptables-nft adds one to each rule), and a
/// final statement.
struct RuleSpec {
    matches: Vec<Match>,
    action: Action,
}

enum Match {
    Saddr(Ipv4Net),
    Iif { equal: bool, name: IfName },
    Oif { equal: bool, name: IfName },
    Proto(L4),
    CtEstablishedRelated,
}

#[derive(Clone, Copy)]
enum L4 {
    Tcp,
    Udp,
}

impl L4 {
    fn number(self) -> u8 {
        match self {
            L4::Tcp => libc::IPPROTO_TCP as u8,
            L4::Udp => libc::IPPROTO_UDP as u8,
        }
    }

    fn name(self) -> &'static str {
        match self {
            L4::Tcp => "tcp",
            L4::Udp => "udp",
        }
    }
}

enum Action {
    Jump(&'static CStr),
    Accept,
    Drop,
    Masquerade {
        ports: Option<PortRange>,
    },
    Snat {
        first: Ipv4Addr,
        last: Ipv4Addr,
        ports: Option<PortRange>,
        persistent: bool,
    },
}

fn ruleset(docker: &DockerNet) -> Vec<TableSpec> {
    let br = &docker.bridge;
    let oif = |equal| Match::Oif {
        equal,
        name: br.clone(),
    };
    let iif = |equal| Match::Iif {
        equal,
        name: br.clone(),
    };
    let jump = |to| RuleSpec {
        matches: vec![],
        action: Action::Jump(to),
    };

    let (nat_rules, nat_notes) = postrouting(docker);
    let nat = TableSpec {
        name: NAT_TABLE,
        chains: vec![ChainSpec {
            name: POSTROUTING,
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

    let filter = TableSpec {
        name: FILTER_TABLE,
        chains: vec![
            ChainSpec {
                name: FORWARD,
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
            ChainSpec::regular(
                DOCKER_FORWARD,
                vec![
                    jump(DOCKER_CT),
                    jump(DOCKER_INTERNAL),
                    jump(DOCKER_BRIDGE),
                    RuleSpec {
                        matches: vec![iif(true)],
                        action: Action::Accept,
                    },
                ],
            ),
            ChainSpec::regular(
                DOCKER_CT,
                vec![RuleSpec {
                    matches: vec![oif(true), Match::CtEstablishedRelated],
                    action: Action::Accept,
                }],
            ),
            ChainSpec::regular(
                DOCKER_BRIDGE,
                vec![RuleSpec {
                    matches: vec![oif(true)],
                    action: Action::Jump(DOCKER),
                }],
            ),
            ChainSpec::regular(
                DOCKER,
                vec![RuleSpec {
                    matches: vec![iif(false), oif(true)],
                    action: Action::Drop,
                }],
            ),
            ChainSpec {
                notes: vec!["rules of --internal networks; this bridge is not one".into()],
                ..ChainSpec::regular(DOCKER_INTERNAL, vec![])
            },
        ],
    };
    vec![nat, filter]
}

/// The POSTROUTING rules for the plan's [`Nat`], and comment lines for the script.
fn postrouting(docker: &DockerNet) -> (Vec<RuleSpec>, Vec<String>) {
    let rule = |proto: Option<L4>, action| {
        let mut matches = vec![
            Match::Saddr(docker.subnet.trunc()),
            Match::Oif {
                equal: false,
                name: docker.bridge.clone(),
            },
        ];
        matches.extend(proto.map(Match::Proto));
        RuleSpec { matches, action }
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

// --- nft text -------------------------------------------------------------------------------

impl RuleSpec {
    fn nft(&self) -> String {
        let mut parts: Vec<String> = self.matches.iter().map(Match::nft).collect();
        parts.push("counter".into());
        parts.push(self.action.nft());
        parts.join(" ")
    }

    /// What a failure message calls this rule.
    fn describe(&self, table: &CStr, chain: &CStr) -> String {
        format!(
            "add rule `{}` to chain {} {}",
            self.nft(),
            table.to_string_lossy(),
            chain.to_string_lossy()
        )
    }

    /// The message for EOPNOTSUPP/ENOENT on this rule, if that means a missing kernel feature
    /// (an expression module) rather than a mistake in the batch.
    fn needs(&self) -> Option<&'static str> {
        if self
            .matches
            .iter()
            .any(|m| matches!(m, Match::CtEstablishedRelated))
        {
            Some(UNSUPPORTED_CT)
        } else if matches!(self.action, Action::Masquerade { .. } | Action::Snat { .. }) {
            Some(UNSUPPORTED_NAT)
        } else {
            None
        }
    }
}

impl Match {
    fn nft(&self) -> String {
        let op = |equal: bool| if equal { "" } else { "!= " };
        match self {
            // nft prints a /32 as the bare address.
            Match::Saddr(net) if net.prefix_len() == 32 => format!("ip saddr {}", net.addr()),
            Match::Saddr(net) => format!("ip saddr {net}"),
            Match::Iif { equal, name } => format!("iifname {}\"{name}\"", op(*equal)),
            Match::Oif { equal, name } => format!("oifname {}\"{name}\"", op(*equal)),
            Match::Proto(p) => format!("ip protocol {}", p.name()),
            // nft's order; Docker's iptables text says RELATED,ESTABLISHED.
            Match::CtEstablishedRelated => "ct state established,related".into(),
        }
    }
}

/// `P-Q`, or just `P` for a one-port range, as nft prints it.
fn ports_nft(p: PortRange) -> String {
    if p.lo() == p.hi() {
        p.lo().to_string()
    } else {
        format!("{}-{}", p.lo(), p.hi())
    }
}

impl Action {
    fn nft(&self) -> String {
        match self {
            Action::Jump(to) => format!("jump {}", to.to_string_lossy()),
            Action::Accept => "accept".into(),
            Action::Drop => "drop".into(),
            Action::Masquerade { ports: None } => "masquerade".into(),
            Action::Masquerade { ports: Some(p) } => format!("masquerade to :{}", ports_nft(*p)),
            Action::Snat {
                first,
                last,
                ports,
                persistent,
            } => {
                let mut s = format!("snat to {first}");
                if last != first {
                    let _ = write!(s, "-{last}");
                }
                if let Some(p) = ports {
                    let _ = write!(s, ":{}", ports_nft(*p));
                }
                if *persistent {
                    s.push_str(" persistent");
                }
                s
            }
        }
    }
}

// --- netlink expressions ----------------------------------------------------------------------
//
// The encodings copy what `nft` 1.0.6 sends for the same text (checked with `nft --debug=netlink`
// on kernel 6.18): a byte-aligned prefix loads only its bytes, a 16-byte interface name, the
// protocol byte at offset 9, immediates in network order, registers handed out from reg 1 in
// the order min address, max address, min port, max port.

impl RuleSpec {
    fn add_to(&self, rule: &mut Rule<'_>) {
        for m in &self.matches {
            m.add_to(rule);
        }
        rule.add_expr(&Counter);
        self.action.add_to(rule);
    }
}

impl Match {
    fn add_to(&self, rule: &mut Rule<'_>) {
        match self {
            Match::Saddr(net) => {
                let prefix = net.prefix_len();
                let addr = net.network().octets();
                if prefix % 8 == 0 && prefix > 0 {
                    let n = usize::from(prefix / 8);
                    rule.add_expr(&NetworkPayload {
                        offset: 12,
                        len: u32::from(prefix / 8),
                    });
                    rule.add_expr(&Cmp::new(CmpOp::Eq, &addr[..n]));
                } else {
                    let mask = net.netmask().octets();
                    rule.add_expr(&NetworkPayload { offset: 12, len: 4 });
                    rule.add_expr(&Bitwise::new(&mask[..], &[0u8; 4][..]));
                    rule.add_expr(&Cmp::new(CmpOp::Eq, &addr[..]));
                }
            }
            Match::Iif { equal, name } => {
                rule.add_expr(&Meta::IifName);
                rule.add_expr(&Cmp::new(cmp_op(*equal), &ifname_bytes(name)[..]));
            }
            Match::Oif { equal, name } => {
                rule.add_expr(&Meta::OifName);
                rule.add_expr(&Cmp::new(cmp_op(*equal), &ifname_bytes(name)[..]));
            }
            Match::Proto(p) => {
                rule.add_expr(&NetworkPayload { offset: 9, len: 1 });
                rule.add_expr(&Cmp::new(CmpOp::Eq, p.number()));
            }
            Match::CtEstablishedRelated => {
                // ct state is a host-order u32 bit set.
                let bits = (States::ESTABLISHED | States::RELATED).bits();
                rule.add_expr(&Conntrack::State);
                rule.add_expr(&Bitwise::new(bits, 0u32));
                rule.add_expr(&Cmp::new(CmpOp::Neq, 0u32));
            }
        }
    }
}

fn cmp_op(equal: bool) -> CmpOp {
    if equal { CmpOp::Eq } else { CmpOp::Neq }
}

/// The name padded to IFNAMSIZ, as nft compares it (nftnl's `InterfaceName` compares only up to
/// the NUL; same meaning, different bytes, and these tests want nft's bytes).
fn ifname_bytes(name: &IfName) -> [u8; 16] {
    let mut b = [0u8; 16];
    let s = name.as_str().as_bytes();
    let n = s.len().min(15);
    b[..n].copy_from_slice(&s[..n]);
    b
}

/// Registers for a `min[-max]` pair: `max` only when it differs, as nft does.
fn range_regs(distinct: bool, regs: [Register; 2]) -> (Register, Option<Register>) {
    (regs[0], distinct.then_some(regs[1]))
}

impl Action {
    fn add_to(&self, rule: &mut Rule<'_>) {
        match self {
            Action::Jump(to) => rule.add_expr(&Verdict::Jump {
                chain: CString::from(*to),
            }),
            Action::Accept => rule.add_expr(&Verdict::Accept),
            Action::Drop => rule.add_expr(&Verdict::Drop),
            Action::Masquerade { ports } => {
                let proto = ports.map(|p| {
                    let (min, max) = range_regs(p.lo() != p.hi(), [Register::Reg1, Register::Reg2]);
                    load_port_range(rule, p, min, max);
                    (min, max)
                });
                rule.add_expr(&MasqExpr {
                    proto,
                    flags: if ports.is_some() {
                        NF_NAT_RANGE_PROTO_SPECIFIED
                    } else {
                        0
                    },
                });
            }
            Action::Snat {
                first,
                last,
                ports,
                persistent,
            } => {
                let (addr_min, addr_max) =
                    range_regs(first != last, [Register::Reg1, Register::Reg2]);
                rule.add_expr(&Immediate::new(first.octets(), addr_min));
                if let Some(r) = addr_max {
                    rule.add_expr(&Immediate::new(last.octets(), r));
                }
                let port_regs = if addr_max.is_some() {
                    [Register::Reg3, Register::Reg4]
                } else {
                    [Register::Reg2, Register::Reg3]
                };
                let proto = ports.map(|p| {
                    let (min, max) = range_regs(p.lo() != p.hi(), port_regs);
                    load_port_range(rule, p, min, max);
                    (min, max)
                });
                let mut flags = 0;
                if ports.is_some() {
                    flags |= NF_NAT_RANGE_PROTO_SPECIFIED;
                }
                if *persistent {
                    flags |= NF_NAT_RANGE_PERSISTENT;
                }
                rule.add_expr(&SnatExpr {
                    addr: (addr_min, addr_max),
                    proto,
                    flags,
                });
            }
        }
    }
}

/// Ports go into registers as 2 network-order bytes (Immediate copies the value's raw bytes).
fn load_port_range(rule: &mut Rule<'_>, p: PortRange, min: Register, max: Option<Register>) {
    rule.add_expr(&Immediate::new(p.lo().to_be_bytes(), min));
    if let Some(r) = max {
        rule.add_expr(&Immediate::new(p.hi().to_be_bytes(), r));
    }
}

fn alloc_expr(name: &CStr) -> NonNull<sys::nftnl_expr> {
    // SAFETY: `name` is a valid NUL-terminated string; libnftnl copies what it needs.
    let expr = unsafe { sys::nftnl_expr_alloc(name.as_ptr()) };
    // NULL means malloc failed for a few bytes (or a typo in `name`, which the tests catch);
    // nftnl aborts in that case too.
    NonNull::new(expr).unwrap_or_else(|| std::process::abort())
}

fn set_u32(expr: NonNull<sys::nftnl_expr>, attr: u32, value: u32) {
    // SAFETY: `expr` came from nftnl_expr_alloc and is not shared yet; `attr` is an attribute of
    // that expression type (the u16 cast is how libnftnl declares attributes).
    unsafe { sys::nftnl_expr_set_u32(expr.as_ptr(), attr as u16, value) };
}

/// `payload load <len>b @ network header + <offset> => reg 1`. nftnl's `Payload` has no
/// variant for "the first n bytes of the source address", which nft uses for /8, /16, /24.
struct NetworkPayload {
    offset: u32,
    len: u32,
}

impl Expression for NetworkPayload {
    fn to_expr(&self, _rule: &Rule) -> NonNull<sys::nftnl_expr> {
        let e = alloc_expr(c"payload");
        set_u32(
            e,
            sys::NFTNL_EXPR_PAYLOAD_BASE,
            libc::NFT_PAYLOAD_NETWORK_HEADER as u32,
        );
        set_u32(e, sys::NFTNL_EXPR_PAYLOAD_OFFSET, self.offset);
        set_u32(e, sys::NFTNL_EXPR_PAYLOAD_LEN, self.len);
        set_u32(e, sys::NFTNL_EXPR_PAYLOAD_DREG, libc::NFT_REG_1 as u32);
        e
    }
}

/// `masq [proto_min reg N [proto_max reg M]] [flags F]`. nftnl's `Masquerade` cannot carry a
/// port range.
struct MasqExpr {
    proto: Option<(Register, Option<Register>)>,
    flags: u32,
}

impl Expression for MasqExpr {
    fn to_expr(&self, _rule: &Rule) -> NonNull<sys::nftnl_expr> {
        let e = alloc_expr(c"masq");
        if let Some((min, max)) = self.proto {
            set_u32(e, sys::NFTNL_EXPR_MASQ_REG_PROTO_MIN, min.to_raw());
            if let Some(max) = max {
                set_u32(e, sys::NFTNL_EXPR_MASQ_REG_PROTO_MAX, max.to_raw());
            }
        }
        if self.flags != 0 {
            set_u32(e, sys::NFTNL_EXPR_MASQ_FLAGS, self.flags);
        }
        e
    }
}

/// `nat snat ip addr_min reg N [addr_max reg M] [proto_min ...] [flags F]`. nftnl's `Nat` sets
/// neither the max registers nor the flags, so a pool, a port range or `persistent` need this.
struct SnatExpr {
    addr: (Register, Option<Register>),
    proto: Option<(Register, Option<Register>)>,
    flags: u32,
}

impl Expression for SnatExpr {
    fn to_expr(&self, _rule: &Rule) -> NonNull<sys::nftnl_expr> {
        let e = alloc_expr(c"nat");
        set_u32(e, sys::NFTNL_EXPR_NAT_TYPE, libc::NFT_NAT_SNAT as u32);
        set_u32(e, sys::NFTNL_EXPR_NAT_FAMILY, libc::NFPROTO_IPV4 as u32);
        set_u32(e, sys::NFTNL_EXPR_NAT_REG_ADDR_MIN, self.addr.0.to_raw());
        if let Some(max) = self.addr.1 {
            set_u32(e, sys::NFTNL_EXPR_NAT_REG_ADDR_MAX, max.to_raw());
        }
        if let Some((min, max)) = self.proto {
            set_u32(e, sys::NFTNL_EXPR_NAT_REG_PROTO_MIN, min.to_raw());
            if let Some(max) = max {
                set_u32(e, sys::NFTNL_EXPR_NAT_REG_PROTO_MAX, max.to_raw());
            }
        }
        if self.flags != 0 {
            set_u32(e, sys::NFTNL_EXPR_NAT_FLAGS, self.flags);
        }
        e
    }
}

// ---------------------------------------------------------------------------------------------
// The batch and the kernel's answers
// ---------------------------------------------------------------------------------------------

/// One message of the batch, for error messages.
struct Step {
    what: String,
    /// The message to give when the kernel says EOPNOTSUPP/ENOENT/EAFNOSUPPORT here, if that
    /// means a missing kernel feature.
    needs: Option<&'static str>,
}

impl Step {
    fn new(what: String, needs: Option<&'static str>) -> Self {
        Self { what, needs }
    }
}

struct Planned {
    batch: FinalizedBatch,
    /// Indexed by `seq - batch.sequence_numbers().start`.
    steps: Vec<Step>,
}

impl Planned {
    fn step(&self, seq: u32) -> Option<&Step> {
        let start = self.batch.sequence_numbers().start;
        let i = usize::try_from(seq.checked_sub(start)?).ok()?;
        self.steps.get(i)
    }

    /// The error for the kernel refusing message `seq` with `errno`.
    fn refused(&self, seq: u32, errno: i32) -> anyhow::Error {
        let io = io::Error::from_raw_os_error(errno);
        let (what, needs) = match self.step(seq) {
            Some(s) => (s.what.clone(), s.needs),
            // An error for a seq outside the batch can only be about the batch as a whole,
            // e.g. a kernel without nf_tables refusing its begin message.
            None => (
                "start an nf_tables transaction".to_owned(),
                Some(UNSUPPORTED_NAT),
            ),
        };
        let missing = matches!(
            errno,
            libc::EOPNOTSUPP | libc::ENOENT | libc::EAFNOSUPPORT | libc::EPROTONOSUPPORT
        );
        match needs {
            Some(msg) if missing => {
                crate::error::unsupported(msg).context(format!("{what}: the kernel answered: {io}"))
            }
            _ => anyhow::Error::from(io).context(what),
        }
    }
}

/// Builds the one transaction: per table, add + delete + add (so an earlier run's table is
/// replaced), then its chains (all before any rule, so jumps find their targets), then its rules.
fn plan_batch(tables: &[TableSpec]) -> Planned {
    let mut batch = Batch::new();
    let mut steps = Vec::new();
    for spec in tables {
        let tname = spec.name.to_string_lossy();
        let table = Table::new(spec.name, ProtoFamily::Ipv4);
        batch.add(&table, MsgType::Add);
        steps.push(Step::new(
            format!("add table ip {tname}"),
            Some(UNSUPPORTED_NAT),
        ));
        batch.add(&table, MsgType::Del);
        steps.push(Step::new(
            format!("delete table ip {tname} (to replace an earlier run's rules)"),
            None,
        ));
        batch.add(&table, MsgType::Add);
        steps.push(Step::new(
            format!("add table ip {tname}"),
            Some(UNSUPPORTED_NAT),
        ));

        let chains: Vec<Chain<'_>> = spec
            .chains
            .iter()
            .map(|c| {
                let mut chain = Chain::new(c.name, &table);
                if let Some(base) = &c.base {
                    chain.set_type(base.ty);
                    chain.set_hook(base.hook, base.priority);
                    chain.set_policy(base.policy);
                }
                chain
            })
            .collect();
        for (c, chain) in spec.chains.iter().zip(&chains) {
            batch.add(chain, MsgType::Add);
            let what = match &c.base {
                Some(base) => format!(
                    "add chain {tname} {} {{ {} }}",
                    c.name.to_string_lossy(),
                    base.nft
                ),
                None => format!("add chain {tname} {}", c.name.to_string_lossy()),
            };
            steps.push(Step::new(what, c.base.as_ref().map(|_| UNSUPPORTED_NAT)));
        }
        for (c, chain) in spec.chains.iter().zip(&chains) {
            for r in &c.rules {
                let mut rule = Rule::new(chain);
                r.add_to(&mut rule);
                batch.add(&rule, MsgType::Add);
                steps.push(Step::new(r.describe(spec.name, c.name), r.needs()));
            }
        }
    }
    let batch = batch.finalize();

    // nftnl asks for ACKs of the begin and end messages only on kernels that send them
    // (>= 6.10); then they take the first and last sequence numbers.
    if batch.sequence_numbers().len() == steps.len() + 2 {
        steps.insert(
            0,
            Step::new(
                "start an nf_tables transaction".into(),
                Some(UNSUPPORTED_NAT),
            ),
        );
        steps.push(Step::new(
            "commit the nf_tables transaction".into(),
            Some(UNSUPPORTED_NAT),
        ));
    }
    Planned { batch, steps }
}

/// A netfilter netlink socket in the current thread's namespace, with a bounded `recv`.
fn open_socket() -> anyhow::Result<nfnl::Socket> {
    nfnl::Socket::open(RECV_TIMEOUT).map_err(|e| match e.errno() {
        libc::EPROTONOSUPPORT => crate::error::unsupported(UNSUPPORTED_NAT)
            .context(format!("open a netfilter netlink socket: {e}")),
        _ => anyhow::Error::from(e),
    })
}

/// Sends the batch and waits for one ACK per sequence number. The kernel stops answering at the
/// first error (it aborts the transaction and sends no more ACKs, not even for the end message),
/// so the first error is returned at once instead of waiting for ACKs that never come.
fn send_batch(socket: &mut nfnl::Socket, planned: &Planned) -> anyhow::Result<()> {
    let seqs = planned.batch.sequence_numbers();
    socket
        .nft_batch(planned.batch.iter(), seqs)
        .map_err(|e| match e {
            nfnl::Error::Refused { seq, errno } => planned.refused(seq, errno),
            nfnl::Error::Timeout { seq, after } => {
                let waiting_for = planned
                    .step(seq)
                    .map_or("the ACK of the batch", |s| s.what.as_str());
                anyhow!(
                    "nf_tables did not answer within {} s while waiting for: {waiting_for}",
                    after.as_secs()
                )
            }
            nfnl::Error::Socket {
                doing: "send the request",
                err,
            } => anyhow::Error::from(err).context("send the nf_tables batch"),
            e => anyhow::Error::from(e).context("read the kernel's answer to the nf_tables batch"),
        })
}

fn dump<T>(
    what: &str,
    get_msg: u8,
    mut parse: impl FnMut(&[u8]) -> anyhow::Result<T>,
) -> anyhow::Result<Vec<T>> {
    let mut socket = open_socket()?;
    let mut out = Vec::new();
    // The kernel answers GET with NEW messages.
    let new_msg = (u16::from(nfnl::NFNL_SUBSYS_NFTABLES) << 8) | u16::from(get_msg - 1);
    socket
        .nft_dump(get_msg, &mut |msg| {
            if u16::from_ne_bytes([msg[4], msg[5]]) == new_msg {
                out.push(parse(msg)?);
            }
            Ok(())
        })
        .map_err(|e| match e {
            nfnl::Error::DumpInterrupted => {
                anyhow!("the nf_tables {what} changed while they were listed; read them again")
            }
            nfnl::Error::Refused { errno, .. } => {
                anyhow::Error::from(io::Error::from_raw_os_error(errno))
                    .context(format!("list the nf_tables {what}"))
            }
            nfnl::Error::Reader(e) => e,
            e => anyhow::Error::from(e).context(format!("read the list of nf_tables {what}")),
        })?;
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Decoding with libnftnl
// ---------------------------------------------------------------------------------------------

/// Owns an `nftnl_rule` so every return path frees it.
struct OwnedRule(NonNull<sys::nftnl_rule>);

impl Drop for OwnedRule {
    fn drop(&mut self) {
        // SAFETY: allocated by nftnl_rule_alloc and freed only here.
        unsafe { sys::nftnl_rule_free(self.0.as_ptr()) };
    }
}

/// A C string owned by a libnftnl object, copied out; "" for an unset attribute.
fn c_str(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: libnftnl returns NUL-terminated strings that live as long as the object.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

fn family_name(f: u32) -> String {
    match f as i32 {
        libc::NFPROTO_IPV4 => "ip".into(),
        libc::NFPROTO_IPV6 => "ip6".into(),
        libc::NFPROTO_INET => "inet".into(),
        libc::NFPROTO_ARP => "arp".into(),
        libc::NFPROTO_BRIDGE => "bridge".into(),
        libc::NFPROTO_NETDEV => "netdev".into(),
        other => format!("family {other}"),
    }
}

/// Runs a libnftnl `*_snprintf`, growing the buffer until the text fits (libnftnl returns at
/// most the buffer size when it truncates, not the length it needed).
fn snprint(print: impl Fn(*mut c_char, usize) -> i32) -> anyhow::Result<String> {
    let mut buf = vec![0u8; 4096];
    loop {
        let n = print(buf.as_mut_ptr().cast(), buf.len());
        let n = usize::try_from(n).map_err(|_| anyhow!("libnftnl could not print an object"))?;
        if n + 1 < buf.len() {
            buf.truncate(n);
            return Ok(String::from_utf8_lossy(&buf).into_owned());
        }
        if buf.len() >= 1 << 20 {
            bail!("libnftnl printed more than 1 MiB for one object");
        }
        buf.resize(buf.len() * 2, 0);
    }
}

/// Decodes one NEWRULE message (from a dump, or from a batch in the tests).
fn parse_rule(msg: &[u8]) -> anyhow::Result<RuleText> {
    // SAFETY: plain allocation.
    let rule = NonNull::new(unsafe { sys::nftnl_rule_alloc() })
        .map(OwnedRule)
        .ok_or_else(|| anyhow!("libnftnl could not allocate a rule"))?;
    let r = rule.0.as_ptr();
    // SAFETY: `msg` is one whole netlink message, aligned for nlmsghdr (NlMessages checks it),
    // and nlmsg_len (which libnftnl trusts) was checked against the buffer by NlMessages.
    if unsafe { sys::nftnl_rule_nlmsg_parse(msg.as_ptr().cast(), r) } < 0 {
        bail!(
            "libnftnl could not decode a rule message: {}",
            io::Error::last_os_error()
        );
    }
    // SAFETY (all calls below): `r` is a valid, parsed rule; the getters return values owned
    // by it, copied before it is freed.
    let family = unsafe { sys::nftnl_rule_get_u32(r, sys::NFTNL_RULE_FAMILY as u16) };
    let table = c_str(unsafe { sys::nftnl_rule_get_str(r, sys::NFTNL_RULE_TABLE as u16) });
    let chain = c_str(unsafe { sys::nftnl_rule_get_str(r, sys::NFTNL_RULE_CHAIN as u16) });
    let handle = unsafe { sys::nftnl_rule_is_set(r, sys::NFTNL_RULE_HANDLE as u16) }
        .then(|| unsafe { sys::nftnl_rule_get_u64(r, sys::NFTNL_RULE_HANDLE as u16) });
    let printed = snprint(|buf, len| unsafe {
        sys::nftnl_rule_snprintf(buf, len, r, sys::NFTNL_OUTPUT_DEFAULT, 0)
    })?;
    // The first line repeats family, table, chain and handle; the rest is one `[ expr ]` each.
    let text = printed
        .lines()
        .skip(1)
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    Ok(RuleText {
        family: family_name(family),
        table,
        chain,
        handle,
        text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::plan::Mac;
    use crate::nat::nfnl::{NFNL_SUBSYS_NFTABLES, NLMSG_HDRLEN};

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

    /// One chain as the kernel holds it. `text` is libnftnl's rendering, e.g. `ip filter FORWARD
    /// use 2 type filter hook forward prio 0 policy drop packets 0 bytes 0 flags 1`, so a test can
    /// check hook and policy.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct ChainText {
        pub family: String,
        pub table: String,
        pub name: String,
        pub text: String,
    }

    struct OwnedChain(NonNull<sys::nftnl_chain>);

    impl Drop for OwnedChain {
        fn drop(&mut self) {
            // SAFETY: allocated by nftnl_chain_alloc and freed only here.
            unsafe { sys::nftnl_chain_free(self.0.as_ptr()) };
        }
    }

    /// Decodes one NEWCHAIN message.
    fn parse_chain(msg: &[u8]) -> anyhow::Result<ChainText> {
        // SAFETY: plain allocation.
        let chain = NonNull::new(unsafe { sys::nftnl_chain_alloc() })
            .map(OwnedChain)
            .ok_or_else(|| anyhow!("libnftnl could not allocate a chain"))?;
        let c = chain.0.as_ptr();
        // SAFETY: as in parse_rule.
        if unsafe { sys::nftnl_chain_nlmsg_parse(msg.as_ptr().cast(), c) } < 0 {
            bail!(
                "libnftnl could not decode a chain message: {}",
                io::Error::last_os_error()
            );
        }
        // SAFETY (all calls below): `c` is a valid, parsed chain.
        let family = unsafe { sys::nftnl_chain_get_u32(c, sys::NFTNL_CHAIN_FAMILY as u16) };
        let table = c_str(unsafe { sys::nftnl_chain_get_str(c, sys::NFTNL_CHAIN_TABLE as u16) });
        let name = c_str(unsafe { sys::nftnl_chain_get_str(c, sys::NFTNL_CHAIN_NAME as u16) });
        let text = snprint(|buf, len| unsafe {
            sys::nftnl_chain_snprintf(buf, len, c, sys::NFTNL_OUTPUT_DEFAULT, 0)
        })?;
        Ok(ChainText {
            family: family_name(family),
            table,
            name,
            text: text.trim().to_owned(),
        })
    }

    fn docker(nat: Nat) -> DockerNet {
        DockerNet {
            bridge: IfName::new("docker0").unwrap(),
            mac: Mac::derived("t/a"),
            subnet: "172.17.0.0/16".parse().unwrap(),
            gateway: Ipv4Addr::new(172, 17, 0, 1),
            nat,
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
        let rules = rules_of(Nat::Masquerade { ports: None });
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
            postrouting_of(Nat::Masquerade { ports }),
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
            postrouting_of(Nat::Masquerade { ports })[0],
            golden(&[MATCH, TCP, COUNTER, one])
        );
    }

    #[test]
    fn golden_snat_single() {
        let nat = Nat::Snat {
            pool: pool(7, 7),
            ports: None,
            persistent: false,
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
            let mut d = docker(Nat::Masquerade { ports: None });
            d.subnet = net.parse().unwrap();
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

    fn postrouting_of_docker(d: &DockerNet) -> Vec<String> {
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
        let planned = plan_batch(&ruleset(&docker(Nat::Masquerade { ports: None })));
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
        let planned = plan_batch(&ruleset(&docker(Nat::Masquerade { ports: None })));
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
        let planned = plan_batch(&ruleset(&docker(Nat::Masquerade { ports: None })));
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
        assert_eq!(nft_script(&docker(Nat::Masquerade { ports: None })), want);
    }

    fn script_postrouting(nat: Nat) -> Vec<String> {
        let s = nft_script(&docker(nat));
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
        let post = script_postrouting(Nat::Masquerade { ports });
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
        };
        assert_eq!(
            script_postrouting(single)[1..],
            [format!("{head} counter snat to 192.168.49.7")]
        );

        let nat = Nat::Snat {
            pool: pool(7, 9),
            ports,
            persistent: true,
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

    #[test]
    fn empty_pool_is_refused_before_touching_the_kernel() {
        let d = docker(Nat::Snat {
            pool: vec![],
            ports: None,
            persistent: false,
        });
        let err = apply(&d).unwrap_err();
        assert!(format!("{err:#}").contains("pool is empty"));
        assert!(nft_script(&d).contains("# no SNAT rule: the address pool is empty"));
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
