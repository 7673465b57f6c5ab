//! How a plan's load is shared among agent processes: each client's connections and its
//! container's port range cut into disjoint slices per process, where each slice's walk starts
//! so that containers sharing a NAT path do not walk the same ports at once, and how many
//! connections each server should expect. Pure.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::num::NonZeroU32;

use crate::lab::plan::{HostId, Plan};
use crate::nat::paths::{HostPrediction, predicted_source};

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

/// Splits `connections` and the port range `ports` into `parts` near-equal shares with
/// disjoint, contiguous port slices.
pub(super) fn split(connections: u32, ports: (u16, u16), parts: u64) -> Vec<(u32, (u16, u16))> {
    let parts = u32::try_from(parts.max(1)).unwrap_or(u32::MAX);
    let span = u32::from(ports.1) - u32::from(ports.0) + 1;
    let parts = parts.min(span).min(connections.max(1));
    (0..parts)
        .map(|i| {
            let conns = connections / parts + u32::from(i < connections % parts);
            let lo = u32::from(ports.0) + span * i / parts;
            let hi = u32::from(ports.0) + span * (i + 1) / parts - 1;
            // Both bounds lie within `ports`, so they fit in u16.
            (conns, (lo as u16, hi as u16))
        })
        .collect()
}

/// For each client container, as (group index, index in group): its rank among the containers
/// of its host that share its NAT path (the same predicted translated source and destination),
/// and how many those are.
pub(super) fn walk_starts(
    plan: &Plan,
    predicted: &[HostPrediction],
) -> HashMap<(usize, usize), (u32, u32)> {
    // Containers share a path when they leave with the same translated source for the same
    // destination: with an SNAT pool, only those the kernel hashes to the same pool address.
    // Spacing every container of the host that goes to the destination instead would space
    // them closer than needed and make their walks overlap.
    type PathKey = (HostId, Option<Ipv4Addr>, SocketAddrV4);
    let mut paths: HashMap<PathKey, Vec<(usize, usize)>> = HashMap::new();
    for (gi, group) in plan.clients.iter().enumerate() {
        for (i, &cid) in group.containers.iter().enumerate() {
            let c = plan.container(cid);
            let dst = group.target_of(i);
            let translated = predicted_source(predicted, c.address, dst);
            paths
                .entry((c.host, translated, dst))
                .or_default()
                .push((gi, i));
        }
    }
    let mut starts = HashMap::new();
    for sharing in paths.into_values() {
        let n = u32::try_from(sharing.len()).unwrap_or(u32::MAX);
        for (rank, key) in (0u32..).zip(sharing) {
            starts.insert(key, (rank, n));
        }
    }
    starts
}

/// The port `rank/sharing` of the way into the inclusive `slice`.
pub(super) fn spaced(slice: (u16, u16), rank: u32, sharing: u32) -> u16 {
    let span = u64::from(slice.1.saturating_sub(slice.0)) + 1;
    let offset = span * u64::from(rank) / u64::from(sharing.max(1));
    // rank < sharing, so the offset lies within the slice; if not, the walker starts at its bottom.
    u16::try_from(u64::from(slice.0) + offset).unwrap_or(slice.0)
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

    #[test]
    fn split_shares_connections_and_disjoint_port_slices() {
        let s = split(25_000, (1024, 65_535), 2);
        assert_eq!(
            s,
            vec![(12_500, (1024, 33_279)), (12_500, (33_280, 65_535))]
        );
        let s = split(30_000, (32_768, 60_999), 2);
        assert_eq!(s.iter().map(|x| x.0).sum::<u32>(), 30_000);
        let ports: u32 = s
            .iter()
            .map(|x| u32::from(x.1.1) - u32::from(x.1.0) + 1)
            .sum();
        assert_eq!(ports, 28_232);
        assert_eq!(
            split(7, (100, 102), 5).len(),
            3,
            "never more parts than ports"
        );
        assert_eq!(split(10, (1, 100), 1), vec![(10, (1, 100))]);
    }

    #[test]
    fn containers_sharing_a_path_start_evenly_spaced() {
        assert_eq!(spaced((1024, 65_535), 0, 2), 1024);
        assert_eq!(spaced((1024, 65_535), 1, 2), 33_280);
        assert_eq!(spaced((1024, 1026), 2, 3), 1026);
        assert_eq!(spaced((100, 100), 0, 1), 100);
        assert_eq!(
            spaced((1024, 65_535), 0, 0),
            1024,
            "no sharing count: the bottom"
        );
    }

    #[test]
    fn walk_starts_rank_containers_per_host_and_destination() {
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("labs/million.toml");
        let text = std::fs::read_to_string(&file).expect("labs/million.toml");
        let source = crate::lab::Source::new(file.display().to_string(), text);
        let loaded = crate::lab::validate::load(&source, &Default::default()).expect("loads");
        let plan = &loaded.plan;
        let starts = walk_starts(plan, &crate::nat::paths::predict_lab(plan));
        let containers: usize = plan.clients.iter().map(|g| g.containers.len()).sum();
        assert_eq!(starts.len(), containers);
        // 10 containers per host over 5 server addresses: pairs share a path.
        assert!(
            starts.values().all(|&(rank, n)| n == 2 && rank < 2),
            "{starts:?}"
        );
        let firsts = starts.values().filter(|&&(rank, _)| rank == 0).count();
        assert_eq!(firsts * 2, containers);
    }

    #[test]
    fn walk_starts_rank_only_containers_the_snat_pool_puts_on_one_path() {
        // Lab 05: six containers, two server addresses, a pool of two source addresses; the
        // pool hash puts at most two containers on each of the four paths.
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("labs/05-both-fixes.toml");
        let text = std::fs::read_to_string(&file).expect("labs/05-both-fixes.toml");
        let source = crate::lab::Source::new(file.display().to_string(), text);
        let loaded = crate::lab::validate::load(&source, &Default::default()).expect("loads");
        let starts = walk_starts(&loaded.plan, &crate::nat::paths::predict_lab(&loaded.plan));
        assert_eq!(starts.len(), 6);
        assert!(
            starts.values().all(|&(rank, n)| n <= 2 && rank < n),
            "{starts:?}"
        );
        // Three containers go to each server address; by destination alone they would be
        // spaced a third of the range apart, closer than the 12,500 ports each walks.
        let per_process_slice = (1024u16, 33_279u16);
        for &(rank, n) in starts.values() {
            let first = spaced(per_process_slice, rank, n);
            assert!(first == 1024 || first >= 1024 + 12_500, "{first}");
        }
    }
}
