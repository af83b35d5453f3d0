//! Zero-copy relaying of bulk transfers (Linux): `splice(2)` moves a direction's
//! bytes from the source socket into a pipe and from the pipe into the destination
//! socket, so they never cross into user space.
//!
//! A direction starts with ordinary reads and writes through the worker's scratch
//! buffer, which cost the same number of system calls and less kernel work for the
//! small messages of request/response traffic. When one read fills the whole
//! scratch buffer the direction is carrying bulk data, and it switches to splicing
//! for the rest of the session (see `session::direction`).
//!
//! Pipes come from a per-worker [`Pipes`] pool and go back to it as soon as they are
//! empty, so an idle session holds no pipe, as it holds no buffer. The pool is
//! bounded by a descriptor budget computed with the session capacity
//! (`limits::capacity`): a pipe costs two descriptors, and splicing must
//! never take the descriptors a session needs. Without a pipe (budget used, or
//! `pipe2` failing) a direction simply copies, and a socket that cannot splice
//! (`EINVAL`: a socket type or kernel without it) makes its direction copy for good,
//! the bytes already in the pipe copied on first.

use std::io;
use std::os::fd::BorrowedFd;

/// The capacity asked for each pipe: the most one `splice` moves. Pipes start at
/// 64 KiB (16 pages), which also caps a splice at 16 socket buffer fragments;
/// 256 KiB moved 8 % more than 64 KiB here (iperf3 on loopback), 1 MiB little
/// more again, and an unprivileged user may only have 64 MiB of pipes in all
/// (`/proc/sys/fs/pipe-user-pages-soft`).
pub const PIPE_SIZE: usize = 256 * 1024;

/// A pipe smaller than this (the kernel gives 8 KiB pipes to a user over the pipe
/// memory limit) would splice worse than copying: none is made any more.
const PIPE_MIN: usize = 64 * 1024;

/// Empty pipes kept for reuse; more are closed when they empty.
const KEEP_FREE: usize = 16;

/// A pipe holding the bytes of one direction in transit.
#[derive(Debug)]
pub struct Pipe {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    read: std::os::fd::OwnedFd,
    #[cfg(any(target_os = "linux", target_os = "android"))]
    write: std::os::fd::OwnedFd,
    /// Bytes in the pipe.
    pub len: usize,
    /// What the pipe holds at most.
    pub capacity: usize,
}

/// The worker's pipes: a pool of empty ones and a budget of pipes in use.
#[derive(Debug, Default)]
pub struct Pipes {
    /// Boxed as sessions hold them, so that lending one moves a pointer.
    #[allow(clippy::vec_box)]
    free: Vec<Box<Pipe>>,
    /// Pipes that exist (in the pool or lent to sessions).
    open: usize,
    /// The most pipes that may exist; 0 disables splicing.
    budget: usize,
    /// Pipes created so far (for tests and debug output).
    pub created: u64,
}

impl Pipes {
    /// A pool allowed `budget` pipes (0: no splicing).
    pub fn new(budget: usize) -> Pipes {
        Pipes {
            budget: if cfg!(any(target_os = "linux", target_os = "android")) {
                budget
            } else {
                0
            },
            ..Pipes::default()
        }
    }

    /// Whether splicing is possible at all.
    pub fn enabled(&self) -> bool {
        self.budget > 0
    }

    /// Pipes lent to sessions now.
    pub fn in_use(&self) -> usize {
        self.open - self.free.len()
    }

    /// An empty pipe, from the pool or new; `None` when the budget is used or the
    /// kernel refuses one (the caller copies instead).
    pub fn take(&mut self) -> Option<Box<Pipe>> {
        if let Some(pipe) = self.free.pop() {
            return Some(pipe);
        }
        if self.open >= self.budget {
            return None;
        }
        let pipe = new_pipe()?;
        if pipe.capacity < PIPE_MIN {
            // Over the user's pipe memory limit: stop making pipes.
            self.budget = self.open;
            return None;
        }
        self.open += 1;
        self.created += 1;
        Some(Box::new(pipe))
    }

