//! Can this machine run labs at all? Checked before anything is created, every missing piece
//! reported at once and named with what to do (exit 3). Kernel features that can only be probed
//! by trying (veth, bridge) are reported the same way when the first attempt fails.
//!
//! The checks change nothing in the initial namespace: capabilities are read from
//! `/proc/self/status`, directories are created only where `lab` keeps its own files, writability
//! is asked of the kernel with `faccessat`, mounts are read from `/proc/self/mountinfo`, and
//! nf_tables and conntrack are probed with read-only
//! netlink requests (the ruleset's generation id, the conntrack statistics). The kernel may load
//! the nf_tables and nf_conntrack_netlink modules to answer them, as the first `lab up` would.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;

use super::netlink::netns_dir;
use super::state::run_dir;
use crate::error::unsupported;
use crate::nfnl;

const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;

/// A sysctl `lab` writes in every forwarding host's namespace: if it is writable, so is the rest
/// of /proc/sys/net (a read-only /proc/sys is one mount).
pub const PROC_SYS_NET_PROBE: &str = "/proc/sys/net/ipv4/ip_forward";

/// The kernel answers a probe at once; silence this long means it never will.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// What this machine offers, one field per requirement, each probe's failure as its errno.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    pub euid: u32,
    /// Effective capabilities (`CapEff`); `None` when /proc/self/status cannot be read.
    pub caps: Option<u64>,
    /// /proc/self/ns/net exists: the kernel has network namespaces and /proc is mounted.
    pub net_ns: bool,
    /// Where lab records go, and whether `LAB_RUN_DIR` chose it.
    pub run_dir: PathBuf,
    pub run_dir_from_env: bool,
    pub run_dir_writable: Result<(), i32>,
    /// Where named namespaces are mounted (`lab::netlink::netns_dir`), whether it can be
    /// written, and the mount it is on.
    pub netns_dir: PathBuf,
    pub netns_dir_writable: Result<(), i32>,
    pub netns_mount: Option<Mount>,
    /// /proc/sys/net, where per-namespace sysctls are written.
    pub proc_sys_net_writable: Result<(), i32>,
    /// nf_tables answers a netlink request (Docker's NAT rules are written as nftables).
    pub nf_tables: Result<(), i32>,
    /// Connection tracking answers over ctnetlink (the NAT needs it, `lab nat` reads it).
    pub conntrack: Result<(), i32>,
}

/// Checks everything `lab` needs from the machine and reports all that is missing (exit 3).
pub fn check_machine() -> Result<()> {
    let problems = Machine::probe().problems();
    if problems.is_empty() {
        return Ok(());
    }
    Err(unsupported(describe(&problems)))
}

/// What `down` and `clean` need: removing namespaces and records takes the capabilities and a
/// writable /run, not nf_tables, conntrack or sysctls, so a machine that lost those (a module
/// unloaded, a container restarted with fewer rights) can still clean up. Exit 3 otherwise.
pub fn check_teardown() -> Result<()> {
    let problems = Machine::probe().for_teardown().problems();
    if problems.is_empty() {
        return Ok(());
    }
    Err(unsupported(describe(&problems)))
}

/// One message for all problems: a single one inline, several as a list.
fn describe(problems: &[String]) -> String {
    match problems {
        [one] => format!("this machine cannot run labs: {one}"),
        many => format!(
            "this machine cannot run labs, {} things are missing:\n  - {}",
            many.len(),
            many.join("\n  - ")
        ),
    }
}

/// One line of `/proc/self/mountinfo`, as much of it as the preflight reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Where it is mounted, in this process's view.
    pub point: PathBuf,
    /// Its propagation is `unbindable`: nothing under it can be bind-mounted.
    pub unbindable: bool,
}

impl Machine {
    /// Looks at the machine, creating only the namespace directory and the lab record directory.
    pub fn probe() -> Self {
        let run_dir = run_dir();
        let netns_dir = netns_dir().to_path_buf();
        Self {
            euid: euid(),
            caps: effective_caps(),
            net_ns: Path::new("/proc/self/ns/net").exists(),
            run_dir_writable: writable_dir(&run_dir),
            run_dir,
            run_dir_from_env: std::env::var_os("LAB_RUN_DIR").is_some(),
            netns_dir_writable: writable_dir(&netns_dir),
            netns_mount: std::fs::read_to_string("/proc/self/mountinfo")
                .ok()
                .and_then(|m| {
                    // Mount points are listed with their symlinks resolved.
                    let real = std::fs::canonicalize(&netns_dir).unwrap_or(netns_dir.clone());
                    mount_of(&parse_mountinfo(&m), &real).cloned()
                }),
            netns_dir,
            proc_sys_net_writable: writable(Path::new(PROC_SYS_NET_PROBE)),
            nf_tables: nfnetlink_probe(|s| s.nft_generation()),
            conntrack: nfnetlink_probe(|s| s.ct_stats(&mut |_| Ok(()))),
        }
    }

