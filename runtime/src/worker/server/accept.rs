//! Accepting clients: the listeners, the accept loop, new sessions, pausing on
//! resource errors, and the SIGUSR1 status line.

use super::*;

impl Worker {
    pub(super) fn accepting(&self) -> bool {
        self.exit.is_none() && !self.full && self.starved.is_none()
    }

    pub(super) fn accept(&mut self, index: usize) {
        for _ in 0..ACCEPTS_PER_RUN {
            if !self.accepting() || self.defer_accept() {
                return;
            }
            let Some(Some(slot)) = self.listeners.get(index) else {
                return;
            };
            let tls = slot.tls;
            let fd = listener_fd(&slot.socket);
            let accepted = match &slot.socket {
                ListenSocket::Tcp(l) => l.accept().map(|(s, peer)| {
                    // Linux copies TCP_NODELAY from the listener (set by the master);
                    // elsewhere, best effort: without it small writes wait for Nagle.
                    #[cfg(not(any(target_os = "linux", target_os = "android")))]
                    let _ = s.set_nodelay(true);
                    (Socket::Tcp(s), Some(peer))
                }),
                ListenSocket::Unix(l) => l.accept().map(|(s, _)| (Socket::Unix(s), None)),
            };
            match accepted {
                Ok((socket, peer)) => {
                    self.accepted_one();
                    self.count_accepted(index);
                    let proxy = self.accept_proxy.get(index).and_then(Option::as_ref);
                    if let (Some(proxy), Some(peer)) = (proxy, peer) {
                        if !acl::trusted(&proxy.from, peer.ip()) {
                            self.refuse_untrusted(index, peer);
                            drop(socket);
                            continue;
                        }
                    }
                    // A PROXY-accepting listener's client is the one its header
                    // names: the ACL decides once it is read.
                    if let Some((peer, verdict)) = peer
                        .filter(|_| proxy.is_none())
                        .map(|p| (p, acl::decide(&self.acl, p.ip())))
                        .filter(|(_, verdict)| !verdict.permit)
                    {
                        // Closed before anything is read or connected for it.
                        self.denied += 1;
                        self.count_denied(index, peer);
                        crate::debug!(
                            "worker {}: client {peer} denied by the acl ({})",
                            self.id,
                            acl::deciding(verdict)
                        );
                        drop(socket);
                        continue;
                    }
                    // A sticky client of another worker goes there.
                    let Some(socket) = self.hand_off(index, socket, peer) else {
                        continue;
                    };
                    self.open_session(index, socket, peer, tls);
                    self.publish_load();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Some(share) = self.share.as_mut() {
                        share.overdue = false;
                    }
                    self.poller.rearm(fd, Interest::READABLE);
                    return;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionAborted
                            | io::ErrorKind::Interrupted
                            | io::ErrorKind::ConnectionReset
                    ) || e.raw_os_error() == Some(libc::EPROTO) =>
                {
                    crate::debug!("worker {}: accept: {e}", self.id);
                }
                Err(e) => {
                    self.starve(&format!("cannot accept: {e}"));
                    return;
                }
            }
        }
        self.again.push_back(Work::Listener(index));
    }

    /// Whether to leave the next connection to a less loaded worker (see [`Share`]).
    /// Starts the deferral's check timer; the listener is not re-armed meanwhile.
    fn defer_accept(&mut self) -> bool {
        let mine = self.sessions.len();
        let now = self.now;
        let Some(share) = self.share.as_mut() else {
            return false;
        };
        let looks = !share.overdue
            && mine >= share.users_min
            && share.alone_until.is_none_or(|until| now >= until);
        let leave = looks
            .then(|| share.place.others())
            .flatten()
            .filter(|others| crate::board::defers(mine, others.least));
        let Some(others) = leave else {
            share.deferring = None;
            return false;
        };
        share.deferring.get_or_insert((now, others.accepted));
        true
    }

