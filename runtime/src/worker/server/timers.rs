//! Timers: the run-again queue and the sweep for handshake, connect, idle and
//! half-close timeouts.

use super::*;

impl Worker {
    pub(super) fn arm_sweep(&mut self) {
        if self.sweep_at.is_none() {
            self.sweep_at = Some(self.now + SWEEP_INTERVAL);
        }
    }

    pub(super) fn run_timers(&mut self) {
        if self.starved.is_some_and(|s| s.until <= self.now) {
            self.starved = None;
            self.sync_listeners();
        }
        if self.grace_at.is_some_and(|at| at <= self.now) {
            self.grace_at = None;
            let keys: Vec<usize> = self.sessions.iter().map(|(key, _)| key).collect();
            if !keys.is_empty() {
                crate::notice!(
                    "worker {}: grace period over, closing {} sessions",
                    self.id,
                    keys.len()
                );
            }
            for key in keys {
                self.close(key, Why::Stopped);
            }
        }
        if self.sweep_at.is_some_and(|at| at <= self.now) {
            self.sweep();
        }
        if self.port_retry_at.is_some_and(|at| at <= self.now) {
            self.retry_port_waiters();
        }
        if self
            .routing
            .as_ref()
            .and_then(|r| r.retry_at)
            .is_some_and(|at| at <= self.now)
        {
            self.retry_hellos();
        }
        if self.failing_at.is_some_and(|at| at <= self.now) {
            self.check_failing();
        }
        self.check_deferral();
        if self.idle_at.is_some_and(|at| at <= self.now) {
            // Again after each idle-release time while idle: the master may have
            // had to keep this worker the last time (another one was full).
            self.idle_at = Some(self.now + self.idle_release);
            if self.sessions.is_empty() && self.exit.is_none() {
                self.link.send(
                    ToMaster::Idle {
                        served: self.served,
                    },
                    true,
                );
            }
        }
    }

    /// Runs the failing sessions again (every [`FAILING_CHECK`] while there are
    /// some): each closes once the other side's kernel has sent what was delivered
    /// to it, or once its delivery stalled for `FAILING_LIMIT`.
    pub(super) fn check_failing(&mut self) {
        self.failing_at = None;
        let mut due = std::mem::take(&mut self.failing);
        // Each listed session once (an entry left by a session that failed over
        // and failed again is not its listing).
        due.retain(|&(key, id)| match self.sessions.get_mut(key) {
            Some(session) if session.id == id => match &mut session.state {
                State::Failing(failure) => std::mem::replace(&mut failure.listed, false),
                _ => false,
            },
            _ => false,
        });
        for (key, _) in due {
            self.run_session(key);
        }
    }

