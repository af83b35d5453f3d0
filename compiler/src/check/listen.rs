//! `listen { }` blocks of the spawnd section, and the listeners taken together:
//! duplicates and overlapping addresses.

use super::model::{AcceptProxyModel, Bind, KeepaliveModel, ListenerModel};
use super::scope::{string, Cx, Scope};
use super::values;
use crate::ast::{Directive, Key, Sp, Span};
use crate::diag::{Code, Diagnostic};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use tcprelay_plan::{ListenAddress, OsText};

/// The keys valid inside `listen { }`.
pub(super) const VALID: &[Key] = &[
    Key::Address,
    Key::Port,
    Key::Path,
    Key::Tls,
    Key::Protocol,
    Key::Backlog,
    Key::OverloadBacklog,
    Key::Realm,
    Key::Mode,
    Key::KeepaliveCount,
    Key::KeepaliveIdle,
    Key::KeepaliveInterval,
    Key::Haproxy,
    Key::AcceptProxy,
    Key::AcceptProxyFrom,
    Key::AcceptProxyTimeout,
];

/// How the listener's address was written, while its block is read.
#[derive(Default)]
struct Written {
    /// The key of the address (`address` or a bare address), even if its value was bad.
    address_key: Option<Sp<Key>>,
    address: Option<Sp<IpAddr>>,
    port_key: Option<Span>,
    port: Option<Sp<u16>>,
    path_key: Option<Span>,
    path: Option<Sp<String>>,
    mode_key: Option<Span>,
}

/// One `listen` block; `None` when it has an error (reported).
pub(super) fn listener(
    key: Span,
    body: &[Sp<Directive>],
    cx: &mut Cx<'_>,
) -> Option<ListenerModel> {
    let errors = cx.diags.len();
    let mut scope = Scope::default();
    let mut w = Written::default();
    let mut protocol = None;
    let mut tls = None;
    let mut backlog = None;
    let mut overload_backlog = None;
    let mut realm = None;
    let mut mode = None;
    let mut keepalive = KeepaliveModel::default();
    let mut proxy = AcceptProxyModel::default();
    for d in body {
        let d: &Directive = &d.node;
        let k = &d.key;
        match k.node {
            Key::Address | Key::BareAddress => address(d, &mut scope, &mut w, cx),
            Key::Port => {
                w.port_key = Some(k.span);
                scope.scalar(d, values::port, &mut w.port, cx);
            }
            Key::Path => {
                w.path_key = Some(k.span);
                scope.scalar(d, socket_path, &mut w.path, cx);
            }
            Key::Tls => scope.scalar(d, values::boolean, &mut tls, cx),
            Key::Protocol => scope.scalar(d, values::protocol, &mut protocol, cx),
            Key::Backlog => scope.scalar(d, values::u32_value, &mut backlog, cx),
            Key::OverloadBacklog => scope.scalar(d, values::u32_value, &mut overload_backlog, cx),
            Key::Realm => {
                cx.push(
                    Diagnostic::warning(Code::Ignored, k.span, "`realm` has no effect in tcprelay")
                        .with_label("ignored")
                        .with_note(
                            "spawnd passes the realm to its child, which tcprelay does not use",
                        ),
                );
                scope.scalar(d, string, &mut realm, cx);
            }
            Key::Mode => {
                w.mode_key = Some(k.span);
                scope.scalar(d, values::mode, &mut mode, cx);
            }
            _ if keepalive_directive(d, &mut scope, &mut keepalive, cx) => {}
            _ if super::proxy::listener_directive(d, &mut scope, &mut proxy, cx) => {}
            _ => cx.misplaced(k, "in a `listen` block", VALID),
        }
    }
    let bind = bind(key, &w, cx);
    if cx.diags[errors..].iter().any(Diagnostic::is_error) {
        return None;
    }
    let listener = ListenerModel {
        key,
        bind: bind?,
        protocol,
        tls,
        backlog,
        overload_backlog,
        realm,
        mode,
        keepalive,
        proxy,
    };
    super::proxy::listener_settings(&listener, cx);
    Some(listener)
}

/// `address = IP` or a bare address; writing both is E0029.
fn address(d: &Directive, scope: &mut Scope, w: &mut Written, cx: &mut Cx<'_>) {
    let k = &d.key;
    match &w.address_key {
        Some(first) if first.node != k.node => cx.push(
            Diagnostic::error(
                Code::ConflictingAddress,
                k.span,
                "the listener's address is given twice, as a bare address and as `address =`",
            )
            .with_label("second address")
            .with_secondary(first.span, "first address")
            .with_help("keep one of them"),
        ),
        _ => scope.set(k, cx),
    }
    w.address_key = Some(k.clone());
    if let Some(v) = cx.value(d) {
        if let Some(ip) = cx.take(v, values::ip(v)) {
            w.address = Some(ip);
        }
    }
}

/// A Unix socket path: not empty (E0022), and one the system can bind (E0046: no
/// NUL byte, which would bind a path cut short, and short enough for a socket
/// address).
fn socket_path(v: &Sp<crate::ast::Value>) -> values::Parsed<String> {
    if v.node.text.is_empty() {
        return values::fail(
            Diagnostic::error(Code::InvalidAddress, v.span, "the socket path is empty")
                .with_label("expected the path of a Unix socket"),
        );
    }
    values::os_string(v, "the socket path", OsText::check_socket_path)
}

