//! Binding the plan's listeners. The master binds them all before it forks (and
//! before it drops privileges); workers inherit them and accept on them.
//!
//! IPv6 sockets are bound v6-only, so `0.0.0.0:P` and `[::]:P` are two listeners, as
//! the manual's sample configuration needs. Keepalive settings are set on the
//! listening socket, from which Linux copies them to every accepted socket.

use socket2::{Domain, Protocol as SockProtocol, SockAddr, Socket, TcpKeepalive, Type};
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::time::Duration;
use tcprelay_plan::{Keepalive, ListenAddress, Listener, OsText, Protocol};

/// A bound, listening socket with the plan entry it came from.
#[derive(Debug)]
pub struct Bound {
    pub spec: Listener,
    pub socket: Socket,
}

impl Bound {
    /// Whether this socket can serve `spec` unchanged (same address and protocol), so
    /// that a reload keeps it open and no connection waiting in its queue is lost.
    pub fn serves(&self, spec: &Listener) -> bool {
        self.spec.address == spec.address && self.spec.protocol == spec.protocol
    }
}

fn keepalive(socket: &Socket, k: &Keepalive) -> io::Result<()> {
    if k.count.is_none() && k.idle.is_none() && k.interval.is_none() {
        // Off (a socket kept across a reload may have had it).
        return socket.set_keepalive(false);
    }
    let mut ka = TcpKeepalive::new();
    if let Some(idle) = k.idle {
        ka = ka.with_time(Duration::from_secs(idle.into()));
    }
    if let Some(interval) = k.interval {
        ka = ka.with_interval(Duration::from_secs(interval.into()));
    }
    if let Some(count) = k.count {
        ka = ka.with_retries(count);
    }
    socket.set_tcp_keepalive(&ka)
}

/// The listener's keepalive, its own settings over the spawnd section's.
fn merged(spec: &Listener, default_keepalive: &Keepalive) -> Keepalive {
    Keepalive {
        count: spec.keepalive.count.or(default_keepalive.count),
        idle: spec.keepalive.idle.or(default_keepalive.idle),
        interval: spec.keepalive.interval.or(default_keepalive.interval),
    }
}

