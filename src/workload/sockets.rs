//! The kernel's own count of a namespace's TCP sockets, for workloads whose programs cannot be
//! trusted to count: one blocking sock_diag dump (`NETLINK_SOCK_DIAG`, `SOCK_DIAG_BY_FAMILY`,
//! `inet_diag_req_v2` for IPv4 TCP) in the calling thread's namespace, aggregated while it is
//! read into listeners, per-destination counts (the client's view) and per-local-address counts
//! (the server's view). It owns the request's and the answer's bytes (both fixed-size, encoded
//! and decoded here by hand) and the read loop; the socket calls are `workload::sys`'s.
//!
//! Only the states asked for are dumped: the kernel filters by `idiag_states` before it writes a
//! message, so a namespace's TIME_WAIT sockets (never asked) cost nothing, and listeners are
//! only walked when LISTEN is asked. Nothing is kept per socket: a dump of a million sockets
//! costs a few hash-map entries per distinct address, not a million values.
//!
//! IPv4 clients of a dual-stack (`[::]`) listener are AF_INET6 sockets with v4-mapped
//! addresses; [`Filter::v4_mapped`] (on by default) dumps AF_INET6 too and counts those as the
//! IPv4 addresses they stand for (a dual-stack listener as `0.0.0.0:port`).
//!
//! The dump is not a snapshot: the kernel walks its hash tables a bucket at a time between
//! datagrams, so a socket that appears, disappears or changes state while the dump runs may be
//! missed or counted twice. Counts of a steady population are exact.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4};
use std::os::fd::AsFd as _;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};

use crate::lab::netlink::run_in_netns;
use crate::lab::plan::NetnsName;
use crate::workload::sys;

// linux/netlink.h, linux/sock_diag.h, linux/inet_diag.h, net/tcp_states.h. Spelled out here:
// the libc crate does not export all of them on every target.
const NETLINK_SOCK_DIAG: libc::c_int = 4;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_HDRLEN: usize = 16;
const NLMSG_NOOP: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_OVERRUN: u16 = 4;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_DUMP_INTR: u16 = 16;
/// `struct inet_diag_req_v2`: family, protocol, ext, pad, states, `inet_diag_sockid` (48).
const REQ_LEN: usize = 56;
/// `struct inet_diag_msg`: family, state, timer, retrans, `inet_diag_sockid` (48), expires,
/// rqueue, wqueue, uid, inode.
const MSG_LEN: usize = 72;
/// `INET_DIAG_SKV6ONLY`: a u8 attribute of every AF_INET6 socket.
const INET_DIAG_SKV6ONLY: u16 = 11;

/// Every `recv` waits at most this long; the kernel answers a dump datagram in microseconds.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Headroom only: a dump produces what the reader consumes.
const SOCKET_RCVBUF: libc::c_int = 1 << 20;
/// A dump datagram is at most 32 KiB (the kernel caps it by the reader's buffer, which it
/// remembers); twice that, and truncation is still checked.
const READ_BUF: usize = 64 << 10;

/// TCP states as the kernel numbers them (`net/tcp_states.h`).
mod state {
    pub const ESTABLISHED: u8 = 1;
    pub const SYN_SENT: u8 = 2;
    pub const SYN_RECV: u8 = 3;
    pub const FIN_WAIT1: u8 = 4;
    pub const FIN_WAIT2: u8 = 5;
    pub const TIME_WAIT: u8 = 6;
    pub const CLOSE: u8 = 7;
    pub const CLOSE_WAIT: u8 = 8;
    pub const LAST_ACK: u8 = 9;
    pub const LISTEN: u8 = 10;
    pub const CLOSING: u8 = 11;
}

/// A set of TCP states: the `idiag_states` bitmask (bit N = state N).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct States(u32);

impl States {
    pub const LISTEN: States = States::of(state::LISTEN);
    pub const ESTABLISHED: States = States::of(state::ESTABLISHED);
    pub const SYN_SENT: States = States::of(state::SYN_SENT);
    /// Also asks for the request sockets of half-open connections (TCP_NEW_SYN_RECV), which
    /// the kernel adds itself and reports as SYN_RECV.
    pub const SYN_RECV: States = States::of(state::SYN_RECV);
    pub const FIN_WAIT: States =
        States(States::of(state::FIN_WAIT1).0 | States::of(state::FIN_WAIT2).0);
    pub const CLOSE_WAIT: States = States::of(state::CLOSE_WAIT);
    /// LAST_ACK and CLOSING: both ends closed, the last FIN not yet acknowledged.
    pub const CLOSING: States =
        States(States::of(state::LAST_ACK).0 | States::of(state::CLOSING).0);
    /// Every state [`StateCounts`] counts (no TIME_WAIT, no CLOSE), and LISTEN.
    pub const COUNTED: States = States(
        States::LISTEN.0
            | States::ESTABLISHED.0
            | States::SYN_SENT.0
            | States::SYN_RECV.0
            | States::FIN_WAIT.0
            | States::CLOSE_WAIT.0
            | States::CLOSING.0,
    );

