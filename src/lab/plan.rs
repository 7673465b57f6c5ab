//! The resolved lab: every name, namespace, address, MAC and interface name decided.
//!
//! A `Plan` only comes out of `validate::validate`, and its fields are types whose constructors
//! check their invariants, so code that builds, shows or tears down a lab never re-checks input.
//! Nothing here does I/O.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::num::{NonZeroU16, NonZeroU32};
use std::time::Duration;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

pub use super::cloud::{CloudNat, CloudProfile, VmBlock};
use super::command::Command;

pub use super::limits::GlobalLimit;

/// Listen backlog of the article's servers, and the size of the queues that cap it in every
/// host that runs one (`net.core.somaxconn`, `net.ipv4.tcp_max_syn_backlog`), so no connection
/// is lost to a full queue.
pub const SERVER_BACKLOG: u32 = 65_535;

/// The sysctls a host that runs a server gets, unless its own `sysctls` set them.
pub const SERVER_SYSCTLS: [&str; 2] = ["net.core.somaxconn", "net.ipv4.tcp_max_syn_backlog"];

/// Longest interface name the kernel accepts (IFNAMSIZ - 1).
pub const IFNAME_MAX: usize = 15;

/// A name the kernel accepts for a network interface: 1..=15 bytes, no `/`, `:`, whitespace,
/// and not `.`, `..`, `all` or `default`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IfName(String);

