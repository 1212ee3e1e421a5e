//! One partition as the event-log port: the reader cases of the event-log conformance suite,
//! per-aggregate order over six partitions, hostile records parked.

use std::collections::BTreeMap;
use std::time::Duration;

use adapters::kafka::{Family, KafkaPartitionLog, KafkaPublisher, headers};
use async_trait::async_trait;
use commerce_core::testkit::event_log;
use commerce_core::{
    DomainEvent, EventEnvelope, EventLog, EventPublisher, LoggedEvent, PortResult,
};
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::harness::{config, order_event, publisher};

/// A topic partition read through the port, written by the publisher. Publishing here does
/// not skip a repeated event id (a broker does not); that is the readers' dedupe, so the
/// conformance case about it is not run.
#[derive(Debug)]
struct Partition {
    publisher: KafkaPublisher,
    log: KafkaPartitionLog,
}

#[async_trait]
impl EventPublisher for Partition {
    async fn publish(&self, events: &[EventEnvelope]) -> PortResult<()> {
        self.publisher.publish(events).await.map(|_| ())
    }
}

#[async_trait]
impl EventLog for Partition {
    async fn read(&self, from: u64, max: usize) -> PortResult<Vec<LoggedEvent>> {
        self.log.read(from, max).await
    }
    async fn end_offset(&self) -> PortResult<u64> {
        self.log.end_offset().await
    }
    async fn wait(&self, from: u64) -> PortResult<()> {
        self.log.wait(from).await
    }
}

