//! The certificate lints through the whole pipeline (E0080 to E0085, E0034 for a
//! remote's client certificate and for a leaf that is not first): certificates
//! with dates chosen around the clock of the test run (`test_pki::issue`), written
//! to a temporary directory.

use super::tests::compile;
use crate::diag::{Code, Diagnostic, Severity};
use crate::tlscheck::test_pki::{self, ec_key, issue};
use crate::tlscheck::utc_text;
use openssl::pkey::{PKey, Private};
use openssl::x509::X509;

const DAY: i64 = 86_400;

/// The diagnostics with `code`.
fn with(diags: &[Diagnostic], code: Code) -> Vec<&Diagnostic> {
    diags.iter().filter(|d| d.code == code).collect()
}

/// The one diagnostic with `code`, of `severity`, on the text `under`.
#[track_caller]
fn one<'d>(
    src: &str,
    diags: &'d [Diagnostic],
    code: Code,
    severity: Severity,
    under: &str,
) -> &'d Diagnostic {
    let found = with(diags, code);
    assert_eq!(found.len(), 1, "expected one {code}, got {diags:#?}");
    let d = found[0];
    assert_eq!(d.severity, severity, "{d:#?}");
    assert_eq!(&src[d.span.range()], under, "{d:#?}");
    d
}

/// Files in a temporary directory.
struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Dir {
        Dir(tempfile::tempdir().unwrap())
    }

    fn write(&self, name: &str, parts: &[Vec<u8>]) -> String {
        let path = self.0.path().join(name);
        std::fs::write(&path, parts.concat()).unwrap();
        path.to_str().unwrap().to_string()
    }

    /// `cert` (then `chain`) in one file, and `key` in another: their paths.
    fn pair(
        &self,
        name: &str,
        cert: &X509,
        chain: &[&X509],
        key: &PKey<Private>,
    ) -> (String, String) {
        let mut pems = vec![cert.to_pem().unwrap()];
        pems.extend(chain.iter().map(|c| c.to_pem().unwrap()));
        let cert = self.write(&format!("{name}.pem"), &pems);
        let key = self.write(
            &format!("{name}-key.pem"),
            &[key.private_key_to_pem_pkcs8().unwrap()],
        );
        (cert, key)
    }
}

/// A self-signed certificate for `localhost` valid from `from` to `to` (seconds
/// from now), with its key.
fn dated(from: i64, to: i64) -> (X509, PKey<Private>) {
    let now = test_pki::now();
    let key = ec_key();
    (
        issue(
            "localhost",
            &["localhost"],
            &key,
            None,
            now + from,
            now + to,
        ),
        key,
    )
}

/// A relay terminating TLS on `listen` with these files.
fn listener_config(listen: &str, cert: &str, key: &str) -> String {
    format!(
        "id = spawnd {{\n listen = {{ {listen} tls = yes }}\n}}\nid = tcprelay {{\n remote = {{ address = 10.0.0.1 port = 22 }}\n tls cert-file = {cert}\n tls key-file = {key}\n}}\n"
    )
}

/// A relay with a TLS remote whose block ends with `tls`.
fn remote_config(tls: &str) -> String {
    format!(
        "id = spawnd {{\n listen = {{ port = 2222 }}\n}}\nid = tcprelay {{\n remote = {{ address = 10.0.0.1 port = 443 tls = yes tls sni = app.example.com {tls} }}\n}}\n"
    )
}

