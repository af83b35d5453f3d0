//! What an operator may be shown about a certificate: its subject and issuer, the
//! names it serves, its validity and its SHA-256 fingerprint. Never anything about a
//! private key. `tcprelay-cc diff` compares these, `route --sni` and the name lint
//! match names against them, the expiry lint reads the dates.

use std::net::IpAddr;

use openssl::asn1::{Asn1Time, Asn1TimeRef};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::x509::{X509NameRef, X509};

use super::{pem_blocks, read, reasons, TlsProblem};

/// One certificate, in the order of its file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CertFacts {
    /// `CN=example.com, O=Example` (the entries in the certificate's order).
    pub subject: String,
    pub issuer: String,
    /// The DNS names of the subject alternative names, else the common name.
    pub names: Vec<String>,
    /// The IP addresses of the subject alternative names.
    pub addresses: Vec<IpAddr>,
    /// Validity, seconds since the Unix epoch.
    pub not_before: i64,
    pub not_after: i64,
    /// SHA-256 of the DER encoding, upper-case hex pairs joined by `:` (as
    /// `openssl x509 -fingerprint -sha256` prints it).
    pub sha256: String,
}

/// The certificates of a PEM file, in file order (other blocks, keys among them,
/// are skipped unread). An error when the file cannot be read or one certificate
/// block does not parse; `Ok(vec![])` when it holds none.
pub fn certificate_facts(path: &str) -> Result<Vec<CertFacts>, TlsProblem> {
    facts_from_pem(path, &read(path)?)
}

/// [`certificate_facts`] of PEM text already read (`path` names it in errors).
pub fn facts_from_pem(path: &str, pem: &[u8]) -> Result<Vec<CertFacts>, TlsProblem> {
    let blocks = pem_blocks(pem);
    let mut out = Vec::new();
    for block in blocks
        .iter()
        .filter(|b| super::is_certificate_label(b.label))
    {
        let cert = X509::from_pem(block.text).map_err(|e| TlsProblem::Unreadable {
            path: path.to_string(),
            reason: format!(
                "malformed PEM certificate number {} ({})",
                out.len() + 1,
                reasons(&e)
            ),
        })?;
        out.push(facts(&cert).map_err(|reason| TlsProblem::Unreadable {
            path: path.to_string(),
            reason,
        })?);
    }
    Ok(out)
}

/// The facts of one parsed certificate.
pub fn facts(cert: &X509) -> Result<CertFacts, String> {
    let mut names = Vec::new();
    let mut addresses = Vec::new();
    if let Some(sans) = cert.subject_alt_names() {
        for san in sans.iter() {
            if let Some(dns) = san.dnsname() {
                names.push(dns.to_string());
            } else if let Some(ip) = san.ipaddress() {
                if let Ok(octets) = <[u8; 4]>::try_from(ip) {
                    addresses.push(IpAddr::from(octets));
                } else if let Ok(octets) = <[u8; 16]>::try_from(ip) {
                    addresses.push(IpAddr::from(octets));
                }
            }
        }
    }
    if names.is_empty() {
        // RFC 6125: the common name counts only without DNS names.
        names.extend(
            cert.subject_name()
                .entries_by_nid(Nid::COMMONNAME)
                .filter_map(|e| e.data().to_string().ok()),
        );
    }
    let digest = cert
        .digest(MessageDigest::sha256())
        .map_err(|e| format!("cannot hash the certificate ({})", reasons(&e)))?;
    let sha256 = digest
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    Ok(CertFacts {
        subject: name_text(cert.subject_name()),
        issuer: name_text(cert.issuer_name()),
        names,
        addresses,
        not_before: unix_time(cert.not_before())?,
        not_after: unix_time(cert.not_after())?,
        sha256,
    })
}

/// `CN=a, O=b` for an X.509 name.
fn name_text(name: &X509NameRef) -> String {
    name.entries()
        .map(|entry| {
            let key = entry.object().nid().short_name().unwrap_or("?");
            let value = entry.data().to_string().unwrap_or_else(|_| "?".to_string());
            format!("{key}={value}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// An ASN.1 time as seconds since the Unix epoch.
fn unix_time(time: &Asn1TimeRef) -> Result<i64, String> {
    let epoch = Asn1Time::from_unix(0).map_err(|e| reasons(&e))?;
    let diff = epoch
        .diff(time)
        .map_err(|e| format!("unreadable validity date ({})", reasons(&e)))?;
    Ok(i64::from(diff.days) * 86_400 + i64::from(diff.secs))
}

/// `2026-12-31T23:59:59Z` for seconds since the epoch (UTC, the proleptic Gregorian
/// calendar), for messages and JSON.
pub fn utc_text(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Whether a certificate with these facts serves `host` (a DNS name, matched without
/// regard to case, a trailing dot ignored; `*.example.com` covers one label, as RFC
/// 6125 §6.4.3 allows; an IP address matches only an IP address entry).
pub fn covers(facts: &CertFacts, host: &str) -> bool {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return facts.addresses.contains(&ip);
    }
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    facts.names.iter().any(|name| {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        match name.strip_prefix("*.") {
            Some(suffix) => host
                .split_once('.')
                .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
            None => name == host,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_pki;
    use super::*;

    #[test]
    fn the_fixtures_certificate_has_its_names_dates_and_fingerprint() {
        let fixture = test_pki::fixture();
        let facts = certificate_facts(&fixture.combined).unwrap();
        assert_eq!(
            facts.len(),
            1,
            "the key of the combined file is not a certificate"
        );
        let f = &facts[0];
        assert_eq!(f.subject, "CN=localhost");
        assert_eq!(f.issuer, "CN=localhost");
        assert_eq!(f.names, ["localhost"]);
        assert_eq!(f.addresses, ["127.0.0.1".parse::<IpAddr>().unwrap()]);
        assert_eq!(f.not_after - f.not_before, 86_400, "valid for a day");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert!((f.not_before - now).abs() < 600, "issued now");
        let pem = std::fs::read(&fixture.cert).unwrap();
        let der = X509::from_pem(&pem).unwrap().to_der().unwrap();
        let expected = openssl::sha::sha256(&der);
        assert_eq!(f.sha256.len(), 32 * 3 - 1);
        assert_eq!(
            f.sha256.split(':').next().unwrap(),
            format!("{:02X}", expected[0])
        );
        assert_eq!(facts_from_pem("x", b"no pem here").unwrap(), vec![]);
    }

    #[test]
    fn names_match_exactly_or_by_one_wildcard_label() {
        let f = CertFacts {
            subject: String::new(),
            issuer: String::new(),
            names: vec!["db.example.com".into(), "*.api.example.com".into()],
            addresses: vec!["192.0.2.1".parse().unwrap()],
            not_before: 0,
            not_after: 0,
            sha256: String::new(),
        };
        assert!(covers(&f, "db.example.com"));
        assert!(covers(&f, "DB.Example.COM."));
        assert!(covers(&f, "v1.api.example.com"));
        assert!(!covers(&f, "api.example.com"), "the wildcard needs a label");
        assert!(!covers(&f, "a.b.api.example.com"), "one label only");
        assert!(!covers(&f, "example.com"));
        assert!(covers(&f, "192.0.2.1"));
        assert!(!covers(&f, "192.0.2.2"));
    }

    #[test]
    fn utc_text_is_iso_8601() {
        assert_eq!(utc_text(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_text(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc_text(1_798_761_599), "2026-12-31T23:59:59Z");
        assert_eq!(utc_text(-1), "1969-12-31T23:59:59Z");
    }
}
