//! The order's life after checkout: fulfilment, shipping, delivery, cancellation before
//! shipping, returns and refunds, and carrier tracking projected onto the order.
//!
//! Operations that touch more than the order (stock, payments, the carrier, the customer) run
//! as journaled sagas ([`sagas`]): the order moves in one atomic write with its events, then
//! the rest is driven to the end, by this call or by [`Lifecycle::recover`] after a crash.
//! Operations that only move the order (start fulfilment, correct an address, a lost parcel)
//! are that one atomic write.

mod sagas;

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use commerce_core::{
    Address, CasOutcome, Clock, DomainEvent, EventEnvelope, EventId, Order, OrderId, TrackingEvent,
    TrackingStatus, Transition,
};

pub(crate) use sagas::saga_id;
pub use sagas::{
    CancelInput, CancelSaga, CancelStep, DeliverSaga, DeliverStep, LabelSource, LifecycleFailure,
    LifecycleOutput, LifecyclePorts, Moved, ReturnInput, ReturnSaga, ReturnStep,
    ReturnToSenderSaga, ReturnToSenderStep, ShipInput, ShipSaga, ShipStep, TrackedInput,
};
use sagas::{Shared, current_shipment};

use crate::builder::ServiceBuilder;
use crate::journal::SagaJournal;
use crate::orchestrator::{Drive, Orchestrator, RetryPolicy, SagaDefinition, Sleeper};
use crate::{Error, Result};

/// What an operation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The order moved (or had moved, for a repeated request); here it is now.
    Moved(Box<Order>),
    /// A duplicate or out-of-date tracking update: nothing changed.
    Ignored,
    /// The operation was refused and changed nothing (a label bought for it was voided).
    Refused(LifecycleFailure),
    /// Another worker runs this operation now.
    InProgress,
    /// It stopped part-way (a provider down, a crash) after the order moved, or before it
    /// could; [`Lifecycle::recover`] finishes it.
    Unfinished,
}

/// A parcel to ship: its id among the order's shipments, where its label comes from, and
/// which lines it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shipment {
    /// The caller's key for this shipment (a replacement is another shipment): the same key
    /// ships once.
    pub key: String,
    /// The label.
    pub label: LabelSource,
    /// The SKUs in the parcel when the order ships in several (a split shipment); none means
    /// every line not shipped yet.
    pub lines: Option<Vec<commerce_core::Sku>>,
}

impl Shipment {
    /// The whole order (what is left of it) in one parcel.
    pub fn whole(key: impl Into<String>, label: LabelSource) -> Shipment {
        Shipment {
            key: key.into(),
            label,
            lines: None,
        }
    }
}

/// Builds a [`Lifecycle`]: see [`ServiceBuilder`].
pub type LifecycleBuilder = ServiceBuilder<LifecyclePorts>;

