//! The PROXY protocol: `haproxy`, `accept proxy ...` in `listen` blocks, and the
//! checks that need both sections: who may send a header to a listener (E0048), and
//! `send proxy` towards one of the relay's own PROXY-accepting listeners (E0049).

use super::model::{AcceptProxyModel, Bind, ListenerModel, RelayModel, RemoteModel};
use super::scope::{Cx, Scope};
use super::{health, values};
use crate::ast::{Directive, Key, Sp};
use crate::diag::{Code, Diagnostic};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use tcprelay_plan::{Network, ProxyAccept, ProxyVersion};

/// A PROXY directive of a listener, into `m`; false when `d` is not one of them.
pub(super) fn listener_directive(
    d: &Directive,
    scope: &mut Scope,
    m: &mut AcceptProxyModel,
    cx: &mut Cx<'_>,
) -> bool {
    match d.key.node {
        Key::Haproxy => {
            let mut on = None;
            scope.scalar(d, values::boolean, &mut on, cx);
            if let Some(on) = on {
                m.version = Some(Sp::new(on.node.then_some(ProxyAccept::Any), on.span));
                m.key = Some(d.key.span);
            }
        }
        Key::AcceptProxy => {
            let before = m.version.is_some();
            scope.scalar(d, values::proxy_accept, &mut m.version, cx);
            if m.version.is_some() || before {
                m.key = Some(d.key.span);
            }
        }
        Key::AcceptProxyFrom => {
            // Repeatable: each adds a network.
            if let Some(v) = cx.value(d) {
                if let Some(net) = cx.take(v, values::network(v)) {
                    let (address, prefix) = net.node;
                    m.from.push(Sp::new(Network { address, prefix }, net.span));
                }
            }
        }
        Key::AcceptProxyTimeout => scope.scalar(
            d,
            |v| health::seconds(v, "`accept proxy timeout`"),
            &mut m.timeout,
            cx,
        ),
        _ => return false,
    }
    true
}

/// After a listener's block: `accept proxy from` and `accept proxy timeout` without
/// PROXY headers have no effect (E0041); a Unix listener has no peer address to trust.
pub(super) fn listener_settings(l: &ListenerModel, cx: &mut Cx<'_>) {
    let p = &l.proxy;
    let ignored = |span, what: &str, why: &str| {
        Diagnostic::warning(Code::Ignored, span, format!("`{what}` has no effect {why}"))
            .with_label("ignored")
    };
    if p.accepted().is_none() {
        let why = "on a listener that does not accept PROXY headers";
        let help = "add `accept proxy = any` (or `haproxy = yes`) to accept them";
        if let Some(first) = p.from.first() {
            cx.push(ignored(first.span, "accept proxy from", why).with_help(help));
        }
        if let Some(t) = &p.timeout {
            cx.push(ignored(t.span, "accept proxy timeout", why).with_help(help));
        }
        return;
    }
    if let (Bind::Unix { .. }, Some(first)) = (&l.bind, p.from.first()) {
        cx.push(
            ignored(first.span, "accept proxy from", "on a Unix socket listener")
                .with_note("a peer on a Unix socket has no IP address; the socket's `mode` says who may connect"),
        );
    }
}

/// E0048: a listener on an IP address that takes PROXY headers from any peer lets any
/// client that reaches it claim any address (and pass the `acl` with it).
pub(super) fn spoofing(listeners: &[ListenerModel], cx: &mut Cx<'_>) {
    for l in listeners {
        let (Some(version), Some(key)) = (&l.proxy.version, l.proxy.key) else {
            continue;
        };
        if version.node.is_none() || !l.proxy.from.is_empty() || matches!(l.bind, Bind::Unix { .. })
        {
            continue;
        }
        cx.push(
            Diagnostic::warning(
                Code::ProxyFromAnyone,
                key,
                format!(
                    "listener on `{}` accepts PROXY headers from any peer",
                    l.bind.resolve()
                ),
            )
            .with_label("any client that can connect can claim any address")
            .with_note("the `acl` and the connection records see the address the header carries")
            .with_help(
                "name the load balancers that send headers: `accept proxy from = 10.0.0.2/32`",
            ),
        );
    }
}

