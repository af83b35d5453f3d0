//! Tests of TLS termination through the whole worker loop over loopback: the worker
//! runs in a thread with a `tls = yes` listener on `127.0.0.1:0` and a context made
//! from a fresh self-signed certificate, clients are OpenSSL clients that verify it,
//! backends are small blocking servers in threads, and the test plays the master.
//!
//! Every socket has a timeout, every thread is joined (the harnesses stop and join in
//! `Drop`, also when a test fails) and every wait is bounded.

use super::server::SWEEP_INTERVAL;
use super::tests::{random_bytes, reply_for, wait_until, Backend, Harness, Mode};
use super::*;
use crate::tls_context::test_certs::Certs;
use openssl::ssl::{
    ErrorCode, ShutdownResult, SslConnector, SslMethod, SslSession, SslStream, SslVersion,
};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};
use tcprelay_plan::Remote;

/// Timeout of every blocking socket operation in the tests.
const IO_TIMEOUT: Duration = Duration::from_secs(20);

fn relay_to(backend: SocketAddr) -> Relay {
    // No silent timeout: a test's client may take its time.
    Relay {
        silent_timeout: 0,
        ..Relay::new(vec![Remote::new(backend)])
    }
}

/// FNV-1a: enough to compare byte streams.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

// ---- the worker under test --------------------------------------------------------

/// The plain tests' worker harness (stopped and joined on drop), with the
/// certificates its clients trust.
struct TlsWorker {
    worker: Harness,
    certs: Certs,
}

impl TlsWorker {
    fn start(relay: Relay, handshake_timeout: Option<Duration>) -> TlsWorker {
        TlsWorker::start_limited(relay, handshake_timeout, None)
    }

    /// [`TlsWorker::start`] with at most `max_handshakes` handshakes at once.
    fn start_limited(
        relay: Relay,
        handshake_timeout: Option<Duration>,
        max_handshakes: Option<usize>,
    ) -> TlsWorker {
        TlsWorker::start_with(relay, handshake_timeout, max_handshakes, None)
    }

    /// [`TlsWorker::start_limited`], counting in the counters `counting` makes
    /// for its listener (once bound).
    fn start_with(
        relay: Relay,
        handshake_timeout: Option<Duration>,
        max_handshakes: Option<usize>,
        counting: Option<Counting>,
    ) -> TlsWorker {
        TlsWorker::start_proxied(relay, handshake_timeout, max_handshakes, counting, None)
    }

    /// [`TlsWorker::start`] on a listener that accepts `versions` only (empty:
    /// 1.2 and 1.3), with `tls = auto` if `auto`.
    fn start_versions(
        relay: Relay,
        handshake_timeout: Option<Duration>,
        versions: &[tcprelay_plan::TlsVersion],
        auto: bool,
        counting: Option<Counting>,
    ) -> TlsWorker {
        TlsWorker::start_listener(
            relay,
            handshake_timeout,
            None,
            counting,
            None,
            (versions.to_vec(), auto),
        )
    }

    /// [`TlsWorker::start_with`] on a listener with `accept proxy`.
    fn start_proxied(
        relay: Relay,
        handshake_timeout: Option<Duration>,
        max_handshakes: Option<usize>,
        counting: Option<Counting>,
        accept_proxy: Option<tcprelay_plan::AcceptProxy>,
    ) -> TlsWorker {
        TlsWorker::start_listener(
            relay,
            handshake_timeout,
            max_handshakes,
            counting,
            accept_proxy,
            (Vec::new(), false),
        )
    }