    /// While a connection is left to the others, every turn of the loop (which then
    /// polls without blocking): nothing left in the queues ends the deferral and the
    /// listeners are watched again; a connection still waiting is taken as soon as
    /// this worker no longer holds clearly more than the least loaded one that
    /// accepts, or when none does. After [`Share::defer_check`]: if the others
    /// accepted since, they keep up and the deferral goes on; if not, the next
    /// accept is a probe (see [`Worker::accepted_one`]).
    pub(super) fn check_deferral(&mut self) {
        let now = self.now;
        let mine = self.sessions.len();
        let Some(share) = self.share.as_mut() else {
            return;
        };
        let Some((since, seen)) = share.deferring else {
            return;
        };
        let waiting: Vec<usize> = self
            .listeners
            .iter()
            .enumerate()
            .filter_map(|(index, slot)| {
                let slot = slot.as_ref().filter(|s| s.registered)?;
                queued(&slot.socket).then_some(index)
            })
            .collect();
        if waiting.is_empty() {
            share.deferring = None;
            for slot in self.listeners.iter().flatten().filter(|s| s.registered) {
                self.poller
                    .rearm(listener_fd(&slot.socket), Interest::READABLE);
            }
            return;
        }
        match share.place.others() {
            Some(others) if crate::board::defers(mine, others.least) => {
                if now < since + share.defer_check {
                    return;
                }
                if others.accepted != seen {
                    share.deferring = Some((now, others.accepted));
                    return;
                }
                share.overdue = true;
            }
            _ => {}
        }
        share.deferring = None;
        self.again.extend(waiting.into_iter().map(Work::Listener));
    }

    /// Counts an accept on the board; one that a deferral's probe found waiting
    /// makes this worker accept alone for a while.
    fn accepted_one(&mut self) {
        let now = self.now;
        let id = self.id;
        if let Some(share) = self.share.as_mut() {
            share.place.count_accept();
            if std::mem::take(&mut share.overdue) {
                crate::debug!(
                    "worker {id}: the other workers left a connection waiting for {} ms: accepting alone for {} ms",
                    share.defer_check.as_millis(),
                    ALONE.as_millis()
                );
                share.alone_until = Some(now + ALONE);
            }
        }
    }

    /// Publishes on the board how many sessions this worker holds while it
    /// accepts.
    pub(super) fn publish_load(&self) {
        if let Some(share) = self.share.as_ref() {
            share.place.publish(self.sessions.len(), self.accepting());
        }
    }

    /// SIGUSR1 (forwarded by the master): one status line with this worker's sessions
    /// and, per remote, whether it is marked dead and how many sessions it holds.
    pub(super) fn report_status(&self) {
        let remotes: Vec<String> = self
            .remotes
            .iter()
            .enumerate()
            .map(|(i, r)| {
                format!(
                    "{} {}, {} sessions",
                    r.address,
                    if self.balancer.is_dead(i) {
                        "dead"
                    } else if self.balancer.is_checked_down(i) {
                        "down by its health checks"
                    } else {
                        "alive"
                    },
                    self.balancer.active(i)
                )
            })
            .collect();
        crate::notice!(
            "status: worker {}: {} sessions, {} served{}{}{}{}{}; remotes: {}",
            self.id,
            self.sessions.len(),
            self.served,
            if self.acl.is_empty() {
                String::new()
            } else {
                format!(", {} denied by the acl", self.denied)
            },
            if self.accept_proxy.iter().all(Option::is_none) {
                String::new()
            } else {
                format!(", {} refused by accept proxy", self.refused_proxy)
            },
            self.sticky_counts()
                .map(|(hits, misses, handed)| format!(
                    ", sticky {hits} hits {misses} misses {handed} handed over"
                ))
                .unwrap_or_default(),
            match self
                .port_waiting
                .iter()
                .filter(|&&(key, id)| self.sessions.get(key).is_some_and(|s| s.id == id))
                .count()
            {
                0 => String::new(),
                n => format!(", {n} waiting for a local port"),
            },
            if self.exit.is_some() {
                ", draining"
            } else {
                ""
            },
            remotes.join("; ")
        );
    }

    /// Pauses accepting after a resource error, until the back-off expires or a
    /// session frees a descriptor; logs once per episode.
    pub(super) fn starve(&mut self, error: &str) {
        if !self.starve_logged {
            crate::warn!(
                "worker {}: {error}; pausing accepts (retry in {} ms or when a session ends)",
                self.id,
                self.backoff.as_millis()
            );
            self.starve_logged = true;
        }
        self.starved = Some(Starved {
            until: self.now + self.backoff,
        });
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        self.sync_listeners();
    }

    /// Registers or deregisters the listeners to match whether the worker accepts.
    pub(super) fn sync_listeners(&mut self) {
        let want = self.accepting();
        for (index, slot) in self.listeners.iter_mut().enumerate() {
            let Some(slot) = slot.as_mut() else { continue };
            if slot.registered == want {
                continue;
            }
            let result = if want {
                register_listener(
                    &mut *self.poller,
                    &slot.socket,
                    Token(FIRST_LISTENER + index),
                )
            } else {
                self.poller.deregister(listener_fd(&slot.socket))
            };
            match result {
                Ok(()) => slot.registered = want,
                Err(e) => crate::error!(
                    "worker {}: listener {}: {e}",
                    self.id,
                    describe(&slot.socket)
                ),
            }
        }
    }

