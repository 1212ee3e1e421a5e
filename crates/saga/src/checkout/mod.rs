//! The checkout saga: claim promotions, hold and pin stock, create the draft order, charge
//! (the pivot), confirm, publish — or compensate everything before the charge.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use cart_engine::{ClaimOutcome, ClaimRequest, PromotionId, PromotionUsageStore, UsageLimits};
use chrono::{DateTime, TimeDelta, Utc};
use commerce_core::{
    AuthorizeRequest, CasOutcome, Clock, DomainEvent, ErrorKind, EventEnvelope, EventId, EventLine,
    EventPublisher, IdempotencyKey, Money, NewOrder, Notification, NotificationKind, Notifier,
    Order, OrderId, OrderStatus, OrderStore, PaymentGateway, PaymentRef, PaymentStatus, Transition,
};
use inventory::{HoldId, StockLine, StockStore};
use serde::{Deserialize, Serialize};

use crate::journal::{SagaJournal, SagaStatus};
use crate::orchestrator::{
    Drive, Orchestrator, RetryPolicy, SagaDefinition, Sleeper, StepContext, StepError, StepKind,
    StepSpec,
};
use crate::{Error, Result};

/// One promotion to claim at checkout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromotionClaim {
    /// The promotion.
    pub promotion_id: PromotionId,
    /// The discount it gave this order.
    pub discount: Money,
    /// Its limits.
    pub limits: UsageLimits,
}

/// Everything checkout needs, fixed when it starts (prices were verified and acknowledged by
/// then: see [`CheckoutInput::from_cart`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckoutInput {
    /// The order to create. Its id is the checkout's idempotency key.
    pub order: NewOrder,
    /// Promotion uses to claim.
    pub claims: Vec<PromotionClaim>,
    /// Stock to hold.
    pub stock: Vec<StockLine>,
    /// How long the stock hold lives before it is pinned; also the saga's deadline for the
    /// steps before the charge.
    pub hold_ttl_secs: i64,
    /// The tokenized payment method.
    pub method_token: String,
    /// A hold the cart already took for these lines (reservation at add-to-cart); checkout
    /// pins it instead of reserving again, and reserves afresh if it expired or no longer
    /// matches the lines.
    #[serde(default)]
    pub cart_hold: Option<HoldId>,
}

impl CheckoutInput {
    /// Builds the input from a priced cart, refusing a cart that is not ready: blockers (price
    /// changes not acknowledged, unavailable lines, no address or shipping method) or cart-rule
    /// violations. This is step 1's verification; the saga then claims promotion usage.
    ///
    /// # Errors
    /// [`Error::NotReady`] naming what blocks the cart; [`Error::Core`] for invalid orders.
    #[allow(
        clippy::too_many_arguments,
        reason = "the inputs of a checkout, each required"
    )]
    pub fn from_cart(
        key: &IdempotencyKey,
        cart: &cart_engine::Cart,
        priced: &cart_engine::PricedCart,
        promotions: &[cart_engine::Promotion],
        user: commerce_core::UserId,
        location: &commerce_core::LocationId,
        billing: commerce_core::Address,
        method_token: String,
        now: DateTime<Utc>,
    ) -> Result<CheckoutInput> {
        let blockers = cart.checkout_blockers(now);
        if !blockers.is_empty() {
            return Err(Error::NotReady(format!("{blockers:?}")));
        }
        if !priced.violations.is_empty() {
            return Err(Error::NotReady(format!("{:?}", priced.violations)));
        }
        let shipping_address = cart
            .shipping_address()
            .cloned()
            .ok_or_else(|| Error::NotReady("no shipping address".into()))?;
        let lines = cart
            .lines()
            .iter()
            .zip(&priced.lines)
            .map(|(l, p)| commerce_core::OrderLine {
                sku: l.sku.clone(),
                product_id: l.product.product_id.clone(),
                title: l.product.title.clone(),
                quantity: l.quantity,
                unit_price: p.unit_price,
                discount: p.discount,
            })
            .collect();
        let shipping = priced
            .shipping
            .as_ref()
            .map_or(Money::zero(cart.currency()), |s| s.total);
        let order = NewOrder {
            id: OrderId::new(key.as_str())?,
            user_id: user,
            currency: cart.currency(),
            lines,
            shipping,
            fees: Some(priced.totals.fees),
            tax: priced.totals.tax,
            tax_included: priced.totals.tax_included,
            shipping_address,
            billing_address: billing,
        };
        let claims = priced
            .applied()
            .filter_map(|(id, discount)| {
                promotions
                    .iter()
                    .find(|p| p.id == *id)
                    .map(|p| PromotionClaim {
                        promotion_id: id.clone(),
                        discount,
                        limits: p.limits.clone(),
                    })
            })
            .filter(|c| c.limits != UsageLimits::default())
            .collect();
        let stock = cart
            .lines()
            .iter()
            .map(|l| StockLine {
                key: inventory::StockKey::new(l.sku.clone(), location.clone()),
                quantity: i64::from(l.quantity),
            })
            .collect();
        Ok(CheckoutInput {
            order,
            claims,
            stock,
            hold_ttl_secs: inventory::limits::HOLD_TTL_SECS_DEFAULT,
            method_token,
            cart_hold: None,
        })
    }
}

