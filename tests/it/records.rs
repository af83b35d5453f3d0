//! Connection records (issue 14): one `session_open` record when a session has
//! its remote and one `session_close` record when it ends, with the same
//! `session` id, the bytes each way and the termination `cause`. The real
//! binaries on loopback, `log format = json`, each line parsed as JSON.
//!
//! Each test runs one relay for a group of causes (they need different remotes),
//! and the tests run at once: the whole file takes some ten seconds.

use crate::harness::{self, free_port, Relay};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

const WITHIN: Duration = Duration::from_secs(10);

/// The relay's connection records so far, in order.
fn records(relay: &Relay) -> Vec<Value> {
    relay
        .log_text()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|v| {
            v["event"]
                .as_str()
                .is_some_and(|e| e.starts_with("session_"))
        })
        .collect()
}

/// The records of the client at `client` (its address as the relay saw it), once
/// its close record is written.
fn session_of(relay: &Relay, client: SocketAddr) -> (Option<Value>, Value) {
    let deadline = Instant::now() + WITHIN;
    let client = client.to_string();
    loop {
        let mine: Vec<Value> = records(relay)
            .into_iter()
            .filter(|r| r["client"] == client.as_str())
            .collect();
        let close = mine.iter().find(|r| r["event"] == "session_close");
        if let Some(close) = close {
            let opens: Vec<&Value> = mine
                .iter()
                .filter(|r| r["event"] == "session_open")
                .collect();
            assert!(opens.len() <= 1, "{mine:?}");
            let open = opens.first().map(|o| (*o).clone());
            if let Some(open) = &open {
                assert_eq!(open["session"], close["session"], "{mine:?}");
            }
            let id = close["session"].as_str().expect("a session id");
            let (pid, n) = id.split_once('.').expect("PID.N");
            assert!(
                pid.parse::<u32>().is_ok() && n.parse::<u64>().is_ok(),
                "{id}"
            );
            assert_eq!(close["level"], "info", "{close}");
            return (open, close.clone());
        }
        assert!(
            Instant::now() < deadline,
            "no close record for {client}:\n{}",
            relay.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Asserts the close record's cause (with the record in the message).
fn assert_cause(close: &Value, cause: &str) {
    assert_eq!(close["cause"], cause, "{close}");
}

fn connect(port: u16) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the relay");
    stream.set_read_timeout(Some(WITHIN)).unwrap();
    stream
}

/// Reads until the relay closes or resets the connection; what came.
fn drain(stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let _ = stream.read_to_end(&mut got);
    got
}

fn reset_on_drop(stream: &TcpStream) {
    socket2::SockRef::from(stream)
        .set_linger(Some(Duration::ZERO))
        .expect("SO_LINGER 0");
}

/// A remote in a thread that acts on the first thing a connection sends:
/// `close` is answered with `bye` and a close, `reset` with a reset; anything
/// else is echoed until the end of file, then the remote closes too.
fn scripted() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                stream.set_read_timeout(Some(Duration::from_secs(30))).ok();
                let mut buf = [0u8; 4096];
                let Ok(n) = stream.read(&mut buf) else { return };
                match &buf[..n] {
                    b"close" => {
                        let _ = stream.write_all(b"bye");
                    }
                    b"reset" => reset_on_drop(&stream),
                    first => {
                        let _ = stream.write_all(first);
                        let _ = std::io::copy(&mut &stream, &mut &stream);
                        let _ = stream.shutdown(Shutdown::Write);
                    }
                }
            });
        }
    });
    port
}

/// A relay on 127.0.0.1 with `extra_spawnd` and `relay` lines, its log in JSON.
fn start(dir: &std::path::Path, port: u16, extra_spawnd: &str, relay: &str) -> Relay {
    let cfg = format!(
        "id = spawnd {{\n listen = {{ address = 127.0.0.1 port = {port} }}\n log format = json\n spawn = {{ servers min = 1 servers max = 1 }}\n{extra_spawnd}\n}}\nid = tcprelay {{\n{relay}\n}}\n"
    );
    Relay::run_config(dir, &cfg, port)
}

