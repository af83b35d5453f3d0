//! `Plan::validate`: the invariants every plan must hold, checked by the compiler
//! before it writes a plan and by the runtime before it binds anything.
//!
//! The compiler reports the same problems earlier, with spans; this is the last line
//! for plans that were written by another tool, edited, or produced by a compiler bug.

use crate::{Check, ListenAddress, Plan};
use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// One broken invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanError {
    NoListener,
    NoRemote,
    ZeroWeight {
        remote: usize,
    },
    ZeroPort {
        what: String,
    },
    UsersRange {
        min: u32,
        max: u32,
    },
    ServersRange {
        min: u32,
        max: u32,
    },
    /// `servers min` or `servers max` above [`crate::MAX_WORKERS`].
    TooManyWorkers {
        count: u32,
    },
    DuplicateListener {
        first: usize,
        second: usize,
        address: String,
    },
    TlsWithoutCertificate {
        listener: usize,
    },
    /// A string the operating system would be given (a path, a name, an environment
    /// variable) that it cannot take; `field` names it in an operator's words.
    NotForTheOs {
        field: String,
        problem: OsText,
    },
    RebalanceZero,
    RetireZero,
    /// A broken `route` (SNI routing), in an operator's words (`sni::problems`).
    BadRoute(String),
    BadAcl {
        rule: usize,
    },
    /// A setting that must be at least 1 (`connect timeout`, `tls handshake
    /// timeout`, `drain generations`) is 0; `what` is its directive.
    ZeroSetting {
        what: &'static str,
    },
    /// The control socket's mode has bits above `0o777`.
    ControlMode {
        mode: u32,
    },
    /// The metrics endpoint is on an address a listener binds.
    MetricsOnListener {
        listener: usize,
        address: SocketAddr,
    },
    /// A network of `accept proxy from` with a prefix longer than its address.
    BadNetwork {
        listener: usize,
    },
    /// A remote's health check setting that must be at least 1 is 0.
    ZeroCheckSetting {
        remote: usize,
        what: &'static str,
    },
    /// A check's `send` or `expect` is longer than a check reads or writes.
    CheckTooLong {
        remote: usize,
        what: &'static str,
    },
    /// A check's timeout is longer than its interval.
    CheckTimeout {
        remote: usize,
    },
    /// A listener setting that does not fit the listener (`dscp` over 63, TLS
    /// versions without `tls`, `vrf` on a Unix socket, `userid` on an IP socket, a
    /// `bind retry delay` or a sticky cache of 0, a sticky cache over
    /// [`crate::MAX_STICKY_SIZE`]); `what` says which in an operator's words.
    BadListenerSetting {
        listener: usize,
        what: &'static str,
    },
    /// `tcp bufsize` of 0 or over `i32::MAX`, or the relay-wide sticky cache's
    /// period or size out of range; `what` names it.
    BadSetting {
        what: &'static str,
    },
    /// A discovered name (`remote = { address = NAME }`, `{ srv = NAME }`) that is
    /// not a DNS name, or whose template does not fit its lookup; `what` says why.
    BadDiscovered {
        name: String,
        what: String,
    },
    /// The same name with the same lookup, port and protocol twice: each address
    /// would be two remotes with one key.
    DuplicateDiscovered {
        name: String,
    },
    /// A resolver setting out of range (`what` names it).
    BadResolve {
        what: &'static str,
    },
}

