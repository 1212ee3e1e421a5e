//! Carriers: rate quotes, labels and tracking.

use std::fmt::Debug;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::PortResult;
use crate::{Address, Currency, IdempotencyKey, Money};

/// One parcel of a shipment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parcel {
    /// Weight in grams.
    pub weight_g: u32,
    /// Length, width, height in millimetres.
    pub dimensions_mm: [u32; 3],
}

/// What to ship, from where to where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipmentRequest {
    /// Origin (the warehouse).
    pub from: Address,
    /// Destination.
    pub to: Address,
    /// Parcels, at least one.
    pub parcels: Vec<Parcel>,
    /// Currency to quote in.
    pub currency: Currency,
    /// The day the parcels are handed over.
    pub ship_date: NaiveDate,
}

/// A price for one service level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateQuote {
    /// Carrier name.
    pub carrier: String,
    /// Service level (`standard`, `express`).
    pub service: String,
    /// Price.
    pub amount: Money,
    /// Promised delivery date.
    pub estimated_delivery: NaiveDate,
}

/// A bought label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Label {
    /// Carrier name.
    pub carrier: String,
    /// Service level.
    pub service: String,
    /// Tracking number.
    pub tracking_number: String,
    /// Price paid.
    pub amount: Money,
}

/// A normalized tracking status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrackingStatus {
    /// Label created, not yet scanned.
    LabelCreated,
    /// Moving through the network.
    InTransit,
    /// On the van.
    OutForDelivery,
    /// Delivered.
    Delivered,
    /// The carrier lost it.
    Lost,
    /// The address needs correcting.
    AddressIssue,
    /// On its way back to the sender.
    ReturnToSender,
}

/// One tracking update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackingEvent {
    /// The carrier's sequence number: higher is newer. Duplicates repeat a number.
    pub seq: u64,
    /// When the carrier recorded it.
    pub at: DateTime<Utc>,
    /// Status.
    pub status: TrackingStatus,
}

/// A shipping carrier.
///
/// Contract (checked by `testkit::carrier_conformance!`):
/// - `quote` returns every service that can carry the shipment, each in the requested currency;
///   no parcels or an overweight parcel is `Invalid`.
/// - `create_label` is idempotent by key: the same key returns the same label and tracking
///   number; the same key for another request is `Conflict`.
/// - `track` of an unknown number is `NotFound`; events come in ascending `seq`.
/// - `void_label` voids a label the carrier has not scanned yet (the shipment was called off);
///   voiding it again is a no-op; a scanned label is `Refused`; an unknown number is
///   `NotFound`. A voided label never scans.
#[async_trait]
pub trait Carrier: Send + Sync + Debug {
    /// Prices each service level.
    async fn quote(&self, request: &ShipmentRequest) -> PortResult<Vec<RateQuote>>;
    /// Buys a label for `service`.
    async fn create_label(
        &self,
        key: &IdempotencyKey,
        request: &ShipmentRequest,
        service: &str,
    ) -> PortResult<Label>;
    /// The tracking history of a parcel.
    async fn track(&self, tracking_number: &str) -> PortResult<Vec<TrackingEvent>>;
    /// Voids an unused label, so its cost is refunded (the compensation of a label bought for
    /// a shipment that did not happen).
    async fn void_label(&self, key: &IdempotencyKey, tracking_number: &str) -> PortResult<()>;
}
