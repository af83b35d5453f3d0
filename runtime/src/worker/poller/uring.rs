//! io_uring (Linux), as a readiness mechanism: one multishot poll request
//! (`IORING_OP_POLL_ADD` with `IORING_POLL_ADD_MULTI`) per registered descriptor.
//!
//! Edges: a multishot poll posts a completion when the socket's wait queue is woken
//! with an event it asks for (new data, freed send space, a hang-up), not again while
//! the condition merely lasts, as epoll's `EPOLLET` does; so [`Poller::rearm`] has
//! nothing to do here either, and a socket that stays writable does not wake the loop.
//!
//! Batching: registrations and removals are queued as submissions and reach the
//! kernel with the next wait, in the one `io_uring_enter` that also waits (with
//! its timeout as an argument, `IORING_ENTER_EXT_ARG`): a new session's two
//! registrations cost no system call, where epoll makes one `epoll_ctl` each.
//!
//! Stale completions: a completion carries the descriptor and the generation of
//! its registration (`user_data`); one whose registration was removed, or whose
//! descriptor number was registered again since, is dropped.
//!
//! Closing: a poll request holds a reference to the socket, so closing the
//! descriptor alone would keep the socket (and its connection) alive; [`Poller::closing`]
//! queues the poll's cancellation, and the session's socket is released by the next
//! wait, at the end of the current loop turn. [`Poller::deregister`] (rare: a
//! listener closed on a drain) carries the cancellation out at once.
//!
//! The kernel ends a multishot poll on its own in rare cases (a completion queue
//! that overflowed): a completion without `IORING_CQE_F_MORE` for a live
//! registration arms a new poll, which reports what is ready at once, so no edge
//! is lost.
//!
//! Whether io_uring can be used is decided at run time ([`probe`], once per
//! process): `io_uring_setup` may be refused (`kernel.io_uring_disabled`, a seccomp
//! filter in a container), or the kernel may lack what this backend needs.

use super::{Event, Interest, Mechanism, Poller, Token};
use crate::sys::uring;
use io_uring::{cqueue, types, IoUring};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::OnceLock;
use std::time::Duration;

/// Submission queue entries: registrations and removals between two waits; more
/// are submitted early (one `io_uring_enter` per this many).
const SUBMISSIONS: u32 = 256;
/// Completion queue entries (the kernel keeps what overflows, `IORING_FEAT_NODROP`).
const COMPLETIONS: u32 = 4096;

/// `user_data` of a cancellation: its own completion (only on failure) is ignored.
const CANCEL: u64 = u64::MAX;

/// Poll bits (`<poll.h>`), as the kernel takes and reports them.
const IN: u32 = libc::POLLIN as u32;
const PRI: u32 = libc::POLLPRI as u32;
const OUT: u32 = libc::POLLOUT as u32;
const ERR: u32 = libc::POLLERR as u32;
const HUP: u32 = libc::POLLHUP as u32;
const RDHUP: u32 = libc::POLLRDHUP as u32;

/// What a read interest asks for: data and the peer's shutdown, as epoll is asked
/// through mio.
const READ_EVENTS: u32 = IN | PRI | RDHUP;

/// One registered descriptor (indexed by its number).
#[derive(Debug, Clone, Copy)]
struct Slot {
    token: Token,
    /// The registration's generation: the high half of its polls' `user_data`.
    generation: u32,
    /// The poll bits asked for.
    events: u32,
    live: bool,
    /// Its poll reached the kernel (otherwise it is still in `pending`).
    submitted: bool,
    /// Its poll failed (a descriptor the kernel refused): reported once, not re-armed.
    failed: bool,
    /// The loop turn in which an event was last reported, and its place in the
    /// events of that turn (several completions of one turn make one event).
    turn: u64,
    at: usize,
}

impl Slot {
    const FREE: Slot = Slot {
        token: Token(0),
        generation: 0,
        events: 0,
        live: false,
        submitted: false,
        failed: false,
        turn: 0,
        at: 0,
    };
}

fn user_data(fd: RawFd, generation: u32) -> u64 {
    (u64::from(generation) << 32) | u64::from(fd as u32)
}

