//! Property tests of the pricing engine and the cart.

use cart_engine::*;
use commerce_core::testkit::{sample_address, sample_product, t0};
use commerce_core::{
    CartId, CategoryPath, CountryCode, Currency, Money, PriceTable, RoundingMode, Sku,
};
use proptest::prelude::*;
use rust_decimal::Decimal;

#[derive(Debug, Clone)]
pub(crate) struct LineSpec {
    sku: usize,
    cents: i64,
    qty: u32,
    brand: bool,
    category: usize,
    gift_wrap: bool,
}

const CATEGORIES: [&str; 3] = ["X/Y", "X/Z", "W"];

fn line_spec() -> impl Strategy<Value = LineSpec> {
    (
        0usize..12,
        prop_oneof![Just(0i64), Just(1i64), 0i64..20_000],
        1u32..6,
        any::<bool>(),
        0usize..3,
        any::<bool>(),
    )
        .prop_map(|(sku, cents, qty, brand, category, gift_wrap)| LineSpec {
            sku,
            cents,
            qty,
            brand,
            category,
            gift_wrap,
        })
}

#[derive(Debug, Clone)]
pub(crate) struct CartSpec {
    lines: Vec<LineSpec>,
    shipping_cents: Option<i64>,
    country: Option<&'static str>,
    codes: Vec<&'static str>,
}

fn cart_spec() -> impl Strategy<Value = CartSpec> {
    (
        proptest::collection::vec(line_spec(), 0..8),
        proptest::option::of(0i64..1_500),
        proptest::option::of(prop_oneof![Just("DE"), Just("US")]),
        proptest::sample::subsequence(vec!["SAVE", "VIP"], 0..=2),
    )
        .prop_map(|(lines, shipping_cents, country, codes)| CartSpec {
            lines,
            shipping_cents,
            country,
            codes,
        })
}

pub(crate) fn build(spec: &CartSpec, reverse: bool) -> Cart {
    let mut cart = Cart::new(
        CartId::new("prop").unwrap(),
        None,
        Currency::EUR,
        None,
        t0(),
    );
    let mut seen = std::collections::BTreeSet::new();
    let mut lines: Vec<&LineSpec> = spec.lines.iter().filter(|l| seen.insert(l.sku)).collect();
    if reverse {
        lines.reverse();
    }
    let now = Mutation::at(t0());
    for l in lines {
        let sku = format!("S{}", l.sku);
        let mut p = sample_product(&format!("p-{sku}"), &sku);
        p.prices = PriceTable::single(Money::from_minor(l.cents, Currency::EUR));
        p.brand = Some(if l.brand { "A" } else { "B" }.to_owned());
        p.category = CategoryPath::parse(CATEGORIES[l.category]).unwrap();
        let _ = cart
            .execute(
                CartCommand::AddLine {
                    product: &p,
                    quantity: l.qty,
                    gift_wrap: l.gift_wrap,
                },
                &now,
            )
            .unwrap();
    }
    if let Some(c) = spec.shipping_cents {
        let method = ShippingMethod {
            id: "std".into(),
            name: "Standard".into(),
            price: Money::from_minor(c, Currency::EUR),
        };
        let _ = cart
            .execute(CartCommand::SetShippingMethod(method), &now)
            .unwrap();
    }
    if let Some(country) = spec.country {
        let mut a = sample_address();
        a.country = CountryCode::new(country).unwrap();
        let _ = cart
            .execute(CartCommand::SetShippingAddress(a), &now)
            .unwrap();
    }
    for code in &spec.codes {
        let _ = cart
            .execute(CartCommand::ApplyCode((*code).to_owned()), &now)
            .unwrap();
    }
    cart
}

fn eur(cents: i64) -> Money {
    Money::from_minor(cents, Currency::EUR)
}

