//! The metrics endpoint (`metrics = { address = ... port = ... }`): a TCP listener
//! in the master's loop serving `GET /metrics` ([`crate::metrics::http`]) from a
//! counters snapshot ([`crate::metrics::render`]).
//!
//! One request per connection, bounded like the control socket's clients: a head of
//! at most [`MAX_HEAD`] bytes within [`REQUEST_WITHIN`], at most [`MAX_CLIENTS`] at
//! once (one more is closed), an answer written without blocking and dropped when
//! the client does not read it within [`WRITE_WITHIN`]. Its own small client table,
//! not the control server's: that one hands requests to the master and waits for
//! answers that may come a minute later (a reload), this one answers at once from
//! what it read; sharing would mean one table parametrised by both protocols for
//! ~100 lines of bookkeeping.

use super::{Master, METRICS_TOKENS};
use crate::metrics::http::{self, MAX_HEAD};
use crate::metrics::render::{render, Info};
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant, UNIX_EPOCH};
use tcprelay_plan::Metrics;

/// Clients served at once.
pub const MAX_CLIENTS: usize = 64;
/// Tokens the endpoint uses from its base: the listener's and one per client.
pub const TOKENS: usize = 1 + MAX_CLIENTS;
/// Time a client has to send its request head.
pub const REQUEST_WITHIN: Duration = Duration::from_secs(2);
/// Time a client has to read its answer.
pub const WRITE_WITHIN: Duration = Duration::from_secs(5);

#[derive(Debug)]
struct Client {
    stream: TcpStream,
    /// The head read so far, then the answer.
    buf: Vec<u8>,
    written: usize,
    writing: bool,
    deadline: Instant,
}

/// The metrics listener and its clients.
#[derive(Debug)]
pub(super) struct MetricsServer {
    listener: TcpListener,
    address: SocketAddr,
    registered: bool,
    clients: Vec<Option<Client>>,
}

/// Binds the endpoint `metrics` asks for (none when absent). The error names the
/// address.
pub(super) fn bind(metrics: Option<&Metrics>) -> Result<Option<MetricsServer>, String> {
    let Some(metrics) = metrics else {
        return Ok(None);
    };
    let address = metrics.socket_addr();
    let listener = TcpListener::bind(address)
        .map_err(|e| format!("cannot bind the metrics endpoint {address}: {e}"))?;
    Ok(Some(MetricsServer {
        listener,
        address,
        registered: false,
        clients: (0..MAX_CLIENTS).map(|_| None).collect(),
    }))
}

impl MetricsServer {
    /// The address it listens on.
    pub(super) fn address(&self) -> SocketAddr {
        self.address
    }

    fn register(&mut self, registry: &Registry) -> io::Result<()> {
        registry.register(&mut self.listener, METRICS_TOKENS, Interest::READABLE)?;
        self.registered = true;
        Ok(())
    }

    fn deregister(&mut self, registry: &Registry) {
        let _ = registry.deregister(&mut self.listener);
        for c in self.clients.iter_mut().flatten() {
            let _ = registry.deregister(&mut c.stream);
        }
        self.registered = false;
    }

    fn owns(&self, token: Token) -> bool {
        self.registered && token.0 >= METRICS_TOKENS.0 && token.0 - METRICS_TOKENS.0 < TOKENS
    }

    /// The earliest time [`MetricsServer::sweep`] has something to do.
    fn next_deadline(&self) -> Option<Instant> {
        self.clients.iter().flatten().map(|c| c.deadline).min()
    }

    fn on_event(&mut self, registry: &Registry, token: Token, exposition: &dyn Fn() -> String) {
        let now = Instant::now();
        if token == METRICS_TOKENS {
            self.accept(registry, now, exposition);
        } else {
            self.step(registry, token.0 - METRICS_TOKENS.0 - 1, now, exposition);
        }
    }

    /// Drops the clients past their deadline (a request not read in time gets a 400
    /// first, written if it fits), and accepts what waits.
    fn sweep(&mut self, registry: &Registry, now: Instant, exposition: &dyn Fn() -> String) {
        for slot in 0..MAX_CLIENTS {
            let Some(c) = self.clients[slot].as_mut().filter(|c| c.deadline <= now) else {
                continue;
            };
            if c.writing {
                self.drop_client(registry, slot);
            } else {
                let answer =
                    http::respond(&http::Route::BadRequest("request timeout"), String::new);
                queue(c, answer, now);
                self.step(registry, slot, now, exposition);
                // Unwritten, it is not worth waiting for.
                self.drop_client(registry, slot);
            }
        }
        self.accept(registry, now, exposition);
    }

