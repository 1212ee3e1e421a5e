//! Which notification each domain event sends.

use commerce_core::{
    DomainEvent, ErrorKind, EventEnvelope, IdempotencyKey, Notification, NotificationKind,
    Notifier, OrderStatus, PortResult, Sku, UserId,
};

/// Sends `note` for a saga step. A notification the customer cannot receive (no address, a
/// mailbox the mail system refuses: `Refused` or `Invalid`) counts as done: the order stands,
/// and retrying the step would never deliver it. Anything else (`Unavailable`,
/// `Indeterminate`) is the step's error, retried.
pub(crate) async fn send_for_step(notifier: &dyn Notifier, note: &Notification) -> PortResult<()> {
    match notifier.send(note).await {
        Err(e) if matches!(e.kind, ErrorKind::Refused | ErrorKind::Invalid) => Ok(()),
        other => other,
    }
}

/// The notifications `event` calls for. Back-in-stock goes to the shoppers `watchers` returns
/// for the SKU. Each notification's key is derived from the event id (and the recipient), so
/// handling an event twice notifies once.
///
/// # Errors
/// A commerce-core error if a derived key is invalid (an over-long event id).
pub fn notifications_for(
    event: &EventEnvelope,
    order_owner: impl Fn(&commerce_core::OrderId) -> Option<UserId>,
    watchers: impl Fn(&Sku) -> Vec<UserId>,
) -> commerce_core::Result<Vec<Notification>> {
    let one = |recipient: UserId, kind, order_id, sku| -> commerce_core::Result<Notification> {
        Ok(Notification {
            key: IdempotencyKey::derive(event.event_id.as_str(), recipient.as_str())?,
            recipient,
            kind,
            order_id,
            sku,
        })
    };
    Ok(match &event.event {
        DomainEvent::OrderConfirmed {
            order_id, user_id, ..
        } => {
            vec![one(
                user_id.clone(),
                NotificationKind::OrderConfirmed,
                Some(order_id.clone()),
                None,
            )?]
        }
        DomainEvent::OrderCancelled { order_id, .. } => order_owner(order_id)
            .map(|u| {
                one(
                    u,
                    NotificationKind::OrderCancelled,
                    Some(order_id.clone()),
                    None,
                )
            })
            .transpose()?
            .into_iter()
            .collect(),
        DomainEvent::OrderStatusChanged { order_id, to, .. } => {
            let kind = match to {
                OrderStatus::Shipped => Some(NotificationKind::OrderShipped),
                OrderStatus::Delivered => Some(NotificationKind::OrderDelivered),
                _ => None,
            };
            match (kind, order_owner(order_id)) {
                (Some(kind), Some(user)) => vec![one(user, kind, Some(order_id.clone()), None)?],
                _ => Vec::new(),
            }
        }
        DomainEvent::CartAbandoned {
            user_id: Some(user),
            ..
        } => {
            vec![one(
                user.clone(),
                NotificationKind::AbandonedCart,
                None,
                None,
            )?]
        }
        DomainEvent::BackInStock { sku, .. } => watchers(sku)
            .into_iter()
            .map(|u| one(u, NotificationKind::BackInStock, None, Some(sku.clone())))
            .collect::<commerce_core::Result<_>>()?,
        _ => Vec::new(),
    })
}
