//! Counters: what the relay has done since it started, kept across reloads and
//! worker restarts, for the control socket and the metrics endpoint.
//!
//! Like the load board (`board.rs`), the counters live in an anonymous shared
//! mapping made by the master before the first fork, so every worker has it at the
//! same place. The mapping is one block per seat: a seat per board seat, written
//! only by the worker that holds that board seat, and one more for the master
//! ([`MASTER_SEAT`], for the connections it sheds under overload). A block holds the
//! relay's totals, then a slot per listener, then a slot per remote (layout below).
//! One writer per block: a count is a relaxed load and store, no locked instruction
//! and no contention between workers.
//!
//! The master keeps the [`Registry`]: which listener and remote each slot counts
//! for (a listener by its address as printed, a remote by `ADDRESS:PORT/PROTOCOL`),
//! so a remote that stays in a reloaded plan keeps its slot and its counts. When a
//! worker is reaped, the master folds its block into a private sum of the retired
//! workers' counts ([`Registry::fold`]) and zeroes the block: its totals stay, its
//! gauges (sessions now, dead marks) vanish with it. A [`Snapshot`] is that sum plus
//! the blocks of the seats alive.
//!
//! The mapping is large in address space (a block is 768 KiB and there is one per
//! seat, 1,025 of them: 769 MiB), but a page is resident only once a process has
//! touched it: a worker touches the page of the totals and those of the slots it
//! counts in (two or three pages for a relay with a few listeners and remotes, none
//! while it is idle), the master the same pages of the seats alive when it takes a
//! snapshot, and a fold gives a seat's pages back to the system
//! (`SharedAtomics::clear`). Measured in `an_idle_relay_costs_no_memory_and_a_busy_one_a_few_pages`.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tcprelay_plan::{ListenAddress, Protocol};

use crate::sys::shared::SharedAtomics;

mod registry;
#[cfg(test)]
mod tests;

pub use registry::{Registry, Slots};

/// Listener slots per block, the overflow slot (0) included.
pub const LISTENER_SLOTS: usize = 256;
/// Remote slots per block, the overflow slot (0) included.
pub const REMOTE_SLOTS: usize = 4096;
/// The master's own seat: the last one, after the board's seats.
pub const MASTER_SEAT: usize = crate::board::SEATS;
/// Seats in the mapping: one per board seat, and the master's.
pub const SEATS: usize = MASTER_SEAT + 1;

/// The upper bounds (Prometheus's `le`) of the buckets of session durations; a last
/// bucket, `+Inf`, takes the longer ones.
pub const SESSION_BOUNDS: [Duration; 17] = [
    Duration::from_millis(5),
    Duration::from_millis(10),
    Duration::from_millis(25),
    Duration::from_millis(50),
    Duration::from_millis(100),
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_millis(2500),
    Duration::from_secs(5),
    Duration::from_secs(10),
    Duration::from_secs(30),
    Duration::from_secs(60),
    Duration::from_secs(300),
    Duration::from_secs(600),
    Duration::from_secs(1800),
    Duration::from_secs(3600),
];

/// The upper bounds of the buckets of connect times (then `+Inf`).
pub const CONNECT_BOUNDS: [Duration; 13] = [
    Duration::from_millis(1),
    Duration::from_micros(2500),
    Duration::from_millis(5),
    Duration::from_millis(10),
    Duration::from_millis(25),
    Duration::from_millis(50),
    Duration::from_millis(100),
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_millis(2500),
    Duration::from_secs(5),
    Duration::from_secs(10),
];

