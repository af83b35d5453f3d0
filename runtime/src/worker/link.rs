//! The worker's end of the control socket: frames in from the master, frames out to
//! it, without ever blocking the loop.
//!
//! Reads are buffered so that a frame split across reads is reassembled. Writes are
//! non-blocking: an essential frame the socket cannot take now (every frame the
//! worker sends: `Load`, on which the master starts workers and sheds connections,
//! `Retiring`, `Draining`, `Idle`) and the tail of a partly written frame wait in a
//! small outbox flushed when the socket becomes writable; a non-essential one would
//! be dropped.

use crate::control::{ToMaster, ToWorker, FRAME};
use mio::net::UnixStream;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};

/// What reading the control socket produced.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Received {
    pub frames: Vec<ToWorker>,
    /// The master closed its end (or the socket failed): it is gone.
    pub eof: bool,
}

/// The worker's end of the control socket.
#[derive(Debug)]
pub struct Link {
    stream: Option<UnixStream>,
    input: [u8; FRAME],
    filled: usize,
    /// Bytes to send before anything else (always whole frames, or the tail of one).
    outbox: Vec<u8>,
}

impl Link {
    pub fn new(stream: UnixStream) -> Link {
        Link {
            stream: Some(stream),
            input: [0; FRAME],
            filled: 0,
            outbox: Vec::new(),
        }
    }

    /// The socket's descriptor, while there is one.
    pub fn fd(&self) -> Option<RawFd> {
        self.stream.as_ref().map(|s| s.as_raw_fd())
    }

    /// Whether bytes wait in the outbox for the socket to become writable.
    pub fn wants_write(&self) -> bool {
        self.stream.is_some() && !self.outbox.is_empty()
    }

    /// Forgets the socket after end of file (the caller deregisters it first).
    pub fn take(&mut self) -> Option<UnixStream> {
        self.outbox.clear();
        self.stream.take()
    }

    /// Reads every available frame.
    pub fn receive(&mut self) -> Received {
        let mut out = Received::default();
        let Some(stream) = self.stream.as_mut() else {
            return out;
        };
        loop {
            match stream.read(&mut self.input[self.filled..]) {
                Ok(0) => {
                    out.eof = true;
                    return out;
                }
                Ok(n) => {
                    self.filled += n;
                    if self.filled == FRAME {
                        self.filled = 0;
                        match ToWorker::decode(&self.input) {
                            Some(frame) => out.frames.push(frame),
                            None => crate::warn!(
                                "control: ignoring an unknown frame (kind {})",
                                self.input[0]
                            ),
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return out,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    crate::warn!("control: read failed: {e}");
                    out.eof = true;
                    return out;
                }
            }
        }
    }

    /// Sends a frame. `essential` frames are queued when the socket is full;
    /// others are dropped then.
    pub fn send(&mut self, message: ToMaster, essential: bool) {
        if self.stream.is_none() {
            return;
        }
        if !self.outbox.is_empty() {
            if essential {
                self.outbox.extend_from_slice(&message.encode());
                self.flush();
            } else {
                crate::debug!("control: socket busy, dropping {message:?}");
            }
            return;
        }
        let frame = message.encode();
        match self.write(&frame) {
            Ok(n) if n == FRAME => {}
            Ok(n) => self.outbox.extend_from_slice(&frame[n..]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if essential {
                    self.outbox.extend_from_slice(&frame);
                } else {
                    crate::debug!("control: socket full, dropping {message:?}");
                }
            }
            Err(e) => crate::debug!("control: cannot send {message:?}: {e}"),
        }
    }

    /// Writes what the outbox holds, on a writable event.
    pub fn flush(&mut self) {
        while !self.outbox.is_empty() {
            let pending = std::mem::take(&mut self.outbox);
            match self.write(&pending) {
                Ok(n) => self.outbox = pending[n..].to_vec(),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.outbox = pending;
                    return;
                }
                Err(e) => {
                    crate::debug!("control: cannot send: {e}");
                    return;
                }
            }
        }
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let Some(stream) = self.stream.as_mut() else {
            return Err(io::ErrorKind::NotConnected.into());
        };
        loop {
            match stream.write(bytes) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_frames_are_reassembled_and_unknown_ones_skipped() {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().expect("pair");
        ours.set_nonblocking(true).expect("nonblocking");
        let mut link = Link::new(UnixStream::from_std(ours));
        let mut master = theirs;
        let drain = ToWorker::Drain.encode();
        master.write_all(&drain[..5]).expect("write");
        assert_eq!(link.receive(), Received::default());
        master.write_all(&drain[5..]).expect("write");
        master.write_all(&[0xee; FRAME]).expect("write");
        master
            .write_all(&ToWorker::Stop { grace_secs: 4 }.encode())
            .expect("write");
        let got = link.receive();
        assert_eq!(
            got.frames,
            vec![ToWorker::Drain, ToWorker::Stop { grace_secs: 4 }]
        );
        assert!(!got.eof);

        link.send(
            ToMaster::Draining {
                sessions: 2,
                stopping: false,
            },
            true,
        );
        let mut frame = [0u8; FRAME];
        master.read_exact(&mut frame).expect("read");
        assert_eq!(
            ToMaster::decode(&frame),
            Some(ToMaster::Draining {
                sessions: 2,
                stopping: false
            })
        );

        drop(master);
        assert!(link.receive().eof);
        // Sending to a gone master is harmless.
        link.send(
            ToMaster::Load {
                sessions: 1,
                full: false,
            },
            false,
        );
        link.send(ToMaster::Retiring { served: 1 }, true);
    }
}
