//! Carts on PostgreSQL, routed by cart id over the order shards.
//!
//! One row per cart (`carts`, on every shard): id, owner, status, version, expiry and the cart
//! as JSONB. A cart lives on the shard its id routes to ([`Postgres::shard_of`]); a write
//! commits the row and its events (that shard's outbox) in one transaction, and `update` is
//! compare-and-set on the version under the row's lock.
//!
//! Why the cart id and not the user id routes: a cart's owner is not a stable key. An
//! anonymous cart has none, and a guest cart gains one at login (or is merged into the user's
//! cart); routing by owner would move a cart between shards exactly when the shopper is most
//! active, and leave anonymous carts nowhere. The id never changes, so a cart stays in one
//! place for its whole life, and reads and writes by id touch one shard. Queries by owner
//! (`get_active_for_user`) and by expiry (`list_expired`) ask every shard at once and merge.
//!
//! One active cart per owner, across shards: a unique partial index enforces it within a
//! shard, but two carts of one owner may route to different shards. So `insert` of an owned,
//! active cart first takes a transaction-scoped advisory lock on the owner (on the primary),
//! then asks every shard for an active cart of that owner, and writes the cart before it
//! releases the lock. Every such insert of one owner is serialized by the lock, and each sees
//! what the previous one committed (the cart commits before the lock is released), so no
//! second active cart appears, whatever the shards. Updates need no lock: they can neither
//! change an owner nor make a cart active again. The insert holds at most one connection per
//! database at a time (the lock's, on the primary, is reused for the primary's own check and
//! write), so concurrent inserts cannot exhaust a pool waiting on each other.

use chrono::{DateTime, Utc};
use commerce_core::{CartId, CasOutcome, ErrorKind, EventEnvelope, PortError, PortResult, UserId};
use futures::future::try_join_all;
use sqlx::{Postgres as Pg, Transaction};

use cart_engine::limits::SWEEP_BATCH_MAX;
use cart_engine::{Cart, CartStatus, CartStore};

use super::{Postgres, commit, error, page, with_retries, write_events};

/// The advisory-lock class (the first of the two `int4` keys) that owner locks use: "cart" in
/// ASCII. The two-key lock space never overlaps the one-key space the relay uses.
const OWNER_LOCK_CLASS: i32 = 0x6361_7274;

/// Whether a shard holds an active cart of the owner `$1`.
const HAS_ACTIVE: &str =
    "SELECT EXISTS (SELECT 1 FROM carts WHERE owner = $1 AND status = 'active')";

/// The [`CartStore`] on PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgCartStore {
    pg: Postgres,
}

/// A cart's row as written.
struct CartRow {
    version: i64,
    status: &'static str,
    body: serde_json::Value,
}

impl CartRow {
    fn of(cart: &Cart) -> PortResult<CartRow> {
        Ok(CartRow {
            version: i64::try_from(cart.version()).map_err(|_| error::too_large("cart version"))?,
            status: status(cart.status()),
            body: serde_json::to_value(cart)
                .map_err(|e| PortError::caused_by(ErrorKind::Internal, e))?,
        })
    }
}

/// The status as its column holds it.
fn status(s: &CartStatus) -> &'static str {
    match s {
        CartStatus::Active => "active",
        CartStatus::Merged { .. } => "merged",
        CartStatus::Abandoned => "abandoned",
        CartStatus::CheckedOut => "checked_out",
    }
}

fn load(body: serde_json::Value) -> PortResult<Cart> {
    serde_json::from_value(body).map_err(|e| error::corrupt("cart", e))
}

/// The second key of an owner's advisory lock: FNV-1a over the owner's bytes, 32 bits. Two
/// owners sharing a hash only wait for each other.
fn owner_lock_key(owner: &UserId) -> i32 {
    let hash = owner.as_str().bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    i32::from_ne_bytes(hash.to_ne_bytes())
}

fn owner_taken(owner: &UserId) -> PortError {
    PortError::new(
        ErrorKind::Conflict,
        format!("user {owner} already has an active cart"),
    )
}

impl PgCartStore {
    pub(crate) fn new(pg: Postgres) -> Self {
        PgCartStore { pg }
    }

