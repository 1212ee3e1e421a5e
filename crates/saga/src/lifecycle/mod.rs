//! The order's life after checkout: fulfilment, shipping, delivery, cancellation before
//! shipping with its compensations, returns and refunds, and carrier tracking projected onto
//! the order.

use std::fmt::Debug;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use commerce_core::{
    CasOutcome, DomainEvent, ErrorKind, EventEnvelope, EventId, EventPublisher, IdempotencyKey,
    Label, LocationId, Notification, NotificationKind, Notifier, Order, OrderId, OrderStore,
    PaymentGateway, TrackingEvent, TrackingStatus, Transition,
};
use inventory::{StockKey, StockLine, StockStore};

use crate::{Error, Result};

/// The ports the order lifecycle talks to.
#[derive(Debug, Clone)]
pub struct LifecyclePorts {
    /// Orders.
    pub orders: Arc<dyn OrderStore>,
    /// Stock (committed units ship or come back).
    pub stock: Arc<dyn StockStore>,
    /// Refunds.
    pub payments: Arc<dyn PaymentGateway>,
    /// The outbox.
    pub outbox: Arc<dyn EventPublisher>,
    /// Customer notifications.
    pub notifier: Arc<dyn Notifier>,
}

/// What applying a transition did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The order moved; here it is.
    Moved(Box<Order>),
    /// The transition was already applied, or does not apply any more (a duplicate or
    /// out-of-order tracking update): nothing changed.
    Ignored,
}

/// Drives orders through fulfilment. Every operation is idempotent: its effects are keyed by
/// the order id and the ledger sequence, and a transition the state machine refuses (already
/// done, out of order) is reported as [`Applied::Ignored`], not as an error.
#[derive(Debug, Clone)]
pub struct Lifecycle {
    ports: LifecyclePorts,
    location: LocationId,
}

fn key(order: &OrderId, purpose: &str) -> Result<IdempotencyKey> {
    Ok(IdempotencyKey::derive(order.as_str(), purpose)?)
}

impl Lifecycle {
    /// A lifecycle shipping from `location`.
    pub fn new(ports: LifecyclePorts, location: LocationId) -> Self {
        Lifecycle { ports, location }
    }

    fn stock_lines(&self, order: &Order) -> Vec<StockLine> {
        order
            .lines()
            .iter()
            .map(|l| StockLine {
                key: StockKey::new(l.sku.clone(), self.location.clone()),
                quantity: i64::from(l.quantity),
            })
            .collect()
    }

    /// Applies `transition` with compare-and-set, publishing `OrderStatusChanged` (event id
    /// `{order}:{seq}`, so a retry publishes once). A transition the state machine refuses is
    /// `Ignored`.
    async fn transition(
        &self,
        id: &OrderId,
        transition: Transition,
        now: DateTime<Utc>,
    ) -> Result<Applied> {
        for _ in 0..8 {
            let Some(mut order) = self.ports.orders.get(id).await? else {
                return Err(Error::Core(commerce_core::Error::Invalid {
                    field: "order_id",
                    reason: format!("no order {id}"),
                }));
            };
            let version = order.version();
            let entry = match order.apply(transition.clone(), now) {
                Ok(e) => e.clone(),
                Err(commerce_core::Error::IllegalTransition { .. }) => return Ok(Applied::Ignored),
                Err(e) => return Err(e.into()),
            };
            match self.ports.orders.update(order.clone(), version).await? {
                CasOutcome::Committed => {
                    let event = EventEnvelope::new(
                        EventId::new(format!("{id}:{}", entry.seq))?,
                        now,
                        DomainEvent::OrderStatusChanged {
                            order_id: id.clone(),
                            from: entry.from,
                            to: entry.to,
                            transition: entry.transition.kind(),
                            seq: entry.seq,
                        },
                    );
                    self.ports.outbox.publish(&[event]).await?;
                    return Ok(Applied::Moved(Box::new(order)));
                }
                CasOutcome::VersionMismatch { .. } => continue,
            }
        }
        Err(Error::Core(commerce_core::Error::Invalid {
            field: "order",
            reason: "kept changing concurrently".into(),
        }))
    }

    async fn notify(&self, order: &Order, kind: NotificationKind, purpose: &str) -> Result<()> {
        let note = Notification {
            key: key(order.id(), purpose)?,
            recipient: order.user_id().clone(),
            kind,
            order_id: Some(order.id().clone()),
            sku: None,
        };
        Ok(self.ports.notifier.send(&note).await?)
    }

