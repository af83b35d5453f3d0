//! The worker's event mechanism, chosen by `IO_POLL_MECHANISM` (manual §2.3): epoll or
//! kqueue through mio, io_uring's multishot poll (Linux), or poll(2) or select(2),
//! behind one small [`Poller`] trait so that the relay engine (`server.rs`) is
//! written once.
//!
//! The engine is written for edge-triggered readiness: it drains a socket until
//! `WouldBlock` and remembers per side what it knows to be ready. epoll and kqueue
//! (through mio) are edge-triggered; poll(2) and select(2) are level-triggered, so
//! their backends emulate edges: once they have reported an interest of a
//! descriptor they stop watching it until the engine calls [`Poller::rearm`], which
//! it does whenever it stops an operation for want of readiness (`WouldBlock`, a
//! short read or write). Without this a socket that is writable all the time, or
//! readable while the relay deliberately stops reading it (backpressure), would
//! make the loop spin. For mio and io_uring (whose multishot polls fire on wake-ups,
//! as `EPOLLET` does), `rearm` does nothing.
//!
//! | module   | mechanism                                                        |
//! |----------|------------------------------------------------------------------|
//! | `native` | epoll (Linux) or kqueue (BSD, macOS) through `mio::Poll`         |
//! | `uring`  | io_uring (Linux): a multishot poll per descriptor, registrations |
//! |          | submitted with the wait in one `io_uring_enter`                   |
//! | `level`  | poll(2) over a `pollfd` array kept in step with registrations   |
//! | `select` | select(2) over `fd_set`s; descriptors ≥ `FD_SETSIZE` are refused |

use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

pub use mio::{Interest, Token};

mod level;
mod native;
mod select;
#[cfg(target_os = "linux")]
mod uring;

#[cfg(test)]
mod tests;

/// The environment variable that selects the mechanism.
pub const VARIABLE: &str = "IO_POLL_MECHANISM";

/// An event mechanism, numbered as the original's `IO_POLL_MECHANISM` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Kqueue = 1,
    DevPoll = 2,
    Epoll = 4,
    Poll = 8,
    Select = 16,
    Port = 32,
    /// Linux's io_uring, used for readiness (multishot poll); not in the original.
    Uring = 64,
}

impl Mechanism {
    /// Every mechanism, in the order of their numbers.
    pub const ALL: [Mechanism; 7] = [
        Mechanism::Kqueue,
        Mechanism::DevPoll,
        Mechanism::Epoll,
        Mechanism::Poll,
        Mechanism::Select,
        Mechanism::Port,
        Mechanism::Uring,
    ];

    /// The `IO_POLL_MECHANISM` value.
    pub fn code(self) -> u32 {
        self as u32
    }

