//! Exact integer arithmetic for pricing: ratios, rounding division, and conversion between
//! [`Money`] and minor units.
//!
//! Inside the engine every amount is an integer number of minor units (`i128`) and every factor
//! (a percentage, a tax rate, 1 + rate) an exact ratio; a ratio is rounded to minor units by the
//! policy's mode. Decimals appear only at the edges. With amounts bounded by `AMOUNT_ABS_MAX` and
//! factors by `PERCENT_SCALE_MAX` or `RATE_SCALE_MAX` decimals, no product exceeds 10^35.

use commerce_core::{Currency, Money, RoundingMode, allocate_minor, allocate_weighted};
use rust_decimal::Decimal;

/// Most decimals a percentage keeps inside the engine (validation refuses more).
pub(super) const PERCENT_SCALE_MAX: u32 = crate::limits::PERCENT_DECIMALS_MAX;
/// Most decimals a tax rate keeps inside the engine.
pub(super) const RATE_SCALE_MAX: u32 = 12;

/// An exact ratio `num / den`, `den > 0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Ratio {
    pub(super) num: i128,
    pub(super) den: i128,
}

impl Ratio {
    pub(super) const ONE: Ratio = Ratio { num: 1, den: 1 };

    pub(super) fn int(n: i128) -> Ratio {
        Ratio { num: n, den: 1 }
    }

    /// A decimal as a ratio, rounded half-even to at most `scale_max` decimals.
    pub(super) fn of(d: Decimal, scale_max: u32) -> Ratio {
        let d = if d.scale() > scale_max {
            d.round_dp(scale_max)
        } else {
            d
        };
        Ratio {
            num: d.mantissa(),
            den: pow10(d.scale()),
        }
    }

    pub(super) fn is_one(self) -> bool {
        self.num == self.den
    }

    pub(super) fn to_decimal(self) -> Decimal {
        let num = Decimal::try_from_i128_with_scale(self.num, 0).unwrap_or(Decimal::MAX);
        if self.den == 1 {
            num
        } else {
            num / Decimal::try_from_i128_with_scale(self.den, 0).unwrap_or(Decimal::ONE)
        }
    }
}

/// 10^0 to 10^28: every scale a [`Decimal`] can have.
const POW10: [i128; 29] = {
    let mut table = [1i128; 29];
    let mut i = 1;
    while i < 29 {
        table[i] = table[i - 1] * 10;
        i += 1;
    }
    table
};

/// `10^exp` for a decimal's scale (at most 28), without a loop.
#[inline]
pub(super) fn pow10(exp: u32) -> i128 {
    match usize::try_from(exp).ok().and_then(|i| POW10.get(i)) {
        Some(p) => *p,
        None => 10i128.pow(exp),
    }
}

/// `m` in minor units when its scale is the currency's exponent (every amount pricing builds
/// or loads): its mantissa, read without going through [`Money::to_minor`]. `None` for any
/// other scale, where the caller takes the general path.
#[inline]
pub(super) fn minor_at_scale(m: &Money) -> Option<i128> {
    let amount = m.amount();
    if amount.scale() == u32::from(m.currency().exponent()) {
        Some(amount.mantissa())
    } else {
        None
    }
}

/// `num / den` rounded to an integer with `mode` (`den > 0`).
#[inline]
pub(super) fn round_div(num: i128, den: i128, mode: RoundingMode) -> i128 {
    // Nearly every division in pricing is of a non-negative amount and fits 64 bits, where
    // it is several times cheaper; unsigned, it needs no sign handling either.
    if let (Ok(n), Ok(d)) = (u64::try_from(num), u64::try_from(den)) {
        // Fixed amounts on a unit basis divide by 1: no division at all.
        if d == 1 {
            return num;
        }
        let (q, r) = (n / d, n % d);
        if r == 0 {
            return i128::from(q);
        }
        // `2r` against `d`, as `r` against `d − r` (no overflow).
        let half = r.cmp(&(d - r));
        return i128::from(q) + i128::from(rounds_away(mode, half, q % 2 != 0));
    }
    round_div_signed(num, den, mode)
}

