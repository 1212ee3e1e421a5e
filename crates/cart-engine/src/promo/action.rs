//! What each promotion action discounts: exact discounts from the working state, rounded at
//! the policy's level and capped at what each line (and each unit) has left.
//!
//! Unit-level actions (a percentage, an amount per unit, a fixed price, buy-X-get-Y) work on
//! the units of each line, lot by lot ([`super::work::Lot`]), so a unit an earlier promotion
//! made free takes no more, and `max_quantity` picks whole units. Line- and order-level
//! actions (an amount per line, an amount off the order, tiers) spread over the remaining
//! value.

use commerce_core::{allocate_minor, allocate_weighted};
use rust_decimal::Decimal;

use super::arith::{
    PERCENT_SCALE_MAX, Ratio, allocate_capped_into, allocate_minor_into, minor_of,
    round_and_allocate,
};
use super::buy_x_get_y::buy_x_get_y;
use super::context::RoundingLevel;
use super::model::{Action, ItemFilter, Tier};
use super::priced::NotApplied;
use super::work::{Effect, Lot, Outcome, Part, Scratch, Work};

/// Rounds unit-level discounts at the policy's level: each part ends with its rounded discount,
/// at most its value, and the effect's line discounts are their sums. `parts` are in line
/// order.
pub(super) fn finish(mut parts: Vec<Part>, work: &Work<'_>, level: RoundingLevel) -> Effect {
    match level {
        RoundingLevel::Unit => {
            for p in &mut parts {
                let units = i128::from(p.count.max(1));
                let per_unit = work.round(Ratio {
                    num: p.exact.num,
                    den: p.exact.den * units,
                });
                p.discount = (per_unit * units).clamp(0, p.value);
            }
        }
        RoundingLevel::Line => {
            let mut start = 0;
            while start < parts.len() {
                let line = parts[start].line;
                let end = start + parts[start..].iter().take_while(|p| p.line == line).count();
                round_line(&mut parts[start..end], work);
                start = end;
            }
        }
        RoundingLevel::Total => {
            let ratios: Vec<Ratio> = parts.iter().map(|p| p.exact).collect();
            for (p, d) in parts.iter_mut().zip(round_and_allocate(&ratios, work.mode)) {
                p.discount = d.clamp(0, p.value);
            }
        }
    }
    Effect::of_parts(parts)
}

/// Rounds one part alone, at the unit or line level.
fn round_one(p: &mut Part, work: &Work<'_>, level: RoundingLevel) {
    p.discount = if level == RoundingLevel::Unit {
        let units = i128::from(p.count.max(1));
        work.round(Ratio {
            num: p.exact.num,
            den: p.exact.den * units,
        }) * units
    } else {
        work.round(p.exact)
    }
    .clamp(0, p.value);
}

/// One line's parts (one denominator): the line's discount is rounded once and shared over the
/// parts by their exact discounts, none above its value.
fn round_line(parts: &mut [Part], work: &Work<'_>) {
    if let [p] = parts {
        p.discount = work.round(p.exact).clamp(0, p.value);
        return;
    }
    let den = parts[0].exact.den;
    let num: i128 = parts.iter().map(|p| p.exact.num.max(0)).sum();
    let value: i128 = parts.iter().map(|p| p.value).sum();
    let line = work.round(Ratio { num, den }).clamp(0, value);
    let mut scratch = work.scratch.borrow_mut();
    let Scratch {
        weights,
        caps,
        shares,
        remainders,
        ..
    } = &mut *scratch;
    weights.clear();
    weights.extend(parts.iter().map(|p| p.exact.num.max(0)));
    caps.clear();
    caps.extend(parts.iter().map(|p| p.value));
    allocate_capped_into(line, (weights, caps), shares, remainders);
    for (p, d) in parts.iter_mut().zip(shares.iter()) {
        p.discount = *d;
    }
}

