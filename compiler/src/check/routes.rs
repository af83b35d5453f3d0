//! `route = { sni = NAME ... remote = { ... } }`: routing the clients of the TLS
//! listeners by the server name of their ClientHello (docs/sni.md). The block's
//! own checks, the checks across routes (E0090–E0098) and the routes'
//! certificates (E0085 for the names they do not cover).

use super::certs;
use super::model::{CheckSetting, ListenerModel, RelayModel, RouteModel};
use super::relay;
use super::scope::{Cx, Scope};
use super::values;
use crate::ast::{Directive, Key, Sp, Value};
use crate::diag::{Code, Diagnostic};
use std::collections::HashMap;
use tcprelay_plan::{sni, RouteMode};

/// The keys valid inside `route { }`.
pub(super) const ROUTE_VALID: &[Key] = &[
    Key::Sni,
    Key::Mode,
    Key::Balance,
    Key::Remote,
    Key::TlsCertFile,
    Key::TlsKeyFile,
    Key::TlsPassphrase,
];

/// One `route` block: its settings into `m.routes`, its remotes into `m.remotes`
/// (with their own checks into `own_checks`); returns how many `remote` blocks it
/// has.
pub(super) fn block(
    d: &Directive,
    m: &mut RelayModel,
    own_checks: &mut Vec<Option<CheckSetting>>,
    cx: &mut Cx<'_>,
) -> usize {
    let index = m.routes.len();
    let mut route = RouteModel {
        key: d.key.span,
        ..RouteModel::default()
    };
    let mut scope = Scope::default();
    let mut remotes = 0;
    let Some(body) = cx.block(d) else {
        m.routes.push(route);
        return 1; // Reported; no "no remote" on top.
    };
    for item in body {
        let d: &Directive = &item.node;
        match d.key.node {
            Key::Sni => {
                route.sni_written = true;
                if let Some(v) = cx.value(d) {
                    if let Some(name) = cx.take(v, route_name(v)) {
                        route.names.push(name);
                    }
                }
            }
            Key::Mode => scope.scalar(d, mode, &mut route.mode, cx),
            Key::Balance => scope.scalar(d, super::balance::check_balance, &mut route.balance, cx),
            Key::Remote => {
                remotes += 1;
                if let Some(body) = cx.block(d) {
                    for (mut r, check) in relay::remote(d.key.span, body, cx) {
                        r.route = Some(index);
                        m.remotes.push(r);
                        own_checks.push(check);
                    }
                }
            }
            _ if relay::tls_material(d, &mut scope, &mut route.tls, true, cx) => {}
            _ => cx.misplaced(&d.key, "in a `route` block", ROUTE_VALID),
        }
    }
    if remotes == 0 {
        cx.push(
            Diagnostic::error(
                Code::RouteWithoutRemote,
                route.key,
                "route without a remote",
            )
            .with_label("this route has no `remote`")
            .with_help("add `remote = { address = IP port = N }` inside the route"),
        );
    }
    if let (true, Some(cert)) = (route.passthrough(), &route.tls.cert) {
        let mode = route.mode.as_ref().map_or(route.key, |m| m.span);
        cx.push(
            Diagnostic::error(
                Code::PassthroughWithCertificate,
                cert.key,
                "a route that passes TLS through has a certificate",
            )
            .with_label("never used: the relay does not terminate this route's TLS")
            .with_secondary(mode, "the route passes the client's TLS through")
            .with_help(
                "remove the certificate, or remove `mode = passthrough` to terminate TLS with it",
            ),
        );
    }
    m.routes.push(route);
    remotes.max(1)
}

/// `sni = NAME`: a DNS name or `*.` and one, taken lowercase without a final dot.
fn route_name(v: &Sp<Value>) -> values::Parsed<String> {
    let name = sni::normalize(&v.node.text);
    match sni::name_problem(&name) {
        None => Ok(name),
        Some(why) => values::fail(
            Diagnostic::error(
                Code::InvalidRouteName,
                v.span,
                format!("`{}` is not a server name: {why}", v.node.text),
            )
            .with_label("expected a host name such as `db.example.com`, or `*.example.com`")
            .with_note("a wildcard matches one label more than its suffix, as a certificate's: `*.example.com` matches `a.example.com`, neither `example.com` nor `a.b.example.com`"),
        ),
    }
}

fn mode(v: &Sp<Value>) -> values::Parsed<RouteMode> {
    match v.node.text.to_ascii_lowercase().as_str() {
        "terminate" => Ok(RouteMode::Terminate),
        "passthrough" => Ok(RouteMode::Passthrough),
        _ => values::fail(
            Diagnostic::error(
                Code::InvalidRouteSetting,
                v.span,
                format!("`{}` is not a route mode", v.node.text),
            )
            .with_label("expected `terminate` or `passthrough`"),
        ),
    }
}

