//! How a plan's load is shared among agent processes: each client's connections and its
//! container's port range cut into disjoint slices per process, where each slice's walk starts
//! so that containers sharing a NAT path do not walk the same ports at once, and how many
//! connections each server should expect. Pure.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::num::NonZeroU32;

use crate::lab::plan::{HostId, Plan};
use crate::nat::paths::HostPrediction;

/// Descriptors an agent needs besides its connections (stdio, epoll, signalfd, listener, slack).
pub const FD_RESERVE: u64 = 64;

/// Server processes get this much headroom (in quarters: 5/4), because SO_REUSEPORT spreads
/// connections by hash, not evenly.
const SERVER_HEADROOM_QUARTERS: u64 = 5;

/// Connections one agent process may hold under an open-files limit of `max_open_files`.
pub fn per_process(max_open_files: u64) -> u64 {
    max_open_files.saturating_sub(FD_RESERVE).max(1)
}

/// Processes of a built-in client container holding `connections`: never fewer than the file
/// asks (`asked`), nor than the open-files limit needs.
pub fn client_processes(connections: u32, asked: Option<NonZeroU32>, max_open_files: u64) -> u64 {
    let needed = u64::from(connections)
        .div_ceil(per_process(max_open_files))
        .max(1);
    needed.max(asked.map_or(1, |p| u64::from(p.get())))
}

/// Processes of a built-in server expecting `expected` connections, with the headroom the
/// SO_REUSEPORT hash needs; never fewer than the file asks.
pub fn server_processes(expected: u64, asked: Option<NonZeroU32>, max_open_files: u64) -> u64 {
    let needed = (expected * SERVER_HEADROOM_QUARTERS)
        .div_ceil(4 * per_process(max_open_files))
        .max(1);
    needed.max(asked.map_or(1, |p| u64::from(p.get())))
}

/// Connections the clients aim at a server (every address of its host, its port).
pub(super) fn expected_at_server(plan: &Plan, server: usize) -> u64 {
    let s = &plan.servers[server];
    let host = plan.host(s.host);
    let mut n = 0u64;
    for g in &plan.clients {
        for i in 0..g.containers.len() {
            let t = g.target_of(i);
            if t.port() == s.port.get() && host.addresses.contains(t.ip()) {
                n += u64::from(g.connections.get());
            }
        }
    }
    n
}

/// One client process's share of its container's load: its connections and the local ports it
/// walks for them, each inclusive range once, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessShare {
    pub connections: u32,
    pub ports: Vec<(u16, u16)>,
}

/// A built-in client container's use of a NAT path: what the walk plan needs of it.
struct Use {
    key: (usize, usize),
    container: usize,
    local: (u16, u16),
    connections: u32,
    processes: u64,
    path: Option<OnPath>,
}

/// A NAT path by host, translated address, destination address and port, and VM block.
type PathKey = (usize, u32, u32, u16, u16);

/// The path a container's connections leave on, the ports the NAT keeps there and how many
/// connections each of them carries.
#[derive(Debug, Clone, Copy)]
struct OnPath {
    key: PathKey,
    kept: (u16, u16),
    reuse: u32,
}

/// The port walks of every built-in client container, by (group index, index in group): the
/// connections and ports of each of its processes (`processes` says how many it has).
///
/// Ports are planned on the NAT path, not only on the container: a connection whose source
/// port lies in the range the NAT keeps and is free on the path leaves with it unchanged,
/// found at once, while any other port is searched for at random and can be missed near a
/// full range (kernel.md §2: 54,091 of an AWS gateway's 55,000 with a 1 s connect timeout,
/// when the walks were spaced on 64,512 instead). So each path's kept ports are dealt out
/// among the containers sharing it, each port to one container (to as many as the path has
/// addresses taken in turn), as many to each as it wants and a fair share when they want more
/// than there are: every port of a full path is then presented by some connection, and the
/// path fills exactly, whatever the connect timeout. A container walks its own ports of the
/// path first; what the path cannot hold comes after, from the rest of its range, and meets
/// a full path (its SYNs are dropped, as the lab shows). Containers whose own port ranges
/// do not cover the path's (the kernel's default 32768-60999 against a path of 64,512) leave
/// the rest of it to the NAT's search. Every port of a container goes to at most one of its
/// processes: a bound port is the container's, whatever the destination.
pub(super) fn client_walks(
    plan: &Plan,
    predicted: &[HostPrediction],
    processes: impl Fn(usize, usize) -> u64,
) -> HashMap<(usize, usize), Vec<ProcessShare>> {
    deal(plan, predicted, processes)
        .into_iter()
        .map(|d| {
            let shares = by_process(d.connections, &d.own, &d.rest, d.processes);
            (d.key, shares)
        })
        .collect()
}

