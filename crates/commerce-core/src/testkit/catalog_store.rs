//! Conformance cases for [`CatalogStore`].

use futures::future::join_all;

use super::{events_with_id as count, sample_product, t0};
use crate::{
    CasOutcome, CatalogStore, ErrorKind, EventLog, PortResult, Product, ProductId, ProductStatus,
    Sku,
};

/// Puts `p` with the events a write of it causes.
async fn put<S: CatalogStore + ?Sized>(store: &S, p: Product) -> PortResult<CasOutcome> {
    let events = p.change_events(None, t0()).unwrap();
    store.put(p, &events).await
}

fn pid(s: &str) -> ProductId {
    ProductId::new(s).unwrap()
}

/// A new product at version 1 is stored and found by id and by SKU.
pub async fn put_then_get<S: CatalogStore + ?Sized, L: EventLog + ?Sized>(store: &S, _log: &L) {
    let p = sample_product("cat-a-1", "CAT-A-1");
    assert_eq!(put(store, p.clone()).await.unwrap(), CasOutcome::Committed);
    assert_eq!(store.get(&p.id).await.unwrap(), Some(p.clone()));
    assert_eq!(store.get_by_sku(&p.sku).await.unwrap(), Some(p));
}

/// Unknown ids and SKUs read as `None`, not as errors.
pub async fn missing_is_none<S: CatalogStore + ?Sized, L: EventLog + ?Sized>(store: &S, _log: &L) {
    assert_eq!(store.get(&pid("cat-missing")).await.unwrap(), None);
    assert_eq!(
        store
            .get_by_sku(&Sku::new("CAT-MISSING").unwrap())
            .await
            .unwrap(),
        None
    );
}

/// Writes must carry exactly the next version; a stale or skipped version writes nothing.
pub async fn put_is_compare_and_set<S: CatalogStore + ?Sized, L: EventLog + ?Sized>(
    store: &S,
    _log: &L,
) {
    let mut p = sample_product("cat-b-1", "CAT-B-1");
    p.version = 2;
    assert_eq!(
        put(store, p.clone()).await.unwrap(),
        CasOutcome::VersionMismatch { current: 0 }
    );
    assert_eq!(store.get(&p.id).await.unwrap(), None);
    p.version = 1;
    assert_eq!(put(store, p.clone()).await.unwrap(), CasOutcome::Committed);
    let mut stale = p.clone();
    stale.title = "stale write".into();
    assert_eq!(
        put(store, stale).await.unwrap(),
        CasOutcome::VersionMismatch { current: 1 }
    );
    let mut next = p.clone();
    next.version = 2;
    next.title = "second".into();
    assert_eq!(
        put(store, next.clone()).await.unwrap(),
        CasOutcome::Committed
    );
    assert_eq!(store.get(&p.id).await.unwrap(), Some(next));
}

/// An invalid product is `Invalid` and nothing is written.
pub async fn invalid_product_is_refused<S: CatalogStore + ?Sized, L: EventLog + ?Sized>(
    store: &S,
    _log: &L,
) {
    let mut p = sample_product("cat-c-1", "CAT-C-1");
    p.title = "   ".into();
    let err = put(store, p.clone()).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Invalid);
    assert_eq!(store.get(&p.id).await.unwrap(), None);
}

/// A SKU belongs to one product: a second product with it is `Conflict`.
pub async fn sku_is_unique<S: CatalogStore + ?Sized, L: EventLog + ?Sized>(store: &S, _log: &L) {
    let a = sample_product("cat-d-1", "CAT-D-1");
    let b = sample_product("cat-d-2", "CAT-D-1");
    assert_eq!(put(store, a.clone()).await.unwrap(), CasOutcome::Committed);
    assert_eq!(
        put(store, b.clone()).await.unwrap_err().kind,
        ErrorKind::Conflict
    );
    assert_eq!(store.get(&b.id).await.unwrap(), None);
    assert_eq!(store.get_by_sku(&a.sku).await.unwrap(), Some(a));
}

/// Changing a product's SKU moves the SKU index; retiring is a versioned write.
pub async fn sku_change_and_retire<S: CatalogStore + ?Sized, L: EventLog + ?Sized>(
    store: &S,
    _log: &L,
) {
    let p = sample_product("cat-e-1", "CAT-E-1");
    assert_eq!(put(store, p.clone()).await.unwrap(), CasOutcome::Committed);
    let mut renamed = p.clone();
    renamed.sku = Sku::new("CAT-E-1B").unwrap();
    renamed.version = 2;
    assert_eq!(
        put(store, renamed.clone()).await.unwrap(),
        CasOutcome::Committed
    );
    assert_eq!(store.get_by_sku(&p.sku).await.unwrap(), None);
    assert_eq!(
        store.get_by_sku(&renamed.sku).await.unwrap(),
        Some(renamed.clone())
    );
    let mut retired = renamed;
    retired.status = ProductStatus::Retired;
    retired.version = 3;
    assert_eq!(
        put(store, retired.clone()).await.unwrap(),
        CasOutcome::Committed
    );
    assert_eq!(
        store.get(&p.id).await.unwrap().unwrap().status,
        ProductStatus::Retired
    );
}

