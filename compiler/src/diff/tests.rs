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
        "remotes": [{"remote": "127.0.0.1:9001/TCP", "active": 6, "in_plan": true},
                    {"remote": "127.0.0.1:9002/TCP", "active": 14, "in_plan": true}],
        "listeners": [{"listener": "127.0.0.1:8080", "active": 20, "in_plan": true}],
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
    let new = side(&edited(&[
        (" remote = { address = 127.0.0.1 port = 9002 }\n", ""),
        ("port = 8080 }", "port = 8081 }"),
    ]));
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
    assert_eq!(
        (r.listeners[0].key.as_str(), r.listeners[0].active_sessions),
        ("127.0.0.1:8080/TCP", Some(20))
    );
    let text = render(&r);
    assert!(
        text.contains("20 sessions accepted by listener 127.0.0.1:8080/TCP, which NEW removes, stay in generation 3 (and older) until they end."),
        "{text}"
    );
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
        listeners: vec![running::ListenerSessions {
            listener: "unix:/run/a.sock".into(),
            active: 2,
        }],
    };
    assert_eq!(counts.on_remote("[::1]:80/TCP"), Some(5));
    assert_eq!(counts.on_remote("[::1]:81/TCP"), None);
    assert_eq!(counts.on_listener("unix:/run/a.sock"), Some(2));
    assert_eq!(counts.on_listener("unix:/run/b.sock"), None);
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
            // A value of another type, which serde's message would quote.
            answer(&plan_of(BASE), serde_json::json!(null))
                .replace("\"users_min\":20", "\"users_min\":\"Hunter2Secret\""),
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
            _ => "cannot be read (a field missing or of another type): not the plan of this tcprelay-cc's version",
        };
        assert!(e.contains(expected), "{what}: {e}");
        assert!(!e.contains("Hunter2Secret"), "{e}");
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

#[test]
fn a_listener_with_the_same_address_and_protocol_keeps_its_socket() {
    let new = edited(&[(
        "port = 8080 }",
        "port = 8080 backlog = 1024 dscp = 10 }\n listen = { address = 127.0.0.1 port = 8081 }",
    )]);
    let r = report(BASE, &new);
    let kept = &r.listeners[0];
    assert_eq!(
        (kept.key.as_str(), kept.change, kept.socket),
        ("127.0.0.1:8080/TCP", Change::Changed, Some("kept"))
    );
    let fields: Vec<(&str, Option<&str>, Option<&str>, Effect)> = kept
        .fields
        .iter()
        .map(|f| {
            (
                f.field.as_str(),
                f.old.as_deref(),
                f.new.as_deref(),
                f.effect,
            )
        })
        .collect();
    assert_eq!(
        fields,
        [
            ("backlog", Some("128"), Some("1024"), Effect::Socket),
            // It follows the backlog when not given.
            (
                "overload backlog",
                Some("128"),
                Some("1024"),
                Effect::Reload
            ),
            ("dscp", None, Some("10"), Effect::Socket),
        ]
    );
    let added = &r.listeners[1];
    assert_eq!(
        (added.key.as_str(), added.change, added.socket),
        ("127.0.0.1:8081/TCP", Change::Added, Some("bound"))
    );
    // Another protocol on the same address is another socket: closed and bound.
    let sctp = edited(&[("port = 8080 }", "port = 8080 protocol = SCTP }")]);
    let r = report(BASE, &sctp);
    let changes: Vec<(&str, Change)> = r
        .listeners
        .iter()
        .map(|l| (l.key.as_str(), l.change))
        .collect();
    assert_eq!(
        changes,
        [
            ("127.0.0.1:8080/TCP", Change::Removed),
            ("127.0.0.1:8080/SCTP", Change::Added)
        ]
    );
    let text = render(&r);
    assert!(
        text.contains("The master closes the socket of 127.0.0.1:8080/TCP at the reload"),
        "{text}"
    );
}

