//! Domain events and their versioned envelope.
//!
//! Every event travels in an [`EventEnvelope`]: a unique id consumers deduplicate on, the event
//! type and schema version consumers dispatch on, when it happened, and a partition key equal to
//! the id of the aggregate it is about, so a partitioned log keeps each aggregate's events in
//! order.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::{
    CartId, EventId, LocationId, Money, OrderId, OrderStatus, ProductId, ProductProjection,
    SessionId, Sku, TransitionKind, UserId,
};

/// The schema version of every event type in this release. A change that removes or retypes a
/// field bumps it; consumers keep reading older versions.
pub const SCHEMA_VERSION: u16 = 1;

/// A line of a confirmed order, as events carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventLine {
    /// The SKU.
    pub sku: Sku,
    /// Units.
    pub quantity: u32,
}

/// An order's grand total in the merchant's currency and the FX rate it was settled at, as
/// events carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettledTotal {
    /// The grand total in the merchant's currency.
    pub amount: Money,
    /// Units of the merchant's currency per unit of the order's.
    pub rate: rust_decimal::Decimal,
    /// The rate's id in the merchant's books.
    pub rate_id: String,
    /// The day the rate is from.
    pub rate_date: chrono::NaiveDate,
}

impl SettledTotal {
    /// The settled total of an order's [`crate::Settlement`].
    pub fn of(settlement: &crate::Settlement) -> SettledTotal {
        SettledTotal {
            amount: settlement.grand_total,
            rate: settlement.quote.rate,
            rate_id: settlement.quote.id.clone(),
            rate_date: settlement.quote.as_of,
        }
    }
}

/// Everything that happens in the domain that another engine may react to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
#[non_exhaustive]
pub enum DomainEvent {
    /// Checkout succeeded: the order is paid (or cost nothing) and stock committed.
    OrderConfirmed {
        /// The order.
        order_id: OrderId,
        /// The customer.
        user_id: UserId,
        /// What the order costs the customer.
        grand_total: Money,
        /// What was bought.
        lines: Vec<EventLine>,
        /// What the order is worth in the merchant's currency, when it settles in another.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        settlement: Option<SettledTotal>,
    },
    /// An order was cancelled.
    OrderCancelled {
        /// The order.
        order_id: OrderId,
        /// Why.
        reason: String,
    },
    /// Any transition of an order, including shipping exceptions.
    OrderStatusChanged {
        /// The order.
        order_id: OrderId,
        /// Status before.
        from: OrderStatus,
        /// Status after.
        to: OrderStatus,
        /// The transition.
        transition: TransitionKind,
        /// The ledger sequence number of the transition.
        seq: u32,
    },
    /// Stock of a SKU at a location changed.
    InventoryChanged {
        /// The SKU.
        sku: Sku,
        /// The location.
        location: LocationId,
        /// Units on hand.
        on_hand: i64,
        /// Units available to sell now.
        available: i64,
    },
    /// A SKU went from nothing available to some.
    BackInStock {
        /// The SKU.
        sku: Sku,
        /// Units available now.
        available: i64,
    },
    /// A product's price changed.
    PriceChanged {
        /// The product.
        product_id: ProductId,
        /// Its SKU.
        sku: Sku,
        /// The price before, if there was one in this currency.
        old: Option<Money>,
        /// The price now.
        new: Money,
        /// The catalog version carrying the new price.
        version: u64,
    },
    /// A product was created or changed; carries the new read model.
    ProductUpserted {
        /// The projection of the product at `projection.version`.
        projection: Box<ProductProjection>,
    },
    /// A product was retired.
    ProductRetired {
        /// The product.
        product_id: ProductId,
        /// Its SKU.
        sku: Sku,
        /// The catalog version that retired it.
        version: u64,
    },
    /// A product's rating changed: a review that counts toward it was published, rejected,
    /// edited or deleted. Carries the whole new rating, not a difference, so a consumer sets
    /// it; `seq` orders one product's rating events, and a consumer drops an event whose
    /// `seq` is not above the last it applied (a redelivery, or one overtaken by a newer).
    ProductRatingChanged {
        /// The product.
        product_id: ProductId,
        /// Its SKU when the rating changed.
        sku: Sku,
        /// The average of the published reviews' stars, rounded half-even to two decimals;
        /// `None` when no published review is left.
        rating: Option<Decimal>,
        /// Published reviews behind the rating.
        review_count: u32,
        /// The product's rating sequence number: 1 for its first rating event, one more for
        /// each after.
        seq: u64,
    },
    /// A cart went untouched past its expiry.
    CartAbandoned {
        /// The cart.
        cart_id: CartId,
        /// Its owner, if known (anonymous carts have none).
        user_id: Option<UserId>,
        /// When it was last changed.
        last_activity_at: DateTime<Utc>,
    },
    /// A shopper viewed a product page. The storefront publishes it (through
    /// [`crate::EventPublisher`]: a view changes no stored state); recommendations keep the
    /// session's recently viewed products from it. Key the event id on the session and a
    /// per-session counter (`{session}:view:{n}`), so a retried publish commits it once.
    ProductViewed {
        /// The browsing session.
        session: SessionId,
        /// The signed-in customer, if any.
        user: Option<UserId>,
        /// The product's SKU.
        sku: Sku,
    },
    /// A carrier reported a shipment's progress.
    ShipmentUpdated {
        /// The order.
        order_id: OrderId,
        /// Carrier name.
        carrier: String,
        /// Tracking number.
        tracking_number: String,
        /// The carrier's status text, normalized by the carrier port.
        status: String,
        /// The carrier's sequence number for the update, to drop duplicates and stale updates.
        carrier_seq: u64,
    },
}

