use super::example::{client_hello, message, records};
use super::*;

fn name(bytes: &[u8]) -> Option<String> {
    parse(bytes).expect("a whole ClientHello").server_name
}

#[test]
fn the_server_name_is_read_lowercase_without_a_final_dot() {
    assert_eq!(
        name(&client_hello(Some("db.example.com"), 0)).as_deref(),
        Some("db.example.com")
    );
    assert_eq!(
        name(&client_hello(Some("DB.Example.COM."), 0)).as_deref(),
        Some("db.example.com")
    );
    assert_eq!(name(&client_hello(None, 0)), None);
}

#[test]
fn bytes_after_the_client_hello_are_not_read() {
    let mut bytes = client_hello(Some("a.example"), 0);
    let length = bytes.len();
    bytes.extend_from_slice(&[23, 3, 3, 0, 1, 0]);
    let hello = parse(&bytes).unwrap();
    assert_eq!(hello.length, length);
}

/// Every strict prefix is incomplete, never an error: a ClientHello split into any
/// segments is read once whole, and only then.
#[test]
fn every_prefix_is_incomplete() {
    for whole in [
        client_hello(Some("a.example"), 0),
        records(&message(Some("b.example"), 300), 7),
    ] {
        for n in 0..whole.len() {
            assert_eq!(
                parse(&whole[..n]),
                Err(Failure::Incomplete),
                "prefix of {n} bytes"
            );
        }
        assert!(parse(&whole).is_ok());
    }
}

#[test]
fn a_client_hello_spanning_records_is_reassembled() {
    // Over 16 KiB: three records.
    let bytes = client_hello(Some("big.example"), 40_000);
    assert!(bytes.len() > 40_000 && bytes.len() < MAX_HELLO);
    assert_eq!(name(&bytes).as_deref(), Some("big.example"));
    // Tiny records, the name split between them.
    let bytes = records(&message(Some("tiny.example"), 0), 3);
    assert_eq!(name(&bytes).as_deref(), Some("tiny.example"));
}

#[test]
fn a_client_hello_over_the_cap_is_refused_from_its_announced_length() {
    let bytes = client_hello(Some("huge.example"), 70_000);
    // The first record's header and the message's header are enough.
    let refused = parse(&bytes[..9]);
    assert!(
        matches!(refused, Err(Failure::Invalid(Error::TooLarge(n))) if n > MAX_HELLO),
        "{refused:?}"
    );
    // Small records that add up past the cap: refused at the cap.
    let bytes = records(&message(Some("many.example"), 63_000), 100);
    assert!(bytes.len() > MAX_HELLO);
    assert!(matches!(
        parse(&bytes),
        Err(Failure::Invalid(Error::TooLarge(_)))
    ));
    // Just under the cap in full records: read.
    let padding = MAX_HELLO - 5 * 5 - 200;
    let bytes = client_hello(Some("edge.example"), padding);
    assert!(bytes.len() <= MAX_HELLO, "{}", bytes.len());
    assert_eq!(name(&bytes).as_deref(), Some("edge.example"));
}

#[test]
fn a_first_byte_other_than_a_handshake_record_is_not_tls() {
    assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Err(Failure::NotTls(b'G')));
    assert_eq!(parse(&[0x80, 0x2e, 1]), Err(Failure::NotTls(0x80)));
    assert_eq!(parse(&[]), Err(Failure::Incomplete));
}

#[test]
fn malformed_input_is_refused_as_soon_as_it_shows() {
    let invalid = |bytes: &[u8]| match parse(bytes) {
        Err(Failure::Invalid(e)) => e,
        other => panic!("{bytes:?}: {other:?}"),
    };
    assert_eq!(invalid(&[22, 2]), Error::RecordVersion(2, 0));
    assert_eq!(invalid(&[22, 3, 1, 0x40, 1]), Error::RecordTooLong(0x4001));
    assert_eq!(invalid(&[22, 3, 1, 0, 0]), Error::EmptyRecord);
    assert_eq!(invalid(&[22, 3, 1, 0, 4, 2]), Error::NotClientHello(2));
    // A second record of another type before the message is complete.
    let mut bytes = records(&message(Some("a.example"), 0), 10);
    bytes[15] = 23;
    assert_eq!(invalid(&bytes[..16]), Error::RecordType(23));
    // A length inside the body that runs past its end.
    let mut m = message(Some("a.example"), 0);
    m[4 + 2 + 32] = 200; // the session id's length
    assert!(matches!(
        invalid(&records(&m, 1 << 14)),
        Error::Malformed(_)
    ));
    // A server name that is not a DNS name.
    for bad in ["a..b", "a b.example", "", "é.example", "-"] {
        let bytes = client_hello(Some(bad), 0);
        if bad == "-" {
            // A label of a hyphen is lax but harmless: it matches no route.
            assert!(parse(&bytes).is_ok());
            continue;
        }
        assert_eq!(invalid(&bytes), Error::BadServerName, "{bad:?}");
    }
    let long = format!("{}.example", "a".repeat(250));
    assert_eq!(invalid(&client_hello(Some(&long), 0)), Error::BadServerName);
}

#[test]
fn a_client_hello_without_extensions_has_no_name() {
    let mut m = vec![1, 0, 0, 0, 3, 3];
    m.extend_from_slice(&[0u8; 32]);
    m.extend_from_slice(&[0, 0, 2, 0, 0x2f, 1, 0]);
    let len = (m.len() - 4) as u32;
    m[1..4].copy_from_slice(&len.to_be_bytes()[1..]);
    assert_eq!(name(&records(&m, 1 << 14)), None);
}

/// A ClientHello OpenSSL itself wrote (`openssl s_client -servername`), captured
/// on a socket, is read with its name.
#[test]
fn openssl_s_client_is_read() {
    use std::io::Read;
    use std::net::TcpListener;
    use std::process::{Command, Stdio};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["-servername", "Real.Example.NET"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl is installed");
    let (mut socket, _) = listener.accept().unwrap();
    socket
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    let hello = loop {
        let n = socket.read(&mut buf).unwrap();
        assert!(n > 0, "s_client closed before its ClientHello");
        bytes.extend_from_slice(&buf[..n]);
        match parse(&bytes) {
            Err(Failure::Incomplete) => continue,
            other => break other,
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        hello.unwrap().server_name.as_deref(),
        Some("real.example.net")
    );
}
