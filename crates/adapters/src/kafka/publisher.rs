//! The idempotent producer.

use std::sync::{Arc, PoisonError, RwLock};

use commerce_core::{EventEnvelope, PortResult};
use futures::future::join_all;
use rdkafka::ClientConfig;
use rdkafka::message::{BorrowedMessage, Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;

use super::{Family, KafkaConfig, Topics, headers, kafka_error};

/// An event as its outbox row holds it: the envelope's JSON as stored, and the fields the
/// record's key, topic and headers need, so a relay publishes without decoding the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// The event id.
    pub event_id: String,
    /// The event type (decides the topic).
    pub event_type: String,
    /// The aggregate id (the record key).
    pub partition_key: String,
    /// The payload's schema version.
    pub schema_version: u16,
    /// The envelope as JSON.
    pub body: Vec<u8>,
}

/// The producer in use and how many were replaced before it.
struct Current {
    producer: FutureProducer,
    generation: u64,
}

/// Where a published event landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The offset within the partition.
    pub offset: i64,
}

/// Publishes events to their family's topic, keyed by aggregate id.
///
/// The producer is idempotent (`enable.idempotence=true`, `acks=all`): a retry inside the
/// client never writes a record twice or out of order, so one aggregate's events stay in the
/// order given on their partition. A publish that fails as a whole may still have written some
/// records; the caller publishes again (the outbox relay does), and readers dedupe.
///
/// An idempotent producer can fail for good (librdkafka's fatal errors, or a broker that lost
/// the producer's sequence state in a restart and refuses its records): the publisher then
/// builds a new producer (a new producer id) for the next publish, and what failed is
/// published again by its caller.
#[derive(Clone)]
pub struct KafkaPublisher {
    producer: Arc<RwLock<Current>>,
    client: ClientConfig,
    topics: Topics,
    timeout: std::time::Duration,
}

impl std::fmt::Debug for KafkaPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaPublisher")
            .field("topics", &self.topics)
            .finish_non_exhaustive()
    }
}

impl KafkaPublisher {
    /// A producer for the config's brokers. Connecting is lazy: the first publish fails as
    /// `Unavailable` if the broker is down.
    ///
    /// # Errors
    /// `Invalid` when librdkafka refuses the configuration.
    pub fn new(config: &KafkaConfig) -> PortResult<KafkaPublisher> {
        let timeout_ms = config.publish_timeout.as_millis().to_string();
        let mut settings = vec![
            ("enable.idempotence", "true"),
            ("acks", "all"),
            ("linger.ms", "2"),
            ("message.timeout.ms", timeout_ms.as_str()),
            ("partitioner", "murmur2_random"),
        ];
        let cap = super::MAX_BATCH_RECORDS.to_string();
        if config.whole_batch_fetch {
            settings.push(("batch.num.messages", cap.as_str()));
        }
        let client = config.client(&settings);
        let producer: FutureProducer = client.create().map_err(kafka_error)?;
        Ok(KafkaPublisher {
            producer: Arc::new(RwLock::new(Current {
                producer,
                generation: 0,
            })),
            client,
            topics: config.topics.clone(),
            timeout: config.publish_timeout,
        })
    }

    /// The topics it publishes to.
    pub fn topics(&self) -> &Topics {
        &self.topics
    }

    /// Publishes `events`, each to its family's topic, and waits until the broker has every
    /// one. Records go out concurrently; per partition the producer keeps their order.
    ///
    /// # Errors
    /// `Indeterminate` when a record was sent but not acknowledged in time (it may be on the
    /// broker), `Unavailable` when the broker could not be reached; in both cases some of the
    /// records may have been written, and publishing them again is how a caller recovers.
    pub async fn publish(&self, events: &[EventEnvelope]) -> PortResult<Vec<Delivered>> {
        let encoded: Vec<(String, Vec<u8>)> = events
            .iter()
            .map(|e| {
                let topic = self.topics.topic(Family::of(&e.event));
                let body = serde_json::to_vec(e).map_err(|e| {
                    commerce_core::PortError::caused_by(commerce_core::ErrorKind::Internal, e)
                })?;
                Ok((topic, body))
            })
            .collect::<PortResult<_>>()?;
        let sends = events.iter().zip(&encoded).map(|(e, (topic, body))| {
            self.send(topic, &e.partition_key, body, envelope_headers(e))
        });
        join_all(sends).await.into_iter().collect()
    }

