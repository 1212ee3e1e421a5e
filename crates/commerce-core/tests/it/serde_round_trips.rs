//! Every public data type survives a JSON round trip unchanged.

use std::fmt::Debug;

use chrono::NaiveDate;
use commerce_core::testkit::{sample_address, sample_order, sample_product, t0};
use commerce_core::*;
use proptest::prelude::*;
use rust_decimal::Decimal;
use serde::Serialize;
use serde::de::DeserializeOwned;

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: &T) {
    let json = serde_json::to_string(value).unwrap();
    let back: T = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{json}: {e}"));
    assert_eq!(&back, value, "{json}");
}

fn ev(event: DomainEvent) -> EventEnvelope {
    EventEnvelope::new(EventId::new("evt-1").unwrap(), t0(), event)
}

#[test]
fn every_domain_event_round_trips() {
    let order_id = OrderId::new("o-1").unwrap();
    let sku = Sku::new("SKU-1").unwrap();
    let product = sample_product("p-1", "SKU-1");
    let eur = Money::from_minor(1999, Currency::EUR);
    let events = vec![
        DomainEvent::OrderConfirmed {
            order_id: order_id.clone(),
            user_id: UserId::new("u-1").unwrap(),
            grand_total: eur,
            lines: vec![EventLine {
                sku: sku.clone(),
                quantity: 2,
            }],
            settlement: Some(SettledTotal {
                amount: Money::from_minor(2165, Currency::USD),
                rate: Decimal::new(10832, 4),
                rate_id: "EUR:2026-11-30:EUR-USD".into(),
                rate_date: chrono::NaiveDate::from_ymd_opt(2026, 11, 30).unwrap(),
            }),
        },
        DomainEvent::OrderCancelled {
            order_id: order_id.clone(),
            reason: "payment failed".into(),
        },
        DomainEvent::OrderStatusChanged {
            order_id: order_id.clone(),
            from: OrderStatus::Confirmed,
            to: OrderStatus::Fulfilling,
            transition: TransitionKind::StartFulfilment,
            seq: 2,
        },
        DomainEvent::InventoryChanged {
            sku: sku.clone(),
            location: LocationId::new("wh-1").unwrap(),
            on_hand: 10,
            available: 7,
        },
        DomainEvent::BackInStock {
            sku: sku.clone(),
            available: 3,
        },
        DomainEvent::PriceChanged {
            product_id: product.id.clone(),
            sku: sku.clone(),
            old: None,
            new: eur,
            version: 2,
        },
        DomainEvent::ProductUpserted {
            projection: Box::new(ProductProjection::from_product(&product)),
        },
        DomainEvent::ProductRetired {
            product_id: product.id.clone(),
            sku: sku.clone(),
            version: 3,
        },
        DomainEvent::ProductRatingChanged {
            product_id: product.id.clone(),
            sku: sku.clone(),
            rating: Some(Decimal::new(433, 2)),
            review_count: 3,
            seq: 7,
        },
        DomainEvent::CartAbandoned {
            cart_id: CartId::new("c-1").unwrap(),
            user_id: None,
            last_activity_at: t0(),
        },
        DomainEvent::ProductViewed {
            session: SessionId::new("s-1").unwrap(),
            user: Some(UserId::new("u-1").unwrap()),
            sku: sku.clone(),
        },
        DomainEvent::ShipmentUpdated {
            order_id,
            carrier: "dhl".into(),
            tracking_number: "T-1".into(),
            status: "in_transit".into(),
            carrier_seq: 4,
        },
    ];
    let mut types = std::collections::BTreeSet::new();
    for e in events {
        let envelope = ev(e);
        assert!(types.insert(envelope.event_type.clone()));
        assert_eq!(envelope.schema_version, SCHEMA_VERSION);
        round_trip(&envelope);
    }
    assert_eq!(types.len(), 12, "one of each event type");
}