    fn start_listener(
        relay: Relay,
        handshake_timeout: Option<Duration>,
        max_handshakes: Option<usize>,
        counting: Option<Counting>,
        accept_proxy: Option<tcprelay_plan::AcceptProxy>,
        (tls_versions, tls_auto): (Vec<tcprelay_plan::TlsVersion>, bool),
    ) -> TlsWorker {
        let certs = Certs::new();
        let context = crate::tls_context::server_context(&certs.tls(
            "cert.pem",
            "enc-key.pem",
            Some(crate::tls_context::test_certs::PASSPHRASE),
        ))
        .expect("server context");
        // A deep backlog: the tests open hundreds of connections at once.
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        let any: SocketAddr = "127.0.0.1:0".parse().expect("address");
        socket.bind(&any.into()).expect("bind");
        socket.listen(1024).expect("listen");
        socket.set_nonblocking(true).expect("nonblocking");
        let listener: TcpListener = socket.into();
        let addr = listener.local_addr().expect("address");
        let (ours, theirs) = StdUnixStream::pair().expect("socketpair");
        theirs.set_nonblocking(true).expect("nonblocking");
        let config = Config {
            id: 7,
            relay,
            users_max: 2000,
            users_min: 0,
            place: None,
            counting,
            steering: None,
            sticky: None,
            acl: Vec::new(),
            listeners: vec![Listener {
                tls: true,
                accept_proxy,
                tls_versions,
                tls_auto,
                ..Listener::plain(ListenSocket::Tcp(mio::net::TcpListener::from_std(listener)))
            }],
            tcp_bufsize: None,
            control: mio::net::UnixStream::from_std(theirs),
            signals: None,
            discovery: None,
            tls: Some(context),
            route_tls: Vec::new(),
        };
        let probe = Arc::new(Probe::default());
        let options = Options {
            probe: Some(probe.clone()),
            handshake_timeout,
            max_handshakes,
            ..Options::default()
        };
        let thread = thread::spawn(move || run_with(config, options));
        TlsWorker {
            worker: Harness {
                addr,
                master: Some(ours),
                thread: Some(thread),
                probe,
            },
            certs,
        }
    }

    /// A client that trusts the test certificate only, optionally pinned to one
    /// protocol version.
    fn connector(&self, version: Option<SslVersion>) -> SslConnector {
        let mut builder = SslConnector::builder(SslMethod::tls_client()).expect("connector");
        builder
            .cert_store_mut()
            .add_cert(self.certs.cert.clone())
            .expect("trust the test certificate");
        if version.is_some() {
            builder.set_min_proto_version(version).expect("min version");
            builder.set_max_proto_version(version).expect("max version");
        }
        builder.build()
    }

    fn tcp(&self) -> TcpStream {
        self.worker.connect()
    }

    /// A verified TLS connection through the worker.
    fn connect(&self) -> SslStream<TcpStream> {
        self.connector(None)
            .connect("localhost", self.tcp())
            .expect("TLS handshake with the worker")
    }

    fn tls_failures(&self) -> usize {
        self.worker.probe.tls_failures.load(Ordering::Relaxed)
    }

    /// Stops the worker and waits for its loop to return.
    fn stop(&mut self) -> Exit {
        self.worker.stop()
    }
}

// ---- backends ---------------------------------------------------------------------

// ---- clients ----------------------------------------------------------------------

/// One request and its echo over TLS.
fn round_trip(stream: &mut SslStream<TcpStream>, message: &[u8]) {
    stream.write_all(message).expect("write through the relay");
    let mut back = vec![0u8; message.len()];
    stream
        .read_exact(&mut back)
        .expect("echo through the relay");
    assert_eq!(back, message);
}

/// Reads to close_notify (`Ok`) or an error.
fn read_to_close_notify(stream: &mut SslStream<TcpStream>) -> io::Result<Vec<u8>> {
    let mut data = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match stream.ssl_read(&mut buf) {
            Ok(n) => data.extend_from_slice(&buf[..n]),
            Err(e) if e.code() == ErrorCode::ZERO_RETURN => return Ok(data),
            Err(e) => {
                return Err(e
                    .into_io_error()
                    .unwrap_or_else(|e| io::Error::other(e.to_string())))
            }
        }
    }
}

