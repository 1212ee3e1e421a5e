//! The [`StockStore`] conformance suite: every implementation (in memory here, Postgres and Redis
//! in the adapters) runs the same cases. See `commerce_core::testkit` for how the macro works.
//! Each case uses its own SKUs, so one database can serve them all.

#![allow(
    clippy::missing_panics_doc,
    reason = "conformance cases are tests: they panic to report a broken contract"
)]

use chrono::{DateTime, TimeDelta, Utc};
use commerce_core::testkit::t0;
use commerce_core::{DomainEvent, EventLog, IdempotencyKey, LocationId, Sku};
use futures::future::join_all;

use crate::{
    Error, HoldId, HoldStatus, ShortfallPolicy, StockConfig, StockKey, StockLevel, StockLine,
    StockStore,
};

fn key(sku: &str) -> StockKey {
    StockKey::new(
        Sku::new(sku).unwrap(),
        LocationId::new("wh-conformance").unwrap(),
    )
}

fn hold(id: &str) -> HoldId {
    HoldId::new(id).unwrap()
}

fn line(k: &StockKey, q: i64) -> StockLine {
    StockLine {
        key: k.clone(),
        quantity: q,
    }
}

fn mins(m: i64) -> DateTime<Utc> {
    t0() + TimeDelta::minutes(m)
}

async fn stocked<S: StockStore + ?Sized>(
    s: &S,
    sku: &str,
    config: StockConfig,
    on_hand: i64,
) -> StockKey {
    let k = key(sku);
    s.configure(&k, config).await.unwrap();
    if on_hand > 0 {
        let _ = s
            .receive(
                &IdempotencyKey::new(format!("receive-{sku}")).unwrap(),
                &k,
                on_hand,
                t0(),
            )
            .await
            .unwrap();
    }
    k
}

async fn level<S: StockStore + ?Sized>(s: &S, k: &StockKey, now: DateTime<Utc>) -> StockLevel {
    let l = s.level(k, now).await.unwrap();
    assert_eq!(
        l.on_hand,
        l.available + l.held + l.committed + l.safety_stock,
        "conservation broken: {l:?}"
    );
    assert_eq!(
        s.available(k, now).await.unwrap(),
        l.available,
        "available() disagrees with level()"
    );
    l
}

/// Receipts add to on hand once per movement key, and report `BackInStock` from zero.
pub async fn receive_is_idempotent_and_back_in_stock<
    S: StockStore + ?Sized,
    L: EventLog + ?Sized,
>(
    s: &S,
    _log: &L,
) {
    let k = stocked(s, "INV-A", StockConfig::default(), 0).await;
    let m = IdempotencyKey::new("po-inv-a").unwrap();
    let changes = s.receive(&m, &k, 5, t0()).await.unwrap();
    assert!(
        changes
            .events
            .iter()
            .any(|e| matches!(e, DomainEvent::BackInStock { available: 5, .. }))
    );
    let again = s.receive(&m, &k, 5, t0()).await.unwrap();
    assert!(again.events.is_empty());
    assert_eq!(level(s, &k, t0()).await.on_hand, 5);
    assert!(
        matches!(s.receive(&m, &k, 6, t0()).await, Err(Error::Invalid { .. })),
        "key reused for another movement"
    );
    assert!(matches!(
        s.receive(&IdempotencyKey::new("po-zero").unwrap(), &k, 0, t0())
            .await,
        Err(Error::Invalid { .. })
    ));
}

