//! Locales, countries and per-locale price tables with a documented resolution order.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::NaiveDate;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::limits::PRICE_TABLE_ENTRIES_MAX;
use crate::{Currency, Error, FxPolicy, FxTable, Money, Result};

/// An ISO 3166-1 alpha-2 country code, upper case (`DE`, `CH`). Only the form is checked.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CountryCode([u8; 2]);

impl CountryCode {
    /// Parses two ASCII letters, in any case.
    ///
    /// # Errors
    /// [`Error::Parse`] for anything else.
    pub fn new(text: &str) -> Result<CountryCode> {
        match text.as_bytes() {
            [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => Ok(CountryCode([
                a.to_ascii_uppercase(),
                b.to_ascii_uppercase(),
            ])),
            _ => Err(Error::parse("country", text, "expected two ASCII letters")),
        }
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("??")
    }
}

/// A locale: a language and an optional country, written `de` or `de-CH`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Locale {
    language: [u8; 3],
    language_len: u8,
    country: Option<CountryCode>,
}

impl Locale {
    /// Parses `ll`, `lll`, `ll-CC` or `ll_CC` (case-insensitive; stored as `ll-CC`).
    ///
    /// # Errors
    /// [`Error::Parse`] for anything else.
    pub fn new(text: &str) -> Result<Locale> {
        let bad = || {
            Error::parse(
                "locale",
                text,
                "expected a language like \"de\" or \"de-CH\"",
            )
        };
        let (lang, country) = match text.split_once(['-', '_']) {
            Some((l, c)) => (l, Some(CountryCode::new(c).map_err(|_| bad())?)),
            None => (text, None),
        };
        let bytes = lang.as_bytes();
        if !(2..=3).contains(&bytes.len()) || !bytes.iter().all(u8::is_ascii_alphabetic) {
            return Err(bad());
        }
        let mut language = [0u8; 3];
        for (slot, b) in language.iter_mut().zip(bytes) {
            *slot = b.to_ascii_lowercase();
        }
        Ok(Locale {
            language,
            language_len: if bytes.len() == 3 { 3 } else { 2 },
            country,
        })
    }

    /// The language part (`de`).
    pub fn language(&self) -> &str {
        std::str::from_utf8(&self.language[..usize::from(self.language_len)]).unwrap_or("??")
    }

    /// The country part, if any (`CH`).
    pub fn country(&self) -> Option<CountryCode> {
        self.country
    }

    /// The same language without a country (`de-CH` → `de`).
    pub fn language_only(&self) -> Locale {
        Locale {
            country: None,
            ..*self
        }
    }
}

/// Where a price applies. Ordered from most to least specific.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PriceScope {
    /// One locale (`de-CH`, or a language alone: `de`).
    Locale(Locale),
    /// Every locale of one country.
    Country(CountryCode),
    /// Everywhere the currency is used.
    Default,
}

/// A product's prices per currency and scope.
///
/// # Resolution order
/// [`PriceTable::resolve`] for a currency and an optional locale `ll-CC` takes the first price
/// found, from most to least specific:
///
/// 1. the price for exactly `ll-CC` in that currency;
/// 2. the price for country `CC` in that currency;
/// 3. the price for language `ll` alone in that currency;
/// 4. the default price in that currency;
/// 5. only if the caller passed FX rates: the table's default price in its **base currency**,
///    converted at those rates with the caller's policy (a price set by the merchant in the
///    currency asked for always wins over a conversion);
/// 6. otherwise [`Error::PriceNotFound`].
///
/// ```
/// use commerce_core::{Currency, Locale, Money, PriceScope, PriceTable};
///
/// let mut prices = PriceTable::new(Currency::EUR);
/// prices.set(PriceScope::Default, "10.00 EUR".parse()?)?;
/// prices.set(PriceScope::Default, "11.00 CHF".parse()?)?;
/// prices.set(PriceScope::Locale(Locale::new("fr-CH")?), "10.50 CHF".parse()?)?;
///
/// let de_ch = Locale::new("de-CH")?;
/// let fr_ch = Locale::new("fr-CH")?;
/// assert_eq!(prices.resolve(Currency::CHF, Some(&fr_ch), None)?.to_string(), "10.50 CHF");
/// assert_eq!(prices.resolve(Currency::CHF, Some(&de_ch), None)?.to_string(), "11.00 CHF");
/// assert!(prices.resolve(Currency::USD, None, None).is_err());
/// # Ok::<(), commerce_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "PriceTableDoc", into = "PriceTableDoc")]
pub struct PriceTable {
    base: Currency,
    entries: BTreeMap<(Currency, PriceScope), Money>,
}

