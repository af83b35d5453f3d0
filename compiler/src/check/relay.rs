//! The tcprelay section: remotes, the relay settings and the TLS material.

use super::certs;
use super::common;
use super::model::{
    Bind, CheckSetting, Keyed, ListenerModel, NameModel, RelayModel, RemoteModel, RemoteTlsModel,
    TlsModel,
};
use super::scope::{positive, string, Cx, Scope};
use super::SectionRole;
use super::{dns, health, values};
use crate::ast::{Body, Directive, Key, Section, Sp, Span, Value};
use crate::diag::{Code, Diagnostic};
use crate::tlscheck::{self, TlsProblem};
use tcprelay_plan::{OsText, Secret};

/// The keys valid inside `remote { }`.
pub(super) const REMOTE_VALID: &[Key] = &[
    Key::Address,
    Key::Port,
    Key::Protocol,
    Key::Weight,
    Key::SendProxy,
    Key::Tls,
    Key::TlsSni,
    Key::TlsVerify,
    Key::TlsCaFile,
    Key::TlsCertFile,
    Key::TlsKeyFile,
    Key::TlsPassphrase,
    Key::Check,
    Key::Srv,
];

/// Checks the tcprelay section. Spawnd-role directives were reported by
/// [`SectionRole::admits`] (or checked by the spawnd check, when one section plays both
/// roles).
pub(super) fn section(sec: &Section, role: &SectionRole<'_>, cx: &mut Cx<'_>) -> RelayModel {
    let mut m = RelayModel::default();
    let mut scope = Scope::default();
    let mut remote_blocks = 0usize;
    // What each remote's own `check` said, merged with the section's at the end.
    let mut own_checks = Vec::new();
    for d in &sec.body {
        let d: &Directive = &d.node;
        if !role.admits(&d.key, cx) {
            continue;
        }
        cx.deprecated(&d.key);
        let max = u64::MAX;
        match d.key.node {
            Key::Remote => {
                remote_blocks += 1;
                if let Some(body) = cx.block(d) {
                    for (r, check) in remote(d.key.span, body, cx) {
                        m.remotes.push(r);
                        own_checks.push(check);
                    }
                }
            }
            Key::Resolvers => {
                if let Some(r) = dns::resolvers(d, &mut scope, cx) {
                    m.resolve.resolvers = Some(r);
                }
            }
            Key::ResolveInterval
            | Key::ResolveIntervalMin
            | Key::ResolveIntervalMax
            | Key::ResolveStart => dns::directive(d, &mut scope, &mut m.resolve, cx),
            Key::Route => {
                remote_blocks += super::routes::block(d, &mut m, &mut own_checks, cx);
            }
            Key::LocalAddress => scope.scalar(d, values::ip, &mut m.local_address, cx),
            Key::Rebalance => scope.scalar(
                d,
                |v| positive(v, max, |s| zero(s, "rebalance", "to never rebalance")),
                &mut m.rebalance,
                cx,
            ),
            Key::Balance => scope.scalar(d, super::balance::check_balance, &mut m.balance, cx),
            Key::Retire | Key::RetireLimit => scope.scalar(
                d,
                |v| positive(v, max, |s| zero(s, "retire", "to never retire a worker")),
                &mut m.retire,
                cx,
            ),
            Key::IdleTimeout => scope.scalar(d, values::seconds_u32, &mut m.idle_timeout, cx),
            Key::SilentTimeout => scope.scalar(d, values::seconds_u32, &mut m.silent_timeout, cx),
            Key::ConnectTimeout => scope.scalar(
                d,
                |v| seconds_at_least_one(v, "connect timeout"),
                &mut m.connect_timeout,
                cx,
            ),
            Key::TlsHandshakeTimeout => scope.scalar(
                d,
                |v| seconds_at_least_one(v, "tls handshake timeout"),
                &mut m.tls_handshake_timeout,
                cx,
            ),
            Key::HalfCloseTimeout => {
                scope.scalar(d, values::seconds_u32, &mut m.half_close_timeout, cx)
            }
            Key::DrainTimeout => scope.scalar(d, values::seconds_u32, &mut m.drain_timeout, cx),
            Key::DrainGenerations => scope.scalar(
                d,
                |v| {
                    positive(v, u64::from(u32::MAX), |s| {
                        Diagnostic::error(
                            Code::ZeroCount,
                            s,
                            "`drain generations` must be at least 1",
                        )
                        .with_label("with 0, a reload would stop every session at once")
                        .with_help("remove the directive for the default, 8")
                    })
                    .map(|n| n as u32)
                },
                &mut m.drain_generations,
                cx,
            ),
            Key::ConnectionLog => scope.scalar(d, values::boolean, &mut m.connection_log, cx),
            Key::SendProxy => scope.scalar(d, values::proxy_version, &mut m.send_proxy, cx),
            Key::Check => health::directive(d, &mut scope, &mut m.check, cx),
            _ if tls_material(d, &mut scope, &mut m.tls, false, cx) => {}
            _ if common::directive(
                d,
                &mut scope,
                common::Common {
                    syslog: &mut m.syslog,
                    debug: &mut m.debug,
                    proctitle: &mut m.proctitle,
                },
                cx,
            ) => {}
            // `SectionRole::admits` let only tcprelay and either-role keys through.
            _ => debug_assert!(false, "unhandled tcprelay key {:?}", d.key.node),
        }
    }
    super::routes::check(&m, cx);
    // The remotes given by name are the runtime's to find: templates, apart.
    let (mut found, mut found_checks) = (Vec::new(), Vec::new());
    let mut fixed_checks = Vec::new();
    for (r, check) in std::mem::take(&mut m.remotes).into_iter().zip(own_checks) {
        if r.name.is_some() {
            found.push(r);
            found_checks.push(check);
        } else {
            m.remotes.push(r);
            fixed_checks.push(check);
        }
    }
    m.discovered = found;
    health::resolve(
        m.remotes.iter_mut().chain(m.discovered.iter_mut()),
        fixed_checks.into_iter().chain(found_checks),
        m.check.as_ref(),
        cx,
    );
    dns::finish(&m, cx);
    local_address_family(&m, cx);
    if remote_blocks == 0 {
        cx.push(
            Diagnostic::error(
                Code::NoRemote,
                role.id.span,
                format!("no remote in section `{}`", role.id.node.text),
            )
            .with_label("this section has no `remote`")
            .with_help("add `remote = { address = IP port = N }` (or a host name, `address = NAME`, which the relay resolves)"),
        );
    }
    m
}

