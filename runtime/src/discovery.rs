//! The remotes found by DNS (`Relay::discovered`), relay wide: a shared anonymous
//! mapping made by the master for each generation before it forks the
//! generation's processes (like `steering` and `health`), written by the master
//! alone from what the resolver process (`crate::resolver`) reports, read by the
//! generation's workers at each selection.
//!
//! The table is a list of entries that only grows within a generation: an entry
//! is one address of one discovered name (`ADDRESS:PORT` of the name's
//! [`tcprelay_plan::Discovered`] at index `name`), appended when the address is
//! first found and never moved, so a worker appends it after the plan's remotes
//! (its index there never changes). An address that leaves the name's set is
//! *retired* (no new session; the sessions it has go on), and joins again, in the
//! same entry, when it comes back.
//!
//! Layout, in 64-bit words (relaxed atomics; one writer, the master):
//!
//! ```text
//! word 0               epoch: one more at every change
//! word 1               entries published (the master stores an entry's words,
//!                      then this count, then the epoch)
//! word 2 + 4*entry     state: bit 0 set while the address is in its name's set,
//!   (+0)               bit 1 for an IPv6 address, bits 32-63 the weight (the
//!                      template's, or the SRV record's)
//!   +1                 bits 0-31 the `stats` remote slot, 32-47 the port,
//!                      48-63 the index of the discovered name in the plan
//!   +2, +3             the address: IPv4 in the low 32 bits of +3, IPv6 as 128
//!                      bits, +2 the high half
//! ```
//!
//! A worker looks at the epoch at each selection (one relaxed load) and reads the
//! table again only when it moved, fencing with acquire ordering first.

use crate::sys::shared::SharedAtomics;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::sync::Arc;

/// The most entries of a generation: past them, a new address found is logged
/// and left out until a reload starts a new table.
pub const ENTRIES: usize = 4096;
const EPOCH: usize = 0;
const COUNT: usize = 1;
const WORDS: usize = 4;
const LIVE: u64 = 1;
const V6: u64 = 1 << 1;

fn at(entry: usize, offset: usize) -> usize {
    2 + WORDS * entry + offset
}

/// One address of a discovered name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The discovered name's index in `Relay::discovered`.
    pub name: usize,
    pub address: SocketAddr,
    /// Its weight (at least 1).
    pub weight: u32,
    /// In its name's set now (else retired: no new session).
    pub live: bool,
    /// Its `stats` remote slot (0: the overflow slot).
    pub slot: usize,
}

/// The shared table. Cheap to clone (one mapping).
#[derive(Debug, Clone)]
pub struct Table {
    shared: Arc<SharedAtomics<AtomicU64>>,
}

