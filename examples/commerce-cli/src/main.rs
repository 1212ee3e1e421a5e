//! `commerce`: the admin CLI of a reference-server deployment. It reads the server's
//! configuration (the same TOML file and environment, [`reference_server::Config`]) and works
//! on the same stores: migrations and shard databases, the search index against the catalog,
//! the stock (hold sweeper, physical counts), orders, sagas, the event log and the
//! co-purchase lists.
//!
//! ```text
//! commerce [--config FILE] [--json] config
//! commerce db migrate | db create-shards
//! commerce search reconcile [--repair]
//! commerce stock sweep [--batch N] | stock reconcile --counts FILE [--run ID] [--apply]
//! commerce orders show ID | saga show ID
//! commerce events [--from OFFSET] [--limit N]
//! commerce recs rebuild
//! ```
//!
//! Output is text for people, or one JSON document (`--json`; `events` writes one per line)
//! for scripts. Long work draws a progress bar on a terminal. The exit code says what failed:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | done |
//! | 1 | a bug or broken invariant (`Internal`) |
//! | 2 | the command line is wrong (clap) |
//! | 3 | not found (an order, a saga) |
//! | 4 | conflict (the index is open in a running server, a lost race) |
//! | 5 | refused by a business rule |
//! | 6 | the index and the catalog differ (`search reconcile` without `--repair`) |
//! | 65 | invalid input (a counts file, an id) |
//! | 69 | a server (PostgreSQL, Redis) could not be reached |
//! | 75 | the outcome is unknown (`Indeterminate`): check before retrying |
//! | 78 | the configuration is refused or lacks what the command needs |

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line tool prints its results and errors"
)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use adapters::postgres::{Postgres, PostgresConfig};
use clap::{Parser, Subcommand};
use commerce_core::{ErrorKind, EventLog, OrderId, OrderStore};
use reference_server::{Config, ConfigError};
use saga::SagaJournal;
use serde_json::json;

