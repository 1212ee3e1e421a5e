//! The projection cache port: product read models by SKU, for the hot read path of product
//! pages and carts, never older than the catalog events applied to them.

use std::fmt::Debug;

use async_trait::async_trait;

use super::PortResult;
use crate::{ProductId, ProductProjection, Sku};

/// A cache of [`ProductProjection`]s keyed by SKU, in front of a [`super::CatalogStore`].
///
/// The cache keeps, per SKU, at most one projection and a *floor* per product: the lowest
/// version of that product the SKU may still serve. Floors only rise. Per product it keeps a
/// floor of its own and the SKUs the product was ever cached under, so a product whose SKU
/// changed can be dropped from its old SKU. [`crate::CachedCatalog`] drives these operations
/// from the event log; the operations themselves are simple enough for one server-side script
/// each.
///
/// Contract (checked by `testkit::projection_cache_conformance!`):
/// - `fill` records the SKU among its product's SKUs, then stores the projection unless the
///   SKU's floor for that product is above its version or the SKU holds a newer version of the
///   same product; it answers whether it stored. An equal version overwrites (a damaged entry
///   is repaired by the next fill).
/// - `get` answers the stored projection, or `None` when there is none or it is below its
///   product's floor for that SKU.
/// - `invalidate(sku, product, v)` raises the SKU's floor for `product` to `v` and drops a
///   stored projection of that product older than `v`; a projection of another product is
///   kept.
/// - `raise_product_floor(product, v)` raises the product's own floor to `v` and answers every
///   SKU `fill` recorded for it; `product_floor` reads that floor (0 when none).
/// - `applied_offset` is `None` on a cache that has never stored one (a new or wiped cache),
///   else the highest offset passed to `set_applied_offset` (it never goes back).
/// - Entries may expire (a TTL is a safety net), which only ever makes `get` answer `None`.
#[async_trait]
pub trait ProjectionCache: Send + Sync + Debug {
    /// The projection cached for `sku`.
    async fn get(&self, sku: &Sku) -> PortResult<Option<ProductProjection>>;
    /// Caches `projection` under its SKU unless a floor or a newer version forbids it.
    async fn fill(&self, projection: &ProductProjection) -> PortResult<bool>;
    /// Forbids `sku` to serve `product` below `version`.
    async fn invalidate(&self, sku: &Sku, product: &ProductId, version: u64) -> PortResult<()>;
    /// Raises `product`'s floor to `version`; answers the SKUs it was cached under.
    async fn raise_product_floor(&self, product: &ProductId, version: u64) -> PortResult<Vec<Sku>>;
    /// `product`'s floor: the highest version an invalidation named for it, 0 when none.
    async fn product_floor(&self, product: &ProductId) -> PortResult<u64>;
    /// The offset of the next event log entry to apply; `None` when the cache has none.
    async fn applied_offset(&self) -> PortResult<Option<u64>>;
    /// Records that every event below `offset` has been applied.
    async fn set_applied_offset(&self, offset: u64) -> PortResult<()>;
}
