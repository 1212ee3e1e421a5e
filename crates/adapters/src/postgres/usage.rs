//! Promotion usage on PostgreSQL, in the primary database: limits exact under concurrency.
//!
//! Three tables. `promotion_usage` holds one *tally row* per promotion: reserved or committed
//! uses, and the discount they spent (amount and currency). `promotion_customer_usage` counts
//! uses per customer. `promotion_claims` holds every claim by id: its promotion, its state
//! (`reserved`, `committed`, `released`) and the request as JSONB, so a repeated claim is
//! recognized and a different request under the same id refused.
//!
//! Concurrency: every call that changes a promotion's counts (`reserve`, `release`) first
//! locks that promotion's tally row (`SELECT … FOR UPDATE`, creating the row if needed), then
//! the claim's row, and only then reads the counts, decides with the same rules as the
//! in-memory store, and writes. Reservations of one promotion are therefore serialized on its
//! tally row, and no decision is made on counts another transaction may be changing: twenty
//! checkouts racing for the last use get exactly one. Holding the tally lock also serializes
//! two reservations under one claim id, so the second sees the first and answers `Reserved`
//! without counting twice. The lock order (tally, then claim) is the same everywhere, so
//! reservations and releases never deadlock; `commit` touches only the claim row.
//!
//! What it costs: one promotion's reservations queue on one row, which is what an exact limit
//! means; different promotions never wait for each other.

use cart_engine::{
    ClaimOutcome, ClaimRequest, LimitReached, PromotionId, PromotionUsageStore, Usage,
};
use commerce_core::{Currency, ErrorKind, IdempotencyKey, Money, PortError, PortResult};
use futures::FutureExt;
use sqlx::PgConnection;
use sqlx::types::Decimal;

use super::{Postgres, UnitOutcome, error, with_retries};

/// The [`PromotionUsageStore`] on PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgUsageStore {
    pg: Postgres,
}

/// How many times `release` looks a claim up again when it moved to another promotion while
/// it waited for the lock (a released claim reserved afresh for another promotion).
const RELEASE_ATTEMPTS: usize = 3;

/// One promotion's counts, read under its tally lock.
#[derive(Debug)]
struct Tally {
    uses: u32,
    spent: Option<Money>,
}

impl Tally {
    /// The tally with one more use of `request`, or why it cannot be counted.
    fn add(&self, request: &ClaimRequest) -> PortResult<Tally> {
        let spent = match self.spent {
            None => request.discount,
            Some(s) => s.checked_add(&request.discount).map_err(PortError::from)?,
        };
        let uses = self
            .uses
            .checked_add(1)
            .ok_or_else(|| error::too_large("promotion uses"))?;
        Ok(Tally {
            uses,
            spent: Some(spent),
        })
    }

    /// The tally with one use of `request` given back.
    fn remove(&self, request: &ClaimRequest) -> Tally {
        Tally {
            uses: self.uses.saturating_sub(1),
            spent: self
                .spent
                .and_then(|s| s.checked_sub(&request.discount).ok()),
        }
    }

    /// The limit `request` would break, if any: the in-memory store's rules, in its order.
    fn refuses(
        &self,
        request: &ClaimRequest,
        customer_uses: u32,
    ) -> PortResult<Option<LimitReached>> {
        let limits = &request.limits;
        if limits.total.is_some_and(|t| self.uses >= t) {
            return Ok(Some(LimitReached::Total));
        }
        if limits.per_customer.is_some() && request.customer.is_none() {
            return Ok(Some(LimitReached::CustomerRequired));
        }
        if limits.per_customer.is_some_and(|per| customer_uses >= per) {
            return Ok(Some(LimitReached::PerCustomer));
        }
        if let Some(budget) = &limits.budget {
            let spent = self
                .spent
                .unwrap_or_else(|| Money::zero(budget.currency()))
                .checked_add(&request.discount)
                .map_err(PortError::from)?;
            if spent.amount() > budget.amount() {
                return Ok(Some(LimitReached::Budget));
            }
        }
        Ok(None)
    }
}

impl PgUsageStore {
    pub(crate) fn new(pg: Postgres) -> Self {
        PgUsageStore { pg }
    }
}

