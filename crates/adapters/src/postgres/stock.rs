//! Stock and holds on PostgreSQL, in the primary database: inventory's rules
//! ([`inventory::rules`]) over rows.
//!
//! # Rows
//! - `stock`: one row per key (on hand, configuration).
//! - `stock_counters`: `shards_max` counter rows per key, the first `shards` active. Each has a
//!   `free` share of what the key can still promise (the shares sum to availability plus the
//!   backorder allowance), and the `held` and `committed` units its reservations took.
//! - `holds`: one row per hold, with the counter row each of its units came from (`takes`).
//!
//! # The hot path: one conditional statement per reservation
//! A reservation of `q` units of a key is one `UPDATE` of one active counter row with
//! `free ≥ q`, picked by a scalar subquery (evaluated once) that starts at a row derived from
//! the hold id and walks to its neighbours, skipping rows other transactions hold
//! (`FOR UPDATE SKIP LOCKED`). It never reads and then writes: the condition is re-checked on
//! the row it updates, so no unit is promised twice. Sixteen buyers of a hot SKU with sixteen
//! counter rows each update a different row and never wait for one another. When every row
//! with enough units is held, the same statement runs again waiting for the first of them (a
//! one-row key under contention queues on its row, as a plain `UPDATE` would).
//!
//! With group commit ([`Combiner`](super::Combiner), on by default) the first try waits for no
//! row: when every row with enough units is held, the reservation goes to its key's worker
//! instead, whose batch takes the row once and shares its lock and commit among the batch's
//! reservations (a one-row hot SKU no longer commits once per buyer); a key found contended
//! goes there directly for its next reservations. A batched reservation may wait for its row
//! (bounded by the batch's `lock_timeout`) but never takes the slow path: it is run alone
//! again, waiting, as above.
//!
//! When no single row can serve the reservation (its share is spent or the units are in holds
//! that expired unswept), the slow path finalizes the key's expired
//! holds, locks the key's `stock` row and all its counter rows, decides with
//! [`inventory::rules::reserve`] on the summed counts, takes the units and rebalances the shares
//! evenly over the active rows.
//!
//! # Everything else
//! Movements (receive, count, direct commit, ship, uncommit), configuration and giving a hold's
//! units back lock the key's `stock` row and its counter rows (after finalizing its expired
//! holds), apply the rule's delta to the summed counts, rebalance the shares and write the
//! events the rules name to the outbox, in one transaction. Committing a hold moves its units
//! from `held` to `committed` on the rows they came from, which changes no share, so it locks
//! only those rows. Lock order everywhere: holds, then `stock` rows in key order, then counter
//! rows in shard order. A deadlock the server still detects rolls one transaction back, and it
//! is run again.
//!
//! # Expiry
//! A `held` hold past its expiry counts as free at once: reads add its units back, and the
//! slow path finalizes it before deciding. The sweeper claims due holds in batches with
//! `FOR UPDATE SKIP LOCKED`, so two sweepers never finalize one hold twice; whichever call
//! finalizes a hold (sweep, `expire`, an operation refused with `HoldExpired`, a reservation
//! that needed its units) writes the events a sweep would, under event ids derived from the
//! hold and its expiry, once.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use commerce_core::{DomainEvent, ErrorKind, EventEnvelope, EventId, IdempotencyKey, PortError};
use futures::FutureExt;
use inventory::rules::{self, HoldAction, HoldOp, StockRow};
use inventory::{
    Changes, DirectCommit, Error, Hold, HoldId, HoldStatus, HoldStore, Movement, Result, Shortfall,
    ShortfallPolicy, StockConfig, StockKey, StockLevel, StockLevels, StockLine, StockMode,
    StockMovements, Sweep, demand,
};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, Postgres as Pg, Row, Transaction};

use super::batch::{alone, unit};
use super::time::lease_end;
use super::{Postgres, UnitOutcome, commit, error, is_rolled_back, write_events};

/// The [`inventory::StockStore`] on PostgreSQL. See the module documentation for the rows and
/// the locking.
#[derive(Debug, Clone)]
pub struct PgStockStore {
    pg: Postgres,
    /// Keys found contended lately, each with how many reservations still go straight to
    /// group commit before one tries alone again.
    contended: Arc<Mutex<HashMap<(String, String), u32>>>,
}

/// How many reservations of a key found contended go straight to group commit before one
/// tries a transaction of its own again.
const CONTENDED_FOR: u32 = 32;

type Tx = Transaction<'static, Pg>;

/// Units of a hold taken from one counter row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Take {
    sku: String,
    location: String,
    shard: i32,
    quantity: i64,
}

/// One counter row, as locked.
#[derive(Debug, Clone, Copy)]
struct Counter {
    shard: i32,
    free: i64,
    held: i64,
    committed: i64,
}

/// A key's `stock` row and counter rows, locked by this transaction.
#[derive(Debug)]
struct Locked {
    on_hand: i64,
    config: StockConfig,
    counters: Vec<Counter>,
}

impl Locked {
    /// The summed counts, as the rules read them.
    fn row(&self) -> StockRow {
        StockRow {
            on_hand: self.on_hand,
            held: self.counters.iter().map(|c| c.held).sum(),
            committed: self.counters.iter().map(|c| c.committed).sum(),
            config: self.config,
        }
    }

    /// Spreads what the key can promise over the active rows, evenly (the first rows get the
    /// remainder). Units owed (a total below zero) all sit on row 0, so no row has a share to
    /// give while the key owes units.
    fn rebalance(&mut self) {
        let row = self.row();
        let total = row.available() + self.config.backorder_limit;
        let active = i64::try_from(self.config.shards).unwrap_or(1).max(1);
        for (i, c) in self.counters.iter_mut().enumerate() {
            let i = i64::try_from(i).unwrap_or(i64::MAX);
            c.free = if total < 0 {
                if i == 0 { total } else { 0 }
            } else if i < active {
                total / active + i64::from(i < total % active)
            } else {
                0
            };
        }
    }

    /// Takes `quantity` held units on the active row nearest `start`.
    fn take(&mut self, quantity: i64, start: usize) -> i32 {
        let active = self.config.shards.max(1);
        let c = &mut self.counters[start % active];
        c.held += quantity;
        c.shard
    }
}