/// Where each figure is in a seat's block, in 64-bit words. Sums of durations are
/// in microseconds; a histogram's buckets are not cumulative here (one count per
/// observation), [`Snapshot`] makes them so. Gauges are marked: a fold leaves them
/// out of the retired sum.
mod at {
    /// The relay's totals, at the start of the block.
    pub mod totals {
        pub const ACCEPTED: usize = 0;
        pub const DENIED: usize = 1;
        pub const SHED: usize = 2;
        pub const TLS_DONE: usize = 3;
        pub const TLS_FAILED: usize = 4;
        pub const TO_REMOTE: usize = 5;
        pub const TO_CLIENT: usize = 6;
        /// Gauge.
        pub const SESSIONS: usize = 7;
        pub const DURATION_SUM: usize = 8;
        pub const DURATION_BUCKETS: usize = 9;
        /// Connections a PROXY-accepting listener closed (see `proxy_refused`).
        pub const PROXY_REFUSED: usize = DURATION_BUCKETS + super::super::SESSION_BOUNDS.len() + 1;
        /// Clients whose first selection took the remote their sticky entry
        /// named, and those that found none or could not take it.
        pub const STICKY_HITS: usize = PROXY_REFUSED + 1;
        pub const STICKY_MISSES: usize = STICKY_HITS + 1;
        /// Sticky clients the master passed from the worker that accepted them
        /// to the one their entry named (or another with room), gave back to
        /// the worker that accepted them, or closed (no worker could take them).
        pub const HANDOFFS_PASSED: usize = STICKY_MISSES + 1;
        pub const HANDOFFS_RETURNED: usize = HANDOFFS_PASSED + 1;
        pub const HANDOFFS_CLOSED: usize = HANDOFFS_RETURNED + 1;
        /// TLS clients refused before any remote by SNI routing, one word per
        /// reason (`crate::stats::SniRefusal`, in its order).
        pub const SNI_REFUSED: usize = HANDOFFS_CLOSED + 1;
        pub const WORDS: usize = SNI_REFUSED + super::super::SniRefusal::ALL.len();
    }

    /// One listener slot.
    pub mod listener {
        pub const ACCEPTED: usize = 0;
        pub const DENIED: usize = 1;
        /// Gauge.
        pub const SESSIONS: usize = 2;
        pub const TO_REMOTE: usize = 3;
        pub const TO_CLIENT: usize = 4;
        pub const PROXY_REFUSED: usize = 5;
        /// Clients refused by SNI routing (every reason).
        pub const SNI_REFUSED: usize = 6;
        pub const WORDS: usize = 7;
    }

    /// One remote slot.
    pub mod remote {
        /// Gauge.
        pub const SESSIONS: usize = 0;
        pub const CONNECTIONS: usize = 1;
        pub const FAILURES: usize = 2;
        pub const TO_REMOTE: usize = 3;
        pub const TO_CLIENT: usize = 4;
        /// The worker's dead mark: seconds since the epoch, 0 while alive.
        pub const DEAD_SINCE: usize = 5;
        pub const CONNECT_SUM: usize = 6;
        pub const CONNECT_BUCKETS: usize = 7;
        /// TLS handshakes with the remote that failed (`tls = yes` remotes).
        pub const TLS_FAILURES: usize = CONNECT_BUCKETS + super::super::CONNECT_BOUNDS.len() + 1;
        pub const WORDS: usize = TLS_FAILURES + 1;
    }

    /// The listener slots, after the totals (padded to 40 words).
    pub const LISTENERS: usize = 40;
    /// The remote slots, after the listener slots.
    pub const REMOTES: usize = LISTENERS + super::LISTENER_SLOTS * listener::WORDS;
    /// A seat's block, rounded up to 64 KiB so that every block starts on a page
    /// (up to 64 KiB pages) and a fold can give whole pages back.
    pub const SEAT: usize = (REMOTES + super::REMOTE_SLOTS * remote::WORDS).next_multiple_of(8192);

    const _: () = assert!(totals::WORDS <= LISTENERS);

    /// Whether the word at `offset` of a block counts up for good (a fold adds it
    /// to the retired sum), rather than being a gauge or a mark.
    pub fn monotonic(offset: usize) -> bool {
        if offset < LISTENERS {
            offset != totals::SESSIONS
        } else if offset < REMOTES {
            (offset - LISTENERS) % listener::WORDS != listener::SESSIONS
        } else {
            let field = (offset - REMOTES) % remote::WORDS;
            field != remote::SESSIONS && field != remote::DEAD_SINCE
        }
    }
}

