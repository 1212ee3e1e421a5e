//! What each promotion action discounts: exact per-line discounts from the working state,
//! rounded at the policy's level and capped at what each line has left.

use commerce_core::{allocate_minor, allocate_weighted};
use rust_decimal::Decimal;

use super::arith::{PERCENT_SCALE_MAX, Ratio, minor_of, round_and_allocate, round_div};
use super::buy_x_get_y::buy_x_get_y;
use super::context::RoundingLevel;
use super::model::{Action, ItemFilter, Tier};
use super::priced::NotApplied;
use super::work::{Effect, Outcome, Work};

/// An exact discount `line` (minor units) on `units` units of line `index`, before rounding.
pub(super) struct Raw {
    pub(super) index: usize,
    pub(super) line: Ratio,
    pub(super) units: u32,
}

/// Rounds proportional discounts at the policy's level and caps them at each line's remaining
/// value.
pub(super) fn finish(raw: Vec<Raw>, work: &Work<'_>, level: RoundingLevel) -> Effect {
    let mut lines: Vec<(usize, i128)> = match level {
        RoundingLevel::Unit => raw
            .iter()
            .map(|r| {
                let units = i128::from(r.units.max(1));
                (
                    r.index,
                    round_div(r.line.num, r.line.den * units, work.mode) * units,
                )
            })
            .collect(),
        RoundingLevel::Line => raw.iter().map(|r| (r.index, work.round(r.line))).collect(),
        RoundingLevel::Total => {
            let exact: Vec<Ratio> = raw.iter().map(|r| r.line).collect();
            raw.iter()
                .zip(round_and_allocate(&exact, work.mode))
                .map(|(r, d)| (r.index, d))
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
    let indices: Vec<usize> = work.matching(items).collect();
    if indices.is_empty() {
        return Err(NotApplied::NoMatchingItems);
    }
    let lines: Vec<(usize, i128)> = if work.unit_basis {
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
            .map(|(i, part)| (*i, part.min(work.remaining[*i])))
            .collect()
    } else {
        let weights: Vec<Decimal> = indices
            .iter()
            .map(|i| {
                Ratio {
                    num: work.remaining[*i] * work.basis[*i].den,
                    den: work.basis[*i].num,
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
                let b = work.basis[*i];
                (
                    *i,
                    work.round(Ratio {
                        num: part * b.num,
                        den: b.den,
                    })
                    .min(work.remaining[*i]),
                )
            })
            .collect()
    };
    let lines = lines.into_iter().filter(|(_, d)| *d != 0).collect();
    Ok(Effect::new(lines, 0))
}

/// What `action` discounts on the current working state, rounded at `level`; the state is
/// left unchanged.
pub(super) fn compute(action: &Action, work: &Work<'_>, level: RoundingLevel) -> Outcome {
    match action {
        Action::PercentOff { percent, items } => percent_off(*percent, items, work, level),
        Action::FixedOffPerUnit { amount, items } => {
            fixed_off_per_unit(minor_of(amount), items, work, level)
        }
        Action::FixedOffPerLine { amount, items } => {
            fixed_off_per_line(minor_of(amount), items, work, level)
        }
        Action::FixedOffOrder { amount, items } => spread(minor_of(amount), items, work),
        Action::TieredOrder { tiers, items } => tiered_order(tiers, items, work),
        Action::FixedPrice { unit_price, items } => {
            fixed_price(minor_of(unit_price), items, work, level)
        }
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

/// The lines matching `items`, found once per action.
fn matching_lines(
    items: &ItemFilter,
    work: &Work<'_>,
) -> std::result::Result<Vec<usize>, NotApplied> {
    let found: Vec<usize> = work.matching(items).collect();
    if found.is_empty() {
        Err(NotApplied::NoMatchingItems)
    } else {
        Ok(found)
    }
}

/// `percent` of each matching line's remaining value.
fn percent_off(
    percent: Decimal,
    items: &ItemFilter,
    work: &Work<'_>,
    level: RoundingLevel,
) -> Outcome {
    let f = Ratio::of(percent, PERCENT_SCALE_MAX);
    let raw = matching_lines(items, work)?
        .into_iter()
        .map(|i| Raw {
            index: i,
            line: Ratio {
                num: work.remaining[i] * f.num,
                den: f.den * 100,
            },
            units: work.lines[i].quantity,
        })
        .collect();
    Ok(finish(raw, work, level))
}

/// `amount` (minor units, discount basis) off each unit of each matching line.
fn fixed_off_per_unit(
    amount: i128,
    items: &ItemFilter,
    work: &Work<'_>,
    level: RoundingLevel,
) -> Outcome {
    let raw = matching_lines(items, work)?
        .into_iter()
        .map(|i| {
            let units = work.lines[i].quantity;
            let b = work.basis[i];
            let line = Ratio {
                num: amount * b.num * i128::from(units),
                den: b.den,
            };
            // Capped at what remains (compare without dividing).
            let line = if line.num > work.remaining[i] * line.den {
                Ratio::int(work.remaining[i])
            } else {
                line
            };
            Raw {
                index: i,
                line,
                units,
            }
        })
        .collect();
    Ok(finish(raw, work, level))
}

/// `amount` (minor units, discount basis) off each matching line, whatever its quantity.
fn fixed_off_per_line(
    amount: i128,
    items: &ItemFilter,
    work: &Work<'_>,
    level: RoundingLevel,
) -> Outcome {
    let raw = matching_lines(items, work)?
        .into_iter()
        .map(|i| {
            let b = work.basis[i];
            Raw {
                index: i,
                line: Ratio {
                    num: amount * b.num,
                    den: b.den,
                },
                units: 1,
            }
        })
        .collect();
    Ok(finish(raw, work, level))
}

/// The highest tier the matching lines reach, spread over them like a fixed order discount.
fn tiered_order(tiers: &[Tier], items: &ItemFilter, work: &Work<'_>) -> Outcome {
    matching_lines(items, work)?;
    let value = work.basis_value(items);
    match tiers
        .iter()
        .rev()
        .find(|t| value >= Ratio::int(minor_of(&t.min_subtotal)).to_decimal())
    {
        Some(tier) => spread(minor_of(&tier.amount_off), items, work),
        None => Err(NotApplied::ConditionFailed {
            detail: format!(
                "tiered_order: matching lines hold {}, the first tier needs {}",
                work.display(value),
                tiers[0].min_subtotal
            ),
        }),
    }
}

/// Each matching line down to `price` (minor units, discount basis) per unit; a line already
/// cheaper is left alone.
fn fixed_price(price: i128, items: &ItemFilter, work: &Work<'_>, level: RoundingLevel) -> Outcome {
    let raw = matching_lines(items, work)?
        .into_iter()
        .map(|i| {
            let units = work.lines[i].quantity;
            let b = work.basis[i];
            let floor = price * b.num * i128::from(units);
            let num = (work.remaining[i] * b.den - floor).max(0);
            Raw {
                index: i,
                line: Ratio { num, den: b.den },
                units,
            }
        })
        .collect();
    Ok(finish(raw, work, level))
}

/// Whatever remains of shipping.
fn free_shipping(work: &Work<'_>) -> Outcome {
    if work.shipping_remaining == 0 {
        Err(NotApplied::NothingToDiscount)
    } else {
        Ok(Effect::new(Vec::new(), work.shipping_remaining))
    }
}