/// [`round_div`] of a negative numerator or beyond 64 bits.
#[inline(never)]
fn round_div_signed(num: i128, den: i128, mode: RoundingMode) -> i128 {
    if let (Ok(n), Ok(d)) = (i64::try_from(num), i64::try_from(den)) {
        return i128::from(round_div_64(n, d, mode));
    }
    let (q, r) = (num / den, num % den);
    if r == 0 {
        return q;
    }
    // |r| < den, so twice |r| fits 128 unsigned bits.
    let half = (2 * r.unsigned_abs()).cmp(&den.unsigned_abs());
    if rounds_away(mode, half, q % 2 != 0) {
        q + num.signum()
    } else {
        q
    }
}

/// [`round_div`] in 64 bits (`den > 0`).
#[inline]
fn round_div_64(num: i64, den: i64, mode: RoundingMode) -> i64 {
    let (q, r) = (num / den, num % den);
    if r == 0 {
        return q;
    }
    let half = (2 * r.unsigned_abs()).cmp(&den.unsigned_abs());
    if rounds_away(mode, half, q % 2 != 0) {
        q + num.signum()
    } else {
        q
    }
}

/// Whether a non-zero remainder rounds the quotient away from zero, given how twice the
/// remainder compares with the divisor (`Less`: below half) and whether the quotient is odd.
#[inline]
fn rounds_away(mode: RoundingMode, half: std::cmp::Ordering, odd: bool) -> bool {
    use std::cmp::Ordering::{Equal, Greater};
    match mode {
        RoundingMode::Up => true,
        RoundingMode::Down => false,
        RoundingMode::HalfUp => half != std::cmp::Ordering::Less,
        RoundingMode::HalfDown => half == Greater,
        RoundingMode::HalfEven => half == Greater || (half == Equal && odd),
    }
}

/// `minor` minor units of `c` as money.
pub(super) fn money(minor: i128, c: Currency) -> Money {
    let scale = u32::from(c.exponent());
    if let Ok(m) = u64::try_from(minor) {
        // Non-negative (nearly every amount): no sign to take apart.
        #[allow(clippy::cast_possible_truncation, reason = "the low and high halves")]
        let (lo, mid) = (m as u32, (m >> 32) as u32);
        return Money::new(Decimal::from_parts(lo, mid, 0, false, scale), c);
    }
    let amount = match i64::try_from(minor) {
        // Every real amount: the cheap constructor.
        Ok(m) => {
            // `Decimal::new` does not inline across crates; its parts are plain integers.
            let abs = m.unsigned_abs();
            #[allow(clippy::cast_possible_truncation, reason = "the low and high halves")]
            let (lo, mid) = (abs as u32, (abs >> 32) as u32);
            Decimal::from_parts(lo, mid, 0, m < 0, scale)
        }
        Err(_) => Decimal::try_from_i128_with_scale(minor, scale).unwrap_or(Decimal::MAX),
    };
    Money::new(amount, c)
}

/// `m` in minor units; 0 if it has no exact value in them (or none that fits an `i64`).
pub(super) fn minor_of(m: &Money) -> i128 {
    // At the currency's scale `to_minor` is the mantissa, if it fits an `i64`.
    if let Some(minor) = minor_at_scale(m) {
        return i64::try_from(minor).map(i128::from).unwrap_or(0);
    }
    m.to_minor().map(i128::from).unwrap_or(0)
}

