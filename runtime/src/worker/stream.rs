//! What a session's side is: a kernel [`Socket`] relayed as it is, or a client's
//! socket wrapped in TLS. [`Stream`] is the [`Transport`] the worker's sessions are
//! made of; it passes each operation on to the one or the other.

use super::socket::Socket;
use super::tls_stream::TlsStream;
use super::transport::Transport;
use mio::event::Source;
use mio::{Interest, Registry, Token};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

/// One side of a relayed connection.
#[derive(Debug)]
pub enum Stream {
    /// A kernel stream (TCP, SCTP, Unix), relayed as it is.
    Plain(Socket),
    /// A client of a `tls = yes` listener (over TCP or a Unix stream), or a
    /// connection to a `tls = yes` remote.
    Tls(Box<TlsStream>),
}

impl Stream {
    /// Whether TLS is spoken on this side: false for a plain socket and for a
    /// client `tls = auto` found not speaking TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(s) if !s.is_plain())
    }
}

impl Transport for Stream {
    #[inline]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }

    #[inline]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.shutdown_write(),
            Stream::Tls(s) => s.shutdown_write(),
        }
    }

    fn reset_on_close(&mut self) {
        match self {
            Stream::Plain(s) => s.reset_on_close(),
            Stream::Tls(s) => s.reset_on_close(),
        }
    }

    fn take_error(&self) -> io::Result<Option<io::Error>> {
        match self {
            Stream::Plain(s) => s.take_error(),
            Stream::Tls(s) => s.take_error(),
        }
    }

    fn connect_status(&self) -> io::Result<bool> {
        match self {
            Stream::Plain(s) => s.connect_status(),
            Stream::Tls(s) => s.connect_status(),
        }
    }

    #[inline]
    fn short_read_drains(&self) -> bool {
        match self {
            Stream::Plain(s) => s.short_read_drains(),
            Stream::Tls(s) => s.short_read_drains(),
        }
    }

    #[inline]
    fn close_sends_eof(&self) -> bool {
        match self {
            Stream::Plain(s) => s.close_sends_eof(),
            Stream::Tls(s) => s.close_sends_eof(),
        }
    }

    #[inline]
    fn splice_fd(&self) -> Option<BorrowedFd<'_>> {
        match self {
            Stream::Plain(s) => s.splice_fd(),
            Stream::Tls(s) => s.splice_fd(),
        }
    }

    fn unsent(&self) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.unsent(),
            Stream::Tls(s) => s.unsent(),
        }
    }

    fn handshake(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.handshake(),
            Stream::Tls(s) => s.handshake(),
        }
    }

    fn handshake_done(&self) -> bool {
        match self {
            Stream::Plain(s) => s.handshake_done(),
            Stream::Tls(s) => s.handshake_done(),
        }
    }

    fn readiness(&self, readable: bool, writable: bool) -> (bool, bool) {
        match self {
            Stream::Plain(s) => s.readiness(readable, writable),
            Stream::Tls(s) => s.readiness(readable, writable),
        }
    }
}

impl Source for Stream {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.register(registry, token, interests),
            Stream::Tls(s) => s.register(registry, token, interests),
        }
    }

    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.reregister(registry, token, interests),
            Stream::Tls(s) => s.reregister(registry, token, interests),
        }
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.deregister(registry),
            Stream::Tls(s) => s.deregister(registry),
        }
    }
}

/// The socket's descriptor, for the poller.
impl AsRawFd for Stream {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Stream::Plain(s) => s.as_raw_fd(),
            Stream::Tls(s) => s.socket().as_raw_fd(),
        }
    }
}
