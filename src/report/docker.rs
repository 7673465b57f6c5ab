//! `lab show FILE --docker`: the same lab on real Docker, as `docker network create` and
//! `docker run` commands or as a compose file per Docker host, with the caveats Docker really
//! has. Pure text from the `Plan`.
//!
//! The translation comes first ([`translate`]: which Docker networks each host needs, which
//! container goes on which, with what address), then two renderings of it. Docker's default
//! bridge cannot take `com.docker.network.host_ipv4`, and `host_ipv4` is one address, so a
//! lab's SNAT pool becomes one user-defined network per pool address, and the containers are
//! spread over them here, by name, where the lab's kernel hashes each (container, server) pair
//! to an address.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddrV4};

use ipnet::Ipv4Net;

use super::commands::q;
use super::count;
use crate::lab::plan::{
    ClientGroup, Container, DEFAULT_BRIDGE_NETWORK, Docker, DockerNet, FirewallBackend, Host,
    IFNAME_MAX, IfName, Nat, NetworkId, Plan, PortRange, Sysctl,
};
use crate::lab::validate::CONTAINER_SYSCTLS;
use crate::workload::program::{Launch, client_launch, server_launch};

/// The image line every rendering starts from: lab's own client is built into `lab`, so the
/// load tester's image is the reader's to name.
const IMAGE_DEFAULT: &str = "your/load-tester";

/// Docker's default bridge subnet (dockerd's `bip` unset): taken on every Docker host.
const DOCKER0_SUBNET: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(172, 17, 0, 0), 16);

/// The source ports the kernel's NAT picks from for a connection from port 1024 or above,
/// and so the connections one NAT path holds: 1024-65535.
const NAT_PATH_PORTS: u64 = 64_512;

/// A Docker host of the lab on real Docker.
#[derive(Debug)]
struct DockerHost<'a> {
    host: &'a Host,
    networks: Vec<Network>,
    /// The host's containers, in plan order.
    members: Vec<Member<'a>>,
    caveats: Vec<String>,
}

/// One Docker network the containers of a host use.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Network {
    /// Docker's name for it.
    name: String,
    /// `None`: Docker's default bridge (`docker0`), which every daemon has and nobody creates.
    create: Option<Create>,
    /// What connections from it leave the host as, in words.
    leaves_as: String,
}

/// What `docker network create` is told.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Create {
    bridge: IfName,
    subnet: Ipv4Net,
    gateway: Ipv4Addr,
    /// `com.docker.network.host_ipv4`.
    host_ipv4: Option<Ipv4Addr>,
    /// `com.docker.network.bridge.enable_ip_masquerade` (Docker's default is true).
    masquerade: bool,
}

/// A container on one of its host's Docker networks.
#[derive(Debug)]
struct Member<'a> {
    container: &'a Container,
    /// Index into `DockerHost::networks`.
    network: usize,
    /// `--ip`; `None` on the default bridge, where Docker refuses it.
    ip: Option<Ipv4Addr>,
    /// The client groups it is in, with its index in each (which picks its target).
    clients: Vec<(&'a ClientGroup, usize)>,
}

/// Where a lab network's containers go on Docker: one network, or several they are spread
/// over.
struct Placement {
    networks: Vec<usize>,
    /// The lab's addresses stay (the network is kept as it is); else each container gets the
    /// next address of its new network.
    keep_addresses: bool,
}

/// Subnets for the networks a lab's own do not give: Docker's default address pools (172.18
/// to 172.31 as /16s, then 192.168.0.0/16 as /20s), then 10.0.0.0/8 as /16s, each clear of
/// every subnet of the lab, of docker0's 172.17.0.0/16, and of those already handed out.
struct Subnets {
    taken: Vec<Ipv4Net>,
}

impl Subnets {
    fn of(plan: &Plan) -> Self {
        let mut taken: Vec<Ipv4Net> = plan.lans.iter().map(|l| l.subnet).collect();
        for d in plan.hosts.iter().filter_map(|h| h.docker.as_ref()) {
            taken.extend(d.all_networks().map(|n| n.subnet));
        }
        taken.push(DOCKER0_SUBNET);
        Self { taken }
    }

    fn next(&mut self) -> Result<Ipv4Net, String> {
        let net = |a, b, c, len| Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, 0), len);
        let docker_16s = (18..=31).map(|b| net(172, b, 0, 16));
        let docker_20s = (0..16u8).map(|i| net(192, 168, 16 * i, 20));
        let tens = (0..=255).map(|b| net(10, b, 0, 16));
        let free = docker_16s
            .chain(docker_20s)
            .chain(tens)
            .find(|c| !self.taken.iter().any(|t| t.contains(c) || c.contains(t)));
        let free = free.ok_or("no free subnet left in Docker's address pools or 10.0.0.0/8")?;
        self.taken.push(free);
        Ok(free)
    }
}

