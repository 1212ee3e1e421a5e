//! Cart and checkout routes.
//!
//! The cart is a "current cart" resource (`/cart`): a signed-in shopper's is their active cart,
//! a guest's is the one named by an unguessable id (128 random bits) in an `HttpOnly`,
//! `SameSite=Lax` cookie. So no route takes a cart id and nobody can reach another's cart. The
//! first cart request after signing in merges the guest cart into the shopper's
//! ([`cart_engine::MergeStrategy::SumCapped`]) and clears the cookie.
//!
//! Every read reprices the cart from the catalog: a moved price is reported (`price_changed`
//! on the line, a `price_changed` blocker) and checkout refuses it until the shopper
//! acknowledges (`POST /cart/acknowledge-prices`). Mutations take an optional `If-Match` with
//! the cart's version (`ETag: "<version>"`): a stale one is 412 and changes nothing.
//!
//! `POST /cart/checkout` needs an `Idempotency-Key` and a signed-in shopper. The order id is
//! derived from the shopper and the key, so a retry (even after the key's record is gone)
//! drives the same checkout saga and never charges twice.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use cart_engine::{
    Cart, CartCommand, CartStatus, CartStore, MergeStrategy, Mutation, Outcome, PricedCart,
    PricingConfig, PricingContext, Promotion, ShippingMethod, TaxCalculator,
};
use chrono::Days;
use commerce_core::{
    Address, Carrier, CartId, CasOutcome, CatalogStore, Clock, Currency, ErrorKind, IdempotencyKey,
    Locale, LocationId, Parcel, Product, ShipmentRequest, Sku, UserId,
};
use saga::{Checkout, CheckoutInput, CheckoutOutcome};
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Customer, MaybeSignedIn, Principal};
use super::catalog::sku_of;
use super::idempotency::{ClientKey, Idempotency, digest};
use super::problem::axum_extra_json::Path;
use super::problem::{ApiError, ApiResult, Body, Problem, refused_checkout};
use super::views::{AddressView, MoneyView};

/// Attempts at a read-modify-write of a cart that lost a race before answering 409.
const CAS_ATTEMPTS: usize = 8;

/// The guest-cart cookie.
#[derive(Debug, Clone)]
pub struct CartCookie {
    /// Its name (`cart` by default; `__Host-cart` needs `secure`).
    pub name: String,
    /// Send it over HTTPS only.
    pub secure: bool,
}

impl Default for CartCookie {
    fn default() -> Self {
        CartCookie {
            name: "cart".into(),
            secure: false,
        }
    }
}

/// What the cart and checkout routes need.
#[derive(Debug, Clone)]
pub struct CartApi {
    /// Carts.
    pub carts: Arc<dyn CartStore>,
    /// The catalog, for adding lines and repricing.
    pub catalog: Arc<dyn CatalogStore>,
    /// The promotions in force (an admin replaces them).
    pub promotions: Arc<RwLock<Vec<Promotion>>>,
    /// How prices are computed.
    pub pricing: PricingConfig,
    /// Tax rates.
    pub tax: Arc<dyn TaxCalculator>,
    /// Carriers to quote shipping from; the cheapest that arrives within a week is chosen.
    pub carriers: Vec<Arc<dyn Carrier>>,
    /// Where parcels ship from (for quotes).
    pub ship_from: Address,
    /// The stock location orders are served from.
    pub location: LocationId,
    /// The cart currency.
    pub currency: Currency,
    /// The locale prices resolve for.
    pub locale: Option<Locale>,
    /// The checkout saga.
    pub checkout: Arc<Checkout>,
    /// `Idempotency-Key` records.
    pub idempotency: Idempotency,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// The guest cookie.
    pub cookie: CartCookie,
    /// Flash-sale drops: a cart holding a drop's SKU checks out only once admitted.
    pub drops: Option<super::drops::Drops>,
    /// Checkout sagas running at once; more wait for a slot (a flash crowd would otherwise
    /// starve the stores' connection pools and stretch every saga).
    pub checkout_slots: Arc<tokio::sync::Semaphore>,
}

/// The cart routes.
pub fn router(api: CartApi) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(get_cart))
        .routes(routes!(add_line))
        .routes(routes!(set_quantity, remove_line))
        .routes(routes!(apply_code))
        .routes(routes!(remove_code))
        .routes(routes!(set_address))
        .routes(routes!(acknowledge_prices))
        .routes(routes!(checkout))
        .with_state(Arc::new(api))
}

