//! Promotion rules as data: conditions, actions, stacking fields and usage limits, with
//! validation that names the offending field.

use std::collections::BTreeSet;
use std::fmt;

use chrono::{DateTime, Utc};
use commerce_core::{CategoryPath, Currency, Money, Sku};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::arith::{minor_at_scale, pow10};
use crate::cart::{CartLine, PromoCode};
use crate::limits::{CONDITION_DEPTH_MAX, CONDITION_SET_MAX, PERCENT_DECIMALS_MAX, TIERS_MAX};
use crate::{Error, Result};

/// A promotion's id: 1 to 64 bytes of ASCII letters, digits, `-`, `_` and `.`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PromotionId(std::sync::Arc<str>);

impl PromotionId {
    /// Validates an id.
    ///
    /// # Errors
    /// [`Error::InvalidRule`] at `id`.
    pub fn new(id: impl Into<String>) -> Result<PromotionId> {
        let id = id.into();
        let ok = !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if ok {
            Ok(PromotionId(id.into()))
        } else {
            Err(rule("id", "1 to 64 of [A-Za-z0-9._-]"))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PromotionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for PromotionId {
    type Error = Error;
    fn try_from(s: String) -> Result<PromotionId> {
        PromotionId::new(s)
    }
}

impl From<PromotionId> for String {
    fn from(p: PromotionId) -> String {
        p.0.to_string()
    }
}

fn rule(path: &str, reason: impl Into<String>) -> Error {
    Error::InvalidRule {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// Which cart lines an action or condition looks at.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemFilter {
    /// Every line.
    #[default]
    All,
    /// Lines with one of these SKUs.
    Skus(BTreeSet<Sku>),
    /// Lines in one of these categories or below them.
    Categories(Vec<CategoryPath>),
    /// Lines of one of these brands (exact match).
    Brands(BTreeSet<String>),
}

impl ItemFilter {
    /// True if `line` passes the filter.
    pub fn matches(&self, line: &CartLine) -> bool {
        match self {
            ItemFilter::All => true,
            ItemFilter::Skus(skus) => skus.contains(&line.sku),
            ItemFilter::Categories(cats) => in_categories(cats, line),
            ItemFilter::Brands(brands) => line
                .product
                .brand
                .as_ref()
                .is_some_and(|b| brands.contains(b)),
        }
    }

    /// The lines of `lines` (at most 128) the filter matches, as a bit mask: bit `i` is
    /// `self.matches(lines[i])`. Small sets are gathered once, so each line costs a few
    /// length checks and short byte comparisons.
    pub(super) fn mask_of(&self, lines: &[&CartLine]) -> u128 {
        fn fold(lines: &[&CartLine], hit: impl Fn(&CartLine) -> bool) -> u128 {
            // Word by word, without a branch per line: 128-bit shifts are several
            // instructions each.
            let (mut low, mut high) = (0u64, 0u64);
            for (i, l) in lines.iter().enumerate() {
                let bit = u64::from(hit(l));
                if i < 64 {
                    low |= bit << i;
                } else {
                    high |= bit << (i - 64);
                }
            }
            (u128::from(high) << 64) | u128::from(low)
        }
        /// Up to [`SMALL_SET`] strings, gathered from a set; `None` for a larger one.
        fn gather<'a>(
            set: impl ExactSizeIterator<Item = &'a str>,
        ) -> Option<([&'a str; SMALL_SET], usize)> {
            let n = set.len();
            if n > SMALL_SET {
                return None;
            }
            let mut keys = [""; SMALL_SET];
            for (k, s) in keys.iter_mut().zip(set) {
                *k = s;
            }
            Some((keys, n))
        }
        match self {
            ItemFilter::Skus(skus) => match gather(skus.iter().map(Sku::as_str)) {
                Some((keys, n)) => fold(lines, |l| {
                    let sku = l.sku.as_str();
                    keys[..n].iter().any(|k| same_text(k, sku))
                }),
                None => fold(lines, |l| self.matches(l)),
            },
            ItemFilter::Brands(brands) => match gather(brands.iter().map(String::as_str)) {
                Some((keys, n)) => fold(lines, |l| {
                    l.product
                        .brand
                        .as_deref()
                        .is_some_and(|b| keys[..n].iter().any(|k| same_text(k, b)))
                }),
                None => fold(lines, |l| self.matches(l)),
            },
            // One top-level category (the usual filter): its name read once, each line's
            // first segment compared with it.
            ItemFilter::Categories(cats) if cats.len() == 1 && cats[0].segments().len() == 1 => {
                let name = cats[0].segments()[0].as_str();
                fold(lines, |l| {
                    l.product
                        .category
                        .segments()
                        .first()
                        .is_some_and(|s| same_text(name, s))
                })
            }
            // Inlined in the loop over lines rather than called through `matches`.
            ItemFilter::Categories(cats) => fold(lines, |l| in_categories(cats, l)),
            ItemFilter::All => fold(lines, |l| self.matches(l)),
        }
    }

    fn validate(&self, path: &str) -> Result<()> {
        let len = match self {
            ItemFilter::All => return Ok(()),
            ItemFilter::Skus(s) => s.len(),
            ItemFilter::Categories(c) => c.len(),
            ItemFilter::Brands(b) => b.len(),
        };
        if len == 0 {
            return Err(rule(
                path,
                "an empty set matches nothing; use \"all\" or list items",
            ));
        }
        if len > CONDITION_SET_MAX {
            return Err(rule(path, format!("more than {CONDITION_SET_MAX} entries")));
        }
        Ok(())
    }
}

/// Whether `line` lies in one of `cats` or below it: `is_within` (the filter's path is a
/// prefix of the line's), comparing names with [`same_text`], since pricing asks this of every
/// line.
#[inline]
fn in_categories(cats: &[CategoryPath], line: &CartLine) -> bool {
    let path = line.product.category.segments();
    cats.iter().any(|c| {
        let prefix = c.segments();
        prefix.len() <= path.len() && prefix.iter().zip(path).all(|(a, b)| same_text(a, b))
    })
}

/// Sets up to this size are scanned rather than searched when pricing matches a filter.
const SMALL_SET: usize = 8;

/// `a == b`, looking at the lengths and the last bytes before comparing the rest: SKUs
/// usually share a prefix and differ at the end, brands and category names in length.
#[inline]
fn same_text(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let n = a.len();
    if n != b.len() || a.last() != b.last() {
        return false;
    }
    // Short texts (most SKUs, brands and category names) in two overlapping words each,
    // without a call to `memcmp`.
    match n {
        0..=3 => a.first() == b.first() && a.get(n / 2) == b.get(n / 2),
        4..=8 => word4(a, 0) == word4(b, 0) && word4(a, n - 4) == word4(b, n - 4),
        9..=16 => word8(a, 0) == word8(b, 0) && word8(a, n - 8) == word8(b, n - 8),
        _ => a == b,
    }
}

/// `a <= b` in byte order (`str`'s order), for texts of equal length up to 16 bytes as two
/// overlapping big-endian words, without a call to `memcmp`: the bytes of the second word
/// that the first already covered are equal, so they do not change the order.
#[inline]
pub(super) fn text_le(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let n = a.len();
    if n == b.len() {
        if (4..=8).contains(&n) {
            let word = |s: &[u8], at: usize| word4(s, at).map(u32::from_be);
            let (a0, b0) = (word(a, 0), word(b, 0));
            return if a0 == b0 {
                word(a, n - 4) <= word(b, n - 4)
            } else {
                a0 < b0
            };
        }
        if (9..=16).contains(&n) {
            let word = |s: &[u8], at: usize| word8(s, at).map(u64::from_be);
            let (a0, b0) = (word(a, 0), word(b, 0));
            return if a0 == b0 {
                word(a, n - 8) <= word(b, n - 8)
            } else {
                a0 < b0
            };
        }
    }
    a <= b
}

/// The 4 bytes of `s` from `at`, as one integer.
#[inline]
fn word4(s: &[u8], at: usize) -> Option<u32> {
    s.get(at..at + 4)
        .and_then(|w| <[u8; 4]>::try_from(w).ok())
        .map(u32::from_ne_bytes)
}

/// The 8 bytes of `s` from `at`, as one integer.
#[inline]
fn word8(s: &[u8], at: usize) -> Option<u64> {
    s.get(at..at + 8)
        .and_then(|w| <[u8; 8]>::try_from(w).ok())
        .map(u64::from_ne_bytes)
}

/// When a promotion applies. Conditions look at the cart **as earlier promotions left it**
/// (a minimum subtotal counts the value that remains), so stacked promotions never qualify on
/// money another promotion already took off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// Every condition holds.
    All(Vec<Condition>),
    /// At least one condition holds.
    Any(Vec<Condition>),
    /// The matching lines' remaining value is at least this.
    MinSubtotal {
        /// The threshold.
        amount: Money,
        /// Which lines count.
        #[serde(default)]
        items: ItemFilter,
    },
    /// The matching lines hold at least this many units together.
    MinQuantity {
        /// The threshold.
        quantity: u32,
        /// Which lines count.
        #[serde(default)]
        items: ItemFilter,
    },
    /// Some matching line holds at least this many units on its own ("any line with at least
    /// 3 units"), where [`Condition::MinQuantity`] sums over lines.
    LineQuantity {
        /// The threshold.
        quantity: u32,
        /// Which lines count.
        #[serde(default)]
        items: ItemFilter,
    },
    /// At least one line matches.
    ContainsItems(ItemFilter),
    /// The customer is in one of these groups.
    CustomerGroup(BTreeSet<String>),
    /// `starts_at ≤ now < ends_at` (either bound may be open).
    DateWindow {
        /// First instant it applies.
        starts_at: Option<DateTime<Utc>>,
        /// First instant it no longer applies.
        ends_at: Option<DateTime<Utc>>,
    },
    /// The customer has never placed an order (an anonymous shopper counts as a first order).
    FirstOrder,
}

impl Condition {
    fn validate(&self, path: &str, depth: usize, currency: &mut Option<Currency>) -> Result<()> {
        if depth > CONDITION_DEPTH_MAX {
            return Err(rule(
                path,
                format!("nested deeper than {CONDITION_DEPTH_MAX}"),
            ));
        }
        match self {
            Condition::All(cs) | Condition::Any(cs) => {
                let key = if matches!(self, Condition::All(_)) {
                    "all"
                } else {
                    "any"
                };
                if cs.is_empty() {
                    return Err(rule(
                        &format!("{path}.{key}"),
                        "must list at least one condition",
                    ));
                }
                if cs.len() > CONDITION_SET_MAX {
                    return Err(rule(&format!("{path}.{key}"), "too many conditions"));
                }
                for (i, c) in cs.iter().enumerate() {
                    c.validate(&format!("{path}.{key}[{i}]"), depth + 1, currency)?;
                }
                Ok(())
            }
            Condition::MinSubtotal { amount, items } => {
                check_money(
                    &format!("{path}.min_subtotal.amount"),
                    amount,
                    currency,
                    false,
                )?;
                items.validate(&format!("{path}.min_subtotal.items"))
            }
            Condition::MinQuantity { quantity, items } => {
                if *quantity == 0 {
                    return Err(rule(
                        &format!("{path}.min_quantity.quantity"),
                        "must be at least 1",
                    ));
                }
                items.validate(&format!("{path}.min_quantity.items"))
            }
            Condition::LineQuantity { quantity, items } => {
                if *quantity == 0 {
                    return Err(rule(
                        &format!("{path}.line_quantity.quantity"),
                        "must be at least 1",
                    ));
                }
                items.validate(&format!("{path}.line_quantity.items"))
            }
            Condition::ContainsItems(items) => items.validate(&format!("{path}.contains_items")),
            Condition::CustomerGroup(groups) => {
                if groups.is_empty() || groups.len() > CONDITION_SET_MAX {
                    return Err(rule(&format!("{path}.customer_group"), "1 to 10000 groups"));
                }
                Ok(())
            }
            Condition::DateWindow { starts_at, ends_at } => {
                if let (Some(s), Some(e)) = (starts_at, ends_at)
                    && s >= e
                {
                    return Err(rule(
                        &format!("{path}.date_window"),
                        "starts_at must be before ends_at",
                    ));
                }
                Ok(())
            }
            Condition::FirstOrder => Ok(()),
        }
    }
}

/// Which units a buy-X-get-Y promotion discounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Selection {
    /// The cheapest eligible units are the discounted ones (the usual rule).
    #[default]
    Cheapest,
    /// The most expensive eligible units are the discounted ones.
    MostExpensive,
}

/// One tier of a tiered promotion: spend at least `min_subtotal`, get `amount_off`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tier {
    /// The threshold on the matching lines' remaining value.
    pub min_subtotal: Money,
    /// The discount, spread over the matching lines.
    pub amount_off: Money,
}

/// What a promotion gives. Amounts are in the promotion's currency; fixed amounts are gross or
/// net according to the pricing configuration's discount basis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// `percent` % off each matching unit's remaining value (0 < percent ≤ 100; 10.5 is
    /// 10.5 %).
    PercentOff {
        /// The percentage.
        percent: Decimal,
        /// Which lines.
        #[serde(default)]
        items: ItemFilter,
        /// At most this many units, the cheapest first (none: every matching unit).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_quantity: Option<u32>,
    },
    /// `amount` off every matching unit (capped at what each unit has left).
    FixedOffPerUnit {
        /// Off each unit.
        amount: Money,
        /// Which lines.
        #[serde(default)]
        items: ItemFilter,
        /// At most this many units, the cheapest first (none: every matching unit).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_quantity: Option<u32>,
    },
    /// `amount` off every matching line, whatever its quantity.
    FixedOffPerLine {
        /// Off each line.
        amount: Money,
        /// Which lines.
        #[serde(default)]
        items: ItemFilter,
    },
    /// `amount` off the order, spread over the matching lines in proportion to their remaining
    /// value (exact allocation; never onto shipping).
    FixedOffOrder {
        /// Off the order.
        amount: Money,
        /// Which lines carry it.
        #[serde(default)]
        items: ItemFilter,
    },
    /// Every matching unit costs `unit_price` (units already cheaper are left alone).
    FixedPrice {
        /// The price per unit.
        unit_price: Money,
        /// Which lines.
        #[serde(default)]
        items: ItemFilter,
        /// At most this many units, the cheapest first (none: every matching unit).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_quantity: Option<u32>,
    },
    /// Buy `buy_quantity` matching `buy`, get `get_quantity` matching `get` at `percent_off`
    /// (100 = free); repeats while units remain, at most `max_occurrences` times. The units
    /// bought and the units discounted never overlap.
    BuyXGetY {
        /// Units that qualify.
        buy: ItemFilter,
        /// How many qualifying units each occurrence needs.
        buy_quantity: u32,
        /// Units that may be discounted.
        get: ItemFilter,
        /// How many units each occurrence discounts.
        get_quantity: u32,
        /// The discount on those units, 0 < percent ≤ 100.
        percent_off: Decimal,
        /// At most this many occurrences (none: as many as fit).
        max_occurrences: Option<u32>,
        /// Which units are discounted.
        #[serde(default)]
        selection: Selection,
    },
    /// The shipping method is free. The only action that touches shipping.
    FreeShipping,
    /// Spend thresholds, each with an amount off the order (spend 50 get 5, spend 100 get 15):
    /// the highest tier reached applies, spread like [`Action::FixedOffOrder`].
    TieredOrder {
        /// Tiers, thresholds strictly ascending.
        tiers: Vec<Tier>,
        /// Which lines count and carry the discount.
        #[serde(default)]
        items: ItemFilter,
    },
}

