//! Lowering: the checked [`Model`] becomes the strict [`Plan`] the runtime runs.
//!
//! This is the only way a plan is built. It strips the spans and fills in the
//! defaults of `tcprelay_plan::defaults`; it reports nothing, because the check made
//! every diagnostic and hands out a model only when it found no error.

use crate::ast::Sp;
use crate::check::{
    AcceptProxyModel, CheckModel, ControlModel, DebugMask, ExpectModel, KeepaliveModel,
    ListenerModel, Model, RelayModel, RemoteModel, ResolveModel, RouteModel, SpawndModel,
    StickyModel, SyslogModel, TlsModel, TopModel,
};
use std::net::{Ipv4Addr, SocketAddr};
use tcprelay_plan::{
    defaults, AcceptProxy, Balance, Check, Control, Expect, Keepalive, Listener, Metrics, Overload,
    Plan, Protocol, Relay, Remote, RemoteTls, Resolve, Route, RouteMode, Spawnd, Sticky, Syslog,
    Tls,
};
use tcprelay_plan::{Discovered, Lookup};

/// The ident syslog uses when none is configured: the program's name.
const PROGRAM: &str = "tcprelay";

/// Lowers `model`; `source` names where the configuration came from.
pub fn lower(model: &Model, source: &str) -> Plan {
    Plan {
        source: source.to_string(),
        spawnd_id: model.spawnd_id.node.clone(),
        tcprelay_id: model.tcprelay_id.node.clone(),
        env: model
            .env
            .iter()
            .map(|(name, value)| (name.node.clone(), value.node.clone()))
            .collect(),
        spawnd: spawnd(&model.spawnd, &model.relay, &model.top),
        relay: relay(&model.relay, &model.top),
    }
}

/// The debug mask: the top level's `debug`, then the spawnd section's, then the
/// tcprelay section's, each applied over the one before.
fn debug(steps: [&Option<Sp<DebugMask>>; 3]) -> u32 {
    steps
        .into_iter()
        .flatten()
        .fold(0, |mask, step| step.node.apply(mask))
}

/// A sticky cache: off without a period or with a period of 0; 1024 entries unless
/// a size is given.
fn sticky(m: &StickyModel) -> Option<Sticky> {
    let period_s = m.period.as_ref().map(|v| v.node).filter(|&p| p > 0)?;
    Some(Sticky {
        period_s,
        size: m.size.as_ref().map_or(defaults::STICKY_SIZE, |v| v.node),
    })
}

fn spawnd(m: &SpawndModel, relay: &RelayModel, top: &TopModel) -> Spawnd {
    let keepalive = keepalive(&m.keepalive, &Keepalive::default());
    let s = &m.spawn;
    Spawnd {
        listeners: m
            .listeners
            .iter()
            .map(|l| listener(l, &keepalive, m.bind_retry_delay.as_ref().map(|v| v.node)))
            .collect(),
        // The default minimum follows a lower maximum (0 = no maximum).
        users_min: s.users_min.as_ref().map_or(
            match s.users_max.as_ref().map_or(defaults::USERS_MAX, |v| v.node) {
                0 => defaults::USERS_MIN,
                max => defaults::USERS_MIN.min(max),
            },
            |v| v.node,
        ),
        users_max: s.users_max.as_ref().map_or(defaults::USERS_MAX, |v| v.node),
        servers_min: s
            .servers_min
            .as_ref()
            .map_or(defaults::SERVERS_MIN, |v| v.node),
        servers_max: s
            .servers_max
            .as_ref()
            .map_or(defaults::SERVERS_MAX, |v| v.node),
        background: m.background.as_ref().is_some_and(|v| v.node),
        pidfile: m.pidfile.as_ref().map(|v| v.node.clone()),
        user: m.user.as_ref().map(|v| v.node.clone()),
        group: m.group.as_ref().map(|v| v.node.clone()),
        working_directory: m.working_directory.as_ref().map(|v| v.node.clone()),
        acl: m.acl.iter().map(|r| r.node).collect(),
        overload: s
            .overload
            .as_ref()
            .or(m.overload.as_ref())
            .map_or(Overload::Queue, |v| v.node),
        keepalive,
        single_process: m.single_process.as_ref().is_some_and(|v| v.node),
        syslog: syslog(&m.syslog, &top.syslog),
        debug: debug([&top.debug, &m.debug, &relay.debug]),
        tcp_bufsize: m.tcp_bufsize.as_ref().map(|v| v.node),
        sticky: sticky(&m.sticky),
        proctitle: m
            .proctitle
            .as_ref()
            .or(relay.proctitle.as_ref())
            .or(top.proctitle.as_ref())
            .map(|v| v.node.clone()),
        control: control(m.control.as_ref()),
        metrics: m.metrics.as_ref().map(|metrics| Metrics {
            address: metrics
                .address
                .as_ref()
                .map_or(defaults::METRICS_ADDRESS, |v| v.node),
            port: metrics.port.node,
        }),
        log_format: m
            .log_format
            .as_ref()
            .map_or(defaults::LOG_FORMAT, |v| v.node),
    }
}

