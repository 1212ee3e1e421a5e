//! The SDK's main job until the reference server lands: price a small cart from per-locale
//! price tables, split an order discount exactly, take the payment, and walk the order through
//! its life with a carrier, an outbox and notifications — all on the in-memory ports.
//!
//! Run it with `cargo run -p examples --bin walkthrough`.

#![allow(clippy::print_stdout, reason = "an example prints what it does")]

use std::error::Error as StdError;

use adapters::SystemClock;
use chrono::Days;
use commerce_core::memory::{
    InMemoryCarrier, InMemoryEventLog, InMemoryNotifier, InMemoryOrderStore, InMemoryPaymentGateway,
};
use commerce_core::testkit::{sample_address, sample_product};
use commerce_core::*;
use rust_decimal::Decimal;

type AnyResult<T> = std::result::Result<T, Box<dyn StdError>>;

fn main() -> AnyResult<()> {
    futures::executor::block_on(run())
}

async fn run() -> AnyResult<()> {
    let clock = SystemClock;
    let locale = Locale::new("de-AT")?;

    // 1. Two products; the tee has an Austrian price.
    let mut tee = sample_product("p-tee", "TEE-RED-M");
    tee.prices.set(
        PriceScope::Country(CountryCode::new("AT")?),
        "21.50 EUR".parse()?,
    )?;
    let mut mug = sample_product("p-mug", "MUG-01");
    mug.prices = PriceTable::single("8.90 EUR".parse()?);
    let cart = [(&tee, 2u32), (&mug, 3u32)];

    println!("== Pricing for {locale}");
    let mut lines = Vec::new();
    for (product, qty) in cart {
        let unit = product.prices.resolve(Currency::EUR, Some(&locale), None)?;
        let subtotal = unit.checked_mul(Decimal::from(qty))?;
        println!("  {:<10} {qty} × {unit} = {subtotal}", product.sku);
        lines.push((product, qty, unit, subtotal));
    }

    // 2. A 10 % order discount, rounded half-even, allocated over the lines by their subtotals.
    let subtotal = Money::sum(Currency::EUR, lines.iter().map(|l| &l.3))?;
    let discount = subtotal
        .checked_mul(Decimal::new(10, 2))?
        .round(RoundingMode::HalfEven);
    let weights: Vec<Decimal> = lines.iter().map(|l| l.3.amount()).collect();
    let shares = allocate(&discount, &weights)?;
    println!("  subtotal {subtotal}, 10 % off = {discount}, split {shares:?}");

    // 3. The order.
    let order_lines = lines
        .iter()
        .zip(&shares)
        .map(|((product, qty, unit, _), share)| OrderLine {
            sku: product.sku.clone(),
            product_id: product.id.clone(),
            title: product.title.clone(),
            quantity: *qty,
            unit_price: *unit,
            discount: *share,
        })
        .collect();
    let new = NewOrder {
        id: OrderId::new("order-1001")?,
        user_id: UserId::new("user-42")?,
        currency: Currency::EUR,
        lines: order_lines,
        shipping: "4.90 EUR".parse()?,
        fees: None,
        tax: Money::zero(Currency::EUR),
        tax_included: false,
        shipping_address: sample_address(),
        billing_address: sample_address(),
    };
    let mut order = Order::new(new, clock.now())?;
    let totals = *order.totals();
    println!(
        "== Order {}: {} − {} + {} shipping = {}",
        order.id(),
        totals.subtotal,
        totals.discount,
        totals.shipping,
        totals.grand_total
    );

    // 4. The ports, in memory.
    let orders = InMemoryOrderStore::new();
    let payments = InMemoryPaymentGateway::new();
    let carrier = InMemoryCarrier::with_standard_services("acme-post", Currency::EUR);
    let outbox = InMemoryEventLog::new();
    let notifier = InMemoryNotifier::new();
    orders.insert(order.clone()).await?;

    // 5. Charge with a key derived from the order id, so a retry can never charge twice.
    let charge = AuthorizeRequest {
        idempotency_key: IdempotencyKey::derive(order.id().as_str(), "charge")?,
        order_id: order.id().clone(),
        amount: totals.grand_total,
        method_token: "tok_visa".into(),
        capture: true,
    };
    let payment = payments.authorize(&charge).await?;
    let again = payments.authorize(&charge).await?;
    assert_eq!(payment.payment_ref, again.payment_ref);
    println!(
        "== Charged {} as {} (a retry returned the same charge)",
        payment.captured, payment.payment_ref
    );

    // 6. Walk the order; every step is a ledger entry, a stored version and an event.
    let shipment = ShipmentRequest {
        from: sample_address(),
        to: order.shipping_address().clone(),
        parcels: vec![Parcel {
            weight_g: 1_800,
            dimensions_mm: [300, 200, 120],
        }],
        currency: Currency::EUR,
        ship_date: clock
            .now()
            .date_naive()
            .checked_add_days(Days::new(1))
            .ok_or("date out of range")?,
    };
    let quotes = carrier.quote(&shipment).await?;
    let cheapest = quotes
        .iter()
        .min_by_key(|q| q.amount.amount())
        .ok_or("no quote")?;
    let label = carrier
        .create_label(
            &IdempotencyKey::derive(order.id().as_str(), "label")?,
            &shipment,
            &cheapest.service,
        )
        .await?;
    println!(
        "== Label {} via {} ({}), due {}",
        label.tracking_number, label.service, label.amount, cheapest.estimated_delivery
    );

    let steps = vec![
        Transition::ConfirmPayment {
            payment_ref: payment.payment_ref.clone(),
        },
        Transition::StartFulfilment,
        Transition::Ship {
            carrier: label.carrier.clone(),
            tracking_number: label.tracking_number.clone(),
        },
        Transition::Deliver,
    ];
    for transition in steps {
        let version = order.version();
        let entry = order.apply(transition, clock.now())?.clone();
        match orders.update(order.clone(), version).await? {
            CasOutcome::Committed => {}
            lost => return Err(format!("lost a race: {lost}").into()),
        }
        let event = EventEnvelope::new(
            EventId::new(format!("{}-{}", order.id(), entry.seq))?,
            entry.at,
            DomainEvent::OrderStatusChanged {
                order_id: order.id().clone(),
                from: entry.from,
                to: entry.to,
                transition: entry.transition.kind(),
                seq: entry.seq,
            },
        );
        outbox.publish(&[event.clone(), event]).await?; // the duplicate is dropped
        let kind = match entry.to {
            OrderStatus::Confirmed => Some(NotificationKind::OrderConfirmed),
            OrderStatus::Shipped => Some(NotificationKind::OrderShipped),
            OrderStatus::Delivered => Some(NotificationKind::OrderDelivered),
            _ => None,
        };
        if let Some(kind) = kind {
            notifier
                .send(&Notification {
                    key: IdempotencyKey::derive(order.id().as_str(), entry.to.as_str())?,
                    recipient: order.user_id().clone(),
                    kind,
                    order_id: Some(order.id().clone()),
                    sku: None,
                })
                .await?;
        }
        println!(
            "  #{} {} → {} ({})",
            entry.seq,
            entry.from,
            entry.to,
            entry.transition.kind()
        );
    }

    // 7. An illegal move is refused and changes nothing.
    let before = order.clone();
    let refused = order
        .apply(Transition::StartFulfilment, clock.now())
        .err()
        .ok_or("should have been refused")?;
    assert_eq!(order, before);
    println!("== Refused: {refused}");

    let stored = orders.get(order.id()).await?.ok_or("order vanished")?;
    println!(
        "== Stored order at version {}, ledger replays to {}; {} events in the outbox; {} notifications sent",
        stored.version(),
        Order::replay(stored.ledger())?,
        outbox.end_offset().await?,
        notifier.sent().len()
    );
    Ok(())
}