/// How often a promotion may be used, enforced at checkout through a
/// [`crate::PromotionUsageStore`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UsageLimits {
    /// Uses in total.
    pub total: Option<u32>,
    /// Uses per customer.
    pub per_customer: Option<u32>,
    /// Money the campaign may give away in total.
    pub budget: Option<Money>,
}

/// One promotion rule.
///
/// # Stacking
/// Promotions apply in priority order (higher `priority` first, ties by id). Each later one
/// sees the value earlier ones left ([`Condition`] and [`Action`] both work on remaining
/// values), so two 10 % promotions give 19 %, not 20 %.
/// - An **exclusive** promotion applies alone: if any exclusive promotion applies, the one
///   with the largest discount (ties by priority order) is the only promotion on the cart.
/// - Promotions sharing a **stacking group** compete: the group takes one place in the order
///   (its members share a priority; among equal priorities it sorts by group name where a lone
///   promotion sorts by id), each member is tried on the cart as it is then, and only the
///   largest discount is kept (ties by id).
/// - A promotion with a `code` applies only if the cart carries that code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Promotion {
    /// Unique id.
    pub id: PromotionId,
    /// Name for diagnostics and receipts.
    pub name: String,
    /// Code the cart must carry, if any.
    #[serde(default)]
    pub code: Option<PromoCode>,
    /// Higher applies first.
    #[serde(default)]
    pub priority: i32,
    /// Applies alone.
    #[serde(default)]
    pub exclusive: bool,
    /// Best-deal group.
    #[serde(default)]
    pub stacking_group: Option<String>,
    /// When it applies; none means always.
    #[serde(default)]
    pub condition: Option<Condition>,
    /// What it gives.
    pub action: Action,
    /// Usage limits.
    #[serde(default)]
    pub limits: UsageLimits,
}