/// A `local address` binds the outgoing connections to remotes of its own address
/// family only: warns (once, naming the first) about remotes of the other family,
/// whose connections get a source address the kernel picks.
fn local_address_family(m: &RelayModel, cx: &mut Cx<'_>) {
    let Some(local) = &m.local_address else {
        return;
    };
    let family = |ip: &std::net::IpAddr| if ip.is_ipv4() { "IPv4" } else { "IPv6" };
    let other: Vec<&RemoteModel> = m
        .remotes
        .iter()
        .filter(|r| r.address.node.is_ipv4() != local.node.is_ipv4())
        .collect();
    let Some(first) = other.first() else {
        return;
    };
    let mut diagnostic = Diagnostic::warning(
        Code::Ignored,
        local.span,
        if other.len() == 1 {
            format!(
                "`local address` {} does not apply to the {} remote {}",
                local.node,
                family(&first.address.node),
                first.address.node
            )
        } else {
            format!(
                "`local address` {} does not apply to {} {} remotes",
                local.node,
                other.len(),
                family(&first.address.node)
            )
        },
    )
    .with_label(format!("used for {} remotes only", family(&local.node)))
    .with_secondary(
        first.address.span,
        format!("an {} remote", family(&first.address.node)),
    )
    .with_note("connections to it leave from a source address the kernel picks");
    if other.len() < m.remotes.len() {
        diagnostic = diagnostic.with_help(
            "give remotes of one address family, or remove `local address` if any source will do",
        );
    } else {
        diagnostic = diagnostic.with_help(format!(
            "use an {} `local address`, or remove it",
            family(&first.address.node)
        ));
    }
    cx.push(diagnostic);
}

