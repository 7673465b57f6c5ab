//! Sysctls: only per-namespace `net.*` keys, each once, with values the kernel accepts and in an
//! order it accepts; and `[machine] raise`, the global limits a lab may raise.

use std::collections::HashSet;

use crate::lab::diag::{Diagnostic, did_you_mean};
use crate::lab::plan::{
    GlobalLimit, KERNEL_LOCAL_PORT_RANGE, KERNEL_UNPRIVILEGED_PORT_START, LOCAL_PORT_RANGE_SYSCTL,
    Setting, Sysctl, TcpTables, UNPRIVILEGED_PORT_START_SYSCTL,
};
use crate::lab::spec::{LabSpec, SysctlSpec};

/// `net.*` sysctls that are nevertheless global: read-only inside a namespace.
/// `net.*` keys a namespace other than the initial one can only read: the initial namespace's
/// value applies to all (listed from a fresh namespace of kernel 6.18 against the initial one).
const READ_ONLY_NET_SYSCTLS: &[&str] = &[
    "net.netfilter.nf_conntrack_max",
    "net.netfilter.nf_conntrack_buckets",
    "net.netfilter.nf_conntrack_expect_max",
    "net.netfilter.nf_conntrack_count",
    "net.core.rmem_default",
    "net.core.rmem_max",
    "net.core.wmem_default",
    "net.core.wmem_max",
    "net.ipv4.tcp_allowed_congestion_control",
    "net.ipv4.tcp_available_congestion_control",
    "net.ipv4.tcp_ehash_entries",
    "net.ipv4.udp_hash_entries",
    "net.mptcp.available_path_managers",
    "net.mptcp.available_schedulers",
];

/// `net.*` keys only the initial namespace has: one value for the machine (listed as above).
const INITIAL_ONLY_NET_SYSCTLS: &[&str] = &[
    "net.core.bpf_jit_enable",
    "net.core.bpf_jit_harden",
    "net.core.bpf_jit_kallsyms",
    "net.core.bpf_jit_limit",
    "net.core.busy_poll",
    "net.core.busy_read",
    "net.core.default_qdisc",
    "net.core.dev_weight",
    "net.core.dev_weight_rx_bias",
    "net.core.dev_weight_tx_bias",
    "net.core.devconf_inherit_init_net",
    "net.core.fb_tunnels_only_for_init_net",
    "net.core.flow_limit_cpu_bitmap",
    "net.core.flow_limit_table_len",
    "net.core.gro_normal_batch",
    "net.core.high_order_alloc_disable",
    "net.core.max_skb_frags",
    "net.core.mem_pcpu_rsv",
    "net.core.message_burst",
    "net.core.message_cost",
    "net.core.netdev_budget",
    "net.core.netdev_budget_usecs",
    "net.core.netdev_max_backlog",
    "net.core.netdev_rss_key",
    "net.core.netdev_tstamp_prequeue",
    "net.core.netdev_unregister_timeout_secs",
    "net.core.rps_sock_flow_entries",
    "net.core.skb_defer_max",
    "net.core.warnings",
    "net.ipv4.cipso_cache_bucket_size",
    "net.ipv4.cipso_cache_enable",
    "net.ipv4.cipso_rbm_optfmt",
    "net.ipv4.cipso_rbm_strictvalid",
    "net.ipv4.fib_sync_mem",
    "net.ipv4.inet_peer_maxttl",
    "net.ipv4.inet_peer_minttl",
    "net.ipv4.inet_peer_threshold",
    "net.ipv4.ipfrag_secret_interval",
    "net.ipv4.tcp_available_ulp",
    "net.ipv4.tcp_low_latency",
    "net.ipv4.tcp_max_orphans",
    "net.ipv4.tcp_mem",
    "net.ipv4.udp_mem",
    "net.ipv6.calipso_cache_bucket_size",
    "net.ipv6.calipso_cache_enable",
    "net.ipv6.ip6frag_secret_interval",
    "net.ipv6.mld_max_msf",
    "net.ipv6.mld_qrv",
    "net.netfilter.nf_log_all_netns",
    "net.nf_conntrack_max",
];

