//! The order's life after checkout as journaled sagas. Each moves the order with one atomic
//! write (the transition and its events together) as its pivot, and then finishes the work
//! outside the order — stock, refunds, notifications — as retriable steps that recovery drives
//! to the end after any crash. Every call is keyed by the order id and the ledger sequence, so
//! a step run twice takes effect once.
//!
//! | saga | pivot | then |
//! |---|---|---|
//! | [`CancelSaga`] | `cancel` (+ `OrderCancelled`) | uncommit stock, void an uncaptured authorization, refund what was captured, record both, notify |
//! | [`ShipSaga`] | `ship` or `ship_part` (+ the capture) | (buy the label and capture the parcel's share before; void the label and refund the capture if the order cannot ship) stock leaves, notify |
//! | [`DeliverSaga`] | `deliver` (+ the carrier's `ShipmentUpdated`) | notify |
//! | [`ReturnSaga`] | `return_received` | restock, refund, record the refund |
//! | [`ReturnToSenderSaga`] | `return_to_sender` (+ `ShipmentUpdated`) | restock |

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use commerce_core::{
    Carrier, CasOutcome, ErrorKind, EventEnvelope, EventPublisher, IdempotencyKey, Label, Money,
    Notification, NotificationKind, Notifier, Order, OrderId, OrderStatus, OrderStore,
    PaymentGateway, PaymentRef, PortError, ShipmentRequest, Sku, Transition, TransitionKind,
};
use inventory::{StockKey, StockLine, StockStore};
use serde::{Deserialize, Serialize};

use crate::checkout::cancelled_event;
use crate::orchestrator::{SagaDefinition, Step, StepContext, StepError, StepKind};

/// The ports the order lifecycle talks to.
#[derive(Debug, Clone)]
pub struct LifecyclePorts {
    /// Orders, and the outbox their events commit to.
    pub orders: Arc<dyn OrderStore>,
    /// Stock (committed units ship or come back).
    pub stock: Arc<dyn StockStore>,
    /// Refunds.
    pub payments: Arc<dyn PaymentGateway>,
    /// The carrier labels are bought from (rate-shop several carriers first with
    /// [`crate::rate_shop`]).
    pub carrier: Arc<dyn Carrier>,
    /// Events that belong to no order write (a tracking scan that moves nothing).
    pub outbox: Arc<dyn EventPublisher>,
    /// Customer notifications.
    pub notifier: Arc<dyn Notifier>,
}

/// Why a lifecycle operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
#[non_exhaustive]
pub enum LifecycleFailure {
    /// The order's state machine does not allow this from where the order is (cancelling a
    /// shipped order, delivering one that never shipped).
    IllegalTransition {
        /// Where the order is.
        from: OrderStatus,
        /// What was asked.
        transition: TransitionKind,
    },
    /// The tracking number is not the order's current shipment (a lost parcel's late scan).
    NotCurrentShipment {
        /// The tracking number given.
        tracking_number: String,
    },
    /// The carrier would not sell the label.
    LabelRefused {
        /// The carrier's reason.
        message: String,
    },
    /// The payment provider would not capture the parcel's share (an expired or revoked
    /// authorization): the parcel does not ship.
    CaptureRefused {
        /// The provider's reason.
        message: String,
    },
    /// The parcel's lines are not lines of the order still to ship.
    InvalidParcel {
        /// Why.
        message: String,
    },
    /// A definite failure no retry fixes.
    Unexpected {
        /// The failure's kind.
        kind: ErrorKind,
        /// Details for logs.
        message: String,
    },
}

impl LifecycleFailure {
    /// The kind a caller decides on: a transition the order does not allow or a stale shipment
    /// is `Conflict`, a refused label `Refused`.
    pub fn kind(&self) -> ErrorKind {
        match self {
            LifecycleFailure::IllegalTransition { .. }
            | LifecycleFailure::NotCurrentShipment { .. } => ErrorKind::Conflict,
            LifecycleFailure::LabelRefused { .. } | LifecycleFailure::CaptureRefused { .. } => {
                ErrorKind::Refused
            }
            LifecycleFailure::InvalidParcel { .. } => ErrorKind::Invalid,
            LifecycleFailure::Unexpected { kind, .. } => *kind,
        }
    }
}

/// What a lifecycle saga's steps report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "output", rename_all = "snake_case")]
pub enum LifecycleOutput {
    /// The label the shipment goes out with.
    Labelled {
        /// The label.
        label: Label,
    },
    /// The parcel's share of the payment was captured (zero when it was captured at checkout).
    Captured {
        /// The amount captured for this parcel.
        amount: Money,
    },
    /// The order moved (the pivot).
    Moved(Moved),
    /// A step after the pivot did its work (or had none to do).
    Done,
}

/// How the order moved at a lifecycle saga's pivot, and what the steps after it must do.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Moved {
    /// The ledger sequence of the transition.
    pub seq: u32,
    /// The payment to refund and how much, when money was captured.
    pub refund: Option<(PaymentRef, Money)>,
    /// The payment whose uncaptured authorization to void, when there is one.
    #[serde(default)]
    pub void: Option<PaymentRef>,
    /// Whether the order's stock was committed (and must go back to sale).
    pub stock_committed: bool,
    /// For a shipment: whether it replaces an earlier one (lost, returned to sender).
    pub replacement: bool,
}

