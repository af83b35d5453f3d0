//! The relay-wide counters (`crate::stats`) and the connection records of the
//! worker's sessions: what is counted where, and the `session_open` and
//! `session_close` records (docs/logging.md).
//!
//! Bytes: a session's byte counts live in its two directions (plain integers, no
//! atomics on the read/write path). They are added to the shared counters per run
//! of a session that moved some ([`Worker::run_session`], the only place bytes
//! move), as the run's difference ([`count_bytes`]): a run moves up to
//! `READS_PER_RUN` reads per direction with at least two system calls, next to
//! which the six relaxed loads and stores are nothing, and a scrape sees the bytes
//! of a long session as they pass. A once-a-second walk over the sessions would add
//! fewer stores for bulk transfers but a timer that runs while sessions exist,
//! which the worker otherwise avoids (an idle worker does not wake up).

use super::*;
use crate::log::{record, Value};
use crate::stats::{ListenerSlot as ListenerCount, RemoteSlot};
use crate::worker::session::Cause;
use crate::worker::Counting;
use std::time::SystemTime;
use tcprelay_plan::Severity;

/// The counters slot of the plan's listener `index` (the overflow slot past them).
pub(super) fn listener_slot(counting: &Counting, index: usize) -> ListenerCount {
    counting
        .slots
        .listeners
        .get(index)
        .copied()
        .unwrap_or(ListenerCount::OVERFLOW)
}

fn remote_slot(counting: &Counting, index: usize) -> RemoteSlot {
    counting
        .slots
        .remotes
        .get(index)
        .copied()
        .unwrap_or(RemoteSlot::OVERFLOW)
}

/// Adds the bytes `session` relayed in a run to the counters (`before`: its byte
/// counts before the run), for its listener and its current remote. Bytes move
/// only in runs.
pub(super) fn count_bytes(
    counting: Option<&Counting>,
    session: &Session<Stream>,
    before: (u64, u64),
) {
    let Some(counting) = counting else {
        return;
    };
    let after = session.bytes();
    if after == before {
        return;
    }
    let Some(remote) = session.remote_index() else {
        return;
    };
    counting.counters.bytes(
        listener_slot(counting, session.meta.listener()),
        remote_slot(counting, remote),
        after.0.wrapping_sub(before.0),
        after.1.wrapping_sub(before.1),
    );
}

/// Brings the counters' dead marks (`dead_counted`: what they hold) in line with
/// the balancer's.
pub(super) fn sync_dead_marks(
    counting: Option<&Counting>,
    dead_counted: &mut [bool],
    balancer: &Balancer,
) {
    let Some(counting) = counting else {
        return;
    };
    for (index, counted) in dead_counted.iter_mut().enumerate() {
        let dead = balancer.is_dead(index);
        if dead == *counted {
            continue;
        }
        *counted = dead;
        let slot = remote_slot(counting, index);
        if dead {
            counting.counters.mark_dead(slot, SystemTime::now());
        } else {
            counting.counters.alive(slot);
        }
    }
}

/// Why the loop closed a session, as its close record says.
fn cause(why: &Why, session: &Session<Stream>) -> Cause {
    match why {
        Why::Relay(Close::Finished) => match session.first_end {
            Some(Side::Remote) => Cause::RemoteClosed,
            _ => Cause::ClientClosed,
        },
        Why::Relay(Close::Error {
            side: Side::Client, ..
        }) => Cause::ClientReset,
        Why::Relay(Close::Error {
            side: Side::Remote, ..
        }) => Cause::RemoteReset,
        Why::Idle => Cause::IdleTimeout,
        Why::Silent => Cause::SilentTimeout,
        Why::HalfClose => Cause::HalfCloseTimeout,
        Why::DrainOver => Cause::Drained,
        Why::NoRemote => {
            // One remote failing (on every attempt) is how it failed; several,
            // or none tried (every remote unusable), that none was left.
            let failed = session.meta.failed();
            if session.meta.tls_failed {
                return Cause::RemoteTls;
            }
            if !failed.is_empty() && failed.iter().all(|i| Some(i) == failed.first()) {
                if session.meta.timed_out {
                    Cause::ConnectTimeout
                } else {
                    Cause::ConnectRefused
                }
            } else {
                Cause::NoRemoteAlive
            }
        }
        Why::NoLocalPort | Why::Local(_) => Cause::LocalError,
        Why::Stopped => Cause::Stopped,
        Why::Handshake(_) => Cause::TlsFailed,
        // Not written: refusals have their own record or log line.
        Why::Refused => Cause::Denied,
        Why::Sni => Cause::SniRefused,
        Why::HandshakeTimeout => Cause::TlsTimeout,
    }
}

