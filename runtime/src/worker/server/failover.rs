//! Connecting sessions to remotes: selection by the balancer, failover through
//! dead remotes, and the bookkeeping of dead marks.

use super::*;

impl Worker {
    /// Selects a remote for a connecting session and starts a connect, failing over
    /// at once through remotes that fail immediately; closes the client when none
    /// is left.
    pub(super) fn start_attempt(&mut self, key: usize) {
        if !self.route_plain(key) {
            return;
        }
        loop {
            let Some(session) = self.sessions.get_mut(key) else {
                return;
            };
            let State::Connecting(connecting) = &mut session.state else {
                return;
            };
            // Routes by SNI: the session's remotes are its route's (a client with
            // none chosen, of a listener without TLS, the default route's).
            if self.routing.is_some() {
                connecting.tried.restrict(session.meta.route().flatten());
            }
            // A client's first selection follows its sticky entry, if it has one
            // (not with `balance = source`, where the hash chooses).
            let first = connecting.attempt == 0;
            let balance = self.session_balance(key);
            let preferred = if first && balance != tcprelay_plan::Balance::Source {
                self.sticky_preference(key)
            } else {
                None
            };
            let client = self.source_client(key, balance);
            // Remotes found by DNS join (or retire) before the choice.
            self.follow_discovery();
            let Some(State::Connecting(connecting)) =
                self.sessions.get_mut(key).map(|s| &mut s.state)
            else {
                return;
            };
            let (choice, revived) = self
                .balancer
                .select_for(&connecting.tried, preferred, client);
            if let Some(index) = choice {
                self.sticky_record(key, index, first.then_some(preferred));
            }
            let Some(session) = self.sessions.get_mut(key) else {
                return;
            };
            let State::Connecting(connecting) = &mut session.state else {
                return;
            };
            if revived {
                crate::debug!(
                    "worker {}: dead marks cleared (rebalance, or a passing health check)",
                    self.id
                );
                records::sync_dead_marks(
                    self.counting.as_ref(),
                    &mut self.dead_counted,
                    &self.balancer,
                );
            }
            let Some(index) = choice else {
                if std::mem::take(&mut connecting.no_port) {
                    // Some remote had no free local port: wait for one rather than
                    // give up on the client (or blame the remotes).
                    connecting.tried.clear();
                    let since = *connecting.port_wait.get_or_insert(self.now);
                    if self.now.saturating_duration_since(since) >= self.connect_timeout {
                        self.close(key, Why::NoLocalPort);
                        return;
                    }
                    let id = session.id;
                    self.port_waiting.push_back((key, id));
                    self.port_retry_at.get_or_insert(self.now + PORT_RETRY);
                    return;
                }
                if !connecting.revived {
                    connecting.revived = true;
                    connecting.tried.clear();
                    if self.balancer.revive_all() {
                        crate::debug!(
                            "worker {}: every remote failed; reviving them all for a retry",
                            self.id
                        );
                        records::sync_dead_marks(
                            self.counting.as_ref(),
                            &mut self.dead_counted,
                            &self.balancer,
                        );
                    }
                    continue;
                }
                if !self.give_up_logged {
                    crate::warn!(
                        "worker {}: no remote reachable; closing clients until one is",
                        self.id
                    );
                    self.give_up_logged = true;
                }
                self.close(key, Why::NoRemote);
                return;
            };
            connecting.tried.insert(index);
            connecting.attempt += 1;
            connecting.started = self.now;
            connecting.handshake = None;
            let (id, attempt) = (session.id, connecting.attempt);
            session.set_remote_index(Some(index));
            let marks = connect::Marks {
                bufsize: self.tcp_bufsize,
                dscp: self.dscp.get(session.meta.listener()).copied().flatten(),
            };
            match connect::open(&self.remotes[index], self.local_address, marks) {
                Ok(socket) => {
                    let stream = match remote_tls::remote_stream(
                        &self.remote_tls,
                        &self.remotes,
                        index,
                        socket,
                    ) {
                        Ok(stream) => stream,
                        Err(e) => {
                            self.release_remote(key);
                            self.count_attempt(key, index, &e, true);
                            self.remote_failed(index, &e);
                            continue;
                        }
                    };
                    let end = End::registered(stream, self.round);
                    let token = Token(self.session_base + 2 * key + 1);
                    if let Err(e) = self.poller.register(
                        end.io.as_raw_fd(),
                        token,
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        // A descriptor select(2) cannot watch is like running out
                        // of descriptors: not the remote's fault, accepts pause.
                        let over = poller::is_over_fd_setsize(&e);
                        let message = format!("cannot watch a connection: {e}");
                        self.close(key, Why::Local(e));
                        if over {
                            self.starve(&message);
                        }
                        return;
                    }
                    session.remote = Some(end);
                    crate::debug!(
                        "worker {}: session {id}: connecting to {} (attempt {attempt})",
                        self.id,
                        self.remotes[index].address
                    );
                    self.arm_sweep();
                    return;
                }
                Err(OpenError::Resources(e)) => {
                    // Not the remote's fault: keep it alive, shed this client and stop
                    // accepting for a while (after the close, which would otherwise
                    // resume accepting at once for the descriptor it frees).
                    let message = format!("cannot open a connection: {e}");
                    self.close(key, Why::Local(e));
                    self.starve(&message);
                    return;
                }
                Err(OpenError::Unsupported(e)) => {
                    self.release_remote(key);
                    if !self.unsupported_logged[index] {
                        self.unsupported_logged[index] = true;
                        crate::error!(
                            "worker {}: remote {} ({}): not supported by this kernel: {e}",
                            self.id,
                            self.remotes[index].address,
                            self.remotes[index].protocol
                        );
                    }
                    self.balancer.mark_dead(index);
                    self.sync_dead_marks();
                }
                Err(OpenError::NoLocalPort(e)) => {
                    // The remote is not to blame: the others are tried, and if none
                    // connects the session waits for a port (`start_attempt` again
                    // from `retry_port_waiters`).
                    self.release_remote(key);
                    if let Some(State::Connecting(c)) =
                        self.sessions.get_mut(key).map(|s| &mut s.state)
                    {
                        c.no_port = true;
                    }
                    let address = self.remotes[index].address;
                    if std::mem::replace(&mut self.no_port_logged, true) {
                        crate::debug!("worker {}: remote {address}: {e}", self.id);
                    } else {
                        crate::warn!(
                            "worker {}: no free local port to connect to {address} ({e}); clients wait up to {:?} for one",
                            self.id,
                            self.connect_timeout
                        );
                    }
                }
                Err(OpenError::Failed(e)) => {
                    self.release_remote(key);
                    self.count_attempt(key, index, &e, false);
                    self.remote_failed(index, &e);
                }
            }
        }
    }

