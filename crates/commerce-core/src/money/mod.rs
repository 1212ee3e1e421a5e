//! Exact money: a decimal amount and its currency, with checked arithmetic, declared rounding,
//! exact allocation, and a text form.

mod allocate;
mod currency;
mod rounding;

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::{Deserialize, Serialize};

pub use allocate::{allocate, allocate_minor, allocate_weighted};
pub use currency::Currency;
pub use rounding::RoundingMode;

use crate::{Error, Result};

/// An exact amount of one currency.
///
/// The amount is a [`Decimal`] (96-bit mantissa, up to 28 decimal places); it is never a float.
/// An amount may carry more decimals than its currency's minor unit while a computation is under
/// way (a unit price of 0.125 EUR, a converted amount); [`Money::round`] brings it to the minor
/// unit with a declared [`RoundingMode`], and [`Money::to_minor`] refuses amounts that are not
/// rounded.
///
/// Arithmetic is checked: combining two currencies is [`Error::CurrencyMismatch`] and an
/// overflow is [`Error::Overflow`]; nothing wraps or panics.
///
/// ```
/// use commerce_core::{Currency, Money, RoundingMode};
/// use rust_decimal::Decimal;
///
/// let price: Money = "19.99 EUR".parse()?;
/// let line = price.checked_mul(Decimal::from(3))?;
/// assert_eq!(line.to_string(), "59.97 EUR");
///
/// // 25 % off, rounded half-up to the cent: 14.99, not 15.00.
/// let discounted = price.checked_mul(Decimal::new(75, 2))?.round(RoundingMode::HalfUp);
/// assert_eq!(discounted.to_minor()?, 1499);
///
/// // Currencies never mix.
/// let yen = Money::from_minor(500, Currency::JPY);
/// assert!(price.checked_add(&yen).is_err());
/// # Ok::<(), commerce_core::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    amount: Decimal,
    currency: Currency,
}

impl Money {
    /// An amount of `currency`, exactly as given (no rounding).
    pub const fn new(amount: Decimal, currency: Currency) -> Money {
        Money { amount, currency }
    }

    /// Zero in `currency`, at the currency's minor-unit scale (so it prints as `0.00 EUR`).
    pub fn zero(currency: Currency) -> Money {
        Money::from_minor(0, currency)
    }

    /// An amount given in minor units: `from_minor(1234, EUR)` is 12.34 EUR.
    pub fn from_minor(minor: i64, currency: Currency) -> Money {
        Money {
            amount: Decimal::new(minor, u32::from(currency.exponent())),
            currency,
        }
    }

