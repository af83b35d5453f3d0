//! TLS load generator for the side-by-side benchmark (`bench/run.sh`); not part of
//! tcprelay.
//!
//! ```text
//! tlsload handshakes [--seconds S] [--concurrency C] [--handshake-only] [--ciphersuites L] [--plain] ADDR
//! tlsload bulk [--seconds S] [--connections N] [--chunk BYTES] [--ciphersuites L] [--plain] ADDR
//! tlsload sink ADDR
//! tlsload tls-sink --cert PEM --key PEM ADDR
//! ```
//!
//! - `handshakes`: C threads each open connections one after the other for S seconds,
//!   every one a full handshake (no session is ever reused; TLS 1.3 unless the server
//!   only offers 1.2). By default each connection then sends one byte, sends
//!   close_notify and waits for the end of file, so it counts only connections that
//!   the terminator really relayed to its backend and closed in order;
//!   `--handshake-only` closes right after the handshake.
//! - `bulk`: N connections write S seconds of data as fast as the server takes it.
//! - `sink`: a plain TCP server that reads and discards everything and closes a
//!   connection when its client has finished (the backend behind a TLS terminator).
//!   Prints `listening on ADDR` (the port chosen by the OS for port 0).
//! - `tls-sink`: the same behind TLS (the server a relay originating TLS connects
//!   to): TLS 1.2 and 1.3 with OpenSSL's defaults, session tickets on, so that a
//!   client that offers a session resumes it.
//! - `--plain`: the load modes connect without TLS, to a relay that originates TLS
//!   towards a `tls-sink` (stunnel's client mode): the same figures, measured
//!   through the relay's client side (`handshakes` then counts the relay's
//!   handshakes, with whatever resumption the relay does).
//!
//! `--ciphersuites` restricts the TLS 1.3 suites the client offers (OpenSSL syntax,
//! e.g. `TLS_AES_128_GCM_SHA256`), so that servers with different preferences can be
//! compared on the same cipher. The load modes print one line of JSON on standard output; certificates are not
//! verified (the benchmark's certificate is self-signed).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::exit;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openssl::ssl::{Ssl, SslContext, SslMethod, SslSessionCacheMode, SslStream, SslVerifyMode};

const USAGE: &str =
    "usage: tlsload handshakes [--seconds S] [--concurrency C] [--handshake-only] [--ciphersuites L] [--plain] ADDR
       tlsload bulk [--seconds S] [--connections N] [--chunk BYTES] [--ciphersuites L] [--plain] ADDR
       tlsload sink ADDR
       tlsload tls-sink --cert PEM --key PEM ADDR";

struct Opts {
    seconds: f64,
    threads: usize,
    chunk: usize,
    handshake_only: bool,
    ciphersuites: Option<String>,
    plain: bool,
    cert: Option<String>,
    key: Option<String>,
    addr: String,
}

fn parse(args: &[String], default_threads: usize) -> Opts {
    let mut o = Opts {
        seconds: 5.0,
        threads: default_threads,
        chunk: 64 * 1024,
        handshake_only: false,
        ciphersuites: None,
        plain: false,
        cert: None,
        key: None,
        addr: String::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| -> String {
            it.next()
                .cloned()
                .unwrap_or_else(|| die(&format!("{name} needs a value")))
        };
        match a.as_str() {
            "--seconds" => o.seconds = num(&value(a), a),
            "--concurrency" | "--connections" => o.threads = num::<usize>(&value(a), a).max(1),
            "--chunk" => o.chunk = num::<usize>(&value(a), a).max(1),
            "--handshake-only" => o.handshake_only = true,
            "--ciphersuites" => o.ciphersuites = Some(value(a)),
            "--plain" => o.plain = true,
            "--cert" => o.cert = Some(value(a)),
            "--key" => o.key = Some(value(a)),
            _ if a.starts_with("--") => die(&format!("unknown option {a}")),
            _ if o.addr.is_empty() => o.addr = a.clone(),
            _ => die(&format!("unexpected argument {a}")),
        }
    }
    if o.addr.is_empty() {
        die("an address is required");
    }
    o
}

fn num<T: std::str::FromStr>(s: &str, what: &str) -> T {
    s.parse()
        .unwrap_or_else(|_| die(&format!("{what}: not a number: {s}")))
}

fn die(msg: &str) -> ! {
    eprintln!("tlsload: {msg}\n{USAGE}");
    exit(2)
}