impl IfName {
    pub fn new(name: &str) -> Result<Self, String> {
        if name.is_empty() {
            return Err("an interface name cannot be empty".into());
        }
        if name.len() > IFNAME_MAX {
            return Err(format!(
                "interface name `{name}` is {} bytes; Linux allows at most {IFNAME_MAX}",
                name.len()
            ));
        }
        if name == "." || name == ".." {
            return Err(format!("`{name}` is not a valid interface name"));
        }
        if name == "all" || name == "default" {
            // The kernel refuses them (EINVAL) when it registers the interface's sysctls.
            return Err(format!(
                "`{name}` cannot name an interface: Linux keeps /proc/sys/net/ipv4/conf/{name} \
                 for settings of its own, where every interface has a directory of its name"
            ));
        }
        if let Some(c) = name
            .chars()
            .find(|c| *c == '/' || *c == ':' || c.is_whitespace() || c.is_control())
        {
            return Err(format!(
                "interface name `{name}` contains `{}`, which Linux does not allow",
                c.escape_default()
            ));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The NIC of hosts and containers, as in a VM or a Docker container.
    pub fn eth0() -> Self {
        Self("eth0".to_owned())
    }
}

impl fmt::Display for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A lab or node name: ASCII letters, digits, `-`, `_` and `.`, starting with a letter or digit.
/// These become parts of namespace names (`<netns dir>/<lab>-<node>`) and sometimes interface
/// names, so the charset is the intersection of what both accept and what a shell needs no
/// quoting for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Name(String);

/// Longest lab or node name: keeps `<lab>-<node>` well under NAME_MAX and readable in `ip netns`.
pub const NAME_MAX: usize = 63;

impl Name {
    pub fn new(name: &str) -> Result<Self, String> {
        let first_ok = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric());
        if !first_ok {
            return Err(if name.is_empty() {
                "a name cannot be empty".to_owned()
            } else {
                format!("name `{name}` must start with a letter or a digit")
            });
        }
        if let Some(c) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            return Err(format!(
                "name `{name}` contains `{}`; use letters, digits, `-`, `_` and `.` only",
                c.escape_default()
            ));
        }
        if name.len() > NAME_MAX {
            return Err(format!(
                "name `{name}` is {} bytes long; at most {NAME_MAX} are allowed",
                name.len()
            ));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A network namespace name as `ip netns` shows it: `<lab>-<node>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NetnsName(String);

impl NetnsName {
    pub fn for_node(lab: &Name, node: &Name) -> Self {
        Self(format!("{lab}-{node}"))
    }

    /// Wraps a name read back from a state file; such names were made by `for_node`.
    pub fn from_state(name: String) -> Self {
        Self(name)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NetnsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A MAC address. Containers get Docker's IP-derived one: 02:42 followed by the IPv4 bytes
/// (Docker up to 27.x; 28+ randomises it, which would make labs differ run to run).
///
/// The default, all zeros, only fills in for records written before plans carried the bridges'
/// MACs; such a lab is up already, and nothing reads its bridge MACs again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    pub fn docker_from_ip(ip: Ipv4Addr) -> Self {
        let o = ip.octets();
        Self([0x02, 0x42, o[0], o[1], o[2], o[3]])
    }
}

impl Mac {
    /// A stable locally administered MAC for a bridge: Docker's `02:42` prefix and 4 bytes
    /// derived from `seed` (Docker picks them at random; stable ones make runs comparable).
    pub fn derived(seed: &str) -> Self {
        let h = fnv1a(seed.bytes());
        let b = h.to_be_bytes();
        Self([0x02, 0x42, b[0], b[1], b[2], b[3]])
    }
}

fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl Serialize for Mac {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl std::str::FromStr for Mac {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let mut mac = [0u8; 6];
        let mut parts = text.split(':');
        for byte in &mut mac {
            let part = parts
                .next()
                .ok_or_else(|| format!("MAC address `{text}` is too short"))?;
            *byte =
                u8::from_str_radix(part, 16).map_err(|_| format!("bad MAC address `{text}`"))?;
        }
        if parts.next().is_some() {
            return Err(format!("MAC address `{text}` is too long"));
        }
        Ok(Self(mac))
    }
}

impl<'de> Deserialize<'de> for Mac {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A per-namespace kernel setting, e.g. `net.ipv4.ip_local_port_range = "1024 65535"`.
/// Only `net.*` keys are accepted: everything else is global and would change the machine.
///
/// The value is kept as written (the build writes it, `lab show --commands` prints it) beside
/// what it means ([`Setting`]) where the lab knows the key: such a value was checked against
/// the kernel's own bounds when it was made, so downstream code reads the typed value and never
/// parses the text again.
///
/// Records store `{ "key", "value" }` only; the setting is derived again on load, and a value
/// that no longer validates (a record of a lab whose build failed on it) is kept as plain text
/// so that the lab can still be torn down.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "SysctlRecord", into = "SysctlRecord")]
pub struct Sysctl {
    key: String,
    value: String,
    setting: Setting,
}

/// What a sysctl's value means, for the keys the lab knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    /// `net.ipv4.ip_local_port_range`: the ports connect() picks local ports from.
    LocalPortRange(PortRange),
    /// A single integer within the kernel's bounds for the key ([`KNOWN_INTEGER_SYSCTLS`]).
    Integer(i64),
    /// A key the lab does not know: written as given, the kernel judges it.
    Text,
}

/// `net.ipv4.ip_local_port_range`.
pub const LOCAL_PORT_RANGE_SYSCTL: &str = "net.ipv4.ip_local_port_range";

/// `net.ipv4.ip_unprivileged_port_start`: the kernel refuses a local port range that starts
/// below it, and a value above the range's first port.
pub const UNPRIVILEGED_PORT_START_SYSCTL: &str = "net.ipv4.ip_unprivileged_port_start";

/// Every port but 0.
pub const ALL_PORTS: PortRange = PortRange {
    lo: NonZeroU16::new(1).unwrap(),
    hi: NonZeroU16::new(65_535).unwrap(),
};

/// A new network namespace's `ip_local_port_range`.
pub const KERNEL_LOCAL_PORT_RANGE: PortRange = PortRange {
    lo: NonZeroU16::new(32_768).unwrap(),
    hi: NonZeroU16::new(60_999).unwrap(),
};

/// A new network namespace's `ip_unprivileged_port_start`.
pub const KERNEL_UNPRIVILEGED_PORT_START: u16 = 1024;

/// Integer sysctls the lab knows: key, the kernel's inclusive bounds (`proc_dointvec_minmax`'s
/// `extra1`/`extra2`, or an `int`'s for plain `proc_dointvec`) and a valid example (the
/// kernel's default) for messages.
pub const KNOWN_INTEGER_SYSCTLS: &[(&str, i64, i64, i64)] = &[
    // tcp_syn_retries_min = 1, tcp_syn_retries_max = MAX_TCP_SYNCNT (127).
    ("net.ipv4.tcp_syn_retries", 1, 127, 6),
    // extra1 = SYSCTL_ZERO; an int.
    ("net.core.somaxconn", 0, i32::MAX as i64, 4096),
    // proc_dointvec: any int.
    (
        "net.ipv4.tcp_max_syn_backlog",
        i32::MIN as i64,
        i32::MAX as i64,
        4096,
    ),
    // devinet_sysctl_forward over proc_dointvec: any int, non-zero means on.
    ("net.ipv4.ip_forward", i32::MIN as i64, i32::MAX as i64, 1),
    // ip_privileged_port_min = 0, ip_privileged_port_max = 65535.
    (UNPRIVILEGED_PORT_START_SYSCTL, 0, 65_535, 1024),
    // SYSCTL_ZERO..=SYSCTL_TWO.
    ("net.ipv4.tcp_tw_reuse", 0, 2, 2),
];

/// Why a sysctl's value is refused: what is wrong, and what a valid value looks like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysctlError {
    pub message: String,
    pub help: String,
}

impl Sysctl {
    /// A setting of `key` to `value` (as written), checked against the kernel's rules where the
    /// lab knows the key. The key itself (a `net.*` name, per namespace) is the caller's to check.
    pub fn new(key: &str, value: &str) -> Result<Self, SysctlError> {
        let setting = Setting::parse(key, value)?;
        Ok(Self {
            key: key.to_owned(),
            value: value.to_owned(),
            setting,
        })
    }

    /// A known integer sysctl set to `n`, like the server's queues; `n` must be in its bounds.
    pub fn integer(key: &str, n: i64) -> Result<Self, SysctlError> {
        Self::new(key, &n.to_string())
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// The value as written in the lab file.
    pub fn value(&self) -> &str {
        &self.value
    }

    pub fn setting(&self) -> Setting {
        self.setting
    }

    /// The file under /proc/sys that holds this key (dots become slashes).
    pub fn proc_path(&self) -> String {
        format!("/proc/sys/{}", self.key.replace('.', "/"))
    }
}

impl Setting {
    fn parse(key: &str, value: &str) -> Result<Self, SysctlError> {
        if key == LOCAL_PORT_RANGE_SYSCTL {
            return parse_port_range(key, value).map(Setting::LocalPortRange);
        }
        if let Some(&(_, min, max, example)) =
            KNOWN_INTEGER_SYSCTLS.iter().find(|(k, ..)| *k == key)
        {
            let bounds = if min == i64::from(i32::MIN) && max == i64::from(i32::MAX) {
                "an integer".to_owned()
            } else {
                format!("an integer from {min} to {max}")
            };
            let n = parse_int(value).filter(|n| (min..=max).contains(n));
            return n.map(Setting::Integer).ok_or_else(|| SysctlError {
                message: format!("invalid value {value:?} for sysctl `{key}`: it must be {bounds}"),
                help: format!("write {bounds}, like \"{example}\""),
            });
        }
        Ok(Setting::Text)
    }
}

/// An integer as the kernel's `proc_dointvec` reads it: optional `-`, decimal digits,
/// whitespace around.
fn parse_int(text: &str) -> Option<i64> {
    let t = text.trim();
    let digits = t.strip_prefix('-').unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse().ok()
}

/// `ip_local_port_range`: two ports (1..=65535) separated by whitespace, the first no larger
/// than the last (`ipv4_local_port_range` in net/ipv4/sysctl_net_ipv4.c). The kernel also
/// refuses a first port below `ip_unprivileged_port_start`; that depends on the namespace's
/// other settings and is checked where they are all known.
fn parse_port_range(key: &str, value: &str) -> Result<PortRange, SysctlError> {
    let help = "write the first and the last local port, 1 to 65535, the first no larger \
                than the last, like \"1024 65535\""
        .to_owned();
    let err = |why: String| SysctlError {
        message: format!("invalid value {value:?} for sysctl `{key}`: {why}"),
        help: help.clone(),
    };
    let parts: Vec<&str> = value.split_whitespace().collect();
    let [lo, hi] = parts[..] else {
        return Err(err(format!(
            "it must be two ports, the first and the last; this is {} {}",
            parts.len(),
            if parts.len() == 1 { "word" } else { "words" }
        )));
    };
    let port = |p: &str| match parse_int(p) {
        Some(n) if (1..=65_535).contains(&n) => Ok(n as u16),
        Some(n) => Err(err(format!("port {n} is out of 1 to 65535"))),
        None => Err(err(format!("`{p}` is not a port number"))),
    };
    let (lo, hi) = (port(lo)?, port(hi)?);
    if lo > hi {
        return Err(err(format!(
            "the first port, {lo}, is larger than the last, {hi} (the kernel refuses it with \
             EINVAL)"
        )));
    }
    PortRange::new(lo, hi).map_err(err)
}

/// The record form of a [`Sysctl`].
#[derive(Serialize, Deserialize)]
struct SysctlRecord {
    key: String,
    value: String,
}

impl From<SysctlRecord> for Sysctl {
    fn from(r: SysctlRecord) -> Self {
        let setting = Setting::parse(&r.key, &r.value).unwrap_or(Setting::Text);
        Self {
            key: r.key,
            value: r.value,
            setting,
        }
    }
}

impl From<Sysctl> for SysctlRecord {
    fn from(s: Sysctl) -> Self {
        Self {
            key: s.key,
            value: s.value,
        }
    }
}

/// The local port range a namespace with these sysctls uses: the set one, or the kernel's
/// default.
pub fn local_port_range(sysctls: &[Sysctl]) -> PortRange {
    sysctls
        .iter()
        .find_map(|s| match s.setting {
            Setting::LocalPortRange(r) => Some(r),
            _ => None,
        })
        .unwrap_or(KERNEL_LOCAL_PORT_RANGE)
}

/// An inclusive range of TCP/UDP ports, `lo <= hi`, neither zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRange {
    lo: NonZeroU16,
    hi: NonZeroU16,
}

impl PortRange {
    pub fn new(lo: u16, hi: u16) -> Result<Self, String> {
        let (Some(l), Some(h)) = (NonZeroU16::new(lo), NonZeroU16::new(hi)) else {
            return Err("port 0 cannot be part of a port range".into());
        };
        if lo > hi {
            return Err(format!(
                "port range {lo}-{hi} is empty: the first port is larger than the last"
            ));
        }
        Ok(Self { lo: l, hi: h })
    }

    pub fn lo(&self) -> u16 {
        self.lo.get()
    }

    pub fn hi(&self) -> u16 {
        self.hi.get()
    }

    /// Number of ports in the range.
    pub fn size(&self) -> u32 {
        u32::from(self.hi()) - u32::from(self.lo()) + 1
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.lo, self.hi)
    }
}

/// How a docker bridge translates container traffic leaving the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Nat {
    /// Docker's default: `ip saddr <subnet> oifname != <bridge> masquerade`.
    Masquerade {
        ports: Option<PortRange>,
        /// kube-proxy's `--random-fully` (`masquerade fully-random`): every port chosen at
        /// random, never the container's own; the capacity stays the same.
        #[serde(default)]
        random_fully: bool,
    },
    /// Docker's `com.docker.network.host_ipv4`, generalised to a pool of the host's addresses.
    Snat {
        /// A non-empty set of the host's own LAN addresses, contiguous and ascending, because
        /// the kernel's NAT range is `min..=max`.
        pool: Vec<Ipv4Addr>,
        ports: Option<PortRange>,
        persistent: bool,
        #[serde(default)]
        random_fully: bool,
    },
    /// A managed cloud NAT the host plays (`nat = { profile = "aws-nat-gateway" }`): its
    /// addresses are the NAT addresses, its ports shared as the cloud shares them.
    Cloud(CloudNat),
    /// `enable_ip_masquerade=false`: containers leave with their own addresses.
    None,
}

impl Nat {
    /// Docker's default: masquerade, the kernel's ports.
    pub const MASQUERADE: Nat = Nat::Masquerade {
        ports: None,
        random_fully: false,
    };
}

/// An L2 segment: a bridge in a namespace of its own, one port per attached host.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Lan {
    pub name: Name,
    pub netns: NetnsName,
    pub subnet: Ipv4Net,
    /// The bridge inside the LAN's namespace; named after the LAN.
    pub bridge: IfName,
    /// The bridge's MAC, fixed ([`Mac::derived`] from the namespace name): else the bridge would
    /// take its lowest port's random one, different on every build.
    #[serde(default)]
    pub mac: Mac,
}

/// Index into `Plan::lans`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LanId(pub usize);

/// Index into `Plan::hosts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct HostId(pub usize);

/// Index into `Plan::containers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ContainerId(pub usize);

/// A machine: a namespace with one NIC (`eth0`) on its LAN.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Host {
    pub name: Name,
    pub netns: NetnsName,
    pub lan: LanId,
    /// The host's NIC, like a VM's `eth0`.
    pub nic: IfName,
    /// The other end of the NIC's veth, a port of the LAN bridge; named after the host.
    pub lan_port: IfName,
    /// Non-empty; the first is the primary address (the one MASQUERADE picks).
    pub addresses: Vec<Ipv4Addr>,
    /// Prefix length of the LAN subnet, used for every address.
    pub prefix_len: u8,
    /// The lab file's, then, on a host that runs a server, [`SERVER_SYSCTLS`] at
    /// [`SERVER_BACKLOG`] where the file does not set them.
    pub sysctls: Vec<Sysctl>,
    /// Routes beyond the LAN's own subnet: to the docker subnet of every other host on the LAN
    /// whose `nat = "none"` lets its containers out with their own addresses (what a Docker
    /// user without NAT sets up on the network, so that replies find their way back).
    #[serde(default)]
    pub routes: Vec<Route>,
    pub docker: Option<Docker>,
}

/// A host's Docker: how its daemon writes firewall rules, and its bridge networks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Docker {
    /// daemon.json's `firewall-backend`.
    pub firewall: FirewallBackend,
    /// Docker's default bridge network (`docker0`), which every Docker host has.
    pub default_bridge: DockerNet,
    /// User-defined bridge networks (`docker network create`), in creation order.
    #[serde(default)]
    pub networks: Vec<DockerNet>,
}

impl Docker {
    /// Every bridge network of the host, the default bridge first, in creation order.
    pub fn all_networks(&self) -> impl Iterator<Item = &DockerNet> {
        std::iter::once(&self.default_bridge).chain(&self.networks)
    }

