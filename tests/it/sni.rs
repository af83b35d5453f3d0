//! Routing by SNI (docs/sni.md) through the real binaries: `openssl s_server`
//! backends with distinct certificates made at test time, `openssl s_client
//! -servername` and an OpenSSL client of this process through the relay, and raw
//! clients that send hand-made ClientHellos (`tcprelay::sni::example`) split,
//! large, over the cap, or not TLS at all. Loopback only, ports chosen by the OS,
//! every process stopped when its test ends.

use crate::harness::{self, free_port, make_named_cert, Echo, Relay, Server};
use openssl::ssl::{SslConnector, SslMethod, SslStream, SslVerifyMode};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tcprelay::sni::example;

const WITHIN: Duration = Duration::from_secs(10);

/// `openssl s_server -rev` on `127.0.0.1` with the certificate `dir/STEM.pem`.
fn s_server(dir: &Path, stem: &str) -> Server {
    harness::openssl_s_server(
        &dir.join(format!("{stem}.pem")),
        &dir.join(format!("{stem}-key.pem")),
        &[],
    )
}

/// A plain backend that says `name` and a newline to each connection, then
/// echoes what it gets until end of file.
struct Named {
    port: u16,
}

fn named(name: &'static str) -> Named {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
                let _ = stream.write_all(format!("{name}\n").as_bytes());
                let _ = std::io::copy(&mut stream.try_clone().unwrap(), &mut stream);
                let _ = stream.shutdown(Shutdown::Write);
            });
        }
    });
    Named { port }
}

/// A relay compiled from `relay_section` with `listens` (each a `listen` block's
/// inside), one worker, JSON records and its control socket in `dir`.
fn relay(dir: &Path, listens: &[String], relay_section: &str, env: &str) -> Relay {
    let listens: String = listens
        .iter()
        .map(|l| format!("    listen = {{ {l} }}\n"))
        .collect();
    let cfg = format!(
        "id = spawnd {{\n{listens}    spawn = {{ servers min = 1 servers max = 1 }}\n    control = {{ path = {} }}\n    log format = json\n}}\nid = tcprelay {{\n{relay_section}\n}}\n",
        dir.join("ctl").display()
    );
    let plan = harness::compile(dir, "relay", &cfg);
    let script = format!(
        "exec env {env} {} run -f {}",
        harness::bin("tcprelay").display(),
        plan.display()
    );
    Relay::start_shell(dir, &script, 0)
}

fn listen(port: u16, tls: &str) -> String {
    format!("address = 127.0.0.1 port = {port} tls = {tls}")
}