/// A submission waiting for the next wait.
#[derive(Debug, Clone, Copy)]
enum Pending {
    /// Arm a poll for this registration (skipped if it is gone by then).
    Poll { fd: RawFd, generation: u32 },
    /// Cancel the poll of this `user_data`.
    Cancel(u64),
}

/// The io_uring backend.
pub struct Uring {
    ring: IoUring,
    slots: Vec<Slot>,
    generation: u32,
    turn: u64,
    /// What the next wait submits. Kept here rather than in the submission queue,
    /// so that a registration removed before it reached the kernel (a session
    /// opened and closed in one loop turn) costs the kernel nothing: a queued
    /// poll would take whatever file its descriptor number names when it is
    /// submitted, possibly another socket by then.
    pending: Vec<Pending>,
}

impl std::fmt::Debug for Uring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uring")
            .field("registered", &self.slots.iter().filter(|s| s.live).count())
            .finish_non_exhaustive()
    }
}

/// A ring as this backend sets it up: the work of wake-ups runs in the worker's
/// own `io_uring_enter` (`IORING_SETUP_DEFER_TASKRUN`, Linux 6.1, with
/// `SINGLE_ISSUER`: the ring is used by the thread that made it), so a wake-up
/// does not interrupt the worker while it relays; a plain ring on older kernels.
fn ring(entries: u32) -> io::Result<IoUring> {
    let deferred = IoUring::builder()
        .setup_cqsize(COMPLETIONS)
        .setup_single_issuer()
        .setup_defer_taskrun()
        .build(entries);
    match deferred {
        Ok(ring) => Ok(ring),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            IoUring::builder().setup_cqsize(COMPLETIONS).build(entries)
        }
        Err(e) => Err(e),
    }
}

/// Whether this process can use io_uring as its event mechanism: probed once (a
/// ring, a multishot poll on a pipe that must fire and stay armed); the error says
/// why not.
///
/// The probe runs in a thread of its own, which ends with it: the kernel tears a
/// closed ring down later, and then interrupts every thread that submitted to it
/// (task work with `TWA_SIGNAL`), which would make a blocking call of the caller
/// (the master, a test's client) fail with `EINTR` at some random later moment.
pub fn probe() -> Result<(), &'static str> {
    static PROBE: OnceLock<Result<(), String>> = OnceLock::new();
    PROBE
        .get_or_init(|| {
            let probed = std::thread::Builder::new()
                .name("io_uring probe".into())
                .spawn(try_ring)
                .map_err(|e| format!("cannot start the io_uring probe ({e})"))
                .and_then(|probe| {
                    probe
                        .join()
                        .unwrap_or_else(|_| Err("the io_uring probe failed".into()))
                });
            probed.map_err(|e| {
                crate::debug!("io_uring probe: {e}");
                e
            })
        })
        .as_ref()
        .map(|_| ())
        .map_err(String::as_str)
}

fn try_ring() -> Result<(), String> {
    let mut ring = ring(8).map_err(|e| match e.raw_os_error() {
        Some(libc::EPERM | libc::EACCES) => format!(
            "io_uring_setup was refused ({e}: kernel.io_uring_disabled, or a seccomp filter)"
        ),
        Some(libc::ENOSYS) => format!("this kernel has no io_uring ({e})"),
        _ => format!("io_uring_setup failed ({e})"),
    })?;
    let params = ring.params();
    if !params.is_feature_ext_arg() || !params.is_feature_nodrop() {
        return Err("this kernel's io_uring is too old (Linux 5.11 or later is needed)".into());
    }
    let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| format!("pipe: {e}"))?;
    if !uring::push_poll(&mut ring, read.as_raw_fd(), IN, true, 1) {
        return Err("io_uring: submission queue full".into());
    }
    rustix::io::write(&write, b"x").map_err(|e| format!("pipe: {e}"))?;
    let ts = types::Timespec::from(Duration::from_secs(1));
    ring.submitter()
        .submit_with_args(1, &types::SubmitArgs::new().timespec(&ts))
        .map_err(|e| format!("io_uring_enter failed ({e})"))?;
    let cqe = ring
        .completion()
        .next()
        .ok_or("io_uring: a poll did not complete")?;
    if cqe.result() < 0 {
        return Err(format!(
            "io_uring poll failed ({})",
            io::Error::from_raw_os_error(-cqe.result())
        ));
    }
    if !cqueue::more(cqe.flags()) {
        return Err("this kernel's io_uring has no multishot poll (Linux 5.13 or later)".into());
    }
    drop(ring);
    Ok(())
}

