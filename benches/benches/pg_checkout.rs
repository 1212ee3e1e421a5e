//! Durable checkouts per second with every store on PostgreSQL (synchronous commit on): the
//! saga journal, promotion usage, stock and holds, orders with their outbox, and the sandbox
//! payment provider, 16 concurrent checkouts, with p50/p99 latency and the transactions
//! committed per checkout (`pg_stat_database`, read-only ones included) and the WAL flushes
//! per checkout (`pg_stat_wal`). Beside it, in the same run, `pgbench -N` with
//! 16 clients: the server's own rate of small durable write transactions on this machine, the
//! limit a checkout of several commits divides. Goal: ≥ 1,000 checkouts/s.
//!
//! `cargo bench -p benches --features postgres --bench pg_checkout`

#![allow(clippy::print_stdout, reason = "a bench binary prints its figures")]
#![allow(clippy::disallowed_methods, reason = "a benchmark measures wall time")]
#![allow(
    clippy::float_arithmetic,
    clippy::cast_precision_loss,
    reason = "rates for display only"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use adapters::TokioSleeper;
use adapters::postgres::{GroupCommit, Postgres};
use benches::pg;
use cart_engine::{PromotionId, UsageLimits};
use commerce_core::memory::InMemoryNotifier;
use commerce_core::testkit::{sample_address, t0};
use commerce_core::{
    Currency, IdempotencyKey, LocationId, ManualClock, Money, NewOrder, OrderId, OrderLine,
    ProductId, Sku, UserId,
};
use inventory::{StockConfig, StockKey, StockMovements};
use saga::{
    CapturePolicy, Checkout, CheckoutInput, CheckoutOutcome, CheckoutPorts, PromotionClaim,
};

const CLIENTS: usize = 16;
const SKUS: usize = 64;

fn input(skus: &[StockKey], n: usize) -> CheckoutInput {
    let eur = |c| Money::from_minor(c, Currency::EUR);
    let k = &skus[n % skus.len()];
    let order = NewOrder::new(
        OrderId::new(format!("pg-order-{n}")).expect("id"),
        UserId::new(format!("user-{}", n % 10_000)).expect("user"),
        Currency::EUR,
        sample_address(),
    )
    .with_line(
        OrderLine::new(k.sku.clone(), 1, eur(1_999), k.location.clone())
            .expect("line")
            .of_product(ProductId::new("p-1").expect("product"), "Tee")
            .discounted(eur(200)),
    )
    .with_shipping(eur(490));
    CheckoutInput {
        order,
        // Half the checkouts claim a promotion (its tally row is shared by all of them).
        claims: if n.is_multiple_of(2) {
            vec![PromotionClaim {
                promotion_id: PromotionId::new("welcome").expect("promo"),
                discount: eur(200),
                limits: UsageLimits {
                    per_customer: Some(1_000),
                    ..UsageLimits::default()
                },
            }]
        } else {
            Vec::new()
        },
        hold_ttl_secs: 900,
        method_token: "tok_visa".into(),
        capture: CapturePolicy::AtCheckout,
        cart_hold: None,
    }
}

fn ports(db: &Postgres) -> CheckoutPorts {
    CheckoutPorts {
        usage: Arc::new(db.promotion_usage()),
        stock: Arc::new(db.stock()),
        orders: Arc::new(db.orders()),
        payments: Arc::new(db.payment_sandbox()),
        notifier: Arc::new(InMemoryNotifier::new()),
    }
}

/// The `per_mille`th of `sorted` latencies (nearest rank).
fn percentile(sorted: &[Duration], per_mille: usize) -> Duration {
    let i = (sorted.len().saturating_sub(1) * per_mille).div_ceil(1_000);
    sorted.get(i).copied().unwrap_or_default()
}

/// One measured run: checkouts/s, p50, p99, transactions and WAL flushes per checkout.
struct Figures {
    rate: f64,
    p50: Duration,
    p99: Duration,
    commits: f64,
    syncs: f64,
    n: usize,
}

