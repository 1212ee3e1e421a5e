//! The SKU projection cache on a single node and on the cluster: the conformance suite, reads
//! racing price changes with a checker, and a server killed and restarted.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use adapters::redis::Redis;
use commerce_core::memory::InMemoryCatalog;
use commerce_core::ports::{CatalogStore, EventLog, ProjectionCache};
use commerce_core::testkit::{sample_product, t0};
use commerce_core::{
    CachedCatalog, CasOutcome, Currency, ErrorKind, Money, PriceTable, Product, ProductProjection,
};

use crate::harness::{cluster, server, single, until_up};

mod single_node {
    use super::*;
    commerce_core::projection_cache_conformance!({
        let Some(r) = single().await else { return };
        r.projection_cache()
    });
}

mod on_cluster {
    use super::*;
    commerce_core::projection_cache_conformance!({
        let Some(r) = cluster().await else { return };
        r.projection_cache()
    });
}

async fn put(catalog: &InMemoryCatalog, next: &Product, previous: Option<&Product>) {
    let events = next.change_events(previous, t0()).unwrap();
    assert_eq!(
        catalog.put(next.clone(), &events).await.unwrap(),
        CasOutcome::Committed
    );
}

fn priced(p: &Product, version: u64) -> Product {
    let mut next = p.clone();
    next.version = version;
    next.prices = PriceTable::single(Money::from_minor(
        i64::try_from(version).unwrap() * 100,
        Currency::EUR,
    ));
    next
}

/// Readers hammer a hot SKU while its price changes 60 times and an invalidator applies the
/// events. Checker: a read that starts after version `v`'s event was applied never answers a
/// version below `v`; at the end the cache answers the catalog's last version.
async fn reads_never_trail_the_applied_events(redis: Redis) {
    let catalog = Arc::new(InMemoryCatalog::new());
    let cache = Arc::new(redis.projection_cache());
    let reader = Arc::new(CachedCatalog::new(catalog.clone(), cache.clone()));
    reader
        .catch_up(catalog.outbox().as_ref(), 100)
        .await
        .unwrap();
    let v1 = sample_product("hot-1", "HOT-1");
    put(&catalog, &v1, None).await;
    let applied = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..8)
        .map(|_| {
            let (reader, applied, done, sku) = (
                reader.clone(),
                applied.clone(),
                done.clone(),
                v1.sku.clone(),
            );
            tokio::spawn(async move {
                let mut reads = 0u64;
                while !done.load(Ordering::SeqCst) {
                    let floor = applied.load(Ordering::SeqCst);
                    let got = reader.get_by_sku(&sku).await.unwrap().unwrap();
                    assert!(
                        got.version >= floor,
                        "read v{} after v{floor} was applied",
                        got.version
                    );
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    let mut previous = v1.clone();
    for v in 2..=60 {
        let next = priced(&v1, v);
        put(&catalog, &next, Some(&previous)).await;
        while reader
            .catch_up(catalog.outbox().as_ref(), 100)
            .await
            .unwrap()
            > 0
        {}
        applied.store(v, Ordering::SeqCst);
        previous = next;
        tokio::task::yield_now().await;
    }
    done.store(true, Ordering::SeqCst);
    let mut reads = 0;
    for r in readers {
        reads += r.await.unwrap();
    }
    assert!(reads > 0);
    assert_eq!(
        reader.get_by_sku(&v1.sku).await.unwrap(),
        Some(ProductProjection::from_product(&previous))
    );
    let stats = reader.stats();
    assert!(stats.hits > 0, "{stats:?}");
    assert_eq!(stats.fallbacks, 0, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_never_trail_the_applied_events_on_a_single_node() {
    let Some(r) = single().await else { return };
    reads_never_trail_the_applied_events(r).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_never_trail_the_applied_events_on_the_cluster() {
    let Some(r) = cluster().await else { return };
    reads_never_trail_the_applied_events(r).await;
}

/// The cache's server dies (SIGKILL): reads answer from the catalog, counted as fallbacks, and
/// applying events fails as `Unavailable`. It comes back empty: the cache starts again at the
/// log's end, fills on reads and applies the next price change.
#[tokio::test]
async fn a_killed_cache_falls_back_to_the_catalog_and_recovers() {
    let port = 7_012;
    let Some(mut first) = server(port) else {
        return;
    };
    let url = format!("redis://127.0.0.1:{port}");
    let redis = until_up(&url).await;
    let catalog = Arc::new(InMemoryCatalog::new());
    let cache = Arc::new(redis.projection_cache());
    let reader = CachedCatalog::new(catalog.clone(), cache.clone());
    let log = catalog.outbox().clone();
    reader.catch_up(log.as_ref(), 100).await.unwrap();
    let v1 = sample_product("kill-1", "KILL-1");
    put(&catalog, &v1, None).await;
    reader.catch_up(log.as_ref(), 100).await.unwrap();
    assert_eq!(
        reader.get_by_sku(&v1.sku).await.unwrap().unwrap().version,
        1
    );
    assert_eq!(reader.stats().hits, 1, "the event filled the cache");

    first.kill().unwrap();
    let _ = first.wait();
    let v2 = priced(&v1, 2);
    put(&catalog, &v2, Some(&v1)).await;
    for _ in 0..3 {
        let got = reader.get_by_sku(&v1.sku).await.unwrap().unwrap();
        assert_eq!(
            got,
            ProductProjection::from_product(&v2),
            "from the catalog"
        );
    }
    assert_eq!(reader.stats().fallbacks, 3);
    assert_eq!(
        reader.catch_up(log.as_ref(), 100).await.unwrap_err().kind,
        ErrorKind::Unavailable
    );

    let mut second = server(port).unwrap();
    let _probe = until_up(&url).await;
    let mut caught_up = false;
    for _ in 0..100 {
        if reader.catch_up(log.as_ref(), 100).await.is_ok() {
            caught_up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        caught_up,
        "the same handle works again once the server is back"
    );
    assert_eq!(
        cache.applied_offset().await.unwrap(),
        Some(log.end_offset().await.unwrap()),
        "an empty cache starts at the log's end"
    );
    assert_eq!(
        reader.get_by_sku(&v1.sku).await.unwrap(),
        Some(ProductProjection::from_product(&v2))
    );
    let v3 = priced(&v1, 3);
    put(&catalog, &v3, Some(&v2)).await;
    reader.catch_up(log.as_ref(), 100).await.unwrap();
    assert_eq!(
        cache.get(&v1.sku).await.unwrap(),
        Some(ProductProjection::from_product(&v3))
    );
    second.kill().unwrap();
    let _ = second.wait();
}
