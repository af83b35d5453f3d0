//! Lints: warnings about configurations that are valid but do not do what they say,
//! run once the check found no error (E0071–E0077, docs/diagnostics.md).
//!
//! - E0071 a remote that is one of the relay's own listeners (the `send proxy` case
//!   is E0049, an error, and never reported twice);
//! - E0072 an `acl` rule no client can reach, E0073 an `acl` that lets no client of
//!   a family a listener accepts in, both by exact set arithmetic over the address
//!   space the runtime's rules see (the runtime's `worker/acl.rs`);
//! - E0074 a remote a worker never chooses, found by running the workers' own
//!   selection ([`tcprelay_plan::balance::score`]) for a worker's `users max`;
//! - E0075 `retire` below `users max`, E0076 an idle timeout shorter than the connect
//!   timeout;
//! - E0077 a listener that overlaps one of another daemon's section of the file.

use super::model::{Bind, ListenerModel, RelayModel, SpawndModel};
use super::proxy;
use super::scope::Cx;
use super::values;
use crate::ast::{self, Item, Sp};
use crate::diag::{Code, Diagnostic};
use std::net::{IpAddr, SocketAddr};
use tcprelay_plan::{defaults, AclRule};

/// The sessions a worker is assumed to hold when `users max` is not written (or 0):
/// the runtime's limit is then the worker's open-file limit, unknown here.
pub const UNLIMITED_USERS: u64 = 65_536;

/// Runs every lint on the checked sections.
pub(super) fn run(
    file: &ast::File,
    spawnd: Option<&SpawndModel>,
    relay: Option<&RelayModel>,
    cx: &mut Cx<'_>,
) {
    if let Some(spawnd) = spawnd {
        acl(&spawnd.acl, &spawnd.listeners, cx);
        other_daemons(file, &spawnd.listeners, cx);
    }
    if let Some(relay) = relay {
        if let Some(spawnd) = spawnd {
            own_listeners(&spawnd.listeners, relay, cx);
            weights(spawnd, relay, cx);
            retire(spawnd, relay, cx);
        }
        timeouts(relay, cx);
    }
}

// ---------------------------------------------------------------------------------
// E0071: a remote that is one of the relay's own listeners.

/// Whether `ip` is an address of this machine: a UDP socket can be bound to it.
fn local_address(ip: IpAddr) -> bool {
    std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

/// How a connection to `remote` reaches the listener bound at `bind`: `Some(false)`
/// surely (the same address, or a wildcard of its family and port and a loopback or
/// unspecified address), `Some(true)` when the remote is an address of the compiling
/// machine under a wildcard listener, `None` when it does not.
fn reaches(bind: &Bind, remote: SocketAddr, is_local: &dyn Fn(IpAddr) -> bool) -> Option<bool> {
    let Bind::Inet { address, port } = bind else {
        return None;
    };
    if port.node != remote.port() {
        return None;
    }
    // A v4-mapped address is connected to over IPv4.
    let ip = tcprelay_plan::route::canonical(remote.ip());
    let listener = address
        .as_ref()
        .map_or(IpAddr::from([0, 0, 0, 0]), |a| a.node);
    if !listener.is_unspecified() {
        return (listener == ip).then_some(false);
    }
    // IPv6 listeners are bound v6-only: a wildcard takes its own family only.
    if listener.is_ipv4() != ip.is_ipv4() {
        return None;
    }
    if ip.is_loopback() || ip.is_unspecified() {
        Some(false)
    } else if is_local(ip) {
        Some(true)
    } else {
        None
    }
}

/// E0071 for each remote that is one of the relay's own listeners, unless E0049
/// (`send proxy` to a PROXY-accepting one) reports it.
fn own_listeners(listeners: &[ListenerModel], relay: &RelayModel, cx: &mut Cx<'_>) {
    own_listeners_with(listeners, relay, &local_address, cx);
}

fn own_listeners_with(
    listeners: &[ListenerModel],
    relay: &RelayModel,
    is_local: &dyn Fn(IpAddr) -> bool,
    cx: &mut Cx<'_>,
) {
    let by_port = proxy::ByPort::new(listeners);
    for r in &relay.remotes {
        let remote = SocketAddr::new(r.address.node, r.port.node);
        if proxy::loop_listener(&by_port, relay, r).is_some() {
            continue;
        }
        let Some((l, by_address)) = by_port
            .on(remote.port())
            .find_map(|l| reaches(&l.bind, remote, is_local).map(|m| (l, m)))
        else {
            continue;
        };
        let bound = l.bind.resolve();
        let mut d = Diagnostic::warning(
            Code::RemoteIsOwnListener,
            r.key,
            format!("remote `{remote}` is the relay's own listener on `{bound}`"),
        )
        .with_label("this remote is the relay itself")
        .with_secondary(l.key, "the relay listens here");
        if by_address {
            d = d.with_note(format!(
                "`{}` is an address of this machine, where `{bound}` takes it; if the plan runs on another machine, this is not a loop",
                remote.ip()
            ));
        }
        cx.push(
            d.with_note("each session would connect to the relay again, and that one again, until the workers or the ports run out")
                .with_help("point the remote at the service behind the relay (its own address or port)"),
        );
    }
}

// ---------------------------------------------------------------------------------
// E0072, E0073: the acl by set arithmetic.

/// An address family as the runtime's rules see it: an IPv4 client (on an IPv4
/// listener; IPv6 listeners are v6-only) or an IPv6 one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

impl Family {
    const BOTH: [Family; 2] = [Family::V4, Family::V6];

    fn of(ip: IpAddr) -> Family {
        if ip.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        }
    }

    fn last(self) -> u128 {
        match self {
            Family::V4 => u128::from(u32::MAX),
            Family::V6 => u128::MAX,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }

    fn everything(self) -> &'static str {
        match self {
            Family::V4 => "0.0.0.0/0",
            Family::V6 => "::/0",
        }
    }
}

