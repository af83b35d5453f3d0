//! The PROXY protocol in the worker (`crate::proxy` parses and writes headers).
//!
//! Accepting (a listener with `accept proxy`): a peer outside `accept proxy from`
//! is closed at accept. Otherwise the session starts in `State::ProxyHeader`: what
//! the client sent is peeked at (`MSG_PEEK`, at most [`MAX_V2`] bytes) on each
//! readiness event until it holds a whole header, which is then consumed exactly,
//! so that the client's own bytes (a TLS ClientHello, a request) stay in the
//! socket. A bad header, a connection closed before a whole one, or none within
//! `accept proxy timeout`, closes the client: counted in its listener's
//! `proxy_refused`, logged once per peer, never relayed, no connection record. An
//! IP address the header carries becomes the session's client (the ACL decides
//! on it, records and `ctl sessions` show it, a `send proxy` remote is sent it);
//! LOCAL and UNKNOWN headers leave the real peer as the client.
//!
//! Sending (a remote with `send proxy`): once the connect to it succeeds, before
//! any byte of the client and before anything else on that socket, the header is
//! written raw on the socket ([`Worker::send_proxy_header`]).

use super::*;
use crate::proxy::{self as pp, Addresses, Failure, Header, MAX_V2};
use crate::worker::session::Proxied;
use rustix::net::{recv, send, RecvFlags, SendFlags};
use std::collections::HashSet;
use std::os::fd::{AsFd, BorrowedFd};
use tcprelay_plan::ProxyVersion;

/// At most this many peers are remembered as logged; refusals of further peers are
/// counted, and said once not to be logged one by one.
const LOGGED_PEERS: usize = 1024;

/// The peers whose refusal was logged: each once, in bounded memory.
#[derive(Debug, Default)]
pub(super) struct RefusedPeers {
    logged: HashSet<Option<IpAddr>>,
    full_said: bool,
}

impl RefusedPeers {
    /// Whether a refusal of `peer` is to be logged (the first one), and whether the
    /// line must say that further peers will not be.
    pub(super) fn first(&mut self, peer: Option<IpAddr>) -> (bool, bool) {
        if self.logged.contains(&peer) {
            return (false, false);
        }
        if self.logged.len() >= LOGGED_PEERS {
            return (!std::mem::replace(&mut self.full_said, true), true);
        }
        self.logged.insert(peer);
        (true, false)
    }
}

/// Why a client of a PROXY-accepting listener was closed.
enum Refusal {
    Untrusted,
    Header(pp::Error),
    Timeout(Duration),
    Error(io::Error),
}

/// What a look at a client's first bytes found.
enum Step {
    /// Nothing yet.
    Wait,
    /// Part of a header.
    Partial,
    Refuse(Refusal),
    /// A whole header, consumed.
    Read(Header),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Untrusted => {
                f.write_str("not trusted to send PROXY headers (not in `accept proxy from`)")
            }
            Refusal::Header(e) => write!(f, "bad PROXY header: {e}"),
            Refusal::Timeout(t) => write!(f, "no whole PROXY header within {} ms", t.as_millis()),
            Refusal::Error(e) => write!(f, "connection error before its PROXY header: {e}"),
        }
    }
}

/// The kernel socket of a side, under TLS too (the PROXY header is outside it).
fn socket_of(stream: &Stream) -> BorrowedFd<'_> {
    match stream {
        Stream::Plain(socket) => socket.as_fd(),
        Stream::Tls(tls) => tls.socket().as_fd(),
    }
}

impl Worker {
    /// `accept proxy timeout` of listener `index`.
    pub(super) fn proxy_timeout(&self, index: usize) -> Duration {
        let ms = self
            .accept_proxy
            .get(index)
            .and_then(Option::as_ref)
            .map_or(tcprelay_plan::defaults::ACCEPT_PROXY_TIMEOUT_MS, |p| {
                p.timeout_ms
            });
        Duration::from_millis(u64::from(ms))
    }

    /// Counts and logs (once per peer) a refusal on listener `index`.
    fn proxy_refused(&mut self, index: usize, peer: Option<SocketAddr>, why: Refusal) {
        self.refused_proxy += 1;
        if let Some(counting) = &self.counting {
            counting
                .counters
                .proxy_refused(records::listener_slot(counting, index));
        }
        let listener = self.listener_names.get(index).map_or("?", String::as_str);
        match self
            .proxy_refused
            .first(peer.map(|p| acl::canonical(p.ip())))
        {
            (true, full) => crate::warn!(
                "worker {}: listener {listener}: client {} closed: {why}{}",
                self.id,
                PeerText(peer),
                if full {
                    format!("; more than {LOGGED_PEERS} peers refused: further ones are counted (proxy_refused), not logged")
                } else {
                    "; further refusals of this peer are counted (proxy_refused), not logged"
                        .to_string()
                }
            ),
            (false, _) => crate::debug!(
                "worker {}: listener {listener}: client {} closed: {why}",
                self.id,
                PeerText(peer)
            ),
        }
    }

