//! The PROXY protocol, versions 1 (a text line) and 2 (binary), as HAProxy's
//! specification (`doc/proxy-protocol.txt`) defines it: [`parse`] reads a header a
//! peer sent before its own bytes, [`write`] makes the header sent to a remote.
//!
//! Both are pure (no I/O): the worker peeks at what a client sent, asks [`parse`]
//! whether a whole header is there, and consumes exactly [`Parsed::consumed`]
//! bytes; on a connect to a remote with `send proxy` it writes what [`write`]
//! returns. The parser is strict: anything that does not match the specification
//! exactly is an [`Error`] (the connection is closed, never relayed).

mod parse;
mod write;

#[cfg(test)]
mod tests;

pub use parse::{crc32c, parse, parse_accepting, Error, Failure, Parsed};
pub use write::{ssl_tlv, write};

use std::net::SocketAddr;

/// The twelve bytes every version 2 header starts with.
pub const SIGNATURE_V2: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The longest version 1 line, CRLF included (the specification's worst case:
/// `PROXY UNKNOWN` with two full IPv6 addresses and ports).
pub const MAX_V1: usize = 107;

/// The longest version 2 header accepted or written, the 16 fixed bytes included.
/// The format allows 16 + 65,535 bytes; the addresses take at most 216 and the
/// TLVs a relay sends are a few hundred (HAProxy's client certificate TLV can be
/// a few KiB), so 4 KiB bounds what a peer can make a worker wait for and hold.
pub const MAX_V2: usize = 4096;

/// Version 2 TLV types used here (the specification's `PP2_TYPE_*`).
pub mod tlv {
    pub const ALPN: u8 = 0x01;
    /// The host name the client asked for (its TLS SNI).
    pub const AUTHORITY: u8 = 0x02;
    pub const CRC32C: u8 = 0x03;
    pub const NOOP: u8 = 0x04;
    /// The client's TLS connection: a flags byte, a 32-bit verify result, then
    /// sub-TLVs.
    pub const SSL: u8 = 0x20;
    pub const SSL_VERSION: u8 = 0x21;
    pub const SSL_CIPHER: u8 = 0x23;
    /// `PP2_CLIENT_SSL`: the client connected over TLS.
    pub const CLIENT_SSL: u8 = 0x01;
}

/// A protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// What a header says about the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addresses {
    /// Version 2 `LOCAL`: the sender opened the connection itself (a health
    /// check); the real endpoints apply.
    Local,
    /// Version 1 `UNKNOWN`, or version 2 `PROXY` with an unspecified (or a
    /// datagram) family or protocol: the sender could not say; the real endpoints
    /// apply.
    Unknown,
    /// TCP over IPv4 or IPv6: the client's address and the one it connected to.
    Inet {
        source: SocketAddr,
        destination: SocketAddr,
    },
    /// A Unix stream (version 2 only): the two 108-byte `sun_path` fields.
    Unix {
        source: Box<[u8; 108]>,
        destination: Box<[u8; 108]>,
    },
}

/// One version 2 type-length-value field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlv {
    pub kind: u8,
    pub value: Vec<u8>,
}

/// A whole header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub version: Version,
    pub addresses: Addresses,
    /// Version 2 `PROXY` headers with an address block only (empty otherwise).
    pub tlvs: Vec<Tlv>,
}

impl Header {
    /// The client address the header carries, when it carries an IP one.
    pub fn source(&self) -> Option<SocketAddr> {
        match &self.addresses {
            Addresses::Inet { source, .. } => Some(*source),
            _ => None,
        }
    }

    /// The address the client connected to, when the header carries an IP one.
    pub fn destination(&self) -> Option<SocketAddr> {
        match &self.addresses {
            Addresses::Inet { destination, .. } => Some(*destination),
            _ => None,
        }
    }

    /// The value of the first TLV of type `kind`.
    pub fn tlv(&self, kind: u8) -> Option<&[u8]> {
        self.tlvs
            .iter()
            .find(|t| t.kind == kind)
            .map(|t| t.value.as_slice())
    }
}
