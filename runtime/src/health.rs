//! The remotes' health as the active checks find it, relay wide: a shared anonymous
//! mapping made by the master before the first fork (like `steering` and `stats`),
//! written by the checker process (`crate::checker`, one per relay) and read by
//! every worker's balancer, the master's status, control socket and metrics.
//!
//! Layout, in 64-bit words (relaxed atomics; one writer at a time: the checker, or
//! the master between two checkers when a reload brings a new remote, or the
//! master for the slot of an address found by DNS that no live plan used, which
//! no checker checks):
//!
//! ```text
//! word 0                 epoch: one more at every change
//! word 1 + WORDS*slot    state of remote slot `slot`: bit 0 set when it is down,
//!   (+0)                 bit 1 when it has been checked, bits 8-15 the last
//!                        result (an `Outcome` code, 0: none), bits 32-63 how many
//!                        results in a row were like the last (passes or failures)
//!   +1                   the last check's duration, in microseconds
//!   +2                   when the last check ended, in milliseconds since the Unix
//!                        epoch (0: never)
//!   +3                   when the state (up/down) last changed, in milliseconds
//!                        since the Unix epoch (0: never since the slot was new)
//!   +4 + code - 1        checks with that result since the remote got its slot
//!                        (+4: passes, the counter a worker watches)
//! ```
//!
//! A remote's slot is its `stats` remote slot ([`crate::stats::Slots::remotes`]): a
//! remote that stays in a reloaded plan keeps it and its health. All zero is a
//! remote "up, not checked yet": a relay serves at once, and a remote without a
//! check is always up. Slot 0, where the remotes beyond
//! [`crate::stats::REMOTE_SLOTS`] count together, is never checked.
//!
//! The writer stores a slot's words, then moves the epoch with release ordering; a
//! reader that sees a new epoch fences with acquire ordering before reading them.

use crate::stats::REMOTE_SLOTS;
use crate::sys::shared::{time_word, word_time, SharedAtomics};
use std::io;
use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

const EPOCH: usize = 0;
const DOWN: u64 = 1;
const CHECKED: u64 = 1 << 1;
const STATE: usize = 0;
const DURATION: usize = 1;
const AT: usize = 2;
const CHANGED: usize = 3;
const COUNTS: usize = 4;
/// Words per slot.
const WORDS: usize = COUNTS + Outcome::ALL.len();

fn word(slot: usize, offset: usize) -> usize {
    1 + WORDS * slot + offset
}

/// What one check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Connected (and the handshake, send and expect went well).
    Pass,
    /// The connect was refused or the remote unreachable.
    Refused,
    /// Not done within the check's timeout.
    Timeout,
    /// The TLS handshake failed.
    Tls,
    /// The reply did not hold what `expect` asks for.
    Mismatch,
    /// The remote closed (or reset) the connection before replying.
    Closed,
    /// Any other failure (a local error: no descriptor, no port).
    Error,
}

impl Outcome {
    /// Every outcome, in code order (code = index + 1).
    pub const ALL: [Outcome; 7] = [
        Outcome::Pass,
        Outcome::Refused,
        Outcome::Timeout,
        Outcome::Tls,
        Outcome::Mismatch,
        Outcome::Closed,
        Outcome::Error,
    ];

    fn code(self) -> u64 {
        Outcome::ALL.iter().position(|o| *o == self).unwrap_or(0) as u64 + 1
    }

    fn from_code(code: u64) -> Option<Outcome> {
        usize::try_from(code)
            .ok()
            .and_then(|c| c.checked_sub(1))
            .and_then(|i| Outcome::ALL.get(i).copied())
    }