fn client_context(o: &Opts) -> SslContext {
    let mut b = SslContext::builder(SslMethod::tls_client()).expect("SSL_CTX_new");
    if let Some(list) = &o.ciphersuites {
        b.set_ciphersuites(list)
            .unwrap_or_else(|e| die(&format!("--ciphersuites {list}: {e}")));
    }
    b.set_verify(SslVerifyMode::NONE);
    b.set_session_cache_mode(SslSessionCacheMode::OFF);
    b.build()
}

/// A client connection: TLS, or plain TCP with `--plain`.
enum Conn {
    Tls(SslStream<TcpStream>),
    Plain(TcpStream),
}

impl Conn {
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Conn::Tls(s) => s.write_all(buf),
            Conn::Plain(s) => s.write_all(buf),
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Tls(s) => s.read(buf),
            Conn::Plain(s) => s.read(buf),
        }
    }

    /// close_notify, or a FIN.
    fn finish(&mut self) {
        match self {
            Conn::Tls(s) => {
                let _ = s.shutdown();
            }
            Conn::Plain(s) => {
                let _ = s.shutdown(Shutdown::Write);
            }
        }
    }

    fn close(&mut self) {
        self.finish();
        let tcp = match self {
            Conn::Tls(s) => s.get_ref(),
            Conn::Plain(s) => &*s,
        };
        let _ = tcp.shutdown(Shutdown::Both);
    }
}

fn connect(ctx: &SslContext, o: &Opts) -> Result<Conn, String> {
    let tcp = TcpStream::connect(&o.addr).map_err(|e| format!("connect: {e}"))?;
    tcp.set_nodelay(true).ok();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).ok();
    tcp.set_write_timeout(Some(Duration::from_secs(10))).ok();
    if o.plain {
        return Ok(Conn::Plain(tcp));
    }
    let ssl = Ssl::new(ctx).map_err(|e| format!("SSL_new: {e}"))?;
    ssl.connect(tcp)
        .map(Conn::Tls)
        .map_err(|e| format!("handshake: {e}"))
}

/// What a load run saw: counts, the first errors, and the negotiated protocol.
#[derive(Default)]
struct Tally {
    errors: AtomicU64,
    first_errors: Mutex<Vec<String>>,
    negotiated: Mutex<Option<(String, String)>>,
}

impl Tally {
    fn error(&self, e: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_errors.lock().unwrap();
        if first.len() < 3 {
            first.push(e);
        }
    }

    fn note(&self, s: &Conn) {
        let Conn::Tls(s) = s else {
            return;
        };
        let mut n = self.negotiated.lock().unwrap();
        if n.is_none() {
            let cipher = s.ssl().current_cipher().map_or("?", |c| c.name());
            *n = Some((s.ssl().version_str().to_string(), cipher.to_string()));
        }
    }

    fn json_tail(&self) -> String {
        let (version, cipher) = self
            .negotiated
            .lock()
            .unwrap()
            .clone()
            .unwrap_or_else(|| ("?".into(), "?".into()));
        let errs: Vec<String> = self
            .first_errors
            .lock()
            .unwrap()
            .iter()
            .map(|e| format!("\"{}\"", e.replace(['"', '\\'], "'")))
            .collect();
        format!(
            "\"errors\":{},\"protocol\":\"{version}\",\"cipher\":\"{cipher}\",\"first_errors\":[{}]",
            self.errors.load(Ordering::Relaxed),
            errs.join(",")
        )
    }
}

/// One connection of the handshake test: handshake, then (unless `handshake_only`)
/// one byte, close_notify, and wait for the end of file from the terminator.
fn one_handshake(ctx: &SslContext, o: &Opts, tally: &Tally) -> Result<(), String> {
    let mut s = connect(ctx, o)?;
    tally.note(&s);
    if o.handshake_only {
        s.finish();
        return Ok(());
    }
    s.write_all(b"x").map_err(|e| format!("write: {e}"))?;
    s.finish();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) => {
                // A peer that closes the TCP connection without close_notify ends
                // the session too; only a timeout is a failure.
                return match e.kind() {
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                        Err("no end of file within 10 s".into())
                    }
                    _ => Ok(()),
                };
            }
        }
    }
}

