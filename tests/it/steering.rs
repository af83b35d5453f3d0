//! Steering remotes and listing sessions through the control socket, end to end:
//! the real relay (two workers) and `tcprelay ctl`, in the test's own directory
//! (`RUNTIME_DIRECTORY`, set by the harness for every relay it starts).

use crate::harness::{compile, config, free_port, stderr, stdout, Echo, Relay};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::harness::ctl;

/// `tcprelay ctl --json ARGS`: the answer, which must say `"ok":true`.
fn ctl_ok(dir: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = ctl(dir, &all);
    assert!(
        out.status.success(),
        "ctl {args:?}: {}{}",
        stdout(&out),
        stderr(&out)
    );
    serde_json::from_str(stdout(&out).trim()).expect("one JSON line")
}

/// `n` sessions one after the other, each closed before the next.
fn sessions(port: u16, n: usize) {
    for i in 0..n {
        let data = format!("session {i}");
        assert_eq!(
            crate::harness::echo_through(port, data.as_bytes()).expect("relayed"),
            data.as_bytes()
        );
    }
}

fn count(echo: &Echo) -> usize {
    echo.connections.load(Ordering::Relaxed)
}

fn remote_entry(answer: &Value, remote: &str) -> Value {
    answer["remotes"]
        .as_array()
        .expect("remotes")
        .iter()
        .find(|r| r["remote"] == remote)
        .cloned()
        .unwrap_or_else(|| panic!("{remote} not in {answer}"))
}

#[test]
fn ctl_drain_enable_and_weight_steer_every_worker_and_a_reload_keeps_an_unchanged_remote_drained() {
    let (a, b) = (Echo::start(), Echo::start());
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let spawnd = "spawn = { servers min = 2 servers max = 2 }";
    let relay = Relay::run_config(
        dir.path(),
        &config(port, &[(a.port, 1), (b.port, 1)], spawnd, ""),
        port,
    );
    relay.await_workers(2, Duration::from_secs(5));
    let (ra, rb) = (
        format!("127.0.0.1:{}", a.port),
        format!("127.0.0.1:{}", b.port),
    );

    // Drained: no new session goes to a, whichever worker takes the client.
    let answer = ctl_ok(dir.path(), &["drain", &ra]);
    assert!(
        answer["message"].as_str().unwrap().contains("drained"),
        "{answer}"
    );
    let before = count(&a);
    sessions(port, 20);
    assert_eq!(count(&a), before, "a drained remote got a session");
    assert_eq!(count(&b), 20);
    let remotes = ctl_ok(dir.path(), &["remotes"]);
    assert_eq!(remote_entry(&remotes, &ra)["state"], "drained");
    assert!(remote_entry(&remotes, &ra)["changed_ago_s"].is_u64());
    assert_eq!(remote_entry(&remotes, &rb)["state"], "up");

    // Enabled: a takes sessions again.
    ctl_ok(dir.path(), &["enable", &ra]);
    sessions(port, 20);
    assert!(count(&a) > before, "an enabled remote got no session");

    // Weight 0: b only when a cannot take the session; the remotes table shows it.
    ctl_ok(dir.path(), &["weight", &rb, "0"]);
    let b_before = count(&b);
    sessions(port, 10);
    assert_eq!(count(&b), b_before, "a remote at weight 0 got a session");
    assert_eq!(
        remote_entry(&ctl_ok(dir.path(), &["remotes"]), &rb)["weight"],
        0
    );

    // An unknown remote is an error naming the plan's remotes.
    let out = ctl(dir.path(), &["drain", "127.0.0.1:1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&ra) && stderr(&out).contains(&rb),
        "{}",
        stderr(&out)
    );

    // A reload with the same plan keeps a drained; one that changes a's weight
    // gives it back its plan's state.
    ctl_ok(dir.path(), &["weight", &rb, "1"]);
    ctl_ok(dir.path(), &["drain", &ra]);
    compile(
        dir.path(),
        "relay",
        &config(port, &[(a.port, 1), (b.port, 1)], spawnd, ""),
    );
    relay.signal(1);
    relay.await_log("reloaded (generation 2)", Duration::from_secs(10));
    let before = count(&a);
    sessions(port, 10);
    assert_eq!(count(&a), before, "the reload enabled an unchanged remote");
    compile(
        dir.path(),
        "relay",
        &config(port, &[(a.port, 2), (b.port, 1)], spawnd, ""),
    );
    relay.signal(1);
    relay.await_log("reloaded (generation 3)", Duration::from_secs(10));
    sessions(port, 10);
    assert!(
        count(&a) > before,
        "a remote the reload changed stayed drained"
    );
    assert_eq!(
        remote_entry(&ctl_ok(dir.path(), &["remotes"]), &ra)["state"],
        "up"
    );
}

#[test]
fn ctl_sessions_lists_the_sessions_of_every_worker_oldest_first() {
    let echo = Echo::start();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::run_config(
        dir.path(),
        &config(
            port,
            &[(echo.port, 1)],
            // Two sessions each: the four below land on both workers.
            "spawn = { servers min = 2 servers max = 2 users min = 2 users max = 2 }",
            "",
        ),
        port,
    );
    relay.await_workers(2, Duration::from_secs(5));
    let mut clients = Vec::new();
    for i in 0..4 {
        let mut c = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let data = vec![b'x'; 100 * (i + 1)];
        c.write_all(&data).unwrap();
        let mut back = vec![0u8; data.len()];
        c.read_exact(&mut back).unwrap();
        clients.push(c);
        std::thread::sleep(Duration::from_millis(50));
    }
    let answer = ctl_ok(dir.path(), &["sessions", "3"]);
    assert_eq!(answer["total"], 4, "{answer}");
    assert_eq!(answer["workers"], 2);
    assert_eq!(answer["workers_answered"], 2);
    let listed = answer["sessions"].as_array().expect("sessions");
    assert_eq!(listed.len(), 3, "the limit");
    let remote = format!("127.0.0.1:{}", echo.port);
    for (i, s) in listed.iter().enumerate() {
        assert_eq!(
            s["client"],
            clients[i].local_addr().unwrap().to_string(),
            "oldest first"
        );
        assert_eq!(s["listener"], format!("127.0.0.1:{port}"));
        assert_eq!(s["remote"], remote);
        assert_eq!(s["bytes_in"], 100 * (i + 1) as u64);
        assert_eq!(s["bytes_out"], 100 * (i + 1) as u64);
        assert!(s["age_s"].as_u64().unwrap() < 60);
    }
    let pids: std::collections::BTreeSet<_> = answer["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            s["id"]
                .as_str()
                .unwrap()
                .split('.')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(pids.len(), 2, "sessions of both workers: {answer}");
    // The table form names them too.
    let out = ctl(dir.path(), &["sessions"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&clients[3].local_addr().unwrap().to_string()));
    drop(clients);
}