/// E0049: `send proxy` towards a remote that is one of the relay's own
/// PROXY-accepting listeners: each pass adds a header and connects again, with no hop
/// limit. A wildcard listener matches the loopback and unspecified addresses of its
/// family on its port (the addresses sure to be this machine's).
pub(super) fn loops(listeners: &[ListenerModel], relay: &RelayModel, cx: &mut Cx<'_>) {
    let by_port = ByPort::new(listeners);
    for r in &relay.remotes {
        let Some((l, send)) = loop_listener(&by_port, relay, r) else {
            continue;
        };
        let remote = SocketAddr::new(r.address.node, r.port.node);
        let mut d = Diagnostic::error(
            Code::ProxyLoop,
            r.key,
            format!("`send proxy` towards `{remote}`, the relay's own PROXY-accepting listener"),
        )
        .with_label("this remote is the relay itself")
        .with_secondary(l.key, "this listener accepts PROXY headers");
        if r.send_proxy.is_none() {
            d = d.with_secondary(send.span, "the section's `send proxy` applies to it");
        }
        cx.push(
            d.with_note("each pass would connect to the relay again, with no hop limit")
                .with_help("point the remote at the service behind the relay, or set `send proxy = no` in it"),
        );
    }
}

/// The PROXY-accepting listener that remote `r` is, when it sends PROXY headers (its
/// own `send proxy` or the section's, given with it): the E0049 case, which the
/// lint of remotes that are the relay's own listeners (E0071) leaves to it.
pub(super) fn loop_listener<'l, 'r>(
    listeners: &ByPort<'l>,
    relay: &'r RelayModel,
    r: &'r RemoteModel,
) -> Option<(&'l ListenerModel, &'r Sp<Option<ProxyVersion>>)> {
    let send = r.send_proxy.as_ref().or(relay.send_proxy.as_ref())?;
    send.node?;
    let remote = SocketAddr::new(r.address.node, r.port.node);
    listeners
        .on(remote.port())
        .filter(|l| l.proxy.accepted().is_some())
        .find(|l| is_listener(&l.bind, remote))
        .map(|l| (l, send))
}

/// The address listeners of each port, in file order: which listener a remote
/// reaches is asked of those on its port only, so a configuration of 100,000
/// listeners and as many remotes is checked in linear time.
pub(super) struct ByPort<'l>(HashMap<u16, Vec<&'l ListenerModel>>);

impl<'l> ByPort<'l> {
    pub(super) fn new(listeners: &'l [ListenerModel]) -> ByPort<'l> {
        let mut map: HashMap<u16, Vec<&'l ListenerModel>> = HashMap::new();
        for l in listeners {
            if let Bind::Inet { port, .. } = &l.bind {
                map.entry(port.node).or_default().push(l);
            }
        }
        ByPort(map)
    }

    /// The listeners on `port`, in file order.
    pub(super) fn on(&self, port: u16) -> impl Iterator<Item = &'l ListenerModel> + '_ {
        self.0.get(&port).into_iter().flatten().copied()
    }
}

/// Whether a connection to `remote` reaches the listener bound at `bind`.
fn is_listener(bind: &Bind, remote: SocketAddr) -> bool {
    let Bind::Inet { address, port } = bind else {
        return false;
    };
    if port.node != remote.port() {
        return false;
    }
    let local = |ip: IpAddr| ip.is_loopback() || ip.is_unspecified();
    match address.as_ref().map(|a| a.node) {
        // No address: `0.0.0.0`.
        None => remote.is_ipv4() && local(remote.ip()),
        Some(ip) if ip.is_unspecified() => ip.is_ipv4() == remote.is_ipv4() && local(remote.ip()),
        Some(ip) => ip == remote.ip(),
    }
}
