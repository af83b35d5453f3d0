//! The runtime as a whole: the real `tcprelay` binary on loopback, with backends in
//! this process. Every test is bounded in time and stops what it started.

use crate::harness::{
    self, alive, children_of, config, echo_through, free_port, long_sessions, random_bytes, Churn,
    Echo, Relay,
};
use sha2::{Digest, Sha256};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

fn sha(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

#[test]
fn many_concurrent_sessions_keep_their_data_intact() {
    let echo = Echo::start();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let _relay = Relay::run_config(
        dir.path(),
        &config(
            port,
            &[(echo.port, 1)],
            "spawn = { servers min = 2 servers max = 2 }",
            "",
        ),
        port,
    );
    let handles: Vec<_> = (0..40)
        .map(|i| {
            std::thread::spawn(move || {
                let data = random_bytes(i, 256 * 1024 + i as usize * 997);
                let back = echo_through(port, &data).expect("session works");
                (sha(&data), sha(&back))
            })
        })
        .collect();
    for h in handles {
        let (sent, got) = h.join().expect("client thread");
        assert_eq!(sent, got, "a session's data came back changed");
    }
}

#[test]
fn weights_split_held_sessions_three_to_one() {
    let (a, b) = (Echo::start(), Echo::start());
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let _relay = Relay::run_config(
        dir.path(),
        &config(
            port,
            &[(a.port, 3), (b.port, 1)],
            "spawn = { servers min = 1 servers max = 1 users max = 1000 }",
            "",
        ),
        port,
    );
    // Hold every session open so that least-connections sees the active counts.
    let mut held = Vec::new();
    for _ in 0..400 {
        let s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        held.push(s);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while a.connections.load(Ordering::Relaxed) + b.connections.load(Ordering::Relaxed) < 400
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let (na, nb) = (
        a.connections.load(Ordering::Relaxed),
        b.connections.load(Ordering::Relaxed),
    );
    assert_eq!(na + nb, 400);
    assert!(
        (270..=330).contains(&na),
        "3:1 split expected, got {na}:{nb}"
    );
}

#[test]
fn a_refusing_remote_fails_over_without_the_client_noticing() {
    let echo = Echo::start();
    let dead = free_port();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let _relay = Relay::run_config(
        dir.path(),
        &config(port, &[(dead, 10), (echo.port, 1)], "", ""),
        port,
    );
    for i in 0..10 {
        let data = random_bytes(100 + i, 10_000);
        assert_eq!(echo_through(port, &data).expect("session"), data);
    }
    assert_eq!(echo.connections.load(Ordering::Relaxed), 10);
}

#[test]
fn corrupted_plan_files_are_refused_before_listening() {
    let dir = tempfile::tempdir().unwrap();
    let echo = Echo::start();
    let port = free_port();
    let good = std::fs::read(harness::compile(
        dir.path(),
        "good",
        &config(port, &[(echo.port, 1)], "", ""),
    ))
    .unwrap();
    let mut flipped = good.clone();
    let at = good.len() - 3;
    flipped[at] ^= 0x01;
    for (name, bytes, says) in [
        (
            "truncated.plan",
            good[..good.len() - 7].to_vec(),
            "truncated",
        ),
        ("flipped.plan", flipped, "corrupted"),
        (
            "body.plan",
            harness::plan_with_an_undecodable_body(&good),
            "body cannot be decoded (invalid value: integer `7`",
        ),
        (
            "foreign.plan",
            b"GIF89a....".to_vec(),
            "not a tcprelay plan",
        ),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let out = std::process::Command::new(harness::bin("tcprelay"))
            .args(["run", "-f", path.to_str().unwrap()])
            .output()
            .expect("tcprelay runs");
        assert_eq!(out.status.code(), Some(1), "{name}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{name}: {err}");
        assert!(err.contains(says), "{name}: {err}");
        assert!(
            !err.contains("OtherString") && !err.contains('{'),
            "{name}: {err}"
        );
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "{name}: something listens"
        );
    }
}

#[test]
fn sighup_reload_under_load_cuts_and_refuses_nothing() {
    let echo = Echo::start();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let mut relay = Relay::run_config(
        dir.path(),
        &config(
            port,
            &[(echo.port, 1)],
            "spawn = { servers min = 2 servers max = 4 }",
            "",
        ),
        port,
    );
    let long = long_sessions(port, 50, Duration::from_secs(4));
    let churn = Churn::start(port, 4);
    std::thread::sleep(Duration::from_millis(500));
    let before = children_of(relay.pid());
    for _ in 0..3 {
        relay.signal(1);
        std::thread::sleep(Duration::from_millis(700));
    }
    std::thread::sleep(Duration::from_millis(500));
    let (ok, failed) = churn.finish();
    let intact = long
        .into_iter()
        .filter_map(|h| h.join().ok())
        .filter(|&ok| ok)
        .count();
    assert_eq!(
        intact,
        50,
        "long sessions cut by the reload; log:\n{}",
        relay.log_text()
    );
    assert_eq!(failed, 0, "new connections failed during reload ({ok} ok)");
    assert!(ok > 50, "too little traffic to mean anything");
    // The first generation has drained and exited.
    let deadline = Instant::now() + Duration::from_secs(10);
    while before.iter().any(|&p| alive(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        before.iter().all(|&p| !alive(p)),
        "old workers still running"
    );
    assert!(
        relay.log_text().contains("reloaded"),
        "{}",
        relay.log_text()
    );
    assert!(
        relay.wait_exit(Duration::from_millis(1)).is_none(),
        "master exited"
    );
}

#[test]
fn a_bad_plan_on_reload_keeps_the_running_one() {
    let echo = Echo::start();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let plan = harness::compile(
        dir.path(),
        "relay",
        &config(port, &[(echo.port, 1)], "", ""),
    );
    let relay = Relay::start(dir.path(), &["run", "-f", plan.to_str().unwrap()], port);
    std::fs::write(&plan, b"garbage").unwrap();
    relay.signal(1);
    // The failure is awaited (bounded), not a fixed while: under load the master
    // may take longer than any guess to read the plan and refuse it.
    relay.await_log("reload failed", Duration::from_secs(10));
    assert_eq!(echo_through(port, b"still here").unwrap(), b"still here");
}

#[test]
fn a_killed_worker_is_replaced_and_the_others_keep_their_sessions() {
    let echo = Echo::start();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::run_config(
        dir.path(),
        &config(
            port,
            &[(echo.port, 1)],
            // Ten sessions each at most, so that the twenty below are split evenly
            // (a worker at capacity stops accepting) whichever worker is faster.
            "spawn = { servers min = 2 servers max = 2 users min = 10 users max = 10 }",
            "",
        ),
        port,
    );
    let workers = relay.await_workers(2, Duration::from_secs(5));
    let long = long_sessions(port, 20, Duration::from_secs(2));
    std::thread::sleep(Duration::from_millis(300));
    let _ = std::process::Command::new("kill")
        .args(["-9", &workers[0].to_string()])
        .status();
    let survived = long
        .into_iter()
        .filter_map(|h| h.join().ok())
        .filter(|&ok| ok)
        .count();
    // Sessions of the killed worker die with it; the other worker's live on.
    assert_eq!(
        survived, 10,
        "the other worker's sessions did not all survive"
    );
    // The dead worker is replaced.
    let now = relay.await_workers(2, Duration::from_secs(5));
    assert!(!now.contains(&workers[0]));
    assert_eq!(echo_through(port, b"after").unwrap(), b"after");
}

/// The master used to log "worker N died ... with 0 session(s)" for a worker that
/// held many: it knew only what the worker's frames say, and a worker sends one only
/// when it fills or empties. It now reads what the worker last published.
#[test]
fn a_dead_workers_sessions_are_counted_in_the_log() {
    use std::io::{Read, Write};
    let echo = Echo::start();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::run_config(
        dir.path(),
        &config(
            port,
            &[(echo.port, 1)],
            "spawn = { servers min = 1 servers max = 1 users max = 50 }",
            "",
        ),
        port,
    );
    let workers = relay.await_workers(1, Duration::from_secs(5));
    let held: Vec<std::net::TcpStream> = (0..7)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s.write_all(b"x").unwrap();
            let mut one = [0u8; 1];
            s.read_exact(&mut one).unwrap();
            s
        })
        .collect();
    let _ = std::process::Command::new("kill")
        .args(["-9", &workers[0].to_string()])
        .status();
    relay.await_log(
        &format!("worker {} died (signal 9) with 7 session(s)", workers[0]),
        Duration::from_secs(5),
    );
    drop(held);
}