fn zero(span: Span, what: &str, to: &str) -> Diagnostic {
    Diagnostic::error(
        Code::ZeroCount,
        span,
        format!("`{what}` must be at least 1"),
    )
    .with_label("0 is not allowed here")
    .with_help(format!("remove the directive {to}"))
}

/// A timeout in seconds that cannot be "never": E0044 for 0.
fn seconds_at_least_one(v: &Sp<Value>, what: &str) -> values::Parsed<u32> {
    values::seconds(v, |v| {
        positive(v, u64::from(u32::MAX), |s| {
            Diagnostic::error(Code::ZeroCount, s, format!("`{what}` must be at least 1"))
                .with_label("0 would give no time at all")
                .with_help("remove the directive for the default, 10 seconds")
        })
    })
    .map(|n| n as u32)
}

/// A file name: not empty.
pub(super) fn file_name(v: &Sp<Value>) -> values::Parsed<String> {
    if v.node.text.is_empty() {
        return values::fail(
            Diagnostic::error(
                Code::CertificateUnreadable,
                v.span,
                "the file name is empty",
            )
            .with_label("expected the path of a PEM file"),
        );
    }
    string(v)
}

/// A certificate, key or passphrase directive (`tls cert-file`, `tls key-file`,
/// `tls passphrase`, and their older spellings) into `tls`, as the section, a
/// remote and a route each read them; false for any other directive. With
/// `deprecated`, a spelling kept only for compatibility is warned about.
pub(super) fn tls_material(
    d: &Directive,
    scope: &mut Scope,
    tls: &mut TlsModel,
    deprecated: bool,
    cx: &mut Cx<'_>,
) -> bool {
    let is_cert = matches!(
        d.key.node,
        Key::TlsCertFile | Key::TlsCertfile | Key::SslCert | Key::SslCertfile | Key::SslCertFile
    );
    let is_key = matches!(
        d.key.node,
        Key::TlsKeyFile | Key::TlsKeyfile | Key::SslKey | Key::SslKeyfile | Key::SslKeyFile
    );
    let is_passphrase = matches!(d.key.node, Key::TlsPassphrase | Key::SslPassphrase);
    if !(is_cert || is_key || is_passphrase) {
        return false;
    }
    if deprecated {
        cx.deprecated(&d.key);
    }
    if is_passphrase {
        let secret = |v: &Sp<Value>| Ok(Secret::new(v.node.text.clone()));
        keyed(d, scope, secret, &mut tls.passphrase, cx);
    } else {
        let slot = if is_cert { &mut tls.cert } else { &mut tls.key };
        keyed(d, scope, file_name, slot, cx);
    }
    true
}

/// A scalar that keeps the span of its key too (for the TLS diagnostics).
pub(super) fn keyed<T>(
    d: &Directive,
    scope: &mut Scope,
    parse: impl FnOnce(&Sp<Value>) -> values::Parsed<T>,
    slot: &mut Option<Keyed<T>>,
    cx: &mut Cx<'_>,
) {
    let mut value = None;
    scope.scalar(d, parse, &mut value, cx);
    if let Some(value) = value {
        *slot = Some(Keyed {
            key: d.key.span,
            value,
        });
    }
}

