//! The checker process as the master sees it (`crate::checker`): forked with the
//! workers (after the privileges are dropped, like them) when the plan checks any
//! remote, replaced at every reload (the health table keeps each remote's state by
//! slot; a remote new to the plan starts up and unchecked), restarted when it dies
//! (at most 3 deaths in 10 s, then after 5 s), reaped like a worker and stopped
//! with them.

use super::{Master, SIGNALS};
use crate::checker::{self, Checker};
use crate::health::{Health, Table};
use crate::notify::Notify;
use crate::os::{self, Fork};
use crate::{error, info, warn};
use mio::net::UnixStream;
use std::time::{Duration, Instant, SystemTime};
use tcprelay_plan::Remote;

/// How long a reload waits for the old checker to exit before starting the new
/// one anyway.
const REPLACE_WITHIN: Duration = Duration::from_secs(1);

/// The checker process alive.
#[derive(Debug)]
pub(super) struct CheckerProcess {
    pid: libc::pid_t,
    /// The master's end of a socket pair: the checker sees end of file on its end
    /// when the master has gone, and exits; a byte sent wakes it to follow the
    /// discovery table.
    control: UnixStream,
    /// Told to stop (a reload replaced it, or the relay stops): its exit is expected.
    leaving: bool,
}

impl CheckerProcess {
    /// The discovery table changed: the checker is woken to follow it (a byte on
    /// its control socket; if the socket is full, bytes are waiting already).
    pub(super) fn nudge(&mut self) {
        let _ = std::io::Write::write(&mut self.control, &[1]);
    }
}

/// The master's side of the checks.
#[derive(Debug, Default)]
pub(super) struct Checks {
    /// The table (`None` if the shared memory could not be made: no checks run,
    /// every remote is up).
    pub table: Option<Table>,
    /// The current checker, and those told to stop and not reaped yet.
    pub current: Option<CheckerProcess>,
    leaving: Vec<CheckerProcess>,
    brake: super::brake::Brake,
    /// A start held back until then (deaths in a row; a reload whose old checker
    /// has not exited yet).
    pub restart_at: Option<Instant>,
    /// Health slots a reload made new, reset once no checker runs (so that the
    /// table has one writer at a time), and whether a checker is to start then.
    resets: Vec<usize>,
    resume: bool,
}

impl Checks {
    pub(super) fn new() -> Checks {
        Checks {
            table: Table::new()
                .inspect_err(|e| {
                    warn!("cannot share memory for health checks ({e}): remotes are not checked")
                })
                .ok(),
            ..Checks::default()
        }
    }
}

impl Master {
    /// The running plan's remotes' slots in the health table (plan order).
    fn health_slots(&self) -> Vec<usize> {
        self.slots.remotes.iter().map(|s| s.index()).collect()
    }

    /// Forks the checker of the current plan, if it checks any remote.
    pub(super) fn start_checker(&mut self) {
        if self.stopping || self.checks.current.is_some() {
            return;
        }
        let Some(table) = self.checks.table.clone() else {
            return;
        };
        // The names found by DNS whose remotes are checked: the checker follows
        // the generation's discovery table for their addresses.
        let discovered = self.discovery.table().filter(|_| {
            self.plan
                .relay
                .discovered
                .iter()
                .any(|d| d.template.check.is_some())
        });
        if discovered.is_none() && !self.plan.relay.remotes.iter().any(|r| r.check.is_some()) {
            return;
        }
        let targets = match checker::targets(&self.plan, &self.health_slots()) {
            Ok(t) => t,
            Err(e) => {
                // The plan was refused at load for this; nothing to check.
                error!("health checks not started: {e}");
                return;
            }
        };
        if targets.is_empty() && discovered.is_none() {
            warn!("health checks not started: no checked remote has a counter slot");
            return;
        }
        let discovered =
            discovered.map(|d| checker::Discovered::new(d, self.plan.relay.discovered.clone()));
        let (master_end, checker_end) = match UnixStream::pair() {
            Ok(p) => p,
            Err(e) => {
                error!("cannot create the checker's control socket: {e}");
                return;
            }
        };
        let count = targets.len();
        match os::fork() {
            Err(e) => error!("cannot fork the health checker: {e}"),
            Ok(Fork::Child) => {
                drop(master_end);
                let code = self.become_checker(targets, discovered, table, checker_end);
                std::process::exit(code);
            }
            Ok(Fork::Parent(pid)) => {
                drop(checker_end);
                let found = if self.plan.relay.discovered.is_empty() {
                    String::new()
                } else {
                    " and those found by DNS".to_string()
                };
                info!("health checker {pid} started: {count} remote(s){found} checked");
                self.checks.current = Some(CheckerProcess {
                    pid,
                    control: master_end,
                    leaving: false,
                });
            }
        }
    }

