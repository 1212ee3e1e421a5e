//! Allocation over arbitrary weights either refuses with a typed error or sums exactly.
#![no_main]

use commerce_core::{Currency, Money, allocate};
use libfuzzer_sys::fuzz_target;
use rust_decimal::Decimal;

fuzz_target!(|input: (i64, u8, Vec<(u64, u8)>)| {
    let (minor, currency, weights) = input;
    let currency = Currency::ALL[usize::from(currency) % Currency::ALL.len()];
    let total = Money::from_minor(minor, currency);
    let weights: Vec<Decimal> = weights
        .into_iter()
        .map(|(m, s)| Decimal::new(i64::try_from(m >> 1).unwrap_or(0), u32::from(s % 29)))
        .collect();
    if let Ok(parts) = allocate(&total, &weights) {
        assert_eq!(parts.len(), weights.len());
        assert_eq!(Money::sum(currency, &parts).expect("parts sum"), total);
    }
});
