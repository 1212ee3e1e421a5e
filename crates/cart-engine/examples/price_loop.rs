//! Prices the benchmark cart of `benches/benches/cart.rs` (`cart/price_20_lines_10_promotions`) a
//! fixed number of times, for instruction counts under `valgrind --tool=callgrind` and
//! allocation counts under `valgrind --tool=dhat`, where the VM's clock is too noisy to rank
//! small changes:
//!
//! ```sh
//! cargo build --profile bench -p cart-engine --example price_loop
//! valgrind --tool=callgrind --toggle-collect='price_loop::price_once' \
//!     target/release/examples/price_loop 1000
//! valgrind --tool=dhat target/release/examples/price_loop 1000
//! ```
//!
//! Instructions per call are the collected total divided by the calls (the argument, default
//! 1000). The cart and promotions are built exactly as the benchmark builds them.

use std::hint::black_box;

use cart_engine::{
    Cart, CartCommand, CartRules, FlatRateTax, GiftWrapFee, Mutation, PricingConfig,
    PricingContext, ShippingMethod, load_promotions, price,
};
use commerce_core::testkit::{sample_address, sample_product, t0};
use commerce_core::{CartId, CategoryPath, CountryCode, Currency, Money, PriceTable, Product};
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

fn cart_with(products: &[Product]) -> Cart {
    let id = CartId::new("bench").unwrap_or_else(|_| unreachable!("valid id"));
    let mut cart = Cart::new(id, None, Currency::EUR, None, t0());
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

fn main() {
    let calls: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let catalog = products(20);
    let cart = cart_with(&catalog);
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
    let ctx = PricingContext::new(t0(), &config, &tax);
    for _ in 0..calls {
        price_once(&cart, &promotions, &ctx);
    }
}

/// One call as the benchmark times it: pricing, then dropping the priced cart.
#[inline(never)]
fn price_once(cart: &Cart, promotions: &[cart_engine::Promotion], ctx: &PricingContext<'_>) {
    drop(black_box(price(
        black_box(cart),
        black_box(promotions),
        ctx,
    )));
}
