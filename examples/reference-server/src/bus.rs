//! Where search reads the shop's changes from: the in-process log (memory), the PostgreSQL
//! event log, or — with `KAFKA_BROKERS` — the broker, fed by the outbox relay.
//!
//! On the broker the relay moves committed outbox rows to the family topics (one aggregate's
//! events to one partition, in commit order) and deletes them; the index reads every partition
//! of the catalog topic and keeps each partition's offset in its own commits, so a restart
//! resumes where the index stopped. Nothing then reads the PostgreSQL event log: its reads
//! would take the same outbox rows.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use adapters::kafka::{
    Family, KafkaConfig, KafkaPartitionLog, KafkaPublisher, OutboxRelay, RelayConfig,
};
use adapters::postgres::Postgres;
use commerce_core::{CatalogStore, EventLog};
use search::SearchIndex;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::{Config, StartError, stopped};

/// The source of the index's changes.
#[derive(Debug, Clone)]
pub enum Feed {
    /// One log, read by offset (memory, or the PostgreSQL event log).
    Log(Arc<dyn EventLog>),
    /// The broker's catalog topic, partition by partition, and the relay that fills it.
    Kafka {
        /// The relay from the outboxes to the topics.
        relay: Arc<OutboxRelay>,
        /// One reader per partition of the catalog topic (reader `i` is partition `i`).
        partitions: Arc<Vec<KafkaPartitionLog>>,
    },
}

impl Feed {
    /// The broker feed: topics created if missing, a relay over `pg`'s outboxes, readers of
    /// the catalog topic.
    ///
    /// # Errors
    /// When the broker cannot be reached or refuses the configuration.
    pub async fn kafka(config: &Config, brokers: &str, pg: Postgres) -> Result<Feed, StartError> {
        let mut kafka = KafkaConfig::new(brokers).with_prefix(config.kafka_topic_prefix.clone());
        kafka.whole_batch_fetch = config.kafka_whole_batch_fetch;
        kafka.ensure_topics().await?;
        let relay = OutboxRelay::new(pg, KafkaPublisher::new(&kafka)?, RelayConfig::default());
        let topic = kafka.topics.topic(Family::Catalog);
        let partitions =
            KafkaPartitionLog::all(&kafka, &topic, kafka.topics.partitions(Family::Catalog))?;
        Ok(Feed::Kafka {
            relay: Arc::new(relay),
            partitions: Arc::new(partitions),
        })
    }

