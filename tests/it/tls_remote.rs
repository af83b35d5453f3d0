//! TLS towards remotes (stunnel's client mode) through the real binaries, in front
//! of real TLS servers: `openssl s_server` (`-rev`: each line comes back reversed)
//! and stunnel4 in server mode in front of a plain echo. The configurations use the
//! language's directives (`tls = yes`, `tls sni`, `tls ca-file`, `tls cert-file`,
//! ...), compiled by the real `tcprelay-cc`. Loopback only, ports chosen by the OS,
//! every process stopped when its test ends.

use crate::harness::{self, echo_through, free_port, stderr, Echo, Relay, Server};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tcprelay_plan::{RemoteTls, Secret};

const WITHIN: Duration = Duration::from_secs(10);

/// `openssl s_server -rev` with the certificate and key of `certs` and `extra`
/// arguments (e.g. `-Verify 1`).
fn s_server(certs: &Path, extra: &[&str]) -> Server {
    harness::openssl_s_server(&certs.join("cert.pem"), &certs.join("key.pem"), extra)
}

/// stunnel4 in server mode on a free port, terminating TLS (the certificate of
/// `certs`) in front of the plain service on `backend`.
fn stunnel_server(dir: &Path, certs: &Path, backend: u16) -> Server {
    let port = free_port();
    let conf = dir.join("stunnel.conf");
    std::fs::write(
        &conf,
        format!(
            "foreground = yes\npid =\ndebug = 4\n[echo]\naccept = 127.0.0.1:{port}\nconnect = 127.0.0.1:{backend}\ncert = {}\nkey = {}\n",
            certs.join("cert.pem").display(),
            certs.join("key.pem").display()
        ),
    )
    .expect("write stunnel.conf");
    let child = Command::new("stunnel4")
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("stunnel4 starts");
    let server = Server { child, port };
    let deadline = Instant::now() + WITHIN;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "stunnel4 never listened");
        std::thread::sleep(Duration::from_millis(20));
    }
    server
}

/// `tls = yes` verified against `certs`' certificate as the CA file, for `sni`.
fn verified(certs: &Path, sni: &str) -> RemoteTls {
    RemoteTls {
        sni: Some(sni.to_string()),
        verify: true,
        ca_file: Some(certs.join("cert.pem").to_string_lossy().into_owned()),
        cert_file: None,
        key_file: None,
        passphrase: None,
    }
}

/// A relay on `port` with the remotes on `127.0.0.1` at `remotes`, each with its
/// TLS setting, one worker, connection records in JSON and a control socket in
/// `dir`, compiled from its configuration by the real `tcprelay-cc`.
fn relay(dir: &Path, port: u16, remotes: &[(u16, Option<RemoteTls>)], extra: &str) -> Relay {
    let plan = plan(dir, port, remotes, extra);
    Relay::start(dir, &["run", "-f", plan.to_str().expect("UTF-8")], port)
}

/// The remote's `tls ...` directives.
fn directives(tls: &RemoteTls) -> String {
    let mut out = String::from(" tls = yes");
    if let Some(sni) = &tls.sni {
        out += &format!(" tls sni = {sni}");
    }
    if !tls.verify {
        out += " tls verify = no";
    }
    for (name, value) in [
        ("ca-file", &tls.ca_file),
        ("cert-file", &tls.cert_file),
        ("key-file", &tls.key_file),
    ] {
        if let Some(value) = value {
            out += &format!(" tls {name} = {value}");
        }
    }
    if let Some(passphrase) = &tls.passphrase {
        out += &format!(" tls passphrase = \"{}\"", passphrase.expose());
    }
    out
}

fn plan(dir: &Path, port: u16, remotes: &[(u16, Option<RemoteTls>)], extra: &str) -> PathBuf {
    let remotes: String = remotes
        .iter()
        .map(|(p, tls)| {
            let tls = tls.as_ref().map(directives).unwrap_or_default();
            format!("    remote = {{ address = 127.0.0.1 port = {p}{tls} }}\n")
        })
        .collect();
    // One worker: each refused remote fails once (each worker keeps its own marks).
    let cfg = format!(
        "id = spawnd {{\n    listen = {{ address = 127.0.0.1 port = {port} }}\n    spawn = {{ servers min = 1 servers max = 1 }}\n    control = {{ path = {} }}\n    log format = json\n}}\nid = tcprelay {{\n{remotes}{extra}\n}}\n",
        dir.join("ctl").display()
    );
    harness::compile(dir, "relay", &cfg)
}

