//! Orders on PostgreSQL, sharded by customer.
//!
//! One row per order: its id, customer, status, version (the ledger length) and the order as
//! JSONB. A write routes to the customer's shard ([`Postgres::shard_of`]) and commits the row
//! and its events (that shard's outbox) in one transaction. An update locks the row, compares
//! versions, and refuses a snapshot that does not extend the stored order
//! ([`Order::extends`]): loading the stored one replays its ledger through the state machine,
//! so history can only grow. Reading by id asks every shard at once (order ids are the
//! clients' idempotency keys, unique across customers); listing by status merges the shards'
//! pages.

use commerce_core::{
    CasOutcome, ErrorKind, EventEnvelope, Order, OrderId, OrderStatus, OrderStore, PortError,
    PortResult,
};
use futures::FutureExt;
use futures::future::try_join_all;
use sqlx::PgConnection;

use super::{Postgres, UnitOutcome, error, page, with_retries, write_events};

/// The [`OrderStore`] on PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgOrderStore {
    pg: Postgres,
}

impl PgOrderStore {
    pub(crate) fn new(pg: Postgres) -> Self {
        PgOrderStore { pg }
    }

    fn body(order: &Order) -> PortResult<serde_json::Value> {
        serde_json::to_value(order).map_err(|e| PortError::caused_by(ErrorKind::Internal, e))
    }

    fn version(order: &Order) -> PortResult<i64> {
        i64::try_from(order.version()).map_err(|_| error::too_large("order version"))
    }

    /// One attempt at `insert`, as a unit of group commit.
    async fn try_insert(
        tx: &mut PgConnection,
        order: &Order,
        events: &[EventEnvelope],
    ) -> PortResult<UnitOutcome<()>> {
        let inserted = sqlx::query(
            "INSERT INTO orders (id, user_id, status, version, body) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(order.id().as_str())
        .bind(order.user_id().as_str())
        .bind(order.status().as_str())
        .bind(Self::version(order)?)
        .bind(Self::body(order)?)
        .execute(&mut *tx)
        .await
        .map_err(error::db)?;
        if inserted.rows_affected() == 0 {
            return Err(PortError::new(
                ErrorKind::Conflict,
                format!("order {} exists", order.id()),
            ));
        }
        write_events(tx, events).await?;
        Ok(UnitOutcome::Commit(()))
    }

    /// One attempt at `update`, as a unit of group commit.
    async fn try_update(
        tx: &mut PgConnection,
        order: &Order,
        expected_version: u64,
        events: &[EventEnvelope],
    ) -> PortResult<UnitOutcome<CasOutcome>> {
        let stored: Option<(i64, serde_json::Value)> =
            sqlx::query_as("SELECT version, body FROM orders WHERE id = $1 FOR UPDATE")
                .bind(order.id().as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(error::db)?;
        let Some((version, body)) = stored else {
            return Err(PortError::new(
                ErrorKind::NotFound,
                format!("order {}", order.id()),
            ));
        };
        let current = u64::try_from(version).map_err(|_| error::corrupt("version", version))?;
        if current != expected_version {
            return Ok(UnitOutcome::Rollback(CasOutcome::VersionMismatch {
                current,
            }));
        }
        let stored: Order = serde_json::from_value(body).map_err(|e| error::corrupt("order", e))?;
        if !order.extends(&stored) {
            return Err(PortError::new(
                ErrorKind::Conflict,
                format!("order {}: the update rewrites its history", order.id()),
            ));
        }
        sqlx::query("UPDATE orders SET status = $2, version = $3, body = $4 WHERE id = $1")
            .bind(order.id().as_str())
            .bind(order.status().as_str())
            .bind(Self::version(order)?)
            .bind(Self::body(order)?)
            .execute(&mut *tx)
            .await
            .map_err(error::db)?;
        write_events(tx, events).await?;
        Ok(UnitOutcome::Commit(CasOutcome::Committed))
    }
}

#[async_trait::async_trait]
impl OrderStore for PgOrderStore {
    async fn insert(&self, order: Order, events: &[EventEnvelope]) -> PortResult<()> {
        let combiner = self
            .pg
            .combiner_of(self.pg.shard_of(order.user_id().as_str()));
        with_retries(|| {
            let (order, events) = (order.clone(), events.to_vec());
            combiner.run(move |conn| {
                async move { Self::try_insert(conn, &order, &events).await }.boxed()
            })
        })
        .await
    }

    async fn get(&self, id: &OrderId) -> PortResult<Option<Order>> {
        let found = try_join_all(self.pg.pools().iter().map(|pool| async move {
            sqlx::query_scalar::<_, serde_json::Value>("SELECT body FROM orders WHERE id = $1")
                .bind(id.as_str())
                .fetch_optional(pool)
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
                format!("order {id} is stored in two shards"),
            ));
        }
        serde_json::from_value(body)
            .map(Some)
            .map_err(|e| error::corrupt("order", e))
    }

    async fn update(
        &self,
        order: Order,
        expected_version: u64,
        events: &[EventEnvelope],
    ) -> PortResult<CasOutcome> {
        let combiner = self
            .pg
            .combiner_of(self.pg.shard_of(order.user_id().as_str()));
        with_retries(|| {
            let (order, events) = (order.clone(), events.to_vec());
            combiner.run(move |conn| {
                async move { Self::try_update(conn, &order, expected_version, &events).await }
                    .boxed()
            })
        })
        .await
    }

    async fn list_by_status(
        &self,
        status: OrderStatus,
        after: Option<&OrderId>,
        limit: usize,
    ) -> PortResult<Vec<Order>> {
        let after = after.map(OrderId::as_str).unwrap_or("");
        let pages = try_join_all(self.pg.pools().iter().map(|pool| async move {
            sqlx::query_as::<_, (String, serde_json::Value)>(
                "SELECT id, body FROM orders WHERE status = $1 AND id > $2 \
                 ORDER BY id LIMIT $3",
            )
            .bind(status.as_str())
            .bind(after)
            .bind(page(limit))
            .fetch_all(pool)
            .await
            .map_err(error::db)
        }))
        .await?;
        let mut rows: Vec<(String, serde_json::Value)> = pages.into_iter().flatten().collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        rows.truncate(usize::try_from(page(limit)).unwrap_or(0));
        rows.into_iter()
            .map(|(_, body)| serde_json::from_value(body).map_err(|e| error::corrupt("order", e)))
            .collect()
    }
}
