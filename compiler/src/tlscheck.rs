//! Compile-time checks of TLS material: does the certificate file hold a certificate, does
//! the key file hold a private key that the passphrase opens, and does the key belong to
//! the certificate?
//!
//! The check stage calls [`check`] for every listener with TLS so that a mistake shows up
//! as a diagnostic when the configuration is compiled, not as a failed handshake in
//! production. A file that is absent is reported separately ([`TlsProblem::Absent`]):
//! the plan may be compiled on one machine and run on another, so the caller makes that a
//! warning.
//!
//! Two rules matter here. OpenSSL must never prompt for a passphrase on the terminal, so
//! an encrypted key is only handed to OpenSSL together with the passphrase, and every
//! other key goes through a password callback that refuses. And no message ever contains
//! the passphrase.

mod facts;
pub mod lint;

pub use facts::{certificate_facts, covers, facts, facts_from_pem, utc_text, CertFacts};

use std::fmt;
use std::io;

use openssl::error::ErrorStack;
use openssl::pkey::{PKey, Private};
use openssl::x509::X509;

use tcprelay_plan::Refused;

/// What is wrong with a certificate/key pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsProblem {
    /// The file does not exist on this machine (a warning: it may exist where the plan runs).
    Absent { path: String },
    /// Exists but cannot be read or holds no PEM certificate / private key.
    Unreadable { path: String, reason: String },
    /// The private key does not belong to the certificate.
    KeyMismatch,
    /// The key is encrypted and the passphrase (or its absence) does not open it.
    BadPassphrase { reason: String },
}

impl fmt::Display for TlsProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsProblem::Absent { path } => write!(f, "`{path}` does not exist on this machine"),
            TlsProblem::Unreadable { path, reason } => write!(f, "cannot use `{path}`: {reason}"),
            TlsProblem::KeyMismatch => {
                f.write_str("the private key does not belong to the certificate")
            }
            TlsProblem::BadPassphrase { reason } => {
                write!(f, "cannot decrypt the private key: {reason}")
            }
        }
    }
}

impl std::error::Error for TlsProblem {}

/// Checks that `cert_file` holds a PEM certificate, that `key_file` holds a PEM private key
/// (`key_file` may name the same file as `cert_file`), that `passphrase` opens the key if it
/// is encrypted, and that the key belongs to the first certificate.
///
/// Problems are reported in that order; the first one found is returned.
pub fn check(cert_file: &str, key_file: &str, passphrase: Option<&str>) -> Result<(), TlsProblem> {
    let cert_pem = read(cert_file)?;
    let cert = parse_certificate(cert_file, &cert_pem)?;
    let key_pem = if key_file == cert_file {
        cert_pem
    } else {
        read(key_file)?
    };
    let key = parse_private_key(key_file, &key_pem, passphrase)?;
    let public = cert.public_key().map_err(|e| TlsProblem::Unreadable {
        path: cert_file.to_string(),
        reason: format!("cannot read the certificate's public key ({})", reasons(&e)),
    })?;
    if key.public_eq(&public) {
        Ok(())
    } else {
        Err(TlsProblem::KeyMismatch)
    }
}

/// Counts the certificates of a CA file (the trust anchors a TLS client verifies a
/// server against): every PEM certificate block must parse. `Ok(0)` when the file holds
/// none; the caller reports that.
pub fn ca_certificates(ca_file: &str) -> Result<usize, TlsProblem> {
    let pem = read(ca_file)?;
    let blocks = pem_blocks(&pem);
    let mut count = 0;
    for block in blocks.iter().filter(|b| is_certificate_label(b.label)) {
        X509::from_pem(block.text).map_err(|e| TlsProblem::Unreadable {
            path: ca_file.to_string(),
            reason: format!(
                "malformed PEM certificate number {} ({})",
                count + 1,
                reasons(&e)
            ),
        })?;
        count += 1;
    }
    Ok(count)
}

/// What a file with no certificate holds instead, for the caller's message.
pub fn no_certificate_reason(path: &str) -> String {
    match read(path) {
        Ok(pem) => no_block_reason("certificate", &pem_blocks(&pem)),
        Err(problem) => problem.to_string(),
    }
}

/// The largest certificate or key file read: a chain of certificates is a few KB.
pub const MAX_PEM_FILE: u64 = 1024 * 1024;

