//! Stock routes: availability for anyone, receiving stock for admins.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use commerce_core::{Clock, ErrorKind, IdempotencyKey, LocationId};
use inventory::{StockConfig, StockKey, StockStore};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Admin;
use super::catalog::sku_of;
use super::idempotency::{ClientKey, Idempotency, digest};
use super::problem::axum_extra_json::Path;
use super::problem::{ApiError, ApiResult, Body, Problem};

/// What the stock routes need.
#[derive(Debug, Clone)]
pub struct InventoryApi {
    /// Stock.
    pub stock: Arc<dyn StockStore>,
    /// The location shoppers buy from.
    pub location: LocationId,
    /// `Idempotency-Key` records.
    pub idempotency: Idempotency,
    /// The clock.
    pub clock: Arc<dyn Clock>,
}

/// The stock routes.
pub fn router(api: InventoryApi) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(get_stock))
        .routes(routes!(receive))
        .with_state(Arc::new(api))
}

/// A SKU's stock at the shop's location.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StockView {
    /// SKU.
    pub sku: String,
    /// Units on the shelf.
    pub on_hand: i64,
    /// Units held by checkouts in progress.
    pub held: i64,
    /// Units sold, not yet shipped.
    pub committed: i64,
    /// Units a shopper can buy now.
    pub available: i64,
}

/// Units received.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Receive {
    /// Units, at least 1.
    pub units: i64,
}

fn key_of(api: &InventoryApi, sku: &str) -> ApiResult<StockKey> {
    Ok(StockKey::new(sku_of(sku)?, api.location.clone()))
}

async fn view(api: &InventoryApi, key: &StockKey) -> ApiResult<StockView> {
    let level = api.stock.level(key, api.clock.now()).await?;
    Ok(StockView {
        sku: key.sku.to_string(),
        on_hand: level.on_hand,
        held: level.held,
        committed: level.committed,
        available: level.available.max(0),
    })
}

/// A SKU's stock.
#[utoipa::path(get, path = "/stock/{sku}", tag = "inventory",
    params(("sku" = String, Path, description = "The SKU")),
    responses((status = 200, body = StockView), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn get_stock(
    State(api): State<Arc<InventoryApi>>,
    Path(sku): Path<String>,
) -> ApiResult<Json<StockView>> {
    let key = key_of(&api, &sku)?;
    Ok(Json(view(&api, &key).await?))
}

/// Receives units of a SKU (admin); the first receipt of a SKU sets it up. Needs
/// `Idempotency-Key`: a retried receipt counts once.
#[utoipa::path(post, path = "/admin/stock/{sku}/receive", tag = "inventory", request_body = Receive,
    params(("sku" = String, Path, description = "The SKU"),
        ("Idempotency-Key" = String, Header, description = "A unique key per receipt")),
    security(("bearer" = [])),
    responses((status = 200, body = StockView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn receive(
    State(api): State<Arc<InventoryApi>>,
    Admin(who): Admin,
    key: ClientKey,
    Path(sku): Path<String>,
    Body(body): Body<Receive>,
) -> ApiResult<Response> {
    let client_key = key.required()?.to_owned();
    let stock_key = key_of(&api, &sku)?;
    if body.units < 1 {
        return Err(
            ApiError::of_kind(ErrorKind::Invalid, "units is at least 1").with_field("units")
        );
    }
    let movement = IdempotencyKey::new(format!(
        "receive:{}",
        digest(&[who.user.as_str().as_bytes(), client_key.as_bytes()])
    ))?;
    let path = format!("/admin/stock/{}/receive", stock_key.sku);
    let canonical = serde_json::to_vec(&body).unwrap_or_default();
    let work_api = api.clone();
    let work = async move {
        let run = async {
            let now = work_api.clock.now();
            match work_api.stock.level(&stock_key, now).await {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    work_api
                        .stock
                        .configure(&stock_key, StockConfig::default())
                        .await?;
                }
                Err(e) => return Err(ApiError::from(e)),
            }
            let _ = work_api
                .stock
                .receive(&movement, &stock_key, body.units, now)
                .await?;
            Ok::<_, ApiError>(Json(view(&work_api, &stock_key).await?))
        };
        match run.await {
            Ok(r) => r.into_response(),
            Err(e) => e.into_response(),
        }
    };
    Ok(api
        .idempotency
        .once(
            who.user.as_str(),
            Some(&client_key),
            &[
                Method::POST.as_str().as_bytes(),
                path.as_bytes(),
                &canonical,
            ],
            work,
        )
        .await)
}