fn filter() -> impl Strategy<Value = ItemFilter> {
    prop_oneof![
        3 => Just(ItemFilter::All),
        1 => proptest::collection::btree_set((0usize..12).prop_map(|i| Sku::new(format!("S{i}")).unwrap()), 1..4).prop_map(ItemFilter::Skus),
        1 => Just(ItemFilter::Brands(["A".to_owned()].into())),
        1 => (0usize..3).prop_map(|c| ItemFilter::Categories(vec![CategoryPath::parse(CATEGORIES[c].split('/').next().unwrap()).unwrap()])),
    ]
}

fn percent() -> impl Strategy<Value = Decimal> {
    prop_oneof![
        Just(Decimal::ONE_HUNDRED),
        Just(Decimal::new(105, 1)),
        (1i64..1_000).prop_map(|p| Decimal::new(p, 1))
    ]
}

fn max_quantity() -> impl Strategy<Value = Option<u32>> {
    proptest::option::weighted(0.3, 1u32..6)
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        (percent(), filter(), max_quantity()).prop_map(|(percent, items, max_quantity)| {
            Action::PercentOff {
                percent,
                items,
                max_quantity,
            }
        }),
        (1i64..3_000, filter(), max_quantity()).prop_map(|(c, items, max_quantity)| {
            Action::FixedOffPerUnit {
                amount: eur(c),
                items,
                max_quantity,
            }
        }),
        (1i64..3_000, filter()).prop_map(|(c, items)| Action::FixedOffPerLine {
            amount: eur(c),
            items
        }),
        (1i64..10_000, filter()).prop_map(|(c, items)| Action::FixedOffOrder {
            amount: eur(c),
            items
        }),
        (0i64..5_000, filter(), max_quantity()).prop_map(|(c, items, max_quantity)| {
            Action::FixedPrice {
                unit_price: eur(c),
                items,
                max_quantity,
            }
        }),
        (
            filter(),
            1u32..3,
            filter(),
            1u32..3,
            percent(),
            proptest::option::of(1u32..3),
            any::<bool>()
        )
            .prop_map(
                |(buy, buy_quantity, get, get_quantity, percent_off, max_occurrences, cheap)| {
                    Action::BuyXGetY {
                        buy,
                        buy_quantity,
                        get,
                        get_quantity,
                        percent_off,
                        max_occurrences,
                        selection: if cheap {
                            Selection::Cheapest
                        } else {
                            Selection::MostExpensive
                        },
                    }
                }
            ),
        Just(Action::FreeShipping),
        (1i64..5_000, 1i64..2_000, filter()).prop_map(|(t, a, items)| Action::TieredOrder {
            tiers: vec![
                Tier {
                    min_subtotal: eur(t),
                    amount_off: eur(a)
                },
                Tier {
                    min_subtotal: eur(t * 2),
                    amount_off: eur(a * 2)
                }
            ],
            items,
        }),
    ]
}

fn condition() -> impl Strategy<Value = Option<Condition>> {
    let leaf = prop_oneof![
        (1i64..20_000, filter()).prop_map(|(c, items)| Condition::MinSubtotal {
            amount: eur(c),
            items
        }),
        (1u32..6, filter())
            .prop_map(|(quantity, items)| Condition::MinQuantity { quantity, items }),
        (1u32..4, filter())
            .prop_map(|(quantity, items)| Condition::LineQuantity { quantity, items }),
        filter()
            .prop_filter("not all", |f| *f != ItemFilter::All)
            .prop_map(Condition::ContainsItems),
        Just(Condition::FirstOrder),
    ];
    proptest::option::of(prop_oneof![
        3 => leaf.clone(),
        1 => proptest::collection::vec(leaf.clone(), 1..3).prop_map(Condition::All),
        1 => proptest::collection::vec(leaf, 1..3).prop_map(Condition::Any),
    ])
}

