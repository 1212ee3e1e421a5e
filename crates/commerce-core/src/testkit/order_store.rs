//! Conformance cases for [`OrderStore`] and the outbox its writes commit to.
//!
//! Each case takes the store and the [`EventLog`] its events land in.

use futures::future::join_all;

use super::{events_with_id as count, sample_order, t0};
use crate::{
    CartId, CasOutcome, DomainEvent, ErrorKind, EventEnvelope, EventId, EventLog, Order, OrderId,
    OrderStatus, OrderStore, PaymentRef, Transition,
};

/// A marker event with id `id`, to find in the log.
fn marker(id: &str) -> EventEnvelope {
    EventEnvelope::new(
        EventId::new(id).unwrap(),
        t0(),
        DomainEvent::CartAbandoned {
            cart_id: CartId::new("cart-marker").unwrap(),
            user_id: None,
            last_activity_at: t0(),
        },
    )
}

fn paid(order: &mut crate::Order) {
    let payment_ref = Some(PaymentRef::new("pay-conformance").unwrap());
    let captured = order.totals().grand_total;
    order
        .apply(
            Transition::ConfirmPayment {
                payment_ref,
                captured,
            },
            t0(),
        )
        .unwrap();
}

/// An inserted order reads back equal; unknown ids read as `None`.
pub async fn insert_then_get<S: OrderStore + ?Sized, L: EventLog + ?Sized>(store: &S, _log: &L) {
    let o = sample_order("ord-a-1");
    store.insert(o.clone(), &[]).await.unwrap();
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
pub async fn duplicate_insert_conflicts<S: OrderStore + ?Sized, L: EventLog + ?Sized>(
    store: &S,
    _log: &L,
) {
    let first = sample_order("ord-b-1");
    store.insert(first.clone(), &[]).await.unwrap();
    let mut second = sample_order("ord-b-1");
    paid(&mut second);
    assert_eq!(
        store.insert(second, &[]).await.unwrap_err().kind,
        ErrorKind::Conflict
    );
    assert_eq!(store.get(first.id()).await.unwrap(), Some(first));
}

/// `update` writes only over the expected version.
pub async fn update_is_compare_and_set<S: OrderStore + ?Sized, L: EventLog + ?Sized>(
    store: &S,
    _log: &L,
) {
    let o = sample_order("ord-c-1");
    store.insert(o.clone(), &[]).await.unwrap();
    let mut next = o.clone();
    paid(&mut next);
    assert_eq!(
        store.update(next.clone(), 0, &[]).await.unwrap(),
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
        store.update(stale, 0, &[]).await.unwrap(),
        CasOutcome::VersionMismatch { current: 1 }
    );
    assert_eq!(store.get(o.id()).await.unwrap(), Some(next));
}

/// Updating an order that was never inserted is `NotFound`.
pub async fn update_missing_is_not_found<S: OrderStore + ?Sized, L: EventLog + ?Sized>(
    store: &S,
    _log: &L,
) {
    let o = sample_order("ord-d-1");
    assert_eq!(
        store.update(o, 0, &[]).await.unwrap_err().kind,
        ErrorKind::NotFound
    );
}

/// `list_by_status` returns only that status, in id order, strictly after the cursor.
pub async fn list_by_status_filters_and_pages<S: OrderStore + ?Sized, L: EventLog + ?Sized>(
    store: &S,
    _log: &L,
) {
    for i in 1..=5 {
        let mut o = sample_order(&format!("ord-e-{i}"));
        if i % 2 == 0 {
            paid(&mut o);
        }
        store.insert(o, &[]).await.unwrap();
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
pub async fn concurrent_updates_have_one_winner<S: OrderStore + ?Sized, L: EventLog + ?Sized>(
    store: &S,
    _log: &L,
) {
    let o = sample_order("ord-f-1");
    store.insert(o.clone(), &[]).await.unwrap();
    let updates = (0..8).map(|i| {
        let mut next = o.clone();
        next.apply(
            Transition::Cancel {
                reason: format!("writer {i}"),
            },
            t0(),
        )
        .unwrap();
        store.update(next, 0, &[])
    });
    let results = join_all(updates).await;
    let committed = results
        .iter()
        .filter(|r| matches!(r, Ok(CasOutcome::Committed)))
        .count();
    assert_eq!(committed, 1, "{results:?}");
}

/// A write commits its events with it; a refused or lost write commits none.
pub async fn events_commit_with_the_write<S: OrderStore + ?Sized, L: EventLog + ?Sized>(
    store: &S,
    log: &L,
) {
    let o = sample_order("ord-g-1");
    store
        .insert(o.clone(), &[marker("ord-g-1:placed")])
        .await
        .unwrap();
    assert_eq!(count(log, "ord-g-1:placed").await, 1, "insert's event");
    assert_eq!(
        store
            .insert(o.clone(), &[marker("ord-g-1:again")])
            .await
            .unwrap_err()
            .kind,
        ErrorKind::Conflict
    );
    assert_eq!(
        count(log, "ord-g-1:again").await,
        0,
        "a refused insert commits nothing"
    );

    let mut next = o.clone();
    paid(&mut next);
    let events = next.status_events(o.version()).unwrap();
    assert_eq!(
        store.update(next.clone(), 0, &events).await.unwrap(),
        CasOutcome::Committed
    );
    assert_eq!(count(log, "ord-g-1:1").await, 1, "the transition's event");
    let mut lost = o.clone();
    lost.apply(
        Transition::Cancel {
            reason: "lost race".into(),
        },
        t0(),
    )
    .unwrap();
    assert_eq!(
        store
            .update(lost, 0, &[marker("ord-g-1:lost")])
            .await
            .unwrap(),
        CasOutcome::VersionMismatch { current: 1 }
    );
    assert_eq!(
        count(log, "ord-g-1:lost").await,
        0,
        "a lost race commits nothing"
    );
    // A retried write with the same event ids commits none twice.
    let mut third = next.clone();
    third.apply(Transition::StartFulfilment, t0()).unwrap();
    let mut events = third.status_events(1).unwrap();
    events.push(events[0].clone());
    assert_eq!(
        store.update(third, 1, &events).await.unwrap(),
        CasOutcome::Committed
    );
    assert_eq!(count(log, "ord-g-1:2").await, 1);
}

/// An update must extend the stored history: a snapshot with another ledger or other lines
/// is `Conflict`, even at the right version, and changes nothing.
pub async fn updates_never_rewrite_history<S: OrderStore + ?Sized, L: EventLog + ?Sized>(
    store: &S,
    log: &L,
) {
    let o = sample_order("ord-h-1");
    store.insert(o.clone(), &[]).await.unwrap();
    let mut paid_once = o.clone();
    paid(&mut paid_once);
    assert_eq!(
        store.update(paid_once.clone(), 0, &[]).await.unwrap(),
        CasOutcome::Committed
    );
    // Same version (1) but another history: cancelled instead of paid, then moved on.
    let mut forged = o.clone();
    forged
        .apply(
            Transition::Cancel {
                reason: "forged".into(),
            },
            t0(),
        )
        .unwrap();
    let err = store
        .update(forged.clone(), 1, &[marker("ord-h-1:forged")])
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Conflict);
    // Another order's content under this id.
    let other = Order::new(
        crate::NewOrder {
            lines: sample_order("x").lines()[..1].to_vec(),
            ..new_order_of(&o)
        },
        t0(),
    )
    .unwrap();
    let mut other_paid = other.clone();
    paid(&mut other_paid);
    other_paid.apply(Transition::StartFulfilment, t0()).unwrap();
    assert_eq!(
        store.update(other_paid, 1, &[]).await.unwrap_err().kind,
        ErrorKind::Conflict
    );
    assert_eq!(store.get(o.id()).await.unwrap(), Some(paid_once));
    assert_eq!(count(log, "ord-h-1:forged").await, 0);
}

fn new_order_of(o: &Order) -> crate::NewOrder {
    crate::NewOrder {
        id: o.id().clone(),
        user_id: o.user_id().clone(),
        currency: o.currency(),
        lines: o.lines().to_vec(),
        shipping: o.totals().shipping,
        fees: None,
        tax: o.totals().tax,
        tax_included: false,
        shipping_address: o.shipping_address().clone(),
        billing_address: o.billing_address().clone(),
        settlement: None,
    }
}

/// Runs the [`OrderStore`] conformance suite against `$make`, which yields
/// `(store, log)`: the store and a shared handle (`Arc`) to the event log its writes commit to.
#[macro_export]
macro_rules! order_store_conformance {
    ($make:expr) => {
        $crate::__conformance_cases_with_log!($make;
            insert_then_get => $crate::testkit::order_store::insert_then_get,
            duplicate_insert_conflicts => $crate::testkit::order_store::duplicate_insert_conflicts,
            update_is_compare_and_set => $crate::testkit::order_store::update_is_compare_and_set,
            update_missing_is_not_found => $crate::testkit::order_store::update_missing_is_not_found,
            list_by_status_filters_and_pages => $crate::testkit::order_store::list_by_status_filters_and_pages,
            concurrent_updates_have_one_winner => $crate::testkit::order_store::concurrent_updates_have_one_winner,
            events_commit_with_the_write => $crate::testkit::order_store::events_commit_with_the_write,
            updates_never_rewrite_history => $crate::testkit::order_store::updates_never_rewrite_history,
        );
    };
}
