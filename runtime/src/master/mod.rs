//! The master process, as spawnd: it owns the listening sockets, forks and supervises
//! the workers, scales them between `servers min` and `servers max`, and handles the
//! signals.
//!
//! Hand-off: workers accept on the listening sockets they inherit (see
//! ARCHITECTURE.md for the measurement behind this choice). A worker that is full
//! stops accepting, so connections wait in the kernel's queue for a worker with room.
//!
//! Lifecycle:
//! - start: plan loaded and validated → TLS context built (certificate, key,
//!   passphrase) → listeners bound → daemon/pidfile → privileges dropped →
//!   `servers min` workers forked → systemd told `READY=1` (`crate::notify`; a reload
//!   is `RELOADING=1` then `READY=1` whatever its outcome, a stop `STOPPING=1`);
//! - SIGHUP: the plan is re-read and its TLS context built (a bad plan or TLS
//!   material is logged and the running one kept), the listeners re-bound
//!   (sockets of unchanged addresses kept open, so no queued connection is lost),
//!   a new generation of workers forked, and only then the old generation told to
//!   drain: they stop accepting, finish their sessions, exit;
//! - SIGCHLD: workers are reaped; an active worker that died is replaced;
//! - SIGTERM/SIGINT: workers stop gracefully (sessions get a grace period), then the
//!   master exits;
//! - a worker whose master dies sees end of file on its control socket and drains.
//!
//! This file holds the master's state, its set-up and the loop; the handlers are
//! `impl Master` blocks by concern: `workers` (forking, becoming a worker in the
//! child, scaling up, `servers min`, reaping and replacing), `frames` (the control
//! sockets: frames to a worker, the workers' reports), `overload` (every worker full:
//! backlogs, shedding), `reload` (SIGHUP: a new generation, the old one drains) and
//! `signals` (their dispatch, the SIGUSR1 status, the graceful stop).

use crate::args::PlanSource;
use crate::board::Board;
use crate::listen::{self, Bound};
use crate::load;
use crate::notify::Notify;
use crate::os;
use crate::stats;
use crate::{error, info, warn};
use mio::net::UnixStream;
use mio::{Events, Interest, Poll, Token};
use std::collections::HashMap;
use std::io;
use std::time::{Duration, Instant};
use tcprelay_plan::Plan;

mod admin;
mod bind_retry;
mod brake;
mod checker;
mod ctl;
mod frames;
mod handoff;
mod metrics;
mod overload;
mod reload;
mod resolver;
mod sessions;
mod signals;
mod workers;

/// Seconds a graceful stop lets sessions finish.
pub const STOP_GRACE_SECS: u32 = 30;

const SIGNALS: &[libc::c_int] = &[
    libc::SIGHUP,
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGCHLD,
    libc::SIGUSR1,
];
const SIGNAL_TOKEN: Token = Token(usize::MAX);
/// Listener `i`, watched by the master while it sheds connections (`overload =
/// close|reset`), has token `LISTENER_TOKENS - i`.
const LISTENER_TOKENS: usize = usize::MAX - 1;
/// The control socket's tokens: its listener, then one per client
/// ([`crate::ctl::server::TOKENS`] in all). Workers' tokens count up from 0 and the
/// listeners' down from [`LISTENER_TOKENS`]: neither comes near the middle.
const CTL_TOKENS: Token = Token(usize::MAX / 2);
/// The metrics endpoint's tokens, after the control socket's ([`metrics::TOKENS`]).
const METRICS_TOKENS: Token = Token(usize::MAX / 2 + crate::ctl::server::TOKENS);
/// At most one overload warning in this time.
const OVERLOAD_LOG_EVERY: Duration = Duration::from_secs(10);

