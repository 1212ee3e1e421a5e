//! The working state promotions discount: each line's remaining value in SKU order, which of
//! its units carry how much of it, and the effect of one promotion on it.
//!
//! A line starts as one *lot*: all its units, unclaimed, sharing its value equally. A promotion
//! that discounts some units of a line and not others (a buy-X-get-Y, an action with
//! `max_quantity`) carves those units into a lot of their own, so a later promotion sees what
//! each unit is still worth: after "buy 5 get 100 free" on 108 units, the 100 free units are
//! worth nothing and the other 8 keep their price. Units that took part in a buy-X-get-Y
//! occurrence (bought or discounted) are *claimed*: no later buy-X-get-Y uses them again.

use std::cell::RefCell;

use commerce_core::{Currency, Money, RoundingMode, allocate_minor};
use rust_decimal::Decimal;

use super::arith::{Ratio, money, round_div};
use super::model::ItemFilter;
use super::priced::{NotApplied, PromotionOutcome};
use crate::cart::{CartLine, PromoCode};

/// Units of one line that share a value and a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Lot {
    /// Units, at least 1.
    pub(super) count: u32,
    /// Their remaining value together, in minor units of price-mode terms.
    pub(super) value: i128,
    /// Used by an earlier buy-X-get-Y occurrence.
    pub(super) claimed: bool,
}

impl Lot {
    /// Compares unit values (`value / count`) without dividing.
    pub(super) fn cmp_unit_value(&self, other: &Lot) -> std::cmp::Ordering {
        (self.value * i128::from(other.count)).cmp(&(other.value * i128::from(self.count)))
    }
}

/// Per-line working state, in SKU order, in minor units of price-mode terms (gross for
/// tax-inclusive prices).
pub(super) struct Work<'c> {
    /// The cart's lines in SKU order: every tie (in allocation, in unit selection) is broken by
    /// SKU, so the order lines were added in never changes a price.
    pub(super) lines: Vec<&'c CartLine>,
    pub(super) currency: Currency,
    pub(super) mode: RoundingMode,
    /// Remaining value per line.
    pub(super) remaining: Vec<i128>,
    /// Per line, its lots once it has more than one (or a claimed one); empty while the line is
    /// one unclaimed lot worth `remaining`. Σ values = `remaining`, Σ counts = quantity.
    pub(super) split: Lots,
    /// Where a line's new lots are put together before they replace its old ones.
    pub(super) lot_scratch: Vec<Lot>,
    /// Price-mode units per discount-basis unit: 1, or 1 + rate for net discounts on
    /// tax-inclusive prices. Empty for gross discounts, where every basis is 1 (read it
    /// through [`Work::basis_of`]).
    pub(super) basis: Vec<Ratio>,
    /// Every basis is 1 (the common case: integer arithmetic throughout).
    pub(super) unit_basis: bool,
    /// Remaining shipping value.
    pub(super) shipping_remaining: i128,
    /// Which lines each item filter matches, found once per filter and pricing call: bit `i`
    /// is line `i` (a cart has at most [`crate::limits::LINES_MAX`] lines). Keyed by the
    /// filter's address, which is stable for the call.
    pub(super) masks: RefCell<Vec<(*const ItemFilter, u128)>>,
    /// The mask of every line.
    pub(super) all_lines: u128,
    /// Part buffers of effects already applied or discarded, for the next evaluation.
    pub(super) spare_parts: RefCell<Vec<Vec<Part>>>,
    /// Line-discount buffers of effects already applied or discarded, likewise.
    pub(super) spare_lines: RefCell<Vec<Vec<(usize, i128)>>>,
    /// Buffers an order discount is spread with, reused across promotions.
    pub(super) scratch: RefCell<Scratch>,
    /// The codes the cart carries, for promotions that need one (at most
    /// [`crate::limits::CODES_MAX`]).
    pub(super) codes: &'c [PromoCode],
    /// Per promotion, what was decided (kept between calls, like the other vectors).
    pub(super) outcomes: Vec<Option<PromotionOutcome>>,
    /// The stacking order's vector, likewise.
    pub(super) stacking: Vec<usize>,
}

