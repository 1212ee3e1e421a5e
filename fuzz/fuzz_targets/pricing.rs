//! Arbitrary promotion documents against arbitrary carts: loading refuses bad documents with a
//! typed error, and whatever loads prices without panicking into a cart that keeps every
//! invariant (`cart_engine::testkit::check_priced_cart_for`).
//!
//! Input: a promotion document (JSON), a 0xFF byte, then the cart: a flags byte, a tax-rate
//! byte, two shipping bytes, and 4-byte lines (SKU, price low, price high, quantity).
//! `fuzz/seeds/pricing/` holds valid starting points.
#![no_main]

use cart_engine::{
    Cart, CartCommand, FlatRateTax, Mutation, PriceMode, PricingConfig, PricingContext,
    RoundingLevel, RoundingPolicy, ShippingMethod, TaxRounding, load_promotions, price,
};
use commerce_core::testkit::{sample_product, t0};
use commerce_core::{CartId, Currency, Money, PriceTable, RoundingMode};
use libfuzzer_sys::fuzz_target;
use rust_decimal::Decimal;

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|b| *b == 0xFF).unwrap_or(data.len());
    let Ok(doc) = std::str::from_utf8(&data[..split]) else {
        return;
    };
    let Ok(promotions) = load_promotions(doc) else {
        return;
    };
    let cart_bytes = data.get(split + 1..).unwrap_or_default();
    let [flags, rate, ship_lo, ship_hi, lines @ ..] = cart_bytes else {
        return;
    };

    let now = Mutation::at(t0());
    let mut cart = Cart::new(
        CartId::new("fuzz").expect("id"),
        None,
        Currency::EUR,
        None,
        t0(),
    );
    for line in lines.chunks_exact(4).take(30) {
        let mut p = sample_product(&format!("p-{}", line[0]), &format!("S{}", line[0]));
        let cents = i64::from(u16::from_le_bytes([line[1], line[2]]));
        p.prices = PriceTable::single(Money::from_minor(cents, Currency::EUR));
        let add = CartCommand::AddLine {
            product: &p,
            quantity: u32::from(line[3]),
            gift_wrap: line[0] % 3 == 0,
        };
        let _ = cart.execute(add, &now);
    }
    let shipping = Money::from_minor(
        i64::from(u16::from_le_bytes([*ship_lo, *ship_hi])),
        Currency::EUR,
    );
    let method = ShippingMethod {
        id: "m".into(),
        name: "m".into(),
        price: shipping,
    };
    let _ = cart.execute(CartCommand::SetShippingMethod(method), &now);
    let config = PricingConfig {
        rounding: RoundingPolicy {
            mode: RoundingMode::ALL[usize::from(flags % 5)],
            level: [
                RoundingLevel::Unit,
                RoundingLevel::Line,
                RoundingLevel::Total,
            ][usize::from(flags / 5 % 3)],
            tax: [
                TaxRounding::PerLine,
                TaxRounding::PerTotal,
                TaxRounding::PerUnit,
            ][usize::from(*rate % 3)],
        },
        price_mode: if flags & 0x80 == 0 {
            PriceMode::TaxExclusive
        } else {
            PriceMode::TaxInclusive
        },
        ..PricingConfig::default()
    };
    let tax = FlatRateTax::new(Decimal::new(i64::from(rate % 101), 2)).expect("rate in range");
    let ctx = PricingContext {
        now: t0(),
        customer: None,
        config: &config,
        tax: &tax,
    };
    if let Ok(priced) = price(&cart, &promotions, &ctx) {
        if let Err(broken) = cart_engine::testkit::check_priced_cart_for(&priced, &promotions) {
            panic!("{broken}");
        }
    }
});
