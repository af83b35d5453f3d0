//! The balancing rule the runtime's workers apply and the compiler's tools reason
//! about (`tcprelay-cc route`, the weight lints): one implementation for both.
//!
//! Weighted least connections, as the original: the remote with the lowest
//! `active * 256 / weight` wins, the first in plan order on ties; a weight of 0 (an
//! operator's override) makes a remote a last resort.
//!
//! `balance = source` (and `source sticky`): weighted rendezvous hashing (highest
//! random weight) of the client's address over the remotes, so that every worker of
//! every relay with the same remotes puts them in the same order for a client,
//! whatever their order in the file, and a remote that leaves moves only its own
//! clients (docs/balance.md). Everything here is fixed and has no per-process key:
//!
//! - the client's key is FNV-1a 64 of its address's bytes in network order (4 for
//!   IPv4, an IPv4-mapped IPv6 address counting as its IPv4 address; 16 for IPv6);
//! - a remote's key is FNV-1a 64 of its `ADDRESS:PORT/PROTOCOL` text
//!   ([`crate::Remote::key`]);
//! - the pair's hash is `splitmix64(client ^ splitmix64(remote))`, its top 53 bits
//!   made a number `u` in (0, 1) (`(h >> 11) + 0.5) / 2^53`);
//! - the remote's score is `weight / -ln(u)`: the highest score first, equal scores
//!   by the remote keys' hashes (lower first), then plan order; a remote of weight 0
//!   (an operator's override) comes after every other, among them as with weight 1.

/// The load score of a remote with `active` sessions of this worker and `weight`:
/// lower is chosen first. Integer arithmetic, as the original (`1 * 256 / 3 = 85`).
pub fn score(active: u64, weight: u64) -> u64 {
    match weight {
        0 => u64::MAX,
        weight => active.saturating_mul(256) / weight,
    }
}

/// The weight a balancer uses for a remote's planned `weight`: a weight of 0 counts
/// as 1 (the plan validator refuses it anyway; only an operator's override, which
/// does not pass here, makes a remote a last resort).
pub fn weight(planned: u32) -> u64 {
    u64::from(planned.max(1))
}

/// The candidate to choose among `(index, score)` pairs in plan order: the lowest
/// score, the first on ties (only a strictly lower score displaces it). `None`
/// when there is no candidate.
pub fn lowest(candidates: impl IntoIterator<Item = (usize, u64)>) -> Option<(usize, u64)> {
    let mut best: Option<(usize, u64)> = None;
    for (index, score) in candidates {
        if best.is_none_or(|(_, s)| score < s) {
            best = Some((index, score));
        }
    }
    best
}

/// The method as the language writes it: `least-conn`, `source`, `source sticky`.
impl std::fmt::Display for crate::Balance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            crate::Balance::LeastConn => "least-conn",
            crate::Balance::Source => "source",
            crate::Balance::SourceSticky => "source sticky",
        })
    }
}

/// FNV-1a 64 of `bytes`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The splitmix64 finalizer: a bijection of 64-bit words whose every output bit
/// depends on every input bit.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A client's key for `source`: its address as [`crate::route::canonical`] takes
/// it (an IPv4-mapped IPv6 address is the IPv4 address).
pub fn client_key(ip: std::net::IpAddr) -> u64 {
    match crate::route::canonical(ip) {
        std::net::IpAddr::V4(v4) => fnv1a64(&v4.octets()),
        std::net::IpAddr::V6(v6) => fnv1a64(&v6.octets()),
    }
}

/// A remote's key for `source`: of its `ADDRESS:PORT/PROTOCOL` text.
pub fn remote_key(key: &str) -> u64 {
    fnv1a64(key.as_bytes())
}