    /// The name in logs, the control socket and metrics (`result="..."`).
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Refused => "refused",
            Outcome::Timeout => "timeout",
            Outcome::Tls => "tls",
            Outcome::Mismatch => "mismatch",
            Outcome::Closed => "closed",
            Outcome::Error => "error",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One remote's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Health {
    /// Down by its checks: it gets no new session (unless every remote is down).
    pub down: bool,
    /// At least one check has ended since the remote got its slot.
    pub checked: bool,
    /// The last check's result.
    pub last: Option<Outcome>,
    /// Results in a row like the last (passes, or failures).
    pub streak: u32,
    /// How long the last check took.
    pub duration: Duration,
    /// When the last check ended.
    pub at: Option<SystemTime>,
    /// When the checks last took it down or brought it up (`None`: never since
    /// the remote got its slot).
    pub changed: Option<SystemTime>,
    /// Checks by result, in [`Outcome::ALL`]'s order.
    pub counts: [u64; 7],
}

impl Health {
    /// Passing checks so far: a worker clears its passive dead mark when it moves.
    pub fn passes(&self) -> u64 {
        self.counts[0]
    }

    /// Whether the workers' dead marks of this remote, the earliest set at
    /// `dead_since` (to the second), are cleared by its checks: the last check
    /// passed, after it. A worker clears its mark at its next selection; until
    /// then its counters still hold it, and the master's answers (`ctl remotes`,
    /// metrics) would call the remote down although it is up.
    pub fn clears_marks_since(&self, dead_since: Option<SystemTime>) -> bool {
        dead_since.is_some_and(|since| {
            self.last == Some(Outcome::Pass)
                && self
                    .at
                    .is_some_and(|at| at >= since + Duration::from_secs(1))
        })
    }
}

/// A change of state [`Table::record`] made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Up,
    Down,
}

/// The shared table. Cheap to clone (one mapping).
#[derive(Debug, Clone)]
pub struct Table {
    shared: Arc<SharedAtomics<AtomicU64>>,
}

impl Table {
    /// Maps the table, every remote up and not checked.
    pub fn new() -> io::Result<Table> {
        Ok(Table {
            shared: Arc::new(SharedAtomics::new(word(REMOTE_SLOTS, 0))?),
        })
    }

    /// The epoch: it moves at every change (a relaxed load).
    #[inline]
    pub fn epoch(&self) -> u64 {
        self.shared.get()[EPOCH].load(Ordering::Relaxed)
    }

    /// Orders the reads that follow after the stores the epoch just loaded comes
    /// from.
    #[inline]
    pub fn acquire(&self) {
        fence(Ordering::Acquire);
    }

    /// Remote slot `slot`'s health (up and unchecked for slot 0 and beyond the
    /// table). After a new [`Table::epoch`], call [`Table::acquire`] once first.
    pub fn read(&self, slot: usize) -> Health {
        if slot == 0 || slot >= REMOTE_SLOTS {
            return Health::default();
        }
        let words = self.shared.get();
        let load = |offset: usize| words[word(slot, offset)].load(Ordering::Relaxed);
        let state = load(STATE);
        let millis = load(AT);
        let changed = load(CHANGED);
        let mut counts = [0; 7];
        for (i, count) in counts.iter_mut().enumerate() {
            *count = load(COUNTS + i);
        }
        Health {
            down: state & DOWN != 0,
            checked: state & CHECKED != 0,
            last: Outcome::from_code((state >> 8) & 0xff),
            streak: (state >> 32) as u32,
            duration: Duration::from_micros(load(DURATION)),
            at: word_time(millis),
            changed: word_time(changed),
            counts,
        }
    }

