//! `lab plan` as text: the layout in one line, the hosts, the NAT paths, the limits (each with
//! its number, what the plan puts under it and what it decided) and the reasons.

use std::fmt::Write as _;

use super::count;
use crate::planner::{Layout, LimitStatus};

/// Paths listed before the rest are summed up in one line.
const PATHS_SHOWN: usize = 12;

/// Rows under `head`, columns as wide as their widest cell, the first `left` columns flush
/// left and the others (numbers) flush right but the last, which is free text when empty-headed.
fn table<const N: usize>(head: [&str; N], rows: &[[String; N]], left: usize) -> String {
    let mut width = head.map(str::len);
    for r in rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = String::new();
    for r in std::iter::once(head.map(String::from)).chain(rows.iter().cloned()) {
        let mut line = String::from(" ");
        for (i, (cell, w)) in r.iter().zip(width).enumerate() {
            let free = i == N - 1 && head[i].is_empty();
            if i < left || free {
                let _ = write!(line, " {cell:<w$}");
            } else {
                let _ = write!(line, " {cell:>w$}");
            }
            line.push(' ');
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn plural_of(n: u64, one: &str, many: &str) -> String {
    format!("{} {}", count(n), if n == 1 { one } else { many })
}

pub fn render(l: &Layout) -> String {
    let mut t = String::new();
    let hosts = l.client_hosts.len();
    let _ = writeln!(
        t,
        "plan: {} connections to port {} through {}",
        count(l.connections),
        l.port,
        l.nat.as_str()
    );
    let _ = writeln!(
        t,
        "  {} client host{} x {} container{}, {} server address{}, {} NAT path{} (up to {} \
         connections each, {} ports)\n",
        hosts,
        if hosts == 1 { "" } else { "s" },
        l.containers_per_host,
        if l.containers_per_host == 1 { "" } else { "s" },
        l.server.addresses.len(),
        if l.server.addresses.len() == 1 {
            ""
        } else {
            "es"
        },
        l.paths.len(),
        if l.paths.len() == 1 { "" } else { "s" },
        count(l.paths.iter().map(|p| p.connections).max().unwrap_or(0)),
        count(u64::from(l.path_capacity)),
    );
    if let Some(c) = &l.cloud {
        let _ = writeln!(
            t,
            "  each client host is one {} ({} per gateway{}); published limits: {}\n  \
             the wall, as the cloud shows it: {}\n",
            c.product,
            plural_of(u64::from(c.addresses_per_gateway), "address", "addresses"),
            c.ports_per_vm
                .map(|p| format!(", {} ports per VM", count(u64::from(p))))
                .unwrap_or_default(),
            c.source,
            c.symptom
        );
    }
    let rows: Vec<[String; 6]> = l
        .client_hosts
        .iter()
        .map(|h| {
            let addresses: Vec<String> = h.addresses.iter().map(|a| a.to_string()).collect();
            [
                h.name.clone(),
                addresses.join(", "),
                h.nat.clone(),
                h.containers.to_string(),
                count(h.connections),
                h.processes.to_string(),
            ]
        })
        .collect();
    let head = [
        "host",
        "addresses",
        "nat",
        "containers",
        "connections",
        "processes",
    ];
    t.push_str(&table(head, &rows, 3));
    let servers: Vec<String> = l.server.addresses.iter().map(|a| a.to_string()).collect();
    let _ = writeln!(
        t,
        "  {}: {} port {}, {} processes",
        l.server.name,
        servers.join(", "),
        l.port,
        l.server.processes
    );
    let ports = &l.local_ports;
    let _ = writeln!(
        t,
        "  containers: {} to {} connections each, ip_local_port_range {} {} ({}){}\n",
        count(l.connections_per_container.min),
        count(l.connections_per_container.max),
        ports.first,
        ports.last,
        count(u64::from(ports.ports)),
        if ports.widened {
            ", set in each container"
        } else {
            ", Docker's default"
        }
    );
    let _ = writeln!(t, "NAT paths (as `lab check` of the written file predicts)");
    for p in l.paths.iter().take(PATHS_SHOWN) {
        let block = p
            .vm_ports
            .map(|b| format!(" ports {}-{}", b.first, b.last))
            .unwrap_or_default();
        let _ = writeln!(
            t,
            "  {} {}{block} -> {}  [{}]  {} of {} ports",
            p.host,
            p.source,
            p.server,
            p.containers.join(","),
            count(p.connections),
            count(u64::from(l.path_capacity))
        );
    }
    if l.paths.len() > PATHS_SHOWN {
        let _ = writeln!(
            t,
            "  ... {} more paths (--json lists them all)",
            l.paths.len() - PATHS_SHOWN
        );
    }

    let _ = writeln!(t, "\nlimits");
    let rows: Vec<[String; 5]> = l
        .limits
        .iter()
        .map(|x| {
            let status = match x.status {
                LimitStatus::Fits => "fits".to_string(),
                LimitStatus::Binds => format!("binds: {}", x.decides),
                LimitStatus::Raised => format!("raised: {}", x.decides),
                LimitStatus::Exceeds => format!("EXCEEDS: {}", x.change),
            };
            let (limit, planned) = if x.name == "MemAvailable" {
                (
                    format!("{} MiB", count(x.limit >> 20)),
                    format!("{} MiB", count(x.planned >> 20)),
                )
            } else {
                (count(x.limit), count(x.planned))
            };
            [
                x.name.to_string(),
                format!("per {}", x.per.split(" (").next().unwrap_or(x.per)),
                limit,
                planned,
                status,
            ]
        })
        .collect();
    let head = ["limit", "per", "allows", "planned", ""];
    t.push_str(&table(head, &rows, 2));
    let _ = writeln!(t, "\nwhy:");
    for d in &l.decisions {
        let _ = writeln!(t, "  - {d}");
    }
    let _ = writeln!(t, "\nto get past a limit:");
    for x in l.limits.iter().filter(|x| x.status != LimitStatus::Fits) {
        let _ = writeln!(t, "  {}: {}", x.name, x.change);
    }
    t
}