fn check_money(
    path: &str,
    m: &Money,
    currency: &mut Option<Currency>,
    allow_zero: bool,
) -> Result<()> {
    if let Some(c) = currency
        && *c != m.currency()
    {
        return Err(rule(
            path,
            format!("{} differs from the promotion's currency {c}", m.currency()),
        ));
    }
    *currency = Some(m.currency());
    if m.is_negative() || (!allow_zero && m.is_zero()) {
        return Err(rule(path, "must be positive"));
    }
    if !m.is_rounded() {
        return Err(rule(path, "must be in minor units"));
    }
    if m.amount() > rust_decimal::Decimal::from(crate::limits::AMOUNT_ABS_MAX) {
        return Err(rule(path, "too large"));
    }
    Ok(())
}

fn check_percent(path: &str, p: &Decimal) -> Result<()> {
    if *p <= Decimal::ZERO || *p > Decimal::ONE_HUNDRED {
        return Err(rule(path, "must be above 0 and at most 100"));
    }
    if p.normalize().scale() > PERCENT_DECIMALS_MAX {
        return Err(rule(
            path,
            format!("at most {PERCENT_DECIMALS_MAX} decimals"),
        ));
    }
    Ok(())
}

fn check_max_quantity(path: &str, max: Option<u32>) -> Result<()> {
    if max == Some(0) {
        return Err(rule(path, "must be at least 1 (or absent)"));
    }
    Ok(())
}

