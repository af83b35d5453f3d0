//! The transport seam: the few byte-stream operations the relay needs, behind one
//! trait.
//!
//! The session state machine ([`super::session`]) is written once against
//! [`Transport`]; the kernel streams (TCP, SCTP, which the kernel offers as a stream
//! socket, and Unix-domain streams: [`super::socket`]), TLS over either
//! ([`super::tls_stream`]) and the [`super::stream::Stream`] that is one or the
//! other are implementations, and the unit tests drive the state machine with an
//! in-memory fake. Registration with the poll comes from the `mio::event::Source`
//! supertrait.
//!
//! This module depends on none of them: they depend on it.

use mio::event::Source;
use std::io;
use std::os::fd::BorrowedFd;

/// A non-blocking byte stream the relay can read, write and half-close.
pub trait Transport: Source {
    /// Reads into `buf`; `Ok(0)` is end of file, `WouldBlock` means no data now.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    /// Writes from `buf`; `WouldBlock` means the send buffer is full.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize>;
    /// Sends end of file to the peer; reads stay possible.
    fn shutdown_write(&mut self) -> io::Result<()>;
    /// Makes the coming close abortive (a reset instead of a FIN), to propagate a
    /// reset received on the other side of the session.
    fn reset_on_close(&mut self);
    /// The socket's pending error (`SO_ERROR`), after an error event.
    fn take_error(&self) -> io::Result<Option<io::Error>>;
    /// For an outgoing connection: `Ok(true)` once connected, `Ok(false)` while the
    /// connect is in progress, the connect's error when it failed.
    fn connect_status(&self) -> io::Result<bool>;
    /// Whether a read that returned less than asked proves the receive buffer is
    /// empty, so readiness can be cleared without one more read returning
    /// `WouldBlock`. True for kernel sockets on Linux (epoll, or poll and select,
    /// which are re-armed after it), false for anything that buffers in user space
    /// (TLS).
    fn short_read_drains(&self) -> bool {
        false
    }
    /// The kernel socket `splice(2)` can move this stream's bytes from and to:
    /// plain TCP and Unix-domain streams on Linux; not TLS, whose bytes must pass
    /// through OpenSSL.
    fn splice_fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }
    /// Whether closing the socket sends the peer an end of file as
    /// [`Transport::shutdown_write`] would (a kernel stream's FIN), so that a
    /// session about to close can skip the shutdown. False for TLS, whose end of
    /// file is a close_notify.
    fn close_sends_eof(&self) -> bool {
        false
    }
    /// Bytes written to the stream that its kernel still holds: not sent yet, or
    /// sent but not acknowledged by the peer. Closing the socket with a reset
    /// (`SO_LINGER` 0) would discard them, so a reset waits until there are none.
    /// 0 for a stream whose written bytes are already with the peer (a Unix
    /// stream's are in its receive queue).
    fn unsent(&self) -> io::Result<usize> {
        Ok(0)
    }
    /// Drives a handshake of the transport's own (TLS) on: `Ok` once it is complete,
    /// `WouldBlock` while it waits for the peer. Plain streams have none.
    fn handshake(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// Whether the transport's own handshake is complete (or it has none): a
    /// connected TLS remote is not relayed to before it is.
    fn handshake_done(&self) -> bool {
        true
    }
    /// What a readiness event of the socket makes possible, as (readable, writable):
    /// the same for a kernel stream; for TLS a read may wait for the socket to be
    /// writable and a write for it to be readable.
    fn readiness(&self, readable: bool, writable: bool) -> (bool, bool) {
        (readable, writable)
    }
    /// The socket readiness, as (readable, writable), that can unblock the blocked
    /// operations (a read, a write, or both): what a level-triggered poller must
    /// watch again (see `poller`). Derived from [`Transport::readiness`], so that it
    /// never misses an event that would unblock one: the identity for a kernel
    /// stream; a transport that knows exactly what each operation waits for may
    /// say so here and spare wake-ups.
    fn awaits(&self, read_blocked: bool, write_blocked: bool) -> (bool, bool) {
        let on_readable = self.readiness(true, false);
        let on_writable = self.readiness(false, true);
        (
            (read_blocked && on_readable.0) || (write_blocked && on_readable.1),
            (read_blocked && on_writable.0) || (write_blocked && on_writable.1),
        )
    }
}

/// An in-memory transport for unit tests of the session state machine: the test
/// keeps a handle on the shared state to feed input, limit how much a write
/// accepts, inject errors and inspect what was written.
#[cfg(test)]
pub mod fake {
    use super::*;
    use mio::{Interest, Registry, Token};
    use std::cell::RefCell;
    use std::collections::VecDeque;
    use std::os::fd::{AsFd, OwnedFd};
    use std::rc::Rc;

