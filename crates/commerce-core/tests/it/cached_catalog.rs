//! The read-through projection cache: freshness against the events applied, stale fills that
//! race an event, and a cache outage.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use commerce_core::memory::{InMemoryCatalog, InMemoryProjectionCache};
use commerce_core::ports::{CatalogStore, EventLog, ProjectionCache};
use commerce_core::testkit::{sample_product, t0};
use commerce_core::*;
use futures::executor::block_on;
use proptest::prelude::*;

/// A catalog frozen at an earlier moment: what a read that began before later writes sees.
#[derive(Debug, Default)]
struct Snapshot(HashMap<Sku, Product>);

#[async_trait]
impl CatalogStore for Snapshot {
    async fn get(&self, id: &ProductId) -> PortResult<Option<Product>> {
        Ok(self.0.values().find(|p| p.id == *id).cloned())
    }
    async fn get_by_sku(&self, sku: &Sku) -> PortResult<Option<Product>> {
        Ok(self.0.get(sku).cloned())
    }
    async fn put(&self, _: Product, _: &[EventEnvelope]) -> PortResult<CasOutcome> {
        Err(PortError::new(
            ErrorKind::Refused,
            "a snapshot is read-only",
        ))
    }
    async fn list(&self, _: Option<&ProductId>, _: usize) -> PortResult<Vec<Product>> {
        Ok(Vec::new())
    }
}

/// A cache whose server is down.
#[derive(Debug)]
struct Down;

fn down<T>() -> PortResult<T> {
    Err(PortError::new(ErrorKind::Unavailable, "cache down"))
}

#[async_trait]
impl ProjectionCache for Down {
    async fn get(&self, _: &Sku) -> PortResult<Option<ProductProjection>> {
        down()
    }
    async fn fill(&self, _: &ProductProjection) -> PortResult<bool> {
        down()
    }
    async fn invalidate(&self, _: &Sku, _: &ProductId, _: u64) -> PortResult<()> {
        down()
    }
    async fn raise_product_floor(&self, _: &ProductId, _: u64) -> PortResult<Vec<Sku>> {
        down()
    }
    async fn product_floor(&self, _: &ProductId) -> PortResult<u64> {
        down()
    }
    async fn applied_offset(&self) -> PortResult<Option<u64>> {
        down()
    }
    async fn set_applied_offset(&self, _: u64) -> PortResult<()> {
        down()
    }
}

async fn put(catalog: &InMemoryCatalog, next: &Product, previous: Option<&Product>) {
    let events = next.change_events(previous, t0()).unwrap();
    assert_eq!(
        catalog.put(next.clone(), &events).await.unwrap(),
        CasOutcome::Committed
    );
}

fn sku(s: &str) -> Sku {
    Sku::new(s).unwrap()
}

#[test]
fn a_stale_fill_of_a_moved_sku_is_withdrawn() {
    block_on(async {
        let catalog = Arc::new(InMemoryCatalog::new());
        let cache = Arc::new(InMemoryProjectionCache::new());
        let reader = CachedCatalog::new(catalog.clone(), cache.clone());
        let v1 = sample_product("cc-1", "CC-OLD");
        put(&catalog, &v1, None).await;
        // The cache starts after version 1 (a restarted cache): nothing records the old SKU.
        reader
            .catch_up(catalog.outbox().as_ref(), 100)
            .await
            .unwrap();
        // A read of the old SKU begins now and is slow...
        let slow = CachedCatalog::new(
            Arc::new(Snapshot([(v1.sku.clone(), v1.clone())].into())),
            cache.clone(),
        );
        // ...meanwhile the product moves to a new SKU and the event is applied: the event
        // names the new SKU only.
        let mut v2 = v1.clone();
        v2.version = 2;
        v2.sku = sku("CC-NEW");
        put(&catalog, &v2, Some(&v1)).await;
        reader
            .catch_up(catalog.outbox().as_ref(), 100)
            .await
            .unwrap();
        // The slow read answers what it read (it began before the change) and fills; the fill
        // sees the product's floor and withdraws itself.
        assert_eq!(slow.get_by_sku(&v1.sku).await.unwrap().unwrap().version, 1);
        assert_eq!(slow.stats().withdrawn, 1);
        assert_eq!(cache.get(&v1.sku).await.unwrap(), None);
        assert_eq!(reader.get_by_sku(&v1.sku).await.unwrap(), None);
        assert_eq!(
            reader.get_by_sku(&v2.sku).await.unwrap(),
            Some(ProductProjection::from_product(&v2))
        );
    });
}