    /// The key `balance = source` hashes for session `key`'s client: its address
    /// (the PROXY-carried one once the header is read); `None` with `least-conn`
    /// or for a client without an address (a Unix-domain one), which is then
    /// balanced by least connections.
    fn source_client(&self, key: usize, balance: tcprelay_plan::Balance) -> Option<u64> {
        if balance == tcprelay_plan::Balance::LeastConn {
            return None;
        }
        let peer = self.sessions.get(key)?.meta.peer?;
        Some(tcprelay_plan::balance::client_key(peer.ip()))
    }

    /// How session `key`'s remote is chosen: its SNI route's own `balance`, else
    /// the section's.
    fn session_balance(&self, key: usize) -> tcprelay_plan::Balance {
        let route = self
            .sessions
            .get(key)
            .and_then(|s| s.meta.route().flatten());
        self.routing
            .as_ref()
            .zip(route)
            .and_then(|(routing, route)| routing.balance_of(route))
            .unwrap_or(self.balance)
    }

    /// Gives back the balancer count of the session's current remote.
    pub(super) fn release_remote(&mut self, key: usize) {
        if let Some(session) = self.sessions.get_mut(key) {
            if let Some(index) = session.take_remote_index() {
                self.balancer.release(index);
            }
        }
    }

    pub(super) fn remote_failed(&mut self, index: usize, error: &io::Error) {
        let address = self.remotes[index].address;
        self.balancer.mark_dead(index);
        self.sync_dead_marks();
        if self.reported_dead[index] {
            crate::debug!("worker {}: remote {address}: {error}", self.id);
        } else {
            self.reported_dead[index] = true;
            crate::warn!("worker {}: remote {address}: {error}; marked dead", self.id);
        }
    }

    /// The current attempt failed (refused, unreachable, timed out): mark the remote
    /// dead and fail over, the client none the wiser.
    pub(super) fn fail_attempt(&mut self, key: usize, error: io::Error) {
        self.abandon_attempt(key, error, false);
    }

    /// The current attempt of session `key` failed: its remote socket is closed, the
    /// remote counted (`tls`: as a failed TLS handshake, else as a failed connect)
    /// and marked dead, and the session fails over.
    pub(super) fn abandon_attempt(&mut self, key: usize, error: io::Error, tls: bool) {
        let Some(session) = self.sessions.get_mut(key) else {
            return;
        };
        // The poller forgets the socket; dropping it closes it.
        if let Some(remote) = session.remote.take() {
            self.poller.closing(remote.io.as_raw_fd());
        }
        let index = session.remote_index();
        self.release_remote(key);
        if let Some(index) = index {
            self.count_attempt(key, index, &error, tls);
            self.remote_failed(index, &error);
        }
        self.start_attempt(key);
    }

    /// Sessions waiting for a free local port try again, oldest first; the first
    /// that still finds none keeps its place and the rest wait behind it until the
    /// next retry (they would find none either).
    pub(super) fn retry_port_waiters(&mut self) {
        self.port_retry_at = None;
        let mut waiting = std::mem::take(&mut self.port_waiting);
        while let Some((key, id)) = waiting.pop_front() {
            let waits = self.sessions.get(key).is_some_and(|s| {
                s.id == id && s.remote.is_none() && matches!(s.state, State::Connecting(_))
            });
            if !waits {
                continue;
            }
            self.start_attempt(key);
            if self.port_waiting.back() == Some(&(key, id)) {
                self.port_waiting.append(&mut waiting);
                break;
            }
        }
        if !self.port_waiting.is_empty() {
            self.port_retry_at = Some(self.now + PORT_RETRY);
        }
    }
}
