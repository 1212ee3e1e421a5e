//! `price(cart, promotions, context)`: the pure, deterministic pricing function.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use commerce_core::{CountryCode, Currency, Money, RoundingMode, Sku, UserId, allocate};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::model::{Action, Condition, ItemFilter, Promotion, PromotionId, Selection};
use crate::cart::{Cart, CartLine};
use crate::limits::{AMOUNT_ABS_MAX, PROMOTIONS_MAX};
use crate::tax::TaxCalculator;
use crate::{Error, Result};

/// Whether catalog prices include tax.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PriceMode {
    /// Prices are net; tax is added on top (US, B2B).
    #[default]
    TaxExclusive,
    /// Prices are gross; tax is contained in them (EU consumer shops).
    TaxInclusive,
}

/// For tax-inclusive prices: whether a fixed discount amount (and a spend threshold) is taken
/// from the gross or the net value. With `Net`, "5.00 off" at 20 % tax takes 6.00 off the gross
/// price. Percentages give the same result either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiscountBasis {
    /// Amounts are gross (what the shopper sees). The default.
    #[default]
    Gross,
    /// Amounts are net of tax.
    Net,
}

/// Where discounts are rounded to the minor unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoundingLevel {
    /// Each unit's discount is rounded, then multiplied by the units.
    Unit,
    /// Each line's discount is rounded. The default.
    #[default]
    Line,
    /// Each promotion's total discount is rounded once and allocated exactly over its lines.
    Total,
}

/// Where tax is rounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaxRounding {
    /// Each line's (and shipping's, and each fee's) tax is rounded; the total is their sum.
    #[default]
    PerLine,
    /// The cart's exact tax is rounded once and allocated exactly over lines, shipping and fees.
    PerTotal,
}

/// The declared rounding policy: mode × level × tax rounding. Default: half-even, line level,
/// tax per line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RoundingPolicy {
    /// How to round.
    pub mode: RoundingMode,
    /// Where discounts are rounded.
    pub level: RoundingLevel,
    /// Where tax is rounded.
    pub tax: TaxRounding,
}

/// Gift wrapping charges.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GiftWrapFee {
    /// Free, or not offered.
    #[default]
    None,
    /// Charged once per gift-wrapped line.
    PerLine(Money),
    /// Charged once per order with any gift-wrapped line.
    PerOrder(Money),
}

/// How a surcharge is computed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SurchargeAmount {
    /// A fixed amount.
    Fixed(Money),
    /// A percentage of the order value (items after discounts), rounded by the policy.
    PercentOfOrderValue(Decimal),
}

/// A surcharge (a small-order fee, a handling fee).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Surcharge {
    /// Name on the receipt.
    pub name: String,
    /// Amount.
    pub amount: SurchargeAmount,
    /// Charged only while the order value is below this (a small-order fee); always if none.
    pub when_order_value_below: Option<Money>,
}

/// The merchant's cart rules and fees.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CartRules {
    /// Orders below this order value (items after discounts) cannot check out.
    pub min_order_value: Option<Money>,
    /// No line may hold more units.
    pub max_quantity_per_sku: Option<u32>,
    /// Gift wrapping.
    pub gift_wrap: GiftWrapFee,
    /// Surcharges.
    pub surcharges: Vec<Surcharge>,
}

/// Everything about pricing that a merchant configures.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PricingConfig {
    /// Rounding.
    pub rounding: RoundingPolicy,
    /// Tax-inclusive or exclusive prices.
    pub price_mode: PriceMode,
    /// Gross or net fixed discounts on tax-inclusive prices.
    pub discount_basis: DiscountBasis,
    /// Cart rules and fees.
    pub rules: CartRules,
}

/// The shopper, as promotion conditions see them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    /// Their id.
    pub id: UserId,
    /// Customer groups (`vip`, `staff`).
    pub groups: BTreeSet<String>,
    /// Orders placed before this one.
    pub orders_placed: u32,
}

/// The inputs of a pricing call besides the cart and the promotions.
#[derive(Debug, Clone, Copy)]
pub struct PricingContext<'a> {
    /// The instant promotions are evaluated at.
    pub now: DateTime<Utc>,
    /// The shopper, if logged in.
    pub customer: Option<&'a Customer>,
    /// Merchant configuration.
    pub config: &'a PricingConfig,
    /// Tax rates.
    pub tax: &'a dyn TaxCalculator,
}

/// One promotion's share of one line (or of shipping).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Adjustment {
    /// The promotion.
    pub promotion_id: PromotionId,
    /// The discount, positive.
    pub amount: Money,
}

/// A priced line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PricedLine {
    /// The SKU.
    pub sku: Sku,
    /// Units.
    pub quantity: u32,
    /// The accepted unit price.
    pub unit_price: Money,
    /// `unit_price × quantity`.
    pub subtotal: Money,
    /// Σ adjustments; `0 ≤ discount ≤ subtotal`.
    pub discount: Money,
    /// `subtotal − discount`, never below zero.
    pub total: Money,
    /// Tax on `total` (contained in it for tax-inclusive prices).
    pub tax: Money,
    /// The rate used.
    pub tax_rate: Decimal,
    /// Each promotion's share.
    pub adjustments: Vec<Adjustment>,
}