/// Sends `data` and reads its echo at the same time on a non-blocking TLS client
/// (so both directions are full at once and OpenSSL's retry rules are exercised on
/// the client too), then sends close_notify and reads to the relay's close_notify.
/// Returns what came back.
fn duplex(mut stream: SslStream<TcpStream>, data: &[u8]) -> Vec<u8> {
    stream.get_ref().set_nonblocking(true).expect("nonblocking");
    let deadline = Instant::now() + IO_TIMEOUT;
    let mut back = Vec::with_capacity(data.len());
    let mut buf = vec![0u8; 32 * 1024];
    let mut sent = 0;
    let mut closed = false;
    let mut step = 1 + (data.len() % 7919);
    loop {
        assert!(Instant::now() < deadline, "session stalled");
        let mut progress = false;
        if sent < data.len() {
            // Uneven writes; a retry after WANT_WRITE repeats the same bytes.
            let end = (sent + step).min(data.len());
            match stream.ssl_write(&data[sent..end]) {
                Ok(n) => {
                    sent += n;
                    step = 1 + (step * 31 + 17) % 70_000;
                    progress = true;
                }
                Err(e) if matches!(e.code(), ErrorCode::WANT_READ | ErrorCode::WANT_WRITE) => {}
                Err(e) => panic!("client write: {e}"),
            }
        } else if !closed {
            match stream.shutdown() {
                Ok(_) => {
                    closed = true;
                    progress = true;
                }
                Err(e) if matches!(e.code(), ErrorCode::WANT_READ | ErrorCode::WANT_WRITE) => {}
                Err(e) => panic!("client close_notify: {e}"),
            }
        }
        match stream.ssl_read(&mut buf) {
            Ok(n) => {
                back.extend_from_slice(&buf[..n]);
                progress = true;
            }
            Err(e) if e.code() == ErrorCode::ZERO_RETURN => {
                assert!(closed, "the relay closed first");
                return back;
            }
            Err(e) if matches!(e.code(), ErrorCode::WANT_READ | ErrorCode::WANT_WRITE) => {}
            Err(e) => panic!("client read: {e}"),
        }
        if !progress {
            thread::sleep(Duration::from_micros(200));
        }
    }
}

/// Whether the worker closes `stream` (end of file or reset) within `within`;
/// whatever it sends first (an alert) is skipped.
fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        stream.set_read_timeout(Some(left)).expect("timeout");
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

// ---- the tests --------------------------------------------------------------------

#[test]
fn tls_data_integrity_20_sessions_of_512_kib() {
    const SESSIONS: u64 = 20;
    const SIZE: usize = 512 * 1024;
    let echo = Backend::start(Mode::Echo);
    let mut worker = TlsWorker::start(relay_to(echo.addr), None);
    let clients: Vec<_> = (0..SESSIONS)
        .map(|i| {
            let stream = worker.connect();
            thread::spawn(move || {
                let data = random_bytes(i + 1, SIZE);
                let back = duplex(stream, &data);
                (back.len(), fnv(&back) == fnv(&data))
            })
        })
        .collect();
    for (i, client) in clients.into_iter().enumerate() {
        let (len, same) = client.join().expect("client");
        assert_eq!(len, SIZE, "session {i} length");
        assert!(same, "session {i} bytes differ");
    }
    assert_eq!(echo.accepted(), SESSIONS as usize);
    wait_until("sessions to end", IO_TIMEOUT, || {
        worker.worker.probe.sessions.load(Ordering::Relaxed) == 0
    });
    assert_eq!(worker.worker.probe.buffered.load(Ordering::Relaxed), 0);
    assert_eq!(worker.tls_failures(), 0);
    assert_eq!(worker.stop(), Exit::Stopped);
}

