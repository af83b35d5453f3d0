//! The load board: how workers that accept on the same inherited listeners share
//! the new connections.
//!
//! Every worker is woken by a new connection on a listener they share, and the first
//! one to run used to take the whole burst: 50 clients connecting at once all landed
//! on one worker while the other stayed idle (measured in docs/benchmarks.md). The
//! board is a small table in memory shared by the master and every worker (an
//! anonymous shared mapping made before the first fork, so every process has it at
//! the same place). Each worker has a seat where it publishes its number of sessions
//! while it accepts, and counts its accepts. Before accepting, a worker with at
//! least `users min` sessions looks at the others: when one that accepts holds
//! clearly fewer sessions ([`defers`]), it leaves the connection in the queue for
//! that one (see `worker::server::accept`).
//!
//! The master hands out the seats: the lowest free one at each fork, freed when the
//! worker is reaped. A worker without a seat (more workers alive than seats) accepts
//! as if alone. Only atomics are shared, with relaxed ordering: a stale figure makes
//! a worker accept one connection it could have left, never lose one.

use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use crate::sys::shared::SharedAtomics;

/// Seats on a board: workers alive at once, old generations draining included.
pub const SEATS: usize = tcprelay_plan::MAX_WORKERS as usize;

/// A seat's load while its worker does not accept (or no worker holds it).
const AWAY: u32 = u32::MAX;

/// The shared memory is [`WORDS`] atomics: a header of one seat's size (its first
/// word: seats in use end before it, "high"), then the seats.
const SEAT_WORDS: usize = 4;
const WORDS: usize = SEAT_WORDS * (1 + SEATS);

/// One worker's published figures, four words of the shared memory.
struct Seat<'a>(&'a [AtomicU32]);

impl Seat<'_> {
    /// Sessions held, or [`AWAY`].
    fn load(&self) -> &AtomicU32 {
        &self.0[0]
    }
    /// Connections accepted so far (wrapping): another worker sees from it that this
    /// one makes progress.
    fn accepted(&self) -> &AtomicU32 {
        &self.0[1]
    }
    /// Sessions held, whether it accepts or not: what the master reports when the
    /// worker dies (its frames only say when it fills or empties).
    fn held(&self) -> &AtomicU32 {
        &self.0[2]
    }
}

/// The board's memory seen as a header and seats.
struct Table<'a>(&'a [AtomicU32]);

impl<'a> Table<'a> {
    fn high(&self) -> &'a AtomicU32 {
        &self.0[0]
    }
    fn seats(&self) -> impl Iterator<Item = Seat<'a>> {
        self.0[SEAT_WORDS..].chunks_exact(SEAT_WORDS).map(Seat)
    }
    fn seat(&self, index: usize) -> Option<Seat<'a>> {
        let start = SEAT_WORDS.checked_mul(index.checked_add(1)?)?;
        Some(Seat(self.0.get(start..start + SEAT_WORDS)?))
    }
}

/// A handle on the board (cheap to clone).
#[derive(Clone)]
pub struct Board(Arc<SharedAtomics>);

impl std::fmt::Debug for Board {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Board")
            .field("high", &self.table().high().load(Ordering::Relaxed))
            .finish()
    }
}

impl Board {
    /// Maps a new board, every seat away. Shared with the processes forked after.
    pub fn new() -> io::Result<Board> {
        let board = Board(Arc::new(SharedAtomics::new(WORDS)?));
        for seat in board.table().seats() {
            seat.load().store(AWAY, Ordering::Relaxed);
        }
        Ok(board)
    }

    fn table(&self) -> Table<'_> {
        Table(self.0.get())
    }

    /// The master: gives seat `index` to a new worker (away until it publishes).
    pub fn occupy(&self, index: usize) -> Option<Place> {
        let table = self.table();
        let seat = table.seat(index)?;
        seat.load().store(AWAY, Ordering::Relaxed);
        seat.held().store(0, Ordering::Relaxed);
        let end = u32::try_from(index + 1).unwrap_or(u32::MAX);
        table.high().fetch_max(end, Ordering::Relaxed);
        Some(Place {
            board: self.clone(),
            index,
        })
    }

    /// The master: a worker is gone; its seat no longer counts. Returns the sessions
    /// it last said it held.
    pub fn vacate(&self, index: usize) -> u32 {
        let Some(seat) = self.table().seat(index) else {
            return 0;
        };
        seat.load().store(AWAY, Ordering::Relaxed);
        seat.held().swap(0, Ordering::Relaxed)
    }

    /// The master: the sessions the worker in seat `index` holds, as it last
    /// published (once per turn of its loop, accepting or not).
    pub fn held(&self, index: usize) -> u32 {
        self.table()
            .seat(index)
            .map_or(0, |seat| seat.held().load(Ordering::Relaxed))
    }
}

impl Board {
    /// Whether the worker in seat `index` accepts now (holds it, and is neither
    /// full, nor draining, nor paused): a sticky client may be handed to it.
    pub fn accepting(&self, index: usize) -> bool {
        self.table()
            .seat(index)
            .is_some_and(|seat| seat.load().load(Ordering::Relaxed) != AWAY)
    }
}

