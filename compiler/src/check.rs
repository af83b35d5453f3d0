//! The check stage: gives the selected sections' values their types and makes every
//! semantic diagnostic, producing a [`Model`] that keeps the spans.
//!
//! Which sections are checked is chosen on the command line ([`Selection`]); other
//! sections are only checked for duplicate ids. The check goes on after each problem
//! so that one run reports all of them, and it hands out a model only when it found
//! no error, so that lowering (the only way to build a plan) never sees a broken one.
//!
//! Submodules: `values` parses values, `scope` holds what every scope does alike,
//! `common` the directives the top level and both sections read alike (as every
//! program of the family does), `spawnd` and `listen` check the spawnd section,
//! `relay` the tcprelay section and the TLS material, `lints` the warnings about
//! valid configurations that do not do what they say, `model` defines the result.

mod balance;
mod certs;
mod common;
mod control;
mod dns;
mod health;
mod lints;
mod listen;
mod model;
mod proxy;
mod relay;
mod remote_tls;
mod routes;
mod scope;
mod services;
mod spawnd;
mod values;

#[cfg(test)]
mod cert_tests;
#[cfg(test)]
mod dns_tests;
#[cfg(test)]
mod family_tests;
#[cfg(test)]
mod tests;

pub use dns::normal as dns_normal;
pub use model::{
    AcceptProxyModel, Bind, CheckModel, CheckSetting, ControlModel, ExpectModel, KeepaliveModel,
    Keyed, ListenerModel, MetricsModel, Model, RelayModel, RemoteModel, RemoteTlsModel, RouteModel,
    SpawnModel, SpawndModel, StickyModel, SyslogModel, TlsModel, TopModel,
};
pub use model::{NameModel, ResolveModel, ResolversModel};
pub use values::{DebugMask, DEBUG_FLAGS};

use crate::ast::{self, Item, Key, Role, Section, Sp, Span, Value};
use crate::diag::lines::{ceil_char_boundary, floor_char_boundary};
use crate::diag::{self, Code, Diagnostic};
use crate::suggest;
use crate::Selection;
use scope::Cx;
use std::collections::HashMap;

/// Checks `file` for the sections `selection` names. `None` when the check reported
/// an error (its diagnostics are in `diags`).
pub fn check(
    file: &ast::File,
    selection: &Selection,
    diags: &mut Vec<Diagnostic>,
) -> Option<Model> {
    let start = diags.len();
    let mut cx = Cx { diags };
    let env = setenv(file, &mut cx);
    let top = top(file, &mut cx);
    let sections = index(file, &mut cx);
    let spawnd_sec = find(&sections, &selection.spawnd_id, file, &mut cx);
    let relay_sec = if selection.tcprelay_id == selection.spawnd_id {
        spawnd_sec
    } else {
        find(&sections, &selection.tcprelay_id, file, &mut cx)
    };
    let same = matches!((spawnd_sec, relay_sec), (Some(a), Some(b)) if std::ptr::eq(a, b));
    let spawnd = spawnd_sec.map(|sec| {
        let role = SectionRole {
            kind: Role::Spawnd,
            id: &sec.id,
            other_id: &selection.tcprelay_id,
            same,
        };
        spawnd::section(sec, &role, &selection.tcprelay_id, &mut cx)
    });
    let mut relay = relay_sec.map(|sec| {
        let role = SectionRole {
            kind: Role::Tcprelay,
            id: &sec.id,
            other_id: &selection.spawnd_id,
            same,
        };
        relay::section(sec, &role, &mut cx)
    });
    if let (Some(relay), Some(spawnd), true) = (&mut relay, &spawnd, same) {
        // One section, one `syslog`: it configures both roles.
        relay.syslog = spawnd.syslog.clone();
        relay.debug = None;
        relay.proctitle = None;
    }
    if let Some(relay) = &relay {
        let listeners = spawnd.as_ref().map(|s| s.listeners.as_slice());
        let needed = routes::section_certificate_needed(relay);
        relay::tls(
            listeners,
            &relay.tls,
            needed,
            &selection.tcprelay_id,
            &mut cx,
        );
        routes::tls(listeners, relay, &mut cx);
        for r in relay.remotes.iter().chain(&relay.discovered) {
            remote_tls::files(r, &mut cx);
        }
        if let Some(listeners) = listeners {
            proxy::loops(listeners, relay, &mut cx);
        }
        balance::with_listeners(spawnd.as_ref(), relay, &mut cx);
    }
    if let Some(spawnd) = &spawnd {
        proxy::spoofing(&spawnd.listeners, &mut cx);
    }
    if diag::has_errors(&cx.diags[start..]) {
        return None;
    }
    // The lints look at a configuration that is valid, never at one with errors.
    lints::run(file, spawnd.as_ref(), relay.as_ref(), &mut cx);
    let id = |sec: &Section| Sp::new(sec.id.node.text.clone(), sec.id.span);
    Some(Model {
        spawnd_id: id(spawnd_sec?),
        tcprelay_id: id(relay_sec?),
        env,
        spawnd: spawnd?,
        relay: relay?,
        top,
    })
}