#[test]
fn remotes_are_added_removed_reweighted_and_reordered() {
    let new = edited(&[
        ("port = 9001 weight = 2 }", "port = 9001 weight = 5 }"),
        (
            " remote = { address = 127.0.0.1 port = 9002 }\n",
            " remote = { address = 127.0.0.1 port = 9003 send proxy = v2 }\n",
        ),
    ]);
    let r = report(BASE, &new);
    let summary: Vec<(&str, Change)> = r
        .remotes
        .iter()
        .map(|i| (i.key.as_str(), i.change))
        .collect();
    assert_eq!(
        summary,
        [
            ("127.0.0.1:9001/TCP", Change::Changed),
            ("127.0.0.1:9002/TCP", Change::Removed),
            ("127.0.0.1:9003/TCP", Change::Added),
        ]
    );
    let weight = &r.remotes[0].fields[0];
    assert_eq!(
        (
            weight.field.as_str(),
            weight.old.as_deref(),
            weight.new.as_deref()
        ),
        ("weight", Some("2"), Some("5"))
    );
    assert!(weight.note.as_deref().unwrap().contains("ctl drain"));
    // The same remotes in another order: a change (ties go to the first).
    let swapped = "id = spawnd {\n listen = { address = 127.0.0.1 port = 8080 }\n}\nid = tcprelay {\n remote = { address = 127.0.0.1 port = 9002 }\n remote = { address = 127.0.0.1 port = 9001 weight = 2 }\n}\n";
    let r = report(BASE, swapped);
    assert!(r.changed && r.remotes.is_empty(), "{r:#?}");
    assert_eq!(
        (
            r.settings[0].field.as_str(),
            r.settings[0].old.as_deref(),
            r.settings[0].new.as_deref()
        ),
        (
            "remote order",
            Some("127.0.0.1:9001/TCP, 127.0.0.1:9002/TCP"),
            Some("127.0.0.1:9002/TCP, 127.0.0.1:9001/TCP")
        )
    );
}

#[test]
fn acl_changes_are_an_edit_script_with_indexes_and_a_moved_rule_is_a_change() {
    let acl = |rules: &str| edited(&[("}\nid = tcprelay", &format!("{rules}}}\nid = tcprelay"))]);
    let old =
        acl(" acl = permit 10.0.0.0/8\n acl = permit 192.168.0.0/16\n acl = deny 0.0.0.0/0\n");
    let new = acl(" acl = permit 10.0.0.0/8\n acl = permit 172.16.0.0/12\n acl = deny 0.0.0.0/0\n acl = permit not 192.0.2.0/24\n");
    let r = report(&old, &new);
    let lines: Vec<String> = r
        .acl
        .iter()
        .map(|l| format!("{} #{} {}", l.op, l.index, l.rule))
        .collect();
    assert_eq!(
        lines,
        [
            "- #1 permit 192.168.0.0/16",
            "+ #1 permit 172.16.0.0/12",
            "+ #3 permit not 192.0.2.0/24"
        ]
    );
    // First match wins: the same rules in another order differ.
    let moved =
        acl(" acl = deny 0.0.0.0/0\n acl = permit 10.0.0.0/8\n acl = permit 192.168.0.0/16\n");
    let r = report(&old, &moved);
    assert!(r.changed);
    assert_eq!(r.acl.len(), 2, "{:?}", r.acl);
}

#[test]
fn every_setting_says_when_it_takes_effect() {
    let new = edited(&[
        (
            "}\nid = tcprelay",
            " user = nobody\n overload = close\n log format = json\n}\nid = tcprelay",
        ),
        (
            "weight = 2 }\n",
            "weight = 2 }\n idle timeout = 30\n drain timeout = 60\n",
        ),
    ]);
    let r = report(BASE, &new);
    let effects: Vec<(&str, Effect)> = r
        .settings
        .iter()
        .map(|f| (f.field.as_str(), f.effect))
        .collect();
    assert_eq!(
        effects,
        [
            ("user", Effect::Restart),
            ("overload", Effect::Reload),
            ("log format", Effect::NewSessions),
            ("idle timeout", Effect::NewSessions),
            ("drain timeout", Effect::Reload),
        ]
    );
    let text = render(&r);
    assert!(
        text.contains("  user: none -> nobody (takes effect at restart only)\n"),
        "{text}"
    );
    assert!(
        text.contains("A reload does not apply user: restart the relay for it."),
        "{text}"
    );
    assert!(
        text.contains("until they end or for at most 60 s (NEW's drain timeout)"),
        "{text}"
    );
}

