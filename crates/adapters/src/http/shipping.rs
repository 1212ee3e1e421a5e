//! Shipping: an admin ships an order (the lifecycle buys the label and captures the payment),
//! and the carrier's tracking webhook moves it on (delivered, lost, returned).
//!
//! The webhook is signed under the carrier's shared secret ([`WebhookKey`]: a signature that
//! does not verify, or a timestamp more than five minutes from now, is 401, so a replay of an
//! old delivery cannot pass); an event id seen before answers 200 again without applying
//! anything twice (carriers deliver at least once). The lifecycle itself ignores an
//! out-of-date or repeated update.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use commerce_core::{
    Address, Clock, ErrorKind, OrderId, OrderStore, Parcel, ShipmentRequest, TrackingEvent,
    TrackingStatus,
};
use saga::{Applied, LabelSource, Lifecycle, Shipment};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Admin;
use super::idempotency::Idempotency;
use super::orders::OrderView;
use super::problem::axum_extra_json::Path;
use super::problem::{ApiError, ApiResult, Problem};
use super::webhook::verified;
pub use super::webhook::{WEBHOOK_SIGNATURE, WEBHOOK_TOLERANCE_SECS, WebhookKey};

/// What the shipping routes need.
#[derive(Debug, Clone)]
pub struct ShippingApi {
    /// The order lifecycle (fulfilment, shipping, tracking).
    pub lifecycle: Arc<Lifecycle>,
    /// Orders.
    pub orders: Arc<dyn OrderStore>,
    /// Where parcels ship from.
    pub ship_from: Address,
    /// The carrier service labels are bought for.
    pub service: String,
    /// The carrier's webhook secret.
    pub webhook_key: WebhookKey,
    /// Event ids seen (dedupe of redelivered webhooks).
    pub idempotency: Idempotency,
    /// The clock.
    pub clock: Arc<dyn Clock>,
}

/// The shipping routes.
pub fn router(api: ShippingApi) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(ship))
        .routes(routes!(carrier_webhook))
        .with_state(Arc::new(api))
}

/// A tracking update as carriers deliver it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TrackingWebhook {
    /// The delivery's id (the same on a redelivery).
    pub event_id: String,
    /// The order the parcel belongs to.
    pub order_id: String,
    /// The parcel's tracking number.
    pub tracking_number: String,
    /// The carrier's sequence number for this parcel (later updates are higher).
    pub seq: u64,
    /// When it happened (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    pub at: DateTime<Utc>,
    /// `label_created`, `in_transit`, `out_for_delivery`, `delivered`, `lost`,
    /// `address_issue`, `return_to_sender`.
    #[schema(value_type = String)]
    pub status: TrackingStatus,
}

/// What a webhook did.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WebhookResult {
    /// `applied` or `ignored` (out of date, or repeated under a new event id). A redelivery of
    /// the same event id gets the first answer again, with `Idempotent-Replayed: true`.
    pub result: String,
}

fn lifecycle_error(applied: Applied) -> ApiResult<Box<commerce_core::Order>> {
    match applied {
        Applied::Moved(order) => Ok(order),
        Applied::Refused(failure) => Err(ApiError::of_kind(failure.kind(), format!("{failure:?}"))
            .with_details(serde_json::to_value(&failure).unwrap_or_default())),
        Applied::InProgress => Err(ApiError::of_kind(
            ErrorKind::Conflict,
            "this order is being worked on; try again in a moment",
        )),
        other => Err(ApiError::of_kind(
            ErrorKind::Unavailable,
            format!("the operation stopped part-way ({other:?}); recovery finishes it"),
        )),
    }
}

/// Ships a confirmed order whole (admin): fulfilment starts, a label is bought from the
/// carrier, the payment is captured, the order is `shipped` with its tracking number.
/// Repeating it changes nothing.
#[utoipa::path(post, path = "/admin/orders/{id}/ship", tag = "shipping",
    params(("id" = String, Path, description = "The order")),
    security(("bearer" = [])),
    responses((status = 200, body = OrderView), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem),
        (status = 503, body = Problem)))]
async fn ship(
    State(api): State<Arc<ShippingApi>>,
    _admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<OrderView>> {
    let id = OrderId::new(id).map_err(|e| ApiError::from(e).with_field("id"))?;
    let order = api
        .orders
        .get(&id)
        .await?
        .ok_or_else(|| ApiError::of_kind(ErrorKind::NotFound, "no such order"))?;
    if order.status() == commerce_core::OrderStatus::Confirmed {
        let _ = lifecycle_error(api.lifecycle.start_fulfilment(&id).await?)?;
    }
    let now = api.clock.now();
    let request = ShipmentRequest {
        from: api.ship_from.clone(),
        to: order.shipping_address().clone(),
        parcels: vec![Parcel {
            weight_g: 1_000,
            dimensions_mm: [300, 200, 150],
        }],
        currency: order.currency(),
        ship_date: now.date_naive(),
    };
    let shipped = api
        .lifecycle
        .ship(
            &id,
            Shipment::whole(
                "parcel-1",
                LabelSource::Buy {
                    request: Box::new(request),
                    service: api.service.clone(),
                },
            ),
        )
        .await?;
    let order = lifecycle_error(shipped)?;
    Ok(Json(OrderView::from(order.as_ref())))
}

/// The carrier's tracking webhook (signed; see the module).
#[utoipa::path(post, path = "/webhooks/carrier/{carrier}", tag = "shipping",
    request_body = TrackingWebhook,
    params(("carrier" = String, Path, description = "The carrier"),
        ("Webhook-Signature" = String, Header, description = "t=<unix>,v1=<hex HMAC-SHA256 of \"<t>.<body>\">")),
    responses((status = 200, body = WebhookResult), (status = 401, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn carrier_webhook(
    State(api): State<Arc<ShippingApi>>,
    Path(carrier): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let update: TrackingWebhook = verified(
        &api.webhook_key,
        &headers,
        &body,
        api.clock.now(),
        "tracking update",
    )?;
    let update_event_id = update.event_id.clone();
    let order_id =
        OrderId::new(&update.order_id).map_err(|e| ApiError::from(e).with_field("order_id"))?;
    let scope = format!("webhook:{carrier}");
    let work_api = api.clone();
    let work = async move {
        let applied = work_api
            .lifecycle
            .on_tracking(
                &order_id,
                &carrier,
                &update.tracking_number,
                &TrackingEvent {
                    seq: update.seq,
                    at: update.at,
                    status: update.status,
                },
            )
            .await;
        let result = match applied {
            Ok(Applied::Moved(_)) => "applied",
            Ok(Applied::Ignored) => "ignored",
            Ok(other) => {
                return lifecycle_error(other).map_or_else(IntoResponse::into_response, |_| {
                    StatusCode::OK.into_response()
                });
            }
            Err(e) => return ApiError::from(e).into_response(),
        };
        Json(WebhookResult {
            result: result.into(),
        })
        .into_response()
    };
    // One delivery, applied once: the event id is the idempotency key, scoped to the carrier.
    Ok(api
        .idempotency
        .once(
            &scope,
            Some(&update_event_id),
            &[Method::POST.as_str().as_bytes(), &body],
            work,
        )
        .await)
}
