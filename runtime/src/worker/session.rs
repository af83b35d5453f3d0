//! One relayed connection as an explicit state machine: the client side, the remote
//! side, and the two directions of bytes between them.
//!
//! ```text
//! TlsHandshake ──done──┐   (TLS clients only; failure or timeout: Closed)
//!                      ▼
//! Connecting ──connected──► Relaying ──one EOF forwarded──► HalfClosed ──both──► Closed
//!  ▲  │ (failed: the worker fails over to another remote, or gives up)        ▲
//!  │  └─────────────────────── timeout, or an error of both sides ───────────┤
//!  │                                                                          │
//!  │     Relaying / HalfClosed ──error / reset on one side──► Failing ─────────┘
//!  └── the remote failed before anything was relayed ◄───────────┘  (delivered)
//! ```
//!
//! A side that fails (a reset, mostly) does not cut what it sent before: in
//! `Failing` the bytes it sent are still read, to its end, and written to the
//! other side, and the session closes once the other side's kernel has sent them
//! and had them acknowledged (a reset, `SO_LINGER` 0, discards what a socket still
//! holds); then the other side is reset too, if the failure was a reset. A
//! delivery that makes no progress for [`FAILING_LIMIT`] is given up.
//!
//! A remote that fails before anything was relayed either way (it accepted and
//! reset, before any byte of the client was written to it and before any byte came
//! from it) is failed over like a failed connect ([`Outcome::Failover`]): the
//! session is connecting again, with the client's bytes read meanwhile kept (at most
//! one read) for the next remote. Once a client byte was written to a remote the
//! session is never moved to another: the remote may have acted on it, and sending
//! it again could repeat a request that is not idempotent (HAProxy in `mode tcp`
//! does not replay either). A remote that closes cleanly (an end of file) before
//! anything was relayed is not a failure: an end of file is a valid answer in many
//! protocols, and the client gets it as it would from the remote itself.
//!
//! A client that resets while its session is still connecting is closed at once by
//! the worker, its connect abandoned (see `server::sessions`): there is no remote
//! yet to deliver to, and a connection opened only to carry the bytes of a client
//! that is gone would hold a remote (and a local port) for nothing.
//!
//! Clients of a `tls = yes` listener start in `TlsHandshake`: no remote is opened
//! before the handshake completes, so a client that sends garbage or nothing never
//! costs a remote a connection.
//!
//! The state machine knows nothing about the poll, the balancer or the clock: the
//! worker loop feeds it readiness ([`Session::ready`]) and runs it
//! ([`Session::connected`], [`Session::relay`]); it answers with an [`Outcome`].
//! It is generic over the [`Transport`] so that it is tested with an in-memory fake.
//!
//! Readiness is tracked here, per side, because mio is edge-triggered: a side is
//! known readable (writable) from an event until an operation returns
//! `WouldBlock`, and both interests are registered once for the life of a socket.

use super::balance::Tried;
use super::buffer::Pending;
use super::splice::{self, Pipe, Pipes};
use super::transport::Transport;
use std::io;
use std::time::{Duration, Instant};

/// How long a failing session's delivery (see [`State::Failing`]) may go without
/// progress before the session closes anyway: 2 seconds, many round trips on any
/// path, short enough that a peer that stops reading cannot hold a failed session
/// (and its buffer or pipe) for long.
pub const FAILING_LIMIT: Duration = Duration::from_secs(2);

/// Reads of one direction in one run before the session yields to the others
/// (with a 64 KiB scratch buffer: 1 MiB).
pub const READS_PER_RUN: u32 = 16;

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
}

/// What the session is doing.
#[derive(Debug)]
pub enum State {
    /// A TLS client's handshake runs (started at the instant held, for the
    /// handshake timeout); nothing is relayed and no remote is opened yet.
    TlsHandshake { started: Instant },
    /// The remote connection is being set up; the client is not read meanwhile (its
    /// bytes wait in the kernel), so it does not notice a failover.
    Connecting(Box<Connecting>),
    /// Bytes flow both ways.
    Relaying,
    /// `finished` has sent end of file and it was forwarded to the other side;
    /// the other direction still flows.
    HalfClosed { finished: Side },
    /// One side failed: what it sent before is delivered to the other side, then
    /// the session closes.
    Failing(Box<Failure>),
    /// Both directions are finished, or the session failed.
    Closed,
}

impl State {
    /// A short description for log lines.
    pub fn name(&self) -> &'static str {
        match self {
            State::TlsHandshake { .. } => "in the TLS handshake",
            State::Connecting(_) => "connecting",
            State::Relaying => "relaying",
            State::HalfClosed {
                finished: Side::Client,
            } => "half-closed by the client",
            State::HalfClosed {
                finished: Side::Remote,
            } => "half-closed by the remote",
            State::Failing(failure) => match failure.side {
                Side::Client => "delivering what the client sent before it failed",
                Side::Remote => "delivering what the remote sent before it failed",
            },
            State::Closed => "closed",
        }
    }
}

/// The failover bookkeeping of a session that is connecting.
#[derive(Debug)]
pub struct Connecting {
    /// Remotes this session has tried (excluded from further selections).
    pub tried: Tried,
    /// Whether this session has already revived every dead remote once.
    pub revived: bool,
    /// Attempts made so far.
    pub attempt: u32,
    /// When the current attempt started (for the connect timeout).
    pub started: Instant,
    /// Some remote of the current pass had no free local port (not its fault).
    pub no_port: bool,
    /// Since when this session waits for a free local port (at most the connect
    /// timeout).
    pub port_wait: Option<Instant>,
}

/// A side's failure, and the delivery of what it sent before it.
#[derive(Debug)]
pub struct Failure {
    pub side: Side,
    pub error: io::Error,
    /// When the delivery last made progress: bytes moved, or the other side's
    /// kernel sent some of what it held.
    progress: Instant,
    /// What the other side's kernel held at the last look (`usize::MAX` before).
    unsent: usize,
    /// Whether the worker has the session on its list of failing sessions to look
    /// at again.
    pub listed: bool,
}

impl Connecting {
    /// No attempt made yet.
    pub fn new(now: Instant) -> Connecting {
        Connecting {
            tried: Tried::default(),
            revived: false,
            attempt: 0,
            started: now,
            no_port: false,
            port_wait: None,
        }
    }
}

/// What the worker loop should do with a session after running it.
#[derive(Debug)]
pub enum Outcome {
    /// Wait for the next readiness event.
    Continue,
    /// The session stopped with work left because it used its budget: run it again
    /// after the other ready sources had their turn.
    Again,
    /// A side failed and the session delivers what it sent before: run it again
    /// on events and every little while (its unsent bytes and its time limit are
    /// checked then).
    Linger,
    /// The remote failed before anything was relayed: the session is connecting
    /// again (the failed remote is still attached, for the worker to close and mark
    /// dead); fail over.
    Failover(io::Error),
    /// Close the session.
    Close(Close),
}

/// Why a session closes.
#[derive(Debug)]
pub enum Close {
    /// Both directions finished normally.
    Finished,
    /// An I/O error on one side.
    Error { side: Side, error: io::Error },
}

/// Whether an error means the peer reset the connection, in which case the
/// other side is reset too rather than closed gracefully.
pub fn is_reset(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted
    )
}

