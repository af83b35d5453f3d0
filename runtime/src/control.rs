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
    /// The drain is over (a reload's `drain timeout` has passed, or more old
    /// generations drain than `drain generations`): close the remaining sessions
    /// now and exit.
    DrainOver,
}

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
            ToWorker::DrainOver => frame(DRAIN_OVER, 0, 0),
        }
    }

    /// `None` for a frame that is not a master's message.
    pub fn decode(f: &[u8; FRAME]) -> Option<ToWorker> {
        match fields(f) {
            (DRAIN, _, _) => Some(ToWorker::Drain),
            (STOP, grace_secs, _) => Some(ToWorker::Stop { grace_secs }),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        for m in [
            ToWorker::Drain,
            ToWorker::Stop { grace_secs: 30 },
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
}
