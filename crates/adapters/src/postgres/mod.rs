//! The SDK's stores on PostgreSQL (feature `postgres`), through sqlx.
//!
//! [`Postgres`] holds one connection pool per database: the primary (catalog, stock, promotion
//! usage, idempotency, the saga journal, the event log) and the order shards (orders, routed by
//! customer; the primary is shard 0, and one shard is the default). Every write that causes
//! events writes them to the `outbox` table of its own database in the same transaction; the
//! relay ([`PgEventLog`]) moves them into the primary's `event_log`, where each event gets its
//! dense position, and readers read the log by position.
//!
//! Migrations are embedded and run by [`Postgres::migrate`]; no database is needed to build.
//! Every statement is parameterized.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use adapters::postgres::Postgres;
//! let pg = Postgres::connect("postgres://postgres@127.0.0.1:5432/test").await?;
//! pg.migrate().await?;
//! let orders = pg.orders();     // an `OrderStore`
//! let log = pg.event_log();     // the `EventLog` their events end up in
//! # let _ = (orders, log);
//! # Ok(()) }
//! ```

mod batch;
mod carts;
mod catalog;
pub(crate) mod error;
mod idempotency;
mod journal;
mod log;
mod orders;
mod psp;
mod stock;
mod time;
mod usage;

use std::sync::Arc;
use std::time::Duration;

use commerce_core::{ErrorKind, EventEnvelope, PortError, PortResult};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, PgPool, Postgres as Pg, Transaction};

pub use batch::{Combiner, GroupCommit, UnitOutcome};
pub use carts::PgCartStore;
pub use catalog::PgCatalog;
pub use idempotency::PgIdempotencyStore;
pub use journal::PgJournal;
pub use log::PgEventLog;
pub use orders::PgOrderStore;
pub use psp::PgPaymentSandbox;
pub use stock::PgStockStore;
pub use usage::PgUsageStore;

/// Embedded migrations, applied to every database by [`Postgres::migrate`].
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// How many times a transaction the server rolled back (a serialization failure, a deadlock,
/// a connection it ended) is run again before the caller hears `Unavailable`.
pub(crate) const TX_ATTEMPTS: usize = 5;

/// How the pools are made.
#[derive(Debug, Clone)]
pub struct PostgresConfig {
    /// Connections per database.
    pub max_connections: u32,
    /// How long a call waits for a free connection before it fails as `Unavailable`.
    pub acquire_timeout: Duration,
    /// A schema to work in (created if missing): every table lives there. Tests give each case
    /// its own; production leaves it `None` (the server's `search_path`).
    pub schema: Option<String>,
    /// How often the event log's `wait` ([`EventLog::wait`](commerce_core::ports::EventLog::wait)) looks for new events.
    pub poll: Duration,
    /// The name the connections show in `pg_stat_activity`.
    pub application_name: String,
    /// How short write transactions share commits (group commit, on by default); see
    /// [`Combiner`].
    pub group_commit: GroupCommit,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        PostgresConfig {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
            schema: None,
            poll: Duration::from_millis(20),
            application_name: "commerce-sdk".to_owned(),
            group_commit: GroupCommit::default(),
        }
    }
}

/// Connection pools to the primary database and the order shards.
#[derive(Debug, Clone)]
pub struct Postgres {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Shard 0 is the primary.
    pools: Vec<PgPool>,
    /// One per pool, same order.
    combiners: Vec<Combiner>,
    poll: Duration,
}

impl Postgres {
    /// One database for everything.
    ///
    /// # Errors
    /// `Unavailable` when the server cannot be reached; `Invalid` for a malformed URL.
    pub async fn connect(url: &str) -> PortResult<Postgres> {
        Postgres::connect_shards(&[url], PostgresConfig::default()).await
    }

