//! The worker's event loop: one poller (epoll through mio by default, or what
//! `IO_POLL_MECHANISM` selects: see `poller`), one thread, every socket of the worker.
//!
//! Tokens: [`CONTROL`] and [`SIGNALS`] are reserved, listener `i` is
//! `FIRST_LISTENER + i`, and the session in slab slot `k` owns two tokens from
//! `session_base`: `+ 2k` for its client side and `+ 2k + 1` for its remote side.
//! Every socket is registered once for both readable and writable (edge-triggered);
//! the sessions track readiness themselves. poll(2) and select(2) are level-triggered
//! and emulate edges: whatever stops for want of readiness (a session side, an
//! accept, the control socket, the signal pipe) is re-armed here, after `WouldBlock`.
//! The poller must forget a socket before it is closed (`Poller::closing`).
//!
//! Fairness: a listener accepts at most [`ACCEPTS_PER_RUN`] connections and a session
//! relays at most `READS_PER_RUN` reads per direction per turn; one with work left
//! goes to the back of a run-again queue, served after the next (non-blocking) poll.
//!
//! Time: there is no timer unless something needs one. A coarse sweep every
//! [`SWEEP_INTERVAL`] runs while a connect or a TLS handshake is in progress (their
//! timeouts) or, with an idle timeout, while sessions exist; the stop grace and the accept back-off are
//! single deadlines. With none of these the poll blocks indefinitely.

use super::balance::Balancer;
use super::buffer;
use super::connect::{self, OpenError};
use super::limits;
use super::link::Link;
use super::poller::{self, Event, Interest, Mechanism, Poller, Token};
use super::session::{
    is_reset, Close, ConnectOutcome, End, HandshakeOutcome, Outcome, Session, Side, State,
};
use super::splice::Pipes;
use super::tls::{TlsStream, HANDSHAKE_TIMEOUT};
use super::transport::{Stream, Transport};
use super::{Config, Exit, ListenSocket, Options, Probe};
use crate::control::ToMaster;
use mio::unix::pipe::Receiver;
use slab::Slab;
use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tcprelay_plan::Remote;

/// The control socket's token.
const CONTROL: Token = Token(0);
/// The signal pipe's token.
const SIGNALS: Token = Token(1);
/// Listener `i` has token `FIRST_LISTENER + i`.
const FIRST_LISTENER: usize = 2;

/// How long a connect to a remote may take before the remote counts as failed and
/// the session fails over: 10 seconds, as a TCP stack's first SYN retries take
/// about this long on a lossy path, while a dead host should not hold clients longer.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Period of the sweep that checks connect and idle timeouts (their granularity).
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// Connections a listener accepts in one turn before the others get theirs.
pub const ACCEPTS_PER_RUN: usize = 32;
/// First and longest pause of accepting after running out of file descriptors.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Grace given to sessions on SIGTERM/SIGINT.
const SIGNAL_GRACE_SECS: u32 = 30;
/// Events fetched per poll.
const EVENTS: usize = 1024;

/// Something to run again after the next poll.
#[derive(Debug, Clone, Copy)]
enum Work {
    Listener(usize),
    /// Slab key and session id (the key may have been reused by then).
    Session(usize, u64),
}

/// A listener the worker accepts on.
#[derive(Debug)]
struct ListenerSlot {
    socket: ListenSocket,
    registered: bool,
    /// Clients are TLS clients (the handshake comes first).
    tls: bool,
}

/// Why a session is closed by the loop (as opposed to by its own relay).
#[derive(Debug)]
enum Why {
    Relay(Close),
    Idle,
    NoRemote,
    Stopped,
    Local(io::Error),
    Handshake(io::Error),
    HandshakeTimeout,
}

/// What a sweep found expired.
#[derive(Debug, Clone, Copy)]
enum Expired {
    Connect,
    Idle,
    Handshake,
}

/// Accepting paused because the process ran out of descriptors or memory.
#[derive(Debug, Clone, Copy)]
struct Starved {
    until: Instant,
}

