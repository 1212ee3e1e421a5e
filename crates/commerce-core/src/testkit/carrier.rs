//! Conformance cases for [`Carrier`]. Cases ship within Germany and quote in EUR.

use chrono::NaiveDate;

use super::sample_address;
use crate::{Carrier, Currency, ErrorKind, IdempotencyKey, Parcel, ShipmentRequest};

fn shipment(weights_g: &[u32]) -> ShipmentRequest {
    ShipmentRequest {
        from: sample_address(),
        to: sample_address(),
        parcels: weights_g
            .iter()
            .map(|w| Parcel {
                weight_g: *w,
                dimensions_mm: [300, 200, 100],
            })
            .collect(),
        currency: Currency::EUR,
        ship_date: NaiveDate::from_ymd_opt(2026, 11, 26).unwrap(),
    }
}

/// Quotes come in the requested currency, rounded, with a delivery date after the ship date.
pub async fn quotes_are_well_formed<C: Carrier + ?Sized>(carrier: &C) {
    let req = shipment(&[1_200, 400]);
    let quotes = carrier.quote(&req).await.unwrap();
    assert!(!quotes.is_empty());
    for q in &quotes {
        assert_eq!(q.amount.currency(), Currency::EUR);
        assert!(q.amount.is_positive() && q.amount.is_rounded(), "{q:?}");
        assert!(q.estimated_delivery > req.ship_date, "{q:?}");
    }
}

/// A shipment without parcels, or with an absurd parcel, is `Invalid`.
pub async fn bad_shipments_are_invalid<C: Carrier + ?Sized>(carrier: &C) {
    assert_eq!(
        carrier.quote(&shipment(&[])).await.unwrap_err().kind,
        ErrorKind::Invalid
    );
    assert_eq!(
        carrier.quote(&shipment(&[0])).await.unwrap_err().kind,
        ErrorKind::Invalid
    );
    let err = carrier.quote(&shipment(&[1_000_000])).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Invalid);
}

/// A label is bought once per key; the key reused for another shipment is `Conflict`.
pub async fn labels_are_idempotent<C: Carrier + ?Sized>(carrier: &C) {
    let req = shipment(&[800]);
    let service = carrier.quote(&req).await.unwrap()[0].service.clone();
    let k = IdempotencyKey::new("label-a").unwrap();
    let first = carrier.create_label(&k, &req, &service).await.unwrap();
    assert_eq!(
        carrier.create_label(&k, &req, &service).await.unwrap(),
        first
    );
    let other = shipment(&[900]);
    assert_eq!(
        carrier
            .create_label(&k, &other, &service)
            .await
            .unwrap_err()
            .kind,
        ErrorKind::Conflict
    );
    let second = carrier
        .create_label(&IdempotencyKey::new("label-b").unwrap(), &req, &service)
        .await
        .unwrap();
    assert_ne!(second.tracking_number, first.tracking_number);
}

/// A new label tracks with events in ascending order; an unknown number is `NotFound`.
pub async fn tracking<C: Carrier + ?Sized>(carrier: &C) {
    let req = shipment(&[800]);
    let service = carrier.quote(&req).await.unwrap()[0].service.clone();
    let label = carrier
        .create_label(&IdempotencyKey::new("label-c").unwrap(), &req, &service)
        .await
        .unwrap();
    let events = carrier.track(&label.tracking_number).await.unwrap();
    assert!(events.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(
        carrier.track("NO-SUCH-PARCEL").await.unwrap_err().kind,
        ErrorKind::NotFound
    );
}

/// An unscanned label can be voided, once or many times; an unknown one is `NotFound`.
pub async fn labels_can_be_voided<C: Carrier + ?Sized>(carrier: &C) {
    let req = shipment(&[800]);
    let service = carrier.quote(&req).await.unwrap()[0].service.clone();
    let label = carrier
        .create_label(&IdempotencyKey::new("label-d").unwrap(), &req, &service)
        .await
        .unwrap();
    let void = IdempotencyKey::new("void-d").unwrap();
    carrier
        .void_label(&void, &label.tracking_number)
        .await
        .unwrap();
    carrier
        .void_label(&void, &label.tracking_number)
        .await
        .unwrap();
    assert_eq!(
        carrier
            .void_label(&void, "NO-SUCH-PARCEL")
            .await
            .unwrap_err()
            .kind,
        ErrorKind::NotFound
    );
}

/// Runs the [`Carrier`] conformance suite against `$make` (a carrier quoting in EUR).
#[macro_export]
macro_rules! carrier_conformance {
    ($make:expr) => {
        $crate::__conformance_cases!($make;
            quotes_are_well_formed => $crate::testkit::carrier::quotes_are_well_formed,
            bad_shipments_are_invalid => $crate::testkit::carrier::bad_shipments_are_invalid,
            labels_are_idempotent => $crate::testkit::carrier::labels_are_idempotent,
            tracking => $crate::testkit::carrier::tracking,
            labels_can_be_voided => $crate::testkit::carrier::labels_can_be_voided,
        );
    };
}
