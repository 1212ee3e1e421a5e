//! The SDK's main job until the reference server lands: every engine working together on the
//! in-memory ports. A shopper in Austria fills a cart, prices resolve per locale, promotions and
//! VAT apply, a carrier is chosen by rate shopping, checkout runs as a saga (stock held and
//! pinned, order created, charged once, confirmed), and the order ships and is delivered from
//! carrier tracking. Every store commits its changes' events to one outbox; search indexes the
//! catalog from that log (skipping the rest) and finds the mug through a typo.
//!
//! Run it with `cargo run -p examples --bin walkthrough`. With `DATABASE_URL` set, every store
//! (catalog, stock and holds, promotion usage, orders, the saga journal, the event log and the
//! sandbox payment provider) is the PostgreSQL one instead, in a schema `walkthrough` it
//! recreates on each run; nothing else changes.

#![allow(clippy::print_stdout, reason = "an example prints what it does")]

use std::collections::{HashMap, HashSet};
use std::error::Error as StdError;
use std::sync::Arc;

use adapters::postgres::{Postgres, PostgresConfig};
use adapters::{SystemClock, TokioSleeper};
use cart_engine::{
    Cart, CartCommand, FlatRateTax, InMemoryUsageStore, Mutation, PriceMode, PricingConfig,
    PricingContext, PromotionUsageStore, ShippingMethod, load_promotions, price,
};
use chrono::Days;
use commerce_core::memory::{
    InMemoryCarrier, InMemoryCatalog, InMemoryEventLog, InMemoryNotifier, InMemoryOrderStore,
    InMemoryPaymentGateway,
};
use commerce_core::*;
use inventory::{InMemoryStockStore, StockConfig, StockKey, StockStore};
use recs::blend::{BlendConfig, PageRequest, ProductFacts, product_page};
use recs::copurchase::{CoPurchase, CoPurchaseConfig, baskets_of, write_lists};
use rust_decimal::Decimal;
use saga::{
    CapturePolicy, Checkout, CheckoutInput, CheckoutPorts, InMemoryJournal, LabelSource, Lifecycle,
    LifecyclePorts, SagaJournal, Shipment, rate_shop,
};

type AnyResult<T> = std::result::Result<T, Box<dyn StdError>>;

fn main() -> AnyResult<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(run())
}

/// Every store the walkthrough writes to, in memory or on PostgreSQL.
struct Stores {
    backend: String,
    /// The log every store's events end up in, read by search.
    log: Arc<dyn EventLog>,
    /// Where events that belong to no store write are published.
    publisher: Arc<dyn EventPublisher>,
    catalog: Arc<dyn CatalogStore>,
    stock: Arc<dyn StockStore>,
    usage: Arc<dyn PromotionUsageStore>,
    orders: Arc<dyn OrderStore>,
    payments: Arc<dyn PaymentGateway>,
    journal: Arc<dyn SagaJournal>,
}

impl Stores {
    /// PostgreSQL when `DATABASE_URL` is set, memory otherwise.
    async fn open() -> AnyResult<Stores> {
        let Ok(url) = std::env::var("DATABASE_URL") else {
            let outbox = Arc::new(InMemoryEventLog::new());
            return Ok(Stores {
                backend: "in memory".into(),
                log: outbox.clone(),
                publisher: outbox.clone(),
                catalog: Arc::new(InMemoryCatalog::with_outbox(outbox.clone())),
                stock: Arc::new(InMemoryStockStore::with_outbox(outbox.clone())),
                usage: Arc::new(InMemoryUsageStore::new()),
                orders: Arc::new(InMemoryOrderStore::with_outbox(outbox)),
                payments: Arc::new(InMemoryPaymentGateway::new()),
                journal: Arc::new(InMemoryJournal::new()),
            });
        };
        // A clean schema per run, so the fixed ids below start fresh.
        let admin = Postgres::connect(&url).await?;
        let _ = sqlx::query("DROP SCHEMA IF EXISTS walkthrough CASCADE")
            .execute(admin.primary())
            .await?;
        admin.close().await;
        let pg = Postgres::connect_shards(
            &[&url],
            PostgresConfig {
                schema: Some("walkthrough".into()),
                application_name: "walkthrough".into(),
                ..PostgresConfig::default()
            },
        )
        .await?;
        pg.migrate().await?;
        let log = Arc::new(pg.event_log());
        Ok(Stores {
            backend: "PostgreSQL (schema walkthrough)".into(),
            log: log.clone(),
            publisher: log,
            catalog: Arc::new(pg.catalog()),
            stock: Arc::new(pg.stock()),
            usage: Arc::new(pg.promotion_usage()),
            orders: Arc::new(pg.orders()),
            payments: Arc::new(pg.payment_sandbox()),
            journal: Arc::new(pg.saga_journal()),
        })
    }
}