impl DomainEvent {
    /// The event type, as consumers dispatch on it (`OrderConfirmed`, ...).
    pub fn event_type(&self) -> &'static str {
        match self {
            DomainEvent::OrderConfirmed { .. } => "OrderConfirmed",
            DomainEvent::OrderCancelled { .. } => "OrderCancelled",
            DomainEvent::OrderStatusChanged { .. } => "OrderStatusChanged",
            DomainEvent::InventoryChanged { .. } => "InventoryChanged",
            DomainEvent::BackInStock { .. } => "BackInStock",
            DomainEvent::PriceChanged { .. } => "PriceChanged",
            DomainEvent::ProductUpserted { .. } => "ProductUpserted",
            DomainEvent::ProductRetired { .. } => "ProductRetired",
            DomainEvent::ProductRatingChanged { .. } => "ProductRatingChanged",
            DomainEvent::CartAbandoned { .. } => "CartAbandoned",
            DomainEvent::ProductViewed { .. } => "ProductViewed",
            DomainEvent::ShipmentUpdated { .. } => "ShipmentUpdated",
        }
    }

    /// The id of the aggregate the event is about: the order, SKU, product, cart or session
    /// (a view keys on its session, so one session's views stay in order). Catalog
    /// and rating events key on the product id so an upsert, a price change and a rating
    /// change of one product stay in order.
    pub fn aggregate_id(&self) -> &str {
        match self {
            DomainEvent::OrderConfirmed { order_id, .. }
            | DomainEvent::OrderCancelled { order_id, .. }
            | DomainEvent::OrderStatusChanged { order_id, .. }
            | DomainEvent::ShipmentUpdated { order_id, .. } => order_id.as_str(),
            DomainEvent::InventoryChanged { sku, .. } | DomainEvent::BackInStock { sku, .. } => {
                sku.as_str()
            }
            DomainEvent::PriceChanged { product_id, .. }
            | DomainEvent::ProductRetired { product_id, .. }
            | DomainEvent::ProductRatingChanged { product_id, .. } => product_id.as_str(),
            DomainEvent::ProductUpserted { projection } => projection.product_id.as_str(),
            DomainEvent::CartAbandoned { cart_id, .. } => cart_id.as_str(),
            DomainEvent::ProductViewed { session, .. } => session.as_str(),
        }
    }
}

/// An event with the metadata every consumer needs.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use commerce_core::{CartId, DomainEvent, EventEnvelope, EventId};
/// let at = Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap();
/// let env = EventEnvelope::new(
///     EventId::new("evt-1")?,
///     at,
///     DomainEvent::CartAbandoned { cart_id: CartId::new("cart-9")?, user_id: None, last_activity_at: at },
/// );
/// assert_eq!(env.event_type, "CartAbandoned");
/// assert_eq!(env.partition_key, "cart-9");
/// # Ok::<(), commerce_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventEnvelope {
    /// Unique per event; publishing the same id twice delivers it once.
    pub event_id: EventId,
    /// The event type ([`DomainEvent::event_type`]).
    pub event_type: String,
    /// The payload's schema version.
    pub schema_version: u16,
    /// When the event happened (from the caller's clock).
    pub occurred_at: DateTime<Utc>,
    /// The aggregate id ([`DomainEvent::aggregate_id`]).
    pub partition_key: String,
    /// The event.
    pub event: DomainEvent,
}

impl EventEnvelope {
    /// Wraps `event`, deriving type, schema version and partition key from it.
    pub fn new(event_id: EventId, occurred_at: DateTime<Utc>, event: DomainEvent) -> Self {
        EventEnvelope {
            event_id,
            event_type: event.event_type().to_owned(),
            schema_version: SCHEMA_VERSION,
            occurred_at,
            partition_key: event.aggregate_id().to_owned(),
            event,
        }
    }
}

/// A consumer's memory of the event ids it has applied, for logs that deliver at least once
/// (a broker relay republishes after a crash, so one event can appear at two offsets).
///
/// It remembers the most recent `capacity` ids and forgets the oldest first; size the window
/// to cover how far apart a redelivery can land (a relay's batch, a rebalance). A consumer
/// whose effects are already keyed by event id (notifications, idempotent stores) or versioned
/// (the search index) is exact without it; this skips the repeated work.
///
/// ```
/// use commerce_core::{Dedupe, EventId};
/// let mut seen = Dedupe::new(2);
/// let (a, b, c) = (EventId::new("a")?, EventId::new("b")?, EventId::new("c")?);
/// assert!(seen.first_time(&a));
/// assert!(!seen.first_time(&a));       // a redelivery
/// assert!(seen.first_time(&b) && seen.first_time(&c));
/// assert!(seen.first_time(&a));        // forgotten: the window holds b and c
/// # Ok::<(), commerce_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Dedupe {
    ids: std::collections::HashSet<EventId>,
    order: std::collections::VecDeque<EventId>,
    capacity: usize,
}

impl Dedupe {
    /// A window of the last `capacity` ids (at least 1).
    pub fn new(capacity: usize) -> Dedupe {
        Dedupe {
            ids: std::collections::HashSet::new(),
            order: std::collections::VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// True the first time `id` is seen within the window (and remembers it); false for a
    /// repeat.
    pub fn first_time(&mut self, id: &EventId) -> bool {
        if self.ids.contains(id) {
            return false;
        }
        if self.order.len() == self.capacity
            && let Some(oldest) = self.order.pop_front()
        {
            self.ids.remove(&oldest);
        }
        self.ids.insert(id.clone());
        self.order.push_back(id.clone());
        true
    }

    /// Ids remembered.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}