/// `tcprelay ctl --json remotes` of the relay whose control socket is in `dir`.
fn remotes(dir: &Path) -> Vec<Value> {
    let out = Command::new(harness::bin("tcprelay"))
        .args(["ctl", "--json", "-s"])
        .arg(dir.join("ctl"))
        .arg("remotes")
        .output()
        .expect("tcprelay ctl runs");
    let answer: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", stderr(&out)));
    answer["remotes"].as_array().cloned().unwrap_or_default()
}

/// The `ctl remotes` entry of the remote on `port`, once `done` holds for it.
fn remote_until(dir: &Path, port: u16, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WITHIN;
    loop {
        let entry = remotes(dir)
            .into_iter()
            .find(|r| r["remote"] == format!("127.0.0.1:{port}"));
        if let Some(entry) = entry.filter(|e| done(e)) {
            return entry;
        }
        assert!(
            Instant::now() < deadline,
            "remote {port} never got there: {:?}",
            remotes(dir)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Lines through the relay to `s_server -rev`: each comes back reversed.
fn reversed_through(port: u16, lines: &[&str]) -> Vec<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the relay");
    s.set_read_timeout(Some(WITHIN)).expect("timeout");
    let mut reader = BufReader::new(s.try_clone().expect("clone"));
    let mut back = Vec::new();
    for line in lines {
        s.write_all(format!("{line}\n").as_bytes()).expect("write");
        let mut got = String::new();
        reader.read_line(&mut got).expect("a line back");
        back.push(got.trim_end_matches('\n').to_string());
    }
    back
}

/// The connection records' close causes so far.
fn causes(relay: &Relay) -> Vec<String> {
    relay
        .log_text()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|v| v["event"] == "session_close")
        .filter_map(|v| v["cause"].as_str().map(str::to_string))
        .collect()
}

/// A plain client's lines reach `openssl s_server` through TLS (verified by the
/// CA file and the name) and its answers come back.
#[test]
fn a_plain_clients_bytes_reach_openssl_s_server_and_come_back() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let certs = dir.path().join("certs");
    harness::make_certs(&certs);
    let server = s_server(&certs, &[]);
    let port = free_port();
    let _relay = relay(
        dir.path(),
        port,
        &[(server.port, Some(verified(&certs, "localhost")))],
        "",
    );
    let back = reversed_through(port, &["hello, remote", "0123456789"]);
    assert_eq!(back, ["etomer ,olleh", "9876543210"]);
}

