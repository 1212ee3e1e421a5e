//! Exact allocation of an amount over weights, by largest remainder.

use rust_decimal::Decimal;

use super::Money;
use crate::limits::ALLOCATION_WEIGHTS_MAX;
use crate::{Error, Result};

/// Splits `total` over `weights` in minor units so the parts sum **exactly** to `total`.
///
/// Semantics (each one tested):
/// - Each part is the floor of its exact share `total × wᵢ / Σw` in minor units; the minor
///   units left over go, one each, to the parts with the largest remainders. Equal remainders go
///   to the **earlier** weight, so the result is deterministic and independent of hashing or
///   thread timing. Every part is therefore within one minor unit of its exact share.
/// - A zero weight receives nothing, unless **all** weights are zero: then the amount is split
///   evenly, as if every weight were 1 (an order discount over lines that all cost 0 still has
///   to land somewhere).
/// - A negative total is split as its absolute value and every part negated, so a refund splits
///   as the mirror image of the charge.
/// - A single weight receives the whole total.
/// - The arithmetic is exact: weights are scaled to integers and the shares computed in `i128`.
///   Weights too precise for that at this total (a quotient like x/1.19 carries 28 digits) are
///   first rounded to 12, then 6, 3 or 0 decimals; the parts still sum exactly to `total`.
///
/// ```
/// use commerce_core::{Currency, Money, allocate};
/// use rust_decimal::Decimal;
///
/// // 10.00 EUR over three equal lines: 3.34 + 3.33 + 3.33 (the tie goes to the first line).
/// let total = Money::from_minor(1000, Currency::EUR);
/// let parts = allocate(&total, &[Decimal::ONE; 3])?;
/// let cents: Vec<i64> = parts.iter().map(|p| p.to_minor()).collect::<Result<_, _>>()?;
/// assert_eq!(cents, [334, 333, 333]);
/// # Ok::<(), commerce_core::Error>(())
/// ```
///
/// # Errors
/// - [`Error::InvalidWeights`] for no weights, more than [`ALLOCATION_WEIGHTS_MAX`], or a
///   negative weight;
/// - [`Error::NotInMinorUnits`] if `total` is not rounded to its minor unit;
/// - [`Error::Overflow`] if `total × weight` does not fit 127 bits even with weights rounded
///   to whole numbers (totals and weights of everyday commerce are many orders of magnitude
///   away).
pub fn allocate(total: &Money, weights: &[Decimal]) -> Result<Vec<Money>> {
    let total_minor = total.minor_units()?;
    let parts = allocate_weighted(total_minor, weights)?;
    let exponent = u32::from(total.currency().exponent());
    let result: Vec<Money> = parts
        .into_iter()
        .map(|minor| {
            Decimal::try_from_i128_with_scale(minor, exponent)
                .map(|amount| Money::new(amount, total.currency()))
                .map_err(|_| Error::Overflow {
                    operation: "allocate",
                })
        })
        .collect::<Result<_>>()?;
    debug_assert_eq!(
        Money::sum(total.currency(), &result)
            .ok()
            .map(|s| s.amount()),
        Some(total.amount())
    );
    Ok(result)
}

/// [`allocate`] of `total` minor units over decimal weights, returning minor units. Weights
/// too precise for exact integer arithmetic at this total are rounded (to 12, then 6, 3, 0
/// decimals) rather than refused; the parts always sum exactly to `total`.
///
/// # Errors
/// As [`allocate`].
pub fn allocate_weighted(total: i128, weights: &[Decimal]) -> Result<Vec<i128>> {
    if weights.iter().any(|w| w.is_sign_negative() && !w.is_zero()) {
        return Err(Error::InvalidWeights {
            reason: "negative weight",
        });
    }
    // Exact ratios first. Weights that carry more precision than `total × weight` can hold in
    // 127 bits (a quotient like x/1.19 has 28 digits) are then rounded to fewer decimals: the
    // shares move by a vanishing fraction of a minor unit, and the parts still sum exactly.
    let mut last = Error::Overflow {
        operation: "allocate",
    };
    for decimals in [None, Some(12), Some(6), Some(3), Some(0)] {
        let rounded: Vec<Decimal>;
        let candidate = match decimals {
            None => weights,
            Some(dp) => {
                rounded = weights.iter().map(|w| w.round_dp(dp)).collect();
                &rounded
            }
        };
        let Some(ints) = integer_weights(candidate) else {
            continue;
        };
        match allocate_minor(total, &ints) {
            Err(e @ Error::Overflow { .. }) => last = e,
            other => return other,
        }
    }
    Err(last)
}

