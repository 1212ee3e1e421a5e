//! What a checkout starts from: the order to create, the promotion uses to claim, the stock to
//! hold, and the payment method — fixed when it starts.

use cart_engine::{PromotionId, UsageLimits};
use chrono::{DateTime, Utc};
use commerce_core::{IdempotencyKey, Money, NewOrder, OrderId};
use inventory::{HoldId, StockLine};
use serde::{Deserialize, Serialize};

use super::CheckoutFailure;
use crate::{Error, Result};

/// One promotion to claim at checkout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromotionClaim {
    /// The promotion.
    pub promotion_id: PromotionId,
    /// The discount it gave this order.
    pub discount: Money,
    /// Its limits.
    pub limits: UsageLimits,
}

/// Everything checkout needs, fixed when it starts (prices were verified and acknowledged by
/// then: see [`CheckoutInput::from_cart`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckoutInput {
    /// The order to create. Its id is the checkout's idempotency key.
    pub order: NewOrder,
    /// Promotion uses to claim.
    pub claims: Vec<PromotionClaim>,
    /// Stock to hold.
    pub stock: Vec<StockLine>,
    /// How long the stock hold lives before it is pinned; also the saga's deadline for the
    /// steps before the charge.
    pub hold_ttl_secs: i64,
    /// The tokenized payment method.
    pub method_token: String,
    /// A hold the cart already took for these lines (reservation at add-to-cart); checkout
    /// pins it instead of reserving again, and reserves afresh if it expired or no longer
    /// matches the lines.
    #[serde(default)]
    pub cart_hold: Option<HoldId>,
}

impl CheckoutInput {
    /// Builds the input from a priced cart, refusing a cart that is not ready: blockers (price
    /// changes not acknowledged, unavailable lines, no address or shipping method) or cart-rule
    /// violations.
    ///
    /// # Errors
    /// [`Error::CheckoutRefused`] with [`CheckoutFailure::CartNotReady`] naming what blocks the
    /// cart; [`Error::Core`] for an invalid order.
    #[allow(
        clippy::too_many_arguments,
        reason = "the inputs of a checkout, each required"
    )]
    pub fn from_cart(
        key: &IdempotencyKey,
        cart: &cart_engine::Cart,
        priced: &cart_engine::PricedCart,
        promotions: &[cart_engine::Promotion],
        user: commerce_core::UserId,
        location: &commerce_core::LocationId,
        billing: commerce_core::Address,
        method_token: String,
        now: DateTime<Utc>,
    ) -> Result<CheckoutInput> {
        let blockers = cart.checkout_blockers(now);
        if !blockers.is_empty() || !priced.violations.is_empty() {
            return Err(Error::CheckoutRefused(CheckoutFailure::CartNotReady {
                blockers,
                violations: priced.violations.clone(),
            }));
        }
        let Some(shipping_address) = cart.shipping_address().cloned() else {
            return Err(Error::CheckoutRefused(CheckoutFailure::CartNotReady {
                blockers: vec![cart_engine::Blocker::NoShippingAddress],
                violations: Vec::new(),
            }));
        };
        let lines = cart
            .lines()
            .iter()
            .zip(&priced.lines)
            .map(|(l, p)| commerce_core::OrderLine {
                sku: l.sku.clone(),
                product_id: l.product.product_id.clone(),
                title: l.product.title.clone(),
                quantity: l.quantity,
                unit_price: p.unit_price,
                discount: p.discount,
            })
            .collect();
        let shipping = priced
            .shipping
            .as_ref()
            .map_or(Money::zero(cart.currency()), |s| s.total);
        let order = NewOrder {
            id: OrderId::new(key.as_str())?,
            user_id: user,
            currency: cart.currency(),
            lines,
            shipping,
            fees: Some(priced.totals.fees),
            tax: priced.totals.tax,
            tax_included: priced.totals.tax_included,
            shipping_address,
            billing_address: billing,
        };
        let claims = priced
            .applied()
            .filter_map(|(id, discount)| {
                promotions
                    .iter()
                    .find(|p| p.id == *id)
                    .map(|p| PromotionClaim {
                        promotion_id: id.clone(),
                        discount,
                        limits: p.limits.clone(),
                    })
            })
            .filter(|c| c.limits != UsageLimits::default())
            .collect();
        let stock = cart
            .lines()
            .iter()
            .map(|l| StockLine {
                key: inventory::StockKey::new(l.sku.clone(), location.clone()),
                quantity: i64::from(l.quantity),
            })
            .collect();
        Ok(CheckoutInput {
            order,
            claims,
            stock,
            hold_ttl_secs: inventory::limits::HOLD_TTL_SECS_DEFAULT,
            method_token,
            cart_hold: None,
        })
    }
}
