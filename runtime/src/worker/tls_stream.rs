//! The TLS sides of a session: an OpenSSL server stream over the accepted socket,
//! or a client stream over the socket connected to a `tls = yes` remote
//! ([`TlsStream::connect`]), behind the same [`Transport`] operations as a plain
//! socket, so the relay is written once.
//!
//! OpenSSL is non-blocking here, and its rules shape this module:
//! - `WANT_READ`/`WANT_WRITE` become `WouldBlock`; which readiness the operation waits
//!   for is remembered, because a read may need the socket writable (a TLS 1.3 key
//!   update answered while the send buffer is full) and a write may need it readable.
//!   [`Transport::readiness`] turns the awaited event into readiness of the blocked
//!   operation, so an edge-triggered loop retries it.
//! - A write that returned `WouldBlock` is retried with the same bytes: the relay
//!   keeps the unsent rest in its own buffer and writes it first (the context sets
//!   `ACCEPT_MOVING_WRITE_BUFFER`, since that buffer is not the scratch buffer).
//!   With `ENABLE_PARTIAL_WRITE` OpenSSL writes one record per call, so [`write`]
//!   loops until the socket is full, as a kernel write would.
//! - OpenSSL holds decrypted (and, with read-ahead, raw) bytes the socket no longer
//!   reports: [`read`] fills the caller's buffer from several records, and a short
//!   read never counts as "drained" (`short_read_drains` is false), so the relay
//!   reads until `WouldBlock` and nothing is stranded.
//! - close_notify from the client is end of file (as is a close without it: the
//!   context ignores an unexpected EOF, as a relay of plain TCP would); end of file
//!   from the remote becomes a close_notify to the client ([`shutdown_write`]),
//!   retried when writable if the socket is full; the TCP connection stays open for
//!   the other direction.
//!
//! The handshake runs before the session connects to a remote (see
//! `session::State::TlsHandshake`), so a client that sends garbage or nothing never
//! reaches a remote; it is bounded by [`HANDSHAKE_TIMEOUT`].
//!
//! In client mode the same rules hold with the roles swapped: close_notify from the
//! remote is end of file, end of file from the client becomes a close_notify to the
//! remote. The handshake runs once the TCP connect is complete (and after a PROXY
//! header written raw on the socket), while the session is still connecting (see
//! `session::Connecting::handshake`); it is not counted against the handshake slots,
//! which bound what clients can make a worker spend.
//!
//! [`read`]: TlsStream::read
//! [`write`]: TlsStream::write
//! [`shutdown_write`]: TlsStream::shutdown_write

use super::socket::Socket;
use super::transport::Transport;
use crate::sys::net::SocketIo;
use mio::event::Source;
use mio::{Interest, Registry, Token};
use openssl::ssl::{self, ErrorCode, Ssl, SslContext, SslContextRef, SslStream, SslVersion};
use std::cell::Cell;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;
use tcprelay_plan::TlsVersion;

/// How long a client may take to complete the TLS handshake before it is closed:
/// 10 seconds, ample for a round trip or two on a slow mobile path, short enough
/// that clients which connect and stall do not pile up.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What a blocked OpenSSL operation waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    None,
    Readable,
    Writable,
}

/// Something a read found after it had already returned data: reported by the next.
#[derive(Debug)]
enum Deferred {
    Eof,
    Error(io::Error),
}

/// How many handshakes a worker runs at once by default (see [`set_handshake_limit`]).
pub const MAX_HANDSHAKES: usize = 256;

thread_local! {
    /// Handshakes under way in this worker, and how many may be. Per thread: a
    /// worker is one thread (the worker tests run several in one process).
    static UNDER_WAY: Cell<usize> = const { Cell::new(0) };
    static LIMIT: Cell<usize> = const { Cell::new(MAX_HANDSHAKES) };
    /// OpenSSL connections made so far (one per handshake started).
    static STARTED: Cell<usize> = const { Cell::new(0) };
}

/// How many handshakes this worker has started (each made an OpenSSL connection).
pub fn handshakes_started() -> usize {
    STARTED.get()
}

/// Sets how many handshakes this worker runs at once.
pub fn set_handshake_limit(limit: usize) {
    LIMIT.set(limit.max(1));
}

/// How many handshakes are under way in this worker.
pub fn handshakes_under_way() -> usize {
    UNDER_WAY.get()
}