type StepResult<T> = std::result::Result<T, StepError<LifecycleFailure>>;

fn port(e: PortError) -> StepError<LifecycleFailure> {
    StepError::from_port(e, |e| LifecycleFailure::Unexpected {
        kind: e.kind,
        message: e.message,
    })
}

fn stock(e: inventory::Error) -> StepError<LifecycleFailure> {
    match e {
        inventory::Error::Port(p) => port(p),
        other => port(PortError::caused_by(other.kind(), other)),
    }
}

fn core(e: commerce_core::Error) -> StepError<LifecycleFailure> {
    port(e.into())
}

fn key(order: &OrderId, purpose: &str) -> StepResult<IdempotencyKey> {
    IdempotencyKey::derive(order.as_str(), purpose).map_err(core)
}

/// The saga id of a lifecycle operation: `{order}/{operation}[/{detail}]`. Order ids cannot
/// hold `/`, so these never collide with a checkout's saga id (the order id itself).
pub(crate) fn saga_id(order: &OrderId, operation: &str, detail: Option<&str>) -> String {
    match detail {
        Some(d) => format!("{order}/{operation}/{d}"),
        None => format!("{order}/{operation}"),
    }
}

/// What the lifecycle sagas share: the ports.
#[derive(Debug, Clone)]
pub(crate) struct Shared {
    pub(crate) ports: LifecyclePorts,
}

/// The stock of `order`'s lines with the SKUs `skus` (all lines when `None`), each at the
/// location it ships from.
fn stock_lines(order: &Order, skus: Option<&[Sku]>) -> Vec<StockLine> {
    order
        .lines()
        .iter()
        .filter(|l| skus.is_none_or(|s| s.contains(&l.sku)))
        .map(|l| StockLine {
            key: StockKey::new(l.sku.clone(), l.location.clone()),
            quantity: i64::from(l.quantity),
        })
        .collect()
}

impl Shared {
    fn stock_lines(&self, order: &Order) -> Vec<StockLine> {
        stock_lines(order, None)
    }

    async fn order(&self, id: &OrderId) -> StepResult<Order> {
        self.ports
            .orders
            .get(id)
            .await
            .map_err(port)?
            .ok_or_else(|| {
                StepError::Fail(LifecycleFailure::Unexpected {
                    kind: ErrorKind::NotFound,
                    message: format!("no order {id}"),
                })
            })
    }

    /// Applies `transition` unless `applied` finds it in the order already (an earlier attempt
    /// of this saga), committing the order's status events and `extra` with it. Returns the
    /// order and the ledger entry's sequence.
    async fn transition(
        &self,
        id: &OrderId,
        transition: Transition,
        at: DateTime<Utc>,
        extra: impl FnOnce(&Order) -> commerce_core::Result<Vec<EventEnvelope>>,
        applied: impl Fn(&Order) -> Option<u32>,
    ) -> StepResult<(Order, u32)> {
        self.transitions(id, vec![transition], at, extra, applied)
            .await
    }

    /// [`Shared::transition`] for several transitions in one write; the sequence returned is
    /// the last one's.
    async fn transitions(
        &self,
        id: &OrderId,
        transitions: Vec<Transition>,
        at: DateTime<Utc>,
        extra: impl FnOnce(&Order) -> commerce_core::Result<Vec<EventEnvelope>>,
        applied: impl Fn(&Order) -> Option<u32>,
    ) -> StepResult<(Order, u32)> {
        let mut order = self.order(id).await?;
        if let Some(seq) = applied(&order) {
            return Ok((order, seq));
        }
        let version = order.version();
        let mut seq = 0;
        for transition in transitions {
            seq = match order.apply(transition, at) {
                Ok(entry) => entry.seq,
                Err(commerce_core::Error::IllegalTransition { from, transition }) => {
                    return Err(StepError::Fail(LifecycleFailure::IllegalTransition {
                        from,
                        transition,
                    }));
                }
                Err(e) => return Err(core(e)),
            };
        }
        let mut events = order.status_events(version).map_err(core)?;
        events.extend(extra(&order).map_err(core)?);
        match self
            .ports
            .orders
            .update(order.clone(), version, &events)
            .await
            .map_err(port)?
        {
            CasOutcome::Committed => Ok((order, seq)),
            CasOutcome::VersionMismatch { .. } => Err(StepError::retry(
                ErrorKind::Conflict,
                "order changed concurrently",
            )),
        }
    }

