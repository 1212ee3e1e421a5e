//! Carts and the SKU projection cache on Redis, 32 concurrent clients over one multiplexed
//! connection, beside `redis-benchmark -c 32` in the same run:
//! - cart updates/s: read the cart, add a line, price it (10 promotions), compare-and-set —
//!   and the same without the read, from the cart the client wrote last (a server that keeps
//!   the carts it serves); beside `EVAL "return 1"` one at a time per client and pipelined;
//! - product reads through the projection cache, starting cold: p50/p99 and the hit ratio
//!   under a Zipf workload over 10,000 products while prices change (one every 5 ms) and an
//!   invalidator applies the events; beside `redis-benchmark GET` latency; then the latency at
//!   a light load (4 clients, warm).
//!
//! CPU per update is this process's CPU time (`/proc/self/stat`) and the server's command
//! time (`INFO commandstats`, which counts wall time inside commands: inflated on a busy
//! machine) over the updates made. `BENCH_CONNS=n` spreads the clients over `n` connections
//! (one multiplexed connection by default).
//!
//! `cargo bench -p benches --features redis --bench redis_carts`

#![allow(clippy::print_stdout, reason = "a bench binary prints its figures")]
#![allow(clippy::disallowed_methods, reason = "a benchmark measures wall time")]
#![allow(
    clippy::float_arithmetic,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "rates, percentiles and a Zipf sampler, for display only"
)]

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use adapters::redis::Redis;
use cart_engine::{
    Cart, CartCommand, CartStore, FlatRateTax, Mutation, PricingConfig, PricingContext, Promotion,
    load_promotions, price,
};
use commerce_core::memory::{InMemoryCatalog, InMemoryEventLog};
use commerce_core::testkit::{sample_product, t0};
use commerce_core::{
    CachedCatalog, CartId, CasOutcome, CatalogStore, Currency, Money, PriceTable, Product, Sku,
};
use rust_decimal::Decimal;

use benches::redis_load::{CLIENTS, per_second, redis_benchmark};

const PROMOTIONS: &str = r#"[
  {"id": "p1", "name": "10 % tops", "priority": 50, "action": {"percent_off": {"percent": "10", "items": {"categories": [["Apparel"]]}}}},
  {"id": "p2", "name": "1 off each Acme", "priority": 40, "action": {"fixed_off_per_unit": {"amount": {"amount": "1.00", "currency": "EUR"}, "items": {"brands": ["Acme"]}}}},
  {"id": "p3", "name": "bogo", "priority": 30, "action": {"buy_x_get_y": {"buy": {"skus": ["SKU-002"]}, "buy_quantity": 2, "get": {"skus": ["SKU-002"]}, "get_quantity": 1, "percent_off": "50", "max_occurrences": 3}}},
  {"id": "p4", "name": "code 10 off", "code": "SAVE10", "priority": 20, "action": {"fixed_off_order": {"amount": {"amount": "10.00", "currency": "EUR"}}}},
  {"id": "p5", "name": "tiers", "priority": 10, "stacking_group": "spend", "action": {"tiered_order": {"tiers": [
     {"min_subtotal": {"amount": "50.00", "currency": "EUR"}, "amount_off": {"amount": "5.00", "currency": "EUR"}},
     {"min_subtotal": {"amount": "100.00", "currency": "EUR"}, "amount_off": {"amount": "15.00", "currency": "EUR"}}]}}},
  {"id": "p6", "name": "7.5 %", "priority": 10, "stacking_group": "spend", "action": {"percent_off": {"percent": "7.5"}}},
  {"id": "p7", "name": "free shipping over 50", "condition": {"min_subtotal": {"amount": {"amount": "50.00", "currency": "EUR"}}}, "action": "free_shipping"},
  {"id": "p8", "name": "fixed price socks", "action": {"fixed_price": {"unit_price": {"amount": "3.00", "currency": "EUR"}, "items": {"skus": ["SKU-001", "SKU-005"]}}}},
  {"id": "p9", "name": "vip only", "condition": {"customer_group": ["vip"]}, "action": {"percent_off": {"percent": "5"}}},
  {"id": "p10", "name": "2 off a line", "condition": {"min_quantity": {"quantity": 10}}, "action": {"fixed_off_per_line": {"amount": {"amount": "2.00", "currency": "EUR"}}}}
]"#;