/// A cart line.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LineView {
    /// SKU.
    pub sku: String,
    /// Title.
    pub title: String,
    /// Units.
    pub quantity: u32,
    /// The unit price the shopper accepted.
    pub unit_price: MoneyView,
    /// The catalog's price now.
    pub current_price: MoneyView,
    /// True when they differ: acknowledge before checkout.
    pub price_changed: bool,
    /// False when the product can no longer be sold.
    pub available: bool,
    /// The line's total after discounts.
    pub total: MoneyView,
    /// The line's discount.
    pub discount: MoneyView,
}

/// A cart's totals.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TotalsView {
    /// Sum of the lines before discounts.
    pub subtotal: MoneyView,
    /// All discounts.
    pub discount: MoneyView,
    /// Shipping.
    pub shipping: MoneyView,
    /// Tax (included in the total or added, per `tax_included`).
    pub tax: MoneyView,
    /// What the shopper pays.
    pub total: MoneyView,
    /// True when prices include tax.
    pub tax_included: bool,
}

/// The shopper's cart.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CartView {
    /// The cart id; absent while the shopper has none.
    pub id: Option<String>,
    /// Its version (also the `ETag`).
    pub version: u64,
    /// `active`, `merged`, `abandoned` or `checked_out`.
    pub status: String,
    /// Currency.
    pub currency: String,
    /// Lines.
    pub lines: Vec<LineView>,
    /// Promotion codes entered.
    pub codes: Vec<String>,
    /// Shipping address.
    pub shipping_address: Option<AddressView>,
    /// Shipping method chosen.
    pub shipping_method: Option<String>,
    /// Totals.
    pub totals: Option<TotalsView>,
    /// Promotions applied, by name.
    pub promotions: Vec<String>,
    /// What stops checkout now (`empty`, `price_changed`, `unavailable`, `no_shipping_address`,
    /// `no_shipping_method`, `not_active`, or a broken cart rule).
    #[schema(value_type = Vec<Object>)]
    pub blockers: Vec<serde_json::Value>,
}

/// A line to add.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AddLine {
    /// SKU.
    pub sku: String,
    /// Units, at least 1.
    pub quantity: u32,
    /// Gift wrap this line.
    #[serde(default)]
    pub gift_wrap: bool,
}

/// A new quantity.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SetQuantity {
    /// Units; 0 removes the line.
    pub quantity: u32,
}

/// A promotion code.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApplyCode {
    /// The code as the shopper typed it.
    pub code: String,
}

/// How the shopper pays.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CheckoutRequest {
    /// The payment provider's token for the shopper's card (the sandbox takes `tok_visa`;
    /// `tok_decline` is declined).
    pub payment_method: String,
    /// Billing address; the shipping address when absent.
    #[serde(default)]
    pub billing_address: Option<AddressView>,
}

/// A checkout's result.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CheckoutView {
    /// The order.
    pub order_id: String,
    /// `confirmed`, or `processing` when the saga stopped part-way and recovery finishes it.
    pub status: String,
}

type Jarred<T> = (CookieJar, T);

fn random_id(prefix: &str) -> ApiResult<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|e| ApiError::of_kind(ErrorKind::Unavailable, format!("no randomness: {e}")))?;
    Ok(format!(
        "{prefix}{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ))
}

fn if_match(headers: &HeaderMap) -> ApiResult<Option<u64>> {
    let Some(v) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = v.to_str().unwrap_or_default().trim();
    let inner = text.strip_prefix('"').and_then(|t| t.strip_suffix('"'));
    inner
        .and_then(|t| t.parse::<u64>().ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::bad_request(
                "if-match-invalid",
                "If-Match takes the cart's ETag, a quoted version such as \"3\"",
            )
        })
}

fn precondition_failed(current: u64) -> ApiError {
    ApiError::http(
        StatusCode::PRECONDITION_FAILED,
        "precondition-failed",
        format!("the cart is at version {current}; read it and try again"),
    )
}

impl CartApi {
    fn new_cart(&self, owner: Option<UserId>) -> ApiResult<Cart> {
        let id = CartId::new(random_id(if owner.is_some() { "c-" } else { "g-" })?)?;
        Ok(Cart::new(
            id,
            owner,
            self.currency,
            self.locale,
            self.clock.now(),
        ))
    }

