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
//! # Example: price a cart with a promotion
//!
//! ```
//! use cart_engine::*;
//! use commerce_core::{CartId, Currency, Money};
//! use commerce_core::testkit::t0;
//!
//! let eur = |minor| Money::from_minor(minor, Currency::EUR);
//! let mut cart = Cart::new(CartId::new("c-1")?, None, Currency::EUR, None, t0());
//! let now = Mutation::at(t0());
//! cart.execute(CartCommand::AddItem { item: LineItem::new("TEE", eur(1_999))?, quantity: 2, gift_wrap: false }, &now)?;
//! cart.execute(CartCommand::AddItem { item: LineItem::new("MUG", eur(1_000))?.brand("Potter"), quantity: 1, gift_wrap: false }, &now)?;
//! cart.execute(CartCommand::ApplyCode(" welcome 5 ".into()), &now)?;
//!
//! let promotions = [
//!     Promotion::builder("potter", Action::percent_off(20).on(ItemFilter::brands(["Potter"])))
//!         .priority(10)
//!         .build()?,
//!     Promotion::builder("welcome", Action::fixed_off_order(eur(500))).code("WELCOME5").build()?,
//! ];
//! let config = PricingConfig::default();
//! let tax = FlatRateTax::new(rust_decimal::Decimal::ZERO)?;
//! let priced = price(&cart, &promotions, &PricingContext::new(t0(), &config, &tax))?;
//!
//! // 49.98 − 2.00 (20 % of the mug) − 5.00 (spread over what remains) = 42.98.
//! assert_eq!(priced.totals.total.to_string(), "42.98 EUR");
//! let shares: Vec<String> = priced.lines.iter().map(|l| l.discount.to_string()).collect();
//! assert_eq!(shares, ["4.17 EUR", "2.83 EUR"]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Semantics in one place
//!
//! | question | answer |
//! |---|---|
//! | fixed amounts | named by what they apply to: [`Action::FixedOffPerUnit`] (each unit), [`Action::FixedOffPerLine`] (each line, whatever its quantity), [`Action::FixedOffOrder`] (once, spread over lines by remaining value) |
//! | units | each line's units carry its value unit by unit: a promotion that discounted some units of a line (a buy-X-get-Y, a `max_quantity`) leaves the others at their price, and later promotions see each unit's own value |
//! | `max_quantity` | a percentage, an amount per unit or a fixed price reaches at most that many units across the matching lines, the cheapest first (ties by SKU), skipping units already free |
//! | buy X get Y | repeats while units remain, up to `max_occurrences`; bought and discounted units never overlap; units used by one buy-X-get-Y (bought or discounted) take part in no later one; [`Selection`] says whether the cheapest or the most expensive are discounted |
//! | stacking | priority order, each promotion sees what earlier ones left; an exclusive promotion applies alone (the best exclusive wins); a stacking group keeps only its best deal (see [`Promotion`]) |
//! | quantities | [`Condition::MinQuantity`] sums units over the matching lines; [`Condition::LineQuantity`] asks one line to hold them |
//! | tax-inclusive prices | [`DiscountBasis`] says whether fixed amounts and thresholds are gross (default) or net |
//! | rounding | [`RoundingPolicy`]: mode (default half-even); discounts per unit, line (default) or promotion total; tax per unit, line (default) or cart total ([`TaxRounding`]) |
//! | receipts | [`CartTotals`] carries the original total, the net subtotal and the discount including tax; each [`PricedLine`] its net and gross |
//! | limits | a shop sets its line quantity and line count bounds per cart ([`CartLimits`]) within the engine's ceilings ([`limits`]) |
//! | merge | [`MergeStrategy::SumCapped`] by default; merging the same guest cart twice changes nothing; an anonymous cart can instead be given its owner ([`CartCommand::AssignOwner`]) |
//! | checkout binding | a [`PricedCart`] names the cart and version it priced; checkout refuses a pricing of another version |

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