    /// Refunds `amount` of `payment` under `purpose`'s key; a refund the provider already
    /// holds (this key's, or the money already back) is done.
    async fn refund(
        &self,
        id: &OrderId,
        purpose: &str,
        refund: Option<&(PaymentRef, Money)>,
    ) -> StepResult<()> {
        let Some((payment, amount)) = refund else {
            return Ok(());
        };
        match self
            .ports
            .payments
            .refund(&key(id, purpose)?, payment, *amount)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.kind == ErrorKind::Conflict => Ok(()),
            Err(e) => Err(port(e)),
        }
    }

    /// Voids `payment`'s uncaptured authorization under `purpose`'s key; one the provider
    /// already voided (this key's) is done.
    async fn void(
        &self,
        id: &OrderId,
        purpose: &str,
        payment: Option<&PaymentRef>,
    ) -> StepResult<()> {
        let Some(payment) = payment else {
            return Ok(());
        };
        match self.ports.payments.void(&key(id, purpose)?, payment).await {
            Ok(_) => Ok(()),
            Err(e) if e.kind == ErrorKind::Conflict => Ok(()),
            Err(e) => Err(port(e)),
        }
    }

    /// Records on the order the void (`void`) and the refund (`refunded`), each once.
    async fn record_refund(
        &self,
        id: &OrderId,
        moved: &Moved,
        now: DateTime<Utc>,
    ) -> StepResult<()> {
        if moved.void.is_some() {
            let _ = self
                .transition(
                    id,
                    Transition::Void,
                    now,
                    |_| Ok(Vec::new()),
                    |o| last_seq_of(o, TransitionKind::Void),
                )
                .await?;
        }
        let Some((_, amount)) = &moved.refund else {
            return Ok(());
        };
        let _ = self
            .transition(
                id,
                Transition::Refund { amount: *amount },
                now,
                |_| Ok(Vec::new()),
                |o| last_seq_of(o, TransitionKind::Refund),
            )
            .await?;
        Ok(())
    }

    async fn notify(&self, id: &OrderId, kind: NotificationKind, purpose: &str) -> StepResult<()> {
        let order = self.order(id).await?;
        let note = Notification {
            key: key(id, purpose)?,
            recipient: order.user_id().clone(),
            kind,
            order_id: Some(id.clone()),
            sku: None,
        };
        crate::notify::send_for_step(self.ports.notifier.as_ref(), &note)
            .await
            .map_err(port)
    }

    /// Puts units of an order's lines with `skus` (all lines when `None`) back on hand:
    /// returned goods, a parcel back from the carrier.
    async fn restock(
        &self,
        order: &Order,
        skus: Option<&[Sku]>,
        purpose: &str,
        now: DateTime<Utc>,
    ) -> StepResult<()> {
        for line in stock_lines(order, skus) {
            let movement = key(order.id(), &format!("{purpose}-{}", line.key.sku))?;
            let _ = self
                .ports
                .stock
                .receive(&movement, &line.key, line.quantity, now)
                .await
                .map_err(stock)?;
        }
        Ok(())
    }
}

/// The sequence of the latest ledger entry of `kind`, if any.
fn last_seq_of(order: &Order, kind: TransitionKind) -> Option<u32> {
    order
        .ledger()
        .iter()
        .rev()
        .find(|e| e.transition.kind() == kind)
        .map(|e| e.seq)
}

/// The sequence of the parcel with `tracking_number`, if the order shipped it (the last one
/// or a part).
fn ship_seq(order: &Order, tracking_number: &str) -> Option<u32> {
    order.ledger().iter().find_map(|e| match &e.transition {
        Transition::Ship {
            tracking_number: t, ..
        }
        | Transition::ShipPart {
            tracking_number: t, ..
        } if t == tracking_number => Some(e.seq),
        _ => None,
    })
}

/// Whether `sku` went out in a parcel recorded before `seq`.
fn shipped_before(order: &Order, sku: &Sku, seq: u32) -> bool {
    order.ledger().iter().any(|e| {
        e.seq < seq
            && matches!(&e.transition,
                Transition::Ship { lines, .. } | Transition::ShipPart { lines, .. }
                    if lines.contains(sku))
    })
}

/// The SKUs of the parcel recorded at `seq`.
fn parcel_at(order: &Order, seq: u32) -> Option<&[Sku]> {
    order
        .ledger()
        .iter()
        .find(|e| e.seq == seq)
        .and_then(|e| match &e.transition {
            Transition::Ship { lines, .. } | Transition::ShipPart { lines, .. } => {
                Some(lines.as_slice())
            }
            _ => None,
        })
}

/// The sequence of a `kind` entry after the shipment with `tracking_number`.
fn after_shipment(order: &Order, tracking_number: &str, kind: TransitionKind) -> Option<u32> {
    let shipped = ship_seq(order, tracking_number)?;
    order
        .ledger()
        .iter()
        .find(|e| e.seq > shipped && e.transition.kind() == kind)
        .map(|e| e.seq)
}

/// The order's current shipment: its tracking number and when it shipped.
pub(crate) fn current_shipment(order: &Order) -> Option<(String, DateTime<Utc>)> {
    order
        .ledger()
        .iter()
        .rev()
        .find_map(|e| match &e.transition {
            Transition::Ship {
                tracking_number, ..
            } => Some((tracking_number.clone(), e.at)),
            _ => None,
        })
}

