//! The parser against the specification's examples and every error, the writer
//! against hand-made bytes, and properties: any bytes never panic the parser, and
//! what the writer writes parses back to the same header.

use super::*;
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use tcprelay_plan::ProxyAccept;

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn inet(source: &str, destination: &str) -> Addresses {
    Addresses::Inet {
        source: sa(source),
        destination: sa(destination),
    }
}

fn error(input: &[u8]) -> Error {
    match parse(input) {
        Err(Failure::Invalid(e)) => e,
        other => panic!(
            "{:?}: expected an error, got {other:?}",
            String::from_utf8_lossy(input)
        ),
    }
}

fn incomplete(input: &[u8]) {
    assert_eq!(parse(input), Err(Failure::Incomplete), "{input:?}");
}

/// A version 2 header from its parts (the 16 fixed bytes computed).
fn v2(ver_cmd: u8, family: u8, block: &[u8]) -> Vec<u8> {
    let mut out = SIGNATURE_V2.to_vec();
    out.push(ver_cmd);
    out.push(family);
    out.extend_from_slice(&u16::try_from(block.len()).unwrap().to_be_bytes());
    out.extend_from_slice(block);
    out
}

#[test]
fn the_specifications_v1_example_is_read_and_the_request_after_it_left() {
    let input = b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET / HTTP/1.1\r\n";
    let parsed = parse(input).unwrap();
    assert_eq!(parsed.consumed, 47);
    assert_eq!(&input[parsed.consumed..], b"GET / HTTP/1.1\r\n");
    assert_eq!(parsed.header.version, Version::V1);
    assert_eq!(
        parsed.header.addresses,
        inet("192.168.0.1:56324", "192.168.0.11:443")
    );
    assert!(parsed.header.tlvs.is_empty());
}

#[test]
fn the_longest_lines_of_the_specification_are_read() {
    let v4 = b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n";
    assert_eq!(v4.len(), 56);
    assert_eq!(parse(v4).unwrap().consumed, 56);
    let v6 = b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    assert_eq!(v6.len(), 104);
    let parsed = parse(v6).unwrap();
    assert_eq!(parsed.consumed, 104);
    assert_eq!(
        parsed.header.source(),
        Some(SocketAddr::new(
            IpAddr::V6(Ipv6Addr::from([0xffff; 8])),
            65535
        ))
    );
    let unknown = b"PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    assert_eq!(unknown.len(), 107);
    let parsed = parse(unknown).unwrap();
    assert_eq!(
        (parsed.consumed, parsed.header.addresses),
        (107, Addresses::Unknown)
    );
    assert_eq!(parse(b"PROXY UNKNOWN\r\n").unwrap().consumed, 15);
}

#[test]
fn compressed_ipv6_is_read() {
    let parsed = parse(b"PROXY TCP6 2001:db8::1 ::1 1 0\r\n").unwrap();
    assert_eq!(parsed.header.addresses, inet("[2001:db8::1]:1", "[::1]:0"));
}

