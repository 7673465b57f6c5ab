//! Lab file -> [`Plan`], collecting every problem with its location.
//!
//! Validation runs in stages (LANs, hosts, containers, docker networks, addresses, node names,
//! servers, clients, expectations), each reporting what it finds and carrying on. Values that
//! failed a check become `None` in the drafts below, and later checks that depend on them are
//! skipped rather than failing again, so each mistake is reported once, at the place to fix.
//! Only when no error was found are the drafts assembled into a [`Plan`].
//!
//! This room owns the entry points, the drafts, the stage order and the assembly; each stage
//! lives in a room of its own: `topology` (LANs, hosts, containers, node names), `docker`
//! (docker networks and NAT), `addresses` (container addresses), `workload` (servers, clients,
//! expectations), `sysctls` (sysctls and `[machine] raise`), and `values` (the small checks
//! they share).

mod addresses;
mod docker;
mod programs;
mod sysctls;
mod topology;
mod values;

pub use programs::CONTAINER_SYSCTLS;
pub use values::parse_duration;
mod workload;

#[cfg(test)]
mod testing;

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::ops::Range;

use ipnet::Ipv4Net;

use super::diag::{Diagnostic, Source};
use super::plan::{
    ClientGroup, Container, Docker, DockerNet, Expect, FirewallBackend, GlobalLimit, Host, HostId,
    IfName, Lan, LanId, Mac, Name, Nat, NetnsName, NetworkId, Plan, Route, RunSettings, Server,
    Sysctl, TcpTables, veth_name,
};
use super::spec::{self, ContainerSpec, HostSpec, LabSpec, LanSpec, Named, Span, Spanned};

use sysctls::{may_raise, tcp_tables};
use values::{gateway_of, name};
use workload::server_queues;

/// What the command line can change about a lab file.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `lab up --name X`: run a second copy of a lab next to the first. Replaces the file's
    /// `name`, which then need not be present (nor valid).
    pub name: Option<Name>,
}

/// A lab file that passed validation.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub plan: Plan,
    /// Things that are allowed but probably unintended, e.g. clients aiming at a closed port.
    pub warnings: Vec<Diagnostic>,
}

/// Parse + validate. Err holds every diagnostic (errors and warnings), with at least one error.
/// Diagnostics are sorted by where they start in the file.
pub fn load(source: &Source, opts: &LoadOptions) -> Result<Loaded, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let plan = spec::parse(&source.text, &mut diags).and_then(|s| validate(&s, opts, &mut diags));
    diags.sort_by_key(|d| d.span.start);
    match plan {
        Some(plan) if !diags.iter().any(Diagnostic::is_error) => Ok(Loaded {
            plan,
            warnings: diags,
        }),
        _ => {
            if !diags.iter().any(Diagnostic::is_error) {
                // Every `None` above comes with an error; this keeps the contract if one doesn't.
                diags.insert(
                    0,
                    Diagnostic::error(
                        0..0,
                        "internal error: the lab was rejected without a reason",
                    ),
                );
            }
            Err(diags)
        }
    }
}

/// Checks a parsed lab file and resolves it into a [`Plan`]. Problems go to `diags`; the plan
/// is `None` if any of them is an error.
pub fn validate(lab: &LabSpec, opts: &LoadOptions, diags: &mut Vec<Diagnostic>) -> Option<Plan> {
    let mut v = Validator {
        diags,
        lans: Vec::new(),
        hosts: Vec::new(),
        groups: Vec::new(),
        containers: Vec::new(),
    };
    let name = v.lab_name(lab, opts);
    v.lans(&lab.lans);
    v.hosts(&lab.hosts);
    v.require_hosts(lab);
    v.groups(&lab.containers);
    v.docker_nets();
    v.assign_addresses();
    v.unique_node_names();
    let servers = v.servers(&lab.servers);
    let clients = v.clients(&lab.clients, &servers);
    let expect = v.expect(lab);
    let may_raise = may_raise(lab, v.diags);
    let tcp_tables = tcp_tables(lab, v.diags);
    let run = programs::run_settings(lab.run.as_ref(), v.diags);
    if v.diags.iter().any(Diagnostic::is_error) {
        return None;
    }
    let description = lab.description.as_ref().map(|d| d.value.clone());
    v.assemble(Assembly {
        name: name?,
        description: description.unwrap_or_default(),
        servers,
        clients: clients.into_iter().collect::<Option<_>>()?,
        expect,
        may_raise,
        tcp_tables,
        run,
    })
}