/// A step that finds an earlier step's output missing: a bug, never retried into success.
fn missing(what: &str) -> StepError<LifecycleFailure> {
    StepError::Fail(LifecycleFailure::Unexpected {
        kind: ErrorKind::Internal,
        message: format!("{what} was not recorded by the step before"),
    })
}

/// The pivot's output, for the steps after it.
fn moved(pivot: Option<&LifecycleOutput>) -> StepResult<&Moved> {
    match pivot {
        Some(LifecycleOutput::Moved(moved)) => Ok(moved),
        _ => Err(missing("the order's move")),
    }
}

/// Declares a step enum with its journal names and kinds.
macro_rules! steps {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => ($text:literal, $kind:ident)),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl Step for $name {
            const ALL: &'static [$name] = &[$($name::$variant),+];

            fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            fn kind(self) -> StepKind {
                match self {
                    $($name::$variant => StepKind::$kind),+
                }
            }
        }
    };
}

steps!(
    /// The steps of a cancellation.
    CancelStep {
        /// Cancel the order, with `OrderCancelled` (the pivot).
        MarkCancelled => ("mark_cancelled", Pivot),
        /// Give committed stock back to sale.
        ReleaseStock => ("release_stock", Retriable),
        /// Release an authorization never captured.
        Void => ("void", Retriable),
        /// Refund what was captured, in full.
        Refund => ("refund", Retriable),
        /// Record the void and the refund on the order.
        RecordRefund => ("record_refund", Retriable),
        /// Tell the customer.
        Notify => ("notify", Retriable),
    }
);

/// What a cancellation is started with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelInput {
    /// The order.
    pub order_id: OrderId,
    /// Why (kept in the ledger and the event).
    pub reason: String,
}

/// Cancels an order before it ships: never a cancelled order with its money kept or its stock
/// still committed.
#[derive(Debug)]
pub struct CancelSaga(pub(crate) Shared);

#[async_trait]
impl SagaDefinition for CancelSaga {
    const KIND: &'static str = "order_cancel";
    type Input = CancelInput;
    type Step = CancelStep;
    type Output = LifecycleOutput;
    type Failure = LifecycleFailure;

    async fn act(&self, ctx: &StepContext<'_, Self>) -> StepResult<LifecycleOutput> {
        let id = &ctx.input.order_id;
        if ctx.step == CancelStep::MarkCancelled {
            let reason = ctx.input.reason.clone();
            let (order, seq) = self
                .0
                .transition(
                    id,
                    Transition::Cancel {
                        reason: reason.clone(),
                    },
                    ctx.now,
                    |o| Ok(vec![cancelled_event(o, &reason, ctx.now)?]),
                    |o| last_seq_of(o, TransitionKind::Cancel),
                )
                .await?;
            // A confirmed order's stock is committed (checkout commits it before it confirms
            // the order) until it first ships: after a parcel came back or was lost, its units
            // were shipped (and came back as free stock), so nothing of this order is committed
            // any more. Money captured is refunded; an authorization never captured is voided.
            let shipped = last_seq_of(&order, TransitionKind::Ship).is_some();
            let captured = order.captured();
            let uncaptured = order.uncaptured().map_err(core)?;
            let payment = order.payment_ref();
            return Ok(LifecycleOutput::Moved(Moved {
                seq,
                stock_committed: order.is_confirmed() && !shipped,
                refund: payment
                    .filter(|_| captured.is_positive())
                    .map(|p| (p.clone(), captured)),
                void: payment.filter(|_| uncaptured.is_positive()).cloned(),
                replacement: false,
            }));
        }
        let pivot = moved(ctx.output(CancelStep::MarkCancelled))?;
        let refund = pivot.refund.as_ref();
        match ctx.step {
            CancelStep::Void => self.0.void(id, "cancel-void", pivot.void.as_ref()).await?,
            CancelStep::ReleaseStock if pivot.stock_committed => {
                let order = self.0.order(id).await?;
                let _ = self
                    .0
                    .ports
                    .stock
                    .uncommit(
                        &key(id, "cancel-uncommit")?,
                        &self.0.stock_lines(&order),
                        ctx.now,
                    )
                    .await
                    .map_err(stock)?;
            }
            CancelStep::Refund => self.0.refund(id, "cancel-refund", refund).await?,
            CancelStep::RecordRefund => self.0.record_refund(id, pivot, ctx.now).await?,
            CancelStep::Notify => {
                self.0
                    .notify(id, NotificationKind::OrderCancelled, "notify-cancelled")
                    .await?;
            }
            CancelStep::MarkCancelled | CancelStep::ReleaseStock => {}
        }
        Ok(LifecycleOutput::Done)
    }

    fn deadline_passed(&self, _step: CancelStep) -> LifecycleFailure {
        LifecycleFailure::Unexpected {
            kind: ErrorKind::Unavailable,
            message: "the cancellation's deadline passed".into(),
        }
    }
}

