//! Tax rates through a port, with a flat-rate-by-country default.

use std::collections::BTreeMap;
use std::fmt::Debug;

use commerce_core::CountryCode;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::cart::LineProduct;
use crate::{Error, Result};

/// Supplies tax rates (0.19 for 19 %) to the pricing function.
///
/// The trait is synchronous because pricing is a pure function: a remote tax service plugs in
/// by loading its rates into an implementation before pricing, not by being called from it.
pub trait TaxCalculator: Send + Sync + Debug {
    /// The rate for an item shipped to `country` (`None` before an address is known).
    fn item_rate(&self, country: Option<CountryCode>, product: &LineProduct) -> Decimal;
    /// The rate for shipping and fees to `country`.
    fn shipping_rate(&self, country: Option<CountryCode>) -> Decimal;
}

/// One rate per destination country, and a fallback for other countries and unknown addresses.
///
/// ```
/// use cart_engine::FlatRateTax;
/// use commerce_core::CountryCode;
/// use rust_decimal::Decimal;
/// let tax = FlatRateTax::new(Decimal::ZERO)?
///     .with_rate(CountryCode::new("DE")?, Decimal::new(19, 2))?
///     .with_rate(CountryCode::new("AT")?, Decimal::new(20, 2))?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlatRateTax {
    rates: BTreeMap<CountryCode, Decimal>,
    fallback: Decimal,
}

fn check_rate(rate: Decimal) -> Result<Decimal> {
    if rate < Decimal::ZERO || rate > Decimal::ONE {
        return Err(Error::InvalidRule {
            path: "tax.rate".into(),
            reason: format!("{rate} is outside 0..=1"),
        });
    }
    Ok(rate)
}

impl FlatRateTax {
    /// A table with only a fallback rate.
    ///
    /// # Errors
    /// [`Error::InvalidRule`] for a rate outside `0..=1`.
    pub fn new(fallback: Decimal) -> Result<FlatRateTax> {
        Ok(FlatRateTax {
            rates: BTreeMap::new(),
            fallback: check_rate(fallback)?,
        })
    }

    /// Adds a country's rate.
    ///
    /// # Errors
    /// [`Error::InvalidRule`] for a rate outside `0..=1`.
    pub fn with_rate(mut self, country: CountryCode, rate: Decimal) -> Result<FlatRateTax> {
        self.rates.insert(country, check_rate(rate)?);
        Ok(self)
    }

    fn rate(&self, country: Option<CountryCode>) -> Decimal {
        country
            .and_then(|c| self.rates.get(&c).copied())
            .unwrap_or(self.fallback)
    }
}

impl TaxCalculator for FlatRateTax {
    fn item_rate(&self, country: Option<CountryCode>, _product: &LineProduct) -> Decimal {
        self.rate(country)
    }

    fn shipping_rate(&self, country: Option<CountryCode>) -> Decimal {
        self.rate(country)
    }
}
