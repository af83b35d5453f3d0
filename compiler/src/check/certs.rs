//! The certificate lints: a certificate that expires within 30 days (E0080), has
//! expired (E0081) or is not valid yet (E0082), a CA file's expired certificates
//! (E0083), a chain file out of order (E0084), and a listener certificate that does
//! not cover the names clients ask for (E0085). The questions are answered by
//! [`tlscheck::lint`]; this module says them in the operator's words.
//!
//! The dates are compared with this machine's clock when the configuration is
//! compiled ([`tlscheck::lint::now`]); a plan compiled today and started in a month
//! is not checked again by the compiler (the runtime serves what it loads).

use super::scope::Cx;
use crate::ast::{Sp, Span};
use crate::diag::{Code, Diagnostic};
use crate::tlscheck::lint::{self, NotIssuer, Validity, EXPIRY_WARNING_DAYS};
use crate::tlscheck::{self, utc_text, CertFacts};
use openssl::x509::X509;

/// Which certificate file is checked, for the messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// `tls cert-file` of the tcprelay section: what TLS listeners serve.
    Listener,
    /// `tls cert-file` of a remote: what the relay presents to that remote.
    Client,
}

impl Role {
    fn what(self) -> &'static str {
        match self {
            Role::Listener => "certificate",
            Role::Client => "client certificate",
        }
    }
}

/// The expiry and chain lints of a certificate file (the certificate, then its
/// chain). Nothing when the file cannot be read: `tlscheck::check` reported that.
/// `leaf_elsewhere`: the key belongs to a later certificate of the file (E0034 says
/// so), so the order is not reported a second time.
pub(super) fn chain_file(file: &Sp<String>, role: Role, leaf_elsewhere: bool, cx: &mut Cx<'_>) {
    let Some((certs, facts)) = read(&file.node) else {
        return;
    };
    expiry(file, role, &facts, lint::now(), cx);
    if !leaf_elsewhere {
        order(file, &certs, &facts, cx);
    }
}

/// The certificates of a file with their facts; `None` when it cannot be read or
/// holds none.
fn read(path: &str) -> Option<(Vec<X509>, Vec<CertFacts>)> {
    let certs = lint::certificates(path).ok()?;
    let facts = certs
        .iter()
        .map(|c| tlscheck::facts(c).ok())
        .collect::<Option<Vec<_>>>()?;
    (!certs.is_empty()).then_some((certs, facts))
}

/// `certificate 2 of `PATH` (CN=...)`, or `the certificate in `PATH`` for the
/// first one of the file.
fn which(path: &str, at: usize, facts: &CertFacts, what: &str) -> String {
    if at == 0 {
        format!("the {what} in `{path}` ({})", facts.subject)
    } else {
        format!(
            "certificate {} of `{path}` ({}), in the chain of the {what}",
            at + 1,
            facts.subject
        )
    }
}

fn days(n: i64) -> String {
    match n {
        0 => "less than a day".to_string(),
        1 => "1 day".to_string(),
        n => format!("{n} days"),
    }
}