    /// `log` or `kafka`: the index directory is named after it (their offsets differ).
    pub fn name(&self) -> &'static str {
        match self {
            Feed::Log(_) => "log",
            Feed::Kafka { .. } => "kafka",
        }
    }

    /// Events the index has not applied yet (by the sources' ends now).
    ///
    /// # Errors
    /// When the source cannot be reached.
    pub async fn index_lag(&self, index: &SearchIndex) -> Result<u64, StartError> {
        match self {
            Feed::Log(log) => Ok(log.end_offset().await?.saturating_sub(index.next_offset())),
            Feed::Kafka { partitions, .. } => {
                let committed = index.partition_offsets();
                let mut lag = 0u64;
                for (p, end) in ends(partitions).await?.into_iter().enumerate() {
                    let at = committed
                        .get(&u32::try_from(p).unwrap_or(u32::MAX))
                        .copied()
                        .unwrap_or(0);
                    lag = lag.saturating_add(end.saturating_sub(at));
                }
                Ok(lag)
            }
        }
    }

    /// Runs the feed's background work: the indexer, and on the broker the relay. `ready`
    /// turns true once the index has caught up with what was committed before the start and,
    /// on the broker, has been reconciled with `catalog`: a topic holds what was relayed since
    /// it was created and within its retention, not the whole catalog, so a new index (a new
    /// replica, a lost data folder) or a broker that lost its topics would otherwise serve a
    /// partial shop.
    pub fn spawn(
        &self,
        index: Arc<SearchIndex>,
        catalog: Arc<dyn CatalogStore>,
        ready: Arc<AtomicBool>,
        stop: watch::Receiver<bool>,
    ) -> Vec<JoinHandle<()>> {
        let mut tasks = vec![spawn_indexer(self.clone(), index.clone(), stop.clone())];
        if let Feed::Kafka { relay, .. } = self {
            let relay = relay.clone();
            let stop_relay = stop.clone();
            tasks.push(tokio::spawn(async move {
                if let Err(e) = relay.run(stopped(stop_relay)).await {
                    tracing::error!(error = %e, "the outbox relay stopped");
                }
            }));
        }
        let feed = self.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let caught_up = match feed.caught_up_at_start(&index, stop.clone()).await {
                    Ok(true) if matches!(feed, Feed::Kafka { .. }) => {
                        reconcile(&index, catalog.as_ref()).await.map(|()| true)
                    }
                    other => other,
                };
                match caught_up {
                    Ok(true) => {
                        ready.store(true, Ordering::Release);
                        tracing::info!("search has caught up; ready");
                        return;
                    }
                    Ok(false) => return,
                    Err(e) => {
                        // A broker still electing the new topics' leaders, a database restarting.
                        tracing::warn!(error = %e, "readiness check failed; retrying in a second");
                        let pause =
                            tokio::time::timeout(Duration::from_secs(1), stopped(stop.clone()));
                        if pause.await.is_ok() {
                            return;
                        }
                    }
                }
            }
        }));
        tasks
    }

    /// Waits until the index holds everything committed before the start (false on stop).
    async fn caught_up_at_start(
        &self,
        index: &SearchIndex,
        stop: watch::Receiver<bool>,
    ) -> Result<bool, StartError> {
        let pause = || tokio::time::sleep(Duration::from_millis(100));
        match self {
            Feed::Log(log) => {
                let end = log.end_offset().await?;
                while index.next_offset() < end {
                    if *stop.borrow() {
                        return Ok(false);
                    }
                    pause().await;
                }
            }
            Feed::Kafka { relay, partitions } => {
                // First the outbox rows waiting at the start reach the broker (this relay moved
                // as many, or the outboxes are empty: another instance's relay took them)...
                let pending = relay.lag().await?.pending;
                let mut polls = 0u32;
                while relay.stats().relayed.load(Ordering::Relaxed) < pending {
                    if *stop.borrow() {
                        return Ok(false);
                    }
                    polls += 1;
                    if polls.is_multiple_of(10) && relay.lag().await?.pending == 0 {
                        break;
                    }
                    pause().await;
                }
                // ...then the index reads every partition up to where it ended then.
                let ends = ends(partitions).await?;
                loop {
                    let committed: BTreeMap<u32, u64> = index.partition_offsets();
                    let behind = ends.iter().enumerate().any(|(p, end)| {
                        committed
                            .get(&u32::try_from(p).unwrap_or(u32::MAX))
                            .copied()
                            .unwrap_or(0)
                            < *end
                    });
                    if !behind {
                        break;
                    }
                    if *stop.borrow() {
                        return Ok(false);
                    }
                    pause().await;
                }
            }
        }
        Ok(true)
    }
}

/// Indexes what the catalog holds and the index lacks (or holds at an older version), and
/// removes what the catalog does not hold. Changes read from the broker afterwards that are
/// older than what this indexed are skipped by the indexer (versions), so it converges.
async fn reconcile(index: &SearchIndex, catalog: &dyn CatalogStore) -> Result<(), StartError> {
    let report = search::reconcile(index, catalog, true).await?;
    if !report.is_clean() {
        tracing::info!(
            checked = report.checked,
            missing = report.missing.len(),
            stale = report.stale.len(),
            orphaned = report.orphaned.len(),
            "the index was reconciled with the catalog"
        );
    }
    Ok(())
}

async fn ends(partitions: &[KafkaPartitionLog]) -> Result<Vec<u64>, StartError> {
    let mut ends = Vec::with_capacity(partitions.len());
    for p in partitions {
        ends.push(p.end_offset().await?);
    }
    Ok(ends)
}

fn spawn_indexer(
    feed: Feed,
    index: Arc<SearchIndex>,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let indexer = search::Indexer::new(&index, 1_000);
        loop {
            // Both wait on their source and commit each batch; they only return on stop or error.
            let run = match &feed {
                Feed::Log(log) => indexer.run(log.as_ref(), stopped(stop.clone())).await,
                Feed::Kafka { partitions, .. } => {
                    let logs: Vec<&dyn EventLog> =
                        partitions.iter().map(|p| p as &dyn EventLog).collect();
                    indexer.run_partitions(&logs, stopped(stop.clone())).await
                }
            };
            match run {
                Ok(()) => return,
                Err(e) => {
                    tracing::error!(error = %e, "search indexing failed; retrying in a second");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            if *stop.borrow() {
                return;
            }
        }
    })
}
