//! `lab completions SHELL`: a completion script for bash, zsh, fish, elvish or PowerShell, on
//! stdout, generated from the same command-line definition `lab` parses with.

use std::io::Write as _;

use anyhow::{Context as _, Result};
use clap::CommandFactory as _;
use clap_complete::Shell;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: Shell,
}

pub fn run(args: Args) -> Result<()> {
    let script = script(args.shell);
    std::io::stdout()
        .lock()
        .write_all(&script)
        .context("write the completion script to stdout")
}

/// The completion script for `shell`, for the verbs `--help` shows: clap_complete offers hidden
/// subcommands too (`lab agent`, which only `lab run` starts), so the root is rebuilt with the
/// visible ones alone.
pub fn script(shell: Shell) -> Vec<u8> {
    let full = super::Cli::command();
    let mut cmd = clap::Command::new("lab")
        .version(env!("CARGO_PKG_VERSION"))
        .propagate_version(true)
        .args(full.get_arguments().cloned())
        .subcommands(full.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "lab", &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shell_gets_a_script_that_knows_the_verbs() {
        for shell in [
            Shell::Bash,
            Shell::Zsh,
            Shell::Fish,
            Shell::Elvish,
            Shell::PowerShell,
        ] {
            let text = String::from_utf8(script(shell)).expect("utf-8");
            for verb in ["check", "run", "exec", "list", "completions"] {
                assert!(text.contains(verb), "{shell:?} script lacks {verb}");
            }
            assert!(
                !text.contains("agent"),
                "{shell:?} offers the hidden agent verb"
            );
        }
    }
}