/// [`allocate`] on integers: splits `total` minor units over non-negative integer `weights`
/// with the same semantics (largest remainder, ties to the earlier weight, all-zero weights
/// split evenly, a negative total mirrored). The parts sum exactly to `total`.
///
/// ```
/// assert_eq!(commerce_core::allocate_minor(100, &[1, 1, 1])?, [34, 33, 33]);
/// assert_eq!(commerce_core::allocate_minor(-5, &[0, 2, 3])?, [0, -2, -3]);
/// # Ok::<(), commerce_core::Error>(())
/// ```
///
/// # Errors
/// [`Error::InvalidWeights`] for no weights, too many, or a negative one; [`Error::Overflow`]
/// if `|total| × weight` does not fit 127 bits.
pub fn allocate_minor(total: i128, weights: &[i128]) -> Result<Vec<i128>> {
    if weights.is_empty() {
        return Err(Error::InvalidWeights {
            reason: "no weights",
        });
    }
    if weights.len() > ALLOCATION_WEIGHTS_MAX {
        return Err(Error::InvalidWeights {
            reason: "too many weights",
        });
    }
    if weights.iter().any(|w| *w < 0) {
        return Err(Error::InvalidWeights {
            reason: "negative weight",
        });
    }
    let overflow = Error::Overflow {
        operation: "allocate",
    };
    let ints = weights;
    let mut sum: i128 = ints
        .iter()
        .try_fold(0i128, |acc, w| acc.checked_add(*w))
        .ok_or_else(|| overflow.clone())?;
    let even = sum == 0;
    if even {
        sum = i128::try_from(ints.len()).map_err(|_| overflow.clone())?;
    }

    let magnitude = total.checked_abs().ok_or_else(|| overflow.clone())?;
    if let Some(parts) = allocate_narrow(magnitude, ints, even, sum) {
        return Ok(if total < 0 {
            parts.into_iter().map(|p| -p).collect()
        } else {
            parts
        });
    }
    let mut parts = allocate_wide(magnitude, ints, even, sum)?;
    if total < 0 {
        for p in &mut parts {
            *p = -*p;
        }
    }
    Ok(parts)
}

/// [`allocate_minor`] of a non-negative `magnitude` in 128-bit arithmetic.
fn allocate_wide(magnitude: i128, ints: &[i128], even: bool, sum: i128) -> Result<Vec<i128>> {
    let overflow = Error::Overflow {
        operation: "allocate",
    };
    let mut parts = Vec::with_capacity(ints.len());
    let mut remainders = Vec::with_capacity(ints.len());
    let mut assigned: i128 = 0;
    for (index, weight) in ints.iter().enumerate() {
        let weight = if even { 1 } else { *weight };
        let numerator = magnitude
            .checked_mul(weight)
            .ok_or_else(|| overflow.clone())?;
        let (floor, remainder) = (numerator / sum, numerator % sum);
        parts.push(floor);
        remainders.push((remainder, index));
        assigned += floor; // Σ floor ≤ magnitude: cannot overflow.
    }
    let leftover = magnitude - assigned;
    debug_assert!(leftover >= 0 && leftover < sum.max(1));

    // Largest remainder first; equal remainders in index order. Only the first `leftover`
    // places matter, so select them instead of sorting everything.
    let leftover = usize::try_from(leftover).map_err(|_| overflow.clone())?;
    if leftover > 0 {
        let by_remainder = |a: &(i128, usize), b: &(i128, usize)| b.0.cmp(&a.0).then(a.1.cmp(&b.1));
        if leftover < remainders.len() {
            remainders.select_nth_unstable_by(leftover - 1, by_remainder);
        }
        for &(_, index) in remainders.iter().take(leftover) {
            parts[index] += 1;
        }
    }
    Ok(parts)
}

