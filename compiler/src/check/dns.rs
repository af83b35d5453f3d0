//! DNS discovery in the tcprelay section ([docs/dns.md](../../../docs/dns.md)): a
//! remote's host name (`address = NAME`) or SRV name (`srv = NAME`), which the
//! compiler does not resolve (the runtime resolves it at start and again while it
//! runs), and the resolver settings (`resolvers = { ... }`, `resolve ...`).

use super::model::{RelayModel, RemoteModel, ResolveModel, ResolversModel};
use super::scope::{positive, Cx, Scope};
use super::values::{self, Parsed};
use crate::ast::{Directive, Key, Sp, Span, Value};
use crate::diag::{Code, Diagnostic};
use std::net::{IpAddr, SocketAddr};
use tcprelay_plan::defaults;

/// The keys valid inside `resolvers { }`.
pub(super) const RESOLVERS_VALID: &[Key] = &[Key::Nameserver, Key::Timeout, Key::Attempts];

/// The longest `resolve interval` (and `min`, `max`): a day.
pub const MAX_INTERVAL: u32 = 86_400;
/// The longest resolver `timeout`, in seconds, and the most `attempts`.
pub const MAX_TIMEOUT: u32 = 60;
pub const MAX_ATTEMPTS: u32 = 16;

/// What a remote's `address` names.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Target {
    /// An IP address, with the port written with it (`IP:PORT`).
    Ips(Vec<IpAddr>, Option<u16>),
    /// A host name the runtime resolves (A and AAAA), with the port written with it
    /// (`NAME:PORT`).
    Name(String, Option<u16>),
}

/// A remote's `address`: an IP address (`values::remote_address`), or a host name,
/// `NAME` or `NAME:PORT`, checked as a DNS name (E0100) and not resolved. An
/// `inet:` or `inet6:` prefix before a name is E0107: the runtime takes the name's
/// addresses of both families.
pub(super) fn remote_address(v: &Sp<Value>) -> Parsed<Target> {
    let text = v.node.text.as_str();
    let (kind, rest) = values::split_prefix(text);
    let named = match kind {
        Some("unix") => None,
        _ => name_and_port(rest),
    };
    let Some((name, port)) = named else {
        return values::remote_address(v).map(|(ips, port)| Target::Ips(ips, port));
    };
    if let Some(kind) = kind {
        return values::fail(
            Diagnostic::error(
                Code::FamilyPrefixOnName,
                v.span,
                format!("`{kind}:` before the host name `{name}`"),
            )
            .with_label("a remote's name is resolved to the addresses of both families")
            .with_note("the name is resolved by the relay while it runs, to its A and AAAA records; a prefix cannot restrict them")
            .with_help(format!("write `address = {name}`, and publish only the addresses of the family meant")),
        );
    }
    if let Some(why) = tcprelay_plan::dns_name_problem(name) {
        return values::fail(invalid_name(v.span, name, &why, "a host name"));
    }
    let port = match port {
        None => None,
        Some(p) => Some(values::port(&Sp::new(Value::word(p), v.span))?),
    };
    Ok(Target::Name(name.to_string(), port))
}

/// `rest` as the name it is meant to be (it has a letter or `_`, and neither `/`,
/// `[` nor more than one `:`), split from its `:PORT`.
fn name_and_port(rest: &str) -> Option<(&str, Option<&str>)> {
    if rest.starts_with('/') || rest.contains('[') || rest.matches(':').count() > 1 {
        return None;
    }
    let (name, port) = match rest.split_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (rest, None),
    };
    name.bytes()
        .any(|b| b.is_ascii_alphabetic() || b == b'_')
        .then_some((name, port))
}

/// E0100.
fn invalid_name(span: Span, name: &str, why: &str, what: &str) -> Diagnostic {
    Diagnostic::error(
        Code::InvalidDnsName,
        span,
        format!("`{name}` is not a DNS name: {why}"),
    )
    .with_label(format!("expected {what} such as `db.example.com`"))
    .with_note("a remote's name is resolved by the relay at start and again while it runs")
}