/// A certificate file with the same path whose content changed since the relay
/// loaded it: the running side's facts come from the answer's PEM, NEW's from the
/// file read now, and the fingerprints differ.
#[test]
fn a_certificate_replaced_under_the_same_path_shows_a_new_fingerprint() {
    use crate::tlscheck::test_pki;
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    let key = test_pki::ec_key();
    let loaded = test_pki::self_signed(&key);
    let replaced = test_pki::self_signed(&test_pki::ec_key());
    std::fs::write(&cert, replaced.to_pem().unwrap()).unwrap();
    let src = format!(
        "id = spawnd {{ listen = {{ address = 127.0.0.1 port = 1 tls = yes }} }}\n\
         id = tcprelay {{ remote = {{ address = 127.0.0.1 port = 2 }} tls cert-file = {} tls key-file = /nonexistent/k.pem }}",
        cert.display()
    );
    let plan = plan_of(&src);
    let file = cert.display().to_string();
    let running = Running {
        socket: "/run/ctl".into(),
        generation: 1,
        plan_hash: "0".into(),
        plan: plan.redacted(),
        certificates: vec![Loaded {
            file: file.clone(),
            pem: String::from_utf8(loaded.to_pem().unwrap()).unwrap(),
        }],
        sessions: None,
    };
    let r = diff(&Side::running(running.clone()), &side(&src));
    assert!(r.changed, "{r:#?}");
    let change = &r.certificates[0];
    assert_eq!(
        (change.role.as_str(), change.change),
        ("listener certificate", Change::Changed)
    );
    let (old, new) = (change.old.as_ref().unwrap(), change.new.as_ref().unwrap());
    assert_eq!((old.read, new.read), ("running", "now"));
    let fingerprint = |x: &openssl::x509::X509| crate::tlscheck::facts(x).unwrap().sha256;
    assert_eq!(old.certificates[0].sha256, fingerprint(&loaded));
    assert_eq!(new.certificates[0].sha256, fingerprint(&replaced));
    assert!(render(&r).contains(&fingerprint(&replaced)));
    // The same certificate on both sides: no change.
    std::fs::write(&cert, loaded.to_pem().unwrap()).unwrap();
    let r = diff(&Side::running(running), &side(&src));
    assert!(!r.changed, "{r:#?}");
    // Never a key: the JSON holds no PEM block at all.
    assert!(!json(&r).contains("-----BEGIN"));
}

#[test]
fn setenv_changes_and_a_removed_variable_staying_set() {
    let with = |env: &str| format!("{env}{BASE}");
    let r = report(
        &with("setenv A = 1\nsetenv B = 2\n"),
        &with("setenv A = 3\n"),
    );
    let lines: Vec<String> = r
        .settings
        .iter()
        .map(|f| format!("{}: {:?} -> {:?} {:?}", f.field, f.old, f.new, f.note))
        .collect();
    assert_eq!(
        lines,
        [
            "setenv A: Some(\"1\") -> Some(\"3\") None",
            "setenv B: Some(\"2\") -> None Some(\"stays set in the master, and so in new workers, until restart\")"
        ]
    );
}

/// Every field of the plan, changed alone, is reported: the destructuring makes a
/// new field fail to compile; this makes a destructured field that is not compared
/// fail here.
#[test]
fn every_field_of_the_plan_changed_alone_is_a_change() {
    let base = mutation_base();
    let old = Side::of("plan", "a", base.clone());
    assert!(!diff(&old, &Side::of("plan", "b", base.clone())).changed);
    assert_eq!(edits().len(), EDITS);
    for (what, edit) in edits() {
        let mut plan = base.clone();
        edit(&mut plan);
        assert_ne!(plan, base, "{what}: the edit changes nothing");
        let r = diff(&old, &Side::of("plan", "b", plan));
        assert!(r.changed, "{what} is not reported");
    }
    // Only the names of the input are not changes.
    let mut plan = base.clone();
    plan.source = "other.cfg".into();
    plan.spawnd_id = "s2".into();
    plan.tcprelay_id = "t2".into();
    assert!(!diff(&old, &Side::of("plan", "b", plan)).changed);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Any combination of edits: `diff` says "changed" exactly when the plans
    /// differ, both ways round, and both renderings hold.
    #[test]
    fn changed_is_exactly_whether_the_plans_differ(picks in proptest::collection::vec(proptest::prelude::any::<bool>(), EDITS)) {
        let base = mutation_base();
        let mut plan = base.clone();
        for ((_, edit), pick) in edits().iter().zip(&picks) {
            if *pick {
                edit(&mut plan);
            }
        }
        let (a, b) = (Side::of("plan", "a", base.clone()), Side::of("plan", "b", plan.clone()));
        let r = diff(&a, &b);
        proptest::prop_assert_eq!(r.changed, plan != base);
        proptest::prop_assert_eq!(diff(&b, &a).changed, r.changed);
        let _ = render(&r);
        let value: serde_json::Value = serde_json::from_str(&json(&r)).expect("JSON");
        proptest::prop_assert_eq!(value["changed"].as_bool(), Some(r.changed));
    }
}

