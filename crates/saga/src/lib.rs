//! A durable saga orchestrator and the checkout saga: no charge without an order.
//!
//! - [`Orchestrator`] drives a [`SagaDefinition`] — an explicit list of compensatable steps, a
//!   pivot and retriable steps — from a [`SagaJournal`]. Each step is registered in the journal
//!   before its forward call (so its compensation is known even if the call times out), its
//!   output is recorded when it is done, and recovery reads the journal; no code is replayed.
//!   Retries use exponential backoff with seeded jitter; an indeterminate outcome is resolved
//!   by asking ([`SagaDefinition::resolve`]) before anything else; a lease keeps two workers
//!   from driving one saga; a step may wait for an external signal ([`Orchestrator::complete`]).
//!   Steps are an enum with typed (serde) outputs and failures; an error keeps its kind through
//!   the orchestrator (an indeterminate call is resolved, never blindly retried).
//! - [`Checkout`] runs the checkout saga ([`CheckoutSaga`]): claim promotion usage, hold and
//!   pin stock, create the draft order, charge with a key derived from the order id (the
//!   pivot), commit holds and claims and then confirm the order with `OrderConfirmed` in one
//!   write — and on any failure before the charge completes, undo each step in reverse order.
//!   Checkout is idempotent by the client's key, which is also the order id and the saga id; a
//!   failed checkout says why ([`CheckoutFailure`]).
//! - Payment: authorize and capture at checkout, or capture as parcels ship
//!   ([`CapturePolicy`]), each parcel its share and the last the rest; an order that costs
//!   nothing confirms without a payment; an order settles in the merchant's currency at a quoted
//!   FX rate when asked ([`commerce_core::Settlement`]).
//! - [`reconcile_payments`] refunds captured money, and voids authorizations, that no
//!   confirmed order holds.
//!
//! - [`Lifecycle`] drives orders after checkout as journaled sagas: cancellation before
//!   shipping (stock back, full refund or a void, `OrderCancelled`), shipping in one parcel or
//!   several (label, capture, stock leaves),
//!   delivery, returns (restock, refund), and carrier tracking projected onto the order with
//!   duplicate and out-of-order updates ignored. A crash anywhere is finished by
//!   [`Lifecycle::recover`].
//! - [`rate_shop`] picks the cheapest carrier service that meets the promised date;
//!   [`VirtualQueue`] admits flash-sale shoppers to checkout fairly at a set rate;
//!   [`notifications_for`] maps domain events to customer notifications.

//! # Example: check a cart out
//!
//! ```
//! use std::sync::Arc;
//! use cart_engine::*;
//! use commerce_core::memory::InMemoryEventLog;
//! use commerce_core::testkit::{sample_address, t0};
//! use commerce_core::{CartId, Currency, IdempotencyKey, LocationId, ManualClock, Money, OrderId, Sku};
//! use inventory::{InMemoryStockStore, StockConfig, StockKey, StockLevels, StockMovements};
//! use saga::*;
//! # futures::executor::block_on(async {
//! let eur = |minor| Money::from_minor(minor, Currency::EUR);
//! // Stock: 5 mugs in Berlin.
//! let outbox = Arc::new(InMemoryEventLog::new());          // one log every store commits to
//! let stock = Arc::new(InMemoryStockStore::with_outbox(outbox.clone()));
//! let berlin = LocationId::new("berlin")?;
//! let mug = StockKey::new(Sku::new("MUG")?, berlin.clone());
//! stock.configure(&mug, StockConfig::default()).await?;
//! let _ = stock.receive(&IdempotencyKey::new("po-1")?, &mug, 5, t0()).await?;
//!
//! // A cart with 2 mugs, an address and a shipping method, priced.
//! let now = Mutation::at(t0());
//! let mut cart = Cart::new(CartId::new("cart-1")?, None, Currency::EUR, None, t0());
//! cart.execute(CartCommand::AddItem { item: LineItem::new("MUG", eur(1_250))?, quantity: 2, gift_wrap: false }, &now)?;
//! cart.execute(CartCommand::SetShippingAddress(sample_address()), &now)?;
//! cart.execute(CartCommand::SetShippingMethod(ShippingMethod { id: "std".into(), name: "Standard".into(), price: eur(490) }), &now)?;
//! let config = PricingConfig::default();
//! let tax = FlatRateTax::new(rust_decimal::Decimal::ZERO)?;
//! let priced = price(&cart, &[], &PricingContext::new(t0(), &config, &tax))?;
//!
//! // Check it out: the client's key is the order id; the same key never charges twice.
//! let clock = Arc::new(ManualClock::new(t0()));
//! let checkout = Checkout::builder(CheckoutPorts::in_memory(stock.clone(), outbox.clone()), clock.clone(), Arc::new(ClockSleeper(clock))).build();
//! let input = CheckoutInput::from_cart(&cart, &priced, &[], t0())?
//!     .order_id(&IdempotencyKey::new("order-1")?)
//!     .customer("ann@example.com")?
//!     .ship_from(berlin)
//!     .payment_method("tok_visa")
//!     .build()?;
//! let outcome = checkout.checkout(&input).await?;
//! assert_eq!(outcome, CheckoutOutcome::Confirmed { order_id: OrderId::new("order-1")? });
//! assert_eq!(checkout.checkout(&input).await?, outcome);
//! assert_eq!(stock.level(&mug, t0()).await?.committed, 2);
//! // The confirmation and its `OrderConfirmed` committed together, to the shared log.
//! assert!(outbox.snapshot().iter().any(|e| e.event_type == "OrderConfirmed"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

mod admission;
mod builder;
mod checkout;
mod error;
mod journal;
mod lifecycle;
pub mod limits;
mod notify;
mod orchestrator;
mod queue;
mod shipping;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use admission::{
    Admission, AdmissionQueue, InMemoryAdmissionQueue, LATE_BASE, SaleConfig, check_sale,
    lottery_rank,
};
pub use builder::ServiceBuilder;
pub use checkout::{
    CapturePolicy, Checkout, CheckoutBuilder, CheckoutFailure, CheckoutInput, CheckoutInputBuilder,
    CheckoutOutcome, CheckoutOutput, CheckoutPorts, CheckoutSaga, CheckoutStep, PromotionClaim,
    Reconciled, Shortage, finished, outcome, reconcile_payment, reconcile_payments,
};
pub use error::{Error, Result};
pub use journal::{
    FailureRecord, InMemoryJournal, SagaJournal, SagaRecord, SagaStatus, StepEntry, StepState,
};
pub use lifecycle::{
    Applied, CancelInput, CancelSaga, CancelStep, DeliverSaga, DeliverStep, LabelSource, Lifecycle,
    LifecycleBuilder, LifecycleFailure, LifecycleOutput, LifecyclePorts, Moved, ReturnInput,
    ReturnSaga, ReturnStep, ReturnToSenderSaga, ReturnToSenderStep, ShipInput, ShipSaga, ShipStep,
    Shipment, TrackedInput,
};
pub use notify::notifications_for;
pub use orchestrator::{
    ClockSleeper, Drive, Failed, Orchestrator, RetryPolicy, SagaDefinition, Sleeper, Step,
    StepContext, StepError, StepKind,
};
pub use queue::{QueueConfig, Ticket, VirtualQueue};
pub use shipping::rate_shop;
