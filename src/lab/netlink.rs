//! The thin typed layer over rtnetlink and netns-rs: one [`Namespace`] per namespace, one method per
//! kernel operation, and errors that name the object and the namespace. No rtnetlink type leaks
//! out of this module.
//!
//! Namespace rule: a netlink socket belongs to the namespace of the thread that created it, so
//! each `Namespace` opens its socket inside `NetNs::run` (a synchronous setns there and back, never
//! across an `.await`) and then serves requests from any thread.

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow};
use futures_util::TryStreamExt as _;
use ipnet::Ipv4Net;
use netns_rs::NetNs;
use rtnetlink::packet_route::link::{InfoData, InfoVeth};
use rtnetlink::packet_route::route::RouteProtocol;
use rtnetlink::{LinkBridge, LinkUnspec, LinkVeth, RouteMessageBuilder};

use super::plan::{IfName, Mac, NetnsName};
use crate::error::{errno_of, unsupported};

/// The one directory where `lab` mounts, opens and removes named namespaces, a bind mount per
/// name. It is where Debian's and Ubuntu's `ip` keep them (iproute2 built with
/// `NETNS_RUN_DIR=/run/netns`; upstream's default, `/var/run/netns`, is the same directory
/// wherever `/var/run` is the usual symlink to `/run`), so `ip netns` on the same machine or in
/// the same container sees the lab's namespaces, also in an image whose `/var/run` is a plain
/// directory. The namespace crate (through [`LabNetns`]; its own default is `/var/run/netns`),
/// the agents, `lab exec`, teardown, the preflight and `lab show --commands` all take it from
/// here.
pub const NETNS_DIR: &str = "/run/netns";

/// [`NETNS_DIR`] as a path.
pub fn netns_dir() -> &'static Path {
    Path::new(NETNS_DIR)
}

/// The namespace crate's environment: its persist directory is [`netns_dir`], never its own
/// default.
#[derive(Clone, Copy, Debug, Default)]
pub struct LabNetns;

impl netns_rs::Env for LabNetns {
    fn persist_dir(&self) -> PathBuf {
        netns_dir().to_path_buf()
    }
}

/// Index of `lo` in every network namespace (LOOPBACK_IFINDEX).
const LOOPBACK_INDEX: u32 = 1;

pub fn netns_path(name: &NetnsName) -> PathBuf {
    netns_dir().join(name.as_str())
}

pub fn netns_exists(name: &NetnsName) -> bool {
    netns_path(name).exists()
}

/// A namespace that exists already where the lab wanted to create one: it is not the lab's, and
/// teardown must leave it alone.
#[derive(Debug)]
pub struct NetnsTaken(pub NetnsName);

impl std::fmt::Display for NetnsTaken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "network namespace {} already exists, and this lab did not create it",
            self.0
        )
    }
}

impl std::error::Error for NetnsTaken {}

/// An open network namespace and a netlink connection inside it.
pub struct Namespace {
    name: NetnsName,
    ns: NetNs<LabNetns>,
    rt: rtnetlink::Handle,
}

impl Namespace {
    /// Creates the named namespace (visible to `ip netns`) and connects to it. Refuses a name that
    /// exists: the namespace could be another lab's or the user's, and must not be adopted.
    pub fn create(name: &NetnsName) -> Result<Self> {
        if netns_exists(name) {
            return Err(NetnsTaken(name.clone()).into());
        }
        let ns = NetNs::new_with_env(name.as_str(), LabNetns)
            .with_context(|| format!("create network namespace {name}"))?;
        Self::connect(name.clone(), ns)
    }

    /// Creates the named namespace from inside `parent`, whose `net.ipv4.tcp_child_ehash_entries`
    /// the kernel reads to size the new namespace's established-hash (its own table instead of
    /// the machine's shared one): nothing on the host changes.
    pub fn create_from(name: &NetnsName, parent: &Namespace) -> Result<Self> {
        if netns_exists(name) {
            return Err(NetnsTaken(name.clone()).into());
        }
        // netns-rs unshares in a thread it spawns, which starts in the calling thread's
        // namespace: the parent's.
        let ns = parent
            .run(|| NetNs::new_with_env(name.as_str(), LabNetns))?
            .with_context(|| format!("create network namespace {name} from {}", parent.name))?;
        Self::connect(name.clone(), ns)
    }