type Edit = Box<dyn Fn(&mut Plan)>;

/// How many [`edits`] there are.
const EDITS: usize = 93;

/// A plan with something in every optional place, for [`edits`].
fn mutation_base() -> Plan {
    let src = "id = spawnd {\n listen = { address = 127.0.0.1 port = 8080 tls = yes accept proxy = v2 }\n listen = { path = /tmp/diff-test.sock }\n control = { path = /tmp/ctl }\n}\n\
               id = tcprelay {\n remote = { address = 127.0.0.1 port = 9001 tls = yes tls sni = a.example check = { send = \"x\" } }\n remote = { address = 127.0.0.1 port = 9002 }\n\
               route = { sni = r.example mode = passthrough remote = { address = 127.0.0.1 port = 9003 } }\n\
               tls cert-file = /nonexistent/c.pem\n}\n";
    plan_of(src)
}

/// One edit of every field of the plan, each named.
fn edits() -> Vec<(&'static str, Edit)> {
    use tcprelay_plan::*;
    let l = |f: fn(&mut Listener)| -> Edit {
        Box::new(move |p: &mut Plan| f(&mut p.spawnd.listeners[0]))
    };
    let u = |f: fn(&mut Listener)| -> Edit {
        Box::new(move |p: &mut Plan| f(&mut p.spawnd.listeners[1]))
    };
    let s = |f: fn(&mut Spawnd)| -> Edit { Box::new(move |p: &mut Plan| f(&mut p.spawnd)) };
    let r = |f: fn(&mut Relay)| -> Edit { Box::new(move |p: &mut Plan| f(&mut p.relay)) };
    let m =
        |f: fn(&mut Remote)| -> Edit { Box::new(move |p: &mut Plan| f(&mut p.relay.remotes[0])) };
    let t = |f: fn(&mut RemoteTls)| -> Edit {
        Box::new(move |p: &mut Plan| {
            if let Some(x) = p.relay.remotes[0].tls.as_mut() {
                f(x)
            }
        })
    };
    let c = |f: fn(&mut Check)| -> Edit {
        Box::new(move |p: &mut Plan| {
            if let Some(x) = p.relay.remotes[0].check.as_mut() {
                f(x)
            }
        })
    };
    let a = |f: fn(&mut AcceptProxy)| -> Edit {
        Box::new(move |p: &mut Plan| {
            if let Some(x) = p.spawnd.listeners[0].accept_proxy.as_mut() {
                f(x)
            }
        })
    };
    vec![
        (
            "env",
            Box::new(|p: &mut Plan| p.env.push(("X".into(), "1".into()))),
        ),
        (
            "listener address",
            l(|l| l.address = ListenAddress::Inet("127.0.0.1:1".parse().unwrap())),
        ),
        ("listener protocol", l(|l| l.protocol = Protocol::Sctp)),
        ("listener tls", l(|l| l.tls = false)),
        ("backlog", l(|l| l.backlog = 7)),
        ("overload backlog", l(|l| l.overload_backlog = 7)),
        ("realm", l(|l| l.realm = Some("r".into()))),
        ("keepalive count", l(|l| l.keepalive.count = Some(1))),
        ("keepalive idle", l(|l| l.keepalive.idle = Some(1))),
        ("keepalive interval", l(|l| l.keepalive.interval = Some(1))),
        ("mode", u(|l| l.mode = Some(0o600))),
        ("accept proxy off", l(|l| l.accept_proxy = None)),
        ("accept proxy version", a(|a| a.version = ProxyAccept::V1)),
        (
            "accept proxy from",
            a(|a| {
                a.from.push(Network {
                    address: "10.0.0.1".parse().unwrap(),
                    prefix: 32,
                })
            }),
        ),
        ("accept proxy timeout", a(|a| a.timeout_ms += 1)),
        (
            "tls versions",
            l(|l| l.tls_versions = vec![TlsVersion::Tls13]),
        ),
        ("tls auto", l(|l| l.tls_auto = true)),
        ("dscp", l(|l| l.dscp = Some(1))),
        ("vrf", l(|l| l.vrf = Some("blue".into()))),
        ("owner", u(|l| l.owner = Some("nobody".into()))),
        ("group", u(|l| l.group = Some("nogroup".into()))),
        ("bind retry delay", l(|l| l.bind_retry_delay = Some(3))),
        (
            "listener sticky",
            l(|l| {
                l.sticky = Some(Sticky {
                    period_s: 1,
                    size: 1,
                })
            }),
        ),
        (
            "listener order",
            Box::new(|p: &mut Plan| p.spawnd.listeners.swap(0, 1)),
        ),
        ("users min", s(|s| s.users_min += 1)),
        ("users max", s(|s| s.users_max += 1)),
        ("servers min", s(|s| s.servers_min += 1)),
        ("servers max", s(|s| s.servers_max += 1)),
        ("background", s(|s| s.background = !s.background)),
        ("pidfile", s(|s| s.pidfile = Some("/p".into()))),
        ("user", s(|s| s.user = Some("u".into()))),
        ("spawnd group", s(|s| s.group = Some("g".into()))),
        (
            "working directory",
            s(|s| s.working_directory = Some("/".into())),
        ),
        (
            "acl",
            s(|s| {
                s.acl.push(AclRule {
                    permit: true,
                    negate: false,
                    network: "10.0.0.0".parse().unwrap(),
                    prefix: 8,
                })
            }),
        ),
        ("overload", s(|s| s.overload = Overload::Reset)),
        ("spawnd keepalive", s(|s| s.keepalive.idle = Some(9))),
        (
            "single process",
            s(|s| s.single_process = !s.single_process),
        ),
        ("spawnd syslog ident", s(|s| s.syslog.ident = "x".into())),
        (
            "spawnd syslog facility",
            s(|s| s.syslog.facility = Facility::Local7),
        ),
        (
            "spawnd syslog severity",
            s(|s| s.syslog.severity = Severity::Emerg),
        ),
        ("debug", s(|s| s.debug = 1)),
        ("tcp bufsize", s(|s| s.tcp_bufsize = Some(4096))),
        (
            "sticky",
            s(|s| {
                s.sticky = Some(Sticky {
                    period_s: 1,
                    size: 1,
                })
            }),
        ),
        ("proctitle", s(|s| s.proctitle = Some("x".into()))),
        ("control off", s(|s| s.control = None)),
        (
            "control path",
            s(|s| {
                if let Some(c) = s.control.as_mut() {
                    c.path = Some("/other".into())
                }
            }),
        ),
        (
            "control mode",
            s(|s| {
                if let Some(c) = s.control.as_mut() {
                    c.mode = 0o660
                }
            }),
        ),
        (
            "control group",
            s(|s| {
                if let Some(c) = s.control.as_mut() {
                    c.group = Some("g".into())
                }
            }),
        ),
        (
            "metrics",
            s(|s| {
                s.metrics = Some(Metrics {
                    address: "127.0.0.1".parse().unwrap(),
                    port: 9,
                })
            }),
        ),
        ("log format", s(|s| s.log_format = LogFormat::Json)),
        (
            "local address",
            r(|r| r.local_address = Some("127.0.0.2".parse().unwrap())),
        ),
        ("rebalance", r(|r| r.rebalance = Some(3))),
        ("retire", r(|r| r.retire = Some(3))),
        ("idle timeout", r(|r| r.idle_timeout += 1)),
        ("silent timeout", r(|r| r.silent_timeout += 1)),
        ("connect timeout", r(|r| r.connect_timeout += 1)),
        ("tls handshake timeout", r(|r| r.tls_handshake_timeout += 1)),
        ("half close timeout", r(|r| r.half_close_timeout += 1)),
        ("drain timeout", r(|r| r.drain_timeout += 1)),
        ("drain generations", r(|r| r.drain_generations += 1)),
        (
            "connection log",
            r(|r| r.connection_log = !r.connection_log),
        ),
        ("relay syslog ident", r(|r| r.syslog.ident = "x".into())),
        (
            "relay syslog facility",
            r(|r| r.syslog.facility = Facility::Local7),
        ),
        (
            "relay syslog severity",
            r(|r| r.syslog.severity = Severity::Emerg),
        ),
        ("tls off", r(|r| r.tls = None)),
        ("balance", r(|r| r.balance = Balance::Source)),
        (
            "routes",
            r(|r| {
                r.routes.push(Route {
                    names: vec!["a.example".into()],
                    mode: RouteMode::Passthrough,
                    tls: None,
                    balance: None,
                })
            }),
        ),
        (
            "discovered",
            r(|r| {
                r.discovered.push(Discovered {
                    name: "db.example".into(),
                    lookup: Lookup::Srv,
                    template: Remote::new("0.0.0.0:0".parse().unwrap()),
                })
            }),
        ),
        ("resolve", r(|r| r.resolve.attempts += 1)),
        (
            "tls cert-file",
            r(|r| {
                if let Some(t) = r.tls.as_mut() {
                    t.cert_file = "/other.pem".into()
                }
            }),
        ),
        (
            "tls key-file",
            r(|r| {
                if let Some(t) = r.tls.as_mut() {
                    t.key_file = "/other.pem".into()
                }
            }),
        ),
        (
            "tls passphrase",
            r(|r| {
                if let Some(t) = r.tls.as_mut() {
                    t.passphrase = Some(Secret::new("s"))
                }
            }),
        ),
        (
            "remote address",
            m(|m| m.address = "127.0.0.1:1".parse().unwrap()),
        ),
        ("remote protocol", m(|m| m.protocol = Protocol::Sctp)),
        ("weight", m(|m| m.weight += 1)),
        ("send proxy", m(|m| m.send_proxy = Some(ProxyVersion::V1))),
        ("remote tls off", m(|m| m.tls = None)),
        ("remote route", m(|m| m.route = Some(0))),
        ("sni", t(|t| t.sni = Some("b.example".into()))),
        ("verify", t(|t| t.verify = !t.verify)),
        ("ca-file", t(|t| t.ca_file = Some("/ca.pem".into()))),
        ("cert-file", t(|t| t.cert_file = Some("/c.pem".into()))),
        ("key-file", t(|t| t.key_file = Some("/k.pem".into()))),
        (
            "remote passphrase",
            t(|t| t.passphrase = Some(Secret::new("s"))),
        ),
        ("check off", m(|m| m.check = None)),
        ("check interval", c(|c| c.interval_ms += 1)),
        ("check timeout", c(|c| c.timeout_ms += 1)),
        ("check rise", c(|c| c.rise += 1)),
        ("check fall", c(|c| c.fall += 1)),
        ("check send", c(|c| c.send = None)),
        (
            "check expect",
            c(|c| c.expect = Some(Expect::Regex("x".into()))),
        ),
        ("check tls", c(|c| c.tls = !c.tls)),
        (
            "remote order",
            Box::new(|p: &mut Plan| p.relay.remotes.swap(0, 1)),
        ),
    ]
}