/// Where a write's events come from, for their ids: a retried write names the same events.
enum Origin<'a> {
    Movement(&'a IdempotencyKey),
    Hold(&'a HoldId, HoldStatus, DateTime<Utc>),
}

fn envelopes(
    origin: &Origin<'_>,
    now: DateTime<Utc>,
    events: &[DomainEvent],
) -> Vec<EventEnvelope> {
    let (scope, purpose) = match origin {
        Origin::Movement(key) => (key.as_str().to_owned(), "stock".to_owned()),
        Origin::Hold(id, status, at) => (
            id.as_str().to_owned(),
            format!("{}.{}", status.as_str(), at.timestamp_millis()),
        ),
    };
    events
        .iter()
        .enumerate()
        .filter_map(|(i, e)| {
            // Hold ids and movement keys are valid key text, so the derivation cannot fail.
            EventId::derive(&scope, &format!("{purpose}:{i}"))
                .ok()
                .map(|id| EventEnvelope::new(id, now, e.clone()))
        })
        .collect()
}

fn port(e: PortError) -> Error {
    Error::Port(e)
}

fn db(e: sqlx::Error) -> Error {
    Error::Port(error::db(e))
}

fn json<T: Serialize>(v: &T) -> Result<serde_json::Value> {
    serde_json::to_value(v).map_err(|e| port(PortError::caused_by(ErrorKind::Internal, e)))
}

fn mode_name(m: StockMode) -> &'static str {
    match m {
        StockMode::Reservation => "reservation",
        StockMode::Optimistic => "optimistic",
    }
}

fn status_of(s: &str) -> Result<HoldStatus> {
    Ok(match s {
        "held" => HoldStatus::Held,
        "pinned" => HoldStatus::Pinned,
        "committed" => HoldStatus::Committed,
        "released" => HoldStatus::Released,
        "expired" => HoldStatus::Expired,
        other => return Err(port(error::corrupt("hold status", other))),
    })
}

fn int(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn count(n: i32) -> usize {
    usize::try_from(n).unwrap_or(0)
}

/// The row a hold's reservations start at: spread by hold id, stable for a retried hold.
fn start_of(hold: &HoldId) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    hold.hash(&mut h);
    usize::try_from(h.finish() % 4096).unwrap_or(0)
}

/// The JSONB pattern matching a hold with units of `key`.
fn touches(key: &StockKey) -> serde_json::Value {
    serde_json::json!([{ "sku": key.sku.as_str(), "location": key.location.as_str() }])
}

/// A hold as stored.
#[derive(Debug)]
struct HoldRow {
    hold: Hold,
    takes: Vec<Take>,
}

impl HoldRow {
    fn from_row(row: &sqlx::postgres::PgRow) -> Result<HoldRow> {
        let id: String = row.try_get("id").map_err(db)?;
        let status: String = row.try_get("status").map_err(db)?;
        let lines: serde_json::Value = row.try_get("lines").map_err(db)?;
        let takes: serde_json::Value = row.try_get("takes").map_err(db)?;
        Ok(HoldRow {
            hold: Hold {
                id: HoldId::new(&id).map_err(|e| port(error::corrupt("hold id", e)))?,
                lines: serde_json::from_value(lines)
                    .map_err(|e| port(error::corrupt("hold lines", e)))?,
                status: status_of(&status)?,
                expires_at: row.try_get("expires_at").map_err(db)?,
                owner: row.try_get("owner").map_err(db)?,
            },
            takes: serde_json::from_value(takes)
                .map_err(|e| port(error::corrupt("hold takes", e)))?,
        })
    }

    /// The keys the hold took units of, in key order.
    fn keys(&self) -> Vec<StockKey> {
        let mut keys: Vec<StockKey> = self.hold.lines.iter().map(|l| l.key.clone()).collect();
        keys.sort();
        keys.dedup();
        keys
    }
}

const HOLD_COLUMNS: &str = "id, status, expires_at, owner, lines, takes";

