//! A consumer group for scaled-out readers: offsets committed after the reader's durable step.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use commerce_core::{ErrorKind, LoggedEvent, PortError, PortResult};
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::log::decode;
use super::{KafkaConfig, KafkaPublisher, kafka_error};

/// How long one poll waits for a record.
const POLL: Duration = Duration::from_millis(100);
/// How long a failed batch waits before it is tried again.
const RETRY: Duration = Duration::from_millis(200);

/// The records of one partition in a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionBatch {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// Its events, in offset order (records that were not events are parked and left out).
    pub events: Vec<LoggedEvent>,
    /// The offset after the last record of the batch: what is committed once it is applied.
    pub next_offset: i64,
}

/// What a group member does with its records. `apply` must be durable when it returns: the
/// batch's offsets are committed right after it, and a crash before that commit delivers the
/// batch again (to this member or to the partition's next owner), so `apply` should be
/// idempotent (by event id, by version, or by offset).
pub trait GroupSink: Send + 'static {
    /// Applies a batch; an error leaves its offsets uncommitted and the batch is delivered
    /// again.
    ///
    /// # Errors
    /// Whatever stopped the sink's durable step.
    fn apply(&mut self, batch: &[PartitionBatch]) -> PortResult<()>;
}

/// Counters of a group member.
#[derive(Debug, Default)]
pub struct GroupStats {
    /// Events handed to the sink and committed.
    pub applied: AtomicU64,
    /// Records parked on the dead-letter topic.
    pub parked: AtomicU64,
    /// Records dropped from a batch because their partition was revoked before it was applied.
    pub dropped_on_revoke: AtomicU64,
    /// Batches the sink failed (delivered again).
    pub failed_batches: AtomicU64,
    /// Offset commits that failed after a batch was applied (the batch is delivered again).
    pub failed_commits: AtomicU64,
    /// Rebalances seen.
    pub rebalances: AtomicU64,
}

struct GroupContext {
    revoked: Mutex<BTreeSet<(String, i32)>>,
    stats: Arc<GroupStats>,
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        self.stats.rebalances.fetch_add(1, Ordering::Relaxed);
        if let Rebalance::Revoke(list) = rebalance {
            let mut revoked = self.revoked.lock().unwrap_or_else(PoisonError::into_inner);
            for e in list.elements() {
                revoked.insert((e.topic().to_owned(), e.partition()));
            }
        }
    }
}

/// One member of a consumer group, polling on a thread of its own.
///
/// The member polls records into a batch, hands it to its [`GroupSink`], and commits the
/// batch's offsets synchronously before it polls again. Rebalances happen inside a poll, so
/// when a partition is revoked everything applied from it is committed; records of a revoked
/// partition polled into a batch not yet applied are dropped (the next owner starts at the
/// committed offset and reads them). So across a rebalance no record is applied twice and none
/// is skipped; only a crash between a sink's durable step and the commit delivers a batch
/// again.
pub struct GroupConsumer<S: GroupSink> {
    stop: Arc<AtomicBool>,
    stats: Arc<GroupStats>,
    thread: Option<JoinHandle<PortResult<S>>>,
}

impl<S: GroupSink> std::fmt::Debug for GroupConsumer<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupConsumer")
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl<S: GroupSink> GroupConsumer<S> {
    /// Joins `group` on `topics` and starts polling. Call within a tokio runtime (parking a
    /// record publishes on it).
    ///
    /// # Errors
    /// `Invalid` when the configuration is refused; `Unavailable` when the subscription fails.
    pub fn start(
        config: &KafkaConfig,
        group: &str,
        topics: &[String],
        sink: S,
        max_batch: usize,
    ) -> PortResult<Self> {
        let stats = Arc::new(GroupStats::default());
        let context = GroupContext {
            revoked: Mutex::new(BTreeSet::new()),
            stats: Arc::clone(&stats),
        };
        let consumer: BaseConsumer<GroupContext> = config
            .client(&[
                ("group.id", group),
                ("enable.auto.commit", "false"),
                ("enable.auto.offset.store", "false"),
                ("auto.offset.reset", "earliest"),
                ("enable.partition.eof", "false"),
                ("fetch.wait.max.ms", "50"),
            ])
            .create_with_context(context)
            .map_err(kafka_error)?;
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer.subscribe(&names).map_err(kafka_error)?;
        let parker = KafkaPublisher::new(config)?;
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| PortError::new(ErrorKind::Invalid, format!("no tokio runtime: {e}")))?;
        let stop = Arc::new(AtomicBool::new(false));
        let member = Member {
            consumer,
            floor: BTreeMap::new(),
            config: config.clone(),
            sink,
            max_batch: max_batch.max(1),
            parker,
            runtime,
            stop: Arc::clone(&stop),
            stats: Arc::clone(&stats),
        };
        let thread = std::thread::Builder::new()
            .name(format!("kafka-group-{group}"))
            .spawn(move || member.run())
            .map_err(|e| PortError::caused_by(ErrorKind::Internal, e))?;
        Ok(GroupConsumer {
            stop,
            stats,
            thread: Some(thread),
        })
    }

    /// The member's counters.
    pub fn stats(&self) -> &GroupStats {
        &self.stats
    }

    /// Finishes the batch in hand (applied and committed), leaves the group and returns the
    /// sink.
    ///
    /// # Errors
    /// The error that stopped the member, if one did.
    pub fn stop(mut self) -> PortResult<S> {
        self.stop.store(true, Ordering::SeqCst);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            _ => Err(PortError::new(ErrorKind::Internal, "group member panicked")),
        }
    }
}

