//! The ruleset's matches and statements as nf_tables expressions (libnftnl), encoded exactly as
//! `nft` 1.0.6 encodes the equivalent text, with the expressions nftnl lacks written by hand.

use std::ffi::{CStr, CString, c_void};
use std::ptr::NonNull;

use nftnl::expr::{
    Bitwise, Cmp, CmpOp, Conntrack, Counter, Expression, Immediate, Meta, Register, States, Verdict,
};
use nftnl::nftnl_sys as sys;
use nftnl::{
    ChainType as NftChainType, Hook as NftHook, MsgType, NlMsg, Policy as NftPolicy, ProtoFamily,
    Rule,
};

use super::ruleset::{Action, ChainType, Hook, IfKey, MapSpec, Match, Policy, RuleSpec};
use crate::lab::plan::{IfName, PortRange};

// linux/netfilter/nf_nat.h. `nft` sets PROTO_SPECIFIED whenever a port range is given; without
// it the kernel ignores the range and picks ports from the whole ephemeral space.
const NF_NAT_RANGE_PROTO_SPECIFIED: u32 = 2;
const NF_NAT_RANGE_PERSISTENT: u32 = 8;
const NF_NAT_RANGE_PROTO_RANDOM_FULLY: u32 = 16;
/// `NFT_NG_INCREMENTAL` from linux/netfilter/nf_tables.h.
const NFT_NG_INCREMENTAL: u32 = 0;

// The encodings copy what `nft` 1.0.6 sends for the same text (checked with `nft --debug=netlink`
// on kernel 6.18): a byte-aligned prefix loads only its bytes, a 16-byte interface name, the
// protocol byte at offset 9, immediates in network order, registers handed out from reg 1 in
// the order min address, max address, min port, max port.

// `fib daddr type local`, from linux/netfilter/nf_tables.h and linux/rtnetlink.h.
const NFTA_FIB_F_DADDR: u32 = 2;
const NFT_FIB_RESULT_ADDRTYPE: u32 = 3;
const RTN_LOCAL: u32 = 2;
/// Offsets of the IPv4 source and destination, and of the IPv6 destination, in the network header.
const IP_SADDR: u32 = 12;
const IP_DADDR: u32 = 16;
const IP6_DADDR: u32 = 24;

/// The batch's id of a verdict map created in the same transaction, which a `vmap` lookup
/// names along with the map's name (the kernel does not know the name before the commit).
pub(super) type MapId<'a> = &'a dyn Fn(&CStr) -> u32;

impl RuleSpec {
    pub(super) fn add_to(&self, rule: &mut Rule<'_>, map_id: MapId<'_>) {
        for m in &self.matches {
            m.add_to(rule);
        }
        if self.counter {
            rule.add_expr(&Counter);
        }
        self.action.add_to(rule, map_id);
        if let Some(comment) = self.comment {
            // nft stores a comment as the rule's userdata TLV NFTNL_UDATA_RULE_COMMENT, as this does.
            rule.set_comment(comment)
                .expect("Docker's rule comments are far below NFTNL_UDATA_COMMENT_MAXLEN");
        }
    }
}

/// `ip saddr|daddr [!=] <net>` at `offset`: a byte-aligned prefix loads only its bytes, any
/// other is masked, as nft does.
fn ipv4_net(rule: &mut Rule<'_>, offset: u32, op: CmpOp, net: ipnet::Ipv4Net) {
    let prefix = net.prefix_len();
    let addr = net.network().octets();
    if prefix % 8 == 0 && prefix > 0 {
        let n = usize::from(prefix / 8);
        rule.add_expr(&NetworkPayload {
            offset,
            len: u32::from(prefix / 8),
        });
        rule.add_expr(&Cmp::new(op, &addr[..n]));
    } else {
        let mask = net.netmask().octets();
        rule.add_expr(&NetworkPayload { offset, len: 4 });
        rule.add_expr(&Bitwise::new(&mask[..], &[0u8; 4][..]));
        rule.add_expr(&Cmp::new(op, &addr[..]));
    }
}

