//! The control channel between the master and a worker: a Unix stream socket pair
//! created before the fork, carrying fixed 16-byte frames.
//!
//! ```text
//! byte 0     kind
//! bytes 1-3  zero
//! bytes 4-7  a (u32, little endian)
//! bytes 8-15 b (u64, little endian)
//! ```
//!
//! One message is longer: a worker's answer to [`ToWorker::Sessions`] is a frame of
//! kind `P` ([`payload_header`]: `a` the length, `b` the request's id) followed by
//! that many bytes (at most [`MAX_PAYLOAD`]), which [`Reader`] reassembles however
//! the reads split them. The bytes are JSON lines: `{"total":N}` (the sessions the
//! worker holds), then one object per session, oldest first (see
//! `worker::server::control`).
//!
//! A worker whose control socket reaches end of file knows its master is gone: it
//! stops accepting, finishes its sessions and exits, as the original's children do.
//!
//! Hand-offs (sticky clients, docs/sticky.md) carry a descriptor: a worker's
//! [`ToMaster::Handoff`] and the master's [`ToWorker::Handoff`] are each sent by one
//! `sendmsg` of exactly the frame's 16 bytes with the accepted socket as
//! `SCM_RIGHTS` ([`send_with_fd`]). The socket pair is a stream: the kernel gives
//! the descriptor to the read that takes the first byte of that `sendmsg`, and ends
//! that read with the `sendmsg`'s last byte at the latest ([`receive`]). So a
//! descriptor belongs to the hand-off frame that starts in the read that brought it
//! and ends no earlier than that read ([`Reader::push_with_fds`]); a hand-off frame
//! without one (the receiver was out of descriptors: the kernel closed it) says
//! so, and a descriptor no frame claims is closed.

use rustix::net::{
    recvmsg, sendmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags,
    SendAncillaryBuffer, SendAncillaryMessage, SendFlags,
};
use std::collections::VecDeque;
use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

/// The size of every frame.
pub const FRAME: usize = 16;

/// What the master tells a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToWorker {
    /// Stop accepting, finish the sessions, exit when idle (reload, SIGHUP).
    Drain,
    /// Graceful stop (SIGTERM/SIGINT to the master): as `Drain`, but sessions still
    /// open after `grace_secs` seconds are closed.
    Stop { grace_secs: u32 },
    /// Report the sessions open now, at most `limit` of them (the oldest), in a
    /// payload answering `id`.
    Sessions { id: u64, limit: u32 },
    /// The drain is over (a reload's `drain timeout` has passed, or more old
    /// generations drain than `drain generations`): close the remaining sessions
    /// now and exit.
    DrainOver,
    /// A client of listener `listener` (plan order) accepted by another worker,
    /// whose descriptor comes with the frame: serve it (its ACL is checked, its
    /// accept counted). `returned`: it is the worker's own hand-off, which no other
    /// could take: it serves it even when full.
    Handoff { listener: u32, returned: bool },
}

/// The most bytes of one payload; a longer one is skipped unread (never stored).
pub const MAX_PAYLOAD: usize = 1 << 20;

/// What a worker tells the master.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToMaster {
    /// The worker's session count changed across a threshold: `full` when it has
    /// reached `users max` and stopped accepting.
    Load { sessions: u32, full: bool },
    /// The worker reached `retire`: it takes no more sessions and exits when idle, so
    /// the master should start a replacement now.
    Retiring { served: u64 },
    /// The worker has stopped accepting for good and holds `sessions` sessions;
    /// `stopping` when it was told to stop (SIGTERM/SIGINT, `ToWorker::Stop`) rather
    /// than to drain, so the master does not start a successor for it.
    Draining { sessions: u32, stopping: bool },
    /// The worker has held no session for its idle-release time (and says so again
    /// after each one while idle): the master may drain it if it has more workers
    /// than `servers min` and none of the others is full.
    Idle { served: u64 },
    /// A sticky client of listener `listener` whose entry names the worker in board
    /// seat `seat`: its descriptor comes with the frame, for the master to pass on.
    Handoff { listener: u32, seat: u16 },
}

