//! Tests of the mechanism choice and of every backend this OS has, over Unix
//! socket pairs: what is ready is reported once, then again only after a re-arm
//! that follows `WouldBlock`, never after deregistration.

use super::*;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Instant;

const A: Token = Token(7);
const B: Token = Token(8);
/// Long enough for loopback readiness to show, short enough for a quick suite.
const WAIT: Duration = Duration::from_millis(200);
/// How long a poll that must report nothing waits.
const QUIET: Duration = Duration::from_millis(50);

// ---- IO_POLL_MECHANISM -----------------------------------------------------------

#[cfg(any(target_os = "linux", target_os = "android"))]
#[test]
fn every_value_of_io_poll_mechanism_on_linux() {
    // io_uring is a choice where this kernel lets the process use it.
    let choices = if Mechanism::Uring.available() {
        assert_eq!(Mechanism::parse(Some("64")), Ok(Mechanism::Uring));
        "on this system use 4 (epoll), 8 (poll), 16 (select) or 64 (io_uring)"
    } else {
        "on this system use 4 (epoll), 8 (poll) or 16 (select)"
    };
    for unset in [None, Some(""), Some("  ")] {
        assert_eq!(Mechanism::parse(unset), Ok(Mechanism::Epoll), "{unset:?}");
    }
    assert_eq!(Mechanism::parse(Some("4")), Ok(Mechanism::Epoll));
    assert_eq!(Mechanism::parse(Some("8")), Ok(Mechanism::Poll));
    assert_eq!(Mechanism::parse(Some(" 16\n")), Ok(Mechanism::Select));
    assert_eq!(
        Mechanism::parse(Some("2")),
        Err(format!(
            "IO_POLL_MECHANISM=2 (/dev/poll) is only available on Solaris; {choices}"
        ))
    );
    assert_eq!(
        Mechanism::parse(Some("32")),
        Err(format!(
            "IO_POLL_MECHANISM=32 (event ports) is only available on Solaris; {choices}"
        ))
    );
    assert_eq!(
        Mechanism::parse(Some("1")),
        Err(format!(
            "IO_POLL_MECHANISM=1 (kqueue) is only available on BSD and macOS; {choices}"
        ))
    );
    for number in ["0", "3", "5", "63", "128", "4294967295"] {
        assert_eq!(
            Mechanism::parse(Some(number)),
            Err(format!(
                "IO_POLL_MECHANISM={number} is not an event mechanism; {choices}"
            ))
        );
    }
    for text in ["epoll", "-4", "4.0", "0x10", "4294967296"] {
        assert_eq!(
            Mechanism::parse(Some(text)),
            Err(format!(
                "IO_POLL_MECHANISM={text} is not a number; {choices}"
            ))
        );
    }
}

#[test]
fn codes_names_and_availability_agree() {
    for m in Mechanism::ALL {
        let parsed = Mechanism::parse(Some(&m.code().to_string()));
        assert_eq!(parsed.is_ok(), m.available(), "{m}");
        if let Err(message) = parsed {
            assert!(message.contains(m.name()), "{message}");
        }
        // Every available mechanism can be created.
        if m.available() {
            let poller = new(m).expect("a poller");
            assert_eq!(poller.mechanism(), m);
        } else {
            assert!(new(m).is_err(), "{m}");
        }
    }
    assert!(Mechanism::os_default().available());
}

// ---- the backends ------------------------------------------------------------------

fn available() -> impl Iterator<Item = Mechanism> {
    Mechanism::ALL.into_iter().filter(|m| m.available())
}

pub(super) fn pair() -> (UnixStream, UnixStream) {
    let (a, b) = UnixStream::pair().expect("socketpair");
    a.set_nonblocking(true).expect("nonblocking");
    b.set_nonblocking(true).expect("nonblocking");
    (a, b)
}

/// One poll, waiting at most `within`; the events it reported.
pub(super) fn poll_once(poller: &mut dyn Poller, within: Duration) -> Vec<Event> {
    let mut events = Vec::new();
    poller.poll(&mut events, Some(within)).expect("poll");
    events
}

/// Polls until something is reported (or `WAIT` passes).
fn poll_some(poller: &mut dyn Poller) -> Vec<Event> {
    poll_some_within(poller, WAIT)
}

/// Polls until something is reported (or `wait` passes).
pub(super) fn poll_some_within(poller: &mut dyn Poller, wait: Duration) -> Vec<Event> {
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let events = poll_once(poller, left);
        if !events.is_empty() || left.is_zero() {
            return events;
        }
    }
}

