//! The master's end of the control socket: a non-blocking Unix stream listener and at
//! most [`MAX_CLIENTS`] clients, driven by the master's `mio` loop.
//!
//! Each client sends one request line ([`MAX_LINE`] bytes at most, within
//! [`REQUEST_WITHIN`] of connecting); the server hands the parsed [`Request`] to the
//! master ([`ControlServer::on_event`]), which answers with one JSON line
//! ([`ControlServer::answer`]); the server writes it without blocking and closes. A
//! request that does not parse, or does not come in time, is answered here with
//! `{"ok":false,"error":"..."}`. An answer the client does not read within
//! [`WRITE_WITHIN`] is dropped with the client; a client that goes away is dropped.
//! Nothing a client does can block the master or hold more than one slot.
//!
//! Tokens: the master reserves [`TOKENS`] consecutive tokens from the base it gives
//! [`ControlServer::register`]: the listener's, then one per client slot.

use super::request::{Request, MAX_LINE};
use mio::net::{UnixListener, UnixStream};
use mio::{Interest, Registry, Token};
use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Clients served at once; one more is told so and closed.
pub const MAX_CLIENTS: usize = 64;
/// Tokens the server uses from its base: the listener's and one per client.
pub const TOKENS: usize = 1 + MAX_CLIENTS;
/// Time a client has to send its request line.
pub const REQUEST_WITHIN: Duration = Duration::from_secs(2);
/// Time a client has to read its answer.
pub const WRITE_WITHIN: Duration = Duration::from_secs(5);
/// Time the master has to answer a request (a reload's compile is killed after 60 s).
pub const ANSWER_WITHIN: Duration = Duration::from_secs(70);

/// A client, as [`ControlServer::on_event`] names it for [`ControlServer::answer`]:
/// its slot and a serial, so that an answer for a client that has gone never reaches
/// the next one in its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientId {
    slot: usize,
    serial: u64,
}

/// A request for the master to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    pub client: ClientId,
    pub request: Request,
}

/// `{"ok":false,"error":MESSAGE}`: the answer to a request that fails.
pub fn error_line(message: &str) -> String {
    serde_json::json!({ "ok": false, "error": message }).to_string()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading the request line.
    Reading,
    /// The request is with the master.
    Waiting,
    /// Writing the answer; closed when it is written.
    Writing,
}

#[derive(Debug)]
struct Client {
    stream: UnixStream,
    serial: u64,
    phase: Phase,
    /// The request read so far, then the answer being written.
    buf: Vec<u8>,
    written: usize,
    deadline: Instant,
}

/// The control socket and its clients. Dropping it removes the socket file, if it is
/// still this server's and this is the process that bound it (a forked worker that
/// drops its copy leaves it).
#[derive(Debug)]
pub struct ControlServer {
    listener: UnixListener,
    path: PathBuf,
    /// The bound socket file's device and inode, and the pid that bound it.
    file: (u64, u64),
    pid: u32,
    base: Option<Token>,
    clients: Vec<Option<Client>>,
    serial: u64,
}

