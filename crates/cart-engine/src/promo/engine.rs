//! `price(cart, promotions, context)`: the pure, deterministic pricing function.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use commerce_core::{
    CountryCode, Currency, Money, RoundingMode, Sku, UserId, allocate_minor, allocate_weighted,
};
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

/// What an adjustment discounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdjustmentTarget {
    /// The line with this SKU.
    Line(Sku),
    /// Shipping.
    Shipping,
}

/// One promotion's share of one line or of shipping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Adjustment {
    /// What it discounts.
    pub target: AdjustmentTarget,
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
    /// Σ this line's adjustments; `0 ≤ discount ≤ subtotal`.
    pub discount: Money,
    /// `subtotal − discount`, never below zero.
    pub total: Money,
    /// Tax on `total` (contained in it for tax-inclusive prices).
    pub tax: Money,
    /// The rate used.
    pub tax_rate: Decimal,
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
    /// It fails validation (a negative or absurd amount, a percentage outside (0, 100]);
    /// [`crate::load_promotions`] would have refused it.
    InvalidRule,
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
    /// Every promotion's share of every line and of shipping, in the order promotions applied.
    pub adjustments: Vec<Adjustment>,
    /// One diagnostic per promotion given, in the order given.
    pub promotions: Vec<PromotionDiagnostic>,
    /// Cart-rule violations.
    pub violations: Vec<Violation>,
}