    /// The network `id` names; `None` only for an id from another host.
    pub fn network(&self, id: NetworkId) -> Option<&DockerNet> {
        self.all_networks().nth(id.0)
    }

    /// Every network with its id, the default bridge first.
    pub fn networks_with_ids(&self) -> impl Iterator<Item = (NetworkId, &DockerNet)> {
        self.all_networks()
            .enumerate()
            .map(|(i, n)| (NetworkId(i), n))
    }
}

/// Which of its host's Docker networks a container is attached to: an index into
/// [`Docker::all_networks`], where 0 is the default bridge.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct NetworkId(pub usize);

impl NetworkId {
    /// Docker's default bridge (`docker0`), where containers go without `--network`.
    pub const DEFAULT_BRIDGE: NetworkId = NetworkId(0);
}

/// What Docker calls its default bridge network (`docker network ls`).
pub const DEFAULT_BRIDGE_NETWORK: &str = "bridge";

/// How a Docker daemon writes its firewall (daemon.json `"firewall-backend"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FirewallBackend {
    /// Docker's default: iptables rules, stored by iptables-nft as `table ip nat` / `ip filter`.
    #[default]
    IptablesNft,
    /// Docker 29's native nftables rules (`"firewall-backend": "nftables"`): the tables
    /// `ip docker-bridges` and `ip6 docker-bridges`, with verdict maps and per-bridge chains.
    Nftables,
}

