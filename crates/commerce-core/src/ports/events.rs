//! The outbox and the event log: how domain events leave the store that caused them and reach
//! every consumer.
//!
//! A state change and the events it causes commit together. Stores whose writes cause events
//! take them with the write ([`crate::OrderStore::update`], [`crate::CatalogStore::put`], the
//! cart and stock stores) and commit both in one step: one transaction on a database, one
//! critical section in memory. Events with no state change of their own (a carrier's tracking
//! scan) go through [`EventPublisher::publish`]. Everything committed is read back, in order, from
//! one [`EventLog`] by every consumer (the search indexer, recommendations, a broker relay), each
//! keeping its own offset with its own durable state.

use std::fmt::Debug;

use async_trait::async_trait;

use super::PortResult;
use crate::EventEnvelope;

/// Commits events that belong to no other state change.
///
/// Contract (checked by `testkit::event_log_conformance!`):
/// - `publish` commits a batch all or nothing, in the order given.
/// - An event whose `event_id` the log already holds is skipped (exactly once per event id),
///   so a retried publish never duplicates.
#[async_trait]
pub trait EventPublisher: Send + Sync + Debug {
    /// Commits the events not yet in the log.
    async fn publish(&self, events: &[EventEnvelope]) -> PortResult<()>;
}

/// One event as the log holds it: its offset and the envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedEvent {
    /// Its position: offsets start at 0 and grow by one per event.
    pub offset: u64,
    /// The event.
    pub envelope: EventEnvelope,
}

/// The log every consumer reads: every committed event once, at a stable offset.
///
/// Contract (checked by `testkit::event_log_conformance!`):
/// - Offsets start at 0 and increase; `read(from, max)` returns the events at offsets `from..`
///   (at most `max`), the same ones every time, so a consumer that stores its offset with its
///   own commit resumes exactly where it stopped. The logs the SDK writes (memory, Postgres)
///   number events consecutively; a broker partition may skip offsets (a record it could not
///   read as an event is parked, not returned), so a consumer's next offset is one past the
///   last event it got, not its first offset plus the count.
/// - Reading at or past the end returns nothing; reading below the log's first retained offset
///   (a log may drop what every consumer has passed) is `NotFound`.
/// - `wait(from)` returns once an event at `from` or later exists, at once if one does. It
///   never times out by itself: a consumer races it against its own timer.
///
/// A log is delivered at least once to its consumers (a broker relay may republish an event
/// after a crash): a consumer dedupes by event id ([`crate::Dedupe`]) or applies events
/// idempotently (the search index skips a change not newer than the version it holds).
#[async_trait]
pub trait EventLog: Send + Sync + Debug {
    /// Events at offsets `from..from + max`.
    async fn read(&self, from: u64, max: usize) -> PortResult<Vec<LoggedEvent>>;
    /// The offset the next committed event will get (the log's length).
    async fn end_offset(&self) -> PortResult<u64>;
    /// Returns once the log holds an event at offset `from` or later.
    async fn wait(&self, from: u64) -> PortResult<()>;
}