impl Match {
    fn add_to(&self, rule: &mut Rule<'_>) {
        match self {
            Match::Saddr(net) => ipv4_net(rule, IP_SADDR, CmpOp::Eq, *net),
            Match::Daddr { equal, net } => ipv4_net(rule, IP_DADDR, cmp_op(*equal), *net),
            Match::Ip6DaddrNotLoopback => {
                rule.add_expr(&NetworkPayload {
                    offset: IP6_DADDR,
                    len: 16,
                });
                rule.add_expr(&Cmp::new(
                    CmpOp::Neq,
                    &std::net::Ipv6Addr::LOCALHOST.octets()[..],
                ));
            }
            Match::FibDaddrLocal => {
                rule.add_expr(&FibExpr);
                // The address type is a host-order u32.
                rule.add_expr(&Cmp::new(CmpOp::Eq, RTN_LOCAL));
            }
            Match::Iif { equal, name } => {
                rule.add_expr(&Meta::IifName);
                rule.add_expr(&Cmp::new(cmp_op(*equal), &ifname_bytes(name)[..]));
            }
            Match::Oif { equal, name } => {
                rule.add_expr(&Meta::OifName);
                rule.add_expr(&Cmp::new(cmp_op(*equal), &ifname_bytes(name)[..]));
            }
            Match::Proto(p) => {
                rule.add_expr(&NetworkPayload { offset: 9, len: 1 });
                rule.add_expr(&Cmp::new(CmpOp::Eq, p.number()));
            }
            Match::CtEstablishedRelated => {
                // ct state is a host-order u32 bit set.
                let bits = (States::ESTABLISHED | States::RELATED).bits();
                rule.add_expr(&Conntrack::State);
                rule.add_expr(&Bitwise::new(bits, 0u32));
                rule.add_expr(&Cmp::new(CmpOp::Neq, 0u32));
            }
            Match::NumgenInc { modulus } => {
                rule.add_expr(&NumgenExpr { modulus: *modulus });
                // The generated number is a host-order u32.
                rule.add_expr(&Cmp::new(CmpOp::Eq, 0u32));
            }
        }
    }
}

fn cmp_op(equal: bool) -> CmpOp {
    if equal { CmpOp::Eq } else { CmpOp::Neq }
}

/// The name padded to IFNAMSIZ, as nft compares it (nftnl's `InterfaceName` compares only up to
/// the NUL; same meaning, different bytes, and these tests want nft's bytes).
fn ifname_bytes(name: &IfName) -> [u8; 16] {
    let mut b = [0u8; 16];
    let s = name.as_str().as_bytes();
    let n = s.len().min(15);
    b[..n].copy_from_slice(&s[..n]);
    b
}

/// Registers for a `min[-max]` pair: `max` only when it differs, as nft does.
fn range_regs(distinct: bool, regs: [Register; 2]) -> (Register, Option<Register>) {
    (regs[0], distinct.then_some(regs[1]))
}

