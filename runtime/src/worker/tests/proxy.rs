//! The PROXY protocol through a worker: headers accepted and consumed, the client
//! they name sent onwards to `send proxy` remotes and judged by the ACL, bad
//! headers, untrusted peers and silent clients closed, counted and never relayed.

use super::counting::counted;
use super::*;
use crate::proxy::{self as pp, Addresses};
use std::sync::Mutex;
use tcprelay_plan::{AcceptProxy, AclRule, ProxyAccept, ProxyVersion};

/// A remote that keeps everything each connection sent until its end, then
/// answers `ok` and closes.
struct Capture {
    backend: Backend,
    got: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Capture {
    fn start() -> Capture {
        let got = Arc::new(Mutex::new(Vec::new()));
        let keep = got.clone();
        let backend = Backend::with(move |mut stream| {
            let (bytes, _) = read_to_end(&mut stream);
            keep.lock().unwrap().push(bytes);
            let _ = stream.write_all(b"ok");
        });
        Capture { backend, got }
    }

    /// What the `n`th connection sent (waits for its end).
    fn nth(&self, n: usize) -> Vec<u8> {
        wait_until("the remote got the connection's bytes", IO_TIMEOUT, || {
            self.got.lock().unwrap().len() > n
        });
        self.got.lock().unwrap()[n].clone()
    }
}

fn accept(version: ProxyAccept, from: &[&str], timeout_ms: u32) -> AcceptProxy {
    AcceptProxy {
        version,
        from: from
            .iter()
            .map(|n| {
                let (address, prefix) = n.split_once('/').unwrap();
                tcprelay_plan::Network {
                    address: address.parse().unwrap(),
                    prefix: prefix.parse().unwrap(),
                }
            })
            .collect(),
        timeout_ms,
    }
}

fn sending(remote: SocketAddr, version: ProxyVersion) -> Relay {
    let mut relay = relay(&[(remote, 1)]);
    relay.remotes[0].send_proxy = Some(version);
    relay
}

/// Sends `bytes`, ends its side, and returns what came back.
fn exchange(client: &mut TcpStream, bytes: &[u8]) -> Vec<u8> {
    client.write_all(bytes).expect("write");
    client.shutdown(Shutdown::Write).expect("shutdown");
    read_to_end(client).0
}

/// Whether the worker closed the client without a byte.
fn closed(client: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    match client.read(&mut byte) {
        Ok(0) => true,
        Err(e) => e.kind() == io::ErrorKind::ConnectionReset,
        Ok(_) => false,
    }
}

/// A version 1 header is consumed: the remote gets the client's bytes after it,
/// behind the header the relay writes, which names the client the first one named.
pub(crate) fn a_header_is_consumed_and_its_client_sent_onwards(m: Mechanism) {
    let remote = Capture::start();
    let mut setup = Setup::under(m, sending(remote.backend.addr, ProxyVersion::V1));
    setup.accept_proxy = Some(accept(ProxyAccept::Any, &["127.0.0.0/8"], 5000));
    let mut worker = setup.start();
    let mut client = worker.connect();
    let answer = exchange(
        &mut client,
        b"PROXY TCP4 192.0.2.1 198.51.100.7 40000 443\r\nhello",
    );
    assert_eq!(answer, b"ok");
    assert_eq!(
        String::from_utf8_lossy(&remote.nth(0)),
        "PROXY TCP4 192.0.2.1 198.51.100.7 40000 443\r\nhello"
    );
    assert_eq!(worker.stop(), Exit::Stopped);
}

/// A version 2 header sent in two parts, 100 ms apart, is read whole; the remote
/// gets a version 2 header with the client it named, then the bytes after it.
pub(crate) fn a_header_in_two_parts_is_read_whole(m: Mechanism) {
    let remote = Capture::start();
    let mut setup = Setup::under(m, sending(remote.backend.addr, ProxyVersion::V2));
    setup.accept_proxy = Some(accept(ProxyAccept::V2, &[], 5000));
    let mut worker = setup.start();
    let header = pp::write(&pp::Header {
        version: pp::Version::V2,
        addresses: Addresses::Inet {
            source: "[2001:db8::5]:1234".parse().unwrap(),
            destination: "[2001:db8::1]:80".parse().unwrap(),
        },
        tlvs: vec![pp::Tlv {
            kind: pp::tlv::NOOP,
            value: vec![0; 20],
        }],
    })
    .unwrap();
    let mut client = worker.connect();
    client.write_all(&header[..10]).unwrap();
    thread::sleep(Duration::from_millis(100));
    client.write_all(&header[10..]).unwrap();
    assert_eq!(exchange(&mut client, b"data"), b"ok");
    let got = remote.nth(0);
    let parsed = pp::parse(&got).expect("a header first");
    assert_eq!(
        parsed.header.addresses,
        Addresses::Inet {
            source: "[2001:db8::5]:1234".parse().unwrap(),
            destination: "[2001:db8::1]:80".parse().unwrap(),
        }
    );
    assert_eq!(&got[parsed.consumed..], b"data");
    assert_eq!(worker.stop(), Exit::Stopped);
}

/// Bad headers (each of a different kind) are closed without a byte, counted in
/// the listener's proxy_refused, and no remote is connected for them.
pub(crate) fn bad_headers_are_closed_counted_and_never_relayed(m: Mechanism) {
    let remote = Capture::start();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let mut setup = Setup::under(m, relay(&[(remote.backend.addr, 1)]));
    let registry = counted(&mut setup, &listener, &[remote.backend.addr]);
    setup.listener = Some(listener);
    setup.accept_proxy = Some(accept(ProxyAccept::Any, &[], 5000));
    let mut worker = setup.start();
    let mut long = b"PROXY UNKNOWN ".to_vec();
    long.resize(120, b'x');
    let mut oversized = pp::SIGNATURE_V2.to_vec();
    oversized.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
    let bad: [&[u8]; 6] = [
        b"GET / HTTP/1.1\r\n\r\n",
        &long,
        b"PROXY TCP4 1.2.3.4 01.2.3.4 1 2\r\n",
        b"\r\n\r\n\0\r\nQUIT\n\x11\x11\0\x0c",
        &oversized,
        // Closed after part of a header.
        b"PROXY TCP4 1.2.3",
    ];
    for (i, bytes) in bad.iter().enumerate() {
        let mut client = worker.connect();
        client.write_all(bytes).unwrap();
        if i == bad.len() - 1 {
            client.shutdown(Shutdown::Write).unwrap();
        }
        assert!(closed(&mut client), "bad header {i} was served");
    }
    wait_until("six refusals counted", IO_TIMEOUT, || {
        registry.snapshot().totals.proxy_refused == 6
    });
    let snapshot = registry.snapshot();
    let listener = snapshot.listeners.iter().find(|l| l.key.is_some()).unwrap();
    assert_eq!(listener.proxy_refused, 6, "{snapshot:?}");
    assert_eq!(snapshot.totals.durations.count(), 0, "no session opened");
    assert_eq!(remote.backend.accepted(), 0);
    assert_eq!(worker.stop(), Exit::Stopped);
}

/// A peer outside `accept proxy from` is closed at accept (whatever it sends),
/// counted; a client that sends nothing is closed at the timeout, counted.
pub(crate) fn untrusted_peers_and_silent_clients_are_closed(m: Mechanism) {
    let remote = Capture::start();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let mut setup = Setup::under(m, relay(&[(remote.backend.addr, 1)]));
    let registry = counted(&mut setup, &listener, &[remote.backend.addr]);
    let bound = listener.local_addr().unwrap();
    setup.listener = Some(listener);
    setup.accept_proxy = Some(accept(ProxyAccept::Any, &["10.0.0.0/8"], 5000));
    let mut worker = setup.start();
    let mut client = worker.connect();
    let _ = client.write_all(b"PROXY TCP4 192.0.2.1 198.51.100.7 40000 443\r\nhello");
    assert!(closed(&mut client));
    wait_until("the untrusted peer counted", IO_TIMEOUT, || {
        registry.snapshot().totals.proxy_refused == 1
    });
    assert_eq!(worker.stop(), Exit::Stopped);

    // The timeout: one second, checked by the 1-second sweep.
    let listener = TcpListener::bind(bound).expect("bind again");
    let mut setup = Setup::under(m, relay(&[(remote.backend.addr, 1)]));
    let registry = counted(&mut setup, &listener, &[remote.backend.addr]);
    setup.listener = Some(listener);
    setup.accept_proxy = Some(accept(ProxyAccept::Any, &["127.0.0.1/32"], 1000));
    let mut worker = setup.start();
    let started = Instant::now();
    let mut client = worker.connect();
    client.write_all(b"PROXY TCP4 1.2").unwrap();
    assert!(closed(&mut client));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1000) && waited < Duration::from_millis(3500),
        "closed after {waited:?}"
    );
    wait_until("the timeout counted", IO_TIMEOUT, || {
        registry.snapshot().totals.proxy_refused == 1
    });
    assert_eq!(remote.backend.accepted(), 0);
    assert_eq!(worker.stop(), Exit::Stopped);
}

