//! `tcprelay-cc route`: the data path of one client, dry-run from the plan alone.
//!
//! Which listener takes the connection, whether a PROXY header's sender is trusted
//! and which client the access rules then see, which rule decides, what TLS the
//! listener speaks, what the sticky cache does for a returning client, and the
//! remotes in the order the balancing tries them. Every decision is made by the
//! functions the workers use (`tcprelay_plan::route`), so the answer is the
//! runtime's. The report is data ([`Report`]); [`Report::human`] and
//! [`Report::json`] render it. docs/route.md is the operator's page.

use serde::Serialize;
use std::fmt::{self, Write as _};
use std::net::{IpAddr, SocketAddr};
use tcprelay_plan::route as decide;
use tcprelay_plan::sni;
use tcprelay_plan::{
    Balance, Expect, ListenAddress, Listener, Network, Plan, Protocol, ProxyAccept, ProxyVersion,
    Remote, RouteMode, Tls, TlsVersion,
};

use crate::input::Input;
use crate::tlscheck;

/// An address given on the command line with an optional port: `192.0.2.7`,
/// `192.0.2.7:5000`, `2001:db8::7`, `[2001:db8::7]:5000`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    pub ip: IpAddr,
    pub port: Option<u16>,
}

impl Endpoint {
    /// Parses `IP` or `IP:PORT` (`[IPv6]:PORT`).
    pub fn parse(text: &str) -> Result<Endpoint, String> {
        let text = text.trim();
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(Endpoint { ip, port: None });
        }
        if let Ok(sa) = text.parse::<SocketAddr>() {
            return Ok(Endpoint {
                ip: sa.ip(),
                port: Some(sa.port()),
            });
        }
        Err(format!(
            "{text:?} is not an IP address with an optional port (192.0.2.7, 192.0.2.7:5000, [2001:db8::7]:5000)"
        ))
    }

    /// The address the data path sees (an IPv4-mapped one as IPv4).
    fn canonical(self) -> Endpoint {
        Endpoint {
            ip: decide::canonical(self.ip),
            port: self.port,
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(port) => write!(f, "{}", SocketAddr::new(self.ip, port)),
            None => write!(f, "{}", self.ip),
        }
    }
}

/// Parses a destination: `IP:PORT` (`[IPv6]:PORT`) or `unix:PATH`.
pub fn parse_destination(text: &str) -> Result<ListenAddress, String> {
    if let Some(path) = text.strip_prefix("unix:") {
        if path.is_empty() {
            return Err("`unix:` needs the socket's path (unix:/run/app.sock)".to_string());
        }
        return Ok(ListenAddress::Unix(path.to_string()));
    }
    match text.trim().parse::<SocketAddr>() {
        Ok(sa) => Ok(ListenAddress::Inet(sa)),
        Err(_) if text.trim().parse::<IpAddr>().is_ok() => Err(format!(
            "{text:?} has no port: a destination is IP:PORT ([IPv6]:PORT) or unix:PATH"
        )),
        Err(_) => Err(format!(
            "{text:?} is not a destination: IP:PORT ([IPv6]:PORT) or unix:PATH"
        )),
    }
}

/// One client's connection, as the command line describes it.
#[derive(Debug, Clone)]
pub struct Query {
    /// The peer of the connection (the client, or the proxy that sends a PROXY
    /// header); not needed towards a Unix-domain socket.
    pub from: Option<Endpoint>,
    pub to: ListenAddress,
    pub protocol: Protocol,
    /// The server name a TLS client sends.
    pub sni: Option<String>,
    /// The client a PROXY header names.
    pub proxy_from: Option<Endpoint>,
}

/// Where the plan's parts were written (`file:line:col`), when the plan was
/// compiled from a configuration here.
pub trait Places {
    fn listener(&self, index: usize) -> Option<String>;
    fn acl(&self, index: usize) -> Option<String>;
    fn remote(&self, index: usize) -> Option<String>;
    /// Where the `index`th discovered name's remote was written.
    fn discovered(&self, _index: usize) -> Option<String> {
        None
    }
}

/// A plan file: no places.
#[derive(Debug)]
pub struct NoPlaces;

impl Places for NoPlaces {
    fn listener(&self, _: usize) -> Option<String> {
        None
    }
    fn acl(&self, _: usize) -> Option<String> {
        None
    }
    fn remote(&self, _: usize) -> Option<String> {
        None
    }
}

impl Places for crate::Compiled {
    fn listener(&self, index: usize) -> Option<String> {
        let span = *self.spans.as_ref()?.listeners.get(index)?;
        Some(self.place(span))
    }
    fn acl(&self, index: usize) -> Option<String> {
        let span = *self.spans.as_ref()?.acl.get(index)?;
        Some(self.place(span))
    }
    fn remote(&self, index: usize) -> Option<String> {
        let span = *self.spans.as_ref()?.remotes.get(index)?;
        Some(self.place(span))
    }
    fn discovered(&self, index: usize) -> Option<String> {
        let span = *self.spans.as_ref()?.discovered.get(index)?;
        Some(self.place(span))
    }
}

/// What `route` finds. Field names are the JSON schema of docs/route.md.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub client: ClientReport,
    pub result: Outcome,
    pub listener: Option<ListenerReport>,
    pub proxy: Option<ProxyReport>,
    pub acl: Option<AclReport>,
    pub tls: Option<TlsReport>,
    /// The SNI route (a relay with `route` blocks only; absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<RouteReport>,
    pub sticky: Option<StickyReport>,
    pub balance: Option<BalanceReport>,
    /// Remarks on the question itself (an argument that is not used).
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClientReport {
    pub from: Option<String>,
    pub to: String,
    /// `TCP` or `SCTP`; `null` towards a Unix-domain socket.
    pub protocol: Option<String>,
    pub sni: Option<String>,
    pub proxy_from: Option<String>,
}

