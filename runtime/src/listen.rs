//! Binding the plan's listeners. The master binds them all before it forks (and
//! before it drops privileges); workers inherit them and accept on them.
//!
//! IPv6 sockets are bound v6-only, so `0.0.0.0:P` and `[::]:P` are two listeners, as
//! the manual's sample configuration needs. Keepalive settings, `tcp bufsize`
//! (`SO_SNDBUF`/`SO_RCVBUF`) and `dscp` (`IP_TOS`/`IPV6_TCLASS`) are set on the
//! listening socket, from which Linux and the BSDs copy them to every accepted
//! socket (the buffer sizes before `listen`, so the window scale the handshake
//! offers fits them; the DSCP also marks the SYN-ACK). `vrf` binds the listening
//! socket to a device (`SO_BINDTODEVICE`, Linux); a Unix socket gets its owner and
//! group (`userid`, `groupid`) after its mode.
//!
//! A listener with `bind retry delay` whose bind fails is not an error: it is
//! returned as [`Pending`], and the master tries it again every so many seconds
//! (`master/bind_retry.rs`).

use socket2::{Domain, Protocol as SockProtocol, SockAddr, Socket, TcpKeepalive, Type};
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::time::{Duration, Instant};
use tcprelay_plan::{Keepalive, ListenAddress, Listener, OsText, Protocol, Spawnd};

/// What the spawnd section sets for every listener.
#[derive(Debug, Clone, Copy, Default)]
pub struct Defaults {
    /// The section's keepalive, which a listener's own overrides field by field.
    pub keepalive: Keepalive,
    /// `tcp bufsize`: both buffer sizes of every IP socket accepted.
    pub tcp_bufsize: Option<u32>,
}

impl Defaults {
    pub fn of(spawnd: &Spawnd) -> Defaults {
        Defaults {
            keepalive: spawnd.keepalive,
            tcp_bufsize: spawnd.tcp_bufsize,
        }
    }
}

/// A listener whose bind failed and that has a `bind retry delay`: tried again at
/// `next`.
#[derive(Debug, Clone)]
pub struct Pending {
    pub spec: Listener,
    /// The last failure, as [`bind_all`] words it.
    pub error: String,
    pub next: Instant,
    /// Attempts so far.
    pub attempts: u32,
}

impl Pending {
    fn new(spec: &Listener, delay: u32, error: String) -> Pending {
        Pending {
            spec: spec.clone(),
            error,
            next: Instant::now() + Duration::from_secs(delay.into()),
            attempts: 1,
        }
    }
}