/// Why `name` is not a DNS name the resolver can be asked for, or `None`: labels of
/// letters, digits, `-` and `_` (SRV names' `_service._proto`), 1 to 63 bytes, not
/// starting or ending with `-`; at most 253 bytes without the one final dot an
/// absolute name may have; not an IP address, not all digits and dots.
pub fn dns_name_problem(name: &str) -> Option<String> {
    let bare = name.strip_suffix('.').unwrap_or(name);
    if bare.is_empty() {
        return Some("it is empty".to_string());
    }
    if bare.parse::<IpAddr>().is_ok() {
        return Some("it is an IP address".to_string());
    }
    if bare.len() > 253 {
        return Some(format!("it is {} bytes long, more than 253", bare.len()));
    }
    for label in bare.split('.') {
        if label.is_empty() {
            return Some("it has an empty label (two dots in a row, or a dot at its start)".into());
        }
        if label.len() > 63 {
            return Some(format!("the label `{label}` is longer than 63 bytes"));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Some(format!(
                "{c:?} is not a letter, a digit, `-` or `_` (write an internationalized name in its `xn--` form)"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Some(format!("the label `{label}` starts or ends with `-`"));
        }
    }
    if bare.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Some("it is all digits and dots, like a broken IP address".to_string());
    }
    None
}

/// The problems of the discovered names and the resolver settings.
fn discovery_problems(r: &crate::Relay, errors: &mut Vec<PlanError>) {
    use crate::Lookup;
    for (i, d) in r.discovered.iter().enumerate() {
        let bad = |what: String| PlanError::BadDiscovered {
            name: d.name.clone(),
            what,
        };
        if let Some(why) = dns_name_problem(&d.name) {
            errors.push(bad(format!("is not a DNS name: {why}")));
        }
        if d.name.bytes().any(|b| b.is_ascii_uppercase()) {
            errors.push(bad("is not lowercase".to_string()));
        }
        let t = &d.template;
        if !t.address.ip().is_unspecified() {
            errors.push(bad(format!(
                "has a template address, {}, where the unspecified address belongs",
                t.address.ip()
            )));
        }
        match d.lookup {
            Lookup::Address { port } => {
                if port == 0 {
                    errors.push(bad("has port 0".to_string()));
                }
                if t.address.port() != port {
                    errors.push(bad(format!(
                        "has a template port, {}, other than its lookup's, {port}",
                        t.address.port()
                    )));
                }
            }
            Lookup::Srv => {
                if t.address.port() != 0 {
                    errors.push(bad(
                        "is an SRV name with a template port (the records give it)".to_string(),
                    ));
                }
            }
        }
        if t.weight == 0 {
            errors.push(bad("has weight 0".to_string()));
        }
        if let Some(tls) = &t.tls {
            let fields = [
                ("TLS server name", &tls.sni),
                ("CA file", &tls.ca_file),
                ("certificate file", &tls.cert_file),
                ("key file", &tls.key_file),
            ];
            for (what, value) in fields {
                if let Some(Err(problem)) = value.as_deref().map(OsText::check_name) {
                    errors.push(bad(format!("has a {what} that {problem}")));
                }
            }
        }
        if let Some(check) = &t.check {
            for what in zero_check_settings(check) {
                errors.push(bad(format!("has a check {what} of 0")));
            }
            if check.timeout_ms > check.interval_ms {
                errors.push(bad(
                    "has a check timeout longer than its interval".to_string()
                ));
            }
        }
        let same = |e: &crate::Discovered| {
            e.name == d.name
                && e.lookup == d.lookup
                && e.template.protocol == d.template.protocol
                && e.template.route == d.template.route
        };
        if r.discovered[..i].iter().any(same) {
            errors.push(PlanError::DuplicateDiscovered {
                name: d.name.clone(),
            });
        }
    }
    let v = &r.resolve;
    if v.timeout_ms == 0 {
        errors.push(PlanError::BadResolve {
            what: "the resolvers' timeout is 0",
        });
    }
    if v.attempts == 0 {
        errors.push(PlanError::BadResolve {
            what: "the resolvers' attempts are 0",
        });
    }
    if v.interval_s == Some(0) || v.interval_min_s == 0 {
        errors.push(PlanError::BadResolve {
            what: "a resolve interval is 0",
        });
    }
    if v.interval_min_s > v.interval_max_s {
        errors.push(PlanError::BadResolve {
            what: "`resolve interval min` is above `resolve interval max`",
        });
    }
    if v.nameservers.iter().any(|n| n.port() == 0) {
        errors.push(PlanError::BadResolve {
            what: "a nameserver has port 0",
        });
    }
}

/// Whether a sticky cache's period and size are in range.
fn sticky_fits(sticky: crate::Sticky) -> bool {
    sticky.period_s >= 1 && (1..=crate::MAX_STICKY_SIZE).contains(&sticky.size)
}

/// What is wrong with a listener's own settings, each in an operator's words.
fn listener_settings(l: &crate::Listener) -> Vec<&'static str> {
    let unix = matches!(l.address, ListenAddress::Unix(_));
    let mut out = Vec::new();
    if l.dscp.is_some_and(|d| d > 63) {
        out.push("dscp must be from 0 to 63");
    }
    if !l.tls && (!l.tls_versions.is_empty() || l.tls_auto) {
        out.push("TLS versions or tls = auto on a listener without TLS");
    }
    if l.tls_versions.windows(2).any(|w| w[0] >= w[1]) {
        out.push("TLS versions repeated or out of order");
    }
    if unix && l.vrf.is_some() {
        out.push("vrf on a Unix-domain socket");
    }
    if !unix && (l.owner.is_some() || l.group.is_some()) {
        out.push("userid or groupid on an IP socket (they are for Unix-domain sockets)");
    }
    if l.bind_retry_delay == Some(0) {
        out.push("bind retry delay is 0, and must be at least 1");
    }
    if l.sticky.is_some_and(|sticky| !sticky_fits(sticky)) {
        out.push("the sticky cache needs a period of at least 1 s and a size from 1 to 1048576");
    }
    out
}

