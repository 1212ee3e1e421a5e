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
    // Lines that can take part, ordered by unit value, cheapest first (ties by SKU).
    let mut candidates: Vec<usize> = work
        .lines
        .iter()
        .enumerate()
        .filter(|(_, l)| buy.matches(l) || get.matches(l))
        .map(|(i, _)| i)
        .collect();
    if candidates.is_empty() {
        return Err(NotApplied::NoMatchingItems);
    }
    // Unit values remaining[i] / quantity[i], compared without dividing.
    candidates.sort_by(|a, b| {
        let ua = work.remaining[*a] * i128::from(work.lines[*b].quantity);
        let ub = work.remaining[*b] * i128::from(work.lines[*a].quantity);
        ua.cmp(&ub).then(a.cmp(b))
    });
    if selection == Selection::MostExpensive {
        candidates.reverse();
    }
    let mut left: Vec<u32> = candidates.iter().map(|i| work.lines[*i].quantity).collect();
    let mut discounted: Vec<u32> = vec![0; candidates.len()];
    let mut occurrences = 0u32;
    loop {
        if max_occurrences.is_some_and(|m| occurrences >= m) {
            break;
        }
        // Take the discounted units from the front (selection order), never a unit the buy
        // side needs: with overlapping filters, a unit that could be bought is discounted only
        // if enough other qualifying units remain...
        let mut buy_capable: u32 = candidates
            .iter()
            .zip(&left)
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
        if need > 0 {
            break;
        }
        for (k, n) in &take_get {
            left[*k] -= n;
        }
        // ...and the qualifying units from the back.
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
        if need > 0 {
            for (k, n) in &take_get {
                left[*k] += n;
            }
            break;
        }
        for (k, n) in &take_buy {
            left[*k] -= n;
        }
        for (k, n) in take_get {
            discounted[k] += n;
        }
        occurrences += 1;
    }
    if occurrences == 0 {
        return Err(NotApplied::NotEnoughItems);
    }
    let mut raw: Vec<Raw> = candidates
        .iter()
        .zip(&discounted)
        .filter(|(_, n)| **n > 0)
        .map(|(i, n)| Raw {
            index: *i,
            // n units at remaining / quantity each, times the percentage.
            line: Ratio {
                num: work.remaining[*i] * i128::from(*n) * percent_off.num,
                den: i128::from(work.lines[*i].quantity) * percent_off.den * 100,
            },
            units: *n,
        })
        .collect();
    raw.sort_by_key(|r| r.index);
    Ok(finish(raw, work, level))
}