async fn measure(db: &Postgres, run: Duration) -> Figures {
    let stock = db.stock();
    let mut skus = Vec::with_capacity(SKUS);
    for i in 0..SKUS {
        let k = StockKey::new(
            Sku::new(format!("SKU-{i}")).expect("sku"),
            LocationId::new("wh-1").expect("location"),
        );
        stock
            .configure(&k, StockConfig::default())
            .await
            .expect("configure");
        let _ = stock
            .receive(
                &IdempotencyKey::new(format!("po-{i}")).expect("key"),
                &k,
                10_000_000,
                t0(),
            )
            .await
            .expect("receive");
        skus.push(k);
    }
    let clock = Arc::new(ManualClock::new(t0()));
    let checkout = Arc::new(
        Checkout::builder(ports(db), clock, Arc::new(TokioSleeper))
            .journal(Arc::new(db.saga_journal()))
            .build(),
    );
    let skus = Arc::new(skus);
    let commits_before = pg::commits(db).await;
    let syncs_before = pg::wal_syncs(db).await;
    let start = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (checkout, skus) = (checkout.clone(), skus.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut n = c;
                while start.elapsed() < run {
                    let input = input(&skus, n);
                    let t = Instant::now();
                    let outcome = checkout.checkout(&input).await.expect("checkout");
                    latencies.push(t.elapsed());
                    assert!(
                        matches!(outcome, CheckoutOutcome::Confirmed { .. }),
                        "{outcome:?}"
                    );
                    n += CLIENTS;
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.expect("client"));
    }
    let elapsed = start.elapsed();
    let syncs = pg::wal_syncs(db).await - syncs_before;
    let commits = pg::commits(db).await - commits_before;
    latencies.sort();
    let n = latencies.len();
    Figures {
        rate: n as f64 / elapsed.as_secs_f64(),
        p50: percentile(&latencies, 500),
        p99: percentile(&latencies, 990),
        commits: commits as f64 / n.max(1) as f64,
        syncs: syncs as f64 / n.max(1) as f64,
        n,
    }
}

fn report(what: &str, f: &Figures) {
    println!("  {what}, {} checkouts:", f.n);
    println!("    checkouts/s:              {:>9.0}", f.rate);
    println!(
        "    p50 / p99:                {:>9.2} / {:.2} ms",
        f.p50.as_secs_f64() * 1e3,
        f.p99.as_secs_f64() * 1e3
    );
    println!(
        "    transactions per checkout (reads included): {:.1}; WAL flushes per checkout: {:.1}",
        f.commits, f.syncs
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let run = if pg::measured() {
        Duration::from_secs(10)
    } else {
        println!("smoke run (use `cargo bench` for figures)");
        Duration::from_millis(300)
    };
    // Every store's write in its own transaction (group commit off), then combined (the
    // configuration `PG_GROUP_COMMIT` names, the default otherwise).
    let Some(alone) = pg::fresh_with("bench_pg_checkout_alone", 24, GroupCommit::disabled()).await
    else {
        return;
    };
    let off = measure(&alone, run).await;
    alone.close().await;
    let group_commit = pg::group_commit();
    let Some(db) = pg::fresh_with("bench_pg_checkout", 24, group_commit.clone()).await else {
        return;
    };
    let on = measure(&db, run).await;
    db.close().await;
    let secs = u32::try_from(run.as_secs().max(1)).unwrap_or(1);
    // The smoke run skips pgbench (its setup alone takes seconds).
    let tps = if pg::measured() {
        pg::pgbench_tps(16, secs)
    } else {
        None
    };
    println!("durable checkouts on PostgreSQL, {CLIENTS} clients:");
    report("each write its own transaction (group commit off)", &off);
    report(
        &format!(
            "group commit ({} worker(s), batches of up to {}, unkeyed writes {})",
            group_commit.workers,
            group_commit.max_batch,
            if group_commit.combine_unkeyed {
                "combined"
            } else {
                "alone"
            }
        ),
        &on,
    );
    match tps {
        Some(tps) => {
            println!("  pgbench -N, 16 clients:   {tps:>9.0} tps");
            println!(
                "  checkouts ÷ pgbench tps:  {:>9.3} off, {:.3} group commit",
                off.rate / tps,
                on.rate / tps
            );
        }
        None => println!("  pgbench -N: not available here"),
    }
}