#[test]
fn garbage_clients_are_closed_at_once_and_never_reach_a_remote() {
    let echo = Backend::start(Mode::Echo);
    let worker = TlsWorker::start(relay_to(echo.addr), None);
    let mut good = worker.connect();
    round_trip(&mut good, b"before");
    let mut tls_header_then_junk = vec![0x16, 0x03, 0x01, 0x00, 0x40];
    tls_header_then_junk.extend(random_bytes(3, 64));
    let garbage: [Vec<u8>; 3] = [
        b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(),
        random_bytes(2, 4096),
        tls_header_then_junk,
    ];
    let mut bad: Vec<TcpStream> = garbage
        .iter()
        .map(|bytes| {
            let mut stream = worker.tcp();
            stream.write_all(bytes).expect("send garbage");
            stream
        })
        .collect();
    // Closed long before the handshake timeout, while the good client is served.
    let started = Instant::now();
    for stream in &mut bad {
        assert!(
            closed_within(stream, Duration::from_secs(5)),
            "a garbage client was not closed"
        );
    }
    assert!(started.elapsed() < HANDSHAKE_TIMEOUT / 2);
    round_trip(&mut good, b"during and after");
    let mut late = worker.connect();
    round_trip(&mut late, b"a new client");
    assert_eq!(
        echo.accepted(),
        2,
        "only the TLS clients reached the remote"
    );
    wait_until("the failures to be counted", IO_TIMEOUT, || {
        worker.tls_failures() == garbage.len()
    });
}

/// The relay-wide counters count a completed handshake as done, and garbage and a
/// silent client (the handshake timeout) as failed; the TLS session's bytes too.
#[test]
fn handshakes_are_counted_done_or_failed() {
    const TIMEOUT: Duration = Duration::from_millis(600);
    let echo = Backend::start(Mode::Echo);
    // The listener's key only names its slot.
    let (registry, counting) =
        super::tests::counting::registry_for("127.0.0.1:0".parse().unwrap(), &[echo.addr]);
    let worker = TlsWorker::start_with(relay_to(echo.addr), Some(TIMEOUT), None, Some(counting));
    let mut good = worker.connect();
    round_trip(&mut good, b"counted");
    let mut garbage = worker.tcp();
    garbage
        .write_all(&random_bytes(5, 512))
        .expect("send garbage");
    let mut silent = worker.tcp();
    for stream in [&mut garbage, &mut silent] {
        assert!(closed_within(
            stream,
            TIMEOUT + 2 * SWEEP_INTERVAL + Duration::from_secs(3)
        ));
    }
    wait_until("two failures counted", IO_TIMEOUT, || {
        registry.snapshot().totals.tls_failures == 2
    });
    let totals = registry.snapshot().totals;
    assert_eq!(
        (totals.tls_handshakes, totals.accepted),
        (1, 3),
        "{totals:?}"
    );
    assert_eq!((totals.bytes_to_remote, totals.bytes_to_client), (7, 7));
    assert_eq!(totals.sessions, 1);
    drop(good);
}

#[test]
fn silent_and_stalled_clients_are_closed_after_the_handshake_timeout() {
    const TIMEOUT: Duration = Duration::from_millis(600);
    let echo = Backend::start(Mode::Echo);
    let worker = TlsWorker::start(relay_to(echo.addr), Some(TIMEOUT));
    let started = Instant::now();
    let mut silent = worker.tcp();
    let mut stalled = worker.tcp();
    // The start of a TLS record, then nothing.
    stalled.write_all(&[0x16, 0x03, 0x01]).expect("write");
    // Others are served meanwhile.
    let mut good = worker.connect();
    round_trip(&mut good, b"served while others stall");
    for stream in [&mut silent, &mut stalled] {
        assert!(
            closed_within(
                stream,
                TIMEOUT + 2 * SWEEP_INTERVAL + Duration::from_secs(3)
            ),
            "a stalled client was not closed"
        );
        assert!(started.elapsed() >= TIMEOUT, "closed before the timeout");
    }
    round_trip(&mut good, b"and still served");
    assert_eq!(
        echo.accepted(),
        1,
        "the stalled clients never reached the remote"
    );
    wait_until("the timeouts to be counted", IO_TIMEOUT, || {
        worker.tls_failures() == 2
    });
    // A session past its handshake is not subject to the handshake timeout.
    thread::sleep(TIMEOUT + SWEEP_INTERVAL);
    round_trip(&mut good, b"long after the timeout");
}