#[test]
fn e0080_a_listener_certificate_that_expires_within_30_days() {
    let dir = Dir::new();
    // 10 days and a half: "10 days" however long the test takes to get there.
    let (cert, key) = dated(-DAY, 10 * DAY + DAY / 2);
    let not_after = test_pki::now() + 10 * DAY + DAY / 2;
    let (cert_file, key_file) = dir.pair("soon", &cert, &[], &key);
    let src = listener_config("port = 8443", &cert_file, &key_file);
    let (plan, diags) = compile(&src);
    let d = one(
        &src,
        &diags,
        Code::CertificateExpiresSoon,
        Severity::Warning,
        &cert_file,
    );
    assert_eq!(
        d.message,
        format!(
            "the certificate in `{cert_file}` (CN=localhost) expires in 10 days, on {}",
            // The date as the certificate holds it (the seconds are those of issue).
            utc_text(crate::tlscheck::certificate_facts(&cert_file).unwrap()[0].not_after)
        )
    );
    assert!(
        d.message.contains(&utc_text(not_after)[..10]),
        "{}",
        d.message
    );
    assert!(plan.is_some(), "a warning");
    // 31 days left: nothing.
    let (cert, key) = dated(-DAY, 31 * DAY);
    let (cert_file, key_file) = dir.pair("later", &cert, &[], &key);
    let (plan, diags) = compile(&listener_config("port = 8443", &cert_file, &key_file));
    assert!(diags.is_empty(), "{diags:#?}");
    assert!(plan.is_some());
}

#[test]
fn e0081_an_expired_listener_certificate_is_an_error() {
    let dir = Dir::new();
    let (cert, key) = dated(-90 * DAY, -3 * DAY - 60);
    let (cert_file, key_file) = dir.pair("expired", &cert, &[], &key);
    let src = listener_config("port = 8443", &cert_file, &key_file);
    let (plan, diags) = compile(&src);
    let d = one(
        &src,
        &diags,
        Code::CertificateExpired,
        Severity::Error,
        &cert_file,
    );
    assert!(d.message.ends_with(", 3 days ago"), "{}", d.message);
    assert!(
        d.message.contains("(CN=localhost) expired on "),
        "{}",
        d.message
    );
    assert!(plan.is_none());
}

#[test]
fn e0082_a_listener_certificate_not_valid_yet_is_an_error() {
    let dir = Dir::new();
    let (cert, key) = dated(2 * DAY + DAY / 2, 400 * DAY);
    let (cert_file, key_file) = dir.pair("future", &cert, &[], &key);
    let src = listener_config("port = 8443", &cert_file, &key_file);
    let (plan, diags) = compile(&src);
    let d = one(
        &src,
        &diags,
        Code::CertificateNotYetValid,
        Severity::Error,
        &cert_file,
    );
    assert!(d.message.ends_with(", in 2 days"), "{}", d.message);
    assert!(plan.is_none());
}

#[test]
fn e0081_an_expired_certificate_of_the_chain_is_a_warning_naming_it() {
    let dir = Dir::new();
    let now = test_pki::now();
    let root_key = ec_key();
    let root = issue("Old Root", &[], &root_key, None, now - 900 * DAY, now - DAY);
    let key = ec_key();
    let leaf = issue(
        "localhost",
        &["localhost"],
        &key,
        Some((&root, &root_key)),
        now - DAY,
        now + 300 * DAY,
    );
    let (cert_file, key_file) = dir.pair("chain", &leaf, &[&root], &key);
    let src = listener_config("port = 8443", &cert_file, &key_file);
    let (plan, diags) = compile(&src);
    let d = one(
        &src,
        &diags,
        Code::CertificateExpired,
        Severity::Warning,
        &cert_file,
    );
    assert!(
        d.message.starts_with(&format!(
            "certificate 2 of `{cert_file}` (CN=Old Root), in the chain of the certificate expired on "
        )),
        "{}",
        d.message
    );
    assert!(plan.is_some());
}

#[test]
fn a_remote_client_certificate_is_checked_for_its_dates_and_its_key() {
    let dir = Dir::new();
    let (cert, key) = dated(-90 * DAY, -DAY - 60);
    let (cert_file, key_file) = dir.pair("client", &cert, &[], &key);
    let src = remote_config(&format!(
        "tls verify = no tls cert-file = {cert_file} tls key-file = {key_file}"
    ));
    let (plan, diags) = compile(&src);
    let d = one(
        &src,
        &diags,
        Code::CertificateExpired,
        Severity::Error,
        &cert_file,
    );
    assert!(
        d.message.starts_with(&format!(
            "the client certificate in `{cert_file}` (CN=localhost) expired on "
        )),
        "{}",
        d.message
    );
    assert!(plan.is_none());

    // E0034 for a client key that belongs to another certificate.
    let (cert, _) = dated(-DAY, 300 * DAY);
    let other = ec_key();
    let (cert_file, key_file) = dir.pair("client2", &cert, &[], &other);
    let src = remote_config(&format!(
        "tls verify = no tls cert-file = {cert_file} tls key-file = {key_file}"
    ));
    let (plan, diags) = compile(&src);
    let d = one(&src, &diags, Code::KeyMismatch, Severity::Error, &key_file);
    assert_eq!(&src[d.labels[0].span.range()], cert_file);
    assert!(plan.is_none());
}

