//! A lab's life: `up` (claim the name, record, build, roll back on failure or signal), leave it
//! up or take it `down`, and `clean` whatever dead processes left behind. `lab run` is `up` +
//! workload + `down` on the same [`Lab`].

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

use anyhow::{Context as _, Result, anyhow};
use tokio::signal::unix::{Signal, SignalKind, signal};

use super::build::{build, taken_namespaces};
use super::events::{Notice, emit};
use super::firewall::Firewall;
use super::limits::{self, Ledger, Need, Restore};
use super::netlink::{netns_path, remove_netns};
use super::plan::{NetnsName, Plan};
use super::state::{LabState, Phase, Process, Record, raises_held_by_others, remove_dir};
use crate::error::{Fail, invalid};

/// SIGINT and SIGTERM, caught from before the first object is created so that an interrupted
/// command tears down instead of dying half-way. Once registered they stay caught for the life
/// of the process, so a second Ctrl-C cannot cut a teardown short either.
pub struct Signals {
    int: Signal,
    term: Signal,
}

impl Signals {
    /// Must be called inside a tokio runtime.
    pub fn catch() -> Result<Self> {
        Ok(Self {
            int: signal(SignalKind::interrupt()).context("catch SIGINT")?,
            term: signal(SignalKind::terminate()).context("catch SIGTERM")?,
        })
    }

    /// Waits for the next signal and returns its number.
    pub async fn recv(&mut self) -> i32 {
        tokio::select! {
            _ = self.int.recv() => libc::SIGINT,
            _ = self.term.recv() => libc::SIGTERM,
        }
    }

    /// From now on a signal cannot cut the work short (stopping a teardown halfway would leave
    /// the lab behind): each one is announced at once and the first is kept, for the caller to
    /// exit with once it is done. Must be called inside a tokio runtime.
    pub fn defer(mut self, doing: &'static str) -> Deferred {
        let first = Arc::new(AtomicI32::new(0));
        let noted = Arc::clone(&first);
        Deferred {
            first,
            task: tokio::spawn(async move {
                loop {
                    let sig = self.recv().await;
                    let again = noted
                        .compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst)
                        .is_err();
                    emit(Notice::SignalWhileFinishing {
                        signal: sig,
                        doing,
                        again,
                    });
                }
            }),
        }
    }
}

/// Signals noted while finishing work that must not be cut short: see [`Signals::defer`].
pub struct Deferred {
    first: Arc<AtomicI32>,
    task: tokio::task::JoinHandle<()>,
}

impl Deferred {
    /// The first signal received so far, if any.
    pub fn received(&self) -> Option<i32> {
        Some(self.first.load(Ordering::SeqCst)).filter(|&s| s != 0)
    }
}

