//! The record of what a lab made, on disk under `/run/lab/<name>/state.json`: what `down` and
//! `clean` undo, even after a crash or `kill -9` of the process that built the lab.
//!
//! Rules that make teardown trustworthy:
//! - The lab's directory is created with `mkdir`, which is atomic: it is the lock that refuses a
//!   second `up` of the same name.
//! - Every namespace is recorded *before* it is created, and the file is replaced atomically
//!   (write + rename), so a crash at any point leaves a record that covers everything.
//! - A record names its owner (pid + start time, so a recycled pid is not mistaken for it):
//!   `clean` leaves alone labs whose owner is alive or that were deliberately left up.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

use super::limits::{GlobalLimit, Raised};
use super::plan::{NetnsName, Plan};
use crate::error::invalid;

/// Root of all lab records; `LAB_RUN_DIR` moves it (tests of the record logic itself).
pub fn run_dir() -> PathBuf {
    std::env::var_os("LAB_RUN_DIR").map_or_else(|| PathBuf::from("/run/lab"), PathBuf::from)
}

/// Where a lab is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// `up` or `run` is creating objects.
    Building,
    /// Built and left running by `lab up`: owned by nobody, removed by `lab down`.
    Up,
    /// `lab run` is running the workload; it tears the lab down itself.
    Running,
    /// `down`, `clean` or an interrupted command is removing objects.
    TearingDown,
}

/// A process, identified so that a recycled pid does not pass for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    pub pid: u32,
    /// Field 22 of /proc/<pid>/stat (clock ticks since boot).
    pub start_time: u64,
    /// The leader of a process group of its own (a user's program, which may start more
    /// processes): stopping it stops the group.
    #[serde(default)]
    pub group: bool,
}

impl Process {
    /// Identifies a process by pid (e.g. a child just started).
    pub fn of(pid: u32) -> Self {
        Self {
            pid,
            start_time: start_time(pid).unwrap_or(0),
            group: false,
        }
    }

    /// A child just started as the leader of a process group of its own.
    pub fn leader(pid: u32) -> Self {
        Self {
            group: true,
            ..Self::of(pid)
        }
    }

    pub fn current() -> Self {
        Self::of(std::process::id())
    }

    pub fn is_alive(&self) -> bool {
        start_time(self.pid) == Some(self.start_time)
    }

    /// Sends `signal` if this is still the process recorded (not a recycled pid).
    pub fn signal(&self, signal: i32) -> bool {
        if !self.is_alive() {
            return false;
        }
        crate::sys::kill(self.pid, signal)
    }

    /// Sends `signal` to the leader's whole group, if the leader is still the process
    /// recorded (alive, or exited and not yet reaped: its pid, and so the group's id, cannot
    /// have been reused).
    pub fn signal_group(&self, signal: i32) -> bool {
        self.is_alive() && crate::sys::kill_group(self.pid, signal)
    }

    /// The processes of this leader's group that sit in one of `namespaces` (network
    /// namespace inodes): what a program left running after its leader was reaped. A group's
    /// id cannot be reused while any member lives, and the namespace says the lab put it there.
    pub fn group_members_in(&self, namespaces: &[u64]) -> Vec<u32> {
        let Ok(entries) = fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|&pid| process_group(pid) == Some(self.pid))
            .filter(|&pid| net_namespace(pid).is_some_and(|ino| namespaces.contains(&ino)))
            .collect()
    }
}

/// Field 5 of /proc/<pid>/stat.
fn process_group(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .nth(2)?
        .parse()
        .ok()
}

/// The inode of a process's network namespace.
fn net_namespace(pid: u32) -> Option<u64> {
    use std::os::unix::fs::MetadataExt as _;
    fs::metadata(format!("/proc/{pid}/ns/net"))
        .ok()
        .map(|m| m.ino())
}

fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces: skip past it.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// What `lab list` and `lab exec` show of a node.
#[derive(Debug, Clone, Serialize)]
pub struct Node {
    pub name: String,
    pub kind: String,
    pub netns: String,
    pub addresses: Vec<String>,
}

