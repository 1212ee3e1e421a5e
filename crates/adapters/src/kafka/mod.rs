//! The event bus on a Kafka-protocol broker (feature `kafka`, on rdkafka with its bundled
//! librdkafka).
//!
//! - [`KafkaPublisher`]: an idempotent producer (`enable.idempotence`, `acks=all`). The record
//!   key is the event's aggregate id, so one aggregate's events land on one partition in the
//!   order they were published; headers carry the event id, type and schema version; each
//!   event family has its own topic ([`Topics`]).
//! - [`OutboxRelay`] (with feature `postgres`): moves the databases' outbox rows to the broker.
//!   A pass claims rows `FOR UPDATE SKIP LOCKED` within the lanes it holds, publishes them, and
//!   deletes them in the same transaction, so a crash between publish and delete publishes
//!   them again (at least once; consumers dedupe by event id or by version).
//! - [`KafkaPartitionLog`]: one partition as the [`commerce_core::EventLog`] port, read by
//!   offset, so the search indexer and the recommendation updaters read the broker unchanged,
//!   each storing its offsets with its own durable state. A record that is not an event is
//!   parked on the dead-letter topic with the reason and skipped; it never stops a partition.
//! - [`GroupConsumer`]: a consumer group for scaled-out readers; a batch's offsets are
//!   committed only after the reader's own durable step, and before the next poll, so a
//!   rebalance hands a partition over exactly where the last owner stopped.
//! - [`ParquetSink`]: order and inventory events as Parquet files partitioned by day,
//!   idempotent on redelivery.
//!
//! One deployment relays its outbox to one place: the database's own event log
//! ([`crate::postgres::PgEventLog`]) or the broker, not both (both drain the same rows).
//!
//! ```no_run
//! # async fn demo() -> Result<(), commerce_core::PortError> {
//! use adapters::kafka::{Family, KafkaConfig, KafkaPartitionLog, KafkaPublisher};
//! use commerce_core::EventLog;
//! let config = KafkaConfig::new("127.0.0.1:9092");
//! config.ensure_topics().await?;
//! let publisher = KafkaPublisher::new(&config)?;
//! # let events: Vec<commerce_core::EventEnvelope> = Vec::new();
//! publisher.publish(&events).await?;
//! let log = KafkaPartitionLog::new(&config, &config.topics.topic(Family::Catalog), 0)?;
//! let first = log.read(0, 100).await?;
//! # Ok(()) }
//! ```

mod group;
mod log;
mod publisher;
#[cfg(feature = "postgres")]
mod relay;
mod warehouse;

use std::time::Duration;

use commerce_core::{DomainEvent, ErrorKind, PortError, PortResult};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

pub use group::{GroupConsumer, GroupSink, GroupStats, PartitionBatch};
pub use log::KafkaPartitionLog;
pub use publisher::{Delivered, KafkaPublisher, StoredEvent};
#[cfg(feature = "postgres")]
pub use relay::{OutboxRelay, RelayConfig, RelayLag, RelayStats};
pub use warehouse::{ParquetSink, WarehouseRow};

/// The most records a producer puts in one batch when [`KafkaConfig::whole_batch_fetch`] is set.
pub const MAX_BATCH_RECORDS: i64 = 500;
/// How far before a wanted offset a reader starts when [`KafkaConfig::whole_batch_fetch`] is
/// set: more than a batch holds, so the start is at or before the batch's first record.
pub const SEEK_SLACK: i64 = MAX_BATCH_RECORDS + 12;

/// Header names every published record carries.
pub mod headers {
    /// The event id (UTF-8).
    pub const EVENT_ID: &str = "event_id";
    /// The event type (`OrderConfirmed`, ...).
    pub const EVENT_TYPE: &str = "event_type";
    /// The payload's schema version (decimal).
    pub const SCHEMA_VERSION: &str = "schema_version";
    /// On a dead-letter record: why it was parked.
    pub const REASON: &str = "dlq_reason";
    /// On a dead-letter record: where it came from (`topic/partition/offset`).
    pub const ORIGIN: &str = "dlq_origin";
}

/// The event families, one topic each: the seed's order, inventory and shipment streams, the
/// catalog stream the search indexer reads, carts and shopper activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// `OrderConfirmed`, `OrderCancelled`, `OrderStatusChanged`.
    Orders,
    /// `InventoryChanged`, `BackInStock`.
    Inventory,
    /// `ShipmentUpdated` (keyed by order).
    Shipments,
    /// `ProductUpserted`, `PriceChanged`, `ProductRetired`, `ProductRatingChanged`.
    Catalog,
    /// `CartAbandoned`.
    Carts,
    /// `ProductViewed` (keyed by session).
    Activity,
    /// Event types added after this adapter was built.
    Other,
}

