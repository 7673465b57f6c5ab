//! Lab file -> [`Plan`], collecting every problem with its location.
//!
//! Validation runs in stages (LANs, hosts, containers, docker networks, addresses, node names,
//! servers, clients, expectations), each reporting what it finds and carrying on. Values that
//! failed a check become `None` in the drafts below, and later checks that depend on them are
//! skipped rather than failing again, so each mistake is reported once, at the place to fix.
//! Only when no error was found are the drafts assembled into a [`Plan`].

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::num::{NonZeroU16, NonZeroU32};
use std::ops::Range;
use std::time::Duration;

use ipnet::Ipv4Net;

use super::diag::{Diagnostic, Source, did_you_mean};
use super::plan::GlobalLimit;
use super::plan::{
    ClientGroup, Container, ContainerId, CountRange, DockerNet, Expect, Host, HostId, IfName,
    KERNEL_LOCAL_PORT_RANGE, KERNEL_UNPRIVILEGED_PORT_START, LOCAL_PORT_RANGE_SYSCTL, Lan, LanId,
    Mac, Name, Nat, NetnsName, Plan, PortRange, Route, SERVER_BACKLOG, SERVER_SYSCTLS, Server,
    Setting, Sysctl, UNPRIVILEGED_PORT_START_SYSCTL, veth_name,
};
use super::spec::{
    self, ClientSpec, ContainerSpec, CountSpec, DockerSpec, HostSpec, LabSpec, LanSpec, Named,
    NatSpec, NatTableSpec, ServerSpec, Span, Spanned, StringList, SysctlSpec,
};

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
    })
}

/// Interface names every namespace (`lo`) or every host and container (`eth0`) already has.
const RESERVED_IFNAMES: &[&str] = &["lo", "eth0"];

/// Ports a Linux bridge can have: port numbers are 10 bits and 0 is reserved (BR_MAX_PORTS).
const BRIDGE_MAX_PORTS: usize = 1023;

/// `net.*` sysctls that are nevertheless global: read-only inside a namespace.
const GLOBAL_NET_SYSCTLS: &[&str] = &[
    "net.netfilter.nf_conntrack_max",
    "net.netfilter.nf_conntrack_buckets",
    "net.netfilter.nf_conntrack_expect_max",
];

const DEFAULT_DOCKER_BRIDGE: &str = "docker0";
/// Docker's default bridge subnet (checked at compile time).
const DEFAULT_DOCKER_SUBNET: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(172, 17, 0, 0), 16);
const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(100);

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
    bridge: Option<IfName>,
    subnet: Option<Ipv4Net>,
    /// Where the subnet is written, or the table/host that implies the default.
    subnet_span: Span,
    nat: Option<Nat>,
}