/// The lab's Docker hosts on real Docker, in plan order.
fn translate(plan: &Plan) -> Result<Vec<DockerHost<'_>>, String> {
    let mut subnets = Subnets::of(plan);
    let mut out = Vec::new();
    for (hi, host) in plan.hosts.iter().enumerate() {
        let Some(docker) = &host.docker else {
            continue;
        };
        let mut networks = Vec::new();
        let mut placements = Vec::new();
        let mut caveats = Vec::new();
        if docker.firewall == FirewallBackend::Nftables {
            caveats.push(
                "This host's Docker writes its rules with the nftables backend, as the lab's \
                 `firewall = \"nftables\"`: put {\"firewall-backend\": \"nftables\"} in \
                 /etc/docker/daemon.json and restart dockerd (Docker 29+, experimental, not with \
                 Swarm; it needs net.ipv4.ip_forward=1 set first)."
                    .into(),
            );
        }
        for (li, net) in docker.all_networks().enumerate() {
            placements.push(place(
                plan,
                host,
                docker,
                li,
                net,
                &mut subnets,
                &mut networks,
                &mut caveats,
            )?);
        }
        let containers: Vec<&Container> =
            plan.containers.iter().filter(|c| c.host.0 == hi).collect();
        let members = spread(plan, &containers, &placements, &networks);
        if !members.is_empty() {
            caveats.push(
                "Docker 28+ gives each container a random MAC; the lab uses 02:42 + the address, \
                 as Docker 27 and older did (add --mac-address to fix one)."
                    .into(),
            );
        }
        caveats.extend(program_caveats(plan, &members));
        // Several networks of a pool say the same about Docker once.
        let mut seen = Vec::new();
        caveats.retain(|c| {
            let first = !seen.contains(c);
            seen.push(c.clone());
            first
        });
        out.push(DockerHost {
            host,
            networks,
            members,
            caveats,
        });
    }
    Ok(out)
}

/// The Docker networks lab network `li` of a host becomes, pushed onto `networks`.
#[allow(clippy::too_many_arguments)]
fn place(
    plan: &Plan,
    host: &Host,
    docker: &Docker,
    li: usize,
    net: &DockerNet,
    subnets: &mut Subnets,
    networks: &mut Vec<Network>,
    caveats: &mut Vec<String>,
) -> Result<Placement, String> {
    let is_default = li == 0;
    let name = lab_network_name(docker, li);
    let called = if is_default {
        "the default bridge".to_owned()
    } else {
        format!("network {name}")
    };
    let primary = host.addresses[0];
    let first = networks.len();
    let mut fresh = |n: usize| -> Result<Create, String> {
        let subnet = subnets.next()?;
        Ok(Create {
            bridge: bridge_name(&plan.name.to_string(), n),
            subnet,
            gateway: first_host(subnet),
            host_ipv4: None,
            masquerade: true,
        })
    };
    let kept = || Create {
        bridge: net.bridge.clone(),
        subnet: net.subnet,
        gateway: net.gateway,
        host_ipv4: None,
        masquerade: true,
    };
    let has_containers = plan
        .containers
        .iter()
        .any(|c| c.network.0 == li && plan.host(c.host).name == host.name);
    if is_default && has_containers {
        caveats.push(format!(
            "docker0, Docker's default bridge, cannot take com.docker.network.host_ipv4: dockerd \
             has no flag for it, and daemon.json's default-network-opts reach user-defined \
             networks only. Containers on docker0 leave as the host's primary address, \
             {primary}, through MASQUERADE: one NAT path of {} ports per server address and \
             port, the wall. Another source address needs a user-defined network.",
            count(NAT_PATH_PORTS)
        ));
    }
    let no_ports = |what: &str, ports: &Option<PortRange>, caveats: &mut Vec<String>| {
        if let Some(p) = ports {
            caveats.push(format!(
                "ports = \"{p}\" on {called} has no Docker equivalent: Docker's {what} takes no \
                 port range, so on Docker the kernel picks source ports from 1024-65535 and a \
                 path holds {} connections, not the lab's {}.",
                count(NAT_PATH_PORTS),
                count(u64::from(p.size()))
            ));
        }
    };
    // What Docker has no switch for: said once, then the nearest thing Docker writes.
    let as_docker;
    let nat =
        match &net.nat {
            Nat::Cloud(c) => {
                caveats.push(format!(
                "{called} plays {} ({} ports per {}): that NAT is the cloud's, outside the host, \
                 so Docker masquerades to the host's address and the cloud translates again, with \
                 the same limit ({}).",
                c.profile.product(),
                count(u64::from(
                    c.ports_per_vm
                        .unwrap_or_else(|| c.profile.address_ports().size())
                )),
                if c.profile.per_vm() { "VM" } else { "address and destination" },
                c.profile.source()
            ));
                as_docker = Nat::MASQUERADE;
                &as_docker
            }
            Nat::Masquerade {
                random_fully: true, ..
            }
            | Nat::Snat {
                random_fully: true, ..
            } => {
                caveats.push(format!(
                    "random_fully on {called} is kube-proxy's --random-fully: Docker has no option \
                 for it (its rules keep the container's port when free)."
                ));
                &net.nat
            }
            other => other,
        };
    match nat {
        // Made a masquerade above.
        Nat::Cloud(_) => Ok(Placement {
            networks: vec![first],
            keep_addresses: !is_default,
        }),
        Nat::Masquerade { ports, .. } => {
            no_ports("MASQUERADE", ports, caveats);
            let create = if is_default {
                if net.subnet != DOCKER0_SUBNET {
                    caveats.push(format!(
                        "The lab's default bridge is {}: on Docker that is daemon.json's \
                         \"bip\": \"{}/{}\" (docker0 is 172.17.0.0/16 without it).",
                        net.subnet,
                        net.gateway,
                        net.subnet.prefix_len()
                    ));
                }
                None
            } else {
                Some(kept())
            };
            networks.push(Network {
                name,
                create,
                leaves_as: format!("{primary}, the host's primary address (MASQUERADE)"),
            });
            Ok(Placement {
                networks: vec![first],
                keep_addresses: !is_default,
            })
        }
        Nat::None => {
            let create = if is_default { fresh(1)? } else { kept() };
            let subnet = create.subnet;
            caveats.push(format!(
                "nat = \"none\" is a user-defined network with \
                 com.docker.network.bridge.enable_ip_masquerade=false (on docker0 it would take \
                 dockerd --ip-masq=false for every container there): containers leave with \
                 their own addresses, so every other host needs a route to {subnet} via \
                 {primary} (shown with that host)."
            ));
            networks.push(Network {
                name: if is_default {
                    format!("{}-nonat", plan.name)
                } else {
                    name
                },
                create: Some(Create {
                    masquerade: false,
                    ..create
                }),
                leaves_as: "their own addresses (no NAT)".into(),
            });
            Ok(Placement {
                networks: vec![first],
                keep_addresses: !is_default,
            })
        }
        Nat::Snat {
            pool,
            ports,
            persistent,
            ..
        } => {
            no_ports("SNAT", ports, caveats);
            if *persistent {
                caveats.push(format!(
                    "persistent on {called} has no Docker equivalent: with one address per network \
                     there is no choice among addresses left to keep."
                ));
            }
            let split = is_default || pool.len() > 1;
            for (i, &addr) in pool.iter().enumerate() {
                let create = if split { fresh(i + 1)? } else { kept() };
                networks.push(Network {
                    name: if is_default {
                        format!("{}-snat{}", plan.name, i + 1)
                    } else if split {
                        format!("{name}-{}", i + 1)
                    } else {
                        name.clone()
                    },
                    create: Some(Create {
                        host_ipv4: Some(addr),
                        ..create
                    }),
                    leaves_as: format!("{addr} (host_ipv4)"),
                });
            }
            let range = match (pool.first(), pool.last()) {
                (Some(a), Some(b)) if a != b => format!("{a}-{b}"),
                (Some(a), _) => a.to_string(),
                _ => String::new(),
            };
            if split {
                caveats.push(format!(
                "host_ipv4 is one address, not a pool: Docker writes `SNAT --to-source ADDR` with \
                 no range and has no per-container source address. The lab's pool {range} on \
                 {called} becomes {} network{}, one per address, and the containers are spread \
                 over them here, deliberately, so that no (address, server) path carries more \
                 than it must; the lab's kernel hashes each (container, server) pair to a pool \
                 address instead, so a container may leave as another address than in the lab.",
                pool.len(),
                if pool.len() == 1 { "" } else { "s" }
            ));
            }
            caveats.push(
                "The host_ipv4 addresses must be on this machine (the `ip addr add` lines): \
                 Docker does not check (its own test uses 172.0.0.172), and SNAT to an address \
                 the host does not have sends SYNs whose replies never come back."
                    .into(),
            );
            caveats.push(format!(
                "Both firewall backends honour host_ipv4: iptables writes `-t nat -A POSTROUTING \
                 -s SUBNET ! -o BRIDGE -j SNAT --to-source ADDR`, nftables (daemon.json \
                 \"firewall-backend\": \"nftables\", Docker 29+) `oifname != \"BRIDGE\" ip saddr \
                 SUBNET counter snat to ADDR comment \"SNAT\"`. The lab imitates {}.",
                backend(docker.firewall)
            ));
            Ok(Placement {
                networks: (first..networks.len()).collect(),
                keep_addresses: !split,
            })
        }
    }
}