/// Only `net.*` sysctls are per namespace; anything else would change the whole machine.
pub(super) fn sysctls(specs: &[SysctlSpec], d: &mut Vec<Diagnostic>) -> Vec<Sysctl> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for s in specs {
        if !seen.insert(s.key.value.as_str()) {
            d.push(Diagnostic::error(
                s.key.span.clone(),
                format!("sysctl `{}` is set twice", s.key.value),
            ));
        } else if let Some(ok) = sysctl(s, d) {
            out.push((ok, s));
        }
    }
    port_order(&out, d);
    out.into_iter().map(|(s, _)| s).collect()
}

/// The kernel refuses an `ip_local_port_range` that starts below `ip_unprivileged_port_start`,
/// and an `ip_unprivileged_port_start` above the range's first port, each checked against the
/// other's value at the time of the write; the build writes in the file's order, so follow it.
fn port_order(sysctls: &[(Sysctl, &SysctlSpec)], d: &mut Vec<Diagnostic>) {
    let mut range = KERNEL_LOCAL_PORT_RANGE;
    let mut start = KERNEL_UNPRIVILEGED_PORT_START;
    for (s, spec) in sysctls {
        match (s.key(), s.setting()) {
            (_, Setting::LocalPortRange(r)) => {
                if r.lo() < start {
                    d.push(
                        Diagnostic::error(
                            spec.value.span.clone(),
                            format!(
                                "invalid value {:?} for sysctl `{LOCAL_PORT_RANGE_SYSCTL}`: the \
                                 first port, {}, is below `{UNPRIVILEGED_PORT_START_SYSCTL}` \
                                 ({start}), and the kernel refuses it with EINVAL",
                                s.value(),
                                r.lo()
                            ),
                        )
                        .with_help(format!(
                            "start the range at {start} or above, like \"{start} 65535\", or set \
                             `{UNPRIVILEGED_PORT_START_SYSCTL}` to {} or below before it",
                            r.lo()
                        )),
                    );
                } else {
                    range = r;
                }
            }
            (UNPRIVILEGED_PORT_START_SYSCTL, Setting::Integer(n)) => {
                if n > i64::from(range.lo()) {
                    d.push(
                        Diagnostic::error(
                            spec.value.span.clone(),
                            format!(
                                "invalid value {:?} for sysctl `{UNPRIVILEGED_PORT_START_SYSCTL}`: \
                                 it is above the first port of `{LOCAL_PORT_RANGE_SYSCTL}` ({}), \
                                 and the kernel refuses it with EINVAL",
                                s.value(),
                                range.lo()
                            ),
                        )
                        .with_help(format!(
                            "write {} or below, or set `{LOCAL_PORT_RANGE_SYSCTL}` to start at \
                             {n} or above before it",
                            range.lo()
                        )),
                    );
                } else {
                    start = u16::try_from(n).unwrap_or(u16::MAX);
                }
            }
            _ => {}
        }
    }
}

fn sysctl(s: &SysctlSpec, d: &mut Vec<Diagnostic>) -> Option<Sysctl> {
    let key = s.key.value.as_str();
    let well_formed = !key.is_empty()
        && key.split('.').all(|p| !p.is_empty())
        && key
            .chars()
            .all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_' | '.' | '-'));
    let raisable = GlobalLimit::from_key(key).map(|_| {
        format!(
            "it is global, one value for the whole machine: to let `lab run` raise it when the \
             workload needs more (and restore it after), write `[machine]` `raise = [\"{key}\"]`"
        )
    });
    let problem = if !well_formed {
        Some((
            format!("`{key}` is not a sysctl name"),
            "write it with dots, like \"net.ipv4.tcp_syn_retries\"".to_owned(),
        ))
    } else if !key.starts_with("net.") {
        Some((
            format!("sysctl `{key}` is not per network namespace"),
            raisable.unwrap_or_else(|| {
                "only `net.*` sysctls can be set inside a lab; others would change the whole \
                 machine"
                    .to_owned()
            }),
        ))
    } else if READ_ONLY_NET_SYSCTLS.contains(&key) {
        Some((
            format!("sysctl `{key}` cannot be set in a lab namespace"),
            raisable.unwrap_or_else(|| {
                "a lab namespace can only read it: the initial namespace's value applies to all"
                    .to_owned()
            }),
        ))
    } else if INITIAL_ONLY_NET_SYSCTLS.contains(&key) || key.starts_with("net.ipv4.route.") {
        Some((
            format!("sysctl `{key}` cannot be set in a lab namespace"),
            "global: only the initial namespace has it, and lab never changes that one".to_owned(),
        ))
    } else {
        None
    };
    if let Some((message, help)) = problem {
        d.push(Diagnostic::error(s.key.span.clone(), message).with_help(help));
        return None;
    }
    if s.value.value.trim().is_empty() || s.value.value.contains(['\n', '\r', '\0']) {
        d.push(Diagnostic::error(
            s.value.span.clone(),
            format!("invalid value for sysctl `{key}`: it must be one non-empty line"),
        ));
        return None;
    }
    match Sysctl::new(key, &s.value.value) {
        Ok(ok) => Some(ok),
        Err(e) => {
            d.push(Diagnostic::error(s.value.span.clone(), e.message).with_help(e.help));
            None
        }
    }
}

