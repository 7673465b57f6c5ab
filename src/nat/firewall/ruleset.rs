//! The rules a firewall layout writes, described once as data: tables (ip or ip6), verdict maps,
//! chains (base or regular), rules of matches + a counter + a final statement + a comment. The same description is rendered as `nft`
//! text here and encoded as nf_tables messages by [`super::encode`], so the script `lab show
//! --commands` prints is what the kernel ends up with. Pure.

use std::ffi::{CStr, CString};
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::lab::plan::{IfName, PortRange};

/// The message for a kernel built without the nf_tables pieces the ruleset needs.
pub(super) const UNSUPPORTED_NAT: &str =
    "this kernel lacks nf_tables NAT (CONFIG_NF_TABLES, CONFIG_NFT_NAT, CONFIG_NFT_MASQ)";
/// The same for the `ct state` match of DOCKER-CT, which lives in its own module.
pub(super) const UNSUPPORTED_CT: &str =
    "this kernel lacks nf_tables conntrack matching (CONFIG_NFT_CT)";
/// The same for `fib daddr type local` (Docker 29's nftables layout).
pub(super) const UNSUPPORTED_FIB: &str =
    "this kernel lacks nf_tables fib matching (CONFIG_NFT_FIB_IPV4, CONFIG_NFT_FIB_IPV6)";

pub(super) struct TableSpec {
    pub family: Family,
    pub name: &'static CStr,
    /// Created before the chains' rules, which look them up.
    pub maps: Vec<MapSpec>,
    pub chains: Vec<ChainSpec>,
}

/// The address families the layouts write tables in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Family {
    Ip,
    Ip6,
}

impl Family {
    pub fn nft(self) -> &'static str {
        match self {
            Family::Ip => "ip",
            Family::Ip6 => "ip6",
        }
    }
}

/// A named verdict map `type ifname : verdict`: each element sends packets of one interface to
/// its chain (`"docker0" : jump filter-forward-in__docker0`).
pub(super) struct MapSpec {
    pub name: &'static CStr,
    pub elements: Vec<(IfName, CString)>,
}

pub(super) struct ChainSpec {
    pub name: CString,
    pub base: Option<BaseChain>,
    /// Comment lines for the script.
    pub notes: Vec<String>,
    pub rules: Vec<RuleSpec>,
}

impl ChainSpec {
    pub fn regular(name: impl Into<CString>, rules: Vec<RuleSpec>) -> Self {
        Self {
            name: name.into(),
            base: None,
            notes: Vec::new(),
            rules,
        }
    }
}

/// A chain attached to a netfilter hook; `nft` is the same thing in nft syntax.
pub(super) struct BaseChain {
    pub ty: ChainType,
    pub hook: Hook,
    pub priority: i32,
    pub policy: Policy,
    pub nft: &'static str,
}

/// The chain types the layouts use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ChainType {
    Nat,
    Filter,
}

/// The netfilter hooks the layouts attach to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Hook {
    PreRouting,
    Output,
    PostRouting,
    Forward,
}

/// A base chain's verdict for what no rule decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Policy {
    Accept,
    Drop,
}

/// Every rule has this shape: matches, a counter (as iptables-nft adds one to each rule, and
/// Docker's nftables rules too, but for the vmap dispatches), a final statement and an optional
/// comment.
pub(super) struct RuleSpec {
    pub matches: Vec<Match>,
    pub counter: bool,
    pub action: Action,
    pub comment: Option<&'static CStr>,
}

impl RuleSpec {
    /// `matches counter action`, the shape of most rules.
    pub fn counted(matches: Vec<Match>, action: Action) -> Self {
        Self {
            matches,
            counter: true,
            action,
            comment: None,
        }
    }

    pub fn with_comment(self, comment: &'static CStr) -> Self {
        Self {
            comment: Some(comment),
            ..self
        }
    }
}

