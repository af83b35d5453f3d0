//! The master's side of the counters: which key each slot counts for, the seats
//! alive, and the retired workers' sum.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::hash::Hash;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use tcprelay_plan::{ListenAddress, Plan};

use super::{
    at, Counters, Histogram, ListenerEntry, ListenerSlot, RemoteEntry, RemoteKey, RemoteSlot,
    Shared, Snapshot, Totals, CONNECT_BOUNDS, LISTENER_SLOTS, MASTER_SEAT, REMOTE_SLOTS, SEATS,
    SESSION_BOUNDS,
};
use crate::sys::shared::SharedAtomics;

/// The slots of one plan's listeners and remotes, in the plan's order (what its
/// workers count with), from [`Registry::assign`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Slots {
    /// `listeners[i]` counts for the plan's listener `i`.
    pub listeners: Vec<ListenerSlot>,
    /// `remotes[j]` counts for the plan's remote `j`.
    pub remotes: Vec<RemoteSlot>,
    /// The keys that found no free slot and count in the overflow slots, as
    /// printed (already logged as a warning).
    pub overflowed: Vec<String>,
}

/// How a key got its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Got {
    /// Its own, kept from an earlier plan or never used before.
    Slot(usize),
    /// A slot another key no live plan uses had: its counts must be reset.
    Reused(usize),
    /// None was free: the overflow slot, 0.
    Overflow,
}

/// The slots of one kind (listeners or remotes): slot 0 is the overflow, the
/// others are handed out in order, then reused when they run out.
#[derive(Debug)]
struct Table<K> {
    capacity: usize,
    /// The key of each slot handed out so far (none for the overflow).
    keys: Vec<Option<K>>,
    /// The live plans using each slot.
    users: Vec<u32>,
    by_key: HashMap<K, usize>,
    /// The slots with a key no live plan uses, the longest unused first.
    idle: VecDeque<usize>,
    /// Whether a key ever counted in the overflow slot.
    overflowed: bool,
}

impl<K: Clone + Eq + Hash> Table<K> {
    fn new(capacity: usize) -> Table<K> {
        Table {
            capacity,
            keys: vec![None],
            users: vec![0],
            by_key: HashMap::new(),
            idle: VecDeque::new(),
            overflowed: false,
        }
    }

    /// The slots handed out so far (the overflow's included): no block is written
    /// past them.
    fn high(&self) -> usize {
        self.keys.len()
    }

    /// A slot for `key`, used by one more plan.
    fn take(&mut self, key: &K) -> Got {
        if let Some(&slot) = self.by_key.get(key) {
            if self.users[slot] == 0 {
                self.idle.retain(|&s| s != slot);
            }
            self.users[slot] += 1;
            return Got::Slot(slot);
        }
        if self.keys.len() < self.capacity {
            let slot = self.keys.len();
            self.keys.push(Some(key.clone()));
            self.users.push(1);
            self.by_key.insert(key.clone(), slot);
            return Got::Slot(slot);
        }
        let Some(slot) = self.idle.pop_front() else {
            self.overflowed = true;
            return Got::Overflow;
        };
        if let Some(old) = self.keys[slot].replace(key.clone()) {
            self.by_key.remove(&old);
        }
        self.by_key.insert(key.clone(), slot);
        self.users[slot] = 1;
        Got::Reused(slot)
    }

    /// A plan that used `slot` is gone.
    fn give_back(&mut self, slot: usize) {
        let Some(users) = self.users.get_mut(slot).filter(|_| slot != 0) else {
            return;
        };
        *users = users.saturating_sub(1);
        if *users == 0 && !self.idle.contains(&slot) {
            self.idle.push_back(slot);
        }
    }
}

