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

/// A server on `127.0.0.1:0` that accepts every connection and holds it, silent and
/// reading nothing, until dropped.
struct Holder {
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Holder {
    fn start() -> Holder {
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let halt = stop.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            while !halt.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => held.push(stream),
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Holder { port, stop }
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Whether the relay closed `stream` (end of file or a reset) within `within`; a
/// read that times out means it is still open.
fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 16];
    match stream.read(&mut buf) {
        Ok(0) => true,
        Ok(n) => panic!("{n} unexpected bytes"),
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

/// `half close timeout = 1`: a client that ends its direction while its remote
/// stays open and silent is closed about a second later; with the default (0) the
/// same session stays open.
#[test]
fn a_half_close_timeout_closes_a_session_the_client_half_closed() {
    let holder = Holder::start();
    let relays: Vec<_> = ["half close timeout = 1", ""]
        .into_iter()
        .map(|extra| {
            let port = free_port();
            let dir = tempfile::tempdir().unwrap();
            let cfg = harness::config(
                port,
                &[(holder.port, 1)],
                "spawn = { servers min = 1 servers max = 1 }",
                extra,
            );
            let relay = Relay::run_config(dir.path(), &cfg, port);
            relay.await_workers(1, Duration::from_secs(10));
            (dir, relay, port)
        })
        .collect();
    let half_close = |port: u16| {
        let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
        client.write_all(b"request").unwrap();
        client.shutdown(std::net::Shutdown::Write).unwrap();
        client
    };
    let mut bounded = half_close(relays[0].2);
    let shut = Instant::now();
    let mut unbounded = half_close(relays[1].2);
    assert!(
        closed_within(&mut bounded, Duration::from_secs(5)),
        "{}",
        relays[0].1.log_text()
    );
    let took = shut.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took <= Duration::from_secs(3),
        "closed after {took:?}: {}",
        relays[0].1.log_text()
    );
    // Its close record says why.
    relays[0]
        .1
        .await_log("cause=half_close_timeout", Duration::from_secs(5));
    assert!(
        !closed_within(&mut unbounded, Duration::from_secs(3)),
        "closed without a half close timeout: {}",
        relays[1].1.log_text()
    );
}

/// A client holding a session through the relay on `port`, after one echoed
/// exchange.
fn hold(port: u16) -> TcpStream {
    let (client, _) = exchange(port, b"hold");
    client
}

/// Whether `stream`'s session still echoes.
fn echoes(stream: &mut TcpStream) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut back = [0u8; 4];
    stream.write_all(b"more").is_ok() && stream.read_exact(&mut back).is_ok() && &back == b"more"
}

/// Waits until the relay's log says `n` times that a worker drains (a reload's
/// old workers have closed their listeners: new clients reach the new ones).
fn await_draining(relay: &Relay, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while relay.log_text().matches(": draining ").count() < n {
        assert!(
            Instant::now() < deadline,
            "not {n} workers draining: {}",
            relay.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reloads `relay` (its plan in `dir` compiled again from `cfg`) and waits for
/// generation `generation` and the old workers' drain (`draining` so far); returns
/// the new generation's worker.
fn reload(
    relay: &Relay,
    dir: &std::path::Path,
    cfg: &str,
    generation: u64,
    draining: usize,
) -> i32 {
    let before = harness::children_of(relay.pid());
    harness::compile(dir, "relay", cfg);
    relay.signal(1);
    relay.await_log(
        &format!("reloaded (generation {generation})"),
        Duration::from_secs(10),
    );
    await_draining(relay, draining);
    harness::children_of(relay.pid())
        .into_iter()
        .find(|pid| !before.contains(pid))
        .expect("a worker of the new generation")
}

/// Waits (10 s at most) until process `pid` has exited.
fn gone(pid: i32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while harness::alive(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// A reload to a plan without a drain timeout leaves the old generation its session;
/// one to a plan with `drain timeout = 1` closes the sessions of both old
/// generations about a second later (the older one's deadline brought forward),
/// and their workers exit.
#[test]
fn a_drain_timeout_closes_the_old_generations_sessions_and_their_workers_exit() {
    let echo = Echo::start();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let cfg = |extra: &str| {
        harness::config(
            port,
            &[(echo.port, 1)],
            "spawn = { servers min = 1 servers max = 1 }",
            extra,
        )
    };
    let relay = Relay::run_config(dir.path(), &cfg(""), port);
    let first = relay.await_workers(1, Duration::from_secs(10))[0];
    let mut one = hold(port);
    let second = reload(&relay, dir.path(), &cfg(""), 2, 1);
    std::thread::sleep(Duration::from_millis(2500));
    assert!(echoes(&mut one), "{}", relay.log_text());
    assert!(harness::alive(first));
    let mut two = hold(port);
    let hup = Instant::now();
    let third = reload(&relay, dir.path(), &cfg("drain timeout = 1"), 3, 2);
    let reloaded = Instant::now();
    for (held, generation) in [(&mut one, 1), (&mut two, 2)] {
        assert!(
            closed_within(held, Duration::from_secs(5)),
            "generation {generation}'s session: {}",
            relay.log_text()
        );
        assert!(
            hup.elapsed() >= Duration::from_millis(900)
                && reloaded.elapsed() <= Duration::from_secs(3),
            "generation {generation}'s session closed {:?} after the reload: {}",
            hup.elapsed(),
            relay.log_text()
        );
    }
    assert!(gone(first) && gone(second), "{}", relay.log_text());
    // Their close records say why.
    let log = relay.log_text();
    assert_eq!(log.matches("cause=drained").count(), 2, "{log}");
    assert!(harness::alive(third));
    assert_eq!(harness::echo_through(port, b"new").unwrap(), b"new");
}

/// `drain generations = 1`, three reloads with a session held in each generation:
/// each reload stops the oldest old generation (its session closed, its worker
/// gone), and only the latest old generation keeps its session.
#[test]
fn drain_generations_stops_the_oldest_of_too_many_draining_generations() {
    let echo = Echo::start();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let cfg = harness::config(
        port,
        &[(echo.port, 1)],
        "spawn = { servers min = 1 servers max = 1 }",
        "drain generations = 1",
    );
    let relay = Relay::run_config(dir.path(), &cfg, port);
    let mut workers = vec![relay.await_workers(1, Duration::from_secs(10))[0]];
    let mut sessions = vec![hold(port)];
    for generation in 2..=4 {
        workers.push(reload(
            &relay,
            dir.path(),
            &cfg,
            generation,
            generation as usize - 1,
        ));
        sessions.push(hold(port));
        let latest_old = generation as usize - 2;
        if latest_old > 0 {
            let stopped = latest_old - 1;
            assert!(
                closed_within(&mut sessions[stopped], Duration::from_secs(3)),
                "generation {}'s session after reload {}: {}",
                stopped + 1,
                generation - 1,
                relay.log_text()
            );
            assert!(gone(workers[stopped]), "{}", relay.log_text());
        }
        assert!(
            echoes(&mut sessions[latest_old]),
            "generation {}'s session after reload {}: {}",
            latest_old + 1,
            generation - 1,
            relay.log_text()
        );
    }
    assert_eq!(harness::children_of(relay.pid()).len(), 2);
    assert!(echoes(&mut sessions[3]));
}
