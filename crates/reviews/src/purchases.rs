//! The purchase feed: what makes a review or an answer a verified purchase.
//!
//! [`PurchaseFeed`] reads the shared domain event log ([`EventLog`]) from the offset the store
//! holds, turns `OrderConfirmed` and `OrderCancelled` into [`PurchaseChange`]s, and records
//! each batch together with its end offset ([`ReviewStore::record_purchases`], compare-and-set
//! on the offset), so a restart resumes exactly where the last recorded batch ended. Other
//! events are read and skipped.
//!
//! A log is delivered at least once (a broker relay may republish an event at a later offset).
//! Recording is idempotent by order id, so a redelivered confirmation or cancellation changes
//! nothing; the feed also remembers the last [`PURCHASE_DEDUPE_WINDOW`] event ids it recorded
//! ([`Dedupe`]) and skips their redeliveries without writing them again. The window only ever
//! holds ids of recorded batches: it is cleared when a batch fails, so an event is never
//! skipped for having been seen in a batch that was not recorded.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;

use commerce_core::{CasOutcome, Dedupe, EventLog};
use futures::future::{Either, FutureExt, select};

use crate::limits::{PURCHASE_BATCH_MAX, PURCHASE_DEDUPE_WINDOW};
use crate::{Error, PurchaseChange, Result, ReviewStore};

/// What one batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FeedReport {
    /// Events read.
    pub read: usize,
    /// Purchase changes recorded (confirmations and cancellations).
    pub recorded: usize,
    /// Events skipped: not about orders, or redeliveries within the window.
    pub skipped: usize,
    /// The offset the store holds now: the next event to read.
    pub next_offset: u64,
}

/// Records purchases from the domain event log into a [`ReviewStore`]. One feed per store:
/// a second one racing it loses compare-and-sets and records nothing twice.
#[derive(Debug)]
pub struct PurchaseFeed {
    store: Arc<dyn ReviewStore>,
    batch_max: usize,
    seen: Dedupe,
}

impl PurchaseFeed {
    /// A feed reading at most `batch_max` events per batch (1 to [`PURCHASE_BATCH_MAX`]).
    pub fn new(store: Arc<dyn ReviewStore>, batch_max: usize) -> PurchaseFeed {
        PurchaseFeed {
            store,
            batch_max: batch_max.clamp(1, PURCHASE_BATCH_MAX),
            seen: Dedupe::new(PURCHASE_DEDUPE_WINDOW),
        }
    }

    /// How many events the log holds past the store's offset.
    ///
    /// # Errors
    /// [`Error::Port`] when the log or the store cannot be read.
    pub async fn lag(&self, log: &dyn EventLog) -> Result<u64> {
        let end = log.end_offset().await?;
        Ok(end.saturating_sub(self.store.purchase_offset().await?))
    }

    /// Reads one batch from the store's offset and records it with its end offset. An empty
    /// read records nothing.
    ///
    /// # Errors
    /// [`Error::Port`] when the log or the store fails (a log truncated past the offset is a
    /// `NotFound` port error); [`Error::Invalid`] when the log returns events out of order.
    /// Nothing is recorded then, and the next call retries the batch.
    pub async fn run_once(&mut self, log: &dyn EventLog) -> Result<FeedReport> {
        let from = self.store.purchase_offset().await?;
        let batch = log.read(from, self.batch_max).await?;
        let mut report = FeedReport {
            read: batch.len(),
            next_offset: from,
            ..FeedReport::default()
        };
        if batch.is_empty() {
            return Ok(report);
        }
        let mut changes = Vec::new();
        for (event, expected) in batch.iter().zip(from..) {
            if event.offset != expected {
                self.seen = Dedupe::new(PURCHASE_DEDUPE_WINDOW);
                return Err(Error::invalid(
                    "batch",
                    format!("offset {} where {expected} was due", event.offset),
                ));
            }
            let change = PurchaseChange::from_event(&event.envelope.event);
            match change {
                Some(c) if self.seen.first_time(&event.envelope.event_id) => changes.push(c),
                _ => report.skipped += 1,
            }
        }
        let next = from + batch.len() as u64;
        match self.store.record_purchases(&changes, from, next).await {
            Ok(CasOutcome::Committed) => {
                report.recorded = changes.len();
                report.next_offset = next;
                Ok(report)
            }
            Ok(CasOutcome::VersionMismatch { current }) => {
                // Another feed recorded from here: its batch stands, ours is dropped.
                self.seen = Dedupe::new(PURCHASE_DEDUPE_WINDOW);
                report.skipped = report.read;
                report.next_offset = current;
                Ok(report)
            }
            Err(e) => {
                self.seen = Dedupe::new(PURCHASE_DEDUPE_WINDOW);
                Err(e.into())
            }
        }
    }

    /// Runs batches until `stop` completes, waiting on the log ([`EventLog::wait`]) whenever
    /// the feed has caught up. Stopping between batches loses nothing.
    ///
    /// # Errors
    /// The first failing batch's error.
    pub async fn run(&mut self, log: &dyn EventLog, stop: impl Future<Output = ()>) -> Result<()> {
        let mut stop = pin!(stop.fuse());
        loop {
            let report = match select(stop.as_mut(), pin!(self.run_once(log))).await {
                Either::Left(((), _)) => return Ok(()),
                Either::Right((report, _)) => report?,
            };
            if report.read == 0 {
                match select(stop.as_mut(), pin!(log.wait(report.next_offset))).await {
                    Either::Left(((), _)) => return Ok(()),
                    Either::Right((waited, _)) => waited?,
                }
            }
        }
    }
}