/// The ACL decides on the client a header names, not on the peer: with only
/// 192.0.2.0/24 permitted, a header from 127.0.0.1 naming 192.0.2.1 is relayed and
/// one naming 198.51.100.1 is denied (counted as denied, not as a PROXY refusal);
/// a Unix client a v2 header names is judged by the proxy's address, denied.
pub(crate) fn the_acl_decides_on_the_client_a_header_names(m: Mechanism) {
    let remote = Capture::start();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let mut setup = Setup::under(m, relay(&[(remote.backend.addr, 1)]));
    let registry = counted(&mut setup, &listener, &[remote.backend.addr]);
    setup.listener = Some(listener);
    setup.accept_proxy = Some(accept(ProxyAccept::Any, &["127.0.0.1/32"], 5000));
    setup.acl = vec![AclRule {
        permit: true,
        negate: false,
        network: "192.0.2.0".parse().unwrap(),
        prefix: 24,
    }];
    let mut worker = setup.start();
    let mut client = worker.connect();
    let answer = exchange(&mut client, b"PROXY TCP4 192.0.2.1 192.0.2.9 5 6\r\nin");
    assert_eq!(answer, b"ok");
    assert_eq!(remote.nth(0), b"in");
    let mut client = worker.connect();
    client
        .write_all(b"PROXY TCP4 198.51.100.1 192.0.2.9 5 6\r\nout")
        .unwrap();
    assert!(closed(&mut client));
    wait_until("the denial counted", IO_TIMEOUT, || {
        registry.snapshot().totals.denied == 1
    });
    // A Unix client (v2 AF_UNIX) has no address to judge: the proxy's is, and
    // 127.0.0.1 is not permitted.
    let unix = pp::write(&pp::Header {
        version: pp::Version::V2,
        addresses: Addresses::Unix {
            source: Box::new([b'a'; 108]),
            destination: Box::new([b'b'; 108]),
        },
        tlvs: Vec::new(),
    })
    .unwrap();
    let mut client = worker.connect();
    client.write_all(&unix).unwrap();
    client.write_all(b"unix").unwrap();
    assert!(
        closed(&mut client),
        "a Unix client named by a header passed the ACL"
    );
    wait_until("the second denial counted", IO_TIMEOUT, || {
        registry.snapshot().totals.denied == 2
    });
    let snapshot = registry.snapshot();
    assert_eq!(snapshot.totals.proxy_refused, 0);
    assert_eq!(remote.backend.accepted(), 1);
    assert_eq!(worker.stop(), Exit::Stopped);
}

