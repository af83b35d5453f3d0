//! `tcprelay-cc route`: golden answers on the example configurations, and the
//! process test that route's answer is what the real relay does.
//!
//! Golden cases are `tests/golden/route/NAME.args`: one line of arguments after
//! `tcprelay-cc route` (paths from the repository's root, where it runs), and a
//! `# exits N` line when the answer is not 0. Each runs twice: `--format human`
//! gives `NAME.out`, `--format json` gives `NAME.json` (standard output, then, when
//! there is any, `--- stderr` and standard error). `TCPRELAY_BLESS=1` rewrites them;
//! review the diff. The examples name certificates under `/etc/tcprelay/`, which the
//! answers say are absent: the cases need a machine without that directory.

use crate::harness::{self, cc, compile, free_port, stderr, stdout, Relay};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

fn golden_dir() -> PathBuf {
    harness::root().join("tests/golden/route")
}

/// Standard output, and standard error after a `--- stderr` line when there is any.
fn rendered(out: &std::process::Output) -> String {
    let mut text = stdout(out);
    let err = stderr(out);
    if !err.is_empty() {
        text.push_str("--- stderr\n");
        text.push_str(&err);
    }
    text
}

#[test]
fn route_answers_on_the_examples_match_their_golden_files() {
    assert!(
        !Path::new("/etc/tcprelay").exists(),
        "the golden answers say the examples' /etc/tcprelay/ certificates are absent: run on a machine without /etc/tcprelay"
    );
    let root = harness::root();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(golden_dir())
        .expect("tests/golden/route")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "args"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 10, "the golden cases are there: {cases:?}");
    let bless = std::env::var_os("TCPRELAY_BLESS").is_some();
    let mut problems = Vec::new();
    for case in &cases {
        let text = std::fs::read_to_string(case).expect("read case");
        let args: Vec<&str> = text
            .lines()
            .find(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .expect("a line of arguments")
            .split_whitespace()
            .collect();
        let exits: i32 = text
            .lines()
            .find_map(|l| l.strip_prefix("# exits "))
            .map_or(0, |n| n.trim().parse().expect("# exits N"));
        for (format, ext) in [("human", "out"), ("json", "json")] {
            let mut full = vec!["route"];
            full.extend(&args);
            full.extend(["--format", format]);
            let out = cc(&root, &full);
            let got = rendered(&out);
            if out.status.code() != Some(exits) {
                problems.push(format!(
                    "{}: {format}: exit {:?}, wanted {exits}:\n{got}",
                    case.display(),
                    out.status.code()
                ));
            }
            if format == "json" && exits != 2 {
                if let Err(e) = serde_json::from_str::<Value>(stdout(&out).trim()) {
                    problems.push(format!("{}: not one JSON object: {e}", case.display()));
                }
            }
            let golden = case.with_extension(ext);
            if bless {
                std::fs::write(&golden, &got).expect("bless");
                continue;
            }
            match std::fs::read_to_string(&golden) {
                Ok(want) if want == got => {}
                Ok(want) => problems.push(format!(
                    "{} differs:\n--- want\n{want}\n--- got\n{got}",
                    golden.display()
                )),
                Err(_) => problems.push(format!(
                    "{} is missing (TCPRELAY_BLESS=1 writes it); got:\n{got}",
                    golden.display()
                )),
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

/// A TCP server on `127.0.0.1:0` that answers every connection with its name and
/// closes it; stopped (its socket closed, so connections to it are refused) by
/// [`Named::stop`] or when dropped.
struct Named {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Named {
    fn start(name: &'static str) -> Named {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a remote");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        let _ = stream.set_nonblocking(false);
                        let _ = stream.write_all(name.as_bytes());
                        let _ = stream.shutdown(std::net::Shutdown::Write);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            // The listener is dropped here: the port refuses connections.
        });
        Named {
            port,
            stop,
            thread: Some(thread),
        }
    }

    /// Closes the listening socket and waits until it is closed.
    fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the remote's thread");
        }
    }

    fn key(&self) -> String {
        format!("127.0.0.1:{}/TCP", self.port)
    }
}

impl Drop for Named {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What the relay on `port` does for a client from `127.0.0.from`: `Some(name)` of
/// the remote that answered, `None` when the connection was closed with nothing.
fn connect_from(port: u16, from: u8) -> Option<String> {
    let mut stream = harness::connect_from(port, from, Duration::from_secs(10));
    let mut got = Vec::new();
    match stream.read_to_end(&mut got) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("reading from the relay: {e}"),
    }
    (!got.is_empty()).then(|| String::from_utf8(got).expect("a name"))
}

/// `tcprelay-cc route INPUT --from 127.0.0.from --to 127.0.0.1:port --format json`:
/// its exit status and its answer.
fn route(dir: &Path, input: &str, from: u8, port: u16) -> (i32, Value) {
    let from = format!("127.0.0.{from}");
    let to = format!("127.0.0.1:{port}");
    let out = cc(
        dir,
        &[
            "route", input, "--from", &from, "--to", &to, "--format", "json",
        ],
    );
    let answer = serde_json::from_str(stdout(&out).trim())
        .unwrap_or_else(|e| panic!("route answered no JSON ({e}): {}", rendered(&out)));
    (out.status.code().expect("an exit status"), answer)
}

/// Waits until the relay holds no session: a worker's loads are back to none, so
/// its next client sees the order route gives for a worker with no session.
fn no_sessions(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = Command::new(harness::bin("tcprelay"))
            .args(["ctl", "--json", "status"])
            .env("RUNTIME_DIRECTORY", dir)
            .output()
            .expect("tcprelay ctl runs");
        let status: Value = serde_json::from_str(stdout(&out).trim()).unwrap_or(Value::Null);
        if status["sessions"] == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "sessions stay open: {status}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn route_agrees_with_the_relay_on_verdicts_remotes_and_failover() {
    let mut remotes = [Named::start("a"), Named::start("b"), Named::start("c")];
    let names: Vec<(String, &str)> = remotes
        .iter()
        .zip(["a", "b", "c"])
        .map(|(r, n)| (r.key(), n))
        .collect();
    let name_of = |key: &str| {
        names
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, n)| n.to_string())
            .unwrap_or_else(|| panic!("route names a remote of the plan: {key}"))
    };
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "id = spawnd {{
    listen = {{ address = 127.0.0.1 port = {port} }}
    spawn = {{ servers min = 1 servers max = 1 }}
    acl = deny 127.0.0.3
    acl = permit 127.0.0.0/29
}}
id = tcprelay {{
    remote = {{ address = 127.0.0.1 port = {} weight = 1 }}
    remote = {{ address = 127.0.0.1 port = {} weight = 3 }}
    remote = {{ address = 127.0.0.1 port = {} weight = 2 }}
    connect timeout = 2
}}
",
        remotes[0].port, remotes[1].port, remotes[2].port
    );
    let plan = compile(dir.path(), "relay", &cfg);
    let plan = plan.to_str().unwrap();
    // Debug lines: a denial names the rule that decided, as route does.
    let relay = Relay::start(dir.path(), &["run", "-d", "1", "-f", plan], port);
    relay.await_workers(1, Duration::from_secs(10));

    // 127.0.0.2: permitted by rule #2; 127.0.0.3: denied by rule #1; 127.0.0.9:
    // no rule matches. Asked of the configuration and of the plan alike.
    for (from, rule, permitted) in [(2, Some(1), true), (3, Some(0), false), (9, None, false)] {
        let (code, answer) = route(dir.path(), "relay.cfg", from, port);
        let (plan_code, plan_answer) = route(dir.path(), plan, from, port);
        assert_eq!(
            (code, &answer["acl"]["rule"]["index"]),
            (plan_code, &plan_answer["acl"]["rule"]["index"]),
            "a plan file and its configuration get one answer"
        );
        assert_eq!(
            answer["acl"]["rule"]["index"],
            rule.map_or(Value::Null, Value::from)
        );
        no_sessions(dir.path());
        let served = connect_from(port, from);
        if permitted {
            assert_eq!(code, 0, "{answer}");
            assert_eq!(answer["result"]["outcome"], "relayed");
            let first = answer["balance"]["candidates"][0]["remote"]
                .as_str()
                .expect("a first candidate");
            assert_eq!(
                served.as_deref(),
                Some(name_of(first).as_str()),
                "the relay served 127.0.0.{from} by route's first candidate"
            );
            assert!(answer["acl"]["rule"]["at"]
                .as_str()
                .is_some_and(|at| at.ends_with("relay.cfg:5:18")));
        } else {
            assert_eq!(code, 1, "{answer}");
            assert_eq!(answer["result"]["stage"], "acl");
            assert_eq!(served, None, "the relay closed 127.0.0.{from} unserved");
        }
    }

    relay.await_log("denied by the acl (rule #1)", Duration::from_secs(5));
    relay.await_log(
        "denied by the acl (no rule matches)",
        Duration::from_secs(5),
    );

    // The first candidate stops: the relay fails over to route's second.
    let (_, answer) = route(dir.path(), "relay.cfg", 2, port);
    let order: Vec<String> = answer["balance"]["candidates"]
        .as_array()
        .expect("candidates")
        .iter()
        .map(|c| name_of(c["remote"].as_str().unwrap()))
        .collect();
    assert_eq!(order.len(), 3);
    let first = order[0].clone();
    remotes
        .iter_mut()
        .find(|r| name_of(&r.key()) == first)
        .unwrap()
        .stop();
    no_sessions(dir.path());
    assert_eq!(
        connect_from(port, 2).as_deref(),
        Some(order[1].as_str()),
        "with {first} stopped, the second candidate serves"
    );
    drop(relay);
}

