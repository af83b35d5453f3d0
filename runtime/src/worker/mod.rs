//! A worker: one single-threaded event loop that accepts clients, picks a remote for
//! each (weighted least-connections with failover) and relays bytes both ways.
//!
//! The same [`run`] serves a forked worker process and a thread (the tests run it
//! in threads); it creates its own poller (epoll through mio by default, or what
//! `IO_POLL_MECHANISM` selects), so in a process it must be called after the fork.
//!
//! In short: reserved tokens for the control socket, the signal pipe and each
//! listener, two tokens per session (client, remote) over a slab; sessions are state
//! enums (`[ProxyHeader →] [TlsHandshake →] Connecting → Relaying → HalfClosed [→ Failing] →
//! Closed`) driven by
//! edge-triggered readiness they track themselves; bytes pass through one 64 KiB
//! scratch buffer per worker, and only what a slow side did not take is kept (so an
//! idle session holds no buffer); handshake, connect and idle timeouts are checked
//! by a 1-second sweep that only runs while something can time out.
//!
//! | module        | what it holds                                                  |
//! |---------------|----------------------------------------------------------------|
//! | `server`      | the event loop: tokens, accepting, failover, timers, master    |
//! | `session`     | one relayed connection as a state machine                      |
//! | `acl`         | the clients' access rules: the plan crate's `route` decisions  |
//! | `balance`     | remote selection, pure logic                                   |
//! | `transport`   | the byte-stream trait the relay is written against             |
//! | `socket`      | the kernel streams (TCP, SCTP, Unix) behind that trait         |
//! | `tls_stream`  | TLS termination: an OpenSSL stream over such a socket          |
//! | `stream`      | a session's side: a plain socket or a TLS stream               |
//! | `connect`     | opening an outgoing connection (TCP/SCTP, local address)       |
//! | `buffer`      | the scratch buffer and the per-direction remainder             |
//! | `link`        | the worker's end of the control socket                         |
//! | `poller`      | the event mechanism: epoll/kqueue (mio), poll(2) or select(2)  |

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tcprelay_plan::Relay;

mod acl;
mod balance;
mod buffer;
mod connect;
mod limits;
mod link;
mod poller;
mod server;
mod session;
mod socket;
mod splice;
mod stream;
mod tls_stream;
mod transport;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tls_tests;

pub use poller::Mechanism;
pub use session::Cause;
pub use tls_stream::HANDSHAKE_TIMEOUT;

/// A listening socket handed to a worker (inherited across the fork).
#[derive(Debug)]
pub enum ListenSocket {
    Tcp(mio::net::TcpListener),
    Unix(mio::net::UnixListener),
}

/// One listener with what the worker needs to know about it.
#[derive(Debug)]
pub struct Listener {
    /// `None`: the master could not bind it yet (`bind retry delay`); the worker
    /// keeps its place, so that listener `i` is the plan's listener `i`.
    pub socket: Option<ListenSocket>,
    /// `tls = yes`: TLS is terminated here, with [`Config::tls`].
    pub tls: bool,
    /// The TLS versions accepted (empty: 1.2 and 1.3) and `tls = auto`.
    pub tls_versions: Vec<tcprelay_plan::TlsVersion>,
    pub tls_auto: bool,
    /// `accept proxy`: every client starts with a PROXY protocol header.
    pub accept_proxy: Option<tcprelay_plan::AcceptProxy>,
    /// `dscp`: set on the remote socket of its sessions too (the client's socket
    /// inherits it from the listening socket).
    pub dscp: Option<u8>,
}

impl Listener {
    /// A listener of `socket` with nothing but plain TCP (tests).
    #[cfg(test)]
    pub(crate) fn plain(socket: ListenSocket) -> Listener {
        Listener {
            socket: Some(socket),
            tls: false,
            tls_versions: Vec::new(),
            tls_auto: false,
            accept_proxy: None,
            dscp: None,
        }
    }
}

/// Everything a worker runs with.
#[derive(Debug)]
pub struct Config {
    /// The worker's number, for logs.
    pub id: u32,
    pub relay: Relay,
    /// `users max`: the worker stops accepting at this many sessions.
    pub users_max: u32,
    /// `users min`: below this many sessions the worker takes every new connection
    /// it sees; from it on, it leaves one to a worker with clearly fewer sessions.
    pub users_min: u32,
    /// Its seat on the load board shared with the other workers (`None`: it
    /// accepts as if alone).
    pub place: Option<crate::board::Place>,
    /// Where it counts for the relay-wide counters (`None`: nothing is counted).
    pub counting: Option<Counting>,
    /// The operators' steering of remotes it follows (`None`: none).
    pub steering: Option<Steering>,
    /// Client affinity (`sticky cache`; `None`: no listener is sticky).
    pub sticky: Option<Sticky>,
    /// The spawnd section's client access rules (empty: everyone).
    pub acl: Vec<tcprelay_plan::AclRule>,
    pub listeners: Vec<Listener>,
    /// `tcp bufsize`: both buffer sizes of every remote socket (the client's
    /// socket inherits them from the listening socket).
    pub tcp_bufsize: Option<u32>,
    /// The worker's end of the control socket pair (see [`crate::control`]).
    pub control: mio::net::UnixStream,
    /// Signals delivered to this process, one byte (the signal number) each, when
    /// the worker is a process of its own; `None` when it runs as a thread in tests.
    pub signals: Option<mio::unix::pipe::Receiver>,
    /// The remotes found by DNS for `relay.discovered` (`crate::discovery`),
    /// followed at each selection (`None`: the plan has no discovered names).
    pub discovery: Option<crate::discovery::Table>,
    /// The TLS server context for listeners with `tls = yes` (built by the master
    /// and inherited across the fork; `None` when no listener needs it).
    pub tls: Option<openssl::ssl::SslContext>,
    /// Each SNI route's own server context (plan order; `None`: the route passes
    /// TLS through or terminates with [`Config::tls`]), built by the master.
    pub route_tls: Vec<Option<openssl::ssl::SslContext>>,
}