/// What `openssl s_client -servername NAME` (or `-noservername`) through the relay
/// on `port` printed: the subject line of the certificate it was shown, if any.
fn s_client_subject(port: u16, name: Option<&str>) -> Option<String> {
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-connect", &format!("127.0.0.1:{port}")]);
    match name {
        Some(name) => cmd.args(["-servername", name]),
        None => cmd.arg("-noservername"),
    };
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("openssl s_client runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.starts_with("subject="))
        .map(|l| l.replace(' ', ""))
}

/// A TLS client of this process through the relay on `port`, with `name` as its
/// SNI (or none): the certificate's CN it was shown, and the stream.
fn tls_client(port: u16, name: Option<&str>) -> (String, SslStream<TcpStream>) {
    let mut connector = SslConnector::builder(SslMethod::tls_client()).expect("connector");
    connector.set_verify(SslVerifyMode::NONE);
    let connector = connector.build();
    let tcp = TcpStream::connect(("127.0.0.1", port)).expect("connect to the relay");
    tcp.set_read_timeout(Some(WITHIN)).unwrap();
    let mut config = connector.configure().expect("configure");
    config.set_verify_hostname(false);
    let stream = match name {
        Some(name) => config.connect(name, tcp),
        None => config.use_server_name_indication(false).connect("", tcp),
    }
    .expect("TLS handshake through the relay");
    let cn = stream
        .ssl()
        .peer_certificate()
        .and_then(|c| {
            c.subject_name()
                .entries_by_nid(openssl::nid::Nid::COMMONNAME)
                .next()
                .and_then(|e| e.data().to_string().ok())
        })
        .unwrap_or_default();
    (cn, stream)
}

/// A line through `stream` and the line that comes back.
fn line_through<S: Read + Write>(stream: &mut S, line: &str) -> String {
    stream
        .write_all(format!("{line}\n").as_bytes())
        .expect("write");
    read_line(stream)
}

fn read_line<S: Read>(stream: &mut S) -> String {
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while got.last() != Some(&b'\n') {
        match stream.read(&mut byte) {
            Ok(1) => got.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&got).trim_end().to_string()
}

/// `tcprelay ctl --json status` of the relay whose control socket is in `dir`,
/// once `done` holds for it.
fn status_until(dir: &Path, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WITHIN;
    loop {
        let out = Command::new(harness::bin("tcprelay"))
            .args(["ctl", "--json", "-s"])
            .arg(dir.join("ctl"))
            .arg("status")
            .output()
            .expect("tcprelay ctl runs");
        let status: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        if done(&status) {
            return status;
        }
        assert!(Instant::now() < deadline, "{status}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The refusals counted for `reason` in a status answer.
fn refused(status: &Value, reason: &str) -> u64 {
    status["totals"]["refused_sni_reasons"][reason]
        .as_u64()
        .unwrap_or(0)
}

/// `tcprelay-cc route --format json` on the relay's configuration in `dir` for a
/// client of `port` that sends `sni`.
pub(crate) fn route_answer(dir: &Path, port: u16, sni: Option<&str>) -> Value {
    let cfg = dir.join("relay.cfg");
    let to = format!("127.0.0.1:{port}");
    let mut args = vec![
        "route",
        cfg.to_str().unwrap(),
        "--from",
        "127.0.0.1",
        "--to",
        &to,
        "--format",
        "json",
    ];
    if let Some(sni) = sni {
        args.extend(["--sni", sni]);
    }
    let out = harness::cc(dir, &args);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", harness::stderr(&out)))
}

/// The connection records' close causes so far.
fn causes(relay: &Relay) -> Vec<String> {
    relay
        .log_text()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|v| v["event"] == "session_close")
        .filter_map(|v| v["cause"].as_str().map(str::to_string))
        .collect()
}

/// A raw client: sends `bytes` in writes of `chunk` bytes (TCP_NODELAY, `gap`
/// between them), half-closes once everything is sent when `close`, and reads
/// to the end (or the first error): what came back.
fn raw(port: u16, bytes: &[u8], chunk: usize, gap: Duration, close: bool) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the relay");
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(WITHIN)).unwrap();
    for piece in bytes.chunks(chunk) {
        if s.write_all(piece).is_err() {
            break;
        }
        if !gap.is_zero() {
            std::thread::sleep(gap);
        }
    }
    if close {
        let _ = s.shutdown(Shutdown::Write);
    }
    let mut back = Vec::new();
    let mut buf = [0u8; 65536];
    while back.len() < bytes.len() || close {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => back.extend_from_slice(&buf[..n]),
        }
    }
    back
}

/// Each name reaches its backend, whose own certificate `openssl s_client` sees
/// (passthrough keeps it end to end) and whose reversed lines come back; with no
/// section certificate (every route passes through) and no default route, a
/// client without a server name and one with a name no route has are closed,
/// counted by reason, recorded as `sni_refused` and logged once for the peer.
#[test]
fn passthrough_routes_reach_their_backends_with_their_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    make_named_cert(&certs, "a", &["a.test"]);
    make_named_cert(&certs, "b", &["b-backend.test", "x.b.test"]);
    let a = s_server(&certs, "a");
    let b = s_server(&certs, "b");
    let port = free_port();
    let relay = relay(
        dir.path(),
        &[listen(port, "yes")],
        &format!(
            "    route = {{ sni = a.test mode = passthrough remote = {{ address = 127.0.0.1 port = {} }} }}\n    route = {{ sni = *.b.test mode = passthrough remote = {{ address = 127.0.0.1 port = {} }} }}",
            a.port, b.port
        ),
        "",
    );
    assert_eq!(
        s_client_subject(port, Some("a.test")).as_deref(),
        Some("subject=CN=a.test")
    );
    assert_eq!(
        s_client_subject(port, Some("X.B.test.")).as_deref(),
        Some("subject=CN=b-backend.test")
    );
    for (name, cn) in [("a.test", "a.test"), ("y.b.test", "b-backend.test")] {
        let (seen, mut stream) = tls_client(port, Some(name));
        assert_eq!(seen, cn, "{name}");
        assert_eq!(line_through(&mut stream, "hello"), "olleh", "{name}");
    }
    // `tcprelay-cc route --sni` says the same.
    for (name, backend) in [("a.test", a.port), ("y.b.test", b.port)] {
        let answer = route_answer(dir.path(), port, Some(name));
        assert_eq!(answer["route"]["mode"], "passthrough", "{answer}");
        let candidates = answer["balance"]["candidates"].as_array().unwrap();
        assert_eq!(candidates.len(), 1, "{answer}");
        assert_eq!(
            candidates[0]["remote"],
            format!("127.0.0.1:{backend}/TCP"),
            "{answer}"
        );
    }
    for name in [Some("c.test"), None] {
        let answer = route_answer(dir.path(), port, name);
        assert_eq!(answer["result"]["stage"], "sni", "{answer}");
    }
    // No default route: refused, before any backend.
    assert_eq!(s_client_subject(port, Some("c.test")), None);
    assert_eq!(s_client_subject(port, Some("b.test")), None);
    assert_eq!(s_client_subject(port, None), None);
    let status = status_until(dir.path(), |s| {
        refused(s, "unknown_sni") == 2 && refused(s, "no_sni") == 1
    });
    assert_eq!(status["totals"]["refused_sni"], 3, "{status}");
    assert_eq!(status["totals"]["tls_handshakes"], 0, "{status}");
    let causes = causes(&relay);
    assert_eq!(
        causes.iter().filter(|c| *c == "sni_refused").count(),
        3,
        "{causes:?}"
    );
    let log = relay.log_text();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(" closed: ")).collect();
    assert_eq!(lines.len(), 1, "logged once for the peer: {log}");
    assert!(lines[0].contains("server name `c.test`"), "{log}");
}

