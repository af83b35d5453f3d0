//! The data path's decisions, from the plan alone: which listener a connection
//! reaches, whether a PROXY header's sender is trusted, which access rule decides
//! about a client, and in which order the balancing tries the remotes. The runtime's
//! workers make their decisions with these functions, and `tcprelay-cc route`
//! explains a client's path with the same ones, so the two cannot disagree.
//!
//! Access rules (`acl = permit|deny [not] NETWORK[/PREFIX]` in the spawnd section)
//! are checked on every client of an IP listener, before anything is read from it or
//! connected for it. First match wins; when there are rules and none matches, the
//! client is denied. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is matched as
//! the IPv4 address it is, on both sides of a rule.

use crate::balance;
use crate::{AclRule, ListenAddress, Listener, Network, Protocol};
use std::net::{IpAddr, SocketAddr};

/// What the access rules say about a client, and which rule said it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// The index of the deciding rule in the plan's list; `None` when no rule
    /// matched (then the client is permitted only if there are no rules at all).
    pub rule: Option<usize>,
    pub permit: bool,
}

/// The verdict of `rules` on `client`: the first rule that matches decides; with no
/// rules everyone is permitted; with rules and no match the client is denied.
pub fn decide(rules: &[AclRule], client: IpAddr) -> Verdict {
    let client = canonical(client);
    match rules
        .iter()
        .position(|r| contains(r.network, r.prefix, client) != r.negate)
    {
        Some(index) => Verdict {
            rule: Some(index),
            permit: rules[index].permit,
        },
        None => Verdict {
            rule: None,
            permit: rules.is_empty(),
        },
    }
}

/// Whether `rules` let `client` in.
pub fn permits(rules: &[AclRule], client: IpAddr) -> bool {
    decide(rules, client).permit
}

/// Whether `peer` may send PROXY protocol headers (`accept proxy from`): it is in
/// one of the networks, or there are none.
pub fn trusted(from: &[Network], peer: IpAddr) -> bool {
    let peer = canonical(peer);
    from.is_empty() || from.iter().any(|n| contains(n.address, n.prefix, peer))
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is; any other unchanged.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Whether `ip` is in `network/prefix` (never across address families; the address
/// taken canonical, the network as [`network_range`] reads it).
pub fn contains(network: IpAddr, prefix: u8, ip: IpAddr) -> bool {
    let range = network_range(network, prefix);
    let (ipv4, value) = match canonical(ip) {
        IpAddr::V4(v4) => (true, u128::from(u32::from(v4))),
        IpAddr::V6(v6) => (false, u128::from(v6)),
    };
    range.ipv4 == ipv4 && range.first <= value && value <= range.last
}

/// The addresses of a network as the access rules see them: an inclusive range of
/// one family, an IPv4 address as its 32-bit value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetRange {
    pub ipv4: bool,
    pub first: u128,
    pub last: u128,
}

/// The range of `network/prefix`. A v4-mapped network whose prefix covers the 96
/// bits of the mapping (`::ffff:10.0.0.0/104`) is the IPv4 network it maps
/// (`10.0.0.0/8`), as a v4-mapped client is the IPv4 client it maps; with a shorter
/// prefix it is the IPv6 network written. A prefix over the family's width is taken
/// as the width.
pub fn network_range(network: IpAddr, prefix: u8) -> NetRange {
    let (ipv4, bits, width, prefix) = match network {
        IpAddr::V4(v4) => (true, u128::from(u32::from(v4)), 32, u32::from(prefix)),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) if prefix >= 96 => {
                (true, u128::from(u32::from(v4)), 32, u32::from(prefix) - 96)
            }
            _ => (false, u128::from(v6), 128, u32::from(prefix)),
        },
    };
    let host = host_mask(prefix.min(width), width);
    NetRange {
        ipv4,
        first: bits & !host,
        last: bits | host,
    }
}

/// The bits of a `width`-bit address below its `prefix` leading bits.
fn host_mask(prefix: u32, width: u32) -> u128 {
    let all = if width == 128 {
        u128::MAX
    } else {
        (1u128 << width) - 1
    };
    if prefix >= width {
        0
    } else {
        all >> prefix
    }
}

