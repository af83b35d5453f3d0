//! The worker's end of the control socket: frames in from the master, frames out to
//! it, without ever blocking the loop.
//!
//! Reads are buffered so that a frame split across reads is reassembled. Writes are
//! non-blocking: an essential frame the socket cannot take now (every frame the
//! worker sends: `Load`, on which the master starts workers and sheds connections,
//! `Retiring`, `Draining`, `Idle`) and the tail of a partly written frame wait in a
//! small outbox flushed when the socket becomes writable; a non-essential one would
//! be dropped.
//!
//! A hand-off (a sticky client for another worker, `crate::control`) waits in the
//! outbox like any frame, with its descriptor held: the frame goes out in a
//! `sendmsg` of its own with the descriptor, and a hand-off still waiting when the
//! master is gone is given back to the worker ([`Link::take_waiting`]).

use crate::control::{self, payload_header, Passed, ToMaster, ToWorker, FRAME, MAX_PAYLOAD};
use mio::net::UnixStream;
use std::collections::VecDeque;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

/// Hand-offs that may wait in the outbox; beyond them the worker serves its
/// clients itself.
pub const MAX_WAITING_HANDOFFS: usize = 64;

/// What reading the control socket produced.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Received {
    pub frames: Vec<ToWorker>,
    /// Clients handed over by the master: the listener, whether it is this
    /// worker's own hand-off coming back, and the descriptor (`None`: it did not
    /// arrive).
    pub handed: Vec<(u32, bool, Option<Passed>)>,
    /// The master closed its end (or the socket failed): it is gone.
    pub eof: bool,
}

/// A hand-off in the outbox: where its frame starts, its listener, the client.
#[derive(Debug)]
struct Waiting {
    at: usize,
    listener: u32,
    fd: OwnedFd,
}

/// The worker's end of the control socket.
#[derive(Debug)]
pub struct Link {
    stream: Option<UnixStream>,
    input: [u8; FRAME],
    filled: usize,
    /// Bytes to send before anything else (always whole frames, or the tail of one).
    outbox: Vec<u8>,
    /// The hand-offs among them, in order.
    waiting: VecDeque<Waiting>,
    /// The descriptor that came with the read of the current frame's first byte.
    arrived: Option<OwnedFd>,
}

