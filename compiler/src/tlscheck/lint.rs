//! The certificate lints' questions, answered from the files alone: is a certificate
//! valid now or soon no longer, is a chain file in the order TLS sends it (each
//! certificate followed by its issuer), which certificate of a file a key belongs to.
//! The check stage turns the answers into diagnostics (E0080 to E0085, E0034's note).
//!
//! "Now" is a parameter: the check passes the compiling machine's clock ([`now`]),
//! the tests a time of their choosing.

use openssl::x509::{X509VerifyResult, X509};

use super::{parse_private_key, pem_blocks, read, reasons, CertFacts, TlsProblem};

/// A certificate that expires within this many days is warned about (E0080).
pub const EXPIRY_WARNING_DAYS: i64 = 30;

const DAY: i64 = 86_400;

/// The compiling machine's clock, in seconds since the Unix epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Where a certificate stands at a given time. Days are whole days, rounded down: a
/// certificate that expires in 36 hours expires "in 1 day".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// Valid for more than [`EXPIRY_WARNING_DAYS`] days still.
    Valid,
    /// Valid now, and no longer within [`EXPIRY_WARNING_DAYS`] days.
    ExpiresSoon { days_left: i64 },
    /// `notAfter` is past.
    Expired { days_ago: i64 },
    /// `notBefore` is still to come.
    NotYetValid { days_until: i64 },
}

/// Where `facts` stands at `now` (seconds since the epoch). A certificate is valid
/// from `not_before` to `not_after` inclusive, as OpenSSL takes it.
pub fn validity(facts: &CertFacts, now: i64) -> Validity {
    if now < facts.not_before {
        Validity::NotYetValid {
            days_until: (facts.not_before - now) / DAY,
        }
    } else if now > facts.not_after {
        Validity::Expired {
            days_ago: (now - facts.not_after) / DAY,
        }
    } else if facts.not_after - now < EXPIRY_WARNING_DAYS * DAY {
        Validity::ExpiresSoon {
            days_left: (facts.not_after - now) / DAY,
        }
    } else {
        Validity::Valid
    }
}

/// The certificates of a PEM file, parsed, in file order (other blocks skipped).
pub fn certificates(path: &str) -> Result<Vec<X509>, TlsProblem> {
    let pem = read(path)?;
    let mut out = Vec::new();
    for block in pem_blocks(&pem)
        .iter()
        .filter(|b| super::is_certificate_label(b.label))
    {
        out.push(
            X509::from_pem(block.text).map_err(|e| TlsProblem::Unreadable {
                path: path.to_string(),
                reason: format!(
                    "malformed PEM certificate number {} ({})",
                    out.len() + 1,
                    reasons(&e)
                ),
            })?,
        );
    }
    Ok(out)
}

/// Why one certificate is not the issuer of another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotIssuer {
    /// Its subject is not the other's issuer name (or its key identifier differs).
    Name,
    /// The names agree but the other's signature does not verify with its key.
    Signature,
}

/// Whether `issuer` issued `cert`: `cert`'s issuer name is `issuer`'s subject (with
/// the key identifiers, when both have them, agreeing: OpenSSL's `X509_check_issued`)
/// and `cert`'s signature verifies with `issuer`'s public key.
pub fn issued_by(cert: &X509, issuer: &X509) -> Result<(), NotIssuer> {
    if issuer.issued(cert) != X509VerifyResult::OK {
        return Err(NotIssuer::Name);
    }
    let signed = issuer
        .public_key()
        .and_then(|key| cert.verify(&key))
        .unwrap_or(false);
    if signed {
        Ok(())
    } else {
        Err(NotIssuer::Signature)
    }
}

/// One place where a chain file breaks: the certificate at `next` (0-based, `at + 1`)
/// did not issue the one at `at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainBreak {
    pub at: usize,
    pub next: usize,
    pub why: NotIssuer,
}

/// The places where `chain` (a certificate file: the leaf, then its issuer, then
/// that one's issuer...) is out of order. Empty for one certificate or a chain in
/// order. A self-signed root at the end is in order (nothing comes after it).
pub fn chain_breaks(chain: &[X509]) -> Vec<ChainBreak> {
    chain
        .windows(2)
        .enumerate()
        .filter_map(|(at, pair)| {
            issued_by(&pair[0], &pair[1]).err().map(|why| ChainBreak {
                at,
                next: at + 1,
                why,
            })
        })
        .collect()
}

/// The order of `chain`'s certificates (0-based positions) that TLS needs, when the
/// file holds exactly one: the first certificate (the leaf), then its issuer among
/// the others, then that one's issuer, until every certificate is placed. `None`
/// when some certificate is nobody's issuer in that walk (it does not belong to the
/// chain) or an issuer is missing halfway.
pub fn chain_order(chain: &[X509]) -> Option<Vec<usize>> {
    let mut order = vec![0];
    while order.len() < chain.len() {
        let last = &chain[*order.last()?];
        let next =
            (0..chain.len()).find(|i| !order.contains(i) && issued_by(last, &chain[*i]).is_ok())?;
        order.push(next);
    }
    Some(order)
}

/// The names of `served` that a certificate with `facts` does not cover
/// ([`super::covers`]), in their order. A served name is a DNS name a client asks
/// for (a listener's host name; with issue 18, an SNI route's names) or an IP
/// address a client connects to. An IP address counts only when the certificate
/// has IP addresses among its alternative names: a certificate without any is
/// meant for names, and clients that connect by address to such a listener are
/// not this lint's business. A wildcard address (`0.0.0.0`, `::`) is never a name.
pub fn uncovered<'a>(facts: &CertFacts, served: &[&'a str]) -> Vec<&'a str> {
    served
        .iter()
        .copied()
        .filter(|name| match name.parse::<std::net::IpAddr>() {
            Ok(ip) => !ip.is_unspecified() && !facts.addresses.is_empty(),
            Err(_) => true,
        })
        .filter(|name| !super::covers(facts, name))
        .collect()
}

