//! The cart: lines with price snapshots, versioned commands, request-id deduplication, repricing
//! and expiry.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};
use commerce_core::{
    Address, CartId, CategoryPath, Currency, Image, Locale, Money, Product, ProductId,
    ProductStatus, Sku, UserId,
};
use serde::{Deserialize, Serialize};

use crate::limits::{
    CART_TTL_DAYS_DEFAULT, CODE_LEN_MAX, CODES_MAX, LINES_MAX, QUANTITY_PER_LINE_CEILING,
    QUANTITY_PER_LINE_MAX, REQUEST_ID_LEN_MAX, REQUEST_IDS_KEPT,
};
use crate::{Error, Result};

/// A client's id for one request; a request retried with the same id is applied once.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RequestId(String);

impl RequestId {
    /// Wraps a request id: 1 to [`REQUEST_ID_LEN_MAX`] bytes of visible ASCII.
    ///
    /// # Errors
    /// [`Error::RequestId`].
    pub fn new(id: impl Into<String>) -> Result<RequestId> {
        let id = id.into();
        if id.is_empty() || id.len() > REQUEST_ID_LEN_MAX {
            return Err(Error::RequestId("must be 1 to 128 bytes"));
        }
        if !id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::RequestId("must be visible ASCII"));
        }
        Ok(RequestId(id))
    }
}

impl TryFrom<String> for RequestId {
    type Error = Error;
    fn try_from(s: String) -> Result<RequestId> {
        RequestId::new(s)
    }
}

impl From<RequestId> for String {
    fn from(r: RequestId) -> String {
        r.0
    }
}

/// A promotion code, normalized: whitespace removed and letters upper-cased, so ` summer 10 `
/// and `SUMMER10` are one code.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PromoCode(String);

impl PromoCode {
    /// Normalizes and validates a code: after removing whitespace, 1 to [`CODE_LEN_MAX`] bytes
    /// of ASCII letters, digits, `-` and `_`.
    ///
    /// # Errors
    /// [`Error::Code`].
    pub fn new(code: &str) -> Result<PromoCode> {
        let normalized: String = code
            .chars()
            .filter(|c| !c.is_whitespace())
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let refuse = |reason| Error::Code {
            code: normalized.chars().take(CODE_LEN_MAX).collect(),
            reason,
        };
        if normalized.is_empty() {
            return Err(refuse("empty"));
        }
        if normalized.len() > CODE_LEN_MAX {
            return Err(refuse("too long"));
        }
        if !normalized
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(refuse("only letters, digits, '-' and '_' are allowed"));
        }
        Ok(PromoCode(normalized))
    }

    /// The normalized code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PromoCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for PromoCode {
    type Error = Error;
    fn try_from(s: String) -> Result<PromoCode> {
        PromoCode::new(&s)
    }
}

impl From<PromoCode> for String {
    fn from(c: PromoCode) -> String {
        c.0
    }
}

/// What a line shows and what promotion conditions look at, copied from the product when the
/// line was added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineProduct {
    /// The product.
    pub product_id: ProductId,
    /// Title.
    pub title: String,
    /// Primary image.
    pub image: Option<Image>,
    /// Brand.
    pub brand: Option<String>,
    /// Category.
    pub category: CategoryPath,
    /// Attributes (size, colour).
    pub attributes: BTreeMap<String, String>,
}

impl LineProduct {
    /// The snapshot of a catalog product.
    pub fn of(p: &Product) -> LineProduct {
        LineProduct {
            product_id: p.id.clone(),
            title: p.title.clone(),
            image: p.images.first().cloned(),
            brand: p.brand.clone(),
            category: p.category.clone(),
            attributes: p.attributes.clone(),
        }
    }
}

