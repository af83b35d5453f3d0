//! One direction of a session's bytes (client → remote or remote → client): what
//! it owns, and the moving of its bytes from the source side to the destination
//! side.
//!
//! A run of a direction takes one step at a time until it is blocked or has used
//! its read budget: it writes out its remainder first ([`Direction::flush`]), then
//! what its pipe holds ([`Direction::splice_out`]), then forwards the source's end
//! of file ([`Direction::forward_eof`]); with nothing in transit it reads the
//! source again, through its pipe when it splices ([`Direction::splice_in`]) or
//! through the worker's scratch buffer ([`Direction::copy`]). Nothing is allocated
//! on the way but the remainder a slow destination leaves (see `buffer`).

use super::end::{End, Side};
use crate::worker::buffer::Pending;
use crate::worker::splice::{self, Pipe, Pipes};
use crate::worker::transport::Transport;
use std::io;

/// Reads of one direction in one run before the session yields to the others
/// (with a 64 KiB scratch buffer: 1 MiB).
pub(super) const READS_PER_RUN: u32 = 16;

/// A failure in a direction: the side it happened on, and its error.
pub(super) type Fault = (Side, io::Error);

/// One direction of bytes, from the side `from` to the other.
#[derive(Debug)]
pub(super) struct Direction {
    /// The source side (the client for client → remote).
    pub(super) from: Side,
    /// What the destination has not accepted yet; the source is not read meanwhile.
    pub(super) pending: Pending,
    /// The source has sent end of file.
    pub(super) eof: bool,
    /// The end of file was forwarded (`shutdown(Write)` on the destination).
    pub(super) shut: bool,
    /// Bulk data was seen: the direction splices (see [`crate::worker::splice`]).
    pub(super) splice: bool,
    /// While splicing, the pipe holding bytes in transit (returned when empty).
    pub(super) pipe: Option<Box<Pipe>>,
    /// Bytes written to the destination (from the remainder, the scratch buffer or
    /// the pipe); bytes read and not yet written are not counted.
    pub(super) bytes: u64,
}

/// How a direction is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// Bytes flow and an end of file is forwarded; `other_shut`: the other direction
    /// is finished, so this one's end of file finishes the session.
    Relay { other_shut: bool },
    /// The source failed: what it sent before is delivered; its end (of file, or a
    /// read error) is not forwarded, the session closes after it.
    Deliver,
}

/// How a direction's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Run {
    /// Nothing more can be done until a readiness event.
    Blocked,
    /// The read budget was used up with data possibly left.
    Exhausted,
}

/// What one step of a run found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// The run goes on with its next step.
    Next,
    /// A side is not ready: the run ends until a readiness event.
    Blocked,
}

impl Direction {
    /// A direction from `from` that has moved nothing yet.
    pub(super) fn new(from: Side) -> Direction {
        Direction {
            from,
            pending: Pending::default(),
            eof: false,
            shut: false,
            splice: false,
            pipe: None,
            bytes: 0,
        }
    }

    /// The destination side.
    fn to(&self) -> Side {
        self.from.other()
    }

    /// Whether the direction's pipe, if it has one, is empty.
    pub(super) fn pipe_empty(&self) -> bool {
        self.pipe.as_ref().is_none_or(|p| p.len == 0)
    }

    /// Whether the source has ended and everything it sent was written.
    pub(super) fn delivered(&self) -> bool {
        self.eof && self.pending.is_empty() && self.pipe_empty()
    }

    /// Gives the direction's pipe back (one still holding bytes is closed).
    pub(super) fn release_pipe(&mut self, pipes: &mut Pipes) {
        if let Some(pipe) = self.pipe.take() {
            pipes.give(pipe);
        }
    }

    /// Runs the direction from `src` to `dst`: flushes its remainder, forwards its
    /// end of file, or reads and writes, until blocked or out of budget. An error
    /// names the side it happened on; bytes a failed write did not take are kept in
    /// the remainder (the client's, for the next remote of a failover). A pipe the
    /// direction ends with empty goes back to `pipes`.
    #[inline]
    pub(super) fn transfer<T: Transport>(
        &mut self,
        src: &mut End<T>,
        dst: &mut End<T>,
        scratch: &mut [u8],
        pipes: &mut Pipes,
        mode: Mode,
    ) -> Result<Run, Fault> {
        // Most runs of a session find one of its directions with nothing to do
        // (the side that had no event): answered here, inlined in the caller,
        // without the call to the whole run (`until_blocked` would return the same
        // at its first step, with no pipe to give back).
        if self.pending.is_empty()
            && self.pipe.is_none()
            && !self.eof
            && !(src.readable && dst.writable)
        {
            return Ok(Run::Blocked);
        }
        self.transfer_run(src, dst, scratch, pipes, mode)
    }

