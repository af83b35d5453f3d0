//! The plan: everything the runtime needs to run one tcprelay configuration, and
//! nothing it does not.
//!
//! The plan is the one contract between the compiler (`tcprelay-cc`) and the runtime
//! (`tcprelay`). It is strict where the AST is permissive: addresses are resolved,
//! required values are not `Option`, choices are closed enums and there are no source
//! spans. Lowering in the compiler is the only way to build one; [`Plan::validate`] is
//! called by both sides, by the compiler before it writes a file and by the runtime
//! after it reads one and before it binds any socket.
//!
//! The wire format (header plus bincode body) lives in [`codec`] alone, so a change of
//! serializer touches one file.

#![forbid(unsafe_code)]

pub mod balance;
pub mod codec;
pub mod control_path;
mod read;
pub mod route;
pub mod sni;
mod validate;

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, SocketAddr};

pub use codec::{decode, encode, DecodeError, FORMAT_VERSION, MAGIC};
pub use read::{read_plan, read_regular, ReadError, Refused, MAX_PLAN_SIZE};
pub use validate::{PlanError, MAX_CHECK_BYTES};

/// A whole compiled configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Where the configuration came from (a path or URL), for messages and for
    /// re-compiling on SIGHUP when the runtime was started from a configuration.
    pub source: String,
    /// The section ids that were selected: (spawnd id, tcprelay id).
    pub spawnd_id: String,
    pub tcprelay_id: String,
    /// Top-level `setenv NAME = VALUE`, in file order. The runtime applies these to
    /// its own environment before anything else.
    pub env: Vec<(String, String)>,
    pub spawnd: Spawnd,
    pub relay: Relay,
}

/// The process model and the listening sockets (the `spawnd` section).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spawnd {
    pub listeners: Vec<Listener>,
    /// Sessions per worker: a worker asks for more work while it has fewer than
    /// `users_min` and takes none while it has `users_max` (0: as many as its
    /// open-file limit allows, two descriptors a session).
    pub users_min: u32,
    pub users_max: u32,
    /// Number of worker processes (0: chosen on the machine that runs the plan,
    /// see [`Spawnd::workers`]).
    pub servers_min: u32,
    pub servers_max: u32,
    pub background: bool,
    pub pidfile: Option<String>,
    /// Privileges dropped to after the listeners are bound (names or numeric ids,
    /// resolved by the runtime on the machine it runs on).
    pub user: Option<String>,
    pub group: Option<String>,
    pub working_directory: Option<String>,
    /// Access control on the client address, evaluated first match wins; when the
    /// list is not empty and nothing matches, the connection is denied.
    pub acl: Vec<AclRule>,
    pub overload: Overload,
    pub keepalive: Keepalive,
    pub single_process: bool,
    pub syslog: Syslog,
    /// The debug mask (`debug = ...` / `trace = ...`, top level or section, and the
    /// command line's `-d`): any bit set means debug-level logging.
    pub debug: u32,
    /// `tcp bufsize = N`: `SO_SNDBUF` and `SO_RCVBUF` of both sockets of every
    /// relayed connection (`None`: the kernel's defaults and auto-tuning).
    pub tcp_bufsize: Option<u32>,
    /// `sticky cache period/size` in the section or in `spawn`: the relay-wide
    /// client affinity, for listeners without their own (`None`: off).
    pub sticky: Option<Sticky>,
    /// `proctitle = TEXT`: the prefix of the process titles `ps` shows
    /// (`None`: the program's name).
    pub proctitle: Option<String>,
    /// The master's control socket (`control = { ... }`); `None` with `control = no`.
    pub control: Option<Control>,
    /// The metrics endpoint (`metrics = { ... }`); `None` when not configured.
    pub metrics: Option<Metrics>,
    /// How log lines are written (`log format`).
    pub log_format: LogFormat,
}

/// The master's control socket, a Unix-domain socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Control {
    /// Where it is bound; `None`: resolved by the runtime on its machine
    /// (`$RUNTIME_DIRECTORY/ctl`, `/run/tcprelay/ctl` as root, else
    /// `$XDG_RUNTIME_DIR/tcprelay/ctl`).
    pub path: Option<String>,
    /// File mode of the socket, at most `0o777`.
    pub mode: u32,
    /// Group owning the socket (a name or a numeric id, resolved by the runtime).
    pub group: Option<String>,
}