/// One `[containers.X]` table, expanded into `members` of `Validator::containers`.
struct GroupDraft<'s> {
    spec: &'s Named<ContainerSpec>,
    name: Option<Name>,
    host: Option<HostId>,
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

    // ---- LANs ----

    fn lans(&mut self, specs: &'s [Named<LanSpec>]) {
        for spec in specs {
            let name = node_name(&spec.name, "LAN", self.diags);
            let bridge = name.as_ref().and_then(|_| self.lan_bridge(spec));
            let subnet = spec.body.subnet.as_ref().and_then(|s| self.lan_subnet(s));
            self.lans.push(LanDraft {
                spec,
                name,
                bridge,
                subnet,
            });
        }
        self.disjoint_lans();
    }

    /// The LAN's bridge is named after the LAN, in the LAN's namespace.
    fn lan_bridge(&mut self, spec: &Named<LanSpec>) -> Option<IfName> {
        let raw = &spec.name.value;
        IfName::new(raw)
            .map_err(|e| {
                self.error(
                    Diagnostic::error(
                        spec.name.span.clone(),
                        format!("LAN name `{raw}` cannot name the LAN's bridge interface: {e}"),
                    )
                    .with_help(
                        "the bridge inside the LAN's namespace is named after the LAN; \
                         shorten the name",
                    ),
                )
            })
            .ok()
    }

    fn lan_subnet(&mut self, raw: &Spanned<String>) -> Option<Ipv4Net> {
        let net = subnet(raw, self.diags)?;
        if net.prefix_len() > 30 {
            self.error(
                Diagnostic::error(
                    raw.span.clone(),
                    format!("LAN subnet {net} has no room for host addresses"),
                )
                .with_help("use a prefix length of at most 30"),
            );
            return None;
        }
        Some(net)
    }

    /// Two LANs with overlapping subnets would make an address ambiguous.
    fn disjoint_lans(&mut self) {
        for (i, b) in self.lans.iter().enumerate() {
            let Some(nb) = b.subnet else { continue };
            let earlier = self.lans[..i].iter().filter_map(|a| Some((a, a.subnet?)));
            if let Some((a, na)) = earlier.into_iter().find(|(_, na)| overlaps(*na, nb)) {
                let span = b.spec.body.subnet.as_ref().map_or(0..0, |s| s.span.clone());
                self.diags.push(
                    Diagnostic::error(
                        span,
                        format!(
                            "subnet {nb} of LAN `{}` overlaps subnet {na} of LAN `{}`",
                            b.spec.name.value, a.spec.name.value
                        ),
                    )
                    .with_help("every LAN needs an address range of its own"),
                );
            }
        }
    }

    // ---- hosts ----

    fn hosts(&mut self, specs: &'s [Named<HostSpec>]) {
        let mut owners: HashMap<Ipv4Addr, String> = HashMap::new();
        let mut per_lan: HashMap<usize, usize> = HashMap::new();
        for spec in specs {
            let name = node_name(&spec.name, "host", self.diags);
            let lan = spec.body.lan.as_ref().and_then(|l| self.lan_ref(l));
            let lan_port = name.as_ref().and_then(|_| self.host_port(spec, lan));
            let addresses = self.host_addresses(spec, lan, &mut owners);
            let sysctls = sysctls(&spec.body.sysctls, self.diags);
            if let Some(LanId(l)) = lan {
                let n = per_lan.entry(l).or_default();
                *n += 1;
                if *n == BRIDGE_MAX_PORTS + 1 {
                    let lan = &self.lans[l].spec.name.value;
                    let message = format!("LAN `{lan}` has more than {BRIDGE_MAX_PORTS} hosts");
                    self.error(bridge_full(spec.name.span.clone(), message));
                }
            }
            self.hosts.push(HostDraft {
                spec,
                name,
                lan_port,
                lan,
                addresses,
                sysctls,
                docker: None,
            });
        }
    }

    fn require_hosts(&mut self, lab: &LabSpec) {
        if lab.hosts.is_empty() {
            self.error(
                Diagnostic::error(
                    lab.hosts_span.clone().unwrap_or(0..0),
                    "the lab has no hosts",
                )
                .with_help(
                    "add at least one, e.g. [hosts.a] with lan = \"...\" and addresses = [...]",
                ),
            );
        }
    }

    fn lan_ref(&mut self, raw: &Spanned<String>) -> Option<LanId> {
        let names: Vec<&str> = self
            .lans
            .iter()
            .map(|l| l.spec.name.value.as_str())
            .collect();
        let found = names.iter().position(|n| *n == raw.value);
        if found.is_none() {
            self.error(unknown_ref(raw, "LAN", "lans", &names));
        }
        found.map(LanId)
    }

    /// The host's port on the LAN bridge is named after the host, in the LAN's namespace.
    fn host_port(&mut self, spec: &Named<HostSpec>, lan: Option<LanId>) -> Option<IfName> {
        let raw = &spec.name.value;
        IfName::new(raw)
            .map_err(|e| {
                let lan = lan.map_or("its LAN".to_owned(), |l| {
                    format!("LAN `{}`", self.lans[l.0].spec.name.value)
                });
                self.error(
                    Diagnostic::error(
                        spec.name.span.clone(),
                        format!(
                            "host name `{raw}` cannot name the host's port on {lan}'s bridge: {e}"
                        ),
                    )
                    .with_help(
                        "a host's port on the LAN bridge is named after the host; shorten the name",
                    ),
                )
            })
            .ok()
    }

    /// Checks each address against the LAN and against every host before this one.
    fn host_addresses(
        &mut self,
        spec: &Named<HostSpec>,
        lan: Option<LanId>,
        owners: &mut HashMap<Ipv4Addr, String>,
    ) -> Vec<Ipv4Addr> {
        let Some(list) = &spec.body.addresses else {
            return Vec::new();
        };
        if list.value.is_empty() {
            self.error(
                Diagnostic::error(list.span.clone(), "`addresses` is empty")
                    .with_help("a host needs at least one address on its LAN"),
            );
        }
        let subnet = lan.and_then(|l| {
            Some((
                self.lans[l.0].spec.name.value.clone(),
                self.lans[l.0].subnet?,
            ))
        });
        let mut out = Vec::new();
        for raw in &list.value {
            let Some(addr) = address(raw, self.diags) else {
                continue;
            };
            if let Some((lan_name, net)) = &subnet
                && !self.inside(raw, addr, *net, &format!("LAN `{lan_name}`"))
            {
                continue;
            }
            if let Some(first) = owners.get(&addr) {
                self.error(Diagnostic::error(
                    raw.span.clone(),
                    format!("address {addr} is already used by host `{first}`"),
                ));
                continue;
            }
            owners.insert(addr, spec.name.value.clone());
            out.push(addr);
        }
        out
    }

    /// Whether `addr` is a usable host address of `net`; reports why not.
    fn inside(&mut self, raw: &Spanned<String>, addr: Ipv4Addr, net: Ipv4Net, of: &str) -> bool {
        let problem = if !net.contains(&addr) {
            format!("address {addr} is outside subnet {net} of {of}")
        } else if addr == net.network() {
            format!("address {addr} is the network address of subnet {net} of {of}")
        } else if addr == net.broadcast() {
            format!("address {addr} is the broadcast address of subnet {net} of {of}")
        } else {
            return true;
        };
        self.error(Diagnostic::error(raw.span.clone(), problem));
        false
    }

    // ---- containers ----

    fn groups(&mut self, specs: &'s [Named<ContainerSpec>]) {
        for spec in specs {
            let name = node_name(&spec.name, "container", self.diags);
            let host = spec.body.host.as_ref().and_then(|h| self.host_ref(h));
            let replicas = self.replicas(spec);
            let explicit = self.explicit_address(spec, replicas);
            let sysctls = sysctls(&spec.body.sysctls, self.diags);
            let start = self.containers.len();
            let group = self.groups.len();
            let names = replica_names(&spec.name.value, replicas.unwrap_or(0));
            let names_ok =
                name.is_some() && names.last().is_none_or(|n| self.replica_name(spec, n));
            for raw in names {
                let name = Name::new(&raw).ok().filter(|_| names_ok);
                self.containers.push(ContainerDraft {
                    raw,
                    name,
                    group,
                    host,
                    address: None,
                    explicit: explicit.clone(),
                    sysctls: sysctls.clone(),
                });
            }
            let replicas_span = spec
                .body
                .replicas
                .as_ref()
                .map_or(spec.span.clone(), |r| r.span.clone());
            self.groups.push(GroupDraft {
                spec,
                name,
                host,
                replicas_span,
                members: start..self.containers.len(),
            });
        }
    }

    fn host_ref(&mut self, raw: &Spanned<String>) -> Option<HostId> {
        let names: Vec<&str> = self
            .hosts
            .iter()
            .map(|h| h.spec.name.value.as_str())
            .collect();
        let found = names.iter().position(|n| *n == raw.value);
        if found.is_none() {
            self.error(unknown_ref(raw, "host", "hosts", &names));
        }
        found.map(HostId)
    }

    /// The number of containers in a group: default 1, and no more than a bridge can take.
    fn replicas(&mut self, spec: &Named<ContainerSpec>) -> Option<usize> {
        let Some(r) = &spec.body.replicas else {
            return Some(1);
        };
        if r.value < 1 {
            self.error(
                Diagnostic::error(
                    r.span.clone(),
                    format!(
                        "`replicas = {}`: a group needs at least 1 container",
                        r.value
                    ),
                )
                .with_help("remove the group if it is not needed"),
            );
            return None;
        }
        match usize::try_from(r.value) {
            Ok(n) if n <= BRIDGE_MAX_PORTS => Some(n),
            _ => {
                let message = format!("`replicas = {}` is more than one bridge can take", r.value);
                self.error(bridge_full(r.span.clone(), message));
                None
            }
        }
    }

    fn explicit_address(
        &mut self,
        spec: &Named<ContainerSpec>,
        replicas: Option<usize>,
    ) -> Option<Spanned<Ipv4Addr>> {
        let raw = spec.body.address.as_ref()?;
        if replicas.is_some_and(|n| n > 1) {
            self.error(
                Diagnostic::error(
                    raw.span.clone(),
                    "`address` is only allowed with `replicas = 1`",
                )
                .with_help("replicas get consecutive addresses automatically; remove `address`"),
            );
            return None;
        }
        address(raw, self.diags).map(|a| Spanned::new(a, raw.span.clone()))
    }

    /// `<group><i>` must itself be a valid name: the group's name plus digits can be too long.
    /// Checking the last (longest) replica covers them all.
    fn replica_name(&mut self, spec: &Named<ContainerSpec>, raw: &str) -> bool {
        let Err(e) = Name::new(raw) else {
            return true;
        };
        let group = &spec.name.value;
        let message = format!("invalid container name `{raw}` (a replica of `{group}`): {e}");
        self.error(Diagnostic::error(spec.name.span.clone(), message));
        false
    }

    // ---- docker networks ----

    /// Every host with a `docker` table or with containers gets a docker network; without a
    /// table it is Docker's default bridge, which exists wherever Docker runs.
    fn docker_nets(&mut self) {
        let used: HashSet<usize> = self
            .groups
            .iter()
            .filter_map(|g| g.host.map(|h| h.0))
            .collect();
        for h in 0..self.hosts.len() {
            let spec = self.hosts[h].spec;
            let docker = match &spec.body.docker {
                Some(d) => self.docker(h, d),
                None if used.contains(&h) => implicit_docker(spec),
                None => continue,
            };
            if let Some(net) = docker.subnet {
                self.docker_vs_lans(h, net, docker.subnet_span.clone());
            }
            self.hosts[h].docker = Some(docker);
        }
        self.untranslated_vs_docker();
    }

    /// The other hosts of a LAN route a `nat = "none"` host's docker subnet to it: no other
    /// docker subnet on that LAN may overlap it, or the route would take its containers'
    /// replies (or theirs) to the wrong host.
    fn untranslated_vs_docker(&mut self) {
        let mut found = Vec::new();
        for (a, ha) in self.hosts.iter().enumerate() {
            let Some(da) = ha.docker.as_ref().filter(|d| d.nat == Some(Nat::None)) else {
                continue;
            };
            let (Some(na), Some(lan)) = (da.subnet, ha.lan) else {
                continue;
            };
            for (b, hb) in self.hosts.iter().enumerate() {
                let Some(nb) = hb.docker.as_ref().and_then(|d| d.subnet) else {
                    continue;
                };
                if a == b || hb.lan != Some(lan) || !overlaps(na, nb) {
                    continue;
                }
                let help = format!(
                    "the other hosts of the LAN route {na} to host `{}`, whose containers \
                     leave untranslated; give one of them another range with \
                     `subnet = \"...\"` in its [hosts.X.docker]",
                    ha.spec.name.value
                );
                found.push(
                    Diagnostic::error(
                        da.subnet_span.clone(),
                        format!(
                            "docker subnet {na} of host `{}` (nat = \"none\") overlaps docker \
                             subnet {nb} of host `{}` on the same LAN",
                            ha.spec.name.value, hb.spec.name.value
                        ),
                    )
                    .with_help(help),
                );
            }
        }
        for d in found {
            self.error(d);
        }
    }

    fn docker(&mut self, h: usize, spec: &DockerSpec) -> DockerDraft {
        let bridge = match &spec.bridge {
            Some(raw) => self.docker_bridge(raw),
            None => IfName::new(DEFAULT_DOCKER_BRIDGE).ok(),
        };
        let (subnet, subnet_span) = match &spec.subnet {
            Some(raw) => (self.docker_subnet(raw), raw.span.clone()),
            None => (Some(DEFAULT_DOCKER_SUBNET), spec.span.clone()),
        };
        let nat = match &spec.nat {
            Some(nat) => self.nat(h, nat),
            None => Some(Nat::Masquerade { ports: None }),
        };
        DockerDraft {
            bridge,
            subnet,
            subnet_span,
            nat,
        }
    }

    fn docker_bridge(&mut self, raw: &Spanned<String>) -> Option<IfName> {
        if RESERVED_IFNAMES.contains(&raw.value.as_str()) {
            let message = format!("the docker bridge cannot be named `{}`", raw.value);
            let help = "`lo` and `eth0` already exist in the host's namespace; \
                        Docker's default is \"docker0\"";
            self.error(Diagnostic::error(raw.span.clone(), message).with_help(help));
            return None;
        }
        // The name is written into nft rules (`oifname "X"`, where `*` is a wildcard and `"`
        // cannot be escaped) and into `lab show --commands`: only characters all of them read
        // as themselves.
        if let Some(c) = raw
            .value
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            let message = format!(
                "invalid docker bridge name: `{}` contains `{}`",
                raw.value,
                c.escape_default()
            );
            let help = "use letters, digits, `-`, `_` and `.`, like \"docker0\" or \"br-lab\"";
            self.error(Diagnostic::error(raw.span.clone(), message).with_help(help));
            return None;
        }
        IfName::new(&raw.value)
            .map_err(|e| {
                self.error(Diagnostic::error(
                    raw.span.clone(),
                    format!("invalid docker bridge name: {e}"),
                ))
            })
            .ok()
    }

    fn docker_subnet(&mut self, raw: &Spanned<String>) -> Option<Ipv4Net> {
        let net = subnet(raw, self.diags)?;
        if net.prefix_len() > 30 {
            self.error(
                Diagnostic::error(
                    raw.span.clone(),
                    format!("docker subnet {net} is too small"),
                )
                .with_help(
                    "it needs a gateway and at least one container address: \
                         use a prefix length of at most 30",
                ),
            );
            return None;
        }
        Some(net)
    }

    /// Container traffic is told apart from LAN traffic by address, so they cannot overlap.
    fn docker_vs_lans(&mut self, h: usize, net: Ipv4Net, span: Span) {
        let host = &self.hosts[h].spec;
        let clash = self
            .lans
            .iter()
            .filter_map(|l| Some((l, l.subnet?)))
            .find(|(_, ln)| overlaps(*ln, net));
        if let Some((lan, ln)) = clash {
            let which = if host
                .body
                .docker
                .as_ref()
                .is_some_and(|d| d.subnet.is_some())
            {
                "docker subnet"
            } else {
                "default docker subnet"
            };
            let help = format!(
                "set another range with `subnet = \"...\"` in [hosts.{}.docker]",
                host.name.value
            );
            let d = Diagnostic::error(
                span,
                format!(
                    "{which} {net} of host `{}` overlaps subnet {ln} of LAN `{}`",
                    host.name.value, lan.spec.name.value
                ),
            )
            .with_help(help);
            self.error(d);
        }
    }

    fn nat(&mut self, h: usize, spec: &NatSpec) -> Option<Nat> {
        match spec {
            NatSpec::Mode(mode) => nat_mode(mode, self.diags),
            NatSpec::Table(t) => self.nat_table(h, t),
        }
    }

    fn nat_table(&mut self, h: usize, t: &NatTableSpec) -> Option<Nat> {
        let ports = t.ports.as_ref().and_then(|p| ports(p, self.diags));
        let ports_ok = t.ports.is_none() || ports.is_some();
        match (&t.snat, &t.masquerade) {
            (Some(_), Some(m)) => {
                let help = "keep `snat` to choose the addresses, \
                            or `masquerade = true` to use the primary one";
                let message = "`snat` and `masquerade` cannot both be set";
                self.error(Diagnostic::error(m.span.clone(), message).with_help(help));
                None
            }
            (None, None) => {
                let help = "e.g. { snat = [\"10.0.0.5\"] } \
                            or { masquerade = true, ports = \"40000-40099\" }";
                let message = "a nat table needs `snat` or `masquerade`";
                self.error(Diagnostic::error(t.span.clone(), message).with_help(help));
                None
            }
            (None, Some(m)) => {
                let ok = masquerade_flags(m, t.persistent.as_ref(), self.diags);
                (ok && ports_ok).then_some(Nat::Masquerade { ports })
            }
            (Some(list), None) => {
                let pool = self.snat_pool(h, list)?;
                let persistent = t.persistent.as_ref().is_some_and(|p| p.value);
                ports_ok.then_some(Nat::Snat {
                    pool,
                    ports,
                    persistent,
                })
            }
        }
    }

    /// The kernel's SNAT range is every address from the lowest to the highest, so the pool
    /// must be a contiguous run of the host's own addresses.
    fn snat_pool(&mut self, h: usize, list: &StringList) -> Option<Vec<Ipv4Addr>> {
        let host = &self.hosts[h];
        let (host_name, own) = (host.spec.name.value.clone(), host.addresses.clone());
        if list.value.is_empty() {
            self.error(
                Diagnostic::error(list.span.clone(), "`snat` is empty").with_help(format!(
                    "list some of host `{host_name}`'s addresses: {}",
                    join(&own)
                )),
            );
            return None;
        }
        let mut pool = Vec::new();
        let mut ok = true;
        for raw in &list.value {
            let Some(addr) = address(raw, self.diags) else {
                ok = false;
                continue;
            };
            if !own.is_empty() && !own.contains(&addr) {
                self.error(
                    Diagnostic::error(
                        raw.span.clone(),
                        format!("{addr} is not an address of host `{host_name}`"),
                    )
                    .with_help(format!("host `{host_name}` has: {}", join(&own))),
                );
                ok = false;
            } else if pool.contains(&addr) {
                self.error(Diagnostic::error(
                    raw.span.clone(),
                    format!("{addr} is listed twice in `snat`"),
                ));
                ok = false;
            } else {
                pool.push(addr);
            }
        }
        pool.sort();
        if let Some(w) = pool
            .windows(2)
            .find(|w| u32::from(w[0]) + 1 != u32::from(w[1]))
        {
            let message = format!(
                "`snat` addresses must be contiguous: nothing between {} and {}",
                w[0], w[1]
            );
            let help = "the kernel's NAT range is every address from the lowest to the highest; \
                        fill the gap or shrink the pool";
            self.error(Diagnostic::error(list.span.clone(), message).with_help(help));
            ok = false;
        }
        ok.then_some(pool)
    }

    // ---- container addresses ----

    /// Explicit addresses are reserved first, so automatic ones (in file order, from .2 up)
    /// flow around them, as `docker run --ip` does.
    fn assign_addresses(&mut self) {
        for h in 0..self.hosts.len() {
            let Some((net, gateway)) = self.hosts[h].docker.as_ref().and_then(|d| {
                let net = d.subnet?;
                Some((net, gateway_of(net)))
            }) else {
                continue;
            };
            let taken = self.reserve_explicit(h, net, gateway);
            self.assign_auto(h, net, taken);
        }
    }

    fn on_host(&self, h: usize) -> Vec<usize> {
        (0..self.containers.len())
            .filter(|&c| self.containers[c].host == Some(HostId(h)))
            .collect()
    }

    fn reserve_explicit(&mut self, h: usize, net: Ipv4Net, gateway: Ipv4Addr) -> HashSet<Ipv4Addr> {
        let mut taken: HashMap<Ipv4Addr, String> = HashMap::new();
        let of = format!("host `{}`'s docker network", self.hosts[h].spec.name.value);
        for c in self.on_host(h) {
            let Some(addr) = self.containers[c].explicit.clone() else {
                continue;
            };
            let raw = Spanned::new(addr.value.to_string(), addr.span.clone());
            if !self.inside(&raw, addr.value, net, &of) {
                continue;
            }
            if addr.value == gateway {
                let host = &self.hosts[h].spec.name.value;
                let message = format!(
                    "address {} is the docker gateway of host `{host}`",
                    addr.value
                );
                let help = "the gateway is the first address of the docker subnet, on the bridge; \
                            containers start at the next one";
                self.error(Diagnostic::error(addr.span.clone(), message).with_help(help));
                continue;
            }
            if let Some(first) = taken.get(&addr.value) {
                self.error(Diagnostic::error(
                    addr.span.clone(),
                    format!(
                        "address {} is already used by container `{first}`",
                        addr.value
                    ),
                ));
                continue;
            }
            taken.insert(addr.value, self.containers[c].raw.clone());
            self.containers[c].address = Some(addr.value);
        }
        taken.into_keys().collect()
    }

    fn assign_auto(&mut self, h: usize, net: Ipv4Net, taken: HashSet<Ipv4Addr>) {
        let gateway = gateway_of(net);
        let last = u32::from(net.broadcast()).saturating_sub(1);
        let mut next = u32::from(gateway).saturating_add(1);
        let mut full_groups = HashSet::new();
        for (n, c) in self.on_host(h).into_iter().enumerate() {
            let group = self.containers[c].group;
            if n == BRIDGE_MAX_PORTS && full_groups.insert(group) {
                let span = self.groups[group].replicas_span.clone();
                let host = &self.hosts[h].spec.name.value;
                let message = format!("host `{host}` has more than {BRIDGE_MAX_PORTS} containers");
                self.error(bridge_full(span, message));
            }
            if self.containers[c].explicit.is_some() {
                continue;
            }
            while next <= last
                && (taken.contains(&Ipv4Addr::from(next)) || next == u32::from(gateway))
            {
                next += 1;
            }
            if next > last {
                if full_groups.insert(group) {
                    let span = self.groups[group].replicas_span.clone();
                    let (host, c) = (&self.hosts[h].spec.name.value, &self.containers[c].raw);
                    let message = format!(
                        "docker subnet {net} of host `{host}` has no address left for container `{c}`"
                    );
                    let help = "use fewer replicas or a larger docker subnet";
                    self.error(Diagnostic::error(span, message).with_help(help));
                }
                continue;
            }
            self.containers[c].address = Some(Ipv4Addr::from(next));
            next += 1;
        }
    }

    // ---- node names ----

    /// LANs, hosts and containers each get a namespace `<lab>-<node>`, so their names share
    /// one space. The later of two clashing definitions is the one reported.
    fn unique_node_names(&mut self) {
        let mut nodes: Vec<(&str, String, Span)> = Vec::new();
        for l in &self.lans {
            nodes.push((
                &l.spec.name.value,
                format!("LAN `{}`", l.spec.name.value),
                l.spec.name.span.clone(),
            ));
        }
        for h in &self.hosts {
            nodes.push((
                &h.spec.name.value,
                format!("host `{}`", h.spec.name.value),
                h.spec.name.span.clone(),
            ));
        }
        for c in &self.containers {
            let g = self.groups[c.group].spec;
            let what = if g.name.value == c.raw {
                format!("container `{}`", c.raw)
            } else {
                format!(
                    "container `{}` (a replica of [containers.{}])",
                    c.raw, g.name.value
                )
            };
            nodes.push((&c.raw, what, g.name.span.clone()));
        }
        let mut first: HashMap<&str, usize> = HashMap::new();
        let mut found = Vec::new();
        for (i, (name, _, _)) in nodes.iter().enumerate() {
            match first.get(name) {
                Some(&j) => found.push((j, i)),
                None => {
                    first.insert(name, i);
                }
            }
        }
        let errors: Vec<Diagnostic> = found
            .into_iter()
            .map(|(i, j)| {
                let (a, b) = if nodes[i].2.start <= nodes[j].2.start {
                    (&nodes[i], &nodes[j])
                } else {
                    (&nodes[j], &nodes[i])
                };
                let message = format!(
                    "node name `{}` is used twice: by {} and by {}",
                    b.0, a.1, b.1
                );
                let help = "LANs, hosts and containers each get a namespace named `<lab>-<node>`, \
                            so their names must all differ";
                Diagnostic::error(b.2.clone(), message).with_help(help)
            })
            .collect();
        self.diags.extend(errors);
    }

    // ---- servers, clients, expectations ----

    fn servers(&mut self, specs: &[Named<ServerSpec>]) -> Vec<Server> {
        let mut out = Vec::new();
        for spec in specs {
            let name = name(&spec.name, "server", self.diags);
            let host = spec.body.host.as_ref().and_then(|h| self.host_ref(h));
            let port = spec.body.port.as_ref().and_then(|p| port(p, self.diags));
            if let (Some(name), Some(host), Some(port)) = (name, host, port) {
                out.push(Server { name, host, port });
            }
        }
        out
    }

    fn clients(
        &mut self,
        specs: &[Named<ClientSpec>],
        servers: &[Server],
    ) -> Vec<Option<ClientGroup>> {
        specs
            .iter()
            .map(|spec| self.client(spec, servers))
            .collect()
    }

    fn client(&mut self, spec: &Named<ClientSpec>, servers: &[Server]) -> Option<ClientGroup> {
        let name = name(&spec.name, "client", self.diags);
        let containers = spec
            .body
            .containers
            .as_ref()
            .map(|l| self.members(&spec.name.value, l));
        let connect = spec.body.connect.as_ref().map(|l| self.targets(l, servers));
        let connections = spec
            .body
            .connections
            .as_ref()
            .and_then(|c| self.connections(c));
        let ping_interval = match &spec.body.ping_interval {
            Some(raw) => self.ping_interval(raw),
            None => Some(DEFAULT_PING_INTERVAL),
        };
        Some(ClientGroup {
            name: name?,
            containers: containers?,
            connect: connect?,
            connections: connections?,
            ping_interval: ping_interval?,
        })
    }

    /// Entries are container groups (all replicas, in order) or single containers.
    fn members(&mut self, client: &str, list: &StringList) -> Vec<ContainerId> {
        if list.value.is_empty() {
            self.error(
                Diagnostic::error(list.span.clone(), "`containers` is empty")
                    .with_help("list container groups like \"c\" or single containers like \"c2\""),
            );
        }
        let mut out: Vec<ContainerId> = Vec::new();
        for raw in &list.value {
            for id in self.resolve_member(raw) {
                if out.contains(&id) {
                    let c = &self.containers[id.0].raw;
                    let d = Diagnostic::error(
                        raw.span.clone(),
                        format!("container `{c}` is listed twice in client `{client}`"),
                    );
                    self.error(d);
                } else {
                    out.push(id);
                }
            }
        }
        out
    }

    fn resolve_member(&mut self, raw: &Spanned<String>) -> Vec<ContainerId> {
        if let Some(g) = self.groups.iter().find(|g| g.spec.name.value == raw.value) {
            return g.members.clone().map(ContainerId).collect();
        }
        if let Some(c) = self.containers.iter().position(|c| c.raw == raw.value) {
            return vec![ContainerId(c)];
        }
        let mut names: Vec<&str> = self
            .groups
            .iter()
            .map(|g| g.spec.name.value.as_str())
            .collect();
        for c in &self.containers {
            if !names.contains(&c.raw.as_str()) {
                names.push(&c.raw);
            }
        }
        let d = unknown_ref(raw, "container", "containers", &names);
        self.error(d);
        Vec::new()
    }

    /// Targets must be the lab's own hosts: the lab has no route anywhere else.
    fn targets(&mut self, list: &StringList, servers: &[Server]) -> Vec<SocketAddrV4> {
        if list.value.is_empty() {
            self.error(
                Diagnostic::error(list.span.clone(), "`connect` is empty")
                    .with_help("list targets like \"192.168.49.5:9000\""),
            );
        }
        list.value
            .iter()
            .filter_map(|raw| self.target(raw, servers))
            .collect()
    }

    fn target(&mut self, raw: &Spanned<String>, servers: &[Server]) -> Option<SocketAddrV4> {
        let Ok(addr) = raw.value.parse::<SocketAddrV4>() else {
            self.error(
                Diagnostic::error(raw.span.clone(), format!("invalid target `{}`", raw.value))
                    .with_help("write an IPv4 address and a port, like \"192.168.49.5:9000\""),
            );
            return None;
        };
        if addr.port() == 0 {
            self.error(Diagnostic::error(
                raw.span.clone(),
                format!("target `{}` has port 0", raw.value),
            ));
            return None;
        }
        let Some(h) = self
            .hosts
            .iter()
            .position(|h| h.addresses.contains(addr.ip()))
        else {
            let listing: Vec<String> = self
                .hosts
                .iter()
                .map(|h| format!("{} ({})", h.spec.name.value, join(&h.addresses)))
                .collect();
            self.error(
                Diagnostic::error(
                    raw.span.clone(),
                    format!("{} is not an address of any host in this lab", addr.ip()),
                )
                .with_help(format!(
                    "clients can only reach the lab's hosts: {}",
                    listing.join(", ")
                )),
            );
            return None;
        };
        if !servers
            .iter()
            .any(|s| s.host == HostId(h) && s.port.get() == addr.port())
        {
            let host = &self.hosts[h].spec.name.value;
            let message = format!("no server listens on {addr} (host `{host}`)");
            let help = format!(
                "connections will be refused; unless that is the point, add a [servers.X] \
                 with host = \"{host}\" and port = {}",
                addr.port()
            );
            self.diags
                .push(Diagnostic::warning(raw.span.clone(), message).with_help(help));
        }
        Some(addr)
    }

    fn connections(&mut self, raw: &Spanned<i64>) -> Option<NonZeroU32> {
        let n = u32::try_from(raw.value).ok().and_then(NonZeroU32::new);
        if n.is_none() {
            self.error(Diagnostic::error(
                raw.span.clone(),
                format!(
                    "`connections = {}`: expected 1 to {} connections per container",
                    raw.value,
                    u32::MAX
                ),
            ));
        }
        n
    }

    fn ping_interval(&mut self, raw: &Spanned<String>) -> Option<Duration> {
        match parse_duration(&raw.value) {
            Ok(d) if d.is_zero() => {
                self.error(Diagnostic::error(
                    raw.span.clone(),
                    "`ping_interval` cannot be zero",
                ));
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                self.error(
                    Diagnostic::error(
                        raw.span.clone(),
                        format!("invalid duration `{}`: {e}", raw.value),
                    )
                    .with_help("write a number and a unit: \"100s\", \"500ms\", \"2m\", \"1.5s\""),
                );
                None
            }
        }
    }

    fn expect(&mut self, lab: &LabSpec) -> Expect {
        let established = lab
            .expect
            .as_ref()
            .and_then(|e| e.established.as_ref())
            .and_then(|c| count_range(c, self.diags));
        Expect { established }
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
                    Some(d) => Some(docker_net(d, Mac::derived(&format!("{lab}/{name}")))?),
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
            server_queues(&mut hosts.get_mut(server.host.0)?.sysctls);
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
        })
    }
}

