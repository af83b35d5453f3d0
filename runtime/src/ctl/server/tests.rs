//! The control server with real sockets: loopback Unix sockets in temporary
//! directories, a real `mio` poll, bounded waits.

use super::*;
use std::io::Write as _;
use std::os::unix::net::UnixStream as Client;
use std::time::Duration;

const BASE: Token = Token(1000);

struct Rig {
    _dir: tempfile::TempDir,
    path: PathBuf,
    server: ControlServer,
    poll: mio::Poll,
    events: mio::Events,
}

impl Rig {
    fn new() -> Rig {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("ctl");
        let mut server = ControlServer::bind(&path, 0o600, None, false).expect("bind");
        let poll = mio::Poll::new().expect("poll");
        server.register(poll.registry(), BASE).expect("register");
        Rig {
            _dir: dir,
            path,
            server,
            poll,
            events: mio::Events::with_capacity(256),
        }
    }

    fn connect(&self) -> Client {
        let c = Client::connect(&self.path).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c
    }

    /// One round of the loop: what the server handed over.
    fn turn(&mut self) -> Vec<Incoming> {
        self.poll
            .poll(&mut self.events, Some(Duration::from_millis(100)))
            .expect("poll");
        let tokens: Vec<Token> = self.events.iter().map(|e| e.token()).collect();
        let mut incoming = Vec::new();
        for token in tokens {
            assert!(self.server.owns(token), "{token:?}");
            incoming.extend(
                self.server
                    .on_event(self.poll.registry(), token, Instant::now()),
            );
        }
        incoming
    }

    /// Turns until `n` requests have come (at most 5 s).
    fn requests(&mut self, n: usize) -> Vec<Incoming> {
        let start = Instant::now();
        let mut got = Vec::new();
        while got.len() < n {
            assert!(start.elapsed() < Duration::from_secs(5), "{got:?}");
            got.extend(self.turn());
        }
        got
    }

    /// Turns until the server holds no client (at most 5 s).
    fn settle(&mut self) {
        let start = Instant::now();
        while self.server.clients() > 0 {
            assert!(start.elapsed() < Duration::from_secs(5), "clients stay");
            assert!(self.turn().is_empty());
        }
    }
}

/// Reads one line, and then the end of the stream: the server closes after it.
fn answer_of(c: &mut Client) -> serde_json::Value {
    let v = line_of(c);
    assert_eq!(c.read(&mut [0; 16]).expect("the end"), 0, "one line only");
    v
}

/// Reads one line (what `tcprelay ctl` reads).
fn line_of(c: &mut Client) -> serde_json::Value {
    let mut text = Vec::new();
    let mut byte = [0u8; 1];
    while text.last() != Some(&b'\n') {
        match c.read(&mut byte).expect("an answer") {
            0 => panic!(
                "the end before a line: {:?}",
                String::from_utf8_lossy(&text)
            ),
            _ => text.push(byte[0]),
        }
    }
    serde_json::from_slice(&text)
        .unwrap_or_else(|e| panic!("{:?}: {e}", String::from_utf8_lossy(&text)))
}

fn error_of(c: &mut Client) -> String {
    let v = answer_of(c);
    assert_eq!(v["ok"], false, "{v}");
    v["error"].as_str().expect("an error").to_string()
}

#[test]
fn a_request_goes_to_the_master_and_its_answer_to_the_client() {
    let mut rig = Rig::new();
    let mut c = rig.connect();
    c.write_all(b"weight [::1]:80 3\n").unwrap();
    let got = rig.requests(1);
    assert_eq!(got[0].request, Request::Weight("[::1]:80".into(), 3));
    rig.server.answer(
        rig.poll.registry(),
        got[0].client,
        r#"{"ok":true,"message":"done"}"#,
    );
    assert_eq!(answer_of(&mut c)["message"], "done");
    rig.settle();
    // A second answer for the same client goes nowhere.
    rig.server.answer(rig.poll.registry(), got[0].client, "{}");
    // A request without newline, ended by a half-close, is a request.
    let mut c = rig.connect();
    c.write_all(b"status").unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let got = rig.requests(1);
    assert_eq!(got[0].request, Request::Status);
}