/// What to add to a cart when the caller prices it itself (a marketplace feed, a quote, a
/// test): a SKU at a unit price, with what promotions look at. [`CartCommand::AddLine`] builds
/// the same from a catalog [`Product`].
///
/// ```
/// use cart_engine::LineItem;
/// use commerce_core::{Currency, Money};
///
/// let mug = LineItem::new("MUG-1", Money::from_minor(1_250, Currency::EUR))?
///     .brand("Potter")
///     .category("Kitchen/Mugs")?;
/// assert_eq!(mug.product.title, "MUG-1");
/// # Ok::<(), cart_engine::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineItem {
    /// The SKU.
    pub sku: Sku,
    /// The unit price, in the cart's currency.
    pub unit_price: Money,
    /// What the line shows and what promotion conditions look at.
    pub product: LineProduct,
}

impl LineItem {
    /// `sku` at `unit_price`; its product id and title are the SKU until set, no brand, the
    /// root category.
    ///
    /// # Errors
    /// [`Error::Core`] for an invalid SKU.
    pub fn new(sku: &str, unit_price: Money) -> Result<LineItem> {
        let sku = Sku::new(sku)?;
        Ok(LineItem {
            product: LineProduct {
                product_id: ProductId::new(sku.as_str())?,
                title: sku.as_str().to_owned(),
                image: None,
                brand: None,
                category: CategoryPath::default(),
                attributes: BTreeMap::new(),
            },
            sku,
            unit_price,
        })
    }

    /// A catalog product at its price in `currency` (and `locale`, if it has locale prices).
    ///
    /// # Errors
    /// [`Error::ProductRetired`]; [`Error::Core`] when it has no price in `currency`.
    pub fn of(product: &Product, currency: Currency, locale: Option<&Locale>) -> Result<LineItem> {
        if product.status == ProductStatus::Retired {
            return Err(Error::ProductRetired(product.sku.clone()));
        }
        Ok(LineItem {
            sku: product.sku.clone(),
            unit_price: product.prices.resolve(currency, locale, None)?,
            product: LineProduct::of(product),
        })
    }

    /// The title shown.
    pub fn title(mut self, title: impl Into<String>) -> LineItem {
        self.product.title = title.into();
        self
    }

    /// The brand.
    pub fn brand(mut self, brand: impl Into<String>) -> LineItem {
        self.product.brand = Some(brand.into());
        self
    }

    /// The category, as a path (`Apparel/Tops`).
    ///
    /// # Errors
    /// [`Error::Core`] for an invalid path.
    pub fn category(mut self, path: &str) -> Result<LineItem> {
        self.product.category = CategoryPath::parse(path)?;
        Ok(self)
    }

    /// The product it belongs to.
    ///
    /// # Errors
    /// [`Error::Core`] for an invalid id.
    pub fn product_id(mut self, id: &str) -> Result<LineItem> {
        self.product.product_id = ProductId::new(id)?;
        Ok(self)
    }
}

/// A shop's bounds on a cart, enforced by every command and by merges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartLimits {
    /// Most units on one line: 1 to [`QUANTITY_PER_LINE_CEILING`]; 999 by default.
    pub quantity_per_line_max: u32,
    /// Most lines: 1 to [`LINES_MAX`]; 100 by default.
    pub lines_max: usize,
}

impl Default for CartLimits {
    fn default() -> CartLimits {
        CartLimits {
            quantity_per_line_max: QUANTITY_PER_LINE_MAX,
            lines_max: LINES_MAX,
        }
    }
}

impl CartLimits {
    /// Checks the bounds.
    ///
    /// # Errors
    /// [`Error::Core`] with an invalid-field error naming the bound.
    pub fn validate(&self) -> Result<()> {
        if !(1..=QUANTITY_PER_LINE_CEILING).contains(&self.quantity_per_line_max) {
            return Err(commerce_core::Error::Invalid {
                field: "cart.limits.quantity_per_line_max",
                reason: format!("must be 1 to {QUANTITY_PER_LINE_CEILING}"),
            }
            .into());
        }
        if !(1..=LINES_MAX).contains(&self.lines_max) {
            return Err(commerce_core::Error::Invalid {
                field: "cart.limits.lines_max",
                reason: format!("must be 1 to {LINES_MAX}"),
            }
            .into());
        }
        Ok(())
    }
}

