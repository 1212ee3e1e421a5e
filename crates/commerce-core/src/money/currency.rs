//! ISO 4217 currencies and their minor-unit exponents.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Error, Result};

/// An ISO 4217 currency: its three-letter code and the number of decimals of its minor unit
/// (2 for EUR cents, 0 for JPY, 3 for KWD fils).
///
/// Only currencies in the built-in table can be constructed, so a `Currency` value always has a
/// correct exponent. It is `Copy` and compares by code.
///
/// ```
/// use commerce_core::Currency;
/// let jpy: Currency = "jpy".parse()?;
/// assert_eq!(jpy, Currency::JPY);
/// assert_eq!(jpy.exponent(), 0);
/// assert_eq!(Currency::KWD.exponent(), 3);
/// # Ok::<(), commerce_core::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency {
    code: [u8; 3],
    exponent: u8,
}

macro_rules! currencies {
    ($($code:ident = $exp:literal, $name:literal;)*) => {
        impl Currency {
            $(
                #[doc = concat!($name, " (", stringify!($code), "), ", stringify!($exp), " decimals.")]
                pub const $code: Currency = Currency::known(stringify!($code), $exp);
            )*

            /// Every currency this crate knows, ordered by code.
            pub const ALL: &'static [Currency] = &[$(Currency::$code),*];
        }
    };
}

// Exponents from ISO 4217 (the minor unit column). Ordered by code: `from_code` binary-searches.
currencies! {
    AED = 2, "UAE dirham";
    ARS = 2, "Argentine peso";
    AUD = 2, "Australian dollar";
    BGN = 2, "Bulgarian lev";
    BHD = 3, "Bahraini dinar";
    BRL = 2, "Brazilian real";
    CAD = 2, "Canadian dollar";
    CHF = 2, "Swiss franc";
    CLP = 0, "Chilean peso";
    CNY = 2, "Chinese yuan";
    COP = 2, "Colombian peso";
    CZK = 2, "Czech koruna";
    DKK = 2, "Danish krone";
    EGP = 2, "Egyptian pound";
    EUR = 2, "Euro";
    GBP = 2, "Pound sterling";
    HKD = 2, "Hong Kong dollar";
    HUF = 2, "Hungarian forint";
    IDR = 2, "Indonesian rupiah";
    ILS = 2, "Israeli new shekel";
    INR = 2, "Indian rupee";
    ISK = 0, "Icelandic krona";
    JOD = 3, "Jordanian dinar";
    JPY = 0, "Japanese yen";
    KRW = 0, "South Korean won";
    KWD = 3, "Kuwaiti dinar";
    MXN = 2, "Mexican peso";
    MYR = 2, "Malaysian ringgit";
    NGN = 2, "Nigerian naira";
    NOK = 2, "Norwegian krone";
    NZD = 2, "New Zealand dollar";
    OMR = 3, "Omani rial";
    PEN = 2, "Peruvian sol";
    PHP = 2, "Philippine peso";
    PKR = 2, "Pakistani rupee";
    PLN = 2, "Polish zloty";
    QAR = 2, "Qatari riyal";
    RON = 2, "Romanian leu";
    SAR = 2, "Saudi riyal";
    SEK = 2, "Swedish krona";
    SGD = 2, "Singapore dollar";
    THB = 2, "Thai baht";
    TND = 3, "Tunisian dinar";
    TRY = 2, "Turkish lira";
    TWD = 2, "New Taiwan dollar";
    UAH = 2, "Ukrainian hryvnia";
    USD = 2, "United States dollar";
    VND = 0, "Vietnamese dong";
    ZAR = 2, "South African rand";
}

impl Currency {
    const fn known(code: &str, exponent: u8) -> Currency {
        let b = code.as_bytes();
        Currency {
            code: [b[0], b[1], b[2]],
            exponent,
        }
    }

    /// Looks a currency up by its ISO 4217 code, ignoring ASCII case and surrounding whitespace.
    ///
    /// # Errors
    /// [`Error::UnknownCurrency`] when the code is not in the built-in table.
    pub fn from_code(code: &str) -> Result<Currency> {
        let trimmed = code.trim();
        let unknown = || Error::UnknownCurrency {
            code: trimmed
                .chars()
                .take(crate::limits::ERROR_INPUT_CHARS_MAX)
                .collect(),
        };
        let bytes = trimmed.as_bytes();
        if bytes.len() != 3 {
            return Err(unknown());
        }
        let upper = [
            bytes[0].to_ascii_uppercase(),
            bytes[1].to_ascii_uppercase(),
            bytes[2].to_ascii_uppercase(),
        ];
        Currency::ALL
            .binary_search_by(|c| c.code.cmp(&upper))
            .map(|i| Currency::ALL[i])
            .map_err(|_| unknown())
    }

    /// The three-letter ISO 4217 code, upper case.
    pub fn code(&self) -> &str {
        // The table holds ASCII letters only, so this never fails.
        std::str::from_utf8(&self.code).unwrap_or("???")
    }

    /// Number of decimals of the minor unit: 2 for EUR, 0 for JPY, 3 for KWD.
    pub const fn exponent(&self) -> u8 {
        self.exponent
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Currency {
    type Err = Error;
    fn from_str(s: &str) -> Result<Currency> {
        Currency::from_code(s)
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let code = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Currency::from_code(&code).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_unique_so_lookup_finds_every_code() {
        assert!(Currency::ALL.windows(2).all(|w| w[0].code < w[1].code));
        for c in Currency::ALL {
            assert_eq!(Currency::from_code(c.code()).unwrap(), *c);
        }
        assert!(Currency::ALL.len() >= 30);
    }

    #[test]
    fn exponents_of_the_odd_ones() {
        assert_eq!(Currency::JPY.exponent(), 0);
        assert_eq!(Currency::KRW.exponent(), 0);
        assert_eq!(Currency::KWD.exponent(), 3);
        assert_eq!(Currency::BHD.exponent(), 3);
        assert_eq!(Currency::EUR.exponent(), 2);
    }

    #[test]
    fn unknown_codes_are_typed_errors() {
        for bad in ["", "EU", "EURO", "XYZ", "€€€", "12 "] {
            assert!(
                matches!(Currency::from_code(bad), Err(Error::UnknownCurrency { .. })),
                "{bad:?}"
            );
        }
        assert_eq!(Currency::from_code(" usd ").unwrap(), Currency::USD);
    }
}
