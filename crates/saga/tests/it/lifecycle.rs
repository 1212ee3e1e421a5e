//! The order after checkout: shipping, delivery, cancellation with its compensations, returns,
//! tracking webhooks — each a saga whose pivot commits the order and its events together;
//! rate shopping; the flash-sale queue; notifications.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{Days, TimeDelta};
use commerce_core::memory::InMemoryCarrier;
use commerce_core::testkit::faults::{CrashPoint, Faults, Faulty};
use commerce_core::testkit::{sample_address, t0};
use commerce_core::{
    Carrier, Clock, Currency, ErrorKind, EventLog, IdempotencyKey, NotificationKind, OrderId,
    OrderStatus, TrackingStatus, TransitionKind, UserId,
};
use futures::FutureExt;
use futures::executor::block_on;
use inventory::StockLevels;
use saga::*;

use crate::world::{World, buy, input, order, shipment_request};

fn confirmed(world: &World, id: &str) -> OrderId {
    let order = input(world, id, &[(0, 2)], false, "tok_visa");
    let outcome = block_on(world.checkout("w", 1).checkout(&order)).unwrap();
    assert!(
        matches!(outcome, CheckoutOutcome::Confirmed { .. }),
        "{outcome:?}"
    );
    order.order.id
}

fn moved(applied: saga::Result<Applied>) -> Box<commerce_core::Order> {
    match applied.unwrap() {
        Applied::Moved(order) => order,
        other => panic!("{other:?}"),
    }
}

fn tracking_number(order: &commerce_core::Order) -> String {
    order
        .ledger()
        .iter()
        .rev()
        .find_map(|e| match &e.transition {
            commerce_core::Transition::Ship {
                tracking_number, ..
            } => Some(tracking_number.clone()),
            _ => None,
        })
        .unwrap()
}

#[test]
fn ship_deliver_and_tracking_webhooks_out_of_order() {
    let world = World::new(10);
    let id = confirmed(&world, "life-1");
    let life = world.lifecycle("w", 1);
    let _ = moved(block_on(life.start_fulfilment(&id)));
    let shipped = moved(block_on(life.ship(&id, buy("first"))));
    assert_eq!(shipped.status(), OrderStatus::Shipped);
    // The same shipment again: the same answer, nothing shipped twice.
    let _ = moved(block_on(life.ship(&id, buy("first"))));
    let now = world.clock.now();
    let level = block_on(world.stock.level(&world.skus[0], now)).unwrap();
    assert_eq!(
        (level.on_hand, level.committed),
        (8, 0),
        "stock left the warehouse once"
    );
    assert_eq!(world.carrier.labels().len(), 1, "one label bought");

    let tracking = tracking_number(&shipped);
    let t = |m: i64| now + TimeDelta::minutes(m);
    let in_transit = world
        .carrier
        .push_tracking(&tracking, TrackingStatus::InTransit, t(10))
        .unwrap();
    let delivered = world
        .carrier
        .push_tracking(&tracking, TrackingStatus::Delivered, t(20))
        .unwrap();
    // The delivery arrives first, then the older scan, then the delivery again.
    let track = |e| block_on(life.on_tracking(&id, "acme", &tracking, e)).unwrap();
    assert!(matches!(track(&delivered), Applied::Moved(_)));
    assert_eq!(track(&in_transit), Applied::Ignored);
    assert!(
        matches!(track(&delivered), Applied::Moved(o) if o.status() == OrderStatus::Delivered),
        "a repeated webhook gets the first answer"
    );
    let o = order(&world, &id);
    assert_eq!(o.status(), OrderStatus::Delivered);
    assert_eq!(
        o.ledger()
            .iter()
            .filter(|e| e.transition.kind() == TransitionKind::Deliver)
            .count(),
        1
    );
    let kinds: Vec<_> = world.notifier.sent().iter().map(|n| n.kind).collect();
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == NotificationKind::OrderDelivered)
            .count(),
        1
    );
    assert!(kinds.contains(&NotificationKind::OrderShipped));
    // Each carrier update was committed once, by sequence; the delivery's with the order.
    let updates = block_on(world.outbox.read(0, 1_000))
        .unwrap()
        .into_iter()
        .filter(|e| e.envelope.event_type == "ShipmentUpdated")
        .count();
    assert_eq!(updates, 2);

    // A return: stock back on the shelf, full refund.
    let returned = moved(block_on(life.return_received(&id, true)));
    assert_eq!(returned.status(), OrderStatus::Refunded);
    let level = block_on(world.stock.level(&world.skus[0], now)).unwrap();
    assert_eq!(level.on_hand, 10);
    let paid = world
        .payments
        .snapshot()
        .into_iter()
        .find(|p| p.order_id == id)
        .unwrap();
    assert_eq!(paid.refunded, paid.captured);
}

