//! `lab down NAME`: remove everything a lab made, from its record alone.

use anyhow::Result;

use crate::lab::{lifecycle, preflight};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The lab's name (see `lab list`).
    pub lab: String,
    /// Remove it even while another `lab` process is building or running it.
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: Args) -> Result<()> {
    preflight::check_teardown()?;
    let _deferred = super::DeferSignals::new();
    lifecycle::down(&args.lab, args.force)?;
    super::log::status!("lab {} is down", args.lab);
    Ok(())
}
