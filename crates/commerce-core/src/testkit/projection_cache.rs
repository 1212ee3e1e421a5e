//! Conformance cases for [`ProjectionCache`]. Each case uses SKUs and product ids of its own;
//! `$make` must yield an empty cache (the Redis suite gives each case a namespace of its own).

use futures::future::join_all;

use super::sample_product;
use crate::ports::ProjectionCache;
use crate::{ProductId, ProductProjection, Sku};

fn projection(id: &str, sku: &str, version: u64) -> ProductProjection {
    let mut p = ProductProjection::from_product(&sample_product(id, sku));
    p.version = version;
    p.title = format!("{id} v{version}");
    p
}

fn sku(s: &str) -> Sku {
    Sku::new(s).unwrap()
}

fn pid(s: &str) -> ProductId {
    ProductId::new(s).unwrap()
}

/// A fill reads back; an equal version overwrites; an older version of the same product does
/// not replace a newer one.
pub async fn fill_then_get<C: ProjectionCache + ?Sized>(c: &C) {
    let s = sku("PC-A-1");
    assert_eq!(
        c.get(&s).await.unwrap(),
        None,
        "an empty cache holds nothing"
    );
    let v1 = projection("pc-a-1", "PC-A-1", 1);
    assert!(c.fill(&v1).await.unwrap());
    assert_eq!(c.get(&s).await.unwrap(), Some(v1.clone()));
    let mut v1_again = v1.clone();
    v1_again.description = "repaired".into();
    assert!(
        c.fill(&v1_again).await.unwrap(),
        "an equal version overwrites"
    );
    assert_eq!(c.get(&s).await.unwrap(), Some(v1_again));
    let v2 = projection("pc-a-1", "PC-A-1", 2);
    assert!(c.fill(&v2).await.unwrap());
    assert!(
        !c.fill(&v1).await.unwrap(),
        "an older version does not replace a newer"
    );
    assert_eq!(c.get(&s).await.unwrap(), Some(v2));
}

/// An invalidation drops older versions of its product and refuses their fills; a lower one
/// changes nothing.
pub async fn invalidate_drops_older_and_blocks_fills<C: ProjectionCache + ?Sized>(c: &C) {
    let s = sku("PC-B-1");
    let p = pid("pc-b-1");
    let v1 = projection("pc-b-1", "PC-B-1", 1);
    assert!(c.fill(&v1).await.unwrap());
    c.invalidate(&s, &p, 2).await.unwrap();
    assert_eq!(c.get(&s).await.unwrap(), None);
    assert!(
        !c.fill(&v1).await.unwrap(),
        "a fill below the floor is refused"
    );
    assert_eq!(c.get(&s).await.unwrap(), None);
    let v2 = projection("pc-b-1", "PC-B-1", 2);
    assert!(c.fill(&v2).await.unwrap(), "the floor's own version fills");
    c.invalidate(&s, &p, 1).await.unwrap();
    assert_eq!(
        c.get(&s).await.unwrap(),
        Some(v2.clone()),
        "floors never fall"
    );
    c.invalidate(&s, &p, 2).await.unwrap();
    assert_eq!(
        c.get(&s).await.unwrap(),
        Some(v2),
        "an invalidation at the held version keeps it"
    );
}

/// Floors are per product: invalidating another product under a SKU keeps what it holds.
pub async fn invalidate_spares_another_product<C: ProjectionCache + ?Sized>(c: &C) {
    let s = sku("PC-C-1");
    let a3 = projection("pc-c-a", "PC-C-1", 3);
    assert!(c.fill(&a3).await.unwrap());
    c.invalidate(&s, &pid("pc-c-b"), 10).await.unwrap();
    assert_eq!(c.get(&s).await.unwrap(), Some(a3));
    assert!(!c.fill(&projection("pc-c-b", "PC-C-1", 9)).await.unwrap());
    let b10 = projection("pc-c-b", "PC-C-1", 10);
    assert!(
        c.fill(&b10).await.unwrap(),
        "the SKU now belongs to another product"
    );
    assert_eq!(c.get(&s).await.unwrap(), Some(b10));
}

