//! Client affinity, relay wide (the family's `sticky cache`): which remote, and
//! which worker, a client address went to last. An anonymous shared mapping made
//! by the master before the first fork (like `steering` and `health`), written and
//! read by every worker: any worker finds the choice another one made
//! (docs/sticky.md).
//!
//! The table holds [`CAPACITY`] entries, [`WAYS`] to a bucket, as address space
//! only: pages become resident where entries are written. A plan's sticky caches
//! get regions of it ([`layout`]): the spawnd section's (relay-wide, for the
//! listeners without their own) first, then each listener's own, in plan order.
//! The same plan reloaded gets the same regions, so its entries survive a reload;
//! another plan's regions may overlap what an old generation still writes, which
//! costs entries, never a wrong answer (below).
//!
//! An entry is three 64-bit words:
//!
//! ```text
//! +0  tag:   the key (a keyed hash of the client's IP address and the listener's
//!            port, never 0); 0 for an empty entry
//! +1  value: bits 0-15 the remote's `stats` slot, bits 16-31 the worker's board
//!            seat + 1 (0: none), bits 32-47 the worker's generation (its low 16
//!            bits), bits 48-63 the tag's low 16 bits (a check)
//! +2  when the entry was last used, in milliseconds since the Unix epoch
//! ```
//!
//! Lookups and updates are approximate, as the original's cache: a bucket is an
//! LRU of [`WAYS`] entries by last-use time, not the whole region (a region of
//! `size` entries forgets its least recently used entry only among the [`WAYS`]
//! that share a bucket, and holds `size` rounded up to a multiple of [`WAYS`]).
//!
//! Concurrent writers (workers) use relaxed atomics and a seqlock-like order: a
//! writer stores the tag 0, then (release fence) the value and the time, then the
//! tag with release ordering; a reader loads the tag with acquire ordering, the
//! value and time, fences with acquire ordering and loads the tag again, and takes
//! the entry only when both tags are its key. Two writers of the same entry at once
//! may leave one's tag with the other's value: the value's copy of the tag's low 16
//! bits then differs (but for one chance in 65,536) and the lookup misses. A time
//! from the other writer is as recent as its own. The value names a remote slot
//! and a seat, which the worker checks against its own plan and the remotes' state
//! before it uses them: the worst a stale or torn entry can do is send a client to
//! another live remote, as a miss would.

use crate::sys::shared::{time_word, SharedAtomics};
use std::hash::{BuildHasher, RandomState};
use std::io;
use std::net::IpAddr;
use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Entries in a bucket.
pub const WAYS: usize = 8;
/// Entries in the table: four regions of the largest size a plan may give one.
pub const CAPACITY: usize = 4 * tcprelay_plan::MAX_STICKY_SIZE as usize;
const BUCKETS: usize = CAPACITY / WAYS;
const WORDS: usize = 3;
const TAG: usize = 0;
const VALUE: usize = 1;
const USED: usize = 2;

/// A sticky cache's part of the table: its buckets and how long an entry lives
/// after its last use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    first: usize,
    buckets: usize,
    period: Duration,
}

impl Region {
    /// Entries the region holds.
    pub fn entries(&self) -> usize {
        self.buckets * WAYS
    }

    /// How long an entry lives after its last use.
    pub fn period(&self) -> Duration {
        self.period
    }
}

/// The regions of a plan's sticky caches: for each listener (plan order) the one
/// its clients use (its own, else the relay-wide one, else none), and whether the
/// caches had to be made smaller to fit the table (then each got its share).
pub fn layout(
    relay: Option<tcprelay_plan::Sticky>,
    listeners: &[Option<tcprelay_plan::Sticky>],
) -> (Vec<Option<Region>>, bool) {
    let caches: Vec<tcprelay_plan::Sticky> = relay
        .into_iter()
        .chain(listeners.iter().flatten().copied())
        .collect();
    let wanted: Vec<usize> = caches
        .iter()
        .map(|s| (s.size.max(1) as usize).div_ceil(WAYS))
        .collect();
    let total: usize = wanted.iter().sum();
    let shrunk = total > BUCKETS;
    let mut first = 0;
    let regions: Vec<Region> = caches
        .iter()
        .zip(&wanted)
        .map(|(sticky, &buckets)| {
            let buckets = if shrunk {
                (buckets * BUCKETS / total).max(1)
            } else {
                buckets
            };
            let region = Region {
                first: first.min(BUCKETS - 1),
                buckets: buckets.min(BUCKETS - first.min(BUCKETS - 1)),
                period: Duration::from_secs(u64::from(sticky.period_s)),
            };
            first += buckets;
            region
        })
        .collect();
    let shared = relay.map(|_| regions[0]);
    let mut own = regions.iter().skip(usize::from(relay.is_some()));
    let per_listener = listeners
        .iter()
        .map(|l| match l {
            Some(_) => own.next().copied(),
            None => shared,
        })
        .collect();
    (per_listener, shrunk)
}

