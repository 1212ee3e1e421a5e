//! Flash-sale drops behind the waiting room ([`saga::AdmissionQueue`]).
//!
//! An admin opens a drop of a SKU (`PUT /admin/drops/{sale}`): when it starts, how many
//! shoppers it admits in all and per second, how long an admission lasts. Shoppers join
//! (`POST /drops/{sale}/join`) before or after the start: the crowd present at the start is
//! shuffled once (the lottery), later arrivals queue behind in order. They poll
//! (`GET /drops/{sale}`) for their position; each poll also admits what the rate has earned, so
//! admission needs no ticker (the server runs one too). Checkout of a cart holding a drop's SKU
//! is throttled: only an admitted shopper gets through, anyone else gets 429
//! `queue-required`. Once every spot is taken the drop says `closed`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, TimeDelta, Utc};
use commerce_core::{Clock, ErrorKind, Sku, UserId};
use saga::{Admission, AdmissionQueue, SaleConfig, check_sale};
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Admin, Customer};
use super::catalog::sku_of;
use super::problem::axum_extra_json::Path;
use super::problem::{ApiError, ApiResult, Body, Problem};

/// A drop: the SKU it sells and when admissions start.
type Sale = (Sku, DateTime<Utc>);

/// The drops a server runs: the waiting room and which SKU each sale sells.
#[derive(Debug, Clone)]
pub struct Drops {
    /// The waiting room, shared by every instance.
    pub queue: Arc<dyn AdmissionQueue>,
    sales: Arc<RwLock<HashMap<String, Sale>>>,
    clock: Arc<dyn Clock>,
}

impl Drops {
    /// No drops yet.
    pub fn new(queue: Arc<dyn AdmissionQueue>, clock: Arc<dyn Clock>) -> Drops {
        Drops {
            queue,
            sales: Arc::default(),
            clock,
        }
    }

    /// The sales open now, with their SKU.
    pub async fn sales(&self) -> Vec<(String, Sku)> {
        self.sales
            .read()
            .await
            .iter()
            .map(|(k, (sku, _))| (k.clone(), sku.clone()))
            .collect()
    }

    /// Admits what every sale's rate has earned (a ticker calls this).
    ///
    /// # Errors
    /// The queue's.
    pub async fn tick(&self) -> ApiResult<usize> {
        let mut admitted = 0;
        for (sale, _) in self.sales().await {
            admitted += self.admit(&sale).await?;
        }
        Ok(admitted)
    }

    /// Admits what `sale`'s rate has earned by now; counts them in
    /// `commerce_admission_admitted_total`.
    async fn admit(&self, sale: &str) -> ApiResult<usize> {
        let n = self.queue.admit(sale, self.clock.now()).await?.len();
        metrics::counter!("commerce_admission_admitted_total")
            .increment(u64::try_from(n).unwrap_or(u64::MAX));
        Ok(n)
    }

    /// Refuses a checkout of `skus` by `shopper` unless they are admitted to every drop
    /// selling one of them.
    ///
    /// # Errors
    /// 429 `queue-required` (with `Retry-After`) while the shopper waits or never joined; 409
    /// when the drop is closed for them.
    pub async fn check_admitted(&self, shopper: &UserId, skus: &[Sku]) -> ApiResult<()> {
        let sales = self.sales.read().await.clone();
        for (sale, (sku, _)) in &sales {
            if !skus.contains(sku) {
                continue;
            }
            let _ = self.admit(sale).await?;
            match self.queue.status(sale, shopper).await? {
                Some(Admission::Admitted { until }) if until > self.clock.now() => {}
                Some(Admission::Closed) => {
                    return Err(ApiError::of_kind(
                        ErrorKind::Refused,
                        format!("the drop {sale} is sold out"),
                    ));
                }
                _ => {
                    return Err(ApiError::http(
                        StatusCode::TOO_MANY_REQUESTS,
                        "queue-required",
                        format!(
                            "{sku} is in the drop {sale}: join its queue and check out once admitted"
                        ),
                    )
                    .with_details(serde_json::json!({ "sale": sale, "join": format!("/drops/{sale}/join") })));
                }
            }
        }
        Ok(())
    }
}

/// The drop routes.
pub fn router(drops: Drops) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(open_drop))
        .routes(routes!(join))
        .routes(routes!(status))
        .with_state(drops)
}

/// A drop to open.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DropConfig {
    /// The SKU on sale.
    pub sku: String,
    /// When admissions start (RFC 3339). Everyone who joined before is in the lottery.
    #[schema(value_type = String, format = DateTime)]
    pub starts_at: DateTime<Utc>,
    /// Shoppers admitted in all (usually the units on sale).
    pub spots: u32,
    /// Admissions per second (the rate checkout can take).
    pub admit_per_sec: u32,
    /// Minutes an admitted shopper has to check out (1 to 60).
    pub admission_minutes: u32,
}

