//! The client handler of the [`event_loop`](super::event_loop): opens `connections` long-lived
//! TCP connections from `source` to `target`, holds them and pings each periodically.
//!
//! Per connection the loop keeps 8 bytes: a table indexed by descriptor number of
//! `(Option<OwnedFd>, u32)`, the `u32` being the connect's start (ms since the loop began) or
//! [`ESTABLISHED`]. There are no per-connection buffers: reads go to one shared scratch buffer
//! and every ping writes the same static `b"ping"`. While a connect is in progress it also has
//! an 8-byte entry in the timeout queue.
//!
//! - **Local ports.** Each socket is bound to `source:port` before connect, the port taken from
//!   the `local_ports` ranges in order ([`PortWalker`]): first the ports of the NAT path dealt
//!   to this process, then the rest of its share of the container's range
//!   (`share::client_walks`); EADDRINUSE on bind takes the next port.
//!   When the ports are used up, every remaining connection fails with `NoLocalPort`: the limit
//!   the kernel imposes with the container's ip_local_port_range. (The kernel's own choice in
//!   `connect()` crawls once most of the range is taken; ours does not.) No SO_REUSEADDR or
//!   SO_REUSEPORT: that would lift the very limit the lab shows.
//! - **Timeouts.** The connect timeout is the same for every connect, so connects expire in the
//!   order they started: a FIFO of `(fd, start)` ([`Timeouts`]). An entry whose descriptor no
//!   longer holds a connect with that start is stale and dropped. A descriptor number reused
//!   within the same millisecond has the same deadline, so matching on it is still exact.
//! - **Rate.** [`Pacer`]: one start every `1/rate` s on a schedule, with at most 10 ms of
//!   unused schedule kept as credit (so a pause, e.g. at the `in_flight` cap, does not turn into
//!   a burst). At most [`START_BATCH`] connects start per loop turn, so completions are not
//!   starved.
//! - **Pings.** [`PingSweep`]: a cursor walks the descriptor table once per ping interval at a
//!   steady pace, pinging each established connection it passes: every connection is pinged
//!   once per interval and the pings are spread evenly over it, not burst. The first round
//!   begins one interval after the client starts, so a connection first talks about an
//!   interval after it was established, as a keepalive would, and a ramp shorter than the
//!   interval carries no pings: pings during the ramp made each new connection's cost grow with
//!   the connections already there (a profile of the million: the conntrack and TCP lookups
//!   per connection doubled by its end, docs/bench.md).
//! - **Pause.** Once the parent pauses the load (before `lab run` reads the NAT tables), no
//!   connect starts and no ping is sent; connects in flight still complete or time out.
//! - **Failures** are classified by [`cause_of`]. An established connection the peer closes
//!   (read returns end of file) counts as `Reset`, as does ECONNRESET/EPIPE, and `established`
//!   goes down by one.

