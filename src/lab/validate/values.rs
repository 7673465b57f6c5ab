//! The small checks shared by several tables: names and node names, unknown references,
//! subnets, addresses, ports and port ranges, counts, durations, plus the pure helpers on them
//! (overlap, docker gateway, replica names).

use std::net::Ipv4Addr;
use std::num::NonZeroU16;
use std::time::Duration;

use ipnet::Ipv4Net;

use crate::lab::diag::{Diagnostic, did_you_mean};
use crate::lab::plan::{CountRange, Name, PortRange};
use crate::lab::spec::{CountSpec, Span, Spanned};

/// Interface names every namespace (`lo`) or every host and container (`eth0`) already has.
pub(super) const RESERVED_IFNAMES: &[&str] = &["lo", "eth0"];

/// Ports a Linux bridge can have: port numbers are 10 bits and 0 is reserved (BR_MAX_PORTS).
pub(super) const BRIDGE_MAX_PORTS: usize = 1023;

pub(super) fn name(raw: &Spanned<String>, kind: &str, d: &mut Vec<Diagnostic>) -> Option<Name> {
    Name::new(&raw.value)
        .map_err(|e| {
            d.push(
                Diagnostic::error(raw.span.clone(), format!("invalid {kind} name: {e}"))
                    .with_help("names become parts of namespace names like `<lab>-<node>`"),
            )
        })
        .ok()
}

/// A LAN, host or container name: a valid [`Name`], and not an interface name every namespace
/// already has.
pub(super) fn node_name(
    raw: &Spanned<String>,
    kind: &str,
    d: &mut Vec<Diagnostic>,
) -> Option<Name> {
    let n = name(raw, kind, d)?;
    if kind != "container" && RESERVED_IFNAMES.contains(&n.as_str()) {
        d.push(
            Diagnostic::error(raw.span.clone(), format!("`{n}` cannot be a {kind} name"))
                .with_help(
                    "a LAN's bridge is named after the LAN and its ports after the hosts, \
                     so `lo` (loopback) and `eth0` (the NIC of hosts) are reserved",
                ),
        );
        return None;
    }
    Some(n)
}

pub(super) fn unknown_ref(
    raw: &Spanned<String>,
    kind: &str,
    section: &str,
    names: &[&str],
) -> Diagnostic {
    let d = Diagnostic::error(raw.span.clone(), format!("unknown {kind} `{}`", raw.value));
    match did_you_mean(&raw.value, names.iter().copied()) {
        Some(s) => d.with_help(format!("did you mean `{s}`?")),
        None if names.is_empty() => {
            d.with_help(format!("define it in a [{section}.{}] table", raw.value))
        }
        None => {
            let known: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
            d.with_help(format!("defined: {}", known.join(", ")))
        }
    }
}

/// LAN hosts and containers each take a port of a bridge, and a bridge has only so many.
pub(super) fn bridge_full(span: Span, message: String) -> Diagnostic {
    Diagnostic::error(span, message).with_help(format!(
        "a Linux bridge has at most {BRIDGE_MAX_PORTS} ports"
    ))
}

/// A network address like `192.168.49.0/24`, without host bits.
pub(super) fn subnet(raw: &Spanned<String>, d: &mut Vec<Diagnostic>) -> Option<Ipv4Net> {
    let Ok(net) = raw.value.parse::<Ipv4Net>() else {
        d.push(
            Diagnostic::error(raw.span.clone(), format!("invalid subnet `{}`", raw.value))
                .with_help("write an IPv4 network and prefix length, like \"192.168.49.0/24\""),
        );
        return None;
    };
    if net.trunc() != net {
        d.push(
            Diagnostic::error(
                raw.span.clone(),
                format!("subnet `{net}` has host bits set"),
            )
            .with_help(format!("did you mean {}?", net.trunc())),
        );
        return None;
    }
    Some(net)
}

pub(super) fn address(raw: &Spanned<String>, d: &mut Vec<Diagnostic>) -> Option<Ipv4Addr> {
    let parsed = raw.value.parse::<Ipv4Addr>();
    if parsed.is_err() {
        let diag = Diagnostic::error(
            raw.span.clone(),
            format!("invalid IPv4 address `{}`", raw.value),
        );
        d.push(if raw.value.contains('/') {
            diag.with_help("write the address without a prefix length; it comes from the subnet")
        } else {
            diag
        });
    }
    parsed.ok()
}

pub(super) fn port(raw: &Spanned<i64>, d: &mut Vec<Diagnostic>) -> Option<NonZeroU16> {
    let p = u16::try_from(raw.value).ok().and_then(NonZeroU16::new);
    if p.is_none() {
        d.push(Diagnostic::error(
            raw.span.clone(),
            format!("port {} is out of range 1-65535", raw.value),
        ));
    }
    p
}

/// `"20000-29999"`, or `"5000"` for a single port.
pub(super) fn ports(raw: &Spanned<String>, d: &mut Vec<Diagnostic>) -> Option<PortRange> {
    let text = raw.value.trim();
    let (lo, hi) = text.split_once('-').unwrap_or((text, text));
    let range = match (lo.trim().parse::<u16>(), hi.trim().parse::<u16>()) {
        (Ok(lo), Ok(hi)) => PortRange::new(lo, hi),
        _ => Err(format!(
            "invalid port range `{}`: expected \"lo-hi\" like \"20000-29999\", or one port",
            raw.value
        )),
    };
    range
        .map_err(|e| d.push(Diagnostic::error(raw.span.clone(), e)))
        .ok()
}