#[test]
fn garbage_and_unknown_commands_get_an_error_line_and_are_closed() {
    let mut rig = Rig::new();
    for (sent, says) in [
        (
            &b"\xff\xfe\x00garbage\n"[..],
            "the request is not UTF-8 text (byte 0)",
        ),
        (
            b"statsu\n",
            "unknown command `statsu`: expected one of status",
        ),
        (b"drain\n", "`drain` needs REMOTE"),
        (
            b"sessions lots\n",
            "`sessions`: LIMIT must be a number, got `lots`",
        ),
        (&[b'x'; 5000], "the request line is longer than 4096 bytes"),
        // A newline that comes too late does not make it shorter.
        (
            format!("sessions{}\n", " ".repeat(4090)).as_bytes(),
            "the request line is longer than 4096 bytes",
        ),
    ] {
        let mut c = rig.connect();
        c.write_all(sent).unwrap();
        // The request is there when the connection is accepted: one round reads
        // it and answers.
        assert!(rig.turn().is_empty(), "nothing for the master");
        rig.settle();
        let e = error_of(&mut c);
        assert!(e.starts_with(says), "{e}");
    }
}

#[test]
fn a_client_that_never_writes_is_timed_out_by_sweep() {
    let mut rig = Rig::new();
    let mut c = rig.connect();
    let start = Instant::now();
    while rig.server.clients() == 0 {
        assert!(start.elapsed() < Duration::from_secs(5));
        rig.turn();
    }
    let deadline = rig.server.next_deadline().expect("a deadline");
    assert!(deadline <= Instant::now() + REQUEST_WITHIN);
    // Not before its time.
    assert!(rig
        .server
        .sweep(rig.poll.registry(), Instant::now())
        .is_empty());
    assert_eq!(rig.server.clients(), 1);
    rig.server.sweep(rig.poll.registry(), deadline);
    assert_eq!(error_of(&mut c), "no request line within 2 s of connecting");
    assert_eq!(rig.server.clients(), 0);
}

#[test]
fn a_client_that_goes_away_is_dropped_and_its_answer_with_it() {
    let mut rig = Rig::new();
    // Before sending anything.
    drop(rig.connect());
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(300) {
        assert!(rig.turn().is_empty());
    }
    assert_eq!(rig.server.clients(), 0);
    // After its request: the answer finds it gone and the slot is freed.
    let mut c = rig.connect();
    c.write_all(b"status\n").unwrap();
    let got = rig.requests(1);
    drop(c);
    rig.server
        .answer(rig.poll.registry(), got[0].client, r#"{"ok":true}"#);
    rig.settle();
}

#[test]
fn the_65th_client_gets_an_error_line_at_once() {
    let mut rig = Rig::new();
    let idle: Vec<Client> = (0..MAX_CLIENTS).map(|_| rig.connect()).collect();
    let start = Instant::now();
    while rig.server.clients() < MAX_CLIENTS {
        assert!(start.elapsed() < Duration::from_secs(5));
        rig.turn();
    }
    let mut late = rig.connect();
    rig.turn();
    assert_eq!(
        error_of(&mut late),
        "too many control clients at once (at most 64); try again"
    );
    assert_eq!(rig.server.clients(), MAX_CLIENTS);
    // One leaves: the next one is served.
    drop(idle);
    rig.settle();
    let mut c = rig.connect();
    c.write_all(b"stop\n").unwrap();
    assert_eq!(rig.requests(1)[0].request, Request::Stop);
}

#[test]
fn a_client_that_never_reads_a_large_answer_is_dropped_without_blocking() {
    let mut rig = Rig::new();
    let c = rig.connect();
    (&c).write_all(b"sessions\n").unwrap();
    let got = rig.requests(1);
    let large = format!(r#"{{"ok":true,"pad":"{}"}}"#, "x".repeat(8 << 20));
    let start = Instant::now();
    rig.server
        .answer(rig.poll.registry(), got[0].client, &large);
    assert!(start.elapsed() < Duration::from_secs(1), "answer blocked");
    assert_eq!(rig.server.clients(), 1, "still writing");
    // Writable events come and go; the client stays until its time is up.
    rig.turn();
    assert_eq!(rig.server.clients(), 1);
    rig.server
        .sweep(rig.poll.registry(), Instant::now() + WRITE_WITHIN);
    assert_eq!(rig.server.clients(), 0);
    drop(c);
}

#[test]
fn a_live_socket_is_refused_a_stale_one_replaced_and_drop_removes_it() {
    let rig = Rig::new();
    let e = ControlServer::bind(&rig.path, 0o600, None, false).unwrap_err();
    let shown = rig.path.display().to_string();
    assert!(
        e.starts_with(&format!("control socket {shown} answers")),
        "{e}"
    );
    assert!(e.contains(&format!("tcprelay ctl -s {shown} stop")), "{e}");
    assert!(e.contains("control = { path = ... }"), "{e}");
    let Rig {
        _dir: dir,
        path,
        server,
        ..
    } = rig;
    drop(server);
    assert!(!path.exists(), "removed at exit");

    // A socket file nobody listens on: stale, replaced.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let server = ControlServer::bind(&path, 0o600, None, false).expect("replaces");
    assert!(Client::connect(&path).is_ok());
    // A server dropped after another took its path leaves the new one's socket.
    std::fs::remove_file(&path).unwrap();
    let other = std::os::unix::net::UnixListener::bind(&path).unwrap();
    drop(server);
    assert!(path.exists());
    drop(other);

    // Anything else is left alone.
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, "data").unwrap();
    let e = ControlServer::bind(&path, 0o600, None, false).unwrap_err();
    assert!(e.starts_with(&format!("{} exists and is not a socket", path.display())));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "data");
    // No private directory is left behind.
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(names.len(), 1, "{names:?}");
}