    /// The primary (the first URL) and order shards (every URL, the primary included), with
    /// `config`.
    ///
    /// # Errors
    /// `Unavailable` when a server cannot be reached; `Invalid` for a malformed URL or no URL.
    pub async fn connect_shards(urls: &[&str], config: PostgresConfig) -> PortResult<Postgres> {
        if urls.is_empty() {
            return Err(PortError::new(ErrorKind::Invalid, "no database URL"));
        }
        let mut pools = Vec::with_capacity(urls.len());
        for url in urls {
            let mut options: PgConnectOptions = url
                .parse::<PgConnectOptions>()
                .map_err(|e| PortError::caused_by(ErrorKind::Invalid, e))?
                .application_name(&config.application_name);
            if let Some(schema) = &config.schema {
                let admin = PgPoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(config.acquire_timeout)
                    .connect_with(options.clone())
                    .await
                    .map_err(error::db)?;
                // An identifier cannot be a parameter; it is quoted.
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "CREATE SCHEMA IF NOT EXISTS {}",
                    quote_ident(schema)
                )))
                .execute(&admin)
                .await
                .map_err(error::db)?;
                admin.close().await;
                options = options.options([("search_path", schema.as_str())]);
            }
            let pool = PgPoolOptions::new()
                .max_connections(config.max_connections)
                .acquire_timeout(config.acquire_timeout)
                .connect_with(options)
                .await
                .map_err(error::db)?;
            pools.push(pool);
        }
        let combiners = pools
            .iter()
            .map(|p| Combiner::new(p.clone(), config.group_commit.clone()))
            .collect();
        Ok(Postgres {
            inner: Arc::new(Inner {
                pools,
                combiners,
                poll: config.poll,
            }),
        })
    }

    /// Applies the embedded migrations to every database (idempotent).
    ///
    /// # Errors
    /// `Unavailable` when a database cannot be reached; `Internal` when a migration fails.
    pub async fn migrate(&self) -> PortResult<()> {
        for pool in &self.inner.pools {
            MIGRATOR
                .run(pool)
                .await
                .map_err(|e| PortError::caused_by(ErrorKind::Internal, e))?;
        }
        Ok(())
    }

    /// How many order shards there are.
    pub fn shards(&self) -> usize {
        self.inner.pools.len()
    }

    /// The shard a routing key (a customer id) belongs to: FNV-1a over its bytes, modulo the
    /// shard count. Stable across processes and releases, so a customer's orders stay put.
    pub fn shard_of(&self, key: &str) -> usize {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for b in key.bytes() {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        let n = u64::try_from(self.inner.pools.len()).unwrap_or(1).max(1);
        usize::try_from(hash % n).unwrap_or(0)
    }

    /// The primary database's pool.
    pub fn primary(&self) -> &PgPool {
        &self.inner.pools[0]
    }

    /// The primary database's [`Combiner`]: short write transactions submitted to it share
    /// commits with other callers'.
    pub fn combiner(&self) -> &Combiner {
        &self.inner.combiners[0]
    }

    /// The [`Combiner`] of shard `shard`.
    pub(crate) fn combiner_of(&self, shard: usize) -> &Combiner {
        &self.inner.combiners[shard]
    }

    /// The pool of shard `shard`.
    pub(crate) fn pool(&self, shard: usize) -> &PgPool {
        &self.inner.pools[shard]
    }

    /// Every pool, shard order.
    pub(crate) fn pools(&self) -> &[PgPool] {
        &self.inner.pools
    }

    pub(crate) fn poll(&self) -> Duration {
        self.inner.poll
    }

    /// The order store.
    pub fn orders(&self) -> PgOrderStore {
        PgOrderStore::new(self.clone())
    }

    /// The catalog.
    pub fn catalog(&self) -> PgCatalog {
        PgCatalog::new(self.clone())
    }

    /// The sandbox payment provider (see [`PgPaymentSandbox`]).
    pub fn payment_sandbox(&self) -> PgPaymentSandbox {
        PgPaymentSandbox::new(self.clone())
    }

    /// The cart store: carts routed by cart id over the order shards, their events in each
    /// shard's outbox.
    pub fn carts(&self) -> PgCartStore {
        PgCartStore::new(self.clone())
    }

    /// The idempotency store (primary), keeping finished records for 24 hours before its
    /// purge job forgets them ([`PgIdempotencyStore::with_retention`] to keep them longer).
    pub fn idempotency(&self) -> PgIdempotencyStore {
        PgIdempotencyStore::new(self.clone())
    }

    /// The promotion usage store (primary).
    pub fn promotion_usage(&self) -> PgUsageStore {
        PgUsageStore::new(self.clone())
    }

    /// The stock store (primary): counter rows per key, holds, movements; see
    /// [`PgStockStore`].
    pub fn stock(&self) -> PgStockStore {
        PgStockStore::new(self.clone())
    }

    /// The saga journal (primary).
    pub fn saga_journal(&self) -> PgJournal {
        PgJournal::new(self.clone())
    }

    /// The event log every store's outbox is relayed into.
    pub fn event_log(&self) -> PgEventLog {
        PgEventLog::new(self.clone())
    }

    /// Closes every pool.
    pub async fn close(&self) {
        for pool in &self.inner.pools {
            pool.close().await;
        }
    }
}