/// The vectors a pricing call works in, kept by each thread between calls so that pricing
/// the next cart reuses them instead of allocating about twenty vectors again. A call takes
/// them ([`Buffers::take`]), and gives them back emptied ([`Buffers::give_back`]) when it
/// is done; a call that fails or panics, or one made while another is running on the thread
/// (a tax calculator that prices), simply works with new ones.
#[derive(Default)]
pub(super) struct Buffers {
    pub(super) remaining: Vec<i128>,
    pub(super) subtotals: Vec<i128>,
    pub(super) basis: Vec<Ratio>,
    pub(super) order: Vec<usize>,
    pub(super) position: Vec<usize>,
    pub(super) spans: Vec<(usize, usize)>,
    pub(super) arena: Vec<Lot>,
    pub(super) lot_scratch: Vec<Lot>,
    pub(super) masks: Vec<(*const ItemFilter, u128)>,
    pub(super) spare_parts: Vec<Vec<Part>>,
    pub(super) spare_lines: Vec<Vec<(usize, i128)>>,
    pub(super) scratch: Scratch,
    pub(super) rates: Vec<super::engine::LineRate>,
    pub(super) tax_lines: Vec<i128>,
    pub(super) tax_fees: Vec<i128>,
    pub(super) fees: Vec<super::engine::Fee>,
    pub(super) outcomes: Vec<Option<PromotionOutcome>>,
    pub(super) stacking: Vec<usize>,
    /// The room of the lines' references ([`Work::lines`]), between calls.
    pub(super) line_refs: Vec<usize>,
}

thread_local! {
    /// Boxed, so taking and giving back the buffers moves a pointer, not every vector.
    static BUFFERS: RefCell<Option<Box<Buffers>>> = const { RefCell::new(None) };
}

/// Buffers above this many entries are not kept (a huge cart does not pin its memory).
const KEEP_MAX: usize = 4 * crate::limits::LINES_MAX;

impl Buffers {
    /// This thread's buffers, empty; new ones if another call holds them.
    pub(super) fn take() -> Box<Buffers> {
        BUFFERS
            .try_with(|b| b.try_borrow_mut().ok().and_then(|mut b| b.take()))
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    /// Empties the buffers and keeps them for the thread's next call.
    pub(super) fn give_back(mut self: Box<Self>) {
        fn keep<T>(v: &mut Vec<T>) {
            v.clear();
            if v.capacity() > KEEP_MAX {
                *v = Vec::new();
            }
        }
        keep(&mut self.remaining);
        keep(&mut self.subtotals);
        keep(&mut self.basis);
        keep(&mut self.order);
        keep(&mut self.position);
        keep(&mut self.spans);
        keep(&mut self.arena);
        keep(&mut self.lot_scratch);
        // The keys are addresses of this call's filters: never carried over.
        keep(&mut self.masks);
        self.spare_parts.truncate(4);
        self.spare_parts.iter_mut().for_each(keep);
        self.spare_lines.truncate(4);
        self.spare_lines.iter_mut().for_each(keep);
        keep(&mut self.scratch.weights);
        keep(&mut self.scratch.caps);
        keep(&mut self.scratch.shares);
        keep(&mut self.scratch.remainders);
        keep(&mut self.scratch.candidates);
        keep(&mut self.scratch.plan);
        keep(&mut self.rates);
        keep(&mut self.tax_lines);
        keep(&mut self.tax_fees);
        keep(&mut self.fees);
        keep(&mut self.outcomes);
        keep(&mut self.stacking);
        keep(&mut self.line_refs);
        let _ = BUFFERS.try_with(|b| {
            if let Ok(mut b) = b.try_borrow_mut() {
                *b = Some(self);
            }
        });
    }
}

/// Every line's lots in one buffer, so carving lines does not allocate a vector per line:
/// line `i`'s lots are `arena[start..start + len]` for its span `(start, len)`.
pub(super) struct Lots {
    spans: Vec<(usize, usize)>,
    arena: Vec<Lot>,
}

impl Lots {
    /// `lines` lines, each one unclaimed lot (no lots listed), in the (cleared) vectors
    /// given.
    pub(super) fn new(lines: usize, mut spans: Vec<(usize, usize)>, mut arena: Vec<Lot>) -> Lots {
        spans.clear();
        spans.resize(lines, (0, 0));
        arena.clear();
        Lots { spans, arena }
    }

