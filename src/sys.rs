//! The process-level system calls of `lab` itself (not of its agents: `workload::sys`, nor
//! of its kernel protocols: `lab::netlink`, `nfnl`, `nat::firewall`, `nat::conntrack`): signals, pids,
//! locks, limits, access checks, entering a namespace. Every `unsafe` of the engine and the
//! CLI lives here, each behind a safe wrapper that says what it promises.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd as _;
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;

fn cvt(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The size (columns, rows) of the terminal `fd` is, or `None` when it is not a terminal (or
/// says it has no size, as some pseudo-terminals do before they are sized).
pub fn terminal_size(fd: std::os::fd::BorrowedFd<'_>) -> Option<(u16, u16)> {
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `winsize` to the pointer, which points at ours; `fd` is
    // borrowed, so open for the call.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut size) };
    (rc == 0 && size.ws_col > 0 && size.ws_row > 0).then_some((size.ws_col, size.ws_row))
}

/// Sends `signal` to process `pid`; true when it was delivered.
pub fn kill(pid: u32, signal: i32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(pid, signal) == 0 }
}

/// Sends `signal` to every process of group `pgid`; false if there is none.
pub fn kill_group(pgid: u32, signal: i32) -> bool {
    match i32::try_from(pgid) {
        // 0 and 1 would mean "my group" and "everyone": never.
        Ok(pgid) if pgid > 1 => {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(-pgid, signal) == 0 }
        }
        _ => false,
    }
}

/// How child `pid` ended ("exit status: 1", "signal: 11 (SIGSEGV)"), once it has, without
/// reaping it.
pub fn child_status_nowait(pid: u32) -> Option<String> {
    // SAFETY: siginfo_t is plain data, and waitid only writes into it.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: WNOWAIT leaves the child to be reaped by its owner; WNOHANG never blocks.
    let r = unsafe {
        libc::waitid(
            libc::P_PID,
            pid,
            &mut info,
            libc::WEXITED | libc::WNOWAIT | libc::WNOHANG,
        )
    };
    // SAFETY: waitid succeeded, so si_pid is set (0 when the child has not exited) and, for an
    // exited child, si_status.
    if r != 0 || unsafe { info.si_pid() } == 0 {
        return None;
    }
    // SAFETY: as above.
    let status = unsafe { info.si_status() };
    Some(match info.si_code {
        libc::CLD_EXITED => format!("exit status: {status}"),
        _ => format!("signal: {status} ({})", crate::error::signal_name(status)),
    })
}

/// A user of this machine by name: (uid, primary gid), from the passwd database (`None`: no
/// such user).
pub fn user_by_name(name: &str) -> io::Result<Option<(u32, u32)>> {
    let c_name = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: passwd is plain data that getpwnam_r fills in; `buf` outlives every use of the
    // pointers it leaves in `pwd`, and only the two integers are read.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; buf.len() is its size.
    let rc = unsafe {
        libc::getpwnam_r(
            c_name.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        )
    };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok((!found.is_null()).then_some((pwd.pw_uid, pwd.pw_gid)))
}

/// Takes an exclusive `flock` on `file`, waiting for it; released when the file is closed.
pub fn lock_exclusive(file: &File) -> io::Result<()> {
    // SAFETY: flock only reads the descriptor, which `file` keeps open.
    cvt(unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) })
}

/// True once child `pid` has exited (its status is waiting to be collected) or is gone; it is
/// not reaped here.
pub fn child_exited(pid: u32) -> bool {
    let id: libc::id_t = pid;
    // SAFETY: siginfo_t is plain data, and waitid only writes into it.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: WNOWAIT leaves the child to be reaped by its owner; WNOHANG never blocks.
    let r = unsafe {
        libc::waitid(
            libc::P_PID,
            id,
            &mut info,
            libc::WEXITED | libc::WNOWAIT | libc::WNOHANG,
        )
    };
    // SAFETY: waitid succeeded, so si_pid is set (0 when the child has not exited).
    r != 0 || unsafe { info.si_pid() } != 0
}

/// The open-files hard limit of this process (the most a process may raise its soft limit to).
pub fn open_files_hard_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    cvt(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) })?;
    Ok(lim.rlim_max)
}

/// The effective user id.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Whether this process may write `path`, by its effective ids and capabilities; a read-only
/// mount answers EROFS even to root. Nothing is written.
pub fn may_write(path: &Path) -> io::Result<()> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: a NUL-terminated path that outlives the call; faccessat only reads it.
    cvt(unsafe { libc::faccessat(libc::AT_FDCWD, c.as_ptr(), libc::W_OK, libc::AT_EACCESS) })
}

/// Sets `signal`'s disposition to `handler` (e.g. `SIG_IGN`, `SIG_DFL`, or one returned
/// earlier) and returns the one it replaces.
pub fn set_signal_disposition(signal: i32, handler: libc::sighandler_t) -> libc::sighandler_t {
    // SAFETY: installing SIG_IGN/SIG_DFL or a disposition the kernel returned earlier is
    // async-signal-safe and has no memory-safety preconditions.
    unsafe { libc::signal(signal, handler) }
}

/// Moves the calling thread into the network namespace open as `ns`.
pub fn enter_netns(ns: &File) -> io::Result<()> {
    // SAFETY: setns on a valid namespace fd affects only the calling thread.
    cvt(unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) })
}

/// Gives the calling process a private mount namespace in which /sys is sysfs mounted anew
/// (of the current network namespace), as `ip netns exec` does, so tools reading
/// /sys/class/net see the namespace's links. Best effort: a failure leaves /sys as it was.
pub fn remount_sys_for_netns() {
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
