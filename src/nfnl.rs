//! The one netfilter netlink (nfnetlink) transport: a blocking `NETLINK_NETFILTER` socket opened
//! in the calling thread's namespace, one request loop, and one typed method per kernel operation
//! the lab uses. nftables ([`crate::nat::firewall`]), conntrack ([`crate::nat::conntrack`]) and the
//! preflight probes ([`crate::lab::preflight`]) all speak to the kernel through it; what the messages mean
//! (libnftnl's rules, netlink-packet-netfilter's conntrack entries) stays with them.
//!
//! The loop: every request (or every message of a batch) has a sequence number, and the answer
//! to it ends with an ACK (NLMSG_ERROR with errno 0), an error (NLMSG_ERROR with an errno, after
//! which the kernel sends nothing more for the request, nor for the rest of a batch), or, for a
//! dump, NLMSG_DONE after any number of multipart datagrams. Messages for other sequence numbers
//! (leftovers of an earlier request) are skipped. Every `recv` is bounded by the timeout the
//! socket was opened with, so a kernel that never answers cannot hang a lab.
//!
//! The socket belongs to the namespace it was opened in: callers open it inside `Namespace::run` (or
//! `run_in_netns`) of the namespace they mean, and use it from there.

use std::fmt;
use std::io;
use std::ops::Range;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::time::Duration;

// linux/netlink.h and linux/netfilter/nfnetlink.h. Spelled out here because the libc crate does
// not export all of them on every target.
pub const NLMSG_HDRLEN: usize = 16;
const NLMSG_NOOP: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_OVERRUN: u16 = 4;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_DUMP_INTR: u16 = 16;
/// `struct nfgenmsg`: family, version, res_id (big-endian).
const NFGENMSG_LEN: usize = 4;

pub const NFNL_SUBSYS_CTNETLINK: u8 = 1;
pub const NFNL_SUBSYS_NFTABLES: u8 = 10;

/// `NFT_MSG_GETGEN`: the ruleset's generation id. `nft` sends it before every command.
const NFT_MSG_GETGEN: u8 = 16;
/// `IPCTNL_MSG_CT_GET`: conntrack entries (a dump).
const IPCTNL_MSG_CT_GET: u8 = 1;
/// `IPCTNL_MSG_CT_GET_STATS_CPU`: one reply per possible CPU, CPU number in `res_id`.
pub const IPCTNL_MSG_CT_GET_STATS_CPU: u8 = 4;
/// `IPCTNL_MSG_CT_GET_STATS`: one reply with this namespace's entry count and the global limit.
pub const IPCTNL_MSG_CT_GET_STATS: u8 = 5;

/// `NFPROTO_UNSPEC` / `NFPROTO_IPV4` in `nfgenmsg.nfgen_family`.
pub const FAMILY_UNSPEC: u8 = 0;
pub const FAMILY_IPV4: u8 = libc::AF_INET as u8;

/// Receive buffer asked of the kernel. A dump only produces what the reader consumes, so this is
/// headroom rather than a correctness requirement; the kernel caps it at `net.core.rmem_max`.
const SOCKET_RCVBUF: libc::c_int = 1 << 20;

/// Bytes read per `recv`: room for the largest datagram nfnetlink sends (a dump datagram is at
/// most 32 KiB, an nf_tables set element dump a bit over 64 KiB); truncation is still checked.
const READ_BUF: usize = 128 << 10;

