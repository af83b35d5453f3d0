//! One relayed connection as an explicit state machine: the client side, the remote
//! side, and the two directions of bytes between them.
//!
//! ```text
//! ProxyHeader ──read──┐    (PROXY-accepting listeners only; a refusal: Closed)
//!                     ▼
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
//! A `tls = yes` remote is still `Connecting` after its TCP connect: the TLS
//! handshake with it runs then ([`Connecting::handshake`] holds when it started, for
//! the handshake timeout), and nothing of the client is relayed before it is
//! complete. A failed handshake (or a failed verification of the remote's
//! certificate) is a failed attempt like a failed connect: the worker fails over.
//!
//! The state machine knows nothing about the poll, the balancer or the clock: the
//! worker loop feeds it readiness ([`Session::ready`]) and runs it
//! ([`Session::connected`], [`Session::relay`]); it answers with an [`Outcome`].
//! It is generic over the [`Transport`] so that it is tested with an in-memory fake.
//!
//! Readiness is tracked here, per side, because mio is edge-triggered: a side is
//! known readable (writable) from an event until an operation returns
//! `WouldBlock`, and both interests are registered once for the life of a socket.
//!
//! The bytes themselves are moved by the session's two directions
//! (`direction.rs`: each owns its remainder, its pipe and its byte count); this
//! module decides which runs when, and what their results do to the state.

use super::balance::Tried;
use super::splice::Pipes;
use super::transport::Transport;
use direction::{Direction, Fault, Mode, Run};
use std::io;
use std::time::{Duration, Instant};

pub use cause::Cause;
pub use end::{End, Side};

mod cause;
mod direction;
mod end;

/// How long a failing session's delivery (see [`State::Failing`]) may go without
/// progress before the session closes anyway: 2 seconds, many round trips on any
/// path, short enough that a peer that stops reading cannot hold a failed session
/// (and its buffer or pipe) for long.
pub const FAILING_LIMIT: Duration = Duration::from_secs(2);

