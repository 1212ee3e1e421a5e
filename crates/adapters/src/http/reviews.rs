//! Review routes: published reviews and the rating for anyone, writing for signed-in shoppers,
//! moderation for admins.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use commerce_core::{CatalogStore, Clock, ErrorKind, Product, UserId};
use reviews::{ModerationAction, ReviewDraft, ReviewKey, Reviews};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Admin, Customer};
use super::catalog::{page_limit, sku_of};
use super::problem::axum_extra_json::{Path, Query};
use super::problem::{ApiError, ApiResult, Body, Problem};

/// What the review routes need.
#[derive(Debug, Clone)]
pub struct ReviewsApi {
    /// The reviews engine.
    pub reviews: Arc<Reviews>,
    /// The catalog (reviews are addressed by SKU here).
    pub catalog: Arc<dyn CatalogStore>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
}

/// The review routes.
pub fn router(api: ReviewsApi) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(list_reviews, submit_review))
        .routes(routes!(moderate))
        .with_state(Arc::new(api))
}

/// A page of reviews.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReviewsQuery {
    /// The last author of the previous page.
    pub after: Option<String>,
    /// At most this many (1 to 50, default 10).
    pub limit: Option<u32>,
}

/// A review.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReviewView {
    /// Author.
    pub author: String,
    /// 1 to 5.
    pub stars: u8,
    /// Title.
    pub title: String,
    /// Text.
    pub body: String,
    /// `pending`, `published` or `rejected`.
    pub status: String,
    /// The author bought the product.
    pub verified_purchase: bool,
    /// When it was written (RFC 3339).
    pub submitted_at: String,
}

/// A product's reviews and rating.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReviewsView {
    /// Published reviews.
    pub reviews: Vec<ReviewView>,
    /// Published reviews counted in the rating.
    pub review_count: u32,
    /// The average, to one decimal (`"4.5"`); absent without reviews.
    pub average: Option<String>,
}

/// A review to write (one per shopper and product; writing again edits it).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReviewWrite {
    /// 1 to 5.
    pub stars: u8,
    /// Title.
    pub title: String,
    /// Text.
    pub body: String,
}

/// A moderation decision.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Moderate {
    /// Publish (true) or reject (false).
    pub publish: bool,
    /// Why, for a rejection.
    #[serde(default)]
    pub note: String,
}

fn view(r: &reviews::Review) -> ReviewView {
    ReviewView {
        author: r.author.to_string(),
        stars: r.stars.get(),
        title: r.title.clone(),
        body: r.body.clone(),
        status: format!("{:?}", r.status).to_lowercase(),
        verified_purchase: r.verified_purchase,
        submitted_at: r.submitted_at.to_rfc3339(),
    }
}

async fn product(api: &ReviewsApi, sku: &str) -> ApiResult<Product> {
    let sku = sku_of(sku)?;
    api.catalog
        .get_by_sku(&sku)
        .await?
        .ok_or_else(|| ApiError::of_kind(ErrorKind::NotFound, format!("no product {sku}")))
}

/// A product's published reviews and rating.
#[utoipa::path(get, path = "/products/{sku}/reviews", tag = "reviews",
    params(("sku" = String, Path, description = "The product"), ReviewsQuery),
    responses((status = 200, body = ReviewsView), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn list_reviews(
    State(api): State<Arc<ReviewsApi>>,
    Path(sku): Path<String>,
    Query(q): Query<ReviewsQuery>,
) -> ApiResult<Json<ReviewsView>> {
    let p = product(&api, &sku).await?;
    let limit = page_limit(q.limit, 10, 50)?;
    let after = q
        .after
        .map(UserId::new)
        .transpose()
        .map_err(|e| ApiError::from(e).with_field("after"))?;
    let listed = api
        .reviews
        .published_reviews(&p.id, after.as_ref(), limit)
        .await?;
    let rating = api.reviews.rating(&p.id).await?;
    let average = (rating.review_count > 0).then(|| {
        let avg = rust_decimal::Decimal::from(rating.stars_sum)
            / rust_decimal::Decimal::from(rating.review_count);
        let mut avg = avg.round_dp(1);
        avg.rescale(1);
        avg.to_string()
    });
    Ok(Json(ReviewsView {
        reviews: listed.iter().map(|l| view(&l.review)).collect(),
        review_count: rating.review_count,
        average,
    }))
}

/// Writes (or edits) the caller's review; it shows once a moderator publishes it.
#[utoipa::path(post, path = "/products/{sku}/reviews", tag = "reviews", request_body = ReviewWrite,
    params(("sku" = String, Path, description = "The product")),
    security(("bearer" = [])),
    responses((status = 200, body = ReviewView), (status = 401, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn submit_review(
    State(api): State<Arc<ReviewsApi>>,
    Customer(who): Customer,
    Path(sku): Path<String>,
    Body(body): Body<ReviewWrite>,
) -> ApiResult<Json<ReviewView>> {
    let p = product(&api, &sku).await?;
    let review = api
        .reviews
        .submit(
            ReviewDraft {
                product_id: p.id,
                author: who.user,
                stars: body.stars,
                title: body.title,
                body: body.body,
            },
            api.clock.now(),
        )
        .await?;
    Ok(Json(view(&review)))
}

/// Publishes or rejects a review (admin).
#[utoipa::path(post, path = "/admin/products/{sku}/reviews/{author}/moderation", tag = "reviews",
    request_body = Moderate,
    params(("sku" = String, Path, description = "The product"), ("author" = String, Path, description = "The review's author")),
    security(("bearer" = [])),
    responses((status = 200, body = ReviewView), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn moderate(
    State(api): State<Arc<ReviewsApi>>,
    _admin: Admin,
    Path((sku, author)): Path<(String, String)>,
    Body(body): Body<Moderate>,
) -> ApiResult<Json<ReviewView>> {
    let p = product(&api, &sku).await?;
    let author = UserId::new(author).map_err(|e| ApiError::from(e).with_field("author"))?;
    let action = if body.publish {
        ModerationAction::Publish
    } else {
        ModerationAction::Reject { note: body.note }
    };
    let review = api
        .reviews
        .moderate(&ReviewKey::new(p.id, author), &action, api.clock.now())
        .await?;
    Ok(Json(view(&review)))
}
