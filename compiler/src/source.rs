//! Loading the configuration text from a path, `-` (standard input) or a URL (`file://`,
//! `http://`, `https://`), as the original allowed with curl.
//!
//! This is the one place where the compiler touches the file system or the network for
//! the configuration, so the limits live here: a path or `file:` URL must name a
//! regular file (opened without blocking, so a FIFO cannot hang the compiler, then
//! checked: `/dev/zero`, a FIFO or a directory is refused), and no source is read past
//! [`MAX_SIZE`] bytes; HTTP(S) with certificate verification against the system's
//! roots, a connect timeout and an overall timeout, a response header of at most
//! [`MAX_HEADER`] bytes, at most [`MAX_REDIRECTS`] redirects and never one that changes
//! the scheme; and UTF-8 text in every case. Every error is one line that names the
//! path or URL and says what happened in an operator's words.

use std::fmt;
use std::io::{self, Read};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tcprelay_plan::{read_regular, Refused};

use ureq::http::header::LOCATION;
use ureq::tls::{RootCerts, TlsConfig, TlsProvider};
use ureq::{Agent, Proxy};
use url::Url;

/// How many redirects are followed before giving up.
pub const MAX_REDIRECTS: usize = 5;
/// The largest configuration accepted, from a file, standard input or a URL, in bytes:
/// room for a configuration of a million lines (some 30 MB), not for a runaway file.
pub const MAX_SIZE: u64 = 64 * 1024 * 1024;
/// The largest response header accepted from an HTTP(S) server, in bytes.
pub const MAX_HEADER: usize = 64 * 1024;
/// How long connecting to an HTTP(S) server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long fetching a URL may take in all, redirects included.
const OVERALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The limits of one load; [`LIMITS`] but in tests, which cannot wait 30 s.
#[derive(Debug, Clone, Copy)]
struct Limits {
    size: u64,
    connect: Duration,
    overall: Duration,
}

const LIMITS: Limits = Limits {
    size: MAX_SIZE,
    connect: CONNECT_TIMEOUT,
    overall: OVERALL_TIMEOUT,
};

/// A configuration's text and the name to show in diagnostics.
#[derive(Debug, Clone)]
pub struct Source {
    /// `<stdin>`, the path, or the URL as given.
    pub name: String,
    pub text: String,
}

/// Why a configuration could not be loaded. Displays as one line naming the path or URL.
#[derive(Debug)]
#[non_exhaustive]
pub enum SourceError {
    /// Reading a file (or standard input, named `<stdin>`) failed.
    Read { name: String, source: io::Error },
    /// The text is not UTF-8; `offset` is the byte offset of the first bad byte.
    NotUtf8 {
        name: String,
        offset: usize,
        line: usize,
        byte: Option<u8>,
    },
    /// A URL with a scheme other than `file`, `http` and `https`.
    UnsupportedScheme { scheme: String, url: String },
    /// A malformed URL (a bad percent-escape, a `file:` URL with a host, …).
    BadUrl { url: String, reason: String },
    /// The request failed: DNS, connection, TLS (certificate verification), timeout, ….
    Fetch { url: String, source: ureq::Error },
    /// The server answered with a status other than 2xx (or a redirect without a usable
    /// `Location`).
    Status { url: String, status: u16 },
    /// A redirect to a URL with another scheme, which is refused.
    CrossSchemeRedirect { from: String, to: String },
    /// More than [`MAX_REDIRECTS`] redirects, starting at `url`.
    TooManyRedirects { url: String, last: String },
    /// A redirect whose `Location` is missing or unusable.
    BadRedirect {
        url: String,
        status: u16,
        reason: String,
    },
    /// A path that names something other than a regular file: `kind` says what.
    NotRegular { name: String, kind: &'static str },
    /// A file or standard input larger than `limit` bytes.
    FileTooLarge { name: String, limit: u64 },
    /// The body is larger than `limit` bytes.
    TooLarge { url: String, limit: u64 },
    /// The response header is larger than `limit` bytes.
    HeaderTooLarge { url: String, limit: usize },
    /// The response header has more fields than ureq accepts.
    HeaderTooMany { url: String },
    /// The server answered with something that is not HTTP.
    NotHttp { url: String, reason: String },
    /// No answer (`answered` false) or no whole body within the overall timeout.
    TimedOut {
        url: String,
        after: Duration,
        answered: bool,
    },
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceError::Read { name, source } => write!(f, "cannot read {name}: {source}"),
            SourceError::NotUtf8 {
                name,
                offset,
                line,
                byte,
            } => {
                write!(f, "{name} is not UTF-8 text: invalid ")?;
                match byte {
                    Some(b) => write!(f, "byte 0x{b:02X}")?,
                    None => write!(f, "truncated character")?,
                }
                write!(f, " at byte offset {offset} (line {line})")
            }
            SourceError::UnsupportedScheme { scheme, url } => write!(
                f,
                "unsupported URL scheme `{scheme}` in {url}; \
                 use a path, `-`, file://, http:// or https://"
            ),
            SourceError::BadUrl { url, reason } => write!(f, "invalid URL {url}: {reason}"),
            SourceError::Fetch { url, source } => {
                write!(f, "cannot fetch {url}: {}", one_line(&fetch_reason(source)))
            }
            SourceError::Status { url, status } => {
                write!(f, "cannot fetch {url}: the server answered {status}")?;
                match ureq::http::StatusCode::from_u16(*status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                {
                    Some(reason) => write!(f, " {reason}"),
                    None => Ok(()),
                }
            }
            SourceError::CrossSchemeRedirect { from, to } => write!(
                f,
                "refusing the redirect from {from} to {to}: it changes the URL scheme"
            ),
            SourceError::TooManyRedirects { url, last } => write!(
                f,
                "cannot fetch {url}: more than {MAX_REDIRECTS} redirects (the last to {last})"
            ),
            SourceError::BadRedirect {
                url,
                status,
                reason,
            } => write!(
                f,
                "cannot follow the redirect ({status}) from {url}: {reason}"
            ),
            SourceError::NotRegular { name, kind } => {
                write!(f, "cannot read {name}: it is {kind}, not a regular file")?;
                if *kind == "a FIFO" {
                    f.write_str(" (to read from a pipe, give `-` and feed it to standard input)")?;
                }
                Ok(())
            }
            SourceError::FileTooLarge { name, limit } => write!(
                f,
                "cannot read {name}: it is larger than {}, the limit for a configuration",
                size(*limit)
            ),
            SourceError::TooLarge { url, limit } => write!(
                f,
                "cannot fetch {url}: the configuration is larger than {}, the limit",
                size(*limit)
            ),
            SourceError::HeaderTooLarge { url, limit } => write!(
                f,
                "cannot fetch {url}: the response header is larger than {}, the limit",
                size(*limit as u64)
            ),
            SourceError::HeaderTooMany { url } => write!(
                f,
                "cannot fetch {url}: the response header has too many fields"
            ),
            SourceError::NotHttp { url, reason } => write!(
                f,
                "cannot fetch {url}: the server's answer is not HTTP ({reason})"
            ),
            SourceError::TimedOut {
                url,
                after,
                answered: false,
            } => write!(
                f,
                "cannot fetch {url}: no answer within {}",
                seconds(*after)
            ),
            SourceError::TimedOut {
                url,
                after,
                answered: true,
            } => write!(
                f,
                "cannot fetch {url}: the server answered but did not send the whole \
                 configuration within {}",
                seconds(*after)
            ),
        }
    }
}

