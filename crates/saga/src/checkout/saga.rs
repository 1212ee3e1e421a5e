//! The checkout saga: claim promotions, hold and pin stock, create the draft order, charge
//! (the pivot), confirm, notify — or compensate everything before the charge.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use cart_engine::{ClaimOutcome, ClaimRequest, LimitReached, PromotionId, PromotionUsageStore};
use chrono::{DateTime, TimeDelta, Utc};
use commerce_core::{
    AuthorizeRequest, CasOutcome, DomainEvent, ErrorKind, EventEnvelope, EventId, EventLine,
    IdempotencyKey, Money, Notification, NotificationKind, Notifier, Order, OrderStatus,
    OrderStore, Payment, PaymentGateway, PaymentRef, PaymentStatus, PortError, SettledTotal, Sku,
    Transition,
};
use inventory::{HoldId, HoldStatus, StockStore};
use serde::{Deserialize, Serialize};

use super::{CapturePolicy, CheckoutInput};
use crate::orchestrator::{SagaDefinition, Step, StepContext, StepError, StepKind};

/// The ports checkout talks to.
#[derive(Debug, Clone)]
pub struct CheckoutPorts {
    /// Promotion usage claims.
    pub usage: Arc<dyn PromotionUsageStore>,
    /// Stock and holds.
    pub stock: Arc<dyn StockStore>,
    /// Orders, and the outbox their events commit to.
    pub orders: Arc<dyn OrderStore>,
    /// The payment provider.
    pub payments: Arc<dyn PaymentGateway>,
    /// Customer notifications.
    pub notifier: Arc<dyn Notifier>,
}

impl CheckoutPorts {
    /// Every port in memory, over `stock` and `outbox` (the log the order store commits its
    /// events to): promotion usage, orders, payments, notifications. For tests, examples and
    /// a first try.
    pub fn in_memory(
        stock: Arc<dyn StockStore>,
        outbox: Arc<commerce_core::memory::InMemoryEventLog>,
    ) -> CheckoutPorts {
        CheckoutPorts {
            usage: Arc::new(cart_engine::InMemoryUsageStore::new()),
            stock,
            orders: Arc::new(commerce_core::memory::InMemoryOrderStore::with_outbox(
                outbox,
            )),
            payments: Arc::new(commerce_core::memory::InMemoryPaymentGateway::new()),
            notifier: Arc::new(commerce_core::memory::InMemoryNotifier::new()),
        }
    }
}

/// The steps of checkout, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckoutStep {
    /// Reserve one use of each limited promotion (compensation: release them).
    ClaimPromotions,
    /// Hold (or adopt the cart's hold) and pin the stock (compensation: release it).
    ReserveStock,
    /// Create the order in `pending_payment` (compensation: cancel it).
    CreateOrder,
    /// Charge, keyed by the order id: the pivot.
    Charge,
    /// Commit stock and claims, then confirm the order with `OrderConfirmed` in one write.
    Confirm,
    /// Tell the customer.
    Notify,
}

impl Step for CheckoutStep {
    const ALL: &'static [CheckoutStep] = &[
        CheckoutStep::ClaimPromotions,
        CheckoutStep::ReserveStock,
        CheckoutStep::CreateOrder,
        CheckoutStep::Charge,
        CheckoutStep::Confirm,
        CheckoutStep::Notify,
    ];

    fn name(self) -> &'static str {
        match self {
            CheckoutStep::ClaimPromotions => "claim_promotions",
            CheckoutStep::ReserveStock => "reserve_stock",
            CheckoutStep::CreateOrder => "create_order",
            CheckoutStep::Charge => "charge",
            CheckoutStep::Confirm => "confirm",
            CheckoutStep::Notify => "notify",
        }
    }

    fn kind(self) -> StepKind {
        match self {
            CheckoutStep::ClaimPromotions
            | CheckoutStep::ReserveStock
            | CheckoutStep::CreateOrder => StepKind::Compensatable,
            CheckoutStep::Charge => StepKind::Pivot,
            CheckoutStep::Confirm | CheckoutStep::Notify => StepKind::Retriable,
        }
    }
}

