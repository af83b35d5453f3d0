//! What a log line looks like: the three formats (`text`, `logfmt`, `json`), each
//! with the writing process, the severity, and either a message or a record (an
//! event name and its fields).
//!
//! Every text that goes into a line is escaped so that it cannot break the line or
//! forge another: control characters (newlines included) become `\n`, `\r`, `\t` or
//! `\u00XX` in every format, and logfmt and JSON also escape `"` and `\` inside their
//! quoted strings. Values may come from the network (a client's SNI name, say).

use super::time::rfc3339_utc;
use std::fmt::{self, Write};
use std::time::{Duration, SystemTime};
use tcprelay_plan::Severity;

/// The format of the lines, for the whole process (`log format` in the spawnd section).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// `2026-12-01T22:15:21.123Z master info: message`, and for a record
    /// `... info: event key=value ...`.
    #[default]
    Text,
    /// `ts=... level=info proc=master pid=1 msg=message`, or `event=...` and the
    /// record's fields.
    Logfmt,
    /// One JSON object per line, the same fields as logfmt.
    Json,
}

impl From<tcprelay_plan::LogFormat> for Format {
    /// The plan's `log format`.
    fn from(format: tcprelay_plan::LogFormat) -> Format {
        match format {
            tcprelay_plan::LogFormat::Text => Format::Text,
            tcprelay_plan::LogFormat::Logfmt => Format::Logfmt,
            tcprelay_plan::LogFormat::Json => Format::Json,
        }
    }
}

/// One field's value in a record. Build one with `.into()` from a string, bytes, an
/// integer, a bool, a `Duration` or an `Option` of those (`None` is [`Value::Absent`]),
/// or with [`Value::display`] from anything that implements `Display`.
#[derive(Clone, Copy)]
pub enum Value<'a> {
    Str(&'a str),
    /// Bytes that may not be UTF-8 (what a client sent): invalid sequences show as
    /// U+FFFD.
    Bytes(&'a [u8]),
    Display(&'a dyn fmt::Display),
    Int(i64),
    Uint(u64),
    Bool(bool),
    /// Seconds with microseconds: `1.250000s` (text, logfmt), `1.25` (JSON).
    Duration(Duration),
    /// An optional value that is not there: `key=` (text, logfmt), `null` (JSON).
    Absent,
}

impl<'a> Value<'a> {
    /// The value `v` prints as (e.g. a socket address).
    pub fn display(v: &'a dyn fmt::Display) -> Value<'a> {
        Value::Display(v)
    }

    /// The value as text to quote, or `None` for one that prints as a bare token.
    fn text(&self) -> Option<std::borrow::Cow<'a, str>> {
        match *self {
            Value::Str(s) => Some(s.into()),
            Value::Bytes(b) => Some(String::from_utf8_lossy(b)),
            Value::Display(d) => Some(d.to_string().into()),
            _ => None,
        }
    }

    /// Appends a value that is not text (a number, a bool, a duration, nothing).
    fn bare(&self, out: &mut String, json: bool) {
        let _ = match *self {
            Value::Int(n) => write!(out, "{n}"),
            Value::Uint(n) => write!(out, "{n}"),
            Value::Bool(b) => write!(out, "{b}"),
            Value::Duration(d) if json => {
                write!(out, "{}.{:06}", d.as_secs(), d.subsec_micros())
            }
            Value::Duration(d) => write!(out, "{}.{:06}s", d.as_secs(), d.subsec_micros()),
            Value::Absent if json => write!(out, "null"),
            _ => Ok(()),
        };
    }
}

impl fmt::Debug for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Display(d) => write!(f, "Display({d})"),
            Value::Str(s) => write!(f, "Str({s:?})"),
            Value::Bytes(b) => write!(f, "Bytes({b:?})"),
            Value::Int(n) => write!(f, "Int({n})"),
            Value::Uint(n) => write!(f, "Uint({n})"),
            Value::Bool(b) => write!(f, "Bool({b})"),
            Value::Duration(d) => write!(f, "Duration({d:?})"),
            Value::Absent => write!(f, "Absent"),
        }
    }
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(s: &'a str) -> Self {
        Value::Str(s)
    }
}
impl<'a> From<&'a String> for Value<'a> {
    fn from(s: &'a String) -> Self {
        Value::Str(s)
    }
}
impl<'a> From<&'a [u8]> for Value<'a> {
    fn from(b: &'a [u8]) -> Self {
        Value::Bytes(b)
    }
}
macro_rules! value_from_int {
    ($variant:ident, $wide:ty: $($t:ty),*) => {$(
        impl From<$t> for Value<'_> {
            fn from(n: $t) -> Self {
                Value::$variant(n as $wide)
            }
        }
    )*};
}
value_from_int!(Int, i64: i8, i16, i32, i64, isize);
value_from_int!(Uint, u64: u8, u16, u32, u64, usize);
impl From<bool> for Value<'_> {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}
impl From<Duration> for Value<'_> {
    fn from(d: Duration) -> Self {
        Value::Duration(d)
    }
}
impl<'a, T: Into<Value<'a>>> From<Option<T>> for Value<'a> {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Absent, Into::into)
    }
}

