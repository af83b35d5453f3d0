//! Operating a running relay: `tcprelay ctl` against the real master's control
//! socket (status, remotes, reload, stop, bad clients, the socket's path) and the
//! metrics endpoint (read by `promtool` and scraped by a real Prometheus).

use crate::harness::{self, config, echo_through, free_port, stderr, stdout, Echo, Relay};
use serde_json::Value;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::ctl;

/// `tcprelay ctl --json ARGS`'s answer.
fn ask(runtime: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = ctl(runtime, &all);
    serde_json::from_str(stdout(&out).trim())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}{}", stdout(&out), stderr(&out)))
}

/// Asks `status` until `done` holds for its answer (10 s at most): counts reach the
/// registry when the workers write them.
fn status_until(runtime: &Path, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = ask(runtime, &["status"]);
        if done(&status) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "status never got there: {status}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends `n` sessions of `size` bytes each through the relay on `port` (an echo
/// path); the bytes each way.
fn traffic(port: u16, n: usize, size: usize) -> u64 {
    for i in 0..n {
        let data = harness::random_bytes(i as u64, size);
        assert_eq!(echo_through(port, &data).unwrap(), data);
    }
    (n * size) as u64
}

fn totals(status: &Value) -> (u64, u64, u64) {
    let t = &status["totals"];
    (
        t["accepted"].as_u64().unwrap(),
        t["bytes_in"].as_u64().unwrap(),
        t["bytes_out"].as_u64().unwrap(),
    )
}

/// The CRC-32 a plan file's header holds (bytes 12..16, little endian), as hex.
fn header_hash(plan: &Path) -> String {
    let bytes = std::fs::read(plan).unwrap();
    format!(
        "{:08x}",
        u32::from_le_bytes(bytes[12..16].try_into().unwrap())
    )
}

/// The example answer docs/control.md gives under `### \`COMMAND\``.
fn documented(command: &str) -> Value {
    let text = std::fs::read_to_string(harness::root().join("docs/control.md")).unwrap();
    let section = text
        .split(&format!("### `{command}`"))
        .nth(1)
        .unwrap_or_else(|| panic!("no {command} section"));
    let json = section
        .split("```json\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("an example");
    serde_json::from_str(json.trim()).expect("the example is JSON")
}

/// Every field path of `v` (`generations[].workers[].pid`), with its JSON type.
fn shape(v: &Value, at: &str, out: &mut std::collections::BTreeSet<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                shape(v, &format!("{at}.{k}"), out);
            }
        }
        Value::Array(items) => {
            for item in items {
                shape(item, &format!("{at}[]"), out);
            }
        }
        // `null` stands for an integer or a string the example may show.
        Value::Null => {
            out.insert(at.to_string());
        }
        other => {
            let kind = match other {
                Value::Bool(_) => "bool",
                Value::Number(_) => "number",
                _ => "string",
            };
            out.insert(format!("{at}: {kind}"));
        }
    }
}

/// `answer` has the fields and types of docs/control.md's example (a `null` in
/// either matches any type, an object's too: `check` of a remote not checked).
pub(crate) fn assert_documented(command: &str, answer: &Value) {
    let strip = |set: std::collections::BTreeSet<String>| -> std::collections::BTreeSet<String> {
        set.into_iter()
            .map(|p| p.split(": ").next().unwrap().to_string())
            .collect()
    };
    let (mut ours, mut theirs) = Default::default();
    shape(answer, "", &mut ours);
    shape(&documented(command), "", &mut theirs);
    // A path `null` in either (in some entry) matches the other's object there:
    // what is under it is compared only when both show an object, and the path
    // itself counts as in both.
    let nulls: Vec<String> = ours
        .iter()
        .chain(theirs.iter())
        .filter(|n| !n.contains(": "))
        .cloned()
        .collect();
    for n in &nulls {
        let prefix = format!("{n}.");
        let under =
            |set: &std::collections::BTreeSet<String>| set.iter().any(|p| p.starts_with(&prefix));
        if under(&ours) != under(&theirs) {
            ours.retain(|p| !p.starts_with(&prefix));
            theirs.retain(|p| !p.starts_with(&prefix));
        }
    }
    ours.extend(nulls.iter().cloned());
    theirs.extend(nulls.iter().cloned());
    // Fields the docs give only for some entries may be missing from an answer
    // that has none of them (`discovered`: a remote found by DNS).
    const ONLY_SOME: &[&str] = &[".remotes[].discovered."];
    let has_some = |set: &std::collections::BTreeSet<String>, prefix: &str| {
        set.iter().any(|p| p.starts_with(prefix))
    };
    for prefix in ONLY_SOME {
        if !has_some(&ours, prefix) {
            theirs.retain(|p| !p.starts_with(prefix));
        }
    }
    assert_eq!(
        strip(ours.clone()),
        strip(theirs.clone()),
        "{command}: field paths"
    );
    for typed in ours.iter().filter(|p| p.contains(": ")) {
        let path = typed.split(": ").next().unwrap();
        assert!(
            theirs.contains(typed) || theirs.contains(path),
            "{command}: {typed} differs from the docs: {theirs:?}"
        );
    }
}