/// What the session is doing.
#[derive(Debug)]
pub enum State {
    /// A client of a PROXY-accepting listener has not sent its whole header yet
    /// (since the instant held, for `accept proxy timeout`); nothing is read
    /// but the header, nothing relayed, no remote opened (see `server::proxy`).
    ProxyHeader { started: Instant },
    /// A TLS client's handshake runs (started at the instant held, for the
    /// handshake timeout); nothing is relayed and no remote is opened yet.
    TlsHandshake { started: Instant },
    /// The remote connection is being set up; the client is not read meanwhile (its
    /// bytes wait in the kernel), so it does not notice a failover.
    Connecting(Box<Connecting>),
    /// Bytes flow both ways.
    Relaying,
    /// `finished` has sent end of file and it was forwarded to the other side (at
    /// `since`: the half-close timeout counts from then); the other direction still
    /// flows. Kept in the state, where it costs no room: `TlsHandshake` is as large.
    HalfClosed { finished: Side, since: Instant },
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
            State::ProxyHeader { .. } => "waiting for its PROXY header",
            State::TlsHandshake { .. } => "in the TLS handshake",
            State::Connecting(_) => "connecting",
            State::Relaying => "relaying",
            State::HalfClosed {
                finished: Side::Client,
                ..
            } => "half-closed by the client",
            State::HalfClosed {
                finished: Side::Remote,
                ..
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
    /// The TCP connect to a TLS remote is complete and the TLS handshake with it
    /// runs since this instant (bounded by the TLS handshake timeout instead of the
    /// connect timeout); `None` before, and for plain remotes.
    pub handshake: Option<Instant>,
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
            handshake: None,
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
    /// A TLS remote accepted the TCP connection and reset it before its TLS
    /// handshake was done (the reset was there when the connect was checked): the
    /// handshake failed, not the connect. Fail over.
    HandshakeFailed(io::Error),
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
    remote_at: Option<u32>,
    /// Client → remote.
    up: Direction,
    /// Remote → client.
    down: Direction,
    /// When bytes last moved (or the session started relaying).
    pub last_active: Instant,
    /// Whether the session is in the worker's run-again queue.
    pub queued: bool,
    /// The failover bookkeeping of the connect, kept while nothing has been relayed
    /// (the remote may still fail over), then dropped. `None` too after a connect at
    /// the first attempt: that bookkeeping is rebuilt from `remote_at` if needed
    /// (see `Session::keep_for_retry`).
    retry: Option<Box<Connecting>>,
    /// The side whose end of file came first (`None` while neither has ended): who
    /// closed a session that finished normally.
    pub first_end: Option<Side>,
    /// What the worker keeps for the counters and the connection records.
    pub meta: Meta,
}

/// What the worker keeps about a session for the relay-wide counters and its
/// connection records (the state machine does not read it). Compact: it is in
/// every session's slab slot (see `an_idle_session_is_a_few_hundred_bytes`).
#[derive(Debug)]
pub struct Meta {
    /// The client's address (`None` on a Unix-domain listener).
    pub peer: Option<std::net::SocketAddr>,
    /// When the client was accepted (the duration of the session starts there).
    pub accepted: Instant,
    /// What few sessions have: the remotes that failed, what a PROXY header said
    /// (allocated only when one of them is needed). Boxed: a thin pointer (8
    /// bytes) in every session.
    extra: Option<Box<Extra>>,
    /// The remote whose counters hold this session open (`session_opened`), or
    /// [`Meta::NONE`] (sentinels rather than `Option`s keep the slot small).
    opened: u32,
    /// How long the last successful connect took, in microseconds, or [`Meta::NONE`].
    connect_micros: u32,
    /// The listener (plan order) the client came from.
    listener: u32,
    /// The SNI route chosen for the client (see `server::sni`): a route's index,
    /// [`Meta::DEFAULT_ROUTE`], or [`Meta::NO_ROUTE`] before it is chosen (16 bits:
    /// a plan has at most `tcprelay_plan::sni::MAX_ROUTES` routes).
    route: u16,
    /// Whether the last failed attempt timed out (rather than being refused or reset).
    pub timed_out: bool,
    /// Whether the last failed attempt was a failed TLS handshake with the remote.
    pub tls_failed: bool,
}

/// The part of [`Meta`] most sessions do not need.
#[derive(Debug, Default)]
struct Extra {
    /// The remotes whose attempt failed for this session, in order.
    failed: Vec<u32>,
    /// What a PROXY protocol header said, when it carried addresses (`peer` is
    /// then the client it named).
    proxied: Option<Proxied>,
}

/// The connection behind a PROXY protocol header that carried addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxied {
    /// The real peer: the proxy that sent the header (`None` on a Unix listener).
    pub sender: Option<std::net::SocketAddr>,
    /// The address the client connected to (`None` for a Unix client).
    pub destination: Option<std::net::SocketAddr>,
    /// What the header said of the client's TLS, passed on to `send proxy = v2`
    /// remotes when the listener does not terminate TLS itself: its
    /// `PP2_TYPE_AUTHORITY` and `PP2_TYPE_SSL` TLVs, as they came.
    pub tlvs: Vec<crate::proxy::Tlv>,
}

impl Meta {
    /// No remote opened, no connect time.
    const NONE: u32 = u32::MAX;
    /// No route chosen yet, and the default route (the remotes of no route).
    const NO_ROUTE: u16 = u16::MAX;
    const DEFAULT_ROUTE: u16 = u16::MAX - 1;

    pub fn new(now: Instant) -> Meta {
        Meta {
            peer: None,
            accepted: now,
            extra: None,
            opened: Meta::NONE,
            connect_micros: Meta::NONE,
            listener: 0,
            route: Meta::NO_ROUTE,
            timed_out: false,
            tls_failed: false,
        }
    }

    pub fn listener(&self) -> usize {
        self.listener as usize
    }

    pub fn set_listener(&mut self, index: usize) {
        self.listener = u32::try_from(index).unwrap_or(u32::MAX);
    }

    /// The SNI route chosen for the client: `None` before it is chosen, else the
    /// route (`Some(None)`: the default route, the remotes of no route).
    pub fn route(&self) -> Option<Option<u32>> {
        match self.route {
            Meta::NO_ROUTE => None,
            Meta::DEFAULT_ROUTE => Some(None),
            i => Some(Some(u32::from(i))),
        }
    }