impl Link {
    pub fn new(stream: UnixStream) -> Link {
        Link {
            stream: Some(stream),
            input: [0; FRAME],
            filled: 0,
            outbox: Vec::new(),
            waiting: VecDeque::new(),
            arrived: None,
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

    /// Forgets the socket after end of file (the caller deregisters it first, and
    /// takes the hand-offs still waiting with [`Link::take_waiting`]).
    pub fn take(&mut self) -> Option<UnixStream> {
        self.outbox.clear();
        self.waiting.clear();
        self.stream.take()
    }

    /// The hand-offs not sent yet (listener, client), for the worker to serve;
    /// their frames leave the outbox, the other frames stay.
    pub fn take_waiting(&mut self) -> Vec<(u32, OwnedFd)> {
        // None of them is partly sent (a descriptor goes with the first byte):
        // each is a whole frame at its place.
        for w in self.waiting.iter().rev() {
            self.outbox.drain(w.at..w.at + FRAME);
        }
        self.waiting.drain(..).map(|w| (w.listener, w.fd)).collect()
    }

    /// Reads every available frame.
    pub fn receive(&mut self) -> Received {
        let mut out = Received::default();
        let Some(stream) = self.stream.as_mut() else {
            return out;
        };
        loop {
            let mut fds = Vec::new();
            match control::receive(stream.as_fd(), &mut self.input[self.filled..], &mut fds) {
                Ok(0) => {
                    out.eof = true;
                    return out;
                }
                Ok(n) => {
                    // A descriptor comes with the read of its frame's first byte
                    // (reads never go past the current frame); any other is closed.
                    let mut fds = fds.into_iter();
                    if self.filled == 0 {
                        self.arrived = fds.next();
                    }
                    if fds.next().is_some() {
                        crate::warn!("control: closing descriptors that came with no hand-off");
                    }
                    self.filled += n;
                    if self.filled == FRAME {
                        self.filled = 0;
                        let fd = self.arrived.take();
                        match ToWorker::decode(&self.input) {
                            Some(ToWorker::Handoff { listener, returned }) => {
                                out.handed.push((listener, returned, fd.map(Passed)));
                            }
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

    /// Hands client `fd` of listener `listener` to the master for the worker in
    /// board seat `seat`: sent now, or queued with its descriptor. Given back when
    /// there is no master or too many hand-offs wait already.
    pub fn send_handoff(&mut self, listener: u32, seat: u16, fd: OwnedFd) -> Result<(), OwnedFd> {
        if self.stream.is_none() || self.waiting.len() >= MAX_WAITING_HANDOFFS {
            return Err(fd);
        }
        self.waiting.push_back(Waiting {
            at: self.outbox.len(),
            listener,
            fd,
        });
        self.outbox
            .extend_from_slice(&ToMaster::Handoff { listener, seat }.encode());
        self.flush();
        Ok(())
    }

    /// Writes what the outbox holds, on a writable event: plain bytes up to the
    /// next hand-off, then that hand-off's frame with its descriptor.
    pub fn flush(&mut self) {
        while !self.outbox.is_empty() {
            let next = self.waiting.front().map_or(self.outbox.len(), |w| w.at);
            let written = if next > 0 {
                let pending = std::mem::take(&mut self.outbox);
                let written = self.write(&pending[..next]);
                self.outbox = pending;
                written
            } else {
                self.send_first_handoff()
            };
            match written {
                Ok(n) => {
                    self.outbox.drain(..n);
                    for w in &mut self.waiting {
                        w.at -= n;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    crate::debug!("control: cannot send: {e}");
                    return;
                }
            }
        }
    }

    /// Sends the hand-off at the head of the outbox: its descriptor goes with the
    /// first byte written (the kernel takes the 16 bytes whole, or none).
    fn send_first_handoff(&mut self) -> io::Result<usize> {
        let Some(stream) = self.stream.as_ref() else {
            return Err(io::ErrorKind::NotConnected.into());
        };
        let Some(first) = self.waiting.front() else {
            return Ok(0);
        };
        let n = control::send_with_fd(stream.as_fd(), &self.outbox[..FRAME], first.fd.as_fd())?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        // Sent: the master holds its copy, this one is closed.
        self.waiting.pop_front();
        Ok(n)
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
    use std::io::Read;

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

    /// The inode of descriptor `fd`: which open file it is.
    fn inode(fd: &OwnedFd) -> u64 {
        use std::os::unix::fs::MetadataExt;
        let file = std::fs::File::from(fd.try_clone().expect("dup"));
        file.metadata().expect("fstat").ino()
    }

    /// A hand-off the socket cannot take now waits in the outbox with its
    /// descriptor, behind what waits already, and reaches the master with it
    /// once the socket drains; one still waiting when the master is gone is
    /// given back (never closed), and so is one with no master at all.
    #[test]
    fn a_handoff_waits_with_its_descriptor_and_is_given_back_if_the_master_goes() {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().expect("pair");
        ours.set_nonblocking(true).expect("nonblocking");
        let mut link = Link::new(UnixStream::from_std(ours));
        let master = theirs;
        let big: Vec<u8> = vec![7; MAX_PAYLOAD];
        link.send_payload(1, &big);
        assert!(link.wants_write(), "the socket is full");
        let client = OwnedFd::from(tempfile::tempfile().expect("a file"));
        let want = inode(&client);
        link.send_handoff(4, 2, client).expect("queued");
        assert_eq!(link.waiting.len(), 1, "waiting with its descriptor");
        let reader = std::thread::spawn(move || {
            let mut reader = crate::control::Reader::default();
            let mut out = Vec::new();
            let mut buf = vec![0u8; 8192];
            while out.len() < 2 {
                let mut fds = Vec::new();
                let n = control::receive(&master, &mut buf, &mut fds).expect("read");
                assert!(n > 0, "end of file before the hand-off");
                reader.push_with_fds(&buf[..n], fds, &mut out);
            }
            (out, master)
        });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while link.wants_write() {
            assert!(std::time::Instant::now() < deadline, "outbox never drained");
            link.flush();
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(link.waiting.is_empty());
        let (out, master) = reader.join().expect("reader");
        match &out[1] {
            crate::control::Incoming::Handoff {
                listener: 4,
                seat: 2,
                fd: Some(fd),
            } => assert_eq!(inode(&fd.0), want, "the client's own descriptor"),
            other => panic!("not the hand-off: {other:?}"),
        }

        // The master stops reading: hand-offs queue behind a full socket, and
        // come back when it is gone.
        link.send_payload(2, &big);
        let a = OwnedFd::from(tempfile::tempfile().expect("a file"));
        let b = OwnedFd::from(tempfile::tempfile().expect("a file"));
        let (ia, ib) = (inode(&a), inode(&b));
        link.send_handoff(0, 1, a).expect("queued");
        link.send(ToMaster::Idle { served: 3 }, true);
        link.send_handoff(1, 1, b).expect("queued");
        let before = link.outbox.len();
        let back: Vec<(u32, u64)> = link
            .take_waiting()
            .iter()
            .map(|(listener, fd)| (*listener, inode(fd)))
            .collect();
        assert_eq!(back, vec![(0, ia), (1, ib)]);
        // The frame between them stays, whole, at the end of the outbox.
        assert_eq!(link.outbox.len(), before - 2 * FRAME);
        assert_eq!(
            link.outbox[link.outbox.len() - FRAME..],
            ToMaster::Idle { served: 3 }.encode()
        );
        drop(master);
        assert!(link.receive().eof);
        link.take();
        let c = OwnedFd::from(tempfile::tempfile().expect("a file"));
        let ic = inode(&c);
        let refused = link.send_handoff(0, 1, c).expect_err("no master");
        assert_eq!(inode(&refused), ic);
    }
}