/// One line of a cart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartLine {
    /// The SKU; a cart has at most one line per SKU.
    pub sku: Sku,
    /// Units, 1 to the cart's [`CartLimits::quantity_per_line_max`].
    pub quantity: u32,
    /// When the line was first added.
    pub added_at: DateTime<Utc>,
    /// The unit price the shopper saw and accepted (at add time, or when they acknowledged a
    /// change). Pricing uses this price.
    pub unit_price: Money,
    /// The latest catalog price known from repricing. Differs from `unit_price` until the
    /// shopper acknowledges the change; checkout refuses the cart until then.
    pub current_price: Money,
    /// False once repricing found the product retired or without a price.
    pub available: bool,
    /// The product snapshot.
    pub product: LineProduct,
    /// Gift wrapping asked for on this line.
    pub gift_wrap: bool,
}

impl CartLine {
    /// True when the catalog price moved since the shopper accepted the line's price.
    pub fn price_changed(&self) -> bool {
        self.unit_price != self.current_price
    }
}

/// A shipping method chosen for the cart, with its price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShippingMethod {
    /// The method id (carrier and service).
    pub id: String,
    /// Name shown to the shopper.
    pub name: String,
    /// Price, in the cart's currency.
    pub price: Money,
}

/// Where a cart is in its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum CartStatus {
    /// Being shopped.
    Active,
    /// Merged into a user's cart at login.
    Merged {
        /// The cart it went into.
        into: CartId,
    },
    /// Expired without checkout; the abandoned-cart event was emitted.
    Abandoned,
    /// Turned into an order.
    CheckedOut,
}

/// A change to a cart.
#[derive(Debug, Clone, PartialEq)]
pub enum CartCommand<'a> {
    /// Adds units of a product, priced from its price table in the cart's currency and locale.
    /// Adding a SKU already in the cart adds to its quantity and keeps its price snapshot.
    AddLine {
        /// The product, as the catalog has it now.
        product: &'a Product,
        /// Units to add, at least 1.
        quantity: u32,
        /// Gift wrap the line.
        gift_wrap: bool,
    },
    /// Adds units of an item priced by the caller ([`LineItem`]). Adding a SKU already in the
    /// cart adds to its quantity and keeps its price snapshot.
    AddItem {
        /// The item.
        item: LineItem,
        /// Units to add, at least 1.
        quantity: u32,
        /// Gift wrap the line.
        gift_wrap: bool,
    },
    /// Gives an anonymous cart its owner (at login, when the customer has no cart of their own
    /// to [`crate::merge`] it into). Giving a cart the owner it has changes nothing; a cart
    /// owned by someone else is refused.
    AssignOwner(UserId),
    /// Sets a line's quantity; 0 removes the line.
    SetQuantity {
        /// The line.
        sku: Sku,
        /// The new quantity.
        quantity: u32,
    },
    /// Removes a line.
    RemoveLine {
        /// The line.
        sku: Sku,
    },
    /// Removes every line and code.
    Clear,
    /// Applies a promotion code (normalized; applying it twice keeps one).
    ApplyCode(String),
    /// Removes a promotion code.
    RemoveCode(String),
    /// Sets the shipping address.
    SetShippingAddress(Address),
    /// Sets the shipping method.
    SetShippingMethod(ShippingMethod),
    /// The shopper accepts every changed price: each line's price becomes its current price.
    AcknowledgePrices,
}

/// Options of one mutation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mutation {
    /// When the mutation happens.
    pub now: DateTime<Utc>,
    /// The version the client last saw; if the cart moved on, nothing is applied.
    pub expected_version: Option<u64>,
    /// The client's request id; a request seen before is not applied again.
    pub request_id: Option<RequestId>,
}