#[test]
fn a_lost_parcel_is_fulfilled_again_and_old_scans_are_ignored() {
    let world = World::new(10);
    let id = confirmed(&world, "life-2");
    let life = world.lifecycle("w", 1);
    let _ = moved(block_on(life.start_fulfilment(&id)));
    let first = tracking_number(&moved(block_on(life.ship(&id, buy("first")))));
    let lost = world
        .carrier
        .push_tracking(&first, TrackingStatus::Lost, t0() + TimeDelta::hours(48))
        .unwrap();
    let o = moved(block_on(life.on_tracking(&id, "acme", &first, &lost)));
    assert_eq!(o.status(), OrderStatus::Fulfilling);
    let second = tracking_number(&moved(block_on(life.ship(&id, buy("replacement")))));
    assert_ne!(first, second);
    // The first parcel turns up "delivered": it is not the current shipment.
    let found = world
        .carrier
        .push_tracking(
            &first,
            TrackingStatus::Delivered,
            t0() + TimeDelta::hours(50),
        )
        .unwrap();
    assert_eq!(
        block_on(life.on_tracking(&id, "acme", &first, &found)).unwrap(),
        Applied::Ignored
    );
    let o = order(&world, &id);
    assert_eq!(o.status(), OrderStatus::Shipped);
    assert_eq!(
        o.ledger()
            .iter()
            .filter(|e| e.transition.kind() == TransitionKind::ReportLost)
            .count(),
        1
    );
    // Two parcels left the warehouse: the replacement's units were committed afresh.
    let level = block_on(world.stock.level(&world.skus[0], world.clock.now())).unwrap();
    assert_eq!((level.on_hand, level.committed), (6, 0));
}

#[test]
fn cancelling_before_shipping_compensates_and_after_is_refused() {
    let world = World::new(10);
    let id = confirmed(&world, "life-3");
    let life = world.lifecycle("w", 1);
    let cancelled = moved(block_on(life.cancel(&id, "changed my mind")));
    assert_eq!(cancelled.status(), OrderStatus::Refunded);
    let level = block_on(world.stock.level(&world.skus[0], world.clock.now())).unwrap();
    assert_eq!(
        (level.committed, level.available),
        (0, 10),
        "stock back on sale"
    );
    let paid = world
        .payments
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
    // The cancellation and its event committed together, once.
    let events = world.outbox.snapshot();
    assert_eq!(
        events
            .iter()
            .filter(|e| e.event_type == "OrderCancelled")
            .count(),
        1
    );
    // Asking again gets the first answer, whatever the reason.
    let again = moved(block_on(life.cancel(&id, "again")));
    assert_eq!(again.status(), OrderStatus::Refunded);

    let shipped = confirmed(&world, "life-4");
    let _ = moved(block_on(life.start_fulfilment(&shipped)));
    let _ = moved(block_on(life.ship(&shipped, buy("first"))));
    let refused = block_on(life.cancel(&shipped, "too late")).unwrap();
    assert_eq!(
        refused,
        Applied::Refused(LifecycleFailure::IllegalTransition {
            from: OrderStatus::Shipped,
            transition: TransitionKind::Cancel,
        })
    );
    let Applied::Refused(failure) = refused else {
        unreachable!()
    };
    assert_eq!(failure.kind(), ErrorKind::Conflict);
    assert!(matches!(
        block_on(life.cancel(&OrderId::new("no-such-order").unwrap(), "x")),
        Err(saga::Error::NotFound { .. })
    ));
}

#[test]
fn a_shipment_the_order_refuses_voids_its_label() {
    let world = World::new(10);
    let id = confirmed(&world, "life-5");
    let life = world.lifecycle("w", 1);
    // Not in fulfilment yet: the order cannot ship, so the label bought for it is voided.
    let refused = block_on(life.ship(&id, buy("early"))).unwrap();
    assert!(
        matches!(
            refused,
            Applied::Refused(LifecycleFailure::IllegalTransition {
                from: OrderStatus::Confirmed,
                transition: TransitionKind::Ship,
            })
        ),
        "{refused:?}"
    );
    let labels = world.carrier.labels();
    assert_eq!(labels.len(), 1);
    assert!(labels[0].1, "voided");
    let level = block_on(world.stock.level(&world.skus[0], world.clock.now())).unwrap();
    assert_eq!((level.on_hand, level.committed), (10, 2), "nothing left");
}