impl Drop for Deferred {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A lab this process built and is responsible for.
pub struct Lab {
    pub plan: Plan,
    record: Record,
}

/// Builds `plan`, Docker hosts' rules through `firewall`, first raising the global limits in `raises` (each recorded before it is
/// made, and printed). On any failure, or on a signal, removes everything built, restores the
/// limits and returns the error (a [`Fail::Interrupted`] for a signal).
pub async fn up(
    plan: Plan,
    file: Option<&Path>,
    raises: &[Need],
    signals: &mut Signals,
    firewall: &dyn Firewall,
) -> Result<Lab> {
    let owners = namespace_owners();
    let mut record = Record::create(LabState::new(&plan, file))?;
    tracing::info!(
        lab = %plan.name,
        namespaces = plan.namespaces().len(),
        "claimed the lab's name and recorded its namespaces"
    );
    let taken = taken_namespaces(&plan, &owners);
    if !taken.is_empty() {
        // Nothing was created: give the name back and say what is in the way.
        record.remove()?;
        return Err(invalid(format!(
            "these network namespaces exist already: {}; remove them (`lab down <lab>`, or \
             `ip netns del <name>` if you made them) or pick another lab name with --name",
            taken.join(", ")
        )));
    }
    let outcome = tokio::select! {
        r = async {
            raise_limits(&mut record, raises)?;
            super::fault::pause("up:limits").await;
            build(&plan, firewall).await
        } => r,
        sig = signals.recv() => Err(Fail::Interrupted(sig).into()),
    };
    match outcome {
        Ok(()) => {
            tracing::info!(lab = %plan.name, "built");
            Ok(Lab { plan, record })
        }
        Err(err) => {
            tracing::warn!(lab = %plan.name, "build failed, removing what was built: {err:#}");
            if let Some(taken) = err
                .chain()
                .find_map(|e| e.downcast_ref::<super::netlink::NetnsTaken>())
            {
                // Someone made this namespace between our check and our create: not ours.
                record.disown_namespace(&taken.0)?;
            }
            if let Err(td) = teardown(record) {
                return Err(err.context(format!("and tearing down failed too: {td:#}")));
            }
            let name = &plan.name;
            Err(err.context(format!(
                "lab {name} was not built; everything it had made was removed"
            )))
        }
    }
}

/// Raises each global limit the run needs, recording it first (see [`limits`](super::limits)).
fn raise_limits(record: &mut Record, raises: &[Need]) -> Result<()> {
    for need in raises {
        let _ledger = Ledger::lock(&super::state::run_dir())?;
        let current = need.limit.read()?;
        let others = raises_held_by_others(need.limit, &record.state.lab);
        let plan = limits::plan_raise(need.limit, need.needed, current, &others);
        record.add_raise(plan.raised)?;
        limits::apply(&plan)?;
        match plan.write {
            Some(v) => emit(Notice::Raised {
                limit: need.limit,
                lab: record.state.lab.clone(),
                from: current,
                to: v,
                before: plan.raised.before,
            }),
            None => tracing::info!(
                limit = %need.limit,
                current,
                "already high enough (raised by another lab, which keeps it until both are gone)"
            ),
        }
    }
    Ok(())
}

/// Restores the global limits a lab raised, as it goes. Returns the problems.
fn restore_limits(record: &Record) -> Vec<String> {
    if record.state.raised.is_empty() {
        return Vec::new();
    }
    let _ledger = match Ledger::lock(&super::state::run_dir()) {
        Ok(l) => l,
        Err(e) => return vec![format!("{e:#}")],
    };
    let mut problems = Vec::new();
    for r in &record.state.raised {
        let others = raises_held_by_others(r.limit, &record.state.lab);
        match limits::restore(r, &others) {
            Ok(Restore::Write(v)) => emit(Notice::Restored {
                limit: r.limit,
                lab: record.state.lab.clone(),
                to: v,
                had_set: r.set,
            }),
            Ok(Restore::Nothing) => {}
            Ok(Restore::ChangedOutside { current }) => emit(Notice::ChangedOutside {
                limit: r.limit,
                lab: record.state.lab.clone(),
                current,
                set: r.set,
                before: r.before,
            }),
            Err(e) => problems.push(format!("restore {}: {e:#}", r.limit)),
        }
    }
    problems
}

impl Lab {
    /// Leaves the lab running with no owner: `lab down` removes it.
    pub fn leave_up(mut self) -> Result<()> {
        self.record.set_phase(Phase::Up, None)
    }

    /// Marks the lab as running a workload in this process.
    pub fn set_running(&mut self) -> Result<()> {
        self.record
            .set_phase(Phase::Running, Some(Process::current()))
    }

    /// Records agent processes so that `down` and `clean` stop them even if this process dies.
    /// Where the programs of this lab write their logs.
    pub fn log_dir(&self) -> Result<std::path::PathBuf> {
        self.record.log_dir()
    }

    pub fn add_agents(&mut self, agents: &[Process]) -> Result<()> {
        self.record.add_agents(agents)
    }

    /// The global limits raised (or held) for this lab.
    pub fn raised(&self) -> &[limits::Raised] {
        &self.record.state.raised
    }

