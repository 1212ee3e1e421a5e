//! Real threads against the in-memory store: the last-unit race, and a stress run with a
//! checker (conservation at quiescence, availability never negative, every successful
//! reservation ending in exactly one commit, release or expiry).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Barrier, Mutex};

use chrono::{DateTime, TimeDelta, Utc};
use commerce_core::testkit::t0;
use commerce_core::{IdempotencyKey, LocationId, Sku};
use futures::executor::block_on;
use inventory::*;
use proptest::test_runner::{RngAlgorithm, TestRng};
use rand_like::Rng;

/// A tiny deterministic generator (proptest's seeded RNG), so a failing run can be replayed
/// from its seed.
mod rand_like {
    pub(crate) use proptest::prelude::RngCore as Rng;
}

fn key(sku: &str) -> StockKey {
    StockKey::new(Sku::new(sku).unwrap(), LocationId::new("wh").unwrap())
}

fn stocked(store: &InMemoryStockStore, sku: &str, config: StockConfig, units: i64) -> StockKey {
    let k = key(sku);
    block_on(store.configure(&k, config)).unwrap();
    let _ = block_on(store.receive(
        &IdempotencyKey::new(format!("init-{sku}")).unwrap(),
        &k,
        units,
        t0(),
    ))
    .unwrap();
    k
}

