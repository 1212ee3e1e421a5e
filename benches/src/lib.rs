//! Criterion benchmarks of the SDK's hot paths; see `benches/benches/*.rs` and `BENCHMARKS.md`.

use std::future::Future;

use futures::FutureExt;

/// The result of an in-memory port call, which completes on its first poll: polled once, with
/// no executor, so a benchmark measures the call and not a runtime.
///
/// # Panics
/// If the call does not complete at once (a port that really waits).
pub fn ready<T>(call: impl Future<Output = T>) -> T {
    #[allow(
        clippy::expect_used,
        reason = "only in-memory ports are benchmarked this way"
    )]
    call.now_or_never()
        .expect("an in-memory call completes at once")
}

/// The PostgreSQL side of the database benchmarks: a scratch schema on `DATABASE_URL`, and
/// `pgbench` run in the same process's run for the ratio.
#[cfg(feature = "postgres")]
pub mod pg {
    use std::process::Command;
    use std::time::Duration;

    use adapters::postgres::{GroupCommit, Postgres, PostgresConfig};

    /// The server (`DATABASE_URL`, default the local one).
    pub fn url() -> String {
        std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
    }

    /// Whether this is a measured run (`cargo bench`) rather than a smoke run.
    pub fn measured() -> bool {
        std::env::args().any(|a| a == "--bench")
    }

    /// A fresh schema `name` (dropped first), migrated, with `connections` per pool; `None` with
    /// the reason printed when the server is down (a failure under `CI=true`).
    ///
    /// # Panics
    /// Under `CI=true` without a server.
    pub async fn fresh(name: &str, connections: u32) -> Option<Postgres> {
        fresh_with(name, connections, GroupCommit::default()).await
    }

    /// [`fresh`], its short write transactions combined as `group_commit` says.
    ///
    /// # Panics
    /// Under `CI=true` without a server.
    pub async fn fresh_with(
        name: &str,
        connections: u32,
        group_commit: GroupCommit,
    ) -> Option<Postgres> {
        let admin = match Postgres::connect(&url()).await {
            Ok(pg) => pg,
            Err(e) => {
                let ci = std::env::var("CI").is_ok_and(|v| v == "true");
                assert!(!ci, "PostgreSQL is required under CI=true: {e}");
                #[allow(clippy::print_stdout, reason = "why the bench is skipped")]
                {
                    println!("skipped: PostgreSQL unavailable ({e}); set DATABASE_URL");
                }
                return None;
            }
        };
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS \"{name}\" CASCADE"
        )))
        .execute(admin.primary())
        .await;
        admin.close().await;
        let pg = Postgres::connect_shards(
            &[&url()],
            PostgresConfig {
                schema: Some(name.to_owned()),
                max_connections: connections,
                acquire_timeout: Duration::from_secs(30),
                application_name: format!("bench-{name}"),
                group_commit,
                ..PostgresConfig::default()
            },
        )
        .await
        .ok()?;
        pg.migrate().await.ok()?;
        Some(pg)
    }

    /// The group commit a bench run measures: `PG_GROUP_COMMIT=off` turns it off,
    /// `PG_GROUP_COMMIT=<workers>` sets the workers per database, `PG_GROUP_COMMIT=all:<workers>`
    /// combines unkeyed writes too; the default otherwise.
    pub fn group_commit() -> GroupCommit {
        let setting = std::env::var("PG_GROUP_COMMIT").unwrap_or_default();
        if setting == "off" {
            return GroupCommit::disabled();
        }
        let (all, workers) = match setting.strip_prefix("all:") {
            Some(n) => (true, n),
            None => (false, setting.as_str()),
        };
        let default = GroupCommit::default();
        GroupCommit {
            workers: workers.parse().unwrap_or(default.workers),
            combine_unkeyed: all || default.combine_unkeyed,
            ..default
        }
    }

    /// Transactions committed in the current database so far (`pg_stat_database`).
    pub async fn commits(pg: &Postgres) -> i64 {
        // The statistics collector lags by up to its flush interval.
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        sqlx::query_scalar(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
        )
        .fetch_one(pg.primary())
        .await
        .unwrap_or(0)
    }

    /// WAL flushes to disk so far, cluster-wide (`pg_stat_wal.wal_sync`): the durable commits
    /// the server actually paid for (read-only transactions need none; group commit shares
    /// one flush among several).
    pub async fn wal_syncs(pg: &Postgres) -> i64 {
        sqlx::query_scalar("SELECT wal_sync FROM pg_stat_wal")
            .fetch_one(pg.primary())
            .await
            .unwrap_or(0)
    }

    /// `pgbench -N` (simple update: three updates and an insert per transaction) with
    /// `clients` for `secs` on a scratch database `pgbench_scratch`: the server's own figure
    /// of durable write transactions per second on this machine, now. `None` if pgbench or
    /// the scratch database cannot be had.
    pub fn pgbench_tps(clients: u32, secs: u32) -> Option<f64> {
        let base = url();
        let scratch = match base.rfind('/') {
            Some(i) => format!("{}/pgbench_scratch", &base[..i]),
            None => return None,
        };
        let _ = Command::new("psql")
            .args([base.as_str(), "-qc", "CREATE DATABASE pgbench_scratch"])
            .output();
        let init = Command::new("pgbench")
            .args(["-i", "-q", "-s", "4", scratch.as_str()])
            .output()
            .ok()?;
        if !init.status.success() {
            return None;
        }
        let run = Command::new("pgbench")
            .args([
                "-N",
                "-n",
                "-c",
                &clients.to_string(),
                "-j",
                "2",
                "-T",
                &secs.to_string(),
                scratch.as_str(),
            ])
            .output()
            .ok()?;
        let out = String::from_utf8_lossy(&run.stdout);
        out.lines()
            .find(|l| l.starts_with("tps = "))
            .and_then(|l| l.trim_start_matches("tps = ").split_whitespace().next())
            .and_then(|t| t.parse().ok())
    }
}
