//! Faults the server causes, and input meant to break a store: nothing is half-written, every
//! failure has its kind, and the store works on afterwards.

use std::sync::Arc;
use std::time::Duration;

use adapters::postgres::{Postgres, PostgresConfig};
use commerce_core::testkit::{events_with_id, sample_order, sample_product, t0};
use commerce_core::{
    CasOutcome, CatalogStore, DomainEvent, ErrorKind, EventEnvelope, EventId, EventLog, OrderId,
    OrderStore, ProductId, Sku,
};

use crate::harness::{fresh, url};

fn marker(id: &str) -> EventEnvelope {
    EventEnvelope::new(
        EventId::new(id).unwrap(),
        t0(),
        DomainEvent::OrderCancelled {
            order_id: OrderId::new("marker").unwrap(),
            reason: "fault test".into(),
        },
    )
}

/// The schema a store works in, for a second pool on it.
async fn schema_of(pg: &Postgres) -> String {
    sqlx::query_scalar("SELECT current_schema()::text")
        .fetch_one(pg.primary())
        .await
        .unwrap()
}

async fn on_schema(schema: String, config: PostgresConfig) -> Postgres {
    Postgres::connect_shards(
        &[&url()],
        PostgresConfig {
            schema: Some(schema),
            ..config
        },
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connections_killed_mid_write_leave_whole_orders_or_none() {
    let Some(pg) = fresh().await else { return };
    let schema = schema_of(&pg).await;
    let victim = on_schema(
        schema,
        PostgresConfig {
            application_name: "fault-victim".into(),
            max_connections: 4,
            ..PostgresConfig::default()
        },
    )
    .await;
    // A killer terminates the victim's connections while it writes.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let killer = {
        let (pool, stop) = (pg.primary().clone(), stop.clone());
        tokio::spawn(async move {
            let mut kills = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let n: i64 = sqlx::query_scalar(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                     WHERE application_name = 'fault-victim' AND state <> 'idle'",
                )
                .fetch_one(&pool)
                .await
                .unwrap_or(0);
                kills += u64::try_from(n).unwrap_or(0);
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
            kills
        })
    };
    let orders = victim.orders();
    let mut outcomes = Vec::new();
    for i in 0..200 {
        let id = format!("killed-{i}");
        let result = orders
            .insert(sample_order(&id), &[marker(&format!("{id}:placed"))])
            .await;
        outcomes.push((id, result));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let kills = killer.await.unwrap();
    let log = pg.event_log();
    let reader = pg.orders();
    let mut failed = 0;
    for (id, result) in &outcomes {
        let stored = reader.get(&OrderId::new(id).unwrap()).await.unwrap();
        let events = events_with_id(&log, &format!("{id}:placed")).await;
        match result {
            Ok(()) => assert!(stored.is_some() && events == 1, "{id}: acknowledged"),
            Err(e) if e.kind == ErrorKind::Indeterminate => {
                assert_eq!(stored.is_some(), events == 1, "{id}: all or nothing");
            }
            Err(e) => {
                failed += 1;
                assert!(
                    matches!(e.kind, ErrorKind::Unavailable),
                    "{id}: a killed connection is Unavailable, not {e}"
                );
                assert!(
                    stored.is_none() && events == 0,
                    "{id}: refused, nothing written"
                );
            }
        }
    }
    #[allow(clippy::print_stderr, reason = "what the fault test did")]
    {
        eprintln!("{kills} connections killed, {failed} of 200 writes refused");
    }
    // The store works on.
    orders
        .insert(sample_order("after-the-kills"), &[])
        .await
        .unwrap();
}

#[tokio::test]
async fn an_exhausted_pool_is_unavailable_and_writes_nothing() {
    let Some(pg) = fresh().await else { return };
    let schema = schema_of(&pg).await;
    let tiny = on_schema(
        schema,
        PostgresConfig {
            max_connections: 1,
            acquire_timeout: Duration::from_millis(200),
            ..PostgresConfig::default()
        },
    )
    .await;
    let held = tiny.primary().acquire().await.unwrap();
    let err = tiny
        .orders()
        .insert(sample_order("starved"), &[marker("starved:placed")])
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
    drop(held);
    assert!(
        tiny.orders()
            .get(&OrderId::new("starved").unwrap())
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(events_with_id(&pg.event_log(), "starved:placed").await, 0);
}

#[tokio::test]
async fn a_transaction_the_server_rolls_back_is_run_again() {
    let Some(pg) = fresh().await else { return };
    // Every other write to `products` fails as a serialization failure would.
    for statement in [
        "CREATE SEQUENCE flaky",
        "CREATE FUNCTION fail_every_other() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN IF nextval('flaky') % 2 = 1 THEN \
         RAISE EXCEPTION 'injected' USING ERRCODE = '40001'; END IF; RETURN NEW; END $$",
        "CREATE TRIGGER flaky BEFORE INSERT OR UPDATE ON products \
         FOR EACH ROW EXECUTE FUNCTION fail_every_other()",
    ] {
        sqlx::query(statement).execute(pg.primary()).await.unwrap();
    }
    let catalog = pg.catalog();
    for i in 0..10 {
        let p = sample_product(&format!("p-{i}"), &format!("SKU-{i}"));
        assert_eq!(catalog.put(p, &[]).await.unwrap(), CasOutcome::Committed);
    }
    assert_eq!(catalog.list(None, 100).await.unwrap().len(), 10);
    // Failing every time: the caller hears `Unavailable` and nothing is written.
    sqlx::query(
        "CREATE OR REPLACE FUNCTION fail_every_other() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN RAISE EXCEPTION 'injected' USING ERRCODE = '40001'; END $$",
    )
    .execute(pg.primary())
    .await
    .unwrap();
    let err = catalog
        .put(sample_product("p-never", "SKU-NEVER"), &[])
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable);
    assert!(
        catalog
            .get(&ProductId::new("p-never").unwrap())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn hostile_text_is_stored_and_read_back_intact() {
    let Some(pg) = fresh().await else { return };
    let catalog = pg.catalog();
    let mut p = sample_product("p-hostile", "SKU-HOSTILE");
    p.title = "Robert'); DROP TABLE products;-- \"quoted\" \\ back\\slash ünïcødé 中文 🛒".into();
    p.description = "x".repeat(10 * 1024);
    p.brand = Some("O'Brien & Søns".into());
    assert_eq!(
        catalog.put(p.clone(), &[]).await.unwrap(),
        CasOutcome::Committed
    );
    assert_eq!(
        catalog
            .get_by_sku(&Sku::new("SKU-HOSTILE").unwrap())
            .await
            .unwrap(),
        Some(p)
    );
    // Ids at their longest.
    let long = "o".repeat(commerce_core::limits::ID_LEN_MAX);
    let order = sample_order(&long);
    pg.orders().insert(order.clone(), &[]).await.unwrap();
    assert_eq!(pg.orders().get(order.id()).await.unwrap(), Some(order));
    // The log kept every event whole.
    let log = pg.event_log();
    assert!(log.end_offset().await.unwrap() == 0, "no events were given");
}