/// The worker: the poll and everything registered with it.
#[derive(Debug)]
pub struct Worker {
    id: u32,
    poller: Box<dyn Poller>,
    now: Instant,
    listeners: Vec<Option<ListenerSlot>>,
    session_base: usize,
    link: Link,
    signals: Option<Receiver>,
    sessions: Slab<Session<Stream>>,
    next_id: u64,
    /// Poll rounds so far (see `End::round`).
    round: u64,
    scratch: Box<[u8]>,
    /// Pipes for splicing bulk transfers.
    pipes: Pipes,
    remotes: Vec<Remote>,
    local_address: Option<IpAddr>,
    balancer: Balancer,
    /// Whether "the kernel does not support" was logged, per remote.
    unsupported_logged: Vec<bool>,
    /// Whether giving up on a client for want of a remote was logged since the
    /// last successful connect.
    give_up_logged: bool,
    users_max: usize,
    retire: Option<u64>,
    idle_timeout: Option<Duration>,
    served: u64,
    /// At `users max`: listeners deregistered until a session ends.
    full: bool,
    starved: Option<Starved>,
    backoff: Duration,
    /// Whether the current starvation episode was logged.
    starve_logged: bool,
    /// Set once the worker stops accepting for good: why it will exit when idle.
    exit: Option<Exit>,
    grace_at: Option<Instant>,
    sweep_at: Option<Instant>,
    again: VecDeque<Work>,
    /// Reused list of sessions found expired by a sweep.
    expired: Vec<(usize, Expired)>,
    probe: Option<Arc<Probe>>,
    connect_timeout: Duration,
    /// Whether a remote's failure was logged since it last accepted a connect: one
    /// warning when a remote goes down, one notice when it is back.
    reported_dead: Vec<bool>,
    /// The server context of TLS listeners.
    tls: Option<openssl::ssl::SslContext>,
    handshake_timeout: Duration,
    /// TLS handshakes that failed or timed out (logged at debug level only: any
    /// client can cause them).
    tls_failures: u64,
}

impl Worker {
    pub fn new(config: Config, options: Options) -> io::Result<Worker> {
        let mechanism = match options.mechanism {
            Some(mechanism) => mechanism,
            None => {
                Mechanism::from_env().map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?
            }
        };
        let mut poller = poller::new(mechanism)?;
        crate::debug!(
            "worker {}: event mechanism: {}",
            config.id,
            poller.mechanism()
        );
        let ceiling = poller.descriptor_ceiling();
        let capacity = limits::capacity(config.users_max, config.id, ceiling);
        let control = config.control;
        // The loop must never block on these, whatever the caller set up.
        socket2::SockRef::from(&control).set_nonblocking(true)?;
        if let Some(pipe) = config.signals.as_ref() {
            pipe.set_nonblocking(true)?;
        }
        poller.register(
            control.as_raw_fd(),
            CONTROL,
            Interest::READABLE | Interest::WRITABLE,
        )?;
        let signals = config.signals;
        if let Some(pipe) = signals.as_ref() {
            poller.register(pipe.as_raw_fd(), SIGNALS, Interest::READABLE)?;
        }
        let mut listeners = Vec::with_capacity(config.listeners.len());
        for listener in config.listeners {
            if listener.tls && config.tls.is_none() {
                crate::error!(
                    "worker {}: no TLS context; listener {} not served",
                    config.id,
                    describe(&listener.socket)
                );
                listeners.push(None);
                continue;
            }
            let socket = listener.socket;
            match &socket {
                ListenSocket::Tcp(l) => socket2::SockRef::from(l).set_nonblocking(true)?,
                ListenSocket::Unix(l) => socket2::SockRef::from(l).set_nonblocking(true)?,
            }
            let token = Token(FIRST_LISTENER + listeners.len());
            register_listener(&mut *poller, &socket, token)?;
            listeners.push(Some(ListenerSlot {
                socket,
                registered: true,
                tls: listener.tls,
            }));
        }
        let relay = config.relay;
        let relay_remotes_len = relay.remotes.len();
        let session_base = FIRST_LISTENER + listeners.len();
        Ok(Worker {
            id: config.id,
            poller,
            now: Instant::now(),
            listeners,
            session_base,
            link: Link::new(control),
            signals,
            sessions: Slab::new(),
            next_id: 1,
            round: 0,
            scratch: buffer::scratch(),
            balancer: Balancer::new(relay.remotes.iter().map(|r| r.weight), relay.rebalance),
            unsupported_logged: vec![false; relay.remotes.len()],
            remotes: relay.remotes,
            local_address: relay.local_address,
            give_up_logged: false,
            users_max: capacity.sessions,
            pipes: Pipes::new(capacity.pipes),
            retire: relay.retire.filter(|n| *n > 0),
            idle_timeout: (relay.idle_timeout > 0)
                .then(|| Duration::from_secs(u64::from(relay.idle_timeout))),
            served: 0,
            full: false,
            starved: None,
            backoff: BACKOFF_MIN,
            starve_logged: false,
            exit: None,
            grace_at: None,
            sweep_at: None,
            again: VecDeque::new(),
            expired: Vec::new(),
            probe: options.probe,
            connect_timeout: options.connect_timeout.unwrap_or(CONNECT_TIMEOUT),
            reported_dead: vec![false; relay_remotes_len],
            tls: config.tls,
            handshake_timeout: options.handshake_timeout.unwrap_or(HANDSHAKE_TIMEOUT),
            tls_failures: 0,
        })
    }