fn backend(b: FirewallBackend) -> &'static str {
    match b {
        FirewallBackend::IptablesNft => "iptables (Docker's default, stored by iptables-nft)",
        FirewallBackend::Nftables => {
            "Docker 29's nftables backend (set \"firewall-backend\": \"nftables\" in \
             /etc/docker/daemon.json and restart dockerd)"
        }
    }
}

/// Docker's name for the lab's network `li` of a host (0 is the default bridge, `bridge`).
fn lab_network_name(docker: &Docker, li: usize) -> String {
    docker
        .network(NetworkId(li))
        .map_or_else(|| DEFAULT_BRIDGE_NETWORK.into(), |net| net.name.to_string())
}

/// The lab network a container is on, as an index into [`Docker::all_networks`].
fn lab_network_of(container: &Container) -> usize {
    container.network.0
}

/// `br-<lab>-<n>`, the lab's name cut so that the whole fits IFNAMSIZ.
fn bridge_name(lab: &str, n: usize) -> IfName {
    let suffix = format!("-{n}");
    let room = IFNAME_MAX - "br-".len() - suffix.len();
    let stem: String = lab.chars().take(room).collect();
    let name = format!("br-{}{suffix}", stem.trim_end_matches(['-', '.', '_']));
    // A lab name is letters, digits, `-`, `_` and `.`, never a name the kernel refuses.
    IfName::new(&name).unwrap_or_else(|_| IfName::eth0())
}

fn first_host(subnet: Ipv4Net) -> Ipv4Addr {
    subnet.hosts().next().unwrap_or(subnet.network())
}

