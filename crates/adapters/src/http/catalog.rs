//! Catalog routes: products for shoppers, product writes for admins.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use commerce_core::{
    CasOutcome, CatalogStore, CategoryPath, Clock, Currency, ErrorKind, LocationId, PriceTable,
    Product, ProductId, ProductStatus, Sku,
};
use inventory::{StockKey, StockStore};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Admin;
use super::problem::axum_extra_json::{Path, Query};
use super::problem::{ApiError, ApiResult, Body, Problem};
use super::views::ProductView;

/// What the catalog routes need.
#[derive(Debug, Clone)]
pub struct CatalogApi {
    /// The catalog.
    pub catalog: Arc<dyn CatalogStore>,
    /// Stock, for the units available on a product page.
    pub stock: Arc<dyn StockStore>,
    /// The location shoppers buy from.
    pub location: LocationId,
    /// The shop's currency.
    pub currency: Currency,
    /// The clock.
    pub clock: Arc<dyn Clock>,
}

/// The catalog's routes: `GET /products`, `GET /products/{sku}`, `PUT /admin/products/{sku}`.
pub fn router(api: CatalogApi) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(list_products))
        .routes(routes!(get_product))
        .routes(routes!(put_product))
        .with_state(Arc::new(api))
}

/// A page of products, in id order.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// The last product id of the previous page.
    pub after: Option<String>,
    /// At most this many (1 to 100, default 24).
    pub limit: Option<u32>,
}

/// A page of products.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProductPage {
    /// The products.
    pub products: Vec<ProductView>,
    /// Pass as `after` for the next page; absent on the last.
    pub next: Option<String>,
}

pub(crate) fn page_limit(limit: Option<u32>, default: u32, max: u32) -> ApiResult<usize> {
    let limit = limit.unwrap_or(default);
    if limit == 0 || limit > max {
        return Err(
            ApiError::of_kind(ErrorKind::Invalid, format!("limit is 1 to {max}"))
                .with_field("limit"),
        );
    }
    Ok(usize::try_from(limit).unwrap_or(usize::MAX))
}

/// Products, a page at a time.
#[utoipa::path(get, path = "/products", tag = "catalog", params(ListQuery),
    responses((status = 200, body = ProductPage), (status = 422, body = Problem)))]
async fn list_products(
    State(api): State<Arc<CatalogApi>>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<ProductPage>> {
    let limit = page_limit(q.limit, 24, 100)?;
    let after = q
        .after
        .map(ProductId::new)
        .transpose()
        .map_err(|e| ApiError::from(e).with_field("after"))?;
    let products = api.catalog.list(after.as_ref(), limit).await?;
    let next = (products.len() == limit)
        .then(|| products.last().map(|p| p.id.to_string()))
        .flatten();
    Ok(Json(ProductPage {
        products: products
            .iter()
            .map(|p| ProductView::of(p, api.currency, None))
            .collect(),
        next,
    }))
}

pub(crate) fn sku_of(raw: &str) -> ApiResult<Sku> {
    Sku::new(raw).map_err(|e| ApiError::from(e).with_field("sku"))
}

/// One product with the units available now.
#[utoipa::path(get, path = "/products/{sku}", tag = "catalog",
    params(("sku" = String, Path, description = "The product's SKU")),
    responses((status = 200, body = ProductView), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn get_product(
    State(api): State<Arc<CatalogApi>>,
    Path(sku): Path<String>,
) -> ApiResult<Json<ProductView>> {
    let sku = sku_of(&sku)?;
    let product = api
        .catalog
        .get_by_sku(&sku)
        .await?
        .ok_or_else(|| ApiError::of_kind(ErrorKind::NotFound, format!("no product {sku}")))?;
    let key = StockKey::new(sku, api.location.clone());
    let available = match api.stock.available(&key, api.clock.now()).await {
        Ok(units) => Some(units.max(0)),
        Err(e) if e.kind() == ErrorKind::NotFound => Some(0),
        Err(e) => return Err(e.into()),
    };
    Ok(Json(ProductView::of(&product, api.currency, available)))
}

/// A product as an admin writes it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProductWrite {
    /// Title.
    pub title: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Price in the shop's currency, a decimal string (`"4.95"`).
    pub price: String,
    /// Brand.
    #[serde(default)]
    pub brand: Option<String>,
    /// Category path joined with `/`.
    #[serde(default)]
    pub category: String,
    /// False retires the product.
    #[serde(default = "yes")]
    pub active: bool,
}

fn yes() -> bool {
    true
}

/// Creates or replaces a product (admin). The change is committed with its catalog events,
/// which search applies within a second.
#[utoipa::path(put, path = "/admin/products/{sku}", tag = "catalog",
    params(("sku" = String, Path, description = "The product's SKU")),
    request_body = ProductWrite,
    security(("bearer" = [])),
    responses((status = 200, body = ProductView), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn put_product(
    State(api): State<Arc<CatalogApi>>,
    _admin: Admin,
    Path(sku): Path<String>,
    Body(write): Body<ProductWrite>,
) -> ApiResult<Json<ProductView>> {
    let sku = sku_of(&sku)?;
    let price = format!("{} {}", write.price, api.currency)
        .parse()
        .map_err(|e: commerce_core::Error| ApiError::from(e).with_field("price"))?;
    let old = api.catalog.get_by_sku(&sku).await?;
    let product = Product {
        id: match &old {
            Some(p) => p.id.clone(),
            None => ProductId::new(format!("p-{sku}"))?,
        },
        sku,
        title: write.title,
        description: write.description,
        images: old.as_ref().map(|p| p.images.clone()).unwrap_or_default(),
        prices: PriceTable::single(price),
        attributes: old
            .as_ref()
            .map(|p| p.attributes.clone())
            .unwrap_or_default(),
        brand: write.brand,
        category: CategoryPath::parse(&write.category)
            .map_err(|e| ApiError::from(e).with_field("category"))?,
        status: if write.active {
            ProductStatus::Active
        } else {
            ProductStatus::Retired
        },
        version: old.as_ref().map_or(1, |p| p.version + 1),
    };
    product.validate()?;
    let events = product.change_events(old.as_ref(), api.clock.now())?;
    match api.catalog.put(product.clone(), &events).await? {
        CasOutcome::Committed => Ok(Json(ProductView::of(&product, api.currency, None))),
        CasOutcome::VersionMismatch { .. } => Err(ApiError::of_kind(
            ErrorKind::Conflict,
            "the product changed meanwhile; read it and write again",
        )),
    }
}