impl Control {
    /// The control socket of a configuration that does not mention one.
    pub fn default_socket() -> Control {
        Control {
            path: None,
            mode: defaults::CONTROL_MODE,
            group: None,
        }
    }
}

/// The HTTP metrics endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metrics {
    pub address: IpAddr,
    pub port: u16,
}

impl Metrics {
    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.address, self.port)
    }
}

/// The format of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogFormat {
    /// Plain sentences (today's lines).
    Text,
    /// `key=value` pairs.
    Logfmt,
    /// One JSON object a line.
    Json,
}

impl LogFormat {
    /// Every format with its configuration name.
    pub const ALL: [(LogFormat, &'static str); 3] = [
        (LogFormat::Text, "text"),
        (LogFormat::Logfmt, "logfmt"),
        (LogFormat::Json, "json"),
    ];

    pub fn name(self) -> &'static str {
        Self::ALL[self as usize].1
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One listening socket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Listener {
    pub address: ListenAddress,
    pub protocol: Protocol,
    pub tls: bool,
    pub backlog: u32,
    pub overload_backlog: u32,
    /// spawnd's `realm` tag, carried for compatibility; tcprelay does not use it.
    pub realm: Option<String>,
    pub keepalive: Keepalive,
    /// File mode of a Unix-domain socket (`mode = 0660`).
    pub mode: Option<u32>,
    /// `haproxy = yes` / `accept proxy = v1|v2|any`: every connection starts with a
    /// PROXY protocol header, read before anything else (`None`: not accepted).
    pub accept_proxy: Option<AcceptProxy>,
    /// The TLS versions a `tls` listener accepts (`tls = TLSv1.2,TLSv1.3`), in
    /// order, without repeats; empty: TLS 1.2 and 1.3. Empty when `tls` is false.
    pub tls_versions: Vec<TlsVersion>,
    /// `tls = auto`: a client whose first byte is not a TLS handshake record is
    /// relayed in plain text. Only with `tls`.
    pub tls_auto: bool,
    /// `dscp = N` (0..=63): the DSCP of both sockets of its sessions (`IP_TOS` /
    /// `IPV6_TCLASS`, the value shifted left by two).
    pub dscp: Option<u8>,
    /// `vrf = NAME`: the listening socket is bound to that device or VRF
    /// (`SO_BINDTODEVICE`, Linux). Inet listeners only.
    pub vrf: Option<String>,
    /// Owner and group of a Unix-domain socket (`userid`, `groupid`: names or
    /// numeric ids, resolved by the runtime). Unix listeners only.
    pub owner: Option<String>,
    pub group: Option<String>,
    /// `bind retry delay = N`: seconds between attempts to bind this listener when
    /// binding fails, instead of failing the start or the reload (`None`: a
    /// failed bind fails them). At least 1.
    pub bind_retry_delay: Option<u32>,
    /// The listener's own `sticky cache` (`None`: the relay-wide one, if any).
    pub sticky: Option<Sticky>,
}

impl Listener {
    /// A plain TCP listener on `address` with every other setting at its default,
    /// for tests and tools that build plans by hand.
    pub fn new(address: ListenAddress) -> Listener {
        Listener {
            address,
            protocol: Protocol::Tcp,
            tls: false,
            backlog: defaults::BACKLOG,
            overload_backlog: defaults::BACKLOG,
            realm: None,
            keepalive: Keepalive::default(),
            mode: None,
            accept_proxy: None,
            tls_versions: Vec::new(),
            tls_auto: false,
            dscp: None,
            vrf: None,
            owner: None,
            group: None,
            bind_retry_delay: None,
            sticky: None,
        }
    }
}

/// A TLS protocol version a listener accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

impl TlsVersion {
    /// Every version with its configuration name.
    pub const ALL: [(TlsVersion, &'static str); 2] = [
        (TlsVersion::Tls12, "TLSv1.2"),
        (TlsVersion::Tls13, "TLSv1.3"),
    ];

    pub fn name(self) -> &'static str {
        Self::ALL[self as usize].1
    }
}

/// Client affinity (the family's `sticky cache`): a client address keeps going to
/// the worker, and through it the remote, it went to last, while that remote is
/// alive and the entry is younger than `period_s` since its last use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sticky {
    /// Seconds an entry lives after its last use; at least 1.
    pub period_s: u32,
    /// Entries remembered (the least recently used is forgotten first); 1..=MAX_STICKY_SIZE.
    pub size: u32,
}

/// The most entries a sticky cache may hold.
pub const MAX_STICKY_SIZE: u32 = 1 << 20;

/// How a listener accepts the PROXY protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcceptProxy {
    /// The versions accepted.
    pub version: ProxyAccept,
    /// The peers trusted to send a header (`accept proxy from = CIDR`, any number);
    /// empty: any peer. A connection from another peer is closed, never relayed.
    pub from: Vec<Network>,
    /// Milliseconds a client has to send its whole header (`accept proxy timeout`).
    pub timeout_ms: u32,
}

