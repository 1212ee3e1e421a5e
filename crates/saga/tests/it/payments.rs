//! Money through the order's life: authorize at checkout and capture as parcels ship (each its
//! share, the last the rest), void instead of refund when nothing was captured, orders that
//! cost nothing, settlement in the merchant's currency, and the safety net for authorizations
//! no order holds.

use chrono::NaiveDate;
use commerce_core::{
    AuthorizeRequest, Clock, Currency, DomainEvent, FxQuote, IdempotencyKey, Money, OrderId,
    OrderStatus, PaymentGateway, PaymentStatus, TransitionKind,
};
use futures::executor::block_on;
use inventory::StockLevels;
use rust_decimal::Decimal;
use saga::*;

use crate::world::{World, buy, input, order};

fn eur(minor: i64) -> Money {
    Money::from_minor(minor, Currency::EUR)
}

/// A confirmed order of 2 × SKU-0 and 1 × SKU-1 (10.00 each, 4.90 shipping), captured at
/// shipment.
fn authorized(world: &World, id: &str) -> OrderId {
    let mut checkout = input(world, id, &[(0, 2), (1, 1)], false, "tok_visa");
    checkout.capture = CapturePolicy::AtShipment;
    let outcome = block_on(world.checkout("w", 1).checkout(&checkout)).unwrap();
    assert!(
        matches!(outcome, CheckoutOutcome::Confirmed { .. }),
        "{outcome:?}"
    );
    checkout.order.id
}

fn payment(world: &World, id: &OrderId) -> commerce_core::Payment {
    world
        .payments
        .snapshot()
        .into_iter()
        .find(|p| p.order_id == *id)
        .unwrap()
}

fn kinds(world: &World, id: &OrderId) -> Vec<TransitionKind> {
    order(world, id)
        .ledger()
        .iter()
        .map(|e| e.transition.kind())
        .collect()
}

#[test]
fn captured_at_shipment_one_parcel_at_a_time() {
    let world = World::new(10);
    let id = authorized(&world, "pay-split");
    let p = payment(&world, &id);
    assert_eq!(
        (p.status, p.authorized, p.captured),
        (PaymentStatus::Authorized, eur(3_490), eur(0)),
        "authorized, nothing taken yet"
    );
    let life = world.lifecycle("w", 1);
    block_on(life.start_fulfilment(&id)).unwrap();

    // The first parcel carries SKU-1: its share of 34.90 by line totals (20.00, 10.00) is 11.63.
    let mut first = buy("parcel-1");
    first.lines = Some(vec![world.skus[1].sku.clone()]);
    let Applied::Moved(o) = block_on(life.ship(&id, first)).unwrap() else {
        panic!("the parcel did not ship")
    };
    assert_eq!(o.status(), OrderStatus::Fulfilling);
    assert_eq!(o.captured(), eur(1_163));
    assert_eq!(payment(&world, &id).captured, eur(1_163));
    let sku1 = block_on(world.stock.level(&world.skus[1], world.clock.now())).unwrap();
    assert_eq!(
        (sku1.on_hand, sku1.committed),
        (9, 0),
        "only the parcel's units left"
    );
    let sku0 = block_on(world.stock.level(&world.skus[0], world.clock.now())).unwrap();
    assert_eq!((sku0.on_hand, sku0.committed), (10, 2));

    // Part of it has shipped: it can no longer be cancelled.
    assert!(matches!(
        block_on(life.cancel(&id, "too late")).unwrap(),
        Applied::Refused(LifecycleFailure::IllegalTransition { .. })
    ));

    // The last parcel captures the rest, exactly.
    let Applied::Moved(o) = block_on(life.ship(&id, buy("parcel-2"))).unwrap() else {
        panic!("the last parcel did not ship")
    };
    assert_eq!(o.status(), OrderStatus::Shipped);
    assert_eq!(o.captured(), eur(3_490));
    let p = payment(&world, &id);
    assert_eq!(
        (p.status, p.captured),
        (PaymentStatus::Captured, eur(3_490))
    );
    assert_eq!(
        kinds(&world, &id),
        [
            TransitionKind::ConfirmPayment,
            TransitionKind::StartFulfilment,
            TransitionKind::Capture,
            TransitionKind::ShipPart,
            TransitionKind::Capture,
            TransitionKind::Ship,
        ]
    );
    // The same parcel again captures nothing more.
    block_on(life.ship(&id, buy("parcel-2"))).unwrap();
    assert_eq!(payment(&world, &id).captured, eur(3_490));
}

#[test]
fn a_cancellation_before_capture_voids_and_refunds_nothing() {
    let world = World::new(10);
    let id = authorized(&world, "pay-void");
    let life = world.lifecycle("w", 1);
    let Applied::Moved(o) = block_on(life.cancel(&id, "changed my mind")).unwrap() else {
        panic!("not cancelled")
    };
    assert_eq!(
        o.status(),
        OrderStatus::Cancelled,
        "no refund, so not refunded"
    );
    let p = payment(&world, &id);
    assert_eq!(
        (p.status, p.captured, p.refunded),
        (PaymentStatus::Voided, eur(0), eur(0))
    );
    assert_eq!(
        kinds(&world, &id),
        [
            TransitionKind::ConfirmPayment,
            TransitionKind::Cancel,
            TransitionKind::Void,
        ]
    );
    let level = block_on(world.stock.level(&world.skus[0], world.clock.now())).unwrap();
    assert_eq!(level.committed, 0, "the stock went back to sale");
}