/// A terminating route presents its own certificate and reaches its backend; the
/// default route (the remotes outside any route) presents the section's, for
/// another name and for a client without one; a passthrough route next to them
/// still shows its backend's certificate; on a `tls = auto` listener a plain
/// client goes to the default route as it is.
#[test]
fn terminating_routes_present_their_own_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    make_named_cert(&certs, "t", &["t.test"]);
    make_named_cert(&certs, "section", &["default.test"]);
    make_named_cert(&certs, "p", &["p.test"]);
    let p = s_server(&certs, "p");
    let t_backend = named("t-backend");
    let default_backend = named("default-backend");
    let (port, auto_port) = (free_port(), free_port());
    let c = |stem: &str| certs.join(stem).display().to_string();
    let relay = relay(
        dir.path(),
        &[listen(port, "yes"), listen(auto_port, "auto")],
        &format!(
            "    tls cert-file = {}.pem tls key-file = {}-key.pem\n    remote = {{ address = 127.0.0.1 port = {} }}\n    route = {{ sni = t.test tls cert-file = {}.pem tls key-file = {}-key.pem remote = {{ address = 127.0.0.1 port = {} }} }}\n    route = {{ sni = p.test mode = passthrough remote = {{ address = 127.0.0.1 port = {} }} }}",
            c("section"),
            c("section"),
            default_backend.port,
            c("t"),
            c("t"),
            t_backend.port,
            p.port
        ),
        "",
    );
    for (name, cn, backend) in [
        (Some("t.test"), "t.test", "t-backend"),
        (Some("other.test"), "default.test", "default-backend"),
        (None, "default.test", "default-backend"),
    ] {
        assert_eq!(
            s_client_subject(port, name),
            Some(format!("subject=CN={cn}")),
            "{name:?}"
        );
        let (seen, mut stream) = tls_client(port, name);
        assert_eq!(seen, cn, "{name:?}");
        assert_eq!(read_line(&mut stream), backend, "{name:?}");
        assert_eq!(line_through(&mut stream, "ping"), "ping", "{name:?}");
    }
    assert_eq!(
        s_client_subject(port, Some("p.test")).as_deref(),
        Some("subject=CN=p.test")
    );
    // `tcprelay-cc route --sni` shows the route's certificate and remote.
    let answer = route_answer(dir.path(), port, Some("t.test"));
    assert_eq!(answer["route"]["index"], 0, "{answer}");
    assert_eq!(
        answer["tls"]["certificate"]["subject"], "CN=t.test",
        "{answer}"
    );
    assert_eq!(
        answer["balance"]["candidates"][0]["remote"],
        format!("127.0.0.1:{}/TCP", t_backend.port),
        "{answer}"
    );
    let answer = route_answer(dir.path(), port, Some("other.test"));
    assert_eq!(answer["route"]["index"], Value::Null, "{answer}");
    assert_eq!(
        answer["balance"]["candidates"][0]["remote"],
        format!("127.0.0.1:{}/TCP", default_backend.port),
        "{answer}"
    );
    // tls = auto: a TLS client is routed as on the other listener, a plain one
    // goes to the default route untouched.
    let (seen, _) = tls_client(auto_port, Some("t.test"));
    assert_eq!(seen, "t.test");
    let mut plain = TcpStream::connect(("127.0.0.1", auto_port)).unwrap();
    plain.set_read_timeout(Some(WITHIN)).unwrap();
    plain.write_all(b"plain\n").unwrap();
    assert_eq!(read_line(&mut plain), "default-backend");
    assert_eq!(read_line(&mut plain), "plain");
    // The control socket's `plan` answer lists the route's certificate.
    let out = Command::new(harness::bin("tcprelay"))
        .args(["ctl", "--json", "-s"])
        .arg(dir.path().join("ctl"))
        .arg("plan")
        .output()
        .expect("tcprelay ctl runs");
    let answer: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let listed = answer["certificates"]
        .as_array()
        .expect("certificates")
        .iter()
        .filter_map(|f| f["uses"].as_array())
        .flatten()
        .any(|u| u["as"] == "route" && u["route"] == "1 (t.test)");
    assert!(listed, "{answer}");
    drop(relay);
}