/// What a connect readiness check found.
#[derive(Debug)]
pub enum ConnectOutcome {
    /// Still in progress (a spurious or stale event).
    Pending,
    /// Connected: the session is now relaying.
    Connected,
    /// The connect failed: fail over.
    Failed(io::Error),
}

/// What driving a TLS handshake found.
#[derive(Debug)]
pub enum HandshakeOutcome {
    /// Waiting for the client.
    Pending,
    /// Complete: the session is now connecting.
    Done,
    /// The client has spoken but the worker runs as many handshakes as it may:
    /// drive it again when one ends (its bytes wait in the kernel meanwhile).
    Queued,
    /// The handshake failed (OpenSSL has sent the client an alert): close.
    Failed(io::Error),
}

/// One side's socket and what is known of its readiness.
#[derive(Debug)]
pub struct End<T> {
    pub io: T,
    readable: bool,
    writable: bool,
    /// The peer has shut down its sending side: a short read does not prove the
    /// buffer is empty any more (the end of file must still be read).
    read_closed: bool,
    /// An error event was reported; the socket's error is checked on the next run.
    error: bool,
    /// The worker's poll round in which the socket was registered: an event fetched
    /// in that round is another socket's (a closed one whose token was reused).
    pub round: u64,
}

impl<T: Transport> End<T> {
    /// The socket's error, if an error event was reported since the last check.
    fn reported_error(&mut self) -> Option<io::Error> {
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

/// One direction of bytes: from a source side to a destination side.
#[derive(Debug, Default)]
struct Flow {
    /// What the destination has not accepted yet; the source is not read meanwhile.
    pending: Pending,
    /// The source has sent end of file.
    eof: bool,
    /// The end of file was forwarded (`shutdown(Write)` on the destination).
    shut: bool,
    /// Bulk data was seen: the direction splices (see [`super::splice`]).
    splice: bool,
    /// While splicing, the pipe holding bytes in transit (returned when empty).
    pipe: Option<Box<Pipe>>,
}

/// How a direction is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Bytes flow and an end of file is forwarded; `other_shut`: the other direction
    /// is finished, so this one's end of file finishes the session.
    Relay { other_shut: bool },
    /// The source failed: what it sent before is delivered; its end (of file, or a
    /// read error) is not forwarded, the session closes after it.
    Deliver,
}

/// How a direction's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Run {
    /// Nothing more can be done until a readiness event.
    Blocked,
    /// The read budget was used up with data possibly left.
    Exhausted,
}

/// One relayed connection.
#[derive(Debug)]
pub struct Session<T> {
    /// A number unique in the worker, for logs and for recognising timers of a
    /// session whose slab slot was reused.
    pub id: u64,
    pub state: State,
    pub client: End<T>,
    /// The remote side; `None` between a failed attempt and the next one.
    pub remote: Option<End<T>>,
    /// The remote (plan index) whose balancer count this session holds.
    pub remote_index: Option<usize>,
    /// Client → remote.
    up: Flow,
    /// Remote → client.
    down: Flow,
    /// When bytes last moved (or the session started relaying).
    pub last_active: Instant,
    /// Whether the session is in the worker's run-again queue.
    pub queued: bool,
    /// Bytes relayed client → remote and remote → client, for the close log line.
    pub bytes: (u64, u64),
    /// The failover bookkeeping of the connect, kept while nothing has been relayed
    /// (the remote may still fail over), then dropped.
    retry: Option<Box<Connecting>>,
}

impl<T: Transport> Session<T> {
    pub fn new(id: u64, client: T, now: Instant) -> Session<T> {
        Session::with_client(id, End::new(client), now)
    }

    fn with_client(id: u64, client: End<T>, now: Instant) -> Session<T> {
        Session {
            id,
            state: State::Connecting(Box::new(Connecting::new(now))),
            client,
            remote: None,
            remote_index: None,
            up: Flow::default(),
            down: Flow::default(),
            last_active: now,
            queued: false,
            bytes: (0, 0),
            retry: None,
        }
    }

    /// A session for a plain client just accepted and registered with the poller:
    /// its readiness comes from the poller (see [`End::registered`]).
    pub fn accepted(id: u64, client: T, now: Instant, round: u64) -> Session<T> {
        Session::with_client(id, End::registered(client, round), now)
    }

    /// A session whose client must complete a TLS handshake before anything else.
    pub fn handshaking(id: u64, client: T, now: Instant) -> Session<T> {
        Session {
            state: State::TlsHandshake { started: now },
            ..Session::new(id, client, now)
        }
    }

    /// Drives the client's handshake on (after a readiness event of the client, or
    /// at once when accepted); once complete, the session is connecting.
    pub fn handshake(&mut self, now: Instant) -> HandshakeOutcome {
        if !matches!(self.state, State::TlsHandshake { .. }) {
            return HandshakeOutcome::Done;
        }
        loop {
            match self.client.io.handshake() {
                Ok(()) => {
                    self.state = State::Connecting(Box::new(Connecting::new(now)));
                    self.last_active = now;
                    // OpenSSL may hold bytes that came with the last handshake
                    // message: the first relay run reads, whatever the events said.
                    self.client.readable = true;
                    self.client.writable = true;
                    return HandshakeOutcome::Done;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // The handshake waits like a read (the transport's `readiness`
                    // knows whether for the socket to be readable or writable).
                    self.client.readable = false;
                    return HandshakeOutcome::Pending;
                }
                Err(e) if e.kind() == io::ErrorKind::ResourceBusy => {
                    return HandshakeOutcome::Queued;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.state = State::Closed;
                    return HandshakeOutcome::Failed(e);
                }
            }
        }
    }

    /// The client's socket error, if an error event was reported for it since the
    /// last check (a client that reset while its session waits for a remote).
    pub fn client_error(&mut self) -> Option<io::Error> {
        self.client.reported_error()
    }

    /// Records a readiness event for one side.
    pub fn ready(
        &mut self,
        side: Side,
        readable: bool,
        writable: bool,
        read_closed: bool,
        error: bool,
    ) {
        let end = match side {
            Side::Client => &mut self.client,
            Side::Remote => match self.remote.as_mut() {
                Some(end) => end,
                None => return,
            },
        };
        let (readable, writable) = end.io.readiness(readable, writable);
        end.readable |= readable || read_closed || error;
        end.writable |= writable || error;
        end.read_closed |= read_closed;
        end.error |= error;
    }

    /// Gives the session's pipes back (before it is dropped): a pipe still holding
    /// bytes is closed, and frees its place in the budget.
    pub fn release_pipes(&mut self, pipes: &mut Pipes) {
        for flow in [&mut self.up, &mut self.down] {
            if let Some(pipe) = flow.pipe.take() {
                pipes.give(pipe);
            }
        }
    }

    /// Bytes held in user space for this session (0 when idle).
    pub fn buffered(&self) -> usize {
        self.up.pending.allocated() + self.down.pending.allocated()
    }

