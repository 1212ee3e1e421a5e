//! The in-memory stock store, built for concurrency: sharded registries, one mutex per counter
//! shard, and no lock held across another shard's. The rules (what an operation may do, what
//! it changes, which events it causes) are [`crate::rules`]'; this module is storage and
//! locking.
//!
//! # Layout
//! - `stocks`: 64 registry shards of `StockKey → Arc<Stock>` behind read-write locks; a
//!   `Stock` ([`counters`]) is a meta row and 1 to `shards_max` counter shards.
//! - `holds`: 64 shards of `HoldId → HoldRecord`, each with an expiry index; [`holds`] also
//!   carries out the hold operations.
//! - [`movements`]: receipts, counts, optimistic commits, shipments, units back to sale.
//! - `outbox`: the event log each write's events are committed to, inside the write's
//!   critical section.
//!
//! # Lock order
//! hold shard → stock metas (key order) → counter shards ((key, index) order) → outbox.
//! Reservations never take a meta and hold one counter shard at a time, so a hot SKU's shards
//! work in parallel.

mod counters;
mod holds;
mod movements;

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::PoisonError;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use commerce_core::memory::InMemoryEventLog;
use commerce_core::{DomainEvent, EventEnvelope, EventId, IdempotencyKey};

use self::counters::{Meta, Stock, row};
use self::holds::HoldShard;
use self::sync::{Arc, Mutex, MutexGuard, Ordering, RwLock, lock};
use crate::port::{HoldStore, Movement, StockLevels, StockMovements, Sweep};
use crate::rules;
use crate::{
    Changes, DirectCommit, Error, Hold, HoldId, HoldStatus, Result, ShortfallPolicy, StockConfig,
    StockKey, StockLevel, StockLine,
};

/// The synchronization primitives: loom's under `--cfg inventory_loom`, so its model checker
/// can explore every interleaving of the counter shards, the deficit and the hold registry
/// (`tests/loom.rs`); the standard library's otherwise.
mod sync {
    #[cfg(inventory_loom)]
    pub(super) use loom::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
    #[cfg(inventory_loom)]
    pub(super) use loom::sync::{Arc, Mutex, MutexGuard, RwLock};
    #[cfg(not(inventory_loom))]
    pub(super) use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
    #[cfg(not(inventory_loom))]
    pub(super) use std::sync::{Arc, Mutex, MutexGuard, RwLock};

    /// Locks `m`, taking over the data if a thread panicked holding it (every critical section
    /// leaves the counters consistent at each step).
    pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
        m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(not(inventory_loom))]
const REGISTRY_SHARDS: usize = 64;
#[cfg(inventory_loom)]
const REGISTRY_SHARDS: usize = 1;
#[cfg(not(inventory_loom))]
const HOLD_SHARDS: usize = 64;
#[cfg(inventory_loom)]
const HOLD_SHARDS: usize = 2;

/// One shard of the stock registry.
type Registry = RwLock<HashMap<StockKey, Arc<Stock>>>;

fn shard_of(h: &impl Hash, n: usize) -> usize {
    let mut hasher = DefaultHasher::new();
    h.hash(&mut hasher);
    // The modulo keeps the value below `n`, so the cast back cannot truncate.
    usize::try_from(hasher.finish() % n as u64).unwrap_or(0)
}

#[derive(Debug, Default)]
struct Movements {
    applied: HashMap<IdempotencyKey, String>,
    log: Vec<Movement>,
}

/// A [`crate::StockStore`] in memory, safe and fast under many threads, committing each write's
/// events to its outbox (an [`InMemoryEventLog`]) inside the write's critical section.
///
/// ```
/// use chrono::TimeDelta;
/// use commerce_core::{IdempotencyKey, LocationId, Sku, testkit::t0};
/// use inventory::{Error, HoldId, HoldStore, InMemoryStockStore, StockConfig, StockKey, StockLevels, StockLine, StockMovements};
/// # futures::executor::block_on(async {
/// let store = InMemoryStockStore::new();
/// let key = StockKey::new(Sku::new("TEE")?, LocationId::new("wh-1")?);
/// store.configure(&key, StockConfig::default()).await?;
/// let _ = store.receive(&IdempotencyKey::new("po-1")?, &key, 1, t0()).await?;
///
/// let line = StockLine { key: key.clone(), quantity: 1 };
/// let expires = t0() + TimeDelta::minutes(15);
/// store.reserve(&HoldId::new("cart-a")?, &[line.clone()], expires, t0()).await?;
/// let second = store.reserve(&HoldId::new("cart-b")?, &[line], expires, t0()).await;
/// assert!(matches!(second, Err(Error::InsufficientStock { .. }))); // the last unit is taken
///
/// // After the hold's time, the unit is free again, before any sweeper runs.
/// assert_eq!(store.available(&key, expires).await?, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
pub struct InMemoryStockStore {
    stocks: Box<[Registry]>,
    holds: Box<[Mutex<HoldShard>]>,
    movements: Mutex<Movements>,
    outbox: std::sync::Arc<InMemoryEventLog>,
}

