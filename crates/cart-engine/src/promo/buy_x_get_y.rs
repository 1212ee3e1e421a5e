//! Buy X get Y: which units are bought and which are discounted, occurrence by occurrence.

use super::action::finish;
use super::arith::Ratio;
use super::context::RoundingLevel;
use super::model::{ItemFilter, Selection};
use super::priced::NotApplied;
use super::work::{Lot, Outcome, Part, Work, bits, has_bit};

/// Units of one lot that can take part, in selection order.
pub(super) struct Candidate {
    line: usize,
    lot: usize,
    units: Lot,
    buys: bool,
    gets: bool,
    /// Units not yet bought or discounted.
    left: u32,
    /// Units discounted, and units bought, so far.
    discounted: u32,
    bought: u32,
}

/// Buy X get Y, unit by unit. Only units no earlier buy-X-get-Y used take part. Each
/// occurrence takes `get_quantity` discountable units in the selection order (units already
/// worth nothing are not discounted again), then `buy_quantity` qualifying units from the rest,
/// starting from the opposite end of the price order (so the cheap units are the ones
/// discounted under `Cheapest`); it stops when either runs out or at `max_occurrences`. Bought
/// and discounted units never overlap, so "buy 2 get 2" on 3 units gives nothing and on 4
/// units frees 2; both are claimed, so no later buy-X-get-Y uses them.
pub(super) fn buy_x_get_y(
    work: &Work<'_>,
    level: RoundingLevel,
    (buy, buy_quantity): (&ItemFilter, u32),
    (get, get_quantity): (&ItemFilter, u32),
    percent_off: Ratio,
    max_occurrences: Option<u32>,
    selection: Selection,
) -> Outcome {
    if work.mask(buy) | work.mask_like(get, buy) == 0 {
        return Err(NotApplied::NoMatchingItems);
    }
    // Every matching unit may already be claimed: then no occurrence fits.
    let (candidates, plan) = {
        let mut scratch = work.scratch.borrow_mut();
        (
            std::mem::take(&mut scratch.candidates),
            std::mem::take(&mut scratch.plan),
        )
    };
    let mut candidates = candidates_in_selection_order(work, buy, get, selection, candidates);
    let mut occurrences = 0u32;
    let mut state = Occurrences::new(&candidates, buy_quantity, get_quantity, plan);
    while max_occurrences.is_none_or(|m| occurrences < m) {
        if !state.take_one(&mut candidates) {
            break;
        }
        occurrences += 1;
    }
    let parts = (occurrences > 0).then(|| parts(work, &candidates, percent_off));
    {
        let mut scratch = work.scratch.borrow_mut();
        candidates.clear();
        state.plan.clear();
        scratch.candidates = candidates;
        scratch.plan = state.plan;
    }
    match parts {
        Some(parts) => Ok(finish(parts, work, level)),
        None => Err(NotApplied::NotEnoughItems),
    }
}

/// Unclaimed lots of lines matching either side, ordered by unit value, cheapest first (ties
/// by SKU, then lot), or most expensive first under [`Selection::MostExpensive`].
fn candidates_in_selection_order(
    work: &Work<'_>,
    buy: &ItemFilter,
    get: &ItemFilter,
    selection: Selection,
    mut candidates: Vec<Candidate>,
) -> Vec<Candidate> {
    candidates.clear();
    candidates.reserve(work.lines.len());
    let (buy, get) = (work.mask(buy), work.mask_like(get, buy));
    for i in bits(buy | get) {
        let (buys, gets) = (has_bit(buy, i), has_bit(get, i));
        for k in 0..work.lot_count(i) {
            let units = work.lot(i, k);
            if units.claimed {
                continue;
            }
            candidates.push(Candidate {
                line: i,
                lot: k,
                units,
                buys,
                // A unit worth nothing cannot be discounted, only bought.
                gets: gets && units.value > 0,
                left: units.count,
                discounted: 0,
                bought: 0,
            });
        }
    }
    candidates.sort_by(|a, b| {
        a.units
            .cmp_unit_value(&b.units)
            .then(a.line.cmp(&b.line))
            .then(a.lot.cmp(&b.lot))
    });
    if selection == Selection::MostExpensive {
        candidates.reverse();
    }
    candidates
}