/// One `remote` block (one remote per address of a host name), with what its own
/// `check` says (merged with the section's later); none when it has an error
/// (reported).
pub(super) fn remote(
    key: Span,
    body: &[Sp<Directive>],
    cx: &mut Cx<'_>,
) -> Vec<(RemoteModel, Option<CheckSetting>)> {
    let errors = cx.diags.len();
    let mut scope = Scope::default();
    let (mut address, mut port, mut protocol, mut weight) = (None, None, None, None);
    let (mut has_address, mut has_port) = (false, false);
    // `srv = NAME`, and where `port` and `weight` were written (E0101).
    let mut srv: Option<Sp<String>> = None;
    let mut has_srv = false;
    let mut port_key = None;
    let mut send_proxy = None;
    let mut tls = RemoteTlsModel::default();
    let mut check = None;
    // A `tls sni` with a bad value (reported) still says which name was meant.
    let mut sni_written = false;
    for d in body {
        let d: &Directive = &d.node;
        match d.key.node {
            Key::Address => {
                has_address = true;
                scope.scalar(d, dns::remote_address, &mut address, cx);
            }
            Key::Srv => {
                has_srv = true;
                scope.scalar(d, dns::srv_name, &mut srv, cx);
            }
            Key::Port | Key::PortWithoutEquals => {
                cx.short_form(d);
                has_port = true;
                port_key = Some(d.key.span);
                scope.scalar(d, values::port, &mut port, cx);
            }
            Key::Protocol => scope.scalar(d, values::protocol, &mut protocol, cx),
            Key::Weight => {
                scope.scalar(d, weight_value, &mut weight, cx);
                if let (Some(w), Body::Value(v)) = (&weight, &d.body) {
                    if w.node == 0 {
                        cx.push(weight_taken_as_one(v));
                        weight = Some(Sp::new(1, w.span));
                    }
                }
            }
            Key::SendProxy => scope.scalar(d, values::proxy_version, &mut send_proxy, cx),
            Key::Check => health::directive(d, &mut scope, &mut check, cx),
            Key::Tls | Key::BareTls => {
                cx.short_form(d);
                scope.scalar(d, values::boolean, &mut tls.on, cx);
            }
            Key::TlsSni => {
                sni_written = true;
                scope.scalar(d, server_name, &mut tls.sni, cx);
            }
            Key::TlsVerify => scope.scalar(d, values::boolean, &mut tls.verify, cx),
            Key::TlsCaFile => keyed(d, &mut scope, file_name, &mut tls.ca_file, cx),
            _ if tls_material(d, &mut scope, &mut tls.client, true, cx) => {}
            _ => cx.misplaced(&d.key, "in a `remote` block", REMOTE_VALID),
        }
    }
    if let Some(srv) = &srv {
        srv_alone(body, srv, has_address, port_key, &weight, cx);
        // The records give the port and the weight.
        port = Some(Sp::new(0, srv.span));
        has_port = false;
        address = Some(Sp::new(dns::Target::Name(srv.node.clone(), None), srv.span));
    } else if !has_address && !has_srv {
        cx.push(
            Diagnostic::error(Code::MissingAddress, key, "remote without an address")
                .with_label("this remote has no address")
                .with_help(
                    "add `address = IP` (or `address = NAME`, or `srv = NAME` for SRV records)",
                ),
        );
    }
    let address_port = address.as_ref().and_then(|a| match &a.node {
        dns::Target::Ips(_, port) | dns::Target::Name(_, port) => port.map(|p| Sp::new(p, a.span)),
    });
    if let (Some(from_address), true) = (&address_port, has_port) {
        cx.push(
            Diagnostic::warning(
                Code::DuplicateDirective,
                from_address.span,
                "the remote's port is given twice, with its address and as `port`",
            )
            .with_label(format!("port {} used", from_address.node))
            .with_note("the port given with the address wins, as in the original")
            .with_help("remove `port`, or the port from the address"),
        );
    }
    if address_port.is_some() {
        port = address_port;
    } else if !has_port && !has_srv {
        cx.push(
            Diagnostic::error(Code::MissingPort, key, "remote without a port")
                .with_label("this remote has no port")
                .with_help("add `port = N`"),
        );
    }
    // A host name is the server name of the TLS towards its addresses.
    let named = matches!(
        (&address, &srv),
        (
            Some(Sp {
                node: dns::Target::Name(..),
                ..
            }),
            None
        )
    );
    super::remote_tls::settings(&tls, sni_written || named, cx);
    if cx.diags[errors..].iter().any(Diagnostic::is_error) {
        return Vec::new();
    }
    let (Some(address), Some(port)) = (address, port) else {
        return Vec::new();
    };
    let ips = match &address.node {
        dns::Target::Ips(ips, _) => ips.clone(),
        dns::Target::Name(name, _) => {
            let remote = RemoteModel {
                key,
                address: Sp::new(
                    std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
                    address.span,
                ),
                port,
                protocol,
                weight,
                send_proxy,
                tls,
                check: None,
                route: None,
                name: Some(NameModel {
                    name: Sp::new(name.clone(), address.span),
                    srv: srv.is_some(),
                }),
            };
            return vec![(remote, check)];
        }
    };
    if let Body::Value(v) = address_value(body) {
        super::several_addresses(v, &ips, "remote", cx);
    }
    ips.iter()
        .map(|&ip| {
            let remote = RemoteModel {
                key,
                address: Sp::new(ip, address.span),
                port: port.clone(),
                protocol: protocol.clone(),
                weight: weight.clone(),
                send_proxy: send_proxy.clone(),
                tls: tls.clone(),
                check: None,
                name: None,
                route: None,
            };
            (remote, check.clone())
        })
        .collect()
}