async fn load_hold(tx: &mut PgConnection, id: &HoldId, lock: bool) -> Result<Option<HoldRow>> {
    let sql = format!(
        "SELECT {HOLD_COLUMNS} FROM holds WHERE id = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
    row.as_ref().map(HoldRow::from_row).transpose()
}

/// Locks `key`'s `stock` row, then its counter rows.
async fn lock_key(tx: &mut PgConnection, key: &StockKey) -> Result<Locked> {
    let meta = sqlx::query(
        "SELECT on_hand, safety_stock, backorder_limit, mode, shards, shards_max FROM stock \
         WHERE sku = $1 AND location = $2 FOR UPDATE",
    )
    .bind(key.sku.as_str())
    .bind(key.location.as_str())
    .fetch_optional(&mut *tx)
    .await
    .map_err(db)?
    .ok_or_else(|| Error::UnknownStock(key.clone()))?;
    let mode: String = meta.try_get("mode").map_err(db)?;
    let config = StockConfig {
        safety_stock: meta.try_get("safety_stock").map_err(db)?,
        backorder_limit: meta.try_get("backorder_limit").map_err(db)?,
        mode: if mode == "optimistic" {
            StockMode::Optimistic
        } else {
            StockMode::Reservation
        },
        shards: count(meta.try_get("shards").map_err(db)?),
        shards_max: count(meta.try_get("shards_max").map_err(db)?),
    };
    let rows = sqlx::query(
        "SELECT shard, free, held, committed FROM stock_counters \
         WHERE sku = $1 AND location = $2 ORDER BY shard FOR UPDATE",
    )
    .bind(key.sku.as_str())
    .bind(key.location.as_str())
    .fetch_all(&mut *tx)
    .await
    .map_err(db)?;
    let counters = rows
        .iter()
        .map(|r| {
            Ok(Counter {
                shard: r.try_get("shard").map_err(db)?,
                free: r.try_get("free").map_err(db)?,
                held: r.try_get("held").map_err(db)?,
                committed: r.try_get("committed").map_err(db)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    if counters.len() != config.shards_max {
        return Err(port(error::corrupt(
            "stock counters",
            format!(
                "{key} has {} rows, not {}",
                counters.len(),
                config.shards_max
            ),
        )));
    }
    Ok(Locked {
        on_hand: meta.try_get("on_hand").map_err(db)?,
        config,
        counters,
    })
}

/// Writes back what [`lock_key`] locked (rebalanced first).
async fn save_key(tx: &mut PgConnection, key: &StockKey, locked: &mut Locked) -> Result<()> {
    locked.rebalance();
    let active = locked.config.shards;
    sqlx::query(
        "UPDATE stock SET on_hand = $3, safety_stock = $4, backorder_limit = $5, mode = $6, \
         shards = $7 WHERE sku = $1 AND location = $2",
    )
    .bind(key.sku.as_str())
    .bind(key.location.as_str())
    .bind(locked.on_hand)
    .bind(locked.config.safety_stock)
    .bind(locked.config.backorder_limit)
    .bind(mode_name(locked.config.mode))
    .bind(int(active))
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    let shards: Vec<i32> = locked.counters.iter().map(|c| c.shard).collect();
    let actives: Vec<bool> = shards.iter().map(|s| count(*s) < active).collect();
    let free: Vec<i64> = locked.counters.iter().map(|c| c.free).collect();
    let held: Vec<i64> = locked.counters.iter().map(|c| c.held).collect();
    let committed: Vec<i64> = locked.counters.iter().map(|c| c.committed).collect();
    sqlx::query(
        "UPDATE stock_counters c SET active = v.active, free = v.free, held = v.held, \
         committed = v.committed \
         FROM UNNEST($3::int[], $4::bool[], $5::bigint[], $6::bigint[], $7::bigint[]) \
              AS v(shard, active, free, held, committed) \
         WHERE c.sku = $1 AND c.location = $2 AND c.shard = v.shard",
    )
    .bind(key.sku.as_str())
    .bind(key.location.as_str())
    .bind(&shards)
    .bind(&actives)
    .bind(&free)
    .bind(&held)
    .bind(&committed)
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    Ok(())
}

/// Takes `$3` units of key (`$1`, `$2`) from one active row with enough free units, the first
/// from row `$4 mod shards` on that no other transaction holds. The row is picked by a scalar
/// subquery (evaluated once) and the condition re-checked on the row updated.
const TAKE_SKIPPING: &str = "UPDATE stock_counters c SET free = c.free - $3, held = c.held + $3 \
     WHERE c.sku = $1 AND c.location = $2 AND c.free >= $3 AND c.shard = \
         (SELECT k.shard FROM stock_counters k, \
                 (SELECT shards FROM stock WHERE sku = $1 AND location = $2) n \
          WHERE k.sku = $1 AND k.location = $2 AND k.active AND k.free >= $3 \
          ORDER BY (k.shard + n.shards - $4 % n.shards) % n.shards \
          LIMIT 1 FOR UPDATE OF k SKIP LOCKED) \
     RETURNING c.shard";

/// [`TAKE_SKIPPING`], waiting for a held row instead of skipping it (a row that no longer has
/// enough once its holder commits is passed over).
const TAKE_WAITING: &str = "UPDATE stock_counters c SET free = c.free - $3, held = c.held + $3 \
     WHERE c.sku = $1 AND c.location = $2 AND c.free >= $3 AND c.shard = \
         (SELECT k.shard FROM stock_counters k, \
                 (SELECT shards FROM stock WHERE sku = $1 AND location = $2) n \
          WHERE k.sku = $1 AND k.location = $2 AND k.active AND k.free >= $3 \
          ORDER BY (k.shard + n.shards - $4 % n.shards) % n.shards \
          LIMIT 1 FOR UPDATE OF k) \
     RETURNING c.shard";

/// Units of `key` in holds that are `held` but past their expiry at `now`: free already.
const DUE_UNITS: &str = "SELECT COALESCE(SUM((t->>'quantity')::bigint), 0)::bigint \
     FROM holds h, jsonb_array_elements(h.takes) t \
     WHERE h.status = 'held' AND h.expires_at <= $3 AND h.takes @> $4 \
       AND t->>'sku' = $1 AND t->>'location' = $2";

/// Finalizes `hold` as `to` (committed, released or expired) and writes its events.
async fn finish(
    tx: &mut PgConnection,
    row: &HoldRow,
    to: HoldStatus,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Vec<DomainEvent>> {
    let mut events = Vec::new();
    if to == HoldStatus::Committed {
        // Held units become committed on the rows they came from: no share changes, so no
        // other row is locked. Availability does not change either.
        for t in &row.takes {
            sqlx::query(
                "UPDATE stock_counters SET held = held - $4, committed = committed + $4 \
                 WHERE sku = $1 AND location = $2 AND shard = $3",
            )
            .bind(&t.sku)
            .bind(&t.location)
            .bind(t.shard)
            .bind(t.quantity)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        for key in row.keys() {
            let level = read_level(&mut *tx, &key, now).await?;
            events.extend(rules::events(
                &key,
                level.available,
                &StockRow {
                    on_hand: level.on_hand,
                    held: level.held,
                    committed: level.committed,
                    config: StockConfig {
                        safety_stock: level.safety_stock,
                        backorder_limit: level.backorder_limit,
                        ..StockConfig::default()
                    },
                },
            ));
        }
    } else {
        for key in row.keys() {
            let mut locked = lock_key(tx, &key).await?;
            let before = locked.row().available();
            for t in row
                .takes
                .iter()
                .filter(|t| t.sku == key.sku.as_str() && t.location == key.location.as_str())
            {
                let c = locked
                    .counters
                    .iter_mut()
                    .find(|c| c.shard == t.shard)
                    .ok_or_else(|| port(error::corrupt("hold takes", "unknown counter row")))?;
                c.held -= t.quantity;
            }
            save_key(tx, &key, &mut locked).await?;
            if rules::hold_return_emits(before) {
                events.extend(rules::events(&key, before, &locked.row()));
            }
        }
    }
    sqlx::query("UPDATE holds SET status = $2, finished_at = $3 WHERE id = $1")
        .bind(row.hold.id.as_str())
        .bind(to.as_str())
        .bind(at)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    write_events(
        tx,
        &envelopes(&Origin::Hold(&row.hold.id, to, at), now, &events),
    )
    .await
    .map_err(port)?;
    Ok(events)
}

/// Finalizes every hold of `key` that expired by `now` (waiting for any another transaction
/// is finalizing), so the counts the caller then locks are exact.
async fn expire_due(
    tx: &mut PgConnection,
    key: &StockKey,
    now: DateTime<Utc>,
) -> Result<Vec<DomainEvent>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {HOLD_COLUMNS} FROM holds \
         WHERE status = 'held' AND expires_at <= $1 AND takes @> $2 ORDER BY id FOR UPDATE"
    )))
    .bind(now)
    .bind(touches(key))
    .fetch_all(&mut *tx)
    .await
    .map_err(db)?;
    let mut events = Vec::new();
    for r in &rows {
        let row = HoldRow::from_row(r)?;
        let at = row.hold.expires_at;
        events.extend(finish(tx, &row, HoldStatus::Expired, at, now).await?);
    }
    Ok(events)
}

/// The level of `key` at `now`, in one statement (holds past their expiry count as free).
async fn read_level<'e, E>(ex: E, key: &StockKey, now: DateTime<Utc>) -> Result<StockLevel>
where
    E: sqlx::Executor<'e, Database = Pg>,
{
    let sql = format!(
        "SELECT s.on_hand, s.safety_stock, s.backorder_limit, s.shards, \
                c.held::bigint AS held, c.committed::bigint AS committed, ({DUE_UNITS}) AS due \
         FROM stock s, LATERAL (SELECT COALESCE(SUM(held), 0) AS held, \
                                       COALESCE(SUM(committed), 0) AS committed \
                                FROM stock_counters k \
                                WHERE k.sku = s.sku AND k.location = s.location) c \
         WHERE s.sku = $1 AND s.location = $2"
    );
    let r = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(key.sku.as_str())
        .bind(key.location.as_str())
        .bind(now)
        .bind(touches(key))
        .fetch_optional(ex)
        .await
        .map_err(db)?
        .ok_or_else(|| Error::UnknownStock(key.clone()))?;
    let due: i64 = r.try_get("due").map_err(db)?;
    let on_hand: i64 = r.try_get("on_hand").map_err(db)?;
    let held: i64 = r.try_get::<i64, _>("held").map_err(db)? - due;
    let committed: i64 = r.try_get("committed").map_err(db)?;
    let safety_stock: i64 = r.try_get("safety_stock").map_err(db)?;
    Ok(StockLevel {
        on_hand,
        held,
        committed,
        safety_stock,
        backorder_limit: r.try_get("backorder_limit").map_err(db)?,
        available: on_hand - held - committed - safety_stock,
        shards: count(r.try_get("shards").map_err(db)?),
    })
}

/// Claims movement key `key` for `fingerprint`: false if it was applied before (nothing to
/// do), an error if it was applied to another movement.
async fn claim_movement(
    tx: &mut PgConnection,
    key: &IdempotencyKey,
    fingerprint: &str,
) -> Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO stock_movement_keys (key, fingerprint) VALUES ($1, $2) \
         ON CONFLICT (key) DO NOTHING",
    )
    .bind(key.as_str())
    .bind(fingerprint)
    .execute(&mut *tx)
    .await
    .map_err(db)?
    .rows_affected();
    if inserted == 1 {
        return Ok(true);
    }
    let stored: String =
        sqlx::query_scalar("SELECT fingerprint FROM stock_movement_keys WHERE key = $1")
            .bind(key.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
    if stored == fingerprint {
        Ok(false)
    } else {
        Err(Error::Invalid {
            field: "movement",
            reason: format!("key {key} was used for another movement"),
        })
    }
}

async fn log_movements(tx: &mut PgConnection, entries: &[Movement]) -> Result<()> {
    for m in entries {
        sqlx::query(
            "INSERT INTO stock_movements \
             (key, sku, location, on_hand_delta, committed_delta, reason, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(m.key.as_str())
        .bind(m.stock.sku.as_str())
        .bind(m.stock.location.as_str())
        .bind(m.on_hand_delta)
        .bind(m.committed_delta)
        .bind(&m.reason)
        .bind(m.at)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    }
    Ok(())
}

/// Runs `attempt` again while the server rolled it back (serialization failure, deadlock,
/// a connection it ended), up to [`super::TX_ATTEMPTS`] times.
async fn retried<T, F, Fut>(mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut n = 0;
    loop {
        match attempt().await {
            Err(Error::Port(e))
                if n + 1 < super::TX_ATTEMPTS && error::retry(&e) && is_rolled_back(&e) =>
            {
                n += 1;
                tokio::time::sleep(std::time::Duration::from_millis(5 * n as u64)).await;
            }
            other => return other,
        }
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> Error {
    Error::Invalid {
        field,
        reason: reason.into(),
    }
}

/// What an attempt at a new hold came to.
enum Reserved {
    /// Made.
    Held(Hold),
    /// The id is taken (another call created it first): this attempt's takes roll back.
    Taken,
    /// Every row with enough units is held by another transaction, and the attempt was not
    /// to wait: it rolls back.
    Contended,
}

/// Whether a reservation may wait for a counter row another transaction holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// In a transaction of its own, holding no other row: it may wait (and take the slow
    /// path).
    Yes,
    /// It gives up instead ([`Reserved::Contended`]): a first try alone.
    No,
    /// A unit of a batch: it may wait for a counter row (the batch's `lock_timeout` bounds
    /// the wait, as the batch's earlier units may hold rows the row's holder waits for), but
    /// never takes the slow path, which locks the key's `stock` row after its counter rows.
    InBatch,
}

/// One attempt at a new hold, in a transaction of its own or as a unit of group commit.
async fn try_reserve(
    conn: &mut PgConnection,
    hold: &HoldId,
    demand: &[(StockKey, i64)],
    lines: &[StockLine],
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
    wait: Wait,
) -> Result<UnitOutcome<Reserved>> {
    let start = start_of(hold);
    let tx = conn;
    let mut takes = Vec::with_capacity(demand.len());
    for (key, quantity) in demand {
        // The hot path: one conditional UPDATE of one row with enough free units, first
        // among the rows no one holds, then (contended, as on a one-row key) waiting for
        // the first row that has them — or, when not to wait, giving up.
        let mut shard = None;
        let takes_tried: &[&str] = if wait == Wait::No {
            &[TAKE_SKIPPING]
        } else {
            &[TAKE_SKIPPING, TAKE_WAITING]
        };
        for take in takes_tried.iter().copied() {
            shard = sqlx::query_scalar(take)
                .bind(key.sku.as_str())
                .bind(key.location.as_str())
                .bind(*quantity)
                .bind(int(start % 64))
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
            if shard.is_some() {
                break;
            }
        }
        let shard = match shard {
            Some(s) => s,
            None if wait != Wait::Yes => return Ok(UnitOutcome::Rollback(Reserved::Contended)),
            None => {
                // The slow path: exact counts under the key's locks.
                let _ = expire_due(tx, key, now).await?;
                let mut locked = lock_key(tx, key).await?;
                let _ = rules::reserve(key, &locked.row(), *quantity)?;
                let shard = locked.take(*quantity, start);
                save_key(tx, key, &mut locked).await?;
                shard
            }
        };
        takes.push(Take {
            sku: key.sku.as_str().to_owned(),
            location: key.location.as_str().to_owned(),
            shard,
            quantity: *quantity,
        });
    }
    let inserted = sqlx::query(
        "INSERT INTO holds (id, status, expires_at, owner, lines, takes, created_at) \
         VALUES ($1, 'held', $2, NULL, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
    )
    .bind(hold.as_str())
    .bind(lease_end(expires_at))
    .bind(json(&lines)?)
    .bind(json(&takes)?)
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(db)?
    .rows_affected();
    if inserted == 0 {
        // Another call created it first: ours rolls back.
        return Ok(UnitOutcome::Rollback(Reserved::Taken));
    }
    Ok(UnitOutcome::Commit(Reserved::Held(Hold {
        id: hold.clone(),
        lines: lines.to_vec(),
        status: HoldStatus::Held,
        expires_at: lease_end(expires_at),
        owner: None,
    })))
}

/// One attempt at a hold operation, as a unit of group commit: the answer is committed with
/// the batch, a refusal after finalizing an expired hold included.
async fn try_hold_op(
    tx: &mut PgConnection,
    id: &HoldId,
    op: HoldOp<'_>,
    now: DateTime<Utc>,
) -> Result<UnitOutcome<Result<(Hold, Vec<DomainEvent>, bool)>>> {
    let row = load_hold(tx, id, true)
        .await?
        .ok_or_else(|| Error::UnknownHold(id.clone()))?;
    match rules::decide(row.hold.state(), op, now)? {
        HoldAction::Unchanged => Ok(UnitOutcome::Rollback(Ok((row.hold, Vec::new(), false)))),
        HoldAction::ExpireThenRefuse => {
            let at = row.hold.expires_at;
            let _ = finish(tx, &row, HoldStatus::Expired, at, now).await?;
            // The expiry is kept; the caller hears why its operation was refused.
            Ok(UnitOutcome::Commit(Err(Error::HoldExpired(id.clone()))))
        }
        HoldAction::Apply => {
            let mut hold = row.hold.clone();
            let mut events = Vec::new();
            match op {
                HoldOp::Extend { expires_at } => {
                    hold.expires_at = lease_end(expires_at);
                    sqlx::query("UPDATE holds SET expires_at = $2 WHERE id = $1")
                        .bind(id.as_str())
                        .bind(hold.expires_at)
                        .execute(&mut *tx)
                        .await
                        .map_err(db)?;
                }
                HoldOp::Pin | HoldOp::Adopt { .. } => {
                    if let HoldOp::Adopt { owner } = op {
                        hold.owner = Some(owner.to_owned());
                    }
                    sqlx::query("UPDATE holds SET status = 'pinned', owner = $2 WHERE id = $1")
                        .bind(id.as_str())
                        .bind(hold.owner.as_deref())
                        .execute(&mut *tx)
                        .await
                        .map_err(db)?;
                }
                HoldOp::Commit | HoldOp::Release | HoldOp::ReleaseOwned { .. } => {
                    let to = rules::status_after(op);
                    events = finish(tx, &row, to, now, now).await?;
                }
                HoldOp::Expire => {
                    let at = row.hold.expires_at;
                    events = finish(tx, &row, HoldStatus::Expired, at, now).await?;
                }
                HoldOp::Reserve { .. } => {}
            }
            hold.status = rules::status_after(op);
            Ok(UnitOutcome::Commit(Ok((hold, events, true))))
        }
    }
}

/// A [`HoldOp`] that owns its text, to travel to a group-commit worker.
enum OwnedOp {
    Reserve(bool),
    Extend(DateTime<Utc>),
    Pin,
    Adopt(String),
    Commit,
    Release,
    ReleaseOwned(String),
    Expire,
}

impl OwnedOp {
    fn of(op: HoldOp<'_>) -> OwnedOp {
        match op {
            HoldOp::Reserve { same_lines } => OwnedOp::Reserve(same_lines),
            HoldOp::Extend { expires_at } => OwnedOp::Extend(expires_at),
            HoldOp::Pin => OwnedOp::Pin,
            HoldOp::Adopt { owner } => OwnedOp::Adopt(owner.to_owned()),
            HoldOp::Commit => OwnedOp::Commit,
            HoldOp::Release => OwnedOp::Release,
            HoldOp::ReleaseOwned { owner } => OwnedOp::ReleaseOwned(owner.to_owned()),
            HoldOp::Expire => OwnedOp::Expire,
        }
    }

    fn as_op(&self) -> HoldOp<'_> {
        match self {
            OwnedOp::Reserve(same_lines) => HoldOp::Reserve {
                same_lines: *same_lines,
            },
            OwnedOp::Extend(expires_at) => HoldOp::Extend {
                expires_at: *expires_at,
            },
            OwnedOp::Pin => HoldOp::Pin,
            OwnedOp::Adopt(owner) => HoldOp::Adopt { owner },
            OwnedOp::Commit => HoldOp::Commit,
            OwnedOp::Release => HoldOp::Release,
            OwnedOp::ReleaseOwned(owner) => HoldOp::ReleaseOwned { owner },
            OwnedOp::Expire => HoldOp::Expire,
        }
    }
}

/// One key's step of a movement: its locked rows and the availability before.
struct Step {
    key: StockKey,
    locked: Locked,
    before: i64,
}

impl PgStockStore {
    pub(crate) fn new(pg: Postgres) -> Self {
        PgStockStore {
            pg,
            contended: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Whether `key` was found contended lately (counting this reservation against it).
    fn lately_contended(&self, key: Option<&(String, String)>) -> bool {
        let Some(key) = key else { return false };
        let mut map = self
            .contended
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match map.get_mut(key) {
            Some(left) if *left > 1 => {
                *left -= 1;
                true
            }
            Some(_) => {
                // Its turn to try alone again.
                let _ = map.remove(key);
                false
            }
            None => false,
        }
    }

    fn found_contended(&self, key: Option<&(String, String)>) {
        if let Some(key) = key {
            let mut map = self
                .contended
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let _ = map.insert(key.clone(), CONTENDED_FOR);
        }
    }

    async fn begin(&self) -> Result<Tx> {
        self.pg.primary().begin().await.map_err(db)
    }

    /// Locks every key of `demand` (after finalizing its expired holds), in key order.
    async fn lock_all(
        tx: &mut PgConnection,
        demand: &[(StockKey, i64)],
        now: DateTime<Utc>,
    ) -> Result<(Vec<Step>, Vec<DomainEvent>)> {
        let mut expired = Vec::new();
        for (key, _) in demand {
            expired.extend(expire_due(tx, key, now).await?);
        }
        let mut steps = Vec::with_capacity(demand.len());
        for (key, _) in demand {
            let locked = lock_key(tx, key).await?;
            let before = locked.row().available();
            steps.push(Step {
                key: key.clone(),
                locked,
                before,
            });
        }
        Ok((steps, expired))
    }

    /// The answer to reserving `hold` again: the stored hold, or why not.
    async fn existing(
        &self,
        hold: &HoldId,
        demand: &[(StockKey, i64)],
        now: DateTime<Utc>,
    ) -> Result<Option<Hold>> {
        let mut conn = self.pg.primary().acquire().await.map_err(db)?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {HOLD_COLUMNS} FROM holds WHERE id = $1"
        )))
        .bind(hold.as_str())
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?;
        let Some(row) = row.as_ref().map(HoldRow::from_row).transpose()? else {
            return Ok(None);
        };
        let same_lines = row
            .hold
            .lines
            .iter()
            .map(|l| (&l.key, l.quantity))
            .eq(demand.iter().map(|(k, q)| (k, *q)));
        let _ = rules::decide(row.hold.state(), HoldOp::Reserve { same_lines }, now)?;
        Ok(Some(row.hold))
    }

    /// Carries out `op` on `id` by the rules, as a unit of group commit. Returns the hold
    /// after it and the events.
    async fn hold_op(
        &self,
        id: &HoldId,
        op: HoldOp<'_>,
        now: DateTime<Utc>,
    ) -> Result<(Hold, Vec<DomainEvent>, bool)> {
        // Operations that commit units or give them back lock the key's rows (its `stock`
        // row, then its counter rows, waiting for them): in a transaction of their own, as a
        // batch's units never wait for a lock. The others lock only the hold's own row.
        let counted = matches!(
            op,
            HoldOp::Commit | HoldOp::Release | HoldOp::ReleaseOwned { .. } | HoldOp::Expire
        );
        retried(|| {
            let (id, op) = (id.clone(), OwnedOp::of(op));
            let unit = unit(move |conn| {
                async move { try_hold_op(conn, &id, op.as_op(), now).await }.boxed()
            });
            let pool = self.pg.primary();
            let combiner = self.pg.combiner();
            async move {
                if counted {
                    alone(pool, unit).await
                } else {
                    combiner.run(unit).await
                }
            }
        })
        .await?
    }

    /// A movement changing on-hand units of one key.
    async fn move_on_hand(
        &self,
        movement: &IdempotencyKey,
        key: &StockKey,
        fingerprint: String,
        reason: String,
        now: DateTime<Utc>,
        rule: impl Fn(&StockRow) -> Result<rules::Delta>,
    ) -> Result<Changes> {
        retried(|| async {
            let mut tx = self.begin().await?;
            let (mut steps, _) = Self::lock_all(&mut tx, &[(key.clone(), 0)], now).await?;
            if !claim_movement(&mut tx, movement, &fingerprint).await? {
                return Ok(Changes::default());
            }
            let step = &mut steps[0];
            let delta = rule(&step.locked.row())?;
            step.locked.on_hand += delta.on_hand;
            save_key(&mut tx, key, &mut step.locked).await?;
            let events = rules::events(key, step.before, &step.locked.row());
            log_movements(
                &mut tx,
                &[Movement {
                    key: movement.clone(),
                    stock: key.clone(),
                    on_hand_delta: delta.on_hand,
                    committed_delta: 0,
                    reason: reason.clone(),
                    at: now,
                }],
            )
            .await?;
            write_events(
                &mut tx,
                &envelopes(&Origin::Movement(movement), now, &events),
            )
            .await
            .map_err(port)?;
            commit(tx).await.map_err(port)?;
            Ok(Changes { events })
        })
        .await
    }

    /// A movement of committed units (ship, uncommit) over several keys.
    async fn move_committed(
        &self,
        movement: &IdempotencyKey,
        lines: &[StockLine],
        op: &'static str,
        now: DateTime<Utc>,
        rule: fn(&StockRow, i64) -> Result<rules::Delta>,
    ) -> Result<Changes> {
        let demand = demand(lines)?;
        let fingerprint = format!("{op}|{demand:?}");
        retried(|| async {
            let mut tx = self.begin().await?;
            let (mut steps, _) = Self::lock_all(&mut tx, &demand, now).await?;
            if !claim_movement(&mut tx, movement, &fingerprint).await? {
                return Ok(Changes::default());
            }
            let mut events = Vec::new();
            let mut log = Vec::new();
            for (step, (_, q)) in steps.iter_mut().zip(&demand) {
                let delta = rule(&step.locked.row(), *q).map_err(|e| match e {
                    Error::Invalid { field, reason } => Error::Invalid {
                        field,
                        reason: format!("{}: {reason}", step.key),
                    },
                    other => other,
                })?;
                step.locked.on_hand += delta.on_hand;
                // Committed units leave the rows holding the most first.
                let mut left = -delta.committed;
                let mut order: Vec<usize> = (0..step.locked.counters.len()).collect();
                order.sort_by_key(|&i| std::cmp::Reverse(step.locked.counters[i].committed));
                for i in order {
                    let c = &mut step.locked.counters[i];
                    let out = c.committed.min(left);
                    c.committed -= out;
                    left -= out;
                }
                save_key(&mut tx, &step.key, &mut step.locked).await?;
                events.extend(rules::events(&step.key, step.before, &step.locked.row()));
                log.push(Movement {
                    key: movement.clone(),
                    stock: step.key.clone(),
                    on_hand_delta: delta.on_hand,
                    committed_delta: delta.committed,
                    reason: op.to_owned(),
                    at: now,
                });
            }
            log_movements(&mut tx, &log).await?;
            write_events(
                &mut tx,
                &envelopes(&Origin::Movement(movement), now, &events),
            )
            .await
            .map_err(port)?;
            commit(tx).await.map_err(port)?;
            Ok(Changes { events })
        })
        .await
    }
}

#[async_trait]
impl StockLevels for PgStockStore {
    async fn level(&self, key: &StockKey, now: DateTime<Utc>) -> Result<StockLevel> {
        read_level(self.pg.primary(), key, now).await
    }

    async fn available(&self, key: &StockKey, now: DateTime<Utc>) -> Result<i64> {
        Ok(read_level(self.pg.primary(), key, now).await?.available)
    }

    async fn hold(&self, hold: &HoldId) -> Result<Option<Hold>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {HOLD_COLUMNS} FROM holds WHERE id = $1"
        )))
        .bind(hold.as_str())
        .fetch_optional(self.pg.primary())
        .await
        .map_err(db)?;
        Ok(row
            .as_ref()
            .map(HoldRow::from_row)
            .transpose()?
            .map(|r| r.hold))
    }

    async fn movements(&self, key: &StockKey) -> Result<Vec<Movement>> {
        let rows = sqlx::query(
            "SELECT key, on_hand_delta, committed_delta, reason, at FROM stock_movements \
             WHERE sku = $1 AND location = $2 ORDER BY seq",
        )
        .bind(key.sku.as_str())
        .bind(key.location.as_str())
        .fetch_all(self.pg.primary())
        .await
        .map_err(db)?;
        rows.iter()
            .map(|r| {
                let k: String = r.try_get("key").map_err(db)?;
                Ok(Movement {
                    key: IdempotencyKey::new(&k)
                        .map_err(|e| port(error::corrupt("movement key", e)))?,
                    stock: key.clone(),
                    on_hand_delta: r.try_get("on_hand_delta").map_err(db)?,
                    committed_delta: r.try_get("committed_delta").map_err(db)?,
                    reason: r.try_get("reason").map_err(db)?,
                    at: r.try_get("at").map_err(db)?,
                })
            })
            .collect()
    }

    async fn keys(&self) -> Result<Vec<StockKey>> {
        let rows = sqlx::query("SELECT sku, location FROM stock ORDER BY sku, location")
            .fetch_all(self.pg.primary())
            .await
            .map_err(db)?;
        rows.iter()
            .map(|r| {
                let sku: String = r.try_get("sku").map_err(db)?;
                let location: String = r.try_get("location").map_err(db)?;
                Ok(StockKey::new(
                    commerce_core::Sku::new(&sku).map_err(|e| port(error::corrupt("sku", e)))?,
                    commerce_core::LocationId::new(&location)
                        .map_err(|e| port(error::corrupt("location", e)))?,
                ))
            })
            .collect()
    }
}