    /// Only what tearing a lab down needs.
    fn for_teardown(self) -> Self {
        Self {
            netns_mount: None,
            proc_sys_net_writable: Ok(()),
            nf_tables: Ok(()),
            conntrack: Ok(()),
            ..self
        }
    }

    /// Each missing requirement, naming it, why `lab` needs it and what to do.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let Some(caps) = self.caps else {
            return vec![
                "cannot read the effective capabilities from /proc/self/status: is /proc mounted?"
                    .into(),
            ];
        };
        let mut missing = Vec::new();
        if caps & (1 << CAP_NET_ADMIN) == 0 {
            missing.push("CAP_NET_ADMIN (to create links, addresses, routes and firewall rules)");
        }
        if caps & (1 << CAP_SYS_ADMIN) == 0 {
            missing.push("CAP_SYS_ADMIN (to create and enter network namespaces)");
        }
        if !missing.is_empty() {
            let how = if self.euid != 0 {
                "run it as root (`sudo lab ...`)"
            } else {
                "in a container, run it with `--privileged` (or at least --cap-add NET_ADMIN \
                 --cap-add SYS_ADMIN)"
            };
            out.push(format!("{} missing; {how}", missing.join(" and ")));
        }
        // Refusals that only repeat the problem above are left out: a user who is not root
        // cannot write /run, and nfnetlink answers EPERM to anyone without CAP_NET_ADMIN.
        let net_admin = caps & (1 << CAP_NET_ADMIN) != 0;
        let file_error = |r: &Result<(), i32>| match r {
            Ok(()) => None,
            Err(e) if self.euid != 0 && matches!(*e, libc::EPERM | libc::EACCES) => None,
            Err(e) => Some(io::Error::from_raw_os_error(*e)),
        };
        let netlink_error = |r: &Result<(), i32>| match r {
            Ok(()) => None,
            Err(libc::EPERM) if !net_admin => None,
            Err(e) => Some(io::Error::from_raw_os_error(*e)),
        };
        if !self.net_ns {
            out.push(
                "network namespaces: /proc/self/ns/net does not exist (a kernel without \
                 CONFIG_NET_NS, or /proc is not mounted)"
                    .into(),
            );
        }
        if let Some(e) = file_error(&self.run_dir_writable) {
            let how = if self.run_dir_from_env {
                "point LAB_RUN_DIR at a writable directory, or unset it to use /run/lab"
            } else {
                "make /run writable (a container started with --read-only needs `--tmpfs /run`)"
            };
            out.push(format!(
                "a writable lab record directory: {}{} cannot be created or written ({e}); {how}",
                self.run_dir.display(),
                if self.run_dir_from_env {
                    " (from LAB_RUN_DIR)"
                } else {
                    ""
                },
            ));
        }
        let netns_dir = self.netns_dir.display();
        if let Some(e) = file_error(&self.netns_dir_writable) {
            let parent = self.netns_dir.parent().unwrap_or(&self.netns_dir).display();
            out.push(format!(
                "a writable {netns_dir}, where the lab's network namespaces are mounted (and where \
                 `ip netns` looks), cannot be created or written ({e}); make {parent} writable (a \
                 container started with --read-only needs `--tmpfs {parent}`)"
            ));
        }
        if let Some(m) = &self.netns_mount
            && m.unbindable
            && m.point != self.netns_dir
        {
            let point = m.point.display();
            out.push(format!(
                "{netns_dir} is on an unbindable mount ({point}): the directory cannot be made the \
                 shared mount point the namespaces are bind-mounted in, for the agents and `ip \
                 netns` to open; run `mount --make-private {point}` (in a container, leave \
                 `unbindable` off the options of its mount of {point})"
            ));
        }
        if let Some(e) = file_error(&self.proc_sys_net_writable) {
            out.push(format!(
                "a writable /proc/sys/net, for the per-namespace sysctls a lab sets (ip_forward, \
                 ip_local_port_range): {PROC_SYS_NET_PROBE} cannot be written ({e}); Docker and \
                 Podman mount /proc/sys read-only unless the container is `--privileged`"
            ));
        }
        let nfnetlink_missing = [&self.nf_tables, &self.conntrack]
            .iter()
            .all(|r| **r == Err(libc::EPROTONOSUPPORT));
        if nfnetlink_missing {
            out.push(
                "netfilter netlink (nfnetlink): this kernel has none (CONFIG_NETFILTER_NETLINK), so \
                 there is neither nf_tables for Docker's NAT rules nor conntrack to read it"
                    .into(),
            );
        } else {
            if let Some(e) = netlink_error(&self.nf_tables) {
                out.push(format!(
                    "nf_tables, for Docker's NAT and filter rules: the kernel refused a read-only \
                     nf_tables request ({e}); load it with `modprobe nf_tables` (on the host, when \
                     lab runs in a container), or use a kernel with CONFIG_NF_TABLES"
                ));
            }
            if let Some(e) = netlink_error(&self.conntrack) {
                out.push(format!(
                    "connection tracking (nf_conntrack) and its netlink interface, which the NAT \
                     needs and `lab nat`/`lab run` read: the kernel refused a conntrack statistics \
                     request ({e}); load it with `modprobe nf_conntrack_netlink` (on the host, \
                     when lab runs in a container), or use a kernel with CONFIG_NF_CONNTRACK and \
                     CONFIG_NF_CT_NETLINK"
                ));
            }
        }
        out
    }
}

