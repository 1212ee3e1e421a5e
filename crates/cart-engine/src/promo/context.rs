//! The inputs of a pricing call besides the cart and the promotions: the merchant's
//! configuration (price mode, rounding, cart rules and fees), the shopper, and the tax rates.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use commerce_core::{Money, RoundingMode, UserId};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::tax::TaxCalculator;

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

/// Where tax is rounded. For 3 units at 1.08 and 19 %: per line, 3.24 × 19 % = 0.6156 → 0.62;
/// per unit, 1.08 × 19 % = 0.2052 → 0.21, × 3 = 0.63.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaxRounding {
    /// Each unit's tax is rounded, then summed per line. A line's discounted value is shared
    /// over its units exactly first (10.00 over 3 units is 3.34 + 3.33 + 3.33), and units an
    /// earlier promotion discounted on their own keep their own value. Shipping and each fee
    /// count as one unit.
    PerUnit,
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

impl<'a> PricingContext<'a> {
    /// Pricing at `now` under `config` with `tax`, for an anonymous shopper.
    pub fn new(
        now: DateTime<Utc>,
        config: &'a PricingConfig,
        tax: &'a dyn TaxCalculator,
    ) -> PricingContext<'a> {
        PricingContext {
            now,
            customer: None,
            config,
            tax,
        }
    }

    /// The same, for `customer`.
    pub fn for_customer(self, customer: &'a Customer) -> PricingContext<'a> {
        PricingContext {
            customer: Some(customer),
            ..self
        }
    }
}
