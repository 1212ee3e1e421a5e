//! Read-through product reads by SKU: a [`ProjectionCache`] in front of the [`CatalogStore`],
//! kept current by the catalog's events.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use futures::future::{BoxFuture, FutureExt, Shared};

use crate::ports::{CatalogStore, EventLog, PortResult, ProjectionCache};
use crate::{DomainEvent, Product, ProductId, ProductProjection, Sku};

/// A catalog read that concurrent misses of one SKU share.
type Flight = Shared<BoxFuture<'static, PortResult<Option<Product>>>>;

/// Product reads by SKU through a cache, with the catalog as the source of truth.
///
/// - **Reads**: a hit answers from the cache; a miss reads the catalog, answers what it read
///   and fills the cache. When the cache fails (its server is down) the read falls back to the
///   catalog and skips the fill: a cache outage slows reads, it never fails them.
/// - **Freshness**: [`CachedCatalog::catch_up`] applies the catalog's events from the event
///   log in order. `PriceChanged`, `ProductRetired` and `ProductUpserted` raise the product's
///   floor to the event's version on every SKU it was cached under, so once an event is
///   applied no read answers an older version of that product, not even one whose catalog
///   read began before the event and whose fill lands after it: a fill checks the product's
///   floor after writing and withdraws itself when an event overtook it (the event raises the
///   floor before it looks for the SKUs, so one of the two always sees the other).
///   `ProductUpserted` then fills the new projection, so a hot product is not re-read by
///   every server at once after a change.
/// - **No stampede**: concurrent misses of one SKU in a process share one catalog read (and one
///   fill), so a cold or restarted cache in front of a flash-sale product sends the database
///   one read per server, not one per shopper.
/// - The applied offset is stored in the cache itself, with the entries it describes: a cache
///   that comes back empty (a restarted Redis) starts from the end of the log, since it holds
///   nothing an earlier event could make stale.
///
/// ```
/// use std::sync::Arc;
/// use commerce_core::memory::{InMemoryCatalog, InMemoryProjectionCache};
/// use commerce_core::ports::{CatalogStore, EventLog};
/// use commerce_core::testkit::{sample_product, t0};
/// use commerce_core::{CachedCatalog, Money, Currency, PriceTable};
/// # futures::executor::block_on(async {
/// let catalog = Arc::new(InMemoryCatalog::new());
/// let cache = CachedCatalog::new(catalog.clone(), Arc::new(InMemoryProjectionCache::new()));
/// let v1 = sample_product("p-1", "TEE-1");
/// catalog.put(v1.clone(), &v1.change_events(None, t0())?).await?;
/// cache.catch_up(catalog.outbox().as_ref(), 100).await?;
///
/// assert_eq!(cache.get_by_sku(&v1.sku).await?.unwrap().version, 1); // a miss, then filled
/// assert_eq!(cache.get_by_sku(&v1.sku).await?.unwrap().version, 1); // a hit
///
/// let mut v2 = v1.clone();
/// v2.version = 2;
/// v2.prices = PriceTable::single(Money::from_minor(999, Currency::EUR));
/// catalog.put(v2.clone(), &v2.change_events(Some(&v1), t0())?).await?;
/// cache.catch_up(catalog.outbox().as_ref(), 100).await?;
/// assert_eq!(cache.get_by_sku(&v1.sku).await?.unwrap().prices, v2.prices);
/// let stats = cache.stats();
/// assert_eq!((stats.hits, stats.misses), (2, 1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub struct CachedCatalog {
    catalog: Arc<dyn CatalogStore>,
    cache: Arc<dyn ProjectionCache>,
    in_flight: Mutex<HashMap<Sku, Flight>>,
    counters: Counters,
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    fallbacks: AtomicU64,
    withdrawn: AtomicU64,
    applied: AtomicU64,
    shared: AtomicU64,
}

/// What a [`CachedCatalog`] has done since it was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    /// Reads answered by the cache.
    pub hits: u64,
    /// Reads the cache did not hold, answered by the catalog.
    pub misses: u64,
    /// Cache calls that failed: reads answered by the catalog instead, fills skipped.
    pub fallbacks: u64,
    /// Fills withdrawn because an event for a newer version was applied meanwhile.
    pub withdrawn: u64,
    /// Catalog events applied.
    pub applied: u64,
    /// Misses answered by another miss's catalog read of the same SKU, already in flight.
    pub shared: u64,
}

impl CacheStats {
    /// Hits over all reads answered, in basis points (10,000 = every read a hit); 0 before any read.
    pub fn hit_ratio_bps(&self) -> u64 {
        let reads = self.hits + self.misses + self.fallbacks;
        self.hits
            .saturating_mul(10_000)
            .checked_div(reads)
            .unwrap_or(0)
    }
}

