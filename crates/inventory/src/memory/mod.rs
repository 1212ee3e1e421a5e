//! The in-memory stock store, built for concurrency: sharded registries, one mutex per counter
//! shard, and no lock held across another shard's. The rules (what an operation may do, what
//! it changes, which events it causes) are [`crate::rules`]'; this module is storage and
//! locking.
//!
//! # Layout
//! - `stocks`: 64 registry shards of `StockKey → Arc<Stock>` behind read-write locks; a
//!   `Stock` ([`counters`]) is a meta row and 1 to `shards_max` counter shards.
//! - `holds`: 64 shards of `HoldId → HoldRecord` ([`holds`]), each with an expiry index.
//! - `outbox`: the event log each write's events are committed to, inside the write's
//!   critical section.
//!
//! # Lock order
//! hold shard → stock metas (key order) → counter shards ((key, index) order) → outbox.
//! Reservations never take a meta and hold one counter shard at a time, so a hot SKU's shards
//! work in parallel.

mod counters;
mod holds;

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::PoisonError;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use commerce_core::memory::InMemoryEventLog;
use commerce_core::{DomainEvent, EventEnvelope, EventId, IdempotencyKey};

use self::counters::{Meta, PartState, Stock, detach, lock_parts, remove_expiring, row, stocks_of};
use self::holds::{HoldRecord, HoldShard};
use self::sync::{Arc, Mutex, MutexGuard, Ordering, RwLock, lock};
use crate::limits::SWEEP_BATCH_MAX;
use crate::port::{HoldStore, Movement, StockLevels, StockMovements, Sweep};
use crate::rules::{self, HoldAction, HoldOp};
use crate::{
    Changes, DirectCommit, Error, Hold, HoldId, HoldStatus, Result, Shortfall, ShortfallPolicy,
    StockConfig, StockKey, StockLevel, StockLine, demand,
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

    /// Claims a movement key in one step: true if it was applied (or is being applied) before
    /// with the same fingerprint, false if this call now owns it. A caller that then fails calls
    /// [`InMemoryStockStore::abort_movement`], so a concurrent duplicate never applies twice.
    fn movement_seen(&self, key: &IdempotencyKey, fingerprint: &str) -> Result<bool> {
        let mut m = lock(&self.movements);
        match m.applied.get(key) {
            Some(f) if f == fingerprint => Ok(true),
            Some(_) => Err(Error::invalid(
                "movement",
                format!("key {key} was used for another movement"),
            )),
            None => {
                m.applied.insert(key.clone(), fingerprint.to_owned());
                Ok(false)
            }
        }
    }

    /// Sums a multi-line movement's demand, finds its stocks (in key order, the lock order)
    /// and claims its key: `None` if the key was applied before with the same lines.
    #[allow(
        clippy::type_complexity,
        reason = "the demand and its stocks, side by side"
    )]
    fn claim_lines(
        &self,
        movement: &IdempotencyKey,
        lines: &[StockLine],
        op: &str,
    ) -> Result<Option<(Vec<(StockKey, i64)>, Vec<Arc<Stock>>)>> {
        let demand = demand(lines)?;
        let stocks = demand
            .iter()
            .map(|(k, _)| self.stock(k))
            .collect::<Result<Vec<_>>>()?;
        if self.movement_seen(movement, &format!("{op}|{demand:?}"))? {
            return Ok(None);
        }
        Ok(Some((demand, stocks)))
    }

    /// Forgets a claimed movement key whose movement was refused.
    fn abort_movement(&self, key: &IdempotencyKey) {
        lock(&self.movements).applied.remove(key);
    }

    fn record(&self, entries: Vec<Movement>) {
        lock(&self.movements).log.extend(entries);
    }

    /// Applies a movement that changes on hand only (a receipt, a count) to one key.
    fn move_on_hand(
        &self,
        movement: &IdempotencyKey,
        key: &StockKey,
        fingerprint: String,
        reason: String,
        now: DateTime<Utc>,
        delta: impl FnOnce(&rules::StockRow) -> Result<rules::Delta>,
    ) -> Result<Changes> {
        let stock = self.stock(key)?;
        if self.movement_seen(movement, &fingerprint)? {
            return Ok(Changes::default());
        }
        let mut meta = lock(&stock.meta);
        let before = row(&stock, &meta, now);
        let delta = match delta(&before) {
            Ok(d) => d,
            Err(e) => {
                self.abort_movement(movement);
                return Err(e);
            }
        };
        meta.on_hand += delta.on_hand;
        stock.adjust_free(delta.free());
        let events = Self::changed(&stock, &meta, before.available(), now);
        self.record(vec![Movement {
            key: movement.clone(),
            stock: key.clone(),
            on_hand_delta: delta.on_hand,
            committed_delta: 0,
            reason,
            at: now,
        }]);
        self.commit_events(Origin::Movement(movement), now, &events);
        Ok(Changes { events })
    }

    fn configure_sync(&self, key: &StockKey, config: StockConfig) -> Result<()> {
        config.validate()?;
        let registry = &self.stocks[shard_of(key, REGISTRY_SHARDS)];
        let mut map = registry.write().unwrap_or_else(PoisonError::into_inner);
        match map.get(key) {
            None => {
                map.insert(key.clone(), Arc::new(Stock::new(key.clone(), config)));
            }
            Some(stock) => {
                let mut meta = lock(&stock.meta);
                if config.shards_max != meta.config.shards_max {
                    return Err(Error::invalid(
                        "shards_max",
                        "is fixed once the stock exists",
                    ));
                }
                let delta = (config.backorder_limit - meta.config.backorder_limit)
                    - (config.safety_stock - meta.config.safety_stock);
                meta.config = config;
                stock
                    .backorder
                    .store(config.backorder_limit, Ordering::Release);
                if config.shards > stock.active.load(Ordering::Acquire) {
                    stock.promote();
                }
                stock.adjust_free(delta);
            }
        }
        Ok(())
    }

    fn reserve_sync(
        &self,
        hold: &HoldId,
        lines: &[StockLine],
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Hold> {
        let demand = demand(lines)?;
        if expires_at <= now {
            return Err(Error::invalid("expires_at", "must be after now"));
        }
        let mut holds = self.hold_shard(hold);
        if let Some(existing) = holds.holds.get(hold) {
            let same_lines = existing
                .lines
                .iter()
                .map(|l| (&l.key, l.quantity))
                .eq(demand.iter().map(|(k, q)| (k, *q)));
            let view = existing.view(hold);
            let _unchanged = rules::decide(&view, HoldOp::Reserve { same_lines }, now)?;
            return Ok(view);
        }
        let stocks = demand
            .iter()
            .map(|(k, _)| self.stock(k))
            .collect::<Result<Vec<_>>>()?;
        let start = shard_of(hold, usize::MAX);
        let mut taken: Vec<counters::Part> = Vec::new();
        for ((key, quantity), stock) in demand.iter().zip(&stocks) {
            let first = start % stock.active.load(Ordering::Acquire).max(1);
            match stock.take(hold, *quantity, expires_at, now, first) {
                Ok(parts) => taken.extend(parts.into_iter().map(|(shard, q)| counters::Part {
                    stock: stock.clone(),
                    shard,
                    quantity: q,
                })),
                Err(sellable) => {
                    for part in &taken {
                        part.stock
                            .give_back(hold, expires_at, &[(part.shard, part.quantity)]);
                    }
                    stock.sold_out.store(true, Ordering::Release);
                    let config = lock(&stock.meta).config;
                    return Err(rules::insufficient(key, *quantity, sellable, &config));
                }
            }
        }
        let lines: Vec<StockLine> = demand
            .into_iter()
            .map(|(key, quantity)| StockLine { key, quantity })
            .collect();
        holds.expiry.insert((expires_at, hold.clone()));
        let record = HoldRecord {
            lines,
            parts: taken,
            status: HoldStatus::Held,
            expires_at,
            owner: None,
        };
        let view = record.view(hold);
        holds.holds.insert(hold.clone(), record);
        Ok(view)
    }

    /// Finalizes a hold's parts: `to_committed` moves held units to committed
    /// ([`rules::commit_held`]), otherwise they go back to free ([`rules::release_held`]). Every
    /// involved shard (and for a commit every involved meta) is locked for the whole step, so
    /// the check and the change are one atomic step. Returns `None`, changing nothing, if
    /// `to_committed` and a part's units were already reclaimed (the hold expired under a later
    /// clock); otherwise the events.
    ///
    /// Giving units back takes no meta lock and builds no events unless the stock was sold out
    /// ([`rules::hold_return_emits`]), so releases and expiries on a hot SKU stay as parallel
    /// as its shards.
    fn finish(
        record: &HoldRecord,
        id: &HoldId,
        to_committed: bool,
        now: DateTime<Utc>,
    ) -> Option<Vec<DomainEvent>> {
        let pinned = record.status == HoldStatus::Pinned;
        let stocks = stocks_of(&record.parts);
        let mut events = Vec::new();
        if !to_committed {
            {
                let mut shards = lock_parts(&record.parts);
                for (s, part) in &mut shards {
                    if let PartState::Held = detach(s, id, record.expires_at, part.quantity, pinned)
                    {
                        s.held -= part.quantity;
                        s.credit(part.quantity, &part.stock.deficit);
                    }
                }
            }
            // Sold out before: this return may bring it back (`hold_return_emits(0)`).
            for stock in stocks
                .iter()
                .filter(|s| s.sold_out.swap(false, Ordering::AcqRel))
            {
                let meta = lock(&stock.meta);
                events.extend(Self::changed(stock, &meta, 0, now));
            }
            return Some(events);
        }
        let mut metas: Vec<MutexGuard<'_, Meta>> = stocks.iter().map(|s| lock(&s.meta)).collect();
        let before: Vec<i64> = stocks
            .iter()
            .zip(&metas)
            .map(|(s, m)| row(s, m, now).available())
            .collect();
        {
            let mut shards = lock_parts(&record.parts);
            if !pinned && shards.iter().any(|(s, _)| s.reclaimed.contains_key(id)) {
                return None;
            }
            for (s, part) in &mut shards {
                if let PartState::Held = detach(s, id, record.expires_at, part.quantity, pinned) {
                    let delta = rules::commit_held(part.quantity);
                    s.held += delta.held;
                    let k = stocks
                        .iter()
                        .position(|x| Arc::ptr_eq(x, &part.stock))
                        .unwrap_or(0);
                    metas[k].committed += delta.committed;
                }
            }
        }
        for ((stock, meta), before) in stocks.iter().zip(&metas).zip(before) {
            events.extend(Self::changed(stock, meta, before, now));
        }
        Some(events)
    }

    /// Expires `id` if it is `Held` and due at `now`: its units come back and its events are
    /// committed, whichever path noticed (the sweep, an `expire`, or an operation that found
    /// the hold past its time). It finished when it expired, even if noticed later. Returns
    /// the events, or `None` if it was not due.
    fn expire_locked(
        &self,
        shard: &mut HoldShard,
        id: &HoldId,
        now: DateTime<Utc>,
    ) -> Option<Vec<DomainEvent>> {
        let record = shard.holds.get(id)?;
        if record.status != HoldStatus::Held || record.expires_at > now {
            return None;
        }
        let at = record.expires_at;
        let events = Self::finish(record, id, false, now).unwrap_or_default();
        shard.close(id, HoldStatus::Expired, at);
        self.commit_events(Origin::Hold(id, HoldStatus::Expired, at), now, &events);
        Some(events)
    }

    /// Expires a hold whose parts a reservation under a later clock already took back, and
    /// refuses the operation that found it so.
    fn expired_under_a_later_clock(
        &self,
        shard: &mut HoldShard,
        id: &HoldId,
        now: DateTime<Utc>,
    ) -> Error {
        // Expire it at its own time (it is past that for the reservation that took it back).
        let at = shard.holds.get(id).map_or(now, |r| r.expires_at.max(now));
        let _ = self.expire_locked(shard, id, at);
        Error::HoldExpired(id.clone())
    }

    /// Decides `op` on `id` by the rules: `Ok(None)` to go on, `Ok(Some(view))` for an
    /// unchanged hold, an error (after expiring a hold found past its time) otherwise.
    fn decide(
        &self,
        shard: &mut HoldShard,
        id: &HoldId,
        op: HoldOp<'_>,
        now: DateTime<Utc>,
    ) -> Result<Option<Hold>> {
        let view = shard
            .holds
            .get(id)
            .ok_or_else(|| Error::UnknownHold(id.clone()))?
            .view(id);
        match rules::decide(&view, op, now)? {
            HoldAction::Apply => Ok(None),
            HoldAction::Unchanged => Ok(Some(view)),
            HoldAction::ExpireThenRefuse => {
                let _ = self.expire_locked(shard, id, now);
                Err(Error::HoldExpired(id.clone()))
            }
        }
    }

    /// Pins a hold the rules let pin: its parts leave the expiry bookkeeping.
    fn pin_locked(&self, shard: &mut HoldShard, hold: &HoldId, now: DateTime<Utc>) -> Result<Hold> {
        let at = shard.holds[hold].expires_at;
        {
            let record = &shard.holds[hold];
            let mut parts = lock_parts(&record.parts);
            if parts.iter().any(|(s, _)| s.reclaimed.contains_key(hold)) {
                drop(parts);
                return Err(self.expired_under_a_later_clock(shard, hold, now));
            }
            for (s, p) in &mut parts {
                remove_expiring(s, at, hold, p.quantity);
            }
        }
        let record = shard
            .holds
            .get_mut(hold)
            .ok_or_else(|| Error::UnknownHold(hold.clone()))?;
        record.status = HoldStatus::Pinned;
        let view = record.view(hold);
        shard.expiry.remove(&(at, hold.clone()));
        Ok(view)
    }

    fn extend_sync(
        &self,
        hold: &HoldId,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Hold> {
        let mut shard = self.hold_shard(hold);
        if let Some(view) = self.decide(&mut shard, hold, HoldOp::Extend { expires_at }, now)? {
            return Ok(view);
        }
        let old = shard.holds[hold].expires_at;
        {
            let record = &shard.holds[hold];
            let mut parts = lock_parts(&record.parts);
            if parts.iter().any(|(s, _)| s.reclaimed.contains_key(hold)) {
                drop(parts);
                return Err(self.expired_under_a_later_clock(&mut shard, hold, now));
            }
            for (s, p) in &mut parts {
                remove_expiring(s, old, hold, p.quantity);
                *s.expiring.entry((expires_at, hold.clone())).or_insert(0) += p.quantity;
            }
        }
        let record = shard
            .holds
            .get_mut(hold)
            .ok_or_else(|| Error::UnknownHold(hold.clone()))?;
        record.expires_at = expires_at;
        let view = record.view(hold);
        shard.expiry.remove(&(old, hold.clone()));
        shard.expiry.insert((expires_at, hold.clone()));
        Ok(view)
    }

    fn pin_sync(&self, hold: &HoldId, now: DateTime<Utc>) -> Result<Hold> {
        let mut shard = self.hold_shard(hold);
        if let Some(view) = self.decide(&mut shard, hold, HoldOp::Pin, now)? {
            return Ok(view);
        }
        self.pin_locked(&mut shard, hold, now)
    }

    fn adopt_sync(&self, hold: &HoldId, owner: &str, now: DateTime<Utc>) -> Result<Hold> {
        let mut shard = self.hold_shard(hold);
        if let Some(view) = self.decide(&mut shard, hold, HoldOp::Adopt { owner }, now)? {
            return Ok(view);
        }
        self.pin_locked(&mut shard, hold, now)?;
        let record = shard
            .holds
            .get_mut(hold)
            .ok_or_else(|| Error::UnknownHold(hold.clone()))?;
        record.owner = Some(owner.to_owned());
        Ok(record.view(hold))
    }

    fn commit_sync(&self, hold: &HoldId, now: DateTime<Utc>) -> Result<Changes> {
        let mut shard = self.hold_shard(hold);
        if self
            .decide(&mut shard, hold, HoldOp::Commit, now)?
            .is_some()
        {
            return Ok(Changes::default());
        }
        let Some(events) = Self::finish(&shard.holds[hold], hold, true, now) else {
            return Err(self.expired_under_a_later_clock(&mut shard, hold, now));
        };
        shard.close(hold, HoldStatus::Committed, now);
        self.commit_events(Origin::Hold(hold, HoldStatus::Committed, now), now, &events);
        Ok(Changes { events })
    }

    /// Releases a hold the rules let release.
    fn release_locked(&self, shard: &mut HoldShard, hold: &HoldId, now: DateTime<Utc>) -> Changes {
        let events = Self::finish(&shard.holds[hold], hold, false, now).unwrap_or_default();
        shard.close(hold, HoldStatus::Released, now);
        self.commit_events(Origin::Hold(hold, HoldStatus::Released, now), now, &events);
        Changes { events }
    }

    fn release_sync(&self, hold: &HoldId, now: DateTime<Utc>) -> Result<Changes> {
        let mut shard = self.hold_shard(hold);
        if self
            .decide(&mut shard, hold, HoldOp::Release, now)?
            .is_some()
        {
            return Ok(Changes::default());
        }
        Ok(self.release_locked(&mut shard, hold, now))
    }

    fn release_owned_sync(
        &self,
        hold: &HoldId,
        owner: &str,
        now: DateTime<Utc>,
    ) -> Result<Changes> {
        let mut shard = self.hold_shard(hold);
        if !shard.holds.contains_key(hold) {
            // Never adopted here, or long forgotten: nothing of this owner's to give back.
            return Ok(Changes::default());
        }
        if self
            .decide(&mut shard, hold, HoldOp::ReleaseOwned { owner }, now)?
            .is_some()
        {
            return Ok(Changes::default());
        }
        Ok(self.release_locked(&mut shard, hold, now))
    }

    fn expire_sync(&self, hold: &HoldId, now: DateTime<Utc>) -> Result<bool> {
        let mut shard = self.hold_shard(hold);
        if self
            .decide(&mut shard, hold, HoldOp::Expire, now)?
            .is_some()
        {
            return Ok(false);
        }
        Ok(self.expire_locked(&mut shard, hold, now).is_some())
    }

    fn sweep_sync(&self, now: DateTime<Utc>, batch: usize) -> Sweep {
        let batch = batch.min(SWEEP_BATCH_MAX);
        let mut out = Sweep::default();
        for shard in self.holds.iter() {
            if out.expired.len() >= batch {
                break;
            }
            let mut shard = lock(shard);
            shard.prune(now);
            let due: Vec<HoldId> = shard
                .expiry
                .iter()
                .take_while(|(at, _)| *at <= now)
                .take(batch - out.expired.len())
                .map(|(_, id)| id.clone())
                .collect();
            for id in due {
                if let Some(events) = self.expire_locked(&mut shard, &id, now) {
                    out.changes.events.extend(events);
                    out.expired.push(id);
                }
            }
        }
        out
    }

    fn commit_direct_sync(
        &self,
        movement: &IdempotencyKey,
        lines: &[StockLine],
        policy: ShortfallPolicy,
        now: DateTime<Utc>,
    ) -> Result<DirectCommit> {
        let Some((demand, stocks)) =
            self.claim_lines(movement, lines, &format!("commit_direct|{policy:?}"))?
        else {
            return Ok(DirectCommit::default());
        };
        // Lock every stock's meta (in key order: `demand` is sorted) so the check and the
        // decrement are one atomic step across lines.
        let metas: Vec<MutexGuard<'_, Meta>> = stocks.iter().map(|s| lock(&s.meta)).collect();
        let befores: Vec<i64> = stocks
            .iter()
            .zip(&metas)
            .map(|(s, m)| row(s, m, now).available())
            .collect();
        // `rules::commit_direct` on the split row: take the units from the shards (as a
        // reservation would, so a concurrent reservation never gets the same unit); what they
        // could not give is the shortfall. Every line or none under `Refuse`.
        let mut taken: Vec<i64> = Vec::with_capacity(demand.len());
        let mut shortfalls = Vec::new();
        for (((key, q), stock), meta) in demand.iter().zip(&stocks).zip(&metas) {
            let got = stock.take_free(*q, now);
            taken.push(got);
            if got < *q {
                if policy == ShortfallPolicy::Refuse {
                    for (s, t) in stocks.iter().zip(&taken) {
                        s.adjust_free(*t);
                    }
                    self.abort_movement(movement);
                    return Err(rules::insufficient(key, *q, got, &meta.config));
                }
                shortfalls.push(Shortfall {
                    key: key.clone(),
                    units: q - got,
                });
            }
        }
        let mut metas = metas;
        let mut events = Vec::new();
        let mut log = Vec::new();
        for ((((key, q), stock), meta), (got, before)) in demand
            .iter()
            .zip(&stocks)
            .zip(metas.iter_mut())
            .zip(taken.iter().zip(befores))
        {
            meta.committed += q;
            if *got < *q {
                // Accepted: the rest is owed, visible as availability below the allowance.
                stock.deficit.fetch_add(q - got, Ordering::AcqRel);
            }
            events.extend(Self::changed(stock, meta, before, now));
            log.push(Movement {
                key: movement.clone(),
                stock: key.clone(),
                on_hand_delta: 0,
                committed_delta: *q,
                reason: "commit_direct".into(),
                at: now,
            });
        }
        self.record(log);
        self.commit_events(Origin::Movement(movement), now, &events);
        drop(metas);
        Ok(DirectCommit {
            shortfalls,
            changes: Changes { events },
            applied: true,
        })
    }

    /// Takes committed units off every line (all or none, once per movement key) by the rule
    /// `op` ([`rules::ship`] or [`rules::uncommit`]).
    fn move_committed(
        &self,
        movement: &IdempotencyKey,
        lines: &[StockLine],
        op: &'static str,
        now: DateTime<Utc>,
        rule: fn(&rules::StockRow, i64) -> Result<rules::Delta>,
    ) -> Result<Changes> {
        let Some((demand, stocks)) = self.claim_lines(movement, lines, op)? else {
            return Ok(Changes::default());
        };
        let mut metas: Vec<MutexGuard<'_, Meta>> = stocks.iter().map(|s| lock(&s.meta)).collect();
        let mut planned = Vec::with_capacity(demand.len());
        for (((key, q), stock), meta) in demand.iter().zip(&stocks).zip(&metas) {
            let before = row(stock, meta, now);
            match rule(&before, *q) {
                Ok(delta) => planned.push((before.available(), delta)),
                Err(e) => {
                    self.abort_movement(movement);
                    return Err(match e {
                        Error::Invalid { field, reason } => Error::Invalid {
                            field,
                            reason: format!("{key}: {reason}"),
                        },
                        other => other,
                    });
                }
            }
        }
        let mut events = Vec::new();
        let mut log = Vec::new();
        for ((key, stock), (meta, (before, delta))) in demand
            .iter()
            .map(|(k, _)| k)
            .zip(&stocks)
            .zip(metas.iter_mut().zip(planned))
        {
            meta.on_hand += delta.on_hand;
            meta.committed += delta.committed;
            stock.adjust_free(delta.free());
            events.extend(Self::changed(stock, meta, before, now));
            log.push(Movement {
                key: movement.clone(),
                stock: key.clone(),
                on_hand_delta: delta.on_hand,
                committed_delta: delta.committed,
                reason: op.into(),
                at: now,
            });
        }
        self.record(log);
        self.commit_events(Origin::Movement(movement), now, &events);
        Ok(Changes { events })
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
