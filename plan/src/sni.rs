//! Routing by the server name (SNI) of a TLS client's ClientHello: the pure
//! decisions the workers make and `tcprelay-cc route --sni` explains
//! ([docs/sni.md](../../docs/sni.md)).
//!
//! A relay with [`Relay::routes`] routes the clients of its TLS listeners: the
//! route whose names hold the client's server name exactly, else the route with
//! the wildcard `*.SUFFIX` where the name is one label and `SUFFIX` (as a
//! certificate's wildcard: `*.example.com` matches `a.example.com`, neither
//! `example.com` nor `a.b.example.com`), else the default route: the route without
//! names, or the remotes of no route. Names are compared lowercase, a final dot
//! ignored.

use crate::{Relay, RouteMode};
use std::fmt;

/// The most routes a relay may have (the workers keep a session's route in 16
/// bits).
pub const MAX_ROUTES: usize = 4096;

/// Why a client has no route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unrouted {
    /// The ClientHello names no server, and there is no default route.
    NoServerName,
    /// No route has the name, and there is no default route.
    UnknownName,
}

impl Unrouted {
    /// A short name for counters, records and tests.
    pub fn name(self) -> &'static str {
        match self {
            Unrouted::NoServerName => "no_sni",
            Unrouted::UnknownName => "unknown_sni",
        }
    }
}

impl fmt::Display for Unrouted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Unrouted::NoServerName => "no server name (SNI) and no default route",
            Unrouted::UnknownName => "a server name (SNI) no route has, and no default route",
        })
    }
}

/// A name as the routes compare it: lowercase, without a final dot.
pub fn normalize(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

/// Whether `pattern` (a route's name) matches the normalized `name`.
pub fn matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(suffix) => name
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
        None => pattern == name,
    }
}

/// The default route: `Some(Some(i))` the route without names, `Some(None)` the
/// remotes of no route, `None` there is none.
pub fn default_route(relay: &Relay) -> Option<Option<u32>> {
    if let Some(i) = relay.routes.iter().position(|r| r.names.is_empty()) {
        return Some(Some(i as u32));
    }
    let unrouted = relay.remotes.iter().any(|r| r.route.is_none())
        || relay.discovered.iter().any(|d| d.template.route.is_none());
    unrouted.then_some(None)
}

/// The route of a client whose ClientHello named `name` (`None`: no SNI): the
/// index of the route whose remotes it gets (`None`: the remotes of no route).
pub fn choose(relay: &Relay, name: Option<&str>) -> Result<Option<u32>, Unrouted> {
    let Some(name) = name else {
        return default_route(relay).ok_or(Unrouted::NoServerName);
    };
    let name = normalize(name);
    let exact = relay.routes.iter().position(|r| r.names.contains(&name));
    let wildcard = || {
        relay.routes.iter().position(|r| {
            r.names
                .iter()
                .any(|n| n.starts_with("*.") && matches(n, &name))
        })
    };
    match exact.or_else(wildcard) {
        Some(i) => Ok(Some(i as u32)),
        None => default_route(relay).ok_or(Unrouted::UnknownName),
    }
}

/// What route `route` does with the client's TLS (the remotes of no route:
/// terminate).
pub fn mode(relay: &Relay, route: Option<u32>) -> RouteMode {
    route
        .and_then(|i| relay.routes.get(i as usize))
        .map_or(RouteMode::Terminate, |r| r.mode)
}

/// Whether the section's `tls` certificate is needed: some route that terminates
/// (the remotes of no route among them) has no certificate of its own. Without
/// routes, every TLS listener terminates with it.
pub fn section_certificate_needed(relay: &Relay) -> bool {
    if relay.routes.is_empty() {
        return true;
    }
    let unrouted = relay.remotes.iter().any(|r| r.route.is_none())
        || relay.discovered.iter().any(|d| d.template.route.is_none());
    unrouted
        || relay
            .routes
            .iter()
            .any(|r| r.mode == RouteMode::Terminate && r.tls.is_none())
}

/// Why `pattern` cannot be a route's name, if it cannot: lowercase labels of
/// letters, digits, `-` and `_`, without a final dot, at most 253 characters, the
/// first label `*` for a wildcard.
pub fn name_problem(pattern: &str) -> Option<&'static str> {
    let name = pattern.strip_prefix("*.").unwrap_or(pattern);
    if name.is_empty() {
        return Some("it is empty");
    }
    if pattern.len() > 253 {
        return Some("it is longer than 253 characters");
    }
    if name.ends_with('.') {
        return Some("it ends with a dot");
    }
    if name.contains('*') {
        return Some("a wildcard is `*.` followed by a name: `*` must be the whole first label");
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Some("it has an empty label (two dots in a row, or a dot first)");
        }
        if label.len() > 63 {
            return Some("a label is longer than 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return Some(
                "it has a character other than lowercase letters, digits, `-`, `_` and `.`",
            );
        }
    }
    None
}

