//! Value parsing: the one place where the text of a value gets its type.
//!
//! Every parser takes the value as written, with its span, and returns either the
//! typed value or the diagnostic to report at exactly that span. The callers decide
//! what to do with the diagnostic (push it and go on), so that one bad value never
//! hides the next one.

use super::services;
use crate::ast::{Sp, Span, Value};
use crate::diag::{Code, Diagnostic};
use crate::suggest;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use tcprelay_plan::{
    Facility, LogFormat, OsText, Overload, Protocol, ProxyAccept, ProxyVersion, Severity,
};

/// A value that was parsed, or the diagnostic that says why it was not.
pub type Parsed<T> = Result<T, Box<Diagnostic>>;

/// A failed parse with diagnostic `d`.
pub fn fail<T>(d: Diagnostic) -> Parsed<T> {
    Err(Box::new(d))
}

/// `yes`/`no`, `true`/`false`, `on`/`off`, and the family's `permit`/`deny`, in
/// any case.
pub fn boolean(v: &Sp<Value>) -> Parsed<bool> {
    match v.node.text.to_ascii_lowercase().as_str() {
        "yes" | "true" | "on" | "permit" => Ok(true),
        "no" | "false" | "off" | "deny" => Ok(false),
        _ => fail(
            Diagnostic::error(
                Code::InvalidBool,
                v.span,
                format!("expected `yes` or `no`, found `{}`", v.node.text),
            )
            .with_label("expected `yes` or `no`")
            .with_note("`true`/`false`, `on`/`off` and `permit`/`deny` are accepted too"),
        ),
    }
}

/// How the family writes an integer: decimal or `0x` hexadecimal, then at most one
/// `k`, `m` or `g` (either case) multiplying by 1024, 1024² or 1024³.
#[derive(Debug, PartialEq, Eq)]
enum Int {
    /// The value, and whether it had a suffix.
    Value(u64, bool),
    /// Characters after the suffix (`10kb`), which the original ignored: the value
    /// without them.
    AfterSuffix(u64),
    Bad,
}

fn int(text: &str) -> Int {
    let (digits, radix) = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => (hex, 16),
        None => (text, 10),
    };
    let end = digits
        .find(|c: char| !c.is_digit(radix))
        .unwrap_or(digits.len());
    let Ok(n) = u64::from_str_radix(&digits[..end], radix) else {
        return Int::Bad;
    };
    let rest = &digits[end..];
    let Some(suffix) = rest.chars().next() else {
        return Int::Value(n, false);
    };
    let shift = match suffix.to_ascii_lowercase() {
        'k' => 10,
        'm' => 20,
        'g' => 30,
        _ => return Int::Bad,
    };
    let Some(n) = n.checked_mul(1 << shift) else {
        return Int::Bad;
    };
    if rest.len() > 1 {
        Int::AfterSuffix(n)
    } else {
        Int::Value(n, true)
    }
}

/// A number from `min` to `max`: decimal or `0x` hexadecimal, with at most one
/// `k`, `m` or `g` suffix (×1024, ×1024², ×1024³), as the family's INT values.
pub fn number(v: &Sp<Value>, min: u64, max: u64) -> Parsed<u64> {
    let text = &v.node.text;
    let bad = || {
        Diagnostic::error(
            Code::InvalidNumber,
            v.span,
            format!("`{text}` is not a number from {min} to {max}"),
        )
        .with_label("expected a number")
    };
    match int(text) {
        Int::Value(n, _) if (min..=max).contains(&n) => Ok(n),
        Int::AfterSuffix(n) => {
            let end = text.len() - text.chars().rev().take_while(|c| c.is_ascii_alphabetic()).count() + 1;
            fail(
                bad()
                    .with_help(format!("write `{}` ({n})", &text[..end.min(text.len())]))
                    .with_note("a suffix is one letter: the original ignored what followed it"),
            )
        }
        _ => fail(bad().with_note(
            "a number is decimal or `0x` hexadecimal, with at most one `k`, `m` or `g` suffix (x1024, x1024^2, x1024^3)",
        )),
    }
}

/// A number of seconds, parsed by `parse` after refusing a `k`, `m` or `g` suffix:
/// the original read `5m` as 5 × 1024 seconds, which nobody means.
pub fn seconds<T>(v: &Sp<Value>, parse: impl FnOnce(&Sp<Value>) -> Parsed<T>) -> Parsed<T> {
    let text = &v.node.text;
    if let Int::Value(n, true) | Int::AfterSuffix(n) = int(text) {
        let digits: String = text
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        let unit = digits.chars().last().unwrap_or('s').to_ascii_lowercase();
        let count = n
            >> match unit {
                'k' => 10,
                'm' => 20,
                _ => 30,
            };
        let meant = match unit {
            'm' => format!("; for {count} minutes write `{}`", count * 60),
            _ => String::new(),
        };
        return fail(
            Diagnostic::error(
                Code::InvalidNumber,
                v.span,
                format!("`{text}` is not a number of seconds"),
            )
            .with_label("expected a number of seconds, without a unit")
            .with_note(format!(
                "the original read `k`, `m` and `g` as x1024, x1024^2, x1024^3 here, so `{text}` meant {n} seconds"
            ))
            .with_help(format!("write the number of seconds{meant}")),
        );
    }
    parse(v)
}

/// A number of seconds that fits a `u32`.
pub fn seconds_u32(v: &Sp<Value>) -> Parsed<u32> {
    seconds(v, u32_value)
}

/// A decimal `u32`.
pub fn u32_value(v: &Sp<Value>) -> Parsed<u32> {
    number(v, 0, u64::from(u32::MAX)).map(|n| n as u32)
}

