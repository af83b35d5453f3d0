//! Reading a header: strict, pure, no I/O. [`parse`] takes the bytes a client has
//! sent so far and says whether they begin with a whole header
//! ([`Parsed`]), need more ([`Failure::Incomplete`]) or can never be one
//! ([`Failure::Invalid`]). A verdict is given as early as the bytes allow: a
//! wrong first byte, a version 2 header announcing more than [`MAX_V2`] bytes
//! or an unsupported version are refused without waiting for the rest.

use super::{tlv, Addresses, Header, Tlv, Version, MAX_V1, MAX_V2, SIGNATURE_V2};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use tcprelay_plan::ProxyAccept;

/// The start of every version 1 line.
const PREFIX_V1: &[u8] = b"PROXY ";

/// A whole header at the start of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// Its length in bytes: what to consume before the client's own bytes.
    pub consumed: usize,
    pub header: Header,
}

/// Why [`parse`] returned no header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// A prefix of a valid header: wait for more bytes.
    Incomplete,
    /// Never a valid header, whatever follows.
    Invalid(Error),
}

/// What is wrong with a header, in an operator's words ([`Error::name`] is the
/// short form for log fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The first bytes are neither `PROXY ` nor the version 2 signature.
    BadSignature,
    /// A version the listener does not accept (`accept proxy = v1` or `v2`).
    VersionNotAccepted(Version),
    /// A version 2 header whose version nibble is not 2.
    UnsupportedVersion(u8),
    /// A version 2 command other than LOCAL (0) and PROXY (1).
    UnsupportedCommand(u8),
    /// A version 2 address family other than 0 to 3.
    UnsupportedFamily(u8),
    /// A version 2 transport protocol other than 0 to 2.
    UnsupportedProtocol(u8),
    /// A version 2 header longer than [`MAX_V2`] bytes (its announced length).
    Oversized(usize),
    /// A version 1 line whose CRLF is not within its first [`MAX_V1`] bytes.
    NoCrlf,
    /// A version 1 line ended by a CR or an LF alone.
    BadLineEnd,
    /// A version 1 line with a character that is not printable US-ASCII.
    BadCharacter,
    /// A version 1 protocol other than TCP4, TCP6 and UNKNOWN.
    UnknownProtocol,
    /// A version 1 line without exactly four fields after the protocol, each
    /// after exactly one space.
    BadFields,
    /// An address not in the canonical form of its family.
    BadAddress,
    /// A port that is not a decimal number from 0 to 65535 without leading zero.
    BadPort,
    /// A version 2 address block shorter than its family needs.
    ShortAddresses { family: &'static str, length: usize },
    /// A version 2 TLV that runs past the end of the header.
    BadTlv,
    /// A version 2 CRC32C TLV that does not match the header.
    BadChecksum,
    /// The client closed its connection after this many bytes, before a whole
    /// header (reported by the worker).
    Truncated(usize),
}

