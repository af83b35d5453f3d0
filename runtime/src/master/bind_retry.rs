//! `bind retry delay`: a listener whose bind failed at start or at a reload is
//! tried again every so many seconds, by the master's loop (it never blocks on
//! it), while the relay serves on the others. The failure is logged once, when
//! the listener starts waiting; the success once, with the attempts it took.
//!
//! Workers inherit the listening sockets at the fork, so a socket bound later
//! reaches none of the running workers: once it is bound the master forks a new
//! generation of the same plan, and the running one drains, as after a reload (no
//! connection is refused meanwhile: the other sockets stay open in the master).

use super::Master;
use crate::listen::{self, Pending};
use crate::{info, warn};
use std::time::Instant;

/// Says once for each listener that it waits.
pub(super) fn log_pending(pending: &[Pending]) {
    for p in pending {
        warn!(
            "{}: trying again every {} s (bind retry delay)",
            p.error,
            p.spec.bind_retry_delay.unwrap_or(1)
        );
    }
}

impl Master {
    /// When the next listener is to be tried again, for the master's poll.
    pub(super) fn next_bind_retry(&self) -> Option<Instant> {
        self.pending.iter().map(|p| p.next).min()
    }

    /// Tries the listeners whose time has come; if any is bound, a new generation
    /// of workers takes it.
    pub(super) fn retry_binds(&mut self) {
        let now = Instant::now();
        if self.stopping || !self.pending.iter().any(|p| p.next <= now) {
            return;
        }
        let defaults = listen::Defaults::of(&self.plan.spawnd);
        let mut bound = Vec::new();
        self.pending.retain_mut(|p| {
            if p.next > now {
                return true;
            }
            match listen::retry(p, &defaults) {
                Some(b) => {
                    bound.push((b, p.attempts + 1));
                    false
                }
                None => {
                    crate::debug!("{} (attempt {})", p.error, p.attempts);
                    true
                }
            }
        });
        if bound.is_empty() {
            return;
        }
        // Listener tokens are positions in `listeners`, which changes: out of
        // overload first, as a reload does (worked out again after this turn).
        self.set_overload(false);
        for (b, attempts) in bound {
            info!(
                "listening on {} after {attempts} attempts (bind retry delay)",
                b.describe()
            );
            self.listeners.push(b);
        }
        // Plan order, as the workers and the counters know them.
        let order = &self.plan.spawnd.listeners;
        self.listeners.sort_by_key(|b| {
            order
                .iter()
                .position(|spec| b.serves(spec))
                .unwrap_or(usize::MAX)
        });
        let draining = self.next_generation();
        info!(
            "generation {} takes the listeners bound since ({draining} old worker(s) draining)",
            self.generation
        );
    }
}
