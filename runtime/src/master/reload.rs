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
    pub(super) fn compiled(&mut self, loaded: Result<load::Loaded, String>) {
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
}
