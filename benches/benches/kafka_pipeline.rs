//! The event bus on the broker (`KAFKA_BROKERS`, tansu in CI) and PostgreSQL, in one run:
//! - the broker's limit on this box: the SDK's idempotent producer publishing straight to
//!   six partitions, 64 publishes of 250 events in flight;
//! - the relay: the same number of events from the PostgreSQL outbox to the broker (claim,
//!   publish, delete), one relay and two at once; as a ratio of the limit;
//! - the consumer: the six partitions read back through the event-log port;
//! - freshness end to end: prices changed in the PostgreSQL catalog at a paced rate (1,000
//!   and 5,000 changes/s asked, 16 writers over 2,000 products) → outbox → relay → broker →
//!   search indexer on its own thread; per change, the time from its commit to the first
//!   moment the index holds that version or a later one (p50/p99), the rate the catalog
//!   achieved, and every product at its last version at the end.
//!
//! `cargo bench -p benches --features kafka --bench kafka_pipeline`

#![allow(clippy::print_stdout, reason = "a bench binary prints its figures")]
#![allow(clippy::disallowed_methods, reason = "a benchmark measures wall time")]
#![allow(
    clippy::float_arithmetic,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap,
    reason = "rates, percentiles and small counters, for display only"
)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use adapters::kafka::{
    Family, KafkaConfig, KafkaPartitionLog, KafkaPublisher, OutboxRelay, RelayConfig,
};
use adapters::postgres::Postgres;
use benches::pg;
use chrono::{TimeZone, Utc};
use commerce_core::testkit::sample_product;
use commerce_core::{
    CatalogStore, Currency, DomainEvent, EventEnvelope, EventId, EventLog, EventPublisher,
    LocationId, Money, PriceScope, Product, ProductId, Sku,
};
use search::{Indexer, SearchIndex, Storage, TenantConfig, TenantId};

fn stock_events(prefix: &str, n: usize) -> Vec<EventEnvelope> {
    let at = Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap();
    (0..n)
        .map(|i| {
            EventEnvelope::new(
                EventId::new(format!("{prefix}-{i}")).unwrap(),
                at,
                DomainEvent::InventoryChanged {
                    sku: Sku::new(format!("SKU-{}", i % 500)).unwrap(),
                    location: LocationId::new("wh").unwrap(),
                    on_hand: i as i64,
                    available: i as i64,
                },
            )
        })
        .collect()
}

async fn broker(prefix: &str) -> Option<KafkaConfig> {
    let brokers = std::env::var("KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".to_owned());
    let mut config = KafkaConfig::new(brokers.clone()).with_prefix(prefix);
    // tansu 0.6 answers a fetch from inside a batch with the next batch.
    config.whole_batch_fetch = std::env::var("KAFKA_WHOLE_BATCH_FETCH").map_or(true, |v| v != "0");
    config.read_wait = Duration::from_millis(100);
    match tokio::time::timeout(Duration::from_secs(20), config.ensure_topics()).await {
        Ok(Ok(())) => Some(config),
        other => {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true");
            assert!(!ci, "a Kafka broker is required under CI=true: {other:?}");
            println!("skipped: no Kafka broker at {brokers}; set KAFKA_BROKERS");
            None
        }
    }
}

/// Publishes `events` in chunks of 250 with up to 64 chunks in flight; events/s.
async fn publish_all(publisher: &KafkaPublisher, events: &[EventEnvelope]) -> f64 {
    let start = Instant::now();
    let chunks: Vec<_> = events.chunks(250).collect();
    for wave in chunks.chunks(64) {
        let sends = wave.iter().map(|c| publisher.publish(c));
        for r in futures::future::join_all(sends).await {
            r.unwrap();
        }
    }
    events.len() as f64 / start.elapsed().as_secs_f64()
}

