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

/// `yes`/`no`, `true`/`false`, `on`/`off`, in any case.
pub fn boolean(v: &Sp<Value>) -> Parsed<bool> {
    match v.node.text.to_ascii_lowercase().as_str() {
        "yes" | "true" | "on" => Ok(true),
        "no" | "false" | "off" => Ok(false),
        _ => fail(
            Diagnostic::error(
                Code::InvalidBool,
                v.span,
                format!("expected `yes` or `no`, found `{}`", v.node.text),
            )
            .with_label("expected `yes` or `no`")
            .with_note("`true`/`false` and `on`/`off` are accepted too"),
        ),
    }
}

/// A decimal number from `min` to `max`.
pub fn number(v: &Sp<Value>, min: u64, max: u64) -> Parsed<u64> {
    let text = &v.node.text;
    let parsed = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        text.parse::<u64>().ok()
    } else {
        None
    };
    match parsed {
        Some(n) if (min..=max).contains(&n) => Ok(n),
        _ => fail(
            Diagnostic::error(
                Code::InvalidNumber,
                v.span,
                format!("`{text}` is not a number from {min} to {max}"),
            )
            .with_label("expected a decimal number"),
        ),
    }
}

/// A decimal `u32`.
pub fn u32_value(v: &Sp<Value>) -> Parsed<u32> {
    number(v, 0, u64::from(u32::MAX)).map(|n| n as u32)
}

/// An IP address, IPv6 optionally in brackets (`[::1]`). Hostnames are not resolved:
/// the plan must not depend on the DNS of the compiling machine.
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
        "hostnames are not resolved; write an IP address"
    }
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

/// `TCP` or `SCTP`.
pub fn protocol(v: &Sp<Value>) -> Parsed<Protocol> {
    choice(
        v,
        "protocol",
        &[(Protocol::Tcp, "TCP"), (Protocol::Sctp, "SCTP")],
    )
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
        for (t, b) in [("yes", true), ("No", false), ("TRUE", true), ("off", false)] {
            assert_eq!(boolean(&v(t)).unwrap(), b);
        }
        assert_eq!(code(boolean(&v("maybe"))), Code::InvalidBool);
    }

    #[test]
    fn numbers_are_decimal_and_in_range() {
        assert_eq!(u32_value(&v("4294967295")).unwrap(), u32::MAX);
        assert_eq!(code(u32_value(&v("4294967296"))), Code::InvalidNumber);
        assert_eq!(code(u32_value(&v("0x10"))), Code::InvalidNumber);
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
        assert!(d.help.unwrap().contains("hostnames are not resolved"));
        let d = ip(&v("300.1.1.1")).unwrap_err();
        assert!(d.help.unwrap().contains("four numbers from 0 to 255"));
        let d = ip(&v("fe80:::1")).unwrap_err();
        assert!(d.help.unwrap().contains("IPv6"));
        let d = ip(&v("10.0.0.1:22")).unwrap_err();
        assert!(d.help.unwrap().contains("`port = 22`"));
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
    }
}