    fn guest_cookie(&self, id: &CartId) -> Cookie<'static> {
        let mut c = Cookie::new(self.cookie.name.clone(), id.to_string());
        c.set_http_only(true);
        c.set_same_site(SameSite::Lax);
        c.set_path("/");
        c.set_secure(self.cookie.secure);
        c.set_max_age(cookie_days(30));
        c
    }

    fn expired_cookie(&self) -> Cookie<'static> {
        let mut c = Cookie::from(self.cookie.name.clone());
        c.set_path("/");
        c
    }

    /// The guest cart the cookie names, if it is still an active anonymous cart.
    async fn guest_cart(&self, jar: &CookieJar) -> ApiResult<Option<Cart>> {
        let Some(raw) = jar.get(&self.cookie.name) else {
            return Ok(None);
        };
        let Ok(id) = CartId::new(raw.value()) else {
            return Ok(None);
        };
        Ok(self.carts.get(&id).await?.filter(|c| {
            c.owner().is_none()
                && *c.status() == CartStatus::Active
                && !c.is_expired(self.clock.now())
        }))
    }

    /// The caller's cart (merging a guest cart into a signed-in shopper's), if they have one.
    async fn current(
        &self,
        who: Option<&Principal>,
        jar: CookieJar,
    ) -> ApiResult<Jarred<Option<Cart>>> {
        let Some(p) = who else {
            let cart = self.guest_cart(&jar).await?;
            return Ok((jar, cart));
        };
        let guest = self.guest_cart(&jar).await?;
        let jar = if jar.get(&self.cookie.name).is_some() {
            jar.remove(self.expired_cookie())
        } else {
            jar
        };
        let Some(mut guest) = guest else {
            return Ok((jar, self.carts.get_active_for_user(&p.user).await?));
        };
        for _ in 0..CAS_ATTEMPTS {
            let now = self.clock.now();
            let (mut user_cart, fresh) = match self.carts.get_active_for_user(&p.user).await? {
                Some(c) => (c, false),
                None => (self.new_cart(Some(p.user.clone()))?, true),
            };
            let user_version = user_cart.version();
            let guest_version = guest.version();
            let _ = cart_engine::merge(&mut user_cart, &mut guest, MergeStrategy::SumCapped, now)?;
            // The user's cart first: it remembers the guest cart, so a merge repeated after a
            // crash between the two writes changes nothing.
            if fresh {
                if let Err(e) = self.carts.insert(user_cart.clone(), &[]).await {
                    if e.kind == ErrorKind::Conflict {
                        continue;
                    }
                    return Err(e.into());
                }
            } else if self
                .carts
                .update(user_cart.clone(), user_version, &[])
                .await?
                != CasOutcome::Committed
            {
                continue;
            }
            // The guest cart is marked merged; losing this race means another request merged
            // or changed it, and the next read sees that.
            let _ = self.carts.update(guest, guest_version, &[]).await?;
            return Ok((jar, Some(user_cart)));
        }
        Err(lost_races())
    }

    /// The products of the cart's lines, by SKU.
    async fn products_of(&self, cart: &Cart) -> ApiResult<HashMap<Sku, Product>> {
        let mut out = HashMap::new();
        for line in cart.lines() {
            if let Some(p) = self.catalog.get_by_sku(&line.sku).await? {
                let _ = out.insert(line.sku.clone(), p);
            }
        }
        Ok(out)
    }

    /// Reprices the cart from the catalog, saving it when something moved.
    async fn refresh(&self, cart: Cart) -> ApiResult<Cart> {
        let mut cart = cart;
        for _ in 0..CAS_ATTEMPTS {
            let products = self.products_of(&cart).await?;
            let before = cart.version();
            let _ = cart.reprice(|sku| products.get(sku), self.clock.now());
            if cart.version() == before {
                return Ok(cart);
            }
            match self.carts.update(cart.clone(), before, &[]).await? {
                CasOutcome::Committed => return Ok(cart),
                CasOutcome::VersionMismatch { .. } => {
                    cart = self.carts.get(cart.id()).await?.ok_or_else(|| {
                        ApiError::of_kind(ErrorKind::NotFound, "the cart is gone")
                    })?;
                }
            }
        }
        Err(lost_races())
    }

    async fn price(&self, cart: &Cart) -> ApiResult<PricedCart> {
        let promotions = self.promotions.read().await;
        let customer = cart.owner().map(|u| cart_engine::Customer {
            id: u.clone(),
            groups: Default::default(),
            orders_placed: 0,
        });
        Ok(cart_engine::price(
            cart,
            &promotions,
            &PricingContext {
                now: self.clock.now(),
                customer: customer.as_ref(),
                config: &self.pricing,
                tax: self.tax.as_ref(),
            },
        )?)
    }

    async fn view(&self, cart: Option<&Cart>) -> ApiResult<CartView> {
        let Some(cart) = cart else {
            return Ok(CartView {
                id: None,
                version: 0,
                status: "active".into(),
                currency: self.currency.to_string(),
                lines: Vec::new(),
                codes: Vec::new(),
                shipping_address: None,
                shipping_method: None,
                totals: None,
                promotions: Vec::new(),
                blockers: vec![serde_json::json!({"kind": "empty"})],
            });
        };
        let priced = if cart.lines().is_empty() {
            None
        } else {
            Some(self.price(cart).await?)
        };
        // The promotions that gave something, by name, in the order they applied.
        let mut promotions: Vec<String> = Vec::new();
        if let Some(p) = &priced {
            let rules = self.promotions.read().await;
            for a in &p.adjustments {
                let Some(given) = p.promotions.get(a.promotion) else {
                    continue;
                };
                let name = rules
                    .iter()
                    .find(|r| r.id == given.promotion_id)
                    .map_or_else(|| given.promotion_id.to_string(), |r| r.name.clone());
                if !promotions.contains(&name) {
                    promotions.push(name);
                }
            }
        }
        let mut blockers: Vec<serde_json::Value> = cart
            .checkout_blockers(self.clock.now())
            .iter()
            .filter_map(|b| serde_json::to_value(b).ok())
            .collect();
        if let Some(p) = &priced {
            blockers.extend(p.violations.iter().filter_map(|v| {
                serde_json::to_value(v)
                    .ok()
                    .map(|v| serde_json::json!({"kind": "cart_rule", "rule": v}))
            }));
        }
        let lines = cart
            .lines()
            .iter()
            .map(|l| {
                let pl = priced
                    .as_ref()
                    .and_then(|p| p.lines.iter().find(|x| x.sku == l.sku));
                LineView {
                    sku: l.sku.to_string(),
                    title: l.product.title.clone(),
                    quantity: l.quantity,
                    unit_price: l.unit_price.into(),
                    current_price: l.current_price.into(),
                    price_changed: l.price_changed(),
                    available: l.available,
                    total: pl.map_or(l.unit_price, |p| p.total).into(),
                    discount: pl
                        .map_or(commerce_core::Money::zero(self.currency), |p| p.discount)
                        .into(),
                }
            })
            .collect();
        let status = match cart.status() {
            CartStatus::Active => "active",
            CartStatus::Merged { .. } => "merged",
            CartStatus::Abandoned => "abandoned",
            CartStatus::CheckedOut => "checked_out",
        };
        Ok(CartView {
            id: Some(cart.id().to_string()),
            version: cart.version(),
            status: status.into(),
            currency: cart.currency().to_string(),
            lines,
            codes: cart.codes().iter().map(|c| c.as_str().to_owned()).collect(),
            shipping_address: cart.shipping_address().map(AddressView::from),
            shipping_method: cart.shipping_method().map(|m| m.name.clone()),
            totals: priced.as_ref().map(|p| TotalsView {
                subtotal: p.totals.subtotal.into(),
                discount: p.totals.discount.into(),
                shipping: p.totals.shipping.into(),
                tax: p.totals.tax.into(),
                total: p.totals.total.into(),
                tax_included: p.totals.tax_included,
            }),
            promotions,
            blockers,
        })
    }

    async fn respond(&self, jar: CookieJar, cart: Option<&Cart>) -> ApiResult<Response> {
        let view = self.view(cart).await?;
        let etag = HeaderValue::from_str(&format!("\"{}\"", view.version))
            .unwrap_or(HeaderValue::from_static("\"0\""));
        Ok((jar, [(header::ETAG, etag)], Json(view)).into_response())
    }

    /// Applies `change` to the caller's cart (created when `create` and there is none),
    /// retrying lost races unless the client pinned a version with `If-Match`.
    async fn mutate<F>(
        &self,
        who: Option<&Principal>,
        jar: CookieJar,
        headers: &HeaderMap,
        create: bool,
        change: F,
    ) -> ApiResult<Response>
    where
        F: Fn(&mut Cart, &Mutation, &HashMap<Sku, Product>) -> ApiResult<()>,
        F: Send + Sync,
    {
        let expected = if_match(headers)?;
        let (mut jar, existing) = self.current(who, jar).await?;
        let mut existing = existing;
        for _ in 0..CAS_ATTEMPTS {
            let (cart, fresh) = match existing.take() {
                Some(c) => (self.refresh(c).await?, false),
                None if create => (self.new_cart(who.map(|p| p.user.clone()))?, true),
                None => {
                    return Err(ApiError::of_kind(
                        ErrorKind::NotFound,
                        "there is no cart yet",
                    ));
                }
            };
            if let Some(v) = expected
                && v != cart.version()
            {
                return Err(precondition_failed(cart.version()));
            }
            let mut next = cart.clone();
            let mut products = self.products_of(&next).await?;
            change(&mut next, &Mutation::at(self.clock.now()), &products)?;
            // A line just added needs its product for the response's reprice too.
            for line in next.lines() {
                if !products.contains_key(&line.sku)
                    && let Some(p) = self.catalog.get_by_sku(&line.sku).await?
                {
                    let _ = products.insert(line.sku.clone(), p);
                }
            }
            let committed = if fresh {
                match self.carts.insert(next.clone(), &[]).await {
                    Ok(()) => true,
                    Err(e) if e.kind == ErrorKind::Conflict => false,
                    Err(e) => return Err(e.into()),
                }
            } else {
                self.carts.update(next.clone(), cart.version(), &[]).await? == CasOutcome::Committed
            };
            if committed {
                if fresh && who.is_none() {
                    jar = jar.add(self.guest_cookie(next.id()));
                }
                return self.respond(jar, Some(&next)).await;
            }
            if expected.is_some() {
                let now = self.carts.get(cart.id()).await?.map_or(0, |c| c.version());
                return Err(precondition_failed(now));
            }
            let (j, again) = self.current(who, jar).await?;
            jar = j;
            existing = again;
        }
        Err(lost_races())
    }
}

