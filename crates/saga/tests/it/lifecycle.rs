//! The order after checkout: shipping, delivery, cancellation with compensations, returns,
//! tracking webhooks; rate shopping; the flash-sale queue; notifications.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{Days, TimeDelta};
use commerce_core::memory::InMemoryCarrier;
use commerce_core::testkit::{sample_address, t0};
use commerce_core::{
    Carrier, Clock, Currency, EventLog, IdempotencyKey, LocationId, NotificationKind, OrderStatus,
    Parcel, ShipmentRequest, TrackingStatus, UserId,
};
use futures::executor::block_on;
use saga::*;

use crate::simulation::{World, input};

fn lifecycle(world: &World) -> Lifecycle {
    Lifecycle::new(
        LifecyclePorts {
            orders: world.orders.clone(),
            stock: world.stock.clone(),
            payments: world.payments.clone(),
            outbox: world.outbox.clone(),
            notifier: world.notifier.clone(),
        },
        LocationId::new("wh").unwrap(),
    )
}

fn confirmed(world: &World, id: &str) -> commerce_core::OrderId {
    let order = input(world, id, &[(0, 2)], false, "tok_visa");
    let outcome = block_on(world.checkout("w", 1).checkout(&order)).unwrap();
    assert!(matches!(outcome, CheckoutOutcome::Confirmed { .. }));
    order.order.id
}

fn shipment(currency: Currency) -> ShipmentRequest {
    ShipmentRequest {
        from: sample_address(),
        to: sample_address(),
        parcels: vec![Parcel {
            weight_g: 1_500,
            dimensions_mm: [300, 200, 100],
        }],
        currency,
        ship_date: t0().date_naive(),
    }
}

#[test]
fn ship_deliver_and_tracking_webhooks_out_of_order() {
    let world = World::new(1, 0, 10);
    let id = confirmed(&world, "life-1");
    let life = lifecycle(&world);
    let carrier = InMemoryCarrier::with_standard_services("acme", Currency::EUR);
    let req = shipment(Currency::EUR);
    let label = block_on(carrier.create_label(
        &IdempotencyKey::derive("life-1", "label").unwrap(),
        &req,
        "standard",
    ))
    .unwrap();
    let now = world.clock.now();
    assert!(matches!(
        block_on(life.start_fulfilment(&id, now)).unwrap(),
        Applied::Moved(_)
    ));
    assert!(matches!(
        block_on(life.ship(&id, &label, now)).unwrap(),
        Applied::Moved(_)
    ));
    assert!(
        matches!(
            block_on(life.ship(&id, &label, now)).unwrap(),
            Applied::Ignored
        ),
        "shipping twice ships once"
    );
    let level = world.stock.level_now(&world.skus[0], now).unwrap();
    assert_eq!(
        (level.on_hand, level.committed),
        (8, 0),
        "stock left the warehouse"
    );

    let t = |m: i64| now + TimeDelta::minutes(m);
    let in_transit = carrier
        .push_tracking(&label.tracking_number, TrackingStatus::InTransit, t(10))
        .unwrap();
    let delivered = carrier
        .push_tracking(&label.tracking_number, TrackingStatus::Delivered, t(20))
        .unwrap();
    // The delivery arrives first, then the older scan, then the delivery again.
    let track = |e| block_on(life.on_tracking(&id, "acme", &label.tracking_number, e)).unwrap();
    assert!(matches!(track(&delivered), Applied::Moved(_)));
    assert_eq!(track(&in_transit), Applied::Ignored);
    assert_eq!(track(&delivered), Applied::Ignored);
    let order = world
        .orders
        .snapshot()
        .into_iter()
        .find(|o| o.id() == &id)
        .unwrap();
    assert_eq!(order.status(), OrderStatus::Delivered);
    let kinds: Vec<_> = world.notifier.sent().iter().map(|n| n.kind).collect();
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == NotificationKind::OrderDelivered)
            .count(),
        1
    );
    assert!(kinds.contains(&NotificationKind::OrderShipped));
    // Each carrier update was published once, by sequence.
    let updates = block_on(world.outbox.read(0, 1_000))
        .unwrap()
        .into_iter()
        .filter(|(_, e)| e.event_type == "ShipmentUpdated")
        .count();
    assert_eq!(updates, 2);

    // A return: stock back on the shelf, full refund.
    assert!(matches!(
        block_on(life.return_received(&id, true, t(30))).unwrap(),
        Applied::Moved(_)
    ));
    let order = world
        .orders
        .snapshot()
        .into_iter()
        .find(|o| o.id() == &id)
        .unwrap();
    assert_eq!(order.status(), OrderStatus::Refunded);
    assert_eq!(
        world
            .stock
            .level_now(&world.skus[0], t(30))
            .unwrap()
            .on_hand,
        10
    );
    let paid = world
        .payments
        .inner()
        .snapshot()
        .into_iter()
        .find(|p| p.order_id == id)
        .unwrap();
    assert_eq!(paid.refunded, paid.captured);
}

