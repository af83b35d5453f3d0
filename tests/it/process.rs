//! The process model under stress: descriptor exhaustion, daemonizing, draining one
//! worker with SIGHUP. The real binaries on loopback, bounded in time.

use crate::harness::{self, alive, children_of, free_port, Echo, Relay};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn config(port: u16, backend: u16, spawnd: &str) -> String {
    format!(
        "id = spawnd {{\n listen = {{ address = 127.0.0.1 port = {port} }}\n {spawnd}\n}}\nid = tcprelay {{\n remote = {{ address = 127.0.0.1 port = {backend} }}\n}}\n"
    )
}

/// CPU time (user + system) of `pid` in clock ticks.
fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rfind(')').map_or("", |i| &stat[i + 2..]);
    let fields: Vec<&str> = rest.split(' ').collect();
    // After the state: ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
    // utime stime; utime is the 12th field after the state.
    let get = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    get(11) + get(12)
}

#[test]
fn descriptor_exhaustion_pauses_accepting_without_a_busy_loop_and_recovers() {
    let echo = Echo::start();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let plan = harness::compile(
        dir.path(),
        "relay",
        &config(
            port,
            echo.port,
            "spawn = { servers min = 1 servers max = 1 users max = 1000 }",
        ),
    );
    let cmd = format!(
        "ulimit -n 48 && exec {} run -f {}",
        harness::bin("tcprelay").display(),
        plan.display()
    );
    let relay = Relay::start_shell(dir.path(), &cmd, port);
    let worker = {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(&w) = children_of(relay.pid()).first() {
                break w;
            }
            assert!(Instant::now() < deadline, "no worker");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    const CLIENTS: usize = 60;
    let release = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (release, served) = (release.clone(), served.clone());
            std::thread::spawn(move || -> bool {
                let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
                    return false;
                };
                let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
                let mut b = [0u8; 4];
                if s.write_all(b"ping").is_err() || s.read_exact(&mut b).is_err() || &b != b"ping" {
                    return false;
                }
                served.fetch_add(1, Ordering::Relaxed);
                while !release.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                true
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let during = served.load(Ordering::Relaxed);
    assert!(
        during < CLIENTS,
        "the descriptor limit did not bite ({during} served)"
    );
    let t0 = cpu_ticks(worker);
    std::thread::sleep(Duration::from_secs(2));
    let spent = cpu_ticks(worker) - t0;
    // A busy loop would burn ~200 ticks in 2 s; a paused accept loop almost none.
    assert!(spent < 20, "worker used {spent} ticks in 2 s while starved");
    release.store(true, Ordering::Relaxed);
    let ok = clients
        .into_iter()
        .filter_map(|h| h.join().ok())
        .filter(|&ok| ok)
        .count();
    assert_eq!(
        ok, CLIENTS,
        "clients waiting for a descriptor were not served after recovery"
    );
    let log = relay.log_text();
    assert!(log.contains("the open file limit (48) allows"), "{log}");
}

#[test]
fn background_detaches_and_writes_the_daemons_pid() {
    let echo = Echo::start();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("relay.pid");
    let plan = harness::compile(
        dir.path(),
        "relay",
        &config(
            port,
            echo.port,
            &format!("background = yes\n pidfile = {}", pidfile.display()),
        ),
    );
    let status = std::process::Command::new(harness::bin("tcprelay"))
        .args(["run", plan.to_str().unwrap()])
        .status()
        .expect("tcprelay runs");
    assert!(
        status.success(),
        "the foreground process exits 0 once detached"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let pid = loop {
        if let Some(pid) = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
        {
            break pid;
        }
        assert!(Instant::now() < deadline, "no pidfile");
        std::thread::sleep(Duration::from_millis(20));
    };
    let stop = || {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
    };
    let served = harness::echo_through(port, b"daemon").map(|b| b == b"daemon");
    stop();
    assert!(matches!(served, Ok(true)), "{served:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!alive(pid), "the daemon did not stop on SIGTERM");
}

#[test]
fn sighup_to_a_worker_drains_it_and_the_master_replaces_it() {
    let echo = Echo::start();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(
        dir.path(),
        &[
            "run",
            "-f",
            harness::compile(
                dir.path(),
                "relay",
                &config(
                    port,
                    echo.port,
                    "spawn = { servers min = 1 servers max = 1 }",
                ),
            )
            .to_str()
            .unwrap(),
        ],
        port,
    );
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut b = [0u8; 2];
    s.write_all(b"a1").unwrap();
    s.read_exact(&mut b).unwrap();
    let worker = children_of(relay.pid())[0];
    let _ = std::process::Command::new("kill")
        .args(["-HUP", &worker.to_string()])
        .status();
    std::thread::sleep(Duration::from_millis(300));
    // The draining worker still serves its session ...
    s.write_all(b"a2").unwrap();
    s.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"a2");
    assert!(alive(worker), "the worker left with a session open");
    // ... and a replacement takes new connections.
    assert_eq!(harness::echo_through(port, b"new").unwrap(), b"new");
    drop(s);
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(worker) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!alive(worker), "the drained worker did not exit when idle");
    assert_eq!(children_of(relay.pid()).len(), 1, "{}", relay.log_text());
}

/// The real uid of `pid`, from /proc.
fn uid_of(pid: i32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn privileges_are_dropped_after_binding() {
    // Only root can drop privileges; the suite runs as root in CI.
    if uid_of(std::process::id() as i32) != Some(0) {
        eprintln!("skipped: not root");
        return;
    }
    let echo = Echo::start();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(
        dir.path(),
        &[
            "run",
            "-f",
            harness::compile(
                dir.path(),
                "relay",
                &config(
                    port,
                    echo.port,
                    "user = nobody\n group = nogroup\n spawn = { servers min = 1 servers max = 1 }",
                ),
            )
            .to_str()
            .unwrap(),
        ],
        port,
    );
    assert_eq!(harness::echo_through(port, b"x").unwrap(), b"x");
    let nobody = 65534;
    assert_eq!(uid_of(relay.pid()), Some(nobody), "master still privileged");
    let workers = children_of(relay.pid());
    assert!(!workers.is_empty());
    for w in workers {
        assert_eq!(uid_of(w), Some(nobody), "worker {w} still privileged");
    }
}