/// No `control`: the default socket, whose path the runtime resolves; `control = no`:
/// none. The mode defaults to the owner's, and the group's too when a group is given.
fn control(m: Option<&ControlModel>) -> Option<Control> {
    match m {
        None => Some(Control::default_socket()),
        Some(ControlModel::Off) => None,
        Some(ControlModel::Socket { path, mode, group }) => Some(Control {
            path: path.as_ref().map(|v| v.node.clone()),
            mode: mode.as_ref().map_or(
                if group.is_some() {
                    defaults::CONTROL_GROUP_MODE
                } else {
                    defaults::CONTROL_MODE
                },
                |v| v.node,
            ),
            group: group.as_ref().map(|v| v.node.clone()),
        }),
    }
}

/// A listener; its own `bind retry delay` or the section's (0: none).
fn listener(l: &ListenerModel, section: &Keepalive, bind_retry_delay: Option<u32>) -> Listener {
    let backlog = l.backlog.as_ref().map_or(defaults::BACKLOG, |v| v.node);
    Listener {
        address: l.bind.resolve(),
        protocol: l.protocol.as_ref().map_or(Protocol::Tcp, |v| v.node),
        tls: l.tls.as_ref().is_some_and(|v| v.node),
        backlog,
        overload_backlog: l.overload_backlog.as_ref().map_or(backlog, |v| v.node),
        realm: l.realm.as_ref().map(|v| v.node.clone()),
        keepalive: keepalive(&l.keepalive, section),
        mode: l.mode.as_ref().map(|v| v.node),
        accept_proxy: accept_proxy(&l.proxy),
        tls_versions: l.tls_versions.clone(),
        tls_auto: l.tls_auto,
        dscp: l.dscp.as_ref().map(|v| v.node),
        vrf: l.vrf.as_ref().map(|v| v.node.clone()),
        owner: l.owner.as_ref().map(|v| v.node.clone()),
        group: l.group.as_ref().map(|v| v.node.clone()),
        bind_retry_delay: l
            .bind_retry_delay
            .as_ref()
            .map(|v| v.node)
            .or(bind_retry_delay)
            .filter(|&d| d > 0),
        sticky: sticky(&l.sticky),
    }
}

/// `haproxy = yes` is `accept proxy = any`; seconds become milliseconds.
fn accept_proxy(m: &AcceptProxyModel) -> Option<AcceptProxy> {
    Some(AcceptProxy {
        version: m.accepted()?,
        from: m.from.iter().map(|n| n.node).collect(),
        timeout_ms: m
            .timeout
            .as_ref()
            .map_or(defaults::ACCEPT_PROXY_TIMEOUT_MS, |v| v.node * 1000),
    })
}

/// `m` over `base`, field by field.
fn keepalive(m: &KeepaliveModel, base: &Keepalive) -> Keepalive {
    Keepalive {
        count: m.count.as_ref().map(|v| v.node).or(base.count),
        idle: m.idle.as_ref().map(|v| v.node).or(base.idle),
        interval: m.interval.as_ref().map(|v| v.node).or(base.interval),
    }
}