    /// Runs until drained, stopped or orphaned, and idle.
    pub fn run(mut self) -> io::Result<Exit> {
        let mut events = Vec::with_capacity(EVENTS);
        loop {
            if let Some(exit) = self.exit {
                if self.sessions.is_empty() {
                    debug_assert_eq!(self.pipes.in_use(), 0, "a pipe was not returned");
                    crate::debug!(
                        "worker {}: exiting ({exit:?}) after {} sessions ({} failed TLS handshakes, {} pipes made for splicing)",
                        self.id,
                        self.served,
                        self.tls_failures,
                        self.pipes.created
                    );
                    return Ok(exit);
                }
            }
            let timeout = self.poll_timeout();
            match self.poller.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            self.now = Instant::now();
            self.round += 1;
            for event in &events {
                self.dispatch(event);
            }
            self.run_again();
            self.run_timers();
            self.rearm_link();
            self.report_probe();
        }
    }

    fn poll_timeout(&self) -> Option<Duration> {
        if !self.again.is_empty() {
            return Some(Duration::ZERO);
        }
        let next = [self.sweep_at, self.grace_at, self.starved.map(|s| s.until)]
            .into_iter()
            .flatten()
            .min()?;
        Some(next.saturating_duration_since(Instant::now()))
    }

    fn dispatch(&mut self, event: &Event) {
        match event.token() {
            CONTROL => self.control_event(event),
            SIGNALS => self.signal_event(),
            Token(t) if t < self.session_base => self.accept(t - FIRST_LISTENER),
            Token(t) => {
                let n = t - self.session_base;
                let side = if n % 2 == 0 {
                    Side::Client
                } else {
                    Side::Remote
                };
                self.session_event(n / 2, side, event);
            }
        }
    }

    // ---- accepting ----------------------------------------------------------------

    fn accepting(&self) -> bool {
        self.exit.is_none() && !self.full && self.starved.is_none()
    }

