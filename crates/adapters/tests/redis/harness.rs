//! Connections for the tests: a fresh namespace per test, on the single node or the cluster.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use adapters::redis::Redis;

fn skip(why: &str) -> Option<Redis> {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("Redis is required under CI=true: {why}");
    }
    #[allow(clippy::print_stderr, reason = "the reason a test is skipped")]
    {
        eprintln!("skipped: Redis unavailable ({why}); set REDIS_URL / REDIS_CLUSTER_URLS");
    }
    None
}

/// A namespace no other test (or earlier run) uses.
pub(crate) fn namespace() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    #[allow(
        clippy::disallowed_methods,
        reason = "test namespaces are named by wall time"
    )]
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "test-{t}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The single node, in a fresh namespace.
pub(crate) async fn single() -> Option<Redis> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    match Redis::connect(&url).await {
        Ok(r) => Some(r.with_namespace(&namespace())),
        Err(e) => skip(&e.to_string()),
    }
}

/// The cluster, in a fresh namespace.
pub(crate) async fn cluster() -> Option<Redis> {
    let urls = std::env::var("REDIS_CLUSTER_URLS").unwrap_or_else(|_| {
        "redis://127.0.0.1:7001,redis://127.0.0.1:7002,redis://127.0.0.1:7003".into()
    });
    let urls: Vec<&str> = urls.split(',').collect();
    match Redis::connect_cluster(&urls).await {
        Ok(r) => Some(r.with_namespace(&namespace())),
        Err(e) => skip(&e.to_string()),
    }
}

/// A redis-server of the test's own on `port`, or `None` (with the reason printed) when
/// there is no `redis-server` to start; under `CI=true` that fails the test.
pub(crate) fn server(port: u16) -> Option<Child> {
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    match child {
        Ok(c) => Some(c),
        Err(e) => {
            assert!(
                !std::env::var("CI").is_ok_and(|v| v == "true"),
                "redis-server is required under CI=true: {e}"
            );
            #[allow(clippy::print_stderr, reason = "the reason a test is skipped")]
            {
                eprintln!("skipped: no redis-server binary to start ({e})");
            }
            None
        }
    }
}

/// A plain connection to the single node, for tests that arrange keys by hand.
pub(crate) async fn raw_single() -> redis::aio::MultiplexedConnection {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

pub(crate) async fn until_up(url: &str) -> Redis {
    for _ in 0..100 {
        if let Ok(r) = Redis::connect(url).await {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("redis-server on {url} did not start");
}