/// The admin CLI of a reference-server deployment.
#[derive(Debug, Parser)]
#[command(name = "commerce", version, about)]
struct Cli {
    /// The configuration file (TOML); `COMMERCE_CONFIG` names one otherwise. The environment
    /// overrides it key by key, as for the server.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// One JSON document on standard output instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The configuration in effect, secrets hidden.
    Config,
    /// Databases.
    #[command(subcommand)]
    Db(Db),
    /// The search index.
    #[command(subcommand)]
    Search(SearchCmd),
    /// Stock and holds.
    #[command(subcommand)]
    Stock(Stock),
    /// Orders.
    #[command(subcommand)]
    Orders(Orders),
    /// Sagas (checkout, the order lifecycle).
    #[command(subcommand)]
    Saga(SagaCmd),
    /// The event log (the outbox), from an offset.
    Events {
        /// The first offset.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// At most this many events.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Recommendations.
    #[command(subcommand)]
    Recs(Recs),
}

#[derive(Debug, Subcommand)]
enum Db {
    /// Applies the migrations on every shard (each once; safe to repeat).
    Migrate,
    /// Creates the databases of `database_url` and `database_shards` that do not exist.
    CreateShards,
}

#[derive(Debug, Subcommand)]
enum SearchCmd {
    /// Compares the index with the catalog: missing, stale and orphaned products.
    Reconcile {
        /// Fixes what differs (one commit). Stop the server first: it holds the index.
        #[arg(long)]
        repair: bool,
    },
}

#[derive(Debug, Subcommand)]
enum Stock {
    /// Expires the holds past their time, once, and returns their units.
    Sweep {
        /// Holds per batch.
        #[arg(long, default_value_t = 500)]
        batch: usize,
    },
    /// Compares physical counts (`sku,location,counted` per line) with the system.
    Reconcile {
        /// The counts file (CSV, no header).
        #[arg(long)]
        counts: PathBuf,
        /// The count's id (e.g. `2026-12-stocktake`): corrections are keyed by it and the key,
        /// so re-running the same count applies nothing twice. A new count needs a new id.
        #[arg(long)]
        run: String,
        /// Record each drift as a correction (otherwise only report).
        #[arg(long)]
        apply: bool,
    },
}

#[derive(Debug, Subcommand)]
enum Orders {
    /// An order with its ledger.
    Show {
        /// The order id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum SagaCmd {
    /// A saga's journal record: its state, steps and lease.
    Show {
        /// The saga id (for a checkout, its idempotency key).
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum Recs {
    /// Rebuilds the co-purchase lists from every confirmed order in the event log and writes
    /// them to the lists store (Redis).
    Rebuild,
}

/// What a command failed with; its exit code is in the crate docs.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("`{key}` is needed: {why}")]
    Needs {
        key: &'static str,
        why: &'static str,
    },
    #[error("{message}")]
    Engine { kind: ErrorKind, message: String },
    #[error("{0}")]
    Invalid(String),
    #[error("the index and the catalog differ (run with --repair to fix)")]
    Differs,
}

impl Failure {
    fn code(&self) -> u8 {
        match self {
            Failure::Config(_) | Failure::Needs { .. } => 78,
            Failure::Invalid(_) => 65,
            Failure::Differs => 6,
            Failure::Engine { kind, .. } => match kind {
                ErrorKind::NotFound => 3,
                ErrorKind::Conflict => 4,
                ErrorKind::Refused => 5,
                ErrorKind::Invalid => 65,
                ErrorKind::Unavailable => 69,
                ErrorKind::Indeterminate => 75,
                _ => 1,
            },
        }
    }

    fn engine(kind: ErrorKind, e: impl std::fmt::Display) -> Failure {
        Failure::Engine {
            kind,
            message: e.to_string(),
        }
    }
}

macro_rules! engine_errors {
    ($($t:ty),*) => {$(
        impl From<$t> for Failure {
            fn from(e: $t) -> Failure {
                Failure::engine(e.kind(), e)
            }
        }
    )*};
}
engine_errors!(
    commerce_core::Error,
    search::Error,
    inventory::Error,
    saga::Error,
    recs::Error
);

impl From<commerce_core::PortError> for Failure {
    fn from(e: commerce_core::PortError) -> Failure {
        Failure::engine(e.kind, e)
    }
}

type Outcome = Result<(), Failure>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("commerce: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(&cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // With `--json` a failure is one document too, unless the command already
            // printed its report (a difference found is a report, not an error).
            if cli.json && !matches!(e, Failure::Differs) {
                let code = e.code();
                emit(&json!({ "error": e.to_string(), "exit_code": code }).to_string());
            }
            eprintln!("commerce: {e}");
            ExitCode::from(e.code())
        }
    }
}

async fn run(cli: &Cli) -> Outcome {
    let config = Config::load(cli.config.as_deref())?;
    match &cli.command {
        Command::Config => show_config(&config, cli.json),
        Command::Db(Db::Migrate) => {
            let pg = postgres(&config).await?;
            pg.migrate().await?;
            let shards = pg.shards();
            pg.close().await;
            report(
                cli.json,
                json!({ "migrated_shards": shards }),
                format!("migrations applied on {shards} shard(s)"),
            )
        }
        Command::Db(Db::CreateShards) => create_shards(&config, cli.json).await,
        Command::Search(SearchCmd::Reconcile { repair }) => {
            search_reconcile(&config, *repair, cli.json).await
        }
        Command::Stock(Stock::Sweep { batch }) => sweep(&config, *batch, cli.json).await,
        Command::Stock(Stock::Reconcile { counts, run, apply }) => {
            stock_reconcile(&config, counts, run, *apply, cli.json).await
        }
        Command::Orders(Orders::Show { id }) => {
            let id = OrderId::new(id.as_str())?;
            let pg = postgres(&config).await?;
            let order = pg.orders().get(&id).await;
            pg.close().await;
            show(cli.json, order?, &format!("no order {id}"))
        }
        Command::Saga(SagaCmd::Show { id }) => {
            let pg = postgres(&config).await?;
            let record = pg.saga_journal().load(id).await;
            pg.close().await;
            show(cli.json, record?, &format!("no saga {id}"))
        }
        Command::Events { from, limit } => events(&config, *from, *limit, cli.json).await,
        Command::Recs(Recs::Rebuild) => recs_rebuild(&config, cli.json).await,
    }
}

/// Prints a record found (pretty JSON for people), or fails as not found with `missing`.
fn show<T: serde::Serialize>(json: bool, found: Option<T>, missing: &str) -> Outcome {
    let found = found.ok_or_else(|| Failure::engine(ErrorKind::NotFound, missing))?;
    let doc = serde_json::to_value(&found).map_err(|e| Failure::engine(ErrorKind::Internal, e))?;
    let text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    report(json, doc, text)
}

/// Writes one line to standard output; false when the reader has gone (a closed pipe, as
/// with `commerce events | head`), which ends the output without an error.
fn emit(line: &str) -> bool {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").and_then(|()| out.flush()).is_ok()
}

/// Prints `doc` (with `--json`) or `text`.
fn report(json: bool, doc: serde_json::Value, text: String) -> Outcome {
    emit(&if json { doc.to_string() } else { text });
    Ok(())
}

/// A progress bar on a terminal, nothing otherwise (or with `--json`).
fn progress(json: bool, len: u64, what: &'static str) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if json || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg} {wide_bar} {pos}/{len} ({per_sec}, {eta} left)",
    ) {
        bar.set_style(style);
    }
    bar.set_message(what);
    bar
}

