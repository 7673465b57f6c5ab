//! The server handler of the [`event_loop`](super::event_loop): accepts and holds connections on
//! `0.0.0.0:port`, reading and discarding everything that arrives.
//!
//! - The listener has SO_REUSEPORT (several server processes share the port; the kernel spreads
//!   new connections over them) and SO_REUSEADDR. It is edge-triggered: each wake-up accepts
//!   until EAGAIN, at most [`ACCEPT_BATCH`] per loop turn (the rest on the next turn, at once).
//! - Per connection the loop keeps 8 bytes: a table indexed by descriptor number of
//!   `(Option<OwnedFd>, u32)`, the `u32` indexing the local address the connection arrived on
//!   (getsockname), counted for the article's "localaddr" proof. No per-connection buffers: one
//!   shared scratch buffer.
//! - Every byte is read (unread data would count against the namespace's global tcp_mem):
//!   connections are edge-triggered and read until EAGAIN or a short read. End of file or an
//!   error closes the connection and decrements its address's count.
//! - Out of descriptors (EMFILE/ENFILE) or memory on accept: the pending connections stay in the
//!   backlog and accepting is retried every 100 ms or when a connection closes; the first such
//!   error is the Progress's `detail`.
//! - Each Progress says how many connections wait in the listen queue (`queued`, TCP_INFO of
//!   the listener), and a pause accepts all of them before the server answers: a server
//!   behind its clients is counted once it has caught up, not while it still lags.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsFd as _, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use super::event_loop::{Handler, RESERVED_TOKENS};
use super::protocol::{Failures, Progress};
use super::sys;

/// What a server does (the fields of `AgentSpec::Server` but the namespace).
#[derive(Debug, Clone)]
pub struct Config {
    pub port: u16,
    /// Listen backlog; the namespace's somaxconn caps it.
    pub backlog: u32,
    /// Connections expected at most (sizes the table; more are accepted if possible).
    pub expected: u64,
}

/// At most this many accepts per loop turn.
pub(crate) const ACCEPT_BATCH: usize = 1024;

/// Below the loop's tokens, above every descriptor number.
const TOKEN_LISTENER: u64 = RESERVED_TOKENS - 1;
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// One slot of the descriptor table.
struct Conn {
    fd: Option<OwnedFd>,
    /// Index into `Server::addrs`.
    addr: u32,
}

// The per-connection state the module doc promises.
const _: () = assert!(std::mem::size_of::<Conn>() == 8);

/// The server as a [`Handler`].
pub struct Server {
    listener: OwnedFd,
    /// Indexed by descriptor number.
    conns: Vec<Conn>,
    /// Local addresses seen, with their open connections.
    addrs: Vec<(Ipv4Addr, u64)>,
    open: u64,
    bytes_read: u64,
    /// The last accept turn stopped at ACCEPT_BATCH: accept again at once.
    accept_more: bool,
    /// Accepting failed for lack of descriptors or memory: retry then.
    accept_retry: Option<Instant>,
    detail: Option<String>,
    scratch: Vec<u8>,
    changed: bool,
}

