//! `balance = least-conn|source|source sticky` (docs/balance.md): its value
//! (E0086), and how it goes with the sticky caches and the listeners (E0087 to
//! E0089).

use super::model::{Bind, RelayModel, SpawndModel, StickyModel};
use super::scope::Cx;
use super::values::{fail, Parsed};
use crate::ast::{Sp, Value};
use crate::diag::{Code, Diagnostic};
use crate::suggest;
use tcprelay_plan::Balance;

/// The methods as written, with their meaning.
const METHODS: [(&str, Balance); 3] = [
    ("least-conn", Balance::LeastConn),
    ("source", Balance::Source),
    ("source sticky", Balance::SourceSticky),
];

/// The value of a `balance` directive (in the tcprelay section, or in a `route`
/// block): `least-conn`, `source` or `source sticky` (any case, the two words of
/// the last separated by any white space); else E0086, with the name of another
/// balancer's method read as the one that does the same here.
pub(crate) fn check_balance(v: &Sp<Value>) -> Parsed<Balance> {
    let text = v.node.text.split_whitespace().collect::<Vec<_>>().join(" ");
    let lower = text.to_ascii_lowercase();
    if let Some((_, b)) = METHODS.iter().find(|(name, _)| *name == lower) {
        return Ok(*b);
    }
    // What HAProxy, nginx and Envoy call their methods.
    let like = match lower.replace(['_', '-'], "").as_str() {
        "leastconn" | "leastconnections" | "leastrequest" | "leastreq" => Some("least-conn"),
        "roundrobin" | "rr" | "random" | "first" => Some("least-conn"),
        "hash" | "iphash" | "consistent" | "ringhash" | "maglev" | "sourceip" | "src" => {
            Some("source")
        }
        _ => None,
    }
    .or_else(|| suggest::closest(&lower, METHODS.iter().map(|(n, _)| *n)));
    let d = Diagnostic::error(
        Code::UnknownBalance,
        v.span,
        format!("`{text}` is not a balancing method"),
    )
    .with_label("expected `least-conn`, `source` or `source sticky`")
    .with_note("`least-conn`: the remote with the fewest sessions of the worker for its weight (the default); `source`: a consistent hash of the client's address, the same remote from every worker and relay; `source sticky`: `source`, then the sticky cache keeps the client on its remote");
    fail(match like {
        Some(best) => d.with_help(format!("did you mean `{best}`?")),
        None => d.with_help("write `least-conn`, `source` or `source sticky`"),
    })
}

/// Whether a sticky cache is on (a period above 0).
fn on(s: &StickyModel) -> bool {
    s.period.as_ref().is_some_and(|p| p.node > 0)
}