/// A section's syslog over the top level's, field by field.
fn syslog(m: &SyslogModel, top: &SyslogModel) -> Syslog {
    let mut s = Syslog::default_for(PROGRAM);
    if let Some(ident) = m.ident.as_ref().or(top.ident.as_ref()) {
        s.ident = ident.node.clone();
    }
    if let Some(f) = m.facility.as_ref().or(top.facility.as_ref()) {
        s.facility = f.node;
    }
    if let Some(sev) = m.severity.as_ref().or(top.severity.as_ref()) {
        s.severity = sev.node;
    }
    s
}

fn relay(m: &RelayModel, top: &TopModel) -> Relay {
    Relay {
        remotes: m.remotes.iter().map(|r| remote(r, m)).collect(),
        local_address: m.local_address.as_ref().map(|v| v.node),
        rebalance: m.rebalance.as_ref().map(|v| v.node),
        retire: m.retire.as_ref().map(|v| v.node),
        idle_timeout: m
            .idle_timeout
            .as_ref()
            .map_or(defaults::IDLE_TIMEOUT, |v| v.node),
        silent_timeout: m
            .silent_timeout
            .as_ref()
            .map_or(defaults::SILENT_TIMEOUT, |v| v.node),
        connect_timeout: m
            .connect_timeout
            .as_ref()
            .map_or(defaults::CONNECT_TIMEOUT, |v| v.node),
        tls_handshake_timeout: m
            .tls_handshake_timeout
            .as_ref()
            .map_or(defaults::TLS_HANDSHAKE_TIMEOUT, |v| v.node),
        half_close_timeout: m
            .half_close_timeout
            .as_ref()
            .map_or(defaults::HALF_CLOSE_TIMEOUT, |v| v.node),
        drain_timeout: m
            .drain_timeout
            .as_ref()
            .map_or(defaults::DRAIN_TIMEOUT, |v| v.node),
        drain_generations: m
            .drain_generations
            .as_ref()
            .map_or(defaults::DRAIN_GENERATIONS, |v| v.node),
        connection_log: m
            .connection_log
            .as_ref()
            .map_or(defaults::CONNECTION_LOG, |v| v.node),
        syslog: syslog(&m.syslog, &top.syslog),
        tls: tls(&m.tls),
        balance: m.balance.as_ref().map_or(Balance::LeastConn, |b| b.node),
        routes: m.routes.iter().map(route).collect(),
        discovered: m.discovered.iter().map(|r| discovered(r, m)).collect(),
        resolve: resolve(&m.resolve),
    }
}

/// A remote given by name: the template of the remotes its records give, with the
/// unspecified address (at its port; 0 for SRV). TLS towards a host name's
/// addresses checks the name (lowercase, without a final dot) when no `tls sni` was
/// written; an SRV name's targets need one (E0050).
fn discovered(r: &RemoteModel, section: &RelayModel) -> Discovered {
    let name = r
        .name
        .as_ref()
        .expect("the check gives each discovered remote its name");
    let mut template = remote(r, section);
    template.address = SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), r.port.node);
    let lookup = if name.srv {
        Lookup::Srv
    } else {
        if let Some(tls) = template.tls.as_mut().filter(|t| t.sni.is_none()) {
            tls.sni = Some(crate::check::dns_normal(&name.name.node));
        }
        Lookup::Address { port: r.port.node }
    };
    Discovered {
        name: name.name.node.to_ascii_lowercase(),
        lookup,
        template,
    }
}