#[test]
fn a_unix_listener_is_named_by_its_path_and_its_mode_change_noted() {
    let old = edited(&[(
        "port = 8080 }",
        "port = 8080 }\n listen = { path = /tmp/diff-a.sock mode = 0660 }",
    )]);
    let new = edited(&[(
        "port = 8080 }",
        "port = 8080 }\n listen = { path = /tmp/diff-a.sock }",
    )]);
    let r = report(&old, &new);
    let kept = &r.listeners[0];
    assert_eq!(
        (kept.key.as_str(), kept.socket),
        ("unix:/tmp/diff-a.sock", Some("kept"))
    );
    let mode = &kept.fields[0];
    assert_eq!(
        (
            mode.field.as_str(),
            mode.old.as_deref(),
            mode.new.as_deref(),
            mode.note.as_deref()
        ),
        (
            "mode",
            Some("0660"),
            None,
            Some("the kept socket file keeps its mode")
        )
    );
}

#[test]
fn discovered_names_are_compared_by_name_and_the_resolver_settings_by_field() {
    let old = edited(&[(
        " remote = { address = 127.0.0.1 port = 9002 }\n",
        " remote = { address = db.example port = 5432 }\n remote = { srv = _redis._tcp.example }\n resolve interval = 30\n",
    )]);
    let new = edited(&[(
        " remote = { address = 127.0.0.1 port = 9002 }\n",
        " remote = { address = DB.example port = 5432 weight = 3 }\n remote = { address = cache.example port = 6379 }\n resolvers = { nameserver = 127.0.0.1:5353 }\n",
    )]);
    let r = report(&old, &new);
    assert!(r.changed);
    let items: Vec<(&str, Change)> = r
        .discovered
        .iter()
        .map(|i| (i.key.as_str(), i.change))
        .collect();
    assert_eq!(
        items,
        [
            ("db.example:5432/TCP (A/AAAA)", Change::Changed),
            ("_redis._tcp.example/TCP (SRV)", Change::Removed),
            ("cache.example:6379/TCP (A/AAAA)", Change::Added),
        ]
    );
    let weight = &r.discovered[0].fields[0];
    assert_eq!(
        (weight.field.as_str(), weight.effect),
        ("weight", Effect::NewSessions)
    );
    // The remotes written with addresses are the same on both sides.
    assert!(r.remotes.is_empty());
    let settings: Vec<(&str, Option<&str>, Option<&str>, Effect)> = r
        .settings
        .iter()
        .map(|f| {
            (
                f.field.as_str(),
                f.old.as_deref(),
                f.new.as_deref(),
                f.effect,
            )
        })
        .collect();
    assert_eq!(
        settings,
        [
            (
                "resolvers nameserver",
                Some("the system's (/etc/resolv.conf)"),
                Some("127.0.0.1:5353"),
                Effect::Reload
            ),
            (
                "resolve interval",
                Some("30 s"),
                Some("the records' TTL"),
                Effect::Reload
            ),
        ]
    );
    let text = human::render(&r);
    assert!(
        text.contains("names resolved at run time (their remotes follow the records):\n"),
        "{text}"
    );
    // Nothing named: no `discovered` in the JSON (its schema unchanged).
    let same = report(BASE, BASE);
    let json = serde_json::to_string(&same).unwrap();
    assert!(!json.contains("discovered"), "{json}");
    let json = serde_json::to_string(&r).unwrap();
    assert!(
        json.contains("\"discovered\":[{\"key\":\"db.example:5432/TCP (A/AAAA)\""),
        "{json}"
    );
}