struct Pricing {
    products: Vec<Product>,
    promotions: Vec<Promotion>,
    config: PricingConfig,
    tax: FlatRateTax,
}

impl Pricing {
    /// Adds a unit of one of 20 products and prices the cart.
    fn add_and_price(&self, cart: &mut Cart, i: u64) {
        let product = &self.products[(i % 20) as usize];
        let _ = cart.execute(
            CartCommand::AddLine {
                product,
                quantity: 1,
                gift_wrap: false,
            },
            &Mutation::at(t0()),
        );
        let ctx = PricingContext::new(t0(), &self.config, &self.tax);
        let priced = price(cart, &self.promotions, &ctx).expect("priced");
        std::hint::black_box(priced);
    }
}

/// A Zipf sampler over `n` ranks with exponent `s`, by inverse CDF.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, s: f64) -> Zipf {
        let mut cdf = Vec::with_capacity(n);
        let mut sum = 0.0;
        for k in 1..=n {
            sum += 1.0 / (k as f64).powf(s);
            cdf.push(sum);
        }
        for c in &mut cdf {
            *c /= sum;
        }
        Zipf { cdf }
    }

    /// The rank for a uniform `u` in [0, 1).
    fn sample(&self, u: f64) -> usize {
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1)
    }
}

/// xorshift64*: a cheap, seeded uniform stream.
fn uniform(state: &mut u64) -> f64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i] as f64 / 1_000.0
}

/// This process's CPU time (user + system) so far, from `/proc/self/stat` (Linux, 100 ticks a
/// second); zero where it cannot be read.
fn process_cpu() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return Duration::ZERO;
    };
    // The fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<u64> = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// The server's time spent in commands so far (`redis-cli INFO commandstats`, microseconds);
/// zero without `redis-cli`.
fn server_command_usec() -> u64 {
    let Ok(out) = Command::new("redis-cli")
        .args(["info", "commandstats"])
        .output()
    else {
        return 0;
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split("usec=").nth(1))
        .filter_map(|r| r.split(',').next()?.parse::<u64>().ok())
        .sum()
}