/// Why a request failed.
#[derive(Debug)]
pub enum Error {
    /// A socket call failed: `doing` says which.
    Socket { doing: &'static str, err: io::Error },
    /// The kernel answered message `seq` with this (positive) errno.
    Refused { seq: u32, errno: i32 },
    /// Nothing arrived within the timeout while message `seq` was still unanswered.
    Timeout { seq: u32, after: Duration },
    /// A dump was interrupted by a change of what it lists (NLM_F_DUMP_INTR).
    DumpInterrupted,
    /// The kernel's answer does not parse as netlink.
    Malformed(String),
    /// The reader of the replies refused one.
    Reader(anyhow::Error),
}

impl Error {
    /// The errno that best stands for this failure (EPROTO for a malformed answer).
    pub fn errno(&self) -> i32 {
        match self {
            Error::Socket { err, .. } => err.raw_os_error().unwrap_or(libc::EIO),
            Error::Refused { errno, .. } => *errno,
            Error::Timeout { .. } => libc::EAGAIN,
            Error::DumpInterrupted => libc::EINTR,
            Error::Malformed(_) | Error::Reader(_) => libc::EPROTO,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Socket { doing, err } => write!(f, "{doing}: {err}"),
            Error::Refused { errno, .. } => {
                write!(f, "{}", io::Error::from_raw_os_error(*errno))
            }
            Error::Timeout { after, .. } => {
                write!(f, "the kernel did not answer within {} s", after.as_secs())
            }
            Error::DumpInterrupted => write!(f, "the list changed while it was read"),
            Error::Malformed(m) => f.write_str(m),
            Error::Reader(e) => write!(f, "{e:#}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Socket { err, .. } => Some(err),
            _ => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// A blocking netfilter netlink socket in the namespace of the thread that opened it.
pub struct Socket {
    fd: OwnedFd,
    /// `u64`s so the buffer is aligned for `nlmsghdr` (libnftnl reads headers through pointers).
    buf: Vec<u64>,
    seq: u32,
    timeout: Duration,
}

fn last_error(doing: &'static str) -> Error {
    Error::Socket {
        doing,
        err: io::Error::last_os_error(),
    }
}

impl Socket {
    /// Opens the socket in the calling thread's namespace; every `recv` waits at most `timeout`.
    /// A kernel without nfnetlink fails with [`Error::Socket`] holding EPROTONOSUPPORT.
    pub fn open(timeout: Duration) -> Result<Self> {
        // SAFETY: plain socket(2); the fd is owned at once.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_NETFILTER,
            )
        };
        if raw < 0 {
            return Err(last_error("open a netfilter netlink socket"));
        }
        // SAFETY: a fresh fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: an all-zero sockaddr_nl is valid; nl_pid 0 lets the kernel pick the port id,
        // and connecting to pid 0 addresses the kernel.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        let addr_len = size_of::<libc::sockaddr_nl>() as libc::socklen_t;
        // SAFETY: a valid fd and a sockaddr_nl of the size passed.
        if unsafe { libc::bind(fd.as_raw_fd(), (&raw const addr).cast(), addr_len) } != 0 {
            return Err(last_error("bind the netfilter netlink socket"));
        }
        // SAFETY: as above.
        if unsafe { libc::connect(fd.as_raw_fd(), (&raw const addr).cast(), addr_len) } != 0 {
            return Err(last_error(
                "connect the netfilter netlink socket to the kernel",
            ));
        }
        let tv = libc::timeval {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_usec: timeout.subsec_micros() as libc::suseconds_t,
        };
        set_option(&fd, libc::SO_RCVTIMEO, &tv).map_err(|err| Error::Socket {
            doing: "set the netlink receive timeout",
            err,
        })?;
        set_option(&fd, libc::SO_RCVBUF, &SOCKET_RCVBUF).map_err(|err| Error::Socket {
            doing: "set the netlink receive buffer (SO_RCVBUF)",
            err,
        })?;
        Ok(Self {
            fd,
            buf: vec![0; READ_BUF / 8],
            seq: 0,
            timeout,
        })
    }

    // -----------------------------------------------------------------------------------------
    // One typed method per operation
    // -----------------------------------------------------------------------------------------

    /// nf_tables: sends a transaction (the pages of a finalized batch, whose messages carry the
    /// sequence numbers `seqs`, each asking for an ACK) and waits for every ACK. Returns at the
    /// first error: the kernel aborts the transaction and acknowledges nothing after it.
    pub fn nft_batch<'a>(
        &mut self,
        pages: impl IntoIterator<Item = &'a [u8]>,
        seqs: Range<u32>,
    ) -> Result<()> {
        for page in pages {
            self.send(page)?;
        }
        // The batch numbers its own messages; later requests on this socket start after them.
        self.seq = self.seq.max(seqs.end);
        self.answers(seqs, &mut |_| Ok(()))
    }

    /// nf_tables: every object of one kind (`NFT_MSG_GETRULE`, `NFT_MSG_GETCHAIN`, ...) of every
    /// family, each reply message (header included) handed to `each`.
    pub fn nft_dump(
        &mut self,
        get_msg: u8,
        each: &mut dyn FnMut(&[u8]) -> anyhow::Result<()>,
    ) -> Result<()> {
        self.request(
            NFNL_SUBSYS_NFTABLES,
            get_msg,
            FAMILY_UNSPEC,
            NLM_F_DUMP,
            each,
        )
    }

    /// nf_tables, read-only: asks for the ruleset generation and ignores it. Answers whether
    /// nf_tables is there and may be used (EINVAL: not even as a module; EPERM: no privilege).
    pub fn nft_generation(&mut self) -> Result<()> {
        self.request(
            NFNL_SUBSYS_NFTABLES,
            NFT_MSG_GETGEN,
            FAMILY_UNSPEC,
            NLM_F_ACK,
            &mut |_| Ok(()),
        )
    }

    /// ctnetlink: every conntrack entry of `family` (the kernel filters), one message each.
    pub fn ct_dump(
        &mut self,
        family: u8,
        each: &mut dyn FnMut(&[u8]) -> anyhow::Result<()>,
    ) -> Result<()> {
        self.request(
            NFNL_SUBSYS_CTNETLINK,
            IPCTNL_MSG_CT_GET,
            family,
            NLM_F_DUMP,
            each,
        )
    }

    /// ctnetlink: the per-CPU statistics, one message per possible CPU.
    pub fn ct_stats_cpu(
        &mut self,
        each: &mut dyn FnMut(&[u8]) -> anyhow::Result<()>,
    ) -> Result<()> {
        self.request(
            NFNL_SUBSYS_CTNETLINK,
            IPCTNL_MSG_CT_GET_STATS_CPU,
            FAMILY_UNSPEC,
            NLM_F_DUMP,
            each,
        )
    }

    /// ctnetlink: the namespace's entry count and the table's limit, in one message. With a
    /// reader that ignores it, also the read-only probe of ctnetlink.
    pub fn ct_stats(&mut self, each: &mut dyn FnMut(&[u8]) -> anyhow::Result<()>) -> Result<()> {
        self.request(
            NFNL_SUBSYS_CTNETLINK,
            IPCTNL_MSG_CT_GET_STATS,
            FAMILY_UNSPEC,
            NLM_F_ACK,
            each,
        )
    }

    // -----------------------------------------------------------------------------------------
    // The transport
    // -----------------------------------------------------------------------------------------

    /// Sends one bare request (no attributes) and reads its answer to the end.
    fn request(
        &mut self,
        subsys: u8,
        msg: u8,
        family: u8,
        flags: u16,
        each: &mut dyn FnMut(&[u8]) -> anyhow::Result<()>,
    ) -> Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        self.send(&request(subsys, msg, family, flags, seq))?;
        self.answers(seq..seq + 1, each)
    }