/// Each built-in client container's ports, dealt out on its path (see [`client_walks`]).
fn deal(
    plan: &Plan,
    predicted: &[HostPrediction],
    processes: impl Fn(usize, usize) -> u64,
) -> Vec<Dealt> {
    let mut uses = Vec::new();
    for (gi, group) in plan.clients.iter().enumerate() {
        if group.command.is_some() {
            continue;
        }
        for (i, &cid) in group.containers.iter().enumerate() {
            let c = plan.container(cid);
            let dst = group.target_of(i);
            let ports = c.local_ports();
            uses.push(Use {
                key: (gi, i),
                container: cid.0,
                local: (ports.lo(), ports.hi()),
                connections: group.connections.get(),
                processes: processes(gi, i),
                path: path_of(predicted, c.host, c.network, c.address, dst),
            });
        }
    }
    let mut taken: HashMap<usize, Vec<bool>> = HashMap::new();
    let mut own: Vec<Vec<(u16, u16)>> = vec![Vec::new(); uses.len()];
    // Each path's kept ports, dealt out.
    let mut paths: std::collections::BTreeMap<_, Vec<usize>> = Default::default();
    for (u, x) in uses.iter().enumerate() {
        if let Some(on) = x.path {
            paths.entry(on.key).or_default().push(u);
        }
    }
    for sharing in paths.values() {
        let Some(OnPath { kept, reuse, .. }) = uses[sharing[0]].path else {
            continue;
        };
        let capacity = u64::from(kept.1 - kept.0) + 1;
        let wants: Vec<u64> = sharing
            .iter()
            .map(|&u| {
                let x = &uses[u];
                let both = overlap(kept, x.local).map_or(0, |(a, b)| u64::from(b - a) + 1);
                u64::from(x.connections).min(both)
            })
            .collect();
        let shares = fair_shares(&wants, capacity * u64::from(reuse));
        let mut on_path = vec![0u32; 1 << 16];
        let mut cursor = kept.0;
        for (&u, share) in sharing.iter().zip(shares) {
            let x = &uses[u];
            let Some(both) = overlap(kept, x.local) else {
                continue;
            };
            let mine = taken
                .entry(x.container)
                .or_insert_with(|| vec![false; 1 << 16]);
            let start = cursor.clamp(both.0, both.1);
            let mut got = Vec::new();
            for p in circle(both, start) {
                if got.len() as u64 == share {
                    break;
                }
                let (pi, seen) = (usize::from(p), &mut on_path[usize::from(p)]);
                if *seen < reuse && !mine[pi] {
                    *seen += 1;
                    mine[pi] = true;
                    got.push(p);
                }
            }
            if let Some(&last) = got.last() {
                cursor = if last >= kept.1 { kept.0 } else { last + 1 };
            }
            own[u] = ranges_of(&got);
        }
    }
    // The rest of each container's range: first what each use needs beyond its path's ports,
    // then the slack, shared out, so that a port someone else holds only moves the walk on.
    let mut rest: Vec<Vec<(u16, u16)>> = vec![Vec::new(); uses.len()];
    let mut by_container: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
    for (u, x) in uses.iter().enumerate() {
        by_container.entry(x.container).or_default().push(u);
    }
    for (container, on) in by_container {
        let local = uses[on[0]].local;
        let mine = taken
            .entry(container)
            .or_insert_with(|| vec![false; 1 << 16]);
        let mut free = circle(local, local.0).filter(|&p| !mine[usize::from(p)]);
        let mut lists: Vec<Vec<u16>> = vec![Vec::new(); on.len()];
        for (k, &u) in on.iter().enumerate() {
            let need = u64::from(uses[u].connections).saturating_sub(count(&own[u]));
            lists[k].extend(
                free.by_ref()
                    .take(usize::try_from(need).unwrap_or(usize::MAX)),
            );
        }
        let slack: Vec<u16> = free.collect();
        let n = on.len();
        for (k, list) in lists.iter_mut().enumerate() {
            list.extend_from_slice(&slack[slack.len() * k / n..slack.len() * (k + 1) / n]);
        }
        for (k, &u) in on.iter().enumerate() {
            rest[u] = ranges_of(&lists[k]);
        }
    }
    uses.iter()
        .zip(own)
        .zip(rest)
        .map(|((x, own), rest)| Dealt {
            key: x.key,
            connections: x.connections,
            processes: x.processes,
            own,
            rest,
        })
        .collect()
}