/// E0087 (error): `source sticky` with no sticky cache anywhere; E0088 (warning):
/// `source` with a sticky cache, which then keeps only the client's worker; E0089
/// (warning): a `source` method where no listener gives a client address.
pub(super) fn with_listeners(spawnd: Option<&SpawndModel>, relay: &RelayModel, cx: &mut Cx<'_>) {
    let (Some(balance), Some(spawnd)) = (&relay.balance, spawnd) else {
        return;
    };
    let caches: Vec<&StickyModel> = std::iter::once(&spawnd.sticky)
        .chain(spawnd.listeners.iter().map(|l| &l.sticky))
        .filter(|s| on(s))
        .collect();
    match balance.node {
        Balance::SourceSticky if caches.is_empty() => cx.push(
            Diagnostic::error(
                Code::SourceStickyWithoutCache,
                balance.span,
                "`balance = source sticky` needs a sticky cache",
            )
            .with_label("no listener has a sticky cache to keep its clients in")
            .with_note("the sticky cache records each client's remote; `source sticky` sends a client there first, and to its `source` choice when it has no entry or its remote cannot take it")
            .with_help("add `sticky cache period = 300` to the spawnd section (or a listener), or write `balance = source`"),
        ),
        Balance::Source => {
            if let Some(period) = caches.first().and_then(|s| s.period.as_ref()) {
                cx.push(
                    Diagnostic::warning(
                        Code::SourceWithStickyCache,
                        balance.span,
                        "`balance = source` does not use the sticky cache's remote",
                    )
                    .with_label("each client goes to the remote its address hashes to")
                    .with_secondary(period.span, "this cache still keeps a client on its worker, not on its remote")
                    .with_help("write `balance = source sticky` for the cache to keep clients on their remote while the remotes change, or remove the sticky cache"),
                );
            }
        }
        _ => {}
    }
    if balance.node != Balance::LeastConn
        && !spawnd.listeners.is_empty()
        && spawnd
            .listeners
            .iter()
            .all(|l| matches!(l.bind, Bind::Unix { .. }) && l.proxy.accepted().is_none())
    {
        cx.push(
            Diagnostic::warning(
                Code::SourceWithoutAddress,
                balance.span,
                format!("`balance = {}` without a client address", balance.node),
            )
            .with_label("every listener is a Unix-domain socket without `accept proxy`")
            .with_note("a client of a Unix-domain socket has no address to hash: it is balanced by least connections")
            .with_help("accept PROXY headers on the listener (`accept proxy = v2`) to balance by the address they carry, or write `balance = least-conn`"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ast::Span;

    fn v(text: &str) -> Sp<Value> {
        Sp::new(Value::word(text), Span::new(0, text.len()))
    }

    #[test]
    fn the_three_methods_in_any_case_and_spacing() {
        assert_eq!(check_balance(&v("least-conn")).unwrap(), Balance::LeastConn);
        assert_eq!(check_balance(&v("Source")).unwrap(), Balance::Source);
        assert_eq!(
            check_balance(&v("source  \tSTICKY")).unwrap(),
            Balance::SourceSticky
        );
    }

    #[test]
    fn other_balancers_names_are_read_as_ours() {
        for (written, meant) in [
            ("leastconn", "least-conn"),
            ("least_conn", "least-conn"),
            ("roundrobin", "least-conn"),
            ("hash", "source"),
            ("maglev", "source"),
            ("ring_hash", "source"),
            ("sorce", "source"),
        ] {
            let d = check_balance(&v(written)).unwrap_err();
            assert_eq!(d.code, Code::UnknownBalance);
            assert_eq!(
                d.help.as_deref(),
                Some(format!("did you mean `{meant}`?").as_str()),
                "{written}"
            );
        }
        let d = check_balance(&v("banana")).unwrap_err();
        assert_eq!(
            d.help.as_deref(),
            Some("write `least-conn`, `source` or `source sticky`")
        );
    }

    /// A configuration of one section `relay` that plays both roles.
    fn compile(body: &str) -> crate::Compiled {
        let src = format!("id = relay {{\n listen = {{ port = 8080 }}\n{body}\n remote = {{ address = 192.0.2.1 port = 80 }}\n remote = {{ address = 192.0.2.2 port = 80 }}\n}}\n");
        let selection = crate::Selection {
            spawnd_id: "relay".into(),
            tcprelay_id: "relay".into(),
        };
        crate::compile_with(&src, "t.cfg", &selection, &|_| None)
    }

    fn codes(c: &crate::Compiled) -> Vec<Code> {
        c.diags.iter().map(|d| d.code).collect()
    }

    #[test]
    fn source_sticky_is_two_words_unless_sticky_starts_a_cache_directive() {
        let c = compile(" balance = source sticky\n sticky cache period = 60");
        assert_eq!(codes(&c), []);
        assert_eq!(c.plan.unwrap().relay.balance, Balance::SourceSticky);
        // On one line, `sticky cache` is the next directive: `source` and a cache.
        let c = compile(" balance = source sticky cache period = 60");
        assert_eq!(codes(&c), [Code::SourceWithStickyCache]);
        let plan = c.plan.unwrap();
        assert_eq!(plan.relay.balance, Balance::Source);
        assert!(plan.spawnd.sticky.is_some());
        let c = compile(" balance = \"source sticky\"\n sticky cache period = 60");
        assert_eq!(c.plan.unwrap().relay.balance, Balance::SourceSticky);
        let c = compile("");
        assert_eq!(c.plan.unwrap().relay.balance, Balance::LeastConn);
    }

    #[test]
    fn source_sticky_needs_a_cache_and_source_warns_of_one() {
        let c = compile(" balance = source sticky");
        assert_eq!(codes(&c), [Code::SourceStickyWithoutCache]);
        assert!(c.plan.is_none());
        let c = compile(" balance = source");
        assert_eq!(codes(&c), []);
        assert_eq!(c.plan.unwrap().relay.balance, Balance::Source);
        let c = compile(" balance = least-conn\n sticky cache period = 60");
        assert_eq!(codes(&c), []);
        let c = compile(" balance = leastconn");
        assert_eq!(codes(&c), [Code::UnknownBalance]);
    }
}