/// The routes' broken invariants, in an operator's words.
pub(crate) fn problems(relay: &Relay) -> Vec<String> {
    let mut out = Vec::new();
    let count = relay.routes.len();
    if count > MAX_ROUTES {
        out.push(format!(
            "{count} routes: a relay may have at most {MAX_ROUTES}"
        ));
    }
    let mut seen: Vec<&str> = Vec::new();
    for (i, route) in relay.routes.iter().enumerate() {
        let n = i + 1;
        for name in &route.names {
            if let Some(why) = name_problem(name) {
                out.push(format!("route {n}: `{name}` is not a route name: {why}"));
            }
            if seen.contains(&name.as_str()) {
                out.push(format!("route {n}: `{name}` is in an earlier route too"));
            }
            seen.push(name);
        }
        let served = relay.remotes.iter().any(|r| r.route == Some(i as u32))
            || relay
                .discovered
                .iter()
                .any(|d| d.template.route == Some(i as u32));
        if !served {
            out.push(format!("route {n} has no remote"));
        }
        if route.mode == RouteMode::Passthrough {
            if route.tls.is_some() {
                out.push(format!(
                    "route {n} passes TLS through and has a certificate of its own"
                ));
            }
            let tls_remote = relay
                .remotes
                .iter()
                .any(|r| r.route == Some(i as u32) && r.tls.is_some());
            if tls_remote {
                out.push(format!(
                    "route {n} passes TLS through to a `tls = yes` remote (TLS inside TLS)"
                ));
            }
        }
    }
    if relay.routes.iter().filter(|r| r.names.is_empty()).count() > 1 {
        out.push("more than one route without a name (the default route)".to_string());
    }
    let nameless = relay.routes.iter().any(|r| r.names.is_empty());
    if nameless
        && (relay.remotes.iter().any(|r| r.route.is_none())
            || relay.discovered.iter().any(|d| d.template.route.is_none()))
    {
        out.push(
            "a route without a name and remotes outside any route: two default routes".to_string(),
        );
    }
    let routes = relay
        .remotes
        .iter()
        .map(|r| r.route)
        .chain(relay.discovered.iter().map(|d| d.template.route));
    for route in routes.flatten() {
        if route as usize >= count {
            out.push(format!(
                "a remote of route {}, which does not exist",
                route + 1
            ));
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Remote, Route};

    fn relay(routes: &[&[&str]], default_remotes: bool) -> Relay {
        let mut plan_relay = Relay::new(Vec::new());
        plan_relay.routes = routes
            .iter()
            .map(|names| Route {
                names: names.iter().map(|n| n.to_string()).collect(),
                mode: RouteMode::Terminate,
                tls: None,
                balance: None,
            })
            .collect();
        plan_relay.remotes = (0..routes.len())
            .map(|i| {
                let mut r = Remote::new(format!("127.0.0.1:{}", 1000 + i).parse().unwrap());
                r.route = Some(i as u32);
                r
            })
            .collect();
        if default_remotes {
            plan_relay
                .remotes
                .push(Remote::new("127.0.0.1:999".parse().unwrap()));
        }
        plan_relay
    }

    #[test]
    fn exact_names_win_over_wildcards_and_wildcards_take_one_label() {
        let r = relay(
            &[&["*.example.com"], &["a.example.com", "b.example.org"]],
            true,
        );
        assert_eq!(choose(&r, Some("a.example.com")), Ok(Some(1)));
        assert_eq!(choose(&r, Some("A.Example.COM.")), Ok(Some(1)));
        assert_eq!(choose(&r, Some("c.example.com")), Ok(Some(0)));
        // Not the bare suffix, not two labels.
        assert_eq!(choose(&r, Some("example.com")), Ok(None));
        assert_eq!(choose(&r, Some("x.c.example.com")), Ok(None));
        assert_eq!(choose(&r, None), Ok(None));
        assert!(problems(&r).is_empty(), "{:?}", problems(&r));
    }

    #[test]
    fn without_a_default_route_unknown_and_missing_names_are_refused() {
        let r = relay(&[&["a.example"]], false);
        assert_eq!(choose(&r, Some("b.example")), Err(Unrouted::UnknownName));
        assert_eq!(choose(&r, None), Err(Unrouted::NoServerName));
        // A route without names is the default.
        let r = relay(&[&["a.example"], &[]], false);
        assert_eq!(choose(&r, Some("b.example")), Ok(Some(1)));
        assert_eq!(choose(&r, None), Ok(Some(1)));
        assert_eq!(default_route(&r), Some(Some(1)));
    }

    #[test]
    fn broken_routes_are_problems() {
        let r = relay(&[&["a.example"], &["a.example", "B.example"]], false);
        let p = problems(&r);
        assert!(p.iter().any(|p| p.contains("earlier route")), "{p:?}");
        assert!(p.iter().any(|p| p.contains("not a route name")), "{p:?}");
        let r = relay(&[&[]], true);
        assert!(problems(&r)
            .iter()
            .any(|p| p.contains("two default routes")));
        let mut r = relay(&[&["a.example"]], false);
        r.remotes.clear();
        assert_eq!(problems(&r), vec!["route 1 has no remote".to_string()]);
    }

    #[test]
    fn route_names_are_checked() {
        assert_eq!(name_problem("db.example.com"), None);
        assert_eq!(name_problem("*.example.com"), None);
        for bad in [
            "",
            "*.",
            "a..b",
            "a.b.",
            "*a.example",
            "a.*.example",
            "A.example",
            "a b",
        ] {
            assert!(name_problem(bad).is_some(), "{bad:?}");
        }
    }
}
