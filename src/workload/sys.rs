//! Thin safe wrappers over the libc calls the agents need: epoll, sockets, rlimit, signalfd,
//! setns, prctl and statm, and the netlink datagram socket `workload::sockets` counts with. Every `unsafe` of the workload lives here; each wrapper returns
//! `io::Result` with the kernel's errno.

use std::fs::File;
use std::io;
use std::mem;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsFd, AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd, RawFd};
use std::path::Path;
use std::time::Duration;

use libc::c_int;

/// Readiness flags of [`Epoll`], re-exported so the loops need no `libc` of their own.
pub const IN: u32 = libc::EPOLLIN as u32;
pub const OUT: u32 = libc::EPOLLOUT as u32;
pub const ERR: u32 = libc::EPOLLERR as u32;
pub const HUP: u32 = libc::EPOLLHUP as u32;
pub const RDHUP: u32 = libc::EPOLLRDHUP as u32;
pub const ET: u32 = libc::EPOLLET as u32;

fn cvt(r: c_int) -> io::Result<c_int> {
    if r == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn cvt_size(r: isize) -> io::Result<usize> {
    usize::try_from(r).map_err(|_| io::Error::last_os_error())
}

/// Takes ownership of a descriptor the kernel just returned.
fn owned(fd: c_int) -> OwnedFd {
    // SAFETY: `fd` was just returned by a successful syscall that creates a descriptor, so it is
    // open and owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// An epoll instance.
pub struct Epoll {
    fd: OwnedFd,
}

/// The buffer [`Epoll::wait`] fills.
pub struct Events {
    buf: Vec<libc::epoll_event>,
    len: usize,
}

impl Events {
    pub fn with_capacity(n: usize) -> Self {
        Events {
            buf: vec![libc::epoll_event { events: 0, u64: 0 }; n.max(1)],
            len: 0,
        }
    }

    /// The ready (token, flags) pairs of the last wait.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u32)> + '_ {
        self.buf[..self.len].iter().map(|e| (e.u64, e.events))
    }
}

impl Epoll {
    pub fn new() -> io::Result<Self> {
        // SAFETY: no pointers; returns a new descriptor or -1.
        let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        Ok(Epoll { fd: owned(fd) })
    }

    /// Watches `fd` for `events`, reporting `token`. A descriptor leaves the set by itself when
    /// it is closed (the agents never duplicate descriptors).
    pub fn add(&self, fd: BorrowedFd<'_>, events: u32, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: both descriptors are open (borrowed); `ev` is a valid epoll_event the kernel
        // only reads.
        cvt(unsafe {
            libc::epoll_ctl(
                self.fd.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                fd.as_raw_fd(),
                &mut ev,
            )
        })?;
        Ok(())
    }

    /// Waits up to `timeout_ms` (-1: forever). EINTR counts as a wake-up with no events.
    pub fn wait(&self, events: &mut Events, timeout_ms: i32) -> io::Result<usize> {
        let max = c_int::try_from(events.buf.len()).unwrap_or(c_int::MAX);
        // SAFETY: the buffer holds `max` writable epoll_events; the kernel writes at most that
        // many and returns how many.
        let n = unsafe {
            libc::epoll_wait(
                self.fd.as_raw_fd(),
                events.buf.as_mut_ptr(),
                max,
                timeout_ms,
            )
        };
        events.len = match cvt(n) {
            Ok(n) => usize::try_from(n).unwrap_or(0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
            Err(e) => return Err(e),
        };
        Ok(events.len)
    }
}

fn sockaddr(addr: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: addr.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*addr.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

const SOCKADDR_IN_LEN: libc::socklen_t = mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;

/// A non-blocking, close-on-exec IPv4 TCP socket.
pub fn tcp_socket() -> io::Result<OwnedFd> {
    // SAFETY: no pointers; returns a new descriptor or -1.
    let fd = cvt(unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    })?;
    Ok(owned(fd))
}

fn set_int_opt(fd: BorrowedFd<'_>, level: c_int, name: c_int, value: c_int) -> io::Result<()> {
    // SAFETY: `fd` is open; the option value is a c_int of the size given, read by the kernel.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&raw const value).cast(),
            mem::size_of::<c_int>() as libc::socklen_t,
        )
    })?;
    Ok(())
}

