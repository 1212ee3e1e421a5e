//! The foundation of the commerce SDK: exact money, FX, catalog types, orders and their state
//! machine, domain events, and the ports every engine talks to the outside world through.
//!
//! This crate is pure logic. It does no I/O, reads no clock and draws no random numbers: time
//! comes from a [`Clock`] or a `now` argument, and everything outside the process is a trait in
//! [`ports`] with an in-memory implementation in [`memory`] and a conformance suite in
//! `testkit` (feature `testkit`).
//!
//! # Example: price a line, split a discount, walk an order
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use commerce_core::*;
//! use rust_decimal::Decimal;
//!
//! // Money is exact and never mixes currencies.
//! let unit: Money = "19.99 EUR".parse()?;
//! let line = unit.checked_mul(Decimal::from(3))?; // 59.97 EUR
//!
//! // A 10.00 EUR order discount over lines of 59.97 and 20.00 EUR: the parts sum exactly.
//! let discount = Money::from_minor(1000, Currency::EUR);
//! let parts = allocate(&discount, &[line.amount(), Decimal::from(20)])?;
//! assert_eq!(Money::sum(Currency::EUR, &parts)?, discount);
//! assert_eq!(parts[0].to_string(), "7.50 EUR");
//! assert_eq!(parts[1].to_string(), "2.50 EUR");
//!
//! // Orders move only along the transition table, and every move is in the ledger.
//! let mut order = testkit::sample_order("order-1");
//! let at = Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap();
//! let total = order.totals().grand_total;
//! order.apply(Transition::ConfirmPayment { payment_ref: Some(PaymentRef::new("pay-1")?), captured: total }, at)?;
//! order.apply(Transition::StartFulfilment, at)?;
//! assert!(order.apply(Transition::Refund { amount: order.totals().grand_total }, at).is_err());
//! assert_eq!(Order::replay(order.ledger())?, OrderStatus::Fulfilling);
//! # Ok::<(), commerce_core::Error>(())
//! ```
//!
//! # Map
//!
//! | area | types |
//! |---|---|
//! | money | [`Money`], [`Currency`], [`RoundingMode`], [`allocate`] |
//! | FX and prices | [`FxTable`], [`FxPolicy`], [`PriceTable`], [`PriceScope`], [`Locale`], [`CountryCode`] |
//! | ids | [`Sku`], [`ProductId`], [`OrderId`], [`UserId`], [`CartId`], [`EventId`], [`LocationId`], [`PaymentRef`], [`IdempotencyKey`] |
//! | catalog | [`Product`], [`ProductProjection`], [`CategoryPath`], [`ProductStatus`] |
//! | orders | [`Order`], [`NewOrder`], [`OrderLine`], [`OrderStatus`], [`Transition`], [`TRANSITIONS`], [`LedgerEntry`], [`Settlement`], [`FxQuote`] |
//! | events | [`EventEnvelope`], [`DomainEvent`], [`Dedupe`] |
//! | ports | [`Clock`], [`CatalogStore`], [`OrderStore`], [`EventPublisher`], [`EventLog`] ([`LoggedEvent`]), [`PaymentGateway`], [`Carrier`], [`Notifier`], [`IdempotencyStore`] ([`LeaseToken`]) |
//!
//! # Errors
//! Refused input is an [`Error`]; a failed port call is a [`PortError`], whose
//! [`ErrorKind::Indeterminate`] marks calls that may have taken effect.
//!
//! # Features
//!
//! | feature | what it adds |
//! |---|---|
//! | `testkit` | [`testkit`]: the conformance suite of every port (which adapters run too), fault-injecting port wrappers for simulations, and sample data. Off by default: production builds carry none of it. |

mod cached_catalog;
mod catalog;
mod error;
mod events;
mod fx;
mod ids;
pub mod limits;
pub mod memory;
mod money;
mod order;
pub mod ports;
mod price;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod vector;

pub use cached_catalog::{CacheStats, CachedCatalog};
pub use catalog::{CategoryPath, Image, Product, ProductProjection, ProductSignals, ProductStatus};
pub use error::{Error, ErrorKind, Result};
pub use events::{Dedupe, DomainEvent, EventEnvelope, EventLine, SCHEMA_VERSION, SettledTotal};
pub use fx::{FxPolicy, FxTable};
pub use ids::{
    CartId, EventId, IdempotencyKey, LocationId, OrderId, PaymentRef, ProductId, SessionId, Sku,
    UserId,
};
pub use money::{Currency, Money, RoundingMode, allocate, allocate_minor, allocate_weighted};
pub use order::{
    Address, FxQuote, LedgerEntry, NewOrder, Order, OrderLine, OrderStatus, OrderTotals,
    Settlement, TRANSITIONS, Transition, TransitionKind, next_status, transition_table_markdown,
};
pub use ports::{
    AuthorizeRequest, Begin, Carrier, CasOutcome, CatalogStore, Clock, EventLog, EventPublisher,
    IdempotencyStore, Label, LeaseToken, LoggedEvent, ManualClock, Notification, NotificationKind,
    Notifier, OrderStore, Parcel, Payment, PaymentGateway, PaymentStatus, PortError, PortResult,
    ProjectionCache, RateDecision, RateLimit, RateLimiter, RateQuote, ShipmentRequest,
    TrackingEvent, TrackingStatus, request_fingerprint,
};
pub use price::{CountryCode, FxFallback, Locale, PriceScope, PriceTable};

/// The README's Rust examples run as doc tests, so the first screen never lies.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
