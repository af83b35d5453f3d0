//! The event mechanisms that know descriptors by number: poll(2) over a `pollfd`
//! array, and select(2) with its `fd_set`. Both are memory-safe whatever the
//! numbers: poll(2) reports a closed one as `POLLNVAL`, select(2) fails with
//! `EBADF`; an `fd_set` is only ever touched below `FD_SETSIZE`.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

/// The number of descriptors an `fd_set` can hold.
pub const FD_SETSIZE: usize = libc::FD_SETSIZE;

/// poll(2) over `fds`, waiting at most `timeout_ms` (-1: no limit): the number of
/// entries whose `revents` is set.
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> io::Result<usize> {
    // SAFETY: `fds` is `fds.len()` initialised pollfd structs, valid and borrowed
    // exclusively for the call; the kernel writes only their `revents`.
    let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    usize::try_from(ready).map_err(|_| io::Error::last_os_error())
}

/// Whether `fd` is an open descriptor (`fcntl(F_GETFD)` succeeds).
pub fn is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only reads a descriptor's flags and takes no pointer; a number
    // that is not open fails with EBADF.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

/// An `fd_set`: descriptors `0..FD_SETSIZE`.
#[derive(Clone, Copy)]
pub struct FdSet(libc::fd_set);

impl std::fmt::Debug for FdSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set()
            .entries((0..FD_SETSIZE as RawFd).filter(|&fd| self.contains(fd)))
            .finish()
    }
}

impl Default for FdSet {
    fn default() -> FdSet {
        FdSet::new()
    }
}

impl FdSet {
    /// The empty set.
    pub fn new() -> FdSet {
        // SAFETY: an fd_set is an array of integers; all zeroes is the empty set
        // (what FD_ZERO writes).
        FdSet(unsafe { std::mem::zeroed() })
    }

    /// Adds `fd` to the set or removes it.
    ///
    /// # Panics
    /// When `fd` is outside `0..FD_SETSIZE` (the select poller refuses to register
    /// such a descriptor, so it never gets here).
    pub fn put(&mut self, fd: RawFd, member: bool) {
        assert!(
            (0..FD_SETSIZE as RawFd).contains(&fd),
            "fd_set access out of range"
        );
        // SAFETY: `self.0` is a valid fd_set and `fd` is within 0..FD_SETSIZE
        // (asserted), so the bit is inside the set.
        unsafe {
            if member {
                libc::FD_SET(fd, &mut self.0);
            } else {
                libc::FD_CLR(fd, &mut self.0);
            }
        }
    }

    /// Whether `fd` is in the set (never, outside `0..FD_SETSIZE`).
    pub fn contains(&self, fd: RawFd) -> bool {
        // SAFETY: as in `put`: checked to be within 0..FD_SETSIZE first.
        (0..FD_SETSIZE as RawFd).contains(&fd) && unsafe { libc::FD_ISSET(fd, &self.0) }
    }
}

/// select(2) on the descriptors below `nfds` (at most `FD_SETSIZE`) of `read` and
/// `write`, waiting at most `timeout` (rounded up to the microsecond; `None`: no
/// limit). The sets keep what is ready; returns how many bits are set.
pub fn select(
    nfds: RawFd,
    read: &mut FdSet,
    write: &mut FdSet,
    timeout: Option<Duration>,
) -> io::Result<usize> {
    let nfds = nfds.clamp(0, FD_SETSIZE as RawFd);
    let mut tv;
    let tvp = match timeout {
        None => std::ptr::null_mut(),
        Some(d) => {
            // Rounded up, so that a near deadline does not become a busy zero.
            let micros = d.as_nanos().div_ceil(1_000);
            tv = libc::timeval {
                tv_sec: libc::time_t::try_from(micros / 1_000_000)
                    .unwrap_or(libc::time_t::MAX)
                    .min(i32::MAX.into()),
                tv_usec: (micros % 1_000_000) as libc::suseconds_t,
            };
            &mut tv as *mut libc::timeval
        }
    };
    // SAFETY: `read` and `write` are valid fd_sets borrowed exclusively for the
    // call, and `nfds` is clamped to FD_SETSIZE, so the kernel reads and writes no
    // bit outside them; `tvp` is null or points to `tv`, which outlives the call.
    let ready = unsafe { libc::select(nfds, &mut read.0, &mut write.0, std::ptr::null_mut(), tvp) };
    usize::try_from(ready).map_err(|_| io::Error::last_os_error())
}