    /// Takes back a pipe a session no longer needs. A pipe still holding bytes
    /// (its session failed) is closed, as are pipes beyond the few kept.
    pub fn give(&mut self, pipe: Box<Pipe>) {
        if pipe.len == 0 && self.free.len() < KEEP_FREE {
            self.free.push(pipe);
        } else {
            self.open -= 1;
        }
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn new_pipe() -> Option<Pipe> {
    use rustix::pipe::{fcntl_getpipe_size, fcntl_setpipe_size, pipe_with, PipeFlags};
    let (read, write) = pipe_with(PipeFlags::NONBLOCK | PipeFlags::CLOEXEC).ok()?;
    // Best effort: a user over the pipe memory limit keeps the default size.
    let _ = fcntl_setpipe_size(&write, PIPE_SIZE);
    let capacity = fcntl_getpipe_size(&write).ok().filter(|c| *c > 0)?;
    Some(Pipe {
        read,
        write,
        len: 0,
        capacity,
    })
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn new_pipe() -> Option<Pipe> {
    None
}

/// Moves up to the pipe's free room from socket `src` into the pipe: `Ok(0)` is end
/// of file, `WouldBlock` means no data now.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn fill(src: BorrowedFd<'_>, pipe: &mut Pipe) -> io::Result<usize> {
    let room = pipe.capacity - pipe.len;
    debug_assert!(room > 0, "splicing into a full pipe");
    let n = rustix::pipe::splice(src, None, &pipe.write, None, room, SPLICE_FLAGS)?;
    pipe.len += n;
    Ok(n)
}

/// Moves what the pipe holds into socket `dst`; `WouldBlock` means it is full.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn drain(pipe: &mut Pipe, dst: BorrowedFd<'_>) -> io::Result<usize> {
    let n = rustix::pipe::splice(&pipe.read, None, dst, None, pipe.len, SPLICE_FLAGS)?;
    pipe.len -= n;
    Ok(n)
}

/// Both ends are sockets or pipes, never blocking.
#[cfg(any(target_os = "linux", target_os = "android"))]
const SPLICE_FLAGS: rustix::pipe::SpliceFlags =
    rustix::pipe::SpliceFlags::MOVE.union(rustix::pipe::SpliceFlags::NONBLOCK);

/// Whether a splice error means this descriptor cannot splice (a socket type or
/// kernel without it): the direction then copies instead.
pub fn unsupported(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP)
    ) || error.kind() == io::ErrorKind::Unsupported
}

/// Reads everything the pipe holds (to copy it on when splicing it out failed).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn take_all(pipe: &mut Pipe) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = vec![0u8; pipe.len];
    let mut read = std::fs::File::from(pipe.read.try_clone()?);
    read.read_exact(&mut bytes)?;
    pipe.len = 0;
    Ok(bytes)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub fn take_all(_pipe: &mut Pipe) -> io::Result<Vec<u8>> {
    Err(io::ErrorKind::Unsupported.into())
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub fn fill(_src: BorrowedFd<'_>, _pipe: &mut Pipe) -> io::Result<usize> {
    Err(io::ErrorKind::Unsupported.into())
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub fn drain(_pipe: &mut Pipe, _dst: BorrowedFd<'_>) -> io::Result<usize> {
    Err(io::ErrorKind::Unsupported.into())
}

#[cfg(all(test, any(target_os = "linux", target_os = "android")))]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn bytes_move_socket_to_socket_through_a_pipe() {
        let (mut a, b) = UnixStream::pair().unwrap();
        let (c, mut d) = UnixStream::pair().unwrap();
        b.set_nonblocking(true).unwrap();
        let mut pipes = Pipes::new(4);
        let mut pipe = pipes.take().expect("a pipe");
        assert!(pipe.capacity >= 64 * 1024);
        a.write_all(b"spliced bytes").unwrap();
        assert_eq!(fill(b.as_fd(), &mut pipe).unwrap(), 13);
        assert_eq!(pipe.len, 13);
        assert_eq!(drain(&mut pipe, c.as_fd()).unwrap(), 13);
        assert_eq!(pipe.len, 0);
        let mut got = [0u8; 13];
        d.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"spliced bytes");
        // Nothing more: WouldBlock, not end of file.
        let e = fill(b.as_fd(), &mut pipe).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        drop(a);
        assert_eq!(fill(b.as_fd(), &mut pipe).unwrap(), 0, "end of file");
        pipes.give(pipe);
        assert_eq!(pipes.in_use(), 0);
    }

    #[test]
    fn the_budget_bounds_the_pipes_and_empty_ones_are_reused() {
        let mut pipes = Pipes::new(2);
        let one = pipes.take().unwrap();
        let two = pipes.take().unwrap();
        assert!(pipes.take().is_none(), "over budget");
        assert_eq!(pipes.in_use(), 2);
        pipes.give(one);
        let again = pipes.take().unwrap();
        assert_eq!(pipes.created, 2, "the returned pipe was reused");
        // A pipe given back with bytes in it is closed, freeing the budget.
        let mut full = two;
        full.len = 1;
        pipes.give(full);
        assert_eq!(pipes.in_use(), 1);
        assert!(pipes.take().is_some());
        pipes.give(again);
        assert!(!Pipes::new(0).enabled());
    }
}
