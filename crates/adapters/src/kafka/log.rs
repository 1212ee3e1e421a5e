//! One partition of a topic as the event-log port.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use commerce_core::{ErrorKind, EventEnvelope, EventLog, LoggedEvent, PortError, PortResult};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::Mutex;

use super::{KafkaConfig, KafkaPublisher, kafka_error};

/// How long [`EventLog::wait`] polls before it looks again (it loops until a record comes).
const WAIT_SLICE: Duration = Duration::from_millis(500);
/// How long [`EventLog::wait`] pauses after the broker said the partition ends here.
const WAIT_POLL: Duration = Duration::from_millis(2);
/// How long a read waits for the records after the first that the client already fetched.
const DRAIN_WAIT: Duration = Duration::from_millis(1);

/// One partition of a topic, read by offset: the [`EventLog`] port over a broker.
///
/// Offsets are the broker's. They grow, but may skip: a record that is not an event (malformed
/// JSON, an unknown event type, an unsupported schema) is parked on the dead-letter topic, with
/// the reason and its origin in headers, and left out of what `read` returns; a broker may also
/// leave gaps of its own. Every reader of this port takes the next offset to read as one past
/// the last event it got, which is exact with gaps. The log is delivered at least once (the
/// relay republishes after a crash): readers dedupe by event id or by version.
///
/// `end_offset` is the broker's high watermark (`ListOffsets` latest). With
/// [`KafkaConfig::whole_batch_fetch`] it reads on from there to the partition's end, since
/// such a broker (tansu 0.6) may answer with the start of its last batch.
pub struct KafkaPartitionLog {
    consumer: Arc<StreamConsumer>,
    topic: String,
    partition: i32,
    parker: KafkaPublisher,
    read_wait: Duration,
    config: KafkaConfig,
    state: Mutex<ReadState>,
}

impl std::fmt::Debug for KafkaPartitionLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaPartitionLog")
            .field("topic", &self.topic)
            .field("partition", &self.partition)
            .finish_non_exhaustive()
    }
}

/// Where the consumer stands: records fetched but not yet returned, and the offset it will
/// deliver after them.
#[derive(Default)]
struct ReadState {
    /// The offset the consumer's next record has, if it is positioned.
    position: Option<i64>,
    /// Records received ahead of a read (by `wait`), in offset order, with where the next
    /// record would start after each.
    ahead: VecDeque<Fetched>,
    /// The highest offset parked on the dead-letter topic, so a re-read parks nothing twice.
    parked_through: i64,
    /// Whether the consumer has the partition assigned (then a move is a seek).
    assigned: bool,
    /// Whether the broker said the partition ends at `position` and nothing came since: a
    /// read there answers at once instead of waiting `read_wait`.
    at_end: bool,
}

/// What one receive got.
enum Received {
    Record,
    /// A record before the offset wanted (the seek slack), left out.
    Dropped,
    /// Nothing within the time given.
    Nothing,
    /// The broker says the partition ends here (for now).
    End,
}

/// A record as the log reads it.
enum Fetched {
    Event(Box<LoggedEvent>),
    /// Not an event; parked and skipped.
    Skipped(i64),
}

impl Fetched {
    fn offset(&self) -> i64 {
        match self {
            Fetched::Event(e) => i64::try_from(e.offset).unwrap_or(i64::MAX),
            Fetched::Skipped(o) => *o,
        }
    }
}

impl KafkaPartitionLog {
    /// A reader of `topic`'s partition `partition`. It joins no group and commits nothing to
    /// the broker: the reader stores its offset with its own state.
    ///
    /// # Errors
    /// `Invalid` when librdkafka refuses the configuration.
    pub fn new(config: &KafkaConfig, topic: &str, partition: i32) -> PortResult<Self> {
        let consumer: StreamConsumer = config
            .client(&[
                ("group.id", "commerce-partition-reader"),
                ("enable.auto.commit", "false"),
                ("enable.auto.offset.store", "false"),
                ("auto.offset.reset", "error"),
                ("fetch.wait.max.ms", "20"),
                ("fetch.error.backoff.ms", "10"),
                ("enable.partition.eof", "true"),
            ])
            .create()
            .map_err(kafka_error)?;
        Ok(KafkaPartitionLog {
            consumer: Arc::new(consumer),
            topic: topic.to_owned(),
            partition,
            parker: KafkaPublisher::new(config)?,
            read_wait: config.read_wait,
            config: config.clone(),
            state: Mutex::new(ReadState {
                parked_through: -1,
                ..ReadState::default()
            }),
        })
    }

