//! Publishing and reading domain events.

use std::fmt::Debug;

use async_trait::async_trait;

use super::PortResult;
use crate::EventEnvelope;

/// The outbox: where engines put the events their state changes produce.
///
/// Contract (checked by `testkit::event_log_conformance!`):
/// - `publish` appends a batch all or nothing, in the order given.
/// - An event whose `event_id` was already published is skipped (exactly-once per event id), so
///   a retried publish never duplicates.
#[async_trait]
pub trait EventPublisher: Send + Sync + Debug {
    /// Appends the events not yet published.
    async fn publish(&self, events: &[EventEnvelope]) -> PortResult<()>;
}

/// The log consumers read: every published event once, at a stable offset.
///
/// Contract: offsets start at 0 and increase by one per event; `read(from, max)` returns the
/// events at offsets `from..` (at most `max`), the same ones every time, so a consumer that stores
/// its offset with its own commit resumes exactly where it stopped.
#[async_trait]
pub trait EventLog: Send + Sync + Debug {
    /// Events at offsets `from..from + max`, as `(offset, event)`.
    async fn read(&self, from: u64, max: usize) -> PortResult<Vec<(u64, EventEnvelope)>>;
    /// The offset the next published event will get (the log's length).
    async fn end_offset(&self) -> PortResult<u64>;
}