/// Where the listener binds, from what was written; reports a missing port and an
/// address given both as a path and as an IP address.
fn bind(key: Span, w: &Written, cx: &mut Cx<'_>) -> Option<Bind> {
    if let Some(path_key) = w.path_key {
        let other = [
            w.address_key.as_ref().map(|k| (k.span, "address")),
            w.port_key.map(|s| (s, "port")),
        ];
        if let Some((span, what)) = other.into_iter().flatten().next() {
            let (primary, secondary) = if span.start > path_key.start {
                (span, path_key)
            } else {
                (path_key, span)
            };
            cx.push(
                Diagnostic::error(
                    Code::ConflictingAddress,
                    primary,
                    format!("a listener with a `path` cannot have an {what}"),
                )
                .with_label("conflicting address")
                .with_secondary(secondary, "the listener's address is also given here")
                .with_help(
                    "a listener binds either a Unix socket (`path`) or an IP address and port",
                ),
            );
            return None;
        }
        return w.path.clone().map(|path| Bind::Unix { path });
    }
    if let Some(mode) = w.mode_key {
        cx.push(
            Diagnostic::warning(
                Code::Ignored,
                mode,
                "`mode` has no effect on an IP listener",
            )
            .with_label("ignored")
            .with_note("`mode` sets the file mode of a Unix socket (`path = ...`)"),
        );
    }
    if w.port_key.is_none() {
        cx.push(
            Diagnostic::error(Code::MissingPort, key, "listener without a port")
                .with_label("this listener has no port")
                .with_help("add `port = N`"),
        );
        return None;
    }
    Some(Bind::Inet {
        address: w.address.clone(),
        port: w.port.clone()?,
    })
}

/// `tcp keepalive count|idle|interval`, at section level or in a listener; false
/// when `d` is not one of them.
pub(super) fn keepalive_directive(
    d: &Directive,
    scope: &mut Scope,
    m: &mut KeepaliveModel,
    cx: &mut Cx<'_>,
) -> bool {
    let slot = match d.key.node {
        Key::KeepaliveCount => &mut m.count,
        Key::KeepaliveIdle => &mut m.idle,
        Key::KeepaliveInterval => &mut m.interval,
        _ => return false,
    };
    scope.scalar(d, values::u32_value, slot, cx);
    true
}

/// E0030 for two listeners on the same address, E0031 for overlapping ones; linear in
/// the number of listeners. Consistent with the plan's own check: a wildcard overlaps
/// every address of its family on the same port, and `::` does not overlap IPv4
/// because the runtime binds IPv6 listeners v6-only (a warning, since it surprises).
pub(super) fn overlaps(listeners: &[ListenerModel], cx: &mut Cx<'_>) {
    let mut exact: HashMap<ListenAddress, Span> = HashMap::new();
    // Per (IPv4?, port): the first wildcard and the first specific address.
    let mut wildcard: HashMap<(bool, u16), Span> = HashMap::new();
    let mut specific: HashMap<(bool, u16), Span> = HashMap::new();
    for l in listeners {
        let address = l.bind.resolve();
        if let Some(&first) = exact.get(&address) {
            cx.push(
                Diagnostic::error(
                    Code::DuplicateListener,
                    l.key,
                    format!("a second listener on `{address}`"),
                )
                .with_label("the second bind would fail")
                .with_secondary(first, "first listener on this address"),
            );
            continue;
        }
        exact.insert(address.clone(), l.key);
        let ListenAddress::Inet(sa) = address else {
            continue;
        };
        let slot = (sa.is_ipv4(), sa.port());
        if sa.ip().is_unspecified() {
            if let Some(&first) = specific.get(&slot) {
                cx.push(overlap(l.key, sa, first));
            }
            if let Some(&other) = wildcard.get(&(!slot.0, slot.1)) {
                cx.push(cross_family(l.key, sa, other));
            }
            wildcard.entry(slot).or_insert(l.key);
        } else {
            if let Some(&first) = wildcard.get(&slot) {
                cx.push(overlap(l.key, sa, first));
            }
            specific.entry(slot).or_insert(l.key);
        }
    }
}

fn overlap(key: Span, sa: SocketAddr, first: Span) -> Diagnostic {
    Diagnostic::error(
        Code::OverlappingListener,
        key,
        format!(
            "listener on `{sa}` overlaps an earlier one on port {}",
            sa.port()
        ),
    )
    .with_label("the second bind would fail")
    .with_secondary(first, "this listener covers the same address")
    .with_note("a wildcard address (`0.0.0.0`, `::`) covers every address of its family")
}

fn cross_family(key: Span, sa: SocketAddr, other: Span) -> Diagnostic {
    let (this, that) = match sa.ip() {
        IpAddr::V4(_) => ("0.0.0.0", "::"),
        IpAddr::V6(_) => ("::", "0.0.0.0"),
    };
    Diagnostic::warning(
        Code::OverlappingListener,
        key,
        format!("`{this}` and `{that}` both listen on port {}", sa.port()),
    )
    .with_label(format!("`{this}` here"))
    .with_secondary(other, format!("`{that}` here"))
    .with_note("tcprelay binds IPv6 listeners v6-only, so both bind")
}
