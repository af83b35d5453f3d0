//! The spawnd section: listeners, the `spawn { }` process settings and the
//! section-level directives of spawnd.

use super::common;
use super::control;
use super::listen;
use super::model::{SpawnModel, SpawndModel};
use super::scope::{positive, Cx, Scope};
use super::values;
use super::SectionRole;
use crate::ast::{Directive, Key, Section, Sp, Span};
use crate::diag::{Code, Diagnostic};
use tcprelay_plan::{defaults, AclRule, OsText};

/// The keys valid inside `spawn { }`.
pub(super) const SPAWN_VALID: &[Key] = &[
    Key::UsersMin,
    Key::UsersMax,
    Key::ServersMin,
    Key::ServersMax,
    Key::InstancesMin,
    Key::InstancesMax,
    Key::Exec,
    Key::Overload,
    Key::SpawnId,
    Key::Config,
    Key::Userid,
    Key::Groupid,
    Key::WorkingDirectory,
    Key::IpcKey,
    Key::StickyCachePeriod,
    Key::StickyCacheSize,
];

/// Checks the spawnd section. Directives of the tcprelay role were reported (or, when
/// one section plays both roles, are left to the tcprelay check).
pub(super) fn section(
    sec: &Section,
    role: &SectionRole<'_>,
    tcprelay_id: &str,
    cx: &mut Cx<'_>,
) -> SpawndModel {
    let mut m = SpawndModel::default();
    let mut scope = Scope::default();
    let mut spawn_scope = Scope::default();
    let mut listen_blocks = 0usize;
    for d in &sec.body {
        let d: &Directive = &d.node;
        if !role.admits(&d.key, cx) {
            continue;
        }
        if let Some(in_spawn) = spawn_in_section(d, cx) {
            spawn(&[in_spawn], &mut spawn_scope, &mut m, cx);
            continue;
        }
        cx.deprecated(&d.key);
        match d.key.node {
            Key::Listen => {
                listen_blocks += 1;
                if let Some(body) = cx.block(d) {
                    m.listeners.extend(listen::listener(d.key.span, body, cx));
                }
            }
            Key::Spawn => {
                if let Some(body) = cx.block(d) {
                    spawn(body, &mut spawn_scope, &mut m, cx);
                }
            }
            Key::Control => {
                if let Some(c) = control::control(d, &mut scope, cx) {
                    m.control = Some(c);
                }
            }
            Key::Metrics => {
                if let Some(metrics) = control::metrics(d, &mut scope, cx) {
                    m.metrics = Some(metrics);
                }
            }
            Key::Acl { permit, negate }
            | Key::AclShort { permit, negate }
            | Key::AclRule { permit, negate } => {
                cx.short_form(d);
                if let Some(v) = cx.value(d) {
                    if let Some(net) = cx.take(v, values::network(v)) {
                        let (network, prefix) = net.node;
                        let rule = AclRule {
                            permit,
                            negate,
                            network,
                            prefix,
                        };
                        m.acl.push(Sp::new(rule, net.span));
                    }
                }
            }
            _ => scalar(d, &mut scope, &mut m, cx),
        }
    }
    if listen_blocks == 0 {
        cx.push(
            Diagnostic::error(
                Code::NoListener,
                role.id.span,
                format!("no listener in section `{}`", role.id.node.text),
            )
            .with_label("this section has no `listen`")
            .with_help("add `listen = { port = N }`"),
        );
    }
    lift_bufsize(&mut m, cx);
    listen::overlaps(&m.listeners, cx);
    if let Some(metrics) = &m.metrics {
        control::metrics_against_listeners(metrics, &m.listeners, cx);
    }
    spawn_ranges(&m.spawn, cx);
    common::sticky_done(&m.sticky, cx);
    if let Some(id) = &m.spawn.id {
        spawn_id(id, tcprelay_id, cx);
    }
    m
}

/// `spawn { id = NAME }`: the section ids are chosen on the command line, which
/// wins; E0068 when the file names another section than the one selected.
fn spawn_id(id: &Sp<String>, tcprelay_id: &str, cx: &mut Cx<'_>) {
    if id.node == tcprelay_id {
        return;
    }
    cx.push(
        Diagnostic::warning(
            Code::OtherRelaySection,
            id.span,
            format!(
                "`id = {}` names another tcprelay section than the one selected, `{tcprelay_id}`",
                id.node
            ),
        )
        .with_label("not the section read")
        .with_note("the sections are selected on the command line, which wins over `spawn { id }`")
        .with_help(format!(
            "select it on the command line (`tcprelay-cc check FILE SPAWND_ID {}`), or remove this line",
            id.node
        )),
    );
}

