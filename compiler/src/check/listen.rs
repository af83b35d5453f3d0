//! `listen { }` blocks of the spawnd section, and the listeners taken together:
//! duplicates and overlapping addresses.

use super::common;
use super::model::{AcceptProxyModel, Bind, KeepaliveModel, ListenerModel, StickyModel};
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
    Key::Dscp,
    Key::Vrf,
    Key::Userid,
    Key::Groupid,
    Key::BindRetryDelay,
    Key::Type,
    Key::StickyCachePeriod,
    Key::StickyCacheSize,
    Key::TlsPsk,
    Key::AaaProtocol,
    Key::Flag,
];

/// How the listener's address was written, while its block is read.
#[derive(Default)]
struct Written {
    /// The key of the address (`address` or a bare address), even if its value was bad.
    address_key: Option<Sp<Key>>,
    /// The addresses (several when a host name has several), at the value's span.
    address: Option<Sp<Vec<IpAddr>>>,
    /// The host name the addresses came from, when the address was one.
    host: Option<Sp<String>>,
    port_key: Option<Span>,
    port: Option<Sp<u16>>,
    path_key: Option<Span>,
    path: Option<Sp<String>>,
    mode_key: Option<Span>,
    /// `userid`, `groupid` and `vrf`, which fit one kind of socket only.
    unix_only: Vec<Span>,
    inet_only: Vec<Span>,
}

