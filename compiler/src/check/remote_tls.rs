//! TLS towards a remote (`tls = yes` in a `remote` block): the settings taken
//! together, and the files (CA file, client certificate and key) tried with openssl.

use super::certs;
use super::model::{RemoteModel, RemoteTlsModel};
use super::relay;
use super::scope::Cx;
use super::values;
use crate::diag::{Code, Diagnostic};
use crate::tlscheck::{self, TlsProblem};
use tcprelay_plan::{defaults, OsText};

/// The settings of one remote's TLS taken together: E0041 for `tls ...` directives
/// without `tls = yes`, E0050 for verification without a server name (a remote's
/// address is always an IP literal), E0043 for a client key without a certificate.
/// `sni_written`: a `tls sni` was written, even if its value was bad (reported).
pub(super) fn settings(tls: &RemoteTlsModel, sni_written: bool, cx: &mut Cx<'_>) {
    let written = [
        tls.sni.as_ref().map(|v| (v.span, "tls sni")),
        tls.verify.as_ref().map(|v| (v.span, "tls verify")),
        tls.ca_file.as_ref().map(|v| (v.key, "tls ca-file")),
        tls.client.cert.as_ref().map(|v| (v.key, "tls cert-file")),
        tls.client.key.as_ref().map(|v| (v.key, "tls key-file")),
        tls.client
            .passphrase
            .as_ref()
            .map(|v| (v.key, "tls passphrase")),
    ];
    let Some(on) = tls.on.as_ref().filter(|on| on.node) else {
        for (span, what) in written.into_iter().flatten() {
            let mut d = Diagnostic::warning(
                Code::Ignored,
                span,
                format!("`{what}` has no effect without `tls = yes`"),
            )
            .with_label("ignored");
            if let Some(off) = &tls.on {
                d = d.with_secondary(off.span, "TLS is off for this remote");
            }
            cx.push(d.with_help("add `tls = yes` to the remote to connect to it with TLS"));
        }
        return;
    };
    let verify = tls
        .verify
        .as_ref()
        .map_or(defaults::REMOTE_TLS_VERIFY, |v| v.node);
    if verify && !sni_written {
        let mut d = Diagnostic::error(
            Code::VerifyWithoutName,
            on.span,
            "a TLS remote whose certificate is verified needs `tls sni`",
        )
        .with_label("no server name to check the certificate against");
        if let Some(v) = &tls.verify {
            d = d.with_secondary(v.span, "verification is on");
        } else {
            d = d.with_note("`tls verify` is `yes` when not given");
        }
        cx.push(d.with_help(
            "add `tls sni = NAME`, the name in the remote's certificate (or `tls verify = no`, which trusts any certificate)",
        ));
    }
    if let (false, Some(ca)) = (verify, &tls.ca_file) {
        cx.push(
            Diagnostic::warning(
                Code::Ignored,
                ca.key,
                "`tls ca-file` has no effect with `tls verify = no`",
            )
            .with_label("ignored")
            .with_secondary(
                tls.verify.as_ref().map_or(ca.key, |v| v.span),
                "verification is off",
            ),
        );
    }
    if tls.client.cert.is_none() {
        let lone = [
            tls.client.key.as_ref().map(|k| (k.key, "key file")),
            tls.client
                .passphrase
                .as_ref()
                .map(|p| (p.key, "passphrase")),
        ];
        for (span, what) in lone.into_iter().flatten() {
            cx.push(
                Diagnostic::warning(
                    Code::TlsUnused,
                    span,
                    format!("a client {what} without a client certificate has no effect"),
                )
                .with_label("ignored")
                .with_help("add `tls cert-file = /path/to/client.pem` to the remote"),
            );
        }
    }
}

/// Why `name` is not a DNS host name, or `None` when it is one.
pub(super) fn dns_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("it is empty".to_string());
    }
    if values::parse_ip(name).is_some() {
        return Some("it is an IP address".to_string());
    }
    if name.len() > 253 {
        return Some(format!("it is {} bytes long, more than 253", name.len()));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Some("it has an empty label (two dots in a row, or a dot at an end)".into());
        }
        if label.len() > 63 {
            return Some(format!("the label `{label}` is longer than 63 bytes"));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
        {
            return Some(format!(
                "{c:?} is not a letter, a digit or `-` (write an internationalized name in its `xn--` form)"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Some(format!("the label `{label}` starts or ends with `-`"));
        }
    }
    None
}

/// Tries the files of a TLS remote: the paths must be names the system can take
/// (E0046), the CA file must hold certificates (E0033, E0052), and the client
/// certificate, key and passphrase must go together (E0033 to E0035).
pub(super) fn files(r: &RemoteModel, cx: &mut Cx<'_>) {
    if !r.tls_on() {
        return;
    }
    let tls = &r.tls;
    let paths = [
        tls.ca_file.as_ref().map(|c| (&c.value, "the TLS CA file")),
        tls.client
            .cert
            .as_ref()
            .map(|c| (&c.value, "the TLS client certificate file")),
        tls.client
            .key
            .as_ref()
            .map(|k| (&k.value, "the TLS client key file")),
        tls.sni.as_ref().map(|s| (s, "the TLS server name")),
    ];
    let passphrase = tls.client.passphrase.as_ref().map(|p| &p.value);
    let verify = tls
        .verify
        .as_ref()
        .map_or(defaults::REMOTE_TLS_VERIFY, |v| v.node);
    let usable = relay::os_strings(
        paths.into_iter().flatten(),
        OsText::check_name,
        passphrase,
        cx,
    );
    if !usable {
        return;
    }
    if let Some(ca) = &tls.ca_file {
        let path = &ca.value.node;
        match tlscheck::ca_certificates(path) {
            Ok(0) => cx.push(
                Diagnostic::error(
                    Code::CaFileWithoutCertificates,
                    ca.value.span,
                    format!("the CA file `{path}` holds no certificate"),
                )
                .with_label("no certificate to verify the remote against")
                .with_note(tlscheck::no_certificate_reason(path))
                .with_help("name a PEM file with the CA certificates, or remove `tls ca-file` to use the system's"),
            ),
            // An expired CA matters only when the remote's certificate is verified.
            Ok(_) if verify => certs::ca_file(&ca.value, tlscheck::lint::now(), cx),
            Ok(_) => {}
            Err(TlsProblem::Absent { .. }) => cx.push(
                Diagnostic::warning(
                    Code::CertificateUnreadable,
                    ca.value.span,
                    format!("the CA file `{path}` is not on this machine"),
                )
                .with_label("not found")
                .with_note("it is checked again when tcprelay starts"),
            ),
            Err(problem) => {
                let reason = match problem {
                    TlsProblem::Unreadable { reason, .. } => reason,
                    other => other.to_string(),
                };
                cx.push(
                    Diagnostic::error(
                        Code::CertificateUnreadable,
                        ca.value.span,
                        format!("cannot read the CA file `{path}`: {reason}"),
                    )
                    .with_label("unreadable"),
                );
            }
        }
    }
    if let Some(cert) = &tls.client.cert {
        relay::files(&tls.client, cert, certs::Role::Client, cx);
    }
}
