//! The limits a plan meets, each named as the kernel names it, with the number it allows, the
//! most the plan puts under it, whether it shaped the layout, and what to change for more; and
//! the plan's decisions in sentences (why so many hosts, paths, containers, processes). Pure.

use serde::Serialize;

use super::cloud::gcp_vms_per_address;
use super::write::Layout;
use super::{DOCKER_LOCAL_PORTS, Machine, NatChoice, Request, Shape, WIDE_LOCAL_PORTS, path_fill};
use crate::lab::capacity::KERNEL_BYTES_PER_CONNECTION;
use crate::lab::cloud::{
    AWS_MAX_ADDRESSES, AZURE_MAX_PORTS_PER_VM, CloudProfile, GCP_DEFAULT_PORTS_PER_VM,
    azure_preallocated,
};
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
    let c = u64::from(shape.containers);
    let per_container = n.div_ceil(h * c);
    if let Some(profile) = req.nat.profile() {
        out.extend(cloud_decisions(
            req,
            shape,
            profile,
            per_host,
            per_container,
        ));
    }
    let cap = shape.path_capacity;
    let fill = path_fill(cap);
    if req.nat.profile().is_none() {
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
    }
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
    } else if shape.ports_per_vm.is_some() {
        format!(
            "{} (VMs) per host with up to {} connections each: the VM's block, not Docker's \
             default ip_local_port_range 32768-60999 ({} ports towards one server address), \
             decides their number, so the containers keep it.",
            plural(c, "container", "containers"),
            count(per_container),
            count(u64::from(DOCKER_LOCAL_PORTS))
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

/// The cloud's part of the decisions: what each client host plays, its published limit, and
/// how many addresses, destinations, VMs and ports per VM the plan took under it.
fn cloud_decisions(
    req: &Request,
    shape: &Shape,
    profile: CloudProfile,
    per_host: u64,
    per_container: u64,
) -> Vec<String> {
    let k = shape.servers.len() as u64;
    let m = u64::from(shape.sources);
    let c = u64::from(shape.containers);
    let cap = shape.path_capacity;
    let fill = u64::from(path_fill(cap));
    let mut out = Vec::new();
    match profile {
        CloudProfile::AwsNatGateway => {
            out.push(format!(
                "Each client host is one AWS NAT gateway: \"Each IPv4 address can support up to \
                 55,000 simultaneous connections to each unique destination\" (IP, port, \
                 protocol; {}), planned to carry at most {} (a 16th kept free, so the NAT finds \
                 a free port at the first SYN).",
                profile.source(),
                count(fill)
            ));
            let more = if aws_destinations_forced(shape, per_host) {
                format!(
                    "; {AWS_MAX_ADDRESSES} addresses, a gateway's most, are not enough, so the \
                     load spreads over {k} destinations"
                )
            } else {
                String::new()
            };
            out.push(format!(
                "{} per gateway take {} (of {AWS_MAX_ADDRESSES} a gateway may have) x {} = {}; \
                 each new connection takes the next address in turn (numgen), so a \
                 destination's connections split evenly over them{more}.",
                count(per_host),
                plural(m, "address", "addresses"),
                plural(k, "destination", "destinations"),
                plural(m * k, "path", "paths"),
            ));
        }
        CloudProfile::GcpCloudNat => {
            let v = u64::from(gcp_vms_per_address(cap));
            out.push(format!(
                "Each client host is one GCP Cloud NAT gateway with static port allocation, each \
                 container a VM: a VM gets min_ports_per_vm ports on one NAT IP, each usable \
                 once per destination (IP, port, protocol; {}); {} ports are planned to carry \
                 at most {} (a 16th kept free).",
                profile.source(),
                count(u64::from(cap)),
                count(fill)
            ));
            let default = u64::from(GCP_DEFAULT_PORTS_PER_VM);
            let at_default = per_host.div_ceil(u64::from(path_fill(GCP_DEFAULT_PORTS_PER_VM)));
            out.push(if req.ports_per_vm.is_some() {
                format!("min_ports_per_vm = {cap}, as asked (--ports-per-vm).")
            } else {
                format!(
                    "min_ports_per_vm = {cap}: of GCP's powers of two, the smallest block that \
                     holds each VM's {} connections with the fewest NAT IPs and then the fewest \
                     VMs; GCP's default of {default} would take {} VMs per gateway \
                     (--ports-per-vm {default} plans that).",
                    count(per_container),
                    count(at_default)
                )
            });
            out.push(format!(
                "One NAT IP holds 64,512 / {cap} = {} (GCP gives a VM beyond that no NAT), so \
                 {} per gateway take {}.",
                plural(v, "VM", "VMs"),
                plural(c, "VM", "VMs"),
                plural(m, "NAT IP", "NAT IPs")
            ));
        }
        CloudProfile::AzureLbOutbound => {
            let table = azure_preallocated(c as usize).unwrap_or(0);
            out.push(format!(
                "Each client host is one Azure load balancer with default outbound SNAT, its \
                 addresses the frontend IPs, its containers the backend pool's VMs: the \
                 ports a VM gets are preallocated by pool size (1-50: 1,024; 51-100: 512; \
                 101-200: 256; 201-400: 128; 401-800: 64; 801-1,000: 32) times the frontend \
                 IPs, at most {AZURE_MAX_PORTS_PER_VM}, each usable once per destination ({}).",
                profile.source()
            ));
            out.push(format!(
                "A pool of {} gets {table} x {} = {} ports per VM ({} planned, a 16th kept \
                 free): {} are the fewest that hold {} per load balancer, and {} the smallest \
                 pool that does with them.",
                plural(c, "VM", "VMs"),
                plural(m, "frontend IP", "frontend IPs"),
                count(u64::from(cap)),
                count(fill),
                plural(m, "frontend IP", "frontend IPs"),
                count(per_host),
                plural(c, "VM", "VMs"),
            ));
        }
    }
    out
}

/// Whether an AWS plan spreads over more destinations because a gateway's 8 addresses to
/// one fewer destination cannot hold its connections.
fn aws_destinations_forced(shape: &Shape, per_host: u64) -> bool {
    let k = shape.servers.len() as u64;
    let fill = u64::from(path_fill(shape.path_capacity));
    k > 1 && AWS_MAX_ADDRESSES as u64 * (k - 1) * fill < per_host
}

/// The cloud's limits, in the cloud's terms, where the kernel's plans have nf_nat's ports.
fn cloud_limits(layout: &Layout, shape: &Shape, profile: CloudProfile) -> Vec<Limit> {
    let busiest_path = layout
        .paths
        .iter()
        .map(|p| p.connections)
        .max()
        .unwrap_or(0);
    let k = shape.servers.len() as u64;
    let m = u64::from(shape.sources);
    let c = u64::from(shape.containers);
    let gateways = u64::from(shape.hosts);
    let status = |binds: bool| {
        if binds {
            LimitStatus::Binds
        } else {
            LimitStatus::Fits
        }
    };
    let per_vm = u64::from(shape.ports_per_vm.unwrap_or(0));
    match profile {
        CloudProfile::AwsNatGateway => {
            let need = layout
                .connections
                .div_ceil(layout.machine.conntrack_usable());
            let per_host = layout
                .client_hosts
                .iter()
                .map(|h| h.connections)
                .max()
                .unwrap_or(0);
            let forced = aws_destinations_forced(shape, per_host);
            vec![
                Limit {
                    name: "AWS: 55,000 connections per NAT address per destination",
                    per: "NAT address and destination (IP, port, protocol)",
                    limit: u64::from(shape.path_capacity),
                    planned: busiest_path,
                    status: status(m * k > 1),
                    decides: format!(
                        "{} x {} per NAT gateway",
                        plural(m, "address", "addresses"),
                        plural(k, "destination", "destinations")
                    ),
                    change: "associate more addresses with the NAT gateway \
                             (--source-addresses, up to 8), or spread the load over more \
                             destinations (--server-addresses)"
                        .into(),
                },
                Limit {
                    name: "AWS: 8 addresses per NAT gateway",
                    per: "NAT gateway (1 primary, 7 secondary)",
                    limit: AWS_MAX_ADDRESSES as u64,
                    planned: m,
                    status: status(forced || gateways > need),
                    decides: if k > 1 {
                        plural(k, "destination", "destinations")
                    } else {
                        plural(gateways, "NAT gateway", "NAT gateways")
                    },
                    change: "another NAT gateway (here another client host; in AWS one per \
                             subnet), or more destinations (--server-addresses)"
                        .into(),
                },
            ]
        }
        CloudProfile::GcpCloudNat => {
            let v = u64::from(gcp_vms_per_address(shape.path_capacity));
            vec![
                Limit {
                    name: "GCP: min_ports_per_vm ports per VM per destination",
                    per: "VM (container) and destination (IP, port, protocol)",
                    limit: per_vm,
                    planned: busiest_path,
                    status: LimitStatus::Binds,
                    decides: format!(
                        "{} per Cloud NAT gateway, min_ports_per_vm = {per_vm}",
                        plural(c, "VM", "VMs")
                    ),
                    change: "raise min_ports_per_vm (--ports-per-vm; or use dynamic port \
                             allocation), more VMs (--containers-per-host), or spread the load \
                             over more destinations"
                        .into(),
                },
                Limit {
                    name: "GCP: 64,512 ports per NAT IP",
                    per: "NAT IP (VMs it holds: 64,512 / min_ports_per_vm)",
                    limit: v,
                    planned: c.min(v),
                    status: status(m > 1),
                    decides: format!("{} per Cloud NAT gateway", plural(m, "NAT IP", "NAT IPs")),
                    change: "add NAT IP addresses (--source-addresses), or a smaller \
                             min_ports_per_vm so one NAT IP holds more VMs"
                        .into(),
                },
            ]
        }
        CloudProfile::AzureLbOutbound => {
            let per_ip = CloudProfile::AzureLbOutbound.address_ports().size();
            vec![
                Limit {
                    name: "Azure: SNAT ports per VM by backend pool size",
                    per: "VM (container) and destination (x frontend IPs, at most 1,024)",
                    limit: per_vm,
                    planned: busiest_path,
                    status: LimitStatus::Binds,
                    decides: format!(
                        "{} per backend pool, {per_vm} ports each",
                        plural(c, "VM", "VMs")
                    ),
                    change: "add frontend IPs (--source-addresses), set the outbound rule's \
                             ports per instance explicitly (or use a NAT gateway), or spread \
                             the load over more destinations"
                        .into(),
                },
                Limit {
                    name: "Azure: 64,000 SNAT ports per frontend IP",
                    per: "frontend IP",
                    limit: u64::from(per_ip),
                    planned: (c * per_vm).div_ceil(m.max(1)),
                    status: status(m > 1),
                    decides: format!(
                        "{} per load balancer",
                        plural(m, "frontend IP", "frontend IPs")
                    ),
                    change: "add frontend IPs (--source-addresses): each multiplies the ports \
                             per VM, up to 1,024"
                        .into(),
                },
            ]
        }
    }
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
    let profile = layout.nat.profile();
    let mut out = match profile {
        Some(p) => cloud_limits(layout, shape, p),
        None => Vec::new(),
    };
    let kernel = vec![
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
            decides: if profile.is_some() {
                format!(
                    "{} (client hosts)",
                    plural(client_hosts, "NAT gateway", "NAT gateways")
                )
            } else {
                plural(client_hosts, "client host", "client hosts")
            },
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
    ];
    // A cloud's limits take the place of nf_nat's ports.
    let skip = usize::from(profile.is_some());
    out.extend(kernel.into_iter().skip(skip));
    out
}