    /// Opens an existing namespace.
    pub fn open(name: &NetnsName) -> Result<Self> {
        let ns = NetNs::get_from_env(name.as_str(), LabNetns)
            .with_context(|| format!("open network namespace {name}"))?;
        Self::connect(name.clone(), ns)
    }

    fn connect(name: NetnsName, ns: NetNs<LabNetns>) -> Result<Self> {
        let (conn, rt, _) = ns
            .run(|_| rtnetlink::new_connection())
            .with_context(|| format!("enter network namespace {name}"))?
            .with_context(|| format!("open a netlink socket in network namespace {name}"))?;
        tokio::spawn(conn);
        Ok(Self { name, ns, rt })
    }

    pub fn name(&self) -> &NetnsName {
        &self.name
    }

    pub fn file(&self) -> &File {
        self.ns.file()
    }

    /// Runs a synchronous closure with the calling thread inside this namespace.
    pub fn run<T>(&self, f: impl FnOnce() -> T) -> Result<T> {
        self.ns
            .run(|_| f())
            .with_context(|| format!("enter network namespace {}", self.name))
    }

    pub async fn link_index(&self, ifname: &IfName) -> Result<u32> {
        let msg = self
            .rt
            .link()
            .get()
            .match_name(ifname.to_string())
            .execute()
            .try_next()
            .await
            .with_context(|| format!("look up link {ifname} in network namespace {}", self.name))?
            .ok_or_else(|| anyhow!("link {ifname} not found in network namespace {}", self.name))?;
        Ok(msg.header.index)
    }

    pub async fn set_up(&self, index: u32, what: &str) -> Result<()> {
        self.rt
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .with_context(|| format!("bring {what} up in network namespace {}", self.name))
    }

    pub async fn loopback_up(&self) -> Result<()> {
        self.set_up(LOOPBACK_INDEX, "lo").await
    }

    /// Creates a bridge, up, with a fixed MAC (else the bridge takes its first port's MAC and
    /// changes it as ports come and go). Returns its index.
    pub async fn add_bridge(&self, name: &IfName, mac: Mac) -> Result<u32> {
        let msg = LinkBridge::new(name.as_str())
            .address(mac.0.to_vec())
            .up()
            .build();
        self.rt
            .link()
            .add(msg)
            .execute()
            .await
            .map_err(|e| kernel_feature(e.into(), "bridge", "CONFIG_BRIDGE (module bridge)"))
            .with_context(|| format!("create bridge {name} in network namespace {}", self.name))?;
        self.link_index(name).await
    }

    /// Creates a veth pair in one request: `local` here (up, optionally a port of `bridge`), and
    /// `peer_name` created directly inside `peer` (down: the kernel refuses to open a veth end
    /// before its pair exists), so no half-moved pair can be left behind in this namespace.
    pub async fn add_veth(
        &self,
        local: &IfName,
        bridge: Option<u32>,
        peer: &Veth<'_>,
    ) -> Result<()> {
        let mut peer_msg = LinkUnspec::new_with_name(peer.name.as_str())
            .setns_by_fd(peer.netns.file().as_raw_fd());
        if let Some(mac) = peer.mac {
            peer_msg = peer_msg.address(mac.0.to_vec());
        }
        let mut msg = LinkVeth::new(local.as_str(), peer.name.as_str())
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_msg.build())))
            .up();
        if let Some(bridge) = bridge {
            msg = msg.controller(bridge);
        }
        self.rt
            .link()
            .add(msg.build())
            .execute()
            .await
            .map_err(|e| kernel_feature(e.into(), "veth", "CONFIG_VETH (module veth)"))
            .with_context(|| {
                format!(
                    "create veth pair {local} (network namespace {}) <-> {} (network namespace {})",
                    self.name,
                    peer.name,
                    peer.netns.name()
                )
            })
    }

    pub async fn add_address(
        &self,
        index: u32,
        ifname: &IfName,
        ip: Ipv4Addr,
        prefix_len: u8,
    ) -> Result<()> {
        self.rt
            .address()
            .add(index, ip.into(), prefix_len)
            .execute()
            .await
            .with_context(|| {
                format!(
                    "add address {ip}/{prefix_len} to {ifname} in network namespace {}",
                    self.name
                )
            })
    }

    pub async fn add_default_route(&self, gateway: Ipv4Addr, oif: u32) -> Result<()> {
        // Protocol `boot`, as `ip route add` and Docker (through its netlink library) write
        // it; rtnetlink's default would be `static`.
        let msg = RouteMessageBuilder::<Ipv4Addr>::new()
            .protocol(RouteProtocol::Boot)
            .gateway(gateway)
            .output_interface(oif)
            .build();
        self.rt.route().add(msg).execute().await.with_context(|| {
            format!(
                "add default route via {gateway} in network namespace {}",
                self.name
            )
        })
    }

    /// Adds `dst via gateway dev oif` to the main table.
    pub async fn add_route(&self, dst: Ipv4Net, gateway: Ipv4Addr, oif: u32) -> Result<()> {
        let msg = RouteMessageBuilder::<Ipv4Addr>::new()
            .protocol(RouteProtocol::Boot)
            .destination_prefix(dst.addr(), dst.prefix_len())
            .gateway(gateway)
            .output_interface(oif)
            .build();
        self.rt.route().add(msg).execute().await.with_context(|| {
            format!(
                "add route {dst} via {gateway} in network namespace {}",
                self.name
            )
        })
    }

    /// Writes a per-namespace sysctl.
    pub fn write_sysctl(&self, key: &str, value: &str) -> Result<()> {
        write_sysctl_in(&self.name, key, value)
    }
}

