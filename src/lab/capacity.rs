//! Can this machine hold this lab? The estimate of what a plan's workload asks of the machine
//! (open files, kernel memory, conntrack entries per namespace) against what the machine has,
//! and what that means: fits, fits once a global limit the file allows is raised, or refused
//! (exit 3) with the numbers and what to do.

use std::io;

use anyhow::Result;

use super::limits::{GlobalLimit, Need};
use crate::error::unsupported;

/// Kernel memory per connection with both ends and a NAT entry on this machine: what the kernel
/// holds for itself (MemTotal - MemFree - buffers - page cache - processes' anonymous memory)
/// grew 8.5-9.1 KB per connection at 1,000,000 and 9.1 KB at 2,000,000, measured here
/// (docs/bench.md, 2026-12-05; MemAvailable fell only 6.5-7.1 KB, as it counts part of the
/// sockets' slab as reclaimable, which it is not while they are open).
pub const KERNEL_BYTES_PER_CONNECTION: u64 = 9_100;

/// Userspace memory per connection of the built-in agents: 0.83-0.90 KiB resident measured at
/// 75,000 and 1,000,000 (docs/bench.md). A lower bound for the user's own programs (the
/// article's Go programs took 19 KiB), which cannot be known before they run.
pub const USER_BYTES_PER_CONNECTION: u64 = 1_024;

/// Memory a lab always leaves free, whatever it needs: the larger of 1 GiB and a tenth of what
/// is available, so that the machine never reaches the OOM killer for a lab.
pub fn memory_margin(available: u64) -> u64 {
    (available / 10).max(1 << 30)
}

/// What a lab's workload will ask of the machine, against what the machine has.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Capacity {
    pub connections: u64,
    /// Two per connection (both ends run here), plus a few per agent.
    pub open_files: u64,
    pub open_files_free: Option<u64>,
    pub kernel_bytes: u64,
    /// The agents' memory, at least ([`USER_BYTES_PER_CONNECTION`]).
    pub user_bytes: u64,
    pub memory_available: Option<u64>,
    /// The most conntrack entries one namespace will hold, and the limit each namespace has.
    pub conntrack_per_namespace: u64,
    pub conntrack_max: Option<u64>,
    /// Global limits the workload needs higher than the machine has them: `lab run` raises
    /// those the lab file allows and refuses the lab for the others.
    pub needs: Vec<Need>,
    /// The user's programs whose processes will each need more sockets than one process may
    /// open here (they will fail with EMFILE, "too many open files"), with what to do. A
    /// warning, not a refusal: seeing that happen may be the point.
    pub crowded: Vec<String>,
}

/// What the machine has: its global limits (files, conntrack entries), the files in use and
/// the memory available, as read.
#[derive(Debug, Clone, Default)]
pub struct Resources {
    pub file_max: Option<u64>,
    pub files_in_use: Option<u64>,
    pub memory_available: Option<u64>,
    pub conntrack_max: Option<u64>,
    /// Buckets of the conntrack hash all namespaces share.
    pub conntrack_buckets: Option<u64>,
    /// The open-files hard limit of a process here (what a program's soft limit is raised to).
    pub open_files_per_process: Option<u64>,
    /// Global limits this process may not change, with the errno: in a network namespace
    /// other than the host's (a container), nf_conntrack_max is read-only even to root.
    pub unchangeable: Vec<(GlobalLimit, i32)>,
}

impl Resources {
    /// Reads them (no root needed).
    pub fn read() -> Self {
        Self {
            file_max: GlobalLimit::FileMax.read().ok(),
            files_in_use: read_numbers("/proc/sys/fs/file-nr").first().copied(),
            memory_available: mem_available(),
            conntrack_max: GlobalLimit::ConntrackMax.read().ok(),
            conntrack_buckets: GlobalLimit::ConntrackBuckets.read().ok(),
            open_files_per_process: crate::sys::open_files_hard_limit().ok(),
            unchangeable: GlobalLimit::ALL
                .into_iter()
                .filter_map(|l| {
                    crate::sys::may_write(&l.path())
                        .err()
                        .map(|e| (l, e.raw_os_error().unwrap_or(libc::EIO)))
                })
                .collect(),
        }
    }