/// Raw ClientHellos under the event mechanism `env` selects: one split byte by
/// byte over many writes is read whole (in well under the handshake timeout:
/// under poll and select a partial ClientHello is looked at again within
/// milliseconds) and passed through untouched to its route's backend (an echo:
/// the same bytes come back); one over 16 KiB in two records too; one announcing
/// more than the 64 KiB cap, a first byte that is not TLS, and a malformed one are
/// closed with nothing relayed, each counted; no SNI goes to the default route.
fn raw_client_hellos(env: &str) {
    let dir = tempfile::tempdir().unwrap();
    let routed = Echo::start();
    let default = Echo::start();
    let port = free_port();
    let _relay = relay(
        dir.path(),
        &[listen(port, "yes")],
        &format!(
            "    route = {{ sni = a.test mode = passthrough remote = {{ address = 127.0.0.1 port = {} }} }}\n    route = {{ mode = passthrough remote = {{ address = 127.0.0.1 port = {} }} }}",
            routed.port, default.port
        ),
        env,
    );
    let hello = example::client_hello(Some("a.test"), 0);
    let started = Instant::now();
    let back = raw(port, &hello, 1, Duration::from_millis(2), false);
    let took = started.elapsed();
    assert_eq!(back, hello, "byte by byte ({env})");
    assert!(took < Duration::from_secs(4), "took {took:?} ({env})");
    assert_eq!(routed.connections.load(Ordering::Relaxed), 1);
    // Over 16 KiB: two records, in writes of 1000 bytes.
    let large = example::client_hello(Some("a.test"), 20_000);
    assert!(large.len() > 16 * 1024 + 5);
    assert_eq!(raw(port, &large, 1000, Duration::ZERO, false), large);
    assert_eq!(routed.connections.load(Ordering::Relaxed), 2);
    // No server name: the default route.
    let nameless = example::client_hello(None, 0);
    assert_eq!(raw(port, &nameless, 64, Duration::ZERO, false), nameless);
    assert_eq!(default.connections.load(Ordering::Relaxed), 1);
    // Refused, nothing relayed.
    let over = example::client_hello(Some("a.test"), 70_000);
    assert_eq!(raw(port, &over, 4096, Duration::ZERO, true), b"");
    assert_eq!(
        raw(port, b"GET / HTTP/1.0\r\n\r\n", 64, Duration::ZERO, true),
        b""
    );
    // A handshake message of type 2 (a ServerHello) instead of a ClientHello.
    let mut malformed = hello.clone();
    malformed[5] = 2;
    assert_eq!(raw(port, &malformed, 64, Duration::ZERO, true), b"");
    let truncated = &hello[..hello.len() / 2];
    assert_eq!(raw(port, truncated, 64, Duration::ZERO, true), b"");
    status_until(dir.path(), |s| {
        refused(s, "bad_client_hello") == 3 && refused(s, "not_tls") == 1
    });
    assert_eq!(routed.connections.load(Ordering::Relaxed), 2);
    assert_eq!(default.connections.load(Ordering::Relaxed), 1);
}

