//! NAT paths in words: predicted (from the plan) and, for a running lab, observed (from the
//! kernel's conntrack table).

use std::fmt::Write as _;

use super::count;
use crate::nat::form::HostNat;
use crate::nat::paths::{HostPrediction, predicted_total};
use crate::nat::predict::{PortLimit, VmPorts};

/// A path's source: the translated address, and the VM's block where the path is one VM's.
fn source(translated: std::net::Ipv4Addr, vm_ports: Option<VmPorts>) -> String {
    match vm_ports {
        Some(b) => format!("{translated} ports {}-{}", b.first, b.last),
        None => translated.to_string(),
    }
}

/// A path's capacity in the NAT's own terms: a cloud's ports per VM or per address and
/// destination, else the rule's ports.
fn capacity_words(nat: &HostNat, capacity: u32) -> String {
    match nat.profile() {
        Some(p) if p.per_vm() => format!("{} ports per VM", count(u64::from(capacity))),
        Some(_) => format!(
            "{} ports per address and destination",
            count(u64::from(capacity))
        ),
        None => format!("{} ports", count(u64::from(capacity))),
    }
}

/// The predicted NAT paths of a lab, with a warning line for each path that will overflow.
pub fn render_prediction(hosts: &[HostPrediction]) -> String {
    let mut out = String::new();
    if hosts.is_empty() {
        return out;
    }
    let _ = writeln!(out, "\nNAT paths (predicted)");
    for h in hosts {
        let _ = writeln!(
            out,
            "  host {}: nat {}",
            crate::nat::form::place(&h.name, &h.network_name),
            h.nat
        );
        for p in &h.prediction.paths {
            // Only an untranslated path keeps a container's own address as its source.
            let translated = if h.prediction.flows.iter().any(|f| f.src == p.translated) {
                format!("{} (untranslated)", p.translated)
            } else {
                source(p.translated, p.vm_ports)
            };
            let _ = writeln!(
                out,
                "    {translated} -> {}  [{}]  {} wanted, {}: {} established{}",
                p.dst,
                p.containers.join(","),
                count(p.wanted),
                capacity_words(&h.nat, p.capacity),
                count(p.established),
                if p.overflow {
                    format!(
                        "; OVERFLOW: {} connections will time out, their SYNs dropped by the NAT",
                        count(p.wanted - p.established)
                    )
                } else {
                    String::new()
                }
            );
        }
        let pool = h.nat.is_pool();
        for f in &h.prediction.flows {
            if pool {
                let _ = writeln!(
                    out,
                    "    {} {} -> {} leaves as {}{}",
                    f.container,
                    f.src,
                    f.dst,
                    f.translated,
                    if f.address_exact {
                        ""
                    } else {
                        " (mostly: it shares local ports with other destinations)"
                    }
                );
            }
            if f.limit == PortLimit::NoAllocation {
                let _ = writeln!(
                    out,
                    "    {} {}: no NAT ports (the addresses hold no more VMs: nat_allocation_failed): \
                     its {} connections to {} will time out",
                    f.container,
                    f.src,
                    count(u64::from(f.wanted)),
                    f.dst
                );
            }
            if matches!(
                f.limit,
                PortLimit::LocalPorts | PortLimit::LocalAndPathPorts
            ) {
                let _ = writeln!(
                    out,
                    "    {}: {} connections but only {} local ports (ip_local_port_range): {} will fail with \"no local port\"",
                    f.container,
                    count(u64::from(f.connections)),
                    count(u64::from(f.local_ports)),
                    count(u64::from(f.connections - f.local_ports))
                );
            }
        }
        if pool {
            let _ = writeln!(
                out,
                "    (the kernel picks a pool address by hashing the container and server addresses: \
                 fixed per pair, not balanced)"
            );
        }
        if let Some(p) = h.nat.profile() {
            let _ = writeln!(
                out,
                "    ({}: {}; at the wall it shows {})",
                p.product(),
                p.source(),
                p.symptom()
            );
        }
    }
    let _ = writeln!(
        out,
        "  predicted established: {}",
        count(predicted_total(hosts))
    );
    out
}