    /// Line `i`'s lots; empty while it is one unclaimed lot.
    #[inline]
    pub(super) fn of(&self, i: usize) -> &[Lot] {
        let (start, len) = self.spans[i];
        &self.arena[start..start + len]
    }

    /// How many lots line `i` lists (0 while it is one unclaimed lot).
    #[inline]
    pub(super) fn count(&self, i: usize) -> usize {
        self.spans[i].1
    }

    /// Lot `k` of line `i`, if listed.
    #[inline]
    fn get(&self, i: usize, k: usize) -> Option<Lot> {
        let (start, len) = self.spans[i];
        if k < len {
            self.arena.get(start + k).copied()
        } else {
            None
        }
    }

    #[inline]
    fn of_mut(&mut self, i: usize) -> &mut [Lot] {
        let (start, len) = self.spans[i];
        &mut self.arena[start..start + len]
    }

    /// Replaces line `i`'s lots: in their place when the new ones fit, else after every other
    /// line's.
    fn set(&mut self, i: usize, lots: &[Lot]) {
        let (start, len) = self.spans[i];
        if lots.len() <= len {
            self.arena[start..start + lots.len()].copy_from_slice(lots);
            self.spans[i] = (start, lots.len());
        } else {
            if self.arena.capacity() == 0 {
                // Room for a few lots per line: one allocation for the usual cart.
                self.arena.reserve(4 * self.spans.len());
            }
            self.spans[i] = (self.arena.len(), lots.len());
            self.arena.extend_from_slice(lots);
        }
    }
}

/// Buffers reused within one pricing call, so spreading an amount does not allocate.
#[derive(Default)]
pub(super) struct Scratch {
    /// Weights of an allocation.
    pub(super) weights: Vec<i128>,
    /// Caps on its parts.
    pub(super) caps: Vec<i128>,
    /// Its parts.
    pub(super) shares: Vec<i128>,
    /// Its remainders, with their places.
    pub(super) remainders: Vec<u64>,
    /// A buy-X-get-Y's candidate lots.
    pub(super) candidates: Vec<super::buy_x_get_y::Candidate>,
    /// A buy-X-get-Y occurrence's plan.
    pub(super) plan: Vec<(usize, u32)>,
}

/// Some units of one lot that an effect discounts (or only claims).
#[derive(Debug, Clone, Copy)]
pub(super) struct Part {
    /// The line.
    pub(super) line: usize,
    /// The lot within the line, as the state is when the effect was computed.
    pub(super) lot: usize,
    /// Units taken from the front of the lot.
    pub(super) count: u32,
    /// Their value (their share of the lot's value).
    pub(super) value: i128,
    /// The exact discount on them before rounding (minor units); the parts of one line share
    /// a denominator.
    pub(super) exact: Ratio,
    /// The rounded discount on them, `0 ≤ discount ≤ value`.
    pub(super) discount: i128,
    /// They take part in a buy-X-get-Y occurrence.
    pub(super) claim: bool,
}

/// One promotion's effect: rounded discounts per line index, and on shipping. A line-level
/// action gives one discount per line (`lines`), spread over each line's lots by value; a
/// unit-level action says which units carry each line's discount (`parts`, in line order).
#[derive(Default, Clone)]
pub(super) struct Effect {
    lines: Vec<(usize, i128)>,
    parts: Vec<Part>,
    pub(super) shipping: i128,
    pub(super) total: i128,
}

impl Effect {
    pub(super) fn new(lines: Vec<(usize, i128)>, shipping: i128) -> Effect {
        let total = lines.iter().fold(shipping, |acc, (_, d)| acc + *d);
        Effect {
            lines,
            parts: Vec::new(),
            shipping,
            total,
        }
    }

    /// An effect on units.
    pub(super) fn of_parts(mut parts: Vec<Part>) -> Effect {
        parts.sort_by_key(|p| (p.line, p.lot));
        let total = parts.iter().map(|p| p.discount).sum();
        Effect {
            lines: Vec::new(),
            parts,
            shipping: 0,
            total,
        }
    }