fn promotions() -> impl Strategy<Value = Vec<Promotion>> {
    proptest::collection::vec(
        (
            action(),
            condition(),
            0i32..3,
            0u8..10,
            proptest::option::of(prop_oneof![Just("SAVE"), Just("VIP"), Just("NOPE")]),
        ),
        0..7,
    )
    .prop_map(|specs| {
        specs
            .into_iter()
            .enumerate()
            .map(|(i, (action, condition, priority, kind, code))| {
                let grouped = kind < 2;
                Promotion {
                    id: PromotionId::new(format!("promo-{i}")).unwrap(),
                    name: format!("promotion {i}"),
                    code: code.map(|c| PromoCode::new(c).unwrap()),
                    priority: if grouped { 7 } else { priority },
                    exclusive: kind == 9,
                    stacking_group: grouped.then(|| "group".to_owned()),
                    condition,
                    action,
                    limits: UsageLimits::default(),
                }
            })
            .collect()
    })
}

fn config() -> impl Strategy<Value = PricingConfig> {
    (
        proptest::sample::select(RoundingMode::ALL.to_vec()),
        proptest::sample::select(vec![
            RoundingLevel::Unit,
            RoundingLevel::Line,
            RoundingLevel::Total,
        ]),
        proptest::sample::select(vec![
            TaxRounding::PerUnit,
            TaxRounding::PerLine,
            TaxRounding::PerTotal,
        ]),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(mode, level, tax, inclusive, net, fees)| PricingConfig {
            rounding: RoundingPolicy { mode, level, tax },
            price_mode: if inclusive {
                PriceMode::TaxInclusive
            } else {
                PriceMode::TaxExclusive
            },
            discount_basis: if net {
                DiscountBasis::Net
            } else {
                DiscountBasis::Gross
            },
            rules: if fees {
                CartRules {
                    gift_wrap: GiftWrapFee::PerLine(eur(150)),
                    surcharges: vec![Surcharge {
                        name: "handling".into(),
                        amount: SurchargeAmount::PercentOfOrderValue(Decimal::new(25, 1)),
                        when_order_value_below: Some(eur(5_000)),
                    }],
                    ..CartRules::default()
                }
            } else {
                CartRules::default()
            },
        })
}

fn tax() -> FlatRateTax {
    FlatRateTax::new(Decimal::new(7, 2))
        .unwrap()
        .with_rate(CountryCode::new("DE").unwrap(), Decimal::new(19, 2))
        .unwrap()
}

fn price_it(cart: &Cart, promos: &[Promotion], config: &PricingConfig) -> PricedCart {
    let tax = tax();
    price(
        cart,
        promos,
        &PricingContext {
            now: t0(),
            customer: None,
            config,
            tax: &tax,
        },
    )
    .unwrap()
}