/// Where a shipment's label comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum LabelSource {
    /// Bought already (by the warehouse's own system).
    Bought {
        /// The label.
        label: Label,
    },
    /// Buy it from the lifecycle's carrier; voided again if the order cannot ship.
    Buy {
        /// What to ship.
        request: Box<ShipmentRequest>,
        /// The carrier's service level.
        service: String,
    },
}

/// What a shipment is started with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipInput {
    /// The order.
    pub order_id: OrderId,
    /// The shipment's id among the order's shipments (the caller's key: a replacement is
    /// another shipment).
    pub shipment: String,
    /// The label.
    pub label: LabelSource,
    /// The SKUs in the parcel; none means every line not shipped yet (the last parcel).
    #[serde(default)]
    pub lines: Option<Vec<Sku>>,
}

steps!(
    /// The steps of a shipment.
    ShipStep {
        /// Buy the label (compensation: void it).
        BuyLabel => ("buy_label", Compensatable),
        /// Check the parcel against the order and fix how much of the payment it captures,
        /// before any money moves.
        PlanCapture => ("plan_capture", Compensatable),
        /// Capture the planned share of an authorization (compensation: refund it).
        Capture => ("capture", Compensatable),
        /// Mark the parcel shipped with the label's tracking number, with its capture (the
        /// pivot).
        MarkShipped => ("mark_shipped", Pivot),
        /// The parcel's units leave stock (a replacement commits fresh units first).
        ShipStock => ("ship_stock", Retriable),
        /// Tell the customer.
        Notify => ("notify", Retriable),
    }
);

/// Hands a parcel to a carrier: its share of the payment is captured, stock leaves once, the
/// customer hears once.
#[derive(Debug)]
pub struct ShipSaga(pub(crate) Shared);

impl ShipSaga {
    fn label_key(&self, input: &ShipInput) -> StepResult<IdempotencyKey> {
        key(&input.order_id, &format!("label:{}", input.shipment))
    }

    fn capture_key(&self, input: &ShipInput) -> StepResult<IdempotencyKey> {
        key(&input.order_id, &format!("capture:{}", input.shipment))
    }

    async fn label(&self, input: &ShipInput) -> StepResult<Label> {
        match &input.label {
            LabelSource::Bought { label } => Ok(label.clone()),
            LabelSource::Buy { request, service } => {
                match self
                    .0
                    .ports
                    .carrier
                    .create_label(&self.label_key(input)?, request, service)
                    .await
                {
                    Ok(label) => Ok(label),
                    Err(e) if matches!(e.kind, ErrorKind::Refused | ErrorKind::Invalid) => {
                        Err(StepError::Fail(LifecycleFailure::LabelRefused {
                            message: e.message,
                        }))
                    }
                    Err(e) => Err(port(e)),
                }
            }
        }
    }

    /// The parcel's transitions on `order` as it is: the capture of its share (when there is
    /// any to take) and its shipment, checked by applying them to a copy.
    /// `captured` is what the capture step took, once it has run.
    fn parcel(
        &self,
        order: &Order,
        input: &ShipInput,
        label: &Label,
        (captured, now): (Option<Money>, DateTime<Utc>),
    ) -> StepResult<(Money, Vec<Transition>)> {
        let unshipped = order.unshipped();
        let lines = input.lines.clone().unwrap_or_else(|| unshipped.clone());
        let last = unshipped.iter().all(|u| lines.contains(u));
        let amount = match captured {
            Some(amount) => amount,
            None => order.capture_share(&lines).map_err(core)?,
        };
        let mut transitions = Vec::new();
        if amount.is_positive() {
            transitions.push(Transition::Capture { amount });
        }
        transitions.push(if last {
            Transition::Ship {
                carrier: label.carrier.clone(),
                tracking_number: label.tracking_number.clone(),
                lines: Vec::new(),
            }
        } else {
            Transition::ShipPart {
                carrier: label.carrier.clone(),
                tracking_number: label.tracking_number.clone(),
                lines,
            }
        });
        let mut dry = order.clone();
        for t in &transitions {
            match dry.apply(t.clone(), now) {
                Ok(_) => {}
                Err(commerce_core::Error::IllegalTransition { from, transition }) => {
                    return Err(StepError::Fail(LifecycleFailure::IllegalTransition {
                        from,
                        transition,
                    }));
                }
                Err(e) => {
                    return Err(StepError::Fail(LifecycleFailure::InvalidParcel {
                        message: e.to_string(),
                    }));
                }
            }
        }
        Ok((amount, transitions))
    }

    fn recorded_label<'c>(&self, ctx: &'c StepContext<'_, Self>) -> StepResult<&'c Label> {
        match ctx.output(ShipStep::BuyLabel) {
            Some(LifecycleOutput::Labelled { label }) => Ok(label),
            _ => Err(missing("the label")),
        }
    }

    /// The parcel's share of the payment, checked against the order as it is; nothing when
    /// it was captured at checkout or the order has already shipped this parcel.
    async fn plan_capture(&self, ctx: &StepContext<'_, Self>) -> StepResult<Money> {
        let input = ctx.input;
        let label = self.recorded_label(ctx)?;
        let order = self.0.order(&input.order_id).await?;
        if ship_seq(&order, &label.tracking_number).is_some() {
            return Ok(Money::zero(order.currency()));
        }
        Ok(self.parcel(&order, input, label, (None, ctx.now))?.0)
    }

