//! The relay's metrics: a counters [`Snapshot`] (and what only the master knows)
//! rendered as Prometheus families. The names and labels are documented in
//! `docs/metrics.md`; a test checks that every family written here is listed there.

use super::exposition::{Exposition, Kind};
use crate::health::{Health, Outcome};
use crate::stats::{Histogram, RemoteKey, Snapshot};

/// What the master adds to the counters.
#[derive(Debug, Clone)]
pub struct Info<'a> {
    pub version: &'a str,
    /// The plan's hash as `tcprelay ctl status` shows it.
    pub plan_hash: &'a str,
    /// When the master started, in seconds since the epoch.
    pub start_time: f64,
    /// The current generation (1 at start, one more for each reload taken).
    pub generation: u64,
    /// Workers alive, all generations.
    pub workers: u64,
    /// Reloads that were refused (bad plan, an address that cannot be bound).
    pub reloads_failed: u64,
    /// The running plan's checked remotes and their health.
    pub health: &'a [(RemoteKey, Health)],
    /// DNS discovery: each name, its failed resolutions and its addresses
    /// (`ADDRESS:PORT/PROTOCOL`, and whether in the set now or retired).
    pub discovery: &'a [Discovered],
}

/// A discovered name as the metrics show it.
#[derive(Debug, Clone)]
pub struct Discovered {
    pub name: String,
    pub failures: u64,
    pub remotes: Vec<(RemoteKey, bool)>,
}

/// The label a listener or remote beyond the counters' capacity is shown under.
const OVERFLOW: &str = "other";