/// Priced shipping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PricedShipping {
    /// The method.
    pub method_id: String,
    /// Its price.
    pub price: Money,
    /// Discounts from shipping promotions only.
    pub discount: Money,
    /// `price − discount`.
    pub total: Money,
    /// Tax on `total`.
    pub tax: Money,
    /// Each promotion's share.
    pub adjustments: Vec<Adjustment>,
}

/// What kind of fee.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeeKind {
    /// Gift wrapping.
    GiftWrap,
    /// A surcharge.
    Surcharge,
}

/// A priced fee.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PricedFee {
    /// Kind.
    pub kind: FeeKind,
    /// Name on the receipt.
    pub name: String,
    /// Amount.
    pub amount: Money,
    /// Tax on it.
    pub tax: Money,
}

/// Cart totals.
///
/// Tax-exclusive: `total = subtotal − discount + fees + shipping + tax`.
/// Tax-inclusive: `total = subtotal − discount + fees + shipping`, and `tax` is the part of it
/// that is tax (`tax_included` is true).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartTotals {
    /// Σ line subtotals.
    pub subtotal: Money,
    /// Σ line discounts + shipping discount.
    pub discount: Money,
    /// Σ fees.
    pub fees: Money,
    /// Shipping price before its discount.
    pub shipping: Money,
    /// Σ tax.
    pub tax: Money,
    /// What the shopper pays.
    pub total: Money,
    /// Whether `tax` is contained in the other amounts.
    pub tax_included: bool,
}

/// Why a promotion did not apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum NotApplied {
    /// Its amounts are in another currency than the cart's.
    CurrencyMismatch,
    /// It needs a code the cart does not carry.
    CodeMissing,
    /// A condition failed; `detail` says which and by how much.
    ConditionFailed {
        /// Human-readable detail.
        detail: String,
    },
    /// No line matches its items.
    NoMatchingItems,
    /// Buy X get Y: not enough units for one occurrence.
    NotEnoughItems,
    /// It would discount nothing (everything it targets is already free).
    NothingToDiscount,
    /// An exclusive promotion applied instead.
    SuppressedByExclusive {
        /// The exclusive promotion that won.
        by: PromotionId,
    },
    /// Another member of its stacking group gave a larger discount.
    LostToBetterDeal {
        /// The group.
        group: String,
        /// The winner.
        winner: PromotionId,
    },
}

/// What happened to one promotion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum PromotionOutcome {
    /// It applied, for this much in total (lines and shipping).
    Applied {
        /// The discount.
        discount: Money,
    },
    /// It did not apply.
    NotApplied(NotApplied),
}

/// One promotion's diagnostic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromotionDiagnostic {
    /// The promotion.
    pub promotion_id: PromotionId,
    /// What happened.
    pub outcome: PromotionOutcome,
}

/// A broken cart rule: checkout must refuse the cart while any is present.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum Violation {
    /// The order value is below the minimum.
    BelowMinimumOrderValue {
        /// The minimum.
        minimum: Money,
        /// The order value (items after discounts).
        order_value: Money,
    },
    /// A line holds more units than allowed.
    QuantityAboveMaximum {
        /// The line.
        sku: Sku,
        /// The maximum.
        maximum: u32,
        /// The quantity.
        quantity: u32,
    },
}

/// The result of [`price`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PricedCart {
    /// The cart's currency.
    pub currency: Currency,
    /// The lines, in cart order.
    pub lines: Vec<PricedLine>,
    /// Shipping, if a method is chosen.
    pub shipping: Option<PricedShipping>,
    /// Fees.
    pub fees: Vec<PricedFee>,
    /// Totals.
    pub totals: CartTotals,
    /// One diagnostic per promotion given, in the order given.
    pub promotions: Vec<PromotionDiagnostic>,
    /// Cart-rule violations.
    pub violations: Vec<Violation>,
}

impl PricedCart {
    /// The discount each applied promotion gave, for usage claims at checkout.
    pub fn applied(&self) -> impl Iterator<Item = (&PromotionId, Money)> {
        self.promotions.iter().filter_map(|d| match d.outcome {
            PromotionOutcome::Applied { discount } => Some((&d.promotion_id, discount)),
            PromotionOutcome::NotApplied(_) => None,
        })
    }
}

// ---------------------------------------------------------------------------------------------

/// Per-line working state. Amounts are in price-mode terms (gross for tax-inclusive prices)
/// and always rounded to the minor unit.
struct Work<'c> {
    /// The cart's lines in SKU order: every tie (in allocation, in buy-X-get-Y selection) is
    /// broken by SKU, so the order lines were added in never changes a price.
    lines: Vec<&'c CartLine>,
    currency: Currency,
    mode: RoundingMode,
    /// Remaining value per line.
    remaining: Vec<Decimal>,
    /// Factor from discount-basis terms to price-mode terms: 1, or 1 + rate for net discounts
    /// on tax-inclusive prices.
    basis: Vec<Decimal>,
    shipping_remaining: Decimal,
    codes: BTreeSet<&'c str>,
}

