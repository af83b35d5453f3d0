//! Lowering: the checked [`Model`] becomes the strict [`Plan`] the runtime runs.
//!
//! This is the only way a plan is built. It strips the spans and fills in the
//! defaults of `tcprelay_plan::defaults`; it reports nothing, because the check made
//! every diagnostic and hands out a model only when it found no error.

use crate::check::{
    ControlModel, KeepaliveModel, ListenerModel, Model, RelayModel, SpawndModel, SyslogModel,
};
use std::net::SocketAddr;
use tcprelay_plan::{
    defaults, Control, Keepalive, Listener, Metrics, Overload, Plan, Protocol, Relay, Remote,
    Spawnd, Syslog, Tls,
};

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
        spawnd: spawnd(&model.spawnd),
        relay: relay(&model.relay),
    }
}

fn spawnd(m: &SpawndModel) -> Spawnd {
    let keepalive = keepalive(&m.keepalive, &Keepalive::default());
    let s = &m.spawn;
    Spawnd {
        listeners: m
            .listeners
            .iter()
            .map(|l| listener(l, &keepalive))
            .collect(),
        users_min: s.users_min.as_ref().map_or(defaults::USERS_MIN, |v| v.node),
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
        bind_retry_delay: m
            .bind_retry_delay
            .as_ref()
            .map_or(defaults::BIND_RETRY_DELAY, |v| v.node),
        keepalive,
        single_process: m.single_process.as_ref().is_some_and(|v| v.node),
        syslog: syslog(&m.syslog),
        debug: m.debug.as_ref().map_or(0, |v| v.node),
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

fn listener(l: &ListenerModel, section: &Keepalive) -> Listener {
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
        accept_proxy: None,
    }
}

/// `m` over `base`, field by field.
fn keepalive(m: &KeepaliveModel, base: &Keepalive) -> Keepalive {
    Keepalive {
        count: m.count.as_ref().map(|v| v.node).or(base.count),
        idle: m.idle.as_ref().map(|v| v.node).or(base.idle),
        interval: m.interval.as_ref().map(|v| v.node).or(base.interval),
    }
}

fn syslog(m: &SyslogModel) -> Syslog {
    let mut s = Syslog::default_for(PROGRAM);
    if let Some(ident) = &m.ident {
        s.ident = ident.node.clone();
    }
    if let Some(f) = &m.facility {
        s.facility = f.node;
    }
    if let Some(sev) = &m.severity {
        s.severity = sev.node;
    }
    s
}

fn relay(m: &RelayModel) -> Relay {
    Relay {
        remotes: m
            .remotes
            .iter()
            .map(|r| Remote {
                address: SocketAddr::new(r.address.node, r.port.node),
                protocol: r.protocol.as_ref().map_or(Protocol::Tcp, |v| v.node),
                weight: r.weight.as_ref().map_or(defaults::WEIGHT, |v| v.node),
                send_proxy: None,
                tls: None,
                check: None,
            })
            .collect(),
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
        syslog: syslog(&m.syslog),
        tls: m.tls.cert.as_ref().map(|cert| Tls {
            cert_file: cert.value.node.clone(),
            key_file: m
                .tls
                .key
                .as_ref()
                .map_or_else(|| cert.value.node.clone(), |k| k.value.node.clone()),
            passphrase: m.tls.passphrase.as_ref().map(|p| p.value.node.clone()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Selection;
    use proptest::prelude::*;

    /// The model of `src`, which must check without error.
    fn model(src: &str) -> Model {
        let (file, mut diags) = crate::parse(src);
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

    /// A count that is mostly valid: 0 now and then.
    fn count(max: u32) -> impl Strategy<Value = u32> {
        prop_oneof![9 => 1..max, 1 => Just(0)]
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
        prop_oneof![
            3 => listener.prop_map(|s| (true, s)),
            1 => spawn.prop_map(|s| (true, s)),
            1 => acl.prop_map(|s| (true, s)),
            3 => remote.prop_map(|s| (false, s)),
            1 => relay.prop_map(|s| (false, s)),
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
            let (file, mut diags) = crate::parse(&src);
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