/// stunnel4 (server mode) in front of a plain echo: a megabyte each way through
/// tcprelay's TLS client arrives intact.
#[test]
fn a_megabyte_each_way_through_stunnel_in_server_mode_is_intact() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let certs = dir.path().join("certs");
    harness::make_certs(&certs);
    let echo = Echo::start();
    let stunnel = stunnel_server(dir.path(), &certs, echo.port);
    let port = free_port();
    let _relay = relay(
        dir.path(),
        port,
        &[(stunnel.port, Some(verified(&certs, "localhost")))],
        "",
    );
    let data = harness::random_bytes(15, 1 << 20);
    let back = echo_through(port, &data).expect("through the relay");
    assert!(back == data, "{} bytes back of {}", back.len(), data.len());
    assert_eq!(
        echo.connections.load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

/// A remote whose certificate names another host, and one whose certificate no
/// trusted CA signed, are refused: counted as TLS failures in `ctl remotes`, marked
/// down, and the sessions fail over to the good remote. With only a refused remote
/// left, the session is closed and its record's cause is `remote_tls`.
#[test]
fn a_wrong_name_or_an_untrusted_certificate_is_refused_and_counted() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let certs = dir.path().join("certs");
    let others = dir.path().join("others");
    harness::make_certs(&certs);
    harness::make_certs(&others);
    let good = s_server(&certs, &[]);
    let wrong_name = s_server(&certs, &[]);
    let untrusted = s_server(&others, &[]);
    let port = free_port();
    let first = relay(
        dir.path(),
        port,
        &[
            (wrong_name.port, Some(verified(&certs, "other.example"))),
            (untrusted.port, Some(verified(&certs, "localhost"))),
            (good.port, Some(verified(&certs, "localhost"))),
        ],
        "",
    );
    for n in 0..6 {
        let line = format!("session {n}");
        let want: String = line.chars().rev().collect();
        assert_eq!(reversed_through(port, &[&line]), [want]);
    }
    for bad in [wrong_name.port, untrusted.port] {
        let entry = remote_until(dir.path(), bad, |e| e["tls_failures"] == 1);
        assert_eq!(entry["failures"], 0, "{entry}");
        assert_eq!(entry["connections"], 0, "{entry}");
        assert_eq!(entry["state"], "down", "{entry}");
    }
    let entry = remote_until(dir.path(), good.port, |e| e["connections"] == 6);
    assert_eq!(entry["tls_failures"], 0, "{entry}");
    assert!(
        first.log_text().contains("certificate verify failed"),
        "{}",
        first.log_text()
    );
    drop(first);

    // Only the untrusted one: nothing to fail over to.
    let dir = tempfile::tempdir().expect("temporary directory");
    let port = free_port();
    let alone = relay(
        dir.path(),
        port,
        &[(untrusted.port, Some(verified(&certs, "localhost")))],
        "",
    );
    let mut client = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    client.set_read_timeout(Some(WITHIN)).expect("timeout");
    let _ = client.write_all(b"never relayed\n");
    let mut back = Vec::new();
    let _ = client.read_to_end(&mut back);
    assert!(back.is_empty(), "{back:?}");
    let deadline = Instant::now() + WITHIN;
    while causes(&alone).is_empty() {
        assert!(Instant::now() < deadline, "{}", alone.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(causes(&alone), ["remote_tls"], "{}", alone.log_text());
}

/// A remote that requires a client certificate (`s_server -Verify`) serves a relay
/// that has one (`tls cert-file`, an encrypted `tls key-file` and its passphrase).
#[test]
fn a_client_certificate_required_by_the_remote_is_presented() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let certs = dir.path().join("certs");
    let client = dir.path().join("client");
    harness::make_certs(&certs);
    harness::make_certs(&client);
    let ca = client.join("cert.pem");
    let server = s_server(
        &certs,
        &["-Verify", "1", "-CAfile", ca.to_str().expect("UTF-8")],
    );
    let port = free_port();
    let with_cert = RemoteTls {
        cert_file: Some(ca.to_string_lossy().into_owned()),
        key_file: Some(client.join("enc-key.pem").to_string_lossy().into_owned()),
        passphrase: Some(Secret::new(harness::PASSPHRASE)),
        ..verified(&certs, "localhost")
    };
    let _relay = relay(dir.path(), port, &[(server.port, Some(with_cert))], "");
    assert_eq!(
        reversed_through(port, &["with a certificate"]),
        ["etacifitrec a htiw"]
    );
}

/// A plan whose client context cannot be built (its CA file holds no certificate
/// any more) is refused at start: one line naming the remote and the file, exit 1.
#[test]
fn a_plan_whose_tls_remote_cannot_be_set_up_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let certs = dir.path().join("certs");
    harness::make_certs(&certs);
    let remote = free_port();
    let port = free_port();
    let plan = plan(
        dir.path(),
        port,
        &[(remote, Some(verified(&certs, "localhost")))],
        "",
    );
    std::fs::write(certs.join("cert.pem"), "not a certificate\n").expect("overwrite");
    let out = Command::new(harness::bin("tcprelay"))
        .args(["run", "-f"])
        .arg(&plan)
        .output()
        .expect("tcprelay runs");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(
        err.trim_end(),
        format!(
            "tcprelay: remote 127.0.0.1:{remote}: cannot load TLS CA file {}: no PEM certificate in the file",
            certs.join("cert.pem").display()
        )
    );
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}

/// The same on SIGHUP: the reload is refused, naming the file, and the running
/// plan serves on (its workers built their contexts when they loaded it).
#[test]
fn a_reload_whose_tls_remote_cannot_be_set_up_keeps_the_running_plan() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let certs = dir.path().join("certs");
    harness::make_certs(&certs);
    let server = s_server(&certs, &[]);
    let port = free_port();
    let relay = relay(
        dir.path(),
        port,
        &[(server.port, Some(verified(&certs, "localhost")))],
        "",
    );
    assert_eq!(reversed_through(port, &["before"]), ["erofeb"]);
    std::fs::write(certs.join("cert.pem"), "not a certificate\n").expect("overwrite");
    relay.signal(libc::SIGHUP);
    relay.await_log("reload failed", WITHIN);
    let log = relay.log_text();
    assert!(
        log.contains(&format!(
            "remote 127.0.0.1:{}: cannot load TLS CA file",
            server.port
        )),
        "{log}"
    );
    assert_eq!(reversed_through(port, &["after"]), ["retfa"]);
}
