//! Search route: full text with typo tolerance, filters and disjunctive facets.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use commerce_core::{CategoryPath, Currency, ErrorKind, Money};
use rust_decimal::Decimal;
use search::{SearchIndex, SearchRequest};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::problem::axum_extra_json::{Path, Query};
use super::problem::{ApiError, ApiResult, Problem};
use super::views::MoneyView;

/// What the search route needs.
#[derive(Debug, Clone)]
pub struct SearchApi {
    /// The shop's index.
    pub index: Arc<SearchIndex>,
    /// The currency prices are shown and filtered in.
    pub currency: Currency,
    /// Upper bounds of the price facet's buckets, ascending.
    pub price_buckets: Vec<Money>,
}

/// The route's state: the API and the permits of the searches that may run at once.
struct Searching {
    api: SearchApi,
    running: Semaphore,
}

/// The search route: `GET /search`.
///
/// A search is CPU work: it runs on tokio's blocking pool, at most twice as many at once as
/// the machine has cores; the others wait their turn in arrival order (tokio's semaphore is
/// fair). Letting every request in at once time-slices them all, so a search waits behind
/// every other and the rest of the server starves: on the load benchmark (32 connections, 2
/// cores) p99 was 61 ms unbounded, 26 ms at 2 or 4 at once (throughput 2,281, 1,735 and
/// 2,026 searches/s, the load generator sharing the cores).
pub fn router(api: SearchApi) -> OpenApiRouter {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    OpenApiRouter::new()
        .routes(routes!(search_products))
        .routes(routes!(similar_products))
        .with_state(Arc::new(Searching {
            api,
            running: Semaphore::new(2 * cores),
        }))
}

/// A search.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// The words; typos are forgiven. Empty lists everything.
    #[serde(default)]
    pub q: String,
    /// Brands to keep, comma-separated (any of them).
    pub brand: Option<String>,
    /// A category path (`Kitchen/Mugs`); its subcategories match too.
    pub category: Option<String>,
    /// Lowest price, a decimal string.
    pub min_price: Option<String>,
    /// Highest price, a decimal string.
    pub max_price: Option<String>,
    /// Lowest average rating, 0 to 5 (`4` keeps 4 stars and up).
    pub min_rating: Option<String>,
    /// Only products with stock.
    #[serde(default)]
    pub in_stock: bool,
    /// Hits to skip.
    #[serde(default)]
    pub offset: u32,
    /// Hits to return, 1 to 100 (default 24).
    pub limit: Option<u32>,
    /// `off` (words only, the default), `hybrid` (words fused with the products nearest in
    /// meaning) or `vector` (nearest in meaning only).
    pub semantic: Option<SemanticMode>,
}

/// Whether meaning, not only words, ranks a search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SemanticMode {
    /// Words only.
    #[default]
    Off,
    /// Words fused with the products nearest in meaning (reciprocal rank fusion).
    Hybrid,
    /// The products nearest in meaning only.
    Vector,
}

impl From<SemanticMode> for search::Semantic {
    fn from(m: SemanticMode) -> search::Semantic {
        match m {
            SemanticMode::Off => search::Semantic::Off,
            SemanticMode::Hybrid => search::Semantic::Hybrid,
            SemanticMode::Vector => search::Semantic::Vector,
        }
    }
}

/// Similar products.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SimilarQuery {
    /// Only products with stock.
    #[serde(default)]
    pub in_stock: bool,
    /// Products to return, 1 to 100 (default 8).
    pub limit: Option<u32>,
}

/// Products similar to one, most similar first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SimilarView {
    /// The products, each with its `similarity`.
    pub hits: Vec<HitView>,
}

/// One hit.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HitView {
    /// Product id.
    pub product_id: String,
    /// SKU.
    pub sku: String,
    /// Title.
    pub title: String,
    /// Brand.
    pub brand: Option<String>,
    /// Price.
    pub price: Option<MoneyView>,
    /// The product holds only some of the query's words: too few held every word, and partial
    /// matches fill the page below those that do.
    pub partial: bool,
    /// Cosine similarity to the query (or product) by meaning, for semantic searches and
    /// similar products.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub similarity: Option<f32>,
}

impl From<search::Hit> for HitView {
    fn from(h: search::Hit) -> HitView {
        HitView {
            product_id: h.product_id.to_string(),
            sku: h.sku.to_string(),
            title: h.title,
            brand: h.brand,
            price: h.price.map(MoneyView::from),
            partial: h.partial,
            similarity: h.similarity,
        }
    }
}

/// A facet value and how many results have it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FacetValue {
    /// The value (a brand, a category path, a price range `min-max`, a rating `4`).
    pub value: String,
    /// Results with it, counting the other filters but not this facet's own.
    pub count: u64,
}

/// The facets of a result.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FacetsView {
    /// By brand.
    pub brand: Vec<FacetValue>,
    /// By category.
    pub category: Vec<FacetValue>,
    /// By price range (`min-max`, either end open).
    pub price: Vec<FacetValue>,
    /// By rating (`4` = four stars and up).
    pub rating: Vec<FacetValue>,
}

