//! Worked examples of what the engine owes a shop beyond the basics, written with the builders
//! a newcomer uses: stacked buy-X-get-Y that sees earlier discounts unit by unit, `max_quantity`,
//! per-line quantity conditions, unit-level tax, receipt totals, shop limits and owner transfer.

use cart_engine::*;
use commerce_core::testkit::t0;
use commerce_core::{CartId, CountryCode, Currency, ErrorKind, Money, UserId};
use rust_decimal::Decimal;

fn eur(cents: i64) -> Money {
    Money::from_minor(cents, Currency::EUR)
}

fn cents(m: Money) -> i64 {
    m.to_minor().unwrap()
}

/// An anonymous EUR cart with `(sku, unit cents, quantity)` lines.
fn cart(lines: &[(&str, i64, u32)]) -> Cart {
    let mut cart = Cart::new(CartId::new("c-1").unwrap(), None, Currency::EUR, None, t0())
        .with_limits(CartLimits {
            quantity_per_line_max: 5_000,
            ..CartLimits::default()
        })
        .unwrap();
    for (sku, unit, quantity) in lines {
        let item = LineItem::new(sku, eur(*unit)).unwrap();
        cart.execute(
            CartCommand::AddItem {
                item,
                quantity: *quantity,
                gift_wrap: false,
            },
            &Mutation::at(t0()),
        )
        .unwrap();
    }
    cart
}

/// Two promotions, the first applying first.
fn stacked(first: (&str, Action), second: (&str, Action)) -> [Promotion; 2] {
    [(first, 2), (second, 1)].map(|((id, action), priority)| {
        Promotion::builder(id, action)
            .priority(priority)
            .build()
            .unwrap()
    })
}

fn priced_with(cart: &Cart, promotions: &[Promotion], config: &PricingConfig) -> PricedCart {
    let tax = FlatRateTax::new(Decimal::ZERO).unwrap();
    price(cart, promotions, &PricingContext::new(t0(), config, &tax)).unwrap()
}

fn priced(cart: &Cart, promotions: &[Promotion]) -> PricedCart {
    priced_with(cart, promotions, &PricingConfig::default())
}

fn discount_of(p: &PricedCart, id: &str) -> Option<i64> {
    p.applied()
        .find(|(pid, _)| pid.as_str() == id)
        .map(|(_, d)| cents(d))
}

fn outcome<'a>(p: &'a PricedCart, id: &str) -> &'a PromotionOutcome {
    &p.promotions
        .iter()
        .find(|d| d.promotion_id.as_str() == id)
        .unwrap()
        .outcome
}

#[test]
fn a_second_buy_x_get_y_sees_which_units_the_first_made_free() {
    // 108 units at 2.50. "Buy 5 get 100 free" once takes 105 units (100 free); "buy 1 get 2"
    // has the 3 left: 2 free at 2.50 = 5.00. Before units were tracked, it valued them at
    // 20.00 / 108 each and gave 0.37.
    let cart = cart(&[("BULK", 250, 108)]);
    let promotions = stacked(
        ("big", Action::buy_x_get_y(5, 100).at_most_times(1)),
        ("small", Action::buy_x_get_y(1, 2)),
    );
    let p = priced(&cart, &promotions);
    assert_eq!(discount_of(&p, "big"), Some(25_000));
    assert_eq!(discount_of(&p, "small"), Some(500));
    assert_eq!(cents(p.totals.total), 108 * 250 - 25_000 - 500);
}

#[test]
fn a_second_buy_x_get_y_over_two_lines_finds_the_units_left() {
    // Two lines of 540 at 2.50. "Buy 50 get 1000" once frees A's 540 and 460 of B, and buys 50
    // more of B: 30 units of B are untouched, so "buy 10 get 20" frees 20 = 50.00. Before, it
    // answered NothingToDiscount.
    let cart = cart(&[("A", 250, 540), ("B", 250, 540)]);
    let promotions = stacked(
        ("big", Action::buy_x_get_y(50, 1_000).at_most_times(1)),
        ("small", Action::buy_x_get_y(10, 20)),
    );
    let p = priced(&cart, &promotions);
    assert_eq!(discount_of(&p, "big"), Some(250_000));
    assert_eq!(discount_of(&p, "small"), Some(5_000));
}