    fn planned(&self, ctx: &StepContext<'_, Self>) -> StepResult<Money> {
        match ctx.output(ShipStep::PlanCapture) {
            Some(LifecycleOutput::Captured { amount }) => Ok(*amount),
            _ => Err(missing("the planned capture")),
        }
    }

    /// Captures the planned share.
    async fn capture(&self, ctx: &StepContext<'_, Self>) -> StepResult<Money> {
        let input = ctx.input;
        let amount = self.planned(ctx)?;
        let order = self.0.order(&input.order_id).await?;
        let Some(payment) = order.payment_ref().filter(|_| amount.is_positive()) else {
            return Ok(amount);
        };
        match self
            .0
            .ports
            .payments
            .capture(&self.capture_key(input)?, payment, amount)
            .await
        {
            Ok(_) => Ok(amount),
            Err(e) if matches!(e.kind, ErrorKind::Refused | ErrorKind::Conflict) => {
                Err(StepError::Fail(LifecycleFailure::CaptureRefused {
                    message: e.message,
                }))
            }
            Err(e) => Err(port(e)),
        }
    }

    /// Refunds what the capture key took, if it took anything (even a call that never
    /// reported back: the provider is asked).
    async fn refund_capture(&self, ctx: &StepContext<'_, Self>) -> StepResult<()> {
        let input = ctx.input;
        let Some(payment) = self
            .0
            .ports
            .payments
            .lookup(&self.capture_key(input)?)
            .await
            .map_err(port)?
        else {
            return Ok(());
        };
        // The key took effect: it captured the planned amount (journaled before the call).
        let amount = self.planned(ctx)?;
        if amount.is_positive() {
            let refund = key(
                &input.order_id,
                &format!("capture-refund:{}", input.shipment),
            )?;
            match self
                .0
                .ports
                .payments
                .refund(&refund, &payment.payment_ref, amount)
                .await
            {
                Ok(_) => {}
                Err(e) if e.kind == ErrorKind::Conflict => {}
                Err(e) => return Err(port(e)),
            }
        }
        Ok(())
    }

    async fn void_label(&self, ctx: &StepContext<'_, Self>) -> StepResult<()> {
        if let LabelSource::Buy { .. } = ctx.input.label {
            // Whatever the key bought (even if the call never reported back) is voided: asking
            // again with the same key returns that label.
            let label = match ctx.output(ShipStep::BuyLabel) {
                Some(LifecycleOutput::Labelled { label }) => label.clone(),
                _ => match self.label(ctx.input).await {
                    Ok(label) => label,
                    Err(StepError::Fail(_)) => return Ok(()),
                    Err(e) => return Err(e),
                },
            };
            let void = key(
                &ctx.input.order_id,
                &format!("void-label:{}", ctx.input.shipment),
            )?;
            match self
                .0
                .ports
                .carrier
                .void_label(&void, &label.tracking_number)
                .await
            {
                Ok(()) => {}
                // Scanned already: nothing to void (and nothing more this saga can do).
                Err(e) if e.kind == ErrorKind::Refused => {}
                Err(e) => return Err(port(e)),
            }
        }
        Ok(())
    }
}

#[async_trait]
impl SagaDefinition for ShipSaga {
    const KIND: &'static str = "order_ship";
    type Input = ShipInput;
    type Step = ShipStep;
    type Output = LifecycleOutput;
    type Failure = LifecycleFailure;

