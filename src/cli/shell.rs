//! `lab shell LAB NODE`: an interactive shell inside a node's network namespace, entered the
//! way `lab exec` enters it, with a prompt naming the lab and the node.

use std::ffi::OsStr;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow};

use super::exec::{enter, node_netns};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The lab's name (see `lab list`).
    pub lab: String,
    /// A lan, host or container of the lab.
    pub node: String,
}

pub fn run(args: Args) -> Result<()> {
    let netns = node_netns(&args.lab, &args.node)?;
    let shell = choose_shell(std::env::var_os("SHELL").as_deref(), is_executable);
    let how = invocation(&shell, &args.lab, &args.node);
    enter(&netns)?;
    tracing::info!(shell = %shell.display(), args = ?how.args, "starting the shell");
    let err = std::process::Command::new(&shell)
        .args(&how.args)
        .envs(how.prompt.iter().map(|p| ("PS1", p)))
        .env("LAB", &args.lab)
        .env("LAB_NAME", &args.lab)
        .env("LAB_NODE", &args.node)
        .exec();
    Err(anyhow!(err).context(format!("start {} in {netns}", shell.display())))
}

/// `$SHELL` when it names an executable, else bash, else sh.
pub fn choose_shell(env_shell: Option<&OsStr>, executable: impl Fn(&Path) -> bool) -> PathBuf {
    env_shell
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .into_iter()
        .chain([PathBuf::from("/bin/bash")])
        .find(|p| executable(p))
        .unwrap_or_else(|| PathBuf::from("/bin/sh"))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// How to start a shell so that its prompt shows the lab and the node.
#[derive(Debug, PartialEq, Eq)]
pub struct Invocation {
    pub args: Vec<&'static str>,
    /// PS1, for shells that take their prompt from it.
    pub prompt: Option<String>,
}

/// bash and zsh skip their rc files (which would set their own prompt) and read PS1 from the
/// environment; sh-like shells read PS1 too; others (fish, ...) get the environment only.
pub fn invocation(shell: &Path, lab: &str, node: &str) -> Invocation {
    let name = shell
        .file_name()
        .and_then(OsStr::to_str)
        .unwrap_or_default();
    let tag = format!("[lab {lab}:{node}]");
    match name {
        "bash" => Invocation {
            args: vec!["--norc", "--noprofile", "-i"],
            prompt: Some(format!("{tag} \\w \\$ ")),
        },
        "zsh" => Invocation {
            args: vec!["-f", "-i"],
            prompt: Some(format!("{tag} %~ %# ")),
        },
        "sh" | "dash" | "ash" | "ksh" | "mksh" | "busybox" => Invocation {
            args: vec!["-i"],
            prompt: Some(format!("{tag} # ")),
        },
        _ => Invocation {
            args: vec!["-i"],
            prompt: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_is_shell_env_then_bash_then_sh() {
        let all = |_: &Path| true;
        let none = |_: &Path| false;
        let zsh = Some(OsStr::new("/usr/bin/zsh"));
        assert_eq!(choose_shell(zsh, all), Path::new("/usr/bin/zsh"));
        assert_eq!(choose_shell(None, all), Path::new("/bin/bash"));
        assert_eq!(
            choose_shell(Some(OsStr::new("")), all),
            Path::new("/bin/bash")
        );
        let only_bash = |p: &Path| p == Path::new("/bin/bash");
        assert_eq!(choose_shell(zsh, only_bash), Path::new("/bin/bash"));
        assert_eq!(choose_shell(zsh, none), Path::new("/bin/sh"));
    }

    #[test]
    fn prompts_name_the_lab_and_node() {
        let bash = invocation(Path::new("/bin/bash"), "x", "c1");
        assert_eq!(bash.args, ["--norc", "--noprofile", "-i"]);
        assert_eq!(bash.prompt.as_deref(), Some("[lab x:c1] \\w \\$ "));
        let sh = invocation(Path::new("/bin/sh"), "x", "c1");
        assert_eq!(sh.prompt.as_deref(), Some("[lab x:c1] # "));
        let zsh = invocation(Path::new("/usr/bin/zsh"), "x", "c1");
        assert!(zsh.prompt.is_some_and(|p| p.contains("[lab x:c1]")));
        let fish = invocation(Path::new("/usr/bin/fish"), "x", "c1");
        assert_eq!(fish.prompt, None);
    }
}
