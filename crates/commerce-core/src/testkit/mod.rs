//! Conformance suites for every port, and sample data for tests and examples.
//!
//! Each port has a module of generic async functions, one per contract case, and a macro that
//! stamps out one `#[tokio::test]` per case for an implementation. The in-memory
//! implementations run them in this crate's tests; every adapter runs the same macro:
//!
//! ```ignore
//! mod order_store {
//!     commerce_core::order_store_conformance!(my_adapter::PgOrderStore::connect(url()).await);
//! }
//! ```
//!
//! The macro's argument is evaluated once per case, inside the async test, so it may `.await`.
//! Cases use ids of their own, so one database can serve every case. The calling crate needs
//! `tokio` (with `macros` and `rt`) as a dev-dependency.
//!
//! Concurrency cases issue their calls with `join_all`, so calls that do I/O interleave at the
//! backend; multi-threaded stress tests of in-memory structures live with the engines.
//!
//! The suites assert: they panic with a message naming the broken contract.

#![allow(
    clippy::missing_panics_doc,
    reason = "conformance cases are tests: they panic to report a broken contract"
)]

pub mod carrier;
pub mod catalog_store;
pub mod clock;
pub mod event_log;
pub mod faults;
pub mod idempotency_store;
pub mod notifier;
pub mod order_store;
pub mod payment_gateway;
pub mod projection_cache;
pub mod rate_limiter;

use chrono::{DateTime, TimeZone, Utc};

use crate::{
    Address, CategoryPath, CountryCode, Currency, EventLog, Image, Money, NewOrder, Order, OrderId,
    OrderLine, PriceTable, Product, ProductId, ProductStatus, Sku, UserId,
};

/// A fixed instant, 2026-11-25 12:00 UTC, for tests that need a "now".
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// A valid address in Berlin.
pub fn sample_address() -> Address {
    Address {
        name: "Ada Lovelace".into(),
        line1: "Unter den Linden 1".into(),
        line2: None,
        city: "Berlin".into(),
        region: None,
        postal_code: "10117".into(),
        country: CountryCode::new("DE").unwrap_or_else(|_| unreachable!("valid code")),
    }
}

fn ok<T>(r: crate::Result<T>, what: &str) -> T {
    r.unwrap_or_else(|e| panic!("sample {what} invalid: {e}"))
}

/// A valid active product `id` with SKU `sku`, priced 19.99 EUR, at version 1.
///
/// # Panics
/// If `id` or `sku` is not a valid id or SKU.
pub fn sample_product(id: &str, sku: &str) -> Product {
    Product {
        id: ok(ProductId::new(id), "product id"),
        sku: ok(Sku::new(sku), "sku"),
        title: format!("Product {id}"),
        description: "A sample product".into(),
        images: vec![Image {
            url: format!("https://img.example/{sku}.jpg"),
            alt: format!("Product {id}"),
        }],
        prices: PriceTable::single(Money::from_minor(1999, Currency::EUR)),
        attributes: [("colour".to_owned(), "red".to_owned())].into(),
        brand: Some("Acme".into()),
        category: ok(CategoryPath::parse("Apparel/Tops"), "category"),
        status: ProductStatus::Active,
        version: 1,
    }
}

/// A valid order `id` in `pending_payment`: 2 × 19.99 EUR and 1 × 5.00 EUR with 4.00 EUR of
/// discount, 4.90 EUR shipping, no extra tax: a grand total of 45.88 EUR.
///
/// # Panics
/// If `id` is not a valid order id.
pub fn sample_order(id: &str) -> Order {
    let eur = |minor| Money::from_minor(minor, Currency::EUR);
    let line = |sku: &str, qty, unit, discount| OrderLine {
        sku: ok(Sku::new(sku), "sku"),
        product_id: ok(ProductId::new(format!("p-{sku}")), "product id"),
        title: sku.to_owned(),
        quantity: qty,
        unit_price: eur(unit),
        discount: eur(discount),
        location: ok(crate::LocationId::new("main"), "location id"),
    };
    let new = NewOrder {
        id: ok(OrderId::new(id), "order id"),
        user_id: ok(UserId::new("user-1"), "user id"),
        currency: Currency::EUR,
        lines: vec![line("TEE-RED-M", 2, 1999, 300), line("SOCKS", 1, 500, 100)],
        shipping: eur(490),
        fees: None,
        tax: eur(0),
        tax_included: false,
        shipping_address: sample_address(),
        billing_address: sample_address(),
        settlement: None,
    };
    ok(Order::new(new, t0()), "order")
}

/// How many events with id `id` the log holds (a conformance check that an event committed
/// once, or not at all).
pub async fn events_with_id<L: EventLog + ?Sized>(log: &L, id: &str) -> usize {
    let mut n = 0;
    let mut from = 0;
    loop {
        let page = log.read(from, 1_000).await.unwrap();
        let Some(last) = page.last() else { return n };
        from = last.offset + 1;
        n += page
            .iter()
            .filter(|e| e.envelope.event_id.as_str() == id)
            .count();
    }
}

/// Stamps out one `#[tokio::test]` per conformance case. Used by the per-port macros.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases {
    ($make:expr; $($case:ident => $f:path),* $(,)?) => {
        $(
            #[::tokio::test]
            async fn $case() {
                let port = $make;
                $f(&port).await;
            }
        )*
    };
}

/// Stamps out one `#[tokio::test]` per conformance case of a store that commits events: `$make`
/// yields `(store, log)`, `log` a shared handle (`Arc`) to the event log the store writes to.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases_with_log {
    ($make:expr; $($case:ident => $f:path),* $(,)?) => {
        $(
            #[::tokio::test]
            async fn $case() {
                let (port, log) = $make;
                $f(&port, &*log).await;
            }
        )*
    };
}
