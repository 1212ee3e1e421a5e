//! Conformance cases for [`OrderStore`].

use futures::future::join_all;

use super::{sample_order, t0};
use crate::{CasOutcome, ErrorKind, OrderId, OrderStatus, OrderStore, PaymentRef, Transition};

fn paid(order: &mut crate::Order) {
    let payment_ref = PaymentRef::new("pay-conformance").unwrap();
    order
        .apply(Transition::ConfirmPayment { payment_ref }, t0())
        .unwrap();
}

/// An inserted order reads back equal; unknown ids read as `None`.
pub async fn insert_then_get<S: OrderStore + ?Sized>(store: &S) {
    let o = sample_order("ord-a-1");
    store.insert(o.clone()).await.unwrap();
    assert_eq!(store.get(o.id()).await.unwrap(), Some(o));
    assert_eq!(
        store
            .get(&OrderId::new("ord-missing").unwrap())
            .await
            .unwrap(),
        None
    );
}

/// Inserting an existing id is `Conflict` and keeps the first order.
pub async fn duplicate_insert_conflicts<S: OrderStore + ?Sized>(store: &S) {
    let first = sample_order("ord-b-1");
    store.insert(first.clone()).await.unwrap();
    let mut second = sample_order("ord-b-1");
    paid(&mut second);
    assert_eq!(
        store.insert(second).await.unwrap_err().kind,
        ErrorKind::Conflict
    );
    assert_eq!(store.get(first.id()).await.unwrap(), Some(first));
}

/// `update` writes only over the expected version.
pub async fn update_is_compare_and_set<S: OrderStore + ?Sized>(store: &S) {
    let o = sample_order("ord-c-1");
    store.insert(o.clone()).await.unwrap();
    let mut next = o.clone();
    paid(&mut next);
    assert_eq!(
        store.update(next.clone(), 0).await.unwrap(),
        CasOutcome::Committed
    );
    let mut stale = o.clone();
    stale
        .apply(
            Transition::Cancel {
                reason: "stale".into(),
            },
            t0(),
        )
        .unwrap();
    assert_eq!(
        store.update(stale, 0).await.unwrap(),
        CasOutcome::VersionMismatch { current: 1 }
    );
    assert_eq!(store.get(o.id()).await.unwrap(), Some(next));
}

/// Updating an order that was never inserted is `NotFound`.
pub async fn update_missing_is_not_found<S: OrderStore + ?Sized>(store: &S) {
    let o = sample_order("ord-d-1");
    assert_eq!(
        store.update(o, 0).await.unwrap_err().kind,
        ErrorKind::NotFound
    );
}

/// `list_by_status` returns only that status, in id order, strictly after the cursor.
pub async fn list_by_status_filters_and_pages<S: OrderStore + ?Sized>(store: &S) {
    for i in 1..=5 {
        let mut o = sample_order(&format!("ord-e-{i}"));
        if i % 2 == 0 {
            paid(&mut o);
        }
        store.insert(o).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut after = Some(OrderId::new("ord-e-").unwrap());
    loop {
        let page = store
            .list_by_status(OrderStatus::Confirmed, after.as_ref(), 1)
            .await
            .unwrap();
        assert!(page.len() <= 1);
        let Some(last) = page.last() else { break };
        assert!(page.iter().all(|o| o.status() == OrderStatus::Confirmed));
        after = Some(last.id().clone());
        seen.extend(
            page.iter()
                .map(|o| o.id().to_string())
                .filter(|id| id.starts_with("ord-e-")),
        );
    }
    assert_eq!(seen, ["ord-e-2", "ord-e-4"]);
}

/// Of concurrent updates from the same version, exactly one commits.
pub async fn concurrent_updates_have_one_winner<S: OrderStore + ?Sized>(store: &S) {
    let o = sample_order("ord-f-1");
    store.insert(o.clone()).await.unwrap();
    let updates = (0..8).map(|i| {
        let mut next = o.clone();
        next.apply(
            Transition::Cancel {
                reason: format!("writer {i}"),
            },
            t0(),
        )
        .unwrap();
        store.update(next, 0)
    });
    let results = join_all(updates).await;
    let committed = results
        .iter()
        .filter(|r| matches!(r, Ok(CasOutcome::Committed)))
        .count();
    assert_eq!(committed, 1, "{results:?}");
}

/// Runs the [`OrderStore`] conformance suite against `$make`.
#[macro_export]
macro_rules! order_store_conformance {
    ($make:expr) => {
        $crate::__conformance_cases!($make;
            insert_then_get => $crate::testkit::order_store::insert_then_get,
            duplicate_insert_conflicts => $crate::testkit::order_store::duplicate_insert_conflicts,
            update_is_compare_and_set => $crate::testkit::order_store::update_is_compare_and_set,
            update_missing_is_not_found => $crate::testkit::order_store::update_missing_is_not_found,
            list_by_status_filters_and_pages => $crate::testkit::order_store::list_by_status_filters_and_pages,
            concurrent_updates_have_one_winner => $crate::testkit::order_store::concurrent_updates_have_one_winner,
        );
    };
}
