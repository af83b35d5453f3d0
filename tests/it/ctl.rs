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
