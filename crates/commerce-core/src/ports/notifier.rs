//! Notifications to customers.

use std::fmt::Debug;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::PortResult;
use crate::{IdempotencyKey, OrderId, Sku, UserId};

/// Which message to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    /// The order is confirmed.
    OrderConfirmed,
    /// The order was cancelled.
    OrderCancelled,
    /// The order shipped.
    OrderShipped,
    /// The order was delivered.
    OrderDelivered,
    /// A reminder about an abandoned cart.
    AbandonedCart,
    /// A watched SKU is back in stock.
    BackInStock,
}

/// One message to one customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// Sending twice with one key delivers once.
    pub key: IdempotencyKey,
    /// The customer.
    pub recipient: UserId,
    /// The message kind (the template).
    pub kind: NotificationKind,
    /// The order it is about, if any.
    pub order_id: Option<OrderId>,
    /// The SKU it is about, if any.
    pub sku: Option<Sku>,
}

/// Sends notifications (email, push, SMS: the adapter decides).
///
/// Contract (checked by `testkit::notifier_conformance!`): a notification is delivered at most
/// once per key; sending the same key again succeeds without a second delivery; the same key
/// with different content is `Conflict`.
#[async_trait]
pub trait Notifier: Send + Sync + Debug {
    /// Sends one notification.
    async fn send(&self, notification: &Notification) -> PortResult<()>;
}
