//! The invariants every [`PricedCart`] must satisfy, as one checker that property tests and
//! fuzz targets share.

use commerce_core::Money;

use crate::{Action, AdjustmentTarget, PricedCart, Promotion, PromotionOutcome};

fn sum(
    currency: commerce_core::Currency,
    items: impl Iterator<Item = Money>,
) -> Result<Money, String> {
    items
        .into_iter()
        .try_fold(Money::zero(currency), |acc, m| acc.checked_add(&m))
        .map_err(|e| e.to_string())
}

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

/// Checks a priced cart:
/// - `total = subtotal − discount + fees + shipping (+ tax when tax-exclusive)`;
/// - every amount is in the cart's currency and in minor units; nothing is negative;
/// - no line's discount exceeds its subtotal, and each line's discount is the sum of its
///   adjustments; shipping's discount is the sum of shipping adjustments;
/// - each applied promotion's adjustments sum exactly to its reported discount, and a promotion
///   that did not apply has none;
/// - the tax total is the sum of the pieces' taxes.
///
/// # Errors
/// A description of the first broken invariant.
pub fn check_priced_cart(p: &PricedCart) -> Result<(), String> {
    let c = p.currency;
    let t = &p.totals;
    let mut expected = t
        .subtotal
        .checked_sub(&t.discount)
        .and_then(|m| m.checked_add(&t.fees))
        .and_then(|m| m.checked_add(&t.shipping))
        .map_err(|e| e.to_string())?;
    if !t.tax_included {
        expected = expected.checked_add(&t.tax).map_err(|e| e.to_string())?;
    }
    ensure!(t.total == expected, "total {} is not {expected}", t.total);
    for m in [t.subtotal, t.discount, t.fees, t.shipping, t.tax, t.total] {
        ensure!(
            m.currency() == c && m.is_rounded() && !m.is_negative(),
            "bad total amount {m}"
        );
    }
    for l in &p.lines {
        ensure!(
            !l.discount.is_negative() && l.discount.amount() <= l.subtotal.amount(),
            "{} discount out of range",
            l.sku
        );
        ensure!(
            Ok(l.total) == l.subtotal.checked_sub(&l.discount),
            "{} total is not subtotal − discount",
            l.sku
        );
        ensure!(!l.tax.is_negative(), "{} negative tax", l.sku);
        let adjusted = sum(c, p.line_adjustments(&l.sku).map(|a| a.amount))?;
        ensure!(
            adjusted == l.discount,
            "{} discount {} but adjustments {adjusted}",
            l.sku,
            l.discount
        );
    }
    ensure!(
        t.subtotal == sum(c, p.lines.iter().map(|l| l.subtotal))?,
        "subtotal is not the lines' sum"
    );
    let shipping_discount = p.shipping.as_ref().map_or(Money::zero(c), |s| s.discount);
    if let Some(s) = &p.shipping {
        ensure!(
            !s.total.is_negative() && s.total.amount() <= s.price.amount(),
            "shipping total out of range"
        );
    }
    let shipping_adjusted = sum(
        c,
        p.adjustments
            .iter()
            .filter(|a| a.target == AdjustmentTarget::Shipping)
            .map(|a| a.amount),
    )?;
    ensure!(
        shipping_adjusted == shipping_discount,
        "shipping discount is not its adjustments"
    );
    ensure!(
        p.adjustments.iter().all(|a| a.amount.is_positive()),
        "an adjustment is not positive"
    );
    let lines_discount = sum(c, p.lines.iter().map(|l| l.discount))?;
    ensure!(
        Ok(t.discount) == lines_discount.checked_add(&shipping_discount),
        "discount total mismatch"
    );
    for d in &p.promotions {
        let given = sum(
            c,
            p.adjustments
                .iter()
                .filter(|a| a.promotion_id == d.promotion_id)
                .map(|a| a.amount),
        )?;
        match d.outcome {
            PromotionOutcome::Applied { discount } => {
                ensure!(
                    discount.is_positive() && given == discount,
                    "{} reports {discount}, gave {given}",
                    d.promotion_id
                );
            }
            PromotionOutcome::NotApplied(_) => ensure!(
                given.is_zero(),
                "{} did not apply but gave {given}",
                d.promotion_id
            ),
        }
    }
    let taxes = p
        .lines
        .iter()
        .map(|l| l.tax)
        .chain(p.shipping.iter().map(|s| s.tax))
        .chain(p.fees.iter().map(|f| f.tax));
    ensure!(t.tax == sum(c, taxes)?, "tax total is not the pieces' sum");
    Ok(())
}

/// [`check_priced_cart`], plus what needs the promotions that priced the cart: only a
/// free-shipping promotion discounts shipping (an order discount never spills onto it), and a
/// free-shipping promotion discounts nothing else.
///
/// # Errors
/// A description of the first broken invariant.
pub fn check_priced_cart_for(p: &PricedCart, promotions: &[Promotion]) -> Result<(), String> {
    check_priced_cart(p)?;
    for a in &p.adjustments {
        let promotion = promotions
            .iter()
            .find(|q| q.id == a.promotion_id)
            .ok_or_else(|| format!("adjustment from unknown promotion {}", a.promotion_id))?;
        let ships = matches!(promotion.action, Action::FreeShipping);
        let on_shipping = a.target == AdjustmentTarget::Shipping;
        ensure!(
            ships == on_shipping,
            "{} ({}) adjusted {:?}",
            a.promotion_id,
            if ships {
                "free shipping"
            } else {
                "not a shipping promotion"
            },
            a.target
        );
    }
    Ok(())
}