use std::collections::VecDeque;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::ops::Range;
use std::os::fd::{AsFd as _, BorrowedFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use super::event_loop::Handler;
use super::protocol::{FailureCause, Failures, Progress};
use super::sys;

/// What a client does (the fields of `AgentSpec::Client` but the namespace).
#[derive(Debug, Clone)]
pub struct Config {
    pub source: Ipv4Addr,
    pub target: SocketAddrV4,
    pub connections: u32,
    /// Inclusive ranges, walked in order, each once (see `share::client_walks`). Port 0 is
    /// skipped.
    pub local_ports: Vec<(u16, u16)>,
    /// Zero: no pings.
    pub ping_interval: Duration,
    pub connect_timeout: Duration,
    /// New connects per second at most; None: unlimited.
    pub rate: Option<u32>,
    /// Connects in progress at once at most.
    pub in_flight: u32,
}

/// The cause of a failed connect, ping or established connection, from its errno.
pub fn cause_of(errno: i32) -> FailureCause {
    match errno {
        libc::EADDRNOTAVAIL | libc::EADDRINUSE => FailureCause::NoLocalPort,
        libc::ETIMEDOUT => FailureCause::TimedOut,
        libc::ECONNREFUSED => FailureCause::Refused,
        libc::ECONNRESET | libc::EPIPE => FailureCause::Reset,
        libc::ENETUNREACH | libc::EHOSTUNREACH => FailureCause::Unreachable,
        _ => FailureCause::Other,
    }
}

fn os_errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

/// Walks a list of inclusive ranges of local ports once, in order (port 0 skipped).
#[derive(Debug)]
pub(crate) struct PortWalker {
    ranges: Vec<(u16, u16)>,
    /// The range walked now, and the next port in it.
    at: usize,
    next: u32,
}

impl PortWalker {
    pub fn new(ranges: Vec<(u16, u16)>) -> Self {
        let next = ranges.first().map_or(0, |r| u32::from(r.0));
        PortWalker {
            ranges,
            at: 0,
            next,
        }
    }

    pub fn next_port(&mut self) -> Option<u16> {
        loop {
            let &(_, last) = self.ranges.get(self.at)?;
            if self.next <= u32::from(last) {
                let port = self.next;
                self.next += 1;
                if port == 0 {
                    continue;
                }
                return u16::try_from(port).ok();
            }
            self.at += 1;
            self.next = self.ranges.get(self.at).map_or(0, |r| u32::from(r.0));
        }
    }
}

/// A connect's start in the descriptor table when it is established instead.
pub(crate) const ESTABLISHED: u32 = u32::MAX;

/// Connects in progress in start order; all share one timeout.
#[derive(Debug)]
pub(crate) struct Timeouts {
    queue: VecDeque<(RawFd, u32)>,
    timeout_ms: u64,
}

impl Timeouts {
    pub fn new(timeout: Duration) -> Self {
        Timeouts {
            queue: VecDeque::new(),
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        }
    }

    pub fn push(&mut self, fd: RawFd, start_ms: u32) {
        self.queue.push_back((fd, start_ms));
    }

    /// The deadline of the oldest entry (it may be stale: waking for it is harmless).
    pub fn next_deadline_ms(&self) -> Option<u64> {
        let &(_, start) = self.queue.front()?;
        Some(u64::from(start).saturating_add(self.timeout_ms))
    }

    /// The oldest entry if its deadline has passed.
    pub fn pop_due(&mut self, now_ms: u64) -> Option<(RawFd, u32)> {
        if self.next_deadline_ms()? <= now_ms {
            self.queue.pop_front()
        } else {
            None
        }
    }
}

/// Spaces connect starts `1/rate` s apart, keeping at most [`Pacer::CREDIT_NS`] of unused
/// schedule.
#[derive(Debug)]
pub(crate) struct Pacer {
    interval_ns: u64,
    next_ns: u64,
}

impl Pacer {
    pub const CREDIT_NS: u64 = 10_000_000;

    /// `rate` starts per second (rounded down to whole nanoseconds between starts, never over
    /// the rate); None or zero interval: unlimited.
    pub fn new(rate: Option<u32>) -> Self {
        let interval_ns = match rate {
            Some(r) if r > 0 => 1_000_000_000u64.div_ceil(u64::from(r)),
            _ => 0,
        };
        Pacer {
            interval_ns,
            next_ns: 0,
        }
    }

    pub fn ready(&self, now_ns: u64) -> bool {
        now_ns >= self.next_ns
    }

    /// Records a start at `now_ns` (which must be [`ready`](Self::ready)).
    pub fn take(&mut self, now_ns: u64) {
        if self.interval_ns > 0 {
            self.next_ns =
                self.next_ns.max(now_ns.saturating_sub(Self::CREDIT_NS)) + self.interval_ns;
        }
    }

    pub fn wait(&self, now_ns: u64) -> Duration {
        Duration::from_nanos(self.next_ns.saturating_sub(now_ns))
    }
}

/// Walks a table of `len` slots once per `interval_ms` at an even pace, the first round one
/// interval after it was made.
#[derive(Debug)]
pub(crate) struct PingSweep {
    interval_ms: u64,
    start_ms: u64,
    cursor: usize,
}

impl PingSweep {
    pub fn new(interval: Duration, now_ms: u64) -> Self {
        let interval_ms = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
        PingSweep {
            interval_ms,
            start_ms: now_ms.saturating_add(interval_ms),
            cursor: 0,
        }
    }

    /// The next slots due at `now_ms`, at most `max` of them; call until it returns an empty
    /// range (or a caller's budget is spent: the rest stay due).
    pub fn due(&mut self, now_ms: u64, len: usize, max: usize) -> Range<usize> {
        if self.interval_ms == 0 || len == 0 || max == 0 {
            return 0..0;
        }
        let mut elapsed = now_ms.saturating_sub(self.start_ms);
        if elapsed >= self.interval_ms && self.cursor >= len {
            // A new round; if far behind, start it now rather than catching up in a burst.
            self.start_ms += self.interval_ms;
            if now_ms.saturating_sub(self.start_ms) >= self.interval_ms {
                self.start_ms = now_ms;
            }
            self.cursor = 0;
            elapsed = now_ms.saturating_sub(self.start_ms);
        }
        let target = if elapsed >= self.interval_ms {
            len
        } else {
            let t = u128::from(elapsed) * len as u128 / u128::from(self.interval_ms);
            usize::try_from(t).unwrap_or(len).min(len)
        };
        let from = self.cursor.min(len);
        let to = target.max(from).min(from.saturating_add(max));
        self.cursor = to;
        from..to
    }

    /// Whether slots are due at `now_ms` that have not been handed out.
    pub fn behind(&self, now_ms: u64, len: usize) -> bool {
        self.next_due_ms(len).is_some_and(|due| due <= now_ms)
    }

    /// When the next slot is due (ms, same clock as `due`).
    pub fn next_due_ms(&self, len: usize) -> Option<u64> {
        if self.interval_ms == 0 || len == 0 {
            return None;
        }
        // This round's next slot, or the next round's first.
        let (start, cursor) = if self.cursor >= len {
            (self.start_ms.saturating_add(self.interval_ms), 0)
        } else {
            (self.start_ms, self.cursor)
        };
        // The least t with floor(t * len / interval) >= cursor + 1.
        let t = (cursor as u128 + 1) * u128::from(self.interval_ms);
        let t = t.div_ceil(len as u128);
        Some(start.saturating_add(u64::try_from(t).unwrap_or(u64::MAX)))
    }
}

/// At most this many connects start per loop turn.
pub(crate) const START_BATCH: u32 = 512;

/// At most this many pings are sent per loop turn. A client that fell behind its ping
/// schedule (a loaded machine: each send carries the segment through the NAT to the server
/// in the sender's own time) catches up a batch a turn, so completions, timeouts and its
/// Progress still come between batches. Unbounded, a client starved of CPU spent minutes in
/// one catch-up, its in-flight connects neither completed nor timed out and its counts
/// frozen, and `lab run` took the silence for a settled ramp (two million with pings during
/// the ramp: stuck at 1,999,728, docs/bench.md).
pub(crate) const PING_BATCH: usize = 512;

const PING: &[u8] = b"ping";

/// One slot of the descriptor table.
struct Conn {
    fd: Option<OwnedFd>,
    /// Start of the connect in ms since the loop began, or [`ESTABLISHED`].
    since_ms: u32,
}

// The per-connection state the module doc promises.
const _: () = assert!(std::mem::size_of::<Conn>() == 8);

/// The client as a [`Handler`].
pub struct Client<'c> {
    cfg: &'c Config,
    /// Indexed by descriptor number.
    conns: Vec<Conn>,
    ports: PortWalker,
    timeouts: Timeouts,
    pacer: Pacer,
    sweep: PingSweep,
    begin: Instant,
    established: u64,
    in_flight: u64,
    attempted: u64,
    failed: Failures,
    detail: Option<String>,
    bytes_written: u64,
    scratch: Vec<u8>,
    changed: bool,
    /// The parent paused the load: no more connects or pings.
    paused: bool,
}