/// `clients` readers drawing SKUs by `zipf` for `run`; each read's latency in microseconds.
async fn read_phase(
    cached: &Arc<CachedCatalog>,
    zipf: &Arc<Zipf>,
    skus: &Arc<Vec<Sku>>,
    clients: u64,
    run: Duration,
) -> Vec<u64> {
    let start = Instant::now();
    let readers: Vec<_> = (0..clients)
        .map(|c| {
            let (cached, zipf, skus) = (cached.clone(), zipf.clone(), skus.clone());
            tokio::spawn(async move {
                let mut seed = 0x9e37_79b9_7f4a_7c15_u64 ^ (c + 1);
                let mut lat = Vec::new();
                while start.elapsed() < run {
                    let sku = &skus[zipf.sample(uniform(&mut seed))];
                    let t = Instant::now();
                    let p = cached.get_by_sku(sku).await.expect("read");
                    lat.push(t.elapsed().as_micros() as u64);
                    assert!(p.is_some());
                }
                lat
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for r in readers {
        latencies.extend(r.await.expect("reader"));
    }
    latencies
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let measured = std::env::args().any(|a| a == "--bench");
    let run = if measured {
        Duration::from_secs(5)
    } else {
        println!("smoke run (use `cargo bench` for figures)");
        Duration::from_millis(200)
    };
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let redis = match Redis::connect(&url).await {
        Ok(r) => r.with_namespace(&format!("bench-carts-{}", std::process::id())),
        Err(e) => {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true");
            assert!(!ci, "Redis is required under CI=true: {e}");
            println!("skipped: Redis unavailable ({e}); set REDIS_URL");
            return;
        }
    };

    // --- Cart updates ---------------------------------------------------------------------
    let products: Vec<Product> = (0..20)
        .map(|i| {
            let mut p = sample_product(&format!("p-{i}"), &format!("SKU-{i:03}"));
            p.prices =
                PriceTable::single(Money::from_minor(499 + i64::from(i) * 137, Currency::EUR));
            p.brand = Some(if i % 3 == 0 { "Acme" } else { "Other" }.into());
            p
        })
        .collect();
    let pricing = Arc::new(Pricing {
        products,
        promotions: load_promotions(PROMOTIONS).expect("promotions"),
        config: PricingConfig::default(),
        tax: FlatRateTax::new(Decimal::new(19, 2)).expect("rate"),
    });
    let conns: u64 = std::env::var("BENCH_CONNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let mut stores = Vec::new();
    for _ in 0..conns {
        let r = Redis::connect(&url)
            .await
            .expect("connect")
            .with_namespace(redis.namespace());
        stores.push(r.cart_store(Arc::new(InMemoryEventLog::new())));
    }
    let stores = Arc::new(stores);
    let store = Arc::new(stores[0].clone());
    let cart_id = |c: u64| CartId::new(format!("bench-cart-{c}")).expect("id");
    for c in 0..CLIENTS {
        let mut cart = Cart::new(cart_id(c), None, Currency::EUR, None, t0());
        for i in 0..5 {
            pricing.add_and_price(&mut cart, i);
        }
        store.insert(cart, &[]).await.expect("insert");
    }
    let (cpu0, srv0) = (process_cpu(), server_command_usec());
    let read_modify_write = {
        let (stores, pricing) = (stores.clone(), pricing.clone());
        per_second(run, move |c, i| {
            let (stores, pricing) = (stores.clone(), pricing.clone());
            async move {
                let store = &stores[(c % stores.len() as u64) as usize];
                let mut cart = store.get(&cart_id(c)).await.expect("get").expect("cart");
                let version = cart.version();
                pricing.add_and_price(&mut cart, i);
                let outcome = store.update(cart, version, &[]).await.expect("update");
                assert_eq!(outcome, CasOutcome::Committed);
            }
        })
        .await
    };
    let (cpu1, srv1) = (process_cpu(), server_command_usec());
    let rmw_n = read_modify_write * run.as_secs_f64();
    // Each client keeps the cart it wrote last: one round trip per update.
    let held: Arc<Vec<tokio::sync::Mutex<Cart>>> = {
        let mut carts = Vec::new();
        for c in 0..CLIENTS {
            let cart = store.get(&cart_id(c)).await.expect("get").expect("cart");
            carts.push(tokio::sync::Mutex::new(cart));
        }
        Arc::new(carts)
    };
    let write_only = {
        let (stores, pricing, held) = (stores.clone(), pricing.clone(), held.clone());
        per_second(run, move |c, i| {
            let (stores, pricing, held) = (stores.clone(), pricing.clone(), held.clone());
            async move {
                let store = &stores[(c % stores.len() as u64) as usize];
                let mut slot = held[c as usize].lock().await;
                let mut cart = slot.clone();
                let version = cart.version();
                pricing.add_and_price(&mut cart, i);
                let outcome = store
                    .update(cart.clone(), version, &[])
                    .await
                    .expect("update");
                assert_eq!(outcome, CasOutcome::Committed);
                *slot = cart;
            }
        })
        .await
    };

    let (cpu2, srv2) = (process_cpu(), server_command_usec());
    let held_n = write_only * run.as_secs_f64();
    let per_update = |cpu: Duration, srv: u64, n: f64| {
        (
            cpu.as_secs_f64() * 1e6 / n.max(1.0),
            srv as f64 / n.max(1.0),
        )
    };
    let (rmw_client, rmw_server) = per_update(cpu1 - cpu0, srv1 - srv0, rmw_n);
    let (held_client, held_server) = per_update(cpu2 - cpu1, srv2 - srv1, held_n);

    // --- Projection reads -------------------------------------------------------------------
    let n_products = if measured { 10_000 } else { 500 };
    let catalog = Arc::new(InMemoryCatalog::new());
    let cached = Arc::new(CachedCatalog::new(
        catalog.clone(),
        Arc::new(redis.projection_cache()),
    ));
    let mut skus = Vec::with_capacity(n_products);
    for i in 0..n_products {
        let p = sample_product(&format!("zp-{i}"), &format!("ZIPF-{i:05}"));
        let events = p.change_events(None, t0()).expect("events");
        let outcome = catalog.put(p.clone(), &events).await.expect("put");
        assert_eq!(outcome, CasOutcome::Committed);
        skus.push(p.sku);
    }
    // The cache starts cold, in front of a catalog that was loaded before it existed: its
    // first catch-up starts at the log's end, and every product is a miss the first time.
    cached
        .catch_up(catalog.outbox().as_ref(), 1)
        .await
        .expect("start");
    let stop = Arc::new(AtomicBool::new(false));
    let changer = {
        let (catalog, stop) = (catalog.clone(), stop.clone());
        let n = n_products;
        tokio::spawn(async move {
            let mut seed = 0x5eed_u64;
            let mut changes = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let i = (uniform(&mut seed) * n as f64) as usize;
                let id = commerce_core::ProductId::new(format!("zp-{i}")).expect("id");
                let previous = catalog.get(&id).await.expect("get").expect("product");
                let mut next = previous.clone();
                next.version += 1;
                next.prices = PriceTable::single(Money::from_minor(
                    100 + i64::try_from(next.version).unwrap_or(0),
                    Currency::EUR,
                ));
                let events = next.change_events(Some(&previous), t0()).expect("events");
                let outcome = catalog.put(next, &events).await.expect("put");
                assert_eq!(outcome, CasOutcome::Committed);
                changes += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            changes
        })
    };
    let invalidator = {
        let (cached, catalog, stop) = (cached.clone(), catalog.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let _ = cached.catch_up(catalog.outbox().as_ref(), 1_000).await;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let zipf = Arc::new(Zipf::new(n_products, 1.0));
    let skus: Arc<Vec<Sku>> = Arc::new(skus);
    let before = cached.stats();
    let start = Instant::now();
    let mut latencies = read_phase(&cached, &zipf, &skus, CLIENTS, run).await;
    let elapsed = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let changes = changer.await.expect("changer");
    invalidator.await.expect("invalidator");
    let after = cached.stats();
    latencies.sort_unstable();
    // Latency at a light load: 4 clients on the warm cache, nothing else running.
    let mut light = read_phase(&cached, &zipf, &skus, 4, run).await;
    light.sort_unstable();
    let (hits, misses) = (after.hits - before.hits, after.misses - before.misses);
    let hit_ratio = hits as f64 / (hits + misses).max(1) as f64;

    let (eval, eval_piped, get) = if measured {
        (
            redis_benchmark(&["eval", "return 1", "0"]),
            redis_benchmark(&["-P", "16", "eval", "return 1", "0"]),
            redis_benchmark(&["-t", "get"]),
        )
    } else {
        (None, None, None)
    };
    println!(
        "Redis, {CLIENTS} concurrent clients, {} s per figure:",
        run.as_secs_f64()
    );
    println!(
        "  cart updates/s, read + add + price + compare-and-set: {read_modify_write:>9.0} (CPU per update: client {rmw_client:.0} µs, server {rmw_server:.0} µs)"
    );
    println!(
        "  cart updates/s, add + price + compare-and-set (cart held): {write_only:>9.0} (CPU per update: client {held_client:.0} µs, server {held_server:.0} µs)"
    );
    println!(
        "  projection reads: {:.0}/s, p50 {:.3} ms, p99 {:.3} ms; hit ratio {:.4} (cold start, Zipf s=1 over {n_products} products, {changes} price changes applied meanwhile, {} fills withdrawn)",
        latencies.len() as f64 / elapsed,
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        hit_ratio,
        after.withdrawn - before.withdrawn,
    );
    println!(
        "  projection reads, 4 clients, warm: p50 {:.3} ms, p99 {:.3} ms",
        percentile(&light, 0.50),
        percentile(&light, 0.99),
    );
    if let (Some(eval), Some(piped), Some(get)) = (eval, eval_piped, get) {
        println!(
            "  redis-benchmark EVAL 'return 1': {:.0}/s; pipelined 16 deep: {:.0}/s",
            eval.rps, piped.rps
        );
        println!(
            "  redis-benchmark GET: {:.0}/s, p50 {:.3} ms, p99 {:.3} ms",
            get.rps, get.p50_ms, get.p99_ms
        );
        println!(
            "  cart updates ÷ EVAL: {:.2} (read + write), {:.2} (held); ÷ pipelined EVAL: {:.2}, {:.2}",
            read_modify_write / eval.rps,
            write_only / eval.rps,
            read_modify_write / piped.rps,
            write_only / piped.rps
        );
    }
}