/// The PROXY protocol versions a listener accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProxyAccept {
    V1,
    V2,
    /// Either, told apart by the first bytes (`haproxy = yes` means this).
    Any,
}

/// A PROXY protocol version a remote is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProxyVersion {
    V1,
    V2,
}

/// An IP network (`10.0.0.0/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    pub address: IpAddr,
    pub prefix: u8,
}

impl fmt::Display for Network {
    /// `10.0.0.0/8`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

/// Where a listener binds.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ListenAddress {
    Inet(SocketAddr),
    Unix(String),
}

impl fmt::Display for ListenAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddress::Inet(sa) => write!(f, "{sa}"),
            ListenAddress::Unix(path) => write!(f, "unix:{path}"),
        }
    }
}

/// Transport protocol of a listener or a remote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Protocol {
    Tcp,
    Sctp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "TCP",
            Protocol::Sctp => "SCTP",
        })
    }
}

/// TCP keepalive settings; `None` keeps the kernel default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keepalive {
    pub count: Option<u32>,
    pub idle: Option<u32>,
    pub interval: Option<u32>,
}

/// One `permit`/`deny` line of the spawnd section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclRule {
    pub permit: bool,
    /// `permit not 10.0.0.0/8`: the rule matches addresses outside the network.
    pub negate: bool,
    pub network: IpAddr,
    pub prefix: u8,
}

impl fmt::Display for AclRule {
    /// `permit 10.0.0.0/8`, `deny not 192.0.2.0/24`, as a configuration writes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let AclRule {
            permit,
            negate,
            network,
            prefix,
        } = self;
        write!(
            f,
            "{}{} {network}/{prefix}",
            if *permit { "permit" } else { "deny" },
            if *negate { " not" } else { "" }
        )
    }
}

/// What the master does with a connection when every worker is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Overload {
    /// Keep it in the listen queue until a worker has room (the default).
    Queue,
    /// Accept and close it.
    Close,
    /// Accept and reset it.
    Reset,
}

/// The relay itself (the `tcprelay` section).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Relay {
    pub remotes: Vec<Remote>,
    pub local_address: Option<IpAddr>,
    /// After this many selections every dead mark is cleared.
    pub rebalance: Option<u64>,
    /// A worker that has served this many sessions retires.
    pub retire: Option<u64>,
    /// Seconds without traffic after which a session is closed; 0 = never.
    pub idle_timeout: u32,
    /// Seconds after which a session through which no byte has passed either way
    /// (since its TLS handshake, if any) is closed; 0 = never.
    pub silent_timeout: u32,
    /// Seconds a connect to a remote may take before the next remote is tried; at
    /// least 1.
    pub connect_timeout: u32,
    /// Seconds a TLS client has to complete its handshake; at least 1.
    pub tls_handshake_timeout: u32,
    /// Seconds after one direction of a session has ended until the session is
    /// closed; 0 = never.
    pub half_close_timeout: u32,
    /// Seconds an old generation keeps its sessions after a reload; 0 = until they
    /// end.
    pub drain_timeout: u32,
    /// The most old generations draining at once; when a reload would leave more,
    /// the oldest is stopped. At least 1.
    pub drain_generations: u32,
    /// Whether each session is logged when it ends.
    pub connection_log: bool,
    pub syslog: Syslog,
    pub tls: Option<Tls>,
    /// `balance = least-conn|source|source sticky`: how the default route's remotes
    /// (and a route's without its own `balance`) are chosen.
    pub balance: Balance,
    /// `route = { sni = NAME ... }`: the routes a TLS listener chooses between by
    /// the server name of the client's ClientHello. A remote belongs to the route
    /// its [`Remote::route`] names; the remotes of no route are the default route.
    pub routes: Vec<Route>,
    /// Remotes learned from DNS, re-resolved by the runtime (`remote = { address =
    /// NAME ... }`, `remote = { srv = NAME ... }`).
    pub discovered: Vec<Discovered>,
    /// How the runtime resolves the `discovered` names (`resolvers = { ... }`,
    /// `resolve ...`).
    pub resolve: Resolve,
}