    /// Fails over connects older than the connect timeout (and TLS handshakes with a
    /// remote older than the TLS handshake timeout), closes TLS clients whose
    /// handshake takes longer than the TLS handshake timeout, sessions idle for the idle
    /// timeout, sessions through which nothing has passed for the silent timeout and
    /// sessions one direction of which ended the half-close timeout ago; re-arms
    /// itself while any of these can still happen.
    pub(super) fn sweep(&mut self) {
        self.sweep_at = None;
        let now = self.now;
        let mut rearm = false;
        self.expired.clear();
        for (key, session) in self.sessions.iter() {
            match &session.state {
                State::Connecting(c) if session.remote.is_some() => {
                    if let Some(since) = c.handshake {
                        if now.saturating_duration_since(since) >= self.handshake_timeout {
                            self.expired.push((key, Expired::RemoteHandshake));
                        } else {
                            rearm = true;
                        }
                    } else if now.saturating_duration_since(c.started) >= self.connect_timeout {
                        self.expired.push((key, Expired::Connect));
                    } else {
                        rearm = true;
                    }
                }
                State::ProxyHeader { started } => {
                    let limit = self.proxy_timeout(session.meta.listener());
                    if now.saturating_duration_since(*started) >= limit {
                        self.expired.push((key, Expired::ProxyHeader));
                    } else {
                        // A level-triggered poller is not re-armed for a partial
                        // header (its bytes stay readable): it looks again now.
                        self.poller
                            .rearm(session.client.io.as_raw_fd(), Interest::READABLE);
                        rearm = true;
                    }
                }
                State::TlsHandshake { started } => {
                    if now.saturating_duration_since(*started) >= self.handshake_timeout {
                        let hello = self.routing.is_some() && session.meta.route().is_none();
                        self.expired.push((
                            key,
                            if hello {
                                Expired::Hello
                            } else {
                                Expired::Handshake
                            },
                        ));
                    } else {
                        rearm = true;
                    }
                }
                State::Connecting(_) | State::Closed => {}
                State::Relaying | State::HalfClosed { .. } | State::Failing(_) => {
                    // One direction has ended: the whole session goes that long
                    // after, whatever the other one does.
                    if let (State::HalfClosed { .. }, Some(limit), Some(since)) = (
                        &session.state,
                        self.half_close_timeout,
                        session.half_closed_at(),
                    ) {
                        if now.saturating_duration_since(since) >= limit {
                            self.expired.push((key, Expired::HalfClose));
                            continue;
                        }
                        rearm = true;
                    }
                    let quiet = now.saturating_duration_since(session.last_active);
                    // Nothing has passed either way since it started relaying.
                    let silent = self.silent_timeout.filter(|_| session.bytes() == (0, 0));
                    if let Some(idle) = self.idle_timeout {
                        if quiet >= idle {
                            self.expired.push((key, Expired::Idle));
                            continue;
                        }
                        rearm = true;
                    }
                    if let Some(silent) = silent {
                        if quiet >= silent {
                            self.expired.push((key, Expired::Silent));
                        } else {
                            rearm = true;
                        }
                    }
                }
            }
        }
        let expired = std::mem::take(&mut self.expired);
        for &(key, what) in &expired {
            match what {
                Expired::Connect => {
                    let error = io::Error::new(io::ErrorKind::TimedOut, "connect timed out");
                    self.fail_attempt(key, error);
                }
                Expired::Idle => self.close(key, Why::Idle),
                Expired::Silent => self.close(key, Why::Silent),
                Expired::Handshake => self.close(key, Why::HandshakeTimeout),
                Expired::RemoteHandshake => {
                    let error = io::Error::new(
                        io::ErrorKind::TimedOut,
                        "TLS handshake timed out (tls handshake timeout)",
                    );
                    self.fail_remote_tls(key, error);
                }
                Expired::HalfClose => self.close(key, Why::HalfClose),
                Expired::ProxyHeader => self.refuse_proxy_timeout(key),
                Expired::Hello => self.refuse_hello_timeout(key),
            }
        }
        self.expired = expired;
        if rearm {
            self.arm_sweep();
        }
    }

    /// After a burst, returns the freed heap to the system: glibc's allocator keeps
    /// what a burst of TLS handshakes or sessions freed, and a worker stayed at tens
    /// of MB after one. When the sessions held have fallen by [`TRIM_AFTER`] from
    /// their peak: a second later (more are usually closing), or at once when none
    /// is left. The peak then starts again from what is held.
    pub(super) fn give_back_memory(&mut self) {
        let held = self.sessions.len();
        if held >= self.peak {
            self.peak = held;
            return;
        }
        let fallen = self.peak - held >= TRIM_AFTER;
        if fallen && self.trim_at.is_none() {
            self.trim_at = Some(self.now + TRIM_DELAY);
        }
        if (fallen && held == 0) || self.trim_at.is_some_and(|at| at <= self.now) {
            self.trim_at = None;
            self.peak = held;
            crate::os::trim_heap();
        }
    }
}

/// How far the sessions held must fall from their peak before freed memory is
/// returned to the system, and how long after.
pub(super) const TRIM_AFTER: usize = 64;
const TRIM_DELAY: Duration = Duration::from_secs(1);