/// The host's containers on the networks their lab networks became. Where there are several
/// (a pool), each container goes where its target's path carries the fewest connections so
/// far, then where the fewest containers are, then the first: round-robin when every
/// container has the same target and count.
fn spread<'a>(
    plan: &'a Plan,
    containers: &[&'a Container],
    placements: &[Placement],
    networks: &[Network],
) -> Vec<Member<'a>> {
    let mut path_load: HashMap<(usize, Option<SocketAddrV4>), u64> = HashMap::new();
    let mut on_network = vec![0usize; networks.len()];
    let mut next_ip: HashMap<usize, u32> = HashMap::new();
    let mut members = Vec::new();
    for &c in containers {
        let clients = clients_of(plan, c);
        let target = clients.first().map(|(g, i)| g.target_of(*i));
        let load: u64 = clients
            .iter()
            .map(|(g, _)| u64::from(g.connections.get()))
            .sum();
        let Some(placement) = placements.get(lab_network_of(c)) else {
            continue;
        };
        let Some(&network) = placement.networks.iter().min_by_key(|&&n| {
            (
                path_load.get(&(n, target)).copied().unwrap_or(0),
                on_network[n],
            )
        }) else {
            continue;
        };
        *path_load.entry((network, target)).or_default() += load;
        on_network[network] += 1;
        let ip = match &networks[network].create {
            None => None,
            Some(_) if placement.keep_addresses => Some(c.address),
            Some(create) => {
                let nth = next_ip.entry(network).or_insert(1);
                *nth += 1;
                Some(Ipv4Addr::from(u32::from(create.subnet.network()) + *nth))
            }
        };
        members.push(Member {
            container: c,
            network,
            ip,
            clients,
        });
    }
    members
}

fn clients_of<'a>(plan: &'a Plan, c: &Container) -> Vec<(&'a ClientGroup, usize)> {
    plan.clients
        .iter()
        .filter_map(|g| {
            g.containers
                .iter()
                .position(|&id| plan.container(id).netns == c.netns)
                .map(|i| (g, i))
        })
        .collect()
}

/// What a container's one process cannot be that the lab's are.
fn program_caveats(plan: &Plan, members: &[Member]) -> Vec<String> {
    let mut out = Vec::new();
    for g in &plan.clients {
        let here = members
            .iter()
            .any(|m| m.clients.iter().any(|(mg, _)| mg.name == g.name));
        if !here {
            continue;
        }
        if let (Some(_), Some(p)) = (&g.command, g.processes.filter(|p| p.get() > 1)) {
            out.push(format!(
                "lab starts {p} copies of {}'s command in each container, each with its share of \
                 the connections; one `docker run` starts one, so here it is given the \
                 container's whole count.",
                g.name
            ));
        }
    }
    let shared = members.iter().filter(|m| m.clients.len() > 1);
    for m in shared {
        out.push(format!(
            "{} is in {} client groups; a container runs one command, so only {}'s is shown.",
            m.container.name,
            m.clients.len(),
            m.clients[0].0.name
        ));
    }
    out
}

/// The container's sysctls Docker is told: the namespaced `net.*` ones (all a lab accepts)
/// that Docker does not set in every container by itself.
fn docker_sysctls(c: &Container) -> impl Iterator<Item = &Sysctl> {
    c.sysctls.iter().filter(|sc| {
        sc.key().starts_with("net.") && !CONTAINER_SYSCTLS.contains(&(sc.key(), sc.value()))
    })
}

/// One container's command after the image, filled as `lab run` fills it for a single process,
/// and its `LAB_*` environment; `None` for lab's built-in client.
fn program(plan: &Plan, m: &Member) -> Option<Launch> {
    let &(group, i) = m.clients.first()?;
    let command = group.command.as_ref()?;
    Some(client_launch(
        plan,
        group,
        m.container,
        group.target_of(i),
        command,
        0,
        1,
    ))
}

/// What the built-in client would do in a container, for the reader's load tester.
fn built_in_client(m: &Member) -> Option<String> {
    let &(group, i) = m.clients.first()?;
    if group.command.is_some() {
        return None;
    }
    Some(format!(
        "{} (lab's built-in client): {} connections to {}, a ping on each every {} s",
        group.name,
        count(u64::from(group.connections.get())),
        group.target_of(i),
        group.ping_interval.as_secs_f64()
    ))
}

/// The lab as shell commands: per host, the addresses it needs, then on a Docker host its
/// networks and containers.
pub fn commands(plan: &Plan) -> Result<String, String> {
    let hosts = translate(plan)?;
    let mut s = String::new();
    let _ = writeln!(s, "#!/bin/sh");
    let _ = writeln!(
        s,
        "# lab {} on real Docker: the networks and containers that give the containers the \
         lab's source addresses.",
        plan.name
    );
    let _ = writeln!(
        s,
        "# Each host's part is for that machine; `#   ` lines are for you to run there by hand."
    );
    let _ = writeln!(s, "set -e");
    let _ = writeln!(
        s,
        "# The load tester's image (lab's own client is built into lab, not an image):"
    );
    let _ = writeln!(s, "IMAGE=${{IMAGE:-{IMAGE_DEFAULT}}}");
    for host in &plan.hosts {
        let _ = writeln!(s);
        match hosts.iter().find(|d| std::ptr::eq(d.host, host)) {
            Some(d) => docker_host_commands(&mut s, plan, &hosts, d),
            None => {
                let _ = writeln!(s, "# ==== host {}: no Docker", host.name);
                host_hints(&mut s, plan, &hosts, host);
            }
        }
    }
    Ok(s)
}

