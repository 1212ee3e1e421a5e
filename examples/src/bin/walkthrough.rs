//! The SDK's main job until the reference server lands: every engine working together on the
//! in-memory ports. A shopper in Austria fills a cart, prices resolve per locale, promotions and
//! VAT apply, a carrier is chosen by rate shopping, checkout runs as a saga (stock held and
//! pinned, order created, charged once, confirmed), and the order ships and is delivered from
//! carrier tracking. Search indexes the catalog from its change events and finds the mug
//! through a typo.
//!
//! Run it with `cargo run -p examples --bin walkthrough`.

#![allow(clippy::print_stdout, reason = "an example prints what it does")]

use std::error::Error as StdError;
use std::sync::Arc;

use adapters::SystemClock;
use cart_engine::{
    Cart, CartCommand, FlatRateTax, InMemoryUsageStore, Mutation, PriceMode, PricingConfig,
    PricingContext, ShippingMethod, load_promotions, price,
};
use chrono::Days;
use commerce_core::memory::{
    InMemoryCarrier, InMemoryEventLog, InMemoryNotifier, InMemoryOrderStore, InMemoryPaymentGateway,
};
use commerce_core::testkit::{sample_address, sample_product};
use commerce_core::*;
use inventory::{InMemoryStockStore, StockConfig, StockKey};
use rust_decimal::Decimal;
use saga::{
    Checkout, CheckoutInput, CheckoutPorts, InMemoryJournal, Lifecycle, LifecyclePorts, rate_shop,
};

type AnyResult<T> = std::result::Result<T, Box<dyn StdError>>;

/// A sleeper for retries on the wall clock would need a runtime; this example never retries,
/// so a no-op sleeper is enough.
#[derive(Debug)]
struct NoSleep;

#[async_trait::async_trait]
impl saga::Sleeper for NoSleep {
    async fn sleep(&self, _delay: chrono::TimeDelta) {}
}

fn main() -> AnyResult<()> {
    futures::executor::block_on(run())
}