/// Rounds the sum of exact `parts` once with `mode` and allocates it over them exactly.
pub(super) fn round_and_allocate(parts: &[Ratio], mode: RoundingMode) -> Vec<i128> {
    let Some(first) = parts.first() else {
        return Vec::new();
    };
    if parts.iter().all(|p| p.den == first.den) {
        let nums: Vec<i128> = parts.iter().map(|p| p.num.max(0)).collect();
        let total = round_div(nums.iter().sum(), first.den, mode);
        allocate_minor(total, &nums).unwrap_or_else(|_| vec![0; parts.len()])
    } else {
        let exact: Vec<Decimal> = parts
            .iter()
            .map(|p| p.to_decimal().max(Decimal::ZERO))
            .collect();
        let total = Ratio::of(mode.round_dp(exact.iter().sum(), 0), 0).num;
        allocate_weighted(total, &exact).unwrap_or_else(|_| vec![0; parts.len()])
    }
}

/// [`allocate_minor`] into `parts` (cleared first), with `remainders` as its working buffer:
/// the same parts, without allocating once the buffers have grown. Totals and weights that do
/// not fit 64 bits (or a negative one) take [`allocate_minor`] itself.
///
/// # Errors
/// As [`allocate_minor`].
pub(super) fn allocate_minor_into(
    total: i128,
    weights: &[i128],
    parts: &mut Vec<i128>,
    remainders: &mut Vec<u64>,
) -> commerce_core::Result<()> {
    parts.clear();
    if allocate_narrow_into(total, weights, parts, remainders).is_some() {
        return Ok(());
    }
    parts.clear();
    parts.extend(allocate_minor(total, weights)?);
    Ok(())
}

/// Low bits of an allocation rank that hold the weight's place (at most `LINES_MAX` places).
const RANK_PLACE_BITS: u32 = 7;
const _: () = assert!(crate::limits::LINES_MAX <= 1 << RANK_PLACE_BITS);

/// `commerce_core`'s 64-bit path of [`allocate_minor`] (largest remainder, ties to the earlier
/// weight, all-zero weights split evenly) into `parts`; `None` where that path does not apply.
fn allocate_narrow_into(
    total: i128,
    weights: &[i128],
    parts: &mut Vec<i128>,
    remainders: &mut Vec<u64>,
) -> Option<()> {
    if weights.is_empty() || weights.len() > crate::limits::LINES_MAX {
        return None;
    }
    let m = u64::try_from(total).ok()?;
    let mut sum: u64 = 0;
    let mut weight_max: u64 = 0;
    for w in weights {
        let w = u64::try_from(*w).ok()?;
        sum = sum.checked_add(w)?;
        weight_max = weight_max.max(w);
    }
    let even = sum == 0;
    if even {
        sum = u64::try_from(weights.len()).ok()?;
        weight_max = 1;
    }
    // A remainder (below `sum`) and a place (below `LINES_MAX` ≤ 2^7) share one 64-bit rank.
    if sum > 1 << 56 {
        return None;
    }
    m.checked_mul(weight_max)?;
    remainders.clear();
    remainders.reserve(weights.len());
    parts.reserve(weights.len());
    let mut assigned: u64 = 0;
    for (i, w) in weights.iter().enumerate() {
        let w = if even { 1 } else { u64::try_from(*w).ok()? };
        let numerator = m * w;
        let floor = numerator / sum;
        parts.push(i128::from(floor));
        // One integer per place, smallest for the largest remainder and then the lowest
        // index: the order `allocate_minor` gives the leftover units in.
        let rank =
            ((sum - 1 - (numerator - floor * sum)) << RANK_PLACE_BITS) | u64::try_from(i).ok()?;
        remainders.push(rank);
        assigned += floor; // Σ floor ≤ m.
    }
    let leftover = usize::try_from(m - assigned).ok()?;
    if leftover > 0 {
        // The `leftover` largest remainders (ties to the lower index) take one unit each.
        if leftover < remainders.len() {
            smallest_first(remainders, leftover);
        }
        for &rank in remainders.iter().take(leftover) {
            let i = rank & ((1 << RANK_PLACE_BITS) - 1);
            parts[usize::try_from(i).ok()?] += 1;
        }
    }
    Some(())
}

