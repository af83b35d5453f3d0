//! select(2), level-triggered, with edges emulated as in `level`: a reported
//! interest is cleared from the watched sets until [`Poller::rearm`].
//!
//! An `fd_set` holds descriptors below `FD_SETSIZE` (1024) only; setting a higher
//! one would write past it. [`Poller::register`] refuses such a descriptor with an
//! [`OverFdSetSize`] error, so no set operation ever sees one. select(2) has no
//! error or hang-up report: a broken socket shows up readable and writable, and
//! the read or write that follows finds the error.

use super::{bits, Event, Interest, Mechanism, OverFdSetSize, Poller, Token, READ, WRITE};
use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

pub use crate::sys::poll::FD_SETSIZE;
use crate::sys::poll::{self as sys, FdSet};

#[derive(Debug, Clone, Copy)]
struct Slot {
    token: Token,
    interest: u8,
    armed: u8,
}

/// The select(2) backend.
pub struct Select {
    /// Registrations by descriptor number (all below `FD_SETSIZE`).
    slots: Vec<Option<Slot>>,
    /// The armed interests, copied for each call.
    read: FdSet,
    write: FdSet,
    /// The highest registered descriptor, -1 when none is.
    max: RawFd,
}

impl std::fmt::Debug for Select {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Select")
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}

impl Select {
    pub fn new() -> Select {
        Select {
            slots: Vec::new(),
            read: FdSet::new(),
            write: FdSet::new(),
            max: -1,
        }
    }

    fn slot_mut(&mut self, fd: RawFd) -> Option<&mut Slot> {
        self.slots.get_mut(usize::try_from(fd).ok()?)?.as_mut()
    }

    fn sync(&mut self, fd: RawFd) {
        let armed = self.slot_mut(fd).map_or(0, |s| s.armed);
        self.read.put(fd, armed & READ != 0);
        self.write.put(fd, armed & WRITE != 0);
    }

    /// After `EBADF`: reports registered descriptors that are no longer open as
    /// errors (the engine closes their sessions) and stops watching them, so that
    /// one forgotten deregistration cannot stop the loop.
    fn report_closed(&mut self, events: &mut Vec<Event>) -> bool {
        let mut found = false;
        for fd in 0..=self.max {
            let Some(slot) = self.slot_mut(fd).copied() else {
                continue;
            };
            if slot.armed == 0 || sys::is_open(fd) {
                continue;
            }
            debug_assert!(
                false,
                "select: descriptor {fd} was closed without being deregistered"
            );
            found = true;
            events.push(Event {
                token: slot.token,
                readable: slot.armed & READ != 0,
                writable: slot.armed & WRITE != 0,
                read_closed: false,
                error: true,
            });
            if let Some(s) = self.slot_mut(fd) {
                s.armed = 0;
            }
            self.sync(fd);
        }
        found
    }
}

impl Poller for Select {
    fn mechanism(&self) -> Mechanism {
        Mechanism::Select
    }

    fn descriptor_ceiling(&self) -> Option<usize> {
        Some(FD_SETSIZE)
    }

    fn register(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        let Ok(number) = usize::try_from(fd) else {
            return Err(io::Error::from_raw_os_error(libc::EBADF));
        };
        if number >= FD_SETSIZE {
            return Err(io::Error::other(OverFdSetSize { fd }));
        }
        if self.slot_mut(fd).is_some() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("descriptor {fd} is already registered"),
            ));
        }
        if self.slots.len() <= number {
            self.slots.resize(number + 1, None);
        }
        self.slots[number] = Some(Slot {
            token,
            interest: bits(interest),
            armed: bits(interest),
        });
        self.max = self.max.max(fd);
        self.sync(fd);
        Ok(())
    }

    fn deregister(&mut self, fd: RawFd) -> io::Result<()> {
        if self.slot_mut(fd).is_none() {
            return Err(io::Error::from_raw_os_error(libc::ENOENT));
        }
        self.slots[fd as usize] = None;
        self.read.put(fd, false);
        self.write.put(fd, false);
        if fd == self.max {
            self.max = (0..fd)
                .rev()
                .find(|&lower| self.slots[lower as usize].is_some())
                .unwrap_or(-1);
            self.slots.truncate((self.max + 1) as usize);
        }
        Ok(())
    }

    fn rearm(&mut self, fd: RawFd, interest: Interest) {
        let Some(slot) = self.slot_mut(fd) else {
            return;
        };
        let armed = slot.armed | (bits(interest) & slot.interest);
        if armed != slot.armed {
            slot.armed = armed;
            self.sync(fd);
        }
    }

    fn poll(&mut self, events: &mut Vec<Event>, timeout: Option<Duration>) -> io::Result<()> {
        events.clear();
        let mut read = self.read;
        let mut write = self.write;
        // `max + 1 <= FD_SETSIZE`: registration refuses higher descriptors.
        let ready = sys::select(self.max + 1, &mut read, &mut write, timeout);
        let mut left = match ready {
            Ok(n) => n,
            Err(error) => {
                if error.raw_os_error() == Some(libc::EBADF) && self.report_closed(events) {
                    return Ok(());
                }
                return Err(error);
            }
        };
        let mut fd = 0;
        while left > 0 && fd <= self.max {
            let readable = read.contains(fd);
            let writable = write.contains(fd);
            if readable || writable {
                left = left.saturating_sub(usize::from(readable) + usize::from(writable));
                if let Some(slot) = self.slot_mut(fd) {
                    slot.armed &=
                        !((if readable { READ } else { 0 }) | (if writable { WRITE } else { 0 }));
                    let token = slot.token;
                    self.sync(fd);
                    events.push(Event {
                        token,
                        readable,
                        writable,
                        read_closed: false,
                        error: false,
                    });
                }
            }
            fd += 1;
        }
        Ok(())
    }
}
