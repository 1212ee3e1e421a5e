//! Recommendation routes: "bought together" and "because you viewed" on a product page.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use commerce_core::{CatalogStore, Clock, Currency, ErrorKind, SessionId, Sku};
use recs::blend::{BlendConfig, Layer, PageRequest, ProductFacts, product_page};
use recs::{RecentlyViewedStore, TopKStore, Viewed};
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::MaybeSignedIn;
use super::catalog::sku_of;
use super::problem::axum_extra_json::{Path, Query};
use super::problem::{ApiError, ApiResult, Body, Problem};
use super::views::MoneyView;

/// What the recommendation routes need.
#[derive(Debug, Clone)]
pub struct RecsApi {
    /// Precomputed top-K lists (co-purchase, personalized).
    pub lists: Arc<dyn TopKStore>,
    /// Recently viewed products per session.
    pub views: Arc<dyn RecentlyViewedStore>,
    /// What the blend knows of each product (brand, stock, margin), kept by the host.
    pub facts: Arc<RwLock<HashMap<Sku, ProductFacts>>>,
    /// The catalog, for titles and prices.
    pub catalog: Arc<dyn CatalogStore>,
    /// The currency prices are shown in.
    pub currency: Currency,
    /// The blend's weights and caps.
    pub config: BlendConfig,
    /// The clock.
    pub clock: Arc<dyn Clock>,
}

/// The recommendation routes.
pub fn router(api: RecsApi) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(recommendations))
        .routes(routes!(record_view))
        .with_state(Arc::new(api))
}

/// Whose page it is.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RecsQuery {
    /// The shopper's session (for "recently viewed"); any id the storefront keeps.
    pub session: Option<String>,
}

/// One recommended product.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RecommendationView {
    /// SKU.
    pub sku: String,
    /// Title.
    pub title: String,
    /// Price.
    pub price: Option<MoneyView>,
    /// Why: `bought_together`, `for_you`, `recently_viewed`.
    pub reasons: Vec<String>,
}

/// A product page view.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ViewEvent {
    /// The shopper's session.
    pub session: String,
    /// The product viewed.
    pub sku: String,
}

fn session_of(raw: &str) -> ApiResult<SessionId> {
    SessionId::new(raw).map_err(|e| ApiError::from(e).with_field("session"))
}

/// Recommendations for a product page: bought together with it, for the signed-in shopper,
/// and recently viewed in the session, blended (70 % relevance, 30 % business), sold-out and
/// retired products left out.
#[utoipa::path(get, path = "/products/{sku}/recommendations", tag = "recommendations",
    params(("sku" = String, Path, description = "The product on the page"), RecsQuery),
    responses((status = 200, body = Vec<RecommendationView>), (status = 422, body = Problem)))]
async fn recommendations(
    State(api): State<Arc<RecsApi>>,
    MaybeSignedIn(who): MaybeSignedIn,
    Path(sku): Path<String>,
    Query(q): Query<RecsQuery>,
) -> ApiResult<Json<Vec<RecommendationView>>> {
    let anchor = sku_of(&sku)?;
    let session = match q.session.as_deref() {
        Some(s) => session_of(s)?,
        None => SessionId::new("anonymous")?,
    };
    let request = PageRequest {
        anchor,
        session,
        user: who.map(|p| p.user),
        exclude: HashSet::new(),
    };
    let shown = {
        let facts = api.facts.read().await;
        product_page(
            &request,
            api.lists.as_ref(),
            api.views.as_ref(),
            &facts,
            &api.config,
        )
        .await?
    };
    let mut out = Vec::with_capacity(shown.len());
    for r in shown {
        let Some(p) = api.catalog.get_by_sku(&r.sku).await? else {
            continue;
        };
        out.push(RecommendationView {
            sku: r.sku.to_string(),
            title: p.title.clone(),
            price: p
                .prices
                .resolve(api.currency, None, None)
                .ok()
                .map(MoneyView::from),
            reasons: r
                .explanation
                .layers
                .iter()
                .map(|l| {
                    match l.layer {
                        Layer::CoPurchase => "bought_together",
                        Layer::Personalized => "for_you",
                        Layer::RecentlyViewed => "recently_viewed",
                    }
                    .to_owned()
                })
                .collect(),
        });
    }
    Ok(Json(out))
}

/// Records a product page view for the session's "recently viewed".
#[utoipa::path(post, path = "/recently-viewed", tag = "recommendations", request_body = ViewEvent,
    responses((status = 204, description = "Recorded"), (status = 422, body = Problem)))]
async fn record_view(
    State(api): State<Arc<RecsApi>>,
    Body(event): Body<ViewEvent>,
) -> ApiResult<StatusCode> {
    let session = session_of(&event.session)?;
    let sku = sku_of(&event.sku)?;
    if api.catalog.get_by_sku(&sku).await?.is_none() {
        return Err(ApiError::of_kind(
            ErrorKind::NotFound,
            format!("no product {sku}"),
        ));
    }
    api.views
        .record(
            &session,
            &Viewed {
                sku,
                at: api.clock.now(),
            },
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
