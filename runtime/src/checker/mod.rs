//! The checker: one process per relay, forked by the master with the workers
//! (`master/checker.rs`), that runs the remotes' active health checks and writes
//! what it finds into the shared health table (`crate::health`), which every worker
//! follows.
//!
//! Its own `mio` loop runs every check at once without blocking: each remote with a
//! `check` is checked every `interval` (from the start of one check to the start of
//! the next), a check that has not ended within its `timeout` fails as `timeout`
//! (so a remote that hangs costs only its timeout, and delays no other), and the
//! table applies `rise`/`fall`. A check is a TCP (or SCTP) connect, then with `tls`
//! a handshake, then `send`, then the first reply matched against `expect`
//! (`probe.rs`). Transitions are logged once, with the result that made them.
//!
//! The remotes found by DNS are checked too when their name's template has a
//! `check`: the checker follows the generation's discovery table (`Discovered`),
//! as the workers do, and the master sends a byte on the control socket when the
//! table changes, to wake it; an address retired from its name's set is no longer
//! checked (its health stays as last found), and is checked at once when it
//! comes back.
//!
//! The checker exits on SIGTERM or SIGINT, or when its control socket shows that
//! the master has gone. A reload replaces it (the table keeps the remotes' health
//! by slot), and the master starts another if it dies.

use crate::health::{Outcome, Table, Transition};
use crate::{info, warn};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};
use tcprelay_plan::{Check, Expect, Plan, Protocol, RemoteTls};

mod probe;
#[cfg(test)]
mod tests;

use probe::Probe;

const SIGNAL_TOKEN: Token = Token(usize::MAX);
const CONTROL_TOKEN: Token = Token(usize::MAX - 1);

/// A remote to check.
#[derive(Debug)]
pub struct Target {
    /// Its slot in the health table.
    pub slot: usize,
    pub address: SocketAddr,
    pub protocol: Protocol,
    pub check: Check,
    /// The remote's own TLS settings, if it has them.
    pub tls: Option<RemoteTls>,
    /// `expect regex`, compiled.
    regex: Option<regex_lite::Regex>,
    /// With `check.tls`: the client context (or why it could not be made).
    tls_context: Option<Result<crate::tls_context::ClientContext, String>>,
}

impl Target {
    /// The target for a remote with a check; Err when its `expect regex` does not
    /// compile (one line naming the remote).
    pub fn new(
        slot: usize,
        remote: &tcprelay_plan::Remote,
        check: &Check,
    ) -> Result<Target, String> {
        let regex = match &check.expect {
            Some(Expect::Regex(text)) => Some(regex_lite::Regex::new(text).map_err(|e| {
                let first = e.to_string();
                let first = first.lines().last().unwrap_or_default().trim().to_string();
                format!(
                    "remote {}: the check's expect regex {text:?} does not compile: {first}",
                    remote.address
                )
            })?),
            _ => None,
        };
        Ok(Target {
            slot,
            address: remote.address,
            protocol: remote.protocol,
            check: check.clone(),
            tls: remote.tls.clone(),
            regex,
            tls_context: None,
        })
    }

    /// Builds the TLS client context a `tls` check needs (once, at the checker's
    /// start); Err says why it could not (then each check fails as `tls`).
    fn prepare_tls(&mut self) -> Result<(), String> {
        if !self.check.tls {
            return Ok(());
        }
        // A remote without TLS settings is checked without verification: the check
        // asks whether it completes a handshake, not whom it is. One with settings is
        // checked as the workers connect to it (the same context builder).
        let unverified = RemoteTls {
            sni: None,
            verify: false,
            ca_file: None,
            cert_file: None,
            key_file: None,
            passphrase: None,
        };
        let context = crate::tls_context::client_context(self.tls.as_ref().unwrap_or(&unverified));
        let result = context.as_ref().map(|_| ()).map_err(String::clone);
        self.tls_context = Some(context);
        result
    }
}

