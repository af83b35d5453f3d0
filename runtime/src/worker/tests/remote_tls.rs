//! TLS towards remotes (`tls = yes` on a remote, stunnel's client mode) through the
//! whole worker loop: plain clients, TLS servers made in the test (OpenSSL acceptors
//! in threads, with certificates generated for the test), the plan's structs.

use super::counting::counted;
use super::*;
use crate::stats::{RemoteEntry, Snapshot};
use crate::tls_context::test_certs::{Certs, PASSPHRASE};
use openssl::ssl::{NameType, SslAcceptor, SslMethod, SslVerifyMode};
use std::sync::Mutex;
use tcprelay_plan::{RemoteTls, Secret};

/// What a test TLS server saw of one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Seen {
    /// The handshake completed.
    pub(crate) ok: bool,
    /// The session was resumed.
    pub(crate) resumed: bool,
    /// The server name the client sent (SNI).
    pub(crate) sni: Option<String>,
    /// The client presented a certificate.
    pub(crate) client_cert: bool,
}

/// A TLS echo server with `certs`' certificate (for `localhost` and 127.0.0.1);
/// with `client_ca`, it requires a client certificate signed by it. It notes
/// what it saw of each connection.
pub(crate) struct TlsEcho {
    pub(crate) backend: Backend,
    pub(crate) seen: Arc<Mutex<Vec<Seen>>>,
    pub(crate) certs: Certs,
}

impl TlsEcho {
    pub(crate) fn start(client_ca: Option<&Certs>) -> TlsEcho {
        let certs = Certs::new();
        let mut acceptor =
            SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).expect("acceptor");
        acceptor
            .set_private_key_file(certs.path("key.pem"), openssl::ssl::SslFiletype::PEM)
            .expect("key");
        acceptor
            .set_certificate_chain_file(certs.path("cert.pem"))
            .expect("certificate");
        if let Some(ca) = client_ca {
            acceptor
                .cert_store_mut()
                .add_cert(ca.cert.clone())
                .expect("client CA");
            acceptor.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
        }
        let acceptor = Arc::new(acceptor.build());
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let notes = seen.clone();
        let backend = Backend::with(move |stream| {
            let note = |seen: Seen| notes.lock().expect("notes").push(seen);
            match acceptor.accept(stream) {
                Ok(mut tls) => {
                    note(Seen {
                        ok: true,
                        resumed: tls.ssl().session_reused(),
                        sni: tls
                            .ssl()
                            .servername(NameType::HOST_NAME)
                            .map(str::to_string),
                        client_cert: tls.ssl().peer_certificate().is_some(),
                    });
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        match tls.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if tls.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                            }
                        }
                    }
                    let _ = tls.shutdown();
                }
                Err(e) => {
                    note(Seen {
                        ok: false,
                        resumed: false,
                        sni: None,
                        client_cert: false,
                    });
                    // Its alert is sent; a FIN after it, and what the client sent
                    // read to its end, so that no reset overtakes the alert.
                    if let openssl::ssl::HandshakeError::Failure(mut mid) = e {
                        let stream = mid.get_mut();
                        let _ = stream.shutdown(Shutdown::Write);
                        let mut rest = [0u8; 4096];
                        while matches!(stream.read(&mut rest), Ok(n) if n > 0) {}
                    }
                }
            }
        });
        TlsEcho {
            backend,
            seen,
            certs,
        }
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.backend.addr
    }

    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("notes").clone()
    }

    /// `tls = yes` towards this server, verified with its certificate as the CA
    /// file and `sni` as the name.
    pub(crate) fn tls(&self, sni: &str) -> RemoteTls {
        RemoteTls {
            sni: Some(sni.to_string()),
            verify: true,
            ca_file: Some(self.certs.path("cert.pem")),
            cert_file: None,
            key_file: None,
            passphrase: None,
        }
    }
}

/// A relay to `remotes`, each with its TLS setting.
pub(crate) fn tls_relay(remotes: &[(SocketAddr, Option<RemoteTls>)]) -> Relay {
    let mut relay = relay(&remotes.iter().map(|&(a, _)| (a, 1)).collect::<Vec<_>>());
    for (remote, (_, tls)) in relay.remotes.iter_mut().zip(remotes) {
        remote.tls = tls.clone();
    }
    relay
}