/// How the remote of a new session is chosen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Balance {
    /// Weighted least connections of this worker (the original's rule).
    #[default]
    LeastConn,
    /// A consistent hash of the client's address (the PROXY-carried one) over the
    /// remotes that can take a session, with their weights: every worker and every
    /// relay with the same remotes chooses the same remote for a client.
    Source,
    /// `Source`, then the client keeps the remote recorded in the sticky cache.
    SourceSticky,
}

/// One `route` block: the remotes for the clients whose TLS server name (SNI)
/// matches one of `names`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Route {
    /// Server names, lowercase, without a final dot: `db.example.com`, or
    /// `*.example.com` (one label more than the suffix). Empty: the default route,
    /// for the clients no other route names.
    pub names: Vec<String>,
    pub mode: RouteMode,
    /// `terminate`: the route's own certificate (`None`: the section's `tls`).
    pub tls: Option<Tls>,
    /// The route's own `balance` (`None`: the section's).
    pub balance: Option<Balance>,
}

/// What a route does with the client's TLS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum RouteMode {
    /// The relay completes the handshake with the route's certificate.
    #[default]
    Terminate,
    /// The TLS stream, ClientHello included, is relayed untouched.
    Passthrough,
}

/// A name whose addresses are remotes, resolved at start and again while the
/// relay runs; each address found is a remote like `template` at that address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Discovered {
    /// The DNS name as written, lowercase (a final dot kept: an absolute name).
    pub name: String,
    pub lookup: Lookup,
    /// The settings of every remote found: protocol, weight (A and AAAA; SRV
    /// records bring their own), PROXY, TLS, checks, route. Its address is the
    /// unspecified address with the port of [`Lookup::Address`] (0 for SRV).
    pub template: Remote,
}

/// The records a discovered name is resolved to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Lookup {
    /// A and AAAA records: one remote per address, at `port`.
    Address { port: u16 },
    /// SRV records: one remote per target address, with the record's port and weight.
    Srv,
}

/// The resolver settings of the runtime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolve {
    /// `resolvers = { nameserver = IP[:PORT] ... }`; empty: the system's
    /// `/etc/resolv.conf`.
    pub nameservers: Vec<SocketAddr>,
    /// Milliseconds one query may take.
    pub timeout_ms: u32,
    /// Queries sent for a name before its resolution has failed.
    pub attempts: u32,
    /// `resolve interval = N`: seconds between resolutions of a name (`None`: the
    /// records' TTL, within `interval_min_s..=interval_max_s`).
    pub interval_s: Option<u32>,
    pub interval_min_s: u32,
    pub interval_max_s: u32,
    /// `resolve start = wait`: start (or reload) although a name has not resolved
    /// yet, its route empty until it does; otherwise such a name fails the start.
    pub start_empty: bool,
}

impl Default for Resolve {
    fn default() -> Resolve {
        Resolve {
            nameservers: Vec::new(),
            timeout_ms: defaults::RESOLVE_TIMEOUT_MS,
            attempts: defaults::RESOLVE_ATTEMPTS,
            interval_s: None,
            interval_min_s: defaults::RESOLVE_INTERVAL_MIN,
            interval_max_s: defaults::RESOLVE_INTERVAL_MAX,
            start_empty: false,
        }
    }
}

/// One destination.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Remote {
    pub address: SocketAddr,
    pub protocol: Protocol,
    pub weight: u32,
    /// `send proxy = v1|v2`: a PROXY protocol header with the client's addresses is
    /// written to the remote before any byte of the client (and before a TLS
    /// handshake with it). The section's default is resolved by the compiler.
    pub send_proxy: Option<ProxyVersion>,
    /// `tls = yes` on a remote: the relay is a TLS client towards it.
    pub tls: Option<RemoteTls>,
    /// `check = { ... }` (or the section's default): active health checks.
    pub check: Option<Check>,
    /// The index in [`Relay::routes`] of the route the remote serves (`None`: the
    /// default route).
    pub route: Option<u32>,
}