/// Demand is summed per key before checking, and a multi-SKU hold is all or nothing.
pub async fn reserve_is_all_or_nothing<S: StockStore + ?Sized, L: EventLog + ?Sized>(
    s: &S,
    _log: &L,
) {
    let a = stocked(s, "INV-B1", StockConfig::default(), 3).await;
    let b = stocked(s, "INV-B2", StockConfig::default(), 1).await;
    let err = s
        .reserve(&hold("h-b-1"), &[line(&a, 2), line(&a, 2)], mins(15), t0())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InsufficientStock {
                requested: 4,
                available: 3,
                ..
            }
        ),
        "{err:?}"
    );
    let err = s
        .reserve(&hold("h-b-2"), &[line(&a, 1), line(&b, 2)], mins(15), t0())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InsufficientStock { .. }));
    assert_eq!(
        level(s, &a, t0()).await.available,
        3,
        "the failed hold reserved nothing"
    );
    assert_eq!(level(s, &b, t0()).await.available, 1);
    let h = s
        .reserve(
            &hold("h-b-3"),
            &[line(&a, 1), line(&b, 1), line(&a, 2)],
            mins(15),
            t0(),
        )
        .await
        .unwrap();
    assert_eq!(h.lines, vec![line(&a, 3), line(&b, 1)]);
    assert_eq!(
        (
            level(s, &a, t0()).await.held,
            level(s, &b, t0()).await.available
        ),
        (3, 0)
    );
}

/// The same hold id with the same lines reserves once; with other lines it conflicts.
pub async fn reserve_is_idempotent_by_hold_id<S: StockStore + ?Sized, L: EventLog + ?Sized>(
    s: &S,
    _log: &L,
) {
    let k = stocked(s, "INV-C", StockConfig::default(), 5).await;
    let first = s
        .reserve(&hold("h-c"), &[line(&k, 2)], mins(15), t0())
        .await
        .unwrap();
    let again = s
        .reserve(&hold("h-c"), &[line(&k, 2)], mins(15), t0())
        .await
        .unwrap();
    assert_eq!(first, again);
    assert_eq!(level(s, &k, t0()).await.held, 2);
    assert_eq!(
        s.reserve(&hold("h-c"), &[line(&k, 3)], mins(15), t0())
            .await
            .unwrap_err(),
        Error::HoldConflict(hold("h-c"))
    );
}

/// An expired hold frees its stock at once, cannot be committed, and is swept exactly once.
pub async fn expiry_is_lazy_and_swept_once<S: StockStore + ?Sized, L: EventLog + ?Sized>(
    s: &S,
    _log: &L,
) {
    let k = stocked(s, "INV-D", StockConfig::default(), 1).await;
    let _ = s
        .reserve(&hold("h-d-1"), &[line(&k, 1)], mins(15), t0())
        .await
        .unwrap();
    assert_eq!(level(s, &k, mins(14)).await.available, 0);
    assert_eq!(
        level(s, &k, mins(15)).await.available,
        1,
        "free at expiry, before any sweep"
    );
    // Another shopper can take it before the sweeper runs.
    let _ = s
        .reserve(&hold("h-d-2"), &[line(&k, 1)], mins(40), mins(16))
        .await
        .unwrap();
    assert_eq!(
        s.commit(&hold("h-d-1"), mins(16)).await.unwrap_err(),
        Error::HoldExpired(hold("h-d-1"))
    );
    let swept = s.sweep(mins(60), 100).await.unwrap();
    assert!(swept.expired.contains(&hold("h-d-2")));
    assert!(
        !s.sweep(mins(60), 100)
            .await
            .unwrap()
            .expired
            .contains(&hold("h-d-2")),
        "swept once"
    );
    assert_eq!(
        s.hold(&hold("h-d-1")).await.unwrap().unwrap().status,
        HoldStatus::Expired
    );
    assert!(!s.expire(&hold("h-d-2"), mins(60)).await.unwrap());
    let l = level(s, &k, mins(60)).await;
    assert_eq!((l.held, l.available), (0, 1));
}