/// The listeners of a plan: those bound (kept or new), in plan order, and those
/// waiting for another attempt.
#[derive(Debug, Default)]
pub struct Listeners {
    pub bound: Vec<Bound>,
    pub pending: Vec<Pending>,
}

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

    /// The address actually bound, for logs: a port the OS chose is resolved.
    pub fn describe(&self) -> String {
        match &self.spec.address {
            ListenAddress::Inet(_) => self
                .socket
                .local_addr()
                .ok()
                .and_then(|a| a.as_socket())
                .map_or_else(|| self.spec.address.to_string(), |a| a.to_string()),
            ListenAddress::Unix(p) => format!("unix:{p}"),
        }
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
/// made with `was`: backlog, keepalive, buffer sizes and DSCP (inherited by the
/// connections accepted from then on), the device, and a Unix socket's mode, owner
/// and group.
fn refresh(
    b: &Bound,
    was: &Listener,
    defaults: &Defaults,
    was_defaults: &Defaults,
) -> io::Result<()> {
    let spec = &b.spec;
    if spec.backlog != was.backlog {
        b.socket.listen(spec.backlog.min(i32::MAX as u32) as i32)?;
    }
    match &spec.address {
        ListenAddress::Inet(addr) => {
            if spec.protocol == Protocol::Tcp {
                keepalive(&b.socket, &merged(spec, &defaults.keepalive))?;
            }
            if defaults.tcp_bufsize != was_defaults.tcp_bufsize {
                // A socket whose sizes were set keeps them when `tcp bufsize` goes
                // away: the kernel has no way back to its auto-tuning.
                if let Some(size) = defaults.tcp_bufsize {
                    set_bufsize(&b.socket, size)?;
                }
            }
            if spec.dscp != was.dscp {
                set_dscp(&b.socket, addr.is_ipv6(), spec.dscp.unwrap_or(0))?;
            }
            if spec.vrf != was.vrf {
                set_vrf(&b.socket, spec.vrf.as_deref())?;
            }
        }
        ListenAddress::Unix(path) => {
            if spec.mode != was.mode {
                if let Some(mode) = spec.mode {
                    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
                }
            }
            if (&spec.owner, &spec.group) != (&was.owner, &was.group) {
                set_owner(path, spec)?;
            }
        }
    }
    Ok(())
}

/// `tcp bufsize`: both buffers (the kernel doubles the value for its bookkeeping
/// and caps it at `net.core.wmem_max`/`rmem_max`).
pub fn set_bufsize(socket: &Socket, size: u32) -> io::Result<()> {
    socket.set_send_buffer_size(size as usize)?;
    socket.set_recv_buffer_size(size as usize)
}

/// `dscp`: the DSCP in the six high bits of the TOS byte (IPv4) or traffic class
/// (IPv6); the two low bits (ECN) are the kernel's.
pub fn set_dscp(socket: &socket2::Socket, v6: bool, dscp: u8) -> io::Result<()> {
    let tos = u32::from(dscp) << 2;
    if v6 {
        socket.set_tclass_v6(tos)
    } else {
        socket.set_tos_v4(tos)
    }
}

/// `vrf`: the socket takes connections arriving on that device only (a VRF device
/// or any interface); `None` unbinds it.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn set_vrf(socket: &Socket, vrf: Option<&str>) -> io::Result<()> {
    socket
        .bind_device(vrf.map(str::as_bytes))
        .map_err(|e| match vrf {
            Some(name) if e.raw_os_error() == Some(libc::ENODEV) => io::Error::new(
                e.kind(),
                format!("vrf {name}: there is no network device of that name"),
            ),
            Some(name) => io::Error::new(e.kind(), format!("vrf {name}: {e}")),
            None => e,
        })
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn set_vrf(_: &Socket, vrf: Option<&str>) -> io::Result<()> {
    match vrf {
        Some(name) => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("vrf {name}: binding a socket to a device (SO_BINDTODEVICE) is Linux only"),
        )),
        None => Ok(()),
    }
}

/// `userid`/`groupid` of a Unix socket: its owner and group (names or numbers,
/// resolved here). A user given by name without a group brings its primary group,
/// as in the original; a numeric user leaves the group as it is.
fn set_owner(path: &str, spec: &Listener) -> io::Result<()> {
    if spec.owner.is_none() && spec.group.is_none() {
        return Ok(());
    }
    let (uid, primary) = match spec.owner.as_deref() {
        Some(owner) => {
            let (uid, gid) = crate::os::user_ids(owner)?;
            (Some(uid), gid)
        }
        None => (None, None),
    };
    let gid = match spec.group.as_deref() {
        Some(group) => Some(crate::os::group_id(group)?),
        None => primary,
    };
    std::os::unix::fs::chown(path, uid, gid).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot give the socket its owner or group: {e}"),
        )
    })
}