impl<'c> Client<'c> {
    /// Checks `cfg` and that its source is an address of the current namespace; connecting
    /// starts in the loop.
    pub fn new(cfg: &'c Config) -> Result<Self> {
        if cfg.in_flight == 0 {
            bail!("in_flight must be at least 1");
        }
        if cfg.rate == Some(0) {
            bail!("rate must be at least 1 connect per second");
        }
        sys::check_local_address(cfg.source)
            .with_context(|| format!("source {}: not an address of this namespace", cfg.source))?;
        Ok(Client {
            cfg,
            conns: Vec::with_capacity(usize::try_from(cfg.connections).unwrap_or(0) + 64),
            ports: PortWalker::new(cfg.local_ports.clone()),
            timeouts: Timeouts::new(cfg.connect_timeout),
            pacer: Pacer::new(cfg.rate),
            sweep: PingSweep::new(cfg.ping_interval, 0),
            begin: Instant::now(),
            established: 0,
            in_flight: 0,
            attempted: 0,
            failed: Failures::default(),
            detail: None,
            bytes_written: 0,
            scratch: vec![0; 4096],
            changed: false,
            paused: false,
        })
    }

    fn now_ms(&self, now: Instant) -> u64 {
        u64::try_from(now.duration_since(self.begin).as_millis()).unwrap_or(u64::MAX)
    }