    const fn of(s: u8) -> States {
        States(1 << s)
    }

    pub const fn union(self, other: States) -> States {
        States(self.0 | other.0)
    }

    pub const fn without(self, other: States) -> States {
        States(self.0 & !other.0)
    }

    pub const fn contains(self, other: States) -> bool {
        self.0 & other.0 == other.0
    }

    /// The bitmask as `idiag_states` takes it.
    pub const fn bits(self) -> u32 {
        self.0
    }
}

/// How many sockets of one address are in each counted state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateCounts {
    pub established: u64,
    pub syn_sent: u64,
    /// Half-open server side: request sockets and SYN_RECV sockets.
    pub syn_recv: u64,
    /// FIN_WAIT1 and FIN_WAIT2: this end closed first.
    pub fin_wait: u64,
    /// The peer closed, this end has not.
    pub close_wait: u64,
    /// LAST_ACK and CLOSING.
    pub closing: u64,
}

impl StateCounts {
    /// Counts one socket in `state`; false for a state not counted here.
    fn add(&mut self, s: u8) -> bool {
        let slot = match s {
            state::ESTABLISHED => &mut self.established,
            state::SYN_SENT => &mut self.syn_sent,
            state::SYN_RECV => &mut self.syn_recv,
            state::FIN_WAIT1 | state::FIN_WAIT2 => &mut self.fin_wait,
            state::CLOSE_WAIT => &mut self.close_wait,
            state::LAST_ACK | state::CLOSING => &mut self.closing,
            _ => return false,
        };
        *slot += 1;
        true
    }

    /// Every socket counted, in any state.
    pub fn total(&self) -> u64 {
        self.established
            + self.syn_sent
            + self.syn_recv
            + self.fin_wait
            + self.close_wait
            + self.closing
    }
}

/// What one count asks the kernel for and what it aggregates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Filter {
    /// The states dumped (the kernel filters). LISTEN fills [`TcpCounts::listening`].
    pub states: States,
    /// Fill [`TcpCounts::by_remote`] (the client's view).
    pub by_remote: bool,
    /// Fill [`TcpCounts::by_local`] (the server's view).
    pub by_local: bool,
    /// Also dump AF_INET6 and count v4-mapped sockets as IPv4 (dual-stack listeners).
    pub v4_mapped: bool,
}

impl Filter {
    /// Everything [`count_tcp`] counts.
    pub const ALL: Filter = Filter {
        states: States::COUNTED,
        by_remote: true,
        by_local: true,
        v4_mapped: true,
    };
    /// A client namespace: connections per destination, no listeners.
    pub const CLIENT: Filter = Filter {
        states: States::COUNTED.without(States::LISTEN),
        by_remote: true,
        by_local: false,
        v4_mapped: true,
    };
    /// A server namespace: listeners and connections per local address.
    pub const SERVER: Filter = Filter {
        states: States::COUNTED,
        by_remote: false,
        by_local: true,
        v4_mapped: true,
    };
}

/// What a dump cost: for benchmarks and diagnostics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DumpStats {
    /// Socket messages read (all of them, counted or not).
    pub sockets: u64,
    /// Datagrams read.
    pub datagrams: u64,
    /// Bytes read.
    pub bytes: u64,
}

/// The TCP sockets of one namespace, counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TcpCounts {
    /// LISTEN sockets' local addresses (one entry per socket: SO_REUSEPORT listeners repeat).
    pub listening: Vec<SocketAddrV4>,
    /// Per listening port, connections the kernel established that wait in the listeners'
    /// accept queues (a listener's `idiag_rqueue`): counted in `by_local` as established, but
    /// not (yet) accepted by the program.
    pub queued: HashMap<u16, u64>,
    /// The client's view: non-listening sockets per remote (destination) address.
    pub by_remote: HashMap<SocketAddrV4, StateCounts>,
    /// The server's view: non-listening sockets per local address.
    pub by_local: HashMap<SocketAddrV4, StateCounts>,
    pub dump: DumpStats,
}

/// Counts the IPv4 TCP sockets of the calling thread's namespace in every state
/// [`StateCounts`] holds, and the listeners ([`Filter::ALL`]).
pub fn count_tcp() -> Result<TcpCounts> {
    count_tcp_with(Filter::ALL)
}