/// A worker's seat on the board.
#[derive(Debug, Clone)]
pub struct Place {
    board: Board,
    index: usize,
}

/// What a worker sees of the others that accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Others {
    /// The fewest sessions among them.
    pub least: u32,
    /// The sum of their accept counters (wrapping): it moves while they accept.
    pub accepted: u32,
    /// How many they are.
    pub count: u32,
}

impl Place {
    fn seat(&self) -> Seat<'_> {
        // `occupy` made places for seats of the table only.
        let seat = self.board.table().seat(self.index);
        seat.expect("a place is a seat of its board")
    }

    /// Publishes this worker's sessions: `held`, and as its load only while it
    /// accepts.
    pub fn publish(&self, held: usize, accepting: bool) {
        let held = u32::try_from(held).unwrap_or(AWAY - 1).min(AWAY - 1);
        let seat = self.seat();
        seat.held().store(held, Ordering::Relaxed);
        seat.load()
            .store(if accepting { held } else { AWAY }, Ordering::Relaxed);
    }

    /// Whether the worker in another seat accepts now ([`Board::accepting`]).
    pub fn accepting(&self, index: usize) -> bool {
        self.board.accepting(index)
    }

    /// Counts one accepted connection.
    pub fn count_accept(&self) {
        self.seat().accepted().fetch_add(1, Ordering::Relaxed);
    }

    /// The other workers that accept now, or `None` when there is none.
    pub fn others(&self) -> Option<Others> {
        let table = self.board.table();
        let high = (table.high().load(Ordering::Relaxed) as usize).min(SEATS);
        let mut found: Option<Others> = None;
        for (i, seat) in table.seats().take(high).enumerate() {
            if i == self.index {
                continue;
            }
            let load = seat.load().load(Ordering::Relaxed);
            if load == AWAY {
                continue;
            }
            let accepted = seat.accepted().load(Ordering::Relaxed);
            found = Some(match found {
                None => Others {
                    least: load,
                    accepted,
                    count: 1,
                },
                Some(o) => Others {
                    least: o.least.min(load),
                    accepted: o.accepted.wrapping_add(accepted),
                    count: o.count + 1,
                },
            });
        }
        found
    }
}

/// Whether a worker holding `mine` sessions leaves a new connection to another that
/// accepts with `least`: when it holds more than two plus a quarter above it (the
/// margin keeps two workers with nearly the same load from both declining in turn,
/// and leaves alone the small differences of short connections coming and going).
pub fn defers(mine: usize, least: u32) -> bool {
    let least = least as usize;
    mine > least + 2 + least / 4
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_sees_only_the_others_that_accept() {
        let board = Board::new().unwrap();
        let a = board.occupy(0).unwrap();
        let b = board.occupy(1).unwrap();
        let c = board.occupy(2).unwrap();
        assert_eq!(a.others(), None, "nobody published yet");
        b.publish(7, true);
        c.publish(3, true);
        c.count_accept();
        c.count_accept();
        b.count_accept();
        assert_eq!(
            a.others(),
            Some(Others {
                least: 3,
                accepted: 3,
                count: 2
            })
        );
        c.publish(3, false);
        assert_eq!(a.others().map(|o| o.least), Some(7), "c stopped accepting");
        assert_eq!(board.held(2), 3, "what c holds, accepting or not");
        assert_eq!(board.held(SEATS), 0, "no seat past the table");
        assert_eq!(board.vacate(1), 7, "b held 7 sessions");
        assert_eq!(a.others(), None, "b was reaped");
        assert_eq!(board.vacate(2), 3, "c held 3 while it did not accept");
        // A new worker in b's seat starts away, with the old counter (only its
        // movement matters).
        let b2 = board.occupy(1).unwrap();
        assert_eq!(a.others(), None);
        b2.publish(0, true);
        assert_eq!(a.others().map(|o| o.least), Some(0));
        assert!(board.occupy(SEATS).is_none(), "no seat past the table");
    }

    #[test]
    fn the_board_is_shared_with_a_forked_process() {
        let board = Board::new().unwrap();
        let here = board.occupy(0).unwrap();
        let there = board.occupy(1).unwrap();
        let status = crate::sys::testing::in_child(|| {
            there.publish(42, true);
            there.count_accept();
        })
        .expect("fork");
        assert_eq!(status.exit_status(), Some(0));
        assert_eq!(
            here.others(),
            Some(Others {
                least: 42,
                accepted: 1,
                count: 1
            })
        );
    }

    #[test]
    fn deferring_needs_a_clear_difference() {
        assert!(!defers(0, 0));
        assert!(!defers(2, 0), "two apart: both may accept");
        assert!(defers(3, 0));
        assert!(!defers(17, 16), "16 + 2 + 4 = 22 is the bound");
        assert!(!defers(22, 16));
        assert!(defers(23, 16));
        assert!(!defers(5, 9), "fewer than the least never defers");
    }
}