    fn now_ns(&self, now: Instant) -> u64 {
        u64::try_from(now.duration_since(self.begin).as_nanos()).unwrap_or(u64::MAX)
    }

    fn fail(&mut self, cause: FailureCause, what: &str, err: Option<&io::Error>) {
        self.failed.add(cause, 1);
        if cause == FailureCause::Other && self.detail.is_none() {
            self.detail = Some(match err {
                Some(e) => format!("{what}: {e}"),
                None => what.to_string(),
            });
        }
        self.changed = true;
    }

    fn wants_to_start(&self) -> bool {
        !self.paused
            && self.attempted < u64::from(self.cfg.connections)
            && self.in_flight < u64::from(self.cfg.in_flight)
    }

    /// Starts connects while allowed; true when it stopped only because of [`START_BATCH`].
    fn start_connects(&mut self, epoll: &sys::Epoll, now: Instant) -> Result<bool> {
        let now_ns = self.now_ns(now);
        let since = u32::try_from(self.now_ms(now))
            .unwrap_or(ESTABLISHED - 1)
            .min(ESTABLISHED - 1);
        for _ in 0..START_BATCH {
            if !self.wants_to_start() || !self.pacer.ready(now_ns) {
                return Ok(false);
            }
            self.pacer.take(now_ns);
            self.start_one(epoll, since)?;
        }
        Ok(self.wants_to_start())
    }

