//! The HTTP surface (feature `http`): one axum router per engine, each taking its ports as
//! state, for the reference server or any service that embeds them.
//!
//! Every router is a [`utoipa_axum::router::OpenApiRouter`]: its routes and their OpenAPI
//! description are one list, so the document [`openapi`] serves cannot drift from the routes.
//! Errors are RFC 9457 problems ([`ApiError`], [`status_of`]); unsafe calls that need it take an
//! `Idempotency-Key` ([`Idempotency`]); callers are recognised by signed bearer tokens
//! ([`Auth`], [`authenticate`]) and guests by a cart cookie.
//!
//! | router | routes |
//! |--------|--------|
//! | [`catalog::router`] | `GET /products`, `GET /products/{sku}`, `PUT /admin/products/{sku}` |
//! | [`search::router`] | `GET /search` |
//! | [`cart::router`] | `GET /cart`, lines, codes, shipping address, price acknowledgement, `POST /cart/checkout` |
//! | [`orders::router`] | `GET /orders/{id}` |
//! | [`inventory::router`] | `GET /stock/{sku}`, `POST /admin/stock/{sku}/receive` |
//! | [`recs::router`] | `GET /products/{sku}/recommendations`, `POST /recently-viewed` |
//! | [`drops::router`] | `PUT /admin/drops/{sale}`, `POST /drops/{sale}/join`, `GET /drops/{sale}` |
//! | [`shipping::router`] | `POST /admin/orders/{id}/ship`, `POST /webhooks/carrier/{carrier}` (signed) |
//! | [`promotions::router`] | `GET /admin/promotions`, `PUT`/`DELETE /admin/promotions/{id}` |
//! | [`payments::router`] | `POST /webhooks/payments/{provider}` (signed) |
//! | [`reviews::router`] | `GET`/`POST /products/{sku}/reviews`, moderation |

mod auth;
pub mod cart;
pub mod catalog;
pub mod drops;
mod idempotency;
pub mod inventory;
pub mod metrics;
pub mod orders;
pub mod payments;
mod problem;
pub mod promotions;
pub mod recs;
pub mod reviews;
pub mod search;
pub mod shipping;
mod views;
mod webhook;

pub use auth::{
    Admin, Auth, Customer, MaybeSignedIn, Principal, Role, SECRET_BYTES_MIN, authenticate,
};
pub use idempotency::{
    CLIENT_KEY_LEN_MAX, ClientKey, IDEMPOTENCY_KEY, IDEMPOTENT_REPLAYED, Idempotency,
    parse_client_key,
};
pub use problem::{
    ApiError, ApiResult, Body, PROBLEM_JSON, Path, Problem, Query, not_found, status_of,
};
pub use views::{AddressView, MoneyView, ProductView};
pub use webhook::{WEBHOOK_SIGNATURE, WEBHOOK_TOLERANCE_SECS, WebhookKey};

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};

/// Documents `status` (a problem) on `op` unless it is there already.
pub fn document_problem(op: &mut Operation, status: u16, description: &str) {
    let _ = op
        .responses
        .responses
        .entry(status.to_string())
        .or_insert_with(|| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        PROBLEM_JSON,
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("Problem")))
                            .build(),
                    )
                    .build(),
            )
        });
}

/// Every operation of the document, mutably.
pub fn operations_mut(doc: &mut utoipa::openapi::OpenApi) -> impl Iterator<Item = &mut Operation> {
    doc.paths.paths.values_mut().flat_map(|item| {
        [
            item.get.as_mut(),
            item.put.as_mut(),
            item.post.as_mut(),
            item.delete.as_mut(),
            item.patch.as_mut(),
        ]
        .into_iter()
        .flatten()
    })
}

/// Adds the document's metadata (title, version, the bearer scheme) to what the routers
/// collected, and the answers every route can give: 401 for a bad bearer token, and for a
/// body the HTTP layer refuses before the handler (400 unreadable, 413 too large, 415 not
/// JSON, 422 the wrong shape).
pub fn openapi(mut doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    for op in operations_mut(&mut doc) {
        // Error answers are problems: say so in their media type.
        for (status, response) in &mut op.responses.responses {
            if let (Some('4' | '5'), RefOr::T(r)) = (status.chars().next(), response)
                && let Some(c) = r.content.shift_remove("application/json")
            {
                let _ = r.content.insert(PROBLEM_JSON.to_owned(), c);
            }
        }
        document_problem(op, 401, "The bearer token is not valid");
        let header_params = op.parameters.as_ref().is_some_and(|ps| {
            ps.iter()
                .any(|p| matches!(p, RefOr::T(p) if p.parameter_in == utoipa::openapi::path::ParameterIn::Header))
        });
        if header_params {
            document_problem(
                op,
                400,
                "A header (If-Match, Idempotency-Key) is malformed or missing",
            );
        }
        if op.request_body.is_some() {
            document_problem(op, 400, "The body is not readable JSON");
            document_problem(op, 413, "The body is too large");
            document_problem(op, 415, "The body is not application/json");
            document_problem(op, 422, "The body has the wrong shape or values");
        }
    }
    doc.info.title = "commerce-sdk reference API".into();
    doc.info.version = env!("CARGO_PKG_VERSION").into();
    doc.info.description = Some(
        "Every engine of the SDK behind one HTTP API. Errors are RFC 9457 problems; unsafe \
         calls that say so need an Idempotency-Key."
            .into(),
    );
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .build(),
        ),
    );
    doc
}