/// The section-level scalar directives of spawnd.
fn scalar(d: &Directive, scope: &mut Scope, m: &mut SpawndModel, cx: &mut Cx<'_>) {
    match d.key.node {
        Key::Background => scope.scalar(d, values::boolean, &mut m.background, cx),
        Key::Pidfile | Key::PidFile => {
            scope.scalar(d, |v| os_name(v, "the pidfile path"), &mut m.pidfile, cx)
        }
        Key::TcpBufsize => scope.scalar(d, bufsize, &mut m.tcp_bufsize, cx),
        Key::SingleProcess => {
            scope.scalar(d, values::boolean, &mut m.single_process, cx);
            if m.single_process.as_ref().is_some_and(|v| v.node) {
                cx.push(
                    Diagnostic::warning(
                        Code::Ignored,
                        d.key.span,
                        "`single process = yes` has no effect in tcprelay",
                    )
                    .with_label("ignored: the relay always runs in worker processes")
                    .with_help(
                        "for one worker, write `spawn = { servers min = 1 servers max = 1 }`",
                    ),
                );
            }
        }
        Key::User | Key::Userid => {
            scope.scalar(d, |v| os_name(v, "the user name"), &mut m.user, cx)
        }
        Key::Group | Key::Groupid => {
            scope.scalar(d, |v| os_name(v, "the group name"), &mut m.group, cx)
        }
        Key::WorkingDirectory => scope.scalar(
            d,
            |v| os_name(v, "the working directory"),
            &mut m.working_directory,
            cx,
        ),
        Key::BindRetryDelay => scope.scalar(d, values::seconds_u32, &mut m.bind_retry_delay, cx),
        Key::Overload => {
            scope.scalar(d, values::overload, &mut m.overload, cx);
        }
        Key::LogFormat => scope.scalar(d, values::log_format, &mut m.log_format, cx),
        _ if listen::keepalive_directive(d, scope, &mut m.keepalive, cx) => {}
        _ if common::sticky(d, scope, &mut m.sticky, cx) => {}
        _ if common::directive(
            d,
            scope,
            common::Common {
                syslog: &mut m.syslog,
                debug: &mut m.debug,
                proctitle: &mut m.proctitle,
            },
            cx,
        ) => {}
        // `SectionRole::admits` let only spawnd and either-role keys through, and
        // every one of them is handled above.
        _ => debug_assert!(false, "unhandled spawnd key {:?}", d.key.node),
    }
}

/// One `spawn { }` block; several blocks share one scope. `userid`, `groupid` and
/// `working directory` there are the section's `user`, `group` and `working
/// directory` (the workers' settings), and its sticky cache is the section's.
/// `exec` or `id` written in the section itself (the spawnd manual's snippet): the
/// directive as `spawn` holds it, and E0040 for `id` (`exec` has no effect anyway).
fn spawn_in_section(d: &Directive, cx: &mut Cx<'_>) -> Option<Sp<Directive>> {
    let key = match d.key.node {
        Key::SectionExec => Key::Exec,
        Key::SectionId => Key::SpawnId,
        _ => return None,
    };
    let text = match &d.body {
        crate::ast::Body::Value(v) => v.node.text.clone(),
        _ => String::new(),
    };
    // (`exec` has no effect here at all: `spawn`'s handler says so, once.)
    if key == Key::SpawnId {
        cx.push(
            Diagnostic::warning(
                Code::Deprecated,
                d.key.span,
                format!("`{}` belongs in `spawn`", d.key.node),
            )
            .with_label("taken as `spawn`'s")
            .with_help(format!("write `spawn = {{ {} = {text} }}`", d.key.node)),
        );
    }
    let span = d.key.span;
    Some(Sp::new(
        Directive {
            key: Sp::new(key, span),
            body: d.body.clone(),
        },
        span,
    ))
}

