//! The process model under stress: descriptor exhaustion, daemonizing, draining one
//! worker with SIGHUP. The real binaries on loopback, bounded in time.

use crate::harness::{self, alive, children_of, free_port, Echo, Relay};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One listener on `port`, one remote on `backend`, extra spawnd lines.
fn config(port: u16, backend: u16, spawnd: &str) -> String {
    harness::config(port, &[(backend, 1)], spawnd, "")
}

/// A client holding a session through the relay on `port`, after one echoed
/// exchange (10-s read timeout).
fn hold(port: u16) -> std::net::TcpStream {
    let mut held = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    held.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    held.write_all(b"hold").unwrap();
    let mut back = [0u8; 4];
    held.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"hold");
    held
}

/// [`hold`], connecting again while the relay turns the client away (end of file or
/// a reset: it still counts its only worker full), for at most 10 s.
fn hold_when_room(port: u16) -> std::net::TcpStream {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut held = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        held.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut back = [0u8; 4];
        let served = held
            .write_all(b"hold")
            .and_then(|()| held.read_exact(&mut back));
        match served {
            Ok(()) => {
                assert_eq!(&back, b"hold");
                return held;
            }
            Err(e) if std::time::Instant::now() < deadline => {
                assert!(
                    matches!(
                        e.kind(),
                        std::io::ErrorKind::UnexpectedEof
                            | std::io::ErrorKind::ConnectionReset
                            | std::io::ErrorKind::BrokenPipe
                    ),
                    "{e}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("not served within 10 s: {e}"),
        }
    }
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
    // With debug output: a failure (once under select in CI, not reproduced in 70
    // runs since) then shows what the draining worker's session did.
    let plan = harness::compile(
        dir.path(),
        "relay",
        &config(
            port,
            echo.port,
            "spawn = { servers min = 1 servers max = 1 }",
        ),
    );
    let relay = Relay::start(
        dir.path(),
        &["run", "-d", "3", "-f", plan.to_str().unwrap()],
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
    let relay = Relay::run_config(
        dir.path(),
        &config(
            port,
            echo.port,
            "user = nobody\n group = nogroup\n spawn = { servers min = 1 servers max = 1 }",
        ),
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

/// Raises this test process's open-file soft limit to `n` (or the hard limit).
fn raise_nofile(n: u64) {
    // SAFETY: getrlimit/setrlimit on a valid struct.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < n {
            lim.rlim_cur = n.min(lim.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

#[test]
fn twenty_reloads_under_load_lose_nothing() {
    let echo = Echo::start();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let plan = harness::compile(
        dir.path(),
        "relay",
        &config(
            port,
            echo.port,
            "spawn = { servers min = 1 servers max = 2 }",
        ),
    );
    let relay = Relay::start(dir.path(), &["run", "-f", plan.to_str().unwrap()], port);
    let long = harness::long_sessions(port, 30, Duration::from_secs(6));
    let churn = harness::Churn::start(port, 3);
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(200));
        relay.signal(1);
    }
    std::thread::sleep(Duration::from_millis(500));
    let (ok, failed) = churn.finish();
    let intact = long
        .into_iter()
        .filter_map(|h| h.join().ok())
        .filter(|&b| b)
        .count();
    eprintln!(
        "20 reloads: {intact}/30 long sessions intact, {ok} new connections ok, {failed} failed"
    );
    assert_eq!(intact, 30, "long sessions cut: {}", relay.log_text());
    assert_eq!(failed, 0, "new connections failed or were refused");
    assert!(ok > 100, "too little traffic ({ok})");
    assert_eq!(relay.log_text().matches("reloaded (generation").count(), 20);
}

#[test]
fn a_thousand_idle_clients_are_timed_out_and_active_ones_are_not() {
    raise_nofile(4096);
    let echo = Echo::start();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let plan = harness::compile(
        dir.path(),
        "relay",
        &format!(
            "id = spawnd {{ listen = {{ address = 127.0.0.1 port = {port} backlog = 2048 }} spawn = {{ servers min = 2 servers max = 2 users max = 2000 }} }}\nid = tcprelay {{ remote = {{ address = 127.0.0.1 port = {} }} idle timeout = 2 }}\n",
            echo.port
        ),
    );
    let _relay = Relay::start(dir.path(), &["run", "-f", plan.to_str().unwrap()], port);
    let idle: Vec<std::net::TcpStream> = (0..1000)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect"))
        .collect();
    let active: Vec<_> = (0..5u64)
        .map(|i| {
            std::thread::spawn(move || -> bool {
                let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
                    return false;
                };
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let end = Instant::now() + Duration::from_secs(5);
                while Instant::now() < end {
                    let chunk = harness::random_bytes(i, 64);
                    let mut back = [0u8; 64];
                    if s.write_all(&chunk).is_err()
                        || s.read_exact(&mut back).is_err()
                        || back[..] != chunk[..]
                    {
                        return false;
                    }
                    std::thread::sleep(Duration::from_millis(300));
                }
                true
            })
        })
        .collect();
    let alive_active = active
        .into_iter()
        .filter_map(|h| h.join().ok())
        .filter(|&b| b)
        .count();
    assert_eq!(alive_active, 5, "an active session was timed out");
    // By now (5 s > 2 s idle timeout + 1 s sweep) every idle client has been closed.
    let mut closed = 0;
    for mut s in idle {
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut b = [0u8; 1];
        if matches!(s.read(&mut b), Ok(0) | Err(_)) {
            closed += 1;
        }
    }
    assert_eq!(closed, 1000, "idle clients left open");
}

#[test]
fn a_client_that_never_reads_cannot_make_the_relay_buffer_without_bound() {
    let port = free_port();
    // A backend that writes as fast as it can to whoever connects.
    let backend = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let backend_port = backend.local_addr().unwrap().port();
    let written = Arc::new(AtomicUsize::new(0));
    let w = written.clone();
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = backend.accept() {
            let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
            let chunk = vec![7u8; 64 * 1024];
            while let Ok(n) = s.write(&chunk) {
                w.fetch_add(n, Ordering::Relaxed);
            }
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::run_config(
        dir.path(),
        &config(
            port,
            backend_port,
            "spawn = { servers min = 1 servers max = 1 }",
        ),
        port,
    );
    let client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    // The backend blocks once the client's receive buffer, the relay's sockets and the
    // relay's one pending chunk are full; its 2 s write timeout then ends it.
    std::thread::sleep(Duration::from_secs(4));
    let total = written.load(Ordering::Relaxed);
    let worker = children_of(relay.pid())[0];
    let rss_kib: u64 = std::fs::read_to_string(format!("/proc/{worker}/status"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap();
    drop(client);
    eprintln!("backend wrote {total} bytes to a client that never reads; worker RSS {rss_kib} KiB");
    assert!(total > 0);
    assert!(total < 64 << 20, "the relay kept reading: {total} bytes");
    assert!(rss_kib < 64 * 1024, "worker RSS {rss_kib} KiB");
}

#[test]
fn the_tls_passphrase_never_reaches_logs_or_command_lines() {
    let echo = Echo::start();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    harness::make_certs(&certs);
    let cfg = format!(
        "id = spawnd {{ listen = {{ address = 127.0.0.1 port = {port} tls = yes }} spawn = {{ servers min = 1 servers max = 1 }} }}\nid = tcprelay {{\n remote = {{ address = 127.0.0.1 port = {} }}\n tls cert-file = {}\n tls key-file = {}\n tls passphrase = \"{}\"\n}}\n",
        echo.port,
        certs.join("cert.pem").display(),
        certs.join("enc-key.pem").display(),
        harness::PASSPHRASE
    );
    let plan = harness::compile(dir.path(), "tls", &cfg);
    let mut relay = Relay::start(
        dir.path(),
        &["run", "-f", "-d", "3", plan.to_str().unwrap()],
        port,
    );
    let mut builder = openssl::ssl::SslConnector::builder(openssl::ssl::SslMethod::tls()).unwrap();
    builder.set_verify(openssl::ssl::SslVerifyMode::NONE);
    let connector = builder.build();
    let tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut tls = connector.connect("localhost", tcp).expect("TLS handshake");
    tls.write_all(b"secret-free").unwrap();
    let mut back = [0u8; 11];
    tls.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"secret-free");
    let mut pids = vec![relay.pid()];
    pids.extend(children_of(relay.pid()));
    for pid in &pids {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let needle = harness::PASSPHRASE.as_bytes();
        assert!(
            !cmdline.windows(needle.len()).any(|w| w == needle),
            "passphrase in the command line of {pid}"
        );
        assert!(
            !environ.windows(needle.len()).any(|w| w == needle),
            "passphrase in the environment of {pid}"
        );
    }
    drop(tls);
    relay.signal(1);
    // The reload's lines are awaited, not a fixed while: under load the master may
    // take longer than any guess to compile and start the next generation, and a
    // SIGTERM before it is done would leave no "reloaded" line to look at.
    relay.await_log("reloaded", Duration::from_secs(10));
    relay.signal(15);
    relay.wait_exit(Duration::from_secs(10)).expect("stopped");
    let log = relay.log_text();
    assert!(log.contains("reloaded"), "{log}");
    assert!(
        !log.contains(harness::PASSPHRASE),
        "the passphrase is in the log:\n{log}"
    );
}

#[test]
fn sigusr1_logs_the_live_state_of_workers_and_remotes() {
    let echo = Echo::start();
    let dead = free_port();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "id = spawnd {{ listen = {{ address = 127.0.0.1 port = {port} }} spawn = {{ servers min = 1 servers max = 1 }} }}\nid = tcprelay {{\n remote = {{ address = 127.0.0.1 port = {dead} weight = 5 }}\n remote = {{ address = 127.0.0.1 port = {} }}\n}}\n",
        echo.port
    );
    let relay = Relay::run_config(dir.path(), &cfg, port);
    // One session held open (it fails over from the refusing remote to the echo).
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"hi").unwrap();
    let mut b = [0u8; 2];
    s.read_exact(&mut b).unwrap();
    relay.signal(10);
    let wanted = format!("127.0.0.1:{} alive, 1 sessions", echo.port);
    relay.await_log(&wanted, Duration::from_secs(5));
    let log = relay.log_text();
    assert!(log.contains("status: generation 1; workers: "), "{log}");
    assert!(
        log.contains(&format!("127.0.0.1:{dead} dead, 0 sessions")),
        "{log}"
    );
    assert!(log.contains("1 sessions, 1 served"), "{log}");
}

#[test]
fn sigterm_to_the_whole_process_group_starts_no_replacements() {
    let echo = Echo::start();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let plan = harness::compile(
        dir.path(),
        "relay",
        &config(
            port,
            echo.port,
            "spawn = { servers min = 2 servers max = 2 }",
        ),
    );
    // A session of its own, as a terminal's Ctrl-C or `kill -- -PGID` would signal.
    let script = format!(
        "exec setsid {} run -f {}",
        harness::bin("tcprelay").display(),
        plan.display()
    );
    let mut relay = Relay::start_shell(dir.path(), &script, port);
    relay.await_workers(2, Duration::from_secs(5));
    let _ = std::process::Command::new("kill")
        .args(["-TERM", "--", &format!("-{}", relay.pid())])
        .status();
    let status = relay.wait_exit(Duration::from_secs(10)).expect("stopped");
    assert!(status.success(), "{status:?}");
    let log = relay.log_text();
    assert_eq!(
        log.matches("started (generation").count(),
        2,
        "workers were started while stopping:\n{log}"
    );
}

#[test]
fn a_worker_started_for_load_is_released_when_the_load_is_gone() {
    let echo = Echo::start();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let plan = harness::compile(
        dir.path(),
        "relay",
        &config(
            port,
            echo.port,
            "spawn = { servers min = 1 servers max = 2 users min = 1 users max = 1 }",
        ),
    );
    let cmd = format!(
        "TCPRELAY_IDLE_RELEASE=1 exec {} run -f {}",
        harness::bin("tcprelay").display(),
        plan.display()
    );
    let relay = Relay::start_shell(dir.path(), &cmd, port);
    relay.await_workers(1, Duration::from_secs(10));
    // One session fills the only worker: the master starts a second.
    let mut held = hold(port);
    let mut back = [0u8; 4];
    relay.await_workers(2, Duration::from_secs(10));
    // Kept while busy: the first worker's session goes on.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(children_of(relay.pid()).len(), 2, "{}", relay.log_text());
    held.write_all(b"more").unwrap();
    held.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"more");
    // The load gone, one worker goes after the idle-release time; servers min stay.
    drop(held);
    relay.await_workers(1, Duration::from_secs(10));
    assert!(
        relay.log_text().contains("releasing it"),
        "{}",
        relay.log_text()
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(children_of(relay.pid()).len(), 1, "servers min = 1 stays");
    assert_eq!(harness::echo_through(port, b"after").unwrap(), b"after");
}

#[test]
fn two_workers_share_a_burst_of_clients() {
    const CLIENTS: usize = 40;
    let echo = Echo::start();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let plan = harness::compile(
        dir.path(),
        "relay",
        &config(
            port,
            echo.port,
            "spawn = { servers min = 2 servers max = 2 users min = 0 }",
        ),
    );
    // A long deferral check: a worker slow to be scheduled on a loaded machine is
    // not taken for a stuck one (which would let the other accept alone).
    let cmd = format!(
        "TCPRELAY_DEFER_CHECK=5000 exec {} run -f {}",
        harness::bin("tcprelay").display(),
        plan.display()
    );
    let relay = Relay::start_shell(dir.path(), &cmd, port);
    let workers = relay.await_workers(2, Duration::from_secs(10));
    let held = |log: &str, pid: i32| -> Option<usize> {
        let line = log
            .lines()
            .rev()
            .find(|l| l.contains(&format!("status: worker {pid}: ")))?;
        let rest = line.split(&format!("status: worker {pid}: ")).nth(1)?;
        rest.split(' ').next()?.parse().ok()
    };
    // Both workers' loops run (they answer SIGUSR1 there, and are on the load board
    // from before their first turn): a worker still starting would leave the other
    // alone with the burst.
    relay.signal(10);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !workers
        .iter()
        .all(|&w| held(&relay.log_text(), w) == Some(0))
    {
        assert!(Instant::now() < deadline, "{}", relay.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
    // All connected before any is served.
    let mut clients: Vec<std::net::TcpStream> = (0..CLIENTS)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let message = format!("client {i:02}");
        c.write_all(message.as_bytes()).unwrap();
        let mut back = [0u8; 9];
        c.read_exact(&mut back).unwrap();
        assert_eq!(&back, message.as_bytes());
    }
    relay.signal(10);
    let deadline = Instant::now() + Duration::from_secs(10);
    let split = loop {
        let log = relay.log_text();
        let split: Vec<usize> = workers
            .iter()
            .map(|&w| held(&log, w).unwrap_or(0))
            .collect();
        if split.iter().sum::<usize>() == CLIENTS || Instant::now() > deadline {
            break split;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        split.iter().sum::<usize>(),
        CLIENTS,
        "{split:?}\n{}",
        relay.log_text()
    );
    // Within the board's margin (2 + a quarter of the lesser): at most 24 against 16.
    assert!(
        split.iter().all(|&n| n >= 16),
        "uneven split between the workers: {split:?}\n{}",
        relay.log_text()
    );
}

/// The backlog of the socket listening on `port`, as `ss` shows it (Send-Q).
fn listen_backlog(port: u16) -> Option<u32> {
    let out = std::process::Command::new("ss")
        .args(["-Hltn", &format!("sport = :{port}")])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace().nth(2)?.parse().ok()
}

#[test]
fn overload_close_and_reset_shed_clients_while_every_worker_is_full() {
    for mode in ["close", "reset"] {
        let echo = Echo::start();
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let cfg = format!(
            "id = spawnd {{\n listen = {{ address = 127.0.0.1 port = {port} backlog = 64 overload backlog = 16 }}\n spawn = {{ servers min = 1 servers max = 1 users min = 1 users max = 1 overload = {mode} }}\n}}\nid = tcprelay {{\n remote = {{ address = 127.0.0.1 port = {} }}\n}}\n",
            echo.port
        );
        let relay = Relay::run_config(dir.path(), &cfg, port);
        relay.await_workers(1, Duration::from_secs(10));
        assert_eq!(listen_backlog(port), Some(64), "{}", relay.log_text());
        // One session fills the only worker, and no other may start.
        let mut held = hold(port);
        let mut back = [0u8; 4];
        relay.await_log("every worker is full", Duration::from_secs(10));
        assert_eq!(listen_backlog(port), Some(16), "overload backlog");
        relay.signal(10);
        relay.await_log("; overloaded (every worker full)", Duration::from_secs(5));
        // A new client is turned away at once: end of file, or a reset.
        let mut turned = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        turned
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut byte = [0u8; 1];
        let outcome = turned.read(&mut byte);
        match mode {
            "close" => assert_eq!(outcome.ok(), Some(0), "{}", relay.log_text()),
            _ => assert_eq!(
                outcome.map_err(|e| e.kind()).err(),
                Some(std::io::ErrorKind::ConnectionReset),
                "{}",
                relay.log_text()
            ),
        }
        // The held session is untouched.
        held.write_all(b"more").unwrap();
        held.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"more");
        // Room again: new clients are served, the backlog is back.
        drop(held);
        relay.await_log("workers have room again", Duration::from_secs(10));
        assert!(
            relay.log_text().contains("(1 connections shed meanwhile)"),
            "{}",
            relay.log_text()
        );
        // The backlog first: the echo's session fills the one worker again, which
        // lowers it until the worker reports room.
        assert_eq!(listen_backlog(port), Some(64));
        assert_eq!(harness::echo_through(port, b"new").unwrap(), b"new");
        // Full again within 10 s: clients are turned away as before, and the log
        // does not repeat the warning (a service at capacity would log two lines
        // per connection). The echo's session filled the worker once more: until
        // the worker's report of room after its close reaches the master, a client
        // is shed, so the holder tries again until it is served.
        let _held = hold_when_room(port);
        let mut turned = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        turned
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let outcome = turned.read(&mut byte);
        assert!(
            matches!(&outcome, Ok(0))
                || matches!(&outcome, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
            "not turned away while full: {outcome:?}"
        );
        let log = relay.log_text();
        assert_eq!(log.matches("every worker is full").count(), 1, "{log}");
    }
}

#[test]
fn a_reload_applies_a_new_backlog_to_a_listener_it_keeps() {
    let echo = Echo::start();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let cfg = |backlog: u32| {
        format!(
            "id = spawnd {{\n listen = {{ address = 127.0.0.1 port = {port} backlog = {backlog} }}\n spawn = {{ servers min = 1 servers max = 1 }}\n}}\nid = tcprelay {{\n remote = {{ address = 127.0.0.1 port = {} }}\n}}\n",
            echo.port
        )
    };
    let relay = Relay::run_config(dir.path(), &cfg(64), port);
    relay.await_workers(1, Duration::from_secs(10));
    assert_eq!(listen_backlog(port), Some(64), "{}", relay.log_text());
    // The same address with another backlog: the socket is kept (nothing queued is
    // lost) and takes the new backlog.
    // Over the plan `run_config` made (dir/relay.plan), which SIGHUP re-reads.
    harness::compile(dir.path(), "relay", &cfg(32));
    relay.signal(1);
    relay.await_log("reloaded (generation 2)", Duration::from_secs(10));
    assert_eq!(listen_backlog(port), Some(32), "{}", relay.log_text());
    assert_eq!(harness::echo_through(port, b"after").unwrap(), b"after");
}

#[test]
fn the_acl_of_the_plan_is_enforced_by_the_workers() {
    let echo = Echo::start();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::run_config(
        dir.path(),
        &config(
            port,
            echo.port,
            "acl = deny 127.0.0.2\nacl = permit 127.0.0.0/8\nspawn = { servers min = 1 servers max = 1 }",
        ),
        port,
    );
    relay.await_workers(1, Duration::from_secs(10));
    assert_eq!(harness::echo_through(port, b"in").unwrap(), b"in");
    // From 127.0.0.2: closed without a byte of reply.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&std::net::SocketAddr::from(([127, 0, 0, 2], 0)).into())
        .unwrap();
    socket
        .connect(&std::net::SocketAddr::from(([127, 0, 0, 1], port)).into())
        .unwrap();
    let mut denied: std::net::TcpStream = socket.into();
    denied
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = denied.write_all(b"out");
    let mut byte = [0u8; 1];
    match denied.read(&mut byte) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("a denied client was served: {other:?}"),
    }
    relay.signal(10);
    relay.await_log("1 denied by the acl", Duration::from_secs(5));
}

/// The children of `pid` that run `name` (/proc/PID/comm).
fn children_named(pid: i32, name: &str) -> Vec<i32> {
    children_of(pid)
        .into_iter()
        .filter(|c| {
            std::fs::read_to_string(format!("/proc/{c}/comm")).is_ok_and(|comm| comm.trim() == name)
        })
        .collect()
}

/// Kills `worker` (SIGKILL) and waits up to 5 s for the master to have exactly one
/// other `tcprelay` child, which it returns (a compile child is not counted).
fn kill_and_await_replacement(relay: &Relay, worker: i32) -> i32 {
    let _ = std::process::Command::new("kill")
        .args(["-9", &worker.to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let [one] = children_named(relay.pid(), "tcprelay")[..] {
            if one != worker {
                return one;
            }
        }
        assert!(
            Instant::now() < deadline,
            "worker {worker} not replaced: {}",
            relay.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A configuration server on loopback: the first request gets `body`, every later
/// one is accepted and never answered (a server that stops answering). Stops
/// when the returned flag is set.
fn config_server_that_stops_answering(body: String) -> (u16, Arc<AtomicBool>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    std::thread::spawn(move || {
        let mut served = false;
        let mut silent = Vec::new();
        while !stopped.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((mut s, _)) if !served => {
                    served = true;
                    s.set_nonblocking(false).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let _ = write!(
                        s,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                }
                Ok((s, _)) => silent.push(s),
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    });
    (port, stop)
}

/// A reload compiles the configuration in a child process while the master goes on:
/// with the configuration's server answering no more (the compiler waits up to 30 s
/// for it), a killed worker is replaced at once, connections are served, and SIGTERM
/// stops the relay at once. The master used to wait for the compile.
#[test]
fn a_reload_whose_configuration_server_stops_answering_leaves_the_master_in_charge() {
    let echo = Echo::start();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let (server, stop) = config_server_that_stops_answering(config(
        port,
        echo.port,
        "spawn = { servers min = 1 servers max = 1 }",
    ));
    let url = format!("http://127.0.0.1:{server}/relay.cfg");
    let mut relay = Relay::start(dir.path(), &["-f", &url], port);
    let worker = relay.await_workers(1, Duration::from_secs(5))[0];
    relay.signal(1);
    relay.await_log(&format!("reload: compiling {url}"), Duration::from_secs(5));
    let compiler = children_named(relay.pid(), "tcprelay-cc");
    assert_eq!(compiler.len(), 1, "the compile runs: {}", relay.log_text());
    let replacement = kill_and_await_replacement(&relay, worker);
    assert!(alive(replacement));
    assert_eq!(
        harness::echo_through(port, b"meanwhile").unwrap(),
        b"meanwhile"
    );
    assert!(
        alive(compiler[0]),
        "the compile is still waiting for its server"
    );
    let asked = Instant::now();
    relay.signal(15);
    let status = relay.wait_exit(Duration::from_secs(5));
    assert!(
        status.is_some_and(|s| s.success()),
        "SIGTERM during the compile: {status:?} after {:?}: {}",
        asked.elapsed(),
        relay.log_text()
    );
    stop.store(true, Ordering::Relaxed);
}

/// A configuration that no longer compiles on SIGHUP: the log says so with the
/// compiler's own diagnostics (they used to go to the master's standard error only,
/// which a daemon has closed, after "the configuration has errors (see above)"), and
/// the running plan serves on.
#[test]
fn a_reload_with_errors_logs_the_diagnostics_and_keeps_serving() {
    let echo = Echo::start();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("relay.cfg");
    std::fs::write(&cfg, config(port, echo.port, "spawn = { servers min = 1 }")).unwrap();
    let relay = Relay::start(dir.path(), &["-f", cfg.to_str().unwrap()], port);
    relay.await_workers(1, Duration::from_secs(5));
    std::fs::write(
        &cfg,
        config(port, echo.port, "spawn = { servers min = 1 }").replace("port = ", "prot = "),
    )
    .unwrap();
    relay.signal(1);
    relay.await_log(
        &format!(
            "reload failed, keeping the running plan: {}: the configuration has errors:",
            cfg.display()
        ),
        Duration::from_secs(10),
    );
    relay.await_log("error[E0003]", Duration::from_secs(1));
    assert!(
        relay.log_text().contains("did you mean `port`?"),
        "the compiler's help reaches the log: {}",
        relay.log_text()
    );
    assert_eq!(harness::echo_through(port, b"still").unwrap(), b"still");
}

/// The resident memory of `pid` in KiB.
fn rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A burst of 2,000 TLS clients that connect and send the start of a ClientHello
/// (or nothing) costs a worker little, and what it cost is returned when they go.
/// Before: about 42 KiB per client (OpenSSL's connection and handshake buffers were
/// made at accept), 84 MB for the burst, and tens of MB kept after it.
#[test]
fn a_burst_of_stalled_tls_clients_is_bounded_and_its_memory_returned() {
    const CLIENTS: usize = 2000;
    harness::raise_open_file_limit();
    let echo = Echo::start();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    harness::make_certs(dir.path());
    let cfg = format!(
        "id = spawnd {{\n listen = {{ address = 127.0.0.1 port = {port} tls = yes }}\n spawn = {{ servers min = 1 servers max = 1 users max = 4000 }}\n}}\n\
         id = tcprelay {{\n remote = {{ address = 127.0.0.1 port = {} }}\n tls cert-file = {}\n tls key-file = {}\n}}\n",
        echo.port,
        dir.path().join("cert.pem").display(),
        dir.path().join("key.pem").display()
    );
    let relay = Relay::run_config(dir.path(), &cfg, port);
    let worker = relay.await_workers(1, Duration::from_secs(5))[0];
    // A worker just forked is still building its TLS context (about 6 MB): the
    // figure before the burst is taken once its memory has settled, or a slow start
    // reads as memory the burst kept (seen in CI: 2,560 KiB before, 11,672 after,
    // where a settled worker holds about 9,000 before and after alike).
    let before = settled_rss_kib(worker);
    let hello: &[u8] = &[
        0x16, 0x03, 0x01, 0x00, 0xc8, 0x01, 0x00, 0x00, 0xc4, 0x03, 0x03,
    ];
    let clients: Vec<std::net::TcpStream> = (0..CLIENTS)
        .map(|i| {
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            if i % 2 == 0 {
                s.write_all(hello).unwrap();
            }
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let held = rss_kib(worker);
    drop(clients);
    let dropped = Instant::now();
    let deadline = dropped + Duration::from_secs(5);
    let mut after = rss_kib(worker);
    while after > before + 4096 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        after = rss_kib(worker);
    }
    eprintln!(
        "worker RSS: {before} KiB before, {held} KiB with {CLIENTS} stalled clients, {after} KiB {:?} after they went",
        dropped.elapsed()
    );
    // 256 handshakes at once at most (about 45 KiB each), the rest wait in the
    // kernel: about 12 MB, against 84 MB before.
    assert!(
        held < before + 24 * 1024,
        "{CLIENTS} stalled TLS clients cost {} KiB",
        held - before
    );
    assert!(
        after <= before + 4096,
        "the burst's memory was not returned: {before} KiB before, {after} KiB after"
    );
}

/// A process's RSS once it has stayed the same over three readings 100 ms apart (at
/// most 5 s of readings).
fn settled_rss_kib(pid: i32) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = rss_kib(pid);
    let mut same = 0;
    while same < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        let now = rss_kib(pid);
        same = if now == last { same + 1 } else { 0 };
        last = now;
    }
    last
}

/// With the default `users max` and `servers max`, 480 connections that said
/// nothing stopped every new client (60 sessions a worker, 8 workers). A worker now
/// takes as many as its open-file limit allows, and the `silent timeout` closes
/// connections through which nothing passes.
#[test]
fn a_default_configuration_serves_beside_six_hundred_silent_connections() {
    harness::raise_open_file_limit();
    let echo = Echo::start();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::run_config(dir.path(), &config(port, echo.port, ""), port);
    let silent: Vec<std::net::TcpStream> = (0..600)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    let started = Instant::now();
    assert_eq!(
        harness::echo_through(port, b"served").unwrap(),
        b"served",
        "{}",
        relay.log_text()
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(silent);
}

/// `silent timeout = 1`: a connection through which nothing passes is closed after
/// a second, one that spoke once stays.
#[test]
fn the_silent_timeout_closes_connections_that_say_nothing() {
    let echo = Echo::start();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::run_config(
        dir.path(),
        &harness::config(port, &[(echo.port, 1)], "", "silent timeout = 1"),
        port,
    );
    let mut silent = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let spoke = hold(port);
    let opened = Instant::now();
    let mut buf = [0u8; 16];
    assert_eq!(silent.read(&mut buf).unwrap_or(0), 0, "closed without data");
    assert!(
        opened.elapsed() < Duration::from_secs(5),
        "closed after {:?}: {}",
        opened.elapsed(),
        relay.log_text()
    );
    std::thread::sleep(Duration::from_millis(1500));
    let mut spoke = spoke;
    spoke.write_all(b"more").unwrap();
    let mut back = [0u8; 4];
    spoke.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"more");
}

/// A plan that is not a regular file is refused at once, at start and on SIGHUP (it
/// was read until memory ran out for /dev/zero, and a FIFO blocked the master
/// forever: no dead worker replaced, SIGTERM ignored).
#[test]
fn a_plan_that_is_a_device_or_a_fifo_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.plan");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    for (plan, what) in [
        (std::path::Path::new("/dev/zero"), "a character device"),
        (fifo.as_path(), "a FIFO"),
    ] {
        let tcprelay = harness::bin("tcprelay");
        let started = Instant::now();
        let out = std::process::Command::new(tcprelay)
            .args(["run", "-f"])
            .arg(plan)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        // A file that cannot be read: 2, as tcprelay-cc.
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.trim().starts_with(&format!(
                "tcprelay: cannot read {}: it is {what}",
                plan.display()
            )) && err.trim().ends_with("not a regular file"),
            "{err}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }
    // On SIGHUP: the plan replaced by a link to /dev/zero, then by the FIFO.
    let echo = Echo::start();
    let port = free_port();
    let relay = Relay::run_config(
        dir.path(),
        &config(port, echo.port, "spawn = { servers min = 1 }"),
        port,
    );
    let plan = dir.path().join("relay.plan");
    for (target, what) in [
        ("/dev/zero", "it is a character device"),
        (fifo.to_str().unwrap(), "it is a FIFO"),
    ] {
        std::fs::remove_file(&plan).unwrap();
        std::os::unix::fs::symlink(target, &plan).unwrap();
        relay.signal(1);
        relay.await_log(
            &format!(
                "reload failed, keeping the running plan: cannot read {}: {what}",
                plan.display()
            ),
            Duration::from_secs(5),
        );
    }
    let worker = relay.await_workers(1, Duration::from_secs(5))[0];
    kill_and_await_replacement(&relay, worker);
    assert_eq!(harness::echo_through(port, b"still").unwrap(), b"still");
}

/// The severities as the log lines name them, in syslog's order (their number is
/// the `<N>` of a journal line).
const LEVELS: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

/// A relay with one worker that has logged a line of its own (its SIGUSR1 status),
/// and the generation the master says it started that worker in. The log file is
/// made before the relay starts (to learn its device and inode), with `env` set.
fn relay_with_a_worker_line(
    dir: &std::path::Path,
    env: impl FnOnce(&std::fs::Metadata) -> String,
) -> (Relay, i32, String) {
    let echo = Echo::start();
    let port = free_port();
    let plan = harness::compile(
        dir,
        "relay",
        &config(
            port,
            echo.port,
            "spawn = { servers min = 1 servers max = 1 }",
        ),
    );
    // The harness opens the same file again (truncating it: the inode stays).
    let log = std::fs::File::create(dir.join("tcprelay.log")).unwrap();
    let script = format!(
        "{} exec {} run -f {}",
        env(&log.metadata().unwrap()),
        harness::bin("tcprelay").display(),
        plan.display()
    );
    let relay = Relay::start_shell(dir, &script, port);
    let worker = relay.await_workers(1, Duration::from_secs(10))[0];
    relay.signal(10);
    relay.await_log(
        &format!("status: worker {worker}: "),
        Duration::from_secs(10),
    );
    let log = relay.log_text();
    let started = format!("worker {worker} started (generation ");
    let generation = log
        .split(&started)
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("no {started:?} in the log:\n{log}"))
        .to_string();
    drop(echo);
    (relay, worker, generation)
}

/// Splits `line` (after its timestamp or `<N>`) into the process it names
/// (`master` or `worker PID gen N`) and its severity; `None` for a line that names
/// neither.
fn origin_and_level(line: &str) -> Option<(String, &'static str)> {
    let (origin, rest) = if let Some(rest) = line.strip_prefix("master ") {
        ("master".to_string(), rest)
    } else {
        let rest = line.strip_prefix("worker ")?;
        let mut words = rest.splitn(4, ' ');
        let (pid, gen, generation, rest) =
            (words.next()?, words.next()?, words.next()?, words.next()?);
        pid.parse::<u32>().ok()?;
        generation.parse::<u64>().ok()?;
        (gen == "gen").then_some(())?;
        (format!("worker {pid} gen {generation}"), rest)
    };
    let level = LEVELS
        .into_iter()
        .find(|l| rest.starts_with(&format!("{l}: ")))?;
    Some((origin, level))
}

/// On standard error every line starts with its time, RFC 3339 in UTC with
/// milliseconds (`2026-12-01T22:15:21.123Z`), and names the process that wrote it:
/// `master`, or `worker PID gen N` with the generation the master started it in.
/// `JOURNAL_STREAM` set for another file (standard error is not the journal) changes
/// nothing.
#[test]
fn stderr_lines_start_with_a_utc_timestamp_and_name_their_process() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = std::fs::File::create(dir.path().join("elsewhere")).unwrap();
    let elsewhere = {
        use std::os::unix::fs::MetadataExt;
        let m = elsewhere.metadata().unwrap();
        format!("JOURNAL_STREAM={}:{}", m.dev(), m.ino())
    };
    let (relay, worker, generation) = relay_with_a_worker_line(dir.path(), |_| elsewhere);
    let log = relay.log_text();
    let shape = "dddd-dd-ddTdd:dd:dd.dddZ ";
    let mut origins = Vec::new();
    for line in log.lines() {
        let (stamp, rest) = line.split_at_checked(shape.len()).unwrap_or((line, ""));
        let like = stamp.chars().zip(shape.chars()).all(|(c, s)| {
            if s == 'd' {
                c.is_ascii_digit()
            } else {
                c == s
            }
        });
        assert!(like && stamp.len() == shape.len(), "{line:?} in:\n{log}");
        let month: u32 = stamp[5..7].parse().unwrap();
        let hour: u32 = stamp[11..13].parse().unwrap();
        assert!((1..=12).contains(&month) && hour < 24, "{line:?}");
        let (origin, _) = origin_and_level(rest).unwrap_or_else(|| panic!("{line:?} in:\n{log}"));
        origins.push((origin, rest.to_string()));
    }
    assert!(
        origins
            .iter()
            .any(|(o, rest)| o == "master" && rest.starts_with("master info: event mechanism: ")),
        "{log}"
    );
    let me = format!("worker {worker} gen {generation}");
    assert!(
        origins.iter().any(|(o, rest)| *o == me
            && rest.starts_with(&format!("{me} notice: status: worker {worker}: "))),
        "no status line of {me} in:\n{log}"
    );
}

/// With standard error connected to the journal (`JOURNAL_STREAM` names its device
/// and inode, as systemd sets it), lines carry no timestamp (the journal stamps
/// them) but start with the `<N>` syslog priority journald reads: `<6>` for info
/// lines, `<5>` for notices, the master's and the workers' alike.
#[test]
fn journal_lines_start_with_their_syslog_priority_and_no_timestamp() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let (relay, worker, generation) = relay_with_a_worker_line(dir.path(), |m| {
        format!("JOURNAL_STREAM={}:{}", m.dev(), m.ino())
    });
    let log = relay.log_text();
    for line in log.lines() {
        let (priority, rest) = line
            .strip_prefix('<')
            .and_then(|l| l.split_once('>'))
            .unwrap_or_else(|| panic!("no <N> at the start of {line:?} in:\n{log}"));
        let (_, level) = origin_and_level(rest).unwrap_or_else(|| panic!("{line:?} in:\n{log}"));
        let number = LEVELS.iter().position(|l| *l == level).unwrap();
        assert_eq!(priority, number.to_string(), "{line:?}");
    }
    assert!(log.contains("<6>master info: event mechanism: "), "{log}");
    let me = format!("worker {worker} gen {generation}");
    assert!(
        log.contains(&format!("<5>{me} notice: status: worker {worker}: ")),
        "{log}"
    );
}