/// Binds one listener with the spawnd section's `defaults`.
pub fn bind(spec: &Listener, defaults: &Defaults) -> io::Result<Bound> {
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
                keepalive(&socket, &merged(spec, &defaults.keepalive))?;
                // Accepted connections inherit it from the listener, which spares a
                // system call per connection (workers set it themselves where the
                // inheritance is not known to hold).
                socket.set_tcp_nodelay(true)?;
            }
            if let Some(size) = defaults.tcp_bufsize {
                set_bufsize(&socket, size)?;
            }
            if let Some(dscp) = spec.dscp {
                set_dscp(&socket, addr.is_ipv6(), dscp)?;
            }
            if spec.vrf.is_some() {
                set_vrf(&socket, spec.vrf.as_deref())?;
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
            set_owner(path, spec)?;
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
/// address. A listener with `bind retry delay` that cannot be bound is returned as
/// [`Pending`]; on any other failure nothing new stays bound and the error names
/// the address. `was` is what the sockets of `old` were made with.
pub fn bind_all(
    specs: &[Listener],
    defaults: &Defaults,
    was: &Defaults,
    old: &mut Vec<Bound>,
) -> Result<Listeners, String> {
    let mut out = Vec::with_capacity(specs.len());
    let mut pending = Vec::new();
    // Kept sockets, by position in `out`, with the settings they were made with.
    let mut reused: Vec<(usize, Listener)> = Vec::new();
    for spec in specs {
        if let Some(i) = old.iter().position(|b| b.serves(spec)) {
            let mut b = old.swap_remove(i);
            reused.push((out.len(), std::mem::replace(&mut b.spec, spec.clone())));
            out.push(b);
            continue;
        }
        match bind(spec, defaults) {
            Ok(b) => out.push(b),
            Err(e) => {
                let error = format!("cannot listen on {}: {e}", spec.address);
                if let Some(delay) = spec.bind_retry_delay {
                    pending.push(Pending::new(spec, delay, error));
                    continue;
                }
                // Give the reused sockets back, as they were, so the caller keeps
                // serving on them; the newly bound ones are closed.
                for (i, mut b) in out.into_iter().enumerate() {
                    if let Some((_, was)) = reused.iter().find(|(j, _)| *j == i) {
                        b.spec = was.clone();
                        old.push(b);
                    }
                }
                return Err(error);
            }
        }
    }
    // Only now that the reload will happen: the kept sockets take the new settings.
    for (i, spec_was) in &reused {
        let b = &out[*i];
        if let Err(e) = refresh(b, spec_was, defaults, was) {
            crate::warn!(
                "listener {}: cannot apply the new settings: {e}",
                b.spec.address
            );
        }
    }
    Ok(Listeners {
        bound: out,
        pending,
    })
}

/// Tries a pending listener again: bound, or the error and when to try next (the
/// error also in `p`).
pub fn retry(p: &mut Pending, defaults: &Defaults) -> Option<Bound> {
    match bind(&p.spec, defaults) {
        Ok(b) => Some(b),
        Err(e) => {
            p.attempts += 1;
            p.error = format!("cannot listen on {}: {e}", p.spec.address);
            let delay = p.spec.bind_retry_delay.unwrap_or(1);
            p.next = Instant::now() + Duration::from_secs(delay.into());
            None
        }
    }
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
        let first = bind(&spec("127.0.0.1:0"), &Defaults::default()).unwrap();
        let addr = first.socket.local_addr().unwrap().as_socket().unwrap();
        let mut old = vec![Bound {
            spec: spec(&addr.to_string()),
            socket: first.socket,
        }];
        let fd_before = {
            use std::os::fd::AsRawFd;
            old[0].socket.as_raw_fd()
        };
        let new = bind_all(
            &[spec(&addr.to_string())],
            &Defaults::default(),
            &Defaults::default(),
            &mut old,
        )
        .unwrap()
        .bound;
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
        let bound = bind(&spec("127.0.0.1:0"), &Defaults::default()).unwrap();
        let addr = bound.socket.local_addr().unwrap().as_socket().unwrap();
        let _client = std::net::TcpStream::connect(addr).unwrap();
        bound.socket.set_nonblocking(false).unwrap();
        let (accepted, _) = bound.socket.accept().unwrap();
        assert!(accepted.tcp_nodelay().unwrap());
    }

    #[test]
    fn v4_and_v6_wildcards_bind_side_by_side() {
        let v4 = bind(&spec("0.0.0.0:0"), &Defaults::default()).unwrap();
        let port = v4.socket.local_addr().unwrap().as_socket().unwrap().port();
        if let Ok(v6) = bind(&spec(&format!("[::]:{port}")), &Defaults::default()) {
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
        let err = bind(&spec, &Defaults::default()).unwrap_err();
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
        assert!(bind(&spec, &Defaults::default()).is_err());
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
        let err = bind(&spec, &Defaults::default()).unwrap_err();
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
        let a = bind(&spec("127.0.0.1:0"), &Defaults::default()).unwrap();
        let addr = a.socket.local_addr().unwrap().as_socket().unwrap();
        let err = bind_all(
            &[spec(&addr.to_string())],
            &Defaults::default(),
            &Defaults::default(),
            &mut Vec::new(),
        )
        .unwrap_err();
        assert!(err.contains(&addr.to_string()), "{err}");
    }

    /// Accepts one connection to `bound` (an IP listener) and returns the socket the
    /// worker would relay.
    fn accept_one(bound: &Bound) -> (Socket, std::net::TcpStream) {
        let addr = bound.socket.local_addr().unwrap().as_socket().unwrap();
        let client = std::net::TcpStream::connect(addr).unwrap();
        bound.socket.set_nonblocking(false).unwrap();
        let (accepted, _) = bound.socket.accept().unwrap();
        (accepted, client)
    }

    /// `tcp bufsize` and `dscp` are set on the listening socket and reach every
    /// socket accepted from it, which is what the worker relays (Linux doubles a
    /// buffer size for its bookkeeping).
    #[test]
    fn tcp_bufsize_and_dscp_reach_the_accepted_sockets() {
        let defaults = Defaults {
            tcp_bufsize: Some(50_000),
            ..Defaults::default()
        };
        let mut v4 = spec("127.0.0.1:0");
        v4.dscp = Some(0x0e);
        let bound = bind(&v4, &defaults).unwrap();
        let (accepted, _client) = accept_one(&bound);
        assert_eq!(accepted.recv_buffer_size().unwrap(), 100_000);
        assert_eq!(accepted.send_buffer_size().unwrap(), 100_000);
        assert_eq!(accepted.tos_v4().unwrap(), 0x0e << 2);
        // Without them: the kernel's (auto-tuned) sizes and no mark.
        let plain = bind(&spec("127.0.0.1:0"), &Defaults::default()).unwrap();
        let (accepted, _client) = accept_one(&plain);
        assert_ne!(accepted.recv_buffer_size().unwrap(), 100_000);
        assert_eq!(accepted.tos_v4().unwrap(), 0);
        let mut v6 = spec("[::1]:0");
        v6.dscp = Some(63);
        if let Ok(bound) = bind(&v6, &defaults) {
            let (accepted, _client) = accept_one(&bound);
            assert_eq!(accepted.tclass_v6().unwrap(), 63 << 2);
            assert_eq!(accepted.recv_buffer_size().unwrap(), 100_000);
        }
    }

    /// A reload that changes `dscp` or `tcp bufsize` of a kept socket: the
    /// connections accepted from then on have the new values.
    #[test]
    fn a_reload_gives_a_kept_socket_the_new_dscp_and_bufsize() {
        let first = bind(&spec("127.0.0.1:0"), &Defaults::default()).unwrap();
        let addr = first.socket.local_addr().unwrap().as_socket().unwrap();
        let mut old = vec![Bound {
            spec: spec(&addr.to_string()),
            socket: first.socket,
        }];
        let mut changed = spec(&addr.to_string());
        changed.dscp = Some(46);
        let defaults = Defaults {
            tcp_bufsize: Some(40_000),
            ..Defaults::default()
        };
        let new = bind_all(&[changed], &defaults, &Defaults::default(), &mut old).unwrap();
        let (accepted, _client) = accept_one(&new.bound[0]);
        assert_eq!(accepted.tos_v4().unwrap(), 46 << 2);
        assert_eq!(accepted.recv_buffer_size().unwrap(), 80_000);
    }

    /// `userid`/`groupid` of a Unix listener: the socket file's owner and group, as
    /// `stat` shows them (as root; names and numbers; a user's name alone brings
    /// its primary group).
    #[test]
    fn a_unix_socket_gets_its_owner_and_group() {
        use std::os::unix::fs::MetadataExt;
        if !rustix::process::geteuid().is_root() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI runs the tests as root"
            );
            eprintln!("skipped: giving a file away needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("front.sock");
        let mut unix = spec("127.0.0.1:0");
        unix.address = ListenAddress::Unix(path.display().to_string());
        unix.mode = Some(0o660);
        unix.owner = Some("nobody".into());
        unix.group = Some("1".into());
        let _bound = bind(&unix, &Defaults::default()).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(
            (meta.uid(), meta.gid(), meta.mode() & 0o777),
            (65534, 1, 0o660)
        );
        // The user's name alone: its primary group (nobody's is 65534).
        unix.group = None;
        let _bound = bind(&unix, &Defaults::default()).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (65534, 65534));
        // A group alone leaves the owner (root, who bound it).
        unix.owner = None;
        unix.group = Some("daemon".into());
        let _bound = bind(&unix, &Defaults::default()).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (0, 1));
        // An unknown name is an error that says so.
        unix.group = Some("no-such-group-tcprelay".into());
        let err = bind(&unix, &Defaults::default()).unwrap_err();
        assert_eq!(err.to_string(), "no group named `no-such-group-tcprelay`");
    }

    /// `vrf = DEVICE`: the listening socket takes connections that arrive on that
    /// device only (`SO_BINDTODEVICE`), in a network namespace of the test's own
    /// with a veth device whose end holds 10.9.9.1: a client of 10.9.9.1 gets in, a
    /// client of the loopback is refused, as it is not by a listener without vrf;
    /// a device that does not exist is an error naming it.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_vrf_listener_takes_connections_of_its_device_only() {
        let scenario = || {
            if let Err(e) = crate::sys::testing::own_network_namespace() {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "CI runs the tests as root: {e}"
                );
                eprintln!("skipped: a network namespace needs CAP_SYS_ADMIN ({e})");
                return;
            }
            crate::sys::testing::loopback_up().unwrap();
            // `ip` runs in this thread's namespace (a child takes its parent's).
            for args in [
                "link add tcprelay0 type veth peer name tcprelay1",
                "addr add 10.9.9.1/24 dev tcprelay0",
                "link set tcprelay0 up",
                "link set tcprelay1 up",
            ] {
                let status = std::process::Command::new("ip")
                    .args(args.split(' '))
                    .status()
                    .expect("run ip");
                assert!(status.success(), "ip {args}");
            }
            let mut vrf = spec("0.0.0.0:0");
            vrf.vrf = Some("tcprelay0".into());
            let bound = bind(&vrf, &Defaults::default()).unwrap();
            assert_eq!(
                bound.socket.device().unwrap().as_deref(),
                Some(&b"tcprelay0"[..])
            );
            let port = bound
                .socket
                .local_addr()
                .unwrap()
                .as_socket()
                .unwrap()
                .port();
            let plain = bind(&spec("0.0.0.0:0"), &Defaults::default()).unwrap();
            let plain_port = plain
                .socket
                .local_addr()
                .unwrap()
                .as_socket()
                .unwrap()
                .port();
            let connect = |ip: &str, port: u16| {
                let addr = SocketAddr::new(ip.parse().unwrap(), port);
                std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map(|_| ())
            };
            connect("10.9.9.1", port).expect("through its device");
            let refused = connect("127.0.0.1", port).unwrap_err();
            assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
            connect("127.0.0.1", plain_port).expect("no vrf: any device");
            vrf.vrf = Some("nosuchdev0".into());
            let err = bind(&vrf, &Defaults::default()).unwrap_err();
            assert_eq!(
                err.to_string(),
                "vrf nosuchdev0: there is no network device of that name"
            );
        };
        std::thread::spawn(scenario).join().unwrap();
    }

    /// A listener with `bind retry delay` whose address is taken is returned as
    /// pending (the others bound), and [`retry`] binds it once the address is free;
    /// without the delay the same failure fails the whole bind.
    #[test]
    fn a_listener_with_a_retry_delay_waits_instead_of_failing() {
        for attempt in 1..=5 {
            let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let taken = holder.local_addr().unwrap().to_string();
            let mut waits = spec(&taken);
            waits.bind_retry_delay = Some(2);
            let specs = [spec("127.0.0.1:0"), waits.clone()];
            let d = Defaults::default();
            let mut listeners = bind_all(&specs, &d, &d, &mut Vec::new()).unwrap();
            assert_eq!(listeners.bound.len(), 1);
            let p = &mut listeners.pending[0];
            assert_eq!(p.spec, waits);
            assert!(
                p.error.starts_with(&format!("cannot listen on {taken}: ")),
                "{}",
                p.error
            );
            let later = p.next.saturating_duration_since(Instant::now());
            assert!(
                later > Duration::from_secs(1) && later <= Duration::from_secs(2),
                "{later:?}"
            );
            assert!(retry(p, &d).is_none(), "still taken");
            assert_eq!(p.attempts, 2);
            drop(holder);
            let Some(b) = retry(p, &d) else {
                // Once dropped, the port is free for anyone: another test's connection
                // may have taken it as its source port (the OS chose it from the
                // ephemeral range). Only then is the test run again on a new port.
                let stolen = std::net::TcpListener::bind(&taken).is_err();
                assert!(
                    stolen && attempt < 5,
                    "not bound once free ({taken}; taken by another: {stolen})"
                );
                continue;
            };
            assert_eq!(
                b.socket
                    .local_addr()
                    .unwrap()
                    .as_socket()
                    .unwrap()
                    .to_string(),
                taken
            );
            drop(b);
            let _holder = std::net::TcpListener::bind(&taken).unwrap();
            let err = bind_all(
                &[spec("127.0.0.1:0"), spec(&taken)],
                &d,
                &d,
                &mut Vec::new(),
            )
            .unwrap_err();
            assert!(err.contains(&taken), "{err}");
            return;
        }
    }
}