/// The keys valid inside a block opened by `block` (`listen`, `spawn`, `remote`,
/// `check`, `control`, `metrics`), as the check of that block takes them; `None`
/// for a key that opens no block. The parser's "did you mean" suggests only these.
pub fn block_keys(block: Key) -> Option<&'static [Key]> {
    match block {
        Key::Listen => Some(listen::VALID),
        Key::Spawn => Some(spawnd::SPAWN_VALID),
        Key::Remote => Some(relay::REMOTE_VALID),
        Key::Check => Some(health::VALID),
        Key::Control => Some(control::CONTROL_VALID),
        Key::Metrics => Some(control::METRICS_VALID),
        Key::Resolvers => Some(dns::RESOLVERS_VALID),
        Key::Route => Some(routes::ROUTE_VALID),
        _ => None,
    }
}

/// The directives outside any section (`debug`, `syslog`, `proctitle`, and those
/// kept for compatibility).
fn top(file: &ast::File, cx: &mut Cx<'_>) -> TopModel {
    let mut m = TopModel::default();
    let mut scope = scope::Scope::default();
    for item in &file.items {
        let Item::Directive(d) = &item.node else {
            continue;
        };
        let c = common::Common {
            syslog: &mut m.syslog,
            debug: &mut m.debug,
            proctitle: &mut m.proctitle,
        };
        // The grammar takes only the common directives at top level.
        let known = common::directive(d, &mut scope, c, cx);
        debug_assert!(known, "unhandled top-level key {:?}", d.key.node);
    }
    m
}

/// The role a section is checked for, and what that means for each directive.
pub(super) struct SectionRole<'a> {
    /// `Role::Spawnd` or `Role::Tcprelay`.
    kind: Role,
    id: &'a Sp<Value>,
    /// The id selected for the other role.
    other_id: &'a str,
    /// Whether one section plays both roles: then the spawnd check takes the shared
    /// directives and the tcprelay check only its own.
    same: bool,
}

impl SectionRole<'_> {
    /// Whether the check for this role handles `key`. Reports a directive of the
    /// other role (E0012) and one that belongs inside a block.
    fn admits(&self, key: &Sp<Key>, cx: &mut Cx<'_>) -> bool {
        let reports_shared = !(self.same && self.kind == Role::Tcprelay);
        match key.node.role() {
            Role::Nested => {
                if reports_shared {
                    nested_at_top(key, cx);
                }
                false
            }
            Role::Either => reports_shared,
            role if role == self.kind => true,
            _ if self.same => false,
            role => {
                let (role_name, this_name) = match role {
                    Role::Tcprelay => ("tcprelay", "spawnd"),
                    _ => ("spawnd", "tcprelay"),
                };
                cx.push(
                    Diagnostic::error(
                        Code::WrongSection,
                        key.span,
                        format!(
                            "`{}` is a {role_name} directive, but section `{}` is the {this_name} section",
                            key.node, self.id.node.text
                        ),
                    )
                    .with_label(format!("not a {this_name} directive"))
                    .with_help(format!("move it into section `{}`", self.other_id)),
                );
                false
            }
        }
    }
}

