//! DNS discovery against a real DNS server: Debian's dnsmasq (`dnsmasq-base`),
//! started by each test on a loopback port the OS chose, serving names from a hosts
//! file the test rewrites (re-read on SIGHUP) and SRV records from its
//! configuration file (re-read only on a restart). Backends on 127.0.0.2, .3, ...
//! at one port say who they are, then echo.

use crate::harness::{compile, Relay};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// dnsmasq on 127.0.0.1, stopped when dropped.
struct Dns {
    child: Option<Child>,
    port: u16,
    conf: PathBuf,
    hosts: PathBuf,
}

impl Dns {
    /// Starts dnsmasq with `hosts` (lines of a hosts file) and `conf` (lines of
    /// its configuration), on a port the OS chose (tried again if taken between).
    fn start(dir: &Path, hosts: &str, conf: &str) -> Dns {
        let conf_path = dir.join("dnsmasq.conf");
        let hosts_path = dir.join("dnsmasq.hosts");
        std::fs::write(&conf_path, conf).unwrap();
        std::fs::write(&hosts_path, hosts).unwrap();
        for _ in 0..5 {
            let port = UdpSocket::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut dns = Dns {
                child: None,
                port,
                conf: conf_path.clone(),
                hosts: hosts_path.clone(),
            };
            if dns.spawn() {
                return dns;
            }
        }
        panic!("dnsmasq did not start");
    }

