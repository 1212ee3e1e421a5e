//! Order routes: a shopper follows their own orders; admins see every order.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use commerce_core::{ErrorKind, Order, OrderId, OrderStore, Transition};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Customer, owner_or_admin};
use super::problem::axum_extra_json::Path;
use super::problem::{ApiError, ApiResult, Problem};
use super::views::{AddressView, MoneyView};

/// What the order routes need.
#[derive(Debug, Clone)]
pub struct OrdersApi {
    /// Orders.
    pub orders: Arc<dyn OrderStore>,
}

/// The order routes: `GET /orders/{id}`.
pub fn router(api: OrdersApi) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(get_order))
        .with_state(Arc::new(api))
}

/// An order line.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OrderLineView {
    /// SKU.
    pub sku: String,
    /// Title at purchase.
    pub title: String,
    /// Units.
    pub quantity: u32,
    /// Unit price paid before discounts.
    pub unit_price: MoneyView,
    /// The line's discount.
    pub discount: MoneyView,
}

/// One step in the order's history.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OrderStepView {
    /// Position in the ledger, from 1.
    pub seq: u32,
    /// When (RFC 3339).
    pub at: String,
    /// Status before.
    pub from: String,
    /// Status after.
    pub to: String,
    /// What happened (`confirm`, `ship`, `deliver`, …).
    pub kind: String,
}

/// A parcel on its way.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TrackingView {
    /// Carrier.
    pub carrier: String,
    /// Tracking number.
    pub tracking_number: String,
}

/// An order.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OrderView {
    /// Order id.
    pub id: String,
    /// Status (`pending_payment`, `confirmed`, `fulfilling`, `shipped`, `delivered`, …).
    pub status: String,
    /// Lines.
    pub lines: Vec<OrderLineView>,
    /// Subtotal.
    pub subtotal: MoneyView,
    /// Discounts.
    pub discount: MoneyView,
    /// Shipping.
    pub shipping: MoneyView,
    /// Tax.
    pub tax: MoneyView,
    /// What the shopper pays.
    pub total: MoneyView,
    /// Where it goes.
    pub shipping_address: AddressView,
    /// When it was placed (RFC 3339).
    pub created_at: String,
    /// Its history.
    pub history: Vec<OrderStepView>,
    /// Parcels shipped.
    pub tracking: Vec<TrackingView>,
}

impl From<&Order> for OrderView {
    fn from(o: &Order) -> OrderView {
        let t = o.totals();
        OrderView {
            id: o.id().to_string(),
            status: o.status().to_string(),
            lines: o
                .lines()
                .iter()
                .map(|l| OrderLineView {
                    sku: l.sku.to_string(),
                    title: l.title.clone(),
                    quantity: l.quantity,
                    unit_price: l.unit_price.into(),
                    discount: l.discount.into(),
                })
                .collect(),
            subtotal: t.subtotal.into(),
            discount: t.discount.into(),
            shipping: t.shipping.into(),
            tax: t.tax.into(),
            total: t.grand_total.into(),
            shipping_address: AddressView::from(o.shipping_address()),
            created_at: o.created_at().to_rfc3339(),
            history: o
                .ledger()
                .iter()
                .map(|e| OrderStepView {
                    seq: e.seq,
                    at: e.at.to_rfc3339(),
                    from: e.from.to_string(),
                    to: e.to.to_string(),
                    kind: e.transition.kind().to_string(),
                })
                .collect(),
            tracking: o
                .ledger()
                .iter()
                .filter_map(|e| match &e.transition {
                    Transition::Ship {
                        carrier,
                        tracking_number,
                        ..
                    } => Some(TrackingView {
                        carrier: carrier.clone(),
                        tracking_number: tracking_number.clone(),
                    }),
                    _ => None,
                })
                .collect(),
        }
    }
}

/// One of the caller's orders (any order for an admin). Someone else's order is 404.
#[utoipa::path(get, path = "/orders/{id}", tag = "orders",
    params(("id" = String, Path, description = "The order id")),
    security(("bearer" = [])),
    responses((status = 200, body = OrderView), (status = 401, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem)))]
async fn get_order(
    State(api): State<Arc<OrdersApi>>,
    Customer(who): Customer,
    Path(id): Path<String>,
) -> ApiResult<Json<OrderView>> {
    let id = OrderId::new(id).map_err(|e| ApiError::from(e).with_field("id"))?;
    let order = api.orders.get(&id).await?;
    let Some(order) = order else {
        return Err(ApiError::of_kind(ErrorKind::NotFound, "no such order"));
    };
    owner_or_admin(&who, Some(order.user_id()), "order")?;
    Ok(Json(OrderView::from(&order)))
}