    fn send(&self, bytes: &[u8]) -> Result<()> {
        loop {
            // SAFETY: a valid fd and a buffer of the length passed.
            let n =
                unsafe { libc::send(self.fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len(), 0) };
            if n < 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(Error::Socket {
                    doing: "send the request",
                    err,
                });
            }
            if n as usize != bytes.len() {
                return Err(Error::Malformed(format!(
                    "the kernel took {n} of {} request bytes",
                    bytes.len()
                )));
            }
            return Ok(());
        }
    }

    /// The request loop: reads datagrams until every sequence number in `seqs` is answered.
    fn answers(
        &mut self,
        seqs: Range<u32>,
        each: &mut dyn FnMut(&[u8]) -> anyhow::Result<()>,
    ) -> Result<()> {
        let mut pending = Pending::new(seqs);
        while let Some(waiting) = pending.first_open() {
            let n = self.recv(waiting)?;
            // SAFETY: the u64 buffer viewed as the bytes it holds; `n` <= its byte length.
            let bytes = unsafe { std::slice::from_raw_parts(self.buf.as_ptr().cast::<u8>(), n) };
            pending.take(bytes, each)?;
        }
        Ok(())
    }

    fn recv(&mut self, waiting: u32) -> Result<usize> {
        let cap = self.buf.len() * 8;
        loop {
            // MSG_TRUNC makes recv return the datagram's real length, so a cut-off one is seen.
            // SAFETY: a valid fd and a writable buffer of `cap` bytes.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    self.buf.as_mut_ptr().cast(),
                    cap,
                    libc::MSG_TRUNC,
                )
            };
            if n >= 0 {
                let n = n as usize;
                if n > cap {
                    return Err(Error::Malformed(format!(
                        "a {n} byte netlink datagram did not fit the {cap} byte buffer"
                    )));
                }
                return Ok(n);
            }
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => {
                    return Err(Error::Timeout {
                        seq: waiting,
                        after: self.timeout,
                    });
                }
                _ => {
                    return Err(Error::Socket {
                        doing: "receive the answer",
                        err,
                    });
                }
            }
        }
    }
}