    /// Whole-line discounts (`lines`, on lines that are one lot) beside the unit-level
    /// discounts of `parts` (an effect from [`Effect::of_parts`]).
    pub(super) fn with_lines(lines: Vec<(usize, i128)>, parts: Effect) -> Effect {
        let total = lines.iter().fold(parts.total, |acc, (_, d)| acc + *d);
        Effect {
            lines,
            parts: parts.parts,
            shipping: 0,
            total,
        }
    }
}

impl Work<'_> {
    /// Gives the work's vectors back to `buffers`.
    pub(super) fn release(self, buffers: &mut Buffers) {
        buffers.remaining = self.remaining;
        buffers.basis = self.basis;
        buffers.spans = self.split.spans;
        buffers.arena = self.split.arena;
        buffers.lot_scratch = self.lot_scratch;
        buffers.masks = self.masks.into_inner();
        buffers.spare_parts = self.spare_parts.into_inner();
        buffers.spare_lines = self.spare_lines.into_inner();
        buffers.scratch = self.scratch.into_inner();
        buffers.outcomes = self.outcomes;
        buffers.line_refs = super::engine::reuse_for(self.lines);
        buffers.stacking = self.stacking;
    }

    pub(super) fn round(&self, r: Ratio) -> i128 {
        round_div(r.num, r.den, self.mode)
    }

