//! What every scope (section or block) does the same way: taking a directive's
//! value or block, warning about deprecated spellings and about a setting given
//! twice, and storing a parsed value with its span.

use super::model::SyslogModel;
use super::values::{self, Parsed};
use crate::ast::{Body, Directive, Key, Sp, Span, Value};
use crate::diag::{Code, Diagnostic};
use std::collections::HashMap;
use tcprelay_plan::OsText;

/// The diagnostics sink of one check run.
pub(super) struct Cx<'d> {
    pub diags: &'d mut Vec<Diagnostic>,
}

impl Cx<'_> {
    pub fn push(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    /// The parsed value with the value's span, or `None` after pushing the error.
    pub fn take<T>(&mut self, v: &Sp<Value>, parsed: Parsed<T>) -> Option<Sp<T>> {
        match parsed {
            Ok(t) => Some(Sp::new(t, v.span)),
            Err(d) => {
                self.push(*d);
                None
            }
        }
    }

    /// The value of a `key = value` directive. A block where a value belongs is
    /// reported; a body that did not parse was reported by the parser.
    pub fn value<'a>(&mut self, d: &'a Directive) -> Option<&'a Sp<Value>> {
        match &d.body {
            Body::Value(v) => Some(v),
            Body::Block(_) => {
                self.push(
                    Diagnostic::error(
                        Code::UnexpectedToken,
                        d.key.span,
                        format!("`{}` takes a value, not a block", d.key.node),
                    )
                    .with_label("expected `= value`"),
                );
                None
            }
            // Only `debug`/`trace` are written with several values; they read the list.
            Body::List(values) => values.first(),
            Body::Error => None,
        }
    }

    /// The directives of a `key = { ... }` directive.
    pub fn block<'a>(&mut self, d: &'a Directive) -> Option<&'a [Sp<Directive>]> {
        match &d.body {
            Body::Block(items) => Some(items),
            Body::Value(v) => {
                self.push(
                    Diagnostic::error(
                        Code::UnexpectedToken,
                        v.span,
                        format!("`{}` takes a block, not a value", d.key.node),
                    )
                    .with_label("expected `{ ... }`"),
                );
                None
            }
            Body::List(values) => {
                self.push(
                    Diagnostic::error(
                        Code::UnexpectedToken,
                        values[0].span,
                        format!("`{}` takes a block, not a value", d.key.node),
                    )
                    .with_label("expected `{ ... }`"),
                );
                None
            }
            Body::Error => None,
        }
    }

    /// E0040 for a deprecated spelling; the directive still takes effect.
    pub fn deprecated(&mut self, key: &Sp<Key>) {
        if let Some(new) = key.node.replacement() {
            self.push(
                Diagnostic::warning(
                    Code::Deprecated,
                    key.span,
                    format!("`{}` is deprecated", key.node),
                )
                .with_label("deprecated spelling")
                .with_help(format!("write `{new}` instead")),
            );
        }
    }

    /// E0040 for the spawnd manual's short forms, which the original's parser
    /// rejected: `port 21` without `=`, and a bare `tls` (`tls = yes`). They are taken
    /// wherever `port` or a `tls = yes|no` is.
    pub fn short_form(&mut self, d: &Directive) {
        let key = &d.key;
        let d = match (key.node, &d.body) {
            (Key::PortWithoutEquals, Body::Value(v)) => Diagnostic::warning(
                Code::Deprecated,
                key.span,
                "`port` without `=` is deprecated",
            )
            .with_label("the spawnd manual's form")
            .with_help(format!("write `port = {}`", v.node.text)),
            (Key::AclShort { permit, negate }, Body::Value(v)) => Diagnostic::warning(
                Code::Deprecated,
                key.span,
                "`acl` without `=` is deprecated",
            )
            .with_label("the spawnd manual's form")
            .with_help(format!(
                "write `acl = {}{} {}`",
                if permit { "permit" } else { "deny" },
                if negate { " not" } else { "" },
                v.node.text
            )),
            (Key::BareTls, _) => {
                Diagnostic::warning(Code::Deprecated, key.span, "a bare `tls` is deprecated")
                    .with_label("taken as `tls = yes`")
                    .with_help("write `tls = yes`")
            }
            _ => return,
        };
        self.push(d);
    }

    /// A key that is valid elsewhere but not in `place`.
    pub fn misplaced(&mut self, key: &Sp<Key>, place: &str, valid: &[Key]) {
        let list = valid
            .iter()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", ");
        self.push(
            Diagnostic::error(
                Code::UnexpectedToken,
                key.span,
                format!("`{}` is not valid {place}", key.node),
            )
            .with_label("not valid here")
            .with_note(format!("valid {place}: {list}")),
        );
    }
}

