//! `check = { ... }` and `check = no`: the active health checks of a remote, written
//! in a `remote` block or in the tcprelay section (the default of every remote), and
//! the merge of the two.

use super::model::{CheckModel, CheckSetting, ExpectModel, RemoteModel};
use super::scope::{positive, Cx, Scope};
use super::values::{self, Parsed};
use crate::ast::{Body, Directive, Key, Sp, Span, Value};
use crate::diag::{Code, Diagnostic};
use std::collections::HashSet;
use tcprelay_plan::{defaults, MAX_CHECK_BYTES};

/// The keys valid inside `check { }`.
pub(super) const VALID: &[Key] = &[
    Key::Interval,
    Key::Timeout,
    Key::Rise,
    Key::Fall,
    Key::Send,
    Key::Expect,
    Key::ExpectRegex,
    Key::Tls,
];

/// A `check` directive of a remote or of the section, into `slot`.
pub(super) fn directive(
    d: &Directive,
    scope: &mut Scope,
    slot: &mut Option<CheckSetting>,
    cx: &mut Cx<'_>,
) {
    scope.set(&d.key, cx);
    match &d.body {
        Body::Value(v) => {
            if let Some(on) = cx.take(v, values::boolean(v)) {
                *slot = Some(if on.node {
                    CheckSetting::On(Box::new(CheckModel::new(d.key.span)))
                } else {
                    CheckSetting::Off(d.key.span)
                });
            }
        }
        Body::Block(items) => {
            if let Some(check) = block(d.key.span, items, cx) {
                *slot = Some(CheckSetting::On(Box::new(check)));
            }
        }
        // Only `debug`/`trace` are written with several values.
        Body::Error | Body::List(_) => {}
    }
}

/// One `check { }` block; `None` when it has an error (reported).
fn block(key: Span, items: &[Sp<Directive>], cx: &mut Cx<'_>) -> Option<CheckModel> {
    let errors = cx.diags.len();
    let mut scope = Scope::default();
    let mut m = CheckModel::new(key);
    let mut expect_key: Option<Sp<Key>> = None;
    for d in items {
        let d: &Directive = &d.node;
        match d.key.node {
            Key::Interval => scope.scalar(
                d,
                |v| seconds(v, "the check's `interval`"),
                &mut m.interval,
                cx,
            ),
            Key::Timeout => scope.scalar(
                d,
                |v| seconds(v, "the check's `timeout`"),
                &mut m.timeout,
                cx,
            ),
            Key::Rise => scope.scalar(d, |v| count(v, "rise"), &mut m.rise, cx),
            Key::Fall => scope.scalar(d, |v| count(v, "fall"), &mut m.fall, cx),
            Key::Send => scope.scalar(d, |v| bytes(v, "send"), &mut m.send, cx),
            Key::Tls | Key::BareTls => {
                cx.short_form(d);
                scope.scalar(d, values::boolean, &mut m.tls, cx);
            }
            Key::Expect | Key::ExpectRegex => {
                if let Some(first) = expect_key.as_ref().filter(|k| k.node != d.key.node) {
                    cx.push(both_expects(&d.key, first));
                }
                expect_key = Some(d.key.clone());
                let parse = |v: &Sp<Value>| match d.key.node {
                    Key::Expect => bytes(v, "expect").map(ExpectModel::Bytes),
                    _ => regex(v).map(ExpectModel::Regex),
                };
                scope.scalar(d, parse, &mut m.expect, cx);
            }
            _ => cx.misplaced(&d.key, "in a `check` block", VALID),
        }
    }
    if cx.diags[errors..].iter().any(Diagnostic::is_error) {
        return None;
    }
    Some(m)
}

/// A number of seconds, at least 1, that fits the plan's milliseconds; `what` names
/// the setting in the message.
pub(super) fn seconds(v: &Sp<Value>, what: &str) -> Parsed<u32> {
    super::values::seconds(v, |v| {
        positive(v, u64::from(u32::MAX / 1000), |s| {
            Diagnostic::error(
                Code::ZeroCount,
                s,
                format!("{what} must be at least 1 second"),
            )
            .with_label("0 is not allowed here")
        })
    })
    .map(|n| n as u32)
}

/// A count of consecutive checks, at least 1.
fn count(v: &Sp<Value>, what: &str) -> Parsed<u32> {
    positive(v, u64::from(u32::MAX), |s| {
        Diagnostic::error(
            Code::ZeroCount,
            s,
            format!("the check's `{what}` must be at least 1"),
        )
        .with_label("a count of consecutive checks")
    })
    .map(|n| n as u32)
}

