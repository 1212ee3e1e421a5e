//! `price(cart, promotions, context)`: the pure, deterministic pricing function.

use commerce_core::{CountryCode, Currency, Money, RoundingMode};
use rust_decimal::Decimal;

use super::arith::{
    PERCENT_SCALE_MAX, RATE_SCALE_MAX, Ratio, minor_at_scale, minor_of, money, pow10,
    round_and_allocate, round_div,
};
use super::context::{
    CartRules, DiscountBasis, GiftWrapFee, PriceMode, PricingConfig, PricingContext,
    SurchargeAmount, TaxRounding,
};
use super::model::{Promotion, text_le};
use super::priced::{
    CartTotals, FeeKind, PricedCart, PricedFee, PricedLine, PricedShipping, Violation,
};
use super::stacking::run_promotions;
use super::work::{Buffers, Lots, Work};
use crate::cart::{Cart, CartLine};
use crate::limits::{AMOUNT_ABS_MAX, LINES_MAX, PROMOTIONS_MAX};
use crate::{Error, Result};

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
///
/// [`Action::FreeShipping`]: super::Action::FreeShipping
/// [`PromotionDiagnostic`]: super::PromotionDiagnostic
/// [`NotApplied::InvalidRule`]: super::NotApplied::InvalidRule
pub fn price(
    cart: &Cart,
    promotions: &[Promotion],
    context: &PricingContext<'_>,
) -> Result<PricedCart> {
    let currency = cart.currency();
    let config = context.config;
    check_inputs(promotions, config, currency)?;
    if cart.lines().len() > LINES_MAX {
        // Only a cart not built through its commands (a hand-edited document) gets here.
        return Err(Error::TooManyLines { max: LINES_MAX });
    }
    let country = cart.shipping_address().map(|a| a.country);
    let mut buffers = Buffers::take();
    let (mut work, resolved) = resolve_lines(cart, context, country, &mut buffers)?;

    let (diagnostics, adjustments) = run_promotions(
        &mut work,
        promotions,
        context,
        (config.rounding.level, &resolved.cart_index),
    );
    let order_value: i128 = work.remaining.iter().sum();

    let fees = charge_fees(
        cart,
        &work,
        &config.rules,
        order_value,
        std::mem::take(&mut buffers.fees),
    );
    let tax = TaxInputs::new(&work, &resolved, &fees, context, country)?;
    let taxes = tax.compute_into(
        &work.remaining,
        Some(&work.split),
        work.shipping_remaining,
        (
            std::mem::take(&mut buffers.tax_lines),
            std::mem::take(&mut buffers.tax_fees),
        ),
    );
    // What tax would be without any discount: for the receipt's original total.
    let original_tax =
        tax.total_undiscounted(&resolved.subtotals, &work, &taxes, resolved.shipping_price);

    let lines = price_lines(cart, &resolved, &work, &taxes.lines, config.price_mode);
    let shipping = price_shipping(cart, &resolved, &work, taxes.shipping);
    let (fees, fee_buffer) = price_fees(fees, &taxes.fees, currency);
    buffers.fees = fee_buffer;
    let totals = total_up(
        &resolved,
        &work,
        order_value,
        &fees,
        (&taxes, original_tax),
        config.price_mode,
    );
    let violations = check_cart_rules(cart, &config.rules, order_value, currency);

    debug_assert!(work.remaining.iter().all(|r| *r >= 0));
    work.release(&mut buffers);
    resolved.release(&mut buffers);
    buffers.tax_lines = taxes.lines;
    buffers.tax_fees = taxes.fees;
    buffers.give_back();
    Ok(PricedCart {
        cart_id: cart.id().clone(),
        cart_version: cart.version(),
        currency,
        lines,
        shipping,
        fees,
        totals,
        adjustments,
        promotions: diagnostics,
        violations,
    })
}