/// The master's registry of counters: the shared mapping, the key of every slot,
/// the seats alive and the retired workers' sum. Made before the first fork.
pub struct Registry {
    shared: Shared,
    listeners: Table<ListenAddress>,
    remotes: Table<RemoteKey>,
    /// The retired workers' monotonic counts, laid out as a block.
    retired: Vec<u64>,
    /// The seats whose block holds counts not yet folded (the master's always).
    live: Vec<bool>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("listener_slots", &self.listeners.high())
            .field("remote_slots", &self.remotes.high())
            .field("live_seats", &self.live.iter().filter(|l| **l).count())
            .finish()
    }
}

impl Registry {
    /// Maps the counters (every block zero). Shared with the processes forked after.
    pub fn new() -> io::Result<Registry> {
        let shared = Arc::new(SharedAtomics::<AtomicU64>::new(SEATS * at::SEAT)?);
        let mut live = vec![false; SEATS];
        live[MASTER_SEAT] = true;
        Ok(Registry {
            shared,
            listeners: Table::new(LISTENER_SLOTS),
            remotes: Table::new(REMOTE_SLOTS),
            // Zeroed memory from the allocator: untouched pages cost nothing.
            retired: vec![0; at::SEAT],
            live,
        })
    }

    /// Slots for `plan`'s listeners and remotes, before its workers are forked. A
    /// key an earlier plan had keeps its slot (and its counts); a new key gets a
    /// slot never used, or else, with its counts reset, the slot of a key no live
    /// plan uses (the longest unused); or else the overflow slot, with a warning.
    /// Each `assign` must be matched by one [`Registry::release`] once the plan's
    /// last worker is reaped.
    pub fn assign(&mut self, plan: &Plan) -> Slots {
        let listeners: Vec<_> = plan
            .spawnd
            .listeners
            .iter()
            .map(|l| l.address.clone())
            .collect();
        let remotes: Vec<_> = plan.relay.remotes.iter().map(RemoteKey::of).collect();
        self.assign_keys(&listeners, &remotes)
    }

    /// [`Registry::assign`] for a plan with these listeners and remotes.
    pub fn assign_keys(&mut self, listeners: &[ListenAddress], remotes: &[RemoteKey]) -> Slots {
        let mut overflowed = Vec::new();
        let (found, reused) = take_all(&mut self.listeners, listeners, "listener", &mut overflowed);
        for slot in reused {
            self.reset(ListenerSlot(slot).at(0), at::listener::WORDS);
        }
        let listeners = found.into_iter().map(ListenerSlot).collect();
        let (found, reused) = take_all(&mut self.remotes, remotes, "remote", &mut overflowed);
        for slot in reused {
            self.reset(RemoteSlot(slot).at(0), at::remote::WORDS);
        }
        Slots {
            listeners,
            remotes: found.into_iter().map(RemoteSlot).collect(),
            overflowed,
        }
    }

    /// Whether a live plan (or discovery) uses remote `key`'s slot now.
    pub fn remote_in_use(&self, key: &RemoteKey) -> bool {
        self.remotes
            .by_key
            .get(key)
            .is_some_and(|&slot| self.remotes.users[slot] > 0)
    }

    /// The plan `slots` were assigned to is gone (its last worker reaped): keys
    /// no other live plan uses may give their slots to new keys, when no slot
    /// never used is left (those released together in slot order).
    pub fn release(&mut self, slots: &Slots) {
        let listeners: BTreeSet<_> = slots.listeners.iter().map(|s| s.0 as usize).collect();
        for slot in listeners {
            self.listeners.give_back(slot);
        }
        let remotes: BTreeSet<_> = slots.remotes.iter().map(|s| s.0 as usize).collect();
        for slot in remotes {
            self.remotes.give_back(slot);
        }
    }

    /// Zeroes `words` words at `offset` of every block alive and of the retired
    /// sum: a slot passes to a new key.
    fn reset(&mut self, offset: usize, words: usize) {
        self.retired[offset..offset + words].fill(0);
        for (seat, _) in self.live.iter().enumerate().filter(|(_, l)| **l) {
            let start = seat * at::SEAT + offset;
            self.shared.clear(start..start + words, words);
        }
    }