#[test]
fn a_lost_parcel_is_fulfilled_again_and_old_scans_are_ignored() {
    let world = World::new(2, 0, 10);
    let id = confirmed(&world, "life-2");
    let life = lifecycle(&world);
    let carrier = InMemoryCarrier::with_standard_services("acme", Currency::EUR);
    let req = shipment(Currency::EUR);
    let first =
        block_on(carrier.create_label(&IdempotencyKey::new("l2:a").unwrap(), &req, "standard"))
            .unwrap();
    let now = world.clock.now();
    let _ = block_on(life.start_fulfilment(&id, now)).unwrap();
    let _ = block_on(life.ship(&id, &first, now)).unwrap();
    let lost = carrier
        .push_tracking(
            &first.tracking_number,
            TrackingStatus::Lost,
            now + TimeDelta::hours(48),
        )
        .unwrap();
    assert!(matches!(
        block_on(life.on_tracking(&id, "acme", &first.tracking_number, &lost)).unwrap(),
        Applied::Moved(_)
    ));
    let second =
        block_on(carrier.create_label(&IdempotencyKey::new("l2:b").unwrap(), &req, "express"))
            .unwrap();
    let _ = block_on(life.ship(&id, &second, now + TimeDelta::hours(49))).unwrap();
    // The first parcel turns up "delivered": it is not the current shipment.
    let found = carrier
        .push_tracking(
            &first.tracking_number,
            TrackingStatus::Delivered,
            now + TimeDelta::hours(50),
        )
        .unwrap();
    assert_eq!(
        block_on(life.on_tracking(&id, "acme", &first.tracking_number, &found)).unwrap(),
        Applied::Ignored
    );
    let order = world
        .orders
        .snapshot()
        .into_iter()
        .find(|o| o.id() == &id)
        .unwrap();
    assert_eq!(order.status(), OrderStatus::Shipped);
    assert_eq!(
        order
            .ledger()
            .iter()
            .filter(|e| e.transition.kind() == commerce_core::TransitionKind::ReportLost)
            .count(),
        1
    );
}

