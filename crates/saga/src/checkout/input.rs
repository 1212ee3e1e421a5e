//! What a checkout starts from: the order to create, the promotion uses to claim, the payment
//! method and when to capture — fixed when it starts.

use std::collections::BTreeMap;

use cart_engine::{Cart, PricedCart, Promotion, PromotionId, UsageLimits};
use chrono::{DateTime, Utc};
use commerce_core::{
    Address, FxQuote, IdempotencyKey, LocationId, Money, NewOrder, OrderId, OrderLine, Sku, UserId,
};
use inventory::{HoldId, StockKey, StockLine};
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

/// When the money is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CapturePolicy {
    /// Authorize and capture at checkout (a sale). A cancellation is a refund.
    #[default]
    AtCheckout,
    /// Authorize at checkout, capture as parcels ship (each its share, the last the rest). A
    /// cancellation before shipping voids the authorization: no money moved, no refund fee.
    AtShipment,
}

/// Everything checkout needs, fixed when it starts. Build it from a priced cart with
/// [`CheckoutInput::from_cart`], or by hand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckoutInput {
    /// The order to create; each line names the stock location it ships from. Its id is the
    /// checkout's idempotency key.
    pub order: NewOrder,
    /// Promotion uses to claim.
    pub claims: Vec<PromotionClaim>,
    /// How long the stock hold lives before it is pinned; also the saga's deadline for the
    /// steps before the payment.
    pub hold_ttl_secs: i64,
    /// The tokenized payment method (unused when the order costs nothing).
    pub method_token: String,
    /// When the money is taken.
    #[serde(default)]
    pub capture: CapturePolicy,
    /// A hold the cart already took for these lines (reservation at add-to-cart); checkout
    /// pins it instead of reserving again, and reserves afresh if it expired or no longer
    /// matches the lines.
    #[serde(default)]
    pub cart_hold: Option<HoldId>,
}

impl CheckoutInput {
    /// The stock the order holds: each line's units at its location.
    pub fn stock(&self) -> Vec<StockLine> {
        self.order
            .lines
            .iter()
            .map(|l| StockLine {
                key: StockKey::new(l.sku.clone(), l.location.clone()),
                quantity: i64::from(l.quantity),
            })
            .collect()
    }

    /// Starts a checkout of `cart` as `priced` (with `promotions`) at `now`; the builder
    /// names the order, the customer, the stock location and the payment.
    ///
    /// ```
    /// use cart_engine::*;
    /// use commerce_core::{CartId, Currency, IdempotencyKey, LocationId, Money};
    /// use commerce_core::testkit::{sample_address, t0};
    /// use saga::CheckoutInput;
    /// let mut cart = Cart::new(CartId::new("c-1")?, None, Currency::EUR, None, t0());
    /// cart.execute(CartCommand::AddItem { item: LineItem::new("MUG", Money::from_minor(1_250, Currency::EUR))?, quantity: 2, gift_wrap: false }, &cart_engine::Mutation::at(t0()))?;
    /// cart.execute(CartCommand::SetShippingAddress(sample_address()), &cart_engine::Mutation::at(t0()))?;
    /// cart.execute(CartCommand::SetShippingMethod(ShippingMethod { id: "std".into(), name: "Standard".into(), price: Money::from_minor(490, Currency::EUR) }), &cart_engine::Mutation::at(t0()))?;
    /// let config = PricingConfig::default();
    /// let tax = FlatRateTax::new(rust_decimal::Decimal::ZERO)?;
    /// let priced = price(&cart, &[], &PricingContext::new(t0(), &config, &tax))?;
    ///
    /// let input = CheckoutInput::from_cart(&cart, &priced, &[], t0())?
    ///     .order_id(&IdempotencyKey::new("order-1")?)
    ///     .customer("ann@example.com")?
    ///     .ship_from(LocationId::new("berlin")?)
    ///     .payment_method("tok_visa")
    ///     .build()?;
    /// assert_eq!(input.order.lines[0].location.as_str(), "berlin");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::CheckoutRefused`] with [`CheckoutFailure::CartNotReady`] naming what blocks the
    /// cart (unacknowledged price changes, unavailable lines, no address or shipping method, a
    /// broken cart rule); [`Error::Invalid`] when `priced` is not a pricing of this cart at its
    /// version (field `priced`).
    pub fn from_cart<'a>(
        cart: &'a Cart,
        priced: &'a PricedCart,
        promotions: &'a [Promotion],
        now: DateTime<Utc>,
    ) -> Result<CheckoutInputBuilder<'a>> {
        if priced.cart_id != *cart.id() || priced.cart_version != cart.version() {
            return Err(Error::Invalid {
                field: "priced",
                reason: format!(
                    "priced from cart {} at version {}, the cart is {} at version {}: price it again",
                    priced.cart_id,
                    priced.cart_version,
                    cart.id(),
                    cart.version()
                ),
            });
        }
        let blockers = cart.checkout_blockers(now);
        if !blockers.is_empty() || !priced.violations.is_empty() {
            return Err(Error::CheckoutRefused(CheckoutFailure::CartNotReady {
                blockers,
                violations: priced.violations.clone(),
            }));
        }
        Ok(CheckoutInputBuilder {
            cart,
            priced,
            promotions,
            order_id: None,
            customer: cart.owner().cloned(),
            location: None,
            locations: BTreeMap::new(),
            billing: None,
            method_token: None,
            capture: CapturePolicy::default(),
            settlement: None,
            hold_ttl_secs: inventory::limits::HOLD_TTL_SECS_DEFAULT,
            cart_hold: None,
        })
    }
}

