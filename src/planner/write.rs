//! A planned layout as a lab file, and the [`Layout`] read back from it: the text is loaded
//! through the validator like any lab file, and its NAT paths (`nat::paths`), machine estimate
//! (`lab::capacity`) and agent processes (`workload::share`) are what the plan reports, so
//! `lab check` and `lab run` of the written file agree with the plan by construction. A file
//! whose prediction is not exactly the planned count is a planner bug, reported as such.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddrV4};

use anyhow::{Result, anyhow};
use serde::Serialize;

use super::limits::{self, Limit};
use super::{Machine, NatChoice, Request, Shape, path_fill};
use crate::lab::capacity::Capacity;
use crate::lab::cloud::CloudProfile;
use crate::lab::limits::GlobalLimit;
use crate::lab::{LoadOptions, Plan, Source, load};
use crate::nat::form::HostNat;
use crate::nat::paths::predict_lab;
use crate::workload::share::{client_processes, server_processes};

/// Every client host's Docker bridge, as Docker's default network has it.
pub const DOCKER_SUBNET: &str = "172.17.0.0/16";

/// The address the validator gives a host's j-th container (from .2, after the gateway).
pub fn container_address(j: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(172, 17, 0, 2)).wrapping_add(j))
}

/// The i-th LAN address of client host h (both from 0): .101 upwards.
fn client_address(shape: &Shape, h: u32, i: u32) -> Ipv4Addr {
    let octet = 101 + h * shape.sources + i;
    Ipv4Addr::new(192, 168, 49, u8::try_from(octet).unwrap_or(u8::MAX))
}