#[test]
fn cancelling_before_shipping_compensates_and_after_is_ignored() {
    let world = World::new(3, 0, 10);
    let id = confirmed(&world, "life-3");
    let life = lifecycle(&world);
    let now = world.clock.now();
    assert!(matches!(
        block_on(life.cancel(&id, "changed my mind", now)).unwrap(),
        Applied::Moved(_)
    ));
    let order = world
        .orders
        .snapshot()
        .into_iter()
        .find(|o| o.id() == &id)
        .unwrap();
    assert_eq!(order.status(), OrderStatus::Refunded);
    let level = world.stock.level_now(&world.skus[0], now).unwrap();
    assert_eq!(
        (level.committed, level.available),
        (0, 10),
        "stock back on sale"
    );
    let paid = world
        .payments
        .inner()
        .snapshot()
        .into_iter()
        .find(|p| p.order_id == id)
        .unwrap();
    assert_eq!(paid.refunded, paid.captured);
    assert!(
        world
            .notifier
            .sent()
            .iter()
            .any(|n| n.kind == NotificationKind::OrderCancelled)
    );
    assert_eq!(
        block_on(life.cancel(&id, "again", now)).unwrap(),
        Applied::Ignored
    );

    let shipped = confirmed(&world, "life-4");
    let carrier = InMemoryCarrier::with_standard_services("acme", Currency::EUR);
    let label = block_on(carrier.create_label(
        &IdempotencyKey::new("l4").unwrap(),
        &shipment(Currency::EUR),
        "standard",
    ))
    .unwrap();
    let _ = block_on(life.start_fulfilment(&shipped, now)).unwrap();
    let _ = block_on(life.ship(&shipped, &label, now)).unwrap();
    assert_eq!(
        block_on(life.cancel(&shipped, "too late", now)).unwrap(),
        Applied::Ignored
    );
}

#[test]
fn rate_shopping_takes_the_cheapest_that_arrives_in_time() {
    let cheap_slow: Arc<dyn Carrier> = Arc::new(InMemoryCarrier::new(
        "slowpost",
        Currency::EUR,
        vec![commerce_core::memory::ServiceLevel {
            name: "economy".into(),
            base: commerce_core::Money::from_minor(290, Currency::EUR),
            per_kg: commerce_core::Money::from_minor(10, Currency::EUR),
            transit_days: 6,
        }],
    ));
    let standard: Arc<dyn Carrier> = Arc::new(InMemoryCarrier::with_standard_services(
        "acme",
        Currency::EUR,
    ));
    let req = shipment(Currency::EUR);
    let carriers = [cheap_slow, standard];
    let in_a_week = req.ship_date.checked_add_days(Days::new(7)).unwrap();
    let best = block_on(rate_shop(&carriers, &req, in_a_week)).unwrap();
    assert_eq!(
        (best.carrier.as_str(), best.service.as_str()),
        ("slowpost", "economy")
    );
    let in_three_days = req.ship_date.checked_add_days(Days::new(3)).unwrap();
    let best = block_on(rate_shop(&carriers, &req, in_three_days)).unwrap();
    assert_eq!(
        (best.carrier.as_str(), best.service.as_str()),
        ("acme", "standard")
    );
    let tomorrow = req.ship_date.checked_add_days(Days::new(1)).unwrap();
    assert_eq!(
        block_on(rate_shop(&carriers, &req, tomorrow))
            .unwrap()
            .service,
        "express"
    );
    let today = req.ship_date;
    assert_eq!(
        block_on(rate_shop(&carriers, &req, today))
            .unwrap_err()
            .kind,
        commerce_core::ErrorKind::NotFound
    );
}

#[test]
fn the_queue_admits_fairly_at_its_rate() {
    let config = QueueConfig {
        admit_per_sec: 10,
        admission_ttl: TimeDelta::minutes(5),
        capacity: 100,
    };
    let q = VirtualQueue::new(config, t0());
    let users: Vec<UserId> = (0..50)
        .map(|i| UserId::new(format!("u{i:02}")).unwrap())
        .collect();
    for u in &users {
        let _ = q.join(u, t0()).unwrap();
    }
    assert_eq!(
        q.join(&users[7], t0()).unwrap(),
        Ticket::Waiting { position: 8 },
        "joining again keeps the place"
    );
    let mut order = Vec::new();
    for s in 1..=5 {
        let batch = q.admit(t0() + TimeDelta::seconds(s));
        assert_eq!(batch.len(), 10, "10 a second");
        order.extend(batch);
    }
    assert_eq!(order, users, "first come, first served");
    assert!(q.is_admitted(&users[0], t0() + TimeDelta::seconds(5)));
    assert!(
        !q.is_admitted(&users[0], t0() + TimeDelta::minutes(6)),
        "admission lapses"
    );
    // A lull does not build up a burst.
    let late = UserId::new("late").unwrap();
    let _ = q.join(&late, t0() + TimeDelta::seconds(100)).unwrap();
    assert_eq!(q.admit(t0() + TimeDelta::seconds(200)).len(), 1);
    let small = VirtualQueue::new(
        QueueConfig {
            capacity: 1,
            ..config
        },
        t0(),
    );
    let _ = small.join(&users[0], t0()).unwrap();
    assert!(matches!(
        small.join(&users[1], t0()),
        Err(Error::NotReady(_))
    ));
}

