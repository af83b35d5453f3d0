//! Active health checks end to end: the real relay (its checker process and a
//! worker), real servers (redis-server for send/expect, a listener that accepts and
//! never answers, one that flaps every second), `tcprelay ctl remotes` to watch
//! the state. Configurations compiled by the real `tcprelay-cc`. Checks every
//! second, so each test takes a few seconds, bounded.

use crate::harness::{bin, echo_through, free_port, stderr, stdout, Echo, Relay};
use serde_json::Value;
use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One worker: the balancer under test is that worker's.
const SPAWND: &str = "spawn = { servers min = 1 servers max = 1 }";

/// Runs a relay with a listener on `port` and a remote per `(port, check)`, where
/// `check` is what the remote's line adds (`check = { ... }`), and `section` what
/// the tcprelay section adds (its default check).
fn relay(dir: &Path, port: u16, remotes: &[(u16, &str)], section: &str) -> Relay {
    let remotes: String = remotes
        .iter()
        .map(|(p, check)| format!("    remote = {{ address = 127.0.0.1 port = {p} {check} }}\n"))
        .collect();
    let cfg = format!(
        "id = spawnd {{\n    listen = {{ address = 127.0.0.1 port = {port} }}\n    {SPAWND}\n}}\nid = tcprelay {{\n{remotes}    {section}\n}}\n"
    );
    Relay::run_config(dir, &cfg, port)
}

/// Checks every second, PING answered by +PONG.
const PING: &str = r#"send = "PING\r\n" expect = "+PONG""#;

/// `tcprelay ctl --json remotes`: the entry of the remote on `port`.
fn remote(dir: &Path, port: u16) -> Value {
    let out = Command::new(bin("tcprelay"))
        .args(["ctl", "--json", "remotes"])
        .env("RUNTIME_DIRECTORY", dir)
        .output()
        .expect("tcprelay ctl runs");
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let answer: Value = serde_json::from_str(stdout(&out).trim()).expect("JSON");
    let name = format!("127.0.0.1:{port}");
    answer["remotes"]
        .as_array()
        .expect("remotes")
        .iter()
        .find(|r| r["remote"] == name.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("{name} not in {answer}"))
}