/// An IP address, IPv6 optionally in brackets (`[::1]`). Host names are not resolved
/// here (only a listener's and a remote's `address` resolve them).
pub fn ip(v: &Sp<Value>) -> Parsed<IpAddr> {
    parse_ip(&v.node.text).map_or_else(
        || {
            fail({
                let d = Diagnostic::error(
                    Code::InvalidAddress,
                    v.span,
                    format!("`{}` is not an IP address", v.node.text),
                )
                .with_label("expected an IPv4 or IPv6 address");
                match SocketAddr::from_str(&v.node.text) {
                    Ok(sa) => d.with_help(format!(
                        "write the address and the port apart: `address = {}` and `port = {}`",
                        sa.ip(),
                        sa.port()
                    )),
                    Err(_) => d.with_help(ip_help(&v.node.text)),
                }
            })
        },
        Ok,
    )
}

/// The help for text that is not an IP address: what was probably meant.
fn ip_help(text: &str) -> &'static str {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        "an IPv4 address is four numbers from 0 to 255, such as `192.0.2.1`"
    } else if text.contains(':')
        && text
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b":.[]".contains(&b))
    {
        "an IPv6 address is up to eight groups of hex digits, such as `2001:db8::1` or `::`"
    } else {
        "write an IP address"
    }
}

/// What a listener's `address` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// An IP address, or every address of a host name, without repeats.
    Ips(Vec<IpAddr>),
    /// `unix:PATH` or `/PATH`: a Unix socket.
    Unix(String),
}

/// Which families an `inet:`/`inet6:` prefix allows.
#[derive(Clone, Copy)]
enum Family {
    Any,
    V4,
    V6,
}

/// Strips the family's address prefixes (`unix:`, `inet:`, `inet6:`, any case).
fn prefix(text: &str) -> (Option<&str>, &str) {
    for p in ["unix:", "inet6:", "inet:"] {
        if text.len() >= p.len()
            && text.is_char_boundary(p.len())
            && text[..p.len()].eq_ignore_ascii_case(p)
        {
            return (Some(&p[..p.len() - 1]), &text[p.len()..]);
        }
    }
    (None, text)
}

/// A listener's `address`: an IP address (`inet:`/`inet6:` prefixes allowed), a host
/// name resolved now with every address it has, or a Unix socket (`unix:PATH`,
/// `/PATH`), as the family's `su_pton`.
pub fn listen_address(v: &Sp<Value>) -> Parsed<Address> {
    let (kind, rest) = prefix(&v.node.text);
    let family = match kind {
        Some("unix") => return Ok(Address::Unix(rest.to_string())),
        Some("inet") => Family::V4,
        Some("inet6") => Family::V6,
        _ if rest.starts_with('/') => return Ok(Address::Unix(rest.to_string())),
        _ => Family::Any,
    };
    host(v, rest, family).map(Address::Ips)
}

/// The host name a listener's `address` names (its `inet:`/`inet6:` prefix removed),
/// or `None` when it is an IP address or a Unix socket.
pub fn host_name(text: &str) -> Option<&str> {
    let (kind, rest) = prefix(text);
    (kind != Some("unix") && parse_ip(rest).is_none() && is_host_name(rest)).then_some(rest)
}

/// An address, IP or host name (resolved), of `family`.
fn host(v: &Sp<Value>, text: &str, family: Family) -> Parsed<Vec<IpAddr>> {
    let fits = |ip: &IpAddr| match family {
        Family::Any => true,
        Family::V4 => ip.is_ipv4(),
        Family::V6 => ip.is_ipv6(),
    };
    if let Some(ip) = parse_ip(text) {
        if fits(&ip) {
            return Ok(vec![ip]);
        }
        return fail(
            Diagnostic::error(
                Code::InvalidAddress,
                v.span,
                format!("`{ip}` is not an address of the family its prefix names"),
            )
            .with_label("`inet:` takes IPv4 addresses, `inet6:` IPv6 ones"),
        );
    }
    if !is_host_name(text) {
        return ip(&Sp::new(Value::word(text), v.span)).map(|ip| vec![ip]);
    }
    let resolved = resolve(text);
    let ips: Vec<IpAddr> = resolved.iter().copied().filter(fits).collect();
    if ips.is_empty() {
        let d = Diagnostic::error(
            Code::UnresolvedHost,
            v.span,
            format!("the host name `{text}` does not resolve"),
        )
        .with_label(if resolved.is_empty() {
            "no address for this name"
        } else {
            "no address of the family its prefix names"
        })
        .with_note(
            "host names are resolved when the configuration is compiled, on the compiling machine",
        )
        .with_help("write an IP address, or check the name and the resolver");
        return fail(d);
    }
    Ok(ips)
}

/// Whether `text` may be a DNS host name (letters, digits, `-` and `.`, not all
/// digits and dots): only those are given to the resolver.
fn is_host_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 253
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && text.bytes().any(|b| b.is_ascii_alphabetic())
        && !text.starts_with(['-', '.'])
}

/// Every address of a host name, in the resolver's order, without repeats; empty
/// when it does not resolve. `localhost` (and names under `.localhost`) are the
/// loopback addresses, 127.0.0.1 and ::1, on every machine, without asking the
/// resolver (RFC 6761), so that a plan using them means the same everywhere.
fn resolve(name: &str) -> Vec<IpAddr> {
    use std::net::{Ipv4Addr, ToSocketAddrs};
    let lower = name.trim_end_matches('.').to_ascii_lowercase();
    if lower == "localhost" || lower.ends_with(".localhost") {
        return vec![
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ];
    }
    let mut out: Vec<IpAddr> = Vec::new();
    if let Ok(addrs) = (name, 0u16).to_socket_addrs() {
        for a in addrs {
            if !out.contains(&a.ip()) {
                out.push(a.ip());
            }
        }
    }
    out
}