/// A catalog that counts its reads by SKU and takes a few polls to answer each.
#[derive(Debug)]
struct Slow {
    inner: Arc<InMemoryCatalog>,
    reads: std::sync::atomic::AtomicUsize,
}

/// Pending `n` times (waking itself), then ready: a read that takes a while.
struct Polls(usize);

impl std::future::Future for Polls {
    type Output = ();
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.0 == 0 {
            return std::task::Poll::Ready(());
        }
        self.0 -= 1;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}

#[async_trait]
impl CatalogStore for Slow {
    async fn get(&self, id: &ProductId) -> PortResult<Option<Product>> {
        self.inner.get(id).await
    }
    async fn get_by_sku(&self, sku: &Sku) -> PortResult<Option<Product>> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Polls(1_000).await;
        self.inner.get_by_sku(sku).await
    }
    async fn put(&self, p: Product, e: &[EventEnvelope]) -> PortResult<CasOutcome> {
        self.inner.put(p, e).await
    }
    async fn list(&self, after: Option<&ProductId>, limit: usize) -> PortResult<Vec<Product>> {
        self.inner.list(after, limit).await
    }
}

#[test]
fn concurrent_misses_of_one_sku_share_one_catalog_read() {
    block_on(async {
        let inner = Arc::new(InMemoryCatalog::new());
        let p = sample_product("cc-5", "CC-5");
        put(&inner, &p, None).await;
        let slow = Arc::new(Slow {
            inner,
            reads: std::sync::atomic::AtomicUsize::new(0),
        });
        let reader = CachedCatalog::new(slow.clone(), Arc::new(InMemoryProjectionCache::new()));
        let reads = (0..50).map(|_| reader.get_by_sku(&p.sku));
        for got in futures::future::join_all(reads).await {
            assert_eq!(got.unwrap(), Some(ProductProjection::from_product(&p)));
        }
        assert_eq!(slow.reads.load(std::sync::atomic::Ordering::SeqCst), 1);
        let stats = reader.stats();
        assert_eq!((stats.misses, stats.shared), (50, 49));
        // Once answered, the read is forgotten: the next miss reads again.
        let other = sample_product("cc-6", "CC-6");
        put(&slow.inner, &other, None).await;
        assert!(reader.get_by_sku(&other.sku).await.unwrap().is_some());
        assert_eq!(slow.reads.load(std::sync::atomic::Ordering::SeqCst), 2);
        assert_eq!(reader.stats().hits, 0);
        assert_eq!(
            reader.get_by_sku(&p.sku).await.unwrap().map(|p| p.version),
            Some(1)
        );
        assert_eq!(reader.stats().hits, 1, "the first read filled the cache");
    });
}

#[test]
fn a_stale_fill_after_a_price_change_is_refused() {
    block_on(async {
        let catalog = Arc::new(InMemoryCatalog::new());
        let cache = Arc::new(InMemoryProjectionCache::new());
        let reader = CachedCatalog::new(catalog.clone(), cache.clone());
        reader
            .catch_up(catalog.outbox().as_ref(), 100)
            .await
            .unwrap();
        let v1 = sample_product("cc-2", "CC-2");
        put(&catalog, &v1, None).await;
        let slow = CachedCatalog::new(
            Arc::new(Snapshot([(v1.sku.clone(), v1.clone())].into())),
            cache.clone(),
        );
        let mut v2 = v1.clone();
        v2.version = 2;
        v2.prices = PriceTable::single(Money::from_minor(1, Currency::EUR));
        put(&catalog, &v2, Some(&v1)).await;
        reader
            .catch_up(catalog.outbox().as_ref(), 100)
            .await
            .unwrap();
        let _ = slow.get_by_sku(&v1.sku).await.unwrap();
        assert_eq!(
            reader.get_by_sku(&v1.sku).await.unwrap().unwrap().prices,
            v2.prices,
            "the applied price change is what every later read sees"
        );
    });
}