pub(crate) fn check_invariants(
    p: &PricedCart,
    promotions: &[Promotion],
) -> Result<(), TestCaseError> {
    let checked = cart_engine::testkit::check_priced_cart_for(p, promotions);
    prop_assert!(checked.is_ok(), "{:?}", checked);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn pricing_invariants_hold(spec in cart_spec(), promos in promotions(), config in config()) {
        for p in &promos {
            prop_assert!(p.validate().is_ok(), "generated an invalid promotion: {:?}", p.validate());
        }
        let cart = build(&spec, false);
        let priced = price_it(&cart, &promos, &config);
        check_invariants(&priced, &promos)?;
        // Deterministic.
        prop_assert_eq!(&priced, &price_it(&cart, &promos, &config));
        // Line order never changes a price.
        let reversed = price_it(&build(&spec, true), &promos, &config);
        prop_assert_eq!(priced.totals, reversed.totals);
        let mut a = priced.lines.clone();
        let mut b = reversed.lines.clone();
        a.sort_by(|x, y| x.sku.cmp(&y.sku));
        b.sort_by(|x, y| x.sku.cmp(&y.sku));
        prop_assert_eq!(a, b);
        // A promotion that does not apply changes nothing.
        for (i, d) in priced.promotions.iter().enumerate() {
            if matches!(d.outcome, PromotionOutcome::NotApplied(_)) {
                let mut fewer = promos.clone();
                fewer.remove(i);
                let without = price_it(&cart, &fewer, &config);
                prop_assert_eq!(without.totals, priced.totals, "removing {} changed the totals", d.promotion_id);
                prop_assert_eq!(&without.lines, &priced.lines);
            }
        }
    }

    #[test]
    fn merge_is_idempotent(guest in cart_spec(), user in cart_spec(), strategy in proptest::sample::select(vec![MergeStrategy::SumCapped, MergeStrategy::TakeLarger, MergeStrategy::GuestReplaces])) {
        let mut g = build(&guest, false);
        let mut u = Cart::new(CartId::new("user-cart").unwrap(), Some(commerce_core::UserId::new("u").unwrap()), Currency::EUR, None, t0());
        let seed = build(&user, true);
        for l in seed.lines() {
            let mut p = sample_product(&format!("p-{}", l.sku), l.sku.as_str());
            p.prices = PriceTable::single(l.unit_price);
            let _ = u.execute(CartCommand::AddLine { product: &p, quantity: l.quantity, gift_wrap: false }, &Mutation::at(t0())).unwrap();
        }
        merge(&mut u, &mut g, strategy, t0()).unwrap();
        let once = (u.clone(), g.clone());
        merge(&mut u, &mut g, strategy, t0()).unwrap();
        prop_assert_eq!((u.clone(), g), once);
        // Every SKU of either cart is in the merged cart, within limits.
        for l in guest.lines.iter().chain(&user.lines) {
            let sku = format!("S{}", l.sku);
            prop_assert!(u.lines().iter().any(|x| x.sku.as_str() == sku));
        }
        prop_assert!(u.lines().iter().all(|l| l.quantity >= 1 && l.quantity <= limits::QUANTITY_PER_LINE_MAX));
    }
}

#[derive(Debug, Clone)]
enum Cmd {
    Add(usize, u32),
    Set(usize, u32),
    Remove(usize),
    Clear,
    Code(String),
    Uncode(String),
    Ack,
    Retired,
}

fn cmd() -> impl Strategy<Value = Cmd> {
    prop_oneof![
        4 => (0usize..6, 0u32..1_200).prop_map(|(s, q)| Cmd::Add(s, q)),
        2 => (0usize..6, 0u32..1_200).prop_map(|(s, q)| Cmd::Set(s, q)),
        1 => (0usize..6).prop_map(Cmd::Remove),
        1 => Just(Cmd::Clear),
        1 => "[ a-zA-Z0-9!]{0,8}".prop_map(Cmd::Code),
        1 => "[a-z]{0,3}".prop_map(Cmd::Uncode),
        1 => Just(Cmd::Ack),
        1 => Just(Cmd::Retired),
    ]
}

proptest! {
    /// Every command either applies (version + 1) or is refused and changes nothing; a retried
    /// request id is applied once; the limits always hold.
    #[test]
    fn commands_apply_whole_or_not_at_all(cmds in proptest::collection::vec((cmd(), any::<bool>()), 1..40)) {
        let mut cart = Cart::new(CartId::new("cmds").unwrap(), None, Currency::EUR, None, t0());
        let product = |i: usize, retired: bool| {
            let mut p = sample_product(&format!("p-{i}"), &format!("S{i}"));
            if retired {
                p.status = commerce_core::ProductStatus::Retired;
            }
            p
        };
        for (n, (c, retry)) in cmds.into_iter().enumerate() {
            let before = cart.clone();
            let products = [product(0, false), product(1, false), product(2, false), product(3, false), product(4, false), product(5, false)];
            let retired = product(0, true);
            let command = match &c {
                Cmd::Add(s, q) => CartCommand::AddLine { product: &products[*s], quantity: *q, gift_wrap: false },
                Cmd::Set(s, q) => CartCommand::SetQuantity { sku: products[*s].sku.clone(), quantity: *q },
                Cmd::Remove(s) => CartCommand::RemoveLine { sku: products[*s].sku.clone() },
                Cmd::Clear => CartCommand::Clear,
                Cmd::Code(code) => CartCommand::ApplyCode(code.clone()),
                Cmd::Uncode(code) => CartCommand::RemoveCode(code.clone()),
                Cmd::Ack => CartCommand::AcknowledgePrices,
                Cmd::Retired => CartCommand::AddLine { product: &retired, quantity: 1, gift_wrap: false },
            };
            let m = Mutation { request_id: Some(RequestId::new(format!("r-{n}")).unwrap()), ..Mutation::at(t0()) };
            match cart.execute(command.clone(), &m) {
                Ok(Outcome::Applied { version }) => {
                    prop_assert_eq!(version, before.version() + 1);
                    if retry {
                        let again = cart.clone();
                        prop_assert_eq!(cart.execute(command, &m).unwrap(), Outcome::Duplicate { version });
                        prop_assert_eq!(&cart, &again);
                    }
                }
                Ok(other) => prop_assert!(false, "unexpected {:?}", other),
                Err(_) => prop_assert_eq!(&cart, &before, "a refused command changed the cart"),
            }
            prop_assert!(cart.lines().len() <= limits::LINES_MAX);
            prop_assert!(cart.lines().iter().all(|l| (1..=limits::QUANTITY_PER_LINE_MAX).contains(&l.quantity)));
            prop_assert!(cart.codes().len() <= limits::CODES_MAX);
            let skus: std::collections::BTreeSet<_> = cart.lines().iter().map(|l| &l.sku).collect();
            prop_assert_eq!(skus.len(), cart.lines().len(), "one line per SKU");
        }
    }
}