/// Whether a handshake waiting for its turn ([`Transport::handshake`] returned
/// `ResourceBusy`) may start now.
pub fn handshake_room() -> bool {
    UNDER_WAY.get() < LIMIT.get()
}

/// A TLS server connection over an accepted socket.
///
/// Memory: an OpenSSL connection costs about 8 KiB and its handshake's buffers about
/// 30 KiB more, so neither is made before the client has sent something (a
/// connection that stays silent costs the session record alone), and at most a
/// limited number of handshakes run at once per worker ([`MAX_HANDSHAKES`]); a
/// client whose turn has not come waits, its bytes in the kernel, within the
/// handshake timeout.
#[derive(Debug)]
pub struct TlsStream {
    socket: Socket,
    /// OpenSSL's connection, made when the handshake starts.
    stream: Option<SslStream<SocketIo>>,
    /// The server context of the handshake (`None`: a listener whose every SNI
    /// route passes TLS through has none: its clients never reach OpenSSL).
    context: Option<SslContext>,
    handshaken: bool,
    /// The handshake has started (the client sent something) and is counted in
    /// `UNDER_WAY` until it ends.
    started: bool,
    /// What the last blocked read (write) waits for.
    read_waits: Wait,
    write_waits: Wait,
    deferred: Option<Deferred>,
    /// Client mode: the relay connected the socket and speaks first.
    client: bool,
    /// The lowest and highest version a client may use, when the listener
    /// narrows the context's (`tls = TLSv1.2` or `TLSv1.3`).
    versions: Option<(SslVersion, SslVersion)>,
    /// `tls = auto`: a client whose first byte does not start a TLS record is
    /// relayed as it is, and then `plain` is set: every operation is the socket's.
    auto: bool,
    plain: bool,
}

impl TlsStream {
    /// Wraps an accepted socket; the handshake starts with the first [`handshake`].
    ///
    /// [`handshake`]: Transport::handshake
    pub fn accept(context: Option<&SslContextRef>, socket: Socket) -> io::Result<TlsStream> {
        Ok(TlsStream {
            socket,
            stream: None,
            context: context.map(ToOwned::to_owned),
            handshaken: false,
            started: false,
            read_waits: Wait::None,
            write_waits: Wait::None,
            deferred: None,
            client: false,
            versions: None,
            auto: false,
            plain: false,
        })
    }

    /// Narrows the versions a client may use to `versions` (empty: the context's),
    /// and with `auto` relays a client that does not start a TLS handshake in
    /// plain text.
    pub fn with_listener(mut self, versions: &[TlsVersion], auto: bool) -> TlsStream {
        let ssl_version = |v: &TlsVersion| match v {
            TlsVersion::Tls12 => SslVersion::TLS1_2,
            TlsVersion::Tls13 => SslVersion::TLS1_3,
        };
        // The plan keeps them sorted, without repeats: a range.
        self.versions = versions
            .first()
            .zip(versions.last())
            .map(|(low, high)| (ssl_version(low), ssl_version(high)));
        self.auto = auto;
        self
    }

    /// `tls = auto` found a client that does not speak TLS, or its SNI route passes
    /// TLS through: it is relayed as it is.
    pub fn is_plain(&self) -> bool {
        self.plain
    }

    /// Relays the client's bytes as they are, its TLS untouched (a passthrough SNI
    /// route, or a plain client of `tls = auto`): as `tls = auto` does for a client
    /// that does not speak TLS, nothing of OpenSSL is made. Before the handshake only.
    pub fn pass_through(&mut self) {
        if self.stream.is_none() {
            self.plain = true;
            self.handshaken = true;
        }
    }

    /// The server context the handshake uses from now on (an SNI route's own
    /// certificate). Before the handshake only.
    pub fn set_context(&mut self, context: &SslContextRef) {
        if self.stream.is_none() {
            self.context = Some(context.to_owned());
        }
    }

    /// Wraps a socket connecting to a TLS remote, with the connection `ssl` made for
    /// it (see `crate::tls_context::ClientContext::ssl`); the handshake starts with
    /// the first [`handshake`], once the connect is complete.
    ///
    /// [`handshake`]: Transport::handshake
    pub fn connect(ssl: Ssl, socket: Socket) -> io::Result<TlsStream> {
        let context = Some(ssl.ssl_context().to_owned());
        let stream = SslStream::new(ssl, SocketIo::new(socket.as_fd()))
            .map_err(|e| io::Error::other(format!("TLS setup: {e}")))?;
        Ok(TlsStream {
            socket,
            stream: Some(stream),
            context,
            handshaken: false,
            started: false,
            read_waits: Wait::None,
            write_waits: Wait::None,
            deferred: None,
            client: true,
            versions: None,
            auto: false,
            plain: false,
        })
    }

