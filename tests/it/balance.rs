//! `balance = source` and `source sticky` on real relays (docs/balance.md): clients
//! named by PROXY v1 headers, four backends that say who they are, two relays with
//! two workers each; `tcprelay-cc route --proxy-from` and the plan crate's order
//! give the same remote; reloads that remove or add a backend move only the
//! clients the rule says.

use crate::harness::{cc, compile, free_port, stderr, stdout, Relay};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A backend on `127.0.0.1:0` that writes its name to each connection and closes
/// it. Stops when dropped.
struct Named {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl Named {
    fn start(name: &str) -> Named {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a backend");
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let (s, name) = (stop.clone(), name.to_string());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.load(Ordering::Relaxed) {
                    break;
                }
                if let Ok(mut stream) = stream {
                    let _ = stream.write_all(name.as_bytes());
                }
            }
        });
        Named { port, stop }
    }
}

impl Drop for Named {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the accept.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Synthetic client `n`: 10.(n / 256).(n % 256).7.
fn client(n: u32) -> IpAddr {
    IpAddr::from([10, (n / 256) as u8, (n % 256) as u8, 7])
}

/// The backend that answers a client named `ip` by a PROXY v1 header on the relay
/// at `127.0.0.1:port`.
fn served(port: u16, ip: IpAddr) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the relay");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "PROXY TCP4 {ip} 127.0.0.1 40000 {port}\r\n").expect("send the header");
    let mut name = String::new();
    stream
        .read_to_string(&mut name)
        .expect("the backend's name");
    assert!(!name.is_empty(), "no backend answered {ip}");
    name
}

/// A configuration listening on `port` with PROXY v1 from 127.0.0.1, two workers,
/// `balance = METHOD` and a remote for each `(name, port)`.
fn cfg(port: u16, method: &str, spawnd: &str, backends: &[(&str, u16)]) -> String {
    let remotes: String = backends
        .iter()
        .map(|(_, p)| format!("    remote = {{ address = 127.0.0.1 port = {p} }}\n"))
        .collect();
    format!(
        "id = spawnd {{
    listen = {{ address = 127.0.0.1 port = {port} accept proxy = v1 accept proxy from = 127.0.0.1 }}
    spawn = {{ servers min = 2 servers max = 2 }}
{spawnd}
}}
id = tcprelay {{
    balance = {method}
{remotes}}}
"
    )
}

/// Each client's backend through the relay on `port`.
fn through(port: u16, clients: u32) -> Vec<String> {
    (0..clients).map(|n| served(port, client(n))).collect()
}

/// The backend the plan crate's order puts first for each client.
fn by_plan(plan: &Path, names: &BTreeMap<u16, &str>, clients: u32) -> Vec<String> {
    let (_, plan) = tcprelay_plan::decode(&std::fs::read(plan).unwrap()).unwrap();
    (0..clients)
        .map(|n| {
            let order = tcprelay_plan::route::source_order(&plan.relay.remotes, client(n));
            names[&plan.relay.remotes[order[0]].address.port()].to_string()
        })
        .collect()
}

fn reload(relay: &Relay, generation: u32) {
    relay.signal(libc::SIGHUP);
    relay.await_log(
        &format!("reloaded (generation {generation})"),
        Duration::from_secs(20),
    );
}

