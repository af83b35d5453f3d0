//! The master and signals: control frames, drain and stop, the signal pipe.

use super::records::SessionId;
use super::*;

impl Worker {
    pub(super) fn control_event(&mut self, event: &Event) {
        if event.is_writable() {
            self.link.flush();
        }
        if !(event.is_readable() || event.is_read_closed() || event.is_error()) {
            return;
        }
        let received = self.link.receive();
        if !received.eof {
            // Read to `WouldBlock`.
            if let Some(fd) = self.link.fd() {
                self.poller.rearm(fd, Interest::READABLE);
            }
        }
        for frame in received.frames {
            match frame {
                crate::control::ToWorker::Drain => self.drain(Exit::Drained),
                crate::control::ToWorker::Stop { grace_secs } => self.stop(grace_secs),
                crate::control::ToWorker::Sessions { id, limit } => {
                    let report = self.sessions_report(limit as usize);
                    self.link.send_payload(id, &report);
                }
                crate::control::ToWorker::DrainOver => self.drain_over(),
                // Read into `handed`.
                crate::control::ToWorker::Handoff { .. } => {}
            }
        }
        for (listener, returned, fd) in received.handed {
            match fd {
                Some(fd) => self.take_handed(listener as usize, returned, fd.0),
                None => crate::warn!(
                    "worker {}: a client handed over by the master did not arrive (out of descriptors?)",
                    self.id
                ),
            }
        }
        if received.eof {
            if let Some(fd) = self.link.fd() {
                let _ = self.poller.deregister(fd);
            }
            // Hand-offs the master never got: this worker serves them.
            for (listener, fd) in self.link.take_waiting() {
                self.take_handed(listener as usize, true, fd);
            }
            self.link.take();
            if self.exit.is_none() {
                crate::notice!(
                    "worker {}: master gone; finishing {} sessions",
                    self.id,
                    self.sessions.len()
                );
            }
            self.close_intake(Exit::MasterGone);
        }
    }

    pub(super) fn drain(&mut self, exit: Exit) {
        crate::info!(
            "worker {}: draining {} sessions",
            self.id,
            self.sessions.len()
        );
        self.close_intake(exit);
        let sessions = u32::try_from(self.sessions.len()).unwrap_or(u32::MAX);
        let stopping = exit == Exit::Stopped;
        self.link
            .send(ToMaster::Draining { sessions, stopping }, true);
    }

    pub(super) fn stop(&mut self, grace_secs: u32) {
        self.drain(Exit::Stopped);
        // A grace too long to represent is no deadline at all.
        if let Some(at) = self
            .now
            .checked_add(Duration::from_secs(u64::from(grace_secs)))
        {
            self.grace_at = Some(self.grace_at.map_or(at, |old| old.min(at)));
        }
    }

    /// The master's drain deadline has passed (or the master stops the oldest of
    /// too many draining generations): drained if it was not yet, and the sessions
    /// left are closed now; the loop then exits.
    pub(super) fn drain_over(&mut self) {
        if self.exit.is_none() {
            self.drain(Exit::Drained);
        }
        let keys: Vec<usize> = self.sessions.iter().map(|(key, _)| key).collect();
        if !keys.is_empty() {
            crate::notice!(
                "worker {}: drain over, closing {} sessions",
                self.id,
                keys.len()
            );
        }
        for key in keys {
            self.close(key, Why::DrainOver);
        }
    }

    pub(super) fn signal_event(&mut self) {
        let mut bytes = [0u8; 64];
        loop {
            let Some(pipe) = self.signals.as_mut() else {
                return;
            };
            match pipe.read(&mut bytes) {
                Ok(0) => {
                    let _ = self.poller.deregister(pipe.as_raw_fd());
                    self.signals = None;
                    return;
                }
                Ok(n) => {
                    for &signal in &bytes[..n] {
                        match i32::from(signal) {
                            libc::SIGHUP => self.drain(Exit::Drained),
                            libc::SIGTERM | libc::SIGINT => self.stop(SIGNAL_GRACE_SECS),
                            libc::SIGUSR1 => self.report_status(),
                            _ => {}
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.poller.rearm(pipe.as_raw_fd(), Interest::READABLE);
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    crate::warn!("worker {}: signal pipe: {e}", self.id);
                    let _ = self.poller.deregister(pipe.as_raw_fd());
                    self.signals = None;
                    return;
                }
            }
        }
    }

    /// Frames wait in the link's outbox: watch the control socket for room again.
    pub(super) fn rearm_link(&mut self) {
        if self.link.wants_write() {
            if let Some(fd) = self.link.fd() {
                self.poller.rearm(fd, Interest::WRITABLE);
            }
        }
    }

    /// The `sessions` report: a line `{"total":N}`, then one JSON object per
    /// session, the oldest `limit` first, as many as fit in
    /// [`crate::control::MAX_PAYLOAD`] bytes. Times are milliseconds (`age_ms`,
    /// `idle_ms`): the master sorts the workers' sessions together by them.
    pub(super) fn sessions_report(&self, limit: usize) -> Vec<u8> {
        let mut sessions: Vec<&Session<Stream>> = self.sessions.iter().map(|(_, s)| s).collect();
        sessions.sort_by_key(|s| (s.meta.accepted, s.id));
        let mut out = serde_json::json!({ "total": self.sessions.len() }).to_string();
        out.push('\n');
        for session in sessions.into_iter().take(limit) {
            // As the session's records name it: the same id, client and listener.
            let listener = self
                .listener_names
                .get(session.meta.listener())
                .map_or("", String::as_str);
            let remote = match session.state {
                State::ProxyHeader { .. } | State::TlsHandshake { .. } | State::Connecting(_) => {
                    None
                }
                _ => session
                    .remote_index()
                    .and_then(|j| self.remotes.get(j))
                    .map(|r| r.address.to_string()),
            };
            let (bytes_in, bytes_out) = session.bytes();
            let millis = |since: Instant| {
                u64::try_from(self.now.saturating_duration_since(since).as_millis())
                    .unwrap_or(u64::MAX)
            };
            let mut line = serde_json::json!({
                "id": SessionId(self.pid, session.id).to_string(),
                "client": PeerText(session.meta.peer).to_string(),
                "listener": listener,
                "remote": remote,
                "age_ms": millis(session.meta.accepted),
                "idle_ms": millis(session.last_active),
                "bytes_in": bytes_in,
                "bytes_out": bytes_out,
            });
            if let Some(proxied) = session.meta.proxied() {
                // The proxy that sent the client's PROXY header.
                line["peer"] = PeerText(proxied.sender).to_string().into();
            }
            let line = line.to_string();
            if out.len() + line.len() + 1 > crate::control::MAX_PAYLOAD {
                break;
            }
            out.push_str(&line);
            out.push('\n');
        }
        out.into_bytes()
    }

    pub(super) fn report_probe(&self) {
        if let Some(probe) = &self.probe {
            let buffered = self.sessions.iter().map(|(_, s)| s.buffered()).sum();
            probe.record(self.sessions.len(), buffered, &self.pipes);
        }
    }
}