/// The most bytes a health check sends, and expects in its first reply.
pub const MAX_CHECK_BYTES: usize = 16 * 1024;

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanError::NoListener => f.write_str("the plan has no listener"),
            PlanError::NoRemote => f.write_str("the plan has no remote and no discovered name"),
            PlanError::BadDiscovered { name, what } => {
                write!(f, "the discovered name `{name}` {what}")
            }
            PlanError::DuplicateDiscovered { name } => write!(
                f,
                "the discovered name `{name}` is given twice with the same lookup, protocol and route"
            ),
            PlanError::BadResolve { what } => f.write_str(what),
            PlanError::ZeroWeight { remote } => write!(f, "remote #{} has weight 0", remote + 1),
            PlanError::ZeroPort { what } => write!(f, "{what} has port 0"),
            PlanError::UsersRange { min, max } => {
                write!(
                    f,
                    "users min ({min}) is greater than users max ({max}), or max is 0"
                )
            }
            PlanError::ServersRange { min, max } => {
                write!(f, "servers min ({min}) is greater than servers max ({max})")
            }
            PlanError::TooManyWorkers { count } => write!(
                f,
                "{count} worker processes are more than the {} a relay runs",
                crate::MAX_WORKERS
            ),
            PlanError::DuplicateListener {
                first,
                second,
                address,
            } => write!(
                f,
                "listeners #{} and #{} both bind {address}",
                first + 1,
                second + 1
            ),
            PlanError::TlsWithoutCertificate { listener } => write!(
                f,
                "listener #{} has tls = yes but the plan has no certificate",
                listener + 1
            ),
            PlanError::NotForTheOs { field, problem } => write!(f, "{field} {problem}"),
            PlanError::RebalanceZero => f.write_str("rebalance is 0"),
            PlanError::RetireZero => f.write_str("retire is 0"),
            PlanError::BadRoute(what) => f.write_str(what),
            PlanError::ZeroSetting { what } => write!(f, "{what} is 0, and must be at least 1"),
            PlanError::ControlMode { mode } => write!(
                f,
                "the control socket's mode {mode:#o} is not a file mode from 0 to 0777"
            ),
            PlanError::MetricsOnListener { listener, address } => write!(
                f,
                "the metrics endpoint {address} is an address listener #{} binds",
                listener + 1
            ),
            PlanError::BadNetwork { listener } => write!(
                f,
                "listener #{} accepts PROXY headers from a network whose prefix is longer than its address",
                listener + 1
            ),
            PlanError::ZeroCheckSetting { remote, what } => write!(
                f,
                "remote #{}'s check {what} is 0, and must be at least 1",
                remote + 1
            ),
            PlanError::CheckTooLong { remote, what } => write!(
                f,
                "remote #{}'s check {what} is longer than {MAX_CHECK_BYTES} bytes",
                remote + 1
            ),
            PlanError::CheckTimeout { remote } => write!(
                f,
                "remote #{}'s check timeout is longer than its interval",
                remote + 1
            ),
            PlanError::BadListenerSetting { listener, what } => {
                write!(f, "listener #{}: {what}", listener + 1)
            }
            PlanError::BadSetting { what } => f.write_str(what),
            PlanError::BadAcl { rule } => {
                write!(
                    f,
                    "acl rule #{} has a prefix longer than its address",
                    rule + 1
                )
            }
        }
    }
}

