//! Running the promotions: stacking order, exclusive promotions, stacking groups, and one
//! diagnostic per promotion.

use std::collections::BTreeSet;

use super::action::compute;
use super::arith::money;
use super::condition::check_condition;
use super::context::{PricingContext, RoundingLevel};
use super::model::Promotion;
use super::priced::{NotApplied, PromotionDiagnostic, PromotionOutcome};
use super::work::{Effect, Outcome, Work};

/// Applies the promotions in stacking order; returns one diagnostic per promotion (in the order
/// given) and the effects applied, in application order.
pub(super) fn run_promotions(
    work: &mut Work<'_>,
    promotions: &[Promotion],
    ctx: &PricingContext<'_>,
    level: RoundingLevel,
) -> (Vec<PromotionDiagnostic>, Vec<(usize, Effect)>) {
    let mut outcomes: Vec<Option<PromotionOutcome>> = vec![None; promotions.len()];
    let mut effects = Vec::new();
    let currency = work.currency;

    let mut order: Vec<usize> = Vec::with_capacity(promotions.len());
    for (i, p) in promotions.iter().enumerate() {
        if p.currency().is_some_and(|c| c != currency) {
            outcomes[i] = Some(PromotionOutcome::NotApplied(NotApplied::CurrencyMismatch));
        } else if !p.numbers_in_bounds() {
            outcomes[i] = Some(PromotionOutcome::NotApplied(NotApplied::InvalidRule));
        } else {
            order.push(i);
        }
    }
    // Priority first; then a stacking group sorts by its name and a lone promotion by its id, so
    // a group's place never depends on which of its members exist.
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

    // Exclusive promotions: the best one that applies is the only promotion on the cart.
    let mut best_exclusive: Option<(usize, Effect)> = None;
    for &i in order.iter().filter(|i| promotions[**i].exclusive) {
        match evaluate(&promotions[i], work, ctx, level) {
            Ok(effect) => {
                let better = best_exclusive
                    .as_ref()
                    .is_none_or(|(_, best)| effect.total > best.total);
                if better {
                    best_exclusive = Some((i, effect));
                }
            }
            Err(reason) => outcomes[i] = Some(PromotionOutcome::NotApplied(reason)),
        }
    }
    if let Some((winner, effect)) = best_exclusive {
        work.apply(&effect);
        outcomes[winner] = Some(PromotionOutcome::Applied {
            discount: money(effect.total, currency),
        });
        effects.push((winner, effect));
        for &i in &order {
            if outcomes[i].is_none() {
                outcomes[i] = Some(PromotionOutcome::NotApplied(
                    NotApplied::SuppressedByExclusive {
                        by: promotions[winner].id.clone(),
                    },
                ));
            }
        }
    } else {
        let mut groups_done: BTreeSet<&str> = BTreeSet::new();
        for &i in order.iter().filter(|i| !promotions[**i].exclusive) {
            let p = &promotions[i];
            match &p.stacking_group {
                None => match evaluate(p, work, ctx, level) {
                    Ok(effect) => {
                        work.apply(&effect);
                        outcomes[i] = Some(PromotionOutcome::Applied {
                            discount: money(effect.total, currency),
                        });
                        effects.push((i, effect));
                    }
                    Err(reason) => outcomes[i] = Some(PromotionOutcome::NotApplied(reason)),
                },
                Some(group) => {
                    if !groups_done.insert(group.as_str()) {
                        continue;
                    }
                    let mut best: Option<(usize, Effect)> = None;
                    let members = order.iter().copied().filter(|j| {
                        !promotions[*j].exclusive
                            && promotions[*j].stacking_group.as_deref() == Some(group)
                    });
                    for j in members {
                        match evaluate(&promotions[j], work, ctx, level) {
                            Ok(effect) => {
                                if best.as_ref().is_none_or(|(_, b)| effect.total > b.total) {
                                    best = Some((j, effect));
                                }
                            }
                            Err(reason) => outcomes[j] = Some(PromotionOutcome::NotApplied(reason)),
                        }
                    }
                    if let Some((winner, effect)) = best {
                        work.apply(&effect);
                        outcomes[winner] = Some(PromotionOutcome::Applied {
                            discount: money(effect.total, currency),
                        });
                        effects.push((winner, effect));
                        for &j in &order {
                            if promotions[j].stacking_group.as_deref() == Some(group)
                                && outcomes[j].is_none()
                            {
                                outcomes[j] = Some(PromotionOutcome::NotApplied(
                                    NotApplied::LostToBetterDeal {
                                        group: group.clone(),
                                        winner: promotions[winner].id.clone(),
                                    },
                                ));
                            }
                        }
                    }
                }
            }
        }
    }

    let diagnostics = promotions
        .iter()
        .zip(outcomes)
        .map(|(p, o)| PromotionDiagnostic {
            promotion_id: p.id.clone(),
            outcome: o.unwrap_or(PromotionOutcome::NotApplied(NotApplied::NothingToDiscount)),
        })
        .collect();
    (diagnostics, effects)
}

/// Evaluates one promotion on the current state without changing it.
fn evaluate(
    p: &Promotion,
    work: &Work<'_>,
    ctx: &PricingContext<'_>,
    level: RoundingLevel,
) -> Outcome {
    if let Some(code) = &p.code
        && !work.codes.contains(code.as_str())
    {
        return Err(NotApplied::CodeMissing);
    }
    if let Some(condition) = &p.condition {
        check_condition(condition, work, ctx)
            .map_err(|detail| NotApplied::ConditionFailed { detail })?;
    }
    let effect = compute(&p.action, work, level)?;
    if effect.total == 0 {
        return Err(NotApplied::NothingToDiscount);
    }
    Ok(effect)
}