    /// The socket underneath.
    pub fn socket(&self) -> &Socket {
        &self.socket
    }

    /// The socket's descriptor.
    fn socket_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }

    /// The socket underneath, for registration and socket options only.
    pub fn socket_mut(&mut self) -> &mut Socket {
        &mut self.socket
    }

    /// The protocol version, e.g. "TLSv1.3", for logs.
    pub fn version(&self) -> &'static str {
        self.stream.as_ref().map_or("", |s| s.ssl().version_str())
    }

    /// The cipher the handshake agreed on (OpenSSL's name), for connection records;
    /// `None` before the handshake.
    pub fn cipher(&self) -> Option<&'static str> {
        self.stream
            .as_ref()
            .and_then(|s| s.ssl().current_cipher())
            .map(|c| c.name())
    }

    /// The host name the client asked for (SNI), once the handshake has read it.
    pub fn server_name(&self) -> Option<&str> {
        self.stream
            .as_ref()
            .and_then(|s| s.ssl().servername(openssl::ssl::NameType::HOST_NAME))
    }

    /// Whether the handshake resumed an earlier session, for logs.
    pub fn resumed(&self) -> bool {
        self.stream
            .as_ref()
            .is_some_and(|s| s.ssl().session_reused())
    }

    /// OpenSSL's connection; only the handshake makes it, and the relay reads and
    /// writes only after the handshake.
    fn ssl(&mut self) -> io::Result<&mut SslStream<SocketIo>> {
        self.stream
            .as_mut()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "TLS handshake not done"))
    }
}

impl TlsStream {
    /// The handshake is over (done, failed, or the connection dropped): its slot
    /// is free.
    fn end_handshake(&mut self) {
        if std::mem::take(&mut self.started) {
            UNDER_WAY.set(UNDER_WAY.get().saturating_sub(1));
        }
    }
}

impl TlsStream {
    /// Drives the client handshake on (the connection was made by `connect`).
    fn client_handshake(&mut self) -> io::Result<()> {
        clear_errors();
        let step = self.ssl()?.connect();
        self.handshake_step(step, "the remote closed during the TLS handshake")
            .unwrap_or_else(|| Err(io::ErrorKind::WouldBlock.into()))
    }

    /// What a step of either side's handshake came to: `None` while it waits (for
    /// the readiness remembered), else its end (`closed`: the message when the peer
    /// closed during it).
    fn handshake_step(
        &mut self,
        step: Result<(), ssl::Error>,
        closed: &'static str,
    ) -> Option<io::Result<()>> {
        match step {
            Ok(()) => {
                self.handshaken = true;
                self.read_waits = Wait::None;
                Some(Ok(()))
            }
            Err(e) => match sort(e) {
                Failed::Blocked(wait) => {
                    self.read_waits = wait;
                    None
                }
                Failed::Eof => Some(Err(io::Error::new(io::ErrorKind::UnexpectedEof, closed))),
                Failed::Error(e) => Some(Err(e)),
            },
        }
    }
}

impl Drop for TlsStream {
    fn drop(&mut self) {
        self.end_handshake();
    }
}

/// Whether the client has sent something (or closed, or failed: the handshake then
/// finds out) without taking it from the socket.
fn peer_has_spoken(socket: BorrowedFd<'_>) -> io::Result<bool> {
    use rustix::net::{recv, RecvFlags};
    let mut byte = [0u8; 1];
    loop {
        // MSG_PEEK leaves the byte in the socket.
        match recv(socket, &mut byte, RecvFlags::PEEK | RecvFlags::DONTWAIT) {
            Ok(_) => return Ok(true),
            Err(rustix::io::Errno::WOULDBLOCK) => return Ok(false),
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => return Ok(true),
        }
    }
}

