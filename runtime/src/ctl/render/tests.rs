//! The renderer on the answers `docs/control.md` shows (so the schema's examples
//! and the tables cannot drift apart), and on answers with fields missing or odd.

use super::*;

/// The ```json blocks of docs/control.md, in order: the error, `status`, `remotes`,
/// `sessions`, `plan`, a message.
fn examples() -> Vec<Value> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/control.md");
    let text = std::fs::read_to_string(path).expect("docs/control.md");
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "```json" {
            let json = lines.next().expect("a line");
            out.push(serde_json::from_str(json.trim()).expect("each example is JSON"));
        }
    }
    assert_eq!(out.len(), 6, "docs/control.md's examples");
    out
}

#[test]
fn status_shows_its_lines_and_a_table_of_generations() {
    let got = render("status", &examples()[1]);
    let want = "\
pid:              4711
uptime:           1d02h
plan:             /etc/tcprelay/relay.cfg
plan hash:        9a3c01fe
generation:       3
sessions:         13
draining:         no
accepted:         120431
refused by ACL:   17
refused (PROXY):  0
refused (SNI):    0
shed by overload: 0
TLS handshakes:   98012 (203 failed)
bytes in:         70.0 MiB
bytes out:        5.0 GiB

GENERATION  STATE     SESSIONS  DEADLINE  WORKERS (STATE, SESSIONS)
3           active    12        -         5120 (accepting, 7), 5121 (full, 5)
2           draining  1         25s       4980 (draining, 1)
";
    assert_eq!(got, want, "\n{got}");
}

/// The remotes' table is the one docs/control.md shows under `tcprelay ctl remotes`.
#[test]
fn remotes_table_is_the_documented_one() {
    let got = render("remotes", &examples()[2]);
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/control.md");
    let text = std::fs::read_to_string(path).expect("docs/control.md");
    let shown = text
        .split("$ tcprelay ctl remotes\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("the documented table");
    assert_eq!(got, shown, "\n{got}");
    assert!(
        got.starts_with("REMOTE                             STATE    WHY "),
        "{got}"
    );
    assert!(
        got.contains("\n10.0.1.5:6379 (redis.example.com)  retired  "),
        "a discovered remote shows its name: {got}"
    );
}

#[test]
fn sessions_table_and_how_many_are_shown() {
    let got = render("sessions", &examples()[3]);
    let want = "\
ID      CLIENT                LISTENER     REMOTE       AGE    IDLE  BYTES-IN  BYTES-OUT
5120.1  192.0.2.10:51544      0.0.0.0:443  10.0.0.7:80  1h02m  2s    1.5 KiB   10.0 MiB
5121.4  [2001:db8::77]:40112  [::]:443     -            0s     0s    0 B       0 B
(2 of 13 sessions shown)
";
    assert_eq!(got, want, "\n{got}");
}

/// `plan` in short is what docs/control.md shows under `tcprelay ctl plan`: the
/// certificate's subject, end and fingerprint read from the answer's PEM.
#[test]
fn plan_shows_the_sessions_and_the_certificates_as_documented() {
    let got = render("plan", &examples()[4]);
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/control.md");
    let text = std::fs::read_to_string(path).expect("docs/control.md");
    let shown = text
        .split("$ tcprelay ctl plan\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("the documented text");
    assert_eq!(got, shown, "\n{got}");
    assert!(
        got.contains("  1. CN=relay.example.com, not after ") && got.contains("     SHA-256 "),
        "{got}"
    );
    // No PEM or certificate could be read: said, not a panic.
    let odd = serde_json::json!({
        "certificates": [{"file": "/x", "pem": "not PEM", "uses": "listener"}, 3],
    });
    let got = render("plan", &odd);
    assert!(
        got.contains("certificate file /x (-):\n  (no certificate could be read)\n"),
        "{got}"
    );
}

#[test]
fn other_commands_print_their_message() {
    assert_eq!(
        render("drain", &examples()[5]),
        "10.0.0.7:80 drained: no new session goes to it; 9 sessions go on\n"
    );
    assert_eq!(render("stop", &serde_json::json!({"ok": true})), "done\n");
}

/// Missing fields, wrong types and control characters show as `-` or `?`: a table
/// still, never a panic or a broken line.
#[test]
fn odd_answers_render_with_dashes() {
    let odd = serde_json::json!({
        "ok": true,
        "remotes": [{"remote": "a\nb\u{1b}[2J", "sessions": -3, "weight": "heavy"}, 7, null],
        "sessions": "many",
        "generations": {"not": "a list"},
    });
    let got = render("remotes", &odd);
    assert_eq!(got.lines().count(), 4, "{got}");
    assert!(
        got.lines()
            .nth(1)
            .unwrap()
            .starts_with("a?b?[2J  -      -    -         -"),
        "{got}"
    );
    assert!(!got.contains('\u{1b}'));
    let status = render("status", &odd);
    assert!(status.contains("sessions:         -\n"), "{status}");
    assert!(status.ends_with("WORKERS (STATE, SESSIONS)\n"), "{status}");
    assert_eq!(
        render("sessions", &serde_json::json!({})),
        "ID  CLIENT  LISTENER  REMOTE  AGE  IDLE  BYTES-IN  BYTES-OUT\n"
    );
}

#[test]
fn durations_and_sizes() {
    let d: Vec<String> = [0, 59, 60, 3599, 3600, 86399, 86400, 200000]
        .into_iter()
        .map(duration)
        .collect();
    assert_eq!(
        d,
        ["0s", "59s", "1m00s", "59m59s", "1h00m", "23h59m", "1d00h", "2d07h"]
    );
    let b: Vec<String> = [0u64, 1023, 1024, 1536, 1 << 30, u64::MAX]
        .into_iter()
        .map(|n| bytes(&Value::from(n)))
        .collect();
    assert_eq!(
        b,
        ["0 B", "1023 B", "1.0 KiB", "1.5 KiB", "1.0 GiB", "16.0 EiB"]
    );
}
