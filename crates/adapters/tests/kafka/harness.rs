//! A broker per test run, topics per test.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use adapters::kafka::{KafkaConfig, KafkaPublisher};
use chrono::{DateTime, TimeZone, Utc};
use commerce_core::{DomainEvent, EventEnvelope, EventId, LocationId, OrderId, Sku};

/// The broker the tests use.
pub(crate) fn brokers() -> String {
    std::env::var("KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".to_owned())
}

#[allow(
    clippy::disallowed_methods,
    reason = "topic prefixes are named by wall-clock time"
)]
fn now_millis() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// A topic prefix no other test uses.
pub(crate) fn prefix() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "t{}-{}-{}.",
        now_millis(),
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A config under a fresh prefix with its topics created (`partitions` each), or `None` (the
/// reason printed) without a broker, unless `CI=true`.
pub(crate) async fn config(partitions: i32) -> Option<KafkaConfig> {
    let mut config = KafkaConfig::new(brokers()).with_prefix(prefix());
    config.topics.partitions = partitions;
    config.read_wait = Duration::from_millis(100);
    // tansu 0.6 answers a fetch from inside a batch with the next batch.
    config.whole_batch_fetch = std::env::var("KAFKA_WHOLE_BATCH_FETCH").map_or(true, |v| v != "0");
    config.overrides = vec![
        ("session.timeout.ms".to_owned(), "6000".to_owned()),
        ("socket.timeout.ms".to_owned(), "10000".to_owned()),
    ];
    if !reachable(&brokers()) {
        return unavailable("nothing listens there");
    }
    match tokio::time::timeout(Duration::from_secs(20), config.ensure_topics()).await {
        Ok(Ok(())) => Some(config),
        Ok(Err(e)) => unavailable(&e.to_string()),
        Err(_) => unavailable("creating topics timed out"),
    }
}

fn reachable(brokers: &str) -> bool {
    brokers.split(',').any(|b| {
        std::net::TcpStream::connect_timeout(
            &b.parse().unwrap_or_else(|_| ([127, 0, 0, 1], 9092).into()),
            Duration::from_secs(1),
        )
        .is_ok()
    })
}

fn unavailable(why: &str) -> Option<KafkaConfig> {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("a Kafka broker is required under CI=true: {why}");
    }
    #[allow(clippy::print_stderr, reason = "the reason a test is skipped")]
    {
        eprintln!(
            "skipped: Kafka broker unavailable at {} ({why}); set KAFKA_BROKERS",
            brokers()
        );
    }
    None
}

pub(crate) fn at(second: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap() + chrono::TimeDelta::seconds(second)
}

/// An order event of `order` numbered `n` (its status history as events).
pub(crate) fn order_event(order: &str, n: u32) -> EventEnvelope {
    EventEnvelope::new(
        EventId::new(format!("{order}-ev-{n}")).unwrap(),
        at(i64::from(n)),
        DomainEvent::OrderStatusChanged {
            order_id: OrderId::new(order).unwrap(),
            from: commerce_core::OrderStatus::Confirmed,
            to: commerce_core::OrderStatus::Confirmed,
            transition: commerce_core::TransitionKind::Capture,
            seq: n,
        },
    )
}

/// An inventory event of `sku` numbered `n`, carrying `n` as its availability.
pub(crate) fn stock_event(sku: &str, n: u32) -> EventEnvelope {
    EventEnvelope::new(
        EventId::new(format!("{sku}-st-{n}")).unwrap(),
        at(i64::from(n)),
        DomainEvent::InventoryChanged {
            sku: Sku::new(sku).unwrap(),
            location: LocationId::new("wh").unwrap(),
            on_hand: i64::from(n),
            available: i64::from(n),
        },
    )
}

pub(crate) fn publisher(config: &KafkaConfig) -> KafkaPublisher {
    KafkaPublisher::new(config).unwrap()
}

/// A relay of `pg`'s outbox running on a task until the sender is used (or dropped).
pub(crate) fn start_relay(
    pg: &adapters::postgres::Postgres,
    config: &KafkaConfig,
    relay_config: adapters::kafka::RelayConfig,
) -> (
    std::sync::Arc<adapters::kafka::OutboxRelay>,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let relay = std::sync::Arc::new(adapters::kafka::OutboxRelay::new(
        pg.clone(),
        publisher(config),
        relay_config,
    ));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = {
        let relay = std::sync::Arc::clone(&relay);
        tokio::spawn(async move {
            relay
                .run(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        })
    };
    (relay, stop, task)
}

/// This test binary run again as a child doing the test `test` (which acts only when `env`
/// is set), returned once it printed `ready`. The caller kills it.
pub(crate) async fn spawn_child(
    test: &str,
    env: (&str, String),
    ready: &str,
) -> std::process::Child {
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(env.0, env.1)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let ready = ready.to_owned();
    let seen = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|l| l.contains(&ready))
    });
    assert!(
        tokio::time::timeout(Duration::from_secs(60), seen)
            .await
            .unwrap()
            .unwrap(),
        "the child {test} started"
    );
    child
}