impl Action {
    fn add_to(&self, rule: &mut Rule<'_>, map_id: MapId<'_>) {
        match self {
            Action::Jump(to) => rule.add_expr(&Verdict::Jump {
                chain: CString::from(*to),
            }),
            Action::Vmap { key, map } => {
                rule.add_expr(match key {
                    IfKey::Iif => &Meta::IifName,
                    IfKey::Oif => &Meta::OifName,
                });
                rule.add_expr(&VmapLookup {
                    map: CString::from(*map),
                    id: map_id(map),
                });
            }
            Action::Accept => rule.add_expr(&Verdict::Accept),
            Action::Drop => rule.add_expr(&Verdict::Drop),
            Action::Masquerade {
                ports,
                random_fully,
            } => {
                let proto = ports.map(|p| {
                    let (min, max) = range_regs(p.lo() != p.hi(), [Register::Reg1, Register::Reg2]);
                    load_port_range(rule, p, min, max);
                    (min, max)
                });
                let mut flags = 0;
                if ports.is_some() {
                    flags |= NF_NAT_RANGE_PROTO_SPECIFIED;
                }
                if *random_fully {
                    flags |= NF_NAT_RANGE_PROTO_RANDOM_FULLY;
                }
                rule.add_expr(&MasqExpr { proto, flags });
            }
            Action::Snat {
                first,
                last,
                ports,
                persistent,
                random_fully,
            } => {
                let (addr_min, addr_max) =
                    range_regs(first != last, [Register::Reg1, Register::Reg2]);
                rule.add_expr(&Immediate::new(first.octets(), addr_min));
                if let Some(r) = addr_max {
                    rule.add_expr(&Immediate::new(last.octets(), r));
                }
                let port_regs = if addr_max.is_some() {
                    [Register::Reg3, Register::Reg4]
                } else {
                    [Register::Reg2, Register::Reg3]
                };
                let proto = ports.map(|p| {
                    let (min, max) = range_regs(p.lo() != p.hi(), port_regs);
                    load_port_range(rule, p, min, max);
                    (min, max)
                });
                let mut flags = 0;
                if ports.is_some() {
                    flags |= NF_NAT_RANGE_PROTO_SPECIFIED;
                }
                if *persistent {
                    flags |= NF_NAT_RANGE_PERSISTENT;
                }
                if *random_fully {
                    flags |= NF_NAT_RANGE_PROTO_RANDOM_FULLY;
                }
                rule.add_expr(&SnatExpr {
                    addr: (addr_min, addr_max),
                    proto,
                    flags,
                });
            }
        }
    }
}

/// Ports go into registers as 2 network-order bytes (Immediate copies the value's raw bytes).
fn load_port_range(rule: &mut Rule<'_>, p: PortRange, min: Register, max: Option<Register>) {
    rule.add_expr(&Immediate::new(p.lo().to_be_bytes(), min));
    if let Some(r) = max {
        rule.add_expr(&Immediate::new(p.hi().to_be_bytes(), r));
    }
}

fn alloc_expr(name: &CStr) -> NonNull<sys::nftnl_expr> {
    // SAFETY: `name` is a valid NUL-terminated string; libnftnl copies what it needs.
    let expr = unsafe { sys::nftnl_expr_alloc(name.as_ptr()) };
    // NULL means malloc failed for a few bytes (or a typo in `name`, which the tests catch);
    // nftnl aborts in that case too.
    NonNull::new(expr).unwrap_or_else(|| std::process::abort())
}

fn set_u32(expr: NonNull<sys::nftnl_expr>, attr: u32, value: u32) {
    // SAFETY: `expr` came from nftnl_expr_alloc and is not shared yet; `attr` is an attribute of
    // that expression type (the u16 cast is how libnftnl declares attributes).
    unsafe { sys::nftnl_expr_set_u32(expr.as_ptr(), attr as u16, value) };
}

/// `payload load <len>b @ network header + <offset> => reg 1`. nftnl's `Payload` has no
/// variant for "the first n bytes of the source address", which nft uses for /8, /16, /24.
struct NetworkPayload {
    offset: u32,
    len: u32,
}

impl Expression for NetworkPayload {
    fn to_expr(&self, _rule: &Rule) -> NonNull<sys::nftnl_expr> {
        let e = alloc_expr(c"payload");
        set_u32(
            e,
            sys::NFTNL_EXPR_PAYLOAD_BASE,
            libc::NFT_PAYLOAD_NETWORK_HEADER as u32,
        );
        set_u32(e, sys::NFTNL_EXPR_PAYLOAD_OFFSET, self.offset);
        set_u32(e, sys::NFTNL_EXPR_PAYLOAD_LEN, self.len);
        set_u32(e, sys::NFTNL_EXPR_PAYLOAD_DREG, libc::NFT_REG_1 as u32);
        e
    }
}

/// `numgen reg 1 = inc mod N`: nftnl has no numgen expression. nft 1.0.6 always sends the
/// offset, 0 here (its printed text leaves a 0 offset out).
struct NumgenExpr {
    modulus: u32,
}