/// The conformance events are cart events: a one-partition carts topic.
async fn partition() -> Option<Partition> {
    let config = config(1).await?;
    let topic = config.topics.topic(Family::Carts);
    Some(Partition {
        publisher: publisher(&config),
        log: KafkaPartitionLog::new(&config, &topic, 0).unwrap(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_in_order_and_repeatably() {
    let Some(p) = partition().await else { return };
    event_log::publish_then_read_in_order(&p).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_past_the_end_are_empty() {
    let Some(p) = partition().await else { return };
    event_log::read_past_end_is_empty(&p).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_returns_once_an_event_exists() {
    let Some(p) = partition().await else { return };
    tokio::time::timeout(
        Duration::from_secs(20),
        event_log::wait_returns_once_an_event_exists(&p),
    )
    .await
    .expect("wait returned");
}

/// Reads a partition to `count` events (at least once: a repeated read is not a loss).
async fn read_all(log: &KafkaPartitionLog, count: usize) -> Vec<LoggedEvent> {
    let mut out: Vec<LoggedEvent> = Vec::new();
    let mut next = 0;
    for _ in 0..200 {
        let batch = log.read(next, 500).await.unwrap();
        if let Some(last) = batch.last() {
            next = last.offset + 1;
        }
        out.extend(batch);
        if out.len() >= count {
            break;
        }
    }
    out
}

/// 40 orders × 25 events, published concurrently in interleaved batches over six partitions:
/// each order's events are on one partition, in the order published, once each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_aggregate_stays_in_order_on_one_of_six_partitions() {
    let Some(config) = config(6).await else {
        return;
    };
    let publisher = publisher(&config);
    let (orders, per) = (40u32, 25u32);
    let publishes = (0..per).map(|n| {
        let events: Vec<_> = (0..orders)
            .map(|o| order_event(&format!("ord-{o}"), n))
            .collect();
        let publisher = publisher.clone();
        async move { publisher.publish(&events).await.unwrap() }
    });
    // Each round waits for the last (an aggregate's next event is published after its last
    // one was acknowledged, as the relay does); within a round the 40 orders interleave.
    for p in publishes {
        p.await;
    }
    let topic = config.topics.topic(Family::Orders);
    let mut seen: BTreeMap<String, (i32, Vec<u32>)> = BTreeMap::new();
    let mut total = 0;
    for log in KafkaPartitionLog::all(&config, &topic, 6).unwrap() {
        let events = read_all(&log, 1).await;
        total += events.len();
        for e in events {
            let DomainEvent::OrderStatusChanged { order_id, seq, .. } = e.envelope.event else {
                panic!("not an order event");
            };
            let entry = seen
                .entry(order_id.to_string())
                .or_insert((log.partition(), Vec::new()));
            assert_eq!(entry.0, log.partition(), "{order_id} on two partitions");
            entry.1.push(seq);
        }
    }
    assert_eq!(total, usize::try_from(orders * per).unwrap());
    assert_eq!(seen.len(), usize::try_from(orders).unwrap());
    let used: std::collections::BTreeSet<i32> = seen.values().map(|v| v.0).collect();
    assert!(used.len() > 1, "keys spread over partitions: {used:?}");
    for (order, (_, seqs)) in seen {
        assert_eq!(seqs, (0..per).collect::<Vec<_>>(), "{order} out of order");
    }
}

/// Records that are not events (garbage, an unknown event type, a schema from the future) are
/// parked on the dead-letter topic with the reason and their origin; the events around them
/// are read, and the partition goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_records_are_parked_and_skipped() {
    let Some(config) = config(1).await else {
        return;
    };
    let publisher = publisher(&config);
    let topic = config.topics.topic(Family::Orders);
    publisher.publish(&[order_event("o-h", 0)]).await.unwrap();
    publisher
        .send_raw(&topic, "o-h", b"\x00\xffnot json", &[])
        .await
        .unwrap();
    let mut unknown = serde_json::to_value(order_event("o-h", 1)).unwrap();
    unknown["event"] = serde_json::json!({"type": "OrderTeleported", "order_id": "o-h"});
    publisher
        .send_raw(&topic, "o-h", unknown.to_string().as_bytes(), &[])
        .await
        .unwrap();
    let mut future = serde_json::to_value(order_event("o-h", 2)).unwrap();
    future["schema_version"] = serde_json::json!(999);
    publisher
        .send_raw(&topic, "o-h", future.to_string().as_bytes(), &[])
        .await
        .unwrap();
    publisher.publish(&[order_event("o-h", 3)]).await.unwrap();

    let log = KafkaPartitionLog::new(&config, &topic, 0).unwrap();
    let events = read_all(&log, 2).await;
    let ids: Vec<String> = events
        .iter()
        .map(|e| e.envelope.event_id.to_string())
        .collect();
    assert_eq!(ids, ["o-h-ev-0", "o-h-ev-3"]);
    assert_eq!(events[1].offset, 4, "offsets are the broker's");
    // Read again: the same answer, and nothing parked twice.
    assert_eq!(read_all(&log, 2).await, events);

    let consumer: BaseConsumer = config_consumer(&config);
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(&config.topics.dead_letter(), 0, rdkafka::Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut parked = Vec::new();
    for _ in 0..100 {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            let header = |name: &str| {
                use rdkafka::message::Headers;
                m.headers()
                    .and_then(|h| h.iter().find(|h| h.key == name))
                    .and_then(|h| h.value)
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_default()
            };
            parked.push((header(headers::ORIGIN), header(headers::REASON)));
        }
        if parked.len() >= 3 {
            break;
        }
    }
    // Give a double park time to show.
    std::thread::sleep(Duration::from_millis(300));
    while let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
        parked.push((format!("extra at {}", m.offset()), String::new()));
    }
    let origins: Vec<&str> = parked.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(
        origins,
        [
            format!("{topic}/0/1"),
            format!("{topic}/0/2"),
            format!("{topic}/0/3")
        ]
    );
    assert!(
        parked[0].1.contains("not an event envelope"),
        "{}",
        parked[0].1
    );
    assert!(
        parked[1].1.contains("OrderTeleported") || parked[1].1.contains("variant"),
        "{}",
        parked[1].1
    );
    assert!(
        parked[2].1.contains("schema version 999"),
        "{}",
        parked[2].1
    );
}

fn config_consumer(config: &adapters::kafka::KafkaConfig) -> BaseConsumer {
    rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &config.brokers)
        .set("group.id", "dead-letter-check")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap()
}