fn show_config(config: &Config, json: bool) -> Outcome {
    let hidden = |s: &Option<Vec<u8>>| s.as_ref().map(|_| "(set)");
    let url = |u: &Option<String>| u.as_deref().map(redact);
    let doc = json!({
        "bind": config.bind,
        "port": config.port,
        "data_dir": config.data_dir,
        "database_url": url(&config.database_url),
        "database_shards": config.database_shards.iter().map(|u| redact(u)).collect::<Vec<_>>(),
        "database_schema": config.database_schema,
        "redis_url": url(&config.redis_url),
        "redis_namespace": config.redis_namespace,
        "kafka_brokers": config.kafka_brokers,
        "kafka_topic_prefix": config.kafka_topic_prefix,
        "rate_per_sec": config.rate_per_sec,
        "seed": config.seed,
        "saga_lease_secs": config.saga_lease_secs,
        "search_locale": config.search_locale.code(),
        "auth_secret": hidden(&config.auth_secret),
        "carrier_webhook_secret": hidden(&config.webhook_secret),
        "payment_webhook_secret": hidden(&config.payment_webhook_secret),
    });
    let text = match &doc {
        serde_json::Value::Object(m) => m
            .iter()
            .map(|(k, v)| format!("{k} = {v}"))
            .collect::<Vec<_>>()
            .join("\n"),
        other => other.to_string(),
    };
    report(json, doc, text)
}

/// `url` with any password (in the user part or a `password=` parameter) replaced by `***`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{user}:***@{host}")
        }
        _ => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let params: Vec<String> = query
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => p.to_owned(),
                })
                .collect();
            format!("{path}?{}", params.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// The shard URLs: `database_url` first.
fn shard_urls(config: &Config) -> Result<Vec<&str>, Failure> {
    let first = config.database_url.as_deref().ok_or(Failure::Needs {
        key: "database_url",
        why: "this command works on the PostgreSQL stores",
    })?;
    Ok(std::iter::once(first)
        .chain(config.database_shards.iter().map(String::as_str))
        .collect())
}

async fn postgres(config: &Config) -> Result<Postgres, Failure> {
    let urls = shard_urls(config)?;
    let pg = Postgres::connect_shards(
        &urls,
        PostgresConfig {
            schema: Some(config.database_schema.clone()),
            application_name: "commerce-cli".into(),
            ..PostgresConfig::default()
        },
    )
    .await?;
    Ok(pg)
}

async fn create_shards(config: &Config, json: bool) -> Outcome {
    use sqlx::Connection;
    let mut created = Vec::new();
    let mut existing = Vec::new();
    for url in shard_urls(config)? {
        // Every option of the URL (TLS, socket, credentials) kept; only the database changes.
        let options: sqlx::postgres::PgConnectOptions = url
            .parse()
            .map_err(|e| Failure::Invalid(format!("{}: {e}", redact(url))))?;
        let name = options
            .get_database()
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| Failure::Invalid(format!("{}: no database name", redact(url))))?;
        let mut conn = sqlx::PgConnection::connect_with(&options.database("postgres"))
            .await
            .map_err(|e| Failure::engine(connect_kind(&e), redacted(&e, url)))?;
        let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
            .bind(&name)
            .fetch_optional(&mut conn)
            .await
            .map_err(|e| Failure::engine(connect_kind(&e), e))?;
        if found.is_some() {
            existing.push(name);
        } else {
            // A name is an identifier, not a value: quoted, its quotes doubled.
            let quoted = format!("\"{}\"", name.replace('"', "\"\""));
            match sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {quoted}")))
                .execute(&mut conn)
                .await
            {
                Ok(_) => created.push(name),
                // Another operator created it meanwhile.
                Err(sqlx::Error::Database(d)) if d.code().as_deref() == Some("42P04") => {
                    existing.push(name);
                }
                Err(e) => return Err(Failure::engine(connect_kind(&e), e)),
            }
        }
        let _ = conn.close().await;
    }
    let text = format!(
        "created {} database(s){}; {} existed",
        created.len(),
        if created.is_empty() {
            String::new()
        } else {
            format!(" ({})", created.join(", "))
        },
        existing.len()
    );
    report(
        json,
        json!({ "created": created, "existing": existing }),
        text,
    )
}