#[derive(Clone)]
pub(super) enum Match {
    Saddr(Ipv4Net),
    Daddr {
        equal: bool,
        net: Ipv4Net,
    },
    /// `ip6 daddr != ::1`, the loopback guard of the ip6 table's nat-OUTPUT.
    Ip6DaddrNotLoopback,
    /// `fib daddr type local`: the destination is one of this host's addresses.
    FibDaddrLocal,
    Iif {
        equal: bool,
        name: IfName,
    },
    Oif {
        equal: bool,
        name: IfName,
    },
    Proto(L4),
    CtEstablishedRelated,
    /// `numgen inc mod N 0`: every N-th packet that reaches the rule (a counter per rule).
    NumgenInc {
        modulus: u32,
    },
}

/// Which interface name a verdict map is keyed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum IfKey {
    Iif,
    Oif,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum L4 {
    Tcp,
    Udp,
    Icmp,
}

impl L4 {
    pub fn number(self) -> u8 {
        match self {
            L4::Tcp => libc::IPPROTO_TCP as u8,
            L4::Udp => libc::IPPROTO_UDP as u8,
            L4::Icmp => libc::IPPROTO_ICMP as u8,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            L4::Tcp => "tcp",
            L4::Udp => "udp",
            L4::Icmp => "icmp",
        }
    }
}

pub(super) enum Action {
    Jump(&'static CStr),
    /// `iifname|oifname vmap @map`.
    Vmap {
        key: IfKey,
        map: &'static CStr,
    },
    Accept,
    Drop,
    Masquerade {
        ports: Option<PortRange>,
        random_fully: bool,
    },
    Snat {
        first: Ipv4Addr,
        last: Ipv4Addr,
        ports: Option<PortRange>,
        persistent: bool,
        random_fully: bool,
    },
}

// --- nft text -------------------------------------------------------------------------------

impl RuleSpec {
    pub fn nft(&self) -> String {
        let mut parts: Vec<String> = self.matches.iter().map(Match::nft).collect();
        if self.counter {
            parts.push("counter".into());
        }
        parts.push(self.action.nft());
        if let Some(c) = self.comment {
            parts.push(format!("comment \"{}\"", c.to_string_lossy()));
        }
        parts.join(" ")
    }

    /// What a failure message calls this rule.
    pub fn describe(&self, family: Family, table: &CStr, chain: &CStr) -> String {
        let family = match family {
            // The iptables layout's messages name its tables bare (`chain nat POSTROUTING`).
            Family::Ip => String::new(),
            Family::Ip6 => "ip6 ".into(),
        };
        format!(
            "add rule `{}` to chain {family}{} {}",
            self.nft(),
            table.to_string_lossy(),
            chain.to_string_lossy()
        )
    }

    /// The message for EOPNOTSUPP/ENOENT on this rule, if that means a missing kernel feature
    /// (an expression module) rather than a mistake in the batch.
    pub fn needs(&self) -> Option<&'static str> {
        if self
            .matches
            .iter()
            .any(|m| matches!(m, Match::CtEstablishedRelated))
        {
            Some(UNSUPPORTED_CT)
        } else if self
            .matches
            .iter()
            .any(|m| matches!(m, Match::FibDaddrLocal))
        {
            Some(UNSUPPORTED_FIB)
        } else if matches!(self.action, Action::Masquerade { .. } | Action::Snat { .. }) {
            Some(UNSUPPORTED_NAT)
        } else {
            None
        }
    }
}

impl Match {
    pub fn nft(&self) -> String {
        let op = |equal: bool| if equal { "" } else { "!= " };
        match self {
            // nft prints a /32 as the bare address.
            Match::Saddr(net) => format!("ip saddr {}", net_nft(*net)),
            Match::Daddr { equal, net } => format!("ip daddr {}{}", op(*equal), net_nft(*net)),
            Match::Ip6DaddrNotLoopback => "ip6 daddr != ::1".into(),
            Match::FibDaddrLocal => "fib daddr type local".into(),
            Match::Iif { equal, name } => format!("iifname {}\"{name}\"", op(*equal)),
            Match::Oif { equal, name } => format!("oifname {}\"{name}\"", op(*equal)),
            Match::Proto(p) => format!("ip protocol {}", p.name()),
            // nft's order; Docker's iptables text says RELATED,ESTABLISHED.
            Match::CtEstablishedRelated => "ct state established,related".into(),
            Match::NumgenInc { modulus } => format!("numgen inc mod {modulus} 0"),
        }
    }
}