impl Mutation {
    /// A mutation at `now` with no version check and no request id.
    pub fn at(now: DateTime<Utc>) -> Mutation {
        Mutation {
            now,
            expected_version: None,
            request_id: None,
        }
    }
}

/// The result of a mutation that was not refused. Losing a race is a result, not an error:
/// a caller that sets [`Mutation::expected_version`] or [`Mutation::request_id`] reads it; one
/// that sets neither always gets [`Outcome::Applied`] and may ignore it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Applied; the cart is now at `version`.
    Applied {
        /// The new version.
        version: u64,
    },
    /// The request id was seen before; nothing was applied again.
    Duplicate {
        /// The cart's version.
        version: u64,
    },
    /// The expected version was not the cart's; nothing was applied.
    Stale {
        /// The cart's version.
        current: u64,
    },
}

/// One line's price change found by [`Cart::reprice`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceChange {
    /// The line.
    pub sku: Sku,
    /// The price the shopper accepted.
    pub accepted: Money,
    /// The catalog's price now.
    pub current: Money,
}

/// What [`Cart::reprice`] found.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RepriceReport {
    /// Lines whose price differs from the accepted one (including changes found earlier and not
    /// yet acknowledged).
    pub changes: Vec<PriceChange>,
    /// Lines whose product is gone, retired, or has no price in the cart's currency.
    pub unavailable: Vec<Sku>,
}

/// Why a cart cannot go to checkout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Blocker {
    /// The cart has no lines.
    Empty,
    /// The cart is not active (merged, abandoned, checked out) or has expired.
    NotActive,
    /// A price changed and the shopper has not acknowledged it.
    PriceChanged(PriceChange),
    /// A line's product can no longer be sold.
    Unavailable {
        /// The line.
        sku: Sku,
    },
    /// No shipping address.
    NoShippingAddress,
    /// No shipping method.
    NoShippingMethod,
}

/// A shopping cart. It changes only through [`Cart::execute`] (and [`Cart::reprice`],
/// [`crate::merge`], [`Cart::abandon`]), each of which bumps the version.
///
/// ```
/// use cart_engine::{Cart, CartCommand, Mutation, Outcome, RequestId};
/// use commerce_core::{CartId, Currency, testkit::{sample_product, t0}};
///
/// let mut cart = Cart::new(CartId::new("cart-1")?, None, Currency::EUR, None, t0());
/// let tee = sample_product("p-1", "TEE-RED-M");
/// let add = CartCommand::AddLine { product: &tee, quantity: 2, gift_wrap: false };
/// let once = Mutation { request_id: Some(RequestId::new("req-1")?), ..Mutation::at(t0()) };
/// assert_eq!(cart.execute(add.clone(), &once)?, Outcome::Applied { version: 1 });
/// // The same request again (a client retry) is not applied twice.
/// assert_eq!(cart.execute(add, &once)?, Outcome::Duplicate { version: 1 });
/// assert_eq!(cart.lines()[0].quantity, 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cart {
    id: CartId,
    owner: Option<UserId>,
    currency: Currency,
    locale: Option<Locale>,
    lines: Vec<CartLine>,
    codes: Vec<PromoCode>,
    shipping_address: Option<Address>,
    shipping_method: Option<ShippingMethod>,
    status: CartStatus,
    version: u64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    ttl_secs: i64,
    recent_requests: VecDeque<RequestId>,
    merged_from: BTreeSet<CartId>,
    #[serde(default)]
    limits: CartLimits,
}

