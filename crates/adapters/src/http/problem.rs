//! One error body for every route: RFC 9457 problem details, and the one mapping from the
//! engines' [`ErrorKind`]s to HTTP statuses.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use commerce_core::ErrorKind;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The status every engine error of `kind` answers with. This table is the contract
/// (`ARCHITECTURE.md` carries it too):
///
/// | kind            | status | why |
/// |-----------------|--------|-----|
/// | `NotFound`      | 404    | the thing named does not exist (or is not yours) |
/// | `Conflict`      | 409    | the current state does not allow it; read again |
/// | `Invalid`       | 422    | the input is well-formed but out of bounds |
/// | `Refused`       | 409    | a business rule said no (sold out, price changed, declined) |
/// | `Unavailable`   | 503    | a backend is down or overloaded; retry later (`Retry-After`) |
/// | `Indeterminate` | 504    | the outcome is unknown; retry with the same idempotency key |
/// | `Internal`      | 500    | a bug |
///
/// ```
/// use adapters::http::status_of;
/// use axum::http::StatusCode;
/// use commerce_core::ErrorKind;
/// assert_eq!(status_of(ErrorKind::Invalid), StatusCode::UNPROCESSABLE_ENTITY);
/// assert_eq!(status_of(ErrorKind::Refused), StatusCode::CONFLICT);
/// ```
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict | ErrorKind::Refused => StatusCode::CONFLICT,
        ErrorKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Indeterminate => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The problem type's short name for a kind (`type` is `/problems/<name>`).
fn slug_of(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::NotFound => "not-found",
        ErrorKind::Conflict => "conflict",
        ErrorKind::Invalid => "invalid",
        ErrorKind::Refused => "refused",
        ErrorKind::Unavailable => "unavailable",
        ErrorKind::Indeterminate => "indeterminate",
        _ => "internal",
    }
}

/// The wire form of an error (RFC 9457), as the OpenAPI document describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// A URI reference naming the problem type: `/problems/<name>`, stable across releases.
    #[serde(rename = "type")]
    pub type_: String,
    /// The same for every occurrence of the type.
    pub title: String,
    /// The HTTP status, copied.
    pub status: u16,
    /// What went wrong this time, for the person fixing the request.
    pub detail: String,
    /// The engines' error kind (`not_found`, `conflict`, `invalid`, `refused`, `unavailable`,
    /// `indeterminate`, `internal`), or the HTTP layer's own (`unauthorized`, …).
    pub kind: String,
    /// The input field the request was refused for, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// More about this occurrence (a checkout's blockers, the lines out of stock, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
}

/// An error on its way to the client: status, problem body and the headers that go with it.
///
/// Every engine's error converts into it through its kind ([`status_of`]); the HTTP layer's own
/// refusals (401, 403, 400 for a missing idempotency key, 413, 429) have constructors.
/// Internal errors keep their message in the log, never in the body.
#[derive(Debug, Clone)]
pub struct ApiError(Box<Inner>);

#[derive(Debug, Clone)]
struct Inner {
    status: StatusCode,
    problem: Problem,
    retry_after_secs: Option<u64>,
    www_authenticate: bool,
}

impl ApiError {
    /// An error of an engine kind.
    pub fn of_kind(kind: ErrorKind, detail: impl Into<String>) -> ApiError {
        let status = status_of(kind);
        let mut detail = detail.into();
        if kind == ErrorKind::Internal {
            tracing::error!(%detail, "internal error answered with 500");
            detail = "an internal error; it was logged".into();
        }
        let name = slug_of(kind);
        let mut e = ApiError::http(status, name, detail);
        e.0.problem.kind = name.replace('-', "_");
        if kind == ErrorKind::Unavailable {
            e.0.retry_after_secs = Some(1);
        }
        e
    }

    /// An error the HTTP layer raises itself, with a problem type name of its own.
    pub fn http(status: StatusCode, name: &str, detail: impl Into<String>) -> ApiError {
        ApiError(Box::new(Inner {
            status,
            problem: Problem {
                type_: format!("/problems/{name}"),
                title: status.canonical_reason().unwrap_or("error").to_owned(),
                status: status.as_u16(),
                detail: detail.into(),
                kind: name.replace('-', "_"),
                field: None,
                details: None,
            },
            retry_after_secs: None,
            www_authenticate: false,
        }))
    }

    /// 400: the request is malformed (a missing required header, unreadable JSON).
    pub fn bad_request(name: &str, detail: impl Into<String>) -> ApiError {
        ApiError::http(StatusCode::BAD_REQUEST, name, detail)
    }

    /// 401 with `WWW-Authenticate: Bearer`.
    pub fn unauthorized(detail: impl Into<String>) -> ApiError {
        let mut e = ApiError::http(StatusCode::UNAUTHORIZED, "unauthorized", detail);
        e.0.www_authenticate = true;
        e
    }

