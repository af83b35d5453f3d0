//! The operators' steering of remotes (`tcprelay ctl drain|enable|weight`), relay
//! wide: a shared anonymous mapping made by the master before the first fork (like
//! `board` and `stats`), written by the master alone, read by every worker.
//!
//! Layout, in 64-bit words (relaxed atomics; one writer, the master):
//!
//! ```text
//! word 0            epoch: one more at every change
//! word 1 + 2*slot   state of remote slot `slot`: bits 0-31 the weight override,
//!                   bit 32 set when there is one (else the plan's weight counts),
//!                   bit 33 set when the remote is drained
//! word 2 + 2*slot   when that state last changed, in milliseconds since the Unix
//!                   epoch (0: never)
//! ```
//!
//! A remote's slot is its `stats` remote slot ([`crate::stats::Slots::remotes`]):
//! a remote that stays in a reloaded plan keeps it, and so keeps its steering
//! (the master clears it when the new plan changes the remote's weight). Slot 0,
//! where the remotes beyond [`crate::stats::REMOTE_SLOTS`] count together, is never
//! steered.
//!
//! A worker looks at the epoch (one relaxed load) at each selection and reads its
//! remotes' words again only when it moved: the master stores the words, then the
//! epoch with release ordering; a worker that sees the new epoch fences with
//! acquire ordering before reading them.

use crate::stats::REMOTE_SLOTS;
use crate::sys::shared::{time_word, word_time, SharedAtomics};
use std::io;
use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

const EPOCH: usize = 0;
const WEIGHT_MASK: u64 = 0xffff_ffff;
const WEIGHT_SET: u64 = 1 << 32;
const DRAINED: u64 = 1 << 33;

fn state_at(slot: usize) -> usize {
    1 + 2 * slot
}

fn changed_at(slot: usize) -> usize {
    2 + 2 * slot
}

/// One remote's steering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Admin {
    /// `drain`ed: it gets no new session (those it has go on).
    pub drained: bool,
    /// `weight`: replaces the plan's weight (0: only when no other remote can take
    /// the session).
    pub weight: Option<u32>,
    /// When the state last changed (`None`: never).
    pub changed: Option<SystemTime>,
}

/// The shared table. Cheap to clone (one mapping).
#[derive(Debug, Clone)]
pub struct Table {
    shared: Arc<SharedAtomics<AtomicU64>>,
}

impl Table {
    /// Maps the table, every remote enabled with its plan's weight.
    pub fn new() -> io::Result<Table> {
        Ok(Table {
            shared: Arc::new(SharedAtomics::new(changed_at(REMOTE_SLOTS - 1) + 1)?),
        })
    }

    /// The epoch: it moves at every change (a relaxed load).
    #[inline]
    pub fn epoch(&self) -> u64 {
        self.shared.get()[EPOCH].load(Ordering::Relaxed)
    }

    /// Remote slot `slot`'s steering. After a new [`Table::epoch`], call
    /// [`Table::acquire`] once before reading.
    pub fn read(&self, slot: usize) -> Admin {
        let words = self.shared.get();
        if slot == 0 || slot >= REMOTE_SLOTS {
            return Admin::default();
        }
        let state = words[state_at(slot)].load(Ordering::Relaxed);
        let millis = words[changed_at(slot)].load(Ordering::Relaxed);
        Admin {
            drained: state & DRAINED != 0,
            weight: (state & WEIGHT_SET != 0).then_some((state & WEIGHT_MASK) as u32),
            changed: word_time(millis),
        }
    }

    /// Orders the reads that follow after the master's stores that the epoch just
    /// loaded comes from.
    #[inline]
    pub fn acquire(&self) {
        fence(Ordering::Acquire);
    }

    /// Sets remote slot `slot`'s steering (the master only) and moves the epoch.
    /// False, changing nothing, for slot 0 (the overflow) or beyond the table.
    pub fn write(&self, slot: usize, admin: Admin) -> bool {
        if slot == 0 || slot >= REMOTE_SLOTS {
            return false;
        }
        let words = self.shared.get();
        let state = admin.weight.map_or(0, |w| WEIGHT_SET | u64::from(w))
            | if admin.drained { DRAINED } else { 0 };
        let millis = admin.changed.map_or(0, time_word);
        words[state_at(slot)].store(state, Ordering::Relaxed);
        words[changed_at(slot)].store(millis, Ordering::Relaxed);
        let epoch = words[EPOCH].load(Ordering::Relaxed);
        words[EPOCH].store(epoch.wrapping_add(1), Ordering::Release);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn a_write_is_read_back_and_moves_the_epoch() {
        let table = Table::new().unwrap();
        assert_eq!(table.read(5), Admin::default());
        let e0 = table.epoch();
        let at = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let admin = Admin {
            drained: true,
            weight: Some(u32::MAX),
            changed: Some(at),
        };
        assert!(table.write(5, admin));
        assert_ne!(table.epoch(), e0);
        table.acquire();
        assert_eq!(table.read(5), admin);
        assert_eq!(table.read(4), Admin::default(), "its neighbours untouched");
        assert_eq!(table.read(6), Admin::default());
        let admin = Admin {
            drained: false,
            weight: Some(0),
            changed: Some(at),
        };
        table.write(5, admin);
        assert_eq!(table.read(5), admin, "a weight of 0 is an override too");
        table.write(5, Admin::default());
        assert_eq!(table.read(5), Admin::default());
    }

    #[test]
    fn the_overflow_slot_and_slots_past_the_table_are_never_steered() {
        let table = Table::new().unwrap();
        let e0 = table.epoch();
        let drained = Admin {
            drained: true,
            ..Admin::default()
        };
        assert!(!table.write(0, drained));
        assert!(!table.write(REMOTE_SLOTS, drained));
        assert!(table.write(REMOTE_SLOTS - 1, drained));
        assert_eq!(table.epoch(), e0.wrapping_add(1));
        assert_eq!(table.read(0), Admin::default());
        assert_eq!(table.read(REMOTE_SLOTS), Admin::default());
        assert_eq!(table.read(usize::MAX), Admin::default());
        assert!(table.read(REMOTE_SLOTS - 1).drained);
    }

    #[test]
    fn the_table_is_shared_with_a_forked_process() {
        let table = Table::new().unwrap();
        let e0 = table.epoch();
        let admin = Admin {
            drained: true,
            weight: Some(3),
            changed: Some(UNIX_EPOCH + Duration::from_secs(1_800_000_000)),
        };
        let there = table.clone();
        let status = crate::sys::testing::in_child(|| {
            there.write(9, admin);
        })
        .expect("fork");
        assert_eq!(status.exit_status(), Some(0));
        assert_ne!(table.epoch(), e0, "the child's change is seen here");
        table.acquire();
        assert_eq!(table.read(9), admin);
    }
}