/// A remote's `srv = NAME`: a DNS name (E0100); its shape is a lint of [`finish`].
pub(super) fn srv_name(v: &Sp<Value>) -> Parsed<String> {
    let name = v.node.text.as_str();
    match tcprelay_plan::dns_name_problem(name) {
        Some(why) => values::fail(invalid_name(
            v.span,
            name,
            &why,
            "an SRV name such as `_redis._tcp.example.com`",
        )),
        None => Ok(name.to_string()),
    }
}

/// `resolve interval`, `resolve interval min|max`, `resolve start` in the tcprelay
/// section.
pub(super) fn directive(d: &Directive, scope: &mut Scope, m: &mut ResolveModel, cx: &mut Cx<'_>) {
    let interval = |what: &'static str| {
        move |v: &Sp<Value>| {
            values::seconds(v, |v| {
                positive(v, u64::from(MAX_INTERVAL), |s| {
                    Diagnostic::error(Code::ZeroCount, s, format!("`{what}` must be at least 1"))
                        .with_label("0 would resolve the names without a pause")
                        .with_help("remove the directive for the default: the records' TTL, from 1 to 300 seconds")
                })
            })
            .map(|n| n as u32)
        }
    };
    match d.key.node {
        Key::ResolveInterval => scope.scalar(d, interval("resolve interval"), &mut m.interval, cx),
        Key::ResolveIntervalMin => {
            scope.scalar(d, interval("resolve interval min"), &mut m.interval_min, cx)
        }
        Key::ResolveIntervalMax => {
            scope.scalar(d, interval("resolve interval max"), &mut m.interval_max, cx)
        }
        Key::ResolveStart => scope.scalar(d, values::resolve_start, &mut m.start_empty, cx),
        _ => debug_assert!(false, "not a resolve key: {:?}", d.key.node),
    }
}

/// `resolvers = { nameserver = IP[:PORT] ... timeout = S attempts = N }`. A second
/// `resolvers` replaces the first (E0028); `None` when the block has an error.
pub(super) fn resolvers(
    d: &Directive,
    scope: &mut Scope,
    cx: &mut Cx<'_>,
) -> Option<ResolversModel> {
    scope.set(&d.key, cx);
    let items = cx.block(d)?;
    let errors = cx.diags.len();
    let mut block = Scope::default();
    let mut nameservers: Vec<Sp<SocketAddr>> = Vec::new();
    let (mut timeout, mut attempts) = (None, None);
    for item in items {
        let item: &Directive = &item.node;
        match item.key.node {
            Key::Nameserver => {
                let Some(v) = cx.value(item) else { continue };
                let Some(ns) = cx.take(v, nameserver(v)) else {
                    continue;
                };
                if let Some(first) = nameservers.iter().find(|n| n.node == ns.node) {
                    cx.push(
                        Diagnostic::warning(
                            Code::DuplicateDirective,
                            ns.span,
                            format!("the nameserver {} is given twice", ns.node),
                        )
                        .with_label("given again here")
                        .with_secondary(first.span, "first given here")
                        .with_help("remove one of them"),
                    );
                    continue;
                }
                nameservers.push(ns);
            }
            Key::Timeout => block.scalar(
                item,
                |v| {
                    values::seconds(v, |v| {
                        positive(v, u64::from(MAX_TIMEOUT), |s| {
                            Diagnostic::error(
                                Code::ZeroCount,
                                s,
                                "the resolvers' `timeout` must be at least 1",
                            )
                            .with_label("0 would give a query no time at all")
                            .with_help("remove the directive for the default, 2 seconds")
                        })
                    })
                    .map(|n| n as u32)
                },
                &mut timeout,
                cx,
            ),
            Key::Attempts => block.scalar(
                item,
                |v| {
                    positive(v, u64::from(MAX_ATTEMPTS), |s| {
                        Diagnostic::error(
                            Code::ZeroCount,
                            s,
                            "the resolvers' `attempts` must be at least 1",
                        )
                        .with_label("0 would never ask")
                        .with_help("remove the directive for the default, 2")
                    })
                    .map(|n| n as u32)
                },
                &mut attempts,
                cx,
            ),
            _ => cx.misplaced(&item.key, "in a `resolvers` block", RESOLVERS_VALID),
        }
    }
    if cx.diags[errors..].iter().any(Diagnostic::is_error) {
        return None;
    }
    Some(ResolversModel {
        key: d.key.span,
        nameservers,
        timeout,
        attempts,
    })
}