impl FirewallBackend {
    /// daemon.json's value.
    pub fn name(self) -> &'static str {
        match self {
            FirewallBackend::IptablesNft => "iptables-nft",
            FirewallBackend::Nftables => "nftables",
        }
    }

    /// What reports say about it, e.g. `nftables (Docker 29 native)`.
    pub fn describe(self) -> &'static str {
        match self {
            FirewallBackend::IptablesNft => "iptables-nft (Docker's default)",
            FirewallBackend::Nftables => "nftables (Docker 29 native)",
        }
    }
}

/// A container's address on a Docker network of its host: what Docker 29's nftables rules
/// guard with a `DROP DIRECT ACCESS` rule per container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The bridge of the container's network.
    pub bridge: IfName,
    pub address: Ipv4Addr,
}

/// A route in a host's main table: `dst via gateway dev eth0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub dst: Ipv4Net,
    pub via: Ipv4Addr,
}

/// A Docker bridge network on a host: the default bridge or a user-defined one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DockerNet {
    /// The network's Docker name: `bridge` for the default bridge, else the lab file's
    /// `[hosts.H.docker.networks.NAME]`.
    #[serde(default = "default_bridge_network")]
    pub name: Name,
    pub bridge: IfName,
    /// The bridge's MAC (the containers' gateway), fixed ([`Mac::derived`] from
    /// `<lab>/<host>`, `<lab>/<host>/<network>` for a user-defined one) where Docker picks one
    /// at random.
    #[serde(default)]
    pub mac: Mac,
    pub subnet: Ipv4Net,
    /// First host address of the subnet, on the bridge.
    pub gateway: Ipv4Addr,
    pub nat: Nat,
}

