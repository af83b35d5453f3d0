//! Client affinity (`sticky cache`) through the shared table: clients from
//! different loopback addresses (127.0.0.2, 127.0.0.3: Linux routes the whole
//! 127/8 to lo), one or two workers sharing a listener and the table, as forked
//! workers share them.

use super::counting::registry_for;
use super::*;
use crate::sticky::Table;
use crate::worker::Sticky;
use std::net::{IpAddr, Ipv4Addr};

/// The sticky cache of a listener-less plan's relay-wide section.
fn affinity(table: &Table, period_s: u32, slots: Vec<usize>, seat: usize) -> Sticky {
    let (regions, _) = crate::sticky::layout(
        Some(tcprelay_plan::Sticky {
            period_s,
            size: 1024,
        }),
        &[None],
    );
    Sticky {
        table: table.clone(),
        regions,
        slots,
        seat: Some(seat),
        generation: 1,
    }
}

/// A client of the worker at `to`, connecting from `from`.
pub(crate) fn connect_from(to: SocketAddr, from: u8) -> TcpStream {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    let local = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, from)), 0);
    socket.bind(&local.into()).expect("bind the client");
    socket
        .connect_timeout(&to.into(), IO_TIMEOUT)
        .expect("connect to the worker");
    let stream = TcpStream::from(socket);
    stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    stream.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
    stream
}

/// Two workers accept on one listener with a shared table: every client from
/// 127.0.0.2 goes to the remote the first went to, whichever worker accepts it
/// and although each worker's least-connections would send some to the other
/// remote (six sessions held by two workers: one of them holds at least three);
/// the clients of 127.0.0.3 all go to one remote too.
pub(crate) fn a_client_address_keeps_its_remote_across_workers(m: Mechanism) {
    let a = Backend::start(Mode::Echo);
    let b = Backend::start(Mode::Echo);
    let table = Table::new().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let workers: Vec<Harness> = (0..2)
        .map(|seat| {
            let mut setup = Setup::under(m, relay(&[(a.addr, 1), (b.addr, 1)]));
            setup.listener = Some(listener.try_clone().expect("clone"));
            setup.sticky = Some(affinity(&table, 60, vec![1, 2], seat));
            setup.start()
        })
        .collect();
    let to = workers[0].addr;
    let mut held = Vec::new();
    for _ in 0..6 {
        let mut client = connect_from(to, 2);
        round_trip(&mut client, b"from .2");
        held.push(client);
    }
    assert_eq!(
        (a.accepted(), b.accepted()),
        (6, 0),
        "all on the first's remote"
    );
    for _ in 0..3 {
        let mut client = connect_from(to, 3);
        round_trip(&mut client, b"from .3");
        held.push(client);
    }
    let (on_a, on_b) = (a.accepted(), b.accepted());
    assert!(
        (on_a, on_b) == (9, 0) || (on_a, on_b) == (6, 3),
        "the clients of .3 on one remote: {on_a} on a, {on_b} on b"
    );
}

/// A remote down by its health checks loses its sticky clients to another, and
/// the new choice is what they keep when it is back up.
pub(crate) fn a_down_remotes_clients_move_and_keep_their_new_remote(m: Mechanism) {
    let a = Backend::start(Mode::Echo);
    let b = Backend::start(Mode::Echo);
    let table = Table::new().unwrap();
    let health = crate::health::Table::new().unwrap();
    let steering = crate::steering::Table::new().unwrap();
    let mut setup = Setup::under(m, relay(&[(a.addr, 1), (b.addr, 1)]));
    setup.sticky = Some(affinity(&table, 60, vec![1, 2], 0));
    setup.steering = Some(crate::worker::Steering {
        table: steering,
        slots: vec![1, 2],
        health: Some(health.clone()),
    });
    let worker = setup.start();
    let check = |outcome| {
        health.record(
            1,
            outcome,
            Duration::ZERO,
            std::time::SystemTime::now(),
            1,
            1,
        );
    };
    let mut first = connect_from(worker.addr, 2);
    round_trip(&mut first, b"to a");
    assert_eq!((a.accepted(), b.accepted()), (1, 0));
    check(crate::health::Outcome::Refused);
    let mut moved = connect_from(worker.addr, 2);
    round_trip(&mut moved, b"a is down: to b");
    assert_eq!((a.accepted(), b.accepted()), (1, 1));
    check(crate::health::Outcome::Pass);
    // One session each: least-connections alone would pick a (first in order).
    let mut after = connect_from(worker.addr, 2);
    round_trip(&mut after, b"a is up again: still b");
    assert_eq!((a.accepted(), b.accepted()), (1, 2));
    round_trip(&mut first, b"a's session went on");
}

/// An entry unused for its period is forgotten: the next client from that
/// address is balanced as a new one; the hits and misses are counted.
pub(crate) fn an_entry_expires_after_its_period(m: Mechanism) {
    let a = Backend::start(Mode::Echo);
    let b = Backend::start(Mode::Echo);
    let table = Table::new().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let (registry, counting) =
        registry_for(listener.local_addr().expect("addr"), &[a.addr, b.addr]);
    let slots = counting.slots.remotes.iter().map(|s| s.index()).collect();
    let mut setup = Setup::under(m, relay(&[(a.addr, 1), (b.addr, 1)]));
    setup.listener = Some(listener);
    setup.counting = Some(counting);
    setup.sticky = Some(affinity(&table, 1, slots, 0));
    let worker = setup.start();
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut client = connect_from(worker.addr, 2);
        round_trip(&mut client, b"to a");
        held.push(client);
    }
    assert_eq!((a.accepted(), b.accepted()), (2, 0));
    thread::sleep(Duration::from_millis(1_200));
    let mut client = connect_from(worker.addr, 2);
    round_trip(&mut client, b"forgotten: to the least loaded, b");
    assert_eq!((a.accepted(), b.accepted()), (2, 1));
    let totals = registry.snapshot().totals;
    assert_eq!((totals.sticky_hits, totals.sticky_misses), (1, 2));
}
