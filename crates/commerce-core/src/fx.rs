//! Daily FX rates and conversion with explicit rounding and a staleness policy.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::{Currency, Error, Money, Result, RoundingMode};

/// How a conversion treats old rates and rounds its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FxPolicy {
    /// The newest rate on or before the conversion date may be at most this many days old.
    /// 0 means "only today's rate"; 3 covers a weekend and a holiday.
    pub max_age_days: u32,
    /// Rounding of the converted amount to the target currency's minor unit.
    pub rounding: RoundingMode,
}

impl Default for FxPolicy {
    /// Rates up to 3 days old (a long weekend), half-even rounding.
    fn default() -> Self {
        FxPolicy {
            max_age_days: 3,
            rounding: RoundingMode::HalfEven,
        }
    }
}

/// Daily FX rates quoted against one base currency: on each date, how many units of a currency
/// one unit of the base buys (base EUR, USD 1.0832 means 1 EUR = 1.0832 USD).
///
/// A conversion between two non-base currencies triangulates through the base:
/// `amount × rate(to) ÷ rate(from)`, computed in one exact decimal expression and rounded once.
/// The rate used for each currency is its newest one dated on or before the conversion date; a
/// missing rate is [`Error::FxRateMissing`], one older than the policy allows
/// [`Error::FxRateStale`].
///
/// ```
/// use chrono::NaiveDate;
/// use commerce_core::{Currency, FxPolicy, FxTable, Money};
/// use rust_decimal::Decimal;
///
/// let day = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
/// let mut fx = FxTable::new(Currency::EUR);
/// fx.insert_day(day, [(Currency::USD, Decimal::new(10832, 4)), (Currency::JPY, Decimal::new(16250, 2))])?;
///
/// let price: Money = "10.00 USD".parse()?;
/// let yen = fx.convert(&price, Currency::JPY, day, FxPolicy::default())?;
/// assert_eq!(yen.to_string(), "1500 JPY"); // 10 / 1.0832 × 162.50 = 1500.18…
/// # Ok::<(), commerce_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "FxTableDoc", into = "FxTableDoc")]
pub struct FxTable {
    base: Currency,
    days: BTreeMap<NaiveDate, BTreeMap<Currency, Decimal>>,
}

/// The serialized form; [`FxTable`] validates it on load.
#[derive(Serialize, Deserialize)]
struct FxTableDoc {
    base: Currency,
    days: BTreeMap<NaiveDate, BTreeMap<Currency, Decimal>>,
}

impl TryFrom<FxTableDoc> for FxTable {
    type Error = Error;
    fn try_from(doc: FxTableDoc) -> Result<FxTable> {
        let mut table = FxTable::new(doc.base);
        for (day, rates) in doc.days {
            table.insert_day(day, rates)?;
        }
        Ok(table)
    }
}

impl From<FxTable> for FxTableDoc {
    fn from(t: FxTable) -> FxTableDoc {
        FxTableDoc {
            base: t.base,
            days: t.days,
        }
    }
}

impl FxTable {
    /// An empty table quoted against `base`.
    pub fn new(base: Currency) -> FxTable {
        FxTable {
            base,
            days: BTreeMap::new(),
        }
    }

    /// The base currency.
    pub fn base(&self) -> Currency {
        self.base
    }

    /// Records one day's rates, all or nothing: if any rate is invalid, none is recorded. Rates
    /// already known for that day are replaced. A rate for the base itself must be exactly 1.
    ///
    /// # Errors
    /// [`Error::InvalidFxRate`] for a rate that is zero, negative, or (for the base) not 1.
    pub fn insert_day(
        &mut self,
        as_of: NaiveDate,
        rates: impl IntoIterator<Item = (Currency, Decimal)>,
    ) -> Result<()> {
        let mut day = BTreeMap::new();
        for (currency, rate) in rates {
            let bad = rate <= Decimal::ZERO || (currency == self.base && rate != Decimal::ONE);
            if bad {
                return Err(Error::InvalidFxRate {
                    currency,
                    rate: rate.to_string(),
                });
            }
            day.insert(currency, rate);
        }
        self.days.entry(as_of).or_default().extend(day);
        Ok(())
    }

    /// The rate of `currency` against the base for a conversion on `on`, and the date it is from.
    ///
    /// # Errors
    /// [`Error::FxRateMissing`] or [`Error::FxRateStale`].
    pub fn rate(
        &self,
        currency: Currency,
        on: NaiveDate,
        policy: &FxPolicy,
    ) -> Result<(Decimal, NaiveDate)> {
        if currency == self.base {
            return Ok((Decimal::ONE, on));
        }
        let (as_of, rate) = self
            .days
            .range(..=on)
            .rev()
            .find_map(|(day, rates)| rates.get(&currency).map(|r| (*day, *r)))
            .ok_or(Error::FxRateMissing { currency, on })?;
        let age = (on - as_of).num_days();
        if age > i64::from(policy.max_age_days) {
            return Err(Error::FxRateStale {
                currency,
                as_of,
                on,
                max_age_days: policy.max_age_days,
            });
        }
        Ok((rate, as_of))
    }