#[test]
fn catalog_order_and_port_types_round_trip() {
    let product = sample_product("p-1", "SKU-1");
    round_trip(&product);
    round_trip(&ProductProjection::from_product(&product));
    round_trip(&product.category);
    round_trip(&product.status);
    round_trip(&sample_order("o-1"));
    round_trip(&sample_address());
    round_trip(&RoundingMode::HalfUp);
    round_trip(&FxPolicy::default());
    round_trip(&Locale::new("de-CH").unwrap());
    round_trip(&CountryCode::new("CH").unwrap());
    for scope in [
        PriceScope::Default,
        PriceScope::Country(CountryCode::new("AT").unwrap()),
        PriceScope::Locale(Locale::new("fr").unwrap()),
    ] {
        round_trip(&scope);
    }
    let mut fx = FxTable::new(Currency::EUR);
    fx.insert_day(
        NaiveDate::from_ymd_opt(2026, 11, 20).unwrap(),
        [(Currency::USD, Decimal::new(10832, 4))],
    )
    .unwrap();
    round_trip(&fx);
    let eur = Money::from_minor(500, Currency::EUR);
    let payment = Payment {
        payment_ref: PaymentRef::new("pay-1").unwrap(),
        order_id: OrderId::new("o-1").unwrap(),
        authorized: eur,
        captured: eur,
        refunded: Money::zero(Currency::EUR),
        status: PaymentStatus::Captured,
    };
    round_trip(&payment);
    round_trip(&AuthorizeRequest {
        idempotency_key: IdempotencyKey::new("o-1:charge").unwrap(),
        order_id: OrderId::new("o-1").unwrap(),
        amount: eur,
        method_token: "tok_visa".into(),
        capture: true,
    });
    let ship_date = NaiveDate::from_ymd_opt(2026, 11, 26).unwrap();
    round_trip(&ShipmentRequest {
        from: sample_address(),
        to: sample_address(),
        parcels: vec![Parcel {
            weight_g: 500,
            dimensions_mm: [1, 2, 3],
        }],
        currency: Currency::EUR,
        ship_date,
    });
    round_trip(&RateQuote {
        carrier: "dhl".into(),
        service: "standard".into(),
        amount: eur,
        estimated_delivery: ship_date,
    });
    round_trip(&Label {
        carrier: "dhl".into(),
        service: "standard".into(),
        tracking_number: "T-1".into(),
        amount: eur,
    });
    round_trip(&TrackingEvent {
        seq: 1,
        at: t0(),
        status: TrackingStatus::ReturnToSender,
    });
    round_trip(&Notification {
        key: IdempotencyKey::new("n-1").unwrap(),
        recipient: UserId::new("u-1").unwrap(),
        kind: NotificationKind::AbandonedCart,
        order_id: None,
        sku: Some(Sku::new("SKU-1").unwrap()),
    });
}

proptest! {
    #[test]
    fn money_and_ids_round_trip(mantissa in any::<i64>(), scale in 0u32..28, idx in 0usize..Currency::ALL.len(), id in "[A-Za-z0-9_.:-]{1,128}") {
        round_trip(&Money::new(Decimal::new(mantissa, scale), Currency::ALL[idx]));
        round_trip(&Currency::ALL[idx]);
        round_trip(&OrderId::new(&id).unwrap());
        round_trip(&IdempotencyKey::new(&id).unwrap());
        if !id.contains(':') && id.len() <= 64 {
            round_trip(&Sku::new(&id).unwrap());
        }
    }
}

/// `order` as stored JSON with one more ledger entry, `from` its status to `to`, that
/// `Order::apply` never wrote.
fn with_forged_entry(order: &Order, to: OrderStatus, transition: Transition) -> serde_json::Value {
    let mut json = serde_json::to_value(order).unwrap();
    let entry = LedgerEntry {
        seq: u32::try_from(order.ledger().len() + 1).unwrap(),
        at: t0(),
        from: order.status(),
        to,
        transition,
    };
    json["ledger"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::to_value(&entry).unwrap());
    json["status"] = serde_json::to_value(to).unwrap();
    json
}

#[test]
fn a_stored_order_passes_the_guards_a_live_one_does() {
    // Cancelled before payment, then a forged refund of another amount: the table allows
    // cancelled → refunded, but `apply` refuses a refund of an order never paid.
    let mut order = sample_order("o-forged");
    let _ = order
        .apply(
            Transition::Cancel {
                reason: "changed my mind".into(),
            },
            t0(),
        )
        .unwrap();
    let json = with_forged_entry(
        &order,
        OrderStatus::Refunded,
        Transition::Refund {
            amount: Money::from_minor(999_999, Currency::EUR),
        },
    );
    let ledger: Vec<LedgerEntry> = serde_json::from_value(json["ledger"].clone()).unwrap();
    assert_eq!(
        Order::replay(&ledger).unwrap(),
        OrderStatus::Refunded,
        "the table alone allows it"
    );
    assert!(serde_json::from_value::<Order>(json).is_err());

    // A shipment without a carrier is refused on load as it is live.
    let mut order = sample_order("o-ship");
    for t in [
        Transition::ConfirmPayment {
            payment_ref: Some(PaymentRef::new("pay-1").unwrap()),
            captured: Money::from_minor(4588, Currency::EUR),
        },
        Transition::StartFulfilment,
    ] {
        let _ = order.apply(t, t0()).unwrap();
    }
    let json = with_forged_entry(
        &order,
        OrderStatus::Shipped,
        Transition::Ship {
            carrier: " ".into(),
            tracking_number: "T-1".into(),
            lines: Vec::new(),
        },
    );
    assert!(serde_json::from_value::<Order>(json).is_err());
    // The honest version of the same order loads.
    let _ = order
        .apply(
            Transition::Ship {
                carrier: "acme".into(),
                tracking_number: "T-1".into(),
                lines: Vec::new(),
            },
            t0(),
        )
        .unwrap();
    round_trip(&order);
}