/// The record of one lab.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabState {
    pub lab: String,
    /// The lab file it was built from (for people; teardown never needs it).
    pub file: Option<PathBuf>,
    pub phase: Phase,
    /// The process building, running or tearing down the lab; None when left up.
    pub owner: Option<Process>,
    /// Seconds since the epoch when `up` started.
    pub created: u64,
    /// Every namespace the lab may have created, in creation order.
    pub namespaces: Vec<String>,
    /// The validated lab, so that commands on a running lab need not the file (which may have
    /// changed or gone since).
    pub plan: Plan,
    /// Agent processes started in the lab's namespaces (recorded as soon as each starts), which
    /// teardown stops by pid before removing the namespaces.
    #[serde(default)]
    pub agents: Vec<Process>,
    /// Global limits raised (or held) for this lab, recorded before each change: teardown
    /// restores them (see [`limits`](super::limits)).
    #[serde(default)]
    pub raised: Vec<Raised>,
}

impl LabState {
    pub fn new(plan: &Plan, file: Option<&Path>) -> Self {
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Self {
            lab: plan.name.to_string(),
            file: file.map(Path::to_path_buf),
            phase: Phase::Building,
            owner: Some(Process::current()),
            created,
            namespaces: plan.namespaces().iter().map(ToString::to_string).collect(),
            plan: plan.clone(),
            agents: Vec::new(),
            raised: Vec::new(),
        }
    }

    pub fn namespaces(&self) -> impl DoubleEndedIterator<Item = NetnsName> + '_ {
        self.namespaces
            .iter()
            .map(|n| NetnsName::from_state(n.clone()))
    }

    /// True when someone is responsible for this lab: its owner runs, or it was left up on
    /// purpose. `clean` removes only labs for which this is false.
    pub fn is_live(&self) -> bool {
        is_live(self.phase, self.owner)
    }

    /// The lab's nodes (LANs, hosts, containers) with their namespaces and addresses.
    pub fn nodes(&self) -> Vec<Node> {
        let plan = &self.plan;
        let lans = plan.lans.iter().map(|lan| Node {
            name: lan.name.to_string(),
            kind: "lan".into(),
            netns: lan.netns.to_string(),
            addresses: vec![lan.subnet.to_string()],
        });
        let hosts = plan.hosts.iter().map(|host| {
            let mut addresses: Vec<String> =
                host.addresses.iter().map(ToString::to_string).collect();
            for d in host.docker.iter().flat_map(|d| d.all_networks()) {
                addresses.push(format!("{} ({})", d.gateway, d.bridge));
            }
            Node {
                name: host.name.to_string(),
                kind: "host".into(),
                netns: host.netns.to_string(),
                addresses,
            }
        });
        let containers = plan.containers.iter().map(|c| Node {
            name: c.name.to_string(),
            kind: "container".into(),
            netns: c.netns.to_string(),
            addresses: vec![c.address.to_string()],
        });
        lans.chain(hosts).chain(containers).collect()
    }
}

fn is_live(phase: Phase, owner: Option<Process>) -> bool {
    match owner {
        Some(p) => p.is_alive(),
        None => phase == Phase::Up,
    }
}

/// The on-disk record of one lab, held by whoever is building, running or removing it.
pub struct Record {
    dir: PathBuf,
    pub state: LabState,
}

impl Record {
    fn dir_of(lab: &str) -> PathBuf {
        run_dir().join(lab)
    }