/// What pricing fixes before promotions run, beside the [`Work`] they discount. Per-line
/// vectors are in SKU order, like `Work`'s.
struct Resolved {
    /// `position[k]` is where cart line k sits in SKU order.
    position: Vec<usize>,
    /// `cart_index[i]` is the cart line at SKU-order place i (the inverse of `position`).
    cart_index: Vec<usize>,
    /// Each line's tax rate.
    rates: Vec<LineRate>,
    /// Each line's subtotal, before any discount.
    subtotals: Vec<i128>,
    /// Shipping's price before its discount; 0 without a method.
    shipping_price: i128,
}

impl Resolved {
    /// Gives its vectors back to `buffers`.
    fn release(self, buffers: &mut Buffers) {
        buffers.order = self.cart_index;
        buffers.position = self.position;
        buffers.subtotals = self.subtotals;
        buffers.rates = self.rates;
    }
}

/// A line's tax rate, as the calculator gave it and as a ratio.
#[derive(Clone, Copy)]
pub(super) struct LineRate {
    decimal: Decimal,
    ratio: Ratio,
}

/// A fee before tax, in minor units.
pub(super) struct Fee {
    kind: FeeKind,
    name: String,
    amount: i128,
}

/// Rounded tax, in minor units, per taxable piece.
struct Taxes {
    /// Per line, in SKU order.
    lines: Vec<i128>,
    shipping: i128,
    /// Per fee, in the order fees were charged.
    fees: Vec<i128>,
}

impl Taxes {
    fn total(&self) -> i128 {
        self.lines.iter().sum::<i128>() + self.shipping + self.fees.iter().sum::<i128>()
    }
}

/// Refuses inputs no price can come from: too many promotions, a configuration with amounts in
/// another currency or out of bounds, a stacking group whose members disagree on priority.
fn check_inputs(
    promotions: &[Promotion],
    config: &PricingConfig,
    currency: Currency,
) -> Result<()> {
    if promotions.len() > PROMOTIONS_MAX {
        return Err(Error::InvalidRule {
            path: String::new(),
            reason: format!("more than {PROMOTIONS_MAX} promotions"),
        });
    }
    check_config(config, currency)?;
    super::model::check_groups(promotions)
}