impl Table {
    /// Maps an empty table.
    pub fn new() -> io::Result<Table> {
        Ok(Table {
            shared: Arc::new(SharedAtomics::new(at(ENTRIES, 0))?),
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

    /// The entries published. After a new [`Table::epoch`], call
    /// [`Table::acquire`] once first.
    pub fn entries(&self) -> usize {
        let count = self.shared.get()[COUNT].load(Ordering::Relaxed);
        usize::try_from(count).map_or(ENTRIES, |c| c.min(ENTRIES))
    }

    /// Entry `index` (`None` past the entries published).
    pub fn read(&self, index: usize) -> Option<Entry> {
        if index >= self.entries() {
            return None;
        }
        let words = self.shared.get();
        let state = words[at(index, 0)].load(Ordering::Relaxed);
        let fixed = words[at(index, 1)].load(Ordering::Relaxed);
        let high = words[at(index, 2)].load(Ordering::Relaxed);
        let low = words[at(index, 3)].load(Ordering::Relaxed);
        let ip = if state & V6 != 0 {
            IpAddr::V6(Ipv6Addr::from((u128::from(high) << 64) | u128::from(low)))
        } else {
            IpAddr::V4(Ipv4Addr::from(low as u32))
        };
        Some(Entry {
            name: (fixed >> 48) as usize,
            address: SocketAddr::new(ip, (fixed >> 32) as u16),
            weight: ((state >> 32) as u32).max(1),
            live: state & LIVE != 0,
            slot: (fixed & 0xffff_ffff) as usize,
        })
    }

    /// Appends `entry` (the master only) and moves the epoch; its index, or `None`
    /// when the table is full (or the name's index does not fit).
    pub fn push(&self, entry: Entry) -> Option<usize> {
        let index = self.entries();
        if index >= ENTRIES || entry.name > 0xffff {
            return None;
        }
        let words = self.shared.get();
        let (v6, high, low) = match entry.address.ip() {
            IpAddr::V4(ip) => (0, 0, u64::from(u32::from(ip))),
            IpAddr::V6(ip) => {
                let bits = u128::from(ip);
                (V6, (bits >> 64) as u64, bits as u64)
            }
        };
        let fixed = (entry.slot as u64 & 0xffff_ffff)
            | (u64::from(entry.address.port()) << 32)
            | ((entry.name as u64) << 48);
        words[at(index, 0)].store(state(entry.live, entry.weight) | v6, Ordering::Relaxed);
        words[at(index, 1)].store(fixed, Ordering::Relaxed);
        words[at(index, 2)].store(high, Ordering::Relaxed);
        words[at(index, 3)].store(low, Ordering::Relaxed);
        words[COUNT].store(index as u64 + 1, Ordering::Relaxed);
        self.bump();
        Some(index)
    }

    /// Sets entry `index`'s membership and weight (the master only); true when it
    /// changed (then the epoch moved).
    pub fn set(&self, index: usize, live: bool, weight: u32) -> bool {
        if index >= self.entries() {
            return false;
        }
        let word = &self.shared.get()[at(index, 0)];
        let old = word.load(Ordering::Relaxed);
        let new = state(live, weight) | (old & V6);
        if new == old {
            return false;
        }
        word.store(new, Ordering::Relaxed);
        self.bump();
        true
    }

    fn bump(&self) {
        let epoch = &self.shared.get()[EPOCH];
        epoch.store(
            epoch.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Release,
        );
    }
}

fn state(live: bool, weight: u32) -> u64 {
    (u64::from(weight.max(1)) << 32) | u64::from(live)
}

/// What a publication changed, for the master's log.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub added: Vec<SocketAddr>,
    pub retired: Vec<SocketAddr>,
    /// Addresses found that the table had no room for.
    pub left_out: Vec<SocketAddr>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.retired.is_empty() && self.left_out.is_empty()
    }
}

/// The master's side of a table: which entry holds which (name, address).
#[derive(Debug)]
pub struct Publisher {
    table: Table,
    keys: Vec<(usize, SocketAddr)>,
}

impl Publisher {
    pub fn new(table: Table) -> Publisher {
        Publisher {
            table,
            keys: Vec::new(),
        }
    }

    pub fn table(&self) -> &Table {
        &self.table
    }

    /// Makes `set` (addresses and weights) name `name`'s membership: addresses
    /// new to the table are appended with the slot `slot_of` gives them, those of
    /// the name not in `set` are retired, the others joined again with their
    /// weight.
    pub fn publish(
        &mut self,
        name: usize,
        set: &[(SocketAddr, u32)],
        mut slot_of: impl FnMut(SocketAddr) -> usize,
    ) -> Changes {
        let mut changes = Changes::default();
        for (index, &(n, address)) in self.keys.iter().enumerate() {
            if n != name {
                continue;
            }
            let found = set.iter().find(|(a, _)| *a == address);
            let was = self.table.read(index).is_some_and(|e| e.live);
            match found {
                Some(&(_, weight)) => {
                    self.table.set(index, true, weight);
                    if !was {
                        changes.added.push(address);
                    }
                }
                None => {
                    if self.table.set(index, false, 1) && was {
                        changes.retired.push(address);
                    }
                }
            }
        }
        for &(address, weight) in set {
            if self.keys.contains(&(name, address)) {
                continue;
            }
            if self.keys.len() >= ENTRIES {
                changes.left_out.push(address);
                continue;
            }
            let entry = Entry {
                name,
                address,
                weight,
                live: true,
                slot: slot_of(address),
            };
            match self.table.push(entry) {
                Some(_) => {
                    self.keys.push((name, address));
                    changes.added.push(address);
                }
                None => changes.left_out.push(address),
            }
        }
        changes
    }