    /// Checks an attempt's connect after a readiness event on the remote side.
    ///
    /// With `events_report_errors` (epoll, poll: a failed connect raises an error
    /// or hang-up event), a writable event without either means connected and
    /// no system call is made; otherwise (select(2), which shows a failed socket as
    /// writable, or an error event) the socket is asked.
    pub fn connected(&mut self, now: Instant, events_report_errors: bool) -> ConnectOutcome {
        if !matches!(self.state, State::Connecting(_)) {
            return ConnectOutcome::Pending;
        }
        let Some(remote) = self.remote.as_mut() else {
            return ConnectOutcome::Pending;
        };
        let status = if !events_report_errors || remote.error || remote.read_closed {
            remote.io.connect_status()
        } else {
            // A connect ends with the socket writable, or with an error or hang-up.
            Ok(remote.writable)
        };
        match status {
            Ok(false) => ConnectOutcome::Pending,
            Ok(true) => {
                remote.error = false;
                if let State::Connecting(connecting) =
                    std::mem::replace(&mut self.state, State::Relaying)
                {
                    self.retry = Some(connecting);
                }
                self.last_active = now;
                ConnectOutcome::Connected
            }
            Err(e) => ConnectOutcome::Failed(e),
        }
    }

    /// Whether nothing has been relayed yet, either way: no byte written to the
    /// remote, none read from it, and no end of file of the remote forwarded (the
    /// client's, forwarded to the remote, is forwarded to the next one again).
    pub fn fresh(&self) -> bool {
        let empty = |flow: &Flow| flow.pipe.as_ref().is_none_or(|p| p.len == 0);
        self.bytes == (0, 0)
            && self.down.pending.is_empty()
            && !self.down.shut
            && empty(&self.up)
            && empty(&self.down)
    }

    fn end_mut(&mut self, side: Side) -> Option<&mut End<T>> {
        match side {
            Side::Client => Some(&mut self.client),
            Side::Remote => self.remote.as_mut(),
        }
    }

    /// Records that `side` failed: from now on what it sent before is delivered
    /// (see [`State::Failing`]). Returns the close when the other side had already
    /// failed: nothing can be delivered any more.
    fn fail(&mut self, side: Side, error: io::Error, now: Instant) -> Option<Close> {
        match &self.state {
            State::Failing(failure) if failure.side == side => None,
            State::Failing(_) => {
                self.state = State::Closed;
                Some(Close::Error { side, error })
            }
            _ => {
                self.state = State::Failing(Box::new(Failure {
                    side,
                    error,
                    progress: now,
                    unsent: usize::MAX,
                    listed: false,
                }));
                // What it sent before is read to its end (a read after a reset
                // does not block; one that does waits for an event as usual).
                if let Some(end) = self.end_mut(side) {
                    end.readable = true;
                }
                None
            }
        }
    }

    /// Runs the direction from side `from` (see [`transfer`]).
    fn run(
        &mut self,
        from: Side,
        scratch: &mut [u8],
        pipes: &mut Pipes,
        mode: Mode,
    ) -> Result<Run, (Side, io::Error)> {
        let Some(remote) = self.remote.as_mut() else {
            return Ok(Run::Blocked);
        };
        match from {
            Side::Client => transfer(
                &mut self.client,
                remote,
                &mut self.up,
                Side::Client,
                scratch,
                pipes,
                &mut self.bytes.0,
                mode,
            ),
            Side::Remote => transfer(
                remote,
                &mut self.client,
                &mut self.down,
                Side::Remote,
                scratch,
                pipes,
                &mut self.bytes.1,
                mode,
            ),
        }
    }

    /// Moves bytes both ways until every direction is blocked (or used its budget),
    /// forwarding ends of file; once a side failed, delivers what it sent before.
    /// `scratch` is the worker's read buffer.
    pub fn relay(&mut self, scratch: &mut [u8], pipes: &mut Pipes, now: Instant) -> Outcome {
        if matches!(
            self.state,
            State::TlsHandshake { .. } | State::Connecting(_) | State::Closed
        ) {
            return Outcome::Continue;
        }
        if self.remote.is_none() {
            debug_assert!(false, "relaying without a remote");
            return Outcome::Close(Close::Error {
                side: Side::Remote,
                error: io::ErrorKind::NotConnected.into(),
            });
        }
        // An error event: the side failed (its socket error is taken now), but what
        // it sent before the error is still in its socket, to be read and delivered.
        for side in [Side::Client, Side::Remote] {
            let error = self.end_mut(side).and_then(|end| end.reported_error());
            if let Some(error) = error {
                if let Some(close) = self.fail(side, error, now) {
                    return Outcome::Close(close);
                }
            }
        }
        let before = self.bytes;
        let mut exhausted = false;
        if !matches!(self.state, State::Failing(_)) {
            for from in [Side::Client, Side::Remote] {
                let other_shut = match from {
                    Side::Client => self.down.shut,
                    Side::Remote => self.up.shut,
                };
                match self.run(from, scratch, pipes, Mode::Relay { other_shut }) {
                    Ok(run) => exhausted |= run == Run::Exhausted,
                    // Nothing more is done the normal way (an end of file forwarded
                    // now would hide the reset from the other side).
                    Err((side, error)) => {
                        if let Some(close) = self.fail(side, error, now) {
                            return Outcome::Close(close);
                        }
                        break;
                    }
                }
            }
        }
        if let State::Failing(failure) = &self.state {
            match self.run(failure.side, scratch, pipes, Mode::Deliver) {
                Ok(run) => exhausted = run == Run::Exhausted,
                // The other side failed too: nothing can be delivered any more.
                Err((side, error)) => {
                    self.state = State::Closed;
                    return Outcome::Close(Close::Error { side, error });
                }
            }
        }
        let moved = self.bytes != before;
        if moved {
            self.last_active = now;
        }
        if self.retry.is_some() && !self.fresh() {
            self.retry = None;
        }
        if matches!(self.state, State::Failing(_)) {
            return self.failing(now, moved, exhausted, pipes);
        }
        self.state = match (self.up.shut, self.down.shut) {
            (true, true) => State::Closed,
            (true, false) => State::HalfClosed {
                finished: Side::Client,
            },
            (false, true) => State::HalfClosed {
                finished: Side::Remote,
            },
            (false, false) => State::Relaying,
        };
        if matches!(self.state, State::Closed) {
            Outcome::Close(Close::Finished)
        } else if exhausted {
            Outcome::Again
        } else {
            Outcome::Continue
        }
    }

    /// After a run of a failing session: fails over if the remote failed before
    /// anything was relayed, closes once everything the failed side sent is out of
    /// the other side's kernel (or the delivery stalled for [`FAILING_LIMIT`]),
    /// lingers otherwise.
    fn failing(
        &mut self,
        now: Instant,
        moved: bool,
        exhausted: bool,
        pipes: &mut Pipes,
    ) -> Outcome {
        let State::Failing(failure) = &self.state else {
            return Outcome::Continue;
        };
        let side = failure.side;
        let flow = match side {
            Side::Client => &self.up,
            Side::Remote => &self.down,
        };
        let delivered =
            flow.eof && flow.pending.is_empty() && flow.pipe.as_ref().is_none_or(|p| p.len == 0);
        if side == Side::Remote && delivered && self.fresh() {
            return self.restart(now, pipes);
        }
        let unsent = if delivered {
            let other = match side {
                Side::Client => self.remote.as_ref(),
                Side::Remote => Some(&self.client),
            };
            // A socket that cannot tell is not waited for.
            other.map_or(Ok(0), |end| end.io.unsent()).unwrap_or(0)
        } else {
            usize::MAX
        };
        let State::Failing(failure) = &mut self.state else {
            return Outcome::Continue;
        };
        if moved || unsent < failure.unsent {
            failure.progress = now;
        }
        failure.unsent = unsent;
        if unsent == 0 || now.saturating_duration_since(failure.progress) >= FAILING_LIMIT {
            return match std::mem::replace(&mut self.state, State::Closed) {
                State::Failing(failure) => Outcome::Close(Close::Error {
                    side: failure.side,
                    error: failure.error,
                }),
                _ => Outcome::Close(Close::Finished),
            };
        }
        if exhausted {
            Outcome::Again
        } else {
            Outcome::Linger
        }
    }