/// The plan's checked remotes, where `slots[j]` is remote `j`'s health slot (plan
/// order). A remote in slot 0 (beyond the table) or without a slot is not checked.
pub fn targets(plan: &Plan, slots: &[usize]) -> Result<Vec<Target>, String> {
    let mut targets = Vec::new();
    for (index, remote) in plan.relay.remotes.iter().enumerate() {
        let Some(check) = &remote.check else {
            continue;
        };
        let target = Target::new(slots.get(index).copied().unwrap_or(0), remote, check)?;
        if target.slot != 0 {
            targets.push(target);
        }
    }
    Ok(targets)
}

/// What a plan's checks need beyond `Plan::validate`: every `expect regex`
/// compiles, the discovered names' templates' included (the runtime refuses a
/// plan where one does not, at start and reload).
pub fn check_plan(plan: &Plan) -> Result<(), String> {
    check_remotes(&plan.relay.remotes)?;
    let templates: Vec<_> = plan
        .relay
        .discovered
        .iter()
        .map(|d| d.template.clone())
        .collect();
    check_remotes(&templates)
}

/// The remotes found by DNS as the checker follows them (`crate::discovery`, the
/// generation's table): at each turn the table's epoch is looked at, and when it
/// moved (acquire, then read) each new address whose name's template has a
/// `check` becomes a target, checked while the address is in its name's set.
#[derive(Debug)]
pub struct Discovered {
    table: crate::discovery::Table,
    names: Vec<tcprelay_plan::Discovered>,
    seen: Option<u64>,
    /// The target of each entry read so far (`None`: not checked).
    targets: Vec<Option<usize>>,
}

impl Discovered {
    /// Follows `table`, whose entries are addresses of `names` (the plan's
    /// `Relay::discovered`).
    pub fn new(table: crate::discovery::Table, names: Vec<tcprelay_plan::Discovered>) -> Self {
        Discovered {
            table,
            names,
            seen: None,
            targets: Vec::new(),
        }
    }
}

fn check_remotes(remotes: &[tcprelay_plan::Remote]) -> Result<(), String> {
    for remote in remotes {
        if let Some(check) = &remote.check {
            Target::new(1, remote, check)?;
        }
    }
    Ok(())
}

/// A check under way.
#[derive(Debug)]
struct Running {
    probe: Probe,
    started: Instant,
    deadline: Instant,
}

/// The checks' loop.
#[derive(Debug)]
pub struct Checker {
    targets: Vec<Target>,
    table: Table,
    poll: Poll,
    running: Vec<Option<Running>>,
    /// When each target's next check starts.
    next: Vec<Instant>,
    /// Whether each target is checked now (a discovered address retired from its
    /// name's set is not).
    active: Vec<bool>,
    /// Whether each target is a discovered address (else a plan's remote).
    found: Vec<bool>,
    discovered: Option<Discovered>,
}

impl Checker {
    /// A checker of `targets` writing into `table`; the first checks start at once.
    pub fn new(mut targets: Vec<Target>, table: Table) -> io::Result<Checker> {
        for target in &mut targets {
            if let Err(e) = target.prepare_tls() {
                warn!(
                    "health check: remote {}: {e}; its TLS checks fail",
                    target.address
                );
            }
        }
        let now = Instant::now();
        Ok(Checker {
            running: targets.iter().map(|_| None).collect(),
            next: targets.iter().map(|_| now).collect(),
            active: targets.iter().map(|_| true).collect(),
            found: targets.iter().map(|_| false).collect(),
            targets,
            table,
            poll: Poll::new()?,
            discovered: None,
        })
    }

    /// Also checks the remotes found by DNS that `discovered` follows.
    pub fn follow(&mut self, discovered: Discovered) {
        self.discovered = Some(discovered);
        self.follow_discovery();
    }

