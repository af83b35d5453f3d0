//! Opening the outgoing connection to a remote: a non-blocking socket, bound to
//! `local address` when the plan has one, TCP or SCTP, with the connect started.
//!
//! This is where the errors of an attempt are sorted, because they call for
//! different reactions: a remote that refuses or cannot be reached is marked dead
//! and the session fails over; a worker out of file descriptors must not blame the
//! remote, and neither must a worker out of local ports towards it (every source
//! port to that address in use or in TIME_WAIT); a kernel without SCTP is a
//! configuration problem to report once.

use super::socket::Socket;
use mio::net::TcpStream;
use socket2::{Domain, Protocol, SockAddr, Type};
use std::io;
use std::net::{IpAddr, SocketAddr};
use tcprelay_plan::{Protocol as PlanProtocol, Remote};

/// Why an attempt could not even be started.
#[derive(Debug)]
pub enum OpenError {
    /// The worker is out of file descriptors or memory: not the remote's fault.
    Resources(io::Error),
    /// The kernel does not support the protocol (SCTP without the module).
    Unsupported(io::Error),
    /// No free local port towards the remote (`EADDRNOTAVAIL` from `connect`, or
    /// `EADDRINUSE` from binding `local address` where the port cannot be left to
    /// the connect): not the remote's fault, and over as soon as a port is free.
    NoLocalPort(io::Error),
    /// The remote (or the route to it, or the local address) failed.
    Failed(io::Error),
}

/// Errors that mean the process or system ran out of something.
pub fn is_resource_error(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

fn is_unsupported(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(
            libc::EPROTONOSUPPORT
                | libc::ESOCKTNOSUPPORT
                | libc::EAFNOSUPPORT
                | libc::EPFNOSUPPORT
                | libc::EPROTOTYPE
        )
    )
}

fn stream_type() -> Type {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        Type::STREAM.nonblocking()
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        Type::STREAM
    }
}

/// What the plan sets on a remote socket besides its address: `tcp bufsize` and the
/// `dscp` of the listener the client came through.
#[derive(Debug, Clone, Copy, Default)]
pub struct Marks {
    pub bufsize: Option<u32>,
    pub dscp: Option<u8>,
}

/// Starts a non-blocking connect to `remote`. Completion is signalled by the socket
/// becoming writable and checked with [`super::transport::Transport::connect_status`].
pub fn open(remote: &Remote, local: Option<IpAddr>, marks: Marks) -> Result<Socket, OpenError> {
    let protocol = match remote.protocol {
        PlanProtocol::Tcp => Protocol::TCP,
        PlanProtocol::Sctp => Protocol::from(libc::IPPROTO_SCTP),
    };
    let socket = socket2::Socket::new(
        Domain::for_address(remote.address),
        stream_type(),
        Some(protocol),
    )
    .map_err(|e| {
        if is_resource_error(&e) {
            OpenError::Resources(e)
        } else if is_unsupported(&e) {
            OpenError::Unsupported(e)
        } else {
            OpenError::Failed(e)
        }
    })?;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    socket.set_nonblocking(true).map_err(OpenError::Failed)?;
    // A local address of the other family than the remote cannot be used for it;
    // the kernel then picks the source address.
    if let Some(ip) = local.filter(|ip| ip.is_ipv4() == remote.address.is_ipv4()) {
        // Linux: the port is chosen by the connect, for the whole 4-tuple, so that
        // connections to different remotes (or ports) can share source ports; a
        // bind alone would need a port free towards every destination, and runs out
        // after some 28,000 connections in use or in TIME_WAIT.
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let _ = crate::sys::net::set_bind_address_no_port(&socket);
        socket
            .bind(&SockAddr::from(SocketAddr::new(ip, 0)))
            .map_err(|e| {
                if is_resource_error(&e) {
                    OpenError::Resources(e)
                } else if e.raw_os_error() == Some(libc::EADDRINUSE) {
                    OpenError::NoLocalPort(e)
                } else {
                    OpenError::Failed(e)
                }
            })?;
    }
    if remote.protocol == PlanProtocol::Tcp {
        // Best effort: a relay must not add Nagle delays to small writes.
        let _ = socket.set_tcp_nodelay(true);
    }
    // Before the connect: the window scale of the handshake follows the receive
    // buffer, and the SYN carries the DSCP. Best effort, as the plan's values were
    // checked (a kernel that refuses one relays the session unmarked).
    if let Some(size) = marks.bufsize {
        let _ = crate::listen::set_bufsize(&socket, size);
    }
    if let Some(dscp) = marks.dscp {
        let _ = crate::listen::set_dscp(&socket, remote.address.is_ipv6(), dscp);
    }
    match socket.connect(&SockAddr::from(remote.address)) {
        Ok(()) => {}
        Err(e)
            if e.raw_os_error() == Some(libc::EINPROGRESS)
                || e.kind() == io::ErrorKind::WouldBlock => {}
        Err(e) if is_resource_error(&e) => return Err(OpenError::Resources(e)),
        Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => {
            return Err(OpenError::NoLocalPort(e))
        }
        Err(e) => return Err(OpenError::Failed(e)),
    }
    let stream: std::net::TcpStream = socket.into();
    Ok(Socket::Tcp(TcpStream::from_std(stream)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    fn remote(address: SocketAddr) -> Remote {
        Remote {
            address,
            protocol: PlanProtocol::Tcp,
            weight: 1,
            send_proxy: None,
            tls: None,
            check: None,
            route: None,
        }
    }

    /// `tcp bufsize` and the listener's `dscp` are set on the remote socket before
    /// its connect (read back from the socket: Linux doubles a buffer size); without
    /// them the socket has the kernel's.
    #[test]
    fn the_remote_socket_gets_the_bufsize_and_the_dscp() {
        let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let marks = Marks {
            bufsize: Some(50_000),
            dscp: Some(10),
        };
        let socket = open(&remote(server.local_addr().unwrap()), None, marks).unwrap();
        let fd = socket.as_fd();
        let s = socket2::SockRef::from(&fd);
        assert_eq!(s.recv_buffer_size().unwrap(), 100_000);
        assert_eq!(s.send_buffer_size().unwrap(), 100_000);
        assert_eq!(s.tos_v4().unwrap(), 10 << 2);
        let socket = open(
            &remote(server.local_addr().unwrap()),
            None,
            Marks::default(),
        )
        .unwrap();
        let fd = socket.as_fd();
        let s = socket2::SockRef::from(&fd);
        assert_ne!(s.recv_buffer_size().unwrap(), 100_000);
        assert_eq!(s.tos_v4().unwrap(), 0);
        if let Ok(server) = std::net::TcpListener::bind("[::1]:0") {
            let marks = Marks {
                bufsize: None,
                dscp: Some(46),
            };
            let socket = open(&remote(server.local_addr().unwrap()), None, marks).unwrap();
            let fd = socket.as_fd();
            let s = socket2::SockRef::from(&fd);
            assert_eq!(s.tclass_v6().unwrap(), 46 << 2);
        }
    }
}
