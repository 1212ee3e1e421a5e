//! Anonymous-to-user cart merge at login.

use chrono::{DateTime, Utc};
use commerce_core::Sku;
use serde::{Deserialize, Serialize};

use crate::cart::{Cart, CartStatus};
use crate::limits::CODES_MAX;
use crate::{Error, Result};

/// How a guest line combines with the user's line for the same SKU.
///
/// Lines whose SKU is only in one cart are always kept (up to the line limit). Codes are
/// united (up to the code limit); the user's shipping address wins when both have one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MergeStrategy {
    /// Add the quantities, capped at the user cart's [`crate::CartLimits`]. **The default**: nothing the
    /// shopper put in either cart is lost, which is what people expect after logging in.
    #[default]
    SumCapped,
    /// Keep the larger of the two quantities (commercetools' choice).
    TakeLarger,
    /// The guest line replaces the user's line, price snapshot included (Vendure's choice at
    /// login): the cart the shopper just built is the one they meant.
    GuestReplaces,
}

/// What a merge did.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MergeReport {
    /// False when this guest cart had been merged into this user cart before: nothing changed.
    pub merged: bool,
    /// SKUs whose quantity was capped at the per-line limit.
    pub capped: Vec<Sku>,
    /// Guest lines dropped because the user cart was full.
    pub dropped: Vec<Sku>,
}

/// Merges the anonymous `guest` cart into the user's cart `user` with `strategy`.
///
/// The guest cart is marked [`CartStatus::Merged`]; the user cart remembers the guest's id, so
/// merging the same guest cart again changes nothing ([`MergeReport::merged`] is false). That
/// makes the two writes a caller makes (user cart, guest cart) safe to retry in any order.
///
/// ```
/// use cart_engine::{Cart, CartCommand, MergeStrategy, Mutation, merge};
/// use commerce_core::{CartId, Currency, UserId, testkit::{sample_product, t0}};
///
/// let tee = sample_product("p-1", "TEE");
/// let mut guest = Cart::new(CartId::new("guest")?, None, Currency::EUR, None, t0());
/// let _ = guest.execute(CartCommand::AddLine { product: &tee, quantity: 2, gift_wrap: false }, &Mutation::at(t0()))?;
/// let mut user = Cart::new(CartId::new("user-cart")?, Some(UserId::new("u-1")?), Currency::EUR, None, t0());
/// let _ = user.execute(CartCommand::AddLine { product: &tee, quantity: 1, gift_wrap: false }, &Mutation::at(t0()))?;
///
/// assert!(merge(&mut user, &mut guest, MergeStrategy::default(), t0())?.merged);
/// assert_eq!(user.lines()[0].quantity, 3);
/// assert!(!merge(&mut user, &mut guest, MergeStrategy::default(), t0())?.merged); // twice: no change
/// assert_eq!(user.lines()[0].quantity, 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`Error::Merge`] if `guest` has an owner, `user` has none, they are the same cart, or their
/// currencies differ; [`Error::Expired`] if the user cart is not active. Nothing changes on error.
pub fn merge(
    user: &mut Cart,
    guest: &mut Cart,
    strategy: MergeStrategy,
    now: DateTime<Utc>,
) -> Result<MergeReport> {
    if guest.owner().is_some() {
        return Err(Error::Merge("the guest cart belongs to a user"));
    }
    if user.owner().is_none() {
        return Err(Error::Merge("the target cart has no owner"));
    }
    if user.id() == guest.id() {
        return Err(Error::Merge("a cart cannot merge into itself"));
    }
    if user.currency() != guest.currency() {
        return Err(Error::Merge("the carts are in different currencies"));
    }
    match guest.status() {
        CartStatus::Active | CartStatus::Merged { .. } => {}
        CartStatus::CheckedOut | CartStatus::Abandoned => {
            return Err(Error::Merge("the guest cart is no longer active"));
        }
    }
    if let CartStatus::Merged { into } = guest.status()
        && into != user.id()
    {
        return Err(Error::Merge("the guest cart was merged into another cart"));
    }
    if user.merged_from().contains(guest.id()) {
        if *guest.status() == CartStatus::Active {
            guest.set_status(CartStatus::Merged {
                into: user.id().clone(),
            });
            guest.bump(now);
        }
        return Ok(MergeReport::default());
    }
    if *user.status() != CartStatus::Active || user.is_expired(now) || guest.is_expired(now) {
        return Err(Error::Expired);
    }
    if *guest.status() != CartStatus::Active {
        return Err(Error::Merge("the guest cart is no longer active"));
    }

    let mut report = MergeReport {
        merged: true,
        ..MergeReport::default()
    };
    let guest_lines = guest.lines().to_vec();
    let guest_codes = guest.codes().to_vec();
    let guest_address = guest.shipping_address().cloned();
    let guest_id = guest.id().clone();
    let limits = user.limits();
    {
        let (lines, codes, merged_from) = user.merge_parts_mut();
        for g in guest_lines {
            if let Some(u) = lines.iter_mut().find(|l| l.sku == g.sku) {
                let quantity = match strategy {
                    MergeStrategy::SumCapped => u.quantity.saturating_add(g.quantity),
                    MergeStrategy::TakeLarger => u.quantity.max(g.quantity),
                    MergeStrategy::GuestReplaces => g.quantity,
                };
                if strategy == MergeStrategy::GuestReplaces {
                    *u = g.clone();
                }
                if quantity > limits.quantity_per_line_max {
                    report.capped.push(g.sku.clone());
                }
                u.quantity = quantity.min(limits.quantity_per_line_max);
            } else if lines.len() < limits.lines_max {
                let mut g = g;
                if g.quantity > limits.quantity_per_line_max {
                    report.capped.push(g.sku.clone());
                    g.quantity = limits.quantity_per_line_max;
                }
                lines.push(g);
            } else {
                report.dropped.push(g.sku);
            }
        }
        for c in guest_codes {
            if !codes.contains(&c) && codes.len() < CODES_MAX {
                codes.push(c);
            }
        }
        merged_from.insert(guest_id);
    }
    user.set_shipping_address_if_none(guest_address.as_ref());
    user.bump(now);
    guest.set_status(CartStatus::Merged {
        into: user.id().clone(),
    });
    guest.bump(now);
    Ok(report)
}