/// FX inputs for [`PriceTable::resolve`]'s last resort.
#[derive(Debug, Clone, Copy)]
pub struct FxFallback<'a> {
    /// The rates.
    pub table: &'a FxTable,
    /// The date to convert on.
    pub on: NaiveDate,
    /// Staleness and rounding.
    pub policy: FxPolicy,
}

impl PriceTable {
    /// An empty table whose base currency (the one FX conversion starts from) is `base`.
    pub fn new(base: Currency) -> PriceTable {
        PriceTable {
            base,
            entries: BTreeMap::new(),
        }
    }

    /// A table holding one default price, whose currency becomes the base.
    pub fn single(price: Money) -> PriceTable {
        let mut table = PriceTable::new(price.currency());
        table
            .entries
            .insert((price.currency(), PriceScope::Default), price);
        table
    }

    /// The base currency.
    pub fn base(&self) -> Currency {
        self.base
    }

    /// Sets the price for `scope` in the price's own currency, replacing any earlier one.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a negative price, one not in minor units, or a full table.
    pub fn set(&mut self, scope: PriceScope, price: Money) -> Result<()> {
        if price.is_negative() {
            return Err(Error::invalid("price", "negative"));
        }
        if !price.is_rounded() {
            return Err(Error::invalid("price", "not in minor units"));
        }
        let key = (price.currency(), scope);
        if !self.entries.contains_key(&key) && self.entries.len() >= PRICE_TABLE_ENTRIES_MAX {
            return Err(Error::invalid("price", "price table full"));
        }
        self.entries.insert(key, price);
        Ok(())
    }

    /// Every price, most specific first within each currency.
    pub fn iter(&self) -> impl Iterator<Item = (PriceScope, &Money)> {
        self.entries.iter().map(|((_, scope), m)| (*scope, m))
    }

    /// True when the table holds no price.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The price for `currency` and `locale`, by the resolution order in the type's docs.
    ///
    /// # Errors
    /// [`Error::PriceNotFound`]; with `fx`, also the conversion's errors.
    pub fn resolve(
        &self,
        currency: Currency,
        locale: Option<&Locale>,
        fx: Option<FxFallback<'_>>,
    ) -> Result<Money> {
        let get = |scope| self.entries.get(&(currency, scope)).copied();
        let found = locale
            .and_then(|l| {
                get(PriceScope::Locale(*l))
                    .or_else(|| l.country().and_then(|c| get(PriceScope::Country(c))))
                    .or_else(|| get(PriceScope::Locale(l.language_only())))
            })
            .or_else(|| get(PriceScope::Default));
        if let Some(price) = found {
            return Ok(price);
        }
        if let Some(fx) = fx
            && let Some(base_price) = self.entries.get(&(self.base, PriceScope::Default))
        {
            return fx.table.convert(base_price, currency, fx.on, fx.policy);
        }
        Err(Error::PriceNotFound {
            currency,
            locale: locale.map_or_else(|| "-".to_owned(), ToString::to_string),
        })
    }
}

#[derive(Serialize, Deserialize)]
struct PriceTableDoc {
    base: Currency,
    prices: Vec<PriceEntryDoc>,
}

#[derive(Serialize, Deserialize)]
struct PriceEntryDoc {
    scope: PriceScope,
    price: Money,
}

impl TryFrom<PriceTableDoc> for PriceTable {
    type Error = Error;
    fn try_from(doc: PriceTableDoc) -> Result<PriceTable> {
        let mut table = PriceTable::new(doc.base);
        for e in doc.prices {
            table.set(e.scope, e.price)?;
        }
        Ok(table)
    }
}

impl From<PriceTable> for PriceTableDoc {
    fn from(t: PriceTable) -> PriceTableDoc {
        PriceTableDoc {
            base: t.base,
            prices: t
                .entries
                .into_iter()
                .map(|((_, scope), price)| PriceEntryDoc { scope, price })
                .collect(),
        }
    }
}

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
impl fmt::Debug for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
impl fmt::Display for Locale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.country {
            Some(c) => write!(f, "{}-{}", self.language(), c),
            None => f.write_str(self.language()),
        }
    }
}
impl fmt::Debug for Locale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
impl FromStr for Locale {
    type Err = Error;
    fn from_str(s: &str) -> Result<Locale> {
        Locale::new(s)
    }
}
impl FromStr for CountryCode {
    type Err = Error;
    fn from_str(s: &str) -> Result<CountryCode> {
        CountryCode::new(s)
    }
}

