//! The abandoned-cart sweep.

use chrono::{DateTime, Utc};
use commerce_core::{CartId, CasOutcome, DomainEvent, EventEnvelope, EventId};

use crate::Result;
use crate::store::CartStore;

/// The event id of a cart's abandonment: one per cart, so the outbox delivers it once however
/// many sweeps (or sweepers) see the cart.
pub fn abandoned_event_id(cart: &CartId) -> Result<EventId> {
    Ok(EventId::new(format!("cart-abandoned:{cart}"))?)
}

/// Marks up to `batch` expired carts abandoned, committing one `CartAbandoned` per cart with
/// the mark.
///
/// Exactly once per cart: the mark and its event commit together (the store's outbox), so a
/// cart touched again between the listing and the mark (a lost compare-and-set) is neither
/// marked nor announced, and a crash leaves both or neither. Two sweepers racing on one cart
/// commit once, and the event id ([`abandoned_event_id`]) is one per cart. Returns the carts
/// this call marked.
///
/// # Errors
/// [`crate::Error::Port`] if the store fails; carts handled before the failure stay handled.
pub async fn sweep_abandoned(
    store: &dyn CartStore,
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
        let id = cart.id().clone();
        if store.update(cart, version, &[event]).await? == CasOutcome::Committed {
            marked.push(id);
        }
    }
    Ok(marked)
}