    /// In the child after `fork`: drop everything of the master's and check.
    fn become_checker(
        &mut self,
        targets: Vec<checker::Target>,
        discovered: Option<checker::Discovered>,
        table: Table,
        control: UnixStream,
    ) -> i32 {
        crate::log::become_checker();
        os::set_title(
            self.plan.spawnd.proctitle.as_deref(),
            &format!("checker gen {}", self.generation),
        );
        // The workers' control sockets and the listeners are closed here: a worker
        // must see end of file when the master dies, and a port must be free once
        // the master has gone.
        self.workers.clear();
        self.listeners.clear();
        self.ctl = None;
        self.old_ctl = None;
        self.metrics = None;
        self.notify = Notify::default();
        self.checks.current = None;
        self.checks.leaving.clear();
        self.drop_resolver_handles();
        let _ = os::default_signals(SIGNALS);
        let signals = match os::signal_pipe(&[libc::SIGTERM, libc::SIGINT]) {
            Ok(s) => Some(s),
            Err(e) => {
                error!("health checker cannot set up signals: {e}");
                None
            }
        };
        match Checker::new(targets, table) {
            Ok(mut checker) => {
                if let Some(discovered) = discovered {
                    checker.follow(discovered);
                }
                checker.run(control, signals)
            }
            Err(e) => {
                error!("health checker cannot start: {e}");
                1
            }
        }
    }

    /// Tells the current checker to stop (a reload, or the relay stops).
    pub(super) fn stop_checker(&mut self) {
        if let Some(mut process) = self.checks.current.take() {
            process.leaving = true;
            let _ = os::kill(process.pid, libc::SIGTERM);
            self.checks.leaving.push(process);
        }
        self.checks.restart_at = None;
    }

    /// A remote found by DNS takes counter slot `slot` that no live plan used
    /// (`fresh`): its health starts again (up, not checked), as a remote new to
    /// the plan's does. No checker writes that slot meanwhile: they check only
    /// the remotes of live plans.
    pub(super) fn fresh_health(table: Option<&Table>, slot: usize) {
        if let Some(table) = table {
            if slot != 0 && table.read(slot) != Health::default() {
                table.reset(slot);
            }
        }
    }

    /// In a forked worker: the checkers' handles are the master's (their
    /// processes go on).
    pub(super) fn stop_checker_handles(&mut self) {
        self.checks.current = None;
        self.checks.leaving.clear();
    }

    /// A reload made the new plan current: the health of a remote new to the plan,
    /// or one no longer checked, starts again (up, not checked); one that stays
    /// keeps its state. The old checker is told to stop; once it has exited (or
    /// after [`REPLACE_WITHIN`]) those slots are reset and the new checker starts.
    /// `old_slots`: the previous plan's remotes' slots.
    /// `old_found`: the previous generation's remotes found by DNS, which count as
    /// remotes of its plan here (as the new generation's found so far do of the
    /// new plan).
    pub(super) fn checker_reloaded(
        &mut self,
        old: &[Remote],
        old_slots: &[usize],
        old_found: &[super::resolver::Found],
    ) {
        if let Some(table) = &self.checks.table {
            let with_found =
                |remotes: &[Remote], slots: Vec<usize>, found: &[super::resolver::Found]| {
                    let mut remotes = remotes.to_vec();
                    let mut slots = slots;
                    remotes.extend(found.iter().map(|f| f.remote.clone()));
                    slots.extend(found.iter().map(|f| f.slot));
                    (remotes, slots)
                };
            let (old, old_slots) = with_found(old, old_slots.to_vec(), old_found);
            let (new, new_slots) = with_found(
                &self.plan.relay.remotes,
                self.health_slots(),
                &self.discovered_remotes(),
            );
            let resets = changed(table, &old, &old_slots, &new, &new_slots);
            self.checks.resets.extend(resets);
        }
        self.stop_checker();
        self.checks.resume = true;
        if self.checks.leaving.is_empty() {
            self.resume_checks();
        } else {
            self.checks.restart_at = Some(Instant::now() + REPLACE_WITHIN);
        }
    }

