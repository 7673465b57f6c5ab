//! The ruleset as one nf_tables transaction, sent over [`crate::nfnl`], and the kernel's answer
//! turned into an error that names the object it refused.

use std::io;
use std::time::Duration;

use anyhow::anyhow;
use nftnl::{Batch, Chain, FinalizedBatch, MsgType, ProtoFamily, Rule, Table};

use super::encode::{self, VerdictMap};
use super::ruleset::{Family, TableSpec, UNSUPPORTED_NAT};
use crate::nfnl;

/// How long one `recv` on the netfilter socket may block. The kernel answers a batch within
/// microseconds; the bound only matters when it never answers (e.g. a batch it silently dropped),
/// which must not hang `lab`.
const RECV_TIMEOUT: Duration = Duration::from_secs(5);

/// One message of the batch, for error messages.
pub(super) struct Step {
    pub what: String,
    /// The message to give when the kernel says EOPNOTSUPP/ENOENT/EAFNOSUPPORT here, if that
    /// means a missing kernel feature.
    needs: Option<&'static str>,
}

impl Step {
    fn new(what: String, needs: Option<&'static str>) -> Self {
        Self { what, needs }
    }
}

pub(super) struct Planned {
    pub batch: FinalizedBatch,
    /// Indexed by `seq - batch.sequence_numbers().start`.
    pub steps: Vec<Step>,
}

impl Planned {
    fn step(&self, seq: u32) -> Option<&Step> {
        let start = self.batch.sequence_numbers().start;
        let i = usize::try_from(seq.checked_sub(start)?).ok()?;
        self.steps.get(i)
    }

    /// The error for the kernel refusing message `seq` with `errno`.
    pub fn refused(&self, seq: u32, errno: i32) -> anyhow::Error {
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
/// replaced), then its chains (all before any rule, so jumps find their targets), its verdict
/// maps and their elements (which jump to the chains), then its rules (which look the maps up).
pub(super) fn plan_batch(tables: &[TableSpec]) -> Planned {
    let mut batch = Batch::new();
    let mut steps = Vec::new();
    // A map's id is unique in the transaction, as nft numbers them.
    let mut next_map_id = 1;
    for spec in tables {
        let family = spec.family.nft();
        let tname = format!("{family} {}", spec.name.to_string_lossy());
        // The iptables layout's messages name its chains bare (`chain nat POSTROUTING`).
        let cname = |chain: &std::ffi::CStr| match spec.family {
            Family::Ip => format!(
                "{} {}",
                spec.name.to_string_lossy(),
                chain.to_string_lossy()
            ),
            Family::Ip6 => format!("{tname} {}", chain.to_string_lossy()),
        };
        let proto = match spec.family {
            Family::Ip => ProtoFamily::Ipv4,
            Family::Ip6 => ProtoFamily::Ipv6,
        };
        let table = Table::new(spec.name, proto);
        batch.add(&table, MsgType::Add);
        steps.push(Step::new(
            format!("add table {tname}"),
            Some(UNSUPPORTED_NAT),
        ));
        batch.add(&table, MsgType::Del);
        steps.push(Step::new(
            format!("delete table {tname} (to replace an earlier run's rules)"),
            None,
        ));
        batch.add(&table, MsgType::Add);
        steps.push(Step::new(
            format!("add table {tname}"),
            Some(UNSUPPORTED_NAT),
        ));

        let chains: Vec<Chain<'_>> = spec
            .chains
            .iter()
            .map(|c| {
                let mut chain = Chain::new(&c.name, &table);
                if let Some(base) = &c.base {
                    chain.set_type(encode::chain_type(base.ty));
                    chain.set_hook(encode::hook(base.hook), base.priority);
                    chain.set_policy(encode::policy(base.policy));
                }
                chain
            })
            .collect();
        for (c, chain) in spec.chains.iter().zip(&chains) {
            batch.add(chain, MsgType::Add);
            let what = match &c.base {
                Some(base) => format!("add chain {} {{ {} }}", cname(&c.name), base.nft),
                None => format!("add chain {}", cname(&c.name)),
            };
            steps.push(Step::new(what, c.base.as_ref().map(|_| UNSUPPORTED_NAT)));
        }

        let maps: Vec<(&std::ffi::CStr, u32, VerdictMap)> = spec
            .maps
            .iter()
            .map(|m| {
                let id = next_map_id;
                next_map_id += 1;
                (m.name, id, VerdictMap::new(spec.name, proto, m, id))
            })
            .collect();
        for (name, _, map) in &maps {
            batch.add(map, MsgType::Add);
            steps.push(Step::new(
                format!(
                    "add map {tname} {} {{ type ifname : verdict }}",
                    name.to_string_lossy()
                ),
                Some(UNSUPPORTED_NAT),
            ));
        }
        for ((name, _, map), m) in maps.iter().zip(&spec.maps) {
            if m.elements.is_empty() {
                continue;
            }
            batch.add(&map.elements(), MsgType::Add);
            steps.push(Step::new(
                format!(
                    "add the elements of map {tname} {} (one per bridge)",
                    name.to_string_lossy()
                ),
                None,
            ));
        }
        // A map the layout does not declare cannot be looked up; id 0 makes the kernel refuse
        // the rule (ENOENT), which names it.
        let map_id = |name: &std::ffi::CStr| {
            maps.iter()
                .find(|(n, _, _)| *n == name)
                .map_or(0, |(_, id, _)| *id)
        };
        for (c, chain) in spec.chains.iter().zip(&chains) {
            for r in &c.rules {
                let mut rule = Rule::new(chain);
                r.add_to(&mut rule, &map_id);
                batch.add(&rule, MsgType::Add);
                steps.push(Step::new(
                    r.describe(spec.family, spec.name, &c.name),
                    r.needs(),
                ));
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
pub(super) fn open_socket() -> anyhow::Result<nfnl::Socket> {
    nfnl::Socket::open(RECV_TIMEOUT).map_err(|e| match e.errno() {
        libc::EPROTONOSUPPORT => crate::error::unsupported(UNSUPPORTED_NAT)
            .context(format!("open a netfilter netlink socket: {e}")),
        _ => anyhow::Error::from(e),
    })
}

/// Sends the batch and waits for one ACK per sequence number. The kernel stops answering at the
/// first error (it aborts the transaction and sends no more ACKs, not even for the end message),
/// so the first error is returned at once instead of waiting for ACKs that never come.
pub(super) fn send(planned: &Planned) -> anyhow::Result<()> {
    let mut socket = open_socket()?;
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