    /// Reads the discovery table again if its epoch moved: new addresses whose
    /// name has a check become targets (one whose slot is checked already, the
    /// same `ADDRESS:PORT/PROTOCOL` as a plan's remote or another name's address,
    /// shares that check), and a discovered target is checked while one of its
    /// addresses is in its name's set.
    fn follow_discovery(&mut self) {
        let Some(mut discovered) = self.discovered.take() else {
            return;
        };
        let epoch = discovered.table.epoch();
        if discovered.seen != Some(epoch) {
            discovered.seen = Some(epoch);
            discovered.table.acquire();
            let entries: Vec<_> = (0..discovered.table.entries())
                .map_while(|i| discovered.table.read(i))
                .collect();
            for entry in entries.iter().skip(discovered.targets.len()) {
                let target = self.add_discovered(&discovered.names, entry);
                discovered.targets.push(target);
            }
            let mut live = vec![false; self.targets.len()];
            for (entry, target) in entries.iter().zip(&discovered.targets) {
                if let Some(&index) = target.as_ref() {
                    live[index] |= entry.live;
                }
            }
            for (index, live) in live.into_iter().enumerate() {
                if self.found[index] {
                    self.set_active(index, live);
                }
            }
        }
        self.discovered = Some(discovered);
    }

    /// The target of a new discovery entry (`None`: not checked).
    fn add_discovered(
        &mut self,
        names: &[tcprelay_plan::Discovered],
        entry: &crate::discovery::Entry,
    ) -> Option<usize> {
        let discovered = names.get(entry.name)?;
        let check = discovered.template.check.as_ref()?;
        if entry.slot == 0 {
            return None;
        }
        if let Some(index) = self.targets.iter().position(|t| t.slot == entry.slot) {
            return Some(index);
        }
        let mut remote = discovered.template.clone();
        remote.address = entry.address;
        let mut target = match Target::new(entry.slot, &remote, check) {
            Ok(t) => t,
            Err(e) => {
                warn!("health check: {e}: not checked");
                return None;
            }
        };
        if let Err(e) = target.prepare_tls() {
            warn!(
                "health check: remote {}: {e}; its TLS checks fail",
                target.address
            );
        }
        crate::debug!(
            "health check: remote {} (found for {}) checked",
            target.address,
            discovered.name
        );
        self.targets.push(target);
        self.running.push(None);
        self.next.push(Instant::now());
        self.active.push(true);
        self.found.push(true);
        Some(self.targets.len() - 1)
    }

    /// Checks target `index` again (at once), or stops checking it (a check under
    /// way is dropped: its result would be about an address no longer used).
    fn set_active(&mut self, index: usize, active: bool) {
        if self.active[index] == active {
            return;
        }
        self.active[index] = active;
        if active {
            self.next[index] = Instant::now();
        } else if let Some(running) = self.running[index].take() {
            let fd = running.probe.fd();
            let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
        }
        crate::debug!(
            "health check: remote {} {}",
            self.targets[index].address,
            if active {
                "is in its name's set again: checked"
            } else {
                "retired from its name's set: no longer checked"
            }
        );
    }