fn amount_ok(m: &Money) -> bool {
    if let Some(minor) = minor_at_scale(m) {
        // The same test on the mantissa, without comparing decimals.
        let max =
            i128::from(crate::limits::AMOUNT_ABS_MAX) * pow10(u32::from(m.currency().exponent()));
        return (0..=max).contains(&minor);
    }
    !m.is_negative() && m.is_rounded() && m.amount() <= Decimal::from(crate::limits::AMOUNT_ABS_MAX)
}

fn percent_ok(p: &Decimal) -> bool {
    // 0 < mantissa / 10^scale ≤ 100, compared exactly in integers (scale ≤ 28).
    let mantissa = p.mantissa();
    mantissa > 0 && mantissa <= 100 * pow10(p.scale())
}

impl Promotion {
    /// The one currency of the promotion's amounts, if it has any (a validated promotion has
    /// at most one).
    pub fn currency(&self) -> Option<Currency> {
        fn in_condition(c: &Condition) -> Option<Currency> {
            match c {
                Condition::All(cs) | Condition::Any(cs) => cs.iter().find_map(in_condition),
                Condition::MinSubtotal { amount, .. } => Some(amount.currency()),
                _ => None,
            }
        }
        let from_action = match &self.action {
            Action::FixedOffPerUnit { amount, .. }
            | Action::FixedOffPerLine { amount, .. }
            | Action::FixedOffOrder { amount, .. } => Some(amount.currency()),
            Action::FixedPrice { unit_price, .. } => Some(unit_price.currency()),
            Action::TieredOrder { tiers, .. } => tiers.first().map(|t| t.amount_off.currency()),
            Action::PercentOff { .. } | Action::BuyXGetY { .. } | Action::FreeShipping => None,
        };
        from_action
            .or_else(|| self.condition.as_ref().and_then(in_condition))
            .or_else(|| self.limits.budget.map(|b| b.currency()))
    }