impl Uring {
    pub fn new() -> io::Result<Uring> {
        Ok(Uring {
            ring: ring(SUBMISSIONS)?,
            slots: Vec::new(),
            generation: 0,
            turn: 0,
            pending: Vec::new(),
        })
    }

    fn slot(&mut self, fd: RawFd) -> Option<&mut Slot> {
        self.slots
            .get_mut(usize::try_from(fd).ok()?)
            .filter(|s| s.live)
    }

    /// Queues a submission with `push`, submitting what is queued first if the
    /// queue is full.
    fn queue(&mut self, push: impl Fn(&mut IoUring) -> bool) -> io::Result<()> {
        while !push(&mut self.ring) {
            self.ring.submit()?;
        }
        Ok(())
    }

    /// Moves the pending submissions into the submission queue (what the kernel
    /// could not take stays pending, for the next wait).
    fn flush(&mut self) -> io::Result<()> {
        let mut pending = std::mem::take(&mut self.pending);
        let mut done = 0;
        let mut result = Ok(());
        for &next in &pending {
            let queued = match next {
                Pending::Poll { fd, generation } => {
                    let slot = self.slots[fd as usize];
                    if slot.live && slot.generation == generation {
                        let data = user_data(fd, generation);
                        let queued =
                            self.queue(|ring| uring::push_poll(ring, fd, slot.events, true, data));
                        if queued.is_ok() {
                            self.slots[fd as usize].submitted = true;
                        }
                        queued
                    } else {
                        Ok(())
                    }
                }
                Pending::Cancel(target) => {
                    self.queue(|ring| uring::push_cancel(ring, target, CANCEL))
                }
            };
            if let Err(e) = queued {
                result = Err(e);
                break;
            }
            done += 1;
        }
        pending.drain(..done);
        // Anything added meanwhile (nothing is) goes after what is left.
        pending.append(&mut self.pending);
        self.pending = pending;
        result
    }

    fn remove(&mut self, fd: RawFd) -> io::Result<()> {
        let Some(slot) = self.slot(fd) else {
            return Err(io::Error::from_raw_os_error(libc::ENOENT));
        };
        slot.live = false;
        if slot.submitted && !slot.failed {
            // The kernel's cancellation, unlike IORING_OP_POLL_REMOVE's, does not
            // fail (EALREADY) on a poll whose wake-up is being handled.
            let target = user_data(fd, slot.generation);
            self.pending.push(Pending::Cancel(target));
        }
        Ok(())
    }

    /// Reads the completion queue into `events`.
    fn reap(&mut self, events: &mut Vec<Event>) {
        let turn = self.turn;
        for cqe in self.ring.completion() {
            let data = cqe.user_data();
            if data == CANCEL {
                continue;
            }
            let fd = data as u32 as RawFd;
            let Some(slot) = usize::try_from(fd)
                .ok()
                .and_then(|at| self.slots.get_mut(at))
                .filter(|s| s.live && s.generation == (data >> 32) as u32)
            else {
                // A registration removed (its last completions, its cancellation),
                // or a descriptor number registered again since.
                continue;
            };
            let result = cqe.result();
            let ended = !cqueue::more(cqe.flags());
            let mask = if result >= 0 {
                result as u32
            } else if result == -libc::ECANCELED {
                0
            } else {
                // The kernel refused the poll (e.g. a descriptor that was closed
                // without deregistration): an error, once, and no new poll.
                slot.failed = true;
                ERR
            };
            if ended && !slot.failed {
                // The kernel ended the multishot poll: a new one, which reports
                // at once what is ready now.
                self.pending.push(Pending::Poll {
                    fd,
                    generation: slot.generation,
                });
            }
            if mask == 0 {
                continue;
            }
            let broken = mask & (HUP | ERR) != 0;
            let reading = slot.events & IN != 0;
            let writing = slot.events & OUT != 0;
            let event = Event {
                token: slot.token,
                readable: reading && (mask & (IN | PRI) != 0 || broken),
                writable: writing && (mask & OUT != 0 || broken),
                read_closed: mask & (HUP | RDHUP) != 0,
                error: mask & ERR != 0,
            };
            if slot.turn == turn {
                // Another completion of this descriptor in this turn: one event.
                let merged = &mut events[slot.at];
                merged.readable |= event.readable;
                merged.writable |= event.writable;
                merged.read_closed |= event.read_closed;
                merged.error |= event.error;
            } else {
                slot.turn = turn;
                slot.at = events.len();
                events.push(event);
            }
        }
    }
}

