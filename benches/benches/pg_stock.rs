//! The hot SKU on PostgreSQL, 16 client connections, in one run:
//! - reservations per second of one SKU on 1 counter row and on 16 (goal ≥ 3× and ≥ 10,000/s
//!   with 16 rows);
//! - availability reads per second of that SKU (summing its rows) while 8 clients reserve it;
//! - `pgbench -N` with 16 clients, the server's own write-transaction rate here, and each
//!   figure's ratio to it.
//!
//! `cargo bench -p benches --features postgres --bench pg_stock`

#![allow(clippy::print_stdout, reason = "a bench binary prints its figures")]
#![allow(clippy::disallowed_methods, reason = "a benchmark measures wall time")]
#![allow(
    clippy::float_arithmetic,
    clippy::cast_precision_loss,
    reason = "rates for display only"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use adapters::postgres::{GroupCommit, PgStockStore};
use benches::pg;
use chrono::TimeDelta;
use commerce_core::testkit::t0;
use commerce_core::{IdempotencyKey, LocationId, Sku};
use inventory::{HoldId, HoldStore, StockConfig, StockKey, StockLevels, StockLine, StockMovements};

const CLIENTS: u64 = 16;

fn key(sku: &str) -> StockKey {
    StockKey::new(
        Sku::new(sku).expect("sku"),
        LocationId::new("wh-1").expect("location"),
    )
}

async fn stocked(store: &PgStockStore, sku: &str, rows: usize) -> StockKey {
    let k = key(sku);
    store
        .configure(&k, StockConfig::sharded(rows))
        .await
        .expect("configure");
    let _ = store
        .receive(
            &IdempotencyKey::new(format!("po-{sku}")).expect("key"),
            &k,
            100_000_000,
            t0(),
        )
        .await
        .expect("receive");
    k
}

/// `clients` tasks reserving one unit of `k` each, under fresh hold ids, for `run`.
async fn reserve_for(
    store: &Arc<PgStockStore>,
    k: &StockKey,
    clients: u64,
    run: Duration,
    tag: &str,
) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let (store, k, done, tag) = (store.clone(), k.clone(), done.clone(), tag.to_owned());
            tokio::spawn(async move {
                let line = [StockLine {
                    key: k.clone(),
                    quantity: 1,
                }];
                let mut i = 0u64;
                while start.elapsed() < run {
                    let id = HoldId::new(format!("{tag}-{c}-{i}")).expect("hold");
                    store
                        .reserve(&id, &line, t0() + TimeDelta::minutes(15), t0())
                        .await
                        .expect("reserve");
                    done.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let run = if pg::measured() {
        Duration::from_secs(8)
    } else {
        println!("smoke run (use `cargo bench` for figures)");
        Duration::from_millis(200)
    };
    // The same reservations with every one in its own transaction (group commit off), then
    // combined (the configuration `PG_GROUP_COMMIT` names, the default otherwise).
    let Some(alone) = pg::fresh_with("bench_pg_stock_alone", 20, GroupCommit::disabled()).await
    else {
        return;
    };
    let store = Arc::new(alone.stock());
    let one = stocked(&store, "HOT-1", 1).await;
    let sixteen = stocked(&store, "HOT-16", 16).await;
    let alone_one = reserve_for(&store, &one, CLIENTS, run, "one").await;
    let alone_sixteen = reserve_for(&store, &sixteen, CLIENTS, run, "sixteen").await;
    alone.close().await;

    let group_commit = pg::group_commit();
    let Some(db) = pg::fresh_with("bench_pg_stock", 20, group_commit.clone()).await else {
        return;
    };
    let store = Arc::new(db.stock());
    let one = stocked(&store, "HOT-1", 1).await;
    let sixteen = stocked(&store, "HOT-16", 16).await;

    let on_one = reserve_for(&store, &one, CLIENTS, run, "one").await;
    let on_sixteen = reserve_for(&store, &sixteen, CLIENTS, run, "sixteen").await;

    // Reads of the hot SKU while half the clients reserve it.
    let reads = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let readers: Vec<_> = (0..CLIENTS / 2)
        .map(|_| {
            let (store, k, reads) = (store.clone(), sixteen.clone(), reads.clone());
            tokio::spawn(async move {
                while start.elapsed() < run {
                    let _ = store.available(&k, t0()).await.expect("available");
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let writes_beside = reserve_for(&store, &sixteen, CLIENTS / 2, run, "beside").await;
    for r in readers {
        r.await.expect("reader");
    }
    let read_rate = reads.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64();
    let level = store.level(&sixteen, t0()).await.expect("level");
    assert_eq!(
        level.on_hand,
        level.available + level.held + level.committed,
        "conservation after the run"
    );

    let secs = u32::try_from(run.as_secs().max(1)).unwrap_or(1);
    // The smoke run skips pgbench (its setup alone takes seconds).
    let tps = if pg::measured() {
        pg::pgbench_tps(16, secs)
    } else {
        None
    };
    println!(
        "hot SKU on PostgreSQL, {CLIENTS} clients, {} s each:",
        run.as_secs_f64()
    );
    println!("  each reservation its own transaction (group commit off):");
    println!("    reservations/s, 1 counter row:   {alone_one:>9.0}");
    println!("    reservations/s, 16 counter rows: {alone_sixteen:>9.0}");
    println!(
        "    16 rows ÷ 1 row:                 {:>9.2}×",
        alone_sixteen / alone_one
    );
    println!(
        "  group commit ({} worker(s), batches of up to {}, unkeyed writes {}):",
        group_commit.workers,
        group_commit.max_batch,
        if group_commit.combine_unkeyed {
            "combined"
        } else {
            "alone"
        }
    );
    println!("  reservations/s, 1 counter row:   {on_one:>9.0}");
    println!("  reservations/s, 16 counter rows: {on_sixteen:>9.0}");
    println!(
        "  16 rows ÷ 1 row:                 {:>9.2}×",
        on_sixteen / on_one
    );
    println!(
        "  availability reads/s (8 clients) beside {writes_beside:.0} reservations/s (8 clients): {read_rate:.0}"
    );
    match tps {
        Some(tps) => {
            println!("  pgbench -N, 16 clients:          {tps:>9.0} tps");
            println!(
                "  16-row reservations ÷ pgbench, group commit off: {:>5.2}",
                alone_sixteen / tps
            );
            println!(
                "  16-row reservations ÷ pgbench:   {:>9.2}",
                on_sixteen / tps
            );
        }
        None => println!("  pgbench -N: not available here"),
    }
    db.close().await;
}
