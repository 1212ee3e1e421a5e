//! The saga journal on PostgreSQL, in the primary database.
//!
//! One row per saga (`sagas`): the record verbatim as JSONB (`body`), and beside it the columns
//! the journal decides on: kind, status, version, the lease (owner and end) and the creation
//! time. Every write keeps the two in step in one statement, so `load` reads the body alone.
//!
//! Concurrency: `create` is `INSERT … ON CONFLICT DO NOTHING`, so of concurrent creates of one
//! id the first stores its record and every other returns that one. `update` locks the row,
//! compares versions and writes the record with `version + 1`, in one transaction. `acquire`
//! is one `UPDATE … WHERE` the lease is free, the caller's, or ended: the row lock decides
//! between two workers, and the loser's condition, re-checked on the winner's row, fails, so a
//! saga is never driven by two workers at once. Lease ends are stored rounded up to the
//! microsecond ([`super::time::lease_end`]), so a lease never ends early.
//!
//! Recovery's scan (`unfinished`) reads a partial index over `(kind, created_at, id)` of the
//! running and compensating sagas only: finished sagas, almost all of them, cost it nothing.

use chrono::{DateTime, Utc};
use commerce_core::{CasOutcome, ErrorKind, PortError, PortResult};
use saga::{SagaJournal, SagaRecord, SagaStatus};

use super::time::lease_end;
use super::{Postgres, commit, error, page, with_retries};

/// The [`SagaJournal`] on PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgJournal {
    pg: Postgres,
}

/// The status as its column holds it.
fn status(s: SagaStatus) -> &'static str {
    match s {
        SagaStatus::Running => "running",
        SagaStatus::Compensating => "compensating",
        SagaStatus::Completed => "completed",
        SagaStatus::Compensated => "compensated",
    }
}

/// A record's columns and body, as written.
struct Row {
    version: i64,
    status: &'static str,
    lease_owner: Option<String>,
    lease_until: Option<DateTime<Utc>>,
    body: serde_json::Value,
}

impl Row {
    fn of(record: &SagaRecord) -> PortResult<Row> {
        Ok(Row {
            version: i64::try_from(record.version).map_err(|_| error::too_large("saga version"))?,
            status: status(record.status),
            lease_owner: record.lease.as_ref().map(|l| l.0.clone()),
            lease_until: record.lease.as_ref().map(|l| lease_end(l.1)),
            body: serde_json::to_value(record)
                .map_err(|e| PortError::caused_by(ErrorKind::Internal, e))?,
        })
    }
}

fn load(body: serde_json::Value) -> PortResult<SagaRecord> {
    serde_json::from_value(body).map_err(|e| error::corrupt("saga", e))
}

impl PgJournal {
    pub(crate) fn new(pg: Postgres) -> Self {
        PgJournal { pg }
    }