/// Reads a whole file, telling an absent file apart from one that cannot be read. Only
/// a regular file of at most [`MAX_PEM_FILE`] bytes is read: `tls cert-file =
/// /dev/zero` or a FIFO must not exhaust the memory or hang the compiler.
fn read(path: &str) -> Result<Vec<u8>, TlsProblem> {
    let unreadable = |reason: String| TlsProblem::Unreadable {
        path: path.to_string(),
        reason,
    };
    tcprelay_plan::read_regular(std::path::Path::new(path), MAX_PEM_FILE).map_err(|refused| {
        match refused {
            Refused::Io(e) if e.kind() == io::ErrorKind::NotFound => TlsProblem::Absent {
                path: path.to_string(),
            },
            Refused::Io(e) => unreadable(e.to_string()),
            Refused::NotRegular(kind) => unreadable(format!("it is {kind}, not a regular file")),
            Refused::TooLarge => unreadable(format!(
                "it is larger than {} MiB, the limit for a certificate or key file",
                MAX_PEM_FILE / (1024 * 1024)
            )),
        }
    })
}

/// Parses the first certificate of a PEM file.
fn parse_certificate(path: &str, pem: &[u8]) -> Result<X509, TlsProblem> {
    let unreadable = |reason: String| TlsProblem::Unreadable {
        path: path.to_string(),
        reason,
    };
    let blocks = pem_blocks(pem);
    let Some(block) = blocks.iter().find(|b| is_certificate_label(b.label)) else {
        return Err(unreadable(no_block_reason("certificate", &blocks)));
    };
    X509::from_pem(block.text)
        .map_err(|e| unreadable(format!("malformed PEM certificate ({})", reasons(&e))))
}

/// Parses the first private key of a PEM file, decrypting it with `passphrase` if needed.
fn parse_private_key(
    path: &str,
    pem: &[u8],
    passphrase: Option<&str>,
) -> Result<PKey<Private>, TlsProblem> {
    let blocks = pem_blocks(pem);
    let Some(block) = blocks.iter().find(|b| b.label.ends_with("PRIVATE KEY")) else {
        return Err(TlsProblem::Unreadable {
            path: path.to_string(),
            reason: no_block_reason("private key", &blocks),
        });
    };
    if block.is_encrypted() {
        let bad = |reason: String| TlsProblem::BadPassphrase { reason };
        let Some(passphrase) = passphrase else {
            return Err(bad(format!(
                "the key in `{path}` is encrypted and no passphrase is given"
            )));
        };
        if passphrase.contains('\0') {
            // OpenSSL takes the passphrase as a C string; the openssl crate would panic.
            return Err(bad("the passphrase contains a NUL character".to_string()));
        }
        PKey::private_key_from_pem_passphrase(block.text, passphrase.as_bytes()).map_err(|e| {
            bad(format!(
                "the passphrase does not open the key in `{path}` ({})",
                reasons(&e)
            ))
        })
    } else {
        // The callback refuses, so OpenSSL can never fall back to prompting on the terminal
        // should it see encryption that `is_encrypted` missed.
        PKey::private_key_from_pem_callback(block.text, |_buf| Err(ErrorStack::get())).map_err(
            |e| TlsProblem::Unreadable {
                path: path.to_string(),
                reason: format!("malformed PEM private key ({})", reasons(&e)),
            },
        )
    }
}

fn is_certificate_label(label: &str) -> bool {
    matches!(
        label,
        "CERTIFICATE" | "X509 CERTIFICATE" | "TRUSTED CERTIFICATE"
    )
}

/// Says why no block of the wanted kind was found, naming what the file holds instead.
fn no_block_reason(wanted: &str, blocks: &[PemBlock<'_>]) -> String {
    let mut labels: Vec<&str> = blocks.iter().map(|b| b.label).collect();
    labels.dedup();
    if labels.is_empty() {
        format!("no PEM {wanted} in the file (no PEM data at all)")
    } else {
        let found: Vec<String> = labels.iter().map(|l| format!("`{l}`")).collect();
        format!(
            "no PEM {wanted} in the file (it holds {})",
            found.join(", ")
        )
    }
}

/// The distinct reason strings of an OpenSSL error stack, e.g. "bad decrypt".
///
/// Only OpenSSL's static reason strings are used, never the error data, so no user input
/// (a passphrase in particular) can appear in the text.
fn reasons(stack: &ErrorStack) -> String {
    let mut out: Vec<&str> = Vec::new();
    for reason in stack.errors().iter().filter_map(|e| e.reason()) {
        if !out.contains(&reason) {
            out.push(reason);
        }
    }
    if out.is_empty() {
        "unknown OpenSSL error".to_string()
    } else {
        format!("OpenSSL: {}", out.join("; "))
    }
}

/// One `-----BEGIN LABEL-----` … `-----END LABEL-----` block of a PEM file.
#[derive(Debug)]
struct PemBlock<'a> {
    label: &'a str,
    /// The block from its BEGIN line to its END line inclusive (to the end of the data if
    /// the END line is missing, so that OpenSSL reports the damage).
    text: &'a [u8],
}