/// The plan as `lab plan` shows it and `--json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct Layout {
    /// The `lab plan` command line of the request.
    pub command: String,
    pub connections: u64,
    pub port: u16,
    pub nat: NatChoice,
    pub lab: String,
    pub client_hosts: Vec<PlannedHost>,
    pub server: PlannedServer,
    pub containers_per_host: u32,
    pub connections_per_container: Span,
    pub local_ports: LocalPorts,
    pub path_capacity: u32,
    pub path_fill: u32,
    /// The cloud whose NAT each client host plays, with its published numbers; `None` for
    /// the kernel's NAT.
    pub cloud: Option<PlannedCloud>,
    pub paths: Vec<PlannedPath>,
    pub limits: Vec<Limit>,
    pub decisions: Vec<String>,
    /// Global limits the written file lets `lab run` raise.
    pub raise: Vec<GlobalLimit>,
    /// What would stop `lab run` on this machine; empty when the plan fits.
    pub problems: Vec<String>,
    pub capacity: Capacity,
    pub machine: Machine,
    pub lab_file: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlannedHost {
    pub name: String,
    pub addresses: Vec<Ipv4Addr>,
    /// The NAT rule in words.
    pub nat: String,
    pub containers: u32,
    pub connections: u64,
    pub processes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlannedServer {
    pub name: String,
    pub addresses: Vec<Ipv4Addr>,
    pub processes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Span {
    pub min: u64,
    pub max: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LocalPorts {
    pub first: u16,
    pub last: u16,
    pub ports: u32,
    /// Set to "1024 65535" in the containers; else Docker's default, left alone.
    pub widened: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlannedPath {
    pub host: String,
    pub source: Ipv4Addr,
    pub server: SocketAddrV4,
    /// The VM's own block of ports when the path is one VM's (GCP, Azure).
    pub vm_ports: Option<PortSpan>,
    pub containers: Vec<String>,
    pub connections: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PortSpan {
    pub first: u16,
    pub last: u16,
}

/// A cloud's NAT as planned: each client host is one of its NAT gateways (AWS), Cloud NAT
/// gateways (GCP) or load balancers (Azure).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedCloud {
    pub profile: CloudProfile,
    pub product: &'static str,
    /// Where the numbers are published.
    pub source: &'static str,
    pub gateways: u32,
    /// NAT addresses per gateway (AWS: up to 8; GCP: NAT IPs; Azure: frontend IPs).
    pub addresses_per_gateway: u32,
    /// Ports each NAT address offers: 55,000 per destination (AWS), 64,512 (GCP), 64,000
    /// (Azure).
    pub ports_per_address: u32,
    /// GCP's `min_ports_per_vm`, Azure's preallocation for the pool; `None` for AWS.
    pub ports_per_vm: Option<u32>,
    /// VMs one address holds with those blocks; `None` for AWS.
    pub vms_per_address: Option<u32>,
    /// How the cloud shows the wall.
    pub symptom: &'static str,
}

/// The client groups of host h: (name, members, connections each, first container index).
fn host_groups(req: &Request, shape: &Shape, h: u32) -> Vec<(String, u32, u32, u64)> {
    let n = req.connections.get();
    let more = shape.fuller_containers(n, h);
    let mut out = Vec::new();
    if more > 0 {
        out.push((
            format!("h{}-load", h + 1),
            0,
            more,
            shape.connections_of(n, true),
        ));
    }
    if more < shape.containers {
        let name = if more > 0 { "rest" } else { "load" };
        out.push((
            format!("h{}-{name}", h + 1),
            more,
            shape.containers - more,
            shape.connections_of(n, false),
        ));
    }
    out
}

fn quoted<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    let items: Vec<String> = items.into_iter().map(|i| format!("\"{i}\"")).collect();
    format!("[{}]", items.join(", "))
}

/// The lab file of `shape`.
pub fn lab_text(
    req: &Request,
    shape: &Shape,
    name: &str,
    decisions: &[String],
    raise: &[GlobalLimit],
) -> String {
    let n = req.connections.get();
    let port = req.port;
    let mut t = String::new();
    let _ = writeln!(t, "name = \"{name}\"");
    let _ = writeln!(
        t,
        "description = \"\"\"Planned by `{}`: {n} connections.\n{}\"\"\"\n",
        req.command_line(),
        decisions.join("\n")
    );
    let _ = writeln!(t, "[lans.lan]\nsubnet = \"192.168.49.0/24\"\n");
    let _ = writeln!(
        t,
        "[hosts.server]\nlan = \"lan\"\naddresses = {}\n",
        quoted(&shape.servers)
    );
    for h in 0..shape.hosts {
        let addresses: Vec<Ipv4Addr> = (0..shape.sources)
            .map(|i| client_address(shape, h, i))
            .collect();
        let nat = match (req.nat, shape.ports_per_vm) {
            (NatChoice::Masquerade, _) => "\"masquerade\"".to_string(),
            (NatChoice::SnatPool, _) => format!("{{ snat = {} }}", quoted(&addresses)),
            (NatChoice::GcpCloudNat, Some(p)) => {
                format!("{{ profile = \"gcp-cloud-nat\", min_ports_per_vm = {p} }}")
            }
            (cloud, _) => format!("{{ profile = \"{}\" }}", cloud.as_str()),
        };
        let _ = writeln!(
            t,
            "[hosts.client{h1}]\nlan = \"lan\"\naddresses = {}\n\n[hosts.client{h1}.docker]\n\
             bridge = \"docker0\"\nsubnet = \"{DOCKER_SUBNET}\"\nnat = {nat}\n\n\
             [containers.h{h1}c]\nhost = \"client{h1}\"\nreplicas = {}",
            quoted(&addresses),
            shape.containers,
            h1 = h + 1,
        );
        if shape.wide_ports {
            let _ = writeln!(
                t,
                "sysctls = {{ \"net.ipv4.ip_local_port_range\" = \"1024 65535\" }}"
            );
        }
        t.push('\n');
    }
    let _ = writeln!(t, "[servers.srv]\nhost = \"server\"\nport = {port}\n");
    let k = shape.servers.len() as u32;
    for h in 0..shape.hosts {
        for (group, first, count, each) in host_groups(req, shape, h) {
            let members = if count == shape.containers {
                quoted([format!("h{}c", h + 1)])
            } else {
                quoted((first..first + count).map(|j| format!("h{}c{}", h + 1, j + 1)))
            };
            // The group's i-th container is the host's (first + i)-th, whose slot is that mod K.
            let connect =
                quoted((0..k.min(count)).map(|i| {
                    SocketAddrV4::new(shape.servers[((first + i) % k) as usize], port.get())
                }));
            let _ = writeln!(
                t,
                "[clients.{group}]\ncontainers = {members}\nconnect = {connect}\nconnections = {each}\n"
            );
        }
    }
    if !raise.is_empty() {
        let _ = writeln!(
            t,
            "# Both ends of every connection hold an open file on this machine.\n[machine]\nraise = {}\n",
            quoted(raise.iter().map(|l| l.key()))
        );
    }
    let _ = writeln!(t, "[expect]\nestablished = {n}");
    t
}

/// Loads a written lab file; a rejection is a planner bug.
fn load_text(text: &str, name: &str) -> Result<Plan> {
    let source = Source::new(format!("{name}.toml"), text.to_string());
    load(&source, &LoadOptions::default())
        .map(|l| l.plan)
        .map_err(|d| {
            let why: Vec<String> = d.iter().map(|d| source.render(d)).collect();
            anyhow!(
                "the planned lab file does not load (a planner bug):\n{}",
                why.join("")
            )
        })
}

/// The layout of `shape`: its lab file, loaded back and measured by the engine's own
/// prediction and estimate.
pub fn layout(req: &Request, machine: &Machine, shape: &Shape, name: &str) -> Result<Layout> {
    let n = req.connections.get();
    let decisions = limits::decisions(req, machine, shape);
    let mut raise = Vec::new();
    let mut text = lab_text(req, shape, name, &decisions, &raise);
    let mut plan = load_text(&text, name)?;
    let resources = machine.resources();
    let first = Capacity::estimate(&plan, &resources);
    // fs.file-max is shared with the machine's other processes, whose count moves: below a
    // tenth of room, the file lets `lab run` raise it (it only does if the run needs it).
    let free = machine.file_max.saturating_sub(machine.files_in_use);
    let file_need = first.needs.iter().any(|x| x.limit == GlobalLimit::FileMax);
    if file_need || first.open_files > free / 10 * 9 {
        raise.push(GlobalLimit::FileMax);
        text = lab_text(req, shape, name, &decisions, &raise);
        plan = load_text(&text, name)?;
    }
    let capacity = Capacity::estimate(&plan, &resources);

    let fill = path_fill(shape.path_capacity);
    let predicted = predict_lab(&plan);
    let mut paths = Vec::new();
    let mut established = 0u64;
    for hp in &predicted {
        for p in &hp.prediction.paths {
            established += p.established;
            if p.capacity != shape.path_capacity {
                return Err(anyhow!(
                    "planned path {} -> {} holds {} connections, not the {} planned (a planner bug)",
                    p.translated,
                    p.dst,
                    p.capacity,
                    shape.path_capacity
                ));
            }
            if p.wanted > u64::from(fill) || p.overflow {
                return Err(anyhow!(
                    "planned path {} -> {} wants {} connections, more than the {fill} planned \
                     (a planner bug)",
                    p.translated,
                    p.dst,
                    p.wanted
                ));
            }
            paths.push(PlannedPath {
                host: hp.name.clone(),
                source: p.translated,
                server: p.dst,
                vm_ports: p.vm_ports.map(|b| PortSpan {
                    first: b.first,
                    last: b.last,
                }),
                containers: p.containers.clone(),
                connections: p.wanted,
            });
        }
    }
    if established != n || capacity.connections != n {
        return Err(anyhow!(
            "the planned lab predicts {established} connections, not {n} (a planner bug)"
        ));
    }

    let per_process = machine.open_files_per_process;
    let client_hosts = plan
        .hosts
        .iter()
        .enumerate()
        .filter(|(_, host)| host.docker.is_some())
        .map(|(i, host)| {
            let mine = plan.clients.iter().flat_map(|g| {
                g.containers
                    .iter()
                    .filter(|&&c| plan.container(c).host.0 == i)
                    .map(|_| g.connections.get())
            });
            let (mut containers, mut connections, mut processes) = (0, 0, 0);
            for each in mine {
                containers += 1;
                connections += u64::from(each);
                processes += client_processes(each, None, per_process);
            }
            PlannedHost {
                name: host.name.to_string(),
                addresses: host.addresses.clone(),
                nat: host
                    .docker
                    .as_ref()
                    .map_or_else(
                        || HostNat::untranslated(host),
                        |d| HostNat::of(host, &d.default_bridge),
                    )
                    .to_string(),
                containers,
                connections,
                processes,
            }
        })
        .collect();
    let counts: Vec<u64> = plan
        .clients
        .iter()
        .map(|g| u64::from(g.connections.get()))
        .collect();
    let (lo, hi) = if shape.wide_ports {
        (1024, 65_535)
    } else {
        (32_768, 60_999)
    };
    let mut layout = Layout {
        command: req.command_line(),
        connections: n,
        port: req.port.get(),
        nat: req.nat,
        lab: name.to_string(),
        client_hosts,
        server: PlannedServer {
            name: "server".into(),
            addresses: shape.servers.clone(),
            processes: server_processes(n, None, per_process),
        },
        containers_per_host: shape.containers,
        connections_per_container: Span {
            min: counts.iter().copied().min().unwrap_or(0),
            max: counts.iter().copied().max().unwrap_or(0),
        },
        local_ports: LocalPorts {
            first: lo,
            last: hi,
            ports: u32::from(hi) - u32::from(lo) + 1,
            widened: shape.wide_ports,
        },
        path_capacity: shape.path_capacity,
        path_fill: fill,
        cloud: req.nat.profile().map(|profile| PlannedCloud {
            profile,
            product: profile.product(),
            source: profile.source(),
            gateways: shape.hosts,
            addresses_per_gateway: shape.sources,
            ports_per_address: profile.address_ports().size(),
            ports_per_vm: shape.ports_per_vm,
            vms_per_address: shape
                .ports_per_vm
                .map(|p| profile.address_ports().size() / p),
            symptom: profile.symptom(),
        }),
        paths,
        limits: Vec::new(),
        decisions,
        raise,
        problems: capacity.problems(),
        capacity,
        machine: *machine,
        lab_file: text,
    };
    layout.limits = limits::limits(&layout, shape);
    Ok(layout)
}
