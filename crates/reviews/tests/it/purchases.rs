//! The purchase feed: order events in, purchases out; exact resume; redeliveries and a racing
//! feed record nothing twice.

use std::sync::{Arc, Mutex};

use commerce_core::memory::InMemoryEventLog;
use commerce_core::ports::{EventLog, LoggedEvent, PortResult};
use commerce_core::testkit::t0;
use commerce_core::{CartId, DomainEvent, ErrorKind, EventEnvelope, EventId, Sku};
use futures::executor::block_on;
use reviews::{FeedReport, InMemoryReviewStore, PurchaseFeed, ReviewStore};

use crate::engine::{cancel, order, user};

fn bought(store: &InMemoryReviewStore, who: &str, sku: &str) -> bool {
    block_on(store.has_purchased(&user(who), &Sku::new(sku).unwrap())).unwrap()
}

fn abandoned(log: &InMemoryEventLog, id: &str) {
    log.append(&[EventEnvelope::new(
        EventId::new(id).unwrap(),
        t0(),
        DomainEvent::CartAbandoned {
            cart_id: CartId::new("c-1").unwrap(),
            user_id: None,
            last_activity_at: t0(),
        },
    )]);
}

#[test]
fn the_feed_records_orders_in_batches_and_resumes_where_it_stopped() {
    let log = InMemoryEventLog::new();
    let store = Arc::new(InMemoryReviewStore::new());
    order(&log, "o-1", "ada", &["MUG-1"]);
    abandoned(&log, "evt-cart");
    order(&log, "o-2", "bob", &["MUG-1", "TEA-1"]);
    cancel(&log, "o-2");
    let mut feed = PurchaseFeed::new(store.clone(), 3);
    assert_eq!(block_on(feed.lag(&log)).unwrap(), 4);
    let first = block_on(feed.run_once(&log)).unwrap();
    assert_eq!(
        first,
        FeedReport {
            read: 3,
            recorded: 2,
            skipped: 1,
            next_offset: 3
        }
    );
    assert!(bought(&store, "ada", "MUG-1") && bought(&store, "bob", "TEA-1"));
    // A restarted feed (a new instance) resumes from the store's offset.
    let mut restarted = PurchaseFeed::new(store.clone(), 3);
    let second = block_on(restarted.run_once(&log)).unwrap();
    assert_eq!(
        (second.read, second.recorded, second.next_offset),
        (1, 1, 4)
    );
    assert!(!bought(&store, "bob", "TEA-1"), "cancelled");
    assert!(bought(&store, "ada", "MUG-1"));
    assert_eq!(block_on(restarted.lag(&log)).unwrap(), 0);
    assert_eq!(block_on(restarted.run_once(&log)).unwrap().read, 0);
}

/// A broker-like log that delivers at least once: one event may sit at two offsets.
#[derive(Debug, Default)]
struct AtLeastOnceLog(Mutex<Vec<EventEnvelope>>);

#[async_trait::async_trait]
impl EventLog for AtLeastOnceLog {
    async fn read(&self, from: u64, max: usize) -> PortResult<Vec<LoggedEvent>> {
        let events = self.0.lock().unwrap();
        Ok(events
            .iter()
            .zip(0u64..)
            .skip(usize::try_from(from).unwrap())
            .take(max)
            .map(|(e, offset)| LoggedEvent {
                offset,
                envelope: e.clone(),
            })
            .collect())
    }
    async fn end_offset(&self) -> PortResult<u64> {
        Ok(self.0.lock().unwrap().len() as u64)
    }
    async fn wait(&self, _from: u64) -> PortResult<()> {
        Ok(())
    }
}