struct LanDraft<'s> {
    spec: &'s Named<LanSpec>,
    name: Option<Name>,
    bridge: Option<IfName>,
    subnet: Option<Ipv4Net>,
}

struct HostDraft<'s> {
    spec: &'s Named<HostSpec>,
    name: Option<Name>,
    lan_port: Option<IfName>,
    lan: Option<LanId>,
    /// The addresses that passed their checks.
    addresses: Vec<Ipv4Addr>,
    sysctls: Vec<Sysctl>,
    docker: Option<DockerDraft>,
}

struct DockerDraft {
    firewall: Option<FirewallBackend>,
    default_bridge: NetDraft,
    networks: Vec<NetDraft>,
}

impl DockerDraft {
    /// The default bridge, then the user-defined networks: in [`NetworkId`] order.
    fn all(&self) -> impl Iterator<Item = &NetDraft> {
        std::iter::once(&self.default_bridge).chain(&self.networks)
    }

    fn all_mut(&mut self) -> impl Iterator<Item = &mut NetDraft> {
        std::iter::once(&mut self.default_bridge).chain(&mut self.networks)
    }
}

/// One Docker network of a host, the default bridge or a user-defined one.
struct NetDraft {
    name: Option<Name>,
    /// The name as written, for messages.
    label: String,
    bridge: Option<IfName>,
    /// Where the bridge is named, or the table that implies the default.
    bridge_span: Span,
    subnet: Option<Ipv4Net>,
    /// Where the subnet is written, or the table/host that implies the default.
    subnet_span: Span,
    subnet_written: bool,
    nat: Option<Nat>,
    /// Where the NAT is written, or the table/host that implies the default.
    nat_span: Span,
}

/// One `[containers.X]` table, expanded into `members` of `Validator::containers`.
struct GroupDraft<'s> {
    spec: &'s Named<ContainerSpec>,
    name: Option<Name>,
    host: Option<HostId>,
    /// The host's network its containers are attached to, once resolved.
    network: Option<NetworkId>,
    /// Where a problem with the number of containers is reported.
    replicas_span: Span,
    members: Range<usize>,
}

struct ContainerDraft {
    raw: String,
    name: Option<Name>,
    group: usize,
    host: Option<HostId>,
    /// Explicit (`address = ...`) and parsed, or assigned.
    address: Option<Ipv4Addr>,
    explicit: Option<Spanned<Ipv4Addr>>,
    sysctls: Vec<Sysctl>,
}

struct Validator<'s, 'd> {
    diags: &'d mut Vec<Diagnostic>,
    lans: Vec<LanDraft<'s>>,
    hosts: Vec<HostDraft<'s>>,
    groups: Vec<GroupDraft<'s>>,
    containers: Vec<ContainerDraft>,
}

/// The parts of a plan that are not nodes.
struct Assembly {
    name: Name,
    description: String,
    servers: Vec<Server>,
    clients: Vec<ClientGroup>,
    expect: Expect,
    may_raise: Vec<GlobalLimit>,
    tcp_tables: TcpTables,
    run: RunSettings,
}