/// A remote's `address`: an IP address, `IP:PORT`, `[IPv6]:PORT` (the port then
/// given with it), or a host name resolved now with every address it has.
pub fn remote_address(v: &Sp<Value>) -> Parsed<(Vec<IpAddr>, Option<u16>)> {
    let text = v.node.text.as_str();
    if let Ok(sa) = SocketAddr::from_str(text) {
        if sa.port() == 0 {
            return fail(
                Diagnostic::error(Code::InvalidPort, v.span, "port `0` is out of range")
                    .with_label("expected a port from 1 to 65535"),
            );
        }
        return Ok((vec![sa.ip()], Some(sa.port())));
    }
    let (kind, rest) = prefix(text);
    if kind == Some("unix") || rest.starts_with('/') {
        return fail(
            Diagnostic::error(
                Code::InvalidAddress,
                v.span,
                format!("`{text}` is a Unix socket"),
            )
            .with_label("expected an IP address or a host name")
            .with_note(
                "tcprelay relays to TCP and SCTP remotes; Unix-socket remotes are not supported",
            ),
        );
    }
    let family = match kind {
        Some("inet") => Family::V4,
        Some("inet6") => Family::V6,
        _ => Family::Any,
    };
    host(v, rest, family).map(|ips| (ips, None))
}

pub(super) fn parse_ip(text: &str) -> Option<IpAddr> {
    if let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        return Ipv6Addr::from_str(inner).ok().map(IpAddr::V6);
    }
    IpAddr::from_str(text).ok()
}

/// A port: a decimal number from 1 to 65535, or a TCP service name from
/// `/etc/services` of the compiling machine.
pub fn port(v: &Sp<Value>) -> Parsed<u16> {
    let text = &v.node.text;
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return match text.parse::<u32>() {
            Ok(n @ 1..=65535) => Ok(n as u16),
            _ => fail(
                Diagnostic::error(
                    Code::InvalidPort,
                    v.span,
                    format!("port `{text}` is out of range"),
                )
                .with_label("expected a port from 1 to 65535"),
            ),
        };
    }
    services::lookup(text).map_or_else(
        || {
            fail({
                Diagnostic::error(
                    Code::InvalidPort,
                    v.span,
                    format!("unknown service name `{text}`"),
                )
                .with_label("not a port number or a known service")
                .with_note(format!(
                    "service names are looked up in {} of the compiling machine",
                    services::PATH
                ))
                .with_help("write the port number")
            })
        },
        Ok,
    )
}

/// One of a closed list of names, case-insensitively.
fn choice<T: Copy>(v: &Sp<Value>, what: &str, choices: &[(T, &'static str)]) -> Parsed<T> {
    let text = &v.node.text;
    if let Some((t, _)) = choices.iter().find(|(_, n)| n.eq_ignore_ascii_case(text)) {
        return Ok(*t);
    }
    fail(bad_choice(v, what, choices.iter().map(|(_, n)| *n)))
}

/// The diagnostic for a value that is none of `names`, with a did-you-mean.
fn bad_choice<'a>(
    v: &Sp<Value>,
    what: &str,
    names: impl Iterator<Item = &'a str> + Clone,
) -> Diagnostic {
    let text = &v.node.text;
    // Compare in the case the names are written in.
    let lowercase = names
        .clone()
        .any(|n| n.bytes().any(|b| b.is_ascii_lowercase()));
    let word = if lowercase {
        text.to_ascii_lowercase()
    } else {
        text.to_ascii_uppercase()
    };
    let list = names
        .clone()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let d = Diagnostic::error(
        Code::InvalidChoice,
        v.span,
        format!("`{text}` is not a valid {what}"),
    )
    .with_label(format!("expected a {what}"));
    match suggest::closest(&word, names) {
        Some(best) => d
            .with_help(format!("did you mean `{best}`?"))
            .with_note(format!("valid choices: {list}")),
        None => d.with_help(format!("expected one of {list}")),
    }
}

/// `resolve start = fail|wait`: whether a name that has not resolved lets the relay
/// start (`wait`, true).
pub fn resolve_start(v: &Sp<Value>) -> Parsed<bool> {
    choice(v, "resolve start", &[(false, "fail"), (true, "wait")])
}

/// The text of an address after its `inet:`, `inet6:` or `unix:` prefix, and the
/// prefix's name.
pub fn split_prefix(text: &str) -> (Option<&str>, &str) {
    prefix(text)
}

/// `TCP` or `SCTP`; `UDP` is E0063, as tcprelay relays streams.
pub fn protocol(v: &Sp<Value>) -> Parsed<Protocol> {
    if v.node.text.eq_ignore_ascii_case("udp") {
        return fail(not_a_stream(v, "UDP"));
    }
    choice(
        v,
        "protocol",
        &[(Protocol::Tcp, "TCP"), (Protocol::Sctp, "SCTP")],
    )
}

/// E0063: a datagram or packet protocol where tcprelay relays byte streams.
fn not_a_stream(v: &Sp<Value>, what: &str) -> Diagnostic {
    Diagnostic::error(
        Code::NotAStream,
        v.span,
        format!("tcprelay relays byte streams, not {what}"),
    )
    .with_label(format!("{what} cannot be relayed"))
    .with_note("the family reads this for tac_plus-ng and radius servers, which take datagrams")
    .with_help("relay TCP (or SCTP) only: remove this line for the default")
}

/// A listener's socket `type`: `STREAM` (the default); `DGRAM` and `SEQPACKET` are
/// E0063.
pub fn socket_type(v: &Sp<Value>) -> Parsed<()> {
    let text = &v.node.text;
    if text.eq_ignore_ascii_case("dgram") || text.eq_ignore_ascii_case("seqpacket") {
        return fail(not_a_stream(
            v,
            &format!("{} sockets", text.to_ascii_uppercase()),
        ));
    }
    choice(v, "socket type", &[((), "STREAM")])
}

/// What `tls = ...` says of a listener: on or off, `auto`, and the TLS versions
/// (`TLSv1.2,TLSv1.3`); DTLS versions are listed apart, for a warning.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSetting {
    pub on: bool,
    pub auto: bool,
    /// In order, without repeats; empty: both.
    pub versions: Vec<tcprelay_plan::TlsVersion>,
    pub dtls: Vec<String>,
}