    async fn act(&self, ctx: &StepContext<'_, Self>) -> StepResult<LifecycleOutput> {
        let id = &ctx.input.order_id;
        match ctx.step {
            ShipStep::BuyLabel => Ok(LifecycleOutput::Labelled {
                label: self.label(ctx.input).await?,
            }),
            ShipStep::PlanCapture => Ok(LifecycleOutput::Captured {
                amount: self.plan_capture(ctx).await?,
            }),
            ShipStep::Capture => Ok(LifecycleOutput::Captured {
                amount: self.capture(ctx).await?,
            }),
            ShipStep::MarkShipped => {
                let label = self.recorded_label(ctx)?;
                let tracking = label.tracking_number.clone();
                let order = self.0.order(id).await?;
                let captured = match ctx.output(ShipStep::Capture) {
                    Some(LifecycleOutput::Captured { amount }) => *amount,
                    _ => return Err(missing("the capture")),
                };
                let transitions = match ship_seq(&order, &tracking) {
                    Some(_) => Vec::new(),
                    None => {
                        self.parcel(&order, ctx.input, label, (Some(captured), ctx.now))?
                            .1
                    }
                };
                let (order, seq) = self
                    .0
                    .transitions(
                        id,
                        transitions,
                        ctx.now,
                        |_| Ok(Vec::new()),
                        |o| ship_seq(o, &tracking),
                    )
                    .await?;
                let replacement = parcel_at(&order, seq)
                    .is_some_and(|p| p.iter().any(|sku| shipped_before(&order, sku, seq)));
                Ok(LifecycleOutput::Moved(Moved {
                    seq,
                    replacement,
                    ..Moved::default()
                }))
            }
            ShipStep::ShipStock => {
                let seq = moved(ctx.output(ShipStep::MarkShipped))?.seq;
                let order = self.0.order(id).await?;
                let parcel = parcel_at(&order, seq).ok_or_else(|| missing("the parcel"))?;
                let lines = stock_lines(&order, Some(parcel));
                // Lines that went out before in a parcel lost or returned: their committed units
                // left then, so fresh ones are committed, reporting any shortfall rather than
                // refusing a paid order.
                let reshipped: Vec<Sku> = parcel
                    .iter()
                    .filter(|sku| shipped_before(&order, sku, seq))
                    .cloned()
                    .collect();
                if !reshipped.is_empty() {
                    let _ = self
                        .0
                        .ports
                        .stock
                        .commit_direct(
                            &key(id, &format!("reship-{seq}"))?,
                            &stock_lines(&order, Some(&reshipped)),
                            inventory::ShortfallPolicy::Accept,
                            ctx.now,
                        )
                        .await
                        .map_err(stock)?;
                }
                let _ = self
                    .0
                    .ports
                    .stock
                    .ship(&key(id, &format!("ship-{seq}"))?, &lines, ctx.now)
                    .await
                    .map_err(stock)?;
                Ok(LifecycleOutput::Done)
            }
            ShipStep::Notify => {
                let seq = moved(ctx.output(ShipStep::MarkShipped))?.seq;
                self.0
                    .notify(
                        id,
                        NotificationKind::OrderShipped,
                        &format!("notify-shipped-{seq}"),
                    )
                    .await?;
                Ok(LifecycleOutput::Done)
            }
        }
    }

    async fn compensate(&self, ctx: &StepContext<'_, Self>) -> StepResult<()> {
        match ctx.step {
            ShipStep::BuyLabel => self.void_label(ctx).await,
            ShipStep::Capture => self.refund_capture(ctx).await,
            // Planning moved nothing.
            _ => Ok(()),
        }
    }

    fn deadline_passed(&self, _step: ShipStep) -> LifecycleFailure {
        LifecycleFailure::Unexpected {
            kind: ErrorKind::Unavailable,
            message: "the shipment's deadline passed".into(),
        }
    }
}

/// What a delivery (or a return to sender) is started with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackedInput {
    /// The order.
    pub order_id: OrderId,
    /// The shipment's tracking number.
    pub tracking_number: String,
    /// When the carrier recorded it.
    pub at: DateTime<Utc>,
    /// The carrier's `ShipmentUpdated` to commit with the transition, when a tracking update
    /// caused it.
    pub event: Option<EventEnvelope>,
}

steps!(
    /// The steps of a delivery.
    DeliverStep {
        /// Mark the current shipment delivered (the pivot).
        MarkDelivered => ("mark_delivered", Pivot),
        /// Tell the customer.
        Notify => ("notify", Retriable),
    }
);

/// Records a delivery of the order's current shipment.
#[derive(Debug)]
pub struct DeliverSaga(pub(crate) Shared);

/// Moves the order for a tracked shipment: only the current shipment may, and a transition
/// already recorded after it counts as done.
async fn tracked_transition(
    shared: &Shared,
    input: &TrackedInput,
    transition: Transition,
) -> StepResult<u32> {
    let kind = transition.kind();
    let order = shared.order(&input.order_id).await?;
    if let Some(seq) = after_shipment(&order, &input.tracking_number, kind) {
        return Ok(seq);
    }
    match current_shipment(&order) {
        Some((t, _)) if t == input.tracking_number => {}
        _ => {
            return Err(StepError::Fail(LifecycleFailure::NotCurrentShipment {
                tracking_number: input.tracking_number.clone(),
            }));
        }
    }
    let tracking = input.tracking_number.clone();
    let event = input.event.clone();
    let (_, seq) = shared
        .transition(
            &input.order_id,
            transition,
            input.at,
            |_| Ok(event.into_iter().collect()),
            |o| after_shipment(o, &tracking, kind),
        )
        .await?;
    Ok(seq)
}

fn moved_at(seq: u32) -> LifecycleOutput {
    LifecycleOutput::Moved(Moved {
        seq,
        ..Moved::default()
    })
}

#[async_trait]
impl SagaDefinition for DeliverSaga {
    const KIND: &'static str = "order_deliver";
    type Input = TrackedInput;
    type Step = DeliverStep;
    type Output = LifecycleOutput;
    type Failure = LifecycleFailure;

    async fn act(&self, ctx: &StepContext<'_, Self>) -> StepResult<LifecycleOutput> {
        match ctx.step {
            DeliverStep::MarkDelivered => Ok(moved_at(
                tracked_transition(&self.0, ctx.input, Transition::Deliver).await?,
            )),
            DeliverStep::Notify => {
                self.0
                    .notify(
                        &ctx.input.order_id,
                        NotificationKind::OrderDelivered,
                        "notify-delivered",
                    )
                    .await?;
                Ok(LifecycleOutput::Done)
            }
        }
    }