fn last_unit_race(config: StockConfig) {
    let store = Arc::new(InMemoryStockStore::new());
    let k = stocked(&store, "LAST", config, 1);
    let barrier = Arc::new(Barrier::new(100));
    let handles: Vec<_> = (0..100)
        .map(|i| {
            let (store, barrier, k) = (store.clone(), barrier.clone(), k.clone());
            std::thread::spawn(move || {
                let hold = HoldId::new(format!("shopper-{i}")).unwrap();
                barrier.wait();
                block_on(store.reserve(
                    &hold,
                    &[StockLine {
                        key: k,
                        quantity: 1,
                    }],
                    t0() + TimeDelta::minutes(15),
                    t0(),
                ))
                .map(|h| h.id)
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let winners: Vec<&HoldId> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "exactly one shopper gets the last unit");
    let losers = results.iter().filter(|r| {
        matches!(
            r,
            Err(Error::InsufficientStock {
                requested: 1,
                available: 0,
                ..
            })
        )
    });
    assert_eq!(
        losers.count(),
        99,
        "the others get a typed insufficient-stock error"
    );
    let level = block_on(store.level(&k, t0())).unwrap();
    assert_eq!((level.held, level.available), (1, 0));
    // The winner abandons checkout: nothing is left held.
    let _ = block_on(store.release(winners[0], t0())).unwrap();
    let level = block_on(store.level(&k, t0())).unwrap();
    assert_eq!((level.held, level.available), (0, 1));
}

#[test]
fn last_unit_one_shard_100_threads() {
    for _ in 0..20 {
        last_unit_race(StockConfig {
            shards_max: 1,
            ..StockConfig::default()
        });
    }
}

#[test]
fn last_unit_sharded_100_threads() {
    for _ in 0..20 {
        last_unit_race(StockConfig::sharded(8));
    }
}

#[test]
fn sharded_stock_is_never_stranded() {
    // 10 units over 4 shards (3, 3, 2, 2): one hold for all 10 borrows across every shard.
    let store = InMemoryStockStore::new();
    let k = stocked(&store, "BORROW", StockConfig::sharded(4), 10);
    let all = [StockLine {
        key: k.clone(),
        quantity: 10,
    }];
    let h = block_on(store.reserve(
        &HoldId::new("all").unwrap(),
        &all,
        t0() + TimeDelta::minutes(5),
        t0(),
    ))
    .unwrap();
    assert_eq!(block_on(store.available(&k, t0())).unwrap(), 0);
    let _ = block_on(store.release(&h.id, t0())).unwrap();
    // Ten single-unit holds starting on different shards also take everything.
    for i in 0..10 {
        let one = [StockLine {
            key: k.clone(),
            quantity: 1,
        }];
        block_on(store.reserve(
            &HoldId::new(format!("one-{i}")).unwrap(),
            &one,
            t0() + TimeDelta::minutes(5),
            t0(),
        ))
        .unwrap();
    }
    assert_eq!(block_on(store.level(&k, t0())).unwrap().available, 0);
}

#[test]
fn contention_promotes_a_single_shard_sku() {
    let store = Arc::new(InMemoryStockStore::new());
    let k = stocked(
        &store,
        "PROMOTE",
        StockConfig {
            shards: 1,
            shards_max: 8,
            ..StockConfig::default()
        },
        1_000_000,
    );
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..2)
        .map(|t| {
            let (store, k, stop) = (store.clone(), k.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) && n < 2_000_000 {
                    let hold = HoldId::new(format!("p-{t}-{n}")).unwrap();
                    let line = [StockLine {
                        key: k.clone(),
                        quantity: 1,
                    }];
                    let h =
                        block_on(store.reserve(&hold, &line, t0() + TimeDelta::minutes(5), t0()))
                            .unwrap();
                    let _ = block_on(store.release(&h.id, t0())).unwrap();
                    n += 1;
                    if block_on(store.level(&k, t0())).unwrap().shards > 1 {
                        break;
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let level = block_on(store.level(&k, t0())).unwrap();
    assert_eq!(
        level.shards, 8,
        "two threads hammering one shard promote it"
    );
    assert_eq!(
        (level.available, level.held),
        (1_000_000, 0),
        "promotion conserves stock"
    );
}

/// One thread's record of what it did: the holds it got and how each ended.
#[derive(Default)]
struct Ledger {
    reserved: BTreeMap<String, Vec<StockLine>>,
    committed: BTreeMap<String, Vec<StockLine>>,
    released: Vec<String>,
}

fn stress(seed: u64) {
    const THREADS: usize = 4;
    const OPS: usize = 3_000;
    let store = Arc::new(InMemoryStockStore::new());
    let keys = vec![
        stocked(
            &store,
            "HOT-1",
            StockConfig {
                shards_max: 1,
                ..StockConfig::default()
            },
            40,
        ),
        stocked(&store, "HOT-2", StockConfig::sharded(8), 60),
        stocked(
            &store,
            "HOT-3",
            StockConfig {
                shards: 1,
                shards_max: 4,
                ..StockConfig::default()
            },
            25,
        ),
    ];
    // Simulated time in seconds since t0, shared by every thread; it only moves forward.
    let clock = Arc::new(AtomicI64::new(0));
    let now =
        |c: &AtomicI64| -> DateTime<Utc> { t0() + TimeDelta::seconds(c.load(Ordering::SeqCst)) };
    let stop = Arc::new(AtomicBool::new(false));
    let negative_seen = Arc::new(Mutex::new(Vec::new()));

    // A monitor samples availability the whole time: it must never go below zero.
    let monitor = {
        let (store, keys, clock, stop, seen) = (
            store.clone(),
            keys.clone(),
            clock.clone(),
            stop.clone(),
            negative_seen.clone(),
        );
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for k in &keys {
                    let a = block_on(store.available(k, now(&clock))).unwrap();
                    if a < 0 {
                        seen.lock().unwrap().push((k.clone(), a));
                    }
                }
            }
        })
    };
    // A sweeper expires holds as time passes.
    let sweeper = {
        let (store, clock, stop) = (store.clone(), clock.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut expired = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                expired.extend(block_on(store.sweep(now(&clock), 100)).unwrap().expired);
                std::thread::yield_now();
            }
            expired
        })
    };
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (store, keys, clock) = (store.clone(), keys.clone(), clock.clone());
            std::thread::spawn(move || {
                let mut rng = TestRng::from_seed(RngAlgorithm::ChaCha, &{
                    let mut s = [0u8; 32];
                    s[..8].copy_from_slice(&seed.to_le_bytes());
                    s[8] = u8::try_from(t).unwrap();
                    s
                });
                let mut ledger = Ledger::default();
                let mut open: Vec<(HoldId, Vec<StockLine>)> = Vec::new();
                for n in 0..OPS {
                    let roll = rng.next_u32() % 100;
                    if roll < 3 {
                        clock.fetch_add(i64::from(rng.next_u32() % 120), Ordering::SeqCst);
                    }
                    let at = now(&clock);
                    if roll < 55 || open.is_empty() {
                        let lines: Vec<StockLine> = (0..1 + rng.next_u32() % 3)
                            .map(|_| StockLine {
                                key: keys[(rng.next_u32() % 3) as usize].clone(),
                                quantity: i64::from(1 + rng.next_u32() % 3),
                            })
                            .collect();
                        let id = HoldId::new(format!("t{t}-{n}")).unwrap();
                        let ttl = TimeDelta::seconds(60 + i64::from(rng.next_u32() % 600));
                        if let Ok(h) = block_on(store.reserve(&id, &lines, at + ttl, at)) {
                            ledger.reserved.insert(id.to_string(), h.lines.clone());
                            open.push((id, h.lines));
                        }
                    } else {
                        let (id, lines) = open.swap_remove((rng.next_u32() as usize) % open.len());
                        let ended = match rng.next_u32() % 4 {
                            0 => block_on(store.commit(&id, at)).is_ok().then_some(true),
                            1 => (block_on(store.pin(&id, at)).is_ok()
                                && block_on(store.commit(&id, at)).is_ok())
                            .then_some(true),
                            2 => {
                                let _ = block_on(store.release(&id, at)).unwrap();
                                // Releasing a hold the sweeper already expired is a no-op: it
                                // ended by expiry, not by this release.
                                (block_on(store.hold(&id)).unwrap().unwrap().status
                                    == HoldStatus::Released)
                                    .then_some(false)
                            }
                            _ => None, // abandoned: left to expire
                        };
                        match ended {
                            Some(true) => {
                                ledger.committed.insert(id.to_string(), lines);
                            }
                            Some(false) => ledger.released.push(id.to_string()),
                            None => {}
                        }
                    }
                }
                ledger
            })
        })
        .collect();
    let ledgers: Vec<Ledger> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    // Quiescence: move time far past every expiry and sweep until nothing is left.
    // Past every hold's expiry (at most 11 minutes), well inside the 24-hour retention.
    clock.fetch_add(7_200, Ordering::SeqCst);
    stop.store(true, Ordering::Relaxed);
    monitor.join().unwrap();
    let mut expired: Vec<HoldId> = sweeper.join().unwrap();
    loop {
        let more = block_on(store.sweep(now(&clock), 10_000)).unwrap().expired;
        if more.is_empty() {
            break;
        }
        expired.extend(more);
    }
    let end = now(&clock);

    assert!(
        negative_seen.lock().unwrap().is_empty(),
        "seed {seed}: availability went negative: {:?}",
        negative_seen.lock().unwrap()
    );
    let mut committed_units: BTreeMap<StockKey, i64> = BTreeMap::new();
    let mut fates: BTreeMap<String, u32> = BTreeMap::new();
    for l in &ledgers {
        for (id, lines) in &l.committed {
            *fates.entry(id.clone()).or_default() += 1;
            for line in lines {
                *committed_units.entry(line.key.clone()).or_default() += line.quantity;
            }
        }
        for id in &l.released {
            *fates.entry(id.clone()).or_default() += 1;
        }
    }
    let mut expired_ids: Vec<String> = expired.iter().map(ToString::to_string).collect();
    expired_ids.sort();
    let before = expired_ids.len();
    expired_ids.dedup();
    assert_eq!(
        before,
        expired_ids.len(),
        "seed {seed}: a hold was swept twice"
    );
    for id in &expired_ids {
        *fates.entry(id.clone()).or_default() += 1;
    }
    for l in &ledgers {
        for id in l.reserved.keys() {
            let status = block_on(store.hold(&HoldId::new(id).unwrap()))
                .unwrap()
                .unwrap()
                .status;
            // Expired holds may also have expired lazily inside a commit or pin attempt.
            let ended = fates.get(id).copied().unwrap_or(0)
                + u32::from(status == HoldStatus::Expired && !expired_ids.contains(id));
            assert_eq!(
                ended, 1,
                "seed {seed}: hold {id} ended {ended} times (status {status:?})"
            );
            assert!(matches!(
                status,
                HoldStatus::Committed | HoldStatus::Released | HoldStatus::Expired
            ));
        }
    }
    for k in &keys {
        let level = block_on(store.level(k, end)).unwrap();
        assert_eq!(
            level.on_hand,
            level.available + level.held + level.committed,
            "seed {seed}: conservation of {k}"
        );
        assert_eq!(
            level.held, 0,
            "seed {seed}: {k} has {} held at quiescence",
            level.held
        );
        assert_eq!(
            level.committed,
            committed_units.get(k).copied().unwrap_or(0),
            "seed {seed}: committed units of {k}"
        );
        assert!(level.available >= 0, "seed {seed}: oversold {k}");
    }
}

