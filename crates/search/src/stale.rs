//! Stale results: validating hits against the catalog, and reconciling the whole index.
//!
//! The index is a projection; the catalog port is the truth. Between a catalog write and its
//! change event reaching the index, a hit can be stale: [`validate_hits`] checks a page of hits
//! against the catalog (one read per hit) and drops retired or deleted products. A lost event
//! (a bug, a truncated topic, a restore) leaves divergence no event will fix: [`reconcile`]
//! walks the catalog, diffs it with the index and repairs what differs.

use commerce_core::ports::CatalogStore;
use commerce_core::{ProductId, ProductProjection, ProductStatus};

use crate::Result;
use crate::index::{Indexed, SearchIndex};
use crate::request::Hit;

/// How a hit compares with the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Same version as the catalog.
    Fresh,
    /// The catalog has a newer version; the hit's fields may be out of date.
    Stale {
        /// The catalog's version.
        catalog_version: u64,
    },
    /// The catalog retired the product.
    Retired,
    /// The catalog does not have the product.
    Missing,
}

/// Hits checked against the catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedHits {
    /// Hits still for sale, each with its freshness (`Fresh` or `Stale`).
    pub kept: Vec<(Hit, Freshness)>,
    /// Hits dropped, with why (`Retired` or `Missing`).
    pub dropped: Vec<(Hit, Freshness)>,
}

/// Checks each hit against the catalog: retired and missing products are dropped, newer catalog
/// versions are marked stale.
///
/// # Errors
/// [`crate::Error::Catalog`] when the catalog cannot be read.
pub async fn validate_hits(hits: Vec<Hit>, catalog: &dyn CatalogStore) -> Result<ValidatedHits> {
    let mut out = ValidatedHits {
        kept: Vec::new(),
        dropped: Vec::new(),
    };
    for hit in hits {
        let freshness = match catalog.get(&hit.product_id).await? {
            None => Freshness::Missing,
            Some(p) if p.status == ProductStatus::Retired => Freshness::Retired,
            Some(p) if p.version > hit.catalog_version => Freshness::Stale {
                catalog_version: p.version,
            },
            Some(_) => Freshness::Fresh,
        };
        match freshness {
            Freshness::Missing | Freshness::Retired => out.dropped.push((hit, freshness)),
            _ => out.kept.push((hit, freshness)),
        }
    }
    Ok(out)
}

/// What a reconciliation found (and, when repairing, fixed).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReconcileReport {
    /// Products checked in the catalog.
    pub checked: u64,
    /// Active in the catalog, absent from the index.
    pub missing: Vec<ProductId>,
    /// Indexed at an older version than the catalog's.
    pub stale: Vec<ProductId>,
    /// Indexed, but retired or gone from the catalog.
    pub orphaned: Vec<ProductId>,
    /// Whether the differences were repaired.
    pub repaired: bool,
}

impl ReconcileReport {
    /// True when index and catalog agreed.
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty() && self.stale.is_empty() && self.orphaned.is_empty()
    }
}

/// Catalog page size for reconciliation.
const PAGE: usize = 500;

/// Diffs the catalog with the index and, if `repair`, fixes the index: missing and stale
/// products are (re)indexed from the catalog, keeping the signals and stock state the indexed
/// copy had, and the rating (with its `seq`) whatever held it: a live copy, a tombstone, or a
/// rating that arrived before its product; orphans are removed, retired ones leaving a
/// tombstone that keeps their rating. The repair commit keeps the change-log offset, and a product
/// the pipeline indexed at a newer version meanwhile is left alone.
///
/// # Errors
/// [`crate::Error::Catalog`] or [`crate::Error::Index`]; a failed repair commits nothing.
pub async fn reconcile(
    index: &SearchIndex,
    catalog: &dyn CatalogStore,
    repair: bool,
) -> Result<ReconcileReport> {
    let mut indexed = index.indexed_versions()?;
    let mut report = ReconcileReport::default();
    let mut fixes: Vec<ProductProjection> = Vec::new();
    let mut retire: Vec<(ProductId, u64)> = Vec::new();
    let mut after: Option<ProductId> = None;
    loop {
        let page = catalog.list(after.as_ref(), PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        for product in &page {
            report.checked += 1;
            let indexed_version = indexed.remove(&product.id);
            match (product.status, indexed_version) {
                (ProductStatus::Retired, Some(_)) => {
                    report.orphaned.push(product.id.clone());
                    retire.push((product.id.clone(), product.version));
                }
                (ProductStatus::Retired, None) => {}
                (ProductStatus::Active, None) => {
                    report.missing.push(product.id.clone());
                    fixes.push(ProductProjection::from_product(product));
                }
                (ProductStatus::Active, Some(v)) if v < product.version => {
                    report.stale.push(product.id.clone());
                    fixes.push(ProductProjection::from_product(product));
                }
                (ProductStatus::Active, Some(_)) => {}
            }
        }
        if page.len() < PAGE {
            break;
        }
    }
    // Whatever is left in the index is not in the catalog at all.
    let gone: Vec<ProductId> = indexed.into_keys().collect();
    report.orphaned.extend(gone.iter().cloned());
    if repair && !report.is_clean() {
        let mut writer = index.writer();
        for mut p in fixes {
            // A read failure aborts the repair (the dropped writer rolls back) rather than
            // overwriting signals it could not see.
            let held = index.indexed(&p.product_id)?;
            if held
                .as_ref()
                .and_then(Indexed::version)
                .is_some_and(|v| v >= p.version)
            {
                continue;
            }
            let rating = held.as_ref().map(Indexed::rating).unwrap_or_default();
            if let Some(Indexed::Live {
                projection: old, ..
            }) = held
            {
                p.signals = old.signals;
                p.in_stock = old.in_stock;
            } else if rating.seq > 0 {
                p.signals.rating = rating.rating;
                p.signals.review_count = rating.review_count;
            }
            writer.upsert_rated(&p, rating.seq)?;
        }
        for (id, version) in &retire {
            let rating = index
                .indexed(id)?
                .as_ref()
                .map(Indexed::rating)
                .unwrap_or_default();
            writer.retire_rated(id, *version, &rating)?;
        }
        for id in &gone {
            writer.delete(id)?;
        }
        writer.commit(None)?;
        report.repaired = true;
    }
    Ok(report)
}
