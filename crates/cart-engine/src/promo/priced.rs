//! What [`price`](super::price) returns: the priced cart with its lines, shipping, fees and
//! totals, every promotion's adjustments and diagnostics, and the cart-rule violations.

use commerce_core::{CartId, Currency, Money, Sku};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::model::PromotionId;

/// What an adjustment discounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdjustmentTarget {
    /// The line at this index of [`PricedCart::lines`].
    Line(usize),
    /// Shipping.
    Shipping,
}

/// One promotion's share of one line or of shipping. It names the promotion and the line by
/// their place in the priced cart ([`PricedCart::promotion_of`] and [`PricedCart::lines`]):
/// a cart of 20 lines and 10 promotions carries dozens of adjustments, and indices keep them
/// plain values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Adjustment {
    /// What it discounts.
    pub target: AdjustmentTarget,
    /// The promotion: an index into [`PricedCart::promotions`].
    pub promotion: usize,
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
    /// `total` without its tax.
    pub net: Money,
    /// `total` with its tax: what the line costs the shopper.
    pub gross: Money,
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

/// Cart totals: everything a receipt prints, so it needs no arithmetic of its own.
///
/// Tax-exclusive: `total = subtotal − discount + fees + shipping + tax`.
/// Tax-inclusive: `total = subtotal − discount + fees + shipping`, and `tax` is the part of it
/// that is tax (`tax_included` is true). Either way `original_total − discount_incl_tax =
/// total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartTotals {
    /// Σ line subtotals, before discounts (in the prices' terms: net or gross).
    pub subtotal: Money,
    /// Σ line totals after discounts, without tax (Σ of the lines' `net`).
    pub net_subtotal: Money,
    /// Σ line discounts + shipping discount, in the prices' terms.
    pub discount: Money,
    /// The discount with the tax it took away: for tax-exclusive prices, `discount` plus the
    /// difference between the tax without and with the discounts; for tax-inclusive prices,
    /// `discount`.
    pub discount_incl_tax: Money,
    /// What the shopper would pay without any promotion: `total + discount_incl_tax`.
    pub original_total: Money,
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
///
/// [`price`]: super::price
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PricedCart {
    /// The cart priced.
    pub cart_id: CartId,
    /// The cart's version when it was priced: a checkout from a cart at another version is
    /// refused, since the price may no longer be the cart's.
    pub cart_version: u64,
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
        let line = self.lines.iter().position(|l| l.sku == *sku);
        self.adjustments
            .iter()
            .filter(move |a| line.is_some_and(|k| a.target == AdjustmentTarget::Line(k)))
    }

    /// The promotion that made `adjustment`.
    pub fn promotion_of(&self, adjustment: &Adjustment) -> Option<&PromotionId> {
        self.promotions
            .get(adjustment.promotion)
            .map(|d| &d.promotion_id)
    }

    /// The discount each applied promotion gave, for usage claims at checkout.
    pub fn applied(&self) -> impl Iterator<Item = (&PromotionId, Money)> {
        self.promotions.iter().filter_map(|d| match d.outcome {
            PromotionOutcome::Applied { discount } => Some((&d.promotion_id, discount)),
            PromotionOutcome::NotApplied(_) => None,
        })
    }
}