fn set_option<T>(fd: &OwnedFd, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: a valid fd and a pointer to a value of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            name,
            (value as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `struct nlmsghdr` + `struct nfgenmsg` (NFNETLINK_V0, res_id 0) for a request of `subsys`.
pub fn request(subsys: u8, msg: u8, family: u8, flags: u16, seq: u32) -> [u8; NLMSG_HDRLEN + 4] {
    let mut b = [0u8; NLMSG_HDRLEN + NFGENMSG_LEN];
    let len = b.len() as u32;
    b[0..4].copy_from_slice(&len.to_ne_bytes());
    b[4..6].copy_from_slice(&(u16::from(subsys) << 8 | u16::from(msg)).to_ne_bytes());
    b[6..8].copy_from_slice(&(NLM_F_REQUEST | flags).to_ne_bytes());
    b[8..12].copy_from_slice(&seq.to_ne_bytes());
    // pid 0 (the kernel), then nfgenmsg: family, version 0, res_id 0.
    b[NLMSG_HDRLEN] = family;
    b
}

fn ne_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn ne_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

/// Which sequence numbers of a request (or batch) are still unanswered.
pub struct Pending {
    seqs: Range<u32>,
    answered: Vec<bool>,
}

impl Pending {
    pub fn new(seqs: Range<u32>) -> Self {
        let n = seqs.len();
        Self {
            seqs,
            answered: vec![false; n],
        }
    }

    /// The first sequence number still waiting for its ACK or DONE.
    pub fn first_open(&self) -> Option<u32> {
        let i = self.answered.iter().position(|a| !a)?;
        Some(self.seqs.start + i as u32)
    }

    fn slot(&mut self, seq: u32) -> Option<&mut bool> {
        let i = seq.checked_sub(self.seqs.start)?;
        self.answered.get_mut(i as usize)
    }

    /// Walks the messages of one datagram: replies to an open sequence number go to `each`, an
    /// ACK or DONE closes it, an error ends the request. Returns whether everything is answered.
    pub fn take(
        &mut self,
        datagram: &[u8],
        each: &mut dyn FnMut(&[u8]) -> anyhow::Result<()>,
    ) -> Result<bool> {
        let mut offset = 0;
        while offset < datagram.len() {
            let rest = &datagram[offset..];
            let header = (|| {
                Some((
                    ne_u32(rest, 0)?,
                    ne_u16(rest, 4)?,
                    ne_u16(rest, 6)?,
                    ne_u32(rest, 8)?,
                ))
            })();
            let Some((len, ty, flags, seq)) = header else {
                return Err(Error::Malformed(format!(
                    "a netlink message of {} bytes at byte {offset} is too short",
                    rest.len()
                )));
            };
            let len = len as usize;
            if len < NLMSG_HDRLEN || len > rest.len() {
                return Err(Error::Malformed(format!(
                    "a netlink message at byte {offset} claims {len} bytes of {}",
                    rest.len()
                )));
            }
            let msg = &rest[..len];
            // Messages start on 4-byte boundaries (NLMSG_ALIGN).
            offset += len.next_multiple_of(4);
            let Some(slot) = self.slot(seq).filter(|done| !**done) else {
                // Not ours: a leftover answer to an earlier request on this socket.
                continue;
            };
            match ty {
                NLMSG_NOOP => {}
                NLMSG_ERROR | NLMSG_DONE => {
                    // Both carry an int: 0 or a negative errno. A DONE of an old kernel may
                    // carry nothing.
                    let code = match (ty, ne_u32(msg, NLMSG_HDRLEN)) {
                        (_, Some(c)) => c as i32,
                        (NLMSG_DONE, None) => 0,
                        (_, None) => {
                            return Err(Error::Malformed(
                                "the kernel sent a truncated netlink error message".to_owned(),
                            ));
                        }
                    };
                    if code != 0 {
                        return Err(Error::Refused {
                            seq,
                            errno: code.saturating_neg(),
                        });
                    }
                    *slot = true;
                }
                NLMSG_OVERRUN => {
                    return Err(Error::Malformed(
                        "the kernel reported a netlink overrun".to_owned(),
                    ));
                }
                _ => {
                    if flags & NLM_F_DUMP_INTR != 0 {
                        return Err(Error::DumpInterrupted);
                    }
                    each(msg).map_err(Error::Reader)?;
                }
            }
        }
        Ok(self.first_open().is_none())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One netlink message as the kernel would put it in a datagram.
    fn message(kind: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        let len = NLMSG_HDRLEN + payload.len();
        b.extend_from_slice(&(len as u32).to_ne_bytes());
        b.extend_from_slice(&kind.to_ne_bytes());
        b.extend_from_slice(&flags.to_ne_bytes());
        b.extend_from_slice(&seq.to_ne_bytes());
        b.extend_from_slice(&0u32.to_ne_bytes());
        b.extend_from_slice(payload);
        b.resize(b.len().next_multiple_of(4), 0);
        b
    }

    fn ack(seq: u32) -> Vec<u8> {
        message(NLMSG_ERROR, 0, seq, &[0; 20])
    }

    fn error(seq: u32, errno: i32) -> Vec<u8> {
        message(NLMSG_ERROR, 0, seq, &(-errno).to_ne_bytes())
    }

    fn done(seq: u32, code: i32) -> Vec<u8> {
        message(NLMSG_DONE, 2, seq, &code.to_ne_bytes())
    }

    /// The replies handed over (their sequence numbers) and whether the request is answered.
    fn walk(p: &mut Pending, datagram: &[u8]) -> Result<(bool, Vec<u32>)> {
        let mut seen = Vec::new();
        let finished = p.take(datagram, &mut |m| {
            seen.push(ne_u32(m, 8).expect("seq"));
            Ok(())
        })?;
        Ok((finished, seen))
    }

    #[test]
    fn a_request_is_a_bare_nfnetlink_header() {
        let r = request(
            NFNL_SUBSYS_NFTABLES,
            NFT_MSG_GETGEN,
            FAMILY_UNSPEC,
            NLM_F_ACK,
            7,
        );
        assert_eq!(u32::from_ne_bytes([r[0], r[1], r[2], r[3]]), 20);
        assert_eq!(u16::from_ne_bytes([r[4], r[5]]), 0x0a10);
        assert_eq!(u16::from_ne_bytes([r[6], r[7]]), 0x0005);
        assert_eq!(u32::from_ne_bytes([r[8], r[9], r[10], r[11]]), 7);
        assert_eq!(&r[12..], &[0; 8]);
        let d = request(
            NFNL_SUBSYS_CTNETLINK,
            IPCTNL_MSG_CT_GET,
            FAMILY_IPV4,
            NLM_F_DUMP,
            1,
        );
        assert_eq!(u16::from_ne_bytes([d[4], d[5]]), 0x0101);
        assert_eq!(u16::from_ne_bytes([d[6], d[7]]), 0x0301);
        assert_eq!(&d[16..], &[2, 0, 0, 0]);
    }

    #[test]
    fn a_dump_ends_at_its_done_across_datagrams() {
        let mut p = Pending::new(7..8);
        let first = [
            message(0x0100, 2, 7, &[2, 0, 0, 0]),
            message(0x0100, 2, 7, &[2, 0, 0, 0]),
        ]
        .concat();
        assert_eq!(walk(&mut p, &first).expect("first"), (false, vec![7, 7]));
        let last = [message(0x0100, 2, 7, &[2, 0, 0, 0]), done(7, 0)].concat();
        assert_eq!(walk(&mut p, &last).expect("last"), (true, vec![7]));
    }

    #[test]
    fn other_sequences_are_skipped() {
        let mut p = Pending::new(3..4);
        let stale = [
            message(0x0100, 2, 2, &[0; 4]),
            done(2, 0),
            error(9, libc::EPERM),
        ]
        .concat();
        assert_eq!(walk(&mut p, &stale).expect("stale"), (false, vec![]));
        assert_eq!(p.first_open(), Some(3));
    }

    #[test]
    fn a_reply_then_its_ack_answers_a_request() {
        let mut p = Pending::new(1..2);
        let answer = [message(0x0a0f, 0, 1, &[0; 8]), ack(1)].concat();
        assert_eq!(walk(&mut p, &answer).expect("answer"), (true, vec![1]));
    }

    #[test]
    fn a_batch_needs_every_ack_and_stops_at_the_first_error() {
        let mut p = Pending::new(1..4);
        assert_eq!(
            walk(&mut p, &[ack(1), ack(3)].concat()).expect("acks"),
            (false, vec![])
        );
        assert_eq!(p.first_open(), Some(2));
        assert_eq!(walk(&mut p, &ack(2)).expect("ack"), (true, vec![]));

        let mut p = Pending::new(1..5);
        let refused = [ack(1), error(2, libc::ENOENT)].concat();
        assert!(matches!(
            walk(&mut p, &refused),
            Err(Error::Refused {
                seq: 2,
                errno: libc::ENOENT
            })
        ));
    }

    #[test]
    fn errors_keep_their_errno() {
        let mut p = Pending::new(1..2);
        let e = walk(&mut p, &error(1, libc::EINVAL)).expect_err("EINVAL");
        assert_eq!(e.errno(), libc::EINVAL);
        let mut p = Pending::new(1..2);
        let e = walk(&mut p, &done(1, -libc::ENOMEM)).expect_err("ENOMEM");
        assert_eq!(e.errno(), libc::ENOMEM);
        assert_eq!(
            e.to_string(),
            io::Error::from_raw_os_error(libc::ENOMEM).to_string()
        );
    }

    #[test]
    fn an_interrupted_dump_is_an_error() {
        let mut p = Pending::new(1..2);
        let m = message(0x0a06, 2 | NLM_F_DUMP_INTR, 1, &[0; 4]);
        assert!(matches!(walk(&mut p, &m), Err(Error::DumpInterrupted)));
    }

    #[test]
    fn the_reader_can_refuse_a_reply() {
        let mut p = Pending::new(1..2);
        let e = p
            .take(&message(0x0100, 2, 1, &[0; 4]), &mut |_| {
                anyhow::bail!("no tuples")
            })
            .expect_err("reader");
        assert!(matches!(e, Error::Reader(_)));
        assert_eq!(e.to_string(), "no tuples");
    }

    #[test]
    fn malformed_datagrams_are_errors_never_panics() {
        let newgen = message(0x0a0f, 0, 1, &[0; 8]);
        let mut p = Pending::new(1..2);
        assert!(matches!(
            walk(&mut p, &newgen[..18]),
            Err(Error::Malformed(_))
        ));
        let mut zero_len = newgen.clone();
        zero_len[0..4].copy_from_slice(&0u32.to_ne_bytes());
        assert!(matches!(walk(&mut p, &zero_len), Err(Error::Malformed(_))));
        assert!(matches!(
            walk(&mut p, &newgen[..10]),
            Err(Error::Malformed(_))
        ));
        assert_eq!(walk(&mut p, &[]).expect("empty"), (false, vec![]));
        let short_error = message(NLMSG_ERROR, 0, 1, &[]);
        let e = walk(&mut p, &short_error).expect_err("short");
        assert_eq!(e.errno(), libc::EPROTO);
        let overrun = message(NLMSG_OVERRUN, 0, 1, &[]);
        assert!(matches!(walk(&mut p, &overrun), Err(Error::Malformed(_))));
    }
}