#[test]
fn v1_line_errors() {
    // No CRLF within 107 bytes: the 107 bytes end without one.
    let mut long = b"PROXY UNKNOWN ".to_vec();
    long.resize(MAX_V1, b'a');
    assert_eq!(error(&long), Error::NoCrlf);
    incomplete(&long[..MAX_V1 - 1]);
    // A CR as the 107th byte: its LF would be the 108th.
    let mut cr_last = long.clone();
    cr_last[MAX_V1 - 1] = b'\r';
    assert_eq!(error(&cr_last), Error::NoCrlf);
    cr_last.push(b'\n');
    assert_eq!(error(&cr_last), Error::NoCrlf);
    assert_eq!(error(b"PROXY UNKNOWN\n"), Error::BadLineEnd);
    assert_eq!(error(b"PROXY UNKNOWN\rX"), Error::BadLineEnd);
    assert_eq!(error(b"PROXY UNKNOWN\r\r\n"), Error::BadLineEnd);
    assert_eq!(error(b"PROXY UNKNOWN\x01\r\n"), Error::BadCharacter);
    assert_eq!(
        error(b"PROXY TCP5 1.2.3.4 1.2.3.4 1 2\r\n"),
        Error::UnknownProtocol
    );
    assert_eq!(error(b"PROXY UNKNOWNX\r\n"), Error::UnknownProtocol);
    assert_eq!(
        error(b"PROXY tcp4 1.2.3.4 1.2.3.4 1 2\r\n"),
        Error::UnknownProtocol
    );
    assert_eq!(error(b"PROXY TCP4\r\n"), Error::BadFields);
    assert_eq!(error(b"PROXY TCP4 1.2.3.4 1.2.3.4 1\r\n"), Error::BadFields);
    assert_eq!(
        error(b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2 3\r\n"),
        Error::BadFields
    );
    assert_eq!(
        error(b"PROXY TCP4 1.2.3.4  1.2.3.4 1 2\r\n"),
        Error::BadFields
    );
    assert_eq!(
        error(b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2 \r\n"),
        Error::BadFields
    );
    assert_eq!(
        error(b"PROXY  TCP4 1.2.3.4 1.2.3.4 1 2\r\n"),
        Error::UnknownProtocol
    );
    // The signature itself.
    assert_eq!(error(b"PROXY\r\n"), Error::BadSignature);
    assert_eq!(error(b"PROXX"), Error::BadSignature);
    assert_eq!(error(b"GET / HTTP/1.1\r\n"), Error::BadSignature);
    assert_eq!(error(b"\x16\x03\x01"), Error::BadSignature);
}

#[test]
fn v1_addresses_and_ports_must_be_canonical() {
    for bad in [
        "PROXY TCP4 01.2.3.4 1.2.3.4 1 2\r\n",
        "PROXY TCP4 1.2.3 1.2.3.4 1 2\r\n",
        "PROXY TCP4 1.2.3.4.5 1.2.3.4 1 2\r\n",
        "PROXY TCP4 256.2.3.4 1.2.3.4 1 2\r\n",
        "PROXY TCP4 1.2.3.4 ::1 1 2\r\n",
        "PROXY TCP6 1.2.3.4 ::1 1 2\r\n",
        "PROXY TCP6 ::ffff:1.2.3.4 ::1 1 2\r\n",
        "PROXY TCP6 1::2::3 ::1 1 2\r\n",
        "PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n",
        "PROXY TCP6 12345::1 ::1 1 2\r\n",
        "PROXY TCP4 1.2.3.4 -1.2.3.4 1 2\r\n",
    ] {
        assert_eq!(error(bad.as_bytes()), Error::BadAddress, "{bad}");
    }
    for bad in [
        "PROXY TCP4 1.2.3.4 1.2.3.4 01 2\r\n",
        "PROXY TCP4 1.2.3.4 1.2.3.4 1 65536\r\n",
        "PROXY TCP4 1.2.3.4 1.2.3.4 1 -2\r\n",
        "PROXY TCP4 1.2.3.4 1.2.3.4 +1 2\r\n",
        "PROXY TCP4 1.2.3.4 1.2.3.4 1 x\r\n",
        "PROXY TCP4 1.2.3.4 1.2.3.4 1 000000\r\n",
    ] {
        assert_eq!(error(bad.as_bytes()), Error::BadPort, "{bad}");
    }
    assert_eq!(
        parse(b"PROXY TCP4 0.0.0.0 10.0.0.1 0 65535\r\n")
            .unwrap()
            .header
            .addresses,
        inet("0.0.0.0:0", "10.0.0.1:65535")
    );
}

#[test]
fn every_prefix_of_a_header_is_incomplete() {
    let v1 = b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n";
    let v2 = write(&Header {
        version: Version::V2,
        addresses: inet("10.0.0.1:1000", "10.0.0.2:80"),
        tlvs: vec![Tlv {
            kind: tlv::NOOP,
            value: vec![0; 5],
        }],
    })
    .unwrap();
    for whole in [&v1[..], &v2[..]] {
        for n in 0..whole.len() {
            incomplete(&whole[..n]);
        }
        assert_eq!(parse(whole).unwrap().consumed, whole.len());
    }
}

#[test]
fn v2_header_of_the_specification_with_ipv4_ipv6_and_unix() {
    let mut block = vec![10, 0, 0, 1, 10, 0, 0, 2];
    block.extend_from_slice(&1000u16.to_be_bytes());
    block.extend_from_slice(&80u16.to_be_bytes());
    let parsed = parse(&v2(0x21, 0x11, &block)).unwrap();
    assert_eq!(parsed.consumed, 28);
    assert_eq!(
        parsed.header.addresses,
        inet("10.0.0.1:1000", "10.0.0.2:80")
    );

    let mut block = Ipv6Addr::LOCALHOST.octets().to_vec();
    block.extend_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
    block.extend_from_slice(&[0, 1, 0, 2]);
    let parsed = parse(&v2(0x21, 0x21, &block)).unwrap();
    assert_eq!(parsed.consumed, 52);
    assert_eq!(parsed.header.addresses, inet("[::1]:1", "[2001:db8::2]:2"));

    let mut block = vec![0u8; 216];
    block[..5].copy_from_slice(b"/a/b\0");
    block[108..110].copy_from_slice(b"/c");
    let parsed = parse(&v2(0x21, 0x31, &block)).unwrap();
    let Addresses::Unix {
        source,
        destination,
    } = parsed.header.addresses
    else {
        panic!("not unix");
    };
    assert_eq!(&source[..5], b"/a/b\0");
    assert_eq!(&destination[..3], b"/c\0");
}

#[test]
fn v2_local_and_unspecified_use_the_real_endpoints() {
    // LOCAL: the family and the block are ignored, whatever they hold.
    let parsed = parse(&v2(0x20, 0x11, &[1, 2, 3])).unwrap();
    assert_eq!(
        (parsed.consumed, parsed.header.addresses),
        (19, Addresses::Local)
    );
    assert_eq!(
        parse(&v2(0x20, 0x00, &[])).unwrap().header.addresses,
        Addresses::Local
    );
    // PROXY with AF_UNSPEC, or UNSPEC transport, or a datagram one: fall back.
    for family in [0x00, 0x10, 0x12, 0x22, 0x32, 0x01] {
        let parsed = parse(&v2(0x21, family, &[9; 7])).unwrap();
        assert_eq!(
            (parsed.consumed, parsed.header.addresses),
            (23, Addresses::Unknown),
            "{family:#x}"
        );
    }
}

#[test]
fn v2_errors() {
    assert_eq!(
        error(&v2(0x11, 0x11, &[0; 12])),
        Error::UnsupportedVersion(1)
    );
    assert_eq!(
        error(&v2(0x31, 0x11, &[0; 12])),
        Error::UnsupportedVersion(3)
    );
    assert_eq!(
        error(&v2(0x22, 0x11, &[0; 12])),
        Error::UnsupportedCommand(2)
    );
    assert_eq!(
        error(&v2(0x2f, 0x11, &[0; 12])),
        Error::UnsupportedCommand(15)
    );
    assert_eq!(
        error(&v2(0x21, 0x41, &[0; 12])),
        Error::UnsupportedFamily(4)
    );
    assert_eq!(
        error(&v2(0x21, 0x13, &[0; 12])),
        Error::UnsupportedProtocol(3)
    );
    // Refused from the byte that says it, without waiting for the rest.
    assert_eq!(
        error(&v2(0x11, 0x11, &[])[..13]),
        Error::UnsupportedVersion(1)
    );
    assert_eq!(
        error(&v2(0x21, 0x41, &[])[..14]),
        Error::UnsupportedFamily(4)
    );
    // Bad signature at any of its bytes.
    for at in 1..12 {
        let mut bad = v2(0x21, 0x11, &[0; 12]);
        bad[at] ^= 0x40;
        assert_eq!(error(&bad), Error::BadSignature, "byte {at}");
        assert_eq!(error(&bad[..=at]), Error::BadSignature, "byte {at}");
    }
    // Lengths: too short for the family, too long to accept (said at 16 bytes).
    assert_eq!(
        error(&v2(0x21, 0x11, &[0; 11])),
        Error::ShortAddresses {
            family: "IPv4 (12 bytes)",
            length: 11
        }
    );
    assert!(matches!(
        error(&v2(0x21, 0x21, &[0; 35])),
        Error::ShortAddresses { length: 35, .. }
    ));
    assert!(matches!(
        error(&v2(0x21, 0x31, &[0; 215])),
        Error::ShortAddresses { length: 215, .. }
    ));
    let mut big = v2(0x21, 0x11, &[]);
    big[14..16].copy_from_slice(&u16::try_from(MAX_V2 - 15).unwrap().to_be_bytes());
    assert_eq!(error(&big), Error::Oversized(MAX_V2 + 1));
    big[14..16].copy_from_slice(&u16::MAX.to_be_bytes());
    assert_eq!(error(&big), Error::Oversized(16 + 65535));
    let mut just = v2(0x21, 0x11, &[0; 12]);
    just.extend(std::iter::repeat_n(0u8, MAX_V2 - just.len()));
    just[14..16].copy_from_slice(&u16::try_from(MAX_V2 - 16).unwrap().to_be_bytes());
    // The bytes after the addresses are NOOP TLVs.
    let mut at = 28;
    while at < MAX_V2 {
        let len = (MAX_V2 - at - 3).min(1000);
        just[at] = tlv::NOOP;
        just[at + 1..at + 3].copy_from_slice(&u16::try_from(len).unwrap().to_be_bytes());
        at += 3 + len;
    }
    assert_eq!(parse(&just).unwrap().consumed, MAX_V2);
    // TLVs that run past the end.
    let mut block = vec![0u8; 12];
    block.extend_from_slice(&[tlv::NOOP, 0]);
    assert_eq!(error(&v2(0x21, 0x11, &block)), Error::BadTlv);
    block.extend_from_slice(&[4, 1, 2]);
    assert_eq!(error(&v2(0x21, 0x11, &block)), Error::BadTlv);
}

#[test]
fn versions_a_listener_does_not_accept_are_refused_at_the_first_byte() {
    assert_eq!(
        parse_accepting(b"P", ProxyAccept::V2),
        Err(Failure::Invalid(Error::VersionNotAccepted(Version::V1)))
    );
    assert_eq!(
        parse_accepting(b"\r", ProxyAccept::V1),
        Err(Failure::Invalid(Error::VersionNotAccepted(Version::V2)))
    );
    assert!(parse_accepting(b"PROXY UNKNOWN\r\n", ProxyAccept::V1).is_ok());
    assert!(parse_accepting(&v2(0x20, 0, &[]), ProxyAccept::V2).is_ok());
}

#[test]
fn crc32c_is_checked_and_written() {
    // RFC 3720's check value: 32 bytes of zeros.
    assert_eq!(crc32c(&[0; 32]), 0x8A91_36AA);
    assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    let header = Header {
        version: Version::V2,
        addresses: inet("10.0.0.1:1000", "10.0.0.2:80"),
        tlvs: vec![Tlv {
            kind: tlv::CRC32C,
            value: vec![0; 4],
        }],
    };
    let mut bytes = write(&header).unwrap();
    let parsed = parse(&bytes).unwrap();
    let value = parsed.header.tlv(tlv::CRC32C).unwrap();
    assert_ne!(value, [0; 4], "the checksum is filled in");
    // A bit flipped in the addresses: the checksum no longer matches.
    bytes[17] ^= 1;
    assert_eq!(error(&bytes), Error::BadChecksum);
    // A checksum TLV of the wrong size.
    let mut block = vec![0u8; 12];
    block.extend_from_slice(&[tlv::CRC32C, 0, 2, 0, 0]);
    assert_eq!(error(&v2(0x21, 0x11, &block)), Error::BadTlv);
}

#[test]
fn writer_bytes_for_each_form() {
    let header = |version, addresses| Header {
        version,
        addresses,
        tlvs: Vec::new(),
    };
    assert_eq!(
        write(&header(
            Version::V1,
            inet("192.168.0.1:56324", "192.168.0.11:443")
        ))
        .unwrap(),
        b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"
    );
    assert_eq!(
        write(&header(Version::V1, inet("[::ffff:1.2.3.4]:1", "[::1]:2"))).unwrap(),
        b"PROXY TCP6 0:0:0:0:0:ffff:102:304 0:0:0:0:0:0:0:1 1 2\r\n"
    );
    // An IPv4 client of an IPv6 destination: both as IPv6 (the worker gives
    // IPv4-mapped addresses of dual-stack sockets as IPv4 first).
    assert_eq!(
        write(&header(Version::V1, inet("1.2.3.4:1", "[2001:db8::1]:2"))).unwrap(),
        b"PROXY TCP6 0:0:0:0:0:ffff:102:304 2001:db8:0:0:0:0:0:1 1 2\r\n"
    );
    // Unix clients: UNKNOWN in version 1, PROXY with AF_UNSPEC in version 2.
    assert_eq!(
        write(&header(Version::V1, Addresses::Unknown)).unwrap(),
        b"PROXY UNKNOWN\r\n"
    );
    assert_eq!(
        write(&header(Version::V2, Addresses::Unknown)).unwrap(),
        v2(0x21, 0x00, &[])
    );
    assert_eq!(
        write(&header(Version::V2, Addresses::Local)).unwrap(),
        v2(0x20, 0x00, &[])
    );
    let mut block = vec![10, 0, 0, 1, 10, 0, 0, 2, 0x03, 0xe8, 0, 80];
    block.extend_from_slice(&[tlv::AUTHORITY, 0, 3]);
    block.extend_from_slice(b"a.b");
    assert_eq!(
        write(&Header {
            version: Version::V2,
            addresses: inet("10.0.0.1:1000", "10.0.0.2:80"),
            tlvs: vec![Tlv {
                kind: tlv::AUTHORITY,
                value: b"a.b".to_vec()
            }],
        })
        .unwrap(),
        v2(0x21, 0x11, &block)
    );
    // Too long to send.
    let too_long = Header {
        version: Version::V2,
        addresses: inet("10.0.0.1:1000", "10.0.0.2:80"),
        tlvs: vec![Tlv {
            kind: tlv::NOOP,
            value: vec![0; MAX_V2],
        }],
    };
    assert!(matches!(write(&too_long), Err(Error::Oversized(_))));
}

#[test]
fn ssl_tlvs_carry_the_sni_version_and_cipher() {
    let tlvs = ssl_tlv(
        Some("example.com"),
        "TLSv1.3",
        Some("TLS_AES_256_GCM_SHA384"),
    );
    let header = Header {
        version: Version::V2,
        addresses: inet("10.0.0.1:1000", "10.0.0.2:443"),
        tlvs,
    };
    let parsed = parse(&write(&header).unwrap()).unwrap().header;
    assert_eq!(parsed.tlv(tlv::AUTHORITY), Some(&b"example.com"[..]));
    let ssl = parsed.tlv(tlv::SSL).unwrap();
    assert_eq!(ssl[0], tlv::CLIENT_SSL);
    assert_ne!(u32::from_be_bytes([ssl[1], ssl[2], ssl[3], ssl[4]]), 0);
    let mut sub = Vec::new();
    let mut rest = &ssl[5..];
    while let [kind, hi, lo, ..] = *rest {
        let n = usize::from(u16::from_be_bytes([hi, lo]));
        sub.push((kind, rest[3..3 + n].to_vec()));
        rest = &rest[3 + n..];
    }
    assert_eq!(
        sub,
        vec![
            (tlv::SSL_VERSION, b"TLSv1.3".to_vec()),
            (tlv::SSL_CIPHER, b"TLS_AES_256_GCM_SHA384".to_vec())
        ]
    );
    // No SNI: no AUTHORITY.
    assert!(ssl_tlv(None, "TLSv1.2", None)
        .iter()
        .all(|t| t.kind == tlv::SSL));
}

#[test]
fn error_messages_are_an_operators_words() {
    assert_eq!(
        Error::NoCrlf.to_string(),
        "a version 1 line without CRLF within 107 bytes"
    );
    assert_eq!(
        Error::Oversized(5000).to_string(),
        "a version 2 header of 5000 bytes, longer than the 4096 accepted"
    );
    assert_eq!(
        Error::Truncated(0).to_string(),
        "closed before sending a PROXY header"
    );
}

fn address(v6: bool) -> impl Strategy<Value = IpAddr> {
    if v6 {
        any::<[u8; 16]>().prop_map(IpAddr::from).boxed()
    } else {
        any::<[u8; 4]>()
            .prop_map(|o| IpAddr::V4(Ipv4Addr::from(o)))
            .boxed()
    }
}

fn addresses() -> impl Strategy<Value = Addresses> {
    let inet = any::<bool>().prop_flat_map(|v6| {
        (address(v6), any::<u16>(), address(v6), any::<u16>()).prop_map(|(s, sp, d, dp)| {
            Addresses::Inet {
                source: SocketAddr::new(s, sp),
                destination: SocketAddr::new(d, dp),
            }
        })
    });
    let unix = (any::<[u8; 32]>(), any::<u8>()).prop_map(|(seed, fill)| {
        let mut source = Box::new([fill; 108]);
        source[..32].copy_from_slice(&seed);
        let mut destination = Box::new([0u8; 108]);
        destination[76..].copy_from_slice(&seed);
        Addresses::Unix {
            source,
            destination,
        }
    });
    prop_oneof![Just(Addresses::Local), Just(Addresses::Unknown), inet, unix]
}

fn tlvs() -> impl Strategy<Value = Vec<Tlv>> {
    proptest::collection::vec(
        (
            any::<u8>().prop_filter("the checksum is computed", |k| *k != tlv::CRC32C),
            proptest::collection::vec(any::<u8>(), 0..300),
        )
            .prop_map(|(kind, value)| Tlv { kind, value }),
        0..8,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_bytes_never_panic_and_a_header_never_exceeds_them(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        for accept in [ProxyAccept::Any, ProxyAccept::V1, ProxyAccept::V2] {
            if let Ok(parsed) = parse_accepting(&bytes, accept) {
                prop_assert!(parsed.consumed <= bytes.len());
                prop_assert!(parsed.consumed <= MAX_V2);
            }
        }
    }

    #[test]
    fn bytes_after_a_valid_start_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..300), v2_start in any::<bool>()) {
        let mut bytes = if v2_start { SIGNATURE_V2.to_vec() } else { b"PROXY ".to_vec() };
        bytes.extend_from_slice(&tail);
        let _ = parse(&bytes);
    }

    #[test]
    fn what_is_written_parses_back(addresses in addresses(), tlvs in tlvs(), tail in proptest::collection::vec(any::<u8>(), 0..20)) {
        // Version 2: the header as written, the TLVs where a block carries them.
        let carries = matches!(addresses, Addresses::Inet { .. } | Addresses::Unix { .. });
        let header = Header {
            version: Version::V2,
            addresses: addresses.clone(),
            tlvs: if carries { tlvs } else { Vec::new() },
        };
        let mut bytes = write(&header).unwrap();
        let length = bytes.len();
        bytes.extend_from_slice(&tail);
        let parsed = parse(&bytes).unwrap();
        prop_assert_eq!(parsed.consumed, length);
        prop_assert_eq!(parsed.header, header);
        // Version 1: IP addresses and UNKNOWN.
        let v1 = match addresses {
            a @ Addresses::Inet { .. } => a,
            _ => Addresses::Unknown,
        };
        let header = Header { version: Version::V1, addresses: v1, tlvs: Vec::new() };
        let mut bytes = write(&header).unwrap();
        let length = bytes.len();
        prop_assert!(length <= MAX_V1);
        bytes.extend_from_slice(&tail);
        let parsed = parse(&bytes).unwrap();
        prop_assert_eq!(parsed.consumed, length);
        prop_assert_eq!(parsed.header, header);
    }
}