/// A pinned hold never expires, so no sweeper can release stock whose charge is in flight.
pub async fn pinned_holds_do_not_expire<S: StockStore + ?Sized, L: EventLog + ?Sized>(
    s: &S,
    _log: &L,
) {
    let k = stocked(s, "INV-E", StockConfig::default(), 2).await;
    let _ = s
        .reserve(&hold("h-e"), &[line(&k, 2)], mins(15), t0())
        .await
        .unwrap();
    assert_eq!(
        s.pin(&hold("h-e"), mins(5)).await.unwrap().status,
        HoldStatus::Pinned
    );
    assert!(
        !s.sweep(mins(120), 100)
            .await
            .unwrap()
            .expired
            .contains(&hold("h-e"))
    );
    assert!(!s.expire(&hold("h-e"), mins(120)).await.unwrap());
    assert_eq!(level(s, &k, mins(120)).await.available, 0);
    let changes = s.commit(&hold("h-e"), mins(120)).await.unwrap();
    assert!(
        changes
            .events
            .iter()
            .any(|e| matches!(e, DomainEvent::InventoryChanged { available: 0, .. }))
    );
    let l = level(s, &k, mins(120)).await;
    assert_eq!((l.committed, l.held, l.available), (2, 0, 0));
    // Pinning after expiry is refused.
    let k2 = stocked(s, "INV-E2", StockConfig::default(), 1).await;
    let _ = s
        .reserve(&hold("h-e2"), &[line(&k2, 1)], mins(15), t0())
        .await
        .unwrap();
    assert_eq!(
        s.pin(&hold("h-e2"), mins(15)).await.unwrap_err(),
        Error::HoldExpired(hold("h-e2"))
    );
}

/// Commit and release are idempotent and exclusive.
pub async fn commit_and_release_are_final<S: StockStore + ?Sized, L: EventLog + ?Sized>(
    s: &S,
    _log: &L,
) {
    let k = stocked(s, "INV-F", StockConfig::default(), 4).await;
    let _ = s
        .reserve(&hold("h-f-1"), &[line(&k, 1)], mins(15), t0())
        .await
        .unwrap();
    let _ = s.commit(&hold("h-f-1"), mins(1)).await.unwrap();
    assert!(
        s.commit(&hold("h-f-1"), mins(2))
            .await
            .unwrap()
            .events
            .is_empty()
    );
    assert!(matches!(
        s.release(&hold("h-f-1"), mins(2)).await,
        Err(Error::HoldState { .. })
    ));
    let _ = s
        .reserve(&hold("h-f-2"), &[line(&k, 2)], mins(15), t0())
        .await
        .unwrap();
    let _ = s.release(&hold("h-f-2"), mins(1)).await.unwrap();
    let _ = s.release(&hold("h-f-2"), mins(1)).await.unwrap();
    assert!(matches!(
        s.commit(&hold("h-f-2"), mins(2)).await,
        Err(Error::HoldState { .. })
    ));
    assert!(matches!(
        s.reserve(&hold("h-f-2"), &[line(&k, 2)], mins(15), t0())
            .await,
        Err(Error::HoldState { .. })
    ));
    let l = level(s, &k, mins(2)).await;
    assert_eq!((l.committed, l.held, l.available), (1, 0, 3));
    assert_eq!(
        s.commit(&hold("h-f-none"), mins(2)).await.unwrap_err(),
        Error::UnknownHold(hold("h-f-none"))
    );
}

/// Extending moves the expiry later, never earlier.
pub async fn extend_moves_expiry<S: StockStore + ?Sized, L: EventLog + ?Sized>(s: &S, _log: &L) {
    let k = stocked(s, "INV-G", StockConfig::default(), 1).await;
    let _ = s
        .reserve(&hold("h-g"), &[line(&k, 1)], mins(15), t0())
        .await
        .unwrap();
    assert_eq!(
        s.extend(&hold("h-g"), mins(30), mins(10))
            .await
            .unwrap()
            .expires_at,
        mins(30)
    );
    assert_eq!(level(s, &k, mins(20)).await.available, 0);
    assert!(matches!(
        s.extend(&hold("h-g"), mins(25), mins(10)).await,
        Err(Error::Invalid { .. })
    ));
    assert_eq!(level(s, &k, mins(30)).await.available, 1);
    assert_eq!(
        s.extend(&hold("h-g"), mins(60), mins(31))
            .await
            .unwrap_err(),
        Error::HoldExpired(hold("h-g"))
    );
}

/// Safety stock is never promised; backorders go below zero only to their limit.
pub async fn safety_stock_and_backorders<S: StockStore + ?Sized, L: EventLog + ?Sized>(
    s: &S,
    _log: &L,
) {
    let config = StockConfig {
        safety_stock: 2,
        backorder_limit: 3,
        ..StockConfig::default()
    };
    let k = stocked(s, "INV-H", config, 4).await;
    assert_eq!(level(s, &k, t0()).await.available, 2);
    let _ = s
        .reserve(&hold("h-h-1"), &[line(&k, 5)], mins(15), t0())
        .await
        .unwrap();
    assert_eq!(level(s, &k, t0()).await.available, -3);
    assert!(matches!(
        s.reserve(&hold("h-h-2"), &[line(&k, 1)], mins(15), t0())
            .await,
        Err(Error::InsufficientStock { .. })
    ));
}