/// Checks each line's price, looks up its tax rate and its discount basis, and prices shipping
/// before discounts: the working state promotions start from, in SKU order.
fn resolve_lines<'c>(
    cart: &'c Cart,
    context: &PricingContext<'_>,
    country: Option<CountryCode>,
    buffers: &mut Buffers,
) -> Result<(Work<'c>, Resolved)> {
    let currency = cart.currency();
    let config = context.config;
    let net_basis =
        config.price_mode == PriceMode::TaxInclusive && config.discount_basis == DiscountBasis::Net;
    let (lines, position, cart_index) = sku_order(
        cart,
        std::mem::take(&mut buffers.order),
        std::mem::take(&mut buffers.position),
        std::mem::take(&mut buffers.line_refs),
    );

    let mut rates = std::mem::take(&mut buffers.rates);
    rates.clear();
    rates.reserve(lines.len());
    let mut remaining = std::mem::take(&mut buffers.remaining);
    remaining.clear();
    remaining.reserve(lines.len());
    // Gross discounts (the default) leave every basis at 1: no per-line bases then.
    let mut basis = std::mem::take(&mut buffers.basis);
    basis.clear();
    // Lines mostly share a rate: convert and check each distinct one once.
    let mut last_rate: Option<(Decimal, Ratio)> = None;
    // The bound `checked_minor` puts on an amount, in minor units.
    let max = i128::from(AMOUNT_ABS_MAX) * pow10(u32::from(currency.exponent()));
    for line in &lines {
        let price = &line.unit_price;
        // What `checked_minor` accepts, checked inline for the usual price: the cart's
        // currency, at its scale, within bounds.
        let unit = match minor_at_scale(price) {
            Some(minor)
                if price.currency() == currency
                    && (0..=max).contains(&minor)
                    && i64::try_from(minor).is_ok() =>
            {
                minor
            }
            _ => checked_minor(price, currency, "line.unit_price")?,
        };
        let rate_decimal = context.tax.item_rate(country, &line.product);
        let rate = match last_rate {
            Some((d, r)) if d.serialize() == rate_decimal.serialize() => r,
            _ => {
                let r = tax_rate(rate_decimal)?;
                last_rate = Some((rate_decimal, r));
                r
            }
        };
        remaining.push(unit * i128::from(line.quantity));
        if net_basis {
            basis.push(Ratio {
                num: rate.den + rate.num,
                den: rate.den,
            });
        }
        rates.push(LineRate {
            decimal: rate_decimal,
            ratio: rate,
        });
    }
    let mut subtotals = std::mem::take(&mut buffers.subtotals);
    subtotals.clear();
    subtotals.extend_from_slice(&remaining);
    let shipping_price = match cart.shipping_method() {
        Some(m) => checked_minor(&m.price, currency, "shipping_method.price")?,
        None => 0,
    };
    let unit_basis = basis.iter().all(|b| b.is_one());
    let work = Work {
        split: Lots::new(
            lines.len(),
            std::mem::take(&mut buffers.spans),
            std::mem::take(&mut buffers.arena),
        ),
        lot_scratch: std::mem::take(&mut buffers.lot_scratch),
        masks: std::cell::RefCell::new(std::mem::take(&mut buffers.masks)),
        all_lines: if lines.len() >= 128 {
            u128::MAX
        } else {
            (1u128 << lines.len()) - 1
        },
        spare_parts: std::cell::RefCell::new(std::mem::take(&mut buffers.spare_parts)),
        spare_lines: std::cell::RefCell::new(std::mem::take(&mut buffers.spare_lines)),
        scratch: std::cell::RefCell::new(std::mem::take(&mut buffers.scratch)),
        lines,
        currency,
        mode: config.rounding.mode,
        remaining,
        basis,
        unit_basis,
        shipping_remaining: shipping_price,
        codes: cart.codes(),
        outcomes: std::mem::take(&mut buffers.outcomes),
        stacking: std::mem::take(&mut buffers.stacking),
    };
    let resolved = Resolved {
        position,
        cart_index,
        rates,
        subtotals,
        shipping_price,
    };
    Ok((work, resolved))
}

/// The cart's lines in SKU order, and `position[k]`, where cart line k sits in that order
/// (in the vectors given, cleared first; `line_refs` lends its allocation to the lines).
fn sku_order(
    cart: &Cart,
    mut by_sku: Vec<usize>,
    mut position: Vec<usize>,
    line_refs: Vec<usize>,
) -> (Vec<&CartLine>, Vec<usize>, Vec<usize>) {
    let cart_lines = cart.lines();
    by_sku.clear();
    by_sku.extend(0..cart_lines.len());
    position.clear();
    // Lines are often added in SKU order already: then both orders are the identity, and the
    // check costs one comparison per line instead of a sort.
    if cart_lines.is_sorted_by(|a, b| text_le(a.sku.as_str(), b.sku.as_str())) {
        position.extend(0..cart_lines.len());
    } else {
        by_sku.sort_by(|a, b| cart_lines[*a].sku.cmp(&cart_lines[*b].sku));
        position.resize(by_sku.len(), 0);
        for (k, i) in by_sku.iter().enumerate() {
            position[*i] = k;
        }
    }
    let mut lines: Vec<&CartLine> = reuse_for(line_refs);
    lines.extend(by_sku.iter().map(|i| &cart_lines[*i]));
    (lines, position, by_sku)
}

/// An empty vector of `T` in the allocation of `v` (emptied): collecting a vector's own
/// iterator into elements of the same size and alignment reuses its buffer, so the lines'
/// references, which cannot outlive a call, still keep their room between calls as a
/// `Vec<usize>`.
pub(super) fn reuse_for<S, T>(v: Vec<S>) -> Vec<T> {
    v.into_iter().filter_map(|_| None).collect()
}