/// The rendezvous score of remote `remote` (its key) with `weight` for client
/// `client` (its key): higher is tried first. Weight 0 scores as weight 1 here;
/// [`source_order`] puts such remotes last.
pub fn source_score(client: u64, remote: u64, weight: u64) -> f64 {
    let hash = splitmix64(client ^ splitmix64(remote));
    // The top 53 bits, as a number strictly between 0 and 1.
    let u = ((hash >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    weight.max(1) as f64 / -u.ln()
}

/// The order in which `balance = source` tries `remotes` (`(key, weight)` of each,
/// plan order) for `client`: indices into `remotes`, the remote chosen first at
/// the front. Any subset of the remotes keeps this relative order, so taking the
/// first that can take a session is the rendezvous choice among those that can.
pub fn source_order(client: u64, remotes: &[(u64, u64)]) -> Vec<usize> {
    let mut ranked: Vec<(usize, bool, f64, u64)> = remotes
        .iter()
        .enumerate()
        .map(|(index, &(key, weight))| (index, weight > 0, source_score(client, key, weight), key))
        .collect();
    ranked.sort_by(|a, b| {
        b.1.cmp(&a.1)
            .then(b.2.total_cmp(&a.2))
            .then(a.3.cmp(&b.3))
            .then(a.0.cmp(&b.0))
    });
    ranked.into_iter().map(|(index, ..)| index).collect()
}

/// The first of `remotes` (`(key, weight)`, plan order) in [`source_order`] for
/// `client` among those `eligible` says can take the session, without sorting or
/// collecting them: the worker's choice per attempt.
pub fn source_first(
    client: u64,
    remotes: impl IntoIterator<Item = (u64, u64)>,
    mut eligible: impl FnMut(usize) -> bool,
) -> Option<usize> {
    let mut best: Option<(usize, bool, f64, u64)> = None;
    for (index, (key, weight)) in remotes.into_iter().enumerate() {
        if !eligible(index) {
            continue;
        }
        let this = (index, weight > 0, source_score(client, key, weight), key);
        let better = best.is_none_or(|b| {
            this.1
                .cmp(&b.1)
                .then(this.2.total_cmp(&b.2))
                .then(b.3.cmp(&this.3))
                .then(b.0.cmp(&this.0))
                .is_gt()
        });
        if better {
            best = Some(this);
        }
    }
    best.map(|(index, ..)| index)
}

#[cfg(test)]
mod tests {
    use super::{lowest, score, weight};

    #[test]
    fn the_lowest_score_wins_and_the_first_on_ties() {
        assert_eq!(lowest([(0, 5), (1, 3), (2, 3)]), Some((1, 3)));
        assert_eq!(lowest([(4, 0), (7, 0)]), Some((4, 0)));
        assert_eq!(lowest([(0, u64::MAX)]), Some((0, u64::MAX)));
        assert_eq!(lowest(std::iter::empty()), None);
        assert_eq!(weight(0), 1);
        assert_eq!(weight(3), 3);
    }

    #[test]
    fn scores_are_integer_and_zero_weight_is_last() {
        assert_eq!(score(0, 1), 0);
        assert_eq!(score(1, 3), 85);
        assert_eq!(score(1, 2), 128);
        assert_eq!(
            score(1, 300),
            0,
            "a weight over 256 rounds one session down to 0"
        );
        assert_eq!(score(0, 0), u64::MAX);
        assert_eq!(score(u64::MAX, 1), u64::MAX, "saturates, never wraps");
    }
}

#[cfg(test)]
mod source_tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    /// 100,000 synthetic clients: 10.0.0.0 onwards, one address each.
    fn clients() -> impl Iterator<Item = u64> {
        (0..100_000u32).map(|n| client_key(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n))))
    }

    fn remotes(weights: &[u64]) -> Vec<(String, u64)> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| (format!("10.1.0.{}:8080/TCP", i + 1), w))
            .collect()
    }

    fn keyed(remotes: &[(String, u64)]) -> Vec<(u64, u64)> {
        remotes.iter().map(|(k, w)| (remote_key(k), *w)).collect()
    }

    /// Each remote's clients among the 100,000, and each client's remote.
    fn shares(remotes: &[(String, u64)]) -> (Vec<usize>, Vec<usize>) {
        let keyed = keyed(remotes);
        let mut counts = vec![0; remotes.len()];
        let chosen: Vec<usize> = clients()
            .map(|c| {
                let first = source_first(c, keyed.iter().copied(), |_| true).unwrap();
                counts[first] += 1;
                first
            })
            .collect();
        (counts, chosen)
    }

    fn check_shares(weights: &[u64]) {
        let (counts, _) = shares(&remotes(weights));
        let total: u64 = weights.iter().sum();
        for (i, (&count, &w)) in counts.iter().zip(weights).enumerate() {
            let share = count as f64 / 100_000.0;
            let want = w as f64 / total as f64;
            println!(
                "weights {weights:?}: remote {} share {:.2} % (its weight's {:.2} %)",
                i + 1,
                share * 100.0,
                want * 100.0
            );
            assert!(
                (share - want).abs() <= 0.02 * want,
                "remote {}: {share} is not within 2 % of {want}",
                i + 1
            );
        }
    }

    #[test]
    fn equal_weights_share_the_clients_equally() {
        check_shares(&[1, 1, 1, 1]);
    }

    #[test]
    fn weights_one_to_four_share_the_clients_by_weight() {
        check_shares(&[1, 2, 3, 4]);
    }

    #[test]
    fn removing_a_remote_moves_its_own_clients_only() {
        for weights in [[1u64, 1, 1, 1], [1, 2, 3, 4]] {
            let all = remotes(&weights);
            let (_, before) = shares(&all);
            for gone in 0..all.len() {
                let rest: Vec<(String, u64)> = all
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != gone)
                    .map(|(_, r)| r.clone())
                    .collect();
                let (_, after) = shares(&rest);
                // Indices of `rest` back to those of `all`.
                let back = |i: usize| if i >= gone { i + 1 } else { i };
                let mut moved = 0;
                for (b, a) in before.iter().zip(&after) {
                    if *b == gone {
                        moved += 1;
                        assert_ne!(back(*a), gone);
                    } else {
                        assert_eq!(*b, back(*a), "a client of another remote moved");
                    }
                }
                println!(
                    "weights {weights:?}: removing remote {} moves {:.2} % of the clients (its own), none of the others'",
                    gone + 1,
                    moved as f64 / 1000.0
                );
                if weights == [1, 1, 1, 1] {
                    assert!((moved as f64 / 100_000.0 - 0.25).abs() < 0.005, "{moved}");
                }
            }
        }
    }

    #[test]
    fn the_order_of_the_file_does_not_matter() {
        let all = remotes(&[1, 2, 3, 4]);
        let mut reversed = all.clone();
        reversed.reverse();
        let (ka, kr) = (keyed(&all), keyed(&reversed));
        for c in clients().take(1000) {
            let a: Vec<&str> = source_order(c, &ka)
                .iter()
                .map(|&i| all[i].0.as_str())
                .collect();
            let r: Vec<&str> = source_order(c, &kr)
                .iter()
                .map(|&i| reversed[i].0.as_str())
                .collect();
            assert_eq!(a, r);
        }
    }

    #[test]
    fn the_first_eligible_is_the_first_of_the_order_among_them() {
        let keyed = keyed(&remotes(&[1, 2, 3, 4]));
        for c in clients().take(1000) {
            let order = source_order(c, &keyed);
            assert_eq!(
                source_first(c, keyed.iter().copied(), |_| true),
                Some(order[0])
            );
            let skip = order[0];
            assert_eq!(
                source_first(c, keyed.iter().copied(), |i| i != skip),
                Some(order[1])
            );
            assert_eq!(source_first(c, keyed.iter().copied(), |_| false), None);
        }
    }

    #[test]
    fn weight_zero_is_last_and_mapped_addresses_are_ipv4() {
        let keyed = keyed(&remotes(&[0, 1]));
        for c in clients().take(100) {
            assert_eq!(source_order(c, &keyed), [1, 0]);
        }
        assert_eq!(
            client_key("::ffff:192.0.2.7".parse().unwrap()),
            client_key("192.0.2.7".parse().unwrap())
        );
        assert_ne!(
            client_key("192.0.2.7".parse().unwrap()),
            client_key("192.0.2.8".parse().unwrap())
        );
    }

    #[test]
    fn the_hashes_are_the_documented_ones() {
        // FNV-1a 64's published test values, and splitmix64's first output from
        // the seed 0 (the reference generator adds the constant first).
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(splitmix64(0), 0xe220_a839_7b1d_cdaf);
    }
}
