//! Reading a ClientHello's server name: strict, pure, no I/O. [`parse`] takes the
//! bytes a client has sent so far and says whether they hold a whole ClientHello
//! (and its `server_name`, if any), need more ([`Failure::Incomplete`]), are not
//! TLS at all ([`Failure::NotTls`]) or can never be a ClientHello
//! ([`Failure::Invalid`]).
//!
//! The bytes are TLS records (RFC 8446 5.1): a type (22, handshake), a version
//! (3.x), a length (at most 2^14) and that many bytes. The handshake message is the
//! concatenation of the records' bodies, so a ClientHello may span records (one
//! over 16 KiB must) and each record may arrive in any number of TCP segments. The
//! message: type 1, a 24-bit length, then the ClientHello (RFC 8446 4.1.2), whose
//! fields are skipped by their lengths up to the extensions, where extension 0
//! (`server_name`, RFC 6066 3) gives the first `host_name`.
//!
//! Bounds: the records that carry the ClientHello, headers included, may take at
//! most [`MAX_HELLO`] bytes; a larger one is refused as soon as its announced
//! length shows it, so a worker never peeks more than that.

use std::fmt;

/// The most bytes (records with their headers) a ClientHello may take: 64 KiB.
/// Browsers send 0.5 to 2 KiB, post-quantum key shares a few KiB more; a
/// ClientHello over 16 KiB needs several records and is accepted up to this.
pub const MAX_HELLO: usize = 64 * 1024;

/// The largest record body TLS allows (2^14 bytes).
const MAX_RECORD: usize = 1 << 14;
/// A record's header: type, version, length.
const RECORD_HEADER: usize = 5;
/// The handshake record type.
const HANDSHAKE: u8 = 22;
/// The ClientHello handshake message type.
const CLIENT_HELLO: u8 = 1;
/// A handshake message's header: type and 24-bit length.
const MESSAGE_HEADER: usize = 4;
/// The longest DNS name (RFC 1035 text form without the final dot).
const MAX_NAME: usize = 253;

/// A whole ClientHello at the start of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHello {
    /// The `host_name` of its `server_name` extension, lowercase, without a final
    /// dot; `None`: the client sent none.
    pub server_name: Option<String>,
    /// The bytes of the records up to the end of the ClientHello.
    pub length: usize,
}

/// Why [`parse`] returned no ClientHello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// A prefix of a valid ClientHello: wait for more bytes.
    Incomplete,
    /// The first byte is not a TLS handshake record (`tls = auto`: a plain client).
    NotTls(u8),
    /// Never a valid ClientHello, whatever follows.
    Invalid(Error),
}

/// What is wrong with a ClientHello, in an operator's words ([`Error::name`] is
/// the short form for log fields and counters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A record after the first that is not a handshake record.
    RecordType(u8),
    /// A record whose major version is not 3.
    RecordVersion(u8, u8),
    /// A record body longer than 2^14 bytes.
    RecordTooLong(usize),
    /// A record with no body.
    EmptyRecord,
    /// A first handshake message that is not a ClientHello.
    NotClientHello(u8),
    /// A ClientHello whose records would take more than [`MAX_HELLO`] bytes.
    TooLarge(usize),
    /// A field that runs past the end of the ClientHello, or bytes left over.
    Malformed(&'static str),
    /// A `host_name` that is not a DNS name.
    BadServerName,
    /// The client closed its connection after this many bytes, before a whole
    /// ClientHello (reported by the worker).
    Truncated(usize),
}

impl Error {
    /// A short name for log fields and tests.
    pub fn name(&self) -> &'static str {
        match self {
            Error::RecordType(_) => "record_type",
            Error::RecordVersion(..) => "record_version",
            Error::RecordTooLong(_) => "record_too_long",
            Error::EmptyRecord => "empty_record",
            Error::NotClientHello(_) => "not_client_hello",
            Error::TooLarge(_) => "too_large",
            Error::Malformed(_) => "malformed",
            Error::BadServerName => "bad_server_name",
            Error::Truncated(_) => "truncated",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::RecordType(t) => write!(
                f,
                "a record of type {t} before the ClientHello was complete (handshake records only)"
            ),
            Error::RecordVersion(major, minor) => {
                write!(
                    f,
                    "a record of version {major}.{minor} (TLS records are 3.x)"
                )
            }
            Error::RecordTooLong(n) => {
                write!(f, "a record of {n} bytes (TLS allows at most {MAX_RECORD})")
            }
            Error::EmptyRecord => f.write_str("an empty handshake record"),
            Error::NotClientHello(t) => {
                write!(
                    f,
                    "a handshake message of type {t} instead of a ClientHello (1)"
                )
            }
            Error::TooLarge(n) => write!(
                f,
                "a ClientHello of {n} bytes (at most {MAX_HELLO} with its record headers)"
            ),
            Error::Malformed(what) => write!(f, "a malformed ClientHello: {what}"),
            Error::BadServerName => f.write_str("a server name (SNI) that is not a DNS name"),
            Error::Truncated(0) => f.write_str("closed before sending anything"),
            Error::Truncated(n) => write!(f, "closed after {n} bytes, before a whole ClientHello"),
        }
    }
}

