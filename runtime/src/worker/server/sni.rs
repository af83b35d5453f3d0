//! Routing by SNI in the worker (docs/sni.md): `crate::sni` reads a ClientHello,
//! `tcprelay_plan::sni` chooses the route; this module does the I/O around them.
//!
//! A TLS client of a relay with routes is in `State::TlsHandshake` with no route
//! chosen yet: before OpenSSL sees a byte, what it sent is peeked at (`MSG_PEEK`,
//! at most `sni::MAX_HELLO` bytes, into a buffer the worker allocates on first
//! use) on each readiness event until it holds a whole ClientHello. The bytes stay
//! in the socket: for OpenSSL when the route terminates (with the route's own
//! certificate when it has one), for the remote when it passes TLS through (the
//! stream is then relayed as it is, `TlsStream::pass_through`). The route holds
//! the session's remotes for every selection and failover (`Tried::restrict`).
//!
//! Readiness: under epoll (and kqueue) each new segment raises an event. poll(2)
//! and select(2) report unread bytes again at once, so a partial ClientHello is
//! not re-armed (that would spin); the sessions in that state are looked at again
//! every [`HELLO_RETRY`] instead, so that a ClientHello in many small segments
//! takes a few milliseconds per segment there, not a second.
//!
//! Refusals (docs/sni.md's rules) close the client before any remote: counted by
//! reason (`crate::stats::SniRefusal`) and in its listener, a close record with
//! the cause `sni_refused`, and one log line per peer (`RefusedPeers`).

use super::proxy::RefusedPeers;
use super::*;
use crate::sni::{self as hello, Failure, MAX_HELLO};
use crate::stats::SniRefusal;
use rustix::net::{recv, RecvFlags};
use std::os::fd::AsFd;
use tcprelay_plan::sni::Unrouted;
use tcprelay_plan::{Relay, RouteMode};

/// How soon a level-triggered poller (poll, select) looks again at clients whose
/// ClientHello is still partial.
pub const HELLO_RETRY: Duration = Duration::from_millis(5);

/// What a worker of a relay with routes keeps for routing.
#[derive(Debug)]
pub(super) struct Routing {
    /// The routes and the remotes' membership, for `tcprelay_plan::sni::choose`.
    relay: Relay,
    /// Each route's own server context (plan order; `None`: the section's).
    contexts: Vec<Option<openssl::ssl::SslContext>>,
    /// Where ClientHellos are peeked at, allocated on first use.
    buffer: Vec<u8>,
    /// Clients with a partial ClientHello under a level-triggered poller, looked
    /// at again at `retry_at`: (key, session id).
    waiting: Vec<(usize, u64)>,
    pub(super) retry_at: Option<Instant>,
    /// The peers whose refusals were logged (once each).
    logged: RefusedPeers,
}

impl Routing {
    /// Route `route`'s own `balance`, if it has one.
    pub(super) fn balance_of(&self, route: u32) -> Option<tcprelay_plan::Balance> {
        self.relay.routes.get(route as usize)?.balance
    }

    /// Routing for `relay`, `None` when it has no routes.
    pub(super) fn new(
        relay: &Relay,
        contexts: Vec<Option<openssl::ssl::SslContext>>,
    ) -> Option<Box<Routing>> {
        if relay.routes.is_empty() {
            return None;
        }
        let mut kept = Relay::new(relay.remotes.clone());
        kept.routes = relay.routes.clone();
        kept.discovered = relay.discovered.clone();
        Some(Box::new(Routing {
            relay: kept,
            contexts,
            buffer: Vec::new(),
            waiting: Vec::new(),
            retry_at: None,
            logged: RefusedPeers::default(),
        }))
    }
}

/// Why a client was refused, with the details for the log line.
enum Refusal {
    NotTls(u8),
    Hello(hello::Error),
    Unrouted(Unrouted, Option<String>),
    Timeout(Duration),
}

impl Refusal {
    fn reason(&self) -> SniRefusal {
        match self {
            Refusal::NotTls(_) => SniRefusal::NotTls,
            Refusal::Hello(_) => SniRefusal::BadHello,
            Refusal::Unrouted(Unrouted::NoServerName, _) => SniRefusal::NoSni,
            Refusal::Unrouted(Unrouted::UnknownName, _) => SniRefusal::UnknownSni,
            Refusal::Timeout(_) => SniRefusal::Timeout,
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NotTls(byte) => write!(
                f,
                "not TLS (first byte {byte:#04x}, not a handshake record) on a `tls = yes` listener"
            ),
            Refusal::Hello(e) => write!(f, "bad ClientHello: {e}"),
            Refusal::Unrouted(why, Some(name)) => write!(f, "server name `{name}`: {why}"),
            Refusal::Unrouted(why, None) => write!(f, "{why}"),
            Refusal::Timeout(t) => write!(f, "no whole ClientHello within {} ms", t.as_millis()),
        }
    }
}