/// A product of the walkthrough's shop, version 1, priced in EUR.
fn product(id: &str, sku: &str, title: &str, price: &str, brand: &str) -> AnyResult<Product> {
    Ok(Product {
        id: ProductId::new(id)?,
        sku: Sku::new(sku)?,
        title: title.into(),
        description: String::new(),
        images: Vec::new(),
        prices: PriceTable::single(price.parse()?),
        attributes: Default::default(),
        brand: Some(brand.into()),
        category: CategoryPath::parse("Home/Kitchen")?,
        status: ProductStatus::Active,
        version: 1,
    })
}

/// The warehouse in Vienna.
fn warehouse_address() -> AnyResult<Address> {
    Ok(Address {
        name: "Shop warehouse".into(),
        line1: "Lagerstrasse 1".into(),
        line2: None,
        city: "Wien".into(),
        region: None,
        postal_code: "1030".into(),
        country: CountryCode::new("AT")?,
    })
}

async fn run() -> AnyResult<()> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let now = clock.now();
    let wh = LocationId::new("wh-vienna")?;
    let at = CountryCode::new("AT")?;

    // Every store commits the events its writes cause in the same step, to one log.
    let stores = Stores::open().await?;
    println!("== Stores: {}", stores.backend);
    let outbox = stores.log.clone();

    // Catalog and stock.
    let catalog = stores.catalog.clone();
    let mut tee = product("p-tee", "TEE-RED-M", "Red cotton tee", "19.99 EUR", "Acme")?;
    tee.prices
        .set(PriceScope::Country(at), "21.50 EUR".parse()?)?;
    let mug = product("p-mug", "MUG-01", "Stoneware mug", "8.90 EUR", "Potter")?;
    for p in [&tee, &mug] {
        let events = p.change_events(None, now)?;
        if catalog.put(p.clone(), &events).await? != CasOutcome::Committed {
            return Err("the catalog refused a new product".into());
        }
    }
    let stock = stores.stock.clone();
    for (p, units) in [(&tee, 5), (&mug, 3)] {
        let key = StockKey::new(p.sku.clone(), wh.clone());
        stock.configure(&key, StockConfig::default()).await?;
        let _ = stock
            .receive(
                &IdempotencyKey::derive("po-2026-11", p.sku.as_str())?,
                &key,
                units,
                now,
            )
            .await?;
    }

    // Search: the catalog projected into the shop's index, read from the outbox (stock events
    // are read and skipped) and fresh as soon as the indexer commits.
    let shop_search = search::SearchIndex::create(
        search::TenantId::new("shop-at")?,
        search::TenantConfig::new(&[Currency::EUR]),
        search::Storage::Ram,
    )?;
    let indexer = search::Indexer::new(&shop_search, 500);
    let indexed = indexer.run_once(outbox.as_ref()).await?;
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
    let address = Address {
        name: "Ada Lovelace".into(),
        line1: "Stephansplatz 1".into(),
        line2: None,
        city: "Wien".into(),
        region: None,
        postal_code: "1010".into(),
        country: at,
    };
    let _ = cart.execute(CartCommand::SetShippingAddress(address.clone()), &m)?;

    // Rate shopping: the cheapest service that arrives within three days.
    let acme: Arc<dyn Carrier> = Arc::new(InMemoryCarrier::with_standard_services(
        "acme-post",
        Currency::EUR,
    ));
    let request = ShipmentRequest {
        from: warehouse_address()?,
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
    let orders = stores.orders.clone();
    let payments = stores.payments.clone();
    let notifier = Arc::new(InMemoryNotifier::new());
    let journal = stores.journal.clone();
    let ports = CheckoutPorts {
        usage: stores.usage.clone(),
        stock: stock.clone(),
        orders: orders.clone(),
        payments: payments.clone(),
        notifier: notifier.clone(),
    };
    let checkout = Checkout::new(
        ports,
        journal.clone(),
        clock.clone(),
        Arc::new(TokioSleeper),
        "worker-1",
        7,
    );
    let key = IdempotencyKey::new("checkout-7f3a")?;
    // Authorized now, captured when the parcel ships: a cancellation before that is a void,
    // not a refund.
    let input = CheckoutInput::from_cart(&cart, &priced, &promotions, now)?
        .order_id(&key)
        .customer(user.as_str())?
        .ship_from(wh.clone())
        .billing(address.clone())
        .payment_method("tok_visa")
        .capture(CapturePolicy::AtShipment)
        .build()?;
    let outcome = checkout.checkout(&input).await?;
    let again = checkout.checkout(&input).await?;
    println!("== Checkout {key}: {outcome:?} (a retry with the same key: {again:?})");
    let charged: Vec<String> = payments
        .list(None, 100)
        .await?
        .iter()
        .map(|p| {
            format!(
                "{} authorized {}, captured {}",
                p.payment_ref, p.authorized, p.captured
            )
        })
        .collect();
    println!("  payments: {charged:?}");

    // After checkout: fulfil, ship (the lifecycle buys the label), and let tracking deliver it.
    let life = Lifecycle::builder(
        LifecyclePorts {
            orders: orders.clone(),
            stock: stock.clone(),
            payments: payments.clone(),
            carrier: acme,
            outbox: stores.publisher.clone(),
            notifier: notifier.clone(),
        },
        clock.clone(),
        Arc::new(TokioSleeper),
    )
    .journal(journal)
    .worker("worker-1")
    .build();
    let order_id = OrderId::new(key.as_str())?;
    let _ = life.start_fulfilment(&order_id).await?;
    let shipment = Shipment::whole(
        "parcel-1",
        LabelSource::Buy {
            request: Box::new(request),
            service: quote.service.clone(),
        },
    );
    let shipped = life.ship(&order_id, shipment).await?;
    let saga::Applied::Moved(shipped) = shipped else {
        return Err(format!("the order did not ship: {shipped:?}").into());
    };
    let (carrier, tracking_number) = shipped
        .ledger()
        .iter()
        .find_map(|e| match &e.transition {
            Transition::Ship {
                carrier,
                tracking_number,
                ..
            } => Some((carrier.clone(), tracking_number.clone())),
            _ => None,
        })
        .ok_or("no shipment")?;
    let captured: Vec<String> = payments
        .list(None, 100)
        .await?
        .iter()
        .map(|p| format!("{} captured {}", p.payment_ref, p.captured))
        .collect();
    println!("== Shipped with {tracking_number}; payments now: {captured:?}");
    // The carrier's delivery scan arrives as a webhook (twice, as webhooks do).
    let tracking = TrackingEvent {
        seq: 7,
        at: clock.now(),
        status: TrackingStatus::Delivered,
    };
    for _ in 0..2 {
        let _ = life
            .on_tracking(&order_id, &carrier, &tracking_number, &tracking)
            .await?;
    }

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
        let l = stock.level(&key, clock.now()).await?;
        println!(
            "  stock {key}: on hand {}, committed {}, available {}",
            l.on_hand, l.committed, l.available
        );
    }
    let events: Vec<String> = outbox
        .read(0, 1_000)
        .await?
        .iter()
        .map(|e| e.envelope.event_type.clone())
        .collect();
    println!(
        "== Outbox ({} events, each committed with its write): {events:?}",
        events.len()
    );
    let behind = indexer.lag(outbox.as_ref()).await?;
    let caught_up = indexer.run_once(outbox.as_ref()).await?;
    println!(
        "== Search was {behind} events behind; one batch read {} and changed nothing ({} skipped)",
        caught_up.read, caught_up.skipped
    );
    // Recommendations: "bought together" lists built from the log's confirmed orders, blended
    // on the mug's product page with the products' facts (70 % relevance, 30 % business).
    let logged: Vec<EventEnvelope> = outbox
        .read(0, 1_000)
        .await?
        .into_iter()
        .map(|e| e.envelope)
        .collect();
    let lists = recs::InMemoryTopKStore::new();
    let model = CoPurchase::build(&baskets_of(&logged)?, CoPurchaseConfig::default())?;
    let _ = write_lists(&lists, &model.all_lists(1)?).await?;
    let views = recs::InMemoryRecentlyViewed::new(20);
    let mut facts = HashMap::new();
    for (p, brand) in [(&tee, "Acme"), (&mug, "Potter")] {
        let key = StockKey::new(p.sku.clone(), LocationId::new("wh-vienna")?);
        let in_stock = stock.level(&key, clock.now()).await?.available > 0;
        let _ = facts.insert(
            p.sku.clone(),
            ProductFacts {
                sku: p.sku.clone(),
                brand: Some(brand.to_owned()),
                category: None,
                in_stock,
                retired: false,
                margin_bps: None,
                stock_pressure_bps: 0,
            },
        );
    }
    let page = PageRequest {
        anchor: mug.sku.clone(),
        session: SessionId::new("session-1")?,
        user: None,
        exclude: HashSet::new(),
    };
    let shown = product_page(&page, &lists, &views, &facts, &BlendConfig::default()).await?;
    let shown: Vec<String> = shown
        .iter()
        .map(|r| format!("{} ({:.2})", r.sku, r.score))
        .collect();
    println!(
        "== Product page of {} (sold out now): bought together {shown:?}",
        mug.sku
    );

    let notes: Vec<String> = notifier
        .sent()
        .iter()
        .map(|n| format!("{:?}", n.kind))
        .collect();
    println!("== Notifications to {user}: {notes:?}");
    Ok(())
}