/// Gift wrapping and surcharges. A surcharge's threshold and percentage are measured against
/// `order_value`, the items after discounts.
fn charge_fees(
    cart: &Cart,
    work: &Work<'_>,
    rules: &CartRules,
    order_value: i128,
    mut fees: Vec<Fee>,
) -> Vec<Fee> {
    let wrapped = match rules.gift_wrap {
        GiftWrapFee::PerLine(_) => work.lines.iter().filter(|l| l.gift_wrap).count(),
        GiftWrapFee::PerOrder(_) => 1,
        GiftWrapFee::None => 0,
    };
    fees.clear();
    fees.reserve(wrapped + rules.surcharges.len());
    match &rules.gift_wrap {
        GiftWrapFee::None => {}
        GiftWrapFee::PerLine(fee) => {
            let amount = minor_of(fee);
            // In SKU order, like everything else, so line order never changes a fee's tax.
            for line in work.lines.iter().filter(|l| l.gift_wrap) {
                // `format!("gift wrap {}", line.sku)`, without the formatting machinery.
                const PREFIX: &str = "gift wrap ";
                let sku = line.sku.as_str();
                let mut name = String::with_capacity(PREFIX.len() + sku.len());
                name.push_str(PREFIX);
                name.push_str(sku);
                fees.push(Fee {
                    kind: FeeKind::GiftWrap,
                    name,
                    amount,
                });
            }
        }
        GiftWrapFee::PerOrder(fee) => {
            if cart.lines().iter().any(|l| l.gift_wrap) {
                fees.push(Fee {
                    kind: FeeKind::GiftWrap,
                    name: "gift wrap".to_owned(),
                    amount: minor_of(fee),
                });
            }
        }
    }
    for s in &rules.surcharges {
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
            fees.push(Fee {
                kind: FeeKind::Surcharge,
                name: s.name.clone(),
                amount,
            });
        }
    }
    fees
}

/// What tax is computed from, beside the amounts: each line's rate and units, the shipping
/// rate (fees are taxed at it too), the fees, the mode and the rounding.
struct TaxInputs<'a> {
    rates: &'a [LineRate],
    lines: &'a [&'a CartLine],
    shipping_rate: Ratio,
    fees: &'a [Fee],
    inclusive: bool,
    rounding: TaxRounding,
    mode: RoundingMode,
}