fn handshakes(o: Opts) {
    let ctx = client_context(&o);
    let tally = Arc::new(Tally::default());
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(o.seconds);
    let o = Arc::new(o);
    let workers: Vec<_> = (0..o.threads)
        .map(|_| {
            let (ctx, o, tally, done) = (ctx.clone(), o.clone(), tally.clone(), done.clone());
            std::thread::spawn(move || {
                while Instant::now() < deadline {
                    match one_handshake(&ctx, &o, &tally) {
                        Ok(()) => {
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            tally.error(e);
                            std::thread::sleep(Duration::from_millis(1));
                        }
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker thread");
    }
    let secs = start.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed);
    println!(
        "{{\"mode\":\"handshakes\",\"count\":{n},\"seconds\":{secs:.3},\"rate\":{:.1},\"concurrency\":{},\"roundtrip\":{},{}}}",
        n as f64 / secs,
        o.threads,
        !o.handshake_only,
        tally.json_tail()
    );
}

fn bulk(o: Opts) {
    let ctx = client_context(&o);
    let tally = Arc::new(Tally::default());
    let bytes = Arc::new(AtomicU64::new(0));
    let o = Arc::new(o);
    let ready = Arc::new(std::sync::Barrier::new(o.threads + 1));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..o.threads)
        .map(|_| {
            let (ctx, o, tally, bytes) = (ctx.clone(), o.clone(), tally.clone(), bytes.clone());
            let (ready, stop) = (ready.clone(), stop.clone());
            std::thread::spawn(move || {
                let conn = connect(&ctx, &o);
                ready.wait();
                let mut s = match conn {
                    Ok(s) => s,
                    Err(e) => return tally.error(e),
                };
                tally.note(&s);
                let chunk = vec![0x5au8; o.chunk];
                while !stop.load(Ordering::Relaxed) {
                    match s.write_all(&chunk) {
                        Ok(()) => {
                            bytes.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                        }
                        Err(e) => return tally.error(format!("write: {e}")),
                    }
                }
                s.close();
            })
        })
        .collect();
    // Time only the transfer: every connection has finished its handshake here.
    ready.wait();
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(o.seconds));
    let sent = bytes.load(Ordering::Relaxed);
    let secs = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().expect("worker thread");
    }
    println!(
        "{{\"mode\":\"bulk\",\"bytes\":{sent},\"seconds\":{secs:.3},\"mb_per_s\":{:.1},\"connections\":{},{}}}",
        sent as f64 / secs / 1e6,
        o.threads,
        tally.json_tail()
    );
}

fn sink(addr: &str) {
    let listener = TcpListener::bind(addr).unwrap_or_else(|e| die(&format!("bind {addr}: {e}")));
    let local = listener.local_addr().expect("local address");
    println!("listening on {local}");
    let _ = std::io::stdout().flush();
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else {
            // EMFILE and the like: let descriptors free up.
            std::thread::sleep(Duration::from_millis(5));
            continue;
        };
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 256 * 1024];
            while let Ok(n) = stream.read(&mut buf) {
                if n == 0 {
                    break;
                }
            }
        });
    }
}

/// The `sink` behind TLS: one thread per connection, a full handshake or a
/// resumption (tickets), then everything read and discarded.
fn tls_sink(o: Opts) {
    let (Some(cert), Some(key)) = (&o.cert, &o.key) else {
        die("tls-sink needs --cert and --key")
    };
    let mut b = openssl::ssl::SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())
        .expect("SSL_CTX_new");
    b.set_certificate_chain_file(cert)
        .unwrap_or_else(|e| die(&format!("--cert {cert}: {e}")));
    b.set_private_key_file(key, openssl::ssl::SslFiletype::PEM)
        .unwrap_or_else(|e| die(&format!("--key {key}: {e}")));
    let acceptor = Arc::new(b.build());
    let listener =
        TcpListener::bind(&o.addr).unwrap_or_else(|e| die(&format!("bind {}: {e}", o.addr)));
    let local = listener.local_addr().expect("local address");
    println!("listening on {local}");
    let _ = std::io::stdout().flush();
    for stream in listener.incoming() {
        let Ok(stream) = stream else {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        };
        let acceptor = acceptor.clone();
        std::thread::spawn(move || {
            stream.set_read_timeout(Some(Duration::from_secs(60))).ok();
            let Ok(mut s) = acceptor.accept(stream) else {
                return;
            };
            let mut buf = vec![0u8; 256 * 1024];
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 {
                    break;
                }
            }
            let _ = s.shutdown();
        });
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(mode) = args.first() else {
        die("a mode is required")
    };
    match mode.as_str() {
        "handshakes" => handshakes(parse(&args[1..], 4)),
        "bulk" => bulk(parse(&args[1..], 1)),
        "sink" => match &args[1..] {
            [addr] => sink(addr),
            _ => die("sink takes one address"),
        },
        "tls-sink" => tls_sink(parse(&args[1..], 1)),
        "-h" | "--help" => println!("{USAGE}"),
        _ => die(&format!("unknown mode {mode}")),
    }
}