/// Drains the outbox with `relays` relays at once; events/s.
async fn relay_all(pg: &Postgres, config: &KafkaConfig, relays: usize, n: usize) -> f64 {
    let relays: Vec<Arc<OutboxRelay>> = (0..relays)
        .map(|_| {
            Arc::new(OutboxRelay::new(
                pg.clone(),
                KafkaPublisher::new(config).unwrap(),
                RelayConfig {
                    lanes_per_pass: 16 / relays,
                    ..RelayConfig::default()
                },
            ))
        })
        .collect();
    let start = Instant::now();
    let tasks: Vec<_> = relays
        .iter()
        .map(|r| {
            let r = Arc::clone(r);
            tokio::spawn(async move {
                while r.lag().await.unwrap().pending > 0 {
                    r.relay_once().await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

/// Paced price changes for `secs` at `rate`/s over `products`, measured end to end.
/// `tag` names this run's products (each run writes products of its own).
async fn freshness(
    pg: &Postgres,
    config: &KafkaConfig,
    tag: u64,
    rate: u64,
    secs: u64,
    products: usize,
) {
    let index = Arc::new(
        SearchIndex::create(
            TenantId::new("bench").unwrap(),
            TenantConfig::new(&[Currency::EUR]),
            Storage::Ram,
        )
        .unwrap(),
    );
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let indexer = {
        let (index, config, stop) = (Arc::clone(&index), config.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let topic = config.topics.topic(Family::Catalog);
                let logs = KafkaPartitionLog::all(&config, &topic, 6).unwrap();
                let logs: Vec<&dyn EventLog> = logs.iter().map(|l| l as &dyn EventLog).collect();
                let stopped = async {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                };
                Indexer::new(&index, 2_000)
                    .run_partitions(&logs, stopped)
                    .await
                    .unwrap();
            });
        })
    };
    let relay = Arc::new(OutboxRelay::new(
        pg.clone(),
        KafkaPublisher::new(config).unwrap(),
        RelayConfig::default(),
    ));
    let relay_task = {
        let (relay, stop) = (Arc::clone(&relay), Arc::clone(&stop));
        tokio::spawn(async move {
            relay
                .run(async move {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                })
                .await
                .unwrap();
        })
    };
    // Products created (and the pipeline warmed) before the clock starts.
    let at = Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap();
    let catalog = pg.catalog();
    let all: Vec<Product> = (0..products)
        .map(|i| sample_product(&format!("p-{tag}-{i}"), &format!("SKU-{tag}-{i}")))
        .collect();
    for chunk in all.chunks(100) {
        let puts = chunk.iter().map(|p| {
            let events = p.change_events(None, at).unwrap();
            let catalog = catalog.clone();
            let p = p.clone();
            async move {
                let outcome = catalog.put(p, &events).await.unwrap();
                assert_eq!(outcome, commerce_core::CasOutcome::Committed);
            }
        });
        futures::future::join_all(puts).await;
    }
    let warmed = Instant::now() + Duration::from_secs(120);
    while index.num_docs().unwrap() < products as u64 {
        assert!(Instant::now() < warmed, "the products reached the index");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Writers: each owns products `w, w + W, ...` and changes them round robin, paced.
    const WRITERS: usize = 16;
    let commits: Arc<Mutex<Vec<(ProductId, u64, Instant)>>> = Arc::default();
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let per_writer = Duration::from_secs_f64(WRITERS as f64 / rate as f64);
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let mine: Vec<Product> = all.iter().skip(w).step_by(WRITERS).cloned().collect();
        let (catalog, commits) = (catalog.clone(), Arc::clone(&commits));
        writers.push(tokio::spawn(async move {
            let mut mine = mine;
            let mut next = Instant::now();
            let mut i = 0usize;
            while Instant::now() < deadline {
                let len = mine.len();
                let p = &mut mine[i % len];
                let before = p.clone();
                let minor = 1_000 + (i as i64 % 5_000);
                p.prices
                    .set(PriceScope::Default, Money::from_minor(minor, Currency::EUR))
                    .unwrap();
                p.version += 1;
                let events = p.change_events(Some(&before), at).unwrap();
                let outcome = catalog.put(p.clone(), &events).await.unwrap();
                assert_eq!(outcome, commerce_core::CasOutcome::Committed);
                commits
                    .lock()
                    .unwrap()
                    .push((p.id.clone(), p.version, Instant::now()));
                i += 1;
                next += per_writer;
                if let Some(d) = next.checked_duration_since(Instant::now()) {
                    tokio::time::sleep(d).await;
                }
            }
            mine
        }));
    }
    // The watcher: every 5 ms, which version each product is at in the index.
    let mut seen: BTreeMap<(ProductId, u64), Instant> = BTreeMap::new();
    let mut final_products = Vec::new();
    let mut pending: Vec<(ProductId, u64, Instant)> = Vec::new();
    let mut done = false;
    let mut latencies = Vec::new();
    let settle = Instant::now() + Duration::from_secs(secs + 30);
    while Instant::now() < settle {
        pending.extend(commits.lock().unwrap().drain(..));
        let indexed = index.indexed_versions().unwrap();
        let now = Instant::now();
        pending.retain(|(id, v, t)| {
            if indexed.get(id).is_some_and(|iv| iv >= v) {
                latencies.push(now.saturating_duration_since(*t));
                seen.insert((id.clone(), *v), now);
                false
            } else {
                true
            }
        });
        if !done && writers.iter().all(tokio::task::JoinHandle::is_finished) {
            for w in writers.drain(..) {
                final_products.extend(w.await.unwrap());
            }
            done = true;
        }
        if done && pending.is_empty() && commits.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let changes = latencies.len();
    let elapsed = secs as f64;
    latencies.sort();
    let last: BTreeMap<ProductId, u64> = final_products
        .iter()
        .map(|p| (p.id.clone(), p.version))
        .collect();
    let indexed = index.indexed_versions().unwrap();
    let at_last = last
        .iter()
        .filter(|(id, v)| indexed.get(*id) == Some(*v))
        .count();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    relay_task.await.unwrap();
    indexer.join().unwrap();
    println!(
        "freshness at {rate}/s asked: {:.0} changes/s committed, {changes} measured, {} unmeasured; p50 {:?}, p99 {:?}, max {:?}; {at_last}/{} products at their last version",
        changes as f64 / elapsed,
        pending.len(),
        percentile(&latencies, 50),
        percentile(&latencies, 99),
        latencies.last().copied().unwrap_or_default(),
        last.len(),
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let measured = pg::measured();
    let (n, secs) = if measured { (40_000, 10) } else { (1_000, 1) };
    if !measured {
        println!("smoke run (use `cargo bench` for figures)");
    }
    let run = std::process::id();
    let Some(config) = broker(&format!("bench{run}-a.")).await else {
        return;
    };
    let Some(pg) = pg::fresh("bench_kafka", 16).await else {
        return;
    };

    // The broker's limit through the same producer.
    let limit = publish_all(
        &KafkaPublisher::new(&config).unwrap(),
        &stock_events("lim", n),
    )
    .await;
    println!("broker limit (producer, {n} events, 6 partitions): {limit:.0} events/s");

    for relays in [1usize, 2] {
        let config = broker(&format!("bench{run}-r{relays}.")).await.unwrap();
        let outbox = pg.event_log();
        for chunk in stock_events(&format!("r{relays}"), n).chunks(1_000) {
            outbox.publish(chunk).await.unwrap();
        }
        let rate = relay_all(&pg, &config, relays, n).await;
        println!(
            "relay ({relays} at once, {n} events): {rate:.0} events/s = {:.2} × the broker limit",
            rate / limit
        );
    }

    // Consumer: the limit run's topic read back through the port.
    let topic = config.topics.topic(Family::Inventory);
    let start = Instant::now();
    let mut read = 0usize;
    for log in KafkaPartitionLog::all(&config, &topic, 6).unwrap() {
        let mut next = 0;
        let mut empty = 0;
        while empty < 20 {
            let batch = log.read(next, 5_000).await.unwrap();
            let Some(last) = batch.last() else {
                empty += 1;
                continue;
            };
            empty = 0;
            next = last.offset + 1;
            read += batch.len();
        }
    }
    let consumed = read as f64 / start.elapsed().as_secs_f64();
    println!(
        "consumer (event-log port, 6 partitions one after another, {read} events): {consumed:.0} events/s"
    );

    if measured {
        // The catalog's commit rate is the database's: its limit on this box, now.
        match pg::pgbench_tps(16, 5) {
            Some(tps) => println!("pgbench -N, 16 clients: {tps:.0} transactions/s"),
            None => println!("pgbench unavailable"),
        }
    }
    let products = if measured { 2_000 } else { 50 };
    for rate in [1_000u64, 5_000] {
        let config = broker(&format!("bench{run}-f{rate}.")).await.unwrap();
        freshness(
            &pg,
            &config,
            rate,
            if measured { rate } else { 50 },
            secs,
            products,
        )
        .await;
    }
}
