//! Socket calls without a safe wrapper in `rustix` or `socket2`: one socket option,
//! one ioctl, and OpenSSL's byte source and sink by descriptor.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

/// `IP_BIND_ADDRESS_NO_PORT`: a bind to port 0 leaves the choice of the port to the
/// connect (Linux 4.2 and later; an older kernel refuses it).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn set_bind_address_no_port(socket: impl AsFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: the descriptor is borrowed, so open; the option's value is a pointer to
    // an int of the length given, read during the call only.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_fd().as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The bytes written to a TCP socket that its kernel still holds, not sent or not
/// acknowledged (`TIOCOUTQ`, alias `SIOCOUTQ`). A socket that cannot say (SCTP)
/// fails; other systems: `Unsupported`.
pub fn unsent(socket: impl AsFd) -> io::Result<usize> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let mut queued: libc::c_int = 0;
        // SAFETY: the descriptor is borrowed, so open; TIOCOUTQ writes one int
        // through the pointer, which is valid for the call.
        let rc = unsafe {
            libc::ioctl(
                socket.as_fd().as_raw_fd(),
                libc::TIOCOUTQ,
                &mut queued as *mut libc::c_int,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(usize::try_from(queued).unwrap_or(0))
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = socket;
        Err(io::ErrorKind::Unsupported.into())
    }
}

/// A socket as OpenSSL's byte source and sink (its BIO), by descriptor: it does not
/// own the socket, so making or dropping OpenSSL's connection never closes it.
/// `recv(2)` and `send(2)` with `MSG_NOSIGNAL` (a closed peer is `EPIPE`, not a
/// signal); `WouldBlock` passes through.
///
/// Its owner (the worker's `TlsStream`, which owns both the socket and the OpenSSL
/// connection holding this) keeps the socket open while OpenSSL reads or writes
/// through it. Were it used after the socket closed, the call would fail with
/// `EBADF` or reach whatever file took the number: an I/O error, never a memory one.
#[derive(Debug)]
pub struct SocketIo(RawFd);

impl SocketIo {
    /// Reads and writes `socket`, which the caller keeps open while this is used.
    pub fn new(socket: BorrowedFd<'_>) -> SocketIo {
        SocketIo(socket.as_raw_fd())
    }
}

impl io::Read for SocketIo {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: `buf` is valid for writes of its length during the call; recv(2)
        // writes at most that many bytes. The descriptor is a number the kernel
        // checks: a stale one is an error, not memory unsafety.
        let n = unsafe { libc::recv(self.0, buf.as_mut_ptr().cast(), buf.len(), 0) };
        usize::try_from(n).map_err(|_| io::Error::last_os_error())
    }
}

impl io::Write for SocketIo {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // SAFETY: as in `read`, for reads of `buf`.
        let n = unsafe { libc::send(self.0, buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL) };
        usize::try_from(n).map_err(|_| io::Error::last_os_error())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A TLS session kept to be offered again (client-side resumption), with the
/// context of the connection that made it: OpenSSL may only resume a session with
/// the context that made it, which [`KeptSession::offer`] checks.
pub struct KeptSession {
    session: openssl::ssl::SslSession,
    context: openssl::ssl::SslContext,
}

impl std::fmt::Debug for KeptSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeptSession").finish_non_exhaustive()
    }
}

impl KeptSession {
    /// The session `session` that the connection `made_by` received.
    pub fn new(made_by: &openssl::ssl::SslRef, session: openssl::ssl::SslSession) -> KeptSession {
        KeptSession {
            session,
            context: made_by.ssl_context().to_owned(),
        }
    }

    /// Offers the session to `ssl`, a new connection of the same context; false
    /// (nothing offered) for a connection of another context, or when OpenSSL
    /// refuses it.
    pub fn offer(&self, ssl: &mut openssl::ssl::SslRef) -> bool {
        // A reference to an OpenSSL object is its pointer: equal addresses, the same
        // context.
        let context: &openssl::ssl::SslContextRef = &self.context;
        if !std::ptr::eq(ssl.ssl_context(), context) {
            return false;
        }
        // SAFETY: the session was made by a connection of this same context (checked
        // above), which is what `SSL_set_session` requires.
        unsafe { ssl.set_session(&self.session) }.is_ok()
    }
}
