//! The outbox relay: PostgreSQL outbox → broker, several relays at once, and a relay process
//! killed between publishing and deleting.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use adapters::kafka::{Family, KafkaConfig, KafkaPartitionLog, OutboxRelay, RelayConfig};
use adapters::postgres::{Postgres, PostgresConfig};
use commerce_core::{DomainEvent, EventLog, EventPublisher, LoggedEvent};

use crate::harness::{config, order_event, publisher, spawn_child, stock_event};
use crate::pg;

/// Reads every partition of a family's topic until `count` events came (or a minute passed).
pub(crate) async fn drain(
    config: &KafkaConfig,
    family: Family,
    count: usize,
) -> BTreeMap<i32, Vec<LoggedEvent>> {
    let topic = config.topics.topic(family);
    let logs = KafkaPartitionLog::all(config, &topic, config.topics.partitions(family)).unwrap();
    let mut out: BTreeMap<i32, Vec<LoggedEvent>> = BTreeMap::new();
    let mut next: BTreeMap<i32, u64> = BTreeMap::new();
    for _ in 0..600 {
        for log in &logs {
            let from = next.get(&log.partition()).copied().unwrap_or(0);
            let batch = log.read(from, 1_000).await.unwrap();
            if let Some(last) = batch.last() {
                next.insert(log.partition(), last.offset + 1);
            }
            out.entry(log.partition()).or_default().extend(batch);
        }
        if out.values().map(Vec::len).sum::<usize>() >= count {
            break;
        }
    }
    out
}

/// Per order, its events' `seq` in partition order after dropping repeated event ids; and how
/// many repeats there were.
pub(crate) fn order_sequences(
    read: &BTreeMap<i32, Vec<LoggedEvent>>,
) -> (BTreeMap<String, Vec<u32>>, usize) {
    let mut seen = BTreeSet::new();
    let mut repeats = 0;
    let mut orders: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for events in read.values() {
        for e in events {
            if !seen.insert(e.envelope.event_id.to_string()) {
                repeats += 1;
                continue;
            }
            if let DomainEvent::OrderStatusChanged { order_id, seq, .. } = &e.envelope.event {
                orders.entry(order_id.to_string()).or_default().push(*seq);
            }
        }
    }
    (orders, repeats)
}

/// Writes `orders` × `per` order events and as many stock events to the outbox, in rounds
/// (one transaction per round), as stores do.
async fn fill_outbox(pg: &Postgres, orders: u32, per: u32) {
    let outbox = pg.event_log();
    for n in 0..per {
        let mut events: Vec<_> = (0..orders)
            .map(|o| order_event(&format!("ord-{o}"), n))
            .collect();
        events.extend((0..orders).map(|o| stock_event(&format!("SKU-{o}"), n)));
        outbox.publish(&events).await.unwrap();
    }
}