/// Optimistic commits refuse or report a shortfall, once per movement key; shipping reduces
/// on hand and committed.
pub async fn direct_commits_and_shipping<S: StockStore + ?Sized, L: EventLog + ?Sized>(
    s: &S,
    _log: &L,
) {
    let k = stocked(s, "INV-I", StockConfig::default(), 3).await;
    let m = |n: &str| IdempotencyKey::new(format!("order-inv-i-{n}")).unwrap();
    let refused = s
        .commit_direct(&m("1"), &[line(&k, 4)], ShortfallPolicy::Refuse, t0())
        .await
        .unwrap_err();
    assert!(matches!(
        refused,
        Error::InsufficientStock {
            requested: 4,
            available: 3,
            ..
        }
    ));
    assert_eq!(level(s, &k, t0()).await.committed, 0);
    let ok = s
        .commit_direct(&m("2"), &[line(&k, 2)], ShortfallPolicy::Refuse, t0())
        .await
        .unwrap();
    assert!(ok.applied && ok.shortfalls.is_empty());
    assert!(
        !s.commit_direct(&m("2"), &[line(&k, 2)], ShortfallPolicy::Refuse, t0())
            .await
            .unwrap()
            .applied
    );
    let over = s
        .commit_direct(&m("3"), &[line(&k, 3)], ShortfallPolicy::Accept, t0())
        .await
        .unwrap();
    assert_eq!(over.shortfalls.len(), 1);
    assert_eq!(over.shortfalls[0].units, 2);
    let l = level(s, &k, t0()).await;
    assert_eq!(
        (l.committed, l.available),
        (5, -2),
        "the over-promise is visible, never silent"
    );
    let _ = s.ship(&m("ship"), &[line(&k, 3)], t0()).await.unwrap();
    let l = level(s, &k, t0()).await;
    assert_eq!((l.on_hand, l.committed), (0, 2));
    assert!(matches!(
        s.ship(&m("ship-2"), &[line(&k, 3)], t0()).await,
        Err(Error::Invalid { .. })
    ));
}

/// Committed units of a cancelled order go back to sale, once per movement key.
pub async fn uncommit_returns_stock<S: StockStore + ?Sized, L: EventLog + ?Sized>(s: &S, _log: &L) {
    let k = stocked(s, "INV-N", StockConfig::default(), 2).await;
    let _ = s
        .reserve(&hold("h-n"), &[line(&k, 2)], mins(15), t0())
        .await
        .unwrap();
    let _ = s.commit(&hold("h-n"), t0()).await.unwrap();
    let m = IdempotencyKey::new("cancel-inv-n").unwrap();
    let changes = s.uncommit(&m, &[line(&k, 2)], t0()).await.unwrap();
    assert!(
        changes
            .events
            .iter()
            .any(|e| matches!(e, DomainEvent::BackInStock { available: 2, .. }))
    );
    assert!(
        s.uncommit(&m, &[line(&k, 2)], t0())
            .await
            .unwrap()
            .events
            .is_empty()
    );
    let l = level(s, &k, t0()).await;
    assert_eq!((l.committed, l.available), (0, 2));
    let more = IdempotencyKey::new("cancel-inv-n-2").unwrap();
    assert!(matches!(
        s.uncommit(&more, &[line(&k, 1)], t0()).await,
        Err(Error::Invalid { .. })
    ));
}