impl std::error::Error for PlanError {}

/// Why the operating system cannot take a string of the plan. The rules are here,
/// once, for both sides: the compiler reports a broken one at its place in the
/// configuration (E0046), [`Plan::validate`] refuses a plan that holds one, and the
/// runtime never hands one to a system call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OsText {
    /// A NUL byte: the operating system takes strings NUL-terminated, so the rest
    /// would be cut off (a path) or the call refused (`setenv`).
    Nul,
    /// Empty where a path or a name is needed.
    Empty,
    /// `=` in an environment variable name: it ends the name.
    Equals,
    /// A Unix socket path longer than a socket address holds.
    TooLong { len: usize, max: usize },
}

impl OsText {
    /// The longest path a Unix-domain socket can bind, in bytes: `sun_path` holds it
    /// and its terminating NUL (108 bytes on Linux, 104 on the BSDs and macOS).
    pub const UNIX_PATH_MAX: usize = if cfg!(any(target_os = "linux", target_os = "android")) {
        107
    } else {
        103
    };

    /// A string given to the system as it is (a `setenv` value, a syslog ident, a
    /// passphrase): no NUL.
    pub fn check_text(text: &str) -> Result<(), OsText> {
        if text.contains('\0') {
            return Err(OsText::Nul);
        }
        Ok(())
    }

    /// A file or directory path, or a user or group name: not empty, no NUL.
    pub fn check_name(text: &str) -> Result<(), OsText> {
        if text.is_empty() {
            return Err(OsText::Empty);
        }
        OsText::check_text(text)
    }

    /// An environment variable name: not empty, no `=`, no NUL.
    pub fn check_env_name(text: &str) -> Result<(), OsText> {
        OsText::check_name(text)?;
        if text.contains('=') {
            return Err(OsText::Equals);
        }
        Ok(())
    }

    /// The path of a Unix socket: not empty, no NUL, at most
    /// [`OsText::UNIX_PATH_MAX`] bytes (a longer one cannot be bound).
    pub fn check_socket_path(text: &str) -> Result<(), OsText> {
        OsText::check_name(text)?;
        if text.len() > OsText::UNIX_PATH_MAX {
            return Err(OsText::TooLong {
                len: text.len(),
                max: OsText::UNIX_PATH_MAX,
            });
        }
        Ok(())
    }
}

impl fmt::Display for OsText {
    /// What is wrong, as the end of a sentence that starts with the field's name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OsText::Nul => f.write_str(
                "contains a NUL byte (\\0), which ends a string for the operating system",
            ),
            OsText::Empty => f.write_str("is empty"),
            OsText::Equals => f.write_str(
                "contains `=`, which ends an environment variable's name for the operating system",
            ),
            OsText::TooLong { len, max } => write!(
                f,
                "is {len} bytes long, more than the {max} a Unix socket path can have"
            ),
        }
    }
}

/// A string of a plan that reaches a system call: the field's name in messages, the
/// text, and the rule it must follow.
type OsString<'a> = (String, &'a str, fn(&str) -> Result<(), OsText>);

