//! The checked model: the selected sections' values with their types resolved and
//! their spans kept.
//!
//! Every diagnostic is made while building this model, so lowering needs no spans and
//! reports nothing. A field is `None` when the directive was not written; lowering
//! fills in the default. A [`Model`] is only handed out when the check found no
//! error, so lowering may rely on its invariants (a listener has a port or a path,
//! every remote has an address and a port, counts are in range).

pub use super::values::DebugMask;
use crate::ast::{Sp, Span};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use tcprelay_plan::{
    AclRule, Facility, ListenAddress, LogFormat, Network, Overload, Protocol, ProxyAccept,
    ProxyVersion, Secret, Severity, TlsVersion,
};

/// Both selected sections and the top-level `setenv`s.
#[derive(Debug, Clone)]
pub struct Model {
    /// The id of the spawnd section, at its place in the section header.
    pub spawnd_id: Sp<String>,
    /// The id of the tcprelay section (may be the same section as the spawnd one).
    pub tcprelay_id: Sp<String>,
    /// `setenv NAME = VALUE`, in the order of first appearance, each name once with
    /// its last value.
    pub env: Vec<(Sp<String>, Sp<String>)>,
    pub spawnd: SpawndModel,
    pub relay: RelayModel,
    /// The directives outside any section: the defaults of both sections.
    pub top: TopModel,
}

/// What the top level says for both sections (`debug`, `syslog`, `proctitle`).
#[derive(Debug, Clone, Default)]
pub struct TopModel {
    pub syslog: SyslogModel,
    pub debug: Option<Sp<DebugMask>>,
    pub proctitle: Option<Sp<String>>,
}

/// `sticky cache period|size` of one scope.
#[derive(Debug, Clone, Default)]
pub struct StickyModel {
    /// Seconds; 0 turns the cache off.
    pub period: Option<Sp<u32>>,
    pub size: Option<Sp<u32>>,
}

/// The spawnd section.
#[derive(Debug, Clone, Default)]
pub struct SpawndModel {
    pub listeners: Vec<ListenerModel>,
    pub spawn: SpawnModel,
    pub background: Option<Sp<bool>>,
    pub pidfile: Option<Sp<String>>,
    pub single_process: Option<Sp<bool>>,
    pub user: Option<Sp<String>>,
    pub group: Option<Sp<String>>,
    pub working_directory: Option<Sp<String>>,
    pub acl: Vec<Sp<AclRule>>,
    pub bind_retry_delay: Option<Sp<u32>>,
    /// `overload` at section level; one inside `spawn { }` takes precedence.
    pub overload: Option<Sp<Overload>>,
    /// `debug`/`trace`, applied over the top level's.
    pub debug: Option<Sp<DebugMask>>,
    pub proctitle: Option<Sp<String>>,
    /// `tcp bufsize` (bytes).
    pub tcp_bufsize: Option<Sp<u32>>,
    /// `sticky cache ...` of the section and its `spawn` blocks (one table).
    pub sticky: StickyModel,
    /// Section-level keepalive: the default of every listener.
    pub keepalive: KeepaliveModel,
    pub syslog: SyslogModel,
    /// `control = { ... }` or `control = no`; `None` when not written (the default
    /// socket).
    pub control: Option<ControlModel>,
    pub metrics: Option<MetricsModel>,
    pub log_format: Option<Sp<LogFormat>>,
}

/// What `control` says.
#[derive(Debug, Clone)]
pub enum ControlModel {
    /// `control = no`.
    Off,
    /// `control = { ... }` (or `control = yes`, all defaults).
    Socket {
        path: Option<Sp<String>>,
        mode: Option<Sp<u32>>,
        group: Option<Sp<String>>,
    },
}

/// `metrics = { address = IP port = PORT }`.
#[derive(Debug, Clone)]
pub struct MetricsModel {
    /// The `metrics` key.
    pub key: Span,
    pub address: Option<Sp<IpAddr>>,
    pub port: Sp<u16>,
}