impl Default for InMemoryStockStore {
    fn default() -> Self {
        InMemoryStockStore::with_outbox(std::sync::Arc::default())
    }
}

/// Where a write's events come from, for their ids: a retried write names the same events.
#[derive(Clone, Copy)]
enum Origin<'a> {
    /// A stock movement, by its idempotency key.
    Movement(&'a IdempotencyKey),
    /// A hold closing (committed, released, expired) at a moment of its life.
    Hold(&'a HoldId, HoldStatus, DateTime<Utc>),
}

impl InMemoryStockStore {
    /// An empty store with an outbox of its own.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store committing its events to `outbox` (share one log between the stores of a
    /// deployment).
    pub fn with_outbox(outbox: std::sync::Arc<InMemoryEventLog>) -> Self {
        InMemoryStockStore {
            stocks: (0..REGISTRY_SHARDS)
                .map(|_| RwLock::new(HashMap::new()))
                .collect(),
            holds: (0..HOLD_SHARDS)
                .map(|_| Mutex::new(HoldShard::default()))
                .collect(),
            movements: Mutex::new(Movements::default()),
            outbox,
        }
    }

    /// The log this store commits its events to.
    pub fn outbox(&self) -> &std::sync::Arc<InMemoryEventLog> {
        &self.outbox
    }

    fn stock(&self, key: &StockKey) -> Result<Arc<Stock>> {
        let shard = &self.stocks[shard_of(key, REGISTRY_SHARDS)];
        shard
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
            .ok_or_else(|| Error::UnknownStock(key.clone()))
    }

    fn hold_shard(&self, id: &HoldId) -> MutexGuard<'_, HoldShard> {
        lock(&self.holds[shard_of(id, HOLD_SHARDS)])
    }

    /// Commits `events` to the outbox under ids derived from their origin. Called while the
    /// write's locks are held, so no reader sees the write without its events.
    fn commit_events(&self, origin: Origin<'_>, now: DateTime<Utc>, events: &[DomainEvent]) {
        if events.is_empty() {
            return;
        }
        let (scope, purpose) = match origin {
            Origin::Movement(key) => (key.as_str().to_owned(), "stock".to_owned()),
            Origin::Hold(id, status, at) => (
                id.as_str().to_owned(),
                format!("{}.{}", status.as_str(), at.timestamp_millis()),
            ),
        };
        let envelopes: Vec<EventEnvelope> = events
            .iter()
            .enumerate()
            .map(|(i, e)| {
                // Hold ids and movement keys use the characters event ids allow.
                let id = EventId::derive(&scope, &format!("{purpose}:{i}"))
                    .unwrap_or_else(|_| unreachable!("derived from a valid key"));
                EventEnvelope::new(id, now, e.clone())
            })
            .collect();
        let _ = self.outbox.append(&envelopes);
    }

    /// The events of a change of `stock` from `available_before` to its state now, remembering
    /// whether it is sold out (so the next returned units check for `BackInStock`).
    fn changed(
        stock: &Stock,
        meta: &Meta,
        available_before: i64,
        now: DateTime<Utc>,
    ) -> Vec<DomainEvent> {
        let after = row(stock, meta, now);
        stock
            .sold_out
            .store(after.available() <= 0, Ordering::Release);
        rules::events(&stock.key, available_before, &after)
    }

    fn level_sync(&self, key: &StockKey, now: DateTime<Utc>) -> Result<StockLevel> {
        let stock = self.stock(key)?;
        let meta = lock(&stock.meta);
        Ok(row(&stock, &meta, now).level(stock.active.load(Ordering::Acquire)))
    }

    fn available_sync(&self, key: &StockKey, now: DateTime<Utc>) -> Result<i64> {
        let registry = self.stocks[shard_of(key, REGISTRY_SHARDS)]
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let stock = registry
            .get(key)
            .ok_or_else(|| Error::UnknownStock(key.clone()))?;
        // The backorder allowance only changes under reconfiguration; a racing read may see the
        // old or the new one, either of which was true at some instant.
        Ok(stock.available(now, stock.backorder.load(Ordering::Acquire)))
    }

    fn keys_sync(&self) -> Vec<StockKey> {
        let mut keys: Vec<StockKey> = self
            .stocks
            .iter()
            .flat_map(|s| {
                s.read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
            })
            .collect();
        keys.sort();
        keys
    }
}