impl<'a> TaxInputs<'a> {
    fn new(
        work: &'a Work<'a>,
        resolved: &'a Resolved,
        fees: &'a [Fee],
        context: &PricingContext<'_>,
        country: Option<CountryCode>,
    ) -> Result<TaxInputs<'a>> {
        Ok(TaxInputs {
            rates: &resolved.rates,
            lines: &work.lines,
            shipping_rate: tax_rate(context.tax.shipping_rate(country))?,
            fees,
            inclusive: context.config.price_mode == PriceMode::TaxInclusive,
            rounding: context.config.rounding.tax,
            mode: work.mode,
        })
    }

    /// The exact tax on `amount` at `rate`: on top of it, or contained in it.
    #[inline]
    fn exact(&self, amount: i128, rate: Ratio) -> Ratio {
        Ratio {
            num: amount * rate.num,
            den: if self.inclusive {
                rate.den + rate.num
            } else {
                rate.den
            },
        }
    }

    #[inline]
    fn round(&self, amount: i128, rate: Ratio) -> i128 {
        let r = self.exact(amount, rate);
        round_div(r.num, r.den, self.mode)
    }

    /// Unit-level tax of `count` units worth `value` together: the value is shared over the
    /// units exactly (the first `value mod count` units carry one minor unit more) and each
    /// unit's tax is rounded.
    fn per_unit(&self, count: u32, value: i128, rate: Ratio) -> i128 {
        let count = i128::from(count.max(1));
        let (each, more) = (value / count, value % count);
        let mut tax = (count - more) * self.round(each, rate);
        if more > 0 {
            tax += more * self.round(each + 1, rate);
        }
        tax
    }

    /// Line `i`'s tax when rounding per line or per unit. `split` is `None` when every line is
    /// one lot.
    #[inline]
    fn line(&self, i: usize, amount: i128, split: Option<&Lots>) -> i128 {
        let rate = self.rates[i].ratio;
        if self.rounding != TaxRounding::PerUnit {
            return self.round(amount, rate);
        }
        match split.map(|s| s.of(i)).filter(|lots| !lots.is_empty()) {
            Some(lots) => lots
                .iter()
                .map(|l| self.per_unit(l.count, l.value, rate))
                .sum(),
            None => self.per_unit(self.lines[i].quantity, amount, rate),
        }
    }

    /// Tax per taxable piece (lines in SKU order, shipping, fees), rounded per the policy.
    fn compute(&self, lines: &[i128], split: Option<&Lots>, shipping: i128) -> Taxes {
        self.compute_into(lines, split, shipping, (Vec::new(), Vec::new()))
    }

    /// [`TaxInputs::compute`], into the vectors given (cleared first) when rounding per line
    /// or per unit.
    fn compute_into(
        &self,
        lines: &[i128],
        split: Option<&Lots>,
        shipping: i128,
        (mut line_taxes, mut fee_taxes): (Vec<i128>, Vec<i128>),
    ) -> Taxes {
        if self.rounding == TaxRounding::PerTotal {
            let exact: Vec<Ratio> = lines
                .iter()
                .zip(self.rates)
                .map(|(a, r)| self.exact(*a, r.ratio))
                .chain(std::iter::once(self.exact(shipping, self.shipping_rate)))
                .chain(
                    self.fees
                        .iter()
                        .map(|f| self.exact(f.amount, self.shipping_rate)),
                )
                .collect();
            // Rounding per total allocates over every piece at once; they part only now.
            let mut all = round_and_allocate(&exact, self.mode);
            let fees = all.split_off(lines.len() + 1);
            let shipping = all[lines.len()];
            all.truncate(lines.len());
            return Taxes {
                lines: all,
                shipping,
                fees,
            };
        }
        line_taxes.clear();
        if self.rounding == TaxRounding::PerLine {
            // Each line's tax rounded alone: one rounding per line and its rate, side by side.
            line_taxes.extend(
                lines
                    .iter()
                    .zip(self.rates)
                    .map(|(a, r)| self.round(*a, r.ratio)),
            );
        } else {
            line_taxes.extend(
                lines
                    .iter()
                    .enumerate()
                    .map(|(i, a)| self.line(i, *a, split)),
            );
        }
        fee_taxes.clear();
        fee_taxes.extend(
            self.fees
                .iter()
                .map(|f| self.round(f.amount, self.shipping_rate)),
        );
        Taxes {
            lines: line_taxes,
            shipping: self.round(shipping, self.shipping_rate),
            fees: fee_taxes,
        }
    }

    /// The tax total there would be without any discount (`subtotals` and the shipping price),
    /// reusing `taxes`, computed on `work`, for the lines no promotion touched.
    fn total_undiscounted(
        &self,
        subtotals: &[i128],
        work: &Work<'_>,
        taxes: &Taxes,
        shipping: i128,
    ) -> i128 {
        if self.rounding == TaxRounding::PerTotal {
            return self.compute(subtotals, None, shipping).total();
        }
        let items: i128 = if self.rounding == TaxRounding::PerLine {
            // A line's tax depends on its amount alone: an untouched line's is the one found.
            subtotals
                .iter()
                .zip(&work.remaining)
                .zip(self.rates.iter().zip(&taxes.lines))
                .map(|((a, left), (rate, tax))| {
                    if a == left {
                        *tax
                    } else {
                        self.round(*a, rate.ratio)
                    }
                })
                .sum()
        } else {
            subtotals
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    if *a == work.remaining[i] && work.split.count(i) == 0 {
                        taxes.lines[i]
                    } else {
                        self.line(i, *a, None)
                    }
                })
                .sum()
        };
        let fees: i128 = self
            .fees
            .iter()
            .map(|f| self.round(f.amount, self.shipping_rate))
            .sum();
        items + self.round(shipping, self.shipping_rate) + fees
    }
}

