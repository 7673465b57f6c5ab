//! `lab run`'s report: what was asked and reached per client and server, the NAT paths as the
//! kernel held them, the verdict with its reason in numbers, and the expectations.

use std::fmt::Write as _;

use serde::Serialize;

use super::count;
use crate::lab::plan::{CountRange, Plan};
use crate::nat::form::NatKind;
use crate::nat::paths::HostPrediction;
use crate::nat::view::NatView;
use crate::workload::outcome::{Outcome, StopReason};
use crate::workload::protocol::Failures;

/// One expectation and whether it held.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub what: String,
    pub expected: String,
    pub actual: u64,
    pub met: bool,
}

/// Everything `lab run` found, as one JSON document. The top level always has `established`,
/// `failed` and `expectations_met`, for scripts that know nothing else.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub lab: String,
    pub established: u64,
    pub failed: Failures,
    /// Whether every `[expect]` held; `None` (JSON `null`) when the lab file states none, so a
    /// script cannot mistake "nothing was checked" for "everything held".
    pub expectations_met: Option<bool>,
    pub expectations: Vec<Check>,
    pub asked: u64,
    pub predicted_established: u64,
    pub verdict: Vec<String>,
    pub outcome: Outcome,
    pub nat: Vec<NatView>,
    pub prediction: Vec<HostPrediction>,
    /// Resident memory of `lab` itself, bytes.
    pub lab_rss_bytes: u64,
    /// Proportional memory of `lab` itself, bytes.
    pub lab_pss_bytes: u64,
    /// Global limits raised (or held) for this run, as the lab file allowed; each was restored
    /// at teardown.
    pub raised: Vec<crate::lab::limits::Raised>,
}

impl RunReport {
    pub fn new(
        plan: &Plan,
        outcome: Outcome,
        nat: Vec<NatView>,
        prediction: Vec<HostPrediction>,
        raised: Vec<crate::lab::limits::Raised>,
    ) -> Self {
        let last = &outcome.last;
        let mut expectations = Vec::new();
        if let Some(range) = plan.expect.established {
            expectations.push(check("established", range, last.established));
        }
        let verdict = verdict(&outcome, &nat);
        Self {
            lab: plan.name.to_string(),
            established: last.established,
            failed: last.failed.clone(),
            expectations_met: (!expectations.is_empty())
                .then(|| expectations.iter().all(|c| c.met)),
            expectations,
            asked: last.asked,
            predicted_established: crate::nat::paths::predicted_total(&prediction),
            verdict,
            nat,
            prediction,
            lab_rss_bytes: crate::workload::sys::rss_bytes().unwrap_or(0),
            lab_pss_bytes: crate::workload::sys::pss_bytes().unwrap_or(0),
            raised,
            outcome,
        }
    }
}

fn check(what: &str, range: CountRange, actual: u64) -> Check {
    Check {
        what: what.into(),
        expected: range.to_string(),
        actual,
        met: range.contains(actual),
    }
}

/// The reasons, in numbers: which limit stopped the count.
/// VM blocks listed one by one in a report before the rest are summed up.
const VM_PATHS_SHOWN: usize = 6;