/// SO_REUSEADDR and SO_REUSEPORT: for the server's listener only (several server processes share
/// the port). Never on client sockets: it would lift the port limit the lab demonstrates.
pub fn set_reuse_addr_and_port(fd: BorrowedFd<'_>) -> io::Result<()> {
    set_int_opt(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
    set_int_opt(fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)
}

/// SO_LINGER {on, 0 s}: closing the socket resets the connection (one RST, no FIN exchange,
/// no TIME_WAIT), so that an agent holding tens of thousands of connections exits at once.
pub fn set_abortive_close(fd: BorrowedFd<'_>) -> io::Result<()> {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `fd` is open; the option value is a `linger` of the size given, read by the kernel.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    })?;
    Ok(())
}

/// Fails with EADDRNOTAVAIL when `ip` is not an address of the current namespace. Binds a
/// throwaway socket to `ip` with IP_BIND_ADDRESS_NO_PORT, so no port is taken.
pub fn check_local_address(ip: Ipv4Addr) -> io::Result<()> {
    let probe = tcp_socket()?;
    set_int_opt(
        probe.as_fd(),
        libc::IPPROTO_IP,
        libc::IP_BIND_ADDRESS_NO_PORT,
        1,
    )?;
    bind(probe.as_fd(), SocketAddrV4::new(ip, 0))
}

pub fn bind(fd: BorrowedFd<'_>, addr: SocketAddrV4) -> io::Result<()> {
    let sa = sockaddr(addr);
    // SAFETY: `fd` is open; `sa` is a valid sockaddr_in of the length given, read by the kernel.
    cvt(unsafe { libc::bind(fd.as_raw_fd(), (&raw const sa).cast(), SOCKADDR_IN_LEN) })?;
    Ok(())
}

pub fn listen(fd: BorrowedFd<'_>, backlog: u32) -> io::Result<()> {
    let backlog = c_int::try_from(backlog).unwrap_or(c_int::MAX);
    // SAFETY: no pointers.
    cvt(unsafe { libc::listen(fd.as_raw_fd(), backlog) })?;
    Ok(())
}

/// What a non-blocking connect did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connect {
    /// Established at once.
    Done,
    /// EINPROGRESS: the socket becomes writable (or reports an error) when it is decided.
    InProgress,
}

pub fn connect(fd: BorrowedFd<'_>, addr: SocketAddrV4) -> io::Result<Connect> {
    let sa = sockaddr(addr);
    // SAFETY: `fd` is open; `sa` is a valid sockaddr_in of the length given, read by the kernel.
    match cvt(unsafe { libc::connect(fd.as_raw_fd(), (&raw const sa).cast(), SOCKADDR_IN_LEN) }) {
        Ok(_) => Ok(Connect::Done),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(Connect::InProgress),
        Err(e) => Err(e),
    }
}

/// accept4 with the new socket non-blocking and close-on-exec; the peer address is not asked.
pub fn accept(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    // SAFETY: `fd` is open; null address and length pointers are allowed (no address wanted).
    let new = cvt(unsafe {
        libc::accept4(
            fd.as_raw_fd(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        )
    })?;
    Ok(owned(new))
}

/// getsockname of an IPv4 socket.
pub fn local_addr(fd: BorrowedFd<'_>) -> io::Result<SocketAddrV4> {
    let mut sa = sockaddr(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));
    let mut len = SOCKADDR_IN_LEN;
    // SAFETY: `fd` is open; `sa` is writable for `len` bytes and `len` is a valid in/out length.
    cvt(unsafe { libc::getsockname(fd.as_raw_fd(), (&raw mut sa).cast(), &mut len) })?;
    if c_int::from(sa.sin_family) != libc::AF_INET || len < SOCKADDR_IN_LEN {
        return Err(io::Error::from_raw_os_error(libc::EAFNOSUPPORT));
    }
    Ok(SocketAddrV4::new(
        Ipv4Addr::from(u32::from_be(sa.sin_addr.s_addr)),
        u16::from_be(sa.sin_port),
    ))
}