    /// Removes everything the lab made; its plan comes back for the report.
    pub fn down(self) -> (Plan, Result<()>) {
        (self.plan, teardown(self.record))
    }
}

/// `lab down NAME`: removes a lab from its record alone; the lab file is not needed.
pub fn down(lab: &str, force: bool) -> Result<()> {
    let record = match Record::open(lab) {
        Ok(r) => r,
        // Killed between claiming the name and writing the first record: nothing was created
        // (the record always precedes the first object), so the claim is all there is to undo.
        Err(e)
            if Record::orphan_dir(lab).is_dir()
                && !Record::orphan_dir(lab).join("state.json").exists() =>
        {
            remove_dir(&Record::orphan_dir(lab)).context(e.to_string())?;
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    if let Some(owner) = record.state.owner
        && owner.is_alive()
        && owner != Process::current()
        && !force
    {
        return Err(invalid(format!(
            "lab {lab} is being {} by process {}; stop it (Ctrl-C or `kill {}`: it tears the lab \
             down itself), or use `lab down --force {lab}`",
            match record.state.phase {
                Phase::Running => "run",
                Phase::TearingDown => "torn down",
                _ => "built",
            },
            owner.pid,
            owner.pid
        )));
    }
    teardown(record)
}

/// What `clean` did.
#[derive(Debug, Default, serde::Serialize)]
pub struct Cleaned {
    /// Labs removed because nobody was responsible for them any more.
    pub removed: Vec<String>,
    /// Live labs left alone (up on purpose, or owned by a running process).
    pub kept: Vec<String>,
}

/// `lab clean`: removes every lab whose owner died (a crash, `kill -9`), and with `all` also
/// labs left up on purpose. Labs owned by a live process are never touched.
pub fn clean(all: bool) -> Result<Cleaned> {
    let mut done = Cleaned::default();
    let mut errors = Vec::new();
    for lab in Record::list()? {
        let record = match Record::open(&lab) {
            Ok(r) => r,
            Err(_) => {
                // No readable record: the process died between claiming the name and writing
                // the first record (always written before any object), so only the dir exists.
                remove_dir(&Record::orphan_dir(&lab))?;
                done.removed.push(lab);
                continue;
            }
        };
        let owned_by_live_process = record.state.owner.is_some_and(|p| p.is_alive());
        if owned_by_live_process || (record.state.is_live() && !all) {
            tracing::debug!(lab, "kept: up or owned by a live process");
            done.kept.push(lab);
            continue;
        }
        match teardown(record) {
            Ok(()) => done.removed.push(lab),
            Err(e) => errors.push(format!("{lab}: {e:#}")),
        }
    }
    if errors.is_empty() {
        Ok(done)
    } else {
        Err(anyhow!("could not remove every lab: {}", errors.join("; ")))
    }
}

/// Removes every namespace in the record, newest first, going on past failures; deletes the
/// record only when everything is gone, so a failed teardown can be retried with `lab down`.
pub fn teardown(mut record: Record) -> Result<()> {
    record.set_phase(Phase::TearingDown, Some(Process::current()))?;
    tracing::info!(
        lab = %record.state.lab,
        namespaces = ?record.state.namespaces,
        agents = record.state.agents.len(),
        "tearing down: removing the recorded namespaces, newest first"
    );
    let namespaces: Vec<NetnsName> = record.state.namespaces().collect();
    stop_agents(&record.state.agents, &namespaces);
    let errors: Vec<String> = record
        .state
        .namespaces()
        .rev()
        .enumerate()
        .filter_map(|(i, ns)| {
            let removed = remove_netns(&ns);
            if i == 0 {
                super::fault::pause_blocking("teardown");
            }
            removed.err().map(|e| format!("{e:#}"))
        })
        .chain(restore_limits(&record))
        .collect();
    if errors.is_empty() {
        record.remove()
    } else {
        Err(anyhow!(
            "teardown of lab {} left {} problem(s): {}; run `lab down {}` again",
            record.state.lab,
            errors.len(),
            errors.join("; "),
            record.state.lab
        ))
    }
}

/// Stops recorded agents that still run (SIGKILL: they hold nothing that needs a clean exit),
/// and waits briefly for them to go, so the namespaces they hold are freed with the lab. A
/// program's group goes whole: what it started is found by its group id and by sitting in one
/// of the lab's `namespaces` (its leader may be long gone: `lab` was killed, and with it,
/// through PR_SET_PDEATHSIG, the leader, but not what the leader started).
fn stop_agents(agents: &[Process], namespaces: &[NetnsName]) {
    use std::os::unix::fs::MetadataExt as _;
    let inodes: Vec<u64> = namespaces
        .iter()
        .filter_map(|n| std::fs::metadata(netns_path(n)).ok().map(|m| m.ino()))
        .collect();
    let mut left: Vec<Process> = Vec::new();
    for a in agents.iter().filter(|a| a.group) {
        for pid in a.group_members_in(&inodes) {
            let member = Process::of(pid);
            if member.signal(libc::SIGKILL) {
                left.push(member);
            }
        }
    }
    let signalled: Vec<&Process> = agents
        .iter()
        .filter(|a| a.signal(libc::SIGKILL))
        .chain(left.iter())
        .collect();
    if !signalled.is_empty() {
        tracing::debug!(
            agents = signalled.len(),
            "sent SIGKILL to recorded agents still running"
        );
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while signalled.iter().any(|a| a.is_alive()) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Which lab recorded each namespace, to name the owner of a namespace that is in the way.
fn namespace_owners() -> HashMap<String, String> {
    let mut owners = HashMap::new();
    for lab in Record::list().unwrap_or_default() {
        if let Ok(r) = Record::open(&lab) {
            for ns in r.state.namespaces {
                owners.insert(ns, lab.clone());
            }
        }
    }
    owners
}