#[test]
fn e0083_expired_ca_certificates_warn_and_a_file_of_only_those_is_an_error() {
    let dir = Dir::new();
    let (old, _) = dated(-900 * DAY, -5 * DAY);
    let (good, _) = dated(-DAY, 900 * DAY);
    let (soon, _) = dated(-DAY, 7 * DAY + DAY / 2);
    let mixed = dir.write(
        "mixed.pem",
        &[good.to_pem().unwrap(), old.to_pem().unwrap()],
    );
    let src = remote_config(&format!("tls ca-file = {mixed}"));
    let (plan, diags) = compile(&src);
    let d = one(
        &src,
        &diags,
        Code::CaCertificateExpired,
        Severity::Warning,
        &mixed,
    );
    assert_eq!(
        d.message,
        format!("1 of the 2 certificates of the CA file `{mixed}` is not valid now")
    );
    assert_eq!(d.notes.len(), 1, "{d:#?}");
    assert!(
        d.notes[0].starts_with("certificate 2 (CN=localhost) expired on "),
        "{d:#?}"
    );
    assert!(plan.is_some());

    let only_old = dir.write("old.pem", &[old.to_pem().unwrap()]);
    let src = remote_config(&format!("tls ca-file = {only_old}"));
    let (plan, diags) = compile(&src);
    let d = one(
        &src,
        &diags,
        Code::CaCertificateExpired,
        Severity::Error,
        &only_old,
    );
    assert_eq!(
        d.message,
        format!("no certificate of the CA file `{only_old}` is valid now")
    );
    assert!(plan.is_none());

    // Not verified: the CA file is not used (E0041 says so), its dates do not matter.
    let src = remote_config(&format!("tls verify = no tls ca-file = {only_old}"));
    let (plan, diags) = compile(&src);
    assert!(
        with(&diags, Code::CaCertificateExpired).is_empty(),
        "{diags:#?}"
    );
    assert!(plan.is_some());

    let with_soon = dir.write(
        "soon.pem",
        &[good.to_pem().unwrap(), soon.to_pem().unwrap()],
    );
    let src = remote_config(&format!("tls ca-file = {with_soon}"));
    let (_, diags) = compile(&src);
    let d = one(
        &src,
        &diags,
        Code::CertificateExpiresSoon,
        Severity::Warning,
        &with_soon,
    );
    assert!(d.notes[0].contains(") expires in 7 days, on "), "{d:#?}");
}

#[test]
fn e0084_a_chain_out_of_order_names_the_positions_and_the_order_that_works() {
    let dir = Dir::new();
    let pki = test_pki::Chain::new();
    let (cert_file, key_file) = dir.pair(
        "swapped",
        &pki.leaf,
        &[&pki.root, &pki.intermediate],
        &pki.leaf_key,
    );
    let src = listener_config("port = 8443", &cert_file, &key_file);
    let (plan, diags) = compile(&src);
    let d = one(
        &src,
        &diags,
        Code::ChainOutOfOrder,
        Severity::Warning,
        &cert_file,
    );
    assert_eq!(
        d.message,
        format!(
            "the certificates of `{cert_file}` are out of order: certificate 2 (CN=Test Root) did not issue certificate 1 (CN=localhost)"
        )
    );
    assert_eq!(
        d.help.as_deref(),
        Some("reorder the file as certificates 1, 3, 2: the server's certificate first, then each certificate's issuer")
    );
    assert!(plan.is_some());

    // In order: nothing.
    let (cert_file, key_file) = dir.pair(
        "ordered",
        &pki.leaf,
        &[&pki.intermediate, &pki.root],
        &pki.leaf_key,
    );
    let (_, diags) = compile(&listener_config("port = 8443", &cert_file, &key_file));
    assert!(diags.is_empty(), "{diags:#?}");

    // The issuer's name on another key: the signature gives it away.
    let (cert_file, key_file) = dir.pair("impostor", &pki.leaf, &[&pki.impostor], &pki.leaf_key);
    let src = listener_config("port = 8443", &cert_file, &key_file);
    let (_, diags) = compile(&src);
    let d = one(
        &src,
        &diags,
        Code::ChainOutOfOrder,
        Severity::Warning,
        &cert_file,
    );
    assert!(
        d.notes[0].ends_with("the signature does not verify with its key"),
        "{d:#?}"
    );
}

