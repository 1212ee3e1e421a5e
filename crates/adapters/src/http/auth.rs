//! Signed bearer tokens (customer and admin roles) and the extractors routes ask for.
//!
//! Tokens are JWTs signed with HS256 under one secret of at least 32 bytes, following RFC 8725:
//! one algorithm allowed (never the token's own `alg`), explicit typing (`typ: at+jwt`, checked),
//! issuer and audience checked, and the times (`nbf`, `exp`) compared with the SDK's [`Clock`],
//! not the crate's wall clock, so tests can move time.
//!
//! [`authenticate`] is a middleware: a request with a valid `Authorization: Bearer` token gets
//! its [`Principal`] in the request's extensions; an invalid or expired token is a 401; no
//! token is an anonymous request. Routes then ask for [`Customer`] (any signed-in user),
//! [`Admin`], or [`MaybeSignedIn`]. A host with its own authentication inserts a
//! [`Principal`] itself and skips this module's middleware.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use chrono::TimeDelta;
use commerce_core::{Clock, ErrorKind, UserId};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::problem::ApiError;

/// The `typ` every token carries and every check demands.
const TOKEN_TYPE: &str = "at+jwt";
/// The shortest secret accepted (bytes): 256 bits, RFC 8725's "enough entropy" for HS256.
pub const SECRET_BYTES_MIN: usize = 32;

/// What a token lets its bearer do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A shopper: their own carts, orders and reviews.
    Customer,
    /// Staff: catalog, stock, promotions, moderation, every order.
    Admin,
}

/// Who is calling, once their token checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user the token was issued to.
    pub user: UserId,
    /// Their role.
    pub role: Role,
}

impl Principal {
    /// True for [`Role::Admin`].
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    role: Role,
    iss: String,
    aud: String,
    iat: i64,
    nbf: i64,
    exp: i64,
}

/// Issues and checks tokens.
///
/// ```
/// use std::sync::Arc;
/// use adapters::http::{Auth, Role};
/// use commerce_core::{ManualClock, UserId, testkit::t0};
///
/// let clock = Arc::new(ManualClock::new(t0()));
/// let auth = Auth::new(&[7; 32], "shop", clock.clone())?;
/// let token = auth.issue(&UserId::new("ada")?, Role::Customer)?;
/// assert_eq!(auth.verify(&token).unwrap().user.as_str(), "ada");
/// clock.advance(chrono::TimeDelta::days(2)); // past the default 24 h lifetime
/// assert!(auth.verify(&token).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Auth {
    encoding: EncodingKey,
    decoding: DecodingKey,
    issuer: String,
    ttl: TimeDelta,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("issuer", &self.issuer)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl Auth {
    /// Tokens signed with `secret` (at least [`SECRET_BYTES_MIN`] bytes) for the audience
    /// and issuer `issuer`, valid 24 hours.
    ///
    /// # Errors
    /// [`commerce_core::Error::Invalid`] for a short secret or an empty issuer.
    pub fn new(secret: &[u8], issuer: &str, clock: Arc<dyn Clock>) -> commerce_core::Result<Auth> {
        if secret.len() < SECRET_BYTES_MIN {
            return Err(commerce_core::Error::Invalid {
                field: "secret",
                reason: format!("{} bytes; at least {SECRET_BYTES_MIN}", secret.len()),
            });
        }
        if issuer.is_empty() {
            return Err(commerce_core::Error::Invalid {
                field: "issuer",
                reason: "empty".into(),
            });
        }
        let bad_key = |e: jsonwebtoken::errors::Error| commerce_core::Error::Invalid {
            field: "secret",
            reason: e.to_string(),
        };
        Ok(Auth {
            encoding: EncodingKey::from_secret(secret).map_err(bad_key)?,
            decoding: DecodingKey::from_secret(secret).map_err(bad_key)?,
            issuer: issuer.to_owned(),
            ttl: TimeDelta::hours(24),
            clock,
        })
    }

    /// The same, with tokens valid for `ttl` (1 minute to 30 days).
    ///
    /// # Errors
    /// [`commerce_core::Error::Invalid`] for a lifetime out of bounds.
    pub fn with_ttl(mut self, ttl: TimeDelta) -> commerce_core::Result<Auth> {
        if ttl < TimeDelta::minutes(1) || ttl > TimeDelta::days(30) {
            return Err(commerce_core::Error::Invalid {
                field: "ttl",
                reason: "between one minute and 30 days".into(),
            });
        }
        self.ttl = ttl;
        Ok(self)
    }

    /// A token for `user` with `role`, valid from now for the configured lifetime.
    ///
    /// # Errors
    /// A 500 [`ApiError`] if signing fails (it does not with an HMAC key).
    pub fn issue(&self, user: &UserId, role: Role) -> Result<String, ApiError> {
        let now = self.clock.now().timestamp();
        let claims = Claims {
            sub: user.as_str().to_owned(),
            role,
            iss: self.issuer.clone(),
            aud: self.issuer.clone(),
            iat: now,
            nbf: now,
            exp: now.saturating_add(self.ttl.num_seconds()),
        };
        let mut header = Header::new(Algorithm::HS256);
        header.typ = Some(TOKEN_TYPE.to_owned());
        jsonwebtoken::encode(&header, &claims, &self.encoding)
            .map_err(|e| ApiError::of_kind(ErrorKind::Internal, format!("signing a token: {e}")))
    }

    /// The principal a token names.
    ///
    /// # Errors
    /// A 401 [`ApiError`] for a token that is malformed, signed otherwise, of another type,
    /// issuer or audience, not yet valid or expired.
    pub fn verify(&self, token: &str) -> Result<Principal, ApiError> {
        let mut validation = Validation::new(Algorithm::HS256);
        // Times are checked against the SDK's clock below, not the crate's.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.issuer]);
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map_err(|e| ApiError::unauthorized(format!("the bearer token is not valid: {e}")))?;
        if data.header.typ.as_deref() != Some(TOKEN_TYPE) {
            return Err(ApiError::unauthorized(
                "the bearer token is not an access token",
            ));
        }
        let now = self.clock.now().timestamp();
        if now < data.claims.nbf || now >= data.claims.exp {
            return Err(ApiError::unauthorized("the bearer token has expired"));
        }
        let user = UserId::new(data.claims.sub)
            .map_err(|_| ApiError::unauthorized("the bearer token names no valid user"))?;
        Ok(Principal {
            user,
            role: data.claims.role,
        })
    }
}