#[test]
fn events_map_to_notifications_once() {
    let world = World::new(5, 0, 10);
    let _ = confirmed(&world, "life-5");
    let events = world.outbox.snapshot();
    let confirmed_event = events
        .iter()
        .find(|e| e.event_type == "OrderConfirmed")
        .unwrap();
    let owner = |_: &commerce_core::OrderId| Some(UserId::new("user-life-5").unwrap());
    let notes = notifications_for(confirmed_event, owner, |_| Vec::new()).unwrap();
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].kind, NotificationKind::OrderConfirmed);
    assert_eq!(
        notes,
        notifications_for(confirmed_event, owner, |_| Vec::new()).unwrap(),
        "same event, same keys"
    );
    let back = commerce_core::EventEnvelope::new(
        commerce_core::EventId::new("bis-1").unwrap(),
        t0(),
        commerce_core::DomainEvent::BackInStock {
            sku: world.skus[0].sku.clone(),
            available: 3,
        },
    );
    let watchers =
        |_: &commerce_core::Sku| vec![UserId::new("w1").unwrap(), UserId::new("w2").unwrap()];
    let notes = notifications_for(&back, owner, watchers).unwrap();
    let keys: BTreeSet<_> = notes.iter().map(|n| n.key.clone()).collect();
    assert_eq!((notes.len(), keys.len()), (2, 2));
    assert!(
        notes
            .iter()
            .all(|n| n.kind == NotificationKind::BackInStock)
    );
}

#[test]
fn a_faulty_carrier_still_sells_one_label_per_key() {
    use saga::testkit::faults::FaultyCarrier;
    let carrier = FaultyCarrier::new(
        InMemoryCarrier::with_standard_services("acme", Currency::EUR),
        9,
        50,
    );
    let req = shipment(Currency::EUR);
    let key = IdempotencyKey::new("faulty-label").unwrap();
    let mut label = None;
    for _ in 0..50 {
        if let Ok(l) = block_on(carrier.create_label(&key, &req, "standard")) {
            label = Some(l);
            break;
        }
    }
    let label = label.expect("a label within 50 tries");
    // Whatever timed out after taking effect, the key bought exactly this label.
    assert_eq!(
        block_on(carrier.inner().create_label(&key, &req, "standard")).unwrap(),
        label
    );
}

#[test]
fn address_corrections_are_ledger_entries_until_delivery() {
    let world = World::new(7, 0, 10);
    let id = confirmed(&world, "life-7");
    let life = lifecycle(&world);
    let now = world.clock.now();
    let mut fixed = sample_address();
    fixed.line1 = "Friedrichstrasse 100".into();
    assert!(matches!(
        block_on(life.correct_address(&id, fixed.clone(), now)).unwrap(),
        Applied::Moved(_)
    ));
    let order = world
        .orders
        .snapshot()
        .into_iter()
        .find(|o| o.id() == &id)
        .unwrap();
    assert_eq!(order.shipping_address(), &fixed);
    assert_eq!(order.status(), OrderStatus::Confirmed);
    let mut bad = sample_address();
    bad.city = String::new();
    assert!(
        block_on(life.correct_address(&id, bad, now)).is_err(),
        "an invalid address is refused"
    );
}