/// The names and values of `setenv` lines, in order.
fn setenv_strings(env: &[(String, String)]) -> Vec<OsString<'_>> {
    let mut out: Vec<OsString<'_>> = Vec::new();
    for (name, value) in env {
        // Escaped, so the message stays one printable line.
        let shown = name.escape_debug();
        out.push((
            format!("setenv name `{shown}`"),
            name,
            OsText::check_env_name,
        ));
        out.push((
            format!("the value of setenv `{shown}`"),
            value,
            OsText::check_text,
        ));
    }
    out
}

/// Every string of `plan` that reaches a system call, with the field's name and the
/// rule it must follow. The section ids, the source and a listener's `realm` never
/// reach one.
fn os_strings(plan: &Plan) -> Vec<OsString<'_>> {
    let s = &plan.spawnd;
    let mut out = setenv_strings(&plan.env);
    for (i, l) in s.listeners.iter().enumerate() {
        if let ListenAddress::Unix(path) = &l.address {
            out.push((
                format!("the path of listener #{}", i + 1),
                path,
                OsText::check_socket_path,
            ));
        }
        let fields = [("vrf", &l.vrf), ("userid", &l.owner), ("groupid", &l.group)];
        for (what, value) in fields {
            if let Some(value) = value {
                out.push((
                    format!("listener #{}'s {what}", i + 1),
                    value,
                    OsText::check_name,
                ));
            }
        }
    }
    let optional = [
        ("the pidfile path", &s.pidfile),
        ("the user name", &s.user),
        ("the group name", &s.group),
        ("the working directory", &s.working_directory),
        ("the proctitle", &s.proctitle),
    ];
    for (field, value) in optional {
        if let Some(value) = value {
            out.push((field.to_string(), value, OsText::check_name));
        }
    }
    for (i, remote) in plan.relay.remotes.iter().enumerate() {
        let Some(tls) = &remote.tls else { continue };
        let fields = [
            ("TLS server name", &tls.sni),
            ("CA file", &tls.ca_file),
            ("certificate file", &tls.cert_file),
            ("key file", &tls.key_file),
        ];
        for (what, value) in fields {
            if let Some(value) = value {
                out.push((
                    format!("remote #{}'s {what}", i + 1),
                    value,
                    OsText::check_name,
                ));
            }
        }
    }
    for (i, route) in plan.relay.routes.iter().enumerate() {
        let Some(tls) = &route.tls else { continue };
        for (what, value) in [
            ("certificate file", &tls.cert_file),
            ("key file", &tls.key_file),
        ] {
            out.push((
                format!("route {}'s {what}", i + 1),
                value,
                OsText::check_name,
            ));
        }
    }
    if let Some(control) = &s.control {
        if let Some(path) = &control.path {
            out.push((
                "the control socket path".to_string(),
                path,
                OsText::check_socket_path,
            ));
        }
        if let Some(group) = &control.group {
            out.push((
                "the control socket's group".to_string(),
                group,
                OsText::check_name,
            ));
        }
    }
    out.push((
        "the spawnd section's syslog ident".to_string(),
        &s.syslog.ident,
        OsText::check_text,
    ));
    out.push((
        "the tcprelay section's syslog ident".to_string(),
        &plan.relay.syslog.ident,
        OsText::check_text,
    ));
    if let Some(tls) = &plan.relay.tls {
        out.push((
            "the TLS certificate file".to_string(),
            &tls.cert_file,
            OsText::check_name,
        ));
        out.push((
            "the TLS key file".to_string(),
            &tls.key_file,
            OsText::check_name,
        ));
        if let Some(passphrase) = &tls.passphrase {
            // Only the field is named, never the value.
            out.push((
                "the TLS passphrase".to_string(),
                passphrase.expose(),
                OsText::check_text,
            ));
        }
    }
    out
}

