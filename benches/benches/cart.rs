//! Cart engine hot paths: pricing a 20-line cart with 10 promotions of mixed kinds, adding a
//! line, merging at login, repricing.
//!
//! `cargo bench -p benches --bench cart`

use std::hint::black_box;

use cart_engine::{
    Cart, CartCommand, CartRules, FlatRateTax, GiftWrapFee, MergeStrategy, Mutation, PricingConfig,
    PricingContext, ShippingMethod, load_promotions, merge, price,
};
use commerce_core::testkit::{sample_address, sample_product, t0};
use commerce_core::{
    CartId, CategoryPath, CountryCode, Currency, Money, PriceTable, Product, UserId,
};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use rust_decimal::Decimal;

fn products(n: usize) -> Vec<Product> {
    (0..n)
        .map(|i| {
            let mut p = sample_product(&format!("p-{i}"), &format!("SKU-{i:03}"));
            let cents = 499 + i64::try_from(i).unwrap_or(0) * 137;
            p.prices = PriceTable::single(Money::from_minor(cents, Currency::EUR));
            p.brand = Some(if i % 3 == 0 { "Acme" } else { "Other" }.into());
            let category = if i % 2 == 0 {
                "Apparel/Tops"
            } else {
                "Home/Kitchen"
            };
            p.category = CategoryPath::parse(category).unwrap_or_default();
            p
        })
        .collect()
}

fn cart_with(products: &[Product], id: &str, owner: Option<&str>) -> Cart {
    let owner = owner.and_then(|o| UserId::new(o).ok());
    let id = CartId::new(id).unwrap_or_else(|_| unreachable!("valid id"));
    let mut cart = Cart::new(id, owner, Currency::EUR, None, t0());
    let now = Mutation::at(t0());
    for (i, p) in products.iter().enumerate() {
        let qty = u32::try_from(i % 4 + 1).unwrap_or(1);
        let _ = cart.execute(
            CartCommand::AddLine {
                product: p,
                quantity: qty,
                gift_wrap: i % 7 == 0,
            },
            &now,
        );
    }
    let _ = cart.execute(CartCommand::ApplyCode("SAVE10".into()), &now);
    let _ = cart.execute(CartCommand::SetShippingAddress(sample_address()), &now);
    let method = ShippingMethod {
        id: "std".into(),
        name: "Standard".into(),
        price: Money::from_minor(490, Currency::EUR),
    };
    let _ = cart.execute(CartCommand::SetShippingMethod(method), &now);
    cart
}

const PROMOTIONS: &str = r#"[
  {"id": "p1", "name": "10 % tops", "priority": 50, "action": {"percent_off": {"percent": "10", "items": {"categories": [["Apparel"]]}}}},
  {"id": "p2", "name": "1 off each Acme", "priority": 40, "action": {"fixed_off_per_unit": {"amount": {"amount": "1.00", "currency": "EUR"}, "items": {"brands": ["Acme"]}}}},
  {"id": "p3", "name": "bogo kitchen", "priority": 30, "action": {"buy_x_get_y": {"buy": {"categories": [["Home"]]}, "buy_quantity": 2, "get": {"categories": [["Home"]]}, "get_quantity": 1, "percent_off": "50", "max_occurrences": 3}}},
  {"id": "p4", "name": "code 10 off", "code": "SAVE10", "priority": 20, "action": {"fixed_off_order": {"amount": {"amount": "10.00", "currency": "EUR"}}}},
  {"id": "p5", "name": "tiers", "priority": 10, "stacking_group": "spend", "action": {"tiered_order": {"tiers": [
     {"min_subtotal": {"amount": "50.00", "currency": "EUR"}, "amount_off": {"amount": "5.00", "currency": "EUR"}},
     {"min_subtotal": {"amount": "100.00", "currency": "EUR"}, "amount_off": {"amount": "15.00", "currency": "EUR"}}]}}},
  {"id": "p6", "name": "7.5 %", "priority": 10, "stacking_group": "spend", "action": {"percent_off": {"percent": "7.5"}}},
  {"id": "p7", "name": "free shipping over 50", "condition": {"min_subtotal": {"amount": {"amount": "50.00", "currency": "EUR"}}}, "action": "free_shipping"},
  {"id": "p8", "name": "fixed price socks", "action": {"fixed_price": {"unit_price": {"amount": "3.00", "currency": "EUR"}, "items": {"skus": ["SKU-001", "SKU-005"]}}}},
  {"id": "p9", "name": "vip only", "condition": {"customer_group": ["vip"]}, "action": {"percent_off": {"percent": "5"}}},
  {"id": "p10", "name": "2 off a line", "condition": {"all": [{"min_quantity": {"quantity": 10}}, {"first_order": null}]}, "action": {"fixed_off_per_line": {"amount": {"amount": "2.00", "currency": "EUR"}}}}
]"#;