impl Cart {
    /// A new, empty, active cart at version 0 that expires [`CART_TTL_DAYS_DEFAULT`] days after
    /// its last change. `owner` is `None` for an anonymous cart.
    pub fn new(
        id: CartId,
        owner: Option<UserId>,
        currency: Currency,
        locale: Option<Locale>,
        now: DateTime<Utc>,
    ) -> Cart {
        Cart {
            id,
            owner,
            currency,
            locale,
            lines: Vec::new(),
            codes: Vec::new(),
            shipping_address: None,
            shipping_method: None,
            status: CartStatus::Active,
            version: 0,
            created_at: now,
            updated_at: now,
            ttl_secs: TimeDelta::days(CART_TTL_DAYS_DEFAULT).num_seconds(),
            recent_requests: VecDeque::new(),
            merged_from: BTreeSet::new(),
            limits: CartLimits::default(),
        }
    }

    /// Sets the shop's bounds on this cart (builder style). Lines already beyond them stay as
    /// they are until changed.
    ///
    /// # Errors
    /// [`Error::Core`] with an invalid-field error for bounds outside their ceilings.
    pub fn with_limits(mut self, limits: CartLimits) -> Result<Cart> {
        limits.validate()?;
        self.limits = limits;
        Ok(self)
    }

    /// The shop's bounds on this cart.
    pub fn limits(&self) -> CartLimits {
        self.limits
    }

    /// Sets how long the cart lives after its last change (builder style).
    ///
    /// # Errors
    /// [`Error::Core`] with an invalid-field error if `ttl` is not positive.
    pub fn with_ttl(mut self, ttl: TimeDelta) -> Result<Cart> {
        if ttl <= TimeDelta::zero() {
            return Err(commerce_core::Error::Invalid {
                field: "cart.ttl",
                reason: "must be positive".into(),
            }
            .into());
        }
        self.ttl_secs = ttl.num_seconds();
        Ok(self)
    }

    /// Applies `command` under `mutation`'s version check and request-id deduplication.
    ///
    /// The order of checks: a request id seen before is [`Outcome::Duplicate`]; then a stale
    /// expected version is [`Outcome::Stale`]; then the command is validated and applied, or
    /// refused with an error. Either way a refusal changes nothing.
    ///
    /// # Errors
    /// [`Error::Expired`] after expiry or when the cart is not active; the command's own
    /// errors (limits, unknown lines, retired products, prices missing in the cart's currency,
    /// bad codes).
    pub fn execute(&mut self, command: CartCommand<'_>, mutation: &Mutation) -> Result<Outcome> {
        if let Some(id) = &mutation.request_id
            && self.recent_requests.contains(id)
        {
            return Ok(Outcome::Duplicate {
                version: self.version,
            });
        }
        if let Some(expected) = mutation.expected_version
            && expected != self.version
        {
            return Ok(Outcome::Stale {
                current: self.version,
            });
        }
        if self.status != CartStatus::Active || self.is_expired(mutation.now) {
            return Err(Error::Expired);
        }
        // `apply` checks everything before it changes anything, so a refusal leaves the cart
        // as it was without the cost of a copy.
        self.apply(command, mutation.now)?;
        self.touch(mutation.now, mutation.request_id.clone());
        Ok(Outcome::Applied {
            version: self.version,
        })
    }

    /// Records a change: bumps the version, sets `updated_at`, remembers the request id.
    fn touch(&mut self, now: DateTime<Utc>, request_id: Option<RequestId>) {
        self.version += 1;
        self.updated_at = self.updated_at.max(now);
        if let Some(id) = request_id {
            if self.recent_requests.len() == REQUEST_IDS_KEPT {
                self.recent_requests.pop_front();
            }
            self.recent_requests.push_back(id);
        }
    }