/// The key two listeners collide on: a wildcard address covers every address of its
/// family, and on Linux `::` also covers IPv4 unless the socket is v6-only. The
/// runtime binds IPv6 wildcards v6-only, so only same-family overlaps collide.
/// The listeners seen so far, indexed so that the first earlier one a listener
/// overlaps (see [`overlaps`]) is found without a scan: a plan may have 100,000.
#[derive(Default)]
struct Overlaps<'a> {
    /// The first listener on each path.
    unix: HashMap<&'a str, usize>,
    /// The first listener on each (IPv4?, port, address).
    exact: HashMap<(bool, u16, IpAddr), usize>,
    /// The first wildcard listener on each (IPv4?, port).
    wildcard: HashMap<(bool, u16), usize>,
    /// The first listener of any address on each (IPv4?, port).
    any: HashMap<(bool, u16), usize>,
}

impl<'a> Overlaps<'a> {
    /// The first listener before listener `i` (at `address`) that overlaps it, then
    /// records this one.
    fn first_before(&mut self, address: &'a ListenAddress, i: usize) -> Option<usize> {
        match address {
            ListenAddress::Unix(path) => {
                let first = *self.unix.entry(path).or_insert(i);
                (first != i).then_some(first)
            }
            ListenAddress::Inet(sa) => {
                let family = (sa.is_ipv4(), sa.port());
                let found = if sa.ip().is_unspecified() {
                    self.any.get(&family).copied()
                } else {
                    let same = self.exact.get(&(family.0, family.1, sa.ip())).copied();
                    let wild = self.wildcard.get(&family).copied();
                    same.into_iter().chain(wild).min()
                };
                self.any.entry(family).or_insert(i);
                self.exact.entry((family.0, family.1, sa.ip())).or_insert(i);
                if sa.ip().is_unspecified() {
                    self.wildcard.entry(family).or_insert(i);
                }
                found
            }
        }
    }
}

#[cfg(test)]
fn overlaps(a: &ListenAddress, b: &ListenAddress) -> bool {
    match (a, b) {
        (ListenAddress::Unix(x), ListenAddress::Unix(y)) => x == y,
        (ListenAddress::Inet(x), ListenAddress::Inet(y)) => inet_overlaps(x, y),
        _ => false,
    }
}

fn inet_overlaps(x: &SocketAddr, y: &SocketAddr) -> bool {
    if x.port() != y.port() || x.is_ipv4() != y.is_ipv4() {
        return false;
    }
    let wild = |ip: IpAddr| ip.is_unspecified();
    x.ip() == y.ip() || wild(x.ip()) || wild(y.ip())
}

/// `Ok` when the environment can take every line of `env` (a plan's `setenv`), else
/// the first it cannot. [`Plan::validate`] checks this too; the runtime checks it
/// again right before it sets them, so that no plan, however it was made, can make
/// that fail half-way.
pub fn check_setenv(env: &[(String, String)]) -> Result<(), PlanError> {
    match broken(setenv_strings(env)).next() {
        None => Ok(()),
        Some(e) => Err(e),
    }
}