    /// The warehouse starts picking.
    ///
    /// # Errors
    /// Port errors; an unknown order.
    pub async fn start_fulfilment(&self, id: &OrderId, now: DateTime<Utc>) -> Result<Applied> {
        self.transition(id, Transition::StartFulfilment, now).await
    }

    /// Hands the order to a carrier with `label`: stock leaves the warehouse, the customer hears.
    ///
    /// # Errors
    /// Port errors; an unknown order.
    pub async fn ship(&self, id: &OrderId, label: &Label, now: DateTime<Utc>) -> Result<Applied> {
        let applied = self
            .transition(
                id,
                Transition::Ship {
                    carrier: label.carrier.clone(),
                    tracking_number: label.tracking_number.clone(),
                },
                now,
            )
            .await?;
        if let Applied::Moved(order) = &applied {
            let seq = order.ledger().len();
            let lines = self.stock_lines(order);
            let shipments = order
                .ledger()
                .iter()
                .filter(|e| matches!(e.transition, Transition::Ship { .. }))
                .count();
            if shipments > 1 {
                // A replacement (the first parcel was lost or came back): commit fresh units,
                // reporting any shortfall rather than refusing a paid order.
                let _ = self
                    .ports
                    .stock
                    .commit_direct(
                        &key(id, &format!("reship-{seq}"))?,
                        &lines,
                        inventory::ShortfallPolicy::Accept,
                        now,
                    )
                    .await
                    .map_err(|e| Error::NotReady(e.to_string()))?;
            }
            let _ = self
                .ports
                .stock
                .ship(&key(id, &format!("ship-{seq}"))?, &lines, now)
                .await
                .map_err(|e| Error::NotReady(e.to_string()))?;
            self.notify(
                order,
                NotificationKind::OrderShipped,
                &format!("notify-shipped-{seq}"),
            )
            .await?;
        }
        Ok(applied)
    }

    /// Corrects the shipping address (the customer's fix, or the carrier's address exception)
    /// as a ledger entry; refused (`Ignored`) once the order is delivered or closed.
    ///
    /// # Errors
    /// Port errors; an unknown order; an invalid address.
    pub async fn correct_address(
        &self,
        id: &OrderId,
        address: commerce_core::Address,
        now: DateTime<Utc>,
    ) -> Result<Applied> {
        self.transition(id, Transition::CorrectAddress { address }, now)
            .await
    }

    /// The carrier delivered.
    ///
    /// # Errors
    /// Port errors; an unknown order.
    pub async fn deliver(&self, id: &OrderId, now: DateTime<Utc>) -> Result<Applied> {
        let applied = self.transition(id, Transition::Deliver, now).await?;
        if let Applied::Moved(order) = &applied {
            self.notify(order, NotificationKind::OrderDelivered, "notify-delivered")
                .await?;
        }
        Ok(applied)
    }

    /// Cancels an order before it ships, with its compensations: committed stock goes back to
    /// sale, the payment is refunded in full, the customer is told, `OrderCancelled` is
    /// published.
    ///
    /// # Errors
    /// Port errors; an unknown order. Cancelling a shipped order is `Ignored`.
    pub async fn cancel(&self, id: &OrderId, reason: &str, now: DateTime<Utc>) -> Result<Applied> {
        let Some(before) = self.ports.orders.get(id).await? else {
            return Err(Error::Core(commerce_core::Error::Invalid {
                field: "order_id",
                reason: format!("no order {id}"),
            }));
        };
        let was_paid = before.payment_ref().cloned();
        let applied = self
            .transition(
                id,
                Transition::Cancel {
                    reason: reason.to_owned(),
                },
                now,
            )
            .await?;
        let Applied::Moved(order) = applied else {
            return Ok(Applied::Ignored);
        };
        if let Some(payment_ref) = was_paid {
            let lines = self.stock_lines(&order);
            let _ = self
                .ports
                .stock
                .uncommit(&key(id, "uncommit")?, &lines, now)
                .await
                .map_err(|e| Error::NotReady(e.to_string()))?;
            let total = order.totals().grand_total;
            match self
                .ports
                .payments
                .refund(&key(id, "cancel-refund")?, &payment_ref, total)
                .await
            {
                Ok(_) => {}
                Err(e) if e.kind == ErrorKind::Conflict => {} // already refunded
                Err(e) => return Err(e.into()),
            }
            self.transition(id, Transition::Refund { amount: total }, now)
                .await?;
        }
        let event = EventEnvelope::new(
            EventId::new(format!("{id}:cancelled"))?,
            now,
            DomainEvent::OrderCancelled {
                order_id: id.clone(),
                reason: reason.to_owned(),
            },
        );
        self.ports.outbox.publish(&[event]).await?;
        self.notify(&order, NotificationKind::OrderCancelled, "notify-cancelled")
            .await?;
        Ok(Applied::Moved(order))
    }