/// E0080, E0081, E0082 for each certificate of a listener's or client's file at
/// `now`. The first certificate (the one served) expired or not yet valid is an
/// error: every client refuses it. A later one (the chain) is a warning: a client
/// that finds another path to a root it trusts does without it, others refuse.
pub(super) fn expiry(
    file: &Sp<String>,
    role: Role,
    facts: &[CertFacts],
    now: i64,
    cx: &mut Cx<'_>,
) {
    let path = &file.node;
    for (at, f) in facts.iter().enumerate() {
        let who = which(path, at, f, role.what());
        let level = |code, message: String| {
            if at == 0 {
                Diagnostic::error(code, file.span, message)
            } else {
                Diagnostic::warning(code, file.span, message)
            }
        };
        let d = match lint::validity(f, now) {
            Validity::Valid => continue,
            Validity::ExpiresSoon { days_left } => Diagnostic::warning(
                Code::CertificateExpiresSoon,
                file.span,
                format!(
                    "{who} expires in {}, on {}",
                    days(days_left),
                    utc_text(f.not_after)
                ),
            )
            .with_label(format!("expires in {}", days(days_left)))
            .with_note(format!(
                "a certificate that expires within {EXPIRY_WARNING_DAYS} days is reported; the date is compared with this machine's clock now"
            ))
            .with_help("renew the certificate, replace the file and reload tcprelay (`tcprelay ctl reload`)"),
            Validity::Expired { days_ago } => level(
                Code::CertificateExpired,
                format!(
                    "{who} expired on {}, {} ago",
                    utc_text(f.not_after),
                    days(days_ago)
                ),
            )
            .with_label("expired")
            .with_note(if at == 0 {
                "TLS clients refuse an expired certificate".to_string()
            } else {
                "clients that build their chain through it refuse the certificate".to_string()
            })
            .with_help(if at == 0 {
                "renew the certificate and point `tls cert-file` at the new one"
            } else {
                "replace the chain with the one the certificate authority gives out now"
            }),
            Validity::NotYetValid { days_until } => level(
                Code::CertificateNotYetValid,
                format!(
                    "{who} is not valid before {}, in {}",
                    utc_text(f.not_before),
                    days(days_until)
                ),
            )
            .with_label("not valid yet")
            .with_note("TLS clients refuse a certificate before its start date")
            .with_help("check this machine's clock, or wait for the certificate's start date to use it"),
        };
        cx.push(d);
    }
}

/// E0083 for the CA file of a remote that verifies its server: the CA certificates
/// that are not valid now (expired or not yet valid), and E0080 for those that
/// expire within 30 days, one diagnostic each for the whole file. A warning while
/// another certificate of the file is valid; an error when none is, since the
/// remote's certificate can then never be verified (OpenSSL checks the trust
/// anchor's dates too, and the relay uses the file's certificates only).
pub(super) fn ca_file(file: &Sp<String>, now: i64, cx: &mut Cx<'_>) {
    let Some((_, facts)) = read(&file.node) else {
        return;
    };
    let path = &file.node;
    let mut invalid = Vec::new();
    let mut soon = Vec::new();
    for (at, f) in facts.iter().enumerate() {
        let n = at + 1;
        match lint::validity(f, now) {
            Validity::Valid => {}
            Validity::ExpiresSoon { days_left } => soon.push(format!(
                "certificate {n} ({}) expires in {}, on {}",
                f.subject,
                days(days_left),
                utc_text(f.not_after)
            )),
            Validity::Expired { days_ago } => invalid.push(format!(
                "certificate {n} ({}) expired on {}, {} ago",
                f.subject,
                utc_text(f.not_after),
                days(days_ago)
            )),
            Validity::NotYetValid { days_until } => invalid.push(format!(
                "certificate {n} ({}) is not valid before {}, in {}",
                f.subject,
                utc_text(f.not_before),
                days(days_until)
            )),
        }
    }
    let total = facts.len();
    if !invalid.is_empty() {
        let d = if invalid.len() == total {
            Diagnostic::error(
                Code::CaCertificateExpired,
                file.span,
                format!("no certificate of the CA file `{path}` is valid now",),
            )
            .with_label("the remote's certificate can never be verified against this file")
            .with_help("replace the file with the certificate authority's current certificates")
        } else {
            Diagnostic::warning(
                Code::CaCertificateExpired,
                file.span,
                format!(
                    "{} of the {total} certificates of the CA file `{path}` {} not valid now",
                    invalid.len(),
                    if invalid.len() == 1 { "is" } else { "are" }
                ),
            )
            .with_label("a chain that ends at one of them is refused")
            .with_help("remove them from the file, or replace them with their current versions")
        };
        cx.push(invalid.into_iter().fold(d, Diagnostic::with_note));
    }
    if !soon.is_empty() {
        let d = Diagnostic::warning(
            Code::CertificateExpiresSoon,
            file.span,
            format!(
                "{} of the {total} certificates of the CA file `{path}` {} within {EXPIRY_WARNING_DAYS} days",
                soon.len(),
                if soon.len() == 1 { "expires" } else { "expire" }
            ),
        )
        .with_label("expires soon")
        .with_help("add the certificate authority's new certificate to the file before the old one expires");
        cx.push(soon.into_iter().fold(d, Diagnostic::with_note));
    }
}