    /// The name used in logs and messages.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Kqueue => "kqueue",
            Mechanism::DevPoll => "/dev/poll",
            Mechanism::Epoll => "epoll",
            Mechanism::Poll => "poll",
            Mechanism::Select => "select",
            Mechanism::Port => "event ports",
            Mechanism::Uring => "io_uring",
        }
    }

    /// Whether this build can use the mechanism on this operating system (for
    /// io_uring: whether this kernel lets this process use it, probed once).
    pub fn available(self) -> bool {
        match self {
            Mechanism::Epoll => cfg!(any(target_os = "linux", target_os = "android")),
            Mechanism::Kqueue => cfg!(any(
                target_os = "macos",
                target_os = "ios",
                target_os = "freebsd",
                target_os = "netbsd",
                target_os = "openbsd",
                target_os = "dragonfly"
            )),
            Mechanism::Poll | Mechanism::Select => true,
            // Solaris' own mechanisms are not implemented (mio has no backend for
            // them); poll and select serve there.
            Mechanism::DevPoll | Mechanism::Port => false,
            Mechanism::Uring => uring_refused().is_none(),
        }
    }

    /// The best mechanism of this operating system: the one mio uses.
    pub fn os_default() -> Mechanism {
        if Mechanism::Epoll.available() {
            Mechanism::Epoll
        } else if Mechanism::Kqueue.available() {
            Mechanism::Kqueue
        } else {
            Mechanism::Poll
        }
    }

    /// The mechanism `IO_POLL_MECHANISM` selects in this process's environment.
    pub fn from_env() -> Result<Mechanism, String> {
        match std::env::var_os(VARIABLE) {
            None => Mechanism::parse(None),
            Some(value) => match value.to_str() {
                Some(text) => Mechanism::parse(Some(text)),
                None => Err(format!(
                    "{VARIABLE}={} is not a number; on this system use {}",
                    value.to_string_lossy(),
                    choices(Mechanism::available)
                )),
            },
        }
    }

    /// The mechanism `IO_POLL_MECHANISM` will select once `setenv` (a plan's
    /// `NAME = VALUE` pairs, the last one of a name winning) is applied to this
    /// process's environment.
    pub fn after_setenv(setenv: &[(String, String)]) -> Result<Mechanism, String> {
        match setenv.iter().rev().find(|(name, _)| name == VARIABLE) {
            Some((_, value)) => Mechanism::parse(Some(value)),
            None => Mechanism::from_env(),
        }
    }

    /// The mechanism a value of `IO_POLL_MECHANISM` selects: unset or empty is the
    /// OS default; a value that is not a mechanism, or one this OS lacks, is an error
    /// naming the choices.
    pub fn parse(value: Option<&str>) -> Result<Mechanism, String> {
        Mechanism::parse_with(value, uring_refused())
    }

    /// [`Mechanism::parse`] with what the io_uring probe found (`Some(why)`: refused).
    fn parse_with(value: Option<&str>, uring: Option<&str>) -> Result<Mechanism, String> {
        let usable = |m: Mechanism| match m {
            Mechanism::Uring => uring.is_none(),
            _ => m.available(),
        };
        let choices = || choices(usable);
        let text = value.map(str::trim).unwrap_or_default();
        if text.is_empty() {
            return Ok(Mechanism::os_default());
        }
        let Ok(code) = text.parse::<u32>() else {
            return Err(format!(
                "{VARIABLE}={text} is not a number; on this system use {}",
                choices()
            ));
        };
        let Some(mechanism) = Mechanism::ALL.into_iter().find(|m| m.code() == code) else {
            return Err(format!(
                "{VARIABLE}={code} is not an event mechanism; on this system use {}",
                choices()
            ));
        };
        if usable(mechanism) {
            return Ok(mechanism);
        }
        let only = match mechanism {
            Mechanism::Uring if cfg!(target_os = "linux") => {
                return Err(format!(
                    "{VARIABLE}={code} ({}) cannot be used here: {}; on this system use {}",
                    mechanism.name(),
                    uring.unwrap_or_default(),
                    choices()
                ));
            }
            Mechanism::Kqueue => "is only available on BSD and macOS",
            Mechanism::Epoll | Mechanism::Uring => "is only available on Linux",
            Mechanism::DevPoll | Mechanism::Port if cfg!(target_os = "solaris") => {
                "is not supported by this build"
            }
            Mechanism::DevPoll | Mechanism::Port => "is only available on Solaris",
            Mechanism::Poll | Mechanism::Select => "is not available",
        };
        Err(format!(
            "{VARIABLE}={code} ({}) {only}; on this system use {}",
            mechanism.name(),
            choices()
        ))
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why io_uring cannot be used here (`None`: it can): not Linux, or the kernel
/// refused or lacks it (probed once per process).
#[cfg(target_os = "linux")]
fn uring_refused() -> Option<&'static str> {
    uring::probe().err()
}

#[cfg(not(target_os = "linux"))]
fn uring_refused() -> Option<&'static str> {
    Some("io_uring is only available on Linux")
}

/// The mechanisms `usable` accepts as "4 (epoll), 8 (poll) or 16 (select)".
fn choices(usable: impl Fn(Mechanism) -> bool) -> String {
    let list: Vec<String> = Mechanism::ALL
        .into_iter()
        .filter(|&m| usable(m))
        .map(|m| format!("{} ({})", m.code(), m.name()))
        .collect();
    match list.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// One readiness report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    token: Token,
    readable: bool,
    writable: bool,
    read_closed: bool,
    error: bool,
}

impl Event {
    pub fn token(&self) -> Token {
        self.token
    }

    pub fn is_readable(&self) -> bool {
        self.readable
    }

    pub fn is_writable(&self) -> bool {
        self.writable
    }

    /// The peer shut down its sending side, or the connection is gone.
    pub fn is_read_closed(&self) -> bool {
        self.read_closed
    }

    /// The socket has a pending error (`SO_ERROR`).
    pub fn is_error(&self) -> bool {
        self.error
    }
}