#[test]
fn the_socket_gets_its_mode_and_group_and_the_default_directory_0755() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tcprelay").join("ctl");
    // A configured path's directory is not created.
    let e = ControlServer::bind(&path, 0o600, None, false).unwrap_err();
    assert!(
        e.starts_with(&format!("cannot bind control socket {}", path.display())),
        "{e}"
    );
    let gid = rustix::process::getegid().as_raw();
    let server = ControlServer::bind(&path, 0o660, Some(&gid.to_string()), true).unwrap();
    let meta = std::fs::metadata(dir.path().join("tcprelay")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o755);
    let meta = std::fs::symlink_metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o660);
    assert_eq!(meta.gid(), gid);
    drop(server);
    let server = ControlServer::bind(&path, 0o600, None, true).unwrap();
    let meta = std::fs::symlink_metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
    drop(server);
    let e = ControlServer::bind(&path, 0o600, Some("no-such-group-tcprelay"), true).unwrap_err();
    assert!(e.contains("no group named `no-such-group-tcprelay`"), "{e}");
}

/// Descriptors open in this process.
fn descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

/// 1,000 clients at once, from 50 threads: every one gets its answer or the
/// too-many error line, none waits more than its read timeout, and the server holds
/// as many descriptors afterwards as before. Run in a child process of its own (this
/// test binary again, with only this test), so that other tests' descriptors do not
/// count.
#[test]
fn a_thousand_clients_at_once_all_get_a_line_and_no_descriptor_stays() {
    const CHILD: &str = "TCPRELAY_CTL_THOUSAND_CHILD";
    if std::env::var_os(CHILD).is_none() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "ctl::server::tests::a_thousand_clients_at_once_all_get_a_line_and_no_descriptor_stays",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, "1")
            .output()
            .expect("the test binary runs");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("1 passed"), "{text}");
        return;
    }
    let mut rig = Rig::new();
    let before = descriptors();
    let path = rig.path.clone();
    let threads: Vec<_> = (0..50)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || {
                let mut clients: Vec<Client> = (0..20)
                    .map(|_| {
                        let c = Client::connect(&path).expect("connect");
                        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                        c
                    })
                    .collect();
                let (mut answered, mut refused) = (0, 0);
                for c in &mut clients {
                    // A refused client may be closed before it writes.
                    let _ = c.write_all(b"status\n");
                }
                for c in &mut clients {
                    // A refused client's request may come after the server closed
                    // (its read after the line is then a reset): one line each.
                    let v = line_of(c);
                    if v["ok"] == true {
                        answered += 1;
                    } else {
                        assert!(v["error"].as_str().unwrap().starts_with("too many"), "{v}");
                        refused += 1;
                    }
                }
                (answered, refused)
            })
        })
        .collect();
    let start = Instant::now();
    let mut served = 0;
    while !threads.iter().all(|t| t.is_finished()) {
        assert!(start.elapsed() < Duration::from_secs(60), "a client hangs");
        // The sweep accepts too, and a client it accepts may have its request
        // complete already: answered like the loop's (the master does the same);
        // left out, such a client waited for the answer's timeout.
        let mut requests = rig.turn();
        requests.extend(rig.server.sweep(rig.poll.registry(), Instant::now()));
        for request in requests {
            rig.server
                .answer(rig.poll.registry(), request.client, r#"{"ok":true}"#);
            served += 1;
        }
    }
    let (mut answered, mut refused) = (0, 0);
    for t in threads {
        let (a, r) = t.join().expect("a client thread");
        answered += a;
        refused += r;
    }
    assert_eq!(answered + refused, 1000);
    assert_eq!(answered, served);
    rig.settle();
    assert_eq!(descriptors(), before, "descriptors left open");
    println!("answered {answered}, refused {refused}");
}