/// A remote's route is compared by the route's names: the same routes written in
/// another order change no remote; a remote moved to another route is a change that
/// names both routes.
#[test]
fn a_remotes_route_is_compared_by_the_routes_names_not_their_order() {
    let with = |first: (&str, u16), second: (&str, u16)| {
        format!(
            "id = spawnd {{\n listen = {{ address = 127.0.0.1 port = 8443 tls = yes }}\n}}\nid = tcprelay {{\n route = {{ sni = {} mode = passthrough remote = {{ address = 127.0.0.1 port = {} }} }}\n route = {{ sni = {} mode = passthrough remote = {{ address = 127.0.0.1 port = {} }} }}\n}}\n",
            first.0, first.1, second.0, second.1
        )
    };
    let base = with(("a.example", 9001), ("b.example", 9002));
    // The routes swapped in the file, each with its remote: no remote changes.
    let r = report(&base, &with(("b.example", 9002), ("a.example", 9001)));
    assert!(r.remotes.is_empty(), "{r:#?}");
    // The remotes swapped between the routes: each is a change naming both routes.
    let r = report(&base, &with(("a.example", 9002), ("b.example", 9001)));
    let moved: Vec<(&str, &str, Option<&str>, Option<&str>)> = r
        .remotes
        .iter()
        .flat_map(|i| {
            i.fields.iter().map(move |f| {
                (
                    i.key.as_str(),
                    f.field.as_str(),
                    f.old.as_deref(),
                    f.new.as_deref(),
                )
            })
        })
        .collect();
    assert_eq!(
        moved,
        [
            (
                "127.0.0.1:9001/TCP",
                "route",
                Some("route a.example"),
                Some("route b.example")
            ),
            (
                "127.0.0.1:9002/TCP",
                "route",
                Some("route b.example"),
                Some("route a.example")
            ),
        ]
    );
}