    /// 403: authenticated, not allowed.
    pub fn forbidden(detail: impl Into<String>) -> ApiError {
        ApiError::http(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    /// 429 with `Retry-After` (whole seconds, at least one).
    pub fn too_many_requests(retry_after_secs: u64, detail: impl Into<String>) -> ApiError {
        let mut e = ApiError::http(StatusCode::TOO_MANY_REQUESTS, "rate-limited", detail);
        e.0.retry_after_secs = Some(retry_after_secs.max(1));
        e
    }

    /// Names the input field the request was refused for.
    #[must_use]
    pub fn with_field(mut self, field: impl Into<String>) -> ApiError {
        self.0.problem.field = Some(field.into());
        self
    }

    /// Adds structured details (serialized as the `details` member).
    #[must_use]
    pub fn with_details(mut self, details: serde_json::Value) -> ApiError {
        self.0.problem.details = Some(details);
        self
    }

    /// The status this error answers with.
    pub fn status(&self) -> StatusCode {
        self.0.status
    }

    /// The body.
    pub fn problem(&self) -> &Problem {
        &self.0.problem
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.0.status, self.0.problem.detail)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let inner = *self.0;
        let body = serde_json::to_vec(&inner.problem).unwrap_or_default();
        let mut response = (inner.status, body).into_response();
        let headers = response.headers_mut();
        let _ = headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(secs) = inner.retry_after_secs {
            let _ = headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if inner.www_authenticate {
            let _ = headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// A `Result` whose error renders as a problem.
pub type ApiResult<T> = std::result::Result<T, ApiError>;

macro_rules! from_kinded {
    ($($ty:ty),* $(,)?) => {$(
        impl From<$ty> for ApiError {
            fn from(e: $ty) -> ApiError {
                let mut out = ApiError::of_kind(e.kind(), e.to_string());
                if let Some(field) = e.field() {
                    out = out.with_field(field);
                }
                out
            }
        }
    )*};
}

from_kinded!(
    commerce_core::Error,
    cart_engine::Error,
    inventory::Error,
    recs::Error,
    search::Error,
    reviews::Error,
);

impl From<commerce_core::PortError> for ApiError {
    fn from(e: commerce_core::PortError) -> ApiError {
        let mut out = ApiError::of_kind(e.kind, e.message.clone());
        if let Some(field) = e.field {
            out = out.with_field(field);
        }
        out
    }
}

impl From<saga::Error> for ApiError {
    fn from(e: saga::Error) -> ApiError {
        match e {
            saga::Error::CheckoutRefused(failure) => refused_checkout(&failure),
            other => ApiError::of_kind(other.kind(), other.to_string()),
        }
    }
}

/// A checkout that was refused, with its typed reason in `details`.
pub(crate) fn refused_checkout(failure: &saga::CheckoutFailure) -> ApiError {
    let details = serde_json::to_value(failure).unwrap_or(serde_json::Value::Null);
    ApiError::of_kind(failure.kind(), checkout_message(failure)).with_details(details)
}

/// What a refused checkout tells the shopper.
fn checkout_message(failure: &saga::CheckoutFailure) -> String {
    use saga::CheckoutFailure as F;
    match failure {
        F::CartNotReady { .. } => {
            "the cart is not ready for checkout (see details: blockers and violations)".into()
        }
        F::OutOfStock { lines } => {
            let skus: Vec<&str> = lines.iter().map(|l| l.sku.as_str()).collect();
            format!("not enough stock for {}", skus.join(", "))
        }
        F::PromotionLimitReached { promotion_id, .. } => {
            format!("promotion {promotion_id} has reached its limit")
        }
        F::PaymentDeclined { message } => format!("the payment was declined: {message}"),
        F::DeadlinePassed { .. } => {
            "checkout ran out of time; nothing was charged, try again".into()
        }
        F::OrderCancelled => "the order was cancelled".into(),
        F::InvalidOrder { message, .. } => format!("the order is invalid: {message}"),
        F::Unexpected { message, .. } => message.clone(),
        _ => "checkout failed".into(),
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> ApiError {
        match r {
            JsonRejection::MissingJsonContentType(_) => ApiError::http(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "send the body as application/json",
            ),
            JsonRejection::JsonDataError(e) => ApiError::of_kind(ErrorKind::Invalid, e.body_text()),
            JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::http(StatusCode::PAYLOAD_TOO_LARGE, "too-large", e.body_text())
            }
            other => ApiError::bad_request("malformed", other.body_text()),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> ApiError {
        ApiError::of_kind(ErrorKind::Invalid, r.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> ApiError {
        ApiError::of_kind(ErrorKind::Invalid, r.body_text())
    }
}

/// The fallback for paths no router knows: a 404 problem.
pub async fn not_found() -> ApiError {
    ApiError::http(StatusCode::NOT_FOUND, "not-found", "no such route")
}

/// JSON bodies whose rejections are problems: `axum::Json` answers plain text.
pub use axum_extra_json::{Json as Body, Path, Query};

/// `Json`, `Query` and `Path` wrappers whose rejections render as problems.
pub(crate) mod axum_extra_json {
    use axum::extract::{FromRequest, FromRequestParts, Request};
    use axum::http::request::Parts;
    use serde::de::DeserializeOwned;

    use super::ApiError;

    /// A JSON body; its rejection is a problem (415, 400, 413 or 422).
    #[derive(Debug, Clone, Copy, Default)]
    pub struct Json<T>(pub T);

    impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
        type Rejection = ApiError;
        async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
            let axum::Json(v) = axum::Json::<T>::from_request(req, state).await?;
            Ok(Json(v))
        }
    }

    /// A query string; its rejection is a 422 problem.
    #[derive(Debug, Clone, Copy, Default)]
    pub struct Query<T>(pub T);

    impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
        type Rejection = ApiError;
        async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
            let axum::extract::Query(v) =
                axum::extract::Query::<T>::from_request_parts(parts, state).await?;
            Ok(Query(v))
        }
    }

    /// Path parameters; their rejection is a 422 problem.
    #[derive(Debug, Clone, Copy, Default)]
    pub struct Path<T>(pub T);

    impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
        type Rejection = ApiError;
        async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
            let axum::extract::Path(v) =
                axum::extract::Path::<T>::from_request_parts(parts, state).await?;
            Ok(Path(v))
        }
    }
}