impl ControlServer {
    /// Binds the control socket at `path` with `mode` (e.g. `0o600`) and, when given,
    /// `group` (a name or a number) as its group. With `create_directory` (the
    /// default path) a missing parent directory is created with mode 0755.
    ///
    /// A socket at `path` that accepts a connection is a live relay's: an error that
    /// names the path and the fix. One that refuses is stale and replaced. Anything
    /// else at `path` is left alone and an error. The socket gets its mode and group
    /// before it appears at `path` (it is bound in a private directory beside it and
    /// renamed into place), so nobody else can connect in between.
    pub fn bind(
        path: &Path,
        mode: u32,
        group: Option<&str>,
        create_directory: bool,
    ) -> Result<ControlServer, String> {
        let shown = path.display();
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        if create_directory && !parent.exists() {
            std::fs::DirBuilder::new()
                .mode(0o755)
                .create(parent)
                .map_err(|e| format!("cannot create directory {}: {e}", parent.display()))?;
        }
        let gid = group
            .map(crate::os::group_id)
            .transpose()
            .map_err(|e| format!("control socket {shown}: group: {e}"))?;
        check_stale(path)?;
        let listener = bind_private(path, parent, mode, gid)
            .map_err(|e| format!("cannot bind control socket {shown}: {e}"))?;
        let meta =
            std::fs::symlink_metadata(path).map_err(|e| format!("control socket {shown}: {e}"))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("control socket {shown}: {e}"))?;
        Ok(ControlServer {
            listener: UnixListener::from_std(listener),
            path: path.to_path_buf(),
            file: (meta.dev(), meta.ino()),
            pid: std::process::id(),
            base: None,
            clients: (0..MAX_CLIENTS).map(|_| None).collect(),
            serial: 0,
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// This process owns the socket file from now on (after the master has gone to
    /// the background: a fork): it removes it when dropped.
    pub fn adopt(&mut self) {
        self.pid = std::process::id();
    }

    /// Gives the bound socket another mode and group (a reload that changed only
    /// those).
    pub fn set_access(&self, mode: u32, group: Option<&str>) -> Result<(), String> {
        let shown = self.path.display();
        let gid = group
            .map(crate::os::group_id)
            .transpose()
            .map_err(|e| format!("control socket {shown}: group: {e}"))?;
        finish(&self.path, mode, gid).map_err(|e| format!("control socket {shown}: {e}"))
    }

    /// Stops watching the listener and the clients (before the server is replaced:
    /// a forked worker may still hold copies of their descriptors).
    pub fn deregister(&mut self, registry: &Registry) {
        let _ = registry.deregister(&mut self.listener);
        for c in self.clients.iter_mut().flatten() {
            let _ = registry.deregister(&mut c.stream);
        }
        self.base = None;
    }

    /// Whether `client` is one of this server's, waiting for its answer.
    pub fn waits(&self, client: ClientId) -> bool {
        self.clients[client.slot]
            .as_ref()
            .is_some_and(|c| c.serial == client.serial && c.phase == Phase::Waiting)
    }

    /// Clients connected now.
    pub fn clients(&self) -> usize {
        self.clients.iter().flatten().count()
    }

    /// Registers the listener with `registry` under `base`; clients get the
    /// [`TOKENS`]` - 1` tokens after it.
    pub fn register(&mut self, registry: &Registry, base: Token) -> io::Result<()> {
        registry.register(&mut self.listener, base, Interest::READABLE)?;
        self.base = Some(base);
        Ok(())
    }

    /// Whether `token` is one of the server's.
    pub fn owns(&self, token: Token) -> bool {
        self.base
            .is_some_and(|b| token.0 >= b.0 && token.0 - b.0 < TOKENS)
    }

    /// Handles readiness of one of the server's tokens (others are ignored):
    /// accepts, reads requests, writes answers. Returns the requests that are
    /// complete, for the master to [`answer`](Self::answer).
    pub fn on_event(&mut self, registry: &Registry, token: Token, now: Instant) -> Vec<Incoming> {
        let Some(base) = self.base.filter(|_| self.owns(token)) else {
            return Vec::new();
        };
        let mut incoming = Vec::new();
        if token == base {
            self.accept(registry, now, &mut incoming);
        } else {
            let slot = token.0 - base.0 - 1;
            if let Some(request) = self.step(registry, slot, now) {
                incoming.push(request);
            }
        }
        incoming
    }

    /// Answers `client` with `json_line` (one JSON document, no newline inside) and
    /// closes it once written. An answer for a client that has gone is dropped.
    pub fn answer(&mut self, registry: &Registry, client: ClientId, json_line: &str) {
        debug_assert!(!json_line.trim_end().contains('\n'), "one line");
        let Some(c) = self.clients[client.slot].as_mut() else {
            return;
        };
        if c.serial != client.serial || c.phase != Phase::Waiting {
            return;
        }
        queue(c, json_line, Instant::now());
        self.step(registry, client.slot, Instant::now());
    }

    /// Times out clients: one that has not sent its request gets an error answer,
    /// one whose request the master has not answered too, and one that does not read
    /// its answer is dropped. Also accepts what waits (after a shortage of
    /// descriptors stopped accepting). Call it at [`next_deadline`](Self::next_deadline)
    /// or at least every second. Returns the requests of clients accepted here.
    pub fn sweep(&mut self, registry: &Registry, now: Instant) -> Vec<Incoming> {
        for slot in 0..MAX_CLIENTS {
            let Some(c) = self.clients[slot].as_mut() else {
                continue;
            };
            if now < c.deadline {
                continue;
            }
            match c.phase {
                Phase::Reading => {
                    let error = format!(
                        "no request line within {} s of connecting",
                        REQUEST_WITHIN.as_secs()
                    );
                    queue(c, &error_line(&error), now);
                    self.step(registry, slot, now);
                }
                Phase::Waiting => {
                    let error = format!("no answer within {} s", ANSWER_WITHIN.as_secs());
                    queue(c, &error_line(&error), now);
                    self.step(registry, slot, now);
                }
                Phase::Writing => self.drop_client(registry, slot),
            }
        }
        let mut incoming = Vec::new();
        self.accept(registry, now, &mut incoming);
        incoming
    }

    /// The earliest time [`sweep`](Self::sweep) has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.clients.iter().flatten().map(|c| c.deadline).min()
    }

    fn accept(&mut self, registry: &Registry, now: Instant, incoming: &mut Vec<Incoming>) {
        let Some(base) = self.base else { return };
        loop {
            let mut stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                // WouldBlock, or no descriptor left: what waits is accepted at the
                // next connection or sweep.
                Err(_) => return,
            };
            let Some(slot) = self.clients.iter().position(Option::is_none) else {
                let error =
                    format!("too many control clients at once (at most {MAX_CLIENTS}); try again");
                let _ = send(&stream, format!("{}\n", error_line(&error)).as_bytes());
                discard_input(&mut stream);
                continue;
            };
            let token = Token(base.0 + 1 + slot);
            if registry
                .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
                .is_err()
            {
                continue;
            }
            self.serial += 1;
            self.clients[slot] = Some(Client {
                stream,
                serial: self.serial,
                phase: Phase::Reading,
                buf: Vec::new(),
                written: 0,
                deadline: now + REQUEST_WITHIN,
            });
            if let Some(request) = self.step(registry, slot, now) {
                incoming.push(request);
            }
        }
    }

