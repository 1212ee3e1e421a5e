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
//! - [`reconcile_payments`] refunds any captured money without a confirmed order.
//!
//! - [`Lifecycle`] drives orders after checkout as journaled sagas: cancellation before
//!   shipping (stock back, full refund, `OrderCancelled`), shipping (label, stock leaves),
//!   delivery, returns (restock, refund), and carrier tracking projected onto the order with
//!   duplicate and out-of-order updates ignored. A crash anywhere is finished by
//!   [`Lifecycle::recover`].
//! - [`rate_shop`] picks the cheapest carrier service that meets the promised date;
//!   [`VirtualQueue`] admits flash-sale shoppers to checkout fairly at a set rate;
//!   [`notifications_for`] maps domain events to customer notifications.

//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use cart_engine::InMemoryUsageStore;
//! use commerce_core::memory::*;
//! use commerce_core::testkit::{sample_order, t0};
//! use commerce_core::*;
//! use inventory::{InMemoryStockStore, StockConfig, StockKey, StockLine, StockLevels, StockMovements};
//! use saga::*;
//! # futures::executor::block_on(async {
//! let clock = Arc::new(ManualClock::new(t0()));
//! let outbox = Arc::new(InMemoryEventLog::new());      // one log every store commits to
//! let stock = Arc::new(InMemoryStockStore::with_outbox(outbox.clone()));
//! let tee = StockKey::new(Sku::new("TEE-RED-M")?, LocationId::new("wh")?);
//! stock.configure(&tee, StockConfig::default()).await?;
//! let _ = stock.receive(&IdempotencyKey::new("po-1")?, &tee, 5, t0()).await?;
//! let ports = CheckoutPorts {
//!     usage: Arc::new(InMemoryUsageStore::new()),
//!     stock: stock.clone(),
//!     orders: Arc::new(InMemoryOrderStore::with_outbox(outbox.clone())),
//!     payments: Arc::new(InMemoryPaymentGateway::new()),
//!     notifier: Arc::new(InMemoryNotifier::new()),
//! };
//! let checkout = Checkout::new(ports, Arc::new(InMemoryJournal::new()), clock.clone(), Arc::new(ClockSleeper(clock)), "worker-1", 42);
//!
//! // The sample order: 2 × TEE-RED-M and 1 × SOCKS; stock only the tee here.
//! let o = sample_order("checkout-key-1");
//! let new = NewOrder {
//!     id: o.id().clone(), user_id: o.user_id().clone(), currency: o.currency(), lines: o.lines()[..1].to_vec(),
//!     shipping: o.totals().shipping, fees: None, tax: o.totals().tax, tax_included: false,
//!     shipping_address: o.shipping_address().clone(), billing_address: o.billing_address().clone(),
//! };
//! let input = CheckoutInput {
//!     order: new,
//!     claims: vec![],
//!     stock: vec![StockLine { key: tee.clone(), quantity: 2 }],
//!     hold_ttl_secs: 900,
//!     method_token: "tok_visa".into(),
//!     cart_hold: None,
//! };
//! let outcome = checkout.checkout(&input).await?;
//! assert_eq!(outcome, CheckoutOutcome::Confirmed { order_id: OrderId::new("checkout-key-1")? });
//! // The same key again: the same answer, no second charge.
//! assert_eq!(checkout.checkout(&input).await?, outcome);
//! assert_eq!(stock.level(&tee, t0()).await?.committed, 2);
//! // The confirmation and its `OrderConfirmed` committed together, to the shared log.
//! assert!(outbox.snapshot().iter().any(|e| e.event_type == "OrderConfirmed"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

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

pub use checkout::{
    Checkout, CheckoutFailure, CheckoutInput, CheckoutOutcome, CheckoutOutput, CheckoutPorts,
    CheckoutSaga, CheckoutStep, PromotionClaim, Shortage, finished, outcome, reconcile_payments,
};
pub use error::{Error, Result};
pub use journal::{
    FailureRecord, InMemoryJournal, SagaJournal, SagaRecord, SagaStatus, StepEntry, StepState,
};
pub use lifecycle::{
    Applied, CancelInput, CancelSaga, CancelStep, DeliverSaga, DeliverStep, LabelSource, Lifecycle,
    LifecycleFailure, LifecycleOutput, LifecyclePorts, Moved, ReturnInput, ReturnSaga, ReturnStep,
    ReturnToSenderSaga, ReturnToSenderStep, ShipInput, ShipSaga, ShipStep, Shipment, TrackedInput,
};
pub use notify::notifications_for;
pub use orchestrator::{
    ClockSleeper, Drive, Failed, Orchestrator, RetryPolicy, SagaDefinition, Sleeper, Step,
    StepContext, StepError, StepKind,
};
pub use queue::{QueueConfig, Ticket, VirtualQueue};
pub use shipping::rate_shop;