/// The resolver settings, defaults filled in.
fn resolve(m: &ResolveModel) -> Resolve {
    let d = Resolve::default();
    let resolvers = m.resolvers.as_ref();
    Resolve {
        nameservers: resolvers
            .map_or_else(Vec::new, |r| r.nameservers.iter().map(|n| n.node).collect()),
        timeout_ms: resolvers
            .and_then(|r| r.timeout.as_ref())
            .map_or(d.timeout_ms, |v| v.node * 1000),
        attempts: resolvers
            .and_then(|r| r.attempts.as_ref())
            .map_or(d.attempts, |v| v.node),
        interval_s: m.interval.as_ref().map(|v| v.node),
        interval_min_s: m.interval_min.as_ref().map_or(d.interval_min_s, |v| v.node),
        interval_max_s: m.interval_max.as_ref().map_or(d.interval_max_s, |v| v.node),
        start_empty: m.start_empty.as_ref().is_some_and(|v| v.node),
    }
}

/// A certificate, its key (the certificate file when not given) and passphrase.
fn tls(m: &TlsModel) -> Option<Tls> {
    m.cert.as_ref().map(|cert| Tls {
        cert_file: cert.value.node.clone(),
        key_file: m
            .key
            .as_ref()
            .map_or_else(|| cert.value.node.clone(), |k| k.value.node.clone()),
        passphrase: m.passphrase.as_ref().map(|p| p.value.node.clone()),
    })
}

/// A `route` block (its remotes are lowered with the section's, each naming it).
fn route(m: &RouteModel) -> Route {
    Route {
        names: m.names.iter().map(|n| n.node.clone()).collect(),
        mode: m.mode.as_ref().map_or(RouteMode::Terminate, |v| v.node),
        tls: tls(&m.tls),
        balance: m.balance.as_ref().map(|v| v.node),
    }
}

/// A remote, with the section's `send proxy` when it has none of its own (its `check`
/// was merged with the section's by the check stage).
fn remote(r: &RemoteModel, section: &RelayModel) -> Remote {
    let tls = r.tls_on().then(|| {
        let client = &r.tls.client;
        let cert_file = client.cert.as_ref().map(|c| c.value.node.clone());
        RemoteTls {
            sni: r.tls.sni.as_ref().map(|v| v.node.clone()),
            verify: r
                .tls
                .verify
                .as_ref()
                .map_or(defaults::REMOTE_TLS_VERIFY, |v| v.node),
            ca_file: r.tls.ca_file.as_ref().map(|v| v.value.node.clone()),
            // A key or passphrase without a certificate was warned about: dropped.
            key_file: cert_file.as_ref().map(|cert| {
                client
                    .key
                    .as_ref()
                    .map_or_else(|| cert.clone(), |k| k.value.node.clone())
            }),
            passphrase: client
                .passphrase
                .as_ref()
                .filter(|_| cert_file.is_some())
                .map(|p| p.value.node.clone()),
            cert_file,
        }
    });
    Remote {
        address: SocketAddr::new(r.address.node, r.port.node),
        protocol: r.protocol.as_ref().map_or(Protocol::Tcp, |v| v.node),
        weight: r.weight.as_ref().map_or(defaults::WEIGHT, |v| v.node),
        send_proxy: r
            .send_proxy
            .as_ref()
            .or(section.send_proxy.as_ref())
            .and_then(|v| v.node),
        check: r.check.as_ref().map(|c| check(c, tls.is_some())),
        tls,
        route: r.route.map(|i| i as u32),
    }
}