/// One promotion's effect: rounded discounts per line index, and on shipping.
#[derive(Default, Clone)]
struct Effect {
    lines: Vec<(usize, Decimal)>,
    shipping: Decimal,
}

impl Effect {
    fn total(&self) -> Decimal {
        self.lines.iter().map(|(_, d)| *d).sum::<Decimal>() + self.shipping
    }
}

impl Work<'_> {
    fn round(&self, d: Decimal) -> Decimal {
        Money::new(d, self.currency).round(self.mode).amount()
    }

    fn matching<'f>(&'f self, filter: &'f ItemFilter) -> impl Iterator<Item = usize> + 'f {
        self.lines
            .iter()
            .enumerate()
            .filter(move |(_, l)| filter.matches(l))
            .map(|(i, _)| i)
    }

    /// Σ remaining value of matching lines, in discount-basis terms.
    fn basis_value(&self, filter: &ItemFilter) -> Decimal {
        self.matching(filter)
            .map(|i| self.remaining[i] / self.basis[i])
            .sum()
    }

    fn apply(&mut self, effect: &Effect) {
        for (i, d) in &effect.lines {
            self.remaining[*i] -= *d;
        }
        self.shipping_remaining -= effect.shipping;
    }
}

fn money(d: Decimal, c: Currency) -> Money {
    Money::new(d, c)
}