#[test]
fn a_unit_used_by_one_buy_x_get_y_is_not_used_by_another() {
    // 4 units: "buy 1 get 1" takes all four (2 free); a second "buy 1 get 1" has none left.
    let cart = cart(&[("A", 1_000, 4)]);
    let promotions = stacked(
        ("first", Action::buy_x_get_y(1, 1)),
        ("second", Action::buy_x_get_y(1, 1)),
    );
    let p = priced(&cart, &promotions);
    assert_eq!(discount_of(&p, "first"), Some(2_000));
    assert_eq!(
        outcome(&p, "second"),
        &PromotionOutcome::NotApplied(NotApplied::NotEnoughItems)
    );
}

#[test]
fn max_quantity_discounts_the_cheapest_units_first() {
    let cart = cart(&[("A", 1_000, 3), ("B", 500, 2)]);
    let pct = |n| {
        Promotion::builder("pct", Action::percent_off(20).at_most(n))
            .build()
            .unwrap()
    };
    // 20 % of B's two units (the cheapest): 2.00.
    assert_eq!(discount_of(&priced(&cart, &[pct(2)]), "pct"), Some(200));
    // Three units: B's two and one of A: 2.00 + 2.00.
    let p = priced(&cart, &[pct(3)]);
    assert_eq!(discount_of(&p, "pct"), Some(400));
    assert_eq!(
        p.lines
            .iter()
            .map(|l| cents(l.discount))
            .collect::<Vec<_>>(),
        [200, 200]
    );
    // More than the cart holds: every unit.
    assert_eq!(discount_of(&priced(&cart, &[pct(50)]), "pct"), Some(800));

    let per_unit = Promotion::builder("three-off", Action::fixed_off_per_unit(eur(300)).at_most(1))
        .build()
        .unwrap();
    assert_eq!(
        discount_of(&priced(&cart, &[per_unit]), "three-off"),
        Some(300)
    );
    let price_point = Promotion::builder("at-4", Action::fixed_price(eur(400)).at_most(2))
        .build()
        .unwrap();
    // B's two units at 4.00 instead of 5.00.
    assert_eq!(
        discount_of(&priced(&cart, &[price_point]), "at-4"),
        Some(200)
    );
}

#[test]
fn max_quantity_skips_units_an_earlier_promotion_made_free() {
    // "Buy 1 get 1" frees B (the cheapest) and buys one A; 20 % off one unit then takes a unit
    // of A (B is worth nothing now): 5.00 + 2.00.
    let cart = cart(&[("A", 1_000, 2), ("B", 500, 1)]);
    let promotions = stacked(
        ("bogo", Action::buy_x_get_y(1, 1).at_most_times(1)),
        ("one-unit", Action::percent_off(20).at_most(1)),
    );
    let p = priced(&cart, &promotions);
    assert_eq!(discount_of(&p, "bogo"), Some(500));
    assert_eq!(discount_of(&p, "one-unit"), Some(200));
}

#[test]
fn a_percentage_after_a_buy_x_get_y_takes_nothing_from_the_free_units() {
    // Buy 2 get 1 on 3 units at 9.00: one free. 10 % off everything then takes 10 % of what is
    // left, 18.00: 1.80; the free unit stays free (the line never goes below zero).
    let cart = cart(&[("A", 900, 3)]);
    let promotions = stacked(
        ("3for2", Action::buy_x_get_y(2, 1)),
        ("ten", Action::percent_off(10)),
    );
    let p = priced(&cart, &promotions);
    assert_eq!(discount_of(&p, "3for2"), Some(900));
    assert_eq!(discount_of(&p, "ten"), Some(180));
    assert_eq!(cents(p.totals.total), 1_620);
}

