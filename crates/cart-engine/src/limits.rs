//! Named limits of the cart engine: every bound it enforces on outside input.

/// Most lines in one cart (a shop may allow fewer with [`crate::CartLimits`], never more: a
/// unit mask over a cart's lines and the allocation of a discount over them stay bounded).
pub const LINES_MAX: usize = 100;
/// Most units on one line, by default; a shop sets its own with [`crate::CartLimits`], up to
/// [`QUANTITY_PER_LINE_CEILING`].
pub const QUANTITY_PER_LINE_MAX: u32 = 999;
/// The most units on one line any shop may allow: it bounds pricing's arithmetic (every product
/// of an amount, a quantity and a rate stays far inside 128 bits) and its work.
pub const QUANTITY_PER_LINE_CEILING: u32 = 100_000;
/// Most promotion codes applied to one cart at once.
pub const CODES_MAX: usize = 5;
/// Longest promotion code after normalization, in bytes.
pub const CODE_LEN_MAX: usize = 64;
/// How many recent request ids a cart remembers to apply a retried request once.
pub const REQUEST_IDS_KEPT: usize = 32;
/// Longest request id, in bytes.
pub const REQUEST_ID_LEN_MAX: usize = 128;
/// Most promotions one pricing call considers.
pub const PROMOTIONS_MAX: usize = 1_000;
/// Deepest nesting of `all` / `any` conditions.
pub const CONDITION_DEPTH_MAX: usize = 8;
/// Most entries in one condition's set (SKUs, brands, categories, groups).
pub const CONDITION_SET_MAX: usize = 10_000;
/// Most tiers in a tiered promotion.
pub const TIERS_MAX: usize = 32;
/// Days of inactivity after which a cart expires, by default.
pub const CART_TTL_DAYS_DEFAULT: i64 = 30;
/// Most carts one abandoned-cart sweep handles.
pub const SWEEP_BATCH_MAX: usize = 1_000;
/// Largest amount (in major units) the pricing engine accepts for a price, fee or promotion
/// amount: 10^15, far above any real basket and far below where decimal arithmetic could overflow.
pub const AMOUNT_ABS_MAX: i64 = 1_000_000_000_000_000;
/// Most decimals of a percentage (33.333333 % is fine; pricing keeps no more).
pub const PERCENT_DECIMALS_MAX: u32 = 6;