/// [`allocate_minor`] when the total, the weights and every product fit 64 bits (nearly every
/// real allocation): the same result, with 64-bit division and remainders. `None` otherwise.
fn allocate_narrow(magnitude: i128, weights: &[i128], even: bool, sum: i128) -> Option<Vec<i128>> {
    let m = u64::try_from(magnitude).ok()?;
    let s = u64::try_from(sum).ok()?;
    let weight_max = if even {
        1
    } else {
        u64::try_from(weights.iter().copied().max().unwrap_or(0)).ok()?
    };
    m.checked_mul(weight_max)?;
    let index = |i: usize| u32::try_from(i).ok();
    index(weights.len())?;
    let mut parts = Vec::with_capacity(weights.len());
    // (remainder, index), ordered by largest remainder, then lowest index.
    let mut remainders: Vec<(u64, u32)> = Vec::with_capacity(weights.len());
    let mut assigned: u64 = 0;
    for (i, w) in weights.iter().enumerate() {
        let w = if even { 1 } else { u64::try_from(*w).ok()? };
        let numerator = m * w;
        let floor = numerator / s;
        parts.push(i128::from(floor));
        remainders.push((numerator - floor * s, index(i)?));
        assigned += floor; // Σ floor ≤ m.
    }
    let leftover = usize::try_from(m - assigned).ok()?;
    if leftover > 0 {
        let key = |r: &(u64, u32)| (std::cmp::Reverse(r.0), r.1);
        if leftover < remainders.len() {
            remainders.select_nth_unstable_by_key(leftover - 1, key);
        }
        for &(_, i) in remainders.iter().take(leftover) {
            parts[i as usize] += 1;
        }
    }
    Some(parts)
}

