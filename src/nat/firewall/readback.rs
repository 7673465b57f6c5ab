//! The rules of a namespace read back over netlink and printed by libnftnl, for tests and
//! diagnostics: what landed, without the `nft` binary.

use std::ffi::{CStr, c_char};
use std::fmt;
use std::io;
use std::ptr::NonNull;

use anyhow::{anyhow, bail};
use nftnl::nftnl_sys as sys;

use super::batch::open_socket;
use crate::nfnl;

/// One rule as the kernel holds it, printed the way `nft --debug=netlink` prints rules.
///
/// This is libnftnl's own rendering of the netlink message, so it needs neither the `nft` binary
/// nor any knowledge of what the rule means; tests compare it with the text `nft` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleText {
    /// `ip`, `ip6`, `inet`, ... (the table's family).
    pub family: String,
    pub table: String,
    pub chain: String,
    /// The kernel's handle; `None` for a rule decoded from a batch that was never sent.
    pub handle: Option<u64>,
    /// One expression per line, e.g. `[ meta load oifname => reg 1 ]`.
    pub text: String,
}

impl fmt::Display for RuleText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.family, self.table, self.chain)?;
        if let Some(h) = self.handle {
            write!(f, " (handle {h})")?;
        }
        for line in self.text.lines() {
            write!(f, "\n  {line}")?;
        }
        Ok(())
    }
}

/// Reads back every rule of the current namespace over netlink (all tables, all families), in
/// the kernel's order: table by table, chain by chain, rule by rule.
///
/// For tests and diagnostics: it shows what landed without the `nft` binary. Two differences
/// from the batch [`apply`] sends are the kernel's, not bugs: counters hold real counts, and
/// every `nat` expression comes back with MAP_IPS (0x1) in its flags (`flags 0xa` is read back
/// as `flags 0xb`) and, for a single address, with
/// `addr_max reg 1` as well (`snat to A` is read back as `addr_min reg 1 addr_max reg 1 flags 0x1`).
/// `nft list ruleset` prints both forms the same way.
pub fn read_back() -> anyhow::Result<Vec<RuleText>> {
    dump("rules", libc::NFT_MSG_GETRULE as u8, parse_rule)
}

fn dump<T>(
    what: &str,
    get_msg: u8,
    mut parse: impl FnMut(&[u8]) -> anyhow::Result<T>,
) -> anyhow::Result<Vec<T>> {
    let mut socket = open_socket()?;
    let mut out = Vec::new();
    // The kernel answers GET with NEW messages.
    let new_msg = (u16::from(nfnl::NFNL_SUBSYS_NFTABLES) << 8) | u16::from(get_msg - 1);
    socket
        .nft_dump(get_msg, &mut |msg| {
            if u16::from_ne_bytes([msg[4], msg[5]]) == new_msg {
                out.push(parse(msg)?);
            }
            Ok(())
        })
        .map_err(|e| match e {
            nfnl::Error::DumpInterrupted => {
                anyhow!("the nf_tables {what} changed while they were listed; read them again")
            }
            nfnl::Error::Refused { errno, .. } => {
                anyhow::Error::from(io::Error::from_raw_os_error(errno))
                    .context(format!("list the nf_tables {what}"))
            }
            nfnl::Error::Reader(e) => e,
            e => anyhow::Error::from(e).context(format!("read the list of nf_tables {what}")),
        })?;
    Ok(out)
}

/// Owns an `nftnl_rule` so every return path frees it.
struct OwnedRule(NonNull<sys::nftnl_rule>);

impl Drop for OwnedRule {
    fn drop(&mut self) {
        // SAFETY: allocated by nftnl_rule_alloc and freed only here.
        unsafe { sys::nftnl_rule_free(self.0.as_ptr()) };
    }
}