    /// One turn: starts the checks that are due, waits for readiness (until the next
    /// start or timeout, or `limit`), advances the checks that are ready and fails
    /// those past their timeout. The tokens of other sources that were ready.
    fn turn(&mut self, events: &mut Events, limit: Option<Instant>) -> io::Result<Vec<Token>> {
        self.follow_discovery();
        let now = Instant::now();
        for index in 0..self.targets.len() {
            if self.active[index] && self.running[index].is_none() && self.next[index] <= now {
                self.start(index, now);
            }
        }
        let wake = self
            .next
            .iter()
            .zip(&self.running)
            .zip(&self.active)
            .filter(|((_, running), active)| **active || running.is_some())
            .map(|((next, running), _)| running.as_ref().map_or(*next, |r| r.deadline))
            .chain(limit)
            .min();
        let timeout = wake.map(|t| t.saturating_duration_since(Instant::now()));
        if let Err(e) = self.poll.poll(events, timeout) {
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        let mut foreign = Vec::new();
        for event in events.iter() {
            let index = event.token().0;
            if index < self.targets.len() {
                self.advance(index);
            } else {
                foreign.push(event.token());
            }
        }
        let now = Instant::now();
        for index in 0..self.targets.len() {
            if self.running[index]
                .as_ref()
                .is_some_and(|r| r.deadline <= now)
            {
                self.finish(index, Outcome::Timeout);
            }
        }
        Ok(foreign)
    }

    fn start(&mut self, index: usize, now: Instant) {
        let target = &self.targets[index];
        let interval = Duration::from_millis(u64::from(target.check.interval_ms.max(1)));
        let timeout = Duration::from_millis(u64::from(target.check.timeout_ms.max(1)));
        // The next start is an interval after this one, never in the past (a
        // checker held up does not run a burst of checks to catch up).
        self.next[index] = (self.next[index] + interval).max(now);
        let running = match Probe::start(target) {
            Ok(probe) => Running {
                probe,
                started: now,
                deadline: now + timeout,
            },
            Err(outcome) => {
                self.record(index, outcome, Duration::ZERO);
                return;
            }
        };
        let fd = running.probe.fd();
        if let Err(e) = self.poll.registry().register(
            &mut SourceFd(&fd),
            Token(index),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            crate::debug!("health check: cannot watch a check's socket: {e}");
            self.record(index, Outcome::Error, Duration::ZERO);
            return;
        }
        self.running[index] = Some(running);
        // A connect may have ended at once (loopback): go as far as it can.
        self.advance(index);
    }

    fn advance(&mut self, index: usize) {
        let Some(running) = self.running[index].as_mut() else {
            return;
        };
        if let Some(outcome) = running.probe.advance(&self.targets[index]) {
            self.finish(index, outcome);
        }
    }

    fn finish(&mut self, index: usize, outcome: Outcome) {
        let Some(running) = self.running[index].take() else {
            return;
        };
        let fd = running.probe.fd();
        let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
        let took = running.started.elapsed();
        drop(running);
        self.record(index, outcome, took);
    }

    fn record(&mut self, index: usize, outcome: Outcome, took: Duration) {
        let target = &self.targets[index];
        let check = &target.check;
        match self.table.record(
            target.slot,
            outcome,
            took,
            SystemTime::now(),
            check.rise,
            check.fall,
        ) {
            Some(Transition::Down) => warn!(
                "health check: remote {} is down: {} check(s) in a row failed, the last: {outcome} ({} ms)",
                target.address,
                check.fall,
                took.as_millis()
            ),
            Some(Transition::Up) => info!(
                "health check: remote {} is up again: {} check(s) in a row passed",
                target.address, check.rise
            ),
            None => crate::debug!(
                "health check: remote {}: {outcome} in {} ms",
                target.address,
                took.as_millis()
            ),
        }
    }

    /// Runs checks until `until` (tests).
    #[cfg(test)]
    fn run_until(&mut self, until: Instant) {
        let mut events = Events::with_capacity(64);
        while Instant::now() < until {
            self.turn(&mut events, Some(until)).expect("poll");
        }
    }

    /// The checker process's loop: until SIGTERM/SIGINT, or the master's end of
    /// `control` closes. The exit code.
    pub fn run(
        mut self,
        mut control: mio::net::UnixStream,
        mut signals: Option<mio::unix::pipe::Receiver>,
    ) -> i32 {
        let registry = self.poll.registry();
        if let Err(e) = registry.register(&mut control, CONTROL_TOKEN, Interest::READABLE) {
            warn!("health check: cannot watch the master: {e}");
            return 1;
        }
        if let Some(signals) = signals.as_mut() {
            if let Err(e) = registry.register(signals, SIGNAL_TOKEN, Interest::READABLE) {
                warn!("health check: cannot watch signals: {e}");
                return 1;
            }
        }
        let mut events = Events::with_capacity(256);
        loop {
            let foreign = match self.turn(&mut events, None) {
                Ok(f) => f,
                Err(e) => {
                    warn!("health check: event loop failed: {e}");
                    return 1;
                }
            };
            for token in foreign {
                if token == SIGNAL_TOKEN {
                    if let Some(signals) = signals.as_mut() {
                        let got = crate::os::read_signals(signals);
                        if got.contains(&libc::SIGTERM) || got.contains(&libc::SIGINT) {
                            return 0;
                        }
                    }
                } else if token == CONTROL_TOKEN && master_gone(&mut control) {
                    return 0;
                }
            }
        }
    }
}

/// Reads what the master's end sent (a byte when the discovery table changed,
/// which the next turn follows): true at end of file.
fn master_gone(control: &mut mio::net::UnixStream) -> bool {
    use std::io::Read;
    let mut buf = [0u8; 64];
    loop {
        match control.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
}
