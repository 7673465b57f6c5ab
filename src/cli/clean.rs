//! `lab clean`: remove what crashed or killed `lab` processes left behind.

use anyhow::Result;

use crate::lab::{lifecycle, preflight};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Also remove labs that were left up on purpose by `lab up`.
    #[arg(long)]
    pub all: bool,
}

pub fn run(args: Args) -> Result<()> {
    preflight::check_teardown()?;
    let _deferred = super::DeferSignals::new();
    let done = lifecycle::clean(args.all)?;
    for lab in &done.removed {
        super::log::status!("removed lab {lab}");
    }
    for lab in &done.kept {
        super::log::status!("kept lab {lab}: it is up or in use (`lab down {lab}` removes it)");
    }
    if done.removed.is_empty() {
        super::log::status!("nothing to clean");
    }
    Ok(())
}
