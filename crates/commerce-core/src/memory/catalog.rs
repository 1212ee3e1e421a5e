//! In-memory catalog store.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{InMemoryEventLog, lock, page_limit};
use crate::ports::{CasOutcome, CatalogStore, ErrorKind, PortError, PortResult};
use crate::{EventEnvelope, Product, ProductId, Sku};

/// A [`CatalogStore`] in a `BTreeMap`, with a SKU index, committing each write's events to its
/// outbox inside the same critical section.
#[derive(Debug, Default)]
pub struct InMemoryCatalog {
    inner: Mutex<Inner>,
    outbox: Arc<InMemoryEventLog>,
}

#[derive(Debug, Default)]
struct Inner {
    by_id: BTreeMap<ProductId, Product>,
    by_sku: HashMap<Sku, ProductId>,
}

impl InMemoryCatalog {
    /// An empty catalog with an outbox of its own.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty catalog committing its events to `outbox`.
    pub fn with_outbox(outbox: Arc<InMemoryEventLog>) -> Self {
        InMemoryCatalog {
            inner: Mutex::default(),
            outbox,
        }
    }

    /// The log this catalog commits its events to.
    pub fn outbox(&self) -> &Arc<InMemoryEventLog> {
        &self.outbox
    }
}

#[async_trait]
impl CatalogStore for InMemoryCatalog {
    async fn get(&self, id: &ProductId) -> PortResult<Option<Product>> {
        Ok(lock(&self.inner).by_id.get(id).cloned())
    }

    async fn get_by_sku(&self, sku: &Sku) -> PortResult<Option<Product>> {
        let inner = lock(&self.inner);
        Ok(inner
            .by_sku
            .get(sku)
            .and_then(|id| inner.by_id.get(id))
            .cloned())
    }

    async fn put(&self, product: Product, events: &[EventEnvelope]) -> PortResult<CasOutcome> {
        product.validate()?;
        let mut inner = lock(&self.inner);
        let current = inner.by_id.get(&product.id).map_or(0, |p| p.version);
        if product.version != current + 1 {
            return Ok(CasOutcome::VersionMismatch { current });
        }
        if let Some(owner) = inner.by_sku.get(&product.sku)
            && *owner != product.id
        {
            return Err(PortError::new(
                ErrorKind::Conflict,
                format!("sku {} belongs to product {owner}", product.sku),
            ));
        }
        if let Some(old) = inner.by_id.get(&product.id)
            && old.sku != product.sku
        {
            let old_sku = old.sku.clone();
            inner.by_sku.remove(&old_sku);
        }
        let _ = self.outbox.append(events);
        inner.by_sku.insert(product.sku.clone(), product.id.clone());
        inner.by_id.insert(product.id.clone(), product);
        Ok(CasOutcome::Committed)
    }

    async fn list(&self, after: Option<&ProductId>, limit: usize) -> PortResult<Vec<Product>> {
        let inner = lock(&self.inner);
        let lower = after.map_or(Bound::Unbounded, |a| Bound::Excluded(a.clone()));
        Ok(inner
            .by_id
            .range((lower, Bound::Unbounded))
            .take(page_limit(limit))
            .map(|(_, p)| p.clone())
            .collect())
    }
}
