//! Stale hits against the catalog, and reconciliation of the whole index.

use commerce_core::memory::InMemoryCatalog;
use commerce_core::ports::{CasOutcome, CatalogStore};
use commerce_core::{Currency, Product, ProductId, ProductStatus};
use futures::executor::block_on;
use search::{Freshness, SearchRequest, reconcile, validate_hits};

use crate::fixtures::{P, index, product};

/// Writes every version up to `p`'s into the catalog (the store accepts one step at a time).
fn put(catalog: &InMemoryCatalog, p: &P, status: ProductStatus) {
    let proj = &p.0;
    for version in 1..=proj.version {
        let product = Product {
            id: proj.product_id.clone(),
            sku: proj.sku.clone(),
            title: proj.title.clone(),
            description: proj.description.clone(),
            images: Vec::new(),
            prices: proj.prices.clone(),
            attributes: proj.attributes.clone(),
            brand: proj.brand.clone(),
            category: proj.category.clone(),
            status: if version == proj.version {
                status
            } else {
                ProductStatus::Active
            },
            version,
        };
        assert_eq!(
            block_on(catalog.put(product, &[])).unwrap(),
            CasOutcome::Committed
        );
    }
}

fn id(s: &str) -> ProductId {
    ProductId::new(s).unwrap()
}

/// Index: fresh v1, stale v1 (catalog v2), retired v1 (catalog retired v2), orphan (not in
/// the catalog). Catalog only: missing.
fn diverged() -> (search::SearchIndex, InMemoryCatalog) {
    let idx = index(&[
        product("fresh", "Mug fresh"),
        product("stale", "Mug stale").popularity(77),
        product("retired", "Mug retired"),
        product("orphan", "Mug orphan"),
    ]);
    let catalog = InMemoryCatalog::new();
    put(
        &catalog,
        &product("fresh", "Mug fresh"),
        ProductStatus::Active,
    );
    put(
        &catalog,
        &product("stale", "Mug stale renamed").eur(1_500).version(2),
        ProductStatus::Active,
    );
    put(
        &catalog,
        &product("retired", "Mug retired").version(2),
        ProductStatus::Retired,
    );
    put(
        &catalog,
        &product("missing", "Mug missing"),
        ProductStatus::Active,
    );
    (idx, catalog)
}

#[test]
fn validation_drops_retired_and_missing_hits_and_marks_stale_ones() {
    let (idx, catalog) = diverged();
    let mut req = SearchRequest::new("mug", Currency::EUR);
    req.limit = 100;
    let hits = idx.search(&req).unwrap().hits;
    assert_eq!(hits.len(), 4);
    let checked = block_on(validate_hits(hits, &catalog)).unwrap();
    let mut kept: Vec<_> = checked
        .kept
        .iter()
        .map(|(h, f)| (h.product_id.as_str(), *f))
        .collect();
    kept.sort_by_key(|k| k.0);
    assert_eq!(
        kept,
        [
            ("fresh", Freshness::Fresh),
            ("stale", Freshness::Stale { catalog_version: 2 })
        ]
    );
    let mut dropped: Vec<_> = checked
        .dropped
        .iter()
        .map(|(h, f)| (h.product_id.as_str(), *f))
        .collect();
    dropped.sort_by_key(|k| k.0);
    assert_eq!(
        dropped,
        [
            ("orphan", Freshness::Missing),
            ("retired", Freshness::Retired)
        ]
    );
}

#[test]
fn reconciliation_finds_and_repairs_every_divergence() {
    let (idx, catalog) = diverged();
    let offset_before = idx.next_offset();
    let dry = block_on(reconcile(&idx, &catalog, false)).unwrap();
    assert_eq!(dry.checked, 4);
    assert_eq!(dry.missing, [id("missing")]);
    assert_eq!(dry.stale, [id("stale")]);
    assert_eq!(dry.orphaned, [id("retired"), id("orphan")]);
    assert!(!dry.repaired);
    assert_eq!(idx.num_docs().unwrap(), 4, "a dry run changes nothing");

    let fixed = block_on(reconcile(&idx, &catalog, true)).unwrap();
    assert_eq!(fixed.missing, dry.missing);
    assert!(fixed.repaired);
    let again = block_on(reconcile(&idx, &catalog, false)).unwrap();
    assert!(again.is_clean(), "{again:?}");

    let stale = idx.projection(&id("stale")).unwrap().unwrap();
    assert_eq!(stale.title, "Mug stale renamed");
    assert_eq!(stale.version, 2);
    assert_eq!(stale.signals.popularity, 77, "signals survive the repair");
    assert!(idx.projection(&id("orphan")).unwrap().is_none());
    assert!(idx.projection(&id("missing")).unwrap().is_some());
    assert_eq!(
        idx.next_offset(),
        offset_before,
        "the change-log offset is kept"
    );
}