    fn blocked(&self, limit: GlobalLimit) -> Option<String> {
        let &(_, e) = self.unchangeable.iter().find(|(l, _)| *l == limit)?;
        let why = io::Error::from_raw_os_error(e);
        Some(match (limit, e) {
            (
                GlobalLimit::ConntrackMax | GlobalLimit::ConntrackBuckets,
                libc::EACCES | libc::EPERM,
            ) => format!(
                "{limit} cannot be changed here ({why}): only the host's initial network \
                 namespace can change it, and lab runs in another one (a container?)"
            ),
            _ if e == libc::EROFS => {
                format!("{limit} cannot be changed here ({why}: /proc/sys is mounted read-only)")
            }
            _ => format!("{limit} cannot be changed by this process ({why})"),
        })
    }
}

impl Capacity {
    /// Estimates from the plan against this machine's limits.
    pub fn of(plan: &super::Plan) -> Self {
        Self::estimate(plan, &Resources::read())
    }

    /// Pure: the estimate of `plan` against `limits`.
    pub fn estimate(plan: &super::Plan, limits: &Resources) -> Self {
        let mut per_host = vec![0u64; plan.hosts.len()];
        let mut connections = 0u64;
        for g in &plan.clients {
            for &cid in &g.containers {
                let n = u64::from(g.connections.get());
                connections += n;
                per_host[plan.container(cid).host.0] += n;
            }
        }
        let open_files = 2 * connections + 64 * plan.containers.len() as u64;
        let conntrack_per_namespace = per_host.into_iter().max().unwrap_or(0);
        let allowed = |l: GlobalLimit| plan.may_raise.contains(&l);
        let mut needs = Vec::new();
        if let (Some(max), Some(used)) = (limits.file_max, limits.files_in_use)
            && open_files > max.saturating_sub(used)
        {
            // Room for the machine's other processes too.
            let needed = used + open_files + (open_files / 10).max(65_536);
            needs.push(Need {
                limit: GlobalLimit::FileMax,
                current: max,
                needed,
                allowed: allowed(GlobalLimit::FileMax),
                blocked: limits.blocked(GlobalLimit::FileMax),
            });
        }
        if let Some(max) = limits.conntrack_max
            && conntrack_per_namespace > max
        {
            // Entries of connects that failed or are still closing count too.
            let needed =
                (conntrack_per_namespace + conntrack_per_namespace / 8).next_multiple_of(1024);
            needs.push(Need {
                limit: GlobalLimit::ConntrackMax,
                current: max,
                needed,
                allowed: allowed(GlobalLimit::ConntrackMax),
                blocked: limits.blocked(GlobalLimit::ConntrackMax),
            });
        }
        // The conntrack hash is one for all namespaces, and each entry is in it twice (its
        // original and its reply direction): two buckets per connection keep the chains at one
        // node on average when the file allows it (it is speed, never a refusal). Measured at a
        // million with a bucket per connection, the lookups cost twice as much per connection
        // at the end of the ramp as at its start (docs/bench.md).
        let nodes = 2 * connections;
        if let Some(buckets) = limits.conntrack_buckets
            && allowed(GlobalLimit::ConntrackBuckets)
            && nodes > buckets
        {
            needs.push(Need {
                limit: GlobalLimit::ConntrackBuckets,
                current: buckets,
                needed: nodes.next_power_of_two(),
                allowed: true,
                blocked: limits.blocked(GlobalLimit::ConntrackBuckets),
            });
        }
        let crowded = limits
            .open_files_per_process
            .map(|limit| crowded_programs(plan, limit))
            .unwrap_or_default();
        Self {
            crowded,
            connections,
            open_files,
            open_files_free: limits
                .file_max
                .zip(limits.files_in_use)
                .map(|(max, used)| max.saturating_sub(used)),
            kernel_bytes: connections * KERNEL_BYTES_PER_CONNECTION + ehash_bytes(plan),
            user_bytes: connections * USER_BYTES_PER_CONNECTION,
            memory_available: limits.memory_available,
            conntrack_per_namespace,
            conntrack_max: limits.conntrack_max,
            needs,
        }
    }