#[test]
fn e0034_a_leaf_that_is_not_first_is_named_once() {
    let dir = Dir::new();
    let pki = test_pki::Chain::new();
    let (cert_file, key_file) =
        dir.pair("mid-first", &pki.intermediate, &[&pki.leaf], &pki.leaf_key);
    let src = listener_config("port = 8443", &cert_file, &key_file);
    let (_, diags) = compile(&src);
    let d = one(&src, &diags, Code::KeyMismatch, Severity::Error, &key_file);
    assert!(
        d.notes[0].starts_with(&format!(
            "the key belongs to certificate 2 of `{cert_file}`"
        )),
        "{d:#?}"
    );
    assert!(with(&diags, Code::ChainOutOfOrder).is_empty(), "{diags:#?}");
}

#[test]
fn e0085_a_listener_host_name_the_certificate_does_not_cover() {
    let dir = Dir::new();
    let now = test_pki::now();
    let key = ec_key();
    let cert = issue(
        "db.example.com",
        &["db.example.com"],
        &key,
        None,
        now - DAY,
        now + 300 * DAY,
    );
    let (cert_file, key_file) = dir.pair("db", &cert, &[], &key);
    // `localhost` resolves to 127.0.0.1 and ::1 everywhere: two listeners, one name.
    let src = listener_config("address = localhost port = 8443", &cert_file, &key_file);
    let (plan, diags) = compile(&src);
    let d = one(
        &src,
        &diags,
        Code::NameNotCovered,
        Severity::Warning,
        "localhost",
    );
    assert_eq!(
        d.message,
        format!(
            "the certificate in `{cert_file}` does not cover `localhost`, the listener's host name"
        )
    );
    assert_eq!(d.notes, ["the certificate covers db.example.com"]);
    assert_eq!(plan.expect("a warning").spawnd.listeners.len(), 2);

    // A certificate for the name: nothing.
    let (cert, key) = dated(-DAY, 300 * DAY);
    let (cert_file, key_file) = dir.pair("localhost", &cert, &[], &key);
    let (_, diags) = compile(&listener_config(
        "address = LocalHost. port = 8443",
        &cert_file,
        &key_file,
    ));
    assert!(with(&diags, Code::NameNotCovered).is_empty(), "{diags:#?}");

    // An IP address: checked only against a certificate that names addresses.
    let src = listener_config("address = 127.0.0.2 port = 8443", &cert_file, &key_file);
    let (_, diags) = compile(&src);
    assert!(diags.is_empty(), "no IP SAN in the certificate: {diags:#?}");
    let f = test_pki::fixture(); // its certificate names 127.0.0.1
    let src = listener_config("address = 127.0.0.2 port = 8443", &f.cert, &f.key);
    let (_, diags) = compile(&src);
    let d = one(
        &src,
        &diags,
        Code::NameNotCovered,
        Severity::Warning,
        "127.0.0.2",
    );
    assert!(
        d.message.ends_with("`127.0.0.2`, the listener's address"),
        "{}",
        d.message
    );
    let src = listener_config("address = 127.0.0.1 port = 8443", &f.cert, &f.key);
    let (_, diags) = compile(&src);
    assert!(with(&diags, Code::NameNotCovered).is_empty(), "{diags:#?}");
}
