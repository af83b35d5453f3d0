//! `tcprelay ctl` end to end: the real binary against a tiny control server in a
//! thread (a Unix listener in a temporary directory that answers a fixed line), for
//! what it sends, prints and exits with.

use crate::harness::{self, stderr, stdout};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const REMOTES: &str = r#"{"ok":true,"remotes":[{"remote":"10.0.0.7:80","protocol":"tcp","state":"drained","why":"drained by tcprelay ctl","sessions":2,"connections":40,"failures":1,"bytes_in":2048,"bytes_out":1048576,"weight":3,"changed_ago_s":75}]}"#;

/// A server at `dir/ctl` that answers each of `answers`' connections with its line
/// (none: closes without answering), then stops. Its result is the request lines.
fn serve(dir: &Path, answers: Vec<Option<&'static str>>) -> (PathBuf, JoinHandle<Vec<String>>) {
    // Built first (the first call builds the binaries), so that the server's wait
    // for its clients counts from when they can come.
    harness::bin("tcprelay");
    let path = dir.join("ctl");
    let listener = UnixListener::bind(&path).expect("bind");
    listener.set_nonblocking(true).unwrap();
    let server = std::thread::spawn(move || {
        let mut requests = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        for answer in answers {
            let stream = loop {
                match listener.accept() {
                    Ok((stream, _)) => break stream,
                    Err(_) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(10))
                    }
                    Err(e) => panic!("no client came: {e}"),
                }
            };
            stream.set_nonblocking(false).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut line = String::new();
            BufReader::new(&stream)
                .read_line(&mut line)
                .expect("a request");
            requests.push(line);
            if let Some(answer) = answer {
                (&stream)
                    .write_all(format!("{answer}\n").as_bytes())
                    .unwrap();
            }
        }
        requests
    });
    (path, server)
}

fn ctl(args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(harness::bin("tcprelay"));
    cmd.arg("ctl").args(args);
    for (name, value) in env {
        cmd.env(name, value);
    }
    cmd.output().expect("tcprelay runs")
}