/// TLS towards a remote (stunnel's client mode).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoteTls {
    /// The server name sent (SNI) and, with `verify`, checked against the
    /// certificate; `None`: no SNI, and the certificate is checked against the
    /// remote's IP address.
    pub sni: Option<String>,
    /// Whether the remote's certificate chain and name are verified.
    pub verify: bool,
    /// CA certificates to verify against (PEM); `None`: the system's store.
    pub ca_file: Option<String>,
    /// A client certificate (PEM) and its key, for remotes that ask for one.
    pub cert_file: Option<String>,
    /// Defaults to `cert_file` when a certificate is given without a key.
    pub key_file: Option<String>,
    pub passphrase: Option<Secret>,
}

/// An active health check of a remote, run once per relay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// Milliseconds between the starts of two checks.
    pub interval_ms: u32,
    /// Milliseconds a check may take (connect, handshake, send and expect).
    pub timeout_ms: u32,
    /// Consecutive passing checks that bring a down remote up.
    pub rise: u32,
    /// Consecutive failing checks that take an up remote down.
    pub fall: u32,
    /// Bytes written once connected (and after the handshake, with `tls`).
    pub send: Option<Vec<u8>>,
    /// What the first reply must hold; `None`: connecting (and the handshake)
    /// is the check.
    pub expect: Option<Expect>,
    /// Whether the check completes a TLS handshake (with the remote's own TLS
    /// settings when it has them, else without verification).
    pub tls: bool,
}

/// What a check's reply must hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Expect {
    /// The reply starts with these bytes.
    Bytes(Vec<u8>),
    /// The first reply (what one read returns, at most 16 KiB) matches this regular
    /// expression (the `regex-lite` syntax, checked by the compiler).
    Regex(String),
}

/// TLS termination material for listeners with `tls = yes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tls {
    pub cert_file: String,
    /// Defaults to the certificate file when not given.
    pub key_file: String,
    pub passphrase: Option<Secret>,
}

/// Syslog ident, facility and severity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Syslog {
    pub ident: String,
    pub facility: Facility,
    pub severity: Severity,
}

/// Syslog facilities (values as in `<syslog.h>`, shifted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Facility {
    Kern,
    User,
    Mail,
    Daemon,
    Auth,
    Syslog,
    Lpr,
    News,
    Uucp,
    Cron,
    AuthPriv,
    Ftp,
    Local0,
    Local1,
    Local2,
    Local3,
    Local4,
    Local5,
    Local6,
    Local7,
}

impl Facility {
    /// Every facility with its configuration name, in `<syslog.h>` order.
    pub const ALL: [(Facility, &'static str); 20] = [
        (Facility::Kern, "KERN"),
        (Facility::User, "USER"),
        (Facility::Mail, "MAIL"),
        (Facility::Daemon, "DAEMON"),
        (Facility::Auth, "AUTH"),
        (Facility::Syslog, "SYSLOG"),
        (Facility::Lpr, "LPR"),
        (Facility::News, "NEWS"),
        (Facility::Uucp, "UUCP"),
        (Facility::Cron, "CRON"),
        (Facility::AuthPriv, "AUTHPRIV"),
        (Facility::Ftp, "FTP"),
        (Facility::Local0, "LOCAL0"),
        (Facility::Local1, "LOCAL1"),
        (Facility::Local2, "LOCAL2"),
        (Facility::Local3, "LOCAL3"),
        (Facility::Local4, "LOCAL4"),
        (Facility::Local5, "LOCAL5"),
        (Facility::Local6, "LOCAL6"),
        (Facility::Local7, "LOCAL7"),
    ];

    /// The facility named `name`, case-insensitively.
    pub fn from_name(name: &str) -> Option<Facility> {
        Self::ALL
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(name))
            .map(|(f, _)| *f)
    }

    /// The facility code as `openlog(3)` wants it (`LOG_UUCP` = 8 << 3, ...).
    pub fn code(self) -> i32 {
        let index = Self::ALL.iter().position(|(f, _)| *f == self).unwrap_or(0) as i32;
        if index >= 12 {
            // LOG_LOCAL0 is 16 << 3; the codes 12..=15 are reserved.
            (index + 4) << 3
        } else {
            index << 3
        }
    }

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(f, _)| *f == self)
            .map(|(_, n)| *n)
            .unwrap_or("USER")
    }
}

/// Syslog severities, most severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Severity {
    Emerg,
    Alert,
    Crit,
    Err,
    Warning,
    Notice,
    Info,
    Debug,
}