/// The priced lines, back in cart order.
fn price_lines(
    cart: &Cart,
    resolved: &Resolved,
    work: &Work<'_>,
    taxes: &[i128],
    price_mode: PriceMode,
) -> Vec<PricedLine> {
    let currency = work.currency;
    let inclusive = price_mode == PriceMode::TaxInclusive;
    // Collected rather than pushed one by one: each line is then built in its place instead
    // of on the stack and copied.
    cart.lines()
        .iter()
        .zip(&resolved.position)
        .map(|(line, &i)| {
            let (subtotal, total, tax) = (resolved.subtotals[i], work.remaining[i], taxes[i]);
            let total_money = money(total, currency);
            // The total is the gross amount of tax-inclusive prices, the net of exclusive ones.
            let (net, gross) = if inclusive {
                (money(total - tax, currency), total_money)
            } else {
                (total_money, money(total + tax, currency))
            };
            PricedLine {
                sku: line.sku.clone(),
                quantity: line.quantity,
                unit_price: line.unit_price,
                subtotal: money(subtotal, currency),
                discount: money(subtotal - total, currency),
                total: total_money,
                tax: money(tax, currency),
                net,
                gross,
                tax_rate: resolved.rates[i].decimal,
            }
        })
        .collect()
}

/// The chosen shipping method with its discount and tax, if one is chosen.
fn price_shipping(
    cart: &Cart,
    resolved: &Resolved,
    work: &Work<'_>,
    tax: i128,
) -> Option<PricedShipping> {
    let currency = work.currency;
    cart.shipping_method().map(|m| PricedShipping {
        method_id: m.id.clone(),
        price: m.price,
        discount: money(resolved.shipping_price - work.shipping_remaining, currency),
        total: money(work.shipping_remaining, currency),
        tax: money(tax, currency),
    })
}

/// The fees with their taxes, as money; the fees' vector is given back emptied.
fn price_fees(
    mut fees: Vec<Fee>,
    taxes: &[i128],
    currency: Currency,
) -> (Vec<PricedFee>, Vec<Fee>) {
    let priced = fees
        .drain(..)
        .zip(taxes)
        .map(|(fee, tax)| PricedFee {
            kind: fee.kind,
            name: fee.name,
            amount: money(fee.amount, currency),
            tax: money(*tax, currency),
        })
        .collect();
    (priced, fees)
}

/// The cart totals. Tax is added on top only for tax-exclusive prices; tax-inclusive amounts
/// already contain it.
fn total_up(
    resolved: &Resolved,
    work: &Work<'_>,
    order_value: i128,
    fees: &[PricedFee],
    (taxes, original_tax): (&Taxes, i128),
    price_mode: PriceMode,
) -> CartTotals {
    let currency = work.currency;
    let inclusive = price_mode == PriceMode::TaxInclusive;
    let subtotal: i128 = resolved.subtotals.iter().sum();
    let discount = subtotal - order_value + (resolved.shipping_price - work.shipping_remaining);
    let fee_total: i128 = fees.iter().map(|f| minor_of(&f.amount)).sum();
    let tax_total = taxes.total();
    let mut total = subtotal - discount + fee_total + resolved.shipping_price;
    // The discount as the shopper feels it: with tax on top, a discount also takes away the
    // tax on what it took.
    let discount_incl_tax = if inclusive {
        discount
    } else {
        total += tax_total;
        discount + (original_tax - tax_total)
    };
    let line_taxes: i128 = taxes.lines.iter().sum();
    let net_subtotal = if inclusive {
        order_value - line_taxes
    } else {
        order_value
    };
    CartTotals {
        subtotal: money(subtotal, currency),
        net_subtotal: money(net_subtotal, currency),
        discount: money(discount, currency),
        discount_incl_tax: money(discount_incl_tax, currency),
        original_total: money(total + discount_incl_tax, currency),
        fees: money(fee_total, currency),
        shipping: money(resolved.shipping_price, currency),
        tax: money(tax_total, currency),
        total: money(total, currency),
        tax_included: inclusive,
    }
}

