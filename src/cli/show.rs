//! `lab show FILE --commands`: the lab as the `ip` / `nft` / `sysctl` commands that build it by
//! hand, in order; `lab show FILE --docker [commands|compose]`: the same lab on real Docker.

use std::path::PathBuf;

use anyhow::Result;

use super::load_lab;
use crate::error::invalid;
use crate::report::{commands, docker};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The lab file (TOML).
    pub file: PathBuf,
    /// Print the equivalent shell commands (iproute2, nft, sysctl).
    #[arg(long, conflicts_with = "docker")]
    pub commands: bool,
    /// Print the same lab on real Docker: `docker network create` and `docker run` commands,
    /// or a compose file per Docker host, with Docker's caveats.
    #[arg(long, value_name = "FORM", num_args = 0..=1, default_missing_value = "commands")]
    pub docker: Option<DockerForm>,
    /// Use this lab name instead of the file's `name`.
    #[arg(long)]
    pub name: Option<String>,
}

/// How `--docker` writes the lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DockerForm {
    /// `docker network create` and `docker run` lines.
    Commands,
    /// A compose file per Docker host.
    Compose,
}

pub fn run(args: Args) -> Result<()> {
    if !args.commands && args.docker.is_none() {
        return Err(invalid(
            "say what to show: `lab show FILE --commands` or `lab show FILE --docker [compose]`",
        ));
    }
    let loaded = load_lab(&args.file, args.name.as_deref())?;
    let text = match args.docker {
        None => commands::script(&loaded.plan),
        Some(DockerForm::Commands) => docker::commands(&loaded.plan).map_err(invalid)?,
        Some(DockerForm::Compose) => docker::compose(&loaded.plan).map_err(invalid)?,
    };
    print!("{text}");
    Ok(())
}
