//! The reference server under load over loopback HTTP/1.1, beside the same run's trivial
//! handler (the HTTP ceiling of this box: axum answering "ok" to the same client):
//! - `GET /search` on a synthetic catalog (1,000,000 products under `cargo bench`; the search
//!   router of the `http` adapter over a RAM index), WANDS queries round-robin, with facets;
//! - `GET /products/{sku}` on the demo shop (3,000 products, memory stores);
//! - checkout as shoppers do it: add a line, give the address, `POST /cart/checkout` with an
//!   `Idempotency-Key` (a new key and a new cart each time), per route and in checkouts/s;
//! - checkout alone (orders/s): `POST /cart/checkout` for shoppers whose carts were filled
//!   beforehand, untimed (`HTTP_LOAD_CARTS` per connection, 1,500 under `cargo bench`);
//! - a mix: 70 % search, 20 % product page, 10 % add to cart.
//!
//! Closed loop: each of `HTTP_LOAD_CONNECTIONS` (32) keep-alive connections sends its next
//! request when the last answer arrived, so the throughput is the ceiling and the percentiles
//! are those of a saturated server (open-loop latency at a fixed rate is not measured here).
//! The load generator and the server share the box's cores.
//!
//! `cargo bench -p benches --features http --bench http_load`

#![allow(clippy::print_stdout, reason = "a bench binary prints its figures")]
#![allow(clippy::disallowed_methods, reason = "a benchmark measures wall time")]
#![allow(
    clippy::float_arithmetic,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "rates and samples for display only"
)]

#[path = "common/catalog.rs"]
mod catalog;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use adapters::http::search::SearchApi;
use axum::Router;
use axum::body::Bytes;
use axum::routing::get;
use catalog::{Catalog, queries};
use commerce_core::{Currency, Money, UserId};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use search::{SearchIndex, Storage, TenantConfig, TenantId};

type Client = SendRequest<Full<Bytes>>;

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let _server = tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    addr
}

async fn connect(addr: SocketAddr) -> Client {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    let _conn = tokio::spawn(async move {
        let _ = conn.await;
    });
    sender
}

struct Call<'a> {
    method: Method,
    path: String,
    body: Option<String>,
    headers: Vec<(&'a str, String)>,
}

impl Call<'_> {
    fn get(path: String) -> Self {
        Call {
            method: Method::GET,
            path,
            body: None,
            headers: Vec::new(),
        }
    }
}

/// Sends one request and drains the answer; returns the status and how long it took.
async fn send(client: &mut Client, call: &Call<'_>) -> (StatusCode, Duration) {
    let mut req = Request::builder()
        .method(call.method.clone())
        .uri(&call.path)
        .header("host", "127.0.0.1");
    if call.body.is_some() {
        req = req.header("content-type", "application/json");
    }
    for (k, v) in &call.headers {
        req = req.header(*k, v);
    }
    let req = req
        .body(Full::new(Bytes::from(
            call.body.clone().unwrap_or_default(),
        )))
        .expect("request");
    client.ready().await.expect("connection ready");
    let t = Instant::now();
    let res = client.send_request(req).await.expect("response");
    let status = res.status();
    let _ = res.into_body().collect().await.expect("body");
    (status, t.elapsed())
}

#[derive(Default)]
struct Sample {
    latencies: Vec<Duration>,
    errors: u64,
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

struct Row {
    name: String,
    per_sec: f64,
    p50: f64,
    p99: f64,
    errors: u64,
}

/// Runs `connections` closed loops of `work` for `run`; `work` returns its requests' timings.
async fn closed_loop<F, Fut>(
    name: &str,
    addr: SocketAddr,
    connections: usize,
    run: Duration,
    work: F,
) -> Row
where
    F: Fn(Client, u64, Arc<AtomicBool>) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = Sample> + Send + 'static,
{
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for c in 0..connections {
        let client = connect(addr).await;
        let work = work.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(
            async move { work(client, c as u64, stop).await },
        ));
    }
    let start = Instant::now();
    tokio::time::sleep(run).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Sample::default();
    for t in tasks {
        let s = t.await.expect("worker");
        all.latencies.extend(s.latencies);
        all.errors += s.errors;
    }
    let secs = start.elapsed().as_secs_f64();
    all.latencies.sort_unstable();
    Row {
        name: name.to_owned(),
        per_sec: all.latencies.len() as f64 / secs,
        p50: percentile(&all.latencies, 0.50),
        p99: percentile(&all.latencies, 0.99),
        errors: all.errors,
    }
}