    fn deadline_passed(&self, _step: DeliverStep) -> LifecycleFailure {
        LifecycleFailure::Unexpected {
            kind: ErrorKind::Unavailable,
            message: "the delivery's deadline passed".into(),
        }
    }
}

steps!(
    /// The steps of a parcel returned to the sender.
    ReturnToSenderStep {
        /// Send the order back to fulfilment (the pivot).
        MarkReturnedToSender => ("mark_returned_to_sender", Pivot),
        /// The parcel's units are back on the shelf.
        Restock => ("restock", Retriable),
    }
);

/// A parcel came back to the warehouse: the order goes back to fulfilment, its units back on
/// hand.
#[derive(Debug)]
pub struct ReturnToSenderSaga(pub(crate) Shared);

#[async_trait]
impl SagaDefinition for ReturnToSenderSaga {
    const KIND: &'static str = "order_return_to_sender";
    type Input = TrackedInput;
    type Step = ReturnToSenderStep;
    type Output = LifecycleOutput;
    type Failure = LifecycleFailure;

    async fn act(&self, ctx: &StepContext<'_, Self>) -> StepResult<LifecycleOutput> {
        match ctx.step {
            ReturnToSenderStep::MarkReturnedToSender => Ok(moved_at(
                tracked_transition(&self.0, ctx.input, Transition::ReturnToSender).await?,
            )),
            ReturnToSenderStep::Restock => {
                let seq = moved(ctx.output(ReturnToSenderStep::MarkReturnedToSender))?.seq;
                let order = self.0.order(&ctx.input.order_id).await?;
                // Only the parcel that came back: parts shipped before are with the customer.
                let parcel = ship_seq(&order, &ctx.input.tracking_number)
                    .and_then(|s| parcel_at(&order, s))
                    .ok_or_else(|| missing("the returned parcel"))?;
                self.0
                    .restock(&order, Some(parcel), &format!("rts-{seq}"), ctx.now)
                    .await?;
                Ok(LifecycleOutput::Done)
            }
        }
    }

    fn deadline_passed(&self, _step: ReturnToSenderStep) -> LifecycleFailure {
        LifecycleFailure::Unexpected {
            kind: ErrorKind::Unavailable,
            message: "the return's deadline passed".into(),
        }
    }
}

/// What a return is started with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnInput {
    /// The order.
    pub order_id: OrderId,
    /// Whether the goods go back to stock.
    pub restock: bool,
}

steps!(
    /// The steps of a return.
    ReturnStep {
        /// Record the returned goods (the pivot).
        MarkReturned => ("mark_returned", Pivot),
        /// Put the goods back on hand, if they can be sold again.
        Restock => ("restock", Retriable),
        /// Refund what was captured, in full.
        Refund => ("refund", Retriable),
        /// Record the refund on the order.
        RecordRefund => ("record_refund", Retriable),
    }
);

/// Returned goods arrived: restock, refund in full, record it.
#[derive(Debug)]
pub struct ReturnSaga(pub(crate) Shared);

#[async_trait]
impl SagaDefinition for ReturnSaga {
    const KIND: &'static str = "order_return";
    type Input = ReturnInput;
    type Step = ReturnStep;
    type Output = LifecycleOutput;
    type Failure = LifecycleFailure;

    async fn act(&self, ctx: &StepContext<'_, Self>) -> StepResult<LifecycleOutput> {
        let id = &ctx.input.order_id;
        if ctx.step == ReturnStep::MarkReturned {
            let (order, seq) = self
                .0
                .transition(
                    id,
                    Transition::ReturnReceived,
                    ctx.now,
                    |_| Ok(Vec::new()),
                    |o| last_seq_of(o, TransitionKind::ReturnReceived),
                )
                .await?;
            let captured = order.captured();
            return Ok(LifecycleOutput::Moved(Moved {
                seq,
                refund: order
                    .payment_ref()
                    .filter(|_| captured.is_positive())
                    .map(|p| (p.clone(), captured)),
                ..Moved::default()
            }));
        }
        let pivot = moved(ctx.output(ReturnStep::MarkReturned))?;
        let refund = pivot.refund.as_ref();
        match ctx.step {
            ReturnStep::Restock if ctx.input.restock => {
                let order = self.0.order(id).await?;
                self.0.restock(&order, None, "return", ctx.now).await?;
            }
            ReturnStep::Refund => self.0.refund(id, "return-refund", refund).await?,
            ReturnStep::RecordRefund => self.0.record_refund(id, pivot, ctx.now).await?,
            ReturnStep::MarkReturned | ReturnStep::Restock => {}
        }
        Ok(LifecycleOutput::Done)
    }

    fn deadline_passed(&self, _step: ReturnStep) -> LifecycleFailure {
        LifecycleFailure::Unexpected {
            kind: ErrorKind::Unavailable,
            message: "the return's deadline passed".into(),
        }
    }
}