#[test]
fn two_relays_agree_on_every_client_with_route_and_a_removed_remote_moves_only_its_own() {
    const CLIENTS: u32 = 1000;
    let backends: Vec<(&str, Named)> = ["a", "b", "c", "d"]
        .into_iter()
        .map(|n| (n, Named::start(n)))
        .collect();
    let names: BTreeMap<u16, &str> = backends.iter().map(|(n, b)| (b.port, *n)).collect();
    let list: Vec<(&str, u16)> = backends.iter().map(|(n, b)| (*n, b.port)).collect();
    let mut reversed = list.clone();
    reversed.reverse();

    // Relay one lists the remotes a to d, relay two d to a: the same remotes.
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (p1, p2) = (free_port(), free_port());
    let plan1 = compile(one.path(), "relay", &cfg(p1, "source", "", &list));
    let plan2 = compile(two.path(), "relay", &cfg(p2, "source", "", &reversed));
    let r1 = Relay::start(one.path(), &["run", "-f", plan1.to_str().unwrap()], p1);
    let r2 = Relay::start(two.path(), &["run", "-f", plan2.to_str().unwrap()], p2);
    r1.await_workers(2, Duration::from_secs(10));
    r2.await_workers(2, Duration::from_secs(10));

    let before = through(p1, CLIENTS);
    assert_eq!(before, through(p2, CLIENTS), "the two relays disagree");
    assert_eq!(before, by_plan(&plan1, &names, CLIENTS));
    let mut shares = BTreeMap::new();
    for name in &before {
        *shares.entry(name.as_str()).or_insert(0) += 1;
    }
    assert_eq!(shares.len(), 4, "every backend has clients: {shares:?}");
    for (name, count) in &shares {
        assert!((180..=320).contains(count), "{name}: {count} of 1000");
    }
    // `tcprelay-cc route` names the same remote first, from the configuration.
    for n in (0..CLIENTS).step_by(50) {
        let proxy_from = format!("{}:40000", client(n));
        let to = format!("127.0.0.1:{p1}");
        let out = cc(
            one.path(),
            &[
                "route",
                "relay.cfg",
                "--from",
                "127.0.0.1",
                "--to",
                &to,
                "--proxy-from",
                &proxy_from,
                "--format",
                "json",
            ],
        );
        assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
        let answer: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        assert_eq!(answer["balance"]["method"], "source");
        let port = first_candidate_port(&answer);
        assert_eq!(names[&port], before[n as usize], "route for {}", client(n));
    }

    // Relay one reloads without c: c's clients move, nobody else's.
    let without: Vec<(&str, u16)> = list.iter().copied().filter(|(n, _)| *n != "c").collect();
    compile(one.path(), "relay", &cfg(p1, "source", "", &without));
    reload(&r1, 2);
    let after = through(p1, CLIENTS);
    let mut moved = 0;
    for (n, (b, a)) in before.iter().zip(&after).enumerate() {
        if b == "c" {
            moved += 1;
            assert_ne!(a, "c");
        } else {
            assert_eq!(a, b, "client {} moved from {b}", client(n as u32));
        }
    }
    assert_eq!(moved, shares["c"]);
    assert_eq!(after, by_plan(&plan1, &names, CLIENTS));
}

#[test]
fn source_sticky_keeps_clients_when_a_remote_is_added_and_moves_a_removed_ones() {
    const CLIENTS: u32 = 300;
    let backends: Vec<(&str, Named)> = ["a", "b", "c", "d", "e"]
        .into_iter()
        .map(|n| (n, Named::start(n)))
        .collect();
    let names: BTreeMap<u16, &str> = backends.iter().map(|(n, b)| (b.port, *n)).collect();
    let all: Vec<(&str, u16)> = backends.iter().map(|(n, b)| (*n, b.port)).collect();
    let four = &all[..4];
    let cache = "    sticky cache period = 300\n    sticky cache size = 65536";
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let plan = compile(
        dir.path(),
        "relay",
        &cfg(port, "source sticky", cache, four),
    );
    let relay = Relay::start(dir.path(), &["run", "-f", plan.to_str().unwrap()], port);
    relay.await_workers(2, Duration::from_secs(10));
    let before = through(port, CLIENTS);
    assert_eq!(
        before,
        by_plan(&plan, &names, CLIENTS),
        "first: the source choice"
    );

    // A fifth remote: `source` would move its share; the cache keeps everyone.
    compile(
        dir.path(),
        "relay",
        &cfg(port, "source sticky", cache, &all),
    );
    let hashed = by_plan(&plan, &names, CLIENTS);
    let drawn = hashed.iter().filter(|n| *n == "e").count();
    assert!(drawn > 20, "the hash gives e some clients: {drawn}");
    reload(&relay, 2);
    assert_eq!(through(port, CLIENTS), before, "a client left its remote");

    // Without b: b's clients go to their next in the order, the others stay.
    let without: Vec<(&str, u16)> = all.iter().copied().filter(|(n, _)| *n != "b").collect();
    compile(
        dir.path(),
        "relay",
        &cfg(port, "source sticky", cache, &without),
    );
    reload(&relay, 3);
    let after = through(port, CLIENTS);
    let hashed = by_plan(&plan, &names, CLIENTS);
    for n in 0..CLIENTS as usize {
        if before[n] == "b" {
            assert_eq!(
                after[n],
                hashed[n],
                "b's client {} by source",
                client(n as u32)
            );
        } else {
            assert_eq!(after[n], before[n], "client {} moved", client(n as u32));
        }
    }
    assert!(before.iter().any(|n| n == "b"));
}

/// The port of the first remote `tcprelay-cc route --format json` lists for the
/// client (`ADDRESS:PORT/TCP`).
pub(crate) fn first_candidate_port(answer: &serde_json::Value) -> u16 {
    answer["balance"]["candidates"][0]["remote"]
        .as_str()
        .unwrap_or_else(|| panic!("{answer}"))
        .trim_end_matches("/TCP")
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}