/// A listener's slot in every block, given by [`Registry::assign`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenerSlot(u32);

/// A remote's slot in every block, given by [`Registry::assign`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RemoteSlot(u32);

impl ListenerSlot {
    /// The slot counting for listeners beyond [`LISTENER_SLOTS`].
    pub const OVERFLOW: ListenerSlot = ListenerSlot(0);

    fn at(self, field: usize) -> usize {
        at::LISTENERS + self.0 as usize * at::listener::WORDS + field
    }
}

impl RemoteSlot {
    /// The slot counting for remotes beyond [`REMOTE_SLOTS`].
    pub const OVERFLOW: RemoteSlot = RemoteSlot(0);

    /// The slot numbered `index` (what [`RemoteSlot::index`] gave; the overflow
    /// beyond the table), as `crate::discovery` publishes it.
    pub fn from_index(index: usize) -> RemoteSlot {
        RemoteSlot(
            u32::try_from(index)
                .ok()
                .filter(|&i| (i as usize) < REMOTE_SLOTS)
                .unwrap_or(0),
        )
    }

    /// The slot's number (0 the overflow), as `crate::steering` indexes it.
    pub fn index(self) -> usize {
        self.0 as usize
    }

    fn at(self, field: usize) -> usize {
        at::REMOTES + self.0 as usize * at::remote::WORDS + field
    }
}

/// What a remote slot counts for: its address and protocol, `ADDRESS:PORT/PROTOCOL`
/// as printed (`[::1]:80/TCP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RemoteKey {
    pub address: SocketAddr,
    pub protocol: Protocol,
}

impl RemoteKey {
    /// The key of a plan's remote.
    pub fn of(remote: &tcprelay_plan::Remote) -> RemoteKey {
        RemoteKey {
            address: remote.address,
            protocol: remote.protocol,
        }
    }
}

impl fmt::Display for RemoteKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.protocol)
    }
}

/// The shared mapping: [`SEATS`] blocks of [`at::SEAT`] words.
type Shared = Arc<SharedAtomics<AtomicU64>>;

/// Adds `n` to a word only this process writes: a relaxed load and store, which
/// lose nothing with one writer and cost no locked instruction.
#[inline]
fn add(word: &AtomicU64, n: u64) {
    word.store(
        word.load(Ordering::Relaxed).wrapping_add(n),
        Ordering::Relaxed,
    );
}

/// The `N` words of a block from `start` (a listener's or a remote's slot), if
/// the block holds them.
#[inline]
fn slot<const N: usize>(block: &[AtomicU64], start: usize) -> Option<&[AtomicU64; N]> {
    block.get(start..start.checked_add(N)?)?.try_into().ok()
}

/// Takes one from a gauge only this process writes.
#[inline]
fn take_one(word: &AtomicU64) {
    word.store(
        word.load(Ordering::Relaxed).wrapping_sub(1),
        Ordering::Relaxed,
    );
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The bucket of `d` among `bounds` (`bounds.len()` is `+Inf`): the first whose
/// bound is at least `d`, as Prometheus's `le` says.
#[inline]
fn bucket(bounds: &[Duration], d: Duration) -> usize {
    bounds.partition_point(|bound| *bound < d)
}

/// A worker's (or the master's) handle on its seat's block: what the session code
/// counts with. Cheap to clone; each count is a few relaxed loads and stores.
///
/// One writer per seat: only the process the master gave the seat to counts with
/// it (a worker after its fork; the master with [`Registry::master`]), from one
/// thread. Slots come from the same [`Registry`]'s [`Registry::assign`].
#[derive(Clone)]
pub struct Counters {
    shared: Shared,
    seat: usize,
}

impl fmt::Debug for Counters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Counters")
            .field("seat", &self.seat)
            .finish()
    }
}