/// `"de-CH"` for a locale, `"CH"` for a country, `"*"` for the default.
impl fmt::Display for PriceScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PriceScope::Locale(l) => fmt::Display::fmt(l, f),
            PriceScope::Country(c) => fmt::Display::fmt(c, f),
            PriceScope::Default => f.write_str("*"),
        }
    }
}

impl FromStr for PriceScope {
    type Err = Error;
    fn from_str(s: &str) -> Result<PriceScope> {
        if s == "*" {
            Ok(PriceScope::Default)
        } else if s.len() == 2 && s.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(PriceScope::Country(CountryCode::new(s)?))
        } else {
            Ok(PriceScope::Locale(Locale::new(s)?))
        }
    }
}

macro_rules! serde_via_str {
    ($($t:ty),*) => {$(
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}
serde_via_str!(CountryCode, Locale, PriceScope);

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> Money {
        s.parse().unwrap()
    }

    fn table() -> PriceTable {
        let mut t = PriceTable::new(Currency::EUR);
        t.set(PriceScope::Default, m("10.00 EUR")).unwrap();
        t.set(
            PriceScope::Country(CountryCode::new("AT").unwrap()),
            m("10.50 EUR"),
        )
        .unwrap();
        t.set(
            PriceScope::Locale(Locale::new("de").unwrap()),
            m("10.20 EUR"),
        )
        .unwrap();
        t.set(
            PriceScope::Locale(Locale::new("de-AT").unwrap()),
            m("10.90 EUR"),
        )
        .unwrap();
        t
    }

    #[test]
    fn resolution_goes_from_most_to_least_specific() {
        let t = table();
        let r = |l: Option<&str>| {
            let loc = l.map(|l| Locale::new(l).unwrap());
            t.resolve(Currency::EUR, loc.as_ref(), None)
                .unwrap()
                .to_string()
        };
        assert_eq!(r(Some("de-AT")), "10.90 EUR"); // 1. exact locale
        assert_eq!(r(Some("en-AT")), "10.50 EUR"); // 2. country
        assert_eq!(r(Some("de-DE")), "10.20 EUR"); // 3. language
        assert_eq!(r(Some("fr-FR")), "10.00 EUR"); // 4. default
        assert_eq!(r(None), "10.00 EUR");
    }

    #[test]
    fn fx_is_the_last_resort_and_only_when_asked() {
        let t = table();
        let day = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
        let mut fx = FxTable::new(Currency::EUR);
        fx.insert_day(day, [(Currency::USD, rust_decimal::Decimal::new(11, 1))])
            .unwrap();
        let fallback = FxFallback {
            table: &fx,
            on: day,
            policy: FxPolicy::default(),
        };
        assert_eq!(
            t.resolve(Currency::USD, None, None).unwrap_err(),
            Error::PriceNotFound {
                currency: Currency::USD,
                locale: "-".into()
            }
        );
        assert_eq!(
            t.resolve(Currency::USD, None, Some(fallback))
                .unwrap()
                .to_string(),
            "11.00 USD"
        );
        // A merchant's own price in the currency beats conversion.
        let mut t2 = t.clone();
        t2.set(PriceScope::Default, m("9.99 USD")).unwrap();
        assert_eq!(
            t2.resolve(Currency::USD, None, Some(fallback))
                .unwrap()
                .to_string(),
            "9.99 USD"
        );
    }

    #[test]
    fn bad_prices_and_locales_are_refused() {
        let mut t = table();
        let before = t.clone();
        assert!(t.set(PriceScope::Default, m("-1.00 EUR")).is_err());
        let unrounded = Money::new(rust_decimal::Decimal::new(1001, 3), Currency::EUR);
        assert!(t.set(PriceScope::Default, unrounded).is_err());
        assert_eq!(t, before);
        for bad in ["", "d", "deutsch", "de-", "de-CHE", "1e", "de-C1"] {
            assert!(
                matches!(Locale::new(bad), Err(Error::Parse { .. })),
                "{bad:?}"
            );
        }
        assert_eq!(Locale::new("DE_ch").unwrap().to_string(), "de-CH");
    }

    #[test]
    fn serde_round_trips_and_validates() {
        let t = table();
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<PriceTable>(&json).unwrap(), t);
        let bad =
            r#"{"base":"EUR","prices":[{"scope":"*","price":{"amount":"-1","currency":"EUR"}}]}"#;
        assert!(serde_json::from_str::<PriceTable>(bad).is_err());
    }
}
