//! Running out of local ports towards a remote, in a network namespace of the test's
//! own whose ephemeral port range holds two ports (Linux; needs CAP_SYS_ADMIN, as in
//! CI, which runs as root; elsewhere the scenarios say they were skipped, and fail
//! under `CI`).
//!
//! Every socket of a scenario is made by the thread that entered the namespace or by
//! threads it started (a new thread starts in its creator's namespace), so nothing
//! else on the machine sees these ports. Listeners and clients bind fixed ports
//! outside the range: only the relay's connects draw from it.

use super::*;
use std::net::{IpAddr, Ipv4Addr};

/// The namespace's ephemeral port range: two ports.
const RANGE: &str = "40000 40001";
const BACKEND: u16 = 7000;
const SECOND_BACKEND: u16 = 7002;
const RELAY: u16 = 7001;

/// Runs `scenario` on a thread in a new network namespace with the loopback up and
/// the two-port range; says it was skipped if this process may not make one.
fn in_own_network(name: &'static str, scenario: impl FnOnce() + Send + 'static) {
    let thread = thread::spawn(move || {
        if let Err(e) = crate::sys::testing::own_network_namespace() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must run these scenarios (as root): unshare(CLONE_NEWNET): {e}"
            );
            eprintln!("{name}: skipped: a network namespace of its own needs CAP_SYS_ADMIN ({e})");
            return;
        }
        crate::sys::testing::loopback_up().expect("ip link set lo up");
        std::fs::write("/proc/sys/net/ipv4/ip_local_port_range", RANGE)
            .expect("set the namespace's port range");
        let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .expect("read the port range");
        assert_eq!(
            range.split_whitespace().collect::<Vec<_>>(),
            RANGE.split(' ').collect::<Vec<_>>(),
            "the range is this namespace's"
        );
        scenario();
    });
    if let Err(panic) = thread.join() {
        std::panic::resume_unwind(panic);
    }
}

/// An echo backend on a fixed port.
fn echo_at(port: u16) -> Backend {
    Backend::on(
        TcpListener::bind(loopback(port)).expect("bind the backend port"),
        Mode::Echo,
    )
}

/// An echo backend and a worker whose two sessions to it, returned, hold both
/// ports of the range.
fn both_ports_taken(m: Mechanism, connect_timeout: Duration) -> (Backend, Harness, [TcpStream; 2]) {
    let echo = echo_at(BACKEND);
    let worker = worker(m, relay(&[(echo.addr, 1)]), connect_timeout);
    let mut one = client_from(6001);
    round_trip(&mut one, b"one");
    let mut two = client_from(6002);
    round_trip(&mut two, b"two");
    (echo, worker, [one, two])
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A worker listening on the fixed relay port.
fn worker(m: Mechanism, relay: Relay, connect_timeout: Duration) -> Harness {
    let mut setup = Setup::under(m, relay);
    setup.listener = Some(TcpListener::bind(loopback(RELAY)).expect("bind the relay port"));
    setup.connect_timeout = Some(connect_timeout);
    setup.start()
}

/// A client from a fixed source port (outside the range).
fn client_from(port: u16) -> TcpStream {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket
        .bind(&loopback(port).into())
        .expect("bind the client");
    socket
        .connect_timeout(&loopback(RELAY).into(), IO_TIMEOUT)
        .expect("connect to the worker");
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    stream.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
    stream
}

pub(crate) fn a_client_waits_for_a_free_local_port_then_is_served(m: Mechanism) {
    in_own_network(
        "a_client_waits_for_a_free_local_port_then_is_served",
        move || {
            let (echo, mut worker, [one, mut two]) = both_ports_taken(m, Duration::from_secs(8));
            // The third finds none: it waits, neither closed nor reset.
            let mut three = client_from(6003);
            three.write_all(b"three").expect("write");
            assert!(
                stays_silent(&mut three, Duration::from_millis(500)),
                "the client waiting for a port was answered or closed"
            );
            // A waiting client that resets is closed at once, not when a port frees
            // (select(2) reports no errors: there it waits for its turn).
            if m != Mechanism::Select {
                let mut four = client_from(6004);
                four.write_all(b"four").expect("write");
                let sessions = || worker.probe.sessions.load(Ordering::Relaxed);
                wait_until("four sessions", IO_TIMEOUT, || sessions() == 4);
                socket2::SockRef::from(&four)
                    .set_linger(Some(Duration::ZERO))
                    .expect("linger");
                drop(four);
                wait_until(
                    "the reset client's session closed",
                    Duration::from_secs(3),
                    || sessions() == 3,
                );
            }
            // A port frees (the relay's end of the first session goes to TIME_WAIT,
            // which loopback may reuse after a second): the waiting client is served.
            drop(one);
            let freed = Instant::now();
            let mut back = [0u8; 5];
            three
                .read_exact(&mut back)
                .expect("served once a port is free");
            assert_eq!(&back, b"three");
            let took = freed.elapsed();
            assert!(took < Duration::from_secs(6), "took {took:?}");
            round_trip(&mut two, b"still two");
            assert_eq!(echo.accepted(), 3);
            drop((two, three));
            assert_eq!(worker.stop(), Exit::Stopped);
        },
    );
}

pub(crate) fn waiting_for_a_local_port_ends_at_the_connect_timeout(m: Mechanism) {
    in_own_network(
        "waiting_for_a_local_port_ends_at_the_connect_timeout",
        move || {
            let timeout = Duration::from_millis(400);
            let (echo, mut worker, [mut one, mut two]) = both_ports_taken(m, timeout);
            let started = Instant::now();
            let mut three = client_from(6003);
            let (data, _) = read_to_end(&mut three);
            let took = started.elapsed();
            assert!(data.is_empty());
            assert!(
                took >= timeout - Duration::from_millis(60) && took < Duration::from_secs(3),
                "closed after {took:?} (connect timeout {timeout:?})"
            );
            // The remote was not blamed: the held sessions go on, and the backend saw
            // only the two connections that had a port.
            round_trip(&mut one, b"one again");
            round_trip(&mut two, b"two again");
            assert_eq!(echo.accepted(), 2);
            drop((one, two));
            assert_eq!(worker.stop(), Exit::Stopped);
        },
    );
}

/// With `local address`, the port is still chosen by the connect (Linux's
/// IP_BIND_ADDRESS_NO_PORT): two remotes can each have both ports of the range.
pub(crate) fn a_local_address_shares_source_ports_between_remotes(m: Mechanism) {
    in_own_network(
        "a_local_address_shares_source_ports_between_remotes",
        move || {
            let (first, second) = (echo_at(BACKEND), echo_at(SECOND_BACKEND));
            let mut r = relay(&[(first.addr, 1), (second.addr, 1)]);
            r.local_address = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
            let mut worker = worker(m, r, Duration::from_millis(300));
            let mut clients: Vec<TcpStream> = (0..4).map(|i| client_from(6001 + i)).collect();
            for (i, client) in clients.iter_mut().enumerate() {
                round_trip(client, format!("client {i}").as_bytes());
            }
            assert_eq!((first.accepted(), second.accepted()), (2, 2));
            drop(clients);
            assert_eq!(worker.stop(), Exit::Stopped);
        },
    );
}