#[test]
fn stress_with_a_checker() {
    let seed = std::env::var("INVENTORY_STRESS_SEED")
        .ok()
        .and_then(|s| s.parse().ok());
    match seed {
        Some(seed) => stress(seed),
        None => {
            for seed in 1..=6 {
                stress(seed);
            }
        }
    }
}

#[test]
fn finished_holds_are_forgotten_after_the_retention_window() {
    let store = InMemoryStockStore::new();
    let k = stocked(&store, "RETAIN", StockConfig::default(), 5);
    let line = [StockLine {
        key: k.clone(),
        quantity: 1,
    }];
    let id = HoldId::new("retained").unwrap();
    let _ = block_on(store.reserve(&id, &line, t0() + TimeDelta::minutes(5), t0())).unwrap();
    let _ = block_on(store.release(&id, t0())).unwrap();
    let _ = block_on(store.sweep(t0() + TimeDelta::hours(23), 100)).unwrap();
    assert_eq!(
        block_on(store.hold(&id)).unwrap().unwrap().status,
        HoldStatus::Released,
        "kept for retries"
    );
    assert!(matches!(
        block_on(store.reserve(
            &id,
            &line,
            t0() + TimeDelta::hours(24),
            t0() + TimeDelta::hours(23)
        )),
        Err(Error::HoldState { .. })
    ));
    let _ = block_on(store.sweep(t0() + TimeDelta::hours(25), 100)).unwrap();
    assert_eq!(
        block_on(store.hold(&id)).unwrap(),
        None,
        "forgotten after 24 hours"
    );
    assert_eq!(block_on(store.level(&k, t0())).unwrap().available, 5);
}