/// Whether a client that has spoken starts with a TLS handshake record (content
/// type 22): `tls = auto` relays any other in plain text. A client that closed or
/// failed before a byte is left to the handshake, which reports it.
fn starts_a_handshake(socket: BorrowedFd<'_>) -> bool {
    use rustix::net::{recv, RecvFlags};
    let mut byte = [0u8; 1];
    loop {
        match recv(socket, &mut byte, RecvFlags::PEEK | RecvFlags::DONTWAIT) {
            Ok((1, _)) => return byte[0] == TLS_HANDSHAKE_RECORD,
            Err(rustix::io::Errno::INTR) => {}
            _ => return true,
        }
    }
}

/// The first byte of a TLS handshake record (and so of every ClientHello).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// The result of an OpenSSL operation that did not succeed, sorted for the relay.
enum Failed {
    /// `WANT_READ`/`WANT_WRITE`: retry on that readiness.
    Blocked(Wait),
    /// close_notify received (or the connection closed without it).
    Eof,
    Error(io::Error),
}

fn sort(error: ssl::Error) -> Failed {
    match error.code() {
        ErrorCode::WANT_READ => Failed::Blocked(Wait::Readable),
        ErrorCode::WANT_WRITE => Failed::Blocked(Wait::Writable),
        ErrorCode::ZERO_RETURN => Failed::Eof,
        ErrorCode::SYSCALL if error.ssl_error().is_none() => match error.into_io_error() {
            Ok(e) => Failed::Error(e),
            // OpenSSL before 3.0: the peer closed without close_notify.
            Err(_) => Failed::Eof,
        },
        // A fatal alert aborts the connection: the other side of the session is
        // reset rather than closed as if the stream had ended cleanly.
        ErrorCode::SSL | ErrorCode::SYSCALL => Failed::Error(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            match error.ssl_error() {
                Some(stack) => format!("TLS error ({})", crate::tls_context::reasons(stack)),
                None => "TLS protocol error".to_string(),
            },
        )),
        _ => Failed::Error(io::Error::other(format!("TLS: {error}"))),
    }
}

/// Empties this thread's OpenSSL error queue. OpenSSL reads the queue to classify
/// the result of an operation, and every session of the worker shares it, so it
/// must be empty before each operation (as OpenSSL's documentation requires).
fn clear_errors() {
    let _ = openssl::error::ErrorStack::get();
}