impl Expression for NumgenExpr {
    fn to_expr(&self, _rule: &Rule) -> NonNull<sys::nftnl_expr> {
        let e = alloc_expr(c"numgen");
        set_u32(e, sys::NFTNL_EXPR_NG_DREG, libc::NFT_REG_1 as u32);
        set_u32(e, sys::NFTNL_EXPR_NG_MODULUS, self.modulus);
        set_u32(e, sys::NFTNL_EXPR_NG_TYPE, NFT_NG_INCREMENTAL);
        set_u32(e, sys::NFTNL_EXPR_NG_OFFSET, 0);
        e
    }
}

/// `fib daddr type => reg 1`: the address type of the destination's route.
struct FibExpr;

impl Expression for FibExpr {
    fn to_expr(&self, _rule: &Rule) -> NonNull<sys::nftnl_expr> {
        let e = alloc_expr(c"fib");
        set_u32(e, sys::NFTNL_EXPR_FIB_DREG, libc::NFT_REG_1 as u32);
        set_u32(e, sys::NFTNL_EXPR_FIB_RESULT, NFT_FIB_RESULT_ADDRTYPE);
        set_u32(e, sys::NFTNL_EXPR_FIB_FLAGS, NFTA_FIB_F_DADDR);
        e
    }
}

/// `lookup reg 1 set <map> dreg 0`: the verdict of the map's element for reg 1. nftnl's
/// `Lookup` wants one of its own `Set`s and sets no dreg, so it cannot express a vmap.
struct VmapLookup {
    map: CString,
    id: u32,
}

impl Expression for VmapLookup {
    fn to_expr(&self, _rule: &Rule) -> NonNull<sys::nftnl_expr> {
        let e = alloc_expr(c"lookup");
        set_u32(e, sys::NFTNL_EXPR_LOOKUP_SREG, libc::NFT_REG_1 as u32);
        set_u32(e, sys::NFTNL_EXPR_LOOKUP_DREG, libc::NFT_REG_VERDICT as u32);
        // SAFETY: `e` is a fresh lookup expression; libnftnl copies the string.
        unsafe {
            sys::nftnl_expr_set_str(
                e.as_ptr(),
                sys::NFTNL_EXPR_LOOKUP_SET as u16,
                self.map.as_ptr(),
            )
        };
        set_u32(e, sys::NFTNL_EXPR_LOOKUP_SET_ID, self.id);
        e
    }
}

/// `masq [proto_min reg N [proto_max reg M]] [flags F]`. nftnl's `Masquerade` cannot carry a
/// port range.
struct MasqExpr {
    proto: Option<(Register, Option<Register>)>,
    flags: u32,
}

impl Expression for MasqExpr {
    fn to_expr(&self, _rule: &Rule) -> NonNull<sys::nftnl_expr> {
        let e = alloc_expr(c"masq");
        if let Some((min, max)) = self.proto {
            set_u32(e, sys::NFTNL_EXPR_MASQ_REG_PROTO_MIN, min.to_raw());
            if let Some(max) = max {
                set_u32(e, sys::NFTNL_EXPR_MASQ_REG_PROTO_MAX, max.to_raw());
            }
        }
        if self.flags != 0 {
            set_u32(e, sys::NFTNL_EXPR_MASQ_FLAGS, self.flags);
        }
        e
    }
}

/// `nat snat ip addr_min reg N [addr_max reg M] [proto_min ...] [flags F]`. nftnl's `Nat` sets
/// neither the max registers nor the flags, so a pool, a port range or `persistent` need this.
struct SnatExpr {
    addr: (Register, Option<Register>),
    proto: Option<(Register, Option<Register>)>,
    flags: u32,
}

impl Expression for SnatExpr {
    fn to_expr(&self, _rule: &Rule) -> NonNull<sys::nftnl_expr> {
        let e = alloc_expr(c"nat");
        set_u32(e, sys::NFTNL_EXPR_NAT_TYPE, libc::NFT_NAT_SNAT as u32);
        set_u32(e, sys::NFTNL_EXPR_NAT_FAMILY, libc::NFPROTO_IPV4 as u32);
        set_u32(e, sys::NFTNL_EXPR_NAT_REG_ADDR_MIN, self.addr.0.to_raw());
        if let Some(max) = self.addr.1 {
            set_u32(e, sys::NFTNL_EXPR_NAT_REG_ADDR_MAX, max.to_raw());
        }
        if let Some((min, max)) = self.proto {
            set_u32(e, sys::NFTNL_EXPR_NAT_REG_PROTO_MIN, min.to_raw());
            if let Some(max) = max {
                set_u32(e, sys::NFTNL_EXPR_NAT_REG_PROTO_MAX, max.to_raw());
            }
        }
        if self.flags != 0 {
            set_u32(e, sys::NFTNL_EXPR_NAT_FLAGS, self.flags);
        }
        e
    }
}