/// `yes|no|auto`, a boolean, or a comma-separated list of `TLSv1.2`, `TLSv1.3`,
/// `auto` and DTLS versions (which have no effect here): E0064 for anything else.
pub fn tls_setting(v: &Sp<Value>) -> Parsed<TlsSetting> {
    let versions_meant = v.node.text.split(',').any(|part| {
        let part = part.trim().to_ascii_lowercase();
        part == "auto"
            || part.starts_with("tls")
            || part.starts_with("dtls")
            || part.starts_with("ssl")
    });
    if !versions_meant {
        return boolean(v)
            .map(|on| TlsSetting {
                on,
                ..TlsSetting::default()
            })
            .map_err(|d| {
                Box::new((*d).with_help(
                    "`tls` also takes `auto` (TLS or plain, as each client starts) and versions such as `TLSv1.2,TLSv1.3`",
                ))
            });
    }
    let mut t = TlsSetting {
        on: true,
        ..TlsSetting::default()
    };
    for part in v.node.text.split(',').map(str::trim) {
        if part.eq_ignore_ascii_case("auto") {
            t.auto = true;
        } else if let Some((version, _)) = tcprelay_plan::TlsVersion::ALL
            .iter()
            .find(|(_, name)| name.eq_ignore_ascii_case(part))
        {
            t.versions.push(*version);
        } else if ["DTLSv1.0", "DTLSv1.2", "DTLSv1.3"]
            .iter()
            .any(|d| d.eq_ignore_ascii_case(part))
        {
            t.dtls.push(part.to_string());
        } else {
            let d = Diagnostic::error(
                Code::InvalidTlsVersions,
                v.span,
                format!("`{part}` is not a TLS version tcprelay accepts"),
            )
            .with_label("expected `yes`, `no`, `auto` or TLS versions")
            .with_note("tcprelay accepts `TLSv1.2` and `TLSv1.3`, alone or as `TLSv1.2,TLSv1.3`");
            return fail(match part {
                "TLSv1.0" | "TLSv1.1" | "TLSv1" | "SSLv3" => d.with_help(
                    "versions before TLS 1.2 are not offered (Mozilla's intermediate profile): write `TLSv1.2`",
                ),
                _ => match suggest::closest(part, ["TLSv1.2", "TLSv1.3", "auto"]) {
                    Some(best) => d.with_help(format!("did you mean `{best}`?")),
                    None => d.with_help("write `tls = yes` for TLS 1.2 and 1.3"),
                },
            });
        }
    }
    t.versions.sort_unstable();
    t.versions.dedup();
    Ok(t)
}

/// The debug flags of the family, in the order of their bits here (`1 << 1` for
/// `PARSE`, ...): any of them turns on debug-level logging.
pub const DEBUG_FLAGS: &[&str] = &[
    "PARSE",
    "AUTHOR",
    "AUTHEN",
    "ACCT",
    "CONFIG",
    "PACKET",
    "HEX",
    "LOCK",
    "REGEX",
    "ACL",
    "CMD",
    "NET",
    "PATH",
    "CONTROL",
    "INDEX",
    "AV",
    "MAVIS",
    "BUFFER",
    "PROC",
    "DNS",
    "LWRES",
    "USERINPUT",
];

/// What one `debug = ...` sets and clears in the debug mask.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DebugMask {
    pub set: u32,
    pub clear: u32,
}

impl DebugMask {
    /// `mask` with this applied.
    pub fn apply(self, mask: u32) -> u32 {
        (mask & !self.clear) | self.set
    }

    /// `later` applied after `self`.
    pub fn then(self, later: DebugMask) -> DebugMask {
        DebugMask {
            set: (self.set & !later.clear) | later.set,
            clear: (self.clear & !later.set) | later.clear,
        }
    }
}