/// A container's ports as dealt: those of its NAT path, walked first, then the rest.
#[derive(Debug)]
struct Dealt {
    key: (usize, usize),
    connections: u32,
    processes: u64,
    own: Vec<(u16, u16)>,
    rest: Vec<(u16, u16)>,
}

/// The path a container's connections to `dst` leave on, with the ports the NAT keeps there
/// and the connections each carries; None when nothing keeps ports (no NAT, `random_fully`).
fn path_of(
    predicted: &[HostPrediction],
    host: HostId,
    network: crate::lab::plan::NetworkId,
    src: Ipv4Addr,
    dst: SocketAddrV4,
) -> Option<OnPath> {
    let hp = predicted
        .iter()
        .find(|h| h.host == host && h.network == network)?;
    let flow = hp.prediction.flow(src, dst)?;
    // Untranslated (to the host itself, `nat = "none"`, a VM without a block).
    if flow.translated == src {
        return None;
    }
    let kept = hp.nat.kept_ports(flow.vm_ports)?;
    let key = (
        host.0,
        u32::from(flow.translated),
        u32::from(*dst.ip()),
        dst.port(),
        flow.vm_ports.map_or(0, |b| b.first),
    );
    Some(OnPath {
        key,
        kept,
        reuse: hp.nat.port_reuse(),
    })
}

/// Shares of `total` for demands `wants`: each gets what it wants when all fit, else the
/// smallest wants in full and the rest an equal split of what is left (water-filling).
fn fair_shares(wants: &[u64], total: u64) -> Vec<u64> {
    let mut order: Vec<usize> = (0..wants.len()).collect();
    order.sort_by_key(|&i| wants[i]);
    let mut shares = vec![0; wants.len()];
    let mut left = total;
    for (k, &i) in order.iter().enumerate() {
        let others = (wants.len() - k) as u64;
        let fair = left.div_ceil(others);
        shares[i] = wants[i].min(fair);
        left -= shares[i];
    }
    shares
}

/// The overlap of two inclusive ranges.
fn overlap(a: (u16, u16), b: (u16, u16)) -> Option<(u16, u16)> {
    let (lo, hi) = (a.0.max(b.0), a.1.min(b.1));
    (lo <= hi).then_some((lo, hi))
}

/// Every port of the inclusive `range` once, from `start` up, wrapping to its bottom.
fn circle(range: (u16, u16), start: u16) -> impl Iterator<Item = u16> {
    let start = start.clamp(range.0, range.1);
    (start..=range.1).chain(range.0..start)
}

/// Ports in walk order as ranges of consecutive ports.
fn ranges_of(ports: &[u16]) -> Vec<(u16, u16)> {
    let mut out: Vec<(u16, u16)> = Vec::new();
    for &p in ports {
        match out.last_mut() {
            Some((_, hi)) if hi.checked_add(1) == Some(p) => *hi = p,
            _ => out.push((p, p)),
        }
    }
    out
}

/// Ports in a list of inclusive ranges.
fn count(ranges: &[(u16, u16)]) -> u64 {
    ranges.iter().map(|&(a, b)| u64::from(b - a) + 1).sum()
}

/// Ports `from..to` (by position) of a list of ranges.
fn cut(ranges: &[(u16, u16)], from: u64, to: u64) -> Vec<(u16, u16)> {
    let mut out = Vec::new();
    let mut at = 0u64;
    for &(a, b) in ranges {
        let len = u64::from(b - a) + 1;
        let (lo, hi) = (from.max(at), to.min(at + len));
        if lo < hi {
            // Both offsets lie within this range, so the ports fit in u16.
            out.push((
                (u64::from(a) + lo - at) as u16,
                (u64::from(a) + hi - 1 - at) as u16,
            ));
        }
        at += len;
    }
    out
}