const DRAIN: u8 = b'D';
const STOP: u8 = b'S';
const LOAD: u8 = b'L';
const RETIRING: u8 = b'R';
const DRAINING: u8 = b'd';
const IDLE: u8 = b'I';
const SESSIONS: u8 = b'Q';
const PAYLOAD: u8 = b'P';

/// The frame that announces `len` bytes of payload answering request `id`.
pub fn payload_header(id: u64, len: u32) -> [u8; FRAME] {
    frame(PAYLOAD, len, id)
}
const DRAIN_OVER: u8 = b'O';
/// Both directions: a frame with a descriptor.
const HANDOFF: u8 = b'H';

fn frame(kind: u8, a: u32, b: u64) -> [u8; FRAME] {
    let mut f = [0u8; FRAME];
    f[0] = kind;
    f[4..8].copy_from_slice(&a.to_le_bytes());
    f[8..16].copy_from_slice(&b.to_le_bytes());
    f
}

fn fields(f: &[u8; FRAME]) -> (u8, u32, u64) {
    let a = u32::from_le_bytes([f[4], f[5], f[6], f[7]]);
    let mut b = [0u8; 8];
    b.copy_from_slice(&f[8..16]);
    (f[0], a, u64::from_le_bytes(b))
}

impl ToWorker {
    pub fn encode(self) -> [u8; FRAME] {
        match self {
            ToWorker::Drain => frame(DRAIN, 0, 0),
            ToWorker::Stop { grace_secs } => frame(STOP, grace_secs, 0),
            ToWorker::Sessions { id, limit } => frame(SESSIONS, limit, id),
            ToWorker::DrainOver => frame(DRAIN_OVER, 0, 0),
            ToWorker::Handoff { listener, returned } => {
                frame(HANDOFF, listener, u64::from(returned))
            }
        }
    }

    /// `None` for a frame that is not a master's message.
    pub fn decode(f: &[u8; FRAME]) -> Option<ToWorker> {
        match fields(f) {
            (DRAIN, _, _) => Some(ToWorker::Drain),
            (STOP, grace_secs, _) => Some(ToWorker::Stop { grace_secs }),
            (SESSIONS, limit, id) => Some(ToWorker::Sessions { id, limit }),
            (DRAIN_OVER, _, _) => Some(ToWorker::DrainOver),
            (HANDOFF, listener, returned) => Some(ToWorker::Handoff {
                listener,
                returned: returned != 0,
            }),
            _ => None,
        }
    }
}

impl ToMaster {
    pub fn encode(self) -> [u8; FRAME] {
        match self {
            ToMaster::Load { sessions, full } => frame(LOAD, sessions, u64::from(full)),
            ToMaster::Retiring { served } => frame(RETIRING, 0, served),
            ToMaster::Draining { sessions, stopping } => {
                frame(DRAINING, sessions, u64::from(stopping))
            }
            ToMaster::Idle { served } => frame(IDLE, 0, served),
            ToMaster::Handoff { listener, seat } => frame(HANDOFF, listener, u64::from(seat)),
        }
    }

    /// `None` for a frame that is not a worker's message.
    pub fn decode(f: &[u8; FRAME]) -> Option<ToMaster> {
        match fields(f) {
            (LOAD, sessions, full) => Some(ToMaster::Load {
                sessions,
                full: full != 0,
            }),
            (RETIRING, _, served) => Some(ToMaster::Retiring { served }),
            (DRAINING, sessions, stopping) => Some(ToMaster::Draining {
                sessions,
                stopping: stopping != 0,
            }),
            (IDLE, _, served) => Some(ToMaster::Idle { served }),
            (HANDOFF, listener, seat) => Some(ToMaster::Handoff {
                listener,
                seat: u16::try_from(seat).ok()?,
            }),
            _ => None,
        }
    }
}

