use rust_decimal::Decimal;

use super::*;

#[test]
fn formats_with_the_currency_exponent() {
    assert_eq!(
        Money::from_minor(1234, Currency::EUR).to_string(),
        "12.34 EUR"
    );
    assert_eq!(
        Money::from_minor(1234, Currency::JPY).to_string(),
        "1234 JPY"
    );
    assert_eq!(
        Money::from_minor(1234, Currency::KWD).to_string(),
        "1.234 KWD"
    );
    assert_eq!(
        Money::new(Decimal::new(125, 1), Currency::EUR).to_string(),
        "12.50 EUR"
    );
    assert_eq!(Money::zero(Currency::USD).to_string(), "0.00 USD");
    assert_eq!(
        Money::from_minor(-5, Currency::EUR).to_string(),
        "-0.05 EUR"
    );
    // Unrounded amounts show every decimal they have.
    assert_eq!(
        Money::new(Decimal::new(1255, 3), Currency::EUR).to_string(),
        "1.255 EUR"
    );
}

#[test]
fn parses_what_it_formats() {
    for text in [
        "12.34 EUR",
        "1234 JPY",
        "1.234 KWD",
        "-0.05 EUR",
        "0.00 USD",
    ] {
        let m: Money = text.parse().unwrap();
        assert_eq!(m.to_string(), text);
    }
    assert_eq!(
        "12.3 eur".parse::<Money>().unwrap(),
        Money::from_minor(1230, Currency::EUR)
    );
}

#[test]
fn bad_text_is_a_typed_parse_error() {
    for bad in [
        "",
        "12.34",
        "EUR 12.34",
        "12.34  EUR",
        "+1 EUR",
        "1e3 EUR",
        "1,000.00 EUR",
        ".5 EUR",
        "5. EUR",
        "- EUR",
        "--1 EUR",
        "1.2.3 EUR",
        " 1 EUR",
        "1_000 EUR",
    ] {
        let err = bad.parse::<Money>().unwrap_err();
        assert!(
            matches!(err, Error::Parse { .. } | Error::UnknownCurrency { .. }),
            "{bad:?} gave {err:?}"
        );
    }
    assert!(matches!(
        "12.34 XXX".parse::<Money>(),
        Err(Error::UnknownCurrency { .. })
    ));
    let long = format!("{} EUR", "9".repeat(100));
    assert!(matches!(long.parse::<Money>(), Err(Error::Parse { .. })));
    let big = format!("{} EUR", "9".repeat(40));
    assert!(matches!(big.parse::<Money>(), Err(Error::Parse { .. })));
}

#[test]
fn too_many_decimals_for_the_currency_is_refused() {
    assert!(matches!(
        "12.345 EUR".parse::<Money>(),
        Err(Error::NotInMinorUnits { .. })
    ));
    assert!(matches!(
        "1.5 JPY".parse::<Money>(),
        Err(Error::NotInMinorUnits { .. })
    ));
    // Trailing zeros are not extra precision.
    assert_eq!(
        "12.3400 EUR".parse::<Money>().unwrap().to_minor().unwrap(),
        1234
    );
}

#[test]
fn arithmetic_refuses_to_mix_currencies() {
    let eur = Money::from_minor(100, Currency::EUR);
    let usd = Money::from_minor(100, Currency::USD);
    let mismatch = Error::CurrencyMismatch {
        left: Currency::EUR,
        right: Currency::USD,
    };
    assert_eq!(eur.checked_add(&usd).unwrap_err(), mismatch);
    assert_eq!(eur.checked_sub(&usd).unwrap_err(), mismatch);
    assert_eq!(eur.max(&usd).unwrap_err(), mismatch);
    assert_eq!(eur.min(&usd).unwrap_err(), mismatch);
    assert_eq!(eur.checked_cmp(&usd).unwrap_err(), mismatch);
    assert!(Money::sum(Currency::EUR, &[eur, usd]).is_err());
}

#[test]
fn overflow_is_an_error_not_a_wrap() {
    let max = Money::new(Decimal::MAX, Currency::EUR);
    let one = Money::from_minor(100, Currency::EUR);
    assert!(matches!(max.checked_add(&one), Err(Error::Overflow { .. })));
    assert!(matches!(
        max.negated().checked_sub(&one),
        Err(Error::Overflow { .. })
    ));
    assert!(matches!(
        max.checked_mul(Decimal::TWO),
        Err(Error::Overflow { .. })
    ));
    assert!(matches!(
        one.checked_div(Decimal::ZERO),
        Err(Error::DivisionByZero { .. })
    ));
    assert!(matches!(
        Money::new(Decimal::new(i64::MAX, 0), Currency::EUR).to_minor(),
        Err(Error::Overflow { .. })
    ));
}

#[test]
fn to_minor_requires_a_rounded_amount() {
    let m = Money::new(Decimal::new(1005, 3), Currency::EUR);
    assert!(matches!(m.to_minor(), Err(Error::NotInMinorUnits { .. })));
    assert_eq!(m.round(RoundingMode::HalfEven).to_minor().unwrap(), 100);
    assert_eq!(m.round(RoundingMode::HalfUp).to_minor().unwrap(), 101);
}

#[test]
fn rounding_table_from_the_docs() {
    let cases: [(i64, [i64; 5]); 5] = [
        (2345, [234, 235, 234, 235, 234]),
        (2355, [236, 236, 235, 236, 235]),
        (-2345, [-234, -235, -234, -235, -234]),
        (2341, [234, 234, 234, 235, 234]),
        (2349, [235, 235, 235, 235, 234]),
    ];
    for (milli, expected) in cases {
        let m = Money::new(Decimal::new(milli, 3), Currency::EUR);
        for (mode, want) in RoundingMode::ALL.iter().zip(expected) {
            assert_eq!(m.round(*mode).to_minor().unwrap(), want, "{m} {mode:?}");
        }
    }
}

#[test]
fn serde_keeps_the_amount_exact() {
    let m = Money::new(Decimal::new(1, 28), Currency::EUR);
    let json = serde_json::to_string(&m).unwrap();
    assert_eq!(
        json,
        r#"{"amount":"0.0000000000000000000000000001","currency":"EUR"}"#
    );
    assert_eq!(serde_json::from_str::<Money>(&json).unwrap(), m);
    assert!(serde_json::from_str::<Money>(r#"{"amount":"1","currency":"ZZZ"}"#).is_err());
}

#[test]
fn equal_amounts_hash_equal_whatever_their_scale() {
    use std::collections::HashSet;
    let a = Money::new(Decimal::new(125, 1), Currency::EUR);
    let b = Money::from_minor(1250, Currency::EUR);
    assert_eq!(a, b);
    assert_eq!(HashSet::from([a, b]).len(), 1);
}

#[test]
fn error_messages_are_lower_case_without_a_trailing_period() {
    let errors = [
        Money::from_minor(1, Currency::EUR)
            .checked_add(&Money::from_minor(1, Currency::USD))
            .unwrap_err(),
        "x".parse::<Money>().unwrap_err(),
        "1.555 EUR".parse::<Money>().unwrap_err(),
        "1 QQQ".parse::<Money>().unwrap_err(),
        allocate(&Money::from_minor(1, Currency::EUR), &[]).unwrap_err(),
        crate::Sku::new("").unwrap_err(),
    ];
    for e in errors {
        let text = e.to_string();
        assert!(
            text.chars().next().is_some_and(char::is_lowercase),
            "{text}"
        );
        assert!(!text.ends_with('.'), "{text}");
    }
}