/// A use's connections and ports dealt out to `processes` processes: near-equal connections,
/// and to each, in proportion, a consecutive part of the path's ports and then of the rest.
/// Never more processes than connections or ports.
fn by_process(
    connections: u32,
    own: &[(u16, u16)],
    rest: &[(u16, u16)],
    processes: u64,
) -> Vec<ProcessShare> {
    let (n_own, n_rest) = (count(own), count(rest));
    let parts = processes
        .max(1)
        .min(u64::from(connections.max(1)))
        .min((n_own + n_rest).max(1));
    let c = u64::from(connections).max(1);
    let conns: Vec<u64> = (0..parts)
        .map(|k| c / parts + u64::from(k < c % parts))
        .collect();
    // The path's ports in proportion to the connections; the rest in proportion to what each
    // still needs (so that none runs out while another has ports to spare), evenly if none.
    let mut own_at = vec![0u64];
    for n in &conns {
        own_at.push(own_at[own_at.len() - 1] + n);
    }
    let own_at: Vec<u64> = own_at.iter().map(|&x| n_own * x / c).collect();
    let needs: Vec<u64> = (0..conns.len())
        .map(|k| conns[k].saturating_sub(own_at[k + 1] - own_at[k]))
        .collect();
    let need: u64 = needs.iter().sum();
    let mut rest_at = vec![0u64];
    for (k, n) in needs.iter().enumerate() {
        rest_at.push(rest_at[k] + if need == 0 { 1 } else { *n });
    }
    let whole = if need == 0 { parts } else { need };
    let rest_at: Vec<u64> = rest_at.iter().map(|&x| n_rest * x / whole).collect();
    (0..conns.len())
        .map(|k| {
            let mut ports = cut(own, own_at[k], own_at[k + 1]);
            ports.extend(cut(rest, rest_at[k], rest_at[k + 1]));
            ProcessShare {
                connections: u32::try_from(conns[k]).unwrap_or(u32::MAX),
                ports,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processes_follow_the_open_files_limit() {
        // 20,000 files here: 19,936 connections per process.
        assert_eq!(client_processes(19_936, None, 20_000), 1);
        assert_eq!(client_processes(19_937, None, 20_000), 2);
        assert_eq!(client_processes(10, NonZeroU32::new(3), 20_000), 3);
        // A million on one server: 1.25M / 19,936.
        assert_eq!(server_processes(1_000_000, None, 20_000), 63);
        assert_eq!(server_processes(0, None, 20_000), 1);
        assert_eq!(server_processes(75_000, NonZeroU32::new(8), 20_000), 8);
    }

    /// The plan of labs/`lab`.
    fn plan_of(lab: &str) -> Plan {
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("labs")
            .join(lab);
        let text = std::fs::read_to_string(&file).expect("lab file");
        let source = crate::lab::Source::new(file.display().to_string(), text);
        crate::lab::validate::load(&source, &Default::default())
            .expect("loads")
            .plan
    }

    fn walks_of(lab: &str) -> (Plan, HashMap<(usize, usize), Vec<ProcessShare>>) {
        let plan = plan_of(lab);
        let predicted = crate::nat::paths::predict_lab(&plan);
        let walks = client_walks(&plan, &predicted, |gi, _| {
            let g = &plan.clients[gi];
            client_processes(g.connections.get(), g.processes, 20_000)
        });
        (plan, walks)
    }

    fn ports(ranges: &[(u16, u16)]) -> Vec<u16> {
        ranges.iter().flat_map(|&(a, b)| a..=b).collect()
    }

    /// Every container's processes: connections adding up to the group's, ports disjoint
    /// within the container, and (for a full walk) as many ports as connections at least.
    fn assert_sound(plan: &Plan, walks: &HashMap<(usize, usize), Vec<ProcessShare>>) {
        let mut by_container: HashMap<usize, std::collections::HashSet<u16>> = HashMap::new();
        for (&(gi, i), shares) in walks {
            let g = &plan.clients[gi];
            let c = plan.container(g.containers[i]);
            let total: u32 = shares.iter().map(|s| s.connections).sum();
            assert_eq!(total, g.connections.get(), "{}", c.name);
            let seen = by_container.entry(g.containers[i].0).or_default();
            let range = c.local_ports();
            for s in shares {
                for p in ports(&s.ports) {
                    assert!(seen.insert(p), "{}: port {p} twice", c.name);
                    assert!(range.lo() <= p && p <= range.hi(), "{}: {p}", c.name);
                }
            }
        }
    }

    /// Each container's ports of its path, as dealt (walked first by its processes).
    fn dealt_on_path(lab: &str) -> Vec<Vec<u16>> {
        let plan = plan_of(lab);
        let predicted = crate::nat::paths::predict_lab(&plan);
        deal(&plan, &predicted, |_, _| 2)
            .iter()
            .map(|d| ports(&d.own))
            .collect()
    }

    #[test]
    fn fair_shares_fill_from_the_smallest_want() {
        assert_eq!(fair_shares(&[30_000, 30_000], 55_000), [27_500, 27_500]);
        assert_eq!(fair_shares(&[10, 100, 100], 100), [10, 45, 45]);
        assert_eq!(fair_shares(&[10, 20], 100), [10, 20], "all fit");
        assert_eq!(fair_shares(&[5, 5, 5], 10), [4, 3, 3]);
        assert_eq!(fair_shares(&[], 10), Vec::<u64>::new());
    }

    #[test]
    fn processes_get_their_connections_and_consecutive_parts_of_each_list() {
        let s = by_process(25_000, &[(1024, 22_527)], &[(22_528, 65_535)], 2);
        assert_eq!(
            s.iter().map(|p| p.connections).collect::<Vec<_>>(),
            [12_500, 12_500]
        );
        assert_eq!(s[0].ports[0], (1024, 11_775));
        assert_eq!(s[1].ports[0], (11_776, 22_527));
        // Each needs 1,752 more; the rest is shared in proportion, all of it.
        let all: usize = s.iter().map(|p| ports(&p.ports).len()).sum();
        assert_eq!(all, 64_512);
        assert!(s.iter().all(|p| ports(&p.ports).len() >= 12_500));
        assert_eq!(
            by_process(7, &[], &[(100, 102)], 5).len(),
            3,
            "never more parts than ports"
        );
        assert_eq!(
            by_process(10, &[], &[(1, 100)], 1),
            [ProcessShare {
                connections: 10,
                ports: vec![(1, 100)]
            }]
        );
    }

    /// Deals `lab`'s ports and checks that its one full path's kept ports `lo..=hi` are dealt
    /// `each` to every container sharing it, each port once; returns the walks.
    fn assert_dealt_once(
        lab: &str,
        each: usize,
        (lo, hi): (u16, u16),
    ) -> HashMap<(usize, usize), Vec<ProcessShare>> {
        let (plan, walks) = walks_of(lab);
        assert_sound(&plan, &walks);
        let dealt = dealt_on_path(lab);
        assert!(dealt.iter().all(|d| d.len() == each), "{lab}");
        let mut all: Vec<u16> = dealt.concat();
        all.sort();
        all.dedup();
        assert_eq!(
            all.len(),
            usize::from(hi - lo) + 1,
            "{lab}: each port of the path once"
        );
        assert_eq!((all[0], all[all.len() - 1]), (lo, hi));
        walks
    }

    #[test]
    fn the_articles_wall_is_dealt_out_so_every_port_of_the_path_is_presented_once() {
        // Lab 02: three containers x 25,000 through one masquerade path of 64,512 ports.
        assert_dealt_once("02-cross-host.toml", 21_504, (1024, 65_535));
    }

    #[test]
    fn an_aws_gateways_55000_ports_are_dealt_out_on_its_own_range() {
        // Lab 11: two instances x 30,000 through one address: 1024-56023.
        let walks = assert_dealt_once("11-aws-nat-gateway.toml", 27_500, (1024, 56_023));
        // Each process walks its part of the gateway's ports before any other.
        for shares in walks.values() {
            for s in shares {
                assert!(s.ports[0].0 <= 56_023, "{:?}", s.ports);
            }
        }
    }

    #[test]
    fn containers_on_different_paths_are_not_dealt_against_each_other() {
        // The million: 10 containers per host over 5 server addresses, pairs on a path, each
        // wanting less than its half.
        let (plan, walks) = walks_of("million.toml");
        assert_sound(&plan, &walks);
        let containers: usize = plan.clients.iter().map(|g| g.containers.len()).sum();
        assert_eq!(walks.len(), containers);
        // Lab 05: an SNAT pool; the pool hash puts at most two containers on each path.
        let (plan, walks) = walks_of("05-both-fixes.toml");
        assert_sound(&plan, &walks);
    }

    #[test]
    fn a_container_range_narrower_than_the_path_limits_it_alone() {
        // Lab 06: the kernel's default 32768-60999 per container, 28,232 ports each.
        let (plan, walks) = walks_of("06-container-ports.toml");
        assert_sound(&plan, &walks);
        for shares in walks.values() {
            let n: usize = shares.iter().map(|s| ports(&s.ports).len()).sum();
            assert_eq!(n, 28_232);
        }
    }
}