fn default_bridge_network() -> Name {
    Name(DEFAULT_BRIDGE_NETWORK.to_owned())
}

/// A container: its own namespace with `eth0` on a host's docker bridge.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Container {
    /// `c1`, `c2`, ... for a replica set, or the set's name when it has one replica.
    pub name: Name,
    /// The `[containers.<group>]` table this container came from.
    pub group: Name,
    pub netns: NetnsName,
    pub host: HostId,
    /// The host's network whose bridge its veth is a port of.
    #[serde(default)]
    pub network: NetworkId,
    pub address: Ipv4Addr,
    pub mac: Mac,
    /// Host end of the veth pair, `veth` + 7 hex digits as Docker names it (derived from the lab
    /// and container names, so it is stable across runs and unique on the host).
    pub veth: IfName,
    pub sysctls: Vec<Sysctl>,
}

impl Container {
    /// The container's `net.ipv4.ip_local_port_range`, or the kernel's default: the ports its
    /// connections to one destination can use before NAT.
    pub fn local_ports(&self) -> PortRange {
        local_port_range(&self.sysctls)
    }
}

/// The article's server: listens on `port` on every address of its host.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Server {
    pub name: Name,
    pub host: HostId,
    pub port: NonZeroU16,
    /// The user's own server; `None`: the built-in one.
    #[serde(default)]
    pub command: Option<Command>,
    /// Copies started (sharing the port with SO_REUSEPORT); `None`: one for a command, as many
    /// as the open-files limit needs for the built-in server.
    #[serde(default)]
    pub processes: Option<NonZeroU32>,
    /// Who the program runs as (`user = "..."`, a user of this machine); `None`: the user who
    /// ran `sudo lab`, else `nobody`.
    #[serde(default)]
    pub user: Option<String>,
}