fn verdict(outcome: &Outcome, nat: &[NatView]) -> Vec<String> {
    let last = &outcome.last;
    let mut out = Vec::new();
    // A program's reasons for giving up cannot be seen from outside: what it asked for and
    // did not get is the number to give.
    let unseen: u64 = last
        .clients
        .iter()
        .filter(|c| c.program.is_some())
        .map(|c| c.asked.saturating_sub(c.established))
        .sum();
    for v in nat {
        let exhausted: Vec<&crate::nat::view::PathView> =
            v.paths.iter().filter(|p| p.exhausted).collect();
        let clients = if unseen > 0 {
            format!(
                "; {} connections your programs asked for are not established (why they gave \
                 up cannot be seen from outside: their logs may say)",
                count(unseen)
            )
        } else {
            format!(" and {} connects timed out", count(last.failed.timed_out))
        };
        // Each VM's own block is a path: one line for them all, per destination.
        if exhausted.iter().any(|p| p.vm_ports.is_some()) {
            let mut dsts: Vec<std::net::SocketAddrV4> = exhausted.iter().map(|p| p.dst).collect();
            dsts.dedup();
            for dst in dsts {
                let full: Vec<_> = exhausted.iter().filter(|p| p.dst == dst).collect();
                let per_vm = full.first().map_or(0, |p| p.capacity);
                out.push(format!(
                    "{} VM port blocks towards {dst} used all {} of their ports: exhausted",
                    full.len(),
                    count(u64::from(per_vm)),
                ));
            }
            out.push(format!(
                "the NAT dropped {} SYNs (insert_failed){clients}",
                count(v.stats.insert_failed),
            ));
        }
        for p in exhausted.iter().filter(|p| p.vm_ports.is_none()) {
            out.push(format!(
                "path {} -> {} used {} of {} ports: exhausted; the NAT dropped {} SYNs \
                 (insert_failed){clients}",
                p.translated,
                p.dst,
                count(p.ports_used),
                count(u64::from(p.capacity)),
                count(v.stats.insert_failed),
            ));
        }
        if let Some(profile) = v.nat.profile()
            && (!exhausted.is_empty() || v.unallocated > 0)
        {
            out.push(format!(
                "{} shows this as {}; the fix there: {}",
                profile.product(),
                profile.symptom(),
                profile.remedy()
            ));
        }
        if v.unallocated > 0 {
            out.push(format!(
                "{} container(s) on {} got no NAT ports (the addresses hold no more VMs: \
                 nat_allocation_failed): every SYN they sent was dropped",
                v.unallocated,
                crate::nat::form::place(&v.host, &v.network)
            ));
        }
    }
    if unseen > 0 && !nat.iter().any(|v| v.paths.iter().any(|p| p.exhausted)) {
        out.push(format!(
            "{} connections your programs asked for are not established, and no NAT path is full: \
             their logs may say why",
            count(unseen)
        ));
    }
    for c in last.clients.iter().filter(|c| c.failed.no_local_port > 0) {
        out.push(format!(
            "container {} ran out of its own local ports (ip_local_port_range) towards {}: {} connects \
             failed with \"no local port\"; no NAT was involved in that limit",
            c.container,
            c.target,
            count(c.failed.no_local_port)
        ));
    }
    if out.is_empty() && last.established == last.asked {
        out.push(format!(
            "all {} connections established: no path and no container ran out of ports",
            count(last.established)
        ));
    }
    if last.failed.refused > 0 {
        out.push(format!(
            "{} connects were refused (nothing listening)",
            count(last.failed.refused)
        ));
    }
    // Timeouts an exhausted path explains are in its line above.
    if last.failed.timed_out > 0 && !nat.iter().any(|v| v.paths.iter().any(|p| p.exhausted)) {
        out.push(format!(
            "{} connects timed out (no answer to their SYNs)",
            count(last.failed.timed_out)
        ));
    }
    if last.failed.unreachable > 0 {
        out.push(format!(
            "{} connects were unreachable (no route to the target: ICMP unreachable)",
            count(last.failed.unreachable)
        ));
    }
    if last.failed.reset > 0 {
        out.push(format!(
            "{} connections were reset or closed by the server",
            count(last.failed.reset)
        ));
    }
    if last.failed.other > 0 {
        let detail = last.clients.iter().find_map(|c| c.detail.as_deref());
        out.push(format!(
            "{} connects failed otherwise{}",
            count(last.failed.other),
            detail.map(|d| format!(": {d}")).unwrap_or_default()
        ));
    }
    for s in last.servers.iter().filter(|s| s.queued > 0) {
        out.push(match s.program {
            Some(_) => format!(
                "server {}'s program has not accepted {} of its {} connections: they wait in its \
                 listen queue (the NAT's wall is one thing, the program's own limits another)",
                s.server,
                count(s.queued),
                count(s.established)
            ),
            // A built-in server counts what it accepted; at the pause it accepts all it can.
            None => format!(
                "server {} could not accept {} connections beyond its {}: they wait in its listen \
                 queue (out of open files or memory: see the server's detail)",
                s.server,
                count(s.queued),
                count(s.established)
            ),
        });
    }
    for d in &last.dead_agents {
        out.push(format!("agent died: {d}"));
    }
    if let StopReason::Interrupted(sig) = outcome.stop {
        out.push(format!(
            "the run was interrupted by {} before it settled",
            crate::error::signal_name(sig)
        ));
    }
    out
}

