//! Sticky clients handed between workers (docs/sticky.md): a worker that accepted
//! a client whose entry names another worker sends its socket here
//! (`ToMaster::Handoff`, the descriptor with the frame); the master passes it on
//! ([`order`]): to the worker in the seat the entry names if it is of the sender's
//! generation, not leaving and not full, else to another worker of that generation
//! with room, else back to the sender, which serves it even when full. A socket
//! nobody can take (each send failed: the receivers are gone or do not read their
//! control sockets) is closed, and counted. The accept was counted by the sender;
//! the session is counted where it is served.

use super::{Master, Worker};
use crate::control::{self, ToWorker, FRAME};
use crate::stats::Handoff;
use crate::{debug, warn};
use mio::Token;
use std::os::fd::{AsFd, OwnedFd};

/// What the master knows of a worker, to choose where a client goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Candidate<K> {
    pub key: K,
    pub seat: Option<usize>,
    pub generation: u64,
    /// Not leaving, not full, and accepting by its board seat.
    pub room: bool,
    pub sessions: u32,
}

/// Where a client the worker `sender` handed over for board seat `seat` goes, in
/// the order to try: the worker in that seat if it is of the sender's generation
/// and has room, then the others of that generation with room (fewest sessions
/// first), then the sender itself (`true`: returned, taken even when full).
pub(crate) fn order<K: Copy + Eq>(
    sender: K,
    seat: u16,
    candidates: &[Candidate<K>],
) -> Vec<(K, bool)> {
    let Some(from) = candidates.iter().find(|c| c.key == sender) else {
        return Vec::new();
    };
    let mut others: Vec<&Candidate<K>> = candidates
        .iter()
        .filter(|c| c.key != sender && c.generation == from.generation && c.room)
        .collect();
    others.sort_by_key(|c| (c.seat != Some(usize::from(seat)), c.sessions, c.seat));
    others
        .into_iter()
        .map(|c| (c.key, false))
        .chain([(sender, true)])
        .collect()
}

impl Master {
    /// A client worker `from` handed over for board seat `seat`, and its
    /// descriptor (`None`: it did not arrive).
    pub(super) fn hand_over(&mut self, from: Token, listener: u32, seat: u16, fd: Option<OwnedFd>) {
        let Some(fd) = fd else {
            warn!("a client handed over by a worker did not arrive (out of descriptors?)");
            self.count_handoff(Handoff::Closed);
            return;
        };
        let board = self.board.as_ref();
        let candidates: Vec<Candidate<Token>> = self
            .workers
            .iter()
            .map(|(&key, w): (&Token, &Worker)| Candidate {
                key,
                seat: w.seat,
                generation: w.generation,
                room: !w.leaving
                    && !w.full
                    && w.seat.is_some_and(|s| board.is_none_or(|b| b.accepting(s))),
                sessions: w.sessions,
            })
            .collect();
        for (token, returned) in order(from, seat, &candidates) {
            let Some(w) = self.workers.get_mut(&token) else {
                continue;
            };
            let frame = ToWorker::Handoff { listener, returned }.encode();
            match control::send_with_fd(w.control.as_fd(), &frame, fd.as_fd()) {
                Ok(n) => {
                    if n < FRAME {
                        // Not with 16 bytes on a stream socket pair; the worker
                        // has the descriptor and waits for the rest in vain.
                        warn!("worker {}: a hand-off was cut short", w.pid);
                    }
                    debug!(
                        "a sticky client {} worker {}",
                        if returned {
                            "went back to"
                        } else {
                            "was passed to"
                        },
                        w.pid
                    );
                    self.count_handoff(if returned {
                        Handoff::Returned
                    } else {
                        Handoff::Passed
                    });
                    // The receiver holds its copy now; this one is closed.
                    return;
                }
                Err(e) => debug!("cannot hand a client to worker {}: {e}", w.pid),
            }
        }
        warn!("closing a client handed over by a worker: no worker could take it");
        self.count_handoff(Handoff::Closed);
    }

    fn count_handoff(&self, how: Handoff) {
        if let Some(registry) = &self.stats {
            registry.master().handoff(how);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(key: u8, seat: usize, generation: u64, room: bool, sessions: u32) -> Candidate<u8> {
        Candidate {
            key,
            seat: Some(seat),
            generation,
            room,
            sessions,
        }
    }

    #[test]
    fn the_named_seat_first_then_others_with_room_then_the_sender() {
        let workers = [
            worker(1, 0, 2, true, 5),
            worker(2, 1, 2, true, 9),
            worker(3, 2, 2, true, 1),
            worker(4, 3, 1, true, 0),
        ];
        assert_eq!(
            order(1, 1, &workers),
            vec![(2, false), (3, false), (1, true)],
            "seat 1 first, then the least loaded of generation 2, never generation 1"
        );
    }

    #[test]
    fn a_full_leaving_or_gone_target_leaves_the_others_or_the_sender() {
        let full = [worker(1, 0, 1, true, 5), worker(2, 1, 1, false, 9)];
        assert_eq!(order(1, 1, &full), vec![(1, true)], "seat 1 full: returned");
        // Seat 5 holds no worker: another with room takes it.
        let gone = [worker(1, 0, 1, true, 5), worker(2, 1, 1, true, 9)];
        assert_eq!(order(1, 5, &gone), vec![(2, false), (1, true)]);
        // The sender takes it back even when it is full itself.
        let all_full = [worker(1, 0, 1, false, 5), worker(2, 1, 1, false, 9)];
        assert_eq!(order(1, 1, &all_full), vec![(1, true)]);
        // An unknown sender (already reaped): nobody; the caller closes it.
        assert_eq!(order(7, 1, &all_full), vec![]);
    }
}