pub(super) fn chain_type(t: ChainType) -> NftChainType {
    match t {
        ChainType::Nat => NftChainType::Nat,
        ChainType::Filter => NftChainType::Filter,
    }
}

pub(super) fn hook(h: Hook) -> NftHook {
    match h {
        Hook::PreRouting => NftHook::PreRouting,
        Hook::Output => NftHook::Out,
        Hook::PostRouting => NftHook::PostRouting,
        Hook::Forward => NftHook::Forward,
    }
}

pub(super) fn policy(p: Policy) -> NftPolicy {
    match p {
        Policy::Accept => NftPolicy::Accept,
        Policy::Drop => NftPolicy::Drop,
    }
}

// nftables' own type ids (nftables' datatype.h), which `nft list` reads back from the set to
// print `type ifname : verdict`.
const TYPE_IFNAME: u32 = 41;
/// BYTEORDER_HOST_ENDIAN in nftables' userdata: an ifname key is a host-order string.
const BYTEORDER_HOST_ENDIAN: u32 = 1;
const IFNAMSIZ: u32 = 16;

/// A named verdict map `type ifname : verdict` with its elements, as nft 1.0.6 sends it: the
/// set flagged NFT_SET_MAP with verdict data, nft's userdata (key byte order host, data byte
/// order none, no interval data), and `"<ifname>" : jump <chain>` elements.
pub(super) struct VerdictMap {
    set: NonNull<sys::nftnl_set>,
    family: ProtoFamily,
}

impl VerdictMap {
    /// `id` is the map's number in the batch, unique in the transaction; lookups name it too.
    pub(super) fn new(table: &CStr, family: ProtoFamily, spec: &MapSpec, id: u32) -> Self {
        // SAFETY: plain allocation; NULL only when malloc fails for a few bytes.
        let set = NonNull::new(unsafe { sys::nftnl_set_alloc() })
            .unwrap_or_else(|| std::process::abort());
        let s = set.as_ptr();
        // SAFETY (all calls below): `s` is a fresh set owned by this value; libnftnl copies the
        // strings and data it is given, and takes ownership of each element added to it.
        unsafe {
            sys::nftnl_set_set_u32(s, sys::NFTNL_SET_FAMILY as u16, family as u32);
            sys::nftnl_set_set_str(s, sys::NFTNL_SET_TABLE as u16, table.as_ptr());
            sys::nftnl_set_set_str(s, sys::NFTNL_SET_NAME as u16, spec.name.as_ptr());
            sys::nftnl_set_set_u32(s, sys::NFTNL_SET_FLAGS as u16, libc::NFT_SET_MAP as u32);
            sys::nftnl_set_set_u32(s, sys::NFTNL_SET_KEY_TYPE as u16, TYPE_IFNAME);
            sys::nftnl_set_set_u32(s, sys::NFTNL_SET_KEY_LEN as u16, IFNAMSIZ);
            sys::nftnl_set_set_u32(s, sys::NFTNL_SET_DATA_TYPE as u16, libc::NFT_DATA_VERDICT);
            sys::nftnl_set_set_u32(s, sys::NFTNL_SET_DATA_LEN as u16, 0);
            sys::nftnl_set_set_u32(s, sys::NFTNL_SET_ID as u16, id);

            let udata = NonNull::new(sys::nftnl_udata_buf_alloc(64))
                .unwrap_or_else(|| std::process::abort());
            let u = udata.as_ptr();
            let fits =
                sys::nftnl_udata_put_u32(
                    u,
                    sys::NFTNL_UDATA_SET_KEYBYTEORDER as u8,
                    BYTEORDER_HOST_ENDIAN,
                ) && sys::nftnl_udata_put_u32(u, sys::NFTNL_UDATA_SET_DATABYTEORDER as u8, 0)
                    && sys::nftnl_udata_put_u32(u, sys::NFTNL_UDATA_SET_DATA_INTERVAL as u8, 0);
            // Three 6-byte TLVs always fit the 64 bytes.
            debug_assert!(fits);
            sys::nftnl_set_set_data(
                s,
                sys::NFTNL_SET_USERDATA as u16,
                sys::nftnl_udata_buf_data(u),
                sys::nftnl_udata_buf_len(u),
            );
            sys::nftnl_udata_buf_free(u);

            for (ifname, chain) in &spec.elements {
                let elem = NonNull::new(sys::nftnl_set_elem_alloc())
                    .unwrap_or_else(|| std::process::abort())
                    .as_ptr();
                let key = ifname_bytes(ifname);
                sys::nftnl_set_elem_set(
                    elem,
                    sys::NFTNL_SET_ELEM_KEY as u16,
                    key.as_ptr().cast(),
                    IFNAMSIZ,
                );
                sys::nftnl_set_elem_set_u32(
                    elem,
                    sys::NFTNL_SET_ELEM_VERDICT as u16,
                    libc::NFT_JUMP as u32,
                );
                sys::nftnl_set_elem_set_str(elem, sys::NFTNL_SET_ELEM_CHAIN as u16, chain.as_ptr());
                sys::nftnl_set_elem_add(s, elem);
            }
        }
        Self { set, family }
    }