impl PricedCart {
    /// The adjustments of the line with `sku`, in the order promotions applied.
    pub fn line_adjustments<'a>(
        &'a self,
        sku: &'a Sku,
    ) -> impl Iterator<Item = &'a Adjustment> + 'a {
        self.adjustments
            .iter()
            .filter(move |a| matches!(&a.target, AdjustmentTarget::Line(s) if s == sku))
    }

    /// The discount each applied promotion gave, for usage claims at checkout.
    pub fn applied(&self) -> impl Iterator<Item = (&PromotionId, Money)> {
        self.promotions.iter().filter_map(|d| match d.outcome {
            PromotionOutcome::Applied { discount } => Some((&d.promotion_id, discount)),
            PromotionOutcome::NotApplied(_) => None,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Arithmetic. Inside the engine every amount is an integer number of minor units (`i128`) and
// every factor (a percentage, a tax rate, 1 + rate) an exact ratio; a ratio is rounded to minor
// units by the policy's mode. Decimals appear only at the edges. With amounts bounded by
// `AMOUNT_ABS_MAX` and factors by `FACTOR_SCALE_MAX` decimals, no product exceeds 10^35.

/// Most decimals a percentage keeps inside the engine (validation refuses more).
const PERCENT_SCALE_MAX: u32 = crate::limits::PERCENT_DECIMALS_MAX;
/// Most decimals a tax rate keeps inside the engine.
const RATE_SCALE_MAX: u32 = 12;

/// An exact ratio `num / den`, `den > 0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ratio {
    num: i128,
    den: i128,
}

impl Ratio {
    const ONE: Ratio = Ratio { num: 1, den: 1 };

    fn int(n: i128) -> Ratio {
        Ratio { num: n, den: 1 }
    }

    /// A decimal as a ratio, rounded half-even to at most `scale_max` decimals.
    fn of(d: Decimal, scale_max: u32) -> Ratio {
        let d = if d.scale() > scale_max {
            d.round_dp(scale_max)
        } else {
            d
        };
        Ratio {
            num: d.mantissa(),
            den: 10i128.pow(d.scale()),
        }
    }

    fn is_one(self) -> bool {
        self.num == self.den
    }

    fn to_decimal(self) -> Decimal {
        let num = Decimal::try_from_i128_with_scale(self.num, 0).unwrap_or(Decimal::MAX);
        if self.den == 1 {
            num
        } else {
            num / Decimal::try_from_i128_with_scale(self.den, 0).unwrap_or(Decimal::ONE)
        }
    }
}

/// `num / den` rounded to an integer with `mode` (`den > 0`).
fn round_div(num: i128, den: i128, mode: RoundingMode) -> i128 {
    let (q, r) = (num / den, num % den);
    if r == 0 {
        return q;
    }
    let twice = 2 * r.abs();
    let away = match mode {
        RoundingMode::Up => true,
        RoundingMode::Down => false,
        RoundingMode::HalfUp => twice >= den,
        RoundingMode::HalfDown => twice > den,
        RoundingMode::HalfEven => twice > den || (twice == den && q % 2 != 0),
    };
    if away { q + num.signum() } else { q }
}

fn money(minor: i128, c: Currency) -> Money {
    let amount =
        Decimal::try_from_i128_with_scale(minor, u32::from(c.exponent())).unwrap_or(Decimal::MAX);
    Money::new(amount, c)
}

fn minor_of(m: &Money) -> i128 {
    m.to_minor().map(i128::from).unwrap_or(0)
}

/// Per-line working state, in SKU order, in minor units of price-mode terms (gross for
/// tax-inclusive prices).
struct Work<'c> {
    /// The cart's lines in SKU order: every tie (in allocation, in buy-X-get-Y selection) is
    /// broken by SKU, so the order lines were added in never changes a price.
    lines: Vec<&'c CartLine>,
    currency: Currency,
    mode: RoundingMode,
    /// Remaining value per line.
    remaining: Vec<i128>,
    /// Price-mode units per discount-basis unit: 1, or 1 + rate for net discounts on
    /// tax-inclusive prices.
    basis: Vec<Ratio>,
    /// Every basis is 1 (the common case: integer arithmetic throughout).
    unit_basis: bool,
    shipping_remaining: i128,
    codes: BTreeSet<&'c str>,
}

/// One promotion's effect: rounded discounts per line index, and on shipping.
#[derive(Default, Clone)]
struct Effect {
    lines: Vec<(usize, i128)>,
    shipping: i128,
    total: i128,
}

impl Effect {
    fn new(lines: Vec<(usize, i128)>, shipping: i128) -> Effect {
        let total = lines.iter().fold(shipping, |acc, (_, d)| acc + *d);
        Effect {
            lines,
            shipping,
            total,
        }
    }
}

impl Work<'_> {
    fn round(&self, r: Ratio) -> i128 {
        round_div(r.num, r.den, self.mode)
    }

    fn matching<'f>(&'f self, filter: &'f ItemFilter) -> impl Iterator<Item = usize> + 'f {
        self.lines
            .iter()
            .enumerate()
            .filter(move |(_, l)| filter.matches(l))
            .map(|(i, _)| i)
    }

    /// Σ remaining value of matching lines in discount-basis terms, in minor units (exact
    /// unless net discounts divide by 1 + rate).
    fn basis_value(&self, filter: &ItemFilter) -> Decimal {
        if self.unit_basis {
            let sum: i128 = self.matching(filter).map(|i| self.remaining[i]).sum();
            Ratio::int(sum).to_decimal()
        } else {
            self.matching(filter)
                .map(|i| {
                    let b = self.basis[i];
                    Ratio {
                        num: self.remaining[i] * b.den,
                        den: b.num,
                    }
                    .to_decimal()
                })
                .sum()
        }
    }

    fn display(&self, minor_value: Decimal) -> Money {
        let minor = Ratio::of(minor_value, 0).num;
        money(minor, self.currency)
    }

    fn apply(&mut self, effect: &Effect) {
        for (i, d) in &effect.lines {
            self.remaining[*i] -= *d;
        }
        self.shipping_remaining -= effect.shipping;
    }
}