#[async_trait]
impl StockLevels for InMemoryStockStore {
    async fn level(&self, key: &StockKey, now: DateTime<Utc>) -> Result<StockLevel> {
        self.level_sync(key, now)
    }
    async fn available(&self, key: &StockKey, now: DateTime<Utc>) -> Result<i64> {
        self.available_sync(key, now)
    }
    async fn hold(&self, hold: &HoldId) -> Result<Option<Hold>> {
        Ok(self.hold_shard(hold).holds.get(hold).map(|r| r.view(hold)))
    }
    async fn movements(&self, key: &StockKey) -> Result<Vec<Movement>> {
        Ok(lock(&self.movements)
            .log
            .iter()
            .filter(|m| m.stock == *key)
            .cloned()
            .collect())
    }
    async fn keys(&self) -> Result<Vec<StockKey>> {
        Ok(self.keys_sync())
    }
}

#[async_trait]
impl StockMovements for InMemoryStockStore {
    async fn configure(&self, key: &StockKey, config: StockConfig) -> Result<()> {
        self.configure_sync(key, config)
    }
    async fn receive(
        &self,
        movement: &IdempotencyKey,
        key: &StockKey,
        quantity: i64,
        now: DateTime<Utc>,
    ) -> Result<Changes> {
        let delta = rules::receive(quantity)?;
        self.move_on_hand(
            movement,
            key,
            format!("receive|{key}|{quantity}"),
            "receive".into(),
            now,
            |_| Ok(delta),
        )
    }
    async fn set_on_hand(
        &self,
        movement: &IdempotencyKey,
        key: &StockKey,
        counted: i64,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Changes> {
        // Bounds first, so a refused count never claims its movement key.
        let _ = rules::set_on_hand(&rules::StockRow::new(StockConfig::default()), counted)?;
        self.move_on_hand(
            movement,
            key,
            format!("set_on_hand|{key}|{counted}|{reason}"),
            format!("correction: {reason}"),
            now,
            |row| rules::set_on_hand(row, counted),
        )
    }
    async fn commit_direct(
        &self,
        movement: &IdempotencyKey,
        lines: &[StockLine],
        policy: ShortfallPolicy,
        now: DateTime<Utc>,
    ) -> Result<DirectCommit> {
        self.commit_direct_sync(movement, lines, policy, now)
    }
    async fn ship(
        &self,
        movement: &IdempotencyKey,
        lines: &[StockLine],
        now: DateTime<Utc>,
    ) -> Result<Changes> {
        self.move_committed(movement, lines, "ship", now, rules::ship)
    }
    async fn uncommit(
        &self,
        movement: &IdempotencyKey,
        lines: &[StockLine],
        now: DateTime<Utc>,
    ) -> Result<Changes> {
        self.move_committed(movement, lines, "uncommit", now, rules::uncommit)
    }
}

#[async_trait]
impl HoldStore for InMemoryStockStore {
    async fn reserve(
        &self,
        hold: &HoldId,
        lines: &[StockLine],
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Hold> {
        self.reserve_sync(hold, lines, expires_at, now)
    }
    async fn extend(
        &self,
        hold: &HoldId,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Hold> {
        self.extend_sync(hold, expires_at, now)
    }
    async fn pin(&self, hold: &HoldId, now: DateTime<Utc>) -> Result<Hold> {
        self.pin_sync(hold, now)
    }
    async fn adopt(&self, hold: &HoldId, owner: &str, now: DateTime<Utc>) -> Result<Hold> {
        self.adopt_sync(hold, owner, now)
    }
    async fn release_owned(
        &self,
        hold: &HoldId,
        owner: &str,
        now: DateTime<Utc>,
    ) -> Result<Changes> {
        self.release_owned_sync(hold, owner, now)
    }
    async fn commit(&self, hold: &HoldId, now: DateTime<Utc>) -> Result<Changes> {
        self.commit_sync(hold, now)
    }
    async fn release(&self, hold: &HoldId, now: DateTime<Utc>) -> Result<Changes> {
        self.release_sync(hold, now)
    }
    async fn expire(&self, hold: &HoldId, now: DateTime<Utc>) -> Result<bool> {
        self.expire_sync(hold, now)
    }
    async fn sweep(&self, now: DateTime<Utc>, batch: usize) -> Result<Sweep> {
        Ok(self.sweep_sync(now, batch))
    }
}
