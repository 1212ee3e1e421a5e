//! Group commit ([`Combiner`]): units share one transaction and are answered after its commit;
//! a failing unit is rolled back alone; a batch whose connection is killed answers every unit
//! with a typed error and leaves nothing behind; the hot SKU's last unit is sold once however
//! the reservations are batched.

use std::sync::Arc;

use adapters::postgres::{Combiner, GroupCommit, Postgres, PostgresConfig, UnitOutcome};
use chrono::TimeDelta;
use commerce_core::testkit::t0;
use commerce_core::{ErrorKind, IdempotencyKey, LocationId, PortError, Sku};
use futures::FutureExt;
use inventory::{
    Error, HoldId, HoldStore, StockConfig, StockKey, StockLevels, StockLine, StockMovements,
};
use sqlx::PgConnection;
use tokio::sync::oneshot;

use crate::harness::{fresh, url};

fn db(e: sqlx::Error) -> PortError {
    let kind = match &e {
        sqlx::Error::Database(d) if d.code().as_deref() == Some("23505") => ErrorKind::Conflict,
        _ => ErrorKind::Internal,
    };
    PortError::caused_by(kind, e)
}

/// A second handle on `pg`'s schema, with its own pools and combiner configured as given.
async fn on_schema(pg: &Postgres, name: &str, group_commit: GroupCommit) -> Postgres {
    let schema: String = sqlx::query_scalar("SELECT current_schema()::text")
        .fetch_one(pg.primary())
        .await
        .unwrap();
    Postgres::connect_shards(
        &[&url()],
        PostgresConfig {
            schema: Some(schema),
            application_name: name.into(),
            max_connections: 8,
            group_commit,
            ..PostgresConfig::default()
        },
    )
    .await
    .unwrap()
}

/// One worker that combines every unit (keyed or not).
fn one_worker() -> GroupCommit {
    GroupCommit {
        workers: 1,
        combine_unkeyed: true,
        ..GroupCommit::default()
    }
}

/// Inserts `ids` into `items`, answering the transaction's id.
async fn insert(conn: &mut PgConnection, ids: &[&str]) -> Result<UnitOutcome<i64>, PortError> {
    for id in ids {
        sqlx::query("INSERT INTO items (id) VALUES ($1)")
            .bind(*id)
            .execute(&mut *conn)
            .await
            .map_err(db)?;
    }
    let txid: i64 = sqlx::query_scalar("SELECT txid_current()")
        .fetch_one(&mut *conn)
        .await
        .map_err(db)?;
    Ok(UnitOutcome::Commit(txid))
}

async fn items(pg: &Postgres) -> Vec<String> {
    sqlx::query_scalar("SELECT id FROM items ORDER BY id")
        .fetch_all(pg.primary())
        .await
        .unwrap()
}