/// What a machine needs besides Docker, as comments: its extra addresses, sysctls, routes to
/// other hosts' untranslated networks, and the servers that run on it.
fn host_hints(s: &mut String, plan: &Plan, hosts: &[DockerHost], host: &Host) {
    let extra = &host.addresses[1..];
    if !extra.is_empty() {
        let _ = writeln!(
            s,
            "# Its addresses must be on this machine, {} first{}:",
            host.addresses[0],
            if host.docker.is_some() {
                " (the primary, what MASQUERADE picks)"
            } else {
                ""
            }
        );
        for a in extra {
            let _ = writeln!(s, "#   ip addr add {a}/{} dev eth0", host.prefix_len);
        }
    }
    for sc in &host.sysctls {
        let _ = writeln!(s, "#   sysctl -w {}={}", q(sc.key()), q(sc.value()));
    }
    for (subnet, via) in routes_to_untranslated(hosts, host) {
        let _ = writeln!(s, "#   ip route add {subnet} via {via}");
    }
    for server in plan
        .servers
        .iter()
        .filter(|sv| std::ptr::eq(plan.host(sv.host), host))
    {
        let on = format!(
            "on this machine itself (not in a container), port {} of every address",
            server.port
        );
        match &server.command {
            Some(command) => {
                let processes = server.processes.map_or(1, |p| p.get());
                let argv = server_launch(plan, server, command, 0, processes).argv;
                let words: Vec<String> = argv.iter().map(|a| q(a)).collect();
                let _ = writeln!(s, "# server {}: your program, {on}:", server.name);
                let _ = writeln!(s, "#   {}", words.join(" "));
                if processes > 1 {
                    let _ = writeln!(
                        s,
                        "#   ({processes} copies sharing the port with SO_REUSEPORT, {{process}} \
                         0 to {})",
                        processes - 1
                    );
                }
            }
            None => {
                let text = format!(
                    "server {}: lab's built-in server; run yours {on}, with a listen backlog of \
                     {}",
                    server.name,
                    crate::lab::plan::SERVER_BACKLOG
                );
                comment(s, "", &text);
            }
        }
    }
}

/// The routes `host` needs to the untranslated networks of the other Docker hosts.
fn routes_to_untranslated(hosts: &[DockerHost], host: &Host) -> Vec<(Ipv4Net, Ipv4Addr)> {
    let mut out = Vec::new();
    for d in hosts.iter().filter(|d| !std::ptr::eq(d.host, host)) {
        if d.host.lan != host.lan {
            continue;
        }
        for n in &d.networks {
            if let Some(c) = n.create.as_ref().filter(|c| !c.masquerade) {
                out.push((c.subnet, d.host.addresses[0]));
            }
        }
    }
    out
}

fn docker_host_commands(s: &mut String, plan: &Plan, hosts: &[DockerHost], d: &DockerHost) {
    let _ = writeln!(
        s,
        "# ==== host {}: Docker with {} container{}",
        d.host.name,
        d.members.len(),
        if d.members.len() == 1 { "" } else { "s" }
    );
    for c in &d.caveats {
        comment(s, "", &format!("- {c}"));
    }
    host_hints(s, plan, hosts, d.host);
    for (i, n) in d.networks.iter().enumerate() {
        let on: Vec<&str> = d
            .members
            .iter()
            .filter(|m| m.network == i)
            .map(|m| m.container.name.as_str())
            .collect();
        // Docker's default bridge exists anyway; with nobody on it there is nothing to say.
        if on.is_empty() && n.create.is_none() {
            continue;
        }
        let header = format!(
            "network {}: {} container{} ({}), leaving as {}",
            n.name,
            on.len(),
            if on.len() == 1 { "" } else { "s" },
            if on.is_empty() {
                "none".into()
            } else {
                on.join(", ")
            },
            n.leaves_as
        );
        comment(s, "", &header);
        path_loads(s, d, i);
        if let Some(c) = &n.create {
            let mut line = format!(
                "docker network create --driver bridge --subnet {} --gateway {}",
                c.subnet, c.gateway
            );
            line.push_str(&format!(
                " \\\n  -o com.docker.network.bridge.name={}",
                q(c.bridge.as_str())
            ));
            if let Some(a) = c.host_ipv4 {
                line.push_str(&format!(" \\\n  -o com.docker.network.host_ipv4={a}"));
            }
            if !c.masquerade {
                line.push_str(" \\\n  -o com.docker.network.bridge.enable_ip_masquerade=false");
            }
            let _ = writeln!(s, "{line} \\\n  {}", q(&n.name));
        }
    }
    for m in &d.members {
        let n = &d.networks[m.network];
        let mut line = format!(
            "docker run -d --name {} --network {}",
            q(m.container.netns.as_str()),
            q(&n.name)
        );
        if let Some(ip) = m.ip {
            line.push_str(&format!(" --ip {ip}"));
        }
        for sc in docker_sysctls(m.container) {
            line.push_str(&format!(
                " \\\n  --sysctl {}={}",
                q(sc.key()),
                q(sc.value())
            ));
        }
        let program = program(plan, m);
        if let Some(launch) = &program {
            for (k, v) in &launch.env {
                line.push_str(&format!(" \\\n  -e {}={}", q(k), q(v)));
            }
        }
        line.push_str(" \\\n  \"$IMAGE\"");
        if let Some(launch) = &program {
            let words: Vec<String> = launch.argv.iter().map(|a| q(a)).collect();
            line.push(' ');
            line.push_str(&words.join(" "));
        }
        if let Some(hint) = built_in_client(m) {
            comment(s, "", &hint);
        }
        let _ = writeln!(s, "{line}");
    }
}

