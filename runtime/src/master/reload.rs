//! SIGHUP's reload by generations: the plan read or compiled again (the master
//! supervising meanwhile), then checked, the listeners re-bound, a new generation
//! forked and only then the old one told to drain. Any failure keeps the running plan.
//!
//! Old generations drain for as long as their sessions last, unless the plan that
//! replaced them bounds it: `drain timeout` gives each a deadline (a later reload
//! may bring it forward), kept here by the master (one instant for all of a
//! generation's workers), at which its workers are told [`ToWorker::DrainOver`]
//! (close the sessions left, exit); `drain generations` caps how many drain at
//! once, the oldest being told so at once when a reload would leave more.

use super::Master;
use crate::control::ToWorker;
use crate::listen;
use crate::load;
use crate::worker;
use crate::{error, info, notice, warn};
use mio::Token;
use std::time::{Duration, Instant};

/// An old generation draining after a reload.
#[derive(Debug)]
pub(super) struct Drain {
    generation: u64,
    /// When its remaining sessions are closed (`None`: when they end).
    deadline: Option<Instant>,
    /// Its workers were told [`ToWorker::DrainOver`].
    over: bool,
}

impl Master {
    /// SIGHUP: reads the plan again, or starts compiling the configuration again
    /// (the master goes on supervising and obeying signals meanwhile, and
    /// [`Master::compiled`] takes over when the compiler has exited).
    pub(super) fn reload(&mut self) {
        if self.compiling.is_some() || self.resolving.is_some() {
            notice!(
                "reload requested while the last one is compiling or resolving: another follows it"
            );
            self.reload_again = true;
            return;
        }
        self.notify.reloading();
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
    /// one drains. Any failure keeps the running plan. Either way the reload has
    /// ended, and systemd is told so (with what is served now).
    pub(super) fn compiled(&mut self, loaded: Result<load::Loaded, String>) {
        // A plan with discovered names waits for their first resolution (the
        // master serving on meanwhile): `resolver.rs` comes back here with them.
        let loaded = match loaded {
            Ok(loaded) if !loaded.plan.relay.discovered.is_empty() && self.incoming.is_none() => {
                self.resolve_before_reload(loaded);
                return;
            }
            other => other,
        };
        match self.swap(loaded) {
            Ok(draining) => {
                let summary = format!(
                    "listening on {}; {} remote(s); {draining} old worker(s) draining",
                    self.bound_addresses().join(", "),
                    self.plan.relay.remotes.len(),
                );
                info!("reloaded (generation {}): {summary}", self.generation);
                self.notify.ready(&format!(
                    "reloaded: generation {}; {summary}",
                    self.generation
                ));
                self.answer_reload(Ok(format!(
                    "reloaded: generation {} runs; {summary}",
                    self.generation
                )));
            }
            Err(e) => {
                let mut lines = e.lines();
                let first = lines.next().unwrap_or_default();
                error!("reload failed, keeping the running plan: {first}");
                for line in lines {
                    error!("{line}");
                }
                self.reloads_failed += 1;
                self.answer_reload(Err(format!(
                    "reload failed, still serving generation {}: {e}",
                    self.generation
                )));
                self.notify.ready(&format!(
                    "reload failed: {first}; still serving generation {}",
                    self.generation
                ));
            }
        }
        if std::mem::take(&mut self.reload_again) && !self.stopping {
            self.reload();
        }
    }

    /// Makes `loaded` the running plan, or changes nothing and says why (the first
    /// line the reason, then details); the number of old workers told to drain.
    fn swap(&mut self, loaded: Result<load::Loaded, String>) -> Result<usize, String> {
        let loaded = loaded?;
        for line in &loaded.warnings {
            warn!("{line}");
        }
        let plan = loaded.plan;
        let tls = crate::tls_context::for_plan(&plan)?;
        // The new workers would fail one by one on a mechanism this system lacks.
        worker::Mechanism::after_setenv(&plan.env)?;
        // Checked before anything changes, applied once the listeners are bound.
        let setenv = crate::Setenv::check(&plan.env)?;
        // A check's `expect regex` that does not compile refuses the plan.
        crate::checker::check_plan(&plan)?;
        // The control socket and the metrics endpoint a changed plan asks for are
        // bound before anything changes; put in place once the listeners are.
        let ctl = self.rebind_ctl(&plan)?;
        let metrics = self.rebind_metrics(plan.spawnd.metrics.as_ref())?;
        // The sockets leave overload (backlog, watch) before some move to the new
        // set; the state is worked out again after this turn.
        self.set_overload(false);
        let listeners = listen::bind_all(
            &plan.spawnd.listeners,
            &listen::Defaults::of(&plan.spawnd),
            &listen::Defaults::of(&self.plan.spawnd),
            &mut self.listeners,
        )?;
        setenv.apply();
        // Sockets no longer in the plan are closed here; old workers keep their own
        // copies until they drain. Those that could not be bound are tried again
        // (`bind retry delay`), those of the old plan still waiting are forgotten.
        self.listeners = listeners.bound;
        super::bind_retry::log_pending(&listeners.pending);
        self.pending = listeners.pending;
        self.install_ctl(ctl);
        self.install_metrics(metrics);
        self.plan_hash = super::ctl::plan_hash(&plan);
        let old_plan = std::mem::replace(&mut self.plan, plan);
        self.tls = tls.server;
        self.route_tls = tls.routes;
        self.certificates = tls.certificates;
        // The new plan's counter slots: a listener or remote it shares with the old
        // one keeps its slot, so its counts go on.
        let old_remote_slots: Vec<usize> = self.slots.remotes.iter().map(|s| s.index()).collect();
        if let Some(registry) = &mut self.stats {
            let slots = registry.assign(&self.plan);
            let old = std::mem::replace(&mut self.slots, slots);
            self.old_slots.push((self.generation, old));
        }
        // The old generation's remotes found by DNS, before its discovery goes.
        let old_found = super::resolver::found(&old_plan.relay, &self.discovery.entries());
        self.discovery_reloaded();
        self.steering_reloaded(&old_plan.relay.remotes);
        self.sticky_layout();
        self.checker_reloaded(&old_plan.relay.remotes, &old_remote_slots, &old_found);
        Ok(self.next_generation())
    }

    /// Forks a new generation of the running plan and tells the workers of the
    /// current one to drain; how many were told.
    pub(super) fn next_generation(&mut self) -> usize {
        self.generation += 1;
        self.set_title();
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
        self.start_drain(self.generation - 1);
        old.len()
    }

    /// Generation `previous` has just been replaced: it drains, until the new plan's
    /// drain timeout if it has one, which also bounds the older generations still
    /// draining (a deadline is brought forward, never postponed); then at most
    /// `drain generations` drain.
    fn start_drain(&mut self, previous: u64) {
        let timeout = self.plan.relay.drain_timeout;
        let deadline = (timeout > 0)
            .then(|| Instant::now().checked_add(Duration::from_secs(u64::from(timeout))))
            .flatten();
        if let Some(at) = deadline {
            for drain in self.drains.iter_mut().filter(|d| !d.over) {
                drain.deadline = Some(drain.deadline.map_or(at, |old| old.min(at)));
            }
        }
        if self.workers.values().any(|w| w.generation == previous) {
            self.drains.push(Drain {
                generation: previous,
                deadline,
                over: false,
            });
        }
        self.cap_drains();
    }

    /// When the sessions of old generation `generation` will be closed (its drain
    /// timeout), if it drains with a deadline not yet reached.
    pub(super) fn drain_deadline(&self, generation: u64) -> Option<Instant> {
        self.drains
            .iter()
            .find(|d| d.generation == generation && !d.over)
            .and_then(|d| d.deadline)
    }

    /// The next drain deadline, for the master's poll.
    pub(super) fn next_drain_deadline(&self) -> Option<Instant> {
        self.drains
            .iter()
            .filter(|d| !d.over)
            .filter_map(|d| d.deadline)
            .min()
    }

    /// Ends the drains whose deadline has passed, and forgets the generations none
    /// of whose workers is left.
    pub(super) fn expire_drains(&mut self) {
        let now = Instant::now();
        for index in 0..self.drains.len() {
            let drain = &self.drains[index];
            if !drain.over && drain.deadline.is_some_and(|at| at <= now) {
                self.end_drain(index, "its drain timeout has passed");
            }
        }
        let workers = &self.workers;
        self.drains
            .retain(|d| workers.values().any(|w| w.generation == d.generation));
    }

    /// At most `drain generations` old generations drain: the oldest beyond are
    /// told to close their sessions and exit.
    fn cap_drains(&mut self) {
        let cap = self.plan.relay.drain_generations.max(1) as usize;
        let mut draining = self.drains.iter().filter(|d| !d.over).count();
        // Oldest first: they are pushed in generation order.
        for index in 0..self.drains.len() {
            if draining <= cap {
                break;
            }
            if !self.drains[index].over {
                self.end_drain(
                    index,
                    &format!("more than {cap} old generation(s) would drain"),
                );
                draining -= 1;
            }
        }
    }

    /// Tells the workers of the drain at `index` that it is over.
    fn end_drain(&mut self, index: usize, why: &str) {
        let drain = &mut self.drains[index];
        drain.over = true;
        let generation = drain.generation;
        let mut told = 0;
        for w in self.workers.values_mut() {
            if w.generation == generation {
                w.leaving = true;
                Self::send(w, ToWorker::DrainOver);
                told += 1;
            }
        }
        notice!("generation {generation}: {why}: closing the sessions of its {told} worker(s)");
    }
}
