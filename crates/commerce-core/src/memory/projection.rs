//! The projection cache in memory.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;

use super::lock;
use crate::ports::{PortResult, ProjectionCache};
use crate::{ProductId, ProductProjection, Sku};

/// A [`ProjectionCache`] in one process's memory, without expiry: for tests and a single
/// instance (a fleet shares the Redis adapter's cache).
///
/// ```
/// use commerce_core::memory::InMemoryProjectionCache;
/// use commerce_core::ports::ProjectionCache;
/// use commerce_core::testkit::sample_product;
/// use commerce_core::ProductProjection;
/// # futures::executor::block_on(async {
/// let cache = InMemoryProjectionCache::new();
/// let v1 = ProductProjection::from_product(&sample_product("p-1", "SKU-1"));
/// assert!(cache.fill(&v1).await?);
/// cache.invalidate(&v1.sku, &v1.product_id, 2).await?;
/// assert_eq!(cache.get(&v1.sku).await?, None, "version 1 is below the floor");
/// assert!(!cache.fill(&v1).await?, "and cannot come back");
/// # Ok::<(), commerce_core::PortError>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Default)]
pub struct InMemoryProjectionCache {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    by_sku: HashMap<Sku, Entry>,
    products: HashMap<ProductId, ProductEntry>,
    offset: Option<u64>,
}

#[derive(Debug, Default)]
struct Entry {
    projection: Option<ProductProjection>,
    floors: HashMap<ProductId, u64>,
}

#[derive(Debug, Default)]
struct ProductEntry {
    floor: u64,
    skus: BTreeSet<Sku>,
}

impl InMemoryProjectionCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl ProjectionCache for InMemoryProjectionCache {
    async fn get(&self, sku: &Sku) -> PortResult<Option<ProductProjection>> {
        let inner = lock(&self.inner);
        Ok(inner.by_sku.get(sku).and_then(|e| {
            e.projection
                .as_ref()
                .filter(|p| p.version >= e.floors.get(&p.product_id).copied().unwrap_or(0))
                .cloned()
        }))
    }

    async fn fill(&self, projection: &ProductProjection) -> PortResult<bool> {
        let mut inner = lock(&self.inner);
        inner
            .products
            .entry(projection.product_id.clone())
            .or_default()
            .skus
            .insert(projection.sku.clone());
        let entry = inner.by_sku.entry(projection.sku.clone()).or_default();
        let floor = entry
            .floors
            .get(&projection.product_id)
            .copied()
            .unwrap_or(0);
        let newer_held = entry.projection.as_ref().is_some_and(|held| {
            held.product_id == projection.product_id && held.version > projection.version
        });
        if projection.version < floor || newer_held {
            return Ok(false);
        }
        entry.projection = Some(projection.clone());
        Ok(true)
    }

    async fn invalidate(&self, sku: &Sku, product: &ProductId, version: u64) -> PortResult<()> {
        let mut inner = lock(&self.inner);
        let entry = inner.by_sku.entry(sku.clone()).or_default();
        let floor = entry.floors.entry(product.clone()).or_default();
        *floor = (*floor).max(version);
        if entry
            .projection
            .as_ref()
            .is_some_and(|p| p.product_id == *product && p.version < version)
        {
            entry.projection = None;
        }
        Ok(())
    }

    async fn raise_product_floor(&self, product: &ProductId, version: u64) -> PortResult<Vec<Sku>> {
        let mut inner = lock(&self.inner);
        let entry = inner.products.entry(product.clone()).or_default();
        entry.floor = entry.floor.max(version);
        Ok(entry.skus.iter().cloned().collect())
    }

    async fn product_floor(&self, product: &ProductId) -> PortResult<u64> {
        Ok(lock(&self.inner)
            .products
            .get(product)
            .map_or(0, |e| e.floor))
    }

    async fn applied_offset(&self) -> PortResult<Option<u64>> {
        Ok(lock(&self.inner).offset)
    }

    async fn set_applied_offset(&self, offset: u64) -> PortResult<()> {
        let mut inner = lock(&self.inner);
        inner.offset = Some(inner.offset.map_or(offset, |o| o.max(offset)));
        Ok(())
    }
}
