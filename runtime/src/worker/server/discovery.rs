//! The remotes found by DNS (`crate::discovery`), as a worker follows them: at
//! each selection the table's epoch is looked at (one relaxed load), and when it
//! moved the new entries are appended after the plan's remotes (a remote like the
//! name's template at the address found, with its own counters' slot, TLS client
//! context and balancer state) and every entry's membership is read again: a
//! retired address gets no new session, its sessions go on.

use super::*;
use crate::discovery::Table;
use crate::stats::RemoteSlot;
use tcprelay_plan::Discovered;

/// A worker's view of the discovery table.
#[derive(Debug)]
pub(super) struct Follow {
    table: Table,
    seen: Option<u64>,
    /// Entries appended so far.
    known: usize,
    /// The plan's remotes: entry `i` is remote `plan + i`.
    plan: usize,
    names: Vec<Discovered>,
}

impl Follow {
    pub(super) fn new(table: Table, plan: usize, names: Vec<Discovered>) -> Follow {
        Follow {
            table,
            seen: None,
            known: 0,
            plan,
            names,
        }
    }
}

impl Worker {
    /// Brings the remotes in line with the discovery table if it changed.
    pub(super) fn follow_discovery(&mut self) {
        let Some(follow) = self.discovery.as_mut() else {
            return;
        };
        let epoch = follow.table.epoch();
        if follow.seen == Some(epoch) {
            return;
        }
        follow.seen = Some(epoch);
        follow.table.acquire();
        let count = follow.table.entries();
        let mut added = Vec::new();
        for index in 0..count {
            let Some(entry) = follow.table.read(index) else {
                break;
            };
            if index >= follow.known {
                let Some(template) = follow.names.get(entry.name) else {
                    // Not this plan's (cannot happen: one table per generation).
                    break;
                };
                let mut remote = template.template.clone();
                remote.address = entry.address;
                remote.weight = entry.weight;
                added.push((remote, entry.slot));
                follow.known = index + 1;
            }
        }
        for (remote, slot) in added {
            self.add_discovered(remote, slot);
        }
        // Every entry's membership, the newcomers' included.
        let Some(follow) = self.discovery.as_ref() else {
            return;
        };
        for index in 0..follow.known {
            if let Some(entry) = follow.table.read(index) {
                self.balancer
                    .set_membership(follow.plan + index, entry.live, entry.weight);
            }
        }
    }

    /// Appends one remote found by DNS to every per-remote list of the worker.
    fn add_discovered(&mut self, remote: Remote, slot: usize) {
        crate::debug!(
            "worker {}: discovered remote {} joins",
            self.id,
            remote.address
        );
        let key = tcprelay_plan::balance::remote_key(&remote.key());
        self.balancer
            .add_remote(remote.weight, slot, key, remote.route);
        self.remote_tls.extend(remote_tls::client_contexts(
            self.id,
            std::slice::from_ref(&remote),
        ));
        self.unsupported_logged.push(false);
        self.reported_dead.push(false);
        self.dead_counted.push(false);
        if let Some(counting) = self.counting.as_mut() {
            let index = self.remotes.len();
            counting.slots.remotes.resize(index, RemoteSlot::OVERFLOW);
            counting.slots.remotes.push(RemoteSlot::from_index(slot));
        }
        self.remotes.push(remote);
    }
}