/// Everything the `spawn { }` blocks of the section set (several blocks merge).
#[derive(Debug, Clone, Default)]
pub struct SpawnModel {
    pub users_min: Option<Sp<u32>>,
    pub users_max: Option<Sp<u32>>,
    /// Also set by `instances min`.
    pub servers_min: Option<Sp<u32>>,
    /// Also set by `instances max`.
    pub servers_max: Option<Sp<u32>>,
    pub overload: Option<Sp<Overload>>,
    /// `id = NAME`: the tcprelay section the workers read.
    pub id: Option<Sp<String>>,
}

/// One `listen { }` block.
#[derive(Debug, Clone)]
pub struct ListenerModel {
    /// The `listen` key, where problems of the listener as a whole are reported.
    pub key: Span,
    pub bind: Bind,
    /// The host name the address was written with (`address = db.example.com`,
    /// without an `inet:` prefix), kept after it resolved into `bind`: the name
    /// clients ask for, which the certificate must cover (E0085). `None` for an IP
    /// address, a Unix socket, or no address.
    pub host: Option<Sp<String>>,
    pub protocol: Option<Sp<Protocol>>,
    pub tls: Option<Sp<bool>>,
    pub backlog: Option<Sp<u32>>,
    pub overload_backlog: Option<Sp<u32>>,
    pub realm: Option<Sp<String>>,
    pub mode: Option<Sp<u32>>,
    /// Overrides the section-level keepalive, field by field.
    pub keepalive: KeepaliveModel,
    pub proxy: AcceptProxyModel,
    /// `tls = auto`.
    pub tls_auto: bool,
    /// `tls = TLSv1.2,TLSv1.3`; empty: both.
    pub tls_versions: Vec<TlsVersion>,
    pub dscp: Option<Sp<u8>>,
    pub vrf: Option<Sp<String>>,
    /// `userid`/`groupid` of a Unix socket.
    pub owner: Option<Sp<String>>,
    pub group: Option<Sp<String>>,
    /// The listener's own; the section's applies when `None`.
    pub bind_retry_delay: Option<Sp<u32>>,
    /// `tcp bufsize` written in the block (deprecated there): the relay's.
    pub tcp_bufsize: Option<Sp<u32>>,
    pub sticky: StickyModel,
}

/// `haproxy = yes|no`, `accept proxy = v1|v2|any|no`, `accept proxy from = NET`,
/// `accept proxy timeout = SECONDS` of one listener.
#[derive(Debug, Clone, Default)]
pub struct AcceptProxyModel {
    /// The versions accepted (`Some(None)`: `no` was written), at the value of the
    /// directive (`haproxy` or `accept proxy`) that set them last.
    pub version: Option<Sp<Option<ProxyAccept>>>,
    /// The key of that directive.
    pub key: Option<Span>,
    pub from: Vec<Sp<Network>>,
    /// Seconds.
    pub timeout: Option<Sp<u32>>,
}

impl AcceptProxyModel {
    /// The versions accepted, when the listener accepts PROXY headers at all.
    pub fn accepted(&self) -> Option<ProxyAccept> {
        self.version.as_ref().and_then(|v| v.node)
    }
}

/// Where a listener binds.
#[derive(Debug, Clone)]
pub enum Bind {
    /// `address` (or a bare address) and `port`; no address means `0.0.0.0`.
    Inet {
        address: Option<Sp<IpAddr>>,
        port: Sp<u16>,
    },
    /// `path`: a Unix-domain socket.
    Unix { path: Sp<String> },
}

impl Bind {
    /// The address the runtime binds.
    pub fn resolve(&self) -> ListenAddress {
        match self {
            Bind::Inet { address, port } => {
                let ip = address
                    .as_ref()
                    .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.node);
                ListenAddress::Inet(SocketAddr::new(ip, port.node))
            }
            Bind::Unix { path } => ListenAddress::Unix(path.node.clone()),
        }
    }
}

/// `tcp keepalive count|idle|interval`.
#[derive(Debug, Clone, Default)]
pub struct KeepaliveModel {
    pub count: Option<Sp<u32>>,
    pub idle: Option<Sp<u32>>,
    pub interval: Option<Sp<u32>>,
}

/// `syslog ident|facility|level|severity` of one section.
#[derive(Debug, Clone, Default)]
pub struct SyslogModel {
    pub ident: Option<Sp<String>>,
    pub facility: Option<Sp<Facility>>,
    /// Set by `syslog level` and `syslog severity` alike.
    pub severity: Option<Sp<Severity>>,
}

