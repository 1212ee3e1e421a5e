//! In-memory outbox and event log.

use std::collections::HashSet;
use std::sync::Mutex;

use async_trait::async_trait;

use super::{lock, page_limit};
use crate::ports::{EventLog, EventPublisher, PortResult};
use crate::{EventEnvelope, EventId};

/// An append-only event log that deduplicates on event id: the in-memory [`EventPublisher`]
/// (outbox) and [`EventLog`] in one.
#[derive(Debug, Default)]
pub struct InMemoryEventLog {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    events: Vec<EventEnvelope>,
    seen: HashSet<EventId>,
}

impl InMemoryEventLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every event published, in order (for tests and simulation checkers).
    pub fn snapshot(&self) -> Vec<EventEnvelope> {
        lock(&self.inner).events.clone()
    }
}

#[async_trait]
impl EventPublisher for InMemoryEventLog {
    async fn publish(&self, events: &[EventEnvelope]) -> PortResult<()> {
        let mut inner = lock(&self.inner);
        for e in events {
            if inner.seen.insert(e.event_id.clone()) {
                inner.events.push(e.clone());
            }
        }
        Ok(())
    }
}

#[async_trait]
impl EventLog for InMemoryEventLog {
    async fn read(&self, from: u64, max: usize) -> PortResult<Vec<(u64, EventEnvelope)>> {
        let inner = lock(&self.inner);
        let start = usize::try_from(from)
            .unwrap_or(usize::MAX)
            .min(inner.events.len());
        Ok(inner.events[start..]
            .iter()
            .take(page_limit(max))
            .zip(from..)
            .map(|(e, offset)| (offset, e.clone()))
            .collect())
    }

    async fn end_offset(&self) -> PortResult<u64> {
        Ok(lock(&self.inner).events.len() as u64)
    }
}
