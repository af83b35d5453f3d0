//! The abstract syntax tree: what was written, with a span on every node.
//!
//! The AST is permissive. Values are kept as the text that was written (a number is
//! still a string here), and a section's body holds the union of the spawnd and the
//! tcprelay directives, because which role a section plays is chosen on the command
//! line, not in the file. The check stage gives the values their meaning; lowering
//! turns a checked AST into the strict plan.

use std::fmt;

/// A byte range of the source text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Span {
        Span { start, end }
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }

    pub fn range(self) -> std::ops::Range<usize> {
        self.start..self.end
    }
}

/// A node with the span of the source text it came from. The grammar attaches it
/// with one macro (`Sp<Rule>`), never by hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sp<T> {
    pub node: T,
    pub span: Span,
}

impl<T> Sp<T> {
    pub fn new(node: T, span: Span) -> Sp<T> {
        Sp { node, span }
    }
}

/// A whole configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct File {
    pub items: Vec<Sp<Item>>,
}

/// A top-level item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// `setenv NAME = VALUE`
    Setenv { name: Sp<Value>, value: Sp<Value> },
    /// `id = NAME { ... }`
    Section(Section),
    /// `id = NAME { ... }` of a section not selected (another program's, or the
    /// other role's when only one is read): skipped to its matching `}` without being
    /// parsed, so whatever it holds is not tcprelay's concern. The item's span runs
    /// from `id` to that `}`. `listens` are its `listen` blocks, read for where they
    /// bind only (another daemon's listeners, which the check compares with the
    /// selected ones).
    Skipped {
        id: Sp<Value>,
        listens: Vec<ForeignListen>,
    },
    /// A directive outside any section (`debug`, `syslog ...`, `proctitle`, ...), which
    /// every program of the family reads.
    Directive(Directive),
    /// Something that did not parse; its diagnostic was already reported.
    Error,
}

/// A `listen` block of a skipped section, as far as where it binds: the values of
/// its `address` (or a bare address first in the block), `port` and `path`, as
/// written (another program's, so never reported).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignListen {
    /// The `listen` key.
    pub key: Span,
    pub address: Option<Sp<Value>>,
    pub port: Option<Sp<Value>>,
    pub path: Option<Sp<Value>>,
}

/// `id = NAME { directives }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub id: Sp<Value>,
    pub body: Vec<Sp<Directive>>,
}

/// A word or a quoted string, as written (quotes removed, escapes resolved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value {
    pub text: String,
    pub quoted: bool,
}

impl Value {
    pub fn word(text: impl Into<String>) -> Value {
        Value {
            text: text.into(),
            quoted: false,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// One directive: its key (one variant per accepted spelling, so that deprecated
/// spellings can be reported with a fix-it) and what follows the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    pub key: Sp<Key>,
    pub body: Body,
}

/// What follows a directive's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// `key = value` (or `key value` where the `=` is optional).
    Value(Sp<Value>),
    /// `key = { ... }` (or `key { ... }`).
    Block(Vec<Sp<Directive>>),
    /// `key = value value ...`: `debug = PARSE NET`, several flags or numbers.
    List(Vec<Sp<Value>>),
    /// A directive that did not parse; its diagnostic was already reported.
    Error,
}

/// Every directive key the language has, one variant per spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Key {
    // Blocks.
    Listen,
    Spawn,
    Remote,
    /// `control = { path mode group }` or `control = no` (spawnd section).
    Control,
    /// `metrics = { address port }` (spawnd section).
    Metrics,

    // Inside `listen { }`.
    Address,
    Port,
    Path,
    Tls,
    Protocol,
    Backlog,
    OverloadBacklog,
    Realm,
    Mode,
    /// The manual's `listen = { ::0 port = 2224 }`: an address with no key.
    BareAddress,

    // Inside `spawn { }`.
    UsersMin,
    UsersMax,
    ServersMin,
    ServersMax,
    InstancesMin,
    InstancesMax,
    Exec,

    // Inside `listen { }`: the PROXY protocol.
    /// `haproxy = yes|no`: the family's spelling of `accept proxy = any|no`.
    Haproxy,
    AcceptProxy,
    AcceptProxyFrom,
    AcceptProxyTimeout,