    /// Inserts `cart` within `tx` (on the cart's shard) with its events; does not commit.
    async fn write_new(
        tx: &mut Transaction<'_, Pg>,
        cart: &Cart,
        events: &[EventEnvelope],
    ) -> PortResult<()> {
        let row = CartRow::of(cart)?;
        let inserted = sqlx::query(
            "INSERT INTO carts (id, owner, status, version, expires_at, body) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
        )
        .bind(cart.id().as_str())
        .bind(cart.owner().map(UserId::as_str))
        .bind(row.status)
        .bind(row.version)
        .bind(cart.expires_at())
        .bind(row.body)
        .execute(&mut **tx)
        .await;
        let inserted = match inserted {
            Ok(done) => done,
            Err(e) => {
                let e = error::db(e);
                // The id is handled by ON CONFLICT: a unique violation is the owner's index.
                return Err(match (e.kind, cart.owner()) {
                    (ErrorKind::Conflict, Some(owner)) => owner_taken(owner),
                    _ => e,
                });
            }
        };
        if inserted.rows_affected() == 0 {
            return Err(PortError::new(
                ErrorKind::Conflict,
                format!("cart {} exists", cart.id()),
            ));
        }
        write_events(tx, events).await
    }

    /// An anonymous or inactive cart: one transaction on its shard.
    async fn try_insert_unowned(&self, cart: &Cart, events: &[EventEnvelope]) -> PortResult<()> {
        let pool = self.pg.pool(self.pg.shard_of(cart.id().as_str()));
        let mut tx = pool.begin().await.map_err(error::db)?;
        Self::write_new(&mut tx, cart, events).await?;
        commit(tx).await
    }

    /// An owned active cart: under the owner's lock, after every shard said the owner has no
    /// active cart.
    async fn try_insert_owned(
        &self,
        cart: &Cart,
        owner: &UserId,
        events: &[EventEnvelope],
    ) -> PortResult<()> {
        let mut lock = self.pg.primary().begin().await.map_err(error::db)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
            .bind(OWNER_LOCK_CLASS)
            .bind(owner_lock_key(owner))
            .execute(&mut *lock)
            .await
            .map_err(error::db)?;
        let on_primary: bool = sqlx::query_scalar(HAS_ACTIVE)
            .bind(owner.as_str())
            .fetch_one(&mut *lock)
            .await
            .map_err(error::db)?;
        let elsewhere = try_join_all(self.pg.pools().iter().skip(1).map(|pool| async move {
            sqlx::query_scalar::<_, bool>(HAS_ACTIVE)
                .bind(owner.as_str())
                .fetch_one(pool)
                .await
                .map_err(error::db)
        }))
        .await?;
        if on_primary || elsewhere.into_iter().any(|found| found) {
            return Err(owner_taken(owner));
        }
        let shard = self.pg.shard_of(cart.id().as_str());
        if shard == 0 {
            Self::write_new(&mut lock, cart, events).await?;
            return commit(lock).await;
        }
        let mut tx = self.pg.pool(shard).begin().await.map_err(error::db)?;
        Self::write_new(&mut tx, cart, events).await?;
        commit(tx).await?;
        // The cart is committed: releasing the lock can only fail by losing the connection,
        // which releases it too.
        let _ = lock.rollback().await;
        Ok(())
    }