/// The master's view of one worker.
#[derive(Debug)]
struct Worker {
    pid: libc::pid_t,
    generation: u64,
    control: UnixStream,
    /// Frames and payloads read so far, reassembled.
    reader: crate::control::Reader,
    sessions: u32,
    full: bool,
    /// Told to drain, retiring, or drained: it takes no new sessions and is not
    /// replaced when it exits.
    leaving: bool,
    /// It reported being stopped (SIGTERM/SIGINT or `ToWorker::Stop`).
    stopped: bool,
    /// Its seat on the load board, freed when its control socket closes (it has
    /// ended) or it is reaped.
    seat: Option<usize>,
}

/// The master's state.
pub struct Master {
    plan: Plan,
    /// The TLS server context of the current generation (inherited by its workers).
    tls: Option<openssl::ssl::SslContext>,
    /// The certificates the current generation's TLS contexts were built with (the
    /// control socket's `plan` answer).
    certificates: crate::tls_context::Certificates,
    /// Each SNI route's own server context (`tls_context::PlanTls::routes`).
    route_tls: Vec<Option<openssl::ssl::SslContext>>,
    generation: u64,
    listeners: Vec<Bound>,
    /// Listeners whose bind failed, tried again every `bind retry delay`
    /// (`bind_retry.rs`).
    pending: Vec<listen::Pending>,
    workers: HashMap<Token, Worker>,
    next_token: usize,
    poll: Poll,
    signals: mio::unix::pipe::Receiver,
    /// Where the plan comes from, read again on SIGHUP.
    source: PlanSource,
    /// The processors this process may run on, read once at start (finding out
    /// reads the cgroup's files): the automatic `servers min` and `max` follow it.
    processors: u32,
    /// A reload's compile still running (the master supervises meanwhile), and
    /// whether another SIGHUP came during it (a reload follows this one).
    compiling: Option<load::Compile>,
    reload_again: bool,
    stopping: bool,
    /// Recent unexpected worker deaths, to slow down a crash loop.
    deaths: Vec<Instant>,
    /// Spawning held back until then (crash-loop brake, or a worker stopped by a
    /// signal not meant for the master alone); then `servers min` is restored.
    spawn_after: Option<Instant>,
    /// Where the workers publish their load to share new connections evenly
    /// (`None` if the shared memory could not be made: they accept as if alone).
    board: Option<Board>,
    /// Every worker is full and no other may start: the listeners use their
    /// `overload backlog`, and with `overload = close|reset` the master accepts and
    /// sheds what comes in.
    overloaded: bool,
    /// Connections shed since the last "room again" notice.
    shed: u64,
    /// When the last "every worker is full" warning was logged, and whether the
    /// current overload is the one it was for: a service at capacity fills and frees
    /// a worker with every connection, and one warning per [`OVERLOAD_LOG_EVERY`]
    /// says it.
    overload_logged: Option<Instant>,
    overload_episode_logged: bool,
    /// systemd's notification socket (`Type=notify`), if the master runs under it.
    notify: Notify,
    /// The relay-wide counters (`None` if the shared memory could not be made: then
    /// nothing is counted), the slots the current plan counts in, and those of the
    /// plans of older generations, released when their last worker is reaped.
    stats: Option<stats::Registry>,
    slots: stats::Slots,
    old_slots: Vec<(u64, stats::Slots)>,
    /// The operators' steering of remotes (`admin`; `None` if the shared memory
    /// could not be made: then remotes cannot be steered).
    steering: Option<crate::steering::Table>,
    /// Client affinity (`sticky cache`): the shared table (`None` if the shared
    /// memory could not be made: then no client is sticky).
    sticky: Option<crate::sticky::Table>,
    /// The remotes' health checks: the shared table and the checker process.
    checks: checker::Checks,
    /// DNS discovery of the current generation (its table and resolver), a
    /// reload's waiting for its first answers, the one a reload is installing,
    /// and the resolvers told to stop or gone and not reaped yet (pid, expected).
    discovery: resolver::Discovery,
    resolving: Option<resolver::PendingReload>,
    incoming: Option<resolver::Discovery>,
    resolvers_leaving: Vec<(libc::pid_t, bool)>,
    /// `sessions` queries waiting for the workers' answers (`sessions`).
    gatherings: sessions::Gatherings,
    /// Old generations draining after reloads, oldest first, with their deadlines
    /// (`reload.rs`).
    drains: Vec<reload::Drain>,
    /// When the master started (uptime, `tcprelay_start_time_seconds`).
    started: Instant,
    started_at: std::time::SystemTime,
    /// The running plan's hash ([`ctl::plan_hash`]).
    plan_hash: String,
    /// The control socket (`None`: `control = no`, or none could be had), and the
    /// one a reload replaced, kept until the reload's waiters are answered.
    ctl: Option<crate::ctl::ControlServer>,
    old_ctl: Option<crate::ctl::ControlServer>,
    /// `tcprelay ctl reload` clients waiting for the reload under way to end.
    reload_waiters: Vec<crate::ctl::ClientId>,
    /// The metrics endpoint, when the plan has one.
    metrics: Option<metrics::MetricsServer>,
    /// Reloads refused since start.
    reloads_failed: u64,
    /// While stopping: when the workers' grace ends.
    stop_deadline: Option<Instant>,
}

