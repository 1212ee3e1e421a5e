//! The in-memory outbox and event log.

use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

use async_trait::async_trait;

use super::{lock, page_limit};
use crate::ports::{ErrorKind, EventLog, EventPublisher, LoggedEvent, PortError, PortResult};
use crate::{EventEnvelope, EventId};

/// An append-only event log that deduplicates on event id: the in-memory outbox
/// ([`EventPublisher`]) and [`EventLog`] in one.
///
/// The in-memory stores take one as their outbox (`InMemoryOrderStore::with_outbox` and the
/// like) and append a write's events to it in the same critical section as the write, so
/// the write and its events are never seen apart. Share one log between every store of a
/// deployment and every consumer reads one ordered stream.
///
/// Memory: the log keeps every event until [`InMemoryEventLog::truncate_before`] drops what
/// every consumer has passed.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use commerce_core::memory::InMemoryEventLog;
/// use commerce_core::{CartId, DomainEvent, EventEnvelope, EventId, EventLog, EventPublisher};
/// # futures::executor::block_on(async {
/// let log = InMemoryEventLog::new();
/// let at = Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap();
/// let event = EventEnvelope::new(
///     EventId::new("evt-1")?,
///     at,
///     DomainEvent::CartAbandoned { cart_id: CartId::new("cart-1")?, user_id: None, last_activity_at: at },
/// );
/// log.publish(&[event.clone(), event.clone()]).await?;      // the same id twice: kept once
/// assert_eq!(log.end_offset().await?, 1);
/// assert_eq!(log.read(0, 10).await?[0].envelope, event);
/// log.wait(0).await?;                                        // there is an event at 0: no wait
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Default)]
pub struct InMemoryEventLog {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// The offset of `events[0]`.
    first: u64,
    events: VecDeque<EventEnvelope>,
    /// The ids of the events held, for exactly-once publishing.
    seen: HashSet<EventId>,
    /// Consumers waiting for the next event.
    waiting: Vec<Waker>,
}

impl Inner {
    fn end(&self) -> u64 {
        self.first + self.events.len() as u64
    }

    /// Appends the events whose ids the log does not hold, in order; wakes every waiter.
    /// Cannot fail, so a store calling it inside its own critical section commits its write
    /// and the events together.
    fn append(&mut self, events: &[EventEnvelope]) -> usize {
        let before = self.events.len();
        for e in events {
            if self.seen.insert(e.event_id.clone()) {
                self.events.push_back(e.clone());
            }
        }
        if self.events.len() > before {
            for w in self.waiting.drain(..) {
                w.wake();
            }
        }
        self.events.len() - before
    }
}

impl InMemoryEventLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Commits `events` (those whose ids the log does not hold yet) and returns how many were
    /// new. Stores call this while holding their own lock, which is what makes their write and
    /// its events one step.
    pub fn append(&self, events: &[EventEnvelope]) -> usize {
        if events.is_empty() {
            return 0;
        }
        lock(&self.inner).append(events)
    }

    /// Every event held, in order (for tests and simulation checkers).
    pub fn snapshot(&self) -> Vec<EventEnvelope> {
        lock(&self.inner).events.iter().cloned().collect()
    }

    /// Drops the events below `offset` (which every consumer has passed) and forgets their
    /// ids. Reads below the new first offset are `NotFound`; offsets never move.
    pub fn truncate_before(&self, offset: u64) {
        let mut inner = lock(&self.inner);
        while inner.first < offset {
            let Some(e) = inner.events.pop_front() else {
                break;
            };
            inner.seen.remove(&e.event_id);
            inner.first += 1;
        }
    }

    /// The first offset still held.
    pub fn first_offset(&self) -> u64 {
        lock(&self.inner).first
    }
}

#[async_trait]
impl EventPublisher for InMemoryEventLog {
    async fn publish(&self, events: &[EventEnvelope]) -> PortResult<()> {
        let _ = self.append(events);
        Ok(())
    }
}

/// Resolves once the log holds an event at `from` or later.
struct Wait<'a> {
    log: &'a InMemoryEventLog,
    from: u64,
}

impl Future for Wait<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut inner = lock(&self.log.inner);
        if inner.end() > self.from {
            return Poll::Ready(());
        }
        if !inner.waiting.iter().any(|w| w.will_wake(cx.waker())) {
            inner.waiting.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

#[async_trait]
impl EventLog for InMemoryEventLog {
    async fn read(&self, from: u64, max: usize) -> PortResult<Vec<LoggedEvent>> {
        let inner = lock(&self.inner);
        if from < inner.first {
            return Err(PortError::new(
                ErrorKind::NotFound,
                format!(
                    "offset {from} was truncated: the log starts at {}",
                    inner.first
                ),
            ));
        }
        let skip = usize::try_from(from - inner.first).unwrap_or(usize::MAX);
        Ok(inner
            .events
            .iter()
            .skip(skip)
            .take(page_limit(max))
            .zip(from..)
            .map(|(e, offset)| LoggedEvent {
                offset,
                envelope: e.clone(),
            })
            .collect())
    }

    async fn end_offset(&self) -> PortResult<u64> {
        Ok(lock(&self.inner).end())
    }

    async fn wait(&self, from: u64) -> PortResult<()> {
        Wait { log: self, from }.await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use futures::executor::block_on;

    use super::*;
    use crate::testkit::t0;
    use crate::{CartId, DomainEvent};

    fn event(id: &str) -> EventEnvelope {
        EventEnvelope::new(
            EventId::new(id).unwrap(),
            t0(),
            DomainEvent::CartAbandoned {
                cart_id: CartId::new("c").unwrap(),
                user_id: None,
                last_activity_at: t0(),
            },
        )
    }

    #[test]
    fn truncation_keeps_offsets_and_refuses_reads_below_the_start() {
        let log = InMemoryEventLog::new();
        log.append(&[event("a"), event("b"), event("c")]);
        log.truncate_before(2);
        assert_eq!(log.first_offset(), 2);
        assert_eq!(block_on(log.end_offset()).unwrap(), 3);
        let read = block_on(log.read(2, 10)).unwrap();
        assert_eq!((read.len(), read[0].offset), (1, 2));
        assert_eq!(
            block_on(log.read(1, 10)).unwrap_err().kind,
            ErrorKind::NotFound
        );
        // Truncating past the end stops at the end; later events keep counting on.
        log.truncate_before(100);
        log.append(&[event("d")]);
        assert_eq!(block_on(log.read(3, 10)).unwrap()[0].offset, 3);
    }
}
