//! `lab plan`: the smallest lab that holds N connections through Docker-style NAT, and the
//! limits that decide it. The search is pure arithmetic on a [`Machine`] (read once by `cli`,
//! faked by tests); the layout it finds is written as a lab file ([`write`]) and loaded back
//! through the validator, so the NAT paths and the machine estimate a plan shows are the ones
//! `lab check` and `lab run` compute from that very file.
//!
//! "Smallest" is, in this order: fewest client hosts (each is a namespace with a NAT table of
//! its own, forced by `nf_conntrack_max`), then fewest NAT paths (addresses), then fewest
//! containers per host.

mod cloud;
pub mod limits;
mod spread;
pub mod write;

use std::net::Ipv4Addr;
use std::num::{NonZeroU16, NonZeroU32, NonZeroU64};

use anyhow::Result;
use serde::Serialize;

use crate::error::{invalid, unsupported};
use crate::lab::capacity::Resources;
use crate::lab::cloud::CloudProfile;
use crate::nat::predict::{DEFAULT_LOCAL_PORTS, DEFAULT_PATH_CAPACITY};

pub use limits::{Limit, LimitStatus};
pub use write::Layout;

/// The NAT a plan is for. Each variant says how many ports a path has and how a client host's
/// source addresses are used; a cloud's NAT profile plans with the cloud's published limits
/// ([`cloud`]), each client host playing one NAT gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NatChoice {
    /// Docker's default: every container leaves as its host's one address.
    Masquerade,
    /// `snat to` a pool of the host's addresses; the kernel hashes each (container, server)
    /// pair to one of them.
    SnatPool,
    /// An AWS NAT gateway: 55,000 ports per address and destination, up to 8 addresses.
    AwsNatGateway,
    /// GCP Cloud NAT, static allocation: a block of `min_ports_per_vm` ports per VM.
    GcpCloudNat,
    /// Azure load balancer outbound SNAT: ports per VM by backend pool size.
    AzureLbOutbound,
}

impl NatChoice {
    pub fn as_str(self) -> &'static str {
        match self.profile() {
            Some(p) => p.name(),
            None if self == NatChoice::SnatPool => "snat-pool",
            None => "masquerade",
        }
    }

    /// The cloud whose NAT each client host plays, if any.
    pub fn profile(self) -> Option<CloudProfile> {
        match self {
            NatChoice::Masquerade | NatChoice::SnatPool => None,
            NatChoice::AwsNatGateway => Some(CloudProfile::AwsNatGateway),
            NatChoice::GcpCloudNat => Some(CloudProfile::GcpCloudNat),
            NatChoice::AzureLbOutbound => Some(CloudProfile::AzureLbOutbound),
        }
    }

    /// Ports per NAT path (SNAT address, server address, server port): the kernel's 64,512,
    /// an AWS address's 55,000 per destination; for a cloud that gives each VM a block, the
    /// block's size, which the plan chooses ([`Shape::path_capacity`]).
    pub fn path_capacity(self) -> u32 {
        match self.profile() {
            None => DEFAULT_PATH_CAPACITY,
            Some(p) => p.address_ports().size(),
        }
    }

    /// Whether a client host translates to several addresses chosen by the kernel's hash.
    fn hashes_a_pool(self) -> bool {
        matches!(self, NatChoice::SnatPool)
    }
}

/// What the person asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub connections: NonZeroU64,
    pub port: NonZeroU16,
    pub nat: NatChoice,
    pub server_addresses: Option<NonZeroU32>,
    pub source_addresses: Option<NonZeroU32>,
    pub containers_per_host: Option<NonZeroU32>,
    /// GCP's `min_ports_per_vm` (a power of two); `None`: the plan chooses.
    pub ports_per_vm: Option<NonZeroU32>,
}

impl Request {
    pub fn new(connections: NonZeroU64) -> Self {
        Self {
            connections,
            port: DEFAULT_PORT,
            nat: NatChoice::Masquerade,
            server_addresses: None,
            source_addresses: None,
            containers_per_host: None,
            ports_per_vm: None,
        }
    }

    /// The request as the `lab plan` command line that makes it.
    pub fn command_line(&self) -> String {
        let mut s = format!("lab plan --connections {}", self.connections);
        if self.port != DEFAULT_PORT {
            s.push_str(&format!(" --port {}", self.port));
        }
        if self.nat != NatChoice::Masquerade {
            s.push_str(&format!(" --nat {}", self.nat.as_str()));
        }
        for (flag, v) in [
            ("--server-addresses", self.server_addresses),
            ("--source-addresses", self.source_addresses),
            ("--containers-per-host", self.containers_per_host),
            ("--ports-per-vm", self.ports_per_vm),
        ] {
            if let Some(v) = v {
                s.push_str(&format!(" {flag} {v}"));
            }
        }
        s
    }
}