/// E0102 and E0101: an `srv` remote takes neither an `address` (the records' targets
/// are) nor a `port` or a `weight` (the records give them).
fn srv_alone(
    body: &[Sp<Directive>],
    srv: &Sp<String>,
    has_address: bool,
    port_key: Option<Span>,
    weight: &Option<Sp<u32>>,
    cx: &mut Cx<'_>,
) {
    if has_address {
        let at = body
            .iter()
            .find(|d| d.node.key.node == Key::Address)
            .map_or(srv.span, |d| d.node.key.span);
        cx.push(
            Diagnostic::error(
                Code::AddressAndSrv,
                at,
                "a remote with both `address` and `srv`",
            )
            .with_label("an address here")
            .with_secondary(srv.span, "and SRV records, whose targets are the addresses")
            .with_help("write two remotes, or keep one of `address` and `srv`"),
        );
    }
    let given = [
        port_key.map(|s| (s, "port")),
        weight.as_ref().map(|w| (w.span, "weight")),
    ];
    for (span, what) in given.into_iter().flatten() {
        cx.push(
            Diagnostic::error(
                Code::SrvGivesPort,
                span,
                format!("`{what}` in a remote given by SRV records"),
            )
            .with_label(format!("each SRV record gives its target's {what}"))
            .with_secondary(srv.span, "the records of this name")
            .with_help(format!(
                "remove `{what}`, or write `address = NAME port = N` for A and AAAA records"
            )),
        );
    }
}

/// The body of the last `address` of a block.
fn address_value(body: &[Sp<Directive>]) -> &Body {
    body.iter()
        .rev()
        .find(|d| d.node.key.node == Key::Address)
        .map_or(&Body::Error, |d| &d.node.body)
}

/// A `tls sni`: a DNS host name (E0051), the name the certificate is checked against.
fn server_name(v: &Sp<Value>) -> values::Parsed<String> {
    match super::remote_tls::dns_name_problem(&v.node.text) {
        None => Ok(v.node.text.clone()),
        Some(why) => values::fail(
            Diagnostic::error(
                Code::InvalidServerName,
                v.span,
                format!("`{}` is not a DNS name: {why}", v.node.text),
            )
            .with_label("expected a host name such as `db.example.com`")
            .with_note("the server name is sent in the TLS handshake (SNI) and checked against the remote's certificate; IP addresses are not sent as SNI"),
        ),
    }
}

/// A weight; 0 and negative weights are read as 0, which the caller warns about and
/// takes as 1, as the original did.
fn weight_value(v: &Sp<Value>) -> values::Parsed<u32> {
    if let Some(rest) = v.node.text.strip_prefix('-') {
        let minus = Sp::new(Value::word(rest), v.span);
        return values::number(&minus, 0, u64::MAX).map(|_| 0);
    }
    values::number(v, 0, u64::from(u32::MAX)).map(|n| n as u32)
}

/// E0025: a weight below 1 is taken as 1.
fn weight_taken_as_one(v: &Sp<Value>) -> Diagnostic {
    Diagnostic::warning(
        Code::InvalidWeight,
        v.span,
        format!("weight `{}` is less than 1; it is taken as 1", v.node.text),
    )
    .with_label("taken as 1, as the original did")
    .with_help("write `weight = 1`, or remove the remote if it should not be chosen (`tcprelay ctl drain` takes a remote out for a while)")
}

