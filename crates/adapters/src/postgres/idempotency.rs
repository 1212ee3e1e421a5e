//! Idempotency records on PostgreSQL, in the primary database.
//!
//! One row per key (`idempotency`): the request's fingerprint, its state (`in_progress` or
//! `completed`), the current claim's lease token and lease end, the response, and when the
//! record was created and completed. Lease tokens come from a sequence
//! (`idempotency_lease_tokens`), so a token is never issued twice, whatever happens to the key.
//!
//! Concurrency: `begin` is one short transaction. Its first statement is an
//! `INSERT … ON CONFLICT (key) DO UPDATE … WHERE` that either inserts the key or takes over a
//! claim of the same fingerprint whose lease ended, with a fresh token; the unique key decides
//! between concurrent first `begin`s, and the conflicting row's lock between concurrent
//! takeovers, so exactly one caller starts. When it neither inserted nor took over, it has
//! still locked the row (`ON CONFLICT DO UPDATE` locks the rows it skips), so the second
//! statement reads the state it was refused by, and the answer (`InProgress`, `Completed`,
//! `Mismatch`) is consistent. `complete` and `abandon` are one conditional `UPDATE`/`DELETE`
//! on the key *and* the token: a stale token matches no row and changes nothing; only then is
//! the row read, to say why.
//!
//! Retention: [`PgIdempotencyStore::purge`] deletes in bounded batches (through the two
//! partial indexes on completion time and lease end), re-checking each row's condition as it
//! deletes, so a key begun again meanwhile is kept. [`PgIdempotencyStore::purge_all`] is the
//! purge job's body; the retention is the store's (24 hours by default, never less).

use chrono::{DateTime, TimeDelta, Utc};
use commerce_core::limits::{IDEMPOTENCY_RETENTION_HOURS_MIN, PURGE_BATCH_MAX};
use commerce_core::ports::purge_cutoff;
use commerce_core::{
    Begin, ErrorKind, IdempotencyKey, IdempotencyStore, LeaseToken, PortError, PortResult,
};

use super::time::lease_end;
use super::{Postgres, commit, error, with_retries};

/// The [`IdempotencyStore`] on PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgIdempotencyStore {
    pg: Postgres,
    retention: TimeDelta,
}

/// A stored record as `begin` and the refusals read it.
type Row = (String, String, Option<Vec<u8>>);

impl PgIdempotencyStore {
    pub(crate) fn new(pg: Postgres) -> Self {
        PgIdempotencyStore {
            pg,
            retention: TimeDelta::hours(IDEMPOTENCY_RETENTION_HOURS_MIN),
        }
    }

    /// This store, keeping finished records for `retention` before [`purge_all`] forgets them.
    ///
    /// # Errors
    /// `Invalid` for a retention under
    /// [`IDEMPOTENCY_RETENTION_HOURS_MIN`](commerce_core::limits::IDEMPOTENCY_RETENTION_HOURS_MIN)
    /// hours.
    ///
    /// [`purge_all`]: PgIdempotencyStore::purge_all
    pub fn with_retention(mut self, retention: TimeDelta) -> PortResult<Self> {
        if retention < TimeDelta::hours(IDEMPOTENCY_RETENTION_HOURS_MIN) {
            return Err(PortError::from(commerce_core::Error::Invalid {
                field: "retention",
                reason: format!("shorter than {IDEMPOTENCY_RETENTION_HOURS_MIN} hours"),
            }));
        }
        self.retention = retention;
        Ok(self)
    }

    /// How long finished records are kept.
    pub fn retention(&self) -> TimeDelta {
        self.retention
    }