    /// The counters of board seat `index` for the worker about to be forked into
    /// it (`None` past the board). Its block counts from now on until
    /// [`Registry::fold`].
    pub fn seat(&mut self, index: usize) -> Option<Counters> {
        if index >= MASTER_SEAT {
            return None;
        }
        self.live[index] = true;
        Some(Counters {
            shared: self.shared.clone(),
            seat: index,
        })
    }

    /// The master's own counters (what it sheds under overload).
    pub fn master(&self) -> Counters {
        Counters {
            shared: self.shared.clone(),
            seat: MASTER_SEAT,
        }
    }

    /// Where the shared mapping starts (the memory tests find it in smaps).
    #[cfg(test)]
    pub(super) fn mapping_address(&self) -> usize {
        self.shared.get().as_ptr() as usize
    }

    /// The words of a block slots were handed out for.
    fn extent(&self) -> usize {
        self.remotes.high() * at::remote::WORDS + at::REMOTES
    }

    /// Which words of the extent to read: the totals, the listener slots handed
    /// out, the remote slots handed out.
    fn ranges(&self) -> [std::ops::Range<usize>; 3] {
        [
            0..at::totals::WORDS,
            at::LISTENERS..at::LISTENERS + self.listeners.high() * at::listener::WORDS,
            at::REMOTES..self.extent(),
        ]
    }

    /// The worker of board seat `index` was reaped: its monotonic counts join the
    /// retired sum, its gauges and dead marks are dropped, and its block is zeroed
    /// (its pages given back) for the next worker in the seat.
    pub fn fold(&mut self, index: usize) {
        if index >= MASTER_SEAT || !self.live[index] {
            return;
        }
        let start = index * at::SEAT;
        let block = &self.shared.get()[start..start + at::SEAT];
        for range in self.ranges() {
            for offset in range {
                if at::monotonic(offset) {
                    let n = block[offset].load(Ordering::Relaxed);
                    self.retired[offset] = self.retired[offset].wrapping_add(n);
                }
            }
        }
        // Past the extent, no slot was handed out: nothing was written there.
        self.shared.clear(start..start + at::SEAT, self.extent());
        self.live[index] = false;
    }

    /// The counters now: the retired sum plus every block alive.
    pub fn snapshot(&self) -> Snapshot {
        let mut sum = self.retired[..self.extent()].to_vec();
        let mut dead = vec![(0u64, 0u32); self.remotes.high()];
        for (seat, _) in self.live.iter().enumerate().filter(|(_, l)| **l) {
            let start = seat * at::SEAT;
            let block = &self.shared.get()[start..start + at::SEAT];
            for range in self.ranges() {
                for offset in range {
                    let n = block[offset].load(Ordering::Relaxed);
                    sum[offset] = sum[offset].wrapping_add(n);
                }
            }
            for (slot, (earliest, marks)) in dead.iter_mut().enumerate() {
                let since = block[RemoteSlot(slot as u32).at(at::remote::DEAD_SINCE)]
                    .load(Ordering::Relaxed);
                if since != 0 {
                    *marks += 1;
                    *earliest = if *earliest == 0 {
                        since
                    } else {
                        (*earliest).min(since)
                    };
                }
            }
        }
        Snapshot {
            totals: totals(&sum),
            listeners: self.listener_entries(&sum),
            remotes: self.remote_entries(&sum, &dead),
        }
    }

    fn listener_entries(&self, sum: &[u64]) -> Vec<ListenerEntry> {
        let table = &self.listeners;
        (0..table.high())
            .filter(|&slot| slot != 0 || table.overflowed)
            .map(|slot| {
                let at = |field| sum[ListenerSlot(slot as u32).at(field)];
                ListenerEntry {
                    key: table.keys[slot].clone(),
                    in_use: table.users[slot] > 0,
                    accepted: at(at::listener::ACCEPTED),
                    denied: at(at::listener::DENIED),
                    proxy_refused: at(at::listener::PROXY_REFUSED),
                    sni_refused: at(at::listener::SNI_REFUSED),
                    sessions: at(at::listener::SESSIONS),
                    bytes_to_remote: at(at::listener::TO_REMOTE),
                    bytes_to_client: at(at::listener::TO_CLIENT),
                }
            })
            .collect()
    }

