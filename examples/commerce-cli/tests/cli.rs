//! The `commerce` binary end to end against the real PostgreSQL (and Redis for the
//! co-purchase lists): each command's output, its JSON, and the exit code of each failure.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use commerce_core::{CatalogStore, EventLog};
use inventory::{StockKey, StockLevels};
use reference_server::Config;
use serde_json::Value;

#[path = "../../reference-server/tests/common/servers.rs"]
mod servers;

/// The binary with a clean environment: only what the test gives.
fn commerce(env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_commerce"));
    for var in [
        "DATABASE_URL",
        "DATABASE_SHARDS",
        "DATABASE_SCHEMA",
        "REDIS_URL",
        "REDIS_NAMESPACE",
        "KAFKA_BROKERS",
        "MINILM_DIR",
        "COMMERCE_CONFIG",
        "DATA_DIR",
        "RATE_PER_SEC",
    ] {
        c.env_remove(var);
    }
    c.envs(env.iter().copied())
        .args(args)
        .output()
        .expect("run commerce")
}

fn json(out: &Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text:?}"))
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("an exit code")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("commerce-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// The shop seeded on PostgreSQL by the reference server itself, then stopped (it holds the
/// search index while it runs).
async fn seeded_shop(url: &str, schema: &str, data: &Path) -> Config {
    let config = Config {
        database_url: Some(url.to_owned()),
        database_schema: schema.to_owned(),
        ..Config::embedded(data.to_path_buf())
    };
    let app = reference_server::build(&config, reference_server::system_clock())
        .await
        .expect("the shop starts");
    // Ready once search has caught up with the catalog's events.
    for _ in 0..600 {
        use tower::ServiceExt;
        let req = axum::http::Request::get("/readyz")
            .body(axum::body::Body::empty())
            .expect("request");
        let res = app.router.clone().oneshot(req).await.expect("answer");
        if res.status().is_success() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.stop(Duration::from_secs(10)).await;
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operating_a_shop_on_postgres() {
    let Some(url) = servers::server_env("DATABASE_URL", "operating_a_shop_on_postgres") else {
        return;
    };
    let schema = servers::fresh_schema(&url, "cli").await;
    let data = temp("shop");
    let data_dir = data.to_str().expect("utf-8").to_owned();
    let env = [
        ("DATABASE_URL", url.as_str()),
        ("DATABASE_SCHEMA", schema.as_str()),
        ("DATA_DIR", data_dir.as_str()),
    ];

    // Migrations: applied, then again with nothing to do.
    for _ in 0..2 {
        let out = commerce(&env, &["--json", "db", "migrate"]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        assert_eq!(json(&out)["migrated_shards"], 1);
    }

    let config = seeded_shop(&url, &schema, &data).await;
    let pg = adapters::postgres::Postgres::connect_shards(
        &[url.as_str()],
        adapters::postgres::PostgresConfig {
            schema: Some(schema.clone()),
            ..Default::default()
        },
    )
    .await
    .expect("PostgreSQL");
    let mut products = Vec::new();
    loop {
        let after = products
            .last()
            .map(|p: &commerce_core::Product| p.id.clone());
        let page = pg
            .catalog()
            .list(after.as_ref(), 500)
            .await
            .expect("catalog");
        if page.is_empty() {
            break;
        }
        products.extend(page);
    }
    assert!(products.len() > 100, "the demo shop is seeded");

    // Search against the catalog: whatever the server left (it may stop before its last
    // commit), repaired, then clean.
    let out = commerce(&env, &["--json", "search", "reconcile", "--repair"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = commerce(&env, &["--json", "search", "reconcile"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let r = json(&out);
    assert_eq!(r["checked"].as_u64(), Some(products.len() as u64));
    assert_eq!(r["missing"].as_array().map(Vec::len), Some(0));
    // The index lost: every product missing, exit 6 until repaired.
    std::fs::remove_dir_all(reference_server::index_dir(&config, "postgres", "log"))
        .expect("remove the index");
    let out = commerce(&env, &["--json", "search", "reconcile"]);
    assert_eq!(code(&out), 6, "{}", stderr(&out));
    assert_eq!(
        json(&out)["missing"].as_array().map(Vec::len),
        Some(products.len())
    );
    let out = commerce(&env, &["--json", "search", "reconcile", "--repair"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(json(&out)["repaired"], true);
    let out = commerce(&env, &["search", "reconcile"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 missing, 0 stale, 0 orphaned"));
    // While a server holds the index: a conflict (4), nothing touched.
    {
        let _held = search::SearchIndex::create(
            search::TenantId::new("shop").expect("tenant"),
            reference_server::tenant_config(&config).expect("tenant config"),
            search::Storage::Dir(reference_server::index_dir(&config, "postgres", "log")),
        )
        .expect("the index opens");
        let out = commerce(&env, &["search", "reconcile", "--repair"]);
        assert_eq!(code(&out), 4, "{}", stderr(&out));
    }

    // Stock: a count three above the system's, corrected once under its run id.
    let (location, _) = reference_server::warehouse().expect("warehouse");
    let key = StockKey {
        sku: products[0].sku.clone(),
        location: location.clone(),
    };
    let now = reference_server::system_clock().now();
    let before = pg.stock().level(&key, now).await.expect("level").on_hand;
    let counts = data.join("counts.csv");
    std::fs::write(
        &counts,
        format!(
            "# sku,location,counted\n{},{},{}\n",
            key.sku,
            location,
            before + 3
        ),
    )
    .expect("counts");
    let counts = counts.to_str().expect("utf-8");
    let out = commerce(
        &env,
        &[
            "--json",
            "stock",
            "reconcile",
            "--counts",
            counts,
            "--run",
            "count-0",
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(json(&out)["drifts"][0]["drift"], 3);
    assert_eq!(
        pg.stock().level(&key, now).await.unwrap().on_hand,
        before,
        "a report only"
    );
    for _ in 0..2 {
        let out = commerce(
            &env,
            &[
                "--json",
                "stock",
                "reconcile",
                "--counts",
                counts,
                "--run",
                "count-1",
                "--apply",
            ],
        );
        assert_eq!(code(&out), 0, "{}", stderr(&out));
    }
    assert_eq!(
        pg.stock().level(&key, now).await.unwrap().on_hand,
        before + 3,
        "applied once under its run id"
    );
    let bad = data.join("bad.csv");
    for (text, line) in [
        ("SKU-1,main,-4\n".to_owned(), "line 1"),
        (
            format!("{0},{1},5\n{0},{1},6\n", key.sku, location),
            "line 2",
        ),
    ] {
        std::fs::write(&bad, text).expect("bad counts");
        let out = commerce(
            &env,
            &[
                "stock",
                "reconcile",
                "--counts",
                bad.to_str().unwrap(),
                "--run",
                "count-2",
            ],
        );
        assert_eq!(code(&out), 65, "{}", stderr(&out));
        assert!(stderr(&out).contains(line), "{}", stderr(&out));
    }
    assert_eq!(
        pg.stock().level(&key, now).await.unwrap().on_hand,
        before + 3,
        "a refused file applies nothing"
    );
    // A count needs its id.
    let out = commerce(&env, &["stock", "reconcile", "--counts", counts]);
    assert_eq!(code(&out), 2);
    let out = commerce(&env, &["--json", "stock", "sweep"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(json(&out)["expired_holds"], 0);

    // The event log from an offset, one JSON document per line.
    let end = pg.event_log().end_offset().await.expect("end");
    assert!(end > 5);
    let out = commerce(&env, &["--json", "events", "--from", "2", "--limit", "3"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let offsets: Vec<u64> = lines.iter().filter_map(|l| l["offset"].as_u64()).collect();
    assert_eq!(offsets, [2, 3, 4]);
    assert!(lines[0]["event"]["event_id"].is_string());

    // Unknown order and saga: not found, exit 3.
    let out = commerce(&env, &["orders", "show", "o-none"]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let out = commerce(&env, &["--json", "saga", "show", "no-such-saga"]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert_eq!(json(&out)["exit_code"], 3);
    let out = commerce(&env, &["orders", "show", "not an id"]);
    assert_eq!(code(&out), 65, "{}", stderr(&out));

    // Co-purchase lists rebuilt from the confirmed orders in the log, written to Redis.
    let out = commerce(&env, &["recs", "rebuild"]);
    assert_eq!(code(&out), 78, "lists need Redis: {}", stderr(&out));
    if let Some(redis_url) = servers::server_env("REDIS_URL", "commerce recs rebuild") {
        use commerce_core::{DomainEvent, EventEnvelope, EventId, EventLine, EventPublisher};
        let order = |n: usize, skus: [&commerce_core::Sku; 2]| {
            EventEnvelope::new(
                EventId::new(format!("cli-order-{n}")).expect("id"),
                now,
                DomainEvent::OrderConfirmed {
                    order_id: commerce_core::OrderId::new(format!("o-cli-{n}")).expect("id"),
                    user_id: commerce_core::UserId::new(format!("u{n}")).expect("id"),
                    grand_total: commerce_core::Money::from_minor(
                        1_000,
                        reference_server::CURRENCY,
                    ),
                    lines: skus
                        .iter()
                        .map(|s| EventLine {
                            sku: (*s).clone(),
                            quantity: 1,
                        })
                        .collect(),
                    settlement: None,
                },
            )
        };
        let (a, b, c) = (&products[0].sku, &products[1].sku, &products[2].sku);
        let orders = vec![order(1, [a, b]), order(2, [a, b]), order(3, [a, c])];
        pg.event_log()
            .publish(&orders)
            .await
            .expect("orders in the log");
        let namespace = format!("cli{}", std::process::id());
        let mut with_redis = env.to_vec();
        with_redis.push(("REDIS_URL", redis_url.as_str()));
        with_redis.push(("REDIS_NAMESPACE", namespace.as_str()));
        let out = commerce(&with_redis, &["--json", "recs", "rebuild"]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let r = json(&out);
        assert_eq!(r["orders"], 3);
        assert_eq!(r["written"], 3, "a list for each of the three items");
        let redis = adapters::redis::Redis::connect(&redis_url)
            .await
            .expect("Redis")
            .with_namespace(&namespace);
        let list = recs::TopKStore::get(&redis.topk_store(), &recs::ListKey::Item(a.clone()))
            .await
            .expect("read")
            .expect("a list");
        let names: Vec<&commerce_core::Sku> = list.items().iter().map(|s| &s.sku).collect();
        assert_eq!(names, [b, c], "bought together twice before once");
    }
    pg.close().await;
    let admin = sqlx::PgPool::connect(&url).await.expect("PostgreSQL");
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
    )))
    .execute(&admin)
    .await;
    admin.close().await;
}

#[test]
fn failures_have_their_exit_codes() {
    // A refused configuration names its key: 78.
    let out = commerce(&[("RATE_PER_SEC", "0")], &["config"]);
    assert_eq!(code(&out), 78);
    assert!(stderr(&out).contains("RATE_PER_SEC"), "{}", stderr(&out));
    // A command that needs PostgreSQL without one: 78, naming the key.
    let out = commerce(&[], &["db", "migrate"]);
    assert_eq!(code(&out), 78);
    assert!(stderr(&out).contains("database_url"), "{}", stderr(&out));
    // PostgreSQL unreachable: 69.
    let out = commerce(
        &[("DATABASE_URL", "postgres://postgres@127.0.0.1:1/test")],
        &["db", "migrate"],
    );
    assert_eq!(code(&out), 69, "{}", stderr(&out));
    // A wrong command line: clap's 2.
    assert_eq!(code(&commerce(&[], &["db", "explode"])), 2);
    // The configuration shown, secrets hidden, passwords redacted.
    let secret = "k".repeat(40);
    let out = commerce(
        &[
            ("AUTH_SECRET", secret.as_str()),
            ("DATABASE_URL", "postgres://shop:hunter2@db:5432/shop"),
            ("REDIS_URL", "redis://cache:6379/?password=hunter2&db=1"),
        ],
        &["--json", "config"],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let c = json(&out);
    assert_eq!(c["auth_secret"], "(set)");
    assert_eq!(c["database_url"], "postgres://shop:***@db:5432/shop");
    assert_eq!(c["redis_url"], "redis://cache:6379/?password=***&db=1");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("hunter2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shard_databases_are_created_once_and_migrated() {
    let Some(url) = servers::server_env("DATABASE_URL", "shard_databases_are_created_once") else {
        return;
    };
    let server = url
        .rsplit_once('/')
        .map(|(s, _)| s.to_owned())
        .expect("a URL with a database");
    let names: Vec<String> = (0..2)
        .map(|i| format!("commerce_cli_shard{i}_{}", std::process::id()))
        .collect();
    let admin = sqlx::PgPool::connect(&url).await.expect("PostgreSQL");
    let drop_all = || async {
        for n in &names {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS \"{n}\" WITH (FORCE)"
            )))
            .execute(&admin)
            .await;
        }
    };
    drop_all().await;
    let first = format!("{server}/{}", names[0]);
    let shards = format!("{server}/{}", names[1]);
    let env = [
        ("DATABASE_URL", first.as_str()),
        ("DATABASE_SHARDS", shards.as_str()),
    ];
    let out = commerce(&env, &["--json", "db", "create-shards"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(json(&out)["created"].as_array().map(Vec::len), Some(2));
    let out = commerce(&env, &["--json", "db", "create-shards"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(json(&out)["created"].as_array().map(Vec::len), Some(0));
    assert_eq!(json(&out)["existing"].as_array().map(Vec::len), Some(2));
    let out = commerce(&env, &["--json", "db", "migrate"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(json(&out)["migrated_shards"], 2);
    drop_all().await;
    admin.close().await;
}