/// The bytes of `send` or `expect`: the string with the language's escapes resolved,
/// not empty, at most [`MAX_CHECK_BYTES`].
fn bytes(v: &Sp<Value>, what: &str) -> Parsed<Vec<u8>> {
    let text = &v.node.text;
    if text.is_empty() {
        return values::fail(
            Diagnostic::error(
                Code::InvalidCheck,
                v.span,
                format!("the check's `{what}` is empty"),
            )
            .with_label("expected at least one byte")
            .with_help(format!("remove `{what}` to check by connecting only")),
        );
    }
    not_too_long(v, what)?;
    Ok(text.as_bytes().to_vec())
}

/// An `expect regex`: compiles with the runtime's regular expression engine.
fn regex(v: &Sp<Value>) -> Parsed<String> {
    let text = &v.node.text;
    not_too_long(v, "expect regex")?;
    if let Err(e) = regex_lite::Regex::new(text) {
        // The engine's message quotes the pattern and draws a caret under the
        // problem, over several lines: the last line says what is wrong.
        let message = e.to_string();
        let why = message
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("invalid")
            .trim()
            .trim_start_matches("error: ");
        return values::fail(
            Diagnostic::error(
                Code::InvalidRegex,
                v.span,
                "the check's `expect regex` is not a valid regular expression",
            )
            .with_label(why.to_string())
            .with_note("the syntax is that of the `regex-lite` crate (Rust's `regex` without Unicode classes)"),
        );
    }
    Ok(text.clone())
}

/// E0053 for a `send`, `expect` or `expect regex` longer than a check writes or reads.
fn not_too_long(v: &Sp<Value>, what: &str) -> Parsed<()> {
    let len = v.node.text.len();
    if len > MAX_CHECK_BYTES {
        return values::fail(
            Diagnostic::error(
                Code::InvalidCheck,
                v.span,
                format!("the check's `{what}` is {len} bytes long, longer than {MAX_CHECK_BYTES}"),
            )
            .with_label("too long")
            .with_note(format!(
                "a check writes and reads at most {} KiB",
                MAX_CHECK_BYTES / 1024
            )),
        );
    }
    Ok(())
}

fn both_expects(second: &Sp<Key>, first: &Sp<Key>) -> Diagnostic {
    Diagnostic::error(
        Code::InvalidCheck,
        second.span,
        format!("a check with both `{}` and `{}`", first.node, second.node),
    )
    .with_label("second expectation")
    .with_secondary(first.span, "first expectation")
    .with_help(
        "keep one: `expect` compares the first bytes, `expect regex` matches the first reply",
    )
}

/// Gives every remote the check in effect: its own `check` block over the section's,
/// field by field; `check = no` on a remote turns it off. `own` is what each remote's
/// block said, in the order of `remotes`. Then E0053 for a timeout longer than the
/// interval, once per pair of places.
pub(super) fn resolve<'r>(
    remotes: impl IntoIterator<Item = &'r mut RemoteModel>,
    own: impl IntoIterator<Item = Option<CheckSetting>>,
    section: Option<&CheckSetting>,
    cx: &mut Cx<'_>,
) {
    let base = match section {
        Some(CheckSetting::On(c)) => Some(&**c),
        _ => None,
    };
    let mut reported = HashSet::new();
    for (remote, own) in remotes.into_iter().zip(own) {
        remote.check = match (own, base) {
            (Some(CheckSetting::Off(_)), _) => None,
            (Some(CheckSetting::On(c)), Some(base)) => Some(c.over(base)),
            (Some(CheckSetting::On(c)), None) => Some(*c),
            (None, base) => base.cloned(),
        };
        if let Some(check) = &remote.check {
            timeout_within_interval(check, &mut reported, cx);
        }
    }
}

/// E0053 when a check's timeout (written or the default) is longer than its interval.
fn timeout_within_interval(
    check: &CheckModel,
    reported: &mut HashSet<(Span, Span)>,
    cx: &mut Cx<'_>,
) {
    let interval = check
        .interval
        .as_ref()
        .map_or(defaults::CHECK_INTERVAL_MS / 1000, |v| v.node);
    let timeout = check
        .timeout
        .as_ref()
        .map_or(defaults::CHECK_TIMEOUT_MS / 1000, |v| v.node);
    if timeout <= interval {
        return;
    }
    let at = |v: &Option<Sp<u32>>| v.as_ref().map_or(check.key, |v| v.span);
    let (t, i) = (at(&check.timeout), at(&check.interval));
    if !reported.insert((t, i)) {
        return;
    }
    let mut d = Diagnostic::error(
        Code::InvalidCheck,
        t,
        format!("the check's timeout, {timeout} s, is longer than its interval, {interval} s"),
    )
    .with_label("longer than the interval");
    d = match &check.interval {
        Some(v) => d.with_secondary(v.span, "the interval"),
        None => d.with_note(format!("the interval is {interval} seconds when not given")),
    };
    cx.push(d.with_help(
        "a check must end before the next one starts: shorten the timeout or lengthen the interval",
    ))
}
