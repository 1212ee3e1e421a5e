//! Settlement in the merchant's currency: an order priced in the shopper's currency records
//! what it is worth in the merchant's, at one quoted FX rate, exactly.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::limits::KEY_LEN_MAX;
use crate::{Currency, Error, FxPolicy, FxTable, Money, Result, RoundingMode, allocate_minor};

/// One FX rate, quoted for a settlement: `1 from = rate to`, from the rates of `as_of`, under
/// an id the merchant's books can refer to.
///
/// ```
/// use chrono::NaiveDate;
/// use commerce_core::{Currency, FxPolicy, FxTable};
/// use rust_decimal::Decimal;
///
/// let day = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
/// let mut fx = FxTable::new(Currency::EUR);
/// fx.insert_day(day, [(Currency::USD, Decimal::new(108, 2))])?;
/// let quote = fx.quote(Currency::USD, Currency::EUR, day, &FxPolicy::default())?;
/// assert_eq!(quote.id, "EUR:2026-11-30:USD-EUR");
/// assert_eq!(quote.convert(&"10.80 USD".parse()?)?.to_string(), "10.00 EUR");
/// # Ok::<(), commerce_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FxQuote {
    /// The rate's id in the merchant's books (1 to [`KEY_LEN_MAX`] bytes).
    pub id: String,
    /// The currency converted from (the order's).
    pub from: Currency,
    /// The currency converted into (the merchant's).
    pub to: Currency,
    /// Units of `to` per unit of `from`; positive.
    pub rate: Decimal,
    /// The day the rate is from.
    pub as_of: NaiveDate,
}

impl FxQuote {
    /// Checks the quote.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the field: an empty or over-long id, a rate that is not
    /// positive, a quote into the currency it converts from.
    pub fn validate(&self) -> Result<()> {
        if self.id.trim().is_empty() || self.id.len() > KEY_LEN_MAX {
            return Err(Error::invalid(
                "settlement.id",
                format!("1 to {KEY_LEN_MAX} bytes"),
            ));
        }
        if self.rate <= Decimal::ZERO {
            return Err(Error::invalid("settlement.rate", "must be positive"));
        }
        if self.from == self.to {
            return Err(Error::invalid(
                "settlement.to",
                "settles in the currency it is priced in",
            ));
        }
        Ok(())
    }

    /// `money` (in `from`) in `to`, rounded half-even to `to`'s minor unit.
    ///
    /// # Errors
    /// [`Error::CurrencyMismatch`] for money in another currency; [`Error::Overflow`].
    pub fn convert(&self, money: &Money) -> Result<Money> {
        if money.currency() != self.from {
            return Err(Error::CurrencyMismatch {
                left: money.currency(),
                right: self.from,
            });
        }
        let amount = money
            .amount()
            .checked_mul(self.rate)
            .ok_or(Error::Overflow { operation: "fx" })?;
        Ok(Money::new(amount, self.to).round(RoundingMode::HalfEven))
    }
}

impl FxTable {
    /// A quote for converting `from` into `to` on `on`, from the table's rates (triangulated
    /// through the base), with the id `{base}:{as_of}:{from}-{to}` where `as_of` is the older
    /// of the two rates' days.
    ///
    /// # Errors
    /// [`Error::FxRateMissing`], [`Error::FxRateStale`], [`Error::Overflow`].
    pub fn quote(
        &self,
        from: Currency,
        to: Currency,
        on: NaiveDate,
        policy: &FxPolicy,
    ) -> Result<FxQuote> {
        let (rate_from, day_from) = self.rate(from, on, policy)?;
        let (rate_to, day_to) = self.rate(to, on, policy)?;
        let rate = rate_to
            .checked_div(rate_from)
            .ok_or(Error::Overflow { operation: "fx" })?;
        let as_of = day_from.min(day_to);
        Ok(FxQuote {
            id: format!("{}:{as_of}:{from}-{to}", self.base()),
            from,
            to,
            rate,
            as_of,
        })
    }
}