    /// Route indices are below `tcprelay_plan::sni::MAX_ROUTES` (the plan's
    /// validation), far below the sentinels.
    pub fn set_route(&mut self, route: Option<u32>) {
        self.route = route.map_or(Meta::DEFAULT_ROUTE, |i| {
            u16::try_from(i)
                .unwrap_or(Meta::DEFAULT_ROUTE - 1)
                .min(Meta::DEFAULT_ROUTE - 1)
        });
    }

    /// The remote (plan index) the session was counted open on, if it was.
    pub fn opened(&self) -> Option<usize> {
        (self.opened != Meta::NONE).then_some(self.opened as usize)
    }

    /// Remote indices are below the plan's limit on remotes, far below `NONE`.
    pub fn set_opened(&mut self, index: usize) {
        self.opened = u32::try_from(index).unwrap_or(Meta::NONE);
    }

    pub fn connect_time(&self) -> Option<Duration> {
        (self.connect_micros != Meta::NONE)
            .then(|| Duration::from_micros(u64::from(self.connect_micros)))
    }

    /// Records a connect's time (up to some 71 minutes; longer ones as that).
    pub fn set_connect_time(&mut self, time: Duration) {
        self.connect_micros = u32::try_from(time.as_micros())
            .unwrap_or(Meta::NONE - 1)
            .min(Meta::NONE - 1);
    }

    /// The remotes (plan indices) whose attempt failed, in order.
    pub fn failed(&self) -> &[u32] {
        self.extra.as_deref().map_or(&[], |e| e.failed.as_slice())
    }

    pub fn push_failed(&mut self, index: usize) {
        self.extra
            .get_or_insert_with(Box::default)
            .failed
            .push(u32::try_from(index).unwrap_or(u32::MAX));
    }

    /// What the client's PROXY header said, when it carried addresses.
    pub fn proxied(&self) -> Option<&Proxied> {
        self.extra.as_deref().and_then(|e| e.proxied.as_ref())
    }

    pub fn set_proxied(&mut self, proxied: Proxied) {
        self.extra.get_or_insert_with(Box::default).proxied = Some(proxied);
    }
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
            remote_at: None,
            up: Direction::new(Side::Client),
            down: Direction::new(Side::Remote),
            last_active: now,
            queued: false,
            retry: None,
            first_end: None,
            meta: Meta::new(now),
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

    /// A client of a PROXY-accepting listener: its header comes first.
    pub fn wait_proxy_header(&mut self, now: Instant) {
        self.state = State::ProxyHeader { started: now };
    }

    /// The client's PROXY header was read and consumed: a TLS client starts its
    /// handshake, a plain one connects. The client is marked readable: bytes it
    /// sent after the header may already wait, and no new event would say so.
    pub fn proxy_header_done(&mut self, now: Instant, tls: bool) {
        self.state = if tls {
            State::TlsHandshake { started: now }
        } else {
            State::Connecting(Box::new(Connecting::new(now)))
        };
        self.client.readable = true;
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
        self.up.release_pipe(pipes);
        self.down.release_pipe(pipes);
    }

    /// Bytes written so far to the remote (client → remote) and to the client
    /// (remote → client): what each destination accepted, not what was read.
    pub fn bytes(&self) -> (u64, u64) {
        (self.up.bytes, self.down.bytes)
    }

    /// The index of the remote chosen (in the plan's order), once one is.
    #[inline]
    pub fn remote_index(&self) -> Option<usize> {
        self.remote_at.map(|i| i as usize)
    }

    /// Chooses the remote at `index` (or none); kept in 4 bytes (a plan's remotes are
    /// far fewer than 2^32).
    pub fn set_remote_index(&mut self, index: Option<usize>) {
        self.remote_at = index.and_then(|i| u32::try_from(i).ok());
    }

    /// Forgets the remote chosen, returning it.
    pub fn take_remote_index(&mut self) -> Option<usize> {
        self.remote_at.take().map(|i| i as usize)
    }

