//! The server killed (SIGKILL) in the middle of checkouts on PostgreSQL, then started again:
//! every checkout saga finishes, and no card is charged without a confirmed order (nor an order
//! confirmed without its one charge); stock committed is exactly what the confirmed orders hold.
//!
//! Needs `DATABASE_URL`; without it the test says why and passes, except under `CI=true`.

#[path = "common/servers.rs"]
mod servers;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use adapters::http::{Auth, Role};
use adapters::postgres::{Postgres, PostgresConfig};
use commerce_core::{LocationId, OrderStatus, Sku, UserId};
use inventory::StockKey;

const SECRET: &str = "crash-test-secret-of-thirty-two-bytes!";

struct Server {
    port: u16,
    data: PathBuf,
    url: String,
    schema: String,
}

impl Server {
    fn start(&self) -> Child {
        let child = Command::new(env!("CARGO_BIN_EXE_reference-server"))
            .env("PORT", self.port.to_string())
            .env("DATA_DIR", &self.data)
            .env("DATABASE_URL", &self.url)
            .env("DATABASE_SCHEMA", &self.schema)
            .env("AUTH_SECRET", SECRET)
            .env("SEED", "0")
            .env("RATE_PER_SEC", "1000000")
            .env("SAGA_LEASE_SECS", "3")
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .spawn()
            .expect("the server starts");
        let ready = (0..600).any(|_| {
            let up = call(self.port, "GET", "/readyz", None, None, None).0 == 200;
            if !up {
                std::thread::sleep(Duration::from_millis(100));
            }
            up
        });
        assert!(ready, "the server never got ready");
        child
    }
}

