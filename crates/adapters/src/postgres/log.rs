//! The event log on PostgreSQL: every database's `outbox`, relayed into the primary's
//! `event_log` where each event gets its position.
//!
//! Why a relay rather than positions at insert: a sequence value is taken when a row is
//! inserted, not when its transaction commits, so a reader by position could pass a position
//! whose transaction commits later and never see it. The relay only ever sees committed rows
//! (it claims them `FOR UPDATE SKIP LOCKED`), and numbers them as it appends, so positions are
//! dense and a position, once read, never gains an event before it. Events of one aggregate
//! keep their order: their writes are serialized by the aggregate's row lock, so their outbox
//! ids ascend in commit order, and the relay moves them in id order. A relay takes a
//! transaction-scoped advisory lock on the primary, so two relays never number at once; a
//! crash between appending a shard's rows and deleting them relays them again, and the log
//! skips an event id it holds.

use commerce_core::{
    ErrorKind, EventEnvelope, EventLog, EventPublisher, LoggedEvent, PortError, PortResult,
};

use super::{Postgres, commit, error, write_events};

/// The advisory lock key relays serialize on ("relay" in ASCII).
const RELAY_LOCK: i64 = 0x0072_656c_6179;
/// Events moved per database per relay pass.
const RELAY_BATCH: i64 = 1_000;

/// The event log (the [`EventLog`] port) over every database's outbox; also an
/// [`EventPublisher`] for events that belong to no store write.
#[derive(Debug, Clone)]
pub struct PgEventLog {
    pg: Postgres,
}

impl PgEventLog {
    pub(crate) fn new(pg: Postgres) -> Self {
        PgEventLog { pg }
    }

    /// Moves what the outboxes hold into the log, one batch per database; returns how many
    /// events it appended. Reads relay first, so a reader never waits for a background relay;
    /// a service may also run one on a timer.
    ///
    /// # Errors
    /// `Unavailable` when a database cannot be reached (what was appended stays appended).
    pub async fn relay(&self) -> PortResult<u64> {
        let mut appended = 0;
        for shard in 0..self.pg.shards() {
            appended += super::with_retries(|| self.relay_shard(shard)).await?;
        }
        Ok(appended)
    }

    async fn relay_shard(&self, shard: usize) -> PortResult<u64> {
        let primary = self.pg.primary();
        if shard == 0 {
            // One transaction: claim, append, delete.
            let mut tx = primary.begin().await.map_err(error::db)?;
            let rows: Vec<(i64, String, serde_json::Value)> = sqlx::query_as(
                "DELETE FROM outbox WHERE id IN \
                 (SELECT id FROM outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED) \
                 RETURNING id, event_id, envelope",
            )
            .bind(RELAY_BATCH)
            .fetch_all(&mut *tx)
            .await
            .map_err(error::db)?;
            if rows.is_empty() {
                return Ok(0);
            }
            let n = append(&mut tx, rows).await?;
            commit(tx).await?;
            return Ok(n);
        }
        // Another database: claim there, append on the primary, then delete there. A crash in
        // between relays the rows again; the log skips what it holds.
        let mut claim = self.pg.pool(shard).begin().await.map_err(error::db)?;
        let rows: Vec<(i64, String, serde_json::Value)> = sqlx::query_as(
            "SELECT id, event_id, envelope FROM outbox ORDER BY id LIMIT $1 \
             FOR UPDATE SKIP LOCKED",
        )
        .bind(RELAY_BATCH)
        .fetch_all(&mut *claim)
        .await
        .map_err(error::db)?;
        if rows.is_empty() {
            return Ok(0);
        }
        let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
        let mut tx = primary.begin().await.map_err(error::db)?;
        let n = append(&mut tx, rows).await?;
        commit(tx).await?;
        sqlx::query("DELETE FROM outbox WHERE id = ANY($1)")
            .bind(&ids)
            .execute(&mut *claim)
            .await
            .map_err(error::db)?;
        commit(claim).await?;
        Ok(n)
    }