/// What a look at a client's first bytes found.
enum Step {
    /// Nothing yet.
    Wait,
    /// Part of a ClientHello.
    Partial,
    Refuse(Refusal),
    /// A plain client of a `tls = auto` listener (its first byte).
    Plain(u8),
    /// A whole ClientHello, with its server name if any.
    Hello(Option<String>),
    /// The socket failed.
    Failed(io::Error),
}

impl Worker {
    /// Chooses the route of TLS session `key` before its handshake, when the relay
    /// has routes and it has none yet. True when the handshake may go on (the
    /// route terminates with the right context, or passes TLS through: the
    /// handshake is then done at once); false when the session waits for more of
    /// its ClientHello or was closed.
    pub(super) fn route_client(&mut self, key: usize) -> bool {
        let Some(routing) = self.routing.as_deref_mut() else {
            return true;
        };
        let Some(session) = self.sessions.get_mut(key) else {
            return false;
        };
        if session.meta.route().is_some() {
            return true;
        }
        let Stream::Tls(tls) = &session.client.io else {
            return true;
        };
        let closed = session.client.closed_or_failed();
        if routing.buffer.is_empty() {
            routing.buffer = vec![0; MAX_HELLO];
        }
        let auto = matches!(
            self.listeners.get(session.meta.listener()),
            Some(Some(slot)) if slot.tls_auto
        );
        let step = peek(tls.socket().as_fd(), &mut routing.buffer, closed, auto);
        let raw = session.client.io.as_raw_fd();
        let id = session.id;
        let (name, plain) = match step {
            Step::Wait => {
                self.poller.rearm(raw, Interest::READABLE);
                return false;
            }
            Step::Partial => {
                if matches!(self.poller.mechanism(), Mechanism::Poll | Mechanism::Select) {
                    routing.waiting.push((key, id));
                    routing.retry_at.get_or_insert(self.now + HELLO_RETRY);
                }
                return false;
            }
            Step::Failed(error) => {
                self.close(
                    key,
                    Why::Relay(Close::Error {
                        side: Side::Client,
                        error,
                    }),
                );
                return false;
            }
            Step::Refuse(why) => {
                self.refuse_sni(key, why);
                return false;
            }
            Step::Plain(byte) => match tcprelay_plan::sni::default_route(&routing.relay) {
                Some(_) => (None, true),
                None => {
                    self.refuse_sni(key, Refusal::NotTls(byte));
                    return false;
                }
            },
            Step::Hello(name) => (name, false),
        };
        let route = match tcprelay_plan::sni::choose(&routing.relay, name.as_deref()) {
            Ok(route) => route,
            Err(why) => {
                self.refuse_sni(key, Refusal::Unrouted(why, name));
                return false;
            }
        };
        let mode = tcprelay_plan::sni::mode(&routing.relay, route);
        let context = route
            .and_then(|i| routing.contexts.get(i as usize))
            .and_then(Option::as_ref);
        let Some(session) = self.sessions.get_mut(key) else {
            return false;
        };
        session.meta.set_route(route);
        crate::debug!(
            "worker {}: session {id}: server name {}: {} ({})",
            self.id,
            name.as_deref().unwrap_or("none"),
            route.map_or("the default route".to_string(), |i| format!(
                "route {}",
                i + 1
            )),
            match (plain, mode) {
                (true, _) => "a plain client, tls = auto",
                (false, RouteMode::Passthrough) => "TLS passed through",
                (false, RouteMode::Terminate) => "TLS terminated",
            }
        );
        if let Stream::Tls(tls) = &mut session.client.io {
            if plain || mode == RouteMode::Passthrough {
                tls.pass_through();
            } else if let Some(context) = context {
                tls.set_context(context);
            }
        }
        true
    }
}