fn spawn(body: &[Sp<Directive>], scope: &mut Scope, section: &mut SpawndModel, cx: &mut Cx<'_>) {
    for d in body {
        let d: &Directive = &d.node;
        let max = u64::from(u32::MAX);
        let m = &mut section.spawn;
        if matches!(
            d.key.node,
            Key::UsersMinimum | Key::UsersMaximum | Key::InstancesMinimum | Key::InstancesMaximum
        ) {
            cx.deprecated(&d.key);
        }
        match d.key.node {
            Key::SpawnId => scope.scalar(d, super::scope::string, &mut m.id, cx),
            Key::Userid => scope.scalar(d, |v| os_name(v, "the user name"), &mut section.user, cx),
            Key::Groupid => {
                scope.scalar(d, |v| os_name(v, "the group name"), &mut section.group, cx)
            }
            Key::WorkingDirectory => scope.scalar(
                d,
                |v| os_name(v, "the working directory"),
                &mut section.working_directory,
                cx,
            ),
            Key::Config | Key::IpcKey => {
                scope.set(&d.key, cx);
                common::ignored(&d.key, cx);
            }
            _ if common::sticky(d, scope, &mut section.sticky, cx) => {}
            Key::UsersMin | Key::UsersMinimum => {
                scope.scalar(d, values::u32_value, &mut m.users_min, cx)
            }
            Key::ServersMin | Key::InstancesMin | Key::InstancesMinimum => scope.scalar(
                d,
                |v| values::number(v, 0, u64::from(tcprelay_plan::MAX_WORKERS)).map(|n| n as u32),
                &mut m.servers_min,
                cx,
            ),
            Key::UsersMax | Key::UsersMaximum => scope.scalar(
                d,
                |v| {
                    positive(v, max, |s| zero_max(s, "users max", "serve no connection"))
                        .map(|n| n as u32)
                },
                &mut m.users_max,
                cx,
            ),
            Key::ServersMax | Key::InstancesMax | Key::InstancesMaximum => scope.scalar(
                d,
                |v| {
                    positive(v, u64::from(tcprelay_plan::MAX_WORKERS), |s| {
                        zero_max(s, &canonical_spelling(d.key.node), "start no worker")
                    })
                    .map(|n| n as u32)
                },
                &mut m.servers_max,
                cx,
            ),
            Key::Overload => {
                scope.scalar(d, values::overload, &mut m.overload, cx);
            }
            Key::Exec => {
                cx.push(
                    Diagnostic::warning(
                        Code::Ignored,
                        d.key.span,
                        "spawnd is built into tcprelay; `exec` has no effect",
                    )
                    .with_label("ignored")
                    .with_help("remove this line"),
                );
            }
            _ => cx.misplaced(&d.key, "in a `spawn` block", SPAWN_VALID),
        }
    }
}

/// The spelling a deprecated key stands for.
fn canonical_spelling(key: Key) -> String {
    key.replacement().unwrap_or(key).to_string()
}

/// A path or an account name, which the system takes as a C string: E0046 when it
/// is empty or holds a NUL byte.
fn os_name(v: &Sp<crate::ast::Value>, what: &str) -> values::Parsed<String> {
    values::os_string(v, what, OsText::check_name)
}

fn zero_max(span: Span, what: &str, would: &str) -> Diagnostic {
    Diagnostic::error(
        Code::ZeroCount,
        span,
        format!("`{what}` must be at least 1"),
    )
    .with_label(format!("with 0, tcprelay would {would}"))
}

/// `tcp bufsize = N`: bytes, 1 to `i32::MAX` (what `setsockopt` takes).
pub(super) fn bufsize(v: &Sp<crate::ast::Value>) -> values::Parsed<u32> {
    values::number(v, 1, i32::MAX as u64).map(|n| n as u32)
}

/// A `tcp bufsize` written in `listen` blocks (the spawnd manual's place) is the
/// relay's: taken when the section has none; a second, different value is E0028
/// naming both.
fn lift_bufsize(m: &mut SpawndModel, cx: &mut Cx<'_>) {
    for l in &m.listeners {
        let Some(value) = &l.tcp_bufsize else {
            continue;
        };
        match &m.tcp_bufsize {
            None => m.tcp_bufsize = Some(value.clone()),
            Some(first) if first.node == value.node => {}
            Some(first) => cx.push(
                Diagnostic::error(
                    Code::DuplicateDirective,
                    value.span,
                    format!(
                        "`tcp bufsize` is {} here and {} before: the relay has one",
                        value.node, first.node
                    ),
                )
                .with_label("a second value")
                .with_secondary(first.span, "the first")
                .with_help("write one `tcp bufsize` in the spawnd section"),
            ),
        }
    }
}

/// E0036 and E0037: a minimum written above its maximum (written or the default).
fn spawn_ranges(m: &SpawnModel, cx: &mut Cx<'_>) {
    let pairs = [
        (
            Code::UsersRange,
            "users",
            (&m.users_min, defaults::USERS_MIN),
            (&m.users_max, defaults::USERS_MAX),
        ),
        (
            Code::ServersRange,
            "servers",
            (&m.servers_min, defaults::SERVERS_MIN),
            (&m.servers_max, defaults::SERVERS_MAX),
        ),
    ];
    for (code, what, (min, min_default), (max, max_default)) in pairs {
        let lo = min.as_ref().map_or(min_default, |s| s.node);
        let hi = max.as_ref().map_or(max_default, |s| s.node);
        if lo <= hi || hi == 0 {
            continue;
        }
        let message = format!("`{what} min` ({lo}) is greater than `{what} max` ({hi})");
        let d = match (min, max) {
            (Some(min), Some(max)) => Diagnostic::error(code, min.span, message)
                .with_secondary(max.span, format!("`{what} max` is {hi}")),
            (Some(min), None) => Diagnostic::error(code, min.span, message)
                .with_note(format!("`{what} max` defaults to {hi}")),
            // A minimum left to its default follows a lower maximum (lowered by
            // `lower`): `users max = 3` alone means 3 and 3.
            (None, _) => continue,
        };
        cx.push(
            d.with_label(format!("`{what} min` must not exceed `{what} max`"))
                .with_help(format!("lower `{what} min` or raise `{what} max`")),
        );
    }
}