impl<S: GroupSink> Drop for GroupConsumer<S> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// A polled record: an event, or a record parked and skipped.
struct Polled {
    topic: String,
    partition: i32,
    offset: i64,
    event: Option<LoggedEvent>,
}

struct Member<S> {
    consumer: BaseConsumer<GroupContext>,
    /// Per assigned partition, the offset this member starts at (its committed offset when it
    /// got the partition): records below it are left out.
    floor: BTreeMap<(String, i32), i64>,
    /// Whether the broker fetches whole batches ([`KafkaConfig::whole_batch_fetch`]).
    config: KafkaConfig,
    sink: S,
    max_batch: usize,
    parker: KafkaPublisher,
    runtime: tokio::runtime::Handle,
    stop: Arc<AtomicBool>,
    stats: Arc<GroupStats>,
}

impl<S: GroupSink> Member<S> {
    fn run(mut self) -> PortResult<S> {
        let mut batch: Vec<Polled> = Vec::new();
        loop {
            let stopping = self.stop.load(Ordering::SeqCst);
            let polled = if stopping {
                None
            } else {
                self.consumer.poll(POLL)
            };
            let got = match polled {
                None => false,
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "group poll");
                    false
                }
                Some(Ok(message)) => {
                    let (topic, partition, offset) = (
                        message.topic().to_owned(),
                        message.partition(),
                        message.offset(),
                    );
                    if !admit(
                        &self.consumer,
                        &mut self.floor,
                        &self.config,
                        &topic,
                        partition,
                        offset,
                    ) {
                        continue;
                    }
                    let event = match decode(&message) {
                        Ok(envelope) => Some(LoggedEvent {
                            offset: u64::try_from(offset).unwrap_or(0),
                            envelope,
                        }),
                        Err(reason) => {
                            let parked = self.runtime.block_on(self.parker.park(&message, &reason));
                            if let Err(e) = parked {
                                // Not parked: read it again from the last commit.
                                tracing::warn!(error = %e, topic, partition, offset, "parking failed");
                                self.rewind(&mut batch, &topic, partition, offset);
                                continue;
                            }
                            self.stats.parked.fetch_add(1, Ordering::Relaxed);
                            None
                        }
                    };
                    batch.push(Polled {
                        topic,
                        partition,
                        offset,
                        event,
                    });
                    true
                }
            };
            self.drop_revoked(&mut batch);
            // A batch goes when it is full or when a poll comes back empty.
            let idle = !got;
            if !batch.is_empty() && (batch.len() >= self.max_batch || idle || stopping) {
                self.deliver(&mut batch);
            }
            if stopping && batch.is_empty() {
                self.consumer.unsubscribe();
                return Ok(self.sink);
            }
        }
    }

    /// Leaves out records of partitions revoked since the batch began.
    fn drop_revoked(&mut self, batch: &mut Vec<Polled>) {
        let mut revoked = self
            .consumer
            .context()
            .revoked
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if revoked.is_empty() {
            return;
        }
        let before = batch.len();
        batch.retain(|p| !revoked.contains(&(p.topic.clone(), p.partition)));
        // A partition given back later starts again from the group's committed offset.
        self.floor.retain(|k, _| !revoked.contains(k));
        let dropped = u64::try_from(before - batch.len()).unwrap_or(0);
        self.stats
            .dropped_on_revoke
            .fetch_add(dropped, Ordering::Relaxed);
        revoked.clear();
    }

    /// Hands the batch to the sink and commits its offsets; on failure, rewinds to the batch's
    /// first records so they come again.
    fn deliver(&mut self, batch: &mut Vec<Polled>) {
        let mut parts: BTreeMap<(String, i32), PartitionBatch> = BTreeMap::new();
        for p in batch.iter() {
            let entry = parts
                .entry((p.topic.clone(), p.partition))
                .or_insert_with(|| PartitionBatch {
                    topic: p.topic.clone(),
                    partition: p.partition,
                    events: Vec::new(),
                    next_offset: p.offset,
                });
            if let Some(e) = &p.event {
                entry.events.push(e.clone());
            }
            entry.next_offset = entry.next_offset.max(p.offset + 1);
        }
        let parts: Vec<PartitionBatch> = parts.into_values().collect();
        if let Err(e) = self.sink.apply(&parts) {
            tracing::warn!(error = %e, "group sink failed; the batch comes again");
            self.stats.failed_batches.fetch_add(1, Ordering::Relaxed);
            self.seek_to_first(batch);
            batch.clear();
            std::thread::sleep(RETRY);
            return;
        }
        let events: usize = parts.iter().map(|p| p.events.len()).sum();
        let mut offsets = TopicPartitionList::new();
        for p in &parts {
            let _ =
                offsets.add_partition_offset(&p.topic, p.partition, Offset::Offset(p.next_offset));
        }
        match self.consumer.commit(&offsets, CommitMode::Sync) {
            Ok(()) => {
                self.stats
                    .applied
                    .fetch_add(u64::try_from(events).unwrap_or(0), Ordering::Relaxed);
            }
            Err(e) => {
                tracing::warn!(error = %e, "offset commit failed; the batch comes again");
                self.stats.failed_commits.fetch_add(1, Ordering::Relaxed);
            }
        }
        batch.clear();
    }

    /// Seeks every partition of the batch back to its first record.
    fn seek_to_first(&self, batch: &[Polled]) {
        let mut first: BTreeMap<(String, i32), i64> = BTreeMap::new();
        for p in batch {
            first
                .entry((p.topic.clone(), p.partition))
                .and_modify(|o| *o = (*o).min(p.offset))
                .or_insert(p.offset);
        }
        for ((topic, partition), offset) in first {
            let _ = self.consumer.seek(
                &topic,
                partition,
                Offset::Offset(offset),
                Duration::from_secs(5),
            );
        }
    }

    /// A record could not be handled: drop what the batch holds of its partition from it on
    /// and seek back to it.
    fn rewind(&self, batch: &mut Vec<Polled>, topic: &str, partition: i32, offset: i64) {
        let first = batch
            .iter()
            .filter(|p| p.topic == topic && p.partition == partition)
            .map(|p| p.offset)
            .min()
            .unwrap_or(offset);
        batch.retain(|p| !(p.topic == topic && p.partition == partition));
        let _ = self.consumer.seek(
            topic,
            partition,
            Offset::Offset(first),
            Duration::from_secs(5),
        );
        std::thread::sleep(RETRY);
    }
}