    /// Publishes events as stored (the relay's path), each to its type's family topic, keyed by
    /// aggregate, with the same headers as [`KafkaPublisher::publish`].
    ///
    /// # Errors
    /// As [`KafkaPublisher::publish`].
    pub async fn publish_stored(&self, events: &[StoredEvent]) -> PortResult<Vec<Delivered>> {
        let topics: Vec<String> = events
            .iter()
            .map(|e| self.topics.topic(Family::of_type(&e.event_type)))
            .collect();
        let sends = events.iter().zip(&topics).map(|(e, topic)| {
            let version = e.schema_version.to_string();
            let headers = headers_of(&e.event_id, &e.event_type, &version);
            self.send(topic, &e.partition_key, &e.body, headers)
        });
        join_all(sends).await.into_iter().collect()
    }

    /// Parks a consumed record that no reader can take on the dead-letter topic, as it came
    /// (key and payload), with `reason` and its origin (`topic/partition/offset`) in headers.
    ///
    /// # Errors
    /// As [`KafkaPublisher::send_raw`]; the caller reads the record again.
    pub(crate) async fn park(&self, message: &BorrowedMessage<'_>, reason: &str) -> PortResult<()> {
        let origin = format!(
            "{}/{}/{}",
            message.topic(),
            message.partition(),
            message.offset()
        );
        let key = message
            .key()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .unwrap_or_default();
        self.send_raw(
            &self.topics.dead_letter(),
            &key,
            message.payload().unwrap_or_default(),
            &[(headers::REASON, reason), (headers::ORIGIN, &origin)],
        )
        .await?;
        tracing::warn!(origin, reason, "record parked on the dead-letter topic");
        Ok(())
    }

    /// Publishes one raw record (the dead-letter path, tests of hostile input).
    ///
    /// # Errors
    /// `Unavailable` when it was not acknowledged in time.
    pub async fn send_raw(
        &self,
        topic: &str,
        key: &str,
        payload: &[u8],
        headers: &[(&str, &str)],
    ) -> PortResult<Delivered> {
        let mut h = OwnedHeaders::new();
        for (k, v) in headers {
            h = h.insert(Header {
                key: k,
                value: Some(v.as_bytes()),
            });
        }
        self.send(topic, key, payload, h).await
    }

    async fn send(
        &self,
        topic: &str,
        key: &str,
        payload: &[u8],
        headers: OwnedHeaders,
    ) -> PortResult<Delivered> {
        let record = FutureRecord::to(topic)
            .key(key)
            .payload(payload)
            .headers(headers);
        let (producer, generation) = self.current();
        match producer.send(record, Timeout::After(self.timeout)).await {
            Ok(delivery) => Ok(Delivered {
                topic: topic.to_owned(),
                partition: delivery.partition,
                offset: delivery.offset,
            }),
            Err((e, _)) => {
                let error = kafka_error(e);
                // A fatal error, or a broker error that is not a transient one (a broker that
                // lost this producer's sequence state answers so after a restart): the
                // producer's id is spent; a new producer gets a new one.
                let fatal = producer.client().fatal_error();
                if fatal.is_some() || error.kind == commerce_core::ErrorKind::Internal {
                    tracing::warn!(error = %error, ?fatal, "starting a new producer");
                    self.replace(generation)?;
                }
                Err(error)
            }
        }
    }

    fn current(&self) -> (FutureProducer, u64) {
        let current = self.producer.read().unwrap_or_else(PoisonError::into_inner);
        (current.producer.clone(), current.generation)
    }

    /// Replaces the producer of `generation` (once, whoever notices first).
    fn replace(&self, generation: u64) -> PortResult<()> {
        let mut current = self
            .producer
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if current.generation == generation {
            current.producer = self.client.create().map_err(kafka_error)?;
            current.generation += 1;
        }
        Ok(())
    }

    /// Waits until every record handed to the producer is acknowledged (before a shutdown).
    ///
    /// # Errors
    /// `Unavailable` when that takes longer than the publish timeout.
    pub fn flush(&self) -> PortResult<()> {
        self.current()
            .0
            .flush(Timeout::After(self.timeout))
            .map_err(kafka_error)
    }
}

fn envelope_headers(e: &EventEnvelope) -> OwnedHeaders {
    let version = e.schema_version.to_string();
    headers_of(e.event_id.as_str(), &e.event_type, &version)
}

fn headers_of(event_id: &str, event_type: &str, schema_version: &str) -> OwnedHeaders {
    OwnedHeaders::new()
        .insert(Header {
            key: headers::EVENT_ID,
            value: Some(event_id.as_bytes()),
        })
        .insert(Header {
            key: headers::EVENT_TYPE,
            value: Some(event_type.as_bytes()),
        })
        .insert(Header {
            key: headers::SCHEMA_VERSION,
            value: Some(schema_version.as_bytes()),
        })
}