    /// The NEWSETELEM message with every element, to add after the chains they jump to.
    pub(super) fn elements(&self) -> MapElements<'_> {
        MapElements(self)
    }
}

impl Drop for VerdictMap {
    fn drop(&mut self) {
        // SAFETY: allocated in `new`, freed only here; this frees the elements too.
        unsafe { sys::nftnl_set_free(self.set.as_ptr()) };
    }
}

// SAFETY: a set message with a handful of elements is far below nft_nlmsg_maxsize().
unsafe impl NlMsg for VerdictMap {
    unsafe fn write(&self, buf: *mut c_void, seq: u32, msg_type: MsgType) {
        let ty = match msg_type {
            MsgType::Add => libc::NFT_MSG_NEWSET,
            MsgType::Del => libc::NFT_MSG_DELSET,
        };
        // SAFETY: the caller gives a buffer of nft_nlmsg_maxsize() bytes.
        unsafe {
            let nlh = sys::nftnl_nlmsg_build_hdr(
                buf.cast(),
                ty as u16,
                self.family as u16,
                (libc::NLM_F_CREATE | libc::NLM_F_ACK) as u16,
                seq,
            );
            sys::nftnl_set_nlmsg_build_payload(nlh, self.set.as_ptr());
        }
    }
}

/// The elements of a [`VerdictMap`], as one message.
pub(super) struct MapElements<'a>(&'a VerdictMap);

// SAFETY: as for VerdictMap.
unsafe impl NlMsg for MapElements<'_> {
    unsafe fn write(&self, buf: *mut c_void, seq: u32, msg_type: MsgType) {
        let (ty, flags) = match msg_type {
            MsgType::Add => (
                libc::NFT_MSG_NEWSETELEM,
                libc::NLM_F_CREATE | libc::NLM_F_EXCL | libc::NLM_F_ACK,
            ),
            MsgType::Del => (libc::NFT_MSG_DELSETELEM, libc::NLM_F_ACK),
        };
        // SAFETY: the caller gives a buffer of nft_nlmsg_maxsize() bytes; the set names its
        // table, name and id, which the elements message repeats.
        unsafe {
            let nlh = sys::nftnl_nlmsg_build_hdr(
                buf.cast(),
                ty as u16,
                self.0.family as u16,
                flags as u16,
                seq,
            );
            sys::nftnl_set_elems_nlmsg_build_payload(nlh, self.0.set.as_ptr());
        }
    }
}