    /// Claims the lab's name and writes its first record, before anything is created.
    pub fn create(state: LabState) -> Result<Self> {
        use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
        let root = run_dir();
        // Root's alone (0700), and never a symlink someone else planted: the records say which
        // processes and namespaces teardown removes, and the programs' logs are in them.
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&root)
            .with_context(|| format!("create {}", root.display()))?;
        let meta =
            fs::symlink_metadata(&root).with_context(|| format!("read {}", root.display()))?;
        if meta.file_type().is_symlink() || !meta.is_dir() {
            return Err(invalid(format!(
                "{} is not a directory but {}; remove it, or point LAB_RUN_DIR elsewhere",
                root.display(),
                if meta.file_type().is_symlink() {
                    "a symlink"
                } else {
                    "a file"
                }
            )));
        }
        if meta.permissions().mode() & 0o077 != 0 {
            fs::set_permissions(&root, fs::Permissions::from_mode(0o700))
                .with_context(|| format!("make {} root's alone (0700)", root.display()))?;
        }
        let dir = Self::dir_of(&state.lab);
        match fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                let lab = &state.lab;
                let what = match Self::open(lab) {
                    Ok(r) if r.state.is_live() => format!("lab {lab} is already up"),
                    _ => format!("lab {lab} was left behind by a process that died"),
                };
                return Err(invalid(format!(
                    "{what} (record {}); run `lab down {lab}` first, or pick another name with --name",
                    dir.display()
                )));
            }
            Err(e) => return Err(e).with_context(|| format!("create {}", dir.display())),
        }
        let record = Self { dir, state };
        record.save()?;
        Ok(record)
    }

    /// Opens the record of a lab by name.
    pub fn open(lab: &str) -> Result<Self> {
        let dir = Self::dir_of(lab);
        let path = dir.join("state.json");
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(invalid(format!(
                    "no lab named {lab} is up (no record at {}); `lab list` shows the labs that are",
                    path.display()
                )));
            }
            Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
        };
        let state = serde_json::from_str(&text)
            .with_context(|| format!("parse lab record {}", path.display()))?;
        Ok(Self { dir, state })
    }

    /// A record whose state file is missing or unreadable (a crash between `mkdir` and the
    /// first write): nothing can have been created yet, so only the directory is left.
    pub fn orphan_dir(lab: &str) -> PathBuf {
        Self::dir_of(lab)
    }

    /// Names of every lab with a record.
    pub fn list() -> Result<Vec<String>> {
        let root = run_dir();
        let entries = match fs::read_dir(&root) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("read {}", root.display())),
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        Ok(names)
    }

    /// Replaces the record atomically.
    pub fn save(&self) -> Result<()> {
        let path = self.dir.join("state.json");
        let tmp = self.dir.join("state.json.tmp");
        let text = serde_json::to_vec_pretty(&self.state).context("serialise lab record")?;
        fs::write(&tmp, text).with_context(|| format!("write {}", tmp.display()))?;
        fs::rename(&tmp, &path).with_context(|| format!("write {}", path.display()))
    }

    pub fn set_phase(&mut self, phase: Phase, owner: Option<Process>) -> Result<()> {
        self.state.phase = phase;
        self.state.owner = owner;
        self.save()
    }

    /// The directory of the programs' logs (0700, made on first use), inside the record: it
    /// goes with the lab.
    pub fn log_dir(&self) -> Result<PathBuf> {
        use std::os::unix::fs::DirBuilderExt as _;
        let dir = self.dir.join("logs");
        match fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => Ok(dir),
            Err(e) if e.kind() == ErrorKind::AlreadyExists && !dir.is_symlink() => Ok(dir),
            Err(e) => Err(e).with_context(|| format!("create {}", dir.display())),
        }
    }

    /// Records agent processes, before anything else can fail.
    pub fn add_agents(&mut self, agents: &[Process]) -> Result<()> {
        self.state.agents.extend_from_slice(agents);
        self.save()
    }

    /// Records a global limit's raise before it is made.
    pub fn add_raise(&mut self, raised: Raised) -> Result<()> {
        self.state.raised.push(raised);
        self.save()
    }

    /// Drops a namespace from the record: used when creating it failed because it already
    /// existed, so that teardown never removes what another lab or the user made.
    pub fn disown_namespace(&mut self, name: &NetnsName) -> Result<()> {
        self.state.namespaces.retain(|n| n != name.as_str());
        self.save()
    }

    /// Deletes the record: the lab no longer exists.
    pub fn remove(self) -> Result<()> {
        remove_dir(&self.dir)
    }
}

pub fn remove_dir(dir: &Path) -> Result<()> {
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("remove {}", dir.display())),
    }
}

/// Holds on `limit` recorded by labs other than `me`. A dead lab's record counts too: its raise
/// is in effect until its teardown (`lab down`, `lab clean`) restores it.
pub fn raises_held_by_others(limit: GlobalLimit, me: &str) -> Vec<Raised> {
    Record::list()
        .unwrap_or_default()
        .into_iter()
        .filter(|lab| lab != me)
        .filter_map(|lab| Record::open(&lab).ok())
        .flat_map(|r| r.state.raised)
        .filter(|r| r.limit == limit)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_process_is_alive_and_a_fake_one_is_not() {
        let me = Process::current();
        assert!(me.start_time > 0);
        assert!(me.is_alive());
        let recycled = Process {
            pid: me.pid,
            start_time: me.start_time + 1,
            group: false,
        };
        assert!(!recycled.is_alive());
    }

    #[test]
    fn liveness() {
        assert!(is_live(Phase::Up, None), "left up on purpose");
        assert!(!is_live(Phase::Building, None), "nobody builds it");
        assert!(is_live(Phase::Building, Some(Process::current())));
        let dead = Process {
            pid: u32::MAX,
            start_time: 1,
            group: false,
        };
        assert!(!is_live(Phase::Running, Some(dead)), "owner died");
    }
}