/// nft prints a /32 as the bare address.
fn net_nft(net: Ipv4Net) -> String {
    if net.prefix_len() == 32 {
        net.addr().to_string()
    } else {
        net.to_string()
    }
}

impl IfKey {
    pub fn nft(self) -> &'static str {
        match self {
            IfKey::Iif => "iifname",
            IfKey::Oif => "oifname",
        }
    }
}

/// A NAT statement's flags as nft 1.0.6 lists them: ` fully-random,persistent`.
fn nat_flags(persistent: bool, random_fully: bool) -> String {
    let flags: Vec<&str> = [(random_fully, "fully-random"), (persistent, "persistent")]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
    if flags.is_empty() {
        String::new()
    } else {
        format!(" {}", flags.join(","))
    }
}

/// `P-Q`, or just `P` for a one-port range, as nft prints it.
pub(super) fn ports_nft(p: PortRange) -> String {
    if p.lo() == p.hi() {
        p.lo().to_string()
    } else {
        format!("{}-{}", p.lo(), p.hi())
    }
}

impl Action {
    pub fn nft(&self) -> String {
        match self {
            Action::Jump(to) => format!("jump {}", to.to_string_lossy()),
            Action::Vmap { key, map } => format!("{} vmap @{}", key.nft(), map.to_string_lossy()),
            Action::Accept => "accept".into(),
            Action::Drop => "drop".into(),
            Action::Masquerade {
                ports,
                random_fully,
            } => {
                let mut s = String::from("masquerade");
                if let Some(p) = ports {
                    let _ = write!(s, " to :{}", ports_nft(*p));
                }
                s.push_str(&nat_flags(false, *random_fully));
                s
            }
            Action::Snat {
                first,
                last,
                ports,
                persistent,
                random_fully,
            } => {
                let mut s = format!("snat to {first}");
                if last != first {
                    let _ = write!(s, "-{last}");
                }
                if let Some(p) = ports {
                    let _ = write!(s, ":{}", ports_nft(*p));
                }
                s.push_str(&nat_flags(*persistent, *random_fully));
                s
            }
        }
    }
}

/// The tables as one `nft -f` script: the layout's `header` as comments, then per table the
/// add + delete + add that makes loading it again replace the rules (as [`super::apply`] does).
pub(super) fn script(header: &[String], tables: &[TableSpec]) -> String {
    let mut s = String::new();
    for line in header {
        let _ = writeln!(s, "# {line}");
    }
    s.push_str(
        "# Each table is created, deleted and written again in one transaction, so loading\n",
    );
    s.push_str("# this again replaces the rules instead of adding a second copy.\n");
    for table in tables {
        let name = table.name.to_string_lossy();
        let family = table.family.nft();
        let _ = writeln!(
            s,
            "table {family} {name}\ndelete table {family} {name}\ntable {family} {name} {{"
        );
        for (i, map) in table.maps.iter().enumerate() {
            if i > 0 {
                s.push('\n');
            }
            let _ = writeln!(s, "\tmap {} {{", map.name.to_string_lossy());
            s.push_str("\t\ttype ifname : verdict\n");
            if !map.elements.is_empty() {
                let elements: Vec<String> = map
                    .elements
                    .iter()
                    .map(|(ifname, chain)| {
                        format!("\"{ifname}\" : jump {}", chain.to_string_lossy())
                    })
                    .collect();
                let _ = writeln!(s, "\t\telements = {{ {} }}", elements.join(", "));
            }
            s.push_str("\t}\n");
        }
        for (i, chain) in table.chains.iter().enumerate() {
            if i > 0 || !table.maps.is_empty() {
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
