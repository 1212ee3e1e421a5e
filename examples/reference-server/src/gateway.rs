//! The gateway's duties around the engines' routes: sign-in, bearer tokens, per-client rate
//! limits, the A/B assignment header, request ids and spans, body limits and timeouts, the
//! OpenAPI document and the 404 problem for unknown paths.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use adapters::http::{self, ApiError, ApiResult, Auth, Body, MaybeSignedIn, Role};
use axum::Json;
use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use commerce_core::{Clock, ErrorKind, RateDecision, RateLimit, RateLimiter, UserId};
use recs::ab::Experiment;
use recs::{ArmName, ExperimentId};
use serde::{Deserialize, Serialize};
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The largest request body accepted (bytes).
pub const BODY_BYTES_MAX: usize = 64 * 1024;
/// How long a request may take before it is answered 408 (checkouts run on in their own task).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Requests the API works on at once; more wait at the door (inside the timeout) instead of
/// piling onto the database pool, whose waits time out into 503s under a flash crowd.
pub const IN_FLIGHT_MAX: usize = 256;
/// The header naming the caller's A/B arms.
pub const AB_HEADER: HeaderName = HeaderName::from_static("x-ab-arms");
/// The request id header.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A demo sign-in.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SignIn {
    /// The shopper's e-mail; it becomes their user id.
    pub email: String,
}

/// A bearer token.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Token {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    /// The user it names.
    pub user: String,
}

/// The sign-in route.
pub fn auth_router(auth: Arc<Auth>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(sign_in))
        .with_state(auth)
}

/// Signs a shopper in and returns a customer token. **Demo only**: there is no password; a
/// real deployment issues tokens from its identity provider with the same secret (or
/// replaces the middleware). The first cart request with the token merges the guest cart.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = SignIn,
    responses((status = 200, body = Token), (status = 422, body = http::Problem)))]
async fn sign_in(
    State(auth): State<Arc<Auth>>,
    Body(body): Body<SignIn>,
) -> ApiResult<Json<Token>> {
    let email = body.email.trim().to_lowercase();
    if !email.contains('@') || email.starts_with('@') || email.ends_with('@') {
        return Err(
            ApiError::of_kind(ErrorKind::Invalid, "an e-mail address, please").with_field("email"),
        );
    }
    let user = UserId::new(&email).map_err(|e| ApiError::from(e).with_field("email"))?;
    if user.as_str() == "admin" {
        return Err(ApiError::forbidden("not this one"));
    }
    Ok(Json(Token {
        token: auth.issue(&user, Role::Customer)?,
        user: email,
    }))
}

#[derive(Clone)]
struct Limits {
    limiter: Arc<dyn RateLimiter>,
    limit: RateLimit,
    clock: Arc<dyn Clock>,
}

/// Per-client token buckets: a signed-in caller by user, anyone else by address. 429 with
/// `Retry-After` when empty; `RateLimit` and `RateLimit-Policy` fields (the IETF draft) on
/// every answer.
async fn rate_limit(State(limits): State<Limits>, request: Request, next: Next) -> Response {
    let who = match request.extensions().get::<http::Principal>() {
        Some(p) => format!("user:{}", p.user),
        None => match request.extensions().get::<ConnectInfo<SocketAddr>>() {
            Some(ConnectInfo(addr)) => format!("ip:{}", addr.ip()),
            None => "ip:unknown".into(),
        },
    };
    let decision = limits
        .limiter
        .acquire(&who, &limits.limit, 1, limits.clock.now())
        .await;
    let policy = format!("\"default\";q={};w=1", limits.limit.refill_per_sec);
    let (mut response, remaining) = match decision {
        Ok(RateDecision::Allowed { remaining }) => (next.run(request).await, remaining),
        Ok(RateDecision::Limited { retry_after }) => {
            let secs = u64::try_from(retry_after.num_milliseconds().max(0))
                .unwrap_or(0)
                .div_ceil(1_000);
            let e = ApiError::too_many_requests(secs, "too many requests; slow down");
            (e.into_response(), 0)
        }
        // A limiter that is down does not take the shop down with it.
        Err(e) => {
            tracing::warn!(error = %e, "rate limiter unavailable; letting the request through");
            (next.run(request).await, limits.limit.capacity)
        }
    };
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&policy) {
        let _ = headers.insert(HeaderName::from_static("ratelimit-policy"), v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("\"default\";r={remaining}")) {
        let _ = headers.insert(HeaderName::from_static("ratelimit"), v);
    }
    response
}

/// Names the signed-in caller's arm of each running experiment in `X-AB-Arms`
/// (`recs-blend=control`), stable per user.
async fn ab_header(
    State(experiments): State<Arc<Vec<Experiment>>>,
    MaybeSignedIn(who): MaybeSignedIn,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    if let Some(p) = who {
        let arms: Vec<String> = experiments
            .iter()
            .map(|e| format!("{}={}", e.id(), e.assign(&p.user)))
            .collect();
        if let Ok(v) = HeaderValue::from_str(&arms.join(", ")) {
            let _ = response.headers_mut().insert(AB_HEADER, v);
        }
    }
    response
}

/// The experiments the server assigns.
///
/// # Errors
/// Never for the fixed ids.
pub fn experiments() -> recs::Result<Vec<Experiment>> {
    Ok(vec![Experiment::new(
        ExperimentId::new("recs-blend")?,
        vec![
            (ArmName::new("control")?, 50),
            (ArmName::new("diverse")?, 50),
        ],
    )?])
}

/// Adds what the gateway answers on any route to the document: 429 (rate limit) and 408
/// (timeout).
pub fn document(mut doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    for op in http::operations_mut(&mut doc) {
        http::document_problem(op, 429, "Too many requests; see Retry-After");
        http::document_problem(op, 408, "The request took too long");
    }
    doc
}

/// The API with the gateway's layers, the OpenAPI document and the 404 fallback.
pub fn wrap(
    api: Router,
    openapi: &utoipa::openapi::OpenApi,
    auth: Arc<Auth>,
    limiter: Arc<dyn RateLimiter>,
    rate_per_sec: u32,
    clock: Arc<dyn Clock>,
) -> Router {
    let doc = Arc::new(openapi.clone());
    let limits = Limits {
        limiter,
        limit: RateLimit {
            capacity: rate_per_sec.saturating_mul(2).max(1),
            refill_per_sec: rate_per_sec.max(1),
        },
        clock,
    };
    let experiments = Arc::new(experiments().unwrap_or_default());
    api.route(
        "/openapi.json",
        get(move || {
            let doc = doc.clone();
            async move { Json(doc.as_ref().clone()) }
        }),
    )
    .fallback(http::not_found)
    .layer(middleware::from_fn_with_state(experiments, ab_header))
    .layer(middleware::from_fn(http::metrics::track))
    .layer(middleware::from_fn_with_state(limits, rate_limit))
    .layer(middleware::from_fn_with_state(auth, http::authenticate))
    .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
    .layer(GlobalConcurrencyLimitLayer::new(IN_FLIGHT_MAX))
    .layer(TimeoutLayer::with_status_code(
        StatusCode::REQUEST_TIMEOUT,
        REQUEST_TIMEOUT,
    ))
    .layer(
        TraceLayer::new_for_http().make_span_with(|request: &Request| {
            let route = request
                .extensions()
                .get::<MatchedPath>()
                .map_or("unmatched", MatchedPath::as_str)
                .to_owned();
            let id = request
                .headers()
                .get(REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            tracing::info_span!("request", method = %request.method(), route, request_id = id)
        }),
    )
    .layer(PropagateRequestIdLayer::new(REQUEST_ID))
    .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}