#[test]
fn a_cache_outage_falls_back_to_the_catalog() {
    block_on(async {
        let catalog = Arc::new(InMemoryCatalog::new());
        let reader = CachedCatalog::new(catalog.clone(), Arc::new(Down));
        let p = sample_product("cc-3", "CC-3");
        put(&catalog, &p, None).await;
        for _ in 0..3 {
            assert_eq!(
                reader.get_by_sku(&p.sku).await.unwrap(),
                Some(ProductProjection::from_product(&p))
            );
        }
        let stats = reader.stats();
        assert_eq!((stats.hits, stats.misses, stats.fallbacks), (0, 0, 3));
        assert_eq!(
            reader
                .catch_up(catalog.outbox().as_ref(), 10)
                .await
                .unwrap_err()
                .kind,
            ErrorKind::Unavailable,
            "applying events fails loudly: the offset stays for the next try"
        );
    });
}

#[test]
fn an_empty_cache_starts_at_the_end_of_the_log() {
    block_on(async {
        let catalog = Arc::new(InMemoryCatalog::new());
        for i in 0..3 {
            put(
                &catalog,
                &sample_product(&format!("cc-4-{i}"), &format!("CC-4-{i}")),
                None,
            )
            .await;
        }
        let cache = Arc::new(InMemoryProjectionCache::new());
        let reader = CachedCatalog::new(catalog.clone(), cache.clone());
        assert_eq!(
            reader
                .catch_up(catalog.outbox().as_ref(), 100)
                .await
                .unwrap(),
            0
        );
        let end = catalog.outbox().end_offset().await.unwrap();
        assert_eq!(cache.applied_offset().await.unwrap(), Some(end));
    });
}

#[derive(Debug, Clone)]
enum Op {
    /// Writes the next version of product `p`: a new price, and the SKU `a` or `b`.
    Put { p: usize, cents: i64, alt_sku: bool },
    /// Applies at most `n` events.
    CatchUp { n: usize },
    /// Reads a SKU.
    Read { p: usize, alt_sku: bool },
    /// Freezes the catalog as a slow reader sees it.
    Freeze,
    /// A slow reader that read the frozen catalog fills now.
    StaleRead { p: usize, alt_sku: bool },
    /// The cache server loses everything (a restart): a new cache starts at the log's end.
    Wipe,
}

fn op() -> impl Strategy<Value = Op> {
    let p = 0usize..3;
    prop_oneof![
        3 => (p.clone(), 1i64..5_000, any::<bool>()).prop_map(|(p, cents, alt_sku)| Op::Put { p, cents, alt_sku }),
        2 => (1usize..6).prop_map(|n| Op::CatchUp { n }),
        4 => (p.clone(), any::<bool>()).prop_map(|(p, alt_sku)| Op::Read { p, alt_sku }),
        1 => Just(Op::Freeze),
        2 => (p, any::<bool>()).prop_map(|(p, alt_sku)| Op::StaleRead { p, alt_sku }),
        1 => Just(Op::Wipe),
    ]
}

fn sku_of(p: usize, alt: bool) -> Sku {
    sku(&format!("PROP-{p}-{}", if alt { "B" } else { "A" }))
}

/// The highest version of each product among the events at offsets `from..upto`.
async fn applied_versions(log: &dyn EventLog, from: u64, upto: u64) -> BTreeMap<ProductId, u64> {
    let mut out = BTreeMap::new();
    for e in log
        .read(from, usize::try_from(upto - from).unwrap())
        .await
        .unwrap()
    {
        let (id, v) = match e.envelope.event {
            DomainEvent::PriceChanged {
                product_id,
                version,
                ..
            }
            | DomainEvent::ProductRetired {
                product_id,
                version,
                ..
            } => (product_id, version),
            DomainEvent::ProductUpserted { projection } => {
                (projection.product_id, projection.version)
            }
            _ => continue,
        };
        let slot = out.entry(id).or_insert(0);
        *slot = (*slot).max(v);
    }
    out
}