    /// Records a check's `outcome` for remote slot `slot` (the checker only), with
    /// the hysteresis of its check: an up remote goes down after `fall` failures
    /// in a row, a down one up after `rise` passes in a row. The transition it
    /// made, if any. Nothing for slot 0 or beyond the table.
    pub fn record(
        &self,
        slot: usize,
        outcome: Outcome,
        duration: Duration,
        at: SystemTime,
        rise: u32,
        fall: u32,
    ) -> Option<Transition> {
        if slot == 0 || slot >= REMOTE_SLOTS {
            return None;
        }
        let before = self.read(slot);
        let pass = outcome == Outcome::Pass;
        let same = before.last.is_some_and(|l| (l == Outcome::Pass) == pass);
        let streak = if same {
            before.streak.saturating_add(1)
        } else {
            1
        };
        let down = if pass {
            before.down && streak < rise.max(1)
        } else {
            before.down || streak >= fall.max(1)
        };
        let words = self.shared.get();
        let state = (u64::from(streak) << 32)
            | (outcome.code() << 8)
            | CHECKED
            | if down { DOWN } else { 0 };
        let micros = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
        let millis = time_word(at);
        words[word(slot, STATE)].store(state, Ordering::Relaxed);
        words[word(slot, DURATION)].store(micros, Ordering::Relaxed);
        words[word(slot, AT)].store(millis, Ordering::Relaxed);
        if down != before.down {
            words[word(slot, CHANGED)].store(millis, Ordering::Relaxed);
        }
        let count = &words[word(slot, COUNTS + outcome.code() as usize - 1)];
        count.store(
            count.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        );
        self.bump();
        match (before.down, down) {
            (true, false) => Some(Transition::Up),
            (false, true) => Some(Transition::Down),
            _ => None,
        }
    }

    /// Makes remote slot `slot` up and not checked, its counts zero (the master,
    /// for a remote new to the plan or one whose check was removed). False for
    /// slot 0 or beyond the table.
    pub fn reset(&self, slot: usize) -> bool {
        if slot == 0 || slot >= REMOTE_SLOTS {
            return false;
        }
        let words = self.shared.get();
        for offset in 0..WORDS {
            words[word(slot, offset)].store(0, Ordering::Relaxed);
        }
        self.bump();
        true
    }