#[test]
fn a_line_quantity_condition_looks_at_each_line_alone() {
    let per_line = |n| {
        Promotion::builder("bulk-line", Action::percent_off(10).on(ItemFilter::All))
            .when(Condition::LineQuantity {
                quantity: n,
                items: ItemFilter::All,
            })
            .build()
            .unwrap()
    };
    let two_and_two = cart(&[("A", 1_000, 2), ("B", 1_000, 2)]);
    // Four units in all, but no line holds three.
    let p = priced(&two_and_two, &[per_line(3)]);
    assert!(matches!(
        outcome(&p, "bulk-line"),
        PromotionOutcome::NotApplied(NotApplied::ConditionFailed { detail })
            if detail == "line_quantity 3: the largest matching line holds 2"
    ));
    let summed = Promotion::builder("bulk-sum", Action::percent_off(10))
        .when(Condition::MinQuantity {
            quantity: 3,
            items: ItemFilter::All,
        })
        .build()
        .unwrap();
    assert_eq!(
        discount_of(&priced(&two_and_two, &[summed]), "bulk-sum"),
        Some(400)
    );
    let three = cart(&[("A", 1_000, 3), ("B", 1_000, 1)]);
    assert_eq!(
        discount_of(&priced(&three, &[per_line(3)]), "bulk-line"),
        Some(400)
    );
}

fn german(mut cart: Cart) -> Cart {
    cart.execute(
        CartCommand::SetShippingAddress(commerce_core::testkit::sample_address()),
        &Mutation::at(t0()),
    )
    .unwrap();
    cart
}

fn taxed(cart: &Cart, promotions: &[Promotion], config: &PricingConfig) -> PricedCart {
    let tax = FlatRateTax::new(Decimal::new(19, 2))
        .unwrap()
        .with_rate(CountryCode::new("DE").unwrap(), Decimal::new(19, 2))
        .unwrap();
    price(cart, promotions, &PricingContext::new(t0(), config, &tax)).unwrap()
}

fn tax_rounding(tax: TaxRounding) -> PricingConfig {
    PricingConfig {
        rounding: RoundingPolicy {
            tax,
            ..RoundingPolicy::default()
        },
        ..PricingConfig::default()
    }
}

#[test]
fn unit_level_tax_rounds_each_unit() {
    // 3 × 1.08 at 19 %: per line 3.24 × 0.19 = 0.6156 → 0.62 (3.86); per unit 0.2052 → 0.21,
    // × 3 = 0.63 (3.87).
    let cart = german(cart(&[("A", 108, 3)]));
    let line = taxed(&cart, &[], &tax_rounding(TaxRounding::PerLine));
    assert_eq!(
        (cents(line.totals.tax), cents(line.totals.total)),
        (62, 386)
    );
    let unit = taxed(&cart, &[], &tax_rounding(TaxRounding::PerUnit));
    assert_eq!(
        (cents(unit.totals.tax), cents(unit.totals.total)),
        (63, 387)
    );
}

#[test]
fn unit_level_tax_shares_a_discounted_line_over_its_units() {
    // 3 × 3.34 = 10.02, 0.02 off: 10.00 is 3.34 + 3.33 + 3.33; each unit's tax 0.6346 / 0.6327
    // → 0.63: 1.89, where the line's 10.00 × 0.19 gives 1.90.
    let cart = german(cart(&[("A", 334, 3)]));
    let off = [
        Promotion::builder("two-cents", Action::fixed_off_order(eur(2)))
            .build()
            .unwrap(),
    ];
    let unit = taxed(&cart, &off, &tax_rounding(TaxRounding::PerUnit));
    assert_eq!(cents(unit.lines[0].total), 1_000);
    assert_eq!(cents(unit.lines[0].tax), 189);
    let line = taxed(&cart, &off, &tax_rounding(TaxRounding::PerLine));
    assert_eq!(cents(line.lines[0].tax), 190);
}