#[async_trait]
impl StockMovements for PgStockStore {
    async fn configure(&self, key: &StockKey, config: StockConfig) -> Result<()> {
        config.validate()?;
        retried(|| async {
            let mut tx = self.begin().await?;
            let created = sqlx::query(
                "INSERT INTO stock (sku, location, on_hand, safety_stock, backorder_limit, \
                                    mode, shards, shards_max) \
                 VALUES ($1, $2, 0, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
            )
            .bind(key.sku.as_str())
            .bind(key.location.as_str())
            .bind(config.safety_stock)
            .bind(config.backorder_limit)
            .bind(mode_name(config.mode))
            .bind(int(config.shards))
            .bind(int(config.shards_max))
            .execute(&mut *tx)
            .await
            .map_err(db)?
            .rows_affected()
                == 1;
            if created {
                let shards: Vec<i32> = (0..int(config.shards_max)).collect();
                sqlx::query(
                    "INSERT INTO stock_counters \
                     (sku, location, shard, active, free, held, committed) \
                     SELECT $1, $2, s, FALSE, 0, 0, 0 FROM UNNEST($3::int[]) AS s",
                )
                .bind(key.sku.as_str())
                .bind(key.location.as_str())
                .bind(&shards)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            }
            let mut locked = lock_key(&mut tx, key).await?;
            if config.shards_max != locked.config.shards_max {
                return Err(invalid("shards_max", "is fixed once the stock exists"));
            }
            locked.config = config;
            save_key(&mut tx, key, &mut locked).await?;
            commit(tx).await.map_err(port)?;
            Ok(())
        })
        .await
    }