fn cookie_days(days: i64) -> cookie::time::Duration {
    cookie::time::Duration::days(days)
}

fn lost_races() -> ApiError {
    ApiError::of_kind(
        ErrorKind::Conflict,
        "the cart kept changing under this request; try again",
    )
}

fn applied(outcome: Outcome) -> ApiResult<()> {
    match outcome {
        Outcome::Applied { .. } | Outcome::Duplicate { .. } => Ok(()),
        Outcome::Stale { current } => Err(precondition_failed(current)),
    }
}

/// The shopper's cart (an empty one, without id, while they have none).
#[utoipa::path(get, path = "/cart", tag = "cart",
    responses((status = 200, body = CartView)))]
async fn get_cart(
    State(api): State<Arc<CartApi>>,
    MaybeSignedIn(who): MaybeSignedIn,
    jar: CookieJar,
) -> ApiResult<Response> {
    let (jar, cart) = api.current(who.as_ref(), jar).await?;
    let cart = match cart {
        Some(c) => Some(api.refresh(c).await?),
        None => None,
    };
    api.respond(jar, cart.as_ref()).await
}

/// Adds units of a product (to the line of that SKU if there is one). Creates the cart, and
/// for a guest sets the cart cookie.
#[utoipa::path(post, path = "/cart/lines", tag = "cart", request_body = AddLine,
    params(("If-Match" = Option<String>, Header, description = "The cart's ETag")),
    responses((status = 200, body = CartView), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 412, body = Problem), (status = 422, body = Problem)))]