/// What the master reads from a worker's control socket.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// Any frame but a hand-off.
    Frame(ToMaster),
    /// A worker's hand-off and the descriptor that came with it (`None`: it did
    /// not arrive).
    Handoff {
        listener: u32,
        seat: u16,
        fd: Option<Passed>,
    },
    /// A whole payload answering request `id`.
    Payload { id: u64, bytes: Vec<u8> },
    /// A payload longer than [`MAX_PAYLOAD`], skipped.
    Oversized { id: u64, len: u32 },
    /// A frame of an unknown kind, skipped.
    Unknown(u8),
}

/// A descriptor passed over the control socket (compared by number, for tests).
#[derive(Debug)]
pub struct Passed(pub OwnedFd);

impl PartialEq for Passed {
    fn eq(&self, other: &Passed) -> bool {
        self.0.as_raw_fd() == other.0.as_raw_fd()
    }
}

impl Eq for Passed {}

/// Reassembles frames and payloads from reads of any size: memory held is at most
/// one frame and one payload of at most [`MAX_PAYLOAD`] bytes, whatever the input,
/// and the descriptors of one frame's worth of reads.
#[derive(Debug, Default)]
pub struct Reader {
    frame: [u8; FRAME],
    filled: usize,
    payload: Option<Pending>,
    /// Bytes pushed so far, and where the frame being filled started.
    offset: u64,
    frame_start: u64,
    /// Descriptors not claimed yet, with the stream offsets of the read that
    /// brought each: `[from, to)`.
    fds: VecDeque<(u64, u64, OwnedFd)>,
}

#[derive(Debug)]
struct Pending {
    id: u64,
    len: u32,
    left: usize,
    /// `None` when the payload is too long to keep: its bytes are skipped.
    bytes: Option<Vec<u8>>,
}

impl Reader {
    /// Takes the bytes of one read; what they complete is added to `out`.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<Incoming>) {
        self.push_with_fds(input, Vec::new(), out);
    }

    /// Takes the bytes of one read and the descriptors it brought; what they
    /// complete is added to `out`.
    pub fn push_with_fds(&mut self, mut input: &[u8], fds: Vec<OwnedFd>, out: &mut Vec<Incoming>) {
        let start = self.offset;
        let end = start + input.len() as u64;
        self.fds.extend(fds.into_iter().map(|fd| (start, end, fd)));
        while !input.is_empty() {
            let at = end - input.len() as u64;
            if let Some(pending) = self.payload.as_mut() {
                let n = pending.left.min(input.len());
                if let Some(bytes) = pending.bytes.as_mut() {
                    bytes.extend_from_slice(&input[..n]);
                }
                pending.left -= n;
                input = &input[n..];
                if pending.left == 0 {
                    self.finish_payload(out);
                }
                continue;
            }
            if self.filled == 0 {
                self.frame_start = at;
            }
            let n = (FRAME - self.filled).min(input.len());
            self.frame[self.filled..self.filled + n].copy_from_slice(&input[..n]);
            self.filled += n;
            input = &input[n..];
            if self.filled < FRAME {
                break;
            }
            self.filled = 0;
            let fd = self.claim(fields(&self.frame).0 == HANDOFF);
            match fields(&self.frame) {
                (PAYLOAD, len, id) => {
                    let keep = len as usize <= MAX_PAYLOAD;
                    self.payload = Some(Pending {
                        id,
                        len,
                        left: len as usize,
                        // Grown as the bytes come, not trusted to the length given.
                        bytes: keep.then(Vec::new),
                    });
                    if len == 0 {
                        self.finish_payload(out);
                    }
                }
                (kind, _, _) => out.push(match ToMaster::decode(&self.frame) {
                    Some(ToMaster::Handoff { listener, seat }) => Incoming::Handoff {
                        listener,
                        seat,
                        fd: fd.map(Passed),
                    },
                    Some(m) => Incoming::Frame(m),
                    None => Incoming::Unknown(kind),
                }),
            }
        }
        self.offset = end;
    }

    /// For the frame just completed (`handoff`: one that carries a descriptor),
    /// the descriptor that came with the read of its first byte, if that read
    /// ended within the frame (the kernel ends a read with a descriptor's
    /// `sendmsg`: one that went on past this frame brought another frame's).
    /// Descriptors brought by reads that ended before it started belong to no
    /// frame any more: closed.
    fn claim(&mut self, handoff: bool) -> Option<OwnedFd> {
        let start = self.frame_start;
        while let Some((_, to, _)) = self.fds.front() {
            if *to > start {
                break;
            }
            crate::warn!("control: closing a descriptor that came with no hand-off");
            self.fds.pop_front();
        }
        let (from, to, _) = self.fds.front()?;
        (handoff && *from <= start && *to <= start + FRAME as u64)
            .then(|| self.fds.pop_front().map(|(_, _, fd)| fd))
            .flatten()
    }

    fn finish_payload(&mut self, out: &mut Vec<Incoming>) {
        if let Some(p) = self.payload.take() {
            out.push(match p.bytes {
                Some(bytes) => Incoming::Payload { id: p.id, bytes },
                None => Incoming::Oversized {
                    id: p.id,
                    len: p.len,
                },
            });
        }
    }
}