/// The 0-based position of the certificate of `cert_file` that the private key of
/// `key_file` belongs to, if any (for the note of a key mismatch: a leaf that is not
/// first). `None` when the files cannot be read or no certificate matches.
pub fn key_owner(cert_file: &str, key_file: &str, passphrase: Option<&str>) -> Option<usize> {
    let certs = certificates(cert_file).ok()?;
    let key = parse_private_key(key_file, &read(key_file).ok()?, passphrase).ok()?;
    certs
        .iter()
        .position(|c| c.public_key().is_ok_and(|public| key.public_eq(&public)))
}

#[cfg(test)]
mod tests {
    use super::super::test_pki;
    use super::*;

    fn facts_between(not_before: i64, not_after: i64) -> CertFacts {
        CertFacts {
            subject: String::new(),
            issuer: String::new(),
            names: vec![],
            addresses: vec![],
            not_before,
            not_after,
            sha256: String::new(),
        }
    }

    #[test]
    fn validity_counts_whole_days_at_the_given_time() {
        let now = 1_000 * DAY;
        let f = |before: i64, after: i64| validity(&facts_between(before, after), now);
        assert_eq!(f(now - DAY, now + 31 * DAY), Validity::Valid);
        assert_eq!(
            f(now - DAY, now + 30 * DAY),
            Validity::Valid,
            "30 days left"
        );
        assert_eq!(
            f(now - DAY, now + 30 * DAY - 1),
            Validity::ExpiresSoon { days_left: 29 }
        );
        assert_eq!(
            f(now - DAY, now + DAY + DAY / 2),
            Validity::ExpiresSoon { days_left: 1 }
        );
        assert_eq!(f(now - DAY, now), Validity::ExpiresSoon { days_left: 0 });
        assert_eq!(f(now - 9 * DAY, now - 1), Validity::Expired { days_ago: 0 });
        assert_eq!(
            f(now - 9 * DAY, now - 3 * DAY - 5),
            Validity::Expired { days_ago: 3 }
        );
        assert_eq!(
            f(now + 1, now + 99 * DAY),
            Validity::NotYetValid { days_until: 0 }
        );
        assert_eq!(
            f(now + 2 * DAY + 7, now + 99 * DAY),
            Validity::NotYetValid { days_until: 2 }
        );
    }

    #[test]
    fn a_chain_in_order_has_no_break_and_a_swapped_one_has() {
        let pki = test_pki::Chain::new();
        let in_order = [pki.leaf.clone(), pki.intermediate.clone(), pki.root.clone()];
        assert_eq!(chain_breaks(&in_order), vec![]);
        assert_eq!(chain_order(&in_order), Some(vec![0, 1, 2]));
        let swapped = [pki.leaf.clone(), pki.root.clone(), pki.intermediate.clone()];
        assert_eq!(
            chain_breaks(&swapped),
            vec![
                ChainBreak {
                    at: 0,
                    next: 1,
                    why: NotIssuer::Name
                },
                ChainBreak {
                    at: 1,
                    next: 2,
                    why: NotIssuer::Name
                }
            ]
        );
        assert_eq!(chain_order(&swapped), Some(vec![0, 2, 1]));
        // A certificate that belongs to no chain: no order uses it.
        let stray = [
            pki.leaf.clone(),
            pki.intermediate.clone(),
            pki.stray.clone(),
        ];
        assert_eq!(chain_breaks(&stray).len(), 1);
        assert_eq!(chain_order(&stray), None);
        assert_eq!(chain_breaks(std::slice::from_ref(&pki.leaf)), vec![]);
    }

    #[test]
    fn the_issuers_name_without_its_signature_is_not_enough() {
        let pki = test_pki::Chain::new();
        // Same subject as the intermediate, another key: the name matches, the
        // signature does not.
        assert_eq!(
            issued_by(&pki.leaf, &pki.impostor),
            Err(NotIssuer::Signature)
        );
        assert_eq!(issued_by(&pki.leaf, &pki.intermediate), Ok(()));
    }

    #[test]
    fn uncovered_names_and_addresses() {
        let mut f = facts_between(0, 0);
        f.names = vec!["db.example.com".into(), "*.example.net".into()];
        let served = [
            "db.example.com",
            "www.example.com",
            "a.example.net",
            "127.0.0.1",
            "0.0.0.0",
        ];
        // No IP address in the certificate: addresses are not checked.
        assert_eq!(uncovered(&f, &served), ["www.example.com"]);
        f.addresses = vec!["192.0.2.1".parse().unwrap()];
        assert_eq!(uncovered(&f, &served), ["www.example.com", "127.0.0.1"]);
        assert_eq!(uncovered(&f, &["192.0.2.1", "::"]), Vec::<&str>::new());
    }

    #[test]
    fn the_key_owner_is_found_at_its_position() {
        let pki = test_pki::Chain::new();
        let f = test_pki::fixture();
        let intermediate_first = f.write(
            "swapped.pem",
            &[
                pki.intermediate.to_pem().unwrap(),
                pki.leaf.to_pem().unwrap(),
            ]
            .concat(),
        );
        let key = f.write(
            "leaf-key.pem",
            &pki.leaf_key.private_key_to_pem_pkcs8().unwrap(),
        );
        assert_eq!(key_owner(&intermediate_first, &key, None), Some(1));
        assert_eq!(key_owner(&intermediate_first, &f.other_key, None), None);
    }
}
