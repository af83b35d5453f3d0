//! Running sessions: readiness events, the TLS handshake, the relay, and closing.

use super::*;

impl Worker {
    pub(super) fn session_event(&mut self, key: usize, side: Side, event: &Event) {
        let Some(session) = self.sessions.get_mut(key) else {
            return;
        };
        let round = match side {
            Side::Client => Some(session.client.round),
            Side::Remote => session.remote.as_ref().map(|end| end.round),
        };
        if round == Some(self.round) {
            // The socket was registered after this round's events were fetched: the
            // event is for a socket closed meanwhile whose token was reused. The
            // poller reports the new socket's own readiness in a later round.
            return;
        }
        session.ready(
            side,
            event.is_readable(),
            event.is_writable(),
            event.is_read_closed(),
            event.is_error(),
        );
        if matches!(
            session.state,
            State::ProxyHeader { .. } | State::TlsHandshake { .. } | State::Connecting(_)
        ) {
            self.setup_event(key, side, event);
            return;
        }
        // Relaying (or half-closed, failing, closed): the rest of the setup's
        // branches cannot apply, and the hot path stays small.
        self.run_session(key);
    }

    /// An event of a session that is not relaying yet: its PROXY header, its TLS
    /// handshake (client or remote), or its connect. Out of line, so that the
    /// relaying sessions' path (`session_event`) stays small.
    #[inline(never)]
    fn setup_event(&mut self, key: usize, side: Side, event: &Event) {
        let Some(session) = self.sessions.get_mut(key) else {
            return;
        };
        if matches!(session.state, State::ProxyHeader { .. }) {
            if side == Side::Client {
                self.proxy_header(key, event.is_read_closed() || event.is_error());
            }
            return;
        }
        if matches!(session.state, State::TlsHandshake { .. }) {
            // Only an event that can move the handshake on tries it: the one it
            // waits for (see `TlsStream::readiness`), a close or an error. The
            // writable edge every new socket reports would otherwise cost a peek
            // that finds nothing, a system call per TLS client.
            let (moves, _) = session
                .client
                .io
                .readiness(event.is_readable(), event.is_writable());
            if side == Side::Client && (moves || event.is_read_closed() || event.is_error()) {
                self.handshake(key);
            }
            return;
        }
        if side == Side::Client && event.is_error() && matches!(session.state, State::Connecting(_))
        {
            // Gone before its remote answered (or while it waits for a local port):
            // nothing is left to deliver, and the connect is abandoned.
            if let Some(error) = session.client_error() {
                self.close(
                    key,
                    Why::Relay(Close::Error {
                        side: Side::Client,
                        error,
                    }),
                );
                return;
            }
        }
        if side == Side::Remote && session.remote_handshaking() {
            self.remote_handshake(key);
            return;
        }
        let mut connected = None;
        if side == Side::Remote && matches!(session.state, State::Connecting(_)) {
            let started = match &session.state {
                State::Connecting(c) => c.started,
                _ => self.now,
            };
            let trusted = matches!(
                self.poller.mechanism(),
                Mechanism::Epoll | Mechanism::Poll | Mechanism::Uring
            );
            match session.connected(self.now, trusted) {
                ConnectOutcome::Pending => {
                    // A stale event: watch for the connect's end again.
                    if let Some(remote) = &session.remote {
                        self.poller.rearm(
                            remote.io.as_raw_fd(),
                            Interest::READABLE | Interest::WRITABLE,
                        );
                    }
                    return;
                }
                ConnectOutcome::Connected => {
                    if let Some(index) = session.remote_index() {
                        if let Err(e) = self.send_proxy_header(key, index) {
                            self.fail_attempt(key, e);
                            return;
                        }
                    }
                    let Some(session) = self.sessions.get_mut(key) else {
                        return;
                    };
                    connected = Some(started);
                    if let Some(index) = session.remote_index() {
                        crate::debug!(
                            "worker {}: session {}: connected to {}",
                            self.id,
                            session.id,
                            self.remotes[index].address
                        );
                    }
                    self.give_up_logged = false;
                    if std::mem::take(&mut self.no_port_logged) {
                        crate::notice!("worker {}: local ports free again", self.id);
                    }
                    if self.idle_timeout.is_some() || self.silent_timeout.is_some() {
                        self.arm_sweep();
                    }
                }
                ConnectOutcome::Failed(e) => {
                    self.fail_attempt(key, e);
                    return;
                }
                ConnectOutcome::HandshakeFailed(e) => {
                    let error = io::Error::new(e.kind(), format!("TLS handshake failed: {e}"));
                    self.fail_remote_tls(key, error);
                    return;
                }
            }
        }
        if let Some(started) = connected {
            // A TLS remote: connected (and relaying) once its handshake is done.
            if self.start_remote_handshake(key) {
                return;
            }
            self.session_connected(key, started);
        }
        self.run_session(key);
    }