/// SO_ERROR: the socket's pending error (an errno), cleared by reading it; 0 = none.
pub fn take_error(fd: BorrowedFd<'_>) -> io::Result<i32> {
    let mut value: c_int = 0;
    let mut len = mem::size_of::<c_int>() as libc::socklen_t;
    // SAFETY: `fd` is open; `value` is a writable c_int and `len` its size.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&raw mut value).cast(),
            &mut len,
        )
    })?;
    Ok(value)
}

/// A listening socket's accept queue: connections the kernel has completed that wait to be
/// accepted (TCP_INFO's `tcpi_unacked`, which for a listener is its current backlog).
pub fn listen_queue(fd: BorrowedFd<'_>) -> io::Result<u32> {
    // SAFETY: tcp_info is plain old data; all zeros is a valid value.
    let mut info: libc::tcp_info = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `fd` is open; `info` is writable for `len` bytes, which the kernel may shorten.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&raw mut info).cast(),
            &mut len,
        )
    })?;
    Ok(info.tcpi_unacked)
}

/// read(2): Ok(0) is end of file.
pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `fd` is open; `buf` is writable for its length.
    cvt_size(unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) })
}

/// write(2).
pub fn write(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `fd` is open; `buf` is readable for its length.
    cvt_size(unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) })
}

/// send(2) on a socket without SIGPIPE and without blocking.
pub fn send(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `fd` is open; `buf` is readable for its length.
    cvt_size(unsafe {
        libc::send(
            fd.as_raw_fd(),
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
        )
    })
}

/// A blocking, close-on-exec netlink socket of `protocol` in the calling thread's namespace,
/// bound to a port id the kernel picks and connected to the kernel (pid 0); every `recv` waits
/// at most `timeout`, and the receive buffer asked is `rcvbuf` bytes (the kernel caps it at
/// `net.core.rmem_max`).
pub fn netlink_socket(protocol: c_int, timeout: Duration, rcvbuf: c_int) -> io::Result<OwnedFd> {
    // SAFETY: no pointers; returns a new descriptor or -1.
    let fd = owned(cvt(unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            protocol,
        )
    })?);
    // SAFETY: an all-zero sockaddr_nl is valid: nl_pid 0 lets the kernel pick the port id on
    // bind and addresses the kernel on connect.
    let mut addr: libc::sockaddr_nl = unsafe { mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    let len = mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
    // SAFETY: `fd` is open; `addr` is a sockaddr_nl of the length given, read by the kernel.
    cvt(unsafe { libc::bind(fd.as_raw_fd(), (&raw const addr).cast(), len) })?;
    // SAFETY: as above.
    cvt(unsafe { libc::connect(fd.as_raw_fd(), (&raw const addr).cast(), len) })?;
    let tv = libc::timeval {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_usec: timeout.subsec_micros() as libc::suseconds_t,
    };
    // SAFETY: `fd` is open; the option value is a timeval of the size given, read by the kernel.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const tv).cast(),
            mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    })?;
    set_int_opt(fd.as_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF, rcvbuf)?;
    Ok(fd)
}

/// recv(2) of one datagram with MSG_TRUNC: returns the datagram's real length, which is more
/// than `buf.len()` when it was cut off. Blocks up to the socket's receive timeout (then
/// `WouldBlock`); EINTR is returned as `Interrupted` for the caller to retry.
pub fn recv_datagram(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `fd` is open; `buf` is writable for its length.
    cvt_size(unsafe {
        libc::recv(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_TRUNC,
        )
    })
}

/// A close-on-exec pipe: (read end, write end).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds: [c_int; 2] = [-1; 2];
    // SAFETY: `fds` is a writable array of two c_ints, as pipe2 requires.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    Ok((owned(fds[0]), owned(fds[1])))
}

fn nofile() -> io::Result<libc::rlimit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a writable rlimit.
    cvt(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) })?;
    Ok(lim)
}

/// The open-files soft limit.
pub fn open_files_limit() -> io::Result<u64> {
    Ok(nofile()?.rlim_cur)
}

/// Raises the open-files soft limit to the hard one; returns the new soft limit.
pub fn raise_open_files_limit() -> io::Result<u64> {
    let mut lim = nofile()?;
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: `lim` is a valid rlimit, only read.
        cvt(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) })?;
    }
    Ok(lim.rlim_cur)
}