/// Counts, releases, reservations and direct commits racing on one SKU: no shard may hold
/// free units while units are owed (checked inside every snapshot in debug builds), a refused
/// direct commit takes nothing, and one movement key applies once however many threads send it.
#[test]
fn counts_releases_and_direct_commits_race_without_double_promises() {
    for round in 0..200 {
        let store = Arc::new(InMemoryStockStore::new());
        let k = stocked(&store, "RACE", StockConfig::sharded(2), 2);
        let a = HoldId::new("a").unwrap();
        let line = |q| {
            [StockLine {
                key: k.clone(),
                quantity: q,
            }]
        };
        let _ = block_on(store.reserve(&a, &line(1), t0() + TimeDelta::minutes(5), t0())).unwrap();
        let barrier = Arc::new(Barrier::new(4));
        let mut handles = Vec::new();
        {
            let (s, k, b) = (store.clone(), k.clone(), barrier.clone());
            handles.push(std::thread::spawn(move || {
                b.wait();
                let _ = block_on(s.set_on_hand(
                    &IdempotencyKey::new(format!("count-{round}")).unwrap(),
                    &k,
                    0,
                    "count",
                    t0(),
                ));
            }));
        }
        {
            let (s, b, a) = (store.clone(), barrier.clone(), a.clone());
            handles.push(std::thread::spawn(move || {
                b.wait();
                let _ = block_on(s.release(&a, t0()));
            }));
        }
        for t in 0..2 {
            let (s, k, b) = (store.clone(), k.clone(), barrier.clone());
            handles.push(std::thread::spawn(move || {
                b.wait();
                let direct = IdempotencyKey::new("same-order").unwrap();
                let _ = block_on(s.commit_direct(
                    &direct,
                    &[StockLine {
                        key: k.clone(),
                        quantity: 1,
                    }],
                    ShortfallPolicy::Refuse,
                    t0(),
                ));
                let _ = block_on(s.level(&k, t0()));
                let _ = block_on(s.reserve(
                    &HoldId::new(format!("b{t}")).unwrap(),
                    &[StockLine {
                        key: k,
                        quantity: 1,
                    }],
                    t0() + TimeDelta::minutes(5),
                    t0(),
                ));
            }));
        }
        for h in handles {
            h.join().unwrap();
        }
        let level = block_on(store.level(&k, t0())).unwrap();
        assert_eq!(
            level.on_hand,
            level.available + level.held + level.committed,
            "round {round}"
        );
        assert!(
            level.committed <= 1,
            "round {round}: the direct commit applied {} times",
            level.committed
        );
        assert_eq!(
            block_on(store.movements(&k))
                .unwrap()
                .iter()
                .filter(|m| m.reason == "commit_direct")
                .count(),
            usize::try_from(level.committed).unwrap()
        );
    }
}
