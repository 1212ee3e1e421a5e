//! Checkout as a service: the checkout saga ([`CheckoutSaga`]) driven by the orchestrator,
//! idempotent by the client's key, which is also the order id and the saga id; and
//! [`reconcile_payments`], the safety net that refunds money no confirmed order holds.

mod input;
mod saga;

use std::sync::Arc;

use chrono::TimeDelta;
use commerce_core::{
    Clock, IdempotencyKey, OrderId, OrderStatus, OrderStore, Payment, PaymentGateway, PaymentRef,
    PaymentStatus,
};

pub use input::{CapturePolicy, CheckoutInput, CheckoutInputBuilder, PromotionClaim};
pub(crate) use saga::cancelled_event;
pub use saga::{
    CheckoutFailure, CheckoutOutput, CheckoutPorts, CheckoutSaga, CheckoutStep, Shortage,
};

use crate::builder::ServiceBuilder;
use crate::journal::{SagaJournal, SagaStatus};
use crate::orchestrator::{Drive, Orchestrator, RetryPolicy, Sleeper};
use crate::{Error, Result};

/// How a checkout ended (so far).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckoutOutcome {
    /// The order is confirmed and paid.
    Confirmed {
        /// The order.
        order_id: OrderId,
    },
    /// Checkout failed and everything was undone.
    Failed {
        /// The order id it would have had.
        order_id: OrderId,
        /// Why, typed.
        reason: CheckoutFailure,
    },
    /// Another request with this key is running it now.
    InProgress,
    /// It stopped part-way (a crash, a provider down) and recovery will finish it.
    Unfinished,
}

/// Checkout as a service: idempotent by the client's key.
///
/// The same key returns the same outcome and the same order id, never charges twice, and
/// answers [`CheckoutOutcome::InProgress`] while another request runs it.
#[derive(Debug)]
pub struct Checkout {
    orchestrator: Orchestrator<CheckoutSaga>,
    clock: Arc<dyn Clock>,
}

/// Builds a [`Checkout`]: see [`ServiceBuilder`].
pub type CheckoutBuilder = ServiceBuilder<CheckoutPorts>;

impl ServiceBuilder<CheckoutPorts> {
    /// The checkout service.
    pub fn build(mut self) -> Checkout {
        let journal = self.journal_or_in_memory();
        Checkout::assemble(
            self.ports,
            journal,
            self.clock,
            self.sleeper,
            &self.worker,
            self.seed,
            self.policy,
        )
    }
}

impl Checkout {
    /// A checkout over `ports`, timed by `clock` and `sleeper`: see [`CheckoutBuilder`].
    pub fn builder(
        ports: CheckoutPorts,
        clock: Arc<dyn Clock>,
        sleeper: Arc<dyn Sleeper>,
    ) -> CheckoutBuilder {
        ServiceBuilder::new(ports, clock, sleeper, "checkout")
    }

    /// A checkout service driving sagas as `owner`.
    pub fn new(
        ports: CheckoutPorts,
        journal: Arc<dyn SagaJournal>,
        clock: Arc<dyn Clock>,
        sleeper: Arc<dyn Sleeper>,
        owner: &str,
        seed: u64,
    ) -> Self {
        Checkout::assemble(
            ports,
            journal,
            clock,
            sleeper,
            owner,
            seed,
            RetryPolicy::default(),
        )
    }

    fn assemble(
        ports: CheckoutPorts,
        journal: Arc<dyn SagaJournal>,
        clock: Arc<dyn Clock>,
        sleeper: Arc<dyn Sleeper>,
        owner: &str,
        seed: u64,
        policy: RetryPolicy,
    ) -> Self {
        let orchestrator = Orchestrator::new(
            CheckoutSaga::new(ports),
            journal,
            clock.clone(),
            sleeper,
            owner,
            policy,
            seed,
        );
        Checkout {
            orchestrator,
            clock,
        }
    }

    /// The orchestrator (for `recover` and simulations).
    pub fn orchestrator(&self) -> &Orchestrator<CheckoutSaga> {
        &self.orchestrator
    }