/// prctl(PR_SET_PDEATHSIG, SIGKILL): the kernel kills this process when its parent (thread)
/// dies.
pub fn kill_me_with_parent() -> io::Result<()> {
    // SAFETY: integer arguments only.
    cvt(unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        )
    })?;
    Ok(())
}

/// Blocks SIGTERM and SIGINT in the calling thread (call it while the process has one thread,
/// so every later thread inherits the mask) and returns a non-blocking signalfd that becomes
/// readable when one is pending.
pub fn stop_signals_fd() -> io::Result<OwnedFd> {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it before any other use.
    let mut set: libc::sigset_t = unsafe { mem::zeroed() };
    // SAFETY: `set` is a valid, writable sigset_t; the signal numbers are valid.
    unsafe {
        cvt(libc::sigemptyset(&mut set))?;
        cvt(libc::sigaddset(&mut set, libc::SIGTERM))?;
        cvt(libc::sigaddset(&mut set, libc::SIGINT))?;
    }
    // SAFETY: `set` is initialised; the old mask is not wanted (null).
    let r = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    // SAFETY: -1 asks for a new descriptor; `set` is initialised and only read.
    let fd = cvt(unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) })?;
    Ok(owned(fd))
}

/// Becomes user `uid` with group `gid` and no supplementary groups, for good: changing the uid
/// away from root clears every capability, and no-new-privs keeps a set-user-ID program from
/// getting them back. The parent-death signal, which the kernel clears when credentials
/// change, is set again.
pub fn drop_privileges(uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: plain syscalls with valid arguments; setgroups(0, NULL) empties the list.
    unsafe {
        cvt(libc::setgroups(0, std::ptr::null()))?;
        cvt(libc::setresgid(gid, gid, gid))?;
        cvt(libc::setresuid(uid, uid, uid))?;
        cvt(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))?;
    }
    kill_me_with_parent()
}

/// Undoes [`stop_signals_fd`]'s blocking of SIGTERM and SIGINT, before exec'ing a program
/// that must be able to receive them.
pub fn unblock_stop_signals() -> io::Result<()> {
    // SAFETY: as in stop_signals_fd.
    let mut set: libc::sigset_t = unsafe { mem::zeroed() };
    // SAFETY: `set` is a valid, writable sigset_t; the signal numbers are valid.
    unsafe {
        cvt(libc::sigemptyset(&mut set))?;
        cvt(libc::sigaddset(&mut set, libc::SIGTERM))?;
        cvt(libc::sigaddset(&mut set, libc::SIGINT))?;
    }
    // SAFETY: `set` is initialised; the old mask is not wanted (null).
    let r = unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    Ok(())
}

/// Moves the calling thread into the network namespace at `path` (`lab::netlink::netns_dir()`/NAME).
/// Sockets created afterwards belong to it.
pub fn enter_netns(path: &Path) -> io::Result<()> {
    let ns = File::open(path)?;
    // SAFETY: `ns` is an open namespace file; setns only reads the descriptor.
    cvt(unsafe { libc::setns(ns.as_fd().as_raw_fd(), libc::CLONE_NEWNET) })?;
    Ok(())
}

/// Proportional set size of this process in bytes: the `Pss:` line of /proc/self/smaps_rollup.
pub fn pss_bytes() -> io::Result<u64> {
    let text = std::fs::read_to_string("/proc/self/smaps_rollup")?;
    text.lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "no Pss in /proc/self/smaps_rollup",
            )
        })
}

/// Resident memory of this process in bytes: resident pages of /proc/self/statm times the page
/// size.
pub fn rss_bytes() -> io::Result<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm")?;
    let pages: u64 = statm
        .split_ascii_whitespace()
        .nth(1)
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unreadable /proc/self/statm"))?;
    // SAFETY: sysconf only reads a constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let page = u64::try_from(page).map_err(|_| io::Error::last_os_error())?;
    Ok(pages * page)
}

/// The raw number of a descriptor, as the loops index their tables with it.
pub fn raw(fd: &impl AsFd) -> RawFd {
    fd.as_fd().as_raw_fd()
}