/// Rounds line-level discounts (one per line) at the policy's level and caps them at each
/// line's remaining value; a line's discount is then spread over its lots by value.
fn finish_lines(raw: Vec<(usize, Ratio)>, work: &Work<'_>, level: RoundingLevel) -> Effect {
    let mut lines: Vec<(usize, i128)> = match level {
        RoundingLevel::Unit | RoundingLevel::Line => {
            raw.iter().map(|(i, r)| (*i, work.round(*r))).collect()
        }
        RoundingLevel::Total => {
            let exact: Vec<Ratio> = raw.iter().map(|(_, r)| *r).collect();
            raw.iter()
                .zip(round_and_allocate(&exact, work.mode))
                .map(|((i, _), d)| (*i, d))
                .collect()
        }
    };
    for (i, d) in &mut lines {
        *d = (*d).clamp(0, work.remaining[*i]);
    }
    lines.retain(|(_, d)| *d != 0);
    Effect::new(lines, 0)
}

/// Spreads `amount` minor units (in discount-basis terms) over matching lines in proportion to
/// their remaining value, exactly, capped at what remains.
fn spread(amount: i128, items: &ItemFilter, work: &Work<'_>) -> Outcome {
    let mask = work.mask(items);
    if mask == 0 {
        return Err(NotApplied::NoMatchingItems);
    }
    if work.unit_basis {
        // Integer weights: allocated in the call's reused buffers.
        let mut scratch = work.scratch.borrow_mut();
        let Scratch {
            weights,
            shares,
            remainders,
            ..
        } = &mut *scratch;
        weights.clear();
        weights.reserve(mask.count_ones() as usize);
        weights.extend(work.matching(items).map(|i| work.remaining[i]));
        let available: i128 = weights.iter().sum();
        if available == 0 {
            return Err(NotApplied::NothingToDiscount);
        }
        allocate_minor_into(amount.min(available), weights, shares, remainders)
            .map_err(|_| NotApplied::NothingToDiscount)?;
        let mut lines = work.lines_buffer();
        lines.reserve(shares.len());
        for (i, part) in work.matching(items).zip(shares.iter()) {
            let d = (*part).min(work.remaining[i]);
            if d != 0 {
                lines.push((i, d));
            }
        }
        return Ok(Effect::new(lines, 0));
    }
    let n = mask.count_ones() as usize;
    let mut indices: Vec<usize> = Vec::with_capacity(n);
    indices.extend(work.matching(items));
    let shares: Vec<i128> = if work.unit_basis {
        let weights: Vec<i128> = indices.iter().map(|i| work.remaining[*i]).collect();
        let available: i128 = weights.iter().sum();
        if available == 0 {
            return Err(NotApplied::NothingToDiscount);
        }
        let parts = allocate_minor(amount.min(available), &weights)
            .map_err(|_| NotApplied::NothingToDiscount)?;
        indices
            .iter()
            .zip(parts)
            .map(|(i, part)| part.min(work.remaining[*i]))
            .collect()
    } else {
        let weights: Vec<Decimal> = indices
            .iter()
            .map(|i| {
                Ratio {
                    num: work.remaining[*i] * work.basis_of(*i).den,
                    den: work.basis_of(*i).num,
                }
                .to_decimal()
            })
            .collect();
        let available = Ratio::of(work.mode.round_dp(weights.iter().sum(), 0), 0).num;
        if available == 0 {
            return Err(NotApplied::NothingToDiscount);
        }
        let parts = allocate_weighted(amount.min(available), &weights)
            .map_err(|_| NotApplied::NothingToDiscount)?;
        indices
            .iter()
            .zip(parts)
            .map(|(i, part)| {
                let b = work.basis_of(*i);
                work.round(Ratio {
                    num: part * b.num,
                    den: b.den,
                })
                .min(work.remaining[*i])
            })
            .collect()
    };
    let mut lines = Vec::with_capacity(n);
    lines.extend(indices.into_iter().zip(shares).filter(|(_, d)| *d != 0));
    Ok(Effect::new(lines, 0))
}

