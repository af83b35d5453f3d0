//! DNS discovery as the master sees it (`crate::resolver`, `crate::discovery`):
//! each generation whose plan has discovered names gets a discovery table, made
//! before its processes are forked, and a resolver process (forked after the
//! privileges are dropped, before the workers). The master reads the resolver's
//! reports, gives each address found a `stats` slot (key `ADDRESS:PORT/PROTOCOL`,
//! as a plan's remote) and publishes the sets in the table.
//!
//! - Start: the master waits for the first answer of every name, at most
//!   `timeout × attempts + 1 s`; a name that has not resolved then fails the
//!   start with one line, unless `resolve start = wait` (`Resolve::start_empty`).
//! - Reload: the new plan's resolver is forked and its first answers awaited the
//!   same way, without blocking the master (the old generation serves on); a name
//!   that does not resolve refuses the reload.
//! - A failure after a success keeps the last good set; it is logged once per
//!   episode, and once when the name resolves again; every failure is counted.
//! - The resolver is restarted when it dies (at most 3 deaths in 10 s, then after
//!   5 s) and stopped with the workers; it exits when the master has gone.

use super::{Master, SIGNALS};
use crate::discovery::{self, Publisher};
use crate::notify::Notify;
use crate::os::{self, Fork};
use crate::resolver::frame::{self, Answer};
use crate::stats::{self, RemoteKey};
use crate::{error, info, notice, warn};
use mio::net::UnixStream;
use mio::{Interest, Token};
use std::io::{self, Read};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tcprelay_plan::{Plan, Relay, Remote};

/// The current generation's resolver's control socket.
pub(super) const RESOLVER_TOKEN: Token = Token(usize::MAX / 2 - 1);
/// The resolver of a reload waiting for its first answers.
pub(super) const PENDING_TOKEN: Token = Token(usize::MAX / 2 - 2);

/// A resolver process alive.
#[derive(Debug)]
pub(super) struct ResolverProcess {
    pid: libc::pid_t,
    control: UnixStream,
    reader: frame::Reader,
}

/// What the master knows of one discovered name.
#[derive(Debug, Clone, Default)]
pub struct NameState {
    /// It has answered (resolved or failed) at least once.
    pub answered: bool,
    /// It has resolved at least once.
    pub resolved: bool,
    /// Its last resolution failed (an episode, logged once).
    pub failing: bool,
    /// Resolutions that failed since the generation started.
    pub failures: u64,
    pub last_error: Option<String>,
    /// The last good set.
    pub addresses: Vec<(SocketAddr, u32)>,
}

/// One generation's discovery: its table, its names, the counter slots it took
/// and its resolver.
#[derive(Debug, Default)]
pub(super) struct Discovery {
    publisher: Option<Publisher>,
    pub names: Vec<NameState>,
    /// The `stats` slots of the addresses found (released with the generation).
    pub slots: stats::Slots,
    process: Option<ResolverProcess>,
    brake: super::brake::Brake,
    pub restart_at: Option<Instant>,
}

impl Discovery {
    /// The discovery of `plan`: a table when it has discovered names (none, with a
    /// warning, if the shared memory cannot be made).
    pub(super) fn new(plan: &Plan) -> Discovery {
        let names = &plan.relay.discovered;
        if names.is_empty() {
            return Discovery::default();
        }
        let publisher = discovery::Table::new()
            .inspect_err(|e| {
                error!(
                    "cannot share memory for DNS discovery ({e}): discovered remotes are not used"
                )
            })
            .ok()
            .map(Publisher::new);
        Discovery {
            publisher,
            names: vec![NameState::default(); names.len()],
            ..Discovery::default()
        }
    }

    /// The table the workers follow.
    pub(super) fn table(&self) -> Option<discovery::Table> {
        self.publisher.as_ref().map(|p| p.table().clone())
    }

    /// The entries published (for the control socket and metrics).
    pub(super) fn entries(&self) -> Vec<discovery::Entry> {
        self.publisher
            .as_ref()
            .map(Publisher::entries)
            .unwrap_or_default()
    }