/// The tcprelay section.
#[derive(Debug, Clone, Default)]
pub struct RelayModel {
    pub remotes: Vec<RemoteModel>,
    pub local_address: Option<Sp<IpAddr>>,
    pub rebalance: Option<Sp<u64>>,
    /// `balance = least-conn|source|source sticky`.
    pub balance: Option<Sp<tcprelay_plan::Balance>>,
    /// `retire` or `retire limit`.
    pub retire: Option<Sp<u64>>,
    pub idle_timeout: Option<Sp<u32>>,
    pub silent_timeout: Option<Sp<u32>>,
    pub connect_timeout: Option<Sp<u32>>,
    pub tls_handshake_timeout: Option<Sp<u32>>,
    pub half_close_timeout: Option<Sp<u32>>,
    pub drain_timeout: Option<Sp<u32>>,
    pub drain_generations: Option<Sp<u32>>,
    pub connection_log: Option<Sp<bool>>,
    pub syslog: SyslogModel,
    pub tls: TlsModel,
    /// `send proxy` of the section: the default of every remote.
    pub send_proxy: Option<Sp<Option<ProxyVersion>>>,
    /// `check` of the section: the default of every remote (already merged into each
    /// remote's [`RemoteModel::check`]).
    pub check: Option<CheckSetting>,
    pub debug: Option<Sp<DebugMask>>,
    pub proctitle: Option<Sp<String>>,
    /// The remotes the runtime finds by their [`RemoteModel::name`], in the order
    /// written: each a template whose address is the unspecified address.
    pub discovered: Vec<RemoteModel>,
    /// `resolvers = { ... }` and `resolve ...`.
    pub resolve: ResolveModel,
    /// `route = { ... }` blocks, in file order (their remotes are in `remotes`).
    pub routes: Vec<RouteModel>,
}

/// A remote's name resolved by the runtime: `address = NAME` (A and AAAA records, at
/// the remote's port) or `srv = NAME` (SRV records: targets, ports and weights).
#[derive(Debug, Clone)]
pub struct NameModel {
    /// As written, without a final dot (the plan keeps it, lowercase).
    pub name: Sp<String>,
    pub srv: bool,
}

/// The resolver settings of the tcprelay section; every field `None` when not written.
#[derive(Debug, Clone, Default)]
pub struct ResolveModel {
    pub resolvers: Option<ResolversModel>,
    /// `resolve interval` (seconds).
    pub interval: Option<Sp<u32>>,
    pub interval_min: Option<Sp<u32>>,
    pub interval_max: Option<Sp<u32>>,
    /// `resolve start = wait` (true) or `fail`.
    pub start_empty: Option<Sp<bool>>,
}

/// `resolvers = { nameserver = IP[:PORT] ... timeout = S attempts = N }`.
#[derive(Debug, Clone)]
pub struct ResolversModel {
    /// The `resolvers` key.
    pub key: Span,
    pub nameservers: Vec<Sp<SocketAddr>>,
    /// Seconds.
    pub timeout: Option<Sp<u32>>,
    pub attempts: Option<Sp<u32>>,
}

/// One `route = { ... }` block: routing by SNI.
#[derive(Debug, Clone, Default)]
pub struct RouteModel {
    /// The `route` key.
    pub key: Span,
    /// `sni = NAME`, lowercase, without a final dot, each with its span.
    pub names: Vec<Sp<String>>,
    /// Whether any `sni` was written (a route whose names were all invalid is not
    /// the default route).
    pub sni_written: bool,
    pub mode: Option<Sp<tcprelay_plan::RouteMode>>,
    /// The route's own certificate (terminate).
    pub tls: TlsModel,
    pub balance: Option<Sp<tcprelay_plan::Balance>>,
}

impl RouteModel {
    pub fn passthrough(&self) -> bool {
        self.mode
            .as_ref()
            .is_some_and(|m| m.node == tcprelay_plan::RouteMode::Passthrough)
    }
}