    // Inside `remote { }` (also `address`, `port`, `protocol`, `tls`, `tls cert-file`,
    // `tls key-file`, `tls passphrase`).
    Weight,
    /// `send proxy = v1|v2|no` (also in the tcprelay section, for every remote).
    SendProxy,
    TlsSni,
    TlsVerify,
    TlsCaFile,
    /// `check = { ... }` or `check = no` (also in the tcprelay section).
    Check,

    // Inside `check { }` (also `tls`).
    Interval,
    Timeout,
    Rise,
    Fall,
    Send,
    Expect,
    ExpectRegex,

    // spawnd section.
    Background,
    Pidfile,
    SingleProcess,
    User,
    Userid,
    Group,
    Groupid,
    WorkingDirectory,
    /// `acl = permit [not] NET` / `acl = deny [not] NET`.
    Acl {
        permit: bool,
        negate: bool,
    },
    BindRetryDelay,
    /// `overload = queue|close|reset` (section level or inside `spawn`).
    Overload,
    Debug,
    /// `tcp keepalive count|idle|interval` (section level or inside `listen`).
    KeepaliveCount,
    KeepaliveIdle,
    KeepaliveInterval,
    LogFormat,

    // Both sections.
    SyslogIdent,
    SyslogFacility,
    SyslogLevel,
    SyslogSeverity,

    // tcprelay section.
    LocalAddress,
    Rebalance,
    /// `balance = least-conn|source|source sticky`.
    Balance,
    Retire,
    RetireLimit,
    IdleTimeout,
    SilentTimeout,
    ConnectTimeout,
    TlsHandshakeTimeout,
    HalfCloseTimeout,
    DrainTimeout,
    DrainGenerations,
    ConnectionLog,
    TlsCertFile,
    TlsCertfile,
    TlsKeyFile,
    TlsKeyfile,
    TlsPassphrase,
    SslCert,
    SslCertfile,
    SslCertFile,
    SslKey,
    SslKeyfile,
    SslKeyFile,
    SslPassphrase,

    // The family's directives added for issue 16.
    /// `trace = ...`, a synonym of `debug` (top level and both sections).
    Trace,
    DebugRedirect,
    TraceRedirect,
    SyslogDefault,
    SyslogFilter,
    Proctitle,
    CoredumpDirectory,
    Gcore,
    DebugCmd,
    CleanupInterval,
    /// `alias NAME = { ... }`: the value is NAME.
    Alias,
    RegexMatchCase,
    /// `exec = PATH` and `id = NAME` written in the spawnd section itself, as the
    /// spawnd manual's snippet does (deprecated: they belong in `spawn`).
    SectionExec,
    SectionId,
    /// The spawnd manual's `acl accept ::1`: `acl`, a verb (`accept`, `permit`,
    /// `deny`) and the network, without `=` (deprecated).
    AclShort {
        permit: bool,
        negate: bool,
    },
    /// The spawnd manual's bare `permit [not] NET` / `deny [not] NET`.
    AclRule {
        permit: bool,
        negate: bool,
    },
    TcpBufsize,
    /// `pid-file`, a synonym of `pidfile`.
    PidFile,
    StickyCachePeriod,
    StickyCacheSize,
    // Inside `listen { }`.
    /// `ssl = ...`, the family's synonym of a listener's `tls`.
    Ssl,
    TlsPsk,
    Dscp,
    Vrf,
    AaaProtocol,
    Flag,
    Type,
    // Inside `spawn { }`.
    /// `id = NAME`: the tcprelay section the workers read.
    SpawnId,
    Config,
    IpcKey,
    UsersMinimum,
    UsersMaximum,
    InstancesMinimum,
    InstancesMaximum,
    // The spawnd manual's forms its parser rejected (warning E0040).
    /// `port N` without `=` in a `listen` block (the spawnd manual's sample).
    PortWithoutEquals,
    /// A bare `tls` in a `listen` block, `tls = yes` (the spawnd manual's sample).
    BareTls,
    // DNS discovery (issue 18).
    /// `resolvers = { nameserver = ... timeout = ... attempts = ... }` (tcprelay).
    Resolvers,
    /// `srv = _service._proto.NAME` in a `remote` block.
    Srv,
    /// Inside `resolvers { }` (also `timeout`).
    Nameserver,
    Attempts,
    ResolveInterval,
    ResolveIntervalMin,
    ResolveIntervalMax,
    ResolveStart,
    // Routing by SNI.
    /// `route = { sni = NAME ... remote = { ... } }` in the tcprelay section.
    Route,
    /// `sni = NAME` in a `route` block.
    Sni,
}

