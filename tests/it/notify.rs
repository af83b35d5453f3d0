//! systemd's `Type=notify` protocol, spoken by the real `tcprelay` to a Unix datagram
//! socket the test binds (a path, or an abstract name) and names in `NOTIFY_SOCKET`:
//! `READY=1` once the workers are forked, `RELOADING=1` then `READY=1` around every
//! reload (good or failed), `STOPPING=1` on SIGTERM. Bounded waits, loopback only.

use crate::harness::{self, children_of, free_port, Echo, Relay};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::Duration;

/// How long a message may take (a reload compiles the configuration first).
const WAIT: Duration = Duration::from_secs(10);

fn config(port: u16, backend: u16, spawnd: &str) -> String {
    harness::config(
        port,
        &[(backend, 1)],
        &format!("spawn = {{ servers min = 1 }}\n{spawnd}"),
        "",
    )
}

/// The next datagram on `socket`, as text; fails the test after [`WAIT`].
fn receive(socket: &UnixDatagram, waiting_for: &str) -> String {
    socket.set_read_timeout(Some(WAIT)).expect("read timeout");
    let mut buf = [0u8; 4096];
    let n = socket
        .recv(&mut buf)
        .unwrap_or_else(|e| panic!("no {waiting_for} notification: {e}"));
    String::from_utf8(buf[..n].to_vec()).expect("a UTF-8 notification")
}

/// The value of `KEY=` in a notification.
fn field<'a>(message: &'a str, key: &str) -> Option<&'a str> {
    message
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
}

/// `CLOCK_MONOTONIC` in microseconds, as the relay should report it.
fn monotonic_usec() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes a valid timespec through a valid pointer.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    assert_eq!(rc, 0, "clock_gettime");
    now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1_000
}

/// A `tcprelay-cc` wrapper in `dir` that records the environment of every compile
/// in `dir/cc-env.PID`, then runs the real compiler.
fn recording_compiler(dir: &Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let script = dir.join("cc-recording");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nenv > '{}/cc-env.'$$\nexec '{}' \"$@\"\n",
            dir.display(),
            harness::bin("tcprelay-cc").display()
        ),
    )
    .expect("write the wrapper");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    script
}

/// Starts the relay on a configuration file with `NOTIFY_SOCKET=address` and
/// checks every notification of a start, a good reload, a failed reload and a stop,
/// received on `socket`.
fn notifies_start_reloads_and_stop(socket: &UnixDatagram, address: &str) {
    let echo = Echo::start();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("relay.cfg");
    std::fs::write(&cfg, config(port, echo.port, "")).unwrap();
    let compiler = recording_compiler(dir.path());
    let mut relay = Relay::start_shell(
        dir.path(),
        &format!(
            "NOTIFY_SOCKET='{address}' TCPRELAY_CC='{}' exec '{}' -f '{}'",
            compiler.display(),
            harness::bin("tcprelay").display(),
            cfg.display()
        ),
        port,
    );
    let pid = relay.pid();

    let ready = receive(socket, "READY=1 at start");
    assert_eq!(field(&ready, "READY"), Some("1"), "{ready:?}");
    assert_eq!(
        field(&ready, "MAINPID"),
        Some(&*pid.to_string()),
        "{ready:?}"
    );
    let status = field(&ready, "STATUS").unwrap_or_default();
    assert!(
        status.starts_with(&format!("generation 1: listening on 127.0.0.1:{port};")),
        "{ready:?}"
    );
    // Ready means served: the worker was forked before the message was sent.
    assert_eq!(children_of(pid).len(), 1, "{ready:?}: {}", relay.log_text());
    assert_eq!(harness::echo_through(port, b"ready").unwrap(), b"ready");

    // A good reload: RELOADING=1 stamped with the monotonic clock, then READY=1.
    let before = monotonic_usec();
    relay.signal(1);
    let reloading = receive(socket, "RELOADING=1");
    let after = monotonic_usec();
    assert_eq!(field(&reloading, "RELOADING"), Some("1"), "{reloading:?}");
    let usec: u64 = field(&reloading, "MONOTONIC_USEC")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no MONOTONIC_USEC in {reloading:?}"));
    assert!(
        before <= usec && usec <= after,
        "MONOTONIC_USEC={usec} outside {before}..{after}"
    );
    let reloaded = receive(socket, "READY=1 after the reload");
    assert_eq!(field(&reloaded, "READY"), Some("1"), "{reloaded:?}");
    assert_eq!(
        field(&reloaded, "MAINPID"),
        Some(&*pid.to_string()),
        "{reloaded:?}"
    );
    assert!(
        field(&reloaded, "STATUS").is_some_and(|s| s.starts_with("reloaded: generation 2; ")),
        "{reloaded:?}"
    );

    // A reload that fails also ends the reloading state, saying so.
    std::fs::write(
        &cfg,
        config(port, echo.port, "").replace("port = ", "prot = "),
    )
    .unwrap();
    relay.signal(1);
    let reloading = receive(socket, "RELOADING=1 of the broken reload");
    assert_eq!(field(&reloading, "RELOADING"), Some("1"), "{reloading:?}");
    let failed = receive(socket, "READY=1 after the failed reload");
    assert_eq!(field(&failed, "READY"), Some("1"), "{failed:?}");
    let status = field(&failed, "STATUS").unwrap_or_default();
    assert!(
        status.starts_with("reload failed: ")
            && status.contains("the configuration has errors")
            && status.ends_with("; still serving generation 2"),
        "{failed:?}"
    );
    assert_eq!(harness::echo_through(port, b"still").unwrap(), b"still");

    // The master took the variable out of the environment its children inherit: no
    // compile (at start, on each reload) saw it.
    let envs: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("cc-env."))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    assert!(envs.len() >= 3, "{} compiles recorded", envs.len());
    for env in &envs {
        assert!(
            env.contains("TCPRELAY_CC="),
            "a recorded environment: {env}"
        );
        assert!(
            !env.contains("NOTIFY_SOCKET="),
            "a compiler inherited it: {env}"
        );
    }

    relay.signal(15);
    let stopping = receive(socket, "STOPPING=1");
    assert_eq!(field(&stopping, "STOPPING"), Some("1"), "{stopping:?}");
    let exit = relay.wait_exit(WAIT).expect("the relay stops");
    assert!(exit.success(), "{exit}: {}", relay.log_text());
    // Nothing more: one message per event.
    socket.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 4096];
    let extra = socket.recv(&mut buf).map(|n| buf[..n].to_vec());
    assert!(extra.is_err(), "an extra notification: {extra:?}");
}