    /// An empty buffer for an effect's parts: one an earlier effect gave back, or a new one.
    pub(super) fn parts_buffer(&self) -> Vec<Part> {
        self.spare_parts
            .borrow_mut()
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(self.lines.len()))
    }

    /// An empty buffer for an effect's line discounts, likewise.
    pub(super) fn lines_buffer(&self) -> Vec<(usize, i128)> {
        self.spare_lines
            .borrow_mut()
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(self.lines.len()))
    }

    /// Takes back an effect's buffers once it is applied or discarded.
    pub(super) fn recycle(&self, effect: Effect) {
        let mut parts = effect.parts;
        if parts.capacity() > 0 {
            parts.clear();
            self.spare_parts.borrow_mut().push(parts);
        }
        let mut lines = effect.lines;
        if lines.capacity() > 0 {
            lines.clear();
            self.spare_lines.borrow_mut().push(lines);
        }
    }

    /// Line `i`'s discount basis (see [`Work::basis`]).
    #[inline]
    pub(super) fn basis_of(&self, i: usize) -> Ratio {
        self.basis.get(i).copied().unwrap_or(Ratio::ONE)
    }

    /// How many lots line `i` has.
    #[inline]
    pub(super) fn lot_count(&self, i: usize) -> usize {
        self.split.count(i).max(1)
    }

    /// Lot `k` of line `i`.
    #[inline]
    pub(super) fn lot(&self, i: usize, k: usize) -> Lot {
        match self.split.get(i, k) {
            Some(lot) => lot,
            None => Lot {
                count: self.lines[i].quantity,
                value: self.remaining[i],
                claimed: false,
            },
        }
    }

    /// The value of the first `count` units of lot `lot` (their share, rounded by the mode).
    pub(super) fn share(&self, lot: Lot, count: u32) -> i128 {
        if count >= lot.count {
            lot.value
        } else {
            round_div(
                lot.value * i128::from(count),
                i128::from(lot.count),
                self.mode,
            )
        }
    }

    /// The lines `filter` matches, as a bit mask.
    pub(super) fn mask(&self, filter: &ItemFilter) -> u128 {
        if matches!(filter, ItemFilter::All) {
            return self.all_lines;
        }
        let key: *const ItemFilter = filter;
        if let Some((_, m)) = self.masks.borrow().iter().find(|(k, _)| *k == key) {
            return *m;
        }
        let m = filter.mask_of(&self.lines);
        self.masks.borrow_mut().push((key, m));
        m
    }

    /// The lines `filter` matches, reusing the mask of `like` when the two filters are equal
    /// (a buy-X-get-Y whose sides are the same filter).
    pub(super) fn mask_like(&self, filter: &ItemFilter, like: &ItemFilter) -> u128 {
        if std::ptr::eq(filter, like) || filter == like {
            self.mask(like)
        } else {
            self.mask(filter)
        }
    }

    /// The indices of the lines `filter` matches, ascending.
    pub(super) fn matching(&self, filter: &ItemFilter) -> impl Iterator<Item = usize> + use<> {
        bits(self.mask(filter))
    }

    /// Whether the matching lines' remaining value, in discount-basis terms, reaches
    /// `threshold` minor units; the value is returned for a message when it does not.
    pub(super) fn basis_value_reaches(
        &self,
        filter: &ItemFilter,
        threshold: i128,
    ) -> std::result::Result<(), Decimal> {
        if self.unit_basis {
            let sum: i128 = self.matching(filter).map(|i| self.remaining[i]).sum();
            return if sum >= threshold {
                Ok(())
            } else {
                Err(Ratio::int(sum).to_decimal())
            };
        }
        let value = self.basis_value(filter);
        if value >= Ratio::int(threshold).to_decimal() {
            Ok(())
        } else {
            Err(value)
        }
    }

    /// Σ remaining value of matching lines in discount-basis terms, in minor units (exact
    /// unless net discounts divide by 1 + rate).
    pub(super) fn basis_value(&self, filter: &ItemFilter) -> Decimal {
        if self.unit_basis {
            let sum: i128 = self.matching(filter).map(|i| self.remaining[i]).sum();
            Ratio::int(sum).to_decimal()
        } else {
            self.matching(filter)
                .map(|i| {
                    let b = self.basis_of(i);
                    Ratio {
                        num: self.remaining[i] * b.den,
                        den: b.num,
                    }
                    .to_decimal()
                })
                .sum()
        }
    }

    pub(super) fn display(&self, minor_value: Decimal) -> Money {
        let minor = Ratio::of(minor_value, 0).num;
        money(minor, self.currency)
    }

    /// Applies an effect computed on this state, calling `on_line` with the discount on each
    /// line it touches (whole lines first, then lines by their lots, each in line order),
    /// zeros left out.
    pub(super) fn apply(&mut self, effect: &Effect, mut on_line: impl FnMut(usize, i128)) {
        for &(i, d) in &effect.lines {
            if d != 0 {
                self.spread_over_lots(i, d);
                self.remaining[i] -= d;
                on_line(i, d);
            }
        }
        for group in effect.parts.chunk_by(|a, b| a.line == b.line) {
            let i = group[0].line;
            self.carve(i, group);
            let d = group.iter().map(|p| p.discount).sum::<i128>();
            self.remaining[i] -= d;
            if d != 0 {
                on_line(i, d);
            }
        }
        self.shipping_remaining -= effect.shipping;
        debug_assert!(self.lots_agree());
    }

    /// Takes line `i`'s discount `d` from its lots in proportion to their value (largest
    /// remainder, ties to the first lot). `d ≤ Σ values`, so no lot goes below zero.
    fn spread_over_lots(&mut self, i: usize, d: i128) {
        let lots = self.split.of_mut(i);
        if lots.is_empty() || d == 0 {
            return;
        }
        let total: i128 = lots.iter().map(|l| l.value).sum();
        if d >= total {
            for lot in lots.iter_mut() {
                lot.value = 0;
            }
            return;
        }
        if lots.len() > LOTS_INLINE {
            let weights: Vec<i128> = lots.iter().map(|l| l.value).collect();
            if let Ok(shares) = allocate_minor(d, &weights) {
                for (lot, s) in lots.iter_mut().zip(shares) {
                    lot.value -= s.min(lot.value);
                }
                return;
            }
        }
        if lots.iter().any(|l| d.checked_mul(l.value).is_none()) {
            // Beyond any real basket (a line worth over 10^19 minor units): take the discount
            // from the lots in order, which keeps the sums exact.
            let mut left = d;
            for lot in lots.iter_mut() {
                let take = left.min(lot.value);
                lot.value -= take;
                left -= take;
            }
            return;
        }
        // A line has a handful of lots: share on the stack.
        let mut remainders = [(0i128, 0usize); LOTS_INLINE];
        let mut given = 0;
        for (k, lot) in lots.iter_mut().enumerate().take(LOTS_INLINE) {
            let exact = d * lot.value;
            // 64-bit division whenever the numbers fit (nearly always): the same quotient.
            let (share, remainder) = match (i64::try_from(exact), i64::try_from(total)) {
                (Ok(e), Ok(t)) => (i128::from(e / t), i128::from(e % t)),
                _ => (exact / total, exact % total),
            };
            remainders[k] = (remainder, k);
            lot.value -= share;
            given += share;
        }
        let n = lots.len().min(LOTS_INLINE);
        let rest = &mut remainders[..n];
        rest.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        for &(_, k) in rest.iter().take(usize::try_from(d - given).unwrap_or(0)) {
            lots[k].value -= 1;
        }
    }

    /// Carves `parts` (all of line `i`, in lot order) out of their lots, discounted and claimed.
    fn carve(&mut self, i: usize, parts: &[Part]) {
        if let [p] = parts
            && self.split.count(i) == 0
            && !p.claim
            && p.count == self.lines[i].quantity
        {
            // The whole line, still one lot: the caller's `remaining −= d` is the change.
            return;
        }
        let mut out = std::mem::take(&mut self.lot_scratch);
        out.clear();
        out.reserve(self.lot_count(i) + parts.len());
        let mut next = parts.iter().peekable();
        for k in 0..self.lot_count(i) {
            let mut rest = self.lot(i, k);
            while let Some(p) = next.next_if(|p| p.lot == k) {
                let count = p.count.min(rest.count);
                if count == 0 {
                    continue;
                }
                out.push(Lot {
                    count,
                    value: p.value - p.discount,
                    claimed: rest.claimed || p.claim,
                });
                rest.count -= count;
                rest.value -= p.value;
            }
            if rest.count > 0 {
                out.push(rest);
            }
        }
        merge_alike(&mut out);
        if out.len() == 1 && !out[0].claimed {
            out.clear();
        }
        self.split.set(i, &out);
        self.lot_scratch = out;
    }

    /// Every split line's lots hold its units and its value.
    fn lots_agree(&self) -> bool {
        (0..self.lines.len()).all(|i| {
            let lots = self.split.of(i);
            lots.is_empty()
                || (lots.iter().map(|l| l.value).sum::<i128>() == self.remaining[i]
                    && lots.iter().map(|l| u64::from(l.count)).sum::<u64>()
                        == u64::from(self.lines[i].quantity)
                    && lots.iter().all(|l| l.value >= 0 && l.count > 0))
        })
    }
}