#[test]
fn unit_level_tax_keeps_free_units_at_zero() {
    // Buy 1 get 1 on 2 × 1.08: one unit is free, the other carries 0.2052 → 0.21.
    let cart = german(cart(&[("A", 108, 2)]));
    let bogo = [Promotion::builder("bogo", Action::buy_x_get_y(1, 1))
        .build()
        .unwrap()];
    let unit = taxed(&cart, &bogo, &tax_rounding(TaxRounding::PerUnit));
    assert_eq!(cents(unit.lines[0].tax), 21);
}

#[test]
fn receipt_totals_need_no_arithmetic() {
    let cart = german(cart(&[("A", 1_000, 1)]));
    let ten = [Promotion::builder("ten", Action::percent_off(10))
        .build()
        .unwrap()];
    // Net prices: 10.00 − 1.00 = 9.00, tax 1.71, total 10.71. Without the promotion the tax
    // would be 1.90, so the discount took 1.19 off what the shopper pays, from 11.90.
    let p = taxed(&cart, &ten, &PricingConfig::default());
    let t = &p.totals;
    assert_eq!(cents(t.total), 1_071);
    assert_eq!(cents(t.discount), 100);
    assert_eq!(cents(t.discount_incl_tax), 119);
    assert_eq!(cents(t.original_total), 1_190);
    assert_eq!(cents(t.net_subtotal), 900);
    assert_eq!(
        (cents(p.lines[0].net), cents(p.lines[0].gross)),
        (900, 1_071)
    );

    // Gross prices: 11.90 contains 1.90; 10 % off is 1.19, leaving 10.71 with 1.71 tax in it.
    let gross = german(cart_at(1_190));
    let config = PricingConfig {
        price_mode: PriceMode::TaxInclusive,
        ..PricingConfig::default()
    };
    let p = taxed(&gross, &ten, &config);
    let t = &p.totals;
    assert_eq!(cents(t.total), 1_071);
    assert_eq!(cents(t.tax), 171);
    assert_eq!(cents(t.discount_incl_tax), 119);
    assert_eq!(cents(t.original_total), 1_190);
    assert_eq!(cents(t.net_subtotal), 900);
    assert_eq!(
        (cents(p.lines[0].net), cents(p.lines[0].gross)),
        (900, 1_071)
    );
}

fn cart_at(unit: i64) -> Cart {
    cart(&[("A", unit, 1)])
}

#[test]
fn a_priced_cart_names_the_cart_and_version_it_priced() {
    let mut c = cart(&[("A", 1_000, 1)]);
    let p = priced(&c, &[]);
    assert_eq!((p.cart_id.as_str(), p.cart_version), ("c-1", 1));
    c.execute(
        CartCommand::SetQuantity {
            sku: commerce_core::Sku::new("A").unwrap(),
            quantity: 2,
        },
        &Mutation::at(t0()),
    )
    .unwrap();
    assert_eq!(priced(&c, &[]).cart_version, 2);
}

#[test]
fn a_shop_sets_its_line_quantity_limit_within_the_ceiling() {
    let mut c = cart(&[("A", 100, 5_000)]);
    let err = c
        .execute(
            CartCommand::AddItem {
                item: LineItem::new("A", eur(100)).unwrap(),
                quantity: 1,
                gift_wrap: false,
            },
            &Mutation::at(t0()),
        )
        .unwrap_err();
    assert!(matches!(
        err,
        Error::QuantityOutOfRange {
            quantity: 5_001,
            max: 5_000,
            ..
        }
    ));
    assert_eq!(err.kind(), ErrorKind::Invalid);
    assert_eq!(c.lines()[0].quantity, 5_000, "a refusal changes nothing");

    let over = CartLimits {
        quantity_per_line_max: limits::QUANTITY_PER_LINE_CEILING + 1,
        ..CartLimits::default()
    };
    let fresh = Cart::new(CartId::new("c-2").unwrap(), None, Currency::EUR, None, t0());
    assert_eq!(
        fresh.clone().with_limits(over).unwrap_err().field(),
        Some("cart.limits.quantity_per_line_max")
    );
    // The default stays 999.
    let mut default = fresh;
    assert!(
        default
            .execute(
                CartCommand::AddItem {
                    item: LineItem::new("A", eur(100)).unwrap(),
                    quantity: 1_000,
                    gift_wrap: false,
                },
                &Mutation::at(t0()),
            )
            .is_err()
    );
}