/// A refused login or a missing privilege is the configuration's fault (`Invalid`, 65), not
/// an unreachable server (`Unavailable`, 69).
fn connect_kind(e: &sqlx::Error) -> ErrorKind {
    match e {
        sqlx::Error::Database(d)
            if d.code()
                .is_some_and(|c| c.starts_with("28") || c.as_ref() == "42501") =>
        {
            ErrorKind::Invalid
        }
        _ => ErrorKind::Unavailable,
    }
}

fn redacted(e: &sqlx::Error, url: &str) -> String {
    format!("{}: {e}", redact(url))
}

async fn search_reconcile(config: &Config, repair: bool, json: bool) -> Outcome {
    let pg = postgres(config).await?;
    let feed = if config.kafka_brokers.is_some() {
        "kafka"
    } else {
        "log"
    };
    let dir = reference_server::index_dir(config, "postgres", feed);
    let tenant = reference_server::tenant_config(config)
        .map_err(|e| Failure::engine(ErrorKind::Invalid, e))?;
    let index = search::SearchIndex::create(
        search::TenantId::new("shop")?,
        tenant,
        search::Storage::Dir(dir.clone()),
    )?;
    let bar = progress(json, 0, "reconciling");
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    let catalog = pg.catalog();
    let report_ = search::reconcile(&index, &catalog, repair).await;
    bar.finish_and_clear();
    pg.close().await;
    let r = report_?;
    let ids =
        |v: &[commerce_core::ProductId]| v.iter().map(ToString::to_string).collect::<Vec<_>>();
    let doc = json!({
        "index": dir,
        "checked": r.checked,
        "missing": ids(&r.missing),
        "stale": ids(&r.stale),
        "orphaned": ids(&r.orphaned),
        "repaired": r.repaired,
    });
    let text = format!(
        "checked {} products: {} missing, {} stale, {} orphaned{}",
        r.checked,
        r.missing.len(),
        r.stale.len(),
        r.orphaned.len(),
        if r.repaired { "; repaired" } else { "" }
    );
    report(json, doc, text)?;
    if r.is_clean() || r.repaired {
        Ok(())
    } else {
        Err(Failure::Differs)
    }
}

async fn sweep(config: &Config, batch: usize, json: bool) -> Outcome {
    use inventory::HoldStore;
    if batch == 0 {
        return Err(Failure::Invalid("--batch must be at least 1".into()));
    }
    let pg = postgres(config).await?;
    let stock = pg.stock();
    let now = reference_server::system_clock().now();
    let mut expired = 0usize;
    let bar = progress(json, 0, "sweeping");
    loop {
        let s = stock.sweep(now, batch).await?;
        expired += s.expired.len();
        bar.inc(s.expired.len() as u64);
        if s.expired.len() < batch {
            break;
        }
    }
    bar.finish_and_clear();
    pg.close().await;
    report(
        json,
        json!({ "expired_holds": expired }),
        format!("{expired} expired hold(s) released"),
    )
}

