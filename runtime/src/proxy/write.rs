//! Writing a header: the bytes sent to a remote with `send proxy`, before any byte
//! of the client.

use super::parse::{crc32c, Error};
use super::{tlv, Addresses, Header, Tlv, Version, MAX_V2, SIGNATURE_V2};
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};

/// The bytes of `header`.
///
/// Version 1 writes `TCP4`/`TCP6` lines and `PROXY UNKNOWN\r\n` for anything
/// else (a Unix client, LOCAL); its TLVs are ignored (version 1 has none).
/// Version 2 writes LOCAL with no address block, `Unknown` as PROXY with the
/// unspecified family (AF_UNSPEC) and no block, addresses followed by the TLVs;
/// an IPv4 and an IPv6 address together are both written as IPv6 (the IPv4 one
/// mapped). A CRC32C TLV given is filled in with the header's checksum. The one
/// error is a version 2 header longer than [`MAX_V2`] bytes.
pub fn write(header: &Header) -> Result<Vec<u8>, Error> {
    match header.version {
        Version::V1 => Ok(v1(&header.addresses)),
        Version::V2 => v2(header),
    }
}

fn v1(addresses: &Addresses) -> Vec<u8> {
    let mut out = Vec::with_capacity(super::MAX_V1);
    match addresses {
        Addresses::Inet {
            source,
            destination,
        } => {
            let (source, destination) = same_family(*source, *destination);
            let family = if source.is_ipv4() { "TCP4" } else { "TCP6" };
            // Writing to a Vec does not fail.
            let _ = write!(
                out,
                "PROXY {family} {} {} {} {}\r\n",
                Canonical(source.ip()),
                Canonical(destination.ip()),
                source.port(),
                destination.port()
            );
        }
        _ => out.extend_from_slice(b"PROXY UNKNOWN\r\n"),
    }
    out
}

/// An address as version 1 writes it: IPv4 dotted, IPv6 as eight groups of
/// hexadecimal digits (the standard form would write an IPv4-mapped address
/// with dots, which the specification's IPv6 form does not have).
struct Canonical(IpAddr);

impl std::fmt::Display for Canonical {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V4(ip) => write!(f, "{ip}"),
            IpAddr::V6(ip) => {
                let s = ip.segments();
                write!(
                    f,
                    "{:x}:{:x}:{:x}:{:x}:{:x}:{:x}:{:x}:{:x}",
                    s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]
                )
            }
        }
    }
}

/// Both addresses in one family: as they are when they share one; else both as
/// IPv6 (the IPv4 one mapped), unless the IPv6 one is an IPv4-mapped address.
fn same_family(source: SocketAddr, destination: SocketAddr) -> (SocketAddr, SocketAddr) {
    let v4 = |a: SocketAddr| match a.ip() {
        IpAddr::V4(ip) => Some(SocketAddr::new(IpAddr::V4(ip), a.port())),
        IpAddr::V6(ip) => ip
            .to_ipv4_mapped()
            .map(|ip| SocketAddr::new(IpAddr::V4(ip), a.port())),
    };
    let v6 = |a: SocketAddr| match a.ip() {
        IpAddr::V4(ip) => SocketAddr::new(IpAddr::V6(ip.to_ipv6_mapped()), a.port()),
        IpAddr::V6(_) => a,
    };
    match (source.ip(), destination.ip()) {
        (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => (source, destination),
        _ => match (v4(source), v4(destination)) {
            (Some(s), Some(d)) => (s, d),
            _ => (v6(source), v6(destination)),
        },
    }
}

fn v2(header: &Header) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&SIGNATURE_V2);
    let (command, family) = match &header.addresses {
        Addresses::Local => (0x20, 0x00),
        Addresses::Unknown => (0x21, 0x00),
        Addresses::Inet {
            source,
            destination,
        } => {
            if same_family(*source, *destination).0.is_ipv4() {
                (0x21, 0x11)
            } else {
                (0x21, 0x21)
            }
        }
        Addresses::Unix { .. } => (0x21, 0x31),
    };
    out.extend_from_slice(&[command, family, 0, 0]);
    match &header.addresses {
        Addresses::Local | Addresses::Unknown => {}
        Addresses::Inet {
            source,
            destination,
        } => {
            let (source, destination) = same_family(*source, *destination);
            for ip in [source.ip(), destination.ip()] {
                match ip {
                    IpAddr::V4(ip) => out.extend_from_slice(&ip.octets()),
                    IpAddr::V6(ip) => out.extend_from_slice(&ip.octets()),
                }
            }
            out.extend_from_slice(&source.port().to_be_bytes());
            out.extend_from_slice(&destination.port().to_be_bytes());
        }
        Addresses::Unix {
            source,
            destination,
        } => {
            out.extend_from_slice(&source[..]);
            out.extend_from_slice(&destination[..]);
        }
    }
    // A receiver cannot find TLVs after a block it does not know the size of.
    let carries_block = matches!(
        header.addresses,
        Addresses::Inet { .. } | Addresses::Unix { .. }
    );
    let mut crc_at = None;
    if carries_block {
        for tlv in &header.tlvs {
            let length = u16::try_from(tlv.value.len())
                .map_err(|_| Error::Oversized(out.len() + 3 + tlv.value.len()))?;
            out.push(tlv.kind);
            out.extend_from_slice(&length.to_be_bytes());
            if tlv.kind == tlv::CRC32C && tlv.value.len() == 4 && crc_at.is_none() {
                crc_at = Some(out.len());
                out.extend_from_slice(&[0; 4]);
            } else {
                out.extend_from_slice(&tlv.value);
            }
            if out.len() > MAX_V2 {
                return Err(Error::Oversized(out.len()));
            }
        }
    }
    let length = u16::try_from(out.len() - 16).map_err(|_| Error::Oversized(out.len()))?;
    out[14..16].copy_from_slice(&length.to_be_bytes());
    if let Some(at) = crc_at {
        let crc = crc32c(&out);
        out[at..at + 4].copy_from_slice(&crc.to_be_bytes());
    }
    Ok(out)
}

/// The TLVs of a client connection the listener terminated TLS for:
/// `PP2_TYPE_AUTHORITY` with the name the client asked for (its SNI, when it
/// sent one) and `PP2_TYPE_SSL` (the client connected over TLS; no client
/// certificate was verified, so `verify` is not zero, as the specification asks)
/// with the protocol version and the cipher.
pub fn ssl_tlv(sni: Option<&str>, version: &str, cipher: Option<&str>) -> Vec<Tlv> {
    let mut tlvs = Vec::with_capacity(2);
    if let Some(name) = sni.filter(|n| !n.is_empty()) {
        tlvs.push(Tlv {
            kind: tlv::AUTHORITY,
            value: name.as_bytes().to_vec(),
        });
    }
    let mut ssl = vec![tlv::CLIENT_SSL, 0, 0, 0, 1];
    let mut sub = |kind: u8, value: &[u8]| {
        let length = u16::try_from(value.len()).unwrap_or(u16::MAX);
        ssl.push(kind);
        ssl.extend_from_slice(&length.to_be_bytes());
        ssl.extend_from_slice(&value[..usize::from(length)]);
    };
    sub(tlv::SSL_VERSION, version.as_bytes());
    if let Some(cipher) = cipher {
        sub(tlv::SSL_CIPHER, cipher.as_bytes());
    }
    tlvs.push(Tlv {
        kind: tlv::SSL,
        value: ssl,
    });
    tlvs
}
