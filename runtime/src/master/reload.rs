//! SIGHUP's reload by generations: the plan read or compiled again (the master
//! supervising meanwhile), then checked, the listeners re-bound, a new generation
//! forked and only then the old one told to drain. Any failure keeps the running plan.

use super::Master;
use crate::control::ToWorker;
use crate::listen;
use crate::load;
use crate::worker;
use crate::{error, info, notice, warn};
use mio::Token;

impl Master {
    /// SIGHUP: reads the plan again, or starts compiling the configuration again
    /// (the master goes on supervising and obeying signals meanwhile, and
    /// [`Master::compiled`] takes over when the compiler has exited).
    pub(super) fn reload(&mut self) {
        if self.compiling.is_some() {
            notice!("reload requested while the last one is compiling: another follows it");
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
        // The control socket and the metrics endpoint a changed plan asks for are
        // bound before anything changes; put in place once the listeners are.
        let ctl = self.rebind_ctl(&plan)?;
        let metrics = self.rebind_metrics(plan.spawnd.metrics.as_ref())?;
        // The sockets leave overload (backlog, watch) before some move to the new
        // set; the state is worked out again after this turn.
        self.set_overload(false);
        let listeners = listen::bind_all(
            &plan.spawnd.listeners,
            &plan.spawnd.keepalive,
            &mut self.listeners,
        )?;
        setenv.apply();
        // Sockets no longer in the plan are closed here; old workers keep their own
        // copies until they drain.
        self.listeners = listeners;
        self.install_ctl(ctl);
        self.install_metrics(metrics);
        self.plan_hash = super::ctl::plan_hash(&plan);
        self.plan = plan;
        self.tls = tls;
        // The new plan's counter slots: a listener or remote it shares with the old
        // one keeps its slot, so its counts go on.
        if let Some(registry) = &mut self.stats {
            let slots = registry.assign(&self.plan);
            let old = std::mem::replace(&mut self.slots, slots);
            self.old_slots.push((self.generation, old));
        }
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
        Ok(old.len())
    }
}