/// Rounds the sum of exact `parts` once with `mode` and allocates it over them exactly.
fn round_and_allocate(parts: &[Ratio], mode: RoundingMode) -> Vec<i128> {
    let Some(first) = parts.first() else {
        return Vec::new();
    };
    if parts.iter().all(|p| p.den == first.den) {
        let nums: Vec<i128> = parts.iter().map(|p| p.num.max(0)).collect();
        let total = round_div(nums.iter().sum(), first.den, mode);
        allocate_minor(total, &nums).unwrap_or_else(|_| vec![0; parts.len()])
    } else {
        let exact: Vec<Decimal> = parts
            .iter()
            .map(|p| p.to_decimal().max(Decimal::ZERO))
            .collect();
        let total = Ratio::of(mode.round_dp(exact.iter().sum(), 0), 0).num;
        allocate_weighted(total, &exact).unwrap_or_else(|_| vec![0; parts.len()])
    }
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
/// [`PROMOTIONS_MAX`] promotions, members of a stacking group with different priorities, or a
/// tax rate outside `0..=1`. A single promotion with impossible numbers does not fail the call:
/// it does not apply, with [`NotApplied::InvalidRule`].
pub fn price(
    cart: &Cart,
    promotions: &[Promotion],
    context: &PricingContext<'_>,
) -> Result<PricedCart> {
    let currency = cart.currency();
    let config = context.config;
    let policy = config.rounding;
    let mode = policy.mode;
    if promotions.len() > PROMOTIONS_MAX {
        return Err(Error::InvalidRule {
            path: String::new(),
            reason: format!("more than {PROMOTIONS_MAX} promotions"),
        });
    }
    check_config(config, currency)?;
    super::model::check_groups(promotions)?;
    let country: Option<CountryCode> = cart.shipping_address().map(|a| a.country);
    let inclusive = config.price_mode == PriceMode::TaxInclusive;
    let net_basis = inclusive && config.discount_basis == DiscountBasis::Net;

    // Work in SKU order; `position[k]` is where cart line k sits in that order.
    let mut by_sku: Vec<usize> = (0..cart.lines().len()).collect();
    by_sku.sort_by(|a, b| cart.lines()[*a].sku.cmp(&cart.lines()[*b].sku));
    let mut position = vec![0; by_sku.len()];
    for (k, i) in by_sku.iter().enumerate() {
        position[*i] = k;
    }
    let lines: Vec<&CartLine> = by_sku.iter().map(|i| &cart.lines()[*i]).collect();

    let mut rates = Vec::with_capacity(lines.len());
    let mut remaining = Vec::with_capacity(lines.len());
    let mut basis = Vec::with_capacity(lines.len());
    for line in &lines {
        check_amount(&line.unit_price, currency, "line.unit_price")?;
        let rate = tax_rate(context.tax.item_rate(country, &line.product))?;
        remaining.push(minor_of(&line.unit_price) * i128::from(line.quantity));
        basis.push(if net_basis {
            Ratio {
                num: rate.den + rate.num,
                den: rate.den,
            }
        } else {
            Ratio::ONE
        });
        rates.push(rate);
    }
    let subtotals = remaining.clone();
    let shipping_price = match cart.shipping_method() {
        Some(m) => {
            check_amount(&m.price, currency, "shipping_method.price")?;
            minor_of(&m.price)
        }
        None => 0,
    };
    let unit_basis = basis.iter().all(|b| b.is_one());
    let mut work = Work {
        lines: lines.clone(),
        currency,
        mode,
        remaining,
        basis,
        unit_basis,
        shipping_remaining: shipping_price,
        codes: cart.codes().iter().map(|c| c.as_str()).collect(),
    };

    let (diagnostics, effects) = run_promotions(&mut work, promotions, context, policy.level);

    let mut adjustments = Vec::with_capacity(effects.iter().map(|(_, e)| e.lines.len() + 1).sum());
    for (promo_index, effect) in &effects {
        let id = &promotions[*promo_index].id;
        for (i, d) in &effect.lines {
            adjustments.push(Adjustment {
                target: AdjustmentTarget::Line(lines[*i].sku.clone()),
                promotion_id: id.clone(),
                amount: money(*d, currency),
            });
        }
        if effect.shipping != 0 {
            adjustments.push(Adjustment {
                target: AdjustmentTarget::Shipping,
                promotion_id: id.clone(),
                amount: money(effect.shipping, currency),
            });
        }
    }
    let order_value: i128 = work.remaining.iter().sum();

    // Fees.
    let mut fees: Vec<(FeeKind, String, i128)> = Vec::new();
    match &config.rules.gift_wrap {
        GiftWrapFee::None => {}
        GiftWrapFee::PerLine(fee) => {
            // In SKU order, like everything else, so line order never changes a fee's tax.
            for line in lines.iter().filter(|l| l.gift_wrap) {
                fees.push((
                    FeeKind::GiftWrap,
                    format!("gift wrap {}", line.sku),
                    minor_of(fee),
                ));
            }
        }
        GiftWrapFee::PerOrder(fee) => {
            if cart.lines().iter().any(|l| l.gift_wrap) {
                fees.push((FeeKind::GiftWrap, "gift wrap".to_owned(), minor_of(fee)));
            }
        }
    }
    for s in &config.rules.surcharges {
        let applies = s
            .when_order_value_below
            .is_none_or(|below| order_value < minor_of(&below));
        if applies {
            let amount = match &s.amount {
                SurchargeAmount::Fixed(m) => minor_of(m),
                SurchargeAmount::PercentOfOrderValue(p) => {
                    let f = Ratio::of(*p, PERCENT_SCALE_MAX);
                    work.round(Ratio {
                        num: order_value * f.num,
                        den: f.den * 100,
                    })
                }
            };
            fees.push((FeeKind::Surcharge, s.name.clone(), amount));
        }
    }

    // Tax: one exact figure per taxable piece (lines, shipping, fees), rounded per the policy.
    let shipping_rate = tax_rate(context.tax.shipping_rate(country))?;
    let exact_tax = |amount: i128, rate: Ratio| {
        if inclusive {
            Ratio {
                num: amount * rate.num,
                den: rate.den + rate.num,
            }
        } else {
            Ratio {
                num: amount * rate.num,
                den: rate.den,
            }
        }
    };
    let mut exact: Vec<Ratio> = work
        .remaining
        .iter()
        .zip(&rates)
        .map(|(a, r)| exact_tax(*a, *r))
        .collect();
    exact.push(exact_tax(work.shipping_remaining, shipping_rate));
    exact.extend(fees.iter().map(|f| exact_tax(f.2, shipping_rate)));
    let taxes: Vec<i128> = match policy.tax {
        TaxRounding::PerLine => exact.iter().map(|t| work.round(*t)).collect(),
        TaxRounding::PerTotal => round_and_allocate(&exact, mode),
    };

    let mut priced_lines = Vec::with_capacity(lines.len());
    for (k, line) in cart.lines().iter().enumerate() {
        let i = position[k];
        let (subtotal, total) = (subtotals[i], work.remaining[i]);
        priced_lines.push(PricedLine {
            sku: line.sku.clone(),
            quantity: line.quantity,
            unit_price: line.unit_price,
            subtotal: money(subtotal, currency),
            discount: money(subtotal - total, currency),
            total: money(total, currency),
            tax: money(taxes[i], currency),
            tax_rate: rates[i].to_decimal(),
        });
    }
    let shipping = cart.shipping_method().map(|m| PricedShipping {
        method_id: m.id.clone(),
        price: m.price,
        discount: money(shipping_price - work.shipping_remaining, currency),
        total: money(work.shipping_remaining, currency),
        tax: money(taxes[lines.len()], currency),
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

    let subtotal: i128 = subtotals.iter().sum();
    let discount = subtotal - order_value + (shipping_price - work.shipping_remaining);
    let fee_total: i128 = priced_fees.iter().map(|f| minor_of(&f.amount)).sum();
    let tax_total: i128 = taxes.iter().sum();
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
        && order_value < minor_of(min)
    {
        violations.push(Violation::BelowMinimumOrderValue {
            minimum: *min,
            order_value: money(order_value, currency),
        });
    }
    if let Some(max) = config.rules.max_quantity_per_sku {
        for line in cart.lines().iter().filter(|l| l.quantity > max) {
            violations.push(Violation::QuantityAboveMaximum {
                sku: line.sku.clone(),
                maximum: max,
                quantity: line.quantity,
            });
        }
    }

    debug_assert!(work.remaining.iter().all(|r| *r >= 0));
    Ok(PricedCart {
        currency,
        lines: priced_lines,
        shipping,
        fees: priced_fees,
        totals,
        adjustments,
        promotions: diagnostics,
        violations,
    })
}

/// A tax rate from the calculator as an exact ratio, refused outside `0..=1`.
fn tax_rate(rate: Decimal) -> Result<Ratio> {
    if rate < Decimal::ZERO || rate > Decimal::ONE {
        return Err(Error::InvalidRule {
            path: "tax.rate".into(),
            reason: format!("{rate} is outside 0..=1"),
        });
    }
    Ok(Ratio::of(rate, RATE_SCALE_MAX))
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
            check_amount(m, currency, "rules.gift_wrap")?;
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
        } else if !p.numbers_in_bounds() {
            outcomes[i] = Some(PromotionOutcome::NotApplied(NotApplied::InvalidRule));
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
                    .is_none_or(|(_, best)| effect.total > best.total);
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
            discount: money(effect.total, currency),
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
                            discount: money(effect.total, currency),
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
                                if best.as_ref().is_none_or(|(_, b)| effect.total > b.total) {
                                    best = Some((j, effect));
                                }
                            }
                            Err(reason) => outcomes[j] = Some(PromotionOutcome::NotApplied(reason)),
                        }
                    }
                    if let Some((winner, effect)) = best {
                        work.apply(&effect);
                        outcomes[winner] = Some(PromotionOutcome::Applied {
                            discount: money(effect.total, currency),
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
    if effect.total == 0 {
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
            if value >= Ratio::int(minor_of(amount)).to_decimal() {
                Ok(())
            } else {
                Err(format!(
                    "min_subtotal {amount}: matching lines hold {}",
                    work.display(value)
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

/// An exact discount `line` (minor units) on `units` units of line `index`, before rounding.
struct Raw {
    index: usize,
    line: Ratio,
    units: u32,
}

/// Rounds proportional discounts at the policy's level and caps them at each line's remaining
/// value.
fn finish(raw: Vec<Raw>, work: &Work<'_>, level: RoundingLevel) -> Effect {
    let mut lines: Vec<(usize, i128)> = match level {
        RoundingLevel::Unit => raw
            .iter()
            .map(|r| {
                let units = i128::from(r.units.max(1));
                (
                    r.index,
                    round_div(r.line.num, r.line.den * units, work.mode) * units,
                )
            })
            .collect(),
        RoundingLevel::Line => raw.iter().map(|r| (r.index, work.round(r.line))).collect(),
        RoundingLevel::Total => {
            let exact: Vec<Ratio> = raw.iter().map(|r| r.line).collect();
            raw.iter()
                .zip(round_and_allocate(&exact, work.mode))
                .map(|(r, d)| (r.index, d))
                .collect()
        }
    };
    for (i, d) in &mut lines {
        *d = (*d).clamp(0, work.remaining[*i]);
    }
    lines.retain(|(_, d)| *d != 0);
    Effect::new(lines, 0)
}

/// Spreads `amount` minor units (in discount-basis terms) over matching lines in proportion to
/// their remaining value, exactly, capped at what remains.
fn spread(amount: i128, items: &ItemFilter, work: &Work<'_>) -> Outcome {
    let indices: Vec<usize> = work.matching(items).collect();
    if indices.is_empty() {
        return Err(NotApplied::NoMatchingItems);
    }
    let lines: Vec<(usize, i128)> = if work.unit_basis {
        let weights: Vec<i128> = indices.iter().map(|i| work.remaining[*i]).collect();
        let available: i128 = weights.iter().sum();
        if available == 0 {
            return Err(NotApplied::NothingToDiscount);
        }
        let parts = allocate_minor(amount.min(available), &weights)
            .map_err(|_| NotApplied::NothingToDiscount)?;
        indices
            .iter()
            .zip(parts)
            .map(|(i, part)| (*i, part.min(work.remaining[*i])))
            .collect()
    } else {
        let weights: Vec<Decimal> = indices
            .iter()
            .map(|i| {
                Ratio {
                    num: work.remaining[*i] * work.basis[*i].den,
                    den: work.basis[*i].num,
                }
                .to_decimal()
            })
            .collect();
        let available = Ratio::of(work.mode.round_dp(weights.iter().sum(), 0), 0).num;
        if available == 0 {
            return Err(NotApplied::NothingToDiscount);
        }
        let parts = allocate_weighted(amount.min(available), &weights)
            .map_err(|_| NotApplied::NothingToDiscount)?;
        indices
            .iter()
            .zip(parts)
            .map(|(i, part)| {
                let b = work.basis[*i];
                (
                    *i,
                    work.round(Ratio {
                        num: part * b.num,
                        den: b.den,
                    })
                    .min(work.remaining[*i]),
                )
            })
            .collect()
    };
    let lines = lines.into_iter().filter(|(_, d)| *d != 0).collect();
    Ok(Effect::new(lines, 0))
}

fn compute(action: &Action, work: &Work<'_>, level: RoundingLevel) -> Outcome {
    // The matching lines, found once per action.
    let matching = |items: &ItemFilter| -> std::result::Result<Vec<usize>, NotApplied> {
        let found: Vec<usize> = work.matching(items).collect();
        if found.is_empty() {
            Err(NotApplied::NoMatchingItems)
        } else {
            Ok(found)
        }
    };
    let units = |i: usize| work.lines[i].quantity;
    match action {
        Action::PercentOff { percent, items } => {
            let f = Ratio::of(*percent, PERCENT_SCALE_MAX);
            let raw = matching(items)?
                .into_iter()
                .map(|i| Raw {
                    index: i,
                    line: Ratio {
                        num: work.remaining[i] * f.num,
                        den: f.den * 100,
                    },
                    units: units(i),
                })
                .collect();
            Ok(finish(raw, work, level))
        }
        Action::FixedOffPerUnit { amount, items } => {
            let amount = minor_of(amount);
            let raw = matching(items)?
                .into_iter()
                .map(|i| {
                    let b = work.basis[i];
                    let line = Ratio {
                        num: amount * b.num * i128::from(units(i)),
                        den: b.den,
                    };
                    // Capped at what remains (compare without dividing).
                    let line = if line.num > work.remaining[i] * line.den {
                        Ratio::int(work.remaining[i])
                    } else {
                        line
                    };
                    Raw {
                        index: i,
                        line,
                        units: units(i),
                    }
                })
                .collect();
            Ok(finish(raw, work, level))
        }
        Action::FixedOffPerLine { amount, items } => {
            let amount = minor_of(amount);
            let raw = matching(items)?
                .into_iter()
                .map(|i| {
                    let b = work.basis[i];
                    Raw {
                        index: i,
                        line: Ratio {
                            num: amount * b.num,
                            den: b.den,
                        },
                        units: 1,
                    }
                })
                .collect();
            Ok(finish(raw, work, level))
        }
        Action::FixedOffOrder { amount, items } => spread(minor_of(amount), items, work),
        Action::TieredOrder { tiers, items } => {
            matching(items)?;
            let value = work.basis_value(items);
            match tiers
                .iter()
                .rev()
                .find(|t| value >= Ratio::int(minor_of(&t.min_subtotal)).to_decimal())
            {
                Some(tier) => spread(minor_of(&tier.amount_off), items, work),
                None => Err(NotApplied::ConditionFailed {
                    detail: format!(
                        "tiered_order: matching lines hold {}, the first tier needs {}",
                        work.display(value),
                        tiers[0].min_subtotal
                    ),
                }),
            }
        }
        Action::FixedPrice { unit_price, items } => {
            let price = minor_of(unit_price);
            let raw = matching(items)?
                .into_iter()
                .map(|i| {
                    let b = work.basis[i];
                    let floor = price * b.num * i128::from(units(i));
                    let num = (work.remaining[i] * b.den - floor).max(0);
                    Raw {
                        index: i,
                        line: Ratio { num, den: b.den },
                        units: units(i),
                    }
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
            Ratio::of(*percent_off, PERCENT_SCALE_MAX),
            *max_occurrences,
            *selection,
        ),
        Action::FreeShipping => {
            if work.shipping_remaining == 0 {
                Err(NotApplied::NothingToDiscount)
            } else {
                Ok(Effect::new(Vec::new(), work.shipping_remaining))
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
    percent_off: Ratio,
    max_occurrences: Option<u32>,
    selection: Selection,
) -> Outcome {
    // Lines that can take part, ordered by unit value, cheapest first (ties by SKU).
    let mut candidates: Vec<usize> = work
        .lines
        .iter()
        .enumerate()
        .filter(|(_, l)| buy.matches(l) || get.matches(l))
        .map(|(i, _)| i)
        .collect();
    if candidates.is_empty() {
        return Err(NotApplied::NoMatchingItems);
    }
    // Unit values remaining[i] / quantity[i], compared without dividing.
    candidates.sort_by(|a, b| {
        let ua = work.remaining[*a] * i128::from(work.lines[*b].quantity);
        let ub = work.remaining[*b] * i128::from(work.lines[*a].quantity);
        ua.cmp(&ub).then(a.cmp(b))
    });
    if selection == Selection::MostExpensive {
        candidates.reverse();
    }
    let mut left: Vec<u32> = candidates.iter().map(|i| work.lines[*i].quantity).collect();
    let mut discounted: Vec<u32> = vec![0; candidates.len()];
    let mut occurrences = 0u32;
    loop {
        if max_occurrences.is_some_and(|m| occurrences >= m) {
            break;
        }
        // Take the discounted units from the front (selection order), never a unit the buy
        // side needs: with overlapping filters, a unit that could be bought is discounted only
        // if enough other qualifying units remain...
        let mut buy_capable: u32 = candidates
            .iter()
            .zip(&left)
            .filter(|(i, _)| buy.matches(work.lines[**i]))
            .map(|(_, n)| *n)
            .sum();
        let mut take_get = Vec::new();
        let mut need = get_quantity;
        for (k, i) in candidates.iter().enumerate() {
            if need == 0 {
                break;
            }
            if get.matches(work.lines[*i]) && left[k] > 0 {
                let spare = if buy.matches(work.lines[*i]) {
                    left[k].min(buy_capable.saturating_sub(buy_quantity))
                } else {
                    left[k]
                };
                let n = need.min(spare);
                if n == 0 {
                    continue;
                }
                if buy.matches(work.lines[*i]) {
                    buy_capable -= n;
                }
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
        for (k, i) in candidates.iter().enumerate().rev() {
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
    let mut raw: Vec<Raw> = candidates
        .iter()
        .zip(&discounted)
        .filter(|(_, n)| **n > 0)
        .map(|(i, n)| Raw {
            index: *i,
            // n units at remaining / quantity each, times the percentage.
            line: Ratio {
                num: work.remaining[*i] * i128::from(*n) * percent_off.num,
                den: i128::from(work.lines[*i].quantity) * percent_off.den * 100,
            },
            units: *n,
        })
        .collect();
    raw.sort_by_key(|r| r.index);
    Ok(finish(raw, work, level))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_a_ratio_follows_the_mode_on_both_signs() {
        use RoundingMode::*;
        // 5/2 = 2.5, 7/2 = 3.5, 11/4 = 2.75, 9/4 = 2.25, and their negatives.
        let cases = [
            ((5, 2), [2, 3, 2, 3, 2]),
            ((7, 2), [4, 4, 3, 4, 3]),
            ((11, 4), [3, 3, 3, 3, 2]),
            ((9, 4), [2, 2, 2, 3, 2]),
            ((-5, 2), [-2, -3, -2, -3, -2]),
            ((-11, 4), [-3, -3, -3, -3, -2]),
            ((6, 3), [2, 2, 2, 2, 2]),
        ];
        for ((num, den), expected) in cases {
            for (mode, want) in [HalfEven, HalfUp, HalfDown, Up, Down]
                .into_iter()
                .zip(expected)
            {
                assert_eq!(round_div(num, den, mode), want, "{num}/{den} {mode:?}");
            }
        }
    }

    #[test]
    fn ratio_rounding_agrees_with_decimal_rounding() {
        for num in -1_000i128..1_000 {
            for den in [1i128, 3, 7, 8, 100, 1_000] {
                for mode in RoundingMode::ALL {
                    let d = Decimal::from_i128_with_scale(num, 0)
                        / Decimal::from_i128_with_scale(den, 0);
                    let want = Ratio::of(mode.round_dp(d, 0), 0).num;
                    assert_eq!(round_div(num, den, mode), want, "{num}/{den} {mode:?}");
                }
            }
        }
    }
}
