//! `Idempotency-Key` on unsafe calls (draft-ietf-httpapi-idempotency-key-header-07).
//!
//! | situation                               | answer |
//! |-----------------------------------------|--------|
//! | key missing where the route requires it | 400 `idempotency-key-missing` |
//! | key malformed or sent twice             | 400 `idempotency-key-invalid` |
//! | same key while the first call runs      | 409 `idempotency-key-in-flight` (retry unchanged) |
//! | same key, another request               | 422 `idempotency-key-reused` |
//! | same key after the first call finished  | the first call's response again, with `Idempotent-Replayed: true` |
//!
//! Keys are scoped by caller (the signed-in user, or the guest cart), so two clients can never
//! see each other's responses. The request's fingerprint is its method, path and body. Records
//! live in the [`IdempotencyStore`] port (memory, or PostgreSQL) and are kept at least 24 hours
//! (the port's minimum retention). A first call whose answer is a server error (503, 504) gives
//! the key back, so the retry runs again; the engines' own keys make that safe.
//!
//! The work runs in a task of its own: a client that hangs up, or a timeout, does not stop a
//! call half-way; its response is stored for the retry.

use std::future::Future;
use std::sync::Arc;

use axum::body::Body as AxumBody;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::TimeDelta;
use commerce_core::{Begin, Clock, IdempotencyKey, IdempotencyStore};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::problem::ApiError;

/// The request header.
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// Set on a response that is a replay of the first call's.
pub const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");
/// The longest key accepted, in bytes.
pub const CLIENT_KEY_LEN_MAX: usize = 255;
/// Largest response body stored for replay.
const STORED_BODY_MAX: usize = 1 << 20;

/// The `Idempotency-Key` a request carried, quoted (the draft's structured-field string) or
/// bare (what most clients send); `None` when there was none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientKey(pub Option<String>);

impl ClientKey {
    /// The key, or a 400 when the route requires one.
    ///
    /// # Errors
    /// 400 `idempotency-key-missing`.
    pub fn required(&self) -> Result<&str, ApiError> {
        self.0.as_deref().ok_or_else(|| {
            ApiError::bad_request(
                "idempotency-key-missing",
                "this call needs an Idempotency-Key header (any unique string of up to 255 \
                 visible characters, e.g. a UUID)",
            )
        })
    }
}

/// Parses the header's value.
///
/// ```
/// use adapters::http::parse_client_key;
/// assert_eq!(parse_client_key("\"8e03-aa\"").unwrap(), "8e03-aa");
/// assert_eq!(parse_client_key("8e03-aa").unwrap(), "8e03-aa");
/// assert!(parse_client_key("").is_err());
/// assert!(parse_client_key("has space").is_err());
/// ```
///
/// # Errors
/// 400 `idempotency-key-invalid` for an empty or over-long key, or one with characters other
/// than visible ASCII.
pub fn parse_client_key(raw: &str) -> Result<String, ApiError> {
    let raw = raw.trim();
    let key = raw
        .strip_prefix('"')
        .and_then(|k| k.strip_suffix('"'))
        .unwrap_or(raw);
    let invalid = |why: &str| {
        ApiError::bad_request(
            "idempotency-key-invalid",
            format!("the Idempotency-Key {why}"),
        )
    };
    if key.is_empty() {
        return Err(invalid("is empty"));
    }
    if key.len() > CLIENT_KEY_LEN_MAX {
        return Err(invalid("is longer than 255 bytes"));
    }
    if !key
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
    {
        return Err(invalid("has characters other than visible ASCII"));
    }
    Ok(key.to_owned())
}

impl<S: Send + Sync> FromRequestParts<S> for ClientKey {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let mut values = parts.headers.get_all(IDEMPOTENCY_KEY).iter();
        let Some(first) = values.next() else {
            return Ok(ClientKey(None));
        };
        if values.next().is_some() {
            return Err(ApiError::bad_request(
                "idempotency-key-invalid",
                "send one Idempotency-Key header, not several",
            ));
        }
        let text = first.to_str().map_err(|_| {
            ApiError::bad_request("idempotency-key-invalid", "the Idempotency-Key is not text")
        })?;
        Ok(ClientKey(Some(parse_client_key(text)?)))
    }
}