/// The values of `debug = ...`: numbers (a mask, hex and suffixes as any INT), flag
/// names, `+NAME` (set), `-NAME` (clear), `ALL` and `NONE`; E0067 for an unknown
/// name.
pub fn debug_mask(values: &[Sp<Value>]) -> Parsed<DebugMask> {
    let all: u32 = DEBUG_FLAGS
        .iter()
        .enumerate()
        .fold(0, |m, (i, _)| m | 1 << (i + 1));
    let mut mask = DebugMask::default();
    for v in values {
        let text = v.node.text.as_str();
        let (sign, name) = match text.strip_prefix('+') {
            Some(rest) => ('+', rest),
            None => match text.strip_prefix('-') {
                Some(rest) => ('-', rest),
                None => (' ', text),
            },
        };
        let bits = if let Int::Value(n, _) = int(name) {
            match u32::try_from(n) {
                Ok(n) => n,
                Err(_) => return number(v, 0, u64::from(u32::MAX)).map(|_| mask),
            }
        } else if name == "ALL" {
            all
        } else if name == "NONE" {
            mask = mask.then(DebugMask {
                set: 0,
                clear: u32::MAX,
            });
            continue;
        } else if let Some(i) = DEBUG_FLAGS.iter().position(|f| *f == name) {
            1 << (i + 1)
        } else {
            let d = Diagnostic::error(
                Code::InvalidDebugFlag,
                v.span,
                format!("`{text}` is not a debug flag"),
            )
            .with_label("expected a number or a flag name");
            let upper = name.to_ascii_uppercase();
            let names = DEBUG_FLAGS.iter().copied().chain(["ALL", "NONE"]);
            return fail(match suggest::closest(&upper, names) {
                Some(best) if best != name => d.with_help(format!("did you mean `{best}`?")),
                _ => d.with_note(format!(
                    "the flags are {}, `ALL` and `NONE`, each also as `+NAME` or `-NAME`",
                    DEBUG_FLAGS
                        .iter()
                        .map(|f| format!("`{f}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            });
        };
        let step = if sign == '-' {
            DebugMask {
                set: 0,
                clear: bits,
            }
        } else {
            DebugMask {
                set: bits,
                clear: 0,
            }
        };
        mask = mask.then(step);
    }
    Ok(mask)
}

/// `v1`, `v2`, `any` or `no`: the PROXY protocol versions a listener accepts.
pub fn proxy_accept(v: &Sp<Value>) -> Parsed<Option<ProxyAccept>> {
    choice(
        v,
        "PROXY protocol version",
        &[
            (Some(ProxyAccept::V1), "v1"),
            (Some(ProxyAccept::V2), "v2"),
            (Some(ProxyAccept::Any), "any"),
            (None, "no"),
        ],
    )
}

/// `v1`, `v2` or `no`: the PROXY protocol version sent to a remote.
pub fn proxy_version(v: &Sp<Value>) -> Parsed<Option<ProxyVersion>> {
    choice(
        v,
        "PROXY protocol version",
        &[
            (Some(ProxyVersion::V1), "v1"),
            (Some(ProxyVersion::V2), "v2"),
            (None, "no"),
        ],
    )
}

/// `queue`, `close` or `reset`.
pub fn overload(v: &Sp<Value>) -> Parsed<Overload> {
    choice(
        v,
        "overload action",
        &[
            (Overload::Queue, "queue"),
            (Overload::Close, "close"),
            (Overload::Reset, "reset"),
        ],
    )
}

/// `text`, `logfmt` or `json`.
pub fn log_format(v: &Sp<Value>) -> Parsed<LogFormat> {
    choice(v, "log format", &LogFormat::ALL)
}

/// A syslog facility (`UUCP`, `LOCAL0`, ...).
pub fn facility(v: &Sp<Value>) -> Parsed<Facility> {
    Facility::from_name(&v.node.text).map_or_else(
        || {
            fail(bad_choice(
                v,
                "syslog facility",
                Facility::ALL.iter().map(|(_, n)| *n),
            ))
        },
        Ok,
    )
}

/// A syslog severity (`INFO`, `ERR`, ...).
pub fn severity(v: &Sp<Value>) -> Parsed<Severity> {
    Severity::from_name(&v.node.text).map_or_else(
        || {
            fail(bad_choice(
                v,
                "syslog severity",
                Severity::ALL.iter().map(|(_, n)| *n),
            ))
        },
        Ok,
    )
}

/// A file mode in octal, such as `0660`, at most `07777`.
pub fn mode(v: &Sp<Value>) -> Parsed<u32> {
    let text = &v.node.text;
    let parsed = if !text.is_empty() && text.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        u32::from_str_radix(text, 8).ok().filter(|m| *m <= 0o7777)
    } else {
        None
    };
    parsed.map_or_else(
        || {
            fail({
                Diagnostic::error(
                    Code::InvalidNumber,
                    v.span,
                    format!("`{text}` is not an octal file mode from 0000 to 07777"),
                )
                .with_label("expected an octal mode such as `0660`")
            })
        },
        Ok,
    )
}

/// The mode of a socket the relay makes for its operators, in octal such as
/// `0660`: only permission bits, at most `0777` (no set-id or sticky bit).
pub fn permission_mode(v: &Sp<Value>) -> Parsed<u32> {
    let text = &v.node.text;
    let parsed = if !text.is_empty() && text.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        u32::from_str_radix(text, 8).ok().filter(|m| *m <= 0o777)
    } else {
        None
    };
    parsed.map_or_else(
        || {
            let d = Diagnostic::error(
                Code::InvalidNumber,
                v.span,
                format!("`{text}` is not an octal permission mode from 000 to 0777"),
            )
            .with_label("expected an octal mode such as `0660`");
            fail(
                if text.bytes().all(|b| b.is_ascii_digit()) && !text.is_empty() {
                    d.with_note("the digits are octal: owner, group, others, each 0 to 7")
                } else {
                    d
                },
            )
        },
        Ok,
    )
}

/// An acl network: `ADDR` or `ADDR/PREFIX`, the prefix at most 32 (IPv4) or 128
/// (IPv6); a bare address is a host (a full-length prefix).
pub fn network(v: &Sp<Value>) -> Parsed<(IpAddr, u8)> {
    let text = &v.node.text;
    let bad = |why: String| {
        Diagnostic::error(
            Code::InvalidAcl,
            v.span,
            format!("`{text}` is not a network: {why}"),
        )
        .with_label("expected `ADDRESS` or `ADDRESS/PREFIX`")
    };
    let (addr, prefix) = match text.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (text.as_str(), None),
    };
    let Some(ip) = parse_ip(addr) else {
        return fail(
            bad(format!("`{addr}` is not an IP address"))
                .with_help("hostnames are not resolved; write an IP address"),
        );
    };
    let max: u8 = if ip.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => max,
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            match p.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => return fail(bad(format!("the prefix `{p}` is longer than {max} bits"))),
            }
        }
        Some(p) => return fail(bad(format!("the prefix `{p}` is not a number"))),
    };
    if let IpAddr::V6(v6) = ip {
        if let (Some(v4), true) = (v6.to_ipv4_mapped(), prefix < 96) {
            // The clients of such a network are IPv6 addresses beyond the mapped
            // ones: never what `::ffff:a.b.c.d/N` was written for.
            let help = if prefix <= 32 {
                format!(
                    "for the IPv4 network write `{v4}/{prefix}` (or `::ffff:{v4}/{}`)",
                    u32::from(prefix) + 96
                )
            } else {
                format!("for an IPv4 network write `{v4}/N`, or a prefix from 96 to 128 after `::ffff:{v4}`")
            };
            return fail(
                bad(format!(
                    "an IPv4-mapped address takes a prefix from 96 to 128 bits (the 96 of the mapping and the IPv4 prefix), not {prefix}"
                ))
                .with_help(help),
            );
        }
    }
    Ok((ip, prefix))
}

