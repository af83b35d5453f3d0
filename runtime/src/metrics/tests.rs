use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use tcprelay_plan::{ListenAddress, Protocol};

use super::render::{render, Info};
use crate::stats::{Registry, RemoteKey};

fn info() -> Info<'static> {
    Info {
        version: "0.1.0",
        plan_hash: "0123abcd",
        start_time: 1_764_600_000.5,
        generation: 2,
        workers: 3,
        reloads_failed: 1,
        health: checked(),
        discovery: Box::leak(Box::new([super::render::Discovered {
            name: "svc.test".into(),
            failures: 1,
            remotes: vec![(
                RemoteKey {
                    address: "10.0.0.9:80".parse().unwrap(),
                    protocol: Protocol::Tcp,
                },
                true,
            )],
        }])),
    }
}

/// The remote 10.0.0.1:80/tcp is checked: down after two timeouts and a pass.
fn checked() -> &'static [(RemoteKey, crate::health::Health)] {
    use crate::health::{Outcome, Table};
    static HEALTH: std::sync::OnceLock<Vec<(RemoteKey, crate::health::Health)>> =
        std::sync::OnceLock::new();
    HEALTH.get_or_init(|| {
        let table = Table::new().expect("table");
        let at = std::time::SystemTime::now();
        for (outcome, ms) in [
            (Outcome::Pass, 2),
            (Outcome::Timeout, 1000),
            (Outcome::Timeout, 1000),
        ] {
            table.record(1, outcome, Duration::from_millis(ms), at, 2, 2);
        }
        let key = RemoteKey {
            address: "10.0.0.1:80".parse().unwrap(),
            protocol: Protocol::Tcp,
        };
        vec![(key, table.read(1))]
    })
}

/// A registry with two listeners and two remotes (one IPv6) and some traffic
/// counted by a worker seat and the master.
fn busy_snapshot() -> crate::stats::Snapshot {
    let mut registry = Registry::new().expect("registry");
    let slots = registry.assign_keys(
        &[
            ListenAddress::Inet("127.0.0.1:8080".parse().unwrap()),
            ListenAddress::Unix("/run/a \"b\".sock".into()),
        ],
        &[
            RemoteKey {
                address: "10.0.0.1:80".parse().unwrap(),
                protocol: Protocol::Tcp,
            },
            RemoteKey {
                address: "[2001:db8::1]:443".parse().unwrap(),
                protocol: Protocol::Sctp,
            },
        ],
    );
    let worker = registry.seat(0).expect("seat");
    let (l, r) = (slots.listeners[0], slots.remotes[1]);
    worker.accepted(l);
    worker.accepted(l);
    worker.denied(slots.listeners[1]);
    worker.connected(r, Duration::from_millis(3));
    worker.connect_failed(slots.remotes[0]);
    worker.session_opened(l, r);
    worker.bytes(l, r, 100, 2_000);
    worker.session_closed(l, r, Duration::from_millis(1500));
    worker.session_opened(l, r);
    worker.tls_handshake(true);
    worker.tls_handshake(false);
    registry.master().shed();
    registry.snapshot()
}

#[test]
fn a_snapshot_renders_its_counts_under_their_labels() {
    let text = render(&busy_snapshot(), &info());
    for line in [
        "tcprelay_info{version=\"0.1.0\",plan_hash=\"0123abcd\"} 1",
        "tcprelay_generation 2",
        "tcprelay_shed_total 1",
        "tcprelay_accepted_total{listener=\"127.0.0.1:8080\"} 2",
        "tcprelay_denied_total{listener=\"unix:/run/a \\\"b\\\".sock\"} 1",
        "tcprelay_sessions{listener=\"127.0.0.1:8080\"} 1",
        "tcprelay_bytes_total{listener=\"127.0.0.1:8080\",direction=\"to_client\"} 2000",
        "tcprelay_tls_handshakes_total{result=\"failed\"} 1",
        "tcprelay_remote_connections_total{remote=\"[2001:db8::1]:443\",protocol=\"sctp\"} 1",
        "tcprelay_remote_connect_failures_total{remote=\"10.0.0.1:80\",protocol=\"tcp\"} 1",
        "tcprelay_remote_bytes_total{remote=\"[2001:db8::1]:443\",protocol=\"sctp\",direction=\"to_remote\"} 100",
        "tcprelay_remote_connect_seconds_bucket{remote=\"[2001:db8::1]:443\",protocol=\"sctp\",le=\"0.005\"} 1",
        "tcprelay_session_duration_seconds_bucket{le=\"2.5\"} 1",
        "tcprelay_session_duration_seconds_count 1",
        "tcprelay_session_duration_seconds_sum 1.5",
        "tcprelay_remote_up{remote=\"10.0.0.1:80\",protocol=\"tcp\"} 0",
        "tcprelay_remote_up{remote=\"[2001:db8::1]:443\",protocol=\"sctp\"} 1",
        "tcprelay_remote_check_duration_seconds{remote=\"10.0.0.1:80\",protocol=\"tcp\"} 1",
        "tcprelay_remote_checks_total{remote=\"10.0.0.1:80\",protocol=\"tcp\",result=\"timeout\"} 2",
        "tcprelay_remote_checks_total{remote=\"10.0.0.1:80\",protocol=\"tcp\",result=\"pass\"} 1",
        "tcprelay_remote_checks_total{remote=\"10.0.0.1:80\",protocol=\"tcp\",result=\"tls\"} 0",
    ] {
        assert!(text.lines().any(|l| l == line), "no line {line} in:\n{text}");
    }
}