/// A stable 256-bit digest (hex) of the parts, each length-prefixed so no two part lists
/// collide.
pub(crate) fn digest(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    let out = h.finalize();
    out.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    status: u16,
    content_type: Option<String>,
    location: Option<String>,
    body: String,
}

/// Runs unsafe calls at most once per (caller, key).
#[derive(Debug, Clone)]
pub struct Idempotency {
    store: Arc<dyn IdempotencyStore>,
    clock: Arc<dyn Clock>,
    lease: TimeDelta,
}

impl Idempotency {
    /// Records in `store`; a first call holds its key for `lease` (a crashed server's key is
    /// taken over after that).
    pub fn new(store: Arc<dyn IdempotencyStore>, clock: Arc<dyn Clock>, lease: TimeDelta) -> Self {
        Idempotency {
            store,
            clock,
            lease,
        }
    }

    /// Runs `work` once for the caller `scope` and the client's `key`, for a request whose
    /// fingerprint parts are `request` (method, path, canonical body). Without a key, `work`
    /// simply runs.
    pub async fn once<F>(
        &self,
        scope: &str,
        key: Option<&str>,
        request: &[&[u8]],
        work: F,
    ) -> Response
    where
        F: Future<Output = Response> + Send + 'static,
    {
        let Some(key) = key else {
            return work.await;
        };
        let record = match IdempotencyKey::new(format!(
            "http:{}",
            digest(&[scope.as_bytes(), key.as_bytes()])
        )) {
            Ok(k) => k,
            Err(e) => return ApiError::from(e).into_response(),
        };
        let fingerprint = digest(request);
        let begun = self
            .store
            .begin(&record, &fingerprint, self.clock.now(), self.lease)
            .await;
        let token = match begun {
            Err(e) => return ApiError::from(e).into_response(),
            Ok(Begin::InProgress) => {
                return ApiError::http(
                    StatusCode::CONFLICT,
                    "idempotency-key-in-flight",
                    "a request with this Idempotency-Key is still running; retry it unchanged \
                     in a moment",
                )
                .into_response();
            }
            Ok(Begin::Mismatch) => {
                return ApiError::http(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "idempotency-key-reused",
                    "this Idempotency-Key was used for another request; use a new key",
                )
                .into_response();
            }
            Ok(Begin::Completed(bytes)) => return replay(&bytes),
            Ok(Begin::Started { token }) => token,
        };
        let store = self.store.clone();
        let clock = self.clock.clone();
        let task = tokio::spawn(async move {
            let response = work.await;
            let (parts, body) = response.into_parts();
            let bytes = axum::body::to_bytes(body, STORED_BODY_MAX)
                .await
                .unwrap_or_default();
            let header_text = |name: header::HeaderName| {
                parts
                    .headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            if parts.status.is_server_error() {
                // Nothing is known to have happened (or the engine's own key makes the rerun
                // safe): let the retry run again.
                if let Err(e) = store.abandon(&record, token).await {
                    tracing::warn!(error = %e, "could not release an idempotency key");
                }
            } else {
                let stored = Stored {
                    status: parts.status.as_u16(),
                    content_type: header_text(header::CONTENT_TYPE),
                    location: header_text(header::LOCATION),
                    body: String::from_utf8_lossy(&bytes).into_owned(),
                };
                let encoded = serde_json::to_vec(&stored).unwrap_or_default();
                if let Err(e) = store.complete(&record, token, encoded, clock.now()).await {
                    tracing::warn!(error = %e, "could not store an idempotent response");
                }
            }
            Response::from_parts(parts, AxumBody::from(bytes))
        });
        match task.await {
            Ok(response) => response,
            Err(e) => ApiError::of_kind(
                commerce_core::ErrorKind::Internal,
                format!("a call panicked: {e}"),
            )
            .into_response(),
        }
    }
}

fn replay(bytes: &[u8]) -> Response {
    let Ok(stored) = serde_json::from_slice::<Stored>(bytes) else {
        return ApiError::of_kind(
            commerce_core::ErrorKind::Internal,
            "a stored idempotent response is unreadable",
        )
        .into_response();
    };
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut response = (status, stored.body).into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, stored.content_type),
        (header::LOCATION, stored.location),
    ] {
        if let Some(v) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
            let _ = headers.insert(name, v);
        }
    }
    let _ = headers.insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    response
}