impl fmt::Debug for CachedCatalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedCatalog")
            .field("catalog", &self.catalog)
            .field("cache", &self.cache)
            .field("stats", &self.stats())
            .finish()
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl CachedCatalog {
    /// Reads `catalog` through `cache`.
    pub fn new(catalog: Arc<dyn CatalogStore>, cache: Arc<dyn ProjectionCache>) -> Self {
        CachedCatalog {
            catalog,
            cache,
            in_flight: Mutex::default(),
            counters: Counters::default(),
        }
    }

    /// The product with this SKU, as a projection.
    ///
    /// # Errors
    /// The catalog's error when the cache cannot answer and the catalog fails too.
    pub async fn get_by_sku(&self, sku: &Sku) -> PortResult<Option<ProductProjection>> {
        let cache_up = match self.cache.get(sku).await {
            Ok(Some(hit)) => {
                bump(&self.counters.hits);
                return Ok(Some(hit));
            }
            Ok(None) => {
                bump(&self.counters.misses);
                true
            }
            Err(_) => {
                bump(&self.counters.fallbacks);
                false
            }
        };
        let (read, first) = self.read_catalog(sku);
        let product = read.clone().await;
        // Whoever sees the read finished forgets it (the first caller may have gone away).
        {
            let mut in_flight = self
                .in_flight
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if in_flight.get(sku).is_some_and(|f| f.ptr_eq(&read)) {
                in_flight.remove(sku);
            }
        }
        let Some(product) = product? else {
            return Ok(None);
        };
        let projection = ProductProjection::from_product(&product);
        if !first {
            bump(&self.counters.shared);
        } else if cache_up && self.fill(&projection).await.is_err() {
            bump(&self.counters.fallbacks);
        }
        Ok(Some(projection))
    }

    /// The catalog read of `sku` in flight, or a new one; `true` when this call started it.
    fn read_catalog(&self, sku: &Sku) -> (Flight, bool) {
        let mut in_flight = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(read) = in_flight.get(sku) {
            return (read.clone(), false);
        }
        let (catalog, key) = (self.catalog.clone(), sku.clone());
        let read = async move { catalog.get_by_sku(&key).await }
            .boxed()
            .shared();
        in_flight.insert(sku.clone(), read.clone());
        (read, true)
    }

    /// Fills, then withdraws the fill if an event for a newer version was applied meanwhile.
    async fn fill(&self, projection: &ProductProjection) -> PortResult<()> {
        if !self.cache.fill(projection).await? {
            return Ok(());
        }
        let floor = self.cache.product_floor(&projection.product_id).await?;
        if floor > projection.version {
            bump(&self.counters.withdrawn);
            self.cache
                .invalidate(&projection.sku, &projection.product_id, floor)
                .await?;
        }
        Ok(())
    }

    /// Applies one catalog event to the cache; other events change nothing. Applying an event
    /// twice, or an older one after a newer, changes nothing more.
    ///
    /// # Errors
    /// The cache's error; the event may then be applied in part, and applying it again
    /// completes it.
    pub async fn apply(&self, event: &DomainEvent) -> PortResult<()> {
        match event {
            DomainEvent::PriceChanged {
                product_id,
                sku,
                version,
                ..
            }
            | DomainEvent::ProductRetired {
                product_id,
                sku,
                version,
                ..
            } => self.raise(product_id, sku, *version).await?,
            DomainEvent::ProductUpserted { projection } => {
                self.raise(&projection.product_id, &projection.sku, projection.version)
                    .await?;
                self.cache.fill(projection).await?;
            }
            _ => return Ok(()),
        }
        bump(&self.counters.applied);
        Ok(())
    }

    async fn raise(&self, product: &ProductId, sku: &Sku, version: u64) -> PortResult<()> {
        let mut skus = self.cache.raise_product_floor(product, version).await?;
        if !skus.contains(sku) {
            skus.push(sku.clone());
        }
        for s in &skus {
            self.cache.invalidate(s, product, version).await?;
        }
        Ok(())
    }

    /// Applies the events after the cache's applied offset, at most `max` of them, and records
    /// the new offset; answers how many events it read. A cache without an offset starts at
    /// the log's end.
    ///
    /// # Errors
    /// The log's or the cache's error; the offset then stays where it was and the next call
    /// applies the same events again (harmless: applying is idempotent).
    pub async fn catch_up(&self, log: &dyn EventLog, max: usize) -> PortResult<usize> {
        let from = match self.cache.applied_offset().await? {
            Some(offset) => offset,
            None => {
                let end = log.end_offset().await?;
                self.cache.set_applied_offset(end).await?;
                end
            }
        };
        let events = log.read(from, max).await?;
        for e in &events {
            self.apply(&e.envelope.event).await?;
        }
        if let Some(last) = events.last() {
            self.cache.set_applied_offset(last.offset + 1).await?;
        }
        Ok(events.len())
    }

    /// What this reader has done so far.
    pub fn stats(&self) -> CacheStats {
        let c = &self.counters;
        CacheStats {
            hits: c.hits.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            fallbacks: c.fallbacks.load(Ordering::Relaxed),
            withdrawn: c.withdrawn.load(Ordering::Relaxed),
            applied: c.applied.load(Ordering::Relaxed),
            shared: c.shared.load(Ordering::Relaxed),
        }
    }
}