#[test]
fn a_cancellation_crashed_anywhere_ends_refunded_with_its_stock_back() {
    // The process dies at every call of the cancellation, before and after; recovery by
    // another worker must end with the order refunded, stock back, one refund, one event.
    for crash_at in 1..40 {
        for point in [CrashPoint::Before, CrashPoint::After] {
            let world = World::new(10);
            let id = confirmed(&world, &format!("crash-cancel-{crash_at}"));
            let p = world.process("dies", 3, 0);
            p.switch.arm_at(crash_at, point);
            let finished = p.lifecycle.cancel(&id, "customer asked").now_or_never();
            world.clock.advance(TimeDelta::seconds(301));
            let other = world.lifecycle("recovers", 4);
            let _ = block_on(other.recover(10)).unwrap();
            let o = order(&world, &id);
            let started = world
                .journal
                .snapshot()
                .iter()
                .any(|s| s.kind == CancelSaga::KIND);
            let cancelled = o
                .ledger()
                .iter()
                .any(|e| e.transition.kind() == TransitionKind::Cancel);
            let label = format!("crash at {crash_at} {point:?}");
            if cancelled {
                assert_eq!(o.status(), OrderStatus::Refunded, "{label}");
                let paid = &world.payments.snapshot()[0];
                assert_eq!(paid.refunded, paid.captured, "{label}");
                let level = block_on(world.stock.level(&world.skus[0], world.clock.now())).unwrap();
                assert_eq!((level.committed, level.available), (0, 10), "{label}");
                let events = world.outbox.snapshot();
                assert_eq!(
                    events
                        .iter()
                        .filter(|e| e.event_type == "OrderCancelled")
                        .count(),
                    1,
                    "{label}"
                );
            } else {
                // Died before the cancellation took effect: nothing changed.
                assert!(!started || o.status() == OrderStatus::Confirmed, "{label}");
                assert_eq!(o.status(), OrderStatus::Confirmed, "{label}");
            }
            if finished.is_some() {
                assert!(
                    crash_at > 5,
                    "a cancellation makes more than {crash_at} calls"
                );
                return;
            }
        }
    }
    panic!("a cancellation that never finishes within 40 calls");
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
    let req = shipment_request();
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
        ErrorKind::NotFound
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
    let full = small.join(&users[1], t0()).unwrap_err();
    assert!(matches!(full, Error::QueueFull { capacity: 1 }));
    assert_eq!(full.kind(), ErrorKind::Unavailable);
}

#[test]
fn events_map_to_notifications_once() {
    let world = World::new(10);
    let _ = confirmed(&world, "life-6");
    let events = world.outbox.snapshot();
    let confirmed_event = events
        .iter()
        .find(|e| e.event_type == "OrderConfirmed")
        .unwrap();
    let owner = |_: &commerce_core::OrderId| Some(UserId::new("user-life-6").unwrap());
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
    let carrier = Faulty::new(
        Arc::new(InMemoryCarrier::with_standard_services(
            "acme",
            Currency::EUR,
        )),
        Faults::new(9, 50),
    );
    let req = shipment_request();
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
    assert_eq!(carrier.inner().labels().len(), 1);
}

#[test]
fn address_corrections_are_ledger_entries_until_delivery() {
    let world = World::new(10);
    let id = confirmed(&world, "life-7");
    let life = world.lifecycle("w", 1);
    let mut fixed = sample_address();
    fixed.line1 = "Friedrichstrasse 100".into();
    let o = moved(block_on(life.correct_address(&id, fixed.clone())));
    assert_eq!(o.shipping_address(), &fixed);
    assert_eq!(o.status(), OrderStatus::Confirmed);
    assert_eq!(order(&world, &id), *o, "stored as returned");
    let mut bad = sample_address();
    bad.city = String::new();
    let err = block_on(life.correct_address(&id, bad)).unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Invalid,
        "an invalid address is refused"
    );
    let _ = world.clock.now();
}
