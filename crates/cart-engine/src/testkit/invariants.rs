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
        let (net_plus_tax, gross) = if t.tax_included {
            (l.net.checked_add(&l.tax), l.total)
        } else {
            (l.total.checked_add(&l.tax), l.gross)
        };
        ensure!(
            net_plus_tax == Ok(gross) && (t.tax_included || l.net == l.total),
            "{} net {} + tax {} is not gross {}",
            l.sku,
            l.net,
            l.tax,
            l.gross
        );
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
    ensure!(
        p.adjustments
            .iter()
            .all(|a| a.promotion < p.promotions.len()
                && match a.target {
                    AdjustmentTarget::Line(k) => k < p.lines.len(),
                    AdjustmentTarget::Shipping => true,
                }),
        "an adjustment names a promotion or line the cart does not have"
    );
    for (k, d) in p.promotions.iter().enumerate() {
        let given = sum(
            c,
            p.adjustments
                .iter()
                .filter(|a| a.promotion == k)
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
    ensure!(
        t.net_subtotal == sum(c, p.lines.iter().map(|l| l.net))?,
        "net subtotal is not the lines' net sum"
    );
    ensure!(
        t.original_total.checked_sub(&t.discount_incl_tax) == Ok(t.total),
        "original total {} − discount incl. tax {} is not the total {}",
        t.original_total,
        t.discount_incl_tax,
        t.total
    );
    ensure!(
        t.discount_incl_tax.amount() >= t.discount.amount()
            && (!t.tax_included || t.discount_incl_tax == t.discount),
        "discount incl. tax {} below the discount {}",
        t.discount_incl_tax,
        t.discount
    );
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
        let id = p
            .promotion_of(a)
            .ok_or_else(|| format!("adjustment from unknown promotion {}", a.promotion))?;
        let promotion = promotions
            .iter()
            .find(|q| q.id == *id)
            .ok_or_else(|| format!("adjustment from unknown promotion {id}"))?;
        let ships = matches!(promotion.action, Action::FreeShipping);
        let on_shipping = a.target == AdjustmentTarget::Shipping;
        ensure!(
            ships == on_shipping,
            "{} ({}) adjusted {:?}",
            id,
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