impl Worker {
    /// Closes session `key` for `why`: counted by reason and in its listener, its
    /// close record, and logged once per peer.
    fn refuse_sni(&mut self, key: usize, why: Refusal) {
        let Some(session) = self.sessions.get(key) else {
            return;
        };
        let (index, peer) = (session.meta.listener(), session.meta.peer);
        let reason = why.reason();
        if let Some(counting) = &self.counting {
            counting
                .counters
                .sni_refused(records::listener_slot(counting, index), reason);
        }
        let listener = self.listener_names.get(index).map_or("?", String::as_str);
        let first = self
            .routing
            .as_mut()
            .map(|r| r.logged.first(peer.map(|p| acl::canonical(p.ip()))));
        match first {
            Some((true, full)) => crate::warn!(
                "worker {}: listener {listener}: client {} closed: {why}; {}",
                self.id,
                PeerText(peer),
                if full {
                    "more than 1024 peers refused: further ones are counted (refused_sni), not logged"
                } else {
                    "further refusals of this peer are counted (refused_sni), not logged"
                }
            ),
            _ => crate::debug!(
                "worker {}: listener {listener}: client {} closed: {why}",
                self.id,
                PeerText(peer)
            ),
        }
        self.close(key, Why::Sni);
    }

    /// A client whose ClientHello did not come whole within the handshake timeout
    /// (the sweep found it).
    pub(super) fn refuse_hello_timeout(&mut self, key: usize) {
        self.refuse_sni(key, Refusal::Timeout(self.handshake_timeout));
    }

    /// Under poll(2) and select(2): the clients with a partial ClientHello are
    /// watched again (their bytes are reported at once, new ones or not).
    pub(super) fn retry_hellos(&mut self) {
        let Some(routing) = self.routing.as_deref_mut() else {
            return;
        };
        routing.retry_at = None;
        let waiting = std::mem::take(&mut routing.waiting);
        for (key, id) in waiting {
            if let Some(session) = self.sessions.get(key).filter(|s| s.id == id) {
                self.poller
                    .rearm(session.client.io.as_raw_fd(), Interest::READABLE);
            }
        }
    }
}

/// What the client sent so far, without taking it from the socket (`closed`: its
/// readiness said it closed or failed; `auto`: a first byte that is not TLS is a
/// plain client).
fn peek(fd: std::os::fd::BorrowedFd<'_>, buf: &mut [u8], closed: bool, auto: bool) -> Step {
    loop {
        return match recv(fd, &mut *buf, RecvFlags::PEEK | RecvFlags::DONTWAIT) {
            Err(rustix::io::Errno::INTR) => continue,
            Err(rustix::io::Errno::AGAIN) if closed => {
                Step::Refuse(Refusal::Hello(hello::Error::Truncated(0)))
            }
            Err(rustix::io::Errno::AGAIN) => Step::Wait,
            Err(e) => Step::Failed(io::Error::from(e)),
            Ok((0, _)) => Step::Refuse(Refusal::Hello(hello::Error::Truncated(0))),
            Ok((peeked, _)) => match hello::parse(&buf[..peeked]) {
                Ok(parsed) => Step::Hello(parsed.server_name),
                Err(Failure::NotTls(byte)) if auto => Step::Plain(byte),
                Err(Failure::NotTls(byte)) => Step::Refuse(Refusal::NotTls(byte)),
                Err(Failure::Incomplete) if closed || peer_closed(fd) => {
                    Step::Refuse(Refusal::Hello(hello::Error::Truncated(peeked)))
                }
                Err(Failure::Incomplete) => Step::Partial,
                Err(Failure::Invalid(e)) => Step::Refuse(Refusal::Hello(e)),
            },
        };
    }
}

impl Worker {
    /// A client that reaches its first selection with no route chosen (a listener
    /// without TLS, or a client of one): the default route, or refused when there
    /// is none, as a client without a server name. True when it may connect.
    pub(super) fn route_plain(&mut self, key: usize) -> bool {
        let Some(routing) = self.routing.as_deref() else {
            return true;
        };
        let Some(session) = self.sessions.get_mut(key) else {
            return false;
        };
        if session.meta.route().is_some() {
            return true;
        }
        match tcprelay_plan::sni::default_route(&routing.relay) {
            Some(route) => {
                session.meta.set_route(route);
                true
            }
            None => {
                self.refuse_sni(key, Refusal::Unrouted(Unrouted::NoServerName, None));
                false
            }
        }
    }
}

/// Whether the peer of `fd` has closed its side (a poll without waiting for
/// `POLLRDHUP`): select(2) reports no such event, and a peek sees only the bytes,
/// so a client that sent part of a ClientHello and closed would otherwise wait
/// for the handshake timeout.
fn peer_closed(fd: std::os::fd::BorrowedFd<'_>) -> bool {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let mut entry = [PollFd::from_borrowed_fd(fd, PollFlags::RDHUP)];
    let no_wait = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    poll(&mut entry, Some(&no_wait)).is_ok_and(|n| n > 0)
        && entry[0]
            .revents()
            .intersects(PollFlags::RDHUP | PollFlags::HUP | PollFlags::ERR)
}