/// A session id in records: the worker's pid and the session's number in it.
pub(super) struct SessionId(pub u32, pub u64);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.0, self.1)
    }
}

impl Worker {
    /// A client taken from listener `index`'s queue (before the access rules).
    pub(super) fn count_accepted(&self, index: usize) {
        if let Some(counting) = &self.counting {
            counting.counters.accepted(listener_slot(counting, index));
        }
    }

    /// A client of listener `index` the access rules refused: counted, and its
    /// close record (it has no open record).
    pub(super) fn count_denied(&mut self, index: usize, peer: SocketAddr) {
        if let Some(counting) = &self.counting {
            counting.counters.denied(listener_slot(counting, index));
        }
        let id = self.next_id;
        self.next_id += 1;
        if !self.records {
            return;
        }
        let listener = self.listener_names.get(index).map(String::as_str);
        record(
            Severity::Info,
            "session_close",
            &[
                ("session", Value::display(&SessionId(self.pid, id))),
                ("client", Value::display(&peer)),
                ("listener", listener.into()),
                ("remote", Value::Absent),
                ("bytes_to_remote", 0u64.into()),
                ("bytes_to_client", 0u64.into()),
                ("duration", Duration::ZERO.into()),
                ("connect_time", Value::Absent),
                ("tls_version", Value::Absent),
                ("tls_cipher", Value::Absent),
                ("cause", Cause::Denied.name().into()),
            ],
        );
    }

    /// A TLS client's handshake completed.
    pub(super) fn count_handshake_done(&self) {
        if let Some(counting) = &self.counting {
            counting.counters.tls_handshake(true);
        }
    }

    /// The session `key` connected to its remote, `started` being when the connect
    /// began: counted, and on its first remote the session opens (its counters and
    /// its open record).
    pub(super) fn session_connected(&mut self, key: usize, started: Instant) {
        let Some(session) = self.sessions.get_mut(key) else {
            return;
        };
        let Some(index) = session.remote_index() else {
            return;
        };
        let connect_time = self.now.saturating_duration_since(started);
        session.meta.set_connect_time(connect_time);
        let first = session.meta.opened().is_none();
        if let Some(counting) = &self.counting {
            let remote = remote_slot(counting, index);
            counting.counters.connected(remote, connect_time);
            if first {
                // A session whose remote fails before anything is relayed and that
                // is moved to another stays counted open on the first: the counters
                // close it with the slots they opened it with.
                let listener = listener_slot(counting, session.meta.listener());
                counting.counters.session_opened(listener, remote);
            }
        }
        if first {
            session.meta.set_opened(index);
        }
        if !self.records {
            return;
        }
        let tried = (!session.meta.failed().is_empty()).then(|| {
            session
                .meta
                .failed()
                .iter()
                .filter_map(|&i| self.remotes.get(i as usize))
                .map(|r| r.address.to_string())
                .collect::<Vec<_>>()
                .join(",")
        });
        let listener = self
            .listener_names
            .get(session.meta.listener())
            .map(String::as_str);
        let sender = session.meta.proxied().map(|p| PeerText(p.sender));
        let (id, client) = (SessionId(self.pid, session.id), PeerText(session.meta.peer));
        let mut fields = vec![
            ("session", Value::display(&id)),
            ("client", Value::display(&client)),
            ("listener", listener.into()),
            ("remote", Value::display(&self.remotes[index].address)),
            ("tried", tried.as_ref().into()),
        ];
        if let Some(sender) = &sender {
            // The proxy whose PROXY header named the client.
            fields.insert(2, ("peer", Value::display(sender)));
        }
        record(Severity::Info, "session_open", &fields);
    }