/// Counts what `filter` asks for in the calling thread's namespace.
pub fn count_tcp_with(filter: Filter) -> Result<TcpCounts> {
    let mut counts = TcpCounts::default();
    dump(libc::AF_INET as u8, filter, &mut counts)?;
    if filter.v4_mapped {
        dump(libc::AF_INET6 as u8, filter, &mut counts)?;
    }
    Ok(counts)
}

/// Counts in the named namespace (entering it on the calling thread and back).
pub fn count_tcp_in(netns: &NetnsName, filter: Filter) -> Result<TcpCounts> {
    run_in_netns(netns, || count_tcp_with(filter))
        .and_then(|r| r)
        .with_context(|| format!("count the TCP sockets of network namespace {netns}"))
}

fn family_name(family: u8) -> &'static str {
    if family == libc::AF_INET6 as u8 {
        "IPv6"
    } else {
        "IPv4"
    }
}

/// One dump of `family`'s TCP sockets in `filter.states`, added to `counts`.
fn dump(family: u8, filter: Filter, counts: &mut TcpCounts) -> Result<()> {
    let what = family_name(family);
    let fd = sys::netlink_socket(NETLINK_SOCK_DIAG, TIMEOUT, SOCKET_RCVBUF)
        .context("open a sock_diag netlink socket")?;
    let seq = 1;
    let req = request(family, filter.states, seq);
    let sent = loop {
        match sys::send(fd.as_fd(), &req) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => break r,
        }
    }
    .with_context(|| format!("send the sock_diag dump request for {what} TCP sockets"))?;
    if sent != req.len() {
        bail!("the kernel took {sent} of {} request bytes", req.len());
    }
    let mut buf = vec![0u8; READ_BUF];
    loop {
        let n = match sys::recv_datagram(fd.as_fd(), &mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => bail!(
                "the kernel did not answer the sock_diag dump of {what} TCP sockets within {} s",
                TIMEOUT.as_secs()
            ),
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("read the sock_diag dump of {what} TCP sockets"));
            }
        };
        if n > buf.len() {
            bail!(
                "a {n} byte sock_diag datagram did not fit the {} byte buffer",
                buf.len()
            );
        }
        counts.dump.datagrams += 1;
        counts.dump.bytes += n as u64;
        let done = take(&buf[..n], seq, family, filter, counts)
            .with_context(|| format!("read the sock_diag dump of {what} TCP sockets"))?;
        if done {
            return Ok(());
        }
    }
}