fn entry(snapshot: &Snapshot, address: SocketAddr) -> &RemoteEntry {
    snapshot
        .remotes
        .iter()
        .find(|r| r.key.is_some_and(|k| k.address == address))
        .unwrap_or_else(|| panic!("no remote {address} in {snapshot:?}"))
}

/// Bytes written by a plain client to a `tls = yes` remote arrive intact both
/// ways (a megabyte each way, through TLS records and the relay's buffers), with
/// the SNI of the plan sent, and the remote's certificate verified by name.
pub(crate) fn a_plain_client_is_relayed_through_tls_to_the_remote(m: Mechanism) {
    let server = TlsEcho::start(None);
    let worker = Setup::under(
        m,
        tls_relay(&[(server.addr(), Some(server.tls("localhost")))]),
    )
    .start();
    let mut client = worker.connect();
    let data = random_bytes(7, 1024 * 1024);
    let writer = {
        let mut client = client.try_clone().expect("clone");
        let data = data.clone();
        thread::spawn(move || {
            client.write_all(&data).expect("write through the relay");
            client.shutdown(Shutdown::Write).expect("end of file");
        })
    };
    let (back, end) = read_to_end(&mut client);
    writer.join().expect("writer");
    end.expect("the session ends cleanly");
    assert!(back == data, "{} bytes back of {}", back.len(), data.len());
    let seen = server.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].ok, "{seen:?}");
    assert_eq!(seen[0].sni.as_deref(), Some("localhost"));
}

/// The worker keeps the session the remote gave and offers it: the second
/// session's handshake is a resumption (the server says so), the first not.
pub(crate) fn the_next_session_to_a_tls_remote_is_resumed(m: Mechanism) {
    let server = TlsEcho::start(None);
    let worker = Setup::under(
        m,
        tls_relay(&[(server.addr(), Some(server.tls("localhost")))]),
    )
    .start();
    for n in 0..3u64 {
        let mut client = worker.connect();
        // The echo's read makes OpenSSL read the TLS 1.3 tickets, sent after the
        // handshake: the session to resume comes with them.
        round_trip(&mut client, &random_bytes(n, 1000));
        drop(client);
        wait_until("the server saw the session", IO_TIMEOUT, || {
            server.seen().len() as u64 == n + 1
        });
    }
    let resumed: Vec<bool> = server.seen().iter().map(|s| s.resumed).collect();
    assert_eq!(resumed, [false, true, true]);
}

/// A remote whose certificate names another host, and one whose certificate no
/// trusted CA signed, are refused: each attempt on them is a TLS failure (counted
/// for the remote, not as a connect failure), the remote marked dead, and the
/// sessions fail over to the good remote with their bytes intact; the bad servers
/// see a handshake that the relay aborted, and none of the clients' bytes.
pub(crate) fn a_wrong_name_or_an_untrusted_certificate_fails_over_and_is_counted(m: Mechanism) {
    let good = TlsEcho::start(None);
    let wrong_name = TlsEcho::start(None);
    let untrusted = TlsEcho::start(None);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let mut setup = Setup::under(
        m,
        tls_relay(&[
            (wrong_name.addr(), Some(wrong_name.tls("other.example"))),
            (untrusted.addr(), Some(good.tls("localhost"))),
            (good.addr(), Some(good.tls("localhost"))),
        ]),
    );
    let registry = counted(
        &mut setup,
        &listener,
        &[wrong_name.addr(), untrusted.addr(), good.addr()],
    );
    setup.listener = Some(listener);
    let worker = setup.start();
    for n in 0..6u64 {
        let mut client = worker.connect();
        round_trip(&mut client, &random_bytes(n, 5000));
    }
    let snapshot = registry.snapshot();
    for bad in [&wrong_name, &untrusted] {
        let e = entry(&snapshot, bad.addr());
        assert_eq!(
            (
                e.tls_failures,
                e.connect_failures,
                e.connections,
                e.dead_marks
            ),
            (1, 0, 0, 1),
            "{e:?}"
        );
        assert_eq!(bad.seen().iter().filter(|s| s.ok).count(), 0);
    }
    let e = entry(&snapshot, good.addr());
    assert_eq!((e.tls_failures, e.connections), (0, 6), "{e:?}");
}