    /// Runs (or finds) the checkout for `input`, keyed by its order id.
    ///
    /// # Errors
    /// [`Error::InputMismatch`] when the key was used for another checkout; [`Error::Invalid`]
    /// for a hold time to live out of bounds; journal errors (`Unavailable` or `Indeterminate`:
    /// retry with the same key).
    pub async fn checkout(&self, input: &CheckoutInput) -> Result<CheckoutOutcome> {
        let ttl = inventory::limits::HOLD_TTL_SECS_MIN..=inventory::limits::HOLD_TTL_SECS_MAX;
        if !ttl.contains(&input.hold_ttl_secs) {
            return Err(Error::Invalid {
                field: "hold_ttl_secs",
                reason: format!("must be within {ttl:?}"),
            });
        }
        let deadline = self.clock.now() + TimeDelta::seconds(input.hold_ttl_secs);
        let drive = self
            .orchestrator
            .start(input.order.id.as_str(), input, deadline)
            .await?;
        Ok(outcome(&input.order.id, drive))
    }

    /// Refuses, without starting a saga, a checkout that cannot succeed for want of stock:
    /// `Some(OutOfStock)` with every short line when a line asks for more than is available
    /// now. What a flash sale's thousands of late buyers should cost: a read per line, no
    /// journal record, no order, no hold. `None` (start the saga) when the stock is there, when
    /// the input brings a hold of its own, or when a saga for this order exists already (a
    /// retry finds that saga's outcome, whatever the stock is now).
    ///
    /// Stock can run out between this check and the saga's reservation; the saga's own
    /// reservation decides then, as always.
    ///
    /// # Errors
    /// Journal and stock port errors.
    pub async fn short_of_stock(&self, input: &CheckoutInput) -> Result<Option<CheckoutFailure>> {
        let wanted = input.stock();
        if wanted.is_empty()
            || input.cart_hold.is_some()
            || self
                .orchestrator
                .journal()
                .load(input.order.id.as_str())
                .await?
                .is_some()
        {
            return Ok(None);
        }
        let now = self.clock.now();
        let stock = self.orchestrator.definition().stock();
        let mut lines = Vec::new();
        for (key, requested) in inventory::demand(&wanted)? {
            let available = match stock.available(&key, now).await {
                Ok(n) => n,
                Err(inventory::Error::UnknownStock(_)) => 0,
                Err(e) => return Err(e.into()),
            };
            if available < requested {
                lines.push(Shortage {
                    sku: key.sku,
                    requested,
                    available,
                });
            }
        }
        Ok((!lines.is_empty()).then_some(CheckoutFailure::OutOfStock { lines }))
    }

    /// Drives unfinished checkouts (after a crash, or a provider that was down) to their end.
    ///
    /// # Errors
    /// Journal errors.
    pub async fn recover(&self, limit: usize) -> Result<Vec<(OrderId, CheckoutOutcome)>> {
        let drives = self.orchestrator.recover(limit).await?;
        Ok(drives
            .into_iter()
            .filter_map(|(id, drive)| {
                let order = OrderId::new(&id).ok()?;
                let outcome = outcome(&order, drive);
                Some((order, outcome))
            })
            .collect())
    }
}

/// Maps a drive to a checkout outcome.
pub fn outcome(order_id: &OrderId, drive: Drive<CheckoutSaga>) -> CheckoutOutcome {
    match drive {
        Drive::Completed(outputs) if outputs.contains(&CheckoutOutput::CancelledInFlight) => {
            CheckoutOutcome::Failed {
                order_id: order_id.clone(),
                reason: CheckoutFailure::OrderCancelled,
            }
        }
        Drive::Completed(_) => CheckoutOutcome::Confirmed {
            order_id: order_id.clone(),
        },
        Drive::Compensated(failed) => CheckoutOutcome::Failed {
            order_id: order_id.clone(),
            reason: failed.reason,
        },
        Drive::InProgress => CheckoutOutcome::InProgress,
        Drive::Waiting(_) | Drive::Stalled { .. } => CheckoutOutcome::Unfinished,
    }
}