/// The listener of `listeners` that takes a connection of `protocol` to `to`, as
/// the kernel chooses among the sockets the runtime binds: a listener bound to
/// exactly that address and port before one bound to the wildcard address of the
/// family (`0.0.0.0`, `::`) on that port. IPv6 listeners are bound v6-only, so an
/// IPv4 destination (or an IPv4-mapped one) reaches IPv4 listeners only. A Unix
/// destination is the listener bound to that path. `None`: nothing listens there.
pub fn listener_for(
    listeners: &[Listener],
    to: &ListenAddress,
    protocol: Protocol,
) -> Option<usize> {
    let of_protocol = |l: &&Listener| l.protocol == protocol;
    match to {
        ListenAddress::Unix(path) => listeners
            .iter()
            .position(|l| matches!(&l.address, ListenAddress::Unix(p) if p == path)),
        ListenAddress::Inet(to) => {
            let to = SocketAddr::new(canonical(to.ip()), to.port());
            let inet = |want: &dyn Fn(&SocketAddr) -> bool| {
                listeners.iter().enumerate().find_map(|(index, l)| {
                    Some(l).filter(of_protocol).and_then(|l| match &l.address {
                        ListenAddress::Inet(bound) if want(bound) => Some(index),
                        _ => None,
                    })
                })
            };
            inet(&|bound| *bound == to).or_else(|| {
                inet(&|bound| {
                    bound.port() == to.port()
                        && bound.ip().is_unspecified()
                        && bound.is_ipv4() == to.is_ipv4()
                })
            })
        }
    }
}

/// The order in which one session tries remotes with these `(weight, active)`
/// loads (the weight in use, the worker's sessions on the remote): each attempt
/// takes the remote with the lowest [`balance::score`] among those not tried yet,
/// the first in plan order on ties ([`balance::lowest`], the workers' own rule), and
/// a failed attempt leaves the others' loads as they were.
pub fn order(loads: &[(u64, u64)]) -> Vec<usize> {
    let mut tried = Vec::with_capacity(loads.len());
    while let Some((index, _)) = balance::lowest(
        loads
            .iter()
            .enumerate()
            .filter(|(index, _)| !tried.contains(index))
            .map(|(index, &(weight, active))| (index, balance::score(active, weight))),
    ) {
        tried.push(index);
    }
    tried
}

/// [`order`] for a worker with no session yet and the plan's weights: the order of
/// the candidates a fresh worker tries for its first client.
pub fn fresh_order(remotes: &[crate::Remote]) -> Vec<usize> {
    let loads: Vec<(u64, u64)> = remotes
        .iter()
        .map(|r| (balance::weight(r.weight), 0))
        .collect();
    order(&loads)
}