/// A remote that takes the TCP connect and never answers the TLS handshake costs
/// the session the TLS handshake timeout, then the session fails over (counted as
/// a TLS failure). What such a remote received is the ClientHello, a TLS
/// handshake record: none of the bytes the client had already sent.
pub(crate) fn a_silent_tls_remote_times_out_and_gets_no_client_byte(m: Mechanism) {
    let good = TlsEcho::start(None);
    let first: Arc<Mutex<Vec<u8>>> = Arc::default();
    let got = first.clone();
    let silent = Backend::with(move |mut stream| {
        let mut buf = [0u8; 5];
        if stream.read_exact(&mut buf).is_ok() {
            got.lock().expect("first bytes").extend_from_slice(&buf);
        }
        // Says nothing until the relay gives up.
        let mut rest = [0u8; 4096];
        while matches!(stream.read(&mut rest), Ok(n) if n > 0) {}
    });
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let mut setup = Setup::under(
        m,
        tls_relay(&[
            (silent.addr, Some(good.tls("localhost"))),
            (good.addr(), Some(good.tls("localhost"))),
        ]),
    );
    setup.handshake_timeout = Some(Duration::from_secs(1));
    let registry = counted(&mut setup, &listener, &[silent.addr, good.addr()]);
    setup.listener = Some(listener);
    let worker = setup.start();
    let mut slowest = Duration::ZERO;
    for n in 0..4u64 {
        let started = Instant::now();
        let mut client = worker.connect();
        round_trip(&mut client, &random_bytes(n, 100));
        slowest = slowest.max(started.elapsed());
    }
    let e = entry(&registry.snapshot(), silent.addr).clone();
    assert_eq!((e.tls_failures, e.connections), (1, 0), "{e:?}");
    // The handshake timeout (1 s, checked by a sweep of 1 s), not the connect
    // timeout (10 s).
    assert!(slowest >= Duration::from_millis(900), "{slowest:?}");
    assert!(slowest < Duration::from_secs(5), "{slowest:?}");
    let first = first.lock().expect("first bytes").clone();
    assert_eq!(&first[..3], &[0x16, 0x03, 0x01], "a TLS handshake record");
}

/// A remote that requires a client certificate gets the plan's (its key
/// encrypted, with the passphrase), and serves; without one it refuses the
/// handshake and the client gets nothing from it. In TLS 1.3 the client's side of
/// the handshake is complete before the server has checked the certificate: the
/// refusal is an alert after it, counted as a TLS failure (not a connect failure)
/// when no client byte was written yet.
pub(crate) fn a_client_certificate_is_presented_when_the_plan_gives_one(m: Mechanism) {
    let identity = Certs::new();
    let server = TlsEcho::start(Some(&identity));
    let with_cert = RemoteTls {
        cert_file: Some(identity.path("cert.pem")),
        key_file: Some(identity.path("enc-key.pem")),
        passphrase: Some(Secret::new(PASSPHRASE)),
        ..server.tls("localhost")
    };
    let worker = Setup::under(m, tls_relay(&[(server.addr(), Some(with_cert))])).start();
    let mut client = worker.connect();
    round_trip(&mut client, b"hello with a certificate");
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].ok && seen[0].client_cert, "{seen:?}");
    drop(client);
    drop(worker);

    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let mut setup = Setup::under(
        m,
        tls_relay(&[(server.addr(), Some(server.tls("localhost")))]),
    );
    let registry = counted(&mut setup, &listener, &[server.addr()]);
    setup.listener = Some(listener);
    let worker = setup.start();
    let mut client = worker.connect();
    let (back, _) = read_to_end(&mut client);
    assert!(back.is_empty(), "{back:?}");
    // One handshake, or two when the alert came before the client's bytes were
    // written (the session then failed over to the same remote, revived). The
    // relay counted each refusal before it closed the client, but the server notes
    // a refused handshake only once its alert is sent and `accept` has returned,
    // in a thread of its own: under load its last note can come after the
    // client's end. So the notes are awaited (bounded) until they match the count,
    // and compared after that in any case.
    let deadline = Instant::now() + IO_TIMEOUT;
    let (seen, e) = loop {
        let seen = server.seen();
        let e = entry(&registry.snapshot(), server.addr()).clone();
        if (seen.len() >= 2 && e.tls_failures as usize == seen.len() - 1)
            || Instant::now() >= deadline
        {
            break (seen, e);
        }
        thread::sleep(Duration::from_millis(2));
    };
    assert!(seen.len() >= 2, "{seen:?}");
    assert!(
        seen[1..].iter().all(|s| !s.ok && !s.client_cert),
        "{seen:?}"
    );
    assert!(e.tls_failures >= 1 && e.connect_failures == 0, "{e:?}");
    assert_eq!(e.tls_failures as usize, seen.len() - 1, "{e:?} {seen:?}");
}

