//! The stock store port.

use std::fmt::Debug;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use commerce_core::IdempotencyKey;

use crate::{
    Changes, DirectCommit, Hold, HoldId, Result, ShortfallPolicy, StockConfig, StockKey,
    StockLevel, StockLine,
};

/// What a sweep did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[must_use]
pub struct Sweep {
    /// The holds this sweep expired, each exactly once across all sweeps.
    pub expired: Vec<HoldId>,
    /// Events for the stock that came back.
    pub changes: Changes,
}

/// One recorded stock movement (receipt, correction, direct commit, shipment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Movement {
    /// The idempotency key it was applied under.
    pub key: IdempotencyKey,
    /// The stock it moved.
    pub stock: StockKey,
    /// Change of on-hand units.
    pub on_hand_delta: i64,
    /// Change of committed units.
    pub committed_delta: i64,
    /// Why (`receive`, `correction: cycle count`, `commit_direct`, `ship`).
    pub reason: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// Reading stock: levels, availability, holds, movements. What a storefront or a search
/// indexer needs, and nothing that changes stock.
#[async_trait]
pub trait StockLevels: Send + Sync + Debug {
    /// A consistent view of one key's stock at `now`.
    async fn level(&self, key: &StockKey, now: DateTime<Utc>) -> Result<StockLevel>;

    /// Units available at `now` (the hot read path).
    async fn available(&self, key: &StockKey, now: DateTime<Utc>) -> Result<i64>;

    /// A hold by id.
    async fn hold(&self, hold: &HoldId) -> Result<Option<Hold>>;

    /// The movements recorded for `key`, oldest first.
    async fn movements(&self, key: &StockKey) -> Result<Vec<Movement>>;

    /// Every stock key, for reconciliation.
    async fn keys(&self) -> Result<Vec<StockKey>>;
}

/// Stock movements: configuration, receipts, counts, optimistic commits, shipments and units
/// given back to sale. Each is idempotent by its movement key and commits the events it
/// causes with it.
#[async_trait]
pub trait StockMovements: Send + Sync + Debug {
    /// Creates (with nothing on hand) or reconfigures the stock of `key`.
    async fn configure(&self, key: &StockKey, config: StockConfig) -> Result<()>;

    /// Adds received units to on-hand stock.
    async fn receive(
        &self,
        movement: &IdempotencyKey,
        key: &StockKey,
        quantity: i64,
        now: DateTime<Utc>,
    ) -> Result<Changes>;

    /// Sets on-hand stock to a counted figure, recording the difference as a correction.
    async fn set_on_hand(
        &self,
        movement: &IdempotencyKey,
        key: &StockKey,
        counted: i64,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Changes>;

    /// Optimistic mode: decrements stock for an order at placement, all lines or none.
    async fn commit_direct(
        &self,
        movement: &IdempotencyKey,
        lines: &[StockLine],
        policy: ShortfallPolicy,
        now: DateTime<Utc>,
    ) -> Result<DirectCommit>;

    /// Ships committed units: on-hand and committed both go down.
    async fn ship(
        &self,
        movement: &IdempotencyKey,
        lines: &[StockLine],
        now: DateTime<Utc>,
    ) -> Result<Changes>;

    /// Gives committed units back to sale (an order cancelled before it shipped).
    async fn uncommit(
        &self,
        movement: &IdempotencyKey,
        lines: &[StockLine],
        now: DateTime<Utc>,
    ) -> Result<Changes>;
}

/// Holds: stock taken for a time to live, pinned while a charge is in flight, then committed or
/// given back. Idempotent by hold id; [`crate::rules::decide`] is the state machine.
#[async_trait]
pub trait HoldStore: Send + Sync + Debug {
    /// Reserves every line (or none) until `expires_at`.
    async fn reserve(
        &self,
        hold: &HoldId,
        lines: &[StockLine],
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Hold>;

    /// Moves a live hold's expiry to a later `expires_at`.
    async fn extend(
        &self,
        hold: &HoldId,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Hold>;

    /// Pins a live hold: it no longer expires (checkout is charging).
    async fn pin(&self, hold: &HoldId, now: DateTime<Utc>) -> Result<Hold>;

    /// Pins a live hold on behalf of `owner` (a checkout taking over a cart's hold): only one
    /// owner can adopt a hold; adopting again as the same owner is a no-op.
    async fn adopt(&self, hold: &HoldId, owner: &str, now: DateTime<Utc>) -> Result<Hold>;

    /// Releases a hold only if `owner` adopted it (a compensation must never release a hold
    /// another checkout owns); otherwise does nothing.
    async fn release_owned(
        &self,
        hold: &HoldId,
        owner: &str,
        now: DateTime<Utc>,
    ) -> Result<Changes>;

    /// Converts a live or pinned hold into committed stock (the order was placed).
    async fn commit(&self, hold: &HoldId, now: DateTime<Utc>) -> Result<Changes>;

    /// Gives a hold's stock back (checkout failed or was cancelled).
    async fn release(&self, hold: &HoldId, now: DateTime<Utc>) -> Result<Changes>;

    /// Expires one hold if its time has passed; true if this call expired it.
    async fn expire(&self, hold: &HoldId, now: DateTime<Utc>) -> Result<bool>;

    /// Expires up to `batch` holds whose time has passed.
    async fn sweep(&self, now: DateTime<Utc>, batch: usize) -> Result<Sweep>;
}

/// Where stock and holds live: [`StockLevels`], [`StockMovements`] and [`HoldStore`] in one,
/// implemented by every store. A caller that needs less takes the smaller trait
/// (`Arc<dyn StockLevels>` for a storefront's availability reads).
///
/// Contract (checked by `inventory::stock_store_conformance!`):
/// - **Atomic**: every operation applies whole or is refused with an error and changes
///   nothing; the events it causes ([`Changes`]) commit with it, to the store's outbox.
/// - **Conservation**: for every key, `on_hand = available + held + committed + safety_stock`,
///   and `available ≥ −backorder_limit`: without backorders nothing is ever promised beyond
///   stock. The only exceptions are reported ones: a count (`set_on_hand`) below what is
///   already promised, and a `commit_direct` whose shortfall the caller accepted.
/// - **Holds** are idempotent by id: repeating `reserve` with the same lines returns the hold and
///   reserves nothing more; other lines under the same id are `HoldConflict`. `commit`,
///   `release`, `expire` repeated are no-ops; a commit after a release (or the reverse) is
///   `HoldState`.
/// - **All or nothing**: `reserve` sums demand per key and reserves every line or none.
/// - **Lazy expiry**: a `Held` hold past `expires_at` counts as free at once, before any sweep;
///   it can no longer be pinned or committed (`HoldExpired`). Whichever call notices it first
///   (a sweep, `expire`, or an operation refused with `HoldExpired`) finalizes it exactly once,
///   with the events a sweep would commit. A `Pinned` hold never expires.
/// - **Movements** (`receive`, `set_on_hand`, `commit_direct`, `ship`, `uncommit`) are
///   idempotent by key.
///
/// The rules behind each operation are [`crate::rules`]: implementations call them rather than
/// re-derive them.
pub trait StockStore: StockLevels + StockMovements + HoldStore {}

impl<T: StockLevels + StockMovements + HoldStore + ?Sized> StockStore for T {}
