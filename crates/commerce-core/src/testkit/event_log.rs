//! Conformance cases for [`EventPublisher`] + [`EventLog`] (an outbox and the log it feeds).

use futures::FutureExt;

use super::t0;
use crate::{CartId, DomainEvent, EventEnvelope, EventId, EventLog, EventPublisher, LoggedEvent};

fn event(id: &str) -> EventEnvelope {
    EventEnvelope::new(
        EventId::new(id).unwrap(),
        t0(),
        DomainEvent::CartAbandoned {
            cart_id: CartId::new(format!("cart-{id}")).unwrap(),
            user_id: None,
            last_activity_at: t0(),
        },
    )
}

fn ids(read: &[LoggedEvent]) -> Vec<String> {
    read.iter()
        .map(|e| e.envelope.event_id.to_string())
        .collect()
}

/// Published events read back in order at consecutive offsets, the same on every read.
pub async fn publish_then_read_in_order<L: EventPublisher + EventLog + ?Sized>(log: &L) {
    let start = log.end_offset().await.unwrap();
    let batch: Vec<_> = ["ev-a-1", "ev-a-2", "ev-a-3"]
        .into_iter()
        .map(event)
        .collect();
    log.publish(&batch).await.unwrap();
    assert_eq!(log.end_offset().await.unwrap(), start + 3);
    let read = log.read(start, 10).await.unwrap();
    assert_eq!(
        read.iter().map(|e| e.offset).collect::<Vec<_>>(),
        [start, start + 1, start + 2]
    );
    assert_eq!(
        read.iter().map(|e| e.envelope.clone()).collect::<Vec<_>>(),
        batch
    );
    assert_eq!(
        log.read(start, 10).await.unwrap(),
        read,
        "reads must be repeatable"
    );
    assert_eq!(ids(&log.read(start + 1, 1).await.unwrap()), ["ev-a-2"]);
}

/// An event id is delivered once, whether repeated within a batch or across batches.
pub async fn duplicate_event_ids_are_skipped<L: EventPublisher + EventLog + ?Sized>(log: &L) {
    let start = log.end_offset().await.unwrap();
    log.publish(&[event("ev-b-1"), event("ev-b-1"), event("ev-b-2")])
        .await
        .unwrap();
    log.publish(&[event("ev-b-2"), event("ev-b-3")])
        .await
        .unwrap();
    assert_eq!(
        ids(&log.read(start, 10).await.unwrap()),
        ["ev-b-1", "ev-b-2", "ev-b-3"]
    );
}

/// Reading at or past the end is empty; publishing nothing changes nothing.
pub async fn read_past_end_is_empty<L: EventPublisher + EventLog + ?Sized>(log: &L) {
    log.publish(&[]).await.unwrap();
    let end = log.end_offset().await.unwrap();
    assert!(log.read(end, 10).await.unwrap().is_empty());
    assert!(log.read(end + 1_000, 10).await.unwrap().is_empty());
    log.publish(&[event("ev-c-1")]).await.unwrap();
    assert!(
        log.read(end, 0).await.unwrap().is_empty(),
        "max 0 reads nothing"
    );
}

/// `wait(from)` returns at once when an event at `from` exists, and not before one does.
pub async fn wait_returns_once_an_event_exists<L: EventPublisher + EventLog + ?Sized>(log: &L) {
    let end = log.end_offset().await.unwrap();
    log.publish(&[event("ev-d-1")]).await.unwrap();
    log.wait(end).await.unwrap();
    let next = end + 1;
    assert!(
        log.wait(next).now_or_never().is_none(),
        "nothing at {next} yet: wait must not return"
    );
    let waiting = log.wait(next);
    log.publish(&[event("ev-d-2")]).await.unwrap();
    waiting.await.unwrap();
}

/// Runs the outbox and log conformance suite against `$make`.
#[macro_export]
macro_rules! event_log_conformance {
    ($make:expr) => {
        $crate::__conformance_cases!($make;
            publish_then_read_in_order => $crate::testkit::event_log::publish_then_read_in_order,
            duplicate_event_ids_are_skipped => $crate::testkit::event_log::duplicate_event_ids_are_skipped,
            read_past_end_is_empty => $crate::testkit::event_log::read_past_end_is_empty,
            wait_returns_once_an_event_exists => $crate::testkit::event_log::wait_returns_once_an_event_exists,
        );
    };
}