impl Severity {
    /// Every severity with its configuration name; the code is the index.
    pub const ALL: [(Severity, &'static str); 8] = [
        (Severity::Emerg, "EMERG"),
        (Severity::Alert, "ALERT"),
        (Severity::Crit, "CRIT"),
        (Severity::Err, "ERR"),
        (Severity::Warning, "WARNING"),
        (Severity::Notice, "NOTICE"),
        (Severity::Info, "INFO"),
        (Severity::Debug, "DEBUG"),
    ];

    /// The severity named `name`, case-insensitively; `ERROR` and `WARN` are
    /// accepted as the usual spellings of `ERR` and `WARNING`.
    pub fn from_name(name: &str) -> Option<Severity> {
        let upper = name.to_ascii_uppercase();
        let canonical = match upper.as_str() {
            "ERROR" => "ERR",
            "WARN" => "WARNING",
            "PANIC" => "EMERG",
            other => other,
        };
        Self::ALL
            .iter()
            .find(|(_, n)| *n == canonical)
            .map(|(s, _)| *s)
    }

    /// The severity code as `syslog(3)` wants it.
    pub fn code(self) -> i32 {
        self as i32
    }

    pub fn name(self) -> &'static str {
        Self::ALL[self as usize].1
    }
}

/// A value that must never be printed: its `Debug` and `Display` say `<redacted>`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Secret(String);

impl Secret {
    /// What a secret is replaced with where a plan leaves the process that holds it
    /// ([`Plan::redacted`]): the running relay's plan over the control socket.
    pub const REDACTED: &'static str = "<redacted>";

    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// Whether this is the stand-in of a secret that was not given out
    /// ([`Plan::redacted`]): it can be compared with nothing.
    pub fn is_redacted(&self) -> bool {
        self.0 == Self::REDACTED
    }

    /// The secret itself, for the one place that needs it (loading a key).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The rules for the plan's strings that reach a system call (paths, names,
/// environment), shared by the compiler and the runtime.
pub use validate::{check_setenv, dns_name_problem, OsText};

impl Plan {
    /// The plan with every secret (the passphrases) replaced by [`Secret::REDACTED`]:
    /// what may be shown or sent to a client of the control socket.
    pub fn redacted(&self) -> Plan {
        let mut plan = self.clone();
        let hide = |secret: &mut Option<Secret>| {
            if let Some(secret) = secret.as_mut() {
                *secret = Secret::new(Secret::REDACTED);
            }
        };
        if let Some(tls) = plan.relay.tls.as_mut() {
            hide(&mut tls.passphrase);
        }
        for remote in &mut plan.relay.remotes {
            if let Some(tls) = remote.tls.as_mut() {
                hide(&mut tls.passphrase);
            }
        }
        // A discovered name's template holds the client passphrase of every remote
        // found for it.
        for found in &mut plan.relay.discovered {
            if let Some(tls) = found.template.tls.as_mut() {
                hide(&mut tls.passphrase);
            }
        }
        plan
    }