/// The article's client, run in each of `containers`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClientGroup {
    pub name: Name,
    /// Non-empty.
    pub containers: Vec<ContainerId>,
    /// Non-empty; the i-th container of the group connects to `connect[i % len]`.
    pub connect: Vec<SocketAddrV4>,
    /// Per container.
    pub connections: NonZeroU32,
    #[serde(with = "duration_secs")]
    pub ping_interval: Duration,
    /// The user's own load tester; `None`: the built-in client.
    #[serde(default)]
    pub command: Option<Command>,
    /// Processes per container; `None`: one for a command, as many as the open-files limit
    /// needs for the built-in client (which never runs fewer than asked).
    #[serde(default)]
    pub processes: Option<NonZeroU32>,
    /// Who the program runs as, as for a server.
    #[serde(default)]
    pub user: Option<String>,
    /// How the built-in client paces itself; `lab run`'s flags override each.
    #[serde(default)]
    pub pacing: Pacing,
}

/// The built-in client's pace, per container (shared among its processes); `None`: the
/// command line's value, or its default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Pacing {
    /// A connect not established after this long is abandoned and counted as timed out.
    #[serde(with = "opt_duration_secs")]
    pub connect_timeout: Option<Duration>,
    /// New connects per second.
    pub rate: Option<NonZeroU32>,
    /// Connects in progress at once.
    pub in_flight: Option<NonZeroU32>,
}

/// `[run]`: how `lab run` paces the whole run; its flags override each.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunSettings {
    /// The run has settled when the counts stood still this long.
    #[serde(with = "opt_duration_secs")]
    pub settle: Option<Duration>,
    /// The run ends after this long whatever happens.
    #[serde(with = "opt_duration_secs")]
    pub timeout: Option<Duration>,
    /// After the ramp settles, keep every connection open this long.
    pub hold: Option<Hold>,
}

/// How long a run holds its connections after the ramp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    For(Duration),
    /// Until Ctrl-C (or SIGTERM).
    Forever,
}

impl Serialize for Hold {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Hold::For(d) => s.serialize_f64(d.as_secs_f64()),
            Hold::Forever => s.serialize_str("forever"),
        }
    }
}

impl<'de> Deserialize<'de> for Hold {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Secs(f64),
            Word(String),
        }
        match Raw::deserialize(d)? {
            Raw::Secs(s) => Duration::try_from_secs_f64(s)
                .map(Hold::For)
                .map_err(serde::de::Error::custom),
            Raw::Word(w) if w == "forever" => Ok(Hold::Forever),
            Raw::Word(w) => Err(serde::de::Error::custom(format!("hold `{w}`"))),
        }
    }
}

impl ClientGroup {
    /// The target of the i-th container of the group.
    pub fn target_of(&self, i: usize) -> SocketAddrV4 {
        self.connect[i % self.connect.len()]
    }
}

/// An expected count: exact, or a closed range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountRange {
    pub min: u64,
    pub max: u64,
}

impl CountRange {
    pub fn exact(n: u64) -> Self {
        Self { min: n, max: n }
    }

    pub fn contains(&self, n: u64) -> bool {
        self.min <= n && n <= self.max
    }
}

impl fmt::Display for CountRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.min == self.max {
            write!(f, "{}", self.min)
        } else {
            write!(f, "{}..={}", self.min, self.max)
        }
    }
}

/// What `lab run` checks at the end.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Expect {
    pub established: Option<CountRange>,
}

/// A validated lab.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub name: Name,
    pub description: String,
    pub lans: Vec<Lan>,
    pub hosts: Vec<Host>,
    pub containers: Vec<Container>,
    pub servers: Vec<Server>,
    pub clients: Vec<ClientGroup>,
    pub expect: Expect,
    /// Global limits `lab run` may raise for this lab (`[machine] raise`); empty: none.
    #[serde(default)]
    pub may_raise: Vec<GlobalLimit>,
    /// `[run]`.
    #[serde(default)]
    pub run: RunSettings,
    /// `[machine] tcp_tables`.
    #[serde(default)]
    pub tcp_tables: TcpTables,
}

/// Whose TCP established-hash a busy namespace uses (`[machine] tcp_tables`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TcpTables {
    /// A namespace that will hold many sockets gets a table of its own, sized for them.
    #[default]
    Sized,
    /// Every namespace uses the host's one table, as the kernel does by default: to compare, or
    /// to show a class what the shared table costs.
    Shared,
}

impl TcpTables {
    pub const ALL: [TcpTables; 2] = [TcpTables::Sized, TcpTables::Shared];

    pub fn name(self) -> &'static str {
        match self {
            TcpTables::Sized => "sized",
            TcpTables::Shared => "shared",
        }
    }
}

/// `net.ipv4.tcp_child_ehash_entries`: the size of the established-hash each namespace created
/// from this one gets (0: the host's shared table). Per namespace, read at creation.
pub const CHILD_EHASH_SYSCTL: &str = "net.ipv4.tcp_child_ehash_entries";

/// Sockets from which a namespace gets an established-hash of its own: below, the machine's
/// shared table (262,144 buckets here) keeps its chains short.
pub const OWN_EHASH_FROM: u64 = 16_384;

/// The kernel's largest `tcp_child_ehash_entries` (`tcp_child_ehash_entries_max`, 16 Mi).
pub const MAX_EHASH_ENTRIES: u64 = 16 << 20;

