//! The payment provider's webhook: `POST /webhooks/payments/{provider}`.
//!
//! Providers notify asynchronously: an authorization that went through after the checkout
//! waiting for it gave up (a timeout, then the saga cancelled the order), a capture or refund
//! made in the provider's dashboard, a dispute. The notification is only a nudge: the
//! handler checks its signature ([`WebhookKey`], 401 when it does not verify or is older than
//! five minutes), reads the payment as the provider holds it now ([`PaymentGateway::get`]:
//! the amounts in a notification can be stale or out of order) and reconciles it with
//! [`saga::reconcile_payment`]: money that no confirmed order holds is given back (captured
//! money refunded, an authorization voided) at once, instead of at the next reconciliation
//! pass. A payment whose order is confirmed, or whose saga is still running, is left alone.
//!
//! Every event type is handled the same way, so a type added by the provider later needs no
//! change. An event id seen before answers the first answer again (`Idempotent-Replayed`)
//! without calling the provider twice.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use commerce_core::{Clock, ErrorKind, OrderStore, PaymentGateway, PaymentRef};
use saga::{Reconciled, SagaJournal};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::idempotency::Idempotency;
use super::problem::axum_extra_json::Path;
use super::problem::{ApiError, ApiResult, Problem};
use super::webhook::{WebhookKey, verified};

/// What the payment webhook needs.
#[derive(Debug, Clone)]
pub struct PaymentsApi {
    /// The provider (read back, and refunds or voids).
    pub payments: Arc<dyn PaymentGateway>,
    /// Orders (is the payment a confirmed order's?).
    pub orders: Arc<dyn OrderStore>,
    /// The saga journal (is the order's checkout, cancellation or return still running?).
    pub journal: Arc<dyn SagaJournal>,
    /// The provider's webhook secret.
    pub webhook_key: WebhookKey,
    /// Event ids seen (dedupe of redelivered notifications).
    pub idempotency: Idempotency,
    /// The clock.
    pub clock: Arc<dyn Clock>,
}

/// The payment webhook's route.
pub fn router(api: PaymentsApi) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(payment_webhook))
        .with_state(Arc::new(api))
}

/// A provider's notification about one payment.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PaymentWebhook {
    /// The notification's id (the same on a redelivery).
    pub event_id: String,
    /// What the provider says happened (`payment.authorized`, `payment.captured`,
    /// `payment.refunded`, `payment.voided`, `dispute.created`, ...); informative only, the
    /// payment is read back from the provider.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The provider's reference of the payment.
    pub payment_ref: String,
    /// The order the provider has the payment under, when it says.
    #[serde(default)]
    pub order_id: Option<String>,
}

/// What the webhook did with the payment.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PaymentWebhookResult {
    /// `refunded` or `voided` (the money belonged to no confirmed order and went back),
    /// `belongs` (a confirmed order's payment), `running` (its order's saga settles it),
    /// `settled` (nothing left to give back).
    pub result: String,
}

fn label(r: Reconciled) -> &'static str {
    match r {
        Reconciled::Refunded => "refunded",
        Reconciled::Voided => "voided",
        Reconciled::Belongs => "belongs",
        Reconciled::Running => "running",
        Reconciled::Settled => "settled",
    }
}

/// The payment provider's webhook (signed; see the module).
#[utoipa::path(post, path = "/webhooks/payments/{provider}", tag = "payments",
    request_body = PaymentWebhook,
    params(("provider" = String, Path, description = "The payment provider"),
        ("Webhook-Signature" = String, Header, description = "t=<unix>,v1=<hex HMAC-SHA256 of \"<t>.<body>\">")),
    responses((status = 200, body = PaymentWebhookResult), (status = 401, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem),
        (status = 503, body = Problem)))]
async fn payment_webhook(
    State(api): State<Arc<PaymentsApi>>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let event: PaymentWebhook = verified(
        &api.webhook_key,
        &headers,
        &body,
        api.clock.now(),
        "payment notification",
    )?;
    let payment_ref = PaymentRef::new(&event.payment_ref)
        .map_err(|e| ApiError::from(e).with_field("payment_ref"))?;
    let event_id = event.event_id.clone();
    let scope = format!("webhook:payments:{provider}");
    let work_api = api.clone();
    let work = async move {
        let api = work_api;
        let payment = match api.payments.get(&payment_ref).await {
            Ok(Some(p)) => p,
            Ok(None) => {
                return ApiError::of_kind(
                    ErrorKind::NotFound,
                    format!("the provider has no payment {payment_ref}"),
                )
                .with_field("payment_ref")
                .into_response();
            }
            Err(e) => return ApiError::from(e).into_response(),
        };
        if event
            .order_id
            .as_deref()
            .is_some_and(|o| o != payment.order_id.as_str())
        {
            return ApiError::of_kind(
                ErrorKind::Invalid,
                format!(
                    "payment {payment_ref} is order {}'s, not {}",
                    payment.order_id,
                    event.order_id.unwrap_or_default()
                ),
            )
            .with_field("order_id")
            .into_response();
        }
        match saga::reconcile_payment(
            &payment,
            api.payments.as_ref(),
            api.orders.as_ref(),
            api.journal.as_ref(),
        )
        .await
        {
            Ok(done) => {
                tracing::info!(
                    payment = %payment_ref,
                    order = %payment.order_id,
                    event = %event.event_type,
                    result = label(done),
                    "payment notification"
                );
                Json(PaymentWebhookResult {
                    result: label(done).into(),
                })
                .into_response()
            }
            Err(e) => ApiError::from(e).into_response(),
        }
    };
    Ok(api
        .idempotency
        .once(
            &scope,
            Some(&event_id),
            &[Method::POST.as_str().as_bytes(), &body],
            work,
        )
        .await)
}