    fn accept(&mut self, registry: &Registry, now: Instant, exposition: &dyn Fn() -> String) {
        loop {
            let mut stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                // WouldBlock, or no descriptor left: accepted at the next event or sweep.
                Err(_) => return,
            };
            let Some(slot) = self.clients.iter().position(Option::is_none) else {
                // Too many at once: closed (a scraper tries again at its next interval).
                drop(stream);
                continue;
            };
            let token = Token(METRICS_TOKENS.0 + 1 + slot);
            if registry
                .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
                .is_err()
            {
                continue;
            }
            self.clients[slot] = Some(Client {
                stream,
                buf: Vec::new(),
                written: 0,
                writing: false,
                deadline: now + REQUEST_WITHIN,
            });
            self.step(registry, slot, now, exposition);
        }
    }

    /// Makes what progress the client's socket allows; closes it when its answer is
    /// written or it is gone.
    fn step(
        &mut self,
        registry: &Registry,
        slot: usize,
        now: Instant,
        exposition: &dyn Fn() -> String,
    ) {
        let Some(c) = self.clients.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        if progress(c, now, exposition) {
            self.drop_client(registry, slot);
        }
    }

    fn drop_client(&mut self, registry: &Registry, slot: usize) {
        if let Some(mut c) = self.clients[slot].take() {
            let _ = registry.deregister(&mut c.stream);
        }
    }
}

/// Reads the head until it routes, then writes the answer as far as the socket takes
/// it. Whether the client is done with (answered, or gone).
fn progress(c: &mut Client, now: Instant, exposition: &dyn Fn() -> String) -> bool {
    if !c.writing {
        let mut chunk = [0u8; 2048];
        loop {
            let room = MAX_HEAD.saturating_sub(c.buf.len()).clamp(1, chunk.len());
            match c.stream.read(&mut chunk[..room]) {
                Ok(0) => return true,
                Ok(n) => {
                    c.buf.extend_from_slice(&chunk[..n]);
                    if let Some(route) = http::route(&c.buf) {
                        let answer = http::respond(&route, exposition);
                        queue(c, answer, now);
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return true,
            }
        }
    }
    loop {
        if c.written == c.buf.len() {
            let _ = c.stream.shutdown(std::net::Shutdown::Write);
            return true;
        }
        match c.stream.write(&c.buf[c.written..]) {
            Ok(n) => c.written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
}

fn queue(c: &mut Client, answer: Vec<u8>, now: Instant) {
    c.buf = answer;
    c.written = 0;
    c.writing = true;
    c.deadline = now + WRITE_WITHIN;
}

impl Master {
    /// Registers the metrics endpoint bound at start.
    pub(super) fn register_metrics(&mut self) -> Result<(), String> {
        if let Some(server) = &mut self.metrics {
            server
                .register(self.poll.registry())
                .map_err(|e| format!("cannot watch the metrics endpoint: {e}"))?;
        }
        Ok(())
    }

    /// For a reload to `new`: a new endpoint bound now when the address changed
    /// (`Some`), or `None` to keep the running one.
    pub(super) fn rebind_metrics(
        &self,
        new: Option<&Metrics>,
    ) -> Result<Option<Option<MetricsServer>>, String> {
        if self.plan.spawnd.metrics.as_ref() == new {
            return Ok(None);
        }
        bind(new).map(Some)
    }

    /// Puts a reload's new endpoint in place of the old one (closed).
    pub(super) fn install_metrics(&mut self, rebind: Option<Option<MetricsServer>>) {
        let Some(mut server) = rebind else {
            return;
        };
        if let Some(mut old) = self.metrics.take() {
            old.deregister(self.poll.registry());
        }
        if let Some(s) = &mut server {
            if let Err(e) = s.register(self.poll.registry()) {
                crate::warn!("cannot watch the metrics endpoint {}: {e}", s.address());
                server = None;
            }
        }
        self.metrics = server;
    }

    pub(super) fn owns_metrics(&self, token: Token) -> bool {
        self.metrics.as_ref().is_some_and(|m| m.owns(token))
    }

    pub(super) fn metrics_deadline(&self) -> Option<Instant> {
        self.metrics.as_ref().and_then(MetricsServer::next_deadline)
    }

    /// Readiness of one of the endpoint's tokens.
    pub(super) fn on_metrics_event(&mut self, token: Token) {
        let Some(mut server) = self.metrics.take() else {
            return;
        };
        server.on_event(self.poll.registry(), token, &|| self.exposition());
        self.metrics = Some(server);
    }

    /// Times the endpoint's clients out when one is due.
    pub(super) fn sweep_metrics(&mut self) {
        let now = Instant::now();
        if self.metrics_deadline().is_none_or(|t| t > now) {
            return;
        }
        let Some(mut server) = self.metrics.take() else {
            return;
        };
        server.sweep(self.poll.registry(), now, &|| self.exposition());
        self.metrics = Some(server);
    }

    /// The exposition now.
    fn exposition(&self) -> String {
        let snapshot = match &self.stats {
            Some(registry) => registry.snapshot(),
            None => return String::new(),
        };
        let health: Vec<(crate::stats::RemoteKey, crate::health::Health)> =
            (0..self.plan.relay.remotes.len())
                .filter_map(|index| {
                    let remote = &self.plan.relay.remotes[index];
                    let key = crate::stats::RemoteKey::of(remote);
                    Some((key, self.remote_health(index)?))
                })
                .collect();
        let discovery = self.discovery_metrics();
        let start_time = self
            .started_at
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        render(
            &snapshot,
            &Info {
                version: env!("CARGO_PKG_VERSION"),
                plan_hash: &self.plan_hash,
                start_time,
                generation: self.generation,
                workers: self.workers.len() as u64,
                reloads_failed: self.reloads_failed,
                health: &health,
                discovery: &discovery,
            },
        )
    }
}