/// What each checkout step reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "output", rename_all = "snake_case")]
pub enum CheckoutOutput {
    /// Promotion uses reserved.
    Claimed,
    /// The stock is held (and pinned) under this hold.
    Held {
        /// The order's own hold, or the cart's it adopted.
        hold: HoldId,
    },
    /// The order exists in `pending_payment`.
    OrderCreated,
    /// The payment succeeded (or the order costs nothing and none was made).
    Charged {
        /// The provider's reference; none for an order that costs nothing.
        payment: Option<PaymentRef>,
        /// What was captured: the grand total, or nothing when the capture waits for shipping.
        captured: Money,
    },
    /// The order is confirmed: stock and claims committed, `OrderConfirmed` committed with it.
    Confirmed,
    /// The order was cancelled while the charge was in flight: the charge, the stock and the
    /// claims were given back instead.
    CancelledInFlight,
    /// The customer was told (or there was nothing to tell).
    Notified,
}

/// A stock line checkout could not get.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shortage {
    /// The SKU.
    pub sku: Sku,
    /// Units the order wanted.
    pub requested: i64,
    /// Units available when checked.
    pub available: i64,
}

/// Why a checkout failed, typed so a caller (and the HTTP API) can answer without reading a
/// message. Every failure left nothing behind: claims, holds and charges were given back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
#[non_exhaustive]
pub enum CheckoutFailure {
    /// The cart cannot check out: a price changed and was not acknowledged, a line is
    /// unavailable, an address or shipping method is missing, the cart is not active, or a
    /// cart rule is broken. Nothing ran.
    CartNotReady {
        /// What blocks the cart.
        blockers: Vec<cart_engine::Blocker>,
        /// Cart rules the priced cart breaks.
        violations: Vec<cart_engine::Violation>,
    },
    /// Not enough stock for these lines.
    OutOfStock {
        /// Every line short when checked.
        lines: Vec<Shortage>,
    },
    /// A promotion reached one of its limits.
    PromotionLimitReached {
        /// The promotion.
        promotion_id: PromotionId,
        /// Which limit.
        limit: LimitReached,
    },
    /// The payment provider declined the charge.
    PaymentDeclined {
        /// The provider's reason.
        message: String,
    },
    /// The hold's time ran out before the charge (a provider slow or down past the TTL).
    DeadlinePassed {
        /// The step that could not run in time.
        step: CheckoutStep,
    },
    /// The order was cancelled while the charge was in flight; the charge was undone.
    OrderCancelled,
    /// The order was refused (a field out of bounds).
    InvalidOrder {
        /// The field, where known.
        field: Option<String>,
        /// Why.
        message: String,
    },
    /// A definite failure no retry fixes (a backend's bug, a broken invariant).
    Unexpected {
        /// The failure's kind.
        kind: ErrorKind,
        /// Details for logs.
        message: String,
    },
}

impl CheckoutFailure {
    /// The kind a caller decides on: business refusals (out of stock, a limit, a decline, an
    /// unready cart) are `Refused`, a cancelled order `Conflict`, a deadline `Unavailable`
    /// (try again), an invalid order `Invalid`.
    pub fn kind(&self) -> ErrorKind {
        match self {
            CheckoutFailure::CartNotReady { .. }
            | CheckoutFailure::OutOfStock { .. }
            | CheckoutFailure::PromotionLimitReached { .. }
            | CheckoutFailure::PaymentDeclined { .. } => ErrorKind::Refused,
            CheckoutFailure::DeadlinePassed { .. } => ErrorKind::Unavailable,
            CheckoutFailure::OrderCancelled => ErrorKind::Conflict,
            CheckoutFailure::InvalidOrder { .. } => ErrorKind::Invalid,
            CheckoutFailure::Unexpected { kind, .. } => *kind,
        }
    }

    fn unexpected(e: PortError) -> CheckoutFailure {
        CheckoutFailure::Unexpected {
            kind: e.kind,
            message: e.message,
        }
    }
}