impl Counters {
    fn block(&self) -> &[AtomicU64] {
        let start = self.seat * at::SEAT;
        &self.shared.get()[start..start + at::SEAT]
    }

    /// A connection taken from `listener`'s queue (the ACL not yet applied).
    pub fn accepted(&self, listener: ListenerSlot) {
        let block = self.block();
        add(&block[at::totals::ACCEPTED], 1);
        add(&block[listener.at(at::listener::ACCEPTED)], 1);
    }

    /// An accepted connection the ACL refused.
    pub fn denied(&self, listener: ListenerSlot) {
        let block = self.block();
        add(&block[at::totals::DENIED], 1);
        add(&block[listener.at(at::listener::DENIED)], 1);
    }

    /// A connection of a PROXY-accepting listener closed without being relayed: a
    /// peer not trusted to send headers, a bad or missing header, or its timeout.
    pub fn proxy_refused(&self, listener: ListenerSlot) {
        let block = self.block();
        add(&block[at::totals::PROXY_REFUSED], 1);
        add(&block[listener.at(at::listener::PROXY_REFUSED)], 1);
    }

    /// A TLS client refused by SNI routing before any remote, for `why`.
    pub fn sni_refused(&self, listener: ListenerSlot, why: SniRefusal) {
        let block = self.block();
        add(&block[at::totals::SNI_REFUSED + why as usize], 1);
        add(&block[listener.at(at::listener::SNI_REFUSED)], 1);
    }

    /// A client's first selection with a sticky cache: `hit` when it took the
    /// remote the client's entry named.
    pub fn sticky(&self, hit: bool) {
        let at = if hit {
            at::totals::STICKY_HITS
        } else {
            at::totals::STICKY_MISSES
        };
        add(&self.block()[at], 1);
    }

    /// A sticky client's hand-off through the master (see [`Handoff`]).
    pub fn handoff(&self, how: Handoff) {
        let at = match how {
            Handoff::Passed => at::totals::HANDOFFS_PASSED,
            Handoff::Returned => at::totals::HANDOFFS_RETURNED,
            Handoff::Closed => at::totals::HANDOFFS_CLOSED,
        };
        add(&self.block()[at], 1);
    }

    /// A connection the master accepted and closed or reset under overload.
    pub fn shed(&self) {
        add(&self.block()[at::totals::SHED], 1);
    }

    /// A TLS handshake that completed (`ok`) or failed.
    pub fn tls_handshake(&self, ok: bool) {
        let word = if ok {
            at::totals::TLS_DONE
        } else {
            at::totals::TLS_FAILED
        };
        add(&self.block()[word], 1);
    }

    /// A session from `listener` now relays to `remote`. Pair it with one
    /// [`Counters::session_closed`] for the same slots.
    pub fn session_opened(&self, listener: ListenerSlot, remote: RemoteSlot) {
        let block = self.block();
        add(&block[at::totals::SESSIONS], 1);
        add(&block[listener.at(at::listener::SESSIONS)], 1);
        add(&block[remote.at(at::remote::SESSIONS)], 1);
    }

    /// A session opened with [`Counters::session_opened`] has ended, `duration`
    /// after it began.
    pub fn session_closed(&self, listener: ListenerSlot, remote: RemoteSlot, duration: Duration) {
        let block = self.block();
        take_one(&block[at::totals::SESSIONS]);
        take_one(&block[listener.at(at::listener::SESSIONS)]);
        take_one(&block[remote.at(at::remote::SESSIONS)]);
        add(&block[at::totals::DURATION_SUM], micros(duration));
        let b = bucket(&SESSION_BOUNDS, duration);
        add(&block[at::totals::DURATION_BUCKETS + b], 1);
    }

    /// A connection to `remote` established, `connect_time` after it was started.
    pub fn connected(&self, remote: RemoteSlot, connect_time: Duration) {
        let block = self.block();
        add(&block[remote.at(at::remote::CONNECTIONS)], 1);
        add(
            &block[remote.at(at::remote::CONNECT_SUM)],
            micros(connect_time),
        );
        let b = bucket(&CONNECT_BOUNDS, connect_time);
        add(&block[remote.at(at::remote::CONNECT_BUCKETS + b)], 1);
    }