    #[derive(Debug, Default)]
    pub struct State {
        /// Bytes the peer has sent and the relay has not read yet.
        pub input: VecDeque<u8>,
        /// The peer has sent end of file (after `input`).
        pub input_eof: bool,
        /// An error the next read returns.
        pub read_error: Option<io::ErrorKind>,
        /// An error reads return once `input` is empty (a reset after the bytes:
        /// a kernel socket returns what it holds first).
        pub input_error: Option<io::ErrorKind>,
        /// How many more bytes writes accept before `WouldBlock`.
        pub write_room: usize,
        /// An error the next write returns.
        pub write_error: Option<io::ErrorKind>,
        /// Everything written so far.
        pub output: Vec<u8>,
        pub shut_write: bool,
        pub reset: bool,
        pub connected: bool,
        pub connect_error: Option<io::ErrorKind>,
        /// What `take_error` reports (once), after an error event.
        pub pending_error: Option<io::ErrorKind>,
        /// Calls made, to check that backpressure stops reading.
        pub reads: usize,
        /// How many more `handshake` calls return `WouldBlock` before it completes.
        pub handshake_blocks: usize,
        /// An error the next `handshake` returns.
        pub handshake_error: Option<io::ErrorKind>,
        /// A handshake is due and not complete yet (a TLS remote): what
        /// `handshake_done` denies until `handshake` returns `Ok`.
        pub handshake_due: bool,
        /// How many more `shutdown_write` calls return `WouldBlock` (a close_notify
        /// waiting for room).
        pub shutdown_blocks: usize,
        /// What `close_sends_eof` answers (a kernel stream: true).
        pub close_sends_eof: bool,
        /// What `unsent` answers: bytes written that the kernel still holds.
        pub unsent: usize,
        /// Calls of `connect_status`.
        pub status_checks: usize,
    }

    #[derive(Debug, Clone, Default)]
    pub struct Fake(pub Rc<RefCell<State>>, Rc<std::cell::OnceCell<OwnedFd>>);

    impl Fake {
        pub fn new(write_room: usize) -> Fake {
            let fake = Fake::default();
            fake.0.borrow_mut().write_room = write_room;
            fake.0.borrow_mut().connected = true;
            fake
        }

        /// Makes `splice_fd` answer `fd` from now on (by default none: the
        /// session copies).
        pub fn splice_with(&self, fd: OwnedFd) {
            assert!(self.1.set(fd).is_ok(), "splice_with called twice");
        }

        pub fn state(&self) -> std::cell::RefMut<'_, State> {
            self.0.borrow_mut()
        }
    }

    impl Transport for Fake {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let mut s = self.0.borrow_mut();
            s.reads += 1;
            if let Some(kind) = s.read_error.take() {
                return Err(kind.into());
            }
            if s.input.is_empty() {
                if let Some(kind) = s.input_error.take() {
                    return Err(kind.into());
                }
                return if s.input_eof {
                    Ok(0)
                } else {
                    Err(io::ErrorKind::WouldBlock.into())
                };
            }
            let n = buf.len().min(s.input.len());
            for (slot, byte) in buf.iter_mut().zip(s.input.drain(..n)) {
                *slot = byte;
            }
            Ok(n)
        }

        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let mut s = self.0.borrow_mut();
            if let Some(kind) = s.write_error.take() {
                return Err(kind.into());
            }
            if s.shut_write {
                return Err(io::ErrorKind::BrokenPipe.into());
            }
            if s.write_room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(s.write_room);
            s.write_room -= n;
            s.output.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn shutdown_write(&mut self) -> io::Result<()> {
            let mut s = self.0.borrow_mut();
            if s.shutdown_blocks > 0 {
                s.shutdown_blocks -= 1;
                return Err(io::ErrorKind::WouldBlock.into());
            }
            s.shut_write = true;
            Ok(())
        }

        fn handshake(&mut self) -> io::Result<()> {
            let mut s = self.0.borrow_mut();
            if let Some(kind) = s.handshake_error.take() {
                return Err(kind.into());
            }
            if s.handshake_blocks > 0 {
                s.handshake_blocks -= 1;
                return Err(io::ErrorKind::WouldBlock.into());
            }
            s.handshake_due = false;
            Ok(())
        }

        fn handshake_done(&self) -> bool {
            !self.0.borrow().handshake_due
        }

        fn reset_on_close(&mut self) {
            self.0.borrow_mut().reset = true;
        }

        fn take_error(&self) -> io::Result<Option<io::Error>> {
            Ok(self
                .0
                .borrow_mut()
                .pending_error
                .take()
                .map(io::Error::from))
        }

        fn close_sends_eof(&self) -> bool {
            self.0.borrow().close_sends_eof
        }

        fn splice_fd(&self) -> Option<BorrowedFd<'_>> {
            self.1.get().map(|fd| fd.as_fd())
        }

        fn unsent(&self) -> io::Result<usize> {
            Ok(self.0.borrow().unsent)
        }

        fn connect_status(&self) -> io::Result<bool> {
            let mut s = self.0.borrow_mut();
            s.status_checks += 1;
            match s.connect_error {
                Some(kind) => Err(kind.into()),
                None => Ok(s.connected),
            }
        }
    }

    impl Source for Fake {
        fn register(&mut self, _: &Registry, _: Token, _: Interest) -> io::Result<()> {
            Ok(())
        }

        fn reregister(&mut self, _: &Registry, _: Token, _: Interest) -> io::Result<()> {
            Ok(())
        }

        fn deregister(&mut self, _: &Registry) -> io::Result<()> {
            Ok(())
        }
    }
}
