use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tcprelay_plan::{ListenAddress, Protocol};

use super::*;

fn listeners(addresses: &[&str]) -> Vec<ListenAddress> {
    addresses
        .iter()
        .map(|a| match a.strip_prefix("unix:") {
            Some(path) => ListenAddress::Unix(path.to_string()),
            None => ListenAddress::Inet(a.parse().unwrap()),
        })
        .collect()
}

fn remote(address: &str) -> RemoteKey {
    RemoteKey {
        address: address.parse().unwrap(),
        protocol: Protocol::Tcp,
    }
}

fn remotes(addresses: &[&str]) -> Vec<RemoteKey> {
    addresses.iter().map(|a| remote(a)).collect()
}

/// The snapshot's entry for a remote key.
fn entry<'a>(snapshot: &'a Snapshot, key: &str) -> &'a RemoteEntry {
    let found = snapshot
        .remotes
        .iter()
        .find(|r| r.key.map(|k| k.to_string()).as_deref() == Some(key));
    found.unwrap_or_else(|| panic!("no remote {key} in {:?}", snapshot.remotes))
}

fn listener_entry<'a>(snapshot: &'a Snapshot, key: &str) -> &'a ListenerEntry {
    let found = snapshot
        .listeners
        .iter()
        .find(|l| l.key.as_ref().map(|k| k.to_string()).as_deref() == Some(key));
    found.unwrap_or_else(|| panic!("no listener {key} in {:?}", snapshot.listeners))
}

#[test]
fn a_reloaded_plan_keeps_the_slots_of_its_keys_and_their_counts() {
    let mut registry = Registry::new().unwrap();
    let first = registry.assign_keys(
        &listeners(&["127.0.0.1:80", "unix:/run/a"]),
        &remotes(&["10.0.0.1:80", "10.0.0.2:80", "[::1]:80", "10.0.0.2:80"]),
    );
    assert_eq!(first.listeners, [ListenerSlot(1), ListenerSlot(2)]);
    assert_eq!(
        first.remotes,
        [RemoteSlot(1), RemoteSlot(2), RemoteSlot(3), RemoteSlot(2)],
        "a remote listed twice counts in one slot"
    );
    assert!(first.overflowed.is_empty());
    let worker = registry.seat(0).unwrap();
    worker.accepted(first.listeners[0]);
    worker.connected(first.remotes[1], Duration::from_millis(3));
    worker.bytes(first.listeners[0], first.remotes[1], 100, 2000);

    // The reload drops a listener and two remotes, adds one of each, keeps the rest.
    let second = registry.assign_keys(
        &listeners(&["[::]:443", "127.0.0.1:80"]),
        &remotes(&["10.0.0.9:80", "10.0.0.2:80"]),
    );
    assert_eq!(second.listeners, [ListenerSlot(3), ListenerSlot(1)]);
    assert_eq!(second.remotes, [RemoteSlot(4), RemoteSlot(2)]);
    // The old generation is gone: its keys stay listed (not in use) with their counts,
    // and their slots are not reused while never used ones are left.
    registry.fold(0);
    registry.release(&first);
    let third = registry.assign_keys(&listeners(&["127.0.0.1:80"]), &remotes(&["10.0.0.5:80"]));
    assert_eq!(third.remotes, [RemoteSlot(5)]);

    let snapshot = registry.snapshot();
    let kept = entry(&snapshot, "10.0.0.2:80/TCP");
    assert!(kept.in_use);
    assert_eq!(
        (kept.connections, kept.bytes_to_remote, kept.bytes_to_client),
        (1, 100, 2000)
    );
    let dropped = entry(&snapshot, "[::1]:80/TCP");
    assert!(!dropped.in_use);
    assert!(entry(&snapshot, "10.0.0.1:80/TCP").connect_times.count() == 0);
    assert!(!listener_entry(&snapshot, "unix:/run/a").in_use);
    let l = listener_entry(&snapshot, "127.0.0.1:80");
    assert!(l.in_use);
    assert_eq!(
        (l.accepted, l.bytes_to_remote, l.bytes_to_client),
        (1, 100, 2000)
    );
    let keys: Vec<_> = snapshot
        .remotes
        .iter()
        .map(|r| r.key.unwrap().to_string())
        .collect();
    assert_eq!(
        keys,
        [
            "10.0.0.1:80/TCP",
            "10.0.0.2:80/TCP",
            "[::1]:80/TCP",
            "10.0.0.9:80/TCP",
            "10.0.0.5:80/TCP"
        ],
        "in slot order, no overflow line while nothing overflowed"
    );
}

