//! The limits a plan meets, each named as the kernel names it, with the number it allows, the
//! most the plan puts under it, whether it shaped the layout, and what to change for more; and
//! the plan's decisions in sentences (why so many hosts, paths, containers, processes). Pure.

use serde::Serialize;

use super::write::Layout;
use super::{DOCKER_LOCAL_PORTS, Machine, NatChoice, Request, Shape, WIDE_LOCAL_PORTS, path_fill};
use crate::lab::capacity::KERNEL_BYTES_PER_CONNECTION;
use crate::workload::share::{FD_RESERVE, client_processes, per_process, server_processes};

/// What a limit did to the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitStatus {
    /// Under it with room; it decided nothing.
    Fits,
    /// It decided part of the layout (more hosts, paths, containers or processes).
    Binds,
    /// The written file lets `lab run` raise it for the run.
    Raised,
    /// This machine cannot hold the plan under it.
    Exceeds,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Limit {
    /// As the kernel (or its documentation) names it.
    pub name: &'static str,
    /// What it counts: "NAT path", "container and destination", "namespace", "process", "machine".
    pub per: &'static str,
    pub limit: u64,
    /// The most the plan puts under it.
    pub planned: u64,
    pub status: LimitStatus,
    /// What it decided, in words (empty when it decided nothing).
    pub decides: String,
    /// What to change to get past it.
    pub change: String,
}

/// Numbers in sentences are plain, as in `lab::capacity`'s: the renderer groups digits only
/// where it lays out figures itself.
fn count(n: u64) -> String {
    n.to_string()
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{} {}", count(n), if n == 1 { one } else { many })
}

/// The plan's decisions, one sentence each, in the order they were made.
pub fn decisions(req: &Request, machine: &Machine, shape: &Shape) -> Vec<String> {
    let n = req.connections.get();
    let h = u64::from(shape.hosts);
    let per_host = n.div_ceil(h);
    let ct = machine.conntrack_usable();
    let mut out = Vec::new();
    out.push(if h == 1 {
        format!(
            "One client host: its namespace keeps one conntrack entry per translated connection, \
             and {} fit under nf_conntrack_max = {}.",
            count(n),
            count(machine.conntrack_max)
        )
    } else {
        format!(
            "{h} client hosts: each host's namespace keeps one conntrack entry per translated \
             connection and may hold {} (nf_conntrack_max = {} less a 64th kept free), so {} \
             need {h}, up to {} each.",
            count(ct),
            count(machine.conntrack_max),
            count(n),
            count(per_host)
        )
    });
    let k = shape.servers.len() as u64;
    let m = u64::from(shape.sources);
    let cap = req.nat.path_capacity();
    let fill = path_fill(cap);
    out.push(format!(
        "{} x {} = {} per host: a NAT path (SNAT address, server address, port {}) has {} \
         source ports, planned to carry at most {} (a 16th kept free, so the NAT finds a free \
         port at the first SYN).",
        plural(k, "server address", "server addresses"),
        plural(m, "source address", "source addresses"),
        plural(k * m, "NAT path", "NAT paths"),
        req.port,
        count(u64::from(cap)),
        count(u64::from(fill))
    ));
    if req.nat == NatChoice::SnatPool {
        for s in &shape.spread {
            let split: Vec<String> = s.counts.iter().map(u32::to_string).collect();
            out.push(format!(
                "The kernel picks a pool address per (container, server) pair by hashing both \
                 (find_best_ips_proto, jhash2): server address {} spreads its containers {} \
                 over the pool; {} of the {} candidate addresses spread them as evenly.",
                s.server,
                split.join(":"),
                s.as_even,
                super::spread::SERVER_CANDIDATES
            ));
        }
    }
    let c = u64::from(shape.containers);
    let per_container = n.div_ceil(h * c);
    let for_default = per_host.div_ceil(u64::from(DOCKER_LOCAL_PORTS));
    out.push(if shape.wide_ports {
        format!(
            "{} per host with up to {} connections each: more than Docker's default \
             ip_local_port_range 32768-60999 lets one container open to one server address \
             ({}), so the containers get net.ipv4.ip_local_port_range = \"1024 65535\" ({}); \
             {} containers per host would not need it.",
            plural(c, "container", "containers"),
            count(per_container),
            count(u64::from(DOCKER_LOCAL_PORTS)),
            count(u64::from(WIDE_LOCAL_PORTS)),
            for_default.max(k)
        )
    } else {
        format!(
            "{} per host with up to {} connections each: within Docker's default \
             ip_local_port_range 32768-60999 ({} ports towards one server address), so the \
             containers keep it; fewer containers (--containers-per-host) would need \
             net.ipv4.ip_local_port_range = \"1024 65535\".",
            plural(c, "container", "containers"),
            count(per_container),
            count(u64::from(DOCKER_LOCAL_PORTS))
        )
    });
    let limit = machine.open_files_per_process;
    let each = per_process(limit);
    let clients = client_processes(
        u32::try_from(per_container).unwrap_or(u32::MAX),
        None,
        limit,
    );
    out.push(format!(
        "An agent process may hold {} connections (open-files limit RLIMIT_NOFILE = {} less {}), \
         so lab run starts {} per container and {} for the server (SO_REUSEPORT, a quarter \
         spare).",
        count(each),
        count(limit),
        FD_RESERVE,
        plural(clients, "client process", "client processes"),
        plural(
            server_processes(n, None, limit),
            "server process",
            "server processes"
        )
    ));
    out
}

