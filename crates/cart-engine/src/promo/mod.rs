//! The pricing and promotion engine: rules as data, and the pure `price` function.
//!
//! How the files fit: [`price`] (`engine`) takes the promotion rules (`model`) and the other
//! inputs (`context`), resolves the cart into the working state promotions discount (`work`),
//! runs the promotions in stacking order (`stacking`), checking their `condition`s and computing
//! what each `action` discounts (`buy_x_get_y` has its own file), then prices fees, tax and
//! totals into the output types (`priced`). `arith` holds the exact integer arithmetic they share.

mod action;
mod arith;
mod build;
mod buy_x_get_y;
mod condition;
mod context;
mod engine;
mod model;
mod priced;
mod stacking;
mod work;

pub use build::PromotionBuilder;
pub use context::{
    CartRules, Customer, DiscountBasis, GiftWrapFee, PriceMode, PricingConfig, PricingContext,
    RoundingLevel, RoundingPolicy, Surcharge, SurchargeAmount, TaxRounding,
};
pub use engine::price;
pub use model::{
    Action, Condition, ItemFilter, Promotion, PromotionId, Selection, Tier, UsageLimits,
    load_promotions,
};
pub use priced::{
    Adjustment, AdjustmentTarget, CartTotals, FeeKind, NotApplied, PricedCart, PricedFee,
    PricedLine, PricedShipping, PromotionDiagnostic, PromotionOutcome, Violation,
};