/// Sends `bytes` (a whole frame) with descriptor `fd` in one `sendmsg`; a socket
/// that cannot take them now says `WouldBlock` (then `fd` was not sent).
pub fn send_with_fd(socket: impl AsFd, bytes: &[u8], fd: BorrowedFd<'_>) -> io::Result<usize> {
    let fds = [fd];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(io::ErrorKind::OutOfMemory.into());
    }
    loop {
        match sendmsg(
            &socket,
            &[IoSlice::new(bytes)],
            &mut control,
            SendFlags::NOSIGNAL,
        ) {
            Err(rustix::io::Errno::INTR) => {}
            other => return other.map_err(io::Error::from),
        }
    }
}

/// Reads what the socket holds into `buf` (at most its length), adding the
/// descriptors that came with it to `fds`.
pub fn receive(socket: impl AsFd, buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> io::Result<usize> {
    // The kernel ends a read after a `sendmsg` with descriptors: one read brings
    // the descriptor of one hand-off; room for a few more costs nothing (the
    // kernel closes what does not fit).
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(4))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let got = loop {
        match recvmsg(
            &socket,
            &mut [IoSliceMut::new(buf)],
            &mut control,
            RECV_FLAGS,
        ) {
            Err(rustix::io::Errno::INTR) => {}
            other => break other.map_err(io::Error::from)?,
        }
    };
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(passed) = message {
            fds.extend(passed);
        }
    }
    if got.flags.contains(ReturnFlags::CTRUNC) {
        crate::warn!("control: a descriptor was lost on the way (out of descriptors?)");
    }
    Ok(got.bytes)
}