#[test]
fn when_slots_run_out_an_unused_one_is_reused_from_zero_else_the_overflow_counts() {
    let mut registry = Registry::new().unwrap();
    let full: Vec<_> = (1..REMOTE_SLOTS)
        .map(|i| remote(&format!("10.0.{}.{}:80", i / 256, i % 256)))
        .collect();
    let old = registry.assign_keys(&[], &full);
    assert_eq!(
        old.remotes.last(),
        Some(&RemoteSlot(REMOTE_SLOTS as u32 - 1))
    );
    let worker = registry.seat(3).unwrap();
    let gone = old.remotes[0];
    worker.connected(gone, Duration::from_millis(1));
    worker.connect_failed(gone);
    registry.fold(3);
    let worker = registry.seat(3).unwrap();
    worker.connect_failed(gone);
    let master = registry.master();
    master.mark_dead(gone, SystemTime::now());

    // Every slot is used by a live plan: a new remote counts in the overflow.
    let newcomer = remote("192.0.2.1:80");
    let crowded = registry.assign_keys(&[], &[newcomer, full[5]]);
    assert_eq!(crowded.remotes, [RemoteSlot::OVERFLOW, RemoteSlot(6)]);
    assert_eq!(crowded.overflowed, ["192.0.2.1:80/TCP"]);
    worker.connect_failed(crowded.remotes[0]);
    let snapshot = registry.snapshot();
    let overflow = &snapshot.remotes[0];
    assert_eq!((overflow.key, overflow.connect_failures), (None, 1));
    assert_eq!(entry(&snapshot, &full[0].to_string()).connect_failures, 2);
    registry.release(&crowded);

    // The old plan is gone: the next new remote takes the slot unused the longest,
    // its earlier counts (retired, in a live seat, the master's dead mark) reset.
    registry.release(&old);
    let fresh = registry.assign_keys(&[], &[newcomer, full[5]]);
    assert_eq!(fresh.remotes, [gone, RemoteSlot(6)]);
    assert!(fresh.overflowed.is_empty());
    let snapshot = registry.snapshot();
    let now = entry(&snapshot, "192.0.2.1:80/TCP");
    assert_eq!(
        (
            now.connections,
            now.connect_failures,
            now.connect_times.count(),
            now.dead_marks
        ),
        (0, 0, 0, 0)
    );
    assert!(
        snapshot.remotes.iter().all(|r| r.key != Some(full[0])),
        "the old key is gone"
    );
    assert_eq!(
        snapshot.remotes[0].connect_failures, 1,
        "the overflow line stays"
    );
    assert_eq!(snapshot.remotes.len(), REMOTE_SLOTS);
}