/// The strings of `strings` that break their rule.
fn broken(strings: Vec<OsString<'_>>) -> impl Iterator<Item = PlanError> + '_ {
    strings.into_iter().filter_map(|(field, text, rule)| {
        rule(text)
            .err()
            .map(|problem| PlanError::NotForTheOs { field, problem })
    })
}

impl Plan {
    /// Every broken invariant, in a stable order; empty when the plan is good.
    pub fn problems(&self) -> Vec<PlanError> {
        let mut errors = Vec::new();
        let s = &self.spawnd;
        let r = &self.relay;
        if s.listeners.is_empty() {
            errors.push(PlanError::NoListener);
        }
        if r.remotes.is_empty() && r.discovered.is_empty() {
            errors.push(PlanError::NoRemote);
        }
        discovery_problems(r, &mut errors);
        for (i, remote) in r.remotes.iter().enumerate() {
            if remote.weight == 0 {
                errors.push(PlanError::ZeroWeight { remote: i });
            }
            if remote.address.port() == 0 {
                errors.push(PlanError::ZeroPort {
                    what: format!("remote #{}", i + 1),
                });
            }
            if let Some(check) = &remote.check {
                for what in zero_check_settings(check) {
                    errors.push(PlanError::ZeroCheckSetting { remote: i, what });
                }
                if check.timeout_ms > check.interval_ms {
                    errors.push(PlanError::CheckTimeout { remote: i });
                }
                let expect = match &check.expect {
                    Some(crate::Expect::Bytes(bytes)) => bytes.len(),
                    Some(crate::Expect::Regex(regex)) => regex.len(),
                    None => 0,
                };
                let lengths = [
                    ("send", check.send.as_ref().map_or(0, Vec::len)),
                    ("expect", expect),
                ];
                for (what, len) in lengths {
                    if len > MAX_CHECK_BYTES {
                        errors.push(PlanError::CheckTooLong { remote: i, what });
                    }
                }
            }
        }
        // 0 is "chosen by the runtime" for a maximum or `servers min`.
        if s.users_max != 0 && s.users_min > s.users_max {
            errors.push(PlanError::UsersRange {
                min: s.users_min,
                max: s.users_max,
            });
        }
        if s.servers_max != 0 && s.servers_min > s.servers_max {
            errors.push(PlanError::ServersRange {
                min: s.servers_min,
                max: s.servers_max,
            });
        }
        if let Some(&count) = [s.servers_min, s.servers_max]
            .iter()
            .find(|&&n| n > crate::MAX_WORKERS)
        {
            errors.push(PlanError::TooManyWorkers { count });
        }
        let mut overlap = Overlaps::default();
        for (i, l) in s.listeners.iter().enumerate() {
            if let ListenAddress::Inet(sa) = &l.address {
                if sa.port() == 0 {
                    errors.push(PlanError::ZeroPort {
                        what: format!("listener #{}", i + 1),
                    });
                }
            }
            if let Some(first) = overlap.first_before(&l.address, i) {
                errors.push(PlanError::DuplicateListener {
                    first,
                    second: i,
                    address: l.address.to_string(),
                });
            }
            if l.tls && r.tls.is_none() && crate::sni::section_certificate_needed(r) {
                errors.push(PlanError::TlsWithoutCertificate { listener: i });
            }
            for what in listener_settings(l) {
                errors.push(PlanError::BadListenerSetting { listener: i, what });
            }
            if let Some(proxy) = &l.accept_proxy {
                if proxy.timeout_ms == 0 {
                    errors.push(PlanError::ZeroSetting {
                        what: "accept proxy timeout",
                    });
                }
                if proxy
                    .from
                    .iter()
                    .any(|n| n.prefix > if n.address.is_ipv4() { 32 } else { 128 })
                {
                    errors.push(PlanError::BadNetwork { listener: i });
                }
            }
        }
        if s.tcp_bufsize.is_some_and(|n| n == 0 || n > i32::MAX as u32) {
            errors.push(PlanError::BadSetting {
                what: "tcp bufsize must be from 1 to 2147483647 bytes",
            });
        }
        if s.sticky.is_some_and(|sticky| !sticky_fits(sticky)) {
            errors.push(PlanError::BadSetting {
                what:
                    "the sticky cache needs a period of at least 1 s and a size from 1 to 1048576",
            });
        }
        errors.extend(crate::sni::problems(r).into_iter().map(PlanError::BadRoute));
        if r.rebalance == Some(0) {
            errors.push(PlanError::RebalanceZero);
        }
        if r.retire == Some(0) {
            errors.push(PlanError::RetireZero);
        }
        let at_least_one = [
            ("connect timeout", r.connect_timeout),
            ("tls handshake timeout", r.tls_handshake_timeout),
            ("drain generations", r.drain_generations),
        ];
        for (what, value) in at_least_one {
            if value == 0 {
                errors.push(PlanError::ZeroSetting { what });
            }
        }
        if let Some(control) = &s.control {
            if control.mode > 0o777 {
                errors.push(PlanError::ControlMode { mode: control.mode });
            }
        }
        if let Some(metrics) = &s.metrics {
            let address = metrics.socket_addr();
            if address.port() == 0 {
                errors.push(PlanError::ZeroPort {
                    what: "the metrics endpoint".to_string(),
                });
            }
            if let Some(listener) = s.listeners.iter().position(|l| match &l.address {
                ListenAddress::Inet(sa) => inet_overlaps(sa, &address),
                ListenAddress::Unix(_) => false,
            }) {
                errors.push(PlanError::MetricsOnListener { listener, address });
            }
        }
        errors.extend(broken(os_strings(self)));
        for (i, rule) in s.acl.iter().enumerate() {
            let max = if rule.network.is_ipv4() { 32 } else { 128 };
            if rule.prefix > max {
                errors.push(PlanError::BadAcl { rule: i });
            }
        }
        errors
    }

    /// `Ok` when the plan holds every invariant, else the first broken one.
    pub fn validate(&self) -> Result<(), PlanError> {
        match self.problems().into_iter().next() {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }
}

/// The settings of `check` that must be at least 1 and are 0, by name.
fn zero_check_settings(check: &Check) -> impl Iterator<Item = &'static str> {
    [
        ("interval", check.interval_ms),
        ("timeout", check.timeout_ms),
        ("rise", check.rise),
        ("fall", check.fall),
    ]
    .into_iter()
    .filter(|&(_, value)| value == 0)
    .map(|(what, _)| what)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first earlier listener each one overlaps, by comparing every pair.
    fn pairwise(addresses: &[ListenAddress]) -> Vec<Option<usize>> {
        (0..addresses.len())
            .map(|i| {
                addresses[..i]
                    .iter()
                    .position(|earlier| overlaps(earlier, &addresses[i]))
            })
            .collect()
    }

    #[test]
    fn the_overlap_index_finds_what_comparing_every_pair_finds() {
        let inet = |s: &str| ListenAddress::Inet(s.parse().unwrap());
        let unix = |s: &str| ListenAddress::Unix(s.to_string());
        let addresses = vec![
            inet("127.0.0.1:80"),
            inet("127.0.0.2:80"),
            inet("[::1]:80"),
            inet("0.0.0.0:80"),
            inet("127.0.0.2:80"),
            inet("[::]:80"),
            inet("[::1]:80"),
            inet("0.0.0.0:81"),
            inet("127.0.0.9:81"),
            inet("0.0.0.0:81"),
            unix("/run/a"),
            unix("/run/b"),
            unix("/run/a"),
            inet("10.0.0.1:82"),
            inet("10.0.0.2:82"),
        ];
        let mut index = Overlaps::default();
        let found: Vec<Option<usize>> = addresses
            .iter()
            .enumerate()
            .map(|(i, a)| index.first_before(a, i))
            .collect();
        assert_eq!(found, pairwise(&addresses));
        // Not trivially empty: the list holds every kind of overlap.
        assert_eq!(
            found,
            vec![
                None,
                None,
                None,
                Some(0),
                Some(1),
                Some(2),
                Some(2),
                None,
                Some(7),
                Some(7),
                None,
                None,
                Some(10),
                None,
                None
            ]
        );
    }

    #[test]
    fn a_plan_with_many_listeners_names_each_duplicate_once() {
        let mut plan = crate::Plan::new(
            "test",
            crate::Spawnd::new(vec![]),
            crate::Relay::new(vec![crate::Remote::new("127.0.0.1:1".parse().unwrap())]),
        );
        for i in 0..20_000u32 {
            let address = format!("127.0.{}.{}:{}", i / 250, i % 250 + 1, 10_000 + i % 7);
            plan.spawnd
                .listeners
                .push(crate::Listener::new(ListenAddress::Inet(
                    address.parse().unwrap(),
                )));
        }
        let wildcard = ListenAddress::Inet("0.0.0.0:10003".parse().unwrap());
        plan.spawnd.listeners.push(crate::Listener::new(wildcard));
        let duplicates: Vec<(usize, usize)> = plan
            .problems()
            .into_iter()
            .filter_map(|e| match e {
                PlanError::DuplicateListener { first, second, .. } => Some((first, second)),
                _ => None,
            })
            .collect();
        // 127.0.0.4:10003 is the first listener on port 10003.
        assert_eq!(duplicates, vec![(3, 20_000)]);
    }
}
