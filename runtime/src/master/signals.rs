//! The master's signals, but SIGHUP's reload (`reload.rs`): their dispatch, SIGUSR1's
//! status report and SIGTERM/SIGINT's graceful stop.

use super::{Master, Worker, STOP_GRACE_SECS};
use crate::control::ToWorker;
use crate::os;
use crate::{info, notice};

impl Master {
    pub(super) fn on_signal(&mut self, signal: libc::c_int) {
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
                let draining = match (w.leaving, self.drain_deadline(w.generation)) {
                    (false, _) => String::new(),
                    (true, None) => ", draining".to_string(),
                    (true, Some(at)) => format!(
                        ", draining, sessions closed in {} s",
                        at.saturating_duration_since(std::time::Instant::now())
                            .as_secs()
                    ),
                };
                format!(
                    "{} (generation {}{}{draining})",
                    w.pid,
                    w.generation,
                    if w.full { ", full" } else { "" },
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
        if let Some(line) = self.health_status() {
            notice!("{line}");
        }
        if let Some(line) = self.discovery_status() {
            notice!("{line}");
        }
        // Each worker reports its own sessions and remotes.
        for w in ws {
            let _ = os::kill(w.pid, libc::SIGUSR1);
        }
    }

    pub(super) fn stop(&mut self) {
        let grace = if self.stopping { 0 } else { STOP_GRACE_SECS };
        let stopping = format!(
            "stopping: {} worker(s) get {grace} s to finish their sessions",
            self.workers.len()
        );
        info!("{stopping}");
        if !self.stopping {
            self.notify.stopping(&stopping);
        }
        self.set_overload(false);
        self.stopping = true;
        self.stop_deadline =
            Some(std::time::Instant::now() + std::time::Duration::from_secs(grace.into()));
        self.spawn_after = None;
        if let Some(mut compile) = self.compiling.take() {
            compile.kill();
        }
        self.abandon_reload();
        self.stop_checker();
        self.stop_resolvers();
        self.listeners.clear();
        for w in self.workers.values_mut() {
            w.leaving = true;
            Self::send(w, ToWorker::Stop { grace_secs: grace });
        }
    }
}