/// `list` pages in ascending id order, strictly after the cursor.
pub async fn list_pages_in_id_order<S: CatalogStore + ?Sized, L: EventLog + ?Sized>(
    store: &S,
    _log: &L,
) {
    for i in [3, 1, 5, 2, 4] {
        let p = sample_product(&format!("cat-f-{i}"), &format!("CAT-F-{i}"));
        assert_eq!(put(store, p).await.unwrap(), CasOutcome::Committed);
    }
    let mut seen = Vec::new();
    let mut after: Option<ProductId> = Some(pid("cat-f-"));
    loop {
        let page = store.list(after.as_ref(), 2).await.unwrap();
        assert!(page.len() <= 2, "page larger than its limit");
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        seen.extend(
            page.into_iter()
                .map(|p| p.id.to_string())
                .filter(|id| id.starts_with("cat-f-")),
        );
    }
    assert_eq!(
        seen,
        ["cat-f-1", "cat-f-2", "cat-f-3", "cat-f-4", "cat-f-5"]
    );
}

/// Of many concurrent writers of the same next version, exactly one commits.
pub async fn concurrent_puts_have_one_winner<S: CatalogStore + ?Sized, L: EventLog + ?Sized>(
    store: &S,
    _log: &L,
) {
    let p = sample_product("cat-g-1", "CAT-G-1");
    assert_eq!(put(store, p.clone()).await.unwrap(), CasOutcome::Committed);
    let writes = (0..8).map(|i| {
        let mut next = p.clone();
        next.version = 2;
        next.title = format!("writer {i}");
        put(store, next)
    });
    let results = join_all(writes).await;
    let committed = results
        .iter()
        .filter(|r| matches!(r, Ok(CasOutcome::Committed)))
        .count();
    assert_eq!(committed, 1, "{results:?}");
    assert!(results.iter().all(|r| matches!(
        r,
        Ok(CasOutcome::Committed | CasOutcome::VersionMismatch { current: 2 })
    )));
}

/// A write commits its events with it; a refused or lost write commits none.
pub async fn events_commit_with_the_write<S: CatalogStore + ?Sized, L: EventLog + ?Sized>(
    store: &S,
    log: &L,
) {
    let p = sample_product("cat-h-1", "CAT-H-1");
    assert_eq!(put(store, p.clone()).await.unwrap(), CasOutcome::Committed);
    assert_eq!(count(log, "cat-h-1:v1").await, 1);
    let mut skipped = p.clone();
    skipped.version = 3;
    assert_eq!(
        put(store, skipped).await.unwrap(),
        CasOutcome::VersionMismatch { current: 1 }
    );
    assert_eq!(
        count(log, "cat-h-1:v3").await,
        0,
        "a lost write commits nothing"
    );
    let mut bad = p.clone();
    bad.version = 2;
    bad.title = String::new();
    assert_eq!(put(store, bad).await.unwrap_err().kind, ErrorKind::Invalid);
    let thief = sample_product("cat-h-2", "CAT-H-1");
    assert_eq!(
        put(store, thief).await.unwrap_err().kind,
        ErrorKind::Conflict
    );
    assert_eq!(
        count(log, "cat-h-1:v2").await + count(log, "cat-h-2:v1").await,
        0,
        "a refused write commits nothing"
    );
}

/// Runs the [`CatalogStore`] conformance suite against `$make`, which yields `(store, log)`: the
/// store and a shared handle (`Arc`) to the event log its writes commit to.
#[macro_export]
macro_rules! catalog_store_conformance {
    ($make:expr) => {
        $crate::__conformance_cases_with_log!($make;
            put_then_get => $crate::testkit::catalog_store::put_then_get,
            missing_is_none => $crate::testkit::catalog_store::missing_is_none,
            put_is_compare_and_set => $crate::testkit::catalog_store::put_is_compare_and_set,
            invalid_product_is_refused => $crate::testkit::catalog_store::invalid_product_is_refused,
            sku_is_unique => $crate::testkit::catalog_store::sku_is_unique,
            sku_change_and_retire => $crate::testkit::catalog_store::sku_change_and_retire,
            list_pages_in_id_order => $crate::testkit::catalog_store::list_pages_in_id_order,
            concurrent_puts_have_one_winner => $crate::testkit::catalog_store::concurrent_puts_have_one_winner,
            events_commit_with_the_write => $crate::testkit::catalog_store::events_commit_with_the_write,
        );
    };
}