    /// Whether every name has answered once.
    fn answered(&self) -> bool {
        self.names.iter().all(|n| n.answered)
    }

    /// Why the start (or reload) cannot go on: the names that have not resolved,
    /// unless the plan starts without them.
    fn unresolved(&self, relay: &Relay) -> Result<(), String> {
        if relay.resolve.start_empty {
            return Ok(());
        }
        let missing: Vec<String> = self
            .names
            .iter()
            .zip(&relay.discovered)
            .filter(|(state, _)| !state.resolved)
            .map(|(state, d)| {
                format!(
                    "{} ({})",
                    d.name,
                    state.last_error.as_deref().unwrap_or("no answer in time")
                )
            })
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "discovered remote name(s) did not resolve: {}; the relay does not start without them (`resolve start = wait` starts without)",
                missing.join(", ")
            ))
        }
    }
}

/// One address of a discovered name as the generation's workers have it: the
/// name's template at that address, with its weight.
#[derive(Debug, Clone)]
pub(super) struct Found {
    /// The name's index in `Relay::discovered`.
    pub name: usize,
    pub remote: Remote,
    /// Its `stats` (and health, steering) slot.
    pub slot: usize,
    /// In its name's set now (else retired).
    pub live: bool,
}

/// `entries` of `relay`'s discovery table as remotes, in the table's order (the
/// order the workers append them in, after the plan's remotes).
pub(super) fn found(relay: &Relay, entries: &[discovery::Entry]) -> Vec<Found> {
    entries
        .iter()
        .filter_map(|e| {
            let mut remote = relay.discovered.get(e.name)?.template.clone();
            remote.address = e.address;
            remote.weight = e.weight;
            Some(Found {
                name: e.name,
                remote,
                slot: e.slot,
                live: e.live,
            })
        })
        .collect()
}

/// The longest wait for the first answers: `timeout × attempts + 1 s`.
pub(super) fn first_answer_within(relay: &Relay) -> Duration {
    let resolve = &relay.resolve;
    Duration::from_millis(u64::from(resolve.timeout_ms) * u64::from(resolve.attempts.max(1)))
        + Duration::from_secs(1)
}

/// A reload waiting for its resolver's first answers.
#[derive(Debug)]
pub(super) struct PendingReload {
    pub loaded: crate::load::Loaded,
    pub discovery: Discovery,
    pub deadline: Instant,
}

impl Master {
    /// Forks a resolver for `relay`'s names (the child never returns).
    fn fork_resolver(&mut self, relay: &Relay) -> Option<ResolverProcess> {
        let (master_end, resolver_end) = match std::os::unix::net::UnixStream::pair() {
            Ok(p) => p,
            Err(e) => {
                error!("cannot create the resolver's control socket: {e}");
                return None;
            }
        };
        match os::fork() {
            Err(e) => {
                error!("cannot fork the resolver: {e}");
                None
            }
            Ok(Fork::Child) => {
                drop(master_end);
                crate::log::become_resolver();
                os::set_title(
                    self.plan.spawnd.proctitle.as_deref(),
                    &format!("resolver gen {}", self.generation),
                );
                self.drop_for_resolver();
                let _ = os::default_signals(SIGNALS);
                let relay = relay.clone();
                std::process::exit(crate::resolver::run(&relay, resolver_end));
            }
            Ok(Fork::Parent(pid)) => {
                drop(resolver_end);
                if let Err(e) = master_end.set_nonblocking(true) {
                    error!("resolver's control socket: {e}");
                }
                info!(
                    "resolver {pid} started: {} name(s) resolved",
                    relay.discovered.len()
                );
                Some(ResolverProcess {
                    pid,
                    control: UnixStream::from_std(master_end),
                    reader: frame::Reader::default(),
                })
            }
        }
    }

