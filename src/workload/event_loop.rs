//! The workload seat: the one event loop every agent runs, with the workload as a [`Handler`].
//!
//! The loop owns what is the same for every kind of agent: the epoll instance, the stop
//! descriptors (signal and parent), the wake-ups (the handler's next deadline and the Progress
//! cadence), the Ready/Progress/Done events, the reset-on-close of every connection at stop and
//! the final [`Summary`]. A handler owns its connections (the descriptor table, 8 bytes per
//! connection in the built-in ones) and what it does with them: [`server`](super::server)
//! accepts and reads, [`client`](super::client) connects, paces and pings.
//!
//! One turn of the loop: [`Handler::on_turn`] (time-driven work; it says when it wants the next
//! turn), a Done once [`Handler::done`], a Progress if one is due, then one `epoll_wait` until
//! the earliest wake-up, each ready descriptor going to [`Handler::on_ready`] unless it is a
//! stop descriptor. A pause on stdin goes to [`Handler::pause`] and is answered at once with
//! [`Event::Paused`]. Single-threaded, in the calling thread's current namespace.

use std::io::{self, Write};
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use super::protocol::{Event, PAUSE, Progress};
use super::sys;

/// What ends an agent's loop.
#[derive(Debug, Clone, Copy)]
pub struct Stop<'a> {
    /// Readable = stop now, after writing a final Progress: the signalfd of SIGTERM/SIGINT in
    /// `lab agent`; in tests the read end of a pipe whose write end is dropped or written to.
    pub signal: BorrowedFd<'a>,
    /// End of file = the parent died: stop at once, writing nothing more. Data read from it is
    /// discarded. None when there is nothing to watch (tests; stdin a regular file).
    pub stdin: Option<BorrowedFd<'a>>,
}

/// Why a loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// `Stop::signal` became readable; the final Progress was written.
    Signal,
    /// `Stop::stdin` reached end of file.
    ParentGone,
}

/// What a loop returns when it stops.
#[derive(Debug, Clone)]
pub struct Summary {
    pub stopped: Stopped,
    /// The counters at the end (also written as the final Progress on [`Stopped::Signal`]).
    pub last: Progress,
    /// Bytes read from connections.
    pub bytes_read: u64,
    /// Bytes written to connections.
    pub bytes_written: u64,
}

/// Epoll tokens at or above this one are the loop's own (the stop descriptors); a handler's
/// tokens must be below it. The built-in handlers use descriptor numbers (< 2^31).
pub const RESERVED_TOKENS: u64 = u64::MAX - 1;
const TOKEN_SIGNAL: u64 = u64::MAX;
const TOKEN_STDIN: u64 = u64::MAX - 1;

/// A workload run by [`run`]: the built-in server and client, and later the user's own program.
pub trait Handler {
    /// Sets up before Ready (e.g. listens), registering its descriptors in `epoll` with tokens
    /// below [`RESERVED_TOKENS`]. An error here is the agent's error, and no event is written.
    fn open(&mut self, epoll: &sys::Epoll) -> Result<()>;

    /// The time-driven work of a turn (accepting, starting connects, expiring them, pinging),
    /// at the top of every turn. Returns how long the loop may sleep at most for the handler's
    /// sake (None: until a descriptor is ready; the loop wakes at least once a second anyway).
    fn on_turn(&mut self, epoll: &sys::Epoll, now: Instant) -> Result<Option<Duration>>;

    /// A descriptor registered with `token` is ready with epoll `flags`.
    fn on_ready(&mut self, token: u64, flags: u32);

    /// Whether something a Progress shows changed since the last call (and forget it).
    fn take_changed(&mut self) -> bool;

    /// The counters now, without memory (the loop fills in `rss_bytes` and `pss_bytes`).
    fn progress(&self) -> Progress;

    /// The workload has finished its part (a client: every connection established or failed):
    /// the loop writes Done once, the first turn this is true.
    fn done(&self) -> bool {
        false
    }

    /// Every connection the handler holds, to be set to reset on close at stop.
    fn connections(&self) -> impl Iterator<Item = BorrowedFd<'_>>;

    /// (bytes read, bytes written) over the connections, for the [`Summary`].
    fn bytes(&self) -> (u64, u64);

    /// The handler waits on the kernel for something its counts will show (a client's connects
    /// in flight): the loop then writes a Progress at least every [`HEARTBEAT`] even when
    /// nothing changed, so that counts standing still can be told from an agent gone silent.
    fn outstanding(&self) -> bool {
        false
    }

