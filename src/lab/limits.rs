//! Global limits: the few sysctls that only the initial namespace can change and that a big lab
//! can outgrow (`fs.file-max`, `net.netfilter.nf_conntrack_max`), or run slowly in
//! (`net.netfilter.nf_conntrack_buckets`, the one conntrack hash every namespace shares).
//!
//! A lab never touches them unless its file allows it (`[machine] raise = [...]`) and its
//! workload needs more than the machine has. Then `lab run` records the change in the lab's
//! state *before* making it, prints it, and teardown undoes it, whichever way the lab ends
//! (report, Ctrl-C, `lab down`, `lab clean` after a `kill -9`).
//!
//! Several labs may hold a raise of the same limit at once. They share one ledger, the records of
//! every lab (a dead lab's raise holds until its teardown), read and changed under one lock file:
//! - the first raise records the machine's own value (`before`); later ones copy it from the
//!   labs already holding the limit, so the value restored at the end is always the machine's;
//! - a lab whose need is already met by another lab's raise still records a hold (`set` = the
//!   value it relies on), so the other lab's teardown does not pull the limit from under it;
//! - leaving, a lab lowers the limit to the highest value the remaining holders rely on, or to
//!   `before` when it is the last, and only if the value is still the one labs set: if someone
//!   changed it meanwhile, it is left alone and teardown says so.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

/// A global limit `lab run` may raise when the lab file allows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum GlobalLimit {
    /// Open files of the whole system: both ends of every connection run on this machine.
    #[serde(rename = "fs.file-max")]
    FileMax,
    /// Conntrack entries a namespace may hold: one global value, checked against each
    /// namespace's own count.
    #[serde(rename = "net.netfilter.nf_conntrack_max")]
    ConntrackMax,
    /// Buckets of the conntrack hash all namespaces share: never required, only faster (chains
    /// of one instead of four at a million), so raised only when the lab file allows it.
    #[serde(rename = "net.netfilter.nf_conntrack_buckets")]
    ConntrackBuckets,
}

impl GlobalLimit {
    pub const ALL: [GlobalLimit; 3] = [
        GlobalLimit::FileMax,
        GlobalLimit::ConntrackMax,
        GlobalLimit::ConntrackBuckets,
    ];

    /// The sysctl's name, as `sysctl` and lab files write it.
    pub fn key(self) -> &'static str {
        match self {
            GlobalLimit::FileMax => "fs.file-max",
            GlobalLimit::ConntrackMax => "net.netfilter.nf_conntrack_max",
            GlobalLimit::ConntrackBuckets => "net.netfilter.nf_conntrack_buckets",
        }
    }

    pub fn from_key(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.key() == key)
    }

    pub(crate) fn path(self) -> PathBuf {
        Path::new("/proc/sys").join(self.key().replace('.', "/"))
    }

    /// The current value. Read from the calling thread's namespace, which for `lab` itself is
    /// always the initial one (namespace switches never outlive a synchronous call).
    pub fn read(self) -> Result<u64> {
        let path = self.path();
        let text = fs::read_to_string(&path)
            .with_context(|| format!("read {} ({})", self.key(), path.display()))?;
        text.trim()
            .parse()
            .with_context(|| format!("{} is not a number: {:?}", self.key(), text.trim()))
    }

    fn write(self, value: u64) -> Result<()> {
        let path = self.path();
        fs::write(&path, format!("{value}\n"))
            .with_context(|| format!("set {} to {value} ({})", self.key(), path.display()))
    }
}

impl std::fmt::Display for GlobalLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.key())
    }
}

/// A limit the lab's workload needs higher than the machine has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Need {
    pub limit: GlobalLimit,
    pub current: u64,
    /// The value the run needs, headroom included.
    pub needed: u64,
    /// The lab file allows raising it (`[machine] raise`); otherwise the run is refused.
    pub allowed: bool,
    /// Why this process cannot change it, if it cannot: the run is refused then too.
    pub blocked: Option<String>,
}

/// A raise (or a hold on another lab's raise) recorded in a lab's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Raised {
    pub limit: GlobalLimit,
    /// The machine's own value, restored when the last lab holding the limit goes.
    pub before: u64,
    /// The value this lab set or relies on.
    pub set: u64,
}

/// What raising one limit decided: the record to keep and the value to write, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RaisePlan {
    pub raised: Raised,
    pub write: Option<u64>,
}

/// Pure: raise `limit` from `current` to at least `needed`, given the holds of the other labs
/// on the same limit.
pub fn plan_raise(limit: GlobalLimit, needed: u64, current: u64, others: &[Raised]) -> RaisePlan {
    let before = others.first().map_or(current, |o| o.before);
    let set = needed.max(current);
    RaisePlan {
        raised: Raised { limit, before, set },
        write: (set > current).then_some(set),
    }
}

/// What restoring one limit decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restore {
    /// Write this value.
    Write(u64),
    /// The value is already right: another lab still relies on it, or the raise never happened
    /// (the process died between recording it and writing it).
    Nothing,
    /// Someone outside lab changed the value since: leave it.
    ChangedOutside { current: u64 },
}