    /// In a forked child (worker, checker): the master's ends of the resolvers'
    /// sockets are closed, so a resolver sees end of file when the master has gone.
    pub(super) fn drop_resolver_handles(&mut self) {
        self.discovery.process = None;
        if let Some(pending) = self.resolving.as_mut() {
            pending.discovery.process = None;
        }
        self.resolvers_leaving.clear();
    }

    /// In the resolver after `fork`: everything of the master's is closed.
    fn drop_for_resolver(&mut self) {
        self.drop_resolver_handles();
        self.workers.clear();
        self.listeners.clear();
        self.ctl = None;
        self.old_ctl = None;
        self.metrics = None;
        self.notify = Notify::default();
        self.stop_checker_handles();
    }

    /// At start, before the workers: forks the resolver and waits for the first
    /// answer of every name (bounded); Err (one line) when a name has not resolved
    /// and the plan does not start without it.
    pub(super) fn first_resolution(&mut self) -> Result<(), String> {
        if self.discovery.publisher.is_none() {
            return Ok(());
        }
        let relay = self.plan.relay.clone();
        let Some(mut process) = self.fork_resolver(&relay) else {
            return Err("DNS discovery: the resolver could not be started".into());
        };
        let deadline = Instant::now() + first_answer_within(&relay);
        let mut closed = false;
        while !self.discovery.answered() && !closed {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let fd = std::os::fd::AsFd::as_fd(&process.control);
            let mut pollfd = [rustix::event::PollFd::new(
                &fd,
                rustix::event::PollFlags::IN,
            )];
            let timeout = rustix::event::Timespec::try_from(left).ok();
            if rustix::event::poll(&mut pollfd, timeout.as_ref()).is_err() {
                continue;
            }
            closed = self.read_reports(&mut process, Which::Current);
        }
        self.discovery.process = Some(process);
        self.register_resolver(RESOLVER_TOKEN);
        self.discovery.unresolved(&self.plan.relay)
    }

    fn register_resolver(&mut self, token: Token) {
        let process = match token {
            RESOLVER_TOKEN => self.discovery.process.as_mut(),
            _ => self
                .resolving
                .as_mut()
                .and_then(|p| p.discovery.process.as_mut()),
        };
        if let Some(process) = process {
            if let Err(e) =
                self.poll
                    .registry()
                    .register(&mut process.control, token, Interest::READABLE)
            {
                error!("cannot watch the resolver: {e}");
            }
        }
    }

