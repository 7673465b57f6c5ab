//! `lab exec LAB NODE -- CMD...`: run a command inside a node's network namespace, the way
//! `ip netns exec` does (and with /sys showing that namespace's devices). `lab shell` enters
//! namespaces the same way.

use std::os::unix::process::CommandExt as _;

use anyhow::{Context as _, Result, anyhow};

use crate::error::invalid;
use crate::lab::netlink::netns_path;
use crate::lab::plan::NetnsName;
use crate::lab::state::Record;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The lab's name (see `lab list`).
    pub lab: String,
    /// A lan, host or container of the lab.
    pub node: String,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

pub fn run(args: Args) -> Result<()> {
    let netns = node_netns(&args.lab, &args.node)?;
    let (program, rest) = args
        .command
        .split_first()
        .ok_or_else(|| invalid("no command given after `--`"))?;
    enter(&netns)?;
    let err = std::process::Command::new(program)
        .args(rest)
        .env("LAB", &args.lab)
        .env("LAB_NAME", &args.lab)
        .env("LAB_NODE", &args.node)
        .exec();
    Err(anyhow!(err).context(format!("run {program} in {}", netns)))
}

/// The namespace of `node` in the running lab `lab`, from the lab's record.
pub(super) fn node_netns(lab: &str, node: &str) -> Result<NetnsName> {
    let record = Record::open(lab)?;
    let nodes = record.state.nodes();
    let Some(found) = nodes.iter().find(|n| n.name == node) else {
        let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
        return Err(invalid(format!(
            "lab {lab} has no node {node}; its nodes are: {}",
            names.join(", ")
        )));
    };
    tracing::debug!(lab, node, netns = %found.netns, "found the node's namespace");
    Ok(NetnsName::from_state(found.netns.clone()))
}

/// Moves this (single-threaded) process into the namespace, with a private mount namespace
/// whose /sys is remounted so tools reading /sys/class/net see the namespace's links.
pub(super) fn enter(netns: &NetnsName) -> Result<()> {
    let path = netns_path(netns);
    let file = std::fs::File::open(&path)
        .with_context(|| format!("open network namespace {netns} ({})", path.display()))?;
    // This process has only this thread (exec runs before any runtime starts), so the whole
    // process is in the namespace.
    crate::sys::enter_netns(&file).with_context(|| format!("enter network namespace {netns}"))?;
    crate::sys::remount_sys_for_netns();
    tracing::info!(%netns, "entered network namespace");
    Ok(())
}