/// Pure: what to do with `mine` when its lab goes, given the current value and the holds of the
/// other labs on the same limit.
pub fn plan_restore(mine: &Raised, current: u64, others: &[Raised]) -> Restore {
    let target = others.iter().map(|o| o.set).max().unwrap_or(mine.before);
    let ours = others.iter().map(|o| o.set).chain([mine.set]).max();
    if current == target {
        Restore::Nothing
    } else if Some(current) == ours || current == mine.before {
        Restore::Write(target)
    } else {
        Restore::ChangedOutside { current }
    }
}

/// The lock every raise and restore takes, so two labs never read and write the ledger at once:
/// `flock` on `<run dir>/.global-limits.lock`, released by the kernel even if the holder is
/// killed. The empty file stays: removing a lock file another process may be opening is racy.
pub struct Ledger {
    _file: File,
}

impl Ledger {
    /// Takes the lock in the records' directory `root`.
    pub fn lock(root: &std::path::Path) -> Result<Self> {
        fs::create_dir_all(root).with_context(|| format!("create {}", root.display()))?;
        let path = root.join(".global-limits.lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("open {}", path.display()))?;
        crate::sys::lock_exclusive(&file).with_context(|| format!("lock {}", path.display()))?;
        Ok(Self { _file: file })
    }
}

/// Writes a planned raise. The caller has recorded `plan.raised` already.
pub fn apply(plan: &RaisePlan) -> Result<()> {
    match plan.write {
        Some(v) => plan.raised.limit.write(v),
        None => Ok(()),
    }
}

/// Restores one recorded raise as its lab goes, given the raises other labs still hold on the
/// same limit; returns what happened, for the caller to say.
pub fn restore(mine: &Raised, others: &[Raised]) -> Result<Restore> {
    let current = mine.limit.read()?;
    let decision = plan_restore(mine, current, others);
    if let Restore::Write(v) = decision {
        mine.limit.write(v)?;
    }
    Ok(decision)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CT: GlobalLimit = GlobalLimit::ConntrackMax;

    fn held(before: u64, set: u64) -> Raised {
        Raised {
            limit: CT,
            before,
            set,
        }
    }

    #[test]
    fn keys_round_trip_and_map_to_proc_sys() {
        for l in GlobalLimit::ALL {
            assert_eq!(GlobalLimit::from_key(l.key()), Some(l));
            let json = serde_json::to_string(&l).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", l.key()));
        }
        assert_eq!(
            GlobalLimit::ConntrackMax.path(),
            Path::new("/proc/sys/net/netfilter/nf_conntrack_max")
        );
        assert_eq!(
            GlobalLimit::FileMax.path(),
            Path::new("/proc/sys/fs/file-max")
        );
        assert_eq!(GlobalLimit::from_key("net.ipv4.ip_forward"), None);
    }

    #[test]
    fn alone_a_lab_raises_and_restores_the_machines_value() {
        let p = plan_raise(CT, 300_000, 262_144, &[]);
        assert_eq!(p.raised, held(262_144, 300_000));
        assert_eq!(p.write, Some(300_000));
        assert_eq!(
            plan_restore(&p.raised, 300_000, &[]),
            Restore::Write(262_144)
        );
    }

    #[test]
    fn a_second_lab_keeps_the_first_labs_original_and_nobody_pulls_the_limit_from_under_another() {
        // A raises to 300k; B needs 350k and raises again; B leaves first, then A.
        let a = plan_raise(CT, 300_000, 262_144, &[]).raised;
        let b = plan_raise(CT, 350_000, 300_000, &[a]);
        assert_eq!(
            b.raised,
            held(262_144, 350_000),
            "B restores the machine's value"
        );
        assert_eq!(b.write, Some(350_000));
        assert_eq!(
            plan_restore(&b.raised, 350_000, &[a]),
            Restore::Write(300_000)
        );
        assert_eq!(plan_restore(&a, 300_000, &[]), Restore::Write(262_144));
        // The other order: A leaves first and must not lower below what B relies on.
        assert_eq!(plan_restore(&a, 350_000, &[b.raised]), Restore::Nothing);
        assert_eq!(
            plan_restore(&b.raised, 350_000, &[]),
            Restore::Write(262_144)
        );
    }

    #[test]
    fn a_need_already_met_by_another_lab_is_a_hold() {
        let a = plan_raise(CT, 350_000, 262_144, &[]).raised;
        let b = plan_raise(CT, 300_000, 350_000, &[a]);
        assert_eq!(b.write, None);
        assert_eq!(b.raised, held(262_144, 350_000));
        // A leaves: B still relies on 350k.
        assert_eq!(plan_restore(&a, 350_000, &[b.raised]), Restore::Nothing);
        assert_eq!(
            plan_restore(&b.raised, 350_000, &[]),
            Restore::Write(262_144)
        );
    }

    #[test]
    fn a_value_changed_outside_lab_is_left_alone() {
        let a = held(262_144, 300_000);
        assert_eq!(
            plan_restore(&a, 500_000, &[]),
            Restore::ChangedOutside { current: 500_000 }
        );
    }

    #[test]
    fn killed_between_recording_and_raising_restores_nothing() {
        let a = held(262_144, 300_000);
        assert_eq!(plan_restore(&a, 262_144, &[]), Restore::Nothing);
    }
}