#[test]
fn workers_finish_their_sessions_when_the_master_dies() {
    use std::io::{Read, Write};
    let echo = Echo::start();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let mut relay = Relay::run_config(
        dir.path(),
        &config(
            port,
            &[(echo.port, 1)],
            "spawn = { servers min = 1 servers max = 1 }",
            "",
        ),
        port,
    );
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"one").unwrap();
    let mut buf = [0u8; 3];
    s.read_exact(&mut buf).unwrap();
    let workers = children_of(relay.pid());
    relay.signal(9);
    relay
        .wait_exit(Duration::from_secs(5))
        .expect("master killed");
    s.write_all(b"two").unwrap();
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"two", "the session broke with its master");
    drop(s);
    let deadline = Instant::now() + Duration::from_secs(10);
    while workers.iter().any(|&p| alive(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        workers.iter().all(|&p| !alive(p)),
        "orphaned workers did not exit when idle"
    );
}

#[test]
fn sigterm_stops_gracefully_and_removes_the_pidfile() {
    let echo = Echo::start();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("tcprelay.pid");
    let mut relay = Relay::run_config(
        dir.path(),
        &config(
            port,
            &[(echo.port, 1)],
            &format!("pidfile = {}", pidfile.display()),
            "",
        ),
        port,
    );
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(pid, relay.pid());
    relay.signal(15);
    let status = relay.wait_exit(Duration::from_secs(10)).expect("stopped");
    assert!(status.success(), "{status:?}: {}", relay.log_text());
    assert!(!pidfile.exists());
}

