//! Promotions (admin): the rules the cart's pricing applies, read and changed one at a time.
//!
//! A promotion is the pricing engine's own JSON (`cart_engine::Promotion`: condition, action,
//! code, priority, stacking group, usage limits). A change is checked with the whole set it
//! makes (`cart_engine::load_promotions`: every rule valid, ids unique, a stacking group's
//! members at one priority) and refused with a 422 naming the field otherwise, leaving the set
//! as it was. Carts are repriced on their next read, so a shopper whose total moved sees the
//! "price changed" alert before checkout. How many times a promotion was used lives in the
//! `PromotionUsageStore` and survives a change of its rule.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use cart_engine::{Promotion, load_promotions};
use commerce_core::ErrorKind;
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Admin;
use super::problem::axum_extra_json::Path;
use super::problem::{ApiError, ApiResult, Body, Problem};

/// What the promotion routes need.
#[derive(Debug, Clone)]
pub struct PromotionsApi {
    /// The promotions in force, shared with the cart's pricing.
    pub promotions: Arc<RwLock<Vec<Promotion>>>,
}

/// The promotion routes (admin).
pub fn router(api: PromotionsApi) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(list_promotions))
        .routes(routes!(put_promotion, delete_promotion))
        .with_state(Arc::new(api))
}

/// The promotions in force.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PromotionList {
    /// Each as the pricing engine reads it.
    #[schema(value_type = Vec<Object>)]
    pub promotions: Vec<Promotion>,
}

/// Every promotion in force (admin).
#[utoipa::path(get, path = "/admin/promotions", tag = "promotions",
    security(("bearer" = [])),
    responses((status = 200, body = PromotionList), (status = 401, body = Problem), (status = 403, body = Problem)))]
async fn list_promotions(
    State(api): State<Arc<PromotionsApi>>,
    _admin: Admin,
) -> Json<PromotionList> {
    Json(PromotionList {
        promotions: api.promotions.read().await.clone(),
    })
}

/// Creates or replaces promotion `id` (admin); the body's `id` must be the path's. Refused
/// (422, nothing changed) when the rule, or the set it makes, is invalid.
#[utoipa::path(put, path = "/admin/promotions/{id}", tag = "promotions",
    params(("id" = String, Path, description = "The promotion")),
    request_body(content = Object, description = "A promotion as the pricing engine reads it"),
    security(("bearer" = [])),
    responses((status = 200, body = Object), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 422, body = Problem)))]
async fn put_promotion(
    State(api): State<Arc<PromotionsApi>>,
    _admin: Admin,
    Path(id): Path<String>,
    Body(body): Body<serde_json::Value>,
) -> ApiResult<Json<Promotion>> {
    if body.get("id").and_then(serde_json::Value::as_str) != Some(id.as_str()) {
        return Err(
            ApiError::of_kind(ErrorKind::Invalid, "the body's id must be the path's")
                .with_field("id"),
        );
    }
    let mut promotions = api.promotions.write().await;
    let mut next: Vec<serde_json::Value> = promotions
        .iter()
        .filter(|p| p.id.as_str() != id)
        .map(serde_json::to_value)
        .collect::<Result<_, _>>()
        .map_err(|e| ApiError::of_kind(ErrorKind::Internal, e.to_string()))?;
    let at = next.len();
    next.push(body);
    let json = serde_json::Value::Array(next).to_string();
    let loaded = load_promotions(&json).map_err(|e| match e {
        // The path names the new rule's place in the set; the caller sent only that rule.
        cart_engine::Error::InvalidRule { path, reason } => {
            let prefix = format!("[{at}]");
            let field = path.strip_prefix(&prefix).unwrap_or(&path);
            let field = field.trim_start_matches('.').to_owned();
            ApiError::of_kind(ErrorKind::Invalid, format!("{field}: {reason}")).with_field(
                if field.is_empty() {
                    "body".to_owned()
                } else {
                    field
                },
            )
        }
        other => ApiError::from(other),
    })?;
    let saved = loaded
        .get(at)
        .cloned()
        .ok_or_else(|| ApiError::of_kind(ErrorKind::Internal, "the promotion went missing"))?;
    *promotions = loaded;
    Ok(Json(saved))
}

/// Withdraws promotion `id` (admin); 404 when there is none.
#[utoipa::path(delete, path = "/admin/promotions/{id}", tag = "promotions",
    params(("id" = String, Path, description = "The promotion")),
    security(("bearer" = [])),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)))]
async fn delete_promotion(
    State(api): State<Arc<PromotionsApi>>,
    _admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let mut promotions = api.promotions.write().await;
    let before = promotions.len();
    promotions.retain(|p| p.id.as_str() != id);
    if promotions.len() == before {
        return Err(ApiError::of_kind(
            ErrorKind::NotFound,
            format!("no promotion {id}"),
        ));
    }
    Ok(StatusCode::NO_CONTENT)
}