    /// A peer outside `accept proxy from`, closed at accept.
    pub(super) fn refuse_untrusted(&mut self, index: usize, peer: SocketAddr) {
        self.proxy_refused(index, Some(peer), Refusal::Untrusted);
    }

    /// A client whose header did not come within the timeout.
    pub(super) fn refuse_proxy_timeout(&mut self, key: usize) {
        let Some(session) = self.sessions.get(key) else {
            return;
        };
        let (index, peer) = (session.meta.listener(), session.meta.peer);
        let limit = self.proxy_timeout(index);
        self.proxy_refused(index, peer, Refusal::Timeout(limit));
        self.close(key, Why::Refused);
    }

    fn refuse_header(&mut self, key: usize, why: Refusal) {
        let Some(session) = self.sessions.get(key) else {
            return;
        };
        let (index, peer) = (session.meta.listener(), session.meta.peer);
        self.proxy_refused(index, peer, why);
        self.close(key, Why::Refused);
    }

    /// Looks at what the client of session `key` sent (`closed`: its readiness
    /// event said it closed or failed): waits for more, refuses it, or consumes a
    /// whole header and goes on with the TLS handshake or the connect.
    pub(super) fn proxy_header(&mut self, key: usize, closed: bool) {
        let Some(session) = self.sessions.get(key) else {
            return;
        };
        if !matches!(session.state, State::ProxyHeader { .. }) {
            return;
        }
        let index = session.meta.listener();
        let Some(accept) = self.accept_proxy.get(index).and_then(Option::as_ref) else {
            return;
        };
        let version = accept.version;
        let fd = socket_of(&session.client.io);
        let raw = session.client.io.as_raw_fd();
        let buf = &mut self.scratch[..MAX_V2];
        // What the client sent: a whole header consumed, or why not (yet).
        let step = match recv(fd, &mut *buf, RecvFlags::PEEK | RecvFlags::DONTWAIT) {
            Err(e) if e == rustix::io::Errno::AGAIN || e == rustix::io::Errno::INTR => {
                if closed {
                    Step::Refuse(Refusal::Header(pp::Error::Truncated(0)))
                } else {
                    Step::Wait
                }
            }
            Err(e) => Step::Refuse(Refusal::Error(io::Error::from(e))),
            Ok((peeked, _)) => match pp::parse_accepting(&buf[..peeked], version) {
                Ok(parsed) => {
                    // Consume exactly the header: it is in the socket, whole.
                    match recv(fd, &mut buf[..parsed.consumed], RecvFlags::DONTWAIT) {
                        Ok((n, _)) if n == parsed.consumed => Step::Read(parsed.header),
                        _ => Step::Refuse(Refusal::Error(io::Error::other(
                            "the PROXY header could not be consumed",
                        ))),
                    }
                }
                Err(Failure::Incomplete) if peeked == 0 || closed => {
                    Step::Refuse(Refusal::Header(pp::Error::Truncated(peeked)))
                }
                // Edge-triggered: the next bytes raise an event. Level-triggered
                // pollers would report these bytes again at once: the sweep looks
                // again instead (every second, within the timeout).
                Err(Failure::Incomplete) => Step::Partial,
                Err(Failure::Invalid(e)) => Step::Refuse(Refusal::Header(e)),
            },
        };
        match step {
            Step::Wait => self.poller.rearm(raw, Interest::READABLE),
            Step::Partial => {}
            Step::Refuse(why) => self.refuse_header(key, why),
            Step::Read(header) => self.proxy_header_read(key, header),
        }
    }

    /// A whole header was consumed: the client it names, the ACL on it, then on.
    fn proxy_header_read(&mut self, key: usize, header: Header) {
        let now = self.now;
        let Some(session) = self.sessions.get_mut(key) else {
            return;
        };
        let sender = session.meta.peer;
        // What a proxy in front learned of the client's TLS goes on down the chain.
        let tlvs: Vec<pp::Tlv> = header
            .tlvs
            .iter()
            .filter(|t| t.kind == pp::tlv::AUTHORITY || t.kind == pp::tlv::SSL)
            .cloned()
            .collect();
        match &header.addresses {
            Addresses::Inet {
                source,
                destination,
            } => {
                session.meta.peer = Some(canonical(*source));
                session.meta.set_proxied(Proxied {
                    sender,
                    destination: Some(canonical(*destination)),
                    tlvs,
                });
            }
            Addresses::Unix { .. } => {
                session.meta.peer = None;
                session.meta.set_proxied(Proxied {
                    sender,
                    destination: None,
                    tlvs,
                });
            }
            Addresses::Local | Addresses::Unknown => {}
        }
        crate::debug!(
            "worker {}: session {}: PROXY header from {}: client {}",
            self.id,
            session.id,
            PeerText(sender),
            PeerText(session.meta.peer)
        );
        // A client without an IP address (a Unix one a header named) is judged
        // by the proxy's: a header cannot take a client past the ACL.
        let (index, client) = (session.meta.listener(), session.meta.peer.or(sender));
        let tls = matches!(session.client.io, Stream::Tls(_));
        if let Some((client, verdict)) = client
            .map(|c| (c, acl::decide(&self.acl, c.ip())))
            .filter(|(_, verdict)| !verdict.permit)
        {
            self.denied += 1;
            self.count_denied(index, client);
            crate::debug!(
                "worker {}: client {client} (PROXY header from {}) denied by the acl ({})",
                self.id,
                PeerText(sender),
                acl::deciding(verdict)
            );
            self.close(key, Why::Refused);
            return;
        }
        session.proxy_header_done(now, tls);
        if tls {
            self.handshake(key);
        } else {
            self.start_attempt(key);
        }
    }