impl Poller for Uring {
    fn mechanism(&self) -> Mechanism {
        Mechanism::Uring
    }

    fn register(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        let Ok(number) = usize::try_from(fd) else {
            return Err(io::Error::from_raw_os_error(libc::EBADF));
        };
        if self.slot(fd).is_some() {
            return Err(io::Error::from_raw_os_error(libc::EEXIST));
        }
        if self.slots.len() <= number {
            self.slots.resize(number + 1, Slot::FREE);
        }
        // Generation 0 is never used: a fresh slot matches no completion.
        self.generation = self.generation.wrapping_add(1).max(1);
        let mut events = 0;
        if interest.is_readable() {
            events |= READ_EVENTS;
        }
        if interest.is_writable() {
            events |= OUT;
        }
        self.slots[number] = Slot {
            token,
            generation: self.generation,
            events,
            live: true,
            submitted: false,
            failed: false,
            turn: 0,
            at: 0,
        };
        self.pending.push(Pending::Poll {
            fd,
            generation: self.generation,
        });
        Ok(())
    }

    fn deregister(&mut self, fd: RawFd) -> io::Result<()> {
        self.remove(fd)?;
        // Rare (a listener closed on a drain, a control pipe): the cancellation is
        // carried out now, so that the socket is released when the caller closes
        // it, as with epoll (a drained listener refuses new clients at once).
        // The completions wait in the queue for the next poll.
        self.flush()?;
        let now = types::Timespec::new();
        match self
            .ring
            .submitter()
            .submit_with_args(1, &types::SubmitArgs::new().timespec(&now))
        {
            Err(e) if e.raw_os_error() != Some(libc::ETIME) => Err(e),
            _ => Ok(()),
        }
    }

    fn closing(&mut self, fd: RawFd) {
        // The poll holds the socket: it must be removed, or closing the descriptor
        // would not close the connection.
        let _ = self.remove(fd);
    }

    fn rearm(&mut self, _fd: RawFd, _interest: Interest) {
        // Multishot polls stay armed and fire on every new edge (module docs).
    }

    fn rearms(&self) -> bool {
        false
    }

    fn poll(&mut self, events: &mut Vec<Event>, timeout: Option<Duration>) -> io::Result<()> {
        events.clear();
        self.turn += 1;
        match self.flush() {
            // The kernel holds completions it could not post: read them first
            // (below); what was not submitted goes with the next wait.
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
            Ok(()) => {}
        }
        let waited = match timeout {
            None => self.ring.submitter().submit_and_wait(1),
            Some(timeout) => {
                let ts = types::Timespec::from(timeout);
                self.ring
                    .submitter()
                    .submit_with_args(1, &types::SubmitArgs::new().timespec(&ts))
            }
        };
        let interrupted = match waited {
            Ok(_) => false,
            // The timeout passed; completions waiting to be read (the kernel
            // keeps what overflowed until they are).
            Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME | libc::EBUSY)) => false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => true,
            Err(e) => return Err(e),
        };
        self.reap(events);
        if interrupted && events.is_empty() {
            return Err(io::Error::from(io::ErrorKind::Interrupted));
        }
        Ok(())
    }
}

impl Drop for Uring {
    fn drop(&mut self) {
        // Cancellations still pending release their sockets now, not when the
        // kernel gets round to tearing the ring down.
        let _ = self.flush();
        if !self.ring.submission().is_empty() {
            let ts = types::Timespec::new();
            let _ = self
                .ring
                .submitter()
                .submit_with_args(1, &types::SubmitArgs::new().timespec(&ts));
        }
    }
}