async fn add_line(
    State(api): State<Arc<CartApi>>,
    MaybeSignedIn(who): MaybeSignedIn,
    jar: CookieJar,
    headers: HeaderMap,
    Body(body): Body<AddLine>,
) -> ApiResult<Response> {
    let sku = sku_of(&body.sku)?;
    let product = api
        .catalog
        .get_by_sku(&sku)
        .await?
        .ok_or_else(|| ApiError::of_kind(ErrorKind::NotFound, format!("no product {sku}")))?;
    api.mutate(who.as_ref(), jar, &headers, true, |cart, m, _| {
        applied(cart.execute(
            CartCommand::AddLine {
                product: &product,
                quantity: body.quantity,
                gift_wrap: body.gift_wrap,
            },
            m,
        )?)
    })
    .await
}

/// Sets a line's quantity (0 removes it).
#[utoipa::path(put, path = "/cart/lines/{sku}", tag = "cart", request_body = SetQuantity,
    params(("sku" = String, Path, description = "The line's SKU"),
        ("If-Match" = Option<String>, Header, description = "The cart's ETag")),
    responses((status = 200, body = CartView), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 412, body = Problem), (status = 422, body = Problem)))]
async fn set_quantity(
    State(api): State<Arc<CartApi>>,
    MaybeSignedIn(who): MaybeSignedIn,
    jar: CookieJar,
    headers: HeaderMap,
    Path(sku): Path<String>,
    Body(body): Body<SetQuantity>,
) -> ApiResult<Response> {
    let sku = sku_of(&sku)?;
    api.mutate(who.as_ref(), jar, &headers, false, |cart, m, _| {
        let command = if body.quantity == 0 {
            CartCommand::RemoveLine { sku: sku.clone() }
        } else {
            CartCommand::SetQuantity {
                sku: sku.clone(),
                quantity: body.quantity,
            }
        };
        applied(cart.execute(command, m)?)
    })
    .await
}

