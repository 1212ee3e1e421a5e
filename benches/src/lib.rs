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

/// The Redis benchmarks' load loop and their measure of the server's limit.
#[cfg(feature = "redis")]
#[allow(
    clippy::disallowed_methods,
    clippy::float_arithmetic,
    reason = "a benchmark measures wall time and reports rates"
)]
pub mod redis_load {
    use std::future::Future;
    use std::process::Command;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    /// Concurrent clients in every Redis figure.
    pub const CLIENTS: u64 = 32;

    /// One `redis-benchmark -c 32 -n 100000` run of `args`.
    #[derive(Debug, Clone, Copy)]
    pub struct ServerLimit {
        /// Requests per second.
        pub rps: f64,
        /// Median latency, ms.
        pub p50_ms: f64,
        /// 99th percentile latency, ms.
        pub p99_ms: f64,
    }

    /// `redis-benchmark` with [`CLIENTS`] clients for `args`, from its CSV output; `None`
    /// without the tool.
    pub fn redis_benchmark(args: &[&str]) -> Option<ServerLimit> {
        let out = Command::new("redis-benchmark")
            .args(["-c", "32", "-n", "100000", "--csv"])
            .args(args)
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().nth(1)?;
        let cols: Vec<f64> = line
            .split(',')
            .skip(1)
            .filter_map(|c| c.trim_matches('"').parse().ok())
            .collect();
        Some(ServerLimit {
            rps: *cols.first()?,
            p50_ms: *cols.get(3)?,
            p99_ms: *cols.get(5)?,
        })
    }

    /// Runs `work(client, i)` on [`CLIENTS`] tasks for `run`; calls completed per second.
    ///
    /// # Panics
    /// If a client task panics.
    pub async fn per_second<F, Fut>(run: Duration, work: F) -> f64
    where
        F: Fn(u64, u64) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send,
    {
        let work = Arc::new(work);
        let done = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let tasks: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let (work, done) = (work.clone(), done.clone());
                tokio::spawn(async move {
                    let mut i = 0;
                    while start.elapsed() < run {
                        work(c, i).await;
                        i += 1;
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for t in tasks {
            #[allow(clippy::expect_used, reason = "a bench client's panic is the bench's")]
            t.await.expect("client");
        }
        #[allow(clippy::cast_precision_loss, reason = "a rate for display")]
        let done = done.load(Ordering::Relaxed) as f64;
        done / start.elapsed().as_secs_f64()
    }
}