    /// One reader per partition of `topic` (`partitions` of them).
    ///
    /// # Errors
    /// As [`KafkaPartitionLog::new`].
    pub fn all(config: &KafkaConfig, topic: &str, partitions: i32) -> PortResult<Vec<Self>> {
        (0..partitions)
            .map(|p| KafkaPartitionLog::new(config, topic, p))
            .collect()
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The partition.
    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// Positions the consumer at `from` unless it already stands there.
    fn seek(&self, state: &mut ReadState, from: i64) -> PortResult<()> {
        let next_ahead = state.ahead.front().map(Fetched::offset);
        let ahead_end = state.position;
        // What was fetched ahead is usable if `from` lies within it or right after it.
        if let (Some(first), Some(end)) = (next_ahead, ahead_end)
            && from >= first
            && from <= end
        {
            while state.ahead.front().is_some_and(|f| f.offset() < from) {
                state.ahead.pop_front();
            }
            return Ok(());
        }
        if next_ahead.is_none() && ahead_end == Some(from) {
            return Ok(());
        }
        state.ahead.clear();
        state.at_end = false;
        // Records before `from` (fetched from the slack) are dropped as they come.
        let start = self.config.fetch_start(from);
        if state.assigned {
            let moved = self.consumer.seek(
                &self.topic,
                self.partition,
                Offset::Offset(start),
                Duration::from_secs(5),
            );
            if moved.is_ok() {
                state.position = Some(from);
                return Ok(());
            }
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&self.topic, self.partition, Offset::Offset(start))
            .map_err(kafka_error)?;
        self.consumer.assign(&tpl).map_err(kafka_error)?;
        state.assigned = true;
        state.position = Some(from);
        Ok(())
    }

    /// Receives one record within `within`.
    async fn receive(&self, state: &mut ReadState, within: Duration) -> PortResult<Received> {
        let received = tokio::time::timeout(within, self.consumer.recv()).await;
        let message = match received {
            Err(_) => return Ok(Received::Nothing),
            Ok(Err(KafkaError::PartitionEOF(_))) => {
                state.at_end = true;
                return Ok(Received::End);
            }
            Ok(Err(KafkaError::MessageConsumption(
                RDKafkaErrorCode::OffsetOutOfRange | RDKafkaErrorCode::AutoOffsetReset,
            ))) => {
                return Err(PortError::new(ErrorKind::NotFound, "offset out of range"));
            }
            Ok(Err(e)) => return Err(kafka_error(e)),
            Ok(Ok(m)) => m,
        };
        if message.topic() != self.topic || message.partition() != self.partition {
            return Ok(Received::Dropped);
        }
        let offset = message.offset();
        if state.position.is_some_and(|p| offset < p) {
            // Before the offset wanted: the slack, or a record from before a re-seek.
            return Ok(Received::Dropped);
        }
        let fetched = match decode(&message) {
            Ok(envelope) => Fetched::Event(Box::new(LoggedEvent {
                offset: u64::try_from(offset).unwrap_or(0),
                envelope,
            })),
            Err(reason) => {
                if offset > state.parked_through {
                    self.parker.park(&message, &reason).await?;
                    state.parked_through = offset;
                }
                Fetched::Skipped(offset)
            }
        };
        state.ahead.push_back(fetched);
        state.position = Some(offset + 1);
        state.at_end = false;
        Ok(Received::Record)
    }

    /// The low and high watermarks.
    async fn watermarks(&self) -> PortResult<(i64, i64)> {
        let consumer = Arc::clone(&self.consumer);
        let (topic, partition) = (self.topic.clone(), self.partition);
        tokio::task::spawn_blocking(move || {
            consumer.fetch_watermarks(&topic, partition, Duration::from_secs(5))
        })
        .await
        .map_err(|e| PortError::new(ErrorKind::Internal, e.to_string()))?
        .map_err(kafka_error)
    }
}

/// The record's envelope, or why it is not one.
pub(super) fn decode(message: &BorrowedMessage<'_>) -> Result<EventEnvelope, String> {
    let Some(payload) = message.payload() else {
        return Err("empty payload".to_owned());
    };
    let envelope: EventEnvelope =
        serde_json::from_slice(payload).map_err(|e| format!("not an event envelope: {e}"))?;
    if envelope.schema_version > commerce_core::SCHEMA_VERSION {
        return Err(format!(
            "schema version {} is newer than this reader's {}",
            envelope.schema_version,
            commerce_core::SCHEMA_VERSION
        ));
    }
    Ok(envelope)
}

#[async_trait]
impl EventLog for KafkaPartitionLog {
    async fn read(&self, from: u64, max: usize) -> PortResult<Vec<LoggedEvent>> {
        let from = i64::try_from(from)
            .map_err(|_| PortError::new(ErrorKind::Invalid, "offset too large"))?;
        if max == 0 {
            return Ok(Vec::new());
        }
        let mut state = self.state.lock().await;
        self.seek(&mut state, from)?;
        let mut out = Vec::new();
        let mut wait = if state.at_end && state.ahead.is_empty() {
            DRAIN_WAIT
        } else {
            self.read_wait
        };
        loop {
            while let Some(fetched) = state.ahead.pop_front() {
                if let Fetched::Event(e) = fetched {
                    out.push(*e);
                    if out.len() == max {
                        return Ok(out);
                    }
                }
            }
            match self.receive(&mut state, wait).await {
                Ok(Received::Record) => wait = DRAIN_WAIT,
                Ok(Received::Dropped) => {}
                Ok(Received::Nothing | Received::End) => return Ok(out),
                Err(e) if e.kind == ErrorKind::NotFound => {
                    // Out of range: below what the broker keeps, or past its end.
                    state.position = None;
                    drop(state);
                    let (low, _) = self.watermarks().await?;
                    if from < low {
                        return Err(PortError::new(
                            ErrorKind::NotFound,
                            format!("offset {from} is below the partition's first retained {low}"),
                        ));
                    }
                    return Ok(out);
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn end_offset(&self) -> PortResult<u64> {
        let (_, high) = self.watermarks().await?;
        if !self.config.whole_batch_fetch || high == 0 {
            return Ok(u64::try_from(high).unwrap_or(0));
        }
        // Such a broker may answer with the start of its last batch: read on from there to
        // where the partition ends now.
        let mut state = self.state.lock().await;
        self.seek(&mut state, high - 1)?;
        while matches!(
            self.receive(&mut state, self.read_wait).await?,
            Received::Record | Received::Dropped
        ) {}
        let end = state.position.unwrap_or(high).max(high);
        Ok(u64::try_from(end).unwrap_or(0))
    }

    async fn wait(&self, from: u64) -> PortResult<()> {
        let from = i64::try_from(from)
            .map_err(|_| PortError::new(ErrorKind::Invalid, "offset too large"))?;
        loop {
            let mut state = self.state.lock().await;
            self.seek(&mut state, from)?;
            if state.ahead.iter().any(|f| matches!(f, Fetched::Event(_))) {
                return Ok(());
            }
            match self.receive(&mut state, WAIT_SLICE).await {
                Ok(Received::Record | Received::Dropped | Received::Nothing) => {}
                Ok(Received::End) => {
                    // Caught up: poll again after a moment.
                    drop(state);
                    tokio::time::sleep(WAIT_POLL).await;
                }
                Err(e) if e.kind == ErrorKind::NotFound => {
                    state.position = None;
                    drop(state);
                    tokio::time::sleep(WAIT_POLL).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}