#[test]
fn two_hundred_concurrent_handshakes_all_succeed() {
    const CLIENTS: usize = 200;
    let echo = Backend::start(Mode::Echo);
    let worker = TlsWorker::start(relay_to(echo.addr), None);
    let connector = worker.connector(None);
    let barrier = Arc::new(Barrier::new(CLIENTS));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (connector, barrier, addr) =
                (connector.clone(), barrier.clone(), worker.worker.addr);
            thread::spawn(move || -> Result<(), String> {
                barrier.wait();
                let tcp = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
                    .map_err(|e| format!("connect: {e}"))?;
                tcp.set_read_timeout(Some(IO_TIMEOUT)).ok();
                tcp.set_write_timeout(Some(IO_TIMEOUT)).ok();
                let mut tls = connector
                    .connect("localhost", tcp)
                    .map_err(|e| format!("handshake: {e}"))?;
                let message = format!("client {i}");
                tls.write_all(message.as_bytes())
                    .map_err(|e| format!("write: {e}"))?;
                let mut back = vec![0u8; message.len()];
                tls.read_exact(&mut back)
                    .map_err(|e| format!("read: {e}"))?;
                if back != message.as_bytes() {
                    return Err("wrong echo".to_string());
                }
                let _ = tls.shutdown();
                Ok(())
            })
        })
        .collect();
    let failures: Vec<String> = clients
        .into_iter()
        .filter_map(|c| c.join().expect("client thread").err())
        .collect();
    assert!(failures.is_empty(), "failed clients: {failures:?}");
    assert_eq!(echo.accepted(), CLIENTS);
    assert_eq!(worker.tls_failures(), 0);
}

#[test]
fn close_notify_is_a_half_close_and_the_reply_still_arrives() {
    let backend = Backend::start(Mode::ReplyAfterEof);
    let worker = TlsWorker::start(relay_to(backend.addr), None);
    for version in [SslVersion::TLS1_3, SslVersion::TLS1_2] {
        let mut stream = worker
            .connector(Some(version))
            .connect("localhost", worker.tcp())
            .expect("handshake");
        let request = random_bytes(9, 100_000);
        stream.write_all(&request).expect("request");
        // close_notify: the backend sees end of file and only then answers.
        assert!(matches!(
            stream.shutdown().expect("close_notify"),
            ShutdownResult::Sent
        ));
        let reply = read_to_close_notify(&mut stream).expect("the whole reply");
        assert_eq!(reply, reply_for(request.len()), "{version:?}");
    }
    // A client that half-closes TCP without close_notify: end of file all the same.
    let mut stream = worker.connect();
    stream.write_all(b"no close_notify").expect("request");
    stream
        .get_ref()
        .shutdown(std::net::Shutdown::Write)
        .expect("FIN");
    let reply = read_to_close_notify(&mut stream).expect("the whole reply");
    assert_eq!(reply, reply_for(15));
    assert_eq!(backend.accepted(), 3);
    assert_eq!(worker.tls_failures(), 0);
}

/// A remote that answers and then resets, behind a TLS listener: each TLS client
/// reads the whole answer (16 bytes to 1 MiB), then the reset. The client side
/// copies (a TLS side never splices).
#[test]
fn an_answer_followed_by_a_reset_reaches_a_tls_client() {
    use super::tests::resets::{answer_for, answer_then_reset, assert_no_trial_failed, request};
    const THREADS: usize = 4;
    const TRIALS: usize = 15;
    let backend = Backend::with(answer_then_reset);
    let mut worker = TlsWorker::start(relay_to(backend.addr), None);
    let connector = worker.connector(None);
    let addr = worker.worker.addr;
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let connector = connector.clone();
            thread::spawn(move || {
                let mut failures = Vec::new();
                for trial in 0..TRIALS {
                    let kind = ((t + trial) % 4) as u8;
                    let tcp = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
                    tcp.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
                    let mut stream = connector.connect("localhost", tcp).expect("handshake");
                    stream.write_all(&request(kind)).expect("request");
                    let mut data = Vec::new();
                    let mut buf = vec![0u8; 64 * 1024];
                    let end = loop {
                        match stream.ssl_read(&mut buf) {
                            Ok(n) => data.extend_from_slice(&buf[..n]),
                            Err(e) => break e.into_io_error().map(|e| e.kind()).ok(),
                        }
                    };
                    let answer = answer_for(kind);
                    if data != answer || end != Some(io::ErrorKind::ConnectionReset) {
                        failures.push(format!(
                            "{} of {} bytes, then {end:?}",
                            data.len(),
                            answer.len()
                        ));
                    }
                }
                failures
            })
        })
        .collect();
    assert_no_trial_failed(threads, THREADS * TRIALS);
    assert_eq!(worker.tls_failures(), 0);
    assert_eq!(worker.stop(), Exit::Stopped);
}