    /// Makes what progress the client's socket allows; the request, when it is
    /// complete now.
    fn step(&mut self, registry: &Registry, slot: usize, now: Instant) -> Option<Incoming> {
        let c = self.clients[slot].as_mut()?;
        if c.phase == Phase::Reading {
            match read_line(c) {
                Got::More => {}
                Got::Gone => {
                    self.drop_client(registry, slot);
                    return None;
                }
                Got::Line(line) => match Request::parse(&line) {
                    Ok(request) => {
                        c.phase = Phase::Waiting;
                        c.deadline = now + ANSWER_WITHIN;
                        let client = ClientId {
                            slot,
                            serial: c.serial,
                        };
                        return Some(Incoming { client, request });
                    }
                    Err(e) => queue(c, &error_line(&e), now),
                },
                Got::TooLong => {
                    let e = format!("the request line is longer than {MAX_LINE} bytes");
                    queue(c, &error_line(&e), now);
                }
            }
        }
        if c.phase == Phase::Writing {
            loop {
                if c.written == c.buf.len() {
                    discard_input(&mut c.stream);
                    self.drop_client(registry, slot);
                    break;
                }
                match send(&c.stream, &c.buf[c.written..]) {
                    Ok(n) => c.written += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => {
                        self.drop_client(registry, slot);
                        break;
                    }
                }
            }
        }
        None
    }

    fn drop_client(&mut self, registry: &Registry, slot: usize) {
        if let Some(mut c) = self.clients[slot].take() {
            // Explicitly: a forked worker may hold a copy of the descriptor, and
            // epoll forgets a socket only when its last copy is closed.
            let _ = registry.deregister(&mut c.stream);
        }
    }
}

impl ControlServer {
    /// Removes the socket file, if this process bound it and it is still its own:
    /// no new client can find this server; those connected are served on.
    pub fn unlink(&self) {
        if std::process::id() != self.pid {
            return;
        }
        let ours =
            std::fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.file);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.unlink();
    }
}

enum Got {
    More,
    Gone,
    Line(Vec<u8>),
    TooLong,
}