/// Prices `cart` with `promotions` in `context`: a pure, deterministic function of its inputs.
///
/// Steps, in order:
/// 1. Each line's subtotal is its accepted unit price × quantity.
/// 2. Promotions apply in stacking order (see [`Promotion`]): each sees the value earlier ones
///    left, and every discount is rounded per the policy, allocated exactly, and capped so no
///    line (and no shipping) goes below zero. Only [`Action::FreeShipping`] touches shipping.
/// 3. Fees (gift wrap, surcharges) are added; tax is computed on what remains, per line or per
///    total as the policy says.
/// 4. Cart rules are checked and reported as [`Violation`]s; a promotion that did not apply
///    says why in its [`PromotionDiagnostic`].
///
/// ```
/// use cart_engine::*;
/// use commerce_core::{CartId, Currency, testkit::{sample_product, t0}};
///
/// let mut cart = Cart::new(CartId::new("c-1")?, None, Currency::EUR, None, t0());
/// let tee = sample_product("p-1", "TEE"); // 19.99 EUR
/// let _ = cart.execute(CartCommand::AddLine { product: &tee, quantity: 3, gift_wrap: false }, &Mutation::at(t0()))?;
/// let promos = load_promotions(r#"[{"id": "p10", "name": "10 % off", "action": {"percent_off": {"percent": "10"}}}]"#)?;
/// let config = PricingConfig::default();
/// let tax = FlatRateTax::new(rust_decimal::Decimal::ZERO)?;
/// let ctx = PricingContext { now: t0(), customer: None, config: &config, tax: &tax };
/// let priced = price(&cart, &promos, &ctx)?;
/// assert_eq!(priced.totals.subtotal.to_string(), "59.97 EUR");
/// assert_eq!(priced.totals.discount.to_string(), "6.00 EUR"); // 5.997 rounded half-even
/// assert_eq!(priced.totals.total.to_string(), "53.97 EUR");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`Error::Core`] when the configuration (fees, minimums) is in another currency than the
/// cart, or an amount exceeds [`AMOUNT_ABS_MAX`]; [`Error::InvalidRule`] for more than
/// [`PROMOTIONS_MAX`] promotions.
pub fn price(
    cart: &Cart,
    promotions: &[Promotion],
    context: &PricingContext<'_>,
) -> Result<PricedCart> {
    let currency = cart.currency();
    let config = context.config;
    let policy = config.rounding;
    if promotions.len() > PROMOTIONS_MAX {
        return Err(Error::InvalidRule {
            path: String::new(),
            reason: format!("more than {PROMOTIONS_MAX} promotions"),
        });
    }
    check_config(config, currency)?;
    super::model::check_groups(promotions)?;
    let country: Option<CountryCode> = cart.shipping_address().map(|a| a.country);
    let mut canonical: Vec<&CartLine> = cart.lines().iter().collect();
    canonical.sort_by(|a, b| a.sku.cmp(&b.sku));
    let lines = canonical.as_slice();
    let inclusive = config.price_mode == PriceMode::TaxInclusive;

    let mut rates = Vec::with_capacity(lines.len());
    let mut remaining = Vec::with_capacity(lines.len());
    let mut basis = Vec::with_capacity(lines.len());
    for line in lines {
        check_amount(&line.unit_price, currency, "line.unit_price")?;
        let rate = context.tax.item_rate(country, &line.product);
        rates.push(rate);
        remaining.push(line.unit_price.amount() * Decimal::from(line.quantity));
        basis.push(
            if inclusive && config.discount_basis == DiscountBasis::Net {
                Decimal::ONE + rate
            } else {
                Decimal::ONE
            },
        );
    }
    let subtotals = remaining.clone();
    let shipping_price = match cart.shipping_method() {
        Some(m) => {
            check_amount(&m.price, currency, "shipping_method.price")?;
            m.price.amount()
        }
        None => Decimal::ZERO,
    };
    let mut work = Work {
        lines: canonical.clone(),
        currency,
        mode: policy.mode,
        remaining,
        basis,
        shipping_remaining: shipping_price,
        codes: cart.codes().iter().map(|c| c.as_str()).collect(),
    };

    let (diagnostics, effects) = run_promotions(&mut work, promotions, context, policy.level);

    // Lines.
    let mut priced_lines = Vec::with_capacity(lines.len());
    let mut line_adjustments: Vec<Vec<Adjustment>> = vec![Vec::new(); lines.len()];
    let mut shipping_adjustments = Vec::new();
    for (promo_index, effect) in &effects {
        let id = &promotions[*promo_index].id;
        for (i, d) in &effect.lines {
            if !d.is_zero() {
                line_adjustments[*i].push(Adjustment {
                    promotion_id: id.clone(),
                    amount: money(*d, currency),
                });
            }
        }
        if !effect.shipping.is_zero() {
            shipping_adjustments.push(Adjustment {
                promotion_id: id.clone(),
                amount: money(effect.shipping, currency),
            });
        }
    }
    let order_value: Decimal = work.remaining.iter().sum();

    // Fees.
    let mut fees = Vec::new();
    match &config.rules.gift_wrap {
        GiftWrapFee::None => {}
        GiftWrapFee::PerLine(fee) => {
            for line in lines.iter().filter(|l| l.gift_wrap) {
                fees.push((
                    FeeKind::GiftWrap,
                    format!("gift wrap {}", line.sku),
                    fee.amount(),
                ));
            }
        }
        GiftWrapFee::PerOrder(fee) => {
            if lines.iter().any(|l| l.gift_wrap) {
                fees.push((FeeKind::GiftWrap, "gift wrap".to_owned(), fee.amount()));
            }
        }
    }
    for s in &config.rules.surcharges {
        let applies = s
            .when_order_value_below
            .is_none_or(|below| order_value < below.amount());
        if applies {
            let amount = match &s.amount {
                SurchargeAmount::Fixed(m) => m.amount(),
                SurchargeAmount::PercentOfOrderValue(p) => {
                    work.round(order_value * *p / Decimal::ONE_HUNDRED)
                }
            };
            fees.push((FeeKind::Surcharge, s.name.clone(), amount));
        }
    }

    // Tax: one exact figure per taxable piece (lines, shipping, fees), rounded per the policy.
    let shipping_rate = context.tax.shipping_rate(country);
    let exact_tax = |amount: Decimal, rate: Decimal| {
        if inclusive {
            amount * rate / (Decimal::ONE + rate)
        } else {
            amount * rate
        }
    };
    let mut exact: Vec<Decimal> = work
        .remaining
        .iter()
        .zip(&rates)
        .map(|(a, r)| exact_tax(*a, *r))
        .collect();
    exact.push(exact_tax(work.shipping_remaining, shipping_rate));
    exact.extend(fees.iter().map(|f| exact_tax(f.2, shipping_rate)));
    let taxes: Vec<Decimal> = match policy.tax {
        TaxRounding::PerLine => exact.iter().map(|t| work.round(*t)).collect(),
        TaxRounding::PerTotal => {
            let total = money(work.round(exact.iter().sum()), currency);
            allocate(&total, &exact)?
                .iter()
                .map(Money::amount)
                .collect()
        }
    };

    for line in cart.lines() {
        // Index of this line in SKU order (SKUs are unique within a cart).
        let i = lines.partition_point(|l| l.sku < line.sku);
        let subtotal = subtotals[i];
        let total = work.remaining[i];
        priced_lines.push(PricedLine {
            sku: line.sku.clone(),
            quantity: line.quantity,
            unit_price: line.unit_price,
            subtotal: money(subtotal, currency),
            discount: money(subtotal - total, currency),
            total: money(total, currency),
            tax: money(taxes[i], currency),
            tax_rate: rates[i],
            adjustments: std::mem::take(&mut line_adjustments[i]),
        });
    }
    let shipping_tax = taxes[lines.len()];
    let shipping = cart.shipping_method().map(|m| PricedShipping {
        method_id: m.id.clone(),
        price: m.price,
        discount: money(shipping_price - work.shipping_remaining, currency),
        total: money(work.shipping_remaining, currency),
        tax: money(shipping_tax, currency),
        adjustments: shipping_adjustments,
    });
    let priced_fees: Vec<PricedFee> = fees
        .into_iter()
        .zip(&taxes[lines.len() + 1..])
        .map(|((kind, name, amount), tax)| PricedFee {
            kind,
            name,
            amount: money(amount, currency),
            tax: money(*tax, currency),
        })
        .collect();

    let subtotal: Decimal = subtotals.iter().sum();
    let discount = subtotal - order_value + (shipping_price - work.shipping_remaining);
    let fee_total: Decimal = priced_fees.iter().map(|f| f.amount.amount()).sum();
    let tax_total: Decimal = taxes.iter().sum();
    let mut total = subtotal - discount + fee_total + shipping_price;
    if !inclusive {
        total += tax_total;
    }
    let totals = CartTotals {
        subtotal: money(subtotal, currency),
        discount: money(discount, currency),
        fees: money(fee_total, currency),
        shipping: money(shipping_price, currency),
        tax: money(tax_total, currency),
        total: money(total, currency),
        tax_included: inclusive,
    };

    let mut violations = Vec::new();
    if let Some(min) = &config.rules.min_order_value
        && order_value < min.amount()
    {
        violations.push(Violation::BelowMinimumOrderValue {
            minimum: *min,
            order_value: money(order_value, currency),
        });
    }
    if let Some(max) = config.rules.max_quantity_per_sku {
        for line in lines.iter().filter(|l| l.quantity > max) {
            violations.push(Violation::QuantityAboveMaximum {
                sku: line.sku.clone(),
                maximum: max,
                quantity: line.quantity,
            });
        }
    }

    debug_assert!(
        work.remaining
            .iter()
            .all(|r| !r.is_sign_negative() || r.is_zero())
    );
    Ok(PricedCart {
        currency,
        lines: priced_lines,
        shipping,
        fees: priced_fees,
        totals,
        promotions: diagnostics,
        violations,
    })
}

