//! `lab run` as one piece of the engine: check the machine, predict, then up -> servers ->
//! clients -> watch -> pause the load -> the NAT as the kernel holds it -> stop -> down. The
//! prediction is made once, here, and used by the clients' port walks and the NAT views alike.
//! Progress goes to a callback and [`Notice`](crate::lab::events::Notice)s; what was found comes back as values
//! for `cli` to render.

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::options::RunOptions;
use super::outcome::{Outcome, Snapshot, StopReason};
use super::run::Workload;
use crate::lab::fault;
use crate::lab::lifecycle::{Signals, up};
use crate::lab::limits::{Need, Raised};
use crate::lab::plan::Plan;
use crate::lab::preflight;
use crate::nat::firewall::DockerFirewall;
use crate::nat::paths::{HostPrediction, predict_lab};
use crate::nat::view::NatView;

/// A lab this machine can run, with what the kernel is predicted to do: shown before anything
/// is built.
pub struct Prepared {
    pub plan: Plan,
    pub prediction: Vec<HostPrediction>,
    /// Global limits the run needs raised, as the lab file allows.
    raises: Vec<Need>,
    /// What will go wrong for the machine's sake but is not a reason to refuse the lab (a
    /// program that will run out of open files), for the person to read before it runs.
    pub warnings: Vec<String>,
    /// Where the programs' logs are copied before teardown (`lab run --out DIR/logs`).
    logs_to: Option<PathBuf>,
}

/// What a run found. The lab is gone; every limit raised for it was given back.
pub struct Ran {
    pub plan: Plan,
    pub prediction: Vec<HostPrediction>,
    pub outcome: Outcome,
    pub nat: Vec<NatView>,
    pub raised: Vec<Raised>,
    /// A signal that arrived once the run had settled: reporting, stopping and teardown went
    /// on to the end, and the command still exits as interrupted.
    pub signal_after_settle: Option<i32>,
}

/// Checks that this machine can run labs and can hold this one, and predicts its NAT.
pub fn prepare(plan: Plan) -> Result<Prepared> {
    preflight::check_machine()?;
    let capacity = crate::lab::capacity::check_capacity(&plan)?;
    let prediction = predict_lab(&plan);
    Ok(Prepared {
        plan,
        prediction,
        raises: capacity.raises(),
        warnings: capacity.crowded,
        logs_to: None,
    })
}

impl Prepared {
    /// Copies the programs' logs into `dir` (made if missing, never through a symlink) once
    /// they have stopped, before teardown removes them with the lab's record.
    pub fn copy_logs_to(mut self, dir: &Path) -> Self {
        self.logs_to = Some(dir.to_path_buf());
        self
    }

    /// Runs the lab to its end. `progress` gets a snapshot every 100 ms during the ramp. A
    /// signal during the ramp ends the watch early (the outcome says so); afterwards it is
    /// only noted (see [`Signals::defer`]). On a failure the lab is torn down and the error
    /// returned.
    pub async fn run(
        self,
        file: Option<&Path>,
        opts: &RunOptions,
        progress: impl FnMut(&Snapshot),
    ) -> Result<Ran> {
        let Prepared {
            plan,
            prediction,
            raises,
            logs_to,
            ..
        } = self;
        let mut signals = Signals::catch()?;
        let mut lab = up(plan, file, &raises, &mut signals, &DockerFirewall).await?;
        lab.set_running()?;
        let ran = async {
            let mut w = Workload::start_servers(&mut lab, &mut signals).await?;
            fault::pause("run:clients").await;
            w.start_clients(&mut lab, opts, &prediction).await?;
            fault::pause("run:ramp").await;
            let pace = opts.pace(&lab.plan);
            let mut outcome = w.watch(&lab.plan, &pace, &mut signals, progress).await;
            if let (Some(hold), StopReason::Settled | StopReason::AllDone) =
                (pace.hold, outcome.stop)
            {
                fault::pause("run:hold").await;
                w.hold(&lab.plan, hold, &mut signals, &mut outcome).await;
            }
            Ok::<_, anyhow::Error>((w, outcome))
        }
        .await;
        let deferred = signals.defer("reporting and tearing down");
        let result = match ran {
            Ok((mut w, mut outcome)) => {
                // The ramp and hold are over: stop the pings and connects before reading, so
                // the reading does not wait on CPU they take, and count both ends at rest.
                w.pause(&lab.plan, &mut outcome).await;
                fault::pause("run:report").await;
                // Read the kernel's NAT tables while the connections still exist.
                let hosts = crate::nat::docker_hosts(&lab.plan);
                let nat = crate::nat::read_views(&lab.plan, &hosts, &prediction);
                fault::pause("run:stopping").await;
                w.stop().await;
                nat.map(|nat| (outcome, nat))
            }
            Err(e) => Err(e),
        };
        crate::lab::events::emit(crate::lab::events::Notice::TearingDown {
            lab: lab.plan.name.to_string(),
        });
        let logs = match &logs_to {
            Some(dir) => lab
                .log_dir()
                .and_then(|from| super::program::copy_logs(&from, dir)),
            None => Ok(Vec::new()),
        };
        let raised = lab.raised().to_vec();
        let (plan, down) = lab.down();
        let (outcome, nat) = result?;
        down?;
        logs?;
        Ok(Ran {
            plan,
            prediction,
            outcome,
            nat,
            raised,
            signal_after_settle: deferred.received(),
        })
    }
}
