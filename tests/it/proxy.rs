//! The PROXY protocol against the real third parties: HAProxy in front of tcprelay
//! (`send-proxy`, `send-proxy-v2`; tcprelay accepting), tcprelay in front of
//! HAProxy (`accept-proxy`) and of nginx's stream module (`listen ... proxy_protocol`),
//! each of which answers with the client address it read; and raw clients with bad
//! headers or none. The real binaries on loopback, ports chosen by the OS, every
//! process killed and reaped when its test ends.

use crate::harness::{self, free_port, Echo, Relay};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const WITHIN: Duration = Duration::from_secs(10);

/// A third-party server, killed and reaped when dropped; its output in `log`.
struct Server {
    child: Child,
    log: std::path::PathBuf,
}

impl Server {
    fn start(mut cmd: Command, log: std::path::PathBuf, port: u16) -> Server {
        let file = std::fs::File::create(&log).expect("log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("dup"))
            .stderr(file)
            .spawn()
            .expect("the server starts");
        let mut server = Server { child, log };
        // Listening once a connect succeeds (a probe these servers answer alone).
        let deadline = Instant::now() + WITHIN;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("exited ({status}): {}", server.text());
            }
            assert!(
                Instant::now() < deadline,
                "not listening: {}",
                server.text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    fn text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn haproxy(dir: &Path, name: &str, cfg: &str, port: u16) -> Server {
    let path = dir.join(format!("{name}.cfg"));
    std::fs::write(&path, cfg).unwrap();
    let mut cmd = Command::new("haproxy");
    cmd.arg("-db").arg("-f").arg(&path);
    Server::start(cmd, dir.join(format!("{name}.log")), port)
}

/// nginx with its stream module: a server on `port` that reads a PROXY header and
/// answers with the client address it carried.
fn nginx(dir: &Path, port: u16) -> Server {
    nginx_server(
        dir,
        port,
        "proxy_protocol",
        "",
        "$proxy_protocol_addr:$proxy_protocol_port",
    )
}

/// nginx's stream module listening with `ssl proxy_protocol` (the certificate of
/// `harness::make_certs` in `certs`): it reads a PROXY header in the clear, then
/// runs a TLS handshake, then answers with the client address the header carried
/// and the TLS version of the handshake, `ADDRESS:PORT TLSv1.x\n`.
fn nginx_tls(dir: &Path, certs: &Path, port: u16) -> Server {
    nginx_server(
        dir,
        port,
        "ssl proxy_protocol",
        &format!(
            "ssl_certificate {};\n ssl_certificate_key {};\n",
            certs.join("cert.pem").display(),
            certs.join("key.pem").display()
        ),
        "$proxy_protocol_addr:$proxy_protocol_port $ssl_protocol\\n",
    )
}

fn nginx_server(dir: &Path, port: u16, listen: &str, extra: &str, answer: &str) -> Server {
    let cfg = format!(
        "load_module /usr/lib/nginx/modules/ngx_stream_module.so;\n\
         pid {dir}/nginx.pid;\n\
         events {{}}\n\
         stream {{\n\
           server {{\n\
             listen 127.0.0.1:{port} {listen};\n\
             {extra}\
             return \"{answer}\";\n\
           }}\n\
         }}\n",
        dir = dir.display()
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, cfg).unwrap();
    let mut cmd = Command::new("nginx");
    cmd.arg("-p")
        .arg(dir)
        .arg("-e")
        .arg("stderr")
        .arg("-c")
        .arg(&path)
        .arg("-g")
        .arg("daemon off;");
    Server::start(cmd, dir.join("nginx.log"), port)
}

/// A relay on 127.0.0.1:`port` (one worker, JSON log) whose listener has
/// `listen_extra` and whose tcprelay section has `relay`, with `spawnd` lines.
fn relay(dir: &Path, port: u16, listen_extra: &str, spawnd: &str, relay: &str) -> Relay {
    let cfg = format!(
        "id = spawnd {{\n listen = {{ address = 127.0.0.1 port = {port} {listen_extra} }}\n log format = json\n spawn = {{ servers min = 1 servers max = 1 }}\n{spawnd}\n}}\nid = tcprelay {{\n{relay}\n}}\n"
    );
    Relay::run_config(dir, &cfg, port)
}

fn connect(port: u16) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(WITHIN)).unwrap();
    stream
}

/// Sends `bytes`, half-closes, reads to the end.
fn exchange(stream: &mut TcpStream, bytes: &[u8]) -> Vec<u8> {
    stream.write_all(bytes).expect("write");
    let _ = stream.shutdown(Shutdown::Write);
    let mut back = Vec::new();
    let _ = stream.read_to_end(&mut back);
    back
}

/// The relay's close record of the client `client`, once written.
fn close_record(relay: &Relay, client: SocketAddr) -> Value {
    let deadline = Instant::now() + WITHIN;
    loop {
        let found = relay
            .log_text()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["event"] == "session_close" && v["client"] == client.to_string().as_str());
        if let Some(record) = found {
            return record;
        }
        assert!(
            Instant::now() < deadline,
            "no close record for {client}: {}",
            relay.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// HAProxy in front with `send-proxy` and `send-proxy-v2`, its connections to
/// tcprelay from 127.0.0.3: tcprelay relays the client's bytes, and its records
/// name the client HAProxy had (127.0.0.1 and the client's port) with the peer
/// 127.0.0.3. The ACL permits 127.0.0.1 only: it judges the client, not HAProxy.
#[test]
fn haproxy_in_front_sends_the_client_to_tcprelay() {
    for (send, accept) in [("send-proxy", "v1"), ("send-proxy-v2", "v2")] {
        let dir = tempfile::tempdir().unwrap();
        let echo = Echo::start();
        let port = free_port();
        let relay = relay(
            dir.path(),
            port,
            &format!("accept proxy = {accept} accept proxy from = 127.0.0.3/32"),
            "acl = permit 127.0.0.1/32",
            &format!("remote = {{ address = 127.0.0.1 port = {} }}", echo.port),
        );
        let front = free_port();
        let _haproxy = haproxy(
            dir.path(),
            "haproxy",
            &format!(
                "defaults\n mode tcp\n timeout connect 5s\n timeout client 10s\n timeout server 10s\n\
                 frontend fe\n bind 127.0.0.1:{front}\n default_backend be\n\
                 backend be\n server relay 127.0.0.1:{port} {send} source 127.0.0.3\n"
            ),
            front,
        );
        let mut client = connect(front);
        let me = client.local_addr().unwrap();
        assert_eq!(
            exchange(&mut client, b"hello through haproxy"),
            b"hello through haproxy"
        );
        let record = close_record(&relay, me);
        assert_eq!(record["cause"], "client_closed", "{send}: {record}");
        assert!(
            record["peer"]
                .as_str()
                .is_some_and(|p| p.starts_with("127.0.0.3:")),
            "{send}: {record}"
        );
        assert_eq!(record["bytes_to_remote"], 21, "{send}: {record}");
    }
}

/// tcprelay in front of HAProxy `accept-proxy`, which answers an HTTP request with
/// the source address it read from the header: the client's own.
#[test]
fn tcprelay_in_front_of_haproxy_sends_the_client() {
    for version in ["v1", "v2"] {
        let dir = tempfile::tempdir().unwrap();
        let back = free_port();
        let _haproxy = haproxy(
            dir.path(),
            "haproxy",
            &format!(
                "defaults\n mode http\n timeout connect 5s\n timeout client 10s\n timeout server 10s\n\
                 frontend fe\n bind 127.0.0.1:{back} accept-proxy\n\
                 http-request return status 200 content-type text/plain lf-string \"%[src]:%[src_port]\"\n"
            ),
            back,
        );
        let port = free_port();
        let _relay = relay(
            dir.path(),
            port,
            "",
            "",
            &format!("remote = {{ address = 127.0.0.1 port = {back} send proxy = {version} }}"),
        );
        let mut client = connect(port);
        let me = client.local_addr().unwrap();
        let answer = exchange(&mut client, b"GET / HTTP/1.0\r\nHost: t\r\n\r\n");
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 200 "), "{version}: {answer}");
        assert!(
            answer.ends_with(&format!("\r\n\r\n{me}")),
            "{version}: {answer}"
        );
    }
}

/// tcprelay in front of nginx's stream module (`listen ... proxy_protocol`), which
/// sends back `$proxy_protocol_addr:$proxy_protocol_port`: the client's address.
#[test]
fn tcprelay_in_front_of_nginx_sends_the_client() {
    for version in ["v1", "v2"] {
        let dir = tempfile::tempdir().unwrap();
        let back = free_port();
        let _nginx = nginx(dir.path(), back);
        let port = free_port();
        let _relay = relay(
            dir.path(),
            port,
            "",
            "",
            &format!("remote = {{ address = 127.0.0.1 port = {back} send proxy = {version} }}"),
        );
        let mut client = connect(port);
        let me = client.local_addr().unwrap();
        let answer = exchange(&mut client, b"");
        assert_eq!(
            String::from_utf8_lossy(&answer),
            me.to_string(),
            "{version}"
        );
    }
}

/// tcprelay in front of nginx's stream module listening with `ssl proxy_protocol`,
/// through a remote with both `send proxy` (v1, v2) and `tls = yes` (verified
/// against a CA file, `tls sni`): nginx reads the header in the clear, then
/// completes a TLS handshake, and answers with the address the header carried and
/// the TLS version: the client reads back its own address and port, so the header
/// went raw on the socket before the handshake, and the bytes came back through TLS.
/// Then the same behind a `tls = yes` listener whose client speaks TLS to the relay
/// (decrypted, a header sent, encrypted again towards nginx).
#[test]
fn a_proxy_header_goes_raw_before_the_tls_handshake_with_nginx() {
    for version in ["v1", "v2"] {
        let dir = tempfile::tempdir().unwrap();
        let certs = dir.path().join("certs");
        harness::make_certs(&certs);
        let back = free_port();
        let _nginx = nginx_tls(dir.path(), &certs, back);
        let remote = format!(
            "remote = {{ address = 127.0.0.1 port = {back} send proxy = {version} \
             tls = yes tls sni = localhost tls ca-file = {} }}",
            certs.join("cert.pem").display()
        );

        // A plain client.
        let port = free_port();
        let plain = relay(dir.path(), port, "", "", &remote);
        let mut client = connect(port);
        let me = client.local_addr().unwrap();
        let answer = String::from_utf8_lossy(&exchange(&mut client, b"")).into_owned();
        assert!(
            answer.starts_with(&format!("{me} TLSv1.")) && answer.ends_with('\n'),
            "{version}: {answer:?}: {}",
            plain.log_text()
        );
        drop(plain);

        // A TLS client of a `tls = yes` listener: re-encrypted, with the header.
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let section = format!(
            "{remote}\n tls cert-file = {}\n tls key-file = {}",
            certs.join("cert.pem").display(),
            certs.join("key.pem").display()
        );
        let reencrypting = relay(dir.path(), port, "tls = yes", "", &section);
        let mut connector =
            openssl::ssl::SslConnector::builder(openssl::ssl::SslMethod::tls_client()).unwrap();
        connector.set_ca_file(certs.join("cert.pem")).unwrap();
        let tcp = connect(port);
        let me = tcp.local_addr().unwrap();
        let mut tls = connector
            .build()
            .connect("localhost", tcp)
            .expect("TLS handshake with the relay");
        let mut answer = Vec::new();
        let _ = tls.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer).into_owned();
        assert!(
            answer.starts_with(&format!("{me} TLSv1.")) && answer.ends_with('\n'),
            "{version} re-encrypted: {answer:?}: {}",
            reencrypting.log_text()
        );
    }
}

/// Raw clients on a PROXY-accepting listener: bad headers are closed without a
/// byte and never reach the remote, a client that sends no header is closed after
/// `accept proxy timeout`; each is counted (ctl status `refused_proxy`, the metric
/// family's sample) and logged once per peer.
#[test]
fn bad_headers_and_silence_are_closed_counted_and_logged_once() {
    let dir = tempfile::tempdir().unwrap();
    let echo = Echo::start();
    let port = free_port();
    let relay = relay(
        dir.path(),
        port,
        "accept proxy = any accept proxy from = 127.0.0.1/32 accept proxy timeout = 1",
        "",
        &format!("remote = {{ address = 127.0.0.1 port = {} }}", echo.port),
    );
    for bad in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\nhello",
        b"\r\n\r\n\0\r\nQUIT\n\x31\x11\0\x0c",
    ] {
        let mut client = connect(port);
        assert_eq!(exchange(&mut client, bad), b"", "{bad:?} was answered");
    }
    let started = Instant::now();
    let mut silent = connect(port);
    let mut byte = [0u8; 1];
    // An end of file, and nothing else: an error (a reset, the read timeout) is not
    // the relay's close by the timeout and is shown as it is.
    let read = loop {
        match silent.read(&mut byte) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => break other,
        }
    };
    let waited = started.elapsed();
    assert!(
        matches!(read, Ok(0)),
        "not an end of file after {waited:?}: {read:?}"
    );
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(4),
        "closed after {waited:?}"
    );
    assert_eq!(
        echo.connections.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    // Counted: the control socket's status.
    let deadline = Instant::now() + WITHIN;
    loop {
        let out = Command::new(harness::bin("tcprelay"))
            .args(["ctl", "--json", "status"])
            .env("RUNTIME_DIRECTORY", dir.path())
            .output()
            .unwrap();
        let status: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        if status["totals"]["refused_proxy"] == 4 {
            break;
        }
        assert!(Instant::now() < deadline, "{status}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The worker's SIGUSR1 status line counts them where it counts ACL denials.
    relay.signal(libc::SIGUSR1);
    relay.await_log(", 4 refused by accept proxy", WITHIN);
    // Logged once for the peer (127.0.0.1), the first refusal.
    let log = relay.log_text();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(" closed: ")).collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert!(
        lines[0].contains("bad PROXY header: not a PROXY protocol header"),
        "{log}"
    );
    assert!(
        !log.contains("session_close"),
        "no record for a refusal: {log}"
    );
}

/// A client of a Unix-domain listener has no address to send: a `send proxy`
/// remote gets `PROXY UNKNOWN` (v1) or the PROXY command with AF_UNSPEC and no
/// addresses (v2), then the client's bytes.
#[test]
fn a_unix_client_is_sent_as_unknown() {
    let mut unspec = tcprelay::proxy::SIGNATURE_V2.to_vec();
    unspec.extend_from_slice(&[0x21, 0x00, 0, 0]);
    for (version, header) in [("v1", b"PROXY UNKNOWN\r\n".to_vec()), ("v2", unspec)] {
        let dir = tempfile::tempdir().unwrap();
        let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        server.set_nonblocking(true).unwrap();
        let back = server.local_addr().unwrap().port();
        let sock = dir.path().join("relay.sock");
        let cfg = format!(
            "id = spawnd {{\n listen = {{ path = {} }}\n spawn = {{ servers min = 1 servers max = 1 }}\n}}\nid = tcprelay {{\n remote = {{ address = 127.0.0.1 port = {back} send proxy = {version} }}\n}}\n",
            sock.display()
        );
        let _relay = Relay::run_config(dir.path(), &cfg, 0);
        let mut client = std::os::unix::net::UnixStream::connect(&sock).expect("connect");
        client.write_all(b"x").unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        let deadline = Instant::now() + WITHIN;
        let mut remote = loop {
            match server.accept() {
                Ok((stream, _)) => break stream,
                Err(_) => {
                    assert!(
                        Instant::now() < deadline,
                        "{version}: no connection to the remote"
                    );
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        };
        remote.set_nonblocking(false).unwrap();
        remote.set_read_timeout(Some(WITHIN)).unwrap();
        let mut got = Vec::new();
        remote.read_to_end(&mut got).expect("read");
        let mut want = header.clone();
        want.push(b'x');
        assert_eq!(got, want, "{version}");
    }
}
