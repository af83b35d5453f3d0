//! Runs the workspace's binaries and makes test material (certificates).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// The path of a binary of this workspace. The first call builds the workspace's
/// binaries with the same cargo and profile as this test binary: `cargo test` builds
/// only the binaries of the package under test, and a stale binary would test old
/// code.
pub fn bin(name: &str) -> PathBuf {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let exe = std::env::current_exe().expect("the test binary has a path");
    // target/<profile>/deps/integration-HASH -> target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives in target/<profile>/deps")
        .to_path_buf();
    let built = BUILT.get_or_init(|| {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args([
            "build",
            "--quiet",
            "--bins",
            "-p",
            "tcprelay-cc",
            "-p",
            "tcprelay",
        ])
        .current_dir(root());
        if dir.file_name().is_some_and(|p| p == "release") {
            cmd.arg("--release");
        }
        match cmd.status() {
            Ok(s) if s.success() => Ok(()),
            Ok(s) => Err(format!("building the binaries failed: {s}")),
            Err(e) => Err(format!("cannot run cargo: {e}")),
        }
    });
    if let Err(e) = built {
        panic!("{e}");
    }
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing after the build",
        path.display()
    );
    path
}

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the workspace")
        .to_path_buf()
}

/// Runs `tcprelay-cc` with `args` in `dir`, with no standard input.
pub fn cc(dir: &Path, args: &[&str]) -> Output {
    cc_with_stdin(dir, args, None)
}

/// Runs `tcprelay-cc` with `args` in `dir`, feeding `stdin` when given.
pub fn cc_with_stdin(dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
    use std::io::Write;
    let mut child = Command::new(bin("tcprelay-cc"))
        .args(args)
        .current_dir(dir)
        .env_remove("NO_COLOR")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tcprelay-cc starts");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        pipe.write_all(input).expect("write stdin");
    }
    child.wait_with_output().expect("tcprelay-cc runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Test certificates, made fresh for each test run, never committed:
/// `cert.pem` (self-signed, CN=localhost), `key.pem` (its key), `other-key.pem` (a key
/// that does not match), `enc-key.pem` (the key encrypted with [`PASSPHRASE`]) and
/// `combined.pem` (certificate and key in one file).
pub fn make_certs(dir: &Path) {
    use openssl::asn1::Asn1Time;
    use openssl::bn::BigNum;
    use openssl::ec::{EcGroup, EcKey};
    use openssl::hash::MessageDigest;
    use openssl::nid::Nid;
    use openssl::pkey::PKey;
    use openssl::symm::Cipher;
    use openssl::x509::{X509NameBuilder, X509};

    let new_key = || {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).expect("P-256");
        PKey::from_ec_key(EcKey::generate(&group).expect("EC key")).expect("PKey")
    };
    let key = new_key();
    let mut name = X509NameBuilder::new().expect("name");
    name.append_entry_by_text("CN", "localhost").expect("CN");
    let name = name.build();
    let mut b = X509::builder().expect("builder");
    b.set_version(2).expect("version");
    b.set_serial_number(&BigNum::from_u32(1).unwrap().to_asn1_integer().unwrap())
        .expect("serial");
    b.set_subject_name(&name).expect("subject");
    b.set_issuer_name(&name).expect("issuer");
    b.set_pubkey(&key).expect("pubkey");
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .expect("nb");
    b.set_not_after(&Asn1Time::days_from_now(30).unwrap())
        .expect("na");
    b.sign(&key, MessageDigest::sha256()).expect("sign");
    let cert = b.build().to_pem().expect("cert pem");
    let key_pem = key.private_key_to_pem_pkcs8().expect("key pem");
    let enc = key
        .private_key_to_pem_pkcs8_passphrase(Cipher::aes_256_cbc(), PASSPHRASE.as_bytes())
        .expect("encrypted key");
    let other = new_key().private_key_to_pem_pkcs8().expect("other key");
    std::fs::create_dir_all(dir).expect("certs dir");
    std::fs::write(dir.join("cert.pem"), &cert).unwrap();
    std::fs::write(dir.join("key.pem"), &key_pem).unwrap();
    std::fs::write(dir.join("other-key.pem"), &other).unwrap();
    std::fs::write(dir.join("enc-key.pem"), &enc).unwrap();
    std::fs::write(dir.join("combined.pem"), [cert, key_pem].concat()).unwrap();
}

/// The passphrase of `enc-key.pem`.
pub const PASSPHRASE: &str = "correct horse";
