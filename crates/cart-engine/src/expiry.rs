//! The abandoned-cart sweep.

use chrono::{DateTime, Utc};
use commerce_core::{CartId, CasOutcome, DomainEvent, EventEnvelope, EventId, EventPublisher};

use crate::store::CartStore;
use crate::{Error, Result};

/// The event id of a cart's abandonment: one per cart, so the outbox delivers it once however
/// many sweeps (or sweepers) see the cart.
pub fn abandoned_event_id(cart: &CartId) -> Result<EventId> {
    Ok(EventId::new(format!("cart-abandoned:{cart}"))?)
}

/// Marks up to `batch` expired carts abandoned and publishes one `CartAbandoned` per cart.
///
/// Exactly once per cart: the event is published (idempotently, by
/// [`abandoned_event_id`]) before the cart is marked, and an abandoned cart is never active
/// again, so a crash between the two only repeats a publish the outbox drops, and two sweepers
/// racing on one cart publish the same event id. Returns the carts this call marked.
///
/// # Errors
/// [`Error::Port`] if the store or the outbox fails; carts handled before the failure stay
/// handled.
pub async fn sweep_abandoned(
    store: &dyn CartStore,
    outbox: &dyn EventPublisher,
    now: DateTime<Utc>,
    batch: usize,
) -> Result<Vec<CartId>> {
    let mut marked = Vec::new();
    for mut cart in store.list_expired(now, batch).await? {
        let version = cart.version();
        let last_activity_at = cart.updated_at();
        if !cart.abandon(now) {
            continue;
        }
        let event = EventEnvelope::new(
            abandoned_event_id(cart.id())?,
            now,
            DomainEvent::CartAbandoned {
                cart_id: cart.id().clone(),
                user_id: cart.owner().cloned(),
                last_activity_at,
            },
        );
        outbox.publish(&[event]).await.map_err(Error::Port)?;
        let id = cart.id().clone();
        if store.update(cart, version).await? == CasOutcome::Committed {
            marked.push(id);
        }
    }
    Ok(marked)
}