/// `nlmsghdr` + `inet_diag_req_v2` asking for every TCP socket of `family` in `states`, no
/// extensions (the fixed part of each answer is all that is counted).
fn request(family: u8, states: States, seq: u32) -> [u8; NLMSG_HDRLEN + REQ_LEN] {
    let mut b = [0u8; NLMSG_HDRLEN + REQ_LEN];
    let len = b.len() as u32;
    b[0..4].copy_from_slice(&len.to_ne_bytes());
    b[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    b[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    b[8..12].copy_from_slice(&seq.to_ne_bytes());
    // pid 0: the kernel. Then inet_diag_req_v2: family, protocol, ext 0, pad, states; the
    // socket id stays zero (no address or port to match: a dump of all).
    b[16] = family;
    b[17] = libc::IPPROTO_TCP as u8;
    b[20..24].copy_from_slice(&states.bits().to_ne_bytes());
    b
}

fn ne_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn ne_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

/// Walks one datagram's messages into `counts`; true once NLMSG_DONE ends the dump.
fn take(
    datagram: &[u8],
    seq: u32,
    family: u8,
    filter: Filter,
    counts: &mut TcpCounts,
) -> Result<bool> {
    let mut offset = 0;
    while offset < datagram.len() {
        let rest = &datagram[offset..];
        let (len, kind, flags, msg_seq) = (|| {
            Some((
                ne_u32(rest, 0)? as usize,
                ne_u16(rest, 4)?,
                ne_u16(rest, 6)?,
                ne_u32(rest, 8)?,
            ))
        })()
        .ok_or_else(|| anyhow!("a netlink message header is cut off at byte {offset}"))?;
        if len < NLMSG_HDRLEN || len > rest.len() {
            bail!(
                "a netlink message claims {len} bytes with {} left",
                rest.len()
            );
        }
        let payload = &rest[NLMSG_HDRLEN..len];
        offset += len.next_multiple_of(4);
        if msg_seq != seq {
            // Not ours: nothing else is asked on this socket, but a stray message is no answer.
            continue;
        }
        if flags & NLM_F_DUMP_INTR != 0 {
            bail!("the kernel interrupted the dump (NLM_F_DUMP_INTR)");
        }
        match kind {
            SOCK_DIAG_BY_FAMILY => {
                counts.dump.sockets += 1;
                add(payload, family, filter, counts)?;
            }
            NLMSG_DONE => {
                // The dump's own status, an int after the header (negative errno on failure).
                match ne_u32(payload, 0).map(|v| v as i32) {
                    Some(e) if e < 0 => return Err(refused(-e)),
                    _ => return Ok(true),
                }
            }
            NLMSG_ERROR => {
                let errno = ne_u32(payload, 0)
                    .map(|v| -(v as i32))
                    .ok_or_else(|| anyhow!("an NLMSG_ERROR without its errno"))?;
                if errno == 0 {
                    // An ACK: nothing more comes for this request.
                    return Ok(true);
                }
                return Err(refused(errno));
            }
            NLMSG_NOOP => {}
            NLMSG_OVERRUN => bail!("the kernel reported a netlink overrun"),
            other => bail!("an unexpected netlink message of type {other}"),
        }
    }
    Ok(false)
}

fn refused(errno: i32) -> anyhow::Error {
    let err = io::Error::from_raw_os_error(errno);
    if errno == libc::ENOENT {
        anyhow!(err).context("the kernel has no TCP sock_diag (tcp_diag / inet_diag)")
    } else {
        anyhow!(err).context("the kernel refused the sock_diag dump")
    }
}

/// Counts one `inet_diag_msg` (its attributes are only read for AF_INET6's v6-only flag).
fn add(msg: &[u8], family: u8, filter: Filter, counts: &mut TcpCounts) -> Result<()> {
    if msg.len() < MSG_LEN {
        bail!(
            "an inet_diag_msg of {} bytes (expected {MSG_LEN})",
            msg.len()
        );
    }
    if msg[0] != family {
        bail!(
            "an answer of address family {} to a dump of {family}",
            msg[0]
        );
    }
    let st = msg[1];
    let sport = u16::from_be_bytes([msg[4], msg[5]]);
    let dport = u16::from_be_bytes([msg[6], msg[7]]);
    let (local, remote) = if family == libc::AF_INET as u8 {
        (ipv4_at(msg, 8), ipv4_at(msg, 24))
    } else {
        let local = ipv6_at(msg, 8);
        let remote = ipv6_at(msg, 24);
        match (local.to_ipv4_mapped(), remote.to_ipv4_mapped()) {
            (Some(l), Some(r)) => (l, r),
            // A dual-stack listener (`[::]`, not v6-only) takes IPv4 clients.
            _ if st == state::LISTEN && local.is_unspecified() && !v6_only(&msg[MSG_LEN..]) => {
                (Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED)
            }
            // A real IPv6 socket: not counted.
            _ => return Ok(()),
        }
    };
    let local = SocketAddrV4::new(local, sport);
    if st == state::LISTEN {
        counts.listening.push(local);
        // idiag_rqueue, host order: a listener's accept queue length.
        let queue = u32::from_ne_bytes([msg[56], msg[57], msg[58], msg[59]]);
        *counts.queued.entry(sport).or_default() += u64::from(queue);
        return Ok(());
    }
    let remote = SocketAddrV4::new(remote, dport);
    if filter.by_remote {
        counts.by_remote.entry(remote).or_default().add(st);
    }
    if filter.by_local {
        counts.by_local.entry(local).or_default().add(st);
    }
    Ok(())
}

fn ipv4_at(b: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}

fn ipv6_at(b: &[u8], at: usize) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[at..at + 16]);
    Ipv6Addr::from(a)
}

/// Whether the attributes after an AF_INET6 `inet_diag_msg` say IPV6_V6ONLY.
fn v6_only(mut attrs: &[u8]) -> bool {
    while let (Some(len), Some(kind)) = (ne_u16(attrs, 0), ne_u16(attrs, 2)) {
        let len = usize::from(len);
        if len < 4 || len > attrs.len() {
            return false;
        }
        if kind & 0x3fff == INET_DIAG_SKV6ONLY {
            return attrs.get(4).is_some_and(|&v| v != 0);
        }
        attrs = attrs.get(len.next_multiple_of(4)..).unwrap_or(&[]);
    }
    false
}

// The states not counted, named so the set above reads as a choice.
const _: () = assert!(!States::COUNTED.contains(States::of(state::TIME_WAIT)));
const _: () = assert!(!States::COUNTED.contains(States::of(state::CLOSE)));

#[cfg(test)]
mod tests {
    use super::*;