/// Removes a line.
#[utoipa::path(delete, path = "/cart/lines/{sku}", tag = "cart",
    params(("sku" = String, Path, description = "The line's SKU"),
        ("If-Match" = Option<String>, Header, description = "The cart's ETag")),
    responses((status = 200, body = CartView), (status = 404, body = Problem), (status = 412, body = Problem),
        (status = 422, body = Problem)))]
async fn remove_line(
    State(api): State<Arc<CartApi>>,
    MaybeSignedIn(who): MaybeSignedIn,
    jar: CookieJar,
    headers: HeaderMap,
    Path(sku): Path<String>,
) -> ApiResult<Response> {
    let sku = sku_of(&sku)?;
    api.mutate(who.as_ref(), jar, &headers, false, |cart, m, _| {
        applied(cart.execute(CartCommand::RemoveLine { sku: sku.clone() }, m)?)
    })
    .await
}

/// Enters a promotion code (case and spaces do not matter). A code that matches no promotion
/// stays on the cart and does nothing, as at the till.
#[utoipa::path(post, path = "/cart/codes", tag = "cart", request_body = ApplyCode,
    params(("If-Match" = Option<String>, Header, description = "The cart's ETag")),
    responses((status = 200, body = CartView), (status = 404, body = Problem), (status = 412, body = Problem),
        (status = 422, body = Problem)))]
async fn apply_code(
    State(api): State<Arc<CartApi>>,
    MaybeSignedIn(who): MaybeSignedIn,
    jar: CookieJar,
    headers: HeaderMap,
    Body(body): Body<ApplyCode>,
) -> ApiResult<Response> {
    api.mutate(who.as_ref(), jar, &headers, false, |cart, m, _| {
        applied(cart.execute(CartCommand::ApplyCode(body.code.clone()), m)?)
    })
    .await
}

/// Removes a promotion code.
#[utoipa::path(delete, path = "/cart/codes/{code}", tag = "cart",
    params(("code" = String, Path, description = "The code"),
        ("If-Match" = Option<String>, Header, description = "The cart's ETag")),
    responses((status = 200, body = CartView), (status = 404, body = Problem), (status = 412, body = Problem),
        (status = 422, body = Problem)))]
async fn remove_code(
    State(api): State<Arc<CartApi>>,
    MaybeSignedIn(who): MaybeSignedIn,
    jar: CookieJar,
    headers: HeaderMap,
    Path(code): Path<String>,
) -> ApiResult<Response> {
    api.mutate(who.as_ref(), jar, &headers, false, |cart, m, _| {
        applied(cart.execute(CartCommand::RemoveCode(code.clone()), m)?)
    })
    .await
}

/// Sets the shipping address, and the cheapest carrier service that delivers there within a
/// week.
#[utoipa::path(put, path = "/cart/shipping-address", tag = "cart", request_body = AddressView,
    params(("If-Match" = Option<String>, Header, description = "The cart's ETag")),
    responses((status = 200, body = CartView), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 412, body = Problem), (status = 422, body = Problem), (status = 503, body = Problem)))]