#[test]
fn sessions_are_resumed() {
    let echo = Backend::start(Mode::Echo);
    let worker = TlsWorker::start(relay_to(echo.addr), None);
    for version in [SslVersion::TLS1_3, SslVersion::TLS1_2] {
        let connector = worker.connector(Some(version));
        let mut first = connector
            .connect("localhost", worker.tcp())
            .expect("handshake");
        assert!(!first.ssl().session_reused());
        // A round trip: TLS 1.3 tickets arrive after the handshake.
        round_trip(&mut first, b"first");
        let session: SslSession = first.ssl().session().expect("a session").to_owned();
        let _ = first.shutdown();
        drop(first);
        let mut ssl = connector
            .configure()
            .expect("configure")
            .into_ssl("localhost")
            .expect("ssl");
        // The session comes from a connection of the same connector, so of the
        // same context, as `set_session` requires.
        crate::sys::testing::set_session(&mut ssl, &session).expect("set session");
        let mut second = ssl.connect(worker.tcp()).expect("resumed handshake");
        assert!(second.ssl().session_reused(), "{version:?}: not resumed");
        round_trip(&mut second, b"second");
    }
}

// ---- handshake memory -------------------------------------------------------------

/// The start of a ClientHello record, then nothing: a handshake that has started.
const PARTIAL_HELLO: &[u8] = &[
    0x16, 0x03, 0x01, 0x00, 0xc8, 0x01, 0x00, 0x00, 0xc4, 0x03, 0x03,
];

#[test]
fn silent_clients_start_no_handshake() {
    const SILENT: usize = 300;
    let echo = Backend::start(Mode::Echo);
    let worker = TlsWorker::start(relay_to(echo.addr), None);
    let silent: Vec<TcpStream> = (0..SILENT).map(|_| worker.tcp()).collect();
    let probe = &worker.worker.probe;
    wait_until("the silent clients to be accepted", IO_TIMEOUT, || {
        probe.sessions.load(Ordering::Relaxed) == SILENT
    });
    // A served client meanwhile: one handshake at a time at most.
    let mut good = worker.connect();
    round_trip(&mut good, b"served beside the silent ones");
    // Counted, not sampled at the end of a turn: a handshake may begin and end
    // within one turn (it did, now and then, on a loaded machine).
    wait_until(
        "the good client's handshake to be counted",
        IO_TIMEOUT,
        || probe.handshakes_started.load(Ordering::Relaxed) >= 1,
    );
    assert_eq!(
        probe.handshakes_started.load(Ordering::Relaxed),
        1,
        "an OpenSSL connection (about 40 KiB with its handshake) was made for a silent client"
    );
    // A client that speaks starts its handshake.
    let mut spoke = worker.tcp();
    spoke.write_all(PARTIAL_HELLO).expect("write");
    wait_until("the handshake to start", IO_TIMEOUT, || {
        probe.handshakes.load(Ordering::Relaxed) == 1
    });
    drop(silent);
}