/// Occupies `c`'s single worker with a batch of one unit (inserting "first") that waits for
/// the returned sender: units submitted meanwhile queue up, and form the next batch together.
async fn occupy(
    c: &Combiner,
) -> (
    oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<i64, PortError>>,
) {
    let (started, running) = oneshot::channel();
    let (go, wait) = oneshot::channel::<()>();
    let first = tokio::spawn({
        let c = c.clone();
        async move {
            c.run(move |conn| {
                async move {
                    let _ = started.send(());
                    let _ = wait.await;
                    insert(conn, &["first"]).await
                }
                .boxed()
            })
            .await
        }
    });
    running.await.unwrap();
    (go, first)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_unit_is_rolled_back_alone_and_its_neighbours_commit() {
    let Some(pg) = fresh().await else { return };
    sqlx::query("CREATE TABLE items (id text PRIMARY KEY)")
        .execute(pg.primary())
        .await
        .unwrap();
    sqlx::query("INSERT INTO items (id) VALUES ('taken')")
        .execute(pg.primary())
        .await
        .unwrap();
    let batched = on_schema(&pg, "combiner-units", one_worker()).await;
    let c = batched.combiner();
    let (go, first) = occupy(c).await;
    let release = async move {
        // Polled after every unit below was submitted (join polls in order).
        let _ = go.send(());
    };
    let asks_rollback = c.run(|conn| {
        async move {
            let _ = insert(conn, &["rolled-back"]).await?;
            Ok::<_, PortError>(UnitOutcome::Rollback(7))
        }
        .boxed()
    });
    let (a, b, r, d, ()) = tokio::join!(
        c.run(|conn| insert(conn, &["a"]).boxed()),
        // Writes a row, then fails on a taken id: neither write may stay.
        c.run(|conn| insert(conn, &["b", "taken"]).boxed()),
        asks_rollback,
        c.run(|conn| insert(conn, &["d"]).boxed()),
        release,
    );
    let first = first.await.unwrap().unwrap();
    let (a, d) = (a.unwrap(), d.unwrap());
    assert_ne!(first, a, "the first unit had a batch of its own");
    assert_eq!(a, d, "the neighbours shared one transaction");
    let e = b.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Conflict, "the unit's own error: {e}");
    assert_eq!(r.unwrap(), 7, "a unit rolled back on request still answers");
    assert_eq!(items(&pg).await, ["a", "d", "first", "taken"]);
    batched.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_killed_mid_batch_fails_every_unit_and_writes_nothing() {
    let Some(pg) = fresh().await else { return };
    sqlx::query("CREATE TABLE items (id text PRIMARY KEY)")
        .execute(pg.primary())
        .await
        .unwrap();
    let batched = on_schema(&pg, "combiner-victim", one_worker()).await;
    let c = batched.combiner();
    let (go, first) = occupy(c).await;
    let (pid_tx, pid_rx) = oneshot::channel::<i32>();
    // Writes a row, tells the test its backend, and waits to be killed.
    let victim = c.run(move |conn| {
        async move {
            let _ = insert(conn, &["victim"]).await?;
            let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
                .fetch_one(&mut *conn)
                .await
                .map_err(db)?;
            let _ = pid_tx.send(pid);
            sqlx::query("SELECT pg_sleep(300)")
                .execute(&mut *conn)
                .await
                .map_err(db)?;
            Ok::<_, PortError>(UnitOutcome::Commit(0))
        }
        .boxed()
    });
    let killer = async {
        let _ = go.send(());
        let pid = pid_rx.await.unwrap();
        let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
            .bind(pid)
            .fetch_one(pg.primary())
            .await
            .unwrap();
        assert!(killed);
    };
    let (before, v, after, ()) = tokio::join!(
        c.run(|conn| insert(conn, &["before"]).boxed()),
        victim,
        c.run(|conn| insert(conn, &["after"]).boxed()),
        killer,
    );
    let _ = first.await.unwrap().unwrap();
    for (name, r) in [("before", before), ("victim", v), ("after", after)] {
        let e = r.expect_err(name);
        assert_eq!(
            e.kind,
            ErrorKind::Unavailable,
            "{name}: a batch killed before its commit is Unavailable, not {e}"
        );
    }
    assert_eq!(items(&pg).await, ["first"], "nothing of the killed batch");
    // The combiner works on, on a new connection.
    let _ = c
        .run(|conn| insert(conn, &["later"]).boxed())
        .await
        .unwrap();
    assert_eq!(items(&pg).await, ["first", "later"]);
    batched.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_unit_fails_its_batch_and_the_combiner_works_on() {
    let Some(pg) = fresh().await else { return };
    sqlx::query("CREATE TABLE items (id text PRIMARY KEY)")
        .execute(pg.primary())
        .await
        .unwrap();
    let batched = on_schema(&pg, "combiner-panic", one_worker()).await;
    let c = batched.combiner();
    let (go, first) = occupy(c).await;
    let release = async move {
        let _ = go.send(());
    };
    let (a, p, ()) = tokio::join!(
        c.run(|conn| insert(conn, &["a"]).boxed()),
        c.run(|conn| {
            async move {
                let txid = match insert(conn, &["p"]).await? {
                    UnitOutcome::Commit(t) | UnitOutcome::Rollback(t) => t,
                };
                // A transaction id is positive: this is the unit's bug, a panic.
                assert!(txid < 0, "a unit's bug");
                Ok::<_, PortError>(UnitOutcome::Commit(txid))
            }
            .boxed()
        }),
        release,
    );
    let _ = first.await.unwrap().unwrap();
    assert_eq!(a.unwrap_err().kind, ErrorKind::Internal);
    assert_eq!(p.unwrap_err().kind, ErrorKind::Internal);
    assert_eq!(items(&pg).await, ["first"]);
    let _ = c
        .run(|conn| insert(conn, &["later"]).boxed())
        .await
        .unwrap();
    batched.close().await;
}

#[tokio::test]
async fn with_group_commit_off_each_unit_commits_alone() {
    let Some(pg) = fresh().await else { return };
    sqlx::query("CREATE TABLE items (id text PRIMARY KEY)")
        .execute(pg.primary())
        .await
        .unwrap();
    let alone = on_schema(&pg, "combiner-off", GroupCommit::disabled()).await;
    let c = alone.combiner();
    let (a, b) = tokio::join!(
        c.run(|conn| insert(conn, &["a"]).boxed()),
        c.run(|conn| insert(conn, &["b", "a"]).boxed()),
    );
    let _ = a.unwrap();
    assert_eq!(b.unwrap_err().kind, ErrorKind::Conflict);
    assert_eq!(items(&pg).await, ["a"]);
    alone.close().await;
}

fn key(sku: &str) -> StockKey {
    StockKey::new(Sku::new(sku).unwrap(), LocationId::new("wh-1").unwrap())
}

/// A hundred buyers of the last unit through a combiner with `workers` and batches of at most
/// `max_batch`: exactly one hold, and the counts agree.
async fn last_unit(shards: usize, workers: usize, max_batch: usize) {
    let Some(pg) = fresh().await else { return };
    let batched = on_schema(
        &pg,
        "combiner-last",
        GroupCommit {
            workers,
            max_batch,
            ..GroupCommit::default()
        },
    )
    .await;
    let store = Arc::new(batched.stock());
    let k = key(&format!("LAST-{shards}"));
    store
        .configure(&k, StockConfig::sharded(shards))
        .await
        .unwrap();
    let _ = store
        .receive(&IdempotencyKey::new("po-last").unwrap(), &k, 1, t0())
        .await
        .unwrap();
    let buyers: Vec<_> = (0..100)
        .map(|i| {
            let (store, k) = (store.clone(), k.clone());
            tokio::spawn(async move {
                store
                    .reserve(
                        &HoldId::new(format!("buyer-{i}")).unwrap(),
                        &[StockLine {
                            key: k.clone(),
                            quantity: 1,
                        }],
                        t0() + TimeDelta::minutes(15),
                        t0(),
                    )
                    .await
            })
        })
        .collect();
    let mut won = 0;
    for b in buyers {
        match b.await.unwrap() {
            Ok(_) => won += 1,
            Err(Error::InsufficientStock { .. }) => {}
            Err(e) => panic!("a buyer got {e}"),
        }
    }
    assert_eq!(won, 1, "exactly one buyer gets the last unit");
    let holds: i64 = sqlx::query_scalar("SELECT count(*) FROM holds")
        .fetch_one(pg.primary())
        .await
        .unwrap();
    assert_eq!(holds, 1, "one hold stored");
    let level = pg.stock().level(&k, t0()).await.unwrap();
    assert_eq!((level.available, level.held), (0, 1));
    let free: i64 = sqlx::query_scalar("SELECT SUM(free)::bigint FROM stock_counters")
        .fetch_one(pg.primary())
        .await
        .unwrap();
    assert_eq!(free, 0, "no share left to sell");
    batched.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batched_buyers_of_the_last_unit_on_one_row_get_one_hold() {
    last_unit(1, 4, 8).await;
    last_unit(1, 1, 64).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batched_buyers_of_the_last_unit_on_sixteen_rows_get_one_hold() {
    last_unit(16, 4, 8).await;
    last_unit(16, 1, 64).await;
}

/// A combiner first used on a runtime that has since ended (a handle shared between runtimes,
/// as a test suite or a CLI does) starts its worker again on the runtime of the next call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_runtime_ended_starts_again_on_the_next() {
    let Some(pg) = fresh().await else { return };
    sqlx::query("CREATE TABLE items (id text PRIMARY KEY)")
        .execute(pg.primary())
        .await
        .unwrap();
    let combiner = Combiner::new(pg.primary().clone(), one_worker());
    let first = combiner.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let got: Result<i64, PortError> = first
                .run(|c| insert(c, &["on-the-first-runtime"]).boxed())
                .await;
            got.unwrap();
        });
    })
    .join()
    .unwrap();
    let got: Result<i64, PortError> = combiner
        .run(|c| insert(c, &["on-the-second-runtime"]).boxed())
        .await;
    got.unwrap();
    assert_eq!(
        items(&pg).await,
        ["on-the-first-runtime", "on-the-second-runtime"]
    );
}
