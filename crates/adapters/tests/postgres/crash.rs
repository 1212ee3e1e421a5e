//! A checkout process killed with SIGKILL, again and again, over PostgreSQL stores; a fresh
//! process recovers; the invariants are checked against the database.
//!
//! The parent test spawns this same test binary as a child (`CRASH_CHILD_SCHEMA` set), which
//! drives checkouts on four tasks until it is killed at a random moment. After every round a
//! new child goes on where the last one died. At the end the parent recovers every saga (with a
//! clock an hour ahead, so the dead children's leases have lapsed), sweeps expired holds, and
//! checks: every checkout saga finished; no money held without a confirmed order (and none of a
//! confirmed order's money lost); no unit sold twice; no hold left held or pinned; one
//! `OrderConfirmed` per confirmed order, no event id twice.
//!
//! `CRASH_ROUNDS` (default 5) sets the number of kills.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use adapters::TokioSleeper;
use adapters::postgres::{Postgres, PostgresConfig};
use chrono::{DateTime, TimeDelta, Utc};
use commerce_core::testkit::sample_address;
use commerce_core::{
    Clock, Currency, EventLog, IdempotencyKey, LocationId, Money, NewOrder, OrderId, OrderLine,
    OrderStatus, OrderStore, PaymentGateway, ProductId, Sku, UserId,
};
use inventory::{HoldStore, StockConfig, StockKey, StockLevels, StockMovements};
use saga::{
    CapturePolicy, Checkout, CheckoutInput, CheckoutPorts, CheckoutSaga, SagaDefinition,
    SagaJournal, reconcile_payments,
};

use crate::harness::url;

const SKUS: usize = 3;
const UNITS: i64 = 150;

/// The wall clock, shifted: the recovering process lives an hour after the dead ones.
#[derive(Debug)]
struct Shifted(TimeDelta);

impl Clock for Shifted {
    #[allow(clippy::disallowed_methods, reason = "a real process's clock")]
    fn now(&self) -> DateTime<Utc> {
        DateTime::<Utc>::from(std::time::SystemTime::now()) + self.0
    }
}

fn keys() -> Vec<StockKey> {
    (0..SKUS)
        .map(|i| {
            StockKey::new(
                Sku::new(format!("CRASH-{i}")).unwrap(),
                LocationId::new("wh").unwrap(),
            )
        })
        .collect()
}

async fn connect(schema: &str) -> Postgres {
    Postgres::connect_shards(
        &[&url()],
        PostgresConfig {
            schema: Some(schema.to_owned()),
            max_connections: 8,
            ..PostgresConfig::default()
        },
    )
    .await
    .expect("postgres")
}

fn ports(pg: &Postgres) -> CheckoutPorts {
    CheckoutPorts {
        usage: Arc::new(pg.promotion_usage()),
        stock: Arc::new(pg.stock()),
        orders: Arc::new(pg.orders()),
        payments: Arc::new(pg.payment_sandbox()),
        notifier: Arc::new(commerce_core::memory::InMemoryNotifier::new()),
    }
}

/// Checkout number `n` of round `round`: one or two lines, sometimes declined, half captured
/// at shipment.
fn input(round: u64, n: u64) -> CheckoutInput {
    let keys = keys();
    let eur = |c| Money::from_minor(c, Currency::EUR);
    let mut order = NewOrder::new(
        OrderId::new(format!("crash-{round}-{n}")).unwrap(),
        UserId::new(format!("buyer-{}", n % 7)).unwrap(),
        Currency::EUR,
        sample_address(),
    )
    .with_shipping(eur(490));
    let lines = 1 + (n % 2);
    for l in 0..lines {
        let k = &keys[usize::try_from((n + l * 2) % SKUS as u64).unwrap()];
        order = order.with_line(
            OrderLine::new(
                k.sku.clone(),
                1 + u32::try_from(n % 3).unwrap(),
                eur(1_000),
                k.location.clone(),
            )
            .unwrap()
            .of_product(
                ProductId::new(format!("p-{}", k.sku)).unwrap(),
                "Crash test item",
            ),
        );
    }
    CheckoutInput {
        order,
        claims: Vec::new(),
        hold_ttl_secs: 900,
        method_token: if n % 9 == 4 {
            "tok_decline"
        } else {
            "tok_visa"
        }
        .into(),
        capture: if n.is_multiple_of(2) {
            CapturePolicy::AtCheckout
        } else {
            CapturePolicy::AtShipment
        },
        cart_hold: None,
    }
}

