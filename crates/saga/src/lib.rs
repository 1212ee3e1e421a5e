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

mod checkout;
mod error;
pub mod faults;
mod journal;
mod lifecycle;
mod notify;
mod orchestrator;
mod queue;
mod shipping;

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
