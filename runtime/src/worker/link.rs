//! The worker's end of the control socket: frames in from the master, frames out to
//! it, without ever blocking the loop.
//!
//! Reads are buffered so that a frame split across reads is reassembled. Writes are
//! non-blocking: an essential frame the socket cannot take now (every frame the
//! worker sends: `Load`, on which the master starts workers and sheds connections,
//! `Retiring`, `Draining`, `Idle`) and the tail of a partly written frame wait in a
//! small outbox flushed when the socket becomes writable; a non-essential one would
//! be dropped.

use crate::control::{payload_header, ToMaster, ToWorker, FRAME, MAX_PAYLOAD};
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

    /// Sends a payload answering request `id` (its header frame, then `bytes`, at
    /// most [`MAX_PAYLOAD`]), queued in the outbox as far as the socket cannot take
    /// it now. Dropped (the master gives up waiting for it) when `bytes` is too long
    /// or the outbox already holds more than a payload's worth: a master that asks
    /// without reading does not grow the worker's memory.
    pub fn send_payload(&mut self, id: u64, bytes: &[u8]) {
        if self.stream.is_none() {
            return;
        }
        let Ok(len) = u32::try_from(bytes.len()) else {
            return;
        };
        if bytes.len() > MAX_PAYLOAD || self.outbox.len() > MAX_PAYLOAD {
            crate::debug!(
                "control: dropping a payload of {} bytes ({} waiting)",
                bytes.len(),
                self.outbox.len()
            );
            return;
        }
        self.outbox.extend_from_slice(&payload_header(id, len));
        self.outbox.extend_from_slice(bytes);
        self.flush();
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

    #[test]
    fn a_payload_follows_its_header_even_when_the_socket_is_full() {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().expect("pair");
        ours.set_nonblocking(true).expect("nonblocking");
        let mut link = Link::new(UnixStream::from_std(ours));
        let mut master = theirs;
        // More than the socket buffer takes at once: the rest waits in the outbox.
        let big: Vec<u8> = (0..MAX_PAYLOAD).map(|i| (i % 251) as u8).collect();
        link.send_payload(3, &big);
        assert!(link.wants_write(), "the socket took only part of it");
        // A second one is queued behind it; with more than a payload's worth
        // waiting, a third is dropped, not queued.
        link.send_payload(4, &big);
        assert!(link.outbox.len() > MAX_PAYLOAD);
        let waiting = link.outbox.len();
        link.send_payload(5, b"x");
        assert_eq!(link.outbox.len(), waiting);
        link.send(ToMaster::Idle { served: 1 }, true);
        let reader = std::thread::spawn(move || {
            let mut reader = crate::control::Reader::default();
            let mut out = Vec::new();
            let mut buf = vec![0u8; 8192];
            while out.len() < 3 {
                let n = master.read(&mut buf).expect("read");
                assert!(n > 0, "end of file before the whole payload");
                reader.push(&buf[..n], &mut out);
            }
            out
        });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while link.wants_write() {
            assert!(std::time::Instant::now() < deadline, "outbox never drained");
            link.flush();
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let out = reader.join().expect("reader");
        assert_eq!(
            out[0],
            crate::control::Incoming::Payload {
                id: 3,
                bytes: big.clone()
            }
        );
        assert_eq!(
            out[1],
            crate::control::Incoming::Payload { id: 4, bytes: big }
        );
        assert_eq!(
            out[2],
            crate::control::Incoming::Frame(ToMaster::Idle { served: 1 })
        );
        // Too long to send: nothing goes out.
        let mut link = Link::new(UnixStream::from_std(
            std::os::unix::net::UnixStream::pair().expect("pair").0,
        ));
        link.send_payload(5, &vec![0u8; MAX_PAYLOAD + 1]);
        assert!(!link.wants_write());
    }
}
