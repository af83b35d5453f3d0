//! What the top level and both sections read alike, as every program of the family
//! does: `debug`/`trace`, `syslog ...`, `proctitle`, the sticky cache, and the
//! directives kept for compatibility that have no effect in tcprelay (E0041).

use super::model::{DebugMask, StickyModel, SyslogModel};
use super::scope::{Cx, Scope};
use super::values;
use crate::ast::{Body, Directive, Key, Sp, Value};
use crate::diag::{Code, Diagnostic};
use tcprelay_plan::{OsText, MAX_STICKY_SIZE};

/// The slots the common directives of one scope fill.
pub(super) struct Common<'a> {
    pub syslog: &'a mut SyslogModel,
    pub debug: &'a mut Option<Sp<DebugMask>>,
    pub proctitle: &'a mut Option<Sp<String>>,
}

/// A directive of the top level or of either section; false when `d` is not one.
pub(super) fn directive(d: &Directive, scope: &mut Scope, c: Common<'_>, cx: &mut Cx<'_>) -> bool {
    match d.key.node {
        Key::Debug | Key::Trace => debug(d, c.debug, cx),
        Key::Proctitle => scope.scalar(
            d,
            |v| values::os_string(v, "the process title", OsText::check_text),
            c.proctitle,
            cx,
        ),
        Key::SyslogDefault
        | Key::SyslogFilter
        | Key::DebugRedirect
        | Key::TraceRedirect
        | Key::CoredumpDirectory
        | Key::Gcore
        | Key::DebugCmd
        | Key::CleanupInterval
        | Key::Alias
        | Key::RegexMatchCase => ignored(&d.key, cx),
        _ => return scope.syslog(d, c.syslog, cx),
    }
    true
}

/// `debug = ...` / `trace = ...`: several in one scope apply in order, as the
/// original's, so none replaces another.
fn debug(d: &Directive, slot: &mut Option<Sp<DebugMask>>, cx: &mut Cx<'_>) {
    let values: &[Sp<Value>] = match &d.body {
        Body::List(values) => values,
        Body::Value(v) => std::slice::from_ref(v),
        _ => return,
    };
    let Some(last) = values.last() else {
        return;
    };
    let span = values[0].span.to(last.span);
    match values::debug_mask(values) {
        Ok(mask) => {
            let mask = slot.as_ref().map_or(mask, |old| old.node.then(mask));
            *slot = Some(Sp::new(mask, span));
        }
        Err(e) => cx.push(*e),
    }
}

/// E0041 for a directive of the family that tcprelay reads and ignores.
pub(super) fn ignored(key: &Sp<Key>, cx: &mut Cx<'_>) {
    let (why, help) = match key.node {
        Key::SyslogDefault | Key::SyslogFilter => (
            "only tac_plus-ng reads it",
            "remove it; `syslog facility` and `syslog level` set what tcprelay logs",
        ),
        Key::DebugRedirect | Key::TraceRedirect => (
            "debug lines go where every log line goes",
            "choose syslog or standard error with the `-f` option and `syslog` directives, then remove this line",
        ),
        Key::CoredumpDirectory => (
            "where a crashed process dumps core is the system's setting",
            "set it with the system's core pattern (core(5)) and `ulimit -c`, then remove this line",
        ),
        Key::Gcore | Key::DebugCmd => (
            "tcprelay runs no command when a process crashes",
            "use the system's core dumps (core(5)), then remove this line",
        ),
        Key::CleanupInterval => ("spawnd and tcprelay never read it", "remove this line"),
        Key::Alias => (
            "tcprelay does not expand aliases",
            "write the alias's tokens where its name is used, then remove the alias",
        ),
        Key::RegexMatchCase => (
            "it sets the case sensitivity of tac_plus-ng's regular expressions",
            "remove this line",
        ),
        Key::TlsPsk => (
            "tcprelay has no pre-shared-key TLS",
            "remove it; TLS listeners use `tls cert-file` and `tls key-file`",
        ),
        Key::AaaProtocol | Key::Flag => (
            "it tells tac_plus-ng which protocol the listener speaks",
            "remove this line",
        ),
        Key::IpcKey => (
            "the workers read the compiled plan, not the configuration text",
            "remove this line",
        ),
        Key::Config => (
            "the workers run the plan compiled from this file",
            "compile the other file with its own `tcprelay-cc` run, or move its tcprelay section into this file",
        ),
        _ => ("tcprelay does not use it", "remove this line"),
    };
    cx.push(
        Diagnostic::warning(
            Code::Ignored,
            key.span,
            format!("`{}` has no effect in tcprelay", key.node),
        )
        .with_label("ignored")
        .with_note(why)
        .with_help(help),
    );
}

/// `sticky cache period|size`; false when `d` is not one of them.
pub(super) fn sticky(
    d: &Directive,
    scope: &mut Scope,
    m: &mut StickyModel,
    cx: &mut Cx<'_>,
) -> bool {
    match d.key.node {
        Key::StickyCachePeriod => scope.scalar(d, values::seconds_u32, &mut m.period, cx),
        Key::StickyCacheSize => scope.scalar(d, sticky_size, &mut m.size, cx),
        _ => return false,
    }
    true
}

/// E0060 for a size of 0 or over the most a cache may hold.
fn sticky_size(v: &Sp<Value>) -> values::Parsed<u32> {
    let n = values::number(v, 0, u64::MAX)?;
    if (1..=u64::from(MAX_STICKY_SIZE)).contains(&n) {
        return Ok(n as u32);
    }
    values::fail(
        Diagnostic::error(
            Code::InvalidSticky,
            v.span,
            format!("a sticky cache of {n} entries"),
        )
        .with_label(format!("expected 1 to {MAX_STICKY_SIZE} entries"))
        .with_help("remove it for the default, 1024 entries; `sticky cache period = 0` turns the cache off"),
    )
}

/// A size without a period: E0041 (the cache is off without a period).
pub(super) fn sticky_done(m: &StickyModel, cx: &mut Cx<'_>) {
    if let (None, Some(size)) = (&m.period, &m.size) {
        cx.push(
            Diagnostic::warning(
                Code::Ignored,
                size.span,
                "`sticky cache size` without `sticky cache period` has no effect",
            )
            .with_label("the cache is off")
            .with_help("add `sticky cache period = SECONDS` to turn it on"),
        );
    }
}
