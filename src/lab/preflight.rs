//! Can this machine run labs at all? Checked before anything is created, each failure naming
//! the missing piece (exit 3). Kernel features that can only be probed by trying (veth, bridge)
//! are reported the same way when the first attempt fails.

use std::path::Path;

use anyhow::Result;

use super::netlink::NETNS_DIR;
use super::state::run_dir;
use crate::error::unsupported;

const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;

/// Checks privileges and the directories `lab` writes to.
pub fn check_machine() -> Result<()> {
    let caps = effective_caps()?;
    let mut missing = Vec::new();
    if caps & (1 << CAP_NET_ADMIN) == 0 {
        missing.push("CAP_NET_ADMIN (to create links, addresses, routes and firewall rules)");
    }
    if caps & (1 << CAP_SYS_ADMIN) == 0 {
        missing.push("CAP_SYS_ADMIN (to create and enter network namespaces)");
    }
    if !missing.is_empty() {
        let how = if euid() != 0 {
            "run it as root (`sudo lab ...`)"
        } else {
            "in a container, run it with `--privileged` (or --cap-add NET_ADMIN --cap-add SYS_ADMIN)"
        };
        return Err(unsupported(format!(
            "lab needs {}; {how}",
            missing.join(" and ")
        )));
    }
    for dir in [run_dir(), Path::new(NETNS_DIR).to_path_buf()] {
        if let Err(e) = std::fs::create_dir_all(&dir) {
            return Err(unsupported(format!(
                "lab needs a writable {} ({e}); mount a writable /run (tmpfs) in this container",
                dir.display()
            )));
        }
    }
    if !Path::new("/proc/self/ns/net").exists() {
        return Err(unsupported(
            "this kernel has no network namespaces (CONFIG_NET_NS), or /proc is not mounted",
        ));
    }
    Ok(())
}

fn effective_caps() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|e| {
        unsupported(format!(
            "cannot read /proc/self/status ({e}): is /proc mounted?"
        ))
    })?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .ok_or_else(|| unsupported("cannot read effective capabilities from /proc/self/status"))
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}