impl std::fmt::Debug for Master {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Master")
            .field("generation", &self.generation)
            .field("workers", &self.workers.len())
            .finish()
    }
}

impl Master {
    /// Binds the plan's listeners and sets up signal handling; forks nothing yet.
    /// `tls` is the plan's TLS material ([`crate::tls_context::for_plan`]), built by the
    /// caller before this, so that bad TLS material fails before anything is bound.
    pub fn new(
        plan: Plan,
        tls: crate::tls_context::PlanTls,
        source: PlanSource,
        notify: Notify,
    ) -> Result<Master, String> {
        let defaults = listen::Defaults::of(&plan.spawnd);
        let listen::Listeners {
            bound: listeners,
            pending,
        } = listen::bind_all(
            &plan.spawnd.listeners,
            &defaults,
            &defaults,
            &mut Vec::new(),
        )?;
        bind_retry::log_pending(&pending);
        let poll = Poll::new().map_err(|e| format!("cannot create the event loop: {e}"))?;
        let mut signals =
            os::signal_pipe(SIGNALS).map_err(|e| format!("cannot set up signals: {e}"))?;
        poll.registry()
            .register(&mut signals, SIGNAL_TOKEN, Interest::READABLE)
            .map_err(|e| format!("cannot watch signals: {e}"))?;
        let board = Board::new()
            .inspect_err(|e| {
                warn!("cannot share memory between workers ({e}): each accepts as if alone")
            })
            .ok();
        let mut stats = stats::Registry::new()
            .inspect_err(|e| {
                warn!("cannot share memory for the counters ({e}): nothing is counted")
            })
            .ok();
        let slots = stats
            .as_mut()
            .map(|registry| registry.assign(&plan))
            .unwrap_or_default();
        let metrics = metrics::bind(plan.spawnd.metrics.as_ref())?;
        let control = ctl::bind(plan.spawnd.control.as_ref())?;
        let plan_hash = ctl::plan_hash(&plan);
        let discovery = resolver::Discovery::new(&plan);
        let mut master = Master {
            plan,
            tls: tls.server,
            route_tls: tls.routes,
            certificates: tls.certificates,
            generation: 1,
            listeners,
            pending,
            workers: HashMap::new(),
            next_token: 0,
            poll,
            signals,
            source,
            processors: processors(),
            compiling: None,
            reload_again: false,
            stopping: false,
            deaths: Vec::new(),
            spawn_after: None,
            board,
            overloaded: false,
            shed: 0,
            overload_logged: None,
            overload_episode_logged: false,
            notify,
            stats,
            slots,
            old_slots: Vec::new(),
            steering: crate::steering::Table::new()
                .inspect_err(|e| {
                    warn!("cannot share memory for steering remotes ({e}): drain, enable and weight are unavailable")
                })
                .ok(),
            sticky: crate::sticky::Table::new()
                .inspect_err(|e| {
                    warn!("cannot share memory for the sticky cache ({e}): clients are not sticky")
                })
                .ok(),
            checks: checker::Checks::new(),
            discovery,
            resolving: None,
            incoming: None,
            resolvers_leaving: Vec::new(),
            gatherings: sessions::Gatherings::default(),
            drains: Vec::new(),
            started: Instant::now(),
            started_at: std::time::SystemTime::now(),
            plan_hash,
            ctl: control,
            old_ctl: None,
            reload_waiters: Vec::new(),
            metrics,
            reloads_failed: 0,
            stop_deadline: None,
        };
        master.sticky_layout();
        master.register_ctl()?;
        master.register_metrics()?;
        Ok(master)
    }