/// A `nameserver`: `IP`, `IP:PORT` or `[IPv6]:PORT` (port 53 when not given);
/// E0104 for anything else.
fn nameserver(v: &Sp<Value>) -> Parsed<SocketAddr> {
    let text = v.node.text.as_str();
    let parsed = text
        .parse::<SocketAddr>()
        .ok()
        .or_else(|| values::parse_ip(text).map(|ip| SocketAddr::new(ip, 53)));
    match parsed {
        Some(sa) if sa.port() == 0 => values::fail(
            Diagnostic::error(Code::InvalidPort, v.span, "port `0` is out of range")
                .with_label("expected a port from 1 to 65535, or none for 53"),
        ),
        Some(sa) => Ok(sa),
        None => values::fail(
            Diagnostic::error(
                Code::InvalidNameserver,
                v.span,
                format!("`{text}` is not a nameserver's address"),
            )
            .with_label("expected `IP`, `IP:PORT` or `[IPv6]:PORT`")
            .with_note(
                "a nameserver is given by its address: its name would need a resolver to find it",
            )
            .with_help("write the nameserver's IP address, e.g. `nameserver = 127.0.0.1:53`"),
        ),
    }
}

/// What is checked once the whole section is read: the SRV names' shape (E0103),
/// the interval's bounds (E0105), resolver settings nothing uses (E0106), a name
/// given twice (E0108).
pub(super) fn finish(m: &RelayModel, cx: &mut Cx<'_>) {
    for r in &m.discovered {
        srv_shape(r, cx);
    }
    bounds(&m.resolve, cx);
    unused(m, cx);
    duplicates(&m.discovered, cx);
}

/// E0103: an SRV name is `_service._proto.domain` (RFC 2782); tcprelay relays
/// streams, so the protocol label is `_tcp` (or `_sctp`).
fn srv_shape(r: &RemoteModel, cx: &mut Cx<'_>) {
    let Some(name) = r.name.as_ref().filter(|n| n.srv) else {
        return;
    };
    let labels: Vec<&str> = name.name.node.split('.').collect();
    let service = labels.first().copied().unwrap_or_default();
    let proto = labels.get(1).copied().unwrap_or_default();
    let problem = if !service.starts_with('_') || service.len() < 2 {
        Some(format!(
            "its first label, `{service}`, is not a service (`_redis`, `_ldap`, ...)"
        ))
    } else if !proto.starts_with('_') || labels.len() < 3 {
        Some(format!(
            "its second label, `{proto}`, is not a protocol (`_tcp`)"
        ))
    } else if proto.eq_ignore_ascii_case("_udp") {
        Some("it names UDP records, and tcprelay relays streams".to_string())
    } else {
        None
    };
    if let Some(problem) = problem {
        cx.push(
            Diagnostic::warning(
                Code::SrvNameShape,
                name.name.span,
                format!("`{}` is not an SRV name of the form `_service._proto.domain`: {problem}", name.name.node),
            )
            .with_label("SRV records are published under `_service._tcp.domain`")
            .with_note("the name is asked for as written; a name without SRV records never resolves")
            .with_help("write the service's SRV name, e.g. `srv = _redis._tcp.example.com`, or `address = NAME port = N` for A and AAAA records"),
        );
    }
}

