//! One relayed connection as an explicit state machine: the client side, the remote
//! side, and the two directions of bytes between them.
//!
//! ```text
//! TlsHandshake ──done──┐   (TLS clients only; failure or timeout: Closed)
//!                      ▼
//! Connecting ──connected──► Relaying ──one EOF forwarded──► HalfClosed ──both──► Closed
//!     │ (failed: the worker fails over to another remote, or gives up)        ▲
//!     └──────────────── error / reset / timeout on either side ──────────────┘
//! ```
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
use std::time::Instant;

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
    Connecting(Connecting),
    /// Bytes flow both ways.
    Relaying,
    /// `finished` has sent end of file and it was forwarded to the other side;
    /// the other direction still flows.
    HalfClosed { finished: Side },
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
}

impl<T: Transport> Session<T> {
    pub fn new(id: u64, client: T, now: Instant) -> Session<T> {
        Session::with_client(id, End::new(client), now)
    }

    fn with_client(id: u64, client: End<T>, now: Instant) -> Session<T> {
        Session {
            id,
            state: State::Connecting(Connecting::new(now)),
            client,
            remote: None,
            remote_index: None,
            up: Flow::default(),
            down: Flow::default(),
            last_active: now,
            queued: false,
            bytes: (0, 0),
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
                    self.state = State::Connecting(Connecting::new(now));
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
                self.state = State::Relaying;
                self.last_active = now;
                ConnectOutcome::Connected
            }
            Err(e) => ConnectOutcome::Failed(e),
        }
    }

    /// Moves bytes both ways until every direction is blocked (or used its budget),
    /// forwarding ends of file. `scratch` is the worker's read buffer.
    pub fn relay(&mut self, scratch: &mut [u8], pipes: &mut Pipes, now: Instant) -> Outcome {
        if matches!(
            self.state,
            State::TlsHandshake { .. } | State::Connecting(_) | State::Closed
        ) {
            return Outcome::Continue;
        }
        let Some(remote) = self.remote.as_mut() else {
            debug_assert!(false, "relaying without a remote");
            return Outcome::Close(Close::Error {
                side: Side::Remote,
                error: io::ErrorKind::NotConnected.into(),
            });
        };
        for (side, end) in [
            (Side::Client, &mut self.client),
            (Side::Remote, &mut *remote),
        ] {
            if let Some(error) = end.reported_error() {
                return Outcome::Close(Close::Error { side, error });
            }
        }
        let before = self.bytes;
        let up = transfer(
            &mut self.client,
            remote,
            &mut self.up,
            Side::Client,
            scratch,
            pipes,
            &mut self.bytes.0,
            self.down.shut,
        );
        let down = transfer(
            remote,
            &mut self.client,
            &mut self.down,
            Side::Remote,
            scratch,
            pipes,
            &mut self.bytes.1,
            self.up.shut,
        );
        if self.bytes != before {
            self.last_active = now;
        }
        let (up, down) = match (up, down) {
            (Err((side, error)), _) | (_, Err((side, error))) => {
                self.state = State::Closed;
                return Outcome::Close(Close::Error { side, error });
            }
            (Ok(up), Ok(down)) => (up, down),
        };
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
        } else if up == Run::Exhausted || down == Run::Exhausted {
            Outcome::Again
        } else {
            Outcome::Continue
        }
    }
}

/// Runs one direction: flushes its remainder, forwards its end of file, or reads
/// from `src` and writes to `dst`, until blocked or out of budget. An error names
/// the side it happened on. `other_shut`: the other direction is finished, so this
/// one's end of file finishes the session. A pipe the direction ends with empty goes
/// back to `pipes`.
#[allow(clippy::too_many_arguments)]
fn transfer<T: Transport>(
    src: &mut End<T>,
    dst: &mut End<T>,
    flow: &mut Flow,
    src_side: Side,
    scratch: &mut [u8],
    pipes: &mut Pipes,
    counter: &mut u64,
    other_shut: bool,
) -> Result<Run, (Side, io::Error)> {
    let run = transfer_until_blocked(
        src, dst, flow, src_side, scratch, pipes, counter, other_shut,
    );
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
    other_shut: bool,
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
                    Err(e) => return Err((src_side, e)),
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
                    Err(e) => return Err((dst_side, e)),
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                src.readable = false;
                return Ok(Run::Blocked);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err((src_side, e)),
        }
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
        let (mut s, _client, remote) = relaying(100, 100);
        let mut scratch = vec![0u8; 64];
        remote.state().read_error = Some(io::ErrorKind::ConnectionReset);
        match s.relay(&mut scratch, &mut Pipes::default(), Instant::now()) {
            Outcome::Close(Close::Error {
                side: Side::Remote,
                error,
            }) => assert!(is_reset(&error)),
            other => panic!("unexpected {other:?}"),
        }
        let (mut s, client, remote) = relaying(100, 100);
        client.state().input.extend(b"x");
        remote.state().write_error = Some(io::ErrorKind::BrokenPipe);
        assert!(matches!(
            s.relay(&mut scratch, &mut Pipes::default(), Instant::now()),
            Outcome::Close(Close::Error {
                side: Side::Remote,
                ..
            })
        ));
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
        use super::super::transport::Stream;
        use std::io::{Read, Write};
        let (client_peer, client) = std::os::unix::net::UnixStream::pair().unwrap();
        let (remote, remote_peer) = std::os::unix::net::UnixStream::pair().unwrap();
        for s in [&client, &remote] {
            s.set_nonblocking(true).unwrap();
        }
        let wrap = |s| Stream::Unix(mio::net::UnixStream::from_std(s));
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
        use std::os::fd::AsRawFd;
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
        client.state().splice_fd = Some(directory.as_raw_fd());
        remote.state().splice_fd = Some(appending.as_raw_fd());
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
        client.state().splice_fd = Some(source.as_raw_fd());
        remote.state().splice_fd = Some(appending.as_raw_fd());
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