/// What `action` discounts on the current working state, rounded at `level`; the state is
/// left unchanged.
pub(super) fn compute(action: &Action, work: &Work<'_>, level: RoundingLevel) -> Outcome {
    match action {
        Action::PercentOff {
            percent,
            items,
            max_quantity,
        } => {
            let f = Ratio::of(*percent, PERCENT_SCALE_MAX);
            on_units(items, *max_quantity, work, level, |_, value, _| Ratio {
                num: value * f.num,
                den: f.den * 100,
            })
        }
        Action::FixedOffPerUnit {
            amount,
            items,
            max_quantity,
        } => {
            let amount = minor_of(amount);
            on_units(items, *max_quantity, work, level, |b, value, units| {
                // Capped at the units' value (compare without dividing).
                let off = amount * b.num * i128::from(units);
                Ratio {
                    num: off.min(value * b.den),
                    den: b.den,
                }
            })
        }
        Action::FixedPrice {
            unit_price,
            items,
            max_quantity,
        } => {
            let price = minor_of(unit_price);
            on_units(items, *max_quantity, work, level, |b, value, units| Ratio {
                num: (value * b.den - price * b.num * i128::from(units)).max(0),
                den: b.den,
            })
        }
        Action::FixedOffPerLine { amount, items } => {
            fixed_off_per_line(minor_of(amount), items, work, level)
        }
        Action::FixedOffOrder { amount, items } => spread(minor_of(amount), items, work),
        Action::TieredOrder { tiers, items } => tiered_order(tiers, items, work),
        Action::BuyXGetY {
            buy,
            buy_quantity,
            get,
            get_quantity,
            percent_off,
            max_occurrences,
            selection,
        } => buy_x_get_y(
            work,
            level,
            (buy, *buy_quantity),
            (get, *get_quantity),
            Ratio::of(*percent_off, PERCENT_SCALE_MAX),
            *max_occurrences,
            *selection,
        ),
        Action::FreeShipping => free_shipping(work),
    }
}

/// A unit-level action: `exact(basis, value, units)` is the exact discount on `units` units
/// worth `value` (minor units) of a line whose discount basis is `basis`. Without
/// `max_quantity` every unit of every matching line is discounted; with it, at most that many
/// units, the cheapest first (ties by SKU), skipping units with nothing left to discount.
fn on_units(
    items: &ItemFilter,
    max_quantity: Option<u32>,
    work: &Work<'_>,
    level: RoundingLevel,
    exact: impl Fn(Ratio, i128, u32) -> Ratio,
) -> Outcome {
    let part = |i: usize, k: usize, lot: Lot, count: u32| {
        let value = work.share(lot, count);
        Part {
            line: i,
            lot: k,
            count,
            value,
            exact: exact(work.basis_of(i), value, count),
            discount: 0,
            claim: false,
        }
    };
    let mut parts = work.parts_buffer();
    match max_quantity {
        None if level != RoundingLevel::Total => {
            // Every unit of every matching line: a line still one lot is discounted whole (its
            // rounding is its own, so no parts are needed); a split one lot by lot.
            let mut lines = work.lines_buffer();
            let mut any = false;
            for i in work.matching(items) {
                any = true;
                if work.lot_count(i) == 1 && !work.lot(i, 0).claimed {
                    let lot = work.lot(i, 0);
                    let mut p = part(i, 0, lot, lot.count);
                    round_one(&mut p, work, level);
                    if p.discount != 0 {
                        lines.push((i, p.discount));
                    }
                } else {
                    for k in 0..work.lot_count(i) {
                        let lot = work.lot(i, k);
                        parts.push(part(i, k, lot, lot.count));
                    }
                }
            }
            if !any {
                work.recycle(Effect::with_lines(lines, Effect::of_parts(parts)));
                return Err(NotApplied::NoMatchingItems);
            }
            let parts = finish(parts, work, level);
            return Ok(Effect::with_lines(lines, parts));
        }
        None => {
            for i in work.matching(items) {
                for k in 0..work.lot_count(i) {
                    let lot = work.lot(i, k);
                    parts.push(part(i, k, lot, lot.count));
                }
            }
            if parts.is_empty() {
                return Err(NotApplied::NoMatchingItems);
            }
        }
        Some(max) => {
            let mut lots: Vec<(usize, usize, Lot)> = Vec::with_capacity(work.lines.len());
            for i in work.matching(items) {
                for k in 0..work.lot_count(i) {
                    lots.push((i, k, work.lot(i, k)));
                }
            }
            if lots.is_empty() {
                return Err(NotApplied::NoMatchingItems);
            }
            lots.retain(|(_, _, lot)| lot.value > 0);
            lots.sort_by(|(ia, ka, a), (ib, kb, b)| {
                a.cmp_unit_value(b).then(ia.cmp(ib)).then(ka.cmp(kb))
            });
            let mut left = max;
            for (i, k, lot) in lots {
                if left == 0 {
                    break;
                }
                let count = lot.count.min(left);
                parts.push(part(i, k, lot, count));
                left -= count;
            }
            parts.sort_by_key(|p| (p.line, p.lot));
        }
    }
    Ok(finish(parts, work, level))
}