    async fn try_update(
        &self,
        cart: &Cart,
        expected_version: u64,
        events: &[EventEnvelope],
    ) -> PortResult<CasOutcome> {
        let pool = self.pg.pool(self.pg.shard_of(cart.id().as_str()));
        let mut tx = pool.begin().await.map_err(error::db)?;
        let stored: Option<(i64, Option<String>, String)> =
            sqlx::query_as("SELECT version, owner, status FROM carts WHERE id = $1 FOR UPDATE")
                .bind(cart.id().as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(error::db)?;
        let Some((version, owner, stored_status)) = stored else {
            return Err(PortError::new(
                ErrorKind::NotFound,
                format!("cart {}", cart.id()),
            ));
        };
        let current = u64::try_from(version).map_err(|_| error::corrupt("version", version))?;
        if current != expected_version {
            return Ok(CasOutcome::VersionMismatch { current });
        }
        if owner.as_deref() != cart.owner().map(UserId::as_str) {
            return Err(PortError::new(
                ErrorKind::Conflict,
                format!("cart {} cannot change owner", cart.id()),
            ));
        }
        let row = CartRow::of(cart)?;
        if stored_status != "active" && row.status == "active" {
            // Never through the cart's own operations; refused so that `insert` stays the only
            // way an owner gains an active cart (the cross-shard check lives there).
            return Err(PortError::new(
                ErrorKind::Conflict,
                format!(
                    "cart {} is {stored_status} and cannot become active",
                    cart.id()
                ),
            ));
        }
        sqlx::query(
            "UPDATE carts SET status = $2, version = $3, expires_at = $4, body = $5 WHERE id = $1",
        )
        .bind(cart.id().as_str())
        .bind(row.status)
        .bind(row.version)
        .bind(cart.expires_at())
        .bind(row.body)
        .execute(&mut *tx)
        .await
        .map_err(error::db)?;
        write_events(&mut tx, events).await?;
        commit(tx).await?;
        Ok(CasOutcome::Committed)
    }
}

#[async_trait::async_trait]
impl CartStore for PgCartStore {
    async fn insert(&self, cart: Cart, events: &[EventEnvelope]) -> PortResult<()> {
        match cart.owner() {
            Some(owner) if *cart.status() == CartStatus::Active => {
                with_retries(|| self.try_insert_owned(&cart, owner, events)).await
            }
            _ => with_retries(|| self.try_insert_unowned(&cart, events)).await,
        }
    }

    async fn get(&self, id: &CartId) -> PortResult<Option<Cart>> {
        let pool = self.pg.pool(self.pg.shard_of(id.as_str()));
        let body: Option<serde_json::Value> =
            sqlx::query_scalar("SELECT body FROM carts WHERE id = $1")
                .bind(id.as_str())
                .fetch_optional(pool)
                .await
                .map_err(error::db)?;
        body.map(load).transpose()
    }

    async fn get_active_for_user(&self, user: &UserId) -> PortResult<Option<Cart>> {
        let found = try_join_all(self.pg.pools().iter().map(|pool| async move {
            sqlx::query_scalar::<_, serde_json::Value>(
                "SELECT body FROM carts WHERE owner = $1 AND status = 'active'",
            )
            .bind(user.as_str())
            .fetch_all(pool)
            .await
            .map_err(error::db)
        }))
        .await?;
        let mut bodies = found.into_iter().flatten();
        let Some(body) = bodies.next() else {
            return Ok(None);
        };
        if bodies.next().is_some() {
            return Err(PortError::new(
                ErrorKind::Internal,
                format!("user {user} has two active carts"),
            ));
        }
        let cart = load(body)?;
        // The row's columns and its body agree, or the row is corrupt.
        if cart.owner() != Some(user) || *cart.status() != CartStatus::Active {
            return Err(error::corrupt("cart", "columns disagree with the body"));
        }
        Ok(Some(cart))
    }

    async fn update(
        &self,
        cart: Cart,
        expected_version: u64,
        events: &[EventEnvelope],
    ) -> PortResult<CasOutcome> {
        with_retries(|| self.try_update(&cart, expected_version, events)).await
    }

    async fn list_expired(&self, now: DateTime<Utc>, limit: usize) -> PortResult<Vec<Cart>> {
        let limit = page(limit.min(SWEEP_BATCH_MAX));
        let pages = try_join_all(self.pg.pools().iter().map(|pool| async move {
            sqlx::query_scalar::<_, serde_json::Value>(
                "SELECT body FROM carts WHERE status = 'active' AND expires_at <= $1 \
                 ORDER BY expires_at, id LIMIT $2",
            )
            .bind(now)
            .bind(limit)
            .fetch_all(pool)
            .await
            .map_err(error::db)
        }))
        .await?;
        let mut carts = pages
            .into_iter()
            .flatten()
            .map(load)
            .collect::<PortResult<Vec<Cart>>>()?;
        // The column keeps microseconds; the cart's own expiry decides, to the nanosecond.
        carts.retain(|c| c.is_expired(now));
        carts.sort_by(|a, b| {
            a.expires_at()
                .cmp(&b.expires_at())
                .then_with(|| a.id().cmp(b.id()))
        });
        carts.truncate(usize::try_from(limit).unwrap_or(0));
        Ok(carts)
    }
}