/// `promtool check metrics` (Debian package prometheus, which scripts/test.sh
/// installs) accepts the exposition: names, types, help, label syntax, histogram
/// structure and the conventions it lints (counters ending in `_total`, units).
#[test]
fn promtool_accepts_the_exposition() {
    let text = render(&busy_snapshot(), &info());
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs (Debian package prometheus; scripts/test.sh installs it)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("written");
    let out = child.wait_with_output().expect("promtool ends");
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every family a text has (its `# TYPE` lines), in order.
fn families(text: &str) -> Vec<&str> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect()
}

/// Every family is documented in docs/metrics.md, and every one documented exists.
#[test]
fn every_family_is_documented() {
    let text = render(&busy_snapshot(), &info());
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/metrics.md"))
        .expect("docs/metrics.md");
    let documented: Vec<&str> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("| `tcprelay_"))
        .filter_map(|l| l.split('`').next())
        .collect();
    let written: Vec<String> = families(&text)
        .iter()
        .map(|f| f.trim_start_matches("tcprelay_").to_string())
        .collect();
    assert_eq!(documented, written, "docs/metrics.md lists other families");
}

/// A worker's dead mark shows as `tcprelay_remote_up 0` until a health check of
/// the remote passes after it (the worker forgets it at its next selection).
#[test]
fn a_dead_mark_a_passing_check_cleared_is_not_shown() {
    use crate::health::{Outcome, Table};
    use std::time::{SystemTime, UNIX_EPOCH};
    let mut registry = Registry::new().expect("registry");
    let key = RemoteKey {
        address: "10.0.0.9:80".parse().unwrap(),
        protocol: Protocol::Tcp,
    };
    let slots = registry.assign_keys(&[], &[key]);
    let worker = registry.seat(0).expect("seat");
    let marked = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    worker.mark_dead(slots.remotes[0], marked);
    let snapshot = registry.snapshot();
    let up = "tcprelay_remote_up{remote=\"10.0.0.9:80\",protocol=\"tcp\"}";
    let shown = |health: &[(RemoteKey, crate::health::Health)]| {
        let info = Info { health, ..info() };
        let text = render(&snapshot, &info);
        text.lines()
            .find_map(|l| l.strip_prefix(up))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no {up} in\n{text}"))
            .to_string()
    };
    assert_eq!(shown(&[]), "0", "not checked: the mark counts");
    let table = Table::new().unwrap();
    let check = |outcome, at: SystemTime| {
        table.record(1, outcome, Duration::ZERO, at, 1, 2);
        [(key, table.read(1))]
    };
    assert_eq!(
        shown(&check(Outcome::Pass, marked)),
        "0",
        "passed before it"
    );
    let after = marked + Duration::from_secs(2);
    assert_eq!(shown(&check(Outcome::Pass, after)), "1", "passed after it");
    assert_eq!(
        shown(&check(Outcome::Refused, after)),
        "0",
        "failed after it"
    );
}

#[test]
fn discovered_names_show_their_failures_and_remotes() {
    let discovery = [super::render::Discovered {
        name: "svc.test".into(),
        failures: 3,
        remotes: vec![
            (
                RemoteKey {
                    address: "10.0.0.1:80".parse().unwrap(),
                    protocol: Protocol::Tcp,
                },
                true,
            ),
            (
                RemoteKey {
                    address: "10.0.0.2:80".parse().unwrap(),
                    protocol: Protocol::Tcp,
                },
                false,
            ),
        ],
    }];
    let with = Info {
        discovery: &discovery,
        ..info()
    };
    let text = render(&busy_snapshot(), &with);
    assert!(
        text.contains("tcprelay_resolve_failures_total{name=\"svc.test\"} 3\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "tcprelay_discovered_remote{name=\"svc.test\",remote=\"10.0.0.1:80/TCP\"} 1\n"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "tcprelay_discovered_remote{name=\"svc.test\",remote=\"10.0.0.2:80/TCP\"} 0\n"
        ),
        "{text}"
    );
    // Without discovered names, neither family is written.
    let without = Info {
        discovery: &[],
        ..info()
    };
    let text = render(&busy_snapshot(), &without);
    assert!(!text.contains("tcprelay_resolve_failures_total"));
}