#[test]
fn a_redelivered_event_changes_nothing() {
    let source = InMemoryEventLog::new();
    order(&source, "o-1", "ada", &["MUG-1"]);
    cancel(&source, "o-1");
    let [confirmed, cancelled] = source.snapshot().try_into().unwrap();
    let log = AtLeastOnceLog::default();
    // The relay republished the confirmation after the cancellation, in the same batch and in
    // a later one.
    log.0
        .lock()
        .unwrap()
        .extend([confirmed.clone(), cancelled.clone(), confirmed.clone()]);
    let store = Arc::new(InMemoryReviewStore::new());
    let mut feed = PurchaseFeed::new(store.clone(), 10);
    let report = block_on(feed.run_once(&log)).unwrap();
    assert_eq!((report.read, report.recorded, report.skipped), (3, 2, 1));
    log.0.lock().unwrap().extend([confirmed.clone(), cancelled]);
    let report = block_on(feed.run_once(&log)).unwrap();
    assert_eq!(
        (report.recorded, report.skipped),
        (0, 2),
        "skipped by event id"
    );
    assert!(!bought(&store, "ada", "MUG-1"));
    // Past the window (a restarted feed remembers nothing), the store's writes are idempotent.
    log.0.lock().unwrap().push(confirmed);
    let mut restarted = PurchaseFeed::new(store.clone(), 10);
    let report = block_on(restarted.run_once(&log)).unwrap();
    assert_eq!(report.recorded, 1);
    assert!(
        !bought(&store, "ada", "MUG-1"),
        "a cancelled order stays cancelled"
    );
    assert_eq!(store.snapshot().purchases.len(), 1);
}

/// A log whose first read lets another feed record the same batch before the reader can.
#[derive(Debug)]
struct RacedLog {
    log: InMemoryEventLog,
    other: Arc<InMemoryReviewStore>,
    raced: Mutex<bool>,
}

#[async_trait::async_trait]
impl EventLog for RacedLog {
    async fn read(&self, from: u64, max: usize) -> PortResult<Vec<LoggedEvent>> {
        let batch = self.log.read(from, max).await?;
        if !std::mem::replace(&mut *self.raced.lock().unwrap(), true) {
            let changes: Vec<_> = batch
                .iter()
                .filter_map(|e| reviews::PurchaseChange::from_event(&e.envelope.event))
                .collect();
            let next = from + batch.len() as u64;
            let _ = self.other.record_purchases(&changes, from, next).await?;
        }
        Ok(batch)
    }
    async fn end_offset(&self) -> PortResult<u64> {
        self.log.end_offset().await
    }
    async fn wait(&self, from: u64) -> PortResult<()> {
        self.log.wait(from).await
    }
}

#[test]
fn a_feed_racing_another_records_nothing_twice() {
    let store = Arc::new(InMemoryReviewStore::new());
    let log = RacedLog {
        log: InMemoryEventLog::new(),
        other: store.clone(),
        raced: Mutex::new(false),
    };
    order(&log.log, "o-1", "ada", &["MUG-1"]);
    order(&log.log, "o-2", "bob", &["MUG-1"]);
    let mut feed = PurchaseFeed::new(store.clone(), 10);
    let lost = block_on(feed.run_once(&log)).unwrap();
    assert_eq!(
        lost,
        FeedReport {
            read: 2,
            recorded: 0,
            skipped: 2,
            next_offset: 2
        },
        "the other feed recorded the batch first"
    );
    cancel(&log.log, "o-1");
    let next = block_on(feed.run_once(&log)).unwrap();
    assert_eq!((next.read, next.recorded, next.next_offset), (1, 1, 3));
    assert!(!bought(&store, "ada", "MUG-1") && bought(&store, "bob", "MUG-1"));
}

#[test]
fn a_log_that_dropped_what_the_feed_needs_says_so() {
    let log = InMemoryEventLog::new();
    order(&log, "o-1", "ada", &["MUG-1"]);
    log.truncate_before(1);
    let mut feed = PurchaseFeed::new(Arc::new(InMemoryReviewStore::new()), 10);
    let err = block_on(feed.run_once(&log)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[test]
fn a_running_feed_waits_for_orders_and_stops_on_request() {
    let log = InMemoryEventLog::new();
    let store = Arc::new(InMemoryReviewStore::new());
    let (stop, stopped) = futures::channel::oneshot::channel::<()>();
    std::thread::scope(|s| {
        let running = s.spawn(|| {
            let mut feed = PurchaseFeed::new(store.clone(), 4);
            block_on(feed.run(&log, async move {
                let _ = stopped.await;
            }))
        });
        for i in 0..20 {
            order(&log, &format!("o-{i}"), &format!("u-{i}"), &["MUG-1"]);
        }
        while block_on(store.purchase_offset()).unwrap() < 20 {
            std::thread::yield_now();
        }
        stop.send(()).unwrap();
        running.join().unwrap().unwrap();
    });
    assert!(bought(&store, "u-19", "MUG-1"));
}