async fn set_address(
    State(api): State<Arc<CartApi>>,
    MaybeSignedIn(who): MaybeSignedIn,
    jar: CookieJar,
    headers: HeaderMap,
    Body(body): Body<AddressView>,
) -> ApiResult<Response> {
    let address = Address::try_from(body)?;
    let now = api.clock.now();
    let request = ShipmentRequest {
        from: api.ship_from.clone(),
        to: address.clone(),
        parcels: vec![Parcel {
            weight_g: 1_000,
            dimensions_mm: [300, 200, 150],
        }],
        currency: api.currency,
        ship_date: now.date_naive(),
    };
    let promised = now
        .date_naive()
        .checked_add_days(Days::new(7))
        .unwrap_or(now.date_naive());
    let quote = saga::rate_shop(&api.carriers, &request, promised).await?;
    let method = ShippingMethod {
        id: format!("{}/{}", quote.carrier, quote.service),
        name: format!("{} {}", quote.carrier, quote.service),
        price: quote.amount,
    };
    api.mutate(who.as_ref(), jar, &headers, false, |cart, m, _| {
        applied(cart.execute(CartCommand::SetShippingAddress(address.clone()), m)?)?;
        applied(cart.execute(CartCommand::SetShippingMethod(method.clone()), m)?)
    })
    .await
}

/// Accepts the catalog's current prices for every line whose price moved.
#[utoipa::path(post, path = "/cart/acknowledge-prices", tag = "cart",
    params(("If-Match" = Option<String>, Header, description = "The cart's ETag")),
    responses((status = 200, body = CartView), (status = 404, body = Problem), (status = 412, body = Problem)))]
async fn acknowledge_prices(
    State(api): State<Arc<CartApi>>,
    MaybeSignedIn(who): MaybeSignedIn,
    jar: CookieJar,
    headers: HeaderMap,
) -> ApiResult<Response> {
    api.mutate(who.as_ref(), jar, &headers, false, |cart, m, _| {
        applied(cart.execute(CartCommand::AcknowledgePrices, m)?)
    })
    .await
}

/// Checks the cart out: stock held, order created, card charged, order confirmed, as one saga.
/// Needs `Idempotency-Key`: a retry answers the first call's result and never charges twice.
#[utoipa::path(post, path = "/cart/checkout", tag = "checkout", request_body = CheckoutRequest,
    params(("Idempotency-Key" = String, Header, description = "A unique key per checkout attempt")),
    security(("bearer" = [])),
    responses((status = 201, body = CheckoutView, description = "The order is confirmed"),
        (status = 202, body = CheckoutView, description = "Stopped part-way; recovery finishes it"),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "Refused (sold out, price changed, declined) or in flight"),
        (status = 429, body = Problem, description = "The cart holds a drop's SKU and the shopper is not admitted yet"),
        (status = 422, body = Problem), (status = 503, body = Problem)))]
async fn checkout(
    State(api): State<Arc<CartApi>>,
    Customer(who): Customer,
    key: ClientKey,
    jar: CookieJar,
    Body(body): Body<CheckoutRequest>,
) -> ApiResult<Response> {
    let client_key = key.required()?.to_owned();
    // Merge a guest cart first (outside the idempotent part: it is idempotent on its own).
    let (jar, cart) = api.current(Some(&who), jar).await?;
    // The drop's throttle, also outside: a shopper turned away while waiting retries the same
    // checkout once admitted, and must not get the stored refusal back.
    if let (Some(drops), Some(cart)) = (&api.drops, &cart) {
        let skus: Vec<Sku> = cart.lines().iter().map(|l| l.sku.clone()).collect();
        if let Err(e) = drops.check_admitted(&who.user, &skus).await {
            metrics::counter!("commerce_checkout_attempts_total", "outcome" => "throttled")
                .increment(1);
            return Err(e);
        }
    }
    let canonical = serde_json::to_vec(&body).unwrap_or_default();
    let order_id = format!(
        "o-{}",
        digest(&[who.user.as_str().as_bytes(), client_key.as_bytes()])
            .get(..32)
            .unwrap_or_default()
    );
    let work_api = api.clone();
    let work_who = who.clone();
    let work = async move {
        match run_checkout(&work_api, &work_who, &order_id, body).await {
            Ok(r) => r,
            Err(e) => e.into_response(),
        }
    };
    let response = api
        .idempotency
        .once(
            who.user.as_str(),
            Some(&client_key),
            &[
                Method::POST.as_str().as_bytes(),
                b"/cart/checkout",
                &canonical,
            ],
            work,
        )
        .await;
    let outcome = if response.headers().contains_key(super::IDEMPOTENT_REPLAYED) {
        "replayed"
    } else {
        match response.status() {
            StatusCode::CREATED => "confirmed",
            StatusCode::ACCEPTED => "processing",
            StatusCode::CONFLICT => "refused",
            _ => "error",
        }
    };
    metrics::counter!("commerce_checkout_attempts_total", "outcome" => outcome).increment(1);
    Ok((jar, response).into_response())
}