/// `relayed` (a remote would be tried) or `refused`, and where and why.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub outcome: &'static str,
    /// `listener`, `proxy` or `acl` for a refusal; `null` when relayed.
    pub stage: Option<&'static str>,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ListenerReport {
    pub index: usize,
    pub address: String,
    pub protocol: String,
    /// `exact`, `wildcard` (the family's any-address on the port) or `path`.
    pub matched: &'static str,
    pub at: Option<String>,
    pub vrf: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProxyReport {
    /// `v1`, `v2` or `any`.
    pub versions: &'static str,
    /// The peer that sends the header (`--from`); `null` on a Unix-domain listener.
    pub sender: Option<String>,
    /// `accept proxy from`; empty: any peer.
    pub trusted_from: Vec<String>,
    pub trusted: bool,
    /// The client the header names (`--proxy-from`).
    pub client: String,
    pub timeout_ms: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct AclReport {
    /// The address the rules are matched against; `null` when they do not apply.
    pub client: Option<String>,
    /// How many rules there are.
    pub rules: usize,
    pub permit: bool,
    /// The deciding rule; `null` when none matched (or there are none).
    pub rule: Option<RuleReport>,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RuleReport {
    pub index: usize,
    pub text: String,
    pub at: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TlsReport {
    /// `tls = auto`: a client that does not start with a TLS handshake is relayed
    /// in plain text.
    pub auto: bool,
    pub versions: Vec<&'static str>,
    pub handshake_timeout_s: u32,
    pub certificate: Option<CertificateReport>,
    pub sni: Option<String>,
    /// Whether the certificate serves `sni`; `null` without `--sni` or without a
    /// readable certificate.
    pub covers: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CertificateReport {
    pub file: String,
    pub subject: Option<String>,
    pub names: Vec<String>,
    pub addresses: Vec<String>,
    pub not_after: Option<String>,
    pub sha256: Option<String>,
    /// Why the file could not be read here (the plan may run on another machine).
    pub error: Option<String>,
}

/// The SNI route a client takes (docs/sni.md), decided by
/// `tcprelay_plan::sni::choose` as the workers decide.
#[derive(Debug, Clone, Serialize)]
pub struct RouteReport {
    /// The route's number in the plan (from 0); `null`: the default route made of
    /// the remotes outside any route.
    pub index: Option<usize>,
    /// Its server names (empty: the default route).
    pub names: Vec<String>,
    /// `terminate` or `passthrough`.
    pub mode: &'static str,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct StickyReport {
    /// `listener` (its own cache) or `relay` (the section's).
    pub scope: &'static str,
    pub period_s: u32,
    pub size: u32,
    /// The client's entry: its address and the listener's port.
    pub key: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct BalanceReport {
    /// `least-conn` (weighted least connections), `source` or `source sticky`
    /// (`balance`); `least-conn` for a client without an address.
    pub method: &'static str,
    /// The address `source` hashes (the PROXY-carried one behind a PROXY header);
    /// left out with `least-conn`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// The remotes in the order a worker with no session tries them; with
    /// `source`, the order every worker tries them for this client.
    pub candidates: Vec<Candidate>,
    pub rebalance: Option<u64>,
    pub connect_timeout_s: u32,
    pub local_address: Option<String>,
    /// The names whose remotes the relay finds at run time (left out of the JSON
    /// when there are none): tried after the `candidates`, in the order found.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub discovered: Vec<DiscoveredReport>,
}

/// A name resolved at run time: its remotes are not known to the compiler.
#[derive(Debug, Clone, Serialize)]
pub struct DiscoveredReport {
    pub index: usize,
    pub name: String,
    /// `A/AAAA` (at `port`) or `SRV` (the records' ports and weights).
    pub lookup: &'static str,
    pub port: Option<u16>,
    pub protocol: String,
    /// The weight of each address found (`null` for SRV: the records').
    pub weight: Option<u32>,
    pub at: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    /// 1 for the remote tried first.
    pub order: usize,
    pub index: usize,
    /// `ADDRESS:PORT/PROTOCOL`, the key of `tcprelay ctl remotes` and the metrics.
    pub remote: String,
    pub weight: u32,
    pub at: Option<String>,
    pub send_proxy: Option<&'static str>,
    pub tls: Option<RemoteTlsReport>,
    pub check: Option<CheckReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RemoteTlsReport {
    pub sni: Option<String>,
    pub verify: bool,
    pub ca_file: Option<String>,
    pub cert_file: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub interval_ms: u32,
    pub timeout_ms: u32,
    pub rise: u32,
    pub fall: u32,
    pub tls: bool,
    pub send: bool,
    /// `bytes`, `regex` or `null` (connecting is the check).
    pub expect: Option<&'static str>,
}

fn accept_name(v: ProxyAccept) -> &'static str {
    match v {
        ProxyAccept::V1 => "v1",
        ProxyAccept::V2 => "v2",
        ProxyAccept::Any => "any",
    }
}

/// Dry-runs `query` through `plan`. An error is a question that cannot be asked
/// of this plan (an argument missing or out of place), in an operator's words.
pub fn route(plan: &Plan, places: &dyn Places, query: &Query) -> Result<Report, String> {
    let mut notes = Vec::new();
    let client = ClientReport {
        from: query.from.map(|e| e.to_string()),
        to: query.to.to_string(),
        protocol: matches!(query.to, ListenAddress::Inet(_)).then(|| query.protocol.to_string()),
        sni: query.sni.clone(),
        proxy_from: query.proxy_from.map(|e| e.to_string()),
    };
    let from = match (&query.to, query.from) {
        (ListenAddress::Inet(to), Some(from)) => {
            let from = from.canonical();
            if from.ip.is_ipv4() != decide::canonical(to.ip()).is_ipv4() {
                return Err(format!(
                    "--from {} and --to {} are of different address families: a connection has one",
                    query.from.map_or(String::new(), |e| e.to_string()),
                    query.to
                ));
            }
            Some(from)
        }
        (ListenAddress::Inet(_), None) => {
            return Err(
                "--from IP[:PORT] is needed: the address the connection comes from".to_string(),
            )
        }
        (ListenAddress::Unix(_), from) => {
            if from.is_some() {
                notes.push(
                    "--from is not used: a client of a Unix-domain socket has no IP address"
                        .to_string(),
                );
            }
            None
        }
    };
    let mut report = Report {
        client,
        result: Outcome {
            outcome: "relayed",
            stage: None,
            message: String::new(),
        },
        listener: None,
        proxy: None,
        acl: None,
        tls: None,
        route: None,
        sticky: None,
        balance: None,
        notes,
    };

    // The listener, as the kernel picks it.
    let Some(index) = decide::listener_for(&plan.spawnd.listeners, &query.to, query.protocol)
    else {
        if query.proxy_from.is_some() {
            report
                .notes
                .push("--proxy-from is not used: no listener takes the connection".to_string());
        }
        report.result = refused(
            "listener",
            match &query.to {
                ListenAddress::Inet(_) => format!(
                    "no listener takes {} connections to {}: the connection is refused",
                    query.protocol, query.to
                ),
                ListenAddress::Unix(_) => format!(
                    "no listener is bound to {}: the connection is refused",
                    query.to
                ),
            },
        );
        return Ok(report);
    };
    let listener = &plan.spawnd.listeners[index];
    report.listener = Some(listener_report(listener, index, &query.to, places));
    let name = format!("listener #{} ({})", index + 1, listener.address);

    // PROXY: the sender must be trusted; the header names the client.
    let acl_client = match (&listener.accept_proxy, query.proxy_from) {
        (Some(proxy), Some(header)) => {
            let trusted = match from {
                Some(sender) => decide::trusted(&proxy.from, sender.ip),
                // A Unix-domain peer is not checked against `accept proxy from`.
                None => true,
            };
            report.proxy = Some(ProxyReport {
                versions: accept_name(proxy.version),
                sender: from.map(|e| e.to_string()),
                trusted_from: proxy.from.iter().map(Network::to_string).collect(),
                trusted,
                client: header.to_string(),
                timeout_ms: proxy.timeout_ms,
            });
            if !trusted {
                report.result = refused(
                    "proxy",
                    format!(
                        "{} may not send PROXY headers to {name}: it is not in `accept proxy from` {}; the connection is closed before anything is read",
                        from.map_or(String::new(), |e| e.ip.to_string()),
                        proxy.from.iter().map(Network::to_string).collect::<Vec<_>>().join(", ")
                    ),
                );
                return Ok(report);
            }
            Some(header.canonical())
        }
        (Some(proxy), None) => {
            return Err(format!(
                "{name} accepts PROXY {} headers: give the client the header names with --proxy-from IP[:PORT] (--from is the peer that sends it)",
                accept_name(proxy.version)
            ))
        }
        (None, Some(_)) => {
            return Err(format!(
                "{name} does not accept PROXY headers (no `accept proxy`): leave out --proxy-from"
            ))
        }
        (None, None) => from,
    };

    // The access rules.
    let rules = &plan.spawnd.acl;
    let acl = match acl_client {
        None => AclReport {
            client: None,
            rules: rules.len(),
            permit: true,
            rule: None,
            reason: "not applied: a client of a Unix-domain socket has no address".to_string(),
        },
        Some(client) => {
            let verdict = decide::decide(rules, client.ip);
            let rule = verdict.rule.map(|i| RuleReport {
                index: i,
                text: rules[i].to_string(),
                at: places.acl(i),
            });
            let reason = match (&rule, rules.is_empty()) {
                (Some(r), _) => format!(
                    "rule #{} `{}` matches {}: {}",
                    r.index + 1,
                    r.text,
                    client.ip,
                    if verdict.permit {
                        "permitted"
                    } else {
                        "denied"
                    }
                ),
                (None, true) => "no rules: everyone is permitted".to_string(),
                (None, false) => format!(
                    "no rule matches {}: denied (with rules, a client none matches is denied)",
                    client.ip
                ),
            };
            AclReport {
                client: Some(client.ip.to_string()),
                rules: rules.len(),
                permit: verdict.permit,
                rule,
                reason,
            }
        }
    };
    let permit = acl.permit;
    let reason = acl.reason.clone();
    report.acl = Some(acl);
    if !permit {
        report.result = refused(
            "acl",
            format!("{reason}; the connection is closed before anything is read or connected"),
        );
        return Ok(report);
    }

    // The SNI route, then TLS on the listener.
    let mut route = None;
    if !plan.relay.routes.is_empty() {
        match sni_route(plan, listener.tls, query.sni.as_deref(), &name) {
            Ok(r) => {
                route = Some(r.index.map(|i| i as u32));
                report.route = Some(r);
            }
            Err(message) => {
                report.result = refused("sni", message);
                return Ok(report);
            }
        }
    }
    let route_tls = route
        .flatten()
        .and_then(|i| plan.relay.routes.get(i as usize))
        .and_then(|r| r.tls.as_ref());
    let passthrough = route.is_some_and(|r| sni::mode(&plan.relay, r) == RouteMode::Passthrough);
    if listener.tls && !passthrough {
        let tls = route_tls.or(plan.relay.tls.as_ref());
        report.tls = Some(tls_report(plan, tls, listener, query.sni.as_deref()));
    } else if query.sni.is_some() && !listener.tls {
        report
            .notes
            .push(format!("--sni is not used: {name} does not terminate TLS"));
    }

    // The sticky cache.
    let sticky = listener
        .sticky
        .map(|s| ("listener", s))
        .or(plan.spawnd.sticky.map(|s| ("relay", s)));
    if let (Some((scope, sticky)), Some(client), ListenAddress::Inet(bound)) =
        (sticky, acl_client, &listener.address)
    {
        report.sticky = Some(StickyReport {
            scope,
            period_s: sticky.period_s,
            size: sticky.size,
            key: format!("{} on port {}", client.ip, bound.port()),
        });
    }

    // The balancing: by the client's address with `source` (a Unix-domain client
    // without a PROXY header has none: least connections, as the workers do).
    // The method is the route's own `balance` when it has one, else the section's
    // (as the workers' `session_balance`).
    let balance = route
        .flatten()
        .and_then(|r| plan.relay.routes.get(r as usize))
        .and_then(|r| r.balance)
        .unwrap_or(plan.relay.balance);
    let remotes = &plan.relay.remotes;
    let hashed = match (balance, acl_client) {
        (Balance::LeastConn, _) | (_, None) => None,
        (_, Some(client)) => Some(client.ip),
    };
    if hashed.is_none() && balance != Balance::LeastConn {
        report.notes.push(format!(
            "`balance = {balance}` hashes the client's address, and this client has none: it is balanced by least connections"
        ));
    }
    let order = match hashed {
        Some(ip) => decide::source_order(remotes, ip),
        None => decide::fresh_order(remotes),
    };
    let candidates: Vec<Candidate> = order
        .into_iter()
        // With routes, the route's remotes only.
        .filter(|&i| route.is_none_or(|r| remotes[i].route == r))
        .enumerate()
        .map(|(k, i)| candidate(&remotes[i], k + 1, i, places))
        .collect();
    let discovered = discovered_reports(plan, route, places);
    let first = match (candidates.first(), discovered.first()) {
        (Some(c), Some(_)) if hashed.is_some() => format!(
            "remote #{} {} (or a remote found for a name that ranks above it)",
            c.index + 1,
            c.remote
        ),
        (Some(c), _) => format!("remote #{} {}", c.index + 1, c.remote),
        (None, Some(d)) => format!("a remote found for {} (resolved at run time)", d.name),
        (None, None) => String::new(),
    };
    let method = match hashed.map(|_| balance) {
        Some(Balance::Source) => "source",
        Some(Balance::SourceSticky) => "source sticky",
        _ => "least-conn",
    };
    report.balance = Some(BalanceReport {
        method,
        client: hashed.map(|ip| decide::canonical(ip).to_string()),
        candidates,
        rebalance: plan.relay.rebalance,
        connect_timeout_s: plan.relay.connect_timeout,
        local_address: plan.relay.local_address.map(|a| a.to_string()),
        discovered,
    });
    report.result = Outcome {
        outcome: "relayed",
        stage: None,
        message: match hashed {
            Some(_) => format!("relayed: every worker tries {first} first for this client"),
            None => format!("relayed: a worker with no session tries {first} first"),
        },
    };
    Ok(report)
}

fn refused(stage: &'static str, message: String) -> Outcome {
    Outcome {
        outcome: "refused",
        stage: Some(stage),
        message,
    }
}

fn listener_report(
    listener: &Listener,
    index: usize,
    to: &ListenAddress,
    places: &dyn Places,
) -> ListenerReport {
    let matched = match (&listener.address, to) {
        (ListenAddress::Unix(_), _) => "path",
        (ListenAddress::Inet(bound), _) if bound.ip().is_unspecified() => "wildcard",
        _ => "exact",
    };
    ListenerReport {
        index,
        address: listener.address.to_string(),
        protocol: listener.protocol.to_string(),
        matched,
        at: places.listener(index),
        vrf: listener.vrf.clone(),
    }
}

/// The SNI route of a client of `listener` (`tls`: it has TLS) that sends `sni`,
/// or why it is closed.
fn sni_route(
    plan: &Plan,
    tls: bool,
    sni_name: Option<&str>,
    name: &str,
) -> Result<RouteReport, String> {
    let relay = &plan.relay;
    let sent = if tls { sni_name } else { None };
    let chosen = sni::choose(relay, sent).map_err(|why| {
        format!(
            "{}: {why}; the client is closed before any remote (counted as `{}`)",
            match sent {
                Some(n) => format!("server name {n}"),
                None if tls => "no server name".to_string(),
                None => format!("{name} has no TLS: its clients take the default route"),
            },
            why.name()
        )
    })?;
    let route = chosen.and_then(|i| relay.routes.get(i as usize));
    let mode = match sni::mode(relay, chosen) {
        RouteMode::Terminate => "terminate",
        RouteMode::Passthrough => "passthrough",
    };
    let which = match chosen {
        Some(i) => format!("route #{}", i + 1),
        None => "the default route (the remotes outside any route)".to_string(),
    };
    let reason = match (sent, route) {
        (_, _) if !tls => format!("{name} has no TLS: its clients take the default route, {which}"),
        (None, _) => format!("no server name: {which}"),
        (Some(n), Some(r)) if !r.names.is_empty() => {
            let n = sni::normalize(n);
            let pattern = r
                .names
                .iter()
                .find(|p| **p == n)
                .or_else(|| r.names.iter().find(|p| sni::matches(p, &n)))
                .cloned()
                .unwrap_or_default();
            format!("{n} matches `{pattern}` of {which}")
        }
        (Some(n), _) => format!("no route names {}: {which}", sni::normalize(n)),
    };
    let reason = if mode == "passthrough" && tls {
        format!("{reason}; TLS passed through: the remote completes the handshake and its certificate reaches the client")
    } else {
        reason
    };
    Ok(RouteReport {
        index: chosen.map(|i| i as usize),
        names: route.map(|r| r.names.clone()).unwrap_or_default(),
        mode,
        reason,
    })
}

fn tls_report(plan: &Plan, tls: Option<&Tls>, listener: &Listener, sni: Option<&str>) -> TlsReport {
    let versions = if listener.tls_versions.is_empty() {
        vec![TlsVersion::Tls12.name(), TlsVersion::Tls13.name()]
    } else {
        listener.tls_versions.iter().map(|v| v.name()).collect()
    };
    let mut covers = None;
    let certificate = tls.map(|tls| {
        let file = tls.cert_file.clone();
        match tlscheck::certificate_facts(&tls.cert_file) {
            Ok(facts) if !facts.is_empty() => {
                // The first certificate of the file is the one served (the leaf).
                let leaf = &facts[0];
                covers = sni.map(|host| tlscheck::covers(leaf, host));
                CertificateReport {
                    file,
                    subject: Some(leaf.subject.clone()),
                    names: leaf.names.clone(),
                    addresses: leaf.addresses.iter().map(|a| a.to_string()).collect(),
                    not_after: Some(tlscheck::utc_text(leaf.not_after)),
                    sha256: Some(leaf.sha256.clone()),
                    error: None,
                }
            }
            Ok(_) => unreadable(file, "it holds no certificate".to_string()),
            Err(e) => unreadable(file, e.to_string()),
        }
    });
    TlsReport {
        auto: listener.tls_auto,
        versions,
        handshake_timeout_s: plan.relay.tls_handshake_timeout,
        certificate,
        sni: sni.map(str::to_string),
        covers,
    }
}

fn unreadable(file: String, error: String) -> CertificateReport {
    CertificateReport {
        file,
        subject: None,
        names: Vec::new(),
        addresses: Vec::new(),
        not_after: None,
        sha256: None,
        error: Some(error),
    }
}

/// The discovered names, as `route` shows them: resolved at run time.
fn discovered_reports(
    plan: &Plan,
    route: Option<Option<u32>>,
    places: &dyn Places,
) -> Vec<DiscoveredReport> {
    plan.relay
        .discovered
        .iter()
        .enumerate()
        // With routes, the names of the client's route only (their template's).
        .filter(|(_, d)| route.is_none_or(|r| d.template.route == r))
        .map(|(i, d)| {
            let (lookup, port, weight) = match d.lookup {
                tcprelay_plan::Lookup::Address { port } => {
                    ("A/AAAA", Some(port), Some(d.template.weight))
                }
                tcprelay_plan::Lookup::Srv => ("SRV", None, None),
            };
            DiscoveredReport {
                index: i,
                name: d.name.clone(),
                lookup,
                port,
                protocol: d.template.protocol.to_string(),
                weight,
                at: places.discovered(i),
            }
        })
        .collect()
}

fn candidate(remote: &Remote, order: usize, index: usize, places: &dyn Places) -> Candidate {
    Candidate {
        order,
        index,
        remote: remote.key(),
        weight: remote.weight,
        at: places.remote(index),
        send_proxy: remote.send_proxy.map(|v| match v {
            ProxyVersion::V1 => "v1",
            ProxyVersion::V2 => "v2",
        }),
        tls: remote.tls.as_ref().map(|t| RemoteTlsReport {
            sni: t.sni.clone(),
            verify: t.verify,
            ca_file: t.ca_file.clone(),
            cert_file: t.cert_file.clone(),
        }),
        check: remote.check.as_ref().map(|c| CheckReport {
            interval_ms: c.interval_ms,
            timeout_ms: c.timeout_ms,
            rise: c.rise,
            fall: c.fall,
            tls: c.tls,
            send: c.send.is_some(),
            expect: c.expect.as_ref().map(|e| match e {
                Expect::Bytes(_) => "bytes",
                Expect::Regex(_) => "regex",
            }),
        }),
    }
}

/// ` (file:line:col)` when known.
fn at(place: &Option<String>) -> String {
    place.as_ref().map_or(String::new(), |p| format!(" ({p})"))
}

/// Milliseconds as seconds when whole (`5 s`), else as milliseconds.
fn duration(ms: u32) -> String {
    if ms % 1000 == 0 {
        format!("{} s", ms / 1000)
    } else {
        format!("{ms} ms")
    }
}

impl Report {
    /// The exit status: 0 when a remote would be tried, 1 when the client is
    /// refused.
    pub fn exit_code(&self) -> u8 {
        u8::from(self.result.outcome != "relayed")
    }

    /// One JSON object (and a line break).
    pub fn json(&self) -> String {
        let mut text = serde_json::to_string(self).unwrap_or_else(|e| {
            // Serializing these plain structs cannot fail; say so if it ever does.
            format!("{{\"error\":{:?}}}", e.to_string())
        });
        text.push('\n');
        text
    }

    /// The report for a person: one paragraph per step of the data path.
    pub fn human(&self) -> String {
        let mut out = String::new();
        let c = &self.client;
        let _ = write!(out, "client    ");
        match (&c.from, &c.proxy_from) {
            (Some(from), Some(header)) => {
                let _ = write!(out, "{header} (PROXY header from {from})");
            }
            (Some(from), None) => out.push_str(from),
            (None, Some(header)) => {
                let _ = write!(out, "{header} (PROXY header)");
            }
            (None, None) => out.push_str("a local process"),
        }
        let _ = write!(out, " -> {}", c.to);
        if let Some(protocol) = &c.protocol {
            let _ = write!(out, " ({protocol})");
        }
        if let Some(sni) = &c.sni {
            let _ = write!(out, ", SNI {sni}");
        }
        out.push('\n');
        for note in &self.notes {
            let _ = writeln!(out, "note      {note}");
        }
        match &self.listener {
            Some(l) => {
                let _ = writeln!(
                    out,
                    "listener  #{} {} {} ({} match){}",
                    l.index + 1,
                    l.address,
                    l.protocol,
                    l.matched,
                    at(&l.at)
                );
                if let Some(vrf) = &l.vrf {
                    let _ = writeln!(
                        out,
                        "          bound to device {vrf}: only connections that arrive through it"
                    );
                }
            }
            None => {
                let _ = writeln!(out, "listener  none");
            }
        }
        if let Some(p) = &self.proxy {
            let from = if p.trusted_from.is_empty() {
                "any peer".to_string()
            } else {
                p.trusted_from.join(", ")
            };
            let _ = writeln!(
                out,
                "proxy     PROXY {} header within {}; trusted senders: {from}; {}",
                p.versions,
                duration(p.timeout_ms),
                match (&p.sender, p.trusted) {
                    (Some(s), true) => format!("{s} is trusted; the client is {}", p.client),
                    (Some(s), false) => format!("{s} is NOT trusted"),
                    (None, _) => format!("the client is {}", p.client),
                }
            );
        }
        if let Some(a) = &self.acl {
            let _ = writeln!(
                out,
                "acl       {}{}",
                a.reason,
                at(&a.rule.as_ref().and_then(|r| r.at.clone()))
            );
        }
        if let Some(t) = &self.tls {
            let _ = writeln!(
                out,
                "tls       terminated{}: {}; handshake within {} s",
                if t.auto {
                    " (tls = auto: a client that starts without a TLS handshake is relayed in plain text)"
                } else {
                    ""
                },
                t.versions.join(", "),
                t.handshake_timeout_s
            );
            match &t.certificate {
                Some(cert) => match &cert.error {
                    None => {
                        let _ = writeln!(
                            out,
                            "          certificate {}: {}, names {}, valid until {}",
                            cert.file,
                            cert.subject.as_deref().unwrap_or(""),
                            names(cert),
                            cert.not_after.as_deref().unwrap_or("")
                        );
                    }
                    Some(error) => {
                        let _ = writeln!(
                            out,
                            "          certificate {}: not read here: {error}",
                            cert.file
                        );
                    }
                },
                None => {
                    let _ = writeln!(out, "          no certificate in the plan");
                }
            }
            match (&t.sni, t.covers) {
                (Some(sni), Some(true)) => {
                    let _ = writeln!(out, "          the certificate serves {sni}");
                }
                (Some(sni), Some(false)) => {
                    let _ = writeln!(
                        out,
                        "          the certificate does NOT serve {sni}: a client that checks the name fails its handshake"
                    );
                }
                (Some(sni), None) => {
                    let _ = writeln!(out, "          whether it serves {sni} is not known here");
                }
                (None, _) => {}
            }
        }
        if let Some(r) = &self.route {
            let _ = writeln!(out, "route     {} ({})", r.reason, r.mode);
        }
        let method = self.balance.as_ref().map(|b| b.method);
        if let Some(s) = &self.sticky {
            let _ = if method == Some("source") {
                writeln!(
                    out,
                    "sticky    the {} cache ({} s, {} entries): a client ({}) that comes back within {} s of its last connection goes to the worker it went to last; `balance = source` chooses its remote",
                    s.scope, s.period_s, s.size, s.key, s.period_s
                )
            } else {
                writeln!(
                    out,
                    "sticky    the {} cache ({} s, {} entries): a client ({}) that comes back within {} s of its last connection goes to the remote it went to last while that remote can take it; a first connection follows the order below",
                    s.scope, s.period_s, s.size, s.key, s.period_s
                )
            };
        }
        if let Some(b) = &self.balance {
            let _ = match &b.client {
                Some(client) => writeln!(
                    out,
                    "balance   {}: every worker of every relay with these remotes tries, for {client}, in order:",
                    b.method
                ),
                None => writeln!(
                    out,
                    "balance   {}: a worker with no session tries, in order:",
                    b.method
                ),
            };
            for c in &b.candidates {
                let mut extras = Vec::new();
                if let Some(v) = c.send_proxy {
                    extras.push(format!("send proxy {v}"));
                }
                if let Some(t) = &c.tls {
                    let mut tls = "tls".to_string();
                    if let Some(sni) = &t.sni {
                        let _ = write!(tls, " sni {sni}");
                    }
                    tls.push_str(if t.verify {
                        " verified"
                    } else {
                        " not verified"
                    });
                    if let Some(ca) = &t.ca_file {
                        let _ = write!(tls, " against {ca}");
                    }
                    if let Some(cert) = &t.cert_file {
                        let _ = write!(tls, ", client certificate {cert}");
                    }
                    extras.push(tls);
                }
                if let Some(k) = &c.check {
                    extras.push(format!(
                        "checked every {} ({}{}{}, rise {} fall {})",
                        duration(k.interval_ms),
                        if k.tls { "TLS handshake" } else { "connect" },
                        if k.send { ", send" } else { "" },
                        k.expect.map_or(String::new(), |e| format!(", expect {e}")),
                        k.rise,
                        k.fall
                    ));
                }
                let extras = if extras.is_empty() {
                    String::new()
                } else {
                    format!("; {}", extras.join("; "))
                };
                let _ = writeln!(
                    out,
                    "          {}. remote #{} {} weight {}{extras}{}",
                    c.order,
                    c.index + 1,
                    c.remote,
                    c.weight,
                    at(&c.at)
                );
            }
            if !b.discovered.is_empty() {
                let _ = if b.client.is_some() {
                    writeln!(
                        out,
                        "          and the remotes found for these names, ranked in the same order among them: their addresses are resolved at run time, so where they fall in it is not known here (`tcprelay ctl remotes` lists them):"
                    )
                } else {
                    writeln!(
                        out,
                        "          then the remotes found for these names, resolved at run time (not known to the compiler; `tcprelay ctl remotes` lists them):"
                    )
                };
                for d in &b.discovered {
                    let what = match (d.port, d.weight) {
                        (Some(port), Some(weight)) => format!(
                            "A and AAAA records: each address at port {port}/{}, weight {weight}",
                            d.protocol
                        ),
                        _ => format!(
                            "SRV records: each target at its record's port/{} and weight",
                            d.protocol
                        ),
                    };
                    let _ = writeln!(out, "          - {} ({what}){}", d.name, at(&d.at));
                }
            }
            let _ = writeln!(
                out,
                "          a remote that fails to connect within {} s is marked dead and the next is tried; when all fail, the marks are cleared and they are tried once more{}",
                b.connect_timeout_s,
                b.rebalance.map_or(String::new(), |n| format!(
                    "; rebalance clears the marks every {n} selections"
                ))
            );
            let _ = if b.client.is_some() {
                writeln!(
                    out,
                    "          the order is the weighted rendezvous hash of the client's address (docs/balance.md): the worker's load does not change it; a remote drained or down by its health checks is skipped, one at weight 0 (`tcprelay ctl weight`) comes last"
                )
            } else {
                writeln!(
                    out,
                    "          under load each session goes to the remote with the lowest active*256/weight (ties to the first); a remote drained or down by its health checks gets no new session, one at weight 0 (`tcprelay ctl weight`) only when no other can take it"
                )
            };
            if let Some(local) = &b.local_address {
                let _ = writeln!(
                    out,
                    "          connections to the remotes come from {local}"
                );
            }
        }
        let _ = writeln!(out, "result    {}", self.result.message);
        out
    }
}

fn names(cert: &CertificateReport) -> String {
    let all: Vec<&str> = cert
        .names
        .iter()
        .map(String::as_str)
        .chain(cert.addresses.iter().map(String::as_str))
        .collect();
    if all.is_empty() {
        "none".to_string()
    } else {
        all.join(", ")
    }
}

/// How `route` prints its report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One paragraph per step of the data path.
    Human,
    /// One JSON object on one line, with stable field names.
    Json,
}

/// The transport of the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Transport {
    Tcp,
    Sctp,
}

/// The arguments of `tcprelay-cc route`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The plan file, or a configuration (a path, `-` for standard input, or a
    /// file://, http:// or https:// URL) compiled on the fly.
    #[arg(value_name = "INPUT", value_hint = clap::ValueHint::FilePath)]
    pub input: String,
    /// The id of the spawnd section, for a configuration.
    #[arg(default_value = "spawnd")]
    pub id: String,
    /// The id of the tcprelay section, for a configuration.
    #[arg(short = 'i', long = "child-id", default_value = "tcprelay")]
    pub child_id: String,
    /// The address the connection comes from (the client, or the proxy that sends
    /// a PROXY header); not needed towards a Unix-domain socket.
    #[arg(long, value_name = "IP[:PORT]", value_parser = Endpoint::parse)]
    pub from: Option<Endpoint>,
    /// The address the client connects to.
    #[arg(long, value_name = "IP:PORT|unix:PATH", value_parser = parse_destination)]
    pub to: ListenAddress,
    /// The server name the client sends in its TLS handshake.
    #[arg(long, value_name = "NAME")]
    pub sni: Option<String>,
    /// The client a PROXY header names, on a listener that accepts them.
    #[arg(long = "proxy-from", value_name = "IP[:PORT]", value_parser = Endpoint::parse)]
    pub proxy_from: Option<Endpoint>,
    /// The transport of the connection.
    #[arg(long, value_enum, default_value = "tcp")]
    pub protocol: Transport,
    /// How to print the report.
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
}

/// Exit status: a configuration with errors, an unreadable input, a question the
/// plan cannot answer.
const EXIT_ERRORS: u8 = 2;

/// Runs `tcprelay-cc route`: 0 relayed, 1 refused, 2 errors.
pub fn run(args: &Args) -> std::process::ExitCode {
    use std::process::ExitCode;
    let fail = |message: String| {
        eprintln!("tcprelay-cc: {message}");
        ExitCode::from(EXIT_ERRORS)
    };
    let selection = crate::Selection {
        spawnd_id: args.id.clone(),
        tcprelay_id: args.child_id.clone(),
    };
    let loaded = match load(&args.input, &selection) {
        Ok(loaded) => loaded,
        Err(message) => return fail(message),
    };
    let query = Query {
        from: args.from,
        to: args.to.clone(),
        protocol: match args.protocol {
            Transport::Tcp => Protocol::Tcp,
            Transport::Sctp => Protocol::Sctp,
        },
        sni: args.sni.clone(),
        proxy_from: args.proxy_from,
    };
    let report = match &loaded {
        Input::Plan(plan) => route(plan, &NoPlaces, &query),
        Input::Config(compiled) => match &compiled.plan {
            Some(plan) => route(plan, &**compiled, &query),
            None => return ExitCode::from(EXIT_ERRORS),
        },
    };
    let report = match report {
        Ok(report) => report,
        Err(message) => return fail(message),
    };
    let text = match args.format {
        Format::Human => report.human(),
        Format::Json => report.json(),
    };
    if let Err(e) = std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes()) {
        return fail(format!("cannot write the report: {e}"));
    }
    ExitCode::from(report.exit_code())
}

/// Reads `input` ([`crate::input::load`]); a configuration with errors has its
/// diagnostics printed on standard error (its `Compiled` then holds no plan).
pub fn load(input: &str, selection: &crate::Selection) -> Result<Input, String> {
    let loaded = crate::input::load(input, selection)?;
    if let Input::Config(compiled) = &loaded {
        if compiled.plan.is_none() {
            let text = crate::diag::render::human_map(&compiled.diags, &compiled.map, false);
            eprint!("{text}");
            eprintln!("tcprelay-cc: {input}: the configuration has errors: no route to show");
        }
    }
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Selection;

    /// A configuration compiled in memory, with its places.
    fn compiled(src: &str) -> crate::Compiled {
        let c = crate::compile_with(src, "t.cfg", &Selection::default(), &|_| None);
        assert!(c.plan.is_some(), "{:?}", c.diags);
        c
    }

    fn ask(c: &crate::Compiled, from: Option<&str>, to: &str) -> Query {
        let _ = c;
        Query {
            from: from.map(|f| Endpoint::parse(f).unwrap()),
            to: parse_destination(to).unwrap(),
            protocol: Protocol::Tcp,
            sni: None,
            proxy_from: None,
        }
    }

    fn run(c: &crate::Compiled, q: &Query) -> Result<Report, String> {
        route(c.plan.as_ref().unwrap(), c, q)
    }

    const ACL: &str = "id = spawnd {
  listen = { address = 0.0.0.0 port = 80 }
  listen = { address = 127.0.0.1 port = 81 }
  acl = deny 10.1.0.0/16
  acl = permit 10.0.0.0/8
}
id = tcprelay {
  remote = { address = 192.0.2.1 port = 8080 weight = 3 }
  remote = { address = 192.0.2.2 port = 8080 }
}
";

    #[test]
    fn the_deciding_rule_is_named_with_its_place() {
        let c = compiled(ACL);
        let r = run(&c, &ask(&c, Some("10.1.2.3"), "192.0.2.9:80")).unwrap();
        assert_eq!(r.result.outcome, "refused");
        assert_eq!(r.result.stage, Some("acl"));
        assert_eq!(r.exit_code(), 1);
        let rule = r.acl.as_ref().unwrap().rule.as_ref().unwrap();
        assert_eq!(rule.index, 0);
        assert_eq!(rule.text, "deny 10.1.0.0/16");
        // The rule's place is its network, where the check reports it.
        assert_eq!(rule.at.as_deref(), Some("t.cfg:4:14"));
        assert!(r.balance.is_none(), "a denied client reaches no remote");

        let r = run(&c, &ask(&c, Some("10.2.0.1:4000"), "192.0.2.9:80")).unwrap();
        assert_eq!(r.exit_code(), 0);
        assert_eq!(r.acl.as_ref().unwrap().rule.as_ref().unwrap().index, 1);

        let r = run(&c, &ask(&c, Some("192.0.2.200"), "192.0.2.9:80")).unwrap();
        let acl = r.acl.as_ref().unwrap();
        assert!(acl.rule.is_none() && !acl.permit, "no rule matches: denied");
        assert!(acl
            .reason
            .starts_with("no rule matches 192.0.2.200: denied"));
    }

    #[test]
    fn the_exact_listener_is_chosen_and_a_port_nobody_binds_is_refused() {
        let c = compiled(ACL);
        let r = run(&c, &ask(&c, Some("10.0.0.1"), "127.0.0.1:81")).unwrap();
        let l = r.listener.as_ref().unwrap();
        assert_eq!((l.index, l.matched), (1, "exact"));
        assert_eq!(l.at.as_deref(), Some("t.cfg:3:3"));
        let r = run(&c, &ask(&c, Some("10.0.0.1"), "10.0.0.2:80")).unwrap();
        let l = r.listener.as_ref().unwrap();
        assert_eq!((l.index, l.matched), (0, "wildcard"));
        let r = run(&c, &ask(&c, Some("10.0.0.1"), "10.0.0.2:82")).unwrap();
        assert!(r.listener.is_none());
        assert_eq!(r.result.stage, Some("listener"));
        assert_eq!(r.exit_code(), 1);
        assert!(
            r.acl.is_none(),
            "nothing is decided after the kernel refused"
        );
    }

    #[test]
    fn candidates_come_in_plan_order_with_weights_and_places() {
        let c = compiled(ACL);
        let r = run(&c, &ask(&c, Some("10.0.0.1"), "10.0.0.2:80")).unwrap();
        let b = r.balance.as_ref().unwrap();
        assert_eq!(b.method, "least-conn");
        let got: Vec<(usize, &str, u32, Option<&str>)> = b
            .candidates
            .iter()
            .map(|c| (c.order, c.remote.as_str(), c.weight, c.at.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                (1, "192.0.2.1:8080/TCP", 3, Some("t.cfg:8:3")),
                (2, "192.0.2.2:8080/TCP", 1, Some("t.cfg:9:3")),
            ]
        );
        let json: serde_json::Value = serde_json::from_str(&r.json()).unwrap();
        assert_eq!(json["balance"]["method"], "least-conn");
        assert_eq!(
            json["balance"]["candidates"][0]["remote"],
            "192.0.2.1:8080/TCP"
        );
        assert_eq!(json["result"]["outcome"], "relayed");
    }

    #[test]
    fn under_source_discovered_names_rank_among_the_fixed_remotes() {
        let src = "id = spawnd {
  listen = { address = 0.0.0.0 port = 80 }
}
id = tcprelay {
  balance = source
  remote = { address = 192.0.2.1 port = 8080 }
  remote = { address = db.example port = 8080 }
}
";
        let c = compiled(src);
        let r = run(&c, &ask(&c, Some("10.0.0.1"), "10.0.0.2:80")).unwrap();
        // The hash ranks the addresses found at run time among the fixed remote: the
        // fixed one is first only when none of them ranks above it.
        assert_eq!(
            r.result.message,
            "relayed: every worker tries remote #1 192.0.2.1:8080/TCP (or a remote found for a name that ranks above it) first for this client"
        );
        let text = r.human();
        assert!(
            text.contains(
                "and the remotes found for these names, ranked in the same order among them"
            ),
            "{text}"
        );
        assert!(!text.contains("then the remotes found"), "{text}");
    }

    #[test]
    fn discovered_names_are_shown_as_resolved_at_run_time() {
        let src = "id = spawnd {
  listen = { address = 0.0.0.0 port = 80 }
}
id = tcprelay {
  remote = { address = 192.0.2.1 port = 8080 }
  remote = { address = db.example port = 5432 weight = 2 }
  remote = { srv = _redis._tcp.example }
}
";
        let c = compiled(src);
        let r = run(&c, &ask(&c, Some("10.0.0.1"), "10.0.0.2:80")).unwrap();
        let b = r.balance.as_ref().unwrap();
        assert_eq!(b.candidates.len(), 1);
        type Row<'a> = (&'a str, &'a str, Option<u16>, Option<u32>, Option<&'a str>);
        let got: Vec<Row> = b
            .discovered
            .iter()
            .map(|d| (d.name.as_str(), d.lookup, d.port, d.weight, d.at.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "db.example",
                    "A/AAAA",
                    Some(5432),
                    Some(2),
                    Some("t.cfg:6:3")
                ),
                ("_redis._tcp.example", "SRV", None, None, Some("t.cfg:7:3")),
            ]
        );
        let text = r.human();
        for line in [
            "          then the remotes found for these names, resolved at run time (not known to the compiler; `tcprelay ctl remotes` lists them):",
            "          - db.example (A and AAAA records: each address at port 5432/TCP, weight 2) (t.cfg:6:3)",
            "          - _redis._tcp.example (SRV records: each target at its record's port/TCP and weight) (t.cfg:7:3)",
        ] {
            assert!(text.lines().any(|l| l == line), "no line {line:?} in\n{text}");
        }
        // Only names: the first try is a remote found at run time.
        let c = compiled("id = spawnd { listen = { port = 80 } } id = tcprelay { remote = { srv = _a._tcp.example } }");
        let r = run(&c, &ask(&c, Some("10.0.0.1"), "10.0.0.2:80")).unwrap();
        assert_eq!(
            r.result.message,
            "relayed: a worker with no session tries a remote found for _a._tcp.example (resolved at run time) first"
        );
        // No names: no `discovered` in the JSON.
        let c = compiled(ACL);
        let r = run(&c, &ask(&c, Some("10.0.0.1"), "10.0.0.2:80")).unwrap();
        assert!(!r.json().contains("discovered"));
    }

    #[test]
    fn a_routes_own_balance_and_names_are_the_ones_shown_for_its_clients() {
        let src = "id = spawnd {
  listen = { address = 0.0.0.0 port = 443 tls = yes }
}
id = tcprelay {
  route = { sni = a.test mode = passthrough balance = source
            remote = { address = 192.0.2.1 port = 443 } remote = { address = 192.0.2.2 port = 443 }
            remote = { address = a.example port = 443 } }
  route = { mode = passthrough remote = { address = 192.0.2.9 port = 443 } remote = { address = d.example port = 443 } }
}
";
        let c = compiled(src);
        let plan = c.plan.as_ref().unwrap();
        let mut q = ask(&c, Some("10.0.0.1"), "10.0.0.2:443");
        q.sni = Some("a.test".into());
        let r = run(&c, &q).unwrap();
        let b = r.balance.as_ref().unwrap();
        assert_eq!(b.method, "source", "the route's own balance");
        let order: Vec<usize> =
            decide::source_order(&plan.relay.remotes, "10.0.0.1".parse().unwrap())
                .into_iter()
                .filter(|&i| plan.relay.remotes[i].route == Some(0))
                .collect();
        let shown: Vec<usize> = b.candidates.iter().map(|c| c.index).collect();
        assert_eq!(shown, order);
        let names: Vec<&str> = b.discovered.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["a.example"], "the route's names only");
        // The default route: the section's least connections, its own name.
        q.sni = Some("other.test".into());
        let r = run(&c, &q).unwrap();
        let b = r.balance.as_ref().unwrap();
        assert_eq!(b.method, "least-conn");
        let names: Vec<&str> = b.discovered.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["d.example"]);
    }

    #[test]
    fn arguments_that_do_not_fit_the_question_are_errors() {
        let c = compiled(ACL);
        let e = run(&c, &ask(&c, None, "10.0.0.2:80")).unwrap_err();
        assert!(e.contains("--from"), "{e}");
        let e = run(&c, &ask(&c, Some("2001:db8::1"), "10.0.0.2:80")).unwrap_err();
        assert!(e.contains("different address families"), "{e}");
        let mut q = ask(&c, Some("10.0.0.1"), "10.0.0.2:80");
        q.proxy_from = Some(Endpoint::parse("192.0.2.7").unwrap());
        let e = run(&c, &q).unwrap_err();
        assert!(e.contains("does not accept PROXY headers"), "{e}");
        // A mapped source is its IPv4 address.
        let r = run(&c, &ask(&c, Some("::ffff:10.1.0.1"), "10.0.0.2:80")).unwrap();
        assert_eq!(r.acl.unwrap().client.as_deref(), Some("10.1.0.1"));
        assert!(Endpoint::parse("10.0.0.1:99999").is_err());
        assert!(parse_destination("10.0.0.1")
            .unwrap_err()
            .contains("no port"));
        assert!(parse_destination("unix:").is_err());
        assert_eq!(
            parse_destination("[::1]:80").unwrap(),
            ListenAddress::Inet("[::1]:80".parse().unwrap())
        );
    }

    const PROXY: &str = "id = spawnd {
  listen = { address = 0.0.0.0 port = 8080 accept proxy = v2 accept proxy from = 10.0.0.2 }
  listen = { path = /run/t.sock haproxy = yes }
  listen = { path = /run/u.sock }
  acl = permit 192.0.2.0/24
  sticky cache period = 30
}
id = tcprelay {
  remote = { address = 192.0.2.1 port = 8080 }
}
";

    #[test]
    fn a_proxy_header_names_the_client_once_its_sender_is_trusted() {
        let c = compiled(PROXY);
        let mut q = ask(&c, Some("10.0.0.2"), "10.0.0.1:8080");
        let e = run(&c, &q).unwrap_err();
        assert!(e.contains("--proxy-from"), "{e}");
        q.proxy_from = Some(Endpoint::parse("192.0.2.7:5555").unwrap());
        let r = run(&c, &q).unwrap();
        assert_eq!(r.exit_code(), 0, "{}", r.human());
        let p = r.proxy.as_ref().unwrap();
        assert!(p.trusted);
        assert_eq!(p.trusted_from, ["10.0.0.2/32"]);
        assert_eq!(r.acl.as_ref().unwrap().client.as_deref(), Some("192.0.2.7"));
        let s = r.sticky.as_ref().unwrap();
        assert_eq!(
            (s.scope, s.key.as_str()),
            ("relay", "192.0.2.7 on port 8080")
        );

        q.from = Some(Endpoint::parse("10.0.0.3").unwrap());
        let r = run(&c, &q).unwrap();
        assert_eq!(r.result.stage, Some("proxy"));
        assert!(r.acl.is_none(), "closed before the header is read");

        // A trusted sender cannot take a client past the rules.
        q.from = Some(Endpoint::parse("10.0.0.2").unwrap());
        q.proxy_from = Some(Endpoint::parse("198.51.100.1").unwrap());
        assert_eq!(run(&c, &q).unwrap().result.stage, Some("acl"));
    }

    #[test]
    fn source_gives_the_hash_order_of_the_header_client() {
        let src = "id = spawnd {
  listen = { address = 10.0.0.1 port = 8080 accept proxy = v1 accept proxy from = 10.0.0.2 }
}
id = tcprelay {
  balance = source
  remote = { address = 192.0.2.1 port = 80 }
  remote = { address = 192.0.2.2 port = 80 weight = 2 }
  remote = { address = 192.0.2.3 port = 80 }
}
";
        let c = compiled(src);
        let plan = c.plan.as_ref().unwrap();
        let mut firsts = std::collections::BTreeSet::new();
        for n in 0..64u8 {
            let client = IpAddr::from([198, 51, 100, n]);
            let mut q = ask(&c, Some("10.0.0.2"), "10.0.0.1:8080");
            q.proxy_from = Some(Endpoint::parse(&format!("{client}:4000")).unwrap());
            let r = run(&c, &q).unwrap();
            let b = r.balance.as_ref().unwrap();
            assert_eq!(
                (b.method, b.client.as_deref()),
                ("source", Some(client.to_string().as_str()))
            );
            let got: Vec<usize> = b.candidates.iter().map(|c| c.index).collect();
            assert_eq!(got, decide::source_order(&plan.relay.remotes, client));
            assert!(r.human().contains("every worker of every relay"));
            firsts.insert(got[0]);
        }
        assert_eq!(firsts.len(), 3, "each remote is some client's first");
        // Without an address to hash: least connections, with a note.
        let unix = src.replace(
            "address = 10.0.0.1 port = 8080 accept proxy = v1 accept proxy from = 10.0.0.2",
            "path = /run/a.sock",
        );
        let c = compiled(&unix);
        let r = run(&c, &ask(&c, None, "unix:/run/a.sock")).unwrap();
        let b = r.balance.as_ref().unwrap();
        assert_eq!((b.method, b.client.as_deref()), ("least-conn", None));
        assert!(r
            .notes
            .iter()
            .any(|n| n.contains("balanced by least connections")));
    }

    #[test]
    fn unix_clients_have_no_address_unless_a_header_names_one() {
        let c = compiled(PROXY);
        let r = run(&c, &ask(&c, None, "unix:/run/u.sock")).unwrap();
        let acl = r.acl.as_ref().unwrap();
        assert!(acl.permit && acl.client.is_none(), "rules do not apply");
        assert!(r.sticky.is_none(), "a Unix client is never sticky");
        let mut q = ask(&c, Some("10.9.9.9"), "unix:/run/t.sock");
        q.proxy_from = Some(Endpoint::parse("198.51.100.1").unwrap());
        let r = run(&c, &q).unwrap();
        assert_eq!(r.result.stage, Some("acl"), "the header's client is judged");
        assert!(r.notes.iter().any(|n| n.starts_with("--from is not used")));
    }

    #[test]
    fn a_tls_listener_tells_whether_its_certificate_serves_the_name() {
        let pki = crate::tlscheck::test_pki::fixture();
        let src = format!(
            "id = spawnd {{\n  listen = {{ address = 127.0.0.1 port = 443 tls = yes }}\n}}\nid = tcprelay {{\n  remote = {{ address = 127.0.0.1 port = 80 }}\n  tls cert-file = {}\n  tls key-file = {}\n}}\n",
            pki.cert, pki.key
        );
        let c = compiled(&src);
        let mut q = ask(&c, Some("127.0.0.1"), "127.0.0.1:443");
        q.sni = Some("LOCALHOST".to_string());
        let t = run(&c, &q).unwrap().tls.unwrap();
        assert_eq!(t.covers, Some(true));
        let cert = t.certificate.unwrap();
        assert_eq!(cert.subject.as_deref(), Some("CN=localhost"));
        assert_eq!(t.versions, ["TLSv1.2", "TLSv1.3"]);
        q.sni = Some("example.com".to_string());
        assert_eq!(run(&c, &q).unwrap().tls.unwrap().covers, Some(false));
    }

    #[test]
    fn places_follow_includes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("remotes.cfg"),
            "# the remotes\nremote = { address = 192.0.2.1 port = 80 }\n",
        )
        .unwrap();
        let main = dir.path().join("main.cfg");
        let src = "id = spawnd {\n  listen = { address = 127.0.0.1 port = 80 }\n}\nid = tcprelay {\n  include = remotes.cfg\n}\n";
        std::fs::write(&main, src).unwrap();
        let name = main.display().to_string();
        let c = crate::compile_with(src, &name, &Selection::default(), &|_| None);
        let r = route(
            c.plan.as_ref().expect("a plan"),
            &c,
            &ask(&c, Some("127.0.0.1"), "127.0.0.1:80"),
        )
        .unwrap();
        let at = r.balance.unwrap().candidates[0].at.clone().unwrap();
        assert!(at.ends_with("remotes.cfg:2:1"), "{at}");
        assert_eq!(r.listener.unwrap().at.unwrap(), format!("{name}:2:3"));
        // A plan file has no places.
        let plan = c.plan.clone().unwrap();
        let r = route(
            &plan,
            &NoPlaces,
            &ask(&c, Some("127.0.0.1"), "127.0.0.1:80"),
        )
        .unwrap();
        assert!(r.listener.unwrap().at.is_none());
    }
}