/// `64 MiB`, `64 KiB`, `100 bytes`.
fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1024 * 1024 && b % (1024 * 1024) == 0 => format!("{} MiB", b / (1024 * 1024)),
        b if b >= 1024 && b % 1024 == 0 => format!("{} KiB", b / 1024),
        b => format!("{b} bytes"),
    }
}

/// `30 s`, `0.2 s`.
fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} s", d.as_secs_f64())
    }
}

impl std::error::Error for SourceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SourceError::Read { source, .. } => Some(source),
            SourceError::Fetch { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Loads the configuration named by `spec`: `-` for standard input, a `file:`, `http://`
/// or `https://` URL, or else a path.
pub fn load(spec: &str) -> Result<Source, SourceError> {
    load_with(spec, &LIMITS)
}

/// Loads an included file by its path, at most `limit` bytes, with the rules of a
/// configuration file (a regular file, UTF-8); never standard input nor a URL, whatever
/// the path looks like.
pub fn load_path(path: &std::path::Path, limit: u64) -> Result<Source, SourceError> {
    let name = path.display().to_string();
    let bytes = read_file(&name, path.to_path_buf(), limit.min(MAX_SIZE))?;
    text(&name, bytes)
}

/// Loads an included `file:`, `http:` or `https:` URL, at most `limit` bytes, as
/// [`load`] loads one.
pub fn load_url(url: &str, limit: u64) -> Result<Source, SourceError> {
    let limits = Limits {
        size: limit.min(MAX_SIZE),
        ..LIMITS
    };
    match classify(url) {
        Spec::FileUrl | Spec::Http => load_with(url, &limits),
        _ => Err(SourceError::BadUrl {
            url: url.to_string(),
            reason: "not a file, http or https URL".to_string(),
        }),
    }
}

fn load_with(spec: &str, limits: &Limits) -> Result<Source, SourceError> {
    let bytes = match classify(spec) {
        Spec::Stdin => {
            let name = "<stdin>";
            let bytes = read_capped(io::stdin().lock(), name, limits.size)?;
            return text(name, bytes);
        }
        Spec::Path => read_file(spec, PathBuf::from(spec), limits.size)?,
        Spec::FileUrl => read_file(spec, file_url_path(spec)?, limits.size)?,
        Spec::Http => fetch(&agent(Proxy::try_from_env(), limits), spec, limits)?,
        Spec::Unsupported(scheme) => {
            return Err(SourceError::UnsupportedScheme {
                scheme: scheme.to_string(),
                url: spec.to_string(),
            })
        }
    };
    text(spec, bytes)
}

/// What kind of thing a `spec` names.
#[derive(Debug, PartialEq, Eq)]
enum Spec<'a> {
    Stdin,
    Path,
    FileUrl,
    Http,
    Unsupported(&'a str),
}

fn classify(spec: &str) -> Spec<'_> {
    if spec == "-" {
        return Spec::Stdin;
    }
    match url_scheme(spec) {
        Some(s) if s.eq_ignore_ascii_case("file") => Spec::FileUrl,
        Some(s) if s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https") => Spec::Http,
        // `name:rest` without `//` may well be a file name; only `file:` is taken as a URL.
        Some(s) if spec[s.len() + 1..].starts_with("//") => Spec::Unsupported(s),
        _ => Spec::Path,
    }
}

