//! epoll (Linux) or kqueue (BSD, macOS) through `mio::Poll`: edge-triggered by
//! nature, so [`Poller::rearm`] has nothing to do.

use super::{Event, Interest, Mechanism, Poller, Token};
use mio::unix::SourceFd;
use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

/// Events fetched per poll.
const EVENTS: usize = 1024;

pub struct Native {
    mechanism: Mechanism,
    poll: mio::Poll,
    events: mio::Events,
}

impl std::fmt::Debug for Native {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Native")
            .field("mechanism", &self.mechanism)
            .finish_non_exhaustive()
    }
}

impl Native {
    pub fn new(mechanism: Mechanism) -> io::Result<Native> {
        Ok(Native {
            mechanism,
            poll: mio::Poll::new()?,
            events: mio::Events::with_capacity(EVENTS),
        })
    }
}

impl Poller for Native {
    fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    fn register(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        self.poll
            .registry()
            .register(&mut SourceFd(&fd), token, interest)
    }

    fn deregister(&mut self, fd: RawFd) -> io::Result<()> {
        self.poll.registry().deregister(&mut SourceFd(&fd))
    }

    fn closing(&mut self, _fd: RawFd) {
        // Closing the only descriptor of a socket removes it from the epoll or
        // kqueue set: no system call needed.
    }

    fn rearm(&mut self, _fd: RawFd, _interest: Interest) {}

    fn rearms(&self) -> bool {
        false
    }

    fn poll(&mut self, events: &mut Vec<Event>, timeout: Option<Duration>) -> io::Result<()> {
        events.clear();
        self.poll.poll(&mut self.events, timeout)?;
        events.extend(self.events.iter().map(|e| Event {
            token: e.token(),
            readable: e.is_readable(),
            writable: e.is_writable(),
            read_closed: e.is_read_closed(),
            error: e.is_error(),
        }));
        Ok(())
    }
}