    fn start_one(&mut self, epoll: &sys::Epoll, since_ms: u32) -> Result<()> {
        self.changed = true;
        let sock = match sys::tcp_socket() {
            Ok(s) => s,
            Err(e) => {
                self.attempted += 1;
                self.fail(cause_of(os_errno(&e)), "socket", Some(&e));
                return Ok(());
            }
        };
        loop {
            let Some(port) = self.ports.next_port() else {
                // The slice is used up: so is every remaining connection.
                let rest = u64::from(self.cfg.connections) - self.attempted;
                self.failed.add(FailureCause::NoLocalPort, rest);
                self.attempted += rest;
                return Ok(());
            };
            match sys::bind(sock.as_fd(), SocketAddrV4::new(self.cfg.source, port)) {
                Ok(()) => break,
                Err(e) if os_errno(&e) == libc::EADDRINUSE => continue,
                Err(e) if os_errno(&e) == libc::EADDRNOTAVAIL => {
                    bail!(
                        "bind {}: not an address of this namespace ({e})",
                        self.cfg.source
                    )
                }
                Err(e) => {
                    self.attempted += 1;
                    self.fail(cause_of(os_errno(&e)), "bind", Some(&e));
                    return Ok(());
                }
            }
        }
        self.attempted += 1;
        let state = match sys::connect(sock.as_fd(), self.cfg.target) {
            Ok(sys::Connect::InProgress) => since_ms,
            Ok(sys::Connect::Done) => ESTABLISHED,
            Err(e) => {
                self.fail(cause_of(os_errno(&e)), "connect", Some(&e));
                return Ok(());
            }
        };
        let fd = sys::raw(&sock);
        let Ok(slot) = usize::try_from(fd) else {
            bail!("negative descriptor {fd}");
        };
        let token = u64::try_from(fd).unwrap_or(0);
        if let Err(e) = epoll.add(
            sock.as_fd(),
            sys::IN | sys::OUT | sys::RDHUP | sys::ET,
            token,
        ) {
            self.fail(FailureCause::Other, "epoll_ctl", Some(&e));
            return Ok(());
        }
        if slot >= self.conns.len() {
            self.conns.resize_with(slot + 1, || Conn {
                fd: None,
                since_ms: 0,
            });
        }
        self.conns[slot] = Conn {
            fd: Some(sock),
            since_ms: state,
        };
        if state == ESTABLISHED {
            self.established += 1;
        } else {
            self.in_flight += 1;
            self.timeouts.push(fd, state);
        }
        Ok(())
    }

    /// Abandons connects older than the timeout.
    fn expire(&mut self, now_ms: u64) {
        while let Some((fd, since)) = self.timeouts.pop_due(now_ms) {
            let Some(conn) = usize::try_from(fd).ok().and_then(|i| self.conns.get_mut(i)) else {
                continue;
            };
            if conn.fd.is_some() && conn.since_ms == since {
                conn.fd = None;
                self.in_flight -= 1;
                self.fail(FailureCause::TimedOut, "connect timeout", None);
            }
        }
    }

    fn on_event(&mut self, slot: usize, flags: u32) {
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        let Some(sock) = &conn.fd else {
            return;
        };
        if conn.since_ms != ESTABLISHED {
            if flags & (sys::OUT | sys::ERR | sys::HUP) == 0 {
                return;
            }
            if flags & (sys::ERR | sys::HUP) != 0 {
                let (errno, err) = match sys::take_error(sock.as_fd()) {
                    Ok(errno) => (errno, io::Error::from_raw_os_error(errno)),
                    Err(e) => (os_errno(&e), e),
                };
                if errno != 0 || flags & sys::OUT == 0 {
                    conn.fd = None;
                    self.in_flight -= 1;
                    if errno != 0 {
                        self.fail(cause_of(errno), "connect", Some(&err));
                    } else {
                        self.fail(FailureCause::Reset, "connect: hang-up", None);
                    }
                    return;
                }
            }
            conn.since_ms = ESTABLISHED;
            self.in_flight -= 1;
            self.established += 1;
            self.changed = true;
            if flags & (sys::IN | sys::RDHUP | sys::HUP | sys::ERR) == 0 {
                return;
            }
        }
        self.drain(slot, flags);
    }

    /// Reads and discards what arrived on an established connection; end of file (the peer
    /// closed) or an error ends it.
    fn drain(&mut self, slot: usize, flags: u32) {
        let hangup = flags & (sys::RDHUP | sys::HUP | sys::ERR) != 0;
        loop {
            let Some(sock) = self.conns.get(slot).and_then(|c| c.fd.as_ref()) else {
                return;
            };
            match sys::read(sock.as_fd(), &mut self.scratch) {
                Ok(0) => return self.lose(slot, FailureCause::Reset, "closed by the peer", None),
                // A short read drained the socket; more data would raise a new edge.
                Ok(n) if n < self.scratch.len() && !hangup => return,
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return self.lose(slot, cause_of(os_errno(&e)), "read", Some(&e)),
            }
        }
    }