    /// A connection to `remote` that failed (refused, unreachable, timed out).
    pub fn connect_failed(&self, remote: RemoteSlot) {
        add(&self.block()[remote.at(at::remote::FAILURES)], 1);
    }

    /// A TLS handshake with `remote` that failed (an alert, a certificate refused, a
    /// timeout): an attempt that failed after its TCP connect.
    pub fn remote_tls_failed(&self, remote: RemoteSlot) {
        add(&self.block()[remote.at(at::remote::TLS_FAILURES)], 1);
    }

    /// Bytes relayed by a session from `listener` to `remote`: `to_remote` from
    /// the client to the remote, `to_client` back.
    ///
    /// Counted after every run that moved bytes: the listener's and the remote's
    /// words are taken as one slot each (one bounds check a slot, rather than one
    /// a word).
    #[inline]
    pub fn bytes(
        &self,
        listener: ListenerSlot,
        remote: RemoteSlot,
        to_remote: u64,
        to_client: u64,
    ) {
        let block = self.block();
        let (Some(listener), Some(remote)) = (
            slot::<{ at::listener::WORDS }>(block, listener.at(0)),
            slot::<{ at::remote::WORDS }>(block, remote.at(0)),
        ) else {
            debug_assert!(false, "a counters slot beyond the block");
            return;
        };
        add(&block[at::totals::TO_REMOTE], to_remote);
        add(&block[at::totals::TO_CLIENT], to_client);
        add(&listener[at::listener::TO_REMOTE], to_remote);
        add(&listener[at::listener::TO_CLIENT], to_client);
        add(&remote[at::remote::TO_REMOTE], to_remote);
        add(&remote[at::remote::TO_CLIENT], to_client);
    }

    /// This worker holds `remote` dead since `since` (a time before the epoch
    /// counts as its first second).
    pub fn mark_dead(&self, remote: RemoteSlot, since: SystemTime) {
        let secs = since
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            .max(1);
        self.block()[remote.at(at::remote::DEAD_SINCE)].store(secs, Ordering::Relaxed);
    }

    /// This worker holds `remote` alive again.
    pub fn alive(&self, remote: RemoteSlot) {
        self.block()[remote.at(at::remote::DEAD_SINCE)].store(0, Ordering::Relaxed);
    }
}

/// A histogram as Prometheus shows one: cumulative buckets, the last `+Inf`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Histogram {
    /// `(le, observations at most le)`; `le` is `None` for `+Inf`, whose count is
    /// [`Histogram::count`].
    pub buckets: Vec<(Option<Duration>, u64)>,
    /// The sum of the observations (to the microsecond).
    pub sum: Duration,
}

impl Histogram {
    /// From `bounds` and the per-bucket counts (`bounds.len() + 1` of them).
    fn new(bounds: &[Duration], counts: &[u64], sum_micros: u64) -> Histogram {
        let mut total = 0u64;
        let buckets = bounds
            .iter()
            .map(Some)
            .chain([None])
            .zip(counts)
            .map(|(le, n)| {
                total = total.wrapping_add(*n);
                (le.copied(), total)
            })
            .collect();
        Histogram {
            buckets,
            sum: Duration::from_micros(sum_micros),
        }
    }

    /// How many observations.
    pub fn count(&self) -> u64 {
        self.buckets.last().map_or(0, |(_, n)| *n)
    }
}

/// What became of a sticky client a worker handed to the master.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handoff {
    /// Passed to another worker.
    Passed,
    /// Given back to the worker that accepted it: no other could take it.
    Returned,
    /// Closed: no worker could take it, nor did it arrive whole.
    Closed,
}

