//! The relay's timeouts that come from the plan (issue 14): `connect timeout` and
//! `tls handshake timeout`, which were fixed at 10 s. The real binaries on loopback.

use crate::harness::{self, free_port, Echo, Relay};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A loopback listener whose accept queue is full and never accepted: the kernel
/// drops further SYNs, so a connect to it hangs (the fillers keep the queue full).
struct Blackhole {
    _socket: socket2::Socket,
    _fillers: Vec<TcpStream>,
    port: u16,
}

fn blackhole() -> Blackhole {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .expect("bind");
    socket.listen(0).expect("listen");
    let addr = socket
        .local_addr()
        .expect("addr")
        .as_socket()
        .expect("inet");
    let mut fillers = Vec::new();
    while let Ok(stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
        fillers.push(stream);
        assert!(fillers.len() < 16, "the accept queue never filled");
    }
    Blackhole {
        _socket: socket,
        _fillers: fillers,
        port: addr.port(),
    }
}

/// One echoed exchange through the relay on `port`; how long it took.
fn exchange(port: u16, data: &[u8]) -> (TcpStream, Duration) {
    let started = Instant::now();
    let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    client.write_all(data).unwrap();
    let mut back = vec![0u8; data.len()];
    client.read_exact(&mut back).unwrap();
    assert_eq!(back, data);
    (client, started.elapsed())
}

/// `connect timeout = 1`: a client whose remote never answers the SYN is failed
/// over to the next remote after about a second, not the former fixed 10 s.
#[test]
fn a_configured_connect_timeout_fails_over_from_a_remote_that_never_answers() {
    let hole = blackhole();
    let echo = Echo::start();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let cfg = harness::config(
        port,
        &[(hole.port, 1), (echo.port, 1)],
        "spawn = { servers min = 1 servers max = 1 }",
        "connect timeout = 1",
    );
    let relay = Relay::run_config(dir.path(), &cfg, port);
    // Least connections: while the first client is held, the second is given the
    // other remote; one of the two therefore meets the blackhole first.
    let (first, took_first) = exchange(port, b"first");
    let (second, took_second) = exchange(port, b"second");
    let slowest = took_first.max(took_second);
    assert!(
        slowest >= Duration::from_millis(800) && slowest < Duration::from_secs(4),
        "first {took_first:?}, second {took_second:?}: {}",
        relay.log_text()
    );
    drop((first, second));
}

/// `tls handshake timeout = 1`: a TLS client that says nothing is closed after
/// about a second, not the former fixed 10 s.
#[test]
fn a_configured_tls_handshake_timeout_closes_a_client_that_says_nothing() {
    let echo = Echo::start();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    harness::make_certs(dir.path());
    let cfg = format!(
        "id = spawnd {{\n listen = {{ address = 127.0.0.1 port = {port} tls = yes }}\n spawn = {{ servers min = 1 servers max = 1 }}\n}}\n\
         id = tcprelay {{\n remote = {{ address = 127.0.0.1 port = {} }}\n tls cert-file = {}\n tls key-file = {}\n tls handshake timeout = 1\n}}\n",
        echo.port,
        dir.path().join("cert.pem").display(),
        dir.path().join("key.pem").display()
    );
    let relay = Relay::run_config(dir.path(), &cfg, port);
    let mut silent = TcpStream::connect(("127.0.0.1", port)).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let opened = Instant::now();
    let mut buf = [0u8; 16];
    // Closed (end of file or a reset), without a byte of its own.
    assert_eq!(silent.read(&mut buf).unwrap_or(0), 0);
    let took = opened.elapsed();
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_secs(4),
        "closed after {took:?}: {}",
        relay.log_text()
    );
}
