//! Client affinity (`sticky cache`, `crate::sticky`): a client's first selection
//! prefers the remote its entry names, and every choice made for it (the first,
//! and each failover) is recorded, with this worker's seat and generation.
//!
//! The client is the address the session's `peer` holds when its remote is
//! selected: the PROXY-carried source on a PROXY-accepting listener (the header is
//! read before the selection), the TCP peer otherwise. A Unix-domain listener's
//! clients have no address and are not sticky.

use super::*;
use crate::sticky::{Entry, Key, Region};
use std::time::SystemTime;

/// A worker's part of the client affinity.
#[derive(Debug)]
pub(super) struct Affinity {
    config: crate::worker::Sticky,
    /// Each listener's port (plan order; `None`: a Unix-domain listener).
    ports: Vec<Option<u16>>,
    /// First selections that took the entry's remote, and those that found no
    /// entry or could not take its remote.
    pub(super) hits: u64,
    pub(super) misses: u64,
}

impl Affinity {
    /// The affinity of a worker with `listeners` (plan order), if any is sticky.
    pub(super) fn new(
        config: Option<crate::worker::Sticky>,
        listeners: &[crate::worker::Listener],
    ) -> Option<Affinity> {
        let config = config.filter(|c| c.regions.iter().any(Option::is_some))?;
        let ports = listeners
            .iter()
            .map(|l| match &l.socket {
                ListenSocket::Tcp(l) => l.local_addr().ok().map(|a| a.port()),
                ListenSocket::Unix(_) => None,
            })
            .collect();
        Some(Affinity {
            config,
            ports,
            hits: 0,
            misses: 0,
        })
    }

    /// The region and key of a client at `peer` on listener `listener`.
    fn key(&self, listener: usize, peer: Option<SocketAddr>) -> Option<(Region, Key)> {
        let region = (*self.config.regions.get(listener)?)?;
        let port = (*self.ports.get(listener)?)?;
        Some((region, self.config.table.key(peer?.ip(), port)))
    }
}

impl Worker {
    /// The remote (plan order) session `key`'s client went to last, if its entry
    /// is alive and names a remote of this plan.
    pub(super) fn sticky_preference(&self, key: usize) -> Option<usize> {
        let affinity = self.sticky.as_ref()?;
        let session = self.sessions.get(key)?;
        let (region, client) = affinity.key(session.meta.listener(), session.meta.peer)?;
        let entry = affinity
            .config
            .table
            .lookup(&region, client, SystemTime::now())?;
        let slot = usize::from(entry.remote_slot);
        (slot != 0)
            .then(|| affinity.config.slots.iter().position(|&s| s == slot))
            .flatten()
    }

    /// Records remote `index` as session `key`'s client's choice. `first` holds,
    /// for the session's first selection, the remote its entry preferred: a hit
    /// when that is the one chosen, else a miss.
    pub(super) fn sticky_record(&mut self, key: usize, index: usize, first: Option<Option<usize>>) {
        let Some(affinity) = self.sticky.as_mut() else {
            return;
        };
        let Some(session) = self.sessions.get(key) else {
            return;
        };
        let Some((region, client)) = affinity.key(session.meta.listener(), session.meta.peer)
        else {
            return;
        };
        if let Some(preferred) = first {
            let hit = preferred == Some(index);
            if hit {
                affinity.hits += 1;
            } else {
                affinity.misses += 1;
            }
            if let Some(counting) = self.counting.as_ref() {
                counting.counters.sticky(hit);
            }
            crate::debug!(
                "worker {}: session {}: sticky {} for {}",
                self.id,
                session.id,
                if hit { "hit" } else { "miss" },
                PeerText(session.meta.peer)
            );
        }
        let slot = affinity.config.slots.get(index).copied().unwrap_or(0);
        let Ok(remote_slot @ 1..) = u16::try_from(slot) else {
            return;
        };
        let entry = Entry {
            remote_slot,
            seat: affinity.config.seat.and_then(|s| u16::try_from(s).ok()),
            generation: affinity.config.generation as u16,
        };
        affinity
            .config
            .table
            .record(&region, client, entry, SystemTime::now());
    }

    /// This worker's sticky hits and misses, for its status line.
    pub(super) fn sticky_counts(&self) -> Option<(u64, u64)> {
        self.sticky.as_ref().map(|a| (a.hits, a.misses))
    }
}
