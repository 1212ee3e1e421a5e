//! Inventory latencies on one thread: an uncontended reserve + commit, a reserve + release on a
//! sharded SKU, and one availability check.
//!
//! `cargo bench -p benches --bench inventory`

#![allow(
    clippy::disallowed_methods,
    reason = "iter_custom measures wall time itself"
)]

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use benches::ready;
use chrono::TimeDelta;
use commerce_core::testkit::t0;
use commerce_core::{IdempotencyKey, LocationId, Sku};
use criterion::{Criterion, criterion_group, criterion_main};
use inventory::{
    HoldId, HoldStore, InMemoryStockStore, StockConfig, StockKey, StockLevels, StockLine,
    StockMovements,
};

fn key(sku: &str) -> StockKey {
    StockKey::new(
        Sku::new(sku).unwrap_or_else(|_| unreachable!("valid sku")),
        LocationId::new("wh-1").unwrap_or_else(|_| unreachable!("valid location")),
    )
}

fn inventory(c: &mut Criterion) {
    let store = InMemoryStockStore::new();
    let plain = key("PLAIN");
    let hot = key("HOT");
    for (k, config) in [
        (&plain, StockConfig::default()),
        (&hot, StockConfig::sharded(8)),
    ] {
        let _ = ready(store.configure(k, config));
        let po = IdempotencyKey::new(format!("po-{}", k.sku)).unwrap_or_else(|_| unreachable!());
        let _ = ready(store.receive(&po, k, 1_000_000_000, t0()));
    }
    // Each sample starts from a fresh store, so the hold registry holds only that sample's
    // holds (a long-running store keeps 24 hours of them).
    let fresh = |sku: &str, config: StockConfig| {
        let store = InMemoryStockStore::new();
        let k = key(sku);
        let _ = ready(store.configure(&k, config));
        let po = IdempotencyKey::new("po").unwrap_or_else(|_| unreachable!());
        let _ = ready(store.receive(&po, &k, 1_000_000_000, t0()));
        (
            store,
            [StockLine {
                key: k,
                quantity: 1,
            }],
        )
    };
    let n = AtomicU64::new(0);
    let expires = t0() + TimeDelta::minutes(15);
    c.bench_function("inventory/reserve_then_commit_uncontended", |b| {
        b.iter_custom(|iters| {
            let (store, line) = fresh("PLAIN", StockConfig::default());
            let ids: Vec<HoldId> = (0..iters)
                .map(|_| {
                    HoldId::new(format!("h-{}", n.fetch_add(1, Ordering::Relaxed)))
                        .unwrap_or_else(|_| unreachable!())
                })
                .collect();
            let start = std::time::Instant::now();
            for id in &ids {
                let hold = ready(store.reserve(id, black_box(&line), expires, t0()));
                let _ = black_box(hold.and_then(|h| ready(store.commit(&h.id, t0()))));
            }
            start.elapsed()
        });
    });
    c.bench_function("inventory/reserve_then_release_8_shards", |b| {
        b.iter_custom(|iters| {
            let (store, line) = fresh("HOT", StockConfig::sharded(8));
            let ids: Vec<HoldId> = (0..iters)
                .map(|_| {
                    HoldId::new(format!("s-{}", n.fetch_add(1, Ordering::Relaxed)))
                        .unwrap_or_else(|_| unreachable!())
                })
                .collect();
            let start = std::time::Instant::now();
            for id in &ids {
                let hold = ready(store.reserve(id, black_box(&line), expires, t0()));
                let _ = black_box(hold.and_then(|h| ready(store.release(&h.id, t0()))));
            }
            start.elapsed()
        });
    });
    c.bench_function("inventory/available_one_check", |b| {
        b.iter(|| ready(store.available(black_box(&plain), t0())));
    });
}

criterion_group!(benches, inventory);
criterion_main!(benches);
