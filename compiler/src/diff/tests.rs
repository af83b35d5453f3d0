//! Unit tests of `diff`: each area on plans compiled from small configurations, and
//! `--running` against a Unix socket server in the test that answers as the
//! master's `plan` request does (the JSON of a real compiled plan, redacted).

use std::io::{BufRead, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::*;
use tcprelay_plan::FORMAT_VERSION;

const BASE: &str = "id = spawnd {\n listen = { address = 127.0.0.1 port = 8080 }\n}\nid = tcprelay {\n remote = { address = 127.0.0.1 port = 9001 weight = 2 }\n remote = { address = 127.0.0.1 port = 9002 }\n}\n";

fn plan_of(src: &str) -> Plan {
    let (plan, diags) = crate::compile(src, "t.cfg", &Selection::default());
    plan.unwrap_or_else(|| panic!("{diags:#?}"))
}

fn side(src: &str) -> Side {
    Side::of("configuration", "t.cfg", plan_of(src))
}

fn report(old: &str, new: &str) -> Report {
    diff(&side(old), &side(new))
}

/// `BASE` with `edit` applied: (from, to) replacements.
fn edited(edits: &[(&str, &str)]) -> String {
    let mut s = BASE.to_string();
    for (from, to) in edits {
        assert!(s.contains(from), "{from:?} not in {s}");
        s = s.replacen(from, to, 1);
    }
    s
}

/// A control server for one client: answers `answer` to the first line it reads
/// and gives back that line. Bounded: it gives up after 10 s.
fn serve(dir: &Path, answer: Option<String>) -> (PathBuf, std::thread::JoinHandle<String>) {
    let path = dir.join("ctl");
    let listener = UnixListener::bind(&path).expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let handle = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        let stream = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => panic!("no client: {e}"),
            }
        };
        stream.set_nonblocking(false).expect("blocking");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut line = String::new();
        let _ = std::io::BufReader::new(&stream).read_line(&mut line);
        match answer {
            Some(answer) => {
                let _ = (&stream).write_all(answer.as_bytes());
            }
            // Silent: hold the connection until the client gives up.
            None => std::thread::sleep(Duration::from_millis(1500)),
        }
        line
    });
    (path, handle)
}

/// The `plan` answer of a relay running `plan` (redacted, as the master sends it).
fn answer(plan: &Plan, sessions: serde_json::Value) -> String {
    let value = serde_json::json!({
        "ok": true,
        "format": FORMAT_VERSION,
        "generation": 3,
        "plan_hash": "9a3c01fe",
        "plan": plan.redacted(),
        "certificates": [],
        "sessions": sessions,
    });
    format!("{value}\n")
}

#[test]
fn running_reads_the_plan_answer_and_names_the_sessions_of_a_removed_remote() {
    let dir = tempfile::tempdir().unwrap();
    let running = plan_of(BASE);
    let sessions = serde_json::json!({
        "total": 20,
        "generations": [{"generation": 3, "sessions": 17, "draining": false},
                        {"generation": 2, "sessions": 3, "draining": true}],
        "remotes": [{"remote": "127.0.0.1:9001/TCP", "active": 6},
                    {"remote": "127.0.0.1:9002/TCP", "active": 14}],
    });
    let (path, server) = serve(dir.path(), Some(answer(&running, sessions)));
    let asked = running::ask(&path).expect("the answer is read");
    assert_eq!(server.join().unwrap(), "plan\n", "the request sent");
    assert_eq!(
        (asked.generation, asked.plan_hash.as_str()),
        (3, "9a3c01fe")
    );
    assert_eq!(
        asked.plan, running,
        "the plan decoded from JSON is the one sent"
    );
    let new = side(&edited(&[(
        " remote = { address = 127.0.0.1 port = 9002 }\n",
        "",
    )]));
    let r = diff(&Side::running(asked), &new);
    assert!(r.changed);
    assert_eq!(r.old.kind, "running");
    assert_eq!(r.old.generation, Some(3));
    let removed = &r.remotes[0];
    assert_eq!(
        (
            removed.key.as_str(),
            removed.change,
            removed.active_sessions
        ),
        ("127.0.0.1:9002/TCP", Change::Removed, Some(14))
    );
    let text = render(&r);
    assert!(
        text.contains("14 sessions on remote 127.0.0.1:9002/TCP, which NEW removes, stay in generation 3 (and older) until they end."),
        "{text}"
    );
    assert!(
        text.contains("The running relay has 20 sessions now, in generation 3 and the draining generation(s) 2 (3 sessions)."),
        "{text}"
    );
}

#[test]
fn an_answer_naming_remotes_without_protocol_is_matched_by_address() {
    let counts = running::SessionCounts {
        total: 5,
        generations: Vec::new(),
        remotes: vec![running::RemoteSessions {
            remote: "[::1]:80".into(),
            active: 5,
        }],
    };
    assert_eq!(counts.on_remote("[::1]:80/TCP"), Some(5));
    assert_eq!(counts.on_remote("[::1]:81/TCP"), None);
}

