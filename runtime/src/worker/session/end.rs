//! A session's two sides: which one ([`Side`]), and one side's socket with what is
//! known of its readiness ([`End`]), which the state machine and the directions
//! both read and update.

use crate::worker::transport::Transport;
use std::io;

/// A side of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Remote,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Remote => "remote",
        }
    }

    /// The side across the session.
    pub fn other(self) -> Side {
        match self {
            Side::Client => Side::Remote,
            Side::Remote => Side::Client,
        }
    }
}

/// One side's socket and what is known of its readiness.
#[derive(Debug)]
pub struct End<T> {
    pub io: T,
    pub(super) readable: bool,
    pub(super) writable: bool,
    /// The peer has shut down its sending side: a short read does not prove the
    /// buffer is empty any more (the end of file must still be read).
    pub(super) read_closed: bool,
    /// An error event was reported; the socket's error is checked on the next run.
    pub(super) error: bool,
    /// The worker's poll round in which the socket was registered: an event fetched
    /// in that round is another socket's (a closed one whose token was reused).
    pub round: u64,
}

impl<T: Transport> End<T> {
    /// Whether an event said the peer closed (its end of file) or the socket failed.
    pub fn closed_or_failed(&self) -> bool {
        self.read_closed || self.error
    }

    /// The socket's error, if an error event was reported since the last check.
    pub(super) fn reported_error(&mut self) -> Option<io::Error> {
        if !std::mem::take(&mut self.error) {
            return None;
        }
        match self.io.take_error() {
            Ok(None) => None,
            Ok(Some(error)) | Err(error) => Some(error),
        }
    }

    /// A side assumed ready both ways: the first operations find out for sure.
    pub fn new(io: T) -> End<T> {
        End {
            io,
            readable: true,
            writable: true,
            read_closed: false,
            error: false,
            round: 0,
        }
    }

    /// A kernel socket just registered with the poller: nothing is assumed, the
    /// poller reports what it is ready for (epoll reports a socket that is already
    /// ready when it is added; poll and select watch it from the start). Spares the
    /// read that would find nothing yet.
    pub fn registered(io: T, round: u64) -> End<T> {
        End {
            readable: false,
            writable: false,
            round,
            ..End::new(io)
        }
    }

    /// Which operations wait for readiness, as (read, write): those that stopped
    /// for want of it (`WouldBlock`, a short read or write). A level-triggered
    /// poller watches the socket again for these after every run.
    pub fn blocked(&self) -> (bool, bool) {
        (!self.readable, !self.writable)
    }
}