/// `amount` (minor units, discount basis) off each matching line, whatever its quantity.
fn fixed_off_per_line(
    amount: i128,
    items: &ItemFilter,
    work: &Work<'_>,
    level: RoundingLevel,
) -> Outcome {
    if level != RoundingLevel::Total {
        // Each line rounds its own discount: straight into the effect, as `finish_lines`
        // would.
        let mut lines = work.lines_buffer();
        let mut any = false;
        for i in work.matching(items) {
            any = true;
            let b = work.basis_of(i);
            let d = work
                .round(Ratio {
                    num: amount * b.num,
                    den: b.den,
                })
                .clamp(0, work.remaining[i]);
            if d != 0 {
                lines.push((i, d));
            }
        }
        let effect = Effect::new(lines, 0);
        if !any {
            work.recycle(effect);
            return Err(NotApplied::NoMatchingItems);
        }
        return Ok(effect);
    }
    let mut raw: Vec<(usize, Ratio)> = Vec::with_capacity(work.lines.len());
    raw.extend(work.matching(items).map(|i| {
        let b = work.basis_of(i);
        (
            i,
            Ratio {
                num: amount * b.num,
                den: b.den,
            },
        )
    }));
    if raw.is_empty() {
        return Err(NotApplied::NoMatchingItems);
    }
    Ok(finish_lines(raw, work, level))
}

/// The highest tier the matching lines reach, spread over them like a fixed order discount.
fn tiered_order(tiers: &[Tier], items: &ItemFilter, work: &Work<'_>) -> Outcome {
    if work.matching(items).next().is_none() {
        return Err(NotApplied::NoMatchingItems);
    }
    match tiers.iter().rev().find(|t| {
        work.basis_value_reaches(items, minor_of(&t.min_subtotal))
            .is_ok()
    }) {
        Some(tier) => spread(minor_of(&tier.amount_off), items, work),
        None => Err(NotApplied::ConditionFailed {
            detail: format!(
                "tiered_order: matching lines hold {}, the first tier needs {}",
                work.display(work.basis_value(items)),
                tiers[0].min_subtotal
            ),
        }),
    }
}

/// Whatever remains of shipping.
fn free_shipping(work: &Work<'_>) -> Outcome {
    if work.shipping_remaining == 0 {
        Err(NotApplied::NothingToDiscount)
    } else {
        Ok(Effect::new(Vec::new(), work.shipping_remaining))
    }
}