    /// Stops accepting for good: the listeners are deregistered and dropped, so that
    /// a new generation of workers owns the queue.
    pub(super) fn close_intake(&mut self, exit: Exit) {
        if exit == Exit::Stopped || self.exit.is_none() {
            self.exit = Some(exit);
        }
        self.sync_listeners();
        self.listeners.iter_mut().for_each(|slot| *slot = None);
        self.again.retain(|work| matches!(work, Work::Session(..)));
    }

    /// Takes a new client of listener `listener` (`peer` is `None` on a Unix-domain
    /// listener); a TLS client starts with the handshake.
    pub(super) fn open_session(
        &mut self,
        listener: usize,
        socket: Socket,
        peer: Option<SocketAddr>,
        tls: bool,
    ) {
        let id = self.next_id;
        self.next_id += 1;
        // The clock of this client, not of the round: the accept loop takes every
        // connection queued, those that arrived while the round ran too, and a
        // timeout counted from the round's start (`self.now`) would give a client
        // less than its `accept proxy timeout` or TLS handshake timeout.
        let now = Instant::now();
        let entry = self.sessions.vacant_entry();
        let key = entry.key();
        // Without the section's context, a listener whose SNI routes all pass TLS
        // through (or have their own certificate): routing decides first.
        let context = self.tls.as_deref();
        let session = match (tls, context.is_some() || self.routing.is_some()) {
            (true, true) => match TlsStream::accept(context, socket) {
                Ok(tls) => {
                    let tls = match self.listeners.get(listener) {
                        Some(Some(slot)) => tls.with_listener(&slot.tls_versions, slot.tls_auto),
                        _ => tls,
                    };
                    let mut session = Session::handshaking(id, Stream::Tls(Box::new(tls)), now);
                    session.client.round = self.round;
                    session
                }
                Err(e) => {
                    // Out of memory: shed the client.
                    crate::warn!("worker {}: cannot start TLS for a client: {e}", self.id);
                    return;
                }
            },
            _ => Session::accepted(id, Stream::Plain(socket), now, self.round),
        };
        let mut session = session;
        session.meta.set_listener(listener);
        session.meta.peer = peer;
        let token = Token(self.session_base + 2 * key);
        if let Err(e) = self.poller.register(
            session.client.io.as_raw_fd(),
            token,
            Interest::READABLE | Interest::WRITABLE,
        ) {
            // Out of kernel memory or epoll watches, or a descriptor select(2) cannot
            // watch: shed the client, pause accepts (one warning per episode).
            drop(session);
            self.starve(&format!("cannot register a client: {e}"));
            return;
        }
        entry.insert(session);
        if self.starve_logged {
            crate::notice!("worker {}: accepting connections again", self.id);
        }
        self.starve_logged = false;
        self.backoff = BACKOFF_MIN;
        crate::debug!(
            "worker {}: session {id}: client {}",
            self.id,
            PeerText(peer)
        );
        self.served += 1;
        self.idle_at = None;
        if self.sessions.len() >= self.users_max && !self.full {
            self.full = true;
            self.sync_listeners();
            self.send_load();
        }
        if self.retire == Some(self.served) {
            crate::info!(
                "worker {}: retiring after {} sessions",
                self.id,
                self.served
            );
            self.close_intake(Exit::Drained);
            self.link.send(
                ToMaster::Retiring {
                    served: self.served,
                },
                true,
            );
        }
        if self.accept_proxy.get(listener).is_some_and(Option::is_some) {
            if let Some(session) = self.sessions.get_mut(key) {
                session.wait_proxy_header(now);
            }
            self.arm_sweep();
            self.proxy_header(key, false);
        } else if tls {
            self.arm_sweep();
            self.handshake(key);
        } else {
            self.start_attempt(key);
        }
    }

    pub(super) fn send_load(&mut self) {
        let sessions = u32::try_from(self.sessions.len()).unwrap_or(u32::MAX);
        // Essential: the master starts workers and sheds connections on it, and it
        // is only sent when the worker fills up or has room again.
        self.link.send(
            ToMaster::Load {
                sessions,
                full: self.full,
            },
            true,
        );
    }
}

/// Whether a connection waits in a listener's queue (a poll that does not block).
fn queued(socket: &ListenSocket) -> bool {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    use std::os::fd::AsFd;
    let fd = match socket {
        ListenSocket::Tcp(l) => l.as_fd(),
        ListenSocket::Unix(l) => l.as_fd(),
    };
    let mut entry = [PollFd::from_borrowed_fd(fd, PollFlags::IN)];
    let no_wait = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    poll(&mut entry, Some(&no_wait)).is_ok_and(|n| n > 0)
        && entry[0].revents().contains(PollFlags::IN)
}
