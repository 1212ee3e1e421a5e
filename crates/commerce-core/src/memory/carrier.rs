//! In-memory carrier.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Days, Utc};
use rust_decimal::Decimal;

use super::lock;
use crate::ports::{
    Carrier, ErrorKind, Label, PortError, PortResult, RateQuote, ShipmentRequest, TrackingEvent,
    TrackingStatus,
};
use crate::{Currency, IdempotencyKey, Money};

/// Heaviest parcel the in-memory carrier takes, in grams.
pub const PARCEL_WEIGHT_MAX_G: u32 = 30_000;
/// Most parcels in one shipment.
pub const PARCELS_MAX: usize = 50;

/// One service level of the in-memory carrier: a price of `base + per_kg × ⌈kg⌉` per parcel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceLevel {
    /// Name (`standard`, `express`).
    pub name: String,
    /// Price per parcel.
    pub base: Money,
    /// Price per started kilogram.
    pub per_kg: Money,
    /// Days from ship date to delivery.
    pub transit_days: u32,
}

/// A [`Carrier`] with table-driven rates and a tracking history that tests drive.
#[derive(Debug)]
pub struct InMemoryCarrier {
    name: String,
    currency: Currency,
    services: Vec<ServiceLevel>,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    labels: HashMap<IdempotencyKey, (String, Label)>,
    tracking: HashMap<String, Vec<TrackingEvent>>,
    /// Voided tracking numbers.
    voided: std::collections::HashSet<String>,
    next: u64,
}

fn err(kind: ErrorKind, message: impl Into<String>) -> PortError {
    PortError::new(kind, message)
}