/// The established-hash for a namespace that will hold `sockets`: two buckets a socket, so that a
/// lookup at the end of the ramp walks a chain of half a node on average, not one (the kernel
/// rounds up to a power of two anyway; 16 bytes a socket), within its bounds; `None` (the shared
/// table) for few.
pub fn ehash_entries_for(sockets: u64) -> Option<u32> {
    (sockets >= OWN_EHASH_FROM)
        .then(|| (2 * sockets).next_power_of_two().min(MAX_EHASH_ENTRIES) as u32)
}

impl Plan {
    /// TCP sockets each host and each container will hold at most, from the clients'
    /// connections: a container its own, a host those to its addresses (servers are on hosts).
    pub fn expected_sockets(&self) -> (Vec<u64>, Vec<u64>) {
        let mut hosts = vec![0u64; self.hosts.len()];
        let mut containers = vec![0u64; self.containers.len()];
        for g in &self.clients {
            let n = u64::from(g.connections.get());
            for (i, &cid) in g.containers.iter().enumerate() {
                containers[cid.0] += n;
                let dst = *g.target_of(i).ip();
                if let Some(h) = self.hosts.iter().position(|h| h.addresses.contains(&dst)) {
                    hosts[h] += n;
                }
            }
        }
        (hosts, containers)
    }

    /// The established-hash of host `id`'s own, if it will hold many sockets.
    pub fn host_ehash(&self, id: HostId) -> Option<u32> {
        if self.tcp_tables == TcpTables::Shared {
            return None;
        }
        ehash_entries_for(self.expected_sockets().0[id.0])
    }

    /// The established-hash each container of host `id` gets: one size for them all (they are
    /// created at once from the host's namespace), sized for the busiest.
    pub fn containers_ehash(&self, id: HostId) -> Option<u32> {
        if self.tcp_tables == TcpTables::Shared {
            return None;
        }
        let (_, per) = self.expected_sockets();
        let most = self
            .containers
            .iter()
            .zip(&per)
            .filter(|(c, _)| c.host == id)
            .map(|(_, n)| *n)
            .max()?;
        ehash_entries_for(most)
    }

    pub fn lan(&self, id: LanId) -> &Lan {
        &self.lans[id.0]
    }

    pub fn host(&self, id: HostId) -> &Host {
        &self.hosts[id.0]
    }

    pub fn container(&self, id: ContainerId) -> &Container {
        &self.containers[id.0]
    }

    /// Every namespace of the lab in build order: LANs, hosts, containers.
    /// Teardown goes in the reverse order.
    pub fn namespaces(&self) -> Vec<NetnsName> {
        let lans = self.lans.iter().map(|l| l.netns.clone());
        let hosts = self.hosts.iter().map(|h| h.netns.clone());
        let containers = self.containers.iter().map(|c| c.netns.clone());
        lans.chain(hosts).chain(containers).collect()
    }

    /// The namespace of a node (lan, host or container) by its name.
    pub fn netns_of(&self, node: &str) -> Option<&NetnsName> {
        let lans = self.lans.iter().map(|l| (&l.name, &l.netns));
        let hosts = self.hosts.iter().map(|h| (&h.name, &h.netns));
        let containers = self.containers.iter().map(|c| (&c.name, &c.netns));
        lans.chain(hosts)
            .chain(containers)
            .find(|(n, _)| n.as_str() == node)
            .map(|(_, ns)| ns)
    }

    /// Containers attached to the docker bridges of `host`, in address order.
    pub fn containers_of(&self, host: HostId) -> impl Iterator<Item = &Container> {
        self.containers.iter().filter(move |c| c.host == host)
    }

    /// The containers of `host` as endpoints of its Docker networks, in plan order.
    pub fn endpoints_of(&self, host: HostId) -> Vec<Endpoint> {
        self.containers_of(host)
            .filter_map(|c| {
                Some(Endpoint {
                    bridge: self.network_of(c)?.bridge.clone(),
                    address: c.address,
                })
            })
            .collect()
    }

    /// Containers attached to network `network` of `host`.
    pub fn containers_on(
        &self,
        host: HostId,
        network: NetworkId,
    ) -> impl Iterator<Item = &Container> {
        self.containers_of(host)
            .filter(move |c| c.network == network)
    }

    /// The Docker network a container is attached to.
    pub fn network_of(&self, c: &Container) -> Option<&DockerNet> {
        self.host(c.host).docker.as_ref()?.network(c.network)
    }
}