type StepResult<T> = std::result::Result<T, StepError<CheckoutFailure>>;

/// A port failure as a step error: definite failures are unexpected ones.
fn port(e: PortError) -> StepError<CheckoutFailure> {
    StepError::from_port(e, CheckoutFailure::unexpected)
}

/// A stock failure as a step error, by its kind.
fn stock(e: inventory::Error) -> StepError<CheckoutFailure> {
    match e {
        inventory::Error::Port(p) => port(p),
        other => port(PortError::caused_by(other.kind(), other)),
    }
}

/// The order's hold expired before checkout could pin it: the saga ran out of time.
fn hold_expired() -> StepError<CheckoutFailure> {
    StepError::Fail(CheckoutFailure::DeadlinePassed {
        step: CheckoutStep::ReserveStock,
    })
}

fn key(scope: &str, purpose: &str) -> StepResult<IdempotencyKey> {
    IdempotencyKey::derive(scope, purpose).map_err(|e| port(e.into()))
}

fn hold_id(order: &str) -> StepResult<HoldId> {
    HoldId::new(format!("{order}:hold")).map_err(stock)
}

fn claim_key(order: &str, promotion: &PromotionId) -> StepResult<IdempotencyKey> {
    key(order, &format!("claim:{promotion}"))
}

/// The checkout saga definition.
#[derive(Debug, Clone)]
pub struct CheckoutSaga {
    ports: CheckoutPorts,
}

impl CheckoutSaga {
    /// A checkout saga over `ports`.
    pub fn new(ports: CheckoutPorts) -> Self {
        CheckoutSaga { ports }
    }

    /// The stock port (for the fail-fast check before a saga starts).
    pub(crate) fn stock(&self) -> &Arc<dyn StockStore> {
        &self.ports.stock
    }

    /// Reserves one use of each limited promotion.
    async fn claim(&self, order: &str, input: &CheckoutInput) -> StepResult<CheckoutOutput> {
        for c in &input.claims {
            let request = ClaimRequest {
                claim_id: claim_key(order, &c.promotion_id)?,
                promotion_id: c.promotion_id.clone(),
                customer: Some(input.order.user_id.clone()),
                discount: c.discount,
                limits: c.limits.clone(),
            };
            match self.ports.usage.reserve(&request).await.map_err(port)? {
                ClaimOutcome::Reserved => {}
                ClaimOutcome::LimitReached(limit) => {
                    return Err(StepError::Fail(CheckoutFailure::PromotionLimitReached {
                        promotion_id: c.promotion_id.clone(),
                        limit,
                    }));
                }
            }
        }
        Ok(CheckoutOutput::Claimed)
    }

    async fn release_claims(&self, order: &str, input: &CheckoutInput) -> StepResult<()> {
        for c in &input.claims {
            match self
                .ports
                .usage
                .release(&claim_key(order, &c.promotion_id)?)
                .await
            {
                Ok(()) => {}
                Err(e) if e.kind == ErrorKind::NotFound => {}
                Err(e) => return Err(port(e)),
            }
        }
        Ok(())
    }

    async fn commit_claims(&self, order: &str, input: &CheckoutInput) -> StepResult<()> {
        for c in &input.claims {
            self.ports
                .usage
                .commit(&claim_key(order, &c.promotion_id)?)
                .await
                .map_err(port)?;
        }
        Ok(())
    }

