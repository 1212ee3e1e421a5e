//! The working state promotions discount: each line's remaining value in SKU order, and the
//! effect of one promotion on it.

use std::collections::BTreeSet;

use commerce_core::{Currency, Money, RoundingMode};
use rust_decimal::Decimal;

use super::arith::{Ratio, money, round_div};
use super::model::ItemFilter;
use super::priced::NotApplied;
use crate::cart::CartLine;

/// Per-line working state, in SKU order, in minor units of price-mode terms (gross for
/// tax-inclusive prices).
pub(super) struct Work<'c> {
    /// The cart's lines in SKU order: every tie (in allocation, in buy-X-get-Y selection) is
    /// broken by SKU, so the order lines were added in never changes a price.
    pub(super) lines: Vec<&'c CartLine>,
    pub(super) currency: Currency,
    pub(super) mode: RoundingMode,
    /// Remaining value per line.
    pub(super) remaining: Vec<i128>,
    /// Price-mode units per discount-basis unit: 1, or 1 + rate for net discounts on
    /// tax-inclusive prices.
    pub(super) basis: Vec<Ratio>,
    /// Every basis is 1 (the common case: integer arithmetic throughout).
    pub(super) unit_basis: bool,
    /// Remaining shipping value.
    pub(super) shipping_remaining: i128,
    /// The codes the cart carries, for promotions that need one.
    pub(super) codes: BTreeSet<&'c str>,
}

/// One promotion's effect: rounded discounts per line index, and on shipping.
#[derive(Default, Clone)]
pub(super) struct Effect {
    pub(super) lines: Vec<(usize, i128)>,
    pub(super) shipping: i128,
    pub(super) total: i128,
}

impl Effect {
    pub(super) fn new(lines: Vec<(usize, i128)>, shipping: i128) -> Effect {
        let total = lines.iter().fold(shipping, |acc, (_, d)| acc + *d);
        Effect {
            lines,
            shipping,
            total,
        }
    }
}

impl Work<'_> {
    pub(super) fn round(&self, r: Ratio) -> i128 {
        round_div(r.num, r.den, self.mode)
    }

    pub(super) fn matching<'f>(
        &'f self,
        filter: &'f ItemFilter,
    ) -> impl Iterator<Item = usize> + 'f {
        self.lines
            .iter()
            .enumerate()
            .filter(move |(_, l)| filter.matches(l))
            .map(|(i, _)| i)
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
                    let b = self.basis[i];
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

    pub(super) fn apply(&mut self, effect: &Effect) {
        for (i, d) in &effect.lines {
            self.remaining[*i] -= *d;
        }
        self.shipping_remaining -= effect.shipping;
    }
}

/// One promotion's effect, or why it did not apply.
pub(super) type Outcome = std::result::Result<Effect, NotApplied>;