/// One owner adopts a hold; another cannot adopt or release it.
pub async fn adoption_is_exclusive<S: StockStore + ?Sized, L: EventLog + ?Sized>(s: &S, _log: &L) {
    let k = stocked(s, "INV-O", StockConfig::default(), 2).await;
    let _ = s
        .reserve(&hold("h-o"), &[line(&k, 1)], mins(15), t0())
        .await
        .unwrap();
    assert_eq!(
        s.adopt(&hold("h-o"), "order-1", mins(1))
            .await
            .unwrap()
            .status,
        HoldStatus::Pinned
    );
    assert_eq!(
        s.adopt(&hold("h-o"), "order-1", mins(2))
            .await
            .unwrap()
            .status,
        HoldStatus::Pinned
    );
    assert!(matches!(
        s.adopt(&hold("h-o"), "order-2", mins(2)).await,
        Err(Error::HoldState { .. })
    ));
    assert!(
        s.release_owned(&hold("h-o"), "order-2", mins(3))
            .await
            .unwrap()
            .events
            .is_empty()
    );
    assert_eq!(
        s.hold(&hold("h-o")).await.unwrap().unwrap().status,
        HoldStatus::Pinned,
        "not released by a stranger"
    );
    let _ = s
        .release_owned(&hold("h-o"), "order-1", mins(3))
        .await
        .unwrap();
    assert_eq!(
        s.hold(&hold("h-o")).await.unwrap().unwrap().status,
        HoldStatus::Released
    );
    let _ = s
        .reserve(&hold("h-o2"), &[line(&k, 1)], mins(15), t0())
        .await
        .unwrap();
    assert_eq!(
        s.adopt(&hold("h-o2"), "order-3", mins(15))
            .await
            .unwrap_err(),
        Error::HoldExpired(hold("h-o2"))
    );
}

/// A correction sets on hand and is recorded as a movement.
pub async fn corrections_are_movements<S: StockStore + ?Sized, L: EventLog + ?Sized>(
    s: &S,
    _log: &L,
) {
    let k = stocked(s, "INV-J", StockConfig::default(), 10).await;
    let _ = s
        .set_on_hand(
            &IdempotencyKey::new("count-inv-j").unwrap(),
            &k,
            7,
            "cycle count",
            t0(),
        )
        .await
        .unwrap();
    assert_eq!(level(s, &k, t0()).await.on_hand, 7);
    let moves = s.movements(&k).await.unwrap();
    assert_eq!(
        moves.iter().map(|m| m.on_hand_delta).collect::<Vec<_>>(),
        [10, -3]
    );
    assert!(moves[1].reason.contains("cycle count"));
    assert!(s.keys().await.unwrap().contains(&k));
}

/// Unknown stock is a typed error.
pub async fn unknown_stock_is_refused<S: StockStore + ?Sized, L: EventLog + ?Sized>(
    s: &S,
    _log: &L,
) {
    let k = key("INV-NOWHERE");
    assert_eq!(
        s.level(&k, t0()).await.unwrap_err(),
        Error::UnknownStock(k.clone())
    );
    assert!(matches!(
        s.reserve(&hold("h-k"), &[line(&k, 1)], mins(15), t0())
            .await,
        Err(Error::UnknownStock(_))
    ));
}

/// Many concurrent reservations for the last unit: exactly one wins.
pub async fn concurrent_last_unit<S: StockStore + ?Sized, L: EventLog + ?Sized>(s: &S, _log: &L) {
    let k = stocked(s, "INV-L", StockConfig::sharded(4), 1).await;
    let ids: Vec<HoldId> = (0..32).map(|i| hold(&format!("h-l-{i}"))).collect();
    let lines = [line(&k, 1)];
    let results = join_all(ids.iter().map(|h| s.reserve(h, &lines, mins(15), t0()))).await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(
        results
            .iter()
            .all(|r| r.is_ok() || matches!(r, Err(Error::InsufficientStock { .. })))
    );
    assert_eq!(level(s, &k, t0()).await.held, 1);
}

/// Stock coming back to a sold-out SKU (a release, a sweep) is `BackInStock`.
pub async fn returns_to_sold_out_stock_are_back_in_stock<
    S: StockStore + ?Sized,
    L: EventLog + ?Sized,
