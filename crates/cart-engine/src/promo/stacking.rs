//! Running the promotions: stacking order, exclusive promotions, stacking groups, and one
//! diagnostic per promotion.

use commerce_core::Currency;

use super::action::compute;
use super::arith::money;
use super::condition::check_condition;
use super::context::{PricingContext, RoundingLevel};
use super::model::Promotion;
use super::priced::{
    Adjustment, AdjustmentTarget, NotApplied, PromotionDiagnostic, PromotionOutcome,
};
use super::work::{Effect, Outcome, Work};

/// Applies the promotions in stacking order; returns one diagnostic per promotion (in the order
/// given) and the effects applied, in application order.
pub(super) fn run_promotions(
    work: &mut Work<'_>,
    promotions: &[Promotion],
    ctx: &PricingContext<'_>,
    (level, cart_index): (RoundingLevel, &[usize]),
) -> (Vec<PromotionDiagnostic>, Vec<Adjustment>) {
    let mut outcomes = std::mem::take(&mut work.outcomes);
    outcomes.clear();
    outcomes.resize_with(promotions.len(), || None);
    let order = std::mem::take(&mut work.stacking);
    let mut run = Run {
        promotions,
        ctx,
        level,
        cart_index,
        outcomes,
        // Room for a share of each line and shipping from a few promotions, so the usual
        // cart does not grow it: at most one per line and shipping per promotion.
        adjustments: Vec::with_capacity(
            (work.lines.len() + 1)
                .saturating_mul(promotions.len())
                .min(4 * (work.lines.len() + 1) + promotions.len()),
        ),
    };
    let order = run.stacking_order(work.currency, order);
    if !run.apply_best_exclusive(work, &order) {
        run.apply_stacking(work, &order);
    }
    work.stacking = order;
    let (diagnostics, adjustments, outcomes) = run.into_diagnostics();
    work.outcomes = outcomes;
    (diagnostics, adjustments)
}

/// One pass over the promotions: what has been decided for each, and what applied.
struct Run<'p> {
    promotions: &'p [Promotion],
    ctx: &'p PricingContext<'p>,
    level: RoundingLevel,
    /// Per promotion, in the order given; `None` until decided.
    outcomes: Vec<Option<PromotionOutcome>>,
    /// `cart_index[i]` is the cart line at SKU-order place `i`.
    cart_index: &'p [usize],
    /// Each applied promotion's share of each line and of shipping, in application order.
    adjustments: Vec<Adjustment>,
}

impl<'p> Run<'p> {
    /// Sets aside promotions in another currency or with impossible numbers, and orders the rest
    /// for stacking.
    fn stacking_order(&mut self, currency: Currency, mut order: Vec<usize>) -> Vec<usize> {
        let promotions = self.promotions;
        order.clear();
        order.reserve(promotions.len());
        for (i, p) in promotions.iter().enumerate() {
            if p.currency().is_some_and(|c| c != currency) {
                self.not_applied(i, NotApplied::CurrencyMismatch);
            } else if !p.numbers_in_bounds() {
                self.not_applied(i, NotApplied::InvalidRule);
            } else {
                order.push(i);
            }
        }
        // Priority first; then a stacking group sorts by its name and a lone promotion by its
        // id, so a group's place never depends on which of its members exist.
        fn key(p: &Promotion) -> &str {
            p.stacking_group.as_deref().unwrap_or(p.id.as_str())
        }
        order.sort_by(|a, b| {
            let (pa, pb) = (&promotions[*a], &promotions[*b]);
            pb.priority
                .cmp(&pa.priority)
                .then_with(|| key(pa).cmp(key(pb)))
                .then_with(|| pa.id.cmp(&pb.id))
        });
        order
    }

    /// Exclusive promotions: the best one that applies is the only promotion on the cart, and
    /// every promotion not yet decided is suppressed by it. Returns whether one applied.
    fn apply_best_exclusive(&mut self, work: &mut Work<'_>, order: &[usize]) -> bool {
        let promotions = self.promotions;
        let exclusives = order.iter().copied().filter(|i| promotions[*i].exclusive);
        let Some((winner, effect)) = self.best_of(exclusives, work) else {
            return false;
        };
        self.apply(work, winner, effect);
        for &i in order {
            if self.outcomes[i].is_none() {
                self.not_applied(
                    i,
                    NotApplied::SuppressedByExclusive {
                        by: promotions[winner].id.clone(),
                    },
                );
            }
        }
        true
    }