#[test]
fn ctl_json_prints_the_answer_as_it_came_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let (path, server) = serve(dir.path(), vec![Some(REMOTES)]);
    let p = path.to_str().unwrap();
    let out = ctl(&["-s", p, "remotes", "--json"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{REMOTES}\n"));
    assert_eq!(stderr(&out), "");
    assert_eq!(server.join().unwrap(), ["remotes\n"]);
}

#[test]
fn ctl_renders_tables_and_sends_the_request_as_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let message = r#"{"ok":true,"message":"weight of [::1]:80 is 3"}"#;
    let (path, server) = serve(dir.path(), vec![Some(REMOTES), Some(message)]);
    let p = path.to_str().unwrap();
    let out = ctl(&["-s", p, "remotes"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with("REMOTE       STATE    WHY  "),
        "{text}"
    );
    for cell in [
        "10.0.0.7:80",
        "drained by tcprelay ctl",
        "2.0 KiB",
        "1.0 MiB",
        "1m15s ago",
    ] {
        assert!(lines[1].contains(cell), "{cell}: {text}");
    }
    let out = ctl(&["--socket", p, "weight", "[::1]:80", "3"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "weight of [::1]:80 is 3\n");
    assert_eq!(server.join().unwrap(), ["remotes\n", "weight [::1]:80 3\n"]);
}

#[test]
fn ctl_exits_1_with_the_error_on_stderr_when_the_answer_is_not_ok() {
    let dir = tempfile::tempdir().unwrap();
    let error = r#"{"ok":false,"error":"no remote 10.0.0.9:80 in the plan"}"#;
    let (path, server) = serve(dir.path(), vec![Some(error), Some(error), None]);
    let p = path.to_str().unwrap();
    let out = ctl(&["-s", p, "drain", "10.0.0.9:80"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "");
    assert_eq!(
        stderr(&out),
        "tcprelay ctl: no remote 10.0.0.9:80 in the plan\n"
    );
    // With --json the answer is printed as it came, and the status is the same.
    let out = ctl(&["-s", p, "--json", "drain", "10.0.0.9:80"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), format!("{error}\n"));
    // A relay that closes without answering.
    let out = ctl(&["-s", p, "reload"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!("the relay closed {p} without a whole answer")),
        "{}",
        stderr(&out)
    );
    assert_eq!(server.join().unwrap().len(), 3);
}

#[test]
fn ctl_exits_2_naming_the_path_when_the_socket_cannot_be_reached() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing-here");
    // A socket nobody listens on: refused.
    let stale = dir.path().join("stale");
    drop(UnixListener::bind(&stale).unwrap());
    for (path, why) in [
        (&missing, "No such file or directory"),
        (&stale, "Connection refused"),
    ] {
        let out = ctl(&["-s", path.to_str().unwrap(), "status"], &[]);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        let e = stderr(&out);
        assert!(
            e.starts_with(&format!(
                "tcprelay ctl: cannot reach the relay's control socket {}: {why}",
                path.display()
            )),
            "{e}"
        );
        assert_eq!(stdout(&out), "");
    }
    // A wrong request is a usage error before any connection (the socket is missing,
    // and the message is about the request).
    let out = ctl(&["-s", missing.to_str().unwrap(), "statsu"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("unknown command `statsu`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn ctl_finds_the_socket_in_runtime_directory_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let status = r#"{"ok":true,"pid":1,"uptime_s":5,"plan":{"source":"a.cfg","hash":"00000001"},"generation":1,"generations":[],"sessions":0,"draining":false,"drain_deadline_s":null,"totals":{"accepted":0,"refused_acl":0,"shed_overload":0,"tls_handshakes":0,"tls_failures":0,"bytes_in":0,"bytes_out":0}}"#;
    let (_, server) = serve(dir.path(), vec![Some(status)]);
    let out = ctl(&["status"], &[("RUNTIME_DIRECTORY", dir.path())]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("pid:              1\nuptime:           5s\n"),
        "{}",
        stdout(&out)
    );
    assert_eq!(server.join().unwrap(), ["status\n"]);
}

/// The SHA-256 fingerprint of the first certificate of a PEM file, as
/// `openssl x509 -fingerprint -sha256` and `tcprelay-cc diff` print it.
fn fingerprint(pem_file: &Path) -> String {
    let pem = std::fs::read(pem_file).expect("the certificate file");
    let cert = openssl::x509::X509::from_pem(&pem).expect("a certificate");
    let digest = cert
        .digest(openssl::hash::MessageDigest::sha256())
        .expect("a digest");
    digest
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A relay terminating TLS with an encrypted key (its passphrase in the
/// configuration) on `port`, relaying to `remotes` (port, weight).
fn tls_config(certs: &Path, port: u16, remotes: &[(u16, u32)]) -> String {
    let remotes: String = remotes
        .iter()
        .map(|(p, w)| format!("    remote = {{ address = 127.0.0.1 port = {p} weight = {w} }}\n"))
        .collect();
    format!(
        "id = spawnd {{\n    listen = {{ address = 127.0.0.1 port = {port} tls = yes }}\n}}\n\
         id = tcprelay {{\n    tls cert-file = {certs}/cert.pem\n    tls key-file = {certs}/enc-key.pem\n\
         \x20   tls passphrase = \"{passphrase}\"\n{remotes}}}\n",
        certs = certs.display(),
        passphrase = harness::PASSPHRASE,
    )
}

/// `tcprelay ctl diff` against a real relay (its own socket, found by
/// `RUNTIME_DIRECTORY` as the relay's): the configuration it runs is no change (exit
/// 0); a changed weight is a change (exit 1) that names the remote and the weights; a
/// certificate file replaced on disk under the same path is reported as a new
/// fingerprint, the running one being what the relay loaded. No output, the plan
/// answer's included, holds the passphrase.
#[test]
fn ctl_diff_compares_the_running_relay_with_a_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    harness::make_certs(&certs);
    let (port, remote) = (harness::free_port(), harness::free_port());
    let cfg = tls_config(&certs, port, &[(remote, 1)]);
    let _relay = harness::Relay::run_config(dir.path(), &cfg, port);
    let running_cfg = dir.path().join("relay.cfg");
    let runtime = [("RUNTIME_DIRECTORY", dir.path())];
    let mut outputs = Vec::new();

    let same = ctl(&["diff", running_cfg.to_str().unwrap()], &runtime);
    assert_eq!(
        same.status.code(),
        Some(0),
        "{}{}",
        stdout(&same),
        stderr(&same)
    );
    assert!(stdout(&same).contains("no change"), "{}", stdout(&same));
    outputs.push(same);

    let changed_cfg = dir.path().join("changed.cfg");
    std::fs::write(&changed_cfg, tls_config(&certs, port, &[(remote, 3)])).unwrap();
    let changed = ctl(&["diff", changed_cfg.to_str().unwrap()], &runtime);
    assert_eq!(
        changed.status.code(),
        Some(1),
        "{}{}",
        stdout(&changed),
        stderr(&changed)
    );
    let text = stdout(&changed);
    assert!(
        text.contains(&format!("127.0.0.1:{remote}/TCP")) && text.contains("weight: 1 -> 3"),
        "{text}"
    );
    // The compiler's options after NEW, --json before `diff`: one JSON document.
    let json = ctl(
        &[
            "--json",
            "diff",
            changed_cfg.to_str().unwrap(),
            "-i",
            "tcprelay",
        ],
        &runtime,
    );
    assert_eq!(json.status.code(), Some(1), "{}", stderr(&json));
    let report: serde_json::Value = serde_json::from_str(stdout(&json).trim()).expect("JSON");
    assert_eq!(report["changed"], true, "{report}");
    assert_eq!(report["old"]["kind"], "running", "{report}");
    outputs.push(changed);
    outputs.push(json);

    // Another certificate and key under the same paths: the relay still has the old.
    let loaded = fingerprint(&certs.join("cert.pem"));
    let other = dir.path().join("other");
    harness::make_certs(&other);
    for file in ["cert.pem", "enc-key.pem"] {
        std::fs::copy(other.join(file), certs.join(file)).unwrap();
    }
    let on_disk = fingerprint(&certs.join("cert.pem"));
    assert_ne!(loaded, on_disk);
    let renewed = ctl(&["diff", running_cfg.to_str().unwrap()], &runtime);
    assert_eq!(
        renewed.status.code(),
        Some(1),
        "{}{}",
        stdout(&renewed),
        stderr(&renewed)
    );
    let text = stdout(&renewed);
    let old_at = text
        .find(&loaded)
        .unwrap_or_else(|| panic!("{loaded} in {text}"));
    let new_at = text
        .find(&on_disk)
        .unwrap_or_else(|| panic!("{on_disk} in {text}"));
    assert!(old_at < new_at, "the running one first: {text}");
    assert!(text.contains("listener certificate"), "{text}");
    outputs.push(renewed);

    outputs.push(ctl(&["--json", "plan"], &runtime));
    outputs.push(ctl(&["plan"], &runtime));
    for out in &outputs {
        let all = format!("{}{}", stdout(out), stderr(out));
        assert!(!all.contains(harness::PASSPHRASE), "{all}");
        assert!(!all.contains("PRIVATE KEY"), "{all}");
    }
}

/// The `plan` answer of a real relay: its plan (redacted) and the certificate it
/// loaded, and the sessions where they are, across a reload that removes the remote
/// a session is on: generation 1 drains it, the remote is no longer in the plan.
#[test]
fn ctl_plan_gives_the_running_plan_its_certificates_and_its_sessions() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    harness::make_certs(&certs);
    let echo = harness::Echo::start();
    let port = harness::free_port();
    let cfg = harness::config(port, &[(echo.port, 1)], "", "");
    let _relay = harness::Relay::run_config(dir.path(), &cfg, port);
    let runtime = [("RUNTIME_DIRECTORY", dir.path())];
    let ask = || -> serde_json::Value {
        let out = ctl(&["--json", "plan"], &runtime);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        serde_json::from_str(stdout(&out).trim()).expect("JSON")
    };
    let until = |done: &dyn Fn(&serde_json::Value) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let answer = ask();
            if done(&answer) {
                return answer;
            }
            assert!(Instant::now() < deadline, "never: {answer}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    // One session, echoed once: it is on the remote.
    let mut client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    client.write_all(b"ping").unwrap();
    let mut echoed = [0u8; 4];
    client.read_exact(&mut echoed).unwrap();
    let key = format!("127.0.0.1:{}/TCP", echo.port);
    let answer = until(&|a| a["sessions"]["total"] == 1);
    assert_eq!(answer["ok"], true);
    assert_eq!(answer["format"], tcprelay_plan::FORMAT_VERSION);
    assert_eq!(answer["generation"], 1);
    let plan: tcprelay_plan::Plan =
        serde_json::from_value(answer["plan"].clone()).expect("the plan");
    assert_eq!(plan.relay.remotes[0].address.port(), echo.port);
    assert_eq!(answer["certificates"], serde_json::json!([]), "no TLS");
    assert_eq!(
        answer["sessions"]["remotes"],
        serde_json::json!([{ "remote": key, "active": 1, "in_plan": true }])
    );
    assert_eq!(
        answer["sessions"]["listeners"],
        serde_json::json!([{ "listener": format!("127.0.0.1:{port}"), "active": 1, "in_plan": true }])
    );
    // `ctl status` counts the same session, from the same load board (a worker's
    // own reports come only when it fills up or has room again).
    let out = ctl(&["--json", "status"], &runtime);
    let status: serde_json::Value = serde_json::from_str(stdout(&out).trim()).expect("JSON");
    assert_eq!(status["sessions"], 1, "{status}");
    assert_eq!(status["generations"][0]["sessions"], 1, "{status}");
    let by_worker: u64 = status["generations"][0]["workers"]
        .as_array()
        .expect("workers")
        .iter()
        .map(|w| w["sessions"].as_u64().expect("a count"))
        .sum();
    assert_eq!(by_worker, 1, "{status}");

    // A reload to a plan with TLS and another remote: the session stays in
    // generation 1, on a remote the running plan no longer has.
    let other = harness::free_port();
    harness::compile(
        dir.path(),
        "relay",
        &tls_config(&certs, port, &[(other, 1)]),
    );
    let out = ctl(&["reload"], &runtime);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let answer = ask();
    assert_eq!(answer["generation"], 2, "{answer}");
    let generations = &answer["sessions"]["generations"];
    assert_eq!(generations[0]["generation"], 2, "{answer}");
    assert_eq!(generations[0]["draining"], false, "{answer}");
    assert_eq!(generations[1]["generation"], 1, "{answer}");
    assert_eq!(generations[1]["draining"], true, "{answer}");
    assert_eq!(generations[1]["sessions"], 1, "{answer}");
    assert_eq!(
        answer["sessions"]["remotes"],
        serde_json::json!([
            { "remote": format!("127.0.0.1:{other}/TCP"), "active": 0, "in_plan": true },
            { "remote": key, "active": 1, "in_plan": false },
        ])
    );
    // The certificate the new generation loaded, re-encoded: the file's, not its key.
    let files = answer["certificates"].as_array().expect("certificates");
    assert_eq!(files.len(), 1, "{answer}");
    assert_eq!(files[0]["file"], certs.join("cert.pem").to_str().unwrap());
    assert_eq!(
        files[0]["pem"],
        std::fs::read_to_string(certs.join("cert.pem")).unwrap()
    );
    assert_eq!(files[0]["uses"], serde_json::json!([{ "as": "listener" }]));
    let line = answer.to_string();
    assert!(!line.contains(harness::PASSPHRASE), "{line}");
    let plan: tcprelay_plan::Plan =
        serde_json::from_value(answer["plan"].clone()).expect("the plan");
    let passphrase = plan.relay.tls.and_then(|t| t.passphrase).expect("one");
    assert!(passphrase.is_redacted());
    drop(client);
}