#[test]
fn raw_client_hellos_under_the_default_mechanism() {
    raw_client_hellos("");
}

#[test]
fn raw_client_hellos_under_poll() {
    raw_client_hellos("IO_POLL_MECHANISM=8");
}

#[test]
fn raw_client_hellos_under_select() {
    raw_client_hellos("IO_POLL_MECHANISM=16");
}

/// `tcprelay-cc diff` compares routes by their names: the same names in another
/// order (and another place in the file) are the same route, whose changed mode
/// and balance are shown; a route with other names is one removed and one added.
#[test]
fn diff_compares_routes_by_their_names() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = |routes: &str| {
        format!("id = spawnd {{\n listen = {{ address = 127.0.0.1 port = 8443 tls = yes }}\n}}\nid = tcprelay {{\n{routes}\n}}\n")
    };
    let a =
        "route = { sni = a.test mode = passthrough remote = { address = 127.0.0.1 port = 9001 } }";
    let b = "route = { sni = b.test sni = c.test mode = passthrough remote = { address = 127.0.0.1 port = 9002 } }";
    let b2 = "route = { sni = c.test sni = b.test mode = passthrough balance = source remote = { address = 127.0.0.1 port = 9002 } }";
    let d =
        "route = { sni = d.test mode = passthrough remote = { address = 127.0.0.1 port = 9001 } }";
    std::fs::write(dir.path().join("old.cfg"), cfg(&format!("{a}\n{b}"))).unwrap();
    std::fs::write(dir.path().join("new.cfg"), cfg(&format!("{b2}\n{d}"))).unwrap();
    let out = harness::cc(dir.path(), &["diff", "old.cfg", "new.cfg"]);
    let text = harness::stdout(&out);
    for line in [
        "  route b.test c.test balance: the section's -> source (new sessions)",
        "  route a.test: passthrough -> none (new sessions)",
        "  route d.test: none -> passthrough (new sessions)",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    }
    assert!(!text.contains("route b.test c.test mode"), "{text}");
}

/// The backend name a client bound to `127.0.0.FROM` reaches through the relay on
/// `port` with a hand-made ClientHello naming `name` (a passthrough route: the
/// backend, a `named` one, says who it is before echoing), and the open stream.
fn hello_from(port: u16, from: u8, name: Option<&str>) -> (String, TcpStream) {
    let mut s = harness::connect_from(port, from, WITHIN);
    s.write_all(&example::client_hello(name, 0))
        .expect("send the ClientHello");
    let who = read_line(&mut s);
    assert!(!who.is_empty(), "nothing from a backend for 127.0.0.{from}");
    (who, s)
}