impl Family {
    /// Every family.
    pub const ALL: [Family; 7] = [
        Family::Orders,
        Family::Inventory,
        Family::Shipments,
        Family::Catalog,
        Family::Carts,
        Family::Activity,
        Family::Other,
    ];

    /// The family an event belongs to.
    ///
    /// ```
    /// use adapters::kafka::Family;
    /// use commerce_core::{DomainEvent, Sku, LocationId};
    /// let e = DomainEvent::InventoryChanged {
    ///     sku: Sku::new("MUG-1")?, location: LocationId::new("wh")?, on_hand: 3, available: 3,
    /// };
    /// assert_eq!(Family::of(&e), Family::Inventory);
    /// # Ok::<(), commerce_core::Error>(())
    /// ```
    pub fn of(event: &DomainEvent) -> Family {
        Family::of_type(event.event_type())
    }

    /// The family of an event type as an envelope names it (`event_type`); a type this adapter
    /// does not know is [`Family::Other`].
    ///
    /// ```
    /// use adapters::kafka::Family;
    /// assert_eq!(Family::of_type("PriceChanged"), Family::Catalog);
    /// assert_eq!(Family::of_type("OrderTeleported"), Family::Other);
    /// ```
    pub fn of_type(event_type: &str) -> Family {
        match event_type {
            "OrderConfirmed" | "OrderCancelled" | "OrderStatusChanged" => Family::Orders,
            "InventoryChanged" | "BackInStock" => Family::Inventory,
            "ShipmentUpdated" => Family::Shipments,
            "ProductUpserted" | "PriceChanged" | "ProductRetired" | "ProductRatingChanged" => {
                Family::Catalog
            }
            "CartAbandoned" => Family::Carts,
            "ProductViewed" => Family::Activity,
            _ => Family::Other,
        }
    }

    /// The family's name, the default topic's suffix.
    pub fn name(self) -> &'static str {
        match self {
            Family::Orders => "orders",
            Family::Inventory => "inventory",
            Family::Shipments => "shipments",
            Family::Catalog => "catalog",
            Family::Carts => "carts",
            Family::Activity => "activity",
            Family::Other => "other",
        }
    }
}

/// Topic names and partition counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    /// Prefix of every topic (`commerce.` gives `commerce.orders`, ...).
    pub prefix: String,
    /// Partitions per family topic (created by [`KafkaConfig::ensure_topics`]).
    pub partitions: i32,
    /// Partitions overridden per family.
    pub partitions_of: Vec<(Family, i32)>,
}

impl Default for Topics {
    fn default() -> Self {
        Topics {
            prefix: "commerce.".to_owned(),
            partitions: 6,
            partitions_of: Vec::new(),
        }
    }
}

impl Topics {
    /// The topic of a family.
    pub fn topic(&self, family: Family) -> String {
        format!("{}{}", self.prefix, family.name())
    }

    /// The dead-letter topic: records no reader could take, with the reason in a header.
    pub fn dead_letter(&self) -> String {
        format!("{}dead-letter", self.prefix)
    }

    /// The partitions of a family's topic.
    pub fn partitions(&self, family: Family) -> i32 {
        self.partitions_of
            .iter()
            .find(|(f, _)| *f == family)
            .map_or(self.partitions, |(_, n)| *n)
    }
}

/// Where the broker is and how topics are named.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// `bootstrap.servers`: `host:port[,host:port...]`.
    pub brokers: String,
    /// Topic names and partitions.
    pub topics: Topics,
    /// How long a publish waits for the broker's acknowledgement before it fails.
    pub publish_timeout: Duration,
    /// How long a read waits for a first record before it answers "nothing yet".
    pub read_wait: Duration,
    /// The broker answers a fetch from inside a record batch with the next batch, skipping
    /// the rest of the one the offset is in (tansu 0.6 does; Kafka does not). A reader resuming
    /// at any offset (a restart, a seek, a rebalance) would miss records there. When set,
    /// producers cap a batch at [`MAX_BATCH_RECORDS`] records and readers start
    /// [`SEEK_SLACK`] records before the offset they want and drop what precedes it, so they
    /// always begin at or before the start of the batch holding it.
    pub whole_batch_fetch: bool,
    /// Further librdkafka properties, applied last (e.g. `session.timeout.ms`).
    pub overrides: Vec<(String, String)>,
}