    /// True if every number is one pricing can work with: amounts non-negative, in minor units
    /// and at most [`crate::limits::AMOUNT_ABS_MAX`], percentages in (0, 100]. Pricing checks
    /// this (cheaply, without allocating) for promotions built in code rather than loaded.
    pub(crate) fn numbers_in_bounds(&self) -> bool {
        fn condition_ok(c: &Condition) -> bool {
            match c {
                Condition::All(cs) | Condition::Any(cs) => cs.iter().all(condition_ok),
                Condition::MinSubtotal { amount, .. } => amount_ok(amount),
                _ => true,
            }
        }
        let action_ok = match &self.action {
            Action::PercentOff {
                percent,
                max_quantity,
                ..
            } => percent_ok(percent) && *max_quantity != Some(0),
            Action::FixedOffPerUnit {
                amount,
                max_quantity,
                ..
            } => amount_ok(amount) && *max_quantity != Some(0),
            Action::FixedOffPerLine { amount, .. } | Action::FixedOffOrder { amount, .. } => {
                amount_ok(amount)
            }
            Action::FixedPrice {
                unit_price,
                max_quantity,
                ..
            } => amount_ok(unit_price) && *max_quantity != Some(0),
            Action::BuyXGetY {
                percent_off,
                buy_quantity,
                get_quantity,
                max_occurrences,
                ..
            } => {
                percent_ok(percent_off)
                    && *buy_quantity > 0
                    && *get_quantity > 0
                    && *max_occurrences != Some(0)
            }
            Action::FreeShipping => true,
            Action::TieredOrder { tiers, .. } => {
                !tiers.is_empty()
                    && tiers.len() <= TIERS_MAX
                    && tiers
                        .iter()
                        .all(|t| amount_ok(&t.min_subtotal) && amount_ok(&t.amount_off))
            }
        };
        action_ok && self.condition.as_ref().is_none_or(condition_ok)
    }

