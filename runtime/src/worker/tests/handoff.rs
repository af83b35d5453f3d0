//! Worker affinity (`sticky cache`): a client accepted by worker A whose entry
//! names worker B is handed to B through the master, with its socket. The test
//! plays the master: it reads A's hand-off and its descriptor and passes them to
//! B, or back to A, as `master::handoff` decides (its choices are tested there).
//! A listens on the port the clients connect to; B has a listener of its own that
//! nobody connects to, so that A accepts every client.

use super::counting::registry_for;
use super::sticky::connect_from;
use super::*;
use crate::control::{self, Incoming, Reader};
use crate::sticky::{Entry, Table};
use crate::worker::Sticky;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsFd, OwnedFd};

/// The worker in board seat `seat`, with the relay-wide sticky cache.
fn sticky(table: &Table, seat: usize) -> Sticky {
    let (regions, _) = crate::sticky::layout(
        Some(tcprelay_plan::Sticky {
            period_s: 60,
            size: 1024,
        }),
        &[None],
    );
    Sticky {
        table: table.clone(),
        regions,
        slots: vec![1],
        seat: Some(seat),
        generation: 1,
    }
}

/// Writes an entry that sends the clients of 127.0.0.2 on port `port` to the
/// worker in board seat `seat`.
fn entry_for_seat(table: &Table, port: u16, seat: u16) {
    let config = sticky(table, 0);
    let region = config.regions[0].expect("a region");
    let key = table.key(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)), port);
    let entry = Entry {
        remote_slot: 1,
        seat: Some(seat),
        generation: 1,
    };
    table.record(&region, key, entry, std::time::SystemTime::now());
}

/// What every test here starts from: an echo backend, a sticky table and a load
/// board shared by two workers, the listener A accepts on (`to`), and, when
/// counted, the relay-wide counters.
struct Scene {
    backend: Backend,
    table: Table,
    board: crate::board::Board,
    listener: Option<TcpListener>,
    to: SocketAddr,
    registry: Option<crate::stats::Registry>,
}

fn scene() -> Scene {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    Scene {
        backend: Backend::start(Mode::Echo),
        table: Table::new().unwrap(),
        board: crate::board::Board::new().unwrap(),
        to: listener.local_addr().unwrap(),
        listener: Some(listener),
        registry: None,
    }
}

impl Scene {
    /// Starts two workers (seats 0 and 1 of the board) sharing the sticky table, A
    /// on the scene's listener, B on a listener nobody connects to; `counted` gives
    /// A the relay-wide counters; `setup` adjusts each before it starts (seat index
    /// given). Then writes the entry that sends 127.0.0.2's clients to B.
    fn workers(
        &mut self,
        m: Mechanism,
        counted: bool,
        setup: impl Fn(usize, &mut Setup),
    ) -> (Harness, Harness) {
        let backend = self.backend.addr;
        let mut a = Setup::under(m, relay(&[(backend, 1)]));
        a.listener = self.listener.take();
        a.place = self.board.occupy(0);
        a.sticky = Some(sticky(&self.table, 0));
        if counted {
            let (registry, counting) = registry_for(self.to, &[backend]);
            self.registry = Some(registry);
            a.counting = Some(counting);
        }
        setup(0, &mut a);
        let mut b = Setup::under(m, relay(&[(backend, 1)]));
        b.place = self.board.occupy(1);
        b.sticky = Some(sticky(&self.table, 1));
        setup(1, &mut b);
        let (a, b) = (a.start(), b.start());
        wait_until("both workers on the board", IO_TIMEOUT, || {
            self.board.accepting(0) && self.board.accepting(1)
        });
        entry_for_seat(&self.table, self.to.port(), 1);
        (a, b)
    }

    /// The accepts the relay-wide counters saw (`workers` with `counted`).
    fn accepted(&self) -> u64 {
        let registry = self.registry.as_ref().expect("counted workers");
        registry.snapshot().totals.accepted
    }
}

/// Reads `worker`'s control socket until a hand-off comes: its listener, seat
/// and descriptor.
fn handoff_from(worker: &Harness) -> (u32, u16, OwnedFd) {
    let master = worker.master.as_ref().expect("the control socket");
    let mut reader = Reader::default();
    let mut out = Vec::new();
    let mut buf = [0u8; 256];
    let deadline = Instant::now() + IO_TIMEOUT;
    loop {
        assert!(Instant::now() < deadline, "no hand-off; read {out:?}");
        let mut fds = Vec::new();
        match control::receive(master, &mut buf, &mut fds) {
            Ok(0) => panic!("the worker closed its control socket"),
            Ok(n) => reader.push_with_fds(&buf[..n], fds, &mut out),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("control read: {e}"),
        }
        for incoming in out.drain(..) {
            if let Incoming::Handoff { listener, seat, fd } = incoming {
                return (listener, seat, fd.expect("the client's socket came").0);
            }
        }
    }
}

