//! One check of one remote, a step at a time and never blocking: a non-blocking
//! connect, then (with `tls`) a client handshake, then `send`, then the first reply
//! read and matched against `expect`. [`Probe::advance`] runs as far as the socket
//! lets it and says how the check ended, or that it waits for readiness; the
//! checker's loop enforces the timeout.

use super::Target;
use crate::health::Outcome;
use openssl::ssl::{ErrorCode, Ssl, SslStream};
use socket2::{Domain, Socket, Type};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsRawFd, RawFd};
use tcprelay_plan::{Expect, Protocol, MAX_CHECK_BYTES};

/// Where a check is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Connecting,
    Handshake,
    Sending,
    Reading,
}

#[derive(Debug)]
enum Conn {
    Plain(TcpStream),
    Tls(SslStream<TcpStream>),
    /// Only while the stream moves into TLS.
    Gone,
}

/// A check under way.
#[derive(Debug)]
pub struct Probe {
    conn: Conn,
    phase: Phase,
    sent: usize,
    reply: Vec<u8>,
    /// The TLS session the handshake uses once connected (`Some` with `tls`).
    ssl: Option<Ssl>,
}

impl Probe {
    /// Starts a connect to `target`; an immediate failure is the check's outcome.
    pub fn start(target: &Target) -> Result<Probe, Outcome> {
        let ssl = match (&target.check.tls, &target.tls_context) {
            (false, _) => None,
            (true, Some(Ok(context))) => {
                // Every check is a full handshake: a resumed one would not show
                // the certificate again.
                context.forget_session();
                Some(context.ssl(target.address.ip()).map_err(|_| Outcome::Tls)?)
            }
            // The context could not be built (logged once at start).
            (true, _) => return Err(Outcome::Tls),
        };
        let protocol = match target.protocol {
            Protocol::Tcp => socket2::Protocol::TCP,
            Protocol::Sctp => socket2::Protocol::from(libc::IPPROTO_SCTP),
        };
        let socket = Socket::new(
            Domain::for_address(target.address),
            Type::STREAM.nonblocking().cloexec(),
            Some(protocol),
        )
        .map_err(|_| Outcome::Error)?;
        match socket.connect(&target.address.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(connect_outcome(&e)),
        }
        Ok(Probe {
            conn: Conn::Plain(TcpStream::from(socket)),
            phase: Phase::Connecting,
            sent: 0,
            reply: Vec::new(),
            ssl,
        })
    }

    /// The socket, to watch for readiness.
    pub fn fd(&self) -> RawFd {
        match &self.conn {
            Conn::Plain(s) => s.as_raw_fd(),
            Conn::Tls(s) => s.get_ref().as_raw_fd(),
            Conn::Gone => -1,
        }
    }

    /// Runs the check as far as it can go now: `Some` when it has ended.
    pub fn advance(&mut self, target: &Target) -> Option<Outcome> {
        loop {
            match self.phase {
                Phase::Connecting => {
                    let Conn::Plain(stream) = &self.conn else {
                        return Some(Outcome::Error);
                    };
                    match stream.take_error() {
                        Ok(Some(e)) | Err(e) => return Some(connect_outcome(&e)),
                        Ok(None) => {}
                    }
                    match stream.peer_addr() {
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::NotConnected => return None,
                        Err(e) => return Some(connect_outcome(&e)),
                    }
                    self.phase = if self.ssl.is_some() {
                        Phase::Handshake
                    } else {
                        Phase::Sending
                    };
                }
                Phase::Handshake => {
                    if let Some(ssl) = self.ssl.take() {
                        let Conn::Plain(stream) = std::mem::replace(&mut self.conn, Conn::Gone)
                        else {
                            return Some(Outcome::Error);
                        };
                        match SslStream::new(ssl, stream) {
                            Ok(s) => self.conn = Conn::Tls(s),
                            Err(_) => return Some(Outcome::Tls),
                        }
                    }
                    let Conn::Tls(stream) = &mut self.conn else {
                        return Some(Outcome::Error);
                    };
                    match stream.connect() {
                        Ok(()) => self.phase = Phase::Sending,
                        Err(e) if would_block(e.code()) => return None,
                        Err(_) => return Some(Outcome::Tls),
                    }
                }
                Phase::Sending => {
                    let send = target.check.send.as_deref().unwrap_or_default();
                    while self.sent < send.len() {
                        match self.write(&send[self.sent..]) {
                            Ok(0) => return Some(Outcome::Closed),
                            Ok(n) => self.sent += n,
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(e) => return Some(io_outcome(&e)),
                        }
                    }
                    if target.check.expect.is_none() {
                        return Some(Outcome::Pass);
                    }
                    self.phase = Phase::Reading;
                }
                Phase::Reading => return self.read_reply(target),
            }
        }
    }