#[test]
fn a_fold_keeps_a_reaped_workers_totals_and_drops_its_gauges() {
    let mut registry = Registry::new().unwrap();
    let slots = registry.assign_keys(&listeners(&["127.0.0.1:80"]), &remotes(&["10.0.0.1:80"]));
    let (l, r) = (slots.listeners[0], slots.remotes[0]);
    let worker = registry.seat(5).unwrap();
    for _ in 0..3 {
        worker.accepted(l);
        worker.session_opened(l, r);
    }
    worker.session_closed(l, r, Duration::from_millis(20));
    worker.denied(l);
    worker.tls_handshake(true);
    worker.tls_handshake(false);
    worker.mark_dead(r, UNIX_EPOCH + Duration::from_secs(1_000_000));
    let before = registry.snapshot();
    assert_eq!(before.totals.sessions, 2);
    assert_eq!(entry(&before, "10.0.0.1:80/TCP").sessions, 2);
    assert_eq!(entry(&before, "10.0.0.1:80/TCP").dead_marks, 1);

    registry.fold(5);
    let after = registry.snapshot();
    let t = &after.totals;
    assert_eq!(
        (
            t.accepted,
            t.denied,
            t.tls_handshakes,
            t.tls_failures,
            t.durations.count()
        ),
        (3, 1, 1, 1, 1),
        "the monotonic counts stay"
    );
    assert_eq!(t.durations.sum, Duration::from_millis(20));
    assert_eq!(t.sessions, 0, "a dead worker's sessions are gone");
    let r_after = entry(&after, "10.0.0.1:80/TCP");
    assert_eq!(
        (r_after.sessions, r_after.dead_marks, r_after.dead_since),
        (0, 0, None)
    );
    let l_after = listener_entry(&after, "127.0.0.1:80");
    assert_eq!(
        (l_after.accepted, l_after.denied, l_after.sessions),
        (3, 1, 0)
    );

    // Folding twice, or a seat never given, changes nothing; the next worker in the
    // seat counts from zero on top of the retired sum.
    registry.fold(5);
    registry.fold(6);
    registry.fold(MASTER_SEAT);
    assert_eq!(registry.snapshot(), after);
    let next = registry.seat(5).unwrap();
    next.accepted(l);
    next.session_opened(l, r);
    let t = registry.snapshot().totals;
    assert_eq!((t.accepted, t.sessions), (4, 1));
}

#[test]
fn a_snapshot_sums_the_seats_alive_and_the_masters() {
    let mut registry = Registry::new().unwrap();
    let slots = registry.assign_keys(
        &listeners(&["127.0.0.1:80", "127.0.0.1:81"]),
        &remotes(&["10.0.0.1:80", "10.0.0.2:80"]),
    );
    let (l0, l1) = (slots.listeners[0], slots.listeners[1]);
    let (r0, r1) = (slots.remotes[0], slots.remotes[1]);
    let a = registry.seat(0).unwrap();
    let b = registry.seat(1023).unwrap();
    assert!(
        registry.seat(MASTER_SEAT).is_none(),
        "the master's seat is not a worker's"
    );
    a.accepted(l0);
    a.session_opened(l0, r0);
    a.bytes(l0, r0, 10, 20);
    b.accepted(l1);
    b.accepted(l0);
    b.session_opened(l1, r0);
    b.session_opened(l0, r1);
    b.bytes(l1, r0, 1, 2);
    b.connect_failed(r1);
    a.mark_dead(r1, UNIX_EPOCH + Duration::from_secs(2_000));
    b.mark_dead(r1, UNIX_EPOCH + Duration::from_secs(1_000));
    registry.master().shed();
    registry.master().shed();

    let s = registry.snapshot();
    let t = &s.totals;
    assert_eq!(
        (
            t.accepted,
            t.shed,
            t.sessions,
            t.bytes_to_remote,
            t.bytes_to_client
        ),
        (3, 2, 3, 11, 22)
    );
    let l = listener_entry(&s, "127.0.0.1:80");
    assert_eq!((l.accepted, l.sessions, l.bytes_to_remote), (2, 2, 10));
    let r = entry(&s, "10.0.0.1:80/TCP");
    assert_eq!((r.sessions, r.bytes_to_client, r.dead_marks), (2, 22, 0));
    let r = entry(&s, "10.0.0.2:80/TCP");
    assert_eq!((r.sessions, r.connect_failures, r.dead_marks), (1, 1, 2));
    assert_eq!(
        r.dead_since,
        Some(UNIX_EPOCH + Duration::from_secs(1_000)),
        "the earliest mark"
    );
    b.alive(r1);
    let r = registry
        .snapshot()
        .remotes
        .into_iter()
        .find(|e| e.key == Some(remote("10.0.0.2:80")));
    assert_eq!(
        r.unwrap().dead_since,
        Some(UNIX_EPOCH + Duration::from_secs(2_000))
    );
}