    /// The attempt of session `key` on remote `index` failed with `error`: counted
    /// as a failed connect, or (`tls`) as a failed TLS handshake (or its timeout).
    pub(super) fn count_attempt(&mut self, key: usize, index: usize, error: &io::Error, tls: bool) {
        if let Some(counting) = &self.counting {
            let slot = remote_slot(counting, index);
            if tls {
                counting.counters.remote_tls_failed(slot);
            } else {
                counting.counters.connect_failed(slot);
            }
        }
        if let Some(session) = self.sessions.get_mut(key) {
            session.meta.push_failed(index);
            session.meta.timed_out = error.kind() == io::ErrorKind::TimedOut;
            session.meta.tls_failed = tls;
        }
    }

    /// Brings the counters' dead marks in line with the balancer's, after it marked
    /// a remote dead or revived remotes.
    pub(super) fn sync_dead_marks(&mut self) {
        sync_dead_marks(
            self.counting.as_ref(),
            &mut self.dead_counted,
            &self.balancer,
        );
    }

    /// A session removed from the worker for `why`: the rest of its bytes, its
    /// close in the counters, and its close record.
    pub(super) fn session_ended(&self, session: &Session<Stream>, why: &Why) {
        if matches!(why, Why::Refused) {
            // Never relayed, never opened: counted where it was refused.
            return;
        }
        // A client refused by SNI routing never reached a handshake.
        let handshake_failed = matches!(why, Why::Handshake(_) | Why::HandshakeTimeout)
            || (matches!(session.state, State::TlsHandshake { .. }) && !matches!(why, Why::Sni));
        let duration = self.now.saturating_duration_since(session.meta.accepted);
        if let Some(counting) = &self.counting {
            if handshake_failed {
                counting.counters.tls_handshake(false);
            }
            if let Some(index) = session.meta.opened() {
                counting.counters.session_closed(
                    listener_slot(counting, session.meta.listener()),
                    remote_slot(counting, index),
                    duration,
                );
            }
        }
        if !self.records {
            return;
        }
        let (version, cipher) = match &session.client.io {
            Stream::Tls(tls) if !handshake_failed => {
                (Some(tls.version()).filter(|v| !v.is_empty()), tls.cipher())
            }
            _ => (None, None),
        };
        let remote = session
            .remote_index()
            .or(session.meta.opened())
            .filter(|_| session.meta.opened().is_some())
            .map(|i| self.remotes[i].address);
        let listener = self
            .listener_names
            .get(session.meta.listener())
            .map(String::as_str);
        let (to_remote, to_client) = session.bytes();
        let sender = session.meta.proxied().map(|p| PeerText(p.sender));
        let (id, client) = (SessionId(self.pid, session.id), PeerText(session.meta.peer));
        let mut fields = vec![
            ("session", Value::display(&id)),
            ("client", Value::display(&client)),
            ("listener", listener.into()),
            (
                "remote",
                remote.as_ref().map_or(Value::Absent, |r| Value::display(r)),
            ),
            ("bytes_to_remote", to_remote.into()),
            ("bytes_to_client", to_client.into()),
            ("duration", duration.into()),
            ("connect_time", session.meta.connect_time().into()),
            ("tls_version", version.into()),
            ("tls_cipher", cipher.into()),
            ("cause", cause(why, session).name().into()),
        ];
        if let Some(sender) = &sender {
            fields.insert(2, ("peer", Value::display(sender)));
        }
        record(Severity::Info, "session_close", &fields);
    }
}