/// `name` as a quoted SQL identifier.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Writes `events` to the outbox of the transaction's database: they reach the log only if
/// the transaction commits.
pub(crate) async fn write_events(
    tx: &mut PgConnection,
    events: &[EventEnvelope],
) -> PortResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    let mut ids = Vec::with_capacity(events.len());
    let mut bodies = Vec::with_capacity(events.len());
    for e in events {
        ids.push(e.event_id.as_str().to_owned());
        bodies.push(
            serde_json::to_value(e).map_err(|e| PortError::caused_by(ErrorKind::Internal, e))?,
        );
    }
    sqlx::query(
        "INSERT INTO outbox (event_id, envelope) \
         SELECT * FROM UNNEST($1::text[], $2::jsonb[])",
    )
    .bind(&ids)
    .bind(&bodies)
    .execute(&mut *tx)
    .await
    .map_err(error::db)?;
    Ok(())
}

/// Commits `tx`: a broken connection while committing is `Indeterminate`.
pub(crate) async fn commit(tx: Transaction<'_, Pg>) -> PortResult<()> {
    tx.commit().await.map_err(error::commit)
}

/// A page size within the SDK's bound, as SQL wants it.
pub(crate) fn page(limit: usize) -> i64 {
    i64::try_from(limit.min(commerce_core::limits::PAGE_SIZE_MAX)).unwrap_or(0)
}

/// Runs `attempt` until it succeeds, fails for good, or has been rolled back
/// [`TX_ATTEMPTS`] times.
pub(crate) async fn with_retries<T, F, Fut>(mut attempt: F) -> PortResult<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = PortResult<T>>,
{
    let mut last = None;
    for n in 0..TX_ATTEMPTS {
        if n > 0 {
            // Let the transaction it lost to finish first.
            tokio::time::sleep(Duration::from_millis(5 * n as u64)).await;
        }
        match attempt().await {
            Err(e) if error::retry(&e) && is_rolled_back(&e) => last = Some(e),
            other => return other,
        }
    }
    Err(last.unwrap_or_else(|| PortError::new(ErrorKind::Unavailable, "retries exhausted")))
}

/// Whether an `Unavailable` came from the server rolling the transaction back (worth an
/// immediate retry), rather than from a pool with no free connection (not worth one).
pub(crate) fn is_rolled_back(e: &PortError) -> bool {
    e.source
        .as_ref()
        .and_then(|s| s.downcast_ref::<sqlx::Error>())
        .is_some_and(|s| matches!(s, sqlx::Error::Database(_) | sqlx::Error::Io(_)))
}