    /// The addresses actually bound (ports chosen by the OS resolved), for logs.
    fn bound_addresses(&self) -> Vec<String> {
        self.listeners.iter().map(listen::Bound::describe).collect()
    }

    /// `servers min` and `servers max` on this machine (see
    /// `tcprelay_plan::Spawnd::workers`).
    fn servers_min(&self) -> u32 {
        self.plan.spawnd.workers(self.processors).0
    }

    fn servers_max(&self) -> u32 {
        self.plan.spawnd.workers(self.processors).1
    }

    fn active(&self) -> impl Iterator<Item = &Worker> {
        self.workers.values().filter(|w| !w.leaving)
    }

    /// Runs until stopped; returns the exit code.
    pub fn run(mut self) -> i32 {
        // The discovered remotes' first addresses, before any worker selects.
        if let Err(e) = self.first_resolution() {
            error!("{e}");
            self.stop_resolvers();
            return 1;
        }
        info!(
            "started: listening on {}; {} remote(s); workers {}..{}",
            self.bound_addresses().join(", "),
            self.plan.relay.remotes.len(),
            self.servers_min(),
            self.servers_max()
        );
        self.set_title();
        for _ in 0..self.servers_min() {
            self.spawn();
        }
        self.start_checker();
        let status = format!(
            "generation {}: listening on {}; {} remote(s); {} worker(s)",
            self.generation,
            self.bound_addresses().join(", "),
            self.plan.relay.remotes.len(),
            self.workers.len()
        );
        self.notify.ready(&status);
        let mut events = Events::with_capacity(256);
        loop {
            if self.stopping && self.workers.is_empty() {
                info!("stopped");
                return 0;
            }
            let wake = [
                self.spawn_after,
                self.compiling.as_ref().map(load::Compile::deadline),
                self.sessions_deadline(),
                self.next_drain_deadline(),
                self.ctl.as_ref().and_then(|c| c.next_deadline()),
                self.metrics_deadline(),
                self.checks.restart_at,
                self.next_bind_retry(),
                self.resolver_deadline(),
            ];
            let timeout = wake
                .into_iter()
                .flatten()
                .min()
                .map(|t| t.saturating_duration_since(Instant::now()));
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    error!("event loop failed: {e}");
                    return 1;
                }
            }
            // Signals before anything else of the round, a stop before the rest: a
            // SIGTERM to the whole process group reaches the workers too, and their
            // exits (a closed control socket in this round's events, a SIGCHLD) must
            // be read as the stop's, not as deaths to replace.
            let mut signals = os::read_signals(&mut self.signals);
            signals.sort_by_key(|&signal| !matches!(signal, libc::SIGTERM | libc::SIGINT));
            for signal in signals {
                self.on_signal(signal);
            }
            for event in events.iter() {
                let token = event.token();
                if token == SIGNAL_TOKEN {
                    // Read above.
                } else if self.ctl.as_ref().is_some_and(|c| c.owns(token)) {
                    self.on_ctl_event(token);
                } else if self.owns_resolver(token) {
                    self.on_resolver_event(token);
                } else if self.owns_metrics(token) {
                    self.on_metrics_event(token);
                } else if token.0 <= LISTENER_TOKENS
                    && LISTENER_TOKENS - token.0 < self.listeners.len()
                {
                    self.shed_from(LISTENER_TOKENS - token.0);
                } else {
                    self.on_control(token);
                }
            }
            self.sweep_ctl();
            self.sweep_metrics();
            if self.spawn_after.is_some_and(|t| t <= Instant::now()) {
                self.spawn_after = None;
                self.ensure_minimum();
            }
            if let Some(compile) = self
                .compiling
                .as_mut()
                .filter(|c| c.deadline() <= Instant::now())
            {
                // Its exit, reaped, reports the timeout.
                compile.kill();
            }
            self.checker_due();
            self.resolver_due();
            self.retry_binds();
            self.sessions_due();
            let due = self.overload_due();
            self.set_overload(due);
            self.expire_drains();
        }
    }
}