    async fn end(&self) -> PortResult<u64> {
        let end: Option<i64> = sqlx::query_scalar("SELECT max(position) + 1 FROM event_log")
            .fetch_one(self.pg.primary())
            .await
            .map_err(error::db)?;
        Ok(u64::try_from(end.unwrap_or(0)).unwrap_or(0))
    }
}

/// Appends `rows` (outbox id, event id, envelope), in outbox-id order and skipping event ids
/// the log holds or that repeat, at the positions after the log's end. Serialized by the relay
/// lock.
async fn append(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    mut rows: Vec<(i64, String, serde_json::Value)>,
) -> PortResult<u64> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(RELAY_LOCK)
        .execute(&mut **tx)
        .await
        .map_err(error::db)?;
    rows.sort_by_key(|r| r.0);
    let mut seen = std::collections::BTreeSet::new();
    rows.retain(|r| seen.insert(r.1.clone()));
    let ids: Vec<String> = rows.iter().map(|r| r.1.clone()).collect();
    let bodies: Vec<serde_json::Value> = rows.into_iter().map(|r| r.2).collect();
    let appended = sqlx::query(
        "WITH incoming AS ( \
             SELECT e.event_id, e.envelope, e.ord \
             FROM UNNEST($1::text[], $2::jsonb[]) WITH ORDINALITY AS e(event_id, envelope, ord) \
             WHERE NOT EXISTS (SELECT 1 FROM event_log l WHERE l.event_id = e.event_id) \
         ), base AS (SELECT coalesce(max(position) + 1, 0) AS next FROM event_log) \
         INSERT INTO event_log (position, event_id, envelope) \
         SELECT base.next + row_number() OVER (ORDER BY incoming.ord) - 1, \
                incoming.event_id, incoming.envelope \
         FROM incoming, base",
    )
    .bind(&ids)
    .bind(&bodies)
    .execute(&mut **tx)
    .await
    .map_err(error::db)?;
    Ok(appended.rows_affected())
}

#[async_trait::async_trait]
impl EventLog for PgEventLog {
    async fn read(&self, from: u64, max: usize) -> PortResult<Vec<LoggedEvent>> {
        self.relay().await?;
        let from = i64::try_from(from).map_err(|_| error::too_large("offset"))?;
        let rows: Vec<(i64, serde_json::Value)> = sqlx::query_as(
            "SELECT position, envelope FROM event_log \
             WHERE position >= $1 ORDER BY position LIMIT $2",
        )
        .bind(from)
        .bind(super::page(max))
        .fetch_all(self.pg.primary())
        .await
        .map_err(error::db)?;
        rows.into_iter()
            .map(|(position, envelope)| {
                Ok(LoggedEvent {
                    offset: u64::try_from(position)
                        .map_err(|_| error::corrupt("position", position))?,
                    envelope: serde_json::from_value(envelope)
                        .map_err(|e| error::corrupt("event", e))?,
                })
            })
            .collect()
    }

    async fn end_offset(&self) -> PortResult<u64> {
        self.relay().await?;
        self.end().await
    }

    async fn wait(&self, from: u64) -> PortResult<()> {
        loop {
            if self.end_offset().await? > from {
                return Ok(());
            }
            tokio::time::sleep(self.pg.poll()).await;
        }
    }
}

#[async_trait::async_trait]
impl EventPublisher for PgEventLog {
    async fn publish(&self, events: &[EventEnvelope]) -> PortResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        super::with_retries(|| async {
            let mut tx = self.pg.primary().begin().await.map_err(error::db)?;
            write_events(&mut tx, events).await?;
            commit(tx).await
        })
        .await
        .map_err(|e| {
            if e.kind == ErrorKind::Internal {
                PortError::new(ErrorKind::Internal, format!("publishing events: {e}"))
            } else {
                e
            }
        })
    }
}