#[test]
fn histogram_buckets_hold_what_is_at_most_their_bound() {
    let mut registry = Registry::new().unwrap();
    let slots = registry.assign_keys(&listeners(&["127.0.0.1:80"]), &remotes(&["10.0.0.1:80"]));
    let (l, r) = (slots.listeners[0], slots.remotes[0]);
    let worker = registry.seat(0).unwrap();
    let ns = Duration::from_nanos(1);
    for d in [
        Duration::ZERO,
        Duration::from_millis(5),
        Duration::from_millis(5) + ns,
        Duration::from_secs(3600),
        Duration::from_secs(3600) + ns,
        Duration::from_secs(86_400 * 365 * 1000),
    ] {
        worker.session_opened(l, r);
        worker.session_closed(l, r, d);
    }
    for d in [
        Duration::from_micros(999),
        Duration::from_millis(1),
        Duration::from_micros(2500),
        Duration::from_secs(10),
        Duration::from_secs(10) + ns,
    ] {
        worker.connected(r, d);
    }
    let s = registry.snapshot();
    let count = |h: &Histogram, le: Option<Duration>| {
        h.buckets
            .iter()
            .find(|(b, _)| *b == le)
            .map(|(_, n)| *n)
            .unwrap()
    };
    let d = &s.totals.durations;
    assert_eq!(d.buckets.len(), SESSION_BOUNDS.len() + 1);
    assert_eq!(
        count(d, Some(Duration::from_millis(5))),
        2,
        "0 and exactly 5 ms"
    );
    assert_eq!(
        count(d, Some(Duration::from_millis(10))),
        3,
        "cumulative: 5 ms + 1 ns"
    );
    assert_eq!(count(d, Some(Duration::from_secs(1800))), 3);
    assert_eq!(
        count(d, Some(Duration::from_secs(3600))),
        4,
        "exactly an hour"
    );
    assert_eq!(count(d, None), 6, "+Inf holds everything");
    assert_eq!(d.count(), 6);
    assert_eq!(
        d.buckets.iter().map(|(_, n)| *n).collect::<Vec<_>>(),
        [2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 4, 6],
        "never decreasing"
    );
    let c = &entry(&s, "10.0.0.1:80/TCP").connect_times;
    assert_eq!(c.buckets.len(), CONNECT_BOUNDS.len() + 1);
    assert_eq!(
        count(c, Some(Duration::from_millis(1))),
        2,
        "999 µs and 1 ms"
    );
    assert_eq!(count(c, Some(Duration::from_micros(2500))), 3);
    assert_eq!(count(c, Some(Duration::from_secs(5))), 3);
    assert_eq!(count(c, Some(Duration::from_secs(10))), 4);
    assert_eq!(count(c, None), 5);
    // Sums to the microsecond: 999 µs + 1 ms + 2.5 ms + 10 s + 10 s (the ns dropped).
    assert_eq!(c.sum, Duration::from_micros(999 + 1000 + 2500 + 20_000_000));
    assert_eq!(s.totals.sessions, 0, "every session opened was closed");
}