/// The TLS checks that need both sections: listeners with `tls = yes` need a
/// certificate; a certificate nobody uses is warned about; the certificate, key and
/// passphrase are tried with openssl. `listeners` is `None` when the spawnd section is
/// missing (already an error).
pub(super) fn tls(
    listeners: Option<&[ListenerModel]>,
    tls: &TlsModel,
    needed: bool,
    tcprelay_id: &str,
    cx: &mut Cx<'_>,
) {
    // The files and the passphrase reach the system (and OpenSSL) as C strings.
    let paths = [
        tls.cert
            .as_ref()
            .map(|c| (&c.value, "the TLS certificate file")),
        tls.key.as_ref().map(|k| (&k.value, "the TLS key file")),
    ];
    let passphrase = tls.passphrase.as_ref().map(|p| &p.value);
    let usable = os_strings(
        paths.into_iter().flatten(),
        OsText::check_text,
        passphrase,
        cx,
    );
    let tls_listeners = || {
        listeners
            .unwrap_or_default()
            .iter()
            .filter_map(|l| l.tls.as_ref().filter(|t| t.node))
    };
    let Some(cert) = &tls.cert else {
        for t in tls_listeners().filter(|_| needed) {
            cx.push(
                Diagnostic::error(
                    Code::TlsWithoutCertificate,
                    t.span,
                    "listener with `tls = yes` but no certificate",
                )
                .with_label("`tls = yes` needs a certificate")
                .with_help(format!(
                    "add `tls cert-file = /path/to/cert.pem` to section `{tcprelay_id}`"
                )),
            );
        }
        let lone = [
            tls.key.as_ref().map(|k| (k.key, "key file")),
            tls.passphrase.as_ref().map(|p| (p.key, "passphrase")),
        ];
        for (span, what) in lone.into_iter().flatten() {
            cx.push(
                Diagnostic::warning(
                    Code::TlsUnused,
                    span,
                    format!("a TLS {what} without a certificate has no effect"),
                )
                .with_label("ignored")
                .with_help("add `tls cert-file = /path/to/cert.pem`"),
            );
        }
        return;
    };
    if listeners.is_some() && tls_listeners().next().is_none() {
        cx.push(
            Diagnostic::warning(
                Code::TlsUnused,
                cert.key,
                "a certificate but no TLS listener",
            )
            .with_label("not used by any listener")
            .with_help("add `tls = yes` to the listeners that should terminate TLS"),
        );
    }
    // Nothing can be tried with a name the system cannot take (reported above).
    if usable {
        files(tls, cert, certs::Role::Listener, cx);
        certs::names(&served(listeners.unwrap_or_default()), &cert.value, cx);
    }
}

/// The names clients ask for when they reach the TLS listeners: each host name as
/// written (once, though it may have become several listeners) and each IP address
/// written (a wildcard address is no name: `tlscheck::lint::uncovered`).
fn served(listeners: &[ListenerModel]) -> Vec<certs::Served> {
    let mut out: Vec<certs::Served> = Vec::new();
    for l in listeners
        .iter()
        .filter(|l| l.tls.as_ref().is_some_and(|t| t.node))
    {
        let one = match (&l.host, &l.bind) {
            (Some(host), _) => certs::Served {
                name: host.node.clone(),
                span: host.span,
                what: "the listener's host name",
            },
            (
                None,
                Bind::Inet {
                    address: Some(ip), ..
                },
            ) => certs::Served {
                name: ip.node.to_string(),
                span: ip.span,
                what: "the listener's address",
            },
            _ => continue,
        };
        if !out.iter().any(|s| s.span == one.span) {
            out.push(one);
        }
    }
    out
}