/// What an entry says: where the client went last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The remote's `stats` slot (kept across reloads).
    pub remote_slot: u16,
    /// The board seat of the worker that served it (`None`: a worker without one).
    pub seat: Option<u16>,
    /// That worker's generation, its low 16 bits.
    pub generation: u16,
}

impl Entry {
    fn encode(self, key: u64) -> u64 {
        u64::from(self.remote_slot)
            | u64::from(self.seat.map_or(0, |s| s.saturating_add(1))) << 16
            | u64::from(self.generation) << 32
            | (key & 0xffff) << 48
    }

    fn decode(value: u64) -> Entry {
        let seat = (value >> 16) as u16;
        Entry {
            remote_slot: value as u16,
            seat: seat.checked_sub(1),
            generation: (value >> 32) as u16,
        }
    }
}

/// A client's key: its address and the listener's port, hashed with the table's
/// secret keys (a client cannot choose addresses that share a bucket).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key(u64);

/// The shared table. Cheap to clone (one mapping).
#[derive(Debug, Clone)]
pub struct Table {
    shared: Arc<SharedAtomics<AtomicU64>>,
    /// The hash's keys, chosen by the master and inherited by its workers.
    hasher: RandomState,
}

impl Table {
    /// Maps the table, every entry empty.
    pub fn new() -> io::Result<Table> {
        Ok(Table {
            shared: Arc::new(SharedAtomics::new(CAPACITY * WORDS)?),
            hasher: RandomState::new(),
        })
    }

    /// The key of a client at `ip` (an IPv4-mapped IPv6 address is its IPv4
    /// address) on a listener at `port`.
    pub fn key(&self, ip: IpAddr, port: u16) -> Key {
        let octets = match ip.to_canonical() {
            IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
            IpAddr::V6(v6) => v6.octets(),
        };
        Key(self.hasher.hash_one((octets, port)).max(1))
    }

    /// The entries of `key`'s bucket in `region`.
    fn bucket(&self, region: &Region, key: Key) -> &[AtomicU64] {
        let bucket = region.first + ((key.0 >> 32) as usize) % region.buckets.max(1);
        let start = bucket.min(BUCKETS - 1) * WAYS * WORDS;
        &self.shared.get()[start..start + WAYS * WORDS]
    }

    /// `key`'s entry in `region`, unless there is none, it was last used more
    /// than the region's period before `now`, or it was torn by two writers.
    pub fn lookup(&self, region: &Region, key: Key, now: SystemTime) -> Option<Entry> {
        let way = self
            .bucket(region, key)
            .chunks_exact(WORDS)
            .find(|way| way[TAG].load(Ordering::Acquire) == key.0)?;
        let value = way[VALUE].load(Ordering::Relaxed);
        let used = way[USED].load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        if way[TAG].load(Ordering::Relaxed) != key.0
            || value >> 48 != key.0 & 0xffff
            || expired(used, region.period, now)
        {
            return None;
        }
        Some(Entry::decode(value))
    }

    /// Records `entry` for `key` in `region`, used at `now`: in `key`'s entry if it
    /// has one, else an empty one of its bucket, else its least recently used.
    pub fn record(&self, region: &Region, key: Key, entry: Entry, now: SystemTime) {
        let bucket = self.bucket(region, key);
        let mine = bucket
            .chunks_exact(WORDS)
            .find(|w| w[TAG].load(Ordering::Relaxed) == key.0)
            .or_else(|| {
                // An expired entry is older than any live one: the least
                // recently used goes first (an empty one before all).
                bucket
                    .chunks_exact(WORDS)
                    .min_by_key(|w| match w[TAG].load(Ordering::Relaxed) {
                        0 => 0,
                        _ => w[USED].load(Ordering::Relaxed),
                    })
            });
        let Some(way) = mine else {
            return;
        };
        way[TAG].store(0, Ordering::Relaxed);
        fence(Ordering::Release);
        way[VALUE].store(entry.encode(key.0), Ordering::Relaxed);
        way[USED].store(time_word(now), Ordering::Relaxed);
        way[TAG].store(key.0, Ordering::Release);
    }
}

/// Whether an entry last used at `used` (a time word; 0: never) is older than
/// `period` at `now`.
fn expired(used: u64, period: Duration, now: SystemTime) -> bool {
    let period = u64::try_from(period.as_millis()).unwrap_or(u64::MAX);
    used == 0 || time_word(now) > used.saturating_add(period)
}

#[cfg(test)]
mod tests;