/// Reads what the client sent, up to its first newline. The end of the stream ends
/// the line too (a client that half-closes after its request); before any byte it
/// means the client has gone.
fn read_line(c: &mut Client) -> Got {
    let mut chunk = [0u8; 1024];
    loop {
        match c.stream.read(&mut chunk) {
            Ok(0) if c.buf.is_empty() => return Got::Gone,
            Ok(0) => return Got::Line(std::mem::take(&mut c.buf)),
            Ok(n) => {
                c.buf.extend_from_slice(&chunk[..n]);
                match c.buf.iter().position(|&b| b == b'\n') {
                    Some(end) if end < MAX_LINE => {
                        c.buf.truncate(end + 1);
                        return Got::Line(std::mem::take(&mut c.buf));
                    }
                    Some(_) => return Got::TooLong,
                    None => {}
                }
                if c.buf.len() >= MAX_LINE {
                    return Got::TooLong;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Got::More,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Got::Gone,
        }
    }
}

/// Reads and drops what the client sent beyond its request (at most 64 KiB), so
/// that closing does not reset the connection: a Unix socket closed with unread
/// input makes the client's next read fail with `ECONNRESET` instead of the end.
fn discard_input(stream: &mut UnixStream) {
    let mut chunk = [0u8; 4096];
    for _ in 0..16 {
        match stream.read(&mut chunk) {
            Ok(n) if n > 0 => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            _ => return,
        }
    }
}

/// Sets the client to write `line` and a newline.
fn queue(c: &mut Client, line: &str, now: Instant) {
    c.buf.clear();
    c.buf.extend_from_slice(line.trim_end().as_bytes());
    c.buf.push(b'\n');
    c.written = 0;
    c.phase = Phase::Writing;
    c.deadline = now + WRITE_WITHIN;
}

/// A write that never raises SIGPIPE (a client that has gone is an error, `EPIPE`).
fn send(stream: &UnixStream, bytes: &[u8]) -> io::Result<usize> {
    rustix::net::send(stream, bytes, rustix::net::SendFlags::NOSIGNAL).map_err(io::Error::from)
}

/// Refuses to replace a live relay's socket or anything that is not a socket; a
/// stale socket is left for the rename to replace.
fn check_stale(path: &Path) -> Result<(), String> {
    let shown = path.display();
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("control socket {shown}: {e}")),
    };
    if !meta.file_type().is_socket() {
        return Err(format!(
            "{shown} exists and is not a socket: remove it, or give the relay another \
             `control = {{ path = ... }}`"
        ));
    }
    let probe = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None)
        .and_then(|s| s.set_nonblocking(true).map(|()| s))
        .map_err(|e| format!("control socket {shown}: {e}"))?;
    let address =
        socket2::SockAddr::unix(path).map_err(|e| format!("control socket {shown}: {e}"))?;
    match probe.connect(&address) {
        // Refused: nobody listens; the socket is stale.
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Ok(()),
        // Accepted, or its queue is full: a live relay.
        Ok(()) => Err(live(path)),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(live(path)),
        Err(e) => Err(format!("control socket {shown}: {e}")),
    }
}

fn live(path: &Path) -> String {
    format!(
        "control socket {} answers: another tcprelay is running with it; stop that one \
         (`tcprelay ctl -s {} stop`), or give this one its own `control = {{ path = ... }}` \
         (or `control = no`)",
        path.display(),
        path.display()
    )
}

/// Binds the socket in a private directory beside `path`, gives it its mode and
/// group, then renames it to `path` (replacing a stale socket). When the private
/// path is too long for a socket address, binds at `path` itself, then sets the
/// mode and group.
fn bind_private(
    path: &Path,
    parent: &Path,
    mode: u32,
    gid: Option<u32>,
) -> io::Result<std::os::unix::net::UnixListener> {
    let private = parent.join(format!(".tcprelay-ctl.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&private);
    std::fs::DirBuilder::new().mode(0o700).create(&private)?;
    let temporary = private.join("s");
    let bound = std::os::unix::net::UnixListener::bind(&temporary);
    let result = match bound {
        Ok(listener) => finish(&temporary, mode, gid)
            .and_then(|()| std::fs::rename(&temporary, path))
            .map(|()| listener),
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
            let _ = std::fs::remove_dir(&private);
            return bind_in_place(path, mode, gid);
        }
        Err(e) => Err(e),
    };
    let _ = std::fs::remove_dir_all(&private);
    result
}

fn bind_in_place(
    path: &Path,
    mode: u32,
    gid: Option<u32>,
) -> io::Result<std::os::unix::net::UnixListener> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let listener = std::os::unix::net::UnixListener::bind(path)?;
    if let Err(e) = finish(path, mode, gid) {
        let _ = std::fs::remove_file(path);
        return Err(e);
    }
    Ok(listener)
}

fn finish(path: &Path, mode: u32, gid: Option<u32>) -> io::Result<()> {
    if let Some(gid) = gid {
        std::os::unix::fs::chown(path, None, Some(gid))?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o7777))
}

#[cfg(test)]
mod tests;