    /// Converts `money` into `to` at the rates in force on `on`, rounded once with
    /// `policy.rounding`. Converting into the same currency returns the amount unchanged.
    ///
    /// # Errors
    /// [`Error::FxRateMissing`], [`Error::FxRateStale`], [`Error::Overflow`].
    pub fn convert(
        &self,
        money: &Money,
        to: Currency,
        on: NaiveDate,
        policy: FxPolicy,
    ) -> Result<Money> {
        let from = money.currency();
        if from == to {
            return Ok(*money);
        }
        let (rate_from, _) = self.rate(from, on, &policy)?;
        let (rate_to, _) = self.rate(to, on, &policy)?;
        let overflow = Error::Overflow { operation: "fx" };
        // Multiply first, divide once: one rounding of the decimal expression, then one to the
        // minor unit.
        let amount = money
            .amount()
            .checked_mul(rate_to)
            .and_then(|a| a.checked_div(rate_from))
            .ok_or(overflow)?;
        Ok(Money::new(amount, to).round(policy.rounding))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
    }

    fn table() -> FxTable {
        let mut fx = FxTable::new(Currency::EUR);
        fx.insert_day(
            day(20),
            [
                (Currency::USD, Decimal::new(10832, 4)),
                (Currency::JPY, Decimal::new(16250, 2)),
                (Currency::KWD, Decimal::new(3331, 4)),
            ],
        )
        .unwrap();
        fx.insert_day(day(23), [(Currency::USD, Decimal::new(11000, 4))])
            .unwrap();
        fx
    }

    #[test]
    fn uses_the_newest_rate_on_or_before_the_date() {
        let fx = table();
        let p = FxPolicy::default();
        assert_eq!(
            fx.rate(Currency::USD, day(22), &p).unwrap(),
            (Decimal::new(10832, 4), day(20))
        );
        assert_eq!(
            fx.rate(Currency::USD, day(23), &p).unwrap(),
            (Decimal::new(11000, 4), day(23))
        );
        let eur = Money::from_minor(10_000, Currency::EUR);
        assert_eq!(
            fx.convert(&eur, Currency::USD, day(23), p)
                .unwrap()
                .to_minor()
                .unwrap(),
            11_000
        );
    }

    #[test]
    fn triangulates_through_the_base_and_rounds_once() {
        let fx = table();
        // 1.000 KWD → USD: 1 / 0.3331 × 1.0832 = 3.25187.. → 3.25 USD.
        let kwd = Money::from_minor(1000, Currency::KWD);
        let usd = fx
            .convert(&kwd, Currency::USD, day(20), FxPolicy::default())
            .unwrap();
        assert_eq!(usd.to_string(), "3.25 USD");
        // Rounding is the policy's: 0.01 USD → JPY is 1.500.. JPY.
        let cent = Money::from_minor(1, Currency::USD);
        let down = FxPolicy {
            rounding: RoundingMode::Down,
            ..FxPolicy::default()
        };
        assert_eq!(
            fx.convert(&cent, Currency::JPY, day(20), down)
                .unwrap()
                .to_minor()
                .unwrap(),
            1
        );
        let up = FxPolicy {
            rounding: RoundingMode::Up,
            ..FxPolicy::default()
        };
        assert_eq!(
            fx.convert(&cent, Currency::JPY, day(20), up)
                .unwrap()
                .to_minor()
                .unwrap(),
            2
        );
    }

    #[test]
    fn missing_and_stale_rates_are_typed_errors() {
        let fx = table();
        let eur = Money::from_minor(100, Currency::EUR);
        let p = FxPolicy::default();
        assert_eq!(
            fx.convert(&eur, Currency::GBP, day(20), p).unwrap_err(),
            Error::FxRateMissing {
                currency: Currency::GBP,
                on: day(20)
            }
        );
        assert!(matches!(
            fx.convert(&eur, Currency::USD, day(19), p),
            Err(Error::FxRateMissing { .. })
        ));
        // JPY's newest rate is from the 20th; on the 24th it is 4 days old, past the default 3.
        assert_eq!(
            fx.convert(&eur, Currency::JPY, day(24), p).unwrap_err(),
            Error::FxRateStale {
                currency: Currency::JPY,
                as_of: day(20),
                on: day(24),
                max_age_days: 3
            }
        );
        let strict = FxPolicy {
            max_age_days: 0,
            ..p
        };
        assert!(fx.convert(&eur, Currency::USD, day(23), strict).is_ok());
        assert!(matches!(
            fx.convert(&eur, Currency::USD, day(22), strict),
            Err(Error::FxRateStale { .. })
        ));
    }

    #[test]
    fn invalid_rates_change_nothing() {
        let mut fx = table();
        let before = fx.clone();
        for bad in [
            vec![
                (Currency::GBP, Decimal::new(85, 2)),
                (Currency::CHF, Decimal::ZERO),
            ],
            vec![(Currency::GBP, Decimal::new(-1, 0))],
            vec![(Currency::EUR, Decimal::TWO)],
        ] {
            assert!(matches!(
                fx.insert_day(day(21), bad),
                Err(Error::InvalidFxRate { .. })
            ));
            assert_eq!(fx, before);
        }
    }

    #[test]
    fn serde_validates_on_load() {
        let fx = table();
        let json = serde_json::to_string(&fx).unwrap();
        assert_eq!(serde_json::from_str::<FxTable>(&json).unwrap(), fx);
        let bad = r#"{"base":"EUR","days":{"2026-11-20":{"USD":"0"}}}"#;
        assert!(serde_json::from_str::<FxTable>(bad).is_err());
    }
}