/// After five sessions, `status` and `remotes` say exactly what went through: the
/// sessions, the bytes each way, the connections to the remote; the plan's source
/// and hash (its file's checksum) and the workers of generation 1. The table form
/// shows the same.
#[test]
fn ctl_status_and_remotes_count_what_went_through() {
    let echo = Echo::start();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(port, &[(echo.port, 3)], "spawn = { servers min = 2 }", "");
    let relay = Relay::run_config(dir.path(), &cfg, port);
    let workers = relay.await_workers(2, Duration::from_secs(5));
    let bytes = traffic(port, 5, 3000);
    let status = status_until(dir.path(), |s| totals(s) == (5, bytes, bytes));
    assert_eq!(status["ok"], true);
    assert_eq!(status["pid"], relay.pid());
    let plan = dir.path().join("relay.plan");
    assert_eq!(status["plan"]["source"], plan.to_str().unwrap());
    assert_eq!(status["plan"]["hash"], header_hash(&plan).as_str());
    assert_eq!(status["generation"], 1);
    assert_eq!(status["draining"], false);
    assert_eq!(status["drain_deadline_s"], Value::Null);
    assert_eq!(status["totals"]["refused_acl"], 0);
    assert_eq!(status["totals"]["shed_overload"], 0);
    let generations = status["generations"].as_array().unwrap();
    assert_eq!(generations.len(), 1, "{status}");
    assert_eq!(generations[0]["state"], "active");
    let mut pids: Vec<i64> = generations[0]["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["pid"].as_i64().unwrap())
        .collect();
    pids.sort_unstable();
    let mut expected: Vec<i64> = workers.iter().map(|p| i64::from(*p)).collect();
    expected.sort_unstable();
    assert_eq!(pids, expected);

    assert_documented("status", &status);

    let remotes = ask(dir.path(), &["remotes"]);
    assert_documented("remotes", &remotes);
    let list = remotes["remotes"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{remotes}");
    let r = &list[0];
    assert_eq!(r["remote"], format!("127.0.0.1:{}", echo.port));
    assert_eq!(r["protocol"], "tcp");
    assert_eq!(r["state"], "up");
    assert_eq!(r["why"], Value::Null);
    assert_eq!(r["weight"], 3);
    assert_eq!(r["connections"], 5);
    assert_eq!(r["failures"], 0);
    assert_eq!(r["bytes_in"], bytes);
    assert_eq!(r["bytes_out"], bytes);

    let table = ctl(dir.path(), &["status"]);
    assert_eq!(table.status.code(), Some(0), "{}", stderr(&table));
    let text = stdout(&table);
    assert!(text.contains(&header_hash(&plan)), "{text}");
    let table = ctl(dir.path(), &["remotes"]);
    assert_eq!(table.status.code(), Some(0), "{}", stderr(&table));
    assert!(
        stdout(&table).contains(&format!("127.0.0.1:{}", echo.port)),
        "{}",
        stdout(&table)
    );
}

/// The totals are the relay's: a reload (a new generation, the old one drained) and
/// a worker killed with SIGKILL lose none of them, and what comes after adds up.
#[test]
fn totals_survive_a_reload_and_a_killed_worker() {
    let echo = Echo::start();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("relay.cfg");
    std::fs::write(
        &cfg,
        config(port, &[(echo.port, 1)], "spawn = { servers min = 1 }", ""),
    )
    .unwrap();
    let relay = Relay::start(dir.path(), &["-f", cfg.to_str().unwrap()], port);
    let first = relay.await_workers(1, Duration::from_secs(5));
    let mut bytes = traffic(port, 4, 1000);
    status_until(dir.path(), |s| totals(s) == (4, bytes, bytes));

    // The weight changes: another plan, generation 2.
    std::fs::write(
        &cfg,
        config(port, &[(echo.port, 2)], "spawn = { servers min = 1 }", ""),
    )
    .unwrap();
    let answer = ask(dir.path(), &["reload"]);
    assert_eq!(answer["ok"], true, "{answer}");
    let status = status_until(dir.path(), |s| {
        s["generation"] == 2 && s["generations"].as_array().is_some_and(|g| g.len() == 1)
    });
    assert_eq!(totals(&status), (4, bytes, bytes), "after the reload");
    bytes += traffic(port, 3, 1000);
    status_until(dir.path(), |s| totals(s) == (7, bytes, bytes));

    // A worker of generation 2 killed: its counts stay, its replacement adds to them.
    let workers = relay.await_workers(1, Duration::from_secs(10));
    assert_ne!(workers, first);
    let _ = Command::new("kill")
        .args(["-9", &workers[0].to_string()])
        .status();
    relay.await_log(
        &format!("worker {} died", workers[0]),
        Duration::from_secs(5),
    );
    let status = ask(dir.path(), &["status"]);
    assert_eq!(
        totals(&status),
        (7, bytes, bytes),
        "after the kill: {status}"
    );
    relay.await_workers(1, Duration::from_secs(5));
    bytes += traffic(port, 2, 1000);
    status_until(dir.path(), |s| totals(s) == (9, bytes, bytes));
}

/// `tcprelay ctl reload` answers once the reload has ended: with a good
/// configuration, ok and the new generation; with a broken one, not ok, the
/// compiler's diagnostics in the error, exit status 1, and the relay serves on.
#[test]
fn ctl_reload_answers_with_the_new_generation_or_the_diagnostics() {
    let echo = Echo::start();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("relay.cfg");
    let good = config(port, &[(echo.port, 1)], "spawn = { servers min = 1 }", "");
    std::fs::write(&cfg, &good).unwrap();
    let relay = Relay::start(dir.path(), &["-f", cfg.to_str().unwrap()], port);
    relay.await_workers(1, Duration::from_secs(5));

    let out = ctl(dir.path(), &["--json", "reload"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let answer: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(answer["ok"], true);
    let message = answer["message"].as_str().unwrap();
    assert!(message.contains("generation 2"), "{message}");
    assert_eq!(ask(dir.path(), &["status"])["generation"], 2);

    std::fs::write(&cfg, good.replace("port = ", "prot = ")).unwrap();
    let out = ctl(dir.path(), &["reload"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let error = stderr(&out);
    assert!(error.contains("error[E0003]"), "{error}");
    assert!(error.contains("did you mean `port`?"), "{error}");
    assert!(error.contains("still serving generation 2"), "{error}");
    assert_eq!(echo_through(port, b"still").unwrap(), b"still");
    let status = ask(dir.path(), &["status"]);
    assert_eq!(status["generation"], 2);
}

/// `tcprelay ctl stop` is answered, then the relay stops as on SIGTERM (exit 0)
/// and removes its socket.
#[test]
fn ctl_stop_answers_and_stops_the_relay() {
    let echo = Echo::start();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(port, &[(echo.port, 1)], "spawn = { servers min = 1 }", "");
    let mut relay = Relay::run_config(dir.path(), &cfg, port);
    relay.await_workers(1, Duration::from_secs(5));
    let answer = ask(dir.path(), &["stop"]);
    assert_eq!(answer["ok"], true, "{answer}");
    let status = relay.wait_exit(Duration::from_secs(10)).expect("stopped");
    assert_eq!(status.code(), Some(0));
    assert!(!dir.path().join("ctl").exists(), "the socket is removed");
}

/// On the real master's socket: a client that never writes, one that sends
/// garbage, one that sends an endless line. Meanwhile `status` is answered at once;
/// the garbage gets an error answer; the relay relays.
#[test]
fn bad_control_clients_do_not_stop_the_master() {
    let echo = Echo::start();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(port, &[(echo.port, 1)], "spawn = { servers min = 1 }", "");
    let relay = Relay::run_config(dir.path(), &cfg, port);
    relay.await_workers(1, Duration::from_secs(5));
    let socket = dir.path().join("ctl");
    let silent: Vec<UnixStream> = (0..10)
        .map(|_| UnixStream::connect(&socket).unwrap())
        .collect();
    let mut endless = UnixStream::connect(&socket).unwrap();
    endless.write_all(&[b'x'; 2000]).unwrap();
    let mut garbage = UnixStream::connect(&socket).unwrap();
    garbage.write_all(b"\xff\xfe\x00 status\n").unwrap();
    garbage
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut answer = String::new();
    garbage.read_to_string(&mut answer).unwrap();
    let answer: Value = serde_json::from_str(answer.trim()).unwrap();
    assert_eq!(answer["ok"], false, "{answer}");
    assert_eq!(answer["error"], "the request is not UTF-8 text (byte 0)");
    let started = Instant::now();
    let status = ask(dir.path(), &["status"]);
    assert_eq!(status["ok"], true);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "status waited {:?} behind the silent clients",
        started.elapsed()
    );
    assert_eq!(echo_through(port, b"relayed").unwrap(), b"relayed");
    // The silent ones are told after 2 s, and the master is still there.
    let mut first = &silent[0];
    first
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut told = String::new();
    first.read_to_string(&mut told).unwrap();
    assert!(told.contains("no request line within 2 s"), "{told}");
    assert_eq!(ask(dir.path(), &["status"])["ok"], true);
    drop(endless);
}

/// A second relay whose default control path is the first's: it runs (and relays)
/// without a control socket, after one warning line; the socket stays the first's.
#[test]
fn a_second_relay_on_a_default_path_in_use_runs_without_a_socket() {
    let echo = Echo::start();
    let (port, other) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let second = tempfile::tempdir().unwrap();
    let cfg = config(port, &[(echo.port, 1)], "spawn = { servers min = 1 }", "");
    let first = Relay::run_config(dir.path(), &cfg, port);
    let plan = harness::compile(
        second.path(),
        "relay",
        &config(other, &[(echo.port, 1)], "spawn = { servers min = 1 }", ""),
    );
    let script = format!(
        "RUNTIME_DIRECTORY={} exec {} run -f {}",
        dir.path().display(),
        harness::bin("tcprelay").display(),
        plan.display()
    );
    let relay = Relay::start_shell(second.path(), &script, other);
    let log = relay.log_text();
    let socket = dir.path().join("ctl");
    let warning = format!(
        "control socket {} belongs to another running relay: this one runs without a control socket",
        socket.display()
    );
    assert_eq!(log.matches(&warning).count(), 1, "{log}");
    assert_eq!(echo_through(other, b"second").unwrap(), b"second");
    assert_eq!(ask(dir.path(), &["status"])["pid"], first.pid());
}

/// An explicit `control = { path = ... }` another relay answers on fails the start,
/// naming the path.
#[test]
fn an_explicit_control_path_in_use_fails_the_start() {
    let echo = Echo::start();
    let (port, other) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("relay.sock");
    let control = format!("control = {{ path = {} }}", socket.display());
    let cfg = config(port, &[(echo.port, 1)], &control, "");
    let _first = Relay::run_config(dir.path(), &cfg, port);
    let second = tempfile::tempdir().unwrap();
    let plan = harness::compile(
        second.path(),
        "relay",
        &config(other, &[(echo.port, 1)], &control, ""),
    );
    let mut child = Command::new(harness::bin("tcprelay"))
        .args(["run", "-f", plan.to_str().unwrap()])
        .env("RUNTIME_DIRECTORY", second.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the second relay started");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let error = stderr(&out);
    assert!(
        error.contains(&format!(
            "control socket {} answers: another tcprelay is running with it",
            socket.display()
        )),
        "{error}"
    );
    assert_eq!(ask_at(&socket, "status")["ok"], true);
}

/// The answer on the socket at `path` to `request`.
fn ask_at(path: &Path, request: &str) -> Value {
    let out = Command::new(harness::bin("tcprelay"))
        .args(["ctl", "-s", path.to_str().unwrap(), "--json", request])
        .output()
        .unwrap();
    serde_json::from_str(stdout(&out).trim()).unwrap_or_else(|e| panic!("{e}: {}", stderr(&out)))
}

/// A metrics port free a moment ago, and the spawnd line that serves it.
fn metrics_line() -> (u16, String) {
    let port = free_port();
    (
        port,
        format!("metrics = {{ address = 127.0.0.1 port = {port} }}"),
    )
}

/// `GET path` on `127.0.0.1:port`: the status code and the body.
fn get(port: u16, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head");
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("{head}"));
    (code, body.to_string())
}

/// `GET /metrics` answers 200 with an exposition `promtool check metrics` accepts,
/// which counts the sessions that went through; `HEAD`-less other paths are 404.
#[test]
fn metrics_endpoint_serves_what_promtool_accepts() {
    let echo = Echo::start();
    let port = free_port();
    let (metrics, line) = metrics_line();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        port,
        &[(echo.port, 1)],
        &format!("spawn = {{ servers min = 2 }}\n{line}"),
        "",
    );
    let relay = Relay::run_config(dir.path(), &cfg, port);
    relay.await_workers(2, Duration::from_secs(5));
    let bytes = traffic(port, 6, 500);
    status_until(dir.path(), |s| totals(s) == (6, bytes, bytes));
    let (code, body) = get(metrics, "/metrics");
    assert_eq!(code, 200, "{body}");
    let listener = format!("127.0.0.1:{port}");
    assert!(
        body.contains(&format!(
            "tcprelay_accepted_total{{listener=\"{listener}\"}} 6\n"
        )),
        "{body}"
    );
    let hash = header_hash(&dir.path().join("relay.plan"));
    assert!(body.contains(&format!("plan_hash=\"{hash}\"")), "{body}");
    assert!(body.contains("tcprelay_workers 2\n"), "{body}");
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; scripts/test.sh installs it)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let checked = promtool.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool: {}{}",
        stdout(&checked),
        stderr(&checked)
    );
    assert_eq!(get(metrics, "/nothing").0, 404);
}

/// A client that connects to the metrics port and sends nothing does not hold up a
/// scrape.
#[test]
fn a_silent_metrics_client_does_not_hold_up_a_scrape() {
    let echo = Echo::start();
    let port = free_port();
    let (metrics, line) = metrics_line();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(port, &[(echo.port, 1)], &line, "");
    let _relay = Relay::run_config(dir.path(), &cfg, port);
    let _silent: Vec<std::net::TcpStream> = (0..10)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", metrics)).unwrap())
        .collect();
    let started = Instant::now();
    assert_eq!(get(metrics, "/metrics").0, 200);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

/// A metrics address that cannot be bound fails the start, naming it.
#[test]
fn a_metrics_address_in_use_fails_the_start() {
    let echo = Echo::start();
    let port = free_port();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let metrics = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        port,
        &[(echo.port, 1)],
        &format!("metrics = {{ address = 127.0.0.1 port = {metrics} }}"),
        "",
    );
    let plan = harness::compile(dir.path(), "relay", &cfg);
    let out = Command::new(harness::bin("tcprelay"))
        .args(["run", "-f", plan.to_str().unwrap()])
        .env("RUNTIME_DIRECTORY", dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!(
            "cannot bind the metrics endpoint 127.0.0.1:{metrics}"
        )),
        "{}",
        stderr(&out)
    );
}

/// A real Prometheus on loopback scrapes the relay every second and comes to know
/// its count of accepted connections.
#[test]
fn prometheus_scrapes_the_relay() {
    let echo = Echo::start();
    let port = free_port();
    let (metrics, line) = metrics_line();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(port, &[(echo.port, 1)], &line, "");
    let _relay = Relay::run_config(dir.path(), &cfg, port);
    let bytes = traffic(port, 3, 100);
    status_until(dir.path(), |s| totals(s) == (3, bytes, bytes));

    let yml = dir.path().join("prometheus.yml");
    std::fs::write(
        &yml,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: tcprelay\n    static_configs:\n      - targets: ['127.0.0.1:{metrics}']\n"
        ),
    )
    .unwrap();
    let web = free_port();
    let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let mut prometheus = Command::new("prometheus")
        .arg(format!("--config.file={}", yml.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{web}"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("prometheus (Debian package prometheus; scripts/test.sh installs it)");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = String::new();
    let seen = loop {
        if Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(500));
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", web)) else {
            continue;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let request = "GET /api/v1/query?query=tcprelay_accepted_total HTTP/1.0\r\nHost: x\r\n\r\n";
        if s.write_all(request.as_bytes()).is_err() {
            continue;
        }
        last.clear();
        let _ = s.read_to_string(&mut last);
        if last.contains(r#""value":["#) && last.contains(r#","3"]"#) {
            break true;
        }
    };
    let _ = prometheus.kill();
    let _ = prometheus.wait();
    assert!(
        seen,
        "Prometheus never saw 3 accepted connections: {last}\n{}",
        std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default()
    );
}

/// A reload that changes `control` and `metrics` moves them: the new socket and
/// port answer, the old socket file is gone and the old port refuses. A reload to a
/// metrics address in use fails, naming it, and both stay where they were.
#[test]
fn a_reload_moves_the_control_socket_and_the_metrics_endpoint() {
    let echo = Echo::start();
    let port = free_port();
    let (first_port, first) = metrics_line();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("relay.cfg");
    std::fs::write(&cfg, config(port, &[(echo.port, 1)], &first, "")).unwrap();
    let relay = Relay::start(dir.path(), &["-f", cfg.to_str().unwrap()], port);
    assert_eq!(get(first_port, "/metrics").0, 200);

    let moved = dir.path().join("moved.sock");
    let (second_port, second) = metrics_line();
    let control = format!("control = {{ path = {} }}", moved.display());
    std::fs::write(
        &cfg,
        config(port, &[(echo.port, 1)], &format!("{second}\n{control}"), ""),
    )
    .unwrap();
    let answer = ask(dir.path(), &["reload"]);
    assert_eq!(answer["ok"], true, "{answer}");
    assert!(
        !dir.path().join("ctl").exists(),
        "the old socket is removed"
    );
    assert_eq!(ask_at(&moved, "status")["generation"], 2);
    assert_eq!(get(second_port, "/metrics").0, 200);
    assert!(std::net::TcpStream::connect(("127.0.0.1", first_port)).is_err());

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap().port();
    std::fs::write(
        &cfg,
        config(
            port,
            &[(echo.port, 1)],
            &format!("metrics = {{ address = 127.0.0.1 port = {busy} }}\n{control}"),
            "",
        ),
    )
    .unwrap();
    let answer = ask_at(&moved, "reload");
    assert_eq!(answer["ok"], false, "{answer}");
    let error = answer["error"].as_str().unwrap();
    assert!(
        error.contains(&format!(
            "cannot bind the metrics endpoint 127.0.0.1:{busy}"
        )),
        "{error}"
    );
    assert_eq!(ask_at(&moved, "status")["generation"], 2);
    assert_eq!(get(second_port, "/metrics").0, 200);
    let (_, body) = get(second_port, "/metrics");
    assert!(body.contains("tcprelay_reloads_failed_total 1\n"), "{body}");
    assert_eq!(echo_through(port, b"on").unwrap(), b"on");
    drop(relay);
}

/// `tcprelay ctl reload`s that come while one compile runs (a compiler that takes a
/// second) all get its outcome: one new generation, not one each. One waiting when
/// the relay is stopped is told the reload was abandoned.
#[test]
fn ctl_reloads_during_one_compile_share_its_outcome() {
    let echo = Echo::start();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("relay.cfg");
    std::fs::write(
        &cfg,
        config(port, &[(echo.port, 1)], "spawn = { servers min = 1 }", ""),
    )
    .unwrap();
    let slow = dir.path().join("slow-cc");
    std::fs::write(
        &slow,
        format!(
            "#!/bin/sh\nsleep 1\nexec {} \"$@\"\n",
            harness::bin("tcprelay-cc").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&slow, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let script = format!(
        "TCPRELAY_CC={} exec {} -f {}",
        slow.display(),
        harness::bin("tcprelay").display(),
        cfg.display()
    );
    let mut relay = Relay::start_shell(dir.path(), &script, port);
    relay.await_workers(1, Duration::from_secs(5));
    let runtime = dir.path().to_path_buf();
    let asks: Vec<_> = (0..3)
        .map(|i| {
            let runtime = runtime.clone();
            std::thread::sleep(Duration::from_millis(if i == 0 { 0 } else { 100 }));
            std::thread::spawn(move || ask(&runtime, &["reload"]))
        })
        .collect();
    for answer in asks.into_iter().map(|t| t.join().unwrap()) {
        assert_eq!(answer["ok"], true, "{answer}");
        let message = answer["message"].as_str().unwrap();
        assert!(message.contains("generation 2 runs"), "{message}");
    }
    assert_eq!(ask(dir.path(), &["status"])["generation"], 2);

    let waiting = std::thread::spawn(move || ask(&runtime, &["reload"]));
    relay.await_log("reload: compiling", Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(200));
    relay.signal(15);
    let answer = waiting.join().unwrap();
    assert_eq!(answer["ok"], false, "{answer}");
    assert_eq!(
        answer["error"],
        "the relay is stopping: the reload was abandoned"
    );
    assert!(relay.wait_exit(Duration::from_secs(10)).is_some());
}

/// Connections the master sheds under `overload = close` are counted (`status` says
/// how many) and each has a `session_close` record with cause `shed`.
#[test]
fn connections_shed_by_the_master_are_counted() {
    let echo = Echo::start();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        port,
        &[(echo.port, 1)],
        "spawn = { servers min = 1 servers max = 1 users min = 1 users max = 1 overload = close }",
        "",
    );
    let relay = Relay::run_config(dir.path(), &cfg, port);
    relay.await_workers(1, Duration::from_secs(5));
    let mut held = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    held.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    held.write_all(b"x").unwrap();
    held.read_exact(&mut [0u8; 1]).unwrap();
    relay.await_log("every worker is full", Duration::from_secs(10));
    for _ in 0..3 {
        let mut turned = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        turned
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        assert_eq!(turned.read(&mut [0u8; 1]).unwrap(), 0, "turned away");
    }
    let status = status_until(dir.path(), |s| s["totals"]["shed_overload"] == 3);
    assert_eq!(status["totals"]["shed_overload"], 3);
    // Each has its one record, written by the master.
    let log = relay.log_text();
    let records = log
        .lines()
        .filter(|l| l.contains(" master info: session_close ") && l.contains("cause=shed"))
        .count();
    assert_eq!(records, 3, "{log}");
    drop(held);
}

/// A relay gone to the background (`-b`: forked twice) still owns its control
/// socket: `ctl stop` stops it and the socket file goes with it.
#[test]
fn a_background_relay_removes_its_socket_when_stopped() {
    let echo = Echo::start();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let plan = harness::compile(
        dir.path(),
        "relay",
        &config(port, &[(echo.port, 1)], "spawn = { servers min = 1 }", ""),
    );
    let out = Command::new(harness::bin("tcprelay"))
        .args(["run", "-b", plan.to_str().unwrap()])
        .env("RUNTIME_DIRECTORY", dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let socket = dir.path().join("ctl");
    let status = status_until(dir.path(), |s| s["ok"] == true);
    let pid = status["pid"].as_i64().unwrap();
    assert_ne!(pid, 0);
    assert_eq!(ask(dir.path(), &["stop"])["ok"], true);
    let deadline = Instant::now() + Duration::from_secs(10);
    while socket.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let left = socket.exists();
    if left {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
    assert!(!left, "the background relay left its socket");
    while harness::alive(pid as i32) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!harness::alive(pid as i32), "the relay stopped");
}

/// A dead mark one worker sets is the relay's: `remotes` shows the refusing remote
/// down, why, and its failures; the working one up.
#[test]
fn a_remote_a_worker_marked_dead_is_down_in_remotes() {
    let echo = Echo::start();
    let refusing = free_port();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    // The refusing remote's weight makes it the first choice.
    let cfg = config(
        port,
        &[(refusing, 10), (echo.port, 1)],
        "spawn = { servers min = 2 }",
        "",
    );
    let relay = Relay::run_config(dir.path(), &cfg, port);
    relay.await_workers(2, Duration::from_secs(5));
    traffic(port, 4, 100);
    let deadline = Instant::now() + Duration::from_secs(10);
    let remotes = loop {
        let answer = ask(dir.path(), &["remotes"]);
        if answer["remotes"][0]["state"] == "down" || Instant::now() > deadline {
            break answer;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let list = remotes["remotes"].as_array().unwrap();
    let (dead, alive) = (&list[0], &list[1]);
    assert_eq!(dead["remote"], format!("127.0.0.1:{refusing}"), "{remotes}");
    assert_eq!(dead["state"], "down", "{remotes}");
    let why = dead["why"].as_str().unwrap_or_default();
    assert!(why.starts_with("marked dead by "), "{remotes}");
    assert!(dead["failures"].as_u64().unwrap_or(0) >= 1, "{remotes}");
    assert_eq!(dead["connections"], 0, "{remotes}");
    assert_eq!(alive["state"], "up", "{remotes}");
    assert_eq!(alive["connections"], 4, "{remotes}");
    assert_documented("remotes", &remotes);
}