/// A set of addresses of one family: sorted, disjoint, non-adjacent inclusive
/// ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Set(Vec<(u128, u128)>);

impl Set {
    fn range(lo: u128, hi: u128) -> Set {
        Set(vec![(lo, hi)])
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `self` without `other`: a search into `other` for each range of `self`.
    fn minus(&self, other: &Set) -> Set {
        let mut out = Vec::new();
        for &(mut lo, hi) in &self.0 {
            let mut open = true;
            let from = other.0.partition_point(|&(_, b)| b < lo);
            for &(a, b) in other.0[from..].iter().take_while(|&&(a, _)| a <= hi) {
                if a > lo {
                    out.push((lo, a - 1));
                }
                if b >= hi {
                    open = false;
                    break;
                }
                lo = b + 1;
            }
            if open {
                out.push((lo, hi));
            }
        }
        Set(out)
    }

    /// `self` with `other` added, each of its ranges merged in where it falls (the
    /// rules add one or two ranges at a time to a growing set).
    fn union(&self, other: &Set) -> Set {
        let mut out = self.0.clone();
        for &(mut lo, mut hi) in &other.0 {
            // The ranges that touch or overlap [lo, hi] are merged into it.
            let from = out.partition_point(|&(_, b)| b.saturating_add(1) < lo);
            let to = out.partition_point(|&(a, _)| a <= hi.saturating_add(1));
            if from < to {
                lo = lo.min(out[from].0);
                hi = hi.max(out[to - 1].1);
            }
            out.splice(from..to, [(lo, hi)]);
        }
        Set(out)
    }

    fn intersects(&self, other: &Set) -> bool {
        self.0
            .iter()
            .any(|&(lo, hi)| other.0.iter().any(|&(a, b)| a <= hi && lo <= b))
    }
}

/// The clients of `family` that `rule` matches, as the runtime's `contains` matches
/// them: the network's range ([`tcprelay_plan::route::network_range`]: a v4-mapped
/// network is IPv4) in its family only, and `not` is everything else, the other
/// family included.
fn matches(rule: &AclRule, family: Family) -> Set {
    let range = tcprelay_plan::route::network_range(rule.network, rule.prefix);
    let inside = if range.ipv4 == (family == Family::V4) {
        Set::range(range.first, range.last)
    } else {
        Set::default()
    };
    if rule.negate {
        Set::range(0, family.last()).minus(&inside)
    } else {
        inside
    }
}

/// The families of the clients the IP listeners take.
fn accepted_families(listeners: &[ListenerModel]) -> Vec<(Family, &ListenerModel)> {
    let mut out: Vec<(Family, &ListenerModel)> = Vec::new();
    for l in listeners {
        if let tcprelay_plan::ListenAddress::Inet(sa) = l.bind.resolve() {
            let family = Family::of(tcprelay_plan::route::canonical(sa.ip()));
            if !out.iter().any(|(f, _)| *f == family) {
                out.push((family, l));
            }
        }
    }
    out
}

/// E0072 for each rule no client reaches, E0073 when the rules permit no client of
/// a family the listeners accept.
fn acl(rules: &[Sp<AclRule>], listeners: &[ListenerModel], cx: &mut Cx<'_>) {
    if rules.is_empty() {
        return;
    }
    // Per family: what earlier rules matched, and what the rules permit.
    let mut taken = [Set::default(), Set::default()];
    let mut permitted = [Set::default(), Set::default()];
    for (i, rule) in rules.iter().enumerate() {
        let mut reached = false;
        for (f, family) in Family::BOTH.into_iter().enumerate() {
            let m = matches(&rule.node, family);
            let new = m.minus(&taken[f]);
            if !new.is_empty() {
                reached = true;
                if rule.node.permit {
                    permitted[f] = permitted[f].union(&new);
                }
            }
            taken[f] = taken[f].union(&m);
        }
        if !reached {
            shadowed(rules, i, cx);
        }
    }
    let families = accepted_families(listeners);
    let denied: Vec<&(Family, &ListenerModel)> = families
        .iter()
        .filter(|(family, _)| permitted[*family as usize].is_empty())
        .collect();
    if denied.is_empty() {
        return;
    }
    let first = &rules[0];
    if denied.len() == families.len() {
        let mut d = Diagnostic::warning(
            Code::AclDeniesAll,
            first.span,
            "the `acl` lets no client in",
        )
        .with_label(if first.node.permit {
            "the rules start here; this one reaches no client a listener takes"
        } else {
            "the rules start here"
        });
        let permits = rules.iter().skip(1).filter(|r| r.node.permit);
        for r in permits.take(4) {
            d = d.with_secondary(r.span, "reaches no client a listener takes");
        }
        let names: Vec<&str> = families.iter().map(|(f, _)| f.name()).collect();
        cx.push(
            d.with_note(format!(
                "the listeners take {} clients; with rules, a client no rule permits is denied",
                names.join(" and ")
            ))
            .with_help(format!(
                "permit the clients to let in, e.g. `acl = permit {}` for every {} client, or remove the rules",
                families[0].0.everything(),
                families[0].0.name()
            )),
        );
        return;
    }
    for (family, l) in denied {
        cx.push(
            Diagnostic::warning(
                Code::AclDeniesAll,
                l.key,
                format!(
                    "the `acl` lets no {} client in through this listener",
                    family.name()
                ),
            )
            .with_label(format!("an {} listener", family.name()))
            .with_secondary(first.span, format!("no rule permits an {} client", family.name()))
            .with_note("with rules, a client no rule permits is denied")
            .with_help(format!(
                "add `acl = permit NETWORK` for the {} clients to let in (`{}` for all), or remove the listener",
                family.name(),
                family.everything()
            )),
        );
    }
}

/// E0072 for rule `i`, which earlier rules cover entirely.
fn shadowed(rules: &[Sp<AclRule>], i: usize, cx: &mut Cx<'_>) {
    let rule = &rules[i];
    let earlier: Vec<&Sp<AclRule>> = rules[..i]
        .iter()
        .filter(|e| {
            Family::BOTH
                .iter()
                .any(|&f| matches(&e.node, f).intersects(&matches(&rule.node, f)))
        })
        .collect();
    let other = earlier.iter().find(|e| e.node.permit != rule.node.permit);
    let verb = if rule.node.permit { "permit" } else { "deny" };
    let mut d = Diagnostic::warning(
        Code::ShadowedAclRule,
        rule.span,
        format!("`acl = {}` is never reached", rule.node),
    )
    .with_label("every address it matches is matched by an earlier rule");
    for e in earlier.iter().take(8) {
        let what = if e.node.permit { "permits" } else { "denies" };
        d = d.with_secondary(e.span, format!("`{}` {what} them first", e.node));
    }
    if rule.node.negate || earlier.iter().any(|e| e.node.negate) {
        d = d.with_note(
            "a `not` rule matches every address outside its network, those of the other family too",
        );
    }
    let help = match other {
        None => format!("remove it: the earlier rules already {verb} its addresses"),
        Some(other) => format!(
            "the first matching rule decides: to {verb} these addresses, write `acl = {}` before `acl = {}`",
            rule.node,
            other.node
        ),
    };
    cx.push(d.with_help(help));
}

// ---------------------------------------------------------------------------------
// E0074: remotes a worker never chooses.

/// The order in which a worker that only opens sessions chooses among remotes of
/// `weights`, for `sessions` sessions: the runtime's `Balancer::best` (the lowest
/// [`score`](tcprelay_plan::balance::score), the first in order on a tie). Gives, for
/// each remote, the session (from 1) that first chose it. Runs every session against
/// every remote: the tests hold [`first_choices`] to it.
#[cfg(test)]
fn first_chosen(weights: &[u64], sessions: u64) -> Vec<Option<u64>> {
    let mut active = vec![0u64; weights.len()];
    let mut first = vec![None; weights.len()];
    let mut unchosen = weights.len();
    for n in 1..=sessions {
        if unchosen == 0 {
            break;
        }
        let mut best: Option<(usize, u64)> = None;
        for (i, (&a, &w)) in active.iter().zip(weights).enumerate() {
            let score = tcprelay_plan::balance::score(a, w);
            if best.is_none_or(|(_, s)| score < s) {
                best = Some((i, score));
            }
        }
        let Some((i, _)) = best else { break };
        active[i] += 1;
        if first[i].is_none() {
            first[i] = Some(n);
            unchosen -= 1;
        }
    }
    first
}

/// The session that first chooses each remote of `weights` (all at least 1): a
/// remote has score 0 until it holds `⌈weight / 256⌉` sessions, and a remote at 0
/// wins every tie with those after it, so remote `j` comes once each one before it
/// holds that many. What [`first_chosen`] finds, in one pass (a configuration may
/// have 100,000 remotes and no `users max`).
fn first_choices(weights: &[u64]) -> Vec<u64> {
    let mut next = 1u64;
    weights
        .iter()
        .map(|&w| {
            let first = next;
            next = next.saturating_add(w.div_ceil(256).max(1));
            first
        })
        .collect()
}

/// Secondary labels on the remotes before a never-chosen one that hold more than one
/// session before the next is tried: at most this many.
const HEAVY_LABELS: usize = 8;

fn weights(spawnd: &SpawndModel, relay: &RelayModel, cx: &mut Cx<'_>) {
    // `balance = source` gives every remote its weight's share of the clients,
    // whatever a worker's sessions: the least-connections lint does not apply.
    let least_conn = relay
        .balance
        .as_ref()
        .is_none_or(|b| b.node == tcprelay_plan::Balance::LeastConn);
    if relay.remotes.len() < 2 || !least_conn {
        return;
    }
    let users_max = spawnd.spawn.users_max.as_ref().filter(|u| u.node > 0);
    let sessions = users_max.map_or(UNLIMITED_USERS, |u| u64::from(u.node));
    let weights: Vec<u64> = relay
        .remotes
        .iter()
        .map(|r| tcprelay_plan::balance::weight(r.weight.as_ref().map_or(1, |w| w.node)))
        .collect();
    let first = first_choices(&weights);
    let heavy: Vec<usize> = (0..weights.len()).filter(|&i| weights[i] > 256).collect();
    for (j, r) in relay.remotes.iter().enumerate() {
        let need = first[j];
        if need <= sessions {
            continue;
        }
        let remote = SocketAddr::new(r.address.node, r.port.node);
        let limit = match users_max {
            Some(u) => format!("its `users max` of {}", u.node),
            None => format!("{UNLIMITED_USERS} sessions"),
        };
        let mut d = Diagnostic::warning(
            Code::RemoteNeverChosen,
            r.weight.as_ref().map_or(r.key, |w| w.span),
            format!("a worker never chooses remote `{remote}`: the remotes before it take {limit}"),
        )
        .with_label(format!("chosen first by a worker's session {need}"));
        if let Some(u) = users_max {
            d = d.with_secondary(u.span, "a worker holds at most this many sessions");
        }
        for &i in heavy.iter().take_while(|&&i| i < j).take(HEAVY_LABELS) {
            let (before, w) = (&relay.remotes[i], weights[i]);
            if let Some(span) = before.weight.as_ref().map(|w| w.span) {
                d = d.with_secondary(
                    span,
                    format!(
                        "takes {} sessions before the next is tried",
                        w.div_ceil(256)
                    ),
                );
            }
        }
        if users_max.is_none() {
            d = d.with_note(format!(
                "without `users max`, a worker holds what its open-file limit allows; {UNLIMITED_USERS} is assumed"
            ));
        }
        cx.push(
            d.with_note("a worker chooses the remote with the lowest `active × 256 / weight`, the first on a tie; this one serves only when those before it fail")
                .with_help(format!(
                    "write `users max = {need}` or more, or lower the weights before it (a remote of weight W holds ⌈W/256⌉ sessions before the next is tried)"
                )),
        );
    }
}

// ---------------------------------------------------------------------------------
// E0075, E0076: limits that contradict each other.

fn retire(spawnd: &SpawndModel, relay: &RelayModel, cx: &mut Cx<'_>) {
    let (Some(retire), Some(users_max)) = (&relay.retire, &spawnd.spawn.users_max) else {
        return;
    };
    let max = u64::from(users_max.node);
    if retire.node == 0 || max == 0 || retire.node >= max {
        return;
    }
    cx.push(
        Diagnostic::warning(
            Code::RetireBelowUsersMax,
            retire.span,
            format!(
                "`retire = {}` is below `users max = {max}`: a worker never holds {max} sessions",
                retire.node
            ),
        )
        .with_label(format!("a worker stops taking sessions after {}", retire.node))
        .with_secondary(users_max.span, "the most a worker may hold")
        .with_note("`retire` counts every session a worker has served in its life; it then exits once idle and another takes its place")
        .with_help(format!(
            "write `retire = {}` or more (many times `users max`), or `users max = {}` if that is the limit meant",
            max.saturating_mul(100),
            retire.node
        )),
    );
}

fn timeouts(relay: &RelayModel, cx: &mut Cx<'_>) {
    let Some(idle) = relay.idle_timeout.as_ref().filter(|i| i.node > 0) else {
        return;
    };
    let connect = relay
        .connect_timeout
        .as_ref()
        .map_or(defaults::CONNECT_TIMEOUT, |c| c.node);
    if idle.node >= connect {
        return;
    }
    let mut d = Diagnostic::warning(
        Code::IdleBelowConnect,
        idle.span,
        format!(
            "`idle timeout = {}` is shorter than the connect timeout of {connect} s",
            idle.node
        ),
    )
    .with_label("a connected session may be quiet this long");
    d = match &relay.connect_timeout {
        Some(c) => d.with_secondary(c.span, "a remote may take this long to accept"),
        None => d.with_note(format!("`connect timeout` is {connect} s when not written")),
    };
    cx.push(
        d.with_note("a remote slow enough to need the connect timeout is as slow to answer, and its sessions are closed as idle before the answer comes")
            .with_help(format!(
                "write `idle timeout = {connect}` or more, or `connect timeout = {}` or less",
                idle.node
            )),
    );
}

// ---------------------------------------------------------------------------------
// E0077: listeners of other daemons in the same file.

/// Where a `listen` block of a skipped section binds, when it says so in a way
/// tcprelay reads (an IP literal or none, a port number or service name; a path).
fn foreign_bind(l: &ast::ForeignListen) -> Option<tcprelay_plan::ListenAddress> {
    if let Some(path) = &l.path {
        return Some(tcprelay_plan::ListenAddress::Unix(path.node.text.clone()));
    }
    let port = values::port(l.port.as_ref()?).ok()?;
    let ip = match &l.address {
        Some(a) => values::parse_ip(&a.node.text)?,
        None => IpAddr::from([0, 0, 0, 0]),
    };
    Some(tcprelay_plan::ListenAddress::Inet(SocketAddr::new(
        ip, port,
    )))
}

/// Whether two listeners take some connection in common (or would fail to bind
/// both): the same address, or a wildcard and an address of its family on one port.
fn overlap(a: &tcprelay_plan::ListenAddress, b: &tcprelay_plan::ListenAddress) -> bool {
    use tcprelay_plan::ListenAddress::{Inet, Unix};
    match (a, b) {
        (Unix(a), Unix(b)) => a == b,
        (Inet(a), Inet(b)) => {
            a.port() == b.port()
                && a.is_ipv4() == b.is_ipv4()
                && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
        }
        _ => false,
    }
}

fn other_daemons(file: &ast::File, listeners: &[ListenerModel], cx: &mut Cx<'_>) {
    for item in &file.items {
        let Item::Skipped { id, listens } = &item.node else {
            continue;
        };
        for theirs in listens {
            let Some(at) = foreign_bind(theirs) else {
                continue;
            };
            for l in listeners {
                let ours = l.bind.resolve();
                if !overlap(&ours, &at) {
                    continue;
                }
                let same = ours == at;
                let name = &id.node.text;
                cx.push(
                    Diagnostic::warning(
                        Code::OtherDaemonsListener,
                        l.key,
                        format!("listener on `{ours}` overlaps section `{name}`'s listener on `{at}`"),
                    )
                    .with_label(if same {
                        "the same address"
                    } else {
                        "a wildcard covers the other address"
                    })
                    .with_secondary(theirs.key, format!("section `{name}` listens here"))
                    .with_note(format!(
                        "another program of the family reads section `{name}` of this file; of two daemons on one address, the second cannot bind"
                    ))
                    .with_help("give one of them another port (or address)"),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests;
