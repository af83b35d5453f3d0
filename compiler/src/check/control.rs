//! The spawnd section's directives for operators: the control socket (`control`)
//! and the metrics endpoint (`metrics`), each a block, and the metrics endpoint
//! against the listeners.

use super::model::{Bind, ControlModel, ListenerModel, MetricsModel};
use super::scope::{Cx, Scope};
use super::values;
use crate::ast::{Body, Directive, Key};
use crate::diag::{Code, Diagnostic};
use std::net::{IpAddr, SocketAddr};
use tcprelay_plan::{defaults, OsText};

/// The keys valid inside `control { }`.
pub(super) const CONTROL_VALID: &[Key] = &[Key::Path, Key::Mode, Key::Group];
/// The keys valid inside `metrics { }`.
pub(super) const METRICS_VALID: &[Key] = &[Key::Address, Key::Port];

/// `control = { path = PATH mode = OCTAL group = NAME }`, `control = no` (or
/// `yes`, the default socket). A second `control` replaces the first (E0028).
pub(super) fn control(d: &Directive, scope: &mut Scope, cx: &mut Cx<'_>) -> Option<ControlModel> {
    scope.set(&d.key, cx);
    let items = match &d.body {
        Body::Value(v) => {
            return match values::boolean(v) {
                Ok(false) => Some(ControlModel::Off),
                Ok(true) => Some(ControlModel::Socket {
                    path: None,
                    mode: None,
                    group: None,
                }),
                Err(_) => {
                    cx.push(
                        Diagnostic::error(
                            Code::InvalidBool,
                            v.span,
                            format!("`control` takes `no` or a block, not `{}`", v.node.text),
                        )
                        .with_label("expected `no` or `{ ... }`")
                        .with_help(
                            "write `control = no`, or `control = { path = /run/tcprelay/ctl mode = 0660 group = NAME }`",
                        ),
                    );
                    None
                }
            };
        }
        Body::Block(items) => items,
        // Only `debug`/`trace` are written with several values.
        Body::Error | Body::List(_) => return None,
    };
    let errors = cx.diags.len();
    let mut block = Scope::default();
    let (mut path, mut mode, mut group) = (None, None, None);
    for item in items {
        let item: &Directive = &item.node;
        match item.key.node {
            Key::Path => block.scalar(
                item,
                |v| values::os_string(v, "the control socket path", OsText::check_socket_path),
                &mut path,
                cx,
            ),
            Key::Mode => block.scalar(item, values::permission_mode, &mut mode, cx),
            Key::Group => block.scalar(
                item,
                |v| values::os_string(v, "the control socket's group", OsText::check_name),
                &mut group,
                cx,
            ),
            _ => cx.misplaced(&item.key, "in a `control` block", CONTROL_VALID),
        }
    }
    if cx.diags[errors..].iter().any(Diagnostic::is_error) {
        return None;
    }
    Some(ControlModel::Socket { path, mode, group })
}

/// `metrics = { address = IP port = PORT }`; E0021 without a port. A second
/// `metrics` replaces the first (E0028).
pub(super) fn metrics(d: &Directive, scope: &mut Scope, cx: &mut Cx<'_>) -> Option<MetricsModel> {
    scope.set(&d.key, cx);
    let items = cx.block(d)?;
    let errors = cx.diags.len();
    let mut block = Scope::default();
    let (mut address, mut port) = (None, None);
    let mut has_port = false;
    for item in items {
        let item: &Directive = &item.node;
        match item.key.node {
            Key::Address | Key::BareAddress => block.scalar(item, values::ip, &mut address, cx),
            Key::Port | Key::PortWithoutEquals => {
                cx.short_form(item);
                has_port = true;
                block.scalar(item, values::port, &mut port, cx);
            }
            _ => cx.misplaced(&item.key, "in a `metrics` block", METRICS_VALID),
        }
    }
    if !has_port {
        cx.push(
            Diagnostic::error(
                Code::MissingPort,
                d.key.span,
                "metrics endpoint without a port",
            )
            .with_label("this `metrics` block has no port")
            .with_help("add `port = N`, e.g. `metrics = { port = 9100 }`"),
        );
    }
    if cx.diags[errors..].iter().any(Diagnostic::is_error) {
        return None;
    }
    Some(MetricsModel {
        key: d.key.span,
        address,
        port: port?,
    })
}

/// E0047: the metrics endpoint on an address a listener binds (the same address and
/// port, or a wildcard of the same family covering it either way): one of the two
/// binds would fail, or clients would reach the metrics.
pub(super) fn metrics_against_listeners(
    metrics: &MetricsModel,
    listeners: &[ListenerModel],
    cx: &mut Cx<'_>,
) {
    let ip = metrics
        .address
        .as_ref()
        .map_or(defaults::METRICS_ADDRESS, |a| a.node);
    let ours = SocketAddr::new(ip, metrics.port.node);
    for l in listeners {
        let Bind::Inet { address, port } = &l.bind else {
            continue;
        };
        let theirs = SocketAddr::new(
            address
                .as_ref()
                .map_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), |a| a.node),
            port.node,
        );
        let collides = ours.port() == theirs.port()
            && ours.is_ipv4() == theirs.is_ipv4()
            && (ours.ip() == theirs.ip()
                || ours.ip().is_unspecified()
                || theirs.ip().is_unspecified());
        if !collides {
            continue;
        }
        let primary = metrics
            .address
            .as_ref()
            .map_or(metrics.port.span, |a| a.span.to(metrics.port.span));
        let mut d = Diagnostic::error(
            Code::MetricsOnListener,
            primary,
            format!("the metrics endpoint `{ours}` is on a listener's address `{theirs}`"),
        )
        .with_label("the metrics endpoint")
        .with_secondary(l.key, "this listener binds it")
        .with_help("give `metrics` another port");
        if metrics.address.is_none() {
            d = d.with_note(format!(
                "`metrics` listens on {} when no `address` is given",
                defaults::METRICS_ADDRESS
            ));
        } else if ours.ip() != theirs.ip() {
            d = d.with_note(
                "a wildcard address (`0.0.0.0`, `::`) covers every address of its family",
            );
        }
        cx.push(d);
        return;
    }
}