    /// Holds and pins the stock: adopts the cart's hold when it still matches, otherwise
    /// reserves under the order's own hold. Pinned before the charge: no sweeper may release
    /// it while money moves.
    async fn reserve(
        &self,
        order: &str,
        input: &CheckoutInput,
        now: DateTime<Utc>,
    ) -> StepResult<CheckoutOutput> {
        if let Some(cart_hold) = &input.cart_hold {
            let demand = inventory::demand(&input.stock()).map_err(stock)?;
            let held = self.ports.stock.hold(cart_hold).await.map_err(stock)?;
            let matches = held.is_some_and(|h| {
                h.lines
                    .iter()
                    .map(|l| (&l.key, l.quantity))
                    .eq(demand.iter().map(|(k, q)| (k, *q)))
            });
            // Adoption is exclusive: two checkouts of one cart never share its hold.
            if matches && self.ports.stock.adopt(cart_hold, order, now).await.is_ok() {
                return Ok(CheckoutOutput::Held {
                    hold: cart_hold.clone(),
                });
            }
            // Expired, stale, or another checkout's: hold afresh under the order's id (and
            // leave the cart's hold to its owner or its TTL).
        }
        let hold = hold_id(order)?;
        let expires = TimeDelta::try_seconds(input.hold_ttl_secs)
            .and_then(|ttl| now.checked_add_signed(ttl))
            .ok_or_else(|| {
                StepError::Fail(CheckoutFailure::InvalidOrder {
                    field: Some("hold_ttl_secs".into()),
                    message: "out of range".into(),
                })
            })?;
        match self
            .ports
            .stock
            .reserve(&hold, &input.stock(), expires, now)
            .await
        {
            Ok(_) => {}
            Err(inventory::Error::InsufficientStock { .. } | inventory::Error::UnknownStock(_)) => {
                return Err(StepError::Fail(self.shortages(input, now).await?));
            }
            Err(inventory::Error::HoldExpired(_)) => return Err(hold_expired()),
            Err(e) => return Err(stock(e)),
        }
        match self.ports.stock.pin(&hold, now).await {
            Ok(_) => Ok(CheckoutOutput::Held { hold }),
            // An earlier attempt's hold ran out before this one could pin it (a crash, then a
            // recovery past the hold's time to live).
            Err(inventory::Error::HoldExpired(_)) => Err(hold_expired()),
            Err(e) => Err(stock(e)),
        }
    }

    /// Every line short now, so the shopper hears of all of them at once.
    async fn shortages(
        &self,
        input: &CheckoutInput,
        now: DateTime<Utc>,
    ) -> StepResult<CheckoutFailure> {
        let mut lines = Vec::new();
        for (key, requested) in inventory::demand(&input.stock()).map_err(stock)? {
            let available = match self.ports.stock.available(&key, now).await {
                Ok(n) => n,
                Err(inventory::Error::UnknownStock(_)) => 0,
                Err(e) => return Err(stock(e)),
            };
            if available < requested {
                lines.push(Shortage {
                    sku: key.sku,
                    requested,
                    available,
                });
            }
        }
        Ok(CheckoutFailure::OutOfStock { lines })
    }

    /// Gives back whichever hold the stock step used (or may have used, if it never reported
    /// back): the order's own, and the cart's only if this checkout adopted it.
    async fn release_holds(
        &self,
        order: &str,
        input: &CheckoutInput,
        now: DateTime<Utc>,
    ) -> StepResult<()> {
        match self.ports.stock.release(&hold_id(order)?, now).await {
            Ok(_) | Err(inventory::Error::UnknownHold(_)) => {}
            Err(e) => return Err(stock(e)),
        }
        if let Some(cart_hold) = &input.cart_hold {
            match self.ports.stock.release_owned(cart_hold, order, now).await {
                Ok(_) | Err(inventory::Error::UnknownHold(_)) => {}
                Err(e) => return Err(stock(e)),
            }
        }
        Ok(())
    }

    async fn create_order(
        &self,
        input: &CheckoutInput,
        now: DateTime<Utc>,
    ) -> StepResult<CheckoutOutput> {
        let order = Order::new(input.order.clone(), now).map_err(|e| {
            StepError::Fail(CheckoutFailure::InvalidOrder {
                field: e.field().map(str::to_owned),
                message: e.to_string(),
            })
        })?;
        match self.ports.orders.insert(order, &[]).await {
            // Created by an earlier attempt of this saga (the id is the saga's own).
            Ok(()) => Ok(CheckoutOutput::OrderCreated),
            Err(e) if e.kind == ErrorKind::Conflict => Ok(CheckoutOutput::OrderCreated),
            Err(e) => Err(port(e)),
        }
    }