>(
    s: &S,
    _log: &L,
) {
    let k = stocked(s, "INV-M", StockConfig::default(), 1).await;
    let _ = s
        .reserve(&hold("h-m-1"), &[line(&k, 1)], mins(15), t0())
        .await
        .unwrap();
    assert!(
        s.reserve(&hold("h-m-2"), &[line(&k, 1)], mins(15), t0())
            .await
            .is_err()
    );
    let changes = s.release(&hold("h-m-1"), mins(1)).await.unwrap();
    assert!(
        changes
            .events
            .iter()
            .any(|e| matches!(e, DomainEvent::BackInStock { available: 1, .. })),
        "{changes:?}"
    );
    let _ = s
        .reserve(&hold("h-m-3"), &[line(&k, 1)], mins(15), mins(2))
        .await
        .unwrap();
    assert!(
        s.reserve(&hold("h-m-4"), &[line(&k, 1)], mins(15), mins(2))
            .await
            .is_err()
    );
    let swept = s.sweep(mins(30), 100).await.unwrap();
    assert!(
        swept
            .changes
            .events
            .iter()
            .any(|e| matches!(e, DomainEvent::BackInStock { .. })),
        "{swept:?}"
    );
}

/// The events the log holds about `sku`, in order.
async fn events_about<L: EventLog + ?Sized>(log: &L, sku: &str) -> Vec<DomainEvent> {
    let mut out = Vec::new();
    let mut from = 0;
    loop {
        let page = log.read(from, 1_000).await.unwrap();
        let Some(last) = page.last() else { return out };
        from = last.offset + 1;
        out.extend(page.into_iter().filter_map(|e| {
            let about = match &e.envelope.event {
                DomainEvent::InventoryChanged { sku: s, .. }
                | DomainEvent::BackInStock { sku: s, .. } => s.as_str() == sku,
                _ => false,
            };
            about.then_some(e.envelope.event)
        }));
    }
}

/// Every write commits the events it reports to the store's log, once; a refused write and a
/// reservation on a SKU with stock commit none.
pub async fn events_commit_with_each_write<S: StockStore + ?Sized, L: EventLog + ?Sized>(
    s: &S,
    log: &L,
) {
    let k = stocked(s, "INV-N", StockConfig::default(), 0).await;
    let m = IdempotencyKey::new("po-inv-n").unwrap();
    let received = s.receive(&m, &k, 3, t0()).await.unwrap();
    assert_eq!(
        events_about(log, "INV-N").await,
        received.events,
        "the receipt's events"
    );
    let _ = s.receive(&m, &k, 3, t0()).await.unwrap();
    assert!(s.receive(&m, &k, 4, t0()).await.is_err());
    let _ = s
        .reserve(&hold("h-n-1"), &[line(&k, 1)], mins(15), t0())
        .await
        .unwrap();
    assert_eq!(
        events_about(log, "INV-N").await.len(),
        received.events.len(),
        "a repeated or refused receipt and a reservation commit nothing"
    );
    let committed = s.commit(&hold("h-n-1"), t0()).await.unwrap();
    assert!(!committed.events.is_empty());
    let shipped = s
        .ship(
            &IdempotencyKey::new("ship-inv-n").unwrap(),
            &[line(&k, 1)],
            t0(),
        )
        .await
        .unwrap();
    let all = events_about(log, "INV-N").await;
    let expected: Vec<DomainEvent> = received
        .events
        .into_iter()
        .chain(committed.events)
        .chain(shipped.events)
        .collect();
    assert_eq!(all, expected);
}

/// A hold found past its time by a call other than the sweep (commit, pin, extend, adopt,
/// expire) is finalized there with the events the sweep would have committed: stock that was
/// sold out announces `BackInStock` exactly once, and the sweep adds nothing.
pub async fn an_expiry_noticed_by_any_call_is_announced_once<
    S: StockStore + ?Sized,
    L: EventLog + ?Sized,