impl<'s> Validator<'s, '_> {
    fn error(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    fn lab_name(&mut self, lab: &LabSpec, opts: &LoadOptions) -> Option<Name> {
        if let Some(name) = &opts.name {
            return Some(name.clone());
        }
        let Some(raw) = &lab.name else {
            self.error(
                Diagnostic::error(0..0, "missing required key `name` at the top level").with_help(
                    "every namespace is named `<name>-<node>`; add e.g. name = \"my-lab\"",
                ),
            );
            return None;
        };
        name(raw, "lab", self.diags)
    }

    // ---- assembly ----

    /// Builds the plan from drafts that passed every check, so every `?` here is `Some`.
    fn assemble(self, a: Assembly) -> Option<Plan> {
        let lab = &a.name;
        let lans = self
            .lans
            .iter()
            .map(|l| {
                let name = l.name.clone()?;
                let netns = NetnsName::for_node(lab, &name);
                Some(Lan {
                    mac: Mac::derived(netns.as_str()),
                    netns,
                    name,
                    subnet: l.subnet?,
                    bridge: l.bridge.clone()?,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        let hosts = self
            .hosts
            .iter()
            .map(|h| {
                let name = h.name.clone()?;
                let lan = h.lan?;
                let docker = match &h.docker {
                    Some(d) => Some(Docker {
                        firewall: d.firewall?,
                        default_bridge: docker_net(
                            &d.default_bridge,
                            Mac::derived(&format!("{lab}/{name}")),
                        )?,
                        networks: d
                            .networks
                            .iter()
                            .map(|n| {
                                let mac = Mac::derived(&format!("{lab}/{name}/{}", n.label));
                                docker_net(n, mac)
                            })
                            .collect::<Option<_>>()?,
                    }),
                    None => None,
                };
                Some(Host {
                    netns: NetnsName::for_node(lab, &name),
                    name,
                    lan,
                    nic: IfName::eth0(),
                    lan_port: h.lan_port.clone()?,
                    addresses: h.addresses.clone(),
                    prefix_len: lans.get(lan.0)?.subnet.prefix_len(),
                    sysctls: h.sysctls.clone(),
                    routes: Vec::new(),
                    docker,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        let mut hosts = hosts;
        for server in &a.servers {
            let sysctls = &mut hosts.get_mut(server.host.0)?.sysctls;
            server_queues(sysctls);
            if server.command.is_some() {
                programs::with_defaults(sysctls, &programs::PROGRAM_HOST_SYSCTLS);
            }
        }
        routes_to_untranslated(&mut hosts);
        let containers = containers(lab, &self.containers, &self.groups, &hosts)?;
        Some(Plan {
            name: a.name,
            description: a.description,
            lans,
            hosts,
            containers,
            servers: a.servers,
            clients: a.clients,
            expect: a.expect,
            may_raise: a.may_raise,
            tcp_tables: a.tcp_tables,
            run: a.run,
        })
    }
}

/// Containers behind `nat = "none"` leave with their own addresses: every other host on their
/// LAN routes their docker subnet via their host's primary address, or no reply could reach
/// them. (Validation made sure no other docker subnet on the LAN overlaps it.)
fn routes_to_untranslated(hosts: &mut [Host]) {
    let routed: Vec<(LanId, Route)> = hosts
        .iter()
        .flat_map(|h| {
            let via = h.addresses.first().copied();
            h.docker
                .iter()
                .flat_map(|d| d.all_networks())
                .filter(|d| d.nat == Nat::None)
                .filter_map(move |d| {
                    Some((
                        h.lan,
                        Route {
                            dst: d.subnet,
                            via: via?,
                        },
                    ))
                })
        })
        .collect();
    for host in hosts.iter_mut() {
        for (lan, route) in &routed {
            if *lan == host.lan && !host.addresses.contains(&route.via) {
                host.routes.push(*route);
            }
        }
    }
}

fn docker_net(d: &NetDraft, mac: Mac) -> Option<DockerNet> {
    let subnet = d.subnet?;
    Some(DockerNet {
        name: d.name.clone()?,
        bridge: d.bridge.clone()?,
        mac,
        subnet,
        gateway: gateway_of(subnet),
        nat: d.nat.clone()?,
    })
}

/// Containers with their veth names: derived from the names, salted on the rare collision with
/// another container's or the docker bridge of the same host.
fn containers(
    lab: &Name,
    drafts: &[ContainerDraft],
    groups: &[GroupDraft<'_>],
    hosts: &[Host],
) -> Option<Vec<Container>> {
    let mut used: HashMap<HostId, HashSet<IfName>> = HashMap::new();
    drafts
        .iter()
        .map(|c| {
            let name = c.name.clone()?;
            let host = c.host?;
            let address = c.address?;
            // The docker bridge lives in the same namespace as the veths.
            let taken = used.entry(host).or_insert_with(|| {
                let docker = hosts.get(host.0).and_then(|h| h.docker.as_ref());
                docker
                    .iter()
                    .flat_map(|d| d.all_networks())
                    .map(|d| d.bridge.clone())
                    .collect()
            });
            let veth = (0..=u32::MAX)
                .map(|salt| veth_name(lab, &name, salt))
                .find(|v| !taken.contains(v))?;
            taken.insert(veth.clone());
            let group = groups.get(c.group)?;
            Some(Container {
                netns: NetnsName::for_node(lab, &name),
                group: group.name.clone()?,
                name,
                host,
                network: group.network?,
                address,
                mac: Mac::docker_from_ip(address),
                veth,
                sysctls: {
                    let mut s = c.sysctls.clone();
                    programs::with_defaults(&mut s, &programs::CONTAINER_SYSCTLS);
                    s
                },
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::docker::DEFAULT_DOCKER_SUBNET;
    use super::testing::*;
    use super::*;
    use crate::lab::plan::{ContainerId, CountRange};

    #[test]
    fn the_example_lab_loads() {
        let Loaded { plan, warnings } = ok(CROSS_HOST);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(plan.name.as_str(), "cross-host");
        assert!(plan.description.starts_with("Three containers"));

        let lan = &plan.lans[0];
        assert_eq!(lan.netns.as_str(), "cross-host-lan");
        assert_eq!(lan.bridge.as_str(), "lan");
        assert_eq!(lan.subnet.to_string(), "192.168.49.0/24");

        let [client, server] = &plan.hosts[..] else {
            panic!("{:?}", plan.hosts)
        };
        assert_eq!(client.netns.as_str(), "cross-host-client-host");
        assert_eq!(client.nic.as_str(), "eth0");
        assert_eq!(client.lan_port.as_str(), "client-host");
        assert_eq!(client.lan, LanId(0));
        assert_eq!(client.prefix_len, 24);
        assert_eq!(client.addresses, [ip("192.168.49.6")]);
        assert_eq!(client.sysctls[0].key(), "net.ipv4.tcp_syn_retries");
        assert_eq!(client.sysctls[0].value(), "2");
        let docker = &client.docker.as_ref().unwrap().default_bridge;
        assert_eq!(docker.bridge.as_str(), "docker0");
        assert_eq!(docker.subnet.to_string(), "172.17.0.0/16");
        assert_eq!(docker.gateway, ip("172.17.0.1"));
        assert_eq!(docker.nat, Nat::MASQUERADE);
        assert!(server.docker.is_none());

        let names: Vec<_> = plan.containers.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["c1", "c2", "c3"]);
        for (i, c) in plan.containers.iter().enumerate() {
            assert_eq!(c.group.as_str(), "c");
            assert_eq!(c.host, HostId(0));
            assert_eq!(c.address, Ipv4Addr::new(172, 17, 0, 2 + i as u8));
            assert_eq!(c.mac.to_string(), format!("02:42:ac:11:00:0{}", 2 + i));
            assert_eq!(c.netns.as_str(), format!("cross-host-c{}", i + 1));
            assert_eq!(c.veth, veth_name(&plan.name, &c.name, 0));
            assert_eq!(c.sysctls[0].value(), "1024 65535");
        }

        let ns: Vec<_> = plan.namespaces().iter().map(|n| n.to_string()).collect();
        assert_eq!(
            ns,
            [
                "cross-host-lan",
                "cross-host-client-host",
                "cross-host-server-host",
                "cross-host-c1",
                "cross-host-c2",
                "cross-host-c3",
            ]
        );

        assert_eq!(plan.servers[0].name.as_str(), "srv");
        assert_eq!(plan.servers[0].host, HostId(1));
        assert_eq!(plan.servers[0].port.get(), 9000);

        let load = &plan.clients[0];
        assert_eq!(load.name.as_str(), "load");
        assert_eq!(
            load.containers,
            [ContainerId(0), ContainerId(1), ContainerId(2)]
        );
        assert_eq!(load.connections.get(), 25000);
        assert_eq!(load.ping_interval, Duration::from_secs(100));
        for i in 0..3 {
            assert_eq!(load.target_of(i), "192.168.49.5:9000".parse().unwrap());
        }
        assert_eq!(plan.expect.established, Some(CountRange::exact(64512)));
    }

    #[test]
    fn name_option_overrides_the_file() {
        let opts = LoadOptions {
            name: Some(Name::new("other").unwrap()),
        };
        let plan = load(&Source::new("t.toml", CROSS_HOST), &opts)
            .unwrap()
            .plan;
        assert_eq!(plan.name.as_str(), "other");
        assert_eq!(plan.hosts[0].netns.as_str(), "other-client-host");
        assert_eq!(
            plan.containers[0].veth,
            veth_name(&plan.name, &plan.containers[0].name, 0)
        );

        // With the override, the file needs no name at all.
        let nameless = BASE.replacen("name = \"t\"\n", "", 1);
        let plan = load(&Source::new("t.toml", nameless), &opts).unwrap().plan;
        assert_eq!(plan.lans[0].netns.as_str(), "other-lan");
    }

    #[test]
    fn defaults() {
        let text = with(
            "[containers.c]\nhost = \"a\"\n[clients.l]\ncontainers = [\"c\"]\nconnect = [\"10.0.0.1:1\"]\nconnections = 1\n",
        );
        let plan = ok(&text).plan;
        assert_eq!(plan.description, "");
        // One replica keeps the group's name; the host gets Docker's default network.
        assert_eq!(plan.containers[0].name.as_str(), "c");
        assert_eq!(plan.containers[0].address, ip("172.17.0.2"));
        let docker = &plan.hosts[0].docker.as_ref().unwrap().default_bridge;
        assert_eq!(docker.bridge.as_str(), "docker0");
        assert_eq!(docker.subnet, DEFAULT_DOCKER_SUBNET);
        assert_eq!(docker.nat, Nat::MASQUERADE);
        assert_eq!(plan.clients[0].ping_interval, Duration::from_secs(100));
        assert_eq!(plan.expect.established, None);
    }

    #[test]
    fn multiple_errors_are_all_reported_in_order() {
        let text = r#"name = "my lab"
[lans.lan]
subnet = "10.0.0.1/24"
[hosts.a]
lan = "lam"
addresses = []
adresses = ["10.0.0.1"]
[containers.c]
host = "a"
replicas = 0
[servers.s]
host = "a"
port = 0
"#;
        let source = Source::new("t.toml", text);
        let diags = rejected(text);
        let got: Vec<_> = diags
            .iter()
            .map(|d| (source.line_col(d.span.start), d.message.as_str()))
            .collect();
        let want = [
            ((1, 8), "invalid lab name"),
            ((3, 10), "has host bits set"),
            ((5, 7), "unknown LAN `lam`"),
            ((6, 13), "`addresses` is empty"),
            ((7, 1), "unknown key `adresses` in [hosts.a]"),
            ((10, 12), "`replicas = 0`"),
            ((13, 8), "port 0 is out of range"),
        ];
        assert_eq!(got.len(), want.len(), "{got:#?}");
        for ((at, message), (want_at, want_message)) in got.iter().zip(want) {
            assert_eq!(*at, want_at, "{message}");
            assert!(
                message.contains(want_message),
                "{message:?} vs {want_message:?}"
            );
        }
    }

    #[test]
    fn toml_syntax_error() {
        reported("name = \"t\"\n[lans.lan\n", "invalid TOML", (2, 10));
    }

    #[test]
    fn unknown_keys_suggest_the_right_one() {
        let text = with("[containers.c]\nhost = \"a\"\nreplica = 2\n");
        let d = reported(&text, "unknown key `replica` in [containers.c]", (9, 1));
        assert_eq!(d.help.as_deref(), Some("did you mean `replicas`?"));
        let d = reported(
            "nme = \"t\"\n",
            "unknown key `nme` at the top level",
            (1, 1),
        );
        assert_eq!(d.help.as_deref(), Some("did you mean `name`?"));
        let text = with("[expect]\nestablished = { min = 1, mx = 2 }\n");
        let d = reported(&text, "unknown key `mx`", (8, 26));
        assert_eq!(d.help.as_deref(), Some("did you mean `max`?"));
    }

    #[test]
    fn missing_required_keys() {
        let text = BASE.replacen("name = \"t\"\n", "", 1);
        reported(&text, "missing required key `name`", (1, 1));
        let text = with("[servers.s]\nhost = \"a\"\n");
        reported(&text, "missing required key `port` in [servers.s]", (7, 1));
        let text = BASE.replace("addresses = [\"10.0.0.1\"]\n", "");
        reported(
            &text,
            "missing required key `addresses` in [hosts.a]",
            (4, 1),
        );
    }

    #[test]
    fn wrong_value_types() {
        let text = with("[servers.s]\nhost = \"a\"\nport = \"9000\"\n");
        reported(&text, "expected an integer, found a string", (9, 8));
        let text = BASE.replace("lan = \"lan\"", "lan = 1");
        reported(
            &text,
            "wrong type for `lan`: expected a string, found an integer",
            (5, 7),
        );
        let text = with("[hosts.a.docker]\nnat = { masquerade = \"yes\" }\n");
        reported(&text, "expected a boolean, found a string", (8, 22));
    }

    #[test]
    fn diagnostics_are_sorted_by_position() {
        let text = with("[containers.c]\nhost = \"zz\"\nreplicas = 0\nbogus = 1\n");
        let starts: Vec<_> = rejected(&text).iter().map(|d| d.span.start).collect();
        assert!(starts.len() >= 3);
        assert!(starts.is_sorted(), "{starts:?}");
    }
}
