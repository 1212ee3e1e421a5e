//! Webhook signatures: `Webhook-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
//! "<t>.<body>">` under a sender's shared secret (the scheme Stripe and the Standard Webhooks
//! draft use). The timestamp is inside the signed text, so a captured delivery cannot be
//! replayed after [`WEBHOOK_TOLERANCE_SECS`]; within that window the receivers dedupe by the
//! event's id. Several `v1=` values may be present while a secret is being rotated.

use axum::http::{HeaderMap, HeaderName};
use chrono::{DateTime, Utc};
use commerce_core::ErrorKind;
use hmac::{Hmac, KeyInit, Mac};
use serde::de::DeserializeOwned;
use sha2::Sha256;

use super::problem::ApiError;

/// The signature header of webhooks.
pub const WEBHOOK_SIGNATURE: HeaderName = HeaderName::from_static("webhook-signature");
/// How far a webhook's timestamp may be from now.
pub const WEBHOOK_TOLERANCE_SECS: i64 = 300;

/// Checks webhook signatures under one shared secret.
///
/// ```
/// use adapters::http::WebhookKey;
/// use commerce_core::testkit::t0;
/// let key = WebhookKey::new(b"carrier-secret-with-enough-bytes!")?;
/// let header = key.sign(b"{\"seq\":1}", t0());
/// assert!(key.verify(&header, b"{\"seq\":1}", t0()).is_ok());
/// assert!(key.verify(&header, b"{\"seq\":2}", t0()).is_err()); // another body
/// assert!(key.verify(&header, b"{\"seq\":1}", t0() + chrono::TimeDelta::minutes(10)).is_err()); // too old
/// # Ok::<(), commerce_core::Error>(())
/// ```
#[derive(Clone)]
pub struct WebhookKey(Vec<u8>);

impl std::fmt::Debug for WebhookKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookKey(..)")
    }
}

impl WebhookKey {
    /// A key of at least 32 bytes.
    ///
    /// # Errors
    /// `Invalid` for a shorter one.
    pub fn new(secret: &[u8]) -> commerce_core::Result<WebhookKey> {
        if secret.len() < 32 {
            return Err(commerce_core::Error::Invalid {
                field: "webhook_secret",
                reason: "at least 32 bytes".into(),
            });
        }
        Ok(WebhookKey(secret.to_vec()))
    }

    fn mac(&self, t: i64, body: &[u8]) -> Hmac<Sha256> {
        // HMAC takes a key of any length; `new_from_slice` cannot fail for it.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
        mac.update(t.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    /// The header value a sender puts on `body` at `now`.
    pub fn sign(&self, body: &[u8], now: DateTime<Utc>) -> String {
        let t = now.timestamp();
        let tag = self.mac(t, body).finalize().into_bytes();
        let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        format!("t={t},v1={hex}")
    }

    /// Checks a header against `body` at `now` (constant-time comparison).
    ///
    /// # Errors
    /// A 401 problem for a malformed header, a stale timestamp or a wrong signature.
    pub fn verify(&self, header: &str, body: &[u8], now: DateTime<Utc>) -> Result<(), ApiError> {
        let bad = |why: &str| ApiError::unauthorized(format!("webhook signature: {why}"));
        let mut t = None;
        let mut sigs = Vec::new();
        for part in header.split(',') {
            match part.trim().split_once('=') {
                Some(("t", v)) => t = v.parse::<i64>().ok(),
                Some(("v1", v)) => sigs.push(v),
                _ => {}
            }
        }
        let t = t.ok_or_else(|| bad("no timestamp"))?;
        if (now.timestamp() - t).abs() > WEBHOOK_TOLERANCE_SECS {
            return Err(bad("the timestamp is more than five minutes away"));
        }
        let ok = sigs.iter().any(|hex| {
            decode_hex(hex).is_some_and(|tag| self.mac(t, body).verify_slice(&tag).is_ok())
        });
        if ok {
            Ok(())
        } else {
            Err(bad("does not match"))
        }
    }
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect()
}

/// The body of a signed delivery, parsed: 401 without a valid, fresh signature under `key`,
/// 422 when the body is not a `T` (`what` names it in the message).
pub(crate) fn verified<T: DeserializeOwned>(
    key: &WebhookKey,
    headers: &HeaderMap,
    body: &[u8],
    now: DateTime<Utc>,
    what: &str,
) -> Result<T, ApiError> {
    let signature = headers
        .get(WEBHOOK_SIGNATURE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::unauthorized("the webhook has no Webhook-Signature"))?;
    key.verify(signature, body, now)?;
    serde_json::from_slice(body).map_err(|e| {
        ApiError::of_kind(
            ErrorKind::Invalid,
            format!("the {what} does not parse: {e}"),
        )
    })
}