#[test]
fn a_running_relays_redacted_passphrase_is_not_compared_and_not_a_change() {
    let dir = tempfile::tempdir().unwrap();
    let src = "id = spawnd { listen = { address = 127.0.0.1 port = 1 tls = yes } }\n\
               id = tcprelay { remote = { address = 127.0.0.1 port = 2 }\n\
               tls cert-file = /nonexistent/c.pem tls passphrase = Hunter2Secret }";
    let plan = plan_of(src);
    let (path, server) = serve(dir.path(), Some(answer(&plan, serde_json::json!(null))));
    let asked = running::ask(&path).expect("read");
    server.join().unwrap();
    let r = diff(&Side::running(asked), &side(src));
    assert!(!r.changed, "{r:#?}");
    assert_eq!(
        r.notes,
        ["tls passphrase: not compared (the running relay does not give out secrets)"]
    );
    let all = format!("{}{}", render(&r), json(&r));
    assert!(!all.contains("Hunter2Secret"), "{all}");
}

#[test]
fn passphrases_are_compared_but_never_printed() {
    let src = |pass: &str| {
        format!(
            "id = spawnd {{ listen = {{ address = 127.0.0.1 port = 1 tls = yes }} }}\n\
             id = tcprelay {{ remote = {{ address = 127.0.0.1 port = 2 }}\n\
             tls cert-file = /nonexistent/c.pem tls passphrase = {pass} }}"
        )
    };
    let r = report(&src("FirstSecret1"), &src("OtherSecret2"));
    assert!(r.changed);
    let change = r
        .settings
        .iter()
        .find(|f| f.field == "tls passphrase")
        .expect("a change");
    assert_eq!(
        (change.old.as_deref(), change.new.as_deref()),
        (Some("set"), Some("changed"))
    );
    let all = format!("{}{}", render(&r), json(&r));
    assert!(
        !all.contains("FirstSecret1") && !all.contains("OtherSecret2"),
        "{all}"
    );
    assert!(!report(&src("Same1"), &src("Same1")).changed);
}

/// Each failure of `--running` is one line an operator can act on, within the
/// bound.
#[test]
fn running_failures_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none");
    let e = running::ask(&missing).unwrap_err();
    assert!(
        e.starts_with(&format!("no control socket at {}", missing.display())),
        "{e}"
    );
    // A socket file nobody listens on any more.
    let stale = dir.path().join("stale");
    drop(UnixListener::bind(&stale).unwrap());
    let e = running::ask(&stale).unwrap_err();
    assert!(e.contains("refuses connections"), "{e}");
    let cases: [(&str, String); 4] = [
        ("not json", "HTTP/1.1 400 Bad Request\r\n".into()),
        (
            "older relay",
            "{\"ok\":false,\"error\":\"unknown command `plan`: expected one of status, remotes\"}\n"
                .into(),
        ),
        (
            "format",
            format!(
                "{{\"ok\":true,\"format\":{},\"generation\":1,\"plan_hash\":\"0\",\"plan\":{{}}}}\n",
                FORMAT_VERSION + 1
            ),
        ),
        (
            "bad plan",
            format!(
                "{{\"ok\":true,\"format\":{FORMAT_VERSION},\"generation\":1,\"plan_hash\":\"0\",\"plan\":{{\"source\":1}}}}\n"
            ),
        ),
    ];
    for (what, line) in cases {
        let sub = tempfile::tempdir().unwrap();
        let (path, server) = serve(sub.path(), Some(line));
        let e = running::ask(&path).unwrap_err();
        server.join().unwrap();
        let expected = match what {
            "not json" => "does not answer as a tcprelay control socket: HTTP/1.1 400 Bad Request?",
            "older relay" => "does not know the `plan` request (it is older than this tcprelay-cc)",
            "format" => "this tcprelay-cc reads format",
            _ => "the running plan from",
        };
        assert!(e.contains(expected), "{what}: {e}");
    }
    // A server that never answers: the client gives up at its bound.
    let sub = tempfile::tempdir().unwrap();
    let (path, server) = serve(sub.path(), None);
    let started = Instant::now();
    let e = running::ask_within(&path, Duration::from_millis(500)).unwrap_err();
    assert!(
        e.contains("no answer from") && e.contains("within 0.5 s"),
        "{e}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    server.join().unwrap();
}

#[test]
fn the_socket_is_the_control_option_else_news_path_else_the_default() {
    let env = tcprelay_plan::control_path::PathEnv {
        runtime_directory: Some("/run/relay".into()),
        ..Default::default()
    };
    let plain = plan_of(BASE);
    let given = Path::new("/srv/ctl");
    assert_eq!(
        running::socket_path(Some(given), &plain, &env).unwrap(),
        given
    );
    assert_eq!(
        running::socket_path(None, &plain, &env).unwrap(),
        Path::new("/run/relay/ctl")
    );
    let named = plan_of(&edited(&[(
        "}\nid = tcprelay",
        " control = { path = /srv/relay.sock }\n}\nid = tcprelay",
    )]));
    assert_eq!(
        running::socket_path(None, &named, &env).unwrap(),
        Path::new("/srv/relay.sock")
    );
    let e = running::socket_path(None, &plain, &Default::default()).unwrap_err();
    assert!(e.contains("--control PATH"), "{e}");
}