    /// Reads the reply until `expect` is decided.
    fn read_reply(&mut self, target: &Target) -> Option<Outcome> {
        let mut buf = vec![0; MAX_CHECK_BYTES];
        loop {
            let room = MAX_CHECK_BYTES - self.reply.len();
            match self.read(&mut buf[..room.max(1)]) {
                Ok(0) => {
                    return Some(if self.reply.is_empty() {
                        Outcome::Closed
                    } else {
                        Outcome::Mismatch
                    })
                }
                Ok(n) => {
                    self.reply.extend_from_slice(&buf[..n]);
                    if let Some(outcome) = judge(target, &self.reply) {
                        return Some(outcome);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Some(io_outcome(&e)),
            }
        }
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        match &mut self.conn {
            Conn::Plain(s) => s.write(bytes),
            Conn::Tls(s) => s.ssl_write(bytes).map_err(ssl_io),
            Conn::Gone => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.conn {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => match s.ssl_read(buf) {
                Ok(n) => Ok(n),
                Err(e) if e.code() == ErrorCode::ZERO_RETURN => Ok(0),
                Err(e) => Err(ssl_io(e)),
            },
            Conn::Gone => Err(io::ErrorKind::NotConnected.into()),
        }
    }
}

/// Whether the reply read so far decides `expect`: `Bytes` when it holds as many
/// bytes as expected (or differs before), `Regex` on the first read.
pub fn judge(target: &Target, reply: &[u8]) -> Option<Outcome> {
    match &target.check.expect {
        None => Some(Outcome::Pass),
        Some(Expect::Bytes(want)) => {
            let n = reply.len().min(want.len());
            if reply[..n] != want[..n] {
                Some(Outcome::Mismatch)
            } else if n == want.len() {
                Some(Outcome::Pass)
            } else {
                None
            }
        }
        Some(Expect::Regex(_)) => {
            let text = String::from_utf8_lossy(reply);
            let matched = target.regex.as_ref().is_some_and(|r| r.is_match(&text));
            Some(if matched {
                Outcome::Pass
            } else {
                Outcome::Mismatch
            })
        }
    }
}

fn would_block(code: ErrorCode) -> bool {
    code == ErrorCode::WANT_READ || code == ErrorCode::WANT_WRITE
}

fn ssl_io(e: openssl::ssl::Error) -> io::Error {
    if would_block(e.code()) {
        return io::ErrorKind::WouldBlock.into();
    }
    e.into_io_error()
        .unwrap_or_else(|e| io::Error::new(io::ErrorKind::ConnectionAborted, e.to_string()))
}

/// A failed connect: the remote refused or cannot be reached, or a local error.
fn connect_outcome(e: &io::Error) -> Outcome {
    match e.raw_os_error() {
        Some(
            libc::ECONNREFUSED
            | libc::EHOSTUNREACH
            | libc::ENETUNREACH
            | libc::EHOSTDOWN
            | libc::ENETDOWN
            | libc::ECONNRESET,
        ) => Outcome::Refused,
        Some(libc::ETIMEDOUT) => Outcome::Timeout,
        _ => Outcome::Error,
    }
}

/// A failed read or write once connected.
fn io_outcome(e: &io::Error) -> Outcome {
    match e.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::UnexpectedEof => Outcome::Closed,
        _ => Outcome::Error,
    }
}
