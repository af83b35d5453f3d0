use super::*;
use std::net::{Ipv4Addr, Ipv6Addr};
use tcprelay_plan::Sticky;

fn sticky(period_s: u32, size: u32) -> Sticky {
    Sticky { period_s, size }
}

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
}

fn entry(remote_slot: u16) -> Entry {
    Entry {
        remote_slot,
        seat: Some(3),
        generation: 7,
    }
}

fn at(ms: u64) -> SystemTime {
    std::time::UNIX_EPOCH + Duration::from_millis(1_800_000_000_000 + ms)
}

/// One region of one bucket, with `period_s`.
fn one_bucket(period_s: u32) -> Region {
    let (regions, shrunk) = layout(Some(sticky(period_s, WAYS as u32)), &[None]);
    assert!(!shrunk);
    regions[0].expect("the relay-wide region")
}

#[test]
fn a_recorded_choice_is_found_for_that_address_and_port_only() {
    let table = Table::new().unwrap();
    let (regions, _) = layout(Some(sticky(60, 1024)), &[None]);
    let region = regions[0].unwrap();
    let key = table.key(ip(1), 443);
    assert_eq!(table.lookup(&region, key, at(0)), None, "empty at first");
    table.record(&region, key, entry(12), at(0));
    assert_eq!(table.lookup(&region, key, at(1)), Some(entry(12)));
    assert_eq!(table.lookup(&region, table.key(ip(2), 443), at(1)), None);
    assert_eq!(table.lookup(&region, table.key(ip(1), 444), at(1)), None);
    // A new choice replaces the old one.
    let moved = Entry {
        remote_slot: 4095,
        seat: None,
        generation: u16::MAX,
    };
    table.record(&region, key, moved, at(2));
    assert_eq!(table.lookup(&region, key, at(3)), Some(moved));
}

#[test]
fn an_ipv4_mapped_address_is_its_ipv4_address() {
    let table = Table::new().unwrap();
    let v4 = Ipv4Addr::new(198, 51, 100, 9);
    assert_eq!(
        table.key(IpAddr::V4(v4), 80),
        table.key(IpAddr::V6(v4.to_ipv6_mapped()), 80)
    );
    assert_ne!(
        table.key(IpAddr::V4(v4), 80),
        table.key(IpAddr::V6(Ipv6Addr::LOCALHOST), 80)
    );
}

#[test]
fn an_entry_expires_a_period_after_its_last_use() {
    let table = Table::new().unwrap();
    let region = one_bucket(2);
    let key = table.key(ip(1), 80);
    table.record(&region, key, entry(5), at(0));
    assert_eq!(table.lookup(&region, key, at(2_000)), Some(entry(5)));
    assert_eq!(table.lookup(&region, key, at(2_001)), None, "expired");
    // Each use (a new record) starts the period again.
    table.record(&region, key, entry(5), at(1_500));
    assert_eq!(table.lookup(&region, key, at(3_400)), Some(entry(5)));
    assert_eq!(table.lookup(&region, key, at(3_501)), None);
}

#[test]
fn a_full_bucket_forgets_its_least_recently_used_entry() {
    let table = Table::new().unwrap();
    let region = one_bucket(3600);
    let keys: Vec<Key> = (0..=WAYS as u8 + 1).map(|i| table.key(ip(i), 80)).collect();
    for (i, key) in keys.iter().take(WAYS).enumerate() {
        table.record(&region, *key, entry(i as u16 + 1), at(i as u64));
    }
    for (i, key) in keys.iter().take(WAYS).enumerate() {
        assert_eq!(
            table.lookup(&region, *key, at(100)),
            Some(entry(i as u16 + 1))
        );
    }
    // Key 0 is used again: key 1 is now the least recently used.
    table.record(&region, keys[0], entry(1), at(200));
    table.record(&region, keys[WAYS], entry(100), at(300));
    assert_eq!(table.lookup(&region, keys[1], at(400)), None, "forgotten");
    assert_eq!(table.lookup(&region, keys[0], at(400)), Some(entry(1)));
    assert_eq!(table.lookup(&region, keys[WAYS], at(400)), Some(entry(100)));
    for (i, key) in keys.iter().enumerate().take(WAYS).skip(2) {
        assert_eq!(
            table.lookup(&region, *key, at(400)),
            Some(entry(i as u16 + 1))
        );
    }
}