/// Which section role a directive belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Spawnd,
    Tcprelay,
    /// Allowed in either (e.g. `syslog`).
    Either,
    /// Only inside a block, never directly in a section.
    Nested,
}

impl Key {
    /// The key as written in a configuration, e.g. `"tls cert-file"`.
    pub fn spelling(self) -> &'static str {
        use Key::*;
        match self {
            Listen => "listen",
            Spawn => "spawn",
            Remote => "remote",
            Control => "control",
            Metrics => "metrics",
            Address => "address",
            Port => "port",
            Path => "path",
            Tls => "tls",
            Protocol => "protocol",
            Backlog => "backlog",
            OverloadBacklog => "overload backlog",
            Realm => "realm",
            Mode => "mode",
            BareAddress => "address",
            UsersMin => "users min",
            UsersMax => "users max",
            ServersMin => "servers min",
            ServersMax => "servers max",
            InstancesMin => "instances min",
            InstancesMax => "instances max",
            Exec => "exec",
            Weight => "weight",
            Haproxy => "haproxy",
            AcceptProxy => "accept proxy",
            AcceptProxyFrom => "accept proxy from",
            AcceptProxyTimeout => "accept proxy timeout",
            SendProxy => "send proxy",
            TlsSni => "tls sni",
            TlsVerify => "tls verify",
            TlsCaFile => "tls ca-file",
            Check => "check",
            Interval => "interval",
            Timeout => "timeout",
            Rise => "rise",
            Fall => "fall",
            Send => "send",
            Expect => "expect",
            ExpectRegex => "expect regex",
            Background => "background",
            Pidfile => "pidfile",
            SingleProcess => "single process",
            User => "user",
            Userid => "userid",
            Group => "group",
            Groupid => "groupid",
            WorkingDirectory => "working directory",
            Acl { .. } => "acl",
            BindRetryDelay => "bind retry delay",
            Overload => "overload",
            Debug => "debug",
            KeepaliveCount => "tcp keepalive count",
            KeepaliveIdle => "tcp keepalive idle",
            KeepaliveInterval => "tcp keepalive interval",
            LogFormat => "log format",
            SyslogIdent => "syslog ident",
            SyslogFacility => "syslog facility",
            SyslogLevel => "syslog level",
            SyslogSeverity => "syslog severity",
            LocalAddress => "local address",
            Rebalance => "rebalance",
            Balance => "balance",
            Retire => "retire",
            RetireLimit => "retire limit",
            IdleTimeout => "idle timeout",
            SilentTimeout => "silent timeout",
            ConnectTimeout => "connect timeout",
            TlsHandshakeTimeout => "tls handshake timeout",
            HalfCloseTimeout => "half close timeout",
            DrainTimeout => "drain timeout",
            DrainGenerations => "drain generations",
            ConnectionLog => "connection log",
            TlsCertFile => "tls cert-file",
            TlsCertfile => "tls certfile",
            TlsKeyFile => "tls key-file",
            TlsKeyfile => "tls keyfile",
            TlsPassphrase => "tls passphrase",
            SslCert => "ssl cert",
            SslCertfile => "ssl certfile",
            SslCertFile => "ssl cert-file",
            SslKey => "ssl key",
            SslKeyfile => "ssl keyfile",
            SslKeyFile => "ssl key-file",
            SslPassphrase => "ssl passphrase",
            Trace => "trace",
            DebugRedirect => "debug redirect",
            TraceRedirect => "trace redirect",
            SyslogDefault => "syslog default",
            SyslogFilter => "syslog filter",
            Proctitle => "proctitle",
            CoredumpDirectory => "coredump directory",
            Gcore => "gcore",
            DebugCmd => "debug-cmd",
            CleanupInterval => "cleanup interval",
            Alias => "alias",
            RegexMatchCase => "regex-match-case",
            AclShort { .. } => "acl",
            SectionExec => "exec",
            SectionId => "id",
            AclRule { permit: true, .. } => "permit",
            AclRule { permit: false, .. } => "deny",
            TcpBufsize => "tcp bufsize",
            PidFile => "pid-file",
            StickyCachePeriod => "sticky cache period",
            StickyCacheSize => "sticky cache size",
            Ssl => "ssl",
            TlsPsk => "tls psk",
            Dscp => "dscp",
            Vrf => "vrf",
            AaaProtocol => "aaa.protocol",
            Flag => "flag",
            Type => "type",
            SpawnId => "id",
            Config => "config",
            IpcKey => "ipc key",
            UsersMinimum => "users minimum",
            UsersMaximum => "users maximum",
            InstancesMinimum => "instances minimum",
            InstancesMaximum => "instances maximum",
            PortWithoutEquals => "port",
            BareTls => "tls",
            Resolvers => "resolvers",
            Srv => "srv",
            Nameserver => "nameserver",
            Attempts => "attempts",
            ResolveInterval => "resolve interval",
            ResolveIntervalMin => "resolve interval min",
            ResolveIntervalMax => "resolve interval max",
            ResolveStart => "resolve start",
            Route => "route",
            Sni => "sni",
        }
    }

    /// The spelling to use instead, when this one is deprecated.
    pub fn replacement(self) -> Option<Key> {
        use Key::*;
        match self {
            SslCert | SslCertfile | SslCertFile => Some(TlsCertFile),
            SslKey | SslKeyfile | SslKeyFile => Some(TlsKeyFile),
            SslPassphrase => Some(TlsPassphrase),
            RetireLimit => Some(Retire),
            Userid => Some(User),
            Groupid => Some(Group),
            Ssl => Some(Tls),
            UsersMinimum => Some(UsersMin),
            UsersMaximum => Some(UsersMax),
            InstancesMinimum => Some(InstancesMin),
            InstancesMaximum => Some(InstancesMax),
            _ => None,
        }
    }

    /// The section role the key belongs to when it appears directly in a section.
    pub fn role(self) -> Role {
        use Key::*;
        match self {
            Listen
            | Spawn
            | Background
            | Pidfile
            | SingleProcess
            | User
            | Userid
            | Group
            | Groupid
            | WorkingDirectory
            | Acl { .. }
            | BindRetryDelay
            | Overload
            | AclShort { .. }
            | SectionExec
            | SectionId
            | AclRule { .. }
            | TcpBufsize
            | PidFile
            | StickyCachePeriod
            | StickyCacheSize
            | KeepaliveCount
            | KeepaliveIdle
            | KeepaliveInterval
            | Control
            | Metrics
            | LogFormat => Role::Spawnd,
            SyslogIdent | SyslogFacility | SyslogLevel | SyslogSeverity | SyslogDefault
            | SyslogFilter | Debug | Trace | DebugRedirect | TraceRedirect | Proctitle
            | CoredumpDirectory | Gcore | DebugCmd | CleanupInterval | Alias | RegexMatchCase => {
                Role::Either
            }
            Remote | LocalAddress | Rebalance | Balance | Retire | RetireLimit | IdleTimeout
            | SilentTimeout | ConnectTimeout | TlsHandshakeTimeout | HalfCloseTimeout
            | DrainTimeout | DrainGenerations | ConnectionLog | TlsCertFile | TlsCertfile
            | TlsKeyFile | TlsKeyfile | TlsPassphrase | SslCert | SslCertfile | SslCertFile
            | SslKey | SslKeyfile | SslKeyFile | SslPassphrase | SendProxy | Check | Route => {
                Role::Tcprelay
            }
            Resolvers | ResolveInterval | ResolveIntervalMin | ResolveIntervalMax
            | ResolveStart => Role::Tcprelay,
            Srv | Nameserver | Attempts => Role::Nested,
            Address | Port | Path | Tls | Protocol | Backlog | OverloadBacklog | Realm | Mode
            | BareAddress | UsersMin | UsersMax | ServersMin | ServersMax | InstancesMin
            | InstancesMax | Exec | Weight | Haproxy | AcceptProxy | AcceptProxyFrom
            | AcceptProxyTimeout | TlsSni | TlsVerify | TlsCaFile | Interval | Timeout | Rise
            | Fall | Send | Expect | ExpectRegex | Ssl | TlsPsk | Dscp | Vrf | AaaProtocol
            | Flag | Type | SpawnId | Config | IpcKey | UsersMinimum | UsersMaximum
            | InstancesMinimum | InstancesMaximum | PortWithoutEquals | BareTls | Sni => {
                Role::Nested
            }
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.spelling())
    }
}