    fn bump(&self) {
        // A locked add: the master's reset and a checker's record may meet.
        self.shared.get()[EPOCH].fetch_add(1, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn at(millis: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(millis)
    }

    #[test]
    fn a_remote_starts_up_and_unchecked() {
        let table = Table::new().unwrap();
        let health = table.read(7);
        assert!(!health.down && !health.checked);
        assert_eq!(health.last, None);
        assert_eq!(health.passes(), 0);
    }

    #[test]
    fn fall_failures_take_it_down_and_rise_passes_bring_it_up() {
        let table = Table::new().unwrap();
        let ms = Duration::from_millis(3);
        let (rise, fall) = (2, 3);
        let e0 = table.epoch();
        assert_eq!(
            table.record(5, Outcome::Timeout, ms, at(1_000), rise, fall),
            None
        );
        assert_ne!(table.epoch(), e0, "every record moves the epoch");
        assert_eq!(
            table.record(5, Outcome::Refused, ms, at(2_000), rise, fall),
            None
        );
        // A pass in between starts the count of failures again.
        assert_eq!(
            table.record(5, Outcome::Pass, ms, at(3_000), rise, fall),
            None
        );
        assert_eq!(
            table.record(5, Outcome::Refused, ms, at(4_000), rise, fall),
            None
        );
        assert_eq!(
            table.record(5, Outcome::Refused, ms, at(5_000), rise, fall),
            None
        );
        assert!(!table.read(5).down);
        assert_eq!(
            table.record(5, Outcome::Mismatch, ms, at(6_000), rise, fall),
            Some(Transition::Down)
        );
        table.acquire();
        let health = table.read(5);
        assert!(health.down && health.checked);
        assert_eq!(health.last, Some(Outcome::Mismatch));
        assert_eq!(health.streak, 3);
        assert_eq!(health.duration, ms);
        assert_eq!(health.at, Some(at(6_000)));
        assert_eq!(health.changed, Some(at(6_000)), "when it went down");
        assert_eq!(health.counts, [1, 3, 1, 0, 1, 0, 0]);
        assert_eq!(
            table.record(5, Outcome::Closed, ms, at(7_000), rise, fall),
            None
        );
        assert_eq!(
            table.record(5, Outcome::Pass, ms, at(8_000), rise, fall),
            None
        );
        assert!(table.read(5).down, "one pass is not `rise`");
        assert_eq!(table.read(5).changed, Some(at(6_000)), "no change since");
        assert_eq!(
            table.record(5, Outcome::Pass, ms, at(9_000), rise, fall),
            Some(Transition::Up)
        );
        assert_eq!(
            table.record(5, Outcome::Pass, ms, at(9_500), rise, fall),
            None
        );
        let health = table.read(5);
        assert!(!health.down);
        assert_eq!((health.passes(), health.streak), (4, 3));
        assert_eq!(health.changed, Some(at(9_000)), "when it came up");
        assert_eq!(table.read(4), Health::default(), "its neighbours untouched");
        assert_eq!(table.read(6), Health::default());
    }

    #[test]
    fn a_reset_makes_a_slot_new_and_slot_0_is_never_checked() {
        let table = Table::new().unwrap();
        for _ in 0..3 {
            table.record(9, Outcome::Tls, Duration::ZERO, at(1), 1, 1);
        }
        assert!(table.read(9).down);
        assert!(table.reset(9));
        assert_eq!(table.read(9), Health::default());
        let e0 = table.epoch();
        assert_eq!(
            table.record(0, Outcome::Refused, Duration::ZERO, at(1), 1, 1),
            None
        );
        assert_eq!(
            table.record(REMOTE_SLOTS, Outcome::Refused, Duration::ZERO, at(1), 1, 1),
            None
        );
        assert!(!table.reset(0));
        assert_eq!(table.epoch(), e0);
        assert_eq!(table.read(0), Health::default());
        assert_eq!(table.read(usize::MAX), Health::default());
        assert_eq!(
            table.record(
                REMOTE_SLOTS - 1,
                Outcome::Refused,
                Duration::ZERO,
                at(1),
                1,
                1
            ),
            Some(Transition::Down),
            "the last slot is in the table"
        );
    }

    #[test]
    fn a_check_passed_after_a_dead_mark_clears_it() {
        let table = Table::new().unwrap();
        let mark = Some(at(1_000_000));
        let record = |outcome, millis| {
            table.record(1, outcome, Duration::ZERO, at(millis), 1, 1);
            table.read(1)
        };
        assert!(!Health::default().clears_marks_since(mark), "not checked");
        assert!(
            !record(Outcome::Pass, 1_000_900).clears_marks_since(mark),
            "within the mark's second: maybe before it"
        );
        assert!(record(Outcome::Pass, 1_001_000).clears_marks_since(mark));
        assert!(!table.read(1).clears_marks_since(None), "no mark");
        assert!(
            !record(Outcome::Refused, 1_002_000).clears_marks_since(mark),
            "the last check failed"
        );
    }

    #[test]
    fn outcomes_have_distinct_codes_and_names() {
        for (i, o) in Outcome::ALL.iter().enumerate() {
            assert_eq!(Outcome::from_code(o.code()), Some(*o));
            assert_eq!(o.code(), i as u64 + 1);
        }
        assert_eq!(Outcome::from_code(0), None);
        assert_eq!(Outcome::from_code(8), None);
        let names: std::collections::HashSet<_> = Outcome::ALL.iter().map(|o| o.name()).collect();
        assert_eq!(names.len(), Outcome::ALL.len());
    }

    #[test]
    fn the_table_is_shared_with_a_forked_process() {
        let table = Table::new().unwrap();
        let e0 = table.epoch();
        let there = table.clone();
        let status = crate::sys::testing::in_child(|| {
            there.record(
                11,
                Outcome::Timeout,
                Duration::from_micros(1500),
                at(42),
                2,
                1,
            );
        })
        .expect("fork");
        assert_eq!(status.exit_status(), Some(0));
        assert_ne!(table.epoch(), e0, "the child's record is seen here");
        table.acquire();
        let health = table.read(11);
        assert!(health.down);
        assert_eq!(health.last, Some(Outcome::Timeout));
        assert_eq!(health.duration, Duration::from_micros(1500));
        assert_eq!(health.at, Some(at(42)));
    }
}