impl Server {
    /// Listens on 0.0.0.0:`cfg.port` (SO_REUSEADDR, SO_REUSEPORT); accepting starts in the loop.
    pub fn new(cfg: &Config) -> Result<Self> {
        let addr = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, cfg.port);
        let listener = sys::tcp_socket().context("socket")?;
        sys::set_reuse_addr_and_port(listener.as_fd()).context("SO_REUSEADDR/SO_REUSEPORT")?;
        sys::bind(listener.as_fd(), addr).with_context(|| format!("bind {addr}"))?;
        sys::listen(listener.as_fd(), cfg.backlog).with_context(|| format!("listen on {addr}"))?;
        Ok(Server {
            listener,
            conns: Vec::with_capacity(
                usize::try_from(cfg.expected)
                    .unwrap_or(0)
                    .saturating_add(64),
            ),
            addrs: Vec::new(),
            open: 0,
            bytes_read: 0,
            // Connections may have queued between listen and the first wait.
            accept_more: true,
            accept_retry: None,
            detail: None,
            scratch: vec![0; 4096],
            changed: false,
        })
    }

    fn accept_batch(&mut self, epoll: &sys::Epoll, now: Instant) -> Result<()> {
        self.accept_more = false;
        self.accept_retry = None;
        for _ in 0..ACCEPT_BATCH {
            match sys::accept(self.listener.as_fd()) {
                Ok(sock) => self.adopt(epoll, sock),
                Err(e) => match e.raw_os_error().unwrap_or(0) {
                    libc::EAGAIN => return Ok(()),
                    // A connection that failed while queued, or a signal: go on.
                    libc::EINTR
                    | libc::ECONNABORTED
                    | libc::EPROTO
                    | libc::EPERM
                    | libc::ENETDOWN
                    | libc::ENOPROTOOPT
                    | libc::EHOSTDOWN
                    | libc::ENONET
                    | libc::EHOSTUNREACH
                    | libc::EOPNOTSUPP
                    | libc::ENETUNREACH => continue,
                    libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM => {
                        if self.detail.is_none() {
                            self.detail = Some(format!("accept: {e}"));
                            self.changed = true;
                        }
                        self.accept_retry = Some(now + ACCEPT_RETRY);
                        return Ok(());
                    }
                    _ => return Err(e).context("accept"),
                },
            }
        }
        self.accept_more = true;
        Ok(())
    }

    fn adopt(&mut self, epoll: &sys::Epoll, sock: OwnedFd) {
        // A connection reset before we look at it is simply dropped.
        let Ok(local) = sys::local_addr(sock.as_fd()) else {
            return;
        };
        let fd = sys::raw(&sock);
        let (Ok(slot), Ok(token)) = (usize::try_from(fd), u64::try_from(fd)) else {
            return;
        };
        if let Err(e) = epoll.add(sock.as_fd(), sys::IN | sys::RDHUP | sys::ET, token) {
            if self.detail.is_none() {
                self.detail = Some(format!("epoll_ctl: {e}"));
                self.changed = true;
            }
            return;
        }
        let ip = *local.ip();
        let addr = match self.addrs.iter().position(|&(a, _)| a == ip) {
            Some(i) => i,
            None => {
                self.addrs.push((ip, 0));
                self.addrs.len() - 1
            }
        };
        if slot >= self.conns.len() {
            self.conns
                .resize_with(slot + 1, || Conn { fd: None, addr: 0 });
        }
        self.conns[slot] = Conn {
            fd: Some(sock),
            addr: u32::try_from(addr).unwrap_or(u32::MAX),
        };
        self.addrs[addr].1 += 1;
        self.open += 1;
        self.changed = true;
    }

    /// Reads and discards everything; end of file or an error closes the connection.
    fn drain(&mut self, slot: usize, flags: u32) {
        let hangup = flags & (sys::RDHUP | sys::HUP | sys::ERR) != 0;
        loop {
            let Some(sock) = self.conns.get(slot).and_then(|c| c.fd.as_ref()) else {
                return;
            };
            match sys::read(sock.as_fd(), &mut self.scratch) {
                Ok(0) => return self.close(slot),
                Ok(n) => {
                    self.bytes_read += n as u64;
                    // A short read drained the socket; more data would raise a new edge.
                    if n < self.scratch.len() && !hangup {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.close(slot),
            }
        }
    }

    fn close(&mut self, slot: usize) {
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        if conn.fd.take().is_none() {
            return;
        }
        if let Some((_, n)) = usize::try_from(conn.addr)
            .ok()
            .and_then(|i| self.addrs.get_mut(i))
        {
            *n -= 1;
        }
        self.open -= 1;
        self.changed = true;
        if self.accept_retry.is_some() {
            // A descriptor is free again.
            self.accept_more = true;
        }
    }

    fn wake_in(&self, now: Instant) -> Option<Duration> {
        if self.accept_more {
            return Some(Duration::ZERO);
        }
        self.accept_retry
            .map(|at| at.saturating_duration_since(now))
    }
}

impl Handler for Server {
    fn open(&mut self, epoll: &sys::Epoll) -> Result<()> {
        epoll
            .add(self.listener.as_fd(), sys::IN | sys::ET, TOKEN_LISTENER)
            .context("epoll_ctl")?;
        Ok(())
    }

    fn on_turn(&mut self, epoll: &sys::Epoll, now: Instant) -> Result<Option<Duration>> {
        if self.accept_more || self.accept_retry.is_some_and(|at| at <= now) {
            self.accept_batch(epoll, now)?;
        }
        Ok(self.wake_in(now))
    }

    fn on_ready(&mut self, token: u64, flags: u32) {
        if token == TOKEN_LISTENER {
            // Accepted at the top of the next turn.
            self.accept_more = true;
        } else if let Ok(slot) = usize::try_from(token) {
            self.drain(slot, flags);
        }
    }

    fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// Accepts every connection the listen queue holds now, past the per-turn batch: the
    /// answer to the pause is then what the kernel established, unless descriptors or memory
    /// ran out (the rest stays `queued`).
    fn pause(&mut self, epoll: &sys::Epoll) {
        let now = Instant::now();
        loop {
            if let Err(e) = self.accept_batch(epoll, now) {
                if self.detail.is_none() {
                    self.detail = Some(format!("{e:#}"));
                }
                return;
            }
            if !self.accept_more {
                return;
            }
        }
    }

    fn progress(&self) -> Progress {
        let mut by_local_address: Vec<(Ipv4Addr, u64)> =
            self.addrs.iter().copied().filter(|&(_, n)| n > 0).collect();
        by_local_address.sort();
        Progress {
            established: self.open,
            in_flight: 0,
            attempted: 0,
            failed: Failures::default(),
            by_local_address,
            detail: self.detail.clone(),
            // A getsockopt per Progress (at most ten a second); unknown counts as none.
            queued: sys::listen_queue(self.listener.as_fd()).map_or(0, u64::from),
            rss_bytes: 0,
            pss_bytes: 0,
        }
    }

    fn connections(&self) -> impl Iterator<Item = BorrowedFd<'_>> {
        self.conns
            .iter()
            .filter_map(|c| c.fd.as_ref())
            .map(|fd| fd.as_fd())
    }

    fn bytes(&self) -> (u64, u64) {
        (self.bytes_read, 0)
    }
}