#[test]
fn the_original_command_line_checks_and_runs_a_configuration() {
    let echo = Echo::start();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("relay.cfg");
    std::fs::write(&cfg, config(port, &[(echo.port, 1)], "", "")).unwrap();
    let bad = dir.path().join("bad.cfg");
    std::fs::write(&bad, "id = spawnd { listen = { port = 0 } }").unwrap();
    let check = |path: &std::path::Path| {
        std::process::Command::new(harness::bin("tcprelay"))
            .args(["-P", path.to_str().unwrap()])
            .env("TCPRELAY_CC", harness::bin("tcprelay-cc"))
            .output()
            .unwrap()
            .status
            .code()
    };
    assert_eq!(check(&cfg), Some(0));
    assert_eq!(check(&bad), Some(1));
    let _relay = Relay::start(dir.path(), &["-f", cfg.to_str().unwrap()], port);
    assert_eq!(echo_through(port, b"hello").unwrap(), b"hello");
}

#[test]
fn bad_io_poll_mechanism_is_refused_at_start() {
    let echo = Echo::start();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let plan = harness::compile(
        dir.path(),
        "relay",
        &config(port, &[(echo.port, 1)], "", ""),
    );
    // Solaris' mechanisms, BSD's, no mechanism at all, not a number: one line naming
    // the choices, exit code 1, nothing bound.
    for value in ["2", "32", "1", "3", "epoll"] {
        let out = std::process::Command::new(harness::bin("tcprelay"))
            .args(["run", "-f", plan.to_str().unwrap()])
            .env("IO_POLL_MECHANISM", value)
            .output()
            .expect("tcprelay runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{value}: {err}");
        assert_eq!(err.lines().count(), 1, "{value}: {err}");
        // io_uring (64) is a choice where the kernel lets the process use it.
        assert!(
            err.contains(&format!("IO_POLL_MECHANISM={value} "))
                && (err.contains("on this system use 4 (epoll), 8 (poll) or 16 (select)")
                    || err.contains(
                        "on this system use 4 (epoll), 8 (poll), 16 (select) or 64 (io_uring)"
                    )),
            "{value}: {err}"
        );
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "{value}: something listens"
        );
    }
    // A plan's `setenv` selects the workers' mechanism, over the environment's.
    let cfg = format!(
        "setenv IO_POLL_MECHANISM = 16\n{}",
        config(port, &[(echo.port, 1)], "", "")
    );
    let plan = harness::compile(dir.path(), "select", &cfg);
    let relay = Relay::start_under(
        dir.path(),
        &["run", "-f", "-d", "1", plan.to_str().unwrap()],
        port,
        "select",
    );
    assert_eq!(
        echo_through(port, b"through select").unwrap(),
        b"through select"
    );
    let uses_select = |log: &str| {
        log.lines()
            .any(|l| l.contains("debug: worker ") && l.ends_with(": event mechanism: select"))
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while !uses_select(&relay.log_text()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(uses_select(&relay.log_text()), "{}", relay.log_text());
}

/// A TLS relay configuration: a `tls = yes` listener on `port`, one remote, the
/// certificate of `harness::make_certs` in `certs` and its encrypted key opened with
/// [`harness::PASSPHRASE`].
fn tls_config(port: u16, remote: u16, certs: &std::path::Path) -> String {
    let relay = [
        format!("    remote = {{ address = 127.0.0.1 port = {remote} }}"),
        format!("    tls cert-file = {}", certs.join("cert.pem").display()),
        format!("    tls key-file = {}", certs.join("enc-key.pem").display()),
        format!("    tls passphrase = \"{}\"", harness::PASSPHRASE),
    ];
    format!(
        "id = spawnd {{\n    listen = {{ address = 127.0.0.1 port = {port} tls = yes }}\n}}\n\
         id = tcprelay {{\n{}\n}}\n",
        relay.join("\n")
    )
}

/// A client that trusts the certificate of `harness::make_certs` in `certs`.
fn tls_client(certs: &std::path::Path) -> openssl::ssl::SslConnector {
    let mut connector =
        openssl::ssl::SslConnector::builder(openssl::ssl::SslMethod::tls_client()).unwrap();
    connector.set_ca_file(certs.join("cert.pem")).unwrap();
    connector.build()
}

/// Sends `data` over TLS to `127.0.0.1:port` (an echo path) in chunks, each echoed
/// before the next is sent, then closes with close_notify and reads to the relay's
/// close_notify. Returns what came back.
fn tls_echo_through(
    connector: &openssl::ssl::SslConnector,
    port: u16,
    data: &[u8],
    chunk: usize,
) -> Vec<u8> {
    use std::io::{Read, Write};
    let tcp = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    tcp.set_write_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut tls = connector.connect("localhost", tcp).expect("TLS handshake");
    let mut back = Vec::with_capacity(data.len());
    for chunk in data.chunks(chunk) {
        tls.write_all(chunk).expect("write");
        let mut echoed = vec![0u8; chunk.len()];
        tls.read_exact(&mut echoed).expect("read the echo");
        back.extend_from_slice(&echoed);
    }
    // close_notify: the backend sees end of file and closes, and the relay answers
    // with a close_notify of its own.
    tls.shutdown().expect("close_notify");
    let mut rest = Vec::new();
    tls.read_to_end(&mut rest)
        .expect("the relay's close_notify");
    back.extend_from_slice(&rest);
    back
}

/// Encrypts the key of `harness::make_certs` in `certs` under `passphrase`, in
/// place of `enc-key.pem`; returns that file's path.
fn reencrypt_key(certs: &std::path::Path, passphrase: &str) -> std::path::PathBuf {
    use openssl::pkey::PKey;
    use openssl::symm::Cipher;
    let key = PKey::private_key_from_pem(&std::fs::read(certs.join("key.pem")).unwrap()).unwrap();
    let pem = key
        .private_key_to_pem_pkcs8_passphrase(Cipher::aes_256_cbc(), passphrase.as_bytes())
        .unwrap();
    let path = certs.join("enc-key.pem");
    std::fs::write(&path, pem).unwrap();
    path
}

#[test]
fn tls_listener_terminates_tls_to_a_plain_backend() {
    let echo = Echo::start();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    harness::make_certs(&certs);
    let relay = Relay::run_config(dir.path(), &tls_config(port, echo.port, &certs), port);
    let connector = tls_client(&certs);
    let handles: Vec<_> = (0..8u64)
        .map(|i| {
            let connector = connector.clone();
            std::thread::spawn(move || {
                let data = random_bytes(1000 + i, 256 * 1024 + i as usize * 1013);
                let back = tls_echo_through(&connector, port, &data, 16 * 1024 + i as usize);
                (sha(&data), sha(&back))
            })
        })
        .collect();
    for h in handles {
        let (sent, got) = h.join().expect("client thread");
        assert_eq!(sent, got, "a TLS session's data came back changed");
    }
    assert_eq!(echo.connections.load(Ordering::Relaxed), 8);
    // Plain TCP to a TLS port is not relayed.
    assert!(echo_through(port, b"not TLS").map_or(true, |back| back != b"not TLS"));
    assert_eq!(echo.connections.load(Ordering::Relaxed), 8);
    let log = relay.log_text();
    assert!(!log.contains(harness::PASSPHRASE), "{log}");
}

#[test]
fn wrong_passphrase_fails_at_start_with_one_line() {
    let echo = Echo::start();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    harness::make_certs(&certs);
    // The compiler checks the passphrase (E0035), so compile with the right one,
    // then swap in the same key encrypted under another passphrase.
    let plan = harness::compile(dir.path(), "tls", &tls_config(port, echo.port, &certs));
    let other = "a different passphrase";
    let key_file = reencrypt_key(&certs, other);
    let mut child = std::process::Command::new(harness::bin("tcprelay"))
        .args(["run", "-f", plan.to_str().unwrap()])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("tcprelay starts");
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("tcprelay kept running with a key it cannot decrypt");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(key_file.to_str().unwrap()), "{err}");
    assert!(
        !err.contains(harness::PASSPHRASE) && !err.contains(other),
        "{err}"
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "something listens"
    );
}