    /// The parent asked for the load to stop ([`PAUSE`](super::protocol::PAUSE)): open no more
    /// connections and send nothing more; hold and read what is open. What it has counted
    /// once this returns is the agent's answer ([`Event::Paused`]).
    fn pause(&mut self, _epoll: &sys::Epoll) {}
}

/// While its handler has work [`outstanding`](Handler::outstanding), a loop writes a Progress
/// at least this often: `lab run` counts a client not heard from for longer as not quiet.
pub const HEARTBEAT: Duration = Duration::from_secs(1);

/// Runs `handler` in the current namespace until `stop`. Writes Ready once the handler is open,
/// then Progress (at most every 100 ms, when something changed), Done once the handler is done,
/// and a final Progress when stopped by `stop.signal`.
pub fn run<H: Handler>(mut handler: H, out: &mut impl Write, stop: Stop<'_>) -> Result<Summary> {
    let epoll = sys::Epoll::new().context("epoll_create1")?;
    watch_stop(&epoll, &stop).context("watch the stop descriptors")?;
    handler.open(&epoll)?;
    let mut reporter = Reporter::new(out);
    reporter
        .write(Instant::now(), &ready()?)
        .context("write Ready")?;
    let mut events = sys::Events::with_capacity(1024);
    let mut done = false;
    loop {
        let now = Instant::now();
        let wake = handler.on_turn(&epoll, now)?;
        if handler.take_changed() {
            reporter.changed();
        }
        reporter.heartbeat(handler.outstanding());
        if !done && handler.done() {
            done = true;
            reporter
                .write(now, &Event::Done(report(&handler)))
                .context("write Done")?;
        }
        reporter
            .tick(now, || report(&handler))
            .context("write Progress")?;

        let wake = [reporter.due_in(now), wake].into_iter().flatten().min();
        epoll
            .wait(&mut events, timeout_ms(wake))
            .context("epoll_wait")?;
        for (token, flags) in events.iter() {
            if token >= RESERVED_TOKENS {
                let mut buf = [0u8; 512];
                match stop_event(token, &stop, &mut buf) {
                    StopEvent::Stop(stopped) => return finish(&handler, &mut reporter, stopped),
                    StopEvent::Pause => {
                        handler.pause(&epoll);
                        reporter
                            .write(Instant::now(), &Event::Paused(report(&handler)))
                            .context("write Paused")?;
                    }
                    StopEvent::Nothing => {}
                }
            } else {
                handler.on_ready(token, flags);
            }
        }
    }
}

/// The end of a loop: the last counters, every connection set to reset, the final Progress on
/// a signal.
fn finish<H: Handler, W: Write>(
    handler: &H,
    reporter: &mut Reporter<'_, W>,
    stopped: Stopped,
) -> Result<Summary> {
    let last = report(handler);
    abort_on_close(handler.connections());
    if stopped == Stopped::Signal {
        reporter
            .write(Instant::now(), &Event::Progress(last.clone()))
            .context("write the final Progress")?;
    }
    let (bytes_read, bytes_written) = handler.bytes();
    Ok(Summary {
        stopped,
        last,
        bytes_read,
        bytes_written,
    })
}

/// The handler's Progress with the process's memory.
fn report(handler: &impl Handler) -> Progress {
    let mut p = handler.progress();
    (p.rss_bytes, p.pss_bytes) = memory();
    p
}

/// The Ready event of this process.
fn ready() -> io::Result<Event> {
    Ok(Event::Ready {
        pid: std::process::id(),
        max_open_files: sys::open_files_limit()?,
    })
}

/// Writes one event as one line, in one write, and flushes.
pub fn emit(out: &mut impl Write, event: &Event) -> io::Result<()> {
    let mut line = serde_json::to_vec(event).map_err(io::Error::other)?;
    line.push(b'\n');
    out.write_all(&line)?;
    out.flush()
}

/// Watches the stop descriptors in `epoll` (level-triggered). A stdin that epoll cannot watch (a
/// regular file: EPERM) is left unwatched.
fn watch_stop(epoll: &sys::Epoll, stop: &Stop<'_>) -> io::Result<()> {
    epoll.add(stop.signal, sys::IN, TOKEN_SIGNAL)?;
    if let Some(stdin) = stop.stdin {
        match epoll.add(stdin, sys::IN, TOKEN_STDIN) {
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {}
            other => other?,
        }
    }
    Ok(())
}

/// Makes every connection reset when it is closed, as the loop returns: a stopping lab frees
/// millions of sockets in seconds instead of exchanging FINs through the NAT for each and
/// leaving the clients' ends in TIME_WAIT. Data the peer has received is still read by it
/// (a reset only discards what is unsent, and pings are tiny and sent at once).
fn abort_on_close<'a>(fds: impl Iterator<Item = BorrowedFd<'a>>) {
    for fd in fds {
        // Best effort: a socket the option cannot be set on just closes normally.
        let _ = sys::set_abortive_close(fd);
    }
}

