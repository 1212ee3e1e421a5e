//! The outbox relay: the databases' outbox rows to the broker.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use commerce_core::PortResult;
use futures::future::{Either, FutureExt, select};

use super::{KafkaPublisher, StoredEvent, headers};
use crate::postgres::{Postgres, error};

/// The advisory-lock namespace of the relay's lanes ("lane" in ASCII).
const LANE_LOCKS: i32 = 0x6c61_6e65;
/// How many lanes the outbox is cut into (the migration's `& 15`).
pub(crate) const LANES: usize = 16;

/// How a relay works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayConfig {
    /// Rows moved per database per pass.
    pub batch: usize,
    /// Lanes one pass takes at most (of 16). Relays running at once split the lanes between
    /// them: with 4 relays, 4 lanes each keeps all four busy.
    pub lanes_per_pass: usize,
    /// How long [`OutboxRelay::run`] sleeps when a pass found nothing.
    pub idle: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            batch: 2_000,
            lanes_per_pass: LANES,
            idle: Duration::from_millis(5),
        }
    }
}

/// A relay's counters.
#[derive(Debug, Default)]
pub struct RelayStats {
    /// Events published and removed from the outbox.
    pub relayed: AtomicU64,
    /// Passes run.
    pub passes: AtomicU64,
    /// Passes that failed (nothing removed; their rows go again).
    pub failed: AtomicU64,
    /// Outbox rows that did not load as events, parked on the dead-letter topic.
    pub parked: AtomicU64,
}

/// How far behind the relay is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayLag {
    /// Events in the outboxes not yet published.
    pub pending: u64,
    /// Age of the oldest of them.
    pub oldest: Duration,
}

/// Moves outbox rows to the broker.
///
/// A pass, per database, in one transaction: take up to `lanes_per_pass` lanes with
/// transaction-scoped advisory locks (`pg_try_advisory_xact_lock`: a lane another relay holds
/// is skipped), claim the lanes' oldest rows `FOR UPDATE SKIP LOCKED` in id order, publish them
/// and wait for the broker's acknowledgements, delete them, commit. One aggregate's rows are in
/// one lane, a lane is in one relay's pass at a time, and a pass publishes in id order, so an
/// aggregate's events reach its partition in commit order even with several relays. A crash
/// or a failed commit after publishing leaves the rows in place: they are published again,
/// and consumers dedupe by event id (at least once, never lost).
#[derive(Debug)]
pub struct OutboxRelay {
    pg: Postgres,
    publisher: KafkaPublisher,
    config: RelayConfig,
    next_lane: AtomicUsize,
    stats: Arc<RelayStats>,
}

impl OutboxRelay {
    /// A relay of `pg`'s outboxes (every shard's) through `publisher`.
    pub fn new(pg: Postgres, publisher: KafkaPublisher, config: RelayConfig) -> OutboxRelay {
        // Relays started together begin at different lanes.
        let start = usize::try_from(std::process::id()).unwrap_or(0) % LANES;
        OutboxRelay {
            pg,
            publisher,
            config,
            next_lane: AtomicUsize::new(start),
            stats: Arc::new(RelayStats::default()),
        }
    }

    /// The relay's counters.
    pub fn stats(&self) -> &RelayStats {
        &self.stats
    }

    /// One pass over every database; returns how many events it published.
    ///
    /// # Errors
    /// `Unavailable` when a database or the broker cannot be reached (what a database's pass
    /// published but did not delete goes again).
    pub async fn relay_once(&self) -> PortResult<u64> {
        self.stats.passes.fetch_add(1, Ordering::Relaxed);
        let mut moved = 0;
        for shard in 0..self.pg.shards() {
            match self.relay_shard(shard).await {
                Ok(n) => moved += n,
                Err(e) => {
                    self.stats.failed.fetch_add(1, Ordering::Relaxed);
                    return Err(e);
                }
            }
        }
        self.stats.relayed.fetch_add(moved, Ordering::Relaxed);
        Ok(moved)
    }

    /// Runs passes until `stop` completes; sleeps `idle` after a pass that found nothing and
    /// backs off after a failed one.
    ///
    /// # Errors
    /// None so far: failures are retried; the signature leaves room for a fatal one.
    pub async fn run(&self, stop: impl Future<Output = ()>) -> PortResult<()> {
        let mut stop = pin!(stop.fuse());
        let mut backoff = self.config.idle;
        loop {
            let pass = match select(stop.as_mut(), pin!(self.relay_once())).await {
                Either::Left(((), _)) => return Ok(()),
                Either::Right((pass, _)) => pass,
            };
            let pause = match pass {
                Ok(0) => self.config.idle,
                Ok(_) => {
                    backoff = self.config.idle;
                    Duration::ZERO
                }
                Err(e) => {
                    tracing::warn!(error = %e, "outbox relay pass failed");
                    backoff =
                        (backoff * 2).clamp(Duration::from_millis(10), Duration::from_secs(2));
                    backoff
                }
            };
            if !pause.is_zero()
                && let Either::Left(((), _)) =
                    select(stop.as_mut(), pin!(tokio::time::sleep(pause))).await
            {
                return Ok(());
            }
        }
    }