    /// Applies one command. Every arm validates before it mutates: an error leaves the cart
    /// unchanged (the property tests check this).
    fn apply(&mut self, command: CartCommand<'_>, now: DateTime<Utc>) -> Result<()> {
        match command {
            CartCommand::AddLine {
                product,
                quantity,
                gift_wrap,
            } => {
                if product.status == ProductStatus::Retired {
                    return Err(Error::ProductRetired(product.sku.clone()));
                }
                if self.lines.iter().any(|l| l.sku == product.sku) {
                    // The snapshot stays; only the quantity grows.
                    return self.grow_line(&product.sku, quantity, gift_wrap);
                }
                let item = LineItem::of(product, self.currency, self.locale.as_ref())?;
                self.add_item(item, quantity, gift_wrap, now)
            }
            CartCommand::AddItem {
                item,
                quantity,
                gift_wrap,
            } => {
                if item.unit_price.currency() != self.currency {
                    return Err(Error::CurrencyMismatch {
                        cart: self.currency,
                        other: item.unit_price.currency(),
                    });
                }
                if item.unit_price.is_negative() || !item.unit_price.is_rounded() {
                    return Err(commerce_core::Error::Invalid {
                        field: "line.unit_price",
                        reason: "negative or not in minor units".into(),
                    }
                    .into());
                }
                self.add_item(item, quantity, gift_wrap, now)
            }
            CartCommand::AssignOwner(user) => match &self.owner {
                Some(owner) if *owner != user => Err(Error::OwnedByAnother),
                _ => {
                    self.owner = Some(user);
                    Ok(())
                }
            },
            CartCommand::SetQuantity { sku, quantity } => {
                if quantity == 0 {
                    return self.remove_line(&sku);
                }
                self.check_quantity(&sku, u64::from(quantity))?;
                self.line_mut(&sku)?.quantity = quantity;
                Ok(())
            }
            CartCommand::RemoveLine { sku } => self.remove_line(&sku),
            CartCommand::Clear => {
                self.lines.clear();
                self.codes.clear();
                Ok(())
            }
            CartCommand::ApplyCode(code) => {
                let code = PromoCode::new(&code)?;
                if !self.codes.contains(&code) {
                    if self.codes.len() >= CODES_MAX {
                        return Err(Error::Code {
                            code: code.0,
                            reason: "too many codes on the cart",
                        });
                    }
                    self.codes.push(code);
                }
                Ok(())
            }
            CartCommand::RemoveCode(code) => {
                let code = PromoCode::new(&code)?;
                let before = self.codes.len();
                self.codes.retain(|c| *c != code);
                if self.codes.len() == before {
                    return Err(Error::Code {
                        code: code.0,
                        reason: "not applied to this cart",
                    });
                }
                Ok(())
            }
            CartCommand::SetShippingAddress(address) => {
                address.validate()?;
                self.shipping_address = Some(address);
                Ok(())
            }
            CartCommand::SetShippingMethod(method) => {
                if method.price.currency() != self.currency {
                    return Err(Error::CurrencyMismatch {
                        cart: self.currency,
                        other: method.price.currency(),
                    });
                }
                check_amount_limit("shipping_method.price", &method.price)?;
                if method.price.is_negative() || !method.price.is_rounded() {
                    return Err(commerce_core::Error::Invalid {
                        field: "shipping_method.price",
                        reason: "negative or not in minor units".into(),
                    }
                    .into());
                }
                self.shipping_method = Some(method);
                Ok(())
            }
            CartCommand::AcknowledgePrices => {
                for line in &mut self.lines {
                    line.unit_price = line.current_price;
                }
                Ok(())
            }
        }
    }

    fn add_item(
        &mut self,
        item: LineItem,
        quantity: u32,
        gift_wrap: bool,
        now: DateTime<Utc>,
    ) -> Result<()> {
        if self.lines.iter().any(|l| l.sku == item.sku) {
            return self.grow_line(&item.sku, quantity, gift_wrap);
        }
        self.check_quantity(&item.sku, u64::from(quantity))?;
        if self.lines.len() >= self.limits.lines_max {
            return Err(Error::TooManyLines {
                max: self.limits.lines_max,
            });
        }
        check_amount_limit("line.unit_price", &item.unit_price)?;
        self.lines.push(CartLine {
            sku: item.sku,
            quantity,
            added_at: now,
            unit_price: item.unit_price,
            current_price: item.unit_price,
            available: true,
            product: item.product,
            gift_wrap,
        });
        Ok(())
    }

