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
use futures::FutureExt;
use sqlx::PgConnection;

use super::{Postgres, UnitOutcome, error, page, with_retries};

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
}

/// One attempt at `create`, as a unit of group commit.
async fn try_create(
    tx: &mut PgConnection,
    record: &SagaRecord,
) -> PortResult<UnitOutcome<SagaRecord>> {
    let row = Row::of(record)?;
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
        return Ok(UnitOutcome::Commit(record.clone()));
    }
    // Another create won (and committed: ON CONFLICT waited for it); return its record.
    let body: serde_json::Value = sqlx::query_scalar("SELECT body FROM sagas WHERE id = $1")
        .bind(&record.id)
        .fetch_one(&mut *tx)
        .await
        .map_err(error::db)?;
    load(body).map(UnitOutcome::Commit)
}

/// One attempt at `update`, as a unit of group commit.
async fn try_update(
    tx: &mut PgConnection,
    record: &SagaRecord,
) -> PortResult<UnitOutcome<CasOutcome>> {
    let mut next = record.clone();
    next.version = record
        .version
        .checked_add(1)
        .ok_or_else(|| error::too_large("saga version"))?;
    let row = Row::of(&next)?;
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
        return Ok(UnitOutcome::Rollback(CasOutcome::VersionMismatch {
            current,
        }));
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
    Ok(UnitOutcome::Commit(CasOutcome::Committed))
}

/// One attempt at `acquire`, as a unit of group commit.
async fn try_acquire(
    tx: &mut PgConnection,
    id: &str,
    owner: &str,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> PortResult<UnitOutcome<Option<SagaRecord>>> {
    // The body's lease as the record serializes it (to the nanosecond).
    let lease = serde_json::to_value(Some((owner, until)))
        .map_err(|e| PortError::caused_by(ErrorKind::Internal, e))?;
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
        return load(body).map(|r| UnitOutcome::Commit(Some(r)));
    }
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM sagas WHERE id = $1)")
        .bind(id)
        .fetch_one(&mut *tx)
        .await
        .map_err(error::db)?;
    if exists {
        Ok(UnitOutcome::Rollback(None))
    } else {
        Err(PortError::new(ErrorKind::NotFound, format!("saga {id}")))
    }
}

#[async_trait::async_trait]
impl SagaJournal for PgJournal {
    async fn create(&self, record: SagaRecord) -> PortResult<SagaRecord> {
        with_retries(|| {
            let record = record.clone();
            self.pg
                .combiner()
                .run(move |conn| async move { try_create(conn, &record).await }.boxed())
        })
        .await
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
        with_retries(|| {
            let record = record.clone();
            self.pg
                .combiner()
                .run(move |conn| async move { try_update(conn, &record).await }.boxed())
        })
        .await
    }

    async fn acquire(
        &self,
        id: &str,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> PortResult<Option<SagaRecord>> {
        with_retries(|| {
            let (id, owner) = (id.to_owned(), owner.to_owned());
            self.pg.combiner().run(move |conn| {
                async move { try_acquire(conn, &id, &owner, now, until).await }.boxed()
            })
        })
        .await
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