/// The scheme of `s` if it starts like a URL (`scheme:`, RFC 3986).
fn url_scheme(s: &str) -> Option<&str> {
    let colon = s.find(':')?;
    let scheme = &s[..colon];
    let mut chars = scheme.chars();
    let first = chars.next()?;
    let valid = first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then_some(scheme)
}

/// Reads the configuration file at `path` (named `name` in errors), at most `limit`
/// bytes, with [`read_regular`] (shared with the runtime, in the plan crate).
fn read_file(name: &str, path: PathBuf, limit: u64) -> Result<Vec<u8>, SourceError> {
    read_regular(&path, limit).map_err(|refused| match refused {
        Refused::Io(source) => SourceError::Read {
            name: name.to_string(),
            source,
        },
        Refused::NotRegular(kind) => SourceError::NotRegular {
            name: name.to_string(),
            kind,
        },
        Refused::TooLarge => SourceError::FileTooLarge {
            name: name.to_string(),
            limit,
        },
    })
}

/// Reads `input` to its end, refusing it once it passes `limit` bytes (at most
/// `limit + 1` bytes are read).
fn read_capped(input: impl Read, name: &str, limit: u64) -> Result<Vec<u8>, SourceError> {
    let mut bytes = Vec::new();
    input
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|source| SourceError::Read {
            name: name.to_string(),
            source,
        })?;
    if bytes.len() as u64 > limit {
        return Err(SourceError::FileTooLarge {
            name: name.to_string(),
            limit,
        });
    }
    Ok(bytes)
}

/// Checks that `bytes` are UTF-8 and makes the [`Source`]. A leading byte-order mark is
/// dropped.
fn text(name: &str, bytes: Vec<u8>) -> Result<Source, SourceError> {
    match String::from_utf8(bytes) {
        Ok(mut text) => {
            if text.starts_with('\u{feff}') {
                text.drain(..'\u{feff}'.len_utf8());
            }
            Ok(Source {
                name: name.to_string(),
                text,
            })
        }
        Err(e) => {
            let offset = e.utf8_error().valid_up_to();
            let bytes = e.as_bytes();
            Err(SourceError::NotUtf8 {
                name: name.to_string(),
                offset,
                line: 1 + bytes[..offset].iter().filter(|&&b| b == b'\n').count(),
                byte: e.utf8_error().error_len().map(|_| bytes[offset]),
            })
        }
    }
}

/// The path of a `file:///abs/path`, `file://localhost/abs/path` or `file:/abs/path` URL,
/// percent-decoded (by the url crate). A query or fragment is ignored. Checked first, on
/// the URL as written, so that the error says what is wrong: a host other than
/// `localhost` (named), a relative path (`file:relay.cfg`, which the url crate would
/// take as `file:///relay.cfg`) and a malformed escape (`%2`, `%zz`, which it would
/// leave as they are).
fn file_url_path(spec: &str) -> Result<PathBuf, SourceError> {
    let bad = |reason: String| SourceError::BadUrl {
        url: spec.to_string(),
        reason,
    };
    let rest = &spec["file:".len()..];
    let rest = &rest[..rest.find(['?', '#']).unwrap_or(rest.len())];
    let path = match rest.strip_prefix("//") {
        Some(authority_and_path) => {
            let slash = authority_and_path
                .find('/')
                .unwrap_or(authority_and_path.len());
            let host = &authority_and_path[..slash];
            if !host.is_empty() && !host.eq_ignore_ascii_case("localhost") {
                return Err(bad(format!(
                    "file URLs naming a host (`{host}`) are not supported; use file:///path"
                )));
            }
            &authority_and_path[slash..]
        }
        None => rest,
    };
    if !path.starts_with('/') {
        return Err(bad("a file URL needs an absolute path".to_string()));
    }
    if let Some(escape) = bad_escape(path) {
        return Err(bad(format!("bad percent-escape `{escape}`")));
    }
    let url = Url::parse(spec).map_err(|e| bad(e.to_string()))?;
    url.to_file_path()
        .map_err(|()| bad("it does not name a local file".to_string()))
}

/// The first `%` in `s` not followed by two hex digits, with what follows it (at most
/// two characters).
fn bad_escape(s: &str) -> Option<&str> {
    s.match_indices('%').find_map(|(i, _)| {
        let digits = s.as_bytes()[i + 1..].iter().take(2);
        let hex = digits.clone().filter(|b| b.is_ascii_hexdigit()).count();
        if hex == 2 {
            return None;
        }
        // Up to the first character that is not ASCII, or two bytes on.
        let len = digits.take_while(|b| b.is_ascii()).count();
        Some(&s[i..i + 1 + len])
    })
}