/// The connections each (source, server) path of network `i` carries, under its header.
fn path_loads(s: &mut String, d: &DockerHost, i: usize) {
    let mut loads: Vec<(SocketAddrV4, u64, usize)> = Vec::new();
    for m in d.members.iter().filter(|m| m.network == i) {
        for (g, gi) in &m.clients {
            let t = g.target_of(*gi);
            let n = u64::from(g.connections.get());
            match loads.iter_mut().find(|l| l.0 == t) {
                Some(l) => {
                    l.1 += n;
                    l.2 += 1;
                }
                None => loads.push((t, n, 1)),
            }
        }
    }
    let translated = d.networks[i].create.as_ref().is_none_or(|c| c.masquerade);
    for (t, n, containers) in loads {
        let wall = if translated && n > NAT_PATH_PORTS {
            format!(", past one NAT path's {} ports", count(NAT_PATH_PORTS))
        } else {
            String::new()
        };
        let _ = writeln!(
            s,
            "#   to {t}: {} connection{} from {containers} container{}{wall}",
            count(n),
            if n == 1 { "" } else { "s" },
            if containers == 1 { "" } else { "s" },
        );
    }
}

/// `text` as `#` lines of at most about 100 columns, after `indent`; a line that wraps goes on
/// indented by two more.
fn comment(s: &mut String, indent: &str, text: &str) {
    let mut line = format!("{indent}#");
    for word in text.split_whitespace() {
        if line.len() + word.len() + 1 > 100 && line.len() > indent.len() + 4 {
            let _ = writeln!(s, "{line}");
            line = format!("{indent}#  ");
        }
        line.push(' ');
        line.push_str(word);
    }
    let _ = writeln!(s, "{line}");
}

/// The lab as compose files, one YAML document per Docker host (`---` between them when there
/// are several: compose reads one per file).
pub fn compose(plan: &Plan) -> Result<String, String> {
    let hosts = translate(plan)?;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# lab {} on real Docker: a compose file for each Docker host, for that machine:",
        plan.name
    );
    let _ = writeln!(s, "#   IMAGE=your/load-tester docker compose -f FILE up -d");
    let _ = writeln!(
        s,
        "# One service per container, not deploy.replicas: each container has a fixed address, \
         and a pool's"
    );
    let _ = writeln!(
        s,
        "# containers go on different networks, which replicas of one service cannot."
    );
    for host in plan.hosts.iter().filter(|h| h.docker.is_none()) {
        let _ = writeln!(s, "#");
        let _ = writeln!(s, "# ==== host {}: no Docker", host.name);
        host_hints(&mut s, plan, &hosts, host);
    }
    for (i, d) in hosts.iter().enumerate() {
        if i > 0 {
            let _ = writeln!(s, "---");
        }
        compose_document(&mut s, plan, &hosts, d);
    }
    Ok(s)
}

fn compose_document(s: &mut String, plan: &Plan, hosts: &[DockerHost], d: &DockerHost) {
    let _ = writeln!(s, "#");
    let _ = writeln!(s, "# ==== host {}", d.host.name);
    for c in &d.caveats {
        comment(s, "", &format!("- {c}"));
    }
    host_hints(s, plan, hosts, d.host);
    let _ = writeln!(
        s,
        "name: {}",
        yaml_str(&project_name(&format!("{}-{}", plan.name, d.host.name)))
    );
    let created: Vec<&Network> = d.networks.iter().filter(|n| n.create.is_some()).collect();
    if !created.is_empty() {
        let _ = writeln!(s, "networks:");
    }
    for n in created {
        let Some(c) = &n.create else { continue };
        let _ = writeln!(s, "  {}:", yaml_key(&n.name));
        let _ = writeln!(s, "    name: {}", yaml_str(&n.name));
        let _ = writeln!(s, "    driver: bridge");
        let _ = writeln!(s, "    driver_opts:");
        let _ = writeln!(
            s,
            "      com.docker.network.bridge.name: {}",
            yaml_str(c.bridge.as_str())
        );
        if let Some(a) = c.host_ipv4 {
            let _ = writeln!(
                s,
                "      com.docker.network.host_ipv4: {}",
                yaml_str(&a.to_string())
            );
        }
        if !c.masquerade {
            let _ = writeln!(
                s,
                "      com.docker.network.bridge.enable_ip_masquerade: \"false\""
            );
        }
        let _ = writeln!(s, "    ipam:");
        let _ = writeln!(s, "      config:");
        let _ = writeln!(s, "        - subnet: {}", yaml_str(&c.subnet.to_string()));
        let _ = writeln!(s, "          gateway: {}", yaml_str(&c.gateway.to_string()));
    }
    if d.members.is_empty() {
        let _ = writeln!(s, "services: {{}}");
        return;
    }
    let _ = writeln!(s, "services:");
    for m in &d.members {
        let n = &d.networks[m.network];
        if let Some(hint) = built_in_client(m) {
            comment(s, "  ", &hint);
        }
        let _ = writeln!(s, "  {}:", yaml_key(m.container.name.as_str()));
        let _ = writeln!(s, "    image: \"${{IMAGE:-{IMAGE_DEFAULT}}}\"");
        let _ = writeln!(
            s,
            "    container_name: {}",
            compose_str(m.container.netns.as_str())
        );
        match (&n.create, m.ip) {
            (None, _) => {
                let _ = writeln!(s, "    network_mode: {DEFAULT_BRIDGE_NETWORK}");
            }
            (Some(_), ip) => {
                let _ = writeln!(s, "    networks:");
                let _ = match ip {
                    Some(ip) => writeln!(
                        s,
                        "      {}:\n        ipv4_address: {}",
                        yaml_key(&n.name),
                        yaml_str(&ip.to_string())
                    ),
                    None => writeln!(s, "      {}: {{}}", yaml_key(&n.name)),
                };
            }
        }
        let sysctls: Vec<_> = docker_sysctls(m.container).collect();
        if !sysctls.is_empty() {
            let _ = writeln!(s, "    sysctls:");
            for sc in sysctls {
                let _ = writeln!(s, "      {}: {}", sc.key(), compose_str(sc.value()));
            }
        }
        if let Some(Launch { argv, env }) = program(plan, m) {
            let _ = writeln!(s, "    environment:");
            for (k, v) in &env {
                let _ = writeln!(s, "      {}: {}", yaml_key(k), compose_str(v));
            }
            let words: Vec<String> = argv.iter().map(|a| compose_str(a)).collect();
            let _ = writeln!(s, "    command: [{}]", words.join(", "));
        }
    }
}