/// The ports checkout talks to.
#[derive(Debug, Clone)]
pub struct CheckoutPorts {
    /// Promotion usage claims.
    pub usage: Arc<dyn PromotionUsageStore>,
    /// Stock and holds.
    pub stock: Arc<dyn StockStore>,
    /// Orders.
    pub orders: Arc<dyn OrderStore>,
    /// The payment provider.
    pub payments: Arc<dyn PaymentGateway>,
    /// The outbox.
    pub outbox: Arc<dyn EventPublisher>,
    /// Customer notifications.
    pub notifier: Arc<dyn Notifier>,
}

/// The checkout saga definition.
#[derive(Debug, Clone)]
pub struct CheckoutSaga {
    ports: CheckoutPorts,
}

const STEPS: &[StepSpec] = &[
    StepSpec {
        name: "claim_promotions",
        kind: StepKind::Compensatable,
    },
    StepSpec {
        name: "reserve_stock",
        kind: StepKind::Compensatable,
    },
    StepSpec {
        name: "create_order",
        kind: StepKind::Compensatable,
    },
    StepSpec {
        name: "charge",
        kind: StepKind::Pivot,
    },
    StepSpec {
        name: "confirm",
        kind: StepKind::Retriable,
    },
    StepSpec {
        name: "publish",
        kind: StepKind::Retriable,
    },
];

/// The index of the charge step (the pivot).
pub const CHARGE_STEP: usize = 3;

/// The confirm step's output when the order was cancelled while the charge was in flight.
const CANCELLED: &[u8] = b"cancelled";

fn key(scope: &str, purpose: &str) -> std::result::Result<IdempotencyKey, StepError> {
    IdempotencyKey::derive(scope, purpose).map_err(|e| StepError::Terminal(e.to_string()))
}

fn decode(input: &[u8]) -> std::result::Result<CheckoutInput, StepError> {
    serde_json::from_slice(input).map_err(|e| StepError::Terminal(format!("input: {e}")))
}

fn hold_id(order: &str) -> std::result::Result<HoldId, StepError> {
    HoldId::new(format!("{order}:hold")).map_err(|e| StepError::Terminal(e.to_string()))
}

fn stock_error(e: inventory::Error) -> StepError {
    match e {
        inventory::Error::Port(p) => p.into(),
        other => StepError::Terminal(other.to_string()),
    }
}

fn usage_error(e: commerce_core::PortError) -> StepError {
    e.into()
}

impl CheckoutSaga {
    /// A checkout saga over `ports`.
    pub fn new(ports: CheckoutPorts) -> Self {
        CheckoutSaga { ports }
    }