/// `lab nat`: a host's NAT as the kernel holds it, with the prediction beside it.
pub fn render_view(v: &crate::nat::view::NatView) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "host {}: nat {}",
        crate::nat::form::place(&v.host, &v.network),
        v.nat
    );
    let _ = writeln!(
        out,
        "  conntrack: {} entries in this namespace (each namespace may hold up to nf_conntrack_max = {})",
        count(v.entries),
        count(u64::from(v.max))
    );
    if v.paths.is_empty() {
        let _ = writeln!(out, "  no translated TCP connections");
    }
    for p in &v.paths {
        let predicted = p
            .predicted
            .map(|n| format!(" (predicted {})", count(n)))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  path {} -> {}: {} of {} in use{predicted}{}",
            source(p.translated, p.vm_ports),
            p.dst,
            count(p.ports_used),
            capacity_words(&v.nat, p.capacity),
            if p.exhausted { ": EXHAUSTED" } else { "" }
        );
    }
    for c in &v.containers {
        let observed: Vec<String> = c
            .observed
            .iter()
            .map(|(a, n)| format!("{a} ({})", count(*n)))
            .collect();
        let predicted = c
            .predicted
            .map(|p| format!(", predicted {p}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {} {} -> {}: leaves as {}{predicted}{}",
            c.container,
            c.address,
            c.dst,
            observed.join(", "),
            if c.mismatch {
                "  MISMATCH: please report this as a bug"
            } else {
                ""
            }
        );
    }
    let s = &v.stats;
    let _ = writeln!(
        out,
        "  kernel: insert_failed {}, drop {} (over {} CPUs)",
        count(s.insert_failed),
        count(s.drop),
        s.cpus
    );
    if s.insert_failed > 0 || v.paths.iter().any(|p| p.exhausted) {
        let _ = writeln!(
            out,
            "    each is a SYN that found no free port on its NAT path and was dropped; the client \
             gets no error, it retransmits and finally times out"
        );
    }
    if !v.samples.is_empty() {
        let _ = writeln!(
            out,
            "  translations (container -> translated -> destination):"
        );
        for t in &v.samples {
            let _ = writeln!(out, "    {} -> {} -> {}", t.from, t.translated, t.to);
        }
    }
    if let Some(sp) = &v.shared_port {
        let _ = writeln!(
            out,
            "  one translated port, several destinations at once (the 4-tuple differs by destination):"
        );
        for t in &sp.entries {
            let _ = writeln!(out, "    {} -> {} -> {}", t.from, t.translated, t.to);
        }
    }
    out
}

/// Rules listed one by one in `lab check` before the rest are counted.
const RULES_SHOWN: usize = 9;

/// `lab check`: the kernel rules of each network that plays a cloud's NAT (the first few; `lab
/// show --commands` prints them all).
pub fn render_profile_rules(plan: &crate::lab::Plan) -> String {
    let mut out = String::new();
    for (i, host) in plan.hosts.iter().enumerate() {
        let Some(docker) = &host.docker else { continue };
        let endpoints = plan.endpoints_of(crate::lab::plan::HostId(i));
        for (network, rules) in crate::nat::firewall::profile_rules(docker, &endpoints) {
            let _ = writeln!(
                out,
                "\nNAT rules of {} (POSTROUTING, as lab up writes them)",
                crate::nat::form::place(host.name.as_str(), &network)
            );
            for r in rules.iter().take(RULES_SHOWN) {
                let _ = writeln!(out, "  {r}");
            }
            if rules.len() > RULES_SHOWN {
                let _ = writeln!(
                    out,
                    "  ... {} more (lab show --commands prints them all)",
                    rules.len() - RULES_SHOWN
                );
            }
        }
    }
    out
}