/// Scales non-negative decimal weights to integers with one common scale, so that their ratios
/// are exact. `None` if a scaled weight does not fit an `i128`.
fn integer_weights(weights: &[Decimal]) -> Option<Vec<i128>> {
    fn scaled(weights: &[Decimal]) -> Option<Vec<i128>> {
        let scale = weights.iter().map(Decimal::scale).max().unwrap_or(0);
        weights
            .iter()
            .map(|w| {
                let factor = 10i128.checked_pow(scale - w.scale())?;
                w.mantissa().abs().checked_mul(factor)
            })
            .collect()
    }
    // Try the weights as given (cheap); only if their scales are too far apart, strip trailing
    // zeros first. Either way the ratios are exact.
    scaled(weights).or_else(|| {
        let normalized: Vec<Decimal> = weights.iter().map(Decimal::normalize).collect();
        scaled(&normalized)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_64_bit_path_allocates_exactly_as_the_128_bit_one() {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = |bound: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % bound
        };
        for _ in 0..20_000 {
            let n = 1 + usize::try_from(next(12)).unwrap();
            let zeros = next(5) == 0;
            let weights: Vec<i128> = (0..n)
                .map(|_| {
                    if zeros {
                        0
                    } else {
                        i128::from(next(1_000_000))
                    }
                })
                .collect();
            let total = i128::from(next(10_000_000));
            let even = weights.iter().all(|w| *w == 0);
            let sum = if even {
                i128::try_from(n).unwrap()
            } else {
                weights.iter().sum()
            };
            assert_eq!(
                allocate_narrow(total, &weights, even, sum),
                Some(allocate_wide(total, &weights, even, sum).unwrap()),
                "{total} over {weights:?}"
            );
        }
    }
    use crate::Currency;

    fn cents(parts: &[Money]) -> Vec<i64> {
        parts.iter().map(|p| p.to_minor().unwrap()).collect()
    }

    fn d(n: i64) -> Decimal {
        Decimal::from(n)
    }

    #[test]
    fn ties_go_to_the_earlier_weight() {
        let total = Money::from_minor(100, Currency::EUR);
        assert_eq!(
            cents(&allocate(&total, &[d(1), d(1), d(1)]).unwrap()),
            [34, 33, 33]
        );
        let total = Money::from_minor(200, Currency::EUR);
        assert_eq!(
            cents(&allocate(&total, &[d(1), d(1), d(1)]).unwrap()),
            [67, 67, 66]
        );
    }

    #[test]
    fn largest_remainder_wins_over_index() {
        // Shares of 1.00 over 1:2:7 are 10, 20, 70 exactly. Over 1:1:5 they are 14.28.., 14.28..,
        // 71.42..: the floors sum to 99 and the cent left goes to the largest remainder (.42),
        // although the first line comes earlier.
        let total = Money::from_minor(100, Currency::EUR);
        assert_eq!(
            cents(&allocate(&total, &[d(1), d(2), d(7)]).unwrap()),
            [10, 20, 70]
        );
        assert_eq!(
            cents(&allocate(&total, &[d(1), d(1), d(5)]).unwrap()),
            [14, 14, 72]
        );
    }

    #[test]
    fn zero_weight_gets_nothing_and_all_zero_splits_evenly() {
        let total = Money::from_minor(10, Currency::EUR);
        assert_eq!(
            cents(&allocate(&total, &[d(0), d(1), d(1)]).unwrap()),
            [0, 5, 5]
        );
        assert_eq!(
            cents(&allocate(&total, &[d(0), d(0), d(0)]).unwrap()),
            [4, 3, 3]
        );
    }

    #[test]
    fn negative_total_mirrors_the_positive_split() {
        let pos = allocate(&Money::from_minor(100, Currency::EUR), &[d(1); 3]).unwrap();
        let neg = allocate(&Money::from_minor(-100, Currency::EUR), &[d(1); 3]).unwrap();
        assert_eq!(
            cents(&neg),
            cents(&pos).iter().map(|c| -c).collect::<Vec<_>>()
        );
    }

    #[test]
    fn single_weight_takes_everything() {
        let total = Money::from_minor(12_345, Currency::KWD);
        assert_eq!(
            cents(&allocate(&total, &[Decimal::new(3, 1)]).unwrap()),
            [12_345]
        );
    }

    #[test]
    fn fractional_weights_are_exact() {
        // Weights 0.1 and 0.2 are 1:2 exactly; a float would see 0.30000000000000004.
        let total = Money::from_minor(3, Currency::JPY);
        let parts = allocate(&total, &[Decimal::new(1, 1), Decimal::new(2, 1)]).unwrap();
        assert_eq!(cents(&parts), [1, 2]);
    }

    #[test]
    fn an_amount_too_large_for_minor_units_is_refused_not_truncated() {
        // 10^27 EUR has 10^29 cents, more than a Decimal's 96-bit mantissa holds.
        let huge: Money = "1000000000000000000000000000 EUR".parse().unwrap();
        assert!(matches!(
            allocate(&huge, &[Decimal::ONE]),
            Err(Error::Overflow { .. })
        ));
        assert!(matches!(huge.to_minor(), Err(Error::Overflow { .. })));
        // The largest amount that still fits splits exactly.
        let big: Money = "100000000000000000000000000 EUR".parse().unwrap();
        let parts = allocate(&big, &[Decimal::ONE, Decimal::ONE]).unwrap();
        assert_eq!(Money::sum(Currency::EUR, &parts).unwrap(), big);
    }

    #[test]
    fn over_precise_weights_are_rounded_not_refused() {
        // Quotients by 1.19 and 1.07 carry 28 digits; scaled to one scale they overflow i128
        // against a six-digit total. The split still happens, exactly.
        let a = Decimal::from(1_000_000) / Decimal::new(119, 2);
        let b = Decimal::from(100) / Decimal::new(107, 2);
        let parts = allocate_weighted(159_663, &[a, b]).unwrap();
        assert_eq!(parts.iter().sum::<i128>(), 159_663);
        assert!(parts[0] > parts[1] * 1_000);
    }

    #[test]
    fn refusals_are_typed() {
        let total = Money::from_minor(100, Currency::EUR);
        assert!(matches!(
            allocate(&total, &[]),
            Err(Error::InvalidWeights { .. })
        ));
        assert!(matches!(
            allocate(&total, &[d(1), d(-1)]),
            Err(Error::InvalidWeights { .. })
        ));
        let unrounded = Money::new(Decimal::new(1005, 3), Currency::EUR);
        assert!(matches!(
            allocate(&unrounded, &[d(1)]),
            Err(Error::NotInMinorUnits { .. })
        ));
        let huge = Money::new(Decimal::MAX, Currency::JPY);
        assert!(matches!(
            allocate(&huge, &[Decimal::MAX, d(1)]),
            Err(Error::Overflow { .. })
        ));
    }
}