fn effective_caps() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_cap_eff(&status)
}

fn parse_cap_eff(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
}

fn euid() -> u32 {
    crate::sys::euid()
}

fn errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

/// The mounts of a `/proc/self/mountinfo` text, in its order (a later mount on the same point
/// covers an earlier one). Mount points have space, tab, newline and backslash octal-escaped.
fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let point = fields.nth(4)?;
            // After the mount options: optional fields up to the separator `-`.
            let optional: Vec<&str> = fields.skip(1).take_while(|f| *f != "-").collect();
            Some(Mount {
                point: PathBuf::from(unescape_octal(point)),
                unbindable: optional.contains(&"unbindable"),
            })
        })
        .collect()
}

fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], octal) {
            (b'\\', Some(d)) => {
                out.push(d.iter().fold(0u8, |n, c| n.wrapping_mul(8) + (c - b'0')));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The mount `path` is on: the one with the longest mount point that contains it, the last
/// listed of those (the topmost). `None` when no listed mount contains it (in a chroot the
/// mounts above the new root are not listed).
fn mount_of<'a>(mounts: &'a [Mount], path: &Path) -> Option<&'a Mount> {
    mounts
        .iter()
        .enumerate()
        .filter(|(_, m)| path.starts_with(&m.point))
        .max_by_key(|(i, m)| (m.point.components().count(), *i))
        .map(|(_, m)| m)
}

/// Creates `dir` if needed and checks that this process may create files in it.
fn writable_dir(dir: &Path) -> Result<(), i32> {
    std::fs::create_dir_all(dir).map_err(|e| errno(&e))?;
    writable(dir)
}

/// Whether this process may write `path`, by its effective ids and capabilities; a read-only
/// mount answers EROFS even to root. Nothing is written.
fn writable(path: &Path) -> Result<(), i32> {
    crate::sys::may_write(path).map_err(|e| errno(&e))
}