/// Reads the ClientHello at the start of `bytes`: its server name, or why not (yet).
pub fn parse(bytes: &[u8]) -> Result<ClientHello, Failure> {
    match bytes.first() {
        None => return Err(Failure::Incomplete),
        Some(&b) if b != HANDSHAKE => return Err(Failure::NotTls(b)),
        Some(_) => {}
    }
    // The handshake message, reassembled from the records' bodies.
    let mut message: Vec<u8> = Vec::new();
    let mut at = 0;
    loop {
        let Some(header) = bytes.get(at..at + RECORD_HEADER) else {
            // Judge what there is of the header at once.
            check_partial_header(&bytes[at..])?;
            return Err(Failure::Incomplete);
        };
        check_partial_header(header)?;
        let length = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if length > MAX_RECORD {
            return Err(Failure::Invalid(Error::RecordTooLong(length)));
        }
        if length == 0 {
            return Err(Failure::Invalid(Error::EmptyRecord));
        }
        let end = at + RECORD_HEADER + length;
        let before = message.len();
        let available = &bytes[at + RECORD_HEADER..bytes.len().min(end)];
        message.extend_from_slice(available);
        if let Some(&kind) = message.first() {
            if kind != CLIENT_HELLO {
                return Err(Failure::Invalid(Error::NotClientHello(kind)));
            }
        }
        if message.len() >= MESSAGE_HEADER {
            let body = (usize::from(message[1]) << 16)
                | (usize::from(message[2]) << 8)
                | usize::from(message[3]);
            let total = MESSAGE_HEADER + body;
            // The fewest bytes its records can take from this one on: full ones.
            let rest = total.saturating_sub(before);
            let least = at + rest + rest.div_ceil(MAX_RECORD) * RECORD_HEADER;
            if least > MAX_HELLO {
                return Err(Failure::Invalid(Error::TooLarge(least)));
            }
            if message.len() >= total {
                let server_name = client_hello(&message[MESSAGE_HEADER..total])?;
                return Ok(ClientHello {
                    server_name,
                    length: end.min(bytes.len()),
                });
            }
        }
        if end > MAX_HELLO {
            return Err(Failure::Invalid(Error::TooLarge(end)));
        }
        if end > bytes.len() {
            return Err(Failure::Incomplete);
        }
        at = end;
    }
}

/// Refuses the start of a record header as soon as a byte of it is wrong.
fn check_partial_header(header: &[u8]) -> Result<(), Failure> {
    if let Some(&kind) = header.first() {
        if kind != HANDSHAKE {
            return Err(Failure::Invalid(Error::RecordType(kind)));
        }
    }
    if let Some(&major) = header.get(1) {
        if major != 3 {
            let minor = header.get(2).copied().unwrap_or(0);
            return Err(Failure::Invalid(Error::RecordVersion(major, minor)));
        }
    }
    Ok(())
}

/// A cursor over a ClientHello's body.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Failure> {
        if n > self.bytes.len() {
            return Err(Failure::Invalid(Error::Malformed(what)));
        }
        let (taken, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(taken)
    }

    fn u8(&mut self, what: &'static str) -> Result<usize, Failure> {
        Ok(usize::from(self.take(1, what)?[0]))
    }

    fn u16(&mut self, what: &'static str) -> Result<usize, Failure> {
        let b = self.take(2, what)?;
        Ok(usize::from(u16::from_be_bytes([b[0], b[1]])))
    }

    /// A vector with a one-byte length.
    fn vec8(&mut self, what: &'static str) -> Result<&'a [u8], Failure> {
        let n = self.u8(what)?;
        self.take(n, what)
    }

    /// A vector with a two-byte length.
    fn vec16(&mut self, what: &'static str) -> Result<&'a [u8], Failure> {
        let n = self.u16(what)?;
        self.take(n, what)
    }
}

/// The server name of a whole ClientHello body.
fn client_hello(body: &[u8]) -> Result<Option<String>, Failure> {
    let mut r = Reader { bytes: body };
    r.take(2, "its version")?;
    r.take(32, "its random")?;
    r.vec8("its session id")?;
    r.vec16("its cipher suites")?;
    r.vec8("its compression methods")?;
    if r.bytes.is_empty() {
        // No extensions at all (SSL 3.0 style): no server name.
        return Ok(None);
    }
    let extensions = r.vec16("its extensions")?;
    if !r.bytes.is_empty() {
        return Err(Failure::Invalid(Error::Malformed(
            "bytes after its extensions",
        )));
    }
    let mut e = Reader { bytes: extensions };
    let mut found = None;
    while !e.bytes.is_empty() {
        let kind = e.u16("an extension's type")?;
        let data = e.vec16("an extension's data")?;
        if kind == 0 && found.is_none() {
            found = Some(server_name(data)?);
        }
    }
    Ok(found.flatten())
}

/// The first `host_name` of a `server_name` extension's data.
fn server_name(data: &[u8]) -> Result<Option<String>, Failure> {
    let mut r = Reader { bytes: data };
    let list = r.vec16("the server name list")?;
    if !r.bytes.is_empty() {
        return Err(Failure::Invalid(Error::Malformed(
            "bytes after the server name list",
        )));
    }
    let mut l = Reader { bytes: list };
    let mut name = None;
    while !l.bytes.is_empty() {
        let kind = l.u8("a server name's type")?;
        let value = l.vec16("a server name")?;
        if kind == 0 && name.is_none() {
            name = Some(host_name(value)?);
        }
    }
    Ok(name)
}

/// A `host_name` as the routes compare it: lowercase, without a final dot.
fn host_name(bytes: &[u8]) -> Result<String, Failure> {
    let bytes = bytes.strip_suffix(b".").unwrap_or(bytes);
    let label_ok = |label: &[u8]| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
    };
    if bytes.is_empty() || bytes.len() > MAX_NAME || !bytes.split(|b| *b == b'.').all(label_ok) {
        return Err(Failure::Invalid(Error::BadServerName));
    }
    Ok(String::from_utf8_lossy(bytes).to_ascii_lowercase())
}