/// One request on a connection of its own; (status, body), status 0 when the server is gone.
fn call(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
    key: Option<&str>,
) -> (u16, String) {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return (0, String::new());
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if let Some(k) = key {
        req.push_str(&format!("Idempotency-Key: {k}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() {
        req.push_str("Content-Type: application/json\r\n");
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    if s.write_all(req.as_bytes()).is_err() {
        return (0, String::new());
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
    (status, body)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_during_checkouts_recovers_every_saga_and_charges_only_orders() {
    let Some(url) = servers::server_env("DATABASE_URL", "the crash test") else {
        return;
    };
    let schema = servers::fresh_schema(&url, "crash").await;
    let data: PathBuf =
        std::env::temp_dir().join(format!("reference-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let server = Server {
        port: free_port(),
        data: data.clone(),
        url: url.clone(),
        schema: schema.clone(),
    };

    let mut child = server.start();
    let admin = std::fs::read_to_string(Path::new(&data).join("admin.token")).expect("admin token");
    let port = server.port;
    assert_eq!(
        call(
            port,
            "PUT",
            "/admin/products/CRASH-1",
            Some(r#"{"title": "Crash lantern", "price": "9.00", "category": "Home/Lighting"}"#),
            Some(&admin),
            None
        )
        .0,
        200
    );
    assert_eq!(
        call(
            port,
            "POST",
            "/admin/stock/CRASH-1/receive",
            Some(r#"{"units": 100000}"#),
            Some(&admin),
            Some("crash-stock")
        )
        .0,
        200
    );

    // Shoppers check out in a loop on 16 threads until the server dies under them. A kill that
    // happens to land between checkouts proves nothing, so it is repeated (up to five times)
    // until one leaves sagas half-way.
    let auth = Arc::new(
        Auth::new(
            SECRET.as_bytes(),
            "commerce-sdk-reference",
            reference_server::system_clock(),
        )
        .expect("auth"),
    );
    let pg = Postgres::connect_shards(
        &[url.as_str()],
        PostgresConfig {
            schema: Some(schema.clone()),
            ..PostgresConfig::default()
        },
    )
    .await
    .expect("PostgreSQL");
    let journal = pg.saga_journal();
    let unfinished_now = || async {
        saga::SagaJournal::unfinished(&journal, "checkout", 10_000)
            .await
            .expect("journal")
            .len()
    };
    let placed = Arc::new(AtomicU64::new(0));
    let mut interrupted = 0;
    for round in 0..5 {
        if round > 0 {
            child = server.start();
        }
        let dead = Arc::new(AtomicBool::new(false));
        let mut shoppers = Vec::new();
        for t in 0..16 {
            let (auth, placed, dead) = (auth.clone(), placed.clone(), dead.clone());
            shoppers.push(std::thread::spawn(move || {
                let token = auth
                    .issue(&UserId::new(format!("crash{t}@example.com")).expect("user"), Role::Customer)
                    .expect("token");
                let mut n = 0;
                while !dead.load(Ordering::Relaxed) {
                    let _ = call(port, "POST", "/cart/lines", Some(r#"{"sku": "CRASH-1", "quantity": 2}"#), Some(&token), None);
                    let _ = call(port, "PUT", "/cart/shipping-address", Some(r#"{"name": "Ada", "line1": "1 High Street", "city": "London", "postal_code": "N1 1AA", "country": "GB"}"#), Some(&token), None);
                    let (status, _) = call(port, "POST", "/cart/checkout", Some(r#"{"payment_method": "tok_visa"}"#), Some(&token), Some(&format!("r{round}-c{n}")));
                    if status == 201 {
                        let _ = placed.fetch_add(1, Ordering::Relaxed);
                    }
                    n += 1;
                }
            }));
        }
        let target = placed.load(Ordering::Relaxed) + 40;
        let flowing = (0..600).any(|_| {
            std::thread::sleep(Duration::from_millis(50));
            placed.load(Ordering::Relaxed) >= target
        });
        assert!(flowing, "checkouts never got going");
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        dead.store(true, Ordering::Relaxed);
        for s in shoppers {
            s.join().expect("shopper");
        }
        interrupted = unfinished_now().await;
        if interrupted > 0 {
            break;
        }
    }
    assert!(interrupted > 0, "no kill in five landed inside a checkout");
    let before_restart = placed.load(Ordering::Relaxed);

    // Started again: recovery takes over the sagas once the dead worker's lease (3 s) ends.
    let mut child = server.start();
    let mut unfinished = usize::MAX;
    for _ in 0..300 {
        unfinished = unfinished_now().await;
        if unfinished == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        unfinished, 0,
        "every checkout saga finished after the restart"
    );

    // The books: one charge per confirmed order, none without one; stock committed matches.
    let payments = commerce_core::PaymentGateway::list(&pg.payment_sandbox(), None, 100_000)
        .await
        .expect("payments");
    let orders = pg.orders();
    let mut confirmed_units = 0i64;
    let mut confirmed = 0u64;
    let mut charges: HashMap<String, usize> = HashMap::new();
    for p in &payments {
        let order = commerce_core::OrderStore::get(&orders, &p.order_id)
            .await
            .expect("order")
            .unwrap_or_else(|| panic!("a payment without an order: {p:?}"));
        *charges.entry(p.order_id.to_string()).or_default() += 1;
        if order.status() == OrderStatus::Confirmed {
            assert_eq!(
                p.authorized,
                order.totals().grand_total,
                "charged the order's total"
            );
            assert!(p.status != commerce_core::PaymentStatus::Voided);
            confirmed_units += order
                .lines()
                .iter()
                .map(|l| i64::from(l.quantity))
                .sum::<i64>();
            confirmed += 1;
        } else {
            assert_eq!(order.status(), OrderStatus::Cancelled, "{order:?}");
            assert!(
                p.captured.is_zero(),
                "a cancelled order holds no money: {p:?}"
            );
        }
    }
    assert!(charges.values().all(|n| *n == 1), "one payment per order");
    assert!(
        confirmed >= before_restart,
        "every checkout answered 201 before the kill is still an order ({confirmed} < {before_restart})"
    );
    let level = inventory::StockLevels::level(
        &pg.stock(),
        &StockKey::new(
            Sku::new("CRASH-1").unwrap(),
            LocationId::new("wh-london").unwrap(),
        ),
        reference_server::system_clock().now(),
    )
    .await
    .expect("stock");
    assert_eq!(
        level.committed, confirmed_units,
        "stock committed = units in confirmed orders"
    );
    pg.close().await;
    let _ = std::fs::remove_dir_all(&data);
}