/// A worker's part of the relay-wide counters: its seat's counters and the slots of
/// its plan's listeners and remotes (in the plan's order).
#[derive(Clone)]
pub struct Counting {
    pub counters: crate::stats::Counters,
    pub slots: crate::stats::Slots,
}

impl std::fmt::Debug for Counting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counting")
            .field("slots", &self.slots)
            .finish()
    }
}

/// The relay-wide steering of remotes (`crate::steering`) and the slot of each of
/// the plan's remotes in it (plan order).
#[derive(Debug, Clone)]
pub struct Steering {
    pub table: crate::steering::Table,
    pub slots: Vec<usize>,
    /// The remotes' health as the checks find it (same slots; `None`: not shared).
    pub health: Option<crate::health::Table>,
}

/// Client affinity (`crate::sticky`): the relay-wide table, the region each
/// listener's clients use (plan order; `None`: that listener is not sticky), the
/// `stats` slot of each remote (plan order; a remote without one, or in the
/// overflow slot 0, is never remembered), and the seat and generation this worker
/// writes in the entries.
#[derive(Debug, Clone)]
pub struct Sticky {
    pub table: crate::sticky::Table,
    pub regions: Vec<Option<crate::sticky::Region>>,
    pub slots: Vec<usize>,
    pub seat: Option<usize>,
    pub generation: u64,
}

/// Why a worker's loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Drained (by the master, SIGHUP or retire) and idle.
    Drained,
    /// The master went away and the last session ended.
    MasterGone,
    /// Stopped (SIGTERM/SIGINT or `ToWorker::Stop`).
    Stopped,
}

/// Runs the worker's loop until it exits.
///
/// Errors are only those of setting up the poll or of the poll itself; errors of a
/// session close that session.
pub fn run(config: Config) -> std::io::Result<Exit> {
    server::Worker::new(config, Options::default())?.run()
}

/// What a worker reports about itself after every turn of its loop when observed
/// (tests and measurements): its session count and the user-space buffer bytes its
/// sessions hold.
#[derive(Debug, Default)]
pub(crate) struct Probe {
    pub sessions: AtomicUsize,
    pub buffered: AtomicUsize,
    pub max_buffered: AtomicUsize,
    pub turns: AtomicUsize,
    /// TLS handshakes that failed (garbage, alerts) or timed out.
    pub tls_failures: AtomicUsize,
    /// Pipes made for splicing so far, and lent to sessions now.
    pub pipes_created: AtomicUsize,
    pub pipes_in_use: AtomicUsize,
    /// TLS handshakes under way (each with its OpenSSL connection), and the most
    /// seen at the end of a turn.
    pub handshakes: AtomicUsize,
    pub max_handshakes: AtomicUsize,
    /// TLS handshakes started so far (an OpenSSL connection made for each): unlike
    /// the two above, a handshake that begins and ends within one turn counts.
    pub handshakes_started: AtomicUsize,
}

impl Probe {
    fn record(&self, sessions: usize, buffered: usize, pipes: &splice::Pipes) {
        self.pipes_created
            .store(pipes.created as usize, Ordering::Relaxed);
        self.pipes_in_use.store(pipes.in_use(), Ordering::Relaxed);
        let handshakes = tls_stream::handshakes_under_way();
        self.handshakes.store(handshakes, Ordering::Relaxed);
        self.max_handshakes.fetch_max(handshakes, Ordering::Relaxed);
        self.handshakes_started
            .store(tls_stream::handshakes_started(), Ordering::Relaxed);
        self.sessions.store(sessions, Ordering::Relaxed);
        self.buffered.store(buffered, Ordering::Relaxed);
        self.max_buffered.fetch_max(buffered, Ordering::Relaxed);
        self.turns.fetch_add(1, Ordering::Relaxed);
    }
}

/// Knobs for observing and testing a worker; the defaults are production's.
#[derive(Debug, Default)]
pub(crate) struct Options {
    /// Reported to after every turn of the loop.
    pub probe: Option<Arc<Probe>>,
    /// Replaces the plan's `connect timeout` (tests use a shorter one than a second).
    pub connect_timeout: Option<std::time::Duration>,
    /// Replaces the plan's `tls handshake timeout` (tests use a short one).
    pub handshake_timeout: Option<std::time::Duration>,
    /// Replaces how many TLS handshakes run at once (`TCPRELAY_MAX_HANDSHAKES`,
    /// default [`tls_stream::MAX_HANDSHAKES`]).
    pub max_handshakes: Option<usize>,
    /// Replaces the idle-release time (`TCPRELAY_IDLE_RELEASE`, default
    /// [`server::IDLE_RELEASE`]) after which a worker with no session says so.
    pub idle_release: Option<std::time::Duration>,
    /// Replaces how long a connection left to a less loaded worker may wait before
    /// this one checks (`TCPRELAY_DEFER_CHECK`, default [`server::DEFER_CHECK`]).
    pub defer_check: Option<std::time::Duration>,
    /// Replaces the mechanism `IO_POLL_MECHANISM` selects (tests run every one
    /// without touching the environment, which parallel tests share).
    pub mechanism: Option<Mechanism>,
}

/// [`run`] with [`Options`].
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn run_with(config: Config, options: Options) -> std::io::Result<Exit> {
    server::Worker::new(config, options)?.run()
}
