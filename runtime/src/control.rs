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
        }
    }

    /// `None` for a frame that is not a master's message.
    pub fn decode(f: &[u8; FRAME]) -> Option<ToWorker> {
        match fields(f) {
            (DRAIN, _, _) => Some(ToWorker::Drain),
            (STOP, grace_secs, _) => Some(ToWorker::Stop { grace_secs }),
            (SESSIONS, limit, id) => Some(ToWorker::Sessions { id, limit }),
            (DRAIN_OVER, _, _) => Some(ToWorker::DrainOver),
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
            _ => None,
        }
    }
}

/// What the master reads from a worker's control socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    Frame(ToMaster),
    /// A whole payload answering request `id`.
    Payload {
        id: u64,
        bytes: Vec<u8>,
    },
    /// A payload longer than [`MAX_PAYLOAD`], skipped.
    Oversized {
        id: u64,
        len: u32,
    },
    /// A frame of an unknown kind, skipped.
    Unknown(u8),
}

/// Reassembles frames and payloads from reads of any size: memory held is at most
/// one frame and one payload of at most [`MAX_PAYLOAD`] bytes, whatever the input.
#[derive(Debug, Default)]
pub struct Reader {
    frame: [u8; FRAME],
    filled: usize,
    payload: Option<Pending>,
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
    pub fn push(&mut self, mut input: &[u8], out: &mut Vec<Incoming>) {
        while !input.is_empty() {
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
            let n = (FRAME - self.filled).min(input.len());
            self.frame[self.filled..self.filled + n].copy_from_slice(&input[..n]);
            self.filled += n;
            input = &input[n..];
            if self.filled < FRAME {
                break;
            }
            self.filled = 0;
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
                    Some(m) => Incoming::Frame(m),
                    None => Incoming::Unknown(kind),
                }),
            }
        }
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
}
