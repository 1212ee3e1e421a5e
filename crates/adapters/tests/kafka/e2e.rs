//! End to end on the real servers: a price change committed in the PostgreSQL catalog →
//! outbox → relay → broker → search indexer reading the catalog topic's six partitions →
//! visible in search; then the indexer stopped mid-stream and its index reopened from disk
//! resumes exactly where its last commit stood.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use adapters::kafka::{Family, KafkaConfig, KafkaPartitionLog, RelayConfig};
use adapters::postgres::Postgres;
use commerce_core::testkit::sample_product;
use commerce_core::{
    CasOutcome, CatalogStore, Currency, EventLog, Money, PriceScope, Product, ProductId,
};
use search::{Indexer, SearchIndex, SearchRequest, Storage, TenantConfig, TenantId};
use tokio::sync::oneshot;

use crate::harness::{at, config, spawn_child, start_relay};
use crate::pg;

const PRODUCTS: usize = 60;

/// Writes the next version of `product` with a new price; returns when it committed.
#[allow(
    clippy::disallowed_methods,
    reason = "freshness is measured on the wall clock"
)]
async fn change_price(pg: &Postgres, product: &mut Product, minor: i64) -> Instant {
    let before = product.clone();
    product
        .prices
        .set(PriceScope::Default, Money::from_minor(minor, Currency::EUR))
        .unwrap();
    product.version += 1;
    let events = product.change_events(Some(&before), at(0)).unwrap();
    let outcome = pg.catalog().put(product.clone(), &events).await.unwrap();
    assert_eq!(outcome, CasOutcome::Committed);
    Instant::now()
}

/// The indexer over the catalog topic's partitions, on a thread of its own (its commits block),
/// until told to stop.
fn start_indexer(
    config: &KafkaConfig,
    index: Arc<SearchIndex>,
) -> (oneshot::Sender<()>, std::thread::JoinHandle<()>) {
    let topic = config.topics.topic(Family::Catalog);
    let config = config.clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let logs =
                KafkaPartitionLog::all(&config, &topic, config.topics.partitions(Family::Catalog))
                    .unwrap();
            let logs: Vec<&dyn EventLog> = logs.iter().map(|l| l as &dyn EventLog).collect();
            Indexer::new(&index, 500)
                .run_partitions(&logs, async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
    });
    (stop, thread)
}

fn open_index(dir: &std::path::Path) -> Arc<SearchIndex> {
    Arc::new(
        SearchIndex::create(
            TenantId::new("shop").unwrap(),
            TenantConfig::new(&[Currency::EUR]),
            Storage::Dir(dir.to_path_buf()),
        )
        .unwrap(),
    )
}