async fn stock_reconcile(
    config: &Config,
    counts: &std::path::Path,
    run: &str,
    apply: bool,
    json: bool,
) -> Outcome {
    let text = std::fs::read_to_string(counts)
        .map_err(|e| Failure::Invalid(format!("{}: {e}", counts.display())))?;
    let mut parsed = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad =
            |why: &str| Failure::Invalid(format!("{} line {}: {why}", counts.display(), n + 1));
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let [sku, location, counted] = fields[..] else {
            return Err(bad("expected sku,location,counted"));
        };
        let sku = commerce_core::Sku::new(sku).map_err(|e| bad(&e.to_string()))?;
        let location = commerce_core::LocationId::new(location).map_err(|e| bad(&e.to_string()))?;
        let counted: i64 = counted
            .parse()
            .ok()
            .filter(|c| *c >= 0)
            .ok_or_else(|| bad("counted must be a whole number ≥ 0"))?;
        let key = inventory::StockKey { sku, location };
        if parsed
            .iter()
            .any(|c: &inventory::PhysicalCount| c.key == key)
        {
            return Err(bad("this sku and location were counted on an earlier line"));
        }
        parsed.push(inventory::PhysicalCount { key, counted });
    }
    let pg = postgres(config).await?;
    let stock = pg.stock();
    let config_ = inventory::ReconcileConfig {
        apply,
        ..inventory::ReconcileConfig::default()
    };
    let result = inventory::reconcile(
        &stock,
        run,
        &parsed,
        config_,
        reference_server::system_clock().now(),
    )
    .await;
    pg.close().await;
    let r = result?;
    let drifts: Vec<serde_json::Value> = r
        .drifts
        .iter()
        .map(|d| {
            json!({
                "sku": d.key.sku.as_str(), "location": d.key.location.as_str(),
                "system": d.system, "counted": d.counted, "drift": d.drift, "alert": d.alert,
            })
        })
        .collect();
    let text = format!(
        "{} key(s) counted, {} drift(s), {} alert(s){}",
        parsed.len(),
        r.drifts.len(),
        r.alerts().count(),
        if apply { ", corrections applied" } else { "" }
    );
    report(
        json,
        json!({ "counted": parsed.len(), "drifts": drifts, "applied": apply }),
        text,
    )
}

async fn events(config: &Config, from: u64, limit: usize, json: bool) -> Outcome {
    let pg = postgres(config).await?;
    let log = pg.event_log();
    let mut at = from;
    let mut left = limit;
    while left > 0 {
        let page = log.read(at, left.min(500)).await?;
        let Some(last) = page.last() else { break };
        at = last.offset + 1;
        left = left.saturating_sub(page.len());
        for e in &page {
            let envelope = serde_json::to_value(&e.envelope)
                .map_err(|err| Failure::engine(ErrorKind::Internal, err))?;
            let line = if json {
                json!({ "offset": e.offset, "event": envelope }).to_string()
            } else {
                format!(
                    "{:>8}  {}  {}  {}",
                    e.offset,
                    e.envelope.occurred_at.to_rfc3339(),
                    e.envelope.event.event_type(),
                    e.envelope.event_id
                )
            };
            if !emit(&line) {
                pg.close().await;
                return Ok(());
            }
        }
    }
    pg.close().await;
    Ok(())
}

async fn recs_rebuild(config: &Config, json: bool) -> Outcome {
    use recs::copurchase::{CoPurchase, CoPurchaseConfig, baskets_of, write_lists};
    let redis_url = config.redis_url.as_deref().ok_or(Failure::Needs {
        key: "redis_url",
        why: "the lists are served from Redis (in memory they live in the server's process)",
    })?;
    let pg = postgres(config).await?;
    let log = pg.event_log();
    let end = log.end_offset().await?;
    let bar = progress(json, end, "reading orders");
    let mut baskets = Vec::new();
    let mut at = 0;
    loop {
        let page = log.read(at, 1_000).await?;
        let Some(last) = page.last() else { break };
        at = last.offset + 1;
        bar.set_position(at);
        let envelopes: Vec<_> = page.into_iter().map(|e| e.envelope).collect();
        baskets.extend(baskets_of(&envelopes)?);
    }
    bar.finish_and_clear();
    pg.close().await;
    let model = CoPurchase::build(&baskets, CoPurchaseConfig::default())?;
    // A newer generation than any earlier build: milliseconds since the epoch.
    let generation =
        u64::try_from(reference_server::system_clock().now().timestamp_millis()).unwrap_or(0);
    let lists = model.all_lists(generation)?;
    let redis = adapters::redis::Redis::connect(redis_url)
        .await
        .map_err(Failure::from)?
        .with_namespace(&config.redis_namespace);
    let store: Arc<dyn recs::TopKStore> = Arc::new(redis.topk_store());
    let written = write_lists(store.as_ref(), &lists).await?;
    report(
        json,
        json!({ "orders": baskets.len(), "lists": lists.len(), "written": written, "generation": generation }),
        format!(
            "{} orders → {} lists, {written} written (generation {generation})",
            baskets.len(),
            lists.len()
        ),
    )
}