/// A C string owned by a libnftnl object, copied out; "" for an unset attribute.
fn c_str(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: libnftnl returns NUL-terminated strings that live as long as the object.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

fn family_name(f: u32) -> String {
    match f as i32 {
        libc::NFPROTO_IPV4 => "ip".into(),
        libc::NFPROTO_IPV6 => "ip6".into(),
        libc::NFPROTO_INET => "inet".into(),
        libc::NFPROTO_ARP => "arp".into(),
        libc::NFPROTO_BRIDGE => "bridge".into(),
        libc::NFPROTO_NETDEV => "netdev".into(),
        other => format!("family {other}"),
    }
}

/// Runs a libnftnl `*_snprintf`, growing the buffer until the text fits (libnftnl returns at
/// most the buffer size when it truncates, not the length it needed).
fn snprint(print: impl Fn(*mut c_char, usize) -> i32) -> anyhow::Result<String> {
    let mut buf = vec![0u8; 4096];
    loop {
        let n = print(buf.as_mut_ptr().cast(), buf.len());
        let n = usize::try_from(n).map_err(|_| anyhow!("libnftnl could not print an object"))?;
        if n + 1 < buf.len() {
            buf.truncate(n);
            return Ok(String::from_utf8_lossy(&buf).into_owned());
        }
        if buf.len() >= 1 << 20 {
            bail!("libnftnl printed more than 1 MiB for one object");
        }
        buf.resize(buf.len() * 2, 0);
    }
}

/// Decodes one NEWRULE message (from a dump, or from a batch in the tests).
pub(super) fn parse_rule(msg: &[u8]) -> anyhow::Result<RuleText> {
    // SAFETY: plain allocation.
    let rule = NonNull::new(unsafe { sys::nftnl_rule_alloc() })
        .map(OwnedRule)
        .ok_or_else(|| anyhow!("libnftnl could not allocate a rule"))?;
    let r = rule.0.as_ptr();
    // SAFETY: `msg` is one whole netlink message, aligned for nlmsghdr (NlMessages checks it),
    // and nlmsg_len (which libnftnl trusts) was checked against the buffer by NlMessages.
    if unsafe { sys::nftnl_rule_nlmsg_parse(msg.as_ptr().cast(), r) } < 0 {
        bail!(
            "libnftnl could not decode a rule message: {}",
            io::Error::last_os_error()
        );
    }
    // SAFETY (all calls below): `r` is a valid, parsed rule; the getters return values owned
    // by it, copied before it is freed.
    let family = unsafe { sys::nftnl_rule_get_u32(r, sys::NFTNL_RULE_FAMILY as u16) };
    let table = c_str(unsafe { sys::nftnl_rule_get_str(r, sys::NFTNL_RULE_TABLE as u16) });
    let chain = c_str(unsafe { sys::nftnl_rule_get_str(r, sys::NFTNL_RULE_CHAIN as u16) });
    let handle = unsafe { sys::nftnl_rule_is_set(r, sys::NFTNL_RULE_HANDLE as u16) }
        .then(|| unsafe { sys::nftnl_rule_get_u64(r, sys::NFTNL_RULE_HANDLE as u16) });
    let printed = snprint(|buf, len| unsafe {
        sys::nftnl_rule_snprintf(buf, len, r, sys::NFTNL_OUTPUT_DEFAULT, 0)
    })?;
    // The first line repeats family, table, chain and handle; the rest is one `[ expr ]` each.
    let text = printed
        .lines()
        .skip(1)
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    Ok(RuleText {
        family: family_name(family),
        table,
        chain,
        handle,
        text,
    })
}

#[cfg(test)]
pub(super) mod chains {
    //! Chains read back, for the tests of the batch.
    use super::*;

    /// One chain as the kernel holds it. `text` is libnftnl's rendering, e.g. `ip filter FORWARD
    /// use 2 type filter hook forward prio 0 policy drop packets 0 bytes 0 flags 1`, so a test can
    /// check hook and policy.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct ChainText {
        pub family: String,
        pub table: String,
        pub name: String,
        pub text: String,
    }

    struct OwnedChain(NonNull<sys::nftnl_chain>);

    impl Drop for OwnedChain {
        fn drop(&mut self) {
            // SAFETY: allocated by nftnl_chain_alloc and freed only here.
            unsafe { sys::nftnl_chain_free(self.0.as_ptr()) };
        }
    }

    /// Decodes one NEWCHAIN message.
    pub fn parse_chain(msg: &[u8]) -> anyhow::Result<ChainText> {
        // SAFETY: plain allocation.
        let chain = NonNull::new(unsafe { sys::nftnl_chain_alloc() })
            .map(OwnedChain)
            .ok_or_else(|| anyhow!("libnftnl could not allocate a chain"))?;
        let c = chain.0.as_ptr();
        // SAFETY: as in parse_rule.
        if unsafe { sys::nftnl_chain_nlmsg_parse(msg.as_ptr().cast(), c) } < 0 {
            bail!(
                "libnftnl could not decode a chain message: {}",
                io::Error::last_os_error()
            );
        }
        // SAFETY (all calls below): `c` is a valid, parsed chain.
        let family = unsafe { sys::nftnl_chain_get_u32(c, sys::NFTNL_CHAIN_FAMILY as u16) };
        let table = c_str(unsafe { sys::nftnl_chain_get_str(c, sys::NFTNL_CHAIN_TABLE as u16) });
        let name = c_str(unsafe { sys::nftnl_chain_get_str(c, sys::NFTNL_CHAIN_NAME as u16) });
        let text = snprint(|buf, len| unsafe {
            sys::nftnl_chain_snprintf(buf, len, c, sys::NFTNL_OUTPUT_DEFAULT, 0)
        })?;
        Ok(ChainText {
            family: family_name(family),
            table,
            name,
            text: text.trim().to_owned(),
        })
    }
}
