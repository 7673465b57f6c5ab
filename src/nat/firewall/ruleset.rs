//! The rules a firewall layout writes, described once as data: tables, chains (base or regular),
//! rules of matches + a counter + a final statement. The same description is rendered as `nft`
//! text here and encoded as nf_tables messages by [`super::encode`], so the script `lab show
//! --commands` prints is what the kernel ends up with. Pure.

use std::ffi::CStr;
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

pub(super) struct TableSpec {
    pub name: &'static CStr,
    pub chains: Vec<ChainSpec>,
}

pub(super) struct ChainSpec {
    pub name: &'static CStr,
    pub base: Option<BaseChain>,
    /// Comment lines for the script.
    pub notes: Vec<String>,
    pub rules: Vec<RuleSpec>,
}

impl ChainSpec {
    pub fn regular(name: &'static CStr, rules: Vec<RuleSpec>) -> Self {
        Self {
            name,
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
    PostRouting,
    Forward,
}

/// A base chain's verdict for what no rule decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Policy {
    Accept,
    Drop,
}

/// Every rule has this shape: matches, a counter (as iptables-nft adds one to each rule), and a
/// final statement.
pub(super) struct RuleSpec {
    pub matches: Vec<Match>,
    pub action: Action,
}

pub(super) enum Match {
    Saddr(Ipv4Net),
    Iif { equal: bool, name: IfName },
    Oif { equal: bool, name: IfName },
    Proto(L4),
    CtEstablishedRelated,
}

#[derive(Clone, Copy)]
pub(super) enum L4 {
    Tcp,
    Udp,
}

impl L4 {
    pub fn number(self) -> u8 {
        match self {
            L4::Tcp => libc::IPPROTO_TCP as u8,
            L4::Udp => libc::IPPROTO_UDP as u8,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            L4::Tcp => "tcp",
            L4::Udp => "udp",
        }
    }
}

pub(super) enum Action {
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

// --- nft text -------------------------------------------------------------------------------

impl RuleSpec {
    pub fn nft(&self) -> String {
        let mut parts: Vec<String> = self.matches.iter().map(Match::nft).collect();
        parts.push("counter".into());
        parts.push(self.action.nft());
        parts.join(" ")
    }

    /// What a failure message calls this rule.
    pub fn describe(&self, table: &CStr, chain: &CStr) -> String {
        format!(
            "add rule `{}` to chain {} {}",
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