    /// Cancels the draft order (if checkout left it pending), committing the cancellation's
    /// events with it, and tells the customer.
    async fn cancel_order(
        &self,
        order: &str,
        input: &CheckoutInput,
        now: DateTime<Utc>,
    ) -> StepResult<()> {
        let id = &input.order.id;
        let Some(mut stored) = self.ports.orders.get(id).await.map_err(port)? else {
            return Ok(());
        };
        if stored.status() == OrderStatus::PendingPayment {
            let version = stored.version();
            let reason = "checkout failed";
            stored
                .apply(
                    Transition::Cancel {
                        reason: reason.into(),
                    },
                    now,
                )
                .map_err(|e| port(e.into()))?;
            let mut events = stored.status_events(version).map_err(|e| port(e.into()))?;
            events.push(cancelled_event(&stored, reason, now).map_err(|e| port(e.into()))?);
            if self
                .ports
                .orders
                .update(stored, version, &events)
                .await
                .map_err(port)?
                != CasOutcome::Committed
            {
                return Err(StepError::retry(
                    ErrorKind::Conflict,
                    "order changed concurrently",
                ));
            }
        }
        self.notify(
            order,
            input,
            NotificationKind::OrderCancelled,
            "notify-cancelled",
        )
        .await
    }

    async fn charge(
        &self,
        order: &str,
        input: &CheckoutInput,
        now: DateTime<Utc>,
    ) -> StepResult<CheckoutOutput> {
        let total = Order::new(input.order.clone(), now)
            .map_err(|e| port(e.into()))?
            .totals()
            .grand_total;
        if total.is_zero() {
            // Nothing to pay: a gateway would refuse an authorization of zero.
            return Ok(CheckoutOutput::Charged {
                payment: None,
                captured: total,
            });
        }
        let request = AuthorizeRequest {
            idempotency_key: key(order, "charge")?,
            order_id: input.order.id.clone(),
            amount: total,
            method_token: input.method_token.clone(),
            capture: input.capture == CapturePolicy::AtCheckout,
        };
        match self.ports.payments.authorize(&request).await {
            Ok(payment) => Ok(CheckoutOutput::Charged {
                payment: Some(payment.payment_ref),
                captured: payment.captured,
            }),
            Err(e) if e.kind == ErrorKind::Refused => {
                Err(StepError::Fail(CheckoutFailure::PaymentDeclined {
                    message: e.message,
                }))
            }
            Err(e) => Err(port(e)),
        }
    }

    async fn charge_key_lookup(&self, order: &str) -> StepResult<Option<Payment>> {
        self.ports
            .payments
            .lookup(&key(order, "charge")?)
            .await
            .map_err(port)
    }

    /// Refunds (or voids) whatever the charge key did.
    async fn undo_charge(&self, order: &str) -> StepResult<()> {
        let Some(p) = self.charge_key_lookup(order).await? else {
            return Ok(());
        };
        let remaining = p
            .captured
            .checked_sub(&p.refunded)
            .map_err(|e| port(e.into()))?;
        if remaining.is_positive() {
            self.ports
                .payments
                .refund(&key(order, "refund")?, &p.payment_ref, remaining)
                .await
                .map_err(port)?;
        } else if p.status == PaymentStatus::Authorized {
            self.ports
                .payments
                .void(&key(order, "void")?, &p.payment_ref)
                .await
                .map_err(port)?;
        }
        Ok(())
    }