#[test]
fn the_layout_gives_each_cache_its_own_region_and_shrinks_them_to_fit() {
    let (regions, shrunk) = layout(
        Some(sticky(60, 100)),
        &[None, Some(sticky(5, 9)), None, Some(sticky(7, 1))],
    );
    assert!(!shrunk);
    let relay = regions[0].unwrap();
    assert_eq!(
        regions[2],
        Some(relay),
        "listeners without their own share it"
    );
    assert_eq!(
        (relay.entries(), relay.period()),
        (104, Duration::from_secs(60))
    );
    let own = regions[1].unwrap();
    assert_eq!((own.entries(), own.period()), (16, Duration::from_secs(5)));
    assert_eq!(
        own.first,
        relay.first + relay.buckets,
        "after the relay-wide one"
    );
    let last = regions[3].unwrap();
    assert_eq!(last.first, own.first + own.buckets);
    assert_eq!(last.entries(), WAYS);

    let (regions, _) = layout(None, &[None, Some(sticky(5, 9))]);
    assert_eq!(regions[0], None, "no relay-wide cache: not sticky");
    assert_eq!(regions[1].unwrap().first, 0);

    let max = tcprelay_plan::MAX_STICKY_SIZE;
    let (regions, shrunk) = layout(Some(sticky(1, max)), &[Some(sticky(1, max)); 6]);
    assert!(shrunk, "7 regions of the largest size do not fit");
    let regions: Vec<Region> = regions.into_iter().flatten().collect();
    let end = regions.last().map(|r| r.first + r.buckets).unwrap();
    assert!(end <= BUCKETS, "{end} buckets");
    for pair in regions.windows(2) {
        assert_eq!(pair[1].first, pair[0].first + pair[0].buckets, "no overlap");
        assert_eq!(pair[0].buckets, BUCKETS / 7);
    }
}

/// Two forked processes write and read the same small region at once: every
/// entry found is the one written for its key (a torn entry is a miss, never
/// another key's choice), and what they wrote is seen by the parent.
#[test]
fn concurrent_writers_in_forked_processes_never_give_another_keys_entry() {
    let table = Table::new().unwrap();
    // Two buckets for 64 keys: constant eviction and contention.
    let (regions, _) = layout(Some(sticky(3600, 2 * WAYS as u32)), &[None]);
    let region = regions[0].unwrap();
    let keys: Vec<Key> = (0..64u8).map(|i| table.key(ip(i), 8080)).collect();
    let slot_of = |i: usize| (i as u16 + 1) * 3;
    // Per child: hits, and hits that were another key's.
    let results = Arc::new(SharedAtomics::<AtomicU64>::new(4).unwrap());
    let children: Vec<_> = (0..2u16)
        .map(|child| {
            let (table, keys, results) = (table.clone(), keys.clone(), results.clone());
            std::thread::spawn(move || {
                crate::sys::testing::in_child(|| {
                    let words = results.get();
                    for round in 0..20_000usize {
                        let i = (round * 7 + usize::from(child) * 13) % keys.len();
                        let now = at(round as u64);
                        match table.lookup(&region, keys[i], now) {
                            Some(e) if e.remote_slot == slot_of(i) => {
                                words[2 * usize::from(child)].fetch_add(1, Ordering::Relaxed);
                            }
                            Some(_) => {
                                words[2 * usize::from(child) + 1].fetch_add(1, Ordering::Relaxed);
                            }
                            None => {}
                        }
                        let written = Entry {
                            remote_slot: slot_of(i),
                            seat: Some(child),
                            generation: 1,
                        };
                        table.record(&region, keys[i], written, now);
                    }
                })
                .expect("fork")
            })
        })
        .collect();
    for child in children {
        assert_eq!(child.join().unwrap().exit_status(), Some(0));
    }
    let words = results.get();
    let count = |i: usize| words[i].load(Ordering::Relaxed);
    assert_eq!(
        (count(1), count(3)),
        (0, 0),
        "another key's entry was found"
    );
    assert!(count(0) + count(2) > 0, "some lookups hit");
    let seen = keys
        .iter()
        .enumerate()
        .filter(|(i, k)| {
            table
                .lookup(&region, **k, at(20_000))
                .is_some_and(|e| e.remote_slot == slot_of(*i))
        })
        .count();
    assert!(seen > 0, "the children's entries are seen here");
    assert!(seen <= 2 * WAYS, "at most the region's entries: {seen}");
}

/// What two writers of one entry at once can leave: one's tag over the other's
/// value (the second writer's tag stored last, the first's value after the
/// second's). The lookup of the tag's key misses instead of returning the other
/// key's remote.
#[test]
fn a_torn_entry_is_a_miss_not_another_keys_choice() {
    let table = Table::new().unwrap();
    let region = one_bucket(3600);
    let (a, b) = (table.key(ip(1), 80), table.key(ip(2), 80));
    table.record(&region, a, entry(11), at(0));
    let words = table.bucket(&region, a);
    let way = words
        .chunks_exact(WORDS)
        .find(|w| w[TAG].load(Ordering::Relaxed) == a.0)
        .expect("a's entry");
    way[TAG].store(b.0, Ordering::Release);
    assert_eq!(table.lookup(&region, b, at(1)), None);
    assert_eq!(table.lookup(&region, a, at(1)), None, "a's tag is gone too");
    table.record(&region, b, entry(22), at(2));
    assert_eq!(
        table.lookup(&region, b, at(3)),
        Some(entry(22)),
        "rewritten whole"
    );
}