    async fn receive(
        &self,
        movement: &IdempotencyKey,
        key: &StockKey,
        quantity: i64,
        now: DateTime<Utc>,
    ) -> Result<Changes> {
        let delta = rules::receive(quantity)?;
        self.move_on_hand(
            movement,
            key,
            format!("receive|{key}|{quantity}"),
            "receive".into(),
            now,
            move |_| Ok(delta),
        )
        .await
    }

    async fn set_on_hand(
        &self,
        movement: &IdempotencyKey,
        key: &StockKey,
        counted: i64,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Changes> {
        let _ = rules::set_on_hand(&StockRow::new(StockConfig::default()), counted)?;
        self.move_on_hand(
            movement,
            key,
            format!("set_on_hand|{key}|{counted}|{reason}"),
            format!("correction: {reason}"),
            now,
            move |row| rules::set_on_hand(row, counted),
        )
        .await
    }

    async fn commit_direct(
        &self,
        movement: &IdempotencyKey,
        lines: &[StockLine],
        policy: ShortfallPolicy,
        now: DateTime<Utc>,
    ) -> Result<DirectCommit> {
        let demand = demand(lines)?;
        let fingerprint = format!("commit_direct|{policy:?}|{demand:?}");
        retried(|| async {
            let mut tx = self.begin().await?;
            let (mut steps, _) = Self::lock_all(&mut tx, &demand, now).await?;
            if !claim_movement(&mut tx, movement, &fingerprint).await? {
                return Ok(DirectCommit::default());
            }
            let mut shortfalls = Vec::new();
            let mut events = Vec::new();
            let mut log = Vec::new();
            for (step, (key, q)) in steps.iter_mut().zip(&demand) {
                let (delta, short) = rules::commit_direct(key, &step.locked.row(), *q, policy)?;
                if short > 0 {
                    shortfalls.push(Shortfall {
                        key: key.clone(),
                        units: short,
                    });
                }
                step.locked.counters[0].committed += delta.committed;
                save_key(&mut tx, key, &mut step.locked).await?;
                events.extend(rules::events(key, step.before, &step.locked.row()));
                log.push(Movement {
                    key: movement.clone(),
                    stock: key.clone(),
                    on_hand_delta: 0,
                    committed_delta: delta.committed,
                    reason: "commit_direct".into(),
                    at: now,
                });
            }
            log_movements(&mut tx, &log).await?;
            write_events(
                &mut tx,
                &envelopes(&Origin::Movement(movement), now, &events),
            )
            .await
            .map_err(port)?;
            commit(tx).await.map_err(port)?;
            Ok(DirectCommit {
                shortfalls,
                changes: Changes { events },
                applied: true,
            })
        })
        .await
    }

    async fn ship(
        &self,
        movement: &IdempotencyKey,
        lines: &[StockLine],
        now: DateTime<Utc>,
    ) -> Result<Changes> {
        self.move_committed(movement, lines, "ship", now, rules::ship)
            .await
    }

    async fn uncommit(
        &self,
        movement: &IdempotencyKey,
        lines: &[StockLine],
        now: DateTime<Utc>,
    ) -> Result<Changes> {
        self.move_committed(movement, lines, "uncommit", now, rules::uncommit)
            .await
    }
}

#[async_trait]
impl HoldStore for PgStockStore {
    async fn reserve(
        &self,
        hold: &HoldId,
        lines: &[StockLine],
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Hold> {
        let demand = demand(lines)?;
        if expires_at <= now {
            return Err(invalid("expires_at", "must be after now"));
        }
        let summed: Vec<StockLine> = demand
            .iter()
            .map(|(key, quantity)| StockLine {
                key: key.clone(),
                quantity: *quantity,
            })
            .collect();
        retried(|| async {
            // A new hold is the common case: try it first, and look for a stored one only
            // when the id turns out to be taken or the units are not there (a repeat of a
            // hold that took the last units is answered with the hold, not refused).
            // First in a transaction of its own that waits for no row: a key with a row no
            // one holds (a sharded hot SKU, any uncontended key) takes it and commits as
            // before. Only when every row with enough units is held by another transaction
            // does it go to the key's group-commit worker, where the reservations of a batch
            // wait for the row once and share its lock and commit.
            let combined = self.pg.combiner().config().enabled;
            let route = demand
                .first()
                .map(|(k, _)| (k.sku.as_str().to_owned(), k.location.as_str().to_owned()));
            let mut attempt = Ok(Reserved::Contended);
            if combined && !self.lately_contended(route.as_ref()) {
                let (h, d, l) = (hold.clone(), demand.clone(), summed.clone());
                attempt = alone(self.pg.primary(), move |conn| {
                    async move { try_reserve(conn, &h, &d, &l, expires_at, now, Wait::No).await }
                        .boxed()
                })
                .await;
                if matches!(attempt, Ok(Reserved::Contended)) {
                    self.found_contended(route.as_ref());
                }
            }
            if combined && matches!(attempt, Ok(Reserved::Contended)) {
                // Reservations of one key share a worker: a batch takes the row once and
                // its units share its lock and commit.
                let (h, d, l) = (hold.clone(), demand.clone(), summed.clone());
                attempt = self
                    .pg
                    .combiner()
                    .run_keyed(&route, move |conn| {
                        async move {
                            try_reserve(conn, &h, &d, &l, expires_at, now, Wait::InBatch).await
                        }
                        .boxed()
                    })
                    .await;
            }
            if matches!(attempt, Ok(Reserved::Contended)) {
                // Every row held by others (or none with enough units): alone, waiting for
                // a row, and by the slow path if no row can serve it.
                let (h, d, l) = (hold.clone(), demand.clone(), summed.clone());
                attempt = alone(self.pg.primary(), move |conn| {
                    async move { try_reserve(conn, &h, &d, &l, expires_at, now, Wait::Yes).await }
                        .boxed()
                })
                .await;
            }
            match attempt {
                Ok(Reserved::Held(h)) => Ok(h),
                Ok(Reserved::Taken | Reserved::Contended) => self
                    .existing(hold, &demand, now)
                    .await?
                    .ok_or_else(|| port(PortError::new(ErrorKind::Unavailable, "hold raced"))),
                Err(e @ (Error::InsufficientStock { .. } | Error::UnknownStock(_))) => {
                    match self.existing(hold, &demand, now).await? {
                        Some(h) => Ok(h),
                        None => Err(e),
                    }
                }
                Err(e) => Err(e),
            }
        })
        .await
    }

    async fn extend(
        &self,
        hold: &HoldId,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Hold> {
        Ok(self
            .hold_op(hold, HoldOp::Extend { expires_at }, now)
            .await?
            .0)
    }

    async fn pin(&self, hold: &HoldId, now: DateTime<Utc>) -> Result<Hold> {
        Ok(self.hold_op(hold, HoldOp::Pin, now).await?.0)
    }

    async fn adopt(&self, hold: &HoldId, owner: &str, now: DateTime<Utc>) -> Result<Hold> {
        Ok(self.hold_op(hold, HoldOp::Adopt { owner }, now).await?.0)
    }

    async fn release_owned(
        &self,
        hold: &HoldId,
        owner: &str,
        now: DateTime<Utc>,
    ) -> Result<Changes> {
        match self
            .hold_op(hold, HoldOp::ReleaseOwned { owner }, now)
            .await
        {
            Ok((_, events, _)) => Ok(Changes { events }),
            // Never adopted here: nothing of this owner's to give back (a compensation for a
            // hold that was never made must succeed).
            Err(Error::UnknownHold(_)) => Ok(Changes::default()),
            Err(e) => Err(e),
        }
    }

    async fn commit(&self, hold: &HoldId, now: DateTime<Utc>) -> Result<Changes> {
        let (_, events, _) = self.hold_op(hold, HoldOp::Commit, now).await?;
        Ok(Changes { events })
    }

    async fn release(&self, hold: &HoldId, now: DateTime<Utc>) -> Result<Changes> {
        let (_, events, _) = self.hold_op(hold, HoldOp::Release, now).await?;
        Ok(Changes { events })
    }

    async fn expire(&self, hold: &HoldId, now: DateTime<Utc>) -> Result<bool> {
        Ok(self.hold_op(hold, HoldOp::Expire, now).await?.2)
    }

    async fn sweep(&self, now: DateTime<Utc>, batch: usize) -> Result<Sweep> {
        let batch = i64::try_from(batch.min(inventory::limits::SWEEP_BATCH_MAX)).unwrap_or(0);
        retried(|| async {
            let mut tx = self.begin().await?;
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {HOLD_COLUMNS} FROM holds WHERE status = 'held' AND expires_at <= $1 \
                 ORDER BY expires_at, id LIMIT $2 FOR UPDATE SKIP LOCKED"
            )))
            .bind(now)
            .bind(batch)
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
            let mut out = Sweep::default();
            // Finalize in key order of their first key, so sweepers lock `stock` rows in order.
            let mut holds: BTreeMap<(Vec<StockKey>, String), HoldRow> = BTreeMap::new();
            for r in &rows {
                let row = HoldRow::from_row(r)?;
                holds.insert((row.keys(), row.hold.id.as_str().to_owned()), row);
            }
            for row in holds.values() {
                let at = row.hold.expires_at;
                out.changes
                    .events
                    .extend(finish(&mut tx, row, HoldStatus::Expired, at, now).await?);
                out.expired.push(row.hold.id.clone());
            }
            commit(tx).await.map_err(port)?;
            Ok(out)
        })
        .await
    }
}