/// Seconds become milliseconds; the check's `tls` defaults to the remote's.
fn check(c: &CheckModel, remote_tls: bool) -> Check {
    let ms = |v: &Option<crate::ast::Sp<u32>>, default: u32| {
        v.as_ref().map_or(default, |v| v.node * 1000)
    };
    Check {
        interval_ms: ms(&c.interval, defaults::CHECK_INTERVAL_MS),
        timeout_ms: ms(&c.timeout, defaults::CHECK_TIMEOUT_MS),
        rise: c.rise.as_ref().map_or(defaults::CHECK_RISE, |v| v.node),
        fall: c.fall.as_ref().map_or(defaults::CHECK_FALL, |v| v.node),
        send: c.send.as_ref().map(|v| v.node.clone()),
        expect: c.expect.as_ref().map(|v| match &v.node {
            ExpectModel::Bytes(b) => Expect::Bytes(b.clone()),
            ExpectModel::Regex(r) => Expect::Regex(r.clone()),
        }),
        tls: c.tls.as_ref().map_or(remote_tls, |v| v.node),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Selection;
    use proptest::prelude::*;

    /// The model of `src`, which must check without error.
    fn model(src: &str) -> Model {
        let (file, mut diags) = crate::parse(src, &Selection::default());
        let model = crate::check(&file.expect("parses"), &Selection::default(), &mut diags);
        model.unwrap_or_else(|| panic!("{diags:#?}"))
    }

    const BASE: &str = "id = tcprelay { remote = { address = 10.0.0.1 port = 22 } }\n";

    #[test]
    fn lowering_fills_the_defaults() {
        let plan = lower(
            &model(&format!(
                "id = spawnd {{ listen = {{ port = 1 backlog = 9 }} }}\n{BASE}"
            )),
            "x.cfg",
        );
        assert_eq!(plan.validate(), Ok(()));
        assert_eq!(plan.source, "x.cfg");
        let l = &plan.spawnd.listeners[0];
        assert_eq!((l.backlog, l.overload_backlog), (9, 9));
        assert_eq!(l.keepalive, Keepalive::default());
        assert_eq!(plan.spawnd.users_max, defaults::USERS_MAX);
        assert_eq!(plan.relay.remotes[0].weight, defaults::WEIGHT);
        assert_eq!(plan.relay.syslog, Syslog::default_for("tcprelay"));
    }

    #[test]
    fn the_key_file_defaults_to_the_certificate() {
        let src = format!("id = spawnd {{ listen = {{ port = 1 }} }}\n{BASE}");
        let mut m = model(&src);
        m.relay.tls.cert = Some(crate::check::Keyed {
            key: crate::ast::Span::new(0, 0),
            value: crate::ast::Sp::new("/c.pem".to_string(), crate::ast::Span::new(0, 0)),
        });
        let tls = lower(&m, "x").relay.tls.expect("tls");
        assert_eq!(
            (tls.cert_file.as_str(), tls.key_file.as_str()),
            ("/c.pem", "/c.pem")
        );
        assert!(tls.passphrase.is_none());
    }

    #[test]
    fn section_keepalive_is_the_listeners_default() {
        let src = format!(
            "id = spawnd {{ tcp keepalive idle = 7 tcp keepalive count = 2 listen = {{ port = 1 tcp keepalive count = 4 }} }}\n{BASE}"
        );
        let plan = lower(&model(&src), "x");
        assert_eq!(plan.spawnd.keepalive.idle, Some(7));
        let k = plan.spawnd.listeners[0].keepalive;
        assert_eq!((k.count, k.idle, k.interval), (Some(4), Some(7), None));
    }

    /// Every directive of issue 15 at once: PROXY on listeners, `send proxy`, TLS and
    /// checks on remotes, with the section's defaults merged into each remote.
    const ISSUE_15: &str = r#"
id = spawnd {
    listen = { address = 127.0.0.1 port = 8000 haproxy = yes accept proxy from = 10.0.0.0/8 }
    listen = { port = 8001 accept proxy = v2 accept proxy from = 192.0.2.7
               accept proxy from = 2001:db8::/32 accept proxy timeout = 3 }
    listen = { port = 8002 accept proxy = v1 accept proxy from = 10.0.0.1 }
    listen = { port = 8003 haproxy = no }
}
id = tcprelay {
    send proxy = v1
    check = { interval = 5 timeout = 2 rise = 1 fall = 4 }
    remote = { address = 10.0.0.1 port = 6379 check = { send = "PING\r\n" expect = "+PONG" } }
    remote = { address = 10.0.0.2 port = 443 send proxy = v2
               tls = yes tls sni = db.example.com tls verify = no
               check = { expect regex = "^HTTP/1\\.[01] 200" timeout = 5 } }
    remote = { address = 10.0.0.3 port = 80 send proxy = no check = no }
    remote = { address = 10.0.0.4 port = 80 tls = yes tls sni = a.example
               check = { tls = no } }
}
"#;

    #[test]
    fn the_directives_of_issue_15_lower_to_the_plan() {
        let plan = lower(&model(ISSUE_15), "x");
        assert_eq!(plan.validate(), Ok(()));
        let proxy: Vec<Option<AcceptProxy>> = plan
            .spawnd
            .listeners
            .iter()
            .map(|l| l.accept_proxy.clone())
            .collect();
        let net = |a: &str, prefix| tcprelay_plan::Network {
            address: a.parse().unwrap(),
            prefix,
        };
        use tcprelay_plan::{ProxyAccept, ProxyVersion};
        assert_eq!(
            proxy,
            vec![
                Some(AcceptProxy {
                    version: ProxyAccept::Any,
                    from: vec![net("10.0.0.0", 8)],
                    timeout_ms: defaults::ACCEPT_PROXY_TIMEOUT_MS,
                }),
                Some(AcceptProxy {
                    version: ProxyAccept::V2,
                    from: vec![net("192.0.2.7", 32), net("2001:db8::", 32)],
                    timeout_ms: 3_000,
                }),
                Some(AcceptProxy {
                    version: ProxyAccept::V1,
                    from: vec![net("10.0.0.1", 32)],
                    timeout_ms: defaults::ACCEPT_PROXY_TIMEOUT_MS,
                }),
                None,
            ]
        );
        let r = &plan.relay.remotes;
        let send: Vec<_> = r.iter().map(|r| r.send_proxy).collect();
        assert_eq!(
            send,
            [
                Some(ProxyVersion::V1),
                Some(ProxyVersion::V2),
                None,
                Some(ProxyVersion::V1)
            ]
        );
        // The section's check under each remote's own, field by field.
        let section = Check {
            interval_ms: 5_000,
            timeout_ms: 2_000,
            rise: 1,
            fall: 4,
            send: None,
            expect: None,
            tls: false,
        };
        assert_eq!(
            r[0].check,
            Some(Check {
                send: Some(b"PING\r\n".to_vec()),
                expect: Some(Expect::Bytes(b"+PONG".to_vec())),
                ..section.clone()
            })
        );
        // The check's `tls` follows the remote's TLS unless given.
        assert_eq!(
            r[1].check,
            Some(Check {
                timeout_ms: 5_000,
                expect: Some(Expect::Regex("^HTTP/1\\.[01] 200".to_string())),
                tls: true,
                ..section.clone()
            })
        );
        assert_eq!(r[2].check, None);
        assert_eq!(r[3].check, Some(section));
        assert_eq!(r[0].tls, None);
        assert_eq!(
            r[1].tls,
            Some(RemoteTls {
                sni: Some("db.example.com".to_string()),
                verify: false,
                ca_file: None,
                cert_file: None,
                key_file: None,
                passphrase: None,
            })
        );
        let tls = r[3].tls.as_ref().expect("tls");
        assert_eq!(
            (tls.sni.as_deref(), tls.verify),
            (Some("a.example"), defaults::REMOTE_TLS_VERIFY)
        );
    }

    #[test]
    fn checks_and_send_proxy_default_to_none_and_the_check_fields_to_the_defaults() {
        let plan = lower(
            &model(&format!(
                "id = spawnd {{ listen = {{ port = 1 }} }}\n{BASE}"
            )),
            "x",
        );
        let r = &plan.relay.remotes[0];
        assert_eq!((r.send_proxy, &r.tls, &r.check), (None, &None, &None));
        assert_eq!(plan.spawnd.listeners[0].accept_proxy, None);
        let src = "id = spawnd { listen = { port = 1 } }\nid = tcprelay { check = yes remote = { address = 10.0.0.1 port = 22 } }";
        let check = lower(&model(src), "x").relay.remotes[0].check.clone();
        assert_eq!(
            check,
            Some(Check {
                interval_ms: defaults::CHECK_INTERVAL_MS,
                timeout_ms: defaults::CHECK_TIMEOUT_MS,
                rise: defaults::CHECK_RISE,
                fall: defaults::CHECK_FALL,
                send: None,
                expect: None,
                tls: false,
            })
        );
    }

    /// A count that is mostly valid: 0 now and then.
    fn count(max: u32) -> impl Strategy<Value = u32> {
        prop_oneof![9 => 1..max, 1 => Just(0)]
    }

    /// A random `check` block, now and then out of range or contradictory.
    fn check_block() -> impl Strategy<Value = String> {
        (
            0u32..4,
            0u32..4,
            count(3),
            count(3),
            prop::sample::select(vec![
                "",
                "send = \"PING\\r\\n\" expect = \"+PONG\"",
                "expect regex = \"^[+]PONG\"",
                "expect regex = \"(\"",
                "send = \"\"",
                "tls = yes",
            ]),
        )
            .prop_map(|(i, t, r, f, extra)| {
                format!("check = {{ interval = {i} timeout = {t} rise = {r} fall = {f} {extra} }}")
            })
    }

    /// One random listener, spawn block, remote or setting, with values chosen to hit
    /// the edges (zeros, duplicates, overlaps, prefixes too long) now and then.
    fn directive() -> impl Strategy<Value = (bool, String)> {
        let ip = prop::sample::select(vec!["0.0.0.0", "::", "127.0.0.1", "::1", "10.0.0.1"]);
        let yes_no = prop::sample::select(vec!["yes", "no", "no", "no"]);
        let listener = (
            ip.clone(),
            1u16..6,
            yes_no,
            prop::option::weighted(0.2, 0u8..3),
        )
            .prop_map(|(ip, port, tls, path)| match path {
                Some(p) => format!("listen = {{ path = /tmp/s{p} tls = {tls} }}"),
                None => format!("listen = {{ address = {ip} port = {port} tls = {tls} }}"),
            });
        let spawn = (count(3), count(6), count(3), count(6)).prop_map(|(a, b, c, d)| {
            format!(
                "spawn = {{ users min = {a} users max = {b} servers min = {c} servers max = {d} }}"
            )
        });
        let acl = (ip.clone(), prop_oneof![9 => 0u8..33, 1 => 33u8..140])
            .prop_map(|(ip, p)| format!("acl = permit {ip}/{p}"));
        let remote = (ip, count(3), count(3)).prop_map(|(ip, port, w)| {
            format!("remote = {{ address = {ip} port = {port} weight = {w} }}")
        });
        // Issue 15: PROXY headers, TLS and checks, now and then out of range.
        let proxy = prop::sample::select(vec![
            "listen = { port = 7 haproxy = yes }",
            "listen = { port = 8 accept proxy = v2 accept proxy from = 10.0.0.0/8 }",
            "listen = { address = 127.0.0.1 port = 9 accept proxy = any accept proxy from = 127.0.0.1 accept proxy timeout = 1 }",
            "listen = { port = 10 accept proxy = no accept proxy timeout = 0 }",
        ])
        .prop_map(str::to_string);
        let upstream = (
            prop::sample::select(vec!["127.0.0.1", "10.0.0.1"]),
            prop::sample::select(vec![7u16, 9, 11]),
            prop::sample::select(vec![
                "",
                "send proxy = v1",
                "send proxy = v2",
                "send proxy = no",
            ]),
            prop::sample::select(vec![
                "",
                "tls = yes tls sni = a.example",
                "tls = yes tls verify = no",
                "tls = yes",
                "tls = no tls sni = a.example",
                "tls = yes tls sni = a_b",
            ]),
            prop::option::weighted(0.5, check_block()),
        )
            .prop_map(|(ip, port, send, tls, check)| {
                format!(
                    "remote = {{ address = {ip} port = {port} {send} {tls} {} }}",
                    check.unwrap_or_default()
                )
            });
        let section_check = prop_oneof![
            check_block(),
            Just("check = no".to_string()),
            Just("send proxy = v2".to_string()),
        ];
        let relay = prop::sample::select(vec![
            "rebalance = 0",
            "rebalance = 2",
            "retire = 0",
            "retire limit = 9",
            "tls cert-file = /nonexistent/c.pem",
            "tls cert-file = \"\"",
            "tls key-file = \"\"",
            "idle timeout = 0",
        ])
        .prop_map(str::to_string);
        // Issue 16: the family's listener and section settings, now and then out of
        // range or on the wrong kind of listener.
        let pick = |v: Vec<&'static str>| prop::sample::select(v).prop_map(str::to_string);
        let family_listener = (
            prop::sample::select(vec![
                "port = 12",
                "address = 127.0.0.2 port = 13",
                "path = /tmp/f16.sock",
            ]),
            prop::option::of(0u32..70)
                .prop_map(|d| d.map_or(String::new(), |d| format!("dscp = {d}"))),
            pick(vec![
                "",
                "tls = yes",
                "tls = no",
                "tls = auto",
                "tls = TLSv1.3,TLSv1.2",
                "tls = TLSv1.2,auto",
                "tls = DTLSv1.2",
                "ssl = TLSv1.1",
            ]),
            pick(vec![
                "",
                "bind retry delay = 0",
                "bind retry delay = 2",
                "vrf = blue",
                "userid = nobody groupid = 0",
            ]),
            pick(vec![
                "",
                "sticky cache period = 0",
                "sticky cache period = 5 sticky cache size = 0",
                "sticky cache period = 5 sticky cache size = 1048577",
                "sticky cache size = 7",
                "sticky cache period = 1 sticky cache size = 1m",
            ]),
        )
            .prop_map(|(bind, dscp, tls, other, sticky)| {
                format!("listen = {{ {bind} {dscp} {tls} {other} {sticky} }}")
            });
        let family_section = pick(vec![
            "tcp bufsize = 0",
            "tcp bufsize 64k",
            "tcp bufsize = 2g",
            "tcp bufsize = 2147483647",
            "sticky cache period = 3",
            "sticky cache size = 0x10",
            "spawn = { sticky cache period = 0 sticky cache size = 9 }",
            "bind retry delay = 0",
            "bind retry delay = 4",
            "debug = ALL -NET",
            "proctitle = \"\"",
            "proctitle = edge",
            "permit not 10.0.0.0/8",
        ]);
        prop_oneof![
            2 => family_listener.prop_map(|s| (true, s)),
            1 => family_section.prop_map(|s| (true, s)),
            3 => listener.prop_map(|s| (true, s)),
            1 => spawn.prop_map(|s| (true, s)),
            1 => acl.prop_map(|s| (true, s)),
            3 => remote.prop_map(|s| (false, s)),
            1 => relay.prop_map(|s| (false, s)),
            1 => proxy.prop_map(|s| (true, s)),
            2 => upstream.prop_map(|s| (false, s)),
            1 => section_check.prop_map(|s| (false, s)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        /// Lowering a model the check handed out always gives a valid plan.
        #[test]
        fn checked_models_lower_to_valid_plans(ds in prop::collection::vec(directive(), 0..8)) {
            let (spawnd, relay): (Vec<_>, Vec<_>) = ds.into_iter().partition(|(s, _)| *s);
            let body = |v: Vec<(bool, String)>| v.into_iter().map(|(_, s)| s).collect::<Vec<_>>().join("\n");
            let src = format!("id = spawnd {{\n{}\n}}\nid = tcprelay {{\n{}\n}}\n", body(spawnd), body(relay));
            let (file, mut diags) = crate::parse(&src, &Selection::default());
            prop_assert!(diags.is_empty(), "{:?}", diags);
            if let Some(m) = crate::check(&file.unwrap(), &Selection::default(), &mut diags) {
                prop_assert!(!crate::diag::has_errors(&diags));
                let plan = lower(&m, "x");
                prop_assert_eq!(plan.validate(), Ok(()), "{}", src);
            } else {
                prop_assert!(crate::diag::has_errors(&diags));
            }
        }
    }
}