impl PemBlock<'_> {
    /// An encrypted PKCS#8 key, or a traditional key with `Proc-Type: 4,ENCRYPTED`.
    fn is_encrypted(&self) -> bool {
        self.label == "ENCRYPTED PRIVATE KEY"
            || lines(self.text)
                .any(|(_, line)| line.starts_with(b"Proc-Type:") && contains(line, b"ENCRYPTED"))
    }
}

/// Finds the PEM blocks of `data`, which need not be UTF-8.
fn pem_blocks(data: &[u8]) -> Vec<PemBlock<'_>> {
    let mut blocks = Vec::new();
    let mut open: Option<(usize, &str)> = None;
    for (start, line) in lines(data) {
        let end_of_line = start + line.len();
        match open {
            None => {
                if let Some(label) = armour(line, b"-----BEGIN ") {
                    open = Some((start, label));
                }
            }
            Some((begin, label)) => {
                if armour(line, b"-----END ") == Some(label) {
                    blocks.push(PemBlock {
                        label,
                        text: &data[begin..end_of_line],
                    });
                    open = None;
                }
            }
        }
    }
    if let Some((begin, label)) = open {
        blocks.push(PemBlock {
            label,
            text: &data[begin..],
        });
    }
    blocks
}

/// The label of an armour line such as `-----BEGIN CERTIFICATE-----`.
fn armour<'a>(line: &'a [u8], prefix: &[u8]) -> Option<&'a str> {
    let label = line.strip_prefix(prefix)?.strip_suffix(b"-----")?;
    std::str::from_utf8(label).ok()
}

