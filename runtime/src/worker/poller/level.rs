//! poll(2), level-triggered, with edges emulated: a reported interest is not
//! watched again until [`Poller::rearm`].
//!
//! The `pollfd` array is what the kernel reads: one entry per registered
//! descriptor, at the same position as its registration in `entries`; `index` maps
//! a descriptor number to that position, so that adding, re-arming and removing are
//! O(1) (removal is a `swap_remove` that moves the last entry into the hole).
//!
//! An entry with nothing armed still watches for errors and hang-ups (`events = 0`:
//! poll(2) reports those whatever is asked), as epoll does: a client that resets
//! while its session waits on the other side (backpressure) is noticed at once.
//! Once one is reported the entry goes quiet (`fd = -1`, which poll(2) skips) until
//! the engine re-arms it; otherwise the condition, which lasts, would wake the loop
//! on every call.

use super::{bits, Event, Interest, Mechanism, Poller, Token, READ, WRITE};
use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

/// `index` value of a descriptor that is not registered.
const NONE: u32 = u32::MAX;

/// What poll(2) is asked for an armed read interest: data, and the peer's
/// shutdown (reported by epoll too, so that the relay knows a short read does not
/// prove the buffer empty).
#[cfg(any(target_os = "linux", target_os = "android"))]
const READ_EVENTS: libc::c_short = libc::POLLIN | libc::POLLRDHUP;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const READ_EVENTS: libc::c_short = libc::POLLIN;

#[cfg(any(target_os = "linux", target_os = "android"))]
const RDHUP: libc::c_short = libc::POLLRDHUP;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const RDHUP: libc::c_short = 0;

#[derive(Debug, Clone, Copy)]
struct Entry {
    fd: RawFd,
    token: Token,
    /// The registered interest ([`READ`], [`WRITE`]).
    interest: u8,
    /// The part of `interest` watched now.
    armed: u8,
    /// An error or hang-up was reported: not even those are watched until re-armed.
    quiet: bool,
}

impl Entry {
    fn pollfd(&self) -> libc::pollfd {
        let mut events = 0;
        if self.armed & READ != 0 {
            events |= READ_EVENTS;
        }
        if self.armed & WRITE != 0 {
            events |= libc::POLLOUT;
        }
        libc::pollfd {
            fd: if self.armed == 0 && self.quiet {
                -1
            } else {
                self.fd
            },
            events,
            revents: 0,
        }
    }
}

/// The poll(2) backend.
#[derive(Default)]
pub struct Level {
    fds: Vec<libc::pollfd>,
    entries: Vec<Entry>,
    index: Vec<u32>,
}

impl std::fmt::Debug for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Level")
            .field("entries", &self.entries)
            .finish_non_exhaustive()
    }
}

impl Level {
    pub fn new() -> Level {
        Level::default()
    }

    fn position(&self, fd: RawFd) -> Option<usize> {
        let slot = *self.index.get(usize::try_from(fd).ok()?)?;
        (slot != NONE).then_some(slot as usize)
    }

    fn sync(&mut self, at: usize) {
        self.fds[at] = self.entries[at].pollfd();
    }
}

impl Poller for Level {
    fn mechanism(&self) -> Mechanism {
        Mechanism::Poll
    }

    fn register(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        let Ok(number) = usize::try_from(fd) else {
            return Err(io::Error::from_raw_os_error(libc::EBADF));
        };
        if self.position(fd).is_some() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("descriptor {fd} is already registered"),
            ));
        }
        let at = u32::try_from(self.entries.len())
            .ok()
            .filter(|&at| at != NONE)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOSPC))?;
        if self.index.len() <= number {
            self.index.resize(number + 1, NONE);
        }
        let entry = Entry {
            fd,
            token,
            interest: bits(interest),
            armed: bits(interest),
            quiet: false,
        };
        self.index[number] = at;
        self.entries.push(entry);
        self.fds.push(entry.pollfd());
        Ok(())
    }

    fn deregister(&mut self, fd: RawFd) -> io::Result<()> {
        let at = self
            .position(fd)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
        self.entries.swap_remove(at);
        self.fds.swap_remove(at);
        if let Some(moved) = self.entries.get(at) {
            // The last entry took the freed position.
            self.index[moved.fd as usize] = at as u32;
        }
        self.index[fd as usize] = NONE;
        Ok(())
    }

    fn rearm(&mut self, fd: RawFd, interest: Interest) {
        let Some(at) = self.position(fd) else { return };
        let entry = &mut self.entries[at];
        let armed = entry.armed | (bits(interest) & entry.interest);
        if armed != entry.armed || entry.quiet {
            entry.armed = armed;
            entry.quiet = false;
            self.sync(at);
        }
    }

    fn poll(&mut self, events: &mut Vec<Event>, timeout: Option<Duration>) -> io::Result<()> {
        events.clear();
        let timeout_ms = match timeout {
            None => -1,
            // Rounded up: a deadline 0.5 ms away must not become a busy 0.
            Some(d) => i32::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(i32::MAX),
        };
        let mut left = crate::sys::poll::poll(&mut self.fds, timeout_ms)?;
        for at in 0..self.fds.len() {
            if left == 0 {
                break;
            }
            let revents = self.fds[at].revents;
            if revents == 0 {
                continue;
            }
            left -= 1;
            let entry = &mut self.entries[at];
            let nval = revents & libc::POLLNVAL != 0;
            debug_assert!(
                !nval,
                "poll: descriptor {} was closed without being deregistered",
                entry.fd
            );
            let hup = revents & libc::POLLHUP != 0;
            let error = revents & libc::POLLERR != 0 || nval;
            let broken = hup || error;
            let readable = entry.armed & READ != 0 && (revents & READ_EVENTS != 0 || broken);
            let writable = entry.armed & WRITE != 0 && (revents & libc::POLLOUT != 0 || broken);
            // A hang-up or error is reported whatever is asked: everything is
            // disarmed until the engine re-arms what it still waits for.
            let fired = if broken {
                entry.armed
            } else {
                (if readable { READ } else { 0 }) | (if writable { WRITE } else { 0 })
            };
            entry.armed &= !fired;
            if broken {
                entry.quiet = true;
            }
            events.push(Event {
                token: entry.token,
                readable,
                writable,
                read_closed: hup || revents & RDHUP != 0,
                error,
            });
            self.sync(at);
        }
        Ok(())
    }
}