impl Transport for TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.plain {
            return self.socket.read(buf);
        }
        match self.deferred.take() {
            Some(Deferred::Eof) => return Ok(0),
            Some(Deferred::Error(e)) => return Err(e),
            None => {}
        }
        clear_errors();
        // One record per call from OpenSSL: gather several, up to the buffer, so the
        // plain side gets one large write instead of many small ones.
        let mut filled = 0;
        while filled < buf.len() {
            match self.ssl()?.ssl_read(&mut buf[filled..]) {
                Ok(n) => {
                    self.read_waits = Wait::None;
                    filled += n;
                }
                Err(e) => {
                    let deferred = match sort(e) {
                        Failed::Blocked(wait) => {
                            self.read_waits = wait;
                            return if filled == 0 {
                                Err(io::ErrorKind::WouldBlock.into())
                            } else {
                                Ok(filled)
                            };
                        }
                        Failed::Eof => Deferred::Eof,
                        Failed::Error(e) => Deferred::Error(e),
                    };
                    if filled > 0 {
                        self.deferred = Some(deferred);
                        return Ok(filled);
                    }
                    return match deferred {
                        Deferred::Eof => Ok(0),
                        Deferred::Error(e) => Err(e),
                    };
                }
            }
        }
        Ok(filled)
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // With partial writes on, OpenSSL returns after each record: go on until the
        // socket is full. A record that did not fit stays in OpenSSL and is finished
        // by the next call, which the relay makes with the same bytes.
        if self.plain {
            return self.socket.write(buf);
        }
        clear_errors();
        let mut written = 0;
        while written < buf.len() {
            match self.ssl()?.ssl_write(&buf[written..]) {
                Ok(n) => {
                    self.write_waits = Wait::None;
                    written += n;
                }
                Err(e) => {
                    let error = match sort(e) {
                        Failed::Blocked(wait) => {
                            self.write_waits = wait;
                            io::ErrorKind::WouldBlock.into()
                        }
                        Failed::Eof => io::Error::from(io::ErrorKind::BrokenPipe),
                        Failed::Error(e) => e,
                    };
                    // After a partial success the error is reported by the next call
                    // (OpenSSL stays in its failed state).
                    return if written > 0 { Ok(written) } else { Err(error) };
                }
            }
        }
        Ok(written)
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        // The first call queues and sends close_notify; after `WouldBlock` the next
        // one finishes sending it. It never waits for the client's close_notify.
        if self.plain {
            return self.socket.shutdown_write();
        }
        clear_errors();
        match self.ssl()?.shutdown() {
            Ok(_) => {
                self.write_waits = Wait::None;
                Ok(())
            }
            Err(e) => match sort(e) {
                Failed::Blocked(wait) => {
                    self.write_waits = wait;
                    Err(io::ErrorKind::WouldBlock.into())
                }
                Failed::Eof => Ok(()),
                Failed::Error(e) => Err(e),
            },
        }
    }

    fn reset_on_close(&mut self) {
        self.socket_mut().reset_on_close();
    }

    fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.socket().take_error()
    }

    fn unsent(&self) -> io::Result<usize> {
        self.socket().unsent()
    }

    fn connect_status(&self) -> io::Result<bool> {
        if self.client {
            self.socket.connect_status()
        } else {
            // An accepted socket.
            Ok(true)
        }
    }

    fn handshake_done(&self) -> bool {
        self.handshaken
    }

    fn short_read_drains(&self) -> bool {
        self.plain && self.socket.short_read_drains()
    }

    fn close_sends_eof(&self) -> bool {
        self.plain && self.socket.close_sends_eof()
    }

    fn splice_fd(&self) -> Option<BorrowedFd<'_>> {
        self.socket.splice_fd().filter(|_| self.plain)
    }

    fn handshake(&mut self) -> io::Result<()> {
        if self.handshaken {
            return Ok(());
        }
        if self.client {
            return self.client_handshake();
        }
        if !self.started {
            // Nothing of the handshake is allocated before the client speaks.
            if !peer_has_spoken(self.socket_fd())? {
                self.read_waits = Wait::Readable;
                return Err(io::ErrorKind::WouldBlock.into());
            }
            if self.auto && !starts_a_handshake(self.socket_fd()) {
                // Not TLS: relayed as it is, with nothing of OpenSSL made.
                self.plain = true;
                self.handshaken = true;
                return Ok(());
            }
            if !handshake_room() {
                return Err(io::Error::new(
                    io::ErrorKind::ResourceBusy,
                    "waiting for a handshake slot",
                ));
            }
            let setup = |e: openssl::error::ErrorStack| io::Error::other(format!("TLS setup: {e}"));
            let Some(context) = &self.context else {
                // Routes decide before this: a client reaches here only with one.
                return Err(io::Error::other("no TLS certificate for this client"));
            };
            let mut ssl = Ssl::new(context).map_err(setup)?;
            if let Some((low, high)) = self.versions {
                ssl.set_min_proto_version(Some(low)).map_err(setup)?;
                ssl.set_max_proto_version(Some(high)).map_err(setup)?;
            }
            self.stream =
                Some(SslStream::new(ssl, SocketIo::new(self.socket_fd())).map_err(setup)?);
            self.started = true;
            UNDER_WAY.set(UNDER_WAY.get() + 1);
            STARTED.set(STARTED.get() + 1);
        }
        clear_errors();
        let step = self.ssl()?.accept();
        let Some(result) = self.handshake_step(step, "closed during the TLS handshake") else {
            return Err(io::ErrorKind::WouldBlock.into());
        };
        self.end_handshake();
        result
    }

    fn readiness(&self, readable: bool, writable: bool) -> (bool, bool) {
        (
            readable || (writable && self.read_waits == Wait::Writable),
            writable || (readable && self.write_waits == Wait::Readable),
        )
    }
}

/// Registration is the socket's.
impl Source for TlsStream {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        self.socket_mut().register(registry, token, interests)
    }

    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        self.socket_mut().reregister(registry, token, interests)
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        self.socket_mut().deregister(registry)
    }
}