    /// Checks every field.
    ///
    /// # Errors
    /// [`Error::InvalidRule`] whose path names the field, such as `action.percent_off.percent`.
    pub fn validate(&self) -> Result<()> {
        self.validate_at("")
    }

    pub(crate) fn validate_at(&self, prefix: &str) -> Result<()> {
        let p = |field: &str| {
            if prefix.is_empty() {
                field.to_owned()
            } else {
                format!("{prefix}.{field}")
            }
        };
        if self.name.trim().is_empty() || self.name.chars().count() > 256 {
            return Err(rule(&p("name"), "1 to 256 characters"));
        }
        if let Some(g) = &self.stacking_group
            && (g.trim().is_empty() || g.len() > 64)
        {
            return Err(rule(&p("stacking_group"), "1 to 64 bytes"));
        }
        let mut currency = None;
        if let Some(c) = &self.condition {
            c.validate(&p("condition"), 1, &mut currency)?;
        }
        match &self.action {
            Action::PercentOff {
                percent,
                items,
                max_quantity,
            } => {
                check_percent(&p("action.percent_off.percent"), percent)?;
                items.validate(&p("action.percent_off.items"))?;
                check_max_quantity(&p("action.percent_off.max_quantity"), *max_quantity)?;
            }
            Action::FixedOffPerUnit {
                amount,
                items,
                max_quantity,
            } => {
                check_money(
                    &p("action.fixed_off_per_unit.amount"),
                    amount,
                    &mut currency,
                    false,
                )?;
                items.validate(&p("action.fixed_off_per_unit.items"))?;
                check_max_quantity(&p("action.fixed_off_per_unit.max_quantity"), *max_quantity)?;
            }
            Action::FixedOffPerLine { amount, items } => {
                check_money(
                    &p("action.fixed_off_per_line.amount"),
                    amount,
                    &mut currency,
                    false,
                )?;
                items.validate(&p("action.fixed_off_per_line.items"))?;
            }
            Action::FixedOffOrder { amount, items } => {
                check_money(
                    &p("action.fixed_off_order.amount"),
                    amount,
                    &mut currency,
                    false,
                )?;
                items.validate(&p("action.fixed_off_order.items"))?;
            }
            Action::FixedPrice {
                unit_price,
                items,
                max_quantity,
            } => {
                check_money(
                    &p("action.fixed_price.unit_price"),
                    unit_price,
                    &mut currency,
                    true,
                )?;
                items.validate(&p("action.fixed_price.items"))?;
                check_max_quantity(&p("action.fixed_price.max_quantity"), *max_quantity)?;
            }
            Action::BuyXGetY {
                buy,
                buy_quantity,
                get,
                get_quantity,
                percent_off,
                max_occurrences,
                ..
            } => {
                let a = "action.buy_x_get_y";
                if *buy_quantity == 0 {
                    return Err(rule(&p(&format!("{a}.buy_quantity")), "must be at least 1"));
                }
                if *get_quantity == 0 {
                    return Err(rule(&p(&format!("{a}.get_quantity")), "must be at least 1"));
                }
                if *max_occurrences == Some(0) {
                    return Err(rule(
                        &p(&format!("{a}.max_occurrences")),
                        "must be at least 1",
                    ));
                }
                check_percent(&p(&format!("{a}.percent_off")), percent_off)?;
                buy.validate(&p(&format!("{a}.buy")))?;
                get.validate(&p(&format!("{a}.get")))?;
            }
            Action::FreeShipping => {}
            Action::TieredOrder { tiers, items } => {
                let a = "action.tiered_order.tiers";
                if tiers.is_empty() || tiers.len() > TIERS_MAX {
                    return Err(rule(&p(a), format!("1 to {TIERS_MAX} tiers")));
                }
                for (i, t) in tiers.iter().enumerate() {
                    check_money(
                        &p(&format!("{a}[{i}].min_subtotal")),
                        &t.min_subtotal,
                        &mut currency,
                        true,
                    )?;
                    check_money(
                        &p(&format!("{a}[{i}].amount_off")),
                        &t.amount_off,
                        &mut currency,
                        false,
                    )?;
                    if i > 0 && t.min_subtotal.amount() <= tiers[i - 1].min_subtotal.amount() {
                        return Err(rule(
                            &p(&format!("{a}[{i}].min_subtotal")),
                            "thresholds must ascend",
                        ));
                    }
                }
                items.validate(&p("action.tiered_order.items"))?;
            }
        }
        if let Some(b) = &self.limits.budget {
            check_money(&p("limits.budget"), b, &mut currency, false)?;
        }
        if self.limits.total == Some(0) {
            return Err(rule(
                &p("limits.total"),
                "must be at least 1 (remove the promotion instead)",
            ));
        }
        if self.limits.per_customer == Some(0) {
            return Err(rule(&p("limits.per_customer"), "must be at least 1"));
        }
        Ok(())
    }
}

