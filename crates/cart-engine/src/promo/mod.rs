//! The pricing and promotion engine: rules as data, and the pure `price` function.

mod engine;
mod model;

pub use engine::{
    Adjustment, AdjustmentTarget, CartRules, CartTotals, Customer, DiscountBasis, FeeKind,
    GiftWrapFee, NotApplied, PriceMode, PricedCart, PricedFee, PricedLine, PricedShipping,
    PricingConfig, PricingContext, PromotionDiagnostic, PromotionOutcome, RoundingLevel,
    RoundingPolicy, Surcharge, SurchargeAmount, TaxRounding, Violation, price,
};
pub use model::{
    Action, Condition, ItemFilter, Promotion, PromotionId, Selection, Tier, UsageLimits,
    load_promotions,
};