impl Error {
    /// A short name for log fields and tests.
    pub fn name(&self) -> &'static str {
        match self {
            Error::BadSignature => "bad_signature",
            Error::VersionNotAccepted(_) => "version_not_accepted",
            Error::UnsupportedVersion(_) => "unsupported_version",
            Error::UnsupportedCommand(_) => "unsupported_command",
            Error::UnsupportedFamily(_) => "unsupported_family",
            Error::UnsupportedProtocol(_) => "unsupported_protocol",
            Error::Oversized(_) => "oversized",
            Error::NoCrlf => "no_crlf",
            Error::BadLineEnd => "bad_line_end",
            Error::BadCharacter => "bad_character",
            Error::UnknownProtocol => "unknown_protocol",
            Error::BadFields => "bad_fields",
            Error::BadAddress => "bad_address",
            Error::BadPort => "bad_port",
            Error::ShortAddresses { .. } => "short_addresses",
            Error::BadTlv => "bad_tlv",
            Error::BadChecksum => "bad_checksum",
            Error::Truncated(_) => "truncated",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BadSignature => {
                f.write_str("not a PROXY protocol header (the first bytes are neither \"PROXY \" nor the version 2 signature)")
            }
            Error::VersionNotAccepted(v) => write!(
                f,
                "a version {} header, which this listener does not accept",
                match v {
                    Version::V1 => 1,
                    Version::V2 => 2,
                }
            ),
            Error::UnsupportedVersion(n) => {
                write!(f, "version 2 signature with version {n} (only 2 exists)")
            }
            Error::UnsupportedCommand(n) => {
                write!(f, "version 2 command {n} (only LOCAL 0 and PROXY 1 exist)")
            }
            Error::UnsupportedFamily(n) => {
                write!(f, "version 2 address family {n} (only 0 to 3 exist)")
            }
            Error::UnsupportedProtocol(n) => {
                write!(f, "version 2 transport protocol {n} (only 0 to 2 exist)")
            }
            Error::Oversized(n) => write!(
                f,
                "a version 2 header of {n} bytes, longer than the {MAX_V2} accepted"
            ),
            Error::NoCrlf => write!(f, "a version 1 line without CRLF within {MAX_V1} bytes"),
            Error::BadLineEnd => f.write_str("a version 1 line ended by a lone CR or LF"),
            Error::BadCharacter => {
                f.write_str("a version 1 line with a character that is not printable US-ASCII")
            }
            Error::UnknownProtocol => {
                f.write_str("a version 1 protocol other than TCP4, TCP6 and UNKNOWN")
            }
            Error::BadFields => f.write_str(
                "a version 1 line without exactly: protocol, source, destination, source port, destination port, one space apart",
            ),
            Error::BadAddress => {
                f.write_str("an address not in the canonical form of its family")
            }
            Error::BadPort => f.write_str(
                "a port that is not a decimal number from 0 to 65535 without leading zeros",
            ),
            Error::ShortAddresses { family, length } => write!(
                f,
                "a version 2 address block of {length} bytes, too short for {family}"
            ),
            Error::BadTlv => f.write_str("a version 2 TLV that runs past the end of the header"),
            Error::BadChecksum => f.write_str("a version 2 CRC32C TLV that does not match"),
            Error::Truncated(0) => f.write_str("closed before sending a PROXY header"),
            Error::Truncated(n) => {
                write!(f, "closed after {n} bytes, before a whole PROXY header")
            }
        }
    }
}

fn invalid<T>(error: Error) -> Result<T, Failure> {
    Err(Failure::Invalid(error))
}

/// Reads a header of either version at the start of `input`.
pub fn parse(input: &[u8]) -> Result<Parsed, Failure> {
    parse_accepting(input, ProxyAccept::Any)
}

/// Reads a header of a version `accept` allows at the start of `input`.
pub fn parse_accepting(input: &[u8], accept: ProxyAccept) -> Result<Parsed, Failure> {
    let Some(&first) = input.first() else {
        return Err(Failure::Incomplete);
    };
    let version = if first == PREFIX_V1[0] {
        Version::V1
    } else if first == SIGNATURE_V2[0] {
        Version::V2
    } else {
        return invalid(Error::BadSignature);
    };
    let signature: &[u8] = match version {
        Version::V1 => PREFIX_V1,
        Version::V2 => &SIGNATURE_V2,
    };
    let seen = input.len().min(signature.len());
    if input[..seen] != signature[..seen] {
        return invalid(Error::BadSignature);
    }
    let allowed = matches!(
        (accept, version),
        (ProxyAccept::Any, _) | (ProxyAccept::V1, Version::V1) | (ProxyAccept::V2, Version::V2)
    );
    if !allowed {
        return invalid(Error::VersionNotAccepted(version));
    }
    match version {
        Version::V1 => parse_v1(input),
        Version::V2 => parse_v2(input),
    }
}