#[test]
fn counts_made_in_a_forked_worker_reach_the_masters_snapshot_and_its_fold() {
    let mut registry = Registry::new().unwrap();
    let slots = registry.assign_keys(&listeners(&["127.0.0.1:80"]), &remotes(&["10.0.0.1:80"]));
    let (l, r) = (slots.listeners[0], slots.remotes[0]);
    let worker = registry.seat(2).unwrap();
    let since = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let status = crate::sys::testing::in_child(|| {
        // Only stores to the shared atomics: no lock, no allocation.
        worker.accepted(l);
        worker.session_opened(l, r);
        worker.session_opened(l, r);
        worker.session_closed(l, r, Duration::from_millis(40));
        worker.connected(r, Duration::from_millis(2));
        worker.bytes(l, r, 512, 4096);
        worker.mark_dead(r, since);
    })
    .expect("fork");
    assert_eq!(status.exit_status(), Some(0));

    // The child has exited but is not folded yet: its block still counts, gauges too.
    let s = registry.snapshot();
    assert_eq!(
        (
            s.totals.accepted,
            s.totals.sessions,
            s.totals.bytes_to_client
        ),
        (1, 1, 4096)
    );
    let e = entry(&s, "10.0.0.1:80/TCP");
    assert_eq!(
        (e.connections, e.sessions, e.dead_since),
        (1, 1, Some(since))
    );
    assert_eq!(s.totals.durations.sum, Duration::from_millis(40));

    registry.fold(2);
    let s = registry.snapshot();
    assert_eq!(
        (
            s.totals.accepted,
            s.totals.sessions,
            s.totals.bytes_to_client
        ),
        (1, 0, 4096)
    );
    let e = entry(&s, "10.0.0.1:80/TCP");
    assert_eq!((e.connections, e.sessions, e.dead_since), (1, 0, None));
    assert_eq!(e.connect_times.count(), 1);
    // The seat's block was zeroed: a new worker there adds to the retired sum only
    // what it counts itself.
    let next = registry.seat(2).unwrap();
    let status = crate::sys::testing::in_child(|| next.accepted(l)).expect("fork");
    assert_eq!(status.exit_status(), Some(0));
    assert_eq!(registry.snapshot().totals.accepted, 2);
}

/// The memory the counters cost, as `/proc/self/smaps` counts the mapping's
/// resident pages in this process: nothing for the mapping itself or an idle
/// worker's seat; two pages (three if its slots straddle a page boundary) for a
/// worker that counted sessions to 2 listeners and 8 remotes; those and the
/// master's seat for the master's snapshot; and a fold gives the worker's back.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[test]
fn an_idle_relay_costs_no_memory_and_a_busy_one_a_few_pages() {
    use crate::sys::testing::resident_kib;
    let page = crate::sys::shared::page_size() as u64 / 1024;
    let mut registry = Registry::new().unwrap();
    let at = registry.mapping_address();
    let rss = || resident_kib(at).unwrap();
    assert_eq!(rss(), 0, "a new mapping is not resident");
    let ls = listeners(&["127.0.0.1:80", "[::]:443"]);
    let rs: Vec<_> = (1..=8).map(|i| remote(&format!("10.0.0.{i}:80"))).collect();
    let slots = registry.assign_keys(&ls, &rs);
    let worker = registry.seat(0).unwrap();
    assert_eq!(rss(), 0, "an idle worker touched nothing");

    for (i, r) in slots.remotes.iter().enumerate() {
        let l = slots.listeners[i % 2];
        worker.accepted(l);
        worker.session_opened(l, *r);
        worker.connected(*r, Duration::from_millis(3));
        worker.bytes(l, *r, 1000, 1000);
        worker.session_closed(l, *r, Duration::from_secs(2));
        worker.tls_handshake(true);
        worker.mark_dead(*r, SystemTime::now());
    }
    let busy = rss();
    eprintln!("a worker that counted for 2 listeners and 8 remotes: {busy} KiB ({page} KiB pages)");
    assert!((page..=3 * page).contains(&busy), "{busy} KiB");

    registry.master().shed();
    assert_eq!(registry.snapshot().totals.accepted, 8);
    let master = rss();
    eprintln!("and the master's snapshot of it and its own seat: {master} KiB");
    assert!(master - busy <= 3 * page, "{master} KiB");

    registry.fold(0);
    let folded = rss();
    eprintln!("after the worker's seat was folded: {folded} KiB");
    assert_eq!(
        folded,
        master - busy,
        "the fold gave the worker's pages back"
    );
    assert_eq!(registry.snapshot().totals.accepted, 8);
    assert_eq!(rss(), folded, "a snapshot does not read a folded seat");
}

#[test]
fn remote_keys_print_as_address_port_protocol() {
    let v6 = RemoteKey {
        address: "[::1]:80".parse::<SocketAddr>().unwrap(),
        protocol: Protocol::Sctp,
    };
    assert_eq!(v6.to_string(), "[::1]:80/SCTP");
    assert_eq!(remote("192.0.2.7:8080").to_string(), "192.0.2.7:8080/TCP");
}
