//! Client affinity (`sticky cache`) end to end: the real relay with two workers,
//! clients from different loopback source addresses (Linux routes all of 127/8 to
//! lo), the remote each went to counted by the echo servers, the workers that
//! served them read from the debug log, hits and misses from `tcprelay ctl status`.

use crate::harness::{compile, config, free_port, stderr, stdout, Echo, Relay};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// A client of the relay on `port` from 127.0.0.`from`, after one round trip.
fn client_from(port: u16, from: u8) -> TcpStream {
    let mut stream = crate::harness::connect_from(port, from, Duration::from_secs(5));
    stream.write_all(b"ping").expect("send");
    let mut back = [0u8; 4];
    stream.read_exact(&mut back).expect("echoed");
    assert_eq!(&back, b"ping");
    stream
}

fn counts(a: &Echo, b: &Echo) -> (usize, usize) {
    (
        a.connections.load(Ordering::Relaxed),
        b.connections.load(Ordering::Relaxed),
    )
}

/// `tcprelay ctl ARGS`, which must succeed.
fn ctl(dir: &Path, args: &[&str]) {
    let out = Command::new(crate::harness::bin("tcprelay"))
        .arg("ctl")
        .args(args)
        .env("RUNTIME_DIRECTORY", dir)
        .output()
        .expect("tcprelay ctl runs");
    assert!(
        out.status.success(),
        "ctl {args:?}: {}{}",
        stdout(&out),
        stderr(&out)
    );
}