/// A string the operating system is given as `what` (e.g. "the pidfile path"),
/// under `rule`, one of [`OsText`]'s checks: E0046 at the value when the system
/// cannot take it.
pub fn os_string(
    v: &Sp<Value>,
    what: &str,
    rule: fn(&str) -> Result<(), OsText>,
) -> Parsed<String> {
    match rule(&v.node.text) {
        Ok(()) => Ok(v.node.text.clone()),
        Err(problem) => fail(not_for_the_os(v.span, Some(&v.node.text), what, problem)),
    }
}

/// E0046: the value of `what` at `span` is a string the operating system cannot
/// take. `shown` is the value, when it may be quoted (never a passphrase).
pub fn not_for_the_os(span: Span, shown: Option<&str>, what: &str, problem: OsText) -> Diagnostic {
    match problem {
        OsText::Nul => {
            let d = Diagnostic::error(
                Code::NotForTheOs,
                span,
                format!("{what} contains a NUL byte"),
            )
            .with_label("the operating system cannot take a NUL byte")
            .with_help("a NUL byte (\\0) ends a string for the operating system; remove it");
            // Most editors do not show the byte; say where it is.
            match shown.and_then(|text| text.split_once('\0')) {
                Some(("", _)) => d.with_note("it is the first character of the value"),
                Some((before, _)) => d.with_note(format!(
                    "it follows `{}` in the value",
                    before.escape_debug()
                )),
                None => d,
            }
        }
        OsText::Empty => Diagnostic::error(Code::NotForTheOs, span, format!("{what} is empty"))
            .with_label("the operating system cannot take an empty one")
            .with_help("write one, or remove the directive"),
        OsText::Equals => {
            Diagnostic::error(Code::NotForTheOs, span, format!("{what} contains `=`"))
                .with_label("`=` ends an environment variable's name")
                .with_help("remove the `=`")
        }
        OsText::TooLong { len, max } => Diagnostic::error(
            Code::NotForTheOs,
            span,
            format!("{what} is {len} bytes long"),
        )
        .with_label(format!("a Unix socket path can have at most {max} bytes"))
        .with_help("choose a shorter path (a socket address holds the path in a fixed-size field)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ast::Span;

    fn v(text: &str) -> Sp<Value> {
        Sp::new(Value::word(text), Span::new(3, 3 + text.len()))
    }

    /// The code of the error, which must be at the value's span.
    fn code<T: std::fmt::Debug>(r: Parsed<T>) -> Code {
        let d = r.expect_err("expected an error");
        assert_eq!(d.span.start, 3);
        d.code
    }

    #[test]
    fn booleans() {
        for (t, b) in [
            ("yes", true),
            ("No", false),
            ("TRUE", true),
            ("off", false),
            ("permit", true),
            ("deny", false),
        ] {
            assert_eq!(boolean(&v(t)).unwrap(), b);
        }
        assert_eq!(code(boolean(&v("maybe"))), Code::InvalidBool);
    }

    #[test]
    fn numbers_are_decimal_or_hex_with_a_binary_suffix_and_in_range() {
        assert_eq!(u32_value(&v("4294967295")).unwrap(), u32::MAX);
        assert_eq!(code(u32_value(&v("4294967296"))), Code::InvalidNumber);
        assert_eq!(u32_value(&v("0x10")).unwrap(), 16);
        assert_eq!(u32_value(&v("0X1f")).unwrap(), 31);
        assert_eq!(u32_value(&v("2k")).unwrap(), 2048);
        assert_eq!(u32_value(&v("3M")).unwrap(), 3 << 20);
        assert_eq!(u32_value(&v("1g")).unwrap(), 1 << 30);
        assert_eq!(u32_value(&v("0x2k")).unwrap(), 2048);
        assert_eq!(code(u32_value(&v("4g"))), Code::InvalidNumber);
        assert_eq!(code(u32_value(&v("0x"))), Code::InvalidNumber);
        assert_eq!(code(u32_value(&v("10x"))), Code::InvalidNumber);
        // The original ignored what followed a suffix; here it is an error saying so.
        let d = u32_value(&v("10kb")).unwrap_err();
        assert_eq!(d.code, Code::InvalidNumber);
        assert_eq!(d.help.as_deref(), Some("write `10k` (10240)"));
        assert_eq!(code(u32_value(&v("-1"))), Code::InvalidNumber);
        assert_eq!(code(u32_value(&v(""))), Code::InvalidNumber);
        let d = u32_value(&v("ten")).unwrap_err();
        assert_eq!(d.message, "`ten` is not a number from 0 to 4294967295");
        assert_eq!(
            number(&v("18446744073709551615"), 0, u64::MAX).unwrap(),
            u64::MAX
        );
    }

    #[test]
    fn addresses() {
        assert_eq!(ip(&v("::0")).unwrap(), "::".parse::<IpAddr>().unwrap());
        assert_eq!(ip(&v("[::1]")).unwrap(), "::1".parse::<IpAddr>().unwrap());
        assert_eq!(code(ip(&v("[1.2.3.4]"))), Code::InvalidAddress);
        let d = ip(&v("localhost")).unwrap_err();
        assert_eq!(d.code, Code::InvalidAddress);
        assert_eq!(d.message, "`localhost` is not an IP address");
        assert_eq!(d.help.as_deref(), Some("write an IP address"));
        let d = ip(&v("300.1.1.1")).unwrap_err();
        assert!(d.help.unwrap().contains("four numbers from 0 to 255"));
        let d = ip(&v("fe80:::1")).unwrap_err();
        assert!(d.help.unwrap().contains("IPv6"));
        let d = ip(&v("10.0.0.1:22")).unwrap_err();
        assert!(d.help.unwrap().contains("`port = 22`"));
    }

    #[test]
    fn seconds_take_no_suffix() {
        assert_eq!(seconds_u32(&v("30")).unwrap(), 30);
        assert_eq!(seconds_u32(&v("0x1e")).unwrap(), 30);
        let d = seconds_u32(&v("2k")).unwrap_err();
        assert_eq!(d.message, "`2k` is not a number of seconds");
        assert!(d.notes[0].contains("meant 2048 seconds"), "{d:?}");
        assert_eq!(d.help.as_deref(), Some("write the number of seconds"));
        assert_eq!(code(seconds_u32(&v("1h"))), Code::InvalidNumber);
    }

    #[test]
    fn listen_addresses_take_the_familys_prefixes_and_host_names() {
        let one = |t: &str| match listen_address(&v(t)).unwrap() {
            Address::Ips(ips) => ips,
            other => panic!("{t}: {other:?}"),
        };
        assert_eq!(
            one("inet:127.0.0.1"),
            ["127.0.0.1".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(one("INET6:::1"), ["::1".parse::<IpAddr>().unwrap()]);
        assert_eq!(one("[::1]"), ["::1".parse::<IpAddr>().unwrap()]);
        assert_eq!(
            code(listen_address(&v("inet6:127.0.0.1"))),
            Code::InvalidAddress
        );
        assert_eq!(code(listen_address(&v("300.1.1.1"))), Code::InvalidAddress);
        for (t, path) in [
            ("unix:/run/s", "/run/s"),
            ("/run/s", "/run/s"),
            ("UNIX:rel", "rel"),
        ] {
            assert_eq!(
                listen_address(&v(t)).unwrap(),
                Address::Unix(path.into()),
                "{t}"
            );
        }
        // `localhost` is both loopback addresses whatever the resolver says (RFC 6761).
        let loopback: Vec<IpAddr> = vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()];
        assert_eq!(one("localhost"), loopback);
        assert_eq!(one("db.LOCALHOST."), loopback);
        assert_eq!(one("inet:localhost"), loopback[..1]);
        assert_eq!(one("inet6:localhost"), loopback[1..]);
        assert_eq!(
            code(listen_address(&v("no-such-host.invalid"))),
            Code::UnresolvedHost
        );
    }

    #[test]
    fn remote_addresses_may_carry_the_port() {
        let ip = |t: &str| t.parse::<IpAddr>().unwrap();
        assert_eq!(
            remote_address(&v("10.0.0.1:22")).unwrap(),
            (vec![ip("10.0.0.1")], Some(22))
        );
        assert_eq!(
            remote_address(&v("[::1]:8080")).unwrap(),
            (vec![ip("::1")], Some(8080))
        );
        assert_eq!(
            remote_address(&v("10.0.0.1")).unwrap(),
            (vec![ip("10.0.0.1")], None)
        );
        assert_eq!(code(remote_address(&v("10.0.0.1:0"))), Code::InvalidPort);
        assert_eq!(code(remote_address(&v("/run/s"))), Code::InvalidAddress);
        assert_eq!(
            code(remote_address(&v("unix:/run/s"))),
            Code::InvalidAddress
        );
    }

    #[test]
    fn tls_settings() {
        use tcprelay_plan::TlsVersion::{Tls12, Tls13};
        let t = |text: &str| tls_setting(&v(text)).unwrap();
        assert_eq!(t("no"), TlsSetting::default());
        assert_eq!(t("deny"), TlsSetting::default());
        assert!(t("yes").on && t("permit").on && t("yes").versions.is_empty());
        assert_eq!(t("TLSv1.3").versions, [Tls13]);
        assert_eq!(t("TLSv1.3,TLSv1.2,TLSv1.3").versions, [Tls12, Tls13]);
        let auto = t("auto");
        assert!(auto.on && auto.auto && auto.versions.is_empty());
        let dtls = t("DTLSv1.2,TLSv1.2");
        assert_eq!(
            (dtls.versions, dtls.dtls),
            (vec![Tls12], vec!["DTLSv1.2".to_string()])
        );
        assert_eq!(code(tls_setting(&v("TLSv1.1"))), Code::InvalidTlsVersions);
        assert_eq!(
            code(tls_setting(&v("TLSv1.2,TLS1.3"))),
            Code::InvalidTlsVersions
        );
        assert_eq!(code(tls_setting(&v("perhaps"))), Code::InvalidBool);
    }

    #[test]
    fn debug_masks() {
        let m = |texts: &[&str]| {
            let values: Vec<Sp<Value>> = texts.iter().map(|t| v(t)).collect();
            debug_mask(&values).map(|d| d.apply(0))
        };
        assert_eq!(m(&["0"]).unwrap(), 0);
        assert_eq!(m(&["0x10"]).unwrap(), 16);
        assert_eq!(m(&["PARSE", "NET"]).unwrap(), 1 << 1 | 1 << 12);
        assert_eq!(m(&["PARSE", "+NET", "-PARSE"]).unwrap(), 1 << 12);
        assert_eq!(m(&["ALL", "NONE"]).unwrap(), 0);
        assert_ne!(m(&["ALL"]).unwrap(), 0);
        let d = m(&["NTE"]).unwrap_err();
        assert_eq!(d.code, Code::InvalidDebugFlag);
        assert_eq!(d.help.as_deref(), Some("did you mean `NET`?"));
        // A later `debug` applies over an earlier one.
        let first = DebugMask { set: 6, clear: 0 };
        let later = DebugMask { set: 0, clear: 2 };
        assert_eq!(first.then(later).apply(1), 5);
        assert_eq!(later.apply(first.apply(1)), 5);
    }

    #[test]
    fn socket_types_and_protocols() {
        assert_eq!(socket_type(&v("stream")).unwrap(), ());
        assert_eq!(code(socket_type(&v("DGRAM"))), Code::NotAStream);
        assert_eq!(code(socket_type(&v("SEQPACKET"))), Code::NotAStream);
        assert_eq!(code(socket_type(&v("RAW"))), Code::InvalidChoice);
        assert_eq!(code(protocol(&v("udp"))), Code::NotAStream);
    }

    #[test]
    fn ports_and_services() {
        assert_eq!(port(&v("65535")).unwrap(), 65535);
        assert_eq!(code(port(&v("0"))), Code::InvalidPort);
        assert_eq!(code(port(&v("65536"))), Code::InvalidPort);
        assert_eq!(code(port(&v("99999999999999999999"))), Code::InvalidPort);
        let d = port(&v("no-such-service")).unwrap_err();
        assert_eq!(d.message, "unknown service name `no-such-service`");
        if std::path::Path::new(services::PATH).exists() {
            assert_eq!(port(&v("ssh")).unwrap(), 22);
        }
    }

    #[test]
    fn choices_suggest_the_nearest() {
        assert_eq!(protocol(&v("sctp")).unwrap(), Protocol::Sctp);
        let d = protocol(&v("tpc")).unwrap_err();
        assert_eq!(d.code, Code::InvalidChoice);
        assert_eq!(d.help.as_deref(), Some("did you mean `TCP`?"));
        assert_eq!(facility(&v("local3")).unwrap(), Facility::Local3);
        let d = facility(&v("uucpp")).unwrap_err();
        assert_eq!(d.help.as_deref(), Some("did you mean `UUCP`?"));
        assert_eq!(severity(&v("Warn")).unwrap(), Severity::Warning);
        let d = severity(&v("inf")).unwrap_err();
        assert_eq!(d.help.as_deref(), Some("did you mean `INFO`?"));
        assert_eq!(overload(&v("Reset")).unwrap(), Overload::Reset);
        let d = overload(&v("clsoe")).unwrap_err();
        assert_eq!(d.help.as_deref(), Some("did you mean `close`?"));
        let d = overload(&v("banana")).unwrap_err();
        assert_eq!(
            d.help.as_deref(),
            Some("expected one of `queue`, `close`, `reset`")
        );
    }

    #[test]
    fn modes_are_octal() {
        assert_eq!(mode(&v("0660")).unwrap(), 0o660);
        assert_eq!(mode(&v("7777")).unwrap(), 0o7777);
        assert_eq!(code(mode(&v("0680"))), Code::InvalidNumber);
        assert_eq!(code(mode(&v("17777"))), Code::InvalidNumber);
        assert_eq!(permission_mode(&v("0660")).unwrap(), 0o660);
        assert_eq!(permission_mode(&v("777")).unwrap(), 0o777);
        for bad in ["1777", "0680", "660x", "", "-1", "99999999999999999999"] {
            assert_eq!(code(permission_mode(&v(bad))), Code::InvalidNumber, "{bad}");
        }
    }

    #[test]
    fn networks() {
        let four: IpAddr = "10.0.0.0".parse().unwrap();
        assert_eq!(network(&v("10.0.0.0/8")).unwrap(), (four, 8));
        assert_eq!(network(&v("10.0.0.0")).unwrap(), (four, 32));
        assert_eq!(network(&v("::/0")).unwrap().1, 0);
        assert_eq!(network(&v("fe80::/64")).unwrap().1, 64);
        for bad in ["10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/x", "host/8"] {
            assert_eq!(code(network(&v(bad))), Code::InvalidAcl, "{bad}");
        }
        // A v4-mapped network counts the mapping's 96 bits in its prefix.
        assert_eq!(network(&v("::ffff:10.0.0.0/104")).unwrap().1, 104);
        assert_eq!(network(&v("::ffff:10.0.0.1")).unwrap().1, 128);
        let Err(short) = network(&v("::ffff:192.0.2.0/24")) else {
            panic!("a mapped network with a prefix under 96 bits is refused");
        };
        assert_eq!(short.code, Code::InvalidAcl);
        let help = short.help.as_deref().unwrap_or_default();
        assert!(
            help.contains("`192.0.2.0/24`") && help.contains("/120"),
            "{help}"
        );
    }
}