fn check_amount(m: &Money, currency: Currency, field: &'static str) -> Result<()> {
    if m.currency() != currency {
        return Err(Error::CurrencyMismatch {
            cart: currency,
            other: m.currency(),
        });
    }
    if m.is_negative() || !m.is_rounded() || m.amount() > Decimal::from(AMOUNT_ABS_MAX) {
        return Err(commerce_core::Error::Invalid {
            field,
            reason: "negative, not in minor units, or too large".into(),
        }
        .into());
    }
    Ok(())
}

fn check_config(config: &PricingConfig, currency: Currency) -> Result<()> {
    let rules = &config.rules;
    if let Some(m) = &rules.min_order_value {
        check_amount(m, currency, "rules.min_order_value")?;
    }
    match &rules.gift_wrap {
        GiftWrapFee::PerLine(m) | GiftWrapFee::PerOrder(m) => {
            check_amount(m, currency, "rules.gift_wrap")?
        }
        GiftWrapFee::None => {}
    }
    for s in &rules.surcharges {
        match &s.amount {
            SurchargeAmount::Fixed(m) => check_amount(m, currency, "rules.surcharges.amount")?,
            SurchargeAmount::PercentOfOrderValue(p) => {
                if *p < Decimal::ZERO || *p > Decimal::ONE_HUNDRED {
                    return Err(commerce_core::Error::Invalid {
                        field: "rules.surcharges.amount",
                        reason: "percent outside 0..=100".into(),
                    }
                    .into());
                }
            }
        }
        if let Some(m) = &s.when_order_value_below {
            check_amount(m, currency, "rules.surcharges.when_order_value_below")?;
        }
    }
    Ok(())
}

type Outcome = std::result::Result<Effect, NotApplied>;