/// Runs `ops`, checking after each read that no applied event is newer than its answer, and at
/// the end that every read answers exactly what the catalog holds.
async fn run(ops: Vec<Op>) {
    let catalog = Arc::new(InMemoryCatalog::new());
    let mut cache = Arc::new(InMemoryProjectionCache::new());
    let mut reader = CachedCatalog::new(catalog.clone(), cache.clone());
    reader.catch_up(catalog.outbox().as_ref(), 1).await.unwrap();
    let mut epoch = 0;
    let mut products: Vec<Option<Product>> = vec![None, None, None];
    let mut frozen: HashMap<Sku, Product> = HashMap::new();
    for op in ops {
        match op {
            Op::Put { p, cents, alt_sku } => {
                let previous = products[p].clone();
                let mut next = previous.clone().unwrap_or_else(|| {
                    let mut fresh = sample_product(&format!("prop-{p}"), "PROP-X");
                    fresh.version = 0;
                    fresh
                });
                next.version += 1;
                next.sku = sku_of(p, alt_sku);
                next.prices = PriceTable::single(Money::from_minor(cents, Currency::EUR));
                put(&catalog, &next, previous.as_ref()).await;
                products[p] = Some(next);
            }
            Op::CatchUp { n } => {
                reader.catch_up(catalog.outbox().as_ref(), n).await.unwrap();
            }
            Op::Read { p, alt_sku } => {
                let got = reader.get_by_sku(&sku_of(p, alt_sku)).await.unwrap();
                let upto = cache.applied_offset().await.unwrap().unwrap();
                let applied = applied_versions(catalog.outbox().as_ref(), epoch, upto).await;
                if let Some(got) = got {
                    let floor = applied.get(&got.product_id).copied().unwrap_or(0);
                    assert!(
                        got.version >= floor,
                        "read v{} after v{floor} was applied",
                        got.version
                    );
                }
            }
            Op::Freeze => {
                frozen = products
                    .iter()
                    .flatten()
                    .map(|p| (p.sku.clone(), p.clone()))
                    .collect();
            }
            Op::StaleRead { p, alt_sku } => {
                let slow = CachedCatalog::new(Arc::new(Snapshot(frozen.clone())), cache.clone());
                let _ = slow.get_by_sku(&sku_of(p, alt_sku)).await.unwrap();
            }
            Op::Wipe => {
                cache = Arc::new(InMemoryProjectionCache::new());
                reader = CachedCatalog::new(catalog.clone(), cache.clone());
                reader.catch_up(catalog.outbox().as_ref(), 1).await.unwrap();
                epoch = cache.applied_offset().await.unwrap().unwrap();
                // A read that began before the restart and fills after it is the one
                // window the design leaves to the TTL (see `CachedCatalog`).
                frozen.clear();
            }
        }
    }
    while reader
        .catch_up(catalog.outbox().as_ref(), 100)
        .await
        .unwrap()
        > 0
    {}
    for p in 0..3 {
        for alt in [false, true] {
            let s = sku_of(p, alt);
            let truth = catalog
                .get_by_sku(&s)
                .await
                .unwrap()
                .map(|p| ProductProjection::from_product(&p));
            assert_eq!(
                reader.get_by_sku(&s).await.unwrap(),
                truth.clone(),
                "{s} after catching up"
            );
            assert_eq!(
                reader.get_by_sku(&s).await.unwrap(),
                truth,
                "{s} read twice"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Whatever the interleaving of writes, event application, reads and slow reads that fill
    /// late: no read answers a version of a product below the last event applied for it, and
    /// once every event is applied every read answers exactly what the catalog holds.
    #[test]
    fn reads_are_never_older_than_the_applied_events(ops in proptest::collection::vec(op(), 1..60)) {
        block_on(run(ops));
    }
}

#[test]
fn a_slow_read_of_a_sku_the_restarted_cache_never_saw() {
    block_on(run(vec![
        Op::Put {
            p: 0,
            cents: 100,
            alt_sku: false,
        },
        Op::Wipe,
        Op::Freeze,
        Op::Put {
            p: 0,
            cents: 200,
            alt_sku: true,
        },
        Op::CatchUp { n: 5 },
        Op::StaleRead {
            p: 0,
            alt_sku: false,
        },
        Op::Read {
            p: 0,
            alt_sku: false,
        },
    ]));
}