    /// Adds `quantity` units to the line with `sku`, keeping its price snapshot.
    fn grow_line(&mut self, sku: &Sku, quantity: u32, gift_wrap: bool) -> Result<()> {
        let k = self
            .lines
            .iter()
            .position(|l| l.sku == *sku)
            .ok_or_else(|| Error::NoSuchLine(sku.clone()))?;
        let total = u64::from(self.lines[k].quantity) + u64::from(quantity);
        self.check_quantity(sku, if quantity == 0 { 0 } else { total })?;
        let line = &mut self.lines[k];
        line.quantity = u32::try_from(total).unwrap_or(u32::MAX);
        line.gift_wrap |= gift_wrap;
        Ok(())
    }

    fn check_quantity(&self, sku: &Sku, quantity: u64) -> Result<()> {
        let max = self.limits.quantity_per_line_max;
        if quantity == 0 || quantity > u64::from(max) {
            return Err(Error::QuantityOutOfRange {
                sku: sku.clone(),
                quantity,
                max,
            });
        }
        Ok(())
    }

    fn remove_line(&mut self, sku: &Sku) -> Result<()> {
        let before = self.lines.len();
        self.lines.retain(|l| l.sku != *sku);
        if self.lines.len() == before {
            return Err(Error::NoSuchLine(sku.clone()));
        }
        Ok(())
    }

    fn line_mut(&mut self, sku: &Sku) -> Result<&mut CartLine> {
        self.lines
            .iter_mut()
            .find(|l| l.sku == *sku)
            .ok_or_else(|| Error::NoSuchLine(sku.clone()))
    }