    /// Runs dnsmasq on `self.port`; true once it answers.
    fn spawn(&mut self) -> bool {
        let log = self.conf.with_extension("log");
        let mut child = Command::new("dnsmasq")
            .args([
                "-k",
                "-C",
                "/dev/null",
                &format!("--conf-file={}", self.conf.display()),
                &format!("--addn-hosts={}", self.hosts.display()),
                "-p",
                &self.port.to_string(),
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
                "--no-resolv",
                "--no-hosts",
                "--pid-file=",
                "--user=root",
                "--log-facility=-",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .expect("dnsmasq (Debian's dnsmasq-base) runs");
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return false;
            }
            // Listening once a TCP connect to its port succeeds.
            if TcpStream::connect_timeout(
                &SocketAddr::from(([127, 0, 0, 1], self.port)),
                Duration::from_millis(200),
            )
            .is_ok()
            {
                self.child = Some(child);
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// Rewrites the hosts file and has dnsmasq read it again.
    fn set_hosts(&self, hosts: &str) {
        std::fs::write(&self.hosts, hosts).unwrap();
        let pid = self.child.as_ref().unwrap().id() as i32;
        // SAFETY: kill(2) on our own child.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Backends on 127.0.0.(2..2+n) at one port: each connection gets the backend's
/// number and a newline, then its own bytes back.
struct Backends {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl Backends {
    fn start(n: u8) -> Backends {
        'again: for _ in 0..20 {
            let first = TcpListener::bind("127.0.0.2:0").unwrap();
            let port = first.local_addr().unwrap().port();
            let mut listeners = vec![first];
            for i in 1..n {
                match TcpListener::bind((Ipv4Addr::new(127, 0, 0, 2 + i), port)) {
                    Ok(l) => listeners.push(l),
                    Err(_) => continue 'again,
                }
            }
            let stop = Arc::new(AtomicBool::new(false));
            for (i, listener) in listeners.into_iter().enumerate() {
                serve(listener, i as u8 + 2, stop.clone());
            }
            return Backends { port, stop };
        }
        panic!("no port free on every backend address");
    }
}

/// Serves `listener` until `stop`: each connection gets `who` and a newline, then
/// its own bytes back. The thread closes the listener when it ends.
fn serve(listener: TcpListener, who: u8, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((mut s, _)) => {
                    std::thread::spawn(move || {
                        let _ = s.set_nonblocking(false);
                        let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
                        let _ = writeln!(s, "{who}");
                        let _ = std::io::copy(&mut &s, &mut &s);
                    });
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    })
}

/// One backend on 127.0.0.`who`:`port` that can be stopped (its listening socket
/// closed: connects are refused) and started again.
struct Backend {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Backend {
    fn start(who: u8, port: u16) -> std::io::Result<Backend> {
        let listener = TcpListener::bind((Ipv4Addr::new(127, 0, 0, who), port))?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = Some(serve(listener, who, stop.clone()));
        Ok(Backend { stop, thread })
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Drop for Backends {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A session through the relay: which backend (the last byte of its address)
/// answered.
fn open(port: u16) -> Option<(TcpStream, u8)> {
    open_or_why(port).ok()
}

/// [`open`], saying why not: which step failed, and the bytes read until then.
fn open_or_why(port: u16) -> Result<(TcpStream, u8), String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| format!("read timeout: {e}"))?;
    let who = read_who(&mut s)?;
    Ok((s, who))
}

/// The backend's number, the first line it sends (see [`serve`]); why not, with
/// the bytes read until then.
fn read_who(s: &mut TcpStream) -> Result<u8, String> {
    let mut line = Vec::new();
    let mut byte = [0u8];
    loop {
        match s.read(&mut byte) {
            Ok(1) if byte[0] == b'\n' => {
                return std::str::from_utf8(&line)
                    .ok()
                    .and_then(|text| text.parse().ok())
                    .ok_or_else(|| format!("not a backend's number: {line:?}"));
            }
            Ok(1) => line.push(byte[0]),
            Ok(_) => return Err(format!("end of file after {line:?}")),
            Err(e) => return Err(format!("read after {line:?}: {e} ({:?})", e.kind())),
        }
    }
}

fn who(port: u16) -> Option<u8> {
    open(port).map(|(_, w)| w)
}

/// Polls until `ok` holds, `within` at most.
fn until(within: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn relay_config(listen: u16, dns: u16, extra: &str, remote: &str) -> String {
    format!(
        "id = spawnd {{\n    listen = {{ address = 127.0.0.1 port = {listen} }}\n    spawn = {{ servers min = 1 servers max = 1 }}\n}}\n\
         id = tcprelay {{\n    resolvers = {{ nameserver = 127.0.0.1:{dns} timeout = 1 attempts = 1 }}\n    {extra}\n    {remote}\n}}\n"
    )
}

/// The relay of configuration `cfg`, compiled in `dir` and run in the foreground,
/// listening on `port`.
fn run(dir: &Path, cfg: &str, port: u16) -> Relay {
    let plan = compile(dir, "relay", cfg);
    Relay::start(dir, &["run", "-f", plan.to_str().unwrap()], port)
}

#[test]
fn a_record_added_is_used_a_removed_one_keeps_its_session_and_a_stopped_server_keeps_the_set() {
    let dir = tempfile::tempdir().unwrap();
    let backends = Backends::start(2);
    let mut dns = Dns::start(dir.path(), "127.0.0.2 svc.test\n", "");
    let port = crate::harness::free_port();
    let cfg = relay_config(
        port,
        dns.port,
        "resolve interval = 1",
        &format!("remote = {{ address = svc.test port = {} }}", backends.port),
    );
    let relay = run(dir.path(), &cfg, port);
    for _ in 0..5 {
        assert_eq!(who(port), Some(2), "{}", relay.log_text());
    }
    let (mut held, at) = open(port).unwrap();
    assert_eq!(at, 2);

    // .2 removed, .3 added: new sessions go to .3 within an interval (and some
    // slack), none to .2 after; the session held on .2 goes on.
    dns.set_hosts("127.0.0.3 svc.test\n");
    assert!(
        until(Duration::from_secs(6), || who(port) == Some(3)),
        "the added address is not used: {}",
        relay.log_text()
    );
    for _ in 0..10 {
        assert_eq!(who(port), Some(3), "a retired address got a new session");
    }
    held.write_all(b"still here\n").unwrap();
    let mut back = [0u8; 11];
    held.read_exact(&mut back).unwrap();
    assert_eq!(
        &back, b"still here\n",
        "the retired remote's session goes on"
    );
    relay.await_log("127.0.0.2:", Duration::from_secs(1));
    assert!(relay.log_text().contains("retired"), "{}", relay.log_text());

    // Both: both get sessions (least connections, held open).
    dns.set_hosts("127.0.0.2 svc.test\n127.0.0.3 svc.test\n");
    let mut seen = std::collections::BTreeSet::new();
    let mut sessions = Vec::new();
    assert!(until(Duration::from_secs(6), || {
        if let Some((s, w)) = open(port) {
            seen.insert(w);
            sessions.push(s);
        }
        seen.len() == 2
    }));

    // The server stops: the last set stays, and the failure is logged once.
    dns.stop();
    relay.await_log("does not resolve", Duration::from_secs(6));
    // Held sessions: least connections reaches both addresses again (the first
    // ones may all go to the one that joined last, which holds fewer).
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..200 {
        let (s, w) =
            open_or_why(port).unwrap_or_else(|e| panic!("not served from the last set: {e}"));
        seen.insert(w);
        sessions.push(s);
        if seen.len() == 2 {
            break;
        }
    }
    assert_eq!(seen.len(), 2, "both addresses kept");
    std::thread::sleep(Duration::from_secs(3)); // three more failed resolutions
    assert_eq!(
        relay.log_text().matches("does not resolve").count(),
        1,
        "one line per episode: {}",
        relay.log_text()
    );
}

#[test]
fn srv_records_give_ports_and_weights() {
    let dir = tempfile::tempdir().unwrap();
    let backends = Backends::start(2);
    let p = backends.port;
    let dns = Dns::start(
        dir.path(),
        "127.0.0.2 b2.test\n127.0.0.3 b3.test\n",
        &format!(
            "srv-host=_svc._tcp.test,b2.test,{p},0,1\nsrv-host=_svc._tcp.test,b3.test,{p},0,3\n"
        ),
    );
    let port = crate::harness::free_port();
    let cfg = relay_config(port, dns.port, "", "remote = { srv = _svc._tcp.test }");
    let relay = run(dir.path(), &cfg, port);
    // One worker, weighted least connections over held sessions: 1:3 exactly.
    let mut counts = [0usize; 2];
    let mut held = Vec::new();
    for _ in 0..40 {
        let (s, w) = open(port).unwrap_or_else(|| panic!("{}", relay.log_text()));
        counts[usize::from(w - 2)] += 1;
        held.push(s);
    }
    assert_eq!(counts, [10, 30], "{}", relay.log_text());
}

#[test]
fn a_name_that_never_resolves_fails_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let dns = Dns::start(dir.path(), "127.0.0.2 other.test\n", "");
    let port = crate::harness::free_port();
    let cfg = relay_config(
        port,
        dns.port,
        "",
        "remote = { address = missing.test port = 80 }",
    );
    let plan = compile(dir.path(), "relay", &cfg);
    let out = Command::new(crate::harness::bin("tcprelay"))
        .args(["run", "-f", plan.to_str().unwrap()])
        .env("RUNTIME_DIRECTORY", dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("missing.test") && err.contains("did not resolve"),
        "{err}"
    );
    assert!(!err.contains("started: listening"), "{err}");
}

#[test]
fn start_empty_serves_once_the_name_appears() {
    let dir = tempfile::tempdir().unwrap();
    let backends = Backends::start(1);
    let dns = Dns::start(dir.path(), "", "");
    let port = crate::harness::free_port();
    let cfg = relay_config(
        port,
        dns.port,
        "resolve interval = 1\n    resolve start = wait",
        &format!("remote = {{ address = svc.test port = {} }}", backends.port),
    );
    let relay = run(dir.path(), &cfg, port);
    assert_eq!(who(port), None, "no remote yet: the client is closed");
    dns.set_hosts("127.0.0.2 svc.test\n");
    assert!(
        until(Duration::from_secs(6), || who(port) == Some(2)),
        "{}",
        relay.log_text()
    );
    relay.await_log("resolves again", Duration::from_secs(1));
}

#[test]
fn a_reload_waits_for_its_names_and_is_refused_when_one_does_not_resolve() {
    let dir = tempfile::tempdir().unwrap();
    let backends = Backends::start(2);
    let dns = Dns::start(dir.path(), "127.0.0.2 one.test\n127.0.0.3 two.test\n", "");
    let port = crate::harness::free_port();
    let with = |name: &str| {
        relay_config(
            port,
            dns.port,
            "",
            &format!("remote = {{ address = {name} port = {} }}", backends.port),
        )
    };
    let plan = compile(dir.path(), "relay", &with("one.test"));
    let relay = Relay::start(dir.path(), &["run", "-f", plan.to_str().unwrap()], port);
    assert_eq!(who(port), Some(2));
    // A name that does not resolve: the reload is refused, generation 1 serves on.
    compile(dir.path(), "relay", &with("missing.test"));
    relay.signal(libc::SIGHUP);
    relay.await_log("reload failed", Duration::from_secs(10));
    assert!(
        relay.log_text().contains("missing.test"),
        "{}",
        relay.log_text()
    );
    assert_eq!(who(port), Some(2));
    // One that does: the new generation uses its addresses from its first session.
    compile(dir.path(), "relay", &with("two.test"));
    relay.signal(libc::SIGHUP);
    relay.await_log("reloaded (generation 2)", Duration::from_secs(10));
    assert_eq!(who(port), Some(3), "{}", relay.log_text());
}

/// `tcprelay ctl --json remotes` (or the table without `--json`).
fn ctl_remotes(dir: &Path, json: bool) -> String {
    let args: &[&str] = if json {
        &["--json", "remotes"]
    } else {
        &["remotes"]
    };
    let out = crate::harness::ctl(dir, args);
    assert!(
        out.status.success(),
        "{}{}",
        crate::harness::stdout(&out),
        crate::harness::stderr(&out)
    );
    crate::harness::stdout(&out)
}

/// The `remotes` answer's entries, by `ADDRESS:PORT`.
fn remotes_by_address(dir: &Path) -> std::collections::BTreeMap<String, serde_json::Value> {
    let answer: serde_json::Value =
        serde_json::from_str(ctl_remotes(dir, true).trim()).expect("JSON");
    crate::operate::assert_documented("remotes", &answer);
    answer["remotes"]
        .as_array()
        .expect("remotes")
        .iter()
        .map(|r| (r["remote"].as_str().unwrap().to_string(), r.clone()))
        .collect()
}

#[test]
fn ctl_remotes_names_the_dns_name_of_a_discovered_remote_and_says_when_it_is_retired() {
    let dir = tempfile::tempdir().unwrap();
    let backends = Backends::start(2);
    let p = backends.port;
    let dns = Dns::start(dir.path(), "127.0.0.2 svc.test\n127.0.0.3 svc.test\n", "");
    let port = crate::harness::free_port();
    let planned = crate::harness::free_port();
    let cfg = relay_config(
        port,
        dns.port,
        "resolve interval = 1",
        &format!(
            "remote = {{ address = 127.0.0.1 port = {planned} }}\n    remote = {{ address = svc.test port = {p} }}"
        ),
    );
    let relay = run(dir.path(), &cfg, port);
    let (a, b) = (format!("127.0.0.2:{p}"), format!("127.0.0.3:{p}"));
    let remotes = remotes_by_address(dir.path());
    assert_eq!(
        remotes.len(),
        3,
        "the plan's remote and two found: {remotes:?}"
    );
    // The plan's remote: as before, no `discovered`.
    let own = &remotes[&format!("127.0.0.1:{planned}")];
    assert!(own.get("discovered").is_none(), "{own}");
    for address in [&a, &b] {
        let r = &remotes[address];
        assert_eq!(r["discovered"]["name"], "svc.test", "{r}");
        assert_eq!(r["discovered"]["retired"], false, "{r}");
        assert_eq!(r["state"], "up", "{r}");
        assert_eq!(r["protocol"], "tcp", "{r}");
    }
    let table = ctl_remotes(dir.path(), false);
    assert!(
        table.contains(&format!("\n{a} (svc.test)  up ")),
        "the table names the name: {table}"
    );

    // .3 leaves the answer: retired, and says so; .2 stays up.
    dns.set_hosts("127.0.0.2 svc.test\n");
    assert!(
        until(Duration::from_secs(6), || {
            remotes_by_address(dir.path())[&b]["discovered"]["retired"] == true
        }),
        "{}",
        relay.log_text()
    );
    let remotes = remotes_by_address(dir.path());
    assert_eq!(remotes[&b]["state"], "retired", "{}", remotes[&b]);
    assert_eq!(
        remotes[&b]["why"], "no longer in its name's DNS answer",
        "{}",
        remotes[&b]
    );
    assert_eq!(remotes[&a]["discovered"]["retired"], false);
    assert_eq!(remotes[&a]["state"], "up");
    let table = ctl_remotes(dir.path(), false);
    assert!(
        table.contains(&format!(
            "\n{b} (svc.test)  retired  no longer in its name's DNS answer"
        )),
        "{table}"
    );
}

/// `tcprelay ctl ARGS` on the relay of `dir`: whether it succeeded, and all it printed.
fn ctl(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = crate::harness::ctl(dir, args);
    let text = crate::harness::stdout(&out) + &crate::harness::stderr(&out);
    (out.status.success(), text)
}

#[test]
fn a_discovered_remote_is_drained_weighted_and_enabled_by_ctl_like_a_planned_one() {
    let dir = tempfile::tempdir().unwrap();
    let backends = Backends::start(2);
    let p = backends.port;
    let dns = Dns::start(dir.path(), "127.0.0.2 svc.test\n127.0.0.3 svc.test\n", "");
    let port = crate::harness::free_port();
    let cfg = relay_config(
        port,
        dns.port,
        "resolve interval = 1",
        &format!("remote = {{ address = svc.test port = {p} }}"),
    );
    let relay = run(dir.path(), &cfg, port);
    let b = format!("127.0.0.3:{p}");
    // Held sessions: least connections spreads them over both addresses.
    let held: Vec<_> = (0..4).filter_map(|_| open(port)).collect();
    assert!(held.iter().any(|(_, w)| *w == 3), "{}", relay.log_text());

    // Drained: .3 gets no new session, whatever its load; its sessions go on.
    let (ok, out) = ctl(dir.path(), &["drain", &b]);
    assert!(ok, "{out}");
    assert_eq!(remotes_by_address(dir.path())[&b]["state"], "drained");
    let more: Vec<_> = (0..6).filter_map(|_| open(port)).collect();
    assert_eq!(more.len(), 6, "{}", relay.log_text());
    assert!(
        more.iter().all(|(_, w)| *w == 2),
        "a drained address got a session: {:?}",
        more.iter().map(|(_, w)| w).collect::<Vec<_>>()
    );
    for (mut s, w) in held.into_iter().filter(|(_, w)| *w == 3) {
        s.write_all(b"x").unwrap();
        let mut back = [0u8];
        s.read_exact(&mut back).unwrap();
        assert_eq!((&back, w), (b"x", 3), "its session goes on");
    }
    // Enabled again with weight 8: now the least loaded for its weight.
    let (ok, out) = ctl(dir.path(), &["weight", &b, "8"]);
    assert!(ok, "{out}");
    let (ok, out) = ctl(dir.path(), &["enable", &b]);
    assert!(ok, "{out}");
    assert_eq!(remotes_by_address(dir.path())[&b]["state"], "up");
    assert_eq!(who(port), Some(3), "{}", relay.log_text());
    // A name, or an address the relay has not found, is refused with the list.
    let (ok, out) = ctl(dir.path(), &["drain", "127.0.0.9:1"]);
    assert!(!ok && out.contains(&b), "{out}");
    drop(more);
}

/// The `check` object's results, summed: how many checks have ended.
fn checks_done(remote: &serde_json::Value) -> u64 {
    remote["check"]["results"].as_object().map_or(0, |r| {
        r.values().filter_map(serde_json::Value::as_u64).sum()
    })
}

#[test]
fn discovered_remotes_with_a_check_are_checked_down_and_up_and_not_once_retired() {
    let dir = tempfile::tempdir().unwrap();
    // .2 stays up; .3, at the same port, is stopped and started again.
    let (backends, mut three) = (0..20)
        .find_map(|_| {
            let backends = Backends::start(1);
            let three = Backend::start(3, backends.port).ok()?;
            Some((backends, three))
        })
        .expect("a port free on 127.0.0.2 and .3");
    let p = backends.port;
    let dns = Dns::start(dir.path(), "127.0.0.2 svc.test\n127.0.0.3 svc.test\n", "");
    let port = crate::harness::free_port();
    let cfg = relay_config(
        port,
        dns.port,
        "resolve interval = 1",
        &format!(
            "remote = {{ address = svc.test port = {p} check = {{ interval = 1 timeout = 1 rise = 1 fall = 1 }} }}"
        ),
    );
    let relay = run(dir.path(), &cfg, port);
    let (a, b) = (format!("127.0.0.2:{p}"), format!("127.0.0.3:{p}"));
    let state = |address: &str| remotes_by_address(dir.path())[address].clone();

    // Both found, both checked: a check passes on each.
    for address in [&a, &b] {
        assert!(
            until(Duration::from_secs(6), || state(address)["check"]["last"]
                == "pass"),
            "{address} is not checked: {}\n{}",
            state(address),
            relay.log_text()
        );
    }

    // .3 stops: down by its checks, and no new session tries it.
    three.stop();
    assert!(
        until(Duration::from_secs(6), || state(&b)["state"] == "down"),
        "{}\n{}",
        state(&b),
        relay.log_text()
    );
    let down = state(&b);
    assert_eq!(down["check"]["state"], "down", "{down}");
    assert_eq!(down["check"]["last"], "refused", "{down}");
    assert!(
        down["why"]
            .as_str()
            .unwrap()
            .starts_with("health check: refused"),
        "{down}"
    );
    relay.await_log(&format!("remote {b} is down"), Duration::from_secs(1));
    let tried = |r: &serde_json::Value| {
        r["connections"].as_u64().unwrap() + r["failures"].as_u64().unwrap()
    };
    let before = tried(&state(&b));
    let mut held = Vec::new();
    for _ in 0..20 {
        let (s, w) = open(port).unwrap_or_else(|| panic!("{}", relay.log_text()));
        assert_eq!(w, 2, "a session went to the down remote");
        held.push(s);
    }
    assert_eq!(
        tried(&state(&b)),
        before,
        "a connect was tried to the down remote"
    );
    drop(held);

    // .3 back: up by its checks, and it gets sessions again.
    let mut three = Backend::start(3, p).expect(".3 listens again");
    assert!(
        until(Duration::from_secs(6), || state(&b)["state"] == "up"),
        "{}\n{}",
        state(&b),
        relay.log_text()
    );
    relay.await_log(&format!("remote {b} is up again"), Duration::from_secs(1));
    let mut held = Vec::new();
    assert!(
        until(Duration::from_secs(6), || {
            let (s, w) = open(port).unwrap();
            held.push(s);
            w == 3
        }),
        "{}",
        relay.log_text()
    );

    // .3 leaves the name's answer: retired, and no longer checked (its last
    // health stays); back in the answer, checked again.
    dns.set_hosts("127.0.0.2 svc.test\n");
    assert!(until(Duration::from_secs(6), || state(&b)["state"] == "retired"));
    let done = checks_done(&state(&b));
    // Three intervals, polled: no check of the retired address ends.
    assert!(
        !until(Duration::from_secs(3), || checks_done(&state(&b)) != done),
        "a retired address is still checked: {}",
        state(&b)
    );
    assert!(checks_done(&state(&a)) > 0);
    dns.set_hosts("127.0.0.2 svc.test\n127.0.0.3 svc.test\n");
    assert!(
        until(Duration::from_secs(6), || checks_done(&state(&b)) > done),
        "checked again once back: {}",
        state(&b)
    );
    three.stop();
}

/// A session through the relay on `port` from `stream`'s client that first sends a
/// hand-made ClientHello naming `sni` (or none; passthrough routes relay it to the
/// backend untouched): which backend answered.
fn open_hello(stream: TcpStream, sni: Option<&str>) -> Option<(TcpStream, u8)> {
    let mut s = stream;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(&tcprelay::sni::example::client_hello(sni, 0))
        .ok()?;
    let who = read_who(&mut s).ok()?;
    Some((s, who))
}

/// `tcprelay-cc route --sni NAME` on `dir/relay.cfg`: the names resolved at run
/// time it shows for the client's route.
fn route_discovered(dir: &Path, port: u16, sni: &str) -> Vec<String> {
    let answer = crate::sni::route_answer(dir, port, Some(sni));
    answer["balance"]["discovered"]
        .as_array()
        .map(|names| {
            names
                .iter()
                .map(|n| n["name"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// A name resolved at run time inside a `route` block serves that route's clients
/// only: with sessions held open (which least connections would spread over every
/// remote), each client naming `a.test` reaches the discovered address and every
/// other client (no server name, another name) the default route's remote. The
/// default route's remote is a plan remote on one relay and a discovered one on
/// the other (whose plan then has no remote at all: every remote's route comes
/// from its name's template). `tcprelay-cc route --sni` shows each route's names
/// only.
#[test]
fn a_discovered_remote_of_a_route_serves_only_that_routes_clients() {
    let dir = tempfile::tempdir().unwrap();
    let backends = Backends::start(2);
    let p = backends.port;
    let dns = Dns::start(
        dir.path(),
        "127.0.0.2 routed.test\n127.0.0.3 default.test\n",
        "",
    );
    let defaults = [
        format!("remote = {{ address = 127.0.0.3 port = {p} }}"),
        format!("remote = {{ address = default.test port = {p} }}"),
    ];
    for default in defaults {
        let dir = tempfile::tempdir().unwrap();
        let port = crate::harness::free_port();
        let cfg = format!(
            "id = spawnd {{\n    listen = {{ address = 127.0.0.1 port = {port} tls = yes }}\n    spawn = {{ servers min = 1 servers max = 1 }}\n}}\n\
             id = tcprelay {{\n    resolvers = {{ nameserver = 127.0.0.1:{} timeout = 1 attempts = 1 }}\n    \
             route = {{ sni = a.test mode = passthrough remote = {{ address = routed.test port = {p} }} }}\n    \
             route = {{ mode = passthrough {default} }}\n}}\n",
            dns.port
        );
        let plan = compile(dir.path(), "relay", &cfg);
        let relay = Relay::start(dir.path(), &["run", "-f", plan.to_str().unwrap()], port);
        let mut held = Vec::new();
        for round in 0..4 {
            for (sni, expected) in [(Some("a.test"), 2), (None, 3), (Some("other.test"), 3)] {
                let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
                let (s, at) = open_hello(stream, sni).unwrap_or_else(|| {
                    panic!("{sni:?} not served ({default}): {}", relay.log_text())
                });
                assert_eq!(at, expected, "{sni:?}, round {round} ({default})");
                held.push(s);
            }
        }
        assert_eq!(
            route_discovered(dir.path(), port, "a.test"),
            ["routed.test"]
        );
        let other: Vec<String> = default
            .contains("default.test")
            .then(|| "default.test".to_string())
            .into_iter()
            .collect();
        assert_eq!(route_discovered(dir.path(), port, "other.test"), other);
    }
}

/// `balance = source` over the addresses a name resolves to: each client address
/// (sessions held open, from 40 loopback addresses, on a relay of two workers)
/// reaches the first of the rendezvous order of the discovered addresses' keys
/// (`ADDRESS:PORT/PROTOCOL`, as the plan crate computes it), and a second relay,
/// started after the records were listed in the other order, agrees on every
/// client.
#[test]
fn balance_source_over_discovered_remotes_follows_their_keys_on_two_relays() {
    use tcprelay_plan::balance;
    let dir = tempfile::tempdir().unwrap();
    let backends = Backends::start(4);
    let p = backends.port;
    let hosts = |order: &[u8]| -> String {
        order
            .iter()
            .map(|n| format!("127.0.0.{n} svc.test\n"))
            .collect()
    };
    let dns = Dns::start(dir.path(), &hosts(&[2, 3, 4, 5]), "");
    let cfg = |port: u16| {
        format!(
            "id = spawnd {{\n    listen = {{ address = 127.0.0.1 port = {port} }}\n    spawn = {{ servers min = 2 servers max = 2 }}\n}}\n\
             id = tcprelay {{\n    resolvers = {{ nameserver = 127.0.0.1:{} timeout = 1 attempts = 1 }}\n    \
             balance = source\n    remote = {{ address = svc.test port = {p} }}\n}}\n",
            dns.port
        )
    };
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (p1, p2) = (crate::harness::free_port(), crate::harness::free_port());
    let plan = compile(one.path(), "relay", &cfg(p1));
    let r1 = Relay::start(one.path(), &["run", "-f", plan.to_str().unwrap()], p1);
    dns.set_hosts(&hosts(&[5, 4, 3, 2]));
    let plan2 = compile(two.path(), "relay", &cfg(p2));
    let r2 = Relay::start(two.path(), &["run", "-f", plan2.to_str().unwrap()], p2);

    // The order the plan crate gives: the discovered remotes' keys, as the
    // workers make them (the name's template at each address).
    let (_, decoded) = tcprelay_plan::decode(&std::fs::read(&plan).unwrap()).unwrap();
    let template = &decoded.relay.discovered[0].template;
    let keyed: Vec<(u8, u64, u64)> = (2..=5u8)
        .map(|n| {
            let mut remote = template.clone();
            remote.address = SocketAddr::from(([127, 0, 0, n], p));
            (
                n,
                balance::remote_key(&remote.key()),
                balance::weight(remote.weight),
            )
        })
        .collect();
    let pairs: Vec<(u64, u64)> = keyed.iter().map(|&(_, k, w)| (k, w)).collect();
    let mut held = Vec::new();
    let mut reached = std::collections::BTreeMap::new();
    for round in 0..2 {
        for from in 20..=59u8 {
            let client = std::net::IpAddr::from([127, 0, 0, from]);
            let expected = keyed[balance::source_order(balance::client_key(client), &pairs)[0]].0;
            for (relay, port) in [(&r1, p1), (&r2, p2)] {
                let (s, at) = open_from(port, from)
                    .unwrap_or_else(|| panic!("127.0.0.{from} not served: {}", relay.log_text()));
                assert_eq!(at, expected, "127.0.0.{from} on {port}, round {round}");
                *reached.entry(at).or_insert(0) += 1;
                held.push(s);
            }
        }
    }
    assert_eq!(reached.len(), 4, "every address has clients: {reached:?}");
}

/// [`open`] from a client bound to `127.0.0.FROM`.
fn open_from(port: u16, from: u8) -> Option<(TcpStream, u8)> {
    let mut s = crate::harness::connect_from(port, from, Duration::from_secs(5));
    let who = read_who(&mut s).ok()?;
    Some((s, who))
}