/// An order's amounts in the merchant's currency: the grand total converted once at the
/// quote's rate, and that total shared exactly over the order's parts (each line's total,
/// shipping, fees and, when it is charged on top, tax) by their amounts in the order's
/// currency, so the parts sum to the total in both currencies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settlement {
    /// The rate used.
    pub quote: FxQuote,
    /// The grand total in the merchant's currency.
    pub grand_total: Money,
    /// Each line's total (after its discount), in line order.
    pub lines: Vec<Money>,
    /// Shipping.
    pub shipping: Money,
    /// Fees.
    pub fees: Money,
    /// Tax: its share of the grand total when charged on top; when prices include it, the tax
    /// inside the lines, converted on its own (for the books, not added again).
    pub tax: Money,
}

impl Settlement {
    /// Settles an order whose parts are `lines` (each line's total), `shipping`, `fees` and
    /// `tax` (charged on top unless `tax_included`), totalling `grand_total`.
    pub(crate) fn new(
        quote: FxQuote,
        grand_total: &Money,
        lines: &[Money],
        (shipping, fees, tax): (&Money, &Money, &Money),
        tax_included: bool,
    ) -> Result<Settlement> {
        quote.validate()?;
        let settled = quote.convert(grand_total)?;
        let to = quote.to;
        let minor = |m: &Money| m.to_minor().map(i128::from);
        let mut weights: Vec<i128> = lines.iter().map(minor).collect::<Result<_>>()?;
        weights.push(minor(shipping)?);
        weights.push(minor(fees)?);
        if !tax_included {
            weights.push(minor(tax)?);
        }
        let mut parts = allocate_minor(minor(&settled)?, &weights)?
            .into_iter()
            .map(|p| i64::try_from(p).map(|p| Money::from_minor(p, to)))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|_| Error::Overflow {
                operation: "settlement",
            })?;
        let tax = if tax_included {
            quote.convert(tax)?
        } else {
            parts.pop().unwrap_or_else(|| Money::zero(to))
        };
        let fees = parts.pop().unwrap_or_else(|| Money::zero(to));
        let shipping = parts.pop().unwrap_or_else(|| Money::zero(to));
        Ok(Settlement {
            quote,
            grand_total: settled,
            lines: parts,
            shipping,
            fees,
            tax,
        })
    }

    /// The merchant-currency amount of `amount` (in the order's currency) moved on top of
    /// `before` already moved (captured, or refunded), out of `grand_total`: the difference of
    /// the running totals, each converted at the settlement's own proportion, so amounts that
    /// add up to the grand total settle to exactly the settled grand total whatever their
    /// split.
    ///
    /// # Errors
    /// [`Error::Overflow`]; [`Error::Invalid`] when `before + amount` exceeds the grand total.
    pub fn share(&self, grand_total: &Money, before: &Money, amount: &Money) -> Result<Money> {
        let minor = |m: &Money| m.to_minor().map(i128::from);
        let (g, b, a) = (minor(grand_total)?, minor(before)?, minor(amount)?);
        if b < 0 || a < 0 || b + a > g {
            return Err(Error::invalid(
                "settlement.amount",
                "more than the order's grand total",
            ));
        }
        let s = minor(&self.grand_total)?;
        // Running total in the merchant's currency after `x` of `g` moved, half-even.
        let running = |x: i128| -> Result<i128> {
            if g == 0 {
                return Ok(0);
            }
            let num = x.checked_mul(s).ok_or(Error::Overflow {
                operation: "settlement",
            })?;
            let (q, r) = (num / g, num % g);
            let twice = 2 * r;
            Ok(if twice > g || (twice == g && q % 2 != 0) {
                q + 1
            } else {
                q
            })
        };
        let share = running(b + a)? - running(b)?;
        i64::try_from(share)
            .map(|m| Money::from_minor(m, self.quote.to))
            .map_err(|_| Error::Overflow {
                operation: "settlement",
            })
    }
}