/// Passes client `fd` to `worker` as the master does.
fn pass(worker: &Harness, listener: u32, returned: bool, fd: OwnedFd) {
    let master = worker.master.as_ref().expect("the control socket");
    let frame = ToWorker::Handoff { listener, returned }.encode();
    let sent = control::send_with_fd(master, &frame, fd.as_fd()).expect("hand over");
    assert_eq!(sent, FRAME);
}

/// The inode of the relay's side of `client`'s connection (from /proc/net/tcp).
fn server_inode(client: &TcpStream) -> u64 {
    let hex = |a: SocketAddr| match a {
        SocketAddr::V4(v4) => format!(
            "{:08X}:{:04X}",
            u32::from_ne_bytes(v4.ip().octets()),
            v4.port()
        ),
        SocketAddr::V6(_) => unreachable!("IPv4 clients"),
    };
    let (local, remote) = (
        hex(client.peer_addr().unwrap()),
        hex(client.local_addr().unwrap()),
    );
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f[1] == local && f[2] == remote)
        .and_then(|f| f[9].parse().ok())
        .expect("the relay's side of the connection")
}

/// How many descriptors of this process refer to socket `inode`.
fn copies(inode: u64) -> usize {
    let name = format!("socket:[{inode}]");
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .flatten()
        .filter(|e| std::fs::read_link(e.path()).is_ok_and(|l| l.to_str() == Some(&name)))
        .count()
}

/// A client of 127.0.0.2 accepted by A, whose entry names B, is served by B:
/// B holds the session (A none), the accept is counted once, and the relay's
/// side of the connection exists once (B's) while served and not at all after.
pub(crate) fn a_client_accepted_by_one_worker_is_served_by_the_one_its_entry_names(m: Mechanism) {
    let mut s = scene();
    let (a, b) = s.workers(m, true, |_, _| {});

    let mut client = connect_from(s.to, 2);
    client.write_all(b"served by b").expect("send");
    let (listener, seat, fd) = handoff_from(&a);
    assert_eq!((listener, seat), (0, 1));
    pass(&b, listener, false, fd);
    let mut back = [0u8; 11];
    client.read_exact(&mut back).expect("echoed");
    assert_eq!(&back, b"served by b");
    round_trip(&mut client, b"and again");
    assert_eq!(b.probe.sessions.load(Ordering::Relaxed), 1, "b serves it");
    assert_eq!(a.probe.sessions.load(Ordering::Relaxed), 0, "a does not");
    assert_eq!(s.backend.accepted(), 1);
    assert_eq!(s.accepted(), 1, "one accept, by a");
    let inode = server_inode(&client);
    assert_eq!(
        copies(inode),
        1,
        "b's copy only: a and the master closed theirs"
    );
    drop(client);
    wait_until("b's session over", IO_TIMEOUT, || {
        b.probe.sessions.load(Ordering::Relaxed) == 0
    });
    assert_eq!(copies(inode), 0, "no copy left");
}

/// When the worker the entry names does not accept (full, or no worker in that
/// seat any more), the worker that accepted the client serves it without a
/// hand-off.
pub(crate) fn a_full_or_gone_workers_client_is_served_where_accepted(m: Mechanism) {
    let mut s = scene();
    let (a, b) = s.workers(m, false, |seat, w| {
        if seat == 1 {
            w.users_max = 1;
        }
    });
    // B fills up with a client of its own.
    let mut own = b.connect();
    round_trip(&mut own, b"b's own");
    wait_until("b full on the board", IO_TIMEOUT, || !s.board.accepting(1));
    let mut client = connect_from(s.to, 2);
    round_trip(&mut client, b"b is full: served by a");
    assert_eq!(a.probe.sessions.load(Ordering::Relaxed), 1);

    // A seat nobody holds.
    entry_for_seat(&s.table, s.to.port(), 5);
    let mut gone = connect_from(s.to, 2);
    round_trip(&mut gone, b"seat 5 is empty: served by a");
    assert_eq!(a.probe.sessions.load(Ordering::Relaxed), 2);
    assert_eq!(b.probe.sessions.load(Ordering::Relaxed), 1, "b's own only");
}

