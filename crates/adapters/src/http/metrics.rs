//! Request metrics through the `metrics` facade: nothing is recorded until the host installs a
//! recorder (the reference server installs Prometheus's and serves `/metrics`).
//!
//! | metric | kind | labels |
//! |--------|------|--------|
//! | `http_server_request_duration_seconds` | histogram | `method`, `route` (the matched template, or `unmatched`), `status` |
//! | `http_server_active_requests` | gauge | |
//! | `commerce_search_duration_seconds` | histogram | |
//! | `commerce_checkout_attempts_total` | counter | `outcome`: `confirmed`, `processing`, `refused`, `throttled`, `replayed`, `error` |
//! | `commerce_admission_admitted_total` | counter | |

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

/// Middleware: times every request and counts the ones in flight.
pub async fn track(request: Request, next: Next) -> Response {
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let active = metrics::gauge!("http_server_active_requests");
    active.increment(1.0);
    let started = started();
    let response = next.run(request).await;
    active.decrement(1.0);
    metrics::histogram!(
        "http_server_request_duration_seconds",
        "method" => method,
        "route" => route,
        "status" => response.status().as_str().to_owned(),
    )
    .record(started.elapsed().as_secs_f64());
    response
}

/// The monotonic clock, for durations only.
#[allow(
    clippy::disallowed_methods,
    reason = "a latency metric reads the monotonic clock; no decision depends on it"
)]
pub(crate) fn started() -> std::time::Instant {
    std::time::Instant::now()
}