    /// Writes the PROXY header of session `key` to its remote `index`, which has
    /// just connected, raw on the socket (before any client byte and before a TLS
    /// handshake with the remote). A header of a few hundred bytes on a fresh
    /// connection is written whole; a short write is an error, as a failed connect.
    pub(super) fn send_proxy_header(&mut self, key: usize, index: usize) -> io::Result<()> {
        let Some(version) = self.remotes.get(index).and_then(|r| r.send_proxy) else {
            return Ok(());
        };
        let Some(session) = self.sessions.get(key) else {
            return Ok(());
        };
        let Some(remote) = session.remote.as_ref() else {
            return Ok(());
        };
        let bytes = header_for(session, version)?;
        let fd = socket_of(&remote.io);
        match send(fd, &bytes, SendFlags::DONTWAIT | SendFlags::NOSIGNAL) {
            Ok(n) if n == bytes.len() => Ok(()),
            Ok(n) => Err(io::Error::other(format!(
                "the PROXY header was written short ({n} of {} bytes)",
                bytes.len()
            ))),
            Err(e) => Err(io::Error::from(e)),
        }
    }
}

/// An IPv4 client of a dual-stack socket (`::ffff:a.b.c.d`) as the IPv4 address.
fn canonical(address: SocketAddr) -> SocketAddr {
    SocketAddr::new(acl::canonical(address.ip()), address.port())
}

/// The header a `send proxy` remote gets for `session`: the client (the one a
/// header named, or the peer) and the address it connected to (the one a header
/// named, or the client socket's local address); version 2 adds the TLS TLVs when
/// the listener terminated TLS, else the AUTHORITY and SSL TLVs of the header the
/// client came with, if any (a chain of proxies keeps what the first one learned).
/// A Unix client: `UNKNOWN` (v1), AF_UNSPEC (v2).
fn header_for(session: &Session<Stream>, version: ProxyVersion) -> io::Result<Vec<u8>> {
    let destination = match session.meta.proxied() {
        Some(proxied) => proxied.destination,
        None => local_address(session),
    };
    let addresses = match (session.meta.peer, destination) {
        (Some(source), Some(destination)) => Addresses::Inet {
            source: canonical(source),
            destination: canonical(destination),
        },
        _ => Addresses::Unknown,
    };
    let (version, tlvs) = match version {
        ProxyVersion::V1 => (pp::Version::V1, Vec::new()),
        ProxyVersion::V2 => {
            let tlvs = match &session.client.io {
                Stream::Tls(tls) if !tls.is_plain() => {
                    pp::ssl_tlv(tls.server_name(), tls.version(), tls.cipher())
                }
                _ => session
                    .meta
                    .proxied()
                    .map(|p| p.tlvs.clone())
                    .unwrap_or_default(),
            };
            (pp::Version::V2, tlvs)
        }
    };
    let header = Header {
        version,
        addresses,
        tlvs,
    };
    pp::write(&header).map_err(|e| io::Error::other(e.to_string()))
}

/// The address the client connected to (its socket's local address), for an IP
/// client.
fn local_address(session: &Session<Stream>) -> Option<SocketAddr> {
    let socket = match &session.client.io {
        Stream::Plain(socket) => socket,
        Stream::Tls(tls) => tls.socket(),
    };
    match socket {
        crate::worker::socket::Socket::Tcp(s) => s.local_addr().ok(),
        crate::worker::socket::Socket::Unix(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each peer is logged once; past [`LOGGED_PEERS`] peers nothing more is kept,
    /// and one line says so.
    #[test]
    fn refusals_are_logged_once_per_peer_in_bounded_memory() {
        let mut peers = RefusedPeers::default();
        let ip = |n: u32| Some(IpAddr::from(std::net::Ipv4Addr::from(n)));
        assert_eq!(peers.first(ip(1)), (true, false));
        assert_eq!(peers.first(ip(1)), (false, false));
        assert_eq!(peers.first(None), (true, false));
        assert_eq!(peers.first(None), (false, false));
        for n in 2..(LOGGED_PEERS as u32) {
            assert_eq!(peers.first(ip(n)), (true, false));
        }
        assert_eq!(peers.logged.len(), LOGGED_PEERS);
        // Full: the next new peer's line says further ones are not logged; after
        // that, none is.
        assert_eq!(peers.first(ip(1_000_000)), (true, true));
        assert_eq!(peers.first(ip(1_000_001)), (false, true));
        assert_eq!(peers.logged.len(), LOGGED_PEERS);
        assert_eq!(peers.first(ip(5)), (false, false));
    }
}