#[test]
fn handshakes_beyond_the_limit_wait_for_a_slot() {
    let echo = Backend::start(Mode::Echo);
    let worker = TlsWorker::start_limited(relay_to(echo.addr), None, Some(1));
    let probe = &worker.worker.probe;
    // A client that started its handshake and stalls holds the only slot.
    let mut stalled = worker.tcp();
    stalled.write_all(PARTIAL_HELLO).expect("write");
    wait_until("the stalled handshake to start", IO_TIMEOUT, || {
        probe.handshakes.load(Ordering::Relaxed) == 1
    });
    // A real client waits for the slot ...
    let (connector, addr) = (worker.connector(None), worker.worker.addr);
    let client = thread::spawn(move || {
        let tcp = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
        tcp.set_read_timeout(Some(IO_TIMEOUT)).ok();
        let mut tls = connector
            .connect("localhost", tcp)
            .expect("handshake once the slot is free");
        let done = Instant::now();
        round_trip(&mut tls, b"served after waiting for a slot");
        done
    });
    wait_until("the second client to be accepted", IO_TIMEOUT, || {
        probe.sessions.load(Ordering::Relaxed) == 2
    });
    thread::sleep(Duration::from_millis(300));
    assert!(
        !client.is_finished(),
        "a second handshake ran beside the first"
    );
    // ... and takes it as soon as the stalled one goes (its ClientHello waits in the
    // kernel: no event would wake it), not at its handshake timeout (10 s).
    let freed = Instant::now();
    stalled.write_all(b"junk").expect("write");
    drop(stalled);
    let done = client.join().expect("client thread");
    assert!(
        done.duration_since(freed) < Duration::from_secs(2),
        "the waiting handshake took {:?} after the slot was freed",
        done.duration_since(freed)
    );
    assert_eq!(probe.max_handshakes.load(Ordering::Relaxed), 1);
}

/// A TLS listener that accepts the PROXY protocol: the header comes before the
/// handshake, raw; the remote (`send proxy = v2`) is sent the client the header
/// named, with the TLVs of the client's TLS connection (its SNI, version, cipher).
#[test]
fn a_proxy_header_comes_before_the_handshake_and_its_tlvs_go_onwards() {
    use crate::proxy::{self as pp, tlv, Addresses};
    let got = Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = got.clone();
    let backend = Backend::with(move |mut stream| {
        let (bytes, _) = super::tests::read_to_end(&mut stream);
        keep.lock().unwrap().extend_from_slice(&bytes);
        let _ = stream.write_all(b"ok");
    });
    let mut relay = relay_to(backend.addr);
    relay.remotes[0].send_proxy = Some(tcprelay_plan::ProxyVersion::V2);
    let proxy = tcprelay_plan::AcceptProxy {
        version: tcprelay_plan::ProxyAccept::Any,
        from: Vec::new(),
        timeout_ms: 5000,
    };
    let mut worker = TlsWorker::start_proxied(relay, None, None, None, Some(proxy));
    let mut tcp = worker.tcp();
    tcp.write_all(b"PROXY TCP6 2001:db8::7 2001:db8::1 4444 443\r\n")
        .expect("header");
    let mut stream = worker
        .connector(None)
        .connect("localhost", tcp)
        .expect("the TLS handshake after the header");
    stream.write_all(b"secret").expect("write");
    stream.shutdown().expect("close_notify");
    assert_eq!(
        read_to_close_notify(&mut stream).expect("the answer"),
        b"ok"
    );
    wait_until("the remote got the session", IO_TIMEOUT, || {
        !got.lock().unwrap().is_empty()
    });
    let bytes = got.lock().unwrap().clone();
    let parsed = pp::parse(&bytes).expect("a header first");
    assert_eq!(
        parsed.header.addresses,
        Addresses::Inet {
            source: "[2001:db8::7]:4444".parse().unwrap(),
            destination: "[2001:db8::1]:443".parse().unwrap(),
        }
    );
    assert_eq!(parsed.header.tlv(tlv::AUTHORITY), Some(&b"localhost"[..]));
    let ssl = parsed.header.tlv(tlv::SSL).expect("the SSL TLV");
    assert_eq!(ssl[0], tlv::CLIENT_SSL);
    let version = stream.ssl().version_str().as_bytes();
    assert!(
        ssl.windows(version.len()).any(|w| w == version),
        "the version {:?} in {ssl:?}",
        stream.ssl().version_str()
    );
    assert_eq!(&bytes[parsed.consumed..], b"secret");
    assert_eq!(worker.stop(), Exit::Stopped);
}