/// The lines of `data` with their start offsets, without line ends or trailing blanks.
fn lines(data: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let mut start = 0;
    data.split(|&b| b == b'\n').map(move |line| {
        let at = start;
        start += line.len() + 1;
        (at, line.trim_ascii_end())
    })
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Generates TLS material for tests: self-signed certificates and their keys, written as
/// PEM files into a temporary directory.
#[cfg(test)]
pub(crate) mod test_pki {
    use std::path::Path;

    use openssl::asn1::Asn1Time;
    use openssl::bn::BigNum;
    use openssl::ec::{EcGroup, EcKey};
    use openssl::hash::MessageDigest;
    use openssl::nid::Nid;
    use openssl::pkey::{PKey, Private};
    use openssl::rsa::Rsa;
    use openssl::symm::Cipher;
    use openssl::x509::extension::SubjectAlternativeName;
    use openssl::x509::{X509NameBuilder, X509};
    use tempfile::TempDir;

    /// The passphrase of the encrypted keys.
    pub(crate) const PASSPHRASE: &str = "correct horse";

    /// A fresh EC P-256 key.
    pub(crate) fn ec_key() -> PKey<Private> {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
    }

    /// A fresh RSA-2048 key.
    pub(crate) fn rsa_key() -> PKey<Private> {
        PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap()
    }

    /// A self-signed certificate for `key`, valid for a day, for the name `localhost` and
    /// the address 127.0.0.1.
    pub(crate) fn self_signed(key: &PKey<Private>) -> X509 {
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_nid(Nid::COMMONNAME, "localhost")
            .unwrap();
        let name = name.build();
        let mut builder = X509::builder().unwrap();
        builder.set_version(2).unwrap();
        let serial = BigNum::from_u32(1).unwrap().to_asn1_integer().unwrap();
        builder.set_serial_number(&serial).unwrap();
        builder.set_subject_name(&name).unwrap();
        builder.set_issuer_name(&name).unwrap();
        builder.set_pubkey(key).unwrap();
        builder
            .set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        builder
            .set_not_after(&Asn1Time::days_from_now(1).unwrap())
            .unwrap();
        let san = SubjectAlternativeName::new()
            .dns("localhost")
            .ip("127.0.0.1")
            .build(&builder.x509v3_context(None, None))
            .unwrap();
        builder.append_extension(san).unwrap();
        builder.sign(key, MessageDigest::sha256()).unwrap();
        builder.build()
    }

    /// A certificate for `key` named `cn` (the common name and, when `dns` is given,
    /// those DNS names as alternative names), valid from `not_before` to `not_after`
    /// (seconds since the epoch), signed by `issuer` (its certificate and key), or
    /// self-signed. The certificate lints' tests choose the dates with it.
    pub(crate) fn issue(
        cn: &str,
        dns: &[&str],
        key: &PKey<Private>,
        issuer: Option<(&X509, &PKey<Private>)>,
        not_before: i64,
        not_after: i64,
    ) -> X509 {
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_nid(Nid::COMMONNAME, cn).unwrap();
        let name = name.build();
        let mut builder = X509::builder().unwrap();
        builder.set_version(2).unwrap();
        let serial = BigNum::from_u32(2).unwrap().to_asn1_integer().unwrap();
        builder.set_serial_number(&serial).unwrap();
        builder.set_subject_name(&name).unwrap();
        match issuer {
            Some((cert, _)) => builder.set_issuer_name(cert.subject_name()).unwrap(),
            None => builder.set_issuer_name(&name).unwrap(),
        }
        builder.set_pubkey(key).unwrap();
        builder
            .set_not_before(&Asn1Time::from_unix(not_before).unwrap())
            .unwrap();
        builder
            .set_not_after(&Asn1Time::from_unix(not_after).unwrap())
            .unwrap();
        if !dns.is_empty() {
            let mut san = SubjectAlternativeName::new();
            for name in dns {
                san.dns(name);
            }
            let san = san.build(&builder.x509v3_context(None, None)).unwrap();
            builder.append_extension(san).unwrap();
        }
        let signer = issuer.map_or(key, |(_, k)| k);
        builder.sign(signer, MessageDigest::sha256()).unwrap();
        builder.build()
    }

    /// Seconds since the epoch, now.
    pub(crate) fn now() -> i64 {
        super::lint::now()
    }

    /// A root, an intermediate it signed and a leaf the intermediate signed (a year
    /// each), plus a stray self-signed certificate and an impostor: the
    /// intermediate's name with another key.
    pub(crate) struct Chain {
        pub(crate) root: X509,
        pub(crate) intermediate: X509,
        pub(crate) leaf: X509,
        pub(crate) leaf_key: PKey<Private>,
        pub(crate) stray: X509,
        pub(crate) impostor: X509,
    }

    impl Chain {
        pub(crate) fn new() -> Chain {
            let (from, to) = (now() - 86_400, now() + 365 * 86_400);
            let root_key = ec_key();
            let root = issue("Test Root", &[], &root_key, None, from, to);
            let mid_key = ec_key();
            let intermediate = issue(
                "Test Intermediate",
                &[],
                &mid_key,
                Some((&root, &root_key)),
                from,
                to,
            );
            let leaf_key = ec_key();
            let leaf = issue(
                "localhost",
                &["localhost"],
                &leaf_key,
                Some((&intermediate, &mid_key)),
                from,
                to,
            );
            let stray = issue("Stray", &[], &ec_key(), None, from, to);
            let impostor = issue("Test Intermediate", &[], &ec_key(), None, from, to);
            Chain {
                root,
                intermediate,
                leaf,
                leaf_key,
                stray,
                impostor,
            }
        }
    }

    /// A certificate and its key written in every form the tests need.
    pub(crate) struct Fixture {
        /// Keeps the files alive; they are removed when the fixture is dropped.
        pub(crate) dir: TempDir,
        /// `cert.pem`: the certificate.
        pub(crate) cert: String,
        /// `key.pem`: its private key, unencrypted PKCS#8.
        pub(crate) key: String,
        /// `key-encrypted.pem`: the same key, PKCS#8 with AES-256-CBC and [`PASSPHRASE`].
        pub(crate) key_encrypted: String,
        /// `combined.pem`: the certificate followed by the unencrypted key.
        pub(crate) combined: String,
        /// `other-key.pem`: another key that does not belong to the certificate.
        pub(crate) other_key: String,
    }

    impl Fixture {
        /// Writes `contents` into the fixture's directory and returns the path.
        pub(crate) fn write(&self, name: &str, contents: &[u8]) -> String {
            write(self.dir.path(), name, contents)
        }
    }

    fn write(dir: &Path, name: &str, contents: &[u8]) -> String {
        let path = dir.join(name);
        std::fs::write(&path, contents).unwrap();
        path.to_str().unwrap().to_string()
    }

    /// Generates an EC P-256 certificate and key and writes the fixture's files.
    pub(crate) fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let key = ec_key();
        let cert_pem = self_signed(&key).to_pem().unwrap();
        let key_pem = key.private_key_to_pem_pkcs8().unwrap();
        let encrypted = key
            .private_key_to_pem_pkcs8_passphrase(Cipher::aes_256_cbc(), PASSPHRASE.as_bytes())
            .unwrap();
        let combined = [cert_pem.as_slice(), key_pem.as_slice()].concat();
        let other = ec_key().private_key_to_pem_pkcs8().unwrap();
        let path = dir.path();
        Fixture {
            cert: write(path, "cert.pem", &cert_pem),
            key: write(path, "key.pem", &key_pem),
            key_encrypted: write(path, "key-encrypted.pem", &encrypted),
            combined: write(path, "combined.pem", &combined),
            other_key: write(path, "other-key.pem", &other),
            dir,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_pki::{self, PASSPHRASE};
    use super::*;
    use openssl::symm::Cipher;

    #[test]
    fn good_pair_passes() {
        let f = test_pki::fixture();
        assert_eq!(check(&f.cert, &f.key, None), Ok(()));
    }

    #[test]
    fn good_rsa_pair_passes() {
        let f = test_pki::fixture();
        let key = test_pki::rsa_key();
        let cert = f.write(
            "rsa-cert.pem",
            &test_pki::self_signed(&key).to_pem().unwrap(),
        );
        let key = f.write("rsa-key.pem", &key.private_key_to_pem_pkcs8().unwrap());
        assert_eq!(check(&cert, &key, None), Ok(()));
    }

    #[test]
    fn combined_file_serves_as_cert_and_key() {
        let f = test_pki::fixture();
        assert_eq!(check(&f.combined, &f.combined, None), Ok(()));
    }

    #[test]
    fn key_first_in_combined_file_is_found() {
        let f = test_pki::fixture();
        let key = std::fs::read(&f.key).unwrap();
        let cert = std::fs::read(&f.cert).unwrap();
        let both = f.write("key-then-cert.pem", &[key, cert].concat());
        assert_eq!(check(&both, &both, None), Ok(()));
    }

    #[test]
    fn key_of_another_certificate_is_a_mismatch() {
        let f = test_pki::fixture();
        assert_eq!(
            check(&f.cert, &f.other_key, None),
            Err(TlsProblem::KeyMismatch)
        );
    }

    #[test]
    fn encrypted_key_opens_with_the_right_passphrase() {
        let f = test_pki::fixture();
        assert_eq!(check(&f.cert, &f.key_encrypted, Some(PASSPHRASE)), Ok(()));
    }

    #[test]
    fn wrong_passphrase_is_reported_without_the_passphrase() {
        let f = test_pki::fixture();
        let wrong = "battery staple";
        let err = check(&f.cert, &f.key_encrypted, Some(wrong)).unwrap_err();
        assert!(matches!(err, TlsProblem::BadPassphrase { .. }), "{err:?}");
        let text = err.to_string();
        assert!(!text.contains(wrong), "{text}");
        assert!(!text.contains(PASSPHRASE), "{text}");
        assert!(!text.contains('\n'), "{text}");
    }

    #[test]
    fn encrypted_key_without_passphrase_fails_without_prompting() {
        // Would hang waiting for the terminal if OpenSSL were allowed to prompt.
        let f = test_pki::fixture();
        let err = check(&f.cert, &f.key_encrypted, None).unwrap_err();
        assert!(matches!(err, TlsProblem::BadPassphrase { .. }), "{err:?}");
        assert!(err.to_string().contains("no passphrase"), "{err}");
    }

    #[test]
    fn traditional_encrypted_key_is_recognised() {
        // `-----BEGIN RSA PRIVATE KEY-----` with `Proc-Type: 4,ENCRYPTED` headers.
        let f = test_pki::fixture();
        let key = test_pki::rsa_key();
        let cert = f.write(
            "rsa-cert.pem",
            &test_pki::self_signed(&key).to_pem().unwrap(),
        );
        let pem = key
            .rsa()
            .unwrap()
            .private_key_to_pem_passphrase(Cipher::aes_256_cbc(), PASSPHRASE.as_bytes())
            .unwrap();
        let key = f.write("rsa-key-encrypted.pem", &pem);
        assert_eq!(check(&cert, &key, Some(PASSPHRASE)), Ok(()));
        let err = check(&cert, &key, None).unwrap_err();
        assert!(matches!(err, TlsProblem::BadPassphrase { .. }), "{err:?}");
        let err = check(&cert, &key, Some("wrong")).unwrap_err();
        assert!(matches!(err, TlsProblem::BadPassphrase { .. }), "{err:?}");
    }

    #[test]
    fn passphrase_with_nul_is_refused_without_panicking() {
        let f = test_pki::fixture();
        let err = check(&f.cert, &f.key_encrypted, Some("a\0b")).unwrap_err();
        assert!(matches!(err, TlsProblem::BadPassphrase { .. }), "{err:?}");
    }

    #[test]
    fn passphrase_for_an_unencrypted_key_is_harmless() {
        let f = test_pki::fixture();
        assert_eq!(check(&f.cert, &f.key, Some(PASSPHRASE)), Ok(()));
    }

    #[test]
    fn absent_cert_is_reported_first() {
        let f = test_pki::fixture();
        let missing = f.dir.path().join("missing.pem");
        let missing = missing.to_str().unwrap();
        let err = check(missing, missing, None).unwrap_err();
        assert_eq!(
            err,
            TlsProblem::Absent {
                path: missing.to_string()
            }
        );
        assert!(err.to_string().contains(missing));
    }

    #[test]
    fn absent_key_is_reported() {
        let f = test_pki::fixture();
        let missing = f.dir.path().join("missing-key.pem");
        let missing = missing.to_str().unwrap();
        assert_eq!(
            check(&f.cert, missing, None),
            Err(TlsProblem::Absent {
                path: missing.to_string()
            })
        );
    }

    #[test]
    fn garbage_cert_file_is_unreadable() {
        let f = test_pki::fixture();
        let garbage = f.write("garbage.pem", b"\xff\xfe not a certificate\n");
        let err = check(&garbage, &f.key, None).unwrap_err();
        assert!(
            matches!(&err, TlsProblem::Unreadable { path, .. } if *path == garbage),
            "{err:?}"
        );
        assert!(err.to_string().contains("no PEM certificate"), "{err}");
    }

    #[test]
    fn damaged_certificate_is_unreadable() {
        let f = test_pki::fixture();
        let damaged = f.write(
            "damaged.pem",
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        );
        let err = check(&damaged, &f.key, None).unwrap_err();
        assert!(
            matches!(&err, TlsProblem::Unreadable { path, .. } if *path == damaged),
            "{err:?}"
        );
        assert!(!err.to_string().contains('\n'), "{err}");
    }

    #[test]
    fn key_file_with_only_a_certificate_is_unreadable() {
        let f = test_pki::fixture();
        let err = check(&f.cert, &f.cert, None).unwrap_err();
        assert!(
            matches!(&err, TlsProblem::Unreadable { path, .. } if *path == f.cert),
            "{err:?}"
        );
        assert!(err.to_string().contains("`CERTIFICATE`"), "{err}");
    }

    #[test]
    fn directory_as_cert_is_unreadable() {
        let f = test_pki::fixture();
        let dir = f.dir.path().to_str().unwrap();
        let err = check(dir, &f.key, None).unwrap_err();
        assert!(matches!(err, TlsProblem::Unreadable { .. }), "{err:?}");
    }

    #[test]
    fn a_device_a_fifo_or_a_huge_file_as_cert_or_key_is_refused_at_once() {
        let f = test_pki::fixture();
        let at = |name: &str| f.dir.path().join(name).to_str().unwrap().to_string();
        std::os::unix::fs::symlink("/dev/zero", at("zero.pem")).unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(at("fifo.pem"))
            .status()
            .unwrap();
        assert!(made.success());
        let huge = f.write("huge.pem", &vec![b'#'; MAX_PEM_FILE as usize + 1]);
        for (cert, key, says) in [
            (
                at("zero.pem"),
                f.key.clone(),
                "it is a character device (such as /dev/zero or /dev/urandom), not a regular file",
            ),
            (
                f.cert.clone(),
                at("fifo.pem"),
                "it is a FIFO, not a regular file",
            ),
            (
                huge.clone(),
                f.key.clone(),
                "it is larger than 1 MiB, the limit for a certificate or key file",
            ),
        ] {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let _ = tx.send(check(&cert, &key, None));
            });
            let err = rx
                .recv_timeout(std::time::Duration::from_secs(5))
                .expect("the check returns within 5 s")
                .unwrap_err();
            assert!(matches!(err, TlsProblem::Unreadable { .. }), "{err:?}");
            assert!(err.to_string().ends_with(says), "{err}");
        }
    }
}
