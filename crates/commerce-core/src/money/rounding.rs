//! Rounding modes, declared rather than implied.

use rust_decimal::RoundingStrategy;
use serde::{Deserialize, Serialize};

/// How to round an amount to a currency's minor unit. Every rounding in the SDK names its mode.
///
/// | mode        | 2.345 | 2.355 | -2.345 | 2.341 | 2.349 |
/// |-------------|-------|-------|--------|-------|-------|
/// | `HalfEven`  | 2.34  | 2.36  | -2.34  | 2.34  | 2.35  |
/// | `HalfUp`    | 2.35  | 2.36  | -2.35  | 2.34  | 2.35  |
/// | `HalfDown`  | 2.34  | 2.35  | -2.34  | 2.34  | 2.35  |
/// | `Up`        | 2.35  | 2.36  | -2.35  | 2.35  | 2.35  |
/// | `Down`      | 2.34  | 2.35  | -2.34  | 2.34  | 2.34  |
///
/// "Up" and "half up" move away from zero, "down" and "half down" toward zero, so a refund
/// (a negative amount) rounds to the mirror image of the charge it reverses.
///
/// ```
/// use commerce_core::{Currency, Money, RoundingMode};
/// use rust_decimal::Decimal;
/// let m = Money::new(Decimal::new(2345, 3), Currency::EUR); // 2.345 EUR
/// assert_eq!(m.round(RoundingMode::HalfEven).to_string(), "2.34 EUR");
/// assert_eq!(m.round(RoundingMode::HalfUp).to_string(), "2.35 EUR");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoundingMode {
    /// Ties go to the even neighbour (banker's rounding). The default: it has no bias over many
    /// roundings, which is what a ledger summing millions of lines needs.
    #[default]
    HalfEven,
    /// Ties go away from zero (the school rule; what most receipts show).
    HalfUp,
    /// Ties go toward zero.
    HalfDown,
    /// Always away from zero (any fraction rounds up in magnitude).
    Up,
    /// Always toward zero (truncation).
    Down,
}

impl RoundingMode {
    /// Every mode, for tests and configuration screens.
    pub const ALL: [RoundingMode; 5] = [
        RoundingMode::HalfEven,
        RoundingMode::HalfUp,
        RoundingMode::HalfDown,
        RoundingMode::Up,
        RoundingMode::Down,
    ];

    /// Rounds `amount` to `decimals` places with this mode. An amount that already has at most
    /// that many decimals is returned as it is, without any arithmetic.
    ///
    /// ```
    /// use commerce_core::RoundingMode;
    /// use rust_decimal::Decimal;
    /// assert_eq!(RoundingMode::HalfEven.round_dp(Decimal::new(2345, 3), 2), Decimal::new(234, 2));
    /// ```
    pub fn round_dp(self, amount: rust_decimal::Decimal, decimals: u32) -> rust_decimal::Decimal {
        if amount.scale() <= decimals {
            amount
        } else {
            amount.round_dp_with_strategy(decimals, self.strategy())
        }
    }

    pub(crate) fn strategy(self) -> RoundingStrategy {
        match self {
            RoundingMode::HalfEven => RoundingStrategy::MidpointNearestEven,
            RoundingMode::HalfUp => RoundingStrategy::MidpointAwayFromZero,
            RoundingMode::HalfDown => RoundingStrategy::MidpointTowardZero,
            RoundingMode::Up => RoundingStrategy::AwayFromZero,
            RoundingMode::Down => RoundingStrategy::ToZero,
        }
    }
}
