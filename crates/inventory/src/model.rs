//! Inventory vocabulary: stock keys, hold ids and lines, per-SKU configuration, level views and
//! the outcomes operations report.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use commerce_core::{DomainEvent, LocationId, Sku};
use serde::{Deserialize, Serialize};

use crate::limits::{HOLD_LINES_MAX, QUANTITY_MAX, SHARDS_MAX};
use crate::{Error, Result};

/// A SKU at a stock location: the unit stock is counted in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StockKey {
    /// The SKU.
    pub sku: Sku,
    /// The location.
    pub location: LocationId,
}

impl StockKey {
    /// A key.
    pub fn new(sku: Sku, location: LocationId) -> StockKey {
        StockKey { sku, location }
    }
}

impl fmt::Display for StockKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.sku, self.location)
    }
}

/// A hold's id, chosen by the caller (checkout derives it from the cart or order), so that a
/// retried call names the same hold: 1 to 255 bytes of `[A-Za-z0-9._:-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HoldId(Arc<str>);

impl HoldId {
    /// Validates an id.
    ///
    /// # Errors
    /// [`Error::Invalid`].
    pub fn new(id: impl AsRef<str>) -> Result<HoldId> {
        let id = id.as_ref();
        let ok = !id.is_empty()
            && id.len() <= commerce_core::limits::KEY_LEN_MAX
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
        if ok {
            Ok(HoldId(id.into()))
        } else {
            Err(Error::invalid("hold_id", "1 to 255 of [A-Za-z0-9._:-]"))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for HoldId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for HoldId {
    type Error = Error;
    fn try_from(s: String) -> Result<HoldId> {
        HoldId::new(s)
    }
}

impl From<HoldId> for String {
    fn from(h: HoldId) -> String {
        h.0.to_string()
    }
}

/// Units of one SKU at one location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockLine {
    /// Where from.
    pub key: StockKey,
    /// How many, at least 1.
    pub quantity: i64,
}

/// Sums demand per stock key, refusing bad quantities: the basis of every all-or-nothing
/// operation (two lines of one SKU are checked together, never each alone).
///
/// # Errors
/// [`Error::Invalid`] for no lines, too many, a quantity outside `1..=QUANTITY_MAX`.
pub fn demand(lines: &[StockLine]) -> Result<Vec<(StockKey, i64)>> {
    if lines.is_empty() || lines.len() > HOLD_LINES_MAX {
        return Err(Error::invalid(
            "lines",
            format!("1 to {HOLD_LINES_MAX} lines"),
        ));
    }
    let mut summed: std::collections::BTreeMap<&StockKey, i64> = std::collections::BTreeMap::new();
    for line in lines {
        if line.quantity < 1 || line.quantity > QUANTITY_MAX {
            return Err(Error::invalid(
                "quantity",
                format!("{} is outside 1..={QUANTITY_MAX}", line.quantity),
            ));
        }
        let total = summed.entry(&line.key).or_insert(0);
        *total += line.quantity;
        if *total > QUANTITY_MAX {
            return Err(Error::invalid(
                "quantity",
                format!("{} units of {} in one request", total, line.key),
            ));
        }
    }
    Ok(summed.into_iter().map(|(k, q)| (k.clone(), q)).collect())
}

/// How a SKU's stock is promised to shoppers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StockMode {
    /// Hold stock at add-to-cart or checkout start, for a time to live; commit it when the order
    /// is placed. No oversell, at the cost of stock parked in abandoned checkouts.
    #[default]
    Reservation,
    /// Check at checkout and decrement when the order is placed
    /// ([`crate::StockMovements::commit_direct`]). Between the check and the decrement another
    /// order may take the stock: a brief over-promise, reported as a [`Shortfall`].
    Optimistic,
}

/// A SKU's stock configuration at one location.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockConfig {
    /// Units kept back from sale (damaged-in-transit margin, display stock).
    pub safety_stock: i64,
    /// Units that may be sold beyond stock (backorders); 0 disallows backorders.
    pub backorder_limit: i64,
    /// Reservation or optimistic.
    pub mode: StockMode,
    /// Counter shards in use from the start (1 for an ordinary SKU).
    pub shards: usize,
    /// Shards the SKU may grow to when contention is seen (≥ `shards`).
    pub shards_max: usize,
}