/// A hand-off the master gives back (no other worker could take it) is served
/// by the worker that accepted it, even when that one has become full since.
pub(crate) fn a_handoff_given_back_is_served_even_when_full(m: Mechanism) {
    let mut s = scene();
    let (a, _b) = s.workers(m, false, |seat, w| {
        if seat == 0 {
            w.users_max = 1;
        }
    });
    let mut client = connect_from(s.to, 2);
    client.write_all(b"back to a").expect("send");
    let (listener, _, fd) = handoff_from(&a);
    // Meanwhile a fills up with a client of .3 (no entry).
    let mut other = connect_from(s.to, 3);
    round_trip(&mut other, b"a's own");
    wait_until("a full on the board", IO_TIMEOUT, || !s.board.accepting(0));
    pass(&a, listener, true, fd);
    let mut back = [0u8; 9];
    client.read_exact(&mut back).expect("echoed");
    assert_eq!(&back, b"back to a");
    assert_eq!(
        a.probe.sessions.load(Ordering::Relaxed),
        2,
        "over users max by one"
    );
    let inode = server_inode(&client);
    assert_eq!(copies(inode), 1);
    drop(client);
    drop(other);
    wait_until("a's sessions over", IO_TIMEOUT, || {
        a.probe.sessions.load(Ordering::Relaxed) == 0
    });
    assert_eq!(copies(inode), 0, "no copy left");
}

/// A hand-off still waiting in a worker's outbox (its control socket full: the
/// master reads nothing) when the worker drains and has no session is served by
/// that worker, not closed with it.
pub(crate) fn a_draining_worker_serves_the_handoffs_still_waiting(m: Mechanism) {
    let mut s = scene();
    let (mut a, _b) = s.workers(m, true, |_, _| {});
    // Answers nobody reads fill a's control socket.
    for id in 0..20_000 {
        a.send(ToWorker::Sessions { id, limit: 1 });
    }
    let mut client = connect_from(s.to, 2);
    client.write_all(b"waiting").expect("send");
    wait_until("a accepted the client", IO_TIMEOUT, || s.accepted() == 1);
    a.send(ToWorker::Drain);
    let mut back = [0u8; 7];
    client.read_exact(&mut back).expect("echoed, not closed");
    assert_eq!(&back, b"waiting");
    assert_eq!(a.probe.sessions.load(Ordering::Relaxed), 1, "a serves it");
    drop(client);
    assert_eq!(a.join(), Exit::Drained);
}

/// On a TLS listener the client's handshake is done by the worker it is handed
/// to (the worker that accepted it read nothing from it).
pub(crate) fn a_tls_clients_handshake_is_done_by_the_worker_it_is_handed_to(m: Mechanism) {
    use crate::tls_context::test_certs::{Certs, PASSPHRASE};
    use openssl::ssl::{SslConnector, SslMethod};
    let mut s = scene();
    let certs = Certs::new();
    let context =
        crate::tls_context::server_context(&certs.tls("cert.pem", "enc-key.pem", Some(PASSPHRASE)))
            .expect("server context");
    let (a, b) = s.workers(m, false, |_, w| {
        w.tls = Some(context.clone());
    });
    let client = connect_from(s.to, 2);
    let (listener, seat, fd) = handoff_from(&a);
    assert_eq!((listener, seat), (0, 1));
    pass(&b, listener, false, fd);
    let mut connector = SslConnector::builder(SslMethod::tls_client()).expect("connector");
    connector
        .cert_store_mut()
        .add_cert(certs.cert.clone())
        .expect("trust the test certificate");
    let mut tls = connector
        .build()
        .connect("localhost", client)
        .expect("the TLS handshake, with b");
    tls.write_all(b"over tls").expect("send");
    let mut back = [0u8; 8];
    tls.read_exact(&mut back).expect("echoed");
    assert_eq!(&back, b"over tls");
    assert_eq!(b.probe.sessions.load(Ordering::Relaxed), 1, "b serves it");
    assert_eq!(a.probe.sessions.load(Ordering::Relaxed), 0);
}

/// A client of a PROXY-accepting listener is served by the worker that accepted
/// it, whatever its entry names: the client is known only from its header.
pub(crate) fn a_proxy_listeners_clients_are_not_handed_over(m: Mechanism) {
    let mut s = scene();
    let (a, b) = s.workers(m, false, |_, w| {
        w.accept_proxy = Some(tcprelay_plan::AcceptProxy {
            version: tcprelay_plan::ProxyAccept::Any,
            from: vec![tcprelay_plan::Network {
                address: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)),
                prefix: 8,
            }],
            timeout_ms: 5000,
        });
    });
    let mut client = connect_from(s.to, 2);
    let port = client.local_addr().unwrap().port();
    let header = format!("PROXY TCP4 127.0.0.2 127.0.0.1 {port} {}\r\n", s.to.port());
    client.write_all(header.as_bytes()).expect("send");
    round_trip(&mut client, b"served by a");
    assert_eq!(a.probe.sessions.load(Ordering::Relaxed), 1);
    assert_eq!(b.probe.sessions.load(Ordering::Relaxed), 0);
}