fn count(n: &Spanned<i64>, d: &mut Vec<Diagnostic>) -> Option<u64> {
    let v = u64::try_from(n.value).ok();
    if v.is_none() {
        d.push(Diagnostic::error(
            n.span.clone(),
            format!("a count cannot be negative, found {}", n.value),
        ));
    }
    v
}

pub(super) fn count_range(c: &Spanned<CountSpec>, d: &mut Vec<Diagnostic>) -> Option<CountRange> {
    match &c.value {
        CountSpec::Exact(n) => count(&Spanned::new(*n, c.span.clone()), d).map(CountRange::exact),
        CountSpec::Range {
            min: None,
            max: None,
        } => {
            d.push(
                Diagnostic::error(
                    c.span.clone(),
                    "an expected range needs `min`, `max` or both",
                )
                .with_help("e.g. { min = 1000 } or { min = 1, max = 10 }"),
            );
            None
        }
        CountSpec::Range { min, max } => {
            let lo = min.as_ref().map_or(Some(0), |n| count(n, d));
            let hi = max.as_ref().map_or(Some(u64::MAX), |n| count(n, d));
            let (lo, hi) = (lo?, hi?);
            if lo > hi {
                d.push(Diagnostic::error(
                    c.span.clone(),
                    format!("empty range: `min = {lo}` is larger than `max = {hi}`"),
                ));
                return None;
            }
            Some(CountRange { min: lo, max: hi })
        }
    }
}

/// `"100s"`, `"500ms"`, `"2m"`, `"1h"`, `"1.5s"`: a decimal number and a unit, computed in
/// integer nanoseconds so `"0.1s"` is exactly 100ms.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let unit_nanos: u128 = match unit.trim() {
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        "" => return Err("missing unit (ms, s, m or h)".into()),
        u => return Err(format!("unknown unit `{u}` (use ms, s, m or h)")),
    };
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    let bad = || "expected a number like 100 or 1.5".to_owned();
    if whole.is_empty() || frac.contains('.') || (number.contains('.') && frac.is_empty()) {
        return Err(bad());
    }
    let whole: u128 = whole.parse().map_err(|_| bad())?;
    let frac_digits = frac.len().min(18);
    let frac_value: u128 = if frac.is_empty() {
        0
    } else {
        frac[..frac_digits].parse().map_err(|_| bad())?
    };
    let scale = 10u128.pow(frac_digits as u32);
    let nanos = whole
        .checked_mul(unit_nanos)
        .and_then(|w| w.checked_add(frac_value * unit_nanos / scale))
        .and_then(|n| u64::try_from(n).ok())
        .ok_or("too long")?;
    Ok(Duration::from_nanos(nanos))
}

pub(super) fn overlaps(a: Ipv4Net, b: Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Docker's gateway: the first host address of the subnet, on the bridge.
pub(super) fn gateway_of(net: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.network()).saturating_add(1))
}

pub(super) fn join(addrs: &[Ipv4Addr]) -> String {
    let parts: Vec<String> = addrs.iter().map(Ipv4Addr::to_string).collect();
    parts.join(", ")
}

/// `c` for one replica, `c1`..`cN` for more.
pub(super) fn replica_names(group: &str, replicas: usize) -> Vec<String> {
    match replicas {
        1 => vec![group.to_owned()],
        n => (1..=n).map(|i| format!("{group}{i}")).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn invalid_names() {
        reported(
            &BASE.replace("\"t\"", "\"my lab\""),
            "invalid lab name",
            (1, 8),
        );
        let text = BASE.replace("[hosts.a]", "[hosts.\"a/b\"]");
        let d = reported(&text, "invalid host name: name `a/b` contains `/`", (4, 8));
        assert!(d.help.unwrap().contains("namespace"));
        let text = with("[servers.\"s s\"]\nhost = \"a\"\nport = 1\n");
        reported(&text, "invalid server name", (7, 10));
    }

    #[test]
    fn unknown_references_suggest_names() {
        let text = BASE.replace("lan = \"lan\"", "lan = \"lam\"");
        let d = reported(&text, "unknown LAN `lam`", (5, 7));
        assert_eq!(d.help.as_deref(), Some("did you mean `lan`?"));
        let text = with("[containers.c]\nhost = \"zzz\"\n");
        let d = reported(&text, "unknown host `zzz`", (8, 8));
        assert_eq!(d.help.as_deref(), Some("defined: `a`"));
        let text = with(
            r#"[containers.c]
host = "a"
replicas = 2
[clients.l]
containers = ["c3"]
connect = ["10.0.0.1:1"]
connections = 1
"#,
        );
        let d = reported(&text, "unknown container `c3`", (11, 15));
        assert!(d.help.unwrap().starts_with("did you mean"));
    }

    #[test]
    fn subnet_with_host_bits() {
        let text = BASE.replace("10.0.0.0/24", "10.0.0.1/24");
        let d = reported(&text, "subnet `10.0.0.1/24` has host bits set", (3, 10));
        assert_eq!(d.help.as_deref(), Some("did you mean 10.0.0.0/24?"));
        let text = BASE.replace("10.0.0.0/24", "10.0.0.0");
        reported(&text, "invalid subnet `10.0.0.0`", (3, 10));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("100s"), Ok(Duration::from_secs(100)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0.1s"), Ok(Duration::from_millis(100)));
        for bad in [
            "",
            "s",
            "1",
            "1.s",
            ".5s",
            "1..5s",
            "1d",
            "-1s",
            "99999999999999999999h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}
