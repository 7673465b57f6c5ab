//! `lab up FILE`: build a lab and leave it running.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;

use super::{absolute, load_lab, runtime};
use crate::lab::capacity::Capacity;
use crate::lab::lifecycle::{Signals, up};
use crate::lab::preflight;
use crate::nat::firewall::DockerFirewall;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The lab file (TOML).
    pub file: PathBuf,
    /// Use this lab name instead of the file's `name` (to run two copies side by side).
    #[arg(long)]
    pub name: Option<String>,
}

pub fn run(args: Args) -> Result<()> {
    let loaded = load_lab(&args.file, args.name.as_deref())?;
    preflight::check_machine()?;
    let plan = loaded.plan;
    let name = plan.name.clone();
    // The lab's `[clients]` say what load it is for, whoever runs it (`lab run`, or the user's
    // own tools through `lab exec`): the same raises the file allows, printed, recorded and
    // restored by `lab down`. What the machine cannot hold is said, not refused: nothing runs
    // yet.
    let capacity = Capacity::of(&plan);
    for problem in capacity.problems() {
        errln!("lab: warning: `lab run` would refuse this lab: {problem}");
    }
    let raises = capacity.raises();
    let namespaces = plan.namespaces().len();
    let file = absolute(&args.file);
    let started = Instant::now();
    runtime()?.block_on(async {
        let mut signals = Signals::catch()?;
        let lab = up(plan, Some(&file), &raises, &mut signals, &DockerFirewall).await?;
        lab.leave_up()
    })?;
    super::log::status!(
        "lab {name} is up: {namespaces} namespaces in {:.0} ms. `lab list` shows it, \
         `lab exec {name} <node> -- <cmd>` enters it, `lab down {name}` removes it.",
        started.elapsed().as_secs_f64() * 1e3
    );
    Ok(())
}