/// What a ready stop token asks of the loop.
enum StopEvent {
    Stop(Stopped),
    Pause,
    Nothing,
}

/// Handles a ready stop token.
fn stop_event(token: u64, stop: &Stop<'_>, scratch: &mut [u8]) -> StopEvent {
    match (token, stop.stdin) {
        (TOKEN_SIGNAL, _) => StopEvent::Stop(Stopped::Signal),
        (TOKEN_STDIN, Some(stdin)) => match sys::read(stdin, scratch) {
            Ok(0) => StopEvent::Stop(Stopped::ParentGone),
            Ok(n) if scratch[..n].contains(&PAUSE) => StopEvent::Pause,
            Ok(_) => StopEvent::Nothing,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => StopEvent::Nothing,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => StopEvent::Nothing,
            Err(_) => StopEvent::Stop(Stopped::ParentGone),
        },
        _ => StopEvent::Nothing,
    }
}

/// Throttles Progress: at most one every [`Reporter::EVERY`], and only when something changed
/// or, with the heartbeat on, when the last is [`HEARTBEAT`] old.
struct Reporter<'w, W: Write> {
    out: &'w mut W,
    last: Option<Instant>,
    changed: bool,
    heartbeat: bool,
}

impl<'w, W: Write> Reporter<'w, W> {
    const EVERY: Duration = Duration::from_millis(100);

    fn new(out: &'w mut W) -> Self {
        Reporter {
            out,
            last: None,
            changed: false,
            heartbeat: false,
        }
    }

    /// Something the next Progress shows has changed.
    fn changed(&mut self) {
        self.changed = true;
    }

    /// Writes a Progress every [`HEARTBEAT`] even if nothing changed, while `on`.
    fn heartbeat(&mut self, on: bool) {
        self.heartbeat = on;
    }

    /// How long until a Progress is due; None when none will be.
    fn due_in(&self, now: Instant) -> Option<Duration> {
        let every = if self.changed {
            Self::EVERY
        } else if self.heartbeat {
            HEARTBEAT
        } else {
            return None;
        };
        Some(match self.last {
            Some(last) => (last + every).saturating_duration_since(now),
            None => Duration::ZERO,
        })
    }

    /// Writes a Progress made by `make` if one is due.
    fn tick(&mut self, now: Instant, make: impl FnOnce() -> Progress) -> io::Result<()> {
        if self.due_in(now) == Some(Duration::ZERO) {
            let p = make();
            self.write(now, &Event::Progress(p))?;
        }
        Ok(())
    }

    /// Writes `event` now (a Done or the final Progress also counts as the latest Progress).
    fn write(&mut self, now: Instant, event: &Event) -> io::Result<()> {
        emit(self.out, event)?;
        if matches!(event, Event::Progress(_) | Event::Done(_)) {
            self.last = Some(now);
            self.changed = false;
        }
        Ok(())
    }
}

/// How often the memory a Progress reports is read again.
const MEMORY_EVERY: Duration = Duration::from_secs(1);

/// Resident and proportional memory (RSS, PSS) for a Progress, read at most once per
/// [`MEMORY_EVERY`] per loop; 0 where /proc cannot be read. Reading PSS walks the process's page
/// tables (smaps_rollup): at every 100 ms report of 150 agents it took about 2% of both cores
/// during a million-connection ramp (a `perf` profile), for figures that change slowly.
fn memory() -> (u64, u64) {
    thread_local! {
        static LAST: std::cell::Cell<Option<(Instant, u64, u64)>> = const { std::cell::Cell::new(None) };
    }
    let now = Instant::now();
    LAST.with(|last| match last.get() {
        Some((at, rss, pss)) if now.duration_since(at) < MEMORY_EVERY => (rss, pss),
        _ => {
            let (rss, pss) = (sys::rss_bytes().unwrap_or(0), sys::pss_bytes().unwrap_or(0));
            last.set(Some((now, rss, pss)));
            (rss, pss)
        }
    })
}

/// Milliseconds for epoll_wait from a duration, rounded up (so the loop does not wake early and
/// spin), capped at one second.
fn timeout_ms(d: Option<Duration>) -> i32 {
    match d {
        None => 1000,
        Some(d) => {
            let ms = d.as_nanos().div_ceil(1_000_000);
            i32::try_from(ms.min(1000)).unwrap_or(1000)
        }
    }
}