    /// No checker runs (or the old one is given up on): the slots a reload made
    /// new are reset, then the current plan's checker starts.
    fn resume_checks(&mut self) {
        if let Some(table) = &self.checks.table {
            for slot in std::mem::take(&mut self.checks.resets) {
                table.reset(slot);
            }
        }
        self.checks.resume = false;
        self.checks.restart_at = None;
        self.start_checker();
    }

    /// Whether `pid` was a checker (then it is reaped here: an unexpected death
    /// restarts it, with a brake).
    pub(super) fn reap_checker(&mut self, pid: libc::pid_t, exit: os::ChildExit) -> bool {
        if let Some(at) = self.checks.leaving.iter().position(|c| c.pid == pid) {
            self.checks.leaving.swap_remove(at);
            if self.checks.leaving.is_empty() && self.checks.resume && !self.stopping {
                self.resume_checks();
            }
            return true;
        }
        if self.checks.current.as_ref().is_none_or(|c| c.pid != pid) {
            return false;
        }
        self.checks.current = None;
        if self.stopping {
            return true;
        }
        warn!("health checker {pid} died ({exit}): starting another");
        match self
            .checks
            .brake
            .death("the health checker", Instant::now())
        {
            Some(at) => self.checks.restart_at = Some(at),
            None => self.start_checker(),
        }
        true
    }

    /// Starts a checker held back by the brake once its time has come.
    pub(super) fn checker_due(&mut self) {
        if self.checks.restart_at.is_some_and(|t| t <= Instant::now()) {
            self.checks.restart_at = None;
            if self.checks.resume {
                self.resume_checks();
            } else {
                self.start_checker();
            }
        }
    }

    /// The health of the running plan's remote `index` (plan order), if it is
    /// checked.
    pub(super) fn remote_health(&self, index: usize) -> Option<Health> {
        let remote = self.plan.relay.remotes.get(index)?;
        let slot = self.slots.remotes.get(index)?.index();
        self.slot_health(slot, remote.check.is_some())
    }

    /// The health of the remote in counter slot `slot`, if it is `checked`.
    pub(super) fn slot_health(&self, slot: usize, checked: bool) -> Option<Health> {
        let table = self.checks.table.as_ref()?;
        (checked && slot != 0).then(|| {
            table.acquire();
            table.read(slot)
        })
    }

    /// The SIGUSR1 status line of the checks (`None`: no remote is checked).
    pub(super) fn health_status(&self) -> Option<String> {
        let now = SystemTime::now();
        let parts: Vec<String> = (0..self.plan.relay.remotes.len())
            .filter_map(|index| {
                let health = self.remote_health(index)?;
                Some(format!(
                    "{} {}",
                    self.plan.relay.remotes[index].address,
                    describe(&health, now)
                ))
            })
            .collect();
        if parts.is_empty() {
            return None;
        }
        let checker = match (&self.checks.current, self.checks.restart_at) {
            (Some(c), _) => format!("checker {}", c.pid),
            (None, Some(_)) => "checker restarting".to_string(),
            (None, None) => "no checker".to_string(),
        };
        Some(format!("status: health ({checker}): {}", parts.join("; ")))
    }
}

/// A remote's health in words: `up`/`down`, then the last check's result, its
/// duration and how long ago it ended (`up, not checked yet` before the first).
pub fn describe(health: &Health, now: SystemTime) -> String {
    let state = if health.down { "down" } else { "up" };
    match (health.last, health.at) {
        (Some(last), Some(at)) => format!(
            "{state} (last check: {last} in {:.1} ms, {} s ago, {} in a row)",
            health.duration.as_secs_f64() * 1000.0,
            now.duration_since(at).unwrap_or_default().as_secs(),
            health.streak
        ),
        _ => format!("{state}, not checked yet"),
    }
}