    fn transfer_run<T: Transport>(
        &mut self,
        src: &mut End<T>,
        dst: &mut End<T>,
        scratch: &mut [u8],
        pipes: &mut Pipes,
        mode: Mode,
    ) -> Result<Run, Fault> {
        let run = self.until_blocked(src, dst, scratch, pipes, mode);
        if self.pipe.as_ref().is_some_and(|p| p.len == 0) {
            self.release_pipe(pipes);
        }
        run
    }

    fn until_blocked<T: Transport>(
        &mut self,
        src: &mut End<T>,
        dst: &mut End<T>,
        scratch: &mut [u8],
        pipes: &mut Pipes,
        mode: Mode,
    ) -> Result<Run, Fault> {
        let mut reads = 0;
        loop {
            let step = if !self.pending.is_empty() {
                self.flush(dst)?
            } else if !self.pipe_empty() {
                self.splice_out(dst)?
            } else if self.eof {
                return self.forward_eof(dst, mode);
            } else {
                if !src.readable || !dst.writable {
                    return Ok(Run::Blocked);
                }
                if reads == READS_PER_RUN {
                    return Ok(Run::Exhausted);
                }
                reads += 1;
                match self.splice_in(src, pipes, mode)? {
                    Some(step) => step,
                    // Not splicing, or no pipe to be had now: copy this time.
                    None => self.copy(src, dst, scratch, pipes, mode)?,
                }
            };
            if step == Step::Blocked {
                return Ok(Run::Blocked);
            }
        }
    }