/// A tax calculator that prices another cart each time it is asked for a rate: pricing
/// inside pricing, on one thread, while the outer call holds the thread's buffers.
#[derive(Debug)]
struct PricingTax {
    inner: Cart,
    promos: Vec<Promotion>,
    expected: PricedCart,
}

impl TaxCalculator for PricingTax {
    fn item_rate(&self, _: Option<CountryCode>, _: &LineProduct) -> Decimal {
        let config = PricingConfig::default();
        assert_eq!(price_it(&self.inner, &self.promos, &config), self.expected);
        Decimal::new(19, 2)
    }
    fn shipping_rate(&self, _: Option<CountryCode>) -> Decimal {
        Decimal::new(19, 2)
    }
}

#[test]
fn pricing_within_pricing_and_carts_of_other_sizes_price_alike() {
    let lines = |n: usize| CartSpec {
        lines: (0..n)
            .map(|i| LineSpec {
                sku: i,
                cents: 199 + 37 * i64::try_from(i).unwrap_or(0),
                qty: 1 + u32::try_from(i % 4).unwrap_or(0),
                brand: i % 2 == 0,
                category: i % 3,
                gift_wrap: i % 5 == 0,
            })
            .collect(),
        shipping_cents: Some(490),
        country: Some("DE"),
        codes: vec!["SAVE"],
    };
    let promos = load_promotions(
        r#"[{"id": "a", "name": "a", "action": {"buy_x_get_y": {"buy": "all", "buy_quantity": 1, "get": "all", "get_quantity": 1, "percent_off": "50", "max_occurrences": 4}}},
            {"id": "b", "name": "b", "action": {"fixed_off_order": {"amount": {"amount": "5.00", "currency": "EUR"}}}}]"#,
    )
    .unwrap();
    let config = PricingConfig::default();
    let (big, small) = (build(&lines(12), false), build(&lines(3), false));
    let expected_big = price_it(&big, &promos, &config);
    let expected_small = price_it(&small, &promos, &config);
    // A small cart after a big one, and the big one again, price as they did alone.
    assert_eq!(price_it(&small, &promos, &config), expected_small);
    assert_eq!(price_it(&big, &promos, &config), expected_big);
    let tax = PricingTax {
        inner: small.clone(),
        promos: promos.clone(),
        expected: expected_small,
    };
    let ctx = PricingContext::new(t0(), &config, &tax);
    let outer = price(&big, &promos, &ctx).unwrap();
    assert_eq!(outer, expected_big);
    assert_eq!(price_it(&big, &promos, &config), expected_big);
}