    fn message(st: u8, local: [u8; 4], lport: u16, remote: [u8; 4], rport: u16) -> Vec<u8> {
        let mut m = vec![0u8; NLMSG_HDRLEN + MSG_LEN + 8];
        let len = m.len() as u32;
        m[0..4].copy_from_slice(&len.to_ne_bytes());
        m[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        m[6..8].copy_from_slice(&2u16.to_ne_bytes()); // NLM_F_MULTI
        m[8..12].copy_from_slice(&7u32.to_ne_bytes());
        let p = &mut m[NLMSG_HDRLEN..];
        p[0] = libc::AF_INET as u8;
        p[1] = st;
        p[4..6].copy_from_slice(&lport.to_be_bytes());
        p[6..8].copy_from_slice(&rport.to_be_bytes());
        p[8..12].copy_from_slice(&local);
        p[24..28].copy_from_slice(&remote);
        // INET_DIAG_SHUTDOWN, as the kernel always appends it.
        p[MSG_LEN..MSG_LEN + 2].copy_from_slice(&5u16.to_ne_bytes());
        p[MSG_LEN + 2..MSG_LEN + 4].copy_from_slice(&8u16.to_ne_bytes());
        m
    }

    fn done(seq: u32) -> Vec<u8> {
        let mut m = vec![0u8; NLMSG_HDRLEN + 4];
        m[0..4].copy_from_slice(&20u32.to_ne_bytes());
        m[4..6].copy_from_slice(&NLMSG_DONE.to_ne_bytes());
        m[8..12].copy_from_slice(&seq.to_ne_bytes());
        m
    }

    #[test]
    fn the_request_is_an_inet_diag_req_v2_for_tcp() {
        let r = request(libc::AF_INET as u8, States::ESTABLISHED, 9);
        assert_eq!(r.len(), 72);
        assert_eq!(ne_u32(&r, 0), Some(72));
        assert_eq!(ne_u16(&r, 4), Some(20));
        assert_eq!(ne_u16(&r, 6), Some(0x301));
        assert_eq!(ne_u32(&r, 8), Some(9));
        assert_eq!((r[16], r[17]), (2, 6));
        assert_eq!(ne_u32(&r, 20), Some(1 << 1));
        assert!(r[24..].iter().all(|&b| b == 0));
        assert_eq!(States::FIN_WAIT.bits(), (1 << 4) | (1 << 5));
    }

    #[test]
    fn messages_are_aggregated_until_done() {
        let mut d = message(state::LISTEN, [127, 0, 0, 1], 80, [0; 4], 0);
        d.extend(message(
            state::ESTABLISHED,
            [127, 0, 0, 1],
            80,
            [127, 0, 0, 9],
            4000,
        ));
        d.extend(message(
            state::CLOSE_WAIT,
            [127, 0, 0, 1],
            80,
            [127, 0, 0, 9],
            4001,
        ));
        d.extend(message(
            state::ESTABLISHED,
            [127, 0, 0, 9],
            4000,
            [127, 0, 0, 1],
            80,
        ));
        let mut c = TcpCounts::default();
        let fam = libc::AF_INET as u8;
        assert!(!take(&d, 7, fam, Filter::ALL, &mut c).unwrap());
        // A stray message of another sequence is skipped.
        assert!(!take(&done(6), 7, fam, Filter::ALL, &mut c).unwrap());
        assert!(take(&done(7), 7, fam, Filter::ALL, &mut c).unwrap());
        let server = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 80);
        assert_eq!(c.listening, vec![server]);
        assert_eq!(c.by_local[&server].established, 1);
        assert_eq!(c.by_local[&server].close_wait, 1);
        assert_eq!(c.by_remote[&server].established, 1);
        assert_eq!(c.by_remote[&server].total(), 1);
        assert_eq!(c.dump.sockets, 4);
    }

    #[test]
    fn errors_and_cut_off_messages_fail() {
        let mut err = done(7);
        err[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        err[16..20].copy_from_slice(&(-libc::ENOENT).to_ne_bytes());
        let mut c = TcpCounts::default();
        let fam = libc::AF_INET as u8;
        let e = take(&err, 7, fam, Filter::ALL, &mut c).unwrap_err();
        assert!(format!("{e:#}").contains("tcp_diag"), "{e:#}");
        let m = message(state::ESTABLISHED, [1; 4], 1, [2; 4], 2);
        assert!(take(&m[..50], 7, fam, Filter::ALL, &mut c).is_err());
        let mut intr = done(7);
        intr[6..8].copy_from_slice(&NLM_F_DUMP_INTR.to_ne_bytes());
        assert!(take(&intr, 7, fam, Filter::ALL, &mut c).is_err());
    }
}