    /// Commits stock and claims, then confirms the order and commits `OrderConfirmed` with it,
    /// in that order: an order reads `confirmed` only once its stock is committed, so a
    /// cancellation of a confirmed order always has committed stock to give back. An order
    /// cancelled while the charge was in flight gets everything back instead.
    async fn confirm(
        &self,
        order: &str,
        input: &CheckoutInput,
        ctx: &StepContext<'_, Self>,
    ) -> StepResult<CheckoutOutput> {
        let (payment, captured) = match ctx.output(CheckoutStep::Charge) {
            Some(CheckoutOutput::Charged { payment, captured }) => (payment.clone(), *captured),
            _ => {
                return Err(StepError::Fail(CheckoutFailure::Unexpected {
                    kind: ErrorKind::Internal,
                    message: "confirm without a recorded charge".into(),
                }));
            }
        };
        let hold = match ctx.output(CheckoutStep::ReserveStock) {
            Some(CheckoutOutput::Held { hold }) => hold.clone(),
            _ => hold_id(order)?,
        };
        let id = &input.order.id;
        let mut stored = self
            .ports
            .orders
            .get(id)
            .await
            .map_err(port)?
            .ok_or_else(|| StepError::retry(ErrorKind::NotFound, format!("order {id} missing")))?;
        // Confirmed by an earlier attempt whose answer was lost, and maybe moved on since
        // (even cancelled: that cancellation's own saga gives the money and stock back).
        let confirmed_before = stored
            .ledger()
            .iter()
            .any(|e| e.transition.kind() == commerce_core::TransitionKind::ConfirmPayment);
        if confirmed_before {
            return Ok(CheckoutOutput::Confirmed);
        }
        if stored.status() == OrderStatus::Cancelled {
            // Cancelled (by the customer or the merchant) while the charge was in flight: past
            // the pivot the saga only goes forward, so going forward means undoing the charge
            // and giving the stock and claims back.
            self.undo_charge(order).await?;
            self.give_back_stock(order, input, &hold, ctx.now).await?;
            self.release_claims(order, input).await?;
            return Ok(CheckoutOutput::CancelledInFlight);
        }
        match self.ports.stock.commit(&hold, ctx.now).await {
            Ok(_) => {}
            Err(e) => return Err(stock(e)),
        }
        self.commit_claims(order, input).await?;
        let version = stored.version();
        stored
            .apply(
                Transition::ConfirmPayment {
                    payment_ref: payment,
                    captured,
                },
                ctx.now,
            )
            .map_err(|e| port(e.into()))?;
        let mut events = stored.status_events(version).map_err(|e| port(e.into()))?;
        events.push(confirmed_event(&stored, ctx.now).map_err(|e| port(e.into()))?);
        match self
            .ports
            .orders
            .update(stored, version, &events)
            .await
            .map_err(port)?
        {
            CasOutcome::Committed => Ok(CheckoutOutput::Confirmed),
            // Cancelled meanwhile, most likely: the next attempt sees it.
            CasOutcome::VersionMismatch { .. } => Err(StepError::retry(
                ErrorKind::Conflict,
                "order changed concurrently",
            )),
        }
    }

    /// Gives the order's stock back after a cancellation in flight: a committed hold's units go
    /// back to sale, a held or pinned one is released.
    async fn give_back_stock(
        &self,
        order: &str,
        input: &CheckoutInput,
        hold: &HoldId,
        now: DateTime<Utc>,
    ) -> StepResult<()> {
        let committed = self
            .ports
            .stock
            .hold(hold)
            .await
            .map_err(stock)?
            .is_some_and(|h| h.status == HoldStatus::Committed);
        if committed {
            let _ = self
                .ports
                .stock
                .uncommit(&key(order, "uncommit-cancelled")?, &input.stock(), now)
                .await
                .map_err(stock)?;
            Ok(())
        } else {
            self.release_holds(order, input, now).await
        }
    }

    async fn notify(
        &self,
        order: &str,
        input: &CheckoutInput,
        kind: NotificationKind,
        purpose: &str,
    ) -> StepResult<()> {
        let note = Notification {
            key: key(order, purpose)?,
            recipient: input.order.user_id.clone(),
            kind,
            order_id: Some(input.order.id.clone()),
            sku: None,
        };
        crate::notify::send_for_step(self.ports.notifier.as_ref(), &note)
            .await
            .map_err(port)
    }
}

