//! Building promotions in code: constructors for each action with sensible defaults, and a
//! builder that validates the whole rule once, like [`super::load_promotions`] does for JSON.

use commerce_core::{CategoryPath, Money, Sku};
use rust_decimal::Decimal;

use super::model::{
    Action, Condition, ItemFilter, Promotion, PromotionId, Selection, Tier, UsageLimits,
};
use crate::Result;
use crate::cart::PromoCode;

impl ItemFilter {
    /// Lines with one of these SKUs.
    ///
    /// # Errors
    /// [`crate::Error::Core`] for an invalid SKU.
    pub fn skus<S: AsRef<str>>(skus: impl IntoIterator<Item = S>) -> Result<ItemFilter> {
        let skus = skus
            .into_iter()
            .map(|s| Sku::new(s.as_ref()))
            .collect::<commerce_core::Result<_>>()?;
        Ok(ItemFilter::Skus(skus))
    }

    /// Lines in one of these categories (`Apparel/Tops`) or below them.
    ///
    /// # Errors
    /// [`crate::Error::Core`] for an invalid category path.
    pub fn categories<S: AsRef<str>>(paths: impl IntoIterator<Item = S>) -> Result<ItemFilter> {
        let paths = paths
            .into_iter()
            .map(|p| CategoryPath::parse(p.as_ref()))
            .collect::<commerce_core::Result<_>>()?;
        Ok(ItemFilter::Categories(paths))
    }

    /// Lines of one of these brands.
    pub fn brands<S: Into<String>>(brands: impl IntoIterator<Item = S>) -> ItemFilter {
        ItemFilter::Brands(brands.into_iter().map(Into::into).collect())
    }
}

impl Action {
    /// `percent` % off every unit (`Decimal::from(10)` or `"12.5".parse()?`).
    pub fn percent_off(percent: impl Into<Decimal>) -> Action {
        Action::PercentOff {
            percent: percent.into(),
            items: ItemFilter::All,
            max_quantity: None,
        }
    }

    /// `amount` off every unit.
    pub fn fixed_off_per_unit(amount: Money) -> Action {
        Action::FixedOffPerUnit {
            amount,
            items: ItemFilter::All,
            max_quantity: None,
        }
    }

    /// `amount` off every line, whatever its quantity.
    pub fn fixed_off_per_line(amount: Money) -> Action {
        Action::FixedOffPerLine {
            amount,
            items: ItemFilter::All,
        }
    }

    /// `amount` off the order, spread over the lines by value.
    pub fn fixed_off_order(amount: Money) -> Action {
        Action::FixedOffOrder {
            amount,
            items: ItemFilter::All,
        }
    }

    /// Every unit at `unit_price`.
    pub fn fixed_price(unit_price: Money) -> Action {
        Action::FixedPrice {
            unit_price,
            items: ItemFilter::All,
            max_quantity: None,
        }
    }

    /// Buy `buy` units, get `get` more free, as often as the cart allows; any item on either
    /// side, the cheapest units free. Narrow it with [`Action::buying`], [`Action::getting`],
    /// [`Action::at_percent`], [`Action::at_most_times`] and [`Action::most_expensive_first`].
    pub fn buy_x_get_y(buy: u32, get: u32) -> Action {
        Action::BuyXGetY {
            buy: ItemFilter::All,
            buy_quantity: buy,
            get: ItemFilter::All,
            get_quantity: get,
            percent_off: Decimal::ONE_HUNDRED,
            max_occurrences: None,
            selection: Selection::Cheapest,
        }
    }

    /// Free shipping.
    pub fn free_shipping() -> Action {
        Action::FreeShipping
    }

    /// Spend thresholds, each `(min_subtotal, amount_off)`, ascending.
    pub fn tiered_order(tiers: impl IntoIterator<Item = (Money, Money)>) -> Action {
        Action::TieredOrder {
            tiers: tiers
                .into_iter()
                .map(|(min_subtotal, amount_off)| Tier {
                    min_subtotal,
                    amount_off,
                })
                .collect(),
            items: ItemFilter::All,
        }
    }

    /// Only these items: the lines an action discounts (both sides of a buy-X-get-Y).
    pub fn on(mut self, filter: ItemFilter) -> Action {
        match &mut self {
            Action::PercentOff { items, .. }
            | Action::FixedOffPerUnit { items, .. }
            | Action::FixedOffPerLine { items, .. }
            | Action::FixedOffOrder { items, .. }
            | Action::FixedPrice { items, .. }
            | Action::TieredOrder { items, .. } => *items = filter,
            Action::BuyXGetY { buy, get, .. } => {
                *buy = filter.clone();
                *get = filter;
            }
            Action::FreeShipping => {}
        }
        self
    }

    /// At most `units` units, the cheapest first (a percentage, an amount per unit, a fixed
    /// price; other actions are unchanged).
    pub fn at_most(mut self, units: u32) -> Action {
        if let Action::PercentOff { max_quantity, .. }
        | Action::FixedOffPerUnit { max_quantity, .. }
        | Action::FixedPrice { max_quantity, .. } = &mut self
        {
            *max_quantity = Some(units);
        }
        self
    }