    /// The entries now (for the control socket and metrics).
    pub fn entries(&self) -> Vec<Entry> {
        (0..self.table.entries())
            .filter_map(|i| self.table.read(i))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_entry_reads_back_as_written_v4_and_v6() {
        let table = Table::new().unwrap();
        assert_eq!(table.entries(), 0);
        assert_eq!(table.read(0), None);
        let e0 = table.epoch();
        let a = Entry {
            name: 3,
            address: addr("10.1.2.3:8080"),
            weight: 7,
            live: true,
            slot: 42,
        };
        let b = Entry {
            name: 65535,
            address: addr("[2001:db8::1:2]:65535"),
            weight: u32::MAX,
            live: false,
            slot: 4095,
        };
        assert_eq!(table.push(a), Some(0));
        assert_eq!(table.push(b), Some(1));
        assert_ne!(table.epoch(), e0);
        table.acquire();
        assert_eq!(table.entries(), 2);
        assert_eq!(table.read(0), Some(a));
        assert_eq!(table.read(1), Some(b));
        assert_eq!(table.push(Entry { name: 65536, ..a }), None, "name too big");
    }

    #[test]
    fn set_changes_membership_and_weight_and_moves_the_epoch_only_on_change() {
        let table = Table::new().unwrap();
        let entry = Entry {
            name: 0,
            address: addr("[::1]:53"),
            weight: 1,
            live: true,
            slot: 1,
        };
        table.push(entry);
        let e = table.epoch();
        assert!(!table.set(0, true, 1), "no change");
        assert_eq!(table.epoch(), e);
        assert!(table.set(0, false, 1));
        assert_ne!(table.epoch(), e);
        let read = table.read(0).unwrap();
        assert!(!read.live);
        assert_eq!(read.address, entry.address, "the family kept");
        assert!(table.set(0, true, 9));
        assert_eq!(table.read(0).unwrap().weight, 9);
        assert!(!table.set(5, true, 1), "past the entries");
    }

    #[test]
    fn publish_appends_new_addresses_retires_gone_ones_and_never_reorders() {
        let mut p = Publisher::new(Table::new().unwrap());
        let mut next = 10;
        let mut slot = |_| {
            next += 1;
            next
        };
        let a = addr("10.0.0.1:80");
        let b = addr("10.0.0.2:80");
        let c = addr("10.0.0.3:80");
        let changes = p.publish(0, &[(a, 1), (b, 1)], &mut slot);
        assert_eq!(changes.added, [a, b]);
        // Another name with the same address has its own entry.
        assert_eq!(p.publish(1, &[(a, 5)], &mut slot).added, [a]);
        let changes = p.publish(0, &[(c, 2), (b, 3)], &mut slot);
        assert_eq!(changes.added, [c]);
        assert_eq!(changes.retired, [a]);
        let entries = p.entries();
        let view: Vec<_> = entries
            .iter()
            .map(|e| (e.name, e.address, e.weight, e.live, e.slot))
            .collect();
        assert_eq!(
            view,
            [
                (0, a, 1, false, 11),
                (0, b, 3, true, 12),
                (1, a, 5, true, 13),
                (0, c, 2, true, 14),
            ]
        );
        // Back again: the same entry, live; nothing appended.
        let changes = p.publish(0, &[(a, 1), (b, 3), (c, 2)], &mut slot);
        assert_eq!(changes.added, [a]);
        assert!(changes.retired.is_empty());
        assert_eq!(p.entries().len(), 4);
        assert!(p.entries()[0].live);
        // The same set again changes nothing, not even the epoch.
        let e = p.table().epoch();
        assert!(p
            .publish(0, &[(a, 1), (b, 3), (c, 2)], &mut slot)
            .is_empty());
        assert_eq!(p.table().epoch(), e);
    }

    #[test]
    fn a_full_table_leaves_new_addresses_out() {
        let mut p = Publisher::new(Table::new().unwrap());
        let set: Vec<_> = (0..ENTRIES as u32 + 2)
            .map(|i| (SocketAddr::from((Ipv4Addr::from(0x0a00_0000 + i), 80)), 1))
            .collect();
        let changes = p.publish(0, &set, |_| 1);
        assert_eq!(changes.added.len(), ENTRIES);
        assert_eq!(
            changes.left_out,
            set[ENTRIES..].iter().map(|s| s.0).collect::<Vec<_>>()
        );
    }

    #[test]
    fn the_table_is_shared_with_a_forked_process() {
        let table = Table::new().unwrap();
        let there = table.clone();
        let e0 = table.epoch();
        let status = crate::sys::testing::in_child(|| {
            there.push(Entry {
                name: 1,
                address: addr("127.0.0.9:9"),
                weight: 2,
                live: true,
                slot: 5,
            });
        })
        .expect("fork");
        assert_eq!(status.exit_status(), Some(0));
        assert_ne!(table.epoch(), e0);
        table.acquire();
        assert_eq!(table.read(0).unwrap().address, addr("127.0.0.9:9"));
    }
}