/// E0084: the certificates of a chain file are not each followed by their issuer.
fn order(file: &Sp<String>, certs: &[X509], facts: &[CertFacts], cx: &mut Cx<'_>) {
    let breaks = lint::chain_breaks(certs);
    let Some(first) = breaks.first() else {
        return;
    };
    let name = |at: usize| format!("certificate {} ({})", at + 1, facts[at].subject);
    let said = |b: &lint::ChainBreak| {
        let why = match b.why {
            NotIssuer::Name => "its subject is not the issuer".to_string(),
            NotIssuer::Signature => {
                "its subject is the issuer's name, but the signature does not verify with its key"
                    .to_string()
            }
        };
        format!("{} did not issue {}: {why}", name(b.next), name(b.at))
    };
    let mut d = Diagnostic::warning(
        Code::ChainOutOfOrder,
        file.span,
        format!(
            "the certificates of `{}` are out of order: {} did not issue {}",
            file.node,
            name(first.next),
            name(first.at)
        ),
    )
    .with_label("certificate chain out of order");
    for b in &breaks {
        d = d.with_note(said(b));
    }
    d = d.with_note(
        "TLS sends the file's certificates in its order; clients that expect each certificate to be followed by its issuer (TLS 1.2 requires it) fail to verify the chain",
    );
    let help = match lint::chain_order(certs) {
        Some(order) => format!(
            "reorder the file as certificates {}: the server's certificate first, then each certificate's issuer",
            order
                .iter()
                .map(|i| (i + 1).to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => "put the server's certificate first, then each certificate's issuer right after it, and remove the certificates that belong to no chain".to_string(),
    };
    cx.push(d.with_help(help));
}

/// A name clients ask for when they reach a listener: its host name as written, an
/// IP address it binds, and (with issue 18) an SNI route's names.
#[derive(Debug, Clone)]
pub(super) struct Served {
    /// A DNS name or an IP address.
    pub name: String,
    /// Where it was written.
    pub span: Span,
    /// `the listener's host name`, `the listener's address`.
    pub what: &'static str,
}

/// E0085: each served name the certificate of `file` (its first certificate) does
/// not cover. IP addresses are checked only when the certificate names IP
/// addresses ([`lint::uncovered`]).
pub(super) fn names(served: &[Served], file: &Sp<String>, cx: &mut Cx<'_>) {
    let Some((_, facts)) = read(&file.node) else {
        return;
    };
    let leaf = &facts[0];
    let texts: Vec<&str> = served.iter().map(|s| s.name.as_str()).collect();
    let missing = lint::uncovered(leaf, &texts);
    let covered: Vec<String> = leaf
        .names
        .iter()
        .cloned()
        .chain(leaf.addresses.iter().map(|a| a.to_string()))
        .collect();
    for s in served.iter().filter(|s| missing.contains(&s.name.as_str())) {
        cx.push(
            Diagnostic::warning(
                Code::NameNotCovered,
                s.span,
                format!(
                    "the certificate in `{}` does not cover `{}`, {}",
                    file.node, s.name, s.what
                ),
            )
            .with_label("clients that connect to this name refuse the certificate")
            .with_secondary(file.span, "the certificate")
            .with_note(if covered.is_empty() {
                "the certificate names no host".to_string()
            } else {
                format!("the certificate covers {}", covered.join(", "))
            })
            .with_help(format!(
                "use a certificate with `{}` among its subject alternative names, or write the name the certificate has",
                s.name
            )),
        );
    }
}