/// One `remote { }` block.
#[derive(Debug, Clone)]
pub struct RemoteModel {
    /// The `remote` key.
    pub key: Span,
    pub address: Sp<IpAddr>,
    pub port: Sp<u16>,
    pub protocol: Option<Sp<Protocol>>,
    pub weight: Option<Sp<u32>>,
    /// The remote's own `send proxy` (`Some(None)`: `no`); the section's applies when
    /// `None`.
    pub send_proxy: Option<Sp<Option<ProxyVersion>>>,
    pub tls: RemoteTlsModel,
    /// The check in effect: the remote's own `check` block merged over the section's,
    /// field by field; `None` for `check = no` or no check anywhere.
    pub check: Option<CheckModel>,
    /// A remote found by DNS at run time (`address` the unspecified address, at the
    /// name's span; `port` 0 for SRV); `None` for an IP address.
    pub name: Option<NameModel>,
    /// The index in [`RelayModel::routes`] of the route it serves (`None`: the
    /// default route).
    pub route: Option<usize>,
}

impl RemoteModel {
    /// Whether the relay is a TLS client towards this remote.
    pub fn tls_on(&self) -> bool {
        self.tls.on.as_ref().is_some_and(|v| v.node)
    }
}

/// `tls = yes` and the `tls ...` directives of a `remote` block.
#[derive(Debug, Clone, Default)]
pub struct RemoteTlsModel {
    pub on: Option<Sp<bool>>,
    pub sni: Option<Sp<String>>,
    pub verify: Option<Sp<bool>>,
    pub ca_file: Option<Keyed<String>>,
    /// The client certificate, its key and passphrase.
    pub client: TlsModel,
}

/// `check = { ... }` or `check = no`.
#[derive(Debug, Clone)]
pub enum CheckSetting {
    /// `check = no`, at its key.
    Off(Span),
    On(Box<CheckModel>),
}

/// One `check` block (or the merge of a remote's over the section's). Every field is
/// `None` when not written; lowering fills in the defaults.
#[derive(Debug, Clone)]
pub struct CheckModel {
    /// The `check` key.
    pub key: Span,
    /// Seconds.
    pub interval: Option<Sp<u32>>,
    /// Seconds.
    pub timeout: Option<Sp<u32>>,
    pub rise: Option<Sp<u32>>,
    pub fall: Option<Sp<u32>>,
    pub send: Option<Sp<Vec<u8>>>,
    pub expect: Option<Sp<ExpectModel>>,
    pub tls: Option<Sp<bool>>,
}

impl CheckModel {
    /// A check with every field at its default.
    pub fn new(key: Span) -> CheckModel {
        CheckModel {
            key,
            interval: None,
            timeout: None,
            rise: None,
            fall: None,
            send: None,
            expect: None,
            tls: None,
        }
    }

    /// `self` over `base`, field by field (`expect` and `expect regex` are one field).
    pub fn over(&self, base: &CheckModel) -> CheckModel {
        CheckModel {
            key: self.key,
            interval: self.interval.clone().or_else(|| base.interval.clone()),
            timeout: self.timeout.clone().or_else(|| base.timeout.clone()),
            rise: self.rise.clone().or_else(|| base.rise.clone()),
            fall: self.fall.clone().or_else(|| base.fall.clone()),
            send: self.send.clone().or_else(|| base.send.clone()),
            expect: self.expect.clone().or_else(|| base.expect.clone()),
            tls: self.tls.clone().or_else(|| base.tls.clone()),
        }
    }
}

/// `expect = "..."` or `expect regex = "..."`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpectModel {
    Bytes(Vec<u8>),
    Regex(String),
}

/// The TLS material of the tcprelay section. Without a certificate there is no TLS
/// (a lone key or passphrase is warned about and dropped).
#[derive(Debug, Clone, Default)]
pub struct TlsModel {
    pub cert: Option<Keyed<String>>,
    /// Defaults to the certificate file.
    pub key: Option<Keyed<String>>,
    /// Never printed: `Secret` redacts itself.
    pub passphrase: Option<Keyed<Secret>>,
}

/// A value with the span of the key it was given with, for diagnostics that point at
/// the directive rather than at its value.
#[derive(Debug, Clone)]
pub struct Keyed<T> {
    pub key: Span,
    pub value: Sp<T>,
}