/// Causes that a plain and a TLS listener over a working remote show: the
/// client or the remote closing or resetting, both timeouts, the ACL, both TLS
/// failures, and the graceful stop's end; with the open record of a session that
/// failed over naming the remote it tried.
#[test]
fn each_cause_of_a_working_relay_is_recorded() {
    let remote = scripted();
    let refused = free_port();
    let port = free_port();
    let tls_port = free_port();
    let dir = tempfile::tempdir().unwrap();
    harness::make_certs(dir.path());
    let relay = start(
        dir.path(),
        port,
        &format!(
            " listen = {{ address = 127.0.0.1 port = {tls_port} tls = yes }}\n acl = deny 127.0.0.2\n acl = permit 127.0.0.0/8"
        ),
        &format!(
            " remote = {{ address = 127.0.0.1 port = {refused} }}\n remote = {{ address = 127.0.0.1 port = {remote} }}\n idle timeout = 3\n silent timeout = 1\n tls handshake timeout = 1\n tls cert-file = {}\n tls key-file = {}",
            dir.path().join("cert.pem").display(),
            dir.path().join("key.pem").display()
        ),
    );

    // client_closed, after a failover from the refusing remote: the open record
    // names the remote tried before.
    let mut client = connect(port);
    client.write_all(b"hello").unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    assert_eq!(drain(&mut client), b"hello");
    let (open, close) = session_of(&relay, client.local_addr().unwrap());
    let open = open.expect("an open record");
    assert_eq!(open["remote"], format!("127.0.0.1:{remote}"), "{open}");
    assert_eq!(open["tried"], format!("127.0.0.1:{refused}"), "{open}");
    assert_eq!(open["listener"], format!("127.0.0.1:{port}"), "{open}");
    assert_cause(&close, "client_closed");
    assert_eq!(close["bytes_to_remote"], 5, "{close}");
    assert_eq!(close["bytes_to_client"], 5, "{close}");
    assert_eq!(close["remote"], format!("127.0.0.1:{remote}"), "{close}");
    assert!(close["duration"].as_f64().is_some(), "{close}");
    assert!(close["connect_time"].as_f64().is_some(), "{close}");
    assert!(close["tls_version"].is_null(), "{close}");

    // remote_closed: the remote answers and closes first.
    let mut client = connect(port);
    client.write_all(b"close").unwrap();
    assert_eq!(drain(&mut client), b"bye");
    drop(client.shutdown(Shutdown::Write));
    let (open, close) = session_of(&relay, client.local_addr().unwrap());
    assert!(open.is_some());
    assert_cause(&close, "remote_closed");
    assert_eq!(
        (
            close["bytes_to_remote"].as_u64(),
            close["bytes_to_client"].as_u64()
        ),
        (Some(5), Some(3)),
        "{close}"
    );

    // remote_reset.
    let mut client = connect(port);
    client.write_all(b"reset").unwrap();
    drain(&mut client);
    let (_, close) = session_of(&relay, client.local_addr().unwrap());
    assert_cause(&close, "remote_reset");
    assert_eq!(close["bytes_to_remote"], 5, "{close}");

    // client_reset: SO_LINGER 0, then close.
    let mut client = connect(port);
    client.write_all(b"abc").unwrap();
    let mut back = [0u8; 3];
    client.read_exact(&mut back).unwrap();
    let address = client.local_addr().unwrap();
    reset_on_drop(&client);
    drop(client);
    let (_, close) = session_of(&relay, address);
    assert_cause(&close, "client_reset");
    assert_eq!(close["bytes_to_client"], 3, "{close}");

    // idle_timeout (3 s) and silent_timeout (1 s), at once.
    let mut idle = connect(port);
    idle.write_all(b"ping").unwrap();
    let mut back = [0u8; 4];
    idle.read_exact(&mut back).unwrap();
    let mut silent = connect(port);
    // denied: a client from 127.0.0.2 gets a close record only.
    let denied = {
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket
            .bind(&SocketAddr::from(([127, 0, 0, 2], 0)).into())
            .unwrap();
        socket
            .connect(&SocketAddr::from(([127, 0, 0, 1], port)).into())
            .unwrap();
        TcpStream::from(socket)
    };
    // tls_failed (garbage) and tls_timeout (nothing in 1 s) on the TLS listener,
    // and a TLS session that ends normally, with its version and cipher.
    let mut garbage = connect(tls_port);
    garbage.write_all(&[0x47; 300]).unwrap();
    let mut mute = connect(tls_port);
    let mut connector =
        openssl::ssl::SslConnector::builder(openssl::ssl::SslMethod::tls()).unwrap();
    connector.set_verify(openssl::ssl::SslVerifyMode::NONE);
    let tcp = connect(tls_port);
    let tls_address = tcp.local_addr().unwrap();
    let mut tls = connector
        .build()
        .connect("localhost", tcp)
        .expect("TLS handshake");
    tls.write_all(b"secure").unwrap();
    let mut back = [0u8; 6];
    tls.read_exact(&mut back).unwrap();
    drop(tls);

    let (open, close) = session_of(&relay, denied.local_addr().unwrap());
    assert!(open.is_none(), "a denied client has no open record");
    assert_cause(&close, "denied");
    let (open, close) = session_of(&relay, garbage.local_addr().unwrap());
    assert!(open.is_none());
    assert_cause(&close, "tls_failed");
    assert_eq!(
        close["listener"],
        format!("127.0.0.1:{tls_port}"),
        "{close}"
    );
    let (open, close) = session_of(&relay, tls_address);
    assert!(open.is_some());
    assert_eq!(close["bytes_to_remote"], 6, "{close}");
    assert!(
        close["tls_version"]
            .as_str()
            .is_some_and(|v| v.starts_with("TLS")),
        "{close}"
    );
    assert!(
        close["tls_cipher"].as_str().is_some_and(|c| !c.is_empty()),
        "{close}"
    );
    let (open, close) = session_of(&relay, mute.local_addr().unwrap());
    assert!(open.is_none());
    assert_cause(&close, "tls_timeout");
    let (_, close) = session_of(&relay, silent.local_addr().unwrap());
    assert_cause(&close, "silent_timeout");
    assert_eq!(close["bytes_to_remote"], 0, "{close}");
    let (_, close) = session_of(&relay, idle.local_addr().unwrap());
    assert_cause(&close, "idle_timeout");
    assert_eq!(close["bytes_to_client"], 4, "{close}");
    drain(&mut silent);
    drain(&mut mute);

    // stopped: a session open when a graceful stop's grace ends (a second
    // SIGTERM ends it at once).
    let mut held = connect(port);
    held.write_all(b"held").unwrap();
    let mut back = [0u8; 4];
    held.read_exact(&mut back).unwrap();
    relay.signal(15);
    relay.await_log("stopping:", WITHIN);
    relay.signal(15);
    let (open, close) = session_of(&relay, held.local_addr().unwrap());
    assert!(open.is_some());
    assert_cause(&close, "stopped");
    assert_eq!(close["bytes_to_remote"], 4, "{close}");
}