#[cfg(test)]
mod tests {
    //! What is particular to io_uring; the behaviour every backend shares is tested
    //! in `poller::tests`, the whole worker under io_uring in `worker::tests`.

    use super::*;
    use crate::worker::poller::tests::pair;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::OwnedFd;
    use std::time::Instant;

    const A: Token = Token(7);
    const B: Token = Token(8);
    const WAIT: Duration = Duration::from_secs(2);
    const QUIET: Duration = Duration::from_millis(50);

    /// A backend, or `None` (with a message) where this kernel refuses io_uring.
    fn uring() -> Option<Uring> {
        if let Err(why) = probe() {
            eprintln!("skipped: {why}");
            return None;
        }
        Some(Uring::new().expect("a ring"))
    }

    fn poll_once(poller: &mut Uring, within: Duration) -> Vec<Event> {
        crate::worker::poller::tests::poll_once(poller, within)
    }

    /// Polls until something is reported (or `WAIT` passes).
    fn poll_some(poller: &mut Uring) -> Vec<Event> {
        crate::worker::poller::tests::poll_some_within(poller, WAIT)
    }

    fn tcp_pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let ours = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (peer, _) = listener.accept().expect("accept");
        ours.set_nonblocking(true).expect("nonblocking");
        (ours, peer)
    }

    #[test]
    fn a_socket_writable_all_the_time_does_not_wake_the_loop() {
        let Some(mut poller) = uring() else { return };
        let (mut ours, mut peer) = tcp_pair();
        poller
            .register(ours.as_raw_fd(), A, Interest::READABLE | Interest::WRITABLE)
            .expect("register");
        let events = poll_some(&mut poller);
        assert_eq!(events.len(), 1, "{events:?}");
        assert!(events[0].is_writable() && !events[0].is_readable());
        // Writable all along, never re-armed: twenty waits, no wake-up.
        for _ in 0..20 {
            assert!(poll_once(&mut poller, Duration::from_millis(5)).is_empty());
        }
        // Each segment from the peer is one edge, reported once, whether or not the
        // relay reads it (backpressure): no spin on the unread bytes either.
        for round in 0..3 {
            peer.write_all(b"ping").expect("write");
            let events = poll_some(&mut poller);
            assert!(
                events.len() == 1 && events[0].token() == A && events[0].is_readable(),
                "round {round}: {events:?}"
            );
            assert!(poll_once(&mut poller, QUIET).is_empty(), "round {round}");
        }
        // Writing and reading on as the engine does leaves it just as quiet.
        ours.write_all(b"pong").expect("write");
        let mut buf = [0u8; 16];
        assert_eq!(ours.read(&mut buf).expect("read"), 12);
        assert!(poll_once(&mut poller, QUIET).is_empty());
    }

    #[test]
    fn stale_completions_of_a_reused_descriptor_number_are_dropped() {
        let Some(mut poller) = uring() else { return };
        let (ours, mut peer) = pair();
        let number = ours.as_raw_fd();
        poller
            .register(number, A, Interest::READABLE)
            .expect("register");
        assert!(poll_once(&mut poller, QUIET).is_empty());
        // The socket becomes readable and the kernel posts the completion, which
        // the worker has not read yet when it removes the descriptor...
        peer.write_all(b"old").expect("write");
        poller
            .ring
            .submitter()
            .submit_and_wait(1)
            .expect("the completion is posted");
        assert_eq!(poller.ring.completion().len(), 1);
        poller.deregister(number).expect("deregister");
        // ... and the kernel hands its number to a new socket, registered under
        // another token: nothing of the old one is reported under it.
        let (new, mut new_peer) = pair();
        let mut reused = OwnedFd::from(ours);
        rustix::io::dup2(&new, &mut reused).expect("dup2");
        drop(new);
        assert_eq!(reused.as_raw_fd(), number);
        poller
            .register(number, B, Interest::READABLE)
            .expect("register the new socket");
        let events = poll_once(&mut poller, QUIET);
        assert!(events.is_empty(), "stale: {events:?}");
        // The new registration works, once per edge.
        new_peer.write_all(b"new").expect("write");
        let events = poll_some(&mut poller);
        assert!(
            events.len() == 1 && events[0].token() == B && events[0].is_readable(),
            "{events:?}"
        );
        assert!(poll_once(&mut poller, QUIET).is_empty());
    }

    #[test]
    fn a_multishot_poll_the_kernel_ends_is_armed_again() {
        let Some(mut poller) = uring() else { return };
        let (ours, mut peer) = pair();
        let fd = ours.as_raw_fd();
        poller
            .register(fd, A, Interest::READABLE)
            .expect("register");
        assert!(poll_once(&mut poller, QUIET).is_empty());
        // The kernel ends the poll (here: removed behind the backend's back, as an
        // overflowing completion queue does): a completion without F_MORE.
        let generation = poller.slots[fd as usize].generation;
        assert!(uring::push_cancel(
            &mut poller.ring,
            user_data(fd, generation),
            CANCEL
        ));
        assert!(poll_once(&mut poller, QUIET).is_empty());
        assert_eq!(poller.pending.len(), 1, "a new poll is pending");
        // Still watched: new data is reported, once.
        peer.write_all(b"x").expect("write");
        let events = poll_some(&mut poller);
        assert!(
            events.len() == 1 && events[0].token() == A && events[0].is_readable(),
            "{events:?}"
        );
        assert!(poll_once(&mut poller, QUIET).is_empty());
    }

    #[test]
    fn closing_a_descriptor_closes_its_connection_by_the_next_wait() {
        let Some(mut poller) = uring() else { return };
        let (ours, mut peer) = tcp_pair();
        poller
            .register(ours.as_raw_fd(), A, Interest::READABLE | Interest::WRITABLE)
            .expect("register");
        assert_eq!(poll_some(&mut poller).len(), 1);
        // The poll holds the socket: without its removal the peer would never
        // see the end of the connection.
        poller.closing(ours.as_raw_fd());
        drop(ours);
        let reader = std::thread::spawn(move || {
            peer.set_read_timeout(Some(WAIT)).expect("timeout");
            let mut buf = [0u8; 1];
            let started = Instant::now();
            let read = peer.read(&mut buf).map_err(|e| e.kind());
            (read, started.elapsed())
        });
        // The worker sleeps in its wait meanwhile.
        let started = Instant::now();
        assert!(poll_once(&mut poller, Duration::from_millis(1500)).is_empty());
        let slept = started.elapsed();
        let (read, took) = reader.join().expect("reader");
        assert_eq!(read, Ok(0), "end of file");
        assert!(
            took < Duration::from_millis(500),
            "the close waited for the wait: {took:?} (slept {slept:?})"
        );
    }

    #[test]
    fn a_refused_io_uring_setup_is_a_clear_error_naming_the_choices() {
        // As in a container whose seccomp profile refuses io_uring.
        let refused = std::thread::spawn(|| {
            crate::sys::testing::refuse_io_uring_setup_in_this_thread().expect("seccomp");
            (try_ring(), IoUring::new(8).map(drop))
        })
        .join()
        .expect("thread");
        let (why, direct) = refused;
        assert_eq!(
            direct.expect_err("io_uring_setup refused").raw_os_error(),
            Some(libc::EPERM)
        );
        let why = why.expect_err("the probe fails");
        assert!(
            why.starts_with("io_uring_setup was refused (")
                && why.ends_with(": kernel.io_uring_disabled, or a seccomp filter)"),
            "{why}"
        );
        assert_eq!(
            Mechanism::parse_with(Some("64"), Some(&why)),
            Err(format!(
                "IO_POLL_MECHANISM=64 (io_uring) cannot be used here: {why}; \
                 on this system use 4 (epoll), 8 (poll) or 16 (select)"
            ))
        );
        // The others are still chosen as before.
        assert_eq!(
            Mechanism::parse_with(Some("4"), Some(&why)),
            Ok(Mechanism::Epoll)
        );
        assert_eq!(
            Mechanism::parse_with(None, Some(&why)),
            Ok(Mechanism::Epoll)
        );
    }
}