/// The checks across routes: a name in two routes (E0091), a wildcard whose
/// names another route's exact name takes (E0092), two default routes (E0096),
/// a `tls = yes` remote in a passthrough route (E0095).
pub(super) fn check(m: &RelayModel, cx: &mut Cx<'_>) {
    let named: Vec<(usize, &Sp<String>)> = m
        .routes
        .iter()
        .enumerate()
        .flat_map(|(i, r)| r.names.iter().map(move |n| (i, n)))
        .collect();
    // Indexed by name, so that 100,000 names are checked in linear time.
    let mut firsts: HashMap<&str, (usize, &Sp<String>)> = HashMap::new();
    for &(i, name) in &named {
        let (j, first) = *firsts.entry(name.node.as_str()).or_insert((i, name));
        if !std::ptr::eq(first, name) {
            let same = i == j;
            cx.push(
                Diagnostic::error(
                    Code::DuplicateRouteName,
                    name.span,
                    if same {
                        format!("`{}` is written twice in one route", name.node)
                    } else {
                        format!("`{}` is in two routes", name.node)
                    },
                )
                .with_label("written again here")
                .with_secondary(first.span, "first here")
                .with_help(if same {
                    "remove one of them"
                } else {
                    "a client's name chooses one route: keep the name in one of them"
                }),
            );
        }
    }
    // An exact name another route's wildcard also matches: the exact one wins.
    // A wildcard matches one label before its suffix: each exact name looks up the
    // wildcards of the suffix after its first label.
    let mut wildcards: HashMap<&str, Vec<(usize, &Sp<String>)>> = HashMap::new();
    for &(i, name) in &named {
        if let Some(suffix) = name.node.strip_prefix("*.") {
            wildcards.entry(suffix).or_default().push((i, name));
        }
    }
    for &(j, exact) in named.iter().filter(|(_, n)| !n.node.starts_with("*.")) {
        let Some((_, suffix)) = exact.node.split_once('.') else {
            continue;
        };
        for &(i, wildcard) in wildcards.get(suffix).into_iter().flatten() {
            if i != j && sni::matches(&wildcard.node, &exact.node) {
                cx.push(
                    Diagnostic::warning(
                        Code::OverlappingRoutes,
                        exact.span,
                        format!(
                            "`{}` is also matched by `{}` of another route",
                            exact.node, wildcard.node
                        ),
                    )
                    .with_label("clients naming it take this route")
                    .with_secondary(wildcard.span, "this wildcard does not get them")
                    .with_note("an exact name wins over a wildcard, whatever their order")
                    .with_help("if this is meant, nothing needs to change; otherwise move the name to the wildcard's route"),
                );
            }
        }
    }
    let nameless: Vec<&RouteModel> = m.routes.iter().filter(|r| !r.sni_written).collect();
    let unrouted = m.remotes.iter().find(|r| r.route.is_none());
    if let Some(second) = nameless.get(1) {
        cx.push(
            Diagnostic::error(
                Code::TwoDefaultRoutes,
                second.key,
                "a second route without `sni`",
            )
            .with_label("a route without `sni` is the default route")
            .with_secondary(nameless[0].key, "the first default route")
            .with_help("give this route its `sni` names, or merge the two"),
        );
    }
    if let (Some(route), Some(remote)) = (nameless.first(), unrouted) {
        cx.push(
            Diagnostic::error(
                Code::TwoDefaultRoutes,
                route.key,
                "a route without `sni` and remotes outside any route",
            )
            .with_label("a route without `sni` is the default route")
            .with_secondary(
                remote.key,
                "a remote outside any route is in the default route too",
            )
            .with_help(
                "move the section's remotes into this route, or give this route its `sni` names",
            ),
        );
    }
    for r in m.remotes.iter().filter(|r| r.tls_on()) {
        let Some(route) = r.route.and_then(|i| m.routes.get(i)) else {
            continue;
        };
        if route.passthrough() {
            let on = r.tls.on.as_ref().map_or(r.key, |t| t.span);
            cx.push(
                Diagnostic::error(
                    Code::TlsInsideTls,
                    on,
                    "a `tls = yes` remote in a route that passes TLS through",
                )
                .with_label("the relay would wrap the client's TLS in its own")
                .with_secondary(
                    route.mode.as_ref().map_or(route.key, |m| m.span),
                    "the client's TLS is passed through",
                )
                .with_help("remove `tls = yes`: the client's TLS reaches the remote as it is"),
            );
        }
    }
}

/// Whether the section's certificate is needed (see `tcprelay_plan::sni`).
pub(super) fn section_certificate_needed(m: &RelayModel) -> bool {
    m.routes.is_empty()
        || m.remotes.iter().any(|r| r.route.is_none())
        || m.routes
            .iter()
            .any(|r| !r.passthrough() && r.tls.cert.is_none())
}

/// The routes and the listeners: routes no TLS listener uses (E0097), each
/// route's certificate tried and checked against its names (E0085).
pub(super) fn tls(listeners: Option<&[ListenerModel]>, m: &RelayModel, cx: &mut Cx<'_>) {
    let Some(first) = m.routes.first() else {
        return;
    };
    let tls_listener = listeners
        .unwrap_or_default()
        .iter()
        .any(|l| l.tls.as_ref().is_some_and(|t| t.node));
    if listeners.is_some() && !tls_listener {
        cx.push(
            Diagnostic::warning(
                Code::RoutesWithoutTlsListener,
                first.key,
                "routes by server name, but no TLS listener",
            )
            .with_label("no client is routed by this")
            .with_note("only the clients of listeners with `tls = yes` or `tls = auto` send a server name; the others go to the default route")
            .with_help("add `tls = yes` to the listeners whose clients are to be routed"),
        );
    }
    for route in &m.routes {
        let Some(cert) = &route.tls.cert else {
            continue;
        };
        let paths = [
            Some((&cert.value, "the route's certificate file")),
            route
                .tls
                .key
                .as_ref()
                .map(|k| (&k.value, "the route's key file")),
        ];
        let passphrase = route.tls.passphrase.as_ref().map(|p| &p.value);
        if relay::os_strings(
            paths.into_iter().flatten(),
            tcprelay_plan::OsText::check_text,
            passphrase,
            cx,
        ) {
            relay::files(&route.tls, cert, certs::Role::Listener, cx);
            let served: Vec<certs::Served> = route
                .names
                .iter()
                .map(|n| certs::Served {
                    name: n.node.clone(),
                    span: n.span,
                    what: "a name of its route",
                })
                .collect();
            certs::names(&served, &cert.value, cx);
        }
    }
}
