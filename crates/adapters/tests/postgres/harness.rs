//! A fresh schema per test, on one database or on the shard databases.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use adapters::postgres::{Postgres, PostgresConfig};

/// The server the tests use.
pub(crate) fn url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// How many shard databases the sharded tests spread orders over.
pub(crate) const SHARDS: usize = 4;

#[allow(
    clippy::disallowed_methods,
    reason = "test schemas are named by wall-clock time"
)]
fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A schema name no other test uses: the time (so old ones can be dropped), the process, a
/// counter.
fn schema() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "t_{}_{}_{}",
        now_secs(),
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Skips (returns `None`, printing why) when the server is down, unless `CI=true`.
fn unavailable(why: &str) -> Option<Postgres> {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("PostgreSQL is required under CI=true: {why}");
    }
    #[allow(clippy::print_stderr, reason = "the reason a test is skipped")]
    {
        eprintln!("skipped: PostgreSQL unavailable ({why}); set DATABASE_URL");
    }
    None
}

/// The URL of database `name` on the test server.
fn database_url(name: &str) -> String {
    let base = url();
    match base.rfind('/') {
        Some(i) => format!("{}/{name}", &base[..i]),
        None => base,
    }
}

/// Drops test schemas older than an hour (left by earlier runs), once per process.
async fn sweep_old_schemas(pg: &Postgres) {
    static ONCE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    ONCE.get_or_init(|| async {
        let cutoff = now_secs().saturating_sub(3_600);
        let old: Vec<String> =
            sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 't\\_%'")
                .fetch_all(pg.primary())
                .await
                .unwrap_or_default();
        for name in old {
            let born = name
                .split('_')
                .nth(1)
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(u64::MAX);
            if born < cutoff {
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP SCHEMA IF EXISTS \"{name}\" CASCADE"
                )))
                .execute(pg.primary())
                .await;
            }
        }
    })
    .await;
}

fn config(schema: String) -> PostgresConfig {
    PostgresConfig {
        schema: Some(schema),
        max_connections: 8,
        acquire_timeout: Duration::from_secs(10),
        ..PostgresConfig::default()
    }
}

/// One database, a fresh schema, migrated.
pub(crate) async fn fresh() -> Option<Postgres> {
    let pg = match Postgres::connect_shards(&[&url()], config(schema())).await {
        Ok(pg) => pg,
        Err(e) => return unavailable(&e.to_string()),
    };
    sweep_old_schemas(&pg).await;
    pg.migrate().await.expect("migrations");
    Some(pg)
}

/// The shard databases (`test_shard_0` … created if missing), a fresh schema in each,
/// migrated.
pub(crate) async fn fresh_shards() -> Option<Postgres> {
    let admin = match Postgres::connect(&url()).await {
        Ok(pg) => pg,
        Err(e) => return unavailable(&e.to_string()),
    };
    let names: Vec<String> = (0..SHARDS).map(|i| format!("test_shard_{i}")).collect();
    for name in &names {
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(name)
                .fetch_one(admin.primary())
                .await
                .expect("pg_database");
        if !exists {
            // Two tests may race to create it: whichever loses finds it there.
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
                .execute(admin.primary())
                .await;
        }
    }
    admin.close().await;
    let urls: Vec<String> = names.iter().map(|n| database_url(n)).collect();
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    let pg = Postgres::connect_shards(&urls, config(schema()))
        .await
        .expect("shard databases");
    pg.migrate().await.expect("migrations");
    Some(pg)
}