    fn accept(&mut self, index: usize) {
        for _ in 0..ACCEPTS_PER_RUN {
            if !self.accepting() {
                return;
            }
            let Some(Some(slot)) = self.listeners.get(index) else {
                return;
            };
            let tls = slot.tls;
            let fd = listener_fd(&slot.socket);
            let accepted = match &slot.socket {
                ListenSocket::Tcp(l) => l.accept().map(|(s, peer)| {
                    // Linux copies TCP_NODELAY from the listener (set by the master);
                    // elsewhere, best effort: without it small writes wait for Nagle.
                    #[cfg(not(any(target_os = "linux", target_os = "android")))]
                    let _ = s.set_nodelay(true);
                    (Stream::Tcp(s), Some(peer))
                }),
                ListenSocket::Unix(l) => l.accept().map(|(s, _)| (Stream::Unix(s), None)),
            };
            match accepted {
                Ok((stream, peer)) => self.open_session(stream, peer, tls),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.poller.rearm(fd, Interest::READABLE);
                    return;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionAborted
                            | io::ErrorKind::Interrupted
                            | io::ErrorKind::ConnectionReset
                    ) || e.raw_os_error() == Some(libc::EPROTO) =>
                {
                    crate::debug!("worker {}: accept: {e}", self.id);
                }
                Err(e) => {
                    self.starve(&format!("cannot accept: {e}"));
                    return;
                }
            }
        }
        self.again.push_back(Work::Listener(index));
    }

    /// SIGUSR1 (forwarded by the master): one status line with this worker's sessions
    /// and, per remote, whether it is marked dead and how many sessions it holds.
    fn report_status(&self) {
        let remotes: Vec<String> = self
            .remotes
            .iter()
            .enumerate()
            .map(|(i, r)| {
                format!(
                    "{} {}, {} sessions",
                    r.address,
                    if self.balancer.is_dead(i) {
                        "dead"
                    } else {
                        "alive"
                    },
                    self.balancer.active(i)
                )
            })
            .collect();
        crate::notice!(
            "status: worker {}: {} sessions, {} served{}; remotes: {}",
            self.id,
            self.sessions.len(),
            self.served,
            if self.exit.is_some() {
                ", draining"
            } else {
                ""
            },
            remotes.join("; ")
        );
    }

    /// Pauses accepting after a resource error, until the back-off expires or a
    /// session frees a descriptor; logs once per episode.
    fn starve(&mut self, error: &str) {
        if !self.starve_logged {
            crate::warn!(
                "worker {}: {error}; pausing accepts (retry in {} ms or when a session ends)",
                self.id,
                self.backoff.as_millis()
            );
            self.starve_logged = true;
        }
        self.starved = Some(Starved {
            until: self.now + self.backoff,
        });
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        self.sync_listeners();
    }

    /// Registers or deregisters the listeners to match whether the worker accepts.
    fn sync_listeners(&mut self) {
        let want = self.accepting();
        for (index, slot) in self.listeners.iter_mut().enumerate() {
            let Some(slot) = slot.as_mut() else { continue };
            if slot.registered == want {
                continue;
            }
            let result = if want {
                register_listener(
                    &mut *self.poller,
                    &slot.socket,
                    Token(FIRST_LISTENER + index),
                )
            } else {
                self.poller.deregister(listener_fd(&slot.socket))
            };
            match result {
                Ok(()) => slot.registered = want,
                Err(e) => crate::error!(
                    "worker {}: listener {}: {e}",
                    self.id,
                    describe(&slot.socket)
                ),
            }
        }
    }

    /// Stops accepting for good: the listeners are deregistered and dropped, so that
    /// a new generation of workers owns the queue.
    fn close_intake(&mut self, exit: Exit) {
        if exit == Exit::Stopped || self.exit.is_none() {
            self.exit = Some(exit);
        }
        self.sync_listeners();
        self.listeners.iter_mut().for_each(|slot| *slot = None);
        self.again.retain(|work| matches!(work, Work::Session(..)));
    }

    /// Takes a new client (`peer` is `None` on a Unix-domain listener); a TLS client
    /// starts with the handshake.
    fn open_session(&mut self, stream: Stream, peer: Option<SocketAddr>, tls: bool) {
        let id = self.next_id;
        self.next_id += 1;
        let entry = self.sessions.vacant_entry();
        let key = entry.key();
        let session = match (tls, self.tls.as_ref()) {
            (true, Some(context)) => match TlsStream::accept(context, stream) {
                Ok(tls) => {
                    let mut session =
                        Session::handshaking(id, Stream::Tls(Box::new(tls)), self.now);
                    session.client.round = self.round;
                    session
                }
                Err(e) => {
                    // Out of memory: shed the client.
                    crate::warn!("worker {}: cannot start TLS for a client: {e}", self.id);
                    return;
                }
            },
            _ => Session::accepted(id, stream, self.now, self.round),
        };
        let token = Token(self.session_base + 2 * key);
        if let Err(e) = self.poller.register(
            session.client.io.as_raw_fd(),
            token,
            Interest::READABLE | Interest::WRITABLE,
        ) {
            // Out of kernel memory or epoll watches, or a descriptor select(2) cannot
            // watch: shed the client, pause accepts (one warning per episode).
            drop(session);
            self.starve(&format!("cannot register a client: {e}"));
            return;
        }
        entry.insert(session);
        if self.starve_logged {
            crate::notice!("worker {}: accepting connections again", self.id);
        }
        self.starve_logged = false;
        self.backoff = BACKOFF_MIN;
        crate::debug!(
            "worker {}: session {id}: client {}",
            self.id,
            PeerText(peer)
        );
        self.served += 1;
        if self.sessions.len() >= self.users_max && !self.full {
            self.full = true;
            self.sync_listeners();
            self.send_load();
        }
        if self.retire == Some(self.served) {
            crate::info!(
                "worker {}: retiring after {} sessions",
                self.id,
                self.served
            );
            self.close_intake(Exit::Drained);
            self.link.send(
                ToMaster::Retiring {
                    served: self.served,
                },
                true,
            );
        }
        if tls {
            self.arm_sweep();
            self.handshake(key);
        } else {
            self.start_attempt(key);
        }
    }

    fn send_load(&mut self) {
        let sessions = u32::try_from(self.sessions.len()).unwrap_or(u32::MAX);
        self.link.send(
            ToMaster::Load {
                sessions,
                full: self.full,
            },
            false,
        );
    }

    // ---- connecting and failover --------------------------------------------------

    /// Selects a remote for a connecting session and starts a connect, failing over
    /// at once through remotes that fail immediately; closes the client when none
    /// is left.
    fn start_attempt(&mut self, key: usize) {
        loop {
            let Some(session) = self.sessions.get_mut(key) else {
                return;
            };
            let State::Connecting(connecting) = &mut session.state else {
                return;
            };
            let (choice, revived) = self.balancer.select(&connecting.tried);
            if revived {
                crate::debug!("worker {}: rebalance: dead remotes revived", self.id);
            }
            let Some(index) = choice else {
                if !connecting.revived {
                    connecting.revived = true;
                    connecting.tried.clear();
                    if self.balancer.revive_all() {
                        crate::debug!(
                            "worker {}: every remote failed; reviving them all for a retry",
                            self.id
                        );
                    }
                    continue;
                }
                if !self.give_up_logged {
                    crate::warn!(
                        "worker {}: no remote reachable; closing clients until one is",
                        self.id
                    );
                    self.give_up_logged = true;
                }
                self.close(key, Why::NoRemote);
                return;
            };
            connecting.tried.insert(index);
            connecting.attempt += 1;
            connecting.started = self.now;
            session.remote_index = Some(index);
            let (id, attempt) = (session.id, connecting.attempt);
            match connect::open(&self.remotes[index], self.local_address) {
                Ok(stream) => {
                    let end = End::registered(stream, self.round);
                    let token = Token(self.session_base + 2 * key + 1);
                    if let Err(e) = self.poller.register(
                        end.io.as_raw_fd(),
                        token,
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        // A descriptor select(2) cannot watch is like running out
                        // of descriptors: not the remote's fault, accepts pause.
                        let over = poller::is_over_fd_setsize(&e);
                        let message = format!("cannot watch a connection: {e}");
                        self.close(key, Why::Local(e));
                        if over {
                            self.starve(&message);
                        }
                        return;
                    }
                    session.remote = Some(end);
                    crate::debug!(
                        "worker {}: session {id}: connecting to {} (attempt {attempt})",
                        self.id,
                        self.remotes[index].address
                    );
                    self.arm_sweep();
                    return;
                }
                Err(OpenError::Resources(e)) => {
                    // Not the remote's fault: keep it alive, shed this client and stop
                    // accepting for a while (after the close, which would otherwise
                    // resume accepting at once for the descriptor it frees).
                    let message = format!("cannot open a connection: {e}");
                    self.close(key, Why::Local(e));
                    self.starve(&message);
                    return;
                }
                Err(OpenError::Unsupported(e)) => {
                    self.release_remote(key);
                    if !self.unsupported_logged[index] {
                        self.unsupported_logged[index] = true;
                        crate::error!(
                            "worker {}: remote {} ({}): not supported by this kernel: {e}",
                            self.id,
                            self.remotes[index].address,
                            self.remotes[index].protocol
                        );
                    }
                    self.balancer.mark_dead(index);
                }
                Err(OpenError::Failed(e)) => {
                    self.release_remote(key);
                    self.remote_failed(index, &e);
                }
            }
        }
    }

    /// Gives back the balancer count of the session's current remote.
    fn release_remote(&mut self, key: usize) {
        if let Some(session) = self.sessions.get_mut(key) {
            if let Some(index) = session.remote_index.take() {
                self.balancer.release(index);
            }
        }
    }

    fn remote_failed(&mut self, index: usize, error: &io::Error) {
        let address = self.remotes[index].address;
        self.balancer.mark_dead(index);
        if self.reported_dead[index] {
            crate::debug!("worker {}: remote {address}: {error}", self.id);
        } else {
            self.reported_dead[index] = true;
            crate::warn!("worker {}: remote {address}: {error}; marked dead", self.id);
        }
    }

    /// The current attempt failed (refused, unreachable, timed out): mark the remote
    /// dead and fail over, the client none the wiser.
    fn fail_attempt(&mut self, key: usize, error: io::Error) {
        let Some(session) = self.sessions.get_mut(key) else {
            return;
        };
        // The poller forgets the socket; dropping it closes it.
        if let Some(remote) = session.remote.take() {
            self.poller.closing(remote.io.as_raw_fd());
        }
        let index = session.remote_index;
        self.release_remote(key);
        if let Some(index) = index {
            self.remote_failed(index, &error);
        }
        self.start_attempt(key);
    }

    // ---- sessions -----------------------------------------------------------------

    fn session_event(&mut self, key: usize, side: Side, event: &Event) {
        let Some(session) = self.sessions.get_mut(key) else {
            return;
        };
        let round = match side {
            Side::Client => Some(session.client.round),
            Side::Remote => session.remote.as_ref().map(|end| end.round),
        };
        if round == Some(self.round) {
            // The socket was registered after this round's events were fetched: the
            // event is for a socket closed meanwhile whose token was reused. The
            // poller reports the new socket's own readiness in a later round.
            return;
        }
        session.ready(
            side,
            event.is_readable(),
            event.is_writable(),
            event.is_read_closed(),
            event.is_error(),
        );
        if matches!(session.state, State::TlsHandshake { .. }) {
            if side == Side::Client {
                self.handshake(key);
            }
            return;
        }
        if side == Side::Remote && matches!(session.state, State::Connecting(_)) {
            let trusted = matches!(self.poller.mechanism(), Mechanism::Epoll | Mechanism::Poll);
            match session.connected(self.now, trusted) {
                ConnectOutcome::Pending => {
                    // A stale event: watch for the connect's end again.
                    if let Some(remote) = &session.remote {
                        self.poller.rearm(
                            remote.io.as_raw_fd(),
                            Interest::READABLE | Interest::WRITABLE,
                        );
                    }
                    return;
                }
                ConnectOutcome::Connected => {
                    if let Some(index) = session.remote_index {
                        let address = self.remotes[index].address;
                        crate::debug!(
                            "worker {}: session {}: connected to {address}",
                            self.id,
                            session.id
                        );
                        if std::mem::take(&mut self.reported_dead[index]) {
                            crate::notice!(
                                "worker {}: remote {address} is reachable again",
                                self.id
                            );
                        }
                    }
                    self.give_up_logged = false;
                    if self.idle_timeout.is_some() {
                        self.arm_sweep();
                    }
                }
                ConnectOutcome::Failed(e) => {
                    self.fail_attempt(key, e);
                    return;
                }
            }
        }
        self.run_session(key);
    }

    /// Drives a TLS client's handshake on; once complete, connects to a remote.
    fn handshake(&mut self, key: usize) {
        let Some(session) = self.sessions.get_mut(key) else {
            return;
        };
        match session.handshake(self.now) {
            HandshakeOutcome::Pending => {
                // Watch again for what the handshake waits for.
                let (readable, writable) = session.client.io.awaits(true, false);
                if let Some(interest) = poller::interest(readable, writable) {
                    self.poller.rearm(session.client.io.as_raw_fd(), interest);
                }
            }
            HandshakeOutcome::Done => {
                if let Stream::Tls(tls) = &session.client.io {
                    crate::debug!(
                        "worker {}: session {}: TLS handshake done ({}{})",
                        self.id,
                        session.id,
                        tls.version(),
                        if tls.resumed() { ", resumed" } else { "" }
                    );
                }
                self.start_attempt(key);
            }
            HandshakeOutcome::Failed(e) => self.close(key, Why::Handshake(e)),
        }
    }

    fn run_session(&mut self, key: usize) {
        let Some(session) = self.sessions.get_mut(key) else {
            return;
        };
        let outcome = session.relay(&mut self.scratch, &mut self.pipes, self.now);
        if !matches!(outcome, Outcome::Close(_)) {
            rearm_session(&mut *self.poller, session);
        }
        match outcome {
            Outcome::Continue => {}
            Outcome::Again => {
                if !session.queued {
                    session.queued = true;
                    self.again.push_back(Work::Session(key, session.id));
                }
            }
            Outcome::Close(close) => self.close(key, Why::Relay(close)),
        }
    }

    fn close(&mut self, key: usize, why: Why) {
        let Some(mut session) = self.sessions.try_remove(key) else {
            return;
        };
        if let Some(index) = session.remote_index.take() {
            self.balancer.release(index);
        }
        if matches!(why, Why::Handshake(_) | Why::HandshakeTimeout) {
            self.tls_failures += 1;
            if let Some(probe) = &self.probe {
                probe
                    .tls_failures
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        if let Why::Relay(Close::Error { side, error }) = &why {
            if is_reset(error) {
                match side {
                    Side::Client => session
                        .remote
                        .iter_mut()
                        .for_each(|end| end.io.reset_on_close()),
                    Side::Remote => session.client.io.reset_on_close(),
                }
            }
        }
        crate::debug!(
            "worker {}: session {}: closed ({}, was {}), {} bytes up, {} down",
            self.id,
            session.id,
            WhyText(&why),
            session.state.name(),
            session.bytes.0,
            session.bytes.1
        );
        session.release_pipes(&mut self.pipes);
        // The poller forgets both sockets, and dropping the session closes them (the
        // worker holds the only descriptor of an accepted or connected socket).
        self.poller.closing(session.client.io.as_raw_fd());
        if let Some(remote) = &session.remote {
            self.poller.closing(remote.io.as_raw_fd());
        }
        drop(session);
        if self.full && self.sessions.len() < self.users_max {
            self.full = false;
            if self.exit.is_none() {
                self.sync_listeners();
                self.send_load();
            }
        }
        if self.starved.is_some() {
            // A descriptor was freed: try accepting again now.
            self.starved = None;
            self.sync_listeners();
        }
    }

    fn run_again(&mut self) {
        for _ in 0..self.again.len() {
            let Some(work) = self.again.pop_front() else {
                break;
            };
            match work {
                Work::Listener(index) => self.accept(index),
                Work::Session(key, id) => match self.sessions.get_mut(key) {
                    Some(session) if session.id == id => {
                        session.queued = false;
                        self.run_session(key);
                    }
                    _ => {}
                },
            }
        }
    }

    // ---- time ---------------------------------------------------------------------

    fn arm_sweep(&mut self) {
        if self.sweep_at.is_none() {
            self.sweep_at = Some(self.now + SWEEP_INTERVAL);
        }
    }

    fn run_timers(&mut self) {
        if self.starved.is_some_and(|s| s.until <= self.now) {
            self.starved = None;
            self.sync_listeners();
        }
        if self.grace_at.is_some_and(|at| at <= self.now) {
            self.grace_at = None;
            let keys: Vec<usize> = self.sessions.iter().map(|(key, _)| key).collect();
            if !keys.is_empty() {
                crate::notice!(
                    "worker {}: grace period over, closing {} sessions",
                    self.id,
                    keys.len()
                );
            }
            for key in keys {
                self.close(key, Why::Stopped);
            }
        }
        if self.sweep_at.is_some_and(|at| at <= self.now) {
            self.sweep();
        }
    }

    /// Fails over connects older than [`CONNECT_TIMEOUT`], closes TLS clients whose
    /// handshake takes longer than [`HANDSHAKE_TIMEOUT`] and sessions idle for the
    /// idle timeout; re-arms itself while any of these can still happen.
    fn sweep(&mut self) {
        self.sweep_at = None;
        let now = self.now;
        let mut rearm = false;
        self.expired.clear();
        for (key, session) in self.sessions.iter() {
            match &session.state {
                State::Connecting(c) if session.remote.is_some() => {
                    if now.saturating_duration_since(c.started) >= self.connect_timeout {
                        self.expired.push((key, Expired::Connect));
                    } else {
                        rearm = true;
                    }
                }
                State::TlsHandshake { started } => {
                    if now.saturating_duration_since(*started) >= self.handshake_timeout {
                        self.expired.push((key, Expired::Handshake));
                    } else {
                        rearm = true;
                    }
                }
                State::Connecting(_) | State::Closed => {}
                State::Relaying | State::HalfClosed { .. } => {
                    if let Some(idle) = self.idle_timeout {
                        if now.saturating_duration_since(session.last_active) >= idle {
                            self.expired.push((key, Expired::Idle));
                        } else {
                            rearm = true;
                        }
                    }
                }
            }
        }
        let expired = std::mem::take(&mut self.expired);
        for &(key, what) in &expired {
            match what {
                Expired::Connect => {
                    let error = io::Error::new(io::ErrorKind::TimedOut, "connect timed out");
                    self.fail_attempt(key, error);
                }
                Expired::Idle => self.close(key, Why::Idle),
                Expired::Handshake => self.close(key, Why::HandshakeTimeout),
            }
        }
        self.expired = expired;
        if rearm {
            self.arm_sweep();
        }
    }

    // ---- master and signals -------------------------------------------------------

    fn control_event(&mut self, event: &Event) {
        if event.is_writable() {
            self.link.flush();
        }
        if !(event.is_readable() || event.is_read_closed() || event.is_error()) {
            return;
        }
        let received = self.link.receive();
        if !received.eof {
            // Read to `WouldBlock`.
            if let Some(fd) = self.link.fd() {
                self.poller.rearm(fd, Interest::READABLE);
            }
        }
        for frame in received.frames {
            match frame {
                crate::control::ToWorker::Drain => self.drain(Exit::Drained),
                crate::control::ToWorker::Stop { grace_secs } => self.stop(grace_secs),
            }
        }
        if received.eof {
            if let Some(fd) = self.link.fd() {
                let _ = self.poller.deregister(fd);
            }
            self.link.take();
            if self.exit.is_none() {
                crate::notice!(
                    "worker {}: master gone; finishing {} sessions",
                    self.id,
                    self.sessions.len()
                );
            }
            self.close_intake(Exit::MasterGone);
        }
    }

    fn drain(&mut self, exit: Exit) {
        crate::info!(
            "worker {}: draining {} sessions",
            self.id,
            self.sessions.len()
        );
        self.close_intake(exit);
        let sessions = u32::try_from(self.sessions.len()).unwrap_or(u32::MAX);
        let stopping = exit == Exit::Stopped;
        self.link
            .send(ToMaster::Draining { sessions, stopping }, true);
    }

    fn stop(&mut self, grace_secs: u32) {
        self.drain(Exit::Stopped);
        // A grace too long to represent is no deadline at all.
        if let Some(at) = self
            .now
            .checked_add(Duration::from_secs(u64::from(grace_secs)))
        {
            self.grace_at = Some(self.grace_at.map_or(at, |old| old.min(at)));
        }
    }

    fn signal_event(&mut self) {
        let mut bytes = [0u8; 64];
        loop {
            let Some(pipe) = self.signals.as_mut() else {
                return;
            };
            match pipe.read(&mut bytes) {
                Ok(0) => {
                    let _ = self.poller.deregister(pipe.as_raw_fd());
                    self.signals = None;
                    return;
                }
                Ok(n) => {
                    for &signal in &bytes[..n] {
                        match i32::from(signal) {
                            libc::SIGHUP => self.drain(Exit::Drained),
                            libc::SIGTERM | libc::SIGINT => self.stop(SIGNAL_GRACE_SECS),
                            libc::SIGUSR1 => self.report_status(),
                            _ => {}
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.poller.rearm(pipe.as_raw_fd(), Interest::READABLE);
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    crate::warn!("worker {}: signal pipe: {e}", self.id);
                    let _ = self.poller.deregister(pipe.as_raw_fd());
                    self.signals = None;
                    return;
                }
            }
        }
    }

    /// Frames wait in the link's outbox: watch the control socket for room again.
    fn rearm_link(&mut self) {
        if self.link.wants_write() {
            if let Some(fd) = self.link.fd() {
                self.poller.rearm(fd, Interest::WRITABLE);
            }
        }
    }

    fn report_probe(&self) {
        if let Some(probe) = &self.probe {
            let buffered = self.sessions.iter().map(|(_, s)| s.buffered()).sum();
            probe.record(self.sessions.len(), buffered, &self.pipes);
        }
    }
}

fn register_listener(
    poller: &mut dyn Poller,
    socket: &ListenSocket,
    token: Token,
) -> io::Result<()> {
    poller.register(listener_fd(socket), token, Interest::READABLE)
}

fn listener_fd(socket: &ListenSocket) -> RawFd {
    match socket {
        ListenSocket::Tcp(l) => l.as_raw_fd(),
        ListenSocket::Unix(l) => l.as_raw_fd(),
    }
}

/// After a session ran: a level-triggered poller watches each side again for
/// what its blocked operations wait for (for epoll and kqueue this does nothing).
fn rearm_session(poller: &mut dyn Poller, session: &Session<Stream>) {
    for end in std::iter::once(&session.client).chain(session.remote.as_ref()) {
        let (read, write) = end.blocked();
        if read || write {
            let (readable, writable) = end.io.awaits(read, write);
            if let Some(interest) = poller::interest(readable, writable) {
                poller.rearm(end.io.as_raw_fd(), interest);
            }
        }
    }
}

fn describe(socket: &ListenSocket) -> String {
    match socket {
        ListenSocket::Tcp(l) => l
            .local_addr()
            .map_or_else(|_| "tcp".to_string(), |a| a.to_string()),
        ListenSocket::Unix(l) => l
            .local_addr()
            .ok()
            .and_then(|a| a.as_pathname().map(|p| format!("unix:{}", p.display())))
            .unwrap_or_else(|| "unix".to_string()),
    }
}

/// A close reason for a log line, formatted only if the line is written.
struct WhyText<'a>(&'a Why);

impl fmt::Display for WhyText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Why::Relay(Close::Finished) => f.write_str("finished"),
            Why::Relay(Close::Error { side, error }) => write!(f, "{} error: {error}", side.name()),
            Why::Idle => f.write_str("idle timeout"),
            Why::NoRemote => f.write_str("no remote reachable"),
            Why::Stopped => f.write_str("stopped"),
            Why::Local(error) => write!(f, "local error: {error}"),
            Why::Handshake(error) => write!(f, "TLS handshake failed: {error}"),
            Why::HandshakeTimeout => f.write_str("TLS handshake timed out"),
        }
    }
}

/// A client address for a log line.
struct PeerText(Option<SocketAddr>);

impl fmt::Display for PeerText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(address) => write!(f, "{address}"),
            None => f.write_str("unix"),
        }
    }
}
