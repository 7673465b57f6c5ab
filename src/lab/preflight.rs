//! Can this machine run labs at all? Checked before anything is created, each failure naming
//! the missing piece (exit 3). Kernel features that can only be probed by trying (veth, bridge)
//! are reported the same way when the first attempt fails.

use std::path::Path;

use anyhow::Result;

use super::netlink::NETNS_DIR;
use super::state::run_dir;
use crate::error::unsupported;

const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;

/// Checks privileges and the directories `lab` writes to.
pub fn check_machine() -> Result<()> {
    let caps = effective_caps()?;
    let mut missing = Vec::new();
    if caps & (1 << CAP_NET_ADMIN) == 0 {
        missing.push("CAP_NET_ADMIN (to create links, addresses, routes and firewall rules)");
    }
    if caps & (1 << CAP_SYS_ADMIN) == 0 {
        missing.push("CAP_SYS_ADMIN (to create and enter network namespaces)");
    }
    if !missing.is_empty() {
        let how = if euid() != 0 {
            "run it as root (`sudo lab ...`)"
        } else {
            "in a container, run it with `--privileged` (or --cap-add NET_ADMIN --cap-add SYS_ADMIN)"
        };
        return Err(unsupported(format!(
            "lab needs {}; {how}",
            missing.join(" and ")
        )));
    }
    for dir in [run_dir(), Path::new(NETNS_DIR).to_path_buf()] {
        if let Err(e) = std::fs::create_dir_all(&dir) {
            return Err(unsupported(format!(
                "lab needs a writable {} ({e}); mount a writable /run (tmpfs) in this container",
                dir.display()
            )));
        }
    }
    if !Path::new("/proc/self/ns/net").exists() {
        return Err(unsupported(
            "this kernel has no network namespaces (CONFIG_NET_NS), or /proc is not mounted",
        ));
    }
    Ok(())
}

fn effective_caps() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|e| {
        unsupported(format!(
            "cannot read /proc/self/status ({e}): is /proc mounted?"
        ))
    })?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .ok_or_else(|| unsupported("cannot read effective capabilities from /proc/self/status"))
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Kernel memory per connection with both ends and a NAT entry on this machine: 7.0 GiB for
/// 1,000,000 connections, measured here (kernel.md section 6).
pub const KERNEL_BYTES_PER_CONNECTION: u64 = 7_400;

/// What a lab's workload will ask of the machine, against what the machine has.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Capacity {
    pub connections: u64,
    /// Two per connection (both ends run here), plus a few per agent.
    pub open_files: u64,
    pub open_files_free: Option<u64>,
    pub kernel_bytes: u64,
    pub memory_available: Option<u64>,
    /// The most conntrack entries one namespace will hold, and the limit each namespace has.
    pub conntrack_per_namespace: u64,
    pub conntrack_max: Option<u64>,
}

impl Capacity {
    /// Estimates from the plan and reads the machine's global limits (no root needed).
    pub fn of(plan: &super::Plan) -> Self {
        let mut per_host = vec![0u64; plan.hosts.len()];
        let mut connections = 0u64;
        for g in &plan.clients {
            for &cid in &g.containers {
                let n = u64::from(g.connections.get());
                connections += n;
                per_host[plan.container(cid).host.0] += n;
            }
        }
        let file_nr = read_numbers("/proc/sys/fs/file-nr");
        let file_max = read_numbers("/proc/sys/fs/file-max").first().copied();
        Self {
            connections,
            open_files: 2 * connections + 64 * plan.containers.len() as u64,
            open_files_free: file_max
                .zip(file_nr.first().copied())
                .map(|(max, used)| max.saturating_sub(used)),
            kernel_bytes: connections * KERNEL_BYTES_PER_CONNECTION,
            memory_available: mem_available(),
            conntrack_per_namespace: per_host.into_iter().max().unwrap_or(0),
            conntrack_max: read_numbers("/proc/sys/net/netfilter/nf_conntrack_max")
                .first()
                .copied(),
        }
    }

    /// Problems that would make the run fail for the machine's sake rather than the lab's
    /// lesson: each names the limit, the numbers and what to do.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(free) = self.open_files_free
            && self.open_files > free
        {
            out.push(format!(
                "the workload needs about {} open files (two per connection: both ends run on this \
                 machine) but fs.file-max leaves {} free; raise it (`sysctl -w fs.file-max=...`, in \
                 the initial namespace) or make the lab smaller",
                self.open_files, free
            ));
        }
        if let Some(avail) = self.memory_available
            && self.kernel_bytes > avail / 10 * 9
        {
            out.push(format!(
                "the connections need about {} MiB of kernel memory (about {} bytes each, both ends \
                 and the NAT entry) but only {} MiB are available; make the lab smaller",
                self.kernel_bytes >> 20,
                KERNEL_BYTES_PER_CONNECTION,
                avail >> 20
            ));
        }
        out
    }

    /// Limits the run will reach on purpose or by accident, worth saying before it starts.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(max) = self.conntrack_max
            && self.conntrack_per_namespace > max
        {
            out.push(format!(
                "one host will need {} conntrack entries, more than nf_conntrack_max = {} allows a \
                 namespace: new connections beyond it are dropped; spread the containers over more \
                 hosts (each namespace has its own count against the one limit)",
                self.conntrack_per_namespace, max
            ));
        }
        out
    }
}

/// Refuses (exit 3) a lab the machine cannot hold, before anything is built.
pub fn check_capacity(plan: &super::Plan) -> Result<Capacity> {
    let cap = Capacity::of(plan);
    let problems = cap.problems();
    if problems.is_empty() {
        Ok(cap)
    } else {
        Err(unsupported(format!(
            "this machine cannot hold lab {}: {}",
            plan.name,
            problems.join("; ")
        )))
    }
}

fn read_numbers(path: &str) -> Vec<u64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect()
}

fn mem_available() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap(connections: u64, free_files: u64, avail: u64) -> Capacity {
        Capacity {
            connections,
            open_files: 2 * connections,
            open_files_free: Some(free_files),
            kernel_bytes: connections * KERNEL_BYTES_PER_CONNECTION,
            memory_available: Some(avail),
            conntrack_per_namespace: connections / 5,
            conntrack_max: Some(262_144),
        }
    }

    #[test]
    fn a_million_fits_this_machine() {
        let c = cap(1_000_000, 2_466_000, 23 << 30);
        assert!(c.problems().is_empty(), "{:?}", c.problems());
        assert!(c.warnings().is_empty());
    }

    #[test]
    fn too_many_files_or_too_little_memory_are_refused_with_numbers() {
        let p = cap(1_500_000, 2_466_000, 23 << 30).problems();
        assert_eq!(p.len(), 1);
        assert!(
            p[0].contains("fs.file-max") && p[0].contains("3000000"),
            "{p:?}"
        );
        let p = cap(1_000_000, 9_000_000, 4 << 30).problems();
        assert_eq!(p.len(), 1);
        assert!(p[0].contains("kernel memory"), "{p:?}");
    }

    #[test]
    fn a_crowded_host_is_warned_about() {
        let mut c = cap(100_000, 9_000_000, 23 << 30);
        c.conntrack_per_namespace = 300_000;
        assert!(c.warnings()[0].contains("nf_conntrack_max = 262144"));
    }
}