/// `tcprelay ctl --json status` once the totals satisfy `done`.
fn status_until(dir: &Path, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = Command::new(crate::harness::bin("tcprelay"))
            .args(["ctl", "--json", "status"])
            .env("RUNTIME_DIRECTORY", dir)
            .output()
            .expect("tcprelay ctl runs");
        assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
        let status: Value = serde_json::from_str(stdout(&out).trim()).expect("JSON");
        if done(&status["totals"]) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "status never got there: {status}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The workers (by pid) whose debug log says they served a sticky client.
fn sticky_workers(log: &str, what: &str) -> Vec<String> {
    let mut workers: Vec<String> = log
        .lines()
        .filter(|l| l.contains(&format!("sticky {what}")))
        .filter_map(|l| {
            l.split("worker ")
                .nth(1)?
                .split([' ', ':'])
                .next()
                .map(str::to_string)
        })
        .collect();
    workers.sort();
    workers.dedup();
    workers
}

/// A relay on `port` with debug lines (they name the sticky hits and hand-offs),
/// the spawnd section's `spawnd` settings, and the two remotes at weight 1.
fn start_relay(dir: &Path, port: u16, remotes: [&Echo; 2], spawnd: &str) -> Relay {
    let remotes = [(remotes[0].port, 1), (remotes[1].port, 1)];
    let plan = compile(dir, "relay", &config(port, &remotes, spawnd, ""));
    Relay::start(dir, &["run", "-d", "1", "-f", plan.to_str().unwrap()], port)
}

#[test]
fn a_client_address_keeps_its_remote_across_two_workers_and_a_reload() {
    let (a, b) = (Echo::start(), Echo::start());
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let spawnd = "spawn = { servers min = 2 servers max = 2 }\n    sticky cache period = 60";
    let relay = start_relay(dir.path(), port, [&a, &b], spawnd);
    relay.await_workers(2, Duration::from_secs(5));

    // Eight clients of .2 held at once: least-connections alone would give each
    // remote some; they all go where the first went, whichever worker accepts.
    let held: Vec<TcpStream> = (0..8).map(|_| client_from(port, 2)).collect();
    let (on_a, on_b) = counts(&a, &b);
    assert!(
        (on_a, on_b) == (8, 0) || (on_a, on_b) == (0, 8),
        "the clients of one address on one remote: {on_a} on a, {on_b} on b"
    );
    let status = status_until(dir.path(), |t| t["sticky_hits"] == 7);
    assert_eq!(status["totals"]["sticky_misses"], 1, "{status}");
    let log = relay.log_text();
    eprintln!(
        "workers that served .2 from its entry: {:?}; the remote: {}",
        sticky_workers(&log, "hit"),
        if on_a == 8 { "a" } else { "b" }
    );
    drop(held);

    // .3's first client goes to b while a is drained; a is enabled again.
    let ra = format!("127.0.0.1:{}", a.port);
    ctl(dir.path(), &["drain", &ra]);
    let before = counts(&a, &b);
    let first = client_from(port, 3);
    assert_eq!(counts(&a, &b), (before.0, before.1 + 1), ".3 went to b");
    ctl(dir.path(), &["enable", &ra]);

    // A reload of the same plan keeps the entries (the same regions, the remotes
    // the same slots): the new workers, empty, would send a new client to a (the
    // first in plan order); .3's go to b, where its entry says.
    relay.signal(libc::SIGHUP);
    relay.await_log("reloaded (generation 2)", Duration::from_secs(10));
    let mut later = Vec::new();
    for _ in 0..4 {
        let before = counts(&a, &b);
        later.push(client_from(port, 3));
        assert_eq!(counts(&a, &b), (before.0, before.1 + 1), ".3 stays on b");
    }
    let log = relay.log_text();
    eprintln!(
        "workers that served .3 from its entry: {:?}",
        sticky_workers(&log, "hit")
    );
    drop(first);
}

/// The workers (by pid) whose debug log says they opened a session for a client
/// of 127.0.0.`from`, with how many each.
fn serving_workers(log: &str, from: u8) -> Vec<(String, usize)> {
    let client = format!(": client 127.0.0.{from}:");
    let mut workers: Vec<(String, usize)> = Vec::new();
    for pid in log
        .lines()
        .filter(|l| l.contains(": session ") && l.contains(&client))
        .filter_map(|l| l.split(": session ").next()?.rsplit("worker ").next())
    {
        match workers.iter_mut().find(|(p, _)| p == pid) {
            Some((_, n)) => *n += 1,
            None => workers.push((pid.to_string(), 1)),
        }
    }
    workers
}

/// Worker affinity: eight clients of 127.0.0.2 held at once are all served by
/// one worker, although from 3 sessions on it leaves new connections to the
/// other, emptier worker (`users min = 1`): that one accepts them and hands
/// them over through the master (the debug log and `ctl status` say so).
#[test]
fn a_client_address_is_served_by_one_worker_across_connections() {
    let (a, b) = (Echo::start(), Echo::start());
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let spawnd =
        "spawn = { servers min = 2 servers max = 2 users min = 1 }\n    sticky cache period = 60";
    let relay = start_relay(dir.path(), port, [&a, &b], spawnd);
    let pids = relay.await_workers(2, Duration::from_secs(5));
    let held: Vec<TcpStream> = (0..8).map(|_| client_from(port, 2)).collect();
    // And a client of another address, which may go to either.
    let other = client_from(port, 3);
    let status = status_until(dir.path(), |t| t["sticky_hits"] == 7);
    let log = relay.log_text();
    let serving = serving_workers(&log, 2);
    assert_eq!(
        serving.len(),
        1,
        "one worker serves 127.0.0.2: {serving:?} (workers {pids:?})"
    );
    assert_eq!(serving[0].1, 8, "{serving:?}");
    let handed = status["totals"]["sticky_handoffs"].as_u64().unwrap_or(0);
    assert!(
        handed >= 1,
        "the other worker accepted some and handed them over: {status}"
    );
    assert!(
        log.contains("handed over by another worker: its sticky entry names this one"),
        "{log}"
    );
    assert_eq!(status["totals"]["sticky_handoffs_closed"], 0, "{status}");
    assert_eq!(
        status["totals"]["accepted"], 9,
        "each accept counted once: {status}"
    );
    drop(held);
    drop(other);
}
