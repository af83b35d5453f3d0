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
//! timeouts) or, with an idle timeout, while sessions exist, or, with a half-close
//! timeout, while a session is half-closed; the stop grace and the accept back-off are
//! single deadlines. With none of these the poll blocks indefinitely.
//!
//! This file holds the worker's state, its set-up and the loop; the handlers are
//! `impl Worker` blocks by concern: `accept` (listeners, new sessions, pausing on
//! resource errors, status), `failover` (choosing and connecting remotes),
//! `sessions` (events, handshakes, the relay, closing), `timers` (the run-again
//! queue and the sweep) and `control` (the master's frames and the signal pipe).

use super::acl;
use super::balance::Balancer;
use super::buffer;
use super::connect::{self, OpenError};
use super::limits;
use super::link::Link;
use super::poller::{self, Event, Interest, Mechanism, Poller, Token};
use super::session::{
    is_reset, Close, ConnectOutcome, End, HandshakeOutcome, Outcome, Session, Side, State,
};
use super::socket::Socket;
use super::splice::Pipes;
use super::stream::Stream;
use super::tls_stream::{self, TlsStream};
use super::transport::Transport;
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

mod accept;
mod control;
mod discovery;
mod failover;
mod proxy;
mod records;
mod remote_tls;
mod sessions;
mod sni;
mod sticky;
mod timers;

/// The control socket's token.
const CONTROL: Token = Token(0);
/// The signal pipe's token.
const SIGNALS: Token = Token(1);
/// Listener `i` has token `FIRST_LISTENER + i`.
const FIRST_LISTENER: usize = 2;

/// How often sessions waiting for a free local port try again (a port frees when
/// a connection to the remote closes, or when a TIME_WAIT entry may be reused).
pub const PORT_RETRY: Duration = Duration::from_millis(50);
/// How often a failing session (one side failed, what it sent before is being
/// delivered) looks whether the other side's kernel has sent it all: no event says
/// so. A delayed acknowledgement takes up to some 40 ms.
pub const FAILING_CHECK: Duration = Duration::from_millis(10);
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
/// How long a worker holds no session before it tells the master, which releases
/// workers started above `servers min` (`TCPRELAY_IDLE_RELEASE` in seconds
/// overrides it).
pub const IDLE_RELEASE: Duration = Duration::from_secs(30);

/// How long a worker leaves a connection to a less loaded one that accepts nothing
/// before it takes it (see [`Share`]).
pub const DEFER_CHECK: Duration = Duration::from_millis(2);
/// How long a worker that left a connection to another polls without sleeping, to
/// take it back at once if the other fills up first.
pub const DEFER_SPIN: Duration = Duration::from_micros(200);
/// How long a worker accepts without looking at the board once the others left a
/// connection waiting longer than [`DEFER_CHECK`] (stuck, or too busy to accept).
pub const ALONE: Duration = Duration::from_millis(250);

/// Sharing new connections with the other workers through the load board
/// (`crate::board`): from `users min` sessions on, a worker leaves a connection in
/// the queue when another accepting worker holds clearly fewer sessions. The queue
/// never waits on that: if the others accepted nothing within [`DEFER_CHECK`], this
/// worker takes what is waiting and accepts alone for [`ALONE`].
#[derive(Debug)]
struct Share {
    place: crate::board::Place,
    users_min: usize,
    defer_check: Duration,
    /// Since when a connection is left to the others, and their accept count then.
    deferring: Option<(Instant, u32)>,
    /// The others did not accept since the deferral: the next accept is a probe
    /// (a connection found means it waited).
    overdue: bool,
    alone_until: Option<Instant>,
}

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
    /// The TLS versions they may use (empty: those of the context), and whether a
    /// client that does not start a TLS handshake is relayed in plain text.
    tls_versions: Vec<tcprelay_plan::TlsVersion>,
    tls_auto: bool,
}

/// Why a session is closed by the loop (as opposed to by its own relay).
#[derive(Debug)]
enum Why {
    Relay(Close),
    Idle,
    Silent,
    NoRemote,
    NoLocalPort,
    Stopped,
    Local(io::Error),
    Handshake(io::Error),
    HandshakeTimeout,
    /// One direction ended `half close timeout` ago.
    HalfClose,
    /// The drain after a reload is over (`drain timeout`, or `drain generations`).
    DrainOver,
    /// Refused before anything was relayed, already counted and logged (a PROXY
    /// protocol refusal, or the ACL on the address a header carried): no record.
    Refused,
    /// Refused by SNI routing before any remote, already counted and logged; its
    /// record says `sni_refused`.
    Sni,
}