/// Middleware: checks a bearer token if there is one and records its [`Principal`].
///
/// # Errors
/// 401 for an `Authorization` header that is not a valid bearer token.
pub async fn authenticate(
    State(auth): State<Arc<Auth>>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if let Some(value) = request.headers().get(header::AUTHORIZATION) {
        let text = value
            .to_str()
            .map_err(|_| ApiError::unauthorized("the Authorization header is not text"))?;
        let token = text
            .strip_prefix("Bearer ")
            .or_else(|| text.strip_prefix("bearer "))
            .ok_or_else(|| ApiError::unauthorized("use Authorization: Bearer <token>"))?;
        let principal = auth.verify(token.trim())?;
        let _ = request.extensions_mut().insert(principal);
    }
    Ok(next.run(request).await)
}

/// Any signed-in user (401 otherwise).
#[derive(Debug, Clone)]
pub struct Customer(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Customer {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .map(Customer)
            .ok_or_else(|| ApiError::unauthorized("sign in first"))
    }
}

/// A signed-in admin (401 without a token, 403 with a customer's).
#[derive(Debug, Clone)]
pub struct Admin(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Customer(p) = Customer::from_request_parts(parts, state).await?;
        if p.is_admin() {
            Ok(Admin(p))
        } else {
            Err(ApiError::forbidden("this needs the admin role"))
        }
    }
}

/// The caller, signed in or not.
#[derive(Debug, Clone)]
pub struct MaybeSignedIn(pub Option<Principal>);

impl<S: Send + Sync> FromRequestParts<S> for MaybeSignedIn {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(MaybeSignedIn(parts.extensions.get::<Principal>().cloned()))
    }
}

/// Refuses a principal that is neither `owner` nor an admin, as `NotFound` (someone else's
/// cart or order does not exist for you).
pub(crate) fn owner_or_admin(
    principal: &Principal,
    owner: Option<&UserId>,
    what: &str,
) -> Result<(), ApiError> {
    if principal.is_admin() || owner == Some(&principal.user) {
        Ok(())
    } else {
        Err(ApiError::of_kind(
            ErrorKind::NotFound,
            format!("no such {what}"),
        ))
    }
}