/// E0066: a host name with several addresses gives a `what` (listener or remote) for
/// each; the warning names them.
fn several_addresses(v: &Sp<Value>, ips: &[std::net::IpAddr], what: &str, cx: &mut Cx<'_>) {
    if ips.len() < 2 {
        return;
    }
    let list: Vec<String> = ips.iter().map(|ip| ip.to_string()).collect();
    cx.push(
        Diagnostic::warning(
            Code::SeveralAddresses,
            v.span,
            format!("`{}` has {} addresses: one {what} for each", v.node.text, ips.len()),
        )
        .with_label(format!("{what}s on {}", list.join(", ")))
        .with_note("host names are resolved when the configuration is compiled, as the original resolved them at start")
        .with_help("write one IP address if one is meant"),
    );
}

/// A block-only directive written directly in a section.
fn nested_at_top(key: &Sp<Key>, cx: &mut Cx<'_>) {
    use Key::*;
    let blocks = match key.node {
        Weight | TlsSni | TlsVerify | TlsCaFile | Srv => "a `remote = { ... }` block",
        Nameserver | Attempts => "a `resolvers = { ... }` block",
        Sni | Balance => "a `route = { ... }` block",
        Address | Port | Protocol | BareAddress => {
            "a `listen = { ... }` or `remote = { ... }` block"
        }
        UsersMin | UsersMax | ServersMin | ServersMax | InstancesMin | InstancesMax | Exec => {
            "a `spawn = { ... }` block"
        }
        _ => "a `listen = { ... }` block",
    };
    cx.push(
        Diagnostic::error(
            Code::UnexpectedToken,
            key.span,
            format!("`{}` is not valid directly in a section", key.node),
        )
        .with_label("not valid here")
        .with_help(format!("move it into {blocks}")),
    );
}

/// The sections by id, the first of each id; E0011 for a repeated id.
fn index<'f>(file: &'f ast::File, cx: &mut Cx<'_>) -> HashMap<&'f str, &'f Section> {
    let mut sections: HashMap<&str, &Section> = HashMap::new();
    for item in &file.items {
        let Item::Section(sec) = &item.node else {
            continue;
        };
        match sections.get(sec.id.node.text.as_str()) {
            Some(first) => cx.push(
                Diagnostic::error(
                    Code::DuplicateSection,
                    sec.id.span,
                    format!("section `{}` is defined twice", sec.id.node.text),
                )
                .with_label("second definition")
                .with_secondary(first.id.span, "first defined here")
                .with_help("rename one of them or merge them"),
            ),
            None => {
                sections.insert(&sec.id.node.text, sec);
            }
        }
    }
    sections
}

/// The selected section `id`; E0010 when the file has none.
fn find<'f>(
    sections: &HashMap<&'f str, &'f Section>,
    id: &str,
    file: &'f ast::File,
    cx: &mut Cx<'_>,
) -> Option<&'f Section> {
    if let Some(sec) = sections.get(id) {
        return Some(sec);
    }
    let ids: Vec<&Sp<Value>> = file
        .items
        .iter()
        .filter_map(|i| match &i.node {
            Item::Section(s) => Some(&s.id),
            // A section skipped for its id may be the one meant, misspelt.
            Item::Skipped { id, .. } => Some(id),
            _ => None,
        })
        .collect();
    let span = ids.first().map_or(Span::new(0, 0), |s| s.span);
    let mut d = Diagnostic::error(
        Code::UnknownSection,
        span,
        format!("no section `{id}` in this file"),
    );
    if !ids.is_empty() {
        d = d.with_label("the file's sections start here");
    }
    let names = || ids.iter().map(|s| s.node.text.as_str());
    d = match suggest::closest(id, names()) {
        Some(best) => d.with_help(format!("did you mean `{best}`?")),
        None if ids.is_empty() => d.with_help(format!("add a section `id = {id} {{ ... }}`")),
        None => {
            let mut list: Vec<String> = names().map(|n| format!("`{n}`")).collect();
            list.dedup();
            d.with_help(format!("the sections in this file are {}", list.join(", ")))
        }
    };
    cx.push(d.with_note("the section ids are selected on the command line"));
    None
}