/// `tls = TLSv1.2` or `TLSv1.3` on a listener: a client that offers only the other
/// version fails its handshake (counted), one that offers the listener's version
/// gets it, and a client that offers both gets the listener's.
#[test]
fn a_listener_accepts_its_tls_versions_only() {
    use tcprelay_plan::TlsVersion;
    let echo = Backend::start(Mode::Echo);
    for (only, refused) in [
        (TlsVersion::Tls13, SslVersion::TLS1_2),
        (TlsVersion::Tls12, SslVersion::TLS1_3),
    ] {
        let allowed = match only {
            TlsVersion::Tls12 => SslVersion::TLS1_2,
            TlsVersion::Tls13 => SslVersion::TLS1_3,
        };
        let worker = TlsWorker::start_versions(relay_to(echo.addr), None, &[only], false, None);
        let err = worker
            .connector(Some(refused))
            .connect("localhost", worker.tcp())
            .expect_err("a version the listener does not accept");
        assert!(
            err.to_string().contains("protocol version") || err.to_string().contains("alert"),
            "{only:?}: {err}"
        );
        wait_until("the refused handshake counted", IO_TIMEOUT, || {
            worker.tls_failures() == 1
        });
        let mut pinned = worker
            .connector(Some(allowed))
            .connect("localhost", worker.tcp())
            .expect("the listener's version");
        round_trip(&mut pinned, b"pinned");
        let mut any = worker.connect();
        assert_eq!(any.ssl().version_str(), only.name(), "{only:?}");
        round_trip(&mut any, b"either");
    }
    // Both (the plan's empty list): either version.
    let worker = TlsWorker::start_versions(relay_to(echo.addr), None, &[], false, None);
    for version in [SslVersion::TLS1_2, SslVersion::TLS1_3] {
        let mut client = worker
            .connector(Some(version))
            .connect("localhost", worker.tcp())
            .expect("1.2 and 1.3");
        round_trip(&mut client, b"both");
    }
}

/// `tls = auto`: a client whose first byte is not a TLS handshake record is relayed
/// in plain text (no handshake started or counted, no TLS failure), and a TLS client
/// of the same listener still gets its handshake. Without `auto` the plain client
/// is a failed handshake, closed.
#[test]
fn tls_auto_relays_a_plain_client_and_terminates_a_tls_one() {
    let echo = Backend::start(Mode::Echo);
    let (registry, counting) =
        super::tests::counting::registry_for("127.0.0.1:0".parse().unwrap(), &[echo.addr]);
    let worker = TlsWorker::start_versions(relay_to(echo.addr), None, &[], true, Some(counting));
    let mut plain = worker.tcp();
    plain.write_all(b"GET / HTTP/1.0\r\n\r\n").expect("write");
    let mut back = [0u8; 18];
    plain
        .read_exact(&mut back)
        .expect("the echo, in plain text");
    assert_eq!(&back, b"GET / HTTP/1.0\r\n\r\n");
    let mut tls = worker.connect();
    round_trip(&mut tls, b"through TLS");
    assert_eq!(
        worker
            .worker
            .probe
            .handshakes_started
            .load(Ordering::Relaxed),
        1,
        "no OpenSSL connection for the plain client"
    );
    let totals = registry.snapshot().totals;
    assert_eq!(
        (totals.tls_handshakes, totals.tls_failures, totals.accepted),
        (1, 0, 2),
        "{totals:?}"
    );
    assert_eq!(worker.tls_failures(), 0);
    drop((plain, tls));
    // The same client on a listener without `auto`.
    let strict = TlsWorker::start(relay_to(echo.addr), None);
    let mut plain = strict.tcp();
    plain.write_all(b"GET / HTTP/1.0\r\n\r\n").expect("write");
    assert!(closed_within(&mut plain, Duration::from_secs(5)));
    wait_until("a failed handshake", IO_TIMEOUT, || {
        strict.tls_failures() == 1
    });
}