    /// Returned goods arrived: optionally back to stock, and the payment is refunded.
    ///
    /// # Errors
    /// Port errors; an unknown order.
    pub async fn return_received(
        &self,
        id: &OrderId,
        restock: bool,
        now: DateTime<Utc>,
    ) -> Result<Applied> {
        let applied = self.transition(id, Transition::ReturnReceived, now).await?;
        let Applied::Moved(order) = applied else {
            return Ok(Applied::Ignored);
        };
        if restock {
            for line in self.stock_lines(&order) {
                let _ = self
                    .ports
                    .stock
                    .receive(
                        &key(id, &format!("return-{}", line.key.sku))?,
                        &line.key,
                        line.quantity,
                        now,
                    )
                    .await
                    .map_err(|e| Error::NotReady(e.to_string()))?;
            }
        }
        if let Some(payment_ref) = order.payment_ref() {
            let total = order.totals().grand_total;
            match self
                .ports
                .payments
                .refund(&key(id, "return-refund")?, payment_ref, total)
                .await
            {
                Ok(_) => {}
                Err(e) if e.kind == ErrorKind::Conflict => {}
                Err(e) => return Err(e.into()),
            }
            return self
                .transition(id, Transition::Refund { amount: total }, now)
                .await;
        }
        Ok(Applied::Moved(order))
    }

    /// Projects one carrier tracking update onto the order. Every update is published once as
    /// `ShipmentUpdated` (event id `{order}:tracking:{seq}`); `Delivered`, `Lost` and
    /// `ReturnToSender` move the order. A duplicate or out-of-order update (a lower sequence than
    /// one already applied, or a transition the order has moved past) changes nothing.
    ///
    /// # Errors
    /// Port errors; an unknown order.
    pub async fn on_tracking(
        &self,
        id: &OrderId,
        carrier: &str,
        tracking_number: &str,
        update: &TrackingEvent,
    ) -> Result<Applied> {
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
        self.ports.outbox.publish(&[event]).await?;
        let Some(order) = self.ports.orders.get(id).await? else {
            return Err(Error::Core(commerce_core::Error::Invalid {
                field: "order_id",
                reason: format!("no order {id}"),
            }));
        };
        // Only updates about the current shipment apply: a lost parcel's later scans do not.
        let current = order
            .ledger()
            .iter()
            .rev()
            .find_map(|e| match &e.transition {
                Transition::Ship {
                    tracking_number: t, ..
                } => Some((t.clone(), e.at)),
                _ => None,
            });
        match current {
            Some((t, shipped_at)) if t == tracking_number && update.at >= shipped_at => {}
            _ => return Ok(Applied::Ignored),
        }
        match update.status {
            TrackingStatus::Delivered => self.deliver(id, update.at).await,
            TrackingStatus::Lost => self.transition(id, Transition::ReportLost, update.at).await,
            TrackingStatus::ReturnToSender => {
                let applied = self
                    .transition(id, Transition::ReturnToSender, update.at)
                    .await?;
                if let Applied::Moved(order) = &applied {
                    // The parcel is back on the shelf: its units return to stock.
                    let seq = order.ledger().len();
                    for line in self.stock_lines(order) {
                        let movement = key(id, &format!("rts-{seq}-{}", line.key.sku))?;
                        let _ = self
                            .ports
                            .stock
                            .receive(&movement, &line.key, line.quantity, update.at)
                            .await
                            .map_err(|e| Error::NotReady(e.to_string()))?;
                    }
                }
                Ok(applied)
            }
            TrackingStatus::LabelCreated
            | TrackingStatus::InTransit
            | TrackingStatus::OutForDelivery
            | TrackingStatus::AddressIssue => Ok(Applied::Ignored),
        }
    }
}