/// The limits of `layout`, the way the plan met each.
pub fn limits(layout: &Layout, shape: &Shape) -> Vec<Limit> {
    let m = &layout.machine;
    let cap = &layout.capacity;
    let busiest_path = layout
        .paths
        .iter()
        .map(|p| p.connections)
        .max()
        .unwrap_or(0);
    let busiest_host = cap.conntrack_per_namespace;
    let paths_per_host = shape.servers.len() as u64 * u64::from(shape.sources);
    let ports = u64::from(layout.local_ports.ports);
    let per_container = layout.connections_per_container.max;
    let busiest_process = per_container
        .div_ceil(client_processes(
            u32::try_from(per_container).unwrap_or(u32::MAX),
            None,
            m.open_files_per_process,
        ))
        .max(layout.connections.div_ceil(layout.server.processes));
    let status = |binds: bool| {
        if binds {
            LimitStatus::Binds
        } else {
            LimitStatus::Fits
        }
    };
    let files_needed = m.files_in_use + cap.open_files;
    let raised = layout
        .raise
        .contains(&crate::lab::limits::GlobalLimit::FileMax);
    let memory_over = cap.kernel_bytes > m.memory_available / 10 * 9;
    let client_hosts = layout.client_hosts.len() as u64;
    vec![
        Limit {
            name: "nf_nat source ports 1024-65535",
            per: "NAT path (SNAT address, server address, server port)",
            limit: u64::from(layout.path_capacity),
            planned: busiest_path,
            status: status(paths_per_host > 1),
            decides: format!(
                "{} per client host",
                plural(paths_per_host, "NAT path", "NAT paths")
            ),
            change: "more server addresses (--server-addresses) or an SNAT pool of source \
                     addresses (--nat snat-pool --source-addresses)"
                .into(),
        },
        Limit {
            name: "net.ipv4.ip_local_port_range",
            per: "container and destination",
            limit: ports,
            planned: per_container,
            status: status(
                layout.local_ports.widened
                    || busiest_host.div_ceil(u64::from(DOCKER_LOCAL_PORTS))
                        > shape.servers.len() as u64,
            ),
            decides: if layout.local_ports.widened {
                "widened to \"1024 65535\" in every container".into()
            } else {
                format!(
                    "{} per client host",
                    plural(u64::from(shape.containers), "container", "containers")
                )
            },
            change: "more containers (--containers-per-host), or the container sysctl \
                     net.ipv4.ip_local_port_range = \"1024 65535\""
                .into(),
        },
        Limit {
            name: "net.netfilter.nf_conntrack_max",
            per: "namespace",
            limit: m.conntrack_max,
            planned: busiest_host,
            status: status(client_hosts > 1),
            decides: plural(client_hosts, "client host", "client hosts"),
            change: "more client hosts, or [machine] raise = [\"net.netfilter.nf_conntrack_max\"] \
                     (one global value, checked against each namespace's own count)"
                .into(),
        },
        Limit {
            name: "RLIMIT_NOFILE",
            per: "process",
            limit: m.open_files_per_process,
            planned: busiest_process + FD_RESERVE,
            status: status(busiest_process < per_container || layout.server.processes > 1),
            decides: format!(
                "{} and {}",
                plural(
                    layout.client_hosts.iter().map(|h| h.processes).sum(),
                    "client process",
                    "client processes"
                ),
                plural(
                    layout.server.processes,
                    "server process",
                    "server processes"
                )
            ),
            change: "a higher hard limit (ulimit -Hn, LimitNOFILE=; root needs CAP_SYS_RESOURCE \
                     to raise it) means fewer processes, not a different layout"
                .into(),
        },
        Limit {
            name: "fs.file-max",
            per: "machine",
            limit: m.file_max,
            planned: files_needed,
            status: if files_needed > m.file_max && !raised {
                LimitStatus::Exceeds
            } else if raised {
                LimitStatus::Raised
            } else {
                LimitStatus::Fits
            },
            decides: if raised {
                "[machine] raise = [\"fs.file-max\"] in the lab file".into()
            } else {
                String::new()
            },
            change: format!(
                "two open files per connection (both ends run here) plus {} in use now: \
                 [machine] raise = [\"fs.file-max\"] lets lab run raise it for the run",
                count(m.files_in_use)
            ),
        },
        Limit {
            name: "MemAvailable",
            per: "machine",
            limit: m.memory_available,
            planned: cap.kernel_bytes,
            status: if memory_over {
                LimitStatus::Exceeds
            } else {
                LimitStatus::Fits
            },
            decides: String::new(),
            change: format!(
                "about {KERNEL_BYTES_PER_CONNECTION} bytes of kernel memory per connection (both \
                 ends and the NAT entry, measured): fewer connections or more memory"
            ),
        },
    ]
}