/// The settings already made in one scope, to warn when one is made twice.
#[derive(Debug, Default)]
pub(super) struct Scope {
    seen: HashMap<Key, Sp<Key>>,
}

impl Scope {
    /// Records that `key` is set here; E0028 when it was set before (the later value
    /// wins). Spellings of the same setting count as the same key.
    pub fn set(&mut self, key: &Sp<Key>, cx: &mut Cx<'_>) {
        if let Some(first) = self.seen.insert(canonical(key.node), key.clone()) {
            let message = if first.node == key.node {
                format!("`{}` is set twice", key.node)
            } else {
                format!("`{}` sets what `{}` already set", key.node, first.node)
            };
            cx.push(
                Diagnostic::warning(Code::DuplicateDirective, key.span, message)
                    .with_label("set again here")
                    .with_secondary(first.span, "first set here")
                    .with_note("the later value is used"),
            );
        }
    }

    /// A scalar directive: records it, parses its value and stores it in `slot`.
    pub fn scalar<T>(
        &mut self,
        d: &Directive,
        parse: impl FnOnce(&Sp<Value>) -> Parsed<T>,
        slot: &mut Option<Sp<T>>,
        cx: &mut Cx<'_>,
    ) {
        self.set(&d.key, cx);
        if let Some(v) = cx.value(d) {
            if let Some(t) = cx.take(v, parse(v)) {
                *slot = Some(t);
            }
        }
    }

    /// `syslog ident|facility|level|severity`; false when `d` is not one of them.
    pub fn syslog(&mut self, d: &Directive, m: &mut SyslogModel, cx: &mut Cx<'_>) -> bool {
        match d.key.node {
            Key::SyslogIdent => self.scalar(
                d,
                |v| values::os_string(v, "the syslog ident", OsText::check_text),
                &mut m.ident,
                cx,
            ),
            Key::SyslogFacility => self.scalar(d, values::facility, &mut m.facility, cx),
            Key::SyslogLevel | Key::SyslogSeverity => {
                self.scalar(d, values::severity, &mut m.severity, cx)
            }
            _ => return false,
        }
        true
    }
}

/// A string value, taken as written.
pub(super) fn string(v: &Sp<Value>) -> Parsed<String> {
    Ok(v.node.text.clone())
}

/// The one key each setting is tracked under, whatever its spelling.
fn canonical(key: Key) -> Key {
    use Key::*;
    match key {
        BareAddress => Address,
        InstancesMin => ServersMin,
        InstancesMax => ServersMax,
        SyslogLevel => SyslogSeverity,
        TlsCertfile => TlsCertFile,
        TlsKeyfile => TlsKeyFile,
        Haproxy => AcceptProxy,
        Trace => Debug,
        PidFile => Pidfile,
        PortWithoutEquals => Port,
        BareTls => Tls,
        other => other.replacement().unwrap_or(other),
    }
}

/// A count that must be at least 1: `0` gets `zero` (made at the value's span), any
/// other bad text E0024.
pub(super) fn positive(
    v: &Sp<Value>,
    max: u64,
    zero: impl FnOnce(Span) -> Diagnostic,
) -> Parsed<u64> {
    match values::number(v, 1, max) {
        Err(_) if values::number(v, 0, 0).is_ok() => values::fail(zero(v.span)),
        other => other,
    }
}