/// A client's failures by cause, `-` when none.
pub fn failures(f: &Failures) -> String {
    let parts: Vec<String> = [
        (f.no_local_port, "no local port"),
        (f.timed_out, "timed out"),
        (f.refused, "refused"),
        (f.reset, "reset"),
        (f.unreachable, "unreachable"),
        (f.other, "other"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{} {what}", count(*n)))
    .collect();
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(", ")
    }
}

/// Why the run stopped watching, in words.
pub fn stopped(o: &Outcome) -> String {
    match o.stop {
        // A dead client counts as done, with connections it never tried.
        StopReason::AllDone if !o.last.dead_agents.is_empty() => {
            "every client finished or died".to_string()
        }
        StopReason::AllDone => "every connection established or failed".to_string(),
        StopReason::Settled => "counts stopped moving".to_string(),
        StopReason::Timeout => "timeout".to_string(),
        StopReason::Interrupted(sig) => {
            format!("interrupted by {}", crate::error::signal_name(sig))
        }
    }
}

/// The report as a person reads it.
pub fn render(r: &RunReport) -> String {
    let o = &r.outcome;
    let last = &o.last;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nlab {}: {} of {} connections established",
        r.lab,
        count(r.established),
        count(r.asked)
    );
    let _ = writeln!(
        out,
        "\n  {:<12} {:<10} {:<22} {:>8} {:>12}  failed",
        "client", "container", "target", "asked", "established"
    );
    for c in &last.clients {
        let _ = writeln!(
            out,
            "  {:<12} {:<10} {:<22} {:>8} {:>12}  {}",
            c.group,
            c.container,
            c.target.to_string(),
            count(c.asked),
            count(c.established),
            if c.program.is_some() {
                "not visible from outside (your program: see its log)".to_owned()
            } else {
                failures(&c.failed)
            }
        );
    }
    for c in last.clients.iter().filter(|c| c.program.is_some()).take(1) {
        let _ = writeln!(
            out,
            "  (clients: `{}`, ... as {}; counted from the kernel's socket tables, in flight = \
             SYN-SENT)",
            c.program.as_deref().unwrap_or_default(),
            c.runs_as.as_deref().unwrap_or("?")
        );
    }
    for s in &last.servers {
        let _ = writeln!(
            out,
            "\n  server {} on {}:{}: {} connections ({} process{}{})",
            s.server,
            s.host,
            s.port,
            count(s.established),
            s.processes,
            if s.processes == 1 { "" } else { "es" },
            s.program
                .as_ref()
                .map(|p| format!(
                    " of `{p}` as {}, counted from the kernel",
                    s.runs_as.as_deref().unwrap_or("?")
                ))
                .unwrap_or_default()
        );
        for (ip, n) in &s.by_local_address {
            let _ = writeln!(out, "    local address {ip}: {}", count(*n));
        }
        if s.queued > 0 && s.program.is_some() {
            let _ = writeln!(
                out,
                "    {} of them wait in the listen queue: the kernel completed them, the program \
                 has not accepted them (out of open files? see its log)",
                count(s.queued)
            );
        } else if s.queued > 0 {
            let _ = writeln!(
                out,
                "    and {} more wait in the listen queue, completed by the kernel, not accepted",
                count(s.queued)
            );
        }
    }
    for v in &r.nat {
        let _ = writeln!(
            out,
            "\n  NAT on {} ({}), from its conntrack table:",
            crate::nat::form::place(&v.host, &v.network),
            v.nat
        );
        if v.paths.is_empty() && v.nat.kind() == NatKind::None {
            let _ = writeln!(
                out,
                "    nothing was translated: with nat = \"none\" Docker writes no NAT rule, so the \
                 containers leave with their own addresses (the LAN's other hosts route them back)"
            );
        } else if v.paths.is_empty() {
            let _ = writeln!(
                out,
                "    nothing was translated: packets to the host's own addresses are delivered \
                 locally and never reach POSTROUTING, where Docker's rule is"
            );
        }
        // A VM's block per path: a class sees the first few, then what the rest add up to.
        let shown = if v.paths.iter().any(|p| p.vm_ports.is_some()) {
            VM_PATHS_SHOWN
        } else {
            usize::MAX
        };
        for p in v.paths.iter().take(shown) {
            let _ = writeln!(
                out,
                "    path {}{} -> {}: {} of {} ports{}",
                p.translated,
                p.vm_ports
                    .map(|b| format!(" ports {}-{}", b.first, b.last))
                    .unwrap_or_default(),
                p.dst,
                count(p.ports_used),
                count(u64::from(p.capacity)),
                if p.exhausted { ", exhausted" } else { "" }
            );
        }
        if v.paths.len() > shown {
            let rest = &v.paths[shown..];
            let _ = writeln!(
                out,
                "    ... {} more VM blocks: {} ports in use, {} of them exhausted",
                rest.len(),
                count(rest.iter().map(|p| p.ports_used).sum()),
                rest.iter().filter(|p| p.exhausted).count()
            );
        }
        // With an address pool, which address the kernel chose for whom is the lesson.
        if v.nat.kind() == NatKind::Snat {
            for c in &v.containers {
                let _ = writeln!(
                    out,
                    "    {} {} -> {}: left as {}{}{}",
                    c.container,
                    c.address,
                    c.dst,
                    super::left_as(c),
                    c.predicted
                        .map(|p| format!(", predicted {p}"))
                        .unwrap_or_default(),
                    if c.mismatch {
                        "  MISMATCH: please report this as a bug"
                    } else {
                        ""
                    }
                );
            }
        }
        if v.stats.insert_failed > 0 {
            let _ = writeln!(
                out,
                "    insert_failed {}, drop {}: SYNs the NAT could not give a unique translation \
                 (no free port on a full path, or two SYNs racing for the same one: those retry)",
                count(v.stats.insert_failed),
                count(v.stats.drop)
            );
        }
        if let Some(sp) = &v.shared_port {
            let _ = writeln!(
                out,
                "    one translated port, several destinations at once (the 4-tuple proof):"
            );
            for t in sp.entries.iter().take(4) {
                let _ = writeln!(out, "      {} -> {} -> {}", t.from, t.translated, t.to);
            }
        }
    }
    for l in &r.raised {
        let _ = writeln!(
            out,
            "\n  {} was {} on this machine; raised to {} for this run (the lab file allows it), \
             restored at teardown",
            l.limit,
            count(l.before),
            count(l.set)
        );
    }
    let _ = writeln!(out, "\nwhy:");
    for line in &r.verdict {
        let _ = writeln!(out, "  {line}");
    }
    let _ = writeln!(
        out,
        "\nsettled {:.1} s after the clients started ({}); peak {} connections/s",
        o.settle_ms as f64 / 1000.0,
        stopped(o),
        count(o.peak_rate),
    );
    if let Some(h) = &o.hold {
        let asked = match h.asked_s {
            Some(s) => format!("{s:.0} s asked"),
            None => "until Ctrl-C".to_owned(),
        };
        let ended = match h.ended_by {
            Some(sig) => format!(", ended by {}", crate::error::signal_name(sig)),
            None => String::new(),
        };
        let _ = writeln!(
            out,
            "held the connections {:.1} s ({asked}{ended}): {} open at the start, {} at the end, \
             {} lost{}",
            h.held_ms as f64 / 1000.0,
            count(h.established_at_start),
            count(h.established_at_end),
            count(h.lost),
            match failures(&h.failed).as_str() {
                "-" | "" => String::new(),
                f => format!(" (clients saw: {f})"),
            }
        );
    }
    // Proportional memory counts the binary and libc, shared by every agent, once; resident
    // memory counts them in each agent, which dominates below a few thousand connections.
    let mib = |b: u64| b as f64 / 1_048_576.0;
    let total_pss = last.agents_pss_bytes + r.lab_pss_bytes;
    let per_conn = if r.established > 0 {
        format!(
            ", {:.2} KiB per connection",
            total_pss as f64 / 1024.0 / r.established as f64
        )
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "memory: {} agent processes and lab {:.1} MiB proportional{per_conn} ({:.1} MiB resident \
         counting shared pages in each process)",
        last.agents,
        mib(total_pss),
        mib(last.agents_rss_bytes + r.lab_rss_bytes)
    );
    let _ = writeln!(out, "client source ports: {}", o.client_method);
    if r.expectations.is_empty() {
        let _ = writeln!(out, "no expectations: the lab file has no [expect] table");
    }
    for c in &r.expectations {
        let _ = writeln!(
            out,
            "expect {} = {}: got {}: {}",
            c.what,
            c.expected,
            count(c.actual),
            if c.met { "met" } else { "NOT MET" }
        );
    }
    out
}