/// E0105: `resolve interval min` above `max` (written or default) is an error;
/// `min` or `max` next to a fixed `resolve interval` has no effect (warning).
fn bounds(r: &ResolveModel, cx: &mut Cx<'_>) {
    if let Some(fixed) = &r.interval {
        for bound in [&r.interval_min, &r.interval_max].into_iter().flatten() {
            cx.push(
                Diagnostic::warning(
                    Code::ResolveIntervalBounds,
                    bound.span,
                    "a bound of the TTL has no effect with a fixed `resolve interval`",
                )
                .with_label("ignored")
                .with_secondary(fixed.span, "every name is resolved again at this interval")
                .with_note("`resolve interval min` and `max` bound the records' TTL, which a fixed interval replaces")
                .with_help("remove the bound, or `resolve interval` to follow the TTL"),
            );
        }
        return;
    }
    let min = r
        .interval_min
        .as_ref()
        .map_or(defaults::RESOLVE_INTERVAL_MIN, |v| v.node);
    let max = r
        .interval_max
        .as_ref()
        .map_or(defaults::RESOLVE_INTERVAL_MAX, |v| v.node);
    if min <= max {
        return;
    }
    let (at, other) = match (&r.interval_min, &r.interval_max) {
        (Some(min), Some(max)) => (min.span, Some(max.span)),
        (Some(min), None) => (min.span, None),
        (None, Some(max)) => (max.span, None),
        (None, None) => return,
    };
    let mut d = Diagnostic::error(
        Code::ResolveIntervalBounds,
        at,
        format!("`resolve interval min` ({min} s) is above `resolve interval max` ({max} s)"),
    )
    .with_label("the TTL cannot be bounded by these");
    d = match other {
        Some(span) => d.with_secondary(span, "the maximum"),
        None => d.with_note(format!(
            "the default bounds are {} and {} seconds",
            defaults::RESOLVE_INTERVAL_MIN,
            defaults::RESOLVE_INTERVAL_MAX
        )),
    };
    cx.push(d.with_help("give a minimum no higher than the maximum"));
}

/// E0106: resolver settings in a section whose remotes are all IP addresses.
fn unused(m: &RelayModel, cx: &mut Cx<'_>) {
    if !m.discovered.is_empty() {
        return;
    }
    let r = &m.resolve;
    let written = [
        r.resolvers.as_ref().map(|v| (v.key, "`resolvers`")),
        r.interval.as_ref().map(|v| (v.span, "`resolve interval`")),
        r.interval_min
            .as_ref()
            .map(|v| (v.span, "`resolve interval min`")),
        r.interval_max
            .as_ref()
            .map(|v| (v.span, "`resolve interval max`")),
        r.start_empty.as_ref().map(|v| (v.span, "`resolve start`")),
    ];
    for (span, what) in written.into_iter().flatten() {
        cx.push(
            Diagnostic::warning(
                Code::ResolveUnused,
                span,
                format!("{what} has no effect: no remote is given by name"),
            )
            .with_label("ignored")
            .with_note("the relay resolves only the remotes written with a host name (`address = NAME`) or `srv = NAME`")
            .with_help("remove it, or give a remote by its name"),
        );
    }
}

/// E0108: the same name with the same lookup, port and protocol twice: the runtime
/// would find each address twice, two remotes with one key.
fn duplicates(found: &[RemoteModel], cx: &mut Cx<'_>) {
    for (i, r) in found.iter().enumerate() {
        let Some(first) = found[..i].iter().find(|e| same(e, r)) else {
            continue;
        };
        let (Some(name), Some(first_name)) = (&r.name, &first.name) else {
            continue;
        };
        cx.push(
            Diagnostic::error(
                Code::DuplicateDiscovered,
                name.name.span,
                format!("`{}` is given twice", name.name.node),
            )
            .with_label("given again here")
            .with_secondary(first_name.name.span, "first given here")
            .with_note("each address the name resolves to would be two remotes with one address, port and protocol")
            .with_help("remove one of the remotes (a `weight` on the other gives it more sessions)"),
        );
    }
}

/// Whether two discovered remotes would give the same remotes.
fn same(a: &RemoteModel, b: &RemoteModel) -> bool {
    let (Some(x), Some(y)) = (&a.name, &b.name) else {
        return false;
    };
    let protocol = |r: &RemoteModel| r.protocol.as_ref().map(|p| p.node);
    normal(&x.name.node) == normal(&y.name.node)
        && x.srv == y.srv
        && a.port.node == b.port.node
        && protocol(a) == protocol(b)
}

/// A name as the plan keeps it: lowercase, without a final dot.
pub fn normal(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}