#[test]
fn inputs_that_give_no_plan_exit_2_with_one_reason_and_no_answer() {
    let d = tempfile::tempdir().unwrap();
    let ask = |input: &str| {
        cc(
            d.path(),
            &[
                "route",
                input,
                "--from",
                "127.0.0.1",
                "--to",
                "127.0.0.1:8080",
            ],
        )
    };
    // A configuration with errors: its diagnostics, then why there is no answer.
    std::fs::write(
        d.path().join("bad.cfg"),
        "id = spawnd {\n listen = { port = 80 }\n}\n",
    )
    .unwrap();
    let out = ask("bad.cfg");
    assert_eq!(out.status.code(), Some(2));
    assert!(stdout(&out).is_empty(), "no answer: {}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains("[E0010]"), "{err}");
    assert!(
        err.ends_with("bad.cfg: the configuration has errors: no route to show\n"),
        "{err}"
    );
    // A plan file cut short: named, in one line.
    let plan = compile(
        d.path(),
        "relay",
        &std::fs::read_to_string(harness::root().join("examples/relay.cfg")).unwrap(),
    );
    let bytes = std::fs::read(&plan).unwrap();
    std::fs::write(d.path().join("cut.plan"), &bytes[..60]).unwrap();
    let out = ask("cut.plan");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cut.plan: plan file is truncated"),
        "{}",
        stderr(&out)
    );
    // A FIFO is refused at once, not waited on.
    assert!(Command::new("mkfifo")
        .arg(d.path().join("fifo"))
        .status()
        .unwrap()
        .success());
    let started = Instant::now();
    let out = ask("fifo");
    assert_eq!(out.status.code(), Some(2));
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(stderr(&out).contains("it is a FIFO"), "{}", stderr(&out));
    // The whole plan answers as its configuration does, without places.
    let out = ask(plan.to_str().unwrap());
    assert_eq!(out.status.code(), Some(0), "{}", rendered(&out));
    assert!(stdout(&out).contains("listener  #1 127.0.0.1:8080 TCP (exact match)\n"));
    assert!(
        !stdout(&out).contains(".cfg:"),
        "a plan has no places: {}",
        stdout(&out)
    );
}
