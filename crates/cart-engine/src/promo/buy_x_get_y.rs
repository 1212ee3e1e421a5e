//! Buy X get Y: which units are bought and which are discounted, occurrence by occurrence.

use super::action::{Raw, finish};
use super::arith::Ratio;
use super::context::RoundingLevel;
use super::model::{ItemFilter, Selection};
use super::priced::NotApplied;
use super::work::{Outcome, Work};

/// Buy X get Y, unit by unit. Each occurrence takes `get_quantity` discountable units in the
/// selection order, then `buy_quantity` qualifying units from the rest (starting from the
/// opposite end of the price order, so the cheap units are the ones discounted under
/// `Cheapest`); it stops when either runs out or at `max_occurrences`. Bought and discounted
/// units never overlap, so "buy 2 get 2" on 3 units gives nothing and on 4 units frees 2.
pub(super) fn buy_x_get_y(
    work: &Work<'_>,
    level: RoundingLevel,
    (buy, buy_quantity): (&ItemFilter, u32),
    (get, get_quantity): (&ItemFilter, u32),
    percent_off: Ratio,
    max_occurrences: Option<u32>,
    selection: Selection,
) -> Outcome {
    let candidates = candidates_in_selection_order(work, buy, get, selection);
    if candidates.is_empty() {
        return Err(NotApplied::NoMatchingItems);
    }
    // Units not yet bought or discounted, and units discounted, per candidate.
    let mut left: Vec<u32> = candidates.iter().map(|i| work.lines[*i].quantity).collect();
    let mut discounted: Vec<u32> = vec![0; candidates.len()];
    let mut occurrences = 0u32;
    while max_occurrences.is_none_or(|m| occurrences < m) {
        let Some(taken) = take_occurrence(
            work,
            &candidates,
            &mut left,
            (buy, buy_quantity),
            (get, get_quantity),
        ) else {
            break;
        };
        for (k, n) in taken {
            discounted[k] += n;
        }
        occurrences += 1;
    }
    if occurrences == 0 {
        return Err(NotApplied::NotEnoughItems);
    }
    let raw = discount_units(work, &candidates, &discounted, percent_off);
    Ok(finish(raw, work, level))
}

/// Lines that can take part, ordered by unit value, cheapest first (ties by SKU), or most
/// expensive first under [`Selection::MostExpensive`].
fn candidates_in_selection_order(
    work: &Work<'_>,
    buy: &ItemFilter,
    get: &ItemFilter,
    selection: Selection,
) -> Vec<usize> {
    let mut candidates: Vec<usize> = work
        .lines
        .iter()
        .enumerate()
        .filter(|(_, l)| buy.matches(l) || get.matches(l))
        .map(|(i, _)| i)
        .collect();
    // Unit values remaining[i] / quantity[i], compared without dividing.
    candidates.sort_by(|a, b| {
        let ua = work.remaining[*a] * i128::from(work.lines[*b].quantity);
        let ub = work.remaining[*b] * i128::from(work.lines[*a].quantity);
        ua.cmp(&ub).then(a.cmp(b))
    });
    if selection == Selection::MostExpensive {
        candidates.reverse();
    }
    candidates
}

/// Takes one occurrence out of `left`: its discounted units, then its bought units. Returns the
/// discounted units as (candidate, units), or `None` with `left` unchanged when either side runs
/// short.
fn take_occurrence(
    work: &Work<'_>,
    candidates: &[usize],
    left: &mut [u32],
    (buy, buy_quantity): (&ItemFilter, u32),
    (get, get_quantity): (&ItemFilter, u32),
) -> Option<Vec<(usize, u32)>> {
    let take_get = take_discounted(
        work,
        candidates,
        left,
        (buy, buy_quantity),
        (get, get_quantity),
    )?;
    for (k, n) in &take_get {
        left[*k] -= n;
    }
    let Some(take_buy) = take_bought(work, candidates, left, (buy, buy_quantity)) else {
        for (k, n) in &take_get {
            left[*k] += n;
        }
        return None;
    };
    for (k, n) in &take_buy {
        left[*k] -= n;
    }
    Some(take_get)
}

/// One occurrence's discounted units, taken from the front (selection order), never a unit the
/// buy side needs: with overlapping filters, a unit that could be bought is discounted only if
/// enough other qualifying units remain. `None` if fewer than `get_quantity` can be taken.
fn take_discounted(
    work: &Work<'_>,
    candidates: &[usize],
    left: &[u32],
    (buy, buy_quantity): (&ItemFilter, u32),
    (get, get_quantity): (&ItemFilter, u32),
) -> Option<Vec<(usize, u32)>> {
    let mut buy_capable: u32 = candidates
        .iter()
        .zip(left)
        .filter(|(i, _)| buy.matches(work.lines[**i]))
        .map(|(_, n)| *n)
        .sum();
    let mut take_get = Vec::new();
    let mut need = get_quantity;
    for (k, i) in candidates.iter().enumerate() {
        if need == 0 {
            break;
        }
        if get.matches(work.lines[*i]) && left[k] > 0 {
            let spare = if buy.matches(work.lines[*i]) {
                left[k].min(buy_capable.saturating_sub(buy_quantity))
            } else {
                left[k]
            };
            let n = need.min(spare);
            if n == 0 {
                continue;
            }
            if buy.matches(work.lines[*i]) {
                buy_capable -= n;
            }
            take_get.push((k, n));
            need -= n;
        }
    }
    if need > 0 { None } else { Some(take_get) }
}

/// One occurrence's bought units, taken from the back of the selection order, so the units
/// discounted are the ones at the front. `None` if fewer than `buy_quantity` remain.
fn take_bought(
    work: &Work<'_>,
    candidates: &[usize],
    left: &[u32],
    (buy, buy_quantity): (&ItemFilter, u32),
) -> Option<Vec<(usize, u32)>> {
    let mut take_buy = Vec::new();
    let mut need = buy_quantity;
    for (k, i) in candidates.iter().enumerate().rev() {
        if need == 0 {
            break;
        }
        if buy.matches(work.lines[*i]) && left[k] > 0 {
            let n = need.min(left[k]);
            take_buy.push((k, n));
            need -= n;
        }
    }
    if need > 0 { None } else { Some(take_buy) }
}

/// The exact discount on each line's discounted units, in line order: `n` units at
/// remaining / quantity each, times the percentage.
fn discount_units(
    work: &Work<'_>,
    candidates: &[usize],
    discounted: &[u32],
    percent_off: Ratio,
) -> Vec<Raw> {
    let mut raw: Vec<Raw> = candidates
        .iter()
        .zip(discounted)
        .filter(|(_, n)| **n > 0)
        .map(|(i, n)| Raw {
            index: *i,
            line: Ratio {
                num: work.remaining[*i] * i128::from(*n) * percent_off.num,
                den: i128::from(work.lines[*i].quantity) * percent_off.den * 100,
            },
            units: *n,
        })
        .collect();
    raw.sort_by_key(|r| r.index);
    raw
}