impl ServiceBuilder<LifecyclePorts> {
    /// The lifecycle.
    pub fn build(mut self) -> Lifecycle {
        let journal = self.journal_or_in_memory();
        Lifecycle::assemble(
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

/// How long a shipment may spend buying its label before it gives up.
const SHIP_DEADLINE_SECS: i64 = 24 * 60 * 60;

/// The deadline of an operation that must happen whenever the system can (a cancellation, a
/// delivery, a return): none.
fn no_deadline() -> DateTime<Utc> {
    DateTime::<Utc>::MAX_UTC
}

/// Drives orders through fulfilment. Every operation is idempotent: a repeated request finds
/// its saga and answers with its outcome, and every effect is keyed by the order id and the
/// ledger sequence.
#[derive(Debug)]
pub struct Lifecycle {
    shared: Shared,
    clock: Arc<dyn Clock>,
    cancel: Orchestrator<CancelSaga>,
    ship: Orchestrator<ShipSaga>,
    deliver: Orchestrator<DeliverSaga>,
    return_to_sender: Orchestrator<ReturnToSenderSaga>,
    returns: Orchestrator<ReturnSaga>,
}

impl Lifecycle {
    /// A lifecycle over `ports`, timed by `clock` and `sleeper`: see [`LifecycleBuilder`].
    pub fn builder(
        ports: LifecyclePorts,
        clock: Arc<dyn Clock>,
        sleeper: Arc<dyn Sleeper>,
    ) -> LifecycleBuilder {
        ServiceBuilder::new(ports, clock, sleeper, "lifecycle")
    }

    /// A lifecycle driving its sagas as `owner`. Each order line names the stock location it
    /// ships from.
    pub fn new(
        ports: LifecyclePorts,
        journal: Arc<dyn SagaJournal>,
        clock: Arc<dyn Clock>,
        sleeper: Arc<dyn Sleeper>,
        owner: &str,
        seed: u64,
    ) -> Self {
        Lifecycle::assemble(
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
        ports: LifecyclePorts,
        journal: Arc<dyn SagaJournal>,
        clock: Arc<dyn Clock>,
        sleeper: Arc<dyn Sleeper>,
        owner: &str,
        seed: u64,
        policy: RetryPolicy,
    ) -> Self {
        let shared = Shared { ports };
        let make = |n: u64| (journal.clone(), clock.clone(), sleeper.clone(), seed ^ n);
        let (j, c, s, seed0) = make(0);
        let cancel = Orchestrator::new(CancelSaga(shared.clone()), j, c, s, owner, policy, seed0);
        let (j, c, s, seed1) = make(1);
        let ship = Orchestrator::new(ShipSaga(shared.clone()), j, c, s, owner, policy, seed1);
        let (j, c, s, seed2) = make(2);
        let deliver = Orchestrator::new(DeliverSaga(shared.clone()), j, c, s, owner, policy, seed2);
        let (j, c, s, seed3) = make(3);
        let return_to_sender = Orchestrator::new(
            ReturnToSenderSaga(shared.clone()),
            j,
            c,
            s,
            owner,
            policy,
            seed3,
        );
        let (j, c, s, seed4) = make(4);
        let returns = Orchestrator::new(ReturnSaga(shared.clone()), j, c, s, owner, policy, seed4);
        Lifecycle {
            shared,
            clock,
            cancel,
            ship,
            deliver,
            return_to_sender,
            returns,
        }
    }

    async fn order(&self, id: &OrderId) -> Result<Order> {
        self.shared
            .ports
            .orders
            .get(id)
            .await?
            .ok_or_else(|| Error::NotFound {
                what: "order",
                id: id.to_string(),
            })
    }

    /// Starts (or finds) saga `saga` with `input` and reports where the order is. A repeated
    /// request with another input (a second cancellation's reason) finds the first: the first
    /// request stands.
    async fn run<D: SagaDefinition<Failure = LifecycleFailure>>(
        &self,
        orchestrator: &Orchestrator<D>,
        order: &OrderId,
        saga: &str,
        input: &D::Input,
        deadline: DateTime<Utc>,
    ) -> Result<Applied> {
        let drive = match orchestrator.start(saga, input, deadline).await {
            Err(Error::InputMismatch { .. }) => orchestrator.drive(saga).await?,
            other => other?,
        };
        Ok(match drive {
            Drive::Completed(_) => Applied::Moved(Box::new(self.order(order).await?)),
            Drive::Compensated(failed) => Applied::Refused(failed.reason),
            Drive::InProgress => Applied::InProgress,
            Drive::Waiting(_) | Drive::Stalled { .. } => Applied::Unfinished,
        })
    }

    /// Applies a transition that touches nothing but the order, committing its status events
    /// and `extra` with it; `Refused` if the state machine does not allow it.
    async fn transition(
        &self,
        id: &OrderId,
        transition: Transition,
        at: DateTime<Utc>,
        extra: Vec<EventEnvelope>,
    ) -> Result<Applied> {
        for _ in 0..crate::limits::CAS_ATTEMPTS_MAX {
            let mut order = self.order(id).await?;
            let version = order.version();
            match order.apply(transition.clone(), at) {
                Ok(_) => {}
                Err(commerce_core::Error::IllegalTransition { from, transition }) => {
                    return Ok(Applied::Refused(LifecycleFailure::IllegalTransition {
                        from,
                        transition,
                    }));
                }
                Err(e) => return Err(e.into()),
            }
            let mut events = order.status_events(version)?;
            events.extend(extra.iter().cloned());
            if self
                .shared
                .ports
                .orders
                .update(order.clone(), version, &events)
                .await?
                == CasOutcome::Committed
            {
                return Ok(Applied::Moved(Box::new(order)));
            }
        }
        Err(Error::Port(commerce_core::PortError::new(
            commerce_core::ErrorKind::Unavailable,
            format!("order {id} kept changing concurrently"),
        )))
    }

    /// The warehouse starts picking.
    ///
    /// # Errors
    /// Port errors; [`Error::NotFound`] for an unknown order.
    pub async fn start_fulfilment(&self, id: &OrderId) -> Result<Applied> {
        self.transition(
            id,
            Transition::StartFulfilment,
            self.clock.now(),
            Vec::new(),
        )
        .await
    }

    /// Corrects the shipping address (the customer's fix, or the carrier's address exception)
    /// as a ledger entry; refused once the order is delivered or closed.
    ///
    /// # Errors
    /// Port errors; an unknown order; an invalid address ([`Error::Core`], `Invalid`).
    pub async fn correct_address(&self, id: &OrderId, address: Address) -> Result<Applied> {
        self.transition(
            id,
            Transition::CorrectAddress { address },
            self.clock.now(),
            Vec::new(),
        )
        .await
    }

    /// Cancels an order before it ships: committed stock goes back to sale, captured money is
    /// refunded in full and an authorization never captured is voided, `OrderCancelled` is
    /// committed with the cancellation, the customer is told. An order cancelled while its checkout is charging is undone by the checkout.
    ///
    /// # Errors
    /// Port and journal errors; an unknown order. A shipped order is `Refused`.
    pub async fn cancel(&self, id: &OrderId, reason: &str) -> Result<Applied> {
        let _ = self.order(id).await?;
        let input = CancelInput {
            order_id: id.clone(),
            reason: reason.to_owned(),
        };
        let saga = saga_id(id, "cancel", None);
        self.run(&self.cancel, id, &saga, &input, no_deadline())
            .await
    }

    /// Hands a parcel to the carrier: the label is bought (or the given one used), the parcel's
    /// share of an authorization captured (when the capture waits for shipping), the order
    /// marked shipped (or partly shipped), the parcel's units leave stock, the customer hears.
    /// A parcel that cannot ship (the order cancelled meanwhile, a capture refused) is
    /// `Refused`: the label bought for it is voided and a capture made for it refunded.
    ///
    /// # Errors
    /// Port and journal errors; an unknown order.
    pub async fn ship(&self, id: &OrderId, shipment: Shipment) -> Result<Applied> {
        let _ = self.order(id).await?;
        let saga = saga_id(id, "ship", Some(&shipment.key));
        let input = ShipInput {
            order_id: id.clone(),
            shipment: shipment.key,
            label: shipment.label,
            lines: shipment.lines,
        };
        let deadline = self.clock.now() + TimeDelta::seconds(SHIP_DEADLINE_SECS);
        self.run(&self.ship, id, &saga, &input, deadline).await
    }

    /// The current shipment was delivered (a driver's confirmation, or a tracking update via
    /// [`Lifecycle::on_tracking`]).
    ///
    /// # Errors
    /// Port and journal errors; an unknown order. An order not shipped is `Refused`.
    pub async fn deliver(&self, id: &OrderId) -> Result<Applied> {
        let order = self.order(id).await?;
        let Some((tracking_number, _)) = current_shipment(&order) else {
            return Ok(Applied::Refused(LifecycleFailure::IllegalTransition {
                from: order.status(),
                transition: commerce_core::TransitionKind::Deliver,
            }));
        };
        let input = TrackedInput {
            order_id: id.clone(),
            tracking_number,
            at: self.clock.now(),
            event: None,
        };
        self.delivered(input).await
    }

    async fn delivered(&self, input: TrackedInput) -> Result<Applied> {
        let saga = saga_id(&input.order_id, "deliver", Some(&input.tracking_number));
        let id = input.order_id.clone();
        self.run(&self.deliver, &id, &saga, &input, no_deadline())
            .await
    }

    /// Returned goods arrived: optionally back to stock, and the payment is refunded in full.
    ///
    /// # Errors
    /// Port and journal errors; an unknown order. An order not delivered is `Refused`.
    pub async fn return_received(&self, id: &OrderId, restock: bool) -> Result<Applied> {
        let _ = self.order(id).await?;
        let input = ReturnInput {
            order_id: id.clone(),
            restock,
        };
        let saga = saga_id(id, "return", None);
        self.run(&self.returns, id, &saga, &input, no_deadline())
            .await
    }

    /// Projects one carrier tracking update onto the order. Every update is committed once as
    /// `ShipmentUpdated` (event id `{order}:tracking:{seq}`), with the transition it causes
    /// when it causes one: `Delivered` delivers, `Lost` sends the order back to fulfilment,
    /// `ReturnToSender` does too and puts the units back on hand. A duplicate or out-of-order
    /// update (about an older shipment, older than the shipment, or already applied) changes
    /// nothing else.
    ///
    /// # Errors
    /// Port and journal errors; an unknown order.
    pub async fn on_tracking(
        &self,
        id: &OrderId,
        carrier: &str,
        tracking_number: &str,
        update: &TrackingEvent,
    ) -> Result<Applied> {
        let order = self.order(id).await?;
        let event = EventEnvelope::new(
            EventId::new(format!("{id}:tracking:{}", update.seq))?,
            update.at,
            DomainEvent::ShipmentUpdated {
                order_id: id.clone(),
                carrier: carrier.to_owned(),
                tracking_number: tracking_number.to_owned(),
                status: format!("{:?}", update.status),
                carrier_seq: update.seq,
            },
        );
        // Only updates about the current shipment move the order: a lost parcel's later scans
        // do not.
        let current = matches!(
            current_shipment(&order),
            Some((t, shipped_at)) if t == tracking_number && update.at >= shipped_at
        );
        let tracked = || TrackedInput {
            order_id: id.clone(),
            tracking_number: tracking_number.to_owned(),
            at: update.at,
            event: Some(event.clone()),
        };
        let applied = match update.status {
            TrackingStatus::Delivered if current => self.delivered(tracked()).await?,
            TrackingStatus::ReturnToSender if current => {
                let saga = saga_id(id, "rts", Some(tracking_number));
                self.run(&self.return_to_sender, id, &saga, &tracked(), no_deadline())
                    .await?
            }
            TrackingStatus::Lost if current => {
                self.transition(id, Transition::ReportLost, update.at, vec![event.clone()])
                    .await?
            }
            _ => Applied::Ignored,
        };
        match applied {
            // A transition the order has moved past (a duplicate delivery scan after the
            // return): the update is still recorded, the order does not move.
            Applied::Moved(_) | Applied::InProgress | Applied::Unfinished => Ok(applied),
            Applied::Ignored | Applied::Refused(_) => {
                self.shared.ports.outbox.publish(&[event]).await?;
                Ok(Applied::Ignored)
            }
        }
    }

    /// Drives up to `limit` unfinished lifecycle sagas of each kind (after a crash, or a
    /// provider that was down) to their end; returns how many it drove.
    ///
    /// # Errors
    /// Journal errors.
    pub async fn recover(&self, limit: usize) -> Result<usize> {
        Ok(self.cancel.recover(limit).await?.len()
            + self.ship.recover(limit).await?.len()
            + self.deliver.recover(limit).await?.len()
            + self.return_to_sender.recover(limit).await?.len()
            + self.returns.recover(limit).await?.len())
    }
}