/// Waits until the check of the remote on `port` says `state` (within `within`);
/// how long it took.
fn await_state(relay: &Relay, dir: &Path, port: u16, state: &str, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let entry = remote(dir, port);
        if entry["check"]["state"] == state {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "127.0.0.1:{port} not {state} within {within:?}: {entry}\n{}",
            relay.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn await_pass(dir: &Path, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while remote(dir, port)["check"]["last"] != "pass" {
        assert!(Instant::now() < deadline, "{}", remote(dir, port));
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `n` sessions through the relay, each echoed back whole.
fn sessions(port: u16, n: usize) {
    for i in 0..n {
        let data = format!("session {i}");
        assert_eq!(
            echo_through(port, data.as_bytes()).expect("relayed"),
            data.as_bytes(),
            "session {i}"
        );
    }
}

/// A redis-server on 127.0.0.1:`port`, nothing saved; killed when dropped.
struct Redis(Child);

impl Redis {
    fn start(port: u16, dir: &Path) -> Redis {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (Debian package redis-server; scripts/test.sh installs it)");
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Redis(child)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_redis_remote_goes_down_within_fall_intervals_gets_no_session_and_comes_back_after_rise() {
    let dir = tempfile::tempdir().unwrap();
    let echo = Echo::start();
    let redis_port = free_port();
    let redis = Redis::start(redis_port, dir.path());
    let port = free_port();
    let relay = relay(
        dir.path(),
        port,
        &[
            (
                redis_port,
                &format!("check = {{ interval = 1 timeout = 1 rise = 2 fall = 2 {PING} }}"),
            ),
            (echo.port, ""),
        ],
        "",
    );
    await_pass(dir.path(), redis_port);
    assert_eq!(remote(dir.path(), redis_port)["state"], "up");
    assert_eq!(remote(dir.path(), echo.port)["check"], Value::Null);
    // The `check` object as docs/control.md documents it.
    let check = remote(dir.path(), redis_port)["check"].clone();
    let keys: Vec<&String> = check.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "checked_ago_s",
            "duration_us",
            "in_a_row",
            "last",
            "results",
            "state"
        ],
        "{check}"
    );
    let results: Vec<&String> = check["results"].as_object().unwrap().keys().collect();
    assert_eq!(
        results,
        ["closed", "error", "mismatch", "pass", "refused", "timeout", "tls"],
        "{check}"
    );

    // Stopped: down after `fall` (2) failed checks, 1 s apart.
    drop(redis);
    let took = await_state(
        &relay,
        dir.path(),
        redis_port,
        "down",
        Duration::from_secs(5),
    );
    assert!(took <= Duration::from_millis(3500), "down after {took:?}");
    let entry = remote(dir.path(), redis_port);
    assert_eq!(entry["state"], "down");
    assert!(
        entry["why"]
            .as_str()
            .unwrap()
            .starts_with("health check: refused"),
        "{entry}"
    );
    let before = (entry["connections"].clone(), entry["failures"].clone());
    let echoed = echo.connections.load(Ordering::Relaxed);
    sessions(port, 10);
    let entry = remote(dir.path(), redis_port);
    assert_eq!(
        (entry["connections"].clone(), entry["failures"].clone()),
        before,
        "no session tried the remote down by its checks"
    );
    assert_eq!(echo.connections.load(Ordering::Relaxed), echoed + 10);

    // Back: up after `rise` (2) passing checks.
    let _redis = Redis::start(redis_port, dir.path());
    let took = await_state(&relay, dir.path(), redis_port, "up", Duration::from_secs(5));
    assert!(took <= Duration::from_millis(3500), "up after {took:?}");
    let log = relay.log_text();
    let down = format!("health check: remote 127.0.0.1:{redis_port} is down");
    assert_eq!(log.matches(&down).count(), 1, "logged once:\n{log}");
    assert!(log.contains(&format!(
        "health check: remote 127.0.0.1:{redis_port} is up again"
    )));

    // SIGUSR1: the master's status says it.
    relay.signal(10);
    relay.await_log(
        &format!("127.0.0.1:{redis_port} up (last check: pass"),
        Duration::from_secs(5),
    );
}

/// A listener that accepts and never answers; it keeps what each connection sent.
struct Silent {
    port: u16,
    received: Arc<Mutex<Vec<u8>>>,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Silent {
    fn start() -> Silent {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, a, s) = (received.clone(), accepted.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        a.fetch_add(1, Ordering::Relaxed);
                        let r = r.clone();
                        std::thread::spawn(move || {
                            let _ = stream.set_nonblocking(false);
                            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                            let mut buf = [0u8; 256];
                            while let Ok(n @ 1..) = stream.read(&mut buf) {
                                r.lock().unwrap().extend_from_slice(&buf[..n]);
                            }
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Silent {
            port,
            received,
            accepted,
            stop,
        }
    }
}

impl Drop for Silent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[test]
fn a_remote_that_accepts_and_never_answers_times_out_gets_no_session_and_keeps_its_state_across_a_reload(
) {
    let dir = tempfile::tempdir().unwrap();
    let echo = Echo::start();
    let silent = Silent::start();
    let port = free_port();
    let relay = relay(
        dir.path(),
        port,
        &[
            (
                silent.port,
                &format!("check = {{ interval = 2 timeout = 1 rise = 1 fall = 1 {PING} }}"),
            ),
            (echo.port, ""),
        ],
        "",
    );
    await_state(
        &relay,
        dir.path(),
        silent.port,
        "down",
        Duration::from_secs(4),
    );
    let entry = remote(dir.path(), silent.port);
    assert_eq!(entry["check"]["last"], "timeout", "{entry}");
    // No client went to it (no dead mark), no one steered it: the change its
    // checks made is the one `changed_ago_s` (the CHANGED column) shows.
    assert!(
        entry["changed_ago_s"].as_u64().is_some_and(|s| s <= 2),
        "{entry}"
    );
    // The check cost its timeout, no more.
    let us = entry["check"]["duration_us"].as_u64().unwrap();
    assert!((1_000_000..1_500_000).contains(&us), "a check took {us} µs");
    sessions(port, 10);
    let received = String::from_utf8_lossy(&silent.received.lock().unwrap()).into_owned();
    assert!(
        !received.contains("session"),
        "a session reached it: {received:?}"
    );
    assert!(
        received.contains("PING\r\n"),
        "the checks did: {received:?}"
    );

    // A reload with the same remote keeps its health: still down at once, its
    // counts going on.
    let timeouts = entry["check"]["results"]["timeout"].as_u64().unwrap();
    relay.signal(1);
    relay.await_log("reloaded (generation 2)", Duration::from_secs(5));
    // The old checker exits, the new plan's starts (the silent remote still
    // checked by it: its timeouts go on being counted below).
    let deadline = Instant::now() + Duration::from_secs(5);
    while relay
        .log_text()
        .matches(" started: 1 remote(s) checked")
        .count()
        < 2
    {
        assert!(Instant::now() < deadline, "{}", relay.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
    let entry = remote(dir.path(), silent.port);
    assert_eq!(entry["check"]["state"], "down", "{entry}");
    assert!(entry["check"]["results"]["timeout"].as_u64().unwrap() >= timeouts);
    sessions(port, 3);
    let received = String::from_utf8_lossy(&silent.received.lock().unwrap()).into_owned();
    assert!(
        !received.contains("session"),
        "a session reached it: {received:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while remote(dir.path(), silent.port)["check"]["results"]["timeout"]
        .as_u64()
        .unwrap()
        <= timeouts
    {
        assert!(Instant::now() < deadline, "{}", relay.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(remote(dir.path(), silent.port)["check"]["state"], "down");
    assert!(silent.accepted.load(Ordering::Relaxed) >= 2);
}

/// An echo server on `address` that listens for a second, then not for a second,
/// and so on, until dropped; counts the connections it echoed.
struct Flapping {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Flapping {
    fn start(address: SocketAddr) -> Flapping {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let Ok(listener) = TcpListener::bind(address) else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                listener.set_nonblocking(true).unwrap();
                let until = Instant::now() + Duration::from_secs(1);
                let mut closing = false;
                loop {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            std::thread::spawn(move || {
                                let _ = stream.set_nonblocking(false);
                                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                                let _ = std::io::copy(&mut &stream, &mut &stream);
                                let _ = stream.shutdown(std::net::Shutdown::Write);
                            });
                        }
                        // Every connection queued was taken before closing: one
                        // left in the queue would be reset (a remote that resets
                        // after the client's bytes reached it, not a flap).
                        Err(_) if closing => break,
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                    closing = Instant::now() >= until || s.load(Ordering::Relaxed);
                }
                drop(listener);
                std::thread::sleep(Duration::from_secs(1));
            }
        });
        Flapping {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Flapping {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn a_remote_flapping_every_second_loses_no_client() {
    let dir = tempfile::tempdir().unwrap();
    let echo = Echo::start();
    let flapping_port = free_port();
    let flapping = Flapping::start(SocketAddr::from(([127, 0, 0, 1], flapping_port)));
    let port = free_port();
    let relay = relay(
        dir.path(),
        port,
        &[
            (
                flapping_port,
                "check = { interval = 1 timeout = 1 rise = 2 fall = 2 }",
            ),
            (echo.port, ""),
        ],
        "",
    );
    // Five seconds of sessions, ten a second: each is relayed, by the flapping
    // remote while it listens or failed over to the other.
    let until = Instant::now() + Duration::from_secs(5);
    let mut n = 0;
    while Instant::now() < until {
        sessions(port, 1);
        n += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(flapping);
    assert!(n >= 30, "{n} sessions");
    let results = remote(dir.path(), flapping_port)["check"]["results"].clone();
    let (passes, refused) = (
        results["pass"].as_u64().unwrap(),
        results["refused"].as_u64().unwrap(),
    );
    assert!(
        passes >= 1 && refused >= 1 && passes + refused >= 4,
        "{results}"
    );
    let log = relay.log_text();
    assert!(!log.contains("every remote is down"), "{log}");
    assert!(!log.contains("no remote reachable"), "{log}");
}

#[test]
fn with_every_remote_down_by_its_checks_the_relay_tries_them_all_and_says_so_once() {
    let dir = tempfile::tempdir().unwrap();
    // Echo servers answer PING with PING: every check is a mismatch, yet they relay.
    let (a, b) = (Echo::start(), Echo::start());
    let port = free_port();
    let relay = relay(
        dir.path(),
        port,
        &[(a.port, ""), (b.port, "check = { fall = 1 }")],
        // The section's default: every remote's check, merged under its own.
        &format!("check = {{ interval = 1 timeout = 1 rise = 1 fall = 1 {PING} }}"),
    );
    await_state(&relay, dir.path(), a.port, "down", Duration::from_secs(4));
    await_state(&relay, dir.path(), b.port, "down", Duration::from_secs(4));
    assert_eq!(remote(dir.path(), a.port)["check"]["last"], "mismatch");
    sessions(port, 6);
    let log = relay.log_text();
    let said = "every remote is down by its health checks: trying them all again";
    assert_eq!(log.matches(said).count(), 1, "once for the episode:\n{log}");
    assert!(!log.contains("no remote reachable"), "{log}");
}

/// The checker's pid, from the `n`th "health checker PID started" line (from 1).
fn checker_pid(relay: &Relay, n: usize) -> i32 {
    let log = relay.log_text();
    let line = log
        .lines()
        .filter(|l| l.contains("health checker ") && l.contains(" started: "))
        .nth(n - 1)
        .unwrap_or_else(|| panic!("no checker #{n} started:\n{log}"));
    let after = line.split("health checker ").nth(1).unwrap();
    after.split(' ').next().unwrap().parse().unwrap()
}

#[test]
fn a_dead_checker_is_replaced_and_one_whose_master_died_exits() {
    let dir = tempfile::tempdir().unwrap();
    let echo = Echo::start();
    let port = free_port();
    let mut relay = relay(
        dir.path(),
        port,
        &[(
            echo.port,
            "check = { interval = 1 timeout = 1 rise = 1 fall = 1 }",
        )],
        "",
    );
    relay.await_log("health checker ", Duration::from_secs(5));
    let first = checker_pid(&relay, 1);
    await_pass(dir.path(), echo.port);
    let passes = remote(dir.path(), echo.port)["check"]["results"]["pass"]
        .as_u64()
        .unwrap();
    let _ = Command::new("kill")
        .args(["-9", &first.to_string()])
        .status();
    relay.await_log(
        &format!("health checker {first} died"),
        Duration::from_secs(5),
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while relay
        .log_text()
        .matches(" started: 1 remote(s) checked")
        .count()
        < 2
    {
        assert!(Instant::now() < deadline, "{}", relay.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = checker_pid(&relay, 2);
    assert_ne!(first, second);
    // The new checker goes on checking; the remote kept its state.
    let deadline = Instant::now() + Duration::from_secs(5);
    while remote(dir.path(), echo.port)["check"]["results"]["pass"]
        .as_u64()
        .unwrap()
        <= passes
    {
        assert!(Instant::now() < deadline, "{}", relay.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(remote(dir.path(), echo.port)["check"]["state"], "up");

    // The master killed: the checker sees its control socket close and exits.
    let _ = relay.child.kill();
    let _ = relay.child.wait();
    let deadline = Instant::now() + Duration::from_secs(5);
    while crate::harness::alive(second) {
        assert!(
            Instant::now() < deadline,
            "checker {second} outlived its master"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