    /// Events waiting in every outbox, and the age of the oldest.
    ///
    /// # Errors
    /// `Unavailable` when a database cannot be reached.
    pub async fn lag(&self) -> PortResult<RelayLag> {
        let mut lag = RelayLag {
            pending: 0,
            oldest: Duration::ZERO,
        };
        for shard in 0..self.pg.shards() {
            let (count, age): (i64, Option<f64>) = sqlx::query_as(
                "SELECT count(*), extract(epoch FROM now() - min(created_at))::float8 FROM outbox",
            )
            .fetch_one(self.pg.pool(shard))
            .await
            .map_err(error::db)?;
            lag.pending += u64::try_from(count).unwrap_or(0);
            let age = age.map_or(Duration::ZERO, |s| {
                Duration::try_from_secs_f64(s).unwrap_or(Duration::ZERO)
            });
            lag.oldest = lag.oldest.max(age);
        }
        Ok(lag)
    }

    /// The lanes this pass tries, starting where the last pass stopped.
    fn lanes(&self) -> Vec<i32> {
        let start = self.next_lane.fetch_add(1, Ordering::Relaxed);
        (0..LANES)
            .map(|i| i32::try_from((start + i) % LANES).unwrap_or(0))
            .collect()
    }

    async fn relay_shard(&self, shard: usize) -> PortResult<u64> {
        let pool = self.pg.pool(shard);
        let mut tx = pool.begin().await.map_err(error::db)?;
        let wanted = i64::try_from(self.config.lanes_per_pass.clamp(1, LANES)).unwrap_or(16);
        let lanes: Vec<i32> = sqlx::query_scalar(
            "SELECT l FROM unnest($1::int4[]) WITH ORDINALITY AS t(l, ord) \
             WHERE pg_try_advisory_xact_lock($2, l) ORDER BY ord LIMIT $3",
        )
        .bind(self.lanes())
        .bind(LANE_LOCKS)
        .bind(wanted)
        .fetch_all(&mut *tx)
        .await
        .map_err(error::db)?;
        if lanes.is_empty() {
            return Ok(0);
        }
        let lanes: Vec<i16> = lanes
            .into_iter()
            .filter_map(|l| i16::try_from(l).ok())
            .collect();
        // The envelope's text as stored, and the fields the record needs; the event itself is
        // not decoded here (readers do, and park what does not decode).
        #[allow(clippy::type_complexity, reason = "one row of the claim")]
        let rows: Vec<(
            i64,
            String,
            Option<String>,
            Option<String>,
            Option<i32>,
            String,
        )> = sqlx::query_as(
            "SELECT id, event_id, envelope->>'event_type', envelope->>'partition_key', \
                        (envelope->>'schema_version')::int4, envelope::text \
                 FROM outbox WHERE lane = ANY($1) \
                 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED",
        )
        .bind(&lanes)
        .bind(i64::try_from(self.config.batch.max(1)).unwrap_or(1_000))
        .fetch_all(&mut *tx)
        .await
        .map_err(error::db)?;
        if rows.is_empty() {
            return Ok(0);
        }
        let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
        let mut events: Vec<StoredEvent> = Vec::with_capacity(rows.len());
        for (id, event_id, event_type, key, version, body) in rows {
            let version = version.and_then(|v| u16::try_from(v).ok());
            match (event_type, key, version) {
                (Some(event_type), Some(partition_key), Some(schema_version)) => {
                    events.push(StoredEvent {
                        event_id,
                        event_type,
                        partition_key,
                        schema_version,
                        body: body.into_bytes(),
                    });
                }
                _ => {
                    self.park(id, body.as_bytes(), "not an event envelope")
                        .await?;
                }
            }
        }
        self.publisher.publish_stored(&events).await?;
        sqlx::query("DELETE FROM outbox WHERE id = ANY($1)")
            .bind(&ids)
            .execute(&mut *tx)
            .await
            .map_err(error::db)?;
        tx.commit().await.map_err(error::commit)?;
        Ok(u64::try_from(events.len()).unwrap_or(0))
    }

    /// An outbox row that is not an event (written by something else, or damaged) goes to the
    /// dead-letter topic so it cannot stop its lane.
    async fn park(&self, id: i64, payload: &[u8], reason: &str) -> PortResult<()> {
        let origin = format!("outbox/{id}");
        self.publisher
            .send_raw(
                &self.publisher.topics().dead_letter(),
                &origin,
                payload,
                &[(headers::REASON, reason), (headers::ORIGIN, &origin)],
            )
            .await?;
        self.stats.parked.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}