    /// Buy-X-get-Y: the units that qualify.
    pub fn buying(mut self, filter: ItemFilter) -> Action {
        if let Action::BuyXGetY { buy, .. } = &mut self {
            *buy = filter;
        }
        self
    }

    /// Buy-X-get-Y: the units that may be discounted.
    pub fn getting(mut self, filter: ItemFilter) -> Action {
        if let Action::BuyXGetY { get, .. } = &mut self {
            *get = filter;
        }
        self
    }

    /// Buy-X-get-Y: the discount on the units got, instead of free.
    pub fn at_percent(mut self, percent: impl Into<Decimal>) -> Action {
        if let Action::BuyXGetY { percent_off, .. } = &mut self {
            *percent_off = percent.into();
        }
        self
    }

    /// Buy-X-get-Y: at most `times` occurrences.
    pub fn at_most_times(mut self, times: u32) -> Action {
        if let Action::BuyXGetY {
            max_occurrences, ..
        } = &mut self
        {
            *max_occurrences = Some(times);
        }
        self
    }

    /// Buy-X-get-Y: discount the most expensive units instead of the cheapest.
    pub fn most_expensive_first(mut self) -> Action {
        if let Action::BuyXGetY { selection, .. } = &mut self {
            *selection = Selection::MostExpensive;
        }
        self
    }
}

/// Builds a [`Promotion`]; [`PromotionBuilder::build`] validates it whole.
///
/// ```
/// use cart_engine::{Action, Condition, ItemFilter, Promotion};
/// use commerce_core::{Currency, Money};
///
/// let promo = Promotion::builder("tees-3-for-2", Action::buy_x_get_y(2, 1))
///     .name("Tees: 3 for 2")
///     .priority(10)
///     .when(Condition::MinQuantity { quantity: 3, items: ItemFilter::All })
///     .build()?;
/// assert_eq!(promo.id.as_str(), "tees-3-for-2");
///
/// let bad = Promotion::builder("x", Action::percent_off(150)).build().unwrap_err();
/// assert_eq!(bad.to_string(), "invalid promotion rule at action.percent_off.percent: must be above 0 and at most 100");
/// # Ok::<(), cart_engine::Error>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build`"]
pub struct PromotionBuilder {
    id: String,
    name: Option<String>,
    code: Option<String>,
    priority: i32,
    exclusive: bool,
    stacking_group: Option<String>,
    condition: Option<Condition>,
    action: Action,
    limits: UsageLimits,
}

impl Promotion {
    /// A promotion with `id` giving `action`: no code, priority 0, stacking, always applicable,
    /// no usage limits; named after its id unless [`PromotionBuilder::name`] says otherwise.
    pub fn builder(id: impl Into<String>, action: Action) -> PromotionBuilder {
        PromotionBuilder {
            id: id.into(),
            name: None,
            code: None,
            priority: 0,
            exclusive: false,
            stacking_group: None,
            condition: None,
            action,
            limits: UsageLimits::default(),
        }
    }
}

impl PromotionBuilder {
    /// The name on receipts and diagnostics.
    pub fn name(mut self, name: impl Into<String>) -> PromotionBuilder {
        self.name = Some(name.into());
        self
    }

    /// The code the cart must carry (normalized like [`PromoCode`]).
    pub fn code(mut self, code: impl Into<String>) -> PromotionBuilder {
        self.code = Some(code.into());
        self
    }

    /// Higher applies first.
    pub fn priority(mut self, priority: i32) -> PromotionBuilder {
        self.priority = priority;
        self
    }

    /// Applies alone (see [`Promotion`]).
    pub fn exclusive(mut self) -> PromotionBuilder {
        self.exclusive = true;
        self
    }

    /// Competes in a best-deal group.
    pub fn stacking_group(mut self, group: impl Into<String>) -> PromotionBuilder {
        self.stacking_group = Some(group.into());
        self
    }

    /// Applies only when `condition` holds.
    pub fn when(mut self, condition: Condition) -> PromotionBuilder {
        self.condition = Some(condition);
        self
    }

    /// Usage limits, enforced at checkout.
    pub fn limits(mut self, limits: UsageLimits) -> PromotionBuilder {
        self.limits = limits;
        self
    }

    /// The promotion, validated.
    ///
    /// # Errors
    /// [`crate::Error::InvalidRule`] naming the field (an invalid id, code or value); [`crate::Error::Code`]
    /// for a malformed code.
    pub fn build(self) -> Result<Promotion> {
        let promotion = Promotion {
            name: self.name.unwrap_or_else(|| self.id.clone()),
            id: PromotionId::new(self.id)?,
            code: self.code.map(|c| PromoCode::new(&c)).transpose()?,
            priority: self.priority,
            exclusive: self.exclusive,
            stacking_group: self.stacking_group,
            condition: self.condition,
            action: self.action,
            limits: self.limits,
        };
        promotion.validate()?;
        Ok(promotion)
    }
}
