//! Inventory throughput with two threads, printed as figures:
//! - availability checks per second over 10,000 SKUs (goal ≥ 10 million/s on 2 cores);
//! - hot-SKU reservations (reserve + release) per second on one SKU, with 1 shard and with 8,
//!   and their ratio, in one run.
//!
//! `cargo bench -p benches --bench inventory_throughput`

#![allow(clippy::print_stdout, reason = "a bench binary prints its figures")]
#![allow(clippy::disallowed_methods, reason = "a benchmark measures wall time")]
#![allow(
    clippy::float_arithmetic,
    clippy::cast_precision_loss,
    reason = "rates for display only"
)]

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use benches::ready;
use chrono::TimeDelta;
use commerce_core::testkit::t0;
use commerce_core::{IdempotencyKey, LocationId, Sku};
use inventory::{
    HoldId, HoldStore, InMemoryStockStore, StockConfig, StockKey, StockLevels, StockLine,
    StockMovements,
};

const THREADS: usize = 2;
const RUN: Duration = Duration::from_secs(3);

fn key(sku: &str) -> StockKey {
    StockKey::new(
        Sku::new(sku).expect("sku"),
        LocationId::new("wh-1").expect("location"),
    )
}

/// Runs `work(thread, i)` on `THREADS` threads for `RUN` (50 ms in a smoke run); returns
/// operations per second.
fn throughput(work: impl Fn(usize, u64) + Send + Sync + 'static) -> f64 {
    let run = if std::env::args().any(|a| a == "--bench") {
        RUN
    } else {
        Duration::from_millis(50)
    };
    let work = Arc::new(work);
    let barrier = Arc::new(Barrier::new(THREADS + 1));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (work, barrier) = (work.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let start = Instant::now();
                let mut n = 0u64;
                while start.elapsed() < run {
                    for _ in 0..1_000 {
                        work(t, n);
                        n += 1;
                    }
                }
                n
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    let total: u64 = handles.into_iter().map(|h| h.join().expect("worker")).sum();
    total as f64 / start.elapsed().as_secs_f64()
}

fn hot_sku(shards: usize) -> f64 {
    let store = Arc::new(InMemoryStockStore::new());
    let k = key("FLASH");
    ready(store.configure(
        &k,
        StockConfig {
            shards,
            shards_max: shards,
            ..StockConfig::default()
        },
    ))
    .expect("config");
    let _ = ready(store.receive(
        &IdempotencyKey::new("po").expect("key"),
        &k,
        1_000_000_000,
        t0(),
    ))
    .expect("receive");
    let line = [StockLine {
        key: k,
        quantity: 1,
    }];
    let expires = t0() + TimeDelta::minutes(15);
    throughput(move |t, n| {
        let id = HoldId::new(format!("h-{t}-{n}")).expect("hold id");
        let hold = ready(store.reserve(&id, &line, expires, t0())).expect("reserve");
        let _ = ready(store.release(&hold.id, t0())).expect("release");
    })
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not and gets a short smoke run.
    if !std::env::args().any(|a| a == "--bench") {
        println!("smoke run (use `cargo bench` for figures)");
    }
    let store = Arc::new(InMemoryStockStore::new());
    let keys: Arc<Vec<StockKey>> =
        Arc::new((0..10_000).map(|i| key(&format!("SKU-{i:05}"))).collect());
    for (i, k) in keys.iter().enumerate() {
        ready(store.configure(k, StockConfig::default())).expect("config");
        let po = IdempotencyKey::new(format!("po-{i}")).expect("key");
        let _ = ready(store.receive(&po, k, 100, t0())).expect("receive");
    }
    let (s, ks) = (store.clone(), keys.clone());
    let checks = throughput(move |t, n| {
        let k = &ks[usize::try_from((n * 7_919 + t as u64 * 5_003) % 10_000).unwrap_or(0)];
        black_box(ready(s.available(k, t0())).expect("available"));
    });
    println!(
        "inventory/available_checks_per_sec_2_threads_10k_skus: {:.2} M/s",
        checks / 1e6
    );

    let one = hot_sku(1);
    let eight = hot_sku(8);
    println!(
        "inventory/hot_sku_reserve_release_per_sec_2_threads_1_shard: {:.0} /s",
        one
    );
    println!(
        "inventory/hot_sku_reserve_release_per_sec_2_threads_8_shards: {:.0} /s",
        eight
    );
    println!(
        "inventory/hot_sku_ratio_8_shards_over_1: {:.2}x",
        eight / one
    );
}