/// Applies the promotions in stacking order; returns one diagnostic per promotion (in the order
/// given) and the effects applied, in application order.
fn run_promotions(
    work: &mut Work<'_>,
    promotions: &[Promotion],
    ctx: &PricingContext<'_>,
    level: RoundingLevel,
) -> (Vec<PromotionDiagnostic>, Vec<(usize, Effect)>) {
    let mut outcomes: Vec<Option<PromotionOutcome>> = vec![None; promotions.len()];
    let mut effects = Vec::new();
    let currency = work.currency;

    let mut order: Vec<usize> = Vec::with_capacity(promotions.len());
    for (i, p) in promotions.iter().enumerate() {
        if p.currency().is_some_and(|c| c != currency) {
            outcomes[i] = Some(PromotionOutcome::NotApplied(NotApplied::CurrencyMismatch));
        } else {
            order.push(i);
        }
    }
    // Priority first; then a stacking group sorts by its name and a lone promotion by its id, so
    // a group's place never depends on which of its members exist.
    fn key(p: &Promotion) -> &str {
        p.stacking_group.as_deref().unwrap_or(p.id.as_str())
    }
    order.sort_by(|a, b| {
        let (pa, pb) = (&promotions[*a], &promotions[*b]);
        pb.priority
            .cmp(&pa.priority)
            .then_with(|| key(pa).cmp(key(pb)))
            .then_with(|| pa.id.cmp(&pb.id))
    });

    // Exclusive promotions: the best one that applies is the only promotion on the cart.
    let mut best_exclusive: Option<(usize, Effect)> = None;
    for &i in order.iter().filter(|i| promotions[**i].exclusive) {
        match evaluate(&promotions[i], work, ctx, level) {
            Ok(effect) => {
                let better = best_exclusive
                    .as_ref()
                    .is_none_or(|(_, best)| effect.total() > best.total());
                if better {
                    best_exclusive = Some((i, effect));
                }
            }
            Err(reason) => outcomes[i] = Some(PromotionOutcome::NotApplied(reason)),
        }
    }
    if let Some((winner, effect)) = best_exclusive {
        work.apply(&effect);
        outcomes[winner] = Some(PromotionOutcome::Applied {
            discount: money(effect.total(), currency),
        });
        effects.push((winner, effect));
        for &i in &order {
            if outcomes[i].is_none() {
                outcomes[i] = Some(PromotionOutcome::NotApplied(
                    NotApplied::SuppressedByExclusive {
                        by: promotions[winner].id.clone(),
                    },
                ));
            }
        }
    } else {
        let mut groups_done: BTreeSet<&str> = BTreeSet::new();
        for &i in order.iter().filter(|i| !promotions[**i].exclusive) {
            let p = &promotions[i];
            match &p.stacking_group {
                None => match evaluate(p, work, ctx, level) {
                    Ok(effect) => {
                        work.apply(&effect);
                        outcomes[i] = Some(PromotionOutcome::Applied {
                            discount: money(effect.total(), currency),
                        });
                        effects.push((i, effect));
                    }
                    Err(reason) => outcomes[i] = Some(PromotionOutcome::NotApplied(reason)),
                },
                Some(group) => {
                    if !groups_done.insert(group.as_str()) {
                        continue;
                    }
                    let mut best: Option<(usize, Effect)> = None;
                    let members = order.iter().copied().filter(|j| {
                        !promotions[*j].exclusive
                            && promotions[*j].stacking_group.as_deref() == Some(group)
                    });
                    for j in members {
                        match evaluate(&promotions[j], work, ctx, level) {
                            Ok(effect) => {
                                if best
                                    .as_ref()
                                    .is_none_or(|(_, b)| effect.total() > b.total())
                                {
                                    best = Some((j, effect));
                                }
                            }
                            Err(reason) => outcomes[j] = Some(PromotionOutcome::NotApplied(reason)),
                        }
                    }
                    if let Some((winner, effect)) = best {
                        work.apply(&effect);
                        outcomes[winner] = Some(PromotionOutcome::Applied {
                            discount: money(effect.total(), currency),
                        });
                        effects.push((winner, effect));
                        for &j in &order {
                            if promotions[j].stacking_group.as_deref() == Some(group)
                                && outcomes[j].is_none()
                            {
                                outcomes[j] = Some(PromotionOutcome::NotApplied(
                                    NotApplied::LostToBetterDeal {
                                        group: group.clone(),
                                        winner: promotions[winner].id.clone(),
                                    },
                                ));
                            }
                        }
                    }
                }
            }
        }
    }

    let diagnostics = promotions
        .iter()
        .zip(outcomes)
        .map(|(p, o)| PromotionDiagnostic {
            promotion_id: p.id.clone(),
            outcome: o.unwrap_or(PromotionOutcome::NotApplied(NotApplied::NothingToDiscount)),
        })
        .collect();
    (diagnostics, effects)
}

/// Evaluates one promotion on the current state without changing it.
fn evaluate(
    p: &Promotion,
    work: &Work<'_>,
    ctx: &PricingContext<'_>,
    level: RoundingLevel,
) -> Outcome {
    if let Some(code) = &p.code
        && !work.codes.contains(code.as_str())
    {
        return Err(NotApplied::CodeMissing);
    }
    if let Some(condition) = &p.condition {
        check_condition(condition, work, ctx)
            .map_err(|detail| NotApplied::ConditionFailed { detail })?;
    }
    let effect = compute(&p.action, work, level)?;
    if effect.total().is_zero() {
        return Err(NotApplied::NothingToDiscount);
    }
    Ok(effect)
}

fn check_condition(
    c: &Condition,
    work: &Work<'_>,
    ctx: &PricingContext<'_>,
) -> std::result::Result<(), String> {
    match c {
        Condition::All(cs) => cs.iter().try_for_each(|c| check_condition(c, work, ctx)),
        Condition::Any(cs) => {
            let mut failures = Vec::new();
            for c in cs {
                match check_condition(c, work, ctx) {
                    Ok(()) => return Ok(()),
                    Err(e) => failures.push(e),
                }
            }
            Err(format!("none of: {}", failures.join("; ")))
        }
        Condition::MinSubtotal { amount, items } => {
            let value = work.basis_value(items);
            if value >= amount.amount() {
                Ok(())
            } else {
                Err(format!(
                    "min_subtotal {amount}: matching lines hold {}",
                    money(value, work.currency).round(work.mode)
                ))
            }
        }
        Condition::MinQuantity { quantity, items } => {
            let units: u64 = work
                .matching(items)
                .map(|i| u64::from(work.lines[i].quantity))
                .sum();
            if units >= u64::from(*quantity) {
                Ok(())
            } else {
                Err(format!(
                    "min_quantity {quantity}: matching lines hold {units}"
                ))
            }
        }
        Condition::ContainsItems(items) => {
            if work.matching(items).next().is_some() {
                Ok(())
            } else {
                Err("contains_items: no matching line".into())
            }
        }
        Condition::CustomerGroup(groups) => match ctx.customer {
            Some(c) if c.groups.iter().any(|g| groups.contains(g)) => Ok(()),
            Some(_) => Err("customer_group: the customer is in none of the groups".into()),
            None => Err("customer_group: no customer".into()),
        },
        Condition::DateWindow { starts_at, ends_at } => {
            if starts_at.is_some_and(|s| ctx.now < s) {
                Err("date_window: not started".into())
            } else if ends_at.is_some_and(|e| ctx.now >= e) {
                Err("date_window: ended".into())
            } else {
                Ok(())
            }
        }
        Condition::FirstOrder => match ctx.customer {
            Some(c) if c.orders_placed > 0 => {
                Err(format!("first_order: {} orders placed", c.orders_placed))
            }
            _ => Ok(()),
        },
    }
}