impl Master {
    /// The master's process title: `tcprelay: master gen N`.
    fn set_title(&self) {
        let prefix = self.plan.spawnd.proctitle.as_deref();
        os::set_title(prefix, &format!("master gen {}", self.generation));
    }
}

/// The processors this process may run on.
fn processors() -> u32 {
    std::thread::available_parallelism().map_or(2, |n| u32::try_from(n.get()).unwrap_or(u32::MAX))
}

impl Master {
    /// A worker has ended (its control socket closed, or it was reaped): its board
    /// seat is free again, and its counters are folded into the relay's totals before
    /// another worker can take the seat; the worker's session count becomes what the
    /// board says it held when it went.
    fn free_seat(&mut self, token: Token) {
        let Some(w) = self.workers.get_mut(&token) else {
            return;
        };
        let Some(seat) = w.seat.take() else {
            return;
        };
        if let Some(board) = &self.board {
            w.sessions = board.vacate(seat);
        }
        if let Some(registry) = &mut self.stats {
            registry.fold(seat);
        }
    }

    /// Releases the counter slots of old generations none of whose workers is left.
    fn release_old_slots(&mut self) {
        let workers = &self.workers;
        let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.old_slots)
            .into_iter()
            .partition(|(generation, _)| !workers.values().any(|w| w.generation == *generation));
        self.old_slots = kept;
        if let Some(registry) = &mut self.stats {
            for (_, slots) in gone {
                registry.release(&slots);
            }
        }
    }
}

impl Master {
    /// The regions of the plan's sticky caches, and a warning when they had to be
    /// made smaller to fit the shared table.
    fn sticky_regions(&self) -> (Vec<Option<crate::sticky::Region>>, bool) {
        let listeners: Vec<_> = self
            .plan
            .spawnd
            .listeners
            .iter()
            .map(|l| l.sticky)
            .collect();
        crate::sticky::layout(self.plan.spawnd.sticky, &listeners)
    }

    /// Logs once per plan (at start and at each reload) when its sticky caches
    /// hold more entries than the shared table.
    fn sticky_layout(&self) {
        if self.sticky.is_some() && self.sticky_regions().1 {
            warn!(
                "the sticky caches ask for more than the {} entries the shared table holds: each gets its share",
                crate::sticky::CAPACITY
            );
        }
    }

    /// A new worker's part of the client affinity, in board seat `seat`.
    fn worker_sticky(&self, seat: Option<usize>) -> Option<crate::worker::Sticky> {
        let (regions, _) = self.sticky_regions();
        if regions.iter().all(Option::is_none) {
            return None;
        }
        Some(crate::worker::Sticky {
            table: self.sticky.clone()?,
            regions,
            slots: self.slots.remotes.iter().map(|s| s.index()).collect(),
            seat,
            generation: self.generation,
        })
    }
}