    /// Problems that would make the run fail for the machine's sake rather than the lab's
    /// lesson: each names the limit, the numbers and what to do.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for need in &self.needs {
            if need.limit == GlobalLimit::ConntrackBuckets {
                // Only speed: a lab that cannot have it runs with the machine's table.
                continue;
            }
            let key = need.limit.key();
            let allow = match (&need.blocked, need.allowed) {
                (None, true) => continue,
                (None, false) => format!(
                    "let lab raise it for the run by adding `[machine]` `raise = [\"{key}\"]` to \
                     the lab file (restored at teardown)"
                ),
                (Some(why), _) => format!(
                    "{why}; raise it where it can be changed (`sysctl -w {key}={}` on the host)",
                    need.needed
                ),
            };
            out.push(match need.limit {
                GlobalLimit::FileMax => format!(
                    "the workload needs about {} open files (two per connection: both ends run on \
                     this machine) but {key} = {} leaves {} free; {allow}, or make the lab smaller",
                    self.open_files,
                    need.current,
                    self.open_files_free.unwrap_or(0)
                ),
                GlobalLimit::ConntrackBuckets => continue,
                GlobalLimit::ConntrackMax => format!(
                    "one host will need {} conntrack entries, more than {key} = {} allows a \
                     namespace (new connections beyond it would be dropped); {allow}, or spread \
                     the containers over more hosts (each namespace has its own count against the \
                     one limit)",
                    self.conntrack_per_namespace, need.current
                ),
            });
        }
        if let Some(avail) = self.memory_available {
            let margin = memory_margin(avail);
            let needed = self.kernel_bytes + self.user_bytes;
            if needed > avail.saturating_sub(margin) {
                out.push(format!(
                    "the connections need about {} MiB of kernel memory (about {} bytes each, both \
                     ends and the NAT entry) and {} MiB for the agents (at least {} bytes each), \
                     {} MiB in all, but only {} MiB are available and lab keeps {} MiB of them \
                     free so that the machine never reaches the OOM killer; make the lab smaller \
                     (at most about {} connections here)",
                    self.kernel_bytes >> 20,
                    KERNEL_BYTES_PER_CONNECTION,
                    self.user_bytes >> 20,
                    USER_BYTES_PER_CONNECTION,
                    needed >> 20,
                    avail >> 20,
                    margin >> 20,
                    avail.saturating_sub(margin)
                        / (KERNEL_BYTES_PER_CONNECTION + USER_BYTES_PER_CONNECTION)
                ));
            }
        }
        out
    }

    /// The raises `lab run` will make, because the lab file allows them and they can be made.
    pub fn raises(&self) -> Vec<Need> {
        self.needs
            .iter()
            .filter(|n| n.allowed && n.blocked.is_none())
            .cloned()
            .collect()
    }
}

/// The established-hashes the lab's namespaces get of their own: a bucket is an
/// `hlist_nulls_head` (8 bytes), allocated when the namespace is created.
fn ehash_bytes(plan: &super::Plan) -> u64 {
    const BUCKET_BYTES: u64 = 8;
    let mut buckets = 0u64;
    for i in 0..plan.hosts.len() {
        let id = super::plan::HostId(i);
        buckets += u64::from(plan.host_ehash(id).unwrap_or(0));
        let containers = plan.containers_of(id).count() as u64;
        buckets += containers * u64::from(plan.containers_ehash(id).unwrap_or(0));
    }
    buckets * BUCKET_BYTES
}

/// Programs whose processes will each hold more sockets than `limit` (a few descriptors more
/// for the program itself).
fn crowded_programs(plan: &super::Plan, limit: u64) -> Vec<String> {
    const SLACK: u64 = 32;
    let mut out = Vec::new();
    for g in plan.clients.iter().filter(|g| g.command.is_some()) {
        let processes = u64::from(g.processes.map_or(1, |p| p.get()));
        let each = u64::from(g.connections.get()).div_ceil(processes);
        if each + SLACK > limit {
            out.push(format!(
                "client {}: {each} connections per process of your program, but a process may \
                 open {limit} files here: it will fail with \"too many open files\"; set \
                 processes = {} (or more) in [clients.{}]",
                g.name,
                u64::from(g.connections.get()).div_ceil(limit.saturating_sub(SLACK).max(1)),
                g.name
            ));
        }
    }
    for s in plan.servers.iter().filter(|s| s.command.is_some()) {
        let host = plan.host(s.host);
        let expected: u64 = plan
            .clients
            .iter()
            .flat_map(|g| (0..g.containers.len()).map(move |i| (g, g.target_of(i))))
            .filter(|(_, t)| t.port() == s.port.get() && host.addresses.contains(t.ip()))
            .map(|(g, _)| u64::from(g.connections.get()))
            .sum();
        let processes = u64::from(s.processes.map_or(1, |p| p.get()));
        // SO_REUSEPORT spreads by hash, not evenly: a quarter more for the busiest.
        let each = (expected.div_ceil(processes) * 5).div_ceil(4);
        if expected > 0 && each + SLACK > limit {
            out.push(format!(
                "server {}: up to {each} connections per process of your program, but a process \
                 may open {limit} files here: it will fail with \"too many open files\"; set \
                 processes = {} (or more) in [servers.{}] (SO_REUSEPORT shares the port)",
                s.name,
                (expected * 5 / 4).div_ceil(limit.saturating_sub(SLACK).max(1)),
                s.name
            ));
        }
    }
    out
}