    fn remote_entries(&self, sum: &[u64], dead: &[(u64, u32)]) -> Vec<RemoteEntry> {
        let table = &self.remotes;
        (0..table.high())
            .filter(|&slot| slot != 0 || table.overflowed)
            .map(|slot| {
                let start = RemoteSlot(slot as u32).at(0);
                let at = |field| sum[start + field];
                let buckets = at::remote::CONNECT_BUCKETS;
                let (since, marks) = dead[slot];
                RemoteEntry {
                    key: table.keys[slot],
                    in_use: table.users[slot] > 0,
                    sessions: at(at::remote::SESSIONS),
                    connections: at(at::remote::CONNECTIONS),
                    connect_failures: at(at::remote::FAILURES),
                    tls_failures: at(at::remote::TLS_FAILURES),
                    bytes_to_remote: at(at::remote::TO_REMOTE),
                    bytes_to_client: at(at::remote::TO_CLIENT),
                    connect_times: Histogram::new(
                        &CONNECT_BOUNDS,
                        &sum[start + buckets..start + at::remote::WORDS],
                        at(at::remote::CONNECT_SUM),
                    ),
                    dead_since: (since != 0).then(|| UNIX_EPOCH + Duration::from_secs(since)),
                    dead_marks: marks,
                }
            })
            .collect()
    }
}

fn totals(sum: &[u64]) -> Totals {
    use at::totals as t;
    Totals {
        accepted: sum[t::ACCEPTED],
        denied: sum[t::DENIED],
        proxy_refused: sum[t::PROXY_REFUSED],
        sticky_hits: sum[t::STICKY_HITS],
        sticky_misses: sum[t::STICKY_MISSES],
        handoffs_passed: sum[t::HANDOFFS_PASSED],
        handoffs_returned: sum[t::HANDOFFS_RETURNED],
        handoffs_closed: sum[t::HANDOFFS_CLOSED],
        sni_refused: std::array::from_fn(|i| sum[t::SNI_REFUSED + i]),
        shed: sum[t::SHED],
        tls_handshakes: sum[t::TLS_DONE],
        tls_failures: sum[t::TLS_FAILED],
        bytes_to_remote: sum[t::TO_REMOTE],
        bytes_to_client: sum[t::TO_CLIENT],
        sessions: sum[t::SESSIONS],
        durations: Histogram::new(
            &SESSION_BOUNDS,
            &sum[t::DURATION_BUCKETS..t::PROXY_REFUSED],
            sum[t::DURATION_SUM],
        ),
    }
}

/// Slots for `keys` (a key twice in a plan gets one slot, used once), and the
/// slots among them that passed from another key. A key left without a slot is
/// logged and listed in `overflowed`.
fn take_all<K: Clone + Eq + Hash + fmt::Display>(
    table: &mut Table<K>,
    keys: &[K],
    what: &str,
    overflowed: &mut Vec<String>,
) -> (Vec<u32>, Vec<u32>) {
    let mut seen = HashMap::new();
    let mut reused = Vec::new();
    let found = keys
        .iter()
        .map(|key| {
            let slot = seen.entry(key).or_insert_with(|| match table.take(key) {
                Got::Slot(slot) => slot,
                Got::Reused(slot) => {
                    reused.push(slot as u32);
                    slot
                }
                Got::Overflow => {
                    crate::warn!(
                        "{what} {key}: counted with others in an overflow line (at most {} {what}s are counted apart)",
                        table.capacity - 1
                    );
                    overflowed.push(key.to_string());
                    0
                }
            });
            *slot as u32
        })
        .collect();
    (found, reused)
}