    /// Compares every line with the catalog's product now (`lookup` returns it by SKU), records
    /// each line's current price and availability, and reports what changed. Accepted prices
    /// stay as they are until [`CartCommand::AcknowledgePrices`]. The version moves only if
    /// something changed.
    pub fn reprice<'p>(
        &mut self,
        lookup: impl Fn(&Sku) -> Option<&'p Product>,
        now: DateTime<Utc>,
    ) -> RepriceReport {
        let mut report = RepriceReport::default();
        if self.status != CartStatus::Active || self.is_expired(now) {
            // A cart that is over changes no more; its prices are what they were.
            return report;
        }
        let mut changed = false;
        for line in &mut self.lines {
            let current = lookup(&line.sku)
                .filter(|p| p.status == ProductStatus::Active)
                .and_then(|p| {
                    p.prices
                        .resolve(self.currency, self.locale.as_ref(), None)
                        .ok()
                });
            match current {
                Some(price) => {
                    changed |= line.current_price != price || !line.available;
                    line.current_price = price;
                    line.available = true;
                }
                None => {
                    changed |= line.available;
                    line.available = false;
                    report.unavailable.push(line.sku.clone());
                }
            }
            if line.price_changed() {
                report.changes.push(PriceChange {
                    sku: line.sku.clone(),
                    accepted: line.unit_price,
                    current: line.current_price,
                });
            }
        }
        if changed {
            self.touch(now, None);
        }
        report
    }

    /// Everything that stops this cart from going to checkout at `now`; empty means ready (as
    /// far as the cart goes: pricing adds its own cart-rule violations).
    pub fn checkout_blockers(&self, now: DateTime<Utc>) -> Vec<Blocker> {
        let mut blockers = Vec::new();
        if self.status != CartStatus::Active || self.is_expired(now) {
            blockers.push(Blocker::NotActive);
        }
        if self.lines.is_empty() {
            blockers.push(Blocker::Empty);
        }
        for line in &self.lines {
            if !line.available {
                blockers.push(Blocker::Unavailable {
                    sku: line.sku.clone(),
                });
            } else if line.price_changed() {
                blockers.push(Blocker::PriceChanged(PriceChange {
                    sku: line.sku.clone(),
                    accepted: line.unit_price,
                    current: line.current_price,
                }));
            }
        }
        if self.shipping_address.is_none() {
            blockers.push(Blocker::NoShippingAddress);
        }
        if self.shipping_method.is_none() {
            blockers.push(Blocker::NoShippingMethod);
        }
        blockers
    }

    /// When the cart expires: its last change plus its time to live.
    pub fn expires_at(&self) -> DateTime<Utc> {
        self.updated_at
            .checked_add_signed(TimeDelta::seconds(self.ttl_secs))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// True from [`Cart::expires_at`] on.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        now >= self.expires_at()
    }

    /// Marks an expired active cart abandoned and returns `true`; any other cart is left alone
    /// and `false` returned. Abandoning happens once per cart, because an abandoned cart never
    /// becomes active again.
    pub fn abandon(&mut self, now: DateTime<Utc>) -> bool {
        if self.status == CartStatus::Active && self.is_expired(now) {
            self.status = CartStatus::Abandoned;
            self.version += 1;
            true
        } else {
            false
        }
    }

    /// Marks the cart checked out (the saga calls this once the order is confirmed).
    ///
    /// # Errors
    /// [`Error::Expired`] if the cart is not active.
    pub fn mark_checked_out(&mut self) -> Result<()> {
        if self.status != CartStatus::Active {
            return Err(Error::Expired);
        }
        self.status = CartStatus::CheckedOut;
        self.version += 1;
        Ok(())
    }

    pub(crate) fn merge_parts_mut(
        &mut self,
    ) -> (
        &mut Vec<CartLine>,
        &mut Vec<PromoCode>,
        &mut BTreeSet<CartId>,
    ) {
        (&mut self.lines, &mut self.codes, &mut self.merged_from)
    }

    pub(crate) fn set_shipping_address_if_none(&mut self, address: Option<&Address>) {
        if self.shipping_address.is_none() {
            self.shipping_address = address.cloned();
        }
    }

    pub(crate) fn set_status(&mut self, status: CartStatus) {
        self.status = status;
    }

    pub(crate) fn bump(&mut self, now: DateTime<Utc>) {
        self.touch(now, None);
    }

    /// The cart id.
    pub fn id(&self) -> &CartId {
        &self.id
    }
    /// The owner; `None` for an anonymous cart.
    pub fn owner(&self) -> Option<&UserId> {
        self.owner.as_ref()
    }
    /// The one currency of the cart.
    pub fn currency(&self) -> Currency {
        self.currency
    }
    /// The locale prices resolve for.
    pub fn locale(&self) -> Option<&Locale> {
        self.locale.as_ref()
    }
    /// The lines, in the order they were added.
    pub fn lines(&self) -> &[CartLine] {
        &self.lines
    }
    /// Applied promotion codes.
    pub fn codes(&self) -> &[PromoCode] {
        &self.codes
    }
    /// Shipping address.
    pub fn shipping_address(&self) -> Option<&Address> {
        self.shipping_address.as_ref()
    }
    /// Shipping method.
    pub fn shipping_method(&self) -> Option<&ShippingMethod> {
        self.shipping_method.as_ref()
    }
    /// Status.
    pub fn status(&self) -> &CartStatus {
        &self.status
    }
    /// The version: +1 per change.
    pub fn version(&self) -> u64 {
        self.version
    }
    /// Created at.
    pub fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }
    /// Last changed at.
    pub fn updated_at(&self) -> DateTime<Utc> {
        self.updated_at
    }
    /// Guest carts already merged into this one.
    pub fn merged_from(&self) -> &BTreeSet<CartId> {
        &self.merged_from
    }
}

fn check_amount_limit(field: &'static str, m: &Money) -> Result<()> {
    if m.amount() > rust_decimal::Decimal::from(crate::limits::AMOUNT_ABS_MAX) {
        return Err(commerce_core::Error::Invalid {
            field,
            reason: "above the pricing limit".into(),
        }
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests;