    fn lose(&mut self, slot: usize, cause: FailureCause, what: &str, err: Option<&io::Error>) {
        if let Some(conn) = self.conns.get_mut(slot) {
            conn.fd = None;
        }
        self.established -= 1;
        self.fail(cause, what, err);
    }

    /// Sends the pings due, at most [`PING_BATCH`]; true when some are still due.
    fn ping(&mut self, now_ms: u64) -> bool {
        if self.paused {
            return false;
        }
        let mut budget = PING_BATCH;
        loop {
            let due = self.sweep.due(now_ms, self.conns.len(), budget);
            if due.is_empty() {
                return budget == 0 && self.sweep.behind(now_ms, self.conns.len());
            }
            budget -= due.len();
            for slot in due {
                let conn = &self.conns[slot];
                let Some(sock) = &conn.fd else { continue };
                if conn.since_ms != ESTABLISHED {
                    continue;
                }
                match sys::send(sock.as_fd(), PING) {
                    Ok(n) => self.bytes_written += n as u64,
                    // The send buffer is full (the server is not reading): skip this ping.
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => self.lose(slot, cause_of(os_errno(&e)), "ping", Some(&e)),
                }
            }
        }
    }

    /// How long the loop may sleep.
    /// `batch_full`: a batch of connects or pings stopped at its bound with more to do.
    fn wake_in(&self, now: Instant, batch_full: bool) -> Option<Duration> {
        let now_ms = self.now_ms(now);
        let mut wake: Option<Duration> = None;
        let mut at = |d: Duration| wake = Some(wake.map_or(d, |w| w.min(d)));
        if batch_full {
            at(Duration::ZERO);
        } else if self.wants_to_start() {
            at(self.pacer.wait(self.now_ns(now)));
        }
        if let Some(deadline) = self.timeouts.next_deadline_ms() {
            at(Duration::from_millis(deadline.saturating_sub(now_ms)));
        }
        if self.established > 0
            && !self.paused
            && let Some(due) = self.sweep.next_due_ms(self.conns.len())
        {
            at(Duration::from_millis(due.saturating_sub(now_ms)));
        }
        wake
    }
}