/// An event mechanism: descriptors registered under tokens, readiness reported as
/// [`Event`]s with edge-triggered semantics (see the module documentation).
///
/// A descriptor must be deregistered (or announced with [`Poller::closing`])
/// before it is closed: poll and select know descriptors only by number, and the
/// kernel reuses numbers at once.
pub trait Poller: fmt::Debug {
    fn mechanism(&self) -> Mechanism;

    /// The lowest descriptor number the mechanism cannot watch, if it has a limit
    /// (select(2): `FD_SETSIZE`).
    fn descriptor_ceiling(&self) -> Option<usize> {
        None
    }

    /// Starts watching `fd` for `interest`, reported under `token`. Everything in
    /// `interest` is armed: what is ready now is reported by the next poll.
    fn register(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()>;

    /// Stops watching `fd`.
    fn deregister(&mut self, fd: RawFd) -> io::Result<()>;

    /// `fd` is about to be closed and the caller holds its only descriptor: the
    /// backend forgets it. epoll and kqueue forget a closed descriptor by themselves.
    fn closing(&mut self, fd: RawFd) {
        let _ = self.deregister(fd);
    }

    /// Watches `interest` of `fd` again after the engine found it not ready
    /// (`WouldBlock`, a short read or write). Unknown descriptors are ignored.
    fn rearm(&mut self, fd: RawFd, interest: Interest);

    /// Whether [`Poller::rearm`] does anything: true for the level-triggered
    /// backends (poll, select), false for the edge-triggered ones, whose callers
    /// may then skip working out what to re-arm.
    fn rearms(&self) -> bool {
        true
    }

    /// Waits up to `timeout` (`None`: indefinitely) and replaces `events` with what
    /// is ready. A signal interrupts it with `ErrorKind::Interrupted`.
    fn poll(&mut self, events: &mut Vec<Event>, timeout: Option<Duration>) -> io::Result<()>;
}

/// Creates the poller of `mechanism`; an unavailable one is an `Unsupported` error.
pub fn new(mechanism: Mechanism) -> io::Result<Box<dyn Poller>> {
    match mechanism {
        Mechanism::Epoll | Mechanism::Kqueue if mechanism.available() => {
            Ok(Box::new(native::Native::new(mechanism)?))
        }
        #[cfg(target_os = "linux")]
        Mechanism::Uring if mechanism.available() => Ok(Box::new(uring::Uring::new()?)),
        Mechanism::Poll => Ok(Box::new(level::Level::new())),
        Mechanism::Select => Ok(Box::new(select::Select::new())),
        _ => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "{VARIABLE}={} ({}) is not available on this system",
                mechanism.code(),
                mechanism.name()
            ),
        )),
    }
}

/// The error of registering a descriptor select(2) cannot watch.
#[derive(Debug)]
pub struct OverFdSetSize {
    fd: RawFd,
}

impl fmt::Display for OverFdSetSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let others: Vec<String> = [Mechanism::Epoll, Mechanism::Kqueue, Mechanism::Poll]
            .into_iter()
            .filter(|m| m.available())
            .map(|m| m.code().to_string())
            .collect();
        write!(
            f,
            "descriptor {} is over FD_SETSIZE ({}): select(2) cannot watch it; use {VARIABLE}={}",
            self.fd,
            select::FD_SETSIZE,
            others.join(" or ")
        )
    }
}

impl std::error::Error for OverFdSetSize {}

/// Whether `error` is select(2)'s refusal of a descriptor over `FD_SETSIZE`.
pub fn is_over_fd_setsize(error: &io::Error) -> bool {
    error
        .get_ref()
        .is_some_and(|inner| inner.is::<OverFdSetSize>())
}

/// The interest of a (readable, writable) pair; `None` for neither.
pub fn interest(readable: bool, writable: bool) -> Option<Interest> {
    match (readable, writable) {
        (true, true) => Some(Interest::READABLE | Interest::WRITABLE),
        (true, false) => Some(Interest::READABLE),
        (false, true) => Some(Interest::WRITABLE),
        (false, false) => None,
    }
}

/// Interest as two bits, for the level-triggered backends.
const READ: u8 = 1;
const WRITE: u8 = 2;

fn bits(interest: Interest) -> u8 {
    let mut out = 0;
    if interest.is_readable() {
        out |= READ;
    }
    if interest.is_writable() {
        out |= WRITE;
    }
    out
}
