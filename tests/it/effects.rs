//! The runtime effects of the family's directives (issue 16), on the real relay:
//! process titles as `ps` reads them, `bind retry delay` with a port the test
//! holds, `tcp bufsize` and `dscp` on both legs as `ss` shows the relay's sockets,
//! and a listener's TLS versions and `tls = auto` against `openssl s_client` and a
//! plain client. (A Unix socket's owner and group and `vrf` are tested where they
//! are set, `listen::tests`: they need root and a network namespace.)

use crate::harness::{self, compile, echo_through, free_port, Echo, Relay};
use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

/// A process's title as `ps` shows it (its `/proc/PID/cmdline`, NULs as spaces,
/// trimmed).
fn title(pid: i32) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let text: String = String::from_utf8_lossy(&raw).replace('\0', " ");
    text.trim().to_string()
}

fn ps_args(pid: i32) -> String {
    let out = Command::new("ps")
        .args(["-o", "args=", "-p", &pid.to_string()])
        .output()
        .expect("ps");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn wait_for(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `plan` in the foreground, which must fail to start (exit 1): its
/// standard error.
fn start_fails(plan: &std::path::Path) -> String {
    let out = Command::new(harness::bin("tcprelay"))
        .args(["run", "-f", plan.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The master's and the workers' titles name their role and generation; a reload
/// moves both to the next generation; `proctitle` replaces the prefix. The short name
/// (`/proc/PID/comm`) stays `tcprelay`.
#[test]
fn process_titles_name_the_master_the_workers_and_their_generation() {
    let dir = tempfile::tempdir().unwrap();
    let echo = Echo::start();
    let port = free_port();
    let cfg = harness::config(
        port,
        &[(echo.port, 1)],
        "    spawn = { servers min = 2 servers max = 2 }",
        "",
    );
    let relay = Relay::run_config(dir.path(), &cfg, port);
    let workers = relay.await_workers(2, Duration::from_secs(10));
    assert_eq!(title(relay.pid()), "tcprelay: master gen 1");
    assert_eq!(ps_args(relay.pid()), "tcprelay: master gen 1");
    for w in &workers {
        assert_eq!(ps_args(*w), "tcprelay: worker gen 1");
    }
    // The short name stays the program's, for `killall tcprelay` and `pgrep -x`.
    for pid in std::iter::once(relay.pid()).chain(workers.iter().copied()) {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
        assert_eq!(comm.trim(), "tcprelay", "pid {pid}");
    }
    relay.signal(1);
    relay.await_log("reloaded (generation 2)", Duration::from_secs(10));
    wait_for("the old workers to go", Duration::from_secs(10), || {
        harness::children_of(relay.pid())
            .iter()
            .all(|w| !workers.contains(w))
    });
    assert_eq!(ps_args(relay.pid()), "tcprelay: master gen 2");
    for w in relay.await_workers(2, Duration::from_secs(10)) {
        assert_eq!(ps_args(w), "tcprelay: worker gen 2");
    }
    drop(relay);
    let plan = compile(dir.path(), "titled", &format!("proctitle = edge\n{cfg}"));
    let relay = Relay::start(dir.path(), &["run", "-f", plan.to_str().unwrap()], port);
    let workers = relay.await_workers(2, Duration::from_secs(10));
    assert_eq!(ps_args(relay.pid()), "edge: master gen 1");
    assert_eq!(ps_args(workers[0]), "edge: worker gen 1");
}

/// `bind retry delay`: a listener whose port is held by the test does not stop the
/// relay, which serves on its other listener, says once that it waits, and binds it
/// within the delay once the port is free (new workers serve it); a reload that
/// adds a held port succeeds the same way. Without the delay, the start fails.
#[test]
fn a_listener_whose_port_is_taken_is_bound_once_it_is_free() {
    let dir = tempfile::tempdir().unwrap();
    let echo = Echo::start();
    let port = free_port();
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let held = holder.local_addr().unwrap().port();
    let cfg = |extra: &str| {
        harness::config(
            port,
            &[(echo.port, 1)],
            &format!("    bind retry delay = 1\n    listen = {{ address = 127.0.0.1 port = {held} }}\n{extra}"),
            "",
        )
    };
    let relay = Relay::run_config(dir.path(), &cfg(""), port);
    relay.await_log(
        &format!("cannot listen on 127.0.0.1:{held}: "),
        Duration::from_secs(5),
    );
    assert_eq!(echo_through(port, b"first").unwrap(), b"first");
    // Still held: tried again, not logged again.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        relay.log_text().matches("cannot listen on").count(),
        1,
        "{}",
        relay.log_text()
    );
    drop(holder);
    relay.await_log(
        &format!("listening on 127.0.0.1:{held} after "),
        Duration::from_secs(5),
    );
    relay.await_log("generation 2 takes the listeners", Duration::from_secs(5));
    assert_eq!(echo_through(held, b"late").unwrap(), b"late");
    assert_eq!(echo_through(port, b"still").unwrap(), b"still");
    // A reload that adds a held port: it succeeds and waits for it.
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let third = holder.local_addr().unwrap().port();
    let plan = compile(
        dir.path(),
        "relay",
        &cfg(&format!(
            "    listen = {{ address = 127.0.0.1 port = {third} }}"
        )),
    );
    assert!(plan.ends_with("relay.plan"));
    relay.signal(1);
    relay.await_log("reloaded (generation 3)", Duration::from_secs(10));
    relay.await_log(
        &format!("cannot listen on 127.0.0.1:{third}: "),
        Duration::from_secs(5),
    );
    drop(holder);
    relay.await_log(
        &format!("listening on 127.0.0.1:{third} after "),
        Duration::from_secs(5),
    );
    assert_eq!(echo_through(third, b"third").unwrap(), b"third");
    drop(relay);
    // Without the delay: the start fails, naming the address.
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let held = holder.local_addr().unwrap().port();
    let strict = harness::config(
        port,
        &[(echo.port, 1)],
        &format!("    listen = {{ address = 127.0.0.1 port = {held} }}"),
        "",
    );
    let err = start_fails(&compile(dir.path(), "strict", &strict));
    assert!(
        err.contains(&format!("cannot listen on 127.0.0.1:{held}")),
        "{err}"
    );
}

/// The lines `ss` prints for the TCP sockets of this namespace matching `filter`,
/// with memory (`skmem`) and TOS.
fn ss(filter: &str) -> String {
    let out = Command::new("ss")
        .args(["-tnmiH", "--tos", "state", "established", filter])
        .output()
        .expect("ss");
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// `tcp bufsize = 50000` and a listener's `dscp = 0x0a`: both sockets of a relayed connection, the
/// client's (accepted) and the remote's, have the buffer sizes (`rb`, `tb`: the
/// kernel doubles the value) and the TOS byte (DSCP << 2) `ss` reads from the
/// kernel; a relay without them leaves both at the kernel's.
#[test]
fn both_legs_have_the_buffer_sizes_and_the_dscp() {
    let dir = tempfile::tempdir().unwrap();
    let echo = Echo::start();
    let port = free_port();
    let marked = format!(
        "id = spawnd {{\n    tcp bufsize = 50000\n    listen = {{ address = 127.0.0.1 port = {port} dscp = 0x0a }}\n}}\n\
         id = tcprelay {{\n    remote = {{ address = 127.0.0.1 port = {} }}\n}}\n",
        echo.port
    );
    let plan = compile(dir.path(), "marked", &marked);
    let relay = Relay::start(dir.path(), &["run", "-f", plan.to_str().unwrap()], port);
    let mut client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    client.write_all(b"ping").unwrap();
    let mut back = [0u8; 4];
    client.read_exact(&mut back).unwrap();
    // The relay's accepted socket: local port `port`.
    let accepted = ss(&format!("( sport = :{port} )"));
    // The relay's remote socket: to the echo's port (the echo's own socket has it
    // as its local port).
    let remote = ss(&format!("( dport = :{} )", echo.port));
    for (leg, text) in [("client", &accepted), ("remote", &remote)] {
        assert!(
            text.contains("rb100000,") && text.contains("tb100000,"),
            "{leg}: {text}"
        );
        assert!(text.contains("tos:0x28"), "{leg}: {text}");
    }
    drop((client, relay));
    let plain = compile(
        dir.path(),
        "plain",
        &harness::config(port, &[(echo.port, 1)], "", ""),
    );
    let relay = Relay::start(dir.path(), &["run", "-f", plain.to_str().unwrap()], port);
    let mut client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    client.write_all(b"ping").unwrap();
    client.read_exact(&mut back).unwrap();
    let accepted = ss(&format!("( sport = :{port} )"));
    assert!(
        !accepted.contains("rb100000,") && !accepted.contains("tos:0x28"),
        "{accepted}"
    );
    drop(relay);
}

/// Runs `openssl s_client` with `version` (`-tls1_2`, `-tls1_3`) against
/// `127.0.0.1:port`; whether the handshake succeeded, and what it printed.
fn s_client(port: u16, version: &str, certs: &std::path::Path) -> (bool, String) {
    let mut child = Command::new("openssl")
        .args([
            "s_client",
            version,
            "-connect",
            &format!("127.0.0.1:{port}"),
        ])
        .args([
            "-CAfile",
            certs.join("cert.pem").to_str().unwrap(),
            "-verify_return_error",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("openssl s_client");
    // Closing its input ends the session once the handshake is done.
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("s_client");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // A refused handshake still prints a session, with no cipher.
    let done = out.status.success()
        && !text.contains("Cipher is (NONE)")
        && text.contains("Verify return code: 0 (ok)");
    (done, text)
}

/// A listener's TLS versions, with `openssl s_client`: a TLSv1.3 listener refuses
/// `-tls1_2` and takes `-tls1_3`, a TLSv1.2 one the other way round; `tls = auto`
/// relays a plain client's bytes and still terminates TLS.
#[test]
fn a_listener_speaks_its_tls_versions_and_auto_lets_plain_clients_through() {
    let dir = tempfile::tempdir().unwrap();
    harness::make_certs(dir.path());
    let echo = Echo::start();
    let port = free_port();
    let relay = [
        format!(
            "    remote = {{ address = 127.0.0.1 port = {} }}",
            echo.port
        ),
        format!(
            "    tls cert-file = {}",
            dir.path().join("cert.pem").display()
        ),
        format!(
            "    tls key-file = {}",
            dir.path().join("enc-key.pem").display()
        ),
        format!("    tls passphrase = \"{}\"", harness::PASSPHRASE),
    ];
    let cfg = |tls: &str| {
        format!(
            "id = spawnd {{\n    listen = {{ address = 127.0.0.1 port = {port} tls = {tls} }}\n}}\n\
             id = tcprelay {{\n{}\n}}\n",
            relay.join("\n")
        )
    };
    for (name, ok, refused) in [
        ("TLSv1.3", "-tls1_3", "-tls1_2"),
        ("TLSv1.2", "-tls1_2", "-tls1_3"),
    ] {
        let plan = compile(dir.path(), name, &cfg(name));
        let relay = Relay::start(dir.path(), &["run", "-f", plan.to_str().unwrap()], port);
        let (done, text) = s_client(port, ok, dir.path());
        assert!(done, "{name} listener, {ok}: {text}");
        // The handshake's line (the session block with `Protocol  :` is printed only
        // once a TLS 1.3 ticket arrived, which closing at once may precede).
        assert!(text.contains(&format!("New, {name}, Cipher is")), "{text}");
        let (done, text) = s_client(port, refused, dir.path());
        assert!(!done, "{name} listener, {refused}: {text}");
        drop(relay);
    }
    let plan = compile(dir.path(), "auto", &cfg("auto"));
    let relay = Relay::start(dir.path(), &["run", "-f", plan.to_str().unwrap()], port);
    assert_eq!(echo_through(port, b"plain text").unwrap(), b"plain text");
    let (done, text) = s_client(port, "-tls1_3", dir.path());
    assert!(done, "auto, TLS client: {text}");
    drop(relay);
}

/// `debug = NET` (the plan's debug mask, any bit set): the master and the workers log
/// at debug level, as `-d` makes them; without it, no debug line.
#[test]
fn a_debug_mask_gives_debug_lines_in_the_master_and_the_workers() {
    let dir = tempfile::tempdir().unwrap();
    let echo = Echo::start();
    let port = free_port();
    let one = "    spawn = { servers min = 1 servers max = 1 }";
    let cfg = harness::config(port, &[(echo.port, 1)], one, "");
    let quiet = compile(dir.path(), "quiet", &cfg);
    let relay = Relay::start(dir.path(), &["run", "-f", quiet.to_str().unwrap()], port);
    relay.await_workers(1, Duration::from_secs(10));
    assert_eq!(echo_through(port, b"quiet").unwrap(), b"quiet");
    drop(relay);
    let log = std::fs::read_to_string(dir.path().join("tcprelay.log")).unwrap();
    assert!(!log.contains(" debug: "), "{log}");
    let loud = compile(dir.path(), "loud", &format!("debug = NET\n{cfg}"));
    let relay = Relay::start(dir.path(), &["run", "-f", loud.to_str().unwrap()], port);
    relay.await_workers(1, Duration::from_secs(10));
    assert_eq!(echo_through(port, b"loud").unwrap(), b"loud");
    relay.await_log("master debug: open file limit: ", Duration::from_secs(5));
    relay.await_log(": event mechanism: ", Duration::from_secs(5));
    let log = relay.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains(" gen 1 debug: ") && l.contains("session 1: client")),
        "{log}"
    );
}

/// From a configuration: a Unix listener's `userid`/`groupid` own its socket file
/// (`stat`, as root), and a `vrf` naming no device fails the start saying so.
#[test]
fn a_unix_listeners_owner_and_a_missing_vrf_device_from_a_configuration() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let echo = Echo::start();
    let port = free_port();
    let sock = dir.path().join("front.sock");
    let cfg = harness::config(
        port,
        &[(echo.port, 1)],
        &format!(
            "    listen = {{ path = {} mode = 0660 userid = nobody groupid = daemon }}",
            sock.display()
        ),
        "",
    );
    if std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
    {
        let relay = Relay::run_config(dir.path(), &cfg, port);
        let meta = std::fs::metadata(&sock).unwrap();
        assert_eq!(
            (meta.uid(), meta.gid(), meta.mode() & 0o777),
            (65534, 1, 0o660)
        );
        drop(relay);
    } else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs the tests as root"
        );
    }
    let cfg = format!(
        "id = spawnd {{\n    listen = {{ address = 127.0.0.1 port = {port} vrf = nosuchdev0 }}\n}}\n\
         id = tcprelay {{\n    remote = {{ address = 127.0.0.1 port = {} }}\n}}\n",
        echo.port
    );
    let err = start_fails(&compile(dir.path(), "vrf", &cfg));
    let last = err.lines().last().unwrap_or_default();
    assert_eq!(
        last,
        format!("tcprelay: cannot listen on 127.0.0.1:{port}: vrf nosuchdev0: there is no network device of that name"),
        "{err}"
    );
}
