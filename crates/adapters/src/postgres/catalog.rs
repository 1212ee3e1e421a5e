//! The catalog on PostgreSQL (the source of truth for products), in the primary database.
//!
//! One row per product (id, SKU, version, the product as JSONB). `put` locks the product's row
//! (or inserts it), compares versions (a new product is version 1, a change the stored version
//! plus one), and commits the row with its events; a SKU held by another product is `Conflict`
//! (the unique index decides, even between two concurrent puts).

use commerce_core::{
    CasOutcome, CatalogStore, ErrorKind, EventEnvelope, PortError, PortResult, Product, ProductId,
    Sku,
};

use super::{Postgres, commit, error, page, with_retries, write_events};

/// The [`CatalogStore`] on PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgCatalog {
    pg: Postgres,
}

impl PgCatalog {
    pub(crate) fn new(pg: Postgres) -> Self {
        PgCatalog { pg }
    }

    async fn try_put(&self, product: &Product, events: &[EventEnvelope]) -> PortResult<CasOutcome> {
        let mut tx = self.pg.primary().begin().await.map_err(error::db)?;
        let current: Option<i64> =
            sqlx::query_scalar("SELECT version FROM products WHERE id = $1 FOR UPDATE")
                .bind(product.id.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(error::db)?;
        let current = u64::try_from(current.unwrap_or(0)).unwrap_or(0);
        if product.version != current + 1 {
            return Ok(CasOutcome::VersionMismatch { current });
        }
        let body = serde_json::to_value(product)
            .map_err(|e| PortError::caused_by(ErrorKind::Internal, e))?;
        let version =
            i64::try_from(product.version).map_err(|_| error::too_large("product version"))?;
        let written = sqlx::query(
            "INSERT INTO products (id, sku, version, body) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO UPDATE SET sku = EXCLUDED.sku, version = EXCLUDED.version, \
             body = EXCLUDED.body",
        )
        .bind(product.id.as_str())
        .bind(product.sku.as_str())
        .bind(version)
        .bind(body)
        .execute(&mut *tx)
        .await;
        match written {
            Ok(_) => {}
            Err(e) => {
                let e = error::db(e);
                if e.kind == ErrorKind::Conflict {
                    return Err(PortError::new(
                        ErrorKind::Conflict,
                        format!("sku {} belongs to another product", product.sku),
                    ));
                }
                return Err(e);
            }
        }
        write_events(&mut tx, events).await?;
        commit(tx).await?;
        Ok(CasOutcome::Committed)
    }

    async fn one(&self, sql: &'static str, key: &str) -> PortResult<Option<Product>> {
        let body: Option<serde_json::Value> = sqlx::query_scalar(sql)
            .bind(key)
            .fetch_optional(self.pg.primary())
            .await
            .map_err(error::db)?;
        body.map(|b| serde_json::from_value(b).map_err(|e| error::corrupt("product", e)))
            .transpose()
    }
}

#[async_trait::async_trait]
impl CatalogStore for PgCatalog {
    async fn get(&self, id: &ProductId) -> PortResult<Option<Product>> {
        self.one("SELECT body FROM products WHERE id = $1", id.as_str())
            .await
    }

    async fn get_by_sku(&self, sku: &Sku) -> PortResult<Option<Product>> {
        self.one("SELECT body FROM products WHERE sku = $1", sku.as_str())
            .await
    }

    async fn put(&self, product: Product, events: &[EventEnvelope]) -> PortResult<CasOutcome> {
        product.validate()?;
        with_retries(|| self.try_put(&product, events)).await
    }

    async fn list(&self, after: Option<&ProductId>, limit: usize) -> PortResult<Vec<Product>> {
        let bodies: Vec<serde_json::Value> =
            sqlx::query_scalar("SELECT body FROM products WHERE id > $1 ORDER BY id LIMIT $2")
                .bind(after.map(ProductId::as_str).unwrap_or(""))
                .bind(page(limit))
                .fetch_all(self.pg.primary())
                .await
                .map_err(error::db)?;
        bodies
            .into_iter()
            .map(|b| serde_json::from_value(b).map_err(|e| error::corrupt("product", e)))
            .collect()
    }
}