/// Moves the `k` smallest of the distinct `ranks` (`0 < k < len`) to the front, in any
/// order: a plain quickselect around the middle element, cheaper than the standard
/// library's general one on the few dozen ranks of an allocation.
fn smallest_first(ranks: &mut [u64], k: usize) {
    let (mut lo, mut hi) = (0, ranks.len());
    while hi - lo > 1 {
        let last = hi - 1;
        ranks.swap(lo + (hi - lo) / 2, last);
        let pivot = ranks[last];
        let mut store = lo;
        for i in lo..last {
            if ranks[i] < pivot {
                ranks.swap(i, store);
                store += 1;
            }
        }
        ranks.swap(store, last);
        // Now ranks[lo..store] < pivot = ranks[store] < ranks[store + 1..hi].
        if k < store {
            hi = store;
        } else if k > store + 1 {
            lo = store + 1;
        } else {
            return;
        }
    }
}

/// Allocates `total` over `weights` exactly (largest remainder), no part above its cap; what
/// a cap cuts off goes to the next parts with room, in order. `total ≤ Σ caps` is the caller's
/// promise; any excess beyond every cap is dropped.
#[cfg(test)]
fn allocate_capped(total: i128, weights: &[i128], caps: &[i128]) -> Vec<i128> {
    let mut parts = Vec::with_capacity(weights.len());
    allocate_capped_into(total, (weights, caps), &mut parts, &mut Vec::new());
    parts
}