/// Where the caller stands in a drop.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DropStatus {
    /// The sale.
    pub sale: String,
    /// The SKU on sale.
    pub sku: String,
    /// `not_joined`, `waiting`, `admitted` or `closed`.
    pub state: String,
    /// 1-based place in the queue while waiting.
    pub position: Option<u64>,
    /// When the admission lapses (RFC 3339), once admitted.
    pub admitted_until: Option<String>,
    /// When admissions start (RFC 3339).
    pub starts_at: String,
    /// Poll again after this many milliseconds (while waiting).
    pub poll_after_ms: Option<u64>,
}

fn status_view(sale: &str, sku: &Sku, starts_at: DateTime<Utc>, a: Option<Admission>) -> Response {
    let (state, position, until) = match a {
        None => ("not_joined", None, None),
        Some(Admission::Waiting { position }) => ("waiting", Some(position), None),
        Some(Admission::Admitted { until }) => ("admitted", None, Some(until.to_rfc3339())),
        Some(Admission::Closed) => ("closed", None, None),
    };
    let poll = (state == "waiting").then_some(1_000);
    let mut response = Json(DropStatus {
        sale: sale.to_owned(),
        sku: sku.to_string(),
        state: state.to_owned(),
        position,
        admitted_until: until,
        starts_at: starts_at.to_rfc3339(),
        poll_after_ms: poll,
    })
    .into_response();
    if poll.is_some() {
        let _ = response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

async fn sale_of(drops: &Drops, sale: &str) -> ApiResult<(Sku, DateTime<Utc>)> {
    check_sale(sale)?;
    drops
        .sales
        .read()
        .await
        .get(sale)
        .cloned()
        .ok_or_else(|| ApiError::of_kind(ErrorKind::NotFound, format!("no drop {sale}")))
}

/// Opens a drop (admin). Opening it again with the same settings changes nothing.
#[utoipa::path(put, path = "/admin/drops/{sale}", tag = "drops", request_body = DropConfig,
    params(("sale" = String, Path, description = "The sale's id")),
    security(("bearer" = [])),
    responses((status = 204, description = "Open"), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn open_drop(
    State(drops): State<Drops>,
    _admin: Admin,
    Path(sale): Path<String>,
    Body(body): Body<DropConfig>,
) -> ApiResult<StatusCode> {
    check_sale(&sale)?;
    let sku = sku_of(&body.sku)?;
    if !(1..=60).contains(&body.admission_minutes) {
        return Err(
            ApiError::of_kind(ErrorKind::Invalid, "admission_minutes is 1 to 60")
                .with_field("admission_minutes"),
        );
    }
    let mut seed = [0u8; 8];
    getrandom::fill(&mut seed)
        .map_err(|e| ApiError::of_kind(ErrorKind::Unavailable, format!("no randomness: {e}")))?;
    let config = SaleConfig {
        starts_at: body.starts_at,
        spots: body.spots,
        admit_per_sec: body.admit_per_sec,
        admission_ttl: TimeDelta::minutes(i64::from(body.admission_minutes)),
        seed: u64::from_le_bytes(seed),
    };
    config.validate()?;
    let mut sales = drops.sales.write().await;
    if let Some((existing, _)) = sales.get(&sale)
        && *existing != sku
    {
        return Err(ApiError::of_kind(
            ErrorKind::Conflict,
            format!("the drop {sale} sells {existing}"),
        ));
    }
    // The seed is secret and random, so reopening cannot repeat it: an open sale stays as it is.
    if let std::collections::hash_map::Entry::Vacant(slot) = sales.entry(sale) {
        drops.queue.open(slot.key(), &config).await?;
        let _ = slot.insert((sku, body.starts_at));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Joins a drop's queue (again: where you stand).
#[utoipa::path(post, path = "/drops/{sale}/join", tag = "drops",
    params(("sale" = String, Path, description = "The sale's id")),
    security(("bearer" = [])),
    responses((status = 200, body = DropStatus), (status = 401, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem)))]
async fn join(
    State(drops): State<Drops>,
    Customer(who): Customer,
    Path(sale): Path<String>,
) -> ApiResult<Response> {
    let (sku, starts_at) = sale_of(&drops, &sale).await?;
    let now = drops.clock.now();
    let _ = drops.admit(&sale).await?;
    let a = drops.queue.join(&sale, &who.user, now).await?;
    Ok(status_view(&sale, &sku, starts_at, Some(a)))
}

/// Where the caller stands in a drop; also admits what the rate has earned.
#[utoipa::path(get, path = "/drops/{sale}", tag = "drops",
    params(("sale" = String, Path, description = "The sale's id")),
    security(("bearer" = [])),
    responses((status = 200, body = DropStatus), (status = 401, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem)))]
async fn status(
    State(drops): State<Drops>,
    Customer(who): Customer,
    Path(sale): Path<String>,
) -> ApiResult<Response> {
    let (sku, starts_at) = sale_of(&drops, &sale).await?;
    let _ = drops.admit(&sale).await?;
    let a = drops.queue.status(&sale, &who.user).await?;
    Ok(status_view(&sale, &sku, starts_at, a))
}