/// Loads a JSON array of promotions, refusing the whole document if any rule is invalid.
/// The error's path names the field: `[2].action.percent_off.percent`.
///
/// ```
/// let doc = r#"[{"id": "ten", "name": "10 % off", "action": {"percent_off": {"percent": "150"}}}]"#;
/// let err = cart_engine::load_promotions(doc).unwrap_err();
/// assert_eq!(err.to_string(), "invalid promotion rule at [0].action.percent_off.percent: must be above 0 and at most 100");
/// ```
///
/// # Errors
/// [`Error::InvalidRule`] for malformed JSON, a wrong type, an invalid value, or a duplicate id.
pub fn load_promotions(json: &str) -> Result<Vec<Promotion>> {
    let mut de = serde_json::Deserializer::from_str(json);
    let promotions: Vec<Promotion> = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        Error::InvalidRule {
            path: if path == "." { String::new() } else { path },
            reason: e.into_inner().to_string(),
        }
    })?;
    let mut ids = BTreeSet::new();
    for (i, promotion) in promotions.iter().enumerate() {
        promotion.validate_at(&format!("[{i}]"))?;
        if !ids.insert(&promotion.id) {
            return Err(rule(
                &format!("[{i}].id"),
                format!("duplicate id {}", promotion.id),
            ));
        }
    }
    check_groups(&promotions)?;
    Ok(promotions)
}

