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
//!   `servers min` workers forked;
//! - SIGHUP: the plan is re-read and its TLS context built (a bad plan or TLS
//!   material is logged and the running one kept), the listeners re-bound
//!   (sockets of unchanged addresses kept open, so no queued connection is lost),
//!   a new generation of workers forked, and only then the old generation told to
//!   drain: they stop accepting, finish their sessions, exit;
//! - SIGCHLD: workers are reaped; an active worker that died is replaced;
//! - SIGTERM/SIGINT: workers stop gracefully (sessions get a grace period), then the
//!   master exits;
//! - a worker whose master dies sees end of file on its control socket and drains.

use crate::args::PlanSource;
use crate::board::{Board, SEATS};
use crate::control::{ToMaster, ToWorker, FRAME};
use crate::listen::{self, Bound};
use crate::load;
use crate::os::{self, Fork};
use crate::worker;
use crate::{error, info, notice, warn};
use mio::net::UnixStream;
use mio::{Events, Interest, Poll, Token};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};
use tcprelay_plan::{ListenAddress, Overload, Plan};

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
/// At most one overload warning in this time.
const OVERLOAD_LOG_EVERY: Duration = Duration::from_secs(10);

/// The master's view of one worker.
#[derive(Debug)]
struct Worker {
    pid: libc::pid_t,
    generation: u64,
    control: UnixStream,
    /// Bytes of a frame read so far.
    partial: Vec<u8>,
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
    generation: u64,
    listeners: Vec<Bound>,
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
    /// `tls` is the plan's TLS context ([`crate::tls_context::for_plan`]), built by the
    /// caller before this, so that bad TLS material fails before anything is bound.
    pub fn new(
        plan: Plan,
        tls: Option<openssl::ssl::SslContext>,
        source: PlanSource,
    ) -> Result<Master, String> {
        let listeners = listen::bind_all(
            &plan.spawnd.listeners,
            &plan.spawnd.keepalive,
            &mut Vec::new(),
        )?;
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
        Ok(Master {
            plan,
            tls,
            generation: 0,
            listeners,
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
        })
    }