/// A discount per unit on `units` units of line `index`, before rounding.
struct Raw {
    index: usize,
    per_unit: Decimal,
    units: u32,
}

/// Rounds proportional discounts at the policy's level and caps them at each line's remaining
/// value.
fn finish(raw: Vec<Raw>, work: &Work<'_>, level: RoundingLevel) -> Effect {
    let mut lines: Vec<(usize, Decimal)> = match level {
        RoundingLevel::Unit => raw
            .iter()
            .map(|r| (r.index, work.round(r.per_unit) * Decimal::from(r.units)))
            .collect(),
        RoundingLevel::Line => raw
            .iter()
            .map(|r| (r.index, work.round(r.per_unit * Decimal::from(r.units))))
            .collect(),
        RoundingLevel::Total => {
            let exact: Vec<Decimal> = raw
                .iter()
                .map(|r| r.per_unit * Decimal::from(r.units))
                .collect();
            let total = money(work.round(exact.iter().sum()), work.currency);
            match allocate(&total, &exact) {
                Ok(parts) => raw
                    .iter()
                    .zip(parts)
                    .map(|(r, p)| (r.index, p.amount()))
                    .collect(),
                Err(_) => Vec::new(),
            }
        }
    };
    for (i, d) in &mut lines {
        *d = (*d).max(Decimal::ZERO).min(work.remaining[*i]);
    }
    lines.retain(|(_, d)| !d.is_zero());
    Effect {
        lines,
        shipping: Decimal::ZERO,
    }
}

/// Spreads a rounded amount (in discount-basis terms) over matching lines in proportion to
/// their remaining value, exactly, capped at what remains.
fn spread(amount: Decimal, items: &ItemFilter, work: &Work<'_>) -> Outcome {
    let indices: Vec<usize> = work.matching(items).collect();
    if indices.is_empty() {
        return Err(NotApplied::NoMatchingItems);
    }
    let weights: Vec<Decimal> = indices
        .iter()
        .map(|i| work.remaining[*i] / work.basis[*i])
        .collect();
    let available: Decimal = weights.iter().sum();
    if available.is_zero() {
        return Err(NotApplied::NothingToDiscount);
    }
    let capped = money(amount.min(work.round(available)), work.currency);
    let parts = allocate(&capped, &weights).map_err(|_| NotApplied::NothingToDiscount)?;
    let lines = indices
        .iter()
        .zip(parts)
        .map(|(i, part)| {
            let gross = if work.basis[*i] == Decimal::ONE {
                part.amount()
            } else {
                work.round(part.amount() * work.basis[*i])
            };
            (*i, gross.min(work.remaining[*i]))
        })
        .filter(|(_, d)| !d.is_zero())
        .collect();
    Ok(Effect {
        lines,
        shipping: Decimal::ZERO,
    })
}

fn unit_value(work: &Work<'_>, i: usize) -> Decimal {
    work.remaining[i] / Decimal::from(work.lines[i].quantity)
}