/// A compose project name: lowercase letters, digits, `-` and `_`.
fn project_name(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            'A'..='Z' => c.to_ascii_lowercase(),
            'a'..='z' | '0'..='9' | '-' | '_' => c,
            _ => '_',
        })
        .collect()
}

/// A YAML double-quoted scalar; everything outside printable ASCII escaped, so no reader's
/// notion of a printable character matters.
fn yaml_str(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ' '..='~' => out.push(c),
            c if u32::from(c) <= 0xffff => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => {
                let _ = write!(out, "\\U{:08x}", u32::from(c));
            }
        }
    }
    out.push('"');
    out
}

/// A string value compose will not interpolate: `$` doubled.
fn compose_str(text: &str) -> String {
    yaml_str(&text.replace('$', "$$"))
}

/// A mapping key: plain where YAML reads it as that string, else quoted.
fn yaml_key(key: &str) -> String {
    const WORDS: [&str; 11] = [
        "y", "n", "yes", "no", "on", "off", "true", "false", "null", "~", "<<",
    ];
    let plain = key.starts_with(|c: char| c.is_ascii_alphabetic())
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && !WORDS.contains(&key.to_ascii_lowercase().as_str());
    if plain { key.to_owned() } else { yaml_str(key) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::plan::{Mac, Name};
    use crate::lab::{LoadOptions, Source, load};

    fn lab(file: &str) -> Plan {
        let path = format!("{}/labs/{file}.toml", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).expect("lab file");
        load(&Source::new(file, text), &LoadOptions::default())
            .map_err(|d| format!("{d:?}"))
            .expect("valid")
            .plan
    }

    /// `text` equals the golden file `tests/goldens/show-docker/NAME`; `LAB_BLESS=1` writes it.
    fn golden(name: &str, text: &str) {
        let path = format!(
            "{}/tests/goldens/show-docker/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        if std::env::var_os("LAB_BLESS").is_some() {
            std::fs::write(&path, text).expect("write golden");
        }
        let want = std::fs::read_to_string(&path).expect("golden file (LAB_BLESS=1 writes it)");
        assert!(
            text == want,
            "{name} differs from its golden (LAB_BLESS=1 rewrites it):\n{text}"
        );
    }

    #[test]
    fn goldens_of_labs_02_04_05() {
        for file in ["02-cross-host", "04-more-source-addresses", "05-both-fixes"] {
            let plan = lab(file);
            golden(&format!("{file}.sh"), &commands(&plan).expect("commands"));
            golden(&format!("{file}.yml"), &compose(&plan).expect("compose"));
        }
    }

    /// Which network each container of the first Docker host is on, by name.
    fn on(plan: &Plan) -> Vec<(String, String, Option<Ipv4Addr>)> {
        let hosts = translate(plan).expect("translates");
        hosts[0]
            .members
            .iter()
            .map(|m| {
                (
                    m.container.name.to_string(),
                    hosts[0].networks[m.network].name.clone(),
                    m.ip,
                )
            })
            .collect()
    }

    #[test]
    fn masquerade_stays_on_the_default_bridge_without_addresses() {
        let plan = lab("02-cross-host");
        let hosts = translate(&plan).unwrap();
        assert_eq!(hosts.len(), 1);
        assert_eq!(hosts[0].networks.len(), 1);
        assert_eq!(hosts[0].networks[0].create, None);
        for (_, net, ip) in on(&plan) {
            assert_eq!(net, "bridge");
            assert_eq!(ip, None, "Docker refuses --ip on the default bridge");
        }
        let text = commands(&plan).unwrap();
        assert!(!text.contains("docker network create"), "{text}");
        assert!(text.contains("75,000 connections from 3 containers, past one NAT path's 64,512"));
    }

    #[test]
    fn a_pool_of_three_is_three_networks_round_robin() {
        let plan = lab("04-more-source-addresses");
        let hosts = translate(&plan).unwrap();
        let v4: Vec<Option<Ipv4Addr>> = hosts[0]
            .networks
            .iter()
            .map(|n| n.create.as_ref().and_then(|c| c.host_ipv4))
            .collect();
        let pool = ["192.168.49.6", "192.168.49.7", "192.168.49.8"];
        assert_eq!(v4, pool.map(|a| Some(a.parse().unwrap())));
        let subnets: Vec<String> = hosts[0]
            .networks
            .iter()
            .map(|n| n.create.as_ref().unwrap().subnet.to_string())
            .collect();
        assert_eq!(subnets, ["172.18.0.0/16", "172.19.0.0/16", "172.20.0.0/16"]);
        let want = [
            ("c1", "more-src-snat1", "172.18.0.2"),
            ("c2", "more-src-snat2", "172.19.0.2"),
            ("c3", "more-src-snat3", "172.20.0.2"),
        ];
        let got = on(&plan);
        for (g, w) in got.iter().zip(want) {
            assert_eq!(
                (g.0.as_str(), g.1.as_str(), g.2),
                (w.0, w.1, w.2.parse().ok())
            );
        }
    }

    /// Round-robin over the containers would put c1, c3 and c5 (all to .15) on one network:
    /// 75,000 connections on one path. Spreading per path puts at most two on any.
    #[test]
    fn a_pool_is_spread_per_path_not_per_container() {
        let plan = lab("05-both-fixes");
        let hosts = translate(&plan).unwrap();
        let mut per_path: HashMap<(usize, SocketAddrV4), u64> = HashMap::new();
        for m in &hosts[0].members {
            for (g, i) in &m.clients {
                *per_path.entry((m.network, g.target_of(*i))).or_default() +=
                    u64::from(g.connections.get());
            }
        }
        // Three containers per server over two addresses: two on one path is the least.
        assert_eq!(per_path.len(), 4, "{per_path:?}");
        assert_eq!(per_path.values().max(), Some(&50_000), "{per_path:?}");
        assert_eq!(per_path.values().sum::<u64>(), 150_000);
    }

    #[test]
    fn no_nat_is_a_network_without_masquerade_and_routes_elsewhere() {
        let plan = lab("08-no-nat");
        let text = commands(&plan).unwrap();
        assert!(text.contains("-o com.docker.network.bridge.enable_ip_masquerade=false"));
        assert!(
            text.contains("#   ip route add 172.18.0.0/16 via 192.168.49.6"),
            "{text}"
        );
        let yaml = compose(&plan).unwrap();
        assert!(yaml.contains("com.docker.network.bridge.enable_ip_masquerade: \"false\""));
    }

    fn user_net(bridge: &str, subnet: &str, nat: Nat) -> DockerNet {
        let subnet: Ipv4Net = subnet.parse().unwrap();
        DockerNet {
            name: Name::new(bridge).unwrap(),
            bridge: IfName::new(bridge).unwrap(),
            mac: Mac::derived(bridge),
            subnet,
            gateway: first_host(subnet),
            nat,
        }
    }

    /// User-defined networks are created as they are; only a pool is split, and Docker's
    /// subnets for the split skip every subnet the lab has.
    #[test]
    fn user_networks_are_created_as_they_are() {
        let mut plan = lab("02-cross-host");
        let a = |s: &str| -> Ipv4Addr { s.parse().unwrap() };
        let docker = plan.hosts[0].docker.as_mut().unwrap();
        docker.networks = vec![
            user_net(
                "br-egress",
                "172.18.0.0/16",
                Nat::Snat {
                    pool: vec![a("192.168.49.6")],
                    ports: None,
                    persistent: false,
                    random_fully: false,
                },
            ),
            user_net("br-plain", "10.9.0.0/24", Nat::MASQUERADE),
            user_net(
                "br-pool",
                "172.19.0.0/16",
                Nat::Snat {
                    pool: vec![a("192.168.49.7"), a("192.168.49.8")],
                    ports: None,
                    persistent: false,
                    random_fully: false,
                },
            ),
        ];
        let text = commands(&plan).unwrap();
        assert!(
            text.contains(
                "docker network create --driver bridge --subnet 172.18.0.0/16 --gateway \
                 172.18.0.1 \\\n  -o com.docker.network.bridge.name=br-egress \\\n  -o \
                 com.docker.network.host_ipv4=192.168.49.6 \\\n  br-egress\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "--subnet 10.9.0.0/24 --gateway 10.9.0.1 \\\n  -o \
                 com.docker.network.bridge.name=br-plain \\\n  br-plain\n"
            ),
            "{text}"
        );
        // Split: fresh subnets past 172.18 and 172.19, which the lab's networks hold.
        assert!(text.contains("--subnet 172.20.0.0/16"), "{text}");
        assert!(
            text.contains("host_ipv4=192.168.49.7 \\\n  br-pool-1\n"),
            "{text}"
        );
        assert!(text.contains("--subnet 172.21.0.0/16"), "{text}");
        assert!(
            text.contains("host_ipv4=192.168.49.8 \\\n  br-pool-2\n"),
            "{text}"
        );
        assert_eq!(text.matches("docker network create").count(), 4);
    }

    #[test]
    fn bridge_names_fit_ifnamsiz() {
        assert_eq!(bridge_name("more-src", 1).as_str(), "br-more-src-1");
        assert_eq!(bridge_name("both-fixes", 2).as_str(), "br-both-fixes-2");
        let long = bridge_name("a-very-long-lab-name", 12);
        assert!(long.as_str().len() <= IFNAME_MAX, "{long}");
        assert_eq!(long.as_str(), "br-a-very-lo-12");
    }

    #[test]
    fn yaml_scalars_and_keys() {
        assert_eq!(yaml_str("it's \"x\" \\"), "\"it's \\\"x\\\" \\\\\"");
        assert_eq!(yaml_str("a\nb\u{85}é"), "\"a\\u000ab\\u0085\\u00e9\"");
        assert_eq!(yaml_str("\u{1f600}"), "\"\\U0001f600\"");
        assert_eq!(compose_str("$HOME"), "\"$$HOME\"");
        assert_eq!(yaml_key("c1"), "c1");
        assert_eq!(yaml_key("yes"), "\"yes\"");
        assert_eq!(yaml_key("1x"), "\"1x\"");
        assert_eq!(project_name("Cmd.Lab-h"), "cmd_lab-h");
    }
}