>(
    s: &S,
    log: &L,
) {
    for (i, op) in ["commit", "pin", "extend", "adopt", "expire"]
        .into_iter()
        .enumerate()
    {
        let sku = format!("INV-O-{i}");
        let k = stocked(s, &sku, StockConfig::default(), 1).await;
        let h = hold(&format!("h-o-{i}"));
        let _ = s.reserve(&h, &[line(&k, 1)], mins(15), t0()).await.unwrap();
        assert!(
            s.reserve(&hold(&format!("h-o-{i}-b")), &[line(&k, 1)], mins(15), t0())
                .await
                .is_err(),
            "sold out"
        );
        let before = events_about(log, &sku).await.len();
        let at = mins(16);
        let noticed = match op {
            "commit" => s.commit(&h, at).await.map(|_| ()),
            "pin" => s.pin(&h, at).await.map(|_| ()),
            "extend" => s.extend(&h, mins(30), at).await.map(|_| ()),
            "adopt" => s.adopt(&h, "checkout-o", at).await.map(|_| ()),
            _ => s.expire(&h, at).await.map(|expired| assert!(expired)),
        };
        if op != "expire" {
            assert_eq!(noticed.unwrap_err(), Error::HoldExpired(h.clone()), "{op}");
        }
        let _ = s.sweep(mins(60), 10_000).await.unwrap();
        let back = events_about(log, &sku)
            .await
            .into_iter()
            .skip(before)
            .filter(|e| matches!(e, DomainEvent::BackInStock { available: 1, .. }))
            .count();
        assert_eq!(back, 1, "{op}: BackInStock once");
        assert_eq!(
            s.hold(&h).await.unwrap().unwrap().status,
            HoldStatus::Expired,
            "{op}"
        );
    }
}

/// Runs the [`StockStore`] conformance suite against `$make`, which yields `(store, log)`: the
/// store and a shared handle (`Arc`) to the event log its writes commit to.
#[macro_export]
macro_rules! stock_store_conformance {
    ($make:expr) => {
        ::commerce_core::__conformance_cases_with_log!($make;
            receive_is_idempotent_and_back_in_stock => $crate::testkit::receive_is_idempotent_and_back_in_stock,
            reserve_is_all_or_nothing => $crate::testkit::reserve_is_all_or_nothing,
            reserve_is_idempotent_by_hold_id => $crate::testkit::reserve_is_idempotent_by_hold_id,
            expiry_is_lazy_and_swept_once => $crate::testkit::expiry_is_lazy_and_swept_once,
            pinned_holds_do_not_expire => $crate::testkit::pinned_holds_do_not_expire,
            commit_and_release_are_final => $crate::testkit::commit_and_release_are_final,
            extend_moves_expiry => $crate::testkit::extend_moves_expiry,
            safety_stock_and_backorders => $crate::testkit::safety_stock_and_backorders,
            direct_commits_and_shipping => $crate::testkit::direct_commits_and_shipping,
            corrections_are_movements => $crate::testkit::corrections_are_movements,
            unknown_stock_is_refused => $crate::testkit::unknown_stock_is_refused,
            concurrent_last_unit => $crate::testkit::concurrent_last_unit,
            uncommit_returns_stock => $crate::testkit::uncommit_returns_stock,
            adoption_is_exclusive => $crate::testkit::adoption_is_exclusive,
            returns_to_sold_out_stock_are_back_in_stock => $crate::testkit::returns_to_sold_out_stock_are_back_in_stock,
            events_commit_with_each_write => $crate::testkit::events_commit_with_each_write,
            an_expiry_noticed_by_any_call_is_announced_once => $crate::testkit::an_expiry_noticed_by_any_call_is_announced_once,
        );
    };
}

/// The stock store behind seeded faults and a process that can crash, for simulations (see
/// `commerce_core::testkit::faults`).
mod faulty {
    use async_trait::async_trait;
    use chrono::{DateTime, Utc};
    use commerce_core::IdempotencyKey;
    use commerce_core::testkit::faults::Faulty;

    use crate::{
        Changes, DirectCommit, Hold, HoldId, HoldStore, Movement, Result, ShortfallPolicy,
        StockConfig, StockKey, StockLevel, StockLevels, StockLine, StockMovements, Sweep,
    };

    #[async_trait]
    impl<P: StockLevels + ?Sized> StockLevels for Faulty<P> {
        async fn level(&self, key: &StockKey, now: DateTime<Utc>) -> Result<StockLevel> {
            self.faults().read(self.inner().level(key, now)).await
        }
        async fn available(&self, key: &StockKey, now: DateTime<Utc>) -> Result<i64> {
            self.faults().read(self.inner().available(key, now)).await
        }
        async fn hold(&self, hold: &HoldId) -> Result<Option<Hold>> {
            self.faults().read(self.inner().hold(hold)).await
        }
        async fn movements(&self, key: &StockKey) -> Result<Vec<Movement>> {
            self.faults().read(self.inner().movements(key)).await
        }
        async fn keys(&self) -> Result<Vec<StockKey>> {
            self.faults().read(self.inner().keys()).await
        }
    }