    /// Whether the plan holds a secret, in which case its file must be mode 0600.
    pub fn has_secret(&self) -> bool {
        self.relay
            .tls
            .as_ref()
            .is_some_and(|tls| tls.passphrase.is_some())
            || self
                .relay
                .remotes
                .iter()
                .chain(self.relay.discovered.iter().map(|d| &d.template))
                .any(|remote| {
                    remote
                        .tls
                        .as_ref()
                        .is_some_and(|tls| tls.passphrase.is_some())
                })
    }
}

impl Syslog {
    /// The defaults of the original: ident = program name, facility UUCP, INFO.
    pub fn default_for(ident: &str) -> Syslog {
        Syslog {
            ident: ident.to_string(),
            facility: Facility::Uucp,
            severity: Severity::Info,
        }
    }
}

impl Spawnd {
    /// The worker processes (min, max) on a machine with `cpus` processors: a
    /// `servers min` not given is one per processor (at least 2, at most `servers
    /// max`), a `servers max` not given is 8 or `servers min` if higher.
    pub fn workers(&self, cpus: u32) -> (u32, u32) {
        let cpus = cpus.clamp(2, MAX_WORKERS);
        let (min, max) = match (self.servers_min, self.servers_max) {
            (0, 0) => (cpus, cpus.max(defaults::AUTO_SERVERS_MAX)),
            (0, max) => (cpus.min(max), max),
            (min, 0) => (min, min.max(defaults::AUTO_SERVERS_MAX)),
            (min, max) => (min, max),
        };
        (min, max.max(min))
    }
}

impl Plan {
    /// A plan of these sections with every other setting at its default, for
    /// tests and tools that build plans by hand.
    pub fn new(source: impl Into<String>, spawnd: Spawnd, relay: Relay) -> Plan {
        Plan {
            source: source.into(),
            spawnd_id: "spawnd".to_string(),
            tcprelay_id: "tcprelay".to_string(),
            env: Vec::new(),
            spawnd,
            relay,
        }
    }
}

impl Spawnd {
    /// A spawnd section with these listeners and every other setting at the
    /// compiler's default (one worker per processor, no control socket), for tests
    /// and tools that build plans by hand.
    pub fn new(listeners: Vec<Listener>) -> Spawnd {
        Spawnd {
            listeners,
            users_min: defaults::USERS_MIN,
            users_max: defaults::USERS_MAX,
            servers_min: defaults::SERVERS_MIN,
            servers_max: defaults::SERVERS_MAX,
            background: false,
            pidfile: None,
            user: None,
            group: None,
            working_directory: None,
            acl: Vec::new(),
            overload: Overload::Queue,
            keepalive: Keepalive::default(),
            single_process: false,
            syslog: Syslog::default_for("tcprelay"),
            debug: 0,
            tcp_bufsize: None,
            sticky: None,
            proctitle: None,
            control: None,
            metrics: None,
            log_format: defaults::LOG_FORMAT,
        }
    }
}

impl Relay {
    /// A tcprelay section with these remotes and every other setting at its
    /// default, for tests and tools that build plans by hand.
    pub fn new(remotes: Vec<Remote>) -> Relay {
        Relay {
            remotes,
            local_address: None,
            rebalance: None,
            retire: None,
            idle_timeout: defaults::IDLE_TIMEOUT,
            silent_timeout: defaults::SILENT_TIMEOUT,
            connect_timeout: defaults::CONNECT_TIMEOUT,
            tls_handshake_timeout: defaults::TLS_HANDSHAKE_TIMEOUT,
            half_close_timeout: defaults::HALF_CLOSE_TIMEOUT,
            drain_timeout: defaults::DRAIN_TIMEOUT,
            drain_generations: defaults::DRAIN_GENERATIONS,
            connection_log: defaults::CONNECTION_LOG,
            syslog: Syslog::default_for("tcprelay"),
            tls: None,
            balance: Balance::LeastConn,
            routes: Vec::new(),
            discovered: Vec::new(),
            resolve: Resolve::default(),
        }
    }
}

impl Remote {
    /// The remote's identity, `ADDRESS:PORT/PROTOCOL` (`[::1]:80/TCP`): how the
    /// counters, `ctl remotes`, `diff` and `route` name it.
    pub fn key(&self) -> String {
        format!("{}/{}", self.address, self.protocol)
    }