/// Three relays at once, each taking a third of the lanes per pass: every event reaches its
/// topic once, each order's events in order; a row that is not an event is parked, not stuck.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_relays_deliver_everything_once_in_order() {
    let Some(config) = config(6).await else {
        return;
    };
    let Some(pg) = pg::fresh().await else { return };
    let (orders, per) = (30u32, 20u32);
    fill_outbox(&pg, orders, per).await;
    sqlx::query("INSERT INTO outbox (event_id, envelope) VALUES ('junk-1', '{\"junk\": true}')")
        .execute(pg.primary())
        .await
        .unwrap();
    let relay_config = RelayConfig {
        batch: 40,
        lanes_per_pass: 6,
        ..RelayConfig::default()
    };
    let relays: Vec<Arc<OutboxRelay>> = (0..3)
        .map(|_| {
            Arc::new(OutboxRelay::new(
                pg.clone(),
                publisher(&config),
                relay_config.clone(),
            ))
        })
        .collect();
    let tasks: Vec<_> = relays
        .iter()
        .map(|r| {
            let r = Arc::clone(r);
            tokio::spawn(async move {
                loop {
                    if r.lag().await.unwrap().pending == 0 {
                        break;
                    }
                    r.relay_once().await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let relayed: u64 = relays
        .iter()
        .map(|r| r.stats().relayed.load(std::sync::atomic::Ordering::Relaxed))
        .sum();
    let parked: u64 = relays
        .iter()
        .map(|r| r.stats().parked.load(std::sync::atomic::Ordering::Relaxed))
        .sum();
    let total = usize::try_from(orders * per).unwrap();
    assert_eq!(relayed, u64::try_from(2 * total).unwrap());
    assert_eq!(parked, 1);
    assert!(
        relays
            .iter()
            .filter(|r| r.stats().relayed.load(std::sync::atomic::Ordering::Relaxed) > 0)
            .count()
            > 1,
        "the relays shared the work"
    );
    let read = drain(&config, Family::Orders, total).await;
    let (sequences, repeats) = order_sequences(&read);
    assert_eq!(repeats, 0, "no crash, no repeat");
    assert_eq!(sequences.len(), usize::try_from(orders).unwrap());
    for (order, seqs) in sequences {
        assert_eq!(seqs, (0..per).collect::<Vec<_>>(), "{order}");
    }
    let stock = drain(&config, Family::Inventory, total).await;
    assert_eq!(stock.values().map(Vec::len).sum::<usize>(), total);
}

/// The child side of [`a_relay_killed_between_publish_and_delete_loses_nothing`]: relays in
/// small batches until killed. Does nothing unless `KAFKA_RELAY_CHILD` names a schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_child() {
    let Ok(spec) = std::env::var("KAFKA_RELAY_CHILD") else {
        return;
    };
    let (schema, prefix) = spec.split_once('|').unwrap();
    let pg = Postgres::connect_shards(
        &[&pg::url()],
        PostgresConfig {
            schema: Some(schema.to_owned()),
            max_connections: 4,
            ..PostgresConfig::default()
        },
    )
    .await
    .unwrap();
    let mut config = config(6).await.unwrap();
    config.topics.prefix = prefix.to_owned();
    let relay = OutboxRelay::new(
        pg,
        publisher(&config),
        RelayConfig {
            batch: 10,
            ..RelayConfig::default()
        },
    );
    // Mid-stream from here on: the parent's timer starts after the first pass that moved rows.
    while relay.relay_once().await.unwrap() == 0 {}
    #[allow(clippy::print_stdout, reason = "tells the parent it is relaying")]
    {
        println!("relay-ready");
    }
    relay.run(futures::future::pending()).await.unwrap();
}

/// A relay process killed (SIGKILL) again and again mid-stream, most often between a batch's
/// publish and its delete: the next relay publishes those rows again. Every event arrives,
/// repeats are only whole re-sends, and after dropping repeated event ids each order's events
/// are in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_killed_between_publish_and_delete_loses_nothing() {
    let Some(config) = config(6).await else {
        return;
    };
    let Some(pg) = pg::fresh().await else { return };
    let (orders, per) = (20u32, 40u32);
    fill_outbox(&pg, orders, per).await;
    let schema: String = sqlx::query_scalar("SELECT current_schema()::text")
        .fetch_one(pg.primary())
        .await
        .unwrap();
    let mut kills = 0;
    for round in 0..8u64 {
        if OutboxRelay::new(pg.clone(), publisher(&config), RelayConfig::default())
            .lag()
            .await
            .unwrap()
            .pending
            == 0
        {
            break;
        }
        let mut child = spawn_child(
            "relay::relay_child",
            (
                "KAFKA_RELAY_CHILD",
                format!("{schema}|{}", config.topics.prefix),
            ),
            "relay-ready",
        )
        .await;
        tokio::time::sleep(Duration::from_millis(20 + 40 * round)).await;
        child.kill().unwrap();
        child.wait().unwrap();
        kills += 1;
    }
    assert!(kills > 0);
    // What the dead relays left.
    let relay = OutboxRelay::new(pg.clone(), publisher(&config), RelayConfig::default());
    while relay.lag().await.unwrap().pending > 0 {
        relay.relay_once().await.unwrap();
    }
    let total = usize::try_from(orders * per).unwrap();
    let read = drain(&config, Family::Orders, total).await;
    let (sequences, repeats) = order_sequences(&read);
    #[allow(clippy::print_stderr, reason = "what the kills cost")]
    {
        eprintln!("{kills} relay kills: {repeats} events published twice");
    }
    assert_eq!(sequences.len(), usize::try_from(orders).unwrap());
    for (order, seqs) in sequences {
        assert_eq!(seqs, (0..per).collect::<Vec<_>>(), "{order}");
    }
}