/// Whether a polled record is one to take. The first record of a partition this member
/// was given sets where it starts: the group's committed offset (or the partition's first
/// offset). On a broker that fetches whole batches the member seeks [`super::SEEK_SLACK`]
/// records back from there when the record is past it (the broker skipped the rest of the
/// batch the committed offset is in), and records before it are left out.
fn admit(
    consumer: &BaseConsumer<GroupContext>,
    floors: &mut BTreeMap<(String, i32), i64>,
    config: &KafkaConfig,
    topic: &str,
    partition: i32,
    offset: i64,
) -> bool {
    let key = (topic.to_owned(), partition);
    let floor = match floors.get(&key) {
        Some(floor) => *floor,
        None => {
            let start = start_of(consumer, topic, partition).unwrap_or(offset);
            floors.insert(key, start);
            if offset > start && config.whole_batch_fetch {
                let _ = consumer.seek(
                    topic,
                    partition,
                    Offset::Offset(config.fetch_start(start)),
                    Duration::from_secs(5),
                );
                return false;
            }
            start
        }
    };
    offset >= floor
}

/// Where the group stands on a partition: its committed offset, else the first retained.
fn start_of(consumer: &BaseConsumer<GroupContext>, topic: &str, partition: i32) -> Option<i64> {
    let mut list = TopicPartitionList::new();
    list.add_partition(topic, partition);
    let committed = consumer
        .committed_offsets(list, Duration::from_secs(5))
        .ok()?;
    match committed.find_partition(topic, partition)?.offset() {
        Offset::Offset(o) => Some(o),
        _ => consumer
            .fetch_watermarks(topic, partition, Duration::from_secs(5))
            .ok()
            .map(|(low, _)| low),
    }
}