/// The order in which `balance = source` tries `remotes` for a client at `client`
/// (its address, the PROXY-carried one on a PROXY-accepting listener), with their
/// plan weights: the first is every worker's choice while it can take a session,
/// and each failover takes the next ([`balance::source_order`]).
pub fn source_order(remotes: &[crate::Remote], client: IpAddr) -> Vec<usize> {
    let keyed: Vec<(u64, u64)> = remotes
        .iter()
        .map(|r| (balance::remote_key(&r.key()), balance::weight(r.weight)))
        .collect();
    balance::source_order(balance::client_key(client), &keyed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(permit: bool, negate: bool, net: &str, prefix: u8) -> AclRule {
        AclRule {
            permit,
            negate,
            network: net.parse().unwrap(),
            prefix,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn no_rules_permit_everyone() {
        assert!(permits(&[], ip("192.0.2.1")));
        assert!(permits(&[], ip("2001:db8::1")));
        assert_eq!(
            decide(&[], ip("192.0.2.1")),
            Verdict {
                rule: None,
                permit: true
            }
        );
    }

    #[test]
    fn first_match_wins_and_no_match_denies() {
        let rules = [
            rule(false, false, "10.1.0.0", 16),
            rule(true, false, "10.0.0.0", 8),
        ];
        assert!(!permits(&rules, ip("10.1.2.3")), "denied by the first rule");
        assert!(permits(&rules, ip("10.2.0.1")), "permitted by the second");
        assert!(!permits(&rules, ip("192.0.2.1")), "no rule matches: denied");
        assert!(
            !permits(&rules, ip("2001:db8::1")),
            "other family: no match"
        );
    }

    #[test]
    fn the_verdict_names_the_deciding_rule() {
        let rules = [
            rule(false, false, "10.1.0.0", 16),
            rule(true, false, "10.0.0.0", 8),
            rule(false, false, "10.0.0.0", 8),
        ];
        assert_eq!(
            decide(&rules, ip("10.1.2.3")),
            Verdict {
                rule: Some(0),
                permit: false
            }
        );
        assert_eq!(
            decide(&rules, ip("10.2.0.1")),
            Verdict {
                rule: Some(1),
                permit: true
            },
            "the first match, not the last"
        );
        assert_eq!(
            decide(&rules, ip("192.0.2.1")),
            Verdict {
                rule: None,
                permit: false
            }
        );
    }

    #[test]
    fn not_matches_what_is_outside_the_network() {
        let rules = [
            rule(false, true, "127.0.0.0", 8),
            rule(true, false, "0.0.0.0", 0),
        ];
        assert!(permits(&rules, ip("127.0.0.1")));
        assert!(!permits(&rules, ip("192.0.2.1")));
        // Outside an IPv4 network, an IPv6 address is "not" in it.
        assert!(!permits(&rules, ip("2001:db8::1")));
        assert_eq!(decide(&rules, ip("2001:db8::1")).rule, Some(0));
    }

    #[test]
    fn mapped_ipv4_clients_match_ipv4_rules() {
        let rules = [rule(true, false, "192.0.2.0", 24)];
        assert!(permits(&rules, ip("::ffff:192.0.2.7")));
        assert!(!permits(&rules, ip("::ffff:198.51.100.7")));
        // A rule written as a mapped address is its IPv4 network too: the prefix
        // counts the mapping's 96 bits (/104 is the IPv4 /8).
        let mapped = [rule(true, false, "::ffff:192.0.2.0", 120)];
        assert!(permits(&mapped, ip("192.0.2.7")));
        assert!(!permits(&mapped, ip("192.0.3.7")));
        let wide = [rule(true, false, "::ffff:10.0.0.0", 104)];
        assert!(
            permits(&wide, ip("10.200.3.4")),
            "all of 10/8, not 10.0.0.0 alone"
        );
        assert!(permits(&wide, ip("::ffff:10.1.1.1")));
        assert!(!permits(&wide, ip("11.0.0.1")));
        assert_eq!(
            network_range("::ffff:10.0.0.0".parse().unwrap(), 104),
            network_range("10.0.0.0".parse().unwrap(), 8)
        );
        // Shorter than the mapping (refused by the compiler, E0045): the IPv6
        // network written, which no IPv4 client is in.
        let short = [rule(true, false, "::ffff:192.0.2.0", 24)];
        assert!(!permits(&short, ip("192.0.2.7")));
    }

    #[test]
    fn prefixes_at_the_edges() {
        assert!(permits(
            &[rule(true, false, "192.0.2.1", 32)],
            ip("192.0.2.1")
        ));
        assert!(!permits(
            &[rule(true, false, "192.0.2.1", 32)],
            ip("192.0.2.2")
        ));
        assert!(permits(&[rule(true, false, "::", 0)], ip("2001:db8::1")));
        assert!(permits(
            &[rule(true, false, "2001:db8::", 32)],
            ip("2001:db8:ffff::1")
        ));
        assert!(!permits(
            &[rule(true, false, "2001:db8::", 32)],
            ip("2001:db9::1")
        ));
        assert!(permits(&[rule(true, false, "::1", 128)], ip("::1")));
        assert!(!permits(&[rule(true, false, "::1", 128)], ip("::2")));
        // A prefix over the width (refused by the compiler) is taken as the width.
        assert!(permits(
            &[rule(true, false, "192.0.2.1", 40)],
            ip("192.0.2.1")
        ));
    }

    #[test]
    fn trusted_peers_are_in_a_network_or_anyone_without_one() {
        let from = [Network {
            address: ip("10.0.0.2"),
            prefix: 32,
        }];
        assert!(trusted(&from, ip("10.0.0.2")));
        assert!(trusted(&from, ip("::ffff:10.0.0.2")));
        assert!(!trusted(&from, ip("10.0.0.3")));
        assert!(trusted(&[], ip("192.0.2.1")));
    }

    fn listener(address: &str) -> Listener {
        let address = match address.strip_prefix("unix:") {
            Some(path) => ListenAddress::Unix(path.to_string()),
            None => ListenAddress::Inet(address.parse().unwrap()),
        };
        Listener::new(address)
    }

    fn to(address: &str) -> ListenAddress {
        listener(address).address
    }

    #[test]
    fn an_exact_listener_beats_the_wildcard_of_its_port() {
        let listeners = [
            listener("0.0.0.0:80"),
            listener("127.0.0.1:80"),
            listener("[::]:80"),
            listener("[::1]:80"),
            listener("0.0.0.0:81"),
        ];
        let find = |address: &str| listener_for(&listeners, &to(address), Protocol::Tcp);
        assert_eq!(find("127.0.0.1:80"), Some(1), "exact, though listed second");
        assert_eq!(find("192.0.2.1:80"), Some(0), "the IPv4 wildcard");
        assert_eq!(find("[::1]:80"), Some(3));
        assert_eq!(find("[2001:db8::1]:80"), Some(2), "the IPv6 wildcard");
        assert_eq!(find("192.0.2.1:82"), None, "no listener on the port");
        assert_eq!(find("[::ffff:192.0.2.1]:81"), Some(4), "mapped is IPv4");
    }

    #[test]
    fn ipv6_listeners_are_v6_only() {
        let listeners = [listener("[::]:80")];
        assert_eq!(
            listener_for(&listeners, &to("192.0.2.1:80"), Protocol::Tcp),
            None
        );
        let listeners = [listener("0.0.0.0:80")];
        assert_eq!(
            listener_for(&listeners, &to("[2001:db8::1]:80"), Protocol::Tcp),
            None,
            "an IPv4 wildcard takes no IPv6 client"
        );
    }

    #[test]
    fn protocols_and_unix_paths_match_their_own() {
        let mut sctp = listener("0.0.0.0:80");
        sctp.protocol = Protocol::Sctp;
        let listeners = [sctp, listener("unix:/run/a.sock")];
        assert_eq!(
            listener_for(&listeners, &to("192.0.2.1:80"), Protocol::Tcp),
            None
        );
        assert_eq!(
            listener_for(&listeners, &to("192.0.2.1:80"), Protocol::Sctp),
            Some(0)
        );
        assert_eq!(
            listener_for(&listeners, &to("unix:/run/a.sock"), Protocol::Tcp),
            Some(1)
        );
        assert_eq!(
            listener_for(&listeners, &to("unix:/run/b.sock"), Protocol::Tcp),
            None
        );
    }

    #[test]
    fn a_fresh_order_is_plan_order_and_loads_reorder_it() {
        assert_eq!(order(&[(3, 0), (2, 0), (1, 0)]), [0, 1, 2]);
        // Scores 1*256/1 = 256, 0, 1*256/2 = 128.
        assert_eq!(order(&[(1, 1), (1, 0), (2, 1)]), [1, 2, 0]);
        // A weight of 0 (an operator's override) is a last resort.
        assert_eq!(order(&[(0, 0), (1, 5)]), [1, 0]);
        assert!(order(&[]).is_empty());
    }

    #[test]
    fn a_source_order_follows_the_remote_keys_not_the_file() {
        let remote = |a: &str| crate::Remote::new(a.parse().unwrap());
        let a = [
            remote("10.0.0.1:80"),
            remote("10.0.0.2:80"),
            remote("10.0.0.3:80"),
        ];
        let b = [a[2].clone(), a[0].clone(), a[1].clone()];
        for n in 0..200u8 {
            let client = IpAddr::from([192, 0, 2, n]);
            let keys = |rs: &[crate::Remote], order: Vec<usize>| -> Vec<String> {
                order.into_iter().map(|i| rs[i].key()).collect()
            };
            assert_eq!(
                keys(&a, source_order(&a, client)),
                keys(&b, source_order(&b, client))
            );
        }
    }
}