/// Refuses (exit 3) a lab the machine cannot hold, before anything is built; returns the
/// estimate, whose [`Capacity::raises`] the run must make.
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

    const MILLION: &str = include_str!("../../labs/million.toml");

    /// This machine kind: 2.47M files of which 10k in use, 23 GiB available, 262,144 conntrack.
    fn here() -> Resources {
        Resources {
            file_max: Some(2_466_000),
            files_in_use: Some(10_000),
            memory_available: Some(23 << 30),
            conntrack_max: Some(262_144),
            conntrack_buckets: Some(262_144),
            open_files_per_process: Some(20_000),
            unchangeable: Vec::new(),
        }
    }

    /// The shared conntrack hash is sized only where the file allows it, and never refuses.
    #[test]
    fn conntrack_buckets_are_raised_only_when_allowed() {
        let c = Capacity::estimate(&million(20_000, ""), &here());
        assert!(c.needs.is_empty(), "{:?}", c.needs);
        let allowed = "[machine]\nraise = [\"net.netfilter.nf_conntrack_buckets\"]\n";
        let c = Capacity::estimate(&million(20_000, allowed), &here());
        let r = c.raises();
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!(
            (r[0].limit, r[0].current, r[0].needed),
            (GlobalLimit::ConntrackBuckets, 262_144, 1 << 21)
        );
        // Where it cannot be changed, the lab runs with the machine's table.
        let mut limits = here();
        limits.unchangeable = vec![(GlobalLimit::ConntrackBuckets, libc::EACCES)];
        let c = Capacity::estimate(&million(20_000, allowed), &limits);
        assert!(c.problems().is_empty(), "{:?}", c.problems());
        assert!(c.raises().is_empty());
        // A small lab needs no more buckets than the machine has.
        let c = Capacity::estimate(&million(2_000, allowed), &here());
        assert!(c.needs.is_empty(), "{:?}", c.needs);
    }

    #[test]
    fn programs_over_the_open_files_limit_are_warned_of() {
        let text = |server_processes: u32, client_processes: u32| {
            format!(
                "name = \"t\"\n[lans.lan]\nsubnet = \"10.0.0.0/24\"\n[hosts.a]\nlan = \"lan\"\n\
                 addresses = [\"10.0.0.1\"]\n[hosts.b]\nlan = \"lan\"\naddresses = [\"10.0.0.2\"]\n\
                 [containers.c]\nhost = \"a\"\nreplicas = 3\n[servers.srv]\nhost = \"b\"\nport = 9000\n\
                 command = [\"srv\"]\nprocesses = {server_processes}\n[clients.load]\n\
                 containers = [\"c\"]\nconnect = [\"10.0.0.2:9000\"]\nconnections = 25000\n\
                 command = [\"cli\"]\nprocesses = {client_processes}\n"
            )
        };
        let plan = |s, c| {
            let source = super::super::Source::new("t.toml", text(s, c));
            match super::super::load(&source, &super::super::LoadOptions::default()) {
                Ok(l) => l.plan,
                Err(d) => panic!("{d:?}"),
            }
        };
        // The article's server in one process: 75,000 sockets under 20,000 files.
        let c = Capacity::estimate(&plan(1, 1), &here());
        assert_eq!(c.crowded.len(), 2, "{:?}", c.crowded);
        assert!(
            c.crowded[0].starts_with("client load: 25000 connections per process"),
            "{:?}",
            c.crowded
        );
        assert!(
            c.crowded[0].contains("set processes = 2"),
            "{:?}",
            c.crowded
        );
        assert!(
            c.crowded[1].contains("set processes = 5"),
            "{:?}",
            c.crowded
        );
        assert!(c.problems().is_empty(), "a warning, not a refusal");
        assert!(Capacity::estimate(&plan(5, 2), &here()).crowded.is_empty());
        // The built-in agents spread themselves.
        assert!(
            Capacity::estimate(&million(20_000, ""), &here())
                .crowded
                .is_empty()
        );
    }

    /// The million lab with `per` connections per container, `[machine]` as given.
    fn million(per: u32, machine: &str) -> super::super::Plan {
        let text = MILLION
            .replace("connections = 20000", &format!("connections = {per}"))
            .replace(
                "[machine]\nraise = [\"fs.file-max\", \"net.netfilter.nf_conntrack_buckets\"]\n",
                machine,
            );
        let source = super::super::Source::new("million.toml", text);
        match super::super::load(&source, &super::super::LoadOptions::default()) {
            Ok(l) => l.plan,
            Err(d) => panic!("{d:?}"),
        }
    }

    #[test]
    fn a_million_fits_this_machine() {
        let c = Capacity::estimate(&million(20_000, ""), &here());
        assert_eq!(c.connections, 1_000_000);
        assert_eq!(c.conntrack_per_namespace, 200_000);
        assert!(c.needs.is_empty(), "{:?}", c.needs);
        assert!(c.problems().is_empty(), "{:?}", c.problems());
    }

    #[test]
    fn too_many_files_are_refused_unless_the_lab_allows_raising_file_max() {
        // 1.5M connections: 3M files plus 64 per container, more than the 2.456M free.
        let mut limits = here();
        limits.conntrack_max = Some(1 << 20);
        let c = Capacity::estimate(&million(30_000, ""), &limits);
        let p = c.problems();
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].contains("fs.file-max = 2466000") && p[0].contains("3003200"),
            "{p:?}"
        );
        assert!(p[0].contains("raise = [\"fs.file-max\"]"), "{p:?}");
        assert!(c.raises().is_empty());

        let allowed = "[machine]\nraise = [\"fs.file-max\"]\n";
        let c = Capacity::estimate(&million(30_000, allowed), &limits);
        assert!(c.problems().is_empty(), "{:?}", c.problems());
        let r = c.raises();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].limit, GlobalLimit::FileMax);
        assert_eq!(r[0].current, 2_466_000);
        // In use + needed + a tenth for the rest of the machine.
        assert_eq!(r[0].needed, 10_000 + 3_003_200 + 300_320);
    }

    #[test]
    fn a_crowded_host_needs_nf_conntrack_max_raised() {
        let mut limits = here();
        limits.conntrack_max = Some(150_000);
        let c = Capacity::estimate(&million(20_000, ""), &limits);
        let p = c.problems();
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].contains("200000 conntrack entries")
                && p[0].contains("nf_conntrack_max = 150000")
                && p[0].contains("spread the containers over more hosts"),
            "{p:?}"
        );
        let allowed = "[machine]\nraise = [\"net.netfilter.nf_conntrack_max\"]\n";
        let c = Capacity::estimate(&million(20_000, allowed), &limits);
        assert!(c.problems().is_empty(), "{:?}", c.problems());
        assert_eq!(
            c.raises(),
            vec![Need {
                limit: GlobalLimit::ConntrackMax,
                current: 150_000,
                needed: 225_280, // 200,000 + 1/8, in whole KiB
                allowed: true,
                blocked: None,
            }]
        );
        // In a container's own network namespace the limit is read-only even to root.
        limits.unchangeable = vec![(GlobalLimit::ConntrackMax, libc::EACCES)];
        let c = Capacity::estimate(&million(20_000, allowed), &limits);
        assert!(c.raises().is_empty());
        let p = c.problems();
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].contains("only the host's initial network namespace can change it")
                && p[0].contains("`sysctl -w net.netfilter.nf_conntrack_max=225280` on the host"),
            "{p:?}"
        );
    }

    #[test]
    fn too_little_memory_is_refused_and_cannot_be_allowed() {
        let mut limits = here();
        limits.memory_available = Some(4 << 30);
        let p = Capacity::estimate(&million(20_000, ""), &limits).problems();
        assert_eq!(p.len(), 1);
        assert!(p[0].contains("kernel memory"), "{p:?}");
    }

    /// A lab that fits the available memory but not its margin is refused with the numbers: a
    /// million needs about 9.5 GiB (kernel, its own TCP tables and agents), so 10 GiB available
    /// leaves less than the 1 GiB kept free.
    #[test]
    fn the_memory_margin_is_kept_free() {
        assert_eq!(memory_margin(4 << 30), 1 << 30);
        assert_eq!(memory_margin(20 << 30), 2 << 30);
        let mut limits = here();
        limits.memory_available = Some(10 << 30);
        let p = Capacity::estimate(&million(20_000, ""), &limits).problems();
        assert_eq!(p.len(), 1, "{p:?}");
        for part in [
            "8719 MiB of kernel memory",
            "976 MiB for the agents",
            "10240 MiB are available",
            "keeps 1024 MiB",
            "OOM killer",
            "at most about 954531 connections",
        ] {
            assert!(p[0].contains(part), "no {part:?} in {p:?}");
        }
        limits.memory_available = Some(12 << 30);
        assert!(
            Capacity::estimate(&million(20_000, ""), &limits)
                .problems()
                .is_empty()
        );
    }
}