/// What [`reconcile_payment`] found, and did, for one payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reconciled {
    /// Captured money no confirmed order holds: refunded.
    Refunded,
    /// An authorization no confirmed order holds, never captured: voided.
    Voided,
    /// The payment is the one of a confirmed (or later) order: left alone.
    Belongs,
    /// The order's checkout, cancellation or return is still running: it settles its own
    /// money, so nothing was done.
    Running,
    /// Nothing is left to give back (refunded or voided already, or a failed payment).
    Settled,
}

/// Gives back the money of one payment if it belongs to no confirmed order: refunds what was
/// captured and not refunded, voids an authorization never captured. Leaves alone a payment
/// whose order's checkout, cancellation or return saga is still running. The calls to the
/// provider carry keys derived from the payment reference, so two reconcilers at once, or one
/// run twice, give back once.
///
/// The provider's notification of a late success (an authorization that went through after
/// its checkout gave up) is the case it exists for; [`reconcile_payments`] runs it over every
/// payment.
///
/// # Errors
/// Port errors (nothing changed unless the provider's call went through).
pub async fn reconcile_payment(
    payment: &Payment,
    payments: &dyn PaymentGateway,
    orders: &dyn OrderStore,
    journal: &dyn SagaJournal,
) -> Result<Reconciled> {
    let p = payment;
    let remaining = p.captured.checked_sub(&p.refunded)?;
    let authorized_only = p.status == PaymentStatus::Authorized && p.captured.is_zero();
    if !remaining.is_positive() && !authorized_only {
        return Ok(Reconciled::Settled);
    }
    // The order's checkout, cancellation or return is still running: it refunds what is its
    // to refund.
    for saga in [
        p.order_id.to_string(),
        crate::lifecycle::saga_id(&p.order_id, "cancel", None),
        crate::lifecycle::saga_id(&p.order_id, "return", None),
    ] {
        if journal
            .load(&saga)
            .await?
            .is_some_and(|s| !s.status.is_finished())
        {
            return Ok(Reconciled::Running);
        }
    }
    let confirmed = orders.get(&p.order_id).await?.is_some_and(|o| {
        !matches!(
            o.status(),
            OrderStatus::PendingPayment | OrderStatus::Cancelled
        ) && o.payment_ref() == Some(&p.payment_ref)
    });
    if confirmed {
        return Ok(Reconciled::Belongs);
    }
    if authorized_only {
        let key = IdempotencyKey::derive(p.payment_ref.as_str(), "reconcile-void")?;
        payments.void(&key, &p.payment_ref).await?;
        Ok(Reconciled::Voided)
    } else {
        let key = IdempotencyKey::derive(p.payment_ref.as_str(), "reconcile-refund")?;
        payments.refund(&key, &p.payment_ref, remaining).await?;
        Ok(Reconciled::Refunded)
    }
}

/// Finds money that belongs to no confirmed order and gives it back: captured money is
/// refunded, an authorization never captured is voided. The safety net behind the sagas' own
/// compensation; payments whose checkout, cancellation or return saga is still running are
/// left alone. Returns the payment references it refunded or voided. See
/// [`reconcile_payment`].
///
/// # Errors
/// Port errors (refunds already made stay made).
pub async fn reconcile_payments(
    payments: &dyn PaymentGateway,
    orders: &dyn OrderStore,
    journal: &dyn SagaJournal,
) -> Result<Vec<PaymentRef>> {
    let mut refunded = Vec::new();
    let mut after: Option<PaymentRef> = None;
    loop {
        let page = payments.list(after.as_ref(), 100).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.payment_ref.clone());
        for p in page {
            if matches!(
                reconcile_payment(&p, payments, orders, journal).await?,
                Reconciled::Refunded | Reconciled::Voided
            ) {
                refunded.push(p.payment_ref.clone());
            }
        }
    }
    Ok(refunded)
}

/// True if the saga `id` is finished in `journal`.
///
/// # Errors
/// Journal errors.
pub async fn finished(journal: &dyn SagaJournal, id: &str) -> Result<bool> {
    Ok(journal
        .load(id)
        .await?
        .is_some_and(|s| matches!(s.status, SagaStatus::Completed | SagaStatus::Compensated)))
}