    /// When one direction first ended (its end of file was forwarded), if one has.
    pub fn half_closed_at(&self) -> Option<Instant> {
        match self.state {
            State::HalfClosed { since, .. } => Some(since),
            _ => None,
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
                if !remote.io.handshake_done() {
                    // A TLS remote: the session stays connecting while the worker
                    // runs the handshake (`remote_handshake`).
                    if let State::Connecting(connecting) = &mut self.state {
                        connecting.handshake.get_or_insert(now);
                    }
                    return ConnectOutcome::Connected;
                }
                if let State::Connecting(connecting) =
                    std::mem::replace(&mut self.state, State::Relaying)
                {
                    self.keep_for_retry(connecting);
                }
                self.last_active = now;
                ConnectOutcome::Connected
            }
            // A reset (or an abort) comes from a remote that accepted the connection,
            // unlike a refusal, an unreachable network or a timeout: for a TLS
            // remote, what did not complete is the TLS handshake, as when the reset
            // comes while its ClientHello is unanswered.
            Err(e)
                if !remote.io.handshake_done()
                    && matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionReset
                            | io::ErrorKind::ConnectionAborted
                            | io::ErrorKind::BrokenPipe
                    ) =>
            {
                ConnectOutcome::HandshakeFailed(e)
            }
            Err(e) => ConnectOutcome::Failed(e),
        }
    }

    /// Whether the TCP connect to the remote is complete and the TLS handshake with
    /// it runs (see [`Connecting::handshake`]).
    pub fn remote_handshaking(&self) -> bool {
        matches!(&self.state, State::Connecting(c) if c.handshake.is_some())
            && self.remote.is_some()
    }

    /// Drives the TLS handshake with a connected remote on (after a readiness event
    /// of the remote, or at once after the connect); once complete, the session
    /// relays. A failure leaves the session connecting, for the worker to fail over.
    pub fn remote_handshake(&mut self, now: Instant) -> HandshakeOutcome {
        if !self.remote_handshaking() {
            return HandshakeOutcome::Pending;
        }
        let Some(remote) = self.remote.as_mut() else {
            return HandshakeOutcome::Pending;
        };
        loop {
            match remote.io.handshake() {
                Ok(()) => {
                    // OpenSSL may hold bytes that came with the last handshake
                    // message: the first relay run reads, whatever the events said.
                    remote.readable = true;
                    remote.writable = true;
                    remote.error = false;
                    if let State::Connecting(connecting) =
                        std::mem::replace(&mut self.state, State::Relaying)
                    {
                        self.keep_for_retry(connecting);
                    }
                    self.last_active = now;
                    return HandshakeOutcome::Done;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    remote.readable = false;
                    return HandshakeOutcome::Pending;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return HandshakeOutcome::Failed(e),
            }
        }
    }

    /// Keeps a connected session's failover bookkeeping for a remote that fails
    /// before anything was relayed (`Session::restart`), unless it says no more
    /// than "one attempt, to the remote attached" (no revival, the route restriction
    /// set again by each selection): most sessions' case, rebuilt from `remote_at`
    /// when needed. An idle session then owns no heap memory: the box (96 bytes
    /// with malloc's header) and the tried list (48) were 45 % of an idle session's
    /// memory, which is a documented target (docs/benchmarks.md).
    fn keep_for_retry(&mut self, connecting: Box<Connecting>) {
        let first = connecting.attempt == 1
            && !connecting.revived
            && self
                .remote_at
                .is_some_and(|at| connecting.tried.is_only(at as usize));
        self.retry = (!first).then_some(connecting);
    }

    /// Whether nothing has been relayed yet, either way: no byte written to the
    /// remote, none read from it, and no end of file of the remote forwarded (the
    /// client's, forwarded to the remote, is forwarded to the next one again).
    pub fn fresh(&self) -> bool {
        self.bytes() == (0, 0)
            && self.down.pending.is_empty()
            && !self.down.shut
            && self.up.pipe_empty()
            && self.down.pipe_empty()
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

    /// A failing session's run: what the failed side `from` sent before is
    /// delivered. Out of line: a session fails once at most, and the relaying
    /// runs' code stays smaller without a third copy of the direction's run.
    #[inline(never)]
    fn deliver(&mut self, from: Side, scratch: &mut [u8], pipes: &mut Pipes) -> Result<Run, Fault> {
        self.run(from, scratch, pipes, Mode::Deliver)
    }

    /// Runs the direction from side `from` (see [`Direction::transfer`]).
    fn run(
        &mut self,
        from: Side,
        scratch: &mut [u8],
        pipes: &mut Pipes,
        mode: Mode,
    ) -> Result<Run, Fault> {
        let Some(remote) = self.remote.as_mut() else {
            return Ok(Run::Blocked);
        };
        match from {
            Side::Client => self
                .up
                .transfer(&mut self.client, remote, scratch, pipes, mode),
            Side::Remote => self
                .down
                .transfer(remote, &mut self.client, scratch, pipes, mode),
        }
    }

    /// The direction from side `from`.
    fn direction(&self, from: Side) -> &Direction {
        match from {
            Side::Client => &self.up,
            Side::Remote => &self.down,
        }
    }

    /// Moves bytes both ways until every direction is blocked (or used its budget),
    /// forwarding ends of file; once a side failed, delivers what it sent before.
    /// `scratch` is the worker's read buffer.
    pub fn relay(&mut self, scratch: &mut [u8], pipes: &mut Pipes, now: Instant) -> Outcome {
        if matches!(
            self.state,
            State::ProxyHeader { .. }
                | State::TlsHandshake { .. }
                | State::Connecting(_)
                | State::Closed
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
        let before = self.bytes();
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
            match self.deliver(failure.side, scratch, pipes) {
                Ok(run) => exhausted = run == Run::Exhausted,
                // The other side failed too: nothing can be delivered any more.
                Err((side, error)) => {
                    self.state = State::Closed;
                    return Outcome::Close(Close::Error { side, error });
                }
            }
        }
        let moved = self.bytes() != before;
        if moved {
            self.last_active = now;
        }
        if self.retry.is_some() && !self.fresh() {
            self.retry = None;
        }
        if matches!(self.state, State::Failing(_)) {
            return self.failing(now, moved, exhausted, pipes);
        }
        if self.first_end.is_none() {
            // Both in one run: the client's direction ran first.
            if self.up.shut {
                self.first_end = Some(Side::Client);
            } else if self.down.shut {
                self.first_end = Some(Side::Remote);
            }
        }
        // A session half-closed before stays so since then.
        let since = |state: &State| match state {
            State::HalfClosed { since, .. } => *since,
            _ => now,
        };
        match (self.up.shut, self.down.shut) {
            // Neither end of file forwarded: still relaying (a `HalfClosed` or
            // `Closed` session has one). Left as it is, rather than rewritten after
            // every run.
            (false, false) => debug_assert!(matches!(self.state, State::Relaying)),
            (true, true) => self.state = State::Closed,
            (true, false) => {
                self.state = State::HalfClosed {
                    finished: Side::Client,
                    since: since(&self.state),
                }
            }
            (false, true) => {
                self.state = State::HalfClosed {
                    finished: Side::Remote,
                    since: since(&self.state),
                }
            }
        }
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
        let delivered = self.direction(side).delivered();
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
        let mut connecting = self.retry.take().unwrap_or_else(|| {
            // Not kept (see `keep_for_retry`): one attempt, to the remote attached.
            let mut connecting = Box::new(Connecting::new(now));
            if let Some(at) = self.remote_at {
                connecting.tried.insert(at as usize);
                connecting.attempt = 1;
            }
            connecting
        });
        connecting.started = now;
        connecting.no_port = false;
        connecting.port_wait = None;
        connecting.handshake = None;
        let error = match std::mem::replace(&mut self.state, State::Connecting(connecting)) {
            State::Failing(failure) => failure.error,
            _ => io::ErrorKind::ConnectionReset.into(),
        };
        self.release_pipes(pipes);
        self.up.shut = false;
        // The client's end of file goes to the next remote again: its half-close
        // timeout counts from then (the state is no longer `HalfClosed`).
        self.first_end = None;
        self.down = Direction::new(Side::Remote);
        Outcome::Failover(error)
    }
}

#[cfg(test)]
mod tests;