    /// Writes the remainder to the destination. Out of line, as the other steps
    /// but reading and writing: they are rare, and inlined they would make every
    /// run's frame larger (more registers saved and restored per call).
    #[inline(never)]
    fn flush<T: Transport>(&mut self, dst: &mut End<T>) -> Result<Step, Fault> {
        if !dst.writable {
            return Ok(Step::Blocked);
        }
        let want = self.pending.len();
        match dst.io.write(self.pending.as_slice()) {
            Ok(0) => Err((self.to(), io::ErrorKind::WriteZero.into())),
            Ok(n) => {
                self.pending.consume(n);
                self.bytes += n as u64;
                Ok(wrote(dst, n, want))
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                dst.writable = false;
                Ok(Step::Blocked)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(Step::Next),
            Err(e) => Err((self.to(), e)),
        }
    }

    /// Splices what the pipe holds into the destination. A destination that
    /// cannot splice gets it copied on, as a remainder, and the direction copies
    /// from now on.
    #[inline(never)]
    fn splice_out<T: Transport>(&mut self, dst: &mut End<T>) -> Result<Step, Fault> {
        if !dst.writable {
            return Ok(Step::Blocked);
        }
        let (from, to) = (self.from, self.to());
        let Some(fd) = dst.io.splice_fd() else {
            debug_assert!(false, "a pipe for a destination that cannot splice");
            return Err((to, io::ErrorKind::Unsupported.into()));
        };
        let Some(pipe) = self.pipe.as_mut() else {
            return Ok(Step::Next);
        };
        let want = pipe.len;
        match splice::drain(pipe, fd) {
            Ok(0) => Err((to, io::ErrorKind::WriteZero.into())),
            Ok(n) => {
                self.bytes += n as u64;
                Ok(wrote(dst, n, want))
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                dst.writable = false;
                Ok(Step::Blocked)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(Step::Next),
            Err(e) if splice::unsupported(&e) => {
                self.splice = false;
                let bytes = splice::take_all(pipe).map_err(|e| (from, e))?;
                self.pending.store(&bytes);
                Ok(Step::Next)
            }
            Err(e) => Err((to, e)),
        }
    }

    /// The source has ended and everything it sent was written: relaying, its end
    /// of file is forwarded (a TLS destination sends close_notify, which may wait
    /// for room); delivering, the session closes (or fails over) now.
    #[inline(never)]
    fn forward_eof<T: Transport>(&mut self, dst: &mut End<T>, mode: Mode) -> Result<Run, Fault> {
        let Mode::Relay { other_shut } = mode else {
            return Ok(Run::Blocked);
        };
        if !self.shut && other_shut && dst.io.close_sends_eof() {
            // The session closes right after this run, and closing `dst` sends
            // the end of file (its receive side is empty: the other direction
            // read its end of file), so no shutdown(2) is needed.
            self.shut = true;
        }
        while !self.shut && dst.writable {
            match dst.io.shutdown_write() {
                Ok(()) => self.shut = true,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => dst.writable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err((self.to(), e)),
            }
        }
        Ok(Run::Blocked)
    }

    /// Splices from the source into the direction's pipe, when the direction
    /// splices and has a pipe (taken from `pipes` if need be); `None` when it
    /// does not, and copies instead.
    #[inline]
    fn splice_in<T: Transport>(
        &mut self,
        src: &mut End<T>,
        pipes: &mut Pipes,
        mode: Mode,
    ) -> Result<Option<Step>, Fault> {
        if !self.splice {
            return Ok(None);
        }
        self.splice_in_pipe(src, pipes, mode)
    }

    /// [`Direction::splice_in`] for a direction that splices (out of line).
    #[inline(never)]
    fn splice_in_pipe<T: Transport>(
        &mut self,
        src: &mut End<T>,
        pipes: &mut Pipes,
        mode: Mode,
    ) -> Result<Option<Step>, Fault> {
        if self.pipe.is_none() {
            self.pipe = pipes.take();
        }
        let (Some(fd), Some(pipe)) = (src.io.splice_fd(), self.pipe.as_mut()) else {
            return Ok(None);
        };
        match splice::fill(fd, pipe) {
            Ok(0) => {
                self.eof = true;
                src.readable = false;
            }
            // Not a proof that the socket is drained: a splice also stops when the
            // pipe runs out of slots. The next one finds out.
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                src.readable = false;
                return Ok(Some(Step::Blocked));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // This source cannot splice (nothing was moved): copy instead.
            Err(e) if splice::unsupported(&e) => self.splice = false,
            Err(e) => self.source_ended(src, mode, e)?,
        }
        Ok(Some(Step::Next))
    }

    /// Reads from the source into the worker's scratch buffer and writes that to
    /// the destination, keeping what it does not take as the remainder. A read
    /// that fills the buffer is bulk data: the direction splices from then on, if
    /// the worker has pipes and both sides can.
    fn copy<T: Transport>(
        &mut self,
        src: &mut End<T>,
        dst: &mut End<T>,
        scratch: &mut [u8],
        pipes: &Pipes,
        mode: Mode,
    ) -> Result<Step, Fault> {
        let n = match src.io.read(scratch) {
            Ok(0) => {
                self.eof = true;
                src.readable = false;
                return Ok(Step::Next);
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                src.readable = false;
                return Ok(Step::Blocked);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(Step::Next),
            Err(e) => {
                self.source_ended(src, mode, e)?;
                return Ok(Step::Next);
            }
        };
        if n < scratch.len() && !src.read_closed && src.io.short_read_drains() {
            src.readable = false;
        }
        if n == scratch.len()
            && pipes.enabled()
            && src.io.splice_fd().is_some()
            && dst.io.splice_fd().is_some()
        {
            self.splice = true;
        }
        let data = &scratch[..n];
        match dst.io.write(data) {
            Ok(w) => {
                self.bytes += w as u64;
                if w < n {
                    self.pending.store(&data[w..]);
                    dst.writable = false;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.pending.store(data);
                dst.writable = false;
            }
            // Keep the data; the next step writes it again.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => self.pending.store(data),
            Err(e) => {
                // Kept: not a byte of it reached `dst`.
                self.pending.store(data);
                return Err((self.to(), e));
            }
        }
        Ok(Step::Next)
    }

    /// A read error ends the source: everything it sent before was read (a kernel
    /// socket returns queued bytes before the error). Relaying, the error fails the
    /// session; delivering (the source failed already), it is the source's end.
    #[cold]
    #[inline(never)]
    fn source_ended<T: Transport>(
        &mut self,
        src: &mut End<T>,
        mode: Mode,
        error: io::Error,
    ) -> Result<(), Fault> {
        self.eof = true;
        src.readable = false;
        match mode {
            Mode::Relay { .. } => Err((self.from, error)),
            Mode::Deliver => Ok(()),
        }
    }
}

/// After a write of `n` of the `want` bytes offered: a short write means the
/// destination's send buffer is full.
fn wrote<T: Transport>(dst: &mut End<T>, n: usize, want: usize) -> Step {
    if n < want {
        dst.writable = false;
        Step::Blocked
    } else {
        Step::Next
    }
}