#[test]
fn a_tls_key_that_no_longer_opens_on_reload_keeps_the_running_plan() {
    let echo = Echo::start();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    harness::make_certs(&certs);
    let relay = Relay::run_config(dir.path(), &tls_config(port, echo.port, &certs), port);
    let connector = tls_client(&certs);
    assert_eq!(tls_echo_through(&connector, port, b"before", 64), b"before");
    reencrypt_key(&certs, "a different passphrase");
    relay.signal(1);
    relay.await_log("reload failed", Duration::from_secs(10));
    assert_eq!(tls_echo_through(&connector, port, b"after", 64), b"after");
    let log = relay.log_text();
    assert!(log.contains("enc-key.pem"), "{log}");
    assert!(!log.contains(harness::PASSPHRASE), "{log}");
}

/// A backend on `127.0.0.1` serving each connection with `serve` in a thread of its
/// own, until dropped; counts its connections.
struct Serving {
    port: u16,
    connections: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Serving {
    fn start(serve: fn(std::net::TcpStream)) -> Serving {
        use std::sync::atomic::{AtomicBool, AtomicUsize};
        use std::sync::Arc;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(AtomicUsize::new(0));
        let (halt, count) = (stop.clone(), connections.clone());
        std::thread::spawn(move || {
            while !halt.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        count.fetch_add(1, Ordering::Relaxed);
                        let _ = stream.set_nonblocking(false);
                        let _ = stream.set_read_timeout(Some(Duration::from_secs(20)));
                        let _ = stream.set_write_timeout(Some(Duration::from_secs(20)));
                        std::thread::spawn(move || serve(stream));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Serving {
            port,
            connections,
            stop,
        }
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Closes `stream` with a reset (`SO_LINGER` 0).
fn reset(stream: std::net::TcpStream) {
    socket2::SockRef::from(&stream)
        .set_linger(Some(Duration::ZERO))
        .expect("linger");
}

/// Waits (bounded) until the kernel has sent what was written to `stream` and had
/// it acknowledged (`TIOCOUTQ`), so that a reset now loses nothing on the way.
fn wait_until_sent(stream: &std::net::TcpStream) {
    use std::os::fd::AsRawFd;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut queued: libc::c_int = -1;
        // SAFETY: TIOCOUTQ writes one int through a valid pointer.
        let rc = unsafe { libc::ioctl(stream.as_raw_fd(), libc::TIOCOUTQ, &mut queued) };
        if rc == 0 && queued == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "the send queue never emptied");
        std::thread::sleep(Duration::from_millis(1));
    }
}

const GREETING: &[u8] = b"hello from the good remote\n";

#[test]
fn a_remote_that_accepts_and_resets_is_failed_over_without_the_client_noticing() {
    use std::io::{Read, Write};
    let resetting = Serving::start(reset);
    let good = Serving::start(|mut stream| {
        if stream.write_all(GREETING).is_ok() {
            let _ = std::io::copy(&mut &stream, &mut &stream);
        }
    });
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let _relay = Relay::run_config(
        dir.path(),
        &config(port, &[(resetting.port, 1), (good.port, 1)], "", ""),
        port,
    );
    // Each client reads the greeting before it sends anything: no byte of it can
    // reach the resetting remote.
    let clients: Vec<_> = (0..60)
        .map(|i| {
            std::thread::spawn(move || -> Result<(), String> {
                let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))
                    .map_err(|e| format!("connect: {e}"))?;
                stream
                    .set_read_timeout(Some(Duration::from_secs(20)))
                    .map_err(|e| e.to_string())?;
                let mut greeting = vec![0u8; GREETING.len()];
                stream
                    .read_exact(&mut greeting)
                    .map_err(|e| format!("greeting: {e}"))?;
                let message = format!("client {i}");
                stream
                    .write_all(message.as_bytes())
                    .map_err(|e| format!("request: {e}"))?;
                let mut back = vec![0u8; message.len()];
                stream
                    .read_exact(&mut back)
                    .map_err(|e| format!("answer: {e}"))?;
                (back == message.as_bytes())
                    .then_some(())
                    .ok_or_else(|| format!("answer {back:?}"))
            })
        })
        .collect();
    let failures: Vec<String> = clients
        .into_iter()
        .filter_map(|c| c.join().expect("client").err())
        .collect();
    assert!(failures.is_empty(), "{failures:?}");
    assert!(resetting.connections.load(Ordering::Relaxed) >= 1);
    assert_eq!(good.connections.load(Ordering::Relaxed), 60);
}

#[test]
fn an_answer_followed_by_a_reset_reaches_the_client() {
    use std::io::{Read, Write};
    // Reads one byte, answers with 1 KiB or 1 MiB, and resets (the rest of the
    // request unread) once the answer has left its kernel.
    let backend = Serving::start(|mut stream| {
        let mut kind = [0u8; 1];
        if stream.read_exact(&mut kind).is_ok()
            && stream
                .write_all(&random_bytes(u64::from(kind[0]), answer_size(kind[0])))
                .is_ok()
        {
            wait_until_sent(&stream);
            reset(stream);
        }
    });
    fn answer_size(kind: u8) -> usize {
        if kind % 2 == 0 {
            1024
        } else {
            1 << 20
        }
    }
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let _relay = Relay::run_config(
        dir.path(),
        &config(port, &[(backend.port, 1)], "", ""),
        port,
    );
    let mut failures = Vec::new();
    for kind in 0..40u8 {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let mut request = vec![kind; 100];
        request[1..].fill(0x5a);
        stream.write_all(&request).expect("request");
        let mut data = Vec::new();
        let end = stream.read_to_end(&mut data);
        let answer = random_bytes(u64::from(kind), answer_size(kind));
        let reset = matches!(&end, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset);
        if data != answer || !reset {
            failures.push(format!(
                "{} of {} bytes, then {end:?}",
                data.len(),
                answer.len()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 40: {failures:?}",
        failures.len()
    );
}