    /// The non-exclusive promotions in stacking order: each sees what earlier ones left. A
    /// stacking group is settled where its first member comes up.
    fn apply_stacking(&mut self, work: &mut Work<'_>, order: &[usize]) {
        let promotions = self.promotions;
        for &i in order.iter().filter(|i| !promotions[**i].exclusive) {
            match &promotions[i].stacking_group {
                None => match evaluate(&promotions[i], work, self.ctx, self.level) {
                    Ok(effect) => self.apply(work, i, effect),
                    Err(reason) => self.not_applied(i, reason),
                },
                // Settling a group decides every non-exclusive member of it: a member already
                // decided is one of a group settled earlier.
                Some(group) => {
                    if self.outcomes[i].is_none() {
                        self.apply_best_of_group(work, order, group);
                    }
                }
            }
        }
    }

    /// A stacking group keeps only its best deal: its non-exclusive members are evaluated on the
    /// same state, the largest discount applies, and the members not yet decided lost to it.
    fn apply_best_of_group(&mut self, work: &mut Work<'_>, order: &[usize], group: &str) {
        let promotions = self.promotions;
        let members = order.iter().copied().filter(|j| {
            !promotions[*j].exclusive && promotions[*j].stacking_group.as_deref() == Some(group)
        });
        let Some((winner, effect)) = self.best_of(members, work) else {
            return;
        };
        self.apply(work, winner, effect);
        for &j in order {
            if promotions[j].stacking_group.as_deref() == Some(group) && self.outcomes[j].is_none()
            {
                self.not_applied(
                    j,
                    NotApplied::LostToBetterDeal {
                        group: group.to_owned(),
                        winner: promotions[winner].id.clone(),
                    },
                );
            }
        }
    }

    /// Evaluates `candidates` on the current state without changing it, and records why each
    /// that cannot apply does not. The largest discount wins; the first of equals wins a tie.
    fn best_of(
        &mut self,
        candidates: impl Iterator<Item = usize>,
        work: &Work<'_>,
    ) -> Option<(usize, Effect)> {
        let mut best: Option<(usize, Effect)> = None;
        for i in candidates {
            match evaluate(&self.promotions[i], work, self.ctx, self.level) {
                Ok(effect) => {
                    if best.as_ref().is_none_or(|(_, b)| effect.total > b.total) {
                        if let Some((_, lost)) = best.replace((i, effect)) {
                            work.recycle(lost);
                        }
                    } else {
                        work.recycle(effect);
                    }
                }
                Err(reason) => self.not_applied(i, reason),
            }
        }
        best
    }

    /// Applies promotion `i`'s effect to the working state and records it.
    fn apply(&mut self, work: &mut Work<'_>, i: usize, effect: Effect) {
        let currency = work.currency;
        self.outcomes[i] = Some(PromotionOutcome::Applied {
            discount: money(effect.total, currency),
        });
        let (adjustments, cart_index) = (&mut self.adjustments, self.cart_index);
        work.apply(&effect, |line, d| {
            adjustments.push(Adjustment {
                target: AdjustmentTarget::Line(cart_index[line]),
                promotion: i,
                amount: money(d, currency),
            });
        });
        if effect.shipping != 0 {
            self.adjustments.push(Adjustment {
                target: AdjustmentTarget::Shipping,
                promotion: i,
                amount: money(effect.shipping, currency),
            });
        }
        work.recycle(effect);
    }

    fn not_applied(&mut self, i: usize, reason: NotApplied) {
        self.outcomes[i] = Some(PromotionOutcome::NotApplied(reason));
    }

    /// One diagnostic per promotion, in the order given, and the adjustments; the outcomes'
    /// vector is given back emptied.
    #[allow(
        clippy::type_complexity,
        reason = "three plain vectors, named at the one caller"
    )]
    fn into_diagnostics(
        mut self,
    ) -> (
        Vec<PromotionDiagnostic>,
        Vec<Adjustment>,
        Vec<Option<PromotionOutcome>>,
    ) {
        let diagnostics = self
            .promotions
            .iter()
            .zip(self.outcomes.drain(..))
            .map(|(p, o)| PromotionDiagnostic {
                promotion_id: p.id.clone(),
                // Not `unwrap_or`, which would build the default (and drop it) every time.
                outcome: match o {
                    Some(o) => o,
                    None => PromotionOutcome::NotApplied(NotApplied::NothingToDiscount),
                },
            })
            .collect();
        (diagnostics, self.adjustments, self.outcomes)
    }
}

/// Evaluates one promotion on the current state without changing it.
fn evaluate(
    p: &Promotion,
    work: &Work<'_>,
    ctx: &PricingContext<'_>,
    level: RoundingLevel,
) -> Outcome {
    if let Some(code) = &p.code
        && !work.codes.contains(code)
    {
        return Err(NotApplied::CodeMissing);
    }
    if let Some(condition) = &p.condition {
        check_condition(condition, work, ctx)
            .map_err(|detail| NotApplied::ConditionFailed { detail })?;
    }
    let effect = compute(&p.action, work, level)?;
    if effect.total == 0 {
        work.recycle(effect);
        return Err(NotApplied::NothingToDiscount);
    }
    Ok(effect)
}
