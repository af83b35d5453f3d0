//! Client affinity (`sticky cache`, `crate::sticky`): a client's first selection
//! prefers the remote its entry names, and every choice made for it (the first,
//! and each failover) is recorded, with this worker's seat and generation.
//!
//! The client is the address the session's `peer` holds when its remote is
//! selected: the PROXY-carried source on a PROXY-accepting listener (the header is
//! read before the selection), the TCP peer otherwise. A Unix-domain listener's
//! clients have no address and are not sticky.
//!
//! Worker affinity: a client accepted here whose entry names another worker of
//! this generation that accepts now (its board seat) is handed to that worker
//! through the master (`crate::control`: the socket passed with `SCM_RIGHTS`),
//! before anything is read from it: the ACL was checked here and the accept
//! counted here; the other worker opens the session (its TLS handshake, its
//! remote, its counts and records). Not on PROXY-accepting listeners (the client
//! is known only once the header is read) nor Unix-domain ones. The master passes
//! it on to that worker, else to another of the generation with room, else gives
//! it back to this one, which serves it even when full (docs/sticky.md).

use super::*;
use crate::sticky::{Entry, Key, Region};
use std::os::fd::OwnedFd;
use std::time::SystemTime;

/// A worker's part of the client affinity.
#[derive(Debug)]
pub(super) struct Affinity {
    config: crate::worker::Sticky,
    /// Each listener's port (plan order; `None`: a Unix-domain listener).
    ports: Vec<Option<u16>>,
    /// Whether each listener terminates TLS (for clients handed over).
    tls: Vec<bool>,
    /// Clients handed to another worker.
    pub(super) handed: u64,
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
            // A listener not bound yet (`bind retry delay`) is not served by this
            // generation's workers: no key.
            .map(|l| match &l.socket {
                Some(ListenSocket::Tcp(l)) => l.local_addr().ok().map(|a| a.port()),
                Some(ListenSocket::Unix(_)) | None => None,
            })
            .collect();
        Some(Affinity {
            config,
            ports,
            tls: listeners.iter().map(|l| l.tls).collect(),
            handed: 0,
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

    /// This worker's sticky hits and misses, and the clients it handed over, for
    /// its status line.
    pub(super) fn sticky_counts(&self) -> Option<(u64, u64, u64)> {
        self.sticky.as_ref().map(|a| (a.hits, a.misses, a.handed))
    }

    /// The board seat of the worker a client of listener `listener` at `peer`
    /// goes to: its live entry names another seat than this worker's, of this
    /// generation, whose worker accepts now. `None` on a PROXY-accepting listener.
    fn handoff_seat(&self, listener: usize, peer: SocketAddr) -> Option<u16> {
        if self.accept_proxy.get(listener).is_some_and(Option::is_some) {
            return None;
        }
        let affinity = self.sticky.as_ref()?;
        let place = &self.share.as_ref()?.place;
        let mine = affinity.config.seat?;
        let (region, client) = affinity.key(listener, Some(peer))?;
        let entry = affinity
            .config
            .table
            .lookup(&region, client, SystemTime::now())?;
        let seat = entry.seat?;
        (usize::from(seat) != mine
            && entry.generation == affinity.config.generation as u16
            && place.accepting(usize::from(seat)))
        .then_some(seat)
    }

    /// A client just accepted on listener `listener` (its ACL passed, its accept
    /// counted): handed to the worker its sticky entry names if there is one to
    /// hand it to (see [`Worker::handoff_seat`]), else given back to be served
    /// here.
    pub(super) fn hand_off(
        &mut self,
        listener: usize,
        socket: Socket,
        peer: Option<SocketAddr>,
    ) -> Option<Socket> {
        let Some((peer, seat)) = peer.and_then(|p| Some((p, self.handoff_seat(listener, p)?)))
        else {
            return Some(socket);
        };
        // A Unix-domain client has no address: never here.
        let Socket::Tcp(stream) = socket else {
            return Some(socket);
        };
        let index = u32::try_from(listener).unwrap_or(u32::MAX);
        match self.link.send_handoff(index, seat, OwnedFd::from(stream)) {
            Ok(()) => {
                if let Some(affinity) = self.sticky.as_mut() {
                    affinity.handed += 1;
                }
                crate::debug!(
                    "worker {}: client {peer} handed to the worker in seat {seat}, which its sticky entry names",
                    self.id
                );
                None
            }
            Err(fd) => Some(Socket::Tcp(mio::net::TcpStream::from(fd))),
        }
    }

    /// A client another worker accepted and handed over through the master (or
    /// this worker's own, `returned`: no other could take it, or it never left
    /// because the master is gone or this worker exits): served here,
    /// even when full, without checking its ACL again or counting its accept. Its
    /// TLS handshake, if its listener has TLS, starts here.
    pub(super) fn take_handed(&mut self, listener: usize, returned: bool, fd: OwnedFd) {
        let stream = std::net::TcpStream::from(fd);
        let peer = match stream.peer_addr() {
            Ok(peer) => peer,
            Err(e) => {
                crate::debug!("worker {}: a client handed over is gone: {e}", self.id);
                return;
            }
        };
        if listener >= self.listener_names.len() {
            crate::warn!(
                "worker {}: closing client {peer} handed over for listener {listener}, which this worker does not have",
                self.id
            );
            return;
        }
        if let Err(e) = stream.set_nonblocking(true) {
            crate::warn!("worker {}: closing client {peer} handed over: {e}", self.id);
            return;
        }
        let tls = self
            .sticky
            .as_ref()
            .and_then(|a| a.tls.get(listener).copied())
            .unwrap_or(false);
        crate::debug!(
            "worker {}: client {peer} {}",
            self.id,
            if returned {
                "served here: no other worker took it"
            } else {
                "handed over by another worker: its sticky entry names this one"
            }
        );
        let socket = Socket::Tcp(mio::net::TcpStream::from_std(stream));
        self.open_session(listener, socket, Some(peer), tls);
        self.publish_load();
    }
}