/// The top-level `setenv`s, checked, each name once with its last value.
fn setenv(file: &ast::File, cx: &mut Cx<'_>) -> Vec<(Sp<String>, Sp<String>)> {
    let mut env: Vec<(Sp<String>, Sp<String>)> = Vec::new();
    let mut by_name: HashMap<&str, usize> = HashMap::new();
    for item in &file.items {
        let Item::Setenv { name, value } = &item.node else {
            continue;
        };
        if !setenv_ok(name, value, cx) {
            continue;
        }
        let value = Sp::new(value.node.text.clone(), value.span);
        match by_name.get(name.node.text.as_str()) {
            Some(&i) => {
                cx.push(
                    Diagnostic::warning(
                        Code::DuplicateDirective,
                        name.span,
                        format!("`setenv {}` is given twice", name.node.text),
                    )
                    .with_label("set again here")
                    .with_secondary(env[i].0.span, "first set here")
                    .with_note("the later value is used"),
                );
                env[i].1 = value;
            }
            None => {
                by_name.insert(&name.node.text, env.len());
                env.push((Sp::new(name.node.text.clone(), name.span), value));
            }
        }
    }
    env
}

/// E0042 for a name that is not an environment variable name, or a value of
/// `IO_POLL_MECHANISM` that selects no event mechanism; E0046 for a value the
/// system cannot take (a NUL byte).
fn setenv_ok(name: &Sp<Value>, value: &Sp<Value>, cx: &mut Cx<'_>) -> bool {
    let text = name.node.text.as_str();
    let mut chars = text.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        cx.push(
            Diagnostic::error(
                Code::InvalidSetenv,
                name.span,
                format!("`{text}` is not a valid environment variable name"),
            )
            .with_label("expected letters, digits and `_`, not starting with a digit"),
        );
        return false;
    }
    if text == "IO_POLL_MECHANISM"
        && !["1", "2", "4", "8", "16", "32", "64"].contains(&value.node.text.as_str())
    {
        cx.push(
            Diagnostic::error(
                Code::InvalidSetenv,
                value.span,
                format!("`{}` is not an event mechanism", value.node.text),
            )
            .with_label("expected 1, 2, 4, 8, 16, 32 or 64")
            .with_help(
                "4 = epoll, 8 = poll, 16 = select, 64 = io_uring (Linux); \
                 1 = kqueue (BSD/macOS); 2 = /dev/poll, 32 = event ports (Solaris)",
            ),
        );
        return false;
    }
    if let Err(problem) = tcprelay_plan::OsText::check_text(&value.node.text) {
        let what = format!("the value of `setenv {text}`");
        cx.push(values::not_for_the_os(
            value.span,
            Some(&value.node.text),
            &what,
            problem,
        ));
        return false;
    }
    true
}

/// `src` with the text under `spans` masked: every character but line breaks
/// becomes `*`, as many as it has bytes, so that every other span still points at
/// the same text and every line keeps its number. Spans may overlap, come
/// in any order and reach past the end; ends inside a character are widened to it.
pub fn redact(src: &str, spans: &[Span]) -> String {
    let mut ranges: Vec<(usize, usize)> = spans
        .iter()
        .map(|s| (s.start.min(src.len()), s.end.min(src.len())))
        .filter(|(start, end)| start < end)
        .collect();
    ranges.sort_unstable();
    let mut out = String::with_capacity(src.len());
    let mut done = 0;
    for (start, end) in ranges {
        let start = floor_char_boundary(src, start.max(done));
        if start >= end {
            continue;
        }
        out.push_str(&src[done..start]);
        let end = ceil_char_boundary(src, end);
        for c in src[start..end].chars() {
            if matches!(c, '\n' | '\r') {
                out.push(c);
            } else {
                out.extend(std::iter::repeat_n('*', c.len_utf8()));
            }
        }
        done = end;
    }
    out.push_str(&src[done..]);
    out
}