/// LOCAL (v2) and UNKNOWN (v1) headers are relayed with the real peer: the remote
/// is sent the client socket's own addresses.
pub(crate) fn local_and_unknown_headers_keep_the_real_peer(m: Mechanism) {
    let remote = Capture::start();
    let mut setup = Setup::under(m, sending(remote.backend.addr, ProxyVersion::V1));
    setup.accept_proxy = Some(accept(ProxyAccept::Any, &[], 5000));
    let mut worker = setup.start();
    let local = pp::write(&pp::Header {
        version: pp::Version::V2,
        addresses: Addresses::Local,
        tlvs: Vec::new(),
    })
    .unwrap();
    for (n, header) in [&local[..], b"PROXY UNKNOWN 1.2.3.4 5.6.7.8 1 2\r\n"]
        .into_iter()
        .enumerate()
    {
        let mut client = worker.connect();
        let me = client.local_addr().unwrap();
        let mut bytes = header.to_vec();
        bytes.extend_from_slice(b"x");
        assert_eq!(exchange(&mut client, &bytes), b"ok");
        assert_eq!(
            String::from_utf8_lossy(&remote.nth(n)),
            format!(
                "PROXY TCP4 127.0.0.1 127.0.0.1 {} {}\r\nx",
                me.port(),
                worker.addr.port()
            )
        );
    }
    assert_eq!(worker.stop(), Exit::Stopped);
}