/// `[machine] tcp_tables`: `"sized"` (the default) or `"shared"`.
pub(super) fn tcp_tables(lab: &LabSpec, d: &mut Vec<Diagnostic>) -> TcpTables {
    let Some(raw) = lab.machine.as_ref().and_then(|m| m.tcp_tables.as_ref()) else {
        return TcpTables::default();
    };
    if let Some(t) = TcpTables::ALL.into_iter().find(|t| t.name() == raw.value) {
        return t;
    }
    let diag = Diagnostic::error(
        raw.span.clone(),
        format!("unknown tcp_tables `{}`", raw.value),
    );
    let allowed = "use \"sized\" (busy namespaces get their own established-hash, the default) \
                   or \"shared\" (every namespace uses the host's, as the kernel does by default)";
    d.push(
        match did_you_mean(&raw.value, TcpTables::ALL.map(TcpTables::name)) {
            Some(s) => diag.with_help(format!("did you mean \"{s}\"? ({allowed})")),
            None => diag.with_help(allowed),
        },
    );
    TcpTables::default()
}

/// `[machine] raise`: the global limits the lab may raise, each known and listed once.
pub(super) fn may_raise(lab: &LabSpec, d: &mut Vec<Diagnostic>) -> Vec<GlobalLimit> {
    let Some(list) = lab.machine.as_ref().and_then(|m| m.raise.as_ref()) else {
        return Vec::new();
    };
    let known = || GlobalLimit::ALL.iter().map(|l| l.key());
    let mut out: Vec<GlobalLimit> = Vec::new();
    for item in &list.value {
        let key = item.value.as_str();
        match GlobalLimit::from_key(key) {
            Some(l) if out.contains(&l) => d.push(
                Diagnostic::error(item.span.clone(), format!("`{key}` is listed twice"))
                    .with_help("list each limit once"),
            ),
            Some(l) => out.push(l),
            None => {
                let help = match did_you_mean(key, known()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!(
                        "lab can raise only these global limits: {}",
                        known()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                let what = if key.starts_with("net.") && !READ_ONLY_NET_SYSCTLS.contains(&key) {
                    " (it is per namespace: set it in a host's or container's `sysctls`)"
                } else {
                    ""
                };
                d.push(
                    Diagnostic::error(
                        item.span.clone(),
                        format!("`{key}` is not a global limit lab can raise{what}"),
                    )
                    .with_help(help),
                );
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::lab::diag::Source;

    #[test]
    fn machine_tcp_tables_is_sized_unless_shared_is_asked() {
        assert_eq!(ok(BASE).plan.tcp_tables, TcpTables::Sized);
        let shared = ok(&format!("{BASE}[machine]\ntcp_tables = \"shared\"\n")).plan;
        assert_eq!(shared.tcp_tables, TcpTables::Shared);
        let d = rejected(&format!("{BASE}[machine]\ntcp_tables = \"shard\"\n"));
        assert_eq!(d.len(), 1, "{d:#?}");
        assert_eq!(d[0].message, "unknown tcp_tables `shard`");
        assert!(
            d[0].help
                .as_deref()
                .is_some_and(|h| h.starts_with("did you mean \"shared\""))
        );
    }

    #[test]
    fn machine_raise_lists_known_global_limits_once() {
        let text = format!(
            "{BASE}[machine]\nraise = [\"net.netfilter.nf_conntrack_max\", \"fs.file-max\"]\n"
        );
        let plan = ok(&text).plan;
        assert_eq!(
            plan.may_raise,
            vec![GlobalLimit::FileMax, GlobalLimit::ConntrackMax]
        );
        assert!(ok(BASE).plan.may_raise.is_empty(), "nothing unless asked");

        let text = format!(
            "{BASE}[machine]\nraise = [\"fs.file-mx\", \"net.ipv4.ip_local_port_range\", \
             \"kernel.pid_max\", \"fs.file-max\", \"fs.file-max\"]\n"
        );
        let d = rejected(&text);
        assert_eq!(d.len(), 4, "{d:#?}");
        let source = Source::new("t.toml", text.as_str());
        assert_eq!(source.line_col(d[0].span.start), (8, 10), "{d:?}");
        assert_eq!(
            d[0].message,
            "`fs.file-mx` is not a global limit lab can raise"
        );
        assert_eq!(d[0].help.as_deref(), Some("did you mean `fs.file-max`?"));
        assert!(d[1].message.contains("it is per namespace"), "{d:#?}");
        assert_eq!(
            d[2].help.as_deref(),
            Some(
                "lab can raise only these global limits: `fs.file-max`, \
                 `net.netfilter.nf_conntrack_max`, `net.netfilter.nf_conntrack_buckets`"
            )
        );
        assert_eq!(d[3].message, "`fs.file-max` is listed twice");
    }

    #[test]
    fn sysctls_must_be_per_namespace() {
        let host_sysctls =
            |s: &str| BASE.replace("addresses", &format!("sysctls = {{ {s} }}\naddresses"));
        let text = host_sysctls("\"kernel.pid_max\" = 1");
        let d = reported(
            &text,
            "sysctl `kernel.pid_max` is not per network namespace",
            (6, 13),
        );
        assert!(d.help.unwrap().contains("whole machine"));
        let text = host_sysctls("\"net.netfilter.nf_conntrack_max\" = 1");
        let d = reported(
            &text,
            "sysctl `net.netfilter.nf_conntrack_max` cannot be set",
            (6, 13),
        );
        assert_eq!(
            d.help.as_deref(),
            Some(
                "it is global, one value for the whole machine: to let `lab run` raise it when \
                 the workload needs more (and restore it after), write `[machine]` `raise = \
                 [\"net.netfilter.nf_conntrack_max\"]`"
            )
        );
        let text = host_sysctls("\"net.netfilter.nf_conntrack_buckets\" = 1");
        let d = reported(
            &text,
            "sysctl `net.netfilter.nf_conntrack_buckets` cannot be set",
            (6, 13),
        );
        assert_eq!(
            d.help.as_deref(),
            Some(
                "it is global, one value for the whole machine: to let `lab run` raise it when \
                 the workload needs more (and restore it after), write `[machine]` `raise = \
                 [\"net.netfilter.nf_conntrack_buckets\"]`"
            )
        );
        let text = host_sysctls("\"net.core.netdev_max_backlog\" = 1");
        let d = reported(
            &text,
            "sysctl `net.core.netdev_max_backlog` cannot be set",
            (6, 13),
        );
        assert!(
            d.help
                .unwrap()
                .starts_with("global: only the initial namespace has it")
        );
        let text = host_sysctls("\"net/ipv4/tcp_syn_retries\" = 1");
        reported(
            &text,
            "`net/ipv4/tcp_syn_retries` is not a sysctl name",
            (6, 13),
        );
        let text = host_sysctls("\"net.core.somaxconn\" = 4096, net.ipv4.tcp_syn_retries = \"2\"");
        let plan = ok(&text).plan;
        let got: Vec<_> = plan.hosts[0]
            .sysctls
            .iter()
            .map(|s| (s.key(), s.value()))
            .collect();
        assert_eq!(
            got,
            [
                ("net.core.somaxconn", "4096"),
                ("net.ipv4.tcp_syn_retries", "2")
            ]
        );
        let text = with("[containers.c]\nhost = \"a\"\nsysctls = { \"vm.swappiness\" = 1 }\n");
        reported(
            &text,
            "sysctl `vm.swappiness` is not per network namespace",
            (9, 13),
        );
    }
}