/// Waits until the index holds `want` of every product; returns when each got there.
#[allow(
    clippy::disallowed_methods,
    reason = "freshness is measured on the wall clock"
)]
async fn await_versions(
    index: &SearchIndex,
    want: &BTreeMap<ProductId, u64>,
) -> BTreeMap<ProductId, Instant> {
    let mut seen = BTreeMap::new();
    for _ in 0..6_000 {
        let indexed = index.indexed_versions().unwrap();
        let now = Instant::now();
        for (id, version) in want {
            if !seen.contains_key(id) && indexed.get(id) >= Some(version) {
                seen.insert(id.clone(), now);
            }
        }
        if seen.len() == want.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_price_change_reaches_search_through_the_broker() {
    let Some(config) = config(6).await else {
        return;
    };
    let Some(pg) = pg::fresh().await else { return };
    let dir = std::env::temp_dir().join(format!("e2e-index-{}", config.topics.prefix));
    let _ = std::fs::remove_dir_all(&dir);

    let (_relay, stop_relay, relay_task) = start_relay(&pg, &config, RelayConfig::default());
    let index = open_index(&dir);
    let (stop, indexer) = start_indexer(&config, Arc::clone(&index));

    let mut products: Vec<Product> = (0..PRODUCTS)
        .map(|i| {
            let mut p = sample_product(&format!("p-{i}"), &format!("SKU-{i}"));
            p.title = format!("Enamel mug number {i}");
            p
        })
        .collect();
    for p in &products {
        let events = p.change_events(None, at(0)).unwrap();
        let outcome = pg.catalog().put(p.clone(), &events).await.unwrap();
        assert_eq!(outcome, CasOutcome::Committed);
    }
    // The first products also warm the pipeline up (the relay's producer connects).
    let created: BTreeMap<ProductId, u64> = products.iter().map(|p| (p.id.clone(), 1)).collect();
    assert_eq!(await_versions(&index, &created).await.len(), PRODUCTS);
    // Two rounds of price changes; each round's freshness measured per product.
    let mut freshness = Vec::new();
    for round in 0..2i64 {
        let want: BTreeMap<ProductId, u64> = products
            .iter()
            .map(|p| (p.id.clone(), p.version + 1))
            .collect();
        let watcher = {
            let index = Arc::clone(&index);
            tokio::spawn(async move { await_versions(&index, &want).await })
        };
        let mut committed = BTreeMap::new();
        for (i, p) in products.iter_mut().enumerate() {
            let minor = 1_000 + 100 * round + i64::try_from(i).unwrap();
            committed.insert(p.id.clone(), change_price(&pg, p, minor).await);
        }
        let seen = watcher.await.unwrap();
        assert_eq!(
            seen.len(),
            PRODUCTS,
            "every change of round {round} reached the index"
        );
        freshness.extend(
            seen.iter()
                .map(|(id, t)| t.saturating_duration_since(committed[id])),
        );
        if round == 1 {
            // Stop the indexer (between two of its commits), reopen the index from disk: it
            // resumes from the offsets its last commit recorded.
            stop.send(()).unwrap();
            indexer.join().unwrap();
            break;
        }
    }
    let offsets = index.partition_offsets();
    assert!(!offsets.is_empty());
    drop(index);
    let index = open_index(&dir);
    assert_eq!(
        index.partition_offsets(),
        offsets,
        "the offsets survive a reopen"
    );
    let mut want = BTreeMap::new();
    for (i, p) in products.iter_mut().enumerate() {
        change_price(&pg, p, 5_000 + i64::try_from(i).unwrap()).await;
        want.insert(p.id.clone(), p.version);
    }
    let (stop, indexer) = start_indexer(&config, Arc::clone(&index));
    let seen = await_versions(&index, &want).await;
    assert_eq!(seen.len(), PRODUCTS, "the reopened index caught up");
    // Every product at its last version and price, found by search.
    for p in &products {
        assert_eq!(index.indexed_version(&p.id).unwrap(), Some(p.version));
    }
    let hits = index
        .search(&SearchRequest::new("enamel mug number 7", Currency::EUR))
        .unwrap();
    let hit = hits
        .hits
        .iter()
        .find(|h| h.sku.as_str() == "SKU-7")
        .unwrap();
    assert_eq!(hit.price.unwrap().to_string(), "50.07 EUR");
    stop.send(()).unwrap();
    indexer.join().unwrap();
    stop_relay.send(()).unwrap();
    relay_task.await.unwrap();

    freshness.sort();
    #[allow(clippy::print_stderr, reason = "the figure the test saw")]
    {
        eprintln!(
            "freshness over {} changes: p50 {:?}, p99 {:?}",
            freshness.len(),
            freshness[freshness.len() / 2],
            freshness[freshness.len() * 99 / 100]
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The child side of [`an_indexer_process_killed_mid_stream_resumes_exactly`]: indexes the
/// catalog topic into the folder named by `KAFKA_INDEXER_CHILD` until killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexer_child() {
    let Ok(spec) = std::env::var("KAFKA_INDEXER_CHILD") else {
        return;
    };
    let (dir, prefix) = spec.split_once('|').unwrap();
    let mut config = config(6).await.unwrap();
    config.topics.prefix = prefix.to_owned();
    let index = open_index(std::path::Path::new(dir));
    #[allow(clippy::print_stdout, reason = "tells the parent it is indexing")]
    {
        println!("indexer-ready");
    }
    let (_stop, indexer) = start_indexer(&config, index);
    let _ = indexer.join();
}

/// An indexer process killed (SIGKILL) again and again while prices change, anywhere between
/// reading, its index commit and the next read: a process started on the same folder resumes
/// from the offsets the last commit recorded, and in the end every product is at its last
/// version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_indexer_process_killed_mid_stream_resumes_exactly() {
    let Some(config) = config(6).await else {
        return;
    };
    let Some(pg) = pg::fresh().await else { return };
    let dir = std::env::temp_dir().join(format!("e2e-killed-{}", config.topics.prefix));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (_relay, stop_relay, relay_task) = start_relay(&pg, &config, RelayConfig::default());
    let mut products: Vec<Product> = (0..PRODUCTS)
        .map(|i| sample_product(&format!("k-{i}"), &format!("SKU-K{i}")))
        .collect();
    for p in &products {
        let events = p.change_events(None, at(0)).unwrap();
        assert_eq!(
            pg.catalog().put(p.clone(), &events).await.unwrap(),
            CasOutcome::Committed
        );
    }
    for round in 0..5u64 {
        let mut child = spawn_child(
            "e2e::indexer_child",
            (
                "KAFKA_INDEXER_CHILD",
                format!("{}|{}", dir.display(), config.topics.prefix),
            ),
            "indexer-ready",
        )
        .await;
        // Prices change while it indexes; it dies at a moment of the round's choosing.
        for (i, p) in products.iter_mut().enumerate() {
            let minor = 2_000 + i64::try_from(round).unwrap() * 100 + i64::try_from(i).unwrap();
            change_price(&pg, p, minor).await;
        }
        tokio::time::sleep(Duration::from_millis(50 + 70 * round)).await;
        child.kill().unwrap();
        child.wait().unwrap();
    }
    // A last indexer, in this process, on the same folder.
    let index = open_index(&dir);
    let resumed = index.partition_offsets();
    let want: BTreeMap<ProductId, u64> =
        products.iter().map(|p| (p.id.clone(), p.version)).collect();
    let (stop, indexer) = start_indexer(&config, Arc::clone(&index));
    let seen = await_versions(&index, &want).await;
    stop.send(()).unwrap();
    indexer.join().unwrap();
    stop_relay.send(()).unwrap();
    relay_task.await.unwrap();
    assert!(!resumed.is_empty(), "the killed indexers committed offsets");
    assert_eq!(
        seen.len(),
        PRODUCTS,
        "every product reached its last version"
    );
    for p in &products {
        assert_eq!(index.indexed_version(&p.id).unwrap(), Some(p.version));
        assert_eq!(
            index.projection(&p.id).unwrap().unwrap().prices,
            p.prices,
            "{}",
            p.id
        );
    }
    let after = index.partition_offsets();
    for (partition, offset) in &resumed {
        assert!(after[partition] >= *offset, "offsets only move forward");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