    /// Parses a decimal amount (`"12.34"`, `"-0.5"`) in `currency`. The grammar is strict: an
    /// optional `-`, digits, and an optional `.` followed by digits; no `+`, exponent, spaces or
    /// group separators. At most the currency's minor-unit decimals are accepted.
    ///
    /// # Errors
    /// [`Error::Parse`] for text outside the grammar or too long;
    /// [`Error::NotInMinorUnits`] for more decimals than the currency has.
    pub fn parse_amount(text: &str, currency: Currency) -> Result<Money> {
        if text.len() > crate::limits::MONEY_TEXT_LEN_MAX {
            return Err(Error::parse("money", text, "too long"));
        }
        let digits = text.strip_prefix('-').unwrap_or(text);
        let (int, frac) = match digits.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (digits, None),
        };
        if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::parse(
                "money",
                text,
                "expected digits before the decimal point",
            ));
        }
        if let Some(f) = frac
            && (f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(Error::parse(
                "money",
                text,
                "expected digits after the decimal point",
            ));
        }
        let amount = Decimal::from_str_exact(text)
            .map_err(|_| Error::parse("money", text, "amount out of range"))?;
        let money = Money { amount, currency };
        if !money.is_rounded() {
            return Err(money.not_in_minor_units());
        }
        Ok(money)
    }

    /// The exact amount.
    pub const fn amount(&self) -> Decimal {
        self.amount
    }

    /// The currency.
    pub const fn currency(&self) -> Currency {
        self.currency
    }

    /// True for an amount of zero.
    pub fn is_zero(&self) -> bool {
        self.amount.is_zero()
    }

    /// True for an amount below zero.
    pub fn is_negative(&self) -> bool {
        self.amount.is_sign_negative() && !self.amount.is_zero()
    }

    /// True for an amount above zero.
    pub fn is_positive(&self) -> bool {
        self.amount.is_sign_positive() && !self.amount.is_zero()
    }

    /// True when the amount has no more decimals than the currency's minor unit.
    pub fn is_rounded(&self) -> bool {
        let exp = u32::from(self.currency.exponent());
        self.amount.scale() <= exp || self.amount.normalize().scale() <= exp
    }

    /// Rounds to the currency's minor unit with `mode`. The result always has exactly the
    /// minor-unit scale, so rounding twice changes nothing.
    pub fn round(&self, mode: RoundingMode) -> Money {
        let exp = u32::from(self.currency.exponent());
        let mut amount = self.amount.round_dp_with_strategy(exp, mode.strategy());
        // `round_dp` leaves fewer decimals alone; pad so 12.5 EUR prints as 12.50 EUR. Rescaling
        // up to the exponent never loses digits (the amount already has at most `exp` decimals).
        amount.rescale(exp);
        Money {
            amount,
            currency: self.currency,
        }
    }

    /// The amount in minor units: 12.34 EUR is 1234.
    ///
    /// # Errors
    /// [`Error::NotInMinorUnits`] if the amount has more decimals than the currency (round it
    /// first); [`Error::Overflow`] if it does not fit an `i64`.
    pub fn to_minor(&self) -> Result<i64> {
        self.minor_units()?.to_i64().ok_or(Error::Overflow {
            operation: "to_minor",
        })
    }

    /// The amount in minor units as an `i128` (every rounded `Money` fits).
    pub(crate) fn minor_units(&self) -> Result<i128> {
        if !self.is_rounded() {
            return Err(self.not_in_minor_units());
        }
        let exponent = u32::from(self.currency.exponent());
        if self.amount.scale() == exponent {
            return Ok(self.amount.mantissa());
        }
        let mut scaled = self.amount;
        scaled.rescale(exponent);
        // `rescale` stops short, silently, when the mantissa would not fit 96 bits.
        if scaled.scale() != exponent {
            return Err(Error::Overflow {
                operation: "minor units",
            });
        }
        Ok(scaled.mantissa())
    }

    fn not_in_minor_units(&self) -> Error {
        Error::NotInMinorUnits {
            amount: self.amount.to_string(),
            currency: self.currency,
            exponent: self.currency.exponent(),
        }
    }

    fn same_currency(&self, other: &Money) -> Result<()> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(Error::CurrencyMismatch {
                left: self.currency,
                right: other.currency,
            })
        }
    }

    /// `self + other`.
    ///
    /// # Errors
    /// [`Error::CurrencyMismatch`] or [`Error::Overflow`].
    pub fn checked_add(&self, other: &Money) -> Result<Money> {
        self.same_currency(other)?;
        let amount = self
            .amount
            .checked_add(other.amount)
            .ok_or(Error::Overflow { operation: "add" })?;
        Ok(Money::new(amount, self.currency))
    }

    /// `self - other`.
    ///
    /// # Errors
    /// [`Error::CurrencyMismatch`] or [`Error::Overflow`].
    pub fn checked_sub(&self, other: &Money) -> Result<Money> {
        self.same_currency(other)?;
        let amount = self
            .amount
            .checked_sub(other.amount)
            .ok_or(Error::Overflow {
                operation: "subtract",
            })?;
        Ok(Money::new(amount, self.currency))
    }

    /// `self × factor`, unrounded (a quantity, a rate, `1 - 0.25` for 25 % off).
    ///
    /// # Errors
    /// [`Error::Overflow`] when the product does not fit.
    pub fn checked_mul(&self, factor: Decimal) -> Result<Money> {
        let amount = self.amount.checked_mul(factor).ok_or(Error::Overflow {
            operation: "multiply",
        })?;
        Ok(Money::new(amount, self.currency))
    }

    /// `self ÷ divisor`, unrounded (to 28 significant digits).
    ///
    /// # Errors
    /// [`Error::DivisionByZero`] or [`Error::Overflow`].
    pub fn checked_div(&self, divisor: Decimal) -> Result<Money> {
        if divisor.is_zero() {
            return Err(Error::DivisionByZero {
                operation: "divide",
            });
        }
        let amount = self.amount.checked_div(divisor).ok_or(Error::Overflow {
            operation: "divide",
        })?;
        Ok(Money::new(amount, self.currency))
    }

    /// The amount with its sign flipped (a refund of a charge).
    #[must_use]
    pub fn negated(&self) -> Money {
        Money::new(-self.amount, self.currency)
    }

    /// The larger of two amounts of the same currency.
    ///
    /// # Errors
    /// [`Error::CurrencyMismatch`].
    pub fn max(&self, other: &Money) -> Result<Money> {
        self.same_currency(other)?;
        Ok(if other.amount > self.amount {
            *other
        } else {
            *self
        })
    }

    /// The smaller of two amounts of the same currency.
    ///
    /// # Errors
    /// [`Error::CurrencyMismatch`].
    pub fn min(&self, other: &Money) -> Result<Money> {
        self.same_currency(other)?;
        Ok(if other.amount < self.amount {
            *other
        } else {
            *self
        })
    }

    /// Sums amounts of `currency`; an empty iterator sums to zero.
    ///
    /// # Errors
    /// [`Error::CurrencyMismatch`] if any amount is in another currency, [`Error::Overflow`].
    pub fn sum<'a>(
        currency: Currency,
        items: impl IntoIterator<Item = &'a Money>,
    ) -> Result<Money> {
        items
            .into_iter()
            .try_fold(Money::zero(currency), |acc, m| acc.checked_add(m))
    }

    /// Splits this amount over `weights`; see [`allocate`].
    ///
    /// # Errors
    /// As [`allocate`].
    pub fn allocate(&self, weights: &[Decimal]) -> Result<Vec<Money>> {
        allocate(self, weights)
    }

    /// Compares two amounts of the same currency.
    ///
    /// # Errors
    /// [`Error::CurrencyMismatch`].
    pub fn checked_cmp(&self, other: &Money) -> Result<std::cmp::Ordering> {
        self.same_currency(other)?;
        Ok(self.amount.cmp(&other.amount))
    }
}

/// `"12.34 EUR"`: the amount with at least the currency's decimals, a space, the code.
impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let exp = u32::from(self.currency.exponent());
        if self.amount.scale() < exp {
            let mut padded = self.amount;
            padded.rescale(exp);
            write!(f, "{} {}", padded, self.currency)
        } else {
            write!(f, "{} {}", self.amount, self.currency)
        }
    }
}

impl fmt::Debug for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Parses `"12.34 EUR"` (one space between amount and code; the code in any case). The amount
/// grammar is that of [`Money::parse_amount`].
impl FromStr for Money {
    type Err = Error;
    fn from_str(text: &str) -> Result<Money> {
        if text.len() > crate::limits::MONEY_TEXT_LEN_MAX {
            return Err(Error::parse("money", text, "too long"));
        }
        let (amount, code) = text
            .split_once(' ')
            .ok_or_else(|| Error::parse("money", text, "expected \"<amount> <currency>\""))?;
        let currency = Currency::from_code(code)?;
        if code.trim() != code {
            return Err(Error::parse(
                "money",
                text,
                "expected one space between amount and code",
            ));
        }
        Money::parse_amount(amount, currency)
    }
}

#[cfg(test)]
mod tests;
