//! `lab show FILE --commands`: the lab as the `ip` / `nft` / `sysctl` commands that build it by
//! hand, in order.

use std::path::PathBuf;

use anyhow::Result;

use super::load_lab;
use crate::error::invalid;
use crate::report::commands;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The lab file (TOML).
    pub file: PathBuf,
    /// Print the equivalent shell commands (iproute2, nft, sysctl).
    #[arg(long)]
    pub commands: bool,
    /// Use this lab name instead of the file's `name`.
    #[arg(long)]
    pub name: Option<String>,
}

pub fn run(args: Args) -> Result<()> {
    if !args.commands {
        return Err(invalid("say what to show: `lab show FILE --commands`"));
    }
    let loaded = load_lab(&args.file, args.name.as_deref())?;
    print!("{}", commands::script(&loaded.plan));
    Ok(())
}