/// The places of the set bits of `mask`, ascending. Word by word: 64-bit bit tricks are a few
/// instructions, 128-bit ones several more.
pub(super) fn bits(mask: u128) -> impl Iterator<Item = usize> {
    #[allow(clippy::cast_possible_truncation, reason = "the low and high halves")]
    let (mut low, mut high) = (mask as u64, (mask >> 64) as u64);
    std::iter::from_fn(move || {
        if low != 0 {
            let i = low.trailing_zeros() as usize;
            low &= low - 1;
            Some(i)
        } else if high != 0 {
            let i = 64 + high.trailing_zeros() as usize;
            high &= high - 1;
            Some(i)
        } else {
            None
        }
    })
}

/// Whether bit `i` of `mask` is set (`i < 128`).
#[inline]
pub(super) fn has_bit(mask: u128, i: usize) -> bool {
    #[allow(clippy::cast_possible_truncation, reason = "the low and high halves")]
    let word = if i < 64 {
        mask as u64
    } else {
        (mask >> 64) as u64
    };
    (word >> (i % 64)) & 1 != 0
}

/// Lots of one line shared on the stack when a discount spreads over them.
const LOTS_INLINE: usize = 8;

/// Joins neighbouring lots with the same claim and the same unit value, so a line does not
/// fragment into many lots that are one.
fn merge_alike(lots: &mut Vec<Lot>) {
    lots.dedup_by(|b, a| {
        let alike = a.claimed == b.claimed && a.cmp_unit_value(b).is_eq();
        if alike {
            a.count += b.count;
            a.value += b.value;
        }
        alike
    });
}

/// One promotion's effect, or why it did not apply.
pub(super) type Outcome = std::result::Result<Effect, NotApplied>;