#[test]
fn an_anonymous_cart_is_given_its_owner_at_login() {
    let mut c = cart(&[("A", 100, 1)]);
    let ann = UserId::new("ann@example.com").unwrap();
    let bob = UserId::new("bob@example.com").unwrap();
    c.execute(CartCommand::AssignOwner(ann.clone()), &Mutation::at(t0()))
        .unwrap();
    assert_eq!(c.owner(), Some(&ann));
    // Again with the same owner: nothing to refuse.
    c.execute(CartCommand::AssignOwner(ann.clone()), &Mutation::at(t0()))
        .unwrap();
    let version = c.version();
    let err = c
        .execute(CartCommand::AssignOwner(bob), &Mutation::at(t0()))
        .unwrap_err();
    assert_eq!(err, Error::OwnedByAnother);
    assert_eq!(err.kind(), ErrorKind::Refused);
    assert_eq!((c.owner(), c.version()), (Some(&ann), version));
    assert_eq!(c.lines().len(), 1, "the lines came along");
}

#[test]
fn an_invalid_max_quantity_names_its_field() {
    let err = Promotion::builder("x", Action::percent_off(10).at_most(0))
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid promotion rule at action.percent_off.max_quantity: must be at least 1 (or absent)"
    );
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        /// On one line at one price, a free buy-X-get-Y occurs once per `x + y` units it can
        /// still use; a second one works on the units the first left.
        #[test]
        fn stacked_free_multi_buys_count_only_unused_units(
            units in 1u32..400,
            unit in 1i64..1_000,
            (x1, y1, max1) in (1u32..8, 1u32..120, proptest::option::of(1u32..4)),
            (x2, y2) in (1u32..6, 1u32..6),
        ) {
            let cart = cart(&[("A", unit, units)]);
            let mut first = Action::buy_x_get_y(x1, y1);
            if let Some(m) = max1 {
                first = first.at_most_times(m);
            }
            let promotions = [
                Promotion::builder("first", first).priority(2).build().unwrap(),
                Promotion::builder("second", Action::buy_x_get_y(x2, y2)).priority(1).build().unwrap(),
            ];
            let p = priced(&cart, &promotions);
            let n1 = (units / (x1 + y1)).min(max1.unwrap_or(u32::MAX));
            let left = units - n1 * (x1 + y1);
            let n2 = left / (x2 + y2);
            let expect = |n: u32, y: u32| (n > 0).then(|| i64::from(n * y) * unit);
            prop_assert_eq!(discount_of(&p, "first"), expect(n1, y1));
            prop_assert_eq!(discount_of(&p, "second"), expect(n2, y2));
        }

        /// 100 % off at most `n` units is the price of the `n` cheapest units.
        #[test]
        fn max_quantity_frees_the_cheapest_units(
            lines in proptest::collection::vec((0i64..2_000, 1u32..5), 1..6),
            n in 1u32..12,
        ) {
            let skus: Vec<String> = (0..lines.len()).map(|i| format!("S{i}")).collect();
            let spec: Vec<(&str, i64, u32)> = skus.iter().zip(&lines).map(|(s, (c, q))| (s.as_str(), *c, *q)).collect();
            let cart = cart(&spec);
            let promo = Promotion::builder("free-n", Action::percent_off(100).at_most(n)).build().unwrap();
            let p = priced(&cart, &[promo]);
            let mut prices: Vec<i64> = lines.iter().flat_map(|(c, q)| std::iter::repeat_n(*c, *q as usize)).filter(|c| *c > 0).collect();
            prices.sort_unstable();
            let expected: i64 = prices.iter().take(n as usize).sum();
            prop_assert_eq!(discount_of(&p, "free-n").unwrap_or(0), expected);
        }
    }
}