async fn run() -> AnyResult<()> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let now = clock.now();
    let wh = LocationId::new("wh-vienna")?;
    let at = CountryCode::new("AT")?;

    // Catalog and stock.
    let mut tee = sample_product("p-tee", "TEE-RED-M");
    tee.prices
        .set(PriceScope::Country(at), "21.50 EUR".parse()?)?;
    let mut mug = sample_product("p-mug", "MUG-01");
    mug.prices = PriceTable::single("8.90 EUR".parse()?);
    mug.brand = Some("Potter".into());
    let stock = Arc::new(InMemoryStockStore::new());
    for (p, units) in [(&tee, 5), (&mug, 3)] {
        let key = StockKey::new(p.sku.clone(), wh.clone());
        stock.configure_now(&key, StockConfig::default())?;
        let _ = stock.receive_now(
            &IdempotencyKey::derive("po-2026-11", p.sku.as_str())?,
            &key,
            units,
            now,
        )?;
    }

    // Search: the catalog projected into the shop's index, fed by catalog events and fresh
    // as soon as the indexer commits them.
    tee.title = "Red cotton tee".into();
    mug.title = "Stoneware mug".into();
    let shop_search = search::SearchIndex::create(
        search::TenantId::new("shop-at")?,
        search::TenantConfig::new(&[Currency::EUR]),
        search::Storage::Ram,
    )?;
    let catalog_log = search::MemoryChangeLog::new(10_000);
    for p in [&tee, &mug] {
        let mut projection = ProductProjection::from_product(p);
        projection.in_stock = Some(true);
        catalog_log.append(DomainEvent::ProductUpserted {
            projection: Box::new(projection),
        })?;
    }
    let indexer = search::Indexer::new(&shop_search, 500);
    let indexed = indexer.run_once(&catalog_log)?;
    let mut query = search::SearchRequest::new("poter mug", Currency::EUR);
    query.facets.brand = true;
    let found = shop_search.search(&query)?;
    let first = found.hits.first().ok_or("the mug should be found")?;
    println!(
        "== Search: {} products indexed at offset {}; {:?} (a typo) finds {} at {}; brands {:?}",
        indexed.applied,
        indexed.next_offset,
        query.text,
        first.sku,
        first.price.ok_or("a price")?,
        found
            .facets
            .brand
            .iter()
            .map(|f| format!("{} ({})", f.value, f.count))
            .collect::<Vec<_>>()
    );

    // The cart, priced for de-AT.
    let user = UserId::new("user-42")?;
    let mut cart = Cart::new(
        CartId::new("cart-42")?,
        Some(user.clone()),
        Currency::EUR,
        Some(Locale::new("de-AT")?),
        now,
    );
    let m = Mutation::at(now);
    let _ = cart.execute(
        CartCommand::AddLine {
            product: &tee,
            quantity: 2,
            gift_wrap: false,
        },
        &m,
    )?;
    let _ = cart.execute(
        CartCommand::AddLine {
            product: &mug,
            quantity: 3,
            gift_wrap: false,
        },
        &m,
    )?;
    let _ = cart.execute(CartCommand::ApplyCode("welcome 5".into()), &m)?;
    let mut address = sample_address();
    address.country = at;
    address.city = "Wien".into();
    let _ = cart.execute(CartCommand::SetShippingAddress(address.clone()), &m)?;

    // Rate shopping: the cheapest service that arrives within three days.
    let acme: Arc<dyn Carrier> = Arc::new(InMemoryCarrier::with_standard_services(
        "acme-post",
        Currency::EUR,
    ));
    let request = ShipmentRequest {
        from: sample_address(),
        to: address.clone(),
        parcels: vec![Parcel {
            weight_g: 1_800,
            dimensions_mm: [300, 200, 120],
        }],
        currency: Currency::EUR,
        ship_date: now.date_naive(),
    };
    let promised = now
        .date_naive()
        .checked_add_days(Days::new(3))
        .ok_or("date out of range")?;
    let quote = rate_shop(std::slice::from_ref(&acme), &request, promised).await?;
    let method = ShippingMethod {
        id: format!("{}/{}", quote.carrier, quote.service),
        name: quote.service.clone(),
        price: quote.amount,
    };
    let _ = cart.execute(CartCommand::SetShippingMethod(method), &m)?;
    println!(
        "== Shipping: {} {} for {}, due {}",
        quote.carrier, quote.service, quote.amount, quote.estimated_delivery
    );

    let promotions = load_promotions(
        r#"[
      {"id": "welcome5", "name": "5 off with WELCOME5", "code": "WELCOME5", "limits": {"per_customer": 1},
       "action": {"fixed_off_order": {"amount": {"amount": "5.00", "currency": "EUR"}}}},
      {"id": "potter", "name": "Potter mugs 20 %", "priority": 10,
       "action": {"percent_off": {"percent": "20", "items": {"brands": ["Potter"]}}}},
      {"id": "ship-free-80", "name": "free shipping over 80", "condition": {"min_subtotal": {"amount": {"amount": "80.00", "currency": "EUR"}}},
       "action": "free_shipping"}
    ]"#,
    )?;
    let config = PricingConfig {
        price_mode: PriceMode::TaxInclusive,
        ..PricingConfig::default()
    };
    let vat = FlatRateTax::new(Decimal::new(20, 2))?.with_rate(at, Decimal::new(20, 2))?;
    let priced = price(
        &cart,
        &promotions,
        &PricingContext {
            now,
            customer: None,
            config: &config,
            tax: &vat,
        },
    )?;
    println!("== Cart for de-AT (prices include 20 % VAT)");
    for line in &priced.lines {
        println!(
            "  {:<10} {} × {} = {}, discount {}",
            line.sku, line.quantity, line.unit_price, line.subtotal, line.discount
        );
    }
    for d in &priced.promotions {
        println!(
            "  promotion {:<13} {:?}",
            d.promotion_id.to_string(),
            d.outcome
        );
    }
    let t = &priced.totals;
    println!(
        "  subtotal {} − discounts {} + shipping {} = {} (VAT included: {})",
        t.subtotal, t.discount, t.shipping, t.total, t.tax
    );

    // Checkout: a saga keyed by the client's idempotency key.
    let orders = Arc::new(InMemoryOrderStore::new());
    let payments = Arc::new(InMemoryPaymentGateway::new());
    let outbox = Arc::new(InMemoryEventLog::new());
    let notifier = Arc::new(InMemoryNotifier::new());
    let ports = CheckoutPorts {
        usage: Arc::new(InMemoryUsageStore::new()),
        stock: stock.clone(),
        orders: orders.clone(),
        payments: payments.clone(),
        outbox: outbox.clone(),
        notifier: notifier.clone(),
    };
    let checkout = Checkout::new(
        ports,
        Arc::new(InMemoryJournal::new()),
        clock.clone(),
        Arc::new(NoSleep),
        "worker-1",
        7,
    );
    let key = IdempotencyKey::new("checkout-7f3a")?;
    let input = CheckoutInput::from_cart(
        &key,
        &cart,
        &priced,
        &promotions,
        user.clone(),
        &wh,
        address.clone(),
        "tok_visa".into(),
        now,
    )?;
    let outcome = checkout.checkout(&input).await?;
    let again = checkout.checkout(&input).await?;
    println!("== Checkout {key}: {outcome:?} (a retry with the same key: {again:?})");
    let charged: Vec<String> = payments
        .snapshot()
        .iter()
        .map(|p| format!("{} {}", p.payment_ref, p.captured))
        .collect();
    println!("  charges: {charged:?}");

    // After checkout: fulfil, ship, and let tracking deliver it.
    let life = Lifecycle::new(
        LifecyclePorts {
            orders: orders.clone(),
            stock: stock.clone(),
            payments,
            outbox: outbox.clone(),
            notifier: notifier.clone(),
        },
        wh.clone(),
    );
    let order_id = OrderId::new(key.as_str())?;
    let _ = life.start_fulfilment(&order_id, clock.now()).await?;
    let label = acme
        .create_label(
            &IdempotencyKey::derive(order_id.as_str(), "label")?,
            &request,
            &quote.service,
        )
        .await?;
    let _ = life.ship(&order_id, &label, clock.now()).await?;
    // The carrier's delivery scan arrives as a webhook (twice, as webhooks do).
    let tracking = TrackingEvent {
        seq: 7,
        at: clock.now(),
        status: TrackingStatus::Delivered,
    };
    let _ = life
        .on_tracking(&order_id, &label.carrier, &label.tracking_number, &tracking)
        .await?;
    let _ = life
        .on_tracking(&order_id, &label.carrier, &label.tracking_number, &tracking)
        .await?;

    let order = orders.get(&order_id).await?.ok_or("order vanished")?;
    println!(
        "== Order {}: {} after {} ledger entries",
        order.id(),
        order.status(),
        order.ledger().len()
    );
    for e in order.ledger() {
        println!(
            "  #{} {} → {} ({})",
            e.seq,
            e.from,
            e.to,
            e.transition.kind()
        );
    }
    for key in [
        StockKey::new(tee.sku.clone(), wh.clone()),
        StockKey::new(mug.sku.clone(), wh),
    ] {
        let l = stock.level_now(&key, clock.now())?;
        println!(
            "  stock {key}: on hand {}, committed {}, available {}",
            l.on_hand, l.committed, l.available
        );
    }
    let events: Vec<String> = outbox
        .snapshot()
        .iter()
        .map(|e| e.event_type.clone())
        .collect();
    println!("== Outbox: {events:?}");
    let notes: Vec<String> = notifier
        .sent()
        .iter()
        .map(|n| format!("{:?}", n.kind))
        .collect();
    println!("== Notifications to {user}: {notes:?}");
    Ok(())
}