impl Default for StockConfig {
    /// No safety stock, no backorders, reservation mode, one shard that may grow to 8.
    fn default() -> Self {
        StockConfig {
            safety_stock: 0,
            backorder_limit: 0,
            mode: StockMode::Reservation,
            shards: 1,
            shards_max: 8,
        }
    }
}

impl StockConfig {
    /// A configuration for a SKU known to be hot: `n` shards from the start.
    pub fn sharded(n: usize) -> StockConfig {
        StockConfig {
            shards: n,
            shards_max: n,
            ..StockConfig::default()
        }
    }

    /// Checks the bounds.
    ///
    /// # Errors
    /// [`Error::Invalid`].
    pub fn validate(&self) -> Result<()> {
        if !(0..=QUANTITY_MAX).contains(&self.safety_stock) {
            return Err(Error::invalid("safety_stock", "outside 0..=QUANTITY_MAX"));
        }
        if !(0..=QUANTITY_MAX).contains(&self.backorder_limit) {
            return Err(Error::invalid(
                "backorder_limit",
                "outside 0..=QUANTITY_MAX",
            ));
        }
        if self.shards == 0 || self.shards > self.shards_max || self.shards_max > SHARDS_MAX {
            return Err(Error::invalid(
                "shards",
                format!("need 1 <= shards <= shards_max <= {SHARDS_MAX}"),
            ));
        }
        Ok(())
    }
}

/// A consistent view of one SKU's stock at one location.
///
/// `on_hand = available + held + committed + safety_stock` at every instant, and
/// `available ≥ −backorder_limit` (it goes negative only into the backorder allowance).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockLevel {
    /// Units physically there, per the system.
    pub on_hand: i64,
    /// Units held by live holds (expired holds already count as free).
    pub held: i64,
    /// Units promised to placed orders, not yet shipped.
    pub committed: i64,
    /// Units kept back.
    pub safety_stock: i64,
    /// Backorder allowance.
    pub backorder_limit: i64,
    /// Units that can be promised now: `on_hand − held − committed − safety_stock`.
    pub available: i64,
    /// Counter shards in use.
    pub shards: usize,
}

/// Where a hold is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldStatus {
    /// Holding stock until `expires_at`.
    Held,
    /// Holding stock with no expiry: a checkout passed its point of no return (the charge is
    /// in flight), so no sweeper may release it.
    Pinned,
    /// Converted into committed stock (the order was placed). Terminal.
    Committed,
    /// Given back (checkout failed or was cancelled). Terminal.
    Released,
    /// Timed out; its stock went back. Terminal.
    Expired,
}

impl HoldStatus {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            HoldStatus::Held => "held",
            HoldStatus::Pinned => "pinned",
            HoldStatus::Committed => "committed",
            HoldStatus::Released => "released",
            HoldStatus::Expired => "expired",
        }
    }
}

/// A hold as the store has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    /// The id.
    pub id: HoldId,
    /// Demand per stock key (summed).
    pub lines: Vec<StockLine>,
    /// Status.
    pub status: HoldStatus,
    /// When it expires while `Held`.
    pub expires_at: DateTime<Utc>,
    /// The checkout that adopted it ([`crate::HoldStore::adopt`]), if any.
    #[serde(default)]
    pub owner: Option<String>,
}

/// The result of a stock-changing operation: what changed, as events to publish.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[must_use]
pub struct Changes {
    /// `InventoryChanged` for every touched key, and `BackInStock` for every key whose
    /// availability went from zero or less to positive.
    pub events: Vec<DomainEvent>,
}

/// A direct (optimistic) commit that took more than was available.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shortfall {
    /// The key.
    pub key: StockKey,
    /// Units committed beyond availability (the over-promise).
    pub units: i64,
}

/// What to do when an optimistic commit finds less stock than ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShortfallPolicy {
    /// Refuse the whole commit with [`Error::InsufficientStock`].
    Refuse,
    /// Commit anyway (the order is already paid) and report each [`Shortfall`].
    Accept,
}

/// The outcome of [`crate::StockMovements::commit_direct`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[must_use]
pub struct DirectCommit {
    /// Over-promises, reported, never silent.
    pub shortfalls: Vec<Shortfall>,
    /// Events to publish.
    pub changes: Changes,
    /// False if this key had been applied before (nothing changed this time).
    pub applied: bool,
}