impl InMemoryCarrier {
    /// A carrier quoting in `currency` with the given services.
    pub fn new(name: impl Into<String>, currency: Currency, services: Vec<ServiceLevel>) -> Self {
        InMemoryCarrier {
            name: name.into(),
            currency,
            services,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// A carrier with `standard` (4.90 + 0.50/kg, 3 days) and `express` (9.90 + 1.00/kg, 1 day),
    /// in major units of `currency`.
    pub fn with_standard_services(name: impl Into<String>, currency: Currency) -> Self {
        let m = |units: i64, hundredths: u32| Money::new(Decimal::new(units, hundredths), currency);
        InMemoryCarrier::new(
            name,
            currency,
            vec![
                ServiceLevel {
                    name: "standard".into(),
                    base: m(490, 2),
                    per_kg: m(50, 2),
                    transit_days: 3,
                },
                ServiceLevel {
                    name: "express".into(),
                    base: m(990, 2),
                    per_kg: m(100, 2),
                    transit_days: 1,
                },
            ],
        )
    }

    /// Every label sold, in the order sold, and whether it was voided (for checkers).
    pub fn labels(&self) -> Vec<(Label, bool)> {
        let inner = lock(&self.inner);
        let mut labels: Vec<(Label, bool)> = inner
            .labels
            .values()
            .map(|(_, l)| (l.clone(), inner.voided.contains(&l.tracking_number)))
            .collect();
        labels.sort_by(|a, b| a.0.tracking_number.cmp(&b.0.tracking_number));
        labels
    }

    /// Records a tracking update for `tracking_number` (what the carrier's network would do).
    ///
    /// # Errors
    /// `NotFound` for a tracking number this carrier never issued.
    pub fn push_tracking(
        &self,
        tracking_number: &str,
        status: TrackingStatus,
        at: DateTime<Utc>,
    ) -> PortResult<TrackingEvent> {
        let mut inner = lock(&self.inner);
        if inner.voided.contains(tracking_number) {
            return Err(err(
                ErrorKind::Refused,
                format!("label {tracking_number} was voided"),
            ));
        }
        let events = inner
            .tracking
            .get_mut(tracking_number)
            .ok_or_else(|| err(ErrorKind::NotFound, format!("tracking {tracking_number}")))?;
        let seq = events.last().map_or(1, |e| e.seq + 1);
        let event = TrackingEvent { seq, at, status };
        events.push(event.clone());
        Ok(event)
    }

    fn rates(&self, request: &ShipmentRequest) -> PortResult<Vec<RateQuote>> {
        if request.currency != self.currency {
            return Err(err(
                ErrorKind::Invalid,
                format!("{} quotes in {} only", self.name, self.currency),
            ));
        }
        if request.parcels.is_empty() || request.parcels.len() > PARCELS_MAX {
            return Err(err(
                ErrorKind::Invalid,
                format!("1 to {PARCELS_MAX} parcels"),
            ));
        }
        if let Some(p) = request
            .parcels
            .iter()
            .find(|p| p.weight_g == 0 || p.weight_g > PARCEL_WEIGHT_MAX_G)
        {
            return Err(err(
                ErrorKind::Invalid,
                format!("parcel weight {} g out of range", p.weight_g),
            ));
        }
        request.from.validate()?;
        request.to.validate()?;
        self.services
            .iter()
            .map(|s| {
                let mut amount = Money::zero(self.currency);
                for p in &request.parcels {
                    let kg = Decimal::from(p.weight_g.div_ceil(1000));
                    amount = amount
                        .checked_add(&s.base)?
                        .checked_add(&s.per_kg.checked_mul(kg)?)?;
                }
                let estimated_delivery = request
                    .ship_date
                    .checked_add_days(Days::new(u64::from(s.transit_days)))
                    .ok_or_else(|| crate::Error::invalid("ship_date", "out of range"))?;
                Ok(RateQuote {
                    carrier: self.name.clone(),
                    service: s.name.clone(),
                    amount,
                    estimated_delivery,
                })
            })
            .collect::<crate::Result<Vec<_>>>()
            .map_err(PortError::from)
    }
}

#[async_trait]
impl Carrier for InMemoryCarrier {
    async fn quote(&self, request: &ShipmentRequest) -> PortResult<Vec<RateQuote>> {
        self.rates(request)
    }

    async fn create_label(
        &self,
        key: &IdempotencyKey,
        request: &ShipmentRequest,
        service: &str,
    ) -> PortResult<Label> {
        let fingerprint = format!("{request:?}|{service}");
        {
            let inner = lock(&self.inner);
            if let Some((first, label)) = inner.labels.get(key) {
                return if *first == fingerprint {
                    Ok(label.clone())
                } else {
                    Err(err(
                        ErrorKind::Conflict,
                        format!("key {key} was used for another label"),
                    ))
                };
            }
        }
        let quote = self
            .rates(request)?
            .into_iter()
            .find(|q| q.service == service)
            .ok_or_else(|| err(ErrorKind::Invalid, format!("no service {service:?}")))?;
        let mut inner = lock(&self.inner);
        // Re-check under the lock: a concurrent call with the same key may have won.
        if let Some((first, label)) = inner.labels.get(key) {
            return if *first == fingerprint {
                Ok(label.clone())
            } else {
                Err(err(
                    ErrorKind::Conflict,
                    format!("key {key} was used for another label"),
                ))
            };
        }
        inner.next += 1;
        let label = Label {
            carrier: self.name.clone(),
            service: quote.service,
            tracking_number: format!("{}-{:010}", self.name, inner.next),
            amount: quote.amount,
        };
        inner
            .tracking
            .insert(label.tracking_number.clone(), Vec::new());
        inner
            .labels
            .insert(key.clone(), (fingerprint, label.clone()));
        Ok(label)
    }

    async fn track(&self, tracking_number: &str) -> PortResult<Vec<TrackingEvent>> {
        lock(&self.inner)
            .tracking
            .get(tracking_number)
            .cloned()
            .ok_or_else(|| err(ErrorKind::NotFound, format!("tracking {tracking_number}")))
    }

    async fn void_label(&self, _key: &IdempotencyKey, tracking_number: &str) -> PortResult<()> {
        let mut inner = lock(&self.inner);
        let Some(events) = inner.tracking.get(tracking_number) else {
            return Err(err(
                ErrorKind::NotFound,
                format!("tracking {tracking_number}"),
            ));
        };
        if !events.is_empty() {
            return Err(err(
                ErrorKind::Refused,
                format!("label {tracking_number} was already scanned"),
            ));
        }
        // Voiding again (under any key) changes nothing.
        inner.voided.insert(tracking_number.to_owned());
        Ok(())
    }
}
