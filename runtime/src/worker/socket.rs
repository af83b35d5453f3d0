//! The kernel streams a worker relays between: TCP (and SCTP, which the kernel
//! offers as a stream socket) and Unix-domain streams, as one [`Socket`] with the
//! [`Transport`] operations a kernel stream has.
//!
//! A [`Socket`] is relayed as it is ([`super::stream::Stream::Plain`]) or wrapped
//! in TLS ([`super::tls_stream::TlsStream`], which reads and writes it through
//! OpenSSL and asks it for its descriptor, errors and unsent bytes).

use super::transport::Transport;
use mio::event::Source;
use mio::net::{TcpStream, UnixStream};
use mio::{Interest, Registry, Token};
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;

/// What a TCP socket's kernel still holds of the bytes written to it, not sent or
/// not acknowledged (`TIOCOUTQ`). A socket that cannot say (SCTP, another system)
/// reports an error: the caller does not wait then.
pub use crate::sys::net::unsent;

/// A kernel stream socket.
#[derive(Debug)]
pub enum Socket {
    /// TCP, or SCTP opened as a one-to-one stream socket.
    Tcp(TcpStream),
    Unix(UnixStream),
}

fn tcp_connect_status(stream: &TcpStream) -> io::Result<bool> {
    if let Some(e) = stream.take_error()? {
        return Err(e);
    }
    match stream.peer_addr() {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
        Err(e) => Err(e),
    }
}

/// A TCP socket's read: `recv(2)` with no flags, as std's `TcpStream::read` makes
/// it (the `recvfrom` system call on Linux), but made by rustix directly. libc's
/// `recv` wraps the call in the thread-cancellation bookkeeping (a cancellation
/// point; the worker cancels no threads), and std and mio add their own layers:
/// together several times the user-space instructions of the call itself, on the
/// path of every relayed read.
#[inline]
fn tcp_recv(stream: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    use rustix::net::{recv, RecvFlags};
    Ok(recv(stream, buf, RecvFlags::empty())?.0)
}

/// A TCP socket's write: `send(2)` with `MSG_NOSIGNAL`, as std's
/// `TcpStream::write` makes it (`sendto` on Linux), made by rustix directly (see
/// [`tcp_recv`]).
#[inline]
fn tcp_send(stream: &TcpStream, buf: &[u8]) -> io::Result<usize> {
    use rustix::net::{send, SendFlags};
    Ok(send(stream, buf, SendFlags::NOSIGNAL)?)
}

/// The operations of a kernel stream; a [`super::stream::Stream`] passes them on
/// (the small ones are inlined there: they are on the relay's path).
impl Transport for Socket {
    #[inline]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Socket::Tcp(s) => tcp_recv(s, buf),
            Socket::Unix(s) => s.read(buf),
        }
    }

    #[inline]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Socket::Tcp(s) => tcp_send(s, buf),
            Socket::Unix(s) => s.write(buf),
        }
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        match self {
            Socket::Tcp(s) => s.shutdown(Shutdown::Write),
            Socket::Unix(s) => s.shutdown(Shutdown::Write),
        }
    }

    fn reset_on_close(&mut self) {
        match self {
            // Best effort: if it fails the peer sees a FIN instead of a reset.
            Socket::Tcp(s) => {
                let _ = socket2::SockRef::from(&*s).set_linger(Some(Duration::ZERO));
            }
            Socket::Unix(_) => {}
        }
    }

    fn take_error(&self) -> io::Result<Option<io::Error>> {
        match self {
            Socket::Tcp(s) => s.take_error(),
            Socket::Unix(s) => s.take_error(),
        }
    }

    fn connect_status(&self) -> io::Result<bool> {
        match self {
            Socket::Tcp(s) => tcp_connect_status(s),
            Socket::Unix(s) => match s.take_error()? {
                Some(e) => Err(e),
                None => Ok(true),
            },
        }
    }

    #[inline]
    fn short_read_drains(&self) -> bool {
        // With epoll, data arriving after a short read raises a new edge, and poll
        // and select are re-armed after it (they report data still there); kqueue
        // is not relied upon.
        cfg!(any(target_os = "linux", target_os = "android"))
    }

    #[inline]
    fn close_sends_eof(&self) -> bool {
        true
    }

    #[inline]
    fn splice_fd(&self) -> Option<BorrowedFd<'_>> {
        if cfg!(any(target_os = "linux", target_os = "android")) {
            Some(self.as_fd())
        } else {
            None
        }
    }

    fn unsent(&self) -> io::Result<usize> {
        match self {
            Socket::Tcp(s) => unsent(s),
            Socket::Unix(_) => Ok(0),
        }
    }
}

impl Source for Socket {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        match self {
            Socket::Tcp(s) => s.register(registry, token, interests),
            Socket::Unix(s) => s.register(registry, token, interests),
        }
    }

    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        match self {
            Socket::Tcp(s) => s.reregister(registry, token, interests),
            Socket::Unix(s) => s.reregister(registry, token, interests),
        }
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        match self {
            Socket::Tcp(s) => s.deregister(registry),
            Socket::Unix(s) => s.deregister(registry),
        }
    }
}

impl AsFd for Socket {
    #[inline]
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Socket::Tcp(s) => s.as_fd(),
            Socket::Unix(s) => s.as_fd(),
        }
    }
}

/// The socket's descriptor, for the poller.
impl AsRawFd for Socket {
    #[inline]
    fn as_raw_fd(&self) -> RawFd {
        self.as_fd().as_raw_fd()
    }
}