/// Reads until `WouldBlock`; the bytes read.
fn drain(stream: &mut UnixStream) -> usize {
    let mut buf = [0u8; 64 * 1024];
    let mut total = 0;
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return total,
            Ok(n) => total += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return total,
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// Writes until `WouldBlock`; the bytes written.
fn fill(stream: &mut UnixStream) -> usize {
    let chunk = [0x55u8; 64 * 1024];
    let mut total = 0;
    loop {
        match stream.write(&chunk) {
            Ok(n) => total += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return total,
            Err(e) => panic!("write: {e}"),
        }
    }
}

#[test]
fn readiness_is_reported_once_until_rearmed_after_would_block() {
    for m in available() {
        let mut poller = new(m).expect("poller");
        let (mut ours, mut peer) = pair();
        let fd = ours.as_raw_fd();
        poller
            .register(fd, A, Interest::READABLE | Interest::WRITABLE)
            .expect("register");
        // A new socket is writable, not readable: one report.
        let events = poll_some(&mut *poller);
        assert_eq!(events.len(), 1, "{m}: {events:?}");
        assert_eq!(events[0].token(), A, "{m}");
        assert!(events[0].is_writable() && !events[0].is_readable(), "{m}");
        // Still writable, but reported already: nothing more (no busy loop).
        assert!(
            poll_once(&mut *poller, QUIET).is_empty(),
            "{m}: writable twice"
        );

        // Data arrives: readable, once, even though it is not read yet (epoll
        // reports the whole current mask with a new edge, writable too).
        peer.write_all(b"ping").expect("write");
        let events = poll_some(&mut *poller);
        assert_eq!(events.len(), 1, "{m}: {events:?}");
        assert!(events[0].is_readable(), "{m}");
        assert!(
            poll_once(&mut *poller, QUIET).is_empty(),
            "{m}: readable twice"
        );
        // Drained to WouldBlock and re-armed: quiet until new data comes.
        assert_eq!(drain(&mut ours), 4);
        poller.rearm(fd, Interest::READABLE);
        assert!(poll_once(&mut *poller, QUIET).is_empty(), "{m}: drained");
        peer.write_all(b"pong").expect("write");
        let events = poll_some(&mut *poller);
        assert!(
            events.len() == 1 && events[0].is_readable(),
            "{m}: {events:?}"
        );
        drain(&mut ours);
        poller.rearm(fd, Interest::READABLE);

        // Filled to WouldBlock and re-armed: writable again once the peer reads.
        assert!(fill(&mut ours) > 0);
        poller.rearm(fd, Interest::WRITABLE);
        assert!(poll_once(&mut *poller, QUIET).is_empty(), "{m}: full");
        drain(&mut peer);
        let events = poll_some(&mut *poller);
        assert!(
            events.len() == 1 && events[0].is_writable(),
            "{m}: {events:?}"
        );
        assert!(poll_once(&mut *poller, QUIET).is_empty(), "{m}");

        // Deregistered: nothing, whatever happens.
        poller.deregister(fd).expect("deregister");
        peer.write_all(b"unseen").expect("write");
        assert!(
            poll_once(&mut *poller, QUIET).is_empty(),
            "{m}: deregistered"
        );
    }
}

#[test]
fn level_triggered_backends_report_again_what_is_rearmed_while_still_ready() {
    // The engine re-arms only after WouldBlock; this shows why: a re-arm of a
    // descriptor that is still ready is reported at once.
    for m in [Mechanism::Poll, Mechanism::Select] {
        let mut poller = new(m).expect("poller");
        let (ours, mut peer) = pair();
        poller
            .register(ours.as_raw_fd(), A, Interest::READABLE)
            .expect("register");
        peer.write_all(b"x").expect("write");
        assert_eq!(poll_some(&mut *poller).len(), 1, "{m}");
        poller.rearm(ours.as_raw_fd(), Interest::READABLE);
        assert_eq!(poll_some(&mut *poller).len(), 1, "{m}");
        // A re-arm of an interest never registered is ignored.
        poller.rearm(ours.as_raw_fd(), Interest::WRITABLE);
        assert!(poll_some(&mut *poller).is_empty(), "{m}");
    }
}

#[test]
fn a_hang_up_is_reported_and_then_quiet() {
    for m in available() {
        let mut poller = new(m).expect("poller");
        let (ours, peer) = pair();
        let fd = ours.as_raw_fd();
        poller
            .register(fd, A, Interest::READABLE)
            .expect("register");
        assert!(poll_once(&mut *poller, QUIET).is_empty(), "{m}");
        drop(peer);
        let events = poll_some(&mut *poller);
        assert_eq!(events.len(), 1, "{m}: {events:?}");
        assert!(
            events[0].is_readable() || events[0].is_read_closed(),
            "{m}: {events:?}"
        );
        // Not re-armed (the engine read end of file, not WouldBlock): quiet, even
        // though poll(2) reports a hang-up whatever it is asked.
        assert!(
            poll_once(&mut *poller, QUIET).is_empty(),
            "{m}: hang-up twice"
        );
        poller.deregister(fd).expect("deregister");
    }
}

#[test]
fn tokens_follow_registrations_through_removals() {
    for m in available() {
        let mut poller = new(m).expect("poller");
        let pairs: Vec<_> = (0..8).map(|_| pair()).collect();
        for (i, (ours, _)) in pairs.iter().enumerate() {
            poller
                .register(ours.as_raw_fd(), Token(100 + i), Interest::READABLE)
                .expect("register");
        }
        // Registering twice is an error, as with epoll.
        assert!(poller
            .register(pairs[0].0.as_raw_fd(), B, Interest::READABLE)
            .is_err());
        // Remove some in the middle and at the end (the last entry moves).
        for i in [2, 7, 0] {
            poller
                .deregister(pairs[i].0.as_raw_fd())
                .expect("deregister");
        }
        assert!(poller.deregister(pairs[2].0.as_raw_fd()).is_err(), "{m}");
        // Registered again under another token.
        poller
            .deregister(pairs[5].0.as_raw_fd())
            .expect("deregister");
        poller
            .register(pairs[5].0.as_raw_fd(), B, Interest::READABLE)
            .expect("register again");
        for (_, peer) in &pairs {
            (&*peer).write_all(b"!").expect("write");
        }
        let mut tokens: Vec<usize> = Vec::new();
        let deadline = Instant::now() + WAIT;
        while tokens.len() < 5 && Instant::now() < deadline {
            tokens.extend(poll_some(&mut *poller).iter().map(|e| e.token().0));
        }
        tokens.sort_unstable();
        assert_eq!(tokens, [B.0, 101, 103, 104, 106], "{m}");
    }
}

#[test]
fn an_idle_poll_sleeps_for_its_timeout() {
    for m in available() {
        let mut poller = new(m).expect("poller");
        let (ours, _peer) = pair();
        poller
            .register(ours.as_raw_fd(), A, Interest::READABLE)
            .expect("register");
        let started = Instant::now();
        let events = poll_once(&mut *poller, Duration::from_millis(120));
        let took = started.elapsed();
        assert!(events.is_empty(), "{m}");
        assert!(
            took >= Duration::from_millis(110),
            "{m}: woke after {took:?}"
        );
        // A sub-millisecond timeout is not rounded down to a busy zero.
        let started = Instant::now();
        poll_once(&mut *poller, Duration::from_micros(300));
        assert!(started.elapsed() >= Duration::from_micros(250), "{m}");
    }
}

/// A duplicate of `fd` numbered at least `min`, after raising the soft
/// `RLIMIT_NOFILE` if needed; `None` (with a message) if the limits forbid it.
fn high_duplicate(fd: impl AsFd, min: RawFd) -> Option<OwnedFd> {
    crate::os::raise_nofile();
    match rustix::io::fcntl_dupfd_cloexec(fd, min) {
        Ok(dup) => Some(dup),
        Err(e) => {
            eprintln!("skipped: cannot create descriptor {min} ({e}); raise `ulimit -Hn`");
            None
        }
    }
}

#[test]
fn select_refuses_a_descriptor_over_fd_setsize_and_poll_takes_it() {
    let (ours, mut peer) = pair();
    let Some(high) = high_duplicate(&ours, 1030) else {
        return;
    };
    let fd = high.as_raw_fd();
    assert!(fd >= 1030);
    let mut select = new(Mechanism::Select).expect("select");
    let error = select
        .register(fd, A, Interest::READABLE)
        .expect_err("select cannot watch it");
    assert!(is_over_fd_setsize(&error), "{error:?}");
    assert_eq!(
        error.to_string(),
        format!(
            "descriptor {fd} is over FD_SETSIZE (1024): select(2) cannot watch it; use IO_POLL_MECHANISM=4 or 8"
        )
    );
    // Nothing was registered: select still works for the others.
    assert!(select.deregister(fd).is_err());
    select
        .register(ours.as_raw_fd(), B, Interest::READABLE)
        .expect("a low descriptor");
    peer.write_all(b"x").expect("write");
    let events = poll_some(&mut *select);
    assert!(events.len() == 1 && events[0].token() == B, "{events:?}");
    // poll(2) and epoll have no such limit.
    for m in [Mechanism::Poll, Mechanism::os_default()] {
        let mut poller = new(m).expect("poller");
        poller
            .register(fd, A, Interest::READABLE)
            .expect("a high descriptor");
        let events = poll_some(&mut *poller);
        assert!(
            events.len() == 1 && events[0].token() == A && events[0].is_readable(),
            "{m}: {events:?}"
        );
    }
}