/// Containers behind `nat = "none"` leave with their own addresses: every other host on their
/// LAN routes their docker subnet via their host's primary address, or no reply could reach
/// them. (Validation made sure no other docker subnet on the LAN overlaps it.)
fn routes_to_untranslated(hosts: &mut [Host]) {
    let routed: Vec<(LanId, Route)> = hosts
        .iter()
        .filter_map(|h| {
            let d = h.docker.as_ref().filter(|d| d.nat == Nat::None)?;
            Some((
                h.lan,
                Route {
                    dst: d.subnet,
                    via: *h.addresses.first()?,
                },
            ))
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

/// A server's host gets queues as long as its listen backlog, unless the lab file sets them.
fn server_queues(sysctls: &mut Vec<Sysctl>) {
    for key in SERVER_SYSCTLS {
        if !sysctls.iter().any(|s| s.key() == key) {
            sysctls.push(
                Sysctl::integer(key, i64::from(SERVER_BACKLOG))
                    .expect("the server's backlog is within the queues' bounds"),
            );
        }
    }
}

/// Docker's default bridge network, for a host that has containers but no `docker` table.
fn implicit_docker(spec: &Named<HostSpec>) -> DockerDraft {
    DockerDraft {
        bridge: IfName::new(DEFAULT_DOCKER_BRIDGE).ok(),
        subnet: Some(DEFAULT_DOCKER_SUBNET),
        subnet_span: spec.span.clone(),
        nat: Some(Nat::Masquerade { ports: None }),
    }
}

fn docker_net(d: &DockerDraft, mac: Mac) -> Option<DockerNet> {
    let subnet = d.subnet?;
    Some(DockerNet {
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
                let bridge = hosts.get(host.0).and_then(|h| h.docker.as_ref());
                bridge.map(|d| d.bridge.clone()).into_iter().collect()
            });
            let veth = (0..=u32::MAX)
                .map(|salt| veth_name(lab, &name, salt))
                .find(|v| !taken.contains(v))?;
            taken.insert(veth.clone());
            Some(Container {
                netns: NetnsName::for_node(lab, &name),
                group: groups.get(c.group)?.name.clone()?,
                name,
                host,
                address,
                mac: Mac::docker_from_ip(address),
                veth,
                sysctls: c.sysctls.clone(),
            })
        })
        .collect()
}

// ---- value checks shared by several tables ----

fn name(raw: &Spanned<String>, kind: &str, d: &mut Vec<Diagnostic>) -> Option<Name> {
    Name::new(&raw.value)
        .map_err(|e| {
            d.push(
                Diagnostic::error(raw.span.clone(), format!("invalid {kind} name: {e}"))
                    .with_help("names become parts of namespace names like `<lab>-<node>`"),
            )
        })
        .ok()
}

/// A LAN, host or container name: a valid [`Name`], and not an interface name every namespace
/// already has.
fn node_name(raw: &Spanned<String>, kind: &str, d: &mut Vec<Diagnostic>) -> Option<Name> {
    let n = name(raw, kind, d)?;
    if kind != "container" && RESERVED_IFNAMES.contains(&n.as_str()) {
        d.push(
            Diagnostic::error(raw.span.clone(), format!("`{n}` cannot be a {kind} name"))
                .with_help(
                    "a LAN's bridge is named after the LAN and its ports after the hosts, \
                     so `lo` (loopback) and `eth0` (the NIC of hosts) are reserved",
                ),
        );
        return None;
    }
    Some(n)
}

fn unknown_ref(raw: &Spanned<String>, kind: &str, section: &str, names: &[&str]) -> Diagnostic {
    let d = Diagnostic::error(raw.span.clone(), format!("unknown {kind} `{}`", raw.value));
    match did_you_mean(&raw.value, names.iter().copied()) {
        Some(s) => d.with_help(format!("did you mean `{s}`?")),
        None if names.is_empty() => {
            d.with_help(format!("define it in a [{section}.{}] table", raw.value))
        }
        None => {
            let known: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
            d.with_help(format!("defined: {}", known.join(", ")))
        }
    }
}

/// LAN hosts and containers each take a port of a bridge, and a bridge has only so many.
fn bridge_full(span: Span, message: String) -> Diagnostic {
    Diagnostic::error(span, message).with_help(format!(
        "a Linux bridge has at most {BRIDGE_MAX_PORTS} ports"
    ))
}

/// A network address like `192.168.49.0/24`, without host bits.
fn subnet(raw: &Spanned<String>, d: &mut Vec<Diagnostic>) -> Option<Ipv4Net> {
    let Ok(net) = raw.value.parse::<Ipv4Net>() else {
        d.push(
            Diagnostic::error(raw.span.clone(), format!("invalid subnet `{}`", raw.value))
                .with_help("write an IPv4 network and prefix length, like \"192.168.49.0/24\""),
        );
        return None;
    };
    if net.trunc() != net {
        d.push(
            Diagnostic::error(
                raw.span.clone(),
                format!("subnet `{net}` has host bits set"),
            )
            .with_help(format!("did you mean {}?", net.trunc())),
        );
        return None;
    }
    Some(net)
}

fn address(raw: &Spanned<String>, d: &mut Vec<Diagnostic>) -> Option<Ipv4Addr> {
    let parsed = raw.value.parse::<Ipv4Addr>();
    if parsed.is_err() {
        let diag = Diagnostic::error(
            raw.span.clone(),
            format!("invalid IPv4 address `{}`", raw.value),
        );
        d.push(if raw.value.contains('/') {
            diag.with_help("write the address without a prefix length; it comes from the subnet")
        } else {
            diag
        });
    }
    parsed.ok()
}

fn port(raw: &Spanned<i64>, d: &mut Vec<Diagnostic>) -> Option<NonZeroU16> {
    let p = u16::try_from(raw.value).ok().and_then(NonZeroU16::new);
    if p.is_none() {
        d.push(Diagnostic::error(
            raw.span.clone(),
            format!("port {} is out of range 1-65535", raw.value),
        ));
    }
    p
}

/// `"20000-29999"`, or `"5000"` for a single port.
fn ports(raw: &Spanned<String>, d: &mut Vec<Diagnostic>) -> Option<PortRange> {
    let text = raw.value.trim();
    let (lo, hi) = text.split_once('-').unwrap_or((text, text));
    let range = match (lo.trim().parse::<u16>(), hi.trim().parse::<u16>()) {
        (Ok(lo), Ok(hi)) => PortRange::new(lo, hi),
        _ => Err(format!(
            "invalid port range `{}`: expected \"lo-hi\" like \"20000-29999\", or one port",
            raw.value
        )),
    };
    range
        .map_err(|e| d.push(Diagnostic::error(raw.span.clone(), e)))
        .ok()
}

fn nat_mode(mode: &Spanned<String>, d: &mut Vec<Diagnostic>) -> Option<Nat> {
    match mode.value.as_str() {
        "masquerade" => Some(Nat::Masquerade { ports: None }),
        "none" => Some(Nat::None),
        other => {
            let diag = Diagnostic::error(mode.span.clone(), format!("unknown nat mode `{other}`"));
            d.push(match did_you_mean(other, ["masquerade", "none"]) {
                Some(s) => diag.with_help(format!("did you mean \"{s}\"?")),
                None => diag.with_help(
                    "use \"masquerade\", \"none\", or a table like { snat = [\"10.0.0.5\"] }",
                ),
            });
            None
        }
    }
}

/// `masquerade = true` is the only meaningful value, and `persistent` is an SNAT option.
fn masquerade_flags(
    m: &Spanned<bool>,
    persistent: Option<&Spanned<bool>>,
    d: &mut Vec<Diagnostic>,
) -> bool {
    let mut ok = true;
    if !m.value {
        d.push(
            Diagnostic::error(m.span.clone(), "`masquerade = false` does not choose a NAT")
                .with_help("write nat = \"none\" to turn NAT off"),
        );
        ok = false;
    }
    if let Some(p) = persistent {
        d.push(Diagnostic::error(
            p.span.clone(),
            "`persistent` only applies to `snat`",
        ));
        ok = false;
    }
    ok
}

/// Only `net.*` sysctls are per namespace; anything else would change the whole machine.
fn sysctls(specs: &[SysctlSpec], d: &mut Vec<Diagnostic>) -> Vec<Sysctl> {
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
    } else if GLOBAL_NET_SYSCTLS.contains(&key) {
        Some((
            format!("sysctl `{key}` cannot be set in a lab namespace"),
            raisable
                .unwrap_or_else(|| "global: only the initial namespace can change it".to_owned()),
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

fn count(n: &Spanned<i64>, d: &mut Vec<Diagnostic>) -> Option<u64> {
    let v = u64::try_from(n.value).ok();
    if v.is_none() {
        d.push(Diagnostic::error(
            n.span.clone(),
            format!("a count cannot be negative, found {}", n.value),
        ));
    }
    v
}

/// `[machine] raise`: the global limits the lab may raise, each known and listed once.
fn may_raise(lab: &LabSpec, d: &mut Vec<Diagnostic>) -> Vec<GlobalLimit> {
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
                let what = if key.starts_with("net.") && !GLOBAL_NET_SYSCTLS.contains(&key) {
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

fn count_range(c: &Spanned<CountSpec>, d: &mut Vec<Diagnostic>) -> Option<CountRange> {
    match &c.value {
        CountSpec::Exact(n) => count(&Spanned::new(*n, c.span.clone()), d).map(CountRange::exact),
        CountSpec::Range {
            min: None,
            max: None,
        } => {
            d.push(
                Diagnostic::error(
                    c.span.clone(),
                    "an expected range needs `min`, `max` or both",
                )
                .with_help("e.g. { min = 1000 } or { min = 1, max = 10 }"),
            );
            None
        }
        CountSpec::Range { min, max } => {
            let lo = min.as_ref().map_or(Some(0), |n| count(n, d));
            let hi = max.as_ref().map_or(Some(u64::MAX), |n| count(n, d));
            let (lo, hi) = (lo?, hi?);
            if lo > hi {
                d.push(Diagnostic::error(
                    c.span.clone(),
                    format!("empty range: `min = {lo}` is larger than `max = {hi}`"),
                ));
                return None;
            }
            Some(CountRange { min: lo, max: hi })
        }
    }
}

/// `"100s"`, `"500ms"`, `"2m"`, `"1h"`, `"1.5s"`: a decimal number and a unit, computed in
/// integer nanoseconds so `"0.1s"` is exactly 100ms.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let unit_nanos: u128 = match unit.trim() {
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        "" => return Err("missing unit (ms, s, m or h)".into()),
        u => return Err(format!("unknown unit `{u}` (use ms, s, m or h)")),
    };
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    let bad = || "expected a number like 100 or 1.5".to_owned();
    if whole.is_empty() || frac.contains('.') || (number.contains('.') && frac.is_empty()) {
        return Err(bad());
    }
    let whole: u128 = whole.parse().map_err(|_| bad())?;
    let frac_digits = frac.len().min(18);
    let frac_value: u128 = if frac.is_empty() {
        0
    } else {
        frac[..frac_digits].parse().map_err(|_| bad())?
    };
    let scale = 10u128.pow(frac_digits as u32);
    let nanos = whole
        .checked_mul(unit_nanos)
        .and_then(|w| w.checked_add(frac_value * unit_nanos / scale))
        .and_then(|n| u64::try_from(n).ok())
        .ok_or("too long")?;
    Ok(Duration::from_nanos(nanos))
}

fn overlaps(a: Ipv4Net, b: Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Docker's gateway: the first host address of the subnet, on the bridge.
fn gateway_of(net: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.network()).saturating_add(1))
}

fn join(addrs: &[Ipv4Addr]) -> String {
    let parts: Vec<String> = addrs.iter().map(Ipv4Addr::to_string).collect();
    parts.join(", ")
}

/// `c` for one replica, `c1`..`cN` for more.
fn replica_names(group: &str, replicas: usize) -> Vec<String> {
    match replicas {
        1 => vec![group.to_owned()],
        n => (1..=n).map(|i| format!("{group}{i}")).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CROSS_HOST: &str = include_str!("../testdata/cross-host.toml");

    /// A valid lab to append sections to; what is appended starts on line 7.
    const BASE: &str = r#"name = "t"
[lans.lan]
subnet = "10.0.0.0/24"
[hosts.a]
lan = "lan"
addresses = ["10.0.0.1"]
"#;

    fn try_load(text: &str) -> Result<Loaded, Vec<Diagnostic>> {
        load(&Source::new("t.toml", text), &LoadOptions::default())
    }

    fn ok(text: &str) -> Loaded {
        match try_load(text) {
            Ok(l) => l,
            Err(d) => panic!("expected a valid lab, got {d:#?}"),
        }
    }

    fn rejected(text: &str) -> Vec<Diagnostic> {
        match try_load(text) {
            Ok(l) => panic!("expected errors, got a plan: {:#?}", l.plan),
            Err(d) => d,
        }
    }

    /// Asserts that loading reports an error containing `message` at `line:col`; returns it
    /// so the test can look at its help.
    fn reported(text: &str, message: &str, at: (usize, usize)) -> Diagnostic {
        let source = Source::new("t.toml", text);
        let diags = rejected(text);
        let found = diags.iter().find(|d| d.message.contains(message));
        let Some(d) = found else {
            panic!("no diagnostic contains {message:?}; got {diags:#?}");
        };
        assert_eq!(source.line_col(d.span.start), at, "{d:?}");
        assert!(d.is_error(), "{d:?}");
        d.clone()
    }

    fn with(extra: &str) -> String {
        format!("{BASE}{extra}")
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    // ---- the happy path ----

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
        let docker = client.docker.as_ref().unwrap();
        assert_eq!(docker.bridge.as_str(), "docker0");
        assert_eq!(docker.subnet.to_string(), "172.17.0.0/16");
        assert_eq!(docker.gateway, ip("172.17.0.1"));
        assert_eq!(docker.nat, Nat::Masquerade { ports: None });
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
        let docker = plan.hosts[0].docker.as_ref().unwrap();
        assert_eq!(docker.bridge.as_str(), "docker0");
        assert_eq!(docker.subnet, DEFAULT_DOCKER_SUBNET);
        assert_eq!(docker.nat, Nat::Masquerade { ports: None });
        assert_eq!(plan.clients[0].ping_interval, Duration::from_secs(100));
        assert_eq!(plan.expect.established, None);
    }

    #[test]
    fn automatic_addresses_flow_around_explicit_ones() {
        let text = with(
            r#"[containers.c]
host = "a"
replicas = 3
[containers.x]
host = "a"
address = "172.17.0.2"
"#,
        );
        let plan = ok(&text).plan;
        let got: Vec<_> = plan
            .containers
            .iter()
            .map(|c| (c.name.as_str(), c.address.to_string()))
            .collect();
        assert_eq!(
            got,
            [
                ("c1", "172.17.0.3".to_owned()),
                ("c2", "172.17.0.4".to_owned()),
                ("c3", "172.17.0.5".to_owned()),
                ("x", "172.17.0.2".to_owned()),
            ]
        );
        assert_eq!(plan.containers[3].mac.to_string(), "02:42:ac:11:00:02");
    }

    #[test]
    fn each_host_has_its_own_docker_network() {
        let text = with(
            r#"[hosts.b]
lan = "lan"
addresses = ["10.0.0.2"]
[containers.x]
host = "a"
[containers.y]
host = "b"
"#,
        );
        let plan = ok(&text).plan;
        assert_eq!(plan.containers[0].address, plan.containers[1].address);
        assert_eq!(plan.containers[0].host, HostId(0));
        assert_eq!(plan.containers[1].host, HostId(1));
        assert_ne!(plan.containers[0].veth, plan.containers[1].veth);
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

    // ---- shape ----

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
    fn lab_without_hosts() {
        reported("name = \"t\"\n", "the lab has no hosts", (1, 1));
        reported("name = \"t\"\n[hosts]\n", "the lab has no hosts", (2, 1));
    }

    // ---- names ----

    #[test]
    fn invalid_names() {
        reported(
            &BASE.replace("\"t\"", "\"my lab\""),
            "invalid lab name",
            (1, 8),
        );
        let text = BASE.replace("[hosts.a]", "[hosts.\"a/b\"]");
        let d = reported(&text, "invalid host name: name `a/b` contains `/`", (4, 8));
        assert!(d.help.unwrap().contains("namespace"));
        let text = with("[servers.\"s s\"]\nhost = \"a\"\nport = 1\n");
        reported(&text, "invalid server name", (7, 10));
    }

    #[test]
    fn lan_and_host_names_must_fit_interface_names() {
        let text = BASE.replace("[lans.lan]", "[lans.abcdefghijklmnop]");
        reported(
            &text,
            "LAN name `abcdefghijklmnop` cannot name the LAN's bridge interface: \
             interface name `abcdefghijklmnop` is 16 bytes",
            (2, 7),
        );
        let text = BASE.replace("[hosts.a]", "[hosts.host-with-long-name]");
        reported(
            &text,
            "host name `host-with-long-name` cannot name the host's port on LAN `lan`'s bridge",
            (4, 8),
        );
    }

    #[test]
    fn lo_and_eth0_are_not_node_names() {
        let text = BASE
            .replace("[lans.lan]", "[lans.lo]")
            .replace("\"lan\"", "\"lo\"");
        reported(&text, "`lo` cannot be a LAN name", (2, 7));
        let text = BASE.replace("[hosts.a]", "[hosts.eth0]");
        reported(&text, "`eth0` cannot be a host name", (4, 8));
    }

    #[test]
    fn node_names_share_one_space() {
        let text = with(
            r#"[hosts.c1]
lan = "lan"
addresses = ["10.0.0.2"]
[containers.c]
host = "a"
replicas = 2
"#,
        );
        reported(
            &text,
            "node name `c1` is used twice: by host `c1` and by container `c1` \
             (a replica of [containers.c])",
            (10, 13),
        );
        let text = with("[containers.lan]\nhost = \"a\"\n");
        reported(
            &text,
            "node name `lan` is used twice: by LAN `lan` and by container `lan`",
            (7, 13),
        );
    }

    #[test]
    fn unknown_references_suggest_names() {
        let text = BASE.replace("lan = \"lan\"", "lan = \"lam\"");
        let d = reported(&text, "unknown LAN `lam`", (5, 7));
        assert_eq!(d.help.as_deref(), Some("did you mean `lan`?"));
        let text = with("[containers.c]\nhost = \"zzz\"\n");
        let d = reported(&text, "unknown host `zzz`", (8, 8));
        assert_eq!(d.help.as_deref(), Some("defined: `a`"));
        let text = with(
            r#"[containers.c]
host = "a"
replicas = 2
[clients.l]
containers = ["c3"]
connect = ["10.0.0.1:1"]
connections = 1
"#,
        );
        let d = reported(&text, "unknown container `c3`", (11, 15));
        assert!(d.help.unwrap().starts_with("did you mean"));
    }

    // ---- subnets and addresses ----

    #[test]
    fn subnet_with_host_bits() {
        let text = BASE.replace("10.0.0.0/24", "10.0.0.1/24");
        let d = reported(&text, "subnet `10.0.0.1/24` has host bits set", (3, 10));
        assert_eq!(d.help.as_deref(), Some("did you mean 10.0.0.0/24?"));
        let text = BASE.replace("10.0.0.0/24", "10.0.0.0");
        reported(&text, "invalid subnet `10.0.0.0`", (3, 10));
    }

    #[test]
    fn lan_subnets_must_not_overlap() {
        let text = with("[lans.b]\nsubnet = \"10.0.0.0/16\"\n");
        reported(
            &text,
            "subnet 10.0.0.0/16 of LAN `b` overlaps subnet 10.0.0.0/24 of LAN `lan`",
            (8, 10),
        );
        let text = with("[lans.b]\nsubnet = \"10.0.0.0/24\"\n");
        reported(&text, "overlaps subnet 10.0.0.0/24 of LAN `lan`", (8, 10));
    }

    #[test]
    fn docker_subnet_must_not_overlap_a_lan() {
        let text = with("[hosts.a.docker]\nsubnet = \"10.0.0.0/25\"\n");
        reported(
            &text,
            "docker subnet 10.0.0.0/25 of host `a` overlaps subnet 10.0.0.0/24 of LAN `lan`",
            (8, 10),
        );
        // Docker's default network counts too, when containers make it exist.
        let text = with("[containers.c]\nhost = \"a\"\n")
            .replace("10.0.0.0/24", "172.17.5.0/24")
            .replace("10.0.0.1", "172.17.5.1");
        reported(
            &text,
            "default docker subnet 172.17.0.0/16 of host `a` overlaps",
            (4, 1),
        );
    }

    /// `nat = "none"`: the LAN's other hosts route the docker subnet to its host, so no other
    /// docker subnet on the LAN may overlap it.
    #[test]
    fn an_untranslated_docker_subnet_is_routed_and_must_be_alone_on_its_lan() {
        let two = format!(
            "{BASE}[hosts.a.docker]\nnat = \"none\"\n[hosts.b]\nlan = \"lan\"\n\
             addresses = [\"10.0.0.2\", \"10.0.0.3\"]\n[hosts.c]\nlan = \"lan\"\n\
             addresses = [\"10.0.0.4\"]\n"
        );
        let plan = ok(&two).plan;
        let routes = |h: usize| plan.hosts[h].routes.clone();
        let to_a = Route {
            dst: "172.17.0.0/16".parse().unwrap(),
            via: "10.0.0.1".parse().unwrap(),
        };
        assert_eq!(routes(0), []);
        assert_eq!(routes(1), [to_a]);
        assert_eq!(routes(2), [to_a]);
        // A masquerading host routes nothing to anyone.
        let masq = two.replace("nat = \"none\"", "nat = \"masquerade\"");
        assert!(ok(&masq).plan.hosts.iter().all(|h| h.routes.is_empty()));
        reported(
            &format!("{two}[hosts.c.docker]\nsubnet = \"172.17.4.0/24\"\n"),
            "docker subnet 172.17.0.0/16 of host `a` (nat = \"none\") overlaps docker subnet \
             172.17.4.0/24 of host `c` on the same LAN",
            (7, 1),
        );
    }

    #[test]
    fn docker_subnet_needs_room() {
        let text = with("[hosts.a.docker]\nsubnet = \"172.17.0.0/31\"\n");
        reported(&text, "docker subnet 172.17.0.0/31 is too small", (8, 10));
    }

    #[test]
    fn host_addresses() {
        let text = BASE.replace("\"10.0.0.1\"", "\"10.0.1.1\"");
        reported(
            &text,
            "address 10.0.1.1 is outside subnet 10.0.0.0/24 of LAN `lan`",
            (6, 14),
        );
        let text = BASE.replace("\"10.0.0.1\"", "\"10.0.0.0\"");
        reported(&text, "address 10.0.0.0 is the network address", (6, 14));
        let text = BASE.replace("\"10.0.0.1\"", "\"10.0.0.1\", \"10.0.0.255\"");
        reported(
            &text,
            "address 10.0.0.255 is the broadcast address",
            (6, 26),
        );
        let text = BASE.replace("\"10.0.0.1\"", "\"10.0.0.1/24\"");
        let d = reported(&text, "invalid IPv4 address `10.0.0.1/24`", (6, 14));
        assert!(d.help.unwrap().contains("without a prefix length"));
        let text = BASE.replace("[\"10.0.0.1\"]", "[]");
        reported(&text, "`addresses` is empty", (6, 13));
    }

    #[test]
    fn host_address_used_twice() {
        let text = with("[hosts.b]\nlan = \"lan\"\naddresses = [\"10.0.0.1\"]\n");
        reported(
            &text,
            "address 10.0.0.1 is already used by host `a`",
            (9, 14),
        );
    }

    #[test]
    fn container_addresses() {
        let two = r#"[containers.x]
host = "a"
address = "172.17.0.5"
[containers.y]
host = "a"
address = "172.17.0.5"
"#;
        reported(
            &with(two),
            "address 172.17.0.5 is already used by container `x`",
            (12, 11),
        );
        let gw = "[containers.x]\nhost = \"a\"\naddress = \"172.17.0.1\"\n";
        let d = reported(
            &with(gw),
            "address 172.17.0.1 is the docker gateway of host `a`",
            (9, 11),
        );
        assert!(d.help.unwrap().contains("first address"));
        let out = "[containers.x]\nhost = \"a\"\naddress = \"172.18.0.5\"\n";
        reported(
            &with(out),
            "outside subnet 172.17.0.0/16 of host `a`'s docker network",
            (9, 11),
        );
        let bcast = "[containers.x]\nhost = \"a\"\naddress = \"172.17.255.255\"\n";
        reported(&with(bcast), "is the broadcast address", (9, 11));
    }

    #[test]
    fn address_needs_a_single_replica() {
        let text = with("[containers.x]\nhost = \"a\"\nreplicas = 2\naddress = \"172.17.0.5\"\n");
        reported(
            &text,
            "`address` is only allowed with `replicas = 1`",
            (10, 11),
        );
    }

    #[test]
    fn replicas_must_be_positive_and_fit() {
        reported(
            &with("[containers.x]\nhost = \"a\"\nreplicas = 0\n"),
            "`replicas = 0`",
            (9, 12),
        );
        let text = with("[containers.x]\nhost = \"a\"\nreplicas = 5000\n");
        let d = reported(
            &text,
            "`replicas = 5000` is more than one bridge can take",
            (9, 12),
        );
        assert!(d.help.unwrap().contains("1023"));
        let text = with(
            "[hosts.a.docker]\nsubnet = \"172.17.0.0/30\"\n[containers.x]\nhost = \"a\"\nreplicas = 2\n",
        );
        reported(
            &text,
            "docker subnet 172.17.0.0/30 of host `a` has no address left for container `x2`",
            (11, 12),
        );
    }

    // ---- docker ----

    #[test]
    fn docker_bridge_names() {
        let text = with("[hosts.a.docker]\nbridge = \"eth0\"\n");
        reported(&text, "the docker bridge cannot be named `eth0`", (8, 10));
        let text = with("[hosts.a.docker]\nbridge = \"lo\"\n");
        reported(&text, "the docker bridge cannot be named `lo`", (8, 10));
        let text = with("[hosts.a.docker]\nbridge = \"docker-bridge-zero\"\n");
        reported(
            &text,
            "invalid docker bridge name: interface name `docker-bridge-zero` is 18 bytes",
            (8, 10),
        );
        for bad in ["br*", "a\\\"b", "a'b", "a$b", "a;b", "a\\\\b"] {
            let text = with(&format!("[hosts.a.docker]\nbridge = \"{bad}\"\n"));
            let d = rejected(&text);
            assert!(
                d[0].message.starts_with("invalid docker bridge name: `"),
                "{bad}: {d:?}"
            );
        }
        let text = with("[hosts.a.docker]\nbridge = \"br-1.x_y\"\n");
        assert_eq!(
            ok(&text).plan.hosts[0]
                .docker
                .as_ref()
                .unwrap()
                .bridge
                .as_str(),
            "br-1.x_y"
        );
        // A bridge named like a container's derived veth: the veth takes another salt.
        let base = format!("{BASE}[containers.c]\nhost = \"a\"\n");
        let veth = ok(&base).plan.containers[0].veth.clone();
        let text = format!("{base}[hosts.a.docker]\nbridge = \"{veth}\"\n");
        let plan = ok(&text).plan;
        assert_ne!(plan.containers[0].veth, veth);
    }

    const NAT_BASE: &str = r#"name = "t"
[lans.lan]
subnet = "10.0.0.0/24"
[hosts.a]
lan = "lan"
addresses = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.5"]
[hosts.a.docker]
"#;

    fn nat_of(nat: &str) -> Nat {
        let plan = ok(&format!("{NAT_BASE}nat = {nat}\n")).plan;
        plan.hosts[0].docker.clone().unwrap().nat
    }

    fn nat_error(nat: &str, message: &str, col: usize) -> Diagnostic {
        reported(&format!("{NAT_BASE}nat = {nat}\n"), message, (8, col))
    }

    #[test]
    fn nat_forms() {
        assert_eq!(nat_of("\"none\""), Nat::None);
        assert_eq!(nat_of("\"masquerade\""), Nat::Masquerade { ports: None });
        assert_eq!(
            nat_of("{ masquerade = true, ports = \"40000-40099\" }"),
            Nat::Masquerade {
                ports: Some(PortRange::new(40000, 40099).unwrap())
            }
        );
        assert_eq!(
            nat_of(
                "{ snat = [\"10.0.0.3\", \"10.0.0.1\", \"10.0.0.2\"], ports = \"5000\", persistent = true }"
            ),
            Nat::Snat {
                pool: vec![ip("10.0.0.1"), ip("10.0.0.2"), ip("10.0.0.3")],
                ports: Some(PortRange::new(5000, 5000).unwrap()),
                persistent: true,
            }
        );
        assert_eq!(
            nat_of("{ snat = [\"10.0.0.5\"] }"),
            Nat::Snat {
                pool: vec![ip("10.0.0.5")],
                ports: None,
                persistent: false
            }
        );
    }

    #[test]
    fn nat_errors() {
        let d = nat_error("\"masqerade\"", "unknown nat mode `masqerade`", 7);
        assert_eq!(d.help.as_deref(), Some("did you mean \"masquerade\"?"));
        let d = nat_error(
            "{ masquerade = false }",
            "`masquerade = false` does not choose a NAT",
            22,
        );
        assert_eq!(
            d.help.as_deref(),
            Some("write nat = \"none\" to turn NAT off")
        );
        nat_error(
            "{ snat = [\"10.0.0.1\"], masquerade = true }",
            "`snat` and `masquerade` cannot both be set",
            43,
        );
        nat_error(
            "{ ports = \"1-2\" }",
            "a nat table needs `snat` or `masquerade`",
            7,
        );
        nat_error(
            "{ masquerade = true, persistent = true }",
            "`persistent` only applies to `snat`",
            41,
        );
        nat_error(
            "{ masquerade = true, ports = \"2000-1000\" }",
            "port range 2000-1000 is empty",
            36,
        );
        nat_error(
            "{ masquerade = true, ports = \"20000:29999\" }",
            "invalid port range `20000:29999`",
            36,
        );
        nat_error(
            "{ masquerade = true, ports = \"0-10\" }",
            "port 0 cannot be part of a port range",
            36,
        );
    }

    #[test]
    fn snat_pool_errors() {
        let d = nat_error(
            "{ snat = [\"10.0.0.9\"] }",
            "10.0.0.9 is not an address of host `a`",
            17,
        );
        assert_eq!(
            d.help.as_deref(),
            Some("host `a` has: 10.0.0.1, 10.0.0.2, 10.0.0.3, 10.0.0.5")
        );
        nat_error(
            "{ snat = [\"10.0.0.3\", \"10.0.0.5\"] }",
            "`snat` addresses must be contiguous: nothing between 10.0.0.3 and 10.0.0.5",
            16,
        );
        nat_error(
            "{ snat = [\"10.0.0.1\", \"10.0.0.1\"] }",
            "10.0.0.1 is listed twice in `snat`",
            29,
        );
        nat_error("{ snat = [] }", "`snat` is empty", 16);
    }

    // ---- [machine] ----

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
                 `net.netfilter.nf_conntrack_max`"
            )
        );
        assert_eq!(d[3].message, "`fs.file-max` is listed twice");
    }

    // ---- sysctls ----

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
            Some("global: only the initial namespace can change it")
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

    // ---- servers and clients ----

    /// A server on a:9000 and three containers c1..c3; append a `[clients.l]` body.
    fn client_lab(body: &str) -> String {
        with(&format!(
            r#"[containers.c]
host = "a"
replicas = 3
[servers.s]
host = "a"
port = 9000
[clients.l]
{body}"#
        ))
    }

    #[test]
    fn client_members_and_targets() {
        let text = client_lab(
            "containers = [\"c3\", \"c1\"]\nconnect = [\"10.0.0.1:9000\", \"10.0.0.1:9000\"]\nconnections = 2\nping_interval = \"1.5s\"\n",
        );
        let plan = ok(&text).plan;
        let l = &plan.clients[0];
        assert_eq!(l.containers, [ContainerId(2), ContainerId(0)]);
        assert_eq!(l.ping_interval, Duration::from_millis(1500));
        assert_eq!(l.target_of(3), "10.0.0.1:9000".parse().unwrap());
    }

    #[test]
    fn client_errors() {
        let body = |s: &str| client_lab(&format!("{s}\n"));
        let rest = "connect = [\"10.0.0.1:9000\"]\nconnections = 1";
        let text = body(&format!("containers = [\"c\", \"c2\"]\n{rest}"));
        reported(
            &text,
            "container `c2` is listed twice in client `l`",
            (14, 20),
        );
        let text = body(&format!("containers = []\n{rest}"));
        reported(&text, "`containers` is empty", (14, 14));

        let members = "containers = [\"c\"]\n";
        let text = body(&format!(
            "{members}connect = [\"10.0.0.99:9000\"]\nconnections = 1"
        ));
        let d = reported(
            &text,
            "10.0.0.99 is not an address of any host in this lab",
            (15, 12),
        );
        assert_eq!(
            d.help.as_deref(),
            Some("clients can only reach the lab's hosts: a (10.0.0.1)")
        );
        let text = body(&format!(
            "{members}connect = [\"10.0.0.1:0\"]\nconnections = 1"
        ));
        reported(&text, "target `10.0.0.1:0` has port 0", (15, 12));
        let text = body(&format!(
            "{members}connect = [\"10.0.0.1\"]\nconnections = 1"
        ));
        reported(&text, "invalid target `10.0.0.1`", (15, 12));
        let text = body(&format!("{members}connect = []\nconnections = 1"));
        reported(&text, "`connect` is empty", (15, 11));

        let target = "connect = [\"10.0.0.1:9000\"]\n";
        let text = body(&format!("{members}{target}connections = 0"));
        reported(
            &text,
            "`connections = 0`: expected 1 to 4294967295",
            (16, 15),
        );
        let text = body(&format!("{members}{target}connections = 4294967296"));
        reported(&text, "`connections = 4294967296`", (16, 15));
        let text = body(&format!(
            "{members}{target}connections = 1\nping_interval = \"0s\""
        ));
        reported(&text, "`ping_interval` cannot be zero", (17, 17));
        let text = body(&format!(
            "{members}{target}connections = 1\nping_interval = \"10\""
        ));
        reported(&text, "invalid duration `10`: missing unit", (17, 17));
    }

    #[test]
    fn server_hosts_get_queues_as_long_as_the_backlog() {
        let sysctls = |plan: &Plan, h: usize| -> Vec<(String, String)> {
            plan.hosts[h]
                .sysctls
                .iter()
                .map(|s| (s.key().to_owned(), s.value().to_owned()))
                .collect()
        };
        let pair = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        let backlog = SERVER_BACKLOG.to_string();
        // Two servers on one host: each queue once; a host without a server: none.
        let text = with(
            "[hosts.b]\nlan = \"lan\"\naddresses = [\"10.0.0.2\"]\n\
             [servers.s]\nhost = \"a\"\nport = 1\n[servers.t]\nhost = \"a\"\nport = 2\n",
        );
        let plan = ok(&text).plan;
        assert_eq!(
            sysctls(&plan, 0),
            [
                pair("net.core.somaxconn", &backlog),
                pair("net.ipv4.tcp_max_syn_backlog", &backlog)
            ]
        );
        assert_eq!(sysctls(&plan, 1), []);
        // What the lab file sets stays, first.
        let text = BASE.replace(
            "addresses",
            "sysctls = { \"net.core.somaxconn\" = 100 }\naddresses",
        ) + "[servers.s]\nhost = \"a\"\nport = 1\n";
        let plan = ok(&text).plan;
        assert_eq!(
            sysctls(&plan, 0),
            [
                pair("net.core.somaxconn", "100"),
                pair("net.ipv4.tcp_max_syn_backlog", &backlog)
            ]
        );
    }

    #[test]
    fn server_port_and_host() {
        let text = with("[servers.s]\nhost = \"a\"\nport = 0\n");
        reported(&text, "port 0 is out of range 1-65535", (9, 8));
        let text = with("[servers.s]\nhost = \"a\"\nport = 65536\n");
        reported(&text, "port 65536 is out of range", (9, 8));
        let text = with("[servers.s]\nhost = \"b\"\nport = 1\n");
        reported(&text, "unknown host `b`", (8, 8));
    }

    #[test]
    fn connecting_where_no_server_listens_is_a_warning() {
        let text =
            client_lab("containers = [\"c\"]\nconnect = [\"10.0.0.1:9001\"]\nconnections = 1\n");
        let loaded = ok(&text);
        let [w] = &loaded.warnings[..] else {
            panic!("{:?}", loaded.warnings)
        };
        assert!(!w.is_error());
        assert_eq!(w.message, "no server listens on 10.0.0.1:9001 (host `a`)");
        assert_eq!(
            Source::new("t.toml", text.as_str()).line_col(w.span.start),
            (15, 12)
        );
        // Alongside an error, the warning is still reported.
        let bad = text.replace("connections = 1", "connections = 0");
        assert!(rejected(&bad).iter().any(|d| !d.is_error()));
    }

    // ---- expect ----

    #[test]
    fn expected_counts() {
        let est = |s: &str| {
            ok(&with(&format!("[expect]\nestablished = {s}\n")))
                .plan
                .expect
                .established
        };
        assert_eq!(
            est("{ min = 10 }"),
            Some(CountRange {
                min: 10,
                max: u64::MAX
            })
        );
        assert_eq!(est("{ max = 10 }"), Some(CountRange { min: 0, max: 10 }));
        assert_eq!(
            est("{ min = 1, max = 2 }"),
            Some(CountRange { min: 1, max: 2 })
        );
        assert_eq!(est("7"), Some(CountRange::exact(7)));
        let bad = |s: &str| with(&format!("[expect]\nestablished = {s}\n"));
        reported(
            &bad("{ min = 5, max = 1 }"),
            "empty range: `min = 5` is larger than `max = 1`",
            (8, 15),
        );
        reported(
            &bad("{}"),
            "an expected range needs `min`, `max` or both",
            (8, 15),
        );
        reported(&bad("-1"), "a count cannot be negative", (8, 15));
    }

    #[test]
    fn lan_subnet_needs_room_for_hosts() {
        let text = BASE.replace("10.0.0.0/24", "10.0.0.0/31");
        reported(
            &text,
            "LAN subnet 10.0.0.0/31 has no room for host addresses",
            (3, 10),
        );
    }

    #[test]
    fn bridges_have_a_port_limit() {
        // 1000 + 30 containers on one host: the group that goes past the limit is reported.
        let text = with(
            "[hosts.a.docker]\nsubnet = \"172.16.0.0/12\"\n\
             [containers.x]\nhost = \"a\"\nreplicas = 1000\n\
             [containers.y]\nhost = \"a\"\nreplicas = 30\n",
        );
        let d = reported(&text, "host `a` has more than 1023 containers", (14, 12));
        assert_eq!(
            d.help.as_deref(),
            Some("a Linux bridge has at most 1023 ports")
        );
        // 1024 hosts on one LAN.
        let mut text = "name = \"t\"\n[lans.lan]\nsubnet = \"10.0.0.0/16\"\n".to_owned();
        for i in 1..=1024 {
            let (hi, lo) = (i / 256, i % 256);
            text += &format!("[hosts.h{i}]\nlan = \"lan\"\naddresses = [\"10.0.{hi}.{lo}\"]\n");
        }
        reported(
            &text,
            "LAN `lan` has more than 1023 hosts",
            (3 + 3 * 1023 + 1, 8),
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("100s"), Ok(Duration::from_secs(100)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0.1s"), Ok(Duration::from_millis(100)));
        for bad in [
            "",
            "s",
            "1",
            "1.s",
            ".5s",
            "1..5s",
            "1d",
            "-1s",
            "99999999999999999999h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn diagnostics_are_sorted_by_position() {
        let text = with("[containers.c]\nhost = \"zz\"\nreplicas = 0\nbogus = 1\n");
        let starts: Vec<_> = rejected(&text).iter().map(|d| d.span.start).collect();
        assert!(starts.len() >= 3);
        assert!(starts.is_sorted(), "{starts:?}");
    }
}