/// A client whose only remote refuses: `connect_refused`, no open record.
#[test]
fn a_refusing_remote_is_connect_refused() {
    let refused = free_port();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let relay = start(
        dir.path(),
        port,
        "",
        &format!(" remote = {{ address = 127.0.0.1 port = {refused} }}"),
    );
    let mut client = connect(port);
    drain(&mut client);
    let (open, close) = session_of(&relay, client.local_addr().unwrap());
    assert!(open.is_none());
    assert_cause(&close, "connect_refused");
    assert!(close["remote"].is_null(), "{close}");
}

/// A client whose every remote refuses: `no_remote_alive`.
#[test]
fn every_remote_refusing_is_no_remote_alive() {
    let (first, second) = (free_port(), free_port());
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let relay = start(
        dir.path(),
        port,
        "",
        &format!(
            " remote = {{ address = 127.0.0.1 port = {first} }}\n remote = {{ address = 127.0.0.1 port = {second} }}"
        ),
    );
    let mut client = connect(port);
    drain(&mut client);
    let (open, close) = session_of(&relay, client.local_addr().unwrap());
    assert!(open.is_none());
    assert_cause(&close, "no_remote_alive");
}

/// A client whose only remote never answers (`connect timeout = 1`, a full
/// accept queue): `connect_timeout`.
#[test]
fn a_remote_that_never_answers_is_connect_timeout() {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    socket.listen(0).unwrap();
    let hole = socket.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    while let Ok(stream) = TcpStream::connect_timeout(&hole, Duration::from_millis(300)) {
        fillers.push(stream);
        assert!(fillers.len() < 16, "the accept queue never filled");
    }
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let relay = start(
        dir.path(),
        port,
        "",
        &format!(
            " remote = {{ address = 127.0.0.1 port = {} }}\n connect timeout = 1",
            hole.port()
        ),
    );
    let mut client = connect(port);
    drain(&mut client);
    let (open, close) = session_of(&relay, client.local_addr().unwrap());
    assert!(open.is_none());
    assert_cause(&close, "connect_timeout");
    drop(fillers);
}

/// `connection log = no`: sessions are relayed and no record is written.
#[test]
fn connection_log_no_writes_no_record() {
    let echo = harness::Echo::start();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let mut relay = start(
        dir.path(),
        port,
        "",
        &format!(
            " remote = {{ address = 127.0.0.1 port = {} }}\n connection log = no",
            echo.port
        ),
    );
    assert_eq!(
        harness::echo_through(port, b"unrecorded").unwrap(),
        b"unrecorded"
    );
    relay.signal(15);
    assert!(relay.wait_exit(WITHIN).is_some());
    let log = relay.log_text();
    assert!(log.contains("\"level\""), "the log is JSON: {log}");
    assert!(records(&relay).is_empty(), "{log}");
}