    /// The addresses actually bound (ports chosen by the OS resolved), for logs.
    fn bound_addresses(&self) -> Vec<String> {
        self.listeners
            .iter()
            .map(|b| match &b.spec.address {
                ListenAddress::Inet(_) => b
                    .socket
                    .local_addr()
                    .ok()
                    .and_then(|a| a.as_socket())
                    .map_or_else(|| b.spec.address.to_string(), |a| a.to_string()),
                ListenAddress::Unix(p) => format!("unix:{p}"),
            })
            .collect()
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
        info!(
            "started: listening on {}; {} remote(s); workers {}..{}",
            self.bound_addresses().join(", "),
            self.plan.relay.remotes.len(),
            self.servers_min(),
            self.servers_max()
        );
        for _ in 0..self.servers_min() {
            self.spawn();
        }
        let mut events = Events::with_capacity(256);
        loop {
            if self.stopping && self.workers.is_empty() {
                info!("stopped");
                return 0;
            }
            let wake = [
                self.spawn_after,
                self.compiling.as_ref().map(load::Compile::deadline),
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
            for event in events.iter() {
                let token = event.token();
                if token == SIGNAL_TOKEN {
                    for signal in os::read_signals(&mut self.signals) {
                        self.on_signal(signal);
                    }
                } else if token.0 <= LISTENER_TOKENS
                    && LISTENER_TOKENS - token.0 < self.listeners.len()
                {
                    self.shed_from(LISTENER_TOKENS - token.0);
                } else {
                    self.on_control(token);
                }
            }
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
            let due = self.overload_due();
            self.set_overload(due);
        }
    }

    fn on_signal(&mut self, signal: libc::c_int) {
        match signal {
            libc::SIGCHLD => self.reap(),
            libc::SIGHUP if !self.stopping => self.reload(),
            libc::SIGTERM | libc::SIGINT => self.stop(),
            libc::SIGUSR1 => self.report(),
            _ => {}
        }
    }

    fn report(&self) {
        let mut ws: Vec<&Worker> = self.workers.values().collect();
        ws.sort_by_key(|w| w.pid);
        let list: Vec<String> = ws
            .iter()
            .map(|w| {
                format!(
                    "{} (generation {}{}{})",
                    w.pid,
                    w.generation,
                    if w.full { ", full" } else { "" },
                    if w.leaving { ", draining" } else { "" }
                )
            })
            .collect();
        notice!(
            "status: generation {}; workers: {}{}",
            self.generation,
            list.join("; "),
            if self.overloaded {
                format!(
                    "; overloaded (every worker full), {} connections shed so far",
                    self.shed
                )
            } else {
                String::new()
            }
        );
        // Each worker reports its own sessions and remotes.
        for w in ws {
            let _ = os::kill(w.pid, libc::SIGUSR1);
        }
    }

    /// Forks one worker of the current generation.
    fn spawn(&mut self) {
        let (master_end, worker_end) = match UnixStream::pair() {
            Ok(p) => p,
            Err(e) => {
                error!("cannot create a control socket: {e}");
                return;
            }
        };
        // The lowest seat no live worker holds.
        let seat = (0..SEATS).find(|i| !self.workers.values().any(|w| w.seat == Some(*i)));
        let place = self
            .board
            .as_ref()
            .zip(seat)
            .and_then(|(board, i)| board.occupy(i));
        let seat = place.as_ref().and(seat);
        match os::fork() {
            Err(e) => error!("cannot fork a worker: {e}"),
            Ok(Fork::Child) => {
                drop(master_end);
                let code = self.become_worker(worker_end, place);
                std::process::exit(code);
            }
            Ok(Fork::Parent(pid)) => {
                drop(worker_end);
                let token = Token(self.next_token);
                self.next_token += 1;
                let mut control = master_end;
                if let Err(e) =
                    self.poll
                        .registry()
                        .register(&mut control, token, Interest::READABLE)
                {
                    error!("cannot watch worker {pid}: {e}");
                }
                info!("worker {pid} started (generation {})", self.generation);
                self.workers.insert(
                    token,
                    Worker {
                        pid,
                        generation: self.generation,
                        control,
                        partial: Vec::new(),
                        sessions: 0,
                        full: false,
                        leaving: false,
                        stopped: false,
                        seat,
                    },
                );
            }
        }
    }

    /// In the child after `fork`: drop everything of the master's and run a worker.
    fn become_worker(&mut self, control: UnixStream, place: Option<crate::board::Place>) -> i32 {
        // Other workers' control sockets must be closed here, or a worker would not see
        // end of file when the master dies.
        self.workers.clear();
        let _ = os::default_signals(SIGNALS);
        let signals =
            match os::signal_pipe(&[libc::SIGHUP, libc::SIGTERM, libc::SIGINT, libc::SIGUSR1]) {
                Ok(s) => Some(s),
                Err(e) => {
                    error!("worker cannot set up signals: {e}");
                    None
                }
            };
        crate::log::reinit_for_worker(&self.plan.relay.syslog, self.generation);
        let listeners = std::mem::take(&mut self.listeners)
            .into_iter()
            .map(|b| {
                // The socket changes owner: the worker's mio listener (TCP and SCTP
                // streams alike accept through a TcpListener).
                let socket = match b.spec.address {
                    ListenAddress::Inet(_) => worker::ListenSocket::Tcp(
                        mio::net::TcpListener::from_std(std::net::TcpListener::from(b.socket)),
                    ),
                    ListenAddress::Unix(_) => {
                        worker::ListenSocket::Unix(mio::net::UnixListener::from_std(
                            std::os::unix::net::UnixListener::from(b.socket),
                        ))
                    }
                };
                worker::Listener {
                    socket,
                    tls: b.spec.tls,
                }
            })
            .collect();
        let config = worker::Config {
            id: std::process::id(),
            relay: self.plan.relay.clone(),
            users_max: self.plan.spawnd.users_max,
            users_min: self.plan.spawnd.users_min,
            place,
            acl: self.plan.spawnd.acl.clone(),
            listeners,
            control,
            signals,
            tls: self.tls.clone(),
        };
        match worker::run(config) {
            Ok(exit) => {
                crate::debug!("worker exits: {exit:?}");
                0
            }
            Err(e) => {
                error!("worker failed: {e}");
                1
            }
        }
    }

    fn send(worker: &mut Worker, message: ToWorker) {
        if let Err(e) = worker.control.write_all(&message.encode()) {
            warn!("cannot reach worker {}: {e}", worker.pid);
        }
    }

    fn on_control(&mut self, token: Token) {
        let mut messages = Vec::new();
        let mut closed = false;
        if let Some(w) = self.workers.get_mut(&token) {
            let mut buf = [0u8; 4 * FRAME];
            loop {
                match w.control.read(&mut buf) {
                    Ok(0) => {
                        closed = true;
                        break;
                    }
                    Ok(n) => {
                        w.partial.extend_from_slice(&buf[..n]);
                        while w.partial.len() >= FRAME {
                            let frame: [u8; FRAME] =
                                w.partial[..FRAME].try_into().unwrap_or([0; FRAME]);
                            w.partial.drain(..FRAME);
                            if let Some(m) = ToMaster::decode(&frame) {
                                messages.push(m);
                            }
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => {
                        closed = true;
                        break;
                    }
                }
            }
            if closed {
                let _ = self.poll.registry().deregister(&mut w.control);
                // Its process has ended (or is ending): the seat is free again, and it
                // tells what the worker held when it went, which its frames do not.
                if let (Some(board), Some(seat)) = (&self.board, w.seat.take()) {
                    w.sessions = board.vacate(seat);
                }
                w.leaving = true;
            }
        }
        for m in messages {
            self.on_message(token, m);
        }
    }

    fn on_message(&mut self, token: Token, message: ToMaster) {
        let Some(w) = self.workers.get_mut(&token) else {
            return;
        };
        match message {
            ToMaster::Load { sessions, full } => {
                w.sessions = sessions;
                w.full = full;
                if full {
                    self.scale_up();
                }
            }
            ToMaster::Retiring { served } => {
                info!("worker {} retires after {served} sessions", w.pid);
                let replace = !w.leaving;
                w.leaving = true;
                if replace && !self.stopping {
                    self.spawn();
                }
            }
            ToMaster::Idle { served } => {
                let active = self.active().count();
                let min = self.servers_min() as usize;
                // Workers started above `servers min` when every one was full go
                // again once the load has gone (no other worker is full): any idle
                // one, as they are alike.
                let others_full = self
                    .workers
                    .iter()
                    .any(|(t, w)| *t != token && !w.leaving && w.full);
                let Some(w) = self.workers.get_mut(&token) else {
                    return;
                };
                if !self.stopping && !w.leaving && active > min && !others_full {
                    info!(
                        "worker {} idle after {served} sessions: releasing it ({active} workers, servers min {min})",
                        w.pid
                    );
                    w.leaving = true;
                    Self::send(w, ToWorker::Drain);
                }
            }
            ToMaster::Draining { sessions, stopping } => {
                w.sessions = sessions;
                w.leaving = true;
                w.stopped = stopping;
                // A worker drained by a SIGHUP of its own needs a successor now, not
                // when it has finished its last session. One told to stop (a SIGTERM
                // to the whole process group, as Ctrl-C sends) gets none: the master
                // is stopping too, or replaces it when it has exited.
                if !stopping {
                    self.ensure_minimum();
                }
            }
        }
    }

    /// Whether every worker is full and no other may start (`servers max`).
    fn overload_due(&self) -> bool {
        let mut active = 0;
        for w in self.active() {
            if !w.full {
                return false;
            }
            active += 1;
        }
        !self.stopping && active > 0 && active >= self.servers_max() as usize
    }

    /// Enters or leaves overload: each listener's backlog becomes its `overload
    /// backlog` (or back), and with `overload = close|reset` the master watches the
    /// listeners and sheds what arrives ([`Master::shed_from`]).
    fn set_overload(&mut self, on: bool) {
        if on == self.overloaded {
            return;
        }
        self.overloaded = on;
        let mode = self.plan.spawnd.overload;
        for (i, b) in self.listeners.iter().enumerate() {
            if b.spec.overload_backlog != b.spec.backlog {
                let backlog = if on {
                    b.spec.overload_backlog
                } else {
                    b.spec.backlog
                };
                if let Err(e) = b.socket.listen(backlog.min(i32::MAX as u32) as i32) {
                    warn!(
                        "cannot set the backlog of {} to {backlog}: {e}",
                        b.spec.address
                    );
                }
            }
            if mode != Overload::Queue {
                let fd = b.socket.as_raw_fd();
                let mut source = mio::unix::SourceFd(&fd);
                let registry = self.poll.registry();
                let result = if on {
                    // Accepting here must not block (the workers set it too: the
                    // socket is shared).
                    b.socket.set_nonblocking(true).and_then(|()| {
                        registry.register(
                            &mut source,
                            Token(LISTENER_TOKENS - i),
                            Interest::READABLE,
                        )
                    })
                } else {
                    registry.deregister(&mut source)
                };
                if let Err(e) = result {
                    warn!("cannot watch listener {} for overload: {e}", b.spec.address);
                }
            }
        }
        let what = match mode {
            Overload::Queue => "they wait in the queue",
            Overload::Close => "closing them (overload = close)",
            Overload::Reset => "resetting them (overload = reset)",
        };
        let now = Instant::now();
        if on {
            self.overload_episode_logged = self
                .overload_logged
                .is_none_or(|at| now.duration_since(at) >= OVERLOAD_LOG_EVERY);
            if self.overload_episode_logged {
                self.overload_logged = Some(now);
                warn!(
                    "every worker is full ({} of servers max {}, users max {}): new connections: {what}",
                    self.active().count(),
                    self.servers_max(),
                    match self.plan.spawnd.users_max {
                        0 => "as the open-file limit allows".to_string(),
                        n => n.to_string(),
                    }
                );
            }
        } else if self.overload_episode_logged {
            notice!(
                "workers have room again{}",
                if self.shed > 0 {
                    format!(" ({} connections shed meanwhile)", self.shed)
                } else {
                    String::new()
                }
            );
            self.shed = 0;
        }
    }

    /// In overload with `overload = close|reset`: accepts every connection waiting on
    /// listener `index` and closes it (a reset: with a zero linger time).
    fn shed_from(&mut self, index: usize) {
        let Some(b) = self.listeners.get(index) else {
            return;
        };
        if !self.overloaded {
            return;
        }
        let reset = self.plan.spawnd.overload == Overload::Reset;
        let mut shed = 0;
        loop {
            match b.socket.accept() {
                Ok((socket, _)) => {
                    if reset {
                        let _ = socket.set_linger(Some(Duration::ZERO));
                    }
                    drop(socket);
                    shed += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                    ) => {}
                Err(e) => {
                    // Out of descriptors: what waits stays queued until the next
                    // connection or the end of the overload.
                    warn!("cannot shed connections on {}: {e}", b.spec.address);
                    break;
                }
            }
        }
        self.shed += shed;
    }

    /// Starts another worker when every active one is full and there is room.
    fn scale_up(&mut self) {
        let active = self.active().count();
        let all_full = self.active().all(|w| w.full);
        if !self.stopping && all_full && active < self.servers_max() as usize {
            info!("all {active} worker(s) are full: starting another");
            self.spawn();
        }
    }

    fn reap(&mut self) {
        for (pid, exit) in os::reap() {
            if self.compiling.as_ref().is_some_and(|c| c.pid() == pid) {
                if let Some(compile) = self.compiling.take() {
                    self.compiled(compile.finish(exit));
                }
                continue;
            }
            let Some(token) = self
                .workers
                .iter()
                .find(|(_, w)| w.pid == pid)
                .map(|(t, _)| *t)
            else {
                continue;
            };
            let Some(mut w) = self.workers.remove(&token) else {
                continue;
            };
            let _ = self.poll.registry().deregister(&mut w.control);
            if let (Some(board), Some(seat)) = (&self.board, w.seat.take()) {
                w.sessions = board.vacate(seat);
            }
            let expected = w.leaving || self.stopping;
            if expected && exit == os::ChildExit::Code(0) {
                info!("worker {pid} finished");
                if w.stopped && !self.stopping {
                    // Told to stop by a signal: if it was sent to the whole process
                    // group, the master's own SIGTERM may not have been read yet.
                    // Wait a moment before restoring `servers min`.
                    self.spawn_after
                        .get_or_insert(Instant::now() + Duration::from_millis(250));
                }
                continue;
            }
            warn!("worker {pid} died ({exit}) with {} session(s)", w.sessions);
            if self.stopping || w.generation != self.generation || w.leaving {
                continue;
            }
            // Replace it, but not faster than 5 deaths in 10 s.
            let now = Instant::now();
            self.deaths
                .retain(|t| now.duration_since(*t) < Duration::from_secs(10));
            self.deaths.push(now);
            if self.deaths.len() > 5 {
                warn!("workers are dying fast: waiting 1 s before starting a replacement");
                self.spawn_after.get_or_insert(now + Duration::from_secs(1));
            } else {
                self.spawn();
            }
        }
        self.ensure_minimum();
    }

    /// Starts workers until `servers min` are active (not while stopping, nor while a
    /// crash-loop brake holds spawning back).
    fn ensure_minimum(&mut self) {
        if self.stopping || self.spawn_after.is_some() {
            return;
        }
        let active = self.active().count();
        for _ in active..self.servers_min() as usize {
            self.spawn();
        }
    }

    /// SIGHUP: reads the plan again, or starts compiling the configuration again
    /// (the master goes on supervising and obeying signals meanwhile, and
    /// [`Master::compiled`] takes over when the compiler has exited).
    fn reload(&mut self) {
        if self.compiling.is_some() {
            notice!("reload requested while the last one is compiling: another follows it");
            self.reload_again = true;
            return;
        }
        match load::start(&self.source) {
            Ok(load::Started::Ready(loaded)) => self.compiled(Ok(*loaded)),
            Ok(load::Started::Compiling(compile)) => {
                info!("reload: compiling {}", self.source);
                self.compiling = Some(compile);
            }
            Err(e) => self.compiled(Err(e)),
        }
    }

    /// A reload's plan is loaded (or failed to): a new generation with it, the old
    /// one drains. Any failure keeps the running plan.
    fn compiled(&mut self, loaded: Result<load::Loaded, String>) {
        self.swap(loaded);
        if std::mem::take(&mut self.reload_again) && !self.stopping {
            self.reload();
        }
    }

    fn swap(&mut self, loaded: Result<load::Loaded, String>) {
        let plan = match loaded {
            Ok(loaded) => {
                for line in &loaded.warnings {
                    warn!("{line}");
                }
                loaded.plan
            }
            Err(e) => {
                let mut lines = e.lines();
                error!(
                    "reload failed, keeping the running plan: {}",
                    lines.next().unwrap_or_default()
                );
                for line in lines {
                    error!("{line}");
                }
                return;
            }
        };
        let tls = match crate::tls_context::for_plan(&plan) {
            Ok(tls) => tls,
            Err(e) => {
                error!("reload failed, keeping the running plan: {e}");
                return;
            }
        };
        // The new workers would fail one by one on a mechanism this system lacks.
        if let Err(e) = worker::Mechanism::after_setenv(&plan.env) {
            error!("reload failed, keeping the running plan: {e}");
            return;
        }
        // Checked before anything changes, applied once the listeners are bound.
        let setenv = match crate::Setenv::check(&plan.env) {
            Ok(setenv) => setenv,
            Err(e) => {
                error!("reload failed, keeping the running plan: {e}");
                return;
            }
        };
        // The sockets leave overload (backlog, watch) before some move to the new
        // set; the state is worked out again after this turn.
        self.set_overload(false);
        let listeners = match listen::bind_all(
            &plan.spawnd.listeners,
            &plan.spawnd.keepalive,
            &mut self.listeners,
        ) {
            Ok(l) => l,
            Err(e) => {
                error!("reload failed, keeping the running plan: {e}");
                return;
            }
        };
        setenv.apply();
        // Sockets no longer in the plan are closed here; old workers keep their own
        // copies until they drain.
        self.listeners = listeners;
        self.plan = plan;
        self.tls = tls;
        self.generation += 1;
        let old: Vec<Token> = self
            .workers
            .iter()
            .filter(|(_, w)| !w.leaving)
            .map(|(t, _)| *t)
            .collect();
        for _ in 0..self.servers_min().max(1) {
            self.spawn();
        }
        for token in &old {
            if let Some(w) = self.workers.get_mut(token) {
                w.leaving = true;
                Self::send(w, ToWorker::Drain);
            }
        }
        info!(
            "reloaded (generation {}): listening on {}; {} remote(s); {} old worker(s) draining",
            self.generation,
            self.bound_addresses().join(", "),
            self.plan.relay.remotes.len(),
            old.len()
        );
    }

    fn stop(&mut self) {
        let grace = if self.stopping { 0 } else { STOP_GRACE_SECS };
        info!(
            "stopping: {} worker(s) get {grace} s to finish their sessions",
            self.workers.len()
        );
        self.set_overload(false);
        self.stopping = true;
        self.spawn_after = None;
        if let Some(mut compile) = self.compiling.take() {
            compile.kill();
        }
        self.listeners.clear();
        for w in self.workers.values_mut() {
            w.leaving = true;
            Self::send(w, ToWorker::Stop { grace_secs: grace });
        }
    }
}

/// The processors this process may run on.
fn processors() -> u32 {
    std::thread::available_parallelism().map_or(2, |n| u32::try_from(n.get()).unwrap_or(u32::MAX))
}