/// The HTTP client: native-tls (OpenSSL) with the platform's root certificates and
/// verification on, the timeouts of `limits`, a response header of at most
/// [`MAX_HEADER`] bytes, and no automatic redirects (see [`fetch`]).
fn agent(proxy: Option<Proxy>, limits: &Limits) -> Agent {
    let tls = TlsConfig::builder()
        .provider(TlsProvider::NativeTls)
        .root_certs(RootCerts::PlatformVerifier)
        .build();
    Agent::config_builder()
        .tls_config(tls)
        .proxy(proxy)
        .timeout_connect(Some(limits.connect))
        .timeout_global(Some(limits.overall))
        .max_response_header_size(MAX_HEADER)
        .max_redirects(0)
        .http_status_as_error(false)
        .user_agent(concat!("tcprelay-cc/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// GETs `url`, following up to [`MAX_REDIRECTS`] redirects that keep the scheme, within
/// the overall timeout of `limits`, and returns the body (at most `limits.size` bytes).
fn fetch(agent: &Agent, url: &str, limits: &Limits) -> Result<Vec<u8>, SourceError> {
    let deadline = Instant::now() + limits.overall;
    let mut current = Url::parse(url).map_err(|e| SourceError::BadUrl {
        url: url.to_string(),
        reason: e.to_string(),
    })?;
    current.set_fragment(None);
    // The url crate writes the scheme in lower case, as the http crate wants it.
    let scheme = current.scheme().to_string();
    let mut redirects = 0;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let timed_out = |answered| SourceError::TimedOut {
            url: url.to_string(),
            after: limits.overall,
            answered,
        };
        if remaining.is_zero() {
            return Err(timed_out(false));
        }
        let mut response = agent
            .get(current.as_str())
            .config()
            .timeout_global(Some(remaining))
            .build()
            .call()
            .map_err(|e| fetch_error(e, current.as_str(), limits, false))?;
        let status = response.status().as_u16();
        if matches!(status, 301 | 302 | 303 | 307 | 308) {
            let bad = |reason: &str| SourceError::BadRedirect {
                url: current.to_string(),
                status,
                reason: reason.to_string(),
            };
            let location = response
                .headers()
                .get(LOCATION)
                .ok_or_else(|| bad("the answer has no Location"))?
                .to_str()
                .map_err(|_| bad("the Location is not ASCII"))?
                .trim();
            let mut next = Url::parse(&resolve(current.as_str(), location))
                .map_err(|_| bad(&format!("the Location `{location}` is not a valid URL")))?;
            if next.scheme() != scheme {
                return Err(SourceError::CrossSchemeRedirect {
                    from: current.to_string(),
                    to: next.to_string(),
                });
            }
            if redirects == MAX_REDIRECTS {
                return Err(SourceError::TooManyRedirects {
                    url: url.to_string(),
                    last: next.to_string(),
                });
            }
            next.set_fragment(None);
            current = next;
            redirects += 1;
            continue;
        }
        if !(200..300).contains(&status) {
            return Err(SourceError::Status {
                url: current.to_string(),
                status,
            });
        }
        return response
            .body_mut()
            .with_config()
            .limit(limits.size)
            .read_to_vec()
            .map_err(|e| match e {
                ureq::Error::BodyExceedsLimit(_) => SourceError::TooLarge {
                    url: current.to_string(),
                    limit: limits.size,
                },
                e => match fetch_error(e, current.as_str(), limits, true) {
                    // The deadline is the whole fetch's: name the URL as given.
                    SourceError::TimedOut { .. } => timed_out(true),
                    other => other,
                },
            });
    }
}

/// The error for what ureq reported fetching `url`; `answered` when the response
/// head had come. A timeout, a header over the limit and an answer that is not HTTP
/// get their own message; the rest says what ureq says ([`fetch_reason`]).
fn fetch_error(e: ureq::Error, url: &str, limits: &Limits, answered: bool) -> SourceError {
    let timed_out = || SourceError::TimedOut {
        url: url.to_string(),
        after: limits.overall,
        answered,
    };
    match e {
        ureq::Error::Timeout(ureq::Timeout::Connect) => SourceError::Fetch {
            url: url.to_string(),
            source: e,
        },
        ureq::Error::Timeout(_) => timed_out(),
        ureq::Error::Io(ref io) if io.kind() == io::ErrorKind::TimedOut => timed_out(),
        ureq::Error::LargeResponseHeader(_, limit) => SourceError::HeaderTooLarge {
            url: url.to_string(),
            limit,
        },
        ureq::Error::Protocol(p) => {
            // ureq's protocol errors are not public types: tell them by their text.
            let text = one_line(&p.to_string());
            let reason = if text.contains("too many headers") {
                return SourceError::HeaderTooMany {
                    url: url.to_string(),
                };
            } else if text.contains("invalid HTTP version")
                || text.contains("invalid response status")
            {
                "it does not start with an HTTP status line".to_string()
            } else {
                text
            };
            SourceError::NotHttp {
                url: url.to_string(),
                reason,
            }
        }
        source => SourceError::Fetch {
            url: url.to_string(),
            source,
        },
    }
}

/// `reference` (a `Location`) resolved against `base`, the URL that answered with it
/// (RFC 3986, section 5.2, by the url crate); `reference` as given when it cannot be
/// resolved, for the caller's parse to refuse.
fn resolve(base: &str, reference: &str) -> String {
    Url::parse(base)
        .and_then(|base| base.join(reference))
        .map_or_else(|_| reference.to_string(), String::from)
}

/// A readable reason for a failed request; a certificate that fails verification is
/// called that, with OpenSSL's verification result.
fn fetch_reason(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Io(e) => e.to_string(),
        ureq::Error::Timeout(ureq::Timeout::Connect) => {
            format!("cannot connect within {} s", CONNECT_TIMEOUT.as_secs())
        }
        ureq::Error::Timeout(which) => format!("timed out ({which} timeout)"),
        e => {
            let text = e.to_string();
            if !text.contains("certificate verify failed") {
                return text;
            }
            // native-tls appends the verification result in parentheses.
            match text.rfind(" (").filter(|_| text.ends_with(')')) {
                Some(i) => format!(
                    "TLS certificate verification failed: {}",
                    &text[i + 2..text.len() - 1]
                ),
                None => format!("TLS certificate verification failed ({text})"),
            }
        }
    }
}

/// Keeps a message on one line.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};
    use std::thread::{self, JoinHandle};

    /// How long a test server waits for connections before it ends by itself.
    const SERVER_LIFETIME: Duration = Duration::from_secs(20);

    /// The limits of the tests: a smaller size (the servers need not send 64 MiB) and
    /// an overall timeout that a loaded machine does not reach.
    const TEST_LIMITS: Limits = Limits {
        size: 1024 * 1024,
        connect: Duration::from_secs(5),
        overall: Duration::from_secs(15),
    };

    /// Fetches `url` as [`load`] does, but never through a proxy from the environment,
    /// and with `limits`.
    fn get_with(url: &str, limits: &Limits) -> Result<Vec<u8>, SourceError> {
        fetch(&agent(None, limits), url, limits)
    }

    fn get(url: &str) -> Result<Vec<u8>, SourceError> {
        get_with(url, &TEST_LIMITS)
    }

    /// Accepts one connection on a non-blocking listener, or `None` once `deadline` passes.
    fn accept_until(listener: &TcpListener, deadline: Instant) -> Option<TcpStream> {
        while Instant::now() < deadline {
            match listener.accept() {
                Ok((stream, _)) => {
                    stream.set_nonblocking(false).ok()?;
                    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
                    stream
                        .set_write_timeout(Some(Duration::from_secs(5)))
                        .ok()?;
                    return Some(stream);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    thread::sleep(Duration::from_millis(5));
                }
                Err(_) => return None,
            }
        }
        None
    }

    /// Binds a loopback listener on a port chosen by the OS.
    fn listen() -> (TcpListener, u16) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        (listener, port)
    }

    /// An answer of the test server: status, extra headers, body.
    pub(crate) type Reply = (u16, Vec<(&'static str, String)>, Vec<u8>);

    /// Serves `connections` HTTP/1.1 requests (one per connection) with `route`, then
    /// ends; it also ends after [`SERVER_LIFETIME`]. Joining gives the paths requested.
    pub(crate) fn serve(
        connections: usize,
        route: fn(&str) -> Reply,
    ) -> (u16, JoinHandle<Vec<String>>) {
        let (listener, port) = listen();
        let handle = thread::spawn(move || {
            let deadline = Instant::now() + SERVER_LIFETIME;
            let mut paths = Vec::new();
            while paths.len() < connections {
                let Some(mut stream) = accept_until(&listener, deadline) else {
                    break;
                };
                let Some(path) = read_request_path(&mut stream) else {
                    continue;
                };
                let (status, headers, body) = route(&path);
                let mut head = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                    body.len()
                );
                for (name, value) in headers {
                    head.push_str(&format!("{name}: {value}\r\n"));
                }
                head.push_str("\r\n");
                // The client may hang up early (body too large): that is fine.
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&body);
                paths.push(path);
            }
            paths
        });
        (port, handle)
    }

    /// Reads a request head and returns the path of its request line.
    fn read_request_path(stream: &mut TcpStream) -> Option<String> {
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).ok()?;
            if n == 0 || head.len() > 64 * 1024 {
                return None;
            }
            head.extend_from_slice(&buf[..n]);
        }
        let head = String::from_utf8(head).ok()?;
        Some(head.split(' ').nth(1)?.to_string())
    }

    fn ok(body: &str) -> Reply {
        (200, Vec::new(), body.as_bytes().to_vec())
    }

    fn redirect(location: &str) -> Reply {
        (302, vec![("Location", location.to_string())], Vec::new())
    }

    fn routes(path: &str) -> Reply {
        match path {
            "/relay.cfg" => ok("id = tcprelay { }\n"),
            "/moved" => redirect("/relay.cfg"),
            "/dir/moved" => redirect("../relay.cfg"),
            "/to-file" => redirect("file:///etc/passwd"),
            "/loop" => redirect("/loop"),
            "/no-location" => (302, Vec::new(), Vec::new()),
            "/bad-location" => redirect("http://[::1/relay.cfg"),
            "/latin1" => (200, Vec::new(), b"# caf\xe9\n".to_vec()),
            "/huge" => (200, Vec::new(), vec![b'#'; TEST_LIMITS.size as usize + 1]),
            _ => (404, Vec::new(), b"not here".to_vec()),
        }
    }

    #[test]
    fn http_200_gives_the_body() {
        let (port, server) = serve(1, routes);
        let url = format!("http://127.0.0.1:{port}/relay.cfg");
        let body = get(&url).unwrap();
        assert_eq!(body, b"id = tcprelay { }\n");
        assert_eq!(server.join().unwrap(), ["/relay.cfg"]);
    }

    #[test]
    fn http_404_names_url_and_status() {
        let (port, server) = serve(1, routes);
        let url = format!("http://127.0.0.1:{port}/missing.cfg");
        let err = get(&url).unwrap_err();
        assert!(
            matches!(err, SourceError::Status { status: 404, .. }),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(text.contains(&url) && text.contains("404"), "{text}");
        server.join().unwrap();
    }

    #[test]
    fn http_redirect_on_the_same_server_is_followed() {
        let (port, server) = serve(2, routes);
        let url = format!("http://127.0.0.1:{port}/moved");
        assert_eq!(get(&url).unwrap(), b"id = tcprelay { }\n");
        assert_eq!(server.join().unwrap(), ["/moved", "/relay.cfg"]);
    }

    #[test]
    fn http_relative_redirect_is_resolved() {
        let (port, server) = serve(2, routes);
        let url = format!("http://127.0.0.1:{port}/dir/moved");
        assert_eq!(get(&url).unwrap(), b"id = tcprelay { }\n");
        assert_eq!(server.join().unwrap(), ["/dir/moved", "/relay.cfg"]);
    }

    #[test]
    fn http_redirect_to_file_url_is_refused() {
        let (port, server) = serve(1, routes);
        let url = format!("http://127.0.0.1:{port}/to-file");
        let err = get(&url).unwrap_err();
        assert!(
            matches!(err, SourceError::CrossSchemeRedirect { .. }),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains(&url) && text.contains("file:///etc/passwd"),
            "{text}"
        );
        server.join().unwrap();
    }

    #[test]
    fn http_redirect_loop_stops_after_five() {
        let (port, server) = serve(MAX_REDIRECTS + 1, routes);
        let url = format!("http://127.0.0.1:{port}/loop");
        let err = get(&url).unwrap_err();
        assert!(
            matches!(err, SourceError::TooManyRedirects { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains(&url), "{err}");
        assert_eq!(server.join().unwrap().len(), MAX_REDIRECTS + 1);
    }

    #[test]
    fn http_redirect_without_location_is_an_error() {
        let (port, server) = serve(1, routes);
        let url = format!("http://127.0.0.1:{port}/no-location");
        let err = get(&url).unwrap_err();
        assert!(matches!(err, SourceError::BadRedirect { .. }), "{err:?}");
        assert!(err.to_string().contains(&url), "{err}");
        server.join().unwrap();
    }

    #[test]
    fn http_redirect_to_an_invalid_url_is_an_error() {
        let (port, server) = serve(1, routes);
        let url = format!("http://127.0.0.1:{port}/bad-location");
        let err = get(&url).unwrap_err();
        assert!(matches!(err, SourceError::BadRedirect { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "cannot follow the redirect (302) from {url}: \
                 the Location `http://[::1/relay.cfg` is not a valid URL"
            )
        );
        server.join().unwrap();
    }

    #[test]
    fn http_url_that_does_not_parse_is_refused() {
        let url = "http://[::1/relay.cfg";
        let err = get(url).unwrap_err();
        assert!(matches!(err, SourceError::BadUrl { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!("invalid URL {url}: invalid IPv6 address")
        );
    }

    #[test]
    fn http_body_over_the_limit_is_refused() {
        let (port, server) = serve(1, routes);
        let url = format!("http://127.0.0.1:{port}/huge");
        let err = get(&url).unwrap_err();
        assert!(matches!(err, SourceError::TooLarge { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!("cannot fetch {url}: the configuration is larger than 1 MiB, the limit")
        );
        server.join().unwrap();
    }

    /// Serves one connection: reads the request, then lets `answer` write what it
    /// will (it may stop when a write fails: the client has hung up). Ends after
    /// [`SERVER_LIFETIME`] when nobody connects.
    fn serve_raw(answer: fn(&mut TcpStream)) -> (u16, JoinHandle<()>) {
        let (listener, port) = listen();
        let handle = thread::spawn(move || {
            let Some(mut stream) = accept_until(&listener, Instant::now() + SERVER_LIFETIME) else {
                return;
            };
            if read_request_path(&mut stream).is_some() {
                answer(&mut stream);
            }
        });
        (port, handle)
    }

    /// Writes `chunk` over and over, up to `total` bytes or until the client hangs up.
    fn stream_out(stream: &mut TcpStream, chunk: &[u8], total: usize) {
        let mut sent = 0;
        while sent < total && stream.write_all(chunk).is_ok() {
            sent += chunk.len();
        }
    }

    #[test]
    fn a_huge_response_header_is_refused_naming_the_limit() {
        // 100 MB of header: one endless field, many fields, or no status line at all.
        let answers: [fn(&mut TcpStream); 3] = [
            |s| {
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nX-Big: ");
                stream_out(s, &[b'a'; 64 * 1024], 100 << 20);
            },
            |s| {
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\n");
                stream_out(s, b"X-Field: value\r\n", 100 << 20);
            },
            |s| stream_out(s, &[b'a'; 64 * 1024], 100 << 20),
        ];
        for (i, answer) in answers.into_iter().enumerate() {
            let (port, server) = serve_raw(answer);
            let url = format!("http://127.0.0.1:{port}/relay.cfg");
            let err = get(&url).unwrap_err();
            let text = err.to_string();
            match i {
                0 => assert_eq!(
                    text,
                    format!("cannot fetch {url}: the response header is larger than 64 KiB, the limit")
                ),
                1 => assert_eq!(
                    text,
                    format!("cannot fetch {url}: the response header has too many fields")
                ),
                _ => assert_eq!(
                    text,
                    format!("cannot fetch {url}: the server's answer is not HTTP (it does not start with an HTTP status line)")
                ),
            }
            server.join().unwrap();
        }
    }

    #[test]
    fn a_server_that_does_not_answer_times_out_with_a_message_saying_so() {
        let limits = Limits {
            overall: Duration::from_millis(500),
            ..TEST_LIMITS
        };
        // Accepts and reads the request, then says nothing for longer than the limit.
        let (port, server) = serve_raw(|_| thread::sleep(Duration::from_secs(2)));
        let url = format!("http://127.0.0.1:{port}/relay.cfg");
        let started = Instant::now();
        let err = get_with(&url, &limits).unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(
            err.to_string(),
            format!("cannot fetch {url}: no answer within 0.5 s")
        );
        server.join().unwrap();

        // Answers, then stops in the middle of the body.
        let (port, server) = serve_raw(|s| {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nid = ");
            thread::sleep(Duration::from_secs(2));
        });
        let url = format!("http://127.0.0.1:{port}/relay.cfg");
        let err = get_with(&url, &limits).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "cannot fetch {url}: the server answered but did not send the whole \
                 configuration within 0.5 s"
            )
        );
        server.join().unwrap();
    }

    #[test]
    fn http_body_must_be_utf8() {
        let (port, server) = serve(1, routes);
        let url = format!("http://127.0.0.1:{port}/latin1");
        let body = get(&url).unwrap();
        let err = text(&url, body).unwrap_err();
        assert!(
            matches!(err, SourceError::NotUtf8 { offset: 5, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains(&url), "{err}");
        server.join().unwrap();
    }

    #[test]
    fn refused_connection_names_the_url() {
        // Bind and drop, so that nothing listens on the port.
        let port = listen().1;
        let url = format!("http://127.0.0.1:{port}/relay.cfg");
        let err = get(&url).unwrap_err();
        assert!(matches!(err, SourceError::Fetch { .. }), "{err:?}");
        assert!(err.to_string().contains(&url), "{err}");
    }

    #[test]
    fn https_with_an_untrusted_certificate_is_refused() {
        use crate::tlscheck::test_pki;
        use openssl::ssl::{SslAcceptor, SslMethod};

        let key = test_pki::ec_key();
        let cert = test_pki::self_signed(&key);
        let mut acceptor = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).unwrap();
        acceptor.set_private_key(&key).unwrap();
        acceptor.set_certificate(&cert).unwrap();
        let acceptor = acceptor.build();
        let (listener, port) = listen();
        let server = thread::spawn(move || {
            let stream = accept_until(&listener, Instant::now() + SERVER_LIFETIME)?;
            // The client aborts the handshake; should it not, answer with a configuration.
            let mut tls = acceptor.accept(stream).ok()?;
            let _ = tls.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
            Some(())
        });
        let url = format!("https://127.0.0.1:{port}/");
        let err = get(&url).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, SourceError::Fetch { .. }), "{err:?}");
        assert!(text.contains(&url), "{text}");
        assert!(text.contains("certificate verification failed"), "{text}");
        assert!(!text.contains('\n'), "{text}");
        assert_eq!(server.join().unwrap(), None, "the handshake must fail");
    }

    /// Loads `spec` with the test limits in a thread, failing the test (instead of
    /// hanging it) when that takes more than 5 s.
    fn load_within_5_s(spec: &str) -> Result<Source, SourceError> {
        let spec = spec.to_string();
        let (tx, rx) = std::sync::mpsc::channel();
        thread::spawn(move || {
            let _ = tx.send(load_with(&spec, &TEST_LIMITS));
        });
        rx.recv_timeout(Duration::from_secs(5))
            .expect("the load returns within 5 s")
    }

    #[test]
    fn what_is_not_a_regular_file_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let at = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
        std::os::unix::fs::symlink("/dev/zero", at("zero.cfg")).unwrap();
        std::os::unix::fs::symlink("/dev/urandom", at("random.cfg")).unwrap();
        std::fs::create_dir(at("dir.cfg")).unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(at("fifo.cfg"))
            .status()
            .unwrap();
        assert!(made.success());
        for (spec, kind) in [
            (
                at("zero.cfg"),
                "a character device (such as /dev/zero or /dev/urandom)",
            ),
            (
                format!("file://{}", at("random.cfg")),
                "a character device (such as /dev/zero or /dev/urandom)",
            ),
            (at("dir.cfg"), "a directory"),
            // No writer: opening it for reading would wait for one.
            (at("fifo.cfg"), "a FIFO"),
        ] {
            let err = load_within_5_s(&spec).unwrap_err();
            assert!(
                matches!(err, SourceError::NotRegular { .. }),
                "{spec}: {err:?}"
            );
            let mut want = format!("cannot read {spec}: it is {kind}, not a regular file");
            if kind == "a FIFO" {
                want.push_str(" (to read from a pipe, give `-` and feed it to standard input)");
            }
            assert_eq!(err.to_string(), want);
        }
    }

    #[test]
    fn files_and_standard_input_over_the_limit_are_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.cfg");
        let limit = TEST_LIMITS.size as usize;
        std::fs::write(&path, vec![b'#'; limit + 1]).unwrap();
        let path = path.to_str().unwrap();
        for spec in [path.to_string(), format!("file://{path}")] {
            let err = load_within_5_s(&spec).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "cannot read {spec}: it is larger than 1 MiB, the limit for a configuration"
                )
            );
        }
        // Standard input has no size to look at: at most one byte more is read.
        let mut input = io::Cursor::new(vec![b'#'; 10 * limit]);
        let err = read_capped(&mut input, "<stdin>", limit as u64).unwrap_err();
        assert!(matches!(err, SourceError::FileTooLarge { .. }), "{err:?}");
        assert_eq!(input.position(), limit as u64 + 1);
        let exact = read_capped(io::Cursor::new(vec![b'#'; limit]), "<stdin>", limit as u64);
        assert_eq!(exact.unwrap().len(), limit);
        assert_eq!(MAX_SIZE, 64 * 1024 * 1024);
    }

    #[test]
    fn path_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.cfg");
        std::fs::write(&path, "id = spawnd { }\n").unwrap();
        let path = path.to_str().unwrap();
        let source = load(path).unwrap();
        assert_eq!(source.name, path);
        assert_eq!(source.text, "id = spawnd { }\n");
    }

    #[test]
    fn file_urls_are_read_and_percent_decoded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("my relay%.cfg");
        std::fs::write(&path, "\u{feff}# with a byte-order mark\n").unwrap();
        let dir = dir.path().to_str().unwrap();
        for url in [
            format!("file://{dir}/my%20relay%25.cfg"),
            format!("file:{dir}/my%20relay%25.cfg"),
            format!("FILE://localhost{dir}/my%20relay%25.cfg#fragment"),
        ] {
            let source = load(&url).unwrap();
            assert_eq!(source.name, url);
            assert_eq!(source.text, "# with a byte-order mark\n");
        }
    }

    #[test]
    fn bad_file_urls_are_refused() {
        for url in [
            "file://example.com/etc/relay.cfg",
            "file:relay.cfg",
            "file:///a%2",
            "file:///a%zz",
        ] {
            let err = load(url).unwrap_err();
            assert!(matches!(err, SourceError::BadUrl { .. }), "{url}: {err:?}");
            assert!(err.to_string().contains(url), "{err}");
        }
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = load("/nonexistent/dir/relay.cfg").unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot read /nonexistent/dir/relay.cfg: No such file or directory (os error 2)"
        );
        let err = load("file:///nonexistent/dir/relay.cfg").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot read file:///nonexistent/dir/relay.cfg: "),
            "{err}"
        );
    }

    #[test]
    fn non_utf8_file_names_path_and_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("latin1.cfg");
        std::fs::write(&path, b"# ok\n# caf\xe9\n").unwrap();
        let path = path.to_str().unwrap();
        let err = load(path).unwrap_err();
        assert!(
            matches!(
                err,
                SourceError::NotUtf8 {
                    offset: 10,
                    line: 2,
                    byte: Some(0xE9),
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!("{path} is not UTF-8 text: invalid byte 0xE9 at byte offset 10 (line 2)")
        );
    }

    #[test]
    fn unknown_scheme_is_refused() {
        let err = load("ftp://example.com/relay.cfg").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unsupported URL scheme `ftp` in ftp://example.com/relay.cfg; \
             use a path, `-`, file://, http:// or https://"
        );
    }

    #[test]
    fn specs_are_classified() {
        assert_eq!(classify("-"), Spec::Stdin);
        assert_eq!(classify("relay.cfg"), Spec::Path);
        assert_eq!(classify("./a:b.cfg"), Spec::Path);
        assert_eq!(classify("a:b.cfg"), Spec::Path);
        assert_eq!(classify("file:/x"), Spec::FileUrl);
        assert_eq!(classify("HTTPS://x/"), Spec::Http);
        assert_eq!(classify("gopher://x/"), Spec::Unsupported("gopher"));
    }

    #[test]
    fn locations_are_resolved() {
        let base = "http://h:8/a/b/c?q=1";
        for (reference, expected) in [
            ("https://x/y", "https://x/y"),
            ("file:///etc/passwd", "file:///etc/passwd"),
            ("//other/p", "http://other/p"),
            ("/p?r", "http://h:8/p?r"),
            ("d", "http://h:8/a/b/d"),
            ("./d/", "http://h:8/a/b/d/"),
            ("../d", "http://h:8/a/d"),
            ("../../../../d", "http://h:8/d"),
            ("..", "http://h:8/a/"),
            ("?s", "http://h:8/a/b/c?s"),
            ("", "http://h:8/a/b/c?q=1"),
        ] {
            assert_eq!(resolve(base, reference), expected, "{reference}");
        }
        assert_eq!(resolve("http://h:8", "x"), "http://h:8/x");
        assert_eq!(resolve("http://h:8?q", "x"), "http://h:8/x");
    }
}