/// A route's own `balance = source` is the one its clients get, the section's
/// default (least connections) the one of the default route: each client address
/// of the route reaches one backend every time (sessions held open, which least
/// connections would spread), the first of its rendezvous order over the route's
/// remotes (`tcprelay_plan::route::source_order`), which `tcprelay-cc route --from
/// --sni` names too; two sessions of one client of the default route, held, reach
/// its two backends.
#[test]
fn a_routes_own_balance_source_is_applied_by_the_workers_and_by_route() {
    let dir = tempfile::tempdir().unwrap();
    let routed: Vec<(&str, Named)> = ["r1", "r2", "r3", "r4"]
        .into_iter()
        .map(|n| (n, named(n)))
        .collect();
    let defaults = [named("d1"), named("d2")];
    let port = free_port();
    let remote = |p: u16| format!("remote = {{ address = 127.0.0.1 port = {p} }} ");
    let route_remotes: String = routed.iter().map(|(_, b)| remote(b.port)).collect();
    let default_remotes: String = defaults.iter().map(|b| remote(b.port)).collect();
    let _relay = relay(
        dir.path(),
        &[listen(port, "yes")],
        &format!(
            "    route = {{ sni = a.test mode = passthrough balance = source {route_remotes}}}\n    route = {{ mode = passthrough {default_remotes}}}"
        ),
        "",
    );
    let by_port: std::collections::BTreeMap<u16, &str> =
        routed.iter().map(|(n, b)| (b.port, *n)).collect();
    let (_, plan) =
        tcprelay_plan::decode(&std::fs::read(dir.path().join("relay.plan")).unwrap()).unwrap();
    assert_eq!(plan.relay.balance, tcprelay_plan::Balance::LeastConn);
    let clients: Vec<u8> = (2..=41).collect();
    let mut held = Vec::new();
    let mut reached = std::collections::BTreeMap::new();
    for round in 0..3 {
        for &from in &clients {
            let client = std::net::IpAddr::from([127, 0, 0, from]);
            let expected = tcprelay_plan::route::source_order(&plan.relay.remotes, client)
                .into_iter()
                .find(|&i| plan.relay.remotes[i].route == Some(0))
                .map(|i| by_port[&plan.relay.remotes[i].address.port()])
                .unwrap();
            let (who, mut stream) = hello_from(port, from, Some("a.test"));
            assert_eq!(who, expected, "127.0.0.{from}, round {round}");
            *reached.entry(who).or_insert(0) += 1;
            if round == 0 {
                // The client's ClientHello comes back untouched (passthrough).
                let hello = example::client_hello(Some("a.test"), 0);
                let mut back = vec![0u8; hello.len()];
                stream.read_exact(&mut back).expect("the echo");
                assert_eq!(back, hello);
                // `tcprelay-cc route` names the same remote first for it.
                let out = harness::cc(
                    dir.path(),
                    &[
                        "route",
                        "relay.cfg",
                        "--from",
                        &client.to_string(),
                        "--to",
                        &format!("127.0.0.1:{port}"),
                        "--sni",
                        "a.test",
                        "--format",
                        "json",
                    ],
                );
                let answer: Value = serde_json::from_slice(&out.stdout)
                    .unwrap_or_else(|e| panic!("not JSON ({e}): {}", harness::stderr(&out)));
                assert_eq!(answer["balance"]["method"], "source", "{answer}");
                let first = crate::balance::first_candidate_port(&answer);
                assert_eq!(by_port[&first], expected, "route --from {client}");
            }
            held.push(stream);
        }
    }
    assert_eq!(reached.len(), 4, "every backend has clients: {reached:?}");
    // The default route is the section's least connections: one client's two
    // sessions, held, go to both backends.
    let (first, _a) = hello_from(port, 50, None);
    let (second, _b) = hello_from(port, 50, None);
    let mut both = [first, second];
    both.sort();
    assert_eq!(both, ["d1", "d2"]);
    let answer = route_answer(dir.path(), port, None);
    assert_eq!(answer["balance"]["method"], "least-conn", "{answer}");
}