/// A product's floor rises only, and raising it answers every SKU it was cached under.
pub async fn product_floor_names_its_skus<C: ProjectionCache + ?Sized>(c: &C) {
    let p = pid("pc-d-1");
    assert_eq!(c.product_floor(&p).await.unwrap(), 0);
    assert!(c.fill(&projection("pc-d-1", "PC-D-OLD", 1)).await.unwrap());
    assert!(c.fill(&projection("pc-d-1", "PC-D-NEW", 2)).await.unwrap());
    let mut skus = c.raise_product_floor(&p, 3).await.unwrap();
    skus.sort();
    assert_eq!(skus, [sku("PC-D-NEW"), sku("PC-D-OLD")]);
    assert_eq!(c.product_floor(&p).await.unwrap(), 3);
    let _ = c.raise_product_floor(&p, 2).await.unwrap();
    assert_eq!(c.product_floor(&p).await.unwrap(), 3, "floors never fall");
    assert!(
        c.raise_product_floor(&pid("pc-d-none"), 1)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        c.get(&sku("PC-D-OLD")).await.unwrap().map(|p| p.version),
        Some(1),
        "a product floor alone drops nothing: invalidate does"
    );
}

/// The applied offset starts unknown and never goes back.
pub async fn applied_offset_only_advances<C: ProjectionCache + ?Sized>(c: &C) {
    assert_eq!(c.applied_offset().await.unwrap(), None);
    c.set_applied_offset(5).await.unwrap();
    assert_eq!(c.applied_offset().await.unwrap(), Some(5));
    c.set_applied_offset(3).await.unwrap();
    assert_eq!(c.applied_offset().await.unwrap(), Some(5));
    c.set_applied_offset(u64::MAX - 1).await.unwrap();
    assert_eq!(c.applied_offset().await.unwrap(), Some(u64::MAX - 1));
}

/// Text with newlines, quotes, unicode and 10 KB reads back intact.
pub async fn hostile_values_read_back_intact<C: ProjectionCache + ?Sized>(c: &C) {
    let mut p = projection("pc-e-1", "PC-E-1", 1);
    p.title = "Tee \"quoted\" 'single'\nline two\ttab — ünïcødé 😀 日本語".into();
    p.description = "x\u{7f}y ".repeat(2_560);
    p.attributes
        .insert("key with spaces\n".into(), "{\"json\": [1,2]}".into());
    p.brand = Some("Łódź \\ backslash".into());
    assert!(c.fill(&p).await.unwrap());
    assert_eq!(c.get(&p.sku).await.unwrap(), Some(p));
}

/// Concurrent fills of eight versions with an invalidation among them end on the newest.
pub async fn concurrent_fills_end_on_the_newest<C: ProjectionCache + ?Sized>(c: &C) {
    let s = sku("PC-F-1");
    let versions: Vec<ProductProjection> =
        (1..=8).map(|v| projection("pc-f-1", "PC-F-1", v)).collect();
    let fills = versions.iter().map(|p| async move {
        c.fill(p).await.unwrap();
    });
    let p = pid("pc-f-1");
    let invalidation = async {
        c.invalidate(&s, &p, 5).await.unwrap();
    };
    let (_, ()) = futures::join!(join_all(fills), invalidation);
    assert_eq!(c.get(&s).await.unwrap().map(|p| p.version), Some(8));
    assert!(!c.fill(&versions[3]).await.unwrap());
}

/// Runs the [`ProjectionCache`] conformance suite against `$make`, which yields an empty cache.
#[macro_export]
macro_rules! projection_cache_conformance {
    ($make:expr) => {
        $crate::__conformance_cases!($make;
            fill_then_get => $crate::testkit::projection_cache::fill_then_get,
            invalidate_drops_older_and_blocks_fills => $crate::testkit::projection_cache::invalidate_drops_older_and_blocks_fills,
            invalidate_spares_another_product => $crate::testkit::projection_cache::invalidate_spares_another_product,
            product_floor_names_its_skus => $crate::testkit::projection_cache::product_floor_names_its_skus,
            applied_offset_only_advances => $crate::testkit::projection_cache::applied_offset_only_advances,
            hostile_values_read_back_intact => $crate::testkit::projection_cache::hostile_values_read_back_intact,
            concurrent_fills_end_on_the_newest => $crate::testkit::projection_cache::concurrent_fills_end_on_the_newest,
        );
    };
}