/// The plot of established connections per group and in total, with the capacity of every
/// exhausted NAT path and the expectation as reference lines.
pub fn established_svg(report: &RunReport, groups: &[String]) -> String {
    use crate::report::plot::{Line, Mark, MarkStyle, svg};
    let series = &report.outcome.series;
    let mut lines: Vec<Line> = groups
        .iter()
        .enumerate()
        .map(|(i, g)| Line {
            label: g.clone(),
            points: series
                .iter()
                .map(|s| (s.t_ms, s.groups.get(i).copied().unwrap_or(0)))
                .collect(),
        })
        .collect();
    if groups.len() > 1 {
        lines.push(Line {
            label: "total".into(),
            points: series.iter().map(|s| (s.t_ms, s.total)).collect(),
        });
    }
    // The wall: what the prediction says the run stops at, when that is short of what was
    // asked; a full NAT path at the same height is the same line.
    let wall = report.predicted_established;
    let wall = (wall > 0 && wall < report.asked).then_some(wall);
    let mut full: Vec<u64> = report
        .nat
        .iter()
        .flat_map(|v| v.paths.iter().filter(|p| p.exhausted))
        .map(|p| u64::from(p.capacity))
        .collect();
    full.sort_unstable();
    full.dedup();
    let mut marks: Vec<Mark> = full
        .iter()
        .filter(|&&v| Some(v) != wall)
        .map(|&value| Mark {
            label: "NAT path full".into(),
            value,
            style: MarkStyle::Limit,
        })
        .collect();
    if let Some(value) = wall {
        marks.push(Mark {
            label: if full.contains(&value) {
                "the NAT's wall"
            } else {
                "predicted wall"
            }
            .into(),
            value,
            style: MarkStyle::Wall,
        });
    }
    marks.push(Mark {
        label: "asked".into(),
        value: report.asked,
        style: MarkStyle::Reference,
    });
    let title = format!(
        "lab {}: {} of {} connections established",
        report.lab,
        super::count(report.established),
        super::count(report.asked)
    );
    svg(&title, &lines, &marks)
}

/// The established-connections time series as CSV: `t_ms,<group>...,total`.
pub fn series_csv(r: &RunReport, groups: &[String]) -> String {
    let mut out = format!("t_ms,{},total\n", groups.join(","));
    for s in &r.outcome.series {
        let cols: Vec<String> = s.groups.iter().map(ToString::to_string).collect();
        let _ = writeln!(out, "{},{},{}", s.t_ms, cols.join(","), s.total);
    }
    out
}