    /// The purge job: forgets every record finished more than the store's retention before
    /// `now`, batch by batch, and returns how many. A service runs it on a timer (hourly is
    /// plenty) with the wall clock's `now`.
    ///
    /// # Errors
    /// `Unavailable` when the database cannot be reached; what earlier batches deleted stays
    /// deleted.
    pub async fn purge_all(&self, now: DateTime<Utc>) -> PortResult<u64> {
        let mut total = 0u64;
        loop {
            let n = self.purge(now, self.retention, PURGE_BATCH_MAX).await?;
            total += u64::try_from(n).unwrap_or(u64::MAX);
            if n < PURGE_BATCH_MAX {
                return Ok(total);
            }
        }
    }

    async fn try_begin(
        &self,
        key: &IdempotencyKey,
        fingerprint: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> PortResult<Begin> {
        let mut tx = self.pg.primary().begin().await.map_err(error::db)?;
        let taken: Option<i64> = sqlx::query_scalar(
            "INSERT INTO idempotency AS i \
                 (key, fingerprint, state, lease_token, lease_until, created_at) \
             VALUES ($1, $2, 'in_progress', nextval('idempotency_lease_tokens'), $4, $3) \
             ON CONFLICT (key) DO UPDATE \
                 SET lease_token = EXCLUDED.lease_token, lease_until = EXCLUDED.lease_until \
                 WHERE i.state = 'in_progress' AND i.fingerprint = EXCLUDED.fingerprint \
                   AND i.lease_until <= $3 \
             RETURNING lease_token",
        )
        .bind(key.as_str())
        .bind(fingerprint)
        .bind(now)
        .bind(lease_end(lease_until))
        .fetch_optional(&mut *tx)
        .await
        .map_err(error::db)?;
        let begin = match taken {
            Some(token) => Begin::Started {
                token: token_of(token)?,
            },
            None => {
                // Refused: the row exists and this transaction holds its lock.
                let (stored_fingerprint, state, response) = read(&mut tx, key)
                    .await?
                    .ok_or_else(|| PortError::new(ErrorKind::Internal, "refused by no row"))?;
                if stored_fingerprint != fingerprint {
                    Begin::Mismatch
                } else if state == "completed" {
                    Begin::Completed(response.unwrap_or_default())
                } else {
                    // In progress under a lease that has not ended (else it was taken over).
                    Begin::InProgress
                }
            }
        };
        commit(tx).await?;
        Ok(begin)
    }

    async fn try_complete(
        &self,
        key: &IdempotencyKey,
        token: LeaseToken,
        response: &[u8],
        now: DateTime<Utc>,
    ) -> PortResult<()> {
        let mut tx = self.pg.primary().begin().await.map_err(error::db)?;
        let done = sqlx::query(
            "UPDATE idempotency \
             SET state = 'completed', response = $3, completed_at = $4, lease_until = NULL \
             WHERE key = $1 AND state = 'in_progress' AND lease_token = $2",
        )
        .bind(key.as_str())
        .bind(stored_token(token))
        .bind(response)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(error::db)?;
        if done.rows_affected() == 0 {
            return Err(refusal(&mut tx, key, token).await);
        }
        commit(tx).await
    }

    async fn try_abandon(&self, key: &IdempotencyKey, token: LeaseToken) -> PortResult<()> {
        let mut tx = self.pg.primary().begin().await.map_err(error::db)?;
        let gone = sqlx::query(
            "DELETE FROM idempotency \
             WHERE key = $1 AND state = 'in_progress' AND lease_token = $2",
        )
        .bind(key.as_str())
        .bind(stored_token(token))
        .execute(&mut *tx)
        .await
        .map_err(error::db)?;
        if gone.rows_affected() == 0 {
            return Err(refusal(&mut tx, key, token).await);
        }
        commit(tx).await
    }

    async fn try_purge(&self, cutoff: DateTime<Utc>, limit: i64) -> PortResult<usize> {
        let mut tx = self.pg.primary().begin().await.map_err(error::db)?;
        // Each arm walks its partial index; the DELETE re-checks the condition on the row it
        // deletes, so a key taken over or completed since the scan is kept.
        let purged = sqlx::query(
            "DELETE FROM idempotency WHERE key IN ( \
                 (SELECT key FROM idempotency \
                  WHERE state = 'completed' AND completed_at < $1 \
                  ORDER BY completed_at LIMIT $2) \
                 UNION ALL \
                 (SELECT key FROM idempotency \
                  WHERE state = 'in_progress' AND lease_until < $1 \
                  ORDER BY lease_until LIMIT $2) \
                 LIMIT $2) \
             AND ((state = 'completed' AND completed_at < $1) \
                  OR (state = 'in_progress' AND lease_until < $1))",
        )
        .bind(cutoff)
        .bind(limit)
        .execute(&mut *tx)
        .await
        .map_err(error::db)?;
        commit(tx).await?;
        Ok(usize::try_from(purged.rows_affected()).unwrap_or(usize::MAX))
    }
}

/// The record of `key`, if any.
async fn read(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    key: &IdempotencyKey,
) -> PortResult<Option<Row>> {
    sqlx::query_as("SELECT fingerprint, state, response FROM idempotency WHERE key = $1")
        .bind(key.as_str())
        .fetch_optional(&mut **tx)
        .await
        .map_err(error::db)
}

/// Why `complete` or `abandon` with `token` changed nothing.
async fn refusal(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    key: &IdempotencyKey,
    token: LeaseToken,
) -> PortError {
    match read(tx, key).await {
        Err(e) => e,
        Ok(None) => PortError::new(ErrorKind::NotFound, format!("key {key}")),
        Ok(Some((_, state, _))) if state == "completed" => {
            PortError::new(ErrorKind::Conflict, format!("key {key} already completed"))
        }
        Ok(Some(_)) => PortError::new(
            ErrorKind::Conflict,
            format!("key {key}: lease token {token} is stale (the key was taken over)"),
        ),
    }
}

/// A token as the column holds it. Tokens come from a `BIGINT` sequence, so one beyond
/// `i64::MAX` was never issued: it maps to a value no row holds (the sequence starts at 1).
fn stored_token(token: LeaseToken) -> i64 {
    i64::try_from(token.get()).unwrap_or(0)
}

fn token_of(stored: i64) -> PortResult<LeaseToken> {
    u64::try_from(stored)
        .ok()
        .and_then(|t| LeaseToken::new(t).ok())
        .ok_or_else(|| error::corrupt("lease token", stored))
}

#[async_trait::async_trait]
impl IdempotencyStore for PgIdempotencyStore {
    async fn begin(
        &self,
        key: &IdempotencyKey,
        fingerprint: &str,
        now: DateTime<Utc>,
        lease: TimeDelta,
    ) -> PortResult<Begin> {
        if lease <= TimeDelta::zero() {
            return Err(PortError::new(ErrorKind::Invalid, "lease must be positive"));
        }
        let lease_until = now
            .checked_add_signed(lease)
            .ok_or_else(|| PortError::new(ErrorKind::Invalid, "lease overflows"))?;
        with_retries(|| self.try_begin(key, fingerprint, now, lease_until)).await
    }

    async fn complete(
        &self,
        key: &IdempotencyKey,
        token: LeaseToken,
        response: Vec<u8>,
        now: DateTime<Utc>,
    ) -> PortResult<()> {
        with_retries(|| self.try_complete(key, token, &response, now)).await
    }

    async fn abandon(&self, key: &IdempotencyKey, token: LeaseToken) -> PortResult<()> {
        with_retries(|| self.try_abandon(key, token)).await
    }

    async fn purge(
        &self,
        now: DateTime<Utc>,
        retention: TimeDelta,
        limit: usize,
    ) -> PortResult<usize> {
        let cutoff = purge_cutoff(now, retention)?;
        let limit = i64::try_from(limit.min(PURGE_BATCH_MAX)).unwrap_or(0);
        with_retries(|| self.try_purge(cutoff, limit)).await
    }
}