/// Tries the certificate, key and passphrase with openssl, then the certificate
/// file's dates and order (`certs::chain_file`).
pub(super) fn files(tls: &TlsModel, cert: &Keyed<String>, role: certs::Role, cx: &mut Cx<'_>) {
    let key = tls.key.as_ref().unwrap_or(cert);
    let passphrase = tls.passphrase.as_ref().map(|p| p.value.node.expose());
    let checked = tlscheck::check(&cert.value.node, &key.value.node, passphrase);
    // A key that belongs to a later certificate of the file: the leaf is not first.
    let owner = match checked {
        Err(TlsProblem::KeyMismatch) => {
            tlscheck::lint::key_owner(&cert.value.node, &key.value.node, passphrase)
        }
        _ => None,
    };
    certs::chain_file(&cert.value, role, owner.is_some(), cx);
    let Err(problem) = checked else {
        return;
    };
    // Where a file problem is: the key's value when the path is the key's (and the key
    // was written), else the certificate's.
    let at = |path: &str| match &tls.key {
        Some(k) if k.value.node == path && cert.value.node != path => (k.value.span, "key file"),
        _ => (cert.value.span, "certificate file"),
    };
    let d = match problem {
        TlsProblem::Absent { path } => {
            let (span, what) = at(&path);
            Diagnostic::warning(
                Code::CertificateUnreadable,
                span,
                format!("{what} `{path}` not found on this machine"),
            )
            .with_label("not found")
            .with_note("it is checked again when tcprelay starts")
        }
        TlsProblem::Unreadable { path, reason } => {
            let (span, what) = at(&path);
            Diagnostic::error(
                Code::CertificateUnreadable,
                span,
                format!(
                    "cannot read {what} `{path}`: {}",
                    redact(&reason, passphrase)
                ),
            )
            .with_label("unreadable")
        }
        TlsProblem::KeyMismatch => {
            let d = Diagnostic::error(
                Code::KeyMismatch,
                key.value.span,
                format!(
                    "the private key in `{}` does not match the certificate",
                    key.value.node
                ),
            )
            .with_label("this key does not belong to the certificate");
            let d = match owner {
                Some(at) => d
                    .with_note(format!(
                        "the key belongs to certificate {} of `{}`: the certificate the key belongs to is the one served, and it must come first in the file",
                        at + 1,
                        cert.value.node
                    ))
                    .with_help("put the certificates in order: the server's certificate first, then each certificate's issuer"),
                None => d,
            };
            if tls.key.is_some() {
                d.with_secondary(cert.value.span, "the certificate")
            } else {
                d.with_note("the key file defaults to the certificate file")
            }
        }
        TlsProblem::BadPassphrase { reason } => {
            let reason = redact(&reason, passphrase);
            match &tls.passphrase {
                Some(p) => Diagnostic::error(
                    Code::BadPassphrase,
                    p.value.span,
                    format!(
                        "the private key in `{}` cannot be decrypted with this passphrase",
                        key.value.node
                    ),
                )
                .with_label("wrong passphrase")
                .with_note(reason),
                None => Diagnostic::error(
                    Code::BadPassphrase,
                    key.value.span,
                    format!(
                        "the private key in `{}` cannot be decrypted without a passphrase",
                        key.value.node
                    ),
                )
                .with_label("an encrypted key")
                .with_note(reason)
                .with_help("add `tls passphrase = ...`"),
            }
        }
    };
    cx.push(d);
}

/// `text` with every occurrence of the passphrase blanked out, in case an openssl
/// message ever quoted it.
fn redact(text: &str, passphrase: Option<&str>) -> String {
    match passphrase {
        Some(p) if !p.is_empty() => text.replace(p, "<redacted>"),
        _ => text.to_string(),
    }
}

/// Reports each of `paths` (with what it is) that the system cannot take under
/// `check`, and the passphrase (never quoted) that it cannot take as a C string;
/// false when one was reported.
pub(super) fn os_strings<'a>(
    paths: impl IntoIterator<Item = (&'a Sp<String>, &'static str)>,
    check: fn(&str) -> Result<(), OsText>,
    passphrase: Option<&Sp<Secret>>,
    cx: &mut Cx<'_>,
) -> bool {
    let mut usable = true;
    for (value, what) in paths {
        if let Err(problem) = check(&value.node) {
            cx.push(values::not_for_the_os(
                value.span,
                Some(&value.node),
                what,
                problem,
            ));
            usable = false;
        }
    }
    if let Some(p) = passphrase {
        if let Err(problem) = OsText::check_text(p.node.expose()) {
            cx.push(values::not_for_the_os(
                p.span,
                None,
                "the TLS passphrase",
                problem,
            ));
            usable = false;
        }
    }
    usable
}