    /// Drives a TLS client's handshake on; once complete, connects to a remote.
    pub(super) fn handshake(&mut self, key: usize) {
        // A relay with SNI routes: the ClientHello chooses the route first.
        if !self.route_client(key) {
            return;
        }
        let Some(session) = self.sessions.get_mut(key) else {
            return;
        };
        match session.handshake(self.now) {
            HandshakeOutcome::Pending => {
                // Watch again for what the handshake waits for.
                let (readable, writable) = session.client.io.awaits(true, false);
                if let Some(interest) = poller::interest(readable, writable) {
                    self.poller.rearm(session.client.io.as_raw_fd(), interest);
                }
            }
            HandshakeOutcome::Done => {
                let Some(session) = self.sessions.get(key) else {
                    return;
                };
                if !session.client.io.is_tls() {
                    crate::debug!(
                        "worker {}: session {}: no TLS handshake here: relayed as it is (tls = auto, or an SNI route that passes TLS through)",
                        self.id,
                        session.id
                    );
                    self.start_attempt(key);
                    return;
                }
                self.count_handshake_done();
                if let Stream::Tls(tls) = &session.client.io {
                    crate::debug!(
                        "worker {}: session {}: TLS handshake done ({}{})",
                        self.id,
                        session.id,
                        tls.version(),
                        if tls.resumed() { ", resumed" } else { "" }
                    );
                }
                self.start_attempt(key);
            }
            HandshakeOutcome::Queued => self.handshake_queue.push_back((key, session.id)),
            HandshakeOutcome::Failed(e) => self.close(key, Why::Handshake(e)),
        }
    }

    /// Drives on the handshakes that waited for a slot, oldest first, while there
    /// is room (their clients' bytes wait in the kernel: no event would come).
    pub(super) fn admit_handshakes(&mut self) {
        while tls_stream::handshake_room() {
            let Some((key, id)) = self.handshake_queue.pop_front() else {
                return;
            };
            if self
                .sessions
                .get(key)
                .is_some_and(|s| s.id == id && matches!(s.state, State::TlsHandshake { .. }))
            {
                self.handshake(key);
            }
        }
    }

    pub(super) fn run_session(&mut self, key: usize) {
        let Some(session) = self.sessions.get_mut(key) else {
            return;
        };
        let before = session.bytes();
        let outcome = session.relay(&mut self.scratch, &mut self.pipes, self.now);
        let half_closed = matches!(session.state, State::HalfClosed { .. });
        records::count_bytes(self.counting.as_ref(), session, before);
        if self.rearms && !matches!(outcome, Outcome::Close(_)) {
            rearm_session(&mut *self.poller, session);
        }
        if let Some(index) = session.remote_index() {
            // A remote is back once a session through it relays something (one that
            // accepts and resets at once is not).
            if self.reported_dead[index] && !session.fresh() {
                self.reported_dead[index] = false;
                crate::notice!(
                    "worker {}: remote {} is reachable again",
                    self.id,
                    self.remotes[index].address
                );
            }
        }
        match outcome {
            Outcome::Continue => {}
            Outcome::Again => {
                if !session.queued {
                    session.queued = true;
                    self.again.push_back(Work::Session(key, session.id));
                }
            }
            outcome => self.settle(key, outcome),
        }
        if half_closed && self.half_close_timeout.is_some() {
            // The sweep closes it at the half-close timeout.
            self.arm_sweep();
        }
    }