/// Builds a [`CheckoutInput`] from a priced cart: see [`CheckoutInput::from_cart`].
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build`"]
pub struct CheckoutInputBuilder<'a> {
    cart: &'a Cart,
    priced: &'a PricedCart,
    promotions: &'a [Promotion],
    order_id: Option<IdempotencyKey>,
    customer: Option<UserId>,
    location: Option<LocationId>,
    locations: BTreeMap<Sku, LocationId>,
    billing: Option<Address>,
    method_token: Option<String>,
    capture: CapturePolicy,
    settlement: Option<FxQuote>,
    hold_ttl_secs: i64,
    cart_hold: Option<HoldId>,
}

impl CheckoutInputBuilder<'_> {
    /// The client's idempotency key, which becomes the order id (required).
    pub fn order_id(mut self, key: &IdempotencyKey) -> Self {
        self.order_id = Some(key.clone());
        self
    }

    /// The customer (default: the cart's owner; an anonymous cart needs one).
    ///
    /// # Errors
    /// [`Error::Core`] for an invalid id.
    pub fn customer(mut self, user: &str) -> Result<Self> {
        self.customer = Some(UserId::new(user)?);
        Ok(self)
    }

    /// The stock location every line ships from, unless [`CheckoutInputBuilder::ship_line_from`]
    /// names another (required unless every line has one).
    pub fn ship_from(mut self, location: LocationId) -> Self {
        self.location = Some(location);
        self
    }

    /// The stock location one line ships from.
    pub fn ship_line_from(mut self, sku: Sku, location: LocationId) -> Self {
        self.locations.insert(sku, location);
        self
    }

    /// The billing address (default: the shipping address).
    pub fn billing(mut self, address: Address) -> Self {
        self.billing = Some(address);
        self
    }

    /// The tokenized payment method (required unless the order costs nothing).
    pub fn payment_method(mut self, token: impl Into<String>) -> Self {
        self.method_token = Some(token.into());
        self
    }

    /// When the money is taken (default: at checkout).
    pub fn capture(mut self, policy: CapturePolicy) -> Self {
        self.capture = policy;
        self
    }

    /// Settles the order in the merchant's currency at `quote`.
    pub fn settle_at(mut self, quote: FxQuote) -> Self {
        self.settlement = Some(quote);
        self
    }

    /// How long the stock hold lives before it is pinned (default 15 minutes).
    pub fn hold_ttl_secs(mut self, secs: i64) -> Self {
        self.hold_ttl_secs = secs;
        self
    }

    /// A hold the cart took at add-to-cart, for checkout to adopt.
    pub fn cart_hold(mut self, hold: HoldId) -> Self {
        self.cart_hold = Some(hold);
        self
    }

    /// The input, with each order line priced by the priced cart's line for its SKU.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming what is missing (`order_id`, `customer`, `location`,
    /// `method_token`) or a priced cart without a line the cart has (`priced`);
    /// [`Error::Core`] for a key that is not a valid order id; [`Error::CheckoutRefused`]
    /// without a shipping address.
    pub fn build(self) -> Result<CheckoutInput> {
        let missing = |field: &'static str| Error::Invalid {
            field,
            reason: "required".into(),
        };
        let order_id = OrderId::new(self.order_id.ok_or_else(|| missing("order_id"))?.as_str())?;
        let customer = self.customer.ok_or_else(|| missing("customer"))?;
        let Some(shipping_address) = self.cart.shipping_address().cloned() else {
            return Err(Error::CheckoutRefused(CheckoutFailure::CartNotReady {
                blockers: vec![cart_engine::Blocker::NoShippingAddress],
                violations: Vec::new(),
            }));
        };
        let currency = self.cart.currency();
        let mut order = NewOrder::new(order_id, customer, currency, shipping_address.clone())
            .billed_to(self.billing.unwrap_or(shipping_address))
            .with_shipping(
                self.priced
                    .shipping
                    .as_ref()
                    .map_or(Money::zero(currency), |s| s.total),
            )
            .with_fees(self.priced.totals.fees)
            .with_tax(self.priced.totals.tax, self.priced.totals.tax_included);
        if let Some(quote) = self.settlement {
            order = order.settled_at(quote);
        }
        for line in self.cart.lines() {
            let priced = self
                .priced
                .lines
                .iter()
                .find(|p| p.sku == line.sku)
                .ok_or_else(|| Error::Invalid {
                    field: "priced",
                    reason: format!("no priced line for {}", line.sku),
                })?;
            let location = self
                .locations
                .get(&line.sku)
                .or(self.location.as_ref())
                .cloned()
                .ok_or_else(|| missing("location"))?;
            order = order.with_line(
                OrderLine::new(line.sku.clone(), line.quantity, priced.unit_price, location)?
                    .of_product(line.product.product_id.clone(), line.product.title.clone())
                    .discounted(priced.discount),
            );
        }
        let method_token = match self.method_token {
            Some(token) => token,
            None if self.priced.totals.total.is_zero() => String::new(),
            None => return Err(missing("method_token")),
        };
        let claims = self
            .priced
            .applied()
            .filter_map(|(id, discount)| {
                self.promotions
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
        Ok(CheckoutInput {
            order,
            claims,
            hold_ttl_secs: self.hold_ttl_secs,
            method_token,
            capture: self.capture,
            cart_hold: self.cart_hold,
        })
    }
}