/// A page of results.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SearchView {
    /// The hits.
    pub hits: Vec<HitView>,
    /// All results.
    pub total: u64,
    /// True when too few products had every word and some hits (marked `partial`) hold only
    /// some of them; `total` and the facets count both.
    pub relaxed: bool,
    /// The facets.
    pub facets: FacetsView,
}

fn money(api: &SearchApi, raw: &str, field: &str) -> ApiResult<Money> {
    format!("{raw} {}", api.currency)
        .parse()
        .map_err(|e: commerce_core::Error| ApiError::from(e).with_field(field))
}

/// Searches the catalog.
#[utoipa::path(get, path = "/search", tag = "search", params(SearchQuery),
    responses((status = 200, body = SearchView), (status = 422, body = Problem)))]
async fn search_products(
    State(state): State<Arc<Searching>>,
    Query(q): Query<SearchQuery>,
) -> ApiResult<Json<SearchView>> {
    let api = &state.api;
    let mut req = SearchRequest::new(&q.q, api.currency);
    req.limit = super::catalog::page_limit(q.limit, 24, 100)?;
    req.offset = usize::try_from(q.offset).unwrap_or(usize::MAX);
    if let Some(b) = &q.brand {
        req.filters.brands = b
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
    }
    if let Some(c) = q.category.as_deref().filter(|c| !c.is_empty()) {
        req.filters.category =
            Some(CategoryPath::parse(c).map_err(|e| ApiError::from(e).with_field("category"))?);
    }
    let min = q
        .min_price
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| money(api, s, "min_price"))
        .transpose()?;
    let max = q
        .max_price
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| money(api, s, "max_price"))
        .transpose()?;
    if min.is_some() || max.is_some() {
        req.filters.price = Some(search::PriceRange { min, max });
    }
    if let Some(r) = q.min_rating.as_deref().filter(|s| !s.is_empty()) {
        let r: Decimal = r.parse().map_err(|_| {
            ApiError::of_kind(ErrorKind::Invalid, "min_rating is a number from 0 to 5")
                .with_field("min_rating")
        })?;
        req.filters.min_rating = Some(r);
    }
    req.filters.in_stock_only = q.in_stock;
    req.semantic = q.semantic.unwrap_or_default().into();
    req.facets.brand = true;
    req.facets.category = true;
    req.facets.rating = true;
    req.facets.price_buckets = Some(api.price_buckets.clone());
    req.facets.top_k = 20;
    let index = api.index.clone();
    let found = run(&state, move || index.search(&req)).await?;
    let values = |v: &[search::FacetCount]| {
        v.iter()
            .map(|f| FacetValue {
                value: f.value.clone(),
                count: f.count,
            })
            .collect()
    };
    let end = |m: &Option<Money>| m.map(|m| m.amount().to_string()).unwrap_or_default();
    Ok(Json(SearchView {
        total: found.total,
        relaxed: found.relaxed,
        facets: FacetsView {
            brand: values(&found.facets.brand),
            category: values(&found.facets.category),
            price: found
                .facets
                .price
                .iter()
                .map(|b| FacetValue {
                    value: format!("{}-{}", end(&b.min), end(&b.max)),
                    count: b.count,
                })
                .collect(),
            rating: found
                .facets
                .rating
                .iter()
                .map(|b| FacetValue {
                    value: b.at_least.to_string(),
                    count: b.count,
                })
                .collect(),
        },
        hits: found.hits.into_iter().map(HitView::from).collect(),
    }))
}

/// Runs a search on the blocking pool once a permit is free, timing it.
async fn run(
    state: &Searching,
    work: impl FnOnce() -> search::Result<search::SearchResults> + Send + 'static,
) -> ApiResult<search::SearchResults> {
    let _turn = state
        .running
        .acquire()
        .await
        .map_err(|_| ApiError::of_kind(ErrorKind::Unavailable, "search is shutting down"))?;
    let started = super::metrics::started();
    let found = tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::of_kind(ErrorKind::Internal, format!("search panicked: {e}")))??;
    metrics::histogram!("commerce_search_duration_seconds").record(started.elapsed().as_secs_f64());
    Ok(found)
}

/// Products similar to one by meaning (the nearest product vectors), itself left out. 422
/// when the shop's index has no embedder.
#[utoipa::path(get, path = "/products/{sku}/similar", tag = "search",
    params(("sku" = String, Path, description = "The product's SKU"), SimilarQuery),
    responses((status = 200, body = SimilarView), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn similar_products(
    State(state): State<Arc<Searching>>,
    Path(sku): Path<String>,
    Query(q): Query<SimilarQuery>,
) -> ApiResult<Json<SimilarView>> {
    let sku = super::catalog::sku_of(&sku)?;
    let mut req = SearchRequest::new("", state.api.currency);
    req.limit = super::catalog::page_limit(q.limit, 8, 100)?;
    req.filters.in_stock_only = q.in_stock;
    let index = state.api.index.clone();
    let found = run(&state, move || index.similar(&sku, &req)).await?;
    Ok(Json(SimilarView {
        hits: found.hits.into_iter().map(HitView::from).collect(),
    }))
}