    /// What follows a run that did not end in relaying on (or in a run queued
    /// again): lingering while failing, failing over, closing. Out of line: these
    /// come once per session at most, the other outcomes after every run.
    #[inline(never)]
    fn settle(&mut self, key: usize, outcome: Outcome) {
        let Some(session) = self.sessions.get_mut(key) else {
            return;
        };
        match outcome {
            Outcome::Continue | Outcome::Again => {}
            Outcome::Linger => {
                if let State::Failing(failure) = &mut session.state {
                    if !std::mem::replace(&mut failure.listed, true) {
                        self.failing.push((key, session.id));
                    }
                    self.failing_at.get_or_insert(self.now + FAILING_CHECK);
                }
            }
            Outcome::Failover(error) => {
                // As a failed connect: the remote is marked dead, the session tries
                // the next one, the client none the wiser.
                crate::debug!(
                    "worker {}: session {}: the remote failed before anything was relayed; failing over",
                    self.id,
                    session.id
                );
                let error =
                    io::Error::new(error.kind(), format!("{error} before anything was relayed"));
                if remote_tls::refused_after_handshake(session, &error) {
                    self.fail_remote_tls(key, error);
                } else {
                    self.fail_attempt(key, error);
                }
            }
            Outcome::Close(close) => self.close(key, Why::Relay(close)),
        }
    }

    pub(super) fn close(&mut self, key: usize, why: Why) {
        let Some(mut session) = self.sessions.try_remove(key) else {
            return;
        };
        self.session_ended(&session, &why);
        if let Some(index) = session.take_remote_index() {
            self.balancer.release(index);
        }
        if matches!(why, Why::Handshake(_) | Why::HandshakeTimeout) {
            self.tls_failures += 1;
            if let Some(probe) = &self.probe {
                probe
                    .tls_failures
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        if let Why::Relay(Close::Error { side, error }) = &why {
            if is_reset(error) {
                match side {
                    Side::Client => session
                        .remote
                        .iter_mut()
                        .for_each(|end| end.io.reset_on_close()),
                    Side::Remote => session.client.io.reset_on_close(),
                }
            }
        }
        crate::debug!(
            "worker {}: session {}: closed ({}, was {}), {} bytes up, {} down",
            self.id,
            session.id,
            WhyText(&why),
            session.state.name(),
            session.bytes().0,
            session.bytes().1
        );
        session.release_pipes(&mut self.pipes);
        // The poller forgets both sockets, and dropping the session closes them (the
        // worker holds the only descriptor of an accepted or connected socket).
        self.poller.closing(session.client.io.as_raw_fd());
        if let Some(remote) = &session.remote {
            self.poller.closing(remote.io.as_raw_fd());
        }
        drop(session);
        if self.sessions.is_empty() && self.exit.is_none() {
            self.idle_at = Some(self.now + self.idle_release);
        }
        if self.full && self.sessions.len() < self.users_max {
            self.full = false;
            if self.exit.is_none() {
                self.sync_listeners();
                self.send_load();
            }
        }
        if self.starved.is_some() {
            // A descriptor was freed: try accepting again now.
            self.starved = None;
            self.sync_listeners();
        }
    }

    pub(super) fn run_again(&mut self) {
        for _ in 0..self.again.len() {
            let Some(work) = self.again.pop_front() else {
                break;
            };
            match work {
                Work::Listener(index) => self.accept(index),
                Work::Session(key, id) => match self.sessions.get_mut(key) {
                    Some(session) if session.id == id => {
                        session.queued = false;
                        self.run_session(key);
                    }
                    _ => {}
                },
            }
        }
    }
}
