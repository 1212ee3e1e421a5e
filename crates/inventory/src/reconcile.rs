//! Reconciliation: physical counts against the system's stock.

use chrono::{DateTime, Utc};
use commerce_core::IdempotencyKey;
use serde::{Deserialize, Serialize};

use crate::limits::DRIFT_ALERT_PERCENT_DEFAULT;
use crate::{Changes, Result, StockKey, StockStore};

/// A physical count of one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhysicalCount {
    /// What was counted.
    pub key: StockKey,
    /// Units found.
    pub counted: i64,
}

/// How to reconcile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconcileConfig {
    /// Alert when |drift| exceeds this many basis points of the system's on-hand count
    /// (100 = 1 %). A drift on a key the system thinks is empty always alerts.
    pub alert_threshold_bp: i64,
    /// Apply each drift as a correction (a `set_on_hand` movement); otherwise only report.
    pub apply: bool,
}

impl Default for ReconcileConfig {
    /// Alert above 1 %, apply corrections.
    fn default() -> Self {
        ReconcileConfig {
            alert_threshold_bp: DRIFT_ALERT_PERCENT_DEFAULT * 100,
            apply: true,
        }
    }
}

/// One key's drift.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drift {
    /// The key.
    pub key: StockKey,
    /// On hand per the system.
    pub system: i64,
    /// On hand per the count.
    pub counted: i64,
    /// `counted − system`.
    pub drift: i64,
    /// Whether it crossed the alert threshold.
    pub alert: bool,
}

/// What a reconciliation found and did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reconciliation {
    /// Keys whose count differs from the system (matching keys are not listed).
    pub drifts: Vec<Drift>,
    /// Events from the corrections applied.
    pub changes: Changes,
}

impl Reconciliation {
    /// The drifts that crossed the alert threshold: the alerts to raise.
    pub fn alerts(&self) -> impl Iterator<Item = &Drift> {
        self.drifts.iter().filter(|d| d.alert)
    }
}

/// Compares `counts` with the store, reports per-key drift, flags drift above the threshold,
/// and (with `config.apply`) records each drift as a correction movement keyed
/// `{run}:{key}`, so re-running the same reconciliation run applies nothing twice.
///
/// # Errors
/// [`crate::Error::UnknownStock`] for a counted key the store does not know (nothing after it
/// is applied; corrections before it stay, each idempotent), and the store's errors.
pub async fn reconcile(
    store: &dyn StockStore,
    run: &str,
    counts: &[PhysicalCount],
    config: ReconcileConfig,
    now: DateTime<Utc>,
) -> Result<Reconciliation> {
    let mut out = Reconciliation::default();
    for count in counts {
        let level = store.level(&count.key, now).await?;
        let drift = count.counted - level.on_hand;
        if drift == 0 {
            continue;
        }
        let alert =
            level.on_hand == 0 || drift.abs() * 10_000 > config.alert_threshold_bp * level.on_hand;
        if config.apply {
            let movement =
                IdempotencyKey::new(format!("{run}:{}:{}", count.key.sku, count.key.location))?;
            let changes = store
                .set_on_hand(&movement, &count.key, count.counted, "cycle count", now)
                .await?;
            out.changes.events.extend(changes.events);
        }
        out.drifts.push(Drift {
            key: count.key.clone(),
            system: level.on_hand,
            counted: count.counted,
            drift,
            alert,
        });
    }
    Ok(out)
}