/// `send proxy = v2` on a plain listener: the remote is sent the client's address
/// and the listener's, before the client's bytes.
pub(crate) fn a_remote_is_sent_the_clients_addresses(m: Mechanism) {
    let remote = Capture::start();
    let setup = Setup::under(m, sending(remote.backend.addr, ProxyVersion::V2));
    let mut worker = setup.start();
    let mut client = worker.connect();
    let me = client.local_addr().unwrap();
    assert_eq!(exchange(&mut client, b"abc"), b"ok");
    let got = remote.nth(0);
    let parsed = pp::parse(&got).expect("a header first");
    assert_eq!(
        parsed.header.addresses,
        Addresses::Inet {
            source: me,
            destination: worker.addr,
        }
    );
    assert!(parsed.header.tlvs.is_empty(), "no TLS, no TLV");
    assert_eq!(&got[parsed.consumed..], b"abc");
    assert_eq!(worker.stop(), Exit::Stopped);
}

/// A v2 header carrying `PP2_TYPE_AUTHORITY` and `PP2_TYPE_SSL` (a TLS-terminating
/// proxy in front) on a listener that does not terminate TLS: a `send proxy = v2`
/// remote gets those two TLVs as they came (a chain of proxies keeps what the
/// first one learned), and not the others (ALPN, NOOP), behind the client the
/// header named.
pub(crate) fn a_v2_headers_tls_tlvs_are_passed_on(m: Mechanism) {
    let remote = Capture::start();
    let mut setup = Setup::under(m, sending(remote.backend.addr, ProxyVersion::V2));
    setup.accept_proxy = Some(accept(ProxyAccept::V2, &["127.0.0.0/8"], 5000));
    let mut worker = setup.start();
    let ssl = {
        let mut v = vec![pp::tlv::CLIENT_SSL, 0, 0, 0, 0, pp::tlv::SSL_VERSION, 0, 7];
        v.extend_from_slice(b"TLSv1.3");
        v
    };
    let tlv = |kind: u8, value: &[u8]| pp::Tlv {
        kind,
        value: value.to_vec(),
    };
    let source: SocketAddr = "192.0.2.1:40000".parse().unwrap();
    let destination: SocketAddr = "198.51.100.7:443".parse().unwrap();
    let header = pp::write(&pp::Header {
        version: pp::Version::V2,
        addresses: Addresses::Inet {
            source,
            destination,
        },
        tlvs: vec![
            tlv(pp::tlv::ALPN, b"h2"),
            tlv(pp::tlv::AUTHORITY, b"api.example.com"),
            tlv(pp::tlv::NOOP, b"\0\0"),
            tlv(pp::tlv::SSL, &ssl),
        ],
    })
    .expect("a header");
    let mut client = worker.connect();
    let mut bytes = header;
    bytes.extend_from_slice(b"hello");
    assert_eq!(exchange(&mut client, &bytes), b"ok");
    let got = remote.nth(0);
    let parsed = pp::parse(&got).expect("a header first");
    assert_eq!(
        parsed.header.addresses,
        Addresses::Inet {
            source,
            destination
        }
    );
    assert_eq!(
        parsed.header.tlvs,
        [
            tlv(pp::tlv::AUTHORITY, b"api.example.com"),
            tlv(pp::tlv::SSL, &ssl)
        ]
    );
    assert_eq!(&got[parsed.consumed..], b"hello");
    assert_eq!(worker.stop(), Exit::Stopped);
}