/// The health slots of `new` remotes (slots `new_slots`) to reset: those new to
/// the plan (their slot was not the old plan's, or held another remote: a slot is
/// reused when none is left) or no longer checked, that are not as new already.
fn changed(
    table: &Table,
    old: &[Remote],
    old_slots: &[usize],
    new: &[Remote],
    new_slots: &[usize],
) -> Vec<usize> {
    let mut out = Vec::new();
    let mut kept = Vec::new();
    for (remote, &slot) in new.iter().zip(new_slots) {
        let before = old_slots
            .iter()
            .position(|&s| s == slot)
            .and_then(|i| old.get(i));
        let same = |b: &&Remote| b.address == remote.address && b.protocol == remote.protocol;
        let keep = remote.check.is_some() && before.filter(same).is_some_and(|b| b.check.is_some());
        if keep {
            kept.push(slot);
        } else if slot != 0 && table.read(slot) != Health::default() && !out.contains(&slot) {
            out.push(slot);
        }
    }
    // A slot two remotes share (a plan's remote and the same address found by
    // DNS) keeps its state when one of them keeps it.
    out.retain(|s| !kept.contains(s));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::Outcome;
    use tcprelay_plan::{Check, Protocol};

    fn remote(port: u16, checked: bool) -> Remote {
        Remote {
            address: ([127, 0, 0, 1], port).into(),
            protocol: Protocol::Tcp,
            weight: 1,
            send_proxy: None,
            tls: None,
            check: checked.then_some(Check {
                interval_ms: 1000,
                timeout_ms: 500,
                rise: 1,
                fall: 1,
                send: None,
                expect: None,
                tls: false,
            }),
            route: None,
        }
    }

    fn down(table: &Table, slot: usize) {
        table.record(
            slot,
            Outcome::Refused,
            Duration::ZERO,
            SystemTime::now(),
            1,
            1,
        );
    }

    #[test]
    fn a_reload_keeps_the_health_of_a_remote_that_stays_checked_and_resets_the_others() {
        let table = Table::new().unwrap();
        for slot in [1, 2, 3] {
            down(&table, slot);
        }
        // Slot 1 stays checked; slot 2 loses its check; slot 3's remote left the
        // plan and a new remote reuses the slot.
        let old = [remote(1, true), remote(2, true), remote(3, true)];
        let new = [remote(1, true), remote(2, false), remote(9, true)];
        assert_eq!(
            changed(&table, &old, &[1, 2, 3], &new, &[1, 2, 3]),
            [2, 3],
            "slot 1 kept; 2 no longer checked; 3 another remote's"
        );
        // A remote whose slot the old plan did not have starts up; one whose slot
        // is new already needs no reset.
        down(&table, 4);
        assert_eq!(
            changed(
                &table,
                &old,
                &[1, 2, 3],
                &[remote(4, true), remote(5, true)],
                &[4, 5]
            ),
            [4]
        );
    }

    #[test]
    fn a_slot_two_remotes_share_keeps_its_health_when_one_keeps_it() {
        let table = Table::new().unwrap();
        down(&table, 1);
        // A plan's remote and the same address found by DNS without a check share
        // slot 1: the checked one keeps it.
        let old = [remote(1, true)];
        let new = [remote(1, true), remote(1, false)];
        assert!(changed(&table, &old, &[1], &new, &[1, 1]).is_empty());
        // Neither keeps it: reset once.
        let new = [remote(1, false), remote(1, false)];
        assert_eq!(changed(&table, &old, &[1], &new, &[1, 1]), [1]);
    }

    #[test]
    fn describe_says_the_state_the_last_result_and_when() {
        let now = SystemTime::now();
        assert_eq!(describe(&Health::default(), now), "up, not checked yet");
        let table = Table::new().unwrap();
        table.record(
            1,
            Outcome::Timeout,
            Duration::from_micros(1500),
            now - Duration::from_secs(4),
            2,
            1,
        );
        assert_eq!(
            describe(&table.read(1), now),
            "down (last check: timeout in 1.5 ms, 4 s ago, 1 in a row)"
        );
    }
}