    async fn try_create(&self, record: &SagaRecord) -> PortResult<SagaRecord> {
        let row = Row::of(record)?;
        let mut tx = self.pg.primary().begin().await.map_err(error::db)?;
        let inserted = sqlx::query(
            "INSERT INTO sagas \
                 (id, kind, status, version, lease_owner, lease_until, created_at, body) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&record.id)
        .bind(&record.kind)
        .bind(row.status)
        .bind(row.version)
        .bind(row.lease_owner)
        .bind(row.lease_until)
        .bind(record.created_at)
        .bind(row.body)
        .execute(&mut *tx)
        .await
        .map_err(error::db)?;
        if inserted.rows_affected() == 1 {
            commit(tx).await?;
            return Ok(record.clone());
        }
        // Another create won (and committed: ON CONFLICT waited for it); return its record.
        let body: serde_json::Value = sqlx::query_scalar("SELECT body FROM sagas WHERE id = $1")
            .bind(&record.id)
            .fetch_one(&mut *tx)
            .await
            .map_err(error::db)?;
        commit(tx).await?;
        load(body)
    }

    async fn try_update(&self, record: &SagaRecord) -> PortResult<CasOutcome> {
        let mut next = record.clone();
        next.version = record
            .version
            .checked_add(1)
            .ok_or_else(|| error::too_large("saga version"))?;
        let row = Row::of(&next)?;
        let mut tx = self.pg.primary().begin().await.map_err(error::db)?;
        let stored: Option<i64> =
            sqlx::query_scalar("SELECT version FROM sagas WHERE id = $1 FOR UPDATE")
                .bind(&record.id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(error::db)?;
        let Some(stored) = stored else {
            return Err(PortError::new(
                ErrorKind::NotFound,
                format!("saga {}", record.id),
            ));
        };
        let current = u64::try_from(stored).map_err(|_| error::corrupt("version", stored))?;
        if current != record.version {
            return Ok(CasOutcome::VersionMismatch { current });
        }
        sqlx::query(
            "UPDATE sagas SET kind = $2, status = $3, version = $4, lease_owner = $5, \
                 lease_until = $6, created_at = $7, body = $8 \
             WHERE id = $1",
        )
        .bind(&record.id)
        .bind(&record.kind)
        .bind(row.status)
        .bind(row.version)
        .bind(row.lease_owner)
        .bind(row.lease_until)
        .bind(record.created_at)
        .bind(row.body)
        .execute(&mut *tx)
        .await
        .map_err(error::db)?;
        commit(tx).await?;
        Ok(CasOutcome::Committed)
    }

    async fn try_acquire(
        &self,
        id: &str,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> PortResult<Option<SagaRecord>> {
        // The body's lease as the record serializes it (to the nanosecond).
        let lease = serde_json::to_value(Some((owner, until)))
            .map_err(|e| PortError::caused_by(ErrorKind::Internal, e))?;
        let mut tx = self.pg.primary().begin().await.map_err(error::db)?;
        let taken: Option<serde_json::Value> = sqlx::query_scalar(
            "UPDATE sagas SET lease_owner = $2, lease_until = $4, version = version + 1, \
                 body = jsonb_set(jsonb_set(body, '{lease}', $5), \
                                  '{version}', to_jsonb(version + 1)) \
             WHERE id = $1 \
               AND (lease_owner IS NULL OR lease_owner = $2 OR lease_until <= $3) \
             RETURNING body",
        )
        .bind(id)
        .bind(owner)
        .bind(now)
        .bind(lease_end(until))
        .bind(lease)
        .fetch_optional(&mut *tx)
        .await
        .map_err(error::db)?;
        if let Some(body) = taken {
            commit(tx).await?;
            return load(body).map(Some);
        }
        let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM sagas WHERE id = $1)")
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .map_err(error::db)?;
        if exists {
            Ok(None)
        } else {
            Err(PortError::new(ErrorKind::NotFound, format!("saga {id}")))
        }
    }
}

#[async_trait::async_trait]
impl SagaJournal for PgJournal {
    async fn create(&self, record: SagaRecord) -> PortResult<SagaRecord> {
        with_retries(|| self.try_create(&record)).await
    }

    async fn load(&self, id: &str) -> PortResult<Option<SagaRecord>> {
        let body: Option<serde_json::Value> =
            sqlx::query_scalar("SELECT body FROM sagas WHERE id = $1")
                .bind(id)
                .fetch_optional(self.pg.primary())
                .await
                .map_err(error::db)?;
        body.map(load).transpose()
    }

    async fn update(&self, record: &SagaRecord) -> PortResult<CasOutcome> {
        with_retries(|| self.try_update(record)).await
    }

    async fn acquire(
        &self,
        id: &str,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> PortResult<Option<SagaRecord>> {
        with_retries(|| self.try_acquire(id, owner, now, until)).await
    }

    async fn unfinished(&self, kind: &str, limit: usize) -> PortResult<Vec<SagaRecord>> {
        let bodies: Vec<serde_json::Value> = sqlx::query_scalar(
            "SELECT body FROM sagas \
             WHERE kind = $1 AND status IN ('running', 'compensating') \
             ORDER BY created_at, id LIMIT $2",
        )
        .bind(kind)
        .bind(page(limit))
        .fetch_all(self.pg.primary())
        .await
        .map_err(error::db)?;
        let mut records = bodies
            .into_iter()
            .map(load)
            .collect::<PortResult<Vec<SagaRecord>>>()?;
        // The column keeps microseconds; order exactly as the records say.
        records.sort_by(|a, b| {
            a.created_at
                .cmp(&b.created_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        Ok(records)
    }
}
