//! The ruleset's matches and statements as nf_tables expressions (libnftnl), encoded exactly as
//! `nft` 1.0.6 encodes the equivalent text, with the expressions nftnl lacks written by hand.

use std::ffi::{CStr, CString};
use std::ptr::NonNull;

use nftnl::expr::{
    Bitwise, Cmp, CmpOp, Conntrack, Counter, Expression, Immediate, Meta, Register, States, Verdict,
};
use nftnl::nftnl_sys as sys;
use nftnl::{ChainType as NftChainType, Hook as NftHook, Policy as NftPolicy, Rule};

use super::ruleset::{Action, ChainType, Hook, Match, Policy, RuleSpec};
use crate::lab::plan::{IfName, PortRange};

// linux/netfilter/nf_nat.h. `nft` sets PROTO_SPECIFIED whenever a port range is given; without
// it the kernel ignores the range and picks ports from the whole ephemeral space.
const NF_NAT_RANGE_PROTO_SPECIFIED: u32 = 2;
const NF_NAT_RANGE_PERSISTENT: u32 = 8;

// The encodings copy what `nft` 1.0.6 sends for the same text (checked with `nft --debug=netlink`
// on kernel 6.18): a byte-aligned prefix loads only its bytes, a 16-byte interface name, the
// protocol byte at offset 9, immediates in network order, registers handed out from reg 1 in
// the order min address, max address, min port, max port.

impl RuleSpec {
    pub(super) fn add_to(&self, rule: &mut Rule<'_>) {
        for m in &self.matches {
            m.add_to(rule);
        }
        rule.add_expr(&Counter);
        self.action.add_to(rule);
    }
}

impl Match {
    fn add_to(&self, rule: &mut Rule<'_>) {
        match self {
            Match::Saddr(net) => {
                let prefix = net.prefix_len();
                let addr = net.network().octets();
                if prefix % 8 == 0 && prefix > 0 {
                    let n = usize::from(prefix / 8);
                    rule.add_expr(&NetworkPayload {
                        offset: 12,
                        len: u32::from(prefix / 8),
                    });
                    rule.add_expr(&Cmp::new(CmpOp::Eq, &addr[..n]));
                } else {
                    let mask = net.netmask().octets();
                    rule.add_expr(&NetworkPayload { offset: 12, len: 4 });
                    rule.add_expr(&Bitwise::new(&mask[..], &[0u8; 4][..]));
                    rule.add_expr(&Cmp::new(CmpOp::Eq, &addr[..]));
                }
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
    fn add_to(&self, rule: &mut Rule<'_>) {
        match self {
            Action::Jump(to) => rule.add_expr(&Verdict::Jump {
                chain: CString::from(*to),
            }),
            Action::Accept => rule.add_expr(&Verdict::Accept),
            Action::Drop => rule.add_expr(&Verdict::Drop),
            Action::Masquerade { ports } => {
                let proto = ports.map(|p| {
                    let (min, max) = range_regs(p.lo() != p.hi(), [Register::Reg1, Register::Reg2]);
                    load_port_range(rule, p, min, max);
                    (min, max)
                });
                rule.add_expr(&MasqExpr {
                    proto,
                    flags: if ports.is_some() {
                        NF_NAT_RANGE_PROTO_SPECIFIED
                    } else {
                        0
                    },
                });
            }
            Action::Snat {
                first,
                last,
                ports,
                persistent,
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