fn cart(c: &mut Criterion) {
    let catalog = products(20);
    let cart = cart_with(&catalog, "bench", None);
    let promotions = load_promotions(PROMOTIONS).unwrap_or_default();
    assert_eq!(promotions.len(), 10);
    let config = PricingConfig {
        rules: CartRules {
            gift_wrap: GiftWrapFee::PerLine(Money::from_minor(150, Currency::EUR)),
            ..CartRules::default()
        },
        ..PricingConfig::default()
    };
    let tax = FlatRateTax::new(Decimal::new(7, 2))
        .and_then(|t| {
            t.with_rate(
                CountryCode::new("DE").unwrap_or_else(|_| unreachable!()),
                Decimal::new(19, 2),
            )
        })
        .unwrap_or_else(|_| unreachable!("valid rates"));
    let ctx = PricingContext {
        now: t0(),
        customer: None,
        config: &config,
        tax: &tax,
    };

    c.bench_function("cart/price_20_lines_10_promotions", |b| {
        b.iter(|| price(black_box(&cart), black_box(&promotions), &ctx));
    });

    // The same cart with the capabilities of unit-level pricing in play: the per-unit amount
    // reaches at most 5 units, the line promotion asks for a line of 4, tax rounds per unit.
    let capable = load_promotions(
        &PROMOTIONS
            .replace(
                r#""items": {"brands": ["Acme"]}}}"#,
                r#""items": {"brands": ["Acme"]}, "max_quantity": 5}}"#,
            )
            .replace(
                r#"{"min_quantity": {"quantity": 10}}"#,
                r#"{"line_quantity": {"quantity": 4}}"#,
            ),
    )
    .unwrap_or_default();
    assert!(capable.iter().any(|p| matches!(
        p.action,
        cart_engine::Action::FixedOffPerUnit {
            max_quantity: Some(5),
            ..
        }
    )));
    let unit_tax = PricingConfig {
        rounding: cart_engine::RoundingPolicy {
            tax: cart_engine::TaxRounding::PerUnit,
            ..cart_engine::RoundingPolicy::default()
        },
        ..config.clone()
    };
    let unit_ctx = PricingContext::new(t0(), &unit_tax, &tax);
    c.bench_function("cart/price_20_lines_10_promotions_unit_level", |b| {
        b.iter(|| price(black_box(&cart), black_box(&capable), &unit_ctx));
    });

    c.bench_function("cart/price_20_lines_no_promotions", |b| {
        b.iter(|| price(black_box(&cart), &[], &ctx));
    });

    let extra = products(21).pop().unwrap_or_else(|| unreachable!());
    c.bench_function("cart/add_line_to_20_line_cart", |b| {
        b.iter_batched(
            || cart.clone(),
            |mut cart| {
                cart.execute(
                    CartCommand::AddLine {
                        product: &extra,
                        quantity: 1,
                        gift_wrap: false,
                    },
                    &Mutation::at(t0()),
                )
            },
            BatchSize::SmallInput,
        );
    });

    let user = cart_with(&catalog[..10], "user-cart", Some("u-1"));
    let guest = cart_with(&catalog[5..], "guest", None);
    c.bench_function("cart/merge_15_line_guest_into_10_line_user_cart", |b| {
        b.iter_batched(
            || (user.clone(), guest.clone()),
            |(mut u, mut g)| merge(&mut u, &mut g, MergeStrategy::SumCapped, t0()),
            BatchSize::SmallInput,
        );
    });

    let mut repriced = catalog.clone();
    for p in repriced.iter_mut().step_by(4) {
        p.prices = PriceTable::single(Money::from_minor(999, Currency::EUR));
    }
    c.bench_function("cart/reprice_20_lines_5_changed", |b| {
        b.iter_batched(
            || cart.clone(),
            |mut cart| cart.reprice(|sku| repriced.iter().find(|p| p.sku == *sku), t0()),
            BatchSize::SmallInput,
        );
    });
}

criterion_group!(benches, cart);
criterion_main!(benches);
