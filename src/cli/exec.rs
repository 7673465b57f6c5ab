//! `lab exec LAB NODE -- CMD...`: run a command inside a node's network namespace, the way
//! `ip netns exec` does (and with /sys showing that namespace's devices). `lab shell` enters
//! namespaces the same way.

use std::ffi::CString;
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
    use std::os::fd::AsRawFd as _;
    // SAFETY: setns on a valid namespace fd; affects only this thread, and this process has
    // only this thread (exec runs before any runtime starts).
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("enter network namespace {netns}"));
    }
    remount_sys();
    tracing::info!(%netns, "entered network namespace");
    Ok(())
}

/// Best effort, as `ip netns exec` does it: a failure only leaves /sys showing the old view.
fn remount_sys() {
    let (Ok(root), Ok(sys), Ok(sysfs), Ok(none)) = (
        CString::new("/"),
        CString::new("/sys"),
        CString::new("sysfs"),
        CString::new("none"),
    ) else {
        return;
    };
    // SAFETY: plain syscalls with valid NUL-terminated strings; failures are ignored on purpose.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS) != 0 {
            return;
        }
        if libc::mount(
            none.as_ptr(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_SLAVE | libc::MS_REC,
            std::ptr::null(),
        ) != 0
        {
            return;
        }
        libc::umount2(sys.as_ptr(), libc::MNT_DETACH);
        libc::mount(
            sysfs.as_ptr(),
            sys.as_ptr(),
            sysfs.as_ptr(),
            0,
            std::ptr::null(),
        );
    }
}