async fn repeat(
    mut client: Client,
    stop: Arc<AtomicBool>,
    next: impl Fn(u64) -> Call<'static>,
) -> Sample {
    let mut s = Sample::default();
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        let (status, d) = send(&mut client, &next(i)).await;
        if status.is_success() {
            s.latencies.push(d);
        } else {
            s.errors += 1;
        }
        i += 1;
    }
    s
}

/// A query string value: letters, digits and `-_.~` as they are, spaces as `+`, the rest
/// percent-encoded.
fn form_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b' ' => "+".into(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let measured = std::env::args().any(|a| a == "--bench");
    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    let run = Duration::from_millis(env("HTTP_LOAD_MILLIS").unwrap_or(if measured {
        5_000
    } else {
        300
    }));
    let n = env("HTTP_LOAD_PRODUCTS").unwrap_or(if measured { 1_000_000 } else { 5_000 });
    let connections = env("HTTP_LOAD_CONNECTIONS").unwrap_or(32) as usize;
    if !measured {
        println!("smoke run (use `cargo bench` for figures)");
    }

    // The servers: a trivial handler, search over a synthetic catalog, the reference shop.
    let trivial = serve(Router::new().route("/", get(|| async { "ok" }))).await;
    let generator = Catalog::new();
    let mut config = TenantConfig::new(&[Currency::EUR, Currency::USD]);
    config.writer_threads = 2;
    config.writer_memory_bytes = 1_000_000_000;
    let index = Arc::new(
        SearchIndex::create(TenantId::new("load").expect("tenant"), config, Storage::Ram)
            .expect("index"),
    );
    let t = Instant::now();
    {
        let mut writer = index.writer();
        for i in 0..n {
            writer.upsert(&generator.product(i)).expect("upsert");
        }
        writer.commit(Some(0)).expect("commit");
    }
    println!("indexed {n} products in {:.1} s", t.elapsed().as_secs_f64());
    let eur = |m: i64| Money::from_minor(m, Currency::EUR);
    let search = serve(
        adapters::http::search::router(SearchApi {
            index,
            currency: Currency::EUR,
            price_buckets: vec![eur(5_000), eur(10_000), eur(25_000), eur(50_000)],
        })
        .split_for_parts()
        .0,
    )
    .await;
    let dir = std::env::temp_dir().join(format!("http-load-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let shop_config = reference_server::Config {
        auth_secret: Some(vec![9; 32]),
        rate_per_sec: 1_000_000,
        ..reference_server::Config::embedded(dir.clone())
    };
    let app = reference_server::build(&shop_config, reference_server::system_clock())
        .await
        .expect("the shop starts");
    let shop = serve(app.router.clone()).await;
    let admin = app.admin_token.clone();
    {
        let mut c = connect(shop).await;
        let auth = ("authorization", format!("Bearer {admin}"));
        let made = send(
            &mut c,
            &Call {
                method: Method::PUT,
                path: "/admin/products/BENCH-1".into(),
                body: Some(
                    r#"{"title": "Bench lantern", "price": "5.00", "category": "Home/Lighting"}"#
                        .into(),
                ),
                headers: vec![auth.clone()],
            },
        )
        .await;
        assert_eq!(made.0, StatusCode::OK);
        let stocked = send(
            &mut c,
            &Call {
                method: Method::POST,
                path: "/admin/stock/BENCH-1/receive".into(),
                body: Some(r#"{"units": 1000000000}"#.into()),
                headers: vec![auth, ("idempotency-key", "bench-stock".into())],
            },
        )
        .await;
        assert_eq!(stocked.0, StatusCode::OK);
    }
    let skus: Arc<Vec<String>> = Arc::new(
        reference_server::seed::products()
            .expect("demo products")
            .into_iter()
            .map(|p| p.product.sku.to_string())
            .collect(),
    );
    let qs: Arc<Vec<String>> = Arc::new(queries().into_iter().map(|q| form_encode(&q)).collect());

    let mut rows = Vec::new();
    rows.push(
        closed_loop(
            "trivial handler GET /",
            trivial,
            connections,
            run,
            |c, _, stop| repeat(c, stop, |_| Call::get("/".into())),
        )
        .await,
    );
    let q = qs.clone();
    rows.push(
        closed_loop(
            &format!("GET /search ({n} products)"),
            search,
            connections,
            run,
            move |c, id, stop| {
                let q = q.clone();
                repeat(c, stop, move |i| {
                    Call::get(format!(
                        "/search?q={}&limit=24",
                        q[((id * 7919 + i) as usize) % q.len()]
                    ))
                })
            },
        )
        .await,
    );
    let s = skus.clone();
    rows.push(
        closed_loop(
            "GET /products/{sku} (demo shop)",
            shop,
            connections,
            run,
            move |c, id, stop| {
                let s = s.clone();
                repeat(c, stop, move |i| {
                    Call::get(format!(
                        "/products/{}",
                        s[((id * 104_729 + i) as usize) % s.len()]
                    ))
                })
            },
        )
        .await,
    );
    let checkouts = Arc::new(AtomicU64::new(0));
    let auth = app.auth.clone();
    let done = checkouts.clone();
    let t = Instant::now();
    let flow = closed_loop("checkout flow (3 requests)", shop, connections, run, move |mut c, id, stop| {
        let token = auth
            .issue(&UserId::new(format!("shopper{id}@example.com")).expect("user"), adapters::http::Role::Customer)
            .expect("token");
        let done = done.clone();
        async move {
            let bearer = ("authorization", format!("Bearer {token}"));
            let mut s = Sample::default();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let steps = [
                    Call {
                        method: Method::POST,
                        path: "/cart/lines".into(),
                        body: Some(r#"{"sku": "BENCH-1", "quantity": 1}"#.into()),
                        headers: vec![bearer.clone()],
                    },
                    Call {
                        method: Method::PUT,
                        path: "/cart/shipping-address".into(),
                        body: Some(r#"{"name": "Ada", "line1": "1 High Street", "city": "London", "postal_code": "N1 1AA", "country": "GB"}"#.into()),
                        headers: vec![bearer.clone()],
                    },
                    Call {
                        method: Method::POST,
                        path: "/cart/checkout".into(),
                        body: Some(r#"{"payment_method": "tok_visa"}"#.into()),
                        headers: vec![bearer.clone(), ("idempotency-key", format!("k-{i}"))],
                    },
                ];
                for step in &steps {
                    let (status, d) = send(&mut c, step).await;
                    if status.is_success() {
                        s.latencies.push(d);
                    } else {
                        s.errors += 1;
                    }
                    if status == StatusCode::CREATED {
                        let _ = done.fetch_add(1, Ordering::Relaxed);
                    }
                }
                i += 1;
            }
            s
        }
    })
    .await;
    let checkout_rate = checkouts.load(Ordering::Relaxed) as f64 / t.elapsed().as_secs_f64();
    rows.push(flow);

    // Checkout alone, as orders/s: every shopper's cart filled beforehand (untimed), one
    // shopper per checkout.
    let per_conn = env("HTTP_LOAD_CARTS").unwrap_or(if measured { 1_500 } else { 10 }) as usize;
    let address = r#"{"name": "Ada", "line1": "1 High Street", "city": "London", "postal_code": "N1 1AA", "country": "GB"}"#;
    let tokens: Arc<Vec<Vec<String>>> = Arc::new(
        (0..connections)
            .map(|id| {
                (0..per_conn)
                    .map(|j| {
                        let user = UserId::new(format!("ready{id}-{j}@example.com")).expect("user");
                        let token = app
                            .auth
                            .issue(&user, adapters::http::Role::Customer)
                            .expect("token");
                        format!("Bearer {token}")
                    })
                    .collect()
            })
            .collect(),
    );
    let t = Instant::now();
    let mut fills = Vec::new();
    for id in 0..connections {
        let tokens = tokens.clone();
        fills.push(tokio::spawn(async move {
            let mut c = connect(shop).await;
            for bearer in &tokens[id] {
                for (method, path, body) in [
                    (
                        Method::POST,
                        "/cart/lines",
                        r#"{"sku": "BENCH-1", "quantity": 1}"#,
                    ),
                    (Method::PUT, "/cart/shipping-address", address),
                ] {
                    let call = Call {
                        method,
                        path: path.into(),
                        body: Some(body.into()),
                        headers: vec![("authorization", bearer.clone())],
                    };
                    assert!(send(&mut c, &call).await.0.is_success(), "filling a cart");
                }
            }
        }));
    }
    for f in fills {
        f.await.expect("fill");
    }
    println!(
        "filled {} carts in {:.1} s",
        connections * per_conn,
        t.elapsed().as_secs_f64()
    );
    let ran_out = Arc::new(AtomicBool::new(false));
    let out = ran_out.clone();
    rows.push(
        closed_loop(
            "POST /cart/checkout (carts ready)",
            shop,
            connections,
            run,
            move |mut c, id, stop| {
                let (tokens, out) = (tokens.clone(), out.clone());
                async move {
                    let mut s = Sample::default();
                    for bearer in &tokens[id as usize] {
                        if stop.load(Ordering::Relaxed) {
                            return s;
                        }
                        let call = Call {
                            method: Method::POST,
                            path: "/cart/checkout".into(),
                            body: Some(r#"{"payment_method": "tok_visa"}"#.into()),
                            headers: vec![
                                ("authorization", bearer.clone()),
                                ("idempotency-key", "ready".into()),
                            ],
                        };
                        let (status, d) = send(&mut c, &call).await;
                        if status == StatusCode::CREATED {
                            s.latencies.push(d);
                        } else {
                            s.errors += 1;
                        }
                    }
                    out.store(true, Ordering::Relaxed);
                    s
                }
            },
        )
        .await,
    );
    if ran_out.load(Ordering::Relaxed) {
        println!(
            "carts ran out before the row's end: its rate is a lower bound (raise HTTP_LOAD_CARTS)"
        );
    }
    let (q, s) = (qs.clone(), skus.clone());
    let auth = app.auth.clone();
    rows.push(
        closed_loop(
            "mix 70/20/10 search/product/add (demo shop)",
            shop,
            connections,
            run,
            move |c, id, stop| {
                let (q, s) = (q.clone(), s.clone());
                let token = auth
                    .issue(
                        &UserId::new(format!("mixer{id}@example.com")).expect("user"),
                        adapters::http::Role::Customer,
                    )
                    .expect("token");
                repeat(c, stop, move |i| {
                    let k = (id * 31 + i) as usize;
                    // One cart change in ten: add a line, and ten requests later remove it.
                    match i % 20 {
                        0 => Call {
                            method: Method::POST,
                            path: "/cart/lines".into(),
                            body: Some(r#"{"sku": "BENCH-1", "quantity": 1}"#.into()),
                            headers: vec![("authorization", format!("Bearer {token}"))],
                        },
                        10 => Call {
                            method: Method::DELETE,
                            path: "/cart/lines/BENCH-1".into(),
                            body: None,
                            headers: vec![("authorization", format!("Bearer {token}"))],
                        },
                        1 | 2 | 11 | 12 => Call::get(format!("/products/{}", s[k % s.len()])),
                        _ => Call::get(format!("/search?q={}&limit=24", q[k % q.len()])),
                    }
                })
            },
        )
        .await,
    );

    let ceiling = rows[0].per_sec;
    println!(
        "\n{connections} keep-alive connections, closed loop, {:.1} s per row, 2 cores shared by client and server",
        run.as_secs_f64()
    );
    println!(
        "{:<46} {:>10} {:>8} {:>9} {:>9} {:>7}",
        "route", "req/s", "× trivial", "p50 ms", "p99 ms", "errors"
    );
    for r in &rows {
        println!(
            "{:<46} {:>10.0} {:>8.2} {:>9.2} {:>9.2} {:>7}",
            r.name,
            r.per_sec,
            r.per_sec / ceiling,
            r.p50,
            r.p99,
            r.errors
        );
    }
    println!("checkouts confirmed: {checkout_rate:.0}/s");
    assert!(
        rows.iter().all(|r| r.errors == 0),
        "every request answered 2xx"
    );
    app.stop(Duration::from_secs(5)).await;
    let _ = std::fs::remove_dir_all(&dir);
}