/// Sends one read-only request to an nfnetlink subsystem in the calling thread's namespace and
/// waits for its answer: the reply and the ACK mean it is there; an error reply gives the
/// kernel's errno (EINVAL: no such subsystem, even after trying to load its module; EPERM: no
/// CAP_NET_ADMIN).
fn nfnetlink_probe(probe: impl FnOnce(&mut nfnl::Socket) -> nfnl::Result<()>) -> Result<(), i32> {
    let mut sock = nfnl::Socket::open(PROBE_TIMEOUT).map_err(|e| e.errno())?;
    probe(&mut sock).map_err(|e| e.errno())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine() -> Machine {
        Machine {
            euid: 0,
            caps: Some(0x0000_01ff_ffff_ffff),
            net_ns: true,
            run_dir: PathBuf::from("/run/lab"),
            run_dir_from_env: false,
            run_dir_writable: Ok(()),
            netns_dir: PathBuf::from("/run/netns"),
            netns_dir_writable: Ok(()),
            netns_mount: Some(Mount {
                point: PathBuf::from("/run"),
                unbindable: false,
            }),
            proc_sys_net_writable: Ok(()),
            nf_tables: Ok(()),
            conntrack: Ok(()),
        }
    }

    #[test]
    fn a_complete_machine_has_no_problems() {
        assert_eq!(machine().problems(), Vec::<String>::new());
    }

    #[test]
    fn a_user_without_root_is_told_to_become_root_once() {
        let m = Machine {
            euid: 1000,
            caps: Some(0),
            run_dir_writable: Err(libc::EACCES),
            netns_dir_writable: Err(libc::EACCES),
            proc_sys_net_writable: Err(libc::EACCES),
            nf_tables: Err(libc::EPERM),
            conntrack: Err(libc::EPERM),
            ..machine()
        };
        let p = m.problems();
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("CAP_NET_ADMIN") && p[0].contains("CAP_SYS_ADMIN"));
        assert!(p[0].contains("sudo lab"), "{p:?}");
    }

    #[test]
    fn a_container_without_privileges_is_told_about_privileged_and_read_only_mounts() {
        // Docker's default capabilities + `--cap-add NET_ADMIN`; /proc/sys mounted read-only.
        let m = Machine {
            caps: Some(0xa804_25fb | 1 << CAP_NET_ADMIN),
            proc_sys_net_writable: Err(libc::EROFS),
            ..machine()
        };
        let p = m.problems();
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].starts_with("CAP_SYS_ADMIN") && p[0].contains("--privileged"));
        assert!(!p[0].contains("CAP_NET_ADMIN"), "{p:?}");
        assert!(
            p[1].contains("/proc/sys/net") && p[1].contains("Read-only file system"),
            "{p:?}"
        );
        assert!(p[1].contains("--privileged"), "{p:?}");
    }

    #[test]
    fn root_without_capabilities_still_hears_about_an_unusable_directory() {
        // setpriv --bounding-set=-net_admin, LAB_RUN_DIR=/sys/lab: sysfs refuses mkdir.
        let m = Machine {
            caps: Some(0x1ff_ffff_ffff & !(1 << CAP_NET_ADMIN)),
            run_dir: PathBuf::from("/sys/lab"),
            run_dir_from_env: true,
            run_dir_writable: Err(libc::EPERM),
            nf_tables: Err(libc::EPERM),
            conntrack: Err(libc::EPERM),
            ..machine()
        };
        let p = m.problems();
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].starts_with("CAP_NET_ADMIN"), "{p:?}");
        assert!(p[1].contains("/sys/lab (from LAB_RUN_DIR)"), "{p:?}");
        // With CAP_NET_ADMIN, a netlink EPERM is news (a security module, a user namespace).
        let m = Machine {
            nf_tables: Err(libc::EPERM),
            ..machine()
        };
        assert!(m.problems()[0].contains("Operation not permitted"));
    }

    #[test]
    fn every_missing_piece_is_reported_at_once() {
        let m = Machine {
            net_ns: false,
            run_dir: PathBuf::from("/ro/records"),
            run_dir_from_env: true,
            run_dir_writable: Err(libc::EROFS),
            netns_dir_writable: Err(libc::EROFS),
            proc_sys_net_writable: Err(libc::EROFS),
            nf_tables: Err(libc::EINVAL),
            conntrack: Err(libc::EINVAL),
            ..machine()
        };
        let p = m.problems();
        assert_eq!(p.len(), 6, "{p:?}");
        assert!(p[0].contains("network namespaces"));
        assert!(p[1].contains("/ro/records (from LAB_RUN_DIR)") && p[1].contains("unset it"));
        assert!(p[2].contains("/run/netns") && p[2].contains("--tmpfs /run"));
        assert!(p[3].contains("/proc/sys/net"));
        assert!(p[4].starts_with("nf_tables") && p[4].contains("modprobe nf_tables"));
        assert!(p[5].contains("nf_conntrack_netlink") && p[5].contains("Invalid argument"));
        let text = describe(&p);
        assert!(text.starts_with("this machine cannot run labs, 6 things are missing:\n  - "));
        assert_eq!(text.lines().count(), 7);
    }

    #[test]
    fn the_namespace_directory_is_named_where_it_is_with_its_fix() {
        // An image whose /var/run is a directory of its own, started --read-only.
        let m = Machine {
            netns_dir: PathBuf::from("/var/run/netns"),
            netns_dir_writable: Err(libc::EROFS),
            netns_mount: Some(Mount {
                point: PathBuf::from("/"),
                unbindable: false,
            }),
            ..machine()
        };
        let p = m.problems();
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].starts_with("a writable /var/run/netns"), "{p:?}");
        assert!(p[0].contains("`--tmpfs /var/run`"), "{p:?}");
        assert!(p[0].contains("`ip netns`"), "{p:?}");
        // On an unbindable mount the directory cannot become a mount point.
        let m = Machine {
            netns_mount: Some(Mount {
                point: PathBuf::from("/run"),
                unbindable: true,
            }),
            ..machine()
        };
        let p = m.problems();
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("/run/netns is on an unbindable mount (/run)")
                && p[0].contains("mount --make-private /run"),
            "{p:?}"
        );
        assert!(m.clone().for_teardown().problems().is_empty());
        // Once it is a mount point of its own (an earlier lab or `ip netns add` made it one),
        // nothing needs binding under the unbindable mount.
        let m = Machine {
            netns_mount: Some(Mount {
                point: PathBuf::from("/run/netns"),
                unbindable: true,
            }),
            ..machine()
        };
        assert!(m.problems().is_empty());
    }

    #[test]
    fn the_mount_of_a_path_is_the_topmost_longest_one() {
        let text = "\
22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/vda rw
25 22 0:23 / /run rw,nosuid shared:5 - tmpfs tmpfs rw
26 25 0:24 / /run/my\\040dir rw - tmpfs tmpfs rw
30 22 0:25 / /run rw unbindable - tmpfs tmpfs rw
31 30 0:4 net:[4026532281] /run/netns-x rw shared:7 master:2 - nsfs nsfs rw
";
        let mounts = parse_mountinfo(text);
        assert_eq!(mounts.len(), 5);
        assert_eq!(mounts[2].point, PathBuf::from("/run/my dir"));
        let m = mount_of(&mounts, Path::new("/run/netns")).expect("a mount");
        assert_eq!((m.point.as_path(), m.unbindable), (Path::new("/run"), true));
        assert_eq!(
            mount_of(&mounts, Path::new("/var/run/netns")).map(|m| m.point.clone()),
            Some(PathBuf::from("/"))
        );
        assert!(mount_of(&mounts[1..], Path::new("/var/run/netns")).is_none());
        assert_eq!(unescape_octal("a\\011b\\134c\\9"), "a\tb\\c\\9");
    }

    #[test]
    fn a_kernel_without_nfnetlink_is_one_problem() {
        let m = Machine {
            nf_tables: Err(libc::EPROTONOSUPPORT),
            conntrack: Err(libc::EPROTONOSUPPORT),
            ..machine()
        };
        let p = m.problems();
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("CONFIG_NETFILTER_NETLINK"));
        assert_eq!(
            describe(&p),
            format!("this machine cannot run labs: {}", p[0])
        );
    }

    #[test]
    fn teardown_needs_only_privileges_and_run() {
        let m = Machine {
            proc_sys_net_writable: Err(libc::EROFS),
            nf_tables: Err(libc::EINVAL),
            conntrack: Err(libc::EINVAL),
            ..machine()
        };
        assert_eq!(m.problems().len(), 3);
        assert!(m.clone().for_teardown().problems().is_empty());
        let m = Machine {
            netns_dir_writable: Err(libc::EROFS),
            ..m
        };
        assert_eq!(m.for_teardown().problems().len(), 1);
    }

    #[test]
    fn unreadable_capabilities_say_proc_is_missing() {
        let p = Machine {
            caps: None,
            ..machine()
        }
        .problems();
        assert_eq!(p.len(), 1);
        assert!(p[0].contains("/proc/self/status"));
    }

    #[test]
    fn cap_eff_is_read_from_status() {
        let status = "Name:\tlab\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n";
        assert_eq!(parse_cap_eff(status), Some(0x1ff_ffff_ffff));
        assert_eq!(parse_cap_eff("Name:\tlab\n"), None);
        assert_eq!(parse_cap_eff("CapEff:\tzz\n"), None);
    }

    #[test]
    fn writability_is_asked_without_writing() {
        assert_eq!(
            writable(Path::new("/proc/self/ns/net/x")),
            Err(libc::ENOTDIR)
        );
        assert!(writable(Path::new("bad\0path")).is_err());
        let dir = std::env::temp_dir().join(format!("lab-preflight-unit-{}", std::process::id()));
        assert_eq!(writable_dir(&dir), Ok(()));
        let _ = std::fs::remove_dir(&dir);
    }
}