#[test]
fn type_notify_start_reloads_and_stop_are_reported_on_a_socket_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
    notifies_start_reloads_and_stop(&socket, path.to_str().expect("UTF-8 path"));
}

#[test]
fn type_notify_start_reloads_and_stop_are_reported_on_an_abstract_socket() {
    use std::os::linux::net::SocketAddrExt;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let name = format!("tcprelay-test-notify-{}-{nanos}", std::process::id());
    let address = std::os::unix::net::SocketAddr::from_abstract_name(&name).unwrap();
    let socket = UnixDatagram::bind_addr(&address).expect("bind the abstract notify socket");
    notifies_start_reloads_and_stop(&socket, &format!("@{name}"));
}

/// `background = yes`: the process systemd started exits once detached, and the
/// pid in `READY=1` is the daemon's (the one in its pidfile), which goes on serving
/// and says `STOPPING=1` on SIGTERM.
#[test]
fn type_notify_ready_of_a_daemon_names_the_daemons_pid() {
    let echo = Echo::start();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
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
    let mut started = std::process::Command::new(harness::bin("tcprelay"))
        .args(["run", plan.to_str().unwrap()])
        .env("NOTIFY_SOCKET", &path)
        .spawn()
        .expect("tcprelay runs");
    let first = started.id() as i32;
    let ready = receive(&socket, "READY=1 of the daemon");
    // Stops the daemon even if an assertion fails.
    struct Daemon(i32);
    impl Drop for Daemon {
        fn drop(&mut self) {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &self.0.to_string()])
                .status();
        }
    }
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .expect("the pidfile is written before READY=1");
    let daemon = Daemon(pid);
    assert!(started.wait().expect("reaped").success());
    assert_ne!(pid, first, "the daemon is another process");
    assert_eq!(field(&ready, "READY"), Some("1"), "{ready:?}");
    assert_eq!(
        field(&ready, "MAINPID"),
        Some(&*pid.to_string()),
        "{ready:?}"
    );
    assert_eq!(harness::echo_through(port, b"daemon").unwrap(), b"daemon");
    drop(daemon);
    let stopping = receive(&socket, "STOPPING=1 of the daemon");
    assert_eq!(field(&stopping, "STOPPING"), Some("1"), "{stopping:?}");
    let deadline = std::time::Instant::now() + WAIT;
    while harness::alive(pid) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if harness::alive(pid) {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
        panic!("the daemon did not stop on SIGTERM");
    }
}