/// Why SNI routing refused a TLS client (docs/sni.md): the counters' reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SniRefusal {
    /// Its first byte was not a TLS handshake record (a listener with `tls = yes`).
    NotTls = 0,
    /// Its ClientHello named no server, and there is no default route.
    NoSni,
    /// No route has the name, and there is no default route.
    UnknownSni,
    /// A malformed ClientHello, one over the size cap, or a connection closed
    /// before a whole one.
    BadHello,
    /// No whole ClientHello within the `tls handshake timeout`.
    Timeout,
}

impl SniRefusal {
    pub const ALL: [SniRefusal; 5] = [
        SniRefusal::NotTls,
        SniRefusal::NoSni,
        SniRefusal::UnknownSni,
        SniRefusal::BadHello,
        SniRefusal::Timeout,
    ];

    /// Its name in the metrics' `reason` label and in `ctl status`.
    pub fn name(self) -> &'static str {
        match self {
            SniRefusal::NotTls => "not_tls",
            SniRefusal::NoSni => "no_sni",
            SniRefusal::UnknownSni => "unknown_sni",
            SniRefusal::BadHello => "bad_client_hello",
            SniRefusal::Timeout => "timeout",
        }
    }
}

/// The relay's totals in a [`Snapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Totals {
    /// Connections taken from the listeners' queues (denied ones included).
    pub accepted: u64,
    /// Of those, refused by the ACL.
    pub denied: u64,
    /// Closed or reset by the master under overload.
    pub shed: u64,
    /// Closed by PROXY-accepting listeners (untrusted peer, bad header, timeout).
    pub proxy_refused: u64,
    /// First selections of sticky clients that took their entry's remote, and
    /// those that did not (no entry, expired, or its remote unavailable).
    pub sticky_hits: u64,
    pub sticky_misses: u64,
    /// Sticky clients handed over through the master (see [`Handoff`]).
    pub handoffs_passed: u64,
    pub handoffs_returned: u64,
    pub handoffs_closed: u64,
    /// TLS clients refused by SNI routing, by reason ([`SniRefusal::ALL`]'s order).
    pub sni_refused: [u64; 5],
    pub tls_handshakes: u64,
    pub tls_failures: u64,
    pub bytes_to_remote: u64,
    pub bytes_to_client: u64,
    /// Sessions now (a gauge: the workers alive).
    pub sessions: u64,
    pub durations: Histogram,
}

/// A listener's figures in a [`Snapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerEntry {
    /// Its address; `None` for the overflow slot (listeners beyond the capacity).
    pub key: Option<ListenAddress>,
    /// Whether a live generation's plan has it.
    pub in_use: bool,
    pub accepted: u64,
    pub denied: u64,
    /// Closed for the PROXY protocol (untrusted peer, bad header, timeout).
    pub proxy_refused: u64,
    /// TLS clients refused by SNI routing (every reason).
    pub sni_refused: u64,
    pub sessions: u64,
    pub bytes_to_remote: u64,
    pub bytes_to_client: u64,
}

/// A remote's figures in a [`Snapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteEntry {
    /// Its address and protocol; `None` for the overflow slot.
    pub key: Option<RemoteKey>,
    /// Whether a live generation's plan has it.
    pub in_use: bool,
    pub sessions: u64,
    /// Connections established.
    pub connections: u64,
    pub connect_failures: u64,
    /// TLS handshakes with it that failed (`tls = yes` remotes).
    pub tls_failures: u64,
    pub bytes_to_remote: u64,
    pub bytes_to_client: u64,
    pub connect_times: Histogram,
    /// The earliest dead mark among the workers alive that hold it dead (to the
    /// second); `None` when none does.
    pub dead_since: Option<SystemTime>,
    /// How many workers alive hold it dead.
    pub dead_marks: u32,
}

/// The counters at one moment: the retired workers' totals plus the seats alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub totals: Totals,
    /// In slot order (the overflow slot first, when it was used).
    pub listeners: Vec<ListenerEntry>,
    /// In slot order (the overflow slot first, when it was used).
    pub remotes: Vec<RemoteEntry>,
}