/// A version 1 line (`input` starts with a prefix of `PROXY `).
fn parse_v1(input: &[u8]) -> Result<Parsed, Failure> {
    let window = &input[..input.len().min(MAX_V1)];
    let Some(end) = window.iter().position(|&b| b == b'\r' || b == b'\n') else {
        return if input.len() >= MAX_V1 {
            invalid(Error::NoCrlf)
        } else {
            Err(Failure::Incomplete)
        };
    };
    if window[end] == b'\n' {
        return invalid(Error::BadLineEnd);
    }
    match input.get(end + 1) {
        None if end + 1 >= MAX_V1 => return invalid(Error::NoCrlf),
        None => return Err(Failure::Incomplete),
        Some(b'\n') if end + 2 <= MAX_V1 => {}
        Some(b'\n') => return invalid(Error::NoCrlf),
        Some(_) => return invalid(Error::BadLineEnd),
    }
    let consumed = end + 2;
    let line = &input[..end];
    if line.len() < PREFIX_V1.len() {
        // "PROXY\r\n": the space after PROXY is missing.
        return invalid(Error::BadFields);
    }
    if line.iter().any(|&b| !(0x20..0x7f).contains(&b)) {
        return invalid(Error::BadCharacter);
    }
    let rest = &line[PREFIX_V1.len()..];
    let protocol_end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
    let addresses = match &rest[..protocol_end] {
        // Anything may follow UNKNOWN before the CRLF; it is ignored.
        b"UNKNOWN" => Addresses::Unknown,
        b"TCP4" => inet_v1(&rest[protocol_end..], false)?,
        b"TCP6" => inet_v1(&rest[protocol_end..], true)?,
        _ => return invalid(Error::UnknownProtocol),
    };
    Ok(Parsed {
        consumed,
        header: Header {
            version: Version::V1,
            addresses,
            tlvs: Vec::new(),
        },
    })
}

/// The four fields after TCP4 or TCP6 (`fields` starts with the space after it).
fn inet_v1(fields: &[u8], v6: bool) -> Result<Addresses, Failure> {
    // Printable US-ASCII was checked: the line is valid UTF-8.
    let Ok(text) = std::str::from_utf8(fields) else {
        return invalid(Error::BadCharacter);
    };
    let Some(text) = text.strip_prefix(' ') else {
        return invalid(Error::BadFields);
    };
    let parts: Vec<&str> = text.split(' ').collect();
    let [source, destination, source_port, destination_port] = parts[..] else {
        return invalid(Error::BadFields);
    };
    let address = |s: &str| -> Result<IpAddr, Failure> {
        let parsed = if v6 {
            ipv6(s).map(IpAddr::V6)
        } else {
            ipv4(s).map(IpAddr::V4)
        };
        parsed.ok_or(Failure::Invalid(Error::BadAddress))
    };
    let port = |s: &str| port(s).ok_or(Failure::Invalid(Error::BadPort));
    Ok(Addresses::Inet {
        source: SocketAddr::new(address(source)?, port(source_port)?),
        destination: SocketAddr::new(address(destination)?, port(destination_port)?),
    })
}

/// A decimal number of at most `digits` digits without leading zero.
fn decimal(s: &str, digits: usize) -> Option<u32> {
    let ok = !s.is_empty()
        && s.len() <= digits
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s == "0" || !s.starts_with('0'));
    ok.then(|| s.parse().ok()).flatten()
}

fn port(s: &str) -> Option<u16> {
    decimal(s, 5).and_then(|n| u16::try_from(n).ok())
}

/// Four decimal numbers from 0 to 255, one dot apart, without leading zeros.
fn ipv4(s: &str) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut parts = s.split('.');
    for octet in &mut octets {
        *octet = u8::try_from(decimal(parts.next()?, 3)?).ok()?;
    }
    parts.next().is_none().then_some(Ipv4Addr::from(octets))
}

/// Groups of up to four hexadecimal digits separated by colons, with at most
/// one `::` (no embedded IPv4 form, no zone).
fn ipv6(s: &str) -> Option<Ipv6Addr> {
    if s.len() > 39 || !s.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
        return None;
    }
    // The standard parser holds the rest of the rules (group sizes, one `::`).
    s.parse().ok()
}