pub const DEFAULT_PORT: NonZeroU16 = NonZeroU16::new(9000).expect("non-zero");

/// This machine's numbers, as the plan uses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Machine {
    /// `net.netfilter.nf_conntrack_max`: entries each namespace may hold.
    pub conntrack_max: u64,
    /// The open-files hard limit of a process (`RLIMIT_NOFILE`), what each agent raises to.
    pub open_files_per_process: u64,
    /// `fs.file-max` and the files open now (`fs.file-nr`).
    pub file_max: u64,
    pub files_in_use: u64,
    /// `MemAvailable` of /proc/meminfo, bytes.
    pub memory_available: u64,
}

impl Machine {
    /// From what `lab::capacity` read; every number must be known.
    pub fn from_resources(r: &Resources) -> Result<Self> {
        let mut unknown = Vec::new();
        let mut need = |v: Option<u64>, what: &'static str| {
            v.unwrap_or_else(|| {
                unknown.push(what);
                0
            })
        };
        let m = Self {
            conntrack_max: need(
                r.conntrack_max,
                "net.netfilter.nf_conntrack_max (is nf_conntrack loaded? or pass --conntrack-max)",
            ),
            open_files_per_process: need(r.open_files_per_process, "the open-files limit"),
            file_max: need(r.file_max, "fs.file-max"),
            files_in_use: need(r.files_in_use, "fs.file-nr"),
            memory_available: need(r.memory_available, "MemAvailable in /proc/meminfo"),
        };
        if unknown.is_empty() {
            Ok(m)
        } else {
            Err(unsupported(format!(
                "cannot plan without this machine's {}",
                unknown.join(", ")
            )))
        }
    }

    /// The same numbers as `lab::capacity` takes them.
    pub fn resources(&self) -> Resources {
        Resources {
            file_max: Some(self.file_max),
            files_in_use: Some(self.files_in_use),
            memory_available: Some(self.memory_available),
            conntrack_max: Some(self.conntrack_max),
            open_files_per_process: Some(self.open_files_per_process),
            unchangeable: Vec::new(),
            // Speed only: a plan does not depend on it.
            ..Resources::default()
        }
    }

    /// Entries a client host's namespace is planned to hold at most: a 64th of the table stays
    /// free for what the bridge itself tracks (an IGMP entry) and for connects still retrying.
    pub fn conntrack_usable(&self) -> u64 {
        (self.conntrack_max - self.conntrack_max / 64).max(1)
    }
}

/// Connections a NAT path is planned to carry at most: a 16th of its ports stays free, so the
/// NAT's search from a random offset finds a free port at the first SYN (near a full path the
/// last ports take tens of seconds of retries; kernel.md section 2).
pub fn path_fill(capacity: u32) -> u32 {
    capacity - capacity / 16
}

/// Ports one container has towards one destination with Docker's default
/// `ip_local_port_range` (32768-60999), and with the range widened to "1024 65535".
pub const DOCKER_LOCAL_PORTS: u32 = DEFAULT_LOCAL_PORTS;
pub const WIDE_LOCAL_PORTS: u32 = 65_535 - 1024 + 1;

/// Client hosts take LAN addresses .101-.254 of the lab's /24, server addresses .2-.99.
const CLIENT_ADDRESSES: u32 = 154;
/// More hosts than this is not a lab for one machine.
const MOST_HOSTS: u64 = CLIENT_ADDRESSES as u64;

/// The layout the search settled on, before it is written out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    pub hosts: u32,
    /// Addresses per client host: 1 for masquerade, the pool's size for SNAT.
    pub sources: u32,
    /// In slot order: container j of every host connects to `servers[j % len]`.
    pub servers: Vec<Ipv4Addr>,
    pub containers: u32,
    /// Containers get `ip_local_port_range = "1024 65535"`.
    pub wide_ports: bool,
    /// For each server slot with a pool, the containers per pool address the hash gives.
    pub spread: Vec<spread::SlotSpread>,
    /// Ports one NAT path holds: 64,512, an AWS address's 55,000 per destination, or a VM's
    /// block (GCP, Azure).
    pub path_capacity: u32,
    /// The block of ports each VM (container) gets on one address (GCP, Azure).
    pub ports_per_vm: Option<u32>,
}

impl Shape {
    pub fn total_containers(&self) -> u64 {
        u64::from(self.hosts) * u64::from(self.containers)
    }

    /// Containers of host `h` (from 0) that hold one connection more than the rest: the
    /// remainder of N over all containers goes round the hosts, one container at a time, so
    /// hosts differ by one connection at most, and on each host it is the first containers.
    pub fn fuller_containers(&self, n: u64, h: u32) -> u32 {
        let r = n % self.total_containers();
        let h = u64::from(h);
        if r <= h {
            0
        } else {
            (r - h).div_ceil(u64::from(self.hosts)) as u32
        }
    }