/// Applies a reloaded plan's settings (`b.spec`) to a socket kept open for it and
/// made with `was`: backlog, keepalive (inherited by the connections accepted from
/// then on) and a Unix socket's mode.
fn refresh(b: &Bound, was: &Listener, default_keepalive: &Keepalive) -> io::Result<()> {
    let spec = &b.spec;
    if spec.backlog != was.backlog {
        b.socket.listen(spec.backlog.min(i32::MAX as u32) as i32)?;
    }
    match &spec.address {
        ListenAddress::Inet(_) if spec.protocol == Protocol::Tcp => {
            keepalive(&b.socket, &merged(spec, default_keepalive))?;
        }
        ListenAddress::Unix(path) if spec.mode != was.mode => {
            if let Some(mode) = spec.mode {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Binds one listener. `default_keepalive` is the spawnd section's setting, which
/// the listener's own overrides field by field.
pub fn bind(spec: &Listener, default_keepalive: &Keepalive) -> io::Result<Bound> {
    let socket = match &spec.address {
        ListenAddress::Inet(addr) => {
            let protocol = match spec.protocol {
                Protocol::Tcp => SockProtocol::TCP,
                Protocol::Sctp => SockProtocol::from(libc::IPPROTO_SCTP),
            };
            let socket = Socket::new(Domain::for_address(*addr), Type::STREAM, Some(protocol))
                .map_err(|e| sctp_hint(e, spec.protocol))?;
            socket.set_reuse_address(true)?;
            if addr.is_ipv6() {
                socket.set_only_v6(true)?;
            }
            if spec.protocol == Protocol::Tcp {
                keepalive(&socket, &merged(spec, default_keepalive))?;
                // Accepted connections inherit it from the listener, which spares a
                // system call per connection (workers set it themselves where the
                // inheritance is not known to hold).
                socket.set_tcp_nodelay(true)?;
            }
            socket.bind(&SockAddr::from(*addr))?;
            socket
        }
        ListenAddress::Unix(path) => {
            // `Plan::validate` refuses these: a NUL would bind the path cut short at it
            // (or, first, a Linux abstract socket), and a path too long for a socket
            // address cannot be bound. Checked again before anything is touched.
            OsText::check_socket_path(path).map_err(|p| {
                io::Error::new(io::ErrorKind::InvalidInput, format!("the socket path {p}"))
            })?;
            // A socket file left by an earlier run would make bind fail; remove it, but
            // never anything that is not a socket.
            if let Ok(meta) = std::fs::symlink_metadata(path) {
                if meta.file_type().is_socket() {
                    let _ = std::fs::remove_file(path);
                }
            }
            let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
            socket.bind(&SockAddr::unix(path)?)?;
            if let Some(mode) = spec.mode {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
            }
            socket
        }
    };
    socket.set_nonblocking(true)?;
    socket.set_cloexec(true)?;
    socket.listen(spec.backlog.min(i32::MAX as u32) as i32)?;
    Ok(Bound {
        spec: spec.clone(),
        socket,
    })
}

fn sctp_hint(e: io::Error, protocol: Protocol) -> io::Error {
    if protocol == Protocol::Sctp {
        io::Error::new(
            e.kind(),
            format!("{e}: this kernel does not support SCTP (load the sctp module, or use protocol = TCP)"),
        )
    } else {
        e
    }
}

/// Binds every listener of `specs`, reusing sockets from `old` that serve the same
/// address. On any failure nothing new stays bound and the error names the address.
pub fn bind_all(
    specs: &[Listener],
    default_keepalive: &Keepalive,
    old: &mut Vec<Bound>,
) -> Result<Vec<Bound>, String> {
    let mut out = Vec::with_capacity(specs.len());
    // Kept sockets, by position in `out`, with the settings they were made with.
    let mut reused: Vec<(usize, Listener)> = Vec::new();
    for spec in specs {
        if let Some(i) = old.iter().position(|b| b.serves(spec)) {
            let mut b = old.swap_remove(i);
            reused.push((out.len(), std::mem::replace(&mut b.spec, spec.clone())));
            out.push(b);
            continue;
        }
        match bind(spec, default_keepalive) {
            Ok(b) => out.push(b),
            Err(e) => {
                // Give the reused sockets back, as they were, so the caller keeps
                // serving on them; the newly bound ones are closed.
                for (i, mut b) in out.into_iter().enumerate() {
                    if let Some((_, was)) = reused.iter().find(|(j, _)| *j == i) {
                        b.spec = was.clone();
                        old.push(b);
                    }
                }
                return Err(format!("cannot listen on {}: {e}", spec.address));
            }
        }
    }
    // Only now that the reload will happen: the kept sockets take the new settings.
    for (i, was) in &reused {
        let b = &out[*i];
        if let Err(e) = refresh(b, was, default_keepalive) {
            crate::warn!(
                "listener {}: cannot apply the new backlog, keepalive or mode: {e}",
                b.spec.address
            );
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn spec(addr: &str) -> Listener {
        Listener {
            backlog: 16,
            overload_backlog: 16,
            ..Listener::new(ListenAddress::Inet(addr.parse::<SocketAddr>().unwrap()))
        }
    }

    #[test]
    fn binds_and_reuses_on_reload() {
        let first = bind(&spec("127.0.0.1:0"), &Keepalive::default()).unwrap();
        let addr = first.socket.local_addr().unwrap().as_socket().unwrap();
        let mut old = vec![Bound {
            spec: spec(&addr.to_string()),
            socket: first.socket,
        }];
        let fd_before = {
            use std::os::fd::AsRawFd;
            old[0].socket.as_raw_fd()
        };
        let new = bind_all(&[spec(&addr.to_string())], &Keepalive::default(), &mut old).unwrap();
        assert!(old.is_empty());
        use std::os::fd::AsRawFd;
        assert_eq!(
            new[0].socket.as_raw_fd(),
            fd_before,
            "the same socket is kept"
        );
    }

    /// The worker relies on this (Linux) instead of setting TCP_NODELAY on every
    /// accepted connection.
    #[test]
    fn accepted_connections_inherit_nodelay_from_the_listener() {
        let bound = bind(&spec("127.0.0.1:0"), &Keepalive::default()).unwrap();
        let addr = bound.socket.local_addr().unwrap().as_socket().unwrap();
        let _client = std::net::TcpStream::connect(addr).unwrap();
        bound.socket.set_nonblocking(false).unwrap();
        let (accepted, _) = bound.socket.accept().unwrap();
        assert!(accepted.tcp_nodelay().unwrap());
    }

    #[test]
    fn v4_and_v6_wildcards_bind_side_by_side() {
        let v4 = bind(&spec("0.0.0.0:0"), &Keepalive::default()).unwrap();
        let port = v4.socket.local_addr().unwrap().as_socket().unwrap().port();
        if let Ok(v6) = bind(&spec(&format!("[::]:{port}")), &Keepalive::default()) {
            assert_eq!(
                v6.socket.local_addr().unwrap().as_socket().unwrap().port(),
                port
            );
        }
    }

    #[test]
    fn a_unix_path_with_a_nul_is_refused_and_nothing_is_bound() {
        let dir = tempfile::tempdir().unwrap();
        let cut = dir.path().join("front");
        let mut spec = spec("127.0.0.1:0");
        spec.address = ListenAddress::Unix(format!("{}\0.sock", cut.display()));
        let err = bind(&spec, &Keepalive::default()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(
            err.to_string()
                .starts_with("the socket path contains a NUL byte"),
            "{err}"
        );
        // Without the check, the kernel binds the path up to the NUL.
        assert!(!cut.exists(), "a socket was bound at the truncated path");
        // At the start of the path, it would have been a Linux abstract socket.
        spec.address = ListenAddress::Unix("\0tcprelay-test".to_string());
        assert!(bind(&spec, &Keepalive::default()).is_err());
    }

    #[test]
    fn a_unix_path_too_long_for_a_socket_address_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = spec("127.0.0.1:0");
        let long = format!(
            "{}/{}",
            dir.path().display(),
            "s".repeat(OsText::UNIX_PATH_MAX)
        );
        spec.address = ListenAddress::Unix(long.clone());
        let err = bind(&spec, &Keepalive::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "the socket path is {} bytes long, more than the {} a Unix socket path can have",
                long.len(),
                OsText::UNIX_PATH_MAX
            )
        );
    }

    #[test]
    fn address_in_use_names_the_address() {
        let a = bind(&spec("127.0.0.1:0"), &Keepalive::default()).unwrap();
        let addr = a.socket.local_addr().unwrap().as_socket().unwrap();
        let err = bind_all(
            &[spec(&addr.to_string())],
            &Keepalive::default(),
            &mut Vec::new(),
        )
        .unwrap_err();
        assert!(err.contains(&addr.to_string()), "{err}");
    }
}