/// The exposition of a snapshot.
pub fn render(snapshot: &Snapshot, info: &Info<'_>) -> String {
    let mut e = Exposition::new();
    e.family(
        "tcprelay_info",
        Kind::Gauge,
        "The relay's version and the hash of the plan it runs (always 1).",
    );
    e.sample(
        "tcprelay_info",
        &[("version", info.version), ("plan_hash", info.plan_hash)],
        1.0,
    );
    gauge(
        &mut e,
        "tcprelay_start_time_seconds",
        "When the master started, in seconds since the epoch.",
        info.start_time,
    );
    gauge(
        &mut e,
        "tcprelay_generation",
        "The current generation: 1 at start, one more for each reload taken.",
        info.generation as f64,
    );
    gauge(
        &mut e,
        "tcprelay_workers",
        "Worker processes alive, old generations draining included.",
        info.workers as f64,
    );
    counter(
        &mut e,
        "tcprelay_reloads_failed_total",
        "Reloads refused; the running plan served on.",
        info.reloads_failed,
    );
    if !info.discovery.is_empty() {
        e.family(
            "tcprelay_resolve_failures_total",
            Kind::Counter,
            "Resolutions of a discovered name that failed (its last set kept).",
        );
        for d in info.discovery {
            e.sample(
                "tcprelay_resolve_failures_total",
                &[("name", &d.name)],
                d.failures as f64,
            );
        }
        e.family(
            "tcprelay_discovered_remote",
            Kind::Gauge,
            "A remote found by DNS: 1 while in its name's set, 0 once retired.",
        );
        for d in info.discovery {
            for (key, live) in &d.remotes {
                e.sample(
                    "tcprelay_discovered_remote",
                    &[("name", &d.name), ("remote", &key.to_string())],
                    if *live { 1.0 } else { 0.0 },
                );
            }
        }
    }

    let t = &snapshot.totals;
    counter(
        &mut e,
        "tcprelay_shed_total",
        "Connections closed or reset by the master while every worker was full.",
        t.shed,
    );
    e.family(
        "tcprelay_tls_handshakes_total",
        Kind::Counter,
        "TLS handshakes with clients, by result.",
    );
    e.sample(
        "tcprelay_tls_handshakes_total",
        &[("result", "ok")],
        t.tls_handshakes as f64,
    );
    e.sample(
        "tcprelay_tls_handshakes_total",
        &[("result", "failed")],
        t.tls_failures as f64,
    );
    e.family(
        "tcprelay_sticky_total",
        Kind::Counter,
        "Sticky clients' first selections, by whether they took the remote their entry named.",
    );
    e.sample(
        "tcprelay_sticky_total",
        &[("result", "hit")],
        t.sticky_hits as f64,
    );
    e.sample(
        "tcprelay_sticky_total",
        &[("result", "miss")],
        t.sticky_misses as f64,
    );
    e.family(
        "tcprelay_sticky_handoffs_total",
        Kind::Counter,
        "Sticky clients handed through the master to the worker their entry named: passed to another worker, returned to the one that accepted them, or closed.",
    );
    for (result, n) in [
        ("passed", t.handoffs_passed),
        ("returned", t.handoffs_returned),
        ("closed", t.handoffs_closed),
    ] {
        e.sample(
            "tcprelay_sticky_handoffs_total",
            &[("result", result)],
            n as f64,
        );
    }
    e.family(
        "tcprelay_sni_refused_reasons_total",
        Kind::Counter,
        "TLS clients SNI routing closed before any remote, by reason.",
    );
    for why in crate::stats::SniRefusal::ALL {
        e.sample(
            "tcprelay_sni_refused_reasons_total",
            &[("reason", why.name())],
            t.sni_refused[why as usize] as f64,
        );
    }
    e.family(
        "tcprelay_session_duration_seconds",
        Kind::Histogram,
        "How long sessions lasted, from accept to close.",
    );
    histogram(
        &mut e,
        "tcprelay_session_duration_seconds",
        &[],
        &t.durations,
    );

    let listeners: Vec<(String, &crate::stats::ListenerEntry)> = snapshot
        .listeners
        .iter()
        .map(|l| {
            (
                l.key
                    .as_ref()
                    .map_or_else(|| OVERFLOW.to_string(), |k| k.to_string()),
                l,
            )
        })
        .collect();
    type ListenerField = fn(&crate::stats::ListenerEntry) -> u64;
    let per_listener: [(&str, Kind, &str, ListenerField); 5] = [
        (
            "tcprelay_accepted_total",
            Kind::Counter,
            "Connections accepted, those the ACL then denied included.",
            |l| l.accepted,
        ),
        (
            "tcprelay_denied_total",
            Kind::Counter,
            "Connections denied by the ACL.",
            |l| l.denied,
        ),
        (
            "tcprelay_proxy_refused_total",
            Kind::Counter,
            "Connections a PROXY-accepting listener closed: untrusted peer, bad header or timeout.",
            |l| l.proxy_refused,
        ),
        (
            "tcprelay_sni_refused_total",
            Kind::Counter,
            "TLS clients SNI routing closed before any remote: not TLS, no or an unknown server name without a default route, a bad ClientHello, or none in time.",
            |l| l.sni_refused,
        ),
        (
            "tcprelay_sessions",
            Kind::Gauge,
            "Sessions open now.",
            |l| l.sessions,
        ),
    ];
    for (name, kind, help, field) in per_listener {
        e.family(name, kind, help);
        for (key, l) in &listeners {
            e.sample(name, &[("listener", key)], field(l) as f64);
        }
    }
    e.family(
        "tcprelay_bytes_total",
        Kind::Counter,
        "Bytes relayed, by listener and direction (to_remote: from clients; to_client: from remotes).",
    );
    for (key, l) in &listeners {
        e.sample(
            "tcprelay_bytes_total",
            &[("listener", key), ("direction", "to_remote")],
            l.bytes_to_remote as f64,
        );
        e.sample(
            "tcprelay_bytes_total",
            &[("listener", key), ("direction", "to_client")],
            l.bytes_to_client as f64,
        );
    }

    let health_of = |key: &Option<RemoteKey>| {
        info.health
            .iter()
            .find(|(k, _)| Some(*k) == *key)
            .map(|(_, h)| h)
    };
    let remotes: Vec<(String, String, crate::stats::RemoteEntry)> = snapshot
        .remotes
        .iter()
        .map(|r| {
            let mut r = r.clone();
            // Down by its checks: shown as a dead mark would be; marks a passing
            // check has cleared (the workers forget them at their next selection)
            // are not shown.
            match health_of(&r.key) {
                Some(h) if h.down => r.dead_marks = r.dead_marks.max(1),
                Some(h) if h.clears_marks_since(r.dead_since) => r.dead_marks = 0,
                _ => {}
            }
            match &r.key {
                Some(k) => (
                    k.address.to_string(),
                    k.protocol.to_string().to_ascii_lowercase(),
                    r,
                ),
                None => (OVERFLOW.to_string(), OVERFLOW.to_string(), r),
            }
        })
        .collect();
    type RemoteField = fn(&crate::stats::RemoteEntry) -> u64;
    let per_remote: [(&str, Kind, &str, RemoteField); 5] = [
        (
            "tcprelay_remote_sessions",
            Kind::Gauge,
            "Sessions relayed to the remote now.",
            |r| r.sessions,
        ),
        (
            "tcprelay_remote_connections_total",
            Kind::Counter,
            "Connections established to the remote.",
            |r| r.connections,
        ),
        (
            "tcprelay_remote_connect_failures_total",
            Kind::Counter,
            "Connects to the remote that failed (refused, reset, timed out).",
            |r| r.connect_failures,
        ),
        (
            "tcprelay_remote_tls_failures_total",
            Kind::Counter,
            "TLS handshakes with the remote that failed (tls = yes remotes: an alert, a certificate refused, a timeout).",
            |r| r.tls_failures,
        ),
        (
            "tcprelay_remote_up",
            Kind::Gauge,
            "1 unless its health checks hold the remote down or a worker holds it dead.",
            |r| u64::from(r.dead_marks == 0),
        ),
    ];
    for (name, kind, help, field) in per_remote {
        e.family(name, kind, help);
        for (address, protocol, r) in &remotes {
            e.sample(
                name,
                &[("remote", address), ("protocol", protocol)],
                field(r) as f64,
            );
        }
    }
    e.family(
        "tcprelay_remote_bytes_total",
        Kind::Counter,
        "Bytes relayed, by remote and direction (to_remote: from clients; to_client: from the remote).",
    );
    for (address, protocol, r) in &remotes {
        for (direction, n) in [
            ("to_remote", r.bytes_to_remote),
            ("to_client", r.bytes_to_client),
        ] {
            e.sample(
                "tcprelay_remote_bytes_total",
                &[
                    ("remote", address),
                    ("protocol", protocol),
                    ("direction", direction),
                ],
                n as f64,
            );
        }
    }
    e.family(
        "tcprelay_remote_connect_seconds",
        Kind::Histogram,
        "How long connects to the remote took, for those that succeeded.",
    );
    for (address, protocol, r) in &remotes {
        histogram(
            &mut e,
            "tcprelay_remote_connect_seconds",
            &[("remote", address), ("protocol", protocol)],
            &r.connect_times,
        );
    }
    let checked: Vec<(String, String, &Health)> = info
        .health
        .iter()
        .map(|(k, h)| {
            (
                k.address.to_string(),
                k.protocol.to_string().to_ascii_lowercase(),
                h,
            )
        })
        .collect();
    e.family(
        "tcprelay_remote_check_duration_seconds",
        Kind::Gauge,
        "How long the remote's last health check took.",
    );
    for (address, protocol, h) in &checked {
        if h.last.is_some() {
            e.sample(
                "tcprelay_remote_check_duration_seconds",
                &[("remote", address), ("protocol", protocol)],
                h.duration.as_secs_f64(),
            );
        }
    }
    e.family(
        "tcprelay_remote_checks_total",
        Kind::Counter,
        "Health checks of the remote, by result.",
    );
    for (address, protocol, h) in &checked {
        for (outcome, n) in Outcome::ALL.iter().zip(h.counts) {
            e.sample(
                "tcprelay_remote_checks_total",
                &[
                    ("remote", address),
                    ("protocol", protocol),
                    ("result", outcome.name()),
                ],
                n as f64,
            );
        }
    }
    e.finish()
}

fn gauge(e: &mut Exposition, name: &str, help: &str, value: f64) {
    e.family(name, Kind::Gauge, help);
    e.sample(name, &[], value);
}

fn counter(e: &mut Exposition, name: &str, help: &str, value: u64) {
    e.family(name, Kind::Counter, help);
    e.sample(name, &[], value as f64);
}

fn histogram(e: &mut Exposition, name: &str, labels: &[(&str, &str)], h: &Histogram) {
    let buckets: Vec<(f64, u64)> = h
        .buckets
        .iter()
        .filter_map(|(le, n)| le.map(|le| (le.as_secs_f64(), *n)))
        .collect();
    e.histogram(name, labels, &buckets, h.sum.as_secs_f64(), h.count());
}