/// A version 2 header (`input` starts with a prefix of the signature).
fn parse_v2(input: &[u8]) -> Result<Parsed, Failure> {
    if let Some(&ver_cmd) = input.get(12) {
        if ver_cmd >> 4 != 2 {
            return invalid(Error::UnsupportedVersion(ver_cmd >> 4));
        }
        if ver_cmd & 0x0f > 1 {
            return invalid(Error::UnsupportedCommand(ver_cmd & 0x0f));
        }
    }
    if let Some(&family) = input.get(13) {
        if family >> 4 > 3 {
            return invalid(Error::UnsupportedFamily(family >> 4));
        }
        if family & 0x0f > 2 {
            return invalid(Error::UnsupportedProtocol(family & 0x0f));
        }
    }
    if input.len() < 16 {
        return Err(Failure::Incomplete);
    }
    let length = usize::from(u16::from_be_bytes([input[14], input[15]]));
    let consumed = 16 + length;
    if consumed > MAX_V2 {
        return invalid(Error::Oversized(consumed));
    }
    if input.len() < consumed {
        return Err(Failure::Incomplete);
    }
    let block = &input[16..consumed];
    let local = input[12] & 0x0f == 0;
    let (family, protocol) = (input[13] >> 4, input[13] & 0x0f);
    let header = |addresses, tlvs| {
        Ok(Parsed {
            consumed,
            header: Header {
                version: Version::V2,
                addresses,
                tlvs,
            },
        })
    };
    if local {
        // The family and whatever the block holds are ignored.
        return header(Addresses::Local, Vec::new());
    }
    // The stream protocols are carried; an unspecified family or protocol, or a
    // datagram one (a stream relay has none), falls back to the real endpoints,
    // as the specification allows; its block is skipped.
    if protocol != 1 || family == 0 {
        return header(Addresses::Unknown, Vec::new());
    }
    let (name, needed) = match family {
        1 => ("IPv4 (12 bytes)", 12),
        2 => ("IPv6 (36 bytes)", 36),
        _ => ("a Unix socket (216 bytes)", 216),
    };
    if block.len() < needed {
        return invalid(Error::ShortAddresses {
            family: name,
            length: block.len(),
        });
    }
    let addresses = match family {
        1 => {
            let ip =
                |at: usize| IpAddr::from([block[at], block[at + 1], block[at + 2], block[at + 3]]);
            Addresses::Inet {
                source: SocketAddr::new(ip(0), u16::from_be_bytes([block[8], block[9]])),
                destination: SocketAddr::new(ip(4), u16::from_be_bytes([block[10], block[11]])),
            }
        }
        2 => {
            let ip = |at: usize| {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&block[at..at + 16]);
                IpAddr::from(octets)
            };
            Addresses::Inet {
                source: SocketAddr::new(ip(0), u16::from_be_bytes([block[32], block[33]])),
                destination: SocketAddr::new(ip(16), u16::from_be_bytes([block[34], block[35]])),
            }
        }
        _ => {
            let path = |at: usize| {
                let mut path = Box::new([0u8; 108]);
                path.copy_from_slice(&block[at..at + 108]);
                path
            };
            Addresses::Unix {
                source: path(0),
                destination: path(108),
            }
        }
    };
    let tlvs = tlvs(&block[needed..])?;
    if let Some(tlv) = tlvs.iter().find(|t| t.kind == tlv::CRC32C) {
        check_crc(&input[..consumed], &tlv.value)?;
    }
    header(addresses, tlvs)
}

/// The TLVs after the addresses: each a type, a 16-bit length and that many bytes.
fn tlvs(mut bytes: &[u8]) -> Result<Vec<Tlv>, Failure> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let [kind, hi, lo, ..] = *bytes else {
            return invalid(Error::BadTlv);
        };
        let length = usize::from(u16::from_be_bytes([hi, lo]));
        let Some(value) = bytes.get(3..3 + length) else {
            return invalid(Error::BadTlv);
        };
        out.push(Tlv {
            kind,
            value: value.to_vec(),
        });
        bytes = &bytes[3 + length..];
    }
    Ok(out)
}

/// The CRC32C TLV's value against the header's checksum computed with that value
/// zeroed (the specification's procedure).
fn check_crc(header: &[u8], value: &[u8]) -> Result<(), Failure> {
    let Ok(expected) = <[u8; 4]>::try_from(value) else {
        return invalid(Error::BadTlv);
    };
    // The value's place in the header: the same bytes, found as the TLV's.
    let mut copy = header.to_vec();
    let mut at = 16
        + match header[13] >> 4 {
            1 => 12,
            2 => 36,
            _ => 216,
        };
    while at + 3 <= copy.len() {
        let length = usize::from(u16::from_be_bytes([copy[at + 1], copy[at + 2]]));
        if copy[at] == tlv::CRC32C {
            copy[at + 3..at + 3 + length].fill(0);
            break;
        }
        at += 3 + length;
    }
    if crc32c(&copy) == u32::from_be_bytes(expected) {
        Ok(())
    } else {
        invalid(Error::BadChecksum)
    }
}

/// CRC-32C (Castagnoli), as RFC 4960 appendix B computes it, bit by bit: headers
/// are a few hundred bytes at most and checked once per connection.
pub fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