/// Docker's host-side veth name for a container: `veth` + 7 hex digits. Docker picks them at
/// random; `lab` derives them (FNV-1a of lab and container name, plus a salt bumped on the rare
/// collision) so every run of a lab looks the same and `lab show --commands` can print them.
pub fn veth_name(lab: &Name, container: &Name, salt: u32) -> IfName {
    let h = fnv1a(
        lab.as_str()
            .bytes()
            .chain([0])
            .chain(container.as_str().bytes())
            .chain(salt.to_le_bytes()),
    );
    // 7 hex digits = 28 bits; the name is always 11 bytes, so it is always valid.
    IfName(format!("veth{:07x}", h & 0x0fff_ffff))
}

/// The bridge of a user-defined network when the lab file names none: `br-` + 12 hex digits,
/// as Docker names it after the network's id (random there; derived here from the host and
/// network names with 64-bit FNV-1a, so every run looks the same). The bridge lives in the
/// host's own namespace, so the lab's name is left out: `--name` copies and `lab show
/// --commands` build the same names.
pub fn user_bridge_name(host: &str, network: &str) -> IfName {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in host.bytes().chain([0]).chain(network.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // FNV barely mixes a last byte into the high bits, and networks are often named alike
    // (egress1, egress2): splitmix64's finaliser spreads it, so the names look as unrelated as
    // Docker's.
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    // 12 hex digits = 48 bits; the name is always 15 bytes, the kernel's limit.
    IfName(format!("br-{:012x}", h & 0xffff_ffff_ffff))
}

mod opt_duration_secs {
    use std::time::Duration;

    use serde::Deserialize as _;

    pub fn serialize<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_f64(d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        Option::<f64>::deserialize(d)?
            .map(|secs| Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom))
            .transpose()
    }
}

mod duration_secs {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = <f64 as serde::Deserialize>::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ehash_sizes() {
        assert_eq!(ehash_entries_for(0), None);
        assert_eq!(ehash_entries_for(OWN_EHASH_FROM - 1), None);
        assert_eq!(ehash_entries_for(OWN_EHASH_FROM), Some(32_768));
        assert_eq!(ehash_entries_for(25_000), Some(65_536));
        assert_eq!(ehash_entries_for(1_000_000), Some(1 << 21));
        assert_eq!(ehash_entries_for(100_000_000), Some(16 << 20));
    }

    #[test]
    fn ifname_limits() {
        assert!(IfName::new("docker0").is_ok());
        assert!(IfName::new("abcdefghijklmno").is_ok());
        assert!(
            IfName::new("abcdefghijklmnop")
                .unwrap_err()
                .contains("16 bytes")
        );
        assert!(IfName::new("a/b").is_err());
        assert!(IfName::new("a b").is_err());
        assert!(IfName::new("..").is_err());
        assert!(IfName::new("default").unwrap_err().contains("/proc/sys"));
        assert!(IfName::new("all").is_err());
        assert!(IfName::new("defaults").is_ok());
        assert!(IfName::new("").is_err());
    }

    #[test]
    fn names() {
        assert!(Name::new("cross-host").is_ok());
        assert!(Name::new("c_1.x").is_ok());
        assert!(Name::new("-x").is_err());
        assert!(Name::new("a/b").unwrap_err().contains("`/`"));
        assert!(Name::new("ü").is_err());
        assert!(Name::new(&"a".repeat(64)).is_err());
    }

    #[test]
    fn docker_mac() {
        let mac = Mac::docker_from_ip(Ipv4Addr::new(172, 17, 0, 2));
        assert_eq!(mac.to_string(), "02:42:ac:11:00:02");
    }

    #[test]
    fn veth_names_are_stable_and_docker_shaped() {
        let lab = Name::new("cross-host").unwrap();
        let c1 = Name::new("c1").unwrap();
        let a = veth_name(&lab, &c1, 0);
        assert_eq!(a, veth_name(&lab, &c1, 0));
        assert_ne!(a, veth_name(&lab, &c1, 1));
        assert_ne!(a, veth_name(&lab, &Name::new("c2").unwrap(), 0));
        assert_eq!(a.as_str().len(), 11);
        assert!(a.as_str().starts_with("veth"));
        assert!(a.as_str()[4..].chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn user_bridge_names_are_stable_and_docker_shaped() {
        let a = user_bridge_name("h", "egress1");
        assert_eq!(a, user_bridge_name("h", "egress1"));
        assert_ne!(a, user_bridge_name("h", "egress2"));
        assert_ne!(a, user_bridge_name("h2", "egress1"));
        assert_eq!(a.as_str().len(), IFNAME_MAX);
        assert!(a.as_str().starts_with("br-"));
        assert!(a.as_str()[3..].chars().all(|c| c.is_ascii_hexdigit()));
        assert!(IfName::new(a.as_str()).is_ok());
    }

    #[test]
    fn port_range() {
        let r = PortRange::new(40000, 40099).unwrap();
        assert_eq!(r.size(), 100);
        assert_eq!(PortRange::new(1024, 65535).unwrap().size(), 64512);
        assert!(PortRange::new(0, 5).is_err());
        assert!(PortRange::new(6, 5).is_err());
    }
}