/// A `tls = yes` listener re-encrypting towards a TLS remote: a TLS client's
/// bytes reach the remote's TLS server and come back.
pub(crate) fn a_tls_listener_re_encrypts_towards_a_tls_remote(m: Mechanism) {
    let server = TlsEcho::start(None);
    let front = Certs::new();
    let context = crate::tls_context::server_context(&front.tls("cert.pem", "key.pem", None))
        .expect("server context");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("address");
    let (ours, theirs) = StdUnixStream::pair().expect("socketpair");
    theirs.set_nonblocking(true).expect("nonblocking");
    let config = Config {
        id: 3,
        relay: tls_relay(&[(server.addr(), Some(server.tls("localhost")))]),
        users_max: 100,
        users_min: 0,
        place: None,
        counting: None,
        steering: None,
        sticky: None,
        acl: Vec::new(),
        listeners: vec![Listener {
            tls: true,
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
        mechanism: Some(m),
        ..Options::default()
    };
    let thread = thread::spawn(move || run_with(config, options));
    let worker = Harness {
        addr,
        master: Some(ours),
        thread: Some(thread),
        probe,
    };
    let mut connector =
        openssl::ssl::SslConnector::builder(SslMethod::tls_client()).expect("connector");
    connector
        .cert_store_mut()
        .add_cert(front.cert.clone())
        .expect("trust");
    let mut client = connector
        .build()
        .connect("localhost", worker.connect())
        .expect("TLS with the relay");
    let data = random_bytes(3, 200_000);
    client.write_all(&data).expect("write");
    let mut back = vec![0u8; data.len()];
    client.read_exact(&mut back).expect("echo");
    assert!(back == data);
    let seen = server.seen();
    assert!(seen.len() == 1 && seen[0].ok, "{seen:?}");
}

/// A TLS remote that takes the TCP connect and then resets the connection during
/// the TLS handshake: the TCP connect worked and the handshake did not complete,
/// so it is a TLS failure of the remote (not a connect failure). After the relay's
/// ClientHello: the remote is marked dead once and the sessions fail over with
/// their bytes intact. At once (the worker may then see the reset before it saw
/// the connect complete: 20 sessions meet both orders), a remote alone: every
/// session's attempts are TLS failures and its client is closed unanswered.
pub(crate) fn a_tls_remote_that_resets_during_the_handshake_is_a_tls_failure(m: Mechanism) {
    let good = TlsEcho::start(None);
    let after_hello = Backend::with(|mut stream| {
        let mut hello = [0u8; 5];
        let _ = stream.read_exact(&mut hello);
        let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
    });
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let mut setup = Setup::under(
        m,
        tls_relay(&[
            (after_hello.addr, Some(good.tls("localhost"))),
            (good.addr(), Some(good.tls("localhost"))),
        ]),
    );
    let registry = counted(&mut setup, &listener, &[after_hello.addr, good.addr()]);
    setup.listener = Some(listener);
    let worker = setup.start();
    for n in 0..3u64 {
        let mut client = worker.connect();
        round_trip(&mut client, &random_bytes(n, 1000));
    }
    let snapshot = registry.snapshot();
    let e = entry(&snapshot, after_hello.addr);
    assert_eq!(
        (
            e.tls_failures,
            e.connect_failures,
            e.connections,
            e.dead_marks
        ),
        (1, 0, 0, 1),
        "{e:?}"
    );
    assert_eq!(entry(&snapshot, good.addr()).connections, 3);
    drop(worker);

    let at_once = Backend::with(super::resets::reset_at_once);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let mut setup = Setup::under(m, tls_relay(&[(at_once.addr, Some(good.tls("localhost")))]));
    let registry = counted(&mut setup, &listener, &[at_once.addr]);
    setup.listener = Some(listener);
    let worker = setup.start();
    for _ in 0..20 {
        let mut client = worker.connect();
        let _ = client.write_all(b"never relayed");
        let (back, _) = read_to_end(&mut client);
        assert!(back.is_empty(), "{back:?}");
    }
    let snapshot = registry.snapshot();
    let e = entry(&snapshot, at_once.addr);
    assert_eq!((e.connect_failures, e.connections), (0, 0), "{e:?}");
    assert!(e.tls_failures >= 20, "{e:?}");
}