#[cfg(any(target_os = "linux", target_os = "android"))]
const RECV_FLAGS: RecvFlags = RecvFlags::CMSG_CLOEXEC;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const RECV_FLAGS: RecvFlags = RecvFlags::empty();

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        for m in [
            ToWorker::Drain,
            ToWorker::Stop { grace_secs: 30 },
            ToWorker::Sessions {
                id: 1 << 40,
                limit: 100,
            },
            ToWorker::DrainOver,
            ToWorker::Handoff {
                listener: 3,
                returned: true,
            },
            ToWorker::Handoff {
                listener: 0,
                returned: false,
            },
        ] {
            assert_eq!(ToWorker::decode(&m.encode()), Some(m));
        }
        for m in [
            ToMaster::Load {
                sessions: 7,
                full: true,
            },
            ToMaster::Retiring { served: 1 << 40 },
            ToMaster::Draining {
                sessions: 3,
                stopping: false,
            },
            ToMaster::Draining {
                sessions: 0,
                stopping: true,
            },
            ToMaster::Idle { served: 12 },
            ToMaster::Handoff {
                listener: 2,
                seat: 511,
            },
        ] {
            assert_eq!(ToMaster::decode(&m.encode()), Some(m));
        }
        assert_eq!(ToWorker::decode(&[0xff; FRAME]), None);
        assert_eq!(ToMaster::decode(&ToWorker::Drain.encode()), None);
    }

    fn stream() -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&ToMaster::Idle { served: 3 }.encode());
        bytes.extend_from_slice(&payload_header(7, 11));
        bytes.extend_from_slice(b"{\"total\":0}");
        bytes.extend_from_slice(&payload_header(8, 0));
        bytes.extend_from_slice(&[0xee; FRAME]);
        bytes.extend_from_slice(&ToMaster::Retiring { served: 9 }.encode());
        bytes
    }

    fn expected() -> Vec<Incoming> {
        vec![
            Incoming::Frame(ToMaster::Idle { served: 3 }),
            Incoming::Payload {
                id: 7,
                bytes: b"{\"total\":0}".to_vec(),
            },
            Incoming::Payload {
                id: 8,
                bytes: Vec::new(),
            },
            Incoming::Unknown(0xee),
            Incoming::Frame(ToMaster::Retiring { served: 9 }),
        ]
    }

    #[test]
    fn frames_and_payloads_are_reassembled_from_reads_of_any_size() {
        let bytes = stream();
        for size in [1, 2, 3, 5, 15, 16, 17, 27, 64, bytes.len()] {
            let mut reader = Reader::default();
            let mut out = Vec::new();
            for chunk in bytes.chunks(size) {
                reader.push(chunk, &mut out);
            }
            assert_eq!(out, expected(), "reads of {size} bytes");
            assert!(reader.payload.is_none() && reader.filled == 0);
        }
    }

    #[test]
    fn a_payload_over_the_cap_is_skipped_without_being_stored() {
        let mut reader = Reader::default();
        let mut out = Vec::new();
        // A garbage length: 4 GiB announced. Nothing is allocated for it.
        reader.push(&payload_header(5, u32::MAX), &mut out);
        assert!(out.is_empty());
        let chunk = vec![0x41u8; 64 * 1024];
        for _ in 0..32 {
            reader.push(&chunk, &mut out);
        }
        let pending = reader.payload.as_ref().expect("still skipping");
        assert!(pending.bytes.is_none(), "not stored");
        assert_eq!(pending.left, u32::MAX as usize - 32 * chunk.len());
        assert!(out.is_empty());

        // Exactly the cap is kept; one byte more is skipped, and what follows it is
        // read as frames again.
        let mut reader = Reader::default();
        let mut bytes = payload_header(1, MAX_PAYLOAD as u32).to_vec();
        bytes.resize(FRAME + MAX_PAYLOAD, b'x');
        bytes.extend_from_slice(&payload_header(2, MAX_PAYLOAD as u32 + 1));
        bytes.resize(bytes.len() + MAX_PAYLOAD + 1, b'y');
        bytes.extend_from_slice(&stream());
        let mut out = Vec::new();
        for chunk in bytes.chunks(4096 + 3) {
            reader.push(chunk, &mut out);
        }
        assert!(
            matches!(&out[0], Incoming::Payload { id: 1, bytes } if bytes.len() == MAX_PAYLOAD)
        );
        assert_eq!(
            out[1],
            Incoming::Oversized {
                id: 2,
                len: MAX_PAYLOAD as u32 + 1
            }
        );
        assert_eq!(out[2..], expected()[..]);
    }

    /// The inode of descriptor `fd`: which open file it is.
    fn inode(fd: &OwnedFd) -> u64 {
        use std::os::unix::fs::MetadataExt;
        let file = std::fs::File::from(fd.try_clone().expect("dup"));
        file.metadata().expect("fstat").ino()
    }

    /// Hand-offs sent among frames and payloads, read back in reads of every
    /// size: each hand-off gets the descriptor sent with it, and a hand-off
    /// whose descriptor did not come (its frame written without one) gets none,
    /// without taking the next one's.
    #[test]
    fn each_handoff_gets_the_descriptor_sent_with_it() {
        for size in [1, 3, 16, 17, 40, 4096] {
            let (worker, master) = std::os::unix::net::UnixStream::pair().expect("pair");
            let clients: Vec<OwnedFd> = (0..3)
                .map(|_| OwnedFd::from(tempfile::tempfile().expect("a file")))
                .collect();
            let handoff = |listener, seat| ToMaster::Handoff { listener, seat }.encode();
            let plain = |bytes: &[u8]| {
                use std::io::Write;
                (&worker).write_all(bytes).expect("write");
            };
            plain(&ToMaster::Idle { served: 1 }.encode());
            let sent = send_with_fd(&worker, &handoff(0, 1), clients[0].as_fd()).expect("send");
            assert_eq!(sent, FRAME);
            plain(&payload_header(9, 5));
            plain(b"hello");
            // Its descriptor lost on the way.
            plain(&handoff(1, 2));
            send_with_fd(&worker, &handoff(2, 3), clients[1].as_fd()).expect("send");
            send_with_fd(&worker, &handoff(3, 4), clients[2].as_fd()).expect("send");
            plain(&ToMaster::Retiring { served: 2 }.encode());
            drop(worker);

            let mut reader = Reader::default();
            let mut out = Vec::new();
            let mut buf = vec![0u8; size];
            loop {
                let mut fds = Vec::new();
                let n = receive(&master, &mut buf, &mut fds).expect("receive");
                if n == 0 {
                    break;
                }
                reader.push_with_fds(&buf[..n], fds, &mut out);
            }
            let got: Vec<(u32, u16, Option<u64>)> = out
                .iter()
                .filter_map(|i| match i {
                    Incoming::Handoff { listener, seat, fd } => {
                        Some((*listener, *seat, fd.as_ref().map(|f| inode(&f.0))))
                    }
                    _ => None,
                })
                .collect();
            let want = vec![
                (0, 1, Some(inode(&clients[0]))),
                (1, 2, None),
                (2, 3, Some(inode(&clients[1]))),
                (3, 4, Some(inode(&clients[2]))),
            ];
            assert_eq!(got, want, "reads of {size} bytes");
            assert_eq!(out.len(), 7, "reads of {size} bytes: {out:?}");
            assert_eq!(
                out[2],
                Incoming::Payload {
                    id: 9,
                    bytes: b"hello".to_vec()
                }
            );
            assert_eq!(out[6], Incoming::Frame(ToMaster::Retiring { served: 2 }));
            assert!(reader.fds.is_empty(), "nothing left over");
        }
    }

    /// A descriptor that comes with no hand-off frame is closed, not kept.
    #[test]
    fn a_descriptor_with_another_frame_is_closed() {
        let (worker, master) = std::os::unix::net::UnixStream::pair().expect("pair");
        let (mine, theirs) = std::os::unix::net::UnixStream::pair().expect("pair");
        send_with_fd(
            &worker,
            &ToMaster::Idle { served: 1 }.encode(),
            theirs.as_fd(),
        )
        .expect("send");
        drop(theirs);
        let mut reader = Reader::default();
        let mut out = Vec::new();
        let mut buf = [0u8; 64];
        let mut fds = Vec::new();
        let n = receive(&master, &mut buf, &mut fds).expect("receive");
        assert_eq!(fds.len(), 1);
        reader.push_with_fds(&buf[..n], fds, &mut out);
        assert_eq!(out, vec![Incoming::Frame(ToMaster::Idle { served: 1 })]);
        // Still held until a later frame shows it belongs to none.
        drop(worker);
        reader.push(&ToMaster::Idle { served: 2 }.encode(), &mut out);
        assert!(reader.fds.is_empty());
        let mut byte = [0u8; 1];
        use std::io::Read;
        assert_eq!(
            (&mine).read(&mut byte).expect("read"),
            0,
            "its last copy closed"
        );
    }
}