    /// The remote failed before anything was relayed: back to connecting, with the
    /// failover bookkeeping of the first connect (the remotes tried stay excluded),
    /// the client's bytes read meanwhile kept for the next remote and its end of
    /// file, if it came, to be forwarded again.
    fn restart(&mut self, now: Instant, pipes: &mut Pipes) -> Outcome {
        let mut connecting = self
            .retry
            .take()
            .unwrap_or_else(|| Box::new(Connecting::new(now)));
        connecting.started = now;
        connecting.no_port = false;
        connecting.port_wait = None;
        let error = match std::mem::replace(&mut self.state, State::Connecting(connecting)) {
            State::Failing(failure) => failure.error,
            _ => io::ErrorKind::ConnectionReset.into(),
        };
        for flow in [&mut self.up, &mut self.down] {
            if let Some(pipe) = flow.pipe.take() {
                pipes.give(pipe);
            }
        }
        self.up.shut = false;
        self.down = Flow::default();
        Outcome::Failover(error)
    }
}

/// Runs one direction: flushes its remainder, forwards its end of file, or reads
/// from `src` and writes to `dst`, until blocked or out of budget. An error names
/// the side it happened on; bytes a failed write did not take are kept in the
/// remainder (the client's, for the next remote of a failover). A pipe the
/// direction ends with empty goes back to `pipes`.
#[allow(clippy::too_many_arguments)]
fn transfer<T: Transport>(
    src: &mut End<T>,
    dst: &mut End<T>,
    flow: &mut Flow,
    src_side: Side,
    scratch: &mut [u8],
    pipes: &mut Pipes,
    counter: &mut u64,
    mode: Mode,
) -> Result<Run, (Side, io::Error)> {
    let run = transfer_until_blocked(src, dst, flow, src_side, scratch, pipes, counter, mode);
    if flow.pipe.as_ref().is_some_and(|p| p.len == 0) {
        if let Some(pipe) = flow.pipe.take() {
            pipes.give(pipe);
        }
    }
    run
}