impl Handler for Client<'_> {
    fn open(&mut self, _epoll: &sys::Epoll) -> Result<()> {
        Ok(())
    }

    fn on_turn(&mut self, epoll: &sys::Epoll, now: Instant) -> Result<Option<Duration>> {
        let now_ms = self.now_ms(now);
        self.expire(now_ms);
        let connects_left = self.start_connects(epoll, now)?;
        let pings_left = self.ping(now_ms);
        Ok(self.wake_in(now, connects_left || pings_left))
    }

    fn on_ready(&mut self, token: u64, flags: u32) {
        if let Ok(slot) = usize::try_from(token) {
            self.on_event(slot, flags);
        }
    }

    fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    fn progress(&self) -> Progress {
        Progress {
            established: self.established,
            in_flight: self.in_flight,
            attempted: self.attempted,
            failed: self.failed.clone(),
            by_local_address: Vec::new(),
            detail: self.detail.clone(),
            queued: 0,
            rss_bytes: 0,
            pss_bytes: 0,
        }
    }

    fn done(&self) -> bool {
        self.attempted == u64::from(self.cfg.connections) && self.in_flight == 0
    }

    fn outstanding(&self) -> bool {
        !self.done()
    }

    fn pause(&mut self, _epoll: &sys::Epoll) {
        self.paused = true;
    }

    fn connections(&self) -> impl Iterator<Item = BorrowedFd<'_>> {
        self.conns
            .iter()
            .filter_map(|c| c.fd.as_ref())
            .map(|fd| fd.as_fd())
    }

    fn bytes(&self) -> (u64, u64) {
        (0, self.bytes_written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: usize = usize::MAX;

    #[test]
    fn port_walker_walks_each_range_once_in_order() {
        let walk = |r: Vec<(u16, u16)>| {
            let mut w = PortWalker::new(r);
            std::iter::from_fn(move || w.next_port()).collect::<Vec<_>>()
        };
        assert_eq!(walk(vec![(1024, 1026)]), [1024, 1025, 1026]);
        assert_eq!(
            walk(vec![(2000, 2001), (1024, 1025), (65535, 65535)]),
            [2000, 2001, 1024, 1025, 65535],
            "in the order given, no wrap past 65535"
        );
        assert_eq!(walk(vec![(10, 9)]), Vec::<u16>::new(), "empty range");
        assert_eq!(walk(vec![]), Vec::<u16>::new());
        assert_eq!(walk(vec![(0, 1)]), [1], "port 0 is skipped");
        let mut w = PortWalker::new(vec![(5, 5)]);
        assert_eq!(w.next_port(), Some(5));
        assert_eq!(w.next_port(), None);
        assert_eq!(w.next_port(), None, "stays used up");
    }

    #[test]
    fn timeouts_pop_in_start_order_when_due() {
        let mut t = Timeouts::new(Duration::from_millis(100));
        assert_eq!(t.next_deadline_ms(), None);
        t.push(7, 10);
        t.push(8, 20);
        t.push(7, 30); // descriptor 7 reused by a later connect
        assert_eq!(t.next_deadline_ms(), Some(110));
        assert_eq!(t.pop_due(109), None);
        assert_eq!(t.pop_due(110), Some((7, 10)));
        assert_eq!(t.pop_due(110), None);
        assert_eq!(t.next_deadline_ms(), Some(120));
        assert_eq!(t.pop_due(500), Some((8, 20)));
        assert_eq!(t.pop_due(500), Some((7, 30)));
        assert_eq!(t.pop_due(500), None);
    }

    #[test]
    fn pacer_unlimited_never_waits() {
        let mut p = Pacer::new(None);
        for _ in 0..1000 {
            assert!(p.ready(0));
            p.take(0);
        }
        assert_eq!(p.wait(0), Duration::ZERO);
    }

    #[test]
    fn pacer_keeps_the_rate_and_bounds_bursts() {
        let rate = 1000; // one per ms
        let mut p = Pacer::new(Some(rate));
        // A loop waking every 0.25 ms and starting all it may, for 2 s.
        let mut starts = 0u64;
        let mut t = 0u64;
        while t <= 2_000_000_000 {
            while p.ready(t) {
                p.take(t);
                starts += 1;
                // Never ahead of the schedule: at most one start per ms so far, plus the first.
                assert!(starts <= t / 1_000_000 + 1, "{starts} starts at {t} ns");
            }
            t += 250_000;
        }
        assert!((1999..=2001).contains(&starts), "{starts}");

        // After a long pause only the credit (10 ms = 10 starts) can go at once.
        let pause = 5_000_000_000;
        let mut burst = 0;
        while p.ready(pause) {
            p.take(pause);
            burst += 1;
        }
        assert!((10..=11).contains(&burst), "{burst}");
        assert_eq!(p.wait(pause), Duration::from_millis(1));
    }

    #[test]
    fn pacer_rounds_towards_a_lower_rate() {
        let mut p = Pacer::new(Some(3)); // 333,333,334 ns apart
        p.take(0);
        assert!(!p.ready(333_333_333));
        assert!(p.ready(333_333_334));
    }

    #[test]
    fn ping_sweep_pings_each_slot_once_per_interval_spread_evenly() {
        let mut s = PingSweep::new(Duration::from_millis(1000), 0);
        let len = 10;
        let mut pinged_at: Vec<Vec<u64>> = vec![Vec::new(); len];
        for now in 0..=3000u64 {
            loop {
                let r = s.due(now, len, ALL);
                if r.is_empty() {
                    break;
                }
                for i in r {
                    pinged_at[i].push(now);
                }
            }
        }
        for (i, at) in pinged_at.iter().enumerate() {
            // Rounds start at 1000 and 2000 (none in the first interval); slot i is due
            // 100 * (i + 1) ms into a round.
            let want: Vec<u64> = (1..3)
                .map(|round| round * 1000 + 100 * (i as u64 + 1))
                .collect();
            assert_eq!(at, &want, "slot {i}");
        }
    }

    #[test]
    fn ping_sweep_next_due_matches_due() {
        // Made at -1000: its first round starts at 0.
        let mut s = PingSweep::new(Duration::from_millis(1000), 0);
        s.start_ms = 0;
        assert_eq!(s.next_due_ms(0), None);
        assert_eq!(s.next_due_ms(4), Some(250));
        assert!(s.due(0, 4, ALL).is_empty());
        assert!(s.due(249, 4, ALL).is_empty());
        assert_eq!(s.due(250, 4, ALL), 0..1);
        assert!(s.due(250, 4, ALL).is_empty());
        assert_eq!(s.next_due_ms(4), Some(500));
        assert_eq!(s.due(999, 4, ALL), 1..3);
        assert_eq!(s.next_due_ms(4), Some(1000));
        assert_eq!(s.due(1000, 4, ALL), 3..4, "the end of the round");
        assert!(
            s.due(1000, 4, ALL).is_empty(),
            "the next round has just begun"
        );
        assert_eq!(s.next_due_ms(4), Some(1250));
        // Far behind: the round is finished, then the next one starts now rather than bursting
        // through the missed rounds.
        assert_eq!(s.due(10_000, 4, ALL), 0..4);
        assert!(s.due(10_000, 4, ALL).is_empty());
        assert_eq!(s.next_due_ms(4), Some(10_250));
        // The table grew: the pace follows.
        assert_eq!(s.due(10_500, 8, ALL), 0..4);
    }

    #[test]
    fn ping_sweep_hands_out_at_most_max_and_keeps_the_rest_due() {
        let mut s = PingSweep::new(Duration::from_millis(1000), 0);
        // A whole round late: 10 slots due, handed out 4, 4, 2.
        assert_eq!(s.due(2000, 10, 4), 0..4);
        assert!(s.behind(2000, 10));
        assert_eq!(s.due(2000, 10, 4), 4..8);
        assert_eq!(s.due(2000, 10, 4), 8..10);
        assert!(
            !s.behind(2000, 10),
            "caught up: the next round starts at 2000 + 1000"
        );
        assert!(s.due(2000, 10, 4).is_empty());
        assert!(
            s.due(2000, 10, 0).is_empty(),
            "no budget, nothing handed out"
        );
    }

    #[test]
    fn ping_sweep_zero_interval_is_off() {
        let mut s = PingSweep::new(Duration::ZERO, 0);
        assert_eq!(s.due(5, 10, ALL), 0..0);
        assert_eq!(s.next_due_ms(10), None);
    }

    #[test]
    fn errno_classification() {
        use FailureCause::*;
        let cases = [
            (libc::EADDRNOTAVAIL, NoLocalPort),
            (libc::EADDRINUSE, NoLocalPort),
            (libc::ETIMEDOUT, TimedOut),
            (libc::ECONNREFUSED, Refused),
            (libc::ECONNRESET, Reset),
            (libc::EPIPE, Reset),
            (libc::ENETUNREACH, Unreachable),
            (libc::EHOSTUNREACH, Unreachable),
            (libc::EPERM, Other),
            (libc::EMFILE, Other),
            (0, Other),
        ];
        for (errno, cause) in cases {
            assert_eq!(cause_of(errno), cause, "errno {errno}");
        }
    }
}
