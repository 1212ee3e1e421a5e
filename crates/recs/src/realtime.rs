//! The real-time layer: a feed that applies `ProductViewed` and `BackInStock` events from the
//! event log to the recently-viewed and back-in-stock stores.
//!
//! Events are applied at least once: the feed skips ids it has seen in a window
//! ([`FEED_DEDUPE_WINDOW`]), and every store write is idempotent, so a redelivery past the
//! window changes nothing either.

use std::sync::Arc;

use commerce_core::{Dedupe, DomainEvent, EventEnvelope, Sku, UserId};

use crate::limits::{FEED_BATCH_MAX, FEED_DEDUPE_WINDOW};
use crate::{BackInStockStore, Error, RecentlyViewedStore, Result, Viewed};

/// What one [`RealtimeFeed::apply`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedReport {
    /// Views recorded.
    pub views: usize,
    /// For each SKU back in stock, the watchers it moved to an arrival (whom to notify).
    pub notified: Vec<(Sku, Vec<UserId>)>,
    /// Events skipped as already seen.
    pub duplicates: usize,
    /// Events of other types, ignored.
    pub ignored: usize,
}

/// Applies view and back-in-stock events to the real-time stores.
///
/// ```
/// use std::sync::Arc;
/// use chrono::DateTime;
/// use commerce_core::{DomainEvent, EventEnvelope, EventId, SessionId, Sku, UserId};
/// use recs::realtime::RealtimeFeed;
/// use recs::{BackInStockStore, InMemoryBackInStock, InMemoryRecentlyViewed, RecentlyViewedStore};
/// # futures::executor::block_on(async {
/// let views = Arc::new(InMemoryRecentlyViewed::new(10));
/// let stock = Arc::new(InMemoryBackInStock::new());
/// let mut feed = RealtimeFeed::new(views.clone(), stock.clone());
/// let (session, sku, ada) = (SessionId::new("s-1")?, Sku::new("MUG")?, UserId::new("ada")?);
/// stock.watch(&ada, &sku).await?;
/// let at = DateTime::UNIX_EPOCH;
/// let events = [
///     EventEnvelope::new(EventId::new("s-1:view:1")?, at, DomainEvent::ProductViewed {
///         session: session.clone(), user: None, sku: sku.clone() }),
///     EventEnvelope::new(EventId::new("bis-1")?, at, DomainEvent::BackInStock {
///         sku: sku.clone(), available: 3 }),
/// ];
/// let report = feed.apply(&events).await?;
/// assert_eq!(report.views, 1);
/// assert_eq!(report.notified, vec![(sku.clone(), vec![ada.clone()])]);
/// assert_eq!(views.recent(&session, 5).await?[0].sku, sku);
/// assert_eq!(feed.apply(&events).await?.duplicates, 2); // a redelivery changes nothing
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
pub struct RealtimeFeed {
    views: Arc<dyn RecentlyViewedStore>,
    stock: Arc<dyn BackInStockStore>,
    seen: Dedupe,
}

impl RealtimeFeed {
    /// A feed writing to `views` and `stock`.
    pub fn new(views: Arc<dyn RecentlyViewedStore>, stock: Arc<dyn BackInStockStore>) -> Self {
        RealtimeFeed {
            views,
            stock,
            seen: Dedupe::new(FEED_DEDUPE_WINDOW),
        }
    }

    /// Applies a batch of events in order.
    ///
    /// # Errors
    /// [`Error::Invalid`] for more than [`FEED_BATCH_MAX`] events; [`Error::Port`] when a store
    /// fails (the events before it are applied; the failed one is not marked seen, so a retry
    /// of the batch applies it).
    pub async fn apply(&mut self, events: &[EventEnvelope]) -> Result<FeedReport> {
        if events.len() > FEED_BATCH_MAX {
            return Err(Error::invalid(
                "events",
                format!("{} events, at most {FEED_BATCH_MAX}", events.len()),
            ));
        }
        let mut report = FeedReport::default();
        for e in events {
            let relevant = matches!(
                e.event,
                DomainEvent::ProductViewed { .. } | DomainEvent::BackInStock { .. }
            );
            if !relevant {
                report.ignored += 1;
                continue;
            }
            if !self.seen.first_time(&e.event_id) {
                report.duplicates += 1;
                continue;
            }
            let done = match &e.event {
                DomainEvent::ProductViewed { session, sku, .. } => {
                    let view = Viewed {
                        sku: sku.clone(),
                        at: e.occurred_at,
                    };
                    self.views.record(session, &view).await.map(|()| {
                        report.views += 1;
                    })
                }
                DomainEvent::BackInStock { sku, .. } => self
                    .stock
                    .back_in_stock(sku, e.occurred_at)
                    .await
                    .map(|users| {
                        if !users.is_empty() {
                            report.notified.push((sku.clone(), users));
                        }
                    }),
                _ => Ok(()),
            };
            if let Err(err) = done {
                // Forget the id so a retry applies the event.
                self.seen = forget(&self.seen, &e.event_id);
                return Err(err.into());
            }
        }
        Ok(report)
    }
}

/// The window without `id` (rare: only after a failed store call).
fn forget(seen: &Dedupe, id: &commerce_core::EventId) -> Dedupe {
    let _ = (seen, id);
    // `Dedupe` cannot remove one id; a fresh window is safe because every store write is
    // idempotent, so re-applying a redelivered event changes nothing.
    Dedupe::new(FEED_DEDUPE_WINDOW)
}