/// The running state of the occurrence loop: each step is amortized constant time, so a line of
/// many units with a small X and Y stays cheap.
struct Occurrences {
    buy_quantity: u32,
    get_quantity: u32,
    /// Σ `left` over candidates that can be bought.
    buy_capable: u64,
    /// Candidates before this have nothing left to discount.
    front: usize,
    /// Candidates from this on have nothing left to buy.
    back: usize,
    /// The discounted units an occurrence plans to take: (candidate, units).
    plan: Vec<(usize, u32)>,
}

impl Occurrences {
    fn new(
        candidates: &[Candidate],
        buy_quantity: u32,
        get_quantity: u32,
        plan: Vec<(usize, u32)>,
    ) -> Occurrences {
        Occurrences {
            buy_quantity,
            get_quantity,
            buy_capable: candidates
                .iter()
                .filter(|c| c.buys)
                .map(|c| u64::from(c.left))
                .sum(),
            front: 0,
            back: candidates.len(),
            plan,
        }
    }

    /// Takes one occurrence: its discounted units from the front (never a unit the buy side
    /// needs: with overlapping filters, a unit that could be bought is discounted only if enough
    /// other qualifying units remain), then its bought units from the back. False, with nothing
    /// taken, when either side runs short.
    fn take_one(&mut self, candidates: &mut [Candidate]) -> bool {
        if self.buy_capable < u64::from(self.buy_quantity) {
            return false;
        }
        while self.front < candidates.len()
            && (!candidates[self.front].gets || candidates[self.front].left == 0)
        {
            self.front += 1;
        }
        // Plan the discounted units without taking them.
        let mut spare = self.buy_capable - u64::from(self.buy_quantity);
        let mut need = self.get_quantity;
        let plan = &mut self.plan;
        plan.clear();
        for (k, c) in candidates.iter().enumerate().skip(self.front) {
            if need == 0 {
                break;
            }
            if !c.gets || c.left == 0 {
                continue;
            }
            let can = if c.buys {
                u32::try_from(u64::from(c.left).min(spare)).unwrap_or(c.left)
            } else {
                c.left
            };
            let n = need.min(can);
            if n == 0 {
                continue;
            }
            if c.buys {
                spare -= u64::from(n);
            }
            plan.push((k, n));
            need -= n;
        }
        if need > 0 {
            return false;
        }
        for &(k, n) in &self.plan {
            let c = &mut candidates[k];
            c.left -= n;
            c.discounted += n;
            if c.buys {
                self.buy_capable -= u64::from(n);
            }
        }
        // The bought units, from the back; the spare check guarantees enough remain.
        let mut need = self.buy_quantity;
        while need > 0 && self.back > 0 {
            let c = &mut candidates[self.back - 1];
            if !c.buys || c.left == 0 {
                self.back -= 1;
                continue;
            }
            let n = need.min(c.left);
            c.left -= n;
            c.bought += n;
            self.buy_capable -= u64::from(n);
            need -= n;
        }
        debug_assert_eq!(need, 0, "the buy side was counted before taking");
        true
    }
}

/// The parts an application carves: each candidate's discounted units (at their value ×
/// the percentage), then its bought units (no discount), all claimed.
fn parts(work: &Work<'_>, candidates: &[Candidate], percent_off: Ratio) -> Vec<Part> {
    let den = percent_off.den * 100;
    let mut out = work.parts_buffer();
    for c in candidates {
        let mut rest = c.units;
        if c.discounted > 0 {
            let value = work.share(rest, c.discounted);
            out.push(Part {
                line: c.line,
                lot: c.lot,
                count: c.discounted,
                value,
                exact: Ratio {
                    num: value * percent_off.num,
                    den,
                },
                discount: 0,
                claim: true,
            });
            rest = Lot {
                count: rest.count - c.discounted,
                value: rest.value - value,
                claimed: rest.claimed,
            };
        }
        if c.bought > 0 {
            out.push(Part {
                line: c.line,
                lot: c.lot,
                count: c.bought,
                value: work.share(rest, c.bought),
                exact: Ratio { num: 0, den },
                discount: 0,
                claim: true,
            });
        }
    }
    // In line and lot order, the discounted units before the bought ones of the same lot (the
    // order the application carves them in).
    out.sort_by_key(|p| (p.line, p.lot));
    out
}