/// `OrderConfirmed` for a just-confirmed order; one id per order.
fn confirmed_event(order: &Order, now: DateTime<Utc>) -> commerce_core::Result<EventEnvelope> {
    Ok(EventEnvelope::new(
        EventId::new(format!("{}:confirmed", order.id()))?,
        now,
        DomainEvent::OrderConfirmed {
            order_id: order.id().clone(),
            user_id: order.user_id().clone(),
            grand_total: order.totals().grand_total,
            lines: order
                .lines()
                .iter()
                .map(|l| EventLine {
                    sku: l.sku.clone(),
                    quantity: l.quantity,
                })
                .collect(),
            settlement: order.settlement().map(SettledTotal::of),
        },
    ))
}

/// `OrderCancelled` for a just-cancelled order; one id per order.
pub(crate) fn cancelled_event(
    order: &Order,
    reason: &str,
    now: DateTime<Utc>,
) -> commerce_core::Result<EventEnvelope> {
    Ok(EventEnvelope::new(
        EventId::new(format!("{}:cancelled", order.id()))?,
        now,
        DomainEvent::OrderCancelled {
            order_id: order.id().clone(),
            reason: reason.to_owned(),
        },
    ))
}

#[async_trait]
impl SagaDefinition for CheckoutSaga {
    const KIND: &'static str = "checkout";
    type Input = CheckoutInput;
    type Step = CheckoutStep;
    type Output = CheckoutOutput;
    type Failure = CheckoutFailure;

    async fn act(&self, ctx: &StepContext<'_, Self>) -> StepResult<CheckoutOutput> {
        let (order, input) = (ctx.saga_id, ctx.input);
        match ctx.step {
            CheckoutStep::ClaimPromotions => self.claim(order, input).await,
            CheckoutStep::ReserveStock => self.reserve(order, input, ctx.now).await,
            CheckoutStep::CreateOrder => self.create_order(input, ctx.now).await,
            CheckoutStep::Charge => self.charge(order, input, ctx.now).await,
            CheckoutStep::Confirm => self.confirm(order, input, ctx).await,
            CheckoutStep::Notify => {
                if ctx.output(CheckoutStep::Confirm) == Some(&CheckoutOutput::Confirmed) {
                    self.notify(
                        order,
                        input,
                        NotificationKind::OrderConfirmed,
                        "notify-confirmed",
                    )
                    .await?;
                }
                Ok(CheckoutOutput::Notified)
            }
        }
    }

    async fn resolve(&self, ctx: &StepContext<'_, Self>) -> StepResult<Option<CheckoutOutput>> {
        match ctx.step {
            // Ask the provider what the charge key did; never charge blindly again.
            CheckoutStep::Charge => {
                let wanted = match ctx.input.capture {
                    CapturePolicy::AtCheckout => PaymentStatus::Captured,
                    CapturePolicy::AtShipment => PaymentStatus::Authorized,
                };
                Ok(self
                    .charge_key_lookup(ctx.saga_id)
                    .await?
                    .filter(|p| p.status == wanted)
                    .map(|p| CheckoutOutput::Charged {
                        payment: Some(p.payment_ref),
                        captured: p.captured,
                    }))
            }
            // Every other step is idempotent by its keys: running it again is the answer.
            _ => Ok(None),
        }
    }

    async fn compensate(&self, ctx: &StepContext<'_, Self>) -> StepResult<()> {
        let (order, input) = (ctx.saga_id, ctx.input);
        match ctx.step {
            CheckoutStep::ClaimPromotions => self.release_claims(order, input).await,
            CheckoutStep::ReserveStock => self.release_holds(order, input, ctx.now).await,
            CheckoutStep::CreateOrder => self.cancel_order(order, input, ctx.now).await,
            // The charge may have happened (a timeout after sending): ask, then undo.
            CheckoutStep::Charge => self.undo_charge(order).await,
            // Steps after the pivot are never compensated.
            CheckoutStep::Confirm | CheckoutStep::Notify => Ok(()),
        }
    }

    fn deadline_passed(&self, step: CheckoutStep) -> CheckoutFailure {
        CheckoutFailure::DeadlinePassed { step }
    }
}
