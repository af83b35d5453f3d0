//! The relay-wide counters as a worker counts them: a real `stats::Registry`, a
//! worker counting in seat 0, and the snapshot after the sessions.

use super::*;
use crate::stats::{Registry, RemoteEntry, RemoteKey, Snapshot};
use tcprelay_plan::ListenAddress;

/// A registry with slots for one listener (the worker's, once it is bound) and
/// these remotes, and the worker's seat in it.
pub(crate) fn counted(
    setup: &mut Setup,
    listener: &TcpListener,
    remotes: &[SocketAddr],
) -> Registry {
    let (registry, counting) = registry_for(listener.local_addr().expect("addr"), remotes);
    setup.counting = Some(counting);
    registry
}

/// A registry with slots for a listener named `listener` and these remotes, and
/// seat 0's counting in it.
pub(crate) fn registry_for(listener: SocketAddr, remotes: &[SocketAddr]) -> (Registry, Counting) {
    let mut registry = Registry::new().expect("the counters' mapping");
    let keys: Vec<RemoteKey> = remotes
        .iter()
        .map(|&address| RemoteKey {
            address,
            protocol: Protocol::Tcp,
        })
        .collect();
    let slots = registry.assign_keys(&[ListenAddress::Inet(listener)], &keys);
    let counters = registry.seat(0).expect("seat 0");
    (registry, Counting { counters, slots })
}

fn remote(snapshot: &Snapshot, address: SocketAddr) -> &RemoteEntry {
    snapshot
        .remotes
        .iter()
        .find(|r| r.key.is_some_and(|k| k.address == address))
        .unwrap_or_else(|| panic!("no remote {address} in {snapshot:?}"))
}

/// Waits until the worker holds no session (its counts are final then).
fn settled(registry: &Registry) -> Snapshot {
    let mut snapshot = registry.snapshot();
    wait_until("the sessions gauge back to 0", IO_TIMEOUT, || {
        snapshot = registry.snapshot();
        snapshot.totals.sessions == 0 && snapshot.totals.durations.count() > 0
    });
    snapshot
}

/// Five sessions through a relay whose first remote refuses: each is counted
/// accepted, opened and closed (the gauges back to 0, five durations), the
/// refusing remote with one connect failure and a dead mark, the echo with five
/// connections and connect times, and the bytes each way exactly as sent.
pub(crate) fn sessions_bytes_and_connect_failures_are_counted(m: Mechanism) {
    let echo = Backend::start(Mode::Echo);
    let refused = free_port();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let mut setup = Setup::under(m, relay(&[(refused, 1), (echo.addr, 1)]));
    let registry = counted(&mut setup, &listener, &[refused, echo.addr]);
    setup.listener = Some(listener);
    let mut worker = setup.start();
    let mut sent = 0u64;
    for n in 1..=5usize {
        let mut client = worker.connect();
        let message = random_bytes(n as u64, n * 1000 + 7);
        round_trip(&mut client, &message);
        sent += message.len() as u64;
        // A gauge while it is open.
        assert_eq!(registry.snapshot().totals.sessions, 1);
        drop(client);
        wait_until("the session closed", IO_TIMEOUT, || {
            registry.snapshot().totals.sessions == 0
        });
    }
    let snapshot = settled(&registry);
    let totals = &snapshot.totals;
    assert_eq!(totals.accepted, 5, "{totals:?}");
    assert_eq!(totals.denied, 0);
    assert_eq!(totals.sessions, 0);
    assert_eq!(totals.durations.count(), 5);
    assert_eq!(
        (totals.bytes_to_remote, totals.bytes_to_client),
        (sent, sent)
    );
    let listener = &snapshot.listeners[snapshot.listeners.len() - 1];
    assert_eq!(
        (
            listener.accepted,
            listener.sessions,
            listener.bytes_to_remote,
            listener.bytes_to_client
        ),
        (5, 0, sent, sent)
    );
    let dead = remote(&snapshot, refused);
    assert_eq!(
        (dead.connect_failures, dead.connections),
        (1, 0),
        "{dead:?}"
    );
    assert_eq!(dead.dead_marks, 1);
    assert!(dead.dead_since.is_some());
    let alive = remote(&snapshot, echo.addr);
    assert_eq!(
        (alive.connections, alive.connect_failures, alive.sessions),
        (5, 0, 0),
        "{alive:?}"
    );
    assert_eq!(alive.connect_times.count(), 5);
    assert_eq!((alive.bytes_to_remote, alive.bytes_to_client), (sent, sent));
    assert_eq!(alive.dead_marks, 0);
    assert_eq!(worker.stop(), Exit::Stopped);
}

/// A long session's bytes are in the counters while it is still open, not only
/// once it closes.
pub(crate) fn an_open_sessions_bytes_are_counted_as_they_pass(m: Mechanism) {
    let echo = Backend::start(Mode::Echo);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let mut setup = Setup::under(m, relay(&[(echo.addr, 1)]));
    let registry = counted(&mut setup, &listener, &[echo.addr]);
    setup.listener = Some(listener);
    let mut worker = setup.start();
    let mut client = worker.connect();
    round_trip(&mut client, &[7u8; 3000]);
    wait_until("the bytes counted", IO_TIMEOUT, || {
        let totals = registry.snapshot().totals;
        (totals.bytes_to_remote, totals.bytes_to_client) == (3000, 3000)
    });
    let snapshot = registry.snapshot();
    assert_eq!(snapshot.totals.sessions, 1);
    assert_eq!(snapshot.totals.durations.count(), 0);
    round_trip(&mut client, &[8u8; 500]);
    drop(client);
    let snapshot = settled(&registry);
    assert_eq!(
        (
            snapshot.totals.bytes_to_remote,
            snapshot.totals.bytes_to_client
        ),
        (3500, 3500)
    );
    assert_eq!(worker.stop(), Exit::Stopped);
}

/// Clients the access rules refuse are counted accepted and denied, and open no
/// session.
pub(crate) fn denied_clients_are_counted(m: Mechanism) {
    let echo = Backend::start(Mode::Echo);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let mut setup = Setup::under(m, relay(&[(echo.addr, 1)]));
    let registry = counted(&mut setup, &listener, &[echo.addr]);
    setup.listener = Some(listener);
    setup.acl = vec![tcprelay_plan::AclRule {
        permit: false,
        negate: false,
        network: "127.0.0.0".parse().unwrap(),
        prefix: 8,
    }];
    let mut worker = setup.start();
    for _ in 0..3 {
        let mut client = worker.connect();
        let mut byte = [0u8; 1];
        match client.read(&mut byte) {
            Ok(0) => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
            other => panic!("a denied client was served: {other:?}"),
        }
    }
    wait_until("three denials counted", IO_TIMEOUT, || {
        registry.snapshot().totals.denied == 3
    });
    let snapshot = registry.snapshot();
    assert_eq!(snapshot.totals.accepted, 3);
    assert_eq!(snapshot.totals.durations.count(), 0);
    assert_eq!(remote(&snapshot, echo.addr).connections, 0);
    assert_eq!(echo.accepted(), 0);
    assert_eq!(worker.stop(), Exit::Stopped);
}