/// [`allocate_capped`] into `parts` (cleared first), with `remainders` as its working buffer.
pub(super) fn allocate_capped_into(
    total: i128,
    (weights, caps): (&[i128], &[i128]),
    parts: &mut Vec<i128>,
    remainders: &mut Vec<u64>,
) {
    parts.clear();
    if weights.len() == 1 {
        parts.push(total);
    } else if allocate_minor_into(total, weights, parts, remainders).is_err() {
        parts.clear();
        parts.resize(weights.len(), 0);
    }
    let mut excess = 0;
    for (p, cap) in parts.iter_mut().zip(caps) {
        if *p > *cap {
            excess += *p - *cap;
            *p = *cap;
        }
    }
    for (p, cap) in parts.iter_mut().zip(caps) {
        if excess == 0 {
            break;
        }
        let room = (*cap - *p).min(excess);
        *p += room;
        excess -= room;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capped_allocation_moves_what_a_cap_cuts_to_parts_with_room() {
        assert_eq!(allocate_capped(10, &[1, 1], &[3, 100]), [3, 7]);
        assert_eq!(allocate_capped(10, &[5, 5], &[100, 100]), [5, 5]);
        assert_eq!(allocate_capped(7, &[9], &[7]), [7]);
        assert_eq!(allocate_capped(0, &[0, 0], &[0, 0]), [0, 0]);
    }

    #[test]
    fn allocating_into_buffers_gives_the_parts_of_allocate_minor() {
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut next = |bound: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            i128::from(seed % bound)
        };
        let (mut parts, mut remainders) = (Vec::new(), Vec::new());
        for _ in 0..20_000 {
            let n = 1 + usize::try_from(next(30)).unwrap_or(0);
            let zeros = next(6) == 0;
            // Sums near 2^56, where ranks no longer fit 64 bits, now and then.
            let huge = next(8) == 0;
            let weights: Vec<i128> = (0..n)
                .map(|_| match next(4) {
                    _ if zeros => 0,
                    0 => 0,
                    1 => next(10),
                    _ if huge => next(1 << 55) / i128::try_from(n).unwrap_or(1) * 3,
                    _ => next(10_000_000),
                })
                .collect();
            let total = match next(5) {
                0 => -next(100_000),
                1 => next(1 << 62) << 40,
                _ => next(1_000_000),
            };
            let want = allocate_minor(total, &weights);
            let got = allocate_minor_into(total, &weights, &mut parts, &mut remainders);
            match want {
                Ok(want) => assert_eq!(parts, want, "{total} over {weights:?}"),
                Err(e) => assert_eq!(got, Err(e)),
            }
        }
        assert!(allocate_minor_into(5, &[], &mut parts, &mut remainders).is_err());
    }

    #[test]
    fn the_quickselect_puts_the_smallest_ranks_first() {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..5_000 {
            let n = 2 + usize::try_from(next() % 100).unwrap_or(0);
            // Distinct ranks, as an allocation makes them: a value and a place.
            let mut ranks: Vec<u64> = (0..n)
                .map(|i| ((next() % 8) << 7) | u64::try_from(i).unwrap_or(0))
                .collect();
            let k = 1 + usize::try_from(next()).unwrap_or(0) % (n - 1);
            let mut sorted = ranks.clone();
            sorted.sort_unstable();
            smallest_first(&mut ranks, k);
            let mut front = ranks[..k].to_vec();
            front.sort_unstable();
            assert_eq!(front, sorted[..k], "k = {k} of {n}");
        }
    }

    #[test]
    fn rounding_a_ratio_follows_the_mode_on_both_signs() {
        use RoundingMode::*;
        // 5/2 = 2.5, 7/2 = 3.5, 11/4 = 2.75, 9/4 = 2.25, and their negatives.
        let cases = [
            ((5, 2), [2, 3, 2, 3, 2]),
            ((7, 2), [4, 4, 3, 4, 3]),
            ((11, 4), [3, 3, 3, 3, 2]),
            ((9, 4), [2, 2, 2, 3, 2]),
            ((-5, 2), [-2, -3, -2, -3, -2]),
            ((-11, 4), [-3, -3, -3, -3, -2]),
            ((6, 3), [2, 2, 2, 2, 2]),
        ];
        for ((num, den), expected) in cases {
            for (mode, want) in [HalfEven, HalfUp, HalfDown, Up, Down]
                .into_iter()
                .zip(expected)
            {
                assert_eq!(round_div(num, den, mode), want, "{num}/{den} {mode:?}");
            }
        }
    }

    #[test]
    fn the_128_bit_path_rounds_like_the_64_bit_one() {
        let big = 1i128 << 70;
        for (num, den) in [(5, 2), (7, 2), (11, 4), (-5, 2), (-11, 4), (9, 4)] {
            for mode in RoundingMode::ALL {
                // Scaling both sides keeps the quotient and the rounding.
                assert_eq!(
                    round_div(num * big, den * big, mode),
                    round_div(num, den, mode),
                    "{num}/{den} {mode:?}"
                );
            }
        }
    }

    #[test]
    fn the_unsigned_path_rounds_like_128_bit_arithmetic_up_to_the_64_bit_edge() {
        // Reference: the quotient and remainder in 128 bits, twice the remainder compared
        // with the divisor, as `round_div_signed` does for numbers beyond 64 bits.
        fn reference(num: i128, den: i128, mode: RoundingMode) -> i128 {
            let (q, r) = (num / den, num % den);
            if r == 0 {
                return q;
            }
            let half = (2 * r).cmp(&den);
            q + i128::from(rounds_away(mode, half, q % 2 != 0))
        }
        let max = i128::from(u64::MAX);
        let edges = [
            0,
            1,
            2,
            3,
            99,
            100,
            101,
            max / 2,
            max / 2 + 1,
            max - 2,
            max - 1,
            max,
        ];
        for num in edges {
            for den in edges.into_iter().filter(|d| *d > 0) {
                for mode in RoundingMode::ALL {
                    assert_eq!(
                        round_div(num, den, mode),
                        reference(num, den, mode),
                        "{num}/{den} {mode:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn ratio_rounding_agrees_with_decimal_rounding() {
        for num in -1_000i128..1_000 {
            for den in [1i128, 3, 7, 8, 100, 1_000] {
                for mode in RoundingMode::ALL {
                    let d = Decimal::from_i128_with_scale(num, 0)
                        / Decimal::from_i128_with_scale(den, 0);
                    let want = Ratio::of(mode.round_dp(d, 0), 0).num;
                    assert_eq!(round_div(num, den, mode), want, "{num}/{den} {mode:?}");
                }
            }
        }
    }
}