impl KafkaConfig {
    /// Defaults for the brokers at `brokers`.
    pub fn new(brokers: impl Into<String>) -> KafkaConfig {
        KafkaConfig {
            brokers: brokers.into(),
            topics: Topics::default(),
            publish_timeout: Duration::from_secs(10),
            read_wait: Duration::from_millis(250),
            whole_batch_fetch: false,
            overrides: Vec::new(),
        }
    }

    /// Where a reader that wants `offset` starts fetching.
    pub(crate) fn fetch_start(&self, offset: i64) -> i64 {
        if self.whole_batch_fetch {
            (offset - SEEK_SLACK).max(0)
        } else {
            offset
        }
    }

    /// The same broker with topics under another prefix (tests and tenants).
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> KafkaConfig {
        self.topics.prefix = prefix.into();
        self
    }

    /// A librdkafka client configuration with the brokers and the overrides.
    pub(crate) fn client(&self, extra: &[(&str, &str)]) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers);
        config.set("socket.keepalive.enable", "true");
        for (k, v) in extra {
            config.set(*k, *v);
        }
        for (k, v) in &self.overrides {
            config.set(k, v);
        }
        config
    }

    /// Creates every family topic and the dead-letter topic that does not exist yet.
    ///
    /// # Errors
    /// `Unavailable` when the broker cannot be reached; `Internal` when it refuses a topic.
    pub async fn ensure_topics(&self) -> PortResult<()> {
        let admin: AdminClient<DefaultClientContext> =
            self.client(&[]).create().map_err(kafka_error)?;
        let mut topics: Vec<(String, i32)> = Family::ALL
            .iter()
            .map(|f| (self.topics.topic(*f), self.topics.partitions(*f)))
            .collect();
        topics.push((self.topics.dead_letter(), 1));
        let new: Vec<NewTopic<'_>> = topics
            .iter()
            .map(|(name, n)| NewTopic::new(name, *n, TopicReplication::Fixed(1)))
            .collect();
        let options = AdminOptions::new().operation_timeout(Some(self.publish_timeout));
        let results = admin
            .create_topics(new.iter(), &options)
            .await
            .map_err(kafka_error)?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => {
                    return Err(PortError::new(
                        ErrorKind::Internal,
                        format!("creating topic {topic}: {code}"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A client error as a port error: a record sent but not acknowledged in time is
/// `Indeterminate` (it may be on the broker: the relay publishes again and readers dedupe),
/// other transport and broker trouble `Unavailable` (the call can be repeated), a refused
/// configuration `Invalid`, anything else `Internal`.
pub(crate) fn kafka_error(e: KafkaError) -> PortError {
    let kind = match &e {
        KafkaError::ClientConfig(..) | KafkaError::ClientCreation(_) => ErrorKind::Invalid,
        // Sent, not acknowledged in time: the broker may have written it.
        KafkaError::MessageProduction(
            RDKafkaErrorCode::MessageTimedOut
            | RDKafkaErrorCode::RequestTimedOut
            | RDKafkaErrorCode::OperationTimedOut,
        ) => ErrorKind::Indeterminate,
        KafkaError::MessageProduction(code)
        | KafkaError::MessageConsumption(code)
        | KafkaError::MetadataFetch(code)
        | KafkaError::OffsetFetch(code)
        | KafkaError::ConsumerCommit(code)
        | KafkaError::AdminOp(code)
        | KafkaError::Global(code)
            if code_is_transient(*code) =>
        {
            ErrorKind::Unavailable
        }
        KafkaError::Canceled | KafkaError::NoMessageReceived | KafkaError::PartitionEOF(_) => {
            ErrorKind::Unavailable
        }
        _ => ErrorKind::Internal,
    };
    PortError::caused_by(kind, e)
}

fn code_is_transient(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::MessageTimedOut
            | RDKafkaErrorCode::OperationTimedOut
            | RDKafkaErrorCode::RequestTimedOut
            | RDKafkaErrorCode::BrokerTransportFailure
            | RDKafkaErrorCode::AllBrokersDown
            | RDKafkaErrorCode::NetworkException
            | RDKafkaErrorCode::LeaderNotAvailable
            | RDKafkaErrorCode::NotLeaderForPartition
            | RDKafkaErrorCode::NotEnoughReplicas
            | RDKafkaErrorCode::NotEnoughReplicasAfterAppend
            | RDKafkaErrorCode::QueueFull
            | RDKafkaErrorCode::UnknownTopicOrPartition
            | RDKafkaErrorCode::CoordinatorNotAvailable
            | RDKafkaErrorCode::NotCoordinator
            | RDKafkaErrorCode::CoordinatorLoadInProgress
            | RDKafkaErrorCode::RebalanceInProgress
    )
}