async fn run_checkout(
    api: &CartApi,
    who: &Principal,
    order_id: &str,
    body: CheckoutRequest,
) -> ApiResult<Response> {
    let key = IdempotencyKey::new(order_id)?;
    let billing = body.billing_address.map(Address::try_from).transpose()?;
    if body.payment_method.is_empty() || body.payment_method.len() > 255 {
        return Err(
            ApiError::of_kind(ErrorKind::Invalid, "payment_method is 1 to 255 characters")
                .with_field("payment_method"),
        );
    }
    // A retry of a checkout that already went through finds its order by the saga's key.
    let cart = match api.carts.get_active_for_user(&who.user).await? {
        Some(c) => api.refresh(c).await?,
        None => {
            return Err(ApiError::of_kind(
                ErrorKind::NotFound,
                "there is no cart to check out",
            ));
        }
    };
    let priced = api.price(&cart).await?;
    let promotions = api.promotions.read().await.clone();
    let mut input = CheckoutInput::from_cart(&cart, &priced, &promotions, api.clock.now())?
        .order_id(&key)
        .customer(who.user.as_str())?
        .ship_from(api.location.clone())
        .payment_method(body.payment_method);
    if let Some(b) = billing {
        input = input.billing(b);
    }
    let input = input.build()?;
    // Sold out: refused at once, before waiting for a slot, and again once a slot is free (it
    // may have sold out meanwhile), so a flash sale's late buyers cost a read each.
    if let Some(failure) = api.checkout.short_of_stock(&input).await? {
        return Err(refused_checkout(&failure));
    }
    let _slot = api
        .checkout_slots
        .acquire()
        .await
        .map_err(|_| ApiError::of_kind(ErrorKind::Unavailable, "checkout is shutting down"))?;
    if let Some(failure) = api.checkout.short_of_stock(&input).await? {
        return Err(refused_checkout(&failure));
    }
    let outcome = api.checkout.checkout(&input).await?;
    finish_outcome(api, &cart, order_id, outcome).await
}

fn created(order_id: &str, status: &str) -> Response {
    let code = if status == "confirmed" {
        StatusCode::CREATED
    } else {
        StatusCode::ACCEPTED
    };
    let location = HeaderValue::from_str(&format!("/orders/{order_id}"))
        .unwrap_or(HeaderValue::from_static("/orders"));
    (
        code,
        [(header::LOCATION, location)],
        Json(CheckoutView {
            order_id: order_id.to_owned(),
            status: status.to_owned(),
        }),
    )
        .into_response()
}

async fn finish_outcome(
    api: &CartApi,
    cart: &Cart,
    order_id: &str,
    outcome: CheckoutOutcome,
) -> ApiResult<Response> {
    match outcome {
        CheckoutOutcome::Confirmed { order_id } => {
            mark_checked_out(api, cart).await?;
            Ok(created(order_id.as_str(), "confirmed"))
        }
        CheckoutOutcome::Unfinished => Ok(created(order_id, "processing")),
        CheckoutOutcome::Failed { reason, .. } => Err(refused_checkout(&reason)),
        CheckoutOutcome::InProgress => Err(ApiError::http(
            StatusCode::CONFLICT,
            "idempotency-key-in-flight",
            "this checkout is running; retry it unchanged in a moment",
        )),
    }
}

async fn mark_checked_out(api: &CartApi, cart: &Cart) -> ApiResult<()> {
    let mut current = cart.clone();
    for _ in 0..CAS_ATTEMPTS {
        if *current.status() != CartStatus::Active {
            return Ok(());
        }
        let version = current.version();
        let mut next = current.clone();
        next.mark_checked_out()?;
        if api.carts.update(next, version, &[]).await? == CasOutcome::Committed {
            return Ok(());
        }
        current = match api.carts.get(cart.id()).await? {
            Some(c) => c,
            None => return Ok(()),
        };
    }
    Err(lost_races())
}