#[test]
fn a_capture_the_provider_refuses_stops_the_parcel_and_voids_its_label() {
    let world = World::new(10);
    let id = authorized(&world, "pay-refused");
    let life = world.lifecycle("w", 1);
    block_on(life.start_fulfilment(&id)).unwrap();
    // The authorization is voided behind the shop's back (it expired at the provider).
    let p = payment(&world, &id);
    block_on(world.payments.void(
        &IdempotencyKey::new("provider-expiry").unwrap(),
        &p.payment_ref,
    ))
    .unwrap();
    let applied = block_on(life.ship(&id, buy("parcel-1"))).unwrap();
    assert!(
        matches!(
            applied,
            Applied::Refused(LifecycleFailure::CaptureRefused { .. })
        ),
        "{applied:?}"
    );
    assert_eq!(order(&world, &id).status(), OrderStatus::Fulfilling);
    assert!(
        world.carrier.labels().iter().all(|(_, voided)| *voided),
        "the label bought for it was voided"
    );
}

#[test]
fn an_order_that_costs_nothing_is_confirmed_without_a_payment() {
    let world = World::new(10);
    let mut free = input(&world, "pay-free", &[(0, 1)], false, "tok_decline");
    free.order.lines[0].discount = eur(1_000);
    free.order.shipping = eur(0);
    let outcome = block_on(world.checkout("w", 1).checkout(&free)).unwrap();
    assert!(
        matches!(outcome, CheckoutOutcome::Confirmed { .. }),
        "{outcome:?}"
    );
    let o = order(&world, &free.order.id);
    assert_eq!(o.status(), OrderStatus::Confirmed);
    assert!(o.payment_ref().is_none());
    assert!(
        world.payments.snapshot().is_empty(),
        "no gateway call at all"
    );
    let confirmed = world
        .outbox
        .snapshot()
        .iter()
        .filter(|e| e.event_type == "OrderConfirmed")
        .count();
    assert_eq!(confirmed, 1);
    // Cancelling it moves no money either.
    let life = world.lifecycle("w", 1);
    let Applied::Moved(o) = block_on(life.cancel(&free.order.id, "x")).unwrap() else {
        panic!("not cancelled")
    };
    assert_eq!(o.status(), OrderStatus::Cancelled);
}

#[test]
fn an_order_settles_in_the_merchants_currency_and_says_so_when_confirmed() {
    let world = World::new(10);
    let mut checkout = input(&world, "pay-fx", &[(0, 1)], false, "tok_visa");
    checkout.order.settlement = Some(FxQuote {
        id: "ecb:2026-11-30:EUR-USD".into(),
        from: Currency::EUR,
        to: Currency::USD,
        rate: Decimal::new(10_832, 4),
        as_of: NaiveDate::from_ymd_opt(2026, 11, 30).unwrap(),
    });
    block_on(world.checkout("w", 1).checkout(&checkout)).unwrap();
    // 14.90 EUR at 1.0832: 16.13968 → 16.14 USD, on the order and in `OrderConfirmed`.
    let o = order(&world, &checkout.order.id);
    assert_eq!(o.settlement().unwrap().grand_total.to_string(), "16.14 USD");
    let settled = world
        .outbox
        .snapshot()
        .into_iter()
        .find_map(|e| match e.event {
            DomainEvent::OrderConfirmed { settlement, .. } => settlement,
            _ => None,
        });
    let settled = settled.unwrap();
    assert_eq!(settled.amount.to_string(), "16.14 USD");
    assert_eq!(settled.rate_id, "ecb:2026-11-30:EUR-USD");
    // A full refund settles at the same rate: exactly the settled total.
    let refund = o
        .settled(&Money::zero(Currency::EUR), &o.totals().grand_total)
        .unwrap();
    assert_eq!(refund, Some(settled.amount));
}

#[test]
fn the_safety_net_voids_an_authorization_no_order_holds() {
    let world = World::new(10);
    // An authorization made for an order that was never created (a crashed client).
    let orphan = block_on(world.payments.authorize(&AuthorizeRequest {
        idempotency_key: IdempotencyKey::new("orphan-1").unwrap(),
        order_id: OrderId::new("never-created").unwrap(),
        amount: eur(999),
        method_token: "tok_visa".into(),
        capture: false,
    }))
    .unwrap();
    // And an order awaiting shipment, whose authorization must stay.
    let kept = authorized(&world, "pay-kept");
    let done = block_on(reconcile_payments(
        world.payments.as_ref(),
        world.orders.as_ref(),
        world.journal.as_ref(),
    ))
    .unwrap();
    assert_eq!(done, std::slice::from_ref(&orphan.payment_ref));
    assert_eq!(
        payment(&world, &OrderId::new("never-created").unwrap()).status,
        PaymentStatus::Voided
    );
    assert_eq!(payment(&world, &kept).status, PaymentStatus::Authorized);
}