    /// Connections of container j (from 0) of any host: N over all containers, plus one for
    /// the fuller ones.
    pub fn connections_of(&self, n: u64, fuller: bool) -> u64 {
        n / self.total_containers() + u64::from(fuller)
    }
}

/// Finds the smallest layout for `req` on `machine` (pure).
pub fn search(req: &Request, machine: &Machine) -> Result<Shape> {
    let n = req.connections.get();
    let nat = req.nat;
    if let Some(profile) = nat.profile() {
        return cloud::search(req, machine, profile);
    }
    if req.ports_per_vm.is_some() {
        return Err(invalid(
            "--ports-per-vm is GCP Cloud NAT's min_ports_per_vm: use it with --nat gcp-cloud-nat",
        ));
    }
    if !nat.hashes_a_pool() && req.source_addresses.is_some_and(|m| m.get() > 1) {
        return Err(invalid(
            "masquerade translates to one address per host: for more source addresses use \
             --nat snat-pool",
        ));
    }
    if let (Some(c), Some(k)) = (req.containers_per_host, req.server_addresses)
        && c < k
    {
        return Err(invalid(format!(
            "{c} containers per host cannot use {k} server addresses: each container connects \
             to one; give at least as many containers (--containers-per-host {k})"
        )));
    }
    let fill = u64::from(path_fill(nat.path_capacity()));
    let ct = machine.conntrack_usable();
    let most_servers = spread::SERVER_CANDIDATES as u64;
    for h in n.div_ceil(ct)..=MOST_HOSTS.min(n) {
        let per_host = n.div_ceil(h);
        let paths = per_host.div_ceil(fill);
        let given = |v: Option<NonZeroU32>| v.map(|v| u64::from(v.get()));
        let (m, k) = match (nat.hashes_a_pool(), given(req.source_addresses)) {
            (false, _) => (1, given(req.server_addresses).unwrap_or(paths)),
            (true, Some(m)) => (m, given(req.server_addresses).unwrap_or(paths.div_ceil(m))),
            (true, None) => match given(req.server_addresses) {
                Some(k) => (paths.div_ceil(k).max(2), k),
                None => (paths.max(2), 1),
            },
        };
        if m * k < paths {
            continue;
        }
        if k > most_servers {
            return Err(invalid(format!(
                "{k} server addresses do not fit the lab's LAN ({most_servers} at most): use \
                 --nat snat-pool for more paths per server address"
            )));
        }
        if h * m > u64::from(CLIENT_ADDRESSES) {
            break;
        }
        let first = per_host.div_ceil(u64::from(DOCKER_LOCAL_PORTS)).max(k);
        let first = if nat.hashes_a_pool() {
            first.max(paths)
        } else {
            first
        };
        let tries: Vec<u64> = match given(req.containers_per_host) {
            Some(c) => vec![c],
            None => (first..=first + 8 * m * k + 16).collect(),
        };
        for c in tries {
            let t = h * c;
            let (q, r) = (n / t, n % t);
            let per_container = q + u64::from(r > 0);
            if per_container == 0 || per_container > u64::from(WIDE_LOCAL_PORTS) {
                continue;
            }
            // The remainder goes round the hosts: the first holds at most one more.
            let busiest_host = c * q + r.div_ceil(h);
            if busiest_host > ct {
                continue;
            }
            let (Ok(sources), Ok(containers)) = (u32::try_from(m), u32::try_from(c)) else {
                continue;
            };
            let servers = spread::choose(containers, k as usize, sources, per_container, fill);
            if let Some((servers, spread)) = servers {
                return Ok(Shape {
                    hosts: h as u32,
                    sources,
                    servers,
                    containers,
                    wide_ports: per_container > u64::from(DOCKER_LOCAL_PORTS),
                    spread,
                    path_capacity: nat.path_capacity(),
                    ports_per_vm: None,
                });
            }
        }
    }
    Err(no_layout(n, machine))
}

fn no_layout(n: u64, machine: &Machine) -> anyhow::Error {
    unsupported(format!(
        "no layout of at most {MOST_HOSTS} client hosts holds {n} connections here \
         (nf_conntrack_max = {} per namespace); fewer connections, or raise \
         net.netfilter.nf_conntrack_max",
        machine.conntrack_max
    ))
}

/// Plans `req` on `machine`: the search, the lab file, and the file loaded back and checked.
pub fn plan(req: &Request, machine: &Machine, lab_name: &str) -> Result<Layout> {
    let shape = search(req, machine)?;
    write::layout(req, machine, &shape, lab_name)
}

#[cfg(test)]
mod tests;