/// The child process's entry point, run only by the parent test (`--ignored --exact
/// crash::child` with `CRASH_CHILD_SCHEMA` set): checkouts on four tasks, with recovery of what
/// an earlier child left, until killed.
#[test]
#[ignore = "the crash test's child process; the parent starts it"]
fn child() {
    let Ok(schema) = std::env::var("CRASH_CHILD_SCHEMA") else {
        return; // Only ever run as a spawned child.
    };
    let round: u64 = std::env::var("CRASH_ROUND")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let pg = connect(&schema).await;
        let checkout = Arc::new(
            Checkout::builder(
                ports(&pg),
                Arc::new(adapters::SystemClock),
                Arc::new(TokioSleeper),
            )
            .journal(Arc::new(pg.saga_journal()))
            .worker(format!("child-{round}"))
            .seed(round)
            .build(),
        );
        let _ = checkout.recover(100).await;
        let tasks: Vec<_> = (0..4u64)
            .map(|t| {
                let checkout = checkout.clone();
                tokio::spawn(async move {
                    for i in 0.. {
                        let _ = checkout.checkout(&input(round, i * 4 + t)).await;
                    }
                })
            })
            .collect();
        for t in tasks {
            let _ = t.await;
        }
    });
}

#[test]
fn killed_checkouts_recover_with_every_invariant() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let Some(pg) = runtime.block_on(crate::harness::fresh()) else {
        return;
    };
    let schema: String = runtime
        .block_on(sqlx::query_scalar("SELECT current_schema()::text").fetch_one(pg.primary()))
        .unwrap();
    let stock = pg.stock();
    runtime.block_on(async {
        for (i, k) in keys().iter().enumerate() {
            stock.configure(k, StockConfig::default()).await.unwrap();
            let po = IdempotencyKey::new(format!("po-{i}")).unwrap();
            let _ = stock
                .receive(&po, k, UNITS, adapters::SystemClock.now())
                .await
                .unwrap();
        }
    });
    let rounds: u64 = std::env::var("CRASH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let exe = std::env::current_exe().unwrap();
    for round in 0..rounds {
        let mut child = Command::new(&exe)
            .args([
                "--ignored",
                "--exact",
                "crash::child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("CRASH_CHILD_SCHEMA", &schema)
            .env("CRASH_ROUND", round.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Kill it mid-flight: 0.4 to 1.6 s in, a different moment each round.
        std::thread::sleep(Duration::from_millis(400 + (round * 377) % 1_200));
        child.kill().unwrap(); // SIGKILL
        let _ = child.wait();
    }
    runtime.block_on(recover_and_check(&pg, rounds));
}

async fn recover_and_check(pg: &Postgres, rounds: u64) {
    let clock = Arc::new(Shifted(TimeDelta::hours(1)));
    let journal = Arc::new(pg.saga_journal());
    let checkout = Checkout::builder(ports(pg), clock.clone(), Arc::new(TokioSleeper))
        .journal(journal.clone())
        .worker("recovery")
        .build();
    let interrupted = journal
        .unfinished(CheckoutSaga::KIND, 1_000)
        .await
        .unwrap()
        .len();
    for _ in 0..20 {
        let _ = checkout.recover(1_000).await;
        if journal
            .unfinished(CheckoutSaga::KIND, 1)
            .await
            .unwrap()
            .is_empty()
        {
            break;
        }
    }
    let open = journal.unfinished(CheckoutSaga::KIND, 100).await.unwrap();
    assert!(
        open.is_empty(),
        "sagas left unfinished: {:?}",
        open.iter().map(|s| &s.id).collect::<Vec<_>>()
    );
    let stock = pg.stock();
    let _ = stock
        .sweep(clock.now() + TimeDelta::days(2), 10_000)
        .await
        .unwrap();

    // Orders and what they hold.
    let orders = pg.orders();
    let mut confirmed: BTreeMap<OrderId, commerce_core::Order> = BTreeMap::new();
    let mut seen = 0;
    for status in OrderStatus::ALL {
        let mut after: Option<OrderId> = None;
        loop {
            let page = orders
                .list_by_status(status, after.as_ref(), 500)
                .await
                .unwrap();
            let Some(last) = page.last() else { break };
            after = Some(last.id().clone());
            seen += page.len();
            for o in page {
                assert_ne!(
                    o.status(),
                    OrderStatus::PendingPayment,
                    "{} left pending",
                    o.id()
                );
                if o.is_confirmed() {
                    confirmed.insert(o.id().clone(), o);
                }
            }
        }
    }
    assert!(seen > 0, "the children created no order in {rounds} rounds");
    // Money: what the provider holds is what the confirmed orders captured; nothing else.
    let payments = pg.payment_sandbox();
    let mut per_order = BTreeMap::new();
    let mut after = None;
    loop {
        let page = payments.list(after.as_ref(), 500).await.unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.payment_ref.clone());
        for p in page {
            assert!(
                per_order.insert(p.order_id.clone(), p).is_none(),
                "an order paid twice"
            );
        }
    }
    for (id, p) in &per_order {
        let net = p.captured.checked_sub(&p.refunded).unwrap();
        match confirmed.get(id) {
            Some(o) => {
                assert_eq!(o.payment_ref(), Some(&p.payment_ref), "{id}");
                assert_eq!(net, o.captured(), "{id}: provider and ledger disagree");
            }
            None => {
                assert!(net.is_zero(), "{id}: money held without a confirmed order");
                assert_ne!(
                    p.status,
                    commerce_core::PaymentStatus::Authorized,
                    "{id}: authorization left open"
                );
            }
        }
    }
    for (id, o) in &confirmed {
        if !o.totals().grand_total.is_zero() {
            assert!(
                per_order.contains_key(id),
                "{id} confirmed without a payment"
            );
        }
    }
    let leftover = reconcile_payments(&payments, &orders, journal.as_ref())
        .await
        .unwrap();
    assert!(
        leftover.is_empty(),
        "reconciliation had to act: {leftover:?}"
    );

    // Stock: committed exactly for confirmed orders, nothing held, nothing sold twice.
    for k in keys() {
        let level = stock.level(&k, clock.now()).await.unwrap();
        let committed: i64 = confirmed
            .values()
            .flat_map(|o| o.lines())
            .filter(|l| l.sku == k.sku)
            .map(|l| i64::from(l.quantity))
            .sum();
        assert_eq!(level.on_hand, UNITS, "{k}: nothing shipped");
        assert_eq!(
            level.committed, committed,
            "{k}: committed for confirmed orders"
        );
        assert_eq!(level.held, 0, "{k}: no hold left");
        assert!(level.available >= 0, "{k}: oversold");
    }

    // Events: one `OrderConfirmed` per confirmed order, no id twice.
    let log = pg.event_log();
    let mut ids = BTreeSet::new();
    let mut confirmations: BTreeMap<String, usize> = BTreeMap::new();
    let mut from = 0;
    loop {
        let page = log.read(from, 1_000).await.unwrap();
        let Some(last) = page.last() else { break };
        from = last.offset + 1;
        for e in page {
            assert!(
                ids.insert(e.envelope.event_id.clone()),
                "event {} twice",
                e.envelope.event_id
            );
            if e.envelope.event_type == "OrderConfirmed" {
                *confirmations
                    .entry(e.envelope.partition_key.clone())
                    .or_default() += 1;
            }
        }
    }
    for id in confirmed.keys() {
        assert_eq!(
            confirmations.get(id.as_str()),
            Some(&1),
            "{id}: OrderConfirmed once"
        );
    }
    assert_eq!(confirmations.len(), confirmed.len());
    #[allow(clippy::print_stderr, reason = "what the crash test covered")]
    {
        eprintln!(
            "{rounds} kills: {interrupted} checkouts cut short and recovered; {seen} orders, \
             {} confirmed, {} payments",
            confirmed.len(),
            per_order.len()
        );
    }
}
