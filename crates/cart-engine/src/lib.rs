//! Carts and the pricing and promotion engine: every cent right, every retry applied once.
//!
//! - [`Cart`]: lines with a price snapshot taken when added, versioned commands
//!   ([`Cart::execute`]) with optimistic concurrency and request-id deduplication, repricing
//!   that reports changed prices and blocks checkout until the shopper acknowledges them,
//!   expiry, and [`merge`] of an anonymous cart into a user's at login.
//! - [`price`]: a pure, deterministic function from a cart, promotion rules and a context to a
//!   [`PricedCart`] with lines, adjustments, fees, shipping, tax, totals, and a diagnostic per
//!   promotion saying why it did or did not apply.
//! - [`Promotion`]: rules as data (serde), loaded with [`load_promotions`], which names the
//!   field of any invalid rule.
//! - Ports: [`CartStore`], [`PromotionUsageStore`] (reserve-then-commit usage limits and
//!   budgets), [`TaxCalculator`]; in-memory implementations and conformance suites included.
//!
//! # Example
//!
//! ```
//! use cart_engine::*;
//! use commerce_core::{CartId, Currency, testkit::{sample_product, t0}};
//!
//! let mut cart = Cart::new(CartId::new("c-1")?, None, Currency::EUR, None, t0());
//! let tee = sample_product("p-1", "TEE"); // 19.99 EUR
//! let mut mug = sample_product("p-2", "MUG");
//! mug.brand = Some("Potter".into());
//! let now = Mutation::at(t0());
//! let _ = cart.execute(CartCommand::AddLine { product: &tee, quantity: 2, gift_wrap: false }, &now)?;
//! let _ = cart.execute(CartCommand::AddLine { product: &mug, quantity: 1, gift_wrap: false }, &now)?;
//! let _ = cart.execute(CartCommand::ApplyCode(" welcome 5 ".into()), &now)?;
//!
//! let promotions = load_promotions(r#"[
//!   {"id": "welcome", "name": "5 off", "code": "WELCOME5",
//!    "action": {"fixed_off_order": {"amount": {"amount": "5.00", "currency": "EUR"}}}},
//!   {"id": "potter", "name": "Potter 20 %", "priority": 10,
//!    "action": {"percent_off": {"percent": "20", "items": {"brands": ["Potter"]}}}}
//! ]"#)?;
//! let config = PricingConfig::default();
//! let tax = FlatRateTax::new(rust_decimal::Decimal::ZERO)?;
//! let priced = price(&cart, &promotions, &PricingContext { now: t0(), customer: None, config: &config, tax: &tax })?;
//!
//! // 59.97 − 4.00 (20 % of the mug) − 5.00 (spread over what remains) = 50.97.
//! assert_eq!(priced.totals.total.to_string(), "50.97 EUR");
//! let shares: Vec<String> = priced.lines.iter().map(|l| l.discount.to_string()).collect();
//! assert_eq!(shares, ["3.57 EUR", "5.43 EUR"]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Semantics in one place
//! - **Fixed amounts** are named by what they apply to: [`Action::FixedOffPerUnit`] (each
//!   unit), [`Action::FixedOffPerLine`] (each line, whatever its quantity),
//!   [`Action::FixedOffOrder`] (once, spread over lines by remaining value).
//! - **Buy X get Y** repeats while units remain, up to `max_occurrences`; bought and discounted
//!   units never overlap; [`Selection`] says whether the cheapest or the most expensive units
//!   are discounted.
//! - **Stacking**: priority order, each promotion sees what earlier ones left; an exclusive
//!   promotion applies alone (the best exclusive wins); a stacking group keeps only its best
//!   deal. See [`Promotion`].
//! - **Tax-inclusive prices**: [`DiscountBasis`] says whether fixed amounts and thresholds are
//!   gross (default) or net.
//! - **Merge**: [`MergeStrategy::SumCapped`] by default; merging the same guest cart twice
//!   changes nothing.
//! - **Rounding**: [`RoundingPolicy`], default half-even at line level with tax per line.

mod cart;
mod error;
mod expiry;
pub mod limits;
mod merge;
mod promo;
mod store;
mod tax;
#[cfg(feature = "testkit")]
pub mod testkit;
mod usage;

pub use cart::{
    Blocker, Cart, CartCommand, CartLimits, CartLine, CartStatus, LineItem, LineProduct, Mutation,
    Outcome, PriceChange, PromoCode, RepriceReport, RequestId, ShippingMethod,
};
pub use error::{Error, Result};
pub use expiry::{abandoned_event_id, sweep_abandoned};
pub use merge::{MergeReport, MergeStrategy, merge};
pub use promo::*;
pub use store::{CartStore, InMemoryCartStore};
pub use tax::{FlatRateTax, TaxCalculator};
pub use usage::{
    ClaimOutcome, ClaimRequest, InMemoryUsageStore, LimitReached, PromotionUsageStore, Usage,
};