    #[async_trait]
    impl<P: StockMovements + ?Sized> StockMovements for Faulty<P> {
        async fn configure(&self, key: &StockKey, config: StockConfig) -> Result<()> {
            self.faults()
                .write(self.inner().configure(key, config))
                .await
        }
        async fn receive(
            &self,
            movement: &IdempotencyKey,
            key: &StockKey,
            quantity: i64,
            now: DateTime<Utc>,
        ) -> Result<Changes> {
            self.faults()
                .write(self.inner().receive(movement, key, quantity, now))
                .await
        }
        async fn set_on_hand(
            &self,
            movement: &IdempotencyKey,
            key: &StockKey,
            counted: i64,
            reason: &str,
            now: DateTime<Utc>,
        ) -> Result<Changes> {
            self.faults()
                .write(
                    self.inner()
                        .set_on_hand(movement, key, counted, reason, now),
                )
                .await
        }
        async fn commit_direct(
            &self,
            movement: &IdempotencyKey,
            lines: &[StockLine],
            policy: ShortfallPolicy,
            now: DateTime<Utc>,
        ) -> Result<DirectCommit> {
            self.faults()
                .write(self.inner().commit_direct(movement, lines, policy, now))
                .await
        }
        async fn ship(
            &self,
            movement: &IdempotencyKey,
            lines: &[StockLine],
            now: DateTime<Utc>,
        ) -> Result<Changes> {
            self.faults()
                .write(self.inner().ship(movement, lines, now))
                .await
        }
        async fn uncommit(
            &self,
            movement: &IdempotencyKey,
            lines: &[StockLine],
            now: DateTime<Utc>,
        ) -> Result<Changes> {
            self.faults()
                .write(self.inner().uncommit(movement, lines, now))
                .await
        }
    }

    #[async_trait]
    impl<P: HoldStore + ?Sized> HoldStore for Faulty<P> {
        async fn reserve(
            &self,
            hold: &HoldId,
            lines: &[StockLine],
            expires_at: DateTime<Utc>,
            now: DateTime<Utc>,
        ) -> Result<Hold> {
            self.faults()
                .write(self.inner().reserve(hold, lines, expires_at, now))
                .await
        }
        async fn extend(
            &self,
            hold: &HoldId,
            expires_at: DateTime<Utc>,
            now: DateTime<Utc>,
        ) -> Result<Hold> {
            self.faults()
                .write(self.inner().extend(hold, expires_at, now))
                .await
        }
        async fn pin(&self, hold: &HoldId, now: DateTime<Utc>) -> Result<Hold> {
            self.faults().write(self.inner().pin(hold, now)).await
        }
        async fn adopt(&self, hold: &HoldId, owner: &str, now: DateTime<Utc>) -> Result<Hold> {
            self.faults()
                .write(self.inner().adopt(hold, owner, now))
                .await
        }
        async fn release_owned(
            &self,
            hold: &HoldId,
            owner: &str,
            now: DateTime<Utc>,
        ) -> Result<Changes> {
            self.faults()
                .write(self.inner().release_owned(hold, owner, now))
                .await
        }
        async fn commit(&self, hold: &HoldId, now: DateTime<Utc>) -> Result<Changes> {
            self.faults().write(self.inner().commit(hold, now)).await
        }
        async fn release(&self, hold: &HoldId, now: DateTime<Utc>) -> Result<Changes> {
            self.faults().write(self.inner().release(hold, now)).await
        }
        async fn expire(&self, hold: &HoldId, now: DateTime<Utc>) -> Result<bool> {
            self.faults().write(self.inner().expire(hold, now)).await
        }
        async fn sweep(&self, now: DateTime<Utc>, batch: usize) -> Result<Sweep> {
            self.faults().write(self.inner().sweep(now, batch)).await
        }
    }
}