/// What a sweep found expired.
#[derive(Debug, Clone, Copy)]
enum Expired {
    Connect,
    Idle,
    Silent,
    Handshake,
    /// A TLS handshake with a remote.
    RemoteHandshake,
    HalfClose,
    ProxyHeader,
    /// A TLS client whose ClientHello (for its SNI route) did not come in time.
    Hello,
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
    /// Whether the poller is level-triggered and re-armed after each run of a
    /// session (`Poller::rearms`), kept here: asked after every run.
    rearms: bool,
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
    /// `balance = least-conn|source|source sticky`.
    balance: tcprelay_plan::Balance,
    /// Whether "the kernel does not support" was logged, per remote.
    unsupported_logged: Vec<bool>,
    /// Whether giving up on a client for want of a remote was logged since the
    /// last successful connect.
    give_up_logged: bool,
    /// Sessions waiting for a free local port, oldest first: (key, session id).
    port_waiting: VecDeque<(usize, u64)>,
    /// When they try again.
    port_retry_at: Option<Instant>,
    /// Whether running out of local ports was logged since the last connect.
    no_port_logged: bool,
    /// Failing sessions (see `session::State::Failing`) to run again at
    /// `failing_at`: (key, session id).
    failing: Vec<(usize, u64)>,
    failing_at: Option<Instant>,
    users_max: usize,
    retire: Option<u64>,
    idle_timeout: Option<Duration>,
    /// `silent timeout`: sessions through which nothing passed are closed after it.
    silent_timeout: Option<Duration>,
    /// `half close timeout`: sessions one direction of which has ended are closed
    /// this long after.
    half_close_timeout: Option<Duration>,
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
    /// When to tell the master that this worker is idle (no session since, told
    /// again every `idle_release`); `None` while it holds sessions.
    idle_at: Option<Instant>,
    idle_release: Duration,
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
    /// The client context of each `tls = yes` remote, in plan order (see
    /// `remote_tls`); it keeps the remote's last session for resumption.
    remote_tls: Vec<Option<Result<crate::tls_context::ClientContext, String>>>,
    handshake_timeout: Duration,
    /// TLS handshakes that failed or timed out (logged at debug level only: any
    /// client can cause them).
    tls_failures: u64,
    /// Sharing new connections with the other workers (`None`: alone).
    share: Option<Share>,
    /// TLS clients that have spoken and wait for a handshake slot, oldest first:
    /// (key, session id).
    handshake_queue: VecDeque<(usize, u64)>,
    /// The most sessions held since memory was last given back (see
    /// [`Worker::give_back_memory`]), and when it is given back next.
    peak: usize,
    trim_at: Option<Instant>,
    /// Client access rules.
    acl: Vec<tcprelay_plan::AclRule>,
    /// Clients the access rules turned away.
    denied: u64,
    /// Connections a PROXY-accepting listener closed (untrusted peer, bad or late
    /// header): this worker's part of the `proxy_refused` counters.
    refused_proxy: u64,
    /// Where this worker counts for the relay-wide counters (`None`: nowhere).
    counting: Option<super::Counting>,
    /// Whether sessions get connection records (`connection log`).
    records: bool,
    /// This process's id, the first part of the session ids in records.
    pid: u32,
    /// Each listener's address as records name it, in plan order.
    listener_names: Vec<String>,
    /// The dead mark the counters hold for each remote (see `sync_dead_marks`).
    dead_counted: Vec<bool>,
    /// Each listener's `accept proxy` (plan order).
    accept_proxy: Vec<Option<tcprelay_plan::AcceptProxy>>,
    /// Each listener's `dscp` (plan order), for the remote sockets of its sessions,
    /// and `tcp bufsize`, for every remote socket.
    dscp: Vec<Option<u8>>,
    tcp_bufsize: Option<u32>,
    /// The peers whose PROXY refusals were logged (once each).
    proxy_refused: proxy::RefusedPeers,
    /// Client affinity (`None`: no listener is sticky).
    sticky: Option<sticky::Affinity>,
    /// The remotes found by DNS, followed (`None`: the plan has none).
    discovery: Option<discovery::Follow>,
    /// Routing by SNI (`None`: the relay has no routes).
    routing: Option<Box<sni::Routing>>,
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
        let idle_release = options.idle_release.unwrap_or_else(|| {
            // Seconds.
            duration_from_env("TCPRELAY_IDLE_RELEASE", Duration::from_secs, IDLE_RELEASE)
        });
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
        let accept_proxy: Vec<_> = config
            .listeners
            .iter()
            .map(|l| l.accept_proxy.clone())
            .collect();
        let listener_names: Vec<String> = config
            .listeners
            .iter()
            .map(|l| {
                l.socket
                    .as_ref()
                    .map_or_else(|| "(not bound)".into(), describe)
            })
            .collect();
        let dscp = config.listeners.iter().map(|l| l.dscp).collect();
        let sticky = sticky::Affinity::new(config.sticky, &config.listeners);
        for listener in config.listeners {
            // Not bound yet (`bind retry delay`): the master forks new workers when
            // it is.
            let Some(socket) = listener.socket else {
                listeners.push(None);
                continue;
            };
            if listener.tls
                && config.tls.is_none()
                && tcprelay_plan::sni::section_certificate_needed(&config.relay)
            {
                crate::error!(
                    "worker {}: no TLS context; listener {} not served",
                    config.id,
                    describe(&socket)
                );
                listeners.push(None);
                continue;
            }
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
                tls_versions: listener.tls_versions,
                tls_auto: listener.tls_auto,
            }));
        }
        tls_stream::set_handshake_limit(options.max_handshakes.unwrap_or_else(|| {
            std::env::var("TCPRELAY_MAX_HANDSHAKES")
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .filter(|n| *n > 0)
                .unwrap_or(tls_stream::MAX_HANDSHAKES)
        }));
        let relay = config.relay;
        let relay_remotes_len = relay.remotes.len();
        let discovered = relay.discovered.clone();
        let discovery = config
            .discovery
            .map(|table| discovery::Follow::new(table, relay_remotes_len, discovered));
        let session_base = FIRST_LISTENER + listeners.len();
        let mut balancer = Balancer::new(relay.remotes.iter().map(|r| r.weight), relay.rebalance);
        balancer.hash_by_source(
            relay
                .remotes
                .iter()
                .map(|r| tcprelay_plan::balance::remote_key(&r.key())),
        );
        let remote_tls = remote_tls::client_contexts(config.id, &relay.remotes);
        let routing = sni::Routing::new(&relay, config.route_tls);
        if routing.is_some() {
            balancer.route_by(relay.remotes.iter().map(|r| r.route).collect());
        }
        if let Some(steering) = config.steering {
            if let Some(health) = steering.health {
                balancer.follow_health(health, steering.slots.clone());
            }
            balancer.steer(steering.table, steering.slots);
        }
        Ok(Worker {
            id: config.id,
            rearms: poller.rearms(),
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
            balancer,
            balance: relay.balance,
            unsupported_logged: vec![false; relay.remotes.len()],
            remotes: relay.remotes,
            local_address: relay.local_address,
            give_up_logged: false,
            port_waiting: VecDeque::new(),
            port_retry_at: None,
            no_port_logged: false,
            failing: Vec::new(),
            failing_at: None,
            users_max: capacity.sessions,
            pipes: Pipes::new(capacity.pipes),
            retire: relay.retire.filter(|n| *n > 0),
            silent_timeout: (relay.silent_timeout > 0)
                .then(|| Duration::from_secs(u64::from(relay.silent_timeout))),
            idle_timeout: (relay.idle_timeout > 0)
                .then(|| Duration::from_secs(u64::from(relay.idle_timeout))),
            half_close_timeout: (relay.half_close_timeout > 0)
                .then(|| Duration::from_secs(u64::from(relay.half_close_timeout))),
            served: 0,
            full: false,
            starved: None,
            backoff: BACKOFF_MIN,
            starve_logged: false,
            exit: None,
            grace_at: None,
            idle_at: Some(Instant::now() + idle_release),
            idle_release,
            sweep_at: None,
            again: VecDeque::new(),
            expired: Vec::new(),
            probe: options.probe,
            // How long a connect to a remote may take before the remote counts as
            // failed and the session fails over (`connect timeout`, 10 s by default).
            connect_timeout: options
                .connect_timeout
                .unwrap_or(Duration::from_secs(u64::from(relay.connect_timeout))),
            reported_dead: vec![false; relay_remotes_len],
            tls: config.tls,
            remote_tls,
            handshake_timeout: options
                .handshake_timeout
                .unwrap_or(Duration::from_secs(u64::from(relay.tls_handshake_timeout))),
            tls_failures: 0,
            handshake_queue: VecDeque::new(),
            peak: 0,
            trim_at: None,
            acl: config.acl,
            denied: 0,
            refused_proxy: 0,
            counting: config.counting,
            records: relay.connection_log,
            pid: std::process::id(),
            listener_names,
            dead_counted: vec![false; relay_remotes_len],
            accept_proxy,
            dscp,
            tcp_bufsize: config.tcp_bufsize,
            proxy_refused: proxy::RefusedPeers::default(),
            sticky,
            discovery,
            routing,
            share: config.place.map(|place| Share {
                place,
                users_min: config.users_min as usize,
                defer_check: options.defer_check.unwrap_or_else(|| {
                    // Milliseconds.
                    duration_from_env("TCPRELAY_DEFER_CHECK", Duration::from_millis, DEFER_CHECK)
                }),
                deferring: None,
                overdue: false,
                alone_until: None,
            }),
        })
    }

    /// Runs until drained, stopped or orphaned, and idle.
    pub fn run(mut self) -> io::Result<Exit> {
        let mut events = Vec::with_capacity(EVENTS);
        // On the board from the start: the others leave clients to an idle worker.
        self.publish_load();
        loop {
            if let Some(exit) = self.exit {
                // Hand-offs still waiting for the master are served here, not
                // closed with the control socket.
                let waiting = self.link.take_waiting();
                if !waiting.is_empty() {
                    for (listener, fd) in waiting {
                        self.take_handed(listener as usize, true, fd);
                    }
                    continue;
                }
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
            self.admit_handshakes();
            self.run_timers();
            self.give_back_memory();
            self.rearm_link();
            self.publish_load();
            self.report_probe();
        }
    }

    fn poll_timeout(&self) -> Option<Duration> {
        if !self.again.is_empty() {
            return Some(Duration::ZERO);
        }
        // A connection left to another worker: polled for without sleeping at first
        // (the other may fill up before it takes it), then at the deferral's check.
        let deferral = self
            .share
            .as_ref()
            .and_then(|s| s.deferring.map(|(since, _)| (since, s.defer_check)));
        if let Some((since, _)) = deferral {
            if self.now < since + DEFER_SPIN {
                return Some(Duration::ZERO);
            }
        }
        let next = [
            deferral.map(|(since, check)| since + check),
            self.sweep_at,
            self.port_retry_at,
            self.routing.as_ref().and_then(|r| r.retry_at),
            self.failing_at,
            self.grace_at,
            self.starved.map(|s| s.until),
            self.idle_at,
            self.trim_at,
        ]
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
}

/// A time from the environment variable `name`, a whole number of at least 1 in
/// the unit `unit` makes (`Duration::from_secs`, `from_millis`); else `default`.
fn duration_from_env(name: &str, unit: fn(u64) -> Duration, default: Duration) -> Duration {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|n| *n > 0)
        .map_or(default, unit)
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
/// what its blocked operations wait for. Not called for the edge-triggered pollers
/// (epoll, kqueue, io_uring), whose `rearm` does nothing (`Worker::rearms`).
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
            Why::Silent => f.write_str("silent timeout: nothing was sent either way"),
            Why::NoRemote => f.write_str("no remote reachable"),
            Why::NoLocalPort => f.write_str("no free local port to connect from"),
            Why::Stopped => f.write_str("stopped"),
            Why::Local(error) => write!(f, "local error: {error}"),
            Why::Handshake(error) => write!(f, "TLS handshake failed: {error}"),
            Why::HandshakeTimeout => f.write_str("TLS handshake timed out"),
            Why::HalfClose => f.write_str("half-close timeout"),
            Why::DrainOver => f.write_str("drain over after a reload"),
            Why::Refused => f.write_str("refused"),
            Why::Sni => f.write_str("refused by routing by SNI"),
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
