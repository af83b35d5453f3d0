//! Client access rules (`acl = permit|deny [not] NETWORK[/PREFIX]` in the spawnd
//! section): checked on every client accepted on an IP listener, before anything is
//! read from it or connected for it. First match wins; when there are rules and none
//! matches, the client is denied. An IPv4 client on an IPv6 listener
//! (`::ffff:a.b.c.d`) is matched as the IPv4 address it is.

use std::net::IpAddr;
use tcprelay_plan::AclRule;

/// Whether `rules` let `client` in.
pub fn permits(rules: &[AclRule], client: IpAddr) -> bool {
    if rules.is_empty() {
        return true;
    }
    let client = canonical(client);
    rules
        .iter()
        .find(|r| contains(r.network, r.prefix, client) != r.negate)
        .is_some_and(|r| r.permit)
}

/// Whether `peer` may send PROXY protocol headers (`accept proxy from`): it is in
/// one of the networks, or there are none.
pub fn trusted(from: &[tcprelay_plan::Network], peer: IpAddr) -> bool {
    let peer = canonical(peer);
    from.is_empty() || from.iter().any(|n| contains(n.address, n.prefix, peer))
}

pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Whether `ip` is in `network/prefix` (never across address families).
fn contains(network: IpAddr, prefix: u8, ip: IpAddr) -> bool {
    match (canonical(network), ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let mask = mask(prefix, 32) as u32;
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let mask = mask(prefix, 128);
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

/// The `prefix` leading bits of a `width`-bit address set.
fn mask(prefix: u8, width: u32) -> u128 {
    let prefix = u32::from(prefix).min(width);
    if prefix == 0 {
        0
    } else {
        (u128::MAX << (128 - prefix)) >> (128 - width)
    }
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
    fn not_matches_what_is_outside_the_network() {
        let rules = [
            rule(false, true, "127.0.0.0", 8),
            rule(true, false, "0.0.0.0", 0),
        ];
        assert!(permits(&rules, ip("127.0.0.1")));
        assert!(!permits(&rules, ip("192.0.2.1")));
        // Outside an IPv4 network, an IPv6 address is "not" in it.
        assert!(!permits(&rules, ip("2001:db8::1")));
    }

    #[test]
    fn mapped_ipv4_clients_match_ipv4_rules() {
        let rules = [rule(true, false, "192.0.2.0", 24)];
        assert!(permits(&rules, ip("::ffff:192.0.2.7")));
        assert!(!permits(&rules, ip("::ffff:198.51.100.7")));
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
}