    async fn claim(
        &self,
        order: &str,
        input: &CheckoutInput,
    ) -> std::result::Result<(), StepError> {
        for c in &input.claims {
            let request = ClaimRequest {
                claim_id: key(order, &format!("claim:{}", c.promotion_id))?,
                promotion_id: c.promotion_id.clone(),
                customer: Some(input.order.user_id.clone()),
                discount: c.discount,
                limits: c.limits.clone(),
            };
            match self
                .ports
                .usage
                .reserve(&request)
                .await
                .map_err(usage_error)?
            {
                ClaimOutcome::Reserved => {}
                ClaimOutcome::LimitReached(which) => {
                    return Err(StepError::Terminal(format!(
                        "promotion {} limit reached: {which:?}",
                        c.promotion_id
                    )));
                }
            }
        }
        Ok(())
    }

    async fn release_claims(
        &self,
        order: &str,
        input: &CheckoutInput,
    ) -> std::result::Result<(), StepError> {
        for c in &input.claims {
            match self
                .ports
                .usage
                .release(&key(order, &format!("claim:{}", c.promotion_id))?)
                .await
            {
                Ok(()) => {}
                Err(e) if e.kind == ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Gives back whichever hold the stock step used (or may have used, if it never reported
    /// back): the order's own, and the cart's only if this checkout adopted it.
    async fn release_holds(
        &self,
        order: &str,
        input: &CheckoutInput,
        now: DateTime<Utc>,
    ) -> std::result::Result<(), StepError> {
        match self.ports.stock.release(&hold_id(order)?, now).await {
            Ok(_) | Err(inventory::Error::UnknownHold(_)) => {}
            Err(e) => return Err(StepError::Retryable(e.to_string())),
        }
        if let Some(cart_hold) = &input.cart_hold {
            match self.ports.stock.release_owned(cart_hold, order, now).await {
                Ok(_) | Err(inventory::Error::UnknownHold(_)) => {}
                Err(e) => return Err(StepError::Retryable(e.to_string())),
            }
        }
        Ok(())
    }

    /// Refunds (or voids) whatever the charge key did.
    async fn undo_charge(&self, order: &str) -> std::result::Result<(), StepError> {
        let Some(p) = self.charge_key_lookup(order).await? else {
            return Ok(());
        };
        let remaining = p
            .captured
            .checked_sub(&p.refunded)
            .map_err(|e| StepError::Terminal(e.to_string()))?;
        if remaining.is_positive() {
            self.ports
                .payments
                .refund(&key(order, "refund")?, &p.payment_ref, remaining)
                .await
                .map_err(|e| StepError::Retryable(e.to_string()))?;
        } else if p.status == PaymentStatus::Authorized {
            self.ports
                .payments
                .void(&key(order, "void")?, &p.payment_ref)
                .await
                .map_err(|e| StepError::Retryable(e.to_string()))?;
        }
        Ok(())
    }

    async fn charge_key_lookup(
        &self,
        order: &str,
    ) -> std::result::Result<Option<commerce_core::Payment>, StepError> {
        Ok(self.ports.payments.lookup(&key(order, "charge")?).await?)
    }
}

#[async_trait]
impl SagaDefinition for CheckoutSaga {
    fn kind(&self) -> &'static str {
        "checkout"
    }

    fn steps(&self) -> &'static [StepSpec] {
        STEPS
    }

    async fn act(&self, ctx: &StepContext<'_>) -> std::result::Result<Vec<u8>, StepError> {
        let input = decode(ctx.input)?;
        let order = ctx.saga_id;
        match ctx.step {
            0 => self.claim(order, &input).await.map(|()| Vec::new()),
            1 => {
                // Pinned before the charge: no sweeper may release it while money moves.
                if let Some(cart_hold) = &input.cart_hold {
                    let demand = inventory::demand(&input.stock).map_err(stock_error)?;
                    let held = self
                        .ports
                        .stock
                        .hold(cart_hold)
                        .await
                        .map_err(stock_error)?;
                    let matches = held.is_some_and(|h| {
                        h.lines
                            .iter()
                            .map(|l| (&l.key, l.quantity))
                            .eq(demand.iter().map(|(k, q)| (k, *q)))
                    });
                    // Adoption is exclusive: two checkouts of one cart never share its hold.
                    if matches
                        && self
                            .ports
                            .stock
                            .adopt(cart_hold, order, ctx.now)
                            .await
                            .is_ok()
                    {
                        return Ok(cart_hold.as_str().as_bytes().to_vec());
                    }
                    // Expired, stale, or another checkout's: hold afresh under the order's id
                    // (and leave the cart's hold to its owner or its TTL).
                }
                let hold = hold_id(order)?;
                let expires = TimeDelta::try_seconds(input.hold_ttl_secs)
                    .and_then(|ttl| ctx.now.checked_add_signed(ttl))
                    .ok_or_else(|| StepError::Terminal("hold_ttl_secs out of range".into()))?;
                self.ports
                    .stock
                    .reserve(&hold, &input.stock, expires, ctx.now)
                    .await
                    .map_err(stock_error)?;
                self.ports
                    .stock
                    .pin(&hold, ctx.now)
                    .await
                    .map_err(stock_error)?;
                Ok(hold.as_str().as_bytes().to_vec())
            }
            2 => {
                let new = Order::new(input.order.clone(), ctx.now)
                    .map_err(|e| StepError::Terminal(e.to_string()))?;
                match self.ports.orders.insert(new).await {
                    Ok(()) => Ok(Vec::new()),
                    // Created by an earlier attempt of this saga (the id is the saga's own).
                    Err(e) if e.kind == ErrorKind::Conflict => Ok(Vec::new()),
                    Err(e) => Err(e.into()),
                }
            }
            3 => {
                let order_total = Order::new(input.order.clone(), ctx.now)
                    .map_err(|e| StepError::Terminal(e.to_string()))?
                    .totals()
                    .grand_total;
                let request = AuthorizeRequest {
                    idempotency_key: key(order, "charge")?,
                    order_id: input.order.id.clone(),
                    amount: order_total,
                    method_token: input.method_token.clone(),
                    capture: true,
                };
                let payment = self.ports.payments.authorize(&request).await?;
                Ok(payment.payment_ref.as_str().as_bytes().to_vec())
            }
            4 => {
                let payment_ref = ctx
                    .output(CHARGE_STEP)
                    .and_then(|b| std::str::from_utf8(b).ok())
                    .and_then(|s| PaymentRef::new(s).ok())
                    .ok_or_else(|| StepError::Terminal("no charge recorded".into()))?;
                let id = &input.order.id;
                let mut stored = self
                    .ports
                    .orders
                    .get(id)
                    .await?
                    .ok_or_else(|| StepError::Retryable(format!("order {id} missing")))?;
                if stored.status() == OrderStatus::Cancelled {
                    // Cancelled (by the customer or the merchant) while the charge was in
                    // flight: past the pivot the saga only goes forward, so going forward means
                    // undoing the charge and giving the stock and claims back.
                    self.undo_charge(order).await?;
                    self.release_holds(order, &input, ctx.now).await?;
                    self.release_claims(order, &input).await?;
                    return Ok(CANCELLED.to_vec());
                }
                if stored.status() == OrderStatus::PendingPayment {
                    let version = stored.version();
                    stored
                        .apply(Transition::ConfirmPayment { payment_ref }, ctx.now)
                        .map_err(|e| StepError::Retryable(e.to_string()))?;
                    if self.ports.orders.update(stored, version).await? != CasOutcome::Committed {
                        return Err(StepError::Retryable("order changed concurrently".into()));
                    }
                }
                let used = ctx
                    .output(1)
                    .and_then(|b| std::str::from_utf8(b).ok())
                    .and_then(|h| HoldId::new(h).ok());
                let hold = match used {
                    Some(h) => h,
                    None => hold_id(order)?,
                };
                match self.ports.stock.commit(&hold, ctx.now).await {
                    Ok(_) => {}
                    Err(e) => return Err(StepError::Retryable(e.to_string())),
                }
                for c in &input.claims {
                    self.ports
                        .usage
                        .commit(&key(order, &format!("claim:{}", c.promotion_id))?)
                        .await
                        .map_err(|e| StepError::Retryable(e.to_string()))?;
                }
                Ok(Vec::new())
            }
            5 => {
                if ctx.output(4) == Some(CANCELLED) {
                    return Ok(Vec::new());
                }
                let total = Order::new(input.order.clone(), ctx.now)
                    .map_err(|e| StepError::Terminal(e.to_string()))?
                    .totals()
                    .grand_total;
                let event = EventEnvelope::new(
                    EventId::new(format!("{order}:confirmed"))
                        .map_err(|e| StepError::Terminal(e.to_string()))?,
                    ctx.now,
                    DomainEvent::OrderConfirmed {
                        order_id: input.order.id.clone(),
                        user_id: input.order.user_id.clone(),
                        grand_total: total,
                        lines: input
                            .order
                            .lines
                            .iter()
                            .map(|l| EventLine {
                                sku: l.sku.clone(),
                                quantity: l.quantity,
                            })
                            .collect(),
                    },
                );
                self.ports
                    .outbox
                    .publish(&[event])
                    .await
                    .map_err(|e| StepError::Retryable(e.to_string()))?;
                let note = Notification {
                    key: key(order, "notify-confirmed")?,
                    recipient: input.order.user_id.clone(),
                    kind: NotificationKind::OrderConfirmed,
                    order_id: Some(input.order.id.clone()),
                    sku: None,
                };
                self.ports
                    .notifier
                    .send(&note)
                    .await
                    .map_err(|e| StepError::Retryable(e.to_string()))?;
                Ok(Vec::new())
            }
            _ => Err(StepError::Terminal(format!("no step {}", ctx.step))),
        }
    }

    async fn resolve(
        &self,
        ctx: &StepContext<'_>,
    ) -> std::result::Result<Option<Vec<u8>>, StepError> {
        match ctx.step {
            // Ask the provider what the charge key did; never charge blindly again.
            3 => Ok(self
                .charge_key_lookup(ctx.saga_id)
                .await?
                .filter(|p| p.status == PaymentStatus::Captured)
                .map(|p| p.payment_ref.as_str().as_bytes().to_vec())),
            // Every other step is idempotent by its keys: running it again is the answer.
            _ => Ok(None),
        }
    }

    async fn compensate(&self, ctx: &StepContext<'_>) -> std::result::Result<(), StepError> {
        let input = decode(ctx.input)?;
        let order = ctx.saga_id;
        match ctx.step {
            0 => self.release_claims(order, &input).await,
            1 => self.release_holds(order, &input, ctx.now).await,
            2 => {
                let id = &input.order.id;
                if let Some(mut stored) = self.ports.orders.get(id).await? {
                    if stored.status() == OrderStatus::PendingPayment {
                        let version = stored.version();
                        stored
                            .apply(
                                Transition::Cancel {
                                    reason: "checkout failed".into(),
                                },
                                ctx.now,
                            )
                            .map_err(|e| StepError::Retryable(e.to_string()))?;
                        if self.ports.orders.update(stored, version).await? != CasOutcome::Committed
                        {
                            return Err(StepError::Retryable("order changed concurrently".into()));
                        }
                    }
                    let note = Notification {
                        key: key(order, "notify-cancelled")?,
                        recipient: input.order.user_id.clone(),
                        kind: NotificationKind::OrderCancelled,
                        order_id: Some(id.clone()),
                        sku: None,
                    };
                    self.ports
                        .notifier
                        .send(&note)
                        .await
                        .map_err(|e| StepError::Retryable(e.to_string()))?;
                }
                Ok(())
            }
            3 => {
                // The charge may have happened (a timeout after sending): ask, then undo.
                self.undo_charge(order).await
            }
            // Steps after the pivot are never compensated.
            _ => Ok(()),
        }
    }
}

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
        /// Why.
        reason: String,
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

impl Checkout {
    /// A checkout service driving sagas as `owner`.
    pub fn new(
        ports: CheckoutPorts,
        journal: Arc<dyn SagaJournal>,
        clock: Arc<dyn Clock>,
        sleeper: Arc<dyn Sleeper>,
        owner: &str,
        seed: u64,
    ) -> Self {
        let orchestrator = Orchestrator::new(
            CheckoutSaga::new(ports),
            journal,
            clock.clone(),
            sleeper,
            owner,
            RetryPolicy::default(),
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
    /// [`Error::InputMismatch`] when the key was used for another checkout; journal errors.
    pub async fn checkout(&self, input: &CheckoutInput) -> Result<CheckoutOutcome> {
        self.checkout_with_budget(input, &mut u32::MAX.clone())
            .await
    }

    /// [`Checkout::checkout`] that crashes after `budget` journal writes (simulation).
    ///
    /// # Errors
    /// As [`Checkout::checkout`].
    pub async fn checkout_with_budget(
        &self,
        input: &CheckoutInput,
        budget: &mut u32,
    ) -> Result<CheckoutOutcome> {
        let ttl = inventory::limits::HOLD_TTL_SECS_MIN..=inventory::limits::HOLD_TTL_SECS_MAX;
        if !ttl.contains(&input.hold_ttl_secs) {
            return Err(Error::NotReady(format!(
                "hold_ttl_secs must be within {ttl:?}"
            )));
        }
        let bytes = serde_json::to_vec(input).map_err(|e| Error::Codec(e.to_string()))?;
        let deadline = self.clock.now() + TimeDelta::seconds(input.hold_ttl_secs);
        let id = input.order.id.as_str();
        let drive = self
            .orchestrator
            .start_with_budget(id, bytes, deadline, budget)
            .await?;
        Ok(outcome(&input.order.id, drive))
    }
}

/// Maps a drive to a checkout outcome.
pub fn outcome(order_id: &OrderId, drive: Drive) -> CheckoutOutcome {
    match drive {
        Drive::Completed(_) => CheckoutOutcome::Confirmed {
            order_id: order_id.clone(),
        },
        Drive::Compensated(rec) => CheckoutOutcome::Failed {
            order_id: order_id.clone(),
            reason: rec.failure.unwrap_or_default(),
        },
        Drive::InProgress => CheckoutOutcome::InProgress,
        Drive::Waiting { .. } | Drive::Stalled { .. } | Drive::Crashed => {
            CheckoutOutcome::Unfinished
        }
    }
}

/// Finds captured money that belongs to no confirmed order and refunds it: the safety net
/// behind the saga's own compensation. Payments whose checkout saga is still running are left
/// alone. Returns the refunded payment references.
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
            let remaining = p.captured.checked_sub(&p.refunded)?;
            if !remaining.is_positive() {
                continue;
            }
            let running = journal
                .load(p.order_id.as_str())
                .await?
                .is_some_and(|s| !s.status.is_finished());
            if running {
                continue;
            }
            let confirmed = orders.get(&p.order_id).await?.is_some_and(|o| {
                !matches!(
                    o.status(),
                    OrderStatus::PendingPayment | OrderStatus::Cancelled
                ) && o.payment_ref() == Some(&p.payment_ref)
            });
            if !confirmed {
                let key = IdempotencyKey::derive(p.payment_ref.as_str(), "reconcile-refund")?;
                payments.refund(&key, &p.payment_ref, remaining).await?;
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