#[allow(clippy::too_many_arguments)]
fn transfer_until_blocked<T: Transport>(
    src: &mut End<T>,
    dst: &mut End<T>,
    flow: &mut Flow,
    src_side: Side,
    scratch: &mut [u8],
    pipes: &mut Pipes,
    counter: &mut u64,
    mode: Mode,
) -> Result<Run, (Side, io::Error)> {
    let dst_side = match src_side {
        Side::Client => Side::Remote,
        Side::Remote => Side::Client,
    };
    let mut reads = 0;
    loop {
        if !flow.pending.is_empty() {
            if !dst.writable {
                return Ok(Run::Blocked);
            }
            let want = flow.pending.len();
            match dst.io.write(flow.pending.as_slice()) {
                Ok(0) => return Err((dst_side, io::ErrorKind::WriteZero.into())),
                Ok(n) => {
                    flow.pending.consume(n);
                    *counter += n as u64;
                    if n < want {
                        // A short write means the send buffer is full.
                        dst.writable = false;
                        return Ok(Run::Blocked);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    dst.writable = false;
                    return Ok(Run::Blocked);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err((dst_side, e)),
            }
            continue;
        }
        if let Some(pipe) = flow.pipe.as_mut().filter(|p| p.len > 0) {
            if !dst.writable {
                return Ok(Run::Blocked);
            }
            let Some(fd) = dst.io.splice_fd() else {
                debug_assert!(false, "a pipe for a destination that cannot splice");
                return Err((dst_side, io::ErrorKind::Unsupported.into()));
            };
            let want = pipe.len;
            match splice::drain(pipe, fd) {
                Ok(0) => return Err((dst_side, io::ErrorKind::WriteZero.into())),
                Ok(n) => {
                    *counter += n as u64;
                    if n < want {
                        dst.writable = false;
                        return Ok(Run::Blocked);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    dst.writable = false;
                    return Ok(Run::Blocked);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if splice::unsupported(&e) => {
                    // This destination cannot splice: copy what the pipe holds on
                    // as a remainder, and copy from now on.
                    flow.splice = false;
                    let bytes = splice::take_all(pipe).map_err(|e| (src_side, e))?;
                    flow.pending.store(&bytes);
                }
                Err(e) => return Err((dst_side, e)),
            }
            continue;
        }
        if flow.eof {
            let Mode::Relay { other_shut } = mode else {
                // Delivered: the session closes (or fails over) now.
                return Ok(Run::Blocked);
            };
            if !flow.shut && other_shut && dst.io.close_sends_eof() {
                // The session closes right after this run, and closing `dst` sends
                // the end of file (its receive side is empty: the other direction
                // read its end of file), so no shutdown(2) is needed.
                flow.shut = true;
            }
            if !flow.shut {
                if !dst.writable {
                    return Ok(Run::Blocked);
                }
                // A TLS destination sends close_notify, which may wait for room.
                match dst.io.shutdown_write() {
                    Ok(()) => flow.shut = true,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => dst.writable = false,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err((dst_side, e)),
                }
            }
            return Ok(Run::Blocked);
        }
        if !src.readable || !dst.writable {
            return Ok(Run::Blocked);
        }
        if reads == READS_PER_RUN {
            return Ok(Run::Exhausted);
        }
        reads += 1;
        if flow.splice {
            if flow.pipe.is_none() {
                flow.pipe = pipes.take();
            }
            if let (Some(fd), Some(pipe)) = (src.io.splice_fd(), flow.pipe.as_mut()) {
                match splice::fill(fd, pipe) {
                    Ok(0) => {
                        flow.eof = true;
                        src.readable = false;
                    }
                    // Not a proof that the socket is drained: a splice also stops
                    // when the pipe runs out of slots. The next one finds out.
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        src.readable = false;
                        return Ok(Run::Blocked);
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    // This source cannot splice (nothing was moved): copy instead.
                    Err(e) if splice::unsupported(&e) => flow.splice = false,
                    Err(e) => {
                        source_ended(src, flow, mode, src_side, e)?;
                    }
                }
                continue;
            }
            // No pipe to be had now: copy this time.
        }
        match src.io.read(scratch) {
            Ok(0) => {
                flow.eof = true;
                src.readable = false;
            }
            Ok(n) => {
                if n < scratch.len() && !src.read_closed && src.io.short_read_drains() {
                    src.readable = false;
                }
                if n == scratch.len()
                    && pipes.enabled()
                    && src.io.splice_fd().is_some()
                    && dst.io.splice_fd().is_some()
                {
                    // A full buffer: bulk data. Splice from now on.
                    flow.splice = true;
                }
                let data = &scratch[..n];
                match dst.io.write(data) {
                    Ok(w) => {
                        *counter += w as u64;
                        if w < n {
                            flow.pending.store(&data[w..]);
                            dst.writable = false;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        flow.pending.store(data);
                        dst.writable = false;
                    }
                    // Keep the data; the loop writes it again.
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => flow.pending.store(data),
                    Err(e) => {
                        // Kept: not a byte of it reached `dst`.
                        flow.pending.store(data);
                        return Err((dst_side, e));
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                src.readable = false;
                return Ok(Run::Blocked);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => source_ended(src, flow, mode, src_side, e)?,
        }
    }
}

/// A read error ends the source: everything it sent before was read (a kernel
/// socket returns queued bytes before the error). Relaying, the error fails the
/// session; delivering (the source failed already), it is the source's end.
fn source_ended<T: Transport>(
    src: &mut End<T>,
    flow: &mut Flow,
    mode: Mode,
    src_side: Side,
    error: io::Error,
) -> Result<(), (Side, io::Error)> {
    flow.eof = true;
    src.readable = false;
    match mode {
        Mode::Relay { .. } => Err((src_side, error)),
        Mode::Deliver => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::transport::fake::Fake;
    use super::*;

    fn relaying(client_room: usize, remote_room: usize) -> (Session<Fake>, Fake, Fake) {
        let client = Fake::new(client_room);
        let remote = Fake::new(remote_room);
        let now = Instant::now();
        let mut s = Session::new(1, client.clone(), now);
        s.remote = Some(End::new(remote.clone()));
        assert!(matches!(s.connected(now, false), ConnectOutcome::Connected));
        (s, client, remote)
    }

    #[test]
    fn bytes_flow_both_ways_without_holding_buffers() {
        let (mut s, client, remote) = relaying(1 << 20, 1 << 20);
        let mut scratch = vec![0u8; 1024];
        client.state().input.extend(b"ping");
        remote.state().input.extend(b"pong!");
        assert!(matches!(
            s.relay(&mut scratch, &mut Pipes::default(), Instant::now()),
            Outcome::Continue
        ));
        assert_eq!(remote.state().output, b"ping");
        assert_eq!(client.state().output, b"pong!");
        assert_eq!(s.buffered(), 0);
        assert_eq!(s.bytes, (4, 5));
        assert!(matches!(s.state, State::Relaying));
    }

    #[test]
    fn partial_write_keeps_the_rest_and_stops_reading_the_source() {
        let (mut s, client, remote) = relaying(1 << 20, 10);
        let mut scratch = vec![0u8; 64];
        client.state().input.extend([7u8; 200]);
        assert!(matches!(
            s.relay(&mut scratch, &mut Pipes::default(), Instant::now()),
            Outcome::Continue
        ));
        assert_eq!(remote.state().output.len(), 10);
        assert_eq!(s.buffered(), 54, "the unwritten rest of one read");
        let reads = client.state().reads;
        // More readiness on the client does not read it while the remainder waits.
        s.ready(Side::Client, true, false, false, false);
        s.relay(&mut scratch, &mut Pipes::default(), Instant::now());
        assert_eq!(client.state().reads, reads);
        // The remote drains: the remainder goes out, is freed, and reading resumes.
        remote.state().write_room = 1000;
        s.ready(Side::Remote, false, true, false, false);
        s.relay(&mut scratch, &mut Pipes::default(), Instant::now());
        assert_eq!(remote.state().output.len(), 200);
        assert_eq!(s.buffered(), 0);
    }

    #[test]
    fn half_close_is_forwarded_after_the_remainder() {
        let (mut s, client, remote) = relaying(1 << 20, 3);
        let mut scratch = vec![0u8; 64];
        client.state().input.extend(b"request");
        client.state().input_eof = true;
        s.relay(&mut scratch, &mut Pipes::default(), Instant::now());
        assert!(
            !remote.state().shut_write,
            "EOF waits for the pending bytes"
        );
        remote.state().write_room = 100;
        s.ready(Side::Remote, false, true, false, false);
        s.relay(&mut scratch, &mut Pipes::default(), Instant::now());
        assert_eq!(remote.state().output, b"request");
        assert!(remote.state().shut_write);
        assert!(matches!(
            s.state,
            State::HalfClosed {
                finished: Side::Client
            }
        ));
        // The other direction still flows, then ends the session.
        remote.state().input.extend(b"reply");
        remote.state().input_eof = true;
        s.ready(Side::Remote, true, false, true, false);
        assert!(matches!(
            s.relay(&mut scratch, &mut Pipes::default(), Instant::now()),
            Outcome::Close(Close::Finished)
        ));
        assert_eq!(client.state().output, b"reply");
        assert!(client.state().shut_write);
        assert!(matches!(s.state, State::Closed));
    }

    #[test]
    fn errors_name_their_side() {
        let mut scratch = vec![0u8; 64];
        // A read error of the remote (once something was relayed: see the failover
        // tests below).
        let (mut s, client, remote) = relaying(100, 100);
        client.state().input.extend(b"request");
        s.relay(&mut scratch, &mut Pipes::default(), Instant::now());
        remote.state().read_error = Some(io::ErrorKind::ConnectionReset);
        s.ready(Side::Remote, true, false, false, false);
        match s.relay(&mut scratch, &mut Pipes::default(), Instant::now()) {
            Outcome::Close(Close::Error {
                side: Side::Remote,
                error,
            }) => assert!(is_reset(&error)),
            other => panic!("unexpected {other:?}"),
        }
        // A write error of the remote.
        let (mut s, client, remote) = relaying(100, 100);
        client.state().input.extend(b"x");
        s.relay(&mut scratch, &mut Pipes::default(), Instant::now());
        client.state().input.extend(b"y");
        remote.state().write_error = Some(io::ErrorKind::BrokenPipe);
        remote.state().input_eof = true;
        s.ready(Side::Client, true, false, false, false);
        assert!(matches!(
            s.relay(&mut scratch, &mut Pipes::default(), Instant::now()),
            Outcome::Close(Close::Error {
                side: Side::Remote,
                ..
            })
        ));
    }

    /// A remote that resets after the client's request reached it: the answer it
    /// sent first is delivered, no end of file is forwarded (the client is to see
    /// the reset, not an end), and the session closes only once the client's kernel
    /// has sent everything, or when that stalls for `FAILING_LIMIT`.
    #[test]
    fn bytes_before_a_reset_are_delivered_then_the_session_closes_once_they_are_sent() {
        let mut scratch = vec![0u8; 64];
        let start = Instant::now();
        for stalled in [false, true] {
            let (mut s, client, remote) = relaying(1 << 20, 100);
            client.state().input.extend(b"request");
            s.relay(&mut scratch, &mut Pipes::default(), start);
            assert_eq!(remote.state().output, b"request");
            // The answer and the reset arrive together: one error event.
            remote.state().input.extend(b"answer");
            remote.state().input_eof = true;
            remote.state().pending_error = Some(io::ErrorKind::ConnectionReset);
            client.state().unsent = 6;
            s.ready(Side::Remote, true, false, true, true);
            assert!(matches!(
                s.relay(&mut scratch, &mut Pipes::default(), start),
                Outcome::Linger
            ));
            assert_eq!(client.state().output, b"answer", "delivered first");
            assert!(
                !client.state().shut_write,
                "no end of file before the reset"
            );
            assert!(matches!(s.state, State::Failing(_)));
            // Still in the client's kernel: the session waits.
            let later = start + FAILING_LIMIT / 2;
            assert!(matches!(
                s.relay(&mut scratch, &mut Pipes::default(), later),
                Outcome::Linger
            ));
            let end = if stalled {
                start + FAILING_LIMIT
            } else {
                client.state().unsent = 0;
                later
            };
            match s.relay(&mut scratch, &mut Pipes::default(), end) {
                Outcome::Close(Close::Error {
                    side: Side::Remote,
                    error,
                }) => assert!(is_reset(&error)),
                other => panic!("unexpected {other:?}"),
            }
            assert!(!client.state().shut_write);
        }
    }

    /// The same from the client: its request is read to the end and delivered,
    /// through backpressure, before the session closes (the reset is then
    /// propagated to the remote by the worker).
    #[test]
    fn a_client_that_resets_has_what_it_sent_delivered() {
        let mut scratch = vec![0u8; 64];
        let (mut s, client, remote) = relaying(1 << 20, 1 << 20);
        client.state().input.extend(b"hello");
        remote.state().input.extend(b"hi");
        s.relay(&mut scratch, &mut Pipes::default(), Instant::now());
        // The request and the reset arrive together: one error event.
        remote.state().write_room = 4;
        client.state().input.extend(b"request");
        client.state().input_eof = true;
        client.state().pending_error = Some(io::ErrorKind::ConnectionReset);
        s.ready(Side::Client, true, false, true, true);
        assert!(matches!(
            s.relay(&mut scratch, &mut Pipes::default(), Instant::now()),
            Outcome::Linger
        ));
        assert_eq!(remote.state().output, b"hellorequ");
        remote.state().write_room = 100;
        s.ready(Side::Remote, false, true, false, false);
        assert!(matches!(
            s.relay(&mut scratch, &mut Pipes::default(), Instant::now()),
            Outcome::Close(Close::Error {
                side: Side::Client,
                ..
            })
        ));
        assert_eq!(remote.state().output, b"hellorequest");
        assert!(!remote.state().shut_write);
    }

    /// A remote that accepts and resets before anything was relayed: the session is
    /// connecting again, with the remotes it tried still excluded and the client's
    /// bytes read meanwhile (whose write failed) kept; the next remote gets them,
    /// then the client's end of file.
    #[test]
    fn a_remote_that_resets_before_anything_was_relayed_is_failed_over() {
        let mut scratch = vec![0u8; 64];
        let now = Instant::now();
        let client = Fake::new(1 << 20);
        let mut s = Session::new(9, client.clone(), now);
        if let State::Connecting(c) = &mut s.state {
            c.tried.insert(3);
        }
        let remote = Fake::new(100);
        s.remote = Some(End::new(remote.clone()));
        assert!(matches!(s.connected(now, false), ConnectOutcome::Connected));
        assert!(s.retry.is_some());
        client.state().input.extend(b"early");
        client.state().input_eof = true;
        remote.state().write_error = Some(io::ErrorKind::ConnectionReset);
        remote.state().input_eof = true;
        match s.relay(&mut scratch, &mut Pipes::default(), now) {
            Outcome::Failover(error) => assert_eq!(error.kind(), io::ErrorKind::ConnectionReset),
            other => panic!("unexpected {other:?}"),
        }
        match &s.state {
            State::Connecting(c) => assert!(c.tried.contains(3), "the remotes tried stay tried"),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(s.up.pending.as_slice(), b"early");
        assert!(client.state().output.is_empty(), "the client saw nothing");
        assert!(!client.state().shut_write);
        // The next remote.
        let next = Fake::new(100);
        s.remote = Some(End::new(next.clone()));
        assert!(matches!(s.connected(now, false), ConnectOutcome::Connected));
        s.relay(&mut scratch, &mut Pipes::default(), now);
        assert_eq!(next.state().output, b"early");
        assert!(next.state().shut_write, "the client's end of file follows");
        // Once something was relayed, the failover bookkeeping is gone.
        assert!(s.retry.is_none());
    }

    /// A remote that closes cleanly before anything was relayed ends the session
    /// normally (half-closed towards the client): an end of file is an answer, and
    /// the remote is not failed over.
    #[test]
    fn a_remote_that_closes_cleanly_first_is_a_normal_end() {
        let (mut s, client, remote) = relaying(100, 100);
        let mut scratch = vec![0u8; 64];
        remote.state().input_eof = true;
        assert!(matches!(
            s.relay(&mut scratch, &mut Pipes::default(), Instant::now()),
            Outcome::Continue
        ));
        assert!(client.state().shut_write);
        assert!(matches!(
            s.state,
            State::HalfClosed {
                finished: Side::Remote
            }
        ));
    }

    /// Once a byte of the client was written to the remote, a reset of the remote
    /// is not failed over (the remote may have acted on it).
    #[test]
    fn a_reset_after_a_client_byte_reached_the_remote_is_not_failed_over() {
        let (mut s, client, remote) = relaying(100, 100);
        let mut scratch = vec![0u8; 64];
        client.state().input.extend(b"request");
        s.relay(&mut scratch, &mut Pipes::default(), Instant::now());
        remote.state().pending_error = Some(io::ErrorKind::ConnectionReset);
        remote.state().input_eof = true;
        s.ready(Side::Remote, true, false, true, true);
        assert!(matches!(
            s.relay(&mut scratch, &mut Pipes::default(), Instant::now()),
            Outcome::Close(Close::Error {
                side: Side::Remote,
                ..
            })
        ));
    }

    /// The same with kernel sockets: the remote's reset has arrived but its event
    /// is not seen yet (it came after the poll), so the write of the client's bytes
    /// is what finds it; those bytes are kept for the next remote.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn a_write_that_finds_a_reset_keeps_the_clients_bytes_on_kernel_sockets() {
        use super::super::socket::Socket;
        use super::super::stream::Stream;
        use std::io::{Read, Write};
        use std::net::{TcpListener, TcpStream};
        use std::os::fd::AsRawFd;
        let timeout = Some(std::time::Duration::from_secs(10));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let pair = || {
            let ours = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (theirs, _) = listener.accept().unwrap();
            ours.set_nonblocking(true).unwrap();
            theirs.set_read_timeout(timeout).unwrap();
            (
                Stream::Plain(Socket::Tcp(mio::net::TcpStream::from_std(ours))),
                theirs,
            )
        };
        let (client, mut client_peer) = pair();
        let (remote, remote_peer) = pair();
        let now = Instant::now();
        let mut s = Session::new(10, client, now);
        s.remote = Some(End::registered(remote, 1));
        s.ready(Side::Remote, false, true, false, false);
        assert!(matches!(s.connected(now, true), ConnectOutcome::Connected));
        // The remote resets; wait until its reset is in our socket, unseen.
        socket2::SockRef::from(&remote_peer)
            .set_linger(Some(std::time::Duration::ZERO))
            .unwrap();
        let fd = s.remote.as_ref().unwrap().io.as_raw_fd();
        drop(remote_peer);
        let mut poll = [libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        }];
        assert_eq!(crate::sys::poll::poll(&mut poll, 10_000).unwrap(), 1);
        assert_ne!(poll[0].revents & (libc::POLLHUP | libc::POLLERR), 0);
        client_peer.write_all(b"early bytes").unwrap();
        s.ready(Side::Client, true, false, false, false);
        let mut scratch = vec![0u8; 64 * 1024];
        let mut pipes = Pipes::new(2);
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        let error = loop {
            assert!(Instant::now() < deadline, "no failover");
            match s.relay(&mut scratch, &mut pipes, Instant::now()) {
                Outcome::Failover(error) => break error,
                Outcome::Continue => {
                    // The client's bytes are not there yet.
                    std::thread::sleep(std::time::Duration::from_millis(1));
                    s.ready(Side::Client, true, false, false, false);
                }
                other => panic!("unexpected {other:?}"),
            }
        };
        assert!(is_reset(&error), "{error}");
        assert_eq!(s.up.pending.as_slice(), b"early bytes");
        // The next remote gets them.
        let (next, mut next_peer) = pair();
        s.remote = Some(End::new(next));
        assert!(matches!(s.connected(now, false), ConnectOutcome::Connected));
        s.relay(&mut scratch, &mut pipes, Instant::now());
        let mut got = [0u8; 11];
        next_peer.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"early bytes");
        s.release_pipes(&mut pipes);
    }

    #[test]
    fn a_busy_direction_yields_after_its_budget() {
        let (mut s, client, remote) = relaying(1 << 20, 1 << 20);
        let mut scratch = vec![0u8; 8];
        client
            .state()
            .input
            .extend(vec![1u8; 8 * READS_PER_RUN as usize + 1]);
        assert!(matches!(
            s.relay(&mut scratch, &mut Pipes::default(), Instant::now()),
            Outcome::Again
        ));
        assert!(matches!(
            s.relay(&mut scratch, &mut Pipes::default(), Instant::now()),
            Outcome::Continue
        ));
        assert_eq!(remote.state().output.len(), 8 * READS_PER_RUN as usize + 1);
    }

    #[test]
    fn connect_pending_and_failed() {
        let client = Fake::new(10);
        let remote = Fake::new(10);
        remote.state().connected = false;
        let now = Instant::now();
        let mut s = Session::new(2, client, now);
        assert!(
            matches!(s.connected(now, false), ConnectOutcome::Pending),
            "no remote yet"
        );
        s.remote = Some(End::new(remote.clone()));
        assert!(matches!(s.connected(now, false), ConnectOutcome::Pending));
        // Nothing is relayed while connecting.
        let mut scratch = vec![0u8; 8];
        assert!(matches!(
            s.relay(&mut scratch, &mut Pipes::default(), now),
            Outcome::Continue
        ));
        remote.state().connect_error = Some(io::ErrorKind::ConnectionRefused);
        assert!(matches!(s.connected(now, false), ConnectOutcome::Failed(_)));
    }

    #[test]
    fn a_writable_event_without_error_means_connected_when_events_report_errors() {
        let remote = Fake::new(10);
        remote.state().connected = false;
        let now = Instant::now();
        let mut s = Session::new(5, Fake::new(10), now);
        s.remote = Some(End::registered(remote.clone(), 1));
        // No event yet: still connecting, and the socket is not asked.
        assert!(matches!(s.connected(now, true), ConnectOutcome::Pending));
        assert_eq!(remote.state().status_checks, 0);
        s.ready(Side::Remote, false, true, false, false);
        assert!(matches!(s.connected(now, true), ConnectOutcome::Connected));
        assert_eq!(remote.state().status_checks, 0, "no system call needed");
    }

    #[test]
    fn an_error_event_or_select_asks_the_socket() {
        let now = Instant::now();
        for (trusted, error) in [(true, true), (false, false)] {
            let remote = Fake::new(10);
            remote.state().connect_error = Some(io::ErrorKind::ConnectionRefused);
            let mut s = Session::new(6, Fake::new(10), now);
            s.remote = Some(End::registered(remote.clone(), 1));
            // select(2) shows a failed connect as writable (and readable).
            s.ready(Side::Remote, !error, true, error, error);
            assert!(matches!(
                s.connected(now, trusted),
                ConnectOutcome::Failed(_)
            ));
            assert_eq!(remote.state().status_checks, 1);
        }
    }

    #[test]
    fn an_accepted_client_is_read_only_after_the_poller_reports_it() {
        let client = Fake::new(100);
        client.state().input.extend(b"hello");
        let now = Instant::now();
        let mut s = Session::accepted(7, client.clone(), now, 1);
        s.remote = Some(End::new(Fake::new(100)));
        assert!(matches!(s.connected(now, false), ConnectOutcome::Connected));
        let mut scratch = vec![0u8; 64];
        s.relay(&mut scratch, &mut Pipes::default(), now);
        assert_eq!(client.state().reads, 0, "no read before an event");
        s.ready(Side::Client, true, true, false, false);
        s.relay(&mut scratch, &mut Pipes::default(), now);
        assert_eq!(s.bytes.0, 5);
    }

    #[test]
    fn the_last_end_of_file_is_sent_by_the_close_not_a_shutdown() {
        let (mut s, client, remote) = relaying(1 << 20, 1 << 20);
        client.state().close_sends_eof = true;
        remote.state().close_sends_eof = true;
        let mut scratch = vec![0u8; 64];
        client.state().input.extend(b"request");
        client.state().input_eof = true;
        s.relay(&mut scratch, &mut Pipes::default(), Instant::now());
        assert!(
            remote.state().shut_write,
            "the first end of file is forwarded"
        );
        remote.state().input.extend(b"reply");
        remote.state().input_eof = true;
        s.ready(Side::Remote, true, false, true, false);
        assert!(matches!(
            s.relay(&mut scratch, &mut Pipes::default(), Instant::now()),
            Outcome::Close(Close::Finished)
        ));
        assert_eq!(client.state().output, b"reply");
        assert!(
            !client.state().shut_write,
            "closing the client sends its end of file"
        );
    }

    /// Real sockets (Unix-domain pairs): a bulk direction switches to splicing,
    /// the bytes arrive intact and in order, the other direction keeps copying, and
    /// no pipe is held once the transfer is over.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn bulk_data_is_spliced_and_pipes_go_back_when_empty() {
        use super::super::socket::Socket;
        use super::super::stream::Stream;
        use std::io::{Read, Write};
        let (client_peer, client) = std::os::unix::net::UnixStream::pair().unwrap();
        let (remote, remote_peer) = std::os::unix::net::UnixStream::pair().unwrap();
        for s in [&client, &remote] {
            s.set_nonblocking(true).unwrap();
        }
        let wrap = |s| Stream::Plain(Socket::Unix(mio::net::UnixStream::from_std(s)));
        let now = Instant::now();
        let mut s = Session::new(8, wrap(client), now);
        s.remote = Some(End::new(wrap(remote)));
        assert!(matches!(s.connected(now, false), ConnectOutcome::Connected));
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        let sent = data.clone();
        let writer = std::thread::spawn(move || {
            let mut peer = client_peer;
            peer.write_all(&sent).unwrap();
            peer.shutdown(std::net::Shutdown::Write).unwrap();
            // The reply travels the other way, by copy.
            let mut reply = Vec::new();
            peer.read_to_end(&mut reply).unwrap();
            reply
        });
        let reader = std::thread::spawn(move || {
            let mut peer = remote_peer;
            let mut got = Vec::new();
            peer.read_to_end(&mut got).unwrap();
            peer.write_all(b"thanks").unwrap();
            got
        });
        let mut scratch = vec![0u8; 64 * 1024];
        let mut pipes = Pipes::new(4);
        let deadline = Instant::now() + std::time::Duration::from_secs(20);
        loop {
            assert!(Instant::now() < deadline, "the transfer did not finish");
            // No poller here: say both sides may be ready, the operations find out.
            s.ready(Side::Client, true, true, false, false);
            s.ready(Side::Remote, true, true, false, false);
            if let Outcome::Close(close) = s.relay(&mut scratch, &mut pipes, Instant::now()) {
                assert!(matches!(close, Close::Finished), "{close:?}");
                break;
            }
            assert!(pipes.in_use() <= 1, "one direction splices");
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        s.release_pipes(&mut pipes);
        assert!(pipes.created >= 1, "bulk data was not spliced");
        assert_eq!(pipes.in_use(), 0);
        assert_eq!(s.bytes, (data.len() as u64, 6));
        // Closing the session's sockets ends the client's read.
        drop(s);
        assert_eq!(reader.join().unwrap(), data, "bytes changed on the way");
        assert_eq!(writer.join().unwrap(), b"thanks");
    }

    /// A descriptor that cannot splice (here a directory as the source, a file
    /// opened for appending as the destination: both EINVAL) makes the direction
    /// copy instead, without losing or reordering a byte.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn a_side_that_cannot_splice_falls_back_to_copying() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let directory = std::fs::File::open(dir.path()).unwrap();
        let appending = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.path().join("append"))
            .unwrap();
        let mut scratch = vec![0u8; 64];
        let input: Vec<u8> = (0..200u8).collect();

        // The source fails: nothing was moved, the rest is copied.
        let (mut s, client, remote) = relaying(1 << 20, 1 << 20);
        client.state().input.extend(input.iter().copied());
        client.splice_with(directory.try_clone().unwrap().into());
        remote.splice_with(appending.try_clone().unwrap().into());
        let mut pipes = Pipes::new(2);
        s.relay(&mut scratch, &mut pipes, Instant::now());
        assert_eq!(remote.state().output, input);
        assert_eq!(pipes.created, 1, "splicing was tried");
        assert_eq!(pipes.in_use(), 0);

        // The destination fails with bytes in the pipe: they are copied on, in order.
        let (mut s, client, remote) = relaying(1 << 20, 1 << 20);
        let (mut feeder, source) = std::os::unix::net::UnixStream::pair().unwrap();
        source.set_nonblocking(true).unwrap();
        client.state().input.extend(input[..64].iter().copied());
        client.splice_with(source.into());
        remote.splice_with(appending.into());
        feeder.write_all(&input[64..]).unwrap();
        let mut pipes = Pipes::new(2);
        s.relay(&mut scratch, &mut pipes, Instant::now());
        assert_eq!(remote.state().output, input);
        assert_eq!(pipes.in_use(), 0);
        assert_eq!(
            std::fs::metadata(dir.path().join("append")).unwrap().len(),
            0
        );
    }

    #[test]
    fn a_tls_client_handshakes_before_connecting() {
        let client = Fake::new(100);
        client.state().handshake_blocks = 2;
        client.state().input.extend(b"early");
        let now = Instant::now();
        let mut s = Session::handshaking(3, client.clone(), now);
        assert!(matches!(s.state, State::TlsHandshake { .. }));
        // Nothing is read or relayed during the handshake.
        let mut scratch = vec![0u8; 8];
        assert!(matches!(
            s.relay(&mut scratch, &mut Pipes::default(), now),
            Outcome::Continue
        ));
        assert_eq!(client.state().reads, 0);
        assert!(matches!(s.handshake(now), HandshakeOutcome::Pending));
        assert!(matches!(s.handshake(now), HandshakeOutcome::Pending));
        assert!(matches!(s.handshake(now), HandshakeOutcome::Done));
        assert!(matches!(s.state, State::Connecting(_)));
        // Then it connects and relays as any session, starting with what waited.
        let remote = Fake::new(100);
        s.remote = Some(End::new(remote.clone()));
        assert!(matches!(s.connected(now, false), ConnectOutcome::Connected));
        s.relay(&mut scratch, &mut Pipes::default(), now);
        assert_eq!(remote.state().output, b"early");
    }

    #[test]
    fn a_failed_handshake_closes() {
        let client = Fake::new(100);
        client.state().handshake_error = Some(io::ErrorKind::InvalidData);
        let mut s = Session::handshaking(4, client, Instant::now());
        assert!(matches!(
            s.handshake(Instant::now()),
            HandshakeOutcome::Failed(e) if e.kind() == io::ErrorKind::InvalidData
        ));
        assert!(matches!(s.state, State::Closed));
    }

    #[test]
    fn a_close_notify_that_must_wait_is_sent_when_writable() {
        let (mut s, client, remote) = relaying(1 << 20, 1 << 20);
        let mut scratch = vec![0u8; 64];
        client.state().shutdown_blocks = 1;
        remote.state().input.extend(b"bye");
        remote.state().input_eof = true;
        assert!(matches!(
            s.relay(&mut scratch, &mut Pipes::default(), Instant::now()),
            Outcome::Continue
        ));
        assert_eq!(client.state().output, b"bye");
        assert!(!client.state().shut_write, "blocked: not sent yet");
        assert!(matches!(s.state, State::Relaying));
        // Writable again: the close_notify goes out, the session is half-closed.
        s.ready(Side::Client, false, true, false, false);
        s.relay(&mut scratch, &mut Pipes::default(), Instant::now());
        assert!(client.state().shut_write);
        assert!(matches!(
            s.state,
            State::HalfClosed {
                finished: Side::Remote
            }
        ));
    }

    #[test]
    fn an_error_event_is_checked() {
        let (mut s, client, _remote) = relaying(100, 100);
        let mut scratch = vec![0u8; 8];
        // A stale error event (nothing pending) is harmless.
        s.ready(Side::Client, false, false, false, true);
        assert!(matches!(
            s.relay(&mut scratch, &mut Pipes::default(), Instant::now()),
            Outcome::Continue
        ));
        client.state().pending_error = Some(io::ErrorKind::ConnectionReset);
        // After a reset the socket reads as ended.
        client.state().input_eof = true;
        s.ready(Side::Client, false, false, false, true);
        assert!(matches!(
            s.relay(&mut scratch, &mut Pipes::default(), Instant::now()),
            Outcome::Close(Close::Error {
                side: Side::Client,
                ..
            })
        ));
    }
}
