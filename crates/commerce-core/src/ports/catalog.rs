//! The catalog store: the source of truth for products.

use std::fmt::Debug;

use async_trait::async_trait;

use super::{CasOutcome, PortResult};
use crate::{EventEnvelope, Product, ProductId, Sku};

/// Where products live. Every read model (search, caches) is a projection of this store.
///
/// Contract (checked by `testkit::catalog_store_conformance!`):
/// - `put` commits the product and the `events` it is given together, all or nothing (build
///   them with [`Product::change_events`], so search and caches hear of every change); a
///   refused or lost write commits no event.
/// - `put` is compare-and-set on the version: a new product must have version 1, a change
///   must have the stored version + 1; anything else is [`CasOutcome::VersionMismatch`] and
///   writes nothing. Retiring is a `put` with `status: Retired`.
/// - `put` validates the product ([`Product::validate`]) and refuses an invalid one with
///   `Invalid`, and a SKU already used by another product with `Conflict`.
/// - `list` pages in ascending product-id order, strictly after `after`, at most `limit`
///   (capped at [`crate::limits::PAGE_SIZE_MAX`]).
#[async_trait]
pub trait CatalogStore: Send + Sync + Debug {
    /// The product with this id.
    async fn get(&self, id: &ProductId) -> PortResult<Option<Product>>;
    /// The product with this SKU.
    async fn get_by_sku(&self, sku: &Sku) -> PortResult<Option<Product>>;
    /// Writes a product if its version is the next one, committing `events` with it.
    async fn put(&self, product: Product, events: &[EventEnvelope]) -> PortResult<CasOutcome>;
    /// A page of products in id order.
    async fn list(&self, after: Option<&ProductId>, limit: usize) -> PortResult<Vec<Product>>;
}
