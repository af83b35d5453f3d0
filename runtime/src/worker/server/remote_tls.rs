//! TLS towards `tls = yes` remotes (stunnel's client mode): the client contexts
//! built when the worker loads the plan, the stream of a connection to such a
//! remote, and its handshake, which runs once the TCP connect is complete (and after
//! a PROXY header) while the session is still connecting. A failed handshake or
//! verification is a failed attempt on that remote: counted (`tls failures`), the
//! remote marked dead like a failed connect, and the session fails over.

use super::*;
use crate::tls_context::{client_context, ClientContext};

/// The client contexts of `remotes`, in plan order (`None` for a plain remote). A
/// context that cannot be built (the master built them before forking, so only a
/// file changed since can make this fail) is an error kept for the remote's
/// attempts, which fail as TLS failures.
pub(super) fn client_contexts(
    worker: u32,
    remotes: &[Remote],
) -> Vec<Option<Result<ClientContext, String>>> {
    remotes
        .iter()
        .map(|remote| {
            let tls = remote.tls.as_ref()?;
            let context = client_context(tls);
            if let Err(e) = &context {
                crate::error!(
                    "worker {worker}: remote {}: {e}; its connections fail",
                    remote.address
                );
            }
            Some(context)
        })
        .collect()
}

/// The stream of a socket connecting to remote `index` (of `remotes`, whose client
/// contexts are `contexts`): the socket itself, or a TLS client over it whose
/// handshake starts once it is connected.
pub(super) fn remote_stream(
    contexts: &[Option<Result<ClientContext, String>>],
    remotes: &[Remote],
    index: usize,
    socket: Socket,
) -> io::Result<Stream> {
    match contexts.get(index) {
        Some(Some(Ok(context))) => {
            let ssl = context
                .ssl(remotes[index].address.ip())
                .map_err(io::Error::other)?;
            Ok(Stream::Tls(Box::new(TlsStream::connect(ssl, socket)?)))
        }
        Some(Some(Err(e))) => Err(io::Error::other(format!("no TLS context: {e}"))),
        _ => Ok(Stream::Plain(socket)),
    }
}

/// Whether a remote that failed before anything was relayed failed with a TLS
/// alert (rather than a reset): a TLS 1.3 server checks the client's certificate
/// after the client's side of the handshake is complete, so its refusal comes as an
/// alert then; it is a failed handshake all the same.
pub(super) fn refused_after_handshake(session: &Session<Stream>, error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::ConnectionAborted
        && session
            .remote
            .as_ref()
            .is_some_and(|end| matches!(end.io, Stream::Tls(_)))
}

impl Worker {
    /// After the TCP connect of session `key` (and after its PROXY header): starts
    /// the TLS handshake if its remote speaks TLS. True when the session waits for
    /// the handshake or failed over (the caller then neither counts it connected
    /// nor relays).
    pub(super) fn start_remote_handshake(&mut self, key: usize) -> bool {
        if !self
            .sessions
            .get(key)
            .is_some_and(|s| s.remote_handshaking())
        {
            return false;
        }
        // The handshake timeout is checked by the sweep.
        self.arm_sweep();
        self.remote_handshake(key);
        true
    }

    /// Drives the TLS handshake of session `key` with its remote on; once complete,
    /// the session is connected and relays.
    pub(super) fn remote_handshake(&mut self, key: usize) {
        let Some(session) = self.sessions.get_mut(key) else {
            return;
        };
        let State::Connecting(connecting) = &session.state else {
            return;
        };
        let started = connecting.started;
        match session.remote_handshake(self.now) {
            HandshakeOutcome::Pending | HandshakeOutcome::Queued => {
                if let Some(remote) = &session.remote {
                    let (readable, writable) = remote.io.awaits(true, false);
                    if let Some(interest) = poller::interest(readable, writable) {
                        self.poller.rearm(remote.io.as_raw_fd(), interest);
                    }
                }
            }
            HandshakeOutcome::Done => {
                if let (Some(index), Some(Stream::Tls(tls))) = (
                    session.remote_index(),
                    session.remote.as_ref().map(|end| &end.io),
                ) {
                    crate::debug!(
                        "worker {}: session {}: TLS with remote {} ({}{})",
                        self.id,
                        session.id,
                        self.remotes[index].address,
                        tls.version(),
                        if tls.resumed() { ", resumed" } else { "" }
                    );
                }
                self.give_up_logged = false;
                if self.idle_timeout.is_some() || self.silent_timeout.is_some() {
                    self.arm_sweep();
                }
                self.session_connected(key, started);
                self.run_session(key);
            }
            HandshakeOutcome::Failed(e) => {
                let error = io::Error::new(e.kind(), format!("TLS handshake failed: {e}"));
                self.fail_remote_tls(key, error);
            }
        }
    }

    /// The TLS handshake of session `key` with its remote failed or timed out: as a
    /// failed connect (the remote marked dead, the session fails over), counted as a
    /// TLS failure of the remote, whose kept session is forgotten.
    pub(super) fn fail_remote_tls(&mut self, key: usize, error: io::Error) {
        let index = self.sessions.get(key).and_then(|s| s.remote_index());
        if let Some(Some(Ok(context))) = index.and_then(|i| self.remote_tls.get(i)) {
            context.forget_session();
        }
        self.abandon_attempt(key, error, true);
    }
}