    /// A plain TCP remote at `address`, weight 1, without PROXY, TLS or checks.
    pub fn new(address: SocketAddr) -> Remote {
        Remote {
            address,
            protocol: Protocol::Tcp,
            weight: defaults::WEIGHT,
            send_proxy: None,
            tls: None,
            check: None,
            route: None,
        }
    }
}

/// The most worker processes a relay runs (`servers min`, `servers max`): a bound on
/// what a configuration can make the master fork, and the load board's seats.
pub const MAX_WORKERS: u32 = 1024;

/// Defaults shared by the compiler (when a directive is absent) and documented in
/// the manual. 0 for a count means "chosen by the runtime on its machine".
pub mod defaults {
    /// Milliseconds a DNS query may take, queries per resolution, and the bounds of
    /// a record's TTL taken as the interval between resolutions.
    pub const RESOLVE_TIMEOUT_MS: u32 = 2000;
    pub const RESOLVE_ATTEMPTS: u32 = 2;
    pub const RESOLVE_INTERVAL_MIN: u32 = 1;
    pub const RESOLVE_INTERVAL_MAX: u32 = 300;
    pub const USERS_MIN: u32 = 20;
    /// As many sessions as the worker's open-file limit allows.
    pub const USERS_MAX: u32 = 0;
    /// One worker per processor, at least 2 ([`super::Spawnd::workers`]).
    pub const SERVERS_MIN: u32 = 0;
    /// 8, or `servers min` if higher.
    pub const SERVERS_MAX: u32 = 0;
    pub const AUTO_SERVERS_MAX: u32 = 8;
    pub const BACKLOG: u32 = 128;
    /// The sticky cache's size when only its period is given (the original's).
    pub const STICKY_SIZE: u32 = 1024;
    pub const WEIGHT: u32 = 1;
    pub const IDLE_TIMEOUT: u32 = 0;
    /// A connection that nobody speaks on is closed after a minute: the slots of a
    /// worker are not held forever by connections that send nothing.
    pub const SILENT_TIMEOUT: u32 = 60;
    pub const CONNECT_TIMEOUT: u32 = 10;
    pub const TLS_HANDSHAKE_TIMEOUT: u32 = 10;
    pub const HALF_CLOSE_TIMEOUT: u32 = 0;
    pub const DRAIN_TIMEOUT: u32 = 0;
    pub const DRAIN_GENERATIONS: u32 = 8;
    pub const CONNECTION_LOG: bool = true;
    /// The control socket's mode without a `group`: the owner only.
    pub const CONTROL_MODE: u32 = 0o600;
    /// The control socket's mode with a `group`: the owner and that group.
    pub const CONTROL_GROUP_MODE: u32 = 0o660;
    /// The metrics endpoint's address when `metrics` gives none.
    pub const METRICS_ADDRESS: std::net::IpAddr =
        std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    pub const LOG_FORMAT: super::LogFormat = super::LogFormat::Text;
    /// Milliseconds a client of a PROXY-accepting listener has to send its header.
    pub const ACCEPT_PROXY_TIMEOUT_MS: u32 = 5_000;
    /// Health checks: every 2 s, 1 s each, up after 2 passes, down after 3 failures
    /// (HAProxy's `inter 2s rise 2 fall 3`).
    pub const CHECK_INTERVAL_MS: u32 = 2_000;
    pub const CHECK_TIMEOUT_MS: u32 = 1_000;
    pub const CHECK_RISE: u32 = 2;
    pub const CHECK_FALL: u32 = 3;
    /// TLS towards a remote verifies its certificate unless told not to.
    pub const REMOTE_TLS_VERIFY: bool = true;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facility_codes_match_syslog_h() {
        assert_eq!(Facility::Kern.code(), 0);
        assert_eq!(Facility::Uucp.code(), 8 << 3);
        assert_eq!(Facility::AuthPriv.code(), 10 << 3);
        assert_eq!(Facility::Local0.code(), 16 << 3);
        assert_eq!(Facility::Local7.code(), 23 << 3);
    }

    #[test]
    fn names_round_trip() {
        for (f, n) in Facility::ALL {
            assert_eq!(Facility::from_name(n), Some(f));
            assert_eq!(f.name(), n);
        }
        for (s, n) in Severity::ALL {
            assert_eq!(Severity::from_name(&n.to_lowercase()), Some(s));
        }
        assert_eq!(Severity::from_name("error"), Some(Severity::Err));
        assert_eq!(Facility::from_name("nosuch"), None);
    }

    #[test]
    fn a_redacted_plan_holds_no_passphrase() {
        let secret = || Some(Secret::new("hunter2"));
        let mut remote_tls = RemoteTls {
            sni: None,
            verify: true,
            ca_file: None,
            cert_file: None,
            key_file: None,
            passphrase: secret(),
        };
        let remote = |tls: Option<RemoteTls>| Remote {
            tls,
            ..Remote::new("127.0.0.1:1".parse().unwrap())
        };
        let relay = Relay {
            tls: Some(Tls {
                cert_file: "c".into(),
                key_file: "k".into(),
                passphrase: secret(),
            }),
            ..Relay::new(vec![remote(Some(remote_tls.clone())), remote(None)])
        };
        let redacted = relay_plan(relay).redacted();
        let tls = redacted.relay.tls.as_ref().unwrap();
        assert!(tls.passphrase.as_ref().unwrap().is_redacted());
        let remote = redacted.relay.remotes[0].tls.as_ref().unwrap();
        assert!(remote.passphrase.as_ref().unwrap().is_redacted());
        assert!(redacted.relay.remotes[1].tls.is_none(), "nothing added");
        assert!(
            redacted.validate().is_ok(),
            "the constructors' defaults are valid"
        );
        // Everything else is the plan's.
        remote_tls.passphrase = remote.passphrase.clone();
        assert_eq!(remote, &remote_tls);
    }

    fn relay_plan(relay: Relay) -> Plan {
        let listener = Listener::new(ListenAddress::Inet("127.0.0.1:1".parse().unwrap()));
        Plan::new("t.cfg", Spawnd::new(vec![listener]), relay)
    }

    #[test]
    fn secret_is_redacted() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "<redacted> <redacted>");
        assert_eq!(s.expose(), "hunter2");
    }
}