/// One attempt at `reserve`, as a unit of group commit.
async fn try_reserve(
    tx: &mut PgConnection,
    request: &ClaimRequest,
) -> PortResult<UnitOutcome<ClaimOutcome>> {
    let tally = lock_tally(tx, &request.promotion_id).await?;
    if let Some((state, stored)) = lock_claim(tx, &request.claim_id).await? {
        if state == "released" {
            // Given back earlier: a retried checkout claims afresh, against the limits.
            sqlx::query("DELETE FROM promotion_claims WHERE claim_id = $1")
                .bind(request.claim_id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(error::db)?;
        } else if stored != *request {
            return Err(other_request(&request.claim_id));
        } else {
            // Already counted: nothing to write.
            return Ok(UnitOutcome::Rollback(ClaimOutcome::Reserved));
        }
    }
    if request.discount.is_negative() {
        return Err(PortError::new(ErrorKind::Invalid, "negative discount"));
    }
    let customer_uses = match &request.customer {
        Some(c) => {
            let n: Option<i64> = sqlx::query_scalar(
                "SELECT uses FROM promotion_customer_usage \
                     WHERE promotion_id = $1 AND customer = $2",
            )
            .bind(request.promotion_id.as_str())
            .bind(c.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(error::db)?;
            count(n.unwrap_or(0))?
        }
        None => 0,
    };
    if let Some(limit) = tally.refuses(request, customer_uses)? {
        // A refusal stores nothing: the same claim may succeed once another is released.
        return Ok(UnitOutcome::Rollback(ClaimOutcome::LimitReached(limit)));
    }
    let next = tally.add(request)?;
    write_tally(tx, &request.promotion_id, &next).await?;
    if let Some(c) = &request.customer {
        sqlx::query(
            "INSERT INTO promotion_customer_usage (promotion_id, customer, uses) \
                 VALUES ($1, $2, 1) ON CONFLICT (promotion_id, customer) \
                 DO UPDATE SET uses = promotion_customer_usage.uses + 1",
        )
        .bind(request.promotion_id.as_str())
        .bind(c.as_str())
        .execute(&mut *tx)
        .await
        .map_err(error::db)?;
    }
    let body =
        serde_json::to_value(request).map_err(|e| PortError::caused_by(ErrorKind::Internal, e))?;
    let inserted = sqlx::query(
        "INSERT INTO promotion_claims (claim_id, promotion_id, state, request) \
             VALUES ($1, $2, 'reserved', $3)",
    )
    .bind(request.claim_id.as_str())
    .bind(request.promotion_id.as_str())
    .bind(body)
    .execute(&mut *tx)
    .await;
    match inserted {
        Ok(_) => {}
        // The same id claimed at once for another promotion (whose tally we do not hold).
        Err(e) => {
            let e = error::db(e);
            return Err(if e.kind == ErrorKind::Conflict {
                other_request(&request.claim_id)
            } else {
                e
            });
        }
    }
    Ok(UnitOutcome::Commit(ClaimOutcome::Reserved))
}

/// One attempt at `commit`, as a unit of group commit.
async fn try_commit(
    tx: &mut PgConnection,
    claim_id: &IdempotencyKey,
) -> PortResult<UnitOutcome<()>> {
    let state: Option<String> = sqlx::query_scalar(
        "UPDATE promotion_claims SET state = 'committed' \
             WHERE claim_id = $1 AND state IN ('reserved', 'committed') RETURNING state",
    )
    .bind(claim_id.as_str())
    .fetch_optional(&mut *tx)
    .await
    .map_err(error::db)?;
    if state.is_none() {
        let stored: Option<String> =
            sqlx::query_scalar("SELECT state FROM promotion_claims WHERE claim_id = $1")
                .bind(claim_id.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(error::db)?;
        return Err(match stored {
            None => PortError::new(ErrorKind::NotFound, format!("claim {claim_id}")),
            Some(_) => PortError::new(
                ErrorKind::Conflict,
                format!("claim {claim_id} was released"),
            ),
        });
    }
    Ok(UnitOutcome::Commit(()))
}

/// One attempt at releasing: `Ok(false)` when the claim moved to another promotion
/// between looking it up and locking it.
async fn try_release(
    tx: &mut PgConnection,
    claim_id: &IdempotencyKey,
) -> PortResult<UnitOutcome<bool>> {
    let promotion: Option<String> =
        sqlx::query_scalar("SELECT promotion_id FROM promotion_claims WHERE claim_id = $1")
            .bind(claim_id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(error::db)?;
    let Some(promotion) = promotion else {
        return Err(PortError::new(
            ErrorKind::NotFound,
            format!("claim {claim_id}"),
        ));
    };
    let promotion = PromotionId::new(&promotion).map_err(|e| error::corrupt("promotion id", e))?;
    let tally = lock_tally(tx, &promotion).await?;
    let Some((state, request)) = lock_claim(tx, claim_id).await? else {
        return Ok(UnitOutcome::Rollback(false));
    };
    if request.promotion_id != promotion {
        return Ok(UnitOutcome::Rollback(false));
    }
    if state != "released" {
        sqlx::query("UPDATE promotion_claims SET state = 'released' WHERE claim_id = $1")
            .bind(claim_id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(error::db)?;
        write_tally(tx, &promotion, &tally.remove(&request)).await?;
        if let Some(c) = &request.customer {
            sqlx::query(
                "UPDATE promotion_customer_usage SET uses = greatest(uses - 1, 0) \
                     WHERE promotion_id = $1 AND customer = $2",
            )
            .bind(promotion.as_str())
            .bind(c.as_str())
            .execute(&mut *tx)
            .await
            .map_err(error::db)?;
        }
    }
    Ok(UnitOutcome::Commit(true))
}

/// Locks `promotion`'s tally row (creating it at zero) and reads it.
async fn lock_tally(tx: &mut PgConnection, promotion: &PromotionId) -> PortResult<Tally> {
    sqlx::query(
        "INSERT INTO promotion_usage (promotion_id) VALUES ($1) \
         ON CONFLICT (promotion_id) DO NOTHING",
    )
    .bind(promotion.as_str())
    .execute(&mut *tx)
    .await
    .map_err(error::db)?;
    let (uses, spent, currency): (i64, Option<Decimal>, Option<String>) = sqlx::query_as(
        "SELECT uses, spent, currency FROM promotion_usage WHERE promotion_id = $1 FOR UPDATE",
    )
    .bind(promotion.as_str())
    .fetch_one(&mut *tx)
    .await
    .map_err(error::db)?;
    Ok(Tally {
        uses: count(uses)?,
        spent: money(spent, currency)?,
    })
}

/// Locks the claim's row, if there is one, and reads its state and request.
async fn lock_claim(
    tx: &mut PgConnection,
    claim_id: &IdempotencyKey,
) -> PortResult<Option<(String, ClaimRequest)>> {
    let row: Option<(String, serde_json::Value)> = sqlx::query_as(
        "SELECT state, request FROM promotion_claims WHERE claim_id = $1 FOR UPDATE",
    )
    .bind(claim_id.as_str())
    .fetch_optional(&mut *tx)
    .await
    .map_err(error::db)?;
    row.map(|(state, request)| {
        serde_json::from_value(request)
            .map(|r| (state, r))
            .map_err(|e| error::corrupt("claim", e))
    })
    .transpose()
}

/// Writes a tally computed under its lock.
async fn write_tally(
    tx: &mut PgConnection,
    promotion: &PromotionId,
    tally: &Tally,
) -> PortResult<()> {
    sqlx::query(
        "UPDATE promotion_usage SET uses = $2, spent = $3, currency = $4 WHERE promotion_id = $1",
    )
    .bind(promotion.as_str())
    .bind(i64::from(tally.uses))
    .bind(tally.spent.map(|m| m.amount()))
    .bind(tally.spent.map(|m| m.currency().code().to_owned()))
    .execute(&mut *tx)
    .await
    .map_err(error::db)?;
    Ok(())
}

fn other_request(claim_id: &IdempotencyKey) -> PortError {
    PortError::new(
        ErrorKind::Conflict,
        format!("claim {claim_id} was made for another request"),
    )
}

/// A stored count as the port counts.
fn count(stored: i64) -> PortResult<u32> {
    u32::try_from(stored).map_err(|_| error::corrupt("use count", stored))
}

/// A stored amount and currency as money.
fn money(amount: Option<Decimal>, currency: Option<String>) -> PortResult<Option<Money>> {
    match (amount, currency) {
        (Some(amount), Some(code)) => {
            let currency = Currency::from_code(&code).map_err(|e| error::corrupt("currency", e))?;
            Ok(Some(Money::new(amount, currency)))
        }
        (None, None) => Ok(None),
        _ => Err(error::corrupt("spent", "an amount without a currency")),
    }
}

#[async_trait::async_trait]
impl PromotionUsageStore for PgUsageStore {
    async fn reserve(&self, request: &ClaimRequest) -> PortResult<ClaimOutcome> {
        // Reservations of one promotion share a worker: batches never wait for each other's
        // lock on its tally row.
        let route = request.promotion_id.as_str();
        with_retries(|| {
            let request = request.clone();
            self.pg.combiner().run_keyed(route, move |conn| {
                async move { try_reserve(conn, &request).await }.boxed()
            })
        })
        .await
    }

    async fn commit(&self, claim_id: &IdempotencyKey) -> PortResult<()> {
        with_retries(|| {
            let claim_id = claim_id.clone();
            self.pg
                .combiner()
                .run(move |conn| async move { try_commit(conn, &claim_id).await }.boxed())
        })
        .await
    }

    async fn release(&self, claim_id: &IdempotencyKey) -> PortResult<()> {
        for _ in 0..RELEASE_ATTEMPTS {
            let released = with_retries(|| {
                let claim_id = claim_id.clone();
                self.pg
                    .combiner()
                    .run(move |conn| async move { try_release(conn, &claim_id).await }.boxed())
            })
            .await?;
            if released {
                return Ok(());
            }
        }
        Err(PortError::new(
            ErrorKind::Unavailable,
            format!("claim {claim_id} kept moving between promotions"),
        ))
    }

    async fn usage(&self, promotion_id: &PromotionId) -> PortResult<Usage> {
        let row: Option<(i64, Option<Decimal>, Option<String>)> = sqlx::query_as(
            "SELECT uses, spent, currency FROM promotion_usage WHERE promotion_id = $1",
        )
        .bind(promotion_id.as_str())
        .fetch_optional(self.pg.primary())
        .await
        .map_err(error::db)?;
        let Some((uses, spent, currency)) = row else {
            return Ok(Usage {
                uses: 0,
                spent: None,
            });
        };
        let uses = count(uses)?;
        // As the in-memory store reports it: no spend once every use was given back.
        let spent = money(spent, currency)?.filter(|s| !s.is_zero() || uses > 0);
        Ok(Usage { uses, spent })
    }
}