    /// Reads what `process` reported and applies it to its discovery; true when
    /// its socket closed or broke (it is then stopped, and reaped later).
    fn read_reports(&mut self, process: &mut ResolverProcess, which: Which) -> bool {
        let mut buf = [0u8; 16 * 1024];
        let mut closed = false;
        loop {
            match process.control.read(&mut buf) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(n) => process.reader.push(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    closed = true;
                    break;
                }
            }
        }
        while let Some(answer) = process.reader.next_answer() {
            match answer {
                Ok(answer) => self.apply(answer, which),
                Err(e) => {
                    error!("the resolver sent {e}: stopping it");
                    let _ = os::kill(process.pid, libc::SIGKILL);
                    return true;
                }
            }
        }
        closed
    }

    /// Applies one answer to the current or the pending discovery.
    fn apply(&mut self, answer: Answer, which: Which) {
        let (discovery, relay) = match which {
            Which::Current => (&mut self.discovery, &self.plan.relay),
            Which::Pending => match self.resolving.as_mut() {
                Some(p) => (&mut p.discovery, &p.loaded.plan.relay),
                None => return,
            },
        };
        let (Some(state), Some(discovered)) = (
            discovery.names.get_mut(answer.name),
            relay.discovered.get(answer.name),
        ) else {
            return;
        };
        state.answered = true;
        let name = &discovered.name;
        match answer.result {
            Err(reason) => {
                state.failures += 1;
                if !state.failing {
                    state.failing = true;
                    if state.resolved {
                        warn!(
                            "discovery: {name} does not resolve ({reason}): keeping its last {} address(es) until it does",
                            state.addresses.len()
                        );
                    } else {
                        warn!("discovery: {name} does not resolve ({reason})");
                    }
                }
                state.last_error = Some(reason);
            }
            Ok(resolved) => {
                if state.failing {
                    notice!("discovery: {name} resolves again");
                }
                state.failing = false;
                state.resolved = true;
                state.last_error = None;
                state.addresses.clone_from(&resolved.addresses);
                let Some(publisher) = discovery.publisher.as_mut() else {
                    return;
                };
                let protocol = discovered.template.protocol;
                let registry = &mut self.stats;
                let slots = &mut discovery.slots;
                let health = self.checks.table.as_ref();
                let steering = self.steering.as_ref();
                let changes = publisher.publish(answer.name, &resolved.addresses, |address| {
                    let Some(registry) = registry.as_mut() else {
                        return 0;
                    };
                    let key = RemoteKey { address, protocol };
                    let fresh = !registry.remote_in_use(&key);
                    let got = registry.assign_keys(&[], &[key]);
                    let slot = got.remotes.first().map_or(0, |s| s.index());
                    slots.remotes.extend(got.remotes);
                    // Before the entry is published: no worker sees an earlier
                    // holder's health.
                    // Nor an earlier holder's steering: a new address starts enabled.
                    if fresh {
                        Master::fresh_health(health, slot);
                        if let Some(table) = steering.filter(|_| slot != 0) {
                            if table.read(slot) != crate::steering::Admin::default() {
                                table.write(slot, crate::steering::Admin::default());
                            }
                        }
                    }
                    slot
                });
                if which == Which::Current && !changes.is_empty() {
                    if let Some(process) = self.checks.current.as_mut() {
                        process.nudge();
                    }
                }
                for address in &changes.added {
                    info!("discovery: {name}: {address} joins");
                }
                for address in &changes.retired {
                    info!("discovery: {name}: {address} retired (no new sessions; its sessions go on)");
                }
                if !changes.left_out.is_empty() {
                    warn!(
                        "discovery: {name}: {} address(es) left out: the generation's table is full ({} entries; a reload starts a new one)",
                        changes.left_out.len(),
                        discovery::ENTRIES
                    );
                }
            }
        }
    }

    /// A resolver's socket is readable.
    pub(super) fn on_resolver_event(&mut self, token: Token) {
        let which = if token == RESOLVER_TOKEN {
            Which::Current
        } else {
            Which::Pending
        };
        let process = match which {
            Which::Current => self.discovery.process.take(),
            Which::Pending => self
                .resolving
                .as_mut()
                .and_then(|p| p.discovery.process.take()),
        };
        let Some(mut process) = process else {
            return;
        };
        let closed = self.read_reports(&mut process, which);
        if closed {
            let _ = self.poll.registry().deregister(&mut process.control);
            // Reaped (and, if it is the current one, restarted) by SIGCHLD.
            self.resolvers_leaving.push((process.pid, false));
        } else {
            match which {
                Which::Current => self.discovery.process = Some(process),
                Which::Pending => {
                    if let Some(p) = self.resolving.as_mut() {
                        p.discovery.process = Some(process);
                    }
                }
            }
        }
        if which == Which::Pending {
            self.pending_due(false);
        }
    }

    /// A reload's plan with discovered names: its resolver is forked and the
    /// reload goes on once every name has answered (or the wait is over).
    pub(super) fn resolve_before_reload(&mut self, loaded: crate::load::Loaded) {
        let mut discovery = Discovery::new(&loaded.plan);
        let relay = loaded.plan.relay.clone();
        discovery.process = self.fork_resolver(&relay);
        let deadline = Instant::now() + first_answer_within(&relay);
        info!(
            "reload: waiting up to {} ms for the first resolution of {} name(s)",
            first_answer_within(&relay).as_millis(),
            relay.discovered.len()
        );
        self.resolving = Some(PendingReload {
            loaded,
            discovery,
            deadline,
        });
        self.register_resolver(PENDING_TOKEN);
        self.pending_due(false);
    }

    /// Goes on with a pending reload once every name has answered, or its wait is
    /// over (`force`, or its deadline passed).
    pub(super) fn pending_due(&mut self, force: bool) {
        let Some(pending) = self.resolving.as_ref() else {
            return;
        };
        let over = force || pending.deadline <= Instant::now();
        if !over && !pending.discovery.answered() {
            return;
        }
        let Some(mut pending) = self.resolving.take() else {
            return;
        };
        if let Err(e) = pending.discovery.unresolved(&pending.loaded.plan.relay) {
            self.discard(pending.discovery);
            self.compiled(Err(e));
            return;
        }
        if let Some(process) = pending.discovery.process.as_mut() {
            let _ = self.poll.registry().reregister(
                &mut process.control,
                RESOLVER_TOKEN,
                Interest::READABLE,
            );
        }
        self.incoming = Some(pending.discovery);
        self.compiled(Ok(pending.loaded));
        // A swap that failed left it here: its resolver stops, its slots go back.
        if let Some(discovery) = self.incoming.take() {
            self.discard(discovery);
        }
    }

    /// A discovery that will not run: its resolver is stopped, its slots released.
    pub(super) fn discard(&mut self, mut discovery: Discovery) {
        if let Some(mut process) = discovery.process.take() {
            let _ = self.poll.registry().deregister(&mut process.control);
            let _ = os::kill(process.pid, libc::SIGTERM);
            self.resolvers_leaving.push((process.pid, true));
        }
        if let Some(registry) = &mut self.stats {
            registry.release(&discovery.slots);
        }
    }

    /// The swap of a reload: the new plan's discovery (awaited, or a new one for
    /// a plan without names) becomes current; the old resolver stops and the old
    /// discovery's slots go with the old generation's.
    pub(super) fn discovery_reloaded(&mut self) {
        let new = self
            .incoming
            .take()
            .unwrap_or_else(|| Discovery::new(&self.plan));
        let mut old = std::mem::replace(&mut self.discovery, new);
        if let Some(mut process) = old.process.take() {
            let _ = self.poll.registry().deregister(&mut process.control);
            let _ = os::kill(process.pid, libc::SIGTERM);
            self.resolvers_leaving.push((process.pid, true));
        }
        let slots = std::mem::take(&mut old.slots);
        self.old_slots.push((self.generation, slots));
    }

    /// Stops the resolvers (the relay stops).
    pub(super) fn stop_resolvers(&mut self) {
        if let Some(pending) = self.resolving.take() {
            self.discard(pending.discovery);
        }
        if let Some(mut process) = self.discovery.process.take() {
            let _ = self.poll.registry().deregister(&mut process.control);
            let _ = os::kill(process.pid, libc::SIGTERM);
            self.resolvers_leaving.push((process.pid, true));
        }
        self.discovery.restart_at = None;
    }

    /// Whether `pid` was a resolver (then it is reaped here: the current one's
    /// unexpected death restarts it, with a brake).
    pub(super) fn reap_resolver(&mut self, pid: libc::pid_t, exit: os::ChildExit) -> bool {
        if let Some(at) = self.resolvers_leaving.iter().position(|(p, _)| *p == pid) {
            let (_, expected) = self.resolvers_leaving.swap_remove(at);
            if !expected {
                self.resolver_died(pid, exit);
            }
            return true;
        }
        let current = self
            .discovery
            .process
            .as_ref()
            .is_some_and(|p| p.pid == pid);
        let pending = self
            .resolving
            .as_ref()
            .and_then(|p| p.discovery.process.as_ref())
            .is_some_and(|p| p.pid == pid);
        if current {
            if let Some(mut process) = self.discovery.process.take() {
                let _ = self.poll.registry().deregister(&mut process.control);
            }
            self.resolver_died(pid, exit);
            return true;
        }
        if pending {
            warn!("the reload's resolver {pid} died ({exit})");
            if let Some(p) = self.resolving.as_mut() {
                if let Some(mut process) = p.discovery.process.take() {
                    let _ = self.poll.registry().deregister(&mut process.control);
                }
            }
            self.pending_due(true);
            return true;
        }
        false
    }

    fn resolver_died(&mut self, pid: libc::pid_t, exit: os::ChildExit) {
        if self.stopping || self.discovery.publisher.is_none() {
            return;
        }
        warn!("resolver {pid} died ({exit}): starting another");
        match self.discovery.brake.death("the resolver", Instant::now()) {
            Some(at) => self.discovery.restart_at = Some(at),
            None => self.restart_resolver(),
        }
    }

    fn restart_resolver(&mut self) {
        if self.stopping || self.discovery.process.is_some() {
            return;
        }
        let relay = self.plan.relay.clone();
        self.discovery.process = self.fork_resolver(&relay);
        self.register_resolver(RESOLVER_TOKEN);
    }

    /// The resolver's brake or a pending reload's deadline has come.
    pub(super) fn resolver_due(&mut self) {
        if self
            .discovery
            .restart_at
            .is_some_and(|t| t <= Instant::now())
        {
            self.discovery.restart_at = None;
            self.restart_resolver();
        }
        if self
            .resolving
            .as_ref()
            .is_some_and(|p| p.deadline <= Instant::now())
        {
            self.pending_due(true);
        }
    }

    /// When the loop must wake for discovery.
    pub(super) fn resolver_deadline(&self) -> Option<Instant> {
        [
            self.discovery.restart_at,
            self.resolving.as_ref().map(|p| p.deadline),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The SIGUSR1 status line of DNS discovery (`None`: no discovered name):
    /// each name, its state and its addresses (retired ones marked).
    pub(super) fn discovery_status(&self) -> Option<String> {
        if self.discovery.names.is_empty() {
            return None;
        }
        let entries = self.discovery.entries();
        let parts: Vec<String> = self
            .plan
            .relay
            .discovered
            .iter()
            .zip(&self.discovery.names)
            .enumerate()
            .map(|(index, (d, state))| {
                let addresses: Vec<String> = entries
                    .iter()
                    .filter(|e| e.name == index)
                    .map(|e| {
                        let retired = if e.live { "" } else { " retired" };
                        format!("{}{retired}", e.address)
                    })
                    .collect();
                let how = match (&state.last_error, state.resolved) {
                    (Some(e), _) => format!("failing ({e}), {} failure(s)", state.failures),
                    (None, true) => "resolved".to_string(),
                    (None, false) => "not resolved yet".to_string(),
                };
                format!("{} {how}: [{}]", d.name, addresses.join(", "))
            })
            .collect();
        let resolver = match (&self.discovery.process, self.discovery.restart_at) {
            (Some(p), _) => format!("resolver {}", p.pid),
            (None, Some(_)) => "resolver restarting".to_string(),
            (None, None) => "no resolver".to_string(),
        };
        Some(format!(
            "status: discovery ({resolver}): {}",
            parts.join("; ")
        ))
    }

    /// The metrics of DNS discovery: each name's failures and its addresses.
    pub(super) fn discovery_metrics(&self) -> Vec<crate::metrics::render::Discovered> {
        let entries = self.discovery.entries();
        self.plan
            .relay
            .discovered
            .iter()
            .zip(&self.discovery.names)
            .enumerate()
            .map(|(index, (d, state))| crate::metrics::render::Discovered {
                name: d.name.clone(),
                failures: state.failures,
                remotes: entries
                    .iter()
                    .filter(|e| e.name == index)
                    .map(|e| {
                        let key = RemoteKey {
                            address: e.address,
                            protocol: d.template.protocol,
                        };
                        (key, e.live)
                    })
                    .collect(),
            })
            .collect()
    }

    /// The current generation's discovered remotes (table order).
    pub(super) fn discovered_remotes(&self) -> Vec<Found> {
        found(&self.plan.relay, &self.discovery.entries())
    }

    pub(super) fn owns_resolver(&self, token: Token) -> bool {
        token == RESOLVER_TOKEN || token == PENDING_TOKEN
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Current,
    Pending,
}
