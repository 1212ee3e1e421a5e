//! Checkouts per second end to end on the in-memory stores, with p50/p99 latency: each
//! checkout claims a promotion, holds and pins stock, creates the order, charges, commits the
//! hold and the claim, confirms the order with `OrderConfirmed` in one write to the shared
//! outbox, and notifies — six journaled steps.
//! Goal: ≥ 20,000 checkouts/s on 2 cores, p99 ≤ 1 ms.
//!
//! `cargo bench -p benches --bench checkout`

#![allow(clippy::print_stdout, reason = "a bench binary prints its figures")]
#![allow(clippy::disallowed_methods, reason = "a benchmark measures wall time")]
#![allow(
    clippy::float_arithmetic,
    clippy::cast_precision_loss,
    reason = "rates for display only"
)]

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use benches::ready;
use cart_engine::{InMemoryUsageStore, PromotionId, UsageLimits};
use commerce_core::memory::{
    InMemoryEventLog, InMemoryNotifier, InMemoryOrderStore, InMemoryPaymentGateway,
};
use commerce_core::testkit::{sample_address, t0};
use commerce_core::{
    Currency, IdempotencyKey, LocationId, ManualClock, Money, NewOrder, OrderId, OrderLine,
    ProductId, Sku, UserId,
};
use inventory::{InMemoryStockStore, StockConfig, StockKey, StockMovements};
use saga::{
    CapturePolicy, Checkout, CheckoutInput, CheckoutOutcome, CheckoutPorts, ClockSleeper,
    InMemoryJournal, PromotionClaim,
};

const THREADS: usize = 2;
const PER_THREAD: usize = 50_000;

fn input(skus: &[StockKey], n: usize) -> CheckoutInput {
    let eur = |c| Money::from_minor(c, Currency::EUR);
    let k = &skus[n % skus.len()];
    let order = NewOrder::new(
        OrderId::new(format!("order-{n}")).expect("id"),
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
        claims: vec![PromotionClaim {
            promotion_id: PromotionId::new("welcome").expect("promo"),
            discount: eur(200),
            limits: UsageLimits {
                per_customer: Some(1_000),
                ..UsageLimits::default()
            },
        }],
        hold_ttl_secs: 900,
        method_token: "tok_visa".into(),
        capture: CapturePolicy::AtCheckout,
        cart_hold: None,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not and gets a short smoke run.
    let per_thread = if std::env::args().any(|a| a == "--bench") {
        PER_THREAD
    } else {
        println!("smoke run (use `cargo bench` for figures)");
        500
    };
    let clock = Arc::new(ManualClock::new(t0()));
    // One log every store commits its events to, as in a deployment.
    let outbox = Arc::new(InMemoryEventLog::new());
    let stock = Arc::new(InMemoryStockStore::with_outbox(outbox.clone()));
    let skus: Vec<StockKey> = (0..100)
        .map(|i| {
            StockKey::new(
                Sku::new(format!("SKU-{i}")).expect("sku"),
                LocationId::new("wh").expect("wh"),
            )
        })
        .collect();
    for (i, k) in skus.iter().enumerate() {
        ready(stock.configure(k, StockConfig::default())).expect("config");
        let _ = ready(stock.receive(
            &IdempotencyKey::new(format!("po-{i}")).expect("key"),
            k,
            1_000_000,
            t0(),
        ))
        .expect("receive");
    }
    let ports = CheckoutPorts {
        usage: Arc::new(InMemoryUsageStore::new()),
        stock,
        orders: Arc::new(InMemoryOrderStore::with_outbox(outbox)),
        payments: Arc::new(InMemoryPaymentGateway::new()),
        notifier: Arc::new(InMemoryNotifier::new()),
    };
    let journal = Arc::new(InMemoryJournal::new());
    let skus = Arc::new(skus);
    let barrier = Arc::new(Barrier::new(THREADS + 1));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let checkout = Checkout::new(
                ports.clone(),
                journal.clone(),
                clock.clone(),
                Arc::new(ClockSleeper(clock.clone())),
                &format!("worker-{t}"),
                t as u64,
            );
            let (barrier, skus) = (barrier.clone(), skus.clone());
            std::thread::spawn(move || {
                let inputs: Vec<CheckoutInput> = (0..per_thread)
                    .map(|i| input(&skus, t * per_thread + i))
                    .collect();
                let mut latencies = Vec::with_capacity(per_thread);
                barrier.wait();
                for input in &inputs {
                    let start = Instant::now();
                    let outcome =
                        futures::executor::block_on(checkout.checkout(input)).expect("checkout");
                    latencies.push(start.elapsed());
                    assert!(
                        matches!(outcome, CheckoutOutcome::Confirmed { .. }),
                        "{outcome:?}"
                    );
                }
                latencies
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    let mut latencies: Vec<Duration> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("worker"))
        .collect();
    let elapsed = start.elapsed();
    latencies.sort();
    let pct = |p: usize| latencies[(latencies.len() * p / 100).min(latencies.len() - 1)];
    println!(
        "checkout/confirmed_per_sec_2_threads: {:.0} /s ({} checkouts in {:.2} s)",
        latencies.len() as f64 / elapsed.as_secs_f64(),
        latencies.len(),
        elapsed.as_secs_f64()
    );
    println!(
        "checkout/latency_p50: {:.1} µs",
        pct(50).as_secs_f64() * 1e6
    );
    println!(
        "checkout/latency_p99: {:.1} µs",
        pct(99).as_secs_f64() * 1e6
    );
    println!(
        "checkout/latency_max: {:.1} µs",
        latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1e6)
    );
}