/// Writes a per-namespace sysctl. /proc/sys/net resolves against the namespace of the thread
/// that opens the file, so the open happens inside the namespace.
pub fn write_sysctl_in(netns: &NetnsName, key: &str, value: &str) -> Result<()> {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    match run_in_netns(netns, || std::fs::write(&path, value))? {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(anyhow!(
            "this kernel has no sysctl {key} in a network namespace (no {path}); \
             check the name, or load the module that provides it"
        ))
        .context(format!("set {key} = {value} in network namespace {netns}")),
        Err(e) => {
            Err(e).with_context(|| format!("set {key} = {value} in network namespace {netns}"))
        }
    }
}

/// Runs a synchronous closure on the calling thread inside a named namespace, without a
/// netlink connection (for nftables and conntrack, which open their own sockets).
pub fn run_in_netns<T>(name: &NetnsName, f: impl FnOnce() -> T) -> Result<T> {
    let ns = NetNs::get_from_env(name.as_str(), LabNetns)
        .with_context(|| format!("open network namespace {name}"))?;
    ns.run(|_| f())
        .with_context(|| format!("enter network namespace {name}"))
}

/// The far end of a veth pair: its name, namespace and MAC.
pub struct Veth<'a> {
    pub name: &'a IfName,
    pub netns: &'a Namespace,
    pub mac: Option<Mac>,
}

/// Removes a named namespace: unmounts and unlinks `<netns_dir>/<name>`. The kernel frees the
/// namespace (and every link, address, route and rule in it) once no process and no open file
/// holds it. A namespace that is already gone counts as removed, and so does a bare file left
/// by a process killed between creating the mount point and mounting the namespace on it.
pub fn remove_netns(name: &NetnsName) -> Result<()> {
    let path = netns_path(name);
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .with_context(|| format!("namespace path {}", path.display()))?;
    // SAFETY: umount2 with a valid NUL-terminated path.
    if unsafe { libc::umount2(c_path.as_ptr(), libc::MNT_DETACH) } != 0 {
        let err = std::io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::ENOENT) => return Ok(()),
            // Not a mount point: a bare file, nothing to unmount.
            Some(libc::EINVAL) => {}
            _ => {
                return Err(err).with_context(|| {
                    format!("unmount network namespace {name} ({})", path.display())
                });
            }
        }
    }
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("remove {}", path.display())),
    }
}

/// Turns "operation not supported" on creating a link kind into an exit-3 error naming the
/// missing kernel feature.
fn kernel_feature(err: anyhow::Error, kind: &str, config: &str) -> anyhow::Error {
    match errno_of(&err) {
        Some(libc::EOPNOTSUPP) => unsupported(format!(
            "this kernel cannot create {kind} links: it needs {config}"
        )),
        _ => err,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crate_and_lab_name_the_same_directory() {
        use netns_rs::Env as _;
        assert_eq!(LabNetns.persist_dir(), netns_dir());
        assert!(netns_dir().ends_with("netns"));
        let name = NetnsName::from_state("x-y".to_owned());
        assert_eq!(netns_path(&name), netns_dir().join("x-y"));
    }
}