/// The cart rules broken by the priced cart; checkout refuses it while any is.
fn check_cart_rules(
    cart: &Cart,
    rules: &CartRules,
    order_value: i128,
    currency: Currency,
) -> Vec<Violation> {
    let mut violations = Vec::new();
    if let Some(min) = &rules.min_order_value
        && order_value < minor_of(min)
    {
        violations.push(Violation::BelowMinimumOrderValue {
            minimum: *min,
            order_value: money(order_value, currency),
        });
    }
    if let Some(max) = rules.max_quantity_per_sku {
        for line in cart.lines().iter().filter(|l| l.quantity > max) {
            violations.push(Violation::QuantityAboveMaximum {
                sku: line.sku.clone(),
                maximum: max,
                quantity: line.quantity,
            });
        }
    }
    violations
}

/// A tax rate from the calculator as an exact ratio, refused outside `0..=1`.
fn tax_rate(rate: Decimal) -> Result<Ratio> {
    // `rate < 0 || rate > 1`, on the mantissa: 1 is 10^scale of it.
    let mantissa = rate.mantissa();
    if mantissa < 0 || mantissa > pow10(rate.scale()) {
        return Err(Error::InvalidRule {
            path: "tax.rate".into(),
            reason: format!("{rate} is outside 0..=1"),
        });
    }
    Ok(Ratio::of(rate, RATE_SCALE_MAX))
}

/// `m` in minor units, refused in another currency, negative, not in minor units, or above
/// [`AMOUNT_ABS_MAX`].
fn checked_minor(m: &Money, currency: Currency, field: &'static str) -> Result<i128> {
    if m.currency() != currency {
        return Err(Error::CurrencyMismatch {
            cart: currency,
            other: m.currency(),
        });
    }
    let max = i128::from(AMOUNT_ABS_MAX) * pow10(u32::from(currency.exponent()));
    // At the currency's scale (every price a cart holds) `to_minor` is the mantissa.
    let minor = match minor_at_scale(m) {
        Some(minor) => i64::try_from(minor).ok().map(i128::from),
        None => m.to_minor().ok().map(i128::from),
    };
    match minor {
        Some(minor) if (0..=max).contains(&minor) => Ok(minor),
        _ => Err(commerce_core::Error::Invalid {
            field,
            reason: "negative, not in minor units, or too large".into(),
        }
        .into()),
    }
}

fn check_amount(m: &Money, currency: Currency, field: &'static str) -> Result<()> {
    if m.currency() != currency {
        return Err(Error::CurrencyMismatch {
            cart: currency,
            other: m.currency(),
        });
    }
    let out_of_bounds = match minor_at_scale(m) {
        // The same test on the mantissa: negative, or above the bound in minor units.
        Some(minor) => {
            minor < 0 || minor > i128::from(AMOUNT_ABS_MAX) * pow10(u32::from(currency.exponent()))
        }
        None => m.is_negative() || !m.is_rounded() || m.amount() > Decimal::from(AMOUNT_ABS_MAX),
    };
    if out_of_bounds {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tax_rate_is_refused_exactly_outside_zero_to_one() {
        for scale in 0..=28u32 {
            for mantissa in [-11i64, -10, -1, 0, 1, 9, 10, 11, 99, 100, 101, 1_000_001] {
                let rate = Decimal::new(mantissa, scale);
                let outside = rate < Decimal::ZERO || rate > Decimal::ONE;
                assert_eq!(tax_rate(rate).is_err(), outside, "{rate}");
            }
            let negative_zero = Decimal::from_parts(0, 0, 0, true, scale);
            assert!(tax_rate(negative_zero).is_ok(), "-0 at scale {scale}");
        }
        assert!(tax_rate(Decimal::MAX).is_err());
        assert!(tax_rate(Decimal::MIN).is_err());
    }
}
