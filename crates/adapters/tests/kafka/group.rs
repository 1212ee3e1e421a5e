//! A consumer group under load with members joining and leaving: every record applied once.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use adapters::kafka::{Family, GroupConsumer, GroupSink, PartitionBatch};
use commerce_core::PortResult;

use crate::harness::{config, publisher, stock_event};

/// Records every (partition, offset) it is given; shared by the members of a group.
#[derive(Debug, Clone, Default)]
pub(crate) struct Recorder {
    pub(crate) applied: Arc<Mutex<Vec<(i32, u64, String)>>>,
}

impl GroupSink for Recorder {
    fn apply(&mut self, batch: &[PartitionBatch]) -> PortResult<()> {
        let mut applied = self.applied.lock().unwrap();
        for part in batch {
            for e in &part.events {
                applied.push((part.partition, e.offset, e.envelope.event_id.to_string()));
            }
        }
        Ok(())
    }
}

/// Two members; the second joins a third of the way through the load and the first leaves at
/// two thirds (two rebalances while records flow): each record is applied exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebalance_under_load_applies_each_record_once() {
    let Some(mut config) = config(6).await else {
        return;
    };
    config
        .overrides
        .push(("heartbeat.interval.ms".to_owned(), "500".to_owned()));
    let topic = config.topics.topic(Family::Inventory);
    let publisher = publisher(&config);
    let group = format!("{}group", config.topics.prefix);
    let recorder = Recorder::default();
    let (rounds, per) = (30u32, 100u32);
    let publish_round = |n: u32| {
        let events: Vec<_> = (0..per)
            .map(|i| stock_event(&format!("SKU-{}", i % 60), n * per + i))
            .collect();
        let publisher = publisher.clone();
        async move { publisher.publish(&events).await.unwrap() }
    };
    let first = GroupConsumer::start(
        &config,
        &group,
        std::slice::from_ref(&topic),
        recorder.clone(),
        200,
    )
    .unwrap();
    let mut second = None;
    let mut first = Some(first);
    for n in 0..rounds {
        publish_round(n).await;
        if n == rounds / 3 {
            second = Some(
                GroupConsumer::start(
                    &config,
                    &group,
                    std::slice::from_ref(&topic),
                    recorder.clone(),
                    200,
                )
                .unwrap(),
            );
        }
        if n == 2 * rounds / 3 {
            tokio::time::sleep(Duration::from_secs(2)).await;
            first.take().unwrap().stop().unwrap();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let total = usize::try_from(rounds * per).unwrap();
    for _ in 0..600 {
        if recorder.applied.lock().unwrap().len() >= total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Let a late double show.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let second = second.unwrap();
    let rebalances = second
        .stats()
        .rebalances
        .load(std::sync::atomic::Ordering::Relaxed);
    second.stop().unwrap();
    let applied = recorder.applied.lock().unwrap().clone();
    let mut count: BTreeMap<(i32, u64), usize> = BTreeMap::new();
    for (p, o, _) in &applied {
        *count.entry((*p, *o)).or_default() += 1;
    }
    let twice: Vec<_> = count.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "applied twice: {twice:?}");
    assert_eq!(count.len(), total, "every record applied");
    assert!(
        rebalances >= 2,
        "the second member saw the group change ({rebalances})"
    );
}