fn compute(action: &Action, work: &Work<'_>, level: RoundingLevel) -> Outcome {
    let none_match = |items: &ItemFilter| work.matching(items).next().is_none();
    match action {
        Action::PercentOff { percent, items } => {
            if none_match(items) {
                return Err(NotApplied::NoMatchingItems);
            }
            let factor = *percent / Decimal::ONE_HUNDRED;
            let raw = work
                .matching(items)
                .map(|i| Raw {
                    index: i,
                    per_unit: unit_value(work, i) * factor,
                    units: work.lines[i].quantity,
                })
                .collect();
            Ok(finish(raw, work, level))
        }
        Action::FixedOffPerUnit { amount, items } => {
            if none_match(items) {
                return Err(NotApplied::NoMatchingItems);
            }
            let raw = work
                .matching(items)
                .map(|i| Raw {
                    index: i,
                    per_unit: (amount.amount() * work.basis[i]).min(unit_value(work, i)),
                    units: work.lines[i].quantity,
                })
                .collect();
            Ok(finish(raw, work, level))
        }
        Action::FixedOffPerLine { amount, items } => {
            if none_match(items) {
                return Err(NotApplied::NoMatchingItems);
            }
            let raw = work
                .matching(items)
                .map(|i| Raw {
                    index: i,
                    per_unit: amount.amount() * work.basis[i],
                    units: 1,
                })
                .collect();
            Ok(finish(raw, work, level))
        }
        Action::FixedOffOrder { amount, items } => spread(amount.amount(), items, work),
        Action::TieredOrder { tiers, items } => {
            if none_match(items) {
                return Err(NotApplied::NoMatchingItems);
            }
            let value = work.basis_value(items);
            match tiers
                .iter()
                .rev()
                .find(|t| value >= t.min_subtotal.amount())
            {
                Some(tier) => spread(tier.amount_off.amount(), items, work),
                None => Err(NotApplied::ConditionFailed {
                    detail: format!(
                        "tiered_order: matching lines hold {}, the first tier needs {}",
                        money(value, work.currency).round(work.mode),
                        tiers[0].min_subtotal
                    ),
                }),
            }
        }
        Action::FixedPrice { unit_price, items } => {
            if none_match(items) {
                return Err(NotApplied::NoMatchingItems);
            }
            let raw = work
                .matching(items)
                .map(|i| Raw {
                    index: i,
                    per_unit: (unit_value(work, i) - unit_price.amount() * work.basis[i])
                        .max(Decimal::ZERO),
                    units: work.lines[i].quantity,
                })
                .collect();
            Ok(finish(raw, work, level))
        }
        Action::BuyXGetY {
            buy,
            buy_quantity,
            get,
            get_quantity,
            percent_off,
            max_occurrences,
            selection,
        } => buy_x_get_y(
            work,
            level,
            (buy, *buy_quantity),
            (get, *get_quantity),
            *percent_off,
            *max_occurrences,
            *selection,
        ),
        Action::FreeShipping => {
            if work.shipping_remaining.is_zero() {
                Err(NotApplied::NothingToDiscount)
            } else {
                Ok(Effect {
                    lines: Vec::new(),
                    shipping: work.shipping_remaining,
                })
            }
        }
    }
}

/// Buy X get Y, unit by unit. Each occurrence takes `get_quantity` discountable units in the
/// selection order, then `buy_quantity` qualifying units from the rest (starting from the
/// opposite end of the price order, so the cheap units are the ones discounted under
/// `Cheapest`); it stops when either runs out or at `max_occurrences`. Bought and discounted
/// units never overlap, so "buy 2 get 2" on 3 units gives nothing and on 4 units frees 2.
fn buy_x_get_y(
    work: &Work<'_>,
    level: RoundingLevel,
    (buy, buy_quantity): (&ItemFilter, u32),
    (get, get_quantity): (&ItemFilter, u32),
    percent_off: Decimal,
    max_occurrences: Option<u32>,
    selection: Selection,
) -> Outcome {
    // Lines that can take part, ordered by unit value, cheapest first (ties by line order).
    let mut candidates: Vec<(usize, Decimal)> = work
        .lines
        .iter()
        .enumerate()
        .filter(|(_, l)| buy.matches(l) || get.matches(l))
        .map(|(i, _)| (i, unit_value(work, i)))
        .collect();
    if candidates.is_empty() {
        return Err(NotApplied::NoMatchingItems);
    }
    candidates.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
    if selection == Selection::MostExpensive {
        candidates.reverse();
    }
    // Units left per candidate line.
    let mut left: Vec<u32> = candidates
        .iter()
        .map(|(i, _)| work.lines[*i].quantity)
        .collect();
    let mut discounted: Vec<u32> = vec![0; candidates.len()];
    let mut occurrences = 0u32;
    loop {
        if max_occurrences.is_some_and(|m| occurrences >= m) {
            break;
        }
        // Take the discounted units from the front (selection order)...
        let mut take_get = Vec::new();
        let mut need = get_quantity;
        for (k, (i, _)) in candidates.iter().enumerate() {
            if need == 0 {
                break;
            }
            if get.matches(work.lines[*i]) && left[k] > 0 {
                let n = need.min(left[k]);
                take_get.push((k, n));
                need -= n;
            }
        }
        if need > 0 {
            break;
        }
        for (k, n) in &take_get {
            left[*k] -= n;
        }
        // ...and the qualifying units from the back.
        let mut take_buy = Vec::new();
        let mut need = buy_quantity;
        for (k, (i, _)) in candidates.iter().enumerate().rev() {
            if need == 0 {
                break;
            }
            if buy.matches(work.lines[*i]) && left[k] > 0 {
                let n = need.min(left[k]);
                take_buy.push((k, n));
                need -= n;
            }
        }
        if need > 0 {
            for (k, n) in &take_get {
                left[*k] += n;
            }
            break;
        }
        for (k, n) in &take_buy {
            left[*k] -= n;
        }
        for (k, n) in take_get {
            discounted[k] += n;
        }
        occurrences += 1;
    }
    if occurrences == 0 {
        return Err(NotApplied::NotEnoughItems);
    }
    let factor = percent_off / Decimal::ONE_HUNDRED;
    let mut raw: Vec<Raw> = candidates
        .iter()
        .zip(&discounted)
        .filter(|(_, n)| **n > 0)
        .map(|((i, unit), n)| Raw {
            index: *i,
            per_unit: *unit * factor,
            units: *n,
        })
        .collect();
    raw.sort_by_key(|r| r.index);
    Ok(finish(raw, work, level))
}