/// What a line says: a message (`info!` and the like) or a record.
#[derive(Debug, Clone, Copy)]
pub(super) enum Body<'a> {
    Message(&'a str),
    Record {
        event: &'a str,
        fields: &'a [(&'a str, Value<'a>)],
    },
}

/// Where the line goes, which decides how it starts.
#[derive(Debug, Clone, Copy)]
pub(super) enum Dest {
    /// Standard error: the line starts with its time.
    Stderr(SystemTime),
    /// Standard error read by the systemd journal, which stamps the time itself and
    /// takes the severity from a `<N>` prefix.
    Journal,
    /// syslog(3), which stamps the time and carries the severity itself.
    Syslog,
}

/// The process that writes the line: the master, or a worker of a generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Origin {
    pub pid: u32,
    /// `None` for the master (and its helper processes).
    pub generation: Option<u64>,
    /// A helper process of the master: `checker` (the health checks) or
    /// `resolver` (DNS discovery).
    pub helper: Option<&'static str>,
}

impl Origin {
    /// The process's kind, as `proc=` says it.
    fn kind(&self) -> &'static str {
        match (self.helper, self.generation) {
            (Some(helper), _) => helper,
            (None, None) => "master",
            (None, Some(_)) => "worker",
        }
    }
}

/// One line, without its newline.
pub(super) fn line(
    format: Format,
    dest: Dest,
    origin: Origin,
    severity: Severity,
    body: Body<'_>,
) -> String {
    let mut out = String::with_capacity(128);
    if let Dest::Journal = dest {
        let _ = write!(out, "<{}>", severity as u8);
    }
    let time = match dest {
        Dest::Stderr(t) => Some(t),
        _ => None,
    };
    let level = severity_name(severity);
    match format {
        Format::Text => {
            if let Some(t) = time {
                rfc3339_utc(t, &mut out);
                out.push(' ');
            }
            match (origin.helper, origin.generation) {
                (Some(helper), _) => {
                    let _ = write!(out, "{helper} {}", origin.pid);
                }
                (_, None) => out.push_str("master"),
                (_, Some(g)) => {
                    let _ = write!(out, "worker {} gen {g}", origin.pid);
                }
            }
            let _ = write!(out, " {level}: ");
            match body {
                Body::Message(m) => escape_controls(m, &mut out),
                Body::Record { event, fields } => {
                    escape_controls(event, &mut out);
                    for (key, value) in fields {
                        out.push(' ');
                        logfmt_pair(key, value, &mut out);
                    }
                }
            }
        }
        Format::Logfmt | Format::Json => {
            // Both list the same fields: `ts` (on standard error), the header, then
            // the message or the record's own.
            let mut stamp = String::new();
            if let Some(t) = time {
                rfc3339_utc(t, &mut stamp);
            }
            let mut fields = Vec::with_capacity(8);
            if time.is_some() {
                fields.push(("ts", Value::Str(&stamp)));
            }
            header(&mut fields, origin, level, &body);
            let fields = fields.iter().chain(tail(&body));
            if format == Format::Json {
                out.push('{');
            }
            for (i, (key, value)) in fields.enumerate() {
                if format == Format::Logfmt {
                    if i > 0 {
                        out.push(' ');
                    }
                    logfmt_pair(key, value, &mut out);
                    continue;
                }
                if i > 0 {
                    out.push(',');
                }
                json_string(key, &mut out);
                out.push(':');
                match value.text() {
                    Some(text) => json_string(&text, &mut out),
                    None => value.bare(&mut out, true),
                }
            }
            if format == Format::Json {
                out.push('}');
            }
        }
    }
    out
}