impl AsRawFd for TlsStream {
    fn as_raw_fd(&self) -> RawFd {
        self.socket().as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls_context::test_certs::Certs;
    use openssl::ssl::{SslConnector, SslMethod};
    use std::io::{Read, Write};

    /// A TLS transport over one end of a socket pair and a blocking client on the
    /// other, handshaken.
    fn pair() -> (
        TlsStream,
        ssl::SslStream<std::os::unix::net::UnixStream>,
        Certs,
    ) {
        let certs = Certs::new();
        let context = crate::tls_context::server_context(&certs.tls("cert.pem", "key.pem", None))
            .expect("context");
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().expect("pair");
        ours.set_nonblocking(true).expect("nonblocking");
        let mut server = TlsStream::accept(
            Some(&context),
            Socket::Unix(mio::net::UnixStream::from_std(ours)),
        )
        .expect("accept");
        let mut connector = SslConnector::builder(SslMethod::tls_client()).expect("connector");
        connector
            .cert_store_mut()
            .add_cert(certs.cert.clone())
            .expect("trust");
        let connector = connector.build();
        let client = std::thread::spawn(move || {
            theirs
                .set_read_timeout(Some(Duration::from_secs(10)))
                .expect("timeout");
            connector.connect("localhost", theirs).expect("handshake")
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            match server.handshake() {
                Ok(()) => break,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    assert!(std::time::Instant::now() < deadline, "handshake stalled");
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => panic!("server handshake: {e}"),
            }
        }
        (server, client.join().expect("client"), certs)
    }

    fn read_some(server: &mut TlsStream, buf: &mut [u8]) -> io::Result<usize> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            match server.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    assert!(std::time::Instant::now() < deadline, "read stalled");
                    std::thread::sleep(Duration::from_millis(1));
                }
                other => return other,
            }
        }
    }

    #[test]
    fn reads_gather_records_and_close_notify_is_end_of_file() {
        let (mut server, mut client, _certs) = pair();
        assert!(!server.short_read_drains());
        // Three records of 16 KiB and a bit.
        let data: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
        client.write_all(&data).expect("write");
        client.shutdown().expect("close_notify");
        let mut got = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = read_some(&mut server, &mut buf).expect("read");
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, data);
        // The other direction still works after the client's close_notify.
        assert_eq!(server.write(b"after").expect("write"), 5);
        server.shutdown_write().expect("close_notify");
        let mut back = Vec::new();
        client.read_to_end(&mut back).expect("read to close_notify");
        assert_eq!(back, b"after");
    }

    #[test]
    fn a_full_socket_blocks_writes_which_resume_with_the_same_bytes() {
        let (mut server, mut client, _certs) = pair();
        let data: Vec<u8> = (0..4_000_000u32).map(|i| (i % 253) as u8).collect();
        // Nobody reads: the socket fills and the write blocks after some records.
        let mut offset = 0;
        loop {
            match server.write(&data[offset..]) {
                Ok(n) => offset += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("write: {e}"),
            }
        }
        assert!(offset < data.len(), "the socket never filled");
        let reader = std::thread::spawn(move || {
            let mut back = vec![0u8; 4_000_000];
            client.read_exact(&mut back).expect("read");
            back
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while offset < data.len() {
            assert!(std::time::Instant::now() < deadline, "write stalled");
            match server.write(&data[offset..]) {
                Ok(n) => offset += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(1))
                }
                Err(e) => panic!("write: {e}"),
            }
        }
        assert!(reader.join().expect("reader") == data);
    }

    #[test]
    fn a_read_blocked_on_writing_becomes_readable_when_writable() {
        let (mut server, _client, _certs) = pair();
        server.read_waits = Wait::Writable;
        assert_eq!(server.readiness(false, true), (true, true));
        server.read_waits = Wait::None;
        assert_eq!(server.readiness(false, true), (false, true));
        server.write_waits = Wait::Readable;
        assert_eq!(server.readiness(true, false), (true, true));
    }

    #[test]
    fn garbage_fails_the_handshake() {
        let certs = Certs::new();
        let context = crate::tls_context::server_context(&certs.tls("cert.pem", "key.pem", None))
            .expect("context");
        let (ours, mut theirs) = std::os::unix::net::UnixStream::pair().expect("pair");
        ours.set_nonblocking(true).expect("nonblocking");
        let mut server = TlsStream::accept(
            Some(&context),
            Socket::Unix(mio::net::UnixStream::from_std(ours)),
        )
        .expect("accept");
        assert_eq!(
            server.handshake().expect_err("nothing sent").kind(),
            io::ErrorKind::WouldBlock
        );
        theirs
            .write_all(b"GET / HTTP/1.0\r\n\r\n")
            .expect("write garbage");
        let e = server.handshake().expect_err("garbage");
        assert_ne!(e.kind(), io::ErrorKind::WouldBlock, "{e}");
    }
}