/// The members of a stacking group must share one priority: the group then has one place in
/// the stacking order, whichever of its members exist.
pub(crate) fn check_groups(promotions: &[Promotion]) -> Result<()> {
    // When every member of every group shares one priority (no group, or the usual few
    // members at one priority) nothing can disagree: no map to build on each pricing call.
    let mut priorities = promotions
        .iter()
        .filter(|p| p.stacking_group.is_some())
        .map(|p| p.priority);
    match priorities.next() {
        None => return Ok(()),
        Some(first) if priorities.all(|q| q == first) => return Ok(()),
        Some(_) => {}
    }
    let mut priorities: std::collections::BTreeMap<&str, i32> = std::collections::BTreeMap::new();
    for (i, p) in promotions.iter().enumerate() {
        if let Some(group) = &p.stacking_group {
            let first = *priorities.entry(group.as_str()).or_insert(p.priority);
            if first != p.priority {
                return Err(rule(
                    &format!("[{i}].priority"),
                    format!(
                        "members of stacking group {group:?} must share one priority ({first})"
                    ),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use commerce_core::testkit::t0;
    use commerce_core::{CartId, Currency, Money};

    use super::*;
    use crate::{Cart, CartCommand, LineItem, Mutation};

    #[test]
    fn ordering_texts_word_by_word_is_byte_order() {
        let texts: Vec<String> = (0..=18u8)
            .flat_map(|n| {
                (0..n.max(1)).flat_map(move |k| {
                    [b'A', b'a', b'z', b'0'].map(|c| {
                        let bytes: Vec<u8> = (0..n)
                            .map(|i| if i == k { c } else { b'a' + (i % 26) })
                            .collect();
                        String::from_utf8(bytes).unwrap_or_default()
                    })
                })
            })
            .collect();
        for a in &texts {
            for b in &texts {
                assert_eq!(text_le(a, b), a <= b, "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn comparing_texts_word_by_word_is_equality() {
        let texts: Vec<String> = (0..=20)
            .flat_map(|n| {
                let base: String = (0..n).map(|i| char::from(b'a' + (i % 26))).collect();
                // The text itself and, for each place, the text with that byte changed.
                let changed = (0..n).map(move |k| {
                    let mut bytes = (0..n).map(|i| b'a' + (i % 26)).collect::<Vec<u8>>();
                    bytes[usize::from(k)] = b'Z';
                    String::from_utf8(bytes).unwrap_or_default()
                });
                std::iter::once(base).chain(changed).collect::<Vec<_>>()
            })
            .collect();
        for a in &texts {
            for b in &texts {
                assert_eq!(same_text(a, b), a == b, "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn a_filters_mask_is_the_lines_it_matches() {
        let mut cart = Cart::new(
            CartId::new("c").unwrap_or_else(|_| unreachable!()),
            None,
            Currency::EUR,
            None,
            t0(),
        );
        let brands = ["Acme", "Acmf", "Other", "", "acme"];
        let categories = [
            "Apparel/Tops",
            "Apparel",
            "Home/Kitchen",
            "Home",
            "Homeware/Tops",
        ];
        for i in 0..40u32 {
            let mut item = LineItem::new(
                &format!("SKU-{i:03}"),
                Money::from_minor(100, Currency::EUR),
            )
            .and_then(|item| item.category(categories[i as usize % 5]))
            .unwrap_or_else(|_| unreachable!());
            if i % 7 != 3 {
                item = item.brand(brands[i as usize % 5]);
            }
            let _ = cart.execute(
                CartCommand::AddItem {
                    item,
                    quantity: 1,
                    gift_wrap: false,
                },
                &Mutation::at(t0()),
            );
        }
        let lines: Vec<&CartLine> = cart.lines().iter().collect();
        assert_eq!(lines.len(), 40);
        let skus = |n: u32| {
            ItemFilter::Skus(
                (0..n)
                    .map(|k| {
                        Sku::new(format!("SKU-{:03}", k * 3)).unwrap_or_else(|_| unreachable!())
                    })
                    .chain([Sku::new("SKU-9").unwrap_or_else(|_| unreachable!())])
                    .collect(),
            )
        };
        let set = |names: &[&str]| {
            names
                .iter()
                .map(|s| (*s).to_owned())
                .collect::<BTreeSet<_>>()
        };
        let path = |p: &str| CategoryPath::parse(p).unwrap_or_default();
        let filters = [
            ItemFilter::All,
            skus(1),
            skus(7),
            skus(12),
            ItemFilter::Brands(set(&["Acme"])),
            ItemFilter::Brands(set(&["Acme", "Other", "acme"])),
            ItemFilter::Brands(set(&["a", "b", "c", "d", "e", "f", "g", "Other", "Acmf"])),
            ItemFilter::Categories(vec![path("Apparel")]),
            ItemFilter::Categories(vec![path("Home/Kitchen"), path("Apparel/Tops")]),
            ItemFilter::Categories(vec![path("Home"), path("Nothing")]),
        ];
        for filter in &filters {
            let want = lines
                .iter()
                .enumerate()
                .filter(|(_, l)| filter.matches(l))
                .fold(0u128, |m, (i, _)| m | (1 << i));
            assert_eq!(filter.mask_of(&lines), want, "{filter:?}");
            assert_ne!(want, 0, "{filter:?}");
        }
    }
}