/// The fields every logfmt and JSON line starts with (after `ts`): level, process,
/// and the message or the event name.
fn header<'a>(
    fields: &mut Vec<(&'a str, Value<'a>)>,
    origin: Origin,
    level: &'a str,
    body: &Body<'a>,
) {
    fields.push(("level", Value::Str(level)));
    fields.push(("proc", Value::Str(origin.kind())));
    fields.push(("pid", Value::Uint(origin.pid.into())));
    if let Some(g) = origin.generation {
        fields.push(("gen", Value::Uint(g)));
    }
    match *body {
        Body::Message(m) => fields.push(("msg", Value::Str(m))),
        Body::Record { event, .. } => fields.push(("event", Value::Str(event))),
    }
}

/// A record's own fields, after the header.
fn tail<'a>(body: &Body<'a>) -> &'a [(&'a str, Value<'a>)] {
    match *body {
        Body::Message(_) => &[],
        Body::Record { fields, .. } => fields,
    }
}

/// `info`, `warning`, `err`...: the severity as the lines name it.
fn severity_name(severity: Severity) -> &'static str {
    match severity {
        Severity::Emerg => "emerg",
        Severity::Alert => "alert",
        Severity::Crit => "crit",
        Severity::Err => "err",
        Severity::Warning => "warning",
        Severity::Notice => "notice",
        Severity::Info => "info",
        Severity::Debug => "debug",
    }
}

/// `key=value` in logfmt: the key stripped of what a key cannot hold (spaces, `=`,
/// `"`, control characters become `_`), the value bare when it can be, else quoted.
fn logfmt_pair(key: &str, value: &Value<'_>, out: &mut String) {
    if key.is_empty() {
        out.push('_');
    }
    out.extend(key.chars().map(|c| {
        if c == '=' || c == '"' || c.is_whitespace() || c.is_control() {
            '_'
        } else {
            c
        }
    }));
    out.push('=');
    match value.text() {
        Some(text) if needs_quotes(&text) => {
            out.push('"');
            escape(&text, true, out);
            out.push('"');
        }
        Some(text) => out.push_str(&text),
        None => value.bare(out, false),
    }
}

/// Whether a logfmt value must be quoted: empty (a bare `key=` is an absent value),
/// or holding a space, `=`, `"`, `\` or a character that is escaped.
fn needs_quotes(s: &str) -> bool {
    s.is_empty()
        || s.chars()
            .any(|c| c == '=' || c == '"' || c == '\\' || c.is_whitespace() || must_escape(c))
}

/// A JSON string, quoted.
fn json_string(s: &str, out: &mut String) {
    out.push('"');
    escape(s, true, out);
    out.push('"');
}

/// Characters that are never written as they are: control characters (C0, DEL, C1)
/// and the Unicode line and paragraph separators.
fn must_escape(c: char) -> bool {
    c.is_control() || c == '\u{2028}' || c == '\u{2029}'
}

/// Appends `s` with what [`must_escape`] as `\n`, `\r`, `\t` or `\u00XX` (JSON's
/// escapes, which logfmt's readers take too); with `quoted`, `"` and `\` as `\"` and
/// `\\` as well.
fn escape(s: &str, quoted: bool, out: &mut String) {
    for c in s.chars() {
        match c {
            '"' | '\\' if quoted => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if must_escape(c) => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
}

/// A message or event name in the text format: free text, only what
/// [`must_escape`] escaped.
fn escape_controls(s: &str, out: &mut String) {
    escape(s, false, out)
}

#[cfg(test)]
mod tests;
