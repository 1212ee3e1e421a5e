//! A durable saga orchestrator and the checkout saga: no charge without an order.
//!
//! - [`Orchestrator`] drives a [`SagaDefinition`] — an explicit list of compensatable steps, a
//!   pivot and retriable steps — from a [`SagaJournal`]. Each step is registered in the journal
//!   before its forward call (so its compensation is known even if the call times out), its
//!   output is recorded when it is done, and recovery reads the journal; no code is replayed.
//!   Retries use exponential backoff with seeded jitter; an indeterminate outcome is resolved
//!   by asking ([`SagaDefinition::resolve`]) before anything else; a lease keeps two workers
//!   from driving one saga; a step may wait for an external signal ([`Orchestrator::complete`]).
//! - [`Checkout`] runs the checkout saga ([`CheckoutSaga`]): claim promotion usage, hold and
//!   pin stock, create the draft order, charge with a key derived from the order id (the
//!   pivot), confirm the order and commit holds and claims, publish `OrderConfirmed` once —
//!   and on any failure before the charge completes, undo each step in reverse order.
//!   Checkout is idempotent by the client's key, which is also the order id and the saga id.
//! - [`reconcile_payments`] refunds any captured money without a confirmed order.
//!
//! - [`Lifecycle`] drives orders after checkout: fulfilment, shipping (stock leaves), delivery,
//!   cancellation before shipping (stock back, full refund, notification), returns, and carrier
//!   tracking projected onto the order with duplicate and out-of-order updates ignored.
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
//! use inventory::{InMemoryStockStore, StockConfig, StockKey, StockLine};
//! use saga::*;
//!
//! let clock = Arc::new(ManualClock::new(t0()));
//! let stock = Arc::new(InMemoryStockStore::new());
//! let tee = StockKey::new(Sku::new("TEE-RED-M")?, LocationId::new("wh")?);
//! stock.configure_now(&tee, StockConfig::default())?;
//! let _ = stock.receive_now(&IdempotencyKey::new("po-1")?, &tee, 5, t0())?;
//! let ports = CheckoutPorts {
//!     usage: Arc::new(InMemoryUsageStore::new()),
//!     stock: stock.clone(),
//!     orders: Arc::new(InMemoryOrderStore::new()),
//!     payments: Arc::new(InMemoryPaymentGateway::new()),
//!     outbox: Arc::new(InMemoryEventLog::new()),
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
//! let outcome = futures::executor::block_on(checkout.checkout(&input))?;
//! assert_eq!(outcome, CheckoutOutcome::Confirmed { order_id: OrderId::new("checkout-key-1")? });
//! // The same key again: the same answer, no second charge.
//! assert_eq!(futures::executor::block_on(checkout.checkout(&input))?, outcome);
//! assert_eq!(stock.level_now(&tee, t0())?.committed, 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod checkout;
mod error;
mod journal;
mod lifecycle;
mod notify;
mod orchestrator;
mod queue;
mod shipping;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use checkout::{
    CHARGE_STEP, Checkout, CheckoutInput, CheckoutOutcome, CheckoutPorts, CheckoutSaga,
    PromotionClaim, finished, outcome, reconcile_payments,
};
pub use error::{Error, Result};
pub use journal::{InMemoryJournal, SagaJournal, SagaRecord, SagaStatus, StepState};
pub use lifecycle::{Applied, Lifecycle, LifecyclePorts};
pub use notify::notifications_for;
pub use orchestrator::{
    ClockSleeper, Drive, Orchestrator, RetryPolicy, SagaDefinition, Sleeper, StepContext,
    StepError, StepKind, StepSpec,
};
pub use queue::{QueueConfig, Ticket, VirtualQueue};
pub use shipping::rate_shop;