/// One `listen` block: one listener, or one per address of a host name; none when
/// it has an error (reported).
pub(super) fn listener(key: Span, body: &[Sp<Directive>], cx: &mut Cx<'_>) -> Vec<ListenerModel> {
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
    let mut tls_setting = None;
    let mut dscp = None;
    let mut vrf = None;
    let mut owner = None;
    let mut group = None;
    let mut bind_retry_delay = None;
    let mut tcp_bufsize = None;
    let mut sticky = StickyModel::default();
    let mut socket_type = None;
    for d in body {
        let d: &Directive = &d.node;
        let k = &d.key;
        match k.node {
            Key::Address | Key::BareAddress => address(d, &mut scope, &mut w, cx),
            Key::Port | Key::PortWithoutEquals => {
                cx.short_form(d);
                w.port_key = Some(k.span);
                scope.scalar(d, values::port, &mut w.port, cx);
            }
            Key::Path if path_is_an_address(d) => address(d, &mut scope, &mut w, cx),
            Key::Path => {
                w.path_key = Some(k.span);
                scope.scalar(d, socket_path, &mut w.path, cx);
            }
            Key::Tls | Key::Ssl | Key::BareTls => {
                cx.deprecated(k);
                cx.short_form(d);
                scope.scalar(d, values::tls_setting, &mut tls_setting, cx);
            }
            Key::Dscp => scope.scalar(d, dscp_value, &mut dscp, cx),
            Key::Vrf => {
                w.inet_only.push(k.span);
                scope.scalar(
                    d,
                    |v| values::os_string(v, "the VRF", OsText::check_name),
                    &mut vrf,
                    cx,
                );
            }
            Key::Userid => {
                w.unix_only.push(k.span);
                scope.scalar(
                    d,
                    |v| values::os_string(v, "the user name", OsText::check_name),
                    &mut owner,
                    cx,
                );
            }
            Key::Groupid => {
                w.unix_only.push(k.span);
                scope.scalar(
                    d,
                    |v| values::os_string(v, "the group name", OsText::check_name),
                    &mut group,
                    cx,
                );
            }
            Key::BindRetryDelay => scope.scalar(d, values::seconds_u32, &mut bind_retry_delay, cx),
            Key::Type => scope.scalar(d, values::socket_type, &mut socket_type, cx),
            Key::TlsPsk | Key::AaaProtocol | Key::Flag => {
                scope.set(k, cx);
                common::ignored(k, cx);
            }
            // The spawnd manual lists it among a listener's directives; the
            // original rejected it there. Lifted to the relay's (spawnd.rs).
            Key::TcpBufsize => {
                cx.push(
                    Diagnostic::warning(
                        Code::Deprecated,
                        k.span,
                        "`tcp bufsize` in a `listen` block is deprecated",
                    )
                    .with_label("taken as the relay's: it applies to every relayed connection")
                    .with_help("write it in the spawnd section"),
                );
                scope.scalar(d, super::spawnd::bufsize, &mut tcp_bufsize, cx);
            }
            _ if common::sticky(d, &mut scope, &mut sticky, cx) => {}
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
    let binds = bind(key, &w, cx);
    if let Some(ips) = &w.address {
        if let Some(v) = body
            .iter()
            .rev()
            .find_map(|d| match (&d.node.key.node, &d.node.body) {
                (Key::Address | Key::BareAddress, crate::ast::Body::Value(v)) => Some(v),
                _ => None,
            })
        {
            super::several_addresses(v, &ips.node, "listener", cx);
        }
    }
    common::sticky_done(&sticky, cx);
    if let Some(t) = &tls_setting {
        tls = Some(Sp::new(t.node.on, t.span));
        if !t.node.dtls.is_empty() {
            cx.push(
                Diagnostic::warning(
                    Code::Ignored,
                    t.span,
                    format!("`{}` has no effect in tcprelay", t.node.dtls.join(",")),
                )
                .with_label("ignored")
                .with_note("DTLS is TLS over datagrams, which tcprelay does not relay")
                .with_help(if t.node.versions.is_empty() && !t.node.auto {
                    "the listener takes TLS 1.2 and 1.3, as the original tcprelay did: write `tls = yes`"
                } else {
                    "remove the DTLS versions"
                }),
            );
        }
    }
    if cx.diags[errors..].iter().any(Diagnostic::is_error) {
        return Vec::new();
    }
    let (tls_auto, tls_versions) = tls_setting
        .filter(|t| t.node.on)
        .map_or((false, Vec::new()), |t| (t.node.auto, t.node.versions));
    let listener = ListenerModel {
        key,
        bind: Bind::Unix {
            path: Sp::new(String::new(), key),
        },
        host: w.host.clone(),
        protocol,
        tls,
        backlog,
        overload_backlog,
        realm,
        mode,
        keepalive,
        proxy,
        tls_auto,
        tls_versions,
        dscp,
        vrf,
        owner,
        group,
        bind_retry_delay,
        tcp_bufsize,
        sticky,
    };
    let listeners: Vec<ListenerModel> = binds
        .into_iter()
        .map(|bind| ListenerModel {
            bind,
            ..listener.clone()
        })
        .collect();
    // The settings are the same for every address of a host name: checked once.
    if let Some(first) = listeners.first() {
        super::proxy::listener_settings(first, cx);
    }
    listeners
}

/// `dscp = N`: 0 to 63 (hex too, as the manual's `0x38`); E0061 above.
fn dscp_value(v: &Sp<crate::ast::Value>) -> values::Parsed<u8> {
    let n = values::number(v, 0, u64::MAX)?;
    if n <= 63 {
        return Ok(n as u8);
    }
    values::fail(
        Diagnostic::error(
            Code::InvalidDscp,
            v.span,
            format!("DSCP {n} is out of range"),
        )
        .with_label("expected 0 to 63")
        .with_note("the DSCP is the upper six bits of the IP TOS / traffic class byte")
        .with_help(if n <= 255 && n % 4 == 0 {
            format!("for the TOS byte {n:#04x}, write `dscp = {}`", n >> 2)
        } else {
            "write a code point from 0 to 63, such as 46 for EF".to_string()
        }),
    )
}

/// Whether a `path` names an IP address (an `inet:`/`inet6:` prefix, or an IP
/// literal), which the family's `path` and `address` both take.
fn path_is_an_address(d: &Directive) -> bool {
    let crate::ast::Body::Value(v) = &d.body else {
        return false;
    };
    let text = v.node.text.as_str();
    let prefixed = ["inet:", "inet6:"].iter().any(|p| {
        text.get(..p.len())
            .is_some_and(|t| t.eq_ignore_ascii_case(p))
    });
    prefixed || values::parse_ip(text).is_some()
}

/// `address = IP` or a bare address; writing both is E0029. Also a `path` that names
/// an IP address (warning E0040: `address` is the key for it).
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
    let Some(v) = cx.value(d) else {
        return;
    };
    if k.node == Key::Path {
        cx.push(
            Diagnostic::warning(
                Code::Deprecated,
                k.span,
                "an IP address given as the listener's `path`",
            )
            .with_label("`path` is for Unix sockets")
            .with_help(format!("write `address = {}`", v.node.text)),
        );
    }
    match values::listen_address(v) {
        Ok(values::Address::Unix(path)) => {
            cx.push(
                Diagnostic::warning(
                    Code::Deprecated,
                    v.span,
                    "a Unix socket given as the listener's address",
                )
                .with_label("a socket path")
                .with_help(format!("write `path = {path}`")),
            );
            w.address_key = None;
            w.path_key = Some(k.span);
            let path = Sp::new(
                crate::ast::Value {
                    text: path,
                    quoted: v.node.quoted,
                },
                v.span,
            );
            if let Some(p) = cx.take(&path, socket_path(&path)) {
                w.path = Some(p);
            }
        }
        Ok(values::Address::Ips(ips)) => {
            w.address = Some(Sp::new(ips, v.span));
            w.host = values::host_name(&v.node.text).map(|name| Sp::new(name.to_string(), v.span));
        }
        Err(e) => cx.push(*e),
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
    let (kind, path) = prefix_unix(&v.node.text);
    if kind {
        let v = Sp::new(
            crate::ast::Value {
                text: path.to_string(),
                quoted: v.node.quoted,
            },
            v.span,
        );
        return socket_path(&v);
    }
    values::os_string(v, "the socket path", OsText::check_socket_path)
}

/// `unix:PATH` (any case) as the family writes it: whether it was there, and PATH.
fn prefix_unix(text: &str) -> (bool, &str) {
    match text.get(..5) {
        Some(p) if p.eq_ignore_ascii_case("unix:") => (true, &text[5..]),
        _ => (false, text),
    }
}

/// E0062: a setting of one kind of listener on the other.
fn wrong_kind(span: Span, fits: &str, this: &str) -> Diagnostic {
    Diagnostic::error(
        Code::WrongSocketKind,
        span,
        format!("this setting is for {fits}, not {this}"),
    )
    .with_label(format!("not for {this}"))
    .with_note("`userid` and `groupid` set a Unix socket's owner and group; `vrf` binds an IP socket to a device")
    .with_help("remove it, or move it to a listener of the right kind")
}

/// Where the listener binds (one bind per address of a host name), from what was
/// written; reports a missing port and an address given both as a path and as an
/// IP address.
fn bind(key: Span, w: &Written, cx: &mut Cx<'_>) -> Vec<Bind> {
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
            return Vec::new();
        }
        for &span in &w.inet_only {
            cx.push(wrong_kind(span, "an IP listener", "a Unix socket"));
        }
        return w
            .path
            .clone()
            .map(|path| Bind::Unix { path })
            .into_iter()
            .collect();
    }
    for &span in &w.unix_only {
        cx.push(wrong_kind(
            span,
            "a Unix-socket listener (`path = ...`)",
            "an IP listener",
        ));
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
        return Vec::new();
    }
    let Some(port) = w.port.clone() else {
        return Vec::new();
    };
    match &w.address {
        None => vec![Bind::Inet {
            address: None,
            port,
        }],
        Some(ips) => ips
            .node
            .iter()
            .map(|&ip| Bind::Inet {
                address: Some(Sp::new(ip, ips.span)),
                port: port.clone(),
            })
            .collect(),
    }
}

/// A parser of one kind of value.
type ValueParser<T> = fn(&Sp<crate::ast::Value>) -> values::Parsed<T>;

/// `tcp keepalive count|idle|interval`, at section level or in a listener; false
/// when `d` is not one of them.
pub(super) fn keepalive_directive(
    d: &Directive,
    scope: &mut Scope,
    m: &mut KeepaliveModel,
    cx: &mut Cx<'_>,
) -> bool {
    let (slot, parse): (_, ValueParser<u32>) = match d.key.node {
        Key::KeepaliveCount => (&mut m.count, values::u32_value),
        Key::KeepaliveIdle => (&mut m.idle, values::seconds_u32),
        Key::KeepaliveInterval => (&mut m.interval, values::seconds_u32),
        _ => return false,
    };
    scope.scalar(d, parse, slot, cx);
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
