//! Which server addresses a plan uses: in slot order (container j of each host connects to
//! slot j mod K), and, behind an SNAT pool, addresses for which the kernel's pool-address hash
//! (`find_best_ips_proto`, [`pool_address`]) spreads each slot's containers evenly over the
//! pool. The hash depends only on the container's and the server's addresses, and every client
//! host gives its containers the same addresses (172.17.0.2, .3, ...), so one choice spreads
//! every host alike. Pure.

use std::net::Ipv4Addr;

use super::write::container_address;
use crate::nat::predict::pool_address;

/// Server addresses a plan may take: .2-.99 of the lab's /24, the labs' .5, .15, ... first.
pub const SERVER_CANDIDATES: usize = 98;

/// The candidates in the order they are preferred.
pub fn candidates() -> Vec<Ipv4Addr> {
    let preferred = (0..10u8).map(|i| 5 + 10 * i);
    let rest = (2..=99u8).filter(|o| o % 10 != 5);
    preferred
        .chain(rest)
        .map(|o| Ipv4Addr::new(192, 168, 49, o))
        .collect()
}

/// The pool index (0..sources) the kernel gives container `j`'s connections to `server`.
pub fn pool_index(j: u32, server: Ipv4Addr, sources: u32) -> u32 {
    let last = Ipv4Addr::from(sources.saturating_sub(1));
    u32::from(pool_address(
        Ipv4Addr::UNSPECIFIED,
        last,
        container_address(j),
        server,
        false,
    ))
}

/// How one server slot's containers spread over the pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotSpread {
    pub server: Ipv4Addr,
    /// Containers per pool address, in pool order.
    pub counts: Vec<u32>,
    /// Candidate addresses that spread them as evenly (this one included).
    pub as_even: usize,
}

/// Server addresses for `containers` containers per host over `slots` server addresses and
/// `sources` source addresses, each container holding up to `per_container`, no path more than
/// `fill`; with a pool, also how many containers of each slot the hash puts on each pool
/// address. `None` when no choice keeps every path under `fill`.
pub fn choose(
    containers: u32,
    slots: usize,
    sources: u32,
    per_container: u64,
    fill: u64,
) -> Option<(Vec<Ipv4Addr>, Vec<SlotSpread>)> {
    let members = |s: usize| (0..containers).filter(move |j| *j as usize % slots == s);
    let fits = |most: u32| u64::from(most) * per_container <= fill;
    let all = candidates();
    if sources <= 1 {
        let most = members(0).count() as u32;
        return fits(most).then(|| (all.into_iter().take(slots).collect(), Vec::new()));
    }
    let mut servers = Vec::with_capacity(slots);
    let mut spread = Vec::with_capacity(slots);
    for s in 0..slots {
        let scored: Vec<(u32, Ipv4Addr, Vec<u32>)> = all
            .iter()
            .filter(|a| !servers.contains(*a))
            .map(|&a| {
                let mut counts = vec![0u32; sources as usize];
                for j in members(s) {
                    counts[pool_index(j, a, sources) as usize] += 1;
                }
                (counts.iter().copied().max().unwrap_or(0), a, counts)
            })
            .collect();
        // The first of the most even: min_by_key keeps the first of equals.
        let (most, server, counts) = scored.iter().min_by_key(|(most, _, _)| *most)?.clone();
        if !fits(most) {
            return None;
        }
        servers.push(server);
        spread.push(SlotSpread {
            server,
            counts,
            as_even: scored.iter().filter(|(m, _, _)| *m == most).count(),
        });
    }
    Some((servers, spread))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_are_the_labs_addresses_first_and_all_distinct() {
        let c = candidates();
        assert_eq!(c.len(), SERVER_CANDIDATES);
        assert_eq!(&c[..3], &[ip(5), ip(15), ip(25)]);
        let mut sorted = c.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), c.len());
    }

    fn ip(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(192, 168, 49, last)
    }

    #[test]
    fn the_pool_index_is_the_kernels_choice_as_measured() {
        // README, lab 04: 172.17.0.2-.4 to 192.168.49.5 over the pool .6-.8 leave as .6, .8, .7.
        let got: Vec<u32> = (0..3).map(|j| pool_index(j, ip(5), 3)).collect();
        assert_eq!(got, [0, 2, 1]);
    }

    #[test]
    fn a_pool_gets_a_server_address_that_spreads_the_containers() {
        // Six containers on a pool of three, 25,000 each: at most two per path.
        let (servers, spread) = choose(6, 1, 3, 25_000, 60_480).expect("a choice");
        assert_eq!(spread[0].counts, vec![2, 2, 2]);
        assert!(spread[0].as_even >= 1 && spread[0].as_even < SERVER_CANDIDATES);
        let at = servers[0];
        let mut counts = [0; 3];
        for j in 0..6 {
            counts[pool_index(j, at, 3) as usize] += 1;
        }
        assert_eq!(counts, [2, 2, 2]);
        // Three on one address would be 75,000: never chosen, and a path that cannot hold
        // even one container has no choice at all.
        assert_eq!(choose(1, 1, 2, 70_000, 60_480), None);
    }

    #[test]
    fn masquerade_takes_the_first_addresses_when_the_slots_fit() {
        let (servers, spread) = choose(9, 5, 1, 27_778, 60_480).expect("fits");
        assert_eq!(servers, [ip(5), ip(15), ip(25), ip(35), ip(45)]);
        assert!(spread.is_empty());
        assert_eq!(choose(9, 4, 1, 27_778, 60_480), None, "three on a path");
    }
}
