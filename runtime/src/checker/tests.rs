//! The checker against real loopback servers (ports chosen by the OS).

use super::*;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// What a test server does with each connection (its number, from 0).
type Behaviour = fn(usize, &mut std::net::TcpStream);

/// A loopback server on a thread, stopped when dropped.
struct Server {
    address: SocketAddr,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn spawn(behaviour: Behaviour) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let address = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (stop2, accepted2) = (stop.clone(), accepted.clone());
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        stream.set_nonblocking(false).unwrap();
                        let n = accepted2.fetch_add(1, Ordering::Relaxed);
                        behaviour(n, &mut stream);
                        // Kept open: the check decides when it has read enough.
                        held.push(stream);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Server {
            address,
            stop,
            accepted,
            thread: Some(thread),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A port nothing listens on (bound by the OS, then released).
fn closed_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn check(interval_ms: u32, timeout_ms: u32, rise: u32, fall: u32) -> Check {
    Check {
        interval_ms,
        timeout_ms,
        rise,
        fall,
        send: None,
        expect: None,
        tls: false,
    }
}

fn remote(address: SocketAddr) -> tcprelay_plan::Remote {
    tcprelay_plan::Remote {
        address,
        protocol: Protocol::Tcp,
        weight: 1,
        send_proxy: None,
        tls: None,
        check: None,
        route: None,
    }
}

fn target(slot: usize, address: SocketAddr, check: Check) -> Target {
    Target::new(slot, &remote(address), &check).unwrap()
}

fn run(targets: Vec<Target>, table: &Table, for_ms: u64) {
    let mut checker = Checker::new(targets, table.clone()).unwrap();
    checker.run_until(Instant::now() + Duration::from_millis(for_ms));
}

fn ping_pong(_: usize, stream: &mut std::net::TcpStream) {
    let mut buf = [0u8; 6];
    if stream.read_exact(&mut buf).is_ok() && &buf == b"PING\r\n" {
        let _ = stream.write_all(b"+PONG\r\n");
    }
}

fn pinging(mut check: Check, expect: Expect) -> Check {
    check.send = Some(b"PING\r\n".to_vec());
    check.expect = Some(expect);
    check
}

#[test]
fn a_listening_remote_passes_and_a_refusing_one_goes_down_after_fall() {
    let up = Server::spawn(|_, _| {});
    let table = Table::new().unwrap();
    let targets = vec![
        target(1, up.address, check(50, 40, 2, 3)),
        target(2, closed_port(), check(50, 40, 2, 3)),
    ];
    run(targets, &table, 400);
    let good = table.read(1);
    assert!(!good.down && good.checked);
    assert_eq!(good.last, Some(Outcome::Pass));
    assert!(good.passes() >= 5, "checked every 50 ms: {good:?}");
    let bad = table.read(2);
    assert!(bad.down, "{bad:?}");
    assert_eq!(bad.last, Some(Outcome::Refused));
    assert_eq!(bad.passes(), 0);
}

#[test]
fn a_remote_that_accepts_and_never_answers_costs_only_its_timeout() {
    // It accepts, reads nothing and never answers: each check times out.
    let silent = Server::spawn(|_, _| {});
    let answering = Server::spawn(ping_pong);
    let table = Table::new().unwrap();
    let expect = Expect::Bytes(b"+PONG".to_vec());
    let targets = vec![
        target(
            1,
            silent.address,
            pinging(check(100, 60, 1, 2), expect.clone()),
        ),
        target(2, answering.address, pinging(check(100, 60, 1, 2), expect)),
    ];
    run(targets, &table, 550);
    let hung = table.read(1);
    assert!(hung.down, "{hung:?}");
    assert_eq!(hung.last, Some(Outcome::Timeout));
    let took = hung.duration.as_millis();
    assert!(
        (60..200).contains(&took),
        "a timed-out check took {took} ms"
    );
    // The hanging remote held up no check of the other.
    let fine = table.read(2);
    assert!(!fine.down);
    assert_eq!(fine.last, Some(Outcome::Pass));
    assert!(fine.passes() >= 5, "{fine:?}");
    assert!(fine.duration < Duration::from_millis(50), "{fine:?}");
    assert!(silent.accepted.load(Ordering::Relaxed) >= 5);
}

#[test]
fn a_wrong_reply_is_a_mismatch() {
    let wrong = Server::spawn(|_, s| {
        let _ = s.write_all(b"-ERR unknown\r\n");
    });
    let table = Table::new().unwrap();
    let targets = vec![target(
        3,
        wrong.address,
        pinging(check(50, 40, 1, 2), Expect::Bytes(b"+PONG".to_vec())),
    )];
    run(targets, &table, 250);
    let health = table.read(3);
    assert!(health.down, "{health:?}");
    assert_eq!(health.last, Some(Outcome::Mismatch));
}

#[test]
fn a_reply_in_pieces_is_read_until_expect_is_decided() {
    let slow = Server::spawn(|_, s| {
        let _ = s.write_all(b"+PO");
        std::thread::sleep(Duration::from_millis(10));
        let _ = s.write_all(b"NG\r\n");
    });
    let table = Table::new().unwrap();
    let targets = vec![target(
        3,
        slow.address,
        pinging(check(100, 80, 1, 1), Expect::Bytes(b"+PONG".to_vec())),
    )];
    run(targets, &table, 250);
    assert_eq!(table.read(3).last, Some(Outcome::Pass));
    assert!(!table.read(3).down);
}

#[test]
fn a_remote_that_closes_without_replying_fails_as_closed() {
    let closing = Server::spawn(|_, s| {
        let _ = s.shutdown(std::net::Shutdown::Both);
    });
    let table = Table::new().unwrap();
    let targets = vec![target(
        4,
        closing.address,
        pinging(check(50, 40, 1, 1), Expect::Bytes(b"+PONG".to_vec())),
    )];
    run(targets, &table, 200);
    assert_eq!(table.read(4).last, Some(Outcome::Closed));
    assert!(table.read(4).down);
}

#[test]
fn expect_regex_matches_the_first_reply() {
    let server = Server::spawn(|_, s| {
        let _ = s.write_all(b"+OK role:master connected_slaves:2\r\n");
    });
    let table = Table::new().unwrap();
    let targets = vec![
        target(
            1,
            server.address,
            pinging(
                check(50, 40, 1, 1),
                Expect::Regex(r"role:master\s+connected_slaves:\d".into()),
            ),
        ),
        target(
            2,
            server.address,
            pinging(check(50, 40, 1, 1), Expect::Regex(r"role:slave".into())),
        ),
    ];
    run(targets, &table, 200);
    assert_eq!(table.read(1).last, Some(Outcome::Pass));
    assert!(!table.read(1).down);
    assert_eq!(table.read(2).last, Some(Outcome::Mismatch));
    assert!(table.read(2).down);
}

#[test]
fn a_regex_that_does_not_compile_is_refused_with_the_remote_named() {
    let address: SocketAddr = "127.0.0.1:6379".parse().unwrap();
    let mut r = remote(address);
    r.check = Some(pinging(
        check(1000, 500, 1, 1),
        Expect::Regex("(+PONG".into()),
    ));
    let e = Target::new(1, &r, r.check.as_ref().unwrap()).unwrap_err();
    assert!(
        e.starts_with(
            "remote 127.0.0.1:6379: the check's expect regex \"(+PONG\" does not compile"
        ),
        "{e}"
    );
    assert_eq!(check_remotes(&[remote(address), r]), Err(e));
    let mut fine = remote(address);
    fine.check = Some(pinging(
        check(1000, 500, 1, 1),
        Expect::Regex(r"^\+PONG".into()),
    ));
    assert_eq!(check_remotes(&[fine]), Ok(()));
}

#[test]
fn a_flapping_remote_is_held_up_by_the_hysteresis() {
    // Every other connection is answered: pass, fail, pass, fail...
    let flapping = Server::spawn(|n, s| {
        if n % 2 == 0 {
            ping_pong(n, s);
        } else {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    });
    let table = Table::new().unwrap();
    let targets = vec![target(
        5,
        flapping.address,
        pinging(check(40, 30, 2, 2), Expect::Bytes(b"+PONG".to_vec())),
    )];
    run(targets, &table, 450);
    let health = table.read(5);
    assert!(health.counts[0] >= 3 && health.counts[5] >= 3, "{health:?}");
    assert!(!health.down, "never two failures in a row: {health:?}");
    assert_eq!(health.streak, 1);
}

#[test]
fn a_remote_comes_back_after_rise_passes() {
    let address = closed_port();
    let table = Table::new().unwrap();
    run(vec![target(6, address, check(50, 40, 2, 1))], &table, 120);
    assert!(table.read(6).down);
    // It listens again on the same port.
    let listener = TcpListener::bind(address).unwrap();
    let mut checker =
        Checker::new(vec![target(6, address, check(50, 40, 2, 1))], table.clone()).unwrap();
    checker.run_until(Instant::now() + Duration::from_millis(30));
    assert!(table.read(6).down, "one pass is not rise = 2");
    assert_eq!(table.read(6).last, Some(Outcome::Pass));
    checker.run_until(Instant::now() + Duration::from_millis(70));
    assert!(!table.read(6).down, "{:?}", table.read(6));
    drop(listener);
}

/// A TLS server on a thread (the certificate of `certs`, for `localhost` and
/// 127.0.0.1), stopped when dropped.
struct TlsServer {
    address: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TlsServer {
    fn spawn(certs: &crate::tls_context::test_certs::Certs) -> TlsServer {
        let mut builder =
            openssl::ssl::SslContext::builder(openssl::ssl::SslMethod::tls_server()).unwrap();
        builder
            .set_private_key_file(certs.path("key.pem"), openssl::ssl::SslFiletype::PEM)
            .unwrap();
        builder.set_certificate(&certs.cert).unwrap();
        let tls = builder.build();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        stream.set_nonblocking(false).unwrap();
                        stream
                            .set_read_timeout(Some(Duration::from_millis(500)))
                            .unwrap();
                        let ssl = openssl::ssl::Ssl::new(&tls).unwrap();
                        if let Ok(s) = ssl.accept(stream) {
                            held.push(s);
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        TlsServer {
            address,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn tls_check() -> Check {
    let mut c = check(100, 80, 1, 1);
    c.tls = true;
    c
}

#[test]
fn a_tls_check_completes_a_handshake_and_a_plain_server_fails_it() {
    let certs = crate::tls_context::test_certs::Certs::new();
    let server = TlsServer::spawn(&certs);
    let plain = Server::spawn(|_, s| {
        let _ = s.write_all(b"HTTP/1.0 400 not TLS\r\n\r\n");
    });
    let table = Table::new().unwrap();
    let targets = vec![
        target(1, server.address, tls_check()),
        target(2, plain.address, tls_check()),
    ];
    run(targets, &table, 250);
    assert_eq!(
        table.read(1).last,
        Some(Outcome::Pass),
        "{:?}",
        table.read(1)
    );
    assert_eq!(table.read(2).last, Some(Outcome::Tls));
    assert!(table.read(2).down);
}

#[test]
fn a_tls_check_of_a_remote_with_tls_settings_verifies_its_certificate_and_name() {
    let certs = crate::tls_context::test_certs::Certs::new();
    let server = TlsServer::spawn(&certs);
    let other = crate::tls_context::test_certs::Certs::new();
    let tls = |sni: Option<&str>, ca: &crate::tls_context::test_certs::Certs| RemoteTls {
        sni: sni.map(str::to_string),
        verify: true,
        ca_file: Some(ca.path("cert.pem")),
        cert_file: None,
        key_file: None,
        passphrase: None,
    };
    let with = |slot: usize, settings: RemoteTls| {
        let mut r = remote(server.address);
        r.tls = Some(settings);
        Target::new(slot, &r, &tls_check()).unwrap()
    };
    let table = Table::new().unwrap();
    let targets = vec![
        with(1, tls(Some("localhost"), &certs)),
        // No SNI: the certificate is checked against the address, 127.0.0.1.
        with(2, tls(None, &certs)),
        with(3, tls(Some("other.example"), &certs)),
        with(4, tls(Some("localhost"), &other)),
    ];
    run(targets, &table, 250);
    assert_eq!(
        table.read(1).last,
        Some(Outcome::Pass),
        "{:?}",
        table.read(1)
    );
    assert_eq!(
        table.read(2).last,
        Some(Outcome::Pass),
        "{:?}",
        table.read(2)
    );
    assert_eq!(table.read(3).last, Some(Outcome::Tls), "the wrong name");
    assert_eq!(
        table.read(4).last,
        Some(Outcome::Tls),
        "an untrusted certificate"
    );
}

/// The checker follows the discovery table: an address of a name with a check is
/// checked in its slot, one of a name without is not, one whose slot a plan's
/// remote has shares that check, and a retired address is not checked until it
/// comes back.
#[test]
fn discovered_addresses_are_checked_while_in_their_names_set() {
    use crate::discovery::{Entry, Table as Found};
    let up = Server::spawn(|_, _| {});
    let other = Server::spawn(|_, _| {});
    let table = Table::new().unwrap();
    let found = Found::new().unwrap();
    let mut checked = remote("0.0.0.0:0".parse().unwrap());
    checked.check = Some(check(30, 30, 1, 1));
    let names = vec![
        tcprelay_plan::Discovered {
            name: "checked.test".into(),
            lookup: tcprelay_plan::Lookup::Srv,
            template: checked,
        },
        tcprelay_plan::Discovered {
            name: "plain.test".into(),
            lookup: tcprelay_plan::Lookup::Srv,
            template: remote("0.0.0.0:0".parse().unwrap()),
        },
    ];
    let entry = |name, address, slot| Entry {
        name,
        address,
        weight: 1,
        live: true,
        slot,
    };
    found.push(entry(0, up.address, 5));
    found.push(entry(1, other.address, 6));
    // The same key as the plan's remote in slot 1.
    found.push(entry(0, other.address, 1));
    let plan = vec![target(1, other.address, check(30, 30, 1, 1))];
    let mut checker = Checker::new(plan, table.clone()).unwrap();
    checker.follow(Discovered::new(found.clone(), names));
    assert_eq!(checker.targets.len(), 2, "one new target; slot 1 shared");
    checker.run_until(Instant::now() + Duration::from_millis(200));
    assert!(table.read(5).passes() >= 3, "{:?}", table.read(5));
    assert!(!table.read(6).checked, "its name has no check");
    assert!(table.read(1).passes() >= 3);

    // Retired: no more checks of slot 5; back: checked again.
    found.set(0, false, 1);
    checker.run_until(Instant::now() + Duration::from_millis(60));
    let passes = table.read(5).passes();
    checker.run_until(Instant::now() + Duration::from_millis(200));
    assert_eq!(
        table.read(5).passes(),
        passes,
        "a retired address is not checked"
    );
    found.set(0, true, 1);
    checker.run_until(Instant::now() + Duration::from_millis(200));
    assert!(table.read(5).passes() > passes, "checked again once back");
}
