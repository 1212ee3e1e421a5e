//! Observability: the Prometheus recorder behind `/metrics`, the hold sweeper, and the lag
//! gauges. Engines and the `http` adapter emit through the `metrics` facade; this installs the
//! one recorder of the process (once, however many servers a test process builds).
//!
//! Besides the `http` adapter's metrics (see `adapters::http::metrics`):
//!
//! | metric | kind | what |
//! |--------|------|------|
//! | `commerce_inventory_hold_expirations_total` | counter | holds the sweeper expired |
//! | `commerce_search_index_lag_events` | gauge | events in the log the index has not applied |
//! | `commerce_relay_lag_events` | gauge (`relay`) | events an outbox relay has not copied yet (`reviews`; `outbox` to the broker) |

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::http::header;
use axum::response::IntoResponse;
use commerce_core::memory::InMemoryEventLog;
use commerce_core::{Clock, EventLog};
use inventory::StockStore;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use search::SearchIndex;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::bus::Feed;
use crate::stopped;

/// OpenTelemetry's advised buckets for HTTP durations (seconds).
const HTTP_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0,
];

/// The process's Prometheus recorder, installed on first use.
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), HTTP_BUCKETS)
            .map(PrometheusBuilder::build_recorder);
        match recorder {
            Ok(recorder) => {
                let handle = recorder.handle();
                if metrics::set_global_recorder(recorder).is_err() {
                    tracing::warn!("a metrics recorder was installed already");
                }
                handle
            }
            Err(e) => {
                tracing::warn!(error = %e, "no Prometheus recorder");
                PrometheusBuilder::new().build_recorder().handle()
            }
        }
    })
}

/// `GET /metrics`: the Prometheus text format.
pub async fn render() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        prometheus().render(),
    )
}

/// Expires lapsed holds every second (stock comes back for the next shopper, with its
/// `BackInStock` events) and counts them.
pub fn spawn_sweeper(
    stock: Arc<dyn StockStore>,
    clock: Arc<dyn Clock>,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        while !*stop.borrow() {
            match stock.sweep(clock.now(), 500).await {
                Ok(swept) => metrics::counter!("commerce_inventory_hold_expirations_total")
                    .increment(u64::try_from(swept.expired.len()).unwrap_or(u64::MAX)),
                Err(e) => tracing::warn!(error = %e, "sweeping holds"),
            }
            let _ = tokio::time::timeout(Duration::from_secs(1), stopped(stop.clone())).await;
        }
    })
}

/// Updates the lag gauges every second, and runs the recorder's upkeep.
pub fn spawn_gauges(
    index: Arc<SearchIndex>,
    feed: Feed,
    reviews_outbox: Arc<InMemoryEventLog>,
    relayed: Arc<AtomicU64>,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        while !*stop.borrow() {
            if let Ok(lag) = feed.index_lag(&index).await {
                metrics::gauge!("commerce_search_index_lag_events").set(as_gauge(lag));
            }
            if let Feed::Kafka { relay, .. } = &feed
                && let Ok(lag) = relay.lag().await
            {
                metrics::gauge!("commerce_relay_lag_events", "relay" => "outbox")
                    .set(as_gauge(lag.pending));
            }
            if let Ok(end) = reviews_outbox.end_offset().await {
                let lag = end.saturating_sub(relayed.load(Ordering::Relaxed));
                metrics::gauge!("commerce_relay_lag_events", "relay" => "reviews")
                    .set(as_gauge(lag));
            }
            prometheus().run_upkeep();
            let _ = tokio::time::timeout(Duration::from_secs(1), stopped(stop.clone())).await;
        }
    })
}

/// A count as a gauge value (exact below 2^53, which a lag never reaches).
#[allow(
    clippy::cast_precision_loss,
    reason = "gauges are f64; counts of events stay far below 2^53"
)]
fn as_gauge(n: u64) -> f64 {
    n as f64
}
